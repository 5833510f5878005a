// Pieces shared by the first-order CUDA backend files (kernels/backend_cuda.cu,
// kernels/mlp_cuda.cu): launch size and a deterministic block reduction.
#ifndef BLPO_CUDA_OPS_H
#define BLPO_CUDA_OPS_H

#include "cuda_backend_internal.h"

// Threads per block of every elementwise kernel and of the per-agent
// reductions (one block per agent). The reductions rely on this exact value:
// a fixed block size makes their summation order, and so their result,
// independent of the launch.
#define BLPO_CUDA_THREADS 256

// Sum of v over the block's BLPO_CUDA_THREADS threads, in double, in a fixed
// tree order; every thread gets the result. sh: __shared__ double[BLPO_CUDA_THREADS].
// Every thread of the block must call it (it synchronises).
static __device__ __forceinline__ double blpo_block_sum(double v, double *sh) {
  sh[threadIdx.x] = v;
  __syncthreads();
  for (int s = BLPO_CUDA_THREADS / 2; s > 0; s >>= 1) {
    if ((int)threadIdx.x < s)
      sh[threadIdx.x] += sh[threadIdx.x + s];
    __syncthreads();
  }
  double r = sh[0];
  __syncthreads(); // sh may be reused right away
  return r;
}

// out (P, agent stride out_stride, cols floats) = column sums of g (P, agent
// stride g_stride, n x cols row-major). Block (column tile, agent) of
// BLPO_COL_TILE x BLPO_COL_LANES threads: thread (tx, ty) sums column
// tile * BLPO_COL_TILE + tx over rows ty, ty + BLPO_COL_LANES, ... in order,
// then lane 0 adds the lanes' sums in order, a fixed order for every launch.
// (One thread per column summing all n rows one after another, as before,
// took 47 us for 4096 rows on an H100, about a third of a PPO minibatch.)
#define BLPO_COL_TILE 32
#define BLPO_COL_LANES 32
static __global__ void blpo_col_sums_kernel(int n, int cols, const float *__restrict__ g,
                                            size_t g_stride, float *__restrict__ out,
                                            size_t out_stride) {
  blpo_pdl_enter();
  __shared__ float part[BLPO_COL_LANES][BLPO_COL_TILE + 1];
  const int tx = threadIdx.x, ty = threadIdx.y, j = blockIdx.x * BLPO_COL_TILE + tx;
  const size_t p = blockIdx.y;
  const float *gp = g + p * g_stride;
  float s = 0.0f;
  if (j < cols)
    for (int r = ty; r < n; r += BLPO_COL_LANES)
      s += gp[(size_t)r * cols + j];
  part[ty][tx] = s;
  __syncthreads();
  if (ty == 0 && j < cols) {
    float t = part[0][tx];
    for (int k = 1; k < BLPO_COL_LANES; k++)
      t += part[k][tx];
    out[p * out_stride + j] = t;
  }
}

static inline void blpo_cuda_col_sums(const blpo_cuda_impl *impl, int P, int n, int cols,
                                      const float *g, size_t g_stride, float *out,
                                      size_t out_stride) {
  if (P <= 0 || cols <= 0)
    return;
  dim3 grid((unsigned)((cols + BLPO_COL_TILE - 1) / BLPO_COL_TILE), (unsigned)P);
  blpo_launch(impl, blpo_col_sums_kernel, grid, dim3(BLPO_COL_TILE, BLPO_COL_LANES), 0, n, cols, g,
              g_stride, out, out_stride);
}

// Installs mlp_forward and mlp_backward (kernels/mlp_cuda.cu).
void blpo_cuda_install_mlp(blpo_backend *be);

#endif
