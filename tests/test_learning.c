/* Learning check: trains with a config file (plus optional overrides) on the
 * CPU backend and requires every agent's mean return over its last 100
 * episodes to reach a threshold.
 *   test_learning CONFIG THRESHOLD MIN_AGENTS [key=value ...]
 * MIN_AGENTS: how many agents must reach it (0 = all), or "mean": the mean
 * over agents must reach it. With the environment variable
 * BLPO_TEST_DEVICE=cuda it trains on the CUDA backend, and exits 77 with the
 * reason when there is no usable device; with BLPO_TEST_DEVICE=blocks on
 * the CPU running the CUDA kernels' block programs (tests/blocks_backend.h),
 * where run.precision=tf32 emulates the kernels' TF32 tiles. */
#include <stdlib.h>
#include <string.h>

#include "blocks_backend.h"
#include "blpo/config_load.h"
#include "blpo/trainer.h"
#include "test_util.h"

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: test_learning CONFIG THRESHOLD MIN_AGENTS [key=value ...]\n");
    return 2;
  }
  blpo_config c;
  blpo_config_src src;
  blpo_config_defaults(&c);
  memset(&src, 0, sizeof(src));
  if (blpo_config_load_file(&c, &src, argv[1]) != 0)
    return 2;
  for (int i = 4; i < argc; i++)
    if (blpo_config_apply_set(&c, &src, argv[i]) != 0)
      return 2;
  if (blpo_config_validate(&c, &src) != 0)
    return 2;
  double threshold = atof(argv[2]);
  blpo_backend *be = NULL;
  const char *dev = getenv("BLPO_TEST_DEVICE");
  if (dev && !strcmp(dev, "cuda")) {
#ifdef BLPO_WITH_CUDA
    char why[256];
    be = blpo_backend_cuda_create(why, sizeof(why));
    if (!be) {
      printf("SKIP: no usable CUDA device: %s\n", why);
      return 77;
    }
#else
    printf("SKIP: this build has no CUDA backend\n");
    return 77;
#endif
  } else if (dev && !strcmp(dev, "blocks")) {
    be = blocks_backend_create();
  } else {
    be = blpo_backend_cpu_create(0);
  }
  printf("backend: %s\n", be->name);
  char err[256];
  blpo_trainer *tr = blpo_trainer_create(&c, be, err, sizeof(err));
  if (!tr) {
    fprintf(stderr, "%s\n", err);
    return 1;
  }
  blpo_iter_metrics *m = calloc((size_t)c.num_seeds, sizeof(*m));
  int64_t iters = blpo_trainer_num_iterations(tr);
  for (int64_t it = 0; it < iters; it++)
    blpo_trainer_iterate(tr, m);
  int passed = 0;
  for (int p = 0; p < c.num_seeds; p++) {
    printf("agent %d (seed %lld): mean return of the last %d episodes %.2f (threshold %.2f)\n", p,
           (long long)(c.seed + p), m[p].recent_count, m[p].recent_mean, threshold);
    if (m[p].recent_mean >= threshold)
      passed++;
  }
  if (!strcmp(argv[3], "mean")) {
    double mean = 0;
    for (int p = 0; p < c.num_seeds; p++)
      mean += m[p].recent_mean / c.num_seeds;
    printf("mean over %d agents: %.2f (threshold %.2f)\n", c.num_seeds, mean, threshold);
    CHECK(mean >= threshold, "mean return %.2f below %.2f", mean, threshold);
  } else {
    int need = atoi(argv[3]) > 0 ? atoi(argv[3]) : c.num_seeds;
    printf("%d of %d agents reached %.2f (need %d)\n", passed, c.num_seeds, threshold, need);
    CHECK(passed >= need, "only %d of %d agents reached the threshold", passed, c.num_seeds);
  }
  free(m);
  blpo_trainer_destroy(tr);
  be->destroy(be);
  return test_summary("test_learning");
}
