/* Whole iterations on the CPU backend and on the CPU running the CUDA
 * kernels' block programs in the trainer's real calls (tests/blocks_backend.h),
 * from the same state: ppo, nested and blpo (nystrom, cg and exact), P = 2
 * agents, CartPole and Pendulum; see tests/update_compare.h for what is
 * compared and to what tolerance. The per-op tests check each program on
 * random inputs; this checks the CUDA backend's dispatch, layouts,
 * workspaces and strides as the trainer drives them, without a GPU. */
#include "blocks_backend.h"
#include "update_compare.h"

static blpo_backend *make_blocks(char *why, size_t why_len) {
  blpo_backend *be = blocks_backend_create();
  if (!be)
    snprintf(why, why_len, "cannot create the CPU backend");
  return be;
}

int main(void) {
  run_all_cases(make_blocks);
  /* every program ran (a dispatch that always fell back would compare the
   * CPU with itself) */
  for (int k = 0; k < BLK_PROGRAMS; k++) {
    printf("%s: %zu blocks\n", blk_names[k], g_blk.ran[k]);
    CHECK(g_blk.ran[k] > 0, "the %s block program never ran", blk_names[k]);
  }
  if (g_failures) {
    fprintf(stderr, "test_blocks_update: %d check(s) failed\n", g_failures);
    return 1;
  }
  printf("test_blocks_update: all cases agree\n");
  return 0;
}
