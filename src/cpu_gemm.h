/* Row-major single-precision GEMM for the CPU backend's small matrices: the
 * MLP layers (widths of tens to hundreds, row chunks of ~128) and the
 * second-order passes. Written here instead of calling cblas_sgemm because:
 *   - OpenBLAS picks its kernels by CPU model number, and a model it does not
 *     know gets its SSE3 "Prescott" kernels: OpenBLAS 0.3.21 (Debian 12) on an
 *     Emerald Rapids Xeon (family 6 model 207) ran our CPU PPO 3.3x slower
 *     than with its own SkylakeX kernels forced (105 k vs 349 k env steps/s,
 *     2026-12-01). Here the instruction set is chosen by feature bits
 *     (AVX-512F, else AVX2+FMA, else SSE2), so new CPUs get the wide kernel.
 *   - At these sizes OpenBLAS spends a tenth of its time packing and scaling.
 *   - Every output element is one sequential sum over k, in k order, on every
 *     instruction set with FMA and for any split of the output between
 *     threads: results are bit-identical between AVX-512 and AVX2 machines and
 *     for any run.threads.
 * LAPACK (the Nystrom core solves) still comes from the system library. */
#ifndef BLPO_CPU_GEMM_H
#define BLPO_CPU_GEMM_H

enum { BLPO_GEMM_N = 0, BLPO_GEMM_T = 1 };

/* C (M x N) = op(A) op(B) (accumulate == 0) or C += op(A) op(B), on the
 * calling thread. op(A) is (M x K): A stored (M x K) with ta = N, (K x M)
 * with ta = T; op(B) is (K x N): B stored (K x N) with tb = N, (N x K) with
 * tb = T. Leading dimensions are row strides in floats. K = 0 leaves C (or
 * zeroes it when not accumulating). */
void blpo_cpu_sgemm(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B,
                    int ldb, int accumulate, float *C, int ldc);

/* C (M x N) = bias + op(A) op(B), bias (N) added to every row: each element
 * starts its sum over k from bias[j] (the same bits as copying the bias into
 * C and accumulating), without the copy. */
void blpo_cpu_sgemm_bias(int ta, int tb, int M, int N, int K, const float *A, int lda,
                         const float *B, int ldb, const float *bias, float *C, int ldc);

/* The same product with the output split between the OpenMP threads (each
 * output element is still computed by one thread, so the result does not
 * depend on the thread count). For the large GEMMs of the second-order
 * passes. Inside a parallel region (agents side by side) its region is
 * nested, so it runs on the calling thread alone: the CPU backend keeps
 * OpenMP at one active level. */
void blpo_cpu_sgemm_mt(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B,
                       int ldb, int accumulate, float *C, int ldc);

/* Which kernel this CPU runs: "avx512", "avx2" or "sse2". */
const char *blpo_cpu_gemm_isa(void);

/* Tests only: run with the kernel for `isa` (as blpo_cpu_gemm_isa names
 * it), which the CPU must support; NULL restores the automatic choice. 0 on
 * success, -1 if unknown or unsupported. */
int blpo_cpu_gemm_force_isa(const char *isa);

#endif
