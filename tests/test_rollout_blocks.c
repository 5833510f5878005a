/* The fused rollout's block program (include/blpo/rollout_blocks.h), the
 * body of the CUDA kernel, run on the host thread by thread per phase over
 * NaN-poisoned shared memory (tests/blocks_backend.h), against the CPU
 * backend's op (src/cpu_rollout_fused.c; test_rollout_fused holds that op to
 * the separate ops) from the same mid-episode states and observations:
 *   - the same bits in every output (next observations, actions, log-probs,
 *     values, rewards, dones, episode returns, final observations and
 *     truncation flags, env states), each poisoned beforehand: the program
 *     computes each neuron as the CPU op does (bias, then fused
 *     multiply-adds in input order), so any difference is an error;
 *   - every task; tanh 64-64 networks, relu 37-19-5 (odd widths: the tiles'
 *     unused second neuron), an actor deeper than its critic and the other
 *     way round, one 256-wide layer (staging loops past the block's
 *     threads);
 *   - 32, 16, 8 and 4 envs per block (the multiprocessor count the layout
 *     fills), N not a multiple of the block's envs and N < 4 (padded envs
 *     compute on zeros and write nothing);
 *   - T steps in one call with the action counter read from the clock, and
 *     the same steps in two and three calls (t0 > 0); final_obs and trunc
 *     on one step and over three (each step overwrites them, as the CPU op
 *     does);
 *   - the same bits with threads and blocks in forward, reverse and strided
 *     order (tests/emu_order.h: a missing barrier shows as a change);
 *   - the layout: the widest block that fits the shared memory given, none
 *     where even 4 envs do not fit, and no layout for networks the program
 *     cannot run (a 300-wide layer, a head of 9, a critic of 2 outputs).
 * With --cuda (exits 77 without a device; the CTest gpu_rollout_blocks, and
 * tools/gpu_check.sh's racecheck) the same cases run the CUDA backend's
 * kernel against the CPU op instead, from the same states, every output
 * poisoned: relative errors under 1e-4 (libdevice's tanhf, expf, sinf and
 * cosf are not libm's) and the env states' counters equal; the layout there
 * is the device's own (its SM count), not each case's, so four more cases
 * of 400-1500 envs reach its larger blocks. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blocks_backend.h"
#include "blpo/backend.h"
#include "blpo/env.h"
#include "blpo/mlp.h"
#include "blpo/rollout_blocks.h"
#include "cuda_test_backend.h"
#include "rollout_bufs.h"
#include "test_util.h"

static blpo_backend *g_cpu, *g_bb; /* the CPU backend; it with the block programs */
static blpo_backend *g_gpu;        /* --cuda: the CUDA backend, in place of g_bb */
static int g_gpu_is_cuda;          /* 0 for --cpu-device */

typedef struct {
  const char *name;
  const int *ah, *ch; /* hidden widths */
  int anh, cnh, act;
} nets;

/* Every output float set to `v` (ep_ret's NaN is a legal value, so the
 * poison is a number the op never writes). */
static void bufs_poison(rollout_bufs *b, float v) {
  size_t PN = (size_t)b->d.P * b->d.N, T = (size_t)b->d.T, O = (size_t)b->d.obs_dim;
  size_t A = (size_t)b->d.act_dim;
  float *outs[] = {b->obs + PN * O, b->act,  b->logp, b->val,  b->rew,
                   b->done,         b->eret, b->fobs, b->trunc};
  size_t cnt[] = {T * PN * O, T * PN * A, T * PN, T * PN, T * PN, T * PN, T * PN, PN * O, PN};
  for (size_t k = 0; k < sizeof(outs) / sizeof(outs[0]); k++)
    for (size_t i = 0; i < cnt[k]; i++)
      outs[k][i] = v;
}

static void run_op(blpo_backend *be, rollout_bufs *b, int t0, int t1, const int64_t *clock,
                   int with_final) {
  blpo_dims d = b->d;
  be->rollout_fused(be, &d, &b->actor, b->ap, &b->critic, b->cp, t0, t1,
                    (blpo_counter){clock, d.T, 0}, b->st, b->obs, b->act, b->logp, b->val, b->rew,
                    b->done, b->eret, with_final ? b->fobs : NULL, with_final ? b->trunc : NULL);
}

static void same(const char *label, const char *what, const void *a, const void *b, size_t bytes) {
  size_t first = 0, diff = 0;
  const unsigned char *x = a, *y = b;
  for (size_t i = 0; i < bytes; i++)
    if (x[i] != y[i] && diff++ == 0)
      first = i;
  CHECK(diff == 0, "%s: %s: %zu of %zu bytes differ from the CPU op (first at byte %zu)", label,
        what, diff, bytes, first);
  char w[320];
  snprintf(w, sizeof w, "%s: %s", label, what);
  emu_same(w, b, bytes);
}

/* One device buffer with host's contents. */
static void *to_gpu(const void *h, size_t bytes) {
  void *d = g_gpu->alloc(g_gpu, bytes ? bytes : 4);
  if (!d) {
    fprintf(stderr, "device out of memory\n");
    exit(2);
  }
  g_gpu->upload(g_gpu, d, h, bytes);
  return d;
}

/* k's op on the CUDA backend, in `calls` calls: every buffer uploaded
 * (outputs poisoned as they are), run, downloaded back into k. */
static void run_gpu(rollout_bufs *k, int T, int calls, int64_t clock_value, int with_final) {
  blpo_dims d = k->d;
  size_t PN = (size_t)d.P * d.N, O = (size_t)d.obs_dim, A = (size_t)d.act_dim, TPN = (size_t)T * PN;
  rollout_bufs g = *k;
  g.ap = to_gpu(k->ap, d.P * k->actor.num_params * 4);
  g.cp = to_gpu(k->cp, d.P * k->critic.num_params * 4);
  g.st = to_gpu(k->st, PN * sizeof(blpo_env_state));
  g.obs = to_gpu(k->obs, (TPN + PN) * O * 4);
  g.act = to_gpu(k->act, TPN * A * 4);
  g.logp = to_gpu(k->logp, TPN * 4);
  g.val = to_gpu(k->val, TPN * 4);
  g.rew = to_gpu(k->rew, TPN * 4);
  g.done = to_gpu(k->done, TPN * 4);
  g.eret = to_gpu(k->eret, TPN * 4);
  g.fobs = to_gpu(k->fobs, PN * O * 4);
  g.trunc = to_gpu(k->trunc, PN * 4);
  int64_t *clock = to_gpu(&clock_value, sizeof(clock_value));
  for (int q = 0; q < calls; q++)
    run_op(g_gpu, &g, q * T / calls, (q + 1) * T / calls, clock, with_final);
  void *hs[] = {k->st,  k->obs,  k->act,  k->logp, k->val,
                k->rew, k->done, k->eret, k->fobs, k->trunc};
  void *ds[] = {g.st, g.obs, g.act, g.logp, g.val, g.rew, g.done, g.eret, g.fobs, g.trunc};
  size_t bytes[] = {PN * sizeof(blpo_env_state),
                    (TPN + PN) * O * 4,
                    TPN * A * 4,
                    TPN * 4,
                    TPN * 4,
                    TPN * 4,
                    TPN * 4,
                    TPN * 4,
                    PN * O * 4,
                    PN * 4};
  for (size_t j = 0; j < sizeof(hs) / sizeof(hs[0]); j++) {
    g_gpu->download(g_gpu, hs[j], ds[j], bytes[j]);
    g_gpu->release(g_gpu, ds[j]);
  }
  g_gpu->release(g_gpu, g.ap);
  g_gpu->release(g_gpu, g.cp);
  g_gpu->release(g_gpu, clock);
}

/* --cuda: the kernel's outputs k against the CPU op's c. */
static void compare_gpu(const char *label, const rollout_bufs *c, const rollout_bufs *k, int T,
                        int with_final) {
  size_t PN = (size_t)c->d.P * c->d.N, TPN = (size_t)T * PN, O = (size_t)c->d.obs_dim;
  size_t A = (size_t)c->d.act_dim;
  const float *cs[] = {c->obs + PN * O, c->act,  c->logp, c->val,  c->rew,
                       c->done,         c->eret, c->fobs, c->trunc};
  const float *ks[] = {k->obs + PN * O, k->act,  k->logp, k->val,  k->rew,
                       k->done,         k->eret, k->fobs, k->trunc};
  const size_t n[] = {TPN * O, TPN * A, TPN, TPN, TPN, TPN, TPN, PN * O, PN};
  const char *names[] = {"observations",    "actions", "log-probs",       "values",
                         "rewards",         "dones",   "episode returns", "final observations",
                         "truncation flags"};
  const int count = with_final ? 9 : 7;
  for (int j = 0; j < count; j++) {
    double e = rollout_rel(ks[j], cs[j], n[j]);
    CHECK(e < 1e-4, "%s: %s: rel err %.3g against the CPU op", label, names[j], e);
  }
  /* a discrete action that differs: where (a near-tie of the draw, whose
   * uniform lands within rounding of a cumulative probability, would show
   * here too, and then everything after it in that env differs) */
  for (size_t r = 0; r < TPN * A; r++)
    if (c->act[r] != k->act[r]) {
      fprintf(stderr, "%s: first differing action at step %zu, agent %zu, env %zu: %g vs %g\n",
              label, r / A / PN, r / A % PN / (size_t)c->d.N, r / A % (size_t)c->d.N, k->act[r],
              c->act[r]);
      break;
    }
  size_t bad = 0;
  for (size_t e = 0; e < PN; e++)
    bad += c->st[e].t != k->st[e].t || c->st[e].resets != k->st[e].resets ||
           c->st[e].ep_len != k->st[e].ep_len;
  CHECK(bad == 0, "%s: %zu env states' counters differ", label, bad);
}

/* One case: the CPU op on one copy, the block program on the other (in
 * `calls` calls over the T steps), sms multiprocessors to fill, E the
 * envs per block the layout should take. */
static void check_case(int env_id, const nets *w, int P, int N, int T, int calls, int sms,
                       int with_final, int E) {
  const blpo_env_info *info = blpo_env_get_info((blpo_env_id)env_id);
  char label[256];
  char where[32] = "the device's SMs";
  if (!g_gpu)
    snprintf(where, sizeof where, "%d SMs", sms);
  snprintf(label, sizeof label, "%s %s P=%d N=%d T=%d in %d call(s), %s%s", info->name, w->name, P,
           N, T, calls, where, with_final ? ", final_obs/trunc" : "");
  rollout_bufs c, k;
  rollout_bufs_init(&c, env_id, P, N, T, w->ah, w->anh, w->ch, w->cnh, w->act, 23);
  rollout_bufs_init(&k, env_id, P, N, T, w->ah, w->anh, w->ch, w->cnh, w->act, 23);
  rollout_bufs_fill(g_cpu, &c, 30);
  rollout_bufs_copy_inputs(&k, &c);
  bufs_poison(&c, 777.0f);
  bufs_poison(&k, 12345.0f);
  int64_t *clock = g_cpu->alloc(g_cpu, sizeof(int64_t)), it = 5;
  g_cpu->upload(g_cpu, clock, &it, sizeof(it));
  run_op(g_cpu, &c, 0, T, clock, with_final);
  if (g_gpu) { /* the device's layout, from its own SM count */
    const int failures = g_failures;
    CHECK(g_gpu->rollout_fused_supported(g_gpu, &c.actor, &c.critic) == (g_gpu_is_cuda ? 2 : 1),
          "%s: the %s backend should %s the fused step", label, g_gpu->name,
          g_gpu_is_cuda ? "prefer" : "offer");
    run_gpu(&k, T, calls, it, with_final);
    compare_gpu(label, &c, &k, T, with_final);
    printf("%-88s %s\n", label, g_failures == failures ? "ok" : "FAIL");
    g_cpu->release(g_cpu, clock);
    rollout_bufs_free(&c);
    rollout_bufs_free(&k);
    return;
  }
  /* the layout the op will take */
  blpo_rof_layout lay;
  CHECK(blpo_rof_choose(&lay, &c.d, &c.actor, &c.critic, BLK_SMEM, sms) && lay.E == E,
        "%s: a layout of %d envs per block expected, got %d", label, E, lay.E);
  g_blk.sms = sms;
  size_t before = g_blk.ran[BLK_ROF];
  for (int q = 0; q < calls; q++)
    run_op(g_bb, &k, q * T / calls, (q + 1) * T / calls, clock, with_final);
  g_blk.sms = BLK_SMS;
  CHECK(g_blk.ran[BLK_ROF] - before == (size_t)calls * P * lay.blocks,
        "%s: %zu blocks ran, %zu expected", label, g_blk.ran[BLK_ROF] - before,
        (size_t)calls * P * lay.blocks);
  size_t PN = (size_t)P * N, TPN = (size_t)T * PN, O = (size_t)c.d.obs_dim;
  size_t A = (size_t)c.d.act_dim;
  same(label, "observations", c.obs, k.obs, (TPN + PN) * O * 4);
  same(label, "actions", c.act, k.act, TPN * A * 4);
  same(label, "log-probs", c.logp, k.logp, TPN * 4);
  same(label, "values", c.val, k.val, TPN * 4);
  same(label, "rewards", c.rew, k.rew, TPN * 4);
  same(label, "dones", c.done, k.done, TPN * 4);
  same(label, "episode returns", c.eret, k.eret, TPN * 4);
  if (with_final) {
    same(label, "final observations", c.fobs, k.fobs, PN * O * 4);
    same(label, "truncation flags", c.trunc, k.trunc, PN * 4);
  }
  same(label, "env states", c.st, k.st, PN * sizeof(blpo_env_state));
  g_cpu->release(g_cpu, clock);
  rollout_bufs_free(&c);
  rollout_bufs_free(&k);
}

static const int h64[2] = {64, 64}, h_odd[3] = {37, 19, 5}, h24[1] = {24}, h256[1] = {256};
static const nets k_tanh = {"tanh 64-64", h64, h64, 2, 2, BLPO_ACT_TANH};
static const nets k_relu = {"relu 37-19-5", h_odd, h_odd, 3, 3, BLPO_ACT_RELU};
static const nets k_deep = {"tanh actor 64-64, critic 24", h64, h24, 2, 1, BLPO_ACT_TANH};
static const nets k_deep_critic = {
    "relu actor 24, critic 37-19-5", h24, h_odd, 1, 3, BLPO_ACT_RELU};
static const nets k_wide = {"tanh 256", h256, h256, 1, 1, BLPO_ACT_TANH};

static void run_cases(void) {
  for (int e = 0; e < BLPO_ENV_COUNT; e++) {
    check_case(e, &k_tanh, 2, 53, 4, 1, 1, 0, 32);  /* 2 blocks of 32, the second part empty */
    check_case(e, &k_relu, 2, 53, 3, 1, 8, 0, 16);  /* 4 of 16 per agent fill 8 SMs */
    check_case(e, &k_deep, 2, 64, 3, 1, 16, 0, 8);  /* 8 of 8 per agent fill 16 */
    check_case(e, &k_tanh, 2, 53, 1, 1, 132, 1, 4); /* one step, final_obs and trunc */
    check_case(e, &k_relu, 3, 3, 5, 2, 1, 0, 4);    /* N < 4; steps [0, 2) then [2, 5) */
  }
  check_case(BLPO_ENV_CARTPOLE, &k_wide, 1, 40, 2, 1, 1, 0, 32);
  check_case(BLPO_ENV_ACROBOT, &k_deep_critic, 2, 45, 3, 1, 5, 0, 16);
  check_case(BLPO_ENV_CARTPOLE, &k_tanh, 2, 37, 3, 1, 1, 1, 32); /* final_obs over 3 steps */
  check_case(BLPO_ENV_PENDULUM, &k_tanh, 2, 70, 6, 3, 1, 0, 32); /* t0 = 2, 4 */
}

/* The layout's choices and refusals. */
static void check_layouts(void) {
  blpo_dims d;
  memset(&d, 0, sizeof(d));
  d.P = 1, d.N = 8, d.obs_dim = 4, d.act_dim = 1;
  blpo_mlp a, c, wide, head9, c2;
  blpo_mlp_init_shape(&a, 4, h64, 2, 2, BLPO_ACT_TANH, 0);
  blpo_mlp_init_shape(&c, 4, h64, 2, 1, BLPO_ACT_TANH, 0);
  blpo_rof_layout l8, l4, l;
  CHECK(blpo_rof_choose(&l8, &d, &a, &c, BLK_SMEM, 1) && l8.E == 8, "N = 8: 8 envs per block");
  d.N = 4;
  CHECK(blpo_rof_choose(&l4, &d, &a, &c, BLK_SMEM, 1) && l4.E == 4, "N = 4: 4 envs per block");
  d.N = 1000;
  const size_t b8 = sizeof(float) * (size_t)l8.s_floats, b4 = sizeof(float) * (size_t)l4.s_floats;
  CHECK(blpo_rof_choose(&l, &d, &a, &c, b8, 1) && l.E == 8 && l.blocks == 125,
        "shared memory for 8 envs: 8 per block (got %d, %d blocks)", l.E, l.blocks);
  CHECK(blpo_rof_choose(&l, &d, &a, &c, b8 - 4, 1) && l.E == 4, "4 bytes less: 4 per block");
  CHECK(!blpo_rof_choose(&l, &d, &a, &c, b4 - 4, 1), "less than 4 envs need: no layout");
  CHECK(blpo_rof_choose(&l, &d, &a, &c, BLK_SMEM, 1) && l.E == 32 &&
            (size_t)l.s_floats * 4 < 96 * 1024,
        "cartpole.yaml's networks at 32 envs: %d floats (2 blocks per SM need < 96 KiB)",
        l.s_floats);
  const int h300[1] = {300};
  blpo_mlp_init_shape(&wide, 4, h300, 1, 2, BLPO_ACT_TANH, 0);
  blpo_mlp_init_shape(&head9, 4, h64, 2, 9, BLPO_ACT_TANH, 0);
  blpo_mlp_init_shape(&c2, 4, h64, 2, 2, BLPO_ACT_TANH, 0);
  CHECK(!blpo_rof_choose(&l, &d, &wide, &c, BLK_SMEM, 1), "a 300-wide layer was accepted");
  CHECK(!blpo_rof_choose(&l, &d, &head9, &c, BLK_SMEM, 1), "a head of 9 was accepted");
  CHECK(!blpo_rof_choose(&l, &d, &a, &c2, BLK_SMEM, 1), "a critic of 2 outputs was accepted");
  blpo_dims dp = d; /* agents are the grid's y: at most 65535 */
  dp.P = 65535;
  CHECK(blpo_rof_choose(&l, &dp, &a, &c, BLK_SMEM, 1), "65535 agents refused");
  dp.P = 65536;
  CHECK(!blpo_rof_choose(&l, &dp, &a, &c, BLK_SMEM, 1), "65536 agents accepted");
  CHECK(g_bb->rollout_fused_supported(g_bb, &a, &c) == 2 &&
            g_bb->rollout_fused_supported(g_bb, &wide, &c) == 0,
        "supported: 2 for cartpole.yaml's networks, 0 for a 300-wide layer");
  /* the pitch: a multiple of 4, 4 mod 8 */
  for (int E = 4; E <= BLPO_ROF_MAX_ENVS; E *= 2) {
    const int p = blpo_rof_pitch(E);
    CHECK(p >= E && p % 4 == 0 && p % 8 == 4, "pitch %d for %d envs", p, E);
  }
}

int main(int argc, char **argv) {
  g_cpu = blpo_backend_cpu_create(1);
  g_bb = blocks_backend_create();
  if (!g_cpu || !g_bb) {
    fprintf(stderr, "cannot create the CPU backend\n");
    return 2;
  }
  const int cpu_device = argc > 1 && !strcmp(argv[1], "--cpu-device");
  if (cpu_device || (argc > 1 && !strcmp(argv[1], "--cuda"))) {
    char why[256] = "built without the CUDA backend";
    /* --cpu-device: the --cuda path with a second CPU backend as the
     * device, so that its uploads, downloads and comparisons run (under
     * the sanitizers too) on machines without a GPU */
    if (cpu_device)
      g_gpu = blpo_backend_cpu_create(1);
#ifdef BLPO_WITH_CUDA
    else
      g_gpu = blpo_test_cuda_create(why, sizeof why);
#endif
    g_gpu_is_cuda = !cpu_device;
    if (!g_gpu) {
      printf("test_rollout_blocks --cuda: skipped: %s\n", why);
      return 77;
    }
    run_cases();
    /* the kernel's larger blocks: on the device's own SM count these take
     * more envs per block (on 132 SMs: 8, 16 and 32) */
    check_case(BLPO_ENV_ACROBOT, &k_tanh, 3, 400, 3, 1, 132, 0, 8);
    check_case(BLPO_ENV_PENDULUM, &k_relu, 3, 700, 3, 1, 132, 0, 16);
    check_case(BLPO_ENV_CARTPOLE, &k_deep, 3, 1500, 3, 2, 132, 0, 32);
    check_case(BLPO_ENV_MOUNTAINCAR, &k_deep_critic, 3, 1500, 2, 1, 132, 1, 32);
    g_gpu->destroy(g_gpu);
    g_bb->destroy(g_bb);
    g_cpu->destroy(g_cpu);
    return test_summary(cpu_device ? "test_rollout_blocks --cpu-device"
                                   : "test_rollout_blocks --cuda");
  }
  check_layouts();
  const int orders[] = {EMU_FORWARD, EMU_REVERSE, EMU_STRIDED};
  for (size_t o = 0; o < sizeof(orders) / sizeof(orders[0]); o++) {
    emu_begin_order(orders[o], 0x5eed5eedull);
    printf("threads and blocks in %s order\n", emu_order_names[orders[o]]);
    run_cases();
  }
  emu_seen_free();
  g_bb->destroy(g_bb);
  g_cpu->destroy(g_cpu);
  return test_summary("test_rollout_blocks");
}
