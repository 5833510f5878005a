/* The register tile and the shared-memory layout of the fused kernels'
 * layer passes (include/blpo/ppo_blocks.h).
 *
 * Tile: a thread computes BLPO_MBF_TR rows x BLPO_MBF_TC columns of a
 * layer's output. Loads: BLPO_MBF_VEC consecutive floats of a row of
 * activations (or of gradients) per shared-memory load, 4 (one
 * ld.shared.v4 on the device) or 1 (scalar loads). Both are overridable at
 * build time (CMake BLPO_MBF_TILE=RxC, with a trailing "s" for scalar
 * loads), so that a variant can be built and timed beside the default
 * (tools/gpu_bundle.sh, bench/NOTES.md); every variant gives the same bits,
 * since each output is the same sum in the same order. Part of the CUDA
 * plugin's seam signature (cuda_plugin.h), so that a program never loads a
 * plugin of another variant and reports that variant as its own. */
#ifndef BLPO_MBF_TILE_H
#define BLPO_MBF_TILE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "hd.h"
#include "tc_tile.h"

#ifndef BLPO_MBF_TR
#define BLPO_MBF_TR 4
#endif
#ifndef BLPO_MBF_TC
#define BLPO_MBF_TC 2
#endif
#ifndef BLPO_MBF_VEC
#define BLPO_MBF_VEC 4
#endif
#if BLPO_MBF_VEC != 1 && BLPO_MBF_VEC != 4
#error "BLPO_MBF_VEC: 1 (scalar loads) or 4 (float4 loads)"
#endif

/* Whether blpo_mbf_backward's dW tiles take adjacent inputs, read by
 * vector loads (ppo_blocks.h): with float4 loads and a tile of a multiple
 * of 4 rows (inputs, there). */
#define BLPO_MBF_DW_ADJ (BLPO_MBF_VEC > 1 && BLPO_MBF_TR % BLPO_MBF_VEC == 0)

/* The row pitch, in floats, of a (rows, w) array of the layer passes
 * (layer inputs and outputs, gradients). Scalar loads: w + 1 (odd for the
 * even widths of hidden layers), so that loads down a column fall in
 * distinct banks. Float4 loads: a multiple of 4, so that every row starts
 * 16-byte aligned, and 4 mod 8, so that two row tiles of a warp (4 rows
 * apart, where a layer of 32 outputs or a 4 x 4 tile puts two on a warp)
 * are 16 banks apart, and consecutive rows 4 banks apart; a multiple of 8
 * would put rows 4 apart on the same banks. A warp over more than two row
 * tiles (a head of 1-2 outputs, 8 rows' tiles) then has 2-4-way conflicts
 * where w + 1 had none, as many cycles as its scalar loads took. */
BLPO_HD int blpo_mbf_pitch(int w) {
#if BLPO_MBF_VEC == 4
  const int p = (w + 3) & ~3;
  return p % 8 == 0 ? p + 4 : p;
#else
  return w + 1;
#endif
}

/* The row pitch of an array of rows x K directions (the tangents R{h} and
 * R{g} of hvp_rows_blocks.h and tangent_blocks.h), read by scalar loads
 * (blpo_mbf_tile_hw1, _gw1) in every variant: w + 1, odd for even w. Their tiles' rows are
 * K rows apart, so that a warp over a narrow layer spans rows of several
 * directions, which an aligned pitch would put in a few banks; and these
 * arrays are most of the Hessian rows' shared memory, which at K = 5 and
 * the 64-64 critic fits an H100's 227 KiB at 32 rows per chunk only with
 * the odd pitch. */
BLPO_HD int blpo_mbf_pitch_k(int w) { return w + 1; }

/* The alignment, in floats, of the arrays blpo_mbf_place places: with
 * float4 loads 8 (32 bytes), which the tensor-core tiles' WMMA loads need
 * (include/blpo/tc_tile.h; a pitch of 4 mod 8 then keeps every 16-row tile
 * 32-byte aligned too); with scalar loads 1 (no tensor-core tiles there). */
#define BLPO_MBF_ALIGN (BLPO_MBF_VEC == 4 ? BLPO_TC_ALIGN : 1)

/* Places a (rows, pitch) array at *off, aligned to BLPO_MBF_ALIGN floats,
 * and moves *off past it; returns its offset. Offsets count floats from the
 * start of the block's shared memory, whose base is 32-byte aligned (the
 * kernels' __align__(32)). */
static inline int blpo_mbf_align(int off) {
  return (off + BLPO_MBF_ALIGN - 1) / BLPO_MBF_ALIGN * BLPO_MBF_ALIGN;
}
static inline int blpo_mbf_place(int *off, int rows, int pitch) {
  const int o = blpo_mbf_align(*off);
  *off = o + rows * pitch;
  return o;
}

/* BLPO_MBF_VEC consecutive floats from p, which is BLPO_MBF_VEC-float
 * aligned. On the host the alignment is checked (the block programs' CPU
 * runs then catch a layout the device's vector load would fault on). */
BLPO_HD void blpo_mbf_load(const float *p, float v[BLPO_MBF_VEC]) {
#if BLPO_MBF_VEC == 4 && defined(__CUDA_ARCH__)
  const float4 q = *(const float4 *)p;
  v[0] = q.x, v[1] = q.y, v[2] = q.z, v[3] = q.w;
#else
#if BLPO_MBF_VEC == 4
  if (((uintptr_t)p & 15u) != 0) {
    fprintf(stderr, "blpo_mbf_load: %p is not 16-byte aligned (a float4 load faults there)\n",
            (const void *)p);
    abort();
  }
#endif
  for (int u = 0; u < BLPO_MBF_VEC; u++)
    v[u] = p[u];
#endif
}

#endif
