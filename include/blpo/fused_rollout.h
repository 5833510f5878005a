/* The fused rollout step's per-element math, host and device.
 *
 * One rollout step of one env as a single pass: the actor's and the critic's
 * forward pass on its observation, the action draw (policy.h) and the env
 * step with auto-reset (envs_gpu/envs.h). The CUDA kernel runs the block
 * program of rollout_blocks.h (register tiles of 2 neurons x 4 envs from
 * weights staged in shared memory); the CPU backend's op
 * (src/cpu_rollout_fused.c) runs these functions one env at a time. Both
 * compute each neuron as blpo_neuron does (bias, then fused multiply-adds in
 * input order), so the two differ only where libdevice's transcendentals
 * differ from libm's and where nvcc contracts the env and policy code's
 * multiply-adds; against the separate ops (mlp_forward, policy_sample,
 * env_step) the forward passes differ by their GEMMs' summation order. */
#ifndef BLPO_FUSED_ROLLOUT_H
#define BLPO_FUSED_ROLLOUT_H

#include <math.h>
#include <stddef.h>

#include "config.h"
#include "hd.h"
#include "mlp.h"

/* Widest layer the fused step runs (the kernel's weights must also fit its
 * shared memory: rollout_blocks.h). */
#define BLPO_FUSED_MAX_WIDTH 256

/* z = b + sum_i w[i * w_stride] * h[i] for i = 0..din-1, in order, as fused
 * multiply-adds: one neuron. w_stride is din's partner in the weight layout:
 * 1 for row j of the row-major W (d_out x d_in) of the parameters. The
 * kernel's tiles (rollout_blocks.h) compute the same sum in the same order
 * from the transposed copy in shared memory. */
BLPO_HD float blpo_neuron(float b, const float *w, size_t w_stride, const float *h, int din) {
  float z = b;
  for (int i = 0; i < din; i++)
    z = fmaf(w[(size_t)i * w_stride], h[i], z);
  return z;
}

/* The hidden-layer activation, as mlp_forward applies it. */
BLPO_HD float blpo_activate(int activation, float z) {
  return activation == BLPO_ACT_TANH ? tanhf(z) : (z > 0.0f ? z : 0.0f);
}

/* d loss / d z of a hidden layer from d loss / d (its output) s and its
 * output h = activate(z): tanh' = 1 - h^2, relu' = [h > 0]. */
BLPO_HD float blpo_activate_back(int activation, float h, float s) {
  return activation == BLPO_ACT_TANH ? s * (1.0f - h * h) : (h > 0.0f ? s : 0.0f);
}

/* Whether the fused step can run these networks: every hidden layer at most
 * BLPO_FUSED_MAX_WIDTH wide (the head and the input are narrow anyway). */
BLPO_HD int blpo_fused_widths_fit(const blpo_mlp *m) {
  for (int l = 1; l < m->num_layers; l++)
    if (m->dims[l] > BLPO_FUSED_MAX_WIDTH)
      return 0;
  return m->dims[0] <= BLPO_FUSED_MAX_WIDTH && m->dims[m->num_layers] <= BLPO_FUSED_MAX_WIDTH;
}

/* Forward pass of one row from row-major parameters w (Np): x (d_0) ->
 * out (d_L); buf holds 2 * max_width floats. The CPU's fused step; the kernel
 * does the same per neuron. */
BLPO_HD void blpo_mlp_forward_one(const blpo_mlp *m, const float *w, const float *x, float *buf,
                                  float *out) {
  const float *in = x;
  float *a = buf, *b = buf + m->max_width;
  for (int l = 0; l < m->num_layers; l++) {
    int din = m->dims[l], dout = m->dims[l + 1];
    const float *W = w + m->w_off[l], *bias = w + m->b_off[l];
    int last = l == m->num_layers - 1;
    float *o = last ? out : a;
    for (int j = 0; j < dout; j++) {
      float z = blpo_neuron(bias[j], W + (size_t)j * din, 1, in, din);
      o[j] = last ? z : blpo_activate(m->activation, z);
    }
    in = o;
    float *t = a;
    a = b;
    b = t;
  }
}

#endif
