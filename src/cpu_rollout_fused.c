/* The CPU backend's fused rollout step: one env at a time, the same
 * per-element functions as the CUDA kernel (include/blpo/fused_rollout.h).
 * It exists so that the CPU tests cover the kernel's math; for speed the CPU
 * keeps the separate ops (its forward passes are GEMMs over all envs), which
 * is why rollout_fused_supported answers 1 here. */

#include "blpo/backend.h"
#include "blpo/fused_rollout.h"
#include "blpo/policy.h"
#include "cpu_backend_internal.h"
#include "envs.h"

static int cpu_rollout_fused_supported(blpo_backend *be, const blpo_mlp *actor,
                                       const blpo_mlp *critic) {
  (void)be;
  return blpo_fused_widths_fit(actor) && blpo_fused_widths_fit(critic) ? 1 : 0;
}

static void cpu_rollout_fused(blpo_backend *be, const blpo_dims *d, const blpo_mlp *actor,
                              const float *actor_params, const blpo_mlp *critic,
                              const float *critic_params, int t0, int t1, blpo_counter counter,
                              blpo_env_state *states, float *obs, float *act, float *logp,
                              float *value, float *reward, float *done, float *ep_ret,
                              float *final_obs, float *trunc) {
  (void)be;
  int P = d->P, N = d->N, O = d->obs_dim, A = d->act_dim;
  size_t PN = (size_t)P * N;
  uint64_t c0 = (uint64_t)blpo_counter_at(counter, blpo_clock_read(counter.clock));
  for (int p = 0; p < P; p++) {
    const float *wa = actor_params + (size_t)p * actor->num_params;
    const float *wc = critic_params + (size_t)p * critic->num_params;
    const float *log_std = wa + actor->num_mlp_params;
#pragma omp parallel for schedule(static) if (N >= 256)
    for (int i = 0; i < N; i++) {
      float buf[2 * BLPO_FUSED_MAX_WIDTH]; /* supported() keeps max_width within it */
      size_t e = (size_t)p * N + i;
      blpo_env_state st = states[e];
      blpo_key reset_key = blpo_env_reset_key(d->seed, p, i);
      for (int t = t0; t < t1; t++) {
        size_t r = (size_t)t * PN + e; /* row of the (T,P,N) buffers */
        const float *x = obs + r * O;
        float head[BLPO_FUSED_MAX_WIDTH], v;
        blpo_mlp_forward_one(actor, wa, x, buf, head);
        blpo_mlp_forward_one(critic, wc, x, buf, &v);
        value[r] = v;
        logp[r] = blpo_policy_draw(d->discrete, d->num_actions, A, head, log_std,
                                   blpo_action_key(d->seed, p, i), c0 + (uint64_t)t, act + r * A);
        float rew, eret;
        int term, tr, elen;
        blpo_env_step(d->env_id, &st, act + r * A, reset_key, obs + (r + PN) * O, &rew, &term, &tr,
                      &eret, &elen, final_obs ? final_obs + e * O : NULL);
        reward[r] = rew;
        done[r] = (term || tr) ? 1.0f : 0.0f;
        ep_ret[r] = eret;
        if (trunc)
          trunc[e] = tr ? 1.0f : 0.0f;
      }
      states[e] = st;
    }
  }
}

void blpo_cpu_install_rollout_fused(blpo_backend *be) {
  be->rollout_fused_supported = cpu_rollout_fused_supported;
  be->rollout_fused = cpu_rollout_fused;
}
