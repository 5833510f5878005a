/* Policy heads, per sample, host and device: Categorical over logits and the
 * diagonal Gaussian with a state-independent log_std (derivatives.md). */
#ifndef BLPO_HEADS_H
#define BLPO_HEADS_H

#include <math.h>

#include "hd.h"

#define BLPO_HALF_LOG_2PI 0.91893853320467274178f
#define BLPO_HALF_LOG_2PIE 1.41893853320467274178f
#define BLPO_CAT_MAX 16 /* most actions of a categorical head (the tasks have <= 3) */

/* Max-shifted log-softmax: logp[a] and the entropy; probs written if p != 0,
 * the log-normaliser if lse_out != 0. */
BLPO_HD void blpo_cat_stats_lse(const float *z, int k, int a, float *logp_a, float *entropy,
                                float *p, float *lse_out) {
  float zmax = z[0];
  for (int i = 1; i < k; i++)
    zmax = fmaxf(zmax, z[i]);
  float s = 0.0f;
  for (int i = 0; i < k; i++)
    s += expf(z[i] - zmax);
  float lse = zmax + logf(s);
  float h = 0.0f;
  for (int i = 0; i < k; i++) {
    float lp = z[i] - lse;
    float pi = expf(lp);
    h -= pi * lp;
    if (p)
      p[i] = pi;
  }
  if (logp_a)
    *logp_a = z[a] - lse;
  if (entropy)
    *entropy = h;
  if (lse_out)
    *lse_out = lse;
}

BLPO_HD void blpo_cat_stats(const float *z, int k, int a, float *logp_a, float *entropy, float *p) {
  blpo_cat_stats_lse(z, k, a, logp_a, entropy, p, 0);
}

/* Inverse-CDF draw from softmax(z) with u in [0,1). */
BLPO_HD int blpo_cat_sample(const float *z, int k, float u) {
  float zmax = z[0];
  for (int i = 1; i < k; i++)
    zmax = fmaxf(zmax, z[i]);
  float s = 0.0f;
  for (int i = 0; i < k; i++)
    s += expf(z[i] - zmax);
  float target = u * s, c = 0.0f;
  for (int i = 0; i < k - 1; i++) {
    c += expf(z[i] - zmax);
    if (target < c)
      return i;
  }
  return k - 1;
}

/* dz = c_logp * d log p(a)/dz + c_ent * dH/dz from blpo_cat_stats_lse's
 * log-normaliser lse, entropy h and probabilities p (the same floats
 * blpo_cat_grad computes afresh). */
BLPO_HD void blpo_cat_grad_from(const float *z, int k, int a, float lse, float h, const float *p,
                                float c_logp, float c_ent, float *dz) {
  for (int i = 0; i < k; i++) {
    float lp = z[i] - lse, pi = p[i];
    dz[i] = c_logp * ((i == a ? 1.0f : 0.0f) - pi) + c_ent * (-pi * (lp + h));
  }
}

/* dz = c_logp * d log p(a)/dz + c_ent * dH/dz. */
BLPO_HD void blpo_cat_grad(const float *z, int k, int a, float c_logp, float c_ent, float *dz) {
  float lse, h, p[BLPO_CAT_MAX];
  blpo_cat_stats_lse(z, k, a, 0, &h, p, &lse);
  blpo_cat_grad_from(z, k, a, lse, h, p, c_logp, c_ent, dz);
}

BLPO_HD float blpo_gauss_logp(const float *mu, const float *log_std, const float *a, int d) {
  float lp = 0.0f;
  for (int i = 0; i < d; i++) {
    float sd = expf(log_std[i]);
    float e = (a[i] - mu[i]) / sd;
    lp += -0.5f * e * e - log_std[i] - BLPO_HALF_LOG_2PI;
  }
  return lp;
}

BLPO_HD float blpo_gauss_entropy(const float *log_std, int d) {
  float h = 0.0f;
  for (int i = 0; i < d; i++)
    h += log_std[i] + BLPO_HALF_LOG_2PIE;
  return h;
}

/* Standard normal from two uniforms (Box-Muller, first branch). */
BLPO_HD float blpo_std_normal(float u_open0, float u2) {
  return sqrtf(-2.0f * logf(u_open0)) * cosf(6.28318530717958647692f * u2);
}

/* dmu_i = c_logp (a_i - mu_i)/sigma_i^2 ; dlog_std_i (accumulated by caller):
 * c_logp ((a_i - mu_i)^2/sigma_i^2 - 1) + c_ent. */
BLPO_HD void blpo_gauss_grad(const float *mu, const float *log_std, const float *a, int d,
                             float c_logp, float c_ent, float *dmu, float *dlog_std) {
  for (int i = 0; i < d; i++) {
    float var = expf(2.0f * log_std[i]);
    float diff = a[i] - mu[i];
    dmu[i] = c_logp * diff / var;
    dlog_std[i] = c_logp * (diff * diff / var - 1.0f) + c_ent;
  }
}

#endif
