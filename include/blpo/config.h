/* The run configuration: every key the YAML files and --set may name.
 * The table in src/config_table.c lists each key with its type, range and
 * default; this struct is what the trainer reads. */
#ifndef BLPO_CONFIG_H
#define BLPO_CONFIG_H

#include <stdint.h>

#define BLPO_MAX_HIDDEN 8
#define BLPO_PATH_MAX 1024

typedef enum { BLPO_ALGO_PPO = 0, BLPO_ALGO_NESTED = 1, BLPO_ALGO_BLPO = 2 } blpo_algo;
typedef enum { BLPO_HG_NYSTROM = 0, BLPO_HG_CG = 1, BLPO_HG_EXACT = 2 } blpo_hg_method;
typedef enum { BLPO_ACT_TANH = 0, BLPO_ACT_RELU = 1 } blpo_activation;
typedef enum { BLPO_TRI_AUTO = -1, BLPO_TRI_OFF = 0, BLPO_TRI_ON = 1 } blpo_tristate;
typedef enum { BLPO_PREC_FP32 = 0, BLPO_PREC_TF32 = 1 } blpo_precision;

typedef struct {
  /* env.* */
  char env_id[64];         /* env.id: Gymnasium id */
  int num_envs;            /* env.num_envs: N per agent */
  int num_steps;           /* env.num_steps: T rollout length per iteration */
  int normalize_obs;       /* env.normalize_obs: auto|true|false (auto: on for continuous) */
  int normalize_reward;    /* env.normalize_reward: auto|true|false */
  int bootstrap_truncated; /* env.bootstrap_truncated: bootstrap V at time-limit ends */

  /* run.* */
  int64_t total_steps;         /* run.total_steps: env steps per agent */
  int num_seeds;               /* run.num_seeds: P agents trained side by side */
  int64_t seed;                /* run.seed: agent i uses seed + i */
  char out_dir[BLPO_PATH_MAX]; /* run.out_dir: parent of run directories */
  char name[128];              /* run.name: run directory name prefix ("" = config stem) */
  int log_every;               /* run.log_every: iterations between progress lines (non-TTY) */
  int threads;                 /* run.threads: CPU threads, 0 = all cores */
  int checkpoint_every;    /* run.checkpoint_every: iterations between checkpoints (0 = end only) */
  int debug_nan_iteration; /* run.debug_nan_iteration: test hook, poison the critic then (0 = off)
                            */
  int cuda_graph;          /* run.cuda_graph: replay each iteration as a captured CUDA graph */
  int precision;           /* run.precision: GEMM precision on the CUDA backend */
  int pdl;                 /* run.pdl: programmatic dependent launch on the CUDA backend */
  int grid_sync;           /* run.grid_sync: the nested critic's steps as one cooperative kernel */
  int fused_rollout;       /* run.fused_rollout: auto|true|false, the one-kernel rollout step */
  int fused_update;        /* run.fused_update: auto|true|false, the one-op PPO minibatch */
  int debug_emulate_replay; /* run.debug_emulate_replay: test hook (trainer.c) */

  /* algo.* */
  int algo;            /* algo.name */
  float gamma;         /* algo.gamma */
  float gae_lambda;    /* algo.gae_lambda */
  int num_epochs;      /* algo.num_epochs: E */
  int num_minibatches; /* algo.num_minibatches: M */
  float clip_eps;      /* algo.clip_eps */
  float vf_coef;       /* algo.vf_coef (ppo) */
  float ent_coef;      /* algo.ent_coef (ppo) */
  float max_grad_norm; /* algo.max_grad_norm (ppo; 0 = off) */
  int norm_adv;        /* algo.norm_adv (ppo) */
  int clip_value;      /* algo.clip_value (ppo) */
  float actor_lr;      /* algo.actor_lr */
  float critic_lr;     /* algo.critic_lr */
  int anneal_lr;       /* algo.anneal_lr */
  float adam_eps;      /* algo.adam_eps */

  /* algo.* for nested and blpo */
  int nested_updates;      /* algo.nested_updates: K_c critic steps per minibatch */
  int hg_method;           /* algo.hypergrad.method: nystrom|cg|exact */
  int hg_rank;             /* algo.hypergrad.rank: k sampled indices */
  float hg_rho;            /* algo.hypergrad.rho: the Woodbury/CG shift rho */
  float hg_ridge;          /* algo.hypergrad.ridge: core ridge gamma */
  float hg_cutoff;         /* algo.hypergrad.cutoff: eigen cut-off tol = cutoff * k */
  float hg_ihvp_bound;     /* algo.hypergrad.ihvp_bound: beta */
  float hg_clip_f;         /* algo.hypergrad.clip_f: eps_f of the mixed term */
  int hg_fixed_indices;    /* algo.hypergrad.fixed_indices: one draw for the whole run */
  int hg_cg_iters;         /* algo.hypergrad.cg_iters */
  float hg_cg_tol;         /* algo.hypergrad.cg_tol */
  int hg_exact_max_params; /* algo.hypergrad.exact_max_params: limit for `exact` */
  int hg_check;            /* algo.hypergrad.check: also solve exactly, report the error */

  /* net.* */
  int actor_hidden[BLPO_MAX_HIDDEN]; /* net.actor_hidden: list of widths */
  int actor_num_hidden;
  int critic_hidden[BLPO_MAX_HIDDEN]; /* net.critic_hidden */
  int critic_num_hidden;
  int activation; /* net.activation: tanh|relu */
} blpo_config;

#endif
