/* One PPO minibatch update as the sequence of backend ops it is made of. The
 * trainer runs it this way on a backend without the fused op
 * (blpo_backend.ppo_minibatch), and the tests hold the fused op to it. */
#ifndef BLPO_PPO_MINIBATCH_H
#define BLPO_PPO_MINIBATCH_H

#include "backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* gather_rows (6), mlp_forward (actor, critic), ppo_loss, mlp_backward
 * (actor, critic), sumsq (2), clip_scale and adam (2), on mb's buffers. */
void blpo_ppo_minibatch_ops(blpo_backend *be, const blpo_dims *d, const blpo_ppo_minibatch *mb);

#ifdef __cplusplus
}
#endif

#endif
