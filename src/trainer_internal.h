/* The trainer's state, shared by the iteration driver (trainer.c) and the
 * update of each algorithm (update_blpo.c). Every pointer except the h_*
 * host mirrors is a backend buffer, allocated once in blpo_trainer_create.
 * Shapes: P agents, N envs, T steps, O obs dim, A action width, Y head width,
 * Na/Nc actor/critic parameter counts, n minibatch rows, m trajectories
 * per minibatch (nested/blpo), k Nystrom rank. */
#ifndef BLPO_TRAINER_INTERNAL_H
#define BLPO_TRAINER_INTERNAL_H

#include "blpo/trainer.h"

struct blpo_trainer {
  blpo_config cfg;
  blpo_backend *be;
  blpo_dims d;
  blpo_mlp actor, critic;
  int64_t num_iters, iter;
  int64_t *clock; /* backend buffer: the iteration being run (schedule.h) */
  int normalize_obs, normalize_reward;
  int fused;        /* rollout steps through rollout_fused (run.fused_rollout) */
  int fused_update; /* PPO minibatches through ppo_minibatch (run.fused_update) */
  int fused_critic; /* nested critic steps through critic_step (run.fused_update) */
  int fused_solve;  /* Nystrom solves as one kernel (set_fused_solve; run.fused_update) */
  int pdl;          /* kernels launched with programmatic dependent launch (set_pdl; run.pdl) */
  int grid_sync;    /* the nested steps as one cooperative kernel (set_grid_sync; run.grid_sync) */
  void *mb_work;    /* ppo_minibatch's workspace (backend buffer), if it has one */
  void *cs_work;    /* critic_step's */

  /* parameters and optimiser state */
  float *actor_params, *actor_grad, *actor_m, *actor_v;     /* (P, Na) */
  float *critic_params, *critic_grad, *critic_m, *critic_v; /* (P, Nc) */

  /* envs */
  blpo_env_state *env_states; /* (P, N) */
  float *obs_stats;           /* (P, 2O+1) */
  float *rew_stats;           /* (P, 3) */
  float *ret_acc;             /* (P, N) */

  /* rollout, time-major with agents inside */
  float *roll_obs;          /* (T+1, P, N, O): slot T is last_obs */
  float *roll_act;          /* (T, P, N, A) */
  float *roll_logp;         /* (T, P, N) */
  float *roll_val;          /* (T, P, N) */
  float *roll_rew;          /* (T, P, N) */
  float *roll_done;         /* (T, P, N) */
  float *roll_eret;         /* (T, P, N): NaN unless an episode ended */
  float *last_val;          /* (P, N) */
  float *adv, *ret;         /* (T, P, N) */
  float *final_obs, *trunc; /* (P, N, O), (P, N): bootstrap_truncated only */

  /* activation workspaces, sized for max(N, minibatch rows) */
  int ws_rows;
  float *actor_acts;  /* (P, ws_rows, actor apr) */
  float *critic_acts; /* (P, ws_rows, critic apr) */
  float *scratch;     /* (P, 2 ws_rows max_width) */

  /* minibatch */
  int mb_rows;                                                 /* n */
  int32_t *idx;                                                /* (P, T*N) shuffled sample rows */
  float *mb_obs, *mb_act, *mb_logp, *mb_adv, *mb_ret, *mb_val; /* (P, n, .) */
  float *dhead, *dvalue;                                       /* (P, n, Y), (P, n) */
  float *sumsq_a, *sumsq_c, *scale;                            /* (P) */
  float *stats;                     /* (P, BLPO_STAT_COUNT): the metrics block's start */
  blpo_episode_summary *ep_summary; /* (P), inside the metrics block, after the stats */

  /* nested / blpo minibatches of m whole trajectories (rows t*m + j) */
  int traj_per_mb;         /* m = N / M */
  int32_t *rows_idx;       /* (P, M, T m) rows of each minibatch's samples */
  int32_t *last_idx;       /* (P, M, m) rows of each minibatch's last_obs */
  float *mb_last_obs;      /* (P, m, O) */
  int32_t *iota;           /* (Nc) 0..Nc-1: unit-direction indices for dense Hessians */
  float *mb_rew, *mb_done; /* (P, n) */
  float *last_acts;        /* (P, m, critic apr): critic on last_obs rows */
  float *vbar, *vbar_last; /* (P, n), (P, m) */
  float *rho_t, *alpha_f, *resid, *cdot; /* (P, n) */
  float *v_vec, *v_last_grad;            /* (P, Nc): v = dL/dw, and the last_obs part */
  /* blpo: the scratches of v's two critic passes, (P, 2 n w) and (P, 2 m w),
   * w the critic's width (they run beside the actor's, mlp_backward_many) */
  float *scratch_v, *scratch_vl;
  float *x_vec;            /* (P, Nc): the IHVP solution */
  float *p_vec;            /* (P, Na): the mixed term */
  float *vdot, *vdot_last; /* (P, n), (P, m) */
  float *tan_work;         /* (P, tangent work) */
  int32_t *sketch_idx;     /* (M, P, k): the epoch's draws (one draw, fixed) */
  float *hvp_rows;         /* (P, k, Nc) */
  float *hvp_work;         /* (P, hvp work) */
  float *cg_buf;           /* (P, 4 Nc) cg only */
  float *hess;             /* (P, Nc, Nc) exact or check mode */
  float *x_exact;          /* (P, Nc) check mode */
  float *eye_chunk;        /* (P, chunk, Nc) unit directions for the dense Hessian */
  int hess_chunk;
  float *h_check; /* (2P) host: check-mode norms */

  /* replay (CUDA graphs): the captured iteration, and whether to use one */
  void *graph;
  int graph_on;        /* 1 while graphs are wanted and have not failed */
  int64_t eager_iters; /* iterations run directly (the first warms the libraries up) */
  size_t graph_nodes, graph_kernels;
  struct blpo_trainer *replay_snapshot; /* run.debug_emulate_replay: host state at capture */

  /* profile mode */
  int profile;
  double phase_s[BLPO_PHASE_COUNT];
  int phase_cur; /* phase in progress (-1: none) */
  /* the backend timer's ring of stamps, tm_count of them from slot tm_first
   * on; the time from a stamp to the next goes to tm_phase[slot] (-1:
   * between phases, not counted) */
  int tm_phase[BLPO_TIMER_SLOTS];
  int tm_first, tm_count;
  size_t blpo_bytes; /* backend bytes the nested/BLPO buffers asked for */

  /* host mirrors for the per-iteration metrics */
  float *h_eret;                   /* (P, N): evaluation's step returns */
  float *h_stats;                  /* the metrics block: (P, BLPO_STAT_COUNT), then h_summary */
  blpo_episode_summary *h_summary; /* (P), inside h_stats */
  float *recent;                   /* (P, 100) ring */
  int *recent_n, *recent_head;
};

/* Phase marks: blpo_phase_mark(tr, X) says that the work queued from here on
 * belongs to phase X, until the next mark or blpo_phase_done(tr). Each phase
 * is an NVTX range in CUDA builds (named as in blpo_phase_names, for Nsight
 * Systems). In profile mode each mark also stamps the backend's timer (CUDA:
 * an event on the stream, so nothing waits between phases) and
 * blpo_phase_done charges the time between stamps to their phases. */
void blpo_phase_mark(blpo_trainer *tr, int phase);
void blpo_phase_done(blpo_trainer *tr);

/* Optimiser steps taken before `iter` (identical for every agent): PPO's
 * (one per minibatch), the nested critic's (nested_updates per minibatch)
 * and the BLPO actor's (one per minibatch). The checkpoint stores them. */
int64_t blpo_steps_before(const blpo_trainer *tr, int64_t iter, int per_minibatch);

/* Adam's schedule for optimiser step `offset` of the iteration, of an
 * optimiser that takes per_iter steps per iteration (anneal as configured). */
blpo_adam_sched blpo_trainer_adam_sched(const blpo_trainer *tr, float lr, int64_t per_iter,
                                        int64_t offset);

/* Head (last layer) output inside an activation workspace of `rows` rows. */
float *blpo_head_of(const blpo_mlp *m, float *acts, int rows);

/* nested / blpo: buffers (called from blpo_trainer_create; 0 on success)
 * and the update of one iteration. */
int blpo_update_blpo_alloc(blpo_trainer *tr);
void blpo_update_blpo(blpo_trainer *tr);
void blpo_update_blpo_free(blpo_trainer *tr);

#endif
