// The plugin's one exported symbol (include/blpo/cuda_plugin.h): the table of
// the CUDA backend's entry points. Built into libblpo-cuda.so only, with a
// version script that keeps every other symbol local to the plugin.
#include "blpo/cuda_device.h"
#include "blpo/cuda_plugin.h"

extern "C" const blpo_cuda_plugin *blpo_cuda_plugin_get(void) {
  static const blpo_cuda_plugin table = {BLPO_CUDA_PLUGIN_ABI,    sizeof(blpo_backend),
                                         BLPO_TIMER_SLOTS,        blpo_cuda_plugin_seam_signature(),
                                         blpo_cuda_device_count,  blpo_cuda_device_name,
                                         blpo_backend_cuda_create};
  return &table;
}
