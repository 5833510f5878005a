/* Gradients of the CPU backend against central finite differences in double:
 * the MLP backward pass (tanh and relu, two agents to exercise population
 * strides), PPO's combined loss through both heads (Categorical and
 * Gaussian with log_std), plus GAE, Adam and the policy sampler against
 * direct double-precision references. */
#include <math.h>
#include <string.h>

#include "blpo/backend.h"
#include "blpo/gae.h"
#include "blpo/heads.h"
#include "test_util.h"

/* ---- double reference ---------------------------------------------------- */

#define MLP_TEST_MAX_ROWS 520

static void ref_forward(const blpo_mlp *m, const double *w, const double *x, int n, double *y) {
  static double a[MLP_TEST_MAX_ROWS * 64], b[MLP_TEST_MAX_ROWS * 64];
  const double *in = x;
  for (int l = 0; l < m->num_layers; l++) {
    int din = m->dims[l], dout = m->dims[l + 1];
    double *out = (l % 2) ? b : a;
    for (int r = 0; r < n; r++)
      for (int o = 0; o < dout; o++) {
        double z = w[m->b_off[l] + o];
        for (int i = 0; i < din; i++)
          z += in[r * din + i] * w[m->w_off[l] + (size_t)o * din + i];
        if (l < m->num_layers - 1)
          z = m->activation == BLPO_ACT_TANH ? tanh(z) : (z > 0 ? z : 0);
        out[r * dout + o] = z;
      }
    in = out;
  }
  memcpy(y, in, sizeof(double) * n * m->dims[m->num_layers]);
}

static void to_float(const double *a, float *b, size_t n) {
  for (size_t i = 0; i < n; i++)
    b[i] = (float)a[i];
}

/* ---- MLP backward ------------------------------------------------------- */

static double mlp_objective(const blpo_mlp *m, const double *w, const double *x, int n,
                            const double *dy) {
  double y[2 * MLP_TEST_MAX_ROWS];
  ref_forward(m, w, x, n, y);
  double s = 0;
  for (int i = 0; i < n * m->dims[m->num_layers]; i++)
    s += dy[i] * y[i];
  return s;
}

/* n = 6: one pass over all rows; n = 517: the CPU backend's row chunks
 * (4 uneven chunks) and their partial sums. */
static void test_mlp_backward(blpo_backend *be, int activation, int n) {
  enum { R = MLP_TEST_MAX_ROWS };
  const int hidden[2] = {5, 4}, P = 2;
  blpo_mlp m;
  blpo_mlp_init_shape(&m, 3, hidden, 2, 2, activation, 0);
  size_t np = m.num_params;
  static double w[2][200], x[2][3 * R], dy[2][2 * R];
  static float wf[400], xf[2 * 3 * R], dyf[2 * 2 * R], grad[400], acts[2 * R * 11],
      scratch[2 * 2 * R * 5];
  for (int p = 0; p < P; p++) {
    for (size_t i = 0; i < np; i++)
      w[p][i] = (float)(0.6 * nrand());
    for (int i = 0; i < n * 3; i++)
      x[p][i] = (float)nrand();
    for (int i = 0; i < n * 2; i++)
      dy[p][i] = (float)nrand();
    to_float(w[p], wf + p * np, np);
    to_float(x[p], xf + p * n * 3, n * 3);
    to_float(dy[p], dyf + p * n * 2, n * 2);
  }
  for (size_t i = 0; i < sizeof(grad) / sizeof(float); i++)
    grad[i] = NAN; /* poisoned: every element must be written */
  be->mlp_forward(be, &m, P, wf, xf, n, acts);
  be->mlp_backward(be, &m, P, wf, xf, n, acts, dyf, grad, scratch);
  for (int p = 0; p < P; p++) {
    /* forward output against the reference */
    static double yref[2 * R];
    ref_forward(&m, w[p], x[p], n, yref);
    const float *y = acts + p * n * m.act_floats_per_row + blpo_mlp_act_offset(&m, 3, n);
    CHECK(rel_err_d(y, yref, n * 2, 1e-3) < 1e-5, "forward act %d n %d agent %d err %g", activation,
          n, p, rel_err_d(y, yref, n * 2, 1e-3));
    double fd[200];
    for (size_t i = 0; i < np; i++) {
      double h = 1e-6, save = w[p][i];
      w[p][i] = save + h;
      double fp = mlp_objective(&m, w[p], x[p], n, dy[p]);
      w[p][i] = save - h;
      double fm = mlp_objective(&m, w[p], x[p], n, dy[p]);
      w[p][i] = save;
      fd[i] = (fp - fm) / (2 * h);
    }
    double e = rel_err_d(grad + p * np, fd, np, 1e-3);
    CHECK(e < 2e-5, "mlp backward act %d n %d agent %d: rel err %g", activation, n, p, e);
  }
}

/* ---- PPO loss through the heads ------------------------------------------ */

typedef struct {
  int discrete, num_actions, act_dim, obs_dim, n;
  double obs[64 * 4], act[64], logp_old[64], adv[64], ret[64], vold[64];
  blpo_ppo_params pp;
} ppo_case;

static double clampd(double x, double lo, double hi) { return x < lo ? lo : (x > hi ? hi : x); }

static double ref_ppo_loss(const ppo_case *c, const blpo_mlp *am, const double *aw,
                           const blpo_mlp *cm, const double *cw) {
  double head[64 * 3], val[64];
  ref_forward(am, aw, c->obs, c->n, head);
  ref_forward(cm, cw, c->obs, c->n, val);
  int n = c->n, Y = am->dims[am->num_layers];
  double mean = 0, var = 0;
  for (int i = 0; i < n; i++)
    mean += c->adv[i] / n;
  for (int i = 0; i < n; i++)
    var += (c->adv[i] - mean) * (c->adv[i] - mean) / n;
  double sd = sqrt(var) + 1e-8;
  double pg = 0, vl = 0, ent = 0, eps = c->pp.clip_eps;
  for (int i = 0; i < n; i++) {
    const double *z = head + i * Y;
    double lp, h;
    if (c->discrete) {
      double zm = z[0], s = 0;
      for (int k = 1; k < Y; k++)
        zm = fmax(zm, z[k]);
      for (int k = 0; k < Y; k++)
        s += exp(z[k] - zm);
      double lse = zm + log(s);
      lp = z[(int)c->act[i]] - lse;
      h = 0;
      for (int k = 0; k < Y; k++)
        h -= exp(z[k] - lse) * (z[k] - lse);
    } else {
      double ls = aw[am->num_mlp_params];
      double e = (c->act[i] - z[0]) / exp(ls);
      lp = -0.5 * e * e - ls - 0.5 * log(2 * 3.141592653589793);
      h = ls + 0.5 * log(2 * 3.141592653589793 * exp(1.0));
    }
    double a = (c->adv[i] - mean) / sd;
    double r = exp(lp - c->logp_old[i]);
    pg += fmax(-a * r, -a * clampd(r, 1 - eps, 1 + eps)) / n;
    double v = val[i];
    double vc = c->vold[i] + clampd(v - c->vold[i], -eps, eps);
    vl += 0.5 * fmax((v - c->ret[i]) * (v - c->ret[i]), (vc - c->ret[i]) * (vc - c->ret[i])) / n;
    ent += h / n;
  }
  return pg + c->pp.vf_coef * vl - c->pp.ent_coef * ent;
}

static void test_ppo_loss(blpo_backend *be, int discrete) {
  ppo_case c;
  memset(&c, 0, sizeof(c));
  c.discrete = discrete;
  c.num_actions = 3;
  c.act_dim = 1;
  c.obs_dim = discrete ? 4 : 3;
  c.n = 16;
  c.pp = (blpo_ppo_params){0.2f, 0.5f, 0.01f, 1, 1};
  const int hidden[2] = {6, 5};
  int Y = discrete ? 3 : 1;
  blpo_mlp am, cm;
  blpo_mlp_init_shape(&am, c.obs_dim, hidden, 2, Y, BLPO_ACT_TANH, discrete ? 0 : 1);
  blpo_mlp_init_shape(&cm, c.obs_dim, hidden, 2, 1, BLPO_ACT_TANH, 0);
  double aw[200], cw[200];
  for (size_t i = 0; i < am.num_params; i++)
    aw[i] = (float)(0.7 * nrand());
  for (size_t i = 0; i < cm.num_params; i++)
    cw[i] = (float)(0.7 * nrand());
  if (!discrete)
    aw[am.num_mlp_params] = -0.3f;
  int n = c.n;
  for (int i = 0; i < n * c.obs_dim; i++)
    c.obs[i] = (float)nrand();
  /* current log-probs and values, then old ones perturbed so that some
   * ratios and value moves fall outside the clip range */
  double head[64 * 3], val[64];
  ref_forward(&am, aw, c.obs, n, head);
  ref_forward(&cm, cw, c.obs, n, val);
  for (int i = 0; i < n; i++) {
    if (discrete) {
      c.act[i] = (double)(i % 3);
    } else {
      c.act[i] = (float)(head[i] + 0.8 * nrand());
    }
    c.logp_old[i] = (float)(-1.0 + 0.5 * nrand());
    c.adv[i] = (float)nrand();
    c.ret[i] = (float)(val[i] + nrand());
    c.vold[i] = (float)(val[i] + 0.4 * nrand());
  }
  /* set logp_old relative to the current logp so ratios are near 1 +- 0.4 */
  for (int i = 0; i < n; i++) {
    double lp;
    const double *z = head + i * Y;
    if (discrete) {
      double zm = fmax(z[0], fmax(z[1], z[2])), s = 0;
      for (int k = 0; k < 3; k++)
        s += exp(z[k] - zm);
      lp = z[(int)c.act[i]] - zm - log(s);
    } else {
      double ls = aw[am.num_mlp_params], e = (c.act[i] - z[0]) / exp(ls);
      lp = -0.5 * e * e - ls - 0.5 * log(2 * 3.141592653589793);
    }
    c.logp_old[i] = (float)(lp + 0.3 * nrand());
  }
  /* analytic, float, one agent */
  float awf[200], cwf[200], obsf[256], actf[64], lpf[64], advf[64], retf[64], voldf[64];
  float aacts[64 * 14], cacts[64 * 12], dhead[64 * 3], dval[64], ag[200], cg[200],
      scratch[2 * 64 * 6];
  float stats[BLPO_STAT_COUNT] = {0};
  to_float(aw, awf, am.num_params);
  to_float(cw, cwf, cm.num_params);
  to_float(c.obs, obsf, n * c.obs_dim);
  to_float(c.act, actf, n);
  to_float(c.logp_old, lpf, n);
  to_float(c.adv, advf, n);
  to_float(c.ret, retf, n);
  to_float(c.vold, voldf, n);
  for (int i = 0; i < 200; i++)
    ag[i] = cg[i] = NAN;
  blpo_dims d = {0};
  d.P = 1;
  d.N = n;
  d.T = 1;
  d.obs_dim = c.obs_dim;
  d.act_dim = 1;
  d.discrete = discrete;
  d.num_actions = 3;
  d.head_dim = Y;
  be->mlp_forward(be, &am, 1, awf, obsf, n, aacts);
  be->mlp_forward(be, &cm, 1, cwf, obsf, n, cacts);
  const float *ah = aacts + blpo_mlp_act_offset(&am, 3, n);
  const float *ch = cacts + blpo_mlp_act_offset(&cm, 3, n);
  be->ppo_loss(be, &d, &am, awf, n, ah, 0, ch, 0, actf, lpf, advf, retf, voldf, c.pp, dhead, dval,
               ag, stats);
  be->mlp_backward(be, &am, 1, awf, obsf, n, aacts, dhead, ag, scratch);
  be->mlp_backward(be, &cm, 1, cwf, obsf, n, cacts, dval, cg, scratch);
  /* the loss value reported must match the reference too */
  double L = ref_ppo_loss(&c, &am, aw, &cm, cw);
  double Lf = stats[BLPO_STAT_PG_LOSS] + c.pp.vf_coef * stats[BLPO_STAT_V_LOSS] -
              c.pp.ent_coef * stats[BLPO_STAT_ENTROPY];
  CHECK(fabs(L - Lf) < 1e-5 * (1 + fabs(L)), "loss value %g vs reference %g", Lf, L);
  double fda[200], fdc[200];
  for (size_t i = 0; i < am.num_params; i++) {
    double h = 1e-6, s = aw[i];
    aw[i] = s + h;
    double fp = ref_ppo_loss(&c, &am, aw, &cm, cw);
    aw[i] = s - h;
    double fm = ref_ppo_loss(&c, &am, aw, &cm, cw);
    aw[i] = s;
    fda[i] = (fp - fm) / (2 * h);
  }
  for (size_t i = 0; i < cm.num_params; i++) {
    double h = 1e-6, s = cw[i];
    cw[i] = s + h;
    double fp = ref_ppo_loss(&c, &am, aw, &cm, cw);
    cw[i] = s - h;
    double fm = ref_ppo_loss(&c, &am, aw, &cm, cw);
    cw[i] = s;
    fdc[i] = (fp - fm) / (2 * h);
  }
  double ea = rel_err_d(ag, fda, am.num_params, 1e-4);
  double ec = rel_err_d(cg, fdc, cm.num_params, 1e-4);
  CHECK(ea < 1e-4, "ppo actor grad (discrete=%d) rel err %g", discrete, ea);
  CHECK(ec < 1e-4, "ppo critic grad (discrete=%d) rel err %g", discrete, ec);
  printf("ppo loss discrete=%d: actor grad err %.2e, critic grad err %.2e\n", discrete, ea, ec);
}

/* ---- GAE ------------------------------------------------------------------ */

static void test_gae(blpo_backend *be) {
  enum { P = 2, T = 7, N = 3 };
  float r[T * P * N], dn[T * P * N], v[T * P * N], lv[P * N], adv[T * P * N], ret[T * P * N];
  for (int i = 0; i < T * P * N; i++) {
    r[i] = (float)nrand();
    dn[i] = urand() < 0.2 ? 1.0f : 0.0f;
    v[i] = (float)nrand();
    adv[i] = ret[i] = NAN;
  }
  for (int i = 0; i < P * N; i++)
    lv[i] = (float)nrand();
  blpo_dims d = {0};
  d.P = P;
  d.N = N;
  d.T = T;
  be->gae(be, &d, r, dn, v, lv, 0.99f, 0.95f, adv, ret);
  double maxe = 0;
  for (int p = 0; p < P; p++)
    for (int i = 0; i < N; i++) {
      /* direct sum: A_t = sum_k (gamma lambda)^k prod(1-d) delta_{t+k} */
      for (int t = 0; t < T; t++) {
        double a = 0, disc = 1;
        for (int k = t; k < T; k++) {
          size_t o = ((size_t)k * P + p) * N + i;
          double vn = k + 1 < T ? v[o + P * N] : lv[p * N + i];
          double delta = r[o] + 0.99 * (1 - dn[o]) * vn - v[o];
          a += disc * delta;
          disc *= 0.99 * 0.95 * (1 - dn[o]);
        }
        size_t o = ((size_t)t * P + p) * N + i;
        maxe = fmax(maxe, fabs(adv[o] - a));
        maxe = fmax(maxe, fabs(ret[o] - (a + v[o])));
      }
    }
  CHECK(maxe < 1e-5, "gae max err %g", maxe);
}

/* ---- Adam and clipping ---------------------------------------------------- */

static void test_adam(blpo_backend *be) {
  enum { P = 2, C = 5 };
  float w[P * C], g[P * C], m[P * C], v[P * C], scale[P] = {1.0f, 0.25f};
  double wd[P * C], md[P * C] = {0}, vd[P * C] = {0};
  for (int i = 0; i < P * C; i++) {
    w[i] = (float)nrand();
    wd[i] = w[i];
    m[i] = v[i] = 0;
  }
  double maxe = 0;
  for (int t = 1; t <= 3; t++) {
    for (int i = 0; i < P * C; i++)
      g[i] = (float)nrand();
    be->adam(be, P, C, w, g, m, v, scale, blpo_adam_fixed(1e-2f, 0.9f, 0.999f, 1e-5f, t));
    for (int i = 0; i < P * C; i++) {
      double gi = (double)g[i] * scale[i / C];
      md[i] = 0.9 * md[i] + 0.1 * gi;
      vd[i] = 0.999 * vd[i] + 0.001 * gi * gi;
      double mh = md[i] / (1 - pow(0.9, t)), vh = vd[i] / (1 - pow(0.999, t));
      wd[i] -= 1e-2 * mh / (sqrt(vh) + 1e-5);
      maxe = fmax(maxe, fabs(w[i] - wd[i]));
    }
  }
  CHECK(maxe < 1e-6, "adam max err %g", maxe);
  float sa[2] = {0.09f, 4.0f}, sc[2] = {0.07f, 5.0f}, st[2 * BLPO_STAT_COUNT] = {0}, s[2];
  be->clip_scale(be, 2, sa, sc, 0.5f, st, s);
  CHECK(s[0] == 1.0f, "clip scale below max norm %g", s[0]);
  CHECK(fabsf(s[1] - 0.5f / 3.0f) < 1e-6f, "clip scale %g", s[1]);
}

/* ---- policy sampling ------------------------------------------------------ */

static void test_policy_sample(blpo_backend *be) {
  enum { N = 20000 };
  static float head[N * 3], act[N], logp[N];
  blpo_mlp am;
  const int hidden[1] = {4};
  blpo_mlp_init_shape(&am, 2, hidden, 1, 3, BLPO_ACT_TANH, 0);
  float params[64] = {0};
  blpo_dims d = {0};
  d.P = 1;
  d.N = N;
  d.T = 1;
  d.discrete = 1;
  d.num_actions = 3;
  d.act_dim = 1;
  d.head_dim = 3;
  d.seed = 7;
  const float z[3] = {0.5f, -1.0f, 1.2f};
  for (int i = 0; i < N; i++)
    memcpy(head + 3 * i, z, sizeof(z));
  be->policy_sample(be, &d, &am, params, head, 0, (blpo_counter){NULL, 0, 3}, act, logp);
  float pr[3];
  blpo_cat_stats(z, 3, 0, NULL, NULL, pr);
  int cnt[3] = {0};
  for (int i = 0; i < N; i++) {
    int a = (int)act[i];
    CHECK(a >= 0 && a < 3, "action %d", a);
    cnt[a]++;
    CHECK(fabsf(logp[i] - logf(pr[a])) < 1e-5f, "logp %g vs %g", logp[i], logf(pr[a]));
  }
  for (int k = 0; k < 3; k++) {
    double f = (double)cnt[k] / N, se = sqrt(pr[k] * (1 - pr[k]) / N);
    CHECK(fabs(f - pr[k]) < 5 * se, "action %d frequency %g vs %g", k, f, pr[k]);
  }
  /* Gaussian: mean and std of draws */
  blpo_mlp gm;
  blpo_mlp_init_shape(&gm, 2, hidden, 1, 1, BLPO_ACT_TANH, 1);
  float gp[64] = {0};
  gp[gm.num_mlp_params] = logf(0.5f);
  d.discrete = 0;
  d.head_dim = 1;
  for (int i = 0; i < N; i++)
    head[i] = 1.5f;
  be->policy_sample(be, &d, &gm, gp, head, 0, (blpo_counter){NULL, 0, 11}, act, logp);
  double s = 0, s2 = 0;
  for (int i = 0; i < N; i++)
    s += act[i];
  s /= N;
  for (int i = 0; i < N; i++)
    s2 += (act[i] - s) * (act[i] - s);
  s2 = sqrt(s2 / N);
  CHECK(fabs(s - 1.5) < 5 * 0.5 / sqrt(N), "gaussian mean %g", s);
  CHECK(fabs(s2 - 0.5) < 0.02, "gaussian std %g", s2);
  float lp = blpo_gauss_logp(&head[0], &gp[gm.num_mlp_params], &act[0], 1);
  CHECK(fabsf(lp - logp[0]) < 1e-6f, "gaussian logp %g vs %g", logp[0], lp);
}

int main(void) {
  blpo_backend *be = blpo_backend_cpu_create(0);
  test_mlp_backward(be, BLPO_ACT_TANH, 6);
  test_mlp_backward(be, BLPO_ACT_RELU, 6);
  test_mlp_backward(be, BLPO_ACT_TANH, 517);
  test_mlp_backward(be, BLPO_ACT_RELU, 517);
  test_ppo_loss(be, 1);
  test_ppo_loss(be, 0);
  test_gae(be);
  test_adam(be);
  test_policy_sample(be);
  be->destroy(be);
  return test_summary("test_grad");
}
