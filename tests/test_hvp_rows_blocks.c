/* The Hessian rows' block programs (include/blpo/hvp_rows_blocks.h) against
 * the CPU backend's critic_hvp_rows, from random parameters, inputs and
 * targets (the activations from the CPU's forward pass): tanh and relu, one
 * to three hidden layers of uneven widths, indices in every layer's weights
 * and biases (the head bias and an index past the parameters, a zero row,
 * included), row counts that are not a multiple of the rows per chunk, one
 * to three agents and 1 to 9 directions. Each case runs in three partial
 * layouts: one chunk per block (as many blocks as fit, at most
 * BLPO_HVR_MAX_BLOCKS), several chunks per block (partials for 3 blocks),
 * and one block per agent writing the rows in place; and with 32 and 4 rows
 * per chunk. Shared memory, partials and rows are poisoned with NaN first.
 * Every row (agent, direction) must match to 1e-4 of its norm, zero rows
 * exactly. With TF32 tiles (run.precision tf32; the cases with layers
 * whose widths are multiples of 16, at 32 and 16 rows per chunk, partial
 * last chunks included) to TF32_TOL of its norm, zero rows still exactly.
 *
 *   --cuda  (exits 77 without a device) the CUDA backend's critic_hvp_rows
 *           with the block kernels on and off (set_fused_solve), against
 *           the CPU, plus a critic too wide for shared memory (the cuBLAS
 *           path either way); then every case again with tf32
 *           (set_gemm_precision). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blpo/backend.h"
#include "blpo/hvp_rows_blocks.h"
#include "blpo/mlp.h"
#include "cuda_test_backend.h"
#include "emu_order.h"
#include "test_util.h"

typedef struct {
  const char *name;
  int act, P, n, O, K;
  int h[3], nh;
  int tc; /* a layer on TF32 tiles where they are asked (widths multiples of 16) */
} hr_case;

typedef struct {
  blpo_mlp m;
  int P, n, K;
  size_t Nc;
  float *params, *x, *acts, *target; /* (P, Nc), (P, n, O), (P, n, A), (P, n) */
  int32_t *idx;                      /* (P, K) */
  float *want;                       /* (P, K, Nc) the CPU op's rows */
} hr_inputs;

/* Indices that touch every layer: per agent, direction d of layer l's weight
 * or bias in turn, the rest random; agent 0's last index the head bias, and
 * with K >= 4 agent P-1's last one past the parameters. */
static void draw_indices(const blpo_mlp *m, int P, int K, int32_t *idx) {
  for (int p = 0; p < P; p++)
    for (int d = 0; d < K; d++) {
      int l = (d / 2 + p) % m->num_layers;
      size_t lo = d % 2 ? m->b_off[l] : m->w_off[l];
      size_t cnt = d % 2 ? (size_t)m->dims[l + 1] : m->b_off[l] - m->w_off[l];
      size_t e = (size_t)(urand() * (double)cnt);
      idx[p * K + d] = (int32_t)(lo + (e < cnt ? e : cnt - 1));
    }
  idx[K - 1] = (int32_t)m->num_params - 1;
  if (K >= 4)
    idx[(P - 1) * K + K - 1] = (int32_t)m->num_params;
}

static void inputs_new(hr_inputs *in, const hr_case *c, blpo_backend *cpu) {
  memset(in, 0, sizeof(*in));
  blpo_mlp_init_shape(&in->m, c->O, c->h, c->nh, 1, c->act, 0);
  in->P = c->P, in->n = c->n, in->K = c->K, in->Nc = in->m.num_params;
  size_t P = (size_t)c->P, n = (size_t)c->n, Nc = in->Nc, A = in->m.act_floats_per_row;
  in->params = test_alloc_floats(P * Nc);
  in->x = test_alloc_floats(P * n * c->O);
  in->acts = test_alloc_floats(P * n * A);
  in->target = test_alloc_floats(P * n);
  in->want = test_alloc_floats(P * c->K * Nc);
  in->idx = malloc(sizeof(int32_t) * P * c->K);
  if (!in->idx)
    exit(2);
  for (size_t i = 0; i < P * Nc; i++)
    in->params[i] = (float)(0.5 * nrand());
  for (size_t i = 0; i < P * n * c->O; i++)
    in->x[i] = (float)nrand();
  for (size_t i = 0; i < P * n; i++)
    in->target[i] = (float)(1.5 * nrand());
  cpu->mlp_forward(cpu, &in->m, c->P, in->params, in->x, c->n, in->acts);
  draw_indices(&in->m, c->P, c->K, in->idx);
  size_t wf = cpu->critic_hvp_work(&in->m, c->n, c->K);
  float *work = test_alloc_floats(P * wf);
  test_poison_nan(in->want, P * c->K * Nc, 1);
  cpu->critic_hvp_rows(cpu, &in->m, c->P, in->params, in->x, c->n, in->acts, in->target, c->K,
                       in->idx, in->want, work);
  free(work);
}

static void inputs_free(hr_inputs *in) {
  free(in->params);
  free(in->x);
  free(in->acts);
  free(in->target);
  free(in->want);
  free(in->idx);
}

/* TF32 tiles: the 10-bit products move a row by up to 2.9e-4 of its norm
 * over these cases (2026-12-07); the tolerance is still far under what a
 * wrong index or a missing term gives (a missing g R{h} term, or one tile's
 * 1% off, fail by hundreds of checks). */
#define TF32_TOL 5e-3
static int g_tf32;
static double g_tf32_worst;

/* Every row of got against the CPU's, zero rows exactly. */
static void check_rows(const hr_inputs *in, const float *got, const char *name, const char *how) {
  for (int p = 0; p < in->P; p++)
    for (int d = 0; d < in->K; d++) {
      size_t o = ((size_t)p * in->K + d) * in->Nc;
      double norm = 0;
      for (size_t i = 0; i < in->Nc; i++)
        norm += (double)in->want[o + i] * in->want[o + i];
      if (norm == 0) {
        size_t bad = 0;
        for (size_t i = 0; i < in->Nc; i++)
          bad += got[o + i] != 0.0f;
        CHECK(bad == 0, "%s, %s: agent %d row %d (index %d) should be zero, %zu entries are not",
              name, how, p, d, in->idx[p * in->K + d], bad);
        continue;
      }
      double e = test_rel_norm_err(got + o, in->want + o, NULL, in->Nc);
      if (g_tf32 && e > g_tf32_worst)
        g_tf32_worst = e;
      CHECK(e <= (g_tf32 ? TF32_TOL : 1e-4),
            "%s, %s: agent %d row %d (index %d) off by %.3g of its norm", name, how, p, d,
            in->idx[p * in->K + d], e);
    }
}

/* The block programs, every block's threads one after another per phase;
 * partials for work_floats floats per agent. Returns the layout's blocks. */
static int run_blocks(const hr_inputs *in, int R, size_t work_floats, float *rows, int *direct,
                      int *tiles) {
  blpo_hvr_layout y;
  int sf = blpo_hvr_layout_init(&y, &in->m, in->n, in->K, R, work_floats, g_tf32);
  size_t pf = (size_t)in->P * work_floats;
  float *parts = test_alloc_floats(pf), *sm = test_alloc_shared((size_t)sf);
  test_poison_nan(parts, pf, 2);
  test_poison_nan(rows, (size_t)in->P * in->K * in->Nc, 3);
  blpo_hvr_args a =
      blpo_hvr_args_of(&y, in->params, in->x, in->acts, in->target, in->idx, rows, parts);
  EMU_FOR (p, in->P)
    EMU_FOR (b, y.blocks) {
      test_poison_nan(sm, (size_t)sf, 4);
      for (int ph = 0; ph < blpo_hvr_rows_phases(&y); ph++)
        EMU_FOR (t, BLPO_MBF_THREADS)
          blpo_hvr_rows(&a, p, b, t, ph, sm);
    }
  if (!y.direct)
    EMU_FOR (p, in->P)
      EMU_FOR (k, blpo_hvr_reduce_blocks(&y))
        EMU_FOR (t, BLPO_MBF_THREADS)
          blpo_hvr_reduce(&a, p, k, t);
  free(parts);
  free(sm);
  *direct = y.direct, *tiles = y.tf32;
  return y.blocks;
}

static void check_blocks(const hr_case *c, blpo_backend *cpu) {
  hr_inputs in;
  inputs_new(&in, c, cpu);
  size_t cols = (size_t)in.K * in.Nc;
  float *rows = test_alloc_floats((size_t)in.P * cols);
  const int Rs[] = {BLPO_MBF_ROWS, 4}, Rt[] = {BLPO_MBF_ROWS, BLPO_TC_N}; /* fp32, TF32 */
  for (size_t r = 0; r < sizeof(Rs) / sizeof(Rs[0]); r++) {
    const int R = g_tf32 ? Rt[r] : Rs[r], chunks = (c->n + R - 1) / R;
    /* one chunk per block; several per block; one block per agent */
    const size_t works[] = {cols * BLPO_HVR_MAX_BLOCKS + 7, cols * 3, cols - 1};
    for (size_t w = 0; w < sizeof(works) / sizeof(works[0]); w++) {
      int direct = 0, tiles = 0, blocks = run_blocks(&in, R, works[w], rows, &direct, &tiles);
      const int cap = w == 0 ? BLPO_HVR_MAX_BLOCKS : w == 1 ? 3 : 1;
      const int most = chunks < cap ? chunks : cap;
      CHECK(blocks >= 1 && blocks <= most && blocks >= (most + 1) / 2 && direct == (blocks == 1),
            "%s, %d rows per chunk, layout %zu: %d blocks (direct %d), expected up to %d", c->name,
            R, w, blocks, direct, most);
      CHECK(tiles == (g_tf32 && c->tc), "%s, tf32 %d: TF32 tiles %d, expected %d", c->name, g_tf32,
            tiles, g_tf32 && c->tc);
      char how[96];
      snprintf(how, sizeof how, "%d rows per chunk, %d block(s) per agent%s%s", R, blocks,
               direct ? " (direct)" : "", g_tf32 ? ", TF32 tiles" : "");
      check_rows(&in, rows, c->name, how);
      char what[160];
      snprintf(what, sizeof what, "%s, %s", c->name, how);
      emu_same(what, rows, sizeof(float) * (size_t)in.P * cols);
    }
  }
  free(rows);
  inputs_free(&in);
}

/* The layout takes the 64-64 critic at K = 5 with 32 rows per chunk in an
 * H100's 227 KiB, and leaves critics too wide for shared memory to the
 * cuBLAS path. */
static void check_choose(void) {
  blpo_mlp m;
  blpo_hvr_layout y;
  const size_t smem = 232448, work = (size_t)1 << 24;
  int h64[] = {64, 64}, h256[] = {256, 256};
  blpo_mlp_init_shape(&m, 4, h64, 2, 1, BLPO_ACT_TANH, 0);
  int R = blpo_hvr_choose(&y, &m, 1, 4096, 5, work, smem, 0);
  CHECK(R == BLPO_MBF_ROWS, "64-64 critic, K = 5: %d rows per chunk, expected %d", R,
        BLPO_MBF_ROWS);
  R = blpo_hvr_choose(&y, &m, 1, 4096, 20, work, smem, 0);
  CHECK(R > 0 && R < BLPO_MBF_ROWS, "64-64 critic, K = 20: %d rows per chunk", R);
#if BLPO_MBF_VEC == 4
  /* tf32: the 64-64 critic at K = 5 on TF32 tiles at 16 rows per chunk (32
   * would need more than 227 KiB with the tiles' pitches), its hidden layer
   * tiled, the dW scratch aligned; fp32 where the tiles are not asked */
  blpo_mlp_init_shape(&m, 4, h64, 2, 1, BLPO_ACT_TANH, 0);
  R = blpo_hvr_choose(&y, &m, 1, 4096, 5, work, smem, 1);
  CHECK(R == BLPO_TC_N && y.tf32 && !y.c.tc[0] && y.c.tc[1] && !y.c.tc[2] && y.c.s_tcw >= 0 &&
            y.c.s_tcw % 8 == 0 && blpo_hvr_pk(&y, 64) == 72 && blpo_hvr_pk(&y, 1) == 8 &&
            sizeof(float) * (size_t)y.s_floats <= smem,
        "64-64 critic, K = 5, tf32: %d rows per chunk, tiles %d, %d floats", R, y.tf32, y.s_floats);
  R = blpo_hvr_choose(&y, &m, 1, 4096, 5, work, smem, 0);
  CHECK(R == BLPO_MBF_ROWS && !y.tf32 && y.c.s_tcw < 0 && blpo_hvr_pk(&y, 64) == 65,
        "64-64 critic, K = 5, fp32: %d rows per chunk", R);
  {
    int h24[] = {24, 24};
    blpo_mlp_init_shape(&m, 4, h24, 2, 1, BLPO_ACT_TANH, 0);
    R = blpo_hvr_choose(&y, &m, 1, 4096, 5, work, smem, 1);
    CHECK(R == BLPO_MBF_ROWS && !y.tf32, "24-24 critic, tf32: no layer tiled, the fp32 layout");
  }
#endif
  blpo_mlp_init_shape(&m, 4, h256, 2, 1, BLPO_ACT_TANH, 0);
  R = blpo_hvr_choose(&y, &m, 1, 4096, 5, work, smem, 1);
  CHECK(R == 0, "256-256 critic: %d rows per chunk, expected 0 (too wide)", R);
  blpo_mlp_init_shape(&m, 4, h64, 2, 2, BLPO_ACT_TANH, 0);
  R = blpo_hvr_choose(&y, &m, 1, 4096, 5, work, smem, 0);
  CHECK(R == 0, "a two-output network: %d rows per chunk, expected 0", R);
}

static const hr_case kCases[] = {
    {"tanh 64-64, CartPole obs, 1024 rows, K 5", BLPO_ACT_TANH, 1, 1024, 4, 5, {64, 64}, 2, 1},
    {"relu 80-24, Acrobot obs, 1000 rows, P 2, K 6", BLPO_ACT_RELU, 2, 1000, 6, 6, {80, 24}, 2, 0},
    {"tanh 32-24-16, Pendulum obs, 300 rows, K 9", BLPO_ACT_TANH, 1, 300, 3, 9, {32, 24, 16}, 3, 0},
    {"tanh 20, MountainCar obs, 100 rows, 3 agents, K 4", BLPO_ACT_TANH, 3, 100, 2, 4, {20}, 1, 0},
    {"relu 17-9, 7 rows, 2 agents, K 1", BLPO_ACT_RELU, 2, 7, 5, 1, {17, 9}, 2, 0},
    /* more chunks than BLPO_HVR_MAX_BLOCKS at 32 rows: several chunks per
     * block and a shorter last block on the device too */
    {"tanh 20, 4200 rows, K 2", BLPO_ACT_TANH, 1, 4200, 4, 2, {20}, 1, 0},
    /* TF32 tiles: a 64 -> 32 layer, 1003 rows (a last chunk of 11 rows:
     * R{dW} on the fp32 tiles there, R{g}'s tiles partly past the virtual
     * rows), 2 agents; and relu, two tiled layers, a 16-wide input layer
     * (R{dW_0} tiled, no R{g_0}), K 3, 488 rows (a last chunk of 8: one
     * 8-row step, R{g}'s tiles past the virtual rows) */
    {"tanh 64-32, 1003 rows, P 2, K 7", BLPO_ACT_TANH, 2, 1003, 3, 7, {64, 32}, 2, 1},
    {"relu 32-32-16, 16 obs, 488 rows, K 3", BLPO_ACT_RELU, 1, 488, 16, 3, {32, 32, 16}, 3, 1},
};

#ifdef BLPO_WITH_CUDA
static void check_cuda(const hr_case *c, blpo_backend *cpu, blpo_backend *gpu) {
  hr_inputs in;
  inputs_new(&in, c, cpu);
  size_t P = (size_t)in.P, n = (size_t)in.n, A = in.m.act_floats_per_row;
  size_t cols = (size_t)in.K * in.Nc, wf = gpu->critic_hvp_work(&in.m, in.n, in.K);
  float *params = gpu->alloc(gpu, P * in.Nc * sizeof(float));
  float *x = gpu->alloc(gpu, P * n * c->O * sizeof(float));
  float *acts = gpu->alloc(gpu, P * n * A * sizeof(float));
  float *target = gpu->alloc(gpu, P * n * sizeof(float));
  int32_t *idx = gpu->alloc(gpu, P * in.K * sizeof(int32_t));
  float *rows = gpu->alloc(gpu, P * cols * sizeof(float));
  float *work = gpu->alloc(gpu, P * wf * sizeof(float));
  gpu->upload(gpu, params, in.params, P * in.Nc * sizeof(float));
  gpu->upload(gpu, x, in.x, P * n * c->O * sizeof(float));
  gpu->upload(gpu, acts, in.acts, P * n * A * sizeof(float));
  gpu->upload(gpu, target, in.target, P * n * sizeof(float));
  gpu->upload(gpu, idx, in.idx, P * in.K * sizeof(int32_t));
  float *got = test_alloc_floats(P * cols), *poison = test_alloc_floats(P * wf);
  for (int on = 1; on >= 0; on--) {
    gpu->set_fused_solve(gpu, on);
    test_poison_nan(got, P * cols, 5);
    gpu->upload(gpu, rows, got, P * cols * sizeof(float));
    test_poison_nan(poison, P * wf, 6);
    gpu->upload(gpu, work, poison, P * wf * sizeof(float));
    gpu->critic_hvp_rows(gpu, &in.m, in.P, params, x, in.n, acts, target, in.K, idx, rows, work);
    gpu->download(gpu, got, rows, P * cols * sizeof(float));
    check_rows(&in, got, c->name, on ? "cuda, block kernels" : "cuda, cuBLAS path");
  }
  gpu->set_fused_solve(gpu, 1);
  void *ps[] = {params, x, acts, target, idx, rows, work};
  for (size_t k = 0; k < sizeof(ps) / sizeof(ps[0]); k++)
    gpu->release(gpu, ps[k]);
  free(got);
  free(poison);
  inputs_free(&in);
}
#endif

int main(int argc, char **argv) {
  int cuda = argc > 1 && !strcmp(argv[1], "--cuda");
  const size_t nc = sizeof(kCases) / sizeof(kCases[0]);
  blpo_backend *cpu = blpo_backend_cpu_create(1);
  if (cuda) {
#ifdef BLPO_WITH_CUDA
    char why[256];
    blpo_backend *gpu = blpo_test_cuda_create(why, sizeof why);
    if (!gpu) {
      printf("test_hvp_rows_blocks --cuda: skipped: %s\n", why);
      cpu->destroy(cpu);
      return 77;
    }
    for (size_t k = 0; k < nc; k++)
      check_cuda(&kCases[k], cpu, gpu);
    const hr_case wide = {
        "tanh 256-256 (cuBLAS), 500 rows, K 5", BLPO_ACT_TANH, 1, 500, 4, 5, {256, 256}, 2, 0};
    check_cuda(&wide, cpu, gpu);
    /* run.precision tf32: the kernel's WMMA tiles (and cuBLAS's TF32 GEMMs
     * on the other path) on the device, to TF32_TOL */
    CHECK(gpu->set_gemm_precision != NULL, "the CUDA backend has set_gemm_precision");
    if (gpu->set_gemm_precision) {
      gpu->set_gemm_precision(gpu, 1);
      g_tf32 = 1;
      for (size_t k = 0; k < nc; k++)
        check_cuda(&kCases[k], cpu, gpu);
      g_tf32 = 0;
      gpu->set_gemm_precision(gpu, 0);
      printf("test_hvp_rows_blocks --cuda: TF32, largest row error %.3g of its norm\n",
             g_tf32_worst);
    }
    gpu->destroy(gpu);
    cpu->destroy(cpu);
    return test_summary("test_hvp_rows_blocks --cuda");
#else
    printf("test_hvp_rows_blocks --cuda: skipped: built without the CUDA backend\n");
    cpu->destroy(cpu);
    return 77;
#endif
  }
  check_choose();
  const uint64_t seed = g_rng;
  for (int o = 0; o < EMU_ORDERS; o++) {
    emu_begin_order(o, seed);
    for (size_t k = 0; k < nc; k++)
      check_blocks(&kCases[k], cpu);
#if BLPO_MBF_VEC == 4
    /* TF32 tiles, every case (those without a tiled layer take the fp32
     * layout); the scalar loads' variant has none */
    g_tf32 = 1;
    for (size_t k = 0; k < nc; k++)
      check_blocks(&kCases[k], cpu);
    g_tf32 = 0;
#endif
  }
  if (g_tf32_worst > 0)
    printf("test_hvp_rows_blocks: TF32 tiles, largest row error %.3g of its norm\n", g_tf32_worst);
  emu_seen_free();
  cpu->destroy(cpu);
  return test_summary("test_hvp_rows_blocks");
}
