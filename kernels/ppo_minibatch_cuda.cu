// The fused PPO minibatch update on the GPU (backend.h ppo_minibatch): four
// kernels per minibatch in place of the separate ops' gathers, per-layer
// GEMM/bias/activation/column-sum launches, loss, norms, clip and Adam. The
// kernels' bodies are the block programs of include/blpo/ppo_blocks.h, which
// the CPU test runs thread by thread; each kernel here only runs a program's
// phases in order with a barrier after each.
//
// The rows kernel holds both networks' weights (transposed) and the block's
// rows with all their activations and gradients in shared memory; networks
// whose weights and 8 rows do not fit there (hidden widths of a few hundred)
// are refused by ppo_minibatch_prepare, and the trainer uses the separate
// cuBLAS ops for them.
#include <stdio.h>
#include <string.h>

#include "blpo/ppo_blocks.h"
#include "cuda_ops.h"

struct blpo_cuda_mbf {
  blpo_mbf_layout lay;
  int P;
  float *parts;      // (P, blocks, cols)
  double *moments;   // (P, 2)
  double *sq;        // (P, col_blocks, 2)
  size_t smem_bytes; // the rows kernel's dynamic shared memory
};

namespace {

constexpr int kT = BLPO_MBF_THREADS;

// Every kernel takes its arguments as a __grid_constant__, so the programs
// read them through a pointer without a per-thread copy.
__global__ void __launch_bounds__(kT) mbf_moments_kernel(const __grid_constant__ blpo_mbf_args a) {
  __shared__ blpo_mbf_moments_shared sh;
  const int phases = blpo_mbf_moments_phases();
  for (int ph = 0; ph < phases; ph++) {
    blpo_mbf_moments(&a, blockIdx.x, threadIdx.x, ph, &sh);
    __syncthreads();
  }
}

__global__ void __launch_bounds__(kT) mbf_rows_kernel(const __grid_constant__ blpo_mbf_args a) {
  extern __shared__ float sm[];
  const int phases = blpo_mbf_rows_phases(&a.lay);
  for (int ph = 0; ph < phases; ph++) {
    blpo_mbf_rows(&a, blockIdx.y, blockIdx.x, threadIdx.x, ph, sm);
    __syncthreads();
  }
}

__global__ void __launch_bounds__(kT) mbf_reduce_kernel(const __grid_constant__ blpo_mbf_args a) {
  __shared__ blpo_mbf_reduce_shared sh;
  const int phases = blpo_mbf_reduce_phases();
  for (int ph = 0; ph < phases; ph++) {
    blpo_mbf_reduce(&a, blockIdx.y, blockIdx.x, threadIdx.x, ph, &sh);
    __syncthreads();
  }
}

__global__ void __launch_bounds__(kT) mbf_adam_kernel(const __grid_constant__ blpo_mbf_args a) {
  __shared__ blpo_mbf_adam_shared sh;
  const int phases = blpo_mbf_adam_phases();
  for (int ph = 0; ph < phases; ph++) {
    blpo_mbf_adam(&a, blockIdx.y, blockIdx.x, threadIdx.x, ph, &sh);
    __syncthreads();
  }
}

void free_workspace(blpo_cuda_mbf *w) {
  if (w->parts)
    cudaCheck(cudaFree(w->parts));
  if (w->moments)
    cudaCheck(cudaFree(w->moments));
  if (w->sq)
    cudaCheck(cudaFree(w->sq));
  w->parts = nullptr, w->moments = nullptr, w->sq = nullptr;
}

// backend.h ppo_minibatch_prepare: the largest rows per block (32, 16 or 8)
// whose shared memory fits the device, and the workspaces for it. Runs
// outside any graph capture (trainer create), so it may allocate.
int cuda_ppo_minibatch_prepare(blpo_backend *be, const blpo_dims *d, const blpo_mlp *actor,
                               const blpo_mlp *critic, int n) {
  blpo_cuda_impl *impl = blpo_cuda(be);
  if (d->P <= 0 || n <= 0)
    return 0;
  int dev = 0, optin = 0;
  cudaCheck(cudaGetDevice(&dev));
  cudaCheck(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
  blpo_mbf_layout lay;
  int R = BLPO_MBF_ROWS;
  for (; R >= 8; R /= 2)
    if (sizeof(float) * (size_t)blpo_mbf_layout_init(&lay, d, actor, critic, n, R) <= (size_t)optin)
      break;
  if (R < 8)
    return 0;
  if (!impl->mbf) {
    impl->mbf = (blpo_cuda_mbf *)calloc(1, sizeof(blpo_cuda_mbf));
    if (!impl->mbf)
      return 0;
  }
  blpo_cuda_mbf *w = impl->mbf;
  cudaCheck(cudaStreamSynchronize(impl->stream)); // the old workspaces may be in use
  free_workspace(w);
  size_t P = (size_t)d->P;
  cudaCheck(cudaMalloc((void **)&w->parts, sizeof(float) * P * blpo_mbf_parts_floats(&lay)));
  cudaCheck(cudaMalloc((void **)&w->moments, sizeof(double) * P * 2));
  cudaCheck(cudaMalloc((void **)&w->sq, sizeof(double) * P * blpo_mbf_sq_doubles(&lay)));
  w->lay = lay;
  w->P = d->P;
  w->smem_bytes = sizeof(float) * (size_t)lay.s_floats;
  // the attribute is the kernel's, process-wide: the device's limit, not this
  // layout's need (another trainer's could be larger)
  cudaCheck(
      cudaFuncSetAttribute(mbf_rows_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, optin));
  return 1;
}

void cuda_ppo_minibatch(blpo_backend *be, const blpo_dims *d, const blpo_ppo_minibatch *mb) {
  blpo_cuda_impl *impl = blpo_cuda(be);
  blpo_cuda_mbf *w = impl->mbf;
  if (d->P <= 0 || mb->n <= 0)
    return;
  if (!w || w->P != d->P || w->lay.n != mb->n || !blpo_mbf_net_matches(&w->lay.a, mb->actor) ||
      !blpo_mbf_net_matches(&w->lay.c, mb->critic)) {
    char why[160];
    snprintf(why, sizeof why, "not prepared for %d agents x %d rows of these networks", d->P,
             mb->n);
    blpo_cuda_fail("blpo", "ppo_minibatch (ppo_minibatch_prepare first)", why, __FILE__, __LINE__);
    return;
  }
  const blpo_mbf_layout *y = &w->lay;
  blpo_mbf_args a = blpo_mbf_args_of(y, mb, w->parts, w->moments, w->sq);
  cudaStream_t s = impl->stream;
  mbf_moments_kernel<<<d->P, kT, 0, s>>>(a);
  cudaCheckLaunch("mbf_moments_kernel");
  mbf_rows_kernel<<<dim3((unsigned)y->blocks, (unsigned)d->P), kT, w->smem_bytes, s>>>(a);
  cudaCheckLaunch("mbf_rows_kernel");
  mbf_reduce_kernel<<<dim3((unsigned)y->col_blocks, (unsigned)d->P), kT, 0, s>>>(a);
  cudaCheckLaunch("mbf_reduce_kernel");
  mbf_adam_kernel<<<dim3((unsigned)y->col_blocks, (unsigned)d->P), kT, 0, s>>>(a);
  cudaCheckLaunch("mbf_adam_kernel");
}

} // namespace

void blpo_cuda_free_ppo_minibatch(blpo_cuda_impl *impl) {
  if (!impl->mbf)
    return;
  free_workspace(impl->mbf);
  free(impl->mbf);
  impl->mbf = nullptr;
}

void blpo_cuda_install_ppo_minibatch(blpo_backend *be) {
  be->ppo_minibatch_prepare = cuda_ppo_minibatch_prepare;
  be->ppo_minibatch = cuda_ppo_minibatch;
}
