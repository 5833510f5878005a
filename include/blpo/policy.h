/* One env's action draw, host and device: the body of policy_sample (CPU
 * backend, CUDA kernel) and of the fused rollout step (fused_rollout.h).
 * Stream: Philox key (seed + agent, ACTION, env index) at the 64-bit counter
 * (the global rollout step), so a draw depends on which env and step ask for
 * it, never on where it runs. */
#ifndef BLPO_POLICY_H
#define BLPO_POLICY_H

#include <stdint.h>

#include "hd.h"
#include "heads.h"
#include "rng.h"

BLPO_HD blpo_key blpo_action_key(uint64_t seed, int agent, int env) {
  return blpo_make_key(seed + (uint64_t)agent, BLPO_STREAM_ACTION, (uint32_t)env);
}

/* Action from head z (Y floats: logits, or the Gaussian mean with log_std)
 * into act (A floats); returns log pi(act | z). discrete: a categorical over
 * num_actions. */
BLPO_HD float blpo_policy_draw(int discrete, int num_actions, int A, const float *z,
                               const float *log_std, blpo_key key, uint64_t counter, float *act) {
  uint32_t r[4];
  blpo_rand4(key, (uint32_t)(counter >> 32), (uint32_t)counter, r);
  if (discrete) {
    int a = blpo_cat_sample(z, num_actions, blpo_u01(r[0]));
    act[0] = (float)a;
    float lp;
    blpo_cat_stats(z, num_actions, a, &lp, 0, 0);
    return lp;
  }
  for (int j = 0; j < A; j++) {
    /* one Philox block gives the first normal; further dimensions draw from
     * the counter's high word marked with the dimension */
    uint32_t rr[4] = {r[0], r[1], r[2], r[3]};
    if (j > 0)
      blpo_rand4(key, (uint32_t)(counter >> 32) ^ (0x80000000u | (uint32_t)j), (uint32_t)counter,
                 rr);
    float eps = blpo_std_normal(blpo_u01_open0(rr[0]), blpo_u01(rr[1]));
    act[j] = z[j] + expf(log_std[j]) * eps;
  }
  return blpo_gauss_logp(z, log_std, act, A);
}

#endif
