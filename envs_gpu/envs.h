/* Dispatch over the five tasks plus the per-env episode logic (time limit,
 * episode statistics, auto-reset), shared by the CPU backend and the CUDA
 * kernels so both step envs identically. */
#ifndef BLPO_ENVS_H
#define BLPO_ENVS_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "blpo/env.h"
#include "blpo/hd.h"
#include "blpo/rng.h"

#include "acrobot.h"
#include "cartpole.h"
#include "env_common.h"
#include "mountaincar.h"
#include "mountaincar_continuous.h"
#include "pendulum.h"

BLPO_HD int blpo_env_max_steps(int id) {
  switch (id) {
  case BLPO_ENV_CARTPOLE:
    return BLPO_CARTPOLE_MAX_STEPS;
  case BLPO_ENV_ACROBOT:
    return BLPO_ACROBOT_MAX_STEPS;
  case BLPO_ENV_MOUNTAINCAR:
    return BLPO_MOUNTAINCAR_MAX_STEPS;
  case BLPO_ENV_PENDULUM:
    return BLPO_PENDULUM_MAX_STEPS;
  case BLPO_ENV_MOUNTAINCAR_CONTINUOUS:
    return BLPO_MCC_MAX_STEPS;
  default:
    return 0;
  }
}

BLPO_HD int blpo_env_state_dim(int id) {
  switch (id) {
  case BLPO_ENV_CARTPOLE:
    return BLPO_CARTPOLE_STATE_DIM;
  case BLPO_ENV_ACROBOT:
    return BLPO_ACROBOT_STATE_DIM;
  case BLPO_ENV_MOUNTAINCAR:
    return BLPO_MOUNTAINCAR_STATE_DIM;
  case BLPO_ENV_PENDULUM:
    return BLPO_PENDULUM_STATE_DIM;
  case BLPO_ENV_MOUNTAINCAR_CONTINUOUS:
    return BLPO_MCC_STATE_DIM;
  default:
    return 0;
  }
}

BLPO_HD int blpo_env_obs_dim(int id) {
  switch (id) {
  case BLPO_ENV_CARTPOLE:
    return BLPO_CARTPOLE_OBS_DIM;
  case BLPO_ENV_ACROBOT:
    return BLPO_ACROBOT_OBS_DIM;
  case BLPO_ENV_MOUNTAINCAR:
    return BLPO_MOUNTAINCAR_OBS_DIM;
  case BLPO_ENV_PENDULUM:
    return BLPO_PENDULUM_OBS_DIM;
  case BLPO_ENV_MOUNTAINCAR_CONTINUOUS:
    return BLPO_MCC_OBS_DIM;
  default:
    return 0;
  }
}

/* Stored action width: 1 for every task (discrete tasks store the index). */
BLPO_HD int blpo_env_act_dim(int id) { return (id >= 0 && id < BLPO_ENV_COUNT) ? 1 : 0; }

/* Pure physics: s in place, reward and termination of this step. An unknown
 * id leaves s alone and ends the episode so a bad id cannot spin silently. */
BLPO_HD void blpo_env_transition(int id, float s[4], const float *action, float *reward,
                                 int *terminated) {
  switch (id) {
  case BLPO_ENV_CARTPOLE:
    cartpole_transition(s, action, reward, terminated);
    break;
  case BLPO_ENV_ACROBOT:
    acrobot_transition(s, action, reward, terminated);
    break;
  case BLPO_ENV_MOUNTAINCAR:
    mountaincar_transition(s, action, reward, terminated);
    break;
  case BLPO_ENV_PENDULUM:
    pendulum_transition(s, action, reward, terminated);
    break;
  case BLPO_ENV_MOUNTAINCAR_CONTINUOUS:
    mountaincar_continuous_transition(s, action, reward, terminated);
    break;
  default:
    *reward = 0.0f;
    *terminated = 1;
    break;
  }
}

BLPO_HD void blpo_env_obs_from_state(int id, const float s[4], float *obs) {
  switch (id) {
  case BLPO_ENV_CARTPOLE:
    cartpole_obs(s, obs);
    break;
  case BLPO_ENV_ACROBOT:
    acrobot_obs(s, obs);
    break;
  case BLPO_ENV_MOUNTAINCAR:
    mountaincar_obs(s, obs);
    break;
  case BLPO_ENV_PENDULUM:
    pendulum_obs(s, obs);
    break;
  case BLPO_ENV_MOUNTAINCAR_CONTINUOUS:
    mountaincar_continuous_obs(s, obs);
    break;
  default:
    break;
  }
}

BLPO_HD void blpo_env_obs(int id, const blpo_env_state *st, float *obs) {
  blpo_env_obs_from_state(id, st->s, obs);
}

/* The physics state of reset number `counter` of the stream `key`: a pure
 * function of (key, counter), so resets do not depend on call order. */
BLPO_HD void blpo_env_reset_state(int id, float s[4], blpo_key key, uint32_t counter) {
  s[0] = s[1] = s[2] = s[3] = 0.0f;
  switch (id) {
  case BLPO_ENV_CARTPOLE:
    cartpole_reset_state(s, key, counter);
    break;
  case BLPO_ENV_ACROBOT:
    acrobot_reset_state(s, key, counter);
    break;
  case BLPO_ENV_MOUNTAINCAR:
    mountaincar_reset_state(s, key, counter);
    break;
  case BLPO_ENV_PENDULUM:
    pendulum_reset_state(s, key, counter);
    break;
  case BLPO_ENV_MOUNTAINCAR_CONTINUOUS:
    mountaincar_continuous_reset_state(s, key, counter);
    break;
  default:
    break;
  }
}

/* Starts a new episode: draws with counter st->resets, then counts the reset. */
BLPO_HD void blpo_env_reset(int id, blpo_env_state *st, blpo_key reset_key) {
  blpo_env_reset_state(id, st->s, reset_key, st->resets);
  st->resets += 1u;
  st->t = 0;
  st->ep_ret = 0.0f;
  st->ep_len = 0;
}

/* One step with Gymnasium's TimeLimit and auto-reset semantics. Every output
 * is written on every call (ep_return NaN and ep_length 0 when no episode
 * ended) so kernels need no branches on the caller side. final_obs_out, if
 * not NULL, receives the obs of the post-step state before any reset. */
BLPO_HD void blpo_env_step(int id, blpo_env_state *st, const float *action, blpo_key reset_key,
                           float *obs_out, float *reward, int *terminated, int *truncated,
                           float *ep_return_out, int *ep_length_out, float *final_obs_out) {
  float r;
  int term;
  blpo_env_transition(id, st->s, action, &r, &term);
  st->t += 1;
  st->ep_ret += r;
  st->ep_len += 1;
  int trunc = !term && st->t >= blpo_env_max_steps(id);
  *reward = r;
  *terminated = term;
  *truncated = trunc;
  if (final_obs_out != NULL)
    blpo_env_obs_from_state(id, st->s, final_obs_out);
  if (term || trunc) {
    *ep_return_out = st->ep_ret;
    *ep_length_out = st->ep_len;
    blpo_env_reset(id, st, reset_key);
  } else {
    *ep_return_out = NAN;
    *ep_length_out = 0;
  }
  blpo_env_obs_from_state(id, st->s, obs_out);
}

#endif
