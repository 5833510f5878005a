/* The fused PPO minibatch update (backend.h ppo_minibatch) against the
 * separate ops it replaces (blpo_ppo_minibatch_ops on the CPU backend), over
 * two updates in a row, from random rollouts, parameters and optimiser
 * states: every task (discrete and continuous heads), tanh and relu,
 * networks of uneven widths (the two networks' scratch rows must not
 * overlap), 1 to 16 row chunks, one to three agents, advantage
 * normalisation and value clipping on and off. The outputs of the two runs
 * are poisoned with different NaNs first, so that a value one of them leaves
 * unwritten fails the comparison. Three fused sides:
 *
 *   cpu       the CPU backend's op on 1, 2 and 3 threads, bit for bit in
 *             every buffer either one writes (the gathered rows, both
 *             networks' activations, the loss gradients, the weight
 *             gradients, the norms and the clip factor, the loss
 *             statistics, the parameters and both Adam moments);
 *   blocks    the CUDA kernels' block programs (include/blpo/ppo_blocks.h)
 *             run on the host thread by thread, with 32 and with 8 rows per
 *             block, shared memory and workspaces poisoned per block;
 *   cuda      (--cuda; exits 77 without a device) the CUDA backend's op.
 *
 * Both of the last two again as the cooperative kernel (run.grid_sync): the
 * blocks side runs ppo_blocks.h's grid schedule with 1, 3 and all blocks
 * per agent, the cuda side the op with set_grid_sync on, and each must give
 * the bits of the separate programs (kernels) from the same state. The
 * two updates are two lone minibatches (0 of 0: the epoch's moments first),
 * and again (epoch) minibatches 0 and 1 of a two-minibatch epoch over one
 * run of row draws: the second reads the moments the first computed for it and
 * runs the schedule of a minibatch past an epoch's first (three grid
 * phases), on every side; the workspace is kept from one to the next, as
 * the trainer keeps it.
 *
 * The last two sum in other orders, so they are held to tolerances: the
 * gradients, norms and clip factor to 1e-4 of their norm, each update's
 * change of the parameters and Adam moments to 1e-3 of its norm, the stats
 * to 1e-4 (absolute, plus relative). A wrong index or a missing term moves
 * them by O(1) of that norm. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blpo/backend.h"
#include "blpo/env.h"
#include "blpo/mlp.h"
#include "blpo/ppo_blocks.h"
#include "blpo/ppo_minibatch.h"
#include "cuda_test_backend.h"
#include "emu_order.h"
#include "test_util.h"

enum { N_ENVS = 41, T_STEPS = 64 };

/* One side's buffers: the state both sides start from, and the outputs. */
typedef struct {
  float *ap, *ag, *am, *av;                                    /* (P, Na) */
  float *cp, *cg, *cm, *cv;                                    /* (P, Nc) */
  float *stats;                                                /* (P, BLPO_STAT_COUNT) */
  float *mb_obs, *mb_act, *mb_logp, *mb_adv, *mb_ret, *mb_val; /* (P, n, .) */
  float *aacts, *cacts;                                        /* (P, n, act_floats_per_row) */
  float *dhead, *dvalue;                                       /* (P, n, Y), (P, n) */
  float *scratch;                                              /* (P, 2 n max_width) */
  float *sa, *sc, *scale;                                      /* (P) */
} side;

typedef struct {
  const char *name;
  int env_id, act, P, n;
  int ah[3], nah, ch[3], nch;
  int norm_adv, clip_value;
  float max_grad_norm;
} mb_case;

typedef struct {
  blpo_dims d;
  blpo_mlp actor, critic;
  size_t rows, Na, Nc, mw;
  float *obs, *act, *logp, *adv, *ret, *val; /* rollout (T*P*N, .) */
  int32_t *idx;                              /* (2, P, T*N): two minibatches */
  int64_t clock;
} world;

static void world_init(world *w, const mb_case *c) {
  const blpo_env_info *info = blpo_env_get_info((blpo_env_id)c->env_id);
  memset(w, 0, sizeof(*w));
  blpo_dims *d = &w->d;
  d->P = c->P, d->N = N_ENVS, d->T = T_STEPS, d->env_id = c->env_id, d->seed = 5;
  d->obs_dim = info->obs_dim, d->act_dim = info->action_dim, d->discrete = info->discrete;
  d->num_actions = info->num_actions;
  d->head_dim = info->discrete ? info->num_actions : info->action_dim;
  blpo_mlp_init_shape(&w->actor, d->obs_dim, c->ah, c->nah, d->head_dim, c->act,
                      d->discrete ? 0 : d->act_dim);
  blpo_mlp_init_shape(&w->critic, d->obs_dim, c->ch, c->nch, 1, c->act, 0);
  w->Na = w->actor.num_params, w->Nc = w->critic.num_params;
  w->mw =
      (size_t)(w->actor.max_width > w->critic.max_width ? w->actor.max_width : w->critic.max_width);
  w->rows = (size_t)T_STEPS * c->P * N_ENVS;
  int O = d->obs_dim, A = d->act_dim;
  w->obs = test_alloc_floats(w->rows * O);
  w->act = test_alloc_floats(w->rows * A);
  w->logp = test_alloc_floats(w->rows);
  w->adv = test_alloc_floats(w->rows);
  w->ret = test_alloc_floats(w->rows);
  w->val = test_alloc_floats(w->rows);
  for (size_t r = 0; r < w->rows; r++) {
    for (int k = 0; k < O; k++)
      w->obs[r * O + k] = (float)nrand();
    for (int k = 0; k < A; k++)
      w->act[r * A + k] = d->discrete ? (float)(int)(urand() * d->num_actions) : (float)nrand();
    /* old log-probs near the policy's, so that some ratios clip and some not */
    w->logp[r] = (float)(d->discrete ? log(1.0 / d->num_actions) + 0.3 * nrand() : -1.5 + nrand());
    w->adv[r] = (float)(0.5 + nrand());
    w->ret[r] = (float)(2 * nrand());
    w->val[r] = w->ret[r] + (float)(0.5 * nrand());
  }
  size_t TN = (size_t)T_STEPS * N_ENVS;
  w->idx = malloc(2 * c->P * TN * sizeof(int32_t));
  for (size_t k = 0; k < 2 * c->P * TN; k++)
    w->idx[k] = (int32_t)(urand() * (double)w->rows);
  w->clock = 3;
}

static void world_free(world *w) {
  void *ps[] = {w->obs, w->act, w->logp, w->adv, w->ret, w->val, w->idx};
  for (size_t k = 0; k < sizeof(ps) / sizeof(ps[0]); k++)
    free(ps[k]);
}

static void side_alloc(side *s, const world *w, int n) {
  int P = w->d.P;
  s->ap = test_alloc_floats(P * w->Na), s->ag = test_alloc_floats(P * w->Na);
  s->am = test_alloc_floats(P * w->Na), s->av = test_alloc_floats(P * w->Na);
  s->cp = test_alloc_floats(P * w->Nc), s->cg = test_alloc_floats(P * w->Nc);
  s->cm = test_alloc_floats(P * w->Nc), s->cv = test_alloc_floats(P * w->Nc);
  s->stats = test_alloc_floats((size_t)P * BLPO_STAT_COUNT);
  size_t Pn = (size_t)P * n;
  s->mb_obs = test_alloc_floats(Pn * w->d.obs_dim),
  s->mb_act = test_alloc_floats(Pn * w->d.act_dim);
  s->mb_logp = test_alloc_floats(Pn), s->mb_adv = test_alloc_floats(Pn),
  s->mb_ret = test_alloc_floats(Pn);
  s->mb_val = test_alloc_floats(Pn);
  s->aacts = test_alloc_floats(Pn * w->actor.act_floats_per_row);
  s->cacts = test_alloc_floats(Pn * w->critic.act_floats_per_row);
  s->dhead = test_alloc_floats(Pn * w->d.head_dim), s->dvalue = test_alloc_floats(Pn);
  s->scratch = test_alloc_floats(Pn * 2 * w->mw);
  s->sa = test_alloc_floats(P), s->sc = test_alloc_floats(P), s->scale = test_alloc_floats(P);
}

static void side_free(side *s) {
  void *ps[] = {s->ap,     s->ag,      s->am,     s->av,     s->cp,     s->cg,
                s->cm,     s->cv,      s->stats,  s->mb_obs, s->mb_act, s->mb_logp,
                s->mb_adv, s->mb_ret,  s->mb_val, s->aacts,  s->cacts,  s->dhead,
                s->dvalue, s->scratch, s->sa,     s->sc,     s->scale};
  for (size_t k = 0; k < sizeof(ps) / sizeof(ps[0]); k++)
    free(ps[k]);
}

/* The buffers that must agree, as (name, float count) in side order. */
typedef struct {
  const char *name;
  size_t off; /* offsetof(side, member) */
  size_t count;
} field;

static size_t fields_of(const world *w, int n, field *f) {
  int P = w->d.P;
  size_t Pn = (size_t)P * n, k = 0;
#define F(member, cnt) f[k++] = (field){#member, offsetof(side, member), (cnt)}
  F(ap, P * w->Na), F(ag, P * w->Na), F(am, P * w->Na), F(av, P * w->Na);
  F(cp, P * w->Nc), F(cg, P * w->Nc), F(cm, P * w->Nc), F(cv, P * w->Nc);
  F(stats, (size_t)P * BLPO_STAT_COUNT);
  F(mb_obs, Pn * w->d.obs_dim), F(mb_act, Pn * w->d.act_dim), F(mb_logp, Pn), F(mb_adv, Pn);
  F(mb_ret, Pn), F(mb_val, Pn);
  F(aacts, Pn * w->actor.act_floats_per_row), F(cacts, Pn * w->critic.act_floats_per_row);
  F(dhead, Pn * w->d.head_dim), F(dvalue, Pn);
  F(sa, (size_t)P), F(sc, (size_t)P), F(scale, (size_t)P);
#undef F
  return k;
}

static float *member(side *s, const field *f) { return *(float **)((char *)s + f->off); }

/* epoch: the two updates are minibatches 0 and 1 of one epoch (the
 * second's rows the next n index draws after the first's); 0: two lone
 * minibatches, each agent's rows from its own span of draws per update */
static int g_epoch;

static blpo_ppo_minibatch args_of(const world *w, const side *s, const mb_case *c, int which,
                                  const int64_t *clock) {
  blpo_ppo_minibatch a = {
      .n = c->n,
      .idx = w->idx + (g_epoch ? (size_t)which * c->n : (size_t)which * c->P * T_STEPS * N_ENVS),
      .idx_stride = (size_t)T_STEPS * N_ENVS,
      .obs = w->obs,
      .act = w->act,
      .logp = w->logp,
      .adv = w->adv,
      .ret = w->ret,
      .val = w->val,
      .mb_obs = s->mb_obs,
      .mb_act = s->mb_act,
      .mb_logp = s->mb_logp,
      .mb_adv = s->mb_adv,
      .mb_ret = s->mb_ret,
      .mb_val = s->mb_val,
      .actor = &w->actor,
      .critic = &w->critic,
      .actor_params = s->ap,
      .actor_grad = s->ag,
      .actor_m = s->am,
      .actor_v = s->av,
      .critic_params = s->cp,
      .critic_grad = s->cg,
      .critic_m = s->cm,
      .critic_v = s->cv,
      .actor_acts = s->aacts,
      .critic_acts = s->cacts,
      .dhead = s->dhead,
      .dvalue = s->dvalue,
      .scratch = s->scratch,
      .sumsq_a = s->sa,
      .sumsq_c = s->sc,
      .scale = s->scale,
      .stats = s->stats,
      .pp = {0.2f, 0.5f, 0.01f, c->clip_value, c->norm_adv},
      .max_grad_norm = c->max_grad_norm,
      .minibatch = g_epoch ? which : 0,
      .minibatches = g_epoch ? 2 : 0,
  };
  /* the trainer's schedules: annealed, step counters read from the clock */
  a.actor_sched = blpo_adam_fixed(5e-4f, 0.9f, 0.999f, 1e-5f, 1);
  a.critic_sched = blpo_adam_fixed(1e-3f, 0.9f, 0.999f, 1e-5f, 1);
  a.actor_sched.anneal_iters = a.critic_sched.anneal_iters = 10;
  a.actor_sched.step = a.critic_sched.step = (blpo_counter){clock, 128, 7 + which};
  return a;
}

/* ---- the fused sides ---------------------------------------------------- */

/* run.precision tf32: the block programs' layouts (and the CUDA op, by
 * set_gemm_precision) put the 64-64 and 32-32 layers on TF32 tiles
 * (include/blpo/tc_tile.h). Their 10-bit products move the gradients and
 * norms by up to 8.1e-4 of their norm and the updates by up to 6.8e-4 over
 * these cases (2026-12-07), so the tolerances are 5e-3 and 1e-2 (the stats
 * 2e-3): still far under the O(1) of a wrong index. */
static int g_tf32;
/* the grid schedule: blocks, that many blocks per agent; cuda, set_grid_sync
 * on; 0: the separate programs */
static int g_grid;

enum { SIDE_CPU, SIDE_BLOCKS, SIDE_CUDA };

/* The block programs of the CUDA op, each block's threads run one after
 * another per phase: what the kernels compute, in their order. *work is
 * the op's workspace, made (poisoned) at an epoch's first minibatch and
 * kept for the rest, as the trainer's; free it after the epoch. */
static void run_blocks(const blpo_dims *d, const blpo_ppo_minibatch *mb, int R, int G,
                       void **work_kept) {
  blpo_mbf_layout y;
  blpo_mbf_layout_init(&y, d, mb->actor, mb->critic, mb->n, R, g_tf32);
  int P = d->P, sf = blpo_mbf_grid_floats(&y);
  size_t wb = blpo_mbf_work_bytes(&y, P, mb->minibatches);
  float *sm = test_alloc_shared((size_t)sf);
  if (mb->minibatch == 0) {
    free(*work_kept);
    *work_kept = malloc(wb);
    if (!*work_kept) {
      fprintf(stderr, "out of memory\n");
      exit(2);
    }
    memset(*work_kept, 0xff, wb); /* NaN floats and doubles */
  }
  void *work = *work_kept;
  blpo_mbf_args a = blpo_mbf_args_of(&y, mb, P, work);
  if (mb->minibatch > 0) { /* all but the epoch's moments (a.moments up to a.sq) poisoned again */
    memset(work, 0xff, (size_t)((char *)a.moments - (char *)work));
    memset(a.sq, 0xff, wb - (size_t)((char *)a.sq - (char *)work));
  }
  if (G > 0) { /* the cooperative kernel's schedule, a grid barrier between grid phases */
    if (G > y.blocks)
      G = y.blocks;
    /* each block's own shared memory, poisoned once and kept across every
     * grid phase, as on the device (32-byte aligned blocks of it) */
    const size_t bf = ((size_t)sf + 7) / 8 * 8;
    float *all = test_alloc_shared(bf * (size_t)P * (size_t)G);
    test_poison_nan(all, bf * (size_t)P * (size_t)G, 4);
    for (int s = 0; s < blpo_mbf_grid_count(&a); s++)
      EMU_FOR (p, P)
        EMU_FOR (x, G) {
          float *bsm = all + bf * ((size_t)p * G + (size_t)x);
          for (int u = x; u < blpo_mbf_grid_units(&a, s); u += G)
            for (int ph = 0; ph < blpo_mbf_grid_phases(&a, s); ph++)
              EMU_FOR (t, BLPO_MBF_THREADS)
                blpo_mbf_grid_unit(&a, s, p, u, t, ph, bsm);
        }
    free(all);
    free(sm);
    return;
  }
  if (a.mb == 0) /* the epoch's moments, every minibatch's, as the launch */
    EMU_FOR (p, P)
      EMU_FOR (m, a.M) {
        blpo_mbf_moments_shared sh;
        memset(&sh, 0xff, sizeof(sh)); /* NaN doubles */
        for (int ph = 0; ph < blpo_mbf_moments_phases(); ph++)
          EMU_FOR (t, BLPO_MBF_THREADS)
            blpo_mbf_moments(&a, p, m, t, ph, &sh);
      }
  EMU_FOR (p, P)
    EMU_FOR (b, y.blocks) {
      test_poison_nan(sm, (size_t)sf, 4); /* a block's shared memory starts as garbage */
      for (int ph = 0; ph < blpo_mbf_rows_phases(&y); ph++)
        EMU_FOR (t, BLPO_MBF_THREADS)
          blpo_mbf_rows(&a, p, b, t, ph, sm);
    }
  EMU_FOR (p, P)
    EMU_FOR (k, y.col_blocks) {
      blpo_mbf_reduce_shared sh;
      memset(&sh, 0xff, sizeof(sh));
      for (int ph = 0; ph < blpo_mbf_reduce_phases(); ph++)
        EMU_FOR (t, BLPO_MBF_THREADS)
          blpo_mbf_reduce(&a, p, k, t, ph, &sh);
    }
  /* every reduce block before any adam block, as the two launches */
  EMU_FOR (p, P)
    EMU_FOR (k, y.col_blocks) {
      blpo_mbf_adam_shared sh;
      memset(&sh, 0xff, sizeof(sh));
      for (int ph = 0; ph < blpo_mbf_adam_phases(); ph++)
        EMU_FOR (t, BLPO_MBF_THREADS)
          blpo_mbf_adam(&a, p, k, t, ph, &sh);
    }
  free(sm);
}

/* The CUDA side: device copies of the world and of one side's buffers. */
typedef struct {
  blpo_backend *be;
  world w; /* rollout and idx device pointers */
  side s;  /* device buffers */
  int64_t *clock;
  void *work;      /* ppo_minibatch_work bytes */
  void *work_grid; /* the same, for the cooperative kernel's run (g_grid) */
} cuda_side;

static void *dev_copy(blpo_backend *be, const void *src, size_t bytes) {
  void *p = be->alloc(be, bytes ? bytes : 4);
  if (!p) {
    fprintf(stderr, "device allocation of %zu bytes failed\n", bytes);
    exit(2);
  }
  be->upload(be, p, src, bytes);
  return p;
}

static void cuda_side_init(cuda_side *g, blpo_backend *be, const world *w, side *host, int n,
                           const field *f, size_t nf) {
  g->be = be;
  g->w = *w;
  int O = w->d.obs_dim, A = w->d.act_dim;
  size_t F = sizeof(float);
  g->w.obs = dev_copy(be, w->obs, w->rows * O * F);
  g->w.act = dev_copy(be, w->act, w->rows * A * F);
  g->w.logp = dev_copy(be, w->logp, w->rows * F);
  g->w.adv = dev_copy(be, w->adv, w->rows * F);
  g->w.ret = dev_copy(be, w->ret, w->rows * F);
  g->w.val = dev_copy(be, w->val, w->rows * F);
  g->w.idx = dev_copy(be, w->idx, 2 * (size_t)w->d.P * T_STEPS * N_ENVS * sizeof(int32_t));
  g->clock = dev_copy(be, &w->clock, sizeof(int64_t));
  memset(&g->s, 0, sizeof(g->s));
  for (size_t k = 0; k < nf; k++)
    *(float **)((char *)&g->s + f[k].off) = dev_copy(be, member(host, &f[k]), f[k].count * F);
  /* the scratch is no field (both sides' scratch may differ) */
  g->s.scratch = dev_copy(be, host->scratch, (size_t)w->d.P * n * 2 * w->mw * F);
}

static void cuda_side_free(cuda_side *g, const field *f, size_t nf) {
  blpo_backend *be = g->be;
  void *ps[] = {g->w.obs, g->w.act, g->w.logp,    g->w.adv, g->w.ret,    g->w.val,
                g->w.idx, g->clock, g->s.scratch, g->work,  g->work_grid};
  for (size_t k = 0; k < sizeof(ps) / sizeof(ps[0]); k++)
    if (ps[k])
      be->release(be, ps[k]);
  for (size_t k = 0; k < nf; k++)
    be->release(be, member(&g->s, &f[k]));
}

/* ---- comparisons ---------------------------------------------------------- */

/* Tolerance-mode check of one field; base: the ops side before the update. */
static void check_close(const mb_case *c, const char *side_name, int which, const field *f,
                        const float *x, const float *y, const float *base) {
  const char *name = f->name;
  if (!strcmp(name, "stats")) {
    const float st = g_tf32 ? 2e-3f : 1e-4f;
    for (size_t i = 0; i < f->count; i++)
      if (!(fabsf(x[i] - y[i]) <= st * (1.0f + fabsf(y[i])))) {
        CHECK(0, "%s, %s, update %d: stats[%zu] %g, ops %g", c->name, side_name, which + 1, i,
              (double)x[i], (double)y[i]);
        return;
      }
    return;
  }
  int direct = !strcmp(name, "ag") || !strcmp(name, "cg") || !strcmp(name, "sa") ||
               !strcmp(name, "sc") || !strcmp(name, "scale");
  double e = test_rel_norm_err(x, y, direct ? NULL : base, f->count),
         tol = g_tf32 ? (direct ? 5e-3 : 1e-2) : (direct ? 1e-4 : 1e-3);
  if (g_tf32 && getenv("BLPO_TEST_VERBOSE"))
    printf("%s, %s, TF32, update %d: %s off by %.3g\n", c->name, side_name, which + 1, name, e);
  CHECK(e <= tol, "%s, %s, update %d: %s off by %.3g of its norm%s (tolerance %g)", c->name,
        side_name, which + 1, name, e, direct ? "" : " (the update's change)", tol);
}

/* The fields a tolerance mode compares: the op's results, not its workspaces. */
static int is_result(const char *name) {
  const char *r[] = {"ap", "ag", "am", "av", "cp", "cg", "cm", "cv", "stats", "sa", "sc", "scale"};
  for (size_t k = 0; k < sizeof(r) / sizeof(r[0]); k++)
    if (!strcmp(name, r[k]))
      return 1;
  return 0;
}

/* kind: SIDE_CPU on `threads` threads, SIDE_BLOCKS with R rows per block, or
 * SIDE_CUDA on gpu (NULL: no device, nothing to do). */
static void check_case(const mb_case *c, int kind, int threads, int R, blpo_backend *gpu) {
  /* epoch: agent p's second minibatch reads draws p T N + n .. + 2n, which
   * the world's 2 P T N draws must hold */
  if (g_epoch && 2 * c->n > (c->P + 1) * T_STEPS * N_ENVS) {
    CHECK(0, "%s: %d rows do not fit twice in the index draws", c->name, c->n);
    return;
  }
  blpo_backend *be = blpo_backend_cpu_create(threads);
  CHECK(be && be->ppo_minibatch, "the CPU backend has a fused minibatch update");
  if (!be || !be->ppo_minibatch)
    return;
  world w;
  world_init(&w, c);
  side ops, fused, alt; /* alt: the fused side without the grid schedule */
  side_alloc(&ops, &w, c->n);
  side_alloc(&fused, &w, c->n);
  side_alloc(&alt, &w, c->n);
  field f[32];
  size_t nf = fields_of(&w, c->n, f);
  /* the outputs poisoned apart, then the starting state shared */
  for (size_t k = 0; k < nf; k++) {
    test_poison_nan(member(&ops, &f[k]), f[k].count, 1);
    test_poison_nan(member(&fused, &f[k]), f[k].count, 2);
  }
  int P = c->P;
  for (size_t k = 0; k < P * w.Na; k++) {
    ops.ap[k] = (float)(0.4 * nrand());
    ops.am[k] = (float)(1e-3 * nrand());
    ops.av[k] = (float)(1e-5 * urand());
  }
  for (size_t k = 0; k < P * w.Nc; k++) {
    ops.cp[k] = (float)(0.4 * nrand());
    ops.cm[k] = (float)(1e-3 * nrand());
    ops.cv[k] = (float)(1e-5 * urand());
  }
  if (!w.d.discrete) /* log_std */
    for (int p = 0; p < P; p++)
      for (int j = 0; j < w.d.act_dim; j++)
        ops.ap[p * w.Na + w.actor.num_mlp_params + j] = -0.5f;
  for (int k = 0; k < P * BLPO_STAT_COUNT; k++)
    ops.stats[k] = (float)urand();
  const char *state[] = {"ap", "am", "av", "cp", "cm", "cv", "stats"};
  for (size_t k = 0; k < nf; k++)
    for (size_t s = 0; s < sizeof(state) / sizeof(state[0]); s++)
      if (!strcmp(f[k].name, state[s]))
        memcpy(member(&fused, &f[k]), member(&ops, &f[k]), f[k].count * sizeof(float));

  char side_name[96];
  const char *ep = g_epoch ? ", minibatches 0 and 1 of an epoch" : "";
  if (kind == SIDE_CPU)
    snprintf(side_name, sizeof side_name, "cpu, %d thread(s)%s", threads, ep);
  else if (kind == SIDE_BLOCKS)
    snprintf(side_name, sizeof side_name, "block programs, %d rows per block%s, grid %d%s", R,
             g_tf32 ? ", tf32" : "", g_grid, ep);
  else
    snprintf(side_name, sizeof side_name, "cuda%s%s%s", g_tf32 ? ", tf32" : "",
             g_grid ? ", grid sync" : "", ep);
  cuda_side g;
  if (kind == SIDE_CUDA) {
    cuda_side_init(&g, gpu, &w, &fused, c->n, f, nf);
    size_t wb = gpu->ppo_minibatch && gpu->ppo_minibatch_work
                    ? gpu->ppo_minibatch_work(gpu, &w.d, &w.actor, &w.critic, c->n, g_epoch ? 2 : 1)
                    : 0;
    /* one workspace per run, so that neither reads the moments the other
     * computed, both NaN to start with (alloc zeroes) */
    g.work = wb ? gpu->alloc(gpu, wb) : NULL;
    g.work_grid = wb && g_grid ? gpu->alloc(gpu, wb) : NULL;
    int ok = g.work != NULL && (!g_grid || g.work_grid != NULL);
    if (ok) {
      unsigned char *nan = malloc(wb);
      CHECK(nan != NULL, "host memory for the poison");
      if (nan) {
        memset(nan, 0xff, wb);
        gpu->upload(gpu, g.work, nan, wb);
        if (g.work_grid)
          gpu->upload(gpu, g.work_grid, nan, wb);
        free(nan);
      }
    }
    CHECK(ok, "%s: the CUDA backend runs these networks fused", c->name);
    if (!ok)
      kind = -1; /* nothing to compare */
  }
  float *before[32] = {0};
  for (size_t k = 0; k < nf; k++)
    before[k] = test_alloc_floats(f[k].count);
  void *bwork = NULL, *bwork_alt = NULL; /* the blocks side's workspaces, kept over the epoch */
  int clipped = 0;                       /* the clip active in some agent's update */
  for (int which = 0; which < 2 && kind >= 0; which++) {
    for (size_t k = 0; k < nf; k++)
      memcpy(before[k], member(&ops, &f[k]), f[k].count * sizeof(float));
    blpo_ppo_minibatch a = args_of(&w, &ops, c, which, &w.clock);
    blpo_ppo_minibatch_ops(be, &w.d, &a);
    if (kind == SIDE_CUDA) {
      blpo_ppo_minibatch b = args_of(&g.w, &g.s, c, which, g.clock);
      b.work = g.work;
      if (g_grid) /* the state before, to run it again with the cooperative kernel */
        for (size_t k = 0; k < nf; k++)
          gpu->download(gpu, member(&alt, &f[k]), member(&g.s, &f[k]), f[k].count * sizeof(float));
      gpu->ppo_minibatch(gpu, &w.d, &b);
      for (size_t k = 0; k < nf; k++)
        gpu->download(gpu, member(&fused, &f[k]), member(&g.s, &f[k]), f[k].count * sizeof(float));
      if (g_grid) {
        for (size_t k = 0; k < nf; k++)
          gpu->upload(gpu, member(&g.s, &f[k]), member(&alt, &f[k]), f[k].count * sizeof(float));
        int on = gpu->set_grid_sync && gpu->set_grid_sync(gpu, 1);
        CHECK(on, "%s: the device launches the cooperative kernel", c->name);
        b.work = g.work_grid;
        /* captured and replayed: one kernel in the graph, not the separate three or four */
        char why[256] = "";
        gpu->capture_begin(gpu);
        gpu->ppo_minibatch(gpu, &w.d, &b);
        void *gr = gpu->capture_end(gpu, why, sizeof why);
        CHECK(gr != NULL, "%s: the cooperative kernel captured as a graph (%s)", c->name, why);
        if (gr) {
          size_t kernels = 0;
          gpu->graph_count(gr, &kernels);
          CHECK(kernels == 1, "%s: the minibatch as %zu kernels with grid sync (one expected)",
                c->name, kernels);
          gpu->graph_launch(gpu, gr);
          gpu->graph_free(gpu, gr);
        } else {
          gpu->ppo_minibatch(gpu, &w.d, &b);
        }
        if (gpu->set_grid_sync)
          gpu->set_grid_sync(gpu, 0);
        for (size_t k = 0; k < nf; k++)
          gpu->download(gpu, member(&alt, &f[k]), member(&g.s, &f[k]), f[k].count * sizeof(float));
      }
    } else {
      blpo_ppo_minibatch b = args_of(&w, &fused, c, which, &w.clock);
      if (kind == SIDE_CPU)
        be->ppo_minibatch(be, &w.d, &b);
      else {
        if (g_grid) { /* first the separate programs, on a copy of the state */
          for (size_t k = 0; k < nf; k++)
            memcpy(member(&alt, &f[k]), member(&fused, &f[k]), f[k].count * sizeof(float));
          blpo_ppo_minibatch b0 = args_of(&w, &alt, c, which, &w.clock);
          run_blocks(&w.d, &b0, R, 0, &bwork_alt);
        }
        run_blocks(&w.d, &b, R, g_grid, &bwork);
        for (size_t k = 0; k < nf; k++)
          if (is_result(f[k].name)) {
            char what[160];
            snprintf(what, sizeof what, "%s, %s, update %d: %s", c->name, side_name, which + 1,
                     f[k].name);
            emu_same(what, member(&fused, &f[k]), f[k].count * sizeof(float));
          }
      }
    }
    for (size_t k = 0; g_grid && kind > SIDE_CPU && k < nf; k++)
      if (is_result(f[k].name))
        CHECK(!memcmp(member(&fused, &f[k]), member(&alt, &f[k]), f[k].count * sizeof(float)),
              "%s, %s, update %d: %s not bit-identical to the separate kernels", c->name, side_name,
              which + 1, f[k].name);
    for (size_t k = 0; k < nf; k++) {
      const float *x = member(&fused, &f[k]), *y = member(&ops, &f[k]);
      if (kind != SIDE_CPU) {
        if (is_result(f[k].name))
          check_close(c, side_name, which, &f[k], x, y, before[k]);
        continue;
      }
      size_t diff = 0, first = 0;
      for (size_t i = 0; i < f[k].count; i++)
        if (memcmp(&x[i], &y[i], sizeof(float)) && diff++ == 0)
          first = i;
      CHECK(diff == 0,
            "%s, %s, update %d: %s differs in %zu of %zu floats (first [%zu]: ops %g, "
            "fused %g)",
            c->name, side_name, which + 1, f[k].name, diff, f[k].count, first, (double)y[first],
            (double)x[first]);
    }
    for (int p = 0; p < P; p++)
      clipped |= fused.scale[p] < 1.0f;
  }
  /* the clip must have been exercised where the case asks for it */
  if (c->max_grad_norm < 1 && kind >= 0)
    CHECK(clipped, "%s, %s: the norm clip was not active in any update", c->name, side_name);
  if (kind == SIDE_CUDA || (gpu && kind < 0))
    cuda_side_free(&g, f, nf);
  for (size_t k = 0; k < nf; k++)
    free(before[k]);
  free(bwork);
  free(bwork_alt);
  side_free(&ops);
  side_free(&fused);
  side_free(&alt);
  world_free(&w);
  be->destroy(be);
}

/* The CUDA op's layout choice: the most rows per block that fit, down to 8,
 * and a refusal for networks the layout does not hold. */
static void check_choose(void) {
  blpo_dims d = {
      .P = 2, .obs_dim = 4, .act_dim = 1, .discrete = 1, .num_actions = 2, .head_dim = 2};
  int h[2] = {64, 64}, wide[2] = {512, 512};
  blpo_mlp a, c, aw, odd;
  blpo_mlp_init_shape(&a, 4, h, 2, 2, BLPO_ACT_TANH, 0);
  blpo_mlp_init_shape(&c, 4, h, 2, 1, BLPO_ACT_TANH, 0);
  blpo_mlp_init_shape(&aw, 4, wide, 2, 2, BLPO_ACT_TANH, 0);
  blpo_mlp_init_shape(&odd, 5, h, 2, 2, BLPO_ACT_TANH, 0); /* input width != obs_dim */
  blpo_mbf_layout y;
  const size_t h100 = 227 * 1024;
  CHECK(blpo_mbf_choose(&y, &d, &a, &c, 4096, h100, 0) == 32 && y.blocks == 128,
        "64-64 on 227 KiB: 32 rows per block, 128 blocks (got %d, %d)", y.R, y.blocks);
  size_t need8 = sizeof(float) * (size_t)blpo_mbf_layout_init(&y, &d, &a, &c, 4096, 8, 0);
  size_t need16 = sizeof(float) * (size_t)blpo_mbf_layout_init(&y, &d, &a, &c, 4096, 16, 0);
  CHECK(blpo_mbf_choose(&y, &d, &a, &c, 4096, need16, 0) == 16, "16 rows where 32 do not fit");
  CHECK(blpo_mbf_choose(&y, &d, &a, &c, 4096, need8, 0) == 8, "8 rows where 16 do not fit");
  CHECK(blpo_mbf_choose(&y, &d, &a, &c, 4096, need8 - 4, 0) == 0, "refused where 8 do not fit");
  CHECK(blpo_mbf_choose(&y, &d, &aw, &c, 4096, h100, 0) == 0, "512-512 refused on 227 KiB");
#if BLPO_MBF_VEC == 4
  {
    /* tf32: one dW scratch for both networks (the layer passes run one at
     * a time), still two blocks per SM on an H100 (2 x 113 KiB) */
    blpo_mbf_layout y0;
    const int f0 = blpo_mbf_layout_init(&y0, &d, &a, &c, 4096, 32, 0);
    CHECK(blpo_mbf_choose(&y, &d, &a, &c, 4096, h100, 1) == 32 && y.a.tc[1] && y.c.tc[1] &&
              y.a.s_tcw >= 0 && y.a.s_tcw == y.c.s_tcw && y.a.s_tcw % 8 == 0 &&
              y.s_floats == y.a.s_tcw + BLPO_MBF_THREADS / 32 * 256 && y0.a.s_tcw < 0 &&
              sizeof(float) * (size_t)y.s_floats <= 113 * 1024,
          "tf32: the shared dW scratch at %d of %d floats (fp32 %d)", y.a.s_tcw, y.s_floats, f0);
  }
#endif
  CHECK(blpo_mbf_choose(&y, &d, &odd, &c, 4096, h100, 0) == 0, "a mismatched input refused");
  CHECK(blpo_mbf_choose(&y, &d, &c, &c, 4096, h100, 0) == 0, "a 1-wide actor head refused");
  blpo_dims dc = d;
  dc.discrete = 0, dc.head_dim = 1; /* continuous: the actor needs its log_std */
  CHECK(blpo_mbf_choose(&y, &dc, &c, &c, 4096, h100, 0) == 0, "an actor without log_std refused");
  /* continuous with A wide enough that the log_std sums would run out of
   * threads: refused (the unfused ops take it); one fewer: accepted */
  blpo_mlp wa;
  for (int A = BLPO_MBF_THREADS - BLPO_MBF_TERMS; A <= BLPO_MBF_THREADS - BLPO_MBF_TERMS + 1; A++) {
    blpo_dims dw = d;
    dw.discrete = 0, dw.num_actions = 0, dw.act_dim = dw.head_dim = A;
    int hs[1] = {16};
    blpo_mlp_init_shape(&wa, 4, hs, 1, A, BLPO_ACT_TANH, A);
    blpo_mlp_init_shape(&c, 4, hs, 1, 1, BLPO_ACT_TANH, 0);
    int got = blpo_mbf_choose(&y, &dw, &wa, &c, 256, h100, 0);
    if (A <= BLPO_MBF_THREADS - BLPO_MBF_TERMS)
      CHECK(got > 0, "%d actions: fused (got %d)", A, got);
    else
      CHECK(got == 0, "%d actions: refused, one log_std sum per thread (got %d)", A, got);
  }
}

int main(int argc, char **argv) {
  int cuda = argc > 1 && !strcmp(argv[1], "--cuda");
  const mb_case cases[] = {
      {"CartPole tanh 64-64, 1024 rows (8 chunks)",
       BLPO_ENV_CARTPOLE,
       BLPO_ACT_TANH,
       1,
       1024,
       {64, 64},
       2,
       {64, 64},
       2,
       1,
       0,
       0.5f},
      {"Acrobot relu 48-40 / 80-24, 1000 rows (7 chunks), value clip",
       BLPO_ENV_ACROBOT,
       BLPO_ACT_RELU,
       2,
       1000,
       {48, 40},
       2,
       {80, 24},
       2,
       1,
       1,
       0.5f},
      {"Pendulum tanh 64 / 32-32-32, 2100 rows (16 chunks), raw advantages",
       BLPO_ENV_PENDULUM,
       BLPO_ACT_TANH,
       1,
       2100,
       {64},
       1,
       {32, 32, 32},
       3,
       0,
       0,
       1e9f},
      {"MountainCarContinuous tanh 17 / 20, 100 rows (1 chunk)",
       BLPO_ENV_MOUNTAINCAR_CONTINUOUS,
       BLPO_ACT_TANH,
       3,
       100,
       {17},
       1,
       {20},
       1,
       1,
       1,
       0.5f},
      {"MountainCar relu 24-24, 300 rows (2 chunks), 3 agents",
       BLPO_ENV_MOUNTAINCAR,
       BLPO_ACT_RELU,
       3,
       300,
       {24, 24},
       2,
       {24, 24},
       2,
       1,
       0,
       0.5f},
  };
  const size_t nc = sizeof(cases) / sizeof(cases[0]);
  if (cuda) {
#ifdef BLPO_WITH_CUDA
    char why[256];
    blpo_backend *gpu = blpo_test_cuda_create(why, sizeof why);
    if (!gpu) {
      printf("test_ppo_minibatch --cuda: skipped: %s\n", why);
      return 77;
    }
    for (size_t k = 0; k < nc; k++)
      check_case(&cases[k], SIDE_CUDA, 1, 0, gpu);
    g_grid = 1; /* the cooperative kernel against the separate ones */
    for (size_t k = 0; k < nc; k++)
      check_case(&cases[k], SIDE_CUDA, 1, 0, gpu);
    g_epoch = 1; /* minibatch 1 of an epoch, both ways */
    for (g_grid = 0; g_grid < 2; g_grid++)
      for (size_t k = 0; k < nc; k++)
        check_case(&cases[k], SIDE_CUDA, 1, 0, gpu);
    g_epoch = 0;
    g_grid = 0;
    /* run.precision tf32: the kernel's WMMA tiles on the device */
    CHECK(gpu->set_gemm_precision != NULL, "the CUDA backend has set_gemm_precision");
    if (gpu->set_gemm_precision) {
      gpu->set_gemm_precision(gpu, 1);
      g_tf32 = 1;
      for (size_t k = 0; k < nc; k++)
        check_case(&cases[k], SIDE_CUDA, 1, 0, gpu);
      g_tf32 = 0;
      gpu->set_gemm_precision(gpu, 0);
    }
    gpu->destroy(gpu);
    return test_summary("test_ppo_minibatch --cuda");
#else
    printf("test_ppo_minibatch --cuda: skipped: built without the CUDA backend\n");
    return 77;
#endif
  }
  check_choose();
  const int threads[] = {1, 2, 3};
  for (size_t t = 0; t < sizeof(threads) / sizeof(threads[0]); t++)
    for (size_t k = 0; k < nc; k++)
      check_case(&cases[k], SIDE_CPU, threads[t], 0, NULL);
  g_epoch = 1;
  for (size_t k = 0; k < nc; k++)
    check_case(&cases[k], SIDE_CPU, 2, 0, NULL);
  g_epoch = 0;
  const int rows[] = {BLPO_MBF_ROWS, 8};
  const uint64_t seed = g_rng;
  for (int o = 0; o < EMU_ORDERS; o++) {
    emu_begin_order(o, seed);
    for (size_t r = 0; r < sizeof(rows) / sizeof(rows[0]); r++)
      for (size_t k = 0; k < nc; k++)
        check_case(&cases[k], SIDE_BLOCKS, 1, rows[r], NULL);
    /* the grid schedule: one block per agent (every unit in one block), 3
     * (uneven units per block), one per row block */
    const int grids[] = {1, 3, 1 << 20};
    for (size_t gi = 0; gi < sizeof(grids) / sizeof(grids[0]); gi++) {
      g_grid = grids[gi];
      for (size_t k = 0; k < nc; k++)
        check_case(&cases[k], SIDE_BLOCKS, 1, k % 2 ? 8 : BLPO_MBF_ROWS, NULL);
    }
    g_grid = 0;
    g_tf32 = 1; /* TF32 tiles at 32 rows per block (the cases with 16-wide layers) */
    for (size_t k = 0; k < nc; k++)
      if (k == 0 || k == 2)
        check_case(&cases[k], SIDE_BLOCKS, 1, BLPO_MBF_ROWS, NULL);
    g_grid = 3;
    check_case(&cases[0], SIDE_BLOCKS, 1, BLPO_MBF_ROWS, NULL);
    g_grid = 0;
    g_tf32 = 0;
    /* minibatch 1 of an epoch: the separate programs, then the grid
     * schedule with 3 blocks and one per row block */
    g_epoch = 1;
    const int epoch_grids[] = {0, 3, 1 << 20};
    for (size_t gi = 0; gi < sizeof(epoch_grids) / sizeof(epoch_grids[0]); gi++) {
      g_grid = epoch_grids[gi];
      for (size_t k = 0; k < nc; k++)
        check_case(&cases[k], SIDE_BLOCKS, 1, k % 2 ? 8 : BLPO_MBF_ROWS, NULL);
    }
    g_grid = 0;
    g_epoch = 0;
  }
  emu_seen_free();
  return test_summary("test_ppo_minibatch");
}
