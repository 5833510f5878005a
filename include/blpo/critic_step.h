/* The nested critic's steps as the sequence of backend ops they are made of. The
 * trainer runs it this way on a backend without the fused op
 * (blpo_backend.critic_step), and the tests hold the fused op to it. */
#ifndef BLPO_CRITIC_STEP_H
#define BLPO_CRITIC_STEP_H

#include "backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Per step, mlp_forward, value_loss, mlp_backward and adam (no clip) on cs's
 * buffers (backend.h blpo_critic_step: step k's schedule and stat). */
void blpo_critic_step_ops(blpo_backend *be, int P, const blpo_critic_step *cs);

#ifdef __cplusplus
}
#endif

#endif
