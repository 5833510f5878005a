/* One nested critic step from the separate backend ops (critic_step.h). */
#include "blpo/critic_step.h"

void blpo_critic_step_ops(blpo_backend *be, int P, const blpo_critic_step *cs) {
  const blpo_mlp *cm = cs->critic;
  int n = cs->n;
  size_t c_stride = (size_t)n * cm->act_floats_per_row; // agent stride of the activations
  const float *c_head = cs->acts + blpo_mlp_act_offset(cm, cm->num_layers, n); // (P, n, 1)
  for (int k = 0; k < cs->steps; k++) {
    blpo_adam_sched sched = cs->sched;
    sched.step.offset += k;
    be->mlp_forward(be, cm, P, cs->params, cs->x, n, cs->acts);
    be->value_loss(be, P, n, c_head, c_stride, cs->target, cs->dvalue, cs->stats,
                   k == 0 ? cs->stat_slot : -1);
    be->mlp_backward(be, cm, P, cs->params, cs->x, n, cs->acts, cs->dvalue, cs->grad, cs->scratch);
    be->adam(be, P, cm->num_params, cs->params, cs->grad, cs->m, cs->v, NULL, sched);
  }
}
