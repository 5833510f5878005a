/* Whole iterations on the CPU and CUDA backends from the same state, every
 * op of ppo, nested and blpo (nystrom, cg and exact), P = 2 agents, a
 * discrete (CartPole) and a continuous (Pendulum) task: see
 * tests/update_compare.h for what is compared and to what tolerance.
 *
 * Exits 77 with the reason when there is no usable CUDA device. */
#include "update_compare.h"

int main(void) {
  char why[256];
  blpo_backend *probe = blpo_backend_cuda_create(why, sizeof(why));
  if (!probe) {
    printf("SKIP: no usable CUDA device: %s\n", why);
    return 77;
  }
  probe->destroy(probe);
  run_all_cases(blpo_backend_cuda_create);
  if (g_failures) {
    fprintf(stderr, "test_gpu_update: %d check(s) failed\n", g_failures);
    return 1;
  }
  printf("test_gpu_update: all cases agree\n");
  return 0;
}
