/* tanh over an array for the CPU backend's MLP forward pass.
 *
 * Scalar tanhf costs about 20 ns per element here, and the hidden layers take
 * tens of millions of them per iteration: that was about half of a CPU PPO
 * iteration. glibc (2.35 and later, x86-64) ships vector tanhf in libmvec:
 * _ZGVbN4v_tanhf (SSE, 4 lanes), _ZGVdN8v_tanhf (AVX2, 8) and
 * _ZGVeN16v_tanhf (AVX-512, 16); on this project's EPYC they take 1.7, 1.1
 * and 0.5 ns per element and stay within 1.35 ulp of tanh (the scalar one is
 * within 1). math.h declares them only under -ffast-math, which we do not want
 * for the rest of the code, so they are called here by their vector-ABI
 * names, each from a function compiled for its instruction set.
 *
 * The widest variant the CPU supports is used for every element of a run (the
 * tail is padded to a full vector), so results do not depend on run.threads
 * or on how rows are split; like OpenBLAS's per-CPU GEMM kernels, they may
 * differ in the last bits between CPUs with different vector units. Other
 * platforms: scalar tanhf. */
#ifndef BLPO_CPU_TANH_H
#define BLPO_CPU_TANH_H

#include <math.h>
#include <stddef.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GLIBC__) &&                                                   \
    (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 35))
#define BLPO_HAVE_LIBMVEC_TANHF 1
typedef float blpo_v4sf __attribute__((vector_size(16)));
typedef float blpo_v8sf __attribute__((vector_size(32)));
typedef float blpo_v16sf __attribute__((vector_size(64)));
__attribute__((target("avx2"))) extern blpo_v8sf _ZGVdN8v_tanhf(blpo_v8sf x);
__attribute__((target("avx512f"))) extern blpo_v16sf _ZGVeN16v_tanhf(blpo_v16sf x);
extern blpo_v4sf _ZGVbN4v_tanhf(blpo_v4sf x);

/* x (cnt) = tanh(x) in place, LANES at a time through FN. */
#define BLPO_TANH_VECTOR_LOOP(VT, LANES, FN)                                                       \
  size_t full = cnt / (LANES) * (LANES);                                                           \
  for (size_t i = 0; i < full; i += (LANES)) {                                                     \
    VT v;                                                                                          \
    memcpy(&v, x + i, sizeof v);                                                                   \
    v = FN(v);                                                                                     \
    memcpy(x + i, &v, sizeof v);                                                                   \
  }                                                                                                \
  if (cnt > full) {                                                                                \
    VT v = {0.0f};                                                                                 \
    memcpy(&v, x + full, sizeof(float) * (cnt - full));                                            \
    v = FN(v);                                                                                     \
    memcpy(x + full, &v, sizeof(float) * (cnt - full));                                            \
  }

__attribute__((target("avx512f"))) static void blpo_tanh_avx512(float *x, size_t cnt) {
  BLPO_TANH_VECTOR_LOOP(blpo_v16sf, 16, _ZGVeN16v_tanhf)
}
__attribute__((target("avx2"))) static void blpo_tanh_avx2(float *x, size_t cnt) {
  BLPO_TANH_VECTOR_LOOP(blpo_v8sf, 8, _ZGVdN8v_tanhf)
}
static void blpo_tanh_sse(float *x, size_t cnt) {
  BLPO_TANH_VECTOR_LOOP(blpo_v4sf, 4, _ZGVbN4v_tanhf)
}
#endif

/* x (cnt) = tanh(x) in place, on the calling thread. */
static inline void blpo_cpu_tanh_inplace(float *x, size_t cnt) {
#ifdef BLPO_HAVE_LIBMVEC_TANHF
  if (__builtin_cpu_supports("avx512f"))
    blpo_tanh_avx512(x, cnt);
  else if (__builtin_cpu_supports("avx2"))
    blpo_tanh_avx2(x, cnt);
  else
    blpo_tanh_sse(x, cnt);
#else
  for (size_t i = 0; i < cnt; i++)
    x[i] = tanhf(x[i]);
#endif
}

#endif
