/* The per-sample pieces of PPO's combined loss (CleanRL/PureJaxRL ppo.py),
 * host and device. Means over the minibatch are applied by the caller's 1/n. */
#ifndef BLPO_PPO_LOSS_H
#define BLPO_PPO_LOSS_H

#include <math.h>

#include "hd.h"
#include "heads.h"

/* PPO minibatch loss settings. */
typedef struct {
  float clip_eps, vf_coef, ent_coef;
  int clip_value, norm_adv;
} blpo_ppo_params;

/* Clipped surrogate in minimisation form: loss = max(-A r, -A clip(r)).
 * Returns the loss; *dlogp = d loss / d log pi (r = exp(logp - logp_old)). */
BLPO_HD float blpo_clip_surrogate_r(float logp, float logp_old, float adv, float eps, float *dlogp,
                                    float *clipped, float *ratio_out) {
  float ratio = expf(logp - logp_old);
  *ratio_out = ratio;
  float rc = blpo_clampf(ratio, 1.0f - eps, 1.0f + eps);
  float l1 = -adv * ratio, l2 = -adv * rc;
  int inside = ratio >= 1.0f - eps && ratio <= 1.0f + eps;
  if (l1 >= l2 || inside) {
    *dlogp = -adv * ratio;
  } else {
    *dlogp = 0.0f;
  }
  *clipped = fabsf(ratio - 1.0f) > eps ? 1.0f : 0.0f;
  return fmaxf(l1, l2);
}

/* 0.5 max((v-G)^2, (v_old + clip(v - v_old, -eps, eps) - G)^2), or the plain
 * 0.5 (v-G)^2 when clip_value is 0. *dv = d/dv. */
BLPO_HD float blpo_value_loss(float v, float v_old, float ret, float eps, int clip_value,
                              float *dv) {
  float e1 = v - ret;
  if (!clip_value) {
    *dv = e1;
    return 0.5f * e1 * e1;
  }
  float dvc = blpo_clampf(v - v_old, -eps, eps);
  float e2 = v_old + dvc - ret;
  if (e1 * e1 >= e2 * e2) {
    *dv = e1;
    return 0.5f * e1 * e1;
  }
  int inside = (v - v_old) > -eps && (v - v_old) < eps;
  *dv = inside ? e2 : 0.0f;
  return 0.5f * e2 * e2;
}

/* One row's terms of the combined loss, summed over the minibatch by the
 * caller (then / n). */
typedef struct {
  float pg, vl, ent, kl, clipped;
} blpo_ppo_row_terms;

/* One minibatch row of the PPO loss, the body of both backends' ppo_loss:
 * head z (Y) and log_std (continuous), the stored action act (A), logp_old,
 * the normalised advantage a_n, the critic's value, value_old and the return
 * ret; inv_n = 1/n. Writes dz (Y) = d loss / d head, *dvalue, and for
 * continuous heads dls (A) = this row's log_std gradient. The categorical
 * head's softmax is computed once (blpo_cat_stats_lse) and reused for the
 * gradient, and the ratio once for the surrogate and the KL estimate. */
BLPO_HD blpo_ppo_row_terms blpo_ppo_row(int discrete, int num_actions, int A, const float *z,
                                        const float *log_std, const float *act, float logp_old,
                                        float a_n, float value, float value_old, float ret,
                                        blpo_ppo_params pp, float inv_n, float *dz, float *dvalue,
                                        float *dls) {
  blpo_ppo_row_terms t;
  float lp, h, lse = 0.0f, p[BLPO_CAT_MAX];
  int a = discrete ? (int)act[0] : 0;
  if (discrete) {
    blpo_cat_stats_lse(z, num_actions, a, &lp, &h, p, &lse);
  } else {
    lp = blpo_gauss_logp(z, log_std, act, A);
    h = blpo_gauss_entropy(log_std, A);
  }
  float dlogp, clipped, ratio;
  t.pg = blpo_clip_surrogate_r(lp, logp_old, a_n, pp.clip_eps, &dlogp, &clipped, &ratio);
  float dv;
  t.vl = blpo_value_loss(value, value_old, ret, pp.clip_eps, pp.clip_value, &dv);
  *dvalue = pp.vf_coef * dv * inv_n;
  float c_logp = dlogp * inv_n, c_ent = -pp.ent_coef * inv_n;
  if (discrete)
    blpo_cat_grad_from(z, num_actions, a, lse, h, p, c_logp, c_ent, dz);
  else
    blpo_gauss_grad(z, log_std, act, A, c_logp, c_ent, dz, dls);
  float logratio = lp - logp_old;
  t.ent = h;
  t.kl = (ratio - 1.0f) - logratio; /* ratio = expf(logratio) */
  t.clipped = clipped;
  return t;
}

#endif
