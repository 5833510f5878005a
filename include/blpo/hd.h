/* Qualifiers for code that must compile for both host (C11) and device (CUDA).
 * The per-element math (env steps, heads, losses, GAE, Adam) is written once in
 * headers with BLPO_HD so the CPU tests run the same code the kernels run. */
#ifndef BLPO_HD_H
#define BLPO_HD_H

#include <math.h>

#if defined(__CUDACC__)
#define BLPO_HD static __host__ __device__ __forceinline__
#else
#define BLPO_HD static inline
#endif

#define BLPO_PI 3.14159265358979323846

BLPO_HD float blpo_clampf(float x, float lo, float hi) { return fminf(fmaxf(x, lo), hi); }

#endif
