/* The CUDA backend's fused PPO minibatch update (backend.h ppo_minibatch,
 * kernels/ppo_minibatch_cuda.cu) as block programs for host and device.
 *
 * One minibatch update is three kernels (four at an epoch's first) instead
 * of the separate ops' ~45 launches of gathers, GEMMs, bias, activation and
 * column-sum kernels:
 *   moments  at an epoch's first minibatch only, one block per (minibatch,
 *            agent): the mean and std of each minibatch's n gathered
 *            advantages (they depend on the epoch's permutation and the
 *            advantages alone), so later minibatches are three kernels;
 *   rows     one block per (agent, BLPO_MBF_ROWS rows): both networks'
 *            weights staged in shared memory, the rows gathered, both forward
 *            passes, the PPO loss (blpo_ppo_row), both backward passes, all in
 *            shared memory; the block's partial gradient of both networks and
 *            its loss sums written as one row of `parts`;
 *   reduce   the partials summed per parameter in block order into the
 *            gradients, each block's squared norms to `sq`;
 *   adam     the norms, the clip factor and both Adam steps.
 * Every sum has a fixed order (rows in order, blocks in order, fixed trees),
 * so a run is reproducible bit for bit, and no atomics are used.
 *
 * Each kernel's body is a block program: a function of (block, thread,
 * phase) whose phases the kernel runs in order with a __syncthreads() after
 * each. In a phase a thread writes only its own outputs and reads only what
 * earlier phases wrote, so running the threads of each phase one after
 * another computes what the block computes. The CPU test
 * (tests/test_ppo_minibatch.c) runs the four programs that way against the
 * separate ops, so the kernels' indexing, layouts and reduction orders are
 * tested on machines without a GPU; only tanhf/expf/logf (libm against
 * libdevice) and FMA contraction differ on the device. */
#ifndef BLPO_PPO_BLOCKS_H
#define BLPO_PPO_BLOCKS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "backend.h"
#include "fused_rollout.h"
#include "hd.h"
#include "mbf_tile.h"
#include "optim.h"
#include "ppo_loss.h"
#include "schedule.h"
#include "tc_tile.h"

#define BLPO_MBF_THREADS 256  /* threads per block of all four kernels */
#define BLPO_MBF_TREE_STEPS 8 /* log2(BLPO_MBF_THREADS) */
#define BLPO_MBF_ROWS 32      /* rows per block of the rows kernel, at most */
#define BLPO_MBF_TERMS 5      /* loss sums: pg, v, entropy, kl, clipped (stats slots 0..4) */

/* One network in the rows kernel's shared memory (offsets in floats). Row
 * pitches here and below: P(w) is blpo_mbf_pitch(w), Pk(w)
 * blpo_mbf_pitch_k(w) (include/blpo/mbf_tile.h). */
typedef struct {
  int L, activation;
  int dims[BLPO_MAX_LAYERS + 1];
  int w_src[BLPO_MAX_LAYERS]; /* W_l in the parameters: (dout x din) row-major, b_l after it */
  int w_dst[BLPO_MAX_LAYERS]; /* W_l^T in shared memory, row pitch wp[l] */
  int wp[BLPO_MAX_LAYERS];    /* dout + 1 (conflict-free), or P(dout) for a TF32 layer */
  int tc[BLPO_MAX_LAYERS];    /* layer l's products on tensor-core tiles (tc_tile.h) */
  int b_dst[BLPO_MAX_LAYERS];
  int h[BLPO_MAX_LAYERS + 1]; /* layer l's outputs (rows, pitch P(dims[l])); h[0] the obs */
  int s_tcw; /* the TF32 dW tiles' scratch (BLPO_MBF_THREADS / 32, 256): a tile per warp; or -1 */
  int num_params, num_mlp;
} blpo_mbf_net;

typedef struct {
  blpo_mbf_net a, c;
  int n, R, blocks; /* rows per agent, rows per block, blocks per agent */
  int O, A, Y, discrete, num_actions;
  /* the rows kernel's other shared arrays, (R, width) each */
  int s_act, s_logp, s_adv, s_ret, s_val; /* gathered rows */
  int s_dz, s_dv, s_dls, s_terms; /* loss outputs: dhead (pitch P(Y)), dvalue (pitch P(1)), ... */
  int s_g[2];                     /* backward ping-pong, (R, pitch P(widest layer)) */
  int s_floats;                   /* shared floats of the rows kernel */
  int cols;                       /* one partial: Na + Nc + BLPO_MBF_TERMS floats */
  int col_blocks;                 /* blocks per agent of reduce and adam */
} blpo_mbf_layout;

/* A kernel's arguments: the layout, blpo_ppo_minibatch's buffers that the
 * fused update reads or writes, and its three workspaces. */
typedef struct {
  blpo_mbf_layout lay;
  const int32_t *idx; /* (P, idx_stride) rollout rows */
  size_t idx_stride;
  const float *obs, *act, *logp, *adv, *ret, *val; /* rollout (T*P*N, .) */
  float *actor_params, *actor_grad, *actor_m, *actor_v;
  float *critic_params, *critic_grad, *critic_m, *critic_v;
  float *sumsq_a, *sumsq_c, *scale, *stats;
  float *parts;    /* (P, blocks, cols) */
  double *moments; /* (P, M, 2): each minibatch's mean, std */
  int mb, M;       /* this minibatch within its epoch, the epoch's minibatches */
  double *sq;      /* (P, col_blocks, 2): actor, critic */
  blpo_ppo_params pp;
  float max_grad_norm;
  blpo_adam_sched actor_sched, critic_sched;
} blpo_mbf_args;

/* Shared memory of the moments, reduce and adam programs. */
typedef struct {
  double s[BLPO_MBF_THREADS];
  double mean;
} blpo_mbf_moments_shared;
typedef struct {
  double sq[2][BLPO_MBF_THREADS];
} blpo_mbf_reduce_shared;
typedef struct {
  double sq[2][BLPO_MBF_THREADS];
  blpo_adam_step_params spa, spc;
  float scale;
} blpo_mbf_adam_shared;

/* ---- layout (host) ---------------------------------------------------- */

/* Whether a layer of din inputs and dout outputs, R rows per block, runs
 * its products on tensor-core tiles where TF32 is asked: 16 x 16 tiles of
 * (rows, dout) (forward), (rows, din) (backward d/dz) and (dout, din)
 * (dW, a sum over the rows), steps of 8 over din, dout and the rows, and
 * pitches that are multiples of 4 (the float4 layout). The first layer of
 * a control task (a few inputs) and the heads stay on the fp32 tiles, as
 * does the dW of a block whose rows are not a multiple of 8 (the sum would
 * run into rows past the block's; blpo_mbf_backward). */
static inline int blpo_mbf_tc_layer(int din, int dout, int R) {
  return BLPO_MBF_VEC == 4 && din % BLPO_TC_N == 0 && dout % BLPO_TC_N == 0 && R % BLPO_TC_N == 0;
}

/* The network at shared offset off; tf32: the layers blpo_mbf_tc_layer
 * takes for R rows per block go on tensor-core tiles (their weights then
 * 32-byte aligned with row pitch P(dout), as WMMA reads them). */
static inline int blpo_mbf_net_init(blpo_mbf_net *t, const blpo_mlp *m, int off, int tf32, int R) {
  memset(t, 0, sizeof(*t));
  t->L = m->num_layers;
  t->activation = m->activation;
  for (int l = 0; l <= m->num_layers; l++)
    t->dims[l] = m->dims[l];
  for (int l = 0; l < m->num_layers; l++) {
    int din = m->dims[l], dout = m->dims[l + 1];
    t->tc[l] = tf32 && blpo_mbf_tc_layer(din, dout, R);
    t->wp[l] = t->tc[l] ? blpo_mbf_pitch(dout) : dout + 1;
    t->w_src[l] = (int)m->w_off[l];
    t->w_dst[l] = off = t->tc[l] ? blpo_mbf_align(off) : off;
    off += din * t->wp[l];
    t->b_dst[l] = off;
    off += dout;
  }
  t->s_tcw = -1; /* blpo_mbf_tcw_place */
  t->num_params = (int)m->num_params;
  t->num_mlp = (int)m->num_mlp_params;
  return off;
}

/* Places the TF32 dW tiles' scratch at *off (blpo_mbf_backward stores a
 * tile there, then copies it into the partial gradient, whose offsets are
 * not 32-byte aligned as WMMA's stores need) if a or b (or NULL) has a
 * layer on the tiles; the two share it, since the layer passes run one at
 * a time. */
static inline void blpo_mbf_tcw_place(int *off, blpo_mbf_net *a, blpo_mbf_net *b) {
  int any = 0;
  for (int l = 0; l < a->L; l++)
    any |= a->tc[l];
  for (int l = 0; b && l < b->L; l++)
    any |= b->tc[l];
  if (!any)
    return;
  a->s_tcw = blpo_mbf_place(off, BLPO_MBF_THREADS / 32, BLPO_TC_N * BLPO_TC_N);
  if (b)
    b->s_tcw = a->s_tcw;
}

/* The layout for n-row minibatches of these networks with R rows per block
 * (1 <= R <= BLPO_MBF_ROWS), tf32 as blpo_mbf_net_init; returns the rows
 * kernel's shared floats. */
static inline int blpo_mbf_layout_init(blpo_mbf_layout *y, const blpo_dims *d,
                                       const blpo_mlp *actor, const blpo_mlp *critic, int n, int R,
                                       int tf32) {
  memset(y, 0, sizeof(*y));
  int off = blpo_mbf_net_init(&y->a, actor, 0, tf32, R);
  off = blpo_mbf_net_init(&y->c, critic, off, tf32, R);
  y->n = n, y->R = R, y->blocks = (n + R - 1) / R;
  y->O = d->obs_dim, y->A = d->act_dim, y->Y = d->head_dim;
  y->discrete = d->discrete, y->num_actions = d->num_actions;
  /* every (rows, width) array the layer passes read is aligned with row
   * pitch blpo_mbf_pitch(width) (include/blpo/mbf_tile.h) */
  y->a.h[0] = y->c.h[0] = blpo_mbf_place(&off, R, blpo_mbf_pitch(y->O));
  for (int l = 1; l <= y->a.L; l++)
    y->a.h[l] = blpo_mbf_place(&off, R, blpo_mbf_pitch(y->a.dims[l]));
  for (int l = 1; l <= y->c.L; l++)
    y->c.h[l] = blpo_mbf_place(&off, R, blpo_mbf_pitch(y->c.dims[l]));
  int mw = actor->max_width > critic->max_width ? actor->max_width : critic->max_width;
  y->s_act = off, off += R * y->A;
  y->s_logp = off, off += R;
  y->s_adv = off, off += R;
  y->s_ret = off, off += R;
  y->s_val = off, off += R;
  y->s_dz = blpo_mbf_place(&off, R, blpo_mbf_pitch(y->Y));
  y->s_dv = blpo_mbf_place(&off, R, blpo_mbf_pitch(1));
  y->s_dls = off, off += R * y->A;
  y->s_terms = off, off += R * BLPO_MBF_TERMS;
  y->s_g[0] = blpo_mbf_place(&off, R, blpo_mbf_pitch(mw));
  y->s_g[1] = blpo_mbf_place(&off, R, blpo_mbf_pitch(mw));
  blpo_mbf_tcw_place(&off, &y->a, &y->c);
  y->s_floats = off;
  y->cols = y->a.num_params + y->c.num_params + BLPO_MBF_TERMS;
  y->col_blocks = (y->cols + BLPO_MBF_THREADS - 1) / BLPO_MBF_THREADS;
  return off;
}

/* Whether the layouts hold network m: input width in, output width out,
 * `extra` trailing parameters, and sizes whose int offsets cannot overflow
 * (shared memory could not hold larger networks anyway). */
static inline int blpo_mbf_net_ok(const blpo_mlp *m, int in, int out, size_t extra) {
  return m->dims[0] == in && m->dims[m->num_layers] == out && m->num_extra == extra &&
         m->num_params <= ((size_t)1 << 20) && m->max_width <= 4096;
}

/* The layout with the most rows per block (BLPO_MBF_ROWS, halved down to 8)
 * whose shared memory fits smem_bytes, for networks and action widths the
 * layout holds, tf32 as blpo_mbf_net_init;
 * returns its rows per block, or 0. */
static inline int blpo_mbf_choose(blpo_mbf_layout *y, const blpo_dims *d, const blpo_mlp *actor,
                                  const blpo_mlp *critic, int n, size_t smem_bytes, int tf32) {
  /* the block sums give each log_std column one thread after the loss sums'
   * (blpo_mbf_rows, phase 1) */
  if (n <= 0 || d->P <= 0 || d->P > 65535 /* gridDim.y */ ||
      (!d->discrete && d->act_dim > BLPO_MBF_THREADS - BLPO_MBF_TERMS) ||
      !blpo_mbf_net_ok(actor, d->obs_dim, d->head_dim, d->discrete ? 0 : (size_t)d->act_dim) ||
      !blpo_mbf_net_ok(critic, d->obs_dim, 1, 0))
    return 0;
  for (int R = BLPO_MBF_ROWS; R >= 8; R /= 2) {
    if (sizeof(float) * (size_t)blpo_mbf_layout_init(y, d, actor, critic, n, R, 0) > smem_bytes)
      continue;
    /* TF32 tiles at the fp32 layout's R only (else none), so that the
     * workspace, whose size the work query took from R, is the same */
    if (tf32 &&
        sizeof(float) * (size_t)blpo_mbf_layout_init(y, d, actor, critic, n, R, 1) > smem_bytes)
      blpo_mbf_layout_init(y, d, actor, critic, n, R, 0);
    return R;
  }
  return 0;
}

/* Workspace floats/doubles per agent. */
static inline size_t blpo_mbf_parts_floats(const blpo_mbf_layout *y) {
  return (size_t)y->blocks * (size_t)y->cols;
}
static inline size_t blpo_mbf_sq_doubles(const blpo_mbf_layout *y) {
  return 2 * (size_t)y->col_blocks;
}

/* The workspace of P agents and M minibatches per epoch: the partials (P,
 * blocks, cols) floats, then in double the moments (P, M, 2) and the
 * squared norms (P, col_blocks, 2). */
static inline size_t blpo_mbf_parts_bytes(const blpo_mbf_layout *y, int P) {
  return ((size_t)P * blpo_mbf_parts_floats(y) * sizeof(float) + 15) / 16 * 16;
}
static inline int blpo_mbf_epoch_minibatches(int M) { return M > 1 ? M : 1; }
static inline size_t blpo_mbf_work_bytes(const blpo_mbf_layout *y, int P, int M) {
  return blpo_mbf_parts_bytes(y, P) +
         (size_t)P * (2 * (size_t)blpo_mbf_epoch_minibatches(M) + blpo_mbf_sq_doubles(y)) *
             sizeof(double);
}

/* Whether mb's place in its epoch is one the workspace and the order
 * contract allow. */
static inline int blpo_mbf_place_ok(const blpo_ppo_minibatch *mb) {
  return mb->minibatch >= 0 && mb->minibatch < blpo_mbf_epoch_minibatches(mb->minibatches);
}

/* A kernel's arguments for mb on P agents, its workspace carved from work. */
static inline blpo_mbf_args blpo_mbf_args_of(const blpo_mbf_layout *y, const blpo_ppo_minibatch *mb,
                                             int P, void *work) {
  blpo_mbf_args a;
  memset(&a, 0, sizeof(a));
  float *parts = (float *)work;
  const int M = blpo_mbf_epoch_minibatches(mb->minibatches);
  double *moments = (double *)((char *)work + blpo_mbf_parts_bytes(y, P));
  double *sq = moments + 2 * (size_t)P * M;
  a.lay = *y;
  a.idx = mb->idx, a.idx_stride = mb->idx_stride;
  a.obs = mb->obs, a.act = mb->act, a.logp = mb->logp;
  a.adv = mb->adv, a.ret = mb->ret, a.val = mb->val;
  a.actor_params = mb->actor_params, a.actor_grad = mb->actor_grad;
  a.actor_m = mb->actor_m, a.actor_v = mb->actor_v;
  a.critic_params = mb->critic_params, a.critic_grad = mb->critic_grad;
  a.critic_m = mb->critic_m, a.critic_v = mb->critic_v;
  a.sumsq_a = mb->sumsq_a, a.sumsq_c = mb->sumsq_c, a.scale = mb->scale, a.stats = mb->stats;
  a.parts = parts, a.moments = moments, a.sq = sq;
  a.mb = mb->minibatch, a.M = M;
  a.pp = mb->pp;
  a.max_grad_norm = mb->max_grad_norm;
  a.actor_sched = mb->actor_sched, a.critic_sched = mb->critic_sched;
  return a;
}

/* ---- block programs (host and device) --------------------------------- */

/* Phase `step` (1..BLPO_MBF_TREE_STEPS) of a fixed tree sum over s[0..THREADS). */
BLPO_HD void blpo_mbf_tree(double *s, int tid, int step) {
  int half = BLPO_MBF_THREADS >> step;
  if (tid < half)
    s[tid] += s[tid + half];
}

/* moments: block (m, p), minibatch m of the epoch for agent p. Phases:
 * partial sums, tree, mean, partial squares, tree, result. */
BLPO_HD int blpo_mbf_moments_phases(void) { return 2 * BLPO_MBF_TREE_STEPS + 4; }

BLPO_HD void blpo_mbf_moments(const blpo_mbf_args *a, int p, int m, int tid, int phase,
                              blpo_mbf_moments_shared *sh) {
  const int n = a->lay.n, K = BLPO_MBF_TREE_STEPS;
  const int32_t *ix = a->idx + (size_t)p * a->idx_stride + (ptrdiff_t)(m - a->mb) * n;
  double *out = a->moments + 2 * ((size_t)p * a->M + m);
  if (!a->pp.norm_adv) { /* PureJaxRL's normalisation off: mean 0, std 1 */
    if (phase == 0 && tid == 0)
      out[0] = 0.0, out[1] = 1.0;
    return;
  }
  if (phase == 0 || phase == K + 2) {
    double mean = phase == 0 ? 0.0 : sh->mean, s = 0;
    for (int i = tid; i < n; i += BLPO_MBF_THREADS) {
      double v = (double)a->adv[ix[i]] - mean;
      s += phase == 0 ? v : v * v;
    }
    sh->s[tid] = s;
  } else if (phase <= K) {
    blpo_mbf_tree(sh->s, tid, phase);
  } else if (phase == K + 1) {
    if (tid == 0)
      sh->mean = sh->s[0] / n;
  } else if (phase <= 2 * K + 2) {
    blpo_mbf_tree(sh->s, tid, phase - K - 2);
  } else if (tid == 0) { /* PureJaxRL: population std, + 1e-8 */
    out[0] = sh->mean;
    out[1] = sqrt(sh->s[0] / n) + 1e-8;
  }
}

/* rows: block b of agent p. Phases: stage, actor forward (La), critic
 * forward (Lc), loss, block sums, actor backward (La), critic backward (Lc). */
BLPO_HD int blpo_mbf_rows_phases(const blpo_mbf_layout *y) { return 3 + 2 * (y->a.L + y->c.L); }

/* The network's weights into shared memory, W_l transposed. */
BLPO_HD void blpo_mbf_stage(const blpo_mbf_net *t, const float *w, float *sm, int tid) {
  for (int l = 0; l < t->L; l++) {
    const int din = t->dims[l], dout = t->dims[l + 1], cnt = din * dout, wp = t->wp[l];
    for (int q = tid; q < cnt + dout; q += BLPO_MBF_THREADS) {
      if (q < cnt) /* consecutive threads read consecutive words */
        sm[t->w_dst[l] + (q % din) * wp + q / din] = w[t->w_src[l] + q];
      else
        sm[t->b_dst[l] + q - cnt] = w[t->w_src[l] + q]; /* b_l follows W_l */
    }
  }
}

BLPO_HD int blpo_mbf_imin(int x, int y) { return x < y ? x : y; }

/* Register tiles of the layer passes: a thread computes TR rows x TC
 * columns of an output, so that each value loaded from shared memory feeds
 * TC or TR multiply-adds (the loads, not the multiply-adds, bound these
 * passes). A tile's columns are strided (jt, jt + JT, ...) so that the
 * threads of a warp load consecutive words; indices past the edge are
 * clamped (loads stay inside the arrays) and their results dropped. Each
 * output is still one sum in the order of the one-output-per-thread loop:
 * bias, then multiply-adds in input order, as blpo_neuron. The tile's
 * size and loads: include/blpo/mbf_tile.h. */

/* The products one float per load: for arrays of pitch blpo_mbf_pitch_k
 * (rows x K directions), and the vector tiles' last din % V inputs (dout %
 * V outputs). */
BLPO_HD void blpo_mbf_tile_hw1(const float *in, const int *rr, const float *wt, int wp,
                               const int *j, int din, float acc[BLPO_MBF_TR][BLPO_MBF_TC]) {
  for (int i = 0; i < din; i++) {
    float w[BLPO_MBF_TC];
    for (int c = 0; c < BLPO_MBF_TC; c++)
      w[c] = wt[i * wp + j[c]];
    for (int k = 0; k < BLPO_MBF_TR; k++) {
      const float h = in[rr[k] + i];
      for (int c = 0; c < BLPO_MBF_TC; c++)
        acc[k][c] = fmaf(w[c], h, acc[k][c]);
    }
  }
}
BLPO_HD void blpo_mbf_tile_gw1(const float *g, const int *rr, const float *wt, int wp, const int *i,
                               int dout, float acc[BLPO_MBF_TR][BLPO_MBF_TC]) {
  for (int jj = 0; jj < dout; jj++) {
    float w[BLPO_MBF_TC];
    for (int c = 0; c < BLPO_MBF_TC; c++)
      w[c] = wt[i[c] * wp + jj];
    for (int k = 0; k < BLPO_MBF_TR; k++) {
      const float gv = g[rr[k] + jj];
      for (int c = 0; c < BLPO_MBF_TC; c++)
        acc[k][c] = fmaf(gv, w[c], acc[k][c]);
    }
  }
}

/* The two products the layer passes tile, for TR rows x TC columns, each
 * sum in input order. hw: acc[k][c] += sum_i in[rr[k] + i] W^T[i][j[c]]
 * (h W^T: the forward and tangent passes); gw: acc[k][c] += sum_j g[rr[k] +
 * j] W^T[i[c]][j] (g W: d/dz and R{g} of the backward passes). rr are row
 * offsets (pitch included); wt is W^T with row pitch wp.
 *
 * in and g are arrays of pitch blpo_mbf_pitch, read BLPO_MBF_VEC floats of
 * a row per load: with a warp's threads on one row tile (the usual case:
 * JT >= 32) such a load is one broadcast, which the shared-memory return
 * path delivers two registers a cycle, so a tile of 4 x 2 takes 16 cycles
 * of it per 4 x 256 multiply-adds where scalar loads take 24
 * (bench/NOTES.md). The weights for those V inputs are loaded first, then
 * each row's V values one row at a time, so that only V of them are
 * live. */
BLPO_HD void blpo_mbf_tile_hw(const float *in, const int *rr, const float *wt, int wp, const int *j,
                              int din, float acc[BLPO_MBF_TR][BLPO_MBF_TC]) {
  enum { V = BLPO_MBF_VEC };
  int i = 0;
  for (; i + V <= din; i += V) {
    float w[V][BLPO_MBF_TC];
    for (int u = 0; u < V; u++)
      for (int c = 0; c < BLPO_MBF_TC; c++)
        w[u][c] = wt[(i + u) * wp + j[c]];
    for (int k = 0; k < BLPO_MBF_TR; k++) {
      float h[V];
      blpo_mbf_load(in + rr[k] + i, h);
      for (int u = 0; u < V; u++)
        for (int c = 0; c < BLPO_MBF_TC; c++)
          acc[k][c] = fmaf(w[u][c], h[u], acc[k][c]);
    }
  }
  blpo_mbf_tile_hw1(in + i, rr, wt + i * wp, wp, j, din - i, acc); /* the last din % V */
}
BLPO_HD void blpo_mbf_tile_gw(const float *g, const int *rr, const float *wt, int wp, const int *i,
                              int dout, float acc[BLPO_MBF_TR][BLPO_MBF_TC]) {
  enum { V = BLPO_MBF_VEC };
  int jj = 0;
  for (; jj + V <= dout; jj += V) {
    float w[V][BLPO_MBF_TC];
    for (int u = 0; u < V; u++)
      for (int c = 0; c < BLPO_MBF_TC; c++)
        w[u][c] = wt[i[c] * wp + jj + u];
    for (int k = 0; k < BLPO_MBF_TR; k++) {
      float gv[V];
      blpo_mbf_load(g + rr[k] + jj, gv);
      for (int u = 0; u < V; u++)
        for (int c = 0; c < BLPO_MBF_TC; c++)
          acc[k][c] = fmaf(gv[u], w[u][c], acc[k][c]);
    }
  }
  blpo_mbf_tile_gw1(g + jj, rr, wt + jj, wp, i, dout - jj, acc); /* the last dout % V */
}

/* Layer l's outputs for `rows` rows: (rows, dout) from (rows, din). */
BLPO_HD void blpo_mbf_forward(const blpo_mbf_net *t, int l, int rows, float *sm, int tid) {
  enum { TR = BLPO_MBF_TR, TC = BLPO_MBF_TC };
  const int din = t->dims[l], dout = t->dims[l + 1], last = l == t->L - 1;
  const int ip = blpo_mbf_pitch(din), op = blpo_mbf_pitch(dout), wp = t->wp[l]; /* row pitches */
  const int JT = (dout + TC - 1) / TC, RT = (rows + TR - 1) / TR;
  const float *in = sm + t->h[l], *wt = sm + t->w_dst[l], *bias = sm + t->b_dst[l];
  float *out = sm + t->h[l + 1];
  if (t->tc[l]) { /* TF32: warp w takes the 16 x 16 tiles w, w + 8, ... of (rows, dout) */
    const int NT = dout / BLPO_TC_N, tiles = (rows + BLPO_TC_N - 1) / BLPO_TC_N * NT;
    for (int q = tid / 32; q < tiles; q += BLPO_MBF_THREADS / 32) {
      const int r0 = q / NT * BLPO_TC_N, n0 = q % NT * BLPO_TC_N;
      float *c = out + r0 * op + n0; /* a tile's rows past `rows` are computed, not finished */
      if (!blpo_tc_tile(in + r0 * ip, ip, wt + n0, wp, 0, din, c, op, tid % 32))
        continue;
      blpo_tc_sync();
      for (int e = tid % 32; e < BLPO_TC_N * BLPO_TC_N; e += BLPO_TC_STRIDE) {
        const int r = e / BLPO_TC_N, n = e % BLPO_TC_N;
        if (r0 + r < rows) {
          const float s = c[r * op + n] + bias[n0 + n];
          c[r * op + n] = last ? s : blpo_activate(t->activation, s);
        }
      }
    }
    return;
  }
  for (int e = tid; e < RT * JT; e += BLPO_MBF_THREADS) {
    const int r0 = (e / JT) * TR, jt = e % JT;
    int j[TC], rr[TR];
    float acc[TR][TC];
    for (int c = 0; c < TC; c++)
      j[c] = blpo_mbf_imin(jt + c * JT, dout - 1);
    for (int k = 0; k < TR; k++)
      rr[k] = blpo_mbf_imin(r0 + k, rows - 1) * ip;
    for (int k = 0; k < TR; k++)
      for (int c = 0; c < TC; c++)
        acc[k][c] = bias[j[c]];
    blpo_mbf_tile_hw(in, rr, wt, wp, j, din, acc);
    for (int k = 0; k < TR; k++)
      for (int c = 0; c < TC; c++)
        if (r0 + k < rows && jt + c * JT < dout)
          out[(r0 + k) * op + jt + c * JT] =
              last ? acc[k][c] : blpo_activate(t->activation, acc[k][c]);
  }
}

/* Layer l's backward pass for `rows` rows from g, d loss / d z_{l+1}
 * (rows, pitch P(dout)): the block's partial dW_l and db_l into part (the
 * network's parameter layout), and for l > 0 d loss / d z_l into gout
 * (rows, pitch P(din)); P is blpo_mbf_pitch. Three kinds of work item share the threads: tiles
 * of TC x TR (j, i) of dW_l, one db_l[j] each, tiles of TR x TC (r, i) of
 * d/dz_l; on a TF32 layer (t->tc[l]) the warps then take the d/dz_l tiles
 * and, where the rows are a multiple of 8, the dW_l tiles on the tensor
 * cores. */
BLPO_HD void blpo_mbf_backward(const blpo_mbf_net *t, int l, int rows, const float *g, float *gout,
                               float *sm, float *part, int tid) {
  enum { TR = BLPO_MBF_TR, TC = BLPO_MBF_TC };
  const int din = t->dims[l], dout = t->dims[l + 1];
  const int gp = blpo_mbf_pitch(dout), hp = blpo_mbf_pitch(din), wp = t->wp[l]; /* row pitches */
  const float *hin = sm + t->h[l], *wt = sm + t->w_dst[l];
  float *pw = part + t->w_src[l], *pb = pw + dout * din; /* b_l follows W_l */
  /* dW tiles: TC j x TR i. With vector loads (BLPO_MBF_DW_ADJ) a tile's TR
   * inputs are adjacent, i = it TR + k, read V at a time, and threads e and
   * e ^ 1 take the same inputs for two column groups jt, so that a warp's
   * loads of h_in are pairwise uniform (the shared-memory return path
   * packs those, bench/NOTES.md); JT is rounded up to even for the pairs
   * and the extra group's items (half of them for a head of 1-2 outputs)
   * computed and dropped. Otherwise a tile's inputs are strided by IT, so
   * that consecutive threads load consecutive words. */
  const int IT = (din + TR - 1) / TR, JT = (dout + TC - 1) / TC;
  const int JP = BLPO_MBF_DW_ADJ ? (JT + 1) & ~1 : JT;
  const int dwt = t->tc[l] && t->s_tcw >= 0 && rows % BLPO_TC_K == 0; /* dW_l on TF32 tiles */
  const int nw = dwt ? 0 : JP * IT, nb = nw + dout;
  const int IT2 = (din + TC - 1) / TC, RT = (rows + TR - 1) / TR; /* d/dz_l tiles: TR r x TC i */
  const int total = nb + (l > 0 && !t->tc[l] ? RT * IT2 : 0);
  for (int e = tid; e < total; e += BLPO_MBF_THREADS) {
    if (e < nw) { /* dW_l[j][i] = sum_r g[r][j] h_in[r][i], rows in order */
      const int jt = BLPO_MBF_DW_ADJ ? (e / (2 * IT)) * 2 + (e & 1) : e / IT;
      const int it = BLPO_MBF_DW_ADJ ? (e >> 1) % IT : e % IT;
      const int i0 = BLPO_MBF_DW_ADJ ? it * TR : it, is = BLPO_MBF_DW_ADJ ? 1 : IT; /* i0 + k is */
      int j[TC];
      float acc[TC][TR];
      for (int c = 0; c < TC; c++)
        j[c] = blpo_mbf_imin(jt + c * JT, dout - 1);
#if !BLPO_MBF_DW_ADJ
      int i[TR];
      for (int k = 0; k < TR; k++)
        i[k] = blpo_mbf_imin(i0 + k * is, din - 1);
#endif
      for (int c = 0; c < TC; c++)
        for (int k = 0; k < TR; k++)
          acc[c][k] = 0.0f;
      for (int r = 0; r < rows; r++) {
        float gv[TC], h[TR];
        for (int c = 0; c < TC; c++)
          gv[c] = g[r * gp + j[c]];
#if BLPO_MBF_DW_ADJ
        /* V inputs a load. A load that starts inside din may run into the
         * row's padding (the pitch is at least din rounded up to 4), whose
         * values reach only the outputs i >= din, which are dropped; one
         * that would start past din is not made. */
        for (int q = 0; q < TR; q += BLPO_MBF_VEC) {
          if (i0 + q < din)
            blpo_mbf_load(hin + r * hp + i0 + q, h + q);
          else
            for (int u = 0; u < BLPO_MBF_VEC; u++)
              h[q + u] = 0.0f;
        }
#else
        for (int k = 0; k < TR; k++)
          h[k] = hin[r * hp + i[k]];
#endif
        for (int k = 0; k < TR; k++)
          for (int c = 0; c < TC; c++)
            acc[c][k] = fmaf(gv[c], h[k], acc[c][k]);
      }
      for (int c = 0; c < TC; c++)
        for (int k = 0; k < TR; k++)
          if (jt < JT && jt + c * JT < dout && i0 + k * is < din)
            pw[(jt + c * JT) * din + i0 + k * is] = acc[c][k];
    } else if (e < nb) { /* db_l[j] = sum_r g[r][j] */
      const int j = e - nw;
      float s = 0.0f;
      for (int r = 0; r < rows; r++)
        s += g[r * gp + j];
      pb[j] = s;
    } else { /* g_prev[r][i] = (sum_j g[r][j] W_l[j][i]) phi'(z_l[r][i]) */
      const int q = e - nb, r0 = (q / IT2) * TR, it = q % IT2;
      int i[TC], rr[TR];
      float acc[TR][TC];
      for (int c = 0; c < TC; c++)
        i[c] = blpo_mbf_imin(it + c * IT2, din - 1);
      for (int k = 0; k < TR; k++)
        rr[k] = blpo_mbf_imin(r0 + k, rows - 1) * gp;
      for (int k = 0; k < TR; k++)
        for (int c = 0; c < TC; c++)
          acc[k][c] = 0.0f;
      blpo_mbf_tile_gw(g, rr, wt, wp, i, dout, acc);
      for (int k = 0; k < TR; k++)
        for (int c = 0; c < TC; c++)
          if (r0 + k < rows && it + c * IT2 < din) {
            const int o = (r0 + k) * hp + it + c * IT2;
            const float h = hin[o], s = acc[k][c];
            gout[o] = blpo_activate_back(t->activation, h, s);
          }
    }
  }
  if (!t->tc[l])
    return;
  /* TF32: warp w takes the tiles w, w + 8, ... of d/dz_l's (rows, din), g
   * (rows, dout) times W_l (dout, din), W_l read column-major from W_l^T
   * (a tile's rows past `rows` are computed, not finished); then those of
   * dW_l's (dout, din), g^T (dout, rows, column-major g) times h_in (rows,
   * din), into the warp's scratch and from there into the partial */
  const int NT = din / BLPO_TC_N;
  const int zt = l > 0 ? (rows + BLPO_TC_N - 1) / BLPO_TC_N * NT : 0;
  for (int q = tid / 32; q < zt; q += BLPO_MBF_THREADS / 32) {
    const int r0 = q / NT * BLPO_TC_N, n0 = q % NT * BLPO_TC_N;
    float *c = gout + r0 * hp + n0;
    if (!blpo_tc_tile(g + r0 * gp, gp, wt + n0 * wp, wp, BLPO_TC_B_COL, dout, c, hp, tid % 32))
      continue;
    blpo_tc_sync();
    for (int e = tid % 32; e < BLPO_TC_N * BLPO_TC_N; e += BLPO_TC_STRIDE) {
      const int r = e / BLPO_TC_N, n = e % BLPO_TC_N;
      if (r0 + r < rows) {
        const float h = hin[(r0 + r) * hp + n0 + n], s = c[r * hp + n];
        c[r * hp + n] = blpo_activate_back(t->activation, h, s);
      }
    }
  }
  if (!dwt)
    return;
  float *c = sm + t->s_tcw + tid / 32 * BLPO_TC_N * BLPO_TC_N;
  for (int q = tid / 32; q < dout / BLPO_TC_N * NT; q += BLPO_MBF_THREADS / 32) {
    const int j0 = q / NT * BLPO_TC_N, i0 = q % NT * BLPO_TC_N;
    if (!blpo_tc_tile(g + j0, gp, hin + i0, hp, BLPO_TC_A_COL, rows, c, BLPO_TC_N, tid % 32))
      continue;
    blpo_tc_sync();
    for (int e = tid % 32; e < BLPO_TC_N * BLPO_TC_N; e += BLPO_TC_STRIDE)
      pw[(j0 + e / BLPO_TC_N) * din + i0 + e % BLPO_TC_N] = c[e];
  }
}

BLPO_HD void blpo_mbf_rows(const blpo_mbf_args *a, int p, int b, int tid, int phase, float *sm) {
  const blpo_mbf_layout *y = &a->lay;
  const int La = y->a.L, Lc = y->c.L, R = y->R, O = y->O, A = y->A, Y = y->Y;
  const int r0 = b * R, rows = y->n - r0 < R ? y->n - r0 : R;
  const float *aw = a->actor_params + (size_t)p * y->a.num_params;
  const float *cw = a->critic_params + (size_t)p * y->c.num_params;
  float *part = a->parts + ((size_t)p * y->blocks + b) * y->cols; /* [actor | critic | sums] */
  if (phase == 0) {
    blpo_mbf_stage(&y->a, aw, sm, tid);
    blpo_mbf_stage(&y->c, cw, sm, tid);
    const int32_t *ix = a->idx + (size_t)p * a->idx_stride + r0;
    for (int e = tid; e < rows * O; e += BLPO_MBF_THREADS)
      sm[y->a.h[0] + (e / O) * blpo_mbf_pitch(O) + e % O] = a->obs[(size_t)ix[e / O] * O + e % O];
    for (int e = tid; e < rows * A; e += BLPO_MBF_THREADS)
      sm[y->s_act + e] = a->act[(size_t)ix[e / A] * A + e % A];
    for (int r = tid; r < rows; r += BLPO_MBF_THREADS) {
      size_t src = (size_t)ix[r];
      sm[y->s_logp + r] = a->logp[src];
      sm[y->s_adv + r] = a->adv[src];
      sm[y->s_ret + r] = a->ret[src];
      sm[y->s_val + r] = a->val[src];
    }
    return;
  }
  phase -= 1;
  if (phase < La) {
    blpo_mbf_forward(&y->a, phase, rows, sm, tid);
    return;
  }
  phase -= La;
  if (phase < Lc) {
    blpo_mbf_forward(&y->c, phase, rows, sm, tid);
    return;
  }
  phase -= Lc;
  if (phase == 0) { /* the loss, one row per thread */
    const float inv_n = 1.0f / (float)y->n;
    const double *mo = a->moments + 2 * ((size_t)p * a->M + a->mb);
    const double amean = mo[0], astd = mo[1];
    const int hp = blpo_mbf_pitch(Y), vp = blpo_mbf_pitch(1); /* the heads' row pitches */
    for (int r = tid; r < rows; r += BLPO_MBF_THREADS) {
      float a_n = (float)(((double)sm[y->s_adv + r] - amean) / astd);
      float *dls = sm + y->s_dls + (size_t)r * A, *terms = sm + y->s_terms + (size_t)r * 5;
      blpo_ppo_row_terms t =
          blpo_ppo_row(y->discrete, y->num_actions, A, sm + y->a.h[La] + (size_t)r * hp,
                       aw + y->a.num_mlp, sm + y->s_act + (size_t)r * A, sm[y->s_logp + r], a_n,
                       sm[y->c.h[Lc] + vp * r], sm[y->s_val + r], sm[y->s_ret + r], a->pp, inv_n,
                       sm + y->s_dz + (size_t)r * hp, sm + y->s_dv + vp * r, dls);
      terms[0] = t.pg, terms[1] = t.vl, terms[2] = t.ent, terms[3] = t.kl, terms[4] = t.clipped;
    }
    return;
  }
  if (phase == 1) { /* the block's loss sums and log_std gradient, rows in order */
    if (tid < BLPO_MBF_TERMS) {
      float s = 0.0f;
      for (int r = 0; r < rows; r++)
        s += sm[y->s_terms + r * BLPO_MBF_TERMS + tid];
      part[y->a.num_params + y->c.num_params + tid] = s;
    } else if (!y->discrete && tid < BLPO_MBF_TERMS + A) {
      const int j = tid - BLPO_MBF_TERMS;
      float s = 0.0f;
      for (int r = 0; r < rows; r++)
        s += sm[y->s_dls + r * A + j];
      part[y->a.num_mlp + j] = s;
    }
    return;
  }
  phase -= 2;
  /* backward: layer l reads d/dz_{l+1} from the head gradient (top layer)
   * or s_g[l % 2], and writes d/dz_l into s_g[(l - 1) % 2] */
  const blpo_mbf_net *t = phase < La ? &y->a : &y->c;
  const int l = phase < La ? La - 1 - phase : Lc - 1 - (phase - La);
  const float *g = l == t->L - 1 ? sm + (t == &y->a ? y->s_dz : y->s_dv) : sm + y->s_g[l % 2];
  float *gout = sm + y->s_g[(l + 1) % 2]; /* (l - 1) % 2 for l >= 1 */
  blpo_mbf_backward(t, l, rows, g, gout, sm, t == &y->a ? part : part + y->a.num_params, tid);
}

/* reduce: block k of agent p; parameter column c = k * THREADS + tid.
 * Phases: the column's sum over blocks, tree (both networks), result. */
BLPO_HD int blpo_mbf_reduce_phases(void) { return BLPO_MBF_TREE_STEPS + 2; }

BLPO_HD void blpo_mbf_reduce(const blpo_mbf_args *a, int p, int k, int tid, int phase,
                             blpo_mbf_reduce_shared *sh) {
  const blpo_mbf_layout *y = &a->lay;
  const int Na = y->a.num_params, Nc = y->c.num_params;
  if (phase == 0) {
    const int c = k * BLPO_MBF_THREADS + tid;
    const float *col = a->parts + (size_t)p * y->blocks * y->cols + c;
    double qa = 0, qc = 0;
    if (c < Na + Nc) { /* blocks in order, in float like the CPU's chunk sums */
      float s = 0.0f;
      for (int b = 0; b < y->blocks; b++)
        s += col[(size_t)b * y->cols];
      if (c < Na)
        a->actor_grad[(size_t)p * Na + c] = s, qa = (double)s * s;
      else
        a->critic_grad[(size_t)p * Nc + c - Na] = s, qc = (double)s * s;
    } else if (c < y->cols) { /* a loss sum, in double like the CPU's */
      double s = 0;
      for (int b = 0; b < y->blocks; b++)
        s += col[(size_t)b * y->cols];
      a->stats[(size_t)p * BLPO_STAT_COUNT + BLPO_STAT_PG_LOSS + (c - Na - Nc)] +=
          (float)(s / y->n);
    }
    sh->sq[0][tid] = qa;
    sh->sq[1][tid] = qc;
  } else if (phase <= BLPO_MBF_TREE_STEPS) {
    blpo_mbf_tree(sh->sq[0], tid, phase);
    blpo_mbf_tree(sh->sq[1], tid, phase);
  } else if (tid == 0) {
    double *q = a->sq + ((size_t)p * y->col_blocks + k) * 2;
    q[0] = sh->sq[0][0];
    q[1] = sh->sq[1][0];
  }
}

/* adam: block k of agent p. Phases: the reduce blocks' squared norms, tree,
 * norms and clip factor (block 0 records them), the Adam steps. */
BLPO_HD int blpo_mbf_adam_phases(void) { return BLPO_MBF_TREE_STEPS + 3; }

BLPO_HD void blpo_mbf_adam(const blpo_mbf_args *a, int p, int k, int tid, int phase,
                           blpo_mbf_adam_shared *sh) {
  const blpo_mbf_layout *y = &a->lay;
  const int Na = y->a.num_params, Nc = y->c.num_params;
  if (phase == 0) {
    double qa = 0, qc = 0;
    const double *q = a->sq + (size_t)p * y->col_blocks * 2;
    for (int g = tid; g < y->col_blocks; g += BLPO_MBF_THREADS)
      qa += q[2 * g], qc += q[2 * g + 1];
    sh->sq[0][tid] = qa;
    sh->sq[1][tid] = qc;
  } else if (phase <= BLPO_MBF_TREE_STEPS) {
    blpo_mbf_tree(sh->sq[0], tid, phase);
    blpo_mbf_tree(sh->sq[1], tid, phase);
  } else if (phase == BLPO_MBF_TREE_STEPS + 1) {
    if (tid != 0)
      return;
    float sa = (float)sh->sq[0][0], sc = (float)sh->sq[1][0];
    sh->scale = blpo_clip_scale(sqrtf(sa + sc), a->max_grad_norm);
    sh->spa = blpo_adam_resolve(a->actor_sched, blpo_clock_read(a->actor_sched.step.clock));
    sh->spc = blpo_adam_resolve(a->critic_sched, blpo_clock_read(a->critic_sched.step.clock));
    if (k == 0) {
      float *st = a->stats + (size_t)p * BLPO_STAT_COUNT;
      a->sumsq_a[p] = sa;
      a->sumsq_c[p] = sc;
      a->scale[p] = sh->scale;
      st[BLPO_STAT_ACTOR_GNORM] += sqrtf(sa);
      st[BLPO_STAT_CRITIC_GNORM] += sqrtf(sc);
      st[BLPO_STAT_COUNT_MB] += 1.0f;
    }
  } else {
    const int c = k * BLPO_MBF_THREADS + tid;
    if (c < Na) {
      size_t e = (size_t)p * Na + c;
      blpo_adam_update(&a->actor_params[e], &a->actor_m[e], &a->actor_v[e],
                       a->actor_grad[e] * sh->scale, sh->spa);
    } else if (c < Na + Nc) {
      size_t e = (size_t)p * Nc + c - Na;
      blpo_adam_update(&a->critic_params[e], &a->critic_m[e], &a->critic_v[e],
                       a->critic_grad[e] * sh->scale, sh->spc);
    }
  }
}

/* ---- the four programs as one cooperative kernel (run.grid_sync) -------- */

/* A cooperative kernel's blocks per agent for P agents where `resident`
 * blocks of it fit on the device at once: every block must be resident for
 * the grid's barriers, so at most resident / P per agent, and no more than
 * `blocks`, the largest grid phase's units; 0 when not even one per agent
 * fits (the op then launches its kernels one after another). */
static inline int blpo_grid_blocks(int blocks, int P, long long resident) {
  if (P <= 0 || resident < P)
    return 0;
  long long g = resident / P;
  return g < blocks ? (int)g : blocks;
}

/* The minibatch's programs as grid phases: the epoch's moments (at its
 * first minibatch only), rows, reduce, adam, the whole grid synchronised
 * between them (the moments before the rows read them, the partials before
 * the sums, every reduce block's squared norms before the clip). Block x of
 * a grid of G per agent runs a grid phase's units x, x + G, ..., each
 * unit's phases with a block barrier after each, so any G >= 1 computes
 * what the separate kernels do, bit for bit. A unit's shared values sit at
 * the start of the rows' shared memory (blpo_mbf_grid_floats). */
enum { BLPO_MBF_PROG_MOMENTS, BLPO_MBF_PROG_ROWS, BLPO_MBF_PROG_REDUCE, BLPO_MBF_PROG_ADAM };

BLPO_HD int blpo_mbf_grid_count(const blpo_mbf_args *a) { return a->mb == 0 ? 4 : 3; }

BLPO_HD int blpo_mbf_grid_prog(const blpo_mbf_args *a, int gphase) {
  return gphase + (a->mb == 0 ? BLPO_MBF_PROG_MOMENTS : BLPO_MBF_PROG_ROWS);
}

BLPO_HD int blpo_mbf_grid_units(const blpo_mbf_args *a, int gphase) {
  switch (blpo_mbf_grid_prog(a, gphase)) {
  case BLPO_MBF_PROG_MOMENTS:
    return a->M;
  case BLPO_MBF_PROG_ROWS:
    return a->lay.blocks;
  default:
    return a->lay.col_blocks;
  }
}

BLPO_HD int blpo_mbf_grid_phases(const blpo_mbf_args *a, int gphase) {
  switch (blpo_mbf_grid_prog(a, gphase)) {
  case BLPO_MBF_PROG_MOMENTS:
    return blpo_mbf_moments_phases();
  case BLPO_MBF_PROG_ROWS:
    return blpo_mbf_rows_phases(&a->lay);
  case BLPO_MBF_PROG_REDUCE:
    return blpo_mbf_reduce_phases();
  default:
    return blpo_mbf_adam_phases();
  }
}

BLPO_HD void blpo_mbf_grid_unit(const blpo_mbf_args *a, int gphase, int p, int unit, int tid,
                                int phase, float *sm) {
  switch (blpo_mbf_grid_prog(a, gphase)) {
  case BLPO_MBF_PROG_MOMENTS:
    blpo_mbf_moments(a, p, unit, tid, phase, (blpo_mbf_moments_shared *)(void *)sm);
    break;
  case BLPO_MBF_PROG_ROWS:
    blpo_mbf_rows(a, p, unit, tid, phase, sm);
    break;
  case BLPO_MBF_PROG_REDUCE:
    blpo_mbf_reduce(a, p, unit, tid, phase, (blpo_mbf_reduce_shared *)(void *)sm);
    break;
  default:
    blpo_mbf_adam(a, p, unit, tid, phase, (blpo_mbf_adam_shared *)(void *)sm);
  }
}

/* The rows' shared floats, at least room for the other programs' values. */
static inline int blpo_mbf_grid_floats(const blpo_mbf_layout *y) {
  size_t need = sizeof(blpo_mbf_moments_shared);
  if (sizeof(blpo_mbf_reduce_shared) > need)
    need = sizeof(blpo_mbf_reduce_shared);
  if (sizeof(blpo_mbf_adam_shared) > need)
    need = sizeof(blpo_mbf_adam_shared);
  const int f = (int)((need + sizeof(float) - 1) / sizeof(float));
  return y->s_floats > f ? y->s_floats : f;
}

/* The grid's blocks per agent: as many as the rows' blocks where they fit. */
static inline int blpo_mbf_grid_blocks(const blpo_mbf_layout *y, int P, long long resident) {
  return blpo_grid_blocks(y->blocks, P, resident);
}

/* ---- one network's forward pass (the CUDA mlp_forward for small networks) */

/* mlp_forward for networks whose weights and BLPO_MBF_ROWS rows fit in
 * shared memory, as one kernel instead of bias, GEMM and activation
 * launches per layer: block b of agent p stages the weights, runs the
 * layers on its rows in shared memory (blpo_mbf_forward) and writes every
 * layer's outputs out in mlp_forward's layout. */
typedef struct {
  blpo_mbf_net t;
  int n, R, blocks;
  int s_floats;
  size_t act_off[BLPO_MAX_LAYERS + 1]; /* layer l's (n, d_l) block in one agent's acts */
  size_t act_stride;                   /* n * act_floats_per_row */
} blpo_fwd_layout;

typedef struct {
  blpo_fwd_layout lay;
  const float *params, *x; /* (P, Np), (P, n, d_0) */
  float *acts;             /* (P, n, act_floats_per_row) */
} blpo_fwd_args;

static inline int blpo_fwd_layout_init(blpo_fwd_layout *y, const blpo_mlp *m, int n, int R,
                                       int tf32) {
  memset(y, 0, sizeof(*y));
  int off = blpo_mbf_net_init(&y->t, m, 0, tf32, R);
  y->n = n, y->R = R, y->blocks = (n + R - 1) / R;
  for (int l = 0; l <= m->num_layers; l++) {
    y->t.h[l] = blpo_mbf_place(&off, R, blpo_mbf_pitch(m->dims[l]));
    y->act_off[l] = blpo_mlp_act_offset(m, l, n);
  }
  y->act_stride = (size_t)n * m->act_floats_per_row;
  y->s_floats = off;
  return off;
}

/* As blpo_mbf_choose, for one network: its rows per block, or 0. */
static inline int blpo_fwd_choose(blpo_fwd_layout *y, const blpo_mlp *m, int P, int n,
                                  size_t smem_bytes, int tf32) {
  if (n <= 0 || P <= 0 || P > 65535 || m->num_params > ((size_t)1 << 20) || m->max_width > 4096)
    return 0;
  for (int R = BLPO_MBF_ROWS; R >= 8; R /= 2) {
    if (sizeof(float) * (size_t)blpo_fwd_layout_init(y, m, n, R, 0) > smem_bytes)
      continue;
    if (tf32 && sizeof(float) * (size_t)blpo_fwd_layout_init(y, m, n, R, 1) > smem_bytes)
      blpo_fwd_layout_init(y, m, n, R, 0); /* as blpo_mbf_choose */
    return R;
  }
  return 0;
}

/* Phases: stage, the layers (L), the outputs out. */
BLPO_HD int blpo_fwd_phases(const blpo_fwd_layout *y) { return 2 + y->t.L; }

BLPO_HD void blpo_fwd(const blpo_fwd_args *a, int p, int b, int tid, int phase, float *sm) {
  const blpo_fwd_layout *y = &a->lay;
  const blpo_mbf_net *t = &y->t;
  const int R = y->R, n = y->n, r0 = b * R, rows = n - r0 < R ? n - r0 : R, d0 = t->dims[0];
  if (phase == 0) {
    blpo_mbf_stage(t, a->params + (size_t)p * t->num_params, sm, tid);
    const float *x = a->x + ((size_t)p * n + r0) * d0;
    for (int e = tid; e < rows * d0; e += BLPO_MBF_THREADS)
      sm[t->h[0] + (e / d0) * blpo_mbf_pitch(d0) + e % d0] = x[e];
    return;
  }
  if (phase <= t->L) {
    blpo_mbf_forward(t, phase - 1, rows, sm, tid);
    return;
  }
  float *acts = a->acts + (size_t)p * y->act_stride;
  for (int l = 1; l <= t->L; l++) { /* consecutive threads write consecutive words */
    const int dl = t->dims[l];
    float *out = acts + y->act_off[l] + (size_t)r0 * dl;
    for (int e = tid; e < rows * dl; e += BLPO_MBF_THREADS)
      out[e] = sm[t->h[l] + (e / dl) * blpo_mbf_pitch(dl) + e % dl];
  }
}

/* Several forward passes as one kernel (the CUDA mlp_forward_many): pass
 * t's blocks are [start[t], start[t + 1]) of the grid's x; each block runs
 * its pass's blpo_fwd in that pass's layout, shared memory sized for the
 * largest. */
typedef struct {
  blpo_fwd_args f[BLPO_PASS_MAX];
  int start[BLPO_PASS_MAX + 1];
  int count, s_floats;
} blpo_fwd_set;

/* The set for these passes on P agents, each in the layout mlp_forward would
 * choose; 0 if any pass does not fit shared memory (or count is out of
 * range), and then each pass goes on its own. */
static inline int blpo_fwd_set_init(blpo_fwd_set *s, int P, int count, const blpo_mlp_pass *f,
                                    size_t smem_bytes, int tf32) {
  memset(s, 0, sizeof(*s));
  if (count < 1 || count > BLPO_PASS_MAX)
    return 0;
  for (int t = 0; t < count; t++) {
    blpo_fwd_args *a = &s->f[t];
    if (f[t].n <= 0 || !blpo_fwd_choose(&a->lay, f[t].m, P, f[t].n, smem_bytes, tf32))
      return 0;
    a->params = f[t].params, a->x = f[t].x, a->acts = f[t].acts;
    s->start[t + 1] = s->start[t] + a->lay.blocks;
    if (a->lay.s_floats > s->s_floats)
      s->s_floats = a->lay.s_floats;
  }
  s->count = count;
  return 1;
}

/* The pass of grid block g (< start[count]) where pass t's blocks are
 * [start[t], start[t + 1]); passes with no blocks are passed over. */
BLPO_HD int blpo_pass_of(const int *start, int g) {
  int t = 0;
  while (g >= start[t + 1])
    t++;
  return t;
}

/* ---- one network's backward pass (the CUDA mlp_backward for small networks) */

/* mlp_backward for networks that fit in shared memory: rows, one block per
 * (agent, R rows), stages the weights, the block's inputs, hidden
 * activations and output gradients, and runs the layers' backward passes
 * (blpo_mbf_backward) into the block's partial gradient; reduce sums the
 * partials per parameter in block order into grad. With one block per agent
 * the rows program writes grad itself and reduce is not launched. The
 * partials live in mlp_backward's scratch (P, 2 n max_width floats), so the
 * layout is chosen only where they fit there. */
typedef struct {
  blpo_mbf_net t;
  int n, R, blocks, direct;
  int s_dy, s_g[2]; /* (R, pitch P(d_L)); (R, pitch P(widest layer)) x 2 */
  int s_floats;
  size_t act_off[BLPO_MAX_LAYERS + 1], act_stride; /* as blpo_fwd_layout */
} blpo_bwd_layout;

typedef struct {
  blpo_bwd_layout lay;
  const float *params, *x, *acts, *dy; /* (P, Np), (P, n, d_0), (P, n, A), (P, n, d_L) */
  float *grad;                         /* (P, Np): the MLP part written */
  float *parts;                        /* (P, blocks, Nm) unless direct */
} blpo_bwd_args;

static inline int blpo_bwd_layout_init(blpo_bwd_layout *y, const blpo_mlp *m, int n, int R,
                                       int tf32) {
  memset(y, 0, sizeof(*y));
  int off = blpo_mbf_net_init(&y->t, m, 0, tf32, R);
  y->n = n, y->R = R, y->blocks = (n + R - 1) / R, y->direct = y->blocks == 1;
  for (int l = 0; l < m->num_layers; l++) { /* the inputs of each layer */
    y->t.h[l] = blpo_mbf_place(&off, R, blpo_mbf_pitch(m->dims[l]));
    y->act_off[l] = blpo_mlp_act_offset(m, l, n);
  }
  y->act_stride = (size_t)n * m->act_floats_per_row;
  y->s_dy = blpo_mbf_place(&off, R, blpo_mbf_pitch(m->dims[m->num_layers]));
  y->s_g[0] = blpo_mbf_place(&off, R, blpo_mbf_pitch(m->max_width));
  y->s_g[1] = blpo_mbf_place(&off, R, blpo_mbf_pitch(m->max_width));
  blpo_mbf_tcw_place(&off, &y->t, NULL);
  y->s_floats = off;
  return off;
}

/* The most rows per block (64 down to 8) whose shared memory fits and whose
 * partials fit in the scratch; returns them, or 0 (the cuBLAS path). */
static inline int blpo_bwd_choose(blpo_bwd_layout *y, const blpo_mlp *m, int P, int n,
                                  size_t smem_bytes, int tf32) {
  if (n <= 0 || P <= 0 || P > 65535 || m->num_params > ((size_t)1 << 20) || m->max_width > 4096)
    return 0;
  for (int R = 2 * BLPO_MBF_ROWS; R >= 8; R /= 2) {
    if (sizeof(float) * (size_t)blpo_bwd_layout_init(y, m, n, R, 0) > smem_bytes)
      continue;
    if (y->direct || (size_t)y->blocks * m->num_mlp_params <= 2 * (size_t)n * m->max_width) {
      if (tf32 && sizeof(float) * (size_t)blpo_bwd_layout_init(y, m, n, R, 1) > smem_bytes)
        blpo_bwd_layout_init(y, m, n, R, 0); /* as blpo_mbf_choose */
      return R;
    }
  }
  return 0;
}

/* rows: block b of agent p. Phases: stage, the layers' backward passes from
 * the top (L). */
BLPO_HD int blpo_bwd_rows_phases(const blpo_bwd_layout *y) { return 1 + y->t.L; }

BLPO_HD void blpo_bwd_rows(const blpo_bwd_args *a, int p, int b, int tid, int phase, float *sm) {
  const blpo_bwd_layout *y = &a->lay;
  const blpo_mbf_net *t = &y->t;
  const int R = y->R, n = y->n, L = t->L, r0 = b * R, rows = n - r0 < R ? n - r0 : R;
  if (phase == 0) {
    blpo_mbf_stage(t, a->params + (size_t)p * t->num_params, sm, tid);
    const int d0 = t->dims[0], dL = t->dims[L];
    const float *x = a->x + ((size_t)p * n + r0) * d0;
    for (int e = tid; e < rows * d0; e += BLPO_MBF_THREADS)
      sm[t->h[0] + (e / d0) * blpo_mbf_pitch(d0) + e % d0] = x[e];
    const float *acts = a->acts + (size_t)p * y->act_stride;
    for (int l = 1; l < L; l++) {
      const int dl = t->dims[l];
      const float *in = acts + y->act_off[l] + (size_t)r0 * dl;
      for (int e = tid; e < rows * dl; e += BLPO_MBF_THREADS)
        sm[t->h[l] + (e / dl) * blpo_mbf_pitch(dl) + e % dl] = in[e];
    }
    const float *dy = a->dy + ((size_t)p * n + r0) * dL;
    for (int e = tid; e < rows * dL; e += BLPO_MBF_THREADS)
      sm[y->s_dy + (e / dL) * blpo_mbf_pitch(dL) + e % dL] = dy[e];
    return;
  }
  const int l = L - phase; /* as blpo_mbf_rows: s_g[l % 2] in, s_g[(l + 1) % 2] out */
  const float *g = l == L - 1 ? sm + y->s_dy : sm + y->s_g[l % 2];
  float *part = y->direct ? a->grad + (size_t)p * t->num_params
                          : a->parts + ((size_t)p * y->blocks + b) * t->num_mlp;
  blpo_mbf_backward(t, l, rows, g, sm + y->s_g[(l + 1) % 2], sm, part, tid);
}

/* Column c of agent p's gradient: the blocks' partials in block order, in
 * float, or, with one block per agent, what the rows program wrote. */
BLPO_HD float blpo_bwd_column(const blpo_bwd_args *a, int p, int c) {
  const blpo_bwd_layout *y = &a->lay;
  const int nm = y->t.num_mlp;
  if (y->direct)
    return a->grad[(size_t)p * y->t.num_params + c];
  const float *col = a->parts + (size_t)p * y->blocks * nm + c;
  float s = 0.0f;
  for (int b = 0; b < y->blocks; b++)
    s += col[(size_t)b * nm];
  return s;
}

/* reduce: block k of agent p, column c = k * THREADS + tid of the MLP part
 * (a layout with several blocks per agent). One phase. */
BLPO_HD void blpo_bwd_reduce(const blpo_bwd_args *a, int p, int k, int tid) {
  const int c = k * BLPO_MBF_THREADS + tid;
  if (c < a->lay.t.num_mlp)
    a->grad[(size_t)p * a->lay.t.num_params + c] = blpo_bwd_column(a, p, c);
}

/* Several backward passes as two kernels (the CUDA mlp_backward_many): rows
 * over every pass's blocks, pass t's at [start[t], start[t + 1]) of the
 * grid's x, then reduce over every pass's column blocks, pass t's at
 * [rstart[t], rstart[t + 1]) (none for a pass with one block per agent,
 * which writes its gradient itself). Each pass in the layout mlp_backward
 * would choose, its partials in its own scratch. */
typedef struct {
  blpo_bwd_args b[BLPO_PASS_MAX];
  int start[BLPO_PASS_MAX + 1], rstart[BLPO_PASS_MAX + 1];
  int add_to_prev[BLPO_PASS_MAX]; /* blpo_mlp_grad_pass's */
  int count, s_floats;
} blpo_bwd_set;

/* 0 if any pass does not fit (or count is out of range), or a pass adds to
 * the previous one where that is not the same shape without extra
 * parameters or neither of the two has reduce blocks, or a pass with one
 * block per agent sits inside a chain of sums (its gradient would be read
 * by the reduce before it and added to by the one after, in one launch):
 * each then goes on its own, the sums as axpy. */
static inline int blpo_bwd_set_init(blpo_bwd_set *s, int P, int count, const blpo_mlp_grad_pass *g,
                                    size_t smem_bytes, int tf32) {
  memset(s, 0, sizeof(*s));
  if (count < 1 || count > BLPO_PASS_MAX)
    return 0;
  for (int t = 0; t < count; t++) {
    blpo_bwd_args *a = &s->b[t];
    if (!blpo_bwd_choose(&a->lay, g[t].m, P, g[t].n, smem_bytes, tf32))
      return 0;
    a->params = g[t].params, a->x = g[t].x, a->acts = g[t].acts, a->dy = g[t].dy;
    a->grad = g[t].grad, a->parts = g[t].scratch;
    int cols = (int)((g[t].m->num_mlp_params + BLPO_MBF_THREADS - 1) / BLPO_MBF_THREADS);
    s->start[t + 1] = s->start[t] + a->lay.blocks;
    s->rstart[t + 1] = s->rstart[t] + (a->lay.direct ? 0 : cols);
    if (a->lay.s_floats > s->s_floats)
      s->s_floats = a->lay.s_floats;
    s->add_to_prev[t] = g[t].add_to_prev != 0;
    if (s->add_to_prev[t] && (t == 0 || g[t].m->num_extra != 0 || g[t - 1].m->num_extra != 0 ||
                              g[t - 1].m->num_params != g[t].m->num_params ||
                              (a->lay.direct && s->b[t - 1].lay.direct) ||
                              (t >= 2 && s->add_to_prev[t - 1] && s->b[t - 1].lay.direct)))
      return 0;
  }
  s->count = count;
  return 1;
}

/* The set's reduce: grid block gb of agent p, pass t's column c. Where pass
 * t + 1 adds to pass t, pass t's column is its sum plus pass t + 1's (read
 * from pass t + 1's partials, or from the gradient its rows program wrote),
 * as axpy would add them; where pass t adds to a pass t - 1 with one block
 * per agent (no reduce blocks), it adds its column there itself. Either
 * way each gradient element has one writer in the launch. */
BLPO_HD void blpo_bwd_set_reduce(const blpo_bwd_set *s, int p, int gb, int tid) {
  const int t = blpo_pass_of(s->rstart, gb);
  const blpo_bwd_args *a = &s->b[t];
  const int c = (gb - s->rstart[t]) * BLPO_MBF_THREADS + tid;
  if (c >= a->lay.t.num_mlp)
    return;
  float v = blpo_bwd_column(a, p, c);
  float *g = a->grad + (size_t)p * a->lay.t.num_params + c;
  *g = t + 1 < s->count && s->add_to_prev[t + 1] ? v + blpo_bwd_column(&s->b[t + 1], p, c) : v;
  if (s->add_to_prev[t] && s->b[t - 1].lay.direct)
    s->b[t - 1].grad[(size_t)p * a->lay.t.num_params + c] += v;
}

#endif
