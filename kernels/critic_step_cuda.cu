// The fused nested critic steps on the GPU (backend.h critic_step): two
// kernels per step of the nested loop in place of the separate ops' ~20
// launches, or with run.grid_sync one cooperative kernel for all the steps.
// The kernels' bodies are the block programs of include/blpo/critic_blocks.h,
// which the CPU test runs thread by thread; each kernel here only runs a
// program's phases with a barrier after each.
#include <cooperative_groups.h>
#include <stdio.h>
#include <string.h>

#include "blpo/critic_blocks.h"
#include "cuda_ops.h"

namespace {

constexpr int kT = BLPO_MBF_THREADS;

// At least 2 blocks per SM, that is up to 128 registers a thread: ptxas's
// own choice for (kT) alone, 80 registers on sm_80, spilled a few words of
// the float4 tiles. Its registers (120 on sm_90 with the TF32 tiles) cap it at 2
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

__global__ void __launch_bounds__(kT)
    cvf_adam_kernel(const __grid_constant__ blpo_cvf_args a, int step) {
  blpo_pdl_enter();
  __shared__ blpo_cvf_adam_shared sh;
  const int phases = blpo_cvf_adam_phases();
  for (int ph = 0; ph < phases; ph++) {
    blpo_cvf_adam(&a, blockIdx.y, blockIdx.x, step, threadIdx.x, ph, &sh);
    __syncthreads();
  }
}

// One phase of a grid phase's unit, out of line: inlined into the loops of
// the schedule, the rows program (about 120 registers alone) and the loop's
// own state spilled at the 128-register bound (36 bytes on sm_80, 8 on
// sm_90; kernel_resources); as a call it keeps its own allocation and the
// loop's few values stay in the kernel's. A call per phase, not per row.
__device__ __noinline__ void cvf_grid_phase(const blpo_cvf_args *a, int s, int p, int u, int tid,
                                            int ph) {
  // declared here, not passed: through a pointer argument the program's
  // accesses would compile to generic loads and stores, not shared ones
  extern __shared__ __align__(32) float sm[];
  blpo_cvf_grid_unit(a, s, p, u, tid, ph, sm);
}

// run.grid_sync: all `steps` steps in one launch, (G, P) blocks that are all
// resident at once (a cooperative launch, which the runtime refuses
// otherwise), running critic_blocks.h's grid schedule: per step the rows
// units, a grid barrier, the adam units, a grid barrier. The same programs
// on the same inputs as the two kernels per step, so the same bits; what it
// saves is the kernel boundaries (ten per BLPO minibatch at K_c = 5 become
// nine grid barriers inside one kernel). The grid barrier (cooperative
// groups) orders memory across the grid: the partials every block wrote
// before it are what the adam units read after it, and the parameters the
// adam units wrote are what the next step's rows stage; so the programs
// read them with plain loads, never the non-coherent read-only path
// (__ldg), which kernel_resources checks in the PTX. Bounds as
// cvf_rows_kernel: the rows program dominates its registers.
__global__ void __launch_bounds__(kT, 2)
    cvf_steps_kernel(const __grid_constant__ blpo_cvf_args a, int steps) {
  blpo_pdl_enter();
  cooperative_groups::grid_group grid = cooperative_groups::this_grid();
  for (int s = 0; s < 2 * steps; s++) {
    if (s > 0)
      grid.sync();
    const int units = blpo_cvf_grid_units(&a.lay, s), phases = blpo_cvf_grid_phases(&a.lay, s);
    for (int u = blockIdx.x; u < units; u += gridDim.x)
      for (int ph = 0; ph < phases; ph++) {
        cvf_grid_phase(&a, s, blockIdx.y, u, threadIdx.x, ph);
        __syncthreads();
      }
  }
}

// blpo_cuda_grid_resident for cvf_steps_kernel.
long long cvf_grid_resident(blpo_cuda_impl *impl, size_t smem) {
  return blpo_cuda_grid_resident(impl, &impl->cvf_grid, cvf_steps_kernel, kT, smem);
}

// backend.h critic_step_work: the layout with the most rows per block (32,
// 16 or 8) that fits the device's shared memory, and its partials (the
// cooperative kernel's residency asked here too, outside any capture).
size_t cuda_critic_step_work(blpo_backend *be, const blpo_dims *d, const blpo_mlp *critic, int n) {
  blpo_cuda_impl *impl = blpo_cuda(be);
  blpo_cvf_layout lay;
  if (!blpo_cvf_choose(&lay, d, critic, n, (size_t)impl->smem_optin, impl->tf32_tiles))
    return 0;
  cvf_grid_resident(impl, sizeof(float) * (size_t)blpo_cvf_grid_floats(&lay));
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
  if (impl->grid_sync) {
    const size_t smem = sizeof(float) * (size_t)blpo_cvf_grid_floats(&lay);
    const int G = blpo_cvf_grid_blocks(&lay, P, cvf_grid_resident(impl, smem));
    if (G > 0) {
      blpo_launch_cooperative(impl, cvf_steps_kernel, dim3((unsigned)G, (unsigned)P), kT, smem, a,
                              cs->steps);
      return;
    }
  }
  const size_t smem = sizeof(float) * (size_t)lay.s_floats;
  for (int k = 0; k < cs->steps; k++) {
    blpo_launch(impl, cvf_rows_kernel, dim3((unsigned)lay.blocks, (unsigned)P), kT, smem, a);
    blpo_launch(impl, cvf_adam_kernel, dim3((unsigned)lay.col_blocks, (unsigned)P), kT, 0, a, k);
  }
}

// backend.h set_grid_sync: where the device can launch cooperatively.
int cuda_set_grid_sync(blpo_backend *be, int on) {
  blpo_cuda_impl *impl = blpo_cuda(be);
  if (impl->grid_sync_supported == 0) {
    int dev = 0, coop = 0;
    cudaCheck(cudaGetDevice(&dev));
    cudaCheck(cudaDeviceGetAttribute(&coop, cudaDevAttrCooperativeLaunch, dev));
    impl->grid_sync_supported = coop ? 1 : -1;
  }
  impl->grid_sync = on && impl->grid_sync_supported > 0;
  return impl->grid_sync;
}

} // namespace

void blpo_cuda_install_critic_step(blpo_backend *be) {
  // process-wide, the device's limit (see ppo_minibatch_cuda.cu)
  blpo_cuda_allow_smem(be, (const void *)cvf_rows_kernel, "cvf_rows_kernel");
  blpo_cuda_allow_smem(be, (const void *)cvf_steps_kernel, "cvf_steps_kernel");
  be->critic_step_work = cuda_critic_step_work;
  be->critic_step = cuda_critic_step;
  be->set_grid_sync = cuda_set_grid_sync;
}
