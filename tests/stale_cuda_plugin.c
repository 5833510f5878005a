/* A CUDA plugin as another build of blpo-gpu would have made it: the entry
 * point is there, the ABI number is not this build's (test_cuda_plugin stale). */
#include "blpo/cuda_plugin.h"

const blpo_cuda_plugin *blpo_cuda_plugin_get(void);

const blpo_cuda_plugin *blpo_cuda_plugin_get(void) {
  static const blpo_cuda_plugin table = {BLPO_CUDA_PLUGIN_ABI + 1000, sizeof(blpo_backend), 0, 0,
                                         0};
  return &table;
}
