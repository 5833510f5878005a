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

int main(void) {
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
