// The forward-mode tangent of an MLP on the GPU (backend.h mlp_tangent) as
// one kernel in place of the cuBLAS path's 3L + 1 launches: the block
// program of include/blpo/tangent_blocks.h, which the CPU test runs thread
// by thread; the kernel only runs its phases with a barrier after each.
// Taken with the other block kernels of BLPO's update (set_fused_solve, that
// is run.fused_update), for networks whose layout fits shared memory.
#include "blpo/tangent_blocks.h"
#include "cuda_backend_internal.h"
#include "cuda_ops.h"

namespace {

constexpr int kT = BLPO_MBF_THREADS;

// At least 2 blocks per SM (up to 128 registers a thread), as the PPO rows
// kernel: ptxas's own choice for (kT) alone spilled a few words of the
// float4 tiles (tnf_many_kernel on sm_80). BLPO's tangents (K = 1, 70 KiB
// of shared memory for cartpole.yaml's critic) would fit 3 blocks per SM,
// but their grids are about one block per SM at the suite's sizes (128
// chunks of 32 rows).
__global__ void __launch_bounds__(kT, 2) tnf_kernel(const __grid_constant__ blpo_tnf_args a) {
  blpo_pdl_enter();
  extern __shared__ __align__(32) float sm[]; // 32: the layer passes' float4 loads, WMMA tiles
  const int phases = blpo_tnf_phases(&a.lay);
  for (int ph = 0; ph < phases; ph++) {
    blpo_tnf_block(&a, blockIdx.y, blockIdx.x, threadIdx.x, ph, sm);
    __syncthreads();
  }
}

// Each block finds its pass; blocks of different passes run different phase
// counts (the barrier is the block's own).
__global__ void __launch_bounds__(kT, 2) tnf_many_kernel(const __grid_constant__ blpo_tnf_set s) {
  blpo_pdl_enter();
  extern __shared__ __align__(32) float sm[]; // 32: the layer passes' float4 loads, WMMA tiles
  const int t = blpo_pass_of(s.start, blockIdx.x);
  const blpo_tnf_args *a = &s.t[t];
  const int b = blockIdx.x - s.start[t], phases = blpo_tnf_phases(&a->lay);
  for (int ph = 0; ph < phases; ph++) {
    blpo_tnf_block(a, blockIdx.y, b, threadIdx.x, ph, sm);
    __syncthreads();
  }
}

// backend.h mlp_tangent_many: one launch where every pass fits (with
// run.fused_update), else each pass as mlp_tangent.
void cuda_mlp_tangent_many(blpo_backend *be, int P, int count, const blpo_mlp_tangent_pass *t) {
  blpo_cuda_impl *impl = blpo_cuda(be);
  blpo_tnf_set s;
  if (P <= 0 || count <= 0)
    return;
  if (!impl->fused_solve || !blpo_tnf_set_init(&s, P, count, t, (size_t)impl->smem_optin)) {
    for (int k = 0; k < count; k++)
      be->mlp_tangent(be, t[k].m, P, t[k].params, t[k].x, t[k].n, t[k].acts, t[k].K, t[k].dirs,
                      t[k].ry, t[k].work);
    return;
  }
  blpo_launch(impl, tnf_many_kernel, dim3((unsigned)s.start[s.count], (unsigned)P), kT,
              sizeof(float) * (size_t)s.s_floats, s);
}

} // namespace

int blpo_cuda_tangent_fused(blpo_backend *be, const blpo_mlp *m, int P, const float *params,
                            const float *x, int n, const float *acts, int K, const float *dirs,
                            float *ry) {
  blpo_cuda_impl *impl = blpo_cuda(be);
  blpo_tnf_layout lay;
  if (!impl->fused_solve || !blpo_tnf_choose(&lay, m, P, n, K, (size_t)impl->smem_optin))
    return 0;
  blpo_tnf_args a = blpo_tnf_args_of(&lay, params, x, acts, dirs, ry);
  const size_t smem = sizeof(float) * (size_t)lay.s_floats;
  blpo_launch(impl, tnf_kernel, dim3((unsigned)lay.blocks, (unsigned)P), kT, smem, a);
  return 1;
}

void blpo_cuda_install_tangent(blpo_backend *be) {
  // process-wide, the device's limit (see ppo_minibatch_cuda.cu)
  blpo_cuda_allow_smem(be, (const void *)tnf_kernel, "tnf_kernel");
  blpo_cuda_allow_smem(be, (const void *)tnf_many_kernel, "tnf_many_kernel");
  be->mlp_tangent_many = cuda_mlp_tangent_many;
}
