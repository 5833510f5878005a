// Env kernels: one thread per env runs the shared BLPO_HD dynamics
// (envs_gpu/envs.h), so the GPU steps exactly the code the CPU tests check.
#include <cuda_runtime.h>

#include "blpo/cuda_envs.h"
#include "blpo/rng.h"
#include "envs.h"
#include "pdl_cuda.h"

namespace {

constexpr int kThreads = 256;

// Same key derivation as the CPU backend: streams depend on (agent, env index)
// only, never on thread placement.
__device__ __forceinline__ blpo_key env_key(uint64_t seed, int p, int i) {
  return blpo_env_reset_key(seed, p, i);
}

__global__ void env_reset_kernel(int env_id, int P, int N, uint64_t seed,
                                 blpo_env_state *__restrict__ states, float *__restrict__ obs) {
  blpo_pdl_enter();
  const long long total = (long long)P * N;
  const long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= total)
    return;
  const int p = (int)(e / N), i = (int)(e % N);
  const int O = blpo_env_obs_dim(env_id);
  blpo_env_state st;
  st.s[0] = st.s[1] = st.s[2] = st.s[3] = 0.0f;
  st.t = 0;
  st.resets = 0u;
  st.ep_ret = 0.0f;
  st.ep_len = 0;
  blpo_env_reset(env_id, &st, env_key(seed, p, i));
  float o[BLPO_ENV_MAX_OBS];
  blpo_env_obs(env_id, &st, o);
  for (int k = 0; k < O; k++)
    obs[e * O + k] = o[k];
  states[e] = st;
}

__global__ void env_step_kernel(int env_id, int P, int N, uint64_t seed,
                                blpo_env_state *__restrict__ states,
                                const float *__restrict__ actions, float *__restrict__ obs,
                                float *__restrict__ reward, float *__restrict__ done,
                                float *__restrict__ ep_ret, int *__restrict__ ep_len,
                                float *__restrict__ final_obs, float *__restrict__ trunc) {
  blpo_pdl_enter();
  const long long total = (long long)P * N;
  const long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= total)
    return;
  const int p = (int)(e / N), i = (int)(e % N);
  const int O = blpo_env_obs_dim(env_id);
  const int A = blpo_env_act_dim(env_id);
  float act[BLPO_ENV_MAX_ACT];
  for (int k = 0; k < A; k++)
    act[k] = actions[e * A + k];
  // Registers, not global memory, for the step; one load and one store.
  blpo_env_state st = states[e];
  float o[BLPO_ENV_MAX_OBS], fo[BLPO_ENV_MAX_OBS], r, ret;
  int term, tr, len;
  blpo_env_step(env_id, &st, act, env_key(seed, p, i), o, &r, &term, &tr, &ret, &len,
                final_obs != nullptr ? fo : nullptr);
  states[e] = st;
  for (int k = 0; k < O; k++)
    obs[e * O + k] = o[k];
  reward[e] = r;
  done[e] = (term || tr) ? 1.0f : 0.0f;
  ep_ret[e] = ret;
  if (ep_len != nullptr)
    ep_len[e] = len;
  if (final_obs != nullptr)
    for (int k = 0; k < O; k++)
      final_obs[e * O + k] = fo[k];
  if (trunc != nullptr)
    trunc[e] = tr ? 1.0f : 0.0f;
}

unsigned int blocks_for(long long total) {
  return (unsigned int)((total + kThreads - 1) / kThreads);
}

} // namespace

extern "C" int blpo_cuda_env_reset(int env_id, int P, int N, uint64_t seed, blpo_env_state *states,
                                   float *obs, void *stream) {
  const long long total = (long long)P * N;
  if (total <= 0)
    return (int)cudaSuccess;
  env_reset_kernel<<<blocks_for(total), kThreads, 0, (cudaStream_t)stream>>>(env_id, P, N, seed,
                                                                             states, obs);
  return (int)cudaGetLastError();
}

extern "C" int blpo_cuda_env_step(int env_id, int P, int N, uint64_t seed, blpo_env_state *states,
                                  const float *actions, float *obs, float *reward, float *done,
                                  float *ep_ret, int *ep_len, float *final_obs, float *trunc,
                                  void *stream) {
  const long long total = (long long)P * N;
  if (total <= 0)
    return (int)cudaSuccess;
  env_step_kernel<<<blocks_for(total), kThreads, 0, (cudaStream_t)stream>>>(
      env_id, P, N, seed, states, actions, obs, reward, done, ep_ret, ep_len, final_obs, trunc);
  return (int)cudaGetLastError();
}
