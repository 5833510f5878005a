// The Nystrom solve in one kernel (backend.h nystrom_solve for k <=
// BLPO_NYS_KMAX): one block per agent runs the block program of
// include/blpo/nystrom_blocks.h, which the CPU test runs thread by thread;
// the kernel only steps through its phases with a barrier after each. Why
// not the cuSOLVER path: see that header.
#include "blpo/nystrom_blocks.h"
#include "cuda_ops.h"

namespace {

constexpr int kT = BLPO_NYS_THREADS;

__global__ void __launch_bounds__(kT) nys_fused_kernel(const __grid_constant__ blpo_nys_args a) {
  blpo_pdl_enter();
  __shared__ blpo_nys_shared sh;
  const int phases = a.lay.phases;
  for (int ph = 0; ph < phases; ph = blpo_nys_next(&a.lay, &sh, ph)) {
    blpo_nys_block(&a, blockIdx.x, threadIdx.x, ph, &sh);
    __syncthreads();
  }
}

// backend.h set_fused_solve: the largest rank the one-kernel solve takes
// from now on, 0 when it is off.
int cuda_set_fused_solve(blpo_backend *be, int on) {
  blpo_cuda(be)->fused_solve = on != 0;
  return on ? BLPO_NYS_KMAX : 0;
}

} // namespace

int blpo_cuda_nystrom_fused(blpo_backend *be, int P, size_t np, int k, const float *rows,
                            const int32_t *idx, const float *v, float rho, float ridge, float tol,
                            float *x, float *stats) {
  blpo_cuda_impl *impl = blpo_cuda(be);
  blpo_nys_args a;
  if (!impl->fused_solve || P <= 0 || !blpo_nys_layout_init(&a.lay, k, np)) // P: gridDim.x
    return 0;
  a.rows = rows, a.idx = idx, a.v = v, a.x = x, a.stats = stats;
  a.rho = rho, a.ridge = ridge, a.tol = tol;
  blpo_launch(impl, nys_fused_kernel, (unsigned)P, kT, 0, a);
  return 1;
}

void blpo_cuda_install_nystrom(blpo_backend *be) {
  blpo_cuda(be)->fused_solve = 1;
  be->set_fused_solve = cuda_set_fused_solve;
}
