/* `blpo-gpu eval RUN_DIR [--episodes N] [--deterministic]`: loads a run's
 * checkpoint and reports each agent's return over fresh episodes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blpo/checkpoint.h"
#include "blpo/config_load.h"
#include "blpo/eval.h"

static int eval_usage(const char *msg) {
  fprintf(stderr,
          "blpo-gpu eval: %s\nusage: blpo-gpu eval RUN_DIR [--episodes N] [--deterministic] "
          "[--device cpu|cuda]\n",
          msg);
  return 2;
}

/* --actor-output: parses the comma-separated input, runs the actor, prints. */
static int actor_output(blpo_trainer *tr, blpo_backend *be, const char *list, int agent, int P) {
  int O = blpo_trainer_obs_dim(tr), Y = blpo_trainer_head_dim(tr), n = 0, rc = 2;
  float *x = calloc((size_t)O + (size_t)Y, sizeof(float)), *y = x + O;
  const char *s = list;
  while (x && *s && n < O + 1) {
    char *end;
    double v = strtod(s, &end);
    if (end == s)
      break;
    if (n < O)
      x[n] = (float)v;
    n++;
    s = *end == ',' ? end + 1 : end;
    if (*end != ',' && *end)
      break;
  }
  if (!x)
    fprintf(stderr, "blpo-gpu eval: out of memory\n");
  else if (n != O || *s)
    fprintf(stderr, "blpo-gpu eval: --actor-output expects %d comma-separated numbers, got '%s'\n",
            O, list);
  else if (agent >= P)
    fprintf(stderr, "blpo-gpu eval: --agent %d: the run has %d agent(s)\n", agent, P);
  else if (blpo_trainer_actor_output(tr, agent, x, y) != 0)
    fprintf(stderr, "blpo-gpu eval: out of memory\n");
  else {
    for (int k = 0; k < Y; k++)
      printf("%s%.9g", k ? "," : "", y[k]);
    printf("\n");
    rc = 0;
  }
  free(x);
  blpo_trainer_destroy(tr);
  be->destroy(be);
  return rc;
}

int blpo_eval_main(int argc, char **argv) {
  const char *dir = NULL;
  int episodes = 100, deterministic = 0, agent = 0, cuda = 0;
  const char *actor_obs = NULL;
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--deterministic")) {
      deterministic = 1;
    } else if (!strcmp(a, "--episodes") && i + 1 < argc) {
      char *end;
      long v = strtol(argv[++i], &end, 10);
      if (*end || v < 1 || v > 1000000)
        return eval_usage("--episodes expects an integer in [1, 1000000]");
      episodes = (int)v;
    } else if (!strcmp(a, "--actor-output") && i + 1 < argc) {
      actor_obs = argv[++i];
    } else if (!strcmp(a, "--agent") && i + 1 < argc) {
      char *end;
      long v = strtol(argv[++i], &end, 10);
      if (*end || v < 0 || v > 1000000)
        return eval_usage("--agent expects an agent index >= 0");
      agent = (int)v;
    } else if (!strcmp(a, "--device") && i + 1 < argc) {
      const char *d = argv[++i];
      if (!strcmp(d, "cuda"))
        cuda = 1;
      else if (strcmp(d, "cpu") && strcmp(d, "auto"))
        return eval_usage("--device expects cpu, cuda or auto (auto: the CPU)");
    } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
      printf("usage: blpo-gpu eval RUN_DIR [--episodes N] [--deterministic] [--device cpu|cuda]\n"
             "Loads RUN_DIR/checkpoint.safetensors with RUN_DIR/config.yaml and reports, per\n"
             "agent, mean, std, min and max return over N fresh episodes (default 100),\n"
             "sampling actions, or taking the most likely action / Gaussian mean with\n"
             "--deterministic.\n"
             "\n"
             "  --actor-output X1,X2,...  instead, print agent --agent's actor output (logits,\n"
             "                            or the Gaussian mean) on that network input as\n"
             "                            comma-separated %%.9g (tools/read_checkpoint.py --obs\n"
             "                            computes the same from the file with NumPy)\n"
             "  --agent N                 agent for --actor-output (default 0)\n");
      return 0;
    } else if (a[0] != '-' && !dir) {
      dir = a;
    } else {
      fprintf(stderr, "blpo-gpu eval: unexpected argument '%s'\n", a);
      return eval_usage("see above");
    }
  }
  if (!dir)
    return eval_usage("missing RUN_DIR");
  char path[BLPO_PATH_MAX + 64];
  snprintf(path, sizeof(path), "%s/config.yaml", dir);
  blpo_config c;
  blpo_config_src src;
  memset(&src, 0, sizeof(src));
  blpo_config_defaults(&c);
  if (blpo_config_load_file(&c, &src, path) != 0 || blpo_config_validate(&c, &src) != 0)
    return 2;
  blpo_backend *be = NULL;
  if (cuda) {
#ifdef BLPO_WITH_CUDA
    char why[256];
    be = blpo_backend_cuda_create(why, sizeof(why));
    if (!be) {
      fprintf(stderr, "blpo-gpu eval: --device cuda: %s\n", why);
      return 2;
    }
#else
    fprintf(stderr, "blpo-gpu eval: --device cuda: this build has no CUDA support\n");
    return 2;
#endif
  } else {
    be = blpo_backend_cpu_create(c.threads);
  }
  char err[1024];
  blpo_trainer *tr = be ? blpo_trainer_create(&c, be, err, sizeof(err)) : NULL;
  if (!tr) {
    fprintf(stderr, "blpo-gpu eval: %s\n", be ? err : "out of memory");
    if (be)
      be->destroy(be);
    return 1;
  }
  snprintf(path, sizeof(path), "%s/%s", dir, BLPO_CHECKPOINT_FILE);
  double wall;
  if (blpo_checkpoint_load(tr, &c, path, &wall, err, sizeof(err)) != 0) {
    fprintf(stderr, "blpo-gpu eval: %s\n", err);
    blpo_trainer_destroy(tr);
    be->destroy(be);
    return 2;
  }
  int P = c.num_seeds;
  if (actor_obs)
    return actor_output(tr, be, actor_obs, agent, P);
  double *mean = calloc((size_t)P * 4, sizeof(double));
  double *sd = mean + P, *mn = mean + 2 * P, *mx = mean + 3 * P;
  int rc = blpo_trainer_evaluate(tr, episodes, deterministic, mean, sd, mn, mx);
  if (rc != 0) {
    fprintf(stderr, "blpo-gpu eval: some episodes did not finish within their time limits\n");
  } else {
    printf("%s, %s policy of %s at iteration %lld, %d episodes per agent\n", c.env_id,
           deterministic ? "deterministic" : "stochastic", dir,
           (long long)blpo_trainer_iteration(tr), episodes);
    printf("agent  seed        mean       std       min       max\n");
    for (int p = 0; p < P; p++)
      printf("%5d  %4lld  %10.3f %9.3f %9.3f %9.3f\n", p, (long long)(c.seed + p), mean[p], sd[p],
             mn[p], mx[p]);
  }
  free(mean);
  blpo_trainer_destroy(tr);
  be->destroy(be);
  return rc ? 1 : 0;
}
