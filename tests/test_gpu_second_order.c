/* The CUDA backend's nested-critic / BLPO operations (kernels/backend_cuda_second_order.cu,
 * kernels/second_order_cuda.cu) against the CPU reference backend: axpy, dot,
 * value_loss, blpo_actor and mixed_head (discrete and continuous heads),
 * mlp_tangent (tanh and relu, K = 1 and 3), critic_hvp, critic_hvp_rows,
 * nystrom_solve (interleaved eigen cut-off, full rank, all-cut fallback), cg_solve
 * (fixed count, early stop, negative curvature), dense_solve (incl. a singular
 * agent) and hypergrad_combine. Needs a CUDA device: exits 77 (CTest
 * SKIP_RETURN_CODE) with a one-line "SKIP: reason" when there is none.
 *
 * Every op gets fresh random inputs (never all zeros), P = 3 agents, row counts
 * that are not multiples of 32, a small critic (obs 4, hidden 16,16, Np = 369);
 * the same inputs go to both backends, the GPU outputs are poisoned with NaN
 * first, and each output is compared as |gpu - cpu| / |cpu| (2-norms; NaN never
 * passes; an all-zero CPU output is compared absolutely). Float32 kernels with
 * different summation orders and FMA contraction agree to ~1e-6, so the bound
 * is 1e-4; the solves use 1e-3 (see each). The stats slots an op writes are
 * compared as increments over random non-zero starting values; every other slot
 * must be left bit-for-bit unchanged. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blpo/backend.h"
#include "blpo/heads.h"
#include "blpo/second_order.h"
#include "cuda_test_backend.h"
#include "test_util.h"

enum { P = 3 };
static const double TOL = 1e-4;
/* Solves: different (but both backward-stable) eigen/LU algorithms in float on
 * systems with condition numbers up to ~1e2: errors ~1e-5, bound 1e-3. */
static const double TOL_SOLVE = 1e-3;

static blpo_backend *cpu, *gpu;

/* ---- buffers on both backends -------------------------------------------- */

typedef struct {
  float *c, *g; /* CPU (host) and GPU (device) copies */
  size_t n;
} pair;

static void *xalloc(blpo_backend *be, size_t bytes) {
  void *p = be->alloc(be, bytes ? bytes : 4);
  if (!p) {
    fprintf(stderr, "%s: alloc of %zu bytes failed\n", be->name, bytes);
    exit(2);
  }
  return p;
}

static float *hmalloc(size_t n) {
  float *p = malloc(sizeof(float) * (n ? n : 1));
  if (!p) {
    fprintf(stderr, "out of memory\n");
    exit(2);
  }
  return p;
}

/* host NULL: an output, NaN on both sides until written. */
static pair pair_new(size_t n, const float *host) {
  pair p = {xalloc(cpu, sizeof(float) * n), xalloc(gpu, sizeof(float) * n), n};
  if (host) {
    cpu->upload(cpu, p.c, host, sizeof(float) * n);
    gpu->upload(gpu, p.g, host, sizeof(float) * n);
  } else {
    cpu->fill(cpu, p.c, NAN, n);
    gpu->fill(gpu, p.g, NAN, n);
  }
  return p;
}

static void pair_set(pair p, const float *host) {
  cpu->upload(cpu, p.c, host, sizeof(float) * p.n);
  gpu->upload(gpu, p.g, host, sizeof(float) * p.n);
}

static void poison(pair p) { gpu->fill(gpu, p.g, NAN, p.n); }

static void pair_free(pair *p) {
  cpu->release(cpu, p->c);
  gpu->release(gpu, p->g);
  p->c = p->g = NULL;
}

typedef struct {
  int32_t *c, *g;
} ipair;

static ipair ipair_new(size_t n, const int32_t *host) {
  ipair p = {xalloc(cpu, sizeof(int32_t) * n), xalloc(gpu, sizeof(int32_t) * n)};
  cpu->upload(cpu, p.c, host, sizeof(int32_t) * n);
  gpu->upload(gpu, p.g, host, sizeof(int32_t) * n);
  return p;
}

static void ipair_free(ipair *p) {
  cpu->release(cpu, p->c);
  gpu->release(gpu, p->g);
}

static float *download(const pair *p) {
  float *h = hmalloc(p->n);
  gpu->download(gpu, h, p->g, sizeof(float) * p->n);
  return h;
}

/* ---- random inputs ----------------------------------------------------------- */

static float *h_normal(size_t n, double scale) {
  float *h = hmalloc(n);
  for (size_t i = 0; i < n; i++)
    h[i] = (float)(scale * nrand());
  return h;
}

static pair rand_pair(size_t n, double scale) {
  float *h = h_normal(n, scale);
  pair p = pair_new(n, h);
  free(h);
  return p;
}

/* ---- comparisons -------------------------------------------------------------- */

typedef struct {
  const char *name;
  double max_err;
  int fail;
} op_t;

static op_t op_begin(const char *name) {
  op_t o = {name, 0.0, 0};
  return o;
}

static void op_end(op_t *o) {
  printf("%-34s max rel err %.3e  %s\n", o->name, o->max_err, o->fail ? "FAIL" : "ok");
  fflush(stdout);
  if (o->fail)
    g_failures++;
}

/* |g - c| / |c| over n; NaN/Inf on either side: INFINITY. */
static double rel_err(const float *g, const float *c, size_t n) {
  double d = 0, s = 0;
  for (size_t i = 0; i < n; i++) {
    if (!isfinite(g[i]) || !isfinite(c[i]))
      return INFINITY;
    double e = (double)g[i] - c[i];
    d += e * e;
    s += (double)c[i] * c[i];
  }
  return s > 0 ? sqrt(d / s) : sqrt(d);
}

static void op_err(op_t *o, const char *what, double err, double tol) {
  if (!(err <= tol)) {
    fprintf(stderr, "  %s: %s: rel err %.3e > %.0e\n", o->name, what, err, tol);
    o->fail = 1;
  }
  if (err > o->max_err || isnan(err))
    o->max_err = isnan(err) ? INFINITY : err;
}

/* Elements [off, off + n) of the two copies. */
static void op_cmp_range(op_t *o, const char *what, const pair *p, size_t off, size_t n,
                         double tol) {
  float *g = download(p);
  op_err(o, what, rel_err(g + off, p->c + off, n), tol);
  free(g);
}

static void op_cmp(op_t *o, const char *what, const pair *p, double tol) {
  op_cmp_range(o, what, p, 0, p->n, tol);
}

/* Starting stats: random, non-zero, identical on both sides. */
static float *stats_init(pair *st) {
  float *h = hmalloc(st->n);
  for (size_t i = 0; i < st->n; i++)
    h[i] = (float)(0.25 + 0.5 * urand());
  pair_set(*st, h);
  return h;
}

/* The increments of the listed slots compared (per slot, over agents); every
 * other slot must still hold its starting value on both sides. Resets the
 * stats to init afterwards. */
static void op_stats(op_t *o, pair *st, const float *init, const int *slots, int ns, double tol) {
  float *g = download(st);
  const float *c = st->c;
  for (int s = 0; s < BLPO_STAT_COUNT; s++) {
    int listed = 0;
    for (int i = 0; i < ns; i++)
      listed |= slots[i] == s;
    float dg[P], dc[P];
    for (int p = 0; p < P; p++) {
      size_t i = (size_t)p * BLPO_STAT_COUNT + s;
      dg[p] = g[i] - init[i];
      dc[p] = c[i] - init[i];
      if (!listed && (g[i] != init[i] || c[i] != init[i])) {
        fprintf(stderr, "  %s: stat %d agent %d changed (gpu %.9g cpu %.9g start %.9g)\n", o->name,
                s, p, g[i], c[i], init[i]);
        o->fail = 1;
      }
    }
    if (listed) {
      char what[32];
      snprintf(what, sizeof what, "stat %d", s);
      /* increments are differences of O(1) floats: relative to the largest
       * CPU increment, with a floor of 1e-2 for small ones */
      double e = 0, sc = 1e-2;
      for (int p = 0; p < P; p++) {
        if (!isfinite(dg[p]) || !isfinite(dc[p]))
          e = INFINITY;
        sc = fmax(sc, fabs((double)dc[p]));
      }
      for (int p = 0; p < P && isfinite(e); p++)
        e = fmax(e, fabs((double)dg[p] - dc[p]));
      e /= sc;
      op_err(o, what, e, tol);
    }
  }
  free(g);
  pair_set(*st, init);
}

/* ---- networks ------------------------------------------------------------------ */

static void critic_shape(blpo_mlp *m, int act) {
  const int hidden[2] = {16, 16};
  blpo_mlp_init_shape(m, 4, hidden, 2, 1, act, 0);
}

/* Forward activations on the CPU, copied to the GPU copy, so that both
 * backends work from identical acts. acts (P, n, A). */
static pair forward_acts(const blpo_mlp *m, const pair *params, const pair *x, int n) {
  pair acts = pair_new((size_t)P * n * m->act_floats_per_row, NULL);
  cpu->mlp_forward(cpu, m, P, params->c, x->c, n, acts.c);
  gpu->upload(gpu, acts.g, acts.c, sizeof(float) * acts.n);
  return acts;
}

/* ---- the ops ---------------------------------------------------------------------- */

static void test_axpy_dot(void) {
  const size_t count = 1001;
  op_t o = op_begin("axpy");
  pair src = rand_pair(P * count, 1.0), dst = rand_pair(P * count, 1.0);
  cpu->axpy(cpu, P, count, 0.37f, src.c, dst.c);
  gpu->axpy(gpu, P, count, 0.37f, src.g, dst.g);
  op_cmp(&o, "dst", &dst, TOL);
  op_end(&o);

  o = op_begin("dot");
  pair out = pair_new(P, NULL);
  poison(out);
  cpu->dot(cpu, P, count, src.c, dst.c, out.c);
  gpu->dot(gpu, P, count, src.g, dst.g, out.g);
  op_cmp(&o, "out", &out, TOL);
  op_end(&o);
  pair_free(&src);
  pair_free(&dst);
  pair_free(&out);
}

static void test_value_loss(pair *st, const float *init) {
  const int n = 37;
  const size_t vs = 45; /* value agent stride > n, as in the activation workspace */
  op_t o = op_begin("value_loss");
  pair value = rand_pair(P * vs, 1.0), target = rand_pair((size_t)P * n, 1.0);
  pair dv = pair_new((size_t)P * n, NULL);
  poison(dv);
  cpu->value_loss(cpu, P, n, value.c, vs, target.c, dv.c, st->c, BLPO_STAT_CRITIC_LOSS_BEFORE);
  gpu->value_loss(gpu, P, n, value.g, vs, target.g, dv.g, st->g, BLPO_STAT_CRITIC_LOSS_BEFORE);
  op_cmp(&o, "dvalue", &dv, TOL);
  int slot[1] = {BLPO_STAT_CRITIC_LOSS_BEFORE};
  op_stats(&o, st, init, slot, 1, TOL);
  /* slot -1: dvalue written, no stat touched */
  poison(dv);
  cpu->value_loss(cpu, P, n, value.c, vs, target.c, dv.c, st->c, -1);
  gpu->value_loss(gpu, P, n, value.g, vs, target.g, dv.g, st->g, -1);
  op_cmp(&o, "dvalue (slot -1)", &dv, TOL);
  op_stats(&o, st, init, NULL, 0, TOL);
  op_end(&o);
  pair_free(&value);
  pair_free(&target);
  pair_free(&dv);
}

/* Inputs shared by blpo_actor and mixed_head. */
typedef struct {
  blpo_dims d;
  blpo_mlp am;
  int T, m, n;
  size_t hs, vs, ls; /* agent strides of head, value, value_last */
  pair aparams, head, value, vlast, actions, logp_old, reward, done, target;
} actor_case;

static void actor_case_new(actor_case *a, int discrete) {
  memset(a, 0, sizeof(*a));
  a->T = 7;
  a->m = 5;
  a->n = a->T * a->m; /* 35 */
  blpo_dims *d = &a->d;
  d->P = P;
  d->N = a->m;
  d->T = a->T;
  d->obs_dim = 4;
  d->discrete = discrete;
  d->num_actions = discrete ? 3 : 0;
  d->act_dim = discrete ? 1 : BLPO_ENV_MAX_ACT;
  d->head_dim = discrete ? 3 : d->act_dim;
  int Y = d->head_dim, A = d->act_dim, n = a->n;
  const int hidden[2] = {16, 16};
  blpo_mlp_init_shape(&a->am, 4, hidden, 2, Y, BLPO_ACT_TANH, discrete ? 0 : A);
  size_t np = a->am.num_params;
  a->hs = (size_t)n * Y + 3;
  a->vs = (size_t)n + 4;
  a->ls = (size_t)a->m + 2;
  float *params = h_normal(P * np, 0.3);
  float *head = h_normal(P * a->hs, 1.0);
  float *act = hmalloc((size_t)P * n * A), *lpo = hmalloc((size_t)P * n);
  float *done = hmalloc((size_t)P * n);
  for (int p = 0; p < P; p++)
    for (int i = 0; i < n; i++) {
      size_t r = (size_t)p * n + i;
      const float *z = head + p * a->hs + (size_t)i * Y;
      float lp;
      if (discrete) {
        int ai = (int)(urand() * Y);
        if (ai >= Y)
          ai = Y - 1;
        act[r] = (float)ai;
        blpo_cat_stats(z, Y, ai, &lp, NULL, NULL);
      } else {
        for (int k = 0; k < A; k++)
          act[r * A + k] = (float)(z[k] + 0.8 * nrand());
        lp = blpo_gauss_logp(z, params + p * np + a->am.num_mlp_params, act + r * A, A);
      }
      /* ratios exp(0.3 N(0,1)): inside and outside both clip ranges */
      lpo[r] = lp - (float)(0.3 * nrand());
      done[r] = urand() < 0.2 ? 1.0f : 0.0f;
    }
  a->aparams = pair_new(P * np, params);
  a->head = pair_new(P * a->hs, head);
  a->actions = pair_new((size_t)P * n * A, act);
  a->logp_old = pair_new((size_t)P * n, lpo);
  a->done = pair_new((size_t)P * n, done);
  a->value = rand_pair(P * a->vs, 1.0);
  a->vlast = rand_pair(P * a->ls, 1.0);
  a->reward = rand_pair((size_t)P * n, 1.0);
  a->target = rand_pair((size_t)P * n, 1.0);
  free(params);
  free(head);
  free(act);
  free(lpo);
  free(done);
}

static void actor_case_free(actor_case *a) {
  pair *ps[] = {&a->aparams,  &a->head,   &a->value, &a->vlast, &a->actions,
                &a->logp_old, &a->reward, &a->done,  &a->target};
  for (size_t i = 0; i < sizeof(ps) / sizeof(ps[0]); i++)
    pair_free(ps[i]);
}

/* A (P, Np) gradient with random contents on both sides, the GPU's extra
 * (log_std) part of every agent poisoned: the op must write exactly that part
 * (continuous) and leave the MLP part alone. */
static pair grad_with_poisoned_extra(const blpo_mlp *am) {
  size_t np = am->num_params;
  pair g = rand_pair(P * np, 1.0);
  if (am->num_extra)
    for (int p = 0; p < P; p++)
      gpu->fill(gpu, g.g + p * np + am->num_mlp_params, NAN, am->num_extra);
  return g;
}

static void test_blpo_actor(pair *st, const float *init, int discrete) {
  actor_case a;
  actor_case_new(&a, discrete);
  op_t o = op_begin(discrete ? "blpo_actor (discrete)" : "blpo_actor (continuous)");
  int n = a.n, m = a.m, Y = a.d.head_dim;
  pair dhead = pair_new((size_t)P * n * Y, NULL), agrad = grad_with_poisoned_extra(&a.am);
  pair vbar = pair_new((size_t)P * n, NULL), vbl = pair_new((size_t)P * m, NULL);
  pair rho = pair_new((size_t)P * n, NULL), adv = pair_new((size_t)P * n, NULL);
  pair af = pair_new((size_t)P * n, NULL), resid = pair_new((size_t)P * n, NULL);
  const float gamma = 0.99f, lambda = 0.95f, eps = 0.2f, eps_f = 0.1f;
  cpu->blpo_actor(cpu, &a.d, &a.am, a.aparams.c, a.T, m, a.head.c, a.hs, a.value.c, a.vs, a.vlast.c,
                  a.ls, a.actions.c, a.logp_old.c, a.reward.c, a.done.c, a.target.c, gamma, lambda,
                  eps, eps_f, dhead.c, agrad.c, vbar.c, vbl.c, rho.c, adv.c, af.c, resid.c, st->c);
  gpu->blpo_actor(gpu, &a.d, &a.am, a.aparams.g, a.T, m, a.head.g, a.hs, a.value.g, a.vs, a.vlast.g,
                  a.ls, a.actions.g, a.logp_old.g, a.reward.g, a.done.g, a.target.g, gamma, lambda,
                  eps, eps_f, dhead.g, agrad.g, vbar.g, vbl.g, rho.g, adv.g, af.g, resid.g, st->g);
  op_cmp(&o, "dhead", &dhead, TOL);
  op_cmp(&o, "actor_grad", &agrad, TOL);
  op_cmp(&o, "vbar", &vbar, TOL);
  op_cmp(&o, "vbar_last", &vbl, TOL);
  op_cmp(&o, "rho", &rho, TOL);
  op_cmp(&o, "adv", &adv, TOL);
  op_cmp(&o, "alpha_f", &af, TOL);
  op_cmp(&o, "resid", &resid, TOL);
  int slot[2] = {BLPO_STAT_ACTOR_LOSS, BLPO_STAT_CRITIC_LOSS_AFTER};
  op_stats(&o, st, init, slot, 2, TOL);
  op_end(&o);
  pair *ps[] = {&dhead, &agrad, &vbar, &vbl, &rho, &adv, &af, &resid};
  for (size_t i = 0; i < sizeof(ps) / sizeof(ps[0]); i++)
    pair_free(ps[i]);
  actor_case_free(&a);
}

static void test_mixed_head(int discrete) {
  actor_case a;
  actor_case_new(&a, discrete);
  op_t o = op_begin(discrete ? "mixed_head (discrete)" : "mixed_head (continuous)");
  int n = a.n, m = a.m, Y = a.d.head_dim;
  pair vdot = rand_pair((size_t)P * n, 1.0), vdl = rand_pair((size_t)P * m, 1.0);
  pair adv = rand_pair((size_t)P * n, 1.0), resid = rand_pair((size_t)P * n, 1.0);
  float *h = hmalloc((size_t)P * n), *hf = hmalloc((size_t)P * n);
  for (int i = 0; i < P * n; i++) {
    h[i] = (float)exp(0.3 * nrand());
    hf[i] = urand() < 0.7 ? 1.0f : 0.0f;
  }
  pair rho = pair_new((size_t)P * n, h), af = pair_new((size_t)P * n, hf);
  free(h);
  free(hf);
  pair cdot = pair_new((size_t)P * n, NULL), dhead = pair_new((size_t)P * n * Y, NULL);
  pair pg = grad_with_poisoned_extra(&a.am);
  const float gamma = 0.99f, lambda = 0.95f;
  cpu->mixed_head(cpu, &a.d, &a.am, a.aparams.c, a.T, m, a.head.c, a.hs, a.actions.c, a.done.c,
                  vdot.c, vdl.c, rho.c, adv.c, af.c, resid.c, gamma, lambda, cdot.c, dhead.c, pg.c);
  gpu->mixed_head(gpu, &a.d, &a.am, a.aparams.g, a.T, m, a.head.g, a.hs, a.actions.g, a.done.g,
                  vdot.g, vdl.g, rho.g, adv.g, af.g, resid.g, gamma, lambda, cdot.g, dhead.g, pg.g);
  op_cmp(&o, "cdot", &cdot, TOL);
  op_cmp(&o, "dhead", &dhead, TOL);
  op_cmp(&o, "p_grad", &pg, TOL);
  op_end(&o);
  pair *ps[] = {&vdot, &vdl, &adv, &resid, &rho, &af, &cdot, &dhead, &pg};
  for (size_t i = 0; i < sizeof(ps) / sizeof(ps[0]); i++)
    pair_free(ps[i]);
  actor_case_free(&a);
}

static void test_tangent(int act, int K) {
  char name[64];
  snprintf(name, sizeof name, "mlp_tangent (%s, K = %d)", act == BLPO_ACT_TANH ? "tanh" : "relu",
           K);
  op_t o = op_begin(name);
  blpo_mlp cm;
  critic_shape(&cm, act);
  const int n = 37;
  size_t np = cm.num_params;
  pair params = rand_pair(P * np, 0.7), x = rand_pair((size_t)P * n * 4, 1.0);
  pair acts = forward_acts(&cm, &params, &x, n);
  pair dirs = rand_pair(P * K * np, 1.0);
  pair ry = pair_new((size_t)P * K * n, NULL);
  size_t wc = cpu->mlp_tangent_work(&cm, n, K), wg = gpu->mlp_tangent_work(&cm, n, K);
  CHECK(wc == wg, "tangent work %zu vs %zu", wg, wc);
  pair work = pair_new(P * (wc > wg ? wc : wg), NULL);
  cpu->mlp_tangent(cpu, &cm, P, params.c, x.c, n, acts.c, K, dirs.c, ry.c, work.c);
  gpu->mlp_tangent(gpu, &cm, P, params.g, x.g, n, acts.g, K, dirs.g, ry.g, work.g);
  op_cmp(&o, "ry", &ry, TOL);
  /* the tangent workspace holds every layer's R{h_l} in the documented layout */
  if (wc == wg)
    op_cmp(&o, "R{h_l} workspace", &work, TOL);
  op_end(&o);
  pair *ps[] = {&params, &x, &acts, &dirs, &ry, &work};
  for (size_t i = 0; i < sizeof(ps) / sizeof(ps[0]); i++)
    pair_free(ps[i]);
}

/* Inputs of the HVP-based ops on the small critic. */
typedef struct {
  blpo_mlp cm;
  int n;
  pair params, x, acts, target;
} critic_case;

static void critic_case_new(critic_case *c, int act, int n) {
  critic_shape(&c->cm, act);
  c->n = n;
  size_t np = c->cm.num_params;
  c->params = rand_pair(P * np, 0.7);
  c->x = rand_pair((size_t)P * n * 4, 1.0);
  c->target = rand_pair((size_t)P * n, 2.0);
  c->acts = forward_acts(&c->cm, &c->params, &c->x, n);
}

static void critic_case_free(critic_case *c) {
  pair_free(&c->params);
  pair_free(&c->x);
  pair_free(&c->acts);
  pair_free(&c->target);
}

static pair hvp_work(const critic_case *c, int K) {
  size_t wc = cpu->critic_hvp_work(&c->cm, c->n, K), wg = gpu->critic_hvp_work(&c->cm, c->n, K);
  return pair_new(P * (wc > wg ? wc : wg), NULL);
}

static void test_critic_hvp(int act) {
  char name[64];
  snprintf(name, sizeof name, "critic_hvp (%s, K = 3)", act == BLPO_ACT_TANH ? "tanh" : "relu");
  op_t o = op_begin(name);
  critic_case c;
  critic_case_new(&c, act, 37);
  const int K = 3;
  size_t np = c.cm.num_params;
  pair dirs = rand_pair(P * K * np, 1.0), hv = pair_new(P * K * np, NULL), work = hvp_work(&c, K);
  cpu->critic_hvp(cpu, &c.cm, P, c.params.c, c.x.c, c.n, c.acts.c, c.target.c, K, dirs.c, hv.c,
                  work.c);
  gpu->critic_hvp(gpu, &c.cm, P, c.params.g, c.x.g, c.n, c.acts.g, c.target.g, K, dirs.g, hv.g,
                  work.g);
  op_cmp(&o, "hv", &hv, TOL);
  op_end(&o);

  snprintf(name, sizeof name, "critic_hvp_rows (%s, K = 5)",
           act == BLPO_ACT_TANH ? "tanh" : "relu");
  o = op_begin(name);
  const int K2 = 5;
  int32_t idx[P * K2];
  for (int p = 0; p < P; p++)
    test_distinct_indices(K2, (int)np, idx + p * K2);
  idx[0] = 0;                /* first weight */
  idx[K2 + 1] = (int)np - 1; /* the head bias */
  ipair ix = ipair_new(P * K2, idx);
  pair rows = pair_new(P * K2 * np, NULL), work2 = hvp_work(&c, K2);
  cpu->critic_hvp_rows(cpu, &c.cm, P, c.params.c, c.x.c, c.n, c.acts.c, c.target.c, K2, ix.c,
                       rows.c, work2.c);
  gpu->critic_hvp_rows(gpu, &c.cm, P, c.params.g, c.x.g, c.n, c.acts.g, c.target.g, K2, ix.g,
                       rows.g, work2.g);
  op_cmp(&o, "rows", &rows, TOL);
  op_end(&o);
  pair *ps[] = {&dirs, &hv, &work, &rows, &work2};
  for (size_t i = 0; i < sizeof(ps) / sizeof(ps[0]); i++)
    pair_free(ps[i]);
  ipair_free(&ix);
  critic_case_free(&c);
}

/* Rows C (P, k, np) whose cores C[:, idx] have prescribed spectra:
 * agent 0: -2, +-1e-9 (cut: |lambda| <= tol max|lambda|, between kept ones
 * in the ascending order), 1 .. 5 -> rank k - 2; agent 1: all in [1, 10]
 * -> rank k; agent 2: a zero core -> nothing kept, x = v / rho, one fault.
 * With ridge 3, rho (lambda + ridge) >= rho for every kept lambda, so the
 * Woodbury system is well conditioned (cond ~ 1e2). */
static void test_nystrom(pair *st, const float *init, int K) {
  /* k <= 32: batched Jacobi eigensolver; k > 32: syevd agent by agent */
  char name[64];
  snprintf(name, sizeof name, "nystrom_solve (k = %d, np = 203)", K);
  op_t o = op_begin(name);
  enum { NP = 203 };
  float *C = h_normal((size_t)P * K * NP, 0.1);
  int32_t *idx = malloc(sizeof(int32_t) * P * K);
  double *Q = malloc(sizeof(double) * K * K), *lam = malloc(sizeof(double) * K);
  for (int p = 0; p < P; p++) {
    int32_t *ix = idx + p * K;
    test_distinct_indices(K, NP, ix);
    for (int a = 0; a < K; a++) {
      if (p == 0)
        lam[a] = a == 0 ? -2.0 : a == 1 ? 1e-9 : a == 2 ? -1e-9 : 1.0 + 0.4 * (a - 3);
      else if (p == 1)
        lam[a] = 1.0 + 9.0 * urand();
      else
        lam[a] = 0.0;
    }
    test_orthogonal(K, Q);
    float *Cp = C + (size_t)p * K * NP;
    for (int a = 0; a < K; a++)
      for (int b = 0; b <= a; b++) {
        double s = 0;
        for (int q = 0; q < K; q++)
          s += Q[a * K + q] * lam[q] * Q[b * K + q];
        Cp[(size_t)a * NP + ix[b]] = Cp[(size_t)b * NP + ix[a]] = (float)s;
      }
  }
  pair rows = pair_new((size_t)P * K * NP, C);
  free(C);
  ipair ix = ipair_new(P * K, idx);
  free(idx), free(Q), free(lam);
  pair v = rand_pair((size_t)P * NP, 1.0), x = pair_new((size_t)P * NP, NULL);
  const float rho = 0.5f, ridge = 3.0f, tol = 1e-3f;
  cpu->nystrom_solve(cpu, P, NP, K, rows.c, ix.c, v.c, rho, ridge, tol, x.c, st->c);
  gpu->nystrom_solve(gpu, P, NP, K, rows.g, ix.g, v.g, rho, ridge, tol, x.g, st->g);
  for (int p = 0; p < P; p++) {
    char what[32];
    snprintf(what, sizeof what, "x agent %d", p);
    op_cmp_range(&o, what, &x, (size_t)p * NP, NP, TOL_SOLVE);
  }
  /* kept ranks and faults exactly: 10, 12, 0 and 0, 0, 1 */
  float *g = download(st);
  const int rank_exp[P] = {K - 2, K, 0}, fault_exp[P] = {0, 0, 1};
  for (int p = 0; p < P; p++) {
    size_t b = (size_t)p * BLPO_STAT_COUNT;
    float rg = g[b + BLPO_STAT_RANK] - init[b + BLPO_STAT_RANK];
    float rc = st->c[b + BLPO_STAT_RANK] - init[b + BLPO_STAT_RANK];
    float fg = g[b + BLPO_STAT_CORE_FAULTS] - init[b + BLPO_STAT_CORE_FAULTS];
    float fc = st->c[b + BLPO_STAT_CORE_FAULTS] - init[b + BLPO_STAT_CORE_FAULTS];
    if (!(fabsf(rg - rank_exp[p]) < 1e-3f && fabsf(rc - rank_exp[p]) < 1e-3f &&
          fabsf(fg - fault_exp[p]) < 1e-3f && fabsf(fc - fault_exp[p]) < 1e-3f)) {
      fprintf(stderr, "  agent %d: rank gpu %g cpu %g (want %d), faults gpu %g cpu %g (want %d)\n",
              p, rg, rc, rank_exp[p], fg, fc, fault_exp[p]);
      o.fail = 1;
    }
  }
  free(g);
  int slots[4] = {BLPO_STAT_RANK, BLPO_STAT_EIG_MIN, BLPO_STAT_EIG_MAX, BLPO_STAT_CORE_FAULTS};
  op_stats(&o, st, init, slots, 4, TOL);
  op_end(&o);
  pair_free(&rows);
  pair_free(&v);
  pair_free(&x);
  ipair_free(&ix);
}

/* Frobenius norm of each agent's dense Hessian (host, CPU reference code). */
static double dense_hessians(const critic_case *c, float *H) {
  const blpo_mlp *cm = &c->cm;
  size_t np = cm->num_params, A = cm->act_floats_per_row;
  int chunk = 32;
  float *work = hmalloc(blpo_cpu_critic_hvp_work_floats(cm, c->n, chunk));
  double mx = 0;
  for (int p = 0; p < P; p++) {
    float *Hp = H + (size_t)p * np * np;
    blpo_cpu_critic_hessian_dense(cm, c->params.c + p * np, c->x.c + (size_t)p * c->n * 4, c->n,
                                  c->acts.c + (size_t)p * c->n * A, c->target.c + (size_t)p * c->n,
                                  chunk, Hp, work);
    double s = 0;
    for (size_t i = 0; i < np * np; i++)
      s += (double)Hp[i] * Hp[i];
    mx = fmax(mx, sqrt(s));
  }
  free(work);
  return mx;
}

static void test_cg(pair *st, const float *init) {
  critic_case c;
  critic_case_new(&c, BLPO_ACT_TANH, 37);
  size_t np = c.cm.num_params;
  float *H = hmalloc((size_t)P * np * np);
  double hn = dense_hessians(&c, H);
  free(H);
  /* rho = 1.5 |H|_F >= 1.5 |H|_2: H + rho I has eigenvalues in [0.5, 2.5] rho,
   * condition <= 5, so CG converges by ~0.4 per iteration. */
  float rho = (float)(1.5 * hn);
  pair v = rand_pair(P * np, 1.0), x = pair_new(P * np, NULL), cg = pair_new(P * 4 * np, NULL);
  pair work = hvp_work(&c, 1);
  int slot[1] = {BLPO_STAT_CG_RESID};

  /* (a) a fixed 8 iterations (tol 0). The final residual (~1e-3 of |v|) is a
   * difference of O(|v|) float quantities updated recursively, so its relative
   * agreement is ~1e-4..1e-3: that stat is compared to 1e-2. */
  op_t o = op_begin("cg_solve (8 iterations)");
  cpu->cg_solve(cpu, &c.cm, P, c.params.c, c.x.c, c.n, c.acts.c, c.target.c, v.c, rho, 8, 0.0f, x.c,
                cg.c, work.c, st->c);
  gpu->cg_solve(gpu, &c.cm, P, c.params.g, c.x.g, c.n, c.acts.g, c.target.g, v.g, rho, 8, 0.0f, x.g,
                cg.g, work.g, st->g);
  op_cmp(&o, "x", &x, TOL_SOLVE);
  op_stats(&o, st, init, slot, 1, 1e-2);
  op_end(&o);

  /* (b) stopping on |r| <= 1e-4 |v| within 60 iterations: agents stop at
   * their own iteration; x agrees to the solve tolerance, and both final
   * residuals must be below the threshold. */
  o = op_begin("cg_solve (tol 1e-4)");
  poison(x);
  poison(cg);
  cpu->cg_solve(cpu, &c.cm, P, c.params.c, c.x.c, c.n, c.acts.c, c.target.c, v.c, rho, 60, 1e-4f,
                x.c, cg.c, work.c, st->c);
  gpu->cg_solve(gpu, &c.cm, P, c.params.g, c.x.g, c.n, c.acts.g, c.target.g, v.g, rho, 60, 1e-4f,
                x.g, cg.g, work.g, st->g);
  op_cmp(&o, "x", &x, TOL_SOLVE);
  {
    float *g = download(st);
    for (int p = 0; p < P; p++) {
      size_t i = (size_t)p * BLPO_STAT_COUNT + BLPO_STAT_CG_RESID;
      double rg = g[i] - init[i], rc = st->c[i] - init[i];
      if (!(rg <= 1.01e-4 && rc <= 1.01e-4 && rg > 0 && rc > 0)) {
        fprintf(stderr, "  agent %d: final residual gpu %.3e cpu %.3e\n", p, rg, rc);
        o.fail = 1;
      }
    }
    free(g);
    pair_set(*st, init);
  }
  op_end(&o);

  /* (c) H - rho I is negative definite: the first curvature is negative, CG
   * stops at once with x = 0 and residual 1. */
  o = op_begin("cg_solve (negative curvature)");
  poison(x);
  poison(cg);
  cpu->cg_solve(cpu, &c.cm, P, c.params.c, c.x.c, c.n, c.acts.c, c.target.c, v.c, -rho, 10, 1e-6f,
                x.c, cg.c, work.c, st->c);
  gpu->cg_solve(gpu, &c.cm, P, c.params.g, c.x.g, c.n, c.acts.g, c.target.g, v.g, -rho, 10, 1e-6f,
                x.g, cg.g, work.g, st->g);
  op_cmp(&o, "x (= 0)", &x, TOL);
  op_stats(&o, st, init, slot, 1, TOL);
  op_end(&o);
  pair *ps[] = {&v, &x, &cg, &work};
  for (size_t i = 0; i < sizeof(ps) / sizeof(ps[0]); i++)
    pair_free(ps[i]);
  critic_case_free(&c);
}

static void test_dense(void) {
  op_t o = op_begin("dense_solve (np = 369)");
  critic_case c;
  critic_case_new(&c, BLPO_ACT_RELU, 37);
  size_t np = c.cm.num_params;
  float *H = hmalloc((size_t)P * np * np);
  double hn = dense_hessians(&c, H);
  /* rho a power of two >= 1.5 |H|_F (condition <= 5), so that agent 2's
   * H = -rho I makes H + rho I exactly 0: singular, x = NaN on both. */
  float rho = 1.0f;
  while (rho < 1.5 * hn)
    rho *= 2.0f;
  float *H2 = H + 2 * np * np;
  memset(H2, 0, sizeof(float) * np * np);
  for (size_t i = 0; i < np; i++)
    H2[i * np + i] = -rho;
  pair hess = pair_new((size_t)P * np * np, H);
  free(H);
  pair v = rand_pair(P * np, 1.0), x = pair_new(P * np, NULL);
  cpu->dense_solve(cpu, P, np, hess.c, v.c, rho, x.c);
  gpu->dense_solve(gpu, P, np, hess.g, v.g, rho, x.g);
  op_cmp_range(&o, "x agent 0", &x, 0, np, TOL_SOLVE);
  op_cmp_range(&o, "x agent 1", &x, np, np, TOL_SOLVE);
  float *g = download(&x);
  int nan_g = 1, nan_c = 1;
  for (size_t i = 2 * np; i < 3 * np; i++) {
    nan_g &= isnan(g[i]) != 0;
    nan_c &= isnan(x.c[i]) != 0;
  }
  free(g);
  if (!nan_g || !nan_c) {
    fprintf(stderr, "  singular agent: x all NaN gpu %d cpu %d\n", nan_g, nan_c);
    o.fail = 1;
  }
  op_end(&o);
  pair_free(&hess);
  pair_free(&v);
  pair_free(&x);
  critic_case_free(&c);
}

static void test_hypergrad(pair *st, const float *init) {
  op_t o = op_begin("hypergrad_combine");
  const size_t count = 1001;
  float *g = h_normal(P * count, 1.0), *pv = h_normal(P * count, 1.0);
  /* agent 0: |p| small -> s clamps to 1; agent 1: |p| large -> s < 1;
   * agent 2: p = 0 -> s = 1, cos 0 */
  for (size_t i = 0; i < count; i++) {
    pv[i] *= 0.01f;
    pv[count + i] *= 100.0f;
    pv[2 * count + i] = 0.0f;
  }
  pair gp = pair_new(P * count, g), pp = pair_new(P * count, pv);
  free(g);
  free(pv);
  cpu->hypergrad_combine(cpu, P, count, gp.c, pp.c, 0.5f, st->c);
  gpu->hypergrad_combine(gpu, P, count, gp.g, pp.g, 0.5f, st->g);
  op_cmp(&o, "g", &gp, TOL);
  int slots[4] = {BLPO_STAT_G_NORM, BLPO_STAT_P_NORM, BLPO_STAT_SCALE, BLPO_STAT_COS};
  op_stats(&o, st, init, slots, 4, TOL);
  op_end(&o);
  pair_free(&gp);
  pair_free(&pp);
}

int main(void) {
  char why[256] = "";
  gpu = blpo_test_cuda_create(why, sizeof why);
  if (!gpu) {
    printf("SKIP: %s\n", why[0] ? why : "no CUDA backend");
    return 77;
  }
  cpu = blpo_backend_cpu_create(1);
  if (!cpu) {
    fprintf(stderr, "cannot create the CPU backend\n");
    return 1;
  }
  /* rank 12, the critic's 369 parameters (>= the Nystrom case's 203), dense */
  CHECK(cpu->reserve_solver(cpu, 3, 12, 369, 1) == 0, "cpu reserve_solver");
  CHECK(gpu->reserve_solver(gpu, 3, 12, 369, 1) == 0, "gpu reserve_solver");

  pair st = pair_new((size_t)P * BLPO_STAT_COUNT, NULL);
  float *init = stats_init(&st);

  test_axpy_dot();
  test_value_loss(&st, init);
  test_blpo_actor(&st, init, 1);
  test_blpo_actor(&st, init, 0);
  test_mixed_head(1);
  test_mixed_head(0);
  test_tangent(BLPO_ACT_TANH, 1);
  test_tangent(BLPO_ACT_TANH, 3);
  test_tangent(BLPO_ACT_RELU, 3);
  test_critic_hvp(BLPO_ACT_TANH);
  test_critic_hvp(BLPO_ACT_RELU);
  test_nystrom(&st, init, 12);
  CHECK(cpu->reserve_solver(cpu, P, 40, 369, 1) == 0, "cpu reserve_solver k = 40");
  CHECK(gpu->reserve_solver(gpu, P, 40, 369, 1) == 0, "gpu reserve_solver k = 40");
  test_nystrom(&st, init, 40);
  test_cg(&st, init);
  test_dense();
  test_hypergrad(&st, init);

  pair_free(&st);
  free(init);
  gpu->destroy(gpu);
  cpu->destroy(cpu);
  return test_summary("test_gpu_second_order");
}
