/* Per-trajectory and per-sample math of BLPO's minibatch update (blpo.md
 * step 4; derivatives.md "GAE and its adjoint", "Clipped surrogate"), host
 * and device. Arrays are time-major along one trajectory with `stride`
 * floats between consecutive steps; index T (where present) is last_obs. */
#ifndef BLPO_BLPO_MATH_H
#define BLPO_BLPO_MATH_H

#include <math.h>
#include <stddef.h>

#include "hd.h"

/* l = min(rho A, clip(rho, 1-eps, 1+eps) A) for ratio rho. Writes
 * *alpha (1, or 0 where the clipped term is strictly smaller and rho lies
 * outside the clip range: d l / d log pi = alpha rho A) and
 * *m (d l / d A: rho where rho A <= clip(rho) A, else clip(rho)). */
BLPO_HD float blpo_min_surrogate(float rho, float adv, float eps, float *alpha, float *m) {
  float rc = fminf(fmaxf(rho, 1.0f - eps), 1.0f + eps);
  float l1 = rho * adv, l2 = rc * adv;
  int outside = rho < 1.0f - eps || rho > 1.0f + eps;
  *alpha = (l2 < l1 && outside) ? 0.0f : 1.0f;
  *m = (l1 <= l2) ? rho : rc;
  return fminf(l1, l2);
}

/* Adjoint of the GAE recursion (blpo_gae_column): given abar_t = dL/dA_t,
 * writes vbar_t = dL/dV_t for t = 0..T-1 and *vbar_last = dL/dV(last_obs). */
BLPO_HD void blpo_gae_adjoint_column(const float *abar, const float *d, int T, int stride,
                                     float gamma, float lambda, float *vbar, float *vbar_last) {
  float dbar_prev = 0.0f, d_prev = 0.0f;
  for (int t = 0; t < T; t++) {
    size_t i = (size_t)t * stride;
    float carry = t > 0 ? (1.0f - d_prev) * dbar_prev : 0.0f;
    float dbar = abar[i] + gamma * lambda * carry;
    vbar[i] = -dbar + gamma * carry;
    dbar_prev = dbar;
    d_prev = d[i];
  }
  *vbar_last = gamma * (1.0f - d_prev) * dbar_prev;
}

/* GAE recursion on a tangent: delta_dot_t = gamma (1-d_t) vdot_{t+1} - vdot_t
 * with vdot_T = vdot_last; writes adot_t. */
BLPO_HD void blpo_gae_tangent_column(const float *vdot, float vdot_last, const float *d, int T,
                                     int stride, float gamma, float lambda, float *adot) {
  float a_next = 0.0f, v_next = vdot_last;
  for (int t = T - 1; t >= 0; t--) {
    size_t i = (size_t)t * stride;
    float nd = 1.0f - d[i];
    float a = gamma * nd * v_next - vdot[i] + gamma * lambda * nd * a_next;
    adot[i] = a;
    a_next = a;
    v_next = vdot[i];
  }
}

/* The mixed term's weights for one trajectory (blpo.md step d):
 *   W_tau  = sum_{t>=tau} (G_t - V_t)/(t+1),  Wdot_tau = -sum_{t>=tau} Vdot_t/(t+1)
 *   cdot_tau = -(2/n) alpha_tau rho_tau (Adot_tau W_tau + A_tau Wdot_tau)
 * resid = G - V, alpha_f from the clip_f surrogate, adot from
 * blpo_gae_tangent_column. Suffix sums run backwards in t. */
BLPO_HD void blpo_mixed_coef_column(const float *resid, const float *vdot, const float *adv,
                                    const float *adot, const float *rho, const float *alpha_f,
                                    int T, int stride, float inv_n, float *cdot) {
  float w = 0.0f, wdot = 0.0f;
  for (int t = T - 1; t >= 0; t--) {
    size_t i = (size_t)t * stride;
    w += resid[i] / (float)(t + 1);
    wdot -= vdot[i] / (float)(t + 1);
    cdot[i] = -2.0f * inv_n * alpha_f[i] * rho[i] * (adot[i] * w + adv[i] * wdot);
  }
}

#endif
