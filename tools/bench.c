/* blpo-bench: per-iteration cost of ppo, nested and blpo on one config and
 * machine, measured side by side in one process, with BLPO's minibatch
 * update split into its phases (nested critic, actor loss and v, Hessian
 * rows, core solve, mixed term, actor step).
 *
 *   blpo-bench [--config FILE] [--algos ppo,nested,blpo] [--iters N]
 *              [--warmup W] [--device cpu|cuda] [--set key=value]...
 *              [--label TEXT] [--markdown]
 *   blpo-bench --env-rate [--config FILE] [--device cpu|cuda] [--set ...]
 *              [--iters STEPS]
 *
 * The end-to-end figure is wall-clock time over N iterations run as in
 * training (each iteration ends by reading its metrics, which synchronises
 * the device), with the run's replay and fused-rollout settings: on the CUDA
 * backend with run.cuda_graph the iterations are graph replays, and the
 * table gives the kernels one replay launches. The phase split comes from N
 * further iterations in profile mode, run directly (not replayed), with each
 * phase timed on the backend's clock: CUDA events recorded on the stream at
 * every phase mark (nothing waits between phases; the iteration's events are
 * read at its end), the monotonic clock on the CPU, whose ops are
 * synchronous. Without graph replay the launches of a small iteration cost
 * more, so on a GPU the phases add up to more than the replayed iteration's
 * time. The first W iterations are not counted; on
 * CUDA with graphs at least 2 (the first runs directly, the second is
 * captured). */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "blpo/backend.h"
#include "blpo/cli.h"
#include "blpo/config_load.h"
#include "blpo/env.h"
#include "blpo/mbf_tile.h" /* this build's register tile (the plugin's: cuda_plugin.h) */
#include "blpo/trainer.h"
#include "blpo_build_info.h"
#ifdef BLPO_WITH_CUDA
#include "blpo/cuda_device.h"
#endif

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void cpu_model(char *out, size_t n) {
  snprintf(out, n, "unknown CPU");
  FILE *f = fopen("/proc/cpuinfo", "r");
  if (!f)
    return;
  char line[512];
  while (fgets(line, sizeof(line), f))
    if (!strncmp(line, "model name", 10)) {
      char *c = strchr(line, ':');
      if (c) {
        c += 2;
        c[strcspn(c, "\n")] = 0;
        snprintf(out, n, "%s", c);
      }
      break;
    }
  fclose(f);
}

/* "CPU backend" or "CUDA backend on <device name>", for the tables. */
static void device_label(int cuda, char *out, size_t n) {
  snprintf(out, n, "CPU backend");
#ifdef BLPO_WITH_CUDA
  if (cuda) {
    char name[256];
    blpo_cuda_device_name(name, sizeof(name));
    snprintf(out, n, "CUDA backend on %s", name);
  }
#else
  (void)cuda;
#endif
}

/* The config file with the --set overrides and, when algo != NULL,
 * algo.name=algo, not yet validated. 0 on success (errors already printed). */
static int load_config(blpo_config *c, blpo_config_src *src, const char *path,
                       const char *const *sets, int nsets, const char *algo) {
  memset(src, 0, sizeof(*src));
  blpo_config_defaults(c);
  if (blpo_config_load_file(c, src, path) != 0)
    return -1;
  for (int s = 0; s < nsets; s++)
    if (blpo_config_apply_set(c, src, sets[s]) != 0)
      return -1;
  if (algo) {
    char set_algo[48];
    snprintf(set_algo, sizeof(set_algo), "algo.name=%s", algo);
    if (blpo_config_apply_set(c, src, set_algo) != 0)
      return -1;
  }
  return 0;
}

/* cuda: 1 for the CUDA backend (only in CUDA builds). */
static blpo_backend *make_backend(int cuda, int threads) {
  if (!cuda)
    return blpo_backend_cpu_create(threads);
#ifdef BLPO_WITH_CUDA
  char why[256];
  blpo_backend *be = blpo_backend_cuda_create(why, sizeof(why));
  if (!be)
    fprintf(stderr, "blpo-bench: --device cuda: %s\n", why);
  return be;
#else
  fprintf(stderr, "blpo-bench: --device cuda: this build has no CUDA support\n");
  return NULL;
#endif
}

/* --env-rate: the env kernels alone. Every env of the config's population
 * steps `steps` times with actions drawn once up front (uniform discrete
 * indices, or N(0,1) for continuous tasks) and cycled through 64 sets, so the
 * figure is env stepping plus auto-reset, with no policy and no transfers. */
static int env_rate(const blpo_config *c, int cuda, int steps, const char *config) {
  int id = blpo_env_from_name(c->env_id);
  const blpo_env_info *info = blpo_env_get_info((blpo_env_id)id);
  blpo_dims d = {0};
  d.P = c->num_seeds, d.N = c->num_envs, d.T = 1, d.env_id = id;
  d.obs_dim = info->obs_dim, d.act_dim = info->action_dim, d.discrete = info->discrete;
  d.num_actions = info->num_actions;
  d.head_dim = info->discrete ? info->num_actions : info->action_dim;
  d.seed = c->seed;
  size_t PN = (size_t)d.P * d.N, F = sizeof(float);
  const int sets = 64;
  blpo_backend *be = make_backend(cuda, c->threads);
  if (!be)
    return 1;
  blpo_env_state *st = be->alloc(be, PN * sizeof(blpo_env_state));
  float *obs = be->alloc(be, PN * d.obs_dim * F), *rew = be->alloc(be, PN * F);
  float *done = be->alloc(be, PN * F), *eret = be->alloc(be, PN * F);
  float *act = be->alloc(be, (size_t)sets * PN * d.act_dim * F);
  float *h = malloc((size_t)sets * PN * d.act_dim * F);
  if (!st || !obs || !rew || !done || !eret || !act || !h) {
    fprintf(stderr, "blpo-bench: out of memory for %zu envs\n", PN);
    return 1;
  }
  uint64_t r = 0x9E3779B97F4A7C15ull;
  for (size_t i = 0; i < (size_t)sets * PN * d.act_dim; i++) {
    r ^= r >> 12, r ^= r << 25, r ^= r >> 27;
    double u = (double)((r * 2685821657736338717ull) >> 11) * (1.0 / 9007199254740992.0);
    h[i] = d.discrete ? (float)(int)(u * d.num_actions) : (float)(2.0 * u - 1.0) * 1.7f;
  }
  be->upload(be, act, h, (size_t)sets * PN * d.act_dim * F);
  be->env_reset(be, &d, st, obs);
  float probe;
  for (int w = 0; w < 10; w++)
    be->env_step(be, &d, st, act + (size_t)(w % sets) * PN * d.act_dim, obs, rew, done, eret, NULL,
                 NULL);
  be->download(be, &probe, rew, F);
  double t0 = now_s();
  for (int k = 0; k < steps; k++)
    be->env_step(be, &d, st, act + (size_t)(k % sets) * PN * d.act_dim, obs, rew, done, eret, NULL,
                 NULL);
  be->download(be, &probe, rew, F); /* waits for the device */
  double dt = now_s() - t0;
  char dev[300];
  device_label(cuda, dev, sizeof(dev));
  printf("| %s | %s | %s | %d x %d | %d | %.3f | %.3g |\n", dev, config, c->env_id, d.P, d.N, steps,
         dt, (double)PN * steps / dt);
  be->release(be, st), be->release(be, obs), be->release(be, rew), be->release(be, done);
  be->release(be, eret), be->release(be, act);
  free(h);
  be->destroy(be);
  return 0;
}

static void usage(FILE *f) {
  fprintf(f, "usage: blpo-bench [--config FILE] [--algos ppo,nested,blpo] [--iters N] "
             "[--warmup W] [--device cpu|cuda] [--set key=value]... [--label TEXT] [--markdown]\n"
             "       blpo-bench --env-rate [--config FILE] [--device cpu|cuda] [--set ...] "
             "[--iters STEPS]\n"
             "Times ppo, nested and blpo on the same config (default cartpole.yaml) on one\n"
             "backend (default cpu) and prints per-iteration cost, cost per env step relative\n"
             "to ppo, and the split of the iteration into its phases. With --env-rate it\n"
             "times the env kernels alone (random actions, STEPS steps, default 1000) and\n"
             "prints one table row: config, task, agents x envs, steps, seconds, env steps/s.\n");
}

typedef struct {
  char algo[16];
  int replayed, fused, fused_update, pdl, grid_sync;
  size_t kernels, nodes;
  double s_per_iter, steps_per_s;
  double phase[BLPO_PHASE_COUNT]; /* seconds per iteration */
  double phase_sum;
  int64_t steps_per_iter;
} result;

int main(int argc, char **argv) {
  const char *config = "cartpole.yaml", *algos = "ppo,nested,blpo", *label = "";
  const char *sets[64];
  int nsets = 0, iters = -1, warmup = 1, markdown = 0, cuda = 0, envs_only = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      usage(stdout);
      return 0;
    } else if (!strcmp(a, "--env-rate")) {
      envs_only = 1;
    } else if (!strcmp(a, "--markdown")) {
      markdown = 1;
    } else if (v && !strcmp(a, "--config")) {
      config = v, i++;
    } else if (v && !strcmp(a, "--algos")) {
      algos = v, i++;
    } else if (v && !strcmp(a, "--iters")) {
      iters = atoi(v), i++;
    } else if (v && !strcmp(a, "--warmup")) {
      warmup = atoi(v), i++;
    } else if (v && !strcmp(a, "--device")) {
      if (strcmp(v, "cpu") && strcmp(v, "cuda")) {
        fprintf(stderr, "blpo-bench: --device expects cpu or cuda\n");
        return 2;
      }
      cuda = !strcmp(v, "cuda"), i++;
    } else if (v && !strcmp(a, "--label")) {
      label = v, i++;
    } else if (v && !strcmp(a, "--set") && nsets < 64) {
      sets[nsets++] = v, i++;
    } else {
      fprintf(stderr, "blpo-bench: bad argument '%s'\n", a);
      usage(stderr);
      return 2;
    }
  }
  if (iters == -1)
    iters = envs_only ? 1000 : 5; /* env steps with --env-rate, else iterations */
  if (iters < 1 || warmup < 0) {
    fprintf(stderr, "blpo-bench: --iters must be >= 1 and --warmup >= 0\n");
    return 2;
  }
  char path[BLPO_PATH_MAX];
  if (blpo_resolve_config_path(config, path, sizeof(path)) != 0)
    return 2;

  if (envs_only) {
    blpo_config c;
    blpo_config_src src;
    if (load_config(&c, &src, path, sets, nsets, NULL) != 0 || blpo_config_validate(&c, &src) != 0)
      return 2;
    return env_rate(&c, cuda, iters, config);
  }
  result res[3];
  int nres = 0;
  char list[64];
  snprintf(list, sizeof(list), "%s", algos);
  blpo_config base;
  for (char *tok = strtok(list, ","); tok && nres < 3; tok = strtok(NULL, ",")) {
    blpo_config c;
    blpo_config_src src;
    if (load_config(&c, &src, path, sets, nsets, tok) != 0)
      return 2;
    /* enough steps for the requested iterations, whatever the file says */
    c.total_steps = (int64_t)((warmup > 2 ? warmup : 2) + 2 * iters) * c.num_envs * c.num_steps;
    if (blpo_config_validate(&c, &src) != 0)
      return 2;
    base = c;
    blpo_backend *be = make_backend(cuda, c.threads);
    if (!be)
      return 1;
    char err[256];
    blpo_trainer *tr = blpo_trainer_create(&c, be, err, sizeof(err));
    if (!tr) {
      fprintf(stderr, "blpo-bench: %s\n", err);
      return 1;
    }
    blpo_iter_metrics *m = calloc((size_t)c.num_seeds, sizeof(*m));
    /* with graphs, iteration 0 runs directly and 1 is captured: not timed */
    int warm = cuda && c.cuda_graph && warmup < 2 ? 2 : warmup;
    for (int w = 0; w < warm; w++)
      blpo_trainer_iterate(tr, m);
    double t0 = now_s();
    for (int it = 0; it < iters; it++)
      blpo_trainer_iterate(tr, m);
    double wall = now_s() - t0;
    if (warm != warmup)
      warmup = warm; /* reported as used */
    blpo_trainer_set_profile(tr, 1);
    for (int it = 0; it < iters; it++)
      blpo_trainer_iterate(tr, m);
    result *r = &res[nres++];
    snprintf(r->algo, sizeof(r->algo), "%s", tok);
    r->replayed = blpo_trainer_replaying(tr);
    r->kernels = blpo_trainer_graph_kernels(tr, &r->nodes);
    r->fused = blpo_trainer_fused_rollout(tr);
    r->fused_update = blpo_trainer_fused_update(tr);
    r->pdl = blpo_trainer_pdl(tr);
    r->grid_sync = blpo_trainer_grid_sync(tr);
    r->s_per_iter = wall / iters;
    r->steps_per_iter = blpo_trainer_steps_per_iteration(tr) * c.num_seeds;
    r->steps_per_s = (double)r->steps_per_iter / r->s_per_iter;
    blpo_trainer_phase_seconds(tr, r->phase);
    r->phase_sum = 0;
    for (int ph = 0; ph < BLPO_PHASE_COUNT; ph++) {
      r->phase[ph] /= iters;
      r->phase_sum += r->phase[ph];
    }
    free(m);
    blpo_trainer_destroy(tr);
    be->destroy(be);
  }

  char cpu[256], date[32];
  cpu_model(cpu, sizeof(cpu));
  struct utsname un;
  uname(&un);
  time_t t = time(NULL);
  strftime(date, sizeof(date), "%Y-%m-%d", gmtime(&t));
  /* the build's own commit unless a script names the tree it ran from */
  const char *commit = getenv("BLPO_COMMIT") ? getenv("BLPO_COMMIT") : BLPO_GIT_COMMIT;
  char dev[300];
  device_label(cuda, dev, sizeof(dev));
  printf("%sblpo-bench: %s, %ld cores (%s %s), %s, date %s, commit %s%s%s\n", markdown ? "" : "",
         cpu, sysconf(_SC_NPROCESSORS_ONLN), un.sysname, un.machine, dev, date, commit,
         label[0] ? ", " : "", label);
  printf("config %s: %s, %d agent(s) x %d envs x %d steps, %d epochs x %d minibatches, "
         "nested_updates %d, hypergrad %s k=%d rho=%g; run.cuda_graph %s, run.fused_rollout %s, "
         "run.precision %s, run.pdl %s, run.grid_sync %s; fused kernels' register tile %dx%d, %s "
         "loads; %d timed iterations after %d warm-up\n\n",
         config, base.env_id, base.num_seeds, base.num_envs, base.num_steps, base.num_epochs,
         base.num_minibatches, base.nested_updates,
         base.hg_method == BLPO_HG_NYSTROM ? "nystrom"
         : base.hg_method == BLPO_HG_CG    ? "cg"
                                           : "exact",
         base.hg_rank, base.hg_rho, base.cuda_graph ? "true" : "false",
         base.fused_rollout == BLPO_TRI_AUTO ? "auto"
         : base.fused_rollout                ? "true"
                                             : "false",
         base.precision == BLPO_PREC_TF32 ? "tf32" : "fp32", base.pdl ? "true" : "false",
         base.grid_sync ? "true" : "false", BLPO_MBF_TR, BLPO_MBF_TC,
         BLPO_MBF_VEC == 4 ? "float4" : "scalar", iters, warmup);
  double ppo_cost = 0;
  for (int i = 0; i < nres; i++)
    if (!strcmp(res[i].algo, "ppo"))
      ppo_cost = res[i].s_per_iter / res[i].steps_per_iter;
  printf("| algo | s/iteration | env steps/s | cost per env step vs ppo | graph replay | "
         "kernels per iteration | fused rollout | fused update | pdl | grid sync |\n");
  printf("|---|---:|---:|---:|---|---:|---|---|---|---|\n");
  for (int i = 0; i < nres; i++) {
    double cost = res[i].s_per_iter / res[i].steps_per_iter;
    char ratio[32] = "-", kern[48] = "-";
    if (ppo_cost > 0)
      snprintf(ratio, sizeof(ratio), "%.2fx", cost / ppo_cost);
    if (res[i].replayed)
      snprintf(kern, sizeof(kern), "%zu (%zu nodes)", res[i].kernels, res[i].nodes);
    /* PPO's minibatch update, or the nested critic's steps (nested, blpo) */
    const char *fu = res[i].fused_update ? "yes" : "no";
    /* grid sync: the fused update as cooperative kernels (run.grid_sync) */
    printf("| %s | %.4f | %.0f | %s | %s | %s | %s | %s | %s | %s |\n", res[i].algo,
           res[i].s_per_iter, res[i].steps_per_s, ratio, res[i].replayed ? "yes" : "no", kern,
           res[i].fused ? "yes" : "no", fu, res[i].pdl ? "yes" : "no",
           res[i].grid_sync ? "yes" : "no");
  }
  printf("\nTime per iteration by phase (ms; %% of the profiled iteration's phases; %s):\n\n"
         "| phase |",
         cuda ? "CUDA events on the stream, iterations launched directly" : "CPU monotonic clock");
  for (int i = 0; i < nres; i++)
    printf(" %s |", res[i].algo);
  printf("\n|---|");
  for (int i = 0; i < nres; i++)
    printf("---:|");
  printf("\n");
  for (int ph = 0; ph < BLPO_PHASE_COUNT; ph++) {
    int any = 0;
    for (int i = 0; i < nres; i++)
      any |= res[i].phase[ph] > 0;
    if (!any)
      continue;
    printf("| %s |", blpo_phase_names[ph]);
    for (int i = 0; i < nres; i++)
      printf(" %.2f (%.0f%%) |", 1e3 * res[i].phase[ph],
             100.0 * res[i].phase[ph] / res[i].phase_sum);
    printf("\n");
  }
  return 0;
}
