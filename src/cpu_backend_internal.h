/* State private to the CPU backend: LAPACK workspaces of the core solves,
 * one set per agent, sized once before training (reserve_solver), and the MLP
 * backward's per-chunk gradient buffer (grown on first use). */
#ifndef BLPO_CPU_BACKEND_INTERNAL_H
#define BLPO_CPU_BACKEND_INTERNAL_H

#include <omp.h>
#include <stddef.h>

#include "blpo/backend.h"

typedef struct {
  float *nys_core;   /* (k, k) core, then its eigenvectors */
  float *nys_lambda; /* (k) */
  float *nys_b;      /* (k, Np) B = U_r^T C */
  float *nys_s;      /* (k, k) Woodbury system */
  float *nys_bv;     /* (k) */
  float *nys_work;   /* ssyevd work */
  int *nys_iwork;
  int *nys_ipiv;
  int *dense_ipiv; /* (Np) exact solver */
  int *nys_keep;   /* (k) indices of kept eigenpairs */
  int nys_lwork, nys_liwork;
  int nys_agents;    /* workspace sets above: one per agent (0 before reserve_solver) */
  float *grad_parts; /* (chunks, Nm) partial weight gradients of the MLP backward */
  size_t grad_parts_floats;
  float *wt; /* (Nm) transposed weights of the MLP forward pass */
  size_t wt_floats;
  double timer_s[BLPO_TIMER_SLOTS]; /* phase timer stamps (monotonic seconds) */
} blpo_cpu_impl;

/* Length of each of `pieces` equal contiguous pieces of count elements, a
 * multiple of align (the last piece may be shorter or empty): one piece per
 * thread, since fixed-size spans shared out statically split a network's
 * few thousand parameters 2:1 between two threads. */
static inline size_t blpo_cpu_even_piece(size_t count, int pieces, size_t align) {
  size_t per = (count + (size_t)pieces - 1) / (size_t)pieces;
  return (per + align - 1) / align * align;
}

/* Loops over independent floats, compiled for AVX-512, AVX2 and the
 * baseline and picked when the program loads (function multiversioning).
 * Vectorising across independent elements changes no element's arithmetic
 * (blpo_core builds with -ffp-contract=off: no FMA contraction), so results
 * are the same bits on every machine; only the speed differs. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && defined(__gnu_linux__)
#define BLPO_CPU_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define BLPO_CPU_VECTOR_CLONES
#endif

/* Whether a population op runs its P agents side by side, each agent whole
 * on one thread, instead of one after another with each agent's work split
 * between the threads: when there are agents enough for the threads, or
 * when one agent's work would not be split anyway (split_within = 0: a
 * minibatch of one row chunk, as in the paper's 4-env settings, where the
 * other threads would otherwise wait). Never inside a parallel region.
 * Which thread runs an agent does not change its numbers. */
static inline int blpo_cpu_agents_parallel(int P, int split_within) {
  int threads = omp_get_max_threads();
  return P > 1 && threads > 1 && !omp_in_parallel() && (!split_within || P >= threads);
}

/* The statements after P for p = 0 .. P-1: side by side on the threads when
 * par, else one after another outside any parallel region. Not an `if (par)`
 * clause on one loop: a region that clause makes inactive still encloses the
 * agents' own parallel regions (the threaded GEMMs), and libgomp starts a
 * nested region's threads afresh each time (BLPO at 1 agent ran 4.6x slower
 * that way). */
#define BLPO_CPU_FOR_AGENTS(par, P, ...)                                                           \
  do {                                                                                             \
    if (par) {                                                                                     \
      _Pragma("omp parallel for schedule(dynamic)") for (int p = 0; p < (P); p++) { __VA_ARGS__ }  \
    } else {                                                                                       \
      for (int p = 0; p < (P); p++) {                                                              \
        __VA_ARGS__                                                                                \
      }                                                                                            \
    }                                                                                              \
  } while (0)

int blpo_cpu_register_blpo_ops(blpo_backend *be);
/* rollout_fused_supported and rollout_fused (src/cpu_rollout_fused.c). */
void blpo_cpu_install_rollout_fused(blpo_backend *be);
void blpo_cpu_free_solver(blpo_cpu_impl *impl);

#endif
