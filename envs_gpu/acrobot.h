/* Acrobot-v1 dynamics ("book" variant, no torque noise), as Gymnasium 1.x
 * (classic_control/acrobot.py): one RK4 step of dt 0.2 with the torque held. */
#ifndef BLPO_ACROBOT_H
#define BLPO_ACROBOT_H

#include "env_common.h"

#define BLPO_ACROBOT_STATE_DIM 4
#define BLPO_ACROBOT_OBS_DIM 6
#define BLPO_ACROBOT_NUM_ACTIONS 3
#define BLPO_ACROBOT_MAX_STEPS 500
#define BLPO_ACROBOT_MAX_VEL_1 (4.0f * BLPO_PI_F)
#define BLPO_ACROBOT_MAX_VEL_2 (9.0f * BLPO_PI_F)

/* ds/dt for s = (theta1, theta2, dtheta1, dtheta2) under torque a. */
BLPO_HD void acrobot_dsdt(const float s[4], float a, float ds[4]) {
  const float m1 = 1.0f, m2 = 1.0f, l1 = 1.0f, lc1 = 0.5f, lc2 = 0.5f, I1 = 1.0f, I2 = 1.0f;
  const float g = 9.8f;
  float theta1 = s[0], theta2 = s[1], dtheta1 = s[2], dtheta2 = s[3];
  float c2 = cosf(theta2), s2 = sinf(theta2);
  float d1 = m1 * lc1 * lc1 + m2 * (l1 * l1 + lc2 * lc2 + 2.0f * l1 * lc2 * c2) + I1 + I2;
  float d2 = m2 * (lc2 * lc2 + l1 * lc2 * c2) + I2;
  /* cos(x - pi/2) written as sin(x): the same function, without the float32
   * rounding of the shifted argument (Gymnasium's float64 shift is exact
   * to 1e-16, ours would not be). */
  float phi2 = m2 * lc2 * g * sinf(theta1 + theta2);
  float phi1 = -m2 * l1 * lc2 * dtheta2 * dtheta2 * s2 -
               2.0f * m2 * l1 * lc2 * dtheta2 * dtheta1 * s2 +
               (m1 * lc1 + m2 * l1) * g * sinf(theta1) + phi2;
  float ddtheta2 = (a + d2 / d1 * phi1 - m2 * l1 * lc2 * dtheta1 * dtheta1 * s2 - phi2) /
                   (m2 * lc2 * lc2 + I2 - d2 * d2 / d1);
  float ddtheta1 = -(d2 * ddtheta2 + phi1) / d1;
  ds[0] = dtheta1;
  ds[1] = dtheta2;
  ds[2] = ddtheta1;
  ds[3] = ddtheta2;
}

/* Gymnasium's wrap(): strict comparisons, so exactly +-pi stays put. */
BLPO_HD float acrobot_wrap(float x) {
  const float two_pi = 2.0f * BLPO_PI_F;
  /* Only reachable from a corrupt state: keeps the loops below short (and
   * terminating: inf becomes NaN, which fails both comparisons). */
  if (fabsf(x) > 16.0f * BLPO_PI_F)
    x = fmodf(x, two_pi);
  while (x > BLPO_PI_F)
    x -= two_pi;
  while (x < -BLPO_PI_F)
    x += two_pi;
  return x;
}

BLPO_HD void acrobot_transition(float s[4], const float *action, float *reward, int *terminated) {
  const float dt = 0.2f, dt2 = 0.1f;
  float torque = (float)(blpo_action_index(action[0], BLPO_ACROBOT_NUM_ACTIONS) - 1);
  float k1[4], k2[4], k3[4], k4[4], y[4];
  acrobot_dsdt(s, torque, k1);
  for (int i = 0; i < 4; i++)
    y[i] = s[i] + dt2 * k1[i];
  acrobot_dsdt(y, torque, k2);
  for (int i = 0; i < 4; i++)
    y[i] = s[i] + dt2 * k2[i];
  acrobot_dsdt(y, torque, k3);
  for (int i = 0; i < 4; i++)
    y[i] = s[i] + dt * k3[i];
  acrobot_dsdt(y, torque, k4);
  for (int i = 0; i < 4; i++)
    s[i] = s[i] + dt / 6.0f * (k1[i] + 2.0f * k2[i] + 2.0f * k3[i] + k4[i]);
  s[0] = acrobot_wrap(s[0]);
  s[1] = acrobot_wrap(s[1]);
  s[2] = blpo_clampf(s[2], -BLPO_ACROBOT_MAX_VEL_1, BLPO_ACROBOT_MAX_VEL_1);
  s[3] = blpo_clampf(s[3], -BLPO_ACROBOT_MAX_VEL_2, BLPO_ACROBOT_MAX_VEL_2);
  *terminated = -cosf(s[0]) - cosf(s[1] + s[0]) > 1.0f;
  *reward = *terminated ? 0.0f : -1.0f;
}

BLPO_HD void acrobot_obs(const float s[4], float *obs) {
  obs[0] = cosf(s[0]);
  obs[1] = sinf(s[0]);
  obs[2] = cosf(s[1]);
  obs[3] = sinf(s[1]);
  obs[4] = s[2];
  obs[5] = s[3];
}

BLPO_HD void acrobot_reset_state(float s[4], blpo_key key, uint32_t counter) {
  uint32_t w[4];
  blpo_rand4(key, 0u, counter, w);
  for (int i = 0; i < 4; i++)
    s[i] = blpo_uniform_range(w[i], -0.1f, 0.1f);
}

#endif
