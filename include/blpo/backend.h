/* The backend seam: the operations the training algorithm (src/trainer.c) is
 * written against. Every operation works on a whole population of P agents
 * at once: agent p's slice of an array of per-agent shape S starts at
 * p * prod(S). Pointers are backend buffers (host memory on the CPU backend,
 * device memory on CUDA); only `download` synchronises with the host.
 *
 * Shapes in the comments: P agents, N envs per agent, T rollout steps,
 * n rows in a minibatch, O obs dim, A stored action width, Y head width,
 * Np a network's parameter count. */
#ifndef BLPO_BACKEND_H
#define BLPO_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "env.h"
#include "episode_summary.h"
#include "mlp.h"
#include "optim.h"
#include "ppo_loss.h"
#include "schedule.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Facts about the task and population that most operations need. */
typedef struct {
  int P, N, T;
  int env_id;
  int obs_dim; /* O */
  int act_dim; /* A: 1 for discrete */
  int discrete;
  int num_actions; /* discrete */
  int head_dim;    /* Y: num_actions (logits) or act_dim (mean) */
  uint64_t seed;   /* agent p uses seed + p */
} blpo_dims;

/* Per-agent loss statistics accumulated over an iteration's minibatches. */
enum {
  BLPO_STAT_PG_LOSS = 0,
  BLPO_STAT_V_LOSS,
  BLPO_STAT_ENTROPY,
  BLPO_STAT_APPROX_KL,
  BLPO_STAT_CLIPFRAC,
  BLPO_STAT_ACTOR_GNORM,
  BLPO_STAT_CRITIC_GNORM,
  BLPO_STAT_COUNT_MB, /* minibatch updates accumulated */
  /* nested / blpo */
  BLPO_STAT_CRITIC_LOSS_BEFORE, /* g(w) before the nested loop */
  BLPO_STAT_CRITIC_LOSS_AFTER,  /* g(w) after it */
  BLPO_STAT_ACTOR_LOSS,         /* the BLPO actor loss L */
  BLPO_STAT_G_NORM,             /* |g_theta| */
  BLPO_STAT_P_NORM,             /* |p| */
  BLPO_STAT_SCALE,              /* the applied scale s */
  BLPO_STAT_COS,                /* cos(g_theta, p) */
  BLPO_STAT_RANK,               /* kept rank r of the Nystrom core */
  BLPO_STAT_EIG_MIN,            /* smallest |eigenvalue| kept */
  BLPO_STAT_EIG_MAX,            /* largest |eigenvalue| */
  BLPO_STAT_CORE_FAULTS,        /* cores with every eigenvalue cut (solve fell back to x = v/rho) */
  BLPO_STAT_IHVP_RELERR,        /* check mode: |x - x_exact| / |x_exact| */
  BLPO_STAT_CG_RESID,           /* cg: final relative residual */
  BLPO_STAT_COUNT
};

typedef struct blpo_backend blpo_backend;

/* One PPO minibatch update, as the arguments of blpo_backend.ppo_minibatch:
 * the rows idx picks out of the rollout, both networks' forward passes, the
 * PPO loss, both backward passes, the global-norm clip and one Adam step of
 * each network. Rollout sources are (T*P*N, width) rows; the rest (P, ...). */
typedef struct {
  int n;                                                       /* rows */
  const int32_t *idx;                                          /* (P, idx_stride) rollout rows */
  size_t idx_stride;                                           /* T*N */
  const float *obs, *act, *logp, *adv, *ret, *val;             /* rollout: O, A, 1, 1, 1, 1 */
  float *mb_obs, *mb_act, *mb_logp, *mb_adv, *mb_ret, *mb_val; /* (P, n, .) gathered */
  const blpo_mlp *actor, *critic;
  float *actor_params, *actor_grad, *actor_m, *actor_v;     /* (P, Na) */
  float *critic_params, *critic_grad, *critic_m, *critic_v; /* (P, Nc) */
  float *actor_acts, *critic_acts;                          /* (P, n, act_floats_per_row) */
  float *dhead, *dvalue;                                    /* (P, n, Y), (P, n) */
  float *scratch;                   /* (P, 2 n max_width of both networks) */
  float *sumsq_a, *sumsq_c, *scale; /* (P) */
  float *stats;                     /* (P, BLPO_STAT_COUNT) */
  blpo_ppo_params pp;
  float max_grad_norm;
  blpo_adam_sched actor_sched, critic_sched;
  void *work; /* ppo_minibatch_work bytes, or NULL where that op is NULL */
  /* This one's place in its epoch, for what a backend does once per epoch
   * (CUDA: every minibatch's advantage moments, at minibatch 0). The
   * epoch's minibatches run in order, minibatch k's rows at
   * idx + (k - minibatch) * n; 0 of 1 (or 0 of 0) for a lone minibatch. */
  int minibatch, minibatches;
} blpo_ppo_minibatch;

/* `steps` Adam steps of the nested critic on g(w) = (1/n) sum (G - V)^2
 * over the same n gathered rows (blpo.md step 4a), as the arguments of
 * blpo_backend.critic_step: per step the critic's forward pass, the value
 * loss, its backward pass and Adam without a clip; step k (from 0) takes
 * Adam's schedule at sched's offset + k, and the loss is added to
 * stat_slot at step 0 only. (P, ...) buffers. */
typedef struct {
  int n;                          /* rows */
  int steps;                      /* >= 1 */
  const blpo_mlp *critic;         /* */
  const float *x, *target;        /* (P, n, O), (P, n) */
  float *params, *grad, *m, *v;   /* (P, Nc) */
  float *acts, *dvalue, *scratch; /* workspaces of the separate ops */
  float *stats;                   /* (P, BLPO_STAT_COUNT) */
  int stat_slot;                  /* where the loss is added; < 0: nowhere */
  blpo_adam_sched sched;
  void *work; /* critic_step_work bytes */
} blpo_critic_step;

/* Stamps a backend's phase timer keeps at once (blpo_backend.timer_mark). */
#define BLPO_TIMER_SLOTS 256

/* One gather of gather_rows_many, with gather_rows's arguments:
 * dst (P, n, width), row i of agent p = src row idx[p * idx_stride + i]. */
typedef struct {
  const int32_t *idx;
  size_t idx_stride;
  int n, width;
  const float *src;
  float *dst;
} blpo_gather;
#define BLPO_GATHER_MAX 8

/* One pass of mlp_forward_many, with mlp_forward's arguments. */
typedef struct {
  const blpo_mlp *m;
  const float *params, *x; /* (P, Np), (P, n, d_0) */
  int n;
  float *acts; /* (P, n, act_floats_per_row) */
} blpo_mlp_pass;
/* One pass of mlp_backward_many, with mlp_backward's arguments; each pass
 * has a scratch of its own. add_to_prev: once both passes are done, the
 * previous pass's grad += this pass's (the whole (P, Np), as axpy with
 * alpha 1; the same network without extra parameters, as BLPO's v over the
 * minibatch and the last observations), this pass's grad still its own. */
typedef struct {
  const blpo_mlp *m;
  const float *params, *x; /* (P, Np), (P, n, d_0) */
  int n;
  const float *acts, *dy; /* (P, n, act_floats_per_row), (P, n, d_L) */
  float *grad, *scratch;  /* (P, Np) (the MLP part written), (P, 2 n max_width) */
  int add_to_prev;
} blpo_mlp_grad_pass;
#define BLPO_PASS_MAX 4
/* One pass of mlp_tangent_many, with mlp_tangent's arguments. */
typedef struct {
  const blpo_mlp *m;
  const float *params, *x; /* (P, Np), (P, n, d_0) */
  int n;
  const float *acts; /* (P, n, act_floats_per_row) */
  int K;
  const float *dirs; /* (P, K, Np) */
  float *ry;         /* (P, K, n, d_L) */
  float *work;       /* mlp_tangent_work floats per agent */
} blpo_mlp_tangent_pass;

struct blpo_backend {
  const char *name;
  void *impl;

  /* ---- buffers ---- */
  void *(*alloc)(blpo_backend *be, size_t bytes); /* zero-filled, NULL on failure */
  void (*release)(blpo_backend *be, void *p);
  void (*upload)(blpo_backend *be, void *dst, const void *src, size_t bytes);
  void (*download)(blpo_backend *be, void *dst, const void *src, size_t bytes);
  void (*fill)(blpo_backend *be, float *dst, float value, size_t count);
  /* Waits until every queued operation has finished (profiling only). */
  void (*sync)(blpo_backend *be);

  /* ---- envs ---- */
  /* states (P,N): fresh episodes; obs (P,N,O) their first observations. */
  void (*env_reset)(blpo_backend *be, const blpo_dims *d, blpo_env_state *states, float *obs);
  /* One step of every env with actions (P,N,A); auto-resets. Writes obs (P,N,O)
   * (next obs, after any reset), reward/done (P,N), ep_ret (P,N) (NaN unless an
   * episode ended), and, if final_obs != NULL, final_obs (P,N,O) the obs before
   * reset with trunc (P,N) = 1 where the episode was truncated. */
  void (*env_step)(blpo_backend *be, const blpo_dims *d, blpo_env_state *states,
                   const float *actions, float *obs, float *reward, float *done, float *ep_ret,
                   float *final_obs, float *trunc);

  /* ---- observation / reward normalisation (PureJaxRL wrappers) ---- */
  /* stats (P, 2*O+1): mean, var, count. Updates with the batch obs (P,N,O),
   * then normalises obs in place with the updated stats. */
  void (*obs_norm)(blpo_backend *be, const blpo_dims *d, float *stats, float *obs, int update);
  /* ret_acc (P,N) discounted return accumulators, stats (P,3): mean, var, count.
   * ret_acc = ret_acc*gamma*(1-done) + reward, stats updated with ret_acc,
   * reward /= sqrt(var + 1e-8) in place. */
  void (*reward_norm)(blpo_backend *be, const blpo_dims *d, float *stats, float *ret_acc,
                      float *reward, const float *done, float gamma);

  /* ---- networks ---- */
  /* params (P,Np); x (P,n,d_0); acts (P,n,act_floats_per_row) = [h_1|...|y]. */
  void (*mlp_forward)(blpo_backend *be, const blpo_mlp *m, int P, const float *params,
                      const float *x, int n, float *acts);
  /* count (<= BLPO_PASS_MAX) forward passes, each as mlp_forward, as one op:
   * one launch on the GPU where every network fits its fused kernel. No
   * pass may write what another reads. */
  void (*mlp_forward_many)(blpo_backend *be, int P, int count, const blpo_mlp_pass *f);
  /* grad (P,Np) (MLP part only) = d/dparams of sum(dy . y); dy (P,n,d_L).
   * scratch: (P, 2*n*max_width) floats. */
  void (*mlp_backward)(blpo_backend *be, const blpo_mlp *m, int P, const float *params,
                       const float *x, int n, const float *acts, const float *dy, float *grad,
                       float *scratch);
  /* count (<= BLPO_PASS_MAX) backward passes, each as mlp_backward, as one
   * op, with the sums of add_to_prev: two launches on the GPU where every
   * network fits its fused kernels (the sum inside the second). No pass may
   * write what another reads (scratches included). */
  void (*mlp_backward_many)(blpo_backend *be, int P, int count, const blpo_mlp_grad_pass *b);

  /* ---- policy ---- */
  /* head (P,N,Y) with head_stride floats between agents (heads are read in
   * place from an activation workspace); actor params (P,Np) for log_std;
   * the counter's value when the op runs selects the draw. Writes actions
   * (P,N,A) and logp (P,N). */
  void (*policy_sample)(blpo_backend *be, const blpo_dims *d, const blpo_mlp *actor,
                        const float *actor_params, const float *head, size_t head_stride,
                        blpo_counter counter, float *actions, float *logp);

  /* The policy's mode for evaluation: argmax of the logits, or the Gaussian
   * mean (the env clips). head (P,N,Y) with agent stride head_stride;
   * actions (P,N,A). */
  void (*policy_mode)(blpo_backend *be, const blpo_dims *d, const float *head, size_t head_stride,
                      float *actions);

  /* ---- targets ---- */
  /* reward, done, value (T,P,N), last_value (P,N) -> adv, ret (T,P,N).
   * Rollout buffers are time-major with agents inside, so that step t of the
   * whole population is one contiguous (P,N,.) slice. */
  void (*gae)(blpo_backend *be, const blpo_dims *d, const float *reward, const float *done,
              const float *value, const float *last_value, float gamma, float lambda, float *adv,
              float *ret);
  /* eret (T,P,N), NaN where no episode ended -> out (P): each agent's
   * blpo_episode_summary (include/blpo/episode_summary.h), every field and
   * tail slot written. The metrics read only this, not eret. */
  void (*episode_summary)(blpo_backend *be, const blpo_dims *d, const float *eret,
                          blpo_episode_summary *out);

  /* ---- minibatches ---- */
  /* Index draws from counter-based permutations (include/blpo/permute.h),
   * each stream at the counter's value when the op runs. PPO: idx (P, T*N)
   * holds agent p's shuffled samples as (T,P,N) rollout rows,
   * idx[p*T*N + i] = blpo_sample_row(perm_p, P, N, p, i). */
  void (*shuffle_samples)(blpo_backend *be, const blpo_dims *d, blpo_counter counter, int32_t *idx);
  /* Nested/BLPO: a permutation of agent p's N envs cut into minibatches of m
   * whole trajectories. rows (P, T*N): sample (t, j) of minibatch mb at
   * p*T*N + mb*T*m + t*m + j is row (t*P + p)*N + env, env =
   * perm(mb*m + j); last (P, N) at p*N + mb*m + j is row (T*P + p)*N + env
   * (the trajectory's last_obs in the (T+1,P,N,O) obs buffer). */
  void (*shuffle_trajectories)(blpo_backend *be, const blpo_dims *d, int m, blpo_counter counter,
                               int32_t *rows, int32_t *last);
  /* Nystrom: idx (draws, P, k): draw j of agent p = the first k elements of
   * a permutation of [0, np) for the counter's value + j: k distinct
   * indices, uniform without replacement. Several draws in one op, so that
   * an epoch's minibatches take theirs in one launch on the GPU. */
  void (*sketch_indices)(blpo_backend *be, const blpo_dims *d, size_t np, int k,
                         blpo_counter counter, int draws, int32_t *idx);
  /* dst (P,n,width): row i of agent p is src row idx[p*idx_stride + i]
   * (a row index into the whole src buffer). */
  void (*gather_rows)(blpo_backend *be, int P, const int32_t *idx, size_t idx_stride, int n,
                      const float *src, int width, float *dst);
  /* count (<= BLPO_GATHER_MAX) gathers, each as gather_rows, as one op: one
   * launch instead of count on the GPU. No destination may overlap a source
   * or another destination. */
  void (*gather_rows_many)(blpo_backend *be, int P, int count, const blpo_gather *g);
  /* P blocks of count floats: dst[p*dst_stride ..] = src[p*src_stride ..]. */
  void (*copy_blocks)(blpo_backend *be, int P, size_t count, float *dst, size_t dst_stride,
                      const float *src, size_t src_stride);
  /* reward += gamma * trunc * value, all (count): bootstrapping at time limits. */
  void (*bootstrap_truncated)(blpo_backend *be, size_t count, float *reward, const float *trunc,
                              const float *value, size_t value_stride_agent, int N, float gamma);

  /* ---- losses ---- */
  /* PPO combined loss on a gathered minibatch of n rows. Inputs (P,n,.):
   * head (agent stride head_stride), value (critic output, agent stride
   * value_stride), actions, logp_old, adv, ret, value_old.
   * Writes dhead (P,n,Y), dvalue (P,n,1), the log_std gradient into
   * actor_grad's extra part, and adds loss sums to stats (P,BLPO_STAT_COUNT). */
  void (*ppo_loss)(blpo_backend *be, const blpo_dims *d, const blpo_mlp *actor,
                   const float *actor_params, int n, const float *head, size_t head_stride,
                   const float *value, size_t value_stride, const float *actions,
                   const float *logp_old, const float *adv, const float *ret,
                   const float *value_old, blpo_ppo_params pp, float *dhead, float *dvalue,
                   float *actor_grad, float *stats);

  /* ---- optimiser ---- */
  /* sumsq (P) = sum of squares of x (P,count). */
  void (*sumsq)(blpo_backend *be, int P, const float *x, size_t count, float *sumsq);
  /* Global-norm clip factor per agent from the two networks' squared norms,
   * recording both norms in stats (P,BLPO_STAT_COUNT); scale (P) written. */
  void (*clip_scale)(blpo_backend *be, int P, const float *sumsq_a, const float *sumsq_c,
                     float max_norm, float *stats, float *scale);
  /* Adam on (P,count) with gradients multiplied by scale[p] (NULL: 1); the
   * step constants are the schedule's at the clock's iteration when the op
   * runs (blpo_adam_resolve). */
  void (*adam)(blpo_backend *be, int P, size_t count, float *params, const float *grad, float *m,
               float *v, const float *scale, blpo_adam_sched sched);

  /* ---- nested critic and BLPO (blpo.md step 4) ---- */
  /* dst (P,count) += alpha * src (P,count). */
  void (*axpy)(blpo_backend *be, int P, size_t count, float alpha, const float *src, float *dst);
  /* g(w) = (1/n) sum (G - V)^2 on n rows: dvalue (P,n) = -(2/n)(G - V) and the
   * loss added to stats[stat_slot] (stat_slot < 0: not recorded). */
  void (*value_loss)(blpo_backend *be, int P, int n, const float *value, size_t value_stride,
                     const float *target, float *dvalue, float *stats, int stat_slot);
  /* BLPO actor loss on m whole trajectories (time-major rows t*m + j, n = T m):
   * recomputes A(w) by GAE from value (V at s_t, agent stride value_stride) and
   * value_last (V at last_obs, agent stride last_stride), forms
   * L = -(1/n) sum min(rho A, clip(rho) A), and writes
   *   dhead (P,n,Y) and actor_grad's extra part: dL/d(head) for g_theta,
   *   vbar (P,n), vbar_last (P,m): dL/dV through the GAE adjoint (for v),
   *   rho, adv, alpha_f (clip_f surrogate), resid = G - V: (P,n) for the mixed term.
   * Adds L to stats[BLPO_STAT_ACTOR_LOSS] and the critic's loss on these rows,
   * (1/n) sum resid^2 (value_loss's, without its dvalue), to
   * stats[BLPO_STAT_CRITIC_LOSS_AFTER]. */
  void (*blpo_actor)(blpo_backend *be, const blpo_dims *d, const blpo_mlp *actor,
                     const float *actor_params, int T, int m, const float *head, size_t head_stride,
                     const float *value, size_t value_stride, const float *value_last,
                     size_t last_stride, const float *actions, const float *logp_old,
                     const float *reward, const float *done, const float *target, float gamma,
                     float lambda, float clip_eps, float clip_f, float *dhead, float *actor_grad,
                     float *vbar, float *vbar_last, float *rho, float *adv, float *alpha_f,
                     float *resid, float *stats);
  /* The mixed term's head gradient: from Vdot (P,n) and Vdot_last (P,m)
   * (critic tangents along x) forms cdot (P,n) (blpo.md step d) and writes
   * dhead (P,n,Y) = cdot * d log pi / d head, and the extra (log_std) part of
   * p_grad. The actor backward of dhead then gives p. */
  void (*mixed_head)(blpo_backend *be, const blpo_dims *d, const blpo_mlp *actor,
                     const float *actor_params, int T, int m, const float *head, size_t head_stride,
                     const float *actions, const float *done, const float *vdot,
                     const float *vdot_last, const float *rho, const float *adv,
                     const float *alpha_f, const float *resid, float gamma, float lambda,
                     float *cdot, float *dhead, float *p_grad);
  /* Forward-mode tangent of an MLP along K directions dirs (P,K,Np) on n rows:
   * ry (P,K,n,d_L); work as sized by mlp_tangent_work. */
  void (*mlp_tangent)(blpo_backend *be, const blpo_mlp *m, int P, const float *params,
                      const float *x, int n, const float *acts, int K, const float *dirs, float *ry,
                      float *work);
  size_t (*mlp_tangent_work)(const blpo_mlp *m, int n, int K); /* floats per agent */
  /* count (<= BLPO_PASS_MAX) tangents, each as mlp_tangent, as one op: one
   * launch on the GPU where every network fits the block kernel (BLPO's
   * critic tangents on the minibatch and the last observations). The passes
   * may share a work buffer (it is used one pass at a time); no pass may
   * write what another reads otherwise. */
  void (*mlp_tangent_many)(blpo_backend *be, int P, int count, const blpo_mlp_tangent_pass *t);
  /* Rows C (P,K,Np) = H[idx,:] of the critic loss g on n rows (target (P,n)),
   * idx (P,K) parameter indices; one batched pass over the K directions. */
  void (*critic_hvp_rows)(blpo_backend *be, const blpo_mlp *m, int P, const float *params,
                          const float *x, int n, const float *acts, const float *target, int K,
                          const int32_t *idx, float *rows, float *work);
  /* H u for K dense directions u (P,K,Np) -> hv (P,K,Np). */
  void (*critic_hvp)(blpo_backend *be, const blpo_mlp *m, int P, const float *params,
                     const float *x, int n, const float *acts, const float *target, int K,
                     const float *dirs, float *hv, float *work);
  size_t (*critic_hvp_work)(const blpo_mlp *m, int n, int K); /* floats per agent */
  /* Nystrom solve x ~ (H + rho I)^-1 v from rows C (P,k,Np) and idx (P,k):
   * core M = C[:,idx], eigen cut-off |lambda| > tol max|lambda|, Woodbury with
   * ridge; x (P,Np). Records rank and eigenvalue range in stats. */
  void (*nystrom_solve)(blpo_backend *be, int P, size_t np, int k, const float *rows,
                        const int32_t *idx, const float *v, float rho, float ridge, float tol,
                        float *x, float *stats);
  /* Conjugate gradient on (H + rho I) x = v with exact HVPs of the critic loss
   * on n rows (target (P,n)); x (P,Np) starts at 0; at most iters iterations,
   * stops when |r| <= tol |v|. cg (P, 4 Np) scratch. Records the final
   * relative residual in stats. */
  void (*cg_solve)(blpo_backend *be, const blpo_mlp *m, int P, const float *params,
                   const float *x_in, int n, const float *acts, const float *target, const float *v,
                   float rho, int iters, float tol, float *x, float *cg, float *work, float *stats);
  /* Dense solve (H + rho I) x = v with H (P,Np,Np); H is overwritten. */
  void (*dense_solve)(blpo_backend *be, int P, size_t np, float *hess, const float *v, float rho,
                      float *x);
  /* The norm bound and hypergradient: s = min(1, beta |g| / (|p| + 1e-8)),
   * g (P,count) <- g - s p; records |g|, |p|, s, cos(g,p) in stats. */
  void (*hypergrad_combine)(blpo_backend *be, int P, size_t count, float *g, const float *p,
                            float beta, float *stats);
  /* Sizes the solver workspaces once, before training: P agents, rank k,
   * critic parameter count np, and whether the dense solver is used. 0 on
   * success. */
  int (*reserve_solver)(blpo_backend *be, int P, int k, size_t np, int dense);
  /* Per-agent dot products out (P) = <a, b>. */
  void (*dot)(blpo_backend *be, int P, size_t count, const float *a, const float *b, float *out);

  /* ---- fused rollout step (include/blpo/fused_rollout.h) ---- */
  /* 0: cannot run these networks fused; 1: can, but the separate ops are
   * faster here (the CPU); 2: can, and it is the faster path (CUDA). */
  int (*rollout_fused_supported)(blpo_backend *be, const blpo_mlp *actor, const blpo_mlp *critic);
  /* Rollout steps t in [t0, t1), each one pass per env instead of
   * mlp_forward (actor, critic), copy_blocks, policy_sample and env_step:
   * the forward passes on obs[t], the action draw at counter + t, the env
   * step (auto-reset) writing obs[t+1] raw. obs (T+1,P,N,O); act (T,P,N,A);
   * logp, value, reward, done, ep_ret (T,P,N), slice t written at step t;
   * final_obs (P,N,O) and trunc (P,N), if not NULL, written at every step,
   * so they hold the last step's (the trainer asks for them one step at a
   * time: t1 = t0 + 1). */
  void (*rollout_fused)(blpo_backend *be, const blpo_dims *d, const blpo_mlp *actor,
                        const float *actor_params, const blpo_mlp *critic,
                        const float *critic_params, int t0, int t1, blpo_counter counter,
                        blpo_env_state *states, float *obs, float *act, float *logp, float *value,
                        float *reward, float *done, float *ep_ret, float *final_obs, float *trunc);

  /* ---- fused PPO minibatch update (optional: NULL where the backend has none) ---- */
  /* The whole of one minibatch update (blpo_ppo_minibatch): what
   * blpo_ppo_minibatch_ops (src/ppo_minibatch.c) computes as gather_rows,
   * mlp_forward, ppo_loss, mlp_backward, sumsq, clip_scale and adam, to the
   * parameters, gradients, Adam moments, norms, clip factor and stats.
   * CPU: the same bits, every buffer included; it runs in one parallel
   * region, each row chunk's forward, loss and backward passes back to back
   * on one core. CUDA: three or four kernels (include/blpo/ppo_blocks.h)
   * that keep the rows in shared memory, so the gathered rows,
   * activations, dhead, dvalue and scratch are left unwritten (workspaces
   * nothing reads after an update); the rest agrees with the separate ops
   * up to float rounding, and a run is reproducible bit for bit. */
  void (*ppo_minibatch)(blpo_backend *be, const blpo_dims *d, const blpo_ppo_minibatch *mb);
  /* Bytes of the workspace (a buffer of this backend, blpo_ppo_minibatch's
   * work) that ppo_minibatch needs for these networks on n-row minibatches
   * of d->P agents; 0 when it cannot run them (the trainer then runs the
   * separate ops). The caller owns the workspace, so trainers sharing a
   * backend never share one. Called before training, never during a
   * capture. Optional: NULL where ppo_minibatch needs no workspace and runs
   * any network (the CPU). */
  size_t (*ppo_minibatch_work)(blpo_backend *be, const blpo_dims *d, const blpo_mlp *actor,
                               const blpo_mlp *critic, int n, int minibatches);
  /* The nested critic's steps (blpo_critic_step): what blpo_critic_step_ops
   * (src/critic_step.c) computes as mlp_forward, value_loss, mlp_backward and
   * adam per step, to params, grad, m, v and stats. CUDA: two kernels per
   * step (rows and Adam, include/blpo/critic_blocks.h), or with set_grid_sync
   * on one cooperative kernel for all the steps (the same bits), up to float
   * rounding, the workspaces left unwritten; NULL on the CPU (the separate
   * ops). */
  void (*critic_step)(blpo_backend *be, int P, const blpo_critic_step *cs);
  /* As ppo_minibatch_work, for critic_step on n-row minibatches (required
   * where critic_step is not NULL). */
  size_t (*critic_step_work)(blpo_backend *be, const blpo_dims *d, const blpo_mlp *critic, int n);
  /* The actor's step of a BLPO minibatch: what hypergrad_combine(g, p,
   * beta, stats) then adam(params, g, m, v, no scale, sched) compute, to g,
   * params, m, v and stats. CUDA: one kernel with run.fused_update on
   * (include/blpo/hypergrad_blocks.h), up to float rounding; NULL on the CPU
   * (the two ops). */
  void (*hypergrad_step)(blpo_backend *be, int P, size_t count, float *g, const float *p,
                         float beta, float *stats, float *params, float *m, float *v,
                         blpo_adam_sched sched);

  /* ---- replay (optional: NULL where the backend has none) ---- */
  /* Records the operations queued from capture_begin to capture_end instead
   * of running them; capture_end returns a handle that graph_launch runs
   * again (reading the clock and every buffer afresh), or NULL with the
   * reason in why (nothing recorded ran; the caller runs the work directly). */
  void (*capture_begin)(blpo_backend *be);
  void *(*capture_end)(blpo_backend *be, char *why, size_t why_len);
  void (*graph_launch)(blpo_backend *be, void *graph);
  void (*graph_free)(blpo_backend *be, void *graph);
  /* The graph's node count; *kernels (if not NULL) gets how many of them are
   * kernel launches. */
  size_t (*graph_count)(const void *graph, size_t *kernels);
  /* GEMM precision: 0 fp32, 1 TF32 tensor cores (optional: NULL = fp32 only). */
  void (*set_gemm_precision)(blpo_backend *be, int tf32);
  /* The Nystrom solve as one kernel per agent, and critic_hvp_rows and
   * mlp_tangent as block kernels where the network fits (run.fused_update;
   * optional: NULL = the backend has one way): on (1) or off (0); returns
   * the largest rank nystrom_solve now runs that way, 0 when off. */
  int (*set_fused_solve)(blpo_backend *be, int on);
  /* Programmatic dependent launch (run.pdl; optional: NULL = the backend has
   * no such thing): on (1) lets each kernel be scheduled while the one before
   * it on the stream is still running, each waiting for its predecessor's
   * results at its start, so that launch latency overlaps work; the same
   * results either way. Returns whether it is now on: 0 when off, or where
   * the device cannot (CUDA: compute capability below 9.0). */
  int (*set_pdl)(blpo_backend *be, int on);
  /* Optional (run.grid_sync): critic_step's steps, and each ppo_minibatch,
   * as one cooperative kernel whose blocks synchronise the grid between the
   * gradient, its norms and the Adam step, in place of two kernels per step
   * and three per minibatch; the same results bit for bit.
   * Returns whether it is now on: 0 when off, or where the device cannot
   * (CUDA: no cooperative launch). A call whose grid cannot be resident at
   * once (too many agents for the device) runs the two kernels per step. */
  int (*set_grid_sync)(blpo_backend *be, int on);

  /* Phase timing on the backend's own clock, for profile mode (required of
   * every backend). timer_mark stamps slot (0 <= slot <
   * BLPO_TIMER_SLOTS) at this point of the queued work without waiting;
   * timer_seconds waits until slot b's stamp has been reached and returns
   * the seconds from slot a's stamp to slot b's. CUDA: one event per slot,
   * recorded on the stream; CPU: the monotonic clock at the call (its ops
   * are synchronous, so that is when the work before it ended). */
  void (*timer_mark)(blpo_backend *be, int slot);
  double (*timer_seconds)(blpo_backend *be, int a, int b);

  void (*destroy)(blpo_backend *be);
};

/* CPU reference backend (BLAS + OpenMP). threads <= 0: all cores. */
blpo_backend *blpo_backend_cpu_create(int threads);

/* CUDA backend on device 0 with one stream (kernels/backend_cuda.cu; only in
 * builds with BLPO_WITH_CUDA). NULL on failure, with the reason in why. */
blpo_backend *blpo_backend_cuda_create(char *why, size_t why_len);

#ifdef __cplusplus
}
#endif

#endif
