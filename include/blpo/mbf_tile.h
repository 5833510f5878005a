/* The register tile of the fused kernels' layer passes
 * (include/blpo/ppo_blocks.h): a thread computes BLPO_MBF_TR rows x
 * BLPO_MBF_TC columns of a layer's output. Overridable at build time (CMake
 * BLPO_MBF_TILE=RxC), so that a variant can be built and timed beside the
 * default (tools/gpu_bundle.sh, bench/NOTES.md); every tile gives the same
 * bits. Part of the CUDA plugin's seam signature (cuda_plugin.h), so that a
 * program never loads a plugin of another tile and reports that tile as
 * its own. */
#ifndef BLPO_MBF_TILE_H
#define BLPO_MBF_TILE_H

#ifndef BLPO_MBF_TR
#define BLPO_MBF_TR 4
#endif
#ifndef BLPO_MBF_TC
#define BLPO_MBF_TC 2
#endif

#endif
