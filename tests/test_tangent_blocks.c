/* The MLP tangent's block program (include/blpo/tangent_blocks.h) against
 * the CPU backend's mlp_tangent, from random parameters, inputs and dense
 * directions (the activations from the CPU's forward pass): tanh and relu,
 * one to three hidden layers of uneven widths, one and three outputs (with
 * trailing extra parameters, as an actor's log-std), 1 to 4 directions, one
 * to three agents, row counts that are not a multiple of the rows per chunk
 * and more chunks than BLPO_TNF_MAX_BLOCKS (several chunks per block), with
 * 32 and 4 rows per chunk. Shared memory and the output are poisoned with
 * NaN first; every (agent, direction) output must match to 1e-4 of its norm.
 *
 * Sets of two and three passes (mlp_tangent_many's blpo_tnf_set: BLPO's
 * critic on the minibatch and the last observations, and mixed networks,
 * row counts and directions) run through the blocks backend's
 * mlp_tangent_many (tests/blocks_backend.h: the CUDA op's dispatch, one
 * emulated launch, each block finding its pass), to the same tolerance.
 *
 *   --cuda  (exits 77 without a device) the CUDA backend's mlp_tangent with
 *           the block kernel on and off (set_fused_solve), against the CPU,
 *           plus a network too wide for shared memory (the cuBLAS path
 *           either way), and mlp_tangent_many on the sets, on and off. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blocks_backend.h"
#include "blpo/backend.h"
#include "blpo/mlp.h"
#include "blpo/tangent_blocks.h"
#include "cuda_test_backend.h"
#include "emu_order.h"
#include "test_util.h"

typedef struct {
  const char *name;
  int act, P, n, O, Y, extra, K;
  int h[3], nh;
} tn_case;

typedef struct {
  blpo_mlp m;
  int P, n, K, Y;
  size_t Np;
  float *params, *x, *acts, *dirs; /* (P, Np), (P, n, O), (P, n, A), (P, K, Np) */
  float *want;                     /* (P, K, n, Y) the CPU op's tangents */
} tn_inputs;

static void inputs_new(tn_inputs *in, const tn_case *c, blpo_backend *cpu) {
  memset(in, 0, sizeof(*in));
  blpo_mlp_init_shape(&in->m, c->O, c->h, c->nh, c->Y, c->act, c->extra);
  in->P = c->P, in->n = c->n, in->K = c->K, in->Y = c->Y, in->Np = in->m.num_params;
  size_t P = (size_t)c->P, n = (size_t)c->n, Np = in->Np, A = in->m.act_floats_per_row;
  in->params = test_alloc_floats(P * Np);
  in->x = test_alloc_floats(P * n * c->O);
  in->acts = test_alloc_floats(P * n * A);
  in->dirs = test_alloc_floats(P * c->K * Np);
  in->want = test_alloc_floats(P * c->K * n * c->Y);
  for (size_t i = 0; i < P * Np; i++)
    in->params[i] = (float)(0.5 * nrand());
  for (size_t i = 0; i < P * n * c->O; i++)
    in->x[i] = (float)nrand();
  for (size_t i = 0; i < P * c->K * Np; i++)
    in->dirs[i] = (float)nrand();
  cpu->mlp_forward(cpu, &in->m, c->P, in->params, in->x, c->n, in->acts);
  float *work = test_alloc_floats(P * cpu->mlp_tangent_work(&in->m, c->n, c->K));
  test_poison_nan(in->want, P * c->K * n * c->Y, 1);
  cpu->mlp_tangent(cpu, &in->m, c->P, in->params, in->x, c->n, in->acts, c->K, in->dirs, in->want,
                   work);
  free(work);
}

static void inputs_free(tn_inputs *in) {
  free(in->params);
  free(in->x);
  free(in->acts);
  free(in->dirs);
  free(in->want);
}

static void check_out(const tn_inputs *in, const float *got, const char *name, const char *how) {
  size_t each = (size_t)in->n * in->Y;
  for (int p = 0; p < in->P; p++)
    for (int k = 0; k < in->K; k++) {
      size_t o = ((size_t)p * in->K + k) * each;
      double e = test_rel_norm_err(got + o, in->want + o, NULL, each);
      CHECK(e <= 1e-4, "%s, %s: agent %d direction %d off by %.3g of its norm", name, how, p, k, e);
    }
}

/* The block program, every block's threads one after another per phase. */
static int run_blocks(const tn_inputs *in, int R, float *ry) {
  blpo_tnf_layout y;
  int sf = blpo_tnf_layout_init(&y, &in->m, in->n, in->K, R);
  float *sm = test_alloc_shared((size_t)sf);
  test_poison_nan(ry, (size_t)in->P * in->K * in->n * in->Y, 2);
  blpo_tnf_args a = blpo_tnf_args_of(&y, in->params, in->x, in->acts, in->dirs, ry);
  EMU_FOR (p, in->P)
    EMU_FOR (b, y.blocks) {
      test_poison_nan(sm, (size_t)sf, 3);
      for (int ph = 0; ph < blpo_tnf_phases(&y); ph++)
        EMU_FOR (t, BLPO_MBF_THREADS)
          blpo_tnf_block(&a, p, b, t, ph, sm);
    }
  free(sm);
  CHECK(y.blocks <= BLPO_TNF_MAX_BLOCKS && (y.blocks - 1) * y.cpb < y.chunks &&
            y.blocks * y.cpb >= y.chunks,
        "%d rows per chunk: %d blocks of %d chunks for %d chunks", R, y.blocks, y.cpb, y.chunks);
  return y.cpb;
}

static void check_blocks(const tn_case *c, blpo_backend *cpu) {
  tn_inputs in;
  inputs_new(&in, c, cpu);
  float *ry = test_alloc_floats((size_t)in.P * in.K * in.n * in.Y);
  const int Rs[] = {BLPO_MBF_ROWS, 4};
  for (size_t r = 0; r < sizeof(Rs) / sizeof(Rs[0]); r++) {
    int cpb = run_blocks(&in, Rs[r], ry);
    char how[64];
    snprintf(how, sizeof how, "%d rows per chunk, %d chunk(s) per block", Rs[r], cpb);
    check_out(&in, ry, c->name, how);
    char what[160];
    snprintf(what, sizeof what, "%s, %s", c->name, how);
    emu_same(what, ry, sizeof(float) * (size_t)in.P * in.K * in.n * in.Y);
  }
  free(ry);
  inputs_free(&in);
}

/* mlp_tangent_many's set (blpo_tnf_set): passes of different row counts,
 * directions and networks in one emulated launch, each block finding its
 * pass, against the CPU op per pass (inputs_new's want). */
static const tn_case kMany[][3] = {
    {{"critic on the minibatch", BLPO_ACT_TANH, 2, 4096, 4, 1, 0, 1, {64, 64}, 2},
     {"critic on the last observations", BLPO_ACT_TANH, 2, 128, 4, 1, 0, 1, {64, 64}, 2},
     {NULL}},
    {{"relu 17-9, K 3", BLPO_ACT_RELU, 1, 300, 5, 2, 0, 3, {17, 9}, 2},
     {"tanh 20, K 1", BLPO_ACT_TANH, 1, 7, 2, 1, 0, 1, {20}, 1},
     {"tanh 16-8, 9000 rows", BLPO_ACT_TANH, 1, 9000, 4, 1, 0, 2, {16, 8}, 2}},
};

static int many_count(const tn_case *set) {
  int c = 0;
  while (c < 3 && set[c].name)
    c++;
  return c;
}

static void check_many_blocks(const tn_case *set, blpo_backend *cpu, blpo_backend *blk) {
  const int count = many_count(set);
  tn_inputs in[3];
  blpo_mlp_tangent_pass tp[3];
  float *ry[3];
  for (int k = 0; k < count; k++) {
    inputs_new(&in[k], &set[k], cpu);
    CHECK(in[k].P == in[0].P, "the set's passes share P");
    ry[k] = test_alloc_floats((size_t)in[k].P * in[k].K * in[k].n * in[k].Y);
    test_poison_nan(ry[k], (size_t)in[k].P * in[k].K * in[k].n * in[k].Y, 5);
    tp[k] = (blpo_mlp_tangent_pass){&in[k].m, in[k].params, in[k].x, in[k].n, in[k].acts,
                                    in[k].K,  in[k].dirs,   ry[k],   NULL};
  }
  /* the blocks backend's mlp_tangent_many: the CUDA op's dispatch, its
   * launch emulated (the set fits, so no pass takes the work-using path) */
  blpo_tnf_set s;
  int fits = blpo_tnf_set_init(&s, in[0].P, count, tp, BLK_SMEM);
  CHECK(fits, "%s ...: the set fits", set[0].name);
  if (fits)
    blk->mlp_tangent_many(blk, in[0].P, count, tp);
  for (int k = 0; k < count; k++) {
    check_out(&in[k], ry[k], set[k].name, "in a set of passes");
    char what[160];
    snprintf(what, sizeof what, "%s, in a set", set[k].name);
    emu_same(what, ry[k], sizeof(float) * (size_t)in[k].P * in[k].K * in[k].n * in[k].Y);
    free(ry[k]);
    inputs_free(&in[k]);
  }
}

/* The layout takes the 64-64 critic (K = 1) at 32 rows per chunk in an
 * H100's 227 KiB and leaves networks too wide for shared memory to cuBLAS. */
static void check_choose(void) {
  blpo_mlp m;
  blpo_tnf_layout y;
  int h64[] = {64, 64}, h256[] = {256, 256};
  blpo_mlp_init_shape(&m, 4, h64, 2, 1, BLPO_ACT_TANH, 0);
  int R = blpo_tnf_choose(&y, &m, 1, 4096, 1, 232448);
  CHECK(R == BLPO_MBF_ROWS, "64-64 critic, K = 1: %d rows per chunk, expected %d", R,
        BLPO_MBF_ROWS);
  blpo_mlp_init_shape(&m, 4, h256, 2, 1, BLPO_ACT_TANH, 0);
  R = blpo_tnf_choose(&y, &m, 1, 4096, 1, 232448);
  CHECK(R == 0, "256-256 network: %d rows per chunk, expected 0 (too wide)", R);
}

static const tn_case kCases[] = {
    {"tanh 64-64 critic, 1024 rows, K 1", BLPO_ACT_TANH, 1, 1024, 4, 1, 0, 1, {64, 64}, 2},
    {"relu 80-24, 1000 rows, P 2, K 3", BLPO_ACT_RELU, 2, 1000, 6, 1, 0, 3, {80, 24}, 2},
    {"tanh 32-24-16, 3 outputs + 3 extra, 300 rows, K 2",
     BLPO_ACT_TANH,
     1,
     300,
     3,
     3,
     3,
     2,
     {32, 24, 16},
     3},
    {"tanh 20, 100 rows, P 3, K 1", BLPO_ACT_TANH, 3, 100, 2, 1, 0, 1, {20}, 1},
    {"relu 17-9, 7 rows, K 4", BLPO_ACT_RELU, 1, 7, 5, 2, 0, 4, {17, 9}, 2},
    {"tanh 16-8, 9000 rows (several chunks per block), K 1",
     BLPO_ACT_TANH,
     1,
     9000,
     4,
     1,
     0,
     1,
     {16, 8},
     2},
};

#ifdef BLPO_WITH_CUDA
/* The CUDA mlp_tangent_many, the block kernel on and off, against the CPU. */
static void check_many_cuda(const tn_case *set, blpo_backend *cpu, blpo_backend *gpu) {
  const int count = many_count(set);
  tn_inputs in[3];
  blpo_mlp_tangent_pass tp[3];
  float *dev[3][6], *got[3];
  for (int k = 0; k < count; k++) {
    inputs_new(&in[k], &set[k], cpu);
    size_t P = (size_t)in[k].P, n = (size_t)in[k].n, A = in[k].m.act_floats_per_row;
    size_t out = P * in[k].K * n * in[k].Y, wf = gpu->mlp_tangent_work(&in[k].m, in[k].n, in[k].K);
    const size_t bytes[6] = {P * in[k].Np, P * n * set[k].O, P * n * A, P * in[k].K * in[k].Np,
                             out,          P * wf + 1};
    const float *src[4] = {in[k].params, in[k].x, in[k].acts, in[k].dirs};
    for (int b = 0; b < 6; b++) {
      dev[k][b] = gpu->alloc(gpu, bytes[b] * sizeof(float));
      if (b < 4)
        gpu->upload(gpu, dev[k][b], src[b], bytes[b] * sizeof(float));
    }
    got[k] = test_alloc_floats(out);
    tp[k] = (blpo_mlp_tangent_pass){&in[k].m, dev[k][0], dev[k][1], in[k].n,  dev[k][2],
                                    in[k].K,  dev[k][3], dev[k][4], dev[k][5]};
  }
  for (int on = 1; on >= 0; on--) {
    gpu->set_fused_solve(gpu, on);
    for (int k = 0; k < count; k++) {
      size_t out = (size_t)in[k].P * in[k].K * in[k].n * in[k].Y;
      test_poison_nan(got[k], out, 4);
      gpu->upload(gpu, dev[k][4], got[k], out * sizeof(float));
    }
    gpu->mlp_tangent_many(gpu, in[0].P, count, tp);
    for (int k = 0; k < count; k++) {
      size_t out = (size_t)in[k].P * in[k].K * in[k].n * in[k].Y;
      gpu->download(gpu, got[k], dev[k][4], out * sizeof(float));
      check_out(&in[k], got[k], set[k].name, on ? "cuda many, block kernel" : "cuda many, cuBLAS");
    }
  }
  gpu->set_fused_solve(gpu, 1);
  for (int k = 0; k < count; k++) {
    for (int b = 0; b < 6; b++)
      gpu->release(gpu, dev[k][b]);
    free(got[k]);
    inputs_free(&in[k]);
  }
}

static void check_cuda(const tn_case *c, blpo_backend *cpu, blpo_backend *gpu) {
  tn_inputs in;
  inputs_new(&in, c, cpu);
  size_t P = (size_t)in.P, n = (size_t)in.n, A = in.m.act_floats_per_row;
  size_t out = P * in.K * n * in.Y, wf = gpu->mlp_tangent_work(&in.m, in.n, in.K);
  float *params = gpu->alloc(gpu, P * in.Np * sizeof(float));
  float *x = gpu->alloc(gpu, P * n * c->O * sizeof(float));
  float *acts = gpu->alloc(gpu, P * n * A * sizeof(float));
  float *dirs = gpu->alloc(gpu, P * in.K * in.Np * sizeof(float));
  float *ry = gpu->alloc(gpu, out * sizeof(float));
  float *work = gpu->alloc(gpu, (P * wf + 1) * sizeof(float));
  gpu->upload(gpu, params, in.params, P * in.Np * sizeof(float));
  gpu->upload(gpu, x, in.x, P * n * c->O * sizeof(float));
  gpu->upload(gpu, acts, in.acts, P * n * A * sizeof(float));
  gpu->upload(gpu, dirs, in.dirs, P * in.K * in.Np * sizeof(float));
  float *got = test_alloc_floats(out);
  for (int on = 1; on >= 0; on--) {
    gpu->set_fused_solve(gpu, on);
    test_poison_nan(got, out, 4);
    gpu->upload(gpu, ry, got, out * sizeof(float));
    gpu->mlp_tangent(gpu, &in.m, in.P, params, x, in.n, acts, in.K, dirs, ry, work);
    gpu->download(gpu, got, ry, out * sizeof(float));
    check_out(&in, got, c->name, on ? "cuda, block kernel" : "cuda, cuBLAS path");
  }
  gpu->set_fused_solve(gpu, 1);
  void *ps[] = {params, x, acts, dirs, ry, work};
  for (size_t k = 0; k < sizeof(ps) / sizeof(ps[0]); k++)
    gpu->release(gpu, ps[k]);
  free(got);
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
      printf("test_tangent_blocks --cuda: skipped: %s\n", why);
      cpu->destroy(cpu);
      return 77;
    }
    for (size_t k = 0; k < nc; k++)
      check_cuda(&kCases[k], cpu, gpu);
    const tn_case wide = {
        "tanh 256-256 (cuBLAS), 500 rows, K 1", BLPO_ACT_TANH, 1, 500, 4, 1, 0, 1, {256, 256}, 2};
    check_cuda(&wide, cpu, gpu);
    for (size_t k = 0; k < sizeof(kMany) / sizeof(kMany[0]); k++)
      check_many_cuda(kMany[k], cpu, gpu);
    gpu->destroy(gpu);
    cpu->destroy(cpu);
    return test_summary("test_tangent_blocks --cuda");
#else
    printf("test_tangent_blocks --cuda: skipped: built without the CUDA backend\n");
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
    blpo_backend *blk = blocks_backend_create();
    for (size_t k = 0; k < sizeof(kMany) / sizeof(kMany[0]); k++)
      check_many_blocks(kMany[k], cpu, blk);
    blk->destroy(blk);
  }
  emu_seen_free();
  cpu->destroy(cpu);
  return test_summary("test_tangent_blocks");
}
