/* Drives a training run and writes what a user keeps: the run directory with
 * the effective config, a metrics CSV flushed every iteration, and a summary
 * written atomically (temporary file + rename) at the end. */
#define _POSIX_C_SOURCE 200809L
#include "blpo/run.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "blpo/checkpoint.h"
#include "blpo/config_load.h"
#include "blpo/trainer.h"
#include "blpo_build_info.h"

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int blpo_mkdirs(const char *path) {
  char buf[BLPO_PATH_MAX];
  if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
    return -1;
  for (char *p = buf + 1; *p; p++) {
    if (*p != '/')
      continue;
    *p = 0;
    if (mkdir(buf, 0755) != 0 && errno != EEXIST)
      return -1;
    *p = '/';
  }
  if (mkdir(buf, 0755) != 0 && errno != EEXIST)
    return -1;
  return 0;
}

static int dir_is_empty(const char *path) {
  DIR *d = opendir(path);
  if (!d)
    return 1;
  struct dirent *e;
  int empty = 1;
  while ((e = readdir(d)))
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
      empty = 0;
      break;
    }
  closedir(d);
  return empty;
}

/* "configs/cartpole.yaml" -> "cartpole" */
static void config_stem(const char *path, char *out, size_t n) {
  const char *b = strrchr(path, '/');
  b = b ? b + 1 : path;
  snprintf(out, n, "%s", b);
  char *dot = strrchr(out, '.');
  if (dot && dot != out)
    *dot = 0;
}

static int choose_run_dir(const blpo_config *cfg, const blpo_run_opts *o, char *dir, size_t n) {
  struct stat st;
  if (o->out_dir) {
    snprintf(dir, n, "%s", o->out_dir);
    if (stat(dir, &st) == 0) {
      if (!S_ISDIR(st.st_mode)) {
        fprintf(stderr, "blpo-gpu: --out %s exists and is not a directory\n", dir);
        return 2;
      }
      if (!dir_is_empty(dir) && !o->force) {
        fprintf(stderr,
                "blpo-gpu: run directory %s already exists and is not empty; choose another "
                "--out or pass --force to overwrite its files\n",
                dir);
        return 2;
      }
    }
    return 0;
  }
  char stem[128], stamp[32];
  if (cfg->name[0])
    snprintf(stem, sizeof(stem), "%s", cfg->name);
  else
    config_stem(o->config_path ? o->config_path : "run", stem, sizeof(stem));
  time_t t = time(NULL);
  struct tm tmv;
  localtime_r(&t, &tmv);
  strftime(stamp, sizeof(stamp), "%Y%m%d-%H%M%S", &tmv);
  for (int k = 0; k < 1000; k++) {
    int len = k == 0 ? snprintf(dir, n, "%s/%s-%s", cfg->out_dir, stem, stamp)
                     : snprintf(dir, n, "%s/%s-%s-%d", cfg->out_dir, stem, stamp, k);
    if (len < 0 || (size_t)len >= n) {
      fprintf(stderr, "blpo-gpu: run directory path under %s is too long\n", cfg->out_dir);
      return 2;
    }
    if (stat(dir, &st) != 0)
      return 0;
  }
  fprintf(stderr, "blpo-gpu: could not find a free run directory name under %s\n", cfg->out_dir);
  return 2;
}

/* Writes a file through a temporary name so a crash never leaves half of it. */
typedef int (*write_fn)(FILE *f, const void *ctx);
static int write_atomic(const char *path, write_fn fn, const void *ctx) {
  char tmp[BLPO_PATH_MAX + 128];
  int len = snprintf(tmp, sizeof(tmp), "%s.tmp", path);
  if (len < 0 || (size_t)len >= sizeof(tmp))
    return -1;
  FILE *f = fopen(tmp, "w");
  if (!f)
    return -1;
  int rc = fn(f, ctx);
  if (fflush(f) != 0 || fsync(fileno(f)) != 0)
    rc = -1;
  if (fclose(f) != 0)
    rc = -1;
  if (rc == 0 && rename(tmp, path) != 0)
    rc = -1;
  if (rc != 0)
    unlink(tmp);
  return rc;
}

static int write_config_cb(FILE *f, const void *ctx) {
  return blpo_config_write_yaml((const blpo_config *)ctx, f) == 0 ? 0 : -1;
}

typedef struct {
  const blpo_config *cfg;
  const char *backend;
  const blpo_iter_metrics *last; /* P entries */
  float *const *recent;          /* P arrays of recent returns */
  const int *recent_n;
  int64_t steps_per_agent;
  double wall;
} summary_ctx;

static void json_float(FILE *f, double v) {
  if (isfinite(v))
    fprintf(f, "%.6g", v);
  else
    fprintf(f, "null");
}

static int write_summary_cb(FILE *f, const void *vctx) {
  const summary_ctx *s = vctx;
  int P = s->cfg->num_seeds;
  fprintf(f, "{\n  \"blpo_gpu_version\": \"%s\",\n  \"commit\": \"%s\",\n", BLPO_VERSION,
          BLPO_GIT_COMMIT);
  fprintf(f, "  \"env\": \"%s\",\n  \"algo\": \"%s\",\n  \"backend\": \"%s\",\n", s->cfg->env_id,
          s->cfg->algo == BLPO_ALGO_PPO      ? "ppo"
          : s->cfg->algo == BLPO_ALGO_NESTED ? "nested"
                                             : "blpo",
          s->backend);
  fprintf(f, "  \"num_seeds\": %d,\n  \"seed\": %lld,\n  \"steps_per_agent\": %lld,\n", P,
          (long long)s->cfg->seed, (long long)s->steps_per_agent);
  fprintf(f, "  \"wall_time_s\": ");
  json_float(f, s->wall);
  fprintf(f, ",\n  \"env_steps_per_second\": ");
  json_float(f, s->wall > 0 ? (double)s->steps_per_agent * P / s->wall : NAN);
  fprintf(f, ",\n  \"agents\": [\n");
  double sum = 0;
  int cnt = 0;
  for (int p = 0; p < P; p++) {
    double m = s->last[p].recent_mean;
    fprintf(f, "    {\"agent\": %d, \"seed\": %lld, \"final_return_mean_last100\": ", p,
            (long long)(s->cfg->seed + p));
    json_float(f, m);
    fprintf(f, ", \"episodes_in_mean\": %d}%s\n", s->recent_n[p], p + 1 < P ? "," : "");
    if (isfinite(m)) {
      sum += m;
      cnt++;
    }
  }
  fprintf(f, "  ],\n  \"final_return_mean_over_agents\": ");
  json_float(f, cnt ? sum / cnt : NAN);
  fprintf(f, "\n}\n");
  return ferror(f) ? -1 : 0;
}

static void fmt_duration(double s, char *out, size_t n) {
  if (!isfinite(s) || s < 0)
    snprintf(out, n, "--");
  else if (s < 60)
    snprintf(out, n, "%.0fs", s);
  else if (s < 3600)
    snprintf(out, n, "%dm%02ds", (int)(s / 60), (int)s % 60);
  else
    snprintf(out, n, "%dh%02dm", (int)(s / 3600), ((int)s % 3600) / 60);
}

/* ---- interruption ------------------------------------------------------ */

static volatile sig_atomic_t g_stop_signal = 0;

/* First SIGINT/SIGTERM: note it and let the iteration finish; SA_RESETHAND
 * restores the default action, so a second signal ends the process at once. */
static void on_signal(int sig) {
  g_stop_signal = sig;
  static const char msg[] = "\nblpo-gpu: stopping after this iteration to write a checkpoint "
                            "(signal again to quit at once)\n";
  ssize_t w = write(2, msg, sizeof(msg) - 1);
  (void)w;
}

static void install_signals(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof(sa));
  sa.sa_handler = on_signal;
  sa.sa_flags = SA_RESETHAND;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
}

static void restore_signals(void) {
  signal(SIGINT, SIG_DFL);
  signal(SIGTERM, SIG_DFL);
}

/* ---- numerical faults ---------------------------------------------------- */

/* The first non-finite quantity among an iteration's metrics, or NULL. */
static const char *non_finite_metric(const blpo_iter_metrics *m, int algo, float *value) {
  struct {
    const char *name;
    float v;
  } q[] = {{"pg_loss", m->pg_loss},
           {"v_loss", m->v_loss},
           {"entropy", m->entropy},
           {"approx_kl", m->approx_kl},
           {"actor_grad_norm", m->actor_gnorm},
           {"critic_grad_norm", m->critic_gnorm},
           {"critic_loss_before", m->critic_loss_before},
           {"critic_loss_after", m->critic_loss_after},
           {"actor_loss", m->actor_loss},
           {"g_norm", m->g_norm},
           {"p_norm (hypergradient mixed term)", m->p_norm},
           {"hg_scale", m->scale},
           {"cos_g_p", m->cos_gp}};
  int n = (int)(sizeof(q) / sizeof(q[0]));
  for (int i = 0; i < n; i++) {
    if (algo == BLPO_ALGO_PPO && i >= 6)
      break;
    if (!isfinite(q[i].v)) {
      *value = q[i].v;
      return q[i].name;
    }
  }
  return NULL;
}

/* ---- metrics CSV --------------------------------------------------------- */

static const char *csv_header =
    "agent,seed,iteration,global_step,episodes,return_mean,return_min,return_max,"
    "return_mean_last100,pg_loss,v_loss,entropy,approx_kl,clipfrac,actor_grad_norm,"
    "critic_grad_norm,actor_lr,critic_lr,critic_loss_before,critic_loss_after,actor_loss,g_norm,"
    "p_norm,hg_scale,cos_g_p,nystrom_rank,eig_min,eig_max,core_faults,cg_resid,ihvp_relerr,sps,"
    "wall_time_s\n";

/* Keeps the header and the rows of iterations <= last (a resume continues
 * after the checkpoint's iteration; rows written after it are dropped).
 * Rewritten through a temporary file. */
static int truncate_metrics(const char *path, int64_t last) {
  FILE *in = fopen(path, "r");
  if (!in)
    return -1;
  char tmp[BLPO_PATH_MAX + 128];
  snprintf(tmp, sizeof(tmp), "%s.tmp", path);
  FILE *out = fopen(tmp, "w");
  if (!out) {
    fclose(in);
    return -1;
  }
  char line[4096];
  int first = 1;
  while (fgets(line, sizeof(line), in)) {
    long long agent, seed, it;
    if (first || (sscanf(line, "%lld,%lld,%lld", &agent, &seed, &it) == 3 && it <= last))
      fputs(line, out);
    first = 0;
  }
  fclose(in);
  int rc = (fflush(out) == 0 && fsync(fileno(out)) == 0) ? 0 : -1;
  if (fclose(out) != 0)
    rc = -1;
  if (rc == 0 && rename(tmp, path) != 0)
    rc = -1;
  if (rc)
    unlink(tmp);
  return rc;
}

static void write_metrics_rows(FILE *csv, const blpo_config *cfg, const blpo_iter_metrics *m,
                               double sps, double wall) {
  for (int p = 0; p < cfg->num_seeds; p++) {
    const blpo_iter_metrics *x = &m[p];
    fprintf(csv,
            "%d,%lld,%lld,%lld,%d,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,"
            "%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.1f,%.3f\n",
            p, (long long)(cfg->seed + p), (long long)x->iteration, (long long)x->global_step,
            x->episodes, x->ret_mean, x->ret_min, x->ret_max, x->recent_mean, x->pg_loss, x->v_loss,
            x->entropy, x->approx_kl, x->clipfrac, x->actor_gnorm, x->critic_gnorm, x->actor_lr,
            x->critic_lr, x->critic_loss_before, x->critic_loss_after, x->actor_loss, x->g_norm,
            x->p_norm, x->scale, x->cos_gp, x->rank, x->eig_min, x->eig_max, x->core_faults,
            x->cg_resid, x->ihvp_relerr, sps, wall);
  }
}

static void print_progress(const blpo_config *cfg, const blpo_iter_metrics *m, int tty,
                           int64_t step, int64_t total, double sps, double wall, int last) {
  double rsum = 0;
  int rc2 = 0;
  for (int p = 0; p < cfg->num_seeds; p++)
    if (isfinite(m[p].recent_mean)) {
      rsum += m[p].recent_mean;
      rc2++;
    }
  char eta[32], el[32];
  double remain = sps > 0 ? (double)(total - step) * cfg->num_seeds / sps : NAN;
  fmt_duration(remain, eta, sizeof(eta));
  fmt_duration(wall, el, sizeof(el));
  fprintf(stderr, "%s  step %lld/%lld  %.0f SPS  return(last100) %8.2f  elapsed %s  ETA %s  %s",
          tty ? "\r" : "", (long long)step, (long long)total, sps, rc2 ? rsum / rc2 : NAN, el, eta,
          (!tty || last) ? "\n" : "");
}

int blpo_run(const blpo_config *cfg, const blpo_run_opts *o, blpo_backend *be) {
  char dir[BLPO_PATH_MAX], path[BLPO_PATH_MAX + 64], ckpt[BLPO_PATH_MAX + 64];
  int rc = 0;
  if (o->resume) {
    snprintf(dir, sizeof(dir), "%s", o->resume);
  } else if ((rc = choose_run_dir(cfg, o, dir, sizeof(dir))) != 0) {
    return rc;
  }
  snprintf(ckpt, sizeof(ckpt), "%s/%s", dir, BLPO_CHECKPOINT_FILE);
  char err[1024];
  blpo_trainer *tr = blpo_trainer_create(cfg, be, err, sizeof(err));
  if (!tr) {
    fprintf(stderr, "blpo-gpu: %s\n", err);
    return 1;
  }
  double wall0 = 0.0; /* wall time of the run before this process */
  snprintf(path, sizeof(path), "%s/metrics.csv", dir);
  FILE *csv = NULL;
  if (o->resume) {
    if (blpo_checkpoint_load(tr, cfg, ckpt, &wall0, err, sizeof(err)) != 0) {
      fprintf(stderr, "blpo-gpu: cannot resume: %s\n", err);
      blpo_trainer_destroy(tr);
      return 2;
    }
    if (truncate_metrics(path, blpo_trainer_iteration(tr)) != 0 || !(csv = fopen(path, "a"))) {
      fprintf(stderr, "blpo-gpu: cannot continue %s: %s\n", path, strerror(errno));
      blpo_trainer_destroy(tr);
      return 1;
    }
  } else {
    if (blpo_mkdirs(dir) != 0) {
      fprintf(stderr, "blpo-gpu: cannot create run directory %s: %s\n", dir, strerror(errno));
      blpo_trainer_destroy(tr);
      return 2;
    }
    char cpath[BLPO_PATH_MAX + 64];
    snprintf(cpath, sizeof(cpath), "%s/config.yaml", dir);
    if (write_atomic(cpath, write_config_cb, cfg) != 0 || !(csv = fopen(path, "w"))) {
      fprintf(stderr, "blpo-gpu: cannot write in %s: %s\n", dir, strerror(errno));
      blpo_trainer_destroy(tr);
      return 1;
    }
    fputs(csv_header, csv);
  }

  int P = cfg->num_seeds;
  int64_t iters = blpo_trainer_num_iterations(tr);
  int64_t spi = blpo_trainer_steps_per_iteration(tr);
  int64_t total = iters * spi, it0 = blpo_trainer_iteration(tr);
  blpo_iter_metrics *m = calloc((size_t)P, sizeof(*m));
  int tty = isatty(fileno(stderr)) && !o->quiet;
  const char *algo = cfg->algo == BLPO_ALGO_PPO      ? "ppo"
                     : cfg->algo == BLPO_ALGO_NESTED ? "nested"
                                                     : "blpo";
  if (!o->quiet) {
    fprintf(stderr,
            "blpo-gpu: %s, %s on %s, %d agent(s) x %d envs x %d steps, %lld iterations -> %s\n",
            cfg->env_id, algo, be->name, P, cfg->num_envs, cfg->num_steps, (long long)iters, dir);
    if (o->resume)
      fprintf(stderr, "blpo-gpu: resuming at iteration %lld of %lld\n", (long long)it0,
              (long long)iters);
  }
  install_signals();
  double t0 = now_s(), last_print = t0;
  int64_t last_ckpt = o->resume ? it0 : -1;
  int stopped = 0, fault = 0;
  int replay_said = 0;
  for (int64_t it = it0; it < iters; it++) {
    blpo_trainer_iterate(tr, m);
    if (!replay_said && blpo_trainer_replaying(tr)) {
      size_t nodes = 0, kernels = blpo_trainer_graph_kernels(tr, &nodes);
      if (!o->quiet)
        fprintf(stderr,
                "%sblpo-gpu: CUDA graph: iteration captured (%zu kernels, %zu nodes), replayed "
                "from iteration %lld on\n",
                tty ? "\r\033[K" : "", kernels, nodes, (long long)(it + 1));
      replay_said = 1;
    }
    double t = now_s(), wall = wall0 + (t - t0);
    double sps = t > t0 ? (double)(it + 1 - it0) * spi * P / (t - t0) : 0.0;
    write_metrics_rows(csv, cfg, m, sps, wall);
    fflush(csv);
    for (int p = 0; p < P && !fault; p++) {
      float v;
      const char *q = non_finite_metric(&m[p], cfg->algo, &v);
      if (q) {
        fprintf(stderr,
                "\nblpo-gpu: numerical fault: %s is %g for agent %d (seed %lld) at iteration "
                "%lld; stopping.\n",
                q, v, p, (long long)(cfg->seed + p), (long long)(it + 1));
        fault = 1;
      }
    }
    if (fault)
      break;
    int last = it + 1 == iters;
    int every = cfg->checkpoint_every > 0 && (it + 1) % cfg->checkpoint_every == 0;
    if (last || every || g_stop_signal) {
      if (blpo_checkpoint_save(tr, cfg, dir, wall, err, sizeof(err)) != 0) {
        fprintf(stderr, "\nblpo-gpu: checkpoint at iteration %lld not written: %s\n",
                (long long)(it + 1), err);
        fault = strstr(err, "non-finite") != NULL;
        rc = 1;
        if (fault)
          break;
      } else {
        last_ckpt = it + 1;
      }
    }
    if (cfg->debug_nan_iteration > 0 && it + 1 == cfg->debug_nan_iteration)
      blpo_trainer_debug_poison_critic(tr);
    if (!o->quiet && ((tty && (t - last_print > 0.1 || last)) ||
                      (!tty && ((it + 1) % cfg->log_every == 0 || last)))) {
      print_progress(cfg, m, tty, (it + 1) * spi, total, sps, wall, last);
      last_print = t;
    }
    if (g_stop_signal) {
      stopped = g_stop_signal;
      break;
    }
  }
  restore_signals();
  double wall = wall0 + (now_s() - t0);
  int csv_err = ferror(csv);
  if (fclose(csv) != 0 || csv_err) {
    fprintf(stderr, "blpo-gpu: error writing %s\n", path);
    rc = 1;
  }
  if (fault) {
    if (last_ckpt >= 0)
      fprintf(stderr,
              "blpo-gpu: the last good checkpoint is %s (iteration %lld); metrics up to the "
              "fault are in %s\n",
              ckpt, (long long)last_ckpt, path);
    else
      fprintf(stderr, "blpo-gpu: no checkpoint was written before the fault\n");
    rc = 3;
  } else if (stopped) {
    fprintf(stderr,
            "\nblpo-gpu: interrupted at iteration %lld of %lld; checkpoint written to %s\n"
            "blpo-gpu: resume with: blpo-gpu --resume %s\n",
            (long long)last_ckpt, (long long)iters, ckpt, dir);
    rc = 128 + stopped;
  } else {
    float **recent = calloc((size_t)P, sizeof(float *));
    int *recent_n = calloc((size_t)P, sizeof(int));
    for (int p = 0; p < P; p++) {
      recent[p] = calloc(BLPO_RECENT_EPISODES, sizeof(float));
      recent_n[p] = blpo_trainer_recent_returns(tr, p, recent[p]);
    }
    summary_ctx sc = {cfg, be->name, m, recent, recent_n, total, wall};
    snprintf(path, sizeof(path), "%s/summary.json", dir);
    if (write_atomic(path, write_summary_cb, &sc) != 0) {
      fprintf(stderr, "blpo-gpu: cannot write %s\n", path);
      rc = 1;
    }
    if (!o->quiet) {
      fprintf(stderr, "blpo-gpu: done in %.1fs (%.0f env steps/s this process).", wall,
              now_s() > t0 ? (double)(iters - it0) * spi * P / (now_s() - t0) : 0.0);
      fprintf(stderr, " Mean return of the last 100 episodes:");
      for (int p = 0; p < P; p++)
        fprintf(stderr, " %.2f", m[p].recent_mean);
      fprintf(stderr, "\nblpo-gpu: outputs in %s (config.yaml, metrics.csv, summary.json, %s)\n",
              dir, BLPO_CHECKPOINT_FILE);
    }
    for (int p = 0; p < P; p++)
      free(recent[p]);
    free(recent);
    free(recent_n);
  }
  free(m);
  blpo_trainer_destroy(tr);
  return rc;
}
