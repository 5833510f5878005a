/* The CUDA backend's fused nested critic step (backend.h critic_step,
 * kernels/critic_step_cuda.cu) as block programs for host and device, in
 * the manner of ppo_blocks.h, whose layer passes it reuses.
 *
 * One step of g(w) = (1/n) sum (G - V)^2 is two kernels instead of the
 * separate ops' ~20 launches (per layer bias, GEMM, activation; the loss;
 * per layer two GEMMs, column sums, activation derivative; Adam):
 *   rows  one block per (agent, up to BLPO_MBF_ROWS rows): the critic's
 *         weights transposed in shared memory, its forward pass, the value
 *         loss, its backward pass; the block's partial gradient and loss
 *         sum written as one row of `parts`;
 *   adam  the partials summed per parameter in block order into the
 *         gradient, the loss into its stats slot, and the Adam step (the
 *         nested loop has no norm clip, so no norm is needed first).
 * The op's `steps` consecutive steps on the same rows are either that pair
 * per step, or (run.grid_sync) one cooperative kernel whose blocks run the
 * same two programs as grid phases, synchronising the grid between them:
 * blpo_cvf_grid_units / _phases / _unit below are that schedule, which the
 * kernel and the tests run alike.
 * tests/test_critic_step.c runs both programs thread by thread on the host
 * against the separate ops. */
#ifndef BLPO_CRITIC_BLOCKS_H
#define BLPO_CRITIC_BLOCKS_H

#include "ppo_blocks.h"

typedef struct {
  blpo_mbf_net c;
  int n, R, blocks, O;
  int s_tgt, s_dv, s_err; /* (R): targets; (R, pitch P(1)): dvalue; (R): G - V */
  int s_g[2];             /* backward ping-pong, (R, pitch P(widest layer)) */
  int s_floats;           /* shared floats of the rows kernel */
  int cols;               /* one partial: Nc + 1 (the loss) floats */
  int col_blocks;         /* blocks per agent of the adam kernel */
} blpo_cvf_layout;

typedef struct {
  blpo_cvf_layout lay;
  const float *x, *target;              /* (P, n, O), (P, n) */
  float *params, *grad, *m, *v, *stats; /* (P, Nc) x 4, (P, BLPO_STAT_COUNT) */
  int stat_slot;                        /* < 0: the loss is not recorded */
  float *parts;                         /* (P, blocks, cols) */
  blpo_adam_sched sched;
} blpo_cvf_args;

typedef struct {
  blpo_adam_step_params sp;
} blpo_cvf_adam_shared;

/* The layout for n-row minibatches with R rows per block (1 <= R <=
 * BLPO_MBF_ROWS), tf32 as blpo_mbf_net_init; returns the rows kernel's
 * shared floats. */
static inline int blpo_cvf_layout_init(blpo_cvf_layout *y, int obs_dim, const blpo_mlp *critic,
                                       int n, int R, int tf32) {
  memset(y, 0, sizeof(*y));
  int off = blpo_mbf_net_init(&y->c, critic, 0, tf32, R);
  y->n = n, y->R = R, y->blocks = (n + R - 1) / R, y->O = obs_dim;
  /* every (rows, width) array the layer passes read placed as ppo_blocks.h's */
  y->c.h[0] = blpo_mbf_place(&off, R, blpo_mbf_pitch(obs_dim));
  for (int l = 1; l <= y->c.L; l++)
    y->c.h[l] = blpo_mbf_place(&off, R, blpo_mbf_pitch(y->c.dims[l]));
  y->s_tgt = off, off += R;
  y->s_dv = blpo_mbf_place(&off, R, blpo_mbf_pitch(1));
  y->s_err = off, off += R;
  y->s_g[0] = blpo_mbf_place(&off, R, blpo_mbf_pitch(critic->max_width));
  y->s_g[1] = blpo_mbf_place(&off, R, blpo_mbf_pitch(critic->max_width));
  blpo_mbf_tcw_place(&off, &y->c, NULL);
  y->s_floats = off;
  y->cols = y->c.num_params + 1;
  y->col_blocks = (y->cols + BLPO_MBF_THREADS - 1) / BLPO_MBF_THREADS;
  return off;
}

/* As blpo_mbf_choose, for the critic alone. */
static inline int blpo_cvf_choose(blpo_cvf_layout *y, const blpo_dims *d, const blpo_mlp *critic,
                                  int n, size_t smem_bytes, int tf32) {
  if (n <= 0 || d->P <= 0 || d->P > 65535 || !blpo_mbf_net_ok(critic, d->obs_dim, 1, 0))
    return 0;
  for (int R = BLPO_MBF_ROWS; R >= 8; R /= 2) {
    if (sizeof(float) * (size_t)blpo_cvf_layout_init(y, d->obs_dim, critic, n, R, 0) > smem_bytes)
      continue;
    if (tf32 &&
        sizeof(float) * (size_t)blpo_cvf_layout_init(y, d->obs_dim, critic, n, R, 1) > smem_bytes)
      blpo_cvf_layout_init(y, d->obs_dim, critic, n, R, 0); /* as blpo_mbf_choose */
    return R;
  }
  return 0;
}

static inline size_t blpo_cvf_parts_floats(const blpo_cvf_layout *y) {
  return (size_t)y->blocks * (size_t)y->cols;
}

/* The workspace of P agents: the partials (P, blocks, cols). */
static inline size_t blpo_cvf_work_bytes(const blpo_cvf_layout *y, int P) {
  return (size_t)P * blpo_cvf_parts_floats(y) * sizeof(float);
}

/* A kernel's arguments for cs, its partials in cs->work. */
static inline blpo_cvf_args blpo_cvf_args_of(const blpo_cvf_layout *y, const blpo_critic_step *cs) {
  blpo_cvf_args a;
  memset(&a, 0, sizeof(a));
  a.lay = *y;
  a.x = cs->x, a.target = cs->target;
  a.params = cs->params, a.grad = cs->grad, a.m = cs->m, a.v = cs->v, a.stats = cs->stats;
  a.stat_slot = cs->stat_slot;
  a.parts = (float *)cs->work;
  a.sched = cs->sched;
  return a;
}

/* rows: block b of agent p. Phases: stage, forward (L), loss, block sum,
 * backward (L). */
BLPO_HD int blpo_cvf_rows_phases(const blpo_cvf_layout *y) { return 3 + 2 * y->c.L; }

BLPO_HD void blpo_cvf_rows(const blpo_cvf_args *a, int p, int b, int tid, int phase, float *sm) {
  const blpo_cvf_layout *y = &a->lay;
  const blpo_mbf_net *t = &y->c;
  const int L = t->L, R = y->R, O = y->O, n = y->n;
  const int r0 = b * R, rows = n - r0 < R ? n - r0 : R;
  float *part = a->parts + ((size_t)p * y->blocks + b) * y->cols; /* [gradient | loss] */
  if (phase == 0) {
    blpo_mbf_stage(t, a->params + (size_t)p * t->num_params, sm, tid);
    const float *x = a->x + ((size_t)p * n + r0) * O;
    for (int e = tid; e < rows * O; e += BLPO_MBF_THREADS)
      sm[t->h[0] + (e / O) * blpo_mbf_pitch(O) + e % O] = x[e];
    for (int r = tid; r < rows; r += BLPO_MBF_THREADS)
      sm[y->s_tgt + r] = a->target[(size_t)p * n + r0 + r];
    return;
  }
  phase -= 1;
  if (phase < L) {
    blpo_mbf_forward(t, phase, rows, sm, tid);
    return;
  }
  phase -= L;
  if (phase == 0) { /* value_loss's row: e = G - V, dvalue = -2 e / n */
    const int vp = blpo_mbf_pitch(1);
    for (int r = tid; r < rows; r += BLPO_MBF_THREADS) {
      float e = sm[y->s_tgt + r] - sm[t->h[L] + vp * r];
      sm[y->s_dv + vp * r] = -2.0f * e / (float)n;
      sm[y->s_err + r] = e;
    }
    return;
  }
  if (phase == 1) { /* the block's sum of e^2, in double, rows in order */
    if (tid == 0) {
      double s = 0;
      for (int r = 0; r < rows; r++)
        s += (double)sm[y->s_err + r] * sm[y->s_err + r];
      part[t->num_params] = (float)s;
    }
    return;
  }
  phase -= 2; /* backward, layer l = L - 1 - phase, as blpo_mbf_rows */
  const int l = L - 1 - phase;
  const float *g = l == L - 1 ? sm + y->s_dv : sm + y->s_g[l % 2];
  blpo_mbf_backward(t, l, rows, g, sm + y->s_g[(l + 1) % 2], sm, part, tid);
}

/* adam: block k of agent p, for the op's step `step` (0-based: Adam's
 * schedule at its offset + step, the loss recorded at step 0 only); column
 * c = k * THREADS + tid. Phases: the step constants, then the column's sum
 * over blocks and its Adam step. */
BLPO_HD int blpo_cvf_adam_phases(void) { return 2; }

BLPO_HD void blpo_cvf_adam(const blpo_cvf_args *a, int p, int k, int step, int tid, int phase,
                           blpo_cvf_adam_shared *sh) {
  const blpo_cvf_layout *y = &a->lay;
  const int Nc = y->c.num_params;
  if (phase == 0) {
    if (tid == 0) {
      blpo_adam_sched s = a->sched;
      s.step.offset += step;
      sh->sp = blpo_adam_resolve(s, blpo_clock_read(s.step.clock));
    }
    return;
  }
  const int c = k * BLPO_MBF_THREADS + tid;
  const float *col = a->parts + (size_t)p * y->blocks * y->cols + c;
  if (c < Nc) { /* blocks in order, in float */
    float s = 0.0f;
    for (int b = 0; b < y->blocks; b++)
      s += col[(size_t)b * y->cols];
    size_t e = (size_t)p * Nc + c;
    a->grad[e] = s;
    blpo_adam_update(&a->params[e], &a->m[e], &a->v[e], s * 1.0f, sh->sp); /* adam's scale 1 */
  } else if (c == Nc && a->stat_slot >= 0 && step == 0) {
    double s = 0;
    for (int b = 0; b < y->blocks; b++)
      s += col[(size_t)b * y->cols];
    a->stats[(size_t)p * BLPO_STAT_COUNT + a->stat_slot] += (float)(s / y->n);
  }
}

/* The cooperative kernel's schedule for `steps` steps: grid phase s in [0,
 * 2 steps), rows of step s / 2 for even s and its adam for odd s, with the
 * whole grid synchronised between grid phases (the partials complete before
 * the sums, the parameters before the next step's staging). Block x of a
 * grid of G blocks per agent runs the grid phase's units x, x + G, ... <
 * units, each unit's phases with a block barrier after each, so any G >= 1
 * computes what the two kernels per step do, bit for bit: every unit is the
 * same program on the same inputs. The adam units take their shared values
 * at the start of the rows' shared memory, free by then. */
BLPO_HD int blpo_cvf_grid_units(const blpo_cvf_layout *y, int gphase) {
  return gphase % 2 ? y->col_blocks : y->blocks;
}

BLPO_HD int blpo_cvf_grid_phases(const blpo_cvf_layout *y, int gphase) {
  return gphase % 2 ? blpo_cvf_adam_phases() : blpo_cvf_rows_phases(y);
}

BLPO_HD void blpo_cvf_grid_unit(const blpo_cvf_args *a, int gphase, int p, int unit, int tid,
                                int phase, float *sm) {
  if (gphase % 2)
    blpo_cvf_adam(a, p, unit, gphase / 2, tid, phase, (blpo_cvf_adam_shared *)(void *)sm);
  else
    blpo_cvf_rows(a, p, unit, tid, phase, sm);
}

/* The cooperative kernel's blocks per agent (blpo_grid_blocks): the step's
 * row blocks where they fit (where the adam units are more, a block runs
 * several). */
static inline int blpo_cvf_grid_blocks(const blpo_cvf_layout *y, int P, long long resident) {
  return blpo_grid_blocks(y->blocks, P, resident);
}

/* The rows kernel's shared floats also hold the adam units' values. */
static inline int blpo_cvf_grid_floats(const blpo_cvf_layout *y) {
  const int need = (int)((sizeof(blpo_cvf_adam_shared) + sizeof(float) - 1) / sizeof(float));
  return y->s_floats > need ? y->s_floats : need;
}

#endif
