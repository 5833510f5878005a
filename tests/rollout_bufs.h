/* The buffers of one rollout_fused call (backend.h) on host memory, for the
 * tests that run the op on two sides from the same inputs
 * (tests/test_rollout_fused.c: the CPU op against the separate ops;
 * tests/test_rollout_blocks.c: the kernel's block program, or the CUDA
 * kernel, against the CPU op): networks, random parameters, mid-episode env
 * states and their observations. */
#ifndef BLPO_TEST_ROLLOUT_BUFS_H
#define BLPO_TEST_ROLLOUT_BUFS_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blpo/backend.h"
#include "blpo/env.h"
#include "blpo/mlp.h"
#include "test_util.h"

typedef struct {
  blpo_dims d;
  blpo_mlp actor, critic;
  float *ap, *cp;                              /* (P, Na), (P, Nc) */
  blpo_env_state *st;                          /* (P, N) */
  float *obs;                                  /* (T+1, P, N, O) */
  float *act, *logp, *val, *rew, *done, *eret; /* (T, P, N, .) */
  float *fobs, *trunc;                         /* (P, N, O), (P, N) */
} rollout_bufs;

static void *rollout_xcalloc(size_t n, size_t sz) {
  void *p = calloc(n ? n : 1, sz);
  if (!p) {
    fprintf(stderr, "out of memory\n");
    exit(2);
  }
  return p;
}

/* Zeroed buffers for T steps of P x N envs of the task; actor and critic of
 * the given hidden widths. */
static void rollout_bufs_init(rollout_bufs *b, int env_id, int P, int N, int T, const int *ah,
                              int anh, const int *ch, int cnh, int act, uint64_t seed) {
  const blpo_env_info *info = blpo_env_get_info((blpo_env_id)env_id);
  memset(b, 0, sizeof(*b));
  blpo_dims *d = &b->d;
  d->P = P, d->N = N, d->T = T, d->env_id = env_id, d->seed = seed;
  d->obs_dim = info->obs_dim, d->act_dim = info->action_dim, d->discrete = info->discrete;
  d->num_actions = info->num_actions;
  d->head_dim = info->discrete ? info->num_actions : info->action_dim;
  blpo_mlp_init_shape(&b->actor, d->obs_dim, ah, anh, d->head_dim, act,
                      d->discrete ? 0 : d->act_dim);
  blpo_mlp_init_shape(&b->critic, d->obs_dim, ch, cnh, 1, act, 0);
  const size_t PN = (size_t)P * N;
  b->ap = rollout_xcalloc(P * b->actor.num_params, sizeof(float));
  b->cp = rollout_xcalloc(P * b->critic.num_params, sizeof(float));
  b->st = rollout_xcalloc(PN, sizeof(blpo_env_state));
  b->obs = rollout_xcalloc((T + 1) * PN * d->obs_dim, sizeof(float));
  b->act = rollout_xcalloc(T * PN * d->act_dim, sizeof(float));
  b->logp = rollout_xcalloc(T * PN, sizeof(float));
  b->val = rollout_xcalloc(T * PN, sizeof(float));
  b->rew = rollout_xcalloc(T * PN, sizeof(float));
  b->done = rollout_xcalloc(T * PN, sizeof(float));
  b->eret = rollout_xcalloc(T * PN, sizeof(float));
  b->fobs = rollout_xcalloc(PN * d->obs_dim, sizeof(float));
  b->trunc = rollout_xcalloc(PN, sizeof(float));
}

static void rollout_bufs_free(rollout_bufs *b) {
  void *ps[] = {b->ap,  b->cp,  b->st,   b->obs,  b->act,  b->logp,
                b->val, b->rew, b->done, b->eret, b->fobs, b->trunc};
  for (size_t k = 0; k < sizeof(ps) / sizeof(ps[0]); k++)
    free(ps[k]);
}

/* Random parameters, of a scale that keeps tanh out of saturation, and
 * mid-episode states: be's env_reset, then 3 to 3 + max_extra random steps
 * of its env_step. */
static void rollout_bufs_fill(blpo_backend *be, rollout_bufs *b, int max_extra) {
  blpo_dims d = b->d;
  const size_t PN = (size_t)d.P * d.N;
  for (size_t k = 0; k < d.P * b->actor.num_params; k++)
    b->ap[k] = (float)(0.4 * nrand());
  for (size_t k = 0; k < d.P * b->critic.num_params; k++)
    b->cp[k] = (float)(0.4 * nrand());
  be->env_reset(be, &d, b->st, b->obs);
  float *a = rollout_xcalloc(PN * d.act_dim, sizeof(float));
  float *r = rollout_xcalloc(PN, 4), *dn = rollout_xcalloc(PN, 4), *er = rollout_xcalloc(PN, 4);
  const int steps = 3 + (int)(urand() * max_extra);
  for (int s = 0; s < steps; s++) {
    for (size_t k = 0; k < PN * d.act_dim; k++)
      a[k] = d.discrete ? (float)(int)(urand() * d.num_actions) : (float)nrand();
    be->env_step(be, &d, b->st, a, b->obs, r, dn, er, NULL, NULL);
  }
  free(a);
  free(r);
  free(dn);
  free(er);
}

/* dst's inputs (parameters, env states, observations) made src's; both of
 * one shape. */
static void rollout_bufs_copy_inputs(rollout_bufs *dst, const rollout_bufs *src) {
  const blpo_dims *d = &src->d;
  const size_t PN = (size_t)d->P * d->N;
  memcpy(dst->ap, src->ap, d->P * src->actor.num_params * sizeof(float));
  memcpy(dst->cp, src->cp, d->P * src->critic.num_params * sizeof(float));
  memcpy(dst->st, src->st, PN * sizeof(blpo_env_state));
  memcpy(dst->obs, src->obs, (size_t)(d->T + 1) * PN * d->obs_dim * sizeof(float));
}

/* |a - b| / |b| over n floats (absolute where b is 0); NaN in the same
 * places is agreement, NaN against a number infinite. */
static double rollout_rel(const float *a, const float *b, size_t n) {
  double num = 0, den = 0;
  for (size_t k = 0; k < n; k++) {
    if (isnan(a[k]) != isnan(b[k]))
      return INFINITY;
    if (isnan(a[k]))
      continue;
    num += ((double)a[k] - b[k]) * ((double)a[k] - b[k]);
    den += (double)b[k] * b[k];
  }
  return den > 0 ? sqrt(num / den) : sqrt(num);
}

#endif
