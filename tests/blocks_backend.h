/* A test backend: the CPU backend with the ops the CUDA backend runs as
 * block-program kernels replaced by those block programs, run on the host
 * thread after thread per phase (shared memory poisoned with NaN for every
 * block; threads, blocks and agents in the order of tests/emu_order.h, so
 * that a race shows as a change between orders), with the CUDA backend's
 * own choices: the same layouts for an
 * H100/H200's opt-in shared memory, the same workspaces and strides, the
 * same fall-backs to the library path where a network does not fit.
 *
 *   mlp_forward(_many)            blpo_fwd, blpo_fwd_set (ppo_blocks.h)
 *   mlp_backward(_many)           blpo_bwd, blpo_bwd_set (ppo_blocks.h)
 *   ppo_minibatch(_work)          blpo_mbf (ppo_blocks.h; with
 *                                 set_grid_sync the cooperative kernel's
 *                                 schedule, blpo_mbf_grid_*)
 *   critic_step(_work)            blpo_cvf (critic_blocks.h; with
 *                                 set_grid_sync the cooperative kernel's
 *                                 schedule, blpo_cvf_grid_*)
 *   critic_hvp_rows               blpo_hvr (hvp_rows_blocks.h)   \
 *   mlp_tangent(_many)            blpo_tnf, blpo_tnf_set          } set_fused_solve
 *                                 (tangent_blocks.h)             |
 *   nystrom_solve                 blpo_nys (nystrom_blocks.h)    /
 *   hypergrad_combine, _step      blpo_hgs (hypergrad_blocks.h; _step's
 *                                 Adam part with set_fused_solve)
 *   blpo_actor, mixed_head        blpo_acb, blpo_mxb (actor_blocks.h)
 *   episode_summary               blpo_eps (episode_blocks.h)
 *   rollout_fused(_supported)     blpo_rof (rollout_blocks.h; as the CUDA
 *                                 op, preferred: 2, so the trainer's auto
 *                                 choice takes it)
 *
 * The per-op tests check each program against the CPU op on random inputs;
 * with this backend whole training iterations (tests/test_blocks_update.c)
 * run them on the trainer's real buffers, sizes and call order, which is
 * what the CUDA backend runs, on a machine without a GPU. One backend at a
 * time (the state below is static). */
#ifndef BLPO_TEST_BLOCKS_BACKEND_H
#define BLPO_TEST_BLOCKS_BACKEND_H

#include <stdlib.h>
#include <string.h>

#include "blpo/actor_blocks.h"
#include "blpo/backend.h"
#include "blpo/critic_blocks.h"
#include "blpo/episode_blocks.h"
#include "blpo/hvp_rows_blocks.h"
#include "blpo/hypergrad_blocks.h"
#include "blpo/nystrom_blocks.h"
#include "blpo/ppo_blocks.h"
#include "blpo/rollout_blocks.h"
#include "blpo/second_order.h"
#include "blpo/tangent_blocks.h"
#include "emu_order.h"
#include "test_util.h"

#define BLK_SMEM ((size_t)232448) /* cudaDevAttrMaxSharedMemoryPerBlockOptin, H100 and H200 */
#define BLK_SMS 132               /* an H100 SXM's multiprocessors */

enum {
  BLK_FWD,
  BLK_BWD,
  BLK_MBF,
  BLK_CVF,
  BLK_HVR,
  BLK_TNF,
  BLK_NYS,
  BLK_HGS,
  BLK_ACB,
  BLK_MXB,
  BLK_EPS,
  BLK_ROF,
  BLK_PROGRAMS
};
static const char *const blk_names[BLK_PROGRAMS] = {"fwd", "bwd", "mbf", "cvf", "hvr", "tnf",
                                                    "nys", "hgs", "acb", "mxb", "eps", "rof"};

static struct {
  blpo_backend cpu; /* the CPU backend's ops, for the fall-backs */
  int fused;        /* set_fused_solve */
  float *sm;
  size_t sm_floats;
  size_t ran[BLK_PROGRAMS];   /* blocks emulated per program */
  int sms;                    /* the multiprocessors the rollout's layout fills (BLK_SMS) */
  int tf32;                   /* set_gemm_precision: the layer passes' TF32 tiles, emulated */
  int grid_sync;              /* set_grid_sync: critic_step as the cooperative kernel's schedule */
  long long grid_steps;       /* critic steps run that way */
  long long grid_minibatches; /* PPO minibatches run that way */
} g_blk;

/* Shared memory for one block of program `prog`, poisoned; exactly the
 * layout's size, so that ASan sees a read or write past it. */
static float *blk_shared(int prog, size_t floats) {
  if (floats != g_blk.sm_floats) {
    free(g_blk.sm);
    g_blk.sm = test_alloc_shared(floats);
    g_blk.sm_floats = floats;
  }
  test_poison_nan(g_blk.sm, floats, 0x5b);
  g_blk.ran[prog]++;
  return g_blk.sm;
}

static void blk_mlp_forward(blpo_backend *be, const blpo_mlp *m, int P, const float *params,
                            const float *x, int n, float *acts) {
  blpo_fwd_args a;
  if (P <= 0 || n <= 0)
    return;
  if (!blpo_fwd_choose(&a.lay, m, P, n, BLK_SMEM, g_blk.tf32)) {
    g_blk.cpu.mlp_forward(be, m, P, params, x, n, acts);
    return;
  }
  a.params = params, a.x = x, a.acts = acts;
  EMU_FOR (p, P)
    EMU_FOR (b, a.lay.blocks) {
      float *sm = blk_shared(BLK_FWD, (size_t)a.lay.s_floats);
      for (int ph = 0; ph < blpo_fwd_phases(&a.lay); ph++)
        EMU_FOR (t, BLPO_MBF_THREADS)
          blpo_fwd(&a, p, b, t, ph, sm);
    }
}

/* As the CUDA op: one grid over every pass's blocks where all fit, each
 * block finding its pass (blpo_pass_of); otherwise pass by pass. */
static void blk_mlp_forward_many(blpo_backend *be, int P, int count, const blpo_mlp_pass *f) {
  blpo_fwd_set set;
  if (P <= 0 || count <= 0)
    return;
  if (!blpo_fwd_set_init(&set, P, count, f, BLK_SMEM, g_blk.tf32)) {
    for (int k = 0; k < count; k++)
      blk_mlp_forward(be, f[k].m, P, f[k].params, f[k].x, f[k].n, f[k].acts);
    return;
  }
  EMU_FOR (p, P)
    EMU_FOR (g, set.start[set.count]) {
      const int t = blpo_pass_of(set.start, g), b = g - set.start[t];
      const blpo_fwd_args *a = &set.f[t];
      float *sm = blk_shared(BLK_FWD, (size_t)set.s_floats);
      for (int ph = 0; ph < blpo_fwd_phases(&a->lay); ph++)
        EMU_FOR (th, BLPO_MBF_THREADS)
          blpo_fwd(a, p, b, th, ph, sm);
    }
}

static void blk_mlp_backward(blpo_backend *be, const blpo_mlp *m, int P, const float *params,
                             const float *x, int n, const float *acts, const float *dy, float *grad,
                             float *scratch) {
  blpo_bwd_args a;
  if (P <= 0)
    return;
  if (!blpo_bwd_choose(&a.lay, m, P, n, BLK_SMEM, g_blk.tf32)) {
    g_blk.cpu.mlp_backward(be, m, P, params, x, n, acts, dy, grad, scratch);
    return;
  }
  a.params = params, a.x = x, a.acts = acts, a.dy = dy, a.grad = grad, a.parts = scratch;
  EMU_FOR (p, P)
    EMU_FOR (b, a.lay.blocks) {
      float *sm = blk_shared(BLK_BWD, (size_t)a.lay.s_floats);
      for (int ph = 0; ph < blpo_bwd_rows_phases(&a.lay); ph++)
        EMU_FOR (t, BLPO_MBF_THREADS)
          blpo_bwd_rows(&a, p, b, t, ph, sm);
    }
  if (!a.lay.direct) {
    int cols = (int)((m->num_mlp_params + BLPO_MBF_THREADS - 1) / BLPO_MBF_THREADS);
    EMU_FOR (p, P)
      EMU_FOR (k, cols)
        EMU_FOR (t, BLPO_MBF_THREADS)
          blpo_bwd_reduce(&a, p, k, t);
  }
}

/* As the CUDA op: the rows over every pass's blocks, then the reduce over
 * every pass's column blocks, where all fit; otherwise pass by pass. */
static void blk_mlp_backward_many(blpo_backend *be, int P, int count, const blpo_mlp_grad_pass *g) {
  blpo_bwd_set set;
  if (P <= 0 || count <= 0)
    return;
  if (!blpo_bwd_set_init(&set, P, count, g, BLK_SMEM, g_blk.tf32)) {
    for (int k = 0; k < count; k++)
      blk_mlp_backward(be, g[k].m, P, g[k].params, g[k].x, g[k].n, g[k].acts, g[k].dy, g[k].grad,
                       g[k].scratch);
    for (int k = 1; k < count; k++)
      if (g[k].add_to_prev)
        be->axpy(be, P, g[k].m->num_params, 1.0f, g[k].grad, g[k - 1].grad);
    return;
  }
  EMU_FOR (p, P)
    EMU_FOR (gb, set.start[set.count]) {
      const int t = blpo_pass_of(set.start, gb);
      const blpo_bwd_args *a = &set.b[t];
      float *sm = blk_shared(BLK_BWD, (size_t)set.s_floats);
      for (int ph = 0; ph < blpo_bwd_rows_phases(&a->lay); ph++)
        EMU_FOR (th, BLPO_MBF_THREADS)
          blpo_bwd_rows(a, p, gb - set.start[t], th, ph, sm);
    }
  EMU_FOR (p, P)
    EMU_FOR (gb, set.rstart[set.count])
      EMU_FOR (th, BLPO_MBF_THREADS)
        blpo_bwd_set_reduce(&set, p, gb, th);
}

static size_t blk_ppo_minibatch_work(blpo_backend *be, const blpo_dims *d, const blpo_mlp *actor,
                                     const blpo_mlp *critic, int n, int minibatches) {
  (void)be;
  blpo_mbf_layout lay;
  return blpo_mbf_choose(&lay, d, actor, critic, n, BLK_SMEM, g_blk.tf32)
             ? blpo_mbf_work_bytes(&lay, d->P, minibatches)
             : 0;
}

static void blk_ppo_minibatch(blpo_backend *be, const blpo_dims *d, const blpo_ppo_minibatch *mb) {
  (void)be;
  blpo_mbf_layout lay;
  if (d->P <= 0 || mb->n <= 0)
    return;
  if (!mb->work || !blpo_mbf_place_ok(mb) ||
      !blpo_mbf_choose(&lay, d, mb->actor, mb->critic, mb->n, BLK_SMEM, g_blk.tf32)) {
    fprintf(stderr, "blocks backend: ppo_minibatch without a layout or workspace\n");
    exit(2);
  }
  const int P = d->P;
  blpo_mbf_args a = blpo_mbf_args_of(&lay, mb, P, mb->work);
  /* run.grid_sync: the cooperative kernel's schedule, as critic_step's */
  const int G = g_blk.grid_sync ? blpo_mbf_grid_blocks(&lay, P, 2LL * BLK_SMS) : 0;
  if (G > 0) {
    g_blk.grid_minibatches++;
    for (int s = 0; s < blpo_mbf_grid_count(&a); s++) /* a grid barrier between grid phases */
      EMU_FOR (p, P)
        EMU_FOR (x, G)
          for (int u = x; u < blpo_mbf_grid_units(&a, s); u += G) {
            float *sm = blk_shared(BLK_MBF, (size_t)blpo_mbf_grid_floats(&lay));
            for (int ph = 0; ph < blpo_mbf_grid_phases(&a, s); ph++)
              EMU_FOR (t, BLPO_MBF_THREADS)
                blpo_mbf_grid_unit(&a, s, p, u, t, ph, sm);
          }
    return;
  }
  blpo_mbf_moments_shared msh;
  blpo_mbf_reduce_shared rsh;
  blpo_mbf_adam_shared ash;
  if (a.mb == 0)
    EMU_FOR (p, P) /* the epoch's moments, at its first minibatch */
      EMU_FOR (m, a.M) {
        memset(&msh, 0xff, sizeof(msh));
        for (int ph = 0; ph < blpo_mbf_moments_phases(); ph++)
          EMU_FOR (t, BLPO_MBF_THREADS)
            blpo_mbf_moments(&a, p, m, t, ph, &msh);
      }
  EMU_FOR (p, P)
    EMU_FOR (b, lay.blocks) {
      float *sm = blk_shared(BLK_MBF, (size_t)lay.s_floats);
      for (int ph = 0; ph < blpo_mbf_rows_phases(&lay); ph++)
        EMU_FOR (t, BLPO_MBF_THREADS)
          blpo_mbf_rows(&a, p, b, t, ph, sm);
    }
  EMU_FOR (p, P)
    EMU_FOR (k, lay.col_blocks) {
      memset(&rsh, 0xff, sizeof(rsh));
      for (int ph = 0; ph < blpo_mbf_reduce_phases(); ph++)
        EMU_FOR (t, BLPO_MBF_THREADS)
          blpo_mbf_reduce(&a, p, k, t, ph, &rsh);
    }
  EMU_FOR (p, P)
    EMU_FOR (k, lay.col_blocks) {
      memset(&ash, 0xff, sizeof(ash));
      for (int ph = 0; ph < blpo_mbf_adam_phases(); ph++)
        EMU_FOR (t, BLPO_MBF_THREADS)
          blpo_mbf_adam(&a, p, k, t, ph, &ash);
    }
}

static size_t blk_critic_step_work(blpo_backend *be, const blpo_dims *d, const blpo_mlp *critic,
                                   int n) {
  (void)be;
  blpo_cvf_layout lay;
  return blpo_cvf_choose(&lay, d, critic, n, BLK_SMEM, g_blk.tf32) ? blpo_cvf_work_bytes(&lay, d->P)
                                                                   : 0;
}

static void blk_critic_step(blpo_backend *be, int P, const blpo_critic_step *cs) {
  (void)be;
  if (P <= 0 || cs->n <= 0)
    return;
  blpo_dims d;
  memset(&d, 0, sizeof(d));
  d.P = P, d.obs_dim = cs->critic->dims[0];
  blpo_cvf_layout lay;
  if (!cs->work || !blpo_cvf_choose(&lay, &d, cs->critic, cs->n, BLK_SMEM, g_blk.tf32)) {
    fprintf(stderr, "blocks backend: critic_step without a layout or workspace\n");
    exit(2);
  }
  blpo_cvf_args a = blpo_cvf_args_of(&lay, cs);
  /* run.grid_sync: the cooperative kernel's schedule, its grid as the CUDA
   * op sizes it for two blocks per multiprocessor (the rows kernel's bound) */
  const int G = g_blk.grid_sync ? blpo_cvf_grid_blocks(&lay, P, 2LL * BLK_SMS) : 0;
  if (G > 0) {
    g_blk.grid_steps += cs->steps;
    for (int s = 0; s < 2 * cs->steps; s++) /* a grid barrier between grid phases */
      EMU_FOR (p, P)
        EMU_FOR (x, G)
          for (int u = x; u < blpo_cvf_grid_units(&lay, s); u += G) {
            /* poisoned per unit: a unit reads nothing its block's last one left */
            float *sm = blk_shared(BLK_CVF, (size_t)blpo_cvf_grid_floats(&lay));
            for (int ph = 0; ph < blpo_cvf_grid_phases(&lay, s); ph++)
              EMU_FOR (t, BLPO_MBF_THREADS)
                blpo_cvf_grid_unit(&a, s, p, u, t, ph, sm);
          }
    return;
  }
  for (int k = 0; k < cs->steps; k++) {
    EMU_FOR (p, P)
      EMU_FOR (b, lay.blocks) {
        float *sm = blk_shared(BLK_CVF, (size_t)lay.s_floats);
        for (int ph = 0; ph < blpo_cvf_rows_phases(&lay); ph++)
          EMU_FOR (t, BLPO_MBF_THREADS)
            blpo_cvf_rows(&a, p, b, t, ph, sm);
      }
    blpo_cvf_adam_shared sh;
    EMU_FOR (p, P)
      EMU_FOR (c, lay.col_blocks) {
        memset(&sh, 0xff, sizeof(sh));
        for (int ph = 0; ph < blpo_cvf_adam_phases(); ph++)
          EMU_FOR (t, BLPO_MBF_THREADS)
            blpo_cvf_adam(&a, p, c, k, t, ph, &sh);
      }
  }
}

/* As the CUDA op: on (a host has no limit on "resident" blocks). */
static int blk_set_grid_sync(blpo_backend *be, int on) {
  (void)be;
  g_blk.grid_sync = on != 0;
  return g_blk.grid_sync;
}

static int blk_set_fused_solve(blpo_backend *be, int on) {
  (void)be;
  g_blk.fused = on != 0;
  return on ? BLPO_NYS_KMAX : 0;
}

/* As the CUDA dispatch: the partials at blpo_hvp_pass_floats per agent (the
 * CUDA workspace), inside the CPU's larger one the trainer allocated. */
static void blk_critic_hvp_rows(blpo_backend *be, const blpo_mlp *m, int P, const float *params,
                                const float *x, int n, const float *acts, const float *target,
                                int K, const int32_t *idx, float *rows, float *work) {
  blpo_hvr_layout lay;
  if (!g_blk.fused ||
      !blpo_hvr_choose(&lay, m, P, n, K, blpo_hvp_pass_floats(m, n, K), BLK_SMEM, g_blk.tf32)) {
    g_blk.cpu.critic_hvp_rows(be, m, P, params, x, n, acts, target, K, idx, rows, work);
    return;
  }
  blpo_hvr_args a = blpo_hvr_args_of(&lay, params, x, acts, target, idx, rows, work);
  EMU_FOR (p, P)
    EMU_FOR (b, lay.blocks) {
      float *sm = blk_shared(BLK_HVR, (size_t)lay.s_floats);
      for (int ph = 0; ph < blpo_hvr_rows_phases(&lay); ph++)
        EMU_FOR (t, BLPO_MBF_THREADS)
          blpo_hvr_rows(&a, p, b, t, ph, sm);
    }
  if (!lay.direct)
    EMU_FOR (p, P)
      EMU_FOR (k, blpo_hvr_reduce_blocks(&lay))
        EMU_FOR (t, BLPO_MBF_THREADS)
          blpo_hvr_reduce(&a, p, k, t);
}

static void blk_mlp_tangent(blpo_backend *be, const blpo_mlp *m, int P, const float *params,
                            const float *x, int n, const float *acts, int K, const float *dirs,
                            float *ry, float *work) {
  blpo_tnf_layout lay;
  if (!g_blk.fused || !blpo_tnf_choose(&lay, m, P, n, K, BLK_SMEM)) {
    g_blk.cpu.mlp_tangent(be, m, P, params, x, n, acts, K, dirs, ry, work);
    return;
  }
  blpo_tnf_args a = blpo_tnf_args_of(&lay, params, x, acts, dirs, ry);
  EMU_FOR (p, P)
    EMU_FOR (b, lay.blocks) {
      float *sm = blk_shared(BLK_TNF, (size_t)lay.s_floats);
      for (int ph = 0; ph < blpo_tnf_phases(&lay); ph++)
        EMU_FOR (t, BLPO_MBF_THREADS)
          blpo_tnf_block(&a, p, b, t, ph, sm);
    }
}

/* As the CUDA op: one launch over every pass's blocks where all fit. */
static void blk_mlp_tangent_many(blpo_backend *be, int P, int count,
                                 const blpo_mlp_tangent_pass *t) {
  blpo_tnf_set s;
  if (P <= 0 || count <= 0)
    return;
  if (!g_blk.fused || !blpo_tnf_set_init(&s, P, count, t, BLK_SMEM)) {
    for (int k = 0; k < count; k++)
      be->mlp_tangent(be, t[k].m, P, t[k].params, t[k].x, t[k].n, t[k].acts, t[k].K, t[k].dirs,
                      t[k].ry, t[k].work);
    return;
  }
  EMU_FOR (p, P)
    EMU_FOR (gb, s.start[s.count]) {
      const int k = blpo_pass_of(s.start, gb);
      const blpo_tnf_args *a = &s.t[k];
      float *sm = blk_shared(BLK_TNF, (size_t)s.s_floats);
      for (int ph = 0; ph < blpo_tnf_phases(&a->lay); ph++)
        EMU_FOR (th, BLPO_MBF_THREADS)
          blpo_tnf_block(a, p, gb - s.start[k], th, ph, sm);
    }
}

static void blk_nystrom_solve(blpo_backend *be, int P, size_t np, int k, const float *rows,
                              const int32_t *idx, const float *v, float rho, float ridge, float tol,
                              float *x, float *stats) {
  blpo_nys_args a;
  if (!g_blk.fused || P <= 0 || P > 65535 || !blpo_nys_layout_init(&a.lay, k, np)) {
    g_blk.cpu.nystrom_solve(be, P, np, k, rows, idx, v, rho, ridge, tol, x, stats);
    return;
  }
  a.rows = rows, a.idx = idx, a.v = v, a.x = x, a.stats = stats;
  a.rho = rho, a.ridge = ridge, a.tol = tol;
  blpo_nys_shared *sh = malloc(sizeof(*sh));
  if (!sh)
    exit(2);
  EMU_FOR (p, P) {
    memset(sh, 0xff, sizeof(*sh));
    g_blk.ran[BLK_NYS]++;
    for (int ph = 0; ph < a.lay.phases; ph = blpo_nys_next(&a.lay, sh, ph))
      EMU_FOR (t, BLPO_NYS_THREADS)
        blpo_nys_block(&a, p, t, ph, sh);
  }
  free(sh);
}

/* The episode summaries: one block per agent. */
static void blk_episode_summary(blpo_backend *be, const blpo_dims *d, const float *eret,
                                blpo_episode_summary *out) {
  (void)be;
  blpo_eps_args a = {d->T, d->N, (size_t)d->P * d->N, eret, out};
  blpo_eps_shared sh;
  EMU_FOR (p, d->P) {
    memset(&sh, 0xff, sizeof(sh)); /* NaN doubles and floats, -1 counts */
    g_blk.ran[BLK_EPS]++;
    for (int ph = 0; ph < blpo_eps_phases(); ph++)
      EMU_FOR (t, BLPO_EPS_THREADS)
        blpo_eps_block(&a, p, t, ph, &sh);
  }
}

/* The CUDA op's kernel for either op: one block per agent. */
static void blk_hgs_run(const blpo_hgs_args *a, int P) {
  blpo_hgs_shared sh;
  EMU_FOR (p, P) {
    memset(&sh, 0xff, sizeof(sh)); /* NaN doubles and floats */
    g_blk.ran[BLK_HGS]++;
    for (int ph = 0; ph < blpo_hgs_phases(); ph++)
      EMU_FOR (t, BLPO_HGS_THREADS)
        blpo_hgs_block(a, p, t, ph, &sh);
  }
}

static void blk_hypergrad_combine(blpo_backend *be, int P, size_t count, float *g, const float *p,
                                  float beta, float *stats) {
  (void)be;
  blpo_hgs_args a = {.count = count, .g = g, .p = p, .beta = beta, .stats = stats};
  blk_hgs_run(&a, P);
}

static void blk_hypergrad_step(blpo_backend *be, int P, size_t count, float *g, const float *p,
                               float beta, float *stats, float *params, float *m, float *v,
                               blpo_adam_sched sched) {
  if (!g_blk.fused || count > BLPO_HGS_MAX_COUNT) {
    blk_hypergrad_combine(be, P, count, g, p, beta, stats);
    be->adam(be, P, count, params, g, m, v, NULL, sched);
    return;
  }
  blpo_hgs_args a = {.count = count,
                     .g = g,
                     .p = p,
                     .beta = beta,
                     .stats = stats,
                     .adam = 1,
                     .params = params,
                     .m = m,
                     .v = v,
                     .sched = sched};
  blk_hgs_run(&a, P);
}

static void blk_blpo_actor(blpo_backend *be, const blpo_dims *d, const blpo_mlp *actor,
                           const float *actor_params, int T, int m, const float *head,
                           size_t head_stride, const float *value, size_t value_stride,
                           const float *value_last, size_t last_stride, const float *actions,
                           const float *logp_old, const float *reward, const float *done,
                           const float *target, float gamma, float lambda, float clip_eps,
                           float clip_f, float *dhead, float *actor_grad, float *vbar,
                           float *vbar_last, float *rho, float *adv, float *alpha_f, float *resid,
                           float *stats) {
  (void)be;
  blpo_acb_args a = blpo_acb_args_of(d, actor, actor_params, T, m, head, head_stride, value,
                                     value_stride, value_last, last_stride, actions, logp_old,
                                     reward, done, target, gamma, lambda, clip_eps, clip_f, dhead,
                                     actor_grad, vbar, vbar_last, rho, adv, alpha_f, resid, stats);
  blpo_acb_shared *sh = malloc(sizeof(*sh));
  if (!sh)
    exit(2);
  EMU_FOR (p, d->P) {
    memset(sh, 0xff, sizeof(*sh));
    g_blk.ran[BLK_ACB]++;
    for (int ph = 0; ph < blpo_acb_phases(); ph++)
      EMU_FOR (t, BLPO_ACB_THREADS)
        blpo_acb_block(&a, p, t, ph, sh);
  }
  free(sh);
}

static void blk_mixed_head(blpo_backend *be, const blpo_dims *d, const blpo_mlp *actor,
                           const float *actor_params, int T, int m, const float *head,
                           size_t head_stride, const float *actions, const float *done,
                           const float *vdot, const float *vdot_last, const float *rho,
                           const float *adv, const float *alpha_f, const float *resid, float gamma,
                           float lambda, float *cdot, float *dhead, float *p_grad) {
  (void)be;
  blpo_mxb_args a =
      blpo_mxb_args_of(d, actor, actor_params, T, m, head, head_stride, actions, done, vdot,
                       vdot_last, rho, adv, alpha_f, resid, gamma, lambda, cdot, dhead, p_grad);
  blpo_acb_shared *sh = malloc(sizeof(*sh));
  if (!sh)
    exit(2);
  EMU_FOR (p, d->P) {
    memset(sh, 0xff, sizeof(*sh));
    g_blk.ran[BLK_MXB]++;
    for (int ph = 0; ph < blpo_acb_phases(); ph++)
      EMU_FOR (t, BLPO_ACB_THREADS)
        blpo_mxb_block(&a, p, t, ph, sh);
  }
  free(sh);
}

/* As the CUDA op: preferred wherever the networks fit a block of 4 envs. */
static int blk_rollout_fused_supported(blpo_backend *be, const blpo_mlp *actor,
                                       const blpo_mlp *critic) {
  (void)be;
  return blpo_rof_supported(actor, critic, BLK_SMEM) ? 2 : 0;
}

/* The fused rollout: one block per (agent, 4-32 envs). */
static void blk_rollout_fused(blpo_backend *be, const blpo_dims *d, const blpo_mlp *actor,
                              const float *actor_params, const blpo_mlp *critic,
                              const float *critic_params, int t0, int t1, blpo_counter counter,
                              blpo_env_state *states, float *obs, float *act, float *logp,
                              float *value, float *reward, float *done, float *ep_ret,
                              float *final_obs, float *trunc) {
  (void)be;
  blpo_rof_layout lay;
  if (d->P <= 0 || d->N <= 0 || t1 <= t0)
    return;
  if (!blpo_rof_choose(&lay, d, actor, critic, BLK_SMEM, g_blk.sms)) {
    fprintf(stderr, "blk_rollout_fused: these networks do not fit (supported said 0)\n");
    exit(2);
  }
  const blpo_rof_args a =
      blpo_rof_args_of(&lay, d, actor_params, critic_params, t0, t1, counter, states, obs, act,
                       logp, value, reward, done, ep_ret, final_obs, trunc);
  EMU_FOR (p, d->P)
    EMU_FOR (b, lay.blocks) {
      float *sm = blk_shared(BLK_ROF, (size_t)lay.s_floats);
      for (int ph = 0; ph < blpo_rof_phases(&a); ph++)
        EMU_FOR (t, BLPO_ROF_THREADS)
          blpo_rof_block(&a, p, b, t, ph, sm);
    }
}

/* As the CUDA op (kernels/graph_cuda.cu): run.precision tf32 puts the
 * layer passes' eligible layers on the (emulated) tensor-core tiles. */
static void blk_set_gemm_precision(blpo_backend *be, int tf32) {
  (void)be;
  g_blk.tf32 = tf32;
}

static void blk_destroy(blpo_backend *be) {
  free(g_blk.sm);
  g_blk.sm = NULL, g_blk.sm_floats = 0;
  g_blk.cpu.destroy(be);
}

/* The CPU backend (one thread) with the block programs in place. */
static blpo_backend *blocks_backend_create(void) {
  blpo_backend *be = blpo_backend_cpu_create(1);
  if (!be)
    return NULL;
  g_blk.cpu = *be;
  g_blk.fused = 1;
  g_blk.sms = BLK_SMS;
  g_blk.tf32 = 0;
  g_blk.grid_sync = 0; /* grid_steps counts over every backend, as ran */
  be->name = "cpu-blocks";
  be->mlp_forward = blk_mlp_forward;
  be->mlp_forward_many = blk_mlp_forward_many;
  be->mlp_backward = blk_mlp_backward;
  be->mlp_backward_many = blk_mlp_backward_many;
  be->ppo_minibatch_work = blk_ppo_minibatch_work;
  be->ppo_minibatch = blk_ppo_minibatch;
  be->critic_step_work = blk_critic_step_work;
  be->critic_step = blk_critic_step;
  be->set_fused_solve = blk_set_fused_solve;
  be->critic_hvp_rows = blk_critic_hvp_rows;
  be->mlp_tangent = blk_mlp_tangent;
  be->mlp_tangent_many = blk_mlp_tangent_many;
  be->nystrom_solve = blk_nystrom_solve;
  be->hypergrad_combine = blk_hypergrad_combine;
  be->hypergrad_step = blk_hypergrad_step;
  be->blpo_actor = blk_blpo_actor;
  be->mixed_head = blk_mixed_head;
  be->episode_summary = blk_episode_summary;
  be->rollout_fused_supported = blk_rollout_fused_supported;
  be->rollout_fused = blk_rollout_fused;
  be->set_gemm_precision = blk_set_gemm_precision;
  be->set_grid_sync = blk_set_grid_sync;
  be->destroy = blk_destroy;
  return be;
}

#endif
