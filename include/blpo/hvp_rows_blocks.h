/* The Nystrom sketch's Hessian rows (backend.h critic_hvp_rows) as block
 * programs for host and device, in the manner of ppo_blocks.h, whose layer
 * staging and register tiles they reuse. The CUDA backend runs them as two
 * kernels (kernels/hvp_rows_cuda.cu) instead of the cuBLAS path's ~34
 * launches (per layer a bias broadcast, up to three GEMMs and an activation
 * forward; per layer up to five GEMMs, a permute, a repack, column sums and
 * an activation backward; packing and unpacking).
 *
 * Row k of the sketch is H e_j, j = idx[k], of the critic loss
 * g(w) = (1/n) sum_r (G_r - V(x_r))^2, by the R-operator along the unit
 * direction e_j (derivatives.md): the tangent forward R{h_l}, the head
 * R{g_L} = (2/n) R{y}, and the second-order backward whose R{dW_l}, R{db_l}
 * are the row. The sums over the n minibatch rows split into chunks of R
 * rows:
 *   rows    one block per (agent, up to cpb consecutive chunks): the
 *           critic's weights transposed in shared memory once; per chunk its
 *           inputs, activations and targets, then for all K directions side
 *           by side (virtual rows r * K + k, the layout of second_order.h)
 *           the tangents, the head and the backward pass, the chunk's part
 *           of the K rows added into the block's partial (K, Nc);
 *   reduce  the partials summed per element in block order into the rows
 *           (P, K, Nc). With one block per agent the rows program writes the
 *           rows itself and reduce is not launched.
 * A unit direction is zero below its layer: its R{h_l} there are stored as
 * exact zeros, and the W_l R{h_l} term of the tangent and the g R{h_l} term
 * of R{dW_l} are skipped where R{h_l} is zero, as the CPU's unit_dir does. Sums run in a fixed
 * order (rows of a chunk in order, then the block's chunks, then the blocks), so results are
 * reproducible bit for bit; they are not the CPU op's bits (its GEMMs add the two R{dW} terms
 * separately), tests/test_hvp_rows_blocks.c compares to tolerance.
 *
 * The partials live in the caller's HVP workspace (critic_hvp_work floats
 * per agent), so the number of blocks per agent is what fits there (and at
 * most BLPO_HVR_MAX_BLOCKS); each block then takes several chunks.
 *
 * run.precision tf32 (the layout's tf32): on layers whose widths are
 * multiples of 16, at 16 or 32 rows per chunk, the backward's two large
 * products, R{g_l} = R{g_{l+1}} W_l (over the rows x K virtual rows) and
 * the K sums R{dW_l}, run on the TF32 tensor-core tiles of tc_tile.h
 * (blpo_hvr_backward_tc); the tangents, the first-order pass and the small
 * layers stay on the fp32 tiles. The rows x K arrays then take a pitch of
 * 8 mod 16 (blpo_hvr_pk), so that each direction's rows are 32-byte
 * aligned; for the 64-64 critic at K = 5 that fits 16 rows per chunk
 * (141 KiB), not 32. */
#ifndef BLPO_HVP_ROWS_BLOCKS_H
#define BLPO_HVP_ROWS_BLOCKS_H

#include "ppo_blocks.h"

/* Blocks per agent at most: enough to fill an H100 at one agent (132 SMs),
 * few enough that the partials the reduce kernel reads stay small (128 x K x
 * Nc floats: 11.6 MB for the 64-64 critic at K = 5). A guess, to be
 * measured. */
#define BLPO_HVR_MAX_BLOCKS 128

/* Pitches: P for the rows' arrays, Pk for those of rows x K directions
 * (read by the scalar tiles, blpo_mbf_tile_hw1 / _gw1; with TF32 tiles also
 * by WMMA), blpo_hvr_pk; ppo_blocks.h. */
typedef struct {
  blpo_mbf_net c; /* weights; h[0..L-1] layer inputs, h[L] the value y (R, pitch P(d_l)) */
  int n, R, K, O;
  int tf32;                      /* layers with c.tc[l] on TF32 tiles (blpo_hvr_backward) */
  int chunks, blocks, cpb;       /* chunks of R rows; blocks per agent; chunks per block */
  int direct;                    /* one block per agent: the rows written in place */
  int s_tgt;                     /* (R) targets */
  int s_rh[BLPO_MAX_LAYERS + 1]; /* l = 1..L: R{h_l} (R * K, pitch Pk(d_l)) */
  int s_g[2];                    /* g_l = d loss / d z_l, ping-pong (R, pitch P(mw)) */
  int s_q;                       /* g_l W_l (R, pitch P(mw)) */
  int s_rg[2];                   /* R{g_l}, ping-pong (R * K, pitch Pk(mw)) */
  int s_unit;                    /* (K, 3): each direction's layer, a, b as floats */
  int s_floats;                  /* shared floats of the rows kernel */
  int cols;                      /* one partial: K * Nc floats */
  size_t part_stride;            /* floats between two agents' partials */
  size_t act_off[BLPO_MAX_LAYERS + 1], act_stride; /* as blpo_bwd_layout */
} blpo_hvr_layout;

typedef struct {
  blpo_hvr_layout lay;
  const float *params, *x, *acts, *target; /* (P, Nc), (P, n, O), (P, n, A), (P, n) */
  const int32_t *idx;                      /* (P, K) parameter indices */
  float *rows;                             /* (P, K, Nc) */
  float *parts;                            /* (P, part_stride): (blocks, cols) each */
} blpo_hvr_args;

/* The row pitch Pk(w) of an array of rows x K directions. fp32:
 * blpo_mbf_pitch_k (odd). TF32: 8 mod 16, so that a direction's rows (K
 * rows apart) start 32-byte aligned, as WMMA's loads need, and 16 rows of
 * a tile fall on 4 distinct bank offsets (0, 8, 16, 24). */
BLPO_HD int blpo_hvr_pk(const blpo_hvr_layout *y, int w) {
  return y->tf32 ? (w + 7) / 16 * 16 + 8 : blpo_mbf_pitch_k(w);
}

/* The layout for n rows, K directions, R rows per chunk, and partials of at
 * most work_floats floats per agent; tf32: the layers whose widths and R
 * are multiples of 16 (blpo_mbf_tc_layer) on TF32 tiles, with the pitches
 * and the dW scratch they need. Returns the rows kernel's shared floats. */
static inline int blpo_hvr_layout_init(blpo_hvr_layout *y, const blpo_mlp *critic, int n, int K,
                                       int R, size_t work_floats, int tf32) {
  memset(y, 0, sizeof(*y));
  int off = blpo_mbf_net_init(&y->c, critic, 0, tf32, R);
  const int L = critic->num_layers, mw = critic->max_width;
  for (int l = 0; l < L; l++)
    y->tf32 |= y->c.tc[l];
  y->n = n, y->R = R, y->K = K, y->O = critic->dims[0];
  for (int l = 0; l <= L; l++) {
    y->c.h[l] = blpo_mbf_place(&off, R, blpo_mbf_pitch(critic->dims[l]));
    y->act_off[l] = blpo_mlp_act_offset(critic, l, n);
  }
  y->act_stride = (size_t)n * critic->act_floats_per_row;
  y->s_tgt = off, off += R;
  for (int l = 1; l <= L; l++)
    y->s_rh[l] = blpo_mbf_place(&off, R * K, blpo_hvr_pk(y, critic->dims[l]));
  y->s_g[0] = blpo_mbf_place(&off, R, blpo_mbf_pitch(mw));
  y->s_g[1] = blpo_mbf_place(&off, R, blpo_mbf_pitch(mw));
  y->s_q = blpo_mbf_place(&off, R, blpo_mbf_pitch(mw));
  y->s_rg[0] = blpo_mbf_place(&off, R * K, blpo_hvr_pk(y, mw));
  y->s_rg[1] = blpo_mbf_place(&off, R * K, blpo_hvr_pk(y, mw));
  y->s_unit = off, off += 3 * K;
  blpo_mbf_tcw_place(&off, &y->c, NULL);
  y->s_floats = off;
  y->cols = K * y->c.num_params;
  y->chunks = (n + R - 1) / R;
  size_t fit = work_floats / (size_t)y->cols;
  size_t b = (size_t)y->chunks;
  if (b > BLPO_HVR_MAX_BLOCKS)
    b = BLPO_HVR_MAX_BLOCKS;
  if (b > fit)
    b = fit;
  if (b == 0)
    b = 1; /* all chunks in one block: no partials needed */
  y->cpb = (int)((y->chunks + b - 1) / b);
  y->blocks = (y->chunks + y->cpb - 1) / y->cpb; /* no empty blocks */
  y->direct = y->blocks == 1;
  y->part_stride = work_floats;
  return off;
}

/* The layout with the most rows per chunk (BLPO_MBF_ROWS, halved down to 4)
 * whose shared memory fits smem_bytes, for a critic the layout holds (one
 * output, no extra parameters) and K directions; its rows per chunk, or 0
 * (the cuBLAS path). tf32: first the TF32 layouts at 32 and 16 rows per
 * chunk (the 64-64 critic at K = 5 fits at 16), if one fits and puts a
 * layer on the tiles; the partials' workspace does not depend on R. */
static inline int blpo_hvr_choose(blpo_hvr_layout *y, const blpo_mlp *critic, int P, int n, int K,
                                  size_t work_floats, size_t smem_bytes, int tf32) {
  if (n <= 0 || K <= 0 || K > 1024 /* int offsets; far past what fits */ || P <= 0 || P > 65535 ||
      !blpo_mbf_net_ok(critic, critic->dims[0], 1, 0) ||
      (size_t)K * critic->num_params > ((size_t)1 << 30))
    return 0;
  for (int R = BLPO_MBF_ROWS; tf32 && R >= BLPO_TC_N; R /= 2)
    if (sizeof(float) * (size_t)blpo_hvr_layout_init(y, critic, n, K, R, work_floats, 1) <=
            smem_bytes &&
        y->tf32)
      return R;
  for (int R = BLPO_MBF_ROWS; R >= 4; R /= 2)
    if (sizeof(float) * (size_t)blpo_hvr_layout_init(y, critic, n, K, R, work_floats, 0) <=
        smem_bytes)
      return R;
  return 0;
}

/* ---- block programs (host and device) --------------------------------- */

/* rows: phases of one chunk: load, tangents (L), head, backward (2L - 1). */
BLPO_HD int blpo_hvr_chunk_phases(const blpo_hvr_layout *y) { return 3 * y->c.L + 1; }

/* rows: stage, then cpb chunks. */
BLPO_HD int blpo_hvr_rows_phases(const blpo_hvr_layout *y) {
  return 1 + y->cpb * blpo_hvr_chunk_phases(y);
}

/* Layer l's tangent for the rows x K virtual rows, direction d's R{z_{l+1}}:
 * zero below its layer (l < layer), the unit term at it (column a: h_l[b],
 * or 1 for a bias), W_l R{h_l} above it; then phi' below the head. Tiles of
 * TR rows of one direction x TC outputs (as blpo_mbf_forward), so that a
 * direction's zero terms are skipped whole: for the 64-64 critic most
 * sampled indices are in the middle layer, whose 64 x 64 W R{h} is then
 * never multiplied out. Zeros are still stored: the backward pass reads
 * R{h_l} in its phi'' term. */
BLPO_HD void blpo_hvr_tangent(const blpo_hvr_layout *y, int l, int rows, float *sm, int tid) {
  enum { TR = BLPO_MBF_TR, TC = BLPO_MBF_TC };
  const blpo_mbf_net *t = &y->c;
  const int K = y->K, din = t->dims[l], dout = t->dims[l + 1], last = l == t->L - 1;
  const int ip = blpo_mbf_pitch(din), op = blpo_mbf_pitch(dout), wp = t->wp[l];
  const int ipk = blpo_hvr_pk(y, din), opk = blpo_hvr_pk(y, dout); /* R{h}'s pitches */
  const int JT = (dout + TC - 1) / TC, RT = (rows + TR - 1) / TR;
  const float *rin = sm + y->s_rh[l], *wt = sm + t->w_dst[l];
  const float *hin = sm + t->h[l], *hout = sm + t->h[l + 1], *unit = sm + y->s_unit;
  float *out = sm + y->s_rh[l + 1];
  for (int e = tid; e < K * RT * JT; e += BLPO_MBF_THREADS) {
    const int d = e / (RT * JT), q = e % (RT * JT), rb = (q / JT) * TR, jt = q % JT;
    const int ul = (int)unit[3 * d], ua = (int)unit[3 * d + 1], ub = (int)unit[3 * d + 2];
    int j[TC], rr[TR];
    float acc[TR][TC];
    for (int c = 0; c < TC; c++)
      j[c] = blpo_mbf_imin(jt + c * JT, dout - 1);
    for (int s = 0; s < TR; s++)
      rr[s] = (blpo_mbf_imin(rb + s, rows - 1) * K + d) * ipk;
    for (int s = 0; s < TR; s++)
      for (int c = 0; c < TC; c++)
        acc[s][c] = 0.0f;
    if (ul < l) /* R{h_l} is zero unless the direction's layer is below l */
      blpo_mbf_tile_hw1(rin, rr, wt, wp, j, din, acc);
    for (int s = 0; s < TR; s++) {
      const int r = rb + s;
      if (r >= rows)
        continue;
      for (int c = 0; c < TC; c++) {
        const int jj = jt + c * JT;
        if (jj >= dout)
          continue;
        float v = acc[s][c];
        if (ul == l && jj == ua)
          v += ub < 0 ? 1.0f : hin[r * ip + ub];
        if (!last) { /* R{h} = phi'(z) R{z}, phi' from h = phi(z) */
          const float h = hout[r * op + jj];
          v = blpo_activate_back(t->activation, h, v);
        }
        out[(r * K + d) * opk + jj] = v;
      }
    }
  }
}

/* Layer l > 0's first-order backward: q = g_{l+1} W_l (rows, pitch P(din))
 * and g_l = q phi'(z_l) from g_{l+1} (rows, pitch P(dout)). Tiles of TR
 * rows x TC inputs, as blpo_mbf_backward's d/dz_l; q is kept for the phi''
 * term of R{g_l}. */
BLPO_HD void blpo_hvr_first_order(const blpo_hvr_layout *y, int l, int rows, float *sm, int tid) {
  enum { TR = BLPO_MBF_TR, TC = BLPO_MBF_TC };
  const blpo_mbf_net *t = &y->c;
  const int din = t->dims[l], dout = t->dims[l + 1];
  const int gp = blpo_mbf_pitch(dout), hp = blpo_mbf_pitch(din), wp = t->wp[l];
  const int IT = (din + TC - 1) / TC, RT = (rows + TR - 1) / TR;
  const float *g = sm + y->s_g[(l + 1) % 2], *hin = sm + t->h[l], *wt = sm + t->w_dst[l];
  float *q = sm + y->s_q, *gout = sm + y->s_g[l % 2];
  for (int e = tid; e < RT * IT; e += BLPO_MBF_THREADS) {
    const int r0 = (e / IT) * TR, it = e % IT;
    int i[TC], rr[TR];
    float acc[TR][TC];
    for (int c = 0; c < TC; c++)
      i[c] = blpo_mbf_imin(it + c * IT, din - 1);
    for (int k = 0; k < TR; k++)
      rr[k] = blpo_mbf_imin(r0 + k, rows - 1) * gp;
    for (int k = 0; k < TR; k++)
      for (int c = 0; c < TC; c++)
        acc[k][c] = 0.0f;
    blpo_mbf_tile_gw(g, rr, wt, wp, i, dout, acc);
    for (int k = 0; k < TR; k++)
      for (int c = 0; c < TC; c++)
        if (r0 + k < rows && it + c * IT < din) {
          const int o = (r0 + k) * hp + it + c * IT;
          const float h = hin[o], s = acc[k][c];
          q[o] = s;
          gout[o] = blpo_activate_back(t->activation, h, s);
        }
  }
}

/* R{g_l} of virtual row v = r K + d at input ii from its product s = sum_j
 * R{g}[v][j] W_l[j][ii]: direction d's unit term (a weight of this layer,
 * W_l[a][ii]: g[r][a]), then tanh's t (1 - h^2) - 2 h q R{h_l} or relu's
 * h > 0 ? t : 0. The fp32 items and the TF32 tiles of blpo_hvr_backward
 * both finish their elements here. */
BLPO_HD float blpo_hvr_rg_finish(const blpo_hvr_layout *y, int l, const float *sm, int v, int ii,
                                 float s) {
  const blpo_mbf_net *t = &y->c;
  const int K = y->K, r = v / K, d = v % K;
  const int gp = blpo_mbf_pitch(t->dims[l + 1]), hp = blpo_mbf_pitch(t->dims[l]);
  const float *unit = sm + y->s_unit + 3 * d;
  if ((int)unit[0] == l && ii == (int)unit[2])
    s += sm[y->s_g[(l + 1) % 2] + r * gp + (int)unit[1]];
  const float h = sm[t->h[l] + r * hp + ii];
  if (t->activation == BLPO_ACT_TANH)
    return s * (1.0f - h * h) - 2.0f * h * sm[y->s_q + r * hp + ii] *
                                    sm[y->s_rh[l] + v * blpo_hvr_pk(y, t->dims[l]) + ii];
  return h > 0.0f ? s : 0.0f;
}

/* blpo_hvr_backward's TF32 part for layer l: warp w takes the 16 x 16
 * tiles w, w + 8, ... of
 *   R{g_l} (for l > 0): the virtual rows' (rows K, din), R{g} (rows K,
 *     dout) times W_l (dout, din), read column-major from W_l^T, then the
 *     unit term and phi' (or tanh's phi'' term) over the tile, as the fp32
 *     items; a tile's virtual rows past rows K are computed, not finished;
 *   R{dW_l} (dwt: the rows a multiple of 8): per direction d, (dout, din),
 *     R{g}_d^T (its virtual rows r K + d, column-major at pitch K Pk) times
 *     h_l, plus, for a direction below l, g^T times R{h_l}_d; through the
 *     warp's scratch into the partial (stored in the block's first chunk,
 *     else added). */
BLPO_HD void blpo_hvr_backward_tc(const blpo_hvr_layout *y, int l, int rows, int dwt, float *part,
                                  int first, float *sm, int tid) {
  const blpo_mbf_net *t = &y->c;
  const int K = y->K, Nc = t->num_params, din = t->dims[l], dout = t->dims[l + 1];
  const int gp = blpo_mbf_pitch(dout), hp = blpo_mbf_pitch(din), wp = t->wp[l], vrows = rows * K;
  const int gpk = blpo_hvr_pk(y, dout), hpk = blpo_hvr_pk(y, din);
  const float *g = sm + y->s_g[(l + 1) % 2], *rg = sm + y->s_rg[(l + 1) % 2];
  const float *hin = sm + t->h[l], *rhin = l > 0 ? sm + y->s_rh[l] : NULL;
  const float *wt = sm + t->w_dst[l], *unit = sm + y->s_unit;
  float *rgout = sm + y->s_rg[l % 2];
  const int N = BLPO_TC_N, NI = din / N, NJ = dout / N, lane = tid % 32;
  const int zt = l > 0 ? (vrows + N - 1) / N * NI : 0, tiles = zt + (dwt ? K * NJ * NI : 0);
  float *scr = sm + t->s_tcw + tid / 32 * N * N;
  for (int w = tid / 32; w < tiles; w += BLPO_MBF_THREADS / 32) {
    if (w < zt) {
      const int v0 = w / NI * N, n0 = w % NI * N;
      float *c = rgout + v0 * hpk + n0;
      if (!blpo_tc_tile(rg + v0 * gpk, gpk, wt + n0 * wp, wp, BLPO_TC_B_COL, dout, c, hpk, lane))
        continue;
      blpo_tc_sync();
      for (int e = lane; e < N * N; e += BLPO_TC_STRIDE) {
        float *o = c + (e / N) * hpk + e % N;
        if (v0 + e / N < vrows)
          *o = blpo_hvr_rg_finish(y, l, sm, v0 + e / N, n0 + e % N, *o);
      }
      continue;
    }
    const int u = w - zt, d = u / (NJ * NI), j0 = u / NI % NJ * N, i0 = u % NI * N;
    float *pw = part + (size_t)d * Nc + t->w_src[l];
    if (!blpo_tc_tile(rg + d * gpk + j0, K * gpk, hin + i0, hp, BLPO_TC_A_COL, rows, scr, N, lane))
      continue;
    blpo_tc_sync();
    for (int e = lane; e < N * N; e += BLPO_TC_STRIDE) {
      float *o = pw + (j0 + e / N) * din + i0 + e % N;
      *o = first ? scr[e] : *o + scr[e];
    }
    if (rhin && (int)unit[3 * d] < l && /* the g R{h_l} term: directions below l */
        blpo_tc_tile(g + j0, gp, rhin + d * hpk + i0, K * hpk, BLPO_TC_A_COL, rows, scr, N, lane)) {
      blpo_tc_sync();
      for (int e = lane; e < N * N; e += BLPO_TC_STRIDE)
        pw[(j0 + e / N) * din + i0 + e % N] += scr[e];
    }
  }
}

/* Layer l's second-order backward for the rows x K virtual rows, from g_{l+1}
 * (rows, pitch P(dout)) and R{g_{l+1}} (rows * K, pitch Pk(dout)):
 *   R{dW_l}[d][j][i] = sum_r R{g}[r K + d][j] h_l[r][i] + g[r][j] R{h_l}[r K + d][i]
 *     (the second term only where direction d's layer is below l),
 *   R{db_l}[d][j]    = sum_r R{g}[r K + d][j],
 * added into the partial (K, Nc) (`first`: stored, the block's first chunk),
 * and for l > 0 R{g_l} (rows * K, pitch Pk(din)):
 *   t = sum_j R{g}[v][j] W_l[j][i] + (direction d at W_l[a][i]: g[r][a]),
 *   tanh: t (1 - h^2) - 2 h q R{h_l},  relu: h > 0 ? t : 0.
 * Three kinds of work item, as blpo_mbf_backward with scalar loads (its dW
 * tiles' inputs strided by IT; R{h} has the odd pitch): tiles of TC j x TR
 * i of R{dW_l} per direction, one R{db_l}[d][j] each, tiles of TR virtual rows x
 * TC inputs of R{g_l}. On a TF32 layer (t->tc[l]) the warps then take
 * R{g_l}'s product and, where the rows are a multiple of 8, R{dW_l}'s, on
 * the tensor cores (blpo_hvr_backward_tc). */
BLPO_HD void blpo_hvr_backward(const blpo_hvr_layout *y, int l, int rows, float *part, int first,
                               float *sm, int tid) {
  enum { TR = BLPO_MBF_TR, TC = BLPO_MBF_TC };
  const blpo_mbf_net *t = &y->c;
  const int K = y->K, Nc = t->num_params, din = t->dims[l], dout = t->dims[l + 1];
  const int gp = blpo_mbf_pitch(dout), hp = blpo_mbf_pitch(din), wp = t->wp[l], vrows = rows * K;
  const int gpk = blpo_hvr_pk(y, dout), hpk = blpo_hvr_pk(y, din); /* R{g}'s, R{h}'s */
  const float *g = sm + y->s_g[(l + 1) % 2], *rg = sm + y->s_rg[(l + 1) % 2];
  const float *hin = sm + t->h[l], *rhin = l > 0 ? sm + y->s_rh[l] : NULL;
  const float *wt = sm + t->w_dst[l], *unit = sm + y->s_unit;
  float *rgout = sm + y->s_rg[l % 2];
  const int IT = (din + TR - 1) / TR, JT = (dout + TC - 1) / TC;
  const int dwt = t->tc[l] && t->s_tcw >= 0 && rows % BLPO_TC_K == 0; /* R{dW_l} on TF32 tiles */
  const int nw = dwt ? 0 : K * JT * IT, nb = nw + K * dout;
  const int IT2 = (din + TC - 1) / TC, RT = (vrows + TR - 1) / TR;
  const int total = nb + (l > 0 && !t->tc[l] ? RT * IT2 : 0);
  for (int e = tid; e < total; e += BLPO_MBF_THREADS) {
    if (e < nw) {
      const int d = e / (JT * IT), jt = (e / IT) % JT, it = e % IT;
      const int below = rhin && (int)unit[3 * d] < l;
      int j[TC], i[TR];
      float acc[TC][TR];
      for (int c = 0; c < TC; c++)
        j[c] = blpo_mbf_imin(jt + c * JT, dout - 1);
      for (int k = 0; k < TR; k++)
        i[k] = blpo_mbf_imin(it + k * IT, din - 1);
      for (int c = 0; c < TC; c++)
        for (int k = 0; k < TR; k++)
          acc[c][k] = 0.0f;
      for (int r = 0; r < rows; r++) {
        const int v = r * K + d;
        float gv[TC];
        for (int c = 0; c < TC; c++)
          gv[c] = rg[v * gpk + j[c]];
        for (int k = 0; k < TR; k++) {
          const float h = hin[r * hp + i[k]];
          for (int c = 0; c < TC; c++)
            acc[c][k] = fmaf(gv[c], h, acc[c][k]);
        }
        if (below) {
          for (int c = 0; c < TC; c++)
            gv[c] = g[r * gp + j[c]];
          for (int k = 0; k < TR; k++) {
            const float h = rhin[v * hpk + i[k]];
            for (int c = 0; c < TC; c++)
              acc[c][k] = fmaf(gv[c], h, acc[c][k]);
          }
        }
      }
      float *pw = part + (size_t)d * Nc + t->w_src[l];
      for (int c = 0; c < TC; c++)
        for (int k = 0; k < TR; k++)
          if (jt + c * JT < dout && it + k * IT < din) {
            float *o = pw + (jt + c * JT) * din + it + k * IT;
            *o = first ? acc[c][k] : *o + acc[c][k];
          }
    } else if (e < nb) {
      const int d = (e - nw) / dout, j = (e - nw) % dout;
      float s = 0.0f;
      for (int r = 0; r < rows; r++)
        s += rg[(r * K + d) * gpk + j];
      float *o = part + (size_t)d * Nc + t->w_src[l] + dout * din + j; /* b_l follows W_l */
      *o = first ? s : *o + s;
    } else {
      const int w = e - nb, v0 = (w / IT2) * TR, it = w % IT2;
      int i[TC], vv[TR];
      float acc[TR][TC];
      for (int c = 0; c < TC; c++)
        i[c] = blpo_mbf_imin(it + c * IT2, din - 1);
      for (int k = 0; k < TR; k++)
        vv[k] = blpo_mbf_imin(v0 + k, vrows - 1) * gpk;
      for (int k = 0; k < TR; k++)
        for (int c = 0; c < TC; c++)
          acc[k][c] = 0.0f;
      blpo_mbf_tile_gw1(rg, vv, wt, wp, i, dout, acc);
      for (int k = 0; k < TR; k++) {
        const int v = v0 + k;
        if (v >= vrows)
          continue;
        for (int c = 0; c < TC; c++) {
          const int ii = it + c * IT2;
          if (ii < din)
            rgout[v * hpk + ii] = blpo_hvr_rg_finish(y, l, sm, v, ii, acc[k][c]);
        }
      }
    }
  }
  if (t->tc[l])
    blpo_hvr_backward_tc(y, l, rows, dwt, part, first, sm, tid);
}

/* Direction k's unit e_j, j = idx[k], decoded into (layer, a, b) floats as
 * the CPU's unit_dirs: W_layer[a][b], or with b = -1 the bias entry a; an
 * index outside the parameters gets layer L (below no layer, at none: a
 * zero direction, a zero row). */
BLPO_HD void blpo_hvr_unit(const blpo_mbf_net *t, int32_t j, float *u) {
  u[0] = (float)t->L, u[1] = 0.0f, u[2] = -1.0f;
  if (j < 0 || j >= t->num_mlp)
    return;
  int l = t->L - 1;
  while (l > 0 && j < t->w_src[l])
    l--;
  const int din = t->dims[l], dout = t->dims[l + 1], e = j - t->w_src[l];
  u[0] = (float)l;
  if (e < din * dout)
    u[1] = (float)(e / din), u[2] = (float)(e % din);
  else
    u[1] = (float)(e - din * dout);
}

/* rows: block b of agent p. Phases: stage (weights, directions), then per
 * chunk of the block: load, tangents (L), head, backward (2L - 1: for l =
 * L - 1 down to 0, blpo_hvr_first_order then blpo_hvr_backward, layer 0 the
 * latter alone). The last block may have fewer chunks; it idles through the
 * others' phases. */
BLPO_HD void blpo_hvr_rows(const blpo_hvr_args *a, int p, int b, int tid, int phase, float *sm) {
  const blpo_hvr_layout *y = &a->lay;
  const blpo_mbf_net *t = &y->c;
  const int L = t->L, R = y->R, K = y->K, O = y->O, n = y->n, Nc = t->num_params;
  if (phase == 0) {
    blpo_mbf_stage(t, a->params + (size_t)p * Nc, sm, tid);
    for (int d = tid; d < K; d += BLPO_MBF_THREADS)
      blpo_hvr_unit(t, a->idx[(size_t)p * K + d], sm + y->s_unit + 3 * d);
    return;
  }
  phase -= 1;
  const int cp = blpo_hvr_chunk_phases(y), ci = phase / cp, chunk = b * y->cpb + ci;
  if (chunk >= y->chunks)
    return;
  phase %= cp;
  const int r0 = chunk * R, rows = n - r0 < R ? n - r0 : R;
  if (phase == 0) { /* the chunk's inputs, activations (y = h_L included), targets */
    const float *x = a->x + ((size_t)p * n + r0) * O;
    for (int e = tid; e < rows * O; e += BLPO_MBF_THREADS)
      sm[t->h[0] + (e / O) * blpo_mbf_pitch(O) + e % O] = x[e];
    for (int l = 1; l <= L; l++) {
      const int dl = t->dims[l];
      const float *h = a->acts + (size_t)p * y->act_stride + y->act_off[l] + (size_t)r0 * dl;
      for (int e = tid; e < rows * dl; e += BLPO_MBF_THREADS)
        sm[t->h[l] + (e / dl) * blpo_mbf_pitch(dl) + e % dl] = h[e];
    }
    for (int r = tid; r < rows; r += BLPO_MBF_THREADS)
      sm[y->s_tgt + r] = a->target[(size_t)p * n + r0 + r];
    return;
  }
  phase -= 1;
  if (phase < L) {
    blpo_hvr_tangent(y, phase, rows, sm, tid);
    return;
  }
  phase -= L;
  if (phase == 0) { /* head: g_L = -(2/n)(G - y), R{g_L} = (2/n) R{y} */
    const float s = 2.0f / (float)n;
    const int vp = blpo_mbf_pitch(1), vpk = blpo_hvr_pk(y, 1);
    for (int v = tid; v < rows * K; v += BLPO_MBF_THREADS) {
      if (v < rows)
        sm[y->s_g[L % 2] + vp * v] = -s * (sm[y->s_tgt + v] - sm[t->h[L] + vp * v]);
      sm[y->s_rg[L % 2] + vpk * v] = s * sm[y->s_rh[L] + vpk * v];
    }
    return;
  }
  phase -= 1;
  const int l = L - 1 - phase / 2;
  if (l > 0 && phase % 2 == 0) {
    blpo_hvr_first_order(y, l, rows, sm, tid);
    return;
  }
  float *part = y->direct ? a->rows + (size_t)p * y->cols
                          : a->parts + (size_t)p * y->part_stride + (size_t)b * y->cols;
  blpo_hvr_backward(y, l, rows, part, ci == 0, sm, tid);
}

/* reduce: block k of agent p, one phase; column c = k * THREADS + tid of the
 * rows summed over the blocks' partials in block order, in float. */
BLPO_HD int blpo_hvr_reduce_blocks(const blpo_hvr_layout *y) {
  return (y->cols + BLPO_MBF_THREADS - 1) / BLPO_MBF_THREADS;
}

BLPO_HD void blpo_hvr_reduce(const blpo_hvr_args *a, int p, int k, int tid) {
  const blpo_hvr_layout *y = &a->lay;
  const int c = k * BLPO_MBF_THREADS + tid;
  if (c >= y->cols)
    return;
  const float *col = a->parts + (size_t)p * y->part_stride + c;
  float s = 0.0f;
  for (int b = 0; b < y->blocks; b++)
    s += col[(size_t)b * y->cols];
  a->rows[(size_t)p * y->cols + c] = s;
}

/* A kernel's arguments; the partials in work (part_stride floats per agent). */
static inline blpo_hvr_args blpo_hvr_args_of(const blpo_hvr_layout *y, const float *params,
                                             const float *x, const float *acts, const float *target,
                                             const int32_t *idx, float *rows, float *work) {
  blpo_hvr_args a;
  memset(&a, 0, sizeof(a));
  a.lay = *y;
  a.params = params, a.x = x, a.acts = acts, a.target = target, a.idx = idx;
  a.rows = rows, a.parts = work;
  return a;
}

#endif
