/* Tensor-core (TF32) tiles for the fused kernels' layer passes
 * (include/blpo/ppo_blocks.h), the opt-in `run.precision: tf32`.
 *
 * A warp computes a 16 x 16 tile of a layer's product, C = A B over K
 * inputs, with the inputs rounded to TF32 (10-bit mantissa, as
 * cvt.rna.tf32.f32: to nearest, ties away from zero) and the products
 * summed in fp32. On the device (sm_80 and later) that is WMMA's
 * m16n16k8 TF32 fragments, loaded from and stored to shared memory. On
 * the host, and on devices before sm_80, it is an emulation: lane 0
 * computes the whole tile, each sum in input order, and the other lanes
 * sit it out. The emulation rounds the inputs exactly as the device does,
 * so the CPU tests check a tile's indexing, layouts and edges against a
 * double-precision product of the rounded inputs; what they cannot check
 * is the tensor cores' own order of summation inside a step of 8, which
 * differs from the emulation's by a few fp32 roundings (the `--cuda` tests
 * compare with a tolerance for that).
 *
 * Why WMMA and not hand-placed mma.sync fragments: WMMA's loads take a
 * pointer, a leading dimension and a layout, so no per-lane fragment map is
 * written here that only a GPU could check. Its requirements, checked on
 * the host (abort) so that the CPU tests catch a layout the device would
 * fault on: pointers 32-byte aligned, leading dimensions multiples of 4
 * floats, K a multiple of 8. */
#ifndef BLPO_TC_TILE_H
#define BLPO_TC_TILE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hd.h"

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
#include <mma.h>
#define BLPO_TC_DEVICE 1 /* the tiles run on the tensor cores */
#else
#define BLPO_TC_DEVICE 0 /* the tiles are emulated by lane 0 */
#endif

#define BLPO_TC_N 16    /* a tile: 16 rows x 16 columns */
#define BLPO_TC_K 8     /* inputs per step */
#define BLPO_TC_ALIGN 8 /* floats: the 32 bytes WMMA's pointers need */

/* The lanes that share a tile's epilogue: a lane takes elements lane,
 * lane + BLPO_TC_STRIDE, ... of the tile's 256 (the emulation's lane 0
 * takes them all). */
#define BLPO_TC_STRIDE (BLPO_TC_DEVICE ? 32 : 1)

/* x rounded to TF32: to nearest, ties away from zero (cvt.rna.tf32.f32);
 * infinities and NaN unchanged. */
BLPO_HD float blpo_tf32_round(float x) {
#if BLPO_TC_DEVICE
  return nvcuda::wmma::__float_to_tf32(x);
#else
  uint32_t u;
  memcpy(&u, &x, sizeof u);
  if ((u & 0x7f800000u) != 0x7f800000u)
    u = (u + 0x1000u) & 0xffffe000u; /* half of the 13 dropped bits' unit, then drop them */
  memcpy(&x, &u, sizeof u);
  return x;
#endif
}

#if !BLPO_TC_DEVICE
static inline void blpo_tc_check(const void *p, int ld, int K) {
  if (((uintptr_t)p & 31u) != 0 || ld % 4 != 0 || K % BLPO_TC_K != 0) {
    fprintf(stderr,
            "blpo_tc_tile: %p, leading dimension %d, K %d: WMMA needs 32-byte aligned "
            "pointers, leading dimensions a multiple of 4 and K a multiple of 8\n",
            p, ld, K);
    abort();
  }
}
#endif

/* The operands' layouts (blpo_tc_tile's `cols`, or-ed): a column-major,
 * element (m, k) at a[k * lda + m], else row-major, at a[m * lda + k]; b
 * column-major, element (k, n) at b[n * ldb + k], else row-major, at
 * b[k * ldb + n]. */
#define BLPO_TC_B_COL 1
#define BLPO_TC_A_COL 2

#if BLPO_TC_DEVICE
/* K / 8 steps of one A load, one B load and one mma_sync each; sa and sb
 * are how far a step of 8 inputs moves the pointers (8 along a row-major A
 * or a column-major B, 8 leading dimensions along the others). */
template <typename LA, typename LB>
__device__ __forceinline__ void blpo_tc_steps(const float *a, unsigned lda, size_t sa,
                                              const float *b, unsigned ldb, size_t sb, int K,
                                              float *c, unsigned ldc) {
  using namespace nvcuda;
  wmma::fragment<wmma::accumulator, 16, 16, 8, float> acc;
  wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, LA> fa;
  wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, LB> fb;
  wmma::fill_fragment(acc, 0.0f);
  /* not unrolled: each step's mma waits for the last one's anyway, the
   * block's other warps hide the loads, and unrolled copies of the loads
   * took the nested critic step (cvf_rows_kernel, 128 registers at its 2
   * blocks per SM) into spills once the dW tiles came in (2026-12-07) */
#pragma unroll 1
  for (int k = 0; k < K; k += BLPO_TC_K) {
    wmma::load_matrix_sync(fa, a + (size_t)(k / BLPO_TC_K) * sa, lda);
    wmma::load_matrix_sync(fb, b + (size_t)(k / BLPO_TC_K) * sb, ldb);
    for (int q = 0; q < fa.num_elements; q++)
      fa.x[q] = wmma::__float_to_tf32(fa.x[q]);
    for (int q = 0; q < fb.num_elements; q++)
      fb.x[q] = wmma::__float_to_tf32(fb.x[q]);
    wmma::mma_sync(acc, fa, fb, acc);
  }
  wmma::store_matrix_sync(c, acc, ldc, wmma::mem_row_major);
}
#endif

/* c (16 x 16, row-major, leading dimension ldc) = a (16 x K, lda) b (K x
 * 16, ldb), TF32 inputs and fp32 sums, the operands' layouts `cols`
 * (BLPO_TC_A_COL | BLPO_TC_B_COL). The 32 lanes of a warp call it
 * together, with the same arguments; returns whether this lane takes part
 * in the tile's epilogue (after blpo_tc_sync), all lanes on the device,
 * lane 0 in the emulation. */
BLPO_HD int blpo_tc_tile(const float *a, int lda, const float *b, int ldb, int cols, int K,
                         float *c, int ldc, int lane) {
  const int a_col = (cols & BLPO_TC_A_COL) != 0, b_col = (cols & BLPO_TC_B_COL) != 0;
#if BLPO_TC_DEVICE
  using namespace nvcuda;
  (void)lane;
  const size_t sa = a_col ? (size_t)BLPO_TC_K * lda : BLPO_TC_K;
  const size_t sb = b_col ? BLPO_TC_K : (size_t)BLPO_TC_K * ldb;
  const unsigned ua = (unsigned)lda, ub = (unsigned)ldb, uc = (unsigned)ldc;
  /* WMMA's operations are .sync.aligned: the warp's lanes converged first
   * (a caller may come from a loop whose lanes took other branches) */
  __syncwarp();
  if (a_col && b_col)
    blpo_tc_steps<wmma::col_major, wmma::col_major>(a, ua, sa, b, ub, sb, K, c, uc);
  else if (a_col)
    blpo_tc_steps<wmma::col_major, wmma::row_major>(a, ua, sa, b, ub, sb, K, c, uc);
  else if (b_col)
    blpo_tc_steps<wmma::row_major, wmma::col_major>(a, ua, sa, b, ub, sb, K, c, uc);
  else
    blpo_tc_steps<wmma::row_major, wmma::row_major>(a, ua, sa, b, ub, sb, K, c, uc);
  return 1;
#else
  if (lane != 0)
    return 0;
  blpo_tc_check(a, lda, K);
  blpo_tc_check(b, ldb, K);
  blpo_tc_check(c, ldc, K);
  for (int r = 0; r < BLPO_TC_N; r++)
    for (int n = 0; n < BLPO_TC_N; n++) {
      float s = 0.0f;
      for (int k = 0; k < K; k++) /* TF32 products are exact in fp32 */
        s += blpo_tf32_round(a_col ? a[k * lda + r] : a[r * lda + k]) *
             blpo_tf32_round(b_col ? b[n * ldb + k] : b[k * ldb + n]);
      c[r * ldc + n] = s;
    }
  return 1;
#endif
}

/* Between a tile's store and its epilogue: the lanes read what other lanes
 * stored. */
BLPO_HD void blpo_tc_sync(void) {
#if BLPO_TC_DEVICE
  __syncwarp();
#endif
}

#endif
