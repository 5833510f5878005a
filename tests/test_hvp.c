/* Second-order passes of the critic MLP (src/cpu_second_order.c) against
 * double-precision references: the tangent against central differences of a
 * double forward pass, HVPs and Nystrom rows against central differences of
 * a double gradient (itself checked against differences of the loss), the
 * dense Hessian and its symmetry, and K batched directions against K = 1
 * calls. Outputs are poisoned with NaN before each call so that any element
 * left unwritten fails. P = 2 agents with different parameters exercise the
 * population strides. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blpo/mlp.h"
#include "blpo/second_order.h"
#include "test_util.h"

#define P_AGENTS 2
#define FD_EPS 1e-6

static void poison(float *a, size_t count) {
  for (size_t i = 0; i < count; i++)
    a[i] = NAN;
}

static float *falloc(size_t count) {
  float *a = malloc(sizeof(float) * (count ? count : 1));
  if (!a) {
    fprintf(stderr, "out of memory\n");
    exit(2);
  }
  poison(a, count);
  return a;
}

static double *dalloc(size_t count) {
  double *a = calloc(count ? count : 1, sizeof(double));
  if (!a) {
    fprintf(stderr, "out of memory\n");
    exit(2);
  }
  return a;
}

/* max |a - b| / max |b| over float a against float b (batched vs single). */
static double rel_diff_f(const float *a, const float *b, size_t n) {
  double mx = 0, me = 0;
  for (size_t i = 0; i < n; i++) {
    if (isnan(a[i]) || isnan(b[i]))
      return INFINITY;
    mx = fmax(mx, fabs((double)b[i]));
    me = fmax(me, fabs((double)a[i] - b[i]));
  }
  return me / (mx + 1e-30);
}

/* ---- double reference ----------------------------------------------------- */

/* Forward in double: hs (n, A) in the activation workspace layout. */
static void fwd_d(const blpo_mlp *m, const double *w, const double *x, int n, double *hs) {
  const double *in = x;
  for (int l = 0; l < m->num_layers; l++) {
    int din = m->dims[l], dout = m->dims[l + 1];
    double *out = hs + blpo_mlp_act_offset(m, l + 1, n);
    const double *W = w + m->w_off[l], *b = w + m->b_off[l];
    for (int r = 0; r < n; r++)
      for (int o = 0; o < dout; o++) {
        double z = b[o];
        for (int i = 0; i < din; i++)
          z += in[(size_t)r * din + i] * W[(size_t)o * din + i];
        if (l < m->num_layers - 1)
          z = m->activation == BLPO_ACT_TANH ? tanh(z) : (z > 0 ? z : 0);
        out[(size_t)r * dout + o] = z;
      }
    in = out;
  }
}

static double loss_d(const blpo_mlp *m, const double *w, const double *x, int n, const double *G,
                     double *hs) {
  fwd_d(m, w, x, n, hs);
  const double *y = hs + blpo_mlp_act_offset(m, m->num_layers, n);
  int dL = m->dims[m->num_layers];
  double s = 0;
  for (int i = 0; i < n * dL; i++)
    s += (G[i] - y[i]) * (G[i] - y[i]);
  return s / n;
}

/* Gradient of g in double by back-propagation; grad (Np), extra part 0.
 * hs (n, A), gb (2, n, max_width) scratch. */
static void grad_d(const blpo_mlp *m, const double *w, const double *x, int n, const double *G,
                   double *grad, double *hs, double *gb) {
  fwd_d(m, w, x, n, hs);
  int L = m->num_layers, dL = m->dims[L], mw = m->max_width;
  memset(grad, 0, sizeof(double) * m->num_params);
  const double *y = hs + blpo_mlp_act_offset(m, L, n);
  double *g = gb, *gp = gb + (size_t)n * mw;
  for (int i = 0; i < n * dL; i++)
    g[i] = -2.0 / n * (G[i] - y[i]);
  for (int l = L - 1; l >= 0; l--) {
    int din = m->dims[l], dout = m->dims[l + 1];
    const double *hin = l == 0 ? x : hs + blpo_mlp_act_offset(m, l, n);
    const double *W = w + m->w_off[l];
    for (int r = 0; r < n; r++)
      for (int o = 0; o < dout; o++) {
        double go = g[(size_t)r * dout + o];
        grad[m->b_off[l] + o] += go;
        for (int i = 0; i < din; i++)
          grad[m->w_off[l] + (size_t)o * din + i] += go * hin[(size_t)r * din + i];
      }
    if (l == 0)
      break;
    for (int r = 0; r < n; r++)
      for (int i = 0; i < din; i++) {
        double s = 0;
        for (int o = 0; o < dout; o++)
          s += g[(size_t)r * dout + o] * W[(size_t)o * din + i];
        double h = hin[(size_t)r * din + i];
        gp[(size_t)r * din + i] =
            m->activation == BLPO_ACT_TANH ? s * (1 - h * h) : (h > 0 ? s : 0);
      }
    double *t = g;
    g = gp;
    gp = t;
  }
}

/* ---- one network ---------------------------------------------------------- */

typedef struct {
  const char *name;
  int in, nh, hidden[3], out, act, extra;
  int n, K; /* rows, directions */
  int hvp;  /* d_L = 1: HVP checks apply */
} net_case;

static void run_case(const net_case *c) {
  blpo_mlp m;
  blpo_mlp_init_shape(&m, c->in, c->hidden, c->nh, c->out, c->act, c->extra);
  const int P = P_AGENTS, n = c->n, K = c->K;
  size_t np = m.num_params, A = m.act_floats_per_row;
  int d0 = m.dims[0], dL = m.dims[m.num_layers];
  printf("%s: %d layers, Np = %zu (extra %zu), P = %d, n = %d, K = %d\n", c->name, m.num_layers, np,
         m.num_extra, P, n, K);

  /* Inputs: weights of order 1 and non-zero biases so that every term matters. */
  float *params = falloc((size_t)P * np);   // (P, Np)
  float *x = falloc((size_t)P * n * d0);    // (P, n, d_0)
  float *G = falloc((size_t)P * n * dL);    // (P, n, d_L)
  float *dirs = falloc((size_t)P * K * np); // (P, K, Np)
  float *acts = falloc((size_t)P * n * A);  // (P, n, A)
  for (size_t i = 0; i < (size_t)P * np; i++)
    params[i] = (float)(0.7 * nrand());
  for (size_t i = 0; i < (size_t)P * n * d0; i++)
    x[i] = (float)nrand();
  for (size_t i = 0; i < (size_t)P * n * dL; i++)
    G[i] = (float)(2.0 * nrand());
  for (int p = 0; p < P; p++)
    for (int k = 0; k < K; k++) {
      float *u = dirs + ((size_t)p * K + k) * np;
      for (size_t i = 0; i < np; i++)
        u[i] = i < m.num_mlp_params ? (float)nrand() : 1e3f; /* extra tail must be ignored */
    }

  /* Double copies and activations (acts from the double forward, rounded). */
  double *wd = dalloc(np), *xd = dalloc((size_t)n * d0), *Gd = dalloc((size_t)n * dL);
  double *hs = dalloc((size_t)n * A), *hs2 = dalloc((size_t)n * A);
  double *gb = dalloc((size_t)2 * n * m.max_width);
  double *wt = dalloc(np), *g1 = dalloc(np), *g2 = dalloc(np);
  for (int p = 0; p < P; p++) {
    for (size_t i = 0; i < np; i++)
      wd[i] = params[(size_t)p * np + i];
    for (size_t i = 0; i < (size_t)n * d0; i++)
      xd[i] = x[(size_t)p * n * d0 + i];
    fwd_d(&m, wd, xd, n, hs);
    for (size_t i = 0; i < (size_t)n * A; i++)
      acts[(size_t)p * n * A + i] = (float)hs[i];
  }

  /* (a) tangent: every layer's R{h_l} and R{y} against central differences. */
  {
    float *rh = falloc((size_t)P * K * n * A);  // (P, n*K, A), layer l (n, K, d_l)
    float *ry = falloc((size_t)P * K * n * dL); // (P, K, n, d_L)
    blpo_cpu_mlp_tangent(&m, P, params, x, n, acts, K, dirs, rh, ry);
    double *ref_rh = dalloc((size_t)P * K * n * A), *ref_ry = dalloc((size_t)P * K * n * dL);
    for (int p = 0; p < P; p++) {
      for (size_t i = 0; i < (size_t)n * d0; i++)
        xd[i] = x[(size_t)p * n * d0 + i];
      for (int k = 0; k < K; k++) {
        const float *u = dirs + ((size_t)p * K + k) * np;
        for (size_t i = 0; i < np; i++)
          wt[i] = params[(size_t)p * np + i] + FD_EPS * u[i];
        fwd_d(&m, wt, xd, n, hs);
        for (size_t i = 0; i < np; i++)
          wt[i] = params[(size_t)p * np + i] - FD_EPS * u[i];
        fwd_d(&m, wt, xd, n, hs2);
        for (int l = 1; l <= m.num_layers; l++) {
          int dl = m.dims[l];
          size_t o1 = blpo_mlp_act_offset(&m, l, n), oK = blpo_mlp_act_offset(&m, l, K * n);
          for (int r = 0; r < n; r++)
            for (int j = 0; j < dl; j++) {
              double t =
                  (hs[o1 + (size_t)r * dl + j] - hs2[o1 + (size_t)r * dl + j]) / (2 * FD_EPS);
              ref_rh[(size_t)p * K * n * A + oK + ((size_t)r * K + k) * dl + j] = t;
              if (l == m.num_layers)
                ref_ry[(((size_t)p * K + k) * n + r) * dL + j] = t;
            }
        }
      }
    }
    double e_rh = rel_err_d(rh, ref_rh, (size_t)P * K * n * A, 1e-12);
    double e_ry = rel_err_d(ry, ref_ry, (size_t)P * K * n * dL, 1e-12);
    printf("  tangent: R{h} all layers rel err %.3e, R{y} rel err %.3e\n", e_rh, e_ry);
    CHECK(e_rh < 1e-4, "%s tangent R{h} rel err %g", c->name, e_rh);
    CHECK(e_ry < 1e-4, "%s tangent R{y} rel err %g", c->name, e_ry);

    /* (d) for the tangent: K batched against K = 1 calls. */
    float *ry1 = falloc((size_t)P * K * n * dL); // (P, K, n, d_L) assembled from K = 1 calls
    float *d1 = falloc((size_t)P * np);          // (P, 1, Np)
    float *rh1 = falloc((size_t)P * n * A);      // (P, n, A)
    float *y1 = falloc((size_t)P * n * dL);      // (P, 1, n, d_L)
    for (int k = 0; k < K; k++) {
      for (int p = 0; p < P; p++)
        memcpy(d1 + (size_t)p * np, dirs + ((size_t)p * K + k) * np, sizeof(float) * np);
      poison(rh1, (size_t)P * n * A);
      poison(y1, (size_t)P * n * dL);
      blpo_cpu_mlp_tangent(&m, P, params, x, n, acts, 1, d1, rh1, y1);
      for (int p = 0; p < P; p++)
        memcpy(ry1 + ((size_t)p * K + k) * n * dL, y1 + (size_t)p * n * dL, sizeof(float) * n * dL);
    }
    double e_b = rel_diff_f(ry, ry1, (size_t)P * K * n * dL);
    printf("  tangent: K = %d batched vs K = 1 calls rel diff %.3e\n", K, e_b);
    CHECK(e_b < 1e-6, "%s tangent batched vs single %g", c->name, e_b);
    free(ry1), free(d1), free(rh1), free(y1);
    free(rh), free(ry), free(ref_rh), free(ref_ry);
  }

  if (!c->hvp) {
    free(params), free(x), free(G), free(dirs), free(acts);
    free(wd), free(xd), free(Gd), free(hs), free(hs2), free(gb), free(wt), free(g1), free(g2);
    return;
  }

  /* (b) the double gradient against central differences of the loss, per coordinate. */
  double *gref = dalloc(np);
  {
    double worst = 0;
    for (int p = 0; p < P; p++) {
      for (size_t i = 0; i < np; i++)
        wd[i] = params[(size_t)p * np + i];
      for (size_t i = 0; i < (size_t)n * d0; i++)
        xd[i] = x[(size_t)p * n * d0 + i];
      for (size_t i = 0; i < (size_t)n * dL; i++)
        Gd[i] = G[(size_t)p * n * dL + i];
      grad_d(&m, wd, xd, n, Gd, gref, hs, gb);
      double mx = 0, me = 0;
      for (size_t j = 0; j < np; j++) {
        memcpy(wt, wd, sizeof(double) * np);
        wt[j] += FD_EPS;
        double lp = loss_d(&m, wt, xd, n, Gd, hs);
        wt[j] -= 2 * FD_EPS;
        double lm = loss_d(&m, wt, xd, n, Gd, hs);
        double fd = (lp - lm) / (2 * FD_EPS);
        mx = fmax(mx, fabs(fd));
        me = fmax(me, fabs(fd - gref[j]));
      }
      worst = fmax(worst, me / mx);
    }
    printf("  double gradient vs FD of g: rel err %.3e\n", worst);
    CHECK(worst < 1e-7, "%s double gradient rel err %g", c->name, worst);
  }

  size_t ws = blpo_cpu_critic_hvp_work_floats(&m, n, K);
  float *work = falloc((size_t)P * ws); // (P, work_floats(n, K))

  /* (b) HVPs against central differences of the double gradient along u. */
  float *hv = falloc((size_t)P * K * np); // (P, K, Np)
  {
    blpo_cpu_critic_hvp(&m, P, params, x, n, acts, G, K, dirs, hv, work);
    double *ref = dalloc((size_t)P * K * np);
    for (int p = 0; p < P; p++) {
      for (size_t i = 0; i < (size_t)n * d0; i++)
        xd[i] = x[(size_t)p * n * d0 + i];
      for (size_t i = 0; i < (size_t)n * dL; i++)
        Gd[i] = G[(size_t)p * n * dL + i];
      for (int k = 0; k < K; k++) {
        const float *u = dirs + ((size_t)p * K + k) * np;
        for (size_t i = 0; i < np; i++)
          wt[i] = params[(size_t)p * np + i] + (i < m.num_mlp_params ? FD_EPS * u[i] : 0);
        grad_d(&m, wt, xd, n, Gd, g1, hs, gb);
        for (size_t i = 0; i < np; i++)
          wt[i] = params[(size_t)p * np + i] - (i < m.num_mlp_params ? FD_EPS * u[i] : 0);
        grad_d(&m, wt, xd, n, Gd, g2, hs, gb);
        for (size_t i = 0; i < np; i++)
          ref[((size_t)p * K + k) * np + i] = (g1[i] - g2[i]) / (2 * FD_EPS);
      }
    }
    double e = rel_err_d(hv, ref, (size_t)P * K * np, 1e-12);
    int tail_ok = 1;
    for (int pk = 0; pk < P * K; pk++)
      for (size_t i = m.num_mlp_params; i < np; i++)
        tail_ok &= hv[(size_t)pk * np + i] == 0.0f;
    printf("  hvp: K = %d directions vs FD of double gradient rel err %.3e\n", K, e);
    CHECK(e < 1e-4, "%s hvp rel err %g", c->name, e);
    CHECK(tail_ok, "%s hvp extra tail not zero", c->name);
    free(ref);
  }

  /* (d) HVP: K batched against K = 1 calls with the K = 1 workspace size. */
  {
    size_t ws1 = blpo_cpu_critic_hvp_work_floats(&m, n, 1);
    float *w1 = falloc((size_t)P * ws1);     // (P, work_floats(n, 1))
    float *d1 = falloc((size_t)P * np);      // (P, 1, Np)
    float *h1 = falloc((size_t)P * np);      // (P, 1, Np)
    float *hvs = falloc((size_t)P * K * np); // (P, K, Np) assembled
    for (int k = 0; k < K; k++) {
      for (int p = 0; p < P; p++)
        memcpy(d1 + (size_t)p * np, dirs + ((size_t)p * K + k) * np, sizeof(float) * np);
      poison(h1, (size_t)P * np);
      poison(w1, (size_t)P * ws1);
      blpo_cpu_critic_hvp(&m, P, params, x, n, acts, G, 1, d1, h1, w1);
      for (int p = 0; p < P; p++)
        memcpy(hvs + ((size_t)p * K + k) * np, h1 + (size_t)p * np, sizeof(float) * np);
    }
    double e = rel_diff_f(hv, hvs, (size_t)P * K * np);
    printf("  hvp: K = %d batched vs K = 1 calls rel diff %.3e\n", K, e);
    CHECK(e < 1e-6, "%s hvp batched vs single %g", c->name, e);
    free(w1), free(d1), free(h1), free(hvs);
  }

  /* (c) dense double Hessian per agent by FD of the double gradient; Nystrom
   * rows and the float dense Hessian against it; symmetry of both. */
  {
    double *Href = dalloc((size_t)P * np * np); // (P, Np, Np)
    double sym_ref = 0;
    for (int p = 0; p < P; p++) {
      for (size_t i = 0; i < (size_t)n * d0; i++)
        xd[i] = x[(size_t)p * n * d0 + i];
      for (size_t i = 0; i < (size_t)n * dL; i++)
        Gd[i] = G[(size_t)p * n * dL + i];
      double *H = Href + (size_t)p * np * np;
      for (size_t j = 0; j < m.num_mlp_params; j++) {
        for (size_t i = 0; i < np; i++)
          wt[i] = params[(size_t)p * np + i];
        wt[j] += FD_EPS;
        grad_d(&m, wt, xd, n, Gd, g1, hs, gb);
        wt[j] -= 2 * FD_EPS;
        grad_d(&m, wt, xd, n, Gd, g2, hs, gb);
        for (size_t i = 0; i < np; i++)
          H[j * np + i] = (g1[i] - g2[i]) / (2 * FD_EPS);
      }
      double mx = 0, me = 0;
      for (size_t i = 0; i < np; i++)
        for (size_t j = 0; j < np; j++) {
          mx = fmax(mx, fabs(H[i * np + j]));
          me = fmax(me, fabs(H[i * np + j] - H[j * np + i]));
        }
      sym_ref = fmax(sym_ref, me / mx);
    }
    printf("  double FD Hessian asymmetry %.3e\n", sym_ref);
    CHECK(sym_ref < 1e-7, "%s reference Hessian asymmetry %g", c->name, sym_ref);

    /* Rows: random indices, a duplicate, a bias, and (if any) an extra-tail index. */
    int32_t *idx = malloc(sizeof(int32_t) * (size_t)P * K); // (P, K)
    if (!idx)
      exit(2);
    for (int p = 0; p < P; p++)
      for (int k = 0; k < K; k++)
        idx[p * K + k] = (int32_t)(urand() * (double)m.num_mlp_params);
    idx[1] = idx[0];
    idx[2] = (int32_t)m.b_off[0];
    if (m.num_extra)
      idx[K + 1] = (int32_t)(np - 1);
    float *rows = falloc((size_t)P * K * np); // (P, K, Np)
    poison(work, (size_t)P * ws);
    blpo_cpu_critic_hvp_rows(&m, P, params, x, n, acts, G, K, idx, rows, work);
    double *rref = dalloc((size_t)P * K * np);
    for (int p = 0; p < P; p++)
      for (int k = 0; k < K; k++)
        memcpy(rref + ((size_t)p * K + k) * np,
               Href + (size_t)p * np * np + (size_t)idx[p * K + k] * np, sizeof(double) * np);
    double e_rows = rel_err_d(rows, rref, (size_t)P * K * np, 1e-12);
    printf("  rows: K = %d Nystrom rows vs double FD Hessian rel err %.3e\n", K, e_rows);
    CHECK(e_rows < 1e-4, "%s rows rel err %g", c->name, e_rows);

    /* Rows against the HVP entry with explicit unit directions. */
    float *units = falloc((size_t)P * K * np); // (P, K, Np)
    float *hu = falloc((size_t)P * K * np);    // (P, K, Np)
    memset(units, 0, sizeof(float) * (size_t)P * K * np);
    for (int pk = 0; pk < P * K; pk++)
      units[(size_t)pk * np + idx[pk]] = 1.0f;
    blpo_cpu_critic_hvp(&m, P, params, x, n, acts, G, K, units, hu, work);
    double e_ru = rel_diff_f(rows, hu, (size_t)P * K * np);
    printf("  rows vs hvp with unit directions rel diff %.3e\n", e_ru);
    /* the rows skip the unit directions' zero terms, the HVP multiplies them
     * out: the same sums otherwise, so the same numbers */
    CHECK(e_ru == 0, "%s rows vs unit hvp %g", c->name, e_ru);

    /* Dense float Hessian of each agent, a chunk that does not divide Np. */
    int chunk = 5;
    size_t wsd = blpo_cpu_critic_hvp_work_floats(&m, n, chunk);
    float *wd_work = falloc(wsd); // (work_floats(n, chunk))
    float *Hf = falloc(np * np);  // (Np, Np)
    double e_dense = 0, sym = 0;
    for (int p = 0; p < P; p++) {
      poison(Hf, np * np);
      blpo_cpu_critic_hessian_dense(&m, params + (size_t)p * np, x + (size_t)p * n * d0, n,
                                    acts + (size_t)p * n * A, G + (size_t)p * n * dL, chunk, Hf,
                                    wd_work);
      e_dense = fmax(e_dense, rel_err_d(Hf, Href + (size_t)p * np * np, np * np, 1e-12));
      double mx = 0, me = 0;
      for (size_t i = 0; i < np; i++)
        for (size_t j = 0; j < np; j++) {
          mx = fmax(mx, fabs((double)Hf[i * np + j]));
          me = fmax(me, fabs((double)Hf[i * np + j] - Hf[j * np + i]));
        }
      sym = fmax(sym, me / mx);
    }
    /* Every unit direction (each layer's weights and biases): the last
     * agent's dense Hessian against the dense-direction HVP of all of them. */
    {
      int p = P - 1;
      float *ud = falloc(np * np), *hd = falloc(np * np); // (Np, Np) each
      float *wk = falloc(blpo_cpu_critic_hvp_work_floats(&m, n, (int)np));
      memset(ud, 0, sizeof(float) * np * np);
      for (size_t j = 0; j < m.num_mlp_params; j++)
        ud[j * np + j] = 1.0f;
      poison(hd, np * np);
      blpo_cpu_critic_hvp(&m, 1, params + (size_t)p * np, x + (size_t)p * n * d0, n,
                          acts + (size_t)p * n * A, G + (size_t)p * n * dL, (int)np, ud, hd, wk);
      size_t diff = 0;
      for (size_t i = 0; i < np * np; i++)
        diff += !(Hf[i] == hd[i]);
      printf("  dense: all %zu unit rows vs hvp with unit directions: %zu differ\n", np, diff);
      CHECK(diff == 0, "%s dense Hessian vs unit-direction hvp: %zu of %zu differ", c->name, diff,
            np * np);
      free(ud), free(hd), free(wk);
    }
    printf("  dense: float Hessian vs double FD rel err %.3e, asymmetry %.3e\n", e_dense, sym);
    CHECK(e_dense < 1e-4, "%s dense Hessian rel err %g", c->name, e_dense);
    CHECK(sym < 1e-5, "%s dense Hessian asymmetry %g", c->name, sym);
    free(idx), free(Href), free(rows), free(rref), free(units), free(hu), free(wd_work), free(Hf);
  }

  free(hv), free(work), free(gref);
  free(params), free(x), free(G), free(dirs), free(acts);
  free(wd), free(xd), free(Gd), free(hs), free(hs2), free(gb), free(wt), free(g1), free(g2);
}

int main(void) {
  const net_case cases[] = {
      {"tanh 3-5-4-1", 3, 2, {5, 4, 0}, 1, BLPO_ACT_TANH, 0, 7, 4, 1},
      {"relu 3-5-4-1 (+2 extra)", 3, 2, {5, 4, 0}, 1, BLPO_ACT_RELU, 2, 7, 4, 1},
      {"tanh 4-6-3-5-1", 4, 3, {6, 3, 5}, 1, BLPO_ACT_TANH, 0, 7, 3, 1},
      {"linear 3-1", 3, 0, {0, 0, 0}, 1, BLPO_ACT_TANH, 0, 7, 4, 1},
      {"tanh 3-5-2 (tangent only, d_L = 2)", 3, 1, {5, 0, 0}, 2, BLPO_ACT_TANH, 1, 7, 4, 0},
      /* Big enough for threaded OpenBLAS kernels and the OpenMP loops. */
      {"tanh 8-32-32-1, n = 96", 8, 2, {32, 32, 0}, 1, BLPO_ACT_TANH, 0, 96, 9, 1},
      {"relu 8-32-32-1, n = 96", 8, 2, {32, 32, 0}, 1, BLPO_ACT_RELU, 0, 96, 9, 1},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
    run_case(&cases[i]);
  return test_summary("test_hvp");
}
