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

static void check_case(blpo_backend *be, const fwd_case *c, int R) {
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
  int sf = blpo_fwd_layout_init(&a.lay, &m, c->n, R);
  a.params = params, a.x = x, a.acts = blk;
  float *sm = test_alloc_floats((size_t)sf);
  EMU_FOR (p, c->P)
    EMU_FOR (b, a.lay.blocks) {
      test_poison_nan(sm, (size_t)sf, 1);
      for (int ph = 0; ph < blpo_fwd_phases(&a.lay); ph++)
        EMU_FOR (t, BLPO_MBF_THREADS)
          blpo_fwd(&a, p, b, t, ph, sm);
    }
  char what[160];
  snprintf(what, sizeof what, "%s, forward, %d rows per block", c->name, R);
  emu_same(what, blk, na * sizeof(float));
  size_t bad = 0, first = 0;
  for (size_t i = 0; i < na; i++)
    if (!(fabsf(blk[i] - cpu[i]) <= 1e-5f * (1.0f + fabsf(cpu[i]))) && bad++ == 0)
      first = i;
  CHECK(bad == 0, "%s, %d rows per block: %zu of %zu activations differ (first [%zu]: %g, cpu %g)",
        c->name, R, bad, na, first, (double)blk[first], (double)cpu[first]);

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
  for (int pass = 0; pass < 2; pass++) {
    int Rb = pass == 0 ? R : 2 * R;
    blpo_bwd_args ba;
    int sb = blpo_bwd_layout_init(&ba.lay, &m, c->n, Rb);
    int fits = ba.lay.direct || (size_t)ba.lay.blocks * nm <= 2 * (size_t)c->n * m.max_width;
    if (!fits)
      continue; /* blpo_bwd_choose would not pick it: the scratch cannot hold the partials */
    float *parts = test_alloc_floats((size_t)c->P * ba.lay.blocks * nm),
          *sm2 = test_alloc_floats((size_t)sb);
    test_poison_nan(parts, (size_t)c->P * ba.lay.blocks * nm, 1);
    ba.params = params, ba.x = x, ba.acts = cpu, ba.dy = dy, ba.grad = gb, ba.parts = parts;
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
    snprintf(what, sizeof what, "%s, backward, %d rows per block", c->name, Rb);
    emu_same(what, gb, np * sizeof(float));
    for (int p = 0; p < c->P; p++) {
      const float *xg = gb + (size_t)p * m.num_params, *yg = gc + (size_t)p * m.num_params;
      double e = test_rel_norm_err(xg, yg, NULL, nm); /* the MLP part */
      CHECK(e <= 1e-4,
            "%s, backward, %d rows per block (%d blocks), agent %d: gradient off by %.3g", c->name,
            Rb, ba.lay.blocks, p, e);
    }
    test_poison_nan(gb, np, 1);
    free(parts);
    free(sm2);
  }
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
  };
  const int rows[] = {BLPO_MBF_ROWS, 8};
  const uint64_t seed = g_rng;
  for (int o = 0; o < EMU_ORDERS; o++) {
    emu_begin_order(o, seed);
    for (size_t r = 0; r < sizeof(rows) / sizeof(rows[0]); r++)
      for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++)
        check_case(be, &cases[k], rows[r]);
  }
  emu_seen_free();
  /* the choice: 64-64 takes 32 rows per block on 227 KiB; 512-384 does not fit */
  blpo_mlp m, wide;
  int h[2] = {64, 64}, hw[2] = {512, 384};
  blpo_mlp_init_shape(&m, 4, h, 2, 2, BLPO_ACT_TANH, 0);
  blpo_mlp_init_shape(&wide, 4, hw, 2, 2, BLPO_ACT_TANH, 0);
  blpo_fwd_layout y;
  CHECK(blpo_fwd_choose(&y, &m, 1, 4096, 227 * 1024) == 32, "64-64: 32 rows per block");
  CHECK(blpo_fwd_choose(&y, &wide, 1, 4096, 227 * 1024) == 0, "512-384: the cuBLAS path");
  /* backward: 64 rows per block at 4096 rows (64 partials of 4545 floats
   * within the 2 n 64 of scratch), one direct block for 40 rows, the cuBLAS
   * path for 512-384, and for 70 rows in 9 blocks of 8 (where only 8 fit in
   * shared memory), whose partials outgrow the scratch */
  blpo_bwd_layout z;
  blpo_mlp c1;
  blpo_mlp_init_shape(&c1, 4, h, 2, 1, BLPO_ACT_TANH, 0);
  CHECK(blpo_bwd_choose(&z, &c1, 1, 4096, 227 * 1024) == 64 && !z.direct, "64-64 backward: 64");
  CHECK(blpo_bwd_choose(&z, &c1, 2, 40, 227 * 1024) == 64 && z.direct, "40 rows: one block");
  CHECK(blpo_bwd_choose(&z, &wide, 1, 4096, 227 * 1024) == 0, "512-384 backward: cuBLAS");
  size_t need8 = sizeof(float) * (size_t)blpo_bwd_layout_init(&z, &c1, 70, 8);
  CHECK(blpo_bwd_choose(&z, &c1, 1, 70, need8) == 0, "70 rows in blocks of 8: no room");
  be->destroy(be);
  return test_summary("test_mlp_blocks");
}
