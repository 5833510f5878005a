/* The CUDA backend's first-order operations against the CPU reference
 * backend: buffers, envs, normalisation, MLP passes, policy, GAE, episode summaries, minibatch
 * gathers, PPO loss and the optimiser. Every case draws fresh random inputs
 * (never zeros), uploads the same bytes to both backends, poisons the GPU
 * outputs with NaN (fill) before the op, and compares
 * |gpu - cpu| / |cpu| < 1e-4 per output (2-norms over the array; an absolute
 * error when the CPU output is all zeros). Every element must also be finite
 * where the CPU's is finite, and NaN exactly where the CPU's is NaN, so an
 * element the kernel fails to write never passes.
 *
 * P = 3 agents, sizes that are not multiples of 32, hidden sizes (64,64) and
 * (37,19), tanh and relu, discrete (CartPole, Acrobot) and continuous
 * (Pendulum) heads. Needs a CUDA device: prints one "SKIP: <reason>" line and
 * exits 77 (CTest SKIP_RETURN_CODE) when the CUDA backend cannot be created. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blpo/backend.h"
#include "blpo/env.h"
#include "blpo/heads.h"
#include "blpo/mlp.h"
#include "cuda_test_backend.h"
#include "test_util.h"

enum { P = 3 };
static const double TOL = 1e-4;

static blpo_backend *g_cpu, *g_gpu;

/* ---- buffers on both backends -------------------------------------------- */

typedef struct {
  float *c, *g; /* CPU and GPU backend buffers */
  size_t n;     /* floats */
} pair;

static void *xmalloc(size_t bytes) {
  void *p = calloc(1, bytes ? bytes : 1);
  if (!p) {
    fprintf(stderr, "out of host memory\n");
    exit(2);
  }
  return p;
}

static pair pair_new(size_t n) {
  pair b;
  b.n = n;
  b.c = g_cpu->alloc(g_cpu, n * sizeof(float));
  b.g = g_gpu->alloc(g_gpu, n * sizeof(float));
  if (!b.c || !b.g) {
    fprintf(stderr, "alloc of %zu floats failed\n", n);
    exit(2);
  }
  return b;
}

static void pair_free(pair *b) {
  g_cpu->release(g_cpu, b->c);
  g_gpu->release(g_gpu, b->g);
  b->c = b->g = NULL;
}

static void pair_upload(pair *b, const float *h) {
  g_cpu->upload(g_cpu, b->c, h, b->n * sizeof(float));
  g_gpu->upload(g_gpu, b->g, h, b->n * sizeof(float));
}

static void pair_poison(pair *b) { g_gpu->fill(g_gpu, b->g, NAN, b->n); }

/* Makes the GPU copy equal to the CPU copy (e.g. activations computed by the
 * CPU, so later ops compare from identical inputs). */
static void pair_sync_from_cpu(pair *b) {
  float *h = xmalloc(b->n * sizeof(float));
  g_cpu->download(g_cpu, h, b->c, b->n * sizeof(float));
  g_gpu->upload(g_gpu, b->g, h, b->n * sizeof(float));
  free(h);
}

/* Host arrays of random values. */
static float *h_normal(size_t n, double scale, double shift) {
  float *h = xmalloc(n * sizeof(float));
  for (size_t i = 0; i < n; i++)
    h[i] = (float)(shift + scale * nrand());
  return h;
}
static float *h_uniform(size_t n, double lo, double hi) {
  float *h = xmalloc(n * sizeof(float));
  for (size_t i = 0; i < n; i++)
    h[i] = (float)(lo + (hi - lo) * urand());
  return h;
}
static float *h_bernoulli(size_t n, double prob) {
  float *h = xmalloc(n * sizeof(float));
  for (size_t i = 0; i < n; i++)
    h[i] = urand() < prob ? 1.0f : 0.0f;
  return h;
}

static pair pair_from(const float *h, size_t n) {
  pair b = pair_new(n);
  pair_upload(&b, h);
  return b;
}
static pair pair_normal(size_t n, double scale, double shift) {
  float *h = h_normal(n, scale, shift);
  pair b = pair_from(h, n);
  free(h);
  return b;
}
static pair pair_uniform(size_t n, double lo, double hi) {
  float *h = h_uniform(n, lo, hi);
  pair b = pair_from(h, n);
  free(h);
  return b;
}
/* An output: random contents on the CPU side, NaN on the GPU side. */
static pair pair_out(size_t n) {
  pair b = pair_normal(n, 1.0, 0.0);
  pair_poison(&b);
  return b;
}

/* The trainer's clock (schedule.h) on both backends, at iteration `iter`. */
typedef struct {
  int64_t *c, *g;
} clock_pair;

static clock_pair clock_at(int64_t iter) {
  clock_pair k;
  k.c = g_cpu->alloc(g_cpu, sizeof(int64_t));
  k.g = g_gpu->alloc(g_gpu, sizeof(int64_t));
  if (!k.c || !k.g) {
    fprintf(stderr, "clock alloc failed\n");
    exit(2);
  }
  g_cpu->upload(g_cpu, k.c, &iter, sizeof(iter));
  g_gpu->upload(g_gpu, k.g, &iter, sizeof(iter));
  return k;
}

static void clock_free(clock_pair *k) {
  g_cpu->release(g_cpu, k->c);
  g_gpu->release(g_gpu, k->g);
}

/* ---- comparisons ---------------------------------------------------------- */

typedef struct {
  char name[160];
  double max_err;
  int failed;
} op_case;

static op_case g_case;

static void case_begin(const char *fmt, const char *a, const char *b) {
  snprintf(g_case.name, sizeof g_case.name, fmt, a, b);
  g_case.max_err = 0;
  g_case.failed = 0;
}

static void case_end(void) {
  printf("%-58s rel err %.3g  %s\n", g_case.name, g_case.max_err, g_case.failed ? "FAIL" : "ok");
  fflush(stdout);
  if (g_case.failed)
    g_failures++;
}

/* Compares `blocks` blocks of `count` floats starting at off + k*stride. */
static void cmp_blocks(const char *what, const pair *b, size_t off, size_t count, size_t stride,
                       int blocks) {
  float *hc = xmalloc(b->n * sizeof(float)), *hg = xmalloc(b->n * sizeof(float));
  g_cpu->download(g_cpu, hc, b->c, b->n * sizeof(float));
  g_gpu->download(g_gpu, hg, b->g, b->n * sizeof(float));
  double num = 0, den = 0;
  long bad = 0;
  for (int k = 0; k < blocks; k++)
    for (size_t i = 0; i < count; i++) {
      size_t e = off + (size_t)k * stride + i;
      float c = hc[e], g = hg[e];
      int ok;
      if (isnan(c))
        ok = isnan(g);
      else if (isinf(c))
        ok = g == c;
      else
        ok = isfinite(g);
      if (!ok) {
        if (bad < 5)
          fprintf(stderr, "  %s: %s[%zu]: gpu %.9g cpu %.9g\n", g_case.name, what, e, g, c);
        bad++;
        continue;
      }
      if (isfinite(c)) {
        double dd = (double)g - (double)c;
        num += dd * dd;
        den += (double)c * c;
      }
    }
  double err = den > 0 ? sqrt(num / den) : sqrt(num);
  if (bad)
    err = INFINITY;
  if (err >= TOL / 10 && err < TOL)
    fprintf(stderr, "  note: %s: %s: rel err %.3g is within 10x of the tolerance\n", g_case.name,
            what, err);
  if (!(err < TOL)) {
    g_case.failed = 1;
    fprintf(stderr, "  %s: %s: rel err %.3g (%ld non-finite / unwritten elements)\n", g_case.name,
            what, err, bad);
  }
  if (!(err <= g_case.max_err))
    g_case.max_err = err;
  free(hc);
  free(hg);
}

static void cmp(const char *what, const pair *b) { cmp_blocks(what, b, 0, b->n, 0, 1); }

/* ---- task dims ------------------------------------------------------------ */

static blpo_dims make_dims(int env_id, int N, int T) {
  const blpo_env_info *in = blpo_env_get_info((blpo_env_id)env_id);
  blpo_dims d;
  memset(&d, 0, sizeof d);
  d.P = P;
  d.N = N;
  d.T = T;
  d.env_id = env_id;
  d.obs_dim = in->obs_dim;
  d.act_dim = in->action_dim;
  d.discrete = in->discrete;
  d.num_actions = in->num_actions;
  d.head_dim = in->discrete ? in->num_actions : in->action_dim;
  d.seed = 0x123456789ull; /* seed + p crosses no word boundary; high word non-zero */
  return d;
}

static const int k_envs[] = {BLPO_ENV_CARTPOLE, BLPO_ENV_ACROBOT, BLPO_ENV_PENDULUM};
enum { NUM_ENVS = (int)(sizeof k_envs / sizeof k_envs[0]) };

/* Random valid actions (P,N,A): indices for discrete tasks. */
static float *h_actions(const blpo_dims *d, size_t rows) {
  float *h = xmalloc(rows * d->act_dim * sizeof(float));
  for (size_t i = 0; i < rows * (size_t)d->act_dim; i++)
    h[i] = d->discrete ? (float)(int)(urand() * d->num_actions) : (float)(2.5 * nrand());
  return h;
}

/* ---- cases ---------------------------------------------------------------- */

static void test_buffers(void) {
  const size_t n = 1003;
  case_begin("buffers: alloc zero / upload+download / fill%s%s", "", "");
  pair z = pair_new(n); /* both zero-filled by alloc */
  cmp("alloc", &z);
  float *hz = xmalloc(n * sizeof(float));
  g_gpu->download(g_gpu, hz, z.g, n * sizeof(float));
  for (size_t i = 0; i < n; i++)
    if (hz[i] != 0.0f) {
      fprintf(stderr, "  alloc: element %zu is %g, not 0\n", i, hz[i]);
      g_case.failed = 1;
      break;
    }
  pair r = pair_normal(n, 1.0, 0.5);
  cmp("upload", &r);
  g_cpu->fill(g_cpu, r.c + 5, 2.75f, n - 11);
  g_gpu->fill(g_gpu, r.g + 5, 2.75f, n - 11);
  g_gpu->sync(g_gpu);
  cmp("fill", &r);
  free(hz);
  pair_free(&z);
  pair_free(&r);
  case_end();
}

static void test_envs(int env_id) {
  const int N = 37, STEPS = 25;
  blpo_dims d = make_dims(env_id, N, 1);
  const blpo_env_info *info = blpo_env_get_info((blpo_env_id)env_id);
  size_t PN = (size_t)P * N, O = (size_t)d.obs_dim, A = (size_t)d.act_dim;
  size_t sbytes = PN * sizeof(blpo_env_state);
  blpo_env_state *sc = g_cpu->alloc(g_cpu, sbytes), *sg = g_gpu->alloc(g_gpu, sbytes);
  blpo_env_state *hs = xmalloc(sbytes);
  pair obs = pair_out(PN * O), fobs = pair_out(PN * O), rew = pair_out(PN), done = pair_out(PN),
       ret = pair_out(PN), trunc = pair_out(PN), act = pair_new(PN * A);

  case_begin("env_reset %s (N=37)%s", info->name, "");
  g_cpu->env_reset(g_cpu, &d, sc, obs.c);
  g_gpu->env_reset(g_gpu, &d, sg, obs.g);
  cmp("obs", &obs);
  case_end();

  case_begin("env_step %s (N=37, %s steps)", info->name, "25");
  for (int s = 0; s < STEPS; s++) {
    float *ha = h_actions(&d, PN);
    pair_upload(&act, ha);
    free(ha);
    pair_poison(&obs);
    pair_poison(&fobs);
    pair_poison(&rew);
    pair_poison(&done);
    pair_poison(&trunc);
    g_gpu->fill(g_gpu, ret.g, 12345.0f, PN); /* NaN is a legal ep_ret */
    g_cpu->env_step(g_cpu, &d, sc, act.c, obs.c, rew.c, done.c, ret.c, fobs.c, trunc.c);
    g_gpu->env_step(g_gpu, &d, sg, act.g, obs.g, rew.g, done.g, ret.g, fobs.g, trunc.g);
    cmp("obs", &obs);
    cmp("final_obs", &fobs);
    cmp("reward", &rew);
    cmp("done", &done);
    cmp("ep_ret", &ret);
    cmp("trunc", &trunc);
    /* continue from identical states so rounding cannot grow */
    g_cpu->download(g_cpu, hs, sc, sbytes);
    g_gpu->upload(g_gpu, sg, hs, sbytes);
  }
  case_end();
  /* without final_obs / trunc */
  case_begin("env_step %s (no final_obs/trunc)%s", info->name, "");
  {
    float *ha = h_actions(&d, PN);
    pair_upload(&act, ha);
    free(ha);
    pair_poison(&obs);
    pair_poison(&rew);
    pair_poison(&done);
    g_cpu->env_step(g_cpu, &d, sc, act.c, obs.c, rew.c, done.c, ret.c, NULL, NULL);
    g_gpu->env_step(g_gpu, &d, sg, act.g, obs.g, rew.g, done.g, ret.g, NULL, NULL);
    cmp("obs", &obs);
    cmp("reward", &rew);
    cmp("done", &done);
  }
  case_end();
  g_cpu->release(g_cpu, sc);
  g_gpu->release(g_gpu, sg);
  free(hs);
  pair_free(&obs);
  pair_free(&fobs);
  pair_free(&rew);
  pair_free(&done);
  pair_free(&ret);
  pair_free(&trunc);
  pair_free(&act);
}

/* Running-moment stats (P, 2*dim+1): mean, var > 0, count > 0. */
static pair stats_pair(int dim) {
  size_t w = (size_t)2 * dim + 1;
  float *h = xmalloc(P * w * sizeof(float));
  for (int p = 0; p < P; p++) {
    for (int j = 0; j < dim; j++) {
      h[p * w + j] = (float)nrand();
      h[p * w + dim + j] = (float)(0.2 + 2.0 * urand());
    }
    h[p * w + 2 * dim] = (float)(10 + (int)(200 * urand()));
  }
  pair b = pair_from(h, P * w);
  free(h);
  return b;
}

static void test_obs_norm(int N) {
  blpo_dims d = make_dims(BLPO_ENV_ACROBOT, N, 1);
  char nbuf[16];
  snprintf(nbuf, sizeof nbuf, "%d", N);
  for (int update = 1; update >= 0; update--) {
    case_begin("obs_norm (O=6, N=%s, update=%s)", nbuf, update ? "1" : "0");
    pair st = stats_pair(d.obs_dim);
    pair obs = pair_normal((size_t)P * N * d.obs_dim, 2.0, 0.7);
    g_cpu->obs_norm(g_cpu, &d, st.c, obs.c, update);
    g_gpu->obs_norm(g_gpu, &d, st.g, obs.g, update);
    cmp("stats", &st);
    cmp("obs", &obs);
    pair_free(&st);
    pair_free(&obs);
    case_end();
  }
}

static void test_reward_norm(int N) {
  blpo_dims d = make_dims(BLPO_ENV_PENDULUM, N, 1);
  char nbuf[16];
  snprintf(nbuf, sizeof nbuf, "%d", N);
  case_begin("reward_norm (N=%s)%s", nbuf, "");
  pair st = stats_pair(1);
  pair acc = pair_normal((size_t)P * N, 3.0, -1.0);
  pair rew = pair_normal((size_t)P * N, 1.0, -0.5);
  float *hd = h_bernoulli((size_t)P * N, 0.2);
  pair done = pair_from(hd, (size_t)P * N);
  free(hd);
  g_cpu->reward_norm(g_cpu, &d, st.c, acc.c, rew.c, done.c, 0.99f);
  g_gpu->reward_norm(g_gpu, &d, st.g, acc.g, rew.g, done.g, 0.99f);
  cmp("stats", &st);
  cmp("ret_acc", &acc);
  cmp("reward", &rew);
  pair_free(&st);
  pair_free(&acc);
  pair_free(&rew);
  pair_free(&done);
  case_end();
}

/* ---- networks ------------------------------------------------------------- */

typedef struct {
  const char *name;
  int in, nh, hidden[2], out, act, extra;
} net_case;

static const net_case k_nets[] = {
    {"4-64-64-2 tanh", 4, 2, {64, 64}, 2, BLPO_ACT_TANH, 0},
    {"6-37-19-3 relu", 6, 2, {37, 19}, 3, BLPO_ACT_RELU, 0},
    {"3-37-19-1 tanh +log_std", 3, 2, {37, 19}, 1, BLPO_ACT_TANH, 1},
    {"4-64-64-1 relu", 4, 2, {64, 64}, 1, BLPO_ACT_RELU, 0},
    {"5-19-1 relu (1 hidden)", 5, 1, {19, 0}, 1, BLPO_ACT_RELU, 0},
    /* too wide for the fused forward kernel: the cuBLAS path */
    {"4-512-384-2 tanh (cuBLAS forward)", 4, 2, {512, 384}, 2, BLPO_ACT_TANH, 0},
};

static void test_mlp(const net_case *nc, int n) {
  blpo_mlp m;
  blpo_mlp_init_shape(&m, nc->in, nc->hidden, nc->nh, nc->out, nc->act, nc->extra);
  size_t np = m.num_params, af = m.act_floats_per_row;
  char nbuf[16];
  snprintf(nbuf, sizeof nbuf, "%d", n);
  pair params = pair_normal((size_t)P * np, 0.3, 0.0);
  pair x = pair_normal((size_t)P * n * m.dims[0], 1.0, 0.2);
  pair acts = pair_out((size_t)P * n * af);

  case_begin("mlp_forward %s, n=%s", nc->name, nbuf);
  g_cpu->mlp_forward(g_cpu, &m, P, params.c, x.c, n, acts.c);
  g_gpu->mlp_forward(g_gpu, &m, P, params.g, x.g, n, acts.g);
  cmp("acts", &acts);
  case_end();

  case_begin("mlp_backward %s, n=%s", nc->name, nbuf);
  pair_sync_from_cpu(&acts); /* identical activations: relu masks cannot differ */
  pair dy = pair_normal((size_t)P * n * m.dims[m.num_layers], 1.0, 0.0);
  pair grad = pair_normal((size_t)P * np, 1.0, 0.0);
  pair_poison(&grad);
  pair scratch = pair_out((size_t)P * 2 * n * m.max_width);
  g_cpu->mlp_backward(g_cpu, &m, P, params.c, x.c, n, acts.c, dy.c, grad.c, scratch.c);
  g_gpu->mlp_backward(g_gpu, &m, P, params.g, x.g, n, acts.g, dy.g, grad.g, scratch.g);
  /* the MLP part only; the extra part is not the op's */
  cmp_blocks("grad", &grad, 0, m.num_mlp_params, np, P);
  case_end();

  pair_free(&params);
  pair_free(&x);
  pair_free(&acts);
  pair_free(&dy);
  pair_free(&grad);
  pair_free(&scratch);
}

/* mlp_forward_many and mlp_backward_many: three passes of two networks on
 * two row counts (as BLPO's critic on the minibatch and the last
 * observations, and its actor), each against the CPU's; then with one
 * network too wide for the fused kernels (every pass on its own). */
static void test_mlp_many(void) {
  for (int wide = 0; wide < 2; wide++) {
    const net_case *na = &k_nets[wide ? 5 : 0], *nc = &k_nets[3];
    blpo_mlp ma, mc;
    blpo_mlp_init_shape(&ma, na->in, na->hidden, na->nh, na->out, na->act, na->extra);
    blpo_mlp_init_shape(&mc, nc->in, nc->hidden, nc->nh, nc->out, nc->act, nc->extra);
    const int n[3] = {300, 37, 300};
    const blpo_mlp *ms[3] = {&mc, &mc, &ma};
    pair pc = pair_normal((size_t)P * mc.num_params, 0.3, 0.0);
    pair pa = pair_normal((size_t)P * ma.num_params, 0.3, 0.0);
    pair x[3], acts[3];
    blpo_mlp_pass fc[3], fg[3];
    for (int k = 0; k < 3; k++) {
      x[k] = pair_normal((size_t)P * n[k] * 4, 1.0, 0.2);
      acts[k] = pair_out((size_t)P * n[k] * ms[k]->act_floats_per_row);
      const pair *pp = k == 2 ? &pa : &pc;
      fc[k] = (blpo_mlp_pass){ms[k], pp->c, x[k].c, n[k], acts[k].c};
      fg[k] = (blpo_mlp_pass){ms[k], pp->g, x[k].g, n[k], acts[k].g};
    }
    const char *how = wide ? ", one too wide for the fused kernels" : "";
    case_begin("mlp_forward_many (3 passes%s)%s", how, "");
    g_cpu->mlp_forward_many(g_cpu, P, 3, fc);
    g_gpu->mlp_forward_many(g_gpu, P, 3, fg);
    for (int k = 0; k < 3; k++) {
      char name[32];
      snprintf(name, sizeof name, "acts %d", k);
      cmp(name, &acts[k]);
    }
    case_end();
    /* the backward passes of the same three, each with its own scratch;
     * then with the second critic pass added to the first (add_to_prev,
     * as BLPO's v) */
    for (int add = 0; add < 2; add++) {
      case_begin("mlp_backward_many (3 passes%s)%s", how, add ? ", pass 1 added to pass 0" : "");
      pair dy[3], grad[3], scratch[3];
      blpo_mlp_grad_pass bc[3], bg[3];
      for (int k = 0; k < 3; k++) {
        const blpo_mlp *mk = ms[k];
        const pair *pp = k == 2 ? &pa : &pc;
        pair_sync_from_cpu(&acts[k]); /* identical activations: relu masks cannot differ */
        dy[k] = pair_normal((size_t)P * n[k] * mk->dims[mk->num_layers], 1.0, 0.0);
        grad[k] = pair_out((size_t)P * mk->num_params);
        scratch[k] = pair_out((size_t)P * 2 * n[k] * mk->max_width);
        int a = add && k == 1;
        bc[k] = (blpo_mlp_grad_pass){mk,      pp->c,     x[k].c,       n[k], acts[k].c,
                                     dy[k].c, grad[k].c, scratch[k].c, a};
        bg[k] = (blpo_mlp_grad_pass){mk,      pp->g,     x[k].g,       n[k], acts[k].g,
                                     dy[k].g, grad[k].g, scratch[k].g, a};
      }
      g_cpu->mlp_backward_many(g_cpu, P, 3, bc);
      g_gpu->mlp_backward_many(g_gpu, P, 3, bg);
      for (int k = 0; k < 3; k++) {
        char name[32];
        snprintf(name, sizeof name, "grad %d", k);
        cmp_blocks(name, &grad[k], 0, ms[k]->num_mlp_params, ms[k]->num_params, P);
        pair_free(&dy[k]);
        pair_free(&grad[k]);
        pair_free(&scratch[k]);
      }
      case_end();
    }
    for (int k = 0; k < 3; k++) {
      pair_free(&x[k]);
      pair_free(&acts[k]);
    }
    pair_free(&pc);
    pair_free(&pa);
  }
}

/* An actor for the task: hidden (37,19), log_std as the extra part. */
static blpo_mlp actor_for(const blpo_dims *d) {
  blpo_mlp m;
  int hidden[2] = {37, 19};
  blpo_mlp_init_shape(&m, d->obs_dim, hidden, 2, d->head_dim, BLPO_ACT_TANH,
                      d->discrete ? 0 : d->act_dim);
  return m;
}

/* Actor params (P,Np): weights random, log_std in [-1, 0.5]. */
static float *h_actor_params(const blpo_mlp *m) {
  float *h = h_normal((size_t)P * m->num_params, 0.3, 0.0);
  for (int p = 0; p < P; p++)
    for (size_t j = 0; j < m->num_extra; j++)
      h[p * m->num_params + m->num_mlp_params + j] = (float)(-1.0 + 1.5 * urand());
  return h;
}

static void test_policy(int env_id) {
  const int N = 37;
  blpo_dims d = make_dims(env_id, N, 1);
  const blpo_env_info *info = blpo_env_get_info((blpo_env_id)env_id);
  blpo_mlp actor = actor_for(&d);
  size_t hs = (size_t)N * d.head_dim + 7; /* head agent stride, as in an act workspace */
  float *hp = h_actor_params(&actor);
  pair params = pair_from(hp, (size_t)P * actor.num_params);
  free(hp);
  pair head = pair_normal((size_t)P * hs, 1.5, 0.0);
  pair act = pair_out((size_t)P * N * d.act_dim), logp = pair_out((size_t)P * N);
  /* counter 7 without a clock; 0x500000003 = clock 0x50000000 * 16 + 3, read on the device */
  clock_pair clk = clock_at(0x50000000ll);
  for (int c = 0; c < 2; c++) {
    case_begin("policy_sample %s (counter %s)", info->name, c ? "0x500000003 from the clock" : "7");
    pair_poison(&act);
    pair_poison(&logp);
    blpo_counter cc = {NULL, 0, 7}, cg = cc;
    if (c) {
      cc = (blpo_counter){clk.c, 16, 3};
      cg = (blpo_counter){clk.g, 16, 3};
    }
    g_cpu->policy_sample(g_cpu, &d, &actor, params.c, head.c, hs, cc, act.c, logp.c);
    g_gpu->policy_sample(g_gpu, &d, &actor, params.g, head.g, hs, cg, act.g, logp.g);
    cmp("actions", &act);
    cmp("logp", &logp);
    case_end();
  }
  case_begin("policy_mode %s%s", info->name, "");
  pair_poison(&act);
  g_cpu->policy_mode(g_cpu, &d, head.c, hs, act.c);
  g_gpu->policy_mode(g_gpu, &d, head.g, hs, act.g);
  cmp("actions", &act);
  case_end();
  pair_free(&params);
  pair_free(&head);
  pair_free(&act);
  pair_free(&logp);
}

static void test_gae(void) {
  const int N = 37, T = 13;
  blpo_dims d = make_dims(BLPO_ENV_CARTPOLE, N, T);
  size_t TPN = (size_t)T * P * N;
  case_begin("gae (T=13, N=37)%s%s", "", "");
  pair rew = pair_normal(TPN, 1.0, 0.3), val = pair_normal(TPN, 2.0, 1.0);
  float *hd = h_bernoulli(TPN, 0.1);
  pair done = pair_from(hd, TPN);
  free(hd);
  pair last = pair_normal((size_t)P * N, 2.0, 1.0);
  pair adv = pair_out(TPN), ret = pair_out(TPN);
  g_cpu->gae(g_cpu, &d, rew.c, done.c, val.c, last.c, 0.99f, 0.95f, adv.c, ret.c);
  g_gpu->gae(g_gpu, &d, rew.g, done.g, val.g, last.g, 0.99f, 0.95f, adv.g, ret.g);
  cmp("adv", &adv);
  cmp("ret", &ret);
  pair_free(&rew);
  pair_free(&val);
  pair_free(&done);
  pair_free(&last);
  pair_free(&adv);
  pair_free(&ret);
  case_end();
}

static void test_gather_rows(int width) {
  const int n = 77, R = 503;
  const size_t idx_stride = 101;
  char wbuf[16];
  snprintf(wbuf, sizeof wbuf, "%d", width);
  case_begin("gather_rows (n=77, width=%s)%s", wbuf, "");
  int32_t *hi = xmalloc(P * idx_stride * sizeof(int32_t));
  for (size_t i = 0; i < P * idx_stride; i++)
    hi[i] = (int32_t)(urand() * R);
  size_t ibytes = P * idx_stride * sizeof(int32_t);
  int32_t *ic = g_cpu->alloc(g_cpu, ibytes), *ig = g_gpu->alloc(g_gpu, ibytes);
  g_cpu->upload(g_cpu, ic, hi, ibytes);
  g_gpu->upload(g_gpu, ig, hi, ibytes);
  pair src = pair_normal((size_t)R * width, 1.0, 0.1);
  pair dst = pair_out((size_t)P * n * width);
  /* the second minibatch of each agent's permutation: idx offset by n */
  g_cpu->gather_rows(g_cpu, P, ic + n, idx_stride, n - 60, src.c, width, dst.c);
  g_gpu->gather_rows(g_gpu, P, ig + n, idx_stride, n - 60, src.g, width, dst.g);
  cmp_blocks("dst (n=17)", &dst, 0, (size_t)P * (n - 60) * width, 0, 1);
  pair_poison(&dst);
  g_cpu->gather_rows(g_cpu, P, ic, idx_stride, n, src.c, width, dst.c);
  g_gpu->gather_rows(g_gpu, P, ig, idx_stride, n, src.g, width, dst.g);
  cmp("dst", &dst);
  g_cpu->release(g_cpu, ic);
  g_gpu->release(g_gpu, ig);
  free(hi);
  pair_free(&src);
  pair_free(&dst);
  case_end();
}

/* Four gathers of different widths and row counts from two index sets (one
 * empty) as one op, each against the CPU's. */
static void test_gather_rows_many(void) {
  enum { R = 503, NG = 4 };
  const size_t idx_stride = 101;
  case_begin("gather_rows_many (4 gathers, one empty)%s%s", "", "");
  int32_t *hi = xmalloc(P * idx_stride * sizeof(int32_t));
  for (size_t i = 0; i < P * idx_stride; i++)
    hi[i] = (int32_t)(urand() * R);
  size_t ibytes = P * idx_stride * sizeof(int32_t);
  int32_t *ic = g_cpu->alloc(g_cpu, ibytes), *ig = g_gpu->alloc(g_gpu, ibytes);
  g_cpu->upload(g_cpu, ic, hi, ibytes);
  g_gpu->upload(g_gpu, ig, hi, ibytes);
  const int width[NG] = {4, 1, 3, 2}, n[NG] = {77, 60, 0, 13}, off[NG] = {0, 7, 0, 50};
  pair src[NG], dst[NG];
  blpo_gather gc[NG], gg[NG];
  for (int k = 0; k < NG; k++) {
    src[k] = pair_normal((size_t)R * width[k], 1.0, 0.1);
    dst[k] = pair_out((size_t)P * (n[k] ? n[k] : 1) * width[k]);
    gc[k] = (blpo_gather){ic + off[k], idx_stride, n[k], width[k], src[k].c, dst[k].c};
    gg[k] = (blpo_gather){ig + off[k], idx_stride, n[k], width[k], src[k].g, dst[k].g};
  }
  g_cpu->gather_rows_many(g_cpu, P, NG, gc);
  g_gpu->gather_rows_many(g_gpu, P, NG, gg);
  for (int k = 0; k < NG; k++) {
    char name[32];
    snprintf(name, sizeof name, "dst %d", k);
    if (n[k]) /* the empty one: nothing written, nothing to compare */
      cmp(name, &dst[k]);
    pair_free(&src[k]);
    pair_free(&dst[k]);
  }
  g_cpu->release(g_cpu, ic);
  g_gpu->release(g_gpu, ig);
  free(hi);
  case_end();
}

static void test_copy_blocks(void) {
  case_begin("copy_blocks (count=37, strides 50/41)%s%s", "", "");
  pair src = pair_normal((size_t)P * 41, 1.0, 0.0);
  pair dst = pair_out((size_t)P * 50);
  g_cpu->copy_blocks(g_cpu, P, 37, dst.c, 50, src.c, 41);
  g_gpu->copy_blocks(g_gpu, P, 37, dst.g, 50, src.g, 41);
  cmp_blocks("dst", &dst, 0, 37, 50, P);
  /* P = 1 with stride 0: one contiguous copy */
  pair_poison(&dst);
  g_cpu->copy_blocks(g_cpu, 1, 3 * 41, dst.c, 0, src.c, 0);
  g_gpu->copy_blocks(g_gpu, 1, 3 * 41, dst.g, 0, src.g, 0);
  cmp_blocks("dst (P=1)", &dst, 0, 3 * 41, 0, 1);
  pair_free(&src);
  pair_free(&dst);
  case_end();
}

static void test_bootstrap(void) {
  const int N = 37;
  const size_t vs = 50;
  case_begin("bootstrap_truncated (N=37, value stride 50)%s%s", "", "");
  pair rew = pair_normal((size_t)P * N, 1.0, 0.2);
  float *ht = h_bernoulli((size_t)P * N, 0.3);
  pair trunc = pair_from(ht, (size_t)P * N);
  free(ht);
  pair val = pair_normal(P * vs, 3.0, 1.0);
  g_cpu->bootstrap_truncated(g_cpu, (size_t)P * N, rew.c, trunc.c, val.c, vs, N, 0.97f);
  g_gpu->bootstrap_truncated(g_gpu, (size_t)P * N, rew.g, trunc.g, val.g, vs, N, 0.97f);
  cmp("reward", &rew);
  pair_free(&rew);
  pair_free(&trunc);
  pair_free(&val);
  case_end();
}

/* ---- episode summaries ---------------------------------------------------- */

static int same_bits(float a, float b) { return (isnan(a) && isnan(b)) || a == b; }

/* Five agents with their own densities of ended episodes (none, one in
 * 1e5, 1e-3, 5%, all), returns in [-50, 500): count, min, max and the tail
 * (copies of inputs) bit for bit, the mean within 1e-6 (its double sum is in
 * the block's tree order). Poisoned with NaN, so the count too must be written. */
static void test_episode_summary(int T, int N) {
  enum { EP = 5 };
  const double dens[EP] = {0.0, 1e-5, 1e-3, 0.05, 1.0};
  char shape[64];
  snprintf(shape, sizeof shape, "T=%d N=%d", T, N);
  case_begin("episode_summary (%s, 5 agents)%s", shape, "");
  blpo_dims d;
  memset(&d, 0, sizeof(d));
  d.P = EP;
  d.T = T;
  d.N = N;
  size_t PN = (size_t)EP * N, n = (size_t)T * PN;
  float *h = xmalloc(n * sizeof(float));
  for (size_t k = 0; k < n; k++) {
    int p = (int)(k % PN / N);
    h[k] = urand() < dens[p] ? (float)(-50.0 + 550.0 * urand()) : NAN;
  }
  pair e = pair_from(h, n);
  size_t bytes = EP * sizeof(blpo_episode_summary);
  blpo_episode_summary *oc = g_cpu->alloc(g_cpu, bytes), *og = g_gpu->alloc(g_gpu, bytes);
  blpo_episode_summary hc[EP], hg[EP];
  g_gpu->fill(g_gpu, (float *)(void *)og, NAN, bytes / sizeof(float));
  g_cpu->episode_summary(g_cpu, &d, e.c, oc);
  g_gpu->episode_summary(g_gpu, &d, e.g, og);
  g_cpu->download(g_cpu, hc, oc, bytes);
  g_gpu->download(g_gpu, hg, og, bytes);
  for (int p = 0; p < EP; p++) {
    const blpo_episode_summary *c = &hc[p], *g = &hg[p];
    int ok = c->count == g->count && same_bits(c->min, g->min) && same_bits(c->max, g->max) &&
             isnan(c->mean) == isnan(g->mean);
    double err = isnan(c->mean) ? 0 : fabs((double)g->mean - c->mean) / fmax(fabs(c->mean), 1e-30);
    if (err > g_case.max_err)
      g_case.max_err = err;
    int bad = -1;
    for (int j = 0; j < BLPO_EPISODE_TAIL && bad < 0; j++)
      if (!same_bits(c->tail[j], g->tail[j]))
        bad = j;
    if (!ok || err > 1e-6 || bad >= 0) {
      fprintf(stderr,
              "  agent %d: count %d/%d mean %.9g/%.9g min %.9g/%.9g max %.9g/%.9g "
              "first tail difference %d (cpu/gpu)\n",
              p, c->count, g->count, c->mean, g->mean, c->min, g->min, c->max, g->max, bad);
      g_case.failed = 1;
    }
  }
  g_cpu->release(g_cpu, oc);
  g_gpu->release(g_gpu, og);
  pair_free(&e);
  free(h);
  case_end();
}

/* ---- losses --------------------------------------------------------------- */

static void test_ppo_loss(int env_id, int n, int norm_adv, int clip_value) {
  blpo_dims d = make_dims(env_id, 41, 1);
  const blpo_env_info *info = blpo_env_get_info((blpo_env_id)env_id);
  blpo_mlp actor = actor_for(&d);
  int Y = d.head_dim, A = d.act_dim;
  size_t np = actor.num_params, hs = (size_t)n * Y + 5, vs = (size_t)n + 3;
  char flags[64];
  snprintf(flags, sizeof flags, "n=%d, norm_adv=%d clip_value=%d", n, norm_adv, clip_value);
  case_begin("ppo_loss %s (%s)", info->name, flags);

  float *hp = h_actor_params(&actor);
  float *hh = h_normal(P * hs, 1.5, 0.0);
  float *ha = h_actions(&d, (size_t)P * n);
  float *hv = h_normal(P * vs, 2.0, 0.5);
  /* logp_old near the current log-probability, so some ratios clip */
  float *hl = xmalloc((size_t)P * n * sizeof(float));
  float *hvo = xmalloc((size_t)P * n * sizeof(float));
  for (int p = 0; p < P; p++) {
    const float *log_std = hp + p * np + actor.num_mlp_params;
    for (int i = 0; i < n; i++) {
      size_t r = (size_t)p * n + i;
      const float *z = hh + p * hs + (size_t)i * Y;
      float lp;
      if (!d.discrete) /* actions as sampled by the policy, not far in the tails where
                          |a - mu|/sigma ~ 10 makes logp ~ -50 and exp(logp - logp_old)
                          lose digits to rounding in both backends */
        for (int j = 0; j < A; j++)
          ha[r * A + j] = z[j] + expf(log_std[j]) * (float)nrand();
      if (d.discrete)
        blpo_cat_stats(z, d.num_actions, (int)ha[r * A], &lp, NULL, NULL);
      else
        lp = blpo_gauss_logp(z, log_std, ha + r * A, A);
      hl[r] = lp + (float)(0.25 * nrand());
      hvo[r] = hv[p * vs + i] + (float)(0.3 * nrand());
    }
  }
  pair params = pair_from(hp, (size_t)P * np), head = pair_from(hh, P * hs),
       act = pair_from(ha, (size_t)P * n * A), val = pair_from(hv, P * vs),
       lpo = pair_from(hl, (size_t)P * n), vold = pair_from(hvo, (size_t)P * n);
  pair adv = pair_normal((size_t)P * n, 1.5, 0.4), ret = pair_normal((size_t)P * n, 2.0, 0.5);
  pair dhead = pair_out((size_t)P * n * Y), dval = pair_out((size_t)P * n);
  pair agrad = pair_normal((size_t)P * np, 1.0, 0.0); /* only the log_std part is written */
  if (!d.discrete)
    for (int p = 0; p < P; p++)
      g_gpu->fill(g_gpu, agrad.g + p * np + actor.num_mlp_params, NAN, (size_t)A);
  pair stats = pair_normal((size_t)P * BLPO_STAT_COUNT, 1.0, 0.0); /* accumulated */
  blpo_ppo_params pp = {0.2f, 0.5f, 0.01f, clip_value, norm_adv};
  g_cpu->ppo_loss(g_cpu, &d, &actor, params.c, n, head.c, hs, val.c, vs, act.c, lpo.c, adv.c, ret.c,
                  vold.c, pp, dhead.c, dval.c, agrad.c, stats.c);
  g_gpu->ppo_loss(g_gpu, &d, &actor, params.g, n, head.g, hs, val.g, vs, act.g, lpo.g, adv.g, ret.g,
                  vold.g, pp, dhead.g, dval.g, agrad.g, stats.g);
  cmp("dhead", &dhead);
  cmp("dvalue", &dval);
  cmp("actor_grad", &agrad);
  cmp("stats", &stats);
  /* each stat on its own, so a small one is not hidden by the others */
  for (int s = BLPO_STAT_PG_LOSS; s <= BLPO_STAT_COUNT_MB; s++) {
    char w[32];
    snprintf(w, sizeof w, "stats[%d]", s);
    cmp_blocks(w, &stats, (size_t)s, 1, BLPO_STAT_COUNT, P);
  }
  free(hp);
  free(hh);
  free(ha);
  free(hv);
  free(hl);
  free(hvo);
  pair *all[] = {&params, &head, &act,   &val,  &lpo,   &vold,
                 &adv,    &ret,  &dhead, &dval, &agrad, &stats};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
    pair_free(all[i]);
  case_end();
}

/* ---- optimiser ------------------------------------------------------------ */

static void test_sumsq(void) {
  const size_t count = 1001;
  case_begin("sumsq (count=1001)%s%s", "", "");
  pair x = pair_normal(P * count, 0.7, 0.1);
  pair out = pair_out(P);
  g_cpu->sumsq(g_cpu, P, x.c, count, out.c);
  g_gpu->sumsq(g_gpu, P, x.g, count, out.g);
  cmp("sumsq", &out);
  pair_free(&x);
  pair_free(&out);
  case_end();
}

static void test_clip_scale(float max_norm, const char *label) {
  case_begin("clip_scale (max_norm=%s)%s", label, "");
  pair sa = pair_uniform(P, 0.1, 2.0), sc = pair_uniform(P, 0.1, 2.0);
  pair stats = pair_normal((size_t)P * BLPO_STAT_COUNT, 1.0, 0.0);
  pair scale = pair_out(P);
  g_cpu->clip_scale(g_cpu, P, sa.c, sc.c, max_norm, stats.c, scale.c);
  g_gpu->clip_scale(g_gpu, P, sa.g, sc.g, max_norm, stats.g, scale.g);
  cmp("stats", &stats);
  cmp("scale", &scale);
  pair_free(&sa);
  pair_free(&sc);
  pair_free(&stats);
  pair_free(&scale);
  case_end();
}

/* Adam with its step constants resolved on each backend from the clock:
 * iteration 7 of a run of 20 annealed iterations, step 7 * 128 + 5. */
static void test_adam(int with_scale) {
  const size_t count = 1001;
  case_begin("adam (count=1001, scale %s, schedule from the clock)%s", with_scale ? "(P)" : "NULL",
             "");
  pair w = pair_normal(P * count, 1.0, 0.0), g = pair_normal(P * count, 1.0, 0.0);
  pair m = pair_normal(P * count, 0.1, 0.0), v = pair_uniform(P * count, 0.001, 0.1);
  pair scale = pair_uniform(P, 0.3, 1.0);
  clock_pair clk = clock_at(7);
  blpo_adam_sched sc = blpo_adam_fixed(3e-3f, 0.9f, 0.999f, 1e-5f, 1), sg;
  sc.anneal_iters = 20;
  sc.step = (blpo_counter){clk.c, 128, 5};
  sg = sc;
  sg.step.clock = clk.g;
  g_cpu->adam(g_cpu, P, count, w.c, g.c, m.c, v.c, with_scale ? scale.c : NULL, sc);
  g_gpu->adam(g_gpu, P, count, w.g, g.g, m.g, v.g, with_scale ? scale.g : NULL, sg);
  cmp("params", &w);
  cmp("m", &m);
  cmp("v", &v);
  case_end();
  clock_free(&clk);
  pair_free(&w);
  pair_free(&g);
  pair_free(&m);
  pair_free(&v);
  pair_free(&scale);
}

/* The index draws: exact equality of the int32 outputs (poisoned with -1 on
 * the GPU), counters read from the clock. */
static void cmp_indices(const char *what, const int32_t *c, const int32_t *g, size_t n) {
  int32_t *hc = xmalloc(n * sizeof(int32_t)), *hg = xmalloc(n * sizeof(int32_t));
  g_cpu->download(g_cpu, hc, c, n * sizeof(int32_t));
  g_gpu->download(g_gpu, hg, g, n * sizeof(int32_t));
  size_t bad = 0;
  for (size_t i = 0; i < n; i++)
    bad += hc[i] != hg[i];
  CHECK(bad == 0, "%s: %zu of %zu indices differ (first: cpu %d gpu %d)", what, bad, n, hc[0],
        hg[0]);
  free(hc);
  free(hg);
}

static int32_t *ialloc(blpo_backend *be, size_t n) {
  int32_t *p = be->alloc(be, n * sizeof(int32_t));
  if (!p) {
    fprintf(stderr, "index alloc failed\n");
    exit(2);
  }
  return p;
}

static void ipoison(int32_t *g, size_t n) {
  int32_t *h = xmalloc(n * sizeof(int32_t));
  memset(h, 0xff, n * sizeof(int32_t));
  g_gpu->upload(g_gpu, g, h, n * sizeof(int32_t));
  free(h);
}

static void test_shuffles(void) {
  blpo_dims d = {0};
  d.P = P, d.N = 96, d.T = 13, d.seed = 41;
  int m = 8;
  size_t TN = (size_t)d.T * d.N;
  clock_pair clk = clock_at(3);
  blpo_counter cc = {clk.c, 4, 1}, cg = {clk.g, 4, 1};
  int32_t *ic = ialloc(g_cpu, P * TN), *ig = ialloc(g_gpu, P * TN);
  int32_t *lc = ialloc(g_cpu, P * d.N), *lg = ialloc(g_gpu, P * d.N);
  ipoison(ig, P * TN);
  g_cpu->shuffle_samples(g_cpu, &d, cc, ic);
  g_gpu->shuffle_samples(g_gpu, &d, cg, ig);
  cmp_indices("shuffle_samples", ic, ig, P * TN);
  ipoison(ig, P * TN);
  ipoison(lg, P * d.N);
  g_cpu->shuffle_trajectories(g_cpu, &d, m, cc, ic, lc);
  g_gpu->shuffle_trajectories(g_gpu, &d, m, cg, ig, lg);
  cmp_indices("shuffle_trajectories rows", ic, ig, P * TN);
  cmp_indices("shuffle_trajectories last", lc, lg, P * d.N);
  const int k = 10;
  ipoison(ig, 3 * P * k);
  g_cpu->sketch_indices(g_cpu, &d, 4545, k, cc, 3, ic);
  g_gpu->sketch_indices(g_gpu, &d, 4545, k, cg, 3, ig);
  cmp_indices("sketch_indices (3 draws)", ic, ig, 3 * P * k);
  printf("shuffle_samples, shuffle_trajectories, sketch_indices: compared\n");
  g_cpu->release(g_cpu, ic);
  g_gpu->release(g_gpu, ig);
  g_cpu->release(g_cpu, lc);
  g_gpu->release(g_gpu, lg);
  clock_free(&clk);
}

/* The fused rollout step: the CUDA kernel against the CPU backend's op
 * (the same per-element math; test_rollout_fused checks that op against the
 * separate ops). T = 3 steps in one launch from the same mid-episode states,
 * the action counter read from the clock; hidden (64,64) tanh and (37,19)
 * relu; with final_obs/trunc on one step; N = 67, 400, 700 and 1500 for the
 * kernel's four block sizes. Both start from the CPU's states and
 * observations, every output poisoned on the GPU. */
static void test_rollout_fused(int env_id, int wide, int with_final, int N) {
  const int T = with_final ? 1 : 3;
  blpo_dims d = make_dims(env_id, N, T);
  const blpo_env_info *info = blpo_env_get_info((blpo_env_id)env_id);
  size_t PN = (size_t)P * N, O = (size_t)d.obs_dim, A = (size_t)d.act_dim, TPN = (size_t)T * PN;
  blpo_mlp actor, critic;
  int h1[2] = {64, 64}, h2[2] = {37, 19};
  int act_fn = wide ? BLPO_ACT_TANH : BLPO_ACT_RELU;
  blpo_mlp_init_shape(&actor, d.obs_dim, wide ? h1 : h2, 2, d.head_dim, act_fn,
                      d.discrete ? 0 : d.act_dim);
  blpo_mlp_init_shape(&critic, d.obs_dim, wide ? h1 : h2, 2, 1, act_fn, 0);
  char what[64];
  snprintf(what, sizeof what, "%s, N = %d",
           with_final ? "1 step, final_obs/trunc"
                      : (wide ? "64-64 tanh, 3 steps" : "37-19 relu, 3 steps"),
           N);
  case_begin("rollout_fused %s (%s)", info->name, what);
  CHECK(g_gpu->rollout_fused_supported(g_gpu, &actor, &critic) == 2,
        "the CUDA backend should prefer the fused step for these networks");
  float *ha = h_actor_params(&actor);
  pair ap = pair_from(ha, (size_t)P * actor.num_params);
  free(ha);
  pair cp = pair_normal((size_t)P * critic.num_params, 0.3, 0.0);
  size_t sbytes = PN * sizeof(blpo_env_state);
  blpo_env_state *sc = g_cpu->alloc(g_cpu, sbytes), *sg = g_gpu->alloc(g_gpu, sbytes);
  blpo_env_state *hs = xmalloc(sbytes);
  pair obs = pair_new((TPN + PN) * O);
  /* mid-episode states: reset and 7 random steps on the CPU, then copied */
  g_cpu->env_reset(g_cpu, &d, sc, obs.c);
  pair act = pair_out(TPN * A), rew = pair_out(TPN), done = pair_out(TPN), ret = pair_out(TPN);
  for (int s = 0; s < 7; s++) {
    float *hact = h_actions(&d, PN);
    g_cpu->upload(g_cpu, act.c, hact, PN * A * sizeof(float));
    free(hact);
    g_cpu->env_step(g_cpu, &d, sc, act.c, obs.c, rew.c, done.c, ret.c, NULL, NULL);
  }
  g_cpu->download(g_cpu, hs, sc, sbytes);
  g_gpu->upload(g_gpu, sg, hs, sbytes);
  pair_sync_from_cpu(&obs);
  g_gpu->fill(g_gpu, obs.g + PN * O, NAN, TPN * O); /* the steps' outputs */
  pair logp = pair_out(TPN), val = pair_out(TPN), fobs = pair_out(PN * O), trunc = pair_out(PN);
  pair_poison(&act);
  pair_poison(&rew);
  pair_poison(&done);
  g_gpu->fill(g_gpu, ret.g, 12345.0f, TPN); /* NaN is a legal ep_ret */
  clock_pair clk = clock_at(11);
  g_cpu->rollout_fused(g_cpu, &d, &actor, ap.c, &critic, cp.c, 0, T, (blpo_counter){clk.c, T, 0},
                       sc, obs.c, act.c, logp.c, val.c, rew.c, done.c, ret.c,
                       with_final ? fobs.c : NULL, with_final ? trunc.c : NULL);
  g_gpu->rollout_fused(g_gpu, &d, &actor, ap.g, &critic, cp.g, 0, T, (blpo_counter){clk.g, T, 0},
                       sg, obs.g, act.g, logp.g, val.g, rew.g, done.g, ret.g,
                       with_final ? fobs.g : NULL, with_final ? trunc.g : NULL);
  cmp("value", &val);
  cmp("logp", &logp);
  cmp("actions", &act);
  cmp("obs", &obs);
  cmp("reward", &rew);
  cmp("done", &done);
  cmp("ep_ret", &ret);
  if (with_final) {
    cmp("final_obs", &fobs);
    cmp("trunc", &trunc);
  }
  blpo_env_state *hg = xmalloc(sbytes);
  g_cpu->download(g_cpu, hs, sc, sbytes);
  g_gpu->download(g_gpu, hg, sg, sbytes);
  size_t bad = 0;
  for (size_t e = 0; e < PN; e++)
    bad += hs[e].t != hg[e].t || hs[e].resets != hg[e].resets || hs[e].ep_len != hg[e].ep_len;
  CHECK(bad == 0, "rollout_fused %s: %zu env states' counters differ", info->name, bad);
  case_end();
  free(hg);
  free(hs);
  clock_free(&clk);
  g_cpu->release(g_cpu, sc);
  g_gpu->release(g_gpu, sg);
  pair *ps[] = {&ap, &cp, &obs, &act, &rew, &done, &ret, &logp, &val, &fobs, &trunc};
  for (size_t k = 0; k < sizeof(ps) / sizeof(ps[0]); k++)
    pair_free(ps[k]);
}

int main(void) {
  char why[256] = "";
  g_gpu = blpo_test_cuda_create(why, sizeof why);
  if (!g_gpu) {
    printf("SKIP: %s\n", why[0] ? why : "the CUDA backend could not be created");
    return 77;
  }
  g_cpu = blpo_backend_cpu_create(1);
  if (!g_cpu) {
    fprintf(stderr, "blpo_backend_cpu_create failed\n");
    g_gpu->destroy(g_gpu);
    return 1;
  }

  test_buffers();
  for (int e = 0; e < NUM_ENVS; e++)
    test_envs(k_envs[e]);
  test_obs_norm(37);
  test_obs_norm(1001);
  test_reward_norm(37);
  test_reward_norm(1001);
  for (size_t i = 0; i < sizeof k_nets / sizeof k_nets[0]; i++) {
    test_mlp(&k_nets[i], 75);
    test_mlp(&k_nets[i], 1);
  }
  test_mlp(&k_nets[1], 333);
  /* the fused passes: one block of 40 rows (backward direct), 64 blocks */
  test_mlp(&k_nets[0], 40);
  test_mlp(&k_nets[0], 4096);
  test_mlp_many();
  for (int e = 0; e < NUM_ENVS; e++)
    test_policy(k_envs[e]);
  test_gae();
  test_gather_rows(4);
  test_gather_rows(1);
  test_gather_rows_many();
  test_copy_blocks();
  test_bootstrap();
  test_episode_summary(1, 1);
  test_episode_summary(300, 1);
  test_episode_summary(7, 37);
  test_episode_summary(128, 4);   /* the paper experiment's agents */
  test_episode_summary(32, 4096); /* the 4096-env target row's */
  test_episode_summary(3, 70001); /* segments across steps, N above the threads */
  for (int e = 0; e < NUM_ENVS; e++) {
    test_ppo_loss(k_envs[e], 77, 1, 1);
    test_ppo_loss(k_envs[e], 77, 0, 0);
    test_ppo_loss(k_envs[e], 1001, 1, 0); /* several rows per thread */
  }
  test_sumsq();
  test_clip_scale(1.0f, "1.0");
  test_clip_scale(0.0f, "0 (off)");
  test_adam(1);
  test_adam(0);
  test_shuffles();
  for (int e = 0; e < NUM_ENVS; e++) {
    test_rollout_fused(k_envs[e], 1, 0, 67);
    test_rollout_fused(k_envs[e], 0, 0, 67);
    test_rollout_fused(k_envs[e], 1, 1, 67);
  }
  /* the kernel's other block sizes (rollout_blocks.h; at P = 3 on 132 SMs:
   * N = 67 takes 4 envs per block, 400 takes 8, 700 16 and 1500 32) */
  test_rollout_fused(BLPO_ENV_ACROBOT, 1, 0, 400);
  test_rollout_fused(BLPO_ENV_PENDULUM, 0, 0, 700);
  test_rollout_fused(BLPO_ENV_CARTPOLE, 1, 0, 1500);

  g_cpu->destroy(g_cpu);
  g_gpu->destroy(g_gpu);
  return test_summary("test_gpu_ops");
}
