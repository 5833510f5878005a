/* The fused nested critic step (backend.h critic_step) against the separate
 * ops it replaces (blpo_critic_step_ops on the CPU backend: mlp_forward,
 * value_loss, mlp_backward, adam), over three steps in a row from random
 * rows, targets, parameters and Adam moments: tanh and relu, one to three
 * hidden layers of uneven widths, 1 to 66 blocks of rows (the last one
 * partial), one to three agents, the loss recorded in a stats slot or not.
 * The three steps run as three calls of one step, and as one call of three
 * steps (the op's `steps`: Adam's schedule advancing by one per step, the
 * loss recorded at the first only). Two fused sides:
 *
 *   blocks  the CUDA kernels' block programs (include/blpo/critic_blocks.h)
 *           run on the host thread by thread, with 32 and 8 rows per block,
 *           shared memory and partials poisoned; the three-step call also
 *           as the cooperative kernel's grid schedule (run.grid_sync) with
 *           1, 3 and all blocks per agent, which must give the bits of the
 *           two programs per step;
 *   cuda    (--cuda; exits 77 without a device) the CUDA backend's op, the
 *           three-step call with set_grid_sync on (the cooperative kernel)
 *           against off, bit for bit, on a case of 20000 rows whose 625
 *           blocks exceed any device's resident grid (the grid's blocks
 *           loop over the row blocks).
 *
 * Outputs are poisoned with NaN first. Tolerances as test_ppo_minibatch: the
 * gradient to 1e-4 of its norm, each step's change of the parameters and
 * moments to 1e-3 of the change's norm, the stats to 1e-4. Both sides again
 * with run.precision tf32 (the 64-64 and 32-32 layers on TF32 tiles,
 * include/blpo/tc_tile.h), to 5e-3, 1e-2 and 2e-3 as test_ppo_minibatch. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blpo/backend.h"
#include "blpo/critic_blocks.h"
#include "blpo/critic_step.h"
#include "blpo/mlp.h"
#include "cuda_test_backend.h"
#include "emu_order.h"
#include "test_util.h"

enum { STEPS = 3 };

typedef struct {
  const char *name;
  int act, P, n, O;
  int h[3], nh;
} cs_case;

/* The block programs, every block's threads one after another per phase. */
/* run.precision tf32 for the side under test (see the file's comment) */
static int g_tf32;

/* G = 0: the rows and adam programs per step, as the two kernels; G > 0:
 * the cooperative kernel's grid schedule with G blocks per agent (at most
 * the row blocks), a grid barrier between grid phases, each block's units
 * one after another in its own shared memory, poisoned once at the start
 * and kept across grid phases as on the device (so that a unit reading
 * what the block's last unit left shows as a change). */
static void run_blocks(int obs_dim, int P, const blpo_critic_step *cs, int R, int G) {
  blpo_cvf_layout y;
  blpo_cvf_layout_init(&y, obs_dim, cs->critic, cs->n, R, g_tf32);
  const int sf = blpo_cvf_grid_floats(&y);
  size_t np = (size_t)P * blpo_cvf_parts_floats(&y);
  float *parts = test_alloc_floats(np), *sm = test_alloc_shared((size_t)sf);
  test_poison_nan(parts, np, 1);
  blpo_critic_step with_work = *cs;
  with_work.work = parts;
  blpo_cvf_args a = blpo_cvf_args_of(&y, &with_work);
  if (G > 0) {
    if (G > y.blocks)
      G = y.blocks;
    /* each block's own shared memory, poisoned once and kept across every
     * grid phase, as on the device (32-byte aligned blocks of it) */
    const size_t bf = ((size_t)sf + 7) / 8 * 8;
    float *all = test_alloc_shared(bf * (size_t)P * (size_t)G);
    test_poison_nan(all, bf * (size_t)P * (size_t)G, 1);
    for (int s = 0; s < 2 * cs->steps; s++)
      EMU_FOR (p, P)
        EMU_FOR (x, G) {
          float *bsm = all + bf * ((size_t)p * G + (size_t)x);
          for (int u = x; u < blpo_cvf_grid_units(&y, s); u += G)
            for (int ph = 0; ph < blpo_cvf_grid_phases(&y, s); ph++)
              EMU_FOR (t, BLPO_MBF_THREADS)
                blpo_cvf_grid_unit(&a, s, p, u, t, ph, bsm);
        }
    free(all);
  }
  for (int k = 0; G <= 0 && k < cs->steps; k++) {
    EMU_FOR (p, P)
      EMU_FOR (b, y.blocks) {
        test_poison_nan(sm, (size_t)sf, 1);
        for (int ph = 0; ph < blpo_cvf_rows_phases(&y); ph++)
          EMU_FOR (t, BLPO_MBF_THREADS)
            blpo_cvf_rows(&a, p, b, t, ph, sm);
      }
    EMU_FOR (p, P)
      EMU_FOR (c, y.col_blocks) {
        blpo_cvf_adam_shared sh;
        memset(&sh, 0xff, sizeof(sh));
        for (int ph = 0; ph < blpo_cvf_adam_phases(); ph++)
          EMU_FOR (t, BLPO_MBF_THREADS)
            blpo_cvf_adam(&a, p, c, k, t, ph, &sh);
      }
  }
  free(parts);
  free(sm);
}

/* The op with set_grid_sync on, captured as a graph and replayed: the
 * capture must hold the cooperative kernel, one kernel for all the steps
 * (two per step would mean it fell back), and the replay computes it. */
static void run_captured_one_kernel(blpo_backend *gpu, const char *name, int P,
                                    const blpo_critic_step *cs) {
  char why[256] = "";
  gpu->capture_begin(gpu);
  gpu->critic_step(gpu, P, cs);
  void *g = gpu->capture_end(gpu, why, sizeof why);
  CHECK(g != NULL, "%s: the cooperative kernel captured as a graph (%s)", name, why);
  if (!g) {
    gpu->critic_step(gpu, P, cs);
    return;
  }
  size_t kernels = 0;
  gpu->graph_count(g, &kernels);
  CHECK(kernels == 1, "%s: %d steps as %zu kernels with grid sync (one expected)", name, cs->steps,
        kernels);
  gpu->graph_launch(gpu, g);
  gpu->graph_free(gpu, g);
}

enum { F_PARAMS, F_GRAD, F_M, F_V, F_STATS, F_COUNT };

typedef struct {
  float *f[F_COUNT]; /* params, grad, m, v (P, Nc); stats (P, BLPO_STAT_COUNT) */
} state;

/* One case. spc: steps per call (1: STEPS calls of one step; STEPS: one
 * call). grid: blocks, the cooperative kernel's schedule with that many
 * blocks per agent (0: the two programs per step); cuda, nonzero: the op with
 * set_grid_sync on. Where grid is set, the same call also runs without it
 * from the same state and must give the same bits. */
static void check_case(const cs_case *c, int R, int spc, int grid, blpo_backend *gpu) {
  char side[96];
  snprintf(side, sizeof side, "%s%s%s, %d step(s) per call%s", gpu ? "cuda" : "blocks",
           gpu ? "" : (R == 8 ? " of 8 rows" : " of 32 rows"), g_tf32 ? ", tf32" : "", spc,
           grid ? (gpu ? ", grid sync" : ", grid schedule") : "");
  if (grid && !gpu)
    snprintf(side + strlen(side), sizeof side - strlen(side), " of %d", grid);
  blpo_backend *be = blpo_backend_cpu_create(1);
  blpo_mlp critic;
  blpo_mlp_init_shape(&critic, c->O, c->h, c->nh, 1, c->act, 0);
  int P = c->P, n = c->n;
  size_t Nc = critic.num_params, Pn = (size_t)P * n;
  size_t cnt[F_COUNT] = {P * Nc, P * Nc, P * Nc, P * Nc, (size_t)P * BLPO_STAT_COUNT};
  const char *names[F_COUNT] = {"params", "grad", "m", "v", "stats"};
  float *x = test_alloc_floats(Pn * c->O), *target = test_alloc_floats(Pn);
  for (size_t i = 0; i < Pn * c->O; i++)
    x[i] = (float)nrand();
  for (size_t i = 0; i < Pn; i++)
    target[i] = (float)(1.5 * nrand());
  state ops, fused, before, pre, alt; /* pre, alt: the fused side's state before, without grid */
  for (int k = 0; k < F_COUNT; k++) {
    ops.f[k] = test_alloc_floats(cnt[k]), fused.f[k] = test_alloc_floats(cnt[k]),
    before.f[k] = test_alloc_floats(cnt[k]);
    pre.f[k] = test_alloc_floats(cnt[k]), alt.f[k] = test_alloc_floats(cnt[k]);
    test_poison_nan(ops.f[k], cnt[k], 1);
    test_poison_nan(fused.f[k], cnt[k], 1);
  }
  for (size_t i = 0; i < P * Nc; i++) {
    ops.f[F_PARAMS][i] = (float)(0.4 * nrand());
    ops.f[F_M][i] = (float)(1e-3 * nrand());
    ops.f[F_V][i] = (float)(1e-5 * urand());
  }
  for (size_t i = 0; i < cnt[F_STATS]; i++)
    ops.f[F_STATS][i] = (float)urand();
  for (int k = 0; k < F_COUNT; k++)
    if (k != F_GRAD)
      memcpy(fused.f[k], ops.f[k], cnt[k] * sizeof(float));
  float *acts = test_alloc_floats(Pn * critic.act_floats_per_row), *dvalue = test_alloc_floats(Pn);
  float *scratch = test_alloc_floats(Pn * 2 * (size_t)critic.max_width);
  int64_t clock = 2, *clock_dev = NULL;
  blpo_critic_step base = {.n = n, .critic = &critic, .x = x, .target = target};
  base.acts = acts, base.dvalue = dvalue, base.scratch = scratch;

  /* the CUDA side: device copies, kept across the steps */
  float *dev[F_COUNT] = {0}, *x_dev = NULL, *t_dev = NULL, *ws_dev[3] = {0};
  void *work_dev = NULL;
  blpo_dims d = {.P = P, .obs_dim = c->O};
  if (gpu) {
    size_t wb = gpu->critic_step ? gpu->critic_step_work(gpu, &d, &critic, n) : 0;
    work_dev = wb ? gpu->alloc(gpu, wb) : NULL;
    int ok = work_dev != NULL;
    CHECK(ok, "%s: the CUDA backend runs this critic fused", c->name);
    if (!ok)
      goto done;
    for (int k = 0; k < F_COUNT; k++) {
      dev[k] = gpu->alloc(gpu, cnt[k] * sizeof(float));
      gpu->upload(gpu, dev[k], fused.f[k], cnt[k] * sizeof(float));
    }
    x_dev = gpu->alloc(gpu, Pn * c->O * sizeof(float));
    gpu->upload(gpu, x_dev, x, Pn * c->O * sizeof(float));
    t_dev = gpu->alloc(gpu, Pn * sizeof(float));
    gpu->upload(gpu, t_dev, target, Pn * sizeof(float));
    clock_dev = gpu->alloc(gpu, sizeof(int64_t));
    gpu->upload(gpu, clock_dev, &clock, sizeof(int64_t));
    ws_dev[0] = gpu->alloc(gpu, Pn * critic.act_floats_per_row * sizeof(float));
    ws_dev[1] = gpu->alloc(gpu, Pn * sizeof(float));
    ws_dev[2] = gpu->alloc(gpu, Pn * 2 * (size_t)critic.max_width * sizeof(float));
  }
  for (int step = 0; step < STEPS; step += spc) {
    for (int k = 0; k < F_COUNT; k++)
      memcpy(before.f[k], ops.f[k], cnt[k] * sizeof(float));
    blpo_critic_step a = base;
    a.steps = spc;
    a.stat_slot = step == 0 ? BLPO_STAT_CRITIC_LOSS_BEFORE : step == 1 ? -1 : BLPO_STAT_V_LOSS;
    a.sched = blpo_adam_fixed(1e-3f, 0.9f, 0.999f, 1e-5f, 1);
    a.sched.anneal_iters = 10;
    a.sched.step = (blpo_counter){&clock, 15, 4 + step};
    a.params = ops.f[F_PARAMS], a.grad = ops.f[F_GRAD], a.m = ops.f[F_M], a.v = ops.f[F_V];
    a.stats = ops.f[F_STATS];
    blpo_critic_step_ops(be, P, &a);
    blpo_critic_step b = a;
    if (gpu) {
      b.x = x_dev, b.target = t_dev, b.acts = ws_dev[0], b.dvalue = ws_dev[1];
      b.scratch = ws_dev[2], b.sched.step.clock = clock_dev;
      b.params = dev[F_PARAMS], b.grad = dev[F_GRAD], b.m = dev[F_M], b.v = dev[F_V];
      b.stats = dev[F_STATS], b.work = work_dev;
      if (grid) { /* first without the grid sync, from the same state */
        for (int k = 0; k < F_COUNT; k++)
          gpu->download(gpu, pre.f[k], dev[k], cnt[k] * sizeof(float));
        gpu->critic_step(gpu, P, &b);
        for (int k = 0; k < F_COUNT; k++) {
          gpu->download(gpu, alt.f[k], dev[k], cnt[k] * sizeof(float));
          test_poison_nan(fused.f[k], cnt[k], 1); /* the grad is written, never read */
          if (k != F_GRAD)
            memcpy(fused.f[k], pre.f[k], cnt[k] * sizeof(float));
          gpu->upload(gpu, dev[k], fused.f[k], cnt[k] * sizeof(float));
        }
        int on = gpu->set_grid_sync && gpu->set_grid_sync(gpu, 1);
        CHECK(on, "%s: the device launches the cooperative kernel", c->name);
        run_captured_one_kernel(gpu, c->name, P, &b);
        if (gpu->set_grid_sync)
          gpu->set_grid_sync(gpu, 0);
      } else {
        gpu->critic_step(gpu, P, &b);
      }
      for (int k = 0; k < F_COUNT; k++)
        gpu->download(gpu, fused.f[k], dev[k], cnt[k] * sizeof(float));
    } else {
      b.params = fused.f[F_PARAMS], b.grad = fused.f[F_GRAD], b.m = fused.f[F_M];
      b.v = fused.f[F_V], b.stats = fused.f[F_STATS];
      if (grid) { /* first the two programs per step, on a copy */
        blpo_critic_step w = b;
        for (int k = 0; k < F_COUNT; k++)
          memcpy(alt.f[k], fused.f[k], cnt[k] * sizeof(float));
        w.params = alt.f[F_PARAMS], w.grad = alt.f[F_GRAD], w.m = alt.f[F_M];
        w.v = alt.f[F_V], w.stats = alt.f[F_STATS];
        run_blocks(c->O, P, &w, R, 0);
      }
      run_blocks(c->O, P, &b, R, grid);
      for (int k = 0; k < F_COUNT; k++) {
        char what[160];
        snprintf(what, sizeof what, "%s, R %d, %d per call, grid %d, step %d: %s", c->name, R, spc,
                 grid, step + 1, names[k]);
        emu_same(what, fused.f[k], cnt[k] * sizeof(float));
      }
    }
    for (int k = 0; grid && k < F_COUNT; k++)
      CHECK(!memcmp(fused.f[k], alt.f[k], cnt[k] * sizeof(float)),
            "%s, %s, step %d: %s not bit-identical to the two kernels per step", c->name, side,
            step + 1, names[k]);
    for (int k = 0; k < F_COUNT; k++) {
      const float *xf = fused.f[k], *yo = ops.f[k];
      if (k == F_STATS) {
        for (size_t i = 0; i < cnt[k]; i++)
          if (!(fabsf(xf[i] - yo[i]) <= (g_tf32 ? 2e-3f : 1e-4f) * (1.0f + fabsf(yo[i])))) {
            CHECK(0, "%s, %s, step %d: stats[%zu] %g, ops %g", c->name, side, step + 1, i,
                  (double)xf[i], (double)yo[i]);
            break;
          }
        continue;
      }
      double e = test_rel_norm_err(xf, yo, k == F_GRAD ? NULL : before.f[k], cnt[k]);
      double tol = g_tf32 ? (k == F_GRAD ? 5e-3 : 1e-2) : (k == F_GRAD ? 1e-4 : 1e-3);
      CHECK(e <= tol, "%s, %s, step %d: %s off by %.3g of its norm (tolerance %g)", c->name, side,
            step + 1, names[k], e, tol);
      if (g_tf32 && getenv("BLPO_TEST_VERBOSE"))
        printf("%s, %s, step %d: %s off by %.3g\n", c->name, side, step + 1, names[k], e);
    }
  }
done:
  if (gpu) {
    for (int k = 0; k < F_COUNT; k++)
      if (dev[k])
        gpu->release(gpu, dev[k]);
    void *ps[] = {x_dev, t_dev, clock_dev, ws_dev[0], ws_dev[1], ws_dev[2], work_dev};
    for (size_t k = 0; k < sizeof(ps) / sizeof(ps[0]); k++)
      if (ps[k])
        gpu->release(gpu, ps[k]);
  }
  for (int k = 0; k < F_COUNT; k++) {
    free(ops.f[k]);
    free(fused.f[k]);
    free(before.f[k]);
    free(pre.f[k]);
    free(alt.f[k]);
  }
  free(x);
  free(target);
  free(acts);
  free(dvalue);
  free(scratch);
  be->destroy(be);
}

int main(int argc, char **argv) {
  int cuda = argc > 1 && !strcmp(argv[1], "--cuda");
  const cs_case cases[] = {
      {"tanh 64-64, CartPole obs, 1024 rows", BLPO_ACT_TANH, 1, 1024, 4, {64, 64}, 2},
      {"relu 80-24, Acrobot obs, 1000 rows, 2 agents", BLPO_ACT_RELU, 2, 1000, 6, {80, 24}, 2},
      {"tanh 32-32-32, Pendulum obs, 2100 rows", BLPO_ACT_TANH, 1, 2100, 3, {32, 32, 32}, 3},
      {"tanh 20, MountainCar obs, 100 rows, 3 agents", BLPO_ACT_TANH, 3, 100, 2, {20}, 1},
      {"relu 17-9, 7 rows", BLPO_ACT_RELU, 2, 7, 5, {17, 9}, 2},
  };
  const size_t nc = sizeof(cases) / sizeof(cases[0]);
  if (cuda) {
#ifdef BLPO_WITH_CUDA
    char why[256];
    blpo_backend *gpu = blpo_test_cuda_create(why, sizeof why);
    if (!gpu) {
      printf("test_critic_step --cuda: skipped: %s\n", why);
      return 77;
    }
    /* 625 blocks of 32 rows: more than any device holds at once at 2 per SM */
    const cs_case big = {
        "tanh 64-64, CartPole obs, 20000 rows", BLPO_ACT_TANH, 1, 20000, 4, {64, 64}, 2};
    for (int tf32 = 0; tf32 < 2; tf32++) {
      if (tf32) { /* the kernel's WMMA tiles on the device */
        CHECK(gpu->set_gemm_precision != NULL, "the CUDA backend has set_gemm_precision");
        if (!gpu->set_gemm_precision)
          break;
        gpu->set_gemm_precision(gpu, 1);
      }
      g_tf32 = tf32;
      for (size_t k = 0; k < nc; k++) {
        check_case(&cases[k], 0, 1, 0, gpu);
        check_case(&cases[k], 0, STEPS, 1, gpu); /* the cooperative kernel, and without */
      }
      check_case(&big, 0, STEPS, 1, gpu);
      g_tf32 = 0;
    }
    if (gpu->set_gemm_precision)
      gpu->set_gemm_precision(gpu, 0);
    gpu->destroy(gpu);
    return test_summary("test_critic_step --cuda");
#else
    printf("test_critic_step --cuda: skipped: built without the CUDA backend\n");
    return 77;
#endif
  }
  const int rows[] = {BLPO_MBF_ROWS, 8};
  const uint64_t seed = g_rng;
  for (int o = 0; o < EMU_ORDERS; o++) {
    emu_begin_order(o, seed);
    for (size_t r = 0; r < sizeof(rows) / sizeof(rows[0]); r++)
      for (size_t k = 0; k < nc; k++)
        check_case(&cases[k], rows[r], 1, 0, NULL);
    /* the three steps as one call: the two programs per step, then the grid
     * schedule with one block per agent (every unit in one block), 3 (a
     * block with more units than another) and one per row block */
    for (size_t k = 0; k < nc; k++)
      check_case(&cases[k], BLPO_MBF_ROWS, STEPS, 0, NULL);
    const int grids[] = {1, 3, 1 << 20};
    for (size_t gi = 0; gi < sizeof(grids) / sizeof(grids[0]); gi++) {
      check_case(&cases[0], BLPO_MBF_ROWS, STEPS, grids[gi], NULL);
      check_case(&cases[1], BLPO_MBF_ROWS, STEPS, grids[gi], NULL);
      check_case(&cases[3], 8, STEPS, grids[gi], NULL);
    }
    g_tf32 = 1; /* TF32 tiles at 32 rows per block: the 64-64 and 32-32 cases */
    check_case(&cases[0], BLPO_MBF_ROWS, 1, 0, NULL);
    check_case(&cases[2], BLPO_MBF_ROWS, 1, 0, NULL);
    check_case(&cases[0], BLPO_MBF_ROWS, STEPS, 3, NULL);
    g_tf32 = 0;
  }
  emu_seen_free();
  return test_summary("test_critic_step");
}
