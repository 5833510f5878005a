/* CartPole-v1 dynamics, as Gymnasium 1.x (classic_control/cartpole.py, Euler). */
#ifndef BLPO_CARTPOLE_H
#define BLPO_CARTPOLE_H

#include "env_common.h"

#define BLPO_CARTPOLE_STATE_DIM 4
#define BLPO_CARTPOLE_OBS_DIM 4
#define BLPO_CARTPOLE_NUM_ACTIONS 2
#define BLPO_CARTPOLE_MAX_STEPS 500
/* Gymnasium's thresholds 2.4 and 12*2*pi/360 (float64) both round *up* to
 * these floats, so for a float value "v > threshold" in exact arithmetic is
 * "v >= float(threshold)": the comparisons below decide exactly as
 * Gymnasium would on the same float state. */
#define BLPO_CARTPOLE_X_THRESHOLD 2.4f
#define BLPO_CARTPOLE_THETA_THRESHOLD 0.20943951023931953f

BLPO_HD void cartpole_transition(float s[4], const float *action, float *reward, int *terminated) {
  const float gravity = 9.8f, masspole = 0.1f, total_mass = 1.1f, length = 0.5f;
  const float polemass_length = 0.05f, tau = 0.02f;
  float x = s[0], x_dot = s[1], theta = s[2], theta_dot = s[3];
  float force = blpo_action_index(action[0], BLPO_CARTPOLE_NUM_ACTIONS) == 1 ? 10.0f : -10.0f;
  float costheta = cosf(theta), sintheta = sinf(theta);
  float temp = (force + polemass_length * theta_dot * theta_dot * sintheta) / total_mass;
  float thetaacc = (gravity * sintheta - costheta * temp) /
                   (length * (4.0f / 3.0f - masspole * costheta * costheta / total_mass));
  float xacc = temp - polemass_length * thetaacc * costheta / total_mass;
  s[0] = x + tau * x_dot;
  s[1] = x_dot + tau * xacc;
  s[2] = theta + tau * theta_dot;
  s[3] = theta_dot + tau * thetaacc;
  *terminated = s[0] <= -BLPO_CARTPOLE_X_THRESHOLD || s[0] >= BLPO_CARTPOLE_X_THRESHOLD ||
                s[2] <= -BLPO_CARTPOLE_THETA_THRESHOLD || s[2] >= BLPO_CARTPOLE_THETA_THRESHOLD;
  /* Gymnasium pays 1 on the terminal step too (0 only when stepping past it,
   * which auto-reset never does). */
  *reward = 1.0f;
}

BLPO_HD void cartpole_obs(const float s[4], float *obs) {
  for (int i = 0; i < 4; i++)
    obs[i] = s[i];
}

BLPO_HD void cartpole_reset_state(float s[4], blpo_key key, uint32_t counter) {
  uint32_t w[4];
  blpo_rand4(key, 0u, counter, w);
  for (int i = 0; i < 4; i++)
    s[i] = blpo_uniform_range(w[i], -0.05f, 0.05f);
}

#endif
