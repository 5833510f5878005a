/* BLPO's actor loss with its GAE (backend.h blpo_actor) and the mixed
 * term's head weights (backend.h mixed_head) as block programs for host and
 * device, in the manner of ppo_blocks.h: one block per agent, each program a
 * function of (agent, thread, phase) whose phases the CUDA kernel
 * (kernels/backend_cuda_second_order.cu) runs with a barrier after each, and
 * tests/test_actor_blocks.c runs thread by thread against the CPU ops.
 *
 * Each op used to be a column kernel (one thread per trajectory), a row
 * kernel (one block per agent, which its block sums need anyway) and, for
 * blpo_actor, a second column kernel: three and two launches per
 * minibatch. As one block per agent the columns are the same threads'
 * strided work between barriers (global memory written before a barrier is
 * visible to the block after it), so each op is one launch:
 *
 *   blpo_actor  gae      advantages per trajectory (blpo_gae_column);
 *               rows     per row the surrogate, dhead, abar, rho, alpha_f,
 *                        resid (blpo_actor_row), each thread's sums of the
 *                        loss, resid^2 (the critic's loss, which took a
 *                        value_loss launch of its own) and log_std in double;
 *               tree     the sums pairwise, as the old row kernel's
 *                        blpo_block_sum (the same order, the same bits);
 *               finish   both loss stats and the log_std gradient (thread 0),
 *                        the GAE adjoint per trajectory (abar to vbar, in
 *                        place, and vbar_last).
 *   mixed_head  cols     adot and cdot per trajectory
 *                        (blpo_gae_tangent_column, blpo_mixed_coef_column);
 *               rows     dhead = cdot d log pi / d head, log_std sums;
 *               tree     (Gaussian heads only);
 *               finish   the log_std part of p (thread 0).
 *
 * The per-row and per-trajectory math is the CPU's (blpo_rows.h, gae.h,
 * blpo_math.h); only the sums over rows are in another order (the CPU's
 * run in row order). A trajectory's columns have one thread each, so past
 * 256 trajectories per agent a thread takes ceil(m / 256) of them (T steps
 * each), where the column kernels had one thread per (agent, trajectory);
 * at BLPO's sizes (m = 128 at 4096 envs and 32 minibatches) it is one. */
#ifndef BLPO_ACTOR_BLOCKS_H
#define BLPO_ACTOR_BLOCKS_H

#include <stddef.h>
#include <string.h>

#include "backend.h"
#include "blpo_math.h"
#include "blpo_rows.h"
#include "env.h"
#include "gae.h"
#include "hd.h"

#define BLPO_ACB_THREADS 256
#define BLPO_ACB_TREE_STEPS 8 /* log2(BLPO_ACB_THREADS) */
typedef char blpo_acb_tree_covers_threads[(BLPO_ACB_THREADS >> BLPO_ACB_TREE_STEPS) == 1 ? 1 : -1];

/* blpo_actor's arguments (backend.h), agent strides included. */
typedef struct {
  blpo_dims d;
  size_t anp, anm; /* the actor's parameters and MLP parameters per agent */
  int T, m;        /* steps, trajectories per agent: n = T m rows, time-major */
  const float *head;
  size_t hstride; /* (P, stride hstride) (n, Y) */
  const float *value;
  size_t vstride; /* (P, stride vstride) (n) */
  const float *value_last;
  size_t lstride;                                          /* (P, stride lstride) (m) */
  const float *actor_params, *actions, *logp_old, *reward; /* (P, Np), (P, n, A), (P, n) */
  const float *done, *target;                              /* (P, n) */
  float gamma, lambda, clip_eps, clip_f;                   /* */
  float *dhead, *actor_grad, *vbar, *vbar_last;            /* (P, n, Y), (P, Np), (P, n), (P, m) */
  float *rho, *adv, *alpha_f, *resid, *stats;              /* (P, n) x 4, (P, BLPO_STAT_COUNT) */
} blpo_acb_args;

/* mixed_head's arguments (backend.h). */
typedef struct {
  blpo_dims d;
  size_t anp, anm;
  int T, m;
  const float *head;
  size_t hstride;
  const float *actor_params, *actions, *done; /* (P, Np), (P, n, A), (P, n) */
  const float *vdot, *vdot_last;              /* (P, n), (P, m) */
  const float *rho, *adv, *alpha_f, *resid;   /* (P, n) */
  float gamma, lambda;
  float *cdot, *dhead, *p_grad; /* (P, n), (P, n, Y), (P, Np) log_std part */
} blpo_mxb_args;

typedef struct {
  double l[BLPO_ACB_THREADS];                   /* the loss */
  double v[BLPO_ACB_THREADS];                   /* the critic's loss, sum resid^2 */
  double g[BLPO_ENV_MAX_ACT][BLPO_ACB_THREADS]; /* the log_std gradient */
} blpo_acb_shared;

/* The programs' arguments from the seam ops' (backend.h blpo_actor,
 * mixed_head), for the CUDA backend and the tests alike. */
static inline blpo_acb_args
blpo_acb_args_of(const blpo_dims *d, const blpo_mlp *actor, const float *actor_params, int T, int m,
                 const float *head, size_t head_stride, const float *value, size_t value_stride,
                 const float *value_last, size_t last_stride, const float *actions,
                 const float *logp_old, const float *reward, const float *done, const float *target,
                 float gamma, float lambda, float clip_eps, float clip_f, float *dhead,
                 float *actor_grad, float *vbar, float *vbar_last, float *rho, float *adv,
                 float *alpha_f, float *resid, float *stats) {
  blpo_acb_args a;
  memset(&a, 0, sizeof(a));
  a.d = *d, a.anp = actor->num_params, a.anm = actor->num_mlp_params, a.T = T, a.m = m;
  a.head = head, a.hstride = head_stride, a.value = value, a.vstride = value_stride;
  a.value_last = value_last, a.lstride = last_stride;
  a.actor_params = actor_params, a.actions = actions, a.logp_old = logp_old, a.reward = reward;
  a.done = done, a.target = target;
  a.gamma = gamma, a.lambda = lambda, a.clip_eps = clip_eps, a.clip_f = clip_f;
  a.dhead = dhead, a.actor_grad = actor_grad, a.vbar = vbar, a.vbar_last = vbar_last;
  a.rho = rho, a.adv = adv, a.alpha_f = alpha_f, a.resid = resid, a.stats = stats;
  return a;
}

static inline blpo_mxb_args
blpo_mxb_args_of(const blpo_dims *d, const blpo_mlp *actor, const float *actor_params, int T, int m,
                 const float *head, size_t head_stride, const float *actions, const float *done,
                 const float *vdot, const float *vdot_last, const float *rho, const float *adv,
                 const float *alpha_f, const float *resid, float gamma, float lambda, float *cdot,
                 float *dhead, float *p_grad) {
  blpo_mxb_args a;
  memset(&a, 0, sizeof(a));
  a.d = *d, a.anp = actor->num_params, a.anm = actor->num_mlp_params, a.T = T, a.m = m;
  a.head = head, a.hstride = head_stride, a.actor_params = actor_params, a.actions = actions;
  a.done = done, a.vdot = vdot, a.vdot_last = vdot_last, a.rho = rho, a.adv = adv;
  a.alpha_f = alpha_f, a.resid = resid, a.gamma = gamma, a.lambda = lambda;
  a.cdot = cdot, a.dhead = dhead, a.p_grad = p_grad;
  return a;
}

BLPO_HD int blpo_acb_phases(void) { return BLPO_ACB_TREE_STEPS + 3; }

/* Tree step ph (1..BLPO_ACB_TREE_STEPS) of a block sum in s. */
BLPO_HD void blpo_acb_tree(double *s, int tid, int ph) {
  const int half = BLPO_ACB_THREADS >> ph;
  if (tid < half)
    s[tid] += s[tid + half];
}

/* blpo_actor: agent p's block, thread tid, phase ph. */
BLPO_HD void blpo_acb_block(const blpo_acb_args *a, int p, int tid, int ph, blpo_acb_shared *sh) {
  const blpo_dims *d = &a->d;
  const int T = a->T, m = a->m, n = T * m, A = d->act_dim, Y = d->head_dim;
  const size_t o = (size_t)p * n;
  const float *val = a->value + (size_t)p * a->vstride;
  if (ph == 0) {
    for (int j = tid; j < m; j += BLPO_ACB_THREADS)
      blpo_gae_column(a->reward + o + j, a->done + o + j, val + j,
                      a->value_last[(size_t)p * a->lstride + j], T, m, a->gamma, a->lambda,
                      a->adv + o + j, NULL);
  } else if (ph == 1) {
    const float inv_n = 1.0f / (float)n;
    const float *log_std = a->actor_params + (size_t)p * a->anp + a->anm;
    double lsum = 0, vsum = 0, gls[BLPO_ENV_MAX_ACT];
    for (int k = 0; k < BLPO_ENV_MAX_ACT; k++)
      gls[k] = 0;
    for (int i = tid; i < n; i += BLPO_ACB_THREADS) {
      const size_t r = o + i;
      const float *z = a->head + (size_t)p * a->hstride + (size_t)i * Y;
      float dls[BLPO_ENV_MAX_ACT];
      lsum += blpo_actor_row(d->discrete, d->num_actions, A, z, log_std, a->actions + r * A,
                             a->logp_old[r], a->adv[r], a->target[r], val[i], a->clip_eps,
                             a->clip_f, inv_n, a->dhead + r * Y, dls, &a->vbar[r], &a->rho[r],
                             &a->alpha_f[r], &a->resid[r]);
      vsum += (double)a->resid[r] * a->resid[r];
      if (!d->discrete)
        for (int k = 0; k < A; k++)
          gls[k] += dls[k];
    }
    sh->l[tid] = lsum;
    sh->v[tid] = vsum;
    for (int k = 0; k < BLPO_ENV_MAX_ACT; k++)
      sh->g[k][tid] = gls[k];
  } else if (ph <= BLPO_ACB_TREE_STEPS + 1) {
    blpo_acb_tree(sh->l, tid, ph - 1);
    blpo_acb_tree(sh->v, tid, ph - 1);
    if (!d->discrete)
      for (int k = 0; k < A; k++)
        blpo_acb_tree(sh->g[k], tid, ph - 1);
  } else {
    if (tid == 0) {
      float *st = a->stats + (size_t)p * BLPO_STAT_COUNT;
      st[BLPO_STAT_ACTOR_LOSS] += (float)(-sh->l[0] / n);
      st[BLPO_STAT_CRITIC_LOSS_AFTER] += (float)(sh->v[0] / n);
      if (!d->discrete)
        for (int k = 0; k < A; k++)
          a->actor_grad[(size_t)p * a->anp + a->anm + k] = (float)sh->g[k][0];
    }
    for (int j = tid; j < m; j += BLPO_ACB_THREADS)
      blpo_gae_adjoint_column(a->vbar + o + j, a->done + o + j, T, m, a->gamma, a->lambda,
                              a->vbar + o + j, &a->vbar_last[(size_t)p * m + j]);
  }
}

/* mixed_head: agent p's block, thread tid, phase ph (0 <= ph <
 * blpo_acb_phases(); the tree phases do nothing for a categorical head). */
BLPO_HD void blpo_mxb_block(const blpo_mxb_args *a, int p, int tid, int ph, blpo_acb_shared *sh) {
  const blpo_dims *d = &a->d;
  const int T = a->T, m = a->m, n = T * m, A = d->act_dim, Y = d->head_dim;
  const size_t o = (size_t)p * n;
  if (ph == 0) {
    const float inv_n = 1.0f / (float)n;
    for (int j = tid; j < m; j += BLPO_ACB_THREADS) {
      /* adot into cdot, then cdot overwritten in place (same index, same pass) */
      blpo_gae_tangent_column(a->vdot + o + j, a->vdot_last[(size_t)p * m + j], a->done + o + j, T,
                              m, a->gamma, a->lambda, a->cdot + o + j);
      blpo_mixed_coef_column(a->resid + o + j, a->vdot + o + j, a->adv + o + j, a->cdot + o + j,
                             a->rho + o + j, a->alpha_f + o + j, T, m, inv_n, a->cdot + o + j);
    }
  } else if (ph == 1) {
    const float *log_std = a->actor_params + (size_t)p * a->anp + a->anm;
    double gls[BLPO_ENV_MAX_ACT];
    for (int k = 0; k < BLPO_ENV_MAX_ACT; k++)
      gls[k] = 0;
    for (int i = tid; i < n; i += BLPO_ACB_THREADS) {
      const size_t r = o + i;
      const float *z = a->head + (size_t)p * a->hstride + (size_t)i * Y;
      float dls[BLPO_ENV_MAX_ACT];
      blpo_head_logp_grad(d->discrete, d->num_actions, A, z, log_std, a->actions + r * A,
                          a->cdot[r], a->dhead + r * Y, dls);
      if (!d->discrete)
        for (int k = 0; k < A; k++)
          gls[k] += dls[k];
    }
    for (int k = 0; k < BLPO_ENV_MAX_ACT; k++)
      sh->g[k][tid] = gls[k];
  } else if (ph <= BLPO_ACB_TREE_STEPS + 1) {
    if (!d->discrete)
      for (int k = 0; k < A; k++)
        blpo_acb_tree(sh->g[k], tid, ph - 1);
  } else if (tid == 0 && !d->discrete) {
    for (int k = 0; k < A; k++)
      a->p_grad[(size_t)p * a->anp + a->anm + k] = (float)sh->g[k][0];
  }
}

#endif
