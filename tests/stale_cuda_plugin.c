/* A CUDA plugin as another build of blpo-gpu would have made it: the entry
 * point is there, the ABI number is not this build's (test_cuda_plugin
 * stale); built with BLPO_TEST_SAME_ABI, the ABI number is this build's but
 * the seam signature is not, as a build with other struct sizes and no ABI
 * bump would make it (test_cuda_plugin mismatched). It also leaves a trace: with
 * BLPO_TEST_PLUGIN_TRACE set, its entry point creates that file, so that a CLI test can tell
 * whether a run loaded the plugin at all (tests/cuda_plugin_cli.sh). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>

#include "blpo/cuda_plugin.h"

const blpo_cuda_plugin *blpo_cuda_plugin_get(void);

const blpo_cuda_plugin *blpo_cuda_plugin_get(void) {
  static blpo_cuda_plugin table; /* C: no call in a static initialiser */
  table = (blpo_cuda_plugin){BLPO_CUDA_PLUGIN_ABI + 1000, sizeof(blpo_backend), BLPO_TIMER_SLOTS,
                             blpo_cuda_plugin_seam_signature()};
#ifdef BLPO_TEST_SAME_ABI
  table.abi = BLPO_CUDA_PLUGIN_ABI;
  table.seam_signature ^= 0x5eed;
#endif
  const char *trace = getenv("BLPO_TEST_PLUGIN_TRACE");
  if (trace && *trace) {
    FILE *f = fopen(trace, "w");
    if (f)
      fclose(f);
  }
  return &table;
}
