/* One PPO minibatch update from the separate backend ops (ppo_minibatch.h). */
#include "blpo/ppo_minibatch.h"

void blpo_ppo_minibatch_ops(blpo_backend *be, const blpo_dims *d, const blpo_ppo_minibatch *mb) {
  int P = d->P, O = d->obs_dim, A = d->act_dim, n = mb->n;
  const blpo_mlp *am = mb->actor, *cm = mb->critic;
  size_t a_stride = (size_t)n * am->act_floats_per_row; // agent stride of the activations
  size_t c_stride = (size_t)n * cm->act_floats_per_row;
  float *a_head = mb->actor_acts + blpo_mlp_act_offset(am, am->num_layers, n);  // (P, n, Y)
  float *c_head = mb->critic_acts + blpo_mlp_act_offset(cm, cm->num_layers, n); // (P, n, 1)
  const int32_t *ix = mb->idx;
  const size_t is = mb->idx_stride;
  const blpo_gather g[] = {
      {ix, is, n, O, mb->obs, mb->mb_obs},   {ix, is, n, A, mb->act, mb->mb_act},
      {ix, is, n, 1, mb->logp, mb->mb_logp}, {ix, is, n, 1, mb->adv, mb->mb_adv},
      {ix, is, n, 1, mb->ret, mb->mb_ret},   {ix, is, n, 1, mb->val, mb->mb_val},
  };
  be->gather_rows_many(be, P, (int)(sizeof(g) / sizeof(g[0])), g);
  be->mlp_forward(be, am, P, mb->actor_params, mb->mb_obs, n, mb->actor_acts);
  be->mlp_forward(be, cm, P, mb->critic_params, mb->mb_obs, n, mb->critic_acts);
  be->ppo_loss(be, d, am, mb->actor_params, n, a_head, a_stride, c_head, c_stride, mb->mb_act,
               mb->mb_logp, mb->mb_adv, mb->mb_ret, mb->mb_val, mb->pp, mb->dhead, mb->dvalue,
               mb->actor_grad, mb->stats);
  be->mlp_backward(be, am, P, mb->actor_params, mb->mb_obs, n, mb->actor_acts, mb->dhead,
                   mb->actor_grad, mb->scratch);
  be->mlp_backward(be, cm, P, mb->critic_params, mb->mb_obs, n, mb->critic_acts, mb->dvalue,
                   mb->critic_grad, mb->scratch);
  be->sumsq(be, P, mb->actor_grad, am->num_params, mb->sumsq_a);
  be->sumsq(be, P, mb->critic_grad, cm->num_params, mb->sumsq_c);
  be->clip_scale(be, P, mb->sumsq_a, mb->sumsq_c, mb->max_grad_norm, mb->stats, mb->scale);
  /* one optimiser step per minibatch, shared by both networks */
  be->adam(be, P, am->num_params, mb->actor_params, mb->actor_grad, mb->actor_m, mb->actor_v,
           mb->scale, mb->actor_sched);
  be->adam(be, P, cm->num_params, mb->critic_params, mb->critic_grad, mb->critic_m, mb->critic_v,
           mb->scale, mb->critic_sched);
}
