/* The per-row bodies of BLPO's actor step and mixed head (blpo.md step 4;
 * derivatives.md "Clipped surrogate", "Heads"), host and device, so that
 * cpu_blpo_actor / cpu_mixed_head and the CUDA kernels' block programs
 * (actor_blocks.h) run the same code for each row and differ only in how
 * they sum the rows. */
#ifndef BLPO_BLPO_ROWS_H
#define BLPO_BLPO_ROWS_H

#include <stddef.h>

#include "blpo_math.h"
#include "hd.h"
#include "heads.h"

/* log pi(a|s) of head z for the stored action a, and, where dz is not NULL,
 * c * d log pi / d head into dz (head_dim) and, for a Gaussian head, c * its
 * log_std part into dls (A). discrete: a categorical head over num_actions
 * (a[0] the action); else a Gaussian of dimension A with log_std (A). */
BLPO_HD float blpo_head_logp_grad(int discrete, int num_actions, int A, const float *z,
                                  const float *log_std, const float *a, float c, float *dz,
                                  float *dls) {
  float lp;
  if (discrete) {
    int ai = (int)a[0];
    blpo_cat_stats(z, num_actions, ai, &lp, NULL, NULL);
    if (dz)
      blpo_cat_grad(z, num_actions, ai, c, 0.0f, dz);
  } else {
    lp = blpo_gauss_logp(z, log_std, a, A);
    if (dz)
      blpo_gauss_grad(z, log_std, a, A, c, 0.0f, dz, dls);
  }
  return lp;
}

/* One row of the BLPO actor step: head z, the stored action act (A),
 * logp_old, the advantage adv (from GAE of the current critic), the critic's
 * target and value; inv_n = 1/n. Returns the surrogate min(rho A, clip(rho)
 * A) at clip_eps (the caller sums it into the loss). Writes dz (head_dim) =
 * d(-L)/d head, dls (A, Gaussian only) its log_std part, *abar = d(-L)/dA
 * (turned into vbar by the GAE adjoint), *rho = the ratio, *alpha_f = the
 * surrogate's pass-through at the mixed term's clip_f, and *resid = target
 * - value. */
BLPO_HD float blpo_actor_row(int discrete, int num_actions, int A, const float *z,
                             const float *log_std, const float *act, float logp_old, float adv,
                             float target, float value, float clip_eps, float clip_f, float inv_n,
                             float *dz, float *dls, float *abar, float *rho, float *alpha_f,
                             float *resid) {
  float lp = blpo_head_logp_grad(discrete, num_actions, A, z, log_std, act, 0.0f, NULL, NULL);
  float ratio = expf(lp - logp_old);
  float alpha, mcoef, af, unused;
  float l = blpo_min_surrogate(ratio, adv, clip_eps, &alpha, &mcoef);
  blpo_min_surrogate(ratio, adv, clip_f, &af, &unused);
  blpo_head_logp_grad(discrete, num_actions, A, z, log_std, act, -inv_n * alpha * ratio * adv, dz,
                      dls);
  *abar = -inv_n * mcoef;
  *rho = ratio;
  *alpha_f = af;
  *resid = target - value;
  return l;
}

#endif
