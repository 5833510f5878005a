/* Whole iterations on the CPU backend and on a second backend from the
 * same state (tests/test_gpu_update.c: CUDA; tests/test_blocks_update.c: the
 * CPU running the CUDA kernels' block programs): the same config and seeds
 * give both trainers the same initial parameters, env states and random
 * streams, so `iters` iterations (rollout, targets, every minibatch update
 * with its nested critic loop, Nystrom solve, mixed term and Adam steps)
 * must end with the same parameters and metrics up to float rounding.
 *
 * Tolerance: parameters |other - cpu| / |cpu| < 1e-3 per agent and network
 * (norms over the whole parameter vector). Adam divides by sqrt(v), so a
 * parameter whose gradient is near zero moves by up to lr per step with a
 * sign set by rounding; over one iteration's few steps that stays far under
 * 1e-3 of the norm, while any indexing or formula error moves it by O(1).
 * Metrics: losses and norms agree to 1e-2 relative (means over the
 * iteration's minibatches, each already carrying the parameter drift).
 * A sampled action flips between backends only if a uniform draw lands
 * within rounding of a CDF boundary (~1e-7 per draw; 512 draws here). */
#ifndef BLPO_TEST_UPDATE_COMPARE_H
#define BLPO_TEST_UPDATE_COMPARE_H

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "blpo/backend.h"
#include "blpo/cli.h"
#include "blpo/config_load.h"
#include "blpo/trainer.h"
#include "test_util.h"

static double rel_norm_err(const float *a, const float *b, size_t n) {
  double d = 0, r = 0;
  for (size_t i = 0; i < n; i++) {
    if (!isfinite(a[i]) || !isfinite(b[i]))
      return INFINITY;
    d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    r += (double)b[i] * b[i];
  }
  return sqrt(d) / (sqrt(r) + 1e-30);
}

static int metric_close(float g, float c) {
  if (isnan(c))
    return isnan(g);
  return fabsf(g - c) <= 1e-2f * fmaxf(1.0f, fabsf(c));
}

/* config with the cases' common small sizes (2 agents, 16 envs x 32 steps,
 * 4 minibatches, 2 epochs), then sets, for `iters` iterations; 0, or a
 * failed check and -1. */
static int load_case_config(blpo_config *c, const char *config, const char *const *sets, int nsets,
                            int iters) {
  blpo_config_src src;
  blpo_config_defaults(c);
  memset(&src, 0, sizeof(src));
  char path[BLPO_PATH_MAX];
  if (blpo_resolve_config_path(config, path, sizeof(path)) != 0 ||
      blpo_config_load_file(c, &src, path) != 0) {
    CHECK(0, "cannot load %s", config);
    return -1;
  }
  const char *common[] = {"run.num_seeds=2", "env.num_envs=16", "env.num_steps=32",
                          "algo.num_minibatches=4", "algo.num_epochs=2"};
  for (int i = 0; i < 5; i++)
    blpo_config_apply_set(c, &src, common[i]);
  for (int i = 0; i < nsets; i++)
    if (blpo_config_apply_set(c, &src, sets[i]) != 0) {
      CHECK(0, "bad override %s", sets[i]);
      return -1;
    }
  c->total_steps = (int64_t)iters * c->num_envs * c->num_steps;
  if (blpo_config_validate(c, &src) != 0) {
    CHECK(0, "invalid config");
    return -1;
  }
  return 0;
}

/* One case: `iters` iterations of config (with the common small sizes and
 * sets) on the CPU backend and on make()'s backend, then both agents'
 * parameters and metrics compared. */
static void run_case(const char *config, const char *const *sets, int nsets, int iters,
                     blpo_backend *(*make)(char *why, size_t why_len)) {
  blpo_config c;
  if (load_case_config(&c, config, sets, nsets, iters) != 0)
    return;
  char why[256], err[256];
  blpo_backend *bc = blpo_backend_cpu_create(1);
  blpo_backend *bg = make(why, sizeof(why));
  blpo_trainer *tc = blpo_trainer_create(&c, bc, err, sizeof(err));
  blpo_trainer *tg = tc ? blpo_trainer_create(&c, bg, err, sizeof(err)) : NULL;
  CHECK(tc && tg, "trainer: %s", err);
  if (!tc || !tg)
    exit(1);
  int P = c.num_seeds;
  blpo_iter_metrics *mc = calloc((size_t)P, sizeof(*mc));
  blpo_iter_metrics *mg = calloc((size_t)P, sizeof(*mg));
  for (int it = 0; it < iters; it++) {
    blpo_trainer_iterate(tc, mc);
    blpo_trainer_iterate(tg, mg);
  }
  size_t Na = blpo_trainer_actor_size(tc), Nc = blpo_trainer_critic_size(tc);
  float *ac = malloc(sizeof(float) * Na), *ag = malloc(sizeof(float) * Na);
  float *cc = malloc(sizeof(float) * Nc), *cg = malloc(sizeof(float) * Nc);
  char label[256];
  snprintf(label, sizeof(label), "%s", config);
  for (int i = 0; i < nsets; i++)
    snprintf(label + strlen(label), sizeof(label) - strlen(label), " %s", sets[i]);
  for (int p = 0; p < P; p++) {
    blpo_trainer_get_params(tc, p, ac, cc);
    memset(ag, 0xFF, sizeof(float) * Na); /* NaN poison: an unread download shows */
    memset(cg, 0xFF, sizeof(float) * Nc);
    blpo_trainer_get_params(tg, p, ag, cg);
#ifdef UPDATE_COMPARE_SEEN /* the other backend's results, to a test's own check */
    UPDATE_COMPARE_SEEN(label, p, ag, Na, cg, Nc, &mg[p]);
#endif
    double ea = rel_norm_err(ag, ac, Na), ec = rel_norm_err(cg, cc, Nc);
    printf("%-60s agent %d: actor %.2e critic %.2e", label, p, ea, ec);
    CHECK(ea < 1e-3, "%s agent %d: actor params differ by %.3e", label, p, ea);
    CHECK(ec < 1e-3, "%s agent %d: critic params differ by %.3e", label, p, ec);
    const blpo_iter_metrics *x = &mc[p], *y = &mg[p];
    struct {
      const char *name;
      float cpu, gpu;
    } ms[] = {{"pg_loss", x->pg_loss, y->pg_loss},
              {"v_loss", x->v_loss, y->v_loss},
              {"entropy", x->entropy, y->entropy},
              {"actor_gnorm", x->actor_gnorm, y->actor_gnorm},
              {"critic_gnorm", x->critic_gnorm, y->critic_gnorm},
              {"critic_loss_before", x->critic_loss_before, y->critic_loss_before},
              {"critic_loss_after", x->critic_loss_after, y->critic_loss_after},
              {"actor_loss", x->actor_loss, y->actor_loss},
              {"g_norm", x->g_norm, y->g_norm},
              {"p_norm", x->p_norm, y->p_norm},
              {"rank", x->rank, y->rank},
              {"ret_mean", x->ret_mean, y->ret_mean}};
    int bad = 0;
    for (size_t k = 0; k < sizeof(ms) / sizeof(ms[0]); k++)
      if (!metric_close(ms[k].gpu, ms[k].cpu)) {
        CHECK(0, "%s agent %d: %s gpu %g cpu %g", label, p, ms[k].name, ms[k].gpu, ms[k].cpu);
        bad++;
      }
    printf("%s\n", bad ? "  METRICS DIFFER" : "  metrics ok");
  }
  free(ac), free(ag), free(cc), free(cg), free(mc), free(mg);
  blpo_trainer_destroy(tc);
  blpo_trainer_destroy(tg);
  bc->destroy(bc);
  bg->destroy(bg);
}

/* The cases both tests run. */
static void run_all_cases(blpo_backend *(*make)(char *why, size_t why_len)) {
  const char *ppo[] = {"algo.name=ppo"};
  const char *nested[] = {"algo.name=nested"};
  const char *blpo[] = {"algo.name=blpo"};
  /* the nested steps as one cooperative kernel (a backend without it: the same run) */
  const char *ppo_grid[] = {"algo.name=ppo", "run.grid_sync=true"};
  const char *nested_grid[] = {"algo.name=nested", "run.grid_sync=true"};
  const char *blpo_grid[] = {"algo.name=blpo", "run.grid_sync=true"};
  const char *cg[] = {"algo.name=blpo", "algo.hypergrad.method=cg"};
  const char *exact[] = {"algo.name=blpo", "algo.hypergrad.method=exact",
                         "net.critic_hidden=[16,16]"};
  run_case("cartpole.yaml", ppo, 1, 2, make);
  run_case("cartpole.yaml", nested, 1, 2, make);
  run_case("cartpole.yaml", blpo, 1, 2, make);
  run_case("cartpole.yaml", ppo_grid, 2, 2, make);
  run_case("cartpole.yaml", nested_grid, 2, 2, make);
  run_case("cartpole.yaml", blpo_grid, 2, 2, make);
  run_case("cartpole.yaml", cg, 2, 1, make);
  run_case("cartpole.yaml", exact, 3, 1, make);
  run_case("pendulum.yaml", ppo, 1, 2, make);
  run_case("pendulum.yaml", blpo, 1, 2, make);
}

#endif
