/* The CUDA backend's fused MLP passes for networks that fit in shared memory
 * (kernels/mlp_cuda.cu) as their block programs (include/blpo/ppo_blocks.h),
 * run on the host thread by thread with shared memory poisoned per block,
 * against the CPU backend's mlp_forward and mlp_backward:
 *   forward   blpo_fwd with 32 and 8 rows per block: every activation of
 *             every layer to 1e-5 (1 + |cpu|) per value;
 *   backward  blpo_bwd_rows (and blpo_bwd_reduce where there are several
 *             blocks) with 64, 32, 16 and 8 rows per block, one block per
 *             agent included: the MLP part of the gradient to 1e-4 of its
 *             norm, per agent.
 * Outputs are poisoned with NaN first, so that one left unwritten fails.
 * Networks: tanh and relu, one and two hidden layers of uneven widths, a
 * log_std extra part (not the passes'), 1 to 3 agents, 1 to 4096 rows. The
 * two sides sum in other orders; a wrong index is off by O(1). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blpo/backend.h"
#include "blpo/mlp.h"
#include "blpo/ppo_blocks.h"
#include "emu_order.h"
#include "test_util.h"

typedef struct {
  const char *name;
  int in, nh, hidden[2], out, act, extra, P, n;
} fwd_case;

/* The tolerances of run.precision tf32 (the layers blpo_mbf_tc_layer takes
 * on TF32 tiles; include/blpo/tc_tile.h): a product of 10-bit mantissas
 * is off by about 2^-11 of each term, so an activation by about 1e-3 of
 * the sum of its terms' magnitudes, through the layers; the bounds are
 * 4-6 times the largest seen over these cases (5.2e-3 of 1 + |cpu| for an
 * activation, 3.3e-4 of the norm for a gradient; 2026-12-07). A tile's
 * indexing is checked exactly by test_tc_tile; these bounds catch a tile
 * or epilogue in the wrong place (off by O(1)). */
#define TF32_ACT_TOL 2e-2f
#define TF32_GRAD_TOL 2e-3

/* The backward block programs (and reduce) with Rb rows per block, tf32 as
 * blpo_bwd_layout_init, into gb (P, Np), from the CPU's activations acts;
 * returns 0 where blpo_bwd_choose would not take the layout (the scratch
 * cannot hold the partials), else 1, the layout in *lay. */
static int run_backward(const blpo_mlp *m, const fwd_case *c, int Rb, int tf32, const float *params,
                        const float *x, const float *acts, const float *dy, float *gb,
                        blpo_bwd_layout *lay) {
  const size_t nm = m->num_mlp_params;
  blpo_bwd_args ba;
  int sb = blpo_bwd_layout_init(&ba.lay, m, c->n, Rb, tf32);
  *lay = ba.lay;
  if (!ba.lay.direct && (size_t)ba.lay.blocks * nm > 2 * (size_t)c->n * m->max_width)
    return 0;
  float *parts = test_alloc_floats((size_t)c->P * ba.lay.blocks * nm),
        *sm2 = test_alloc_shared((size_t)sb);
  test_poison_nan(parts, (size_t)c->P * ba.lay.blocks * nm, 1);
  test_poison_nan(gb, (size_t)c->P * m->num_params, 1);
  ba.params = params, ba.x = x, ba.acts = acts, ba.dy = dy, ba.grad = gb, ba.parts = parts;
  EMU_FOR (p, c->P)
    EMU_FOR (b, ba.lay.blocks) {
      test_poison_nan(sm2, (size_t)sb, 1);
      for (int ph = 0; ph < blpo_bwd_rows_phases(&ba.lay); ph++)
        EMU_FOR (t, BLPO_MBF_THREADS)
          blpo_bwd_rows(&ba, p, b, t, ph, sm2);
    }
  if (!ba.lay.direct)
    EMU_FOR (p, c->P)
      EMU_FOR (k, (int)((nm + BLPO_MBF_THREADS - 1) / BLPO_MBF_THREADS))
        EMU_FOR (t, BLPO_MBF_THREADS)
          blpo_bwd_reduce(&ba, p, k, t);
  free(parts);
  free(sm2);
  return 1;
}

static void check_case(blpo_backend *be, const fwd_case *c, int R, int tf32) {
  blpo_mlp m;
  blpo_mlp_init_shape(&m, c->in, c->hidden, c->nh, c->out, c->act, c->extra);
  size_t np = (size_t)c->P * m.num_params, nx = (size_t)c->P * c->n * c->in;
  size_t na = (size_t)c->P * c->n * m.act_floats_per_row;
  float *params = test_alloc_floats(np), *x = test_alloc_floats(nx), *cpu = test_alloc_floats(na),
        *blk = test_alloc_floats(na);
  for (size_t i = 0; i < np; i++)
    params[i] = (float)(0.4 * nrand());
  for (size_t i = 0; i < nx; i++)
    x[i] = (float)nrand();
  test_poison_nan(cpu, na, 1);
  test_poison_nan(blk, na, 1);
  be->mlp_forward(be, &m, c->P, params, x, c->n, cpu);
  blpo_fwd_args a;
  int sf = blpo_fwd_layout_init(&a.lay, &m, c->n, R, tf32);
  int tc = 0;
  for (int l = 0; l < m.num_layers; l++)
    tc += a.lay.t.tc[l];
  CHECK(tc == 0 || tf32, "%s: TF32 tiles without tf32", c->name);
  const float atol = tc ? TF32_ACT_TOL : 1e-5f;
  a.params = params, a.x = x, a.acts = blk;
  float *sm = test_alloc_shared((size_t)sf);
  EMU_FOR (p, c->P)
    EMU_FOR (b, a.lay.blocks) {
      test_poison_nan(sm, (size_t)sf, 1);
      for (int ph = 0; ph < blpo_fwd_phases(&a.lay); ph++)
        EMU_FOR (t, BLPO_MBF_THREADS)
          blpo_fwd(&a, p, b, t, ph, sm);
    }
  char what[160];
  snprintf(what, sizeof what, "%s, forward, %d rows per block%s", c->name, R,
           tc ? ", TF32 tiles" : "");
  emu_same(what, blk, na * sizeof(float));
  size_t bad = 0, first = 0;
  float worst = 0.0f;
  for (size_t i = 0; i < na; i++) {
    const float e = fabsf(blk[i] - cpu[i]) / (1.0f + fabsf(cpu[i]));
    worst = e > worst ? e : worst;
    if (!(e <= atol) && bad++ == 0)
      first = i;
  }
  CHECK(bad == 0, "%s: %zu of %zu activations differ (first [%zu]: %g, cpu %g)", what, bad, na,
        first, (double)blk[first], (double)cpu[first]);
  if (tc && getenv("BLPO_TEST_VERBOSE"))
    printf("%s: largest activation error %.3g of 1 + |cpu|\n", what, (double)worst);

  /* backward from the CPU's activations, with 2R rows per block too (the
   * backward layout goes to 64) */
  size_t ny = (size_t)c->P * c->n * c->out, nm = m.num_mlp_params;
  float *dy = test_alloc_floats(ny), *gc = test_alloc_floats(np), *gb = test_alloc_floats(np);
  float *scratch = test_alloc_floats((size_t)c->P * 2 * c->n * m.max_width);
  for (size_t i = 0; i < ny; i++)
    dy[i] = (float)nrand();
  test_poison_nan(gc, np, 1);
  test_poison_nan(gb, np, 1);
  be->mlp_backward(be, &m, c->P, params, x, c->n, cpu, dy, gc, scratch);
  float *g0 = test_alloc_floats(np);
  for (int pass = 0; pass < 2; pass++) {
    int Rb = pass == 0 ? R : 2 * R;
    blpo_bwd_layout lay;
    if (!run_backward(&m, c, Rb, tf32, params, x, cpu, dy, gb, &lay))
      continue; /* blpo_bwd_choose would not pick it */
    /* from the CPU's activations: the forward's tiles play no part */
    int btc = 0, top = -1;
    for (int l = 0; l < m.num_layers; l++)
      if (lay.t.tc[l])
        btc++, top = l;
    snprintf(what, sizeof what, "%s, backward, %d rows per block%s", c->name, Rb,
             btc ? ", TF32 tiles" : "");
    emu_same(what, gb, np * sizeof(float));
    for (int p = 0; p < c->P; p++) {
      const float *xg = gb + (size_t)p * m.num_params, *yg = gc + (size_t)p * m.num_params;
      double e = test_rel_norm_err(xg, yg, NULL, nm); /* the MLP part */
      CHECK(e <= (btc ? TF32_GRAD_TOL : 1e-4), "%s (%d blocks), agent %d: gradient off by %.3g",
            what, lay.blocks, p, e);
      if (btc && getenv("BLPO_TEST_VERBOSE"))
        printf("%s, agent %d: gradient off by %.3g of its norm\n", what, p, e);
    }
    /* the dW tiles ran: the topmost tiled layer's dW (from the fp32 layers
     * above it, so equal to the fp32 pass's unless its own sum changed) is
     * not the fp32 layout's bit for bit where a block's rows are a multiple
     * of 8 */
    if (btc && (c->n >= Rb || c->n % 8 == 0)) {
      blpo_bwd_layout lay0;
      run_backward(&m, c, Rb, 0, params, x, cpu, dy, g0, &lay0);
      const size_t w0 = m.w_off[top], wn = (size_t)m.dims[top] * m.dims[top + 1];
      size_t same = 0;
      for (int p = 0; p < c->P; p++)
        for (size_t i = 0; i < wn; i++) {
          const size_t o = (size_t)p * m.num_params + w0 + i;
          same += memcmp(&gb[o], &g0[o], sizeof(float)) == 0;
        }
      CHECK(same < (size_t)c->P * wn / 2,
            "%s: %zu of %zu of layer %d's dW the fp32 tiles' bit for bit (the TF32 dW tiles "
            "did not run?)",
            what, same, (size_t)c->P * wn, top);
    }
  }
  free(g0);
  free(dy);
  free(gc);
  free(gb);
  free(scratch);
  free(params);
  free(x);
  free(cpu);
  free(blk);
  free(sm);
}

int main(void) {
  blpo_backend *be = blpo_backend_cpu_create(1);
  const fwd_case cases[] = {
      {"4-64-64-2 tanh, 4096 rows", 4, 2, {64, 64}, 2, BLPO_ACT_TANH, 0, 1, 4096},
      {"6-37-19-3 relu, 2 agents x 1000 rows", 6, 2, {37, 19}, 3, BLPO_ACT_RELU, 0, 2, 1000},
      {"3-37-19-1 tanh + log_std, 3 agents x 77 rows", 3, 2, {37, 19}, 1, BLPO_ACT_TANH, 1, 3, 77},
      {"5-19-1 relu (1 hidden), 2100 rows", 5, 1, {19, 0}, 1, BLPO_ACT_RELU, 0, 1, 2100},
      {"2-24-24-3 relu, 2 agents x 1 row", 2, 2, {24, 24}, 3, BLPO_ACT_RELU, 0, 2, 1},
      /* TF32 tiles on 64-48 and on the 48-16 head (no activation), 77
       * rows: tiles past the last row */
      {"5-64-48-16 relu, 2 agents x 77 rows", 5, 2, {64, 48}, 16, BLPO_ACT_RELU, 0, 2, 77},
      /* a last block of 24 or 8 rows: the dW tiles' odd count of 8-row
       * steps, d/dz tiles past the last row */
      {"4-64-64-2 tanh, 2 agents x 88 rows", 4, 2, {64, 64}, 2, BLPO_ACT_TANH, 0, 2, 88},
  };
  const int rows[] = {BLPO_MBF_ROWS, 16, 8}; /* 16: TF32 only (the smallest tiled block) */
  const uint64_t seed = g_rng;
  for (int o = 0; o < EMU_ORDERS; o++) {
    emu_begin_order(o, seed);
    for (size_t r = 0; r < sizeof(rows) / sizeof(rows[0]); r++)
      for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++)
        for (int tf32 = rows[r] == 16; tf32 < 2; tf32++)
          check_case(be, &cases[k], rows[r], tf32);
  }
  emu_seen_free();
  /* the choice: 64-64 takes 32 rows per block on 227 KiB; 512-384 does not fit */
  blpo_mlp m, wide;
  int h[2] = {64, 64}, hw[2] = {512, 384};
  blpo_mlp_init_shape(&m, 4, h, 2, 2, BLPO_ACT_TANH, 0);
  blpo_mlp_init_shape(&wide, 4, hw, 2, 2, BLPO_ACT_TANH, 0);
  blpo_fwd_layout y;
  CHECK(blpo_fwd_choose(&y, &m, 1, 4096, 227 * 1024, 0) == 32, "64-64: 32 rows per block");
  CHECK(blpo_fwd_choose(&y, &wide, 1, 4096, 227 * 1024, 0) == 0, "512-384: the cuBLAS path");
#if BLPO_MBF_VEC == 4 /* the scalar loads' variant has no TF32 tiles (odd pitches) */
  /* TF32: the 64-64 layer alone on tensor-core tiles, its weights 32-byte
   * aligned with pitch 68; none at 8 rows per block (a tile is 16 rows) */
  CHECK(blpo_fwd_choose(&y, &m, 1, 4096, 227 * 1024, 1) == 32 && !y.t.tc[0] && y.t.tc[1] &&
            !y.t.tc[2] && y.t.wp[1] == 68 && y.t.w_dst[1] % 8 == 0 && y.t.wp[0] == 65,
        "64-64, tf32: the hidden layer on TF32 tiles");
  blpo_fwd_layout_init(&y, &m, 4096, 8, 1);
  CHECK(!y.t.tc[1] && y.t.wp[1] == 65, "8 rows per block, tf32: no TF32 tiles");
  {
    /* the TF32 layout needs a little more room; where only the fp32 one
     * fits, the same rows per block without the tiles (the workspace was
     * sized for them) */
    blpo_fwd_layout f0, f1;
    size_t need32 = sizeof(float) * (size_t)blpo_fwd_layout_init(&f0, &m, 4096, 32, 0);
    size_t need32t = sizeof(float) * (size_t)blpo_fwd_layout_init(&f1, &m, 4096, 32, 1);
    CHECK(need32t > need32, "the TF32 layout is larger (%zu, %zu bytes)", need32t, need32);
    CHECK(blpo_fwd_choose(&y, &m, 1, 4096, need32, 1) == 32 && !y.t.tc[1],
          "tf32 where only the fp32 layout fits: 32 rows, fp32 tiles");
    CHECK(blpo_fwd_choose(&y, &m, 1, 4096, need32t, 1) == 32 && y.t.tc[1],
          "tf32 where it fits: TF32 tiles");
    CHECK(y.t.s_tcw < 0, "the forward layout has no dW scratch");
  }
  {
    /* the backward's TF32 dW tiles: a 16 x 16 scratch per warp, 32-byte
     * aligned, past every other array; none without TF32 layers */
    blpo_mlp c0;
    int h0[2] = {64, 64};
    blpo_mlp_init_shape(&c0, 4, h0, 2, 1, BLPO_ACT_TANH, 0);
    blpo_bwd_layout b0, b1;
    const int f0 = blpo_bwd_layout_init(&b0, &c0, 4096, 32, 0);
    const int f1 = blpo_bwd_layout_init(&b1, &c0, 4096, 32, 1);
    CHECK(b0.t.s_tcw < 0 && b1.t.s_tcw >= b1.s_g[1] + 32 * blpo_mbf_pitch(64) &&
              b1.t.s_tcw % 8 == 0 && f1 == b1.t.s_tcw + BLPO_MBF_THREADS / 32 * 256 && f1 > f0,
          "backward, tf32: the dW scratch at %d of %d floats (fp32: %d, scratch %d)", b1.t.s_tcw,
          f1, f0, b0.t.s_tcw);
  }
#else
  CHECK(blpo_fwd_choose(&y, &m, 1, 4096, 227 * 1024, 1) == 32 && !y.t.tc[1],
        "scalar loads, tf32: no TF32 tiles");
#endif
  /* backward: 64 rows per block at 4096 rows (64 partials of 4545 floats
   * within the 2 n 64 of scratch), one direct block for 40 rows, the cuBLAS
   * path for 512-384, and for 70 rows in 9 blocks of 8 (where only 8 fit in
   * shared memory), whose partials outgrow the scratch */
  blpo_bwd_layout z;
  blpo_mlp c1;
  blpo_mlp_init_shape(&c1, 4, h, 2, 1, BLPO_ACT_TANH, 0);
  CHECK(blpo_bwd_choose(&z, &c1, 1, 4096, 227 * 1024, 0) == 64 && !z.direct, "64-64 backward: 64");
  CHECK(blpo_bwd_choose(&z, &c1, 2, 40, 227 * 1024, 0) == 64 && z.direct, "40 rows: one block");
  CHECK(blpo_bwd_choose(&z, &wide, 1, 4096, 227 * 1024, 0) == 0, "512-384 backward: cuBLAS");
  size_t need8 = sizeof(float) * (size_t)blpo_bwd_layout_init(&z, &c1, 70, 8, 0);
  CHECK(blpo_bwd_choose(&z, &c1, 1, 70, need8, 0) == 0, "70 rows in blocks of 8: no room");
  be->destroy(be);
  return test_summary("test_mlp_blocks");
}
