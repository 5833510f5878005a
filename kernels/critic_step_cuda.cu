// The fused nested critic step on the GPU (backend.h critic_step): two
// kernels per step of the nested loop in place of the separate ops' ~20
// launches. The kernels' bodies are the block programs of
// include/blpo/critic_blocks.h, which the CPU test runs thread by thread;
// each kernel here only runs a program's phases with a barrier after each.
#include <stdio.h>
#include <string.h>

#include "blpo/critic_blocks.h"
#include "cuda_ops.h"

namespace {

constexpr int kT = BLPO_MBF_THREADS;

// At least 2 blocks per SM, that is up to 128 registers a thread: ptxas's
// own choice for (kT) alone, 80 registers on sm_80, spilled a few words of
// the float4 tiles. Its registers (94 on sm_90) now cap the kernel at 2
// blocks per SM where cartpole.yaml's critic (54 KiB of shared memory)
// would allow 4 on an H100; the nested step's grid is about one block per
// SM at the suite's sizes (128 blocks of 32 rows), so that costs nothing
// there.
__global__ void __launch_bounds__(kT, 2) cvf_rows_kernel(const __grid_constant__ blpo_cvf_args a) {
  blpo_pdl_enter();
  extern __shared__ __align__(32) float sm[]; // 32: the layer passes' float4 loads, WMMA tiles
  const int phases = blpo_cvf_rows_phases(&a.lay);
  for (int ph = 0; ph < phases; ph++) {
    blpo_cvf_rows(&a, blockIdx.y, blockIdx.x, threadIdx.x, ph, sm);
    __syncthreads();
  }
}

__global__ void __launch_bounds__(kT) cvf_adam_kernel(const __grid_constant__ blpo_cvf_args a) {
  blpo_pdl_enter();
  __shared__ blpo_cvf_adam_shared sh;
  const int phases = blpo_cvf_adam_phases();
  for (int ph = 0; ph < phases; ph++) {
    blpo_cvf_adam(&a, blockIdx.y, blockIdx.x, threadIdx.x, ph, &sh);
    __syncthreads();
  }
}

// backend.h critic_step_work: the layout with the most rows per block (32,
// 16 or 8) that fits the device's shared memory, and its partials.
size_t cuda_critic_step_work(blpo_backend *be, const blpo_dims *d, const blpo_mlp *critic, int n) {
  blpo_cvf_layout lay;
  if (!blpo_cvf_choose(&lay, d, critic, n, (size_t)blpo_cuda(be)->smem_optin,
                       blpo_cuda(be)->tf32_tiles))
    return 0;
  return blpo_cvf_work_bytes(&lay, d->P);
}

void cuda_critic_step(blpo_backend *be, int P, const blpo_critic_step *cs) {
  blpo_cuda_impl *impl = blpo_cuda(be);
  if (P <= 0 || cs->n <= 0)
    return;
  blpo_dims d;
  memset(&d, 0, sizeof(d));
  d.P = P;
  d.obs_dim = cs->critic->dims[0];
  blpo_cvf_layout lay; // as critic_step_work chose it
  if (!cs->work ||
      !blpo_cvf_choose(&lay, &d, cs->critic, cs->n, (size_t)impl->smem_optin, impl->tf32_tiles)) {
    blpo_cuda_fail("blpo", "critic_step",
                   cs->work ? "this critic does not fit (critic_step_work said 0)"
                            : "no workspace (size it with critic_step_work)",
                   __FILE__, __LINE__);
    return;
  }
  blpo_cvf_args a = blpo_cvf_args_of(&lay, cs);
  const size_t smem = sizeof(float) * (size_t)lay.s_floats;
  blpo_launch(impl, cvf_rows_kernel, dim3((unsigned)lay.blocks, (unsigned)P), kT, smem, a);
  blpo_launch(impl, cvf_adam_kernel, dim3((unsigned)lay.col_blocks, (unsigned)P), kT, 0, a);
}

} // namespace

void blpo_cuda_install_critic_step(blpo_backend *be) {
  // process-wide, the device's limit (see ppo_minibatch_cuda.cu)
  blpo_cuda_allow_smem(be, (const void *)cvf_rows_kernel, "cvf_rows_kernel");
  be->critic_step_work = cuda_critic_step_work;
  be->critic_step = cuda_critic_step;
}
