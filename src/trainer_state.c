/* The trainer's complete state as named tensors, for checkpoints and exact
 * resume: parameters per layer (readable without this project), optimiser
 * moments and step counts, env states, normalisation statistics, the
 * current observations and the recent-episode buffers. Random streams are
 * counter-based and their counters derive from the iteration count and the
 * env reset counters saved here, so nothing else is needed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blpo/checkpoint.h"
#include "trainer_internal.h"

/* Appends a tensor with host data allocated here (freed by blpo_state_free). */
static blpo_st_tensor *add(blpo_state *s, const char *name, blpo_st_dtype dt, int ndim,
                           const int64_t *shape) {
  if (s->n == BLPO_STATE_MAX_TENSORS)
    return NULL;
  blpo_st_tensor *t = &s->t[s->n];
  memset(t, 0, sizeof(*t));
  snprintf(t->name, sizeof(t->name), "%s", name);
  t->dtype = dt;
  t->ndim = ndim;
  size_t count = 1;
  for (int i = 0; i < ndim; i++) {
    t->shape[i] = shape[i];
    count *= (size_t)shape[i];
  }
  size_t esz = (dt == BLPO_ST_I64 || dt == BLPO_ST_U64 || dt == BLPO_ST_F64) ? 8
               : dt == BLPO_ST_U8                                            ? 1
                                                                             : 4;
  t->nbytes = count * esz;
  t->data = calloc(1, t->nbytes ? t->nbytes : 1);
  if (!t->data)
    return NULL;
  s->n++;
  return t;
}

void blpo_state_free(blpo_state *s) {
  for (int i = 0; i < s->n; i++)
    free(s->t[i].data);
  s->n = 0;
}

static const blpo_st_tensor *need(const blpo_st_file *f, const char *name, blpo_st_dtype dt,
                                  int ndim, const int64_t *shape, char *err, size_t errlen) {
  const blpo_st_tensor *t = blpo_st_find(f, name);
  if (!t) {
    snprintf(err, errlen, "checkpoint has no tensor '%s'", name);
    return NULL;
  }
  int ok = t->dtype == dt && t->ndim == ndim;
  for (int i = 0; ok && i < ndim; i++)
    ok = t->shape[i] == shape[i];
  if (!ok) {
    char want[96] = "", got[96] = "";
    for (int i = 0; i < ndim; i++)
      snprintf(want + strlen(want), sizeof(want) - strlen(want), "%s%lld", i ? "," : "",
               (long long)shape[i]);
    for (int i = 0; i < t->ndim; i++)
      snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%lld", i ? "," : "",
               (long long)t->shape[i]);
    snprintf(err, errlen,
             "checkpoint tensor '%s' has shape [%s], this config needs [%s] (a checkpoint from "
             "another config: different network, env or population)",
             name, got, want);
    return NULL;
  }
  return t;
}

/* Network parameters as per-layer tensors: NAME.layers.L.weight (P, d_out,
 * d_in), NAME.layers.L.bias (P, d_out) and NAME.log_std (P, A). */
static int export_net(blpo_state *s, const char *net, const blpo_mlp *m, int P, const float *h) {
  char name[128];
  for (int l = 0; l < m->num_layers; l++) {
    int64_t ws[3] = {P, m->dims[l + 1], m->dims[l]}, bs[2] = {P, m->dims[l + 1]};
    snprintf(name, sizeof(name), "%s.layers.%d.weight", net, l);
    blpo_st_tensor *w = add(s, name, BLPO_ST_F32, 3, ws);
    snprintf(name, sizeof(name), "%s.layers.%d.bias", net, l);
    blpo_st_tensor *b = add(s, name, BLPO_ST_F32, 2, bs);
    if (!w || !b)
      return -1;
    size_t wn = (size_t)ws[1] * ws[2], bn = (size_t)bs[1];
    for (int p = 0; p < P; p++) {
      memcpy((float *)w->data + p * wn, h + p * m->num_params + m->w_off[l], wn * sizeof(float));
      memcpy((float *)b->data + p * bn, h + p * m->num_params + m->b_off[l], bn * sizeof(float));
    }
  }
  if (m->num_extra) {
    int64_t ls[2] = {P, (int64_t)m->num_extra};
    snprintf(name, sizeof(name), "%s.log_std", net);
    blpo_st_tensor *t = add(s, name, BLPO_ST_F32, 2, ls);
    if (!t)
      return -1;
    for (int p = 0; p < P; p++)
      memcpy((float *)t->data + p * m->num_extra, h + p * m->num_params + m->num_mlp_params,
             m->num_extra * sizeof(float));
  }
  return 0;
}

static int import_net(const blpo_st_file *f, const char *net, const blpo_mlp *m, int P, float *h,
                      char *err, size_t errlen) {
  char name[128];
  for (int l = 0; l < m->num_layers; l++) {
    int64_t ws[3] = {P, m->dims[l + 1], m->dims[l]}, bs[2] = {P, m->dims[l + 1]};
    snprintf(name, sizeof(name), "%s.layers.%d.weight", net, l);
    const blpo_st_tensor *w = need(f, name, BLPO_ST_F32, 3, ws, err, errlen);
    if (!w)
      return -1;
    snprintf(name, sizeof(name), "%s.layers.%d.bias", net, l);
    const blpo_st_tensor *b = need(f, name, BLPO_ST_F32, 2, bs, err, errlen);
    if (!b)
      return -1;
    size_t wn = (size_t)ws[1] * ws[2], bn = (size_t)bs[1];
    for (int p = 0; p < P; p++) {
      memcpy(h + p * m->num_params + m->w_off[l], (const float *)w->data + p * wn,
             wn * sizeof(float));
      memcpy(h + p * m->num_params + m->b_off[l], (const float *)b->data + p * bn,
             bn * sizeof(float));
    }
  }
  if (m->num_extra) {
    int64_t ls[2] = {P, (int64_t)m->num_extra};
    snprintf(name, sizeof(name), "%s.log_std", net);
    const blpo_st_tensor *t = need(f, name, BLPO_ST_F32, 2, ls, err, errlen);
    if (!t)
      return -1;
    for (int p = 0; p < P; p++)
      memcpy(h + p * m->num_params + m->num_mlp_params, (const float *)t->data + p * m->num_extra,
             m->num_extra * sizeof(float));
  }
  return 0;
}

/* A backend buffer of `count` floats as one tensor, downloaded. */
static int export_buf(blpo_state *s, blpo_trainer *tr, const char *name, const float *buf, int ndim,
                      const int64_t *shape) {
  blpo_st_tensor *t = add(s, name, BLPO_ST_F32, ndim, shape);
  if (!t)
    return -1;
  tr->be->download(tr->be, t->data, buf, t->nbytes);
  return 0;
}

static int import_buf(const blpo_st_file *f, blpo_trainer *tr, const char *name, float *buf,
                      int ndim, const int64_t *shape, char *err, size_t errlen) {
  const blpo_st_tensor *t = need(f, name, BLPO_ST_F32, ndim, shape, err, errlen);
  if (!t)
    return -1;
  tr->be->upload(tr->be, buf, t->data, t->nbytes);
  return 0;
}

/* trainer.counters: the iteration, then the optimiser steps and Nystrom
 * draws taken before it (PPO's Adam; the nested critic's; the BLPO actor's;
 * the sketch draws). They follow from the iteration (the schedule derives
 * every step from it); they are stored so that a checkpoint says what state
 * it is in, and a resume checks them. */
static void step_counters(const blpo_trainer *tr, int64_t iter, int64_t *c) {
  const blpo_config *cfg = &tr->cfg;
  int ppo = cfg->algo == BLPO_ALGO_PPO;
  c[0] = iter;
  c[1] = ppo ? blpo_steps_before(tr, iter, 1) : 0;
  c[2] = ppo ? 0 : blpo_steps_before(tr, iter, cfg->nested_updates);
  c[3] = ppo ? 0 : blpo_steps_before(tr, iter, 1);
  c[4] = cfg->algo == BLPO_ALGO_BLPO && cfg->hg_method == BLPO_HG_NYSTROM
             ? blpo_steps_before(tr, iter, 1)
             : 0;
}

int blpo_trainer_export_state(blpo_trainer *tr, blpo_state *s) {
  blpo_backend *be = tr->be;
  const blpo_dims *d = &tr->d;
  int P = d->P, N = d->N, O = d->obs_dim;
  size_t Na = tr->actor.num_params, Nc = tr->critic.num_params;
  memset(s, 0, sizeof(*s));
  float *ha = malloc(sizeof(float) * P * Na), *hc = malloc(sizeof(float) * P * Nc);
  int rc = (ha && hc) ? 0 : -1;
  if (!rc) {
    be->download(be, ha, tr->actor_params, sizeof(float) * P * Na);
    be->download(be, hc, tr->critic_params, sizeof(float) * P * Nc);
    rc |= export_net(s, "actor", &tr->actor, P, ha);
    rc |= export_net(s, "critic", &tr->critic, P, hc);
  }
  free(ha);
  free(hc);
  int64_t sa[2] = {P, (int64_t)Na}, sc[2] = {P, (int64_t)Nc};
  rc |= export_buf(s, tr, "optim.actor.m", tr->actor_m, 2, sa);
  rc |= export_buf(s, tr, "optim.actor.v", tr->actor_v, 2, sa);
  rc |= export_buf(s, tr, "optim.critic.m", tr->critic_m, 2, sc);
  rc |= export_buf(s, tr, "optim.critic.v", tr->critic_v, 2, sc);
  int64_t so[3] = {P, N, O}, sn[2] = {P, N}, sos[2] = {P, 2 * O + 1}, srs[2] = {P, 3};
  rc |= export_buf(s, tr, "env.obs", tr->roll_obs, 3, so);
  rc |= export_buf(s, tr, "norm.obs_stats", tr->obs_stats, 2, sos);
  rc |= export_buf(s, tr, "norm.reward_stats", tr->rew_stats, 2, srs);
  rc |= export_buf(s, tr, "norm.return_acc", tr->ret_acc, 2, sn);
  /* env states: one tensor per field */
  blpo_env_state *hs = malloc(sizeof(blpo_env_state) * P * N);
  int64_t ss[3] = {P, N, BLPO_ENV_MAX_STATE};
  blpo_st_tensor *ts = add(s, "env.state", BLPO_ST_F32, 3, ss);
  blpo_st_tensor *tt = add(s, "env.step", BLPO_ST_I32, 2, sn);
  blpo_st_tensor *tre = add(s, "env.resets", BLPO_ST_U32, 2, sn);
  blpo_st_tensor *ter = add(s, "env.episode_return", BLPO_ST_F32, 2, sn);
  blpo_st_tensor *tel = add(s, "env.episode_length", BLPO_ST_I32, 2, sn);
  if (!hs || !ts || !tt || !tre || !ter || !tel) {
    free(hs);
    return -1;
  }
  be->download(be, hs, tr->env_states, sizeof(blpo_env_state) * P * N);
  for (size_t e = 0; e < (size_t)P * N; e++) {
    memcpy((float *)ts->data + e * BLPO_ENV_MAX_STATE, hs[e].s, sizeof(hs[e].s));
    ((int32_t *)tt->data)[e] = hs[e].t;
    ((uint32_t *)tre->data)[e] = hs[e].resets;
    ((float *)ter->data)[e] = hs[e].ep_ret;
    ((int32_t *)tel->data)[e] = hs[e].ep_len;
  }
  free(hs);
  int64_t sr[2] = {P, BLPO_RECENT_EPISODES}, sp[1] = {P}, sk[1] = {5};
  blpo_st_tensor *rr = add(s, "metrics.recent_returns", BLPO_ST_F32, 2, sr);
  blpo_st_tensor *rn = add(s, "metrics.recent_count", BLPO_ST_I32, 1, sp);
  blpo_st_tensor *rh = add(s, "metrics.recent_head", BLPO_ST_I32, 1, sp);
  blpo_st_tensor *cn = add(s, "trainer.counters", BLPO_ST_I64, 1, sk);
  if (!rr || !rn || !rh || !cn)
    return -1;
  memcpy(rr->data, tr->recent, rr->nbytes);
  memcpy(rn->data, tr->recent_n, rn->nbytes);
  memcpy(rh->data, tr->recent_head, rh->nbytes);
  step_counters(tr, tr->iter, cn->data);
  return rc ? -1 : 0;
}

int blpo_trainer_import_state(blpo_trainer *tr, const blpo_st_file *f, char *err, size_t errlen) {
  blpo_backend *be = tr->be;
  const blpo_dims *d = &tr->d;
  int P = d->P, N = d->N, O = d->obs_dim;
  size_t Na = tr->actor.num_params, Nc = tr->critic.num_params;
  float *ha = calloc((size_t)P * Na, sizeof(float)), *hc = calloc((size_t)P * Nc, sizeof(float));
  blpo_env_state *hs = calloc((size_t)P * N, sizeof(blpo_env_state));
  int rc = (ha && hc && hs) ? 0 : -1;
  if (rc)
    snprintf(err, errlen, "out of host memory reading the checkpoint");
  if (!rc)
    rc = import_net(f, "actor", &tr->actor, P, ha, err, errlen);
  if (!rc)
    rc = import_net(f, "critic", &tr->critic, P, hc, err, errlen);
  int64_t sa[2] = {P, (int64_t)Na}, sc[2] = {P, (int64_t)Nc};
  int64_t so[3] = {P, N, O}, sn[2] = {P, N}, sos[2] = {P, 2 * O + 1}, srs[2] = {P, 3};
  int64_t ss[3] = {P, N, BLPO_ENV_MAX_STATE};
  int64_t sr[2] = {P, BLPO_RECENT_EPISODES}, sp[1] = {P}, sk[1] = {5};
  const blpo_st_tensor *ts = NULL, *tt = NULL, *tre = NULL, *ter = NULL, *tel = NULL;
  const blpo_st_tensor *rr = NULL, *rn = NULL, *rh = NULL, *cn = NULL;
  /* validate everything before touching the trainer */
  if (!rc && (!(ts = need(f, "env.state", BLPO_ST_F32, 3, ss, err, errlen)) ||
              !(tt = need(f, "env.step", BLPO_ST_I32, 2, sn, err, errlen)) ||
              !(tre = need(f, "env.resets", BLPO_ST_U32, 2, sn, err, errlen)) ||
              !(ter = need(f, "env.episode_return", BLPO_ST_F32, 2, sn, err, errlen)) ||
              !(tel = need(f, "env.episode_length", BLPO_ST_I32, 2, sn, err, errlen)) ||
              !(rr = need(f, "metrics.recent_returns", BLPO_ST_F32, 2, sr, err, errlen)) ||
              !(rn = need(f, "metrics.recent_count", BLPO_ST_I32, 1, sp, err, errlen)) ||
              !(rh = need(f, "metrics.recent_head", BLPO_ST_I32, 1, sp, err, errlen)) ||
              !(cn = need(f, "trainer.counters", BLPO_ST_I64, 1, sk, err, errlen)) ||
              !need(f, "optim.actor.m", BLPO_ST_F32, 2, sa, err, errlen) ||
              !need(f, "optim.actor.v", BLPO_ST_F32, 2, sa, err, errlen) ||
              !need(f, "optim.critic.m", BLPO_ST_F32, 2, sc, err, errlen) ||
              !need(f, "optim.critic.v", BLPO_ST_F32, 2, sc, err, errlen) ||
              !need(f, "env.obs", BLPO_ST_F32, 3, so, err, errlen) ||
              !need(f, "norm.obs_stats", BLPO_ST_F32, 2, sos, err, errlen) ||
              !need(f, "norm.reward_stats", BLPO_ST_F32, 2, srs, err, errlen) ||
              !need(f, "norm.return_acc", BLPO_ST_F32, 2, sn, err, errlen)))
    rc = -1;
  if (!rc) {
    const int64_t *c = cn->data;
    const int32_t *cnt = rn->data, *head = rh->data;
    for (int p = 0; p < P && !rc; p++)
      if (cnt[p] < 0 || cnt[p] > BLPO_RECENT_EPISODES || head[p] < 0 ||
          head[p] >= BLPO_RECENT_EPISODES) {
        snprintf(err, errlen, "checkpoint is corrupt: recent-episode buffer of agent %d", p);
        rc = -1;
      }
    if (!rc && (c[0] < 0 || c[0] > tr->num_iters)) {
      snprintf(err, errlen, "checkpoint is corrupt: iteration %lld outside [0, %lld]",
               (long long)c[0], (long long)tr->num_iters);
      rc = -1;
    }
    int64_t want[5];
    if (!rc)
      step_counters(tr, c[0], want);
    for (int k = 1; k < 5 && !rc; k++)
      if (c[k] != want[k]) {
        snprintf(err, errlen,
                 "checkpoint is corrupt: step counter %d is %lld, iteration %lld implies %lld", k,
                 (long long)c[k], (long long)c[0], (long long)want[k]);
        rc = -1;
      }
  }
  if (!rc) {
    be->upload(be, tr->actor_params, ha, sizeof(float) * P * Na);
    be->upload(be, tr->critic_params, hc, sizeof(float) * P * Nc);
    import_buf(f, tr, "optim.actor.m", tr->actor_m, 2, sa, err, errlen);
    import_buf(f, tr, "optim.actor.v", tr->actor_v, 2, sa, err, errlen);
    import_buf(f, tr, "optim.critic.m", tr->critic_m, 2, sc, err, errlen);
    import_buf(f, tr, "optim.critic.v", tr->critic_v, 2, sc, err, errlen);
    import_buf(f, tr, "env.obs", tr->roll_obs, 3, so, err, errlen);
    import_buf(f, tr, "norm.obs_stats", tr->obs_stats, 2, sos, err, errlen);
    import_buf(f, tr, "norm.reward_stats", tr->rew_stats, 2, srs, err, errlen);
    import_buf(f, tr, "norm.return_acc", tr->ret_acc, 2, sn, err, errlen);
    for (size_t e = 0; e < (size_t)P * N; e++) {
      memcpy(hs[e].s, (const float *)ts->data + e * BLPO_ENV_MAX_STATE, sizeof(hs[e].s));
      hs[e].t = ((const int32_t *)tt->data)[e];
      hs[e].resets = ((const uint32_t *)tre->data)[e];
      hs[e].ep_ret = ((const float *)ter->data)[e];
      hs[e].ep_len = ((const int32_t *)tel->data)[e];
    }
    be->upload(be, tr->env_states, hs, sizeof(blpo_env_state) * P * N);
    memcpy(tr->recent, rr->data, rr->nbytes);
    memcpy(tr->recent_n, rn->data, rn->nbytes);
    memcpy(tr->recent_head, rh->data, rh->nbytes);
    tr->iter = ((const int64_t *)cn->data)[0];
  }
  free(ha);
  free(hc);
  free(hs);
  return rc;
}

int64_t blpo_trainer_iteration(const blpo_trainer *tr) { return tr->iter; }

void blpo_trainer_debug_poison_critic(blpo_trainer *tr) {
  tr->be->fill(tr->be, tr->critic_params, NAN, tr->critic.num_params * (size_t)tr->d.P);
}
