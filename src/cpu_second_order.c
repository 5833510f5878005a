/* Exact second-order passes of an MLP on the CPU: forward-mode tangents and
 * Hessian-vector products of the critic loss by Pearlmutter's R-operator
 * (derivatives.md). All K directions go through one pass: the R-quantities
 * are stacked (n, K, d) (see include/blpo/second_order.h) so that each line
 * of the recurrences is one GEMM over all directions; agents run one after
 * another and each GEMM splits its output between the threads
 * (blpo_cpu_sgemm_mt). The Nystrom rows and the dense Hessian (unit
 * directions) skip the terms that are zero for a unit vector (unit_dir). */
#include "blpo/second_order.h"

#include <limits.h>
#include <omp.h>
#include <string.h>

#include "blpo/config.h"
#include "cpu_backend_internal.h" /* BLPO_CPU_VECTOR_CLONES */
#include "cpu_gemm.h"

/* Where direction k's U_l (d_l x d_{l-1}, row-major) and c_l (d_l) live:
 * either the caller's (K, Np) array, or the packed layout of the HVP
 * workspace, where each layer's blocks of all K directions are adjacent:
 *   [U_1 (K, d_1, d_0) | c_1 (K, d_1) | U_2 (K, d_2, d_1) | c_2 (K, d_2) | ...]
 * so U_l of all directions is one (K*d_l x d_{l-1}) matrix at K * w_off[l]
 * and c_l of all directions one (K*d_l) vector at K * b_off[l]. */
typedef struct {
  const float *base;
  int packed;
} dir_view;

static const float *dir_w(const blpo_mlp *m, dir_view dv, int K, int l, int k) {
  size_t blk = (size_t)m->dims[l + 1] * m->dims[l];
  return dv.packed ? dv.base + (size_t)K * m->w_off[l] + (size_t)k * blk
                   : dv.base + (size_t)k * m->num_params + m->w_off[l];
}

static const float *dir_b(const blpo_mlp *m, dir_view dv, int K, int l, int k) {
  return dv.packed ? dv.base + (size_t)K * m->b_off[l] + (size_t)k * m->dims[l + 1]
                   : dv.base + (size_t)k * m->num_params + m->b_off[l];
}

/* A unit direction e_j of the Nystrom rows: the entry of layer `layer`'s
 * weight (row a, column b) or, with b < 0, its bias a; layer = INT_MAX for
 * an index outside the MLP part (a zero direction). Everything of such a
 * direction below its layer is zero: R{z_l} = R{h_l} = 0 for l < layer,
 * R{z_layer} is column a alone (h_{layer-1}[:, b], or 1), and U_l = 0 for
 * l != layer. The HVP skips those zero terms instead of multiplying them
 * out: for the critic's 64-wide middle layer, where most sampled indices
 * fall, that is four of the six large GEMMs. Only exact zeros are skipped
 * (each kept sum runs in the same order), so the rows are the same numbers
 * as from the dense passes. */
typedef struct {
  int layer, a, b;
} unit_dir;

/* Tangent forward of one agent. w (Np); x (n, d_0); a (n, A) activations;
 * rh (n*K, A): per layer R{h_l} (n, K, d_l) at blpo_mlp_act_offset(m, l, K*n).
 * units (K) or NULL: the directions are those unit vectors (dv unused). */
static void tangent_agent(const blpo_mlp *m, const float *w, const float *x, int n, const float *a,
                          int K, dir_view dv, const unit_dir *units, float *rh) {
  int L = m->num_layers;
  for (int l = 0; l < L; l++) {
    int din = m->dims[l], dout = m->dims[l + 1];
    const float *hin = l == 0 ? x : a + blpo_mlp_act_offset(m, l, n);          // (n, din)
    const float *rhin = l == 0 ? NULL : rh + blpo_mlp_act_offset(m, l, K * n); // (n, K, din)
    float *rout = rh + blpo_mlp_act_offset(m, l + 1, K * n);                   // (n, K, dout)
    if (units) {
      /* R{z_l} = 0 below a direction's layer, column a at it, R{h_{l-1}} W_l^T above */
#pragma omp parallel for schedule(static)
      for (int r = 0; r < n; r++)
        memset(rout + (size_t)r * K * dout, 0, sizeof(float) * (size_t)K * dout);
      for (int k = 0; k < K; k++) {
        const unit_dir *u = &units[k];
        if (rhin && u->layer < l)
          blpo_cpu_sgemm_mt(BLPO_GEMM_N, BLPO_GEMM_T, n, dout, din, rhin + (size_t)k * din, K * din,
                            w + m->w_off[l], din, 1, rout + (size_t)k * dout, K * dout);
        else if (u->layer == l)
          for (int r = 0; r < n; r++)
            rout[((size_t)r * K + k) * dout + u->a] +=
                u->b < 0 ? 1.0f : hin[(size_t)r * din + u->b];
      }
    } else {
      /* c_l broadcast over rows first, then both GEMMs accumulate (beta = 1). */
#pragma omp parallel for schedule(static)
      for (int r = 0; r < n; r++)
        for (int k = 0; k < K; k++)
          memcpy(rout + ((size_t)r * K + k) * dout, dir_b(m, dv, K, l, k), sizeof(float) * dout);
      /* R{h_{l-1}} W_l^T: the weight is shared, so all n*K stacked rows at once
       * (R{h_0} = 0: skipped on the first layer). */
      if (rhin)
        blpo_cpu_sgemm_mt(BLPO_GEMM_N, BLPO_GEMM_T, n * K, dout, din, rhin, din, w + m->w_off[l],
                          din, 1, rout, dout);
    }
    /* h_{l-1} [U^(1); ...; U^(K)]^T: (n x din)(din x K*dout) lands as (n, K, dout). */
    if (units) {
      /* done above: U_l is one entry, of the directions at layer l only */
    } else if (dv.packed || K == 1) {
      blpo_cpu_sgemm_mt(BLPO_GEMM_N, BLPO_GEMM_T, n, K * dout, din, hin, din, dir_w(m, dv, K, l, 0),
                        din, 1, rout, K * dout);
    } else {
      /* Unpacked dirs are Np apart, not d_l*d_{l-1}: one GEMM per column block. */
      for (int k = 0; k < K; k++)
        blpo_cpu_sgemm_mt(BLPO_GEMM_N, BLPO_GEMM_T, n, dout, din, hin, din, dir_w(m, dv, K, l, k),
                          din, 1, rout + (size_t)k * dout, K * dout);
    }
    if (l < L - 1) {
      /* R{h_l} = phi'(z_l) R{z_l}, phi' read from h_l = phi(z_l), broadcast over k. */
      const float *hout = a + blpo_mlp_act_offset(m, l + 1, n); // (n, dout)
      int tanh_act = m->activation == BLPO_ACT_TANH;
#pragma omp parallel for schedule(static)
      for (int r = 0; r < n; r++) {
        const float *h = hout + (size_t)r * dout;
        for (int k = 0; k < K; k++) {
          float *t = rout + ((size_t)r * K + k) * dout;
          if (tanh_act) {
            for (int o = 0; o < dout; o++)
              t[o] *= 1.0f - h[o] * h[o];
          } else {
            for (int o = 0; o < dout; o++)
              t[o] = h[o] > 0.0f ? t[o] : 0.0f;
          }
        }
      }
    }
  }
}

void blpo_cpu_mlp_tangent(const blpo_mlp *m, int P, const float *params, const float *x, int n,
                          const float *acts, int K, const float *dirs, float *rh, float *ry) {
  size_t np = m->num_params, A = m->act_floats_per_row;
  int dL = m->dims[m->num_layers];
  /* agents side by side once there are as many as threads: each one's GEMMs
   * then run unsplit, with no fork and join per GEMM */
  BLPO_CPU_FOR_AGENTS(blpo_cpu_agents_parallel(P, 1), P, {
    const float *w = params + (size_t)p * np;         // (Np)
    const float *xp = x + (size_t)p * n * m->dims[0]; // (n, d_0)
    const float *ap = acts + (size_t)p * n * A;       // (n, A)
    dir_view dv = {dirs + (size_t)p * K * np, 0};     // (K, Np)
    float *rhp = rh + (size_t)p * K * n * A;          // (n*K, A)
    float *ryp = ry + (size_t)p * K * n * dL;         // (K, n, d_L)
    tangent_agent(m, w, xp, n, ap, K, dv, NULL, rhp);
    /* The head block is (n, K, d_L); the seam wants (K, n, d_L). */
    const float *head = rhp + blpo_mlp_act_offset(m, m->num_layers, K * n); // (n, K, d_L)
    for (int k = 0; k < K; k++)
      for (int r = 0; r < n; r++)
        memcpy(ryp + ((size_t)k * n + r) * dL, head + ((size_t)r * K + k) * dL, sizeof(float) * dL);
  });
}

/* ---- Hessian-vector products ---------------------------------------------- */

/* The floats of one unit_dir descriptor: they sit at the tail of the HVP
 * workspace (after hvp_agent's buffers) so that the training loop's rows
 * allocate nothing. */
#define UNIT_DIR_FLOATS 3
_Static_assert(sizeof(unit_dir) == UNIT_DIR_FLOATS * sizeof(float) &&
                   _Alignof(unit_dir) <= _Alignof(float),
               "unit_dir must pack into the float workspace");

/* hvp_agent's buffers at (n, K), ahead of the unit_dir tail. */
static size_t hvp_agent_floats(const blpo_mlp *m, int n, int K) {
  return blpo_hvp_pass_floats(m, n, K);
}

size_t blpo_cpu_critic_hvp_work_floats(const blpo_mlp *m, int n, int K) {
  return hvp_agent_floats(m, n, K) + UNIT_DIR_FLOATS * (size_t)K;
}

/* The K unit_dir descriptors of a call at (n, K) in its workspace. The
 * workspace is allocated storage with no declared type, so storing
 * descriptors there (and floats again in a later call) is well defined. */
static unit_dir *work_units(const blpo_mlp *m, int n, int K, float *work) {
  return (unit_dir *)(void *)(work + hvp_agent_floats(m, n, K));
}

/* Directions (K, Np) into the packed layout (see dir_view). up (K * Nm). */
static void pack_dirs(const blpo_mlp *m, int K, const float *dirs, float *up) {
  for (int l = 0; l < m->num_layers; l++) {
    size_t dout = (size_t)m->dims[l + 1], blk = dout * m->dims[l];
    for (int k = 0; k < K; k++) {
      const float *d = dirs + (size_t)k * m->num_params;
      memcpy(up + (size_t)K * m->w_off[l] + k * blk, d + m->w_off[l], sizeof(float) * blk);
      memcpy(up + (size_t)K * m->b_off[l] + k * dout, d + m->b_off[l], sizeof(float) * dout);
    }
  }
}

/* Unit directions e_j, j = idx[k] (or j0 + k when idx is NULL), straight into
 * the packed layout, and where each one sits (units, K); j outside the MLP
 * part leaves direction k zero. up (K * Nm). */
static void unit_dirs(const blpo_mlp *m, int K, const int32_t *idx, int64_t j0, float *up,
                      unit_dir *units) {
  memset(up, 0, sizeof(float) * (size_t)K * m->num_mlp_params);
  for (int k = 0; k < K; k++) {
    int64_t j = idx ? (int64_t)idx[k] : j0 + k;
    units[k] = (unit_dir){INT_MAX, 0, -1};
    if (j < 0 || (size_t)j >= m->num_mlp_params)
      continue;
    int l = m->num_layers - 1;
    while (l > 0 && (size_t)j < m->w_off[l])
      l--;
    size_t din = (size_t)m->dims[l], dout = (size_t)m->dims[l + 1], blk = dout * din;
    if ((size_t)j < m->b_off[l]) {
      size_t e = (size_t)j - m->w_off[l];
      up[(size_t)K * m->w_off[l] + k * blk + e] = 1.0f;
      units[k] = (unit_dir){l, (int)(e / din), (int)(e % din)};
    } else {
      size_t e = (size_t)j - m->b_off[l];
      up[(size_t)K * m->b_off[l] + k * dout + e] = 1.0f;
      units[k] = (unit_dir){l, (int)e, -1};
    }
  }
}

/* Packed results (K * Nm) back to (K, Np), the `extra` tail zeroed. */
static void unpack_out(const blpo_mlp *m, int K, const float *hp, float *out) {
  size_t np = m->num_params;
  for (int l = 0; l < m->num_layers; l++) {
    size_t dout = (size_t)m->dims[l + 1], blk = dout * m->dims[l];
    for (int k = 0; k < K; k++) {
      float *o = out + (size_t)k * np;
      memcpy(o + m->w_off[l], hp + (size_t)K * m->w_off[l] + k * blk, sizeof(float) * blk);
      memcpy(o + m->b_off[l], hp + (size_t)K * m->b_off[l] + k * dout, sizeof(float) * dout);
    }
  }
  for (int k = 0; k < K; k++)
    memset(out + (size_t)k * np + m->num_mlp_params, 0, sizeof(float) * m->num_extra);
}

/* out[j] = sum over r < n of g[r * ld + j], r in order, for j in [j0, j1). */
BLPO_CPU_VECTOR_CLONES
static void col_sums_span(const float *restrict g, int n, size_t ld, size_t j0, size_t j1,
                          float *restrict out) {
  for (size_t j = j0; j < j1; j++)
    out[j] = 0.0f;
  for (int r = 0; r < n; r++)
    for (size_t j = j0; j < j1; j++)
      out[j] += g[(size_t)r * ld + j];
}

/* H u_k for the K directions already packed at the head of work, one agent.
 * w (Np); x (n, d_0); a (n, A); G (n, d_L); out (K, Np). units (K) or NULL:
 * the directions are those unit vectors, and their zero terms are skipped. */
static void hvp_agent(const blpo_mlp *m, const float *w, const float *x, int n, const float *a,
                      const float *G, int K, const unit_dir *units, float *out, float *work) {
  size_t nm = m->num_mlp_params, A = m->act_floats_per_row, mw = (size_t)m->max_width;
  size_t nk = (size_t)n * K;
  float *up = work;                // (K * Nm) packed directions
  float *hp = up + K * nm;         // (K * Nm) packed results
  float *rh = hp + K * nm;         // (n*K, A) R{h_l}, layer l as (n, K, d_l)
  float *rg = rh + nk * A;         // (n, K, <= w) R{g_l}
  float *rgo = rg + nk * mw;       // (n, K, <= w) R{g_{l-1}}
  float *g = rgo + nk * mw;        // (n, <= w) g_l = dLoss/dz_l
  float *q = g + (size_t)n * mw;   // (n, <= w) q = g_l W_l, then g_{l-1}
  float *tmp = q + (size_t)n * mw; // (K * Wmax) (d_l, K, d_{l-1}) GEMM output / U_l repack
  int L = m->num_layers, dL = m->dims[L];
  float s = 2.0f / (float)n;

  tangent_agent(m, w, x, n, a, K, (dir_view){up, 1}, units, rh);

  /* Head: g_L = -(2/n)(G - y), R{g_L} = (2/n) R{y}. */
  const float *y = a + blpo_mlp_act_offset(m, L, n);       // (n, d_L)
  const float *ry = rh + blpo_mlp_act_offset(m, L, K * n); // (n, K, d_L)
  for (size_t i = 0; i < (size_t)n * dL; i++)
    g[i] = -s * (G[i] - y[i]);
  for (size_t i = 0; i < nk * dL; i++)
    rg[i] = s * ry[i];

  for (int l = L - 1; l >= 0; l--) {
    int din = m->dims[l], dout = m->dims[l + 1];
    const float *W = w + m->w_off[l];                                          // (dout, din)
    const float *hin = l == 0 ? x : a + blpo_mlp_act_offset(m, l, n);          // (n, din)
    const float *rhin = l == 0 ? NULL : rh + blpo_mlp_act_offset(m, l, K * n); // (n, K, din)
    float *hw = hp + (size_t)K * m->w_off[l];                                  // (K, dout, din)
    float *hb = hp + (size_t)K * m->b_off[l];                                  // (K, dout)
    const float *uw = up + (size_t)K * m->w_off[l];                            // (K, dout, din)

    /* R{dW_l} first term R{g_l}^T h_{l-1}: R{g_l} viewed (n x K*dout) gives all
     * K blocks (K*dout x din) in one GEMM. */
    blpo_cpu_sgemm_mt(BLPO_GEMM_T, BLPO_GEMM_N, K * dout, din, n, rg, K * dout, hin, din, 0, hw,
                      din);
    /* Second term g_l^T R{h_{l-1}}: one GEMM gives (dout, K, din); the
     * direction index sits in the middle, so add it in permuted. A unit
     * direction's R{h_{l-1}} is zero unless its layer is below l. */
    if (rhin && units) {
      for (int k = 0; k < K; k++) {
        if (units[k].layer >= l)
          continue;
        blpo_cpu_sgemm_mt(BLPO_GEMM_T, BLPO_GEMM_N, dout, din, n, g, dout, rhin + (size_t)k * din,
                          K * din, 0, tmp, din);
        float *dst = hw + (size_t)k * dout * din;
        for (size_t i = 0; i < (size_t)dout * din; i++)
          dst[i] += tmp[i];
      }
    } else if (rhin) {
      blpo_cpu_sgemm_mt(BLPO_GEMM_T, BLPO_GEMM_N, dout, K * din, n, g, dout, rhin, K * din, 0, tmp,
                        K * din);
#pragma omp parallel for schedule(static)
      for (int k = 0; k < K; k++)
        for (int o = 0; o < dout; o++) {
          float *dst = hw + ((size_t)k * dout + o) * din;
          const float *src = tmp + ((size_t)o * K + k) * din;
          for (int i = 0; i < din; i++)
            dst[i] += src[i];
        }
    }
    /* R{db_l} = column sums of R{g_l} (n x K*dout): already the packed (K, dout);
     * the columns shared between the threads, each summed over r in order. */
    size_t kd = (size_t)K * dout;
    int team = kd >= 128 ? omp_get_max_threads() : 1;
    size_t per = blpo_cpu_even_piece(kd, team, 16);
#pragma omp parallel for schedule(static) if (team > 1)
    for (int b = 0; b < team; b++) {
      size_t j0 = (size_t)b * per, j1 = j0 + per < kd ? j0 + per : kd;
      if (j0 < j1)
        col_sums_span(rg, n, kd, j0, j1, hb);
    }
    if (l == 0)
      break;

    /* R{g_l} W_l over all n*K stacked rows -> (n, K, din). */
    blpo_cpu_sgemm_mt(BLPO_GEMM_N, BLPO_GEMM_N, n * K, din, dout, rg, dout, W, din, 0, rgo, din);
    if (units) {
      /* g_l U_l: a unit weight direction of layer l adds g_l[:, a] to column b */
      for (int k = 0; k < K; k++)
        if (units[k].layer == l && units[k].b >= 0)
          for (int r = 0; r < n; r++)
            rgo[((size_t)r * K + k) * din + units[k].b] += g[(size_t)r * dout + units[k].a];
    } else {
      /* g_l U_l for all k: repack U_l from (K, dout, din) to (dout, K, din) so
       * (n x dout)(dout x K*din) lands as (n, K, din). */
#pragma omp parallel for schedule(static)
      for (int o = 0; o < dout; o++)
        for (int k = 0; k < K; k++)
          memcpy(tmp + ((size_t)o * K + k) * din, uw + ((size_t)k * dout + o) * din,
                 sizeof(float) * din);
      blpo_cpu_sgemm_mt(BLPO_GEMM_N, BLPO_GEMM_N, n, K * din, dout, g, dout, tmp, K * din, 1, rgo,
                        K * din);
    }
    /* q = g_l W_l (the first-order backward before phi'). */
    blpo_cpu_sgemm_mt(BLPO_GEMM_N, BLPO_GEMM_N, n, din, dout, g, dout, W, din, 0, q, din);
    /* R{g_{l-1}} = (...) phi'(z) + q phi''(z) R{z}, g_{l-1} = q phi'(z). For tanh
     * phi''(z) R{z} = -2h(1-h^2) R{z} = -2h R{h}, so R{z} is never needed; relu
     * has phi'' = 0. */
    int tanh_act = m->activation == BLPO_ACT_TANH;
#pragma omp parallel for schedule(static)
    for (int r = 0; r < n; r++) {
      const float *h = hin + (size_t)r * din;
      float *qr = q + (size_t)r * din;
      for (int k = 0; k < K; k++) {
        float *t = rgo + ((size_t)r * K + k) * din;
        const float *rt = rhin + ((size_t)r * K + k) * din;
        if (tanh_act) {
          for (int i = 0; i < din; i++)
            t[i] = t[i] * (1.0f - h[i] * h[i]) - 2.0f * h[i] * qr[i] * rt[i];
        } else {
          for (int i = 0; i < din; i++)
            t[i] = h[i] > 0.0f ? t[i] : 0.0f;
        }
      }
      for (int i = 0; i < din; i++)
        qr[i] = tanh_act ? qr[i] * (1.0f - h[i] * h[i]) : (h[i] > 0.0f ? qr[i] : 0.0f);
    }
    float *sw = rg;
    rg = rgo;
    rgo = sw;
    sw = g;
    g = q;
    q = sw;
  }
  unpack_out(m, K, hp, out);
}

void blpo_cpu_critic_hvp(const blpo_mlp *m, int P, const float *params, const float *x, int n,
                         const float *acts, const float *target, int K, const float *dirs,
                         float *hv, float *work) {
  size_t np = m->num_params, A = m->act_floats_per_row,
         ws = blpo_cpu_critic_hvp_work_floats(m, n, K);
  int dL = m->dims[m->num_layers];
  /* agents side by side once there are as many as threads: each one's GEMMs
   * then run unsplit, with no fork and join per GEMM */
  BLPO_CPU_FOR_AGENTS(blpo_cpu_agents_parallel(P, 1), P, {
    float *wk = work + (size_t)p * ws;
    pack_dirs(m, K, dirs + (size_t)p * K * np, wk);
    hvp_agent(m, params + (size_t)p * np, x + (size_t)p * n * m->dims[0], n,
              acts + (size_t)p * n * A, target + (size_t)p * n * dL, K, NULL,
              hv + (size_t)p * K * np, wk);
  });
}

void blpo_cpu_critic_hvp_rows(const blpo_mlp *m, int P, const float *params, const float *x, int n,
                              const float *acts, const float *target, int K, const int32_t *idx,
                              float *rows, float *work) {
  size_t np = m->num_params, A = m->act_floats_per_row,
         ws = blpo_cpu_critic_hvp_work_floats(m, n, K);
  int dL = m->dims[m->num_layers];
  /* agents side by side once there are as many as threads: each one's GEMMs
   * then run unsplit, with no fork and join per GEMM */
  BLPO_CPU_FOR_AGENTS(blpo_cpu_agents_parallel(P, 1), P, {
    float *wk = work + (size_t)p * ws;
    unit_dir *units = work_units(m, n, K, wk);
    unit_dirs(m, K, idx + (size_t)p * K, 0, wk, units);
    hvp_agent(m, params + (size_t)p * np, x + (size_t)p * n * m->dims[0], n,
              acts + (size_t)p * n * A, target + (size_t)p * n * dL, K, units,
              rows + (size_t)p * K * np, wk);
  });
}

void blpo_cpu_critic_hessian_dense(const blpo_mlp *m, const float *params, const float *x, int n,
                                   const float *acts, const float *target, int chunk, float *hess,
                                   float *work) {
  size_t np = m->num_params;
  if (chunk < 1)
    chunk = 1;
  for (size_t c0 = 0; c0 < np; c0 += (size_t)chunk) {
    int K = (int)(np - c0 < (size_t)chunk ? np - c0 : (size_t)chunk);
    unit_dir *units = work_units(m, n, K, work);
    unit_dirs(m, K, NULL, (int64_t)c0, work, units);
    hvp_agent(m, params, x, n, acts, target, K, units, hess + c0 * np, work);
  }
}
