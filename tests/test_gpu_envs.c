/* The CUDA env kernels (kernels/env_step.cu) against the CPU backend's
 * env_reset/env_step, all five tasks: P = 3 agents x N = 257 envs (not a
 * multiple of the 256-thread block), 300 steps of identical random actions,
 * long enough for terminations, truncations at the 200-step limits and
 * auto-resets. Needs a CUDA device: exits 77 (CTest SKIP_RETURN_CODE) with a
 * one-line reason when there is none.
 *
 * Each step is compared from identical states: the CPU states are copied into
 * the GPU states after every step, so a float rounding difference cannot grow
 * into diverging trajectories. Floats must agree to
 * |gpu - cpu| <= 1e-4 * max(1, |cpu|) (nvcc contracts multiply-adds into FMAs
 * and the device sinf/cosf differ from libm by an ulp or two, so bitwise
 * equality is not expected); done/trunc and the integer counters must agree
 * exactly. The GPU outputs are poisoned with 0xFF bytes (a NaN no kernel
 * produces) before every launch, so an element the kernel fails to write
 * shows up as a mismatch, including in ep_ret where NaN is a legal value.
 *
 * Termination flips: a termination is a float compared against a constant
 * (|x| >= 2.4, -cos a - cos(a+b) > 1, p >= 0.5, ...). When the post-step value
 * lands within rounding distance of the threshold, an ulp of difference flips
 * the decision (and with it reward, ep_ret, obs through the reset, and trunc
 * at the time limit) even though both backends are correct. Such a flip is
 * tolerated only if the CPU's post-step state is within the float tolerance
 * of that env's threshold, and at most 1 per 1000 flag comparisons per env:
 * rounding flips need a value within ~1e-7 of the threshold, so they are
 * rare, and more than that points to a real difference in the dynamics. Any
 * flip away from a threshold fails. For a flipped element the final_obs (the
 * state before the reset) is still compared; the outputs that depend on the
 * decision are not. */
#include <cuda_runtime_api.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blpo/backend.h"
#include "blpo/cuda_device.h"
#include "blpo/cuda_envs.h"
#include "blpo/env.h"
#include "envs.h"
#include "test_util.h"

#define CUDA_CHECK(call)                                                                           \
  do {                                                                                             \
    cudaError_t err_ = (call);                                                                     \
    if (err_ != cudaSuccess) {                                                                     \
      fprintf(stderr, "%s:%d: CUDA call failed: %s: %s: %s\n", __FILE__, __LINE__, #call,          \
              cudaGetErrorName(err_), cudaGetErrorString(err_));                                   \
      exit(1);                                                                                     \
    }                                                                                              \
  } while (0)

enum { P = 3, N = 257, STEPS = 300, MAX_REPORTS = 10 };
static const uint64_t SEED = 5;
static const double REL_TOL = 1e-4;
static const uint32_t POISON_BITS = 0xFFFFFFFFu; /* cudaMemset(.., 0xFF, ..) */

typedef struct {
  const char *name;
  int env_id, step; /* step -1: reset */
  long compared;    /* element comparisons of float outputs */
  double max_rel;
  long mismatches;            /* float/int outputs out of tolerance, unwritten or NaN */
  long flag_compared;         /* done/trunc comparisons (per element and step) */
  long flips_thr;             /* done/trunc flips at a termination threshold */
  long flips_other;           /* done/trunc mismatches anywhere else: always a failure */
  long episodes, truncations; /* CPU episode ends: shows what the run exercised */
  int reports;
} env_stats;

static int is_poison(float x) {
  uint32_t u;
  memcpy(&u, &x, sizeof u);
  return u == POISON_BITS;
}

static void report(env_stats *st, const char *what, size_t e, int k, double gpu, double cpu) {
  if (st->reports++ < MAX_REPORTS)
    fprintf(stderr, "  %s step %d: %s p=%d i=%d k=%d: gpu %.9g cpu %.9g\n", st->name, st->step,
            what, (int)(e / N), (int)(e % N), k, gpu, cpu);
  else if (st->reports == MAX_REPORTS + 1)
    fprintf(stderr, "  %s: further mismatches not shown\n", st->name);
}

/* One float output: NaN on either side (including the poison) fails. */
static void cmp_float(env_stats *st, const char *what, size_t e, int k, float gpu, float cpu) {
  st->compared++;
  double err = fabs((double)gpu - (double)cpu) / fmax(1.0, fabs((double)cpu));
  if (isnan(gpu) || isnan(cpu) || !(err <= REL_TOL)) {
    st->mismatches++;
    report(st, what, e, k, gpu, cpu);
    return;
  }
  if (err > st->max_rel)
    st->max_rel = err;
}

static void cmp_int(env_stats *st, const char *what, size_t e, long gpu, long cpu) {
  st->compared++;
  if (gpu != cpu) {
    st->mismatches++;
    report(st, what, e, 0, (double)gpu, (double)cpu);
  }
}

static int near(double x, double thr) { return fabs(x - thr) <= REL_TOL * fmax(1.0, fabs(thr)); }

/* Whether the post-step observation fo (the CPU's final_obs) lies within the
 * float tolerance of env's termination threshold. */
static int near_threshold(int env_id, const float *fo) {
  const double tol = REL_TOL;
  switch (env_id) {
  case BLPO_ENV_CARTPOLE: /* obs = (x, x_dot, theta, theta_dot) */
    return near(fabs(fo[0]), BLPO_CARTPOLE_X_THRESHOLD) ||
           near(fabs(fo[2]), BLPO_CARTPOLE_THETA_THRESHOLD);
  case BLPO_ENV_ACROBOT: { /* obs = (cos a, sin a, cos b, sin b, ..): -cos a - cos(a+b) > 1 */
    double c0 = fo[0], s0 = fo[1], c1 = fo[2], s1 = fo[3];
    return near(-c0 - (c0 * c1 - s0 * s1), 1.0);
  }
  case BLPO_ENV_MOUNTAINCAR: /* obs = (p, v): p >= goal && v >= 0 */
    return (near(fo[0], BLPO_MOUNTAINCAR_GOAL_POS) && fo[1] >= -tol) ||
           (near(fo[1], 0.0) && fo[0] >= BLPO_MOUNTAINCAR_GOAL_POS - tol);
  case BLPO_ENV_MOUNTAINCAR_CONTINUOUS: /* p > goal && v >= 0 */
    return (near(fo[0], BLPO_MCC_GOAL_POS) && fo[1] >= -tol) ||
           (near(fo[1], 0.0) && fo[0] >= BLPO_MCC_GOAL_POS - tol);
  default: /* Pendulum never terminates */
    return 0;
  }
}

static int is_flag(float x) { return x == 0.0f || x == 1.0f; }

static void *dev_alloc(size_t bytes) {
  void *p = NULL;
  CUDA_CHECK(cudaMalloc(&p, bytes));
  return p;
}

static void *host_alloc(size_t bytes) {
  void *p = calloc(1, bytes);
  if (p == NULL) {
    fprintf(stderr, "out of host memory (%zu bytes)\n", bytes);
    exit(1);
  }
  return p;
}

static void run_env(blpo_backend *cpu, int env_id) {
  const blpo_env_info *info = blpo_env_get_info((blpo_env_id)env_id);
  CHECK(info != NULL, "env id %d", env_id);
  if (info == NULL)
    return;
  const int O = info->obs_dim, A = info->action_dim;
  const size_t E = (size_t)P * N;
  blpo_dims d;
  memset(&d, 0, sizeof d);
  d.P = P;
  d.N = N;
  d.T = 1;
  d.env_id = env_id;
  d.obs_dim = O;
  d.act_dim = A;
  d.discrete = info->discrete;
  d.num_actions = info->num_actions;
  d.head_dim = info->discrete ? info->num_actions : A;
  d.seed = SEED;

  env_stats st;
  memset(&st, 0, sizeof st);
  st.name = info->name;
  st.env_id = env_id;

  /* CPU backend buffers are host memory. */
  blpo_env_state *c_states = host_alloc(E * sizeof *c_states);
  blpo_env_state *prev = host_alloc(E * sizeof *prev);
  float *act = host_alloc(E * A * sizeof *act);
  float *c_obs = host_alloc(E * O * sizeof *c_obs), *c_fobs = host_alloc(E * O * sizeof *c_fobs);
  float *c_rew = host_alloc(E * sizeof *c_rew), *c_done = host_alloc(E * sizeof *c_done);
  float *c_ret = host_alloc(E * sizeof *c_ret), *c_trunc = host_alloc(E * sizeof *c_trunc);
  /* GPU results downloaded */
  blpo_env_state *g_states = host_alloc(E * sizeof *g_states);
  float *g_obs = host_alloc(E * O * sizeof *g_obs), *g_fobs = host_alloc(E * O * sizeof *g_fobs);
  float *g_rew = host_alloc(E * sizeof *g_rew), *g_done = host_alloc(E * sizeof *g_done);
  float *g_ret = host_alloc(E * sizeof *g_ret), *g_trunc = host_alloc(E * sizeof *g_trunc);
  int *g_len = host_alloc(E * sizeof *g_len);
  /* device */
  blpo_env_state *d_states = dev_alloc(E * sizeof *d_states);
  float *d_act = dev_alloc(E * A * sizeof *d_act);
  float *d_obs = dev_alloc(E * O * sizeof *d_obs), *d_fobs = dev_alloc(E * O * sizeof *d_fobs);
  float *d_rew = dev_alloc(E * sizeof *d_rew), *d_done = dev_alloc(E * sizeof *d_done);
  float *d_ret = dev_alloc(E * sizeof *d_ret), *d_trunc = dev_alloc(E * sizeof *d_trunc);
  int *d_len = dev_alloc(E * sizeof *d_len);

  /* ---- reset ---- */
  st.step = -1;
  CUDA_CHECK(cudaMemset(d_states, 0xFF, E * sizeof *d_states));
  CUDA_CHECK(cudaMemset(d_obs, 0xFF, E * O * sizeof *d_obs));
  cpu->env_reset(cpu, &d, c_states, c_obs);
  CUDA_CHECK((cudaError_t)blpo_cuda_env_reset(env_id, P, N, SEED, d_states, d_obs, NULL));
  CUDA_CHECK(cudaDeviceSynchronize());
  CUDA_CHECK(cudaMemcpy(g_states, d_states, E * sizeof *g_states, cudaMemcpyDeviceToHost));
  CUDA_CHECK(cudaMemcpy(g_obs, d_obs, E * O * sizeof *g_obs, cudaMemcpyDeviceToHost));
  for (size_t e = 0; e < E; e++) {
    for (int k = 0; k < O; k++)
      cmp_float(&st, "reset obs", e, k, g_obs[e * O + k], c_obs[e * O + k]);
    for (int k = 0; k < BLPO_ENV_MAX_STATE; k++) /* no angle wraps at reset */
      cmp_float(&st, "reset state.s", e, k, g_states[e].s[k], c_states[e].s[k]);
    cmp_int(&st, "reset state.t", e, g_states[e].t, c_states[e].t);
    cmp_int(&st, "reset state.resets", e, g_states[e].resets, c_states[e].resets);
    cmp_int(&st, "reset state.ep_len", e, g_states[e].ep_len, c_states[e].ep_len);
    cmp_float(&st, "reset state.ep_ret", e, 0, g_states[e].ep_ret, c_states[e].ep_ret);
  }
  CUDA_CHECK(cudaMemcpy(d_states, c_states, E * sizeof *c_states, cudaMemcpyHostToDevice));

  /* ---- steps ---- */
  const double lo = 1.5 * info->act_low, hi = 1.5 * info->act_high;
  for (int t = 0; t < STEPS; t++) {
    st.step = t;
    for (size_t j = 0; j < E * (size_t)A; j++) {
      if (info->discrete) {
        int a = (int)(urand() * info->num_actions);
        act[j] = (float)(a < info->num_actions ? a : info->num_actions - 1);
      } else {
        act[j] = (float)(lo + (hi - lo) * urand());
      }
    }
    memcpy(prev, c_states, E * sizeof *prev);
    CUDA_CHECK(cudaMemcpy(d_act, act, E * A * sizeof *act, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemset(d_obs, 0xFF, E * O * sizeof *d_obs));
    CUDA_CHECK(cudaMemset(d_fobs, 0xFF, E * O * sizeof *d_fobs));
    CUDA_CHECK(cudaMemset(d_rew, 0xFF, E * sizeof *d_rew));
    CUDA_CHECK(cudaMemset(d_done, 0xFF, E * sizeof *d_done));
    CUDA_CHECK(cudaMemset(d_ret, 0xFF, E * sizeof *d_ret));
    CUDA_CHECK(cudaMemset(d_trunc, 0xFF, E * sizeof *d_trunc));
    CUDA_CHECK(cudaMemset(d_len, 0xFF, E * sizeof *d_len));

    cpu->env_step(cpu, &d, c_states, act, c_obs, c_rew, c_done, c_ret, c_fobs, c_trunc);
    CUDA_CHECK((cudaError_t)blpo_cuda_env_step(env_id, P, N, SEED, d_states, d_act, d_obs, d_rew,
                                               d_done, d_ret, d_len, d_fobs, d_trunc, NULL));
    CUDA_CHECK(cudaDeviceSynchronize());
    CUDA_CHECK(cudaMemcpy(g_states, d_states, E * sizeof *g_states, cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(g_obs, d_obs, E * O * sizeof *g_obs, cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(g_fobs, d_fobs, E * O * sizeof *g_fobs, cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(g_rew, d_rew, E * sizeof *g_rew, cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(g_done, d_done, E * sizeof *g_done, cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(g_ret, d_ret, E * sizeof *g_ret, cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(g_trunc, d_trunc, E * sizeof *g_trunc, cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(g_len, d_len, E * sizeof *g_len, cudaMemcpyDeviceToHost));

    for (size_t e = 0; e < E; e++) {
      const float *cfo = c_fobs + e * O;
      CHECK(is_flag(c_done[e]) && is_flag(c_trunc[e]), "%s step %d: CPU done %g trunc %g", st.name,
            t, c_done[e], c_trunc[e]);
      /* the state before any reset: independent of the termination decision */
      for (int k = 0; k < O; k++)
        cmp_float(&st, "final_obs", e, k, g_fobs[e * O + k], cfo[k]);

      st.flag_compared++;
      st.episodes += c_done[e] != 0.0f;
      st.truncations += c_trunc[e] != 0.0f;
      if (g_done[e] != c_done[e] || g_trunc[e] != c_trunc[e]) {
        if (is_flag(g_done[e]) && is_flag(g_trunc[e]) && near_threshold(env_id, cfo)) {
          st.flips_thr++;
          if (st.flips_thr <= 3)
            fprintf(stderr,
                    "  %s step %d: p=%d i=%d done/trunc flip at a threshold: "
                    "gpu %g/%g cpu %g/%g\n",
                    st.name, t, (int)(e / N), (int)(e % N), g_done[e], g_trunc[e], c_done[e],
                    c_trunc[e]);
        } else {
          st.flips_other++;
          report(&st, "done", e, 0, g_done[e], c_done[e]);
          report(&st, "trunc", e, 0, g_trunc[e], c_trunc[e]);
        }
        continue; /* obs, reward, ep_ret, ep_len and the state follow the decision */
      }

      for (int k = 0; k < O; k++)
        cmp_float(&st, "obs", e, k, g_obs[e * O + k], c_obs[e * O + k]);
      cmp_float(&st, "reward", e, 0, g_rew[e], c_rew[e]);
      if (c_done[e] == 0.0f) { /* no episode ended: NaN on both, and written */
        st.compared++;
        if (!isnan(c_ret[e]) || !isnan(g_ret[e]) || is_poison(g_ret[e])) {
          st.mismatches++;
          report(&st, is_poison(g_ret[e]) ? "ep_ret (unwritten)" : "ep_ret (NaN expected)", e, 0,
                 g_ret[e], c_ret[e]);
        }
      } else {
        cmp_float(&st, "ep_ret", e, 0, g_ret[e], c_ret[e]);
      }
      cmp_int(&st, "ep_len", e, g_len[e], c_done[e] != 0.0f ? prev[e].ep_len + 1 : 0);
      /* the carried state; s is covered by obs/final_obs (angles wrap at +-pi,
       * where the raw state may differ by 2 pi while its obs agrees) */
      cmp_int(&st, "state.t", e, g_states[e].t, c_states[e].t);
      cmp_int(&st, "state.resets", e, g_states[e].resets, c_states[e].resets);
      cmp_int(&st, "state.ep_len", e, g_states[e].ep_len, c_states[e].ep_len);
      cmp_float(&st, "state.ep_ret", e, 0, g_states[e].ep_ret, c_states[e].ep_ret);
    }
    /* the next step starts both backends from the same states */
    CUDA_CHECK(cudaMemcpy(d_states, c_states, E * sizeof *c_states, cudaMemcpyHostToDevice));
  }

  long allowed = st.flag_compared / 1000;
  printf("%-25s %d steps x %zu envs (%ld episodes ended, %ld truncated): %ld values compared, "
         "max rel err %.3g, mismatches %ld, done/trunc flips at thresholds %ld (allowed %ld), "
         "other done/trunc mismatches %ld\n",
         st.name, STEPS, E, st.episodes, st.truncations, st.compared, st.max_rel, st.mismatches,
         st.flips_thr, allowed, st.flips_other);
  CHECK(st.mismatches == 0, "%s: %ld outputs differ, unwritten or NaN", st.name, st.mismatches);
  CHECK(st.flips_other == 0, "%s: %ld done/trunc mismatches away from a threshold", st.name,
        st.flips_other);
  CHECK(st.flips_thr <= allowed, "%s: %ld threshold flips in %ld comparisons", st.name,
        st.flips_thr, st.flag_compared);

  CUDA_CHECK(cudaFree(d_states));
  CUDA_CHECK(cudaFree(d_act));
  CUDA_CHECK(cudaFree(d_obs));
  CUDA_CHECK(cudaFree(d_fobs));
  CUDA_CHECK(cudaFree(d_rew));
  CUDA_CHECK(cudaFree(d_done));
  CUDA_CHECK(cudaFree(d_ret));
  CUDA_CHECK(cudaFree(d_trunc));
  CUDA_CHECK(cudaFree(d_len));
  free(c_states);
  free(prev);
  free(act);
  free(c_obs);
  free(c_fobs);
  free(c_rew);
  free(c_done);
  free(c_ret);
  free(c_trunc);
  free(g_states);
  free(g_obs);
  free(g_fobs);
  free(g_rew);
  free(g_done);
  free(g_ret);
  free(g_trunc);
  free(g_len);
}

int main(void) {
  char why[256] = "";
  if (blpo_cuda_device_count(why, sizeof why) <= 0) {
    printf("SKIP: no usable CUDA device: %s\n", why);
    return 77;
  }
  CUDA_CHECK(cudaSetDevice(0));
  char name[256];
  blpo_cuda_device_name(name, sizeof name);
  printf("device: %s\n", name);

  blpo_backend *cpu = blpo_backend_cpu_create(0);
  CHECK(cpu != NULL, "blpo_backend_cpu_create failed");
  if (cpu == NULL)
    return test_summary("test_gpu_envs");
  for (int id = 0; id < BLPO_ENV_COUNT; id++)
    run_env(cpu, id);
  cpu->destroy(cpu);
  return test_summary("test_gpu_envs");
}
