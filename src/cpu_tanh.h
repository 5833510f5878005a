/* tanh over an array for the CPU backend's MLP forward pass.
 *
 * Scalar tanhf costs about 20 ns per element here, and the hidden layers take
 * tens of millions of them per iteration: that was about half of a CPU PPO
 * iteration. glibc (2.35 and later, x86-64) ships a vector tanhf in libmvec,
 * _ZGVbN4v_tanhf (4 lanes, SSE; about 2 ns per element, within 1.03 ulp of
 * tanh over [-10, 10], as accurate as the scalar one). math.h declares it only
 * under -ffast-math, which we do not want for the rest of the code, so it is
 * called here by its vector-ABI name.
 *
 * Every element goes through the same function (the tail is padded to 4
 * lanes) and the blocks are split among threads at 4-element boundaries, so
 * the results do not depend on run.threads. Elsewhere: scalar tanhf. */
#ifndef BLPO_CPU_TANH_H
#define BLPO_CPU_TANH_H

#include <math.h>
#include <stddef.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GLIBC__) &&                                                   \
    (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 35))
#define BLPO_HAVE_LIBMVEC_TANHF 1
typedef float blpo_v4sf __attribute__((vector_size(16)));
extern blpo_v4sf _ZGVbN4v_tanhf(blpo_v4sf x);
#endif

/* x (cnt) = tanh(x) in place. */
static inline void blpo_cpu_tanh_inplace(float *x, size_t cnt) {
#ifdef BLPO_HAVE_LIBMVEC_TANHF
  size_t blocks = cnt / 4;
#pragma omp parallel for schedule(static) if (cnt >= 16384)
  for (size_t b = 0; b < blocks; b++) {
    blpo_v4sf v;
    memcpy(&v, x + 4 * b, sizeof v);
    v = _ZGVbN4v_tanhf(v);
    memcpy(x + 4 * b, &v, sizeof v);
  }
  size_t rest = cnt - 4 * blocks;
  if (rest) {
    blpo_v4sf v = {0.0f, 0.0f, 0.0f, 0.0f};
    memcpy(&v, x + 4 * blocks, sizeof(float) * rest);
    v = _ZGVbN4v_tanhf(v);
    memcpy(x + 4 * blocks, &v, sizeof(float) * rest);
  }
#else
#pragma omp parallel for schedule(static) if (cnt >= 16384)
  for (size_t i = 0; i < cnt; i++)
    x[i] = tanhf(x[i]);
#endif
}

#endif
