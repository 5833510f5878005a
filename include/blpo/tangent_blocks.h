/* The forward-mode tangent of an MLP (backend.h mlp_tangent) as a block
 * program for host and device, in the manner of ppo_blocks.h. The CUDA
 * backend runs it as one kernel (kernels/tangent_cuda.cu) instead of the
 * cuBLAS path's 3L + 1 launches (per layer a bias broadcast, up to two
 * GEMMs and an activation; the head's transpose); BLPO calls it twice per
 * minibatch, for the mixed term's critic tangents along x.
 *
 * Along direction (U_l, c_l), from R{h_0} = 0 (derivatives.md):
 *   R{z_{l+1}} = c_l + U_l h_l + W_l R{h_l},  R{h_{l+1}} = phi'(z_{l+1}) R{z_{l+1}}
 * and the head's R{z_L} is the output ry (K, n, d_L). One block per (agent,
 * run of chunks of R rows): the network's weights W_l^T and each
 * direction's U_l^T and c_l in shared memory once; per chunk the rows'
 * inputs and hidden activations (phi' is read from h = phi(z)), then the
 * layers' tangents for all K directions (virtual rows r * K + k, as
 * second_order.h), the head's written straight to ry. Rows are
 * independent, so there are no partials and no second kernel; each output
 * is one sum in a fixed order (c, the U h terms, then the W R{h} terms, in
 * input order), not the CPU op's GEMM order, so tests/test_tangent_blocks.c
 * compares to tolerance. */
#ifndef BLPO_TANGENT_BLOCKS_H
#define BLPO_TANGENT_BLOCKS_H

#include "ppo_blocks.h"

/* Blocks per agent at most: more chunks than this share a block, so that
 * the weights are staged no more than this many times per agent. */
#define BLPO_TNF_MAX_BLOCKS 256

/* Pitches: P for the rows' arrays, Pk for R{h} (rows x K directions, read
 * by blpo_mbf_tile_hw1); ppo_blocks.h. */
typedef struct {
  blpo_mbf_net c;            /* weights at 0..wf; h[0..L-1] the layer inputs (R, pitch P(d_l)) */
  int wf;                    /* floats of the staged weights; direction k's at (k + 1) * wf */
  int n, R, K, O;            /* rows, rows per chunk, directions, input width */
  int chunks, blocks, cpb;   /* chunks of R rows; blocks per agent; chunks per block */
  int s_rh[BLPO_MAX_LAYERS]; /* l = 1..L-1: R{h_l} (R * K, pitch Pk(d_l)) */
  int s_floats;              /* shared floats of the kernel */
  size_t act_off[BLPO_MAX_LAYERS], act_stride; /* hidden activations in acts (P, n, A) */
} blpo_tnf_layout;

typedef struct {
  blpo_tnf_layout lay;
  const float *params, *x, *acts, *dirs; /* (P, Np), (P, n, O), (P, n, A), (P, K, Np) */
  float *ry;                             /* (P, K, n, d_L) */
} blpo_tnf_args;

/* The layout for n rows, K directions and R rows per chunk; returns the
 * kernel's shared floats. */
static inline int blpo_tnf_layout_init(blpo_tnf_layout *y, const blpo_mlp *m, int n, int K, int R) {
  memset(y, 0, sizeof(*y));
  const int L = m->num_layers;
  y->wf = blpo_mbf_net_init(&y->c, m, 0, 0, 0); /* fp32 tiles */
  int off = (K + 1) * y->wf;
  y->n = n, y->R = R, y->K = K, y->O = m->dims[0];
  for (int l = 0; l < L; l++) {
    y->c.h[l] = blpo_mbf_place(&off, R, blpo_mbf_pitch(m->dims[l]));
    y->act_off[l] = blpo_mlp_act_offset(m, l, n);
  }
  y->act_stride = (size_t)n * m->act_floats_per_row;
  for (int l = 1; l < L; l++)
    y->s_rh[l] = blpo_mbf_place(&off, R * K, blpo_mbf_pitch_k(m->dims[l]));
  y->s_floats = off;
  y->chunks = (n + R - 1) / R;
  int b = y->chunks < BLPO_TNF_MAX_BLOCKS ? y->chunks : BLPO_TNF_MAX_BLOCKS;
  y->cpb = (y->chunks + b - 1) / b;
  y->blocks = (y->chunks + y->cpb - 1) / y->cpb; /* no empty blocks */
  return off;
}

/* The layout with the most rows per chunk (BLPO_MBF_ROWS, halved down to 4)
 * whose shared memory fits smem_bytes; its rows per chunk, or 0 (the cuBLAS
 * path). Any output width and extra parameters (which the tangent ignores). */
static inline int blpo_tnf_choose(blpo_tnf_layout *y, const blpo_mlp *m, int P, int n, int K,
                                  size_t smem_bytes) {
  if (n <= 0 || K <= 0 || K > 64 || P <= 0 || P > 65535 ||
      !blpo_mbf_net_ok(m, m->dims[0], m->dims[m->num_layers], m->num_extra) ||
      (size_t)K * n > ((size_t)1 << 30))
    return 0;
  for (int R = BLPO_MBF_ROWS; R >= 4; R /= 2)
    if (sizeof(float) * (size_t)blpo_tnf_layout_init(y, m, n, K, R) <= smem_bytes)
      return R;
  return 0;
}

/* ---- block program (host and device) ---------------------------------- */

/* Phases: stage, then per chunk of the block: load, tangents (L). */
BLPO_HD int blpo_tnf_phases(const blpo_tnf_layout *y) { return 1 + y->cpb * (1 + y->c.L); }

/* Layer l's tangent for the chunk's rows x K directions. Tiles of TR rows
 * of one direction x TC outputs (as blpo_mbf_forward), so that the
 * direction's U_l^T, like W_l^T, is one load per column for all TR rows.
 * Below the head: R{h_{l+1}} into shared memory; the head: ry. */
BLPO_HD void blpo_tnf_layer(const blpo_tnf_args *a, int p, int l, int r0, int rows, float *sm,
                            int tid) {
  enum { TR = BLPO_MBF_TR, TC = BLPO_MBF_TC };
  const blpo_tnf_layout *y = &a->lay;
  const blpo_mbf_net *t = &y->c;
  const int K = y->K, din = t->dims[l], dout = t->dims[l + 1], last = l == t->L - 1;
  const int ip = blpo_mbf_pitch(din), op = blpo_mbf_pitch(dout), wp = t->wp[l];
  const int ipk = blpo_mbf_pitch_k(din), opk = blpo_mbf_pitch_k(dout); /* R{h}'s pitches */
  const int JT = (dout + TC - 1) / TC, RT = (rows + TR - 1) / TR;
  const float *hin = sm + t->h[l], *wt = sm + t->w_dst[l];
  const float *rin = l > 0 ? sm + y->s_rh[l] : NULL;
  const float *hout = last ? NULL : sm + t->h[l + 1];
  for (int e = tid; e < K * RT * JT; e += BLPO_MBF_THREADS) {
    const int k = e / (RT * JT), q = e % (RT * JT), rb = (q / JT) * TR, jt = q % JT;
    const float *ut = sm + (k + 1) * y->wf + t->w_dst[l], *cb = sm + (k + 1) * y->wf + t->b_dst[l];
    int j[TC], rh[TR], rv[TR]; /* row offsets into h_l and into R{h_l} */
    float acc[TR][TC];
    for (int c = 0; c < TC; c++)
      j[c] = blpo_mbf_imin(jt + c * JT, dout - 1);
    for (int s = 0; s < TR; s++) {
      const int r = blpo_mbf_imin(rb + s, rows - 1);
      rh[s] = r * ip, rv[s] = (r * K + k) * ipk;
    }
    for (int s = 0; s < TR; s++)
      for (int c = 0; c < TC; c++)
        acc[s][c] = cb[j[c]];
    blpo_mbf_tile_hw(hin, rh, ut, wp, j, din, acc); /* U_l h_l */
    if (rin)
      blpo_mbf_tile_hw1(rin, rv, wt, wp, j, din, acc); /* W_l R{h_l} */
    for (int s = 0; s < TR; s++) {
      const int r = rb + s;
      if (r >= rows)
        continue;
      for (int c = 0; c < TC; c++) {
        const int jj = jt + c * JT;
        if (jj >= dout)
          continue;
        float v = acc[s][c];
        if (last) {
          a->ry[(((size_t)p * K + k) * y->n + r0 + r) * dout + jj] = v;
        } else { /* phi' from h = phi(z) */
          const float h = hout[r * op + jj];
          v = blpo_activate_back(t->activation, h, v);
          sm[y->s_rh[l + 1] + (r * K + k) * opk + jj] = v;
        }
      }
    }
  }
}

/* Block b of agent p. The last block may have fewer chunks; it idles
 * through the others' phases. */
BLPO_HD void blpo_tnf_block(const blpo_tnf_args *a, int p, int b, int tid, int phase, float *sm) {
  const blpo_tnf_layout *y = &a->lay;
  const blpo_mbf_net *t = &y->c;
  const int L = t->L, R = y->R, K = y->K, O = y->O, n = y->n, Np = t->num_params;
  if (phase == 0) { /* the weights, then each direction in the same layout */
    blpo_mbf_stage(t, a->params + (size_t)p * Np, sm, tid);
    for (int k = 0; k < K; k++)
      blpo_mbf_stage(t, a->dirs + ((size_t)p * K + k) * Np, sm + (k + 1) * y->wf, tid);
    return;
  }
  phase -= 1;
  const int ci = phase / (1 + L), chunk = b * y->cpb + ci;
  if (chunk >= y->chunks)
    return;
  phase %= 1 + L;
  const int r0 = chunk * R, rows = n - r0 < R ? n - r0 : R;
  if (phase == 0) { /* the chunk's inputs and hidden activations */
    const float *x = a->x + ((size_t)p * n + r0) * O;
    for (int e = tid; e < rows * O; e += BLPO_MBF_THREADS)
      sm[t->h[0] + (e / O) * blpo_mbf_pitch(O) + e % O] = x[e];
    for (int l = 1; l < L; l++) {
      const int dl = t->dims[l];
      const float *h = a->acts + (size_t)p * y->act_stride + y->act_off[l] + (size_t)r0 * dl;
      for (int e = tid; e < rows * dl; e += BLPO_MBF_THREADS)
        sm[t->h[l] + (e / dl) * blpo_mbf_pitch(dl) + e % dl] = h[e];
    }
    return;
  }
  blpo_tnf_layer(a, p, phase - 1, r0, rows, sm, tid);
}

static inline blpo_tnf_args blpo_tnf_args_of(const blpo_tnf_layout *y, const float *params,
                                             const float *x, const float *acts, const float *dirs,
                                             float *ry) {
  blpo_tnf_args a;
  memset(&a, 0, sizeof(a));
  a.lay = *y;
  a.params = params, a.x = x, a.acts = acts, a.dirs = dirs, a.ry = ry;
  return a;
}

/* Several tangents as one kernel (the CUDA mlp_tangent_many): pass t's
 * blocks are [start[t], start[t + 1]) of the grid's x (blpo_pass_of); each
 * block runs its pass's program in that pass's layout and phase count,
 * shared memory sized for the largest. */
typedef struct {
  blpo_tnf_args t[BLPO_PASS_MAX];
  int start[BLPO_PASS_MAX + 1];
  int count, s_floats;
} blpo_tnf_set;

/* The set for these passes on P agents, each in the layout mlp_tangent
 * would choose; 0 if any does not fit (or count is out of range), and then
 * each goes on its own. */
static inline int blpo_tnf_set_init(blpo_tnf_set *s, int P, int count,
                                    const blpo_mlp_tangent_pass *t, size_t smem_bytes) {
  memset(s, 0, sizeof(*s));
  if (count < 1 || count > BLPO_PASS_MAX)
    return 0;
  for (int k = 0; k < count; k++) {
    blpo_tnf_layout y;
    if (!blpo_tnf_choose(&y, t[k].m, P, t[k].n, t[k].K, smem_bytes))
      return 0;
    s->t[k] = blpo_tnf_args_of(&y, t[k].params, t[k].x, t[k].acts, t[k].dirs, t[k].ry);
    s->start[k + 1] = s->start[k] + y.blocks;
    if (y.s_floats > s->s_floats)
      s->s_floats = y.s_floats;
  }
  s->count = count;
  return 1;
}

#endif
