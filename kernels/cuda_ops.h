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

// Installs mlp_forward and mlp_backward (kernels/mlp_cuda.cu).
void blpo_cuda_install_mlp(blpo_backend *be);

#endif
