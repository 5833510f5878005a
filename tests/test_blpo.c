/* BLPO's derivatives and solvers against double-precision references (the
 * checks of blpo.md): g_theta and v = dL/dw through the GAE recursion
 * against central finite differences; p against finite differences of
 * grad_theta f2 along x; the Nystrom solve with k = P_c (gamma = 0) against
 * the exact (H + rho I)^-1 v; the eigen cut-off on a rank-deficient core; CG
 * against the exact solve. Small networks, random inputs, poisoned outputs. */
#include <math.h>
#include <string.h>

#include "blpo/backend.h"
#include "test_util.h"

enum { T = 5, MT = 3, NR = T * MT, OD = 3, MAXP = 256 };

/* ---- double reference network and objective ----------------------------- */

static void ref_forward(const blpo_mlp *m, const double *w, const double *x, int n, double *y) {
  double a[64 * 16], b[64 * 16];
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
          z = tanh(z);
        out[r * dout + o] = z;
      }
    in = out;
  }
  memcpy(y, in, sizeof(double) * n * m->dims[m->num_layers]);
}

typedef struct {
  blpo_mlp am, cm;
  double obs[NR * OD], last[MT * OD], act[NR], logp_old[NR], rew[NR], done[NR], G[NR];
  double gamma, lambda, eps, eps_f;
} problem;

static double logp_of(const double *z, int a) {
  double zm = fmax(z[0], z[1]);
  double lse = zm + log(exp(z[0] - zm) + exp(z[1] - zm));
  return z[a] - lse;
}

static double min_surr(double rho, double A, double eps) {
  double rc = rho < 1 - eps ? 1 - eps : (rho > 1 + eps ? 1 + eps : rho);
  return fmin(rho * A, rc * A);
}

/* Values and advantages with the critic w; rows t*MT + j. */
static void ref_values_adv(const problem *pr, const double *cw, double *V, double *Vl, double *A) {
  ref_forward(&pr->cm, cw, pr->obs, NR, V);
  ref_forward(&pr->cm, cw, pr->last, MT, Vl);
  for (int j = 0; j < MT; j++) {
    double an = 0, vn = Vl[j];
    for (int t = T - 1; t >= 0; t--) {
      int i = t * MT + j;
      double nd = 1 - pr->done[i];
      double delta = pr->rew[i] + pr->gamma * nd * vn - V[i];
      an = delta + pr->gamma * pr->lambda * nd * an;
      A[i] = an;
      vn = V[i];
    }
  }
}

/* L(theta, w) = -(1/n) sum min(rho A(w), clip(rho) A(w)) */
static double ref_L(const problem *pr, const double *aw, const double *cw) {
  double V[NR], Vl[MT], A[NR], z[NR * 2];
  ref_values_adv(pr, cw, V, Vl, A);
  ref_forward(&pr->am, aw, pr->obs, NR, z);
  double s = 0;
  for (int i = 0; i < NR; i++) {
    double rho = exp(logp_of(z + 2 * i, (int)pr->act[i]) - pr->logp_old[i]);
    s += min_surr(rho, A[i], pr->eps);
  }
  return -s / NR;
}

/* f2(theta, w) = (2/n) sum (G_t - V_t) P_t, P_t = -(1/(t+1)) sum_{tau<=t} l_tau */
static double ref_f2(const problem *pr, const double *aw, const double *cw) {
  double V[NR], Vl[MT], A[NR], z[NR * 2];
  ref_values_adv(pr, cw, V, Vl, A);
  ref_forward(&pr->am, aw, pr->obs, NR, z);
  double f = 0;
  for (int j = 0; j < MT; j++) {
    double run = 0;
    for (int t = 0; t < T; t++) {
      int i = t * MT + j;
      double rho = exp(logp_of(z + 2 * i, (int)pr->act[i]) - pr->logp_old[i]);
      run += min_surr(rho, A[i], pr->eps_f);
      f += 2.0 / NR * (pr->G[i] - V[i]) * (-run / (t + 1));
    }
  }
  return f;
}

static void make_problem(problem *pr, double *aw, double *cw) {
  const int hidden[2] = {6, 5};
  blpo_mlp_init_shape(&pr->am, OD, hidden, 2, 2, BLPO_ACT_TANH, 0);
  blpo_mlp_init_shape(&pr->cm, OD, hidden, 2, 1, BLPO_ACT_TANH, 0);
  pr->gamma = 0.9;
  pr->lambda = 0.8;
  pr->eps = 0.2;
  pr->eps_f = 0.5;
  for (size_t i = 0; i < pr->am.num_params; i++)
    aw[i] = (float)(0.8 * nrand());
  for (size_t i = 0; i < pr->cm.num_params; i++)
    cw[i] = (float)(0.8 * nrand());
  for (int i = 0; i < NR * OD; i++)
    pr->obs[i] = (float)nrand();
  for (int i = 0; i < MT * OD; i++)
    pr->last[i] = (float)nrand();
  double z[NR * 2];
  ref_forward(&pr->am, aw, pr->obs, NR, z);
  for (int i = 0; i < NR; i++) {
    pr->act[i] = (double)(i % 2);
    /* ratios spread around 1 so both clip ranges are crossed */
    pr->logp_old[i] = (float)(logp_of(z + 2 * i, (int)pr->act[i]) + 0.4 * nrand());
    pr->rew[i] = (float)nrand();
    pr->done[i] = (i / MT == 2 && i % MT == 1) ? 1.0 : 0.0; /* one episode end mid-trajectory */
    pr->G[i] = (float)(2 * nrand());
  }
}

/* ---- analytic pieces through the backend ---------------------------------- */

typedef struct {
  float aw[MAXP], cw[MAXP], obs[NR * OD], last[MT * OD], act[NR], lpo[NR], rew[NR], done[NR], G[NR];
  float aacts[NR * 13], cacts[NR * 12], lacts[MT * 12];
  float dhead[NR * 2], ag[MAXP], vbar[NR], vbl[MT], rho[NR], adv[NR], af[NR], resid[NR];
  float v[MAXP], vl[MAXP], scratch[2 * NR * 8];
  float stats[BLPO_STAT_COUNT];
  blpo_dims d;
} analytic;

static void to_f(const double *a, float *b, size_t n) {
  for (size_t i = 0; i < n; i++)
    b[i] = (float)a[i];
}

static void run_actor(blpo_backend *be, const problem *pr, const double *aw, const double *cw,
                      analytic *an) {
  memset(an, 0, sizeof(*an));
  to_f(aw, an->aw, pr->am.num_params);
  to_f(cw, an->cw, pr->cm.num_params);
  to_f(pr->obs, an->obs, NR * OD);
  to_f(pr->last, an->last, MT * OD);
  to_f(pr->act, an->act, NR);
  to_f(pr->logp_old, an->lpo, NR);
  to_f(pr->rew, an->rew, NR);
  to_f(pr->done, an->done, NR);
  to_f(pr->G, an->G, NR);
  for (int i = 0; i < MAXP; i++)
    an->ag[i] = an->v[i] = an->vl[i] = NAN;
  for (int i = 0; i < NR; i++)
    an->vbar[i] = an->rho[i] = an->adv[i] = an->af[i] = an->resid[i] = NAN;
  blpo_dims *d = &an->d;
  d->P = 1;
  d->N = MT;
  d->T = T;
  d->obs_dim = OD;
  d->act_dim = 1;
  d->discrete = 1;
  d->num_actions = 2;
  d->head_dim = 2;
  be->mlp_forward(be, &pr->am, 1, an->aw, an->obs, NR, an->aacts);
  be->mlp_forward(be, &pr->cm, 1, an->cw, an->obs, NR, an->cacts);
  be->mlp_forward(be, &pr->cm, 1, an->cw, an->last, MT, an->lacts);
  const float *ah = an->aacts + blpo_mlp_act_offset(&pr->am, 3, NR);
  const float *ch = an->cacts + blpo_mlp_act_offset(&pr->cm, 3, NR);
  const float *lh = an->lacts + blpo_mlp_act_offset(&pr->cm, 3, MT);
  be->blpo_actor(be, d, &pr->am, an->aw, T, MT, ah, 0, ch, 0, lh, 0, an->act, an->lpo, an->rew,
                 an->done, an->G, (float)pr->gamma, (float)pr->lambda, (float)pr->eps,
                 (float)pr->eps_f, an->dhead, an->ag, an->vbar, an->vbl, an->rho, an->adv, an->af,
                 an->resid, an->stats);
  be->mlp_backward(be, &pr->am, 1, an->aw, an->obs, NR, an->aacts, an->dhead, an->ag, an->scratch);
  be->mlp_backward(be, &pr->cm, 1, an->cw, an->obs, NR, an->cacts, an->vbar, an->v, an->scratch);
  be->mlp_backward(be, &pr->cm, 1, an->cw, an->last, MT, an->lacts, an->vbl, an->vl, an->scratch);
  be->axpy(be, 1, pr->cm.num_params, 1.0f, an->vl, an->v);
}

static void test_gradients(blpo_backend *be) {
  problem pr;
  double aw[MAXP], cw[MAXP];
  make_problem(&pr, aw, cw);
  static analytic an;
  run_actor(be, &pr, aw, cw, &an);
  double L = ref_L(&pr, aw, cw);
  CHECK(fabs(an.stats[BLPO_STAT_ACTOR_LOSS] - L) < 1e-5 * (1 + fabs(L)), "L %g vs %g",
        an.stats[BLPO_STAT_ACTOR_LOSS], L);
  { /* the critic's loss on the same rows, (1/n) sum (G - V)^2, in the same call */
    double V[NR], Vl[MT], Adv[NR], g = 0;
    ref_values_adv(&pr, cw, V, Vl, Adv);
    for (int i = 0; i < NR; i++)
      g += (pr.G[i] - V[i]) * (pr.G[i] - V[i]) / NR;
    CHECK(fabs(an.stats[BLPO_STAT_CRITIC_LOSS_AFTER] - g) < 1e-5 * (1 + g),
          "critic loss after %g vs %g", an.stats[BLPO_STAT_CRITIC_LOSS_AFTER], g);
  }
  double fda[MAXP], fdc[MAXP], h = 1e-6;
  for (size_t i = 0; i < pr.am.num_params; i++) {
    double s = aw[i];
    aw[i] = s + h;
    double fp = ref_L(&pr, aw, cw);
    aw[i] = s - h;
    double fm = ref_L(&pr, aw, cw);
    aw[i] = s;
    fda[i] = (fp - fm) / (2 * h);
  }
  for (size_t i = 0; i < pr.cm.num_params; i++) {
    double s = cw[i];
    cw[i] = s + h;
    double fp = ref_L(&pr, aw, cw);
    cw[i] = s - h;
    double fm = ref_L(&pr, aw, cw);
    cw[i] = s;
    fdc[i] = (fp - fm) / (2 * h);
  }
  double eg = rel_err_d(an.ag, fda, pr.am.num_params, 1e-4);
  double ev = rel_err_d(an.v, fdc, pr.cm.num_params, 1e-4);
  printf("g_theta vs FD: %.2e   v (through GAE) vs FD: %.2e\n", eg, ev);
  CHECK(eg < 1e-4, "g_theta rel err %g", eg);
  CHECK(ev < 1e-4, "v rel err %g", ev);
}

static void test_mixed_term(blpo_backend *be) {
  problem pr;
  double aw[MAXP], cw[MAXP], x[MAXP];
  make_problem(&pr, aw, cw);
  for (size_t i = 0; i < pr.cm.num_params; i++)
    x[i] = (float)nrand();
  static analytic an;
  run_actor(be, &pr, aw, cw, &an);
  /* analytic p: critic tangents along x, mixed weights, actor backward */
  float xf[MAXP], vdot[NR], vdl[MT], cdot[NR], dhead[NR * 2], p[MAXP];
  to_f(x, xf, pr.cm.num_params);
  size_t tw = be->mlp_tangent_work(&pr.cm, NR, 1);
  float *work = malloc(sizeof(float) * tw);
  for (int i = 0; i < NR; i++)
    vdot[i] = cdot[i] = NAN;
  for (int i = 0; i < MAXP; i++)
    p[i] = NAN;
  be->mlp_tangent(be, &pr.cm, 1, an.cw, an.obs, NR, an.cacts, 1, xf, vdot, work);
  be->mlp_tangent(be, &pr.cm, 1, an.cw, an.last, MT, an.lacts, 1, xf, vdl, work);
  const float *ah = an.aacts + blpo_mlp_act_offset(&pr.am, 3, NR);
  be->mixed_head(be, &an.d, &pr.am, an.aw, T, MT, ah, 0, an.act, an.done, vdot, vdl, an.rho, an.adv,
                 an.af, an.resid, (float)pr.gamma, (float)pr.lambda, cdot, dhead, p);
  be->mlp_backward(be, &pr.am, 1, an.aw, an.obs, NR, an.aacts, dhead, p, an.scratch);
  free(work);
  /* V-dot against FD of the double critic along x */
  double Vp[NR], Vm[NR], Vlp[MT], Vlm[MT], Ad[NR], cwp[MAXP], cwm[MAXP], e = 1e-6;
  for (size_t i = 0; i < pr.cm.num_params; i++) {
    cwp[i] = cw[i] + e * x[i];
    cwm[i] = cw[i] - e * x[i];
  }
  ref_values_adv(&pr, cwp, Vp, Vlp, Ad);
  ref_values_adv(&pr, cwm, Vm, Vlm, Ad);
  double fdv[NR];
  for (int i = 0; i < NR; i++)
    fdv[i] = (Vp[i] - Vm[i]) / (2 * e);
  double evd = rel_err_d(vdot, fdv, NR, 1e-4);
  CHECK(evd < 1e-4, "Vdot rel err %g", evd);
  /* p_i = d/de d/dtheta_i f2(theta, w + e x): mixed central differences */
  double fd[MAXP], h = 1e-4, eps = 1e-4;
  for (size_t i = 0; i < pr.am.num_params; i++) {
    double s = aw[i];
    for (size_t q = 0; q < pr.cm.num_params; q++) {
      cwp[q] = cw[q] + eps * x[q];
      cwm[q] = cw[q] - eps * x[q];
    }
    aw[i] = s + h;
    double fpp = ref_f2(&pr, aw, cwp), fpm = ref_f2(&pr, aw, cwm);
    aw[i] = s - h;
    double fmp = ref_f2(&pr, aw, cwp), fmm = ref_f2(&pr, aw, cwm);
    aw[i] = s;
    fd[i] = (fpp - fpm - fmp + fmm) / (4 * h * eps);
  }
  double ep = rel_err_d(p, fd, pr.am.num_params, 1e-4);
  printf("Vdot vs FD: %.2e   p vs FD of grad_theta f2 along x: %.2e\n", evd, ep);
  CHECK(ep < 1e-3, "p rel err %g", ep);
}

/* ---- solvers --------------------------------------------------------------- */

/* Solves (A) y = b in double by Gaussian elimination with partial pivoting. */
static void solve_d(double *A, double *b, int n) {
  for (int c = 0; c < n; c++) {
    int piv = c;
    for (int r = c + 1; r < n; r++)
      if (fabs(A[r * n + c]) > fabs(A[piv * n + c]))
        piv = r;
    for (int k = 0; k < n; k++) {
      double t = A[c * n + k];
      A[c * n + k] = A[piv * n + k];
      A[piv * n + k] = t;
    }
    double t = b[c];
    b[c] = b[piv];
    b[piv] = t;
    for (int r = c + 1; r < n; r++) {
      double f = A[r * n + c] / A[c * n + c];
      for (int k = c; k < n; k++)
        A[r * n + k] -= f * A[c * n + k];
      b[r] -= f * b[c];
    }
  }
  for (int r = n - 1; r >= 0; r--) {
    double s = b[r];
    for (int k = r + 1; k < n; k++)
      s -= A[r * n + k] * b[k];
    b[r] = s / A[r * n + r];
  }
}

static void test_solvers(blpo_backend *be) {
  /* a small critic on enough samples that H has full rank */
  enum { n = 64, MAXC = 64 };
  const int hidden[1] = {6};
  blpo_mlp cm;
  blpo_mlp_init_shape(&cm, OD, hidden, 1, 1, BLPO_ACT_TANH, 0);
  int np = (int)cm.num_params; /* 3*6+6+6+1 = 31 */
  float w[MAXC], x[n * OD], G[n], acts[n * 7], v[MAXC];
  for (int i = 0; i < np; i++)
    w[i] = (float)(0.7 * nrand());
  for (int i = 0; i < n * OD; i++)
    x[i] = (float)nrand();
  for (int i = 0; i < n; i++)
    G[i] = (float)nrand();
  for (int i = 0; i < np; i++)
    v[i] = (float)nrand();
  be->mlp_forward(be, &cm, 1, w, x, n, acts);
  size_t hw = be->critic_hvp_work(&cm, n, np);
  float *work = malloc(sizeof(float) * hw);
  static float rows[MAXC * MAXC], H[MAXC * MAXC];
  int32_t idx[MAXC];
  for (int i = 0; i < np; i++)
    idx[i] = np - 1 - i; /* a permuted full index set */
  be->critic_hvp_rows(be, &cm, 1, w, x, n, acts, G, np, idx, rows, work);
  /* dense H from the rows, the exact solve in double */
  static double Hd[MAXC * MAXC];
  for (int a = 0; a < np; a++)
    for (int b = 0; b < np; b++)
      Hd[idx[a] * np + b] = rows[a * np + b];
  float rho = 0.5f;
  static double A[MAXC * MAXC];
  double xe[MAXC];
  for (int a = 0; a < np; a++) {
    for (int b = 0; b < np; b++)
      A[a * np + b] = 0.5 * (Hd[a * np + b] + Hd[b * np + a]) + (a == b ? rho : 0);
    xe[a] = v[a];
  }
  solve_d(A, xe, np);
  if (be->reserve_solver(be, 1, np, (size_t)np, 1) != 0) {
    CHECK(0, "reserve_solver failed");
    return;
  }
  float xn[MAXC], st[BLPO_STAT_COUNT] = {0};
  for (int i = 0; i < MAXC; i++)
    xn[i] = NAN;
  be->nystrom_solve(be, 1, (size_t)np, np, rows, idx, v, rho, 0.0f, 1e-6f * np, xn, st);
  double en = rel_err_d(xn, xe, np, 0);
  printf("Nystrom k = P_c = %d, gamma = 0 vs exact: rel err %.2e (kept rank %g)\n", np, en,
         st[BLPO_STAT_RANK]);
  CHECK(en < 2e-3, "nystrom k=P_c rel err %g", en);
  /* dense solver through the backend */
  for (int a = 0; a < np; a++)
    for (int b = 0; b < np; b++)
      H[a * np + b] = (float)(0.5 * (Hd[a * np + b] + Hd[b * np + a]));
  float xd[MAXC];
  be->dense_solve(be, 1, (size_t)np, H, v, rho, xd);
  double ed = rel_err_d(xd, xe, np, 0);
  CHECK(ed < 1e-3, "dense solve rel err %g", ed);
  /* CG with exact HVPs, at a shift that makes H + rho I positive definite
   * (H itself is indefinite: the residual term of g's Hessian) */
  float cg[4 * MAXC], xc[MAXC], st2[BLPO_STAT_COUNT] = {0}, rho_cg = 50.0f;
  for (int a = 0; a < np; a++) {
    for (int b = 0; b < np; b++)
      A[a * np + b] = 0.5 * (Hd[a * np + b] + Hd[b * np + a]) + (a == b ? rho_cg : 0);
    xe[a] = v[a];
  }
  solve_d(A, xe, np);
  be->cg_solve(be, &cm, 1, w, x, n, acts, G, v, rho_cg, 200, 1e-7f, xc, cg, work, st2);
  double ec = rel_err_d(xc, xe, np, 0);
  printf("CG vs exact: rel err %.2e (final residual %.1e)\n", ec, st2[BLPO_STAT_CG_RESID]);
  CHECK(ec < 2e-3, "cg rel err %g", ec);
  free(work);
}

/* A synthetic symmetric H of known rank r < k: the cut-off must keep exactly
 * r eigenpairs and the solve must equal the exact Woodbury form with M^+. */
static void test_cutoff(blpo_backend *be) {
  enum { np = 12, k = 6, r = 3 };
  double Q[np * r], lam[r] = {4.0, -1.5, 0.7};
  for (int i = 0; i < np * r; i++)
    Q[i] = nrand();
  double H[np * np];
  for (int a = 0; a < np; a++)
    for (int b = 0; b < np; b++) {
      double s = 0;
      for (int q = 0; q < r; q++)
        s += Q[a * r + q] * lam[q] * Q[b * r + q];
      H[a * np + b] = s;
    }
  int32_t idx[k] = {1, 4, 5, 7, 9, 11};
  float rows[k * np], v[np];
  for (int a = 0; a < k; a++)
    for (int b = 0; b < np; b++)
      rows[a * np + b] = (float)H[idx[a] * np + b];
  for (int i = 0; i < np; i++)
    v[i] = (float)nrand();
  if (be->reserve_solver(be, 1, k, np, 0) != 0) {
    CHECK(0, "reserve_solver");
    return;
  }
  float x[np], st[BLPO_STAT_COUNT] = {0}, rho = 2.0f, ridge = 0.0f;
  be->nystrom_solve(be, 1, np, k, rows, idx, v, rho, ridge, 1e-6f * k, x, st);
  CHECK(st[BLPO_STAT_RANK] == r, "kept rank %g, expected %d", st[BLPO_STAT_RANK], r);
  /* reference: the rows here come from a rank-r H whose k x k core has rank
   * r, so C^T M^+ C = H exactly; solve (H + rho I) x = v in double */
  double A[np * np], xe[np];
  for (int a = 0; a < np; a++) {
    for (int b = 0; b < np; b++)
      A[a * np + b] = H[a * np + b] + (a == b ? rho : 0);
    xe[a] = v[a];
  }
  solve_d(A, xe, np);
  double e = rel_err_d(x, xe, np, 0);
  printf("rank-deficient core (k = %d, rank %d): kept %g, solve rel err %.2e\n", k, r,
         st[BLPO_STAT_RANK], e);
  CHECK(e < 1e-4, "cut-off solve rel err %g", e);
  /* an all-zero core: nothing kept, x = v / rho, a counted fault */
  memset(rows, 0, sizeof(rows));
  float st2[BLPO_STAT_COUNT] = {0};
  be->nystrom_solve(be, 1, np, k, rows, idx, v, rho, 1.0f, 1e-6f * k, x, st2);
  CHECK(st2[BLPO_STAT_RANK] == 0 && st2[BLPO_STAT_CORE_FAULTS] == 1, "zero core: rank %g faults %g",
        st2[BLPO_STAT_RANK], st2[BLPO_STAT_CORE_FAULTS]);
  CHECK(fabsf(x[3] - v[3] / rho) < 1e-6f, "zero core fallback");
}

int main(void) {
  blpo_backend *be = blpo_backend_cpu_create(0);
  test_gradients(be);
  test_mixed_term(be);
  test_solvers(be);
  test_cutoff(be);
  be->destroy(be);
  return test_summary("test_blpo");
}
