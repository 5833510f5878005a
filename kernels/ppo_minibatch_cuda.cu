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
// get 0 from ppo_minibatch_work, and the trainer uses the separate cuBLAS
// ops for them. The workspace (partials, moments, norms) is the caller's.
#include <stdio.h>
#include <string.h>

#include "blpo/ppo_blocks.h"
#include "cuda_ops.h"

namespace {

constexpr int kT = BLPO_MBF_THREADS;

// Every kernel takes its arguments as a __grid_constant__, so the programs
// read them through a pointer without a per-thread copy.
__global__ void __launch_bounds__(kT) mbf_moments_kernel(const __grid_constant__ blpo_mbf_args a) {
  blpo_pdl_enter();
  __shared__ blpo_mbf_moments_shared sh;
  const int phases = blpo_mbf_moments_phases();
  for (int ph = 0; ph < phases; ph++) {
    blpo_mbf_moments(&a, blockIdx.y, blockIdx.x, threadIdx.x, ph, &sh);
    __syncthreads();
  }
}

// At least 2 blocks per SM, that is up to 128 registers a thread: ptxas's
// own choice for (kT) alone, 64-80 registers, spilled a few words of the
// float4 tiles on sm_80 or sm_90. Shared memory allows 2 blocks per SM
// (cartpole.yaml's networks: 92 KiB a block), and the suite's grids are
// about one block per SM (128 blocks of 32 rows), so no occupancy is lost.
__global__ void __launch_bounds__(kT, 2) mbf_rows_kernel(const __grid_constant__ blpo_mbf_args a) {
  blpo_pdl_enter();
  extern __shared__ __align__(32) float sm[]; // 32: the layer passes' float4 loads, WMMA tiles
  const int phases = blpo_mbf_rows_phases(&a.lay);
  for (int ph = 0; ph < phases; ph++) {
    blpo_mbf_rows(&a, blockIdx.y, blockIdx.x, threadIdx.x, ph, sm);
    __syncthreads();
  }
}

__global__ void __launch_bounds__(kT) mbf_reduce_kernel(const __grid_constant__ blpo_mbf_args a) {
  blpo_pdl_enter();
  __shared__ blpo_mbf_reduce_shared sh;
  const int phases = blpo_mbf_reduce_phases();
  for (int ph = 0; ph < phases; ph++) {
    blpo_mbf_reduce(&a, blockIdx.y, blockIdx.x, threadIdx.x, ph, &sh);
    __syncthreads();
  }
}

__global__ void __launch_bounds__(kT) mbf_adam_kernel(const __grid_constant__ blpo_mbf_args a) {
  blpo_pdl_enter();
  __shared__ blpo_mbf_adam_shared sh;
  const int phases = blpo_mbf_adam_phases();
  for (int ph = 0; ph < phases; ph++) {
    blpo_mbf_adam(&a, blockIdx.y, blockIdx.x, threadIdx.x, ph, &sh);
    __syncthreads();
  }
}

// backend.h ppo_minibatch_work: the layout with the most rows per block
// (32, 16 or 8) that fits the device's shared memory, and its workspace.
size_t cuda_ppo_minibatch_work(blpo_backend *be, const blpo_dims *d, const blpo_mlp *actor,
                               const blpo_mlp *critic, int n, int minibatches) {
  blpo_mbf_layout lay;
  if (!blpo_mbf_choose(&lay, d, actor, critic, n, (size_t)blpo_cuda(be)->smem_optin,
                       blpo_cuda(be)->tf32_tiles))
    return 0;
  return blpo_mbf_work_bytes(&lay, d->P, minibatches);
}

void cuda_ppo_minibatch(blpo_backend *be, const blpo_dims *d, const blpo_ppo_minibatch *mb) {
  blpo_cuda_impl *impl = blpo_cuda(be);
  if (d->P <= 0 || mb->n <= 0)
    return;
  // the layout ppo_minibatch_work sized the workspace for (a few hundred
  // integer operations on the host; a replayed graph skips them)
  blpo_mbf_layout lay;
  if (!mb->work || !blpo_mbf_place_ok(mb) ||
      !blpo_mbf_choose(&lay, d, mb->actor, mb->critic, mb->n, (size_t)impl->smem_optin,
                       impl->tf32_tiles)) {
    blpo_cuda_fail("blpo", "ppo_minibatch",
                   !mb->work ? "no workspace (size it with ppo_minibatch_work)"
                   : !blpo_mbf_place_ok(mb)
                       ? "minibatch outside [0, minibatches)"
                       : "these networks do not fit (ppo_minibatch_work said 0)",
                   __FILE__, __LINE__);
    return;
  }
  blpo_mbf_args a = blpo_mbf_args_of(&lay, mb, d->P, mb->work);
  const size_t smem = sizeof(float) * (size_t)lay.s_floats;
  if (a.mb == 0) { // the epoch's moments, every minibatch's at once
    blpo_launch(impl, mbf_moments_kernel, dim3((unsigned)a.M, (unsigned)d->P), kT, 0, a);
  }
  blpo_launch(impl, mbf_rows_kernel, dim3((unsigned)lay.blocks, (unsigned)d->P), kT, smem, a);
  blpo_launch(impl, mbf_reduce_kernel, dim3((unsigned)lay.col_blocks, (unsigned)d->P), kT, 0, a);
  blpo_launch(impl, mbf_adam_kernel, dim3((unsigned)lay.col_blocks, (unsigned)d->P), kT, 0, a);
}

} // namespace

void blpo_cuda_install_ppo_minibatch(blpo_backend *be) {
  // the attribute is the kernel's, process-wide: the device's limit, so that
  // any layout ppo_minibatch_work accepts launches; set at backend create,
  // outside any capture
  blpo_cuda_allow_smem(be, (const void *)mbf_rows_kernel, "mbf_rows_kernel");
  be->ppo_minibatch_work = cuda_ppo_minibatch_work;
  be->ppo_minibatch = cuda_ppo_minibatch;
}
