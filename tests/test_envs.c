/* Episode logic of the envs (envs_gpu/envs.h): time-limit truncation,
 * auto-reset, episode statistics, reset streams, and the host info table. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "blpo/env.h"
#include "blpo/rng.h"
#include "envs.h"

static int failures = 0;

#define CHECK(cond, ...)                                                                           \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      failures++;                                                                                  \
      printf("FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                                       \
      printf(__VA_ARGS__);                                                                         \
      printf("\n");                                                                                \
    }                                                                                              \
  } while (0)

static const uint64_t SEED = 12345;

static void test_info_table(void) {
  const char *names[BLPO_ENV_COUNT] = {"CartPole-v1", "Acrobot-v1", "MountainCar-v0", "Pendulum-v1",
                                       "MountainCarContinuous-v0"};
  const int limits[BLPO_ENV_COUNT] = {500, 500, 200, 200, 999};
  const int obs_dims[BLPO_ENV_COUNT] = {4, 6, 2, 3, 2};
  for (int id = 0; id < BLPO_ENV_COUNT; id++) {
    const blpo_env_info *in = blpo_env_get_info((blpo_env_id)id);
    CHECK(in != NULL, "id %d", id);
    if (!in)
      continue;
    CHECK(strcmp(in->name, names[id]) == 0, "%s", in->name);
    CHECK(blpo_env_from_name(names[id]) == id, "%s", names[id]);
    CHECK(in->max_steps == limits[id] && blpo_env_max_steps(id) == limits[id], "%s", in->name);
    CHECK(in->obs_dim == obs_dims[id] && blpo_env_obs_dim(id) == in->obs_dim, "%s", in->name);
    CHECK(in->state_dim == blpo_env_state_dim(id), "%s", in->name);
    CHECK(in->obs_dim <= BLPO_ENV_MAX_OBS && in->state_dim <= BLPO_ENV_MAX_STATE, "%s", in->name);
    CHECK(in->action_dim == 1 && blpo_env_act_dim(id) == 1, "%s", in->name);
  }
  CHECK(blpo_env_get_info(BLPO_ENV_CARTPOLE)->discrete &&
            blpo_env_get_info(BLPO_ENV_CARTPOLE)->num_actions == 2,
        "CartPole actions");
  CHECK(blpo_env_get_info(BLPO_ENV_ACROBOT)->num_actions == 3, "Acrobot actions");
  CHECK(blpo_env_get_info(BLPO_ENV_MOUNTAINCAR)->num_actions == 3, "MountainCar actions");
  const blpo_env_info *pe = blpo_env_get_info(BLPO_ENV_PENDULUM);
  const blpo_env_info *mc = blpo_env_get_info(BLPO_ENV_MOUNTAINCAR_CONTINUOUS);
  CHECK(!pe->discrete && pe->act_low == -2.0f && pe->act_high == 2.0f, "Pendulum bounds");
  CHECK(!mc->discrete && mc->act_low == -1.0f && mc->act_high == 1.0f, "MCC bounds");
  CHECK(blpo_env_from_name("CartPole-v0") == -1, "unknown name");
  CHECK(blpo_env_from_name(NULL) == -1, "NULL name");
  CHECK(blpo_env_get_info(BLPO_ENV_COUNT) == NULL, "out of range id");
}

/* Runs env `id` from a fresh reset with a constant action until the first
 * episode ends; checks every step's outputs and the auto-reset. Returns the
 * episode length. */
static int run_first_episode(int id, float action, int expect_terminated) {
  const blpo_env_info *in = blpo_env_get_info((blpo_env_id)id);
  blpo_key key = blpo_make_key(SEED, BLPO_STREAM_ENV_RESET, 3);
  blpo_env_state st, shadow;
  memset(&st, 0, sizeof st);
  blpo_env_reset(id, &st, key);
  CHECK(st.resets == 1 && st.t == 0 && st.ep_len == 0 && st.ep_ret == 0.0f, "%s", in->name);
  shadow = st; /* replays the physics to know the pre-reset state */
  float sum = 0.0f;
  for (int step = 1; step <= in->max_steps; step++) {
    float obs[BLPO_ENV_MAX_OBS], fin[BLPO_ENV_MAX_OBS], want[BLPO_ENV_MAX_OBS], r, ret, sr;
    int term, trunc, len, sterm;
    blpo_env_step(id, &st, &action, key, obs, &r, &term, &trunc, &ret, &len, fin);
    blpo_env_transition(id, shadow.s, &action, &sr, &sterm);
    sum += sr;
    CHECK(r == sr && term == sterm, "%s step %d", in->name, step);
    blpo_env_obs_from_state(id, shadow.s, want);
    CHECK(memcmp(fin, want, sizeof(float) * in->obs_dim) == 0, "%s final obs step %d", in->name,
          step);
    if (!term && !trunc) {
      CHECK(isnan(ret) && len == 0, "%s: no episode ended at step %d but ret %g len %d", in->name,
            step, ret, len);
      CHECK(memcmp(obs, want, sizeof(float) * in->obs_dim) == 0, "%s obs step %d", in->name, step);
      CHECK(st.t == step && st.ep_len == step, "%s counters step %d", in->name, step);
      continue;
    }
    CHECK(term == expect_terminated, "%s ended at %d with terminated %d", in->name, step, term);
    CHECK(trunc == !term, "%s: truncated %d terminated %d", in->name, trunc, term);
    if (trunc)
      CHECK(step == in->max_steps, "%s truncated at %d", in->name, step);
    CHECK(len == step && ret == sum, "%s: ep_len %d ep_ret %g, want %d %g", in->name, len, ret,
          step, sum);
    /* auto-reset: the returned obs is the first obs of reset number 1 */
    float s1[4], first[BLPO_ENV_MAX_OBS];
    blpo_env_reset_state(id, s1, key, 1u);
    blpo_env_obs_from_state(id, s1, first);
    CHECK(memcmp(obs, first, sizeof(float) * in->obs_dim) == 0, "%s reset obs", in->name);
    CHECK(memcmp(st.s, s1, sizeof s1) == 0, "%s reset state", in->name);
    CHECK(st.resets == 2 && st.t == 0 && st.ep_len == 0 && st.ep_ret == 0.0f,
          "%s counters after reset", in->name);
    return step;
  }
  CHECK(0, "%s: no episode ended within the limit", in->name);
  return -1;
}

static void test_episodes(void) {
  /* Pendulum never terminates: truncated at exactly 200. */
  CHECK(run_first_episode(BLPO_ENV_PENDULUM, 0.5f, 0) == 200, "Pendulum");
  /* No push cannot climb out of the valley: truncated at 200 / 999. */
  CHECK(run_first_episode(BLPO_ENV_MOUNTAINCAR, 1.0f, 0) == 200, "MountainCar");
  CHECK(run_first_episode(BLPO_ENV_MOUNTAINCAR_CONTINUOUS, 0.0f, 0) == 999, "MCC");
  /* Without torque the acrobot just dangles: truncated at 500. */
  CHECK(run_first_episode(BLPO_ENV_ACROBOT, 1.0f, 0) == 500, "Acrobot");
  /* Always pushing right topples the pole within a few dozen steps. */
  int n = run_first_episode(BLPO_ENV_CARTPOLE, 1.0f, 1);
  CHECK(n > 1 && n < 100, "CartPole ended at %d", n);
}

/* Termination on the step that also reaches the limit is termination only. */
static void test_terminated_at_limit(void) {
  blpo_env_state st;
  memset(&st, 0, sizeof st);
  st.s[2] = 0.25f; /* beyond 12 degrees */
  st.t = 499;
  st.ep_len = 499;
  float a = 0.0f, obs[4], r, ret;
  int term, trunc, len;
  blpo_env_step(BLPO_ENV_CARTPOLE, &st, &a, blpo_make_key(1, BLPO_STREAM_ENV_RESET, 0), obs, &r,
                &term, &trunc, &ret, &len, NULL);
  CHECK(term == 1 && trunc == 0 && len == 500 && r == 1.0f, "term %d trunc %d len %d", term, trunc,
        len);
}

static void test_reset_streams(void) {
  const float lo[BLPO_ENV_COUNT][4] = {{-0.05f, -0.05f, -0.05f, -0.05f},
                                       {-0.1f, -0.1f, -0.1f, -0.1f},
                                       {-0.6f, 0, 0, 0},
                                       {-BLPO_PI_F, -1.0f, 0, 0},
                                       {-0.6f, 0, 0, 0}};
  const float hi[BLPO_ENV_COUNT][4] = {{0.05f, 0.05f, 0.05f, 0.05f},
                                       {0.1f, 0.1f, 0.1f, 0.1f},
                                       {-0.4f, 0, 0, 0},
                                       {BLPO_PI_F, 1.0f, 0, 0},
                                       {-0.4f, 0, 0, 0}};
  for (int id = 0; id < BLPO_ENV_COUNT; id++) {
    int S = blpo_env_state_dim(id);
    blpo_key k0 = blpo_make_key(SEED, BLPO_STREAM_ENV_RESET, 0);
    blpo_key k1 = blpo_make_key(SEED, BLPO_STREAM_ENV_RESET, 1);
    float first[4], again[4], other_env[4], next[4];
    blpo_env_reset_state(id, first, k0, 7u);
    for (uint32_t c = 0; c < 4096; c++) {
      float s[4];
      blpo_env_reset_state(id, s, k0, c);
      for (int j = 0; j < 4; j++) {
        int ok = j < S ? (s[j] >= lo[id][j] && s[j] <= hi[id][j]) : s[j] == 0.0f;
        CHECK(ok, "env %d counter %u s[%d] = %g", id, c, j, s[j]);
      }
    }
    /* a pure function of (key, counter): the draws above did not disturb it */
    blpo_env_reset_state(id, again, k0, 7u);
    CHECK(memcmp(first, again, sizeof first) == 0, "env %d order dependence", id);
    blpo_env_reset_state(id, other_env, k1, 7u);
    CHECK(memcmp(first, other_env, sizeof first) != 0, "env %d: env indices share a stream", id);
    blpo_env_reset_state(id, next, k0, 8u);
    CHECK(memcmp(first, next, sizeof first) != 0, "env %d: counters share a draw", id);
    /* blpo_env_reset uses and advances st.resets */
    blpo_env_state st;
    memset(&st, 0, sizeof st);
    st.resets = 7u;
    st.t = 42;
    st.ep_ret = 3.0f;
    st.ep_len = 42;
    blpo_env_reset(id, &st, k0);
    CHECK(memcmp(st.s, first, sizeof first) == 0 && st.resets == 8u && st.t == 0 &&
              st.ep_len == 0 && st.ep_ret == 0.0f,
          "env %d reset bookkeeping", id);
  }
}

/* Discrete indices arrive as floats: garbage must clamp, not be UB. */
static void test_action_clamping(void) {
  const float bad[] = {NAN, -5.0f, 7.0f, 1e30f, -INFINITY, 2.9f};
  const float as[] = {0.0f, 0.0f, 2.0f, 2.0f, 0.0f, 2.0f};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    float s1[4] = {-0.5f, 0.01f, 0, 0}, s2[4] = {-0.5f, 0.01f, 0, 0}, r1, r2;
    int t1, t2;
    blpo_env_transition(BLPO_ENV_MOUNTAINCAR, s1, &bad[i], &r1, &t1);
    blpo_env_transition(BLPO_ENV_MOUNTAINCAR, s2, &as[i], &r2, &t2);
    CHECK(memcmp(s1, s2, sizeof s1) == 0, "action %g", bad[i]);
  }
}

int main(void) {
  test_info_table();
  test_episodes();
  test_terminated_at_limit();
  test_reset_streams();
  test_action_clamping();
  if (failures) {
    printf("%d failures\n", failures);
    return 1;
  }
  printf("all env checks passed\n");
  return 0;
}
