// The fused PPO minibatch update on the GPU (backend.h ppo_minibatch): four
// kernels per minibatch in place of the separate ops' gathers, per-layer
// GEMM/bias/activation/column-sum launches, loss, norms, clip and Adam. The
// kernels' bodies are the block programs of include/blpo/ppo_blocks.h, which
// the CPU test runs thread by thread; each kernel here only runs a program's
// phases in order with a barrier after each. With run.grid_sync the four
// programs run as one cooperative kernel (mbf_grid_kernel), grid barriers
// between them, as the nested critic's steps (kernels/critic_step_cuda.cu).
//
// The rows kernel holds both networks' weights (transposed) and the block's
// rows with all their activations and gradients in shared memory; networks
// whose weights and 8 rows do not fit there (hidden widths of a few hundred)
// get 0 from ppo_minibatch_work, and the trainer uses the separate cuBLAS
// ops for them. The workspace (partials, moments, norms) is the caller's.
#include <cooperative_groups.h>
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

// One phase of a grid phase's unit, out of line, as cvf_grid_phase: the rows
// program inlined into the schedule's loops would share the kernel's 128
// registers with the loop's state.
__device__ __noinline__ void mbf_grid_phase(const blpo_mbf_args *a, int s, int p, int u, int tid,
                                            int ph) {
  // declared here, not passed: through a pointer argument the program's
  // accesses would compile to generic loads and stores, not shared ones
  extern __shared__ __align__(32) float sm[];
  blpo_mbf_grid_unit(a, s, p, u, tid, ph, sm);
}

// run.grid_sync: the minibatch's programs (the epoch's moments at its first
// minibatch, rows, reduce, adam) in one launch of (G, P) blocks, all
// resident at once (a cooperative launch), running ppo_blocks.h's grid
// schedule with a grid barrier between programs: the same units on the same
// inputs as the separate kernels, so the same bits, and three or four
// launches become one. The barrier (cooperative groups) orders memory across
// the grid: the moments, partials and squared norms written before it are
// what the next program reads after it. Bounds as mbf_rows_kernel.
__global__ void __launch_bounds__(kT, 2) mbf_grid_kernel(const __grid_constant__ blpo_mbf_args a) {
  blpo_pdl_enter();
  cooperative_groups::grid_group grid = cooperative_groups::this_grid();
  const int count = blpo_mbf_grid_count(&a);
  for (int s = 0; s < count; s++) {
    if (s > 0)
      grid.sync();
    const int units = blpo_mbf_grid_units(&a, s), phases = blpo_mbf_grid_phases(&a, s);
    for (int u = blockIdx.x; u < units; u += gridDim.x)
      for (int ph = 0; ph < phases; ph++) {
        mbf_grid_phase(&a, s, blockIdx.y, u, threadIdx.x, ph);
        __syncthreads();
      }
  }
}

// blpo_cuda_grid_resident for mbf_grid_kernel.
long long mbf_grid_resident(blpo_cuda_impl *impl, size_t smem) {
  return blpo_cuda_grid_resident(impl, &impl->mbf_grid, mbf_grid_kernel, kT, smem);
}

// backend.h ppo_minibatch_work: the layout with the most rows per block
// (32, 16 or 8) that fits the device's shared memory, and its workspace.
size_t cuda_ppo_minibatch_work(blpo_backend *be, const blpo_dims *d, const blpo_mlp *actor,
                               const blpo_mlp *critic, int n, int minibatches) {
  blpo_cuda_impl *impl = blpo_cuda(be);
  blpo_mbf_layout lay;
  if (!blpo_mbf_choose(&lay, d, actor, critic, n, (size_t)impl->smem_optin, impl->tf32_tiles))
    return 0;
  // the cooperative kernel's residency, asked here, outside any capture
  mbf_grid_resident(impl, sizeof(float) * (size_t)blpo_mbf_grid_floats(&lay));
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
  if (impl->grid_sync) {
    const size_t smem = sizeof(float) * (size_t)blpo_mbf_grid_floats(&lay);
    const int G = blpo_mbf_grid_blocks(&lay, d->P, mbf_grid_resident(impl, smem));
    if (G > 0) {
      blpo_launch_cooperative(impl, mbf_grid_kernel, dim3((unsigned)G, (unsigned)d->P), kT, smem,
                              a);
      return;
    }
  }
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
  blpo_cuda_allow_smem(be, (const void *)mbf_grid_kernel, "mbf_grid_kernel");
  be->ppo_minibatch_work = cuda_ppo_minibatch_work;
  be->ppo_minibatch = cuda_ppo_minibatch;
}
