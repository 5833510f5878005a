/* The CUDA backend as a plugin (libblpo-cuda.so), loaded when a run asks for
 * a GPU (src/cuda_loader.c), so that a CPU run neither maps the CUDA
 * libraries (about 0.08 s and 260 MB of address space per process here) nor
 * needs them installed: one blpo-gpu binary runs on a login node without the
 * CUDA runtime and on the GPU node beside it.
 *
 * The plugin exports one function, blpo_cuda_plugin_get, returning this
 * table. abi, backend_size, timer_slots and seam_signature must match the
 * loading program's, or the plugin comes from another build of blpo-gpu and
 * is refused. */
#ifndef BLPO_CUDA_PLUGIN_H
#define BLPO_CUDA_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "mbf_tile.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped whenever blpo_backend or this table changes meaning (2: the phase
 * timer ops and timer_slots; 3: ppo_minibatch; 4: ppo_minibatch_prepare;
 * 5: critic_step, critic_step_prepare; 6: their _work ops in place of
 * _prepare; 7: set_fused_solve; 8: gather_rows_many, mlp_forward_many,
 * ppo_minibatch's place in its epoch; 9: seam_signature; 10: hypergrad_step,
 * blpo_mlp_grad_pass.add_to_prev, mlp_tangent_many, sketch_indices' draws;
 * 11: set_pdl; 12: episode_summary; 13: critic_step's steps,
 * set_grid_sync). */
#define BLPO_CUDA_PLUGIN_ABI 13
#define BLPO_CUDA_PLUGIN_FILE "libblpo-cuda.so"
#define BLPO_CUDA_PLUGIN_ENTRY "blpo_cuda_plugin_get"

/* The sizes of the structs that cross the seam by pointer or by value, and
 * of the constants that size their arrays, folded into one number (FNV-1a):
 * a plugin whose build differs in any of them (another BLPO_MAX_LAYERS, a
 * stats slot added, a field added to an op's arguments without an ABI bump)
 * has another signature. The fused kernels' register tile and load width
 * are in it too (mbf_tile.h): a build variant's plugin is refused by a
 * default program. */
static inline uint64_t blpo_cuda_plugin_seam_signature(void) {
  const uint64_t v[] = {sizeof(blpo_backend),
                        sizeof(blpo_dims),
                        sizeof(blpo_mlp),
                        sizeof(blpo_env_state),
                        sizeof(blpo_ppo_minibatch),
                        sizeof(blpo_critic_step),
                        sizeof(blpo_gather),
                        sizeof(blpo_mlp_pass),
                        sizeof(blpo_mlp_grad_pass),
                        sizeof(blpo_mlp_tangent_pass),
                        sizeof(blpo_counter),
                        sizeof(blpo_adam_sched),
                        sizeof(blpo_ppo_params),
                        sizeof(blpo_episode_summary),
                        BLPO_TIMER_SLOTS,
                        BLPO_STAT_COUNT,
                        BLPO_MBF_TR,
                        BLPO_MBF_TC,
                        BLPO_MBF_VEC};
  uint64_t h = 14695981039346656037ull;
  for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
    h ^= v[i];
    h *= 1099511628211ull;
  }
  return h;
}

typedef struct {
  int abi;                 /* BLPO_CUDA_PLUGIN_ABI of the plugin's build */
  size_t backend_size;     /* sizeof(blpo_backend) in the plugin's build */
  int timer_slots;         /* BLPO_TIMER_SLOTS of the plugin's build */
  uint64_t seam_signature; /* blpo_cuda_plugin_seam_signature() in the plugin's build */
  int (*device_count)(char *why, size_t why_len);
  void (*device_name)(char *out, size_t len);
  blpo_backend *(*backend_create)(char *why, size_t why_len);
} blpo_cuda_plugin;

typedef const blpo_cuda_plugin *(*blpo_cuda_plugin_get_fn)(void);

/* Where the loader looked and why it failed ("" after a successful load, or
 * before the first attempt). */
const char *blpo_cuda_plugin_status(void);

#ifdef __cplusplus
}
#endif

#endif
