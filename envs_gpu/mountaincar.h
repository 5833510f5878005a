/* MountainCar-v0 dynamics, as Gymnasium 1.x (classic_control/mountain_car.py). */
#ifndef BLPO_MOUNTAINCAR_H
#define BLPO_MOUNTAINCAR_H

#include "env_common.h"

#define BLPO_MOUNTAINCAR_STATE_DIM 2
#define BLPO_MOUNTAINCAR_OBS_DIM 2
#define BLPO_MOUNTAINCAR_NUM_ACTIONS 3
#define BLPO_MOUNTAINCAR_MAX_STEPS 200
#define BLPO_MOUNTAINCAR_MIN_POS (-1.2f)
#define BLPO_MOUNTAINCAR_MAX_POS 0.6f
#define BLPO_MOUNTAINCAR_MAX_SPEED 0.07f
#define BLPO_MOUNTAINCAR_GOAL_POS 0.5f

BLPO_HD void mountaincar_transition(float s[4], const float *action, float *reward,
                                    int *terminated) {
  float p = s[0], v = s[1];
  int a = blpo_action_index(action[0], BLPO_MOUNTAINCAR_NUM_ACTIONS);
  v += (float)(a - 1) * 0.001f + cosf(3.0f * p) * (-0.0025f);
  v = blpo_clampf(v, -BLPO_MOUNTAINCAR_MAX_SPEED, BLPO_MOUNTAINCAR_MAX_SPEED);
  p += v;
  p = blpo_clampf(p, BLPO_MOUNTAINCAR_MIN_POS, BLPO_MOUNTAINCAR_MAX_POS);
  if (p == BLPO_MOUNTAINCAR_MIN_POS && v < 0.0f)
    v = 0.0f;
  s[0] = p;
  s[1] = v;
  *terminated = p >= BLPO_MOUNTAINCAR_GOAL_POS && v >= 0.0f;
  *reward = -1.0f;
}

BLPO_HD void mountaincar_obs(const float s[4], float *obs) {
  obs[0] = s[0];
  obs[1] = s[1];
}

BLPO_HD void mountaincar_reset_state(float s[4], blpo_key key, uint32_t counter) {
  uint32_t w[4];
  blpo_rand4(key, 0u, counter, w);
  s[0] = blpo_uniform_range(w[0], -0.6f, -0.4f);
  s[1] = 0.0f;
  s[2] = 0.0f;
  s[3] = 0.0f;
}

#endif
