/* Generalised advantage estimation along one env's trajectory (time-major
 * arrays with stride `stride` between consecutive steps), host and device. */
#ifndef BLPO_GAE_H
#define BLPO_GAE_H

#include <stddef.h>

#include "hd.h"

/* delta_t = r_t + gamma (1-d_t) V_{t+1} - V_t, V_T = v_last;
 * A_t = delta_t + gamma lambda (1-d_t) A_{t+1}; G_t = A_t + V_t. */
BLPO_HD void blpo_gae_column(const float *r, const float *d, const float *v, float v_last, int T,
                             int stride, float gamma, float lambda, float *adv, float *ret) {
  float a_next = 0.0f, v_next = v_last;
  for (int t = T - 1; t >= 0; t--) {
    size_t i = (size_t)t * stride;
    float nd = 1.0f - d[i];
    float delta = r[i] + gamma * nd * v_next - v[i];
    float a = delta + gamma * lambda * nd * a_next;
    adv[i] = a;
    if (ret)
      ret[i] = a + v[i];
    a_next = a;
    v_next = v[i];
  }
}

#endif
