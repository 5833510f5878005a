/* One training iteration: rollout, targets, and the PPO update, written
 * against the backend seam (include/blpo/backend.h). All buffers are
 * allocated in blpo_trainer_create; the only host read per iteration is the
 * metrics download at its end. */
#define _POSIX_C_SOURCE 200809L
#include "blpo/trainer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blpo/fused_rollout.h"
#include "blpo/ppo_minibatch.h"
#include "blpo/rng.h"
#include "trainer_internal.h"
#ifdef BLPO_WITH_CUDA
#include <nvtx3/nvToolsExt.h> /* header-only NVTX v3: phase ranges for Nsight */
#endif

/* struct blpo_trainer: src/trainer_internal.h */

const char *const blpo_phase_names[BLPO_PHASE_COUNT] = {
    "rollout",  "targets",    "ppo_update", "gather",     "nested_critic", "actor_loss",
    "hvp_rows", "core_solve", "mixed_term", "actor_step", "metrics"};

/* Charges the time between the ring's stamps to their phases (waiting for
 * the last one) and keeps only the last stamp. */
static void timer_flush(blpo_trainer *tr) {
  blpo_backend *be = tr->be;
  for (int j = 0; j + 1 < tr->tm_count; j++) {
    int a = (tr->tm_first + j) % BLPO_TIMER_SLOTS, b = (a + 1) % BLPO_TIMER_SLOTS;
    if (tr->tm_phase[a] >= 0)
      tr->phase_s[tr->tm_phase[a]] += be->timer_seconds(be, a, b);
  }
  if (tr->tm_count > 0) {
    tr->tm_first = (tr->tm_first + tr->tm_count - 1) % BLPO_TIMER_SLOTS;
    tr->tm_count = 1;
  }
}

/* A stamp that starts phase `phase` (-1: none) in the timer ring. */
static void timer_stamp(blpo_trainer *tr, int phase) {
  if (tr->tm_count == BLPO_TIMER_SLOTS)
    timer_flush(tr);
  int slot = (tr->tm_first + tr->tm_count) % BLPO_TIMER_SLOTS;
  tr->be->timer_mark(tr->be, slot);
  tr->tm_phase[slot] = phase;
  tr->tm_count++;
}

/* Closes the phase in progress: its NVTX range (its time is charged at
 * blpo_phase_done, from the stamps). */
static void phase_close(blpo_trainer *tr) {
  if (tr->phase_cur < 0)
    return;
#ifdef BLPO_WITH_CUDA
  nvtxRangePop();
#endif
  tr->phase_cur = -1;
}

void blpo_phase_mark(blpo_trainer *tr, int phase) {
  phase_close(tr);
  if (tr->profile)
    timer_stamp(tr, phase);
#ifdef BLPO_WITH_CUDA
  nvtxRangePushA(blpo_phase_names[phase]);
#endif
  tr->phase_cur = phase;
}

void blpo_phase_done(blpo_trainer *tr) {
  int open = tr->phase_cur >= 0;
  phase_close(tr);
  if (tr->profile && open) {
    timer_stamp(tr, -1);
    timer_flush(tr);
  }
}

void blpo_trainer_set_profile(blpo_trainer *tr, int on) { tr->profile = on; }

void blpo_trainer_phase_seconds(const blpo_trainer *tr, double *out) {
  for (int i = 0; i < BLPO_PHASE_COUNT; i++)
    out[i] = tr->phase_s[i];
}

/* blpo_episode_ring_add rebuilds the ring from a summary's tail */
_Static_assert(BLPO_RECENT_EPISODES <= BLPO_EPISODE_TAIL,
               "the episode summaries keep fewer returns than the ring of recent episodes");

/* The metrics block: stats (P, BLPO_STAT_COUNT) floats, then, 16-byte
 * aligned, the episode summaries (P). */
static size_t metrics_block_stats_bytes(int P) {
  return ((size_t)P * BLPO_STAT_COUNT * sizeof(float) + 15) / 16 * 16;
}
static size_t metrics_block_bytes(int P) {
  return metrics_block_stats_bytes(P) + (size_t)P * sizeof(blpo_episode_summary);
}
static blpo_episode_summary *metrics_block_summaries(float *stats, int P) {
  return (blpo_episode_summary *)(void *)((char *)stats + metrics_block_stats_bytes(P));
}

static void *be_alloc(blpo_trainer *tr, size_t bytes, int *fail) {
  void *p = tr->be->alloc(tr->be, bytes);
  if (!p)
    *fail = 1;
  return p;
}

/* max |a - b| relative to max |b| over n host floats (NaN where either is). */
static double max_rel_diff(const float *a, const float *b, size_t n) {
  double num = 0, den = 0;
  for (size_t k = 0; k < n; k++) {
    if (isnan(a[k]) || isnan(b[k]))
      return INFINITY;
    num = fmax(num, fabs((double)a[k] - b[k]));
    den = fmax(den, fabs((double)b[k]));
  }
  return den > 0 ? num / den : num;
}

/* Before a run uses the fused rollout step on its own choice (auto), one
 * step of it from the fresh episodes, on copies, against the separate ops:
 * values and log-probs within 1e-4, the same actions (up to one in a
 * thousand: near-ties may round either way), else the run keeps the
 * separate ops. A guard against a device on which the kernel was never
 * checked; the tests (test_gpu_ops) are the proof. 1 if it agrees (or the
 * check could not be set up), 0 with the reason in why. */
static int fused_self_check(blpo_trainer *tr, char *why, size_t why_len) {
  blpo_backend *be = tr->be;
  blpo_dims d = tr->d;
  d.T = 1;
  size_t PN = (size_t)d.P * d.N, O = (size_t)d.obs_dim, A = (size_t)d.act_dim;
  size_t sb = PN * sizeof(blpo_env_state), F = sizeof(float);
  /* two sets: [states | obs (2,P,N,O) | act | logp | val | rew | done | eret] */
  size_t per = PN * (2 * O + A + 5);
  blpo_env_state *st[2] = {be->alloc(be, sb), be->alloc(be, sb)};
  float *buf[2] = {be->alloc(be, per * F), be->alloc(be, per * F)};
  float *h[2] = {malloc(per * F), malloc(per * F)};
  int ok = 1;
  if (st[0] && st[1] && buf[0] && buf[1] && h[0] && h[1]) {
    float *o[2], *a[2], *lp[2], *v[2], *r[2], *dn[2], *er[2];
    for (int k = 0; k < 2; k++) {
      be->copy_blocks(be, 1, sb / F, (float *)st[k], 0, (const float *)tr->env_states, 0);
      o[k] = buf[k];
      be->copy_blocks(be, 1, PN * O, o[k], 0, tr->roll_obs, 0);
      a[k] = o[k] + 2 * PN * O;
      lp[k] = a[k] + PN * A;
      v[k] = lp[k] + PN;
      r[k] = v[k] + PN;
      dn[k] = r[k] + PN;
      er[k] = dn[k] + PN;
    }
    blpo_counter c0 = {NULL, 0, 0};
    be->rollout_fused(be, &d, &tr->actor, tr->actor_params, &tr->critic, tr->critic_params, 0, 1,
                      c0, st[0], o[0], a[0], lp[0], v[0], r[0], dn[0], er[0], NULL, NULL);
    size_t a_stride = (size_t)d.N * tr->actor.act_floats_per_row;
    size_t c_stride = (size_t)d.N * tr->critic.act_floats_per_row;
    be->mlp_forward(be, &tr->actor, d.P, tr->actor_params, o[1], d.N, tr->actor_acts);
    be->mlp_forward(be, &tr->critic, d.P, tr->critic_params, o[1], d.N, tr->critic_acts);
    be->copy_blocks(be, d.P, d.N, v[1], d.N, blpo_head_of(&tr->critic, tr->critic_acts, d.N),
                    c_stride);
    be->policy_sample(be, &d, &tr->actor, tr->actor_params,
                      blpo_head_of(&tr->actor, tr->actor_acts, d.N), a_stride, c0, a[1], lp[1]);
    be->env_step(be, &d, st[1], a[1], o[1] + PN * O, r[1], dn[1], er[1], NULL, NULL);
    be->download(be, h[0], buf[0], per * F);
    be->download(be, h[1], buf[1], per * F);
    size_t ia = 2 * PN * O, ilp = ia + PN * A, iv = ilp + PN;
    double ev = max_rel_diff(h[0] + iv, h[1] + iv, PN);
    double el = max_rel_diff(h[0] + ilp, h[1] + ilp, PN);
    size_t differ = 0;
    for (size_t k = 0; k < PN * A; k++)
      differ += d.discrete ? h[0][ia + k] != h[1][ia + k]
                           : fabs(h[0][ia + k] - h[1][ia + k]) > 1e-4 * (1 + fabs(h[1][ia + k]));
    if (ev > 1e-4 || el > 1e-4 || differ > PN / 1000) {
      snprintf(why, why_len, "value error %.2g, log-prob error %.2g, %zu of %zu actions differ", ev,
               el, differ, PN * A);
      ok = 0;
    }
  }
  for (int k = 0; k < 2; k++) {
    if (st[k])
      be->release(be, st[k]);
    if (buf[k])
      be->release(be, buf[k]);
    free(h[k]);
  }
  return ok;
}

blpo_trainer *blpo_trainer_create(const blpo_config *cfg, blpo_backend *be, char *err,
                                  size_t errlen) {
  blpo_trainer *tr = calloc(1, sizeof(*tr));
  if (!tr) {
    snprintf(err, errlen, "out of host memory");
    return NULL;
  }
  tr->cfg = *cfg;
  tr->be = be;
  tr->phase_cur = -1;
  tr->graph_on = cfg->cuda_graph;
  int env_id = blpo_env_from_name(cfg->env_id);
  const blpo_env_info *info = blpo_env_get_info((blpo_env_id)env_id);
  blpo_dims *d = &tr->d;
  d->P = cfg->num_seeds;
  d->N = cfg->num_envs;
  d->T = cfg->num_steps;
  d->env_id = env_id;
  d->obs_dim = info->obs_dim;
  d->act_dim = info->action_dim;
  d->discrete = info->discrete;
  d->num_actions = info->num_actions;
  d->head_dim = info->discrete ? info->num_actions : info->action_dim;
  d->seed = (uint64_t)cfg->seed;
  tr->normalize_obs = cfg->normalize_obs == BLPO_TRI_AUTO ? !info->discrete : cfg->normalize_obs;
  tr->normalize_reward =
      cfg->normalize_reward == BLPO_TRI_AUTO ? !info->discrete : cfg->normalize_reward;
  tr->num_iters = cfg->total_steps / ((int64_t)d->N * d->T);

  blpo_mlp_init_shape(&tr->actor, d->obs_dim, cfg->actor_hidden, cfg->actor_num_hidden, d->head_dim,
                      cfg->activation, d->discrete ? 0 : d->act_dim);
  blpo_mlp_init_shape(&tr->critic, d->obs_dim, cfg->critic_hidden, cfg->critic_num_hidden, 1,
                      cfg->activation, 0);
  int fused_ok = be->rollout_fused_supported && be->rollout_fused
                     ? be->rollout_fused_supported(be, &tr->actor, &tr->critic)
                     : 0;
  tr->fused = cfg->fused_rollout == BLPO_TRI_ON     ? fused_ok >= 1
              : cfg->fused_rollout == BLPO_TRI_AUTO ? fused_ok == 2
                                                    : 0;
  if (cfg->fused_rollout == BLPO_TRI_ON && !fused_ok)
    fprintf(stderr,
            "blpo-gpu: run.fused_rollout: the %s backend cannot run these networks as one "
            "kernel (layer widths <= %d whose weights fit its shared memory); using the "
            "separate ops\n",
            be->name, BLPO_FUSED_MAX_WIDTH);

  int P = d->P, N = d->N, T = d->T, O = d->obs_dim, A = d->act_dim, Y = d->head_dim;
  size_t Na = tr->actor.num_params, Nc = tr->critic.num_params;
  size_t PN = (size_t)P * N, TPN = (size_t)T * PN;
  tr->mb_rows = (int)((int64_t)T * N / cfg->num_minibatches);
  tr->ws_rows = tr->mb_rows > N ? tr->mb_rows : N;
  /* PPO only; the fused op's workspace (CUDA) is sized here, 0 bytes where
   * it cannot hold these networks */
  size_t mb_work = 0;
  tr->fused_update =
      cfg->algo == BLPO_ALGO_PPO && cfg->fused_update != BLPO_TRI_OFF && be->ppo_minibatch;
  if (tr->fused_update && be->ppo_minibatch_work) {
    mb_work =
        be->ppo_minibatch_work(be, d, &tr->actor, &tr->critic, tr->mb_rows, cfg->num_minibatches);
    tr->fused_update = mb_work > 0;
  }
  if (cfg->algo == BLPO_ALGO_PPO && cfg->fused_update == BLPO_TRI_ON && !tr->fused_update)
    fprintf(stderr, "blpo-gpu: run.fused_update: the %s backend %s; using the separate ops\n",
            be->name,
            be->ppo_minibatch ? "cannot run these networks as one minibatch op"
                              : "has no fused minibatch update");
  int maxw =
      tr->actor.max_width > tr->critic.max_width ? tr->actor.max_width : tr->critic.max_width;
  int f = 0;
  const size_t F = sizeof(float);
  tr->actor_params = be_alloc(tr, P * Na * F, &f);
  tr->actor_grad = be_alloc(tr, P * Na * F, &f);
  tr->actor_m = be_alloc(tr, P * Na * F, &f);
  tr->actor_v = be_alloc(tr, P * Na * F, &f);
  tr->critic_params = be_alloc(tr, P * Nc * F, &f);
  tr->critic_grad = be_alloc(tr, P * Nc * F, &f);
  tr->critic_m = be_alloc(tr, P * Nc * F, &f);
  tr->critic_v = be_alloc(tr, P * Nc * F, &f);
  tr->env_states = be_alloc(tr, PN * sizeof(blpo_env_state), &f);
  tr->obs_stats = be_alloc(tr, (size_t)P * (2 * O + 1) * F, &f);
  tr->rew_stats = be_alloc(tr, (size_t)P * 3 * F, &f);
  tr->ret_acc = be_alloc(tr, PN * F, &f);
  tr->roll_obs = be_alloc(tr, (TPN + PN) * O * F, &f);
  tr->roll_act = be_alloc(tr, TPN * A * F, &f);
  tr->roll_logp = be_alloc(tr, TPN * F, &f);
  tr->roll_val = be_alloc(tr, TPN * F, &f);
  tr->roll_rew = be_alloc(tr, TPN * F, &f);
  tr->roll_done = be_alloc(tr, TPN * F, &f);
  tr->roll_eret = be_alloc(tr, TPN * F, &f);
  tr->last_val = be_alloc(tr, PN * F, &f);
  tr->adv = be_alloc(tr, TPN * F, &f);
  tr->ret = be_alloc(tr, TPN * F, &f);
  if (cfg->bootstrap_truncated) {
    tr->final_obs = be_alloc(tr, PN * O * F, &f);
    tr->trunc = be_alloc(tr, PN * F, &f);
  }
  size_t W = (size_t)tr->ws_rows;
  tr->actor_acts = be_alloc(tr, P * W * tr->actor.act_floats_per_row * F, &f);
  tr->critic_acts = be_alloc(tr, P * W * tr->critic.act_floats_per_row * F, &f);
  tr->scratch = be_alloc(tr, P * 2 * W * maxw * F, &f);
  size_t n = (size_t)tr->mb_rows;
  tr->idx = be_alloc(tr, (size_t)P * T * N * sizeof(int32_t), &f);
  tr->clock = be_alloc(tr, sizeof(int64_t), &f);
  tr->mb_obs = be_alloc(tr, P * n * O * F, &f);
  tr->mb_act = be_alloc(tr, P * n * A * F, &f);
  tr->mb_logp = be_alloc(tr, P * n * F, &f);
  tr->mb_adv = be_alloc(tr, P * n * F, &f);
  tr->mb_ret = be_alloc(tr, P * n * F, &f);
  tr->mb_val = be_alloc(tr, P * n * F, &f);
  tr->dhead = be_alloc(tr, P * n * Y * F, &f);
  tr->dvalue = be_alloc(tr, P * n * F, &f);
  tr->sumsq_a = be_alloc(tr, (size_t)P * F, &f);
  tr->sumsq_c = be_alloc(tr, (size_t)P * F, &f);
  tr->scale = be_alloc(tr, (size_t)P * F, &f);
  /* the stats, then the episode summaries: one download per iteration */
  tr->stats = be_alloc(tr, metrics_block_bytes(P), &f);
  if (tr->stats)
    tr->ep_summary = metrics_block_summaries(tr->stats, P);
  if (mb_work)
    tr->mb_work = be_alloc(tr, mb_work, &f);
  tr->h_eret = malloc(PN * F);
  tr->h_stats = malloc(metrics_block_bytes(P));
  if (tr->h_stats)
    tr->h_summary = metrics_block_summaries(tr->h_stats, P);
  tr->recent = calloc((size_t)P * BLPO_RECENT_EPISODES, F);
  tr->recent_n = calloc((size_t)P, sizeof(int));
  tr->recent_head = calloc((size_t)P, sizeof(int));
  if (f || !tr->h_eret || !tr->h_stats || !tr->recent || !tr->recent_n || !tr->recent_head) {
    size_t need =
        (P * (Na + Nc) * 4 + (TPN + PN) * O + TPN * (A + 7) +
         P * W * (tr->actor.act_floats_per_row + tr->critic.act_floats_per_row + 2 * maxw) +
         P * n * (O + A + 6 + Y)) *
            F +
        PN * sizeof(blpo_env_state) + mb_work;
    snprintf(err, errlen,
             "out of %s memory: this config needs about %.1f MiB; lower env.num_envs, "
             "env.num_steps or run.num_seeds",
             be->name, (double)need / (1024.0 * 1024.0));
    blpo_trainer_destroy(tr);
    return NULL;
  }

  /* Networks: initialised on the host from the agent's own stream, uploaded. */
  float *ha = calloc(Na, F), *hc = calloc(Nc, F);
  for (int p = 0; p < P; p++) {
    uint64_t s = d->seed + (uint64_t)p;
    blpo_mlp_init_params(&tr->actor, ha, 0.01, s, 0);
    blpo_mlp_init_params(&tr->critic, hc, 1.0, s, 1);
    be->upload(be, tr->actor_params + p * Na, ha, Na * F);
    be->upload(be, tr->critic_params + p * Nc, hc, Nc * F);
  }
  free(ha);
  free(hc);

  /* Fresh episodes; obs normalisation statistics start at mean 0, var 1,
   * count 1e-4 as in PureJaxRL's wrappers. */
  float *hs = malloc((size_t)P * (2 * O + 1) * F);
  for (int p = 0; p < P; p++) {
    float *s = hs + (size_t)p * (2 * O + 1);
    for (int j = 0; j < O; j++) {
      s[j] = 0.0f;
      s[O + j] = 1.0f;
    }
    s[2 * O] = 1e-4f;
  }
  be->upload(be, tr->obs_stats, hs, (size_t)P * (2 * O + 1) * F);
  free(hs);
  float hr[3] = {0.0f, 1.0f, 1e-4f};
  for (int p = 0; p < P; p++)
    be->upload(be, tr->rew_stats + 3 * p, hr, sizeof(hr));
  int blpo_alloc = cfg->algo != BLPO_ALGO_PPO ? blpo_update_blpo_alloc(tr) : 0;
  if (blpo_alloc == -2) {
    snprintf(err, errlen,
             "the %s backend could not reserve the hypergradient solver's workspaces (out of "
             "memory, or the reason printed above)",
             be->name);
    blpo_trainer_destroy(tr);
    return NULL;
  }
  if (blpo_alloc != 0) {
    snprintf(err, errlen,
             "out of %s memory for the nested/BLPO buffers (they need %.1f MiB beyond the "
             "rollout's): lower algo.hypergrad.rank, the minibatch size "
             "(env.num_envs * env.num_steps / algo.num_minibatches), run.num_seeds, or use "
             "algo.hypergrad.method nystrom instead of exact",
             be->name, (double)tr->blpo_bytes / (1024.0 * 1024.0));
    blpo_trainer_destroy(tr);
    return NULL;
  }
  be->env_reset(be, d, tr->env_states, tr->roll_obs);
  if (tr->normalize_obs)
    be->obs_norm(be, d, tr->obs_stats, tr->roll_obs, 1);
  if (tr->fused && !fused_self_check(tr, err, errlen)) {
    /* auto: the separate ops; on (the user asked for it): a warning only */
    int keep = cfg->fused_rollout == BLPO_TRI_ON;
    fprintf(stderr,
            "blpo-gpu: the fused rollout step disagrees with the separate ops on the %s "
            "backend (%s); %s\n",
            be->name, err, keep ? "using it as run.fused_rollout asks" : "using the separate ops");
    err[0] = 0;
    tr->fused = keep;
  }
  /* the one-kernel Nystrom solve (run.fused_update), where the rank fits */
  if (be->set_fused_solve) {
    int kmax = be->set_fused_solve(be, cfg->fused_update != BLPO_TRI_OFF);
    int nys = cfg->algo == BLPO_ALGO_BLPO && cfg->hg_method == BLPO_HG_NYSTROM;
    tr->fused_solve = nys && cfg->hg_rank <= kmax;
    if (nys && cfg->fused_update == BLPO_TRI_ON && !tr->fused_solve)
      fprintf(stderr,
              "blpo-gpu: run.fused_update: the %s backend's one-kernel Nystrom solve takes "
              "rank <= %d (algo.hypergrad.rank is %d); using the library path\n",
              be->name, kmax, cfg->hg_rank);
  }
  /* TF32 only now: the self-check compares against fp32 GEMMs */
  if (be->set_gemm_precision)
    be->set_gemm_precision(be, cfg->precision == BLPO_PREC_TF32);
  /* programmatic dependent launch: same results, so no self-check; the CPU
   * says so in main.c */
  tr->pdl = be->set_pdl ? be->set_pdl(be, cfg->pdl) : 0;
  if (be->set_pdl && !tr->pdl && cfg->pdl)
    fprintf(stderr,
            "blpo-gpu: run.pdl: the %s backend cannot launch with programmatic dependent launch "
            "here (it needs compute capability 9.0 and kernels built for it); launching as "
            "usual\n",
            be->name);
  /* the nested steps in one kernel: the same bits, so no self-check either */
  tr->grid_sync = be->set_grid_sync ? be->set_grid_sync(be, cfg->grid_sync) : 0;
  if (be->set_grid_sync && !tr->grid_sync && cfg->grid_sync)
    fprintf(stderr,
            "blpo-gpu: run.grid_sync: the %s backend cannot launch cooperative kernels here; "
            "launching the update's kernels one after another\n",
            be->name);
  /* the cooperative kernels are the fused update's: without it, nothing to
   * run that way (run.fused_update off, or networks it cannot hold) */
  if (tr->grid_sync && !tr->fused_critic && !tr->fused_update)
    fprintf(stderr,
            "blpo-gpu: run.grid_sync: no effect, this run does not use the fused update kernels "
            "(%s)\n",
            cfg->fused_update == BLPO_TRI_OFF ? "run.fused_update is false"
                                              : "they cannot hold these networks");
  return tr;
}

int64_t blpo_trainer_num_iterations(const blpo_trainer *tr) { return tr->num_iters; }
int64_t blpo_trainer_steps_per_iteration(const blpo_trainer *tr) {
  return (int64_t)tr->d.N * tr->d.T;
}
size_t blpo_trainer_actor_size(const blpo_trainer *tr) { return tr->actor.num_params; }
size_t blpo_trainer_critic_size(const blpo_trainer *tr) { return tr->critic.num_params; }

float *blpo_head_of(const blpo_mlp *m, float *acts, int rows) {
  return acts + blpo_mlp_act_offset(m, m->num_layers, rows);
}

/* Step t of the rollout with the separate ops: both forward passes, the
 * value copy, the action draw and the env step. */
static void rollout_step_separate(blpo_trainer *tr, int t) {
  blpo_backend *be = tr->be;
  const blpo_dims *d = &tr->d;
  int P = d->P, N = d->N, O = d->obs_dim, A = d->act_dim;
  size_t PN = (size_t)P * N;
  size_t a_stride = (size_t)N * tr->actor.act_floats_per_row;
  size_t c_stride = (size_t)N * tr->critic.act_floats_per_row;
  float *a_head = blpo_head_of(&tr->actor, tr->actor_acts, N);
  float *c_head = blpo_head_of(&tr->critic, tr->critic_acts, N);
  float *obs_t = tr->roll_obs + (size_t)t * PN * O;
  be->mlp_forward(be, &tr->actor, P, tr->actor_params, obs_t, N, tr->actor_acts);
  be->mlp_forward(be, &tr->critic, P, tr->critic_params, obs_t, N, tr->critic_acts);
  be->copy_blocks(be, P, N, tr->roll_val + t * PN, N, c_head, c_stride);
  blpo_counter counter = {tr->clock, d->T, t}; /* global rollout step */
  be->policy_sample(be, d, &tr->actor, tr->actor_params, a_head, a_stride, counter,
                    tr->roll_act + t * PN * A, tr->roll_logp + t * PN);
  float *obs_next = tr->roll_obs + (size_t)(t + 1) * PN * O;
  be->env_step(be, d, tr->env_states, tr->roll_act + t * PN * A, obs_next, tr->roll_rew + t * PN,
               tr->roll_done + t * PN, tr->roll_eret + t * PN, tr->final_obs, tr->trunc);
}

/* Steps [t0, t1) with the fused op (backend.h rollout_fused). */
static void rollout_steps_fused(blpo_trainer *tr, int t0, int t1) {
  blpo_backend *be = tr->be;
  const blpo_dims *d = &tr->d;
  be->rollout_fused(be, d, &tr->actor, tr->actor_params, &tr->critic, tr->critic_params, t0, t1,
                    (blpo_counter){tr->clock, d->T, 0}, tr->env_states, tr->roll_obs, tr->roll_act,
                    tr->roll_logp, tr->roll_val, tr->roll_rew, tr->roll_done, tr->roll_eret,
                    tr->final_obs, tr->trunc);
}

static void rollout(blpo_trainer *tr) {
  blpo_backend *be = tr->be;
  const blpo_dims *d = &tr->d;
  int P = d->P, N = d->N, O = d->obs_dim;
  size_t PN = (size_t)P * N;
  size_t c_stride = (size_t)N * tr->critic.act_floats_per_row;
  float *c_head = blpo_head_of(&tr->critic, tr->critic_acts, N);
  /* Without observation normalisation and truncation bootstrapping no step
   * needs a population-wide result of the previous one: the fused op runs
   * all T steps in one pass; reward normalisation, which only reads the
   * steps' rewards, follows step by step as it would have. */
  if (tr->fused && !tr->normalize_obs && !tr->cfg.bootstrap_truncated) {
    rollout_steps_fused(tr, 0, d->T);
    if (tr->normalize_reward)
      for (int t = 0; t < d->T; t++)
        be->reward_norm(be, d, tr->rew_stats, tr->ret_acc, tr->roll_rew + t * PN,
                        tr->roll_done + t * PN, tr->cfg.gamma);
  } else {
    for (int t = 0; t < d->T; t++) {
      if (tr->fused)
        rollout_steps_fused(tr, t, t + 1);
      else
        rollout_step_separate(tr, t);
      float *obs_next = tr->roll_obs + (size_t)(t + 1) * PN * O;
      float *rew = tr->roll_rew + t * PN, *done = tr->roll_done + t * PN;
      if (tr->normalize_obs)
        be->obs_norm(be, d, tr->obs_stats, obs_next, 1);
      if (tr->normalize_reward)
        be->reward_norm(be, d, tr->rew_stats, tr->ret_acc, rew, done, tr->cfg.gamma);
      if (tr->cfg.bootstrap_truncated) {
        if (tr->normalize_obs)
          be->obs_norm(be, d, tr->obs_stats, tr->final_obs, 0);
        be->mlp_forward(be, &tr->critic, P, tr->critic_params, tr->final_obs, N, tr->critic_acts);
        be->bootstrap_truncated(be, PN, rew, tr->trunc, c_head, c_stride, N, tr->cfg.gamma);
      }
    }
  }
  /* V(last_obs) */
  float *last_obs = tr->roll_obs + (size_t)d->T * PN * O;
  be->mlp_forward(be, &tr->critic, P, tr->critic_params, last_obs, N, tr->critic_acts);
  be->copy_blocks(be, P, N, tr->last_val, N, c_head, c_stride);
}

int64_t blpo_steps_before(const blpo_trainer *tr, int64_t iter, int per_minibatch) {
  return iter * tr->cfg.num_epochs * tr->cfg.num_minibatches * per_minibatch;
}

blpo_adam_sched blpo_trainer_adam_sched(const blpo_trainer *tr, float lr, int64_t per_iter,
                                        int64_t offset) {
  blpo_adam_sched s = blpo_adam_fixed(lr, 0.9f, 0.999f, tr->cfg.adam_eps, 1);
  s.anneal_iters = tr->cfg.anneal_lr ? tr->num_iters : 0;
  s.step.clock = tr->clock;
  s.step.per_iter = per_iter;
  s.step.offset = offset;
  return s;
}

static void ppo_update(blpo_trainer *tr) {
  blpo_backend *be = tr->be;
  const blpo_dims *d = &tr->d;
  const blpo_config *c = &tr->cfg;
  int n = tr->mb_rows, E = c->num_epochs, M = c->num_minibatches;
  blpo_ppo_minibatch a = {
      .n = n,
      .idx_stride = (size_t)d->T * d->N,
      .obs = tr->roll_obs,
      .act = tr->roll_act,
      .logp = tr->roll_logp,
      .adv = tr->adv,
      .ret = tr->ret,
      .val = tr->roll_val,
      .mb_obs = tr->mb_obs,
      .mb_act = tr->mb_act,
      .mb_logp = tr->mb_logp,
      .mb_adv = tr->mb_adv,
      .mb_ret = tr->mb_ret,
      .mb_val = tr->mb_val,
      .actor = &tr->actor,
      .critic = &tr->critic,
      .actor_params = tr->actor_params,
      .actor_grad = tr->actor_grad,
      .actor_m = tr->actor_m,
      .actor_v = tr->actor_v,
      .critic_params = tr->critic_params,
      .critic_grad = tr->critic_grad,
      .critic_m = tr->critic_m,
      .critic_v = tr->critic_v,
      .actor_acts = tr->actor_acts,
      .critic_acts = tr->critic_acts,
      .dhead = tr->dhead,
      .dvalue = tr->dvalue,
      .scratch = tr->scratch,
      .sumsq_a = tr->sumsq_a,
      .sumsq_c = tr->sumsq_c,
      .scale = tr->scale,
      .stats = tr->stats,
      .pp = {c->clip_eps, c->vf_coef, c->ent_coef, c->clip_value, c->norm_adv},
      .max_grad_norm = c->max_grad_norm,
      .work = tr->mb_work,
      .minibatches = M,
  };

  for (int epoch = 0; epoch < E; epoch++) {
    blpo_counter perm = {tr->clock, E, epoch}; /* one permutation per epoch */
    be->shuffle_samples(be, d, perm, tr->idx);
    for (int mb = 0; mb < M; mb++) {
      a.idx = tr->idx + (size_t)mb * n;
      a.minibatch = mb;
      /* one optimiser step per minibatch, shared by both networks */
      int64_t step = (int64_t)epoch * M + mb;
      a.actor_sched = blpo_trainer_adam_sched(tr, c->actor_lr, (int64_t)E * M, step);
      a.critic_sched = blpo_trainer_adam_sched(tr, c->critic_lr, (int64_t)E * M, step);
      if (tr->fused_update)
        be->ppo_minibatch(be, d, &a);
      else
        blpo_ppo_minibatch_ops(be, d, &a);
    }
  }
}

static void collect_metrics(blpo_trainer *tr, blpo_iter_metrics *out) {
  blpo_backend *be = tr->be;
  const blpo_dims *d = &tr->d;
  int P = d->P, N = d->N;
  /* the stats and the episode summaries the iteration's last op wrote */
  be->download(be, tr->h_stats, tr->stats, metrics_block_bytes(P));
  float frac = tr->cfg.anneal_lr ? 1.0f - (float)tr->iter / (float)tr->num_iters : 1.0f;
  for (int p = 0; p < P; p++) {
    blpo_iter_metrics *m = &out[p];
    const blpo_episode_summary *es = &tr->h_summary[p];
    memset(m, 0, sizeof(*m));
    m->agent = p;
    m->iteration = tr->iter + 1;
    m->global_step = (tr->iter + 1) * (int64_t)N * d->T;
    float *ring = tr->recent + (size_t)p * BLPO_RECENT_EPISODES;
    blpo_episode_ring_add(ring, BLPO_RECENT_EPISODES, &tr->recent_head[p], &tr->recent_n[p], es);
    m->episodes = es->count;
    m->ret_mean = es->mean;
    m->ret_min = es->min;
    m->ret_max = es->max;
    double rs = 0;
    for (int k = 0; k < tr->recent_n[p]; k++)
      rs += ring[k];
    m->recent_count = tr->recent_n[p];
    m->recent_mean = tr->recent_n[p] ? (float)(rs / tr->recent_n[p]) : NAN;
    const float *st = tr->h_stats + (size_t)p * BLPO_STAT_COUNT;
    float nmb = (float)tr->cfg.num_epochs * tr->cfg.num_minibatches;
    m->pg_loss = st[BLPO_STAT_PG_LOSS] / nmb;
    m->v_loss = st[BLPO_STAT_V_LOSS] / nmb;
    m->entropy = st[BLPO_STAT_ENTROPY] / nmb;
    m->approx_kl = st[BLPO_STAT_APPROX_KL] / nmb;
    m->clipfrac = st[BLPO_STAT_CLIPFRAC] / nmb;
    m->actor_gnorm = st[BLPO_STAT_ACTOR_GNORM] / nmb;
    m->critic_gnorm = st[BLPO_STAT_CRITIC_GNORM] / nmb;
    m->critic_loss_before = st[BLPO_STAT_CRITIC_LOSS_BEFORE] / nmb;
    m->critic_loss_after = st[BLPO_STAT_CRITIC_LOSS_AFTER] / nmb;
    m->actor_loss = st[BLPO_STAT_ACTOR_LOSS] / nmb;
    m->g_norm = st[BLPO_STAT_G_NORM] / nmb;
    m->p_norm = st[BLPO_STAT_P_NORM] / nmb;
    m->scale = st[BLPO_STAT_SCALE] / nmb;
    m->cos_gp = st[BLPO_STAT_COS] / nmb;
    m->rank = st[BLPO_STAT_RANK] / nmb;
    m->eig_min = st[BLPO_STAT_EIG_MIN] / nmb;
    m->eig_max = st[BLPO_STAT_EIG_MAX] / nmb;
    m->core_faults = st[BLPO_STAT_CORE_FAULTS];
    m->cg_resid = st[BLPO_STAT_CG_RESID] / nmb;
    m->ihvp_relerr = tr->cfg.hg_check ? st[BLPO_STAT_IHVP_RELERR] / nmb : NAN;
    m->actor_lr = tr->cfg.actor_lr * frac;
    m->critic_lr = tr->cfg.critic_lr * frac;
  }
}

/* Everything an iteration queues on the backend, from the stats reset to the
 * copy of last_obs that opens the next rollout: no host reads, and nothing
 * that changes between iterations except through the clock, so that one
 * recording of it can be replayed. */
static void iteration_body(blpo_trainer *tr) {
  blpo_backend *be = tr->be;
  const blpo_dims *d = &tr->d;
  size_t PN = (size_t)d->P * d->N;
  be->fill(be, tr->stats, 0.0f, (size_t)d->P * BLPO_STAT_COUNT);
  blpo_phase_mark(tr, BLPO_PHASE_ROLLOUT);
  rollout(tr);
  /* targets with the pre-update critic: fixed for the whole iteration */
  blpo_phase_mark(tr, BLPO_PHASE_TARGETS);
  be->gae(be, d, tr->roll_rew, tr->roll_done, tr->roll_val, tr->last_val, tr->cfg.gamma,
          tr->cfg.gae_lambda, tr->adv, tr->ret);
  if (tr->cfg.algo == BLPO_ALGO_PPO) {
    blpo_phase_mark(tr, BLPO_PHASE_PPO);
    ppo_update(tr);
  } else {
    blpo_update_blpo(tr); /* marks its own phases */
  }
  /* the last obs opens the next rollout */
  be->copy_blocks(be, 1, PN * d->obs_dim, tr->roll_obs, 0,
                  tr->roll_obs + (size_t)d->T * PN * d->obs_dim, 0);
  /* what the metrics read besides the stats: queued here, so that a replay
   * runs it too and the host reads a few hundred bytes per agent */
  blpo_phase_mark(tr, BLPO_PHASE_METRICS);
  be->episode_summary(be, d, tr->roll_eret, tr->ep_summary);
}

/* Whether this iteration may run as a graph replay: the backend records, the
 * run wants it, and nothing in the iteration reads back to the host (check
 * mode) or times its phases (profile mode). The first iteration always runs
 * directly, so that the libraries' lazy set-up happens outside a capture. */
static int replay_wanted(const blpo_trainer *tr) {
  return tr->graph_on && tr->be->capture_begin && !tr->profile && !tr->cfg.hg_check &&
         tr->eager_iters >= 1;
}

/* The iteration as the body of a graph: captured once, replayed after. */
static void iterate_replayed(blpo_trainer *tr) {
  blpo_backend *be = tr->be;
  if (!tr->graph) {
    be->capture_begin(be);
    iteration_body(tr);
    blpo_phase_done(tr);
    char why[256];
    tr->graph = be->capture_end(be, why, sizeof(why));
    if (!tr->graph) {
      /* nothing recorded ran: run this and every later iteration directly */
      fprintf(stderr,
              "blpo-gpu: %s backend: the iteration could not be captured as a graph "
              "(%s); running it kernel by kernel from here on\n",
              be->name, why);
      tr->graph_on = 0;
      iteration_body(tr);
      return;
    }
    tr->graph_nodes = be->graph_count(tr->graph, &tr->graph_kernels);
  }
  be->graph_launch(be, tr->graph);
}

/* Test hook (run.debug_emulate_replay, any backend): run the body with the
 * trainer's host state frozen as it was at the first replayable iteration,
 * as a replay would, so that anything the body takes from host state that
 * changes between iterations shows up as a difference from a direct run. */
static void iterate_emulated(blpo_trainer *tr) {
  if (!tr->replay_snapshot) {
    tr->replay_snapshot = malloc(sizeof(*tr));
    if (!tr->replay_snapshot) {
      iteration_body(tr);
      return;
    }
    memcpy(tr->replay_snapshot, tr, sizeof(*tr));
  }
  blpo_trainer live;
  memcpy(&live, tr, sizeof(live));
  memcpy(tr, tr->replay_snapshot, sizeof(*tr));
  iteration_body(tr);
  blpo_phase_done(tr);
  memcpy(tr, &live, sizeof(*tr));
}

void blpo_trainer_iterate(blpo_trainer *tr, blpo_iter_metrics *metrics) {
  blpo_backend *be = tr->be;
  be->upload(be, tr->clock, &tr->iter, sizeof(tr->iter));
  if (replay_wanted(tr))
    iterate_replayed(tr);
  else if (tr->cfg.debug_emulate_replay && tr->eager_iters >= 1 && !tr->profile)
    iterate_emulated(tr);
  else {
    iteration_body(tr);
    tr->eager_iters++;
  }
  if (tr->phase_cur != BLPO_PHASE_METRICS) /* a direct run's body ends in it */
    blpo_phase_mark(tr, BLPO_PHASE_METRICS);
  collect_metrics(tr, metrics);
  blpo_phase_done(tr);
  tr->iter++;
}

size_t blpo_trainer_graph_kernels(const blpo_trainer *tr, size_t *nodes) {
  if (nodes)
    *nodes = tr->graph ? tr->graph_nodes : 0;
  return tr->graph ? tr->graph_kernels : 0;
}

int blpo_trainer_replaying(const blpo_trainer *tr) { return tr->graph != NULL; }

int blpo_trainer_fused_rollout(const blpo_trainer *tr) { return tr->fused; }
int blpo_trainer_pdl(const blpo_trainer *tr) { return tr->pdl; }
int blpo_trainer_grid_sync(const blpo_trainer *tr) {
  return tr->grid_sync && (tr->fused_critic || tr->fused_update);
}
int blpo_trainer_fused_update(const blpo_trainer *tr) {
  return tr->fused_update || tr->fused_critic || tr->fused_solve;
}

int blpo_trainer_evaluate(blpo_trainer *tr, int episodes, int deterministic, double *mean,
                          double *std, double *mn, double *mx) {
  blpo_backend *be = tr->be;
  blpo_dims ed = tr->d; /* own reset streams, apart from training's */
  ed.seed += 0x9E3779B1ull;
  int P = ed.P, N = ed.N, O = ed.obs_dim, A = ed.act_dim;
  size_t PN = (size_t)P * N;
  int E = episodes < N ? episodes : N;
  int per_env = (episodes + E - 1) / E;
  const blpo_env_info *info = blpo_env_get_info((blpo_env_id)ed.env_id);
  int64_t max_steps = (int64_t)info->max_steps * (per_env + 1);
  float *obs = tr->roll_obs, *next = tr->roll_obs + PN * O;
  float *act = tr->roll_act, *logp = tr->roll_logp, *rew = tr->roll_rew, *done = tr->roll_done;
  float *eret = tr->roll_eret;
  float *h_eret = tr->h_eret; /* (P,N) */
  double *ret = calloc((size_t)P * E * per_env, sizeof(double));
  int *cnt = calloc((size_t)P * E, sizeof(int));
  if (!ret || !cnt) {
    free(ret);
    free(cnt);
    return -1;
  }
  be->env_reset(be, &ed, tr->env_states, obs);
  if (tr->normalize_obs)
    be->obs_norm(be, &ed, tr->obs_stats, obs, 0);
  size_t a_stride = (size_t)N * tr->actor.act_floats_per_row;
  float *a_head = blpo_head_of(&tr->actor, tr->actor_acts, N);
  int remaining = P * E;
  int64_t step = 0;
  for (; step < max_steps && remaining > 0; step++) {
    be->mlp_forward(be, &tr->actor, P, tr->actor_params, obs, N, tr->actor_acts);
    if (deterministic)
      be->policy_mode(be, &ed, a_head, a_stride, act);
    else
      be->policy_sample(be, &ed, &tr->actor, tr->actor_params, a_head, a_stride,
                        (blpo_counter){NULL, 0, (int64_t)(1ull << 40) + step}, act, logp);
    be->env_step(be, &ed, tr->env_states, act, next, rew, done, eret, NULL, NULL);
    if (tr->normalize_obs)
      be->obs_norm(be, &ed, tr->obs_stats, next, 0);
    be->copy_blocks(be, 1, PN * O, obs, 0, next, 0);
    be->download(be, h_eret, eret, PN * sizeof(float));
    for (int p = 0; p < P; p++)
      for (int i = 0; i < E; i++) {
        float r = h_eret[(size_t)p * N + i];
        int *c = &cnt[(size_t)p * E + i];
        if (isnan(r) || *c >= per_env)
          continue;
        ret[((size_t)p * E + i) * per_env + *c] = r;
        if (++*c == per_env)
          remaining--;
      }
  }
  (void)A;
  for (int p = 0; p < P; p++) {
    /* env-major: env 0's episodes, then env 1's, ... the first `episodes` */
    double s = 0, s2 = 0, lo = INFINITY, hi = -INFINITY;
    for (int k = 0; k < episodes; k++) {
      int i = k / per_env, j = k % per_env;
      double r = ret[((size_t)p * E + i) * per_env + j];
      s += r;
      lo = fmin(lo, r);
      hi = fmax(hi, r);
    }
    double mu = s / episodes;
    for (int k = 0; k < episodes; k++) {
      int i = k / per_env, j = k % per_env;
      double e = ret[((size_t)p * E + i) * per_env + j] - mu;
      s2 += e * e;
    }
    mean[p] = mu;
    std[p] = sqrt(s2 / episodes);
    mn[p] = lo;
    mx[p] = hi;
  }
  free(ret);
  free(cnt);
  return remaining == 0 ? 0 : -1;
}

int blpo_trainer_obs_dim(const blpo_trainer *tr) { return tr->d.obs_dim; }
int blpo_trainer_head_dim(const blpo_trainer *tr) { return tr->d.head_dim; }

int blpo_trainer_actor_output(blpo_trainer *tr, int agent, const float *obs, float *out) {
  blpo_backend *be = tr->be;
  const blpo_mlp *m = &tr->actor;
  int P = tr->d.P, O = tr->d.obs_dim, Y = tr->d.head_dim;
  /* every agent sees the same row; one population-wide forward pass */
  float *h_x = malloc((size_t)P * O * sizeof(float));
  float *x = be->alloc(be, (size_t)P * O * sizeof(float));
  float *acts = be->alloc(be, (size_t)P * m->act_floats_per_row * sizeof(float));
  int rc = -1;
  if (h_x && x && acts) {
    for (int p = 0; p < P; p++)
      memcpy(h_x + (size_t)p * O, obs, (size_t)O * sizeof(float));
    be->upload(be, x, h_x, (size_t)P * O * sizeof(float));
    be->mlp_forward(be, m, P, tr->actor_params, x, 1, acts);
    /* with one row per agent, agent p's head starts at p * act_floats_per_row */
    const float *head = blpo_head_of(m, acts, 1) + (size_t)agent * m->act_floats_per_row;
    be->download(be, out, head, (size_t)Y * sizeof(float));
    rc = 0;
  }
  if (acts)
    be->release(be, acts);
  if (x)
    be->release(be, x);
  free(h_x);
  return rc;
}

void blpo_trainer_get_params(blpo_trainer *tr, int agent, float *actor, float *critic) {
  size_t Na = tr->actor.num_params, Nc = tr->critic.num_params;
  if (actor)
    tr->be->download(tr->be, actor, tr->actor_params + agent * Na, Na * sizeof(float));
  if (critic)
    tr->be->download(tr->be, critic, tr->critic_params + agent * Nc, Nc * sizeof(float));
}

int blpo_trainer_recent_returns(const blpo_trainer *tr, int agent, float *out) {
  int n = tr->recent_n[agent];
  const float *ring = tr->recent + (size_t)agent * BLPO_RECENT_EPISODES;
  int start = n < BLPO_RECENT_EPISODES ? 0 : tr->recent_head[agent];
  for (int k = 0; k < n; k++)
    out[k] = ring[(start + k) % BLPO_RECENT_EPISODES];
  return n;
}

void blpo_trainer_destroy(blpo_trainer *tr) {
  if (!tr)
    return;
  blpo_backend *be = tr->be;
  void *bufs[] = {
      tr->actor_params, tr->actor_grad, tr->actor_m,   tr->actor_v,    tr->critic_params,
      tr->critic_grad,  tr->critic_m,   tr->critic_v,  tr->env_states, tr->obs_stats,
      tr->rew_stats,    tr->ret_acc,    tr->roll_obs,  tr->roll_act,   tr->roll_logp,
      tr->roll_val,     tr->roll_rew,   tr->roll_done, tr->roll_eret,  tr->last_val,
      tr->adv,          tr->ret,        tr->final_obs, tr->trunc,      tr->actor_acts,
      tr->critic_acts,  tr->scratch,    tr->idx,       tr->mb_obs,     tr->mb_act,
      tr->mb_logp,      tr->mb_adv,     tr->mb_ret,    tr->mb_val,     tr->dhead,
      tr->dvalue,       tr->sumsq_a,    tr->sumsq_c,   tr->scale,      tr->stats,
      tr->clock,        tr->mb_work};
  for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++)
    if (bufs[i])
      be->release(be, bufs[i]);
  if (tr->graph)
    be->graph_free(be, tr->graph);
  free(tr->replay_snapshot);
  blpo_update_blpo_free(tr);
  free(tr->h_eret);
  free(tr->h_stats);
  free(tr->recent);
  free(tr->recent_n);
  free(tr->recent_head);
  free(tr);
}
