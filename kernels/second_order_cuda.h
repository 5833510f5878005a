// Exact second-order passes of an MLP on the device (kernels/second_order_cuda.cu):
// the forward-mode tangent (Pearlmutter's R-operator) along K directions and
// Hessian-vector products of the critic loss g(w) = (1/n) sum (G - y)^2, with
// the same layouts and formulas as src/cpu_second_order.c
// (include/blpo/second_order.h): R-quantities stacked (n, K, d_l), directions
// packed per layer in the HVP workspace. Every GEMM is one cuBLAS strided
// batched call over the P agents; everything is queued on impl->stream.
#ifndef BLPO_SECOND_ORDER_CUDA_H
#define BLPO_SECOND_ORDER_CUDA_H

#include <stddef.h>
#include <stdint.h>

#include "cuda_backend_internal.h"

// Row-major GEMM, batched over `batch` agents with per-agent strides sA, sB,
// sC (floats): C = op(A) op(B) + beta C, with exactly cblas_sgemm(CblasRowMajor,
// ta, tb, M, N, K, 1, A, lda, B, ldb, beta, C, ldc)'s arguments; ta/tb say
// whether A/B are transposed. See the mapping comment in the .cu file.
void blpo_cuda_gemm_rm(blpo_cuda_impl *impl, int ta, int tb, int M, int N, int K, const float *A,
                       int lda, long long sA, const float *B, int ldb, long long sB, float beta,
                       float *C, int ldc, long long sC, int batch);

// Floats of HVP workspace per agent at (n, K): 2 K Nm + K n A + 2 K n w +
// 2 n w + K Wmax, the CPU formula (blpo_cpu_critic_hvp_work_floats) less its
// 3 K of unit-direction descriptors, which the CUDA rows do not use.
size_t blpo_cuda_hvp_work_floats(const blpo_mlp *m, int n, int K);

// Tangent along unpacked directions.
//   params (P, Np); x (P, n, d_0); acts (P, n, A); dirs (P, K, Np);
//   rh (P, K*n*A): per agent [R{h_1} (n, K, d_1) | ... | R{y} (n, K, d_L)];
//   ry (P, K, n, d_L).
void blpo_cuda_tangent(blpo_cuda_impl *impl, const blpo_mlp *m, int P, const float *params,
                       const float *x, int n, const float *acts, int K, const float *dirs,
                       float *rh, float *ry);

// hv = H u_k for K directions of the critic loss on n rows.
//   params (P, Np); x (P, n, d_0); acts (P, n, A); target (P, n, d_L);
//   dirs: agent p's K directions (K, Np) at dirs + p * dirs_stride; when dirs
//     is NULL the directions are the unit vectors e_j, j = idx[p*K + k]
//     (idx (P, K); j outside [0, Nm) gives a zero direction);
//   hv: agent p's (K, Np) results at hv + p * hv_stride (extra tail 0);
//   work (P, blpo_cuda_hvp_work_floats(m, n, K)).
void blpo_cuda_critic_hvp_pass(blpo_cuda_impl *impl, const blpo_mlp *m, int P, const float *params,
                               const float *x, int n, const float *acts, const float *target, int K,
                               const float *dirs, size_t dirs_stride, const int32_t *idx, float *hv,
                               size_t hv_stride, float *work);

#endif
