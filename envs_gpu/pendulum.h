/* Pendulum-v1 dynamics, as Gymnasium 1.x (classic_control/pendulum.py, g = 10). */
#ifndef BLPO_PENDULUM_H
#define BLPO_PENDULUM_H

#include "env_common.h"

#define BLPO_PENDULUM_STATE_DIM 2
#define BLPO_PENDULUM_OBS_DIM 3
#define BLPO_PENDULUM_ACTION_DIM 1
#define BLPO_PENDULUM_MAX_STEPS 200
#define BLPO_PENDULUM_MAX_TORQUE 2.0f
#define BLPO_PENDULUM_MAX_SPEED 8.0f

/* ((x + pi) mod 2pi) - pi with Python's floor-based mod: fmodf keeps the
 * dividend's sign, so negatives are shifted up by one period. */
BLPO_HD float pendulum_angle_normalize(float x) {
  const float two_pi = 2.0f * BLPO_PI_F;
  float r = fmodf(x + BLPO_PI_F, two_pi);
  if (r < 0.0f)
    r += two_pi;
  return r - BLPO_PI_F;
}

BLPO_HD void pendulum_transition(float s[4], const float *action, float *reward, int *terminated) {
  const float g = 10.0f, m = 1.0f, l = 1.0f, dt = 0.05f;
  float th = s[0], thdot = s[1];
  float u = blpo_clampf(action[0], -BLPO_PENDULUM_MAX_TORQUE, BLPO_PENDULUM_MAX_TORQUE);
  float nth = pendulum_angle_normalize(th);
  float cost = nth * nth + 0.1f * thdot * thdot + 0.001f * (u * u);
  float newthdot = thdot + (3.0f * g / (2.0f * l) * sinf(th) + 3.0f / (m * l * l) * u) * dt;
  newthdot = blpo_clampf(newthdot, -BLPO_PENDULUM_MAX_SPEED, BLPO_PENDULUM_MAX_SPEED);
  s[0] = th + newthdot * dt;
  s[1] = newthdot;
  *reward = -cost;
  *terminated = 0;
}

BLPO_HD void pendulum_obs(const float s[4], float *obs) {
  obs[0] = cosf(s[0]);
  obs[1] = sinf(s[0]);
  obs[2] = s[1];
}

BLPO_HD void pendulum_reset_state(float s[4], blpo_key key, uint32_t counter) {
  uint32_t w[4];
  blpo_rand4(key, 0u, counter, w);
  s[0] = blpo_uniform_range(w[0], -BLPO_PI_F, BLPO_PI_F);
  s[1] = blpo_uniform_range(w[1], -1.0f, 1.0f);
  s[2] = 0.0f;
  s[3] = 0.0f;
}

#endif
