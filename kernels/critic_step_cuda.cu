// The fused nested critic step on the GPU (backend.h critic_step): two
// kernels per step of the nested loop in place of the separate ops' ~20
// launches. The kernels' bodies are the block programs of
// include/blpo/critic_blocks.h, which the CPU test runs thread by thread;
// each kernel here only runs a program's phases with a barrier after each.
#include <stdio.h>
#include <string.h>

#include "blpo/critic_blocks.h"
#include "cuda_ops.h"

struct blpo_cuda_cvf {
  blpo_cvf_layout lay;
  int P;
  float *parts;      // (P, blocks, cols)
  size_t smem_bytes; // the rows kernel's dynamic shared memory
};

namespace {

constexpr int kT = BLPO_MBF_THREADS;

__global__ void __launch_bounds__(kT) cvf_rows_kernel(const __grid_constant__ blpo_cvf_args a) {
  extern __shared__ float sm[];
  const int phases = blpo_cvf_rows_phases(&a.lay);
  for (int ph = 0; ph < phases; ph++) {
    blpo_cvf_rows(&a, blockIdx.y, blockIdx.x, threadIdx.x, ph, sm);
    __syncthreads();
  }
}

__global__ void __launch_bounds__(kT) cvf_adam_kernel(const __grid_constant__ blpo_cvf_args a) {
  __shared__ blpo_cvf_adam_shared sh;
  const int phases = blpo_cvf_adam_phases();
  for (int ph = 0; ph < phases; ph++) {
    blpo_cvf_adam(&a, blockIdx.y, blockIdx.x, threadIdx.x, ph, &sh);
    __syncthreads();
  }
}

// backend.h critic_step_prepare: the largest rows per block (32, 16 or 8)
// whose shared memory fits the device, and the partials for it; outside any
// capture (trainer create).
int cuda_critic_step_prepare(blpo_backend *be, const blpo_dims *d, const blpo_mlp *critic, int n) {
  blpo_cuda_impl *impl = blpo_cuda(be);
  if (d->P <= 0 || n <= 0 || critic->num_extra != 0)
    return 0;
  int dev = 0, optin = 0;
  cudaCheck(cudaGetDevice(&dev));
  cudaCheck(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
  blpo_cvf_layout lay;
  int R = BLPO_MBF_ROWS;
  for (; R >= 8; R /= 2)
    if (sizeof(float) * (size_t)blpo_cvf_layout_init(&lay, d->obs_dim, critic, n, R) <=
        (size_t)optin)
      break;
  if (R < 8)
    return 0;
  if (!impl->cvf) {
    impl->cvf = (blpo_cuda_cvf *)calloc(1, sizeof(blpo_cuda_cvf));
    if (!impl->cvf)
      return 0;
  }
  blpo_cuda_cvf *w = impl->cvf;
  cudaCheck(cudaStreamSynchronize(impl->stream)); // the old partials may be in use
  if (w->parts)
    cudaCheck(cudaFree(w->parts));
  w->parts = nullptr;
  cudaCheck(
      cudaMalloc((void **)&w->parts, sizeof(float) * (size_t)d->P * blpo_cvf_parts_floats(&lay)));
  w->lay = lay;
  w->P = d->P;
  w->smem_bytes = sizeof(float) * (size_t)lay.s_floats;
  // process-wide, the device's limit (see ppo_minibatch_cuda.cu)
  cudaCheck(
      cudaFuncSetAttribute(cvf_rows_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, optin));
  return 1;
}

void cuda_critic_step(blpo_backend *be, int P, const blpo_critic_step *cs) {
  blpo_cuda_impl *impl = blpo_cuda(be);
  blpo_cuda_cvf *w = impl->cvf;
  if (P <= 0 || cs->n <= 0)
    return;
  if (!w || w->P != P || w->lay.n != cs->n || !blpo_mbf_net_matches(&w->lay.c, cs->critic)) {
    char why[160];
    snprintf(why, sizeof why, "not prepared for %d agents x %d rows of this critic", P, cs->n);
    blpo_cuda_fail("blpo", "critic_step (critic_step_prepare first)", why, __FILE__, __LINE__);
    return;
  }
  const blpo_cvf_layout *y = &w->lay;
  blpo_cvf_args a = blpo_cvf_args_of(y, cs, w->parts);
  cudaStream_t s = impl->stream;
  cvf_rows_kernel<<<dim3((unsigned)y->blocks, (unsigned)P), kT, w->smem_bytes, s>>>(a);
  cudaCheckLaunch("cvf_rows_kernel");
  cvf_adam_kernel<<<dim3((unsigned)y->col_blocks, (unsigned)P), kT, 0, s>>>(a);
  cudaCheckLaunch("cvf_adam_kernel");
}

} // namespace

void blpo_cuda_free_critic_step(blpo_cuda_impl *impl) {
  if (!impl->cvf)
    return;
  if (impl->cvf->parts)
    cudaCheck(cudaFree(impl->cvf->parts));
  free(impl->cvf);
  impl->cvf = nullptr;
}

void blpo_cuda_install_critic_step(blpo_backend *be) {
  be->critic_step_prepare = cuda_critic_step_prepare;
  be->critic_step = cuda_critic_step;
}
