/* The training algorithm, written once against the backend seam. */
#ifndef BLPO_TRAINER_H
#define BLPO_TRAINER_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "config.h"

#define BLPO_RECENT_EPISODES 100

/* What one iteration reports for one agent (host values). */
typedef struct {
  int agent;
  int64_t iteration;                /* 1-based */
  int64_t global_step;              /* env steps of this agent so far */
  int episodes;                     /* episodes finished during this iteration */
  float ret_mean, ret_min, ret_max; /* of those episodes; NaN if none */
  float recent_mean;                /* mean of the last 100 finished episodes; NaN if none */
  int recent_count;
  float pg_loss, v_loss, entropy, approx_kl, clipfrac;
  float actor_gnorm, critic_gnorm; /* before clipping, mean over minibatches */
  float actor_lr, critic_lr;
  /* nested / blpo (means over the iteration's minibatch updates) */
  float critic_loss_before, critic_loss_after; /* g(w) around the nested loop */
  float actor_loss;                            /* BLPO actor loss L */
  float g_norm, p_norm, scale, cos_gp;         /* |g_theta|, |p|, s, cos(g_theta, p) */
  float rank, eig_min, eig_max;                /* kept rank r, kept |lambda| range */
  float core_faults;                           /* cores with nothing kept or singular S */
  float cg_resid;                              /* cg: final relative residual */
  float ihvp_relerr;                           /* check mode: Nystrom/CG vs exact; NaN off */
} blpo_iter_metrics;

typedef struct blpo_trainer blpo_trainer;

/* Phases of an iteration timed in profile mode (blpo_trainer_set_profile). */
typedef enum {
  BLPO_PHASE_ROLLOUT = 0, /* acting and env stepping */
  BLPO_PHASE_TARGETS,     /* V(last_obs) and GAE */
  BLPO_PHASE_PPO,         /* ppo: the whole minibatch update */
  BLPO_PHASE_GATHER,      /* nested/blpo: minibatch gathering */
  BLPO_PHASE_NESTED,      /* nested critic steps */
  BLPO_PHASE_ACTOR_LOSS,  /* forward passes, actor loss, g_theta and v (GAE adjoint) */
  BLPO_PHASE_HVP_ROWS,    /* the k Hessian rows (or CG / dense Hessian) */
  BLPO_PHASE_CORE_SOLVE,  /* core eigendecomposition and Woodbury solve */
  BLPO_PHASE_MIXED,       /* tangent, mixed weights and the p backward pass */
  BLPO_PHASE_ACTOR_STEP,  /* norm bound and the actor's Adam step */
  BLPO_PHASE_METRICS,     /* the per-iteration metrics download */
  BLPO_PHASE_COUNT
} blpo_phase;

extern const char *const blpo_phase_names[BLPO_PHASE_COUNT];

/* Allocates every buffer and initialises networks and envs. Returns NULL and
 * writes a message into err on failure (e.g. out of memory). */
blpo_trainer *blpo_trainer_create(const blpo_config *cfg, blpo_backend *be, char *err,
                                  size_t errlen);
int64_t blpo_trainer_num_iterations(const blpo_trainer *tr);
int64_t blpo_trainer_steps_per_iteration(const blpo_trainer *tr); /* per agent */
/* Runs one iteration (rollout + update); fills metrics[0..P-1]. */
void blpo_trainer_iterate(blpo_trainer *tr, blpo_iter_metrics *metrics);
/* Whether iterations now run as replays of a captured CUDA graph, and its
 * kernel launches (node count in *nodes) per iteration; 0 when not. */
int blpo_trainer_replaying(const blpo_trainer *tr);
size_t blpo_trainer_graph_kernels(const blpo_trainer *tr, size_t *nodes);
/* Whether the rollout runs through the fused step (run.fused_rollout). */
int blpo_trainer_fused_rollout(const blpo_trainer *tr);
/* Whether the update runs through the fused ops (run.fused_update): PPO
 * minibatches (ppo_minibatch), the nested critic steps (critic_step) or the
 * Nystrom solve (set_fused_solve). */
int blpo_trainer_fused_update(const blpo_trainer *tr);
/* Whether the backend launches with programmatic dependent launch (run.pdl,
 * where the device can). */
int blpo_trainer_pdl(const blpo_trainer *tr);
/* Whether the fused update's kernels run as cooperative kernels
 * (run.grid_sync, where the device can and the update is fused): the PPO
 * minibatch, the nested critic's steps. */
int blpo_trainer_grid_sync(const blpo_trainer *tr);
/* Copies agent p's parameters to host arrays (sizes from the getters). */
size_t blpo_trainer_actor_size(const blpo_trainer *tr);
size_t blpo_trainer_critic_size(const blpo_trainer *tr);
void blpo_trainer_get_params(blpo_trainer *tr, int agent, float *actor, float *critic);
/* The last <= 100 finished episode returns of agent p, oldest first; returns count. */
int blpo_trainer_recent_returns(const blpo_trainer *tr, int agent, float *out);
void blpo_trainer_destroy(blpo_trainer *tr);

/* Evaluates the current policies (observation statistics frozen) on fresh
 * episodes from an evaluation reset stream: per agent, the first `episodes`
 * returns, taken as an equal number of consecutive episodes from each of
 * min(N, episodes) envs so that short episodes are not favoured. Writes
 * mean/std/min/max per agent (P entries each). Returns 0, or -1 if some env
 * did not finish its episodes within max_steps * (episodes per env + 1). */
int blpo_trainer_evaluate(blpo_trainer *tr, int episodes, int deterministic, double *mean,
                          double *std, double *min, double *max);
/* Agent `agent`'s actor network on one input obs (obs_dim floats, taken as
 * the network's input, i.e. already normalised where the run normalises
 * observations): writes the head output (logits, or the Gaussian mean;
 * head_dim floats) to out. Runs through the backend's own forward pass.
 * Returns 0, or -1 when out of memory. */
int blpo_trainer_obs_dim(const blpo_trainer *tr);
int blpo_trainer_head_dim(const blpo_trainer *tr);
int blpo_trainer_actor_output(blpo_trainer *tr, int agent, const float *obs, float *out);
/* Profile mode: synchronise the backend around each phase and accumulate
 * its wall time (seconds) into phase_seconds (BLPO_PHASE_COUNT entries). */
void blpo_trainer_set_profile(blpo_trainer *tr, int on);
void blpo_trainer_phase_seconds(const blpo_trainer *tr, double *out);

#endif
