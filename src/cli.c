/* blpo-gpu's command line: flags, config file search, and assembling the
 * effective config from file, --set and --seed. */
#define _POSIX_C_SOURCE 200809L

#include "blpo/cli.h"

#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef BLPO_INSTALL_CONFIG_DIR
#define BLPO_INSTALL_CONFIG_DIR "/usr/local/share/blpo-gpu/configs"
#endif
#ifndef BLPO_SOURCE_CONFIG_DIR
#define BLPO_SOURCE_CONFIG_DIR "configs"
#endif

enum {
  OPT_CONFIG,
  OPT_SET,
  OPT_DEVICE,
  OPT_SEED,
  OPT_OUT,
  OPT_RESUME,
  OPT_FORCE,
  OPT_QUIET,
  OPT_PRINT_CONFIG,
  OPT_HELP_CONFIG,
  OPT_HELP,
  OPT_VERSION
};

typedef struct {
  const char *name; /* without the leading dashes */
  const char *arg;  /* metavariable, NULL for a flag without a value */
  const char *doc;
} opt_t;

static const opt_t opts[] = {
    [OPT_CONFIG] = {"config", "FILE",
                    "YAML config file to train with (required); searched as described below."},
    [OPT_SET] = {"set", "KEY=VALUE",
                 "Override one config key after the file is read, e.g. env.num_envs=1024 or "
                 "net.actor_hidden=[128,128]; the value is YAML. Repeatable (applied in order, "
                 "up to 64)."},
    [OPT_DEVICE] = {"device", "auto|cpu|cuda",
                    "Backend: cuda needs a GPU build and device; auto (default) uses CUDA when "
                    "available and the CPU otherwise. The CUDA backend is the plugin "
                    "libblpo-cuda.so, loaded only for a GPU run: next to the binary, in the "
                    "install's lib/blpo-gpu, or the file $BLPO_CUDA_PLUGIN names."},
    [OPT_SEED] = {"seed", "N", "Shorthand for --set run.seed=N (agent i uses seed N + i)."},
    [OPT_OUT] = {"out", "DIR",
                 "Use DIR as the run directory exactly, instead of a new "
                 "run.out_dir/<name>-<time> directory."},
    [OPT_RESUME] = {"resume", "RUN_DIR",
                    "Continue the run in RUN_DIR from its checkpoint, with its config.yaml "
                    "(--set may change run.total_steps and other run.* keys); replaces "
                    "--config."},
    [OPT_FORCE] = {"force", NULL, "Allow --out to name an existing non-empty directory."},
    [OPT_QUIET] = {"quiet", NULL, "No progress output; the final summary is still printed."},
    [OPT_PRINT_CONFIG] = {"print-config", NULL,
                          "Print the effective config (file, --set and --seed applied) as YAML "
                          "and exit without training."},
    [OPT_HELP_CONFIG] = {"help-config", NULL,
                         "List every config key with its type, allowed values, default and "
                         "meaning, then exit."},
    [OPT_HELP] = {"help", NULL, "Show this help and exit (also -h)."},
    [OPT_VERSION] = {"version", NULL, "Print the version and exit."},
};
#define NUM_OPTS ((int)(sizeof(opts) / sizeof(opts[0])))

static int usage_error(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
static int usage_error(const char *fmt, ...) {
  va_list ap;
  fputs("blpo-gpu: ", stderr);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputs("\ntry 'blpo-gpu --help'\n", stderr);
  return 2;
}

static int ends_with(const char *s, const char *suffix) {
  size_t a = strlen(s), b = strlen(suffix);
  return a >= b && strcmp(s + a - b, suffix) == 0;
}

static int find_opt(const char *name, size_t len) {
  for (int i = 0; i < NUM_OPTS; i++)
    if (strlen(opts[i].name) == len && strncmp(opts[i].name, name, len) == 0)
      return i;
  return -1;
}

static const char *closest_opt(const char *name) {
  const char *best = NULL;
  int bd = 3; /* suggest only close misspellings */
  for (int i = 0; i < NUM_OPTS; i++) {
    int d = blpo_edit_distance(name, opts[i].name);
    if (d < bd) {
      bd = d;
      best = opts[i].name;
    }
  }
  return best;
}

int blpo_cli_parse(int argc, char **argv, blpo_cli *out) {
  memset(out, 0, sizeof(*out));
  const char *device = NULL;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "-h") == 0) {
      out->help = 1;
      continue;
    }
    if (strncmp(a, "--", 2) != 0 || a[2] == 0) {
      if (a[0] == '-' && a[1] != 0)
        return usage_error("unknown option '%s'", a);
      if (ends_with(a, ".yaml") || ends_with(a, ".yml"))
        return usage_error("unexpected argument '%s' (did you mean --config %s?)", a, a);
      return usage_error("unexpected argument '%s'", a);
    }
    const char *name = a + 2;
    const char *eq = strchr(name, '=');
    size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
    int o = find_opt(name, nlen);
    if (o < 0) {
      char buf[64];
      snprintf(buf, sizeof(buf), "%.*s", (int)(nlen < 63 ? nlen : 63), name);
      const char *s = closest_opt(buf);
      if (s)
        return usage_error("unknown option '--%s' (did you mean --%s?)", buf, s);
      return usage_error("unknown option '--%s'", buf);
    }
    const char *val = NULL;
    if (!opts[o].arg) {
      if (eq)
        return usage_error("option --%s takes no value (got '%s')", opts[o].name, eq + 1);
    } else if (eq) {
      val = eq + 1;
    } else if (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0) {
      val = argv[++i];
    } else {
      return usage_error("option --%s needs a value (%s)", opts[o].name, opts[o].arg);
    }
    if (opts[o].arg && val[0] == 0)
      return usage_error("option --%s needs a non-empty value (%s)", opts[o].name, opts[o].arg);

    const char **once = NULL;
    switch (o) {
    case OPT_CONFIG:
      once = &out->config;
      break;
    case OPT_SEED:
      once = &out->seed;
      break;
    case OPT_OUT:
      once = &out->out_dir;
      break;
    case OPT_RESUME:
      once = &out->resume;
      break;
    case OPT_DEVICE:
      once = &device;
      break;
    case OPT_SET:
      if (out->num_sets == BLPO_CLI_MAX_SETS)
        return usage_error("too many --set options (at most %d)", BLPO_CLI_MAX_SETS);
      if (!strchr(val, '='))
        return usage_error("--set expects KEY=VALUE, got '%s'", val);
      out->sets[out->num_sets++] = val;
      break;
    case OPT_FORCE:
      out->force = 1;
      break;
    case OPT_QUIET:
      out->quiet = 1;
      break;
    case OPT_PRINT_CONFIG:
      out->print_config = 1;
      break;
    case OPT_HELP_CONFIG:
      out->help_config = 1;
      break;
    case OPT_HELP:
      out->help = 1;
      break;
    case OPT_VERSION:
      out->version = 1;
      break;
    }
    if (once) {
      /* A second value would silently win; more likely a mistake than intent. */
      if (*once)
        return usage_error("option --%s given twice ('%s' and '%s')", opts[o].name, *once, val);
      *once = val;
    }
  }
  if (device) {
    if (strcmp(device, "auto") == 0)
      out->device = BLPO_DEVICE_AUTO;
    else if (strcmp(device, "cpu") == 0)
      out->device = BLPO_DEVICE_CPU;
    else if (strcmp(device, "cuda") == 0)
      out->device = BLPO_DEVICE_CUDA;
    else
      return usage_error("unknown --device '%s'; expected auto, cpu or cuda", device);
  }
  if (out->resume && out->config)
    return usage_error("--resume takes the config from the run directory; drop --config");
  if (out->resume && out->out_dir)
    return usage_error("--resume continues in its own run directory; drop --out");
  if (!out->config && !out->resume && !out->help && !out->version && !out->help_config)
    return usage_error("missing --config FILE (or --resume RUN_DIR)");
  return 0;
}

void blpo_cli_print_help(FILE *f) {
  fputs("Usage: blpo-gpu --config FILE [--set KEY=VALUE]... [--device auto|cpu|cuda]\n"
        "                [--seed N] [--out DIR] [--force] [--quiet] [--print-config]\n"
        "       blpo-gpu --resume RUN_DIR [--set run.KEY=VALUE]... [--device ...]\n"
        "       blpo-gpu eval RUN_DIR [--episodes N] [--deterministic] [--device ...]\n"
        "       blpo-gpu --help | --help-config | --version\n"
        "\n"
        "Trains P agents side by side with PPO, nested-critic PPO or BLPO (Nystrom\n"
        "hypergradients) on a classic-control task, as the config file says.\n"
        "\n"
        "Options (each also accepts --option=value):\n",
        f);
  for (int i = 0; i < NUM_OPTS; i++) {
    char head[64];
    snprintf(head, sizeof(head), "--%s%s%s", opts[i].name, opts[i].arg ? " " : "",
             opts[i].arg ? opts[i].arg : "");
    fprintf(f, "  %-24s ", head);
    blpo_fprint_wrapped(f, opts[i].doc, 27, 27, 80);
  }
  fprintf(f,
          "\n"
          "Config search order for --config FILE (at each place FILE.yaml is tried too when\n"
          "FILE has no .yaml/.yml ending):\n"
          "  1. FILE as given (relative to the current directory)\n"
          "  2. <directory of the blpo-gpu executable>/../share/blpo-gpu/configs/FILE\n"
          "  3. %s/FILE\n"
          "  4. %s/FILE\n"
          "\n"
          "Errors in the config or in --set/--seed are reported as FILE:LINE:COL: message;\n"
          "for --set the LINE is the ordinal of the --set option and COL the column in its\n"
          "KEY=VALUE argument (--set:2:15: ...).\n"
          "\n"
          "Exit status: 0 success; 1 runtime failure (a file that cannot be written, device\n"
          "memory); 2 usage or config error, a run directory that cannot be used, or a\n"
          "checkpoint --resume refuses; 3 a NaN or Inf in the losses or parameters (the\n"
          "last good checkpoint is kept); 4 a failing CUDA, cuBLAS or cuSOLVER call (the\n"
          "message names it, and what to do where the name is not enough); 130 / 143\n"
          "stopped by SIGINT / SIGTERM after a checkpoint (the command to resume is\n"
          "printed).\n"
          "\n"
          "Example:\n"
          "  blpo-gpu --config paper/cartpole.yaml --set algo.name=blpo \\\n"
          "           --set env.num_envs=1024 --set net.critic_hidden=[128,128] --seed 3\n",
          BLPO_INSTALL_CONFIG_DIR, BLPO_SOURCE_CONFIG_DIR);
}

static int is_file(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

int blpo_exe_dir(char *out, size_t n) {
  char exe[BLPO_PATH_MAX];
  ssize_t len = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  out[0] = 0;
  if (len <= 0)
    return -1;
  exe[len] = 0;
  char *slash = strrchr(exe, '/');
  if (!slash)
    return -1;
  *slash = 0;
  int w = snprintf(out, n, "%s", exe);
  if (w < 0 || (size_t)w >= n) {
    out[0] = 0; /* a cut path would name the wrong directory */
    return -1;
  }
  return 0;
}

/* <dir of /proc/self/exe>/../share/blpo-gpu/configs, or "" when unknown. */
static void exe_config_dir(char *out, size_t n) {
  char dir[BLPO_PATH_MAX];
  out[0] = 0;
  if (blpo_exe_dir(dir, sizeof(dir)) != 0)
    return;
  int w = snprintf(out, n, "%s/../share/blpo-gpu/configs", dir);
  if (w < 0 || (size_t)w >= n)
    out[0] = 0; /* a cut path would name the wrong directory */
}

int blpo_resolve_config_path(const char *given, char *out, size_t n) {
  char dirs[4][BLPO_PATH_MAX];
  int nd = 0;
  snprintf(dirs[nd++], BLPO_PATH_MAX, "%s", ""); /* as given */
  if (given[0] != '/') {
    exe_config_dir(dirs[nd], BLPO_PATH_MAX);
    if (dirs[nd][0])
      nd++;
    snprintf(dirs[nd++], BLPO_PATH_MAX, "%s", BLPO_INSTALL_CONFIG_DIR);
    snprintf(dirs[nd++], BLPO_PATH_MAX, "%s", BLPO_SOURCE_CONFIG_DIR);
  }
  int try_yaml = !ends_with(given, ".yaml") && !ends_with(given, ".yml");
  char tried[8][BLPO_PATH_MAX + 8];
  int nt = 0;
  for (int d = 0; d < nd; d++) {
    for (int y = 0; y <= try_yaml; y++) {
      char *p = tried[nt++];
      int len = snprintf(p, BLPO_PATH_MAX + 8, "%s%s%s%s", dirs[d], dirs[d][0] ? "/" : "", given,
                         y ? ".yaml" : "");
      if (len >= 0 && (size_t)len < n && is_file(p)) {
        memcpy(out, p, (size_t)len + 1);
        return 0;
      }
    }
  }
  fprintf(stderr, "blpo-gpu: config file '%s' not found; tried:\n", given);
  for (int t = 0; t < nt; t++)
    fprintf(stderr, "  %s\n", tried[t]);
  return 2;
}

int blpo_config_from_cli(const blpo_cli *cli, blpo_config *c, blpo_config_src *src) {
  blpo_config_defaults(c);
  memset(src, 0, sizeof(*src));
  char path[BLPO_PATH_MAX];
  if (cli->resume) {
    /* the run's own effective config, never a search */
    int len = snprintf(path, sizeof(path), "%s/config.yaml", cli->resume);
    if (len < 0 || (size_t)len >= sizeof(path))
      return usage_error("--resume: path too long");
  } else if (!cli->config) {
    return usage_error("missing --config FILE");
  } else if (blpo_resolve_config_path(cli->config, path, sizeof(path)) != 0) {
    return 2;
  }
  if (blpo_config_load_file(c, src, path) != 0)
    return 2;
  int rc = 0;
  /* Keep going so that every bad --set is reported in one run. */
  for (int i = 0; i < cli->num_sets; i++)
    if (blpo_config_apply_set(c, src, cli->sets[i]) != 0)
      rc = 2;
  if (cli->seed && blpo_config_apply_seed(c, src, cli->seed) != 0)
    rc = 2;
  if (rc)
    return rc;
  return blpo_config_validate(c, src);
}
