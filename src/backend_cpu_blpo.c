/* CPU backend operations of the nested critic and the BLPO hypergradient
 * (blpo.md step 4): the BLPO actor loss with the GAE adjoint, the mixed
 * term's head weights, the Nystrom solve (LAPACK ssyevd + sgesv), CG, the
 * dense solve and the norm bound. Per-element math comes from the BLPO_HD
 * headers shared with the CUDA kernels; sums run in a fixed order. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "blpo/backend.h"
#include "blpo/blpo_math.h"
#include "blpo/blpo_rows.h"
#include "blpo/gae.h"
#include "blpo/heads.h"
#include "blpo/second_order.h"
#include "cpu_backend_internal.h"

/* LAPACK (Fortran interface; hidden string-length arguments are not needed
 * for single-character options with gfortran's ABI on x86-64). */
extern void ssyevd_(const char *jobz, const char *uplo, const int *n, float *a, const int *lda,
                    float *w, float *work, const int *lwork, int *iwork, const int *liwork,
                    int *info);
extern void sgesv_(const int *n, const int *nrhs, float *a, const int *lda, int *ipiv, float *b,
                   const int *ldb, int *info);

/* OpenBLAS's LAPACK splits even a 5x5 ssyevd over the OpenMP threads (the
 * ssymv/ssyr2 inside ssytrd add up per-thread partial sums), so the last bits
 * of the eigenvectors, and with them the whole BLPO run, depended on
 * run.threads. The Nystrom core is k x k: one thread costs nothing there, and
 * the result then depends only on the seed. */
static int lapack_serial_begin(void) {
  int saved = omp_get_max_threads();
  omp_set_num_threads(1);
  return saved;
}

static void lapack_serial_end(int saved) { omp_set_num_threads(saved); }

static void cpu_axpy(blpo_backend *be, int P, size_t count, float alpha, const float *src,
                     float *dst) {
  (void)be;
  size_t total = (size_t)P * count;
#pragma omp parallel for schedule(static) if (total >= 16384)
  for (size_t i = 0; i < total; i++)
    dst[i] += alpha * src[i];
}

static void cpu_dot(blpo_backend *be, int P, size_t count, const float *a, const float *b,
                    float *out) {
  (void)be;
#pragma omp parallel for schedule(static) if (blpo_cpu_agents_parallel(P, 0))
  for (int p = 0; p < P; p++) {
    double s = 0;
    const float *x = a + (size_t)p * count, *y = b + (size_t)p * count;
    for (size_t i = 0; i < count; i++)
      s += (double)x[i] * y[i];
    out[p] = (float)s;
  }
}

static void cpu_value_loss(blpo_backend *be, int P, int n, const float *value, size_t vstride,
                           const float *target, float *dvalue, float *stats, int slot) {
  (void)be;
#pragma omp parallel for schedule(static) if (blpo_cpu_agents_parallel(P, 0))
  for (int p = 0; p < P; p++) {
    double s = 0;
    for (int i = 0; i < n; i++) {
      float e = target[(size_t)p * n + i] - value[p * vstride + i];
      dvalue[(size_t)p * n + i] = -2.0f * e / (float)n;
      s += (double)e * e;
    }
    if (slot >= 0)
      stats[(size_t)p * BLPO_STAT_COUNT + slot] += (float)(s / n);
  }
}

/* cpu_blpo_actor for agent p. */
static void blpo_actor_agent(int p, const blpo_dims *d, const blpo_mlp *actor,
                             const float *actor_params, int T, int m, const float *head,
                             size_t head_stride, const float *value, size_t value_stride,
                             const float *value_last, size_t last_stride, const float *actions,
                             const float *logp_old, const float *reward, const float *done,
                             const float *target, float gamma, float lambda, float clip_eps,
                             float clip_f, float *dhead, float *actor_grad, float *vbar,
                             float *vbar_last, float *rho, float *adv, float *alpha_f, float *resid,
                             float *stats) {
  int n = T * m, Y = d->head_dim, A = d->act_dim;
  float inv_n = 1.0f / (float)n;
  size_t o = (size_t)p * n;
  const float *val = value + p * value_stride;
  const float *log_std = actor_params + (size_t)p * actor->num_params + actor->num_mlp_params;
  float *g_log_std = actor_grad + (size_t)p * actor->num_params + actor->num_mlp_params;
#pragma omp parallel for schedule(static) if (m >= 512)
  for (int j = 0; j < m; j++)
    blpo_gae_column(reward + o + j, done + o + j, val + j, value_last[p * last_stride + j], T, m,
                    gamma, lambda, adv + o + j, NULL);
  double lsum = 0, vsum = 0, gls[BLPO_ENV_MAX_ACT] = {0};
  for (int i = 0; i < n; i++) {
    size_t r = o + i;
    const float *z = head + p * head_stride + (size_t)i * Y;
    float dls[BLPO_ENV_MAX_ACT];
    lsum += blpo_actor_row(d->discrete, d->num_actions, A, z, log_std, actions + r * A, logp_old[r],
                           adv[r], target[r], val[i], clip_eps, clip_f, inv_n, dhead + r * Y, dls,
                           &vbar[r], &rho[r], &alpha_f[r], &resid[r]);
    vsum += (double)resid[r] * resid[r]; /* as value_loss: the same terms in the same order */
    if (!d->discrete)
      for (int k = 0; k < A; k++)
        gls[k] += dls[k];
  }
  if (!d->discrete)
    for (int k = 0; k < A; k++)
      g_log_std[k] = (float)gls[k];
#pragma omp parallel for schedule(static) if (m >= 512)
  for (int j = 0; j < m; j++)
    blpo_gae_adjoint_column(vbar + o + j, done + o + j, T, m, gamma, lambda, vbar + o + j,
                            &vbar_last[(size_t)p * m + j]);
  stats[(size_t)p * BLPO_STAT_COUNT + BLPO_STAT_ACTOR_LOSS] += (float)(-lsum / n);
  stats[(size_t)p * BLPO_STAT_COUNT + BLPO_STAT_CRITIC_LOSS_AFTER] += (float)(vsum / n);
}

static void cpu_blpo_actor(blpo_backend *be, const blpo_dims *d, const blpo_mlp *actor,
                           const float *actor_params, int T, int m, const float *head,
                           size_t head_stride, const float *value, size_t value_stride,
                           const float *value_last, size_t last_stride, const float *actions,
                           const float *logp_old, const float *reward, const float *done,
                           const float *target, float gamma, float lambda, float clip_eps,
                           float clip_f, float *dhead, float *actor_grad, float *vbar,
                           float *vbar_last, float *rho, float *adv, float *alpha_f, float *resid,
                           float *stats) {
  (void)be;
  /* an agent's trajectories are split between the threads from 512 on */
  BLPO_CPU_FOR_AGENTS(blpo_cpu_agents_parallel(d->P, m >= 512), d->P, {
    blpo_actor_agent(p, d, actor, actor_params, T, m, head, head_stride, value, value_stride,
                     value_last, last_stride, actions, logp_old, reward, done, target, gamma,
                     lambda, clip_eps, clip_f, dhead, actor_grad, vbar, vbar_last, rho, adv,
                     alpha_f, resid, stats);
  });
}

/* cpu_mixed_head for agent p. */
static void mixed_head_agent(int p, const blpo_dims *d, const blpo_mlp *actor,
                             const float *actor_params, int T, int m, const float *head,
                             size_t head_stride, const float *actions, const float *done,
                             const float *vdot, const float *vdot_last, const float *rho,
                             const float *adv, const float *alpha_f, const float *resid,
                             float gamma, float lambda, float *cdot, float *dhead, float *p_grad) {
  int n = T * m, Y = d->head_dim, A = d->act_dim;
  float inv_n = 1.0f / (float)n;
  size_t o = (size_t)p * n;
  const float *log_std = actor_params + (size_t)p * actor->num_params + actor->num_mlp_params;
#pragma omp parallel for schedule(static) if (m >= 512)
  for (int j = 0; j < m; j++) {
    /* adot into cdot, then cdot overwritten in place (same index, same pass) */
    blpo_gae_tangent_column(vdot + o + j, vdot_last[(size_t)p * m + j], done + o + j, T, m, gamma,
                            lambda, cdot + o + j);
    blpo_mixed_coef_column(resid + o + j, vdot + o + j, adv + o + j, cdot + o + j, rho + o + j,
                           alpha_f + o + j, T, m, inv_n, cdot + o + j);
  }
  double gls[BLPO_ENV_MAX_ACT] = {0};
  for (int i = 0; i < n; i++) {
    size_t r = o + i;
    const float *z = head + p * head_stride + (size_t)i * Y;
    float dls[BLPO_ENV_MAX_ACT];
    blpo_head_logp_grad(d->discrete, d->num_actions, A, z, log_std, actions + r * A, cdot[r],
                        dhead + r * Y, dls);
    if (!d->discrete)
      for (int k = 0; k < A; k++)
        gls[k] += dls[k];
  }
  if (!d->discrete) {
    float *pg = p_grad + (size_t)p * actor->num_params + actor->num_mlp_params;
    for (int k = 0; k < A; k++)
      pg[k] = (float)gls[k];
  }
}

static void cpu_mixed_head(blpo_backend *be, const blpo_dims *d, const blpo_mlp *actor,
                           const float *actor_params, int T, int m, const float *head,
                           size_t head_stride, const float *actions, const float *done,
                           const float *vdot, const float *vdot_last, const float *rho,
                           const float *adv, const float *alpha_f, const float *resid, float gamma,
                           float lambda, float *cdot, float *dhead, float *p_grad) {
  (void)be;
  /* an agent's trajectories are split between the threads from 512 on */
  BLPO_CPU_FOR_AGENTS(blpo_cpu_agents_parallel(d->P, m >= 512), d->P, {
    mixed_head_agent(p, d, actor, actor_params, T, m, head, head_stride, actions, done, vdot,
                     vdot_last, rho, adv, alpha_f, resid, gamma, lambda, cdot, dhead, p_grad);
  });
}

/* Agent p's Nystrom solve in workspace set ws (reserve_solver sizes one set
 * per agent), on the calling thread. */
static void nystrom_agent(blpo_cpu_impl *impl, int p, int ws, size_t np, int k, const float *rows,
                          const int32_t *idx, const float *v, float rho, float ridge, float tol,
                          float *x, float *stats) {
  size_t kk = (size_t)k, w = (size_t)ws;
  float *M = impl->nys_core + w * kk * kk, *lam = impl->nys_lambda + w * kk;
  float *B = impl->nys_b + w * kk * np, *S = impl->nys_s + w * kk * kk;
  float *bv = impl->nys_bv + w * kk;
  float *work = impl->nys_work + w * (size_t)impl->nys_lwork;
  int *iwork = impl->nys_iwork + w * (size_t)impl->nys_liwork;
  int *ipiv = impl->nys_ipiv + w * kk, *keep = impl->nys_keep + w * kk;
  {
    const float *C = rows + (size_t)p * k * np;
    const int32_t *ix = idx + (size_t)p * k;
    const float *vp = v + (size_t)p * np;
    float *xp = x + (size_t)p * np;
    float *st = stats + (size_t)p * BLPO_STAT_COUNT;
    /* core M = C[:, K], symmetrised: the float HVP rows are symmetric only
     * up to rounding. Column-major for LAPACK (symmetric, so the same). */
    for (int a = 0; a < k; a++)
      for (int b = 0; b < k; b++)
        M[(size_t)a * k + b] = 0.5f * (C[(size_t)a * np + ix[b]] + C[(size_t)b * np + ix[a]]);
    int info = 0, lwork = impl->nys_lwork, liwork = impl->nys_liwork;
    ssyevd_("V", "U", &k, M, &k, lam, work, &lwork, iwork, &liwork, &info);
    float lmax = 0.0f;
    for (int a = 0; a < k; a++)
      lmax = fmaxf(lmax, fabsf(lam[a]));
    /* keep |lambda| > tol max|lambda|; eigenvector a is column a of M */
    int r = 0;
    float lmin_kept = INFINITY;
    for (int a = 0; a < k && info == 0; a++)
      if (fabsf(lam[a]) > tol * lmax && lmax > 0.0f) {
        keep[r++] = a;
        lmin_kept = fminf(lmin_kept, fabsf(lam[a]));
      }
    st[BLPO_STAT_RANK] += (float)r;
    st[BLPO_STAT_EIG_MAX] += lmax;
    st[BLPO_STAT_EIG_MIN] += r ? lmin_kept : 0.0f;
    float inv_rho = 1.0f / rho;
    if (r == 0) { /* nothing left of the sketch: (rho I)^-1 v */
      for (size_t i = 0; i < np; i++)
        xp[i] = vp[i] * inv_rho;
      st[BLPO_STAT_CORE_FAULTS] += 1.0f;
      return;
    }
    /* B = U_r^T C (r x np), row-major */
    for (int a = 0; a < r; a++) {
      const float *u = M + (size_t)keep[a] * k;
      float *brow = B + (size_t)a * np;
      memset(brow, 0, sizeof(float) * np);
      for (int q = 0; q < k; q++) {
        float uq = u[q];
        const float *crow = C + (size_t)q * np;
        for (size_t i = 0; i < np; i++)
          brow[i] += uq * crow[i];
      }
    }
    /* S = rho (Lambda_r + ridge I) + B B^T; bv = B v */
    for (int a = 0; a < r; a++) {
      double sv = 0;
      for (size_t i = 0; i < np; i++)
        sv += (double)B[(size_t)a * np + i] * vp[i];
      bv[a] = (float)sv;
      for (int b = 0; b <= a; b++) {
        double s = 0;
        for (size_t i = 0; i < np; i++)
          s += (double)B[(size_t)a * np + i] * B[(size_t)b * np + i];
        S[(size_t)a * r + b] = S[(size_t)b * r + a] = (float)s;
      }
      S[(size_t)a * r + a] += rho * (lam[keep[a]] + ridge);
    }
    int one = 1;
    sgesv_(&r, &one, S, &r, ipiv, bv, &r, &info);
    if (info != 0) { /* singular S: fall back to (rho I)^-1 v */
      for (size_t i = 0; i < np; i++)
        xp[i] = vp[i] * inv_rho;
      st[BLPO_STAT_CORE_FAULTS] += 1.0f;
      return;
    }
    /* x = (v - B^T S^-1 B v) / rho */
    for (size_t i = 0; i < np; i++) {
      float s = vp[i];
      for (int a = 0; a < r; a++)
        s -= B[(size_t)a * np + i] * bv[a];
      xp[i] = s * inv_rho;
    }
  }
}

static void cpu_nystrom_solve(blpo_backend *be, int P, size_t np, int k, const float *rows,
                              const int32_t *idx, const float *v, float rho, float ridge, float tol,
                              float *x, float *stats) {
  blpo_cpu_impl *impl = be->impl;
  if (P <= impl->nys_agents && blpo_cpu_agents_parallel(P, 0)) {
    /* agents side by side; inside a parallel region OpenBLAS runs LAPACK on
     * the calling thread, as lapack_serial_begin makes it below */
#pragma omp parallel for schedule(dynamic)
    for (int p = 0; p < P; p++)
      nystrom_agent(impl, p, p, np, k, rows, idx, v, rho, ridge, tol, x, stats);
    return;
  }
  int threads = lapack_serial_begin(); /* the whole solve is serial code around LAPACK */
  for (int p = 0; p < P; p++)
    nystrom_agent(impl, p, 0, np, k, rows, idx, v, rho, ridge, tol, x, stats);
  lapack_serial_end(threads);
}

static void cpu_critic_hvp_rows(blpo_backend *be, const blpo_mlp *m, int P, const float *params,
                                const float *x, int n, const float *acts, const float *target,
                                int K, const int32_t *idx, float *rows, float *work) {
  (void)be;
  blpo_cpu_critic_hvp_rows(m, P, params, x, n, acts, target, K, idx, rows, work);
}

static void cpu_critic_hvp(blpo_backend *be, const blpo_mlp *m, int P, const float *params,
                           const float *x, int n, const float *acts, const float *target, int K,
                           const float *dirs, float *hv, float *work) {
  (void)be;
  blpo_cpu_critic_hvp(m, P, params, x, n, acts, target, K, dirs, hv, work);
}

static size_t cpu_critic_hvp_work(const blpo_mlp *m, int n, int K) {
  return blpo_cpu_critic_hvp_work_floats(m, n, K);
}

static void cpu_mlp_tangent(blpo_backend *be, const blpo_mlp *m, int P, const float *params,
                            const float *x, int n, const float *acts, int K, const float *dirs,
                            float *ry, float *work) {
  (void)be;
  blpo_cpu_mlp_tangent(m, P, params, x, n, acts, K, dirs, work, ry);
}

static void cpu_mlp_tangent_many(blpo_backend *be, int P, int count,
                                 const blpo_mlp_tangent_pass *t) {
  for (int k = 0; k < count; k++)
    cpu_mlp_tangent(be, t[k].m, P, t[k].params, t[k].x, t[k].n, t[k].acts, t[k].K, t[k].dirs,
                    t[k].ry, t[k].work);
}

static size_t cpu_mlp_tangent_work(const blpo_mlp *m, int n, int K) {
  return (size_t)K * n * m->act_floats_per_row;
}

static void cpu_cg_solve(blpo_backend *be, const blpo_mlp *m, int P, const float *params,
                         const float *x_in, int n, const float *acts, const float *target,
                         const float *v, float rho, int iters, float tol, float *x, float *cg,
                         float *work, float *stats) {
  size_t np = m->num_params;
  for (int p = 0; p < P; p++) {
    const float *pp = params + (size_t)p * np;
    const float *xin = x_in + (size_t)p * n * m->dims[0];
    const float *ac = acts + (size_t)p * n * m->act_floats_per_row;
    const float *tg = target + (size_t)p * n;
    const float *vp = v + (size_t)p * np;
    float *xp = x + (size_t)p * np;
    float *r = cg, *dir = cg + np, *hd = cg + 2 * np;
    double vnorm = 0, rr = 0;
    for (size_t i = 0; i < np; i++) {
      xp[i] = 0.0f;
      r[i] = dir[i] = vp[i];
      vnorm += (double)vp[i] * vp[i];
    }
    rr = vnorm;
    vnorm = sqrt(vnorm);
    for (int it = 0; it < iters && sqrt(rr) > tol * vnorm; it++) {
      blpo_cpu_critic_hvp(m, 1, pp, xin, n, ac, tg, 1, dir, hd, work);
      double dhd = 0;
      for (size_t i = 0; i < np; i++) {
        hd[i] += rho * dir[i];
        dhd += (double)dir[i] * hd[i];
      }
      if (dhd <= 0) /* H + rho I not positive along dir: stop with what we have */
        break;
      float alpha = (float)(rr / dhd);
      double rr_new = 0;
      for (size_t i = 0; i < np; i++) {
        xp[i] += alpha * dir[i];
        r[i] -= alpha * hd[i];
        rr_new += (double)r[i] * r[i];
      }
      float beta = (float)(rr_new / rr);
      rr = rr_new;
      for (size_t i = 0; i < np; i++)
        dir[i] = r[i] + beta * dir[i];
    }
    stats[(size_t)p * BLPO_STAT_COUNT + BLPO_STAT_CG_RESID] +=
        vnorm > 0 ? (float)(sqrt(rr) / vnorm) : 0.0f;
  }
  (void)be;
}

static void cpu_dense_solve(blpo_backend *be, int P, size_t np, float *hess, const float *v,
                            float rho, float *x) {
  blpo_cpu_impl *impl = be->impl;
  int n = (int)np, one = 1, info = 0;
  for (int p = 0; p < P; p++) {
    float *H = hess + (size_t)p * np * np;
    for (size_t i = 0; i < np; i++)
      H[i * np + i] += rho;
    memcpy(x + (size_t)p * np, v + (size_t)p * np, sizeof(float) * np);
    sgesv_(&n, &one, H, &n, impl->dense_ipiv, x + (size_t)p * np, &n, &info);
    if (info != 0)
      for (size_t i = 0; i < np; i++)
        x[(size_t)p * np + i] = NAN; /* singular: reported by the caller's NaN checks */
  }
}

static void cpu_hypergrad_combine(blpo_backend *be, int P, size_t count, float *g, const float *p,
                                  float beta, float *stats) {
  (void)be;
#pragma omp parallel for schedule(static) if (blpo_cpu_agents_parallel(P, 0))
  for (int a = 0; a < P; a++) {
    float *ga = g + (size_t)a * count;
    const float *pa = p + (size_t)a * count;
    double gg = 0, pp = 0, gp = 0;
    for (size_t i = 0; i < count; i++) {
      gg += (double)ga[i] * ga[i];
      pp += (double)pa[i] * pa[i];
      gp += (double)ga[i] * pa[i];
    }
    double gn = sqrt(gg), pn = sqrt(pp);
    double s = beta * gn / (pn + 1e-8);
    if (s > 1.0)
      s = 1.0;
    float sf = (float)s;
    for (size_t i = 0; i < count; i++)
      ga[i] -= sf * pa[i];
    float *st = stats + (size_t)a * BLPO_STAT_COUNT;
    st[BLPO_STAT_G_NORM] += (float)gn;
    st[BLPO_STAT_P_NORM] += (float)pn;
    st[BLPO_STAT_SCALE] += sf;
    st[BLPO_STAT_COS] += (gn > 0 && pn > 0) ? (float)(gp / (gn * pn)) : 0.0f;
  }
}

static int cpu_reserve_solver(blpo_backend *be, int P, int k, size_t np, int dense);

void blpo_cpu_free_solver(blpo_cpu_impl *impl) {
  free(impl->nys_core);
  free(impl->nys_lambda);
  free(impl->nys_b);
  free(impl->nys_s);
  free(impl->nys_bv);
  free(impl->nys_work);
  free(impl->nys_iwork);
  free(impl->nys_ipiv);
  free(impl->dense_ipiv);
  free(impl->nys_keep);
  free(impl->grad_parts);
}

int blpo_cpu_register_blpo_ops(blpo_backend *be) {
  be->reserve_solver = cpu_reserve_solver;
  be->axpy = cpu_axpy;
  be->dot = cpu_dot;
  be->value_loss = cpu_value_loss;
  be->blpo_actor = cpu_blpo_actor;
  be->mixed_head = cpu_mixed_head;
  be->mlp_tangent = cpu_mlp_tangent;
  be->mlp_tangent_work = cpu_mlp_tangent_work;
  be->mlp_tangent_many = cpu_mlp_tangent_many;
  be->critic_hvp_rows = cpu_critic_hvp_rows;
  be->critic_hvp = cpu_critic_hvp;
  be->critic_hvp_work = cpu_critic_hvp_work;
  be->nystrom_solve = cpu_nystrom_solve;
  be->cg_solve = cpu_cg_solve;
  be->dense_solve = cpu_dense_solve;
  be->hypergrad_combine = cpu_hypergrad_combine;
  return 0;
}

/* One set of Nystrom workspaces per agent, so that agents can solve side by
 * side (the dense solver's pivots: one set, it solves one agent at a time). */
static int cpu_reserve_solver(blpo_backend *be, int P, int k, size_t np, int dense) {
  blpo_cpu_impl *impl = be->impl;
  size_t sets = (size_t)(P > 1 ? P : 1);
  int lwork = -1, liwork = -1, info = 0, iw = 0;
  float wq = 0;
  if (k > 0) {
    float dummy = 0, lamq = 0;
    ssyevd_("V", "U", &k, &dummy, &k, &lamq, &wq, &lwork, &iw, &liwork, &info);
  }
  impl->nys_lwork = (int)wq + 1;
  impl->nys_liwork = iw + 1;
  free(impl->nys_core);
  free(impl->nys_lambda);
  free(impl->nys_b);
  free(impl->nys_s);
  free(impl->nys_bv);
  free(impl->nys_work);
  free(impl->nys_iwork);
  free(impl->nys_ipiv);
  free(impl->dense_ipiv);
  free(impl->nys_keep);
  impl->nys_agents = (int)sets;
  impl->nys_keep = malloc(sizeof(int) * sets * (size_t)k + 4);
  impl->nys_core = malloc(sizeof(float) * sets * (size_t)k * k + 4);
  impl->nys_lambda = malloc(sizeof(float) * sets * (size_t)k + 4);
  impl->nys_b = malloc(sizeof(float) * sets * (size_t)k * np + 4);
  impl->nys_s = malloc(sizeof(float) * sets * (size_t)k * k + 4);
  impl->nys_bv = malloc(sizeof(float) * sets * (size_t)k + 4);
  impl->nys_work = malloc(sizeof(float) * sets * (size_t)impl->nys_lwork);
  impl->nys_iwork = malloc(sizeof(int) * sets * (size_t)impl->nys_liwork);
  impl->nys_ipiv = malloc(sizeof(int) * sets * (size_t)k + 4);
  impl->dense_ipiv = dense ? malloc(sizeof(int) * np + 4) : NULL;
  if (!impl->nys_core || !impl->nys_lambda || !impl->nys_b || !impl->nys_s || !impl->nys_bv ||
      !impl->nys_work || !impl->nys_iwork || !impl->nys_ipiv || !impl->nys_keep ||
      (dense && !impl->dense_ipiv))
    return -1;
  return 0;
}
