/* The control tasks: ids, per-env state and static facts.
 * The dynamics live in envs_gpu/<task>.h as BLPO_HD inline functions; this
 * header is the contract between them, the CPU backend and the CUDA kernels. */
#ifndef BLPO_ENV_H
#define BLPO_ENV_H

#include <stdint.h>

typedef enum {
  BLPO_ENV_CARTPOLE = 0,
  BLPO_ENV_ACROBOT = 1,
  BLPO_ENV_MOUNTAINCAR = 2,
  BLPO_ENV_PENDULUM = 3,
  BLPO_ENV_MOUNTAINCAR_CONTINUOUS = 4,
  BLPO_ENV_COUNT
} blpo_env_id;

#define BLPO_ENV_MAX_STATE 4
#define BLPO_ENV_MAX_OBS 6
#define BLPO_ENV_MAX_ACT 1

/* One env's full state: physics plus what auto-reset and logging need.
 * 32 bytes, plain old data, identical on host and device. */
typedef struct {
  float s[BLPO_ENV_MAX_STATE]; /* physics state in envs.md's table order */
  int32_t t;                   /* steps taken in the current episode */
  uint32_t resets;             /* resets done so far: the reset stream's counter */
  float ep_ret;                /* undiscounted return of the current episode so far */
  int32_t ep_len;              /* length of the current episode so far */
} blpo_env_state;

typedef struct {
  const char *name; /* Gymnasium id, e.g. "CartPole-v1" */
  int state_dim;
  int obs_dim;
  int discrete;            /* 1: Categorical over num_actions; 0: Gaussian over action_dim */
  int num_actions;         /* discrete only */
  int action_dim;          /* stored action width: 1 for discrete (the index as a float) */
  float act_low, act_high; /* continuous bounds (the env clips) */
  int max_steps;           /* time limit */
} blpo_env_info;

/* Host-side table lookups (src/envs.c). */
const blpo_env_info *blpo_env_get_info(blpo_env_id id);
/* Returns -1 if name is not a known task. */
int blpo_env_from_name(const char *name);

#endif
