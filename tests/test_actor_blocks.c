/* The block programs of BLPO's actor loss and mixed head
 * (include/blpo/actor_blocks.h) against the CPU backend's blpo_actor and
 * mixed_head, on random heads, actions, rewards, dones (about one step in
 * seven), values and mixed-term inputs: categorical heads of 2 and 3
 * actions and a Gaussian head with its log_std, 1 to 32 steps, 1 to 300
 * trajectories per agent (past one pass of the block's 256 threads), one
 * and three agents, padded agent strides of the head, value and last-value
 * buffers as the trainer's activations have.
 *
 * The two sides start from the same inputs; their outputs are poisoned
 * with NaN of different payloads (a value either leaves unwritten fails),
 * except the actor gradient and stats, which start equal and random (the
 * op writes only the log_std part and adds to two stats). Every output to
 * 1e-6 of its norm (only the sums over rows are in another order); threads
 * and agents in forward, reverse and strided order, the same bits each
 * time (tests/emu_order.h).
 *
 *   --cuda  (exits 77 without a device) the CUDA backend's blpo_actor and
 *           mixed_head against the CPU's. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blpo/actor_blocks.h"
#include "blpo/backend.h"
#include "blpo/mlp.h"
#include "cuda_test_backend.h"
#include "emu_order.h"
#include "test_util.h"

typedef struct {
  const char *name;
  int P, T, m, discrete, num_actions;
} ac_case;

static const ac_case kCases[] = {
    {"categorical 2, T 32, m 128, P 1", 1, 32, 128, 1, 2},
    {"categorical 3, T 5, m 300, P 3", 3, 5, 300, 1, 3},
    {"gaussian, T 32, m 40, P 3", 3, 32, 40, 0, 0},
    {"gaussian, T 1, m 1, P 1", 1, 1, 1, 0, 0},
    {"categorical 2, T 7, m 257, P 1", 1, 7, 257, 1, 2},
};

/* Every buffer of both ops, host or device: inputs, then outputs. */
enum {
  B_HEAD,   /* (P, hstride) */
  B_VALUE,  /* (P, vstride) */
  B_VLAST,  /* (P, lstride) */
  B_PARAMS, /* (P, Np) */
  B_ACT,    /* (P, n, A) */
  B_LOGP,   /* (P, n), and the four below */
  B_REW,
  B_DONE,
  B_TARGET,
  B_VDOT,
  B_VDOT_LAST, /* (P, m) */
  B_INPUTS,
  /* blpo_actor's outputs */
  B_DHEAD = B_INPUTS, /* (P, n, Y) */
  B_AGRAD,            /* (P, Np) */
  B_VBAR,             /* (P, n) */
  B_VBAR_LAST,        /* (P, m) */
  B_RHO,              /* (P, n), and the three below */
  B_ADV,
  B_ALPHA,
  B_RESID,
  B_STATS, /* (P, BLPO_STAT_COUNT) */
  /* mixed_head's */
  B_CDOT,   /* (P, n) */
  B_MDHEAD, /* (P, n, Y) */
  B_PGRAD,  /* (P, Np) */
  B_COUNT
};
static const char *const kNames[B_COUNT] = {
    "head",   "value",   "value_last", "params", "actions",    "logp_old",    "reward",    "done",
    "target", "vdot",    "vdot_last",  "dhead",  "actor_grad", "vbar",        "vbar_last", "rho",
    "adv",    "alpha_f", "resid",      "stats",  "cdot",       "mixed dhead", "p_grad"};

typedef struct {
  blpo_dims d;
  blpo_mlp actor;
  int T, m, n;
  size_t hstride, vstride, lstride;
  size_t count[B_COUNT];
} ac_world;

static void world_init(ac_world *w, const ac_case *c) {
  memset(w, 0, sizeof(*w));
  blpo_dims *d = &w->d;
  d->P = c->P, d->obs_dim = 4, d->discrete = c->discrete, d->num_actions = c->num_actions;
  d->act_dim = 1, d->head_dim = c->discrete ? c->num_actions : 1;
  int h[1] = {8};
  blpo_mlp_init_shape(&w->actor, 4, h, 1, d->head_dim, BLPO_ACT_TANH, c->discrete ? 0 : 1);
  w->T = c->T, w->m = c->m, w->n = c->T * c->m;
  size_t P = (size_t)c->P, n = (size_t)w->n, Y = (size_t)d->head_dim, Np = w->actor.num_params;
  w->hstride = n * Y + 7, w->vstride = n + 3, w->lstride = (size_t)c->m + 2;
  size_t per_n[] = {B_LOGP, B_REW, B_DONE,  B_TARGET, B_VDOT, B_VBAR,
                    B_RHO,  B_ADV, B_ALPHA, B_RESID,  B_CDOT};
  for (size_t k = 0; k < sizeof(per_n) / sizeof(per_n[0]); k++)
    w->count[per_n[k]] = P * n;
  w->count[B_HEAD] = P * w->hstride, w->count[B_VALUE] = P * w->vstride;
  w->count[B_VLAST] = P * w->lstride, w->count[B_PARAMS] = P * Np, w->count[B_ACT] = P * n;
  w->count[B_VDOT_LAST] = P * (size_t)c->m, w->count[B_VBAR_LAST] = P * (size_t)c->m;
  w->count[B_DHEAD] = w->count[B_MDHEAD] = P * n * Y;
  w->count[B_AGRAD] = w->count[B_PGRAD] = P * Np;
  w->count[B_STATS] = P * BLPO_STAT_COUNT;
}

/* Both sides' starting buffers: the same inputs, outputs poisoned with tag
 * (the gradients and stats the same random values). */
static void fill(const ac_world *w, float **b, float **other, uint32_t tag) {
  for (int k = 0; k < B_COUNT; k++)
    b[k] = test_alloc_floats(w->count[k]);
  if (other) {
    for (int k = 0; k < B_COUNT; k++)
      if (k < B_INPUTS || k == B_AGRAD || k == B_PGRAD || k == B_STATS)
        memcpy(b[k], other[k], w->count[k] * sizeof(float));
      else
        test_poison_nan(b[k], w->count[k], tag);
    return;
  }
  for (int k = 0; k < B_COUNT; k++)
    for (size_t i = 0; i < w->count[k]; i++)
      b[k][i] = (float)nrand();
  for (size_t i = 0; i < w->count[B_ACT]; i++)
    b[B_ACT][i] = w->d.discrete ? (float)(int)(urand() * w->d.num_actions) : (float)nrand();
  for (size_t i = 0; i < w->count[B_DONE]; i++)
    b[B_DONE][i] = urand() < 1.0 / 7 ? 1.0f : 0.0f;
  /* old log-probs near the policy's, so that some ratios clip */
  for (size_t i = 0; i < w->count[B_LOGP]; i++)
    b[B_LOGP][i] =
        (float)(w->d.discrete ? log(1.0 / w->d.num_actions) + 0.3 * nrand() : -1.5 + nrand());
  for (int p = 0; p < w->d.P; p++) /* log_std */
    if (!w->d.discrete)
      b[B_PARAMS][(size_t)p * w->actor.num_params + w->actor.num_mlp_params] = -0.5f;
  for (int k = B_INPUTS; k < B_COUNT; k++)
    if (k != B_AGRAD && k != B_PGRAD && k != B_STATS)
      test_poison_nan(b[k], w->count[k], tag);
  /* the mixed head reads rho, adv, alpha_f, resid: blpo_actor's outputs,
   * given here as inputs of the second op (filled by the first) */
}

static void release(float **b) {
  for (int k = 0; k < B_COUNT; k++)
    free(b[k]);
}

static const float GAMMA = 0.99f, LAMBDA = 0.95f, CLIP = 0.2f, CLIP_F = 0.3f;

static void cpu_ops(blpo_backend *be, const ac_world *w, float **b) {
  be->blpo_actor(be, &w->d, &w->actor, b[B_PARAMS], w->T, w->m, b[B_HEAD], w->hstride, b[B_VALUE],
                 w->vstride, b[B_VLAST], w->lstride, b[B_ACT], b[B_LOGP], b[B_REW], b[B_DONE],
                 b[B_TARGET], GAMMA, LAMBDA, CLIP, CLIP_F, b[B_DHEAD], b[B_AGRAD], b[B_VBAR],
                 b[B_VBAR_LAST], b[B_RHO], b[B_ADV], b[B_ALPHA], b[B_RESID], b[B_STATS]);
  be->mixed_head(be, &w->d, &w->actor, b[B_PARAMS], w->T, w->m, b[B_HEAD], w->hstride, b[B_ACT],
                 b[B_DONE], b[B_VDOT], b[B_VDOT_LAST], b[B_RHO], b[B_ADV], b[B_ALPHA], b[B_RESID],
                 GAMMA, LAMBDA, b[B_CDOT], b[B_MDHEAD], b[B_PGRAD]);
}

static void programs(const ac_world *w, float **b) {
  blpo_acb_args a =
      blpo_acb_args_of(&w->d, &w->actor, b[B_PARAMS], w->T, w->m, b[B_HEAD], w->hstride, b[B_VALUE],
                       w->vstride, b[B_VLAST], w->lstride, b[B_ACT], b[B_LOGP], b[B_REW], b[B_DONE],
                       b[B_TARGET], GAMMA, LAMBDA, CLIP, CLIP_F, b[B_DHEAD], b[B_AGRAD], b[B_VBAR],
                       b[B_VBAR_LAST], b[B_RHO], b[B_ADV], b[B_ALPHA], b[B_RESID], b[B_STATS]);
  blpo_mxb_args x =
      blpo_mxb_args_of(&w->d, &w->actor, b[B_PARAMS], w->T, w->m, b[B_HEAD], w->hstride, b[B_ACT],
                       b[B_DONE], b[B_VDOT], b[B_VDOT_LAST], b[B_RHO], b[B_ADV], b[B_ALPHA],
                       b[B_RESID], GAMMA, LAMBDA, b[B_CDOT], b[B_MDHEAD], b[B_PGRAD]);
  blpo_acb_shared *sh = malloc(sizeof(*sh));
  if (!sh)
    exit(2);
  EMU_FOR (p, w->d.P) {
    memset(sh, 0xff, sizeof(*sh)); /* NaN: a read before a write spoils the sums */
    for (int ph = 0; ph < blpo_acb_phases(); ph++)
      EMU_FOR (t, BLPO_ACB_THREADS)
        blpo_acb_block(&a, p, t, ph, sh);
  }
  EMU_FOR (p, w->d.P) {
    memset(sh, 0xff, sizeof(*sh));
    for (int ph = 0; ph < blpo_acb_phases(); ph++)
      EMU_FOR (t, BLPO_ACB_THREADS)
        blpo_mxb_block(&x, p, t, ph, sh);
  }
  free(sh);
}

/* got against want; stats0: the stats both started from. */
static void compare(const ac_case *c, const char *side, const ac_world *w, float **got,
                    float **want, const float *stats0) {
  for (int k = B_INPUTS; k < B_COUNT; k++) {
    double e = test_rel_norm_err(got[k], want[k], NULL, w->count[k]);
    CHECK(e < 1e-6, "%s, %s: %s differs by %.3e of its norm", c->name, side, kNames[k], e);
  }
  /* per stat: the two losses' increments to 1e-6 of themselves (plus the
   * rounding of adding them to the starting value), the rest unchanged */
  for (int p = 0; p < w->d.P; p++)
    for (int q = 0; q < BLPO_STAT_COUNT; q++) {
      size_t i = (size_t)p * BLPO_STAT_COUNT + q;
      float x = got[B_STATS][i], y = want[B_STATS][i], s0 = stats0[i];
      if (q == BLPO_STAT_ACTOR_LOSS || q == BLPO_STAT_CRITIC_LOSS_AFTER)
        CHECK(fabs((double)x - y) <= 1e-6 * fabs((double)y - s0) + 4e-7 * fabs((double)y),
              "%s, %s: agent %d stat %d adds %.9g, want %.9g", c->name, side, p, q, (double)x - s0,
              (double)y - s0);
      else
        CHECK(!memcmp(&x, &y, sizeof x) && !memcmp(&x, &s0, sizeof x),
              "%s, %s: agent %d stat %d (not the ops') changed", c->name, side, p, q);
    }
  for (int k = 0; k < B_INPUTS; k++)
    CHECK(!memcmp(got[k], want[k], w->count[k] * sizeof(float)), "%s, %s: input %s was written",
          c->name, side, kNames[k]);
}

static void check_blocks(const ac_case *c, blpo_backend *cpu) {
  ac_world w;
  world_init(&w, c);
  float *want[B_COUNT], *got[B_COUNT];
  fill(&w, want, NULL, 1);
  fill(&w, got, want, 2);
  float *stats0 = test_alloc_floats(w.count[B_STATS]);
  memcpy(stats0, want[B_STATS], w.count[B_STATS] * sizeof(float));
  cpu_ops(cpu, &w, want);
  programs(&w, got);
  compare(c, "block programs", &w, got, want, stats0);
  free(stats0);
  for (int k = B_INPUTS; k < B_COUNT; k++) {
    char what[160];
    snprintf(what, sizeof what, "%s: %s", c->name, kNames[k]);
    emu_same(what, got[k], w.count[k] * sizeof(float));
  }
  release(want);
  release(got);
}

#ifdef BLPO_WITH_CUDA
static void check_cuda(const ac_case *c, blpo_backend *cpu, blpo_backend *gpu) {
  ac_world w;
  world_init(&w, c);
  float *want[B_COUNT], *got[B_COUNT], *dev[B_COUNT];
  fill(&w, want, NULL, 1);
  fill(&w, got, want, 2);
  float *stats0 = test_alloc_floats(w.count[B_STATS]);
  memcpy(stats0, want[B_STATS], w.count[B_STATS] * sizeof(float));
  for (int k = 0; k < B_COUNT; k++) {
    dev[k] = gpu->alloc(gpu, w.count[k] * sizeof(float));
    gpu->upload(gpu, dev[k], got[k], w.count[k] * sizeof(float));
  }
  cpu_ops(cpu, &w, want);
  cpu_ops(gpu, &w, dev);
  for (int k = 0; k < B_COUNT; k++) {
    gpu->download(gpu, got[k], dev[k], w.count[k] * sizeof(float));
    gpu->release(gpu, dev[k]);
  }
  compare(c, "cuda", &w, got, want, stats0);
  free(stats0);
  release(want);
  release(got);
}
#endif

int main(int argc, char **argv) {
  int cuda = argc > 1 && !strcmp(argv[1], "--cuda");
  const size_t nc = sizeof(kCases) / sizeof(kCases[0]);
  blpo_backend *cpu = blpo_backend_cpu_create(1);
  if (cuda) {
#ifdef BLPO_WITH_CUDA
    char why[256];
    blpo_backend *gpu = blpo_test_cuda_create(why, sizeof why);
    if (!gpu) {
      printf("test_actor_blocks --cuda: skipped: %s\n", why);
      cpu->destroy(cpu);
      return 77;
    }
    for (size_t k = 0; k < nc; k++)
      check_cuda(&kCases[k], cpu, gpu);
    gpu->destroy(gpu);
    cpu->destroy(cpu);
    return test_summary("test_actor_blocks --cuda");
#else
    printf("test_actor_blocks --cuda: skipped: built without the CUDA backend\n");
    cpu->destroy(cpu);
    return 77;
#endif
  }
  const uint64_t seed = g_rng;
  for (int o = 0; o < EMU_ORDERS; o++) {
    emu_begin_order(o, seed);
    for (size_t k = 0; k < nc; k++)
      check_blocks(&kCases[k], cpu);
  }
  emu_seen_free();
  cpu->destroy(cpu);
  return test_summary("test_actor_blocks");
}
