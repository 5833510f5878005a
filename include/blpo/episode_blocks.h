/* The episode summary (backend.h episode_summary, episode_summary.h) as a
 * block program for host and device in the manner of ppo_blocks.h: one
 * block of BLPO_EPS_THREADS threads per agent; the CUDA backend runs it as
 * one kernel (kernels/backend_cuda.cu), tests/test_episode_summary.c holds
 * it to the CPU op (src/backend_cpu.c) in every thread order.
 *
 * The agent's T * N elements in their (step, env) order f = t * N + i are
 * cut into one contiguous segment per thread, so that each thread's
 * episodes are consecutive and a rank from the end needs only the count of
 * the segments after it:
 *
 *   segments  each thread's count, sum (double), min and max of its segment;
 *   tree      the four summed or compared pairwise (fixed order);
 *   suffix    thread 0: the episodes after each segment, one after another,
 *             and the record's count, mean, min and max;
 *   tail      each thread whose segment holds part of the tail walks it back
 *             from its end and writes its episodes at their ranks; every
 *             thread writes NaN to its share of the unused slots.
 *
 * A segment is read by one thread from start to end, so the warp's loads
 * are 32 lines apart rather than one line: each line serves a thread's next
 * 31 reads from L1. The reads are tiny beside an iteration (one float per
 * env step, against about 227 kFLOP of training per env step), so the
 * simpler ranking is taken over coalescing. The sum differs from the CPU's
 * sequential one only in double rounding. */
#ifndef BLPO_EPISODE_BLOCKS_H
#define BLPO_EPISODE_BLOCKS_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "episode_summary.h"
#include "hd.h"

#define BLPO_EPS_THREADS 256
#define BLPO_EPS_TREE_STEPS 8 /* log2(BLPO_EPS_THREADS) */
typedef char blpo_eps_tree_covers_threads[(BLPO_EPS_THREADS >> BLPO_EPS_TREE_STEPS) == 1 ? 1 : -1];

typedef struct {
  int T, N;
  size_t PN;                 /* P * N: the step stride of eret */
  const float *eret;         /* (T, P, N) NaN where no episode ended */
  blpo_episode_summary *out; /* (P) */
} blpo_eps_args;

typedef struct {
  double sum[BLPO_EPS_THREADS];
  float mn[BLPO_EPS_THREADS], mx[BLPO_EPS_THREADS];
  int32_t cnt[BLPO_EPS_THREADS];   /* the tree's counts */
  int32_t seg[BLPO_EPS_THREADS];   /* each segment's own count */
  int32_t after[BLPO_EPS_THREADS]; /* episodes in the segments after it */
  int32_t kept;                    /* blpo_episode_tail_kept(count) */
} blpo_eps_shared;

BLPO_HD int blpo_eps_phases(void) { return BLPO_EPS_TREE_STEPS + 3; }

/* Thread tid's segment [lo, hi) of the agent's n = T * N elements. */
BLPO_HD void blpo_eps_segment(int64_t n, int tid, int64_t *lo, int64_t *hi) {
  const int64_t len = (n + BLPO_EPS_THREADS - 1) / BLPO_EPS_THREADS;
  int64_t a = len * tid, b = a + len;
  *lo = a < n ? a : n;
  *hi = b < n ? b : n;
}

/* Agent p's block, thread tid, phase ph (0 <= ph < blpo_eps_phases()). */
BLPO_HD void blpo_eps_block(const blpo_eps_args *a, int p, int tid, int ph, blpo_eps_shared *sh) {
  const int N = a->N;
  const float *ep = a->eret + (size_t)p * N; /* step t of env i at t * PN + i */
  int64_t lo, hi;
  blpo_eps_segment((int64_t)a->T * N, tid, &lo, &hi);
  if (ph == 0) {
    double s = 0;
    float mn = INFINITY, mx = -INFINITY;
    int32_t c = 0;
    int64_t t = lo / N, i = lo % N;
    for (int64_t f = lo; f < hi; f++) {
      const float r = ep[(size_t)t * a->PN + (size_t)i];
      if (blpo_episode_ended(r)) {
        s += r;
        mn = fminf(mn, r);
        mx = fmaxf(mx, r);
        c++;
      }
      if (++i == N)
        i = 0, t++;
    }
    sh->sum[tid] = s, sh->mn[tid] = mn, sh->mx[tid] = mx, sh->cnt[tid] = c, sh->seg[tid] = c;
  } else if (ph <= BLPO_EPS_TREE_STEPS) {
    const int half = BLPO_EPS_THREADS >> ph;
    if (tid < half) {
      sh->sum[tid] += sh->sum[tid + half];
      sh->mn[tid] = fminf(sh->mn[tid], sh->mn[tid + half]);
      sh->mx[tid] = fmaxf(sh->mx[tid], sh->mx[tid + half]);
      sh->cnt[tid] += sh->cnt[tid + half];
    }
  } else if (ph == BLPO_EPS_TREE_STEPS + 1) {
    if (tid == 0) {
      int32_t after = 0;
      for (int j = BLPO_EPS_THREADS - 1; j >= 0; j--) {
        sh->after[j] = after;
        after += sh->seg[j];
      }
      const int32_t count = sh->cnt[0];
      sh->kept = blpo_episode_tail_kept(count);
      blpo_episode_summary *o = &a->out[p];
      o->count = count;
      o->mean = count ? (float)(sh->sum[0] / count) : NAN;
      o->min = count ? sh->mn[0] : NAN;
      o->max = count ? sh->mx[0] : NAN;
    }
  } else {
    const int kept = sh->kept;
    float *tail = a->out[p].tail;
    for (int j = tid; j < BLPO_EPISODE_TAIL - kept; j += BLPO_EPS_THREADS)
      tail[j] = NAN;
    int rank = sh->after[tid]; /* of the segment's last episode, from the end */
    if (rank >= kept || sh->seg[tid] == 0)
      return;
    int64_t t = (hi - 1) / N, i = (hi - 1) % N;
    for (int64_t f = hi - 1; f >= lo && rank < kept; f--) {
      const float r = ep[(size_t)t * a->PN + (size_t)i];
      if (blpo_episode_ended(r))
        tail[BLPO_EPISODE_TAIL - 1 - rank++] = r;
      if (i-- == 0)
        i = N - 1, t--;
    }
  }
}

#endif
