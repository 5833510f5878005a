// The fused rollout step on the GPU: one kernel runs rollout steps t0..t1-1
// of every env (backend.h rollout_fused) instead of, per step, two forward
// passes of bias, GEMM and activation launches, a value copy, the action
// draw and the env step. Without observation normalisation the trainer asks
// for all T steps at once: one launch per rollout.
//
// The kernel's body is the block program of include/blpo/rollout_blocks.h
// (a block of up to 32 envs of one agent, register tiles of 2 neurons x 4
// envs, the heads spread over the envs), which tests/test_rollout_blocks.c
// runs thread by thread on the CPU against the CPU backend's op; the kernel
// only runs its phases with a barrier after each.
#include <stdio.h>
#include <string.h>

#include "blpo/rollout_blocks.h"
#include "cuda_ops.h"

namespace {

constexpr int kT = BLPO_ROF_THREADS;

// Two blocks per SM: cartpole.yaml's networks take 41-75 KiB of shared
// memory at 4-32 envs per block, so 2 fit an H100's 227 KiB at any of them
// (at 4096 envs the layout takes 16, 256 blocks); the register cap that
// implies (128) is far above the tiles' need (70 on sm_90).
__global__ void __launch_bounds__(kT, 2)
    rollout_fused_kernel(const __grid_constant__ blpo_rof_args a) {
  blpo_pdl_enter();
  extern __shared__ __align__(16) float sm[]; // 16: the tiles' float4 loads and stores
  const int phases = blpo_rof_phases(&a);
  for (int ph = 0; ph < phases; ph++) {
    blpo_rof_block(&a, blockIdx.y, blockIdx.x, threadIdx.x, ph, sm);
    __syncthreads();
  }
}

int cuda_rollout_fused_supported(blpo_backend *be, const blpo_mlp *actor, const blpo_mlp *critic) {
  return blpo_rof_supported(actor, critic, (size_t)blpo_cuda(be)->smem_optin) ? 2 : 0;
}

void cuda_rollout_fused(blpo_backend *be, const blpo_dims *d, const blpo_mlp *actor,
                        const float *actor_params, const blpo_mlp *critic,
                        const float *critic_params, int t0, int t1, blpo_counter counter,
                        blpo_env_state *states, float *obs, float *act, float *logp, float *value,
                        float *reward, float *done, float *ep_ret, float *final_obs, float *trunc) {
  blpo_cuda_impl *impl = blpo_cuda(be);
  if (d->P <= 0 || d->N <= 0 || t1 <= t0)
    return;
  blpo_rof_layout lay;
  if (!blpo_rof_choose(&lay, d, actor, critic, (size_t)impl->smem_optin, impl->sms)) {
    blpo_cuda_fail("blpo", "rollout_fused",
                   "these networks do not fit (rollout_fused_supported said 0)", __FILE__,
                   __LINE__);
    return;
  }
  blpo_rof_args a = blpo_rof_args_of(&lay, d, actor_params, critic_params, t0, t1, counter, states,
                                     obs, act, logp, value, reward, done, ep_ret, final_obs, trunc);
  blpo_launch(impl, rollout_fused_kernel, dim3((unsigned)lay.blocks, (unsigned)d->P), kT,
              sizeof(float) * (size_t)lay.s_floats, a);
}

} // namespace

void blpo_cuda_install_rollout_fused(blpo_backend *be) {
  // process-wide, the device's limit (see ppo_minibatch_cuda.cu)
  blpo_cuda_allow_smem(be, (const void *)rollout_fused_kernel, "rollout_fused_kernel");
  be->rollout_fused_supported = cuda_rollout_fused_supported;
  be->rollout_fused = cuda_rollout_fused;
}
