/* Drives a training run and writes what a user keeps: the run directory with
 * the effective config, a metrics CSV flushed every iteration, and a summary
 * written atomically (temporary file + rename) at the end. */
#define _POSIX_C_SOURCE 200809L
#include "blpo/run.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "blpo/config_load.h"
#include "blpo/trainer.h"

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
  fprintf(f, "{\n  \"env\": \"%s\",\n  \"algo\": \"%s\",\n  \"backend\": \"%s\",\n", s->cfg->env_id,
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

int blpo_run(const blpo_config *cfg, const blpo_run_opts *o, blpo_backend *be) {
  char dir[BLPO_PATH_MAX], path[BLPO_PATH_MAX + 64];
  int rc = choose_run_dir(cfg, o, dir, sizeof(dir));
  if (rc)
    return rc;
  char err[512];
  blpo_trainer *tr = blpo_trainer_create(cfg, be, err, sizeof(err));
  if (!tr) {
    fprintf(stderr, "blpo-gpu: %s\n", err);
    return 1;
  }
  if (blpo_mkdirs(dir) != 0) {
    fprintf(stderr, "blpo-gpu: cannot create run directory %s: %s\n", dir, strerror(errno));
    blpo_trainer_destroy(tr);
    return 2;
  }
  snprintf(path, sizeof(path), "%s/config.yaml", dir);
  if (write_atomic(path, write_config_cb, cfg) != 0) {
    fprintf(stderr, "blpo-gpu: cannot write %s: %s\n", path, strerror(errno));
    blpo_trainer_destroy(tr);
    return 1;
  }
  snprintf(path, sizeof(path), "%s/metrics.csv", dir);
  FILE *csv = fopen(path, "w");
  if (!csv) {
    fprintf(stderr, "blpo-gpu: cannot write %s: %s\n", path, strerror(errno));
    blpo_trainer_destroy(tr);
    return 1;
  }
  fprintf(csv, "agent,seed,iteration,global_step,episodes,return_mean,return_min,return_max,"
               "return_mean_last100,pg_loss,v_loss,entropy,approx_kl,clipfrac,actor_grad_norm,"
               "critic_grad_norm,actor_lr,critic_lr,sps,wall_time_s\n");

  int P = cfg->num_seeds;
  int64_t iters = blpo_trainer_num_iterations(tr);
  int64_t spi = blpo_trainer_steps_per_iteration(tr);
  int64_t total = iters * spi;
  blpo_iter_metrics *m = calloc((size_t)P, sizeof(*m));
  int tty = isatty(fileno(stderr)) && !o->quiet;
  if (!o->quiet)
    fprintf(stderr, "blpo-gpu: %s, %s on %s, %d agent(s) x %d envs x %d steps, %lld iterations -> %s\n",
            cfg->env_id,
            cfg->algo == BLPO_ALGO_PPO ? "ppo" : cfg->algo == BLPO_ALGO_NESTED ? "nested" : "blpo",
            be->name, P, cfg->num_envs, cfg->num_steps, (long long)iters, dir);
  double t0 = now_s(), last_print = t0;
  for (int64_t it = 0; it < iters; it++) {
    blpo_trainer_iterate(tr, m);
    double t = now_s(), wall = t - t0;
    double sps = wall > 0 ? (double)(it + 1) * spi * P / wall : 0.0;
    for (int p = 0; p < P; p++) {
      const blpo_iter_metrics *x = &m[p];
      fprintf(csv,
              "%d,%lld,%lld,%lld,%d,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,"
              "%.6g,%.1f,%.3f\n",
              p, (long long)(cfg->seed + p), (long long)x->iteration, (long long)x->global_step,
              x->episodes, x->ret_mean, x->ret_min, x->ret_max, x->recent_mean, x->pg_loss,
              x->v_loss, x->entropy, x->approx_kl, x->clipfrac, x->actor_gnorm, x->critic_gnorm,
              x->actor_lr, x->critic_lr, sps, wall);
    }
    fflush(csv);
    if (!o->quiet) {
      double rsum = 0;
      int rc2 = 0;
      for (int p = 0; p < P; p++)
        if (isfinite(m[p].recent_mean)) {
          rsum += m[p].recent_mean;
          rc2++;
        }
      char eta[32], el[32];
      double remain = sps > 0 ? (double)(total - (it + 1) * spi) * P / sps : NAN;
      fmt_duration(remain, eta, sizeof(eta));
      fmt_duration(wall, el, sizeof(el));
      int last = it + 1 == iters;
      if (tty && (t - last_print > 0.1 || last)) {
        fprintf(stderr, "\r  step %lld/%lld  %.0f SPS  return(last100) %8.2f  elapsed %s  ETA %s  ",
                (long long)((it + 1) * spi), (long long)total, sps, rc2 ? rsum / rc2 : NAN, el,
                eta);
        if (last)
          fputc('\n', stderr);
        last_print = t;
      } else if (!tty && ((it + 1) % cfg->log_every == 0 || last)) {
        fprintf(stderr, "  step %lld/%lld  %.0f SPS  return(last100) %.2f  elapsed %s  ETA %s\n",
                (long long)((it + 1) * spi), (long long)total, sps, rc2 ? rsum / rc2 : NAN, el,
                eta);
      }
    }
  }
  double wall = now_s() - t0;
  int csv_err = ferror(csv);
  if (fclose(csv) != 0 || csv_err) {
    fprintf(stderr, "blpo-gpu: error writing %s/metrics.csv\n", dir);
    rc = 1;
  }

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
    fprintf(stderr, "blpo-gpu: done in %.1fs (%.0f env steps/s).", wall,
            wall > 0 ? (double)total * P / wall : 0.0);
    fprintf(stderr, " Mean return of the last 100 episodes:");
    for (int p = 0; p < P; p++)
      fprintf(stderr, " %.2f", m[p].recent_mean);
    fprintf(stderr, "\nblpo-gpu: outputs in %s (config.yaml, metrics.csv, summary.json)\n", dir);
  }
  for (int p = 0; p < P; p++)
    free(recent[p]);
  free(recent);
  free(recent_n);
  free(m);
  blpo_trainer_destroy(tr);
  return rc;
}
