/* The fused rollout step (backend.h rollout_fused, include/blpo/fused_rollout.h)
 * on the CPU backend against the separate ops it replaces (mlp_forward for
 * both networks, policy_sample, env_step), from the same env states and
 * observations: values and log-probs within 1e-5 relative (the forward
 * passes differ only in summation order), the same actions, and then the
 * same next observations, rewards, dones, episode returns, truncation flags
 * and env states. Every task, tanh and relu networks of uneven widths, two
 * agents, random parameters and mid-episode states. Also T steps in one call,
 * the action counter read from the clock, against T rounds of the separate
 * ops. The CUDA kernel is checked against this same CPU op in test_gpu_ops. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blpo/backend.h"
#include "blpo/env.h"
#include "blpo/mlp.h"
#include "rollout_bufs.h"
#include "test_util.h"

enum { P = 2, N = 53 };

static int same_bits(const void *a, const void *b, size_t bytes) { return !memcmp(a, b, bytes); }

/* One step: fused against the separate ops. */
static void check_step(blpo_backend *be, int env_id, const int *hidden, int nh, int act,
                       int with_final) {
  const blpo_env_info *info = blpo_env_get_info((blpo_env_id)env_id);
  char label[160];
  snprintf(label, sizeof(label), "%s %s [%d%s] final_obs %d", info->name,
           act == BLPO_ACT_TANH ? "tanh" : "relu", hidden[0], nh > 1 ? ",..." : "", with_final);
  rollout_bufs f, s;
  rollout_bufs_init(&f, env_id, P, N, 1, hidden, nh, hidden, nh, act, 17);
  rollout_bufs_init(&s, env_id, P, N, 1, hidden, nh, hidden, nh, act, 17);
  rollout_bufs_fill(be, &f, 20);
  rollout_bufs_copy_inputs(&s, &f);
  blpo_dims d = f.d;
  CHECK(be->rollout_fused_supported(be, &f.actor, &f.critic) == 1, "%s: CPU should answer 1",
        label);
  be->rollout_fused(be, &d, &f.actor, f.ap, &f.critic, f.cp, 0, 1, (blpo_counter){NULL, 0, 9}, f.st,
                    f.obs, f.act, f.logp, f.val, f.rew, f.done, f.eret, with_final ? f.fobs : NULL,
                    with_final ? f.trunc : NULL);
  /* the separate ops */
  size_t PN = (size_t)P * N, O = (size_t)d.obs_dim;
  float *aa = rollout_xcalloc(PN * s.actor.act_floats_per_row, sizeof(float));
  float *ca = rollout_xcalloc(PN * s.critic.act_floats_per_row, sizeof(float));
  be->mlp_forward(be, &s.actor, P, s.ap, s.obs, N, aa);
  be->mlp_forward(be, &s.critic, P, s.cp, s.obs, N, ca);
  const float *ah = aa + blpo_mlp_act_offset(&s.actor, s.actor.num_layers, N);
  const float *ch = ca + blpo_mlp_act_offset(&s.critic, s.critic.num_layers, N);
  be->copy_blocks(be, P, N, s.val, N, ch, (size_t)N * s.critic.act_floats_per_row);
  be->policy_sample(be, &d, &s.actor, s.ap, ah, (size_t)N * s.actor.act_floats_per_row,
                    (blpo_counter){NULL, 0, 9}, s.act, s.logp);
  be->env_step(be, &d, s.st, s.act, s.obs + PN * O, s.rew, s.done, s.eret,
               with_final ? s.fobs : NULL, with_final ? s.trunc : NULL);
  double ev = rollout_rel(f.val, s.val, PN), el = rollout_rel(f.logp, s.logp, PN);
  CHECK(ev < 1e-5, "%s: value rel err %.3g", label, ev);
  CHECK(el < 1e-5, "%s: logp rel err %.3g", label, el);
  if (d.discrete) {
    int differ = 0;
    for (size_t k = 0; k < PN; k++)
      differ += f.act[k] != s.act[k];
    CHECK(differ == 0, "%s: %d of %zu actions differ", label, differ, PN);
    CHECK(same_bits(f.obs + PN * O, s.obs + PN * O, PN * O * sizeof(float)) &&
              same_bits(f.rew, s.rew, PN * 4) && same_bits(f.done, s.done, PN * 4) &&
              same_bits(f.eret, s.eret, PN * 4) &&
              same_bits(f.st, s.st, PN * sizeof(blpo_env_state)),
          "%s: transitions differ for the same actions", label);
  } else {
    double ea = rollout_rel(f.act, s.act, PN * d.act_dim),
           eo = rollout_rel(f.obs + PN * O, s.obs + PN * O, PN * O);
    CHECK(ea < 1e-5 && eo < 1e-4, "%s: action rel err %.3g, next obs %.3g", label, ea, eo);
  }
  if (with_final)
    CHECK(same_bits(f.trunc, s.trunc, PN * 4) && rollout_rel(f.fobs, s.fobs, PN * O) < 1e-4,
          "%s: final_obs/trunc differ", label);
  free(aa);
  free(ca);
  rollout_bufs_free(&f);
  rollout_bufs_free(&s);
}

/* T steps in one call (counter from the clock) against T rounds of the
 * separate ops with the counters spelled out: step t draws at 5 T + t. */
static void check_multi_step(blpo_backend *be, int env_id) {
  const int T = 6, hidden[2] = {64, 64};
  const char *name = blpo_env_get_info((blpo_env_id)env_id)->name;
  rollout_bufs a, b;
  rollout_bufs_init(&a, env_id, P, N, T, hidden, 2, hidden, 2, BLPO_ACT_TANH, 17);
  rollout_bufs_init(&b, env_id, P, N, T, hidden, 2, hidden, 2, BLPO_ACT_TANH, 17);
  rollout_bufs_fill(be, &a, 20);
  rollout_bufs_copy_inputs(&b, &a);
  blpo_dims d = a.d;
  size_t PN = (size_t)P * N, O = (size_t)d.obs_dim, A = (size_t)d.act_dim;
  int64_t *clock = be->alloc(be, sizeof(int64_t)), it = 5;
  be->upload(be, clock, &it, sizeof(it));
  be->rollout_fused(be, &d, &a.actor, a.ap, &a.critic, a.cp, 0, T, (blpo_counter){clock, T, 0},
                    a.st, a.obs, a.act, a.logp, a.val, a.rew, a.done, a.eret, NULL, NULL);
  float *aa = rollout_xcalloc(PN * b.actor.act_floats_per_row, sizeof(float));
  float *ca = rollout_xcalloc(PN * b.critic.act_floats_per_row, sizeof(float));
  const float *ah = aa + blpo_mlp_act_offset(&b.actor, b.actor.num_layers, N);
  const float *ch = ca + blpo_mlp_act_offset(&b.critic, b.critic.num_layers, N);
  for (int t = 0; t < T; t++) {
    float *ot = b.obs + (size_t)t * PN * O;
    be->mlp_forward(be, &b.actor, P, b.ap, ot, N, aa);
    be->mlp_forward(be, &b.critic, P, b.cp, ot, N, ca);
    be->copy_blocks(be, P, N, b.val + t * PN, N, ch, (size_t)N * b.critic.act_floats_per_row);
    be->policy_sample(be, &d, &b.actor, b.ap, ah, (size_t)N * b.actor.act_floats_per_row,
                      (blpo_counter){NULL, 0, 5 * T + t}, b.act + t * PN * A, b.logp + t * PN);
    be->env_step(be, &d, b.st, b.act + t * PN * A, ot + PN * O, b.rew + t * PN, b.done + t * PN,
                 b.eret + t * PN, NULL, NULL);
  }
  size_t TPN = (size_t)T * PN;
  CHECK(rollout_rel(a.val, b.val, TPN) < 1e-5 && rollout_rel(a.logp, b.logp, TPN) < 1e-5,
        "%s: %d fused steps: value %.3g, logp %.3g rel err", name, T,
        rollout_rel(a.val, b.val, TPN), rollout_rel(a.logp, b.logp, TPN));
  if (d.discrete)
    CHECK(same_bits(a.act, b.act, TPN * A * 4) && same_bits(a.obs, b.obs, (TPN + PN) * O * 4) &&
              same_bits(a.rew, b.rew, TPN * 4) && same_bits(a.done, b.done, TPN * 4) &&
              same_bits(a.eret, b.eret, TPN * 4),
          "%s: %d fused steps take other actions or transitions than the separate ops", name, T);
  else
    CHECK(rollout_rel(a.act, b.act, TPN * A) < 1e-5 &&
              rollout_rel(a.obs, b.obs, (TPN + PN) * O) < 1e-4,
          "%s: %d fused steps: actions %.3g, obs %.3g rel err", name, T,
          rollout_rel(a.act, b.act, TPN * A), rollout_rel(a.obs, b.obs, (TPN + PN) * O));
  free(aa);
  free(ca);
  be->release(be, clock);
  rollout_bufs_free(&a);
  rollout_bufs_free(&b);
}

int main(void) {
  blpo_backend *be = blpo_backend_cpu_create(2);
  const int h64[2] = {64, 64}, h_odd[3] = {37, 19, 5}, h_wide[1] = {256};
  for (int e = 0; e < BLPO_ENV_COUNT; e++) {
    check_step(be, e, h64, 2, BLPO_ACT_TANH, 0);
    check_step(be, e, h_odd, 3, BLPO_ACT_RELU, 1);
    check_multi_step(be, e);
  }
  check_step(be, BLPO_ENV_CARTPOLE, h_wide, 1, BLPO_ACT_TANH, 0);
  /* wider than the fused step runs: unsupported */
  blpo_mlp big;
  const int h_big[1] = {300};
  blpo_mlp_init_shape(&big, 4, h_big, 1, 2, BLPO_ACT_TANH, 0);
  CHECK(be->rollout_fused_supported(be, &big, &big) == 0, "a 300-wide layer was accepted");
  be->destroy(be);
  return test_summary("test_rollout_fused");
}
