/* Helpers shared by the per-task dynamics headers (host C11 and CUDA device). */
#ifndef BLPO_ENV_COMMON_H
#define BLPO_ENV_COMMON_H

#include <math.h>
#include <stdint.h>

#include "blpo/hd.h"
#include "blpo/rng.h"

/* A float literal so that angle arithmetic stays in float32 on the device. */
#define BLPO_PI_F 3.14159265358979323846f

/* Discrete actions travel as floats. Casting NaN or a huge value to int is
 * undefined behaviour, so out-of-range inputs are clamped before the cast. */
BLPO_HD int blpo_action_index(float a, int n) {
  if (!(a >= 1.0f))
    return 0; /* also catches NaN */
  if (a >= (float)(n - 1))
    return n - 1;
  return (int)a;
}

/* lo + (hi - lo) * U[0,1) from one Philox word. */
BLPO_HD float blpo_uniform_range(uint32_t w, float lo, float hi) {
  return lo + (hi - lo) * blpo_u01(w);
}

#endif
