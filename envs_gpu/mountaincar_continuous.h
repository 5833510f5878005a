/* MountainCarContinuous-v0 dynamics, as Gymnasium 1.x
 * (classic_control/continuous_mountain_car.py). */
#ifndef BLPO_MOUNTAINCAR_CONTINUOUS_H
#define BLPO_MOUNTAINCAR_CONTINUOUS_H

#include "env_common.h"
#include "mountaincar.h"

#define BLPO_MCC_STATE_DIM 2
#define BLPO_MCC_OBS_DIM 2
#define BLPO_MCC_ACTION_DIM 1
#define BLPO_MCC_MAX_STEPS 999
/* 0.45 rounds *down* to this float, so "p >= 0.45" in exact arithmetic is
 * "p > 0.45f" for a float p: the same decision Gymnasium makes. */
#define BLPO_MCC_GOAL_POS 0.45f

BLPO_HD void mountaincar_continuous_transition(float s[4], const float *action, float *reward,
                                               int *terminated) {
  float p = s[0], v = s[1], a = action[0];
  float force = blpo_clampf(a, -1.0f, 1.0f);
  v += force * 0.0015f - 0.0025f * cosf(3.0f * p);
  v = blpo_clampf(v, -BLPO_MOUNTAINCAR_MAX_SPEED, BLPO_MOUNTAINCAR_MAX_SPEED);
  p += v;
  p = blpo_clampf(p, BLPO_MOUNTAINCAR_MIN_POS, BLPO_MOUNTAINCAR_MAX_POS);
  if (p == BLPO_MOUNTAINCAR_MIN_POS && v < 0.0f)
    v = 0.0f;
  s[0] = p;
  s[1] = v;
  *terminated = p > BLPO_MCC_GOAL_POS && v >= 0.0f;
  /* The action penalty uses the raw action: the policy pays for leaving the
   * bounds even though the force is clipped. */
  *reward = (*terminated ? 100.0f : 0.0f) - 0.1f * a * a;
}

BLPO_HD void mountaincar_continuous_obs(const float s[4], float *obs) {
  obs[0] = s[0];
  obs[1] = s[1];
}

BLPO_HD void mountaincar_continuous_reset_state(float s[4], blpo_key key, uint32_t counter) {
  mountaincar_reset_state(s, key, counter);
}

#endif
