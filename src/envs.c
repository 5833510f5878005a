/* Host-side table of the five control tasks: names, dimensions, bounds and
 * time limits. The numbers come from the dynamics headers so the table and
 * the device code cannot disagree. */
#include <string.h>

#include "blpo/env.h"
#include "envs.h"

static const blpo_env_info blpo_env_table[BLPO_ENV_COUNT] = {
    [BLPO_ENV_CARTPOLE] = {"CartPole-v1", BLPO_CARTPOLE_STATE_DIM, BLPO_CARTPOLE_OBS_DIM, 1,
                           BLPO_CARTPOLE_NUM_ACTIONS, 1, 0.0f, 0.0f, BLPO_CARTPOLE_MAX_STEPS},
    [BLPO_ENV_ACROBOT] = {"Acrobot-v1", BLPO_ACROBOT_STATE_DIM, BLPO_ACROBOT_OBS_DIM, 1,
                          BLPO_ACROBOT_NUM_ACTIONS, 1, 0.0f, 0.0f, BLPO_ACROBOT_MAX_STEPS},
    [BLPO_ENV_MOUNTAINCAR] = {"MountainCar-v0", BLPO_MOUNTAINCAR_STATE_DIM,
                              BLPO_MOUNTAINCAR_OBS_DIM, 1, BLPO_MOUNTAINCAR_NUM_ACTIONS, 1, 0.0f,
                              0.0f, BLPO_MOUNTAINCAR_MAX_STEPS},
    [BLPO_ENV_PENDULUM] = {"Pendulum-v1", BLPO_PENDULUM_STATE_DIM, BLPO_PENDULUM_OBS_DIM, 0, 0,
                           BLPO_PENDULUM_ACTION_DIM, -BLPO_PENDULUM_MAX_TORQUE,
                           BLPO_PENDULUM_MAX_TORQUE, BLPO_PENDULUM_MAX_STEPS},
    [BLPO_ENV_MOUNTAINCAR_CONTINUOUS] = {"MountainCarContinuous-v0", BLPO_MCC_STATE_DIM,
                                         BLPO_MCC_OBS_DIM, 0, 0, BLPO_MCC_ACTION_DIM, -1.0f, 1.0f,
                                         BLPO_MCC_MAX_STEPS},
};

const blpo_env_info *blpo_env_get_info(blpo_env_id id) {
  if ((int)id < 0 || (int)id >= BLPO_ENV_COUNT)
    return NULL;
  return &blpo_env_table[id];
}

int blpo_env_from_name(const char *name) {
  if (name == NULL)
    return -1;
  for (int i = 0; i < BLPO_ENV_COUNT; i++)
    if (strcmp(blpo_env_table[i].name, name) == 0)
      return i;
  return -1;
}
