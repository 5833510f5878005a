/* Config loader, --set, validation, writer and command line: every error
 * class must return 2 and print `FILE:LINE:COL: message` with the right
 * position and the offending value; a written config must load back into an
 * identical struct. */
#define _POSIX_C_SOURCE 200809L

#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blpo/checkpoint.h"
#include "blpo/cli.h"
#include "blpo/config_load.h"

static int g_failures = 0;

#define CHECK(cond, ...)                                                                           \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);                     \
      fprintf(stderr, __VA_ARGS__);                                                                \
      fputc('\n', stderr);                                                                         \
      g_failures++;                                                                                \
    }                                                                                              \
  } while (0)

static char g_dir[256];
static int g_nfile = 0;
static char g_err[8192]; /* stderr of the last captured call */
static int g_saved_fd = -1;

static void write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  if (!f) {
    perror(path);
    exit(1);
  }
  fputs(text, f);
  fclose(f);
}

/* A fresh file in the temp dir holding text; returns its path (static). */
static const char *yaml_file(const char *text) {
  static char path[512];
  snprintf(path, sizeof(path), "%s/c%d.yaml", g_dir, g_nfile++);
  write_text(path, text);
  return path;
}

static void cap_begin(void) {
  char path[512];
  snprintf(path, sizeof(path), "%s/stderr.txt", g_dir);
  fflush(stderr);
  int fd = open(path, O_CREAT | O_TRUNC | O_RDWR, 0600);
  g_saved_fd = dup(2);
  dup2(fd, 2);
  close(fd);
}

static void cap_end(void) {
  char path[512];
  snprintf(path, sizeof(path), "%s/stderr.txt", g_dir);
  fflush(stderr);
  dup2(g_saved_fd, 2);
  close(g_saved_fd);
  FILE *f = fopen(path, "r");
  size_t n = f ? fread(g_err, 1, sizeof(g_err) - 1, f) : 0;
  g_err[n] = 0;
  if (f)
    fclose(f);
}

/* rc must be 2 and the captured stderr must start with `where` and contain
 * every following string (NULL-terminated). */
static void expect_err_(int line, int rc, const char *where, ...) {
  if (rc != 2 || strncmp(g_err, where, strlen(where)) != 0) {
    fprintf(stderr, "test_config.c:%d: expected rc 2 and prefix \"%s\", got rc %d and:\n%s\n", line,
            where, rc, g_err);
    g_failures++;
    return;
  }
  va_list ap;
  va_start(ap, where);
  for (const char *w; (w = va_arg(ap, const char *));)
    if (!strstr(g_err, w)) {
      fprintf(stderr, "test_config.c:%d: message lacks \"%s\":\n%s\n", line, w, g_err);
      g_failures++;
    }
  va_end(ap);
}
#define EXPECT_ERR(rc, ...) expect_err_(__LINE__, rc, __VA_ARGS__, (const char *)NULL)

/* Loads text as a file over defaults; with validate, also validates. */
static int load(const char *text, int validate, blpo_config *c, blpo_config_src *s, char *where,
                size_t wn, const char *pos) {
  const char *p = yaml_file(text);
  snprintf(where, wn, "%s:%s: ", p, pos);
  blpo_config_defaults(c);
  memset(s, 0, sizeof(*s));
  cap_begin();
  int rc = blpo_config_load_file(c, s, p);
  if (rc == 0 && validate)
    rc = blpo_config_validate(c, s);
  cap_end();
  return rc;
}

/* The file-error cases: text, where the error must point, words it must say. */
#define FILE_ERR(text, validate, pos, ...)                                                         \
  do {                                                                                             \
    char where_[600];                                                                              \
    int rc_ = load(text, validate, &c, &s, where_, sizeof(where_), pos);                           \
    EXPECT_ERR(rc_, where_, __VA_ARGS__);                                                          \
  } while (0)

static void test_defaults(void) {
  blpo_config c;
  blpo_config_defaults(&c);
  CHECK(strcmp(c.env_id, "CartPole-v1") == 0, "env %s", c.env_id);
  CHECK(c.num_envs == 4 && c.num_steps == 128, "N %d T %d", c.num_envs, c.num_steps);
  CHECK(c.normalize_obs == BLPO_TRI_AUTO && c.normalize_reward == BLPO_TRI_AUTO, "tristates");
  CHECK(c.bootstrap_truncated == 0, "bootstrap_truncated");
  CHECK(c.total_steps == 500000 && c.num_seeds == 1 && c.seed == 0, "run");
  CHECK(strcmp(c.out_dir, "runs") == 0 && c.name[0] == 0, "out_dir %s", c.out_dir);
  CHECK(c.log_every == 10 && c.threads == 0, "log_every/threads");
  CHECK(c.algo == BLPO_ALGO_PPO, "algo");
  CHECK(c.gamma == 0.99f && c.gae_lambda == 0.95f && c.clip_eps == 0.2f, "gamma/lambda/clip");
  CHECK(c.num_epochs == 4 && c.num_minibatches == 4, "E/M");
  CHECK(c.actor_lr == 2.5e-4f && c.critic_lr == 2.5e-4f && c.anneal_lr == 1, "lr");
  CHECK(c.max_grad_norm == 0.5f && c.vf_coef == 0.5f && c.ent_coef == 0.01f, "ppo coefs");
  CHECK(c.adam_eps == 1e-5f && c.norm_adv == 1 && c.clip_value == 1, "adam/norm_adv/clip_value");
  CHECK(c.nested_updates == 5 && c.hg_method == BLPO_HG_NYSTROM && c.hg_rank == 5, "nested");
  CHECK(c.hg_rho == 50.0f && c.hg_ridge == 1.0f && c.hg_cutoff == 1e-6f, "rho/ridge/cutoff");
  CHECK(c.hg_ihvp_bound == 1.0f && c.hg_clip_f == 0.5f && c.hg_fixed_indices == 0, "bound/clip_f");
  CHECK(c.hg_cg_iters == 20 && c.hg_cg_tol == 1e-10f && c.hg_check == 0, "cg");
  CHECK(c.actor_num_hidden == 2 && c.actor_hidden[0] == 64 && c.actor_hidden[1] == 64, "actor");
  CHECK(c.critic_num_hidden == 2 && c.critic_hidden[1] == 64, "critic");
  CHECK(c.activation == BLPO_ACT_TANH, "activation");
  cap_begin();
  int rc = blpo_config_validate(&c, NULL);
  cap_end();
  CHECK(rc == 0, "defaults must validate: %s", g_err);
}

static void test_valid_file(void) {
  blpo_config c;
  blpo_config_src s;
  char where[600];
  int rc = load("# a full config\n"
                "env:\n"
                "  id: Pendulum-v1\n"
                "  num_envs: 1024\n"
                "  num_steps: 64\n"
                "  normalize_obs: false\n"
                "  normalize_reward: true\n"
                "  bootstrap_truncated: yes\n"
                "run:\n"
                "  total_steps: 5e6\n"
                "  num_seeds: 3\n"
                "  seed: 42\n"
                "  out_dir: /tmp/runs\n"
                "  name: 'pend'\n"
                "algo:\n"
                "  name: BLPO\n"
                "  num_minibatches: 16\n"
                "  critic_lr: 1e-3\n"
                "  hypergrad: {method: cg, rank: 10, rho: 20.5}\n"
                "net.activation: relu\n"
                "net:\n"
                "  actor_hidden: [256, 128, 32]\n"
                "  critic_hidden:\n"
                "    - 32\n",
                1, &c, &s, where, sizeof(where), "");
  CHECK(rc == 0, "valid file rejected: %s", g_err);
  CHECK(strcmp(c.env_id, "Pendulum-v1") == 0 && c.num_envs == 1024 && c.num_steps == 64, "env");
  CHECK(c.normalize_obs == 0 && c.normalize_reward == 1 && c.bootstrap_truncated == 1, "env flags");
  CHECK(c.total_steps == 5000000 && c.num_seeds == 3 && c.seed == 42, "run");
  CHECK(strcmp(c.out_dir, "/tmp/runs") == 0 && strcmp(c.name, "pend") == 0, "strings");
  CHECK(c.algo == BLPO_ALGO_BLPO && c.num_minibatches == 16 && c.critic_lr == 1e-3f, "algo");
  CHECK(c.hg_method == BLPO_HG_CG && c.hg_rank == 10 && c.hg_rho == 20.5f, "hypergrad");
  CHECK(c.activation == BLPO_ACT_RELU, "activation");
  CHECK(c.actor_num_hidden == 3 && c.actor_hidden[0] == 256 && c.actor_hidden[2] == 32 &&
            c.actor_hidden[3] == 0,
        "actor_hidden");
  CHECK(c.critic_num_hidden == 1 && c.critic_hidden[0] == 32 && c.critic_hidden[1] == 0,
        "critic_hidden");
  /* untouched keys keep their defaults */
  CHECK(c.gamma == 0.99f && c.actor_lr == 2.5e-4f, "defaults kept");
  int k = blpo_config_key_index("env.num_envs");
  CHECK(s.key[k].origin == BLPO_SRC_FILE && s.key[k].line == 4 && s.key[k].col == 3,
        "env.num_envs recorded at %d:%d", s.key[k].line, s.key[k].col);
  k = blpo_config_key_index("algo.hypergrad.rho");
  CHECK(s.key[k].line == 19 && s.key[k].col == 37, "rho recorded at %d:%d", s.key[k].line,
        s.key[k].col);
  k = blpo_config_key_index("algo.gamma");
  CHECK(s.key[k].origin == BLPO_SRC_DEFAULT, "gamma not set by the file");

  /* three levels of nesting, flow and block style */
  rc = load("algo: {hypergrad: {rank: 5}}\n", 1, &c, &s, where, sizeof(where), "");
  CHECK(rc == 0 && c.hg_rank == 5, "flow nesting: %s", g_err);
  k = blpo_config_key_index("algo.hypergrad.rank");
  CHECK(s.key[k].origin == BLPO_SRC_FILE && s.key[k].line == 1 && s.key[k].col == 20,
        "flow rank recorded at %d:%d", s.key[k].line, s.key[k].col);
  rc = load("algo:\n  name: blpo\n  hypergrad:\n    rank: 13\n    method: nystrom\nnet:\n"
            "  critic_hidden: [2]\n",
            1, &c, &s, where, sizeof(where), "");
  CHECK(rc == 0 && c.hg_rank == 13 && c.critic_num_hidden == 1, "rank = critic size: %s", g_err);
  /* the rank bound is Nystrom's alone, and exact/check pass up to the limit */
  rc = load("algo:\n  name: blpo\n  hypergrad: {method: cg, rank: 100000}\n", 1, &c, &s, where,
            sizeof(where), "");
  CHECK(rc == 0 && c.hg_rank == 100000, "cg ignores rank: %s", g_err);
  rc = load("algo:\n  name: blpo\n  hypergrad: {method: exact, check: true, exact_max_params: "
            "4545}\n",
            1, &c, &s, where, sizeof(where), "");
  CHECK(rc == 0 && c.hg_method == BLPO_HG_EXACT, "exact at the limit: %s", g_err);
  /* ppo and nested have no hypergradient to check */
  rc = load("algo:\n  name: nested\n  hypergrad: {rank: 100000}\n", 1, &c, &s, where, sizeof(where),
            "");
  CHECK(rc == 0, "nested ignores rank: %s", g_err);

  /* an empty file is every default */
  rc = load("# nothing\n", 1, &c, &s, where, sizeof(where), "");
  CHECK(rc == 0 && c.num_envs == 4, "empty file: %s", g_err);

  /* a failed load leaves the struct alone */
  blpo_config_defaults(&c);
  memset(&s, 0, sizeof(s));
  const char *p = yaml_file("env:\n  num_envs: 8\n  num_steps: x\n");
  cap_begin();
  rc = blpo_config_load_file(&c, &s, p);
  cap_end();
  CHECK(rc == 2 && c.num_envs == 4 && s.file[0] == 0, "failed load changed the config");

  cap_begin();
  rc = blpo_config_load_file(&c, &s, "/nonexistent/x.yaml");
  cap_end();
  EXPECT_ERR(rc, "blpo-gpu: cannot open config file '/nonexistent/x.yaml'");
}

static void test_file_errors(void) {
  blpo_config c;
  blpo_config_src s;

  /* malformed YAML: libyaml's problem and mark */
  FILE_ERR("env:\n  num_envs: 4\n   num_steps: 8\n", 0, "3:13", "invalid YAML",
           "mapping values are not allowed");
  FILE_ERR("net:\n  actor_hidden: [64, 64\nalgo:\n  gamma: 0.9\n", 0, "3:5", "invalid YAML",
           "did not find expected ',' or ']'", "while parsing a flow sequence at 2:17");
  FILE_ERR("env:\n\tnum_envs: 4\n", 0, "2:1", "invalid YAML", "cannot start any token");

  /* non-mapping documents */
  FILE_ERR("- env\n- run\n", 0, "1:1", "expected a mapping of config keys", "got a list");
  FILE_ERR("hello\n", 0, "1:1", "expected a mapping of config keys", "'hello'");
  FILE_ERR("env:\n  num_envs: 4\n---\nenv:\n  num_envs: 8\n", 0, "4:1", "single YAML document");
  FILE_ERR("env: 4\n", 0, "1:6", "'env' is a section", "expected a mapping", "'4'");

  /* unknown keys and suggestions */
  FILE_ERR("env:\n  num_env: 8\n", 0, "2:3", "unknown key 'env.num_env'",
           "did you mean 'env.num_envs'?");
  FILE_ERR("num_envs: 8\n", 0, "1:1", "unknown key 'num_envs'", "did you mean 'env.num_envs'?");
  FILE_ERR("algo:\n  hypergrad:\n    rnak: 4\n", 0, "3:5", "'algo.hypergrad.rnak'",
           "did you mean 'algo.hypergrad.rank'?");
  FILE_ERR("net:\n  hidden: [64]\n", 0, "2:3", "did you mean 'net.actor_hidden'?");
  FILE_ERR("env:\n  zzzzzzzz: 1\n", 0, "2:3", "unknown key 'env.zzzzzzzz'",
           "the keys under 'env' are: id, num_envs");
  FILE_ERR("optimizer:\n  lr: 1\n", 0, "1:1", "unknown key 'optimizer'", "--help-config");

  /* wrong types */
  FILE_ERR("env:\n  num_envs: abc\n", 0, "2:13", "env.num_envs: expected an integer", "'abc'");
  FILE_ERR("env:\n  num_envs: 1.5\n", 0, "2:13", "expected an integer", "'1.5'",
           "not a whole number");
  FILE_ERR("env:\n  num_envs: \"4\"\n", 0, "2:13", "expected an integer", "quoted string '4'");
  FILE_ERR("env:\n  num_envs:\n", 0, "2:12", "expected an integer, got an empty value");
  FILE_ERR("env:\n  num_envs: [4]\n", 0, "2:13", "expected an integer, got a list");
  FILE_ERR("algo:\n  gamma: high\n", 0, "2:10", "algo.gamma: expected a number", "'high'");
  FILE_ERR("algo:\n  anneal_lr: maybe\n", 0, "2:14", "expected true or false", "'maybe'");
  FILE_ERR("env:\n  normalize_obs: sometimes\n", 0, "2:18", "expected one of auto, true, false",
           "'sometimes'");
  FILE_ERR("net:\n  actor_hidden: 64\n", 0, "2:17", "net.actor_hidden",
           "expected a list of integers", "'64'");
  FILE_ERR("net:\n  actor_hidden: {a: 1}\n", 0, "2:17", "expected a list of integers",
           "got a mapping");
  FILE_ERR("net:\n  critic_hidden: [64, wide]\n", 0, "2:23", "net.critic_hidden",
           "expected an integer", "'wide'");
  FILE_ERR("env:\n  id: [CartPole-v1]\n", 0, "2:7", "env.id: expected a string, got a list");

  /* out of range */
  FILE_ERR("algo:\n  actor_lr: -1e-3\n", 0, "2:13", "algo.actor_lr", "'-1e-3' is out of range",
           "> 0 and <= 10");
  FILE_ERR("env:\n  num_envs: 0\n", 0, "2:13", "env.num_envs", "0 is out of range",
           "in [1, 16777216]");
  FILE_ERR("algo:\n  gamma: 1.01\n", 0, "2:10", "algo.gamma", "'1.01' is out of range",
           "in [0, 1]");
  FILE_ERR("net:\n  actor_hidden: [64, 0]\n", 0, "2:22", "item 0 is out of range", "in [1, 4096]");
  FILE_ERR("net:\n  actor_hidden: [8192]\n", 0, "2:18", "item 8192 is out of range");
  FILE_ERR("net:\n  actor_hidden: [1, 1, 1, 1, 1, 1, 1, 1, 1]\n", 0, "2:17",
           "expected 1 to 8 widths, got 9");
  FILE_ERR("net:\n  actor_hidden: []\n", 0, "2:17", "expected 1 to 8 widths, got 0");
  FILE_ERR("run:\n  total_steps: 99999999999999999999\n", 0, "2:16", "too large");
  FILE_ERR("env:\n  id: ''\n", 0, "2:7", "env.id: expected a non-empty string");

  /* unknown enum value: the allowed ones are listed */
  FILE_ERR("algo:\n  name: ppo2\n", 0, "2:9", "algo.name: unknown value 'ppo2'",
           "expected one of: ppo, nested, blpo");
  FILE_ERR("algo:\n  hypergrad:\n    method: woodbury\n", 0, "3:13", "'woodbury'",
           "nystrom, cg, exact");

  /* duplicates, in one mapping and across the dotted and nested forms */
  FILE_ERR("env:\n  num_envs: 4\n  num_envs: 8\n", 0, "3:3", "duplicate key 'num_envs'",
           "first at 2:3");
  FILE_ERR("env.num_envs: 4\nenv:\n  num_envs: 8\n", 0, "3:3", "duplicate key 'env.num_envs'",
           "first set at 1:1");
  FILE_ERR("env:\n  num_envs: 4\nenv:\n  num_steps: 8\n", 0, "3:1", "duplicate key 'env'");

  /* several errors in one file are all reported */
  FILE_ERR("env:\n  num_envs: x\n  num_steps: y\n", 0, "2:13", "'x'", ":3:14: env.num_steps",
           "'y'");

  /* cross-field checks point at the key */
  FILE_ERR("env:\n  num_envs: 6\n  num_steps: 3\nalgo:\n  num_minibatches: 4\n", 1, "5:3",
           "algo.num_minibatches (4) must divide env.num_envs * env.num_steps (6 * 3 = 18)");
  FILE_ERR("env:\n  num_envs: 6\nalgo:\n  name: nested\n  num_minibatches: 4\n", 1, "5:3",
           "algo.num_minibatches (4) must divide env.num_envs (6)", "whole trajectories");
  FILE_ERR("env:\n  num_envs: 6\nalgo:\n  name: blpo\n", 1, "2:3",
           "algo.num_minibatches (4) must divide env.num_envs (6)");
  FILE_ERR("run:\n  total_steps: 100\n", 1, "2:3", "run.total_steps (100) is less than one",
           "= 512 env steps");
  FILE_ERR("env:\n  id: CartPole-v2\n", 1, "2:3", "env.id: unknown task 'CartPole-v2'",
           "did you mean 'CartPole-v1'?");
  FILE_ERR("env:\n  id: Breakout\n", 1, "2:3", "env.id: unknown task 'Breakout'",
           "expected one of: CartPole-v1, Acrobot-v1");
  FILE_ERR("run:\n  name: a/b\n", 1, "2:3", "run.name: 'a/b'");
  FILE_ERR("algo:\n  name: blpo\n  hypergrad:\n    method: exact\nnet:\n  critic_hidden: [1024, "
           "1024]\n",
           1, "4:5", "exact_max_params = 20000", "has 1055745", "use method nystrom or cg");
  /* Nystrom rank above the critic's size: CartPole obs 4 -> [2] -> 1 is 4*2+2 + 2*1+1 = 13
   * parameters; the error points at the rank even when the critic comes later */
  FILE_ERR("algo:\n  name: blpo\n  hypergrad:\n    rank: 14\nnet:\n  critic_hidden: [2]\n", 1,
           "4:5", "algo.hypergrad.rank (14) exceeds the critic's parameter count 13",
           "obs dim 4 of CartPole-v1", "net.critic_hidden [2]");
  FILE_ERR("net:\n  critic_hidden: [2]\nalgo: {name: blpo, hypergrad: {rank: 14}}\n", 1, "3:32",
           "algo.hypergrad.rank (14) exceeds the critic's parameter count 13");
  /* exact (and check) with a critic over exact_max_params; the default 64x64 CartPole
   * critic has 4*64+64 + 64*64+64 + 64+1 = 4545 parameters */
  FILE_ERR("algo:\n  name: blpo\n  hypergrad: {method: exact, exact_max_params: 4544}\n", 1, "3:15",
           "algo.hypergrad.method exact builds a dense Hessian",
           "the critic has 4545 parameters, more than algo.hypergrad.exact_max_params = 4544",
           "use method nystrom or cg");
  FILE_ERR("algo:\n  name: blpo\n  hypergrad:\n    check: true\n    exact_max_params: 100\n", 1,
           "4:5", "algo.hypergrad.check builds a dense Hessian", "has 4545 parameters");
  /* nested/blpo minibatches are whole trajectories: M must divide N even where it divides N*T */
  FILE_ERR("env:\n  num_envs: 6\n  num_steps: 4\nalgo:\n  name: blpo\n  num_minibatches: 4\n", 1,
           "6:3", "algo.num_minibatches (4) must divide env.num_envs (6)",
           "algo 'blpo' splits the envs into minibatches of whole trajectories");
  /* ranges of the hypergradient keys */
  FILE_ERR("algo:\n  hypergrad:\n    clip_f: 1.5\n", 0, "3:13", "algo.hypergrad.clip_f",
           "'1.5' is out of range", "in [0, 1]");
  FILE_ERR("algo:\n  hypergrad:\n    exact_max_params: 50001\n", 0, "3:23",
           "algo.hypergrad.exact_max_params", "50001 is out of range", "in [1, 50000]");
  FILE_ERR("algo:\n  nested_updates: 0\n", 0, "2:19", "algo.nested_updates", "in [1, 1000]");
  FILE_ERR("algo:\n  hypergrad:\n    rho: 0\n", 0, "3:10", "algo.hypergrad.rho",
           "'0' is out of range", "> 0");
  /* a key left at its default reports at the file's 1:1 */
  FILE_ERR("algo:\n  name: nested\n  num_minibatches: 3\n", 1, "3:3", "must divide");
}

static void test_set(void) {
  blpo_config c;
  blpo_config_src s;
  blpo_config_defaults(&c);
  memset(&s, 0, sizeof(s));
  cap_begin();
  int rc = blpo_config_apply_set(&c, &s, "env.num_envs=16");
  rc |= blpo_config_apply_set(&c, &s, "net.actor_hidden=[128,128,128]");
  rc |= blpo_config_apply_set(&c, &s, "algo.hypergrad={rank: 7, method: exact}");
  rc |= blpo_config_apply_set(&c, &s, "run.name=");
  rc |= blpo_config_apply_set(&c, &s, "env.id=Acrobot-v1");
  rc |= blpo_config_apply_set(&c, &s, "algo.actor_lr=3e-4");
  rc |= blpo_config_apply_seed(&c, &s, "17");
  cap_end();
  CHECK(rc == 0, "valid --set rejected: %s", g_err);
  CHECK(c.num_envs == 16 && c.actor_num_hidden == 3 && c.actor_hidden[2] == 128, "set values");
  CHECK(c.hg_rank == 7 && c.hg_method == BLPO_HG_EXACT && c.name[0] == 0, "set mapping");
  CHECK(strcmp(c.env_id, "Acrobot-v1") == 0 && c.actor_lr == 3e-4f && c.seed == 17, "set more");
  int k = blpo_config_key_index("algo.hypergrad.rank");
  CHECK(s.key[k].origin == BLPO_SRC_SET && s.key[k].line == 3 && s.key[k].col == 17,
        "rank recorded at --set:%d:%d", s.key[k].line, s.key[k].col);

  /* errors: --set:ORDINAL:COL */
  memset(&s, 0, sizeof(s));
  blpo_config_defaults(&c);
  cap_begin();
  rc = blpo_config_apply_set(&c, &s, "env.num_env=3");
  cap_end();
  EXPECT_ERR(rc, "--set:1:1: unknown key 'env.num_env'; did you mean 'env.num_envs'?");
  cap_begin();
  rc = blpo_config_apply_set(&c, &s, "env.num_envs=abc");
  cap_end();
  EXPECT_ERR(rc, "--set:2:14: env.num_envs: expected an integer, got 'abc'");
  cap_begin();
  rc = blpo_config_apply_set(&c, &s, "net.actor_hidden=[128, x]");
  cap_end();
  EXPECT_ERR(rc, "--set:3:24: net.actor_hidden: expected an integer, got 'x'");
  cap_begin();
  rc = blpo_config_apply_set(&c, &s, "algo.gamma=2");
  cap_end();
  EXPECT_ERR(rc, "--set:4:12: algo.gamma: '2' is out of range; expected a number in [0, 1]");
  cap_begin();
  rc = blpo_config_apply_set(&c, &s, "algo.gamma");
  cap_end();
  EXPECT_ERR(rc, "--set:5:1: expected key.path=value, got 'algo.gamma'");
  cap_begin();
  rc = blpo_config_apply_set(&c, &s, "net.actor_hidden=[1,2");
  cap_end();
  EXPECT_ERR(rc, "--set:6:", "invalid YAML", "flow sequence");
  cap_begin();
  rc = blpo_config_apply_set(&c, &s, "algo.name=sac");
  cap_end();
  EXPECT_ERR(rc, "--set:7:11: algo.name: unknown value 'sac'; expected one of: ppo, nested, blpo");
  cap_begin();
  rc = blpo_config_apply_set(&c, &s, "algo.hypergrad={rank: 5, rank: 6}");
  cap_end();
  EXPECT_ERR(rc, "--set:8:26: duplicate key 'rank'");
  cap_begin();
  rc = blpo_config_apply_set(&c, &s, "net.actor_hidden=64");
  cap_end();
  EXPECT_ERR(rc, "--set:9:18: net.actor_hidden: expected a list of integers", "'64'");
  cap_begin();
  rc = blpo_config_apply_seed(&c, &s, "-1");
  cap_end();
  EXPECT_ERR(rc, "--seed:1:1: run.seed: value -1 is out of range");
  cap_begin();
  rc = blpo_config_apply_seed(&c, &s, "abc");
  cap_end();
  EXPECT_ERR(rc, "--seed:1:1: run.seed: expected an integer, got 'abc'");
  CHECK(c.num_envs == 4 && c.gamma == 0.99f && c.algo == 0, "failed --set changed the config");

  /* a cross-field error after --set points at the --set that broke it */
  blpo_config_defaults(&c);
  memset(&s, 0, sizeof(s));
  const char *p = yaml_file("algo:\n  name: nested\n  num_minibatches: 4\n");
  cap_begin();
  rc = blpo_config_load_file(&c, &s, p);
  rc |= blpo_config_apply_set(&c, &s, "env.num_steps=8");
  rc |= blpo_config_apply_set(&c, &s, "env.num_envs=6");
  cap_end();
  CHECK(rc == 0, "%s", g_err);
  cap_begin();
  rc = blpo_config_validate(&c, &s);
  cap_end();
  EXPECT_ERR(rc, "--set:2:1: algo.num_minibatches (4) must divide env.num_envs (6)");
  /* ... except the rank bound, which stays at the rank */
  blpo_config_defaults(&c);
  memset(&s, 0, sizeof(s));
  p = yaml_file("algo:\n  name: blpo\n  hypergrad:\n    rank: 20\n");
  cap_begin();
  rc = blpo_config_load_file(&c, &s, p);
  rc |= blpo_config_apply_set(&c, &s, "net.critic_hidden=[2]");
  cap_end();
  CHECK(rc == 0, "%s", g_err);
  char where[600];
  snprintf(where, sizeof(where), "%s:4:5: ", p);
  cap_begin();
  rc = blpo_config_validate(&c, &s);
  cap_end();
  EXPECT_ERR(rc, where, "algo.hypergrad.rank (20) exceeds the critic's parameter count 13");
  /* and a config filled in by code is range-checked too */
  blpo_config_defaults(&c);
  c.num_envs = 0;
  cap_begin();
  rc = blpo_config_validate(&c, NULL);
  cap_end();
  EXPECT_ERR(rc, "blpo-gpu: config: env.num_envs: 0 is out of range");
}

static int write_and_load(const blpo_config *c, blpo_config *back) {
  char path[512];
  snprintf(path, sizeof(path), "%s/written.yaml", g_dir);
  FILE *f = fopen(path, "w");
  int rc = blpo_config_write_yaml(c, f);
  fclose(f);
  blpo_config_defaults(back);
  cap_begin();
  rc |= blpo_config_load_file(back, NULL, path);
  cap_end();
  return rc;
}

static void test_round_trip(void) {
  blpo_config c, back;
  blpo_config_defaults(&c);
  CHECK(write_and_load(&c, &back) == 0, "defaults: %s", g_err);
  CHECK(memcmp(&c, &back, sizeof(c)) == 0, "defaults do not round-trip");

  /* every key away from its default, with awkward floats and strings */
  const char *sets[] = {"env.id=MountainCarContinuous-v0",
                        "env.num_envs=4096",
                        "env.num_steps=3",
                        "env.normalize_obs=true",
                        "env.normalize_reward=false",
                        "env.bootstrap_truncated=true",
                        "run.total_steps=123456789012",
                        "run.num_seeds=7",
                        "run.seed=9007199254740000",
                        "run.out_dir=/tmp/a b/\"quoted\"\\back",
                        "run.name='x: #y'",
                        "run.log_every=3",
                        "run.threads=5",
                        "run.checkpoint_every=7",
                        "run.debug_nan_iteration=3",
                        "run.cuda_graph=false",
                        "run.precision=tf32",
                        "run.pdl=true",
                        "run.grid_sync=true",
                        "run.fused_rollout=false",
                        "run.fused_update=false",
                        "run.debug_emulate_replay=true",
                        "algo.name=nested",
                        "algo.gamma=0.999",
                        "algo.gae_lambda=0.1",
                        "algo.num_epochs=9",
                        "algo.num_minibatches=64",
                        "algo.clip_eps=0.3",
                        "algo.vf_coef=0.123456789",
                        "algo.ent_coef=0",
                        "algo.max_grad_norm=1e-7",
                        "algo.norm_adv=false",
                        "algo.clip_value=off",
                        "algo.actor_lr=3.14159265e-4",
                        "algo.critic_lr=1e-3",
                        "algo.anneal_lr=no",
                        "algo.adam_eps=1e-8",
                        "algo.nested_updates=2",
                        "algo.hypergrad.method=cg",
                        "algo.hypergrad.rank=11",
                        "algo.hypergrad.rho=0.1",
                        "algo.hypergrad.ridge=0",
                        "algo.hypergrad.cutoff=1e-12",
                        "algo.hypergrad.ihvp_bound=2.5",
                        "algo.hypergrad.clip_f=0.25",
                        "algo.hypergrad.fixed_indices=true",
                        "algo.hypergrad.cg_iters=50",
                        "algo.hypergrad.cg_tol=3e-9",
                        "algo.hypergrad.exact_max_params=100",
                        "algo.hypergrad.check=true",
                        "net.actor_hidden=[1, 2, 3, 4, 5, 6, 7, 4096]",
                        "net.critic_hidden=[33]",
                        "net.activation=relu"};
  int nsets = (int)(sizeof(sets) / sizeof(sets[0]));
  CHECK(nsets == blpo_config_num_keys, "round trip covers %d of %d keys", nsets,
        blpo_config_num_keys);
  int rc = 0;
  cap_begin();
  for (int i = 0; i < nsets; i++)
    rc |= blpo_config_apply_set(&c, NULL, sets[i]);
  cap_end();
  CHECK(rc == 0, "round-trip --set: %s", g_err);
  CHECK(strcmp(c.out_dir, "/tmp/a b/\"quoted\"\\back") == 0, "out_dir %s", c.out_dir);
  CHECK(strcmp(c.name, "x: #y") == 0, "quoted scalar: %s", c.name);
  blpo_config d;
  blpo_config_defaults(&d);
  for (int i = 0; i < blpo_config_num_keys; i++) {
    const blpo_config_key *k = &blpo_config_keys[i];
    CHECK(memcmp((char *)&c + k->offset, (char *)&d + k->offset, k->size) != 0,
          "%s still at its default", k->path);
  }
  CHECK(write_and_load(&c, &back) == 0, "full: %s", g_err);
  CHECK(memcmp(&c, &back, sizeof(c)) == 0, "full config does not round-trip");
}

static void test_cli(void) {
  blpo_cli cli;
  char *ok[] = {"blpo-gpu",
                "--config=a.yaml",
                "--set",
                "env.num_envs=8",
                "--set=algo.gamma=0.9",
                "--seed",
                "-3",
                "--out",
                "runs/x",
                "--device",
                "cuda",
                "--print-config",
                "--force",
                "--quiet",
                NULL};
  int rc = blpo_cli_parse(14, ok, &cli);
  CHECK(rc == 0, "cli parse");
  CHECK(strcmp(cli.config, "a.yaml") == 0 && cli.num_sets == 2, "config/sets");
  CHECK(strcmp(cli.sets[0], "env.num_envs=8") == 0 && strcmp(cli.sets[1], "algo.gamma=0.9") == 0,
        "set order");
  CHECK(strcmp(cli.seed, "-3") == 0 && strcmp(cli.out_dir, "runs/x") == 0, "seed/out");
  CHECK(cli.device == BLPO_DEVICE_CUDA && cli.print_config && cli.force && cli.quiet, "flags");

  char *help[] = {"blpo-gpu", "--help", NULL};
  CHECK(blpo_cli_parse(2, help, &cli) == 0 && cli.help, "--help without --config");
  char *hc[] = {"blpo-gpu", "--help-config", NULL};
  CHECK(blpo_cli_parse(2, hc, &cli) == 0 && cli.help_config, "--help-config");

#define CLI_ERR(n, argv_, ...)                                                                     \
  do {                                                                                             \
    char *a_[] = argv_;                                                                            \
    cap_begin();                                                                                   \
    int rc_ = blpo_cli_parse(n, a_, &cli);                                                         \
    cap_end();                                                                                     \
    EXPECT_ERR(rc_, __VA_ARGS__, "try 'blpo-gpu --help'");                                         \
  } while (0)
#define A(...) {"blpo-gpu", __VA_ARGS__, NULL}
  CLI_ERR(3, A("--conifg", "a.yaml"),
          "blpo-gpu: unknown option '--conifg' (did you mean --config?)");
  CLI_ERR(2, A("--config"), "blpo-gpu: option --config needs a value (FILE)");
  CLI_ERR(3, A("--config", "--set"), "blpo-gpu: option --config needs a value");
  CLI_ERR(2, A("--config="), "blpo-gpu: option --config needs a non-empty value");
  CLI_ERR(4, A("--config=a", "--device", "gpu"),
          "blpo-gpu: unknown --device 'gpu'; expected auto, cpu or cuda");
  CLI_ERR(3, A("--config=a", "--config=b"), "blpo-gpu: option --config given twice");
  CLI_ERR(2, A("a.yaml"), "blpo-gpu: unexpected argument 'a.yaml' (did you mean --config a.yaml?)");
  CLI_ERR(2, A("--set=x=1"), "blpo-gpu: missing --config FILE");
  CLI_ERR(3, A("--config=a", "--help=yes"), "blpo-gpu: option --help takes no value");
  CLI_ERR(3, A("--config=a", "--set=abc"), "blpo-gpu: --set expects KEY=VALUE, got 'abc'");
  CLI_ERR(3, A("--config=a", "-x"), "blpo-gpu: unknown option '-x'");

  /* search and the whole chain */
  char found[1024], cfgpath[512], noext[512];
  snprintf(cfgpath, sizeof(cfgpath), "%s/mine.yaml", g_dir);
  write_text(cfgpath, "env:\n  num_envs: 8\nalgo:\n  num_minibatches: 2\n");
  CHECK(blpo_resolve_config_path(cfgpath, found, sizeof(found)) == 0 && !strcmp(found, cfgpath),
        "resolve as given");
  snprintf(noext, sizeof(noext), "%s/mine", g_dir);
  CHECK(blpo_resolve_config_path(noext, found, sizeof(found)) == 0 && !strcmp(found, cfgpath),
        "resolve adding .yaml");
  cap_begin();
  rc = blpo_resolve_config_path("no/such/config.yaml", found, sizeof(found));
  cap_end();
  EXPECT_ERR(rc, "blpo-gpu: config file 'no/such/config.yaml' not found; tried:",
             "\n  no/such/config.yaml\n", "/share/blpo-gpu/configs/no/such/config.yaml");

  blpo_config c;
  blpo_config_src s;
  char *chain[] = {"blpo-gpu", "--config", noext, "--set", "env.num_steps=16", "--seed=5", NULL};
  CHECK(blpo_cli_parse(6, chain, &cli) == 0, "chain parse");
  cap_begin();
  rc = blpo_config_from_cli(&cli, &c, &s);
  cap_end();
  CHECK(rc == 0, "from_cli: %s", g_err);
  CHECK(c.num_envs == 8 && c.num_steps == 16 && c.seed == 5 && c.num_minibatches == 2, "chain");
  CHECK(strcmp(s.file, cfgpath) == 0, "src.file %s", s.file);
  char *bad[] = {"blpo-gpu", "--config",     noext,    "--set", "env.num_envs=7",
                 "--set",    "algo.gamma=x", "--seed", "q",     NULL};
  CHECK(blpo_cli_parse(9, bad, &cli) == 0, "bad chain parse");
  cap_begin();
  rc = blpo_config_from_cli(&cli, &c, &s);
  cap_end();
  EXPECT_ERR(rc, "--set:2:12: algo.gamma: expected a number, got 'x'",
             "--seed:1:1: run.seed: expected an integer, got 'q'");
  char *bad2[] = {"blpo-gpu", "--config",        noext, "--set", "env.num_envs=7",
                  "--set",    "env.num_steps=1", NULL};
  CHECK(blpo_cli_parse(7, bad2, &cli) == 0, "bad2 parse");
  cap_begin();
  rc = blpo_config_from_cli(&cli, &c, &s);
  cap_end();
  EXPECT_ERR(rc, "--set:2:1: algo.num_minibatches (2) must divide",
             "env.num_envs * env.num_steps (7 * 1 = 7)");
}

static void test_docs(void) {
  char path[512];
  snprintf(path, sizeof(path), "%s/docs.txt", g_dir);
  FILE *f = fopen(path, "w+");
  blpo_config_print_keys(f);
  blpo_cli_print_help(f);
  long n = ftell(f);
  rewind(f);
  char *buf = calloc((size_t)n + 1, 1);
  CHECK(fread(buf, 1, (size_t)n, f) == (size_t)n, "read docs");
  fclose(f);
  for (int i = 0; i < blpo_config_num_keys; i++)
    CHECK(strstr(buf, blpo_config_keys[i].path), "%s not documented", blpo_config_keys[i].path);
  const char *words[] = {"--config FILE", "--set KEY=VALUE", "--device auto|cpu|cuda", "--seed N",
                         "--out DIR", "--print-config", "--help-config", "--version",
                         "share/blpo-gpu/configs", "Example:", "ppo|nested|blpo",
                         /* every exit status the binary uses (run.c, backend_cuda.cu) */
                         "0 success", "1 runtime failure", "2 usage or config error",
                         "3 a NaN or Inf", "4 a failing CUDA", "130 / 143"};
  for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
    CHECK(strstr(buf, words[i]), "help lacks %s", words[i]);
  free(buf);
}

/* The resume hash (checkpoint.c): only keys away from their defaults enter
 * it, so a build that adds a key still resumes older runs, and the run.*
 * keys a resume may change never do. */
static void test_config_hash(void) {
  blpo_config d, c;
  blpo_config_defaults(&d);
  const uint64_t empty = 14695981039346656037ull; /* FNV-1a 64 of nothing */
  CHECK(blpo_config_hash(&d) == empty,
        "an all-default config hashes as the empty input (no key at its default enters it)");
  c = d;
  c.total_steps *= 3, c.log_every = 1, c.threads = 7, c.checkpoint_every = 3;
  c.debug_nan_iteration = 2, c.cuda_graph = !d.cuda_graph, c.precision = BLPO_PREC_TF32;
  c.pdl = 1, c.grid_sync = 1, c.fused_rollout = BLPO_TRI_ON, c.debug_emulate_replay = 1;
  snprintf(c.name, sizeof(c.name), "other");
  snprintf(c.out_dir, sizeof(c.out_dir), "elsewhere");
  CHECK(blpo_config_hash(&c) == empty, "the keys a resume may change do not enter the hash");
  c = d;
  c.gamma = 0.9f;
  const uint64_t h_gamma = blpo_config_hash(&c);
  CHECK(h_gamma != empty, "algo.gamma away from its default enters the hash");
  c = d;
  c.gae_lambda = 0.9f;
  CHECK(blpo_config_hash(&c) != h_gamma && blpo_config_hash(&c) != empty,
        "another key at the same value: another hash");
  c.gamma = 0.9f;
  CHECK(blpo_config_hash(&c) != h_gamma, "two keys away from their defaults: both count");
  c = d;
  c.fused_update = BLPO_TRI_OFF;
  CHECK(blpo_config_hash(&c) != empty, "run.fused_update (changes float rounding) enters it");
}

int main(void) {
  snprintf(g_dir, sizeof(g_dir), "%s/blpo_test_config_XXXXXX",
           getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
  if (!mkdtemp(g_dir)) {
    perror("mkdtemp");
    return 1;
  }
  test_defaults();
  test_valid_file();
  test_file_errors();
  test_set();
  test_round_trip();
  test_cli();
  test_docs();
  test_config_hash();

  /* remove the temp dir: the files written are known */
  char path[600];
  for (int i = 0; i < g_nfile; i++) {
    snprintf(path, sizeof(path), "%s/c%d.yaml", g_dir, i);
    unlink(path);
  }
  const char *extra[] = {"stderr.txt", "written.yaml", "mine.yaml", "docs.txt"};
  for (int i = 0; i < 4; i++) {
    snprintf(path, sizeof(path), "%s/%s", g_dir, extra[i]);
    unlink(path);
  }
  rmdir(g_dir);
  if (g_failures) {
    printf("test_config: %d check(s) failed\n", g_failures);
    return 1;
  }
  printf("test_config: all checks passed\n");
  return 0;
}
