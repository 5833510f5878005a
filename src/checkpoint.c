/* Checkpoint files: the trainer state (trainer_state.c) plus metadata that
 * lets resume refuse a file it cannot continue exactly, with a message that
 * says which class of problem it is. */
#define _POSIX_C_SOURCE 200809L
#include "blpo/checkpoint.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blpo/config_load.h"
#include "blpo_build_info.h"

static const char *algo_name(int a) {
  return a == BLPO_ALGO_PPO ? "ppo" : a == BLPO_ALGO_NESTED ? "nested" : "blpo";
}

/* FNV-1a 64 */
static uint64_t fnv_add(uint64_t h, const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    h ^= (unsigned char)s[i];
    h *= 1099511628211ull;
  }
  return h;
}

uint64_t blpo_config_hash(const blpo_config *c) {
  blpo_config k = *c, d;
  blpo_config_defaults(&d);
  /* keys a resume may change */
  k.total_steps = d.total_steps;
  memcpy(k.out_dir, d.out_dir, sizeof(k.out_dir));
  memcpy(k.name, d.name, sizeof(k.name));
  k.log_every = d.log_every;
  k.threads = d.threads;
  k.checkpoint_every = d.checkpoint_every;
  k.debug_nan_iteration = d.debug_nan_iteration;
  k.cuda_graph = d.cuda_graph;
  k.precision = d.precision;
  k.pdl = d.pdl;
  k.grid_sync = d.grid_sync;
  k.fused_rollout = d.fused_rollout;
  k.debug_emulate_replay = d.debug_emulate_replay;
  uint64_t h = 14695981039346656037ull; /* the FNV-1a 64 offset basis */
  for (int i = 0; i < blpo_config_num_keys; i++) {
    char *a = NULL, *b = NULL;
    size_t la = 0, lb = 0;
    FILE *fa = open_memstream(&a, &la), *fb = open_memstream(&b, &lb);
    int bad = !fa || !fb;
    if (fa)
      bad |= blpo_config_write_value(fa, &k, i) != 0;
    if (fb)
      bad |= blpo_config_write_value(fb, &d, i) != 0;
    if (fa)
      bad |= fclose(fa) != 0;
    if (fb)
      bad |= fclose(fb) != 0;
    if (bad || !a || !b) { /* out of memory: a hash no checkpoint has */
      free(a);
      free(b);
      return 0;
    }
    if (la != lb || memcmp(a, b, la) != 0) {
      const char *path = blpo_config_keys[i].path;
      h = fnv_add(h, path, strlen(path));
      h = fnv_add(h, "=", 1);
      h = fnv_add(h, a, la);
      h = fnv_add(h, "\n", 1);
    }
    free(a);
    free(b);
  }
  return h;
}

static void meta(blpo_st_meta *m, int *n, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void meta(blpo_st_meta *m, int *n, const char *key, const char *fmt, ...) {
  snprintf(m[*n].key, sizeof(m[*n].key), "%s", key);
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(m[*n].value, sizeof(m[*n].value), fmt, ap);
  va_end(ap);
  (*n)++;
}

int blpo_checkpoint_save(blpo_trainer *tr, const blpo_config *c, const char *run_dir,
                         double wall_time, char *err, size_t errlen) {
  blpo_state s;
  if (blpo_trainer_export_state(tr, &s) != 0) {
    blpo_state_free(&s);
    snprintf(err, errlen, "out of host memory preparing the checkpoint");
    return -1;
  }
  /* never overwrite the last good checkpoint with a blown-up network */
  for (int i = 0; i < s.n; i++) {
    const blpo_st_tensor *t = &s.t[i];
    if (t->dtype != BLPO_ST_F32 || strncmp(t->name, "env.", 4) == 0)
      continue;
    const float *v = t->data;
    for (size_t j = 0; j < t->nbytes / sizeof(float); j++)
      if (!isfinite(v[j])) {
        snprintf(err, errlen, "non-finite values in tensor '%s' (numerical fault)", t->name);
        blpo_state_free(&s);
        return -1;
      }
  }
  blpo_st_meta m[16];
  int nm = 0;
  int64_t it = blpo_trainer_iteration(tr);
  meta(m, &nm, "format", "%s", BLPO_CHECKPOINT_FORMAT);
  meta(m, &nm, "format_version", "%d", BLPO_CHECKPOINT_VERSION);
  meta(m, &nm, "config_hash", "%016" PRIx64, blpo_config_hash(c));
  meta(m, &nm, "algo", "%s", algo_name(c->algo));
  meta(m, &nm, "env_id", "%s", c->env_id);
  meta(m, &nm, "num_seeds", "%d", c->num_seeds);
  meta(m, &nm, "seed", "%lld", (long long)c->seed);
  meta(m, &nm, "activation", "%s", c->activation == BLPO_ACT_TANH ? "tanh" : "relu");
  meta(m, &nm, "iteration", "%lld", (long long)it);
  meta(m, &nm, "global_step", "%lld", (long long)(it * (int64_t)c->num_envs * c->num_steps));
  meta(m, &nm, "wall_time_s", "%.17g", wall_time);
  meta(m, &nm, "blpo_commit", "%s", BLPO_GIT_COMMIT);
  char path[BLPO_PATH_MAX + 64];
  snprintf(path, sizeof(path), "%s/%s", run_dir, BLPO_CHECKPOINT_FILE);
  int rc = blpo_st_write(path, s.t, s.n, m, nm, err, errlen);
  blpo_state_free(&s);
  return rc;
}

int blpo_checkpoint_load(blpo_trainer *tr, const blpo_config *c, const char *path,
                         double *wall_time, char *err, size_t errlen) {
  blpo_st_file f;
  char rerr[512];
  if (access(path, F_OK) != 0) {
    snprintf(err, errlen, "no checkpoint at %s (the run has not written one)", path);
    return -1;
  }
  if (blpo_st_read(path, &f, rerr, sizeof(rerr)) != 0) {
    snprintf(err, errlen, "%s: truncated or corrupt checkpoint: %s", path, rerr);
    return -1;
  }
  int rc = -1;
  const char *fmt = blpo_st_meta_get(&f, "format");
  const char *ver = blpo_st_meta_get(&f, "format_version");
  const char *hash = blpo_st_meta_get(&f, "config_hash");
  char want[32];
  snprintf(want, sizeof(want), "%016" PRIx64, blpo_config_hash(c));
  if (!fmt || strcmp(fmt, BLPO_CHECKPOINT_FORMAT) != 0) {
    snprintf(err, errlen, "%s: not a blpo-gpu checkpoint (metadata 'format' is %s)", path,
             fmt ? fmt : "missing");
  } else if (!ver || atoi(ver) != BLPO_CHECKPOINT_VERSION) {
    snprintf(err, errlen,
             "%s: incompatible checkpoint format version %s (this blpo-gpu reads version %d)", path,
             ver ? ver : "(missing)", BLPO_CHECKPOINT_VERSION);
  } else if (!hash || strcmp(hash, want) != 0) {
    /* say what differs where the metadata allows */
    const char *a = blpo_st_meta_get(&f, "algo"), *e = blpo_st_meta_get(&f, "env_id");
    const char *ns = blpo_st_meta_get(&f, "num_seeds");
    if (a && strcmp(a, algo_name(c->algo)))
      snprintf(err, errlen,
               "%s: checkpoint is from another config: algo.name is '%s' there, '%s' here", path, a,
               algo_name(c->algo));
    else if (e && strcmp(e, c->env_id))
      snprintf(err, errlen,
               "%s: checkpoint is from another config: env.id is '%s' there, '%s' here", path, e,
               c->env_id);
    else if (ns && atoi(ns) != c->num_seeds)
      snprintf(err, errlen,
               "%s: checkpoint is from another config: run.num_seeds is %s there, %d here", path,
               ns, c->num_seeds);
    else {
      /* another build may hash the same config differently: a key whose
       * default changed between the builds is written in config.yaml at the
       * old default, which is away from the new one (a key this build lacks
       * fails the config load instead; one it added sits at its default and
       * stays out of the hash) */
      const char *by = blpo_st_meta_get(&f, "blpo_commit");
      char builds[160] = "";
      if (!by || strcmp(by, BLPO_GIT_COMMIT) != 0)
        snprintf(builds, sizeof(builds),
                 ", or the checkpoint comes from another build of blpo-gpu (commit %s; this is %s) "
                 "whose defaults differ",
                 by ? by : "unknown, before 2026-12-06", BLPO_GIT_COMMIT);
      snprintf(err, errlen,
               "%s: checkpoint is from another config (config hash %s, this config %s): the "
               "run's config.yaml was changed after the checkpoint was written%s",
               path, hash ? hash : "missing", want, builds);
    }
  } else if (blpo_trainer_import_state(tr, &f, rerr, sizeof(rerr)) != 0) {
    snprintf(err, errlen, "%s: %s", path, rerr);
  } else {
    const char *w = blpo_st_meta_get(&f, "wall_time_s");
    *wall_time = w ? atof(w) : 0.0;
    rc = 0;
  }
  blpo_st_free(&f);
  return rc;
}
