/* Adam (optax.adam semantics, eps outside the square root) per element, and
 * the global-norm clip factor: host and device. */
#ifndef BLPO_OPTIM_H
#define BLPO_OPTIM_H

#include <math.h>

#include "hd.h"
#include "schedule.h" /* blpo_adam_step_params and the per-call schedule */

BLPO_HD void blpo_adam_update(float *w, float *m, float *v, float g, blpo_adam_step_params p) {
  float mi = p.b1 * *m + (1.0f - p.b1) * g;
  float vi = p.b2 * *v + (1.0f - p.b2) * g * g;
  *m = mi;
  *v = vi;
  float mhat = mi / p.bc1, vhat = vi / p.bc2;
  *w -= p.lr * mhat / (sqrtf(vhat) + p.eps);
}

/* optax.clip_by_global_norm: scale = 1 if norm < max_norm else max_norm/norm. */
BLPO_HD float blpo_clip_scale(float norm, float max_norm) {
  if (max_norm <= 0.0f || norm < max_norm)
    return 1.0f;
  return max_norm / norm;
}

#endif
