/* The per-sample pieces of PPO's combined loss (CleanRL/PureJaxRL ppo.py),
 * host and device. Means over the minibatch are applied by the caller's 1/n. */
#ifndef BLPO_PPO_LOSS_H
#define BLPO_PPO_LOSS_H

#include <math.h>

#include "hd.h"

/* Clipped surrogate in minimisation form: loss = max(-A r, -A clip(r)).
 * Returns the loss; *dlogp = d loss / d log pi (r = exp(logp - logp_old)). */
BLPO_HD float blpo_clip_surrogate(float logp, float logp_old, float adv, float eps, float *dlogp,
                                  float *clipped) {
  float ratio = expf(logp - logp_old);
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

#endif
