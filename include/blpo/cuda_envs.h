/* CUDA launchers for the env kernels (kernels/env_step.cu): one thread per
 * env over a population of P agents x N envs, with the same reset streams and
 * outputs as the CPU backend's env_reset/env_step (see backend.h). All
 * pointers are device memory; `stream` is a cudaStream_t (NULL: default). */
#ifndef BLPO_CUDA_ENVS_H
#define BLPO_CUDA_ENVS_H

#include <stdint.h>

#include "env.h"

#ifdef __cplusplus
extern "C" {
#endif

/* states (P,N) start fresh episodes (reset counter 0); obs (P,N,O) their
 * first observations. Agent p's env i draws from
 * blpo_make_key(seed + p, BLPO_STREAM_ENV_RESET, i). Returns a cudaError_t
 * value (0 on success) from the launch. */
int blpo_cuda_env_reset(int env_id, int P, int N, uint64_t seed, blpo_env_state *states, float *obs,
                        void *stream);

/* One step of every env with actions (P,N,A), auto-resetting. Writes obs
 * (P,N,O) after any reset, reward (P,N), done (P,N) = terminated or
 * truncated, ep_ret (P,N) (NaN unless an episode ended), and, where not NULL,
 * ep_len (P,N) (0 unless an episode ended), final_obs (P,N,O) the obs before
 * any reset and trunc (P,N) = 1 where the episode was truncated. */
int blpo_cuda_env_step(int env_id, int P, int N, uint64_t seed, blpo_env_state *states,
                       const float *actions, float *obs, float *reward, float *done, float *ep_ret,
                       int *ep_len, float *final_obs, float *trunc, void *stream);

#ifdef __cplusplus
}
#endif

#endif
