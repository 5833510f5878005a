/* Whole iterations on the CPU and CUDA backends from the same state, every
 * op of ppo, nested and blpo (nystrom, cg and exact), P = 2 agents, a
 * discrete (CartPole) and a continuous (Pendulum) task: see
 * tests/update_compare.h for what is compared and to what tolerance.
 *
 * Then two trainers on one CUDA backend while the first replays a graph
 * (check_shared_backend).
 *
 * Exits 77 with the reason when there is no usable CUDA device. */
#include "update_compare.h"

/* Two BLPO trainers on one CUDA backend: once the first replays a captured
 * graph (which holds the solver workspaces' addresses), a second that needs
 * larger workspaces is refused with the reason, one the workspaces hold is
 * accepted, and the first goes on replaying and agrees with a CPU trainer
 * iteration for iteration. */
static void check_shared_backend(void) {
  blpo_config c;
  blpo_config_src src;
  blpo_config_defaults(&c);
  memset(&src, 0, sizeof(src));
  char path[BLPO_PATH_MAX], why[256], err[256];
  if (blpo_resolve_config_path("cartpole.yaml", path, sizeof(path)) != 0 ||
      blpo_config_load_file(&c, &src, path) != 0) {
    CHECK(0, "cannot load cartpole.yaml");
    return;
  }
  const char *sets[] = {"run.num_seeds=2", "env.num_envs=16", "env.num_steps=32",
                        "algo.num_minibatches=4", "algo.num_epochs=2"};
  for (int i = 0; i < 5; i++)
    blpo_config_apply_set(&c, &src, sets[i]);
  c.total_steps = (int64_t)8 * c.num_envs * c.num_steps;
  CHECK(blpo_config_validate(&c, &src) == 0, "invalid config");
  blpo_backend *gpu = blpo_backend_cuda_create(why, sizeof(why));
  blpo_backend *cpu = blpo_backend_cpu_create(1);
  blpo_trainer *a = blpo_trainer_create(&c, gpu, err, sizeof(err));
  blpo_trainer *ref = blpo_trainer_create(&c, cpu, err, sizeof(err));
  CHECK(a && ref, "trainers: %s", err);
  if (!a || !ref)
    return;
  blpo_iter_metrics ma[2], mr[2];
  for (int it = 0; it < 3; it++) {
    blpo_trainer_iterate(a, ma);
    blpo_trainer_iterate(ref, mr);
  }
  CHECK(blpo_trainer_replaying(a), "the first trainer replays a graph after 3 iterations");
  blpo_config bigger = c;
  bigger.hg_rank = c.hg_rank + 3;
  blpo_trainer *b = blpo_trainer_create(&bigger, gpu, err, sizeof(err));
  CHECK(!b, "a trainer needing another rank is refused while a graph holds the workspaces");
  if (b)
    blpo_trainer_destroy(b);
  else
    printf("refused as it should be: %s\n", err);
  blpo_config smaller = c;
  smaller.num_seeds = 1;
  blpo_trainer *s = blpo_trainer_create(&smaller, gpu, err, sizeof(err));
  CHECK(s != NULL, "a trainer the workspaces hold is accepted: %s", err);
  if (s) {
    blpo_iter_metrics ms[1];
    blpo_trainer_iterate(s, ms); /* on the workspaces the first's graph holds */
    blpo_trainer_destroy(s);
  }
  for (int it = 0; it < 2; it++) {
    blpo_trainer_iterate(a, ma);
    blpo_trainer_iterate(ref, mr);
  }
  size_t Na = blpo_trainer_actor_size(a), Nc = blpo_trainer_critic_size(a);
  float *ag = malloc(sizeof(float) * Na), *cg = malloc(sizeof(float) * Nc);
  float *ac = malloc(sizeof(float) * Na), *cc = malloc(sizeof(float) * Nc);
  for (int p = 0; p < 2; p++) {
    blpo_trainer_get_params(a, p, ag, cg);
    blpo_trainer_get_params(ref, p, ac, cc);
    double ea = rel_norm_err(ag, ac, Na), ec = rel_norm_err(cg, cc, Nc);
    CHECK(ea < 1e-3 && ec < 1e-3,
          "shared backend, agent %d: after the refused and accepted trainers, actor %.2e critic "
          "%.2e off the CPU",
          p, ea, ec);
  }
  free(ag), free(cg), free(ac), free(cc);
  blpo_trainer_destroy(a);
  blpo_trainer_destroy(ref);
  gpu->destroy(gpu);
  cpu->destroy(cpu);
}

int main(void) {
  char why[256];
  blpo_backend *probe = blpo_backend_cuda_create(why, sizeof(why));
  if (!probe) {
    printf("SKIP: no usable CUDA device: %s\n", why);
    return 77;
  }
  probe->destroy(probe);
  run_all_cases(blpo_backend_cuda_create);
  check_shared_backend();
  if (g_failures) {
    fprintf(stderr, "test_gpu_update: %d check(s) failed\n", g_failures);
    return 1;
  }
  printf("test_gpu_update: all cases agree\n");
  return 0;
}
