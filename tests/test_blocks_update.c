/* Whole iterations on the CPU backend and on the CPU running the CUDA
 * kernels' block programs in the trainer's real calls (tests/blocks_backend.h),
 * from the same state: ppo, nested and blpo (nystrom, cg and exact), P = 2
 * agents, CartPole and Pendulum; see tests/update_compare.h for what is
 * compared and to what tolerance. The per-op tests check each program on
 * random inputs; this checks the CUDA backend's dispatch, layouts,
 * workspaces and strides as the trainer drives them, without a GPU.
 * Every case runs with the emulated threads and blocks in forward and in
 * reverse order (tests/emu_order.h) and must give the same bits both ways;
 * the per-op tests also take the strided order. */
#include "blocks_backend.h"
#include "blpo/trainer.h"

/* The block-program side's parameters and metrics, for the order check. */
static void blocks_seen(const char *label, int p, const float *actor, size_t Na,
                        const float *critic, size_t Nc, const blpo_iter_metrics *m) {
  char what[320];
  snprintf(what, sizeof what, "%s agent %d: actor parameters", label, p);
  emu_same(what, actor, Na * sizeof(float));
  snprintf(what, sizeof what, "%s agent %d: critic parameters", label, p);
  emu_same(what, critic, Nc * sizeof(float));
  /* the metrics' floats, pg_loss to ihvp_relerr (one type: no padding) */
  snprintf(what, sizeof what, "%s agent %d: metrics", label, p);
  emu_same(what, &m->pg_loss,
           (size_t)((const char *)(&m->ihvp_relerr + 1) - (const char *)&m->pg_loss));
}
#define UPDATE_COMPARE_SEEN blocks_seen
#include "update_compare.h"

static blpo_backend *make_blocks(char *why, size_t why_len) {
  blpo_backend *be = blocks_backend_create();
  if (!be)
    snprintf(why, why_len, "cannot create the CPU backend");
  return be;
}

/* What the trainer reports of run.grid_sync (blpo_trainer_grid_sync, the
 * benchmark's "grid sync" column) on the blocks backend, which has the
 * cooperative schedules: on where the update is fused, off where
 * run.fused_update is off (the run then says the flag has no effect), and
 * then no step or minibatch runs as a grid. */
static void check_grid_sync_reported(void) {
  const struct {
    const char *algo, *fused;
    int want;
  } cases[] = {{"algo.name=blpo", "run.fused_update=auto", 1},
               {"algo.name=ppo", "run.fused_update=auto", 1},
               {"algo.name=blpo", "run.fused_update=false", 0},
               {"algo.name=ppo", "run.fused_update=false", 0}};
  for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
    blpo_config c;
    const char *sets[] = {cases[k].algo, cases[k].fused, "run.grid_sync=true"};
    if (load_case_config(&c, "cartpole.yaml", sets, 3, 1) != 0)
      continue;
    char err[256];
    blpo_backend *be = blocks_backend_create();
    blpo_trainer *tr = be ? blpo_trainer_create(&c, be, err, sizeof(err)) : NULL;
    CHECK(tr != NULL, "grid sync case %zu: trainer: %s", k, be ? err : "no backend");
    if (tr) {
      int got = blpo_trainer_grid_sync(tr);
      CHECK(got == cases[k].want, "%s %s run.grid_sync=true: reported %d, expected %d",
            cases[k].algo, cases[k].fused, got, cases[k].want);
      long long steps = g_blk.grid_steps, mbs = g_blk.grid_minibatches;
      blpo_iter_metrics m[2];
      blpo_trainer_iterate(tr, m);
      int ran = g_blk.grid_steps > steps || g_blk.grid_minibatches > mbs;
      CHECK(ran == cases[k].want, "%s %s run.grid_sync=true: %s as a grid", cases[k].algo,
            cases[k].fused, ran ? "ran" : "did not run");
      blpo_trainer_destroy(tr);
    }
    if (be)
      be->destroy(be);
  }
  /* main's checks that every program and schedule ran count from here */
  memset(g_blk.ran, 0, sizeof(g_blk.ran));
  g_blk.grid_steps = g_blk.grid_minibatches = 0;
}

int main(void) {
  check_grid_sync_reported();
  const int orders[] = {EMU_FORWARD, EMU_REVERSE};
  for (size_t o = 0; o < sizeof(orders) / sizeof(orders[0]); o++) {
    emu_begin_order(orders[o], g_rng);
    printf("block programs: threads and blocks in %s order\n", emu_order_names[orders[o]]);
    run_all_cases(make_blocks);
  }
  emu_seen_free();
  /* every program ran (a dispatch that always fell back would compare the
   * CPU with itself) */
  for (int k = 0; k < BLK_PROGRAMS; k++) {
    printf("%s: %zu blocks\n", blk_names[k], g_blk.ran[k]);
    CHECK(g_blk.ran[k] > 0, "the %s block program never ran", blk_names[k]);
  }
  printf("critic steps, PPO minibatches as the cooperative kernels' schedules: %lld, %lld\n",
         g_blk.grid_steps, g_blk.grid_minibatches);
  CHECK(g_blk.grid_steps > 0, "run.grid_sync never ran the nested steps as one grid");
  CHECK(g_blk.grid_minibatches > 0, "run.grid_sync never ran a PPO minibatch as one grid");
  if (g_failures) {
    fprintf(stderr, "test_blocks_update: %d check(s) failed\n", g_failures);
    return 1;
  }
  printf("test_blocks_update: all cases agree\n");
  return 0;
}
