// The Nystrom sketch's Hessian rows on the GPU (backend.h critic_hvp_rows)
// as two kernels in place of the cuBLAS path's ~34 launches: the block
// programs of include/blpo/hvp_rows_blocks.h, which the CPU test runs thread
// by thread; each kernel here only runs a program's phases with a barrier
// after each. Taken with the one-kernel Nystrom solve (set_fused_solve, that
// is run.fused_update), for critics whose layout fits shared memory.
#include "blpo/hvp_rows_blocks.h"
#include "cuda_backend_internal.h"
#include "cuda_ops.h"
#include "second_order_cuda.h"

namespace {

constexpr int kT = BLPO_MBF_THREADS;

__global__ void __launch_bounds__(kT) hvr_rows_kernel(const __grid_constant__ blpo_hvr_args a) {
  blpo_pdl_enter();
  extern __shared__ __align__(32) float sm[]; // 32: the layer passes' float4 loads, WMMA tiles
  const int phases = blpo_hvr_rows_phases(&a.lay);
  for (int ph = 0; ph < phases; ph++) {
    blpo_hvr_rows(&a, blockIdx.y, blockIdx.x, threadIdx.x, ph, sm);
    __syncthreads();
  }
}

__global__ void __launch_bounds__(kT) hvr_reduce_kernel(const __grid_constant__ blpo_hvr_args a) {
  blpo_pdl_enter();
  blpo_hvr_reduce(&a, blockIdx.y, blockIdx.x, threadIdx.x);
}

} // namespace

int blpo_cuda_hvp_rows_fused(blpo_backend *be, const blpo_mlp *m, int P, const float *params,
                             const float *x, int n, const float *acts, const float *target, int K,
                             const int32_t *idx, float *rows, float *work) {
  blpo_cuda_impl *impl = blpo_cuda(be);
  blpo_hvr_layout lay;
  if (!impl->fused_solve || !blpo_hvr_choose(&lay, m, P, n, K, blpo_cuda_hvp_work_floats(m, n, K),
                                             (size_t)impl->smem_optin, impl->tf32_tiles))
    return 0;
  blpo_hvr_args a = blpo_hvr_args_of(&lay, params, x, acts, target, idx, rows, work);
  const size_t smem = sizeof(float) * (size_t)lay.s_floats;
  blpo_launch(impl, hvr_rows_kernel, dim3((unsigned)lay.blocks, (unsigned)P), kT, smem, a);
  if (!lay.direct) {
    blpo_launch(impl, hvr_reduce_kernel, dim3((unsigned)blpo_hvr_reduce_blocks(&lay), (unsigned)P),
                kT, 0, a);
  }
  return 1;
}

void blpo_cuda_install_hvp_rows(blpo_backend *be) {
  // process-wide, the device's limit (see ppo_minibatch_cuda.cu)
  blpo_cuda_allow_smem(be, (const void *)hvr_rows_kernel, "hvr_rows_kernel");
}
