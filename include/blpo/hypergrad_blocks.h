/* The actor's step of a BLPO minibatch (blpo.md step 4e; backend.h
 * hypergrad_step): the norm bound and hypergradient, then Adam on the
 * actor, as a block program for host and device in the manner of
 * ppo_blocks.h. The CUDA backend runs it as one kernel of one block per
 * agent (kernels/backend_cuda_second_order.cu) in place of the hypergrad
 * kernel and the Adam kernel, once per minibatch; with Adam off it is the
 * CUDA hypergrad_combine. The CPU runs both ops (src/backend_cpu_blpo.c
 * hypergrad_combine, src/backend_cpu.c adam); tests/test_hypergrad_blocks.c
 * holds this program to them thread by thread.
 *
 *   sums    each thread's strided partial sums of |g|^2, |p|^2 and <g, p>,
 *           in double as the CPU's;
 *   tree    the three partials summed pairwise (fixed order);
 *   scale   s = min(1, beta |g| / (|p| + 1e-8)) and the stats (thread 0),
 *           and Adam's step constants from the clock;
 *   apply   h = g - s p, written to g, and with Adam on
 *           w, m, v <- adam(w, m, v, h) per element, as the Adam op
 *           (optim.h), by the thread that wrote h.
 *
 * One block per agent reads the agent's whole vectors, so the Adam part
 * runs on 256 threads rather than the Adam kernel's many blocks. Up to
 * BLPO_HGS_MAX_COUNT parameters (128 per thread; the 64-64 CartPole actor
 * has 4610) that is taken to cost less than a second launch, an estimate
 * not yet measured on a GPU; above it the backend launches the Adam kernel
 * after this program with Adam off. The sums differ from the CPU's
 * sequential ones only in double rounding. */
#ifndef BLPO_HYPERGRAD_BLOCKS_H
#define BLPO_HYPERGRAD_BLOCKS_H

#include <stddef.h>

#include "backend.h"
#include "hd.h"
#include "optim.h"

#define BLPO_HGS_THREADS 256
#define BLPO_HGS_TREE_STEPS 8          /* log2(BLPO_HGS_THREADS) */
#define BLPO_HGS_MAX_COUNT (128 * 256) /* parameters per agent for the Adam part */
typedef char blpo_hgs_tree_covers_threads[(BLPO_HGS_THREADS >> BLPO_HGS_TREE_STEPS) == 1 ? 1 : -1];

typedef struct {
  size_t count;          /* parameters per agent */
  float *g;              /* (P, count) g_theta in, h = g - s p out */
  const float *p;        /* (P, count) the mixed term */
  float beta;            /* the norm bound's factor */
  float *stats;          /* (P, BLPO_STAT_COUNT) */
  int adam;              /* 1: Adam on params, m, v with sched after the combine */
  float *params, *m, *v; /* (P, count) the actor's, when adam */
  blpo_adam_sched sched;
} blpo_hgs_args;

typedef struct {
  double gg[BLPO_HGS_THREADS], pp[BLPO_HGS_THREADS], gp[BLPO_HGS_THREADS];
  float s;                  /* the applied scale */
  blpo_adam_step_params sp; /* Adam's constants of this step */
} blpo_hgs_shared;

BLPO_HD int blpo_hgs_phases(void) { return BLPO_HGS_TREE_STEPS + 3; }

/* Agent p's block, thread tid, phase ph (0 <= ph < blpo_hgs_phases()). */
BLPO_HD void blpo_hgs_block(const blpo_hgs_args *a, int p, int tid, int ph, blpo_hgs_shared *sh) {
  const size_t n = a->count;
  float *g = a->g + (size_t)p * n;
  const float *pv = a->p + (size_t)p * n;
  if (ph == 0) {
    double gg = 0, pp = 0, gp = 0;
    for (size_t i = (size_t)tid; i < n; i += BLPO_HGS_THREADS) {
      gg += (double)g[i] * g[i];
      pp += (double)pv[i] * pv[i];
      gp += (double)g[i] * pv[i];
    }
    sh->gg[tid] = gg, sh->pp[tid] = pp, sh->gp[tid] = gp;
  } else if (ph <= BLPO_HGS_TREE_STEPS) {
    const int half = BLPO_HGS_THREADS >> ph;
    if (tid < half) {
      sh->gg[tid] += sh->gg[tid + half];
      sh->pp[tid] += sh->pp[tid + half];
      sh->gp[tid] += sh->gp[tid + half];
    }
  } else if (ph == BLPO_HGS_TREE_STEPS + 1) {
    if (tid == 0) {
      const double gn = sqrt(sh->gg[0]), pn = sqrt(sh->pp[0]);
      double s = a->beta * gn / (pn + 1e-8);
      if (s > 1.0)
        s = 1.0;
      sh->s = (float)s;
      float *st = a->stats + (size_t)p * BLPO_STAT_COUNT;
      st[BLPO_STAT_G_NORM] += (float)gn;
      st[BLPO_STAT_P_NORM] += (float)pn;
      st[BLPO_STAT_SCALE] += sh->s;
      st[BLPO_STAT_COS] += (gn > 0 && pn > 0) ? (float)(sh->gp[0] / (gn * pn)) : 0.0f;
      if (a->adam)
        sh->sp = blpo_adam_resolve(a->sched, blpo_clock_read(a->sched.step.clock));
    }
  } else {
    const float s = sh->s;
    if (!a->adam) {
      for (size_t i = (size_t)tid; i < n; i += BLPO_HGS_THREADS)
        g[i] -= s * pv[i];
      return;
    }
    float *w = a->params + (size_t)p * n, *m = a->m + (size_t)p * n, *v = a->v + (size_t)p * n;
    for (size_t i = (size_t)tid; i < n; i += BLPO_HGS_THREADS) {
      const float h = g[i] - s * pv[i];
      g[i] = h;
      blpo_adam_update(&w[i], &m[i], &v[i], h, sh->sp);
    }
  }
}

#endif
