/* The TF32 tensor-core tile of the fused kernels' layer passes
 * (include/blpo/tc_tile.h), as the host and the CPU tests run it (lane 0
 * emulating the warp):
 *   rounding  blpo_tf32_round against values worked out by hand (ties away
 *             from zero, the carry into the exponent, infinities, NaN) and,
 *             on random values, within half a TF32 unit and idempotent;
 *   tile      c = a b for the four layouts of a and b, K from 8 to 136, leading
 *             dimensions of 4 mod 8 and 0 mod 8, against a double product
 *             of the rounded inputs: to 1e-6 of the sum of the products'
 *             magnitudes; operands that rounding changes give the rounded
 *             sum exactly; the tile's 16 x 16 written and nothing around it;
 *             lanes 1-31 write nothing and report no epilogue.
 * What only a GPU can check is WMMA itself (its fragments and its order of
 * summation): tests/test_tc_tile_cuda.cu (gpu_tc_tile) holds the device's
 * tile and rounding to this emulation, and the gpu tests of the block
 * programs compare the whole passes with a tolerance. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blpo/tc_tile.h"
#include "test_util.h"

static void check_rounding(void) {
  const float ulp = ldexpf(1.0f, -10); /* TF32's unit at 1 */
  struct {
    float in, want;
    const char *what;
  } cases[] = {
      {1.0f, 1.0f, "1 stays"},
      {1.0f + ldexpf(1.0f, -11), 1.0f + ulp, "a tie goes away from zero"},
      {-(1.0f + ldexpf(1.0f, -11)), -(1.0f + ulp), "a negative tie goes away from zero"},
      {1.0f + ldexpf(1.0f, -11) - ldexpf(1.0f, -23), 1.0f, "below the tie goes down"},
      {1.0f + 3 * ldexpf(1.0f, -11), 1.0f + 2 * ulp, "an odd tie goes away too (not to even)"},
      {2.0f - ldexpf(1.0f, -23), 2.0f, "the carry into the exponent"},
      {0.0f, 0.0f, "zero"},
      {ldexpf(1.0f, -130), ldexpf(1.0f, -130), "a subnormal in TF32's 10 bits stays"},
      {ldexpf(1.0f, -140), 0.0f, "a subnormal below them goes"},
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++)
    CHECK(test_bits_of(blpo_tf32_round(cases[k].in)) == test_bits_of(cases[k].want),
          "%s: %a -> %a, want %a", cases[k].what, (double)cases[k].in,
          (double)blpo_tf32_round(cases[k].in), (double)cases[k].want);
  CHECK(test_bits_of(blpo_tf32_round(-0.0f)) == test_bits_of(-0.0f), "-0 keeps its sign");
  CHECK(isinf(blpo_tf32_round(INFINITY)) && blpo_tf32_round(-INFINITY) < 0, "infinities stay");
  CHECK(isnan(blpo_tf32_round(NAN)) && isnan(blpo_tf32_round(test_from_bits(0x7fffffffu))),
        "NaN stays NaN (the payload's carry would have made it -0)");
  int bad = 0;
  for (int i = 0; i < 100000; i++) {
    const float x = (float)(nrand() * pow(10.0, 6 * urand() - 3));
    const float r = blpo_tf32_round(x);
    if ((test_bits_of(r) & 0x1fffu) != 0 || !(fabs((double)r - x) <= ldexp(fabs(x), -11)) ||
        blpo_tf32_round(r) != r)
      bad++;
  }
  CHECK(bad == 0,
        "%d of 100000 random values: not 10-bit, farther than half a unit, or moved "
        "by a second rounding",
        bad);
}

static const char *layout_name(int cols) {
  static const char *names[] = {"a, b row-major", "b column-major", "a column-major",
                                "a, b column-major"};
  return names[cols & 3];
}

/* One tile: a (16 x K or its transpose, lda), b (K x 16 or its transpose,
 * ldb), layouts `cols`; c (16 x 16 inside a poisoned (20, ldc) array, two
 * rows of margin above and below, so that c stays 32-byte aligned). */
static void check_tile(int K, int lda, int ldb, int cols, int ldc) {
  const int a_col = (cols & BLPO_TC_A_COL) != 0, b_col = (cols & BLPO_TC_B_COL) != 0;
  const int arows = a_col ? K : 16, brows = b_col ? 16 : K; /* the operands' stored rows */
  float *a = test_alloc_shared((size_t)arows * lda), *b = test_alloc_shared((size_t)brows * ldb);
  float *cm = test_alloc_shared((size_t)20 * ldc), *c = cm + 2 * ldc;
  for (int i = 0; i < arows * lda; i++)
    a[i] = (float)nrand();
  for (int i = 0; i < brows * ldb; i++)
    b[i] = (float)nrand();
  test_poison_nan(cm, (size_t)20 * ldc, 7);
  int quiet = 1;
  for (int lane = 1; lane < 32; lane++)
    quiet &= !blpo_tc_tile(a, lda, b, ldb, cols, K, c, ldc, lane);
  for (int i = 0; i < 20 * ldc; i++)
    quiet &= isnan(cm[i]);
  CHECK(quiet, "K %d: lanes 1-31 took part or wrote", K);
  CHECK(blpo_tc_tile(a, lda, b, ldb, cols, K, c, ldc, 0), "K %d: lane 0 takes the epilogue", K);
  int bad = 0, margin = 0;
  double worst = 0.0;
  for (int r = 0; r < 16; r++)
    for (int n = 0; n < 16; n++) {
      double s = 0.0, mag = 0.0;
      for (int k = 0; k < K; k++) {
        const double t = (double)blpo_tf32_round(a_col ? a[k * lda + r] : a[r * lda + k]) *
                         (double)blpo_tf32_round(b_col ? b[n * ldb + k] : b[k * ldb + n]);
        s += t, mag += fabs(t);
      }
      const double e = fabs((double)c[r * ldc + n] - s) / mag;
      worst = e > worst ? e : worst;
      if (!(e <= 1e-6))
        bad++;
    }
  for (int i = 0; i < 20 * ldc; i++) {
    const int r = i / ldc - 2, n = i % ldc;
    if ((r < 0 || r >= 16 || n >= 16) && !isnan(cm[i]))
      margin++;
  }
  CHECK(bad == 0 && margin == 0,
        "K %d, lda %d, ldb %d (%s), ldc %d: %d of 256 off (worst %.3g of the terms), %d written "
        "outside the tile",
        K, lda, ldb, layout_name(cols), ldc, bad, worst, margin);
  free(a);
  free(b);
  free(cm);
}

/* Operands that TF32 changes: a = 1 + 2^-12 (rounds to 1) times b = 1 + 2^-12
 * gives exactly K, where fp32 would give K (1 + 2^-11) rounded. */
static void check_rounded_sum(int cols) {
  enum { K = 24, LD = 28 };
  float *a = test_alloc_shared(K * LD), *b = test_alloc_shared(K * LD),
        *c = test_alloc_shared(16 * 20);
  const float v = 1.0f + ldexpf(1.0f, -12);
  for (int i = 0; i < K * LD; i++)
    a[i] = v;
  for (int i = 0; i < K * LD; i++)
    b[i] = v;
  blpo_tc_tile(a, LD, b, LD, cols, K, c, 20, 0);
  int bad = 0;
  for (int r = 0; r < 16; r++)
    for (int n = 0; n < 16; n++)
      bad += c[r * 20 + n] != (float)K;
  CHECK(bad == 0, "%s: %d of 256 sums are not the rounded operands' %d (e.g. %.9g)",
        layout_name(cols), bad, K, (double)c[0]);
  free(a);
  free(b);
  free(c);
}

int main(void) {
  check_rounding();
  const int Ks[] = {8, 16, 64, 136};
  for (size_t k = 0; k < sizeof Ks / sizeof Ks[0]; k++)
    for (int cols = 0; cols < 4; cols++) {
      const int a_col = (cols & BLPO_TC_A_COL) != 0, b_col = (cols & BLPO_TC_B_COL) != 0;
      const int K = Ks[k], p4 = (K + 3) / 4 * 4 % 8 == 0 ? K + 4 : K; /* 4 mod 8, as P(w) */
      /* the layer passes' pitches: a row-major A (rows, K) or a column-major
       * one (the dW tiles' g, K rows of pitch P(dout) = 68 for 64 wide) */
      check_tile(K, a_col ? 68 : p4, b_col ? p4 : 20, cols, 20);
      check_tile(K, a_col ? 24 : K + 8, b_col ? K + 16 : 24, cols, 16); /* 0 mod 8 */
    }
  for (int cols = 0; cols < 4; cols++)
    check_rounded_sum(cols);
  return test_summary("test_tc_tile");
}
