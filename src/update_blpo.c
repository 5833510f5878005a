/* The nested-critic and BLPO update of one iteration (blpo.md step 4), on
 * minibatches of whole trajectories. Written against the backend seam: the
 * permutations and sketch indices are drawn by the backend from the clock,
 * and nothing is read back to the host except in the opt-in check mode. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blpo/critic_step.h"
#include "blpo/rng.h"
#include "trainer_internal.h"

#define HESS_CHUNK 64

int blpo_update_blpo_alloc(blpo_trainer *tr) {
  blpo_backend *be = tr->be;
  const blpo_config *c = &tr->cfg;
  const blpo_dims *d = &tr->d;
  int P = d->P, N = d->N, T = d->T, O = d->obs_dim, M = c->num_minibatches;
  int m = N / M, n = T * m;
  size_t Na = tr->actor.num_params, Nc = tr->critic.num_params, F = sizeof(float);
  tr->traj_per_mb = m;
  /* the nested critic's steps as one op (run.fused_update), its workspace
   * sized here: 0 bytes where the backend cannot hold this critic */
  size_t cs_work = c->fused_update != BLPO_TRI_OFF && be->critic_step
                       ? be->critic_step_work(be, d, &tr->critic, n)
                       : 0;
  tr->fused_critic = cs_work > 0;
  if (c->fused_update == BLPO_TRI_ON && !tr->fused_critic)
    fprintf(stderr, "blpo-gpu: run.fused_update: the %s backend %s; using the separate ops\n",
            be->name,
            be->critic_step ? "cannot run this critic as one step op" : "has no fused critic step");
  int fail = 0;
#define ALLOC(ptr, bytes)                                                                          \
  do {                                                                                             \
    tr->blpo_bytes += (bytes);                                                                     \
    (ptr) = be->alloc(be, (bytes));                                                                \
    if (!(ptr))                                                                                    \
      fail = 1;                                                                                    \
  } while (0)
  if (cs_work)
    ALLOC(tr->cs_work, cs_work);
  ALLOC(tr->rows_idx, sizeof(int32_t) * (size_t)P * T * N);
  ALLOC(tr->last_idx, sizeof(int32_t) * (size_t)P * N);
  ALLOC(tr->mb_last_obs, F * P * m * O);
  ALLOC(tr->mb_rew, F * P * n);
  ALLOC(tr->mb_done, F * P * n);
  ALLOC(tr->last_acts, F * P * m * tr->critic.act_floats_per_row);
  ALLOC(tr->vbar, F * P * n);
  ALLOC(tr->vbar_last, F * P * m);
  ALLOC(tr->rho_t, F * P * n);
  ALLOC(tr->alpha_f, F * P * n);
  ALLOC(tr->resid, F * P * n);
  ALLOC(tr->cdot, F * P * n);
  ALLOC(tr->v_vec, F * P * Nc);
  ALLOC(tr->v_last_grad, F * P * Nc);
  if (c->algo == BLPO_ALGO_BLPO) { /* v's two passes beside the actor's (mlp_backward_many) */
    ALLOC(tr->scratch_v, F * P * 2 * n * (size_t)tr->critic.max_width);
    ALLOC(tr->scratch_vl, F * P * 2 * m * (size_t)tr->critic.max_width);
  }
  ALLOC(tr->x_vec, F * P * Nc);
  ALLOC(tr->p_vec, F * P * Na); /* stays 0 for `nested` */
  ALLOC(tr->vdot, F * P * n);
  ALLOC(tr->vdot_last, F * P * m);
  size_t tw = be->mlp_tangent_work(&tr->critic, n, 1);
  ALLOC(tr->tan_work, F * P * tw);
  if (c->algo == BLPO_ALGO_BLPO) {
    int k = c->hg_method == BLPO_HG_NYSTROM ? c->hg_rank : 0;
    int dense = c->hg_method == BLPO_HG_EXACT || c->hg_check;
    size_t hw = be->critic_hvp_work(&tr->critic, n, 1);
    if (k > 0) {
      /* the epoch's draws, one per minibatch (one for the run's fixed draw) */
      ALLOC(tr->sketch_idx, sizeof(int32_t) * (size_t)(c->hg_fixed_indices ? 1 : M) * P * k);
      ALLOC(tr->hvp_rows, F * P * k * Nc);
      size_t w = be->critic_hvp_work(&tr->critic, n, k);
      hw = w > hw ? w : hw;
    }
    if (c->hg_method == BLPO_HG_CG || c->hg_check)
      ALLOC(tr->cg_buf, F * P * 4 * Nc);
    if (c->hg_check) {
      tr->h_check = malloc(sizeof(float) * 2 * (size_t)P);
      if (!tr->h_check)
        fail = 1;
    }
    if (dense) {
      tr->hess_chunk = (int)(Nc < HESS_CHUNK ? Nc : HESS_CHUNK);
      ALLOC(tr->hess, F * P * Nc * Nc);
      ALLOC(tr->x_exact, F * P * Nc);
      ALLOC(tr->iota, sizeof(int32_t) * Nc);
      size_t w = be->critic_hvp_work(&tr->critic, n, tr->hess_chunk);
      hw = w > hw ? w : hw;
    }
    ALLOC(tr->hvp_work, F * P * hw);
    if (!fail && tr->iota) {
      int32_t *h = malloc(sizeof(int32_t) * Nc);
      if (!h)
        return -1;
      for (size_t i = 0; i < Nc; i++)
        h[i] = (int32_t)i;
      be->upload(be, tr->iota, h, sizeof(int32_t) * Nc);
      free(h);
    }
    if (!fail && be->reserve_solver(be, P, k, Nc, dense) != 0)
      return -2; /* the backend said why */
  }
#undef ALLOC
  return fail ? -1 : 0;
}

void blpo_update_blpo_free(blpo_trainer *tr) {
  blpo_backend *be = tr->be;
  void *bufs[] = {tr->rows_idx,  tr->last_idx, tr->mb_last_obs, tr->mb_rew,      tr->mb_done,
                  tr->last_acts, tr->vbar,     tr->vbar_last,   tr->rho_t,       tr->alpha_f,
                  tr->resid,     tr->cdot,     tr->v_vec,       tr->v_last_grad, tr->x_vec,
                  tr->p_vec,     tr->vdot,     tr->vdot_last,   tr->tan_work,    tr->sketch_idx,
                  tr->hvp_rows,  tr->hvp_work, tr->cg_buf,      tr->hess,        tr->x_exact,
                  tr->iota,      tr->cs_work,  tr->scratch_v,   tr->scratch_vl};
  for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++)
    if (bufs[i])
      be->release(be, bufs[i]);
  free(tr->h_check);
}

/* The dense Hessian of the critic loss on the current minibatch, one agent at
 * a time, as rows of H for chunks of unit directions. */
static void dense_hessian(blpo_trainer *tr, int n) {
  blpo_backend *be = tr->be;
  const blpo_mlp *cm = &tr->critic;
  size_t Nc = cm->num_params;
  int O = tr->d.obs_dim;
  for (int p = 0; p < tr->d.P; p++) {
    const float *w = tr->critic_params + p * Nc;
    const float *x = tr->mb_obs + (size_t)p * n * O;
    const float *acts = tr->critic_acts + (size_t)p * n * cm->act_floats_per_row;
    const float *tgt = tr->mb_ret + (size_t)p * n;
    for (size_t c0 = 0; c0 < Nc; c0 += (size_t)tr->hess_chunk) {
      int K = (int)(Nc - c0 < (size_t)tr->hess_chunk ? Nc - c0 : (size_t)tr->hess_chunk);
      be->critic_hvp_rows(be, cm, 1, w, x, n, acts, tgt, K, tr->iota + c0,
                          tr->hess + p * Nc * Nc + c0 * Nc, tr->hvp_work);
    }
  }
}

/* The sketch indices of every minibatch of this epoch, one launch on the
 * GPU: a fresh draw per solve (counter = solves before it in the run, so
 * draw mb is the epoch's first + mb), or draw 0 for the whole run. */
static void draw_sketches(blpo_trainer *tr, int epoch) {
  const blpo_config *c = &tr->cfg;
  int M = c->num_minibatches;
  blpo_counter draw = {tr->clock, (int64_t)c->num_epochs * M, (int64_t)epoch * M};
  if (c->hg_fixed_indices)
    draw = (blpo_counter){NULL, 0, 0};
  tr->be->sketch_indices(tr->be, &tr->d, tr->critic.num_params, c->hg_rank, draw,
                         c->hg_fixed_indices ? 1 : M, tr->sketch_idx);
}

/* x ~ (H + rho I)^-1 v by the configured method, minibatch mb of the
 * epoch. */
static void solve_ihvp(blpo_trainer *tr, int n, int mb) {
  blpo_backend *be = tr->be;
  const blpo_config *c = &tr->cfg;
  const blpo_dims *d = &tr->d;
  int P = d->P;
  size_t Nc = tr->critic.num_params;
  blpo_phase_mark(tr, BLPO_PHASE_HVP_ROWS);
  switch (c->hg_method) {
  case BLPO_HG_NYSTROM: {
    int k = c->hg_rank;
    const int32_t *idx = tr->sketch_idx + (c->hg_fixed_indices ? 0 : (size_t)mb * P * k);
    be->critic_hvp_rows(be, &tr->critic, P, tr->critic_params, tr->mb_obs, n, tr->critic_acts,
                        tr->mb_ret, k, idx, tr->hvp_rows, tr->hvp_work);
    blpo_phase_mark(tr, BLPO_PHASE_CORE_SOLVE);
    be->nystrom_solve(be, P, Nc, k, tr->hvp_rows, idx, tr->v_vec, c->hg_rho, c->hg_ridge,
                      c->hg_cutoff * (float)k, tr->x_vec, tr->stats);
    break;
  }
  case BLPO_HG_CG:
    be->cg_solve(be, &tr->critic, P, tr->critic_params, tr->mb_obs, n, tr->critic_acts, tr->mb_ret,
                 tr->v_vec, c->hg_rho, c->hg_cg_iters, c->hg_cg_tol, tr->x_vec, tr->cg_buf,
                 tr->hvp_work, tr->stats);
    break;
  case BLPO_HG_EXACT:
    dense_hessian(tr, n);
    blpo_phase_mark(tr, BLPO_PHASE_CORE_SOLVE);
    be->dense_solve(be, P, Nc, tr->hess, tr->v_vec, c->hg_rho, tr->x_vec);
    break;
  }
  if (c->hg_check) {
    /* Opt-in diagnostic: the exact solve on the same minibatch, and the
     * relative error of x. Reads two scalars per agent back to the host.
     * Its time is charged to the core solve. */
    blpo_phase_mark(tr, BLPO_PHASE_CORE_SOLVE);
    dense_hessian(tr, n);
    be->dense_solve(be, P, Nc, tr->hess, tr->v_vec, c->hg_rho, tr->x_exact);
    float *xx = tr->cg_buf; /* (2P) scratch: <xe,xe>, then <x-xe, x-xe> */
    be->dot(be, P, Nc, tr->x_exact, tr->x_exact, xx);
    be->axpy(be, P, Nc, -1.0f, tr->x_vec, tr->x_exact); /* x_exact <- x_exact - x */
    be->dot(be, P, Nc, tr->x_exact, tr->x_exact, xx + P);
    float *h = tr->h_check, *hs = tr->h_stats;
    be->download(be, h, xx, sizeof(float) * 2 * (size_t)P);
    be->download(be, hs, tr->stats, sizeof(float) * (size_t)P * BLPO_STAT_COUNT);
    for (int p = 0; p < P; p++)
      hs[(size_t)p * BLPO_STAT_COUNT + BLPO_STAT_IHVP_RELERR] +=
          h[p] > 0 ? sqrtf(h[P + p] / h[p]) : 0.0f;
    be->upload(be, tr->stats, hs, sizeof(float) * (size_t)P * BLPO_STAT_COUNT);
  }
}

void blpo_update_blpo(blpo_trainer *tr) {
  blpo_backend *be = tr->be;
  const blpo_config *c = &tr->cfg;
  const blpo_dims *d = &tr->d;
  int P = d->P, N = d->N, T = d->T, O = d->obs_dim, A = d->act_dim, M = c->num_minibatches;
  int m = tr->traj_per_mb, n = T * m;
  size_t Na = tr->actor.num_params;
  size_t TN = (size_t)T * N;
  size_t a_stride = (size_t)n * tr->actor.act_floats_per_row;
  size_t c_stride = (size_t)n * tr->critic.act_floats_per_row;
  size_t l_stride = (size_t)m * tr->critic.act_floats_per_row;
  float *a_head = blpo_head_of(&tr->actor, tr->actor_acts, n);
  float *c_head = blpo_head_of(&tr->critic, tr->critic_acts, n);
  float *l_head = blpo_head_of(&tr->critic, tr->last_acts, m);
  int hyper = c->algo == BLPO_ALGO_BLPO;

  for (int epoch = 0; epoch < c->num_epochs; epoch++) {
    blpo_phase_mark(tr, BLPO_PHASE_GATHER);
    /* rows of every minibatch of this epoch (backend.h shuffle_trajectories) */
    blpo_counter perm = {tr->clock, c->num_epochs, epoch};
    be->shuffle_trajectories(be, d, m, perm, tr->rows_idx, tr->last_idx);
    if (hyper && c->hg_method == BLPO_HG_NYSTROM && (epoch == 0 || !c->hg_fixed_indices))
      draw_sketches(tr, epoch);

    for (int mb = 0; mb < M; mb++) {
      blpo_phase_mark(tr, BLPO_PHASE_GATHER);
      const int32_t *ix = tr->rows_idx + (size_t)mb * n;
      const int32_t *lx = tr->last_idx + (size_t)mb * m;
      const blpo_gather g[] = {
          {ix, TN, n, O, tr->roll_obs, tr->mb_obs}, {lx, N, m, O, tr->roll_obs, tr->mb_last_obs},
          {ix, TN, n, A, tr->roll_act, tr->mb_act}, {ix, TN, n, 1, tr->roll_logp, tr->mb_logp},
          {ix, TN, n, 1, tr->roll_rew, tr->mb_rew}, {ix, TN, n, 1, tr->roll_done, tr->mb_done},
          {ix, TN, n, 1, tr->ret, tr->mb_ret},
      };
      be->gather_rows_many(be, P, (int)(sizeof(g) / sizeof(g[0])), g);

      /* a. nested critic: K_c Adam steps on g(w) = (1/n) sum (G - V)^2 */
      blpo_phase_mark(tr, BLPO_PHASE_NESTED);
      int64_t call = (int64_t)epoch * M + mb; /* minibatch update within the iteration */
      int64_t kc = c->nested_updates;
      blpo_critic_step cs = {
          .n = n,
          .steps = c->nested_updates, /* one op: one cooperative kernel with run.grid_sync */
          .critic = &tr->critic,
          .x = tr->mb_obs,
          .target = tr->mb_ret,
          .params = tr->critic_params,
          .grad = tr->critic_grad,
          .m = tr->critic_m,
          .v = tr->critic_v,
          .acts = tr->critic_acts,
          .dvalue = tr->dvalue,
          .scratch = tr->scratch,
          .stats = tr->stats,
          .work = tr->cs_work,
          .stat_slot = BLPO_STAT_CRITIC_LOSS_BEFORE,
          .sched =
              blpo_trainer_adam_sched(tr, c->critic_lr, (int64_t)c->num_epochs * M * kc, call * kc),
      };
      if (tr->fused_critic)
        be->critic_step(be, P, &cs);
      else
        blpo_critic_step_ops(be, P, &cs);

      /* b. actor loss with the current critic: g_theta, and dL/dV for v. The
       * critic on the minibatch and the last observations and the actor, as
       * one op (one launch on the GPU). */
      blpo_phase_mark(tr, BLPO_PHASE_ACTOR_LOSS);
      const blpo_mlp_pass fw[] = {
          {&tr->critic, tr->critic_params, tr->mb_obs, n, tr->critic_acts},
          {&tr->critic, tr->critic_params, tr->mb_last_obs, m, tr->last_acts},
          {&tr->actor, tr->actor_params, tr->mb_obs, n, tr->actor_acts},
      };
      be->mlp_forward_many(be, P, (int)(sizeof(fw) / sizeof(fw[0])), fw);
      /* also the critic's loss after the nested steps, from its resid */
      be->blpo_actor(be, d, &tr->actor, tr->actor_params, T, m, a_head, a_stride, c_head, c_stride,
                     l_head, l_stride, tr->mb_act, tr->mb_logp, tr->mb_rew, tr->mb_done, tr->mb_ret,
                     c->gamma, c->gae_lambda, c->clip_eps, c->hg_clip_f, tr->dhead, tr->actor_grad,
                     tr->vbar, tr->vbar_last, tr->rho_t, tr->mb_adv, tr->alpha_f, tr->resid,
                     tr->stats);
      if (!hyper) {
        be->mlp_backward(be, &tr->actor, P, tr->actor_params, tr->mb_obs, n, tr->actor_acts,
                         tr->dhead, tr->actor_grad, tr->scratch);
      } else {
        /* g_theta, and v = dL/dw through V(s_t) and V(last_obs), as one op */
        const blpo_mlp_grad_pass bw[] = {
            {&tr->actor, tr->actor_params, tr->mb_obs, n, tr->actor_acts, tr->dhead, tr->actor_grad,
             tr->scratch, 0},
            {&tr->critic, tr->critic_params, tr->mb_obs, n, tr->critic_acts, tr->vbar, tr->v_vec,
             tr->scratch_v, 0},
            {&tr->critic, tr->critic_params, tr->mb_last_obs, m, tr->last_acts, tr->vbar_last,
             tr->v_last_grad, tr->scratch_vl, 1 /* v += the last observations' part */},
        };
        be->mlp_backward_many(be, P, (int)(sizeof(bw) / sizeof(bw[0])), bw);
        /* c. x ~ (H + rho I)^-1 v (marks its own phases) */
        solve_ihvp(tr, n, mb);
        blpo_phase_mark(tr, BLPO_PHASE_MIXED);
        /* d. p = d/de grad_theta f2(theta, w + e x): critic tangents along x,
         * the mixed weights cdot, one actor backward pass */
        const blpo_mlp_tangent_pass tp[] = {
            {&tr->critic, tr->critic_params, tr->mb_obs, n, tr->critic_acts, 1, tr->x_vec, tr->vdot,
             tr->tan_work},
            {&tr->critic, tr->critic_params, tr->mb_last_obs, m, tr->last_acts, 1, tr->x_vec,
             tr->vdot_last, tr->tan_work},
        };
        be->mlp_tangent_many(be, P, (int)(sizeof(tp) / sizeof(tp[0])), tp);
        be->mixed_head(be, d, &tr->actor, tr->actor_params, T, m, a_head, a_stride, tr->mb_act,
                       tr->mb_done, tr->vdot, tr->vdot_last, tr->rho_t, tr->mb_adv, tr->alpha_f,
                       tr->resid, c->gamma, c->gae_lambda, tr->cdot, tr->dhead, tr->p_vec);
        be->mlp_backward(be, &tr->actor, P, tr->actor_params, tr->mb_obs, n, tr->actor_acts,
                         tr->dhead, tr->p_vec, tr->scratch);
      }
      /* e. norm bound, h = g - s p, Adam on the actor (p = 0 for nested) */
      blpo_phase_mark(tr, BLPO_PHASE_ACTOR_STEP);
      blpo_adam_sched as =
          blpo_trainer_adam_sched(tr, c->actor_lr, (int64_t)c->num_epochs * M, call);
      if (be->hypergrad_step) {
        be->hypergrad_step(be, P, Na, tr->actor_grad, tr->p_vec, c->hg_ihvp_bound, tr->stats,
                           tr->actor_params, tr->actor_m, tr->actor_v, as);
      } else {
        be->hypergrad_combine(be, P, Na, tr->actor_grad, tr->p_vec, c->hg_ihvp_bound, tr->stats);
        be->adam(be, P, Na, tr->actor_params, tr->actor_grad, tr->actor_m, tr->actor_v, NULL, as);
      }
    }
  }
}
