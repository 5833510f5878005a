// Exact second-order passes of an MLP on the device: the tangent forward pass
// and the second-order backward pass of the critic loss (derivatives.md,
// "Hessian-vector products of the critic loss"), for K directions at once.
// Line for line the recurrences of src/cpu_second_order.c: the same stacked
// (n, K, d) R-quantities, the same packed direction layout, the same GEMMs
// (one cuBLAS strided batched GEMM over the P agents each) and elementwise
// kernels for the bias broadcasts, activation derivatives and permutations.
//
// Row-major <-> column-major mapping (every GEMM here, written once): the CPU
// calls cblas_sgemm(CblasRowMajor, ta, tb, M, N, K, 1, A, lda, B, ldb, beta,
// C, ldc). A row-major (r x c) matrix with leading dimension ld occupies
// memory exactly like the column-major (c x r) matrix (its transpose) with
// the same ld. So the row-major product C = op(A) op(B) is the column-major
// product C^T = op(B)^T op(A)^T:
//   cublasSgemm(tb, ta, N, M, K, 1, B, ldb, A, lda, beta, C, ldc)
// i.e. swap the operands and M/N, keep each operand's transpose flag and all
// leading dimensions. blpo_cuda_gemm_rm does exactly that, so every call
// below is written with the CPU's row-major arguments.
#include "blpo/second_order.h"
#include "cuda_ops.h"
#include "second_order_cuda.h"

namespace {

const int kThreads = BLPO_CUDA_THREADS;

// Position of parameter j (< Nm) of direction k in the packed layout
// [U_1 (K, d_1, d_0) | c_1 (K, d_1) | U_2 (K, d_2, d_1) | c_2 (K, d_2) | ...].
__device__ __forceinline__ size_t packed_index(const blpo_mlp &m, int K, size_t j, int k) {
  int l = m.num_layers - 1;
  while (l > 0 && j < m.w_off[l])
    l--;
  size_t dout = (size_t)m.dims[l + 1], blk = dout * (size_t)m.dims[l];
  if (j < m.b_off[l])
    return (size_t)K * m.w_off[l] + (size_t)k * blk + (j - m.w_off[l]);
  return (size_t)K * m.b_off[l] + (size_t)k * dout + (j - m.b_off[l]);
}

// rout (P, agent stride rstride), block (n, K, dout): element (r, k, o) =
// c_k[o], c_k at base + p * dstride + k * kstride (dout floats).
__global__ void tan_bias_kernel(int P, int n, int K, int dout, const float *base, size_t dstride,
                                size_t kstride, float *rout, size_t rstride) {
  blpo_pdl_enter();
  size_t per = (size_t)n * K * dout;
  size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= (size_t)P * per)
    return;
  size_t p = e / per, rem = e % per;
  int k = (int)((rem / dout) % K), o = (int)(rem % dout);
  rout[p * rstride + rem] = base[p * dstride + (size_t)k * kstride + o];
}

// R{h} = phi'(z) R{z} in place: rout (P, stride rstride) block (n, K, dout),
// h (P, stride hstride) block (n, dout) = phi(z), broadcast over k.
__global__ void tan_act_kernel(int P, int n, int K, int dout, const float *h, size_t hstride,
                               float *rout, size_t rstride, int tanh_act) {
  blpo_pdl_enter();
  size_t per = (size_t)n * K * dout;
  size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= (size_t)P * per)
    return;
  size_t p = e / per, rem = e % per;
  size_t r = rem / ((size_t)K * dout);
  int o = (int)(rem % dout);
  float hv = h[p * hstride + r * dout + o];
  float *t = rout + p * rstride + rem;
  if (tanh_act)
    *t *= 1.0f - hv * hv;
  else
    *t = hv > 0.0f ? *t : 0.0f;
}

// ry (P, K, n, dL) from the head block rhead (P, stride rstride) (n, K, dL).
__global__ void tan_head_kernel(int P, int n, int K, int dL, const float *rhead, size_t rstride,
                                float *ry) {
  blpo_pdl_enter();
  size_t per = (size_t)K * n * dL;
  size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= (size_t)P * per)
    return;
  size_t p = e / per, rem = e % per;
  size_t k = rem / ((size_t)n * dL), r = (rem / dL) % n, c = rem % dL;
  ry[e] = rhead[p * rstride + (r * K + k) * dL + c];
}

// up (P, stride ws) (K * Nm) packed from dirs (P, stride dstride) (K, Np).
__global__ void pack_dirs_kernel(blpo_mlp m, int P, int K, const float *dirs, size_t dstride,
                                 float *up, size_t ws) {
  blpo_pdl_enter();
  size_t nm = m.num_mlp_params, per = (size_t)K * nm;
  size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= (size_t)P * per)
    return;
  size_t p = e / per, rem = e % per;
  int k = (int)(rem / nm);
  size_t j = rem % nm;
  up[p * ws + packed_index(m, K, j, k)] = dirs[p * dstride + (size_t)k * m.num_params + j];
}

// up (P, stride ws) (K * Nm) := 0.
__global__ void zero_dirs_kernel(int P, size_t count, float *up, size_t ws) {
  blpo_pdl_enter();
  size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= (size_t)P * count)
    return;
  up[(e / count) * ws + e % count] = 0.0f;
}

// Unit directions e_j, j = idx[p*K + k] (idx (P, K)), into the zeroed packed
// layout; j outside the MLP part leaves direction k zero.
__global__ void unit_dirs_kernel(blpo_mlp m, int P, int K, const int32_t *idx, float *up,
                                 size_t ws) {
  blpo_pdl_enter();
  size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= (size_t)P * K)
    return;
  size_t p = e / K;
  int k = (int)(e % K);
  long long j = (long long)idx[e];
  if (j < 0 || (size_t)j >= m.num_mlp_params)
    return;
  up[p * ws + packed_index(m, K, (size_t)j, k)] = 1.0f;
}

// out (P, stride ostride) (K, Np) from the packed results hp (P, stride ws);
// the extra tail is set to 0.
__global__ void unpack_out_kernel(blpo_mlp m, int P, int K, const float *hp, size_t ws, float *out,
                                  size_t ostride) {
  blpo_pdl_enter();
  size_t np = m.num_params, per = (size_t)K * np;
  size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= (size_t)P * per)
    return;
  size_t p = e / per, rem = e % per;
  int k = (int)(rem / np);
  size_t j = rem % np;
  out[p * ostride + rem] = j < m.num_mlp_params ? hp[p * ws + packed_index(m, K, j, k)] : 0.0f;
}

// Head of the second-order backward: g (n, dL) = -s (G - y), R{g} (n*K, dL) =
// s R{y}; all (P, stride ws) except G (P, n*dL) and y (P, stride ystride).
__global__ void hvp_head_kernel(int P, int n, int K, int dL, float s, const float *G,
                                const float *y, size_t ystride, const float *ry, float *g,
                                float *rg, size_t ws) {
  blpo_pdl_enter();
  size_t per = (size_t)n * K * dL;
  size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= (size_t)P * per)
    return;
  size_t p = e / per, i = e % per;
  if (i < (size_t)n * dL)
    g[p * ws + i] = -s * (G[p * n * dL + i] - y[p * ystride + i]);
  rg[p * ws + i] = s * ry[p * ws + i];
}

// hw[(k*dout + o)*din + i] += tmp[(o*K + k)*din + i], both (P, stride ws).
__global__ void permute_add_kernel(int P, int K, int dout, int din, const float *tmp, float *hw,
                                   size_t ws) {
  blpo_pdl_enter();
  size_t per = (size_t)K * dout * din;
  size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= (size_t)P * per)
    return;
  size_t p = e / per, rem = e % per;
  size_t k = rem / ((size_t)dout * din), o = (rem / din) % dout, i = rem % din;
  hw[p * ws + rem] += tmp[p * ws + (o * K + k) * din + i];
}

// tmp[(o*K + k)*din + i] = uw[(k*dout + o)*din + i], both (P, stride ws).
__global__ void repack_u_kernel(int P, int K, int dout, int din, const float *uw, float *tmp,
                                size_t ws) {
  blpo_pdl_enter();
  size_t per = (size_t)K * dout * din;
  size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= (size_t)P * per)
    return;
  size_t p = e / per, rem = e % per;
  size_t o = rem / ((size_t)K * din), k = (rem / din) % K, i = rem % din;
  tmp[p * ws + rem] = uw[p * ws + (k * dout + o) * din + i];
}

// R{g_{l-1}} = R{g_l W_l + g_l U_l} phi'(z) + q phi''(z) R{z} and g_{l-1} =
// q phi'(z), one thread per (p, r, i): rgo (n, K, din), rhin (n, K, din),
// q (n, din) all (P, stride ws); hin (P, stride hstride) (n, din) = phi(z).
__global__ void hvp_act_kernel(int P, int n, int K, int din, const float *hin, size_t hstride,
                               float *rgo, const float *rhin, float *q, size_t ws, int tanh_act) {
  blpo_pdl_enter();
  size_t per = (size_t)n * din;
  size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= (size_t)P * per)
    return;
  size_t p = e / per, rem = e % per;
  size_t r = rem / din, i = rem % din;
  float h = hin[p * hstride + rem];
  float *qr = q + p * ws + rem;
  float qv = *qr;
  for (int k = 0; k < K; k++) {
    size_t o = p * ws + (r * K + k) * din + i;
    float t = rgo[o];
    if (tanh_act)
      t = t * (1.0f - h * h) - 2.0f * h * qv * rhin[o];
    else
      t = h > 0.0f ? t : 0.0f;
    rgo[o] = t;
  }
  *qr = tanh_act ? qv * (1.0f - h * h) : (h > 0.0f ? qv : 0.0f);
}

// The tangent forward of src/cpu_second_order.c tangent_agent for all agents.
//   dirs: packed (per agent (K * Nm), stride dstride) or unpacked ((K, Np),
//   stride dstride); rh (P, stride rstride) (n*K, A) layer blocks (n, K, d_l).
void tangent_pass(blpo_cuda_impl *impl, const blpo_mlp *m, int P, const float *params,
                  const float *x, int n, const float *acts, int K, const float *dirs,
                  size_t dstride, int packed, float *rh, size_t rstride) {
  int L = m->num_layers;
  size_t np = m->num_params, A = m->act_floats_per_row;
  for (int l = 0; l < L; l++) {
    int din = m->dims[l], dout = m->dims[l + 1];
    const float *hin = l == 0 ? x : acts + blpo_mlp_act_offset(m, l, n); // (n, din)
    size_t hstride = l == 0 ? (size_t)n * m->dims[0] : (size_t)n * A;    // agent stride of hin
    const float *rhin = l == 0 ? NULL : rh + blpo_mlp_act_offset(m, l, K * n); // (n, K, din)
    float *rout = rh + blpo_mlp_act_offset(m, l + 1, K * n);                   // (n, K, dout)
    // c_l of every direction broadcast over rows; both GEMMs then accumulate.
    const float *cb = packed ? dirs + (size_t)K * m->b_off[l] : dirs + m->b_off[l];
    size_t kstride = packed ? (size_t)dout : np;
    size_t total = (size_t)P * n * K * dout;
    blpo_launch(impl, tan_bias_kernel, blpo_cuda_blocks(total, kThreads), kThreads, 0, P, n, K,
                dout, cb, dstride, kstride, rout, rstride);
    // R{h_{l-1}} W_l^T over all n*K stacked rows (R{h_0} = 0: skipped).
    if (rhin)
      blpo_cuda_gemm_rm(impl, 0, 1, n * K, dout, din, rhin, din, (long long)rstride,
                        params + m->w_off[l], din, (long long)np, 1.0f, rout, dout,
                        (long long)rstride, P);
    // h_{l-1} [U^(1); ...; U^(K)]^T lands as (n, K, dout).
    if (packed || K == 1) {
      const float *uw = packed ? dirs + (size_t)K * m->w_off[l] : dirs + m->w_off[l];
      blpo_cuda_gemm_rm(impl, 0, 1, n, K * dout, din, hin, din, (long long)hstride, uw, din,
                        (long long)dstride, 1.0f, rout, K * dout, (long long)rstride, P);
    } else {
      for (int k = 0; k < K; k++)
        blpo_cuda_gemm_rm(impl, 0, 1, n, dout, din, hin, din, (long long)hstride,
                          dirs + (size_t)k * np + m->w_off[l], din, (long long)dstride, 1.0f,
                          rout + (size_t)k * dout, K * dout, (long long)rstride, P);
    }
    if (l < L - 1) {
      const float *hout = acts + blpo_mlp_act_offset(m, l + 1, n); // (n, dout), agent stride n*A
      blpo_launch(impl, tan_act_kernel, blpo_cuda_blocks(total, kThreads), kThreads, 0, P, n, K,
                  dout, hout, (size_t)n * A, rout, rstride, m->activation == BLPO_ACT_TANH);
    }
  }
}

} // namespace

void blpo_cuda_gemm_rm(blpo_cuda_impl *impl, int ta, int tb, int M, int N, int K, const float *A,
                       int lda, long long sA, const float *B, int ldb, long long sB, float beta,
                       float *C, int ldc, long long sC, int batch) {
  const float one = 1.0f;
  cublasOperation_t oa = ta ? CUBLAS_OP_T : CUBLAS_OP_N, ob = tb ? CUBLAS_OP_T : CUBLAS_OP_N;
  cublasCheck(cublasSgemmStridedBatched(impl->cublas, ob, oa, N, M, K, &one, B, ldb, sB, A, lda, sA,
                                        &beta, C, ldc, sC, batch));
}

size_t blpo_cuda_hvp_work_floats(const blpo_mlp *m, int n, int K) {
  return blpo_hvp_pass_floats(m, n, K); // the CPU's layout (include/blpo/second_order.h)
}

void blpo_cuda_tangent(blpo_cuda_impl *impl, const blpo_mlp *m, int P, const float *params,
                       const float *x, int n, const float *acts, int K, const float *dirs,
                       float *rh, float *ry) {
  size_t A = m->act_floats_per_row, rstride = (size_t)K * n * A;
  int dL = m->dims[m->num_layers];
  tangent_pass(impl, m, P, params, x, n, acts, K, dirs, (size_t)K * m->num_params, 0, rh, rstride);
  // The head block is (n, K, d_L); the seam wants (K, n, d_L).
  size_t total = (size_t)P * K * n * dL;
  blpo_launch(impl, tan_head_kernel, blpo_cuda_blocks(total, kThreads), kThreads, 0, P, n, K, dL,
              rh + blpo_mlp_act_offset(m, m->num_layers, K * n), rstride, ry);
}

void blpo_cuda_critic_hvp_pass(blpo_cuda_impl *impl, const blpo_mlp *m, int P, const float *params,
                               const float *x, int n, const float *acts, const float *target, int K,
                               const float *dirs, size_t dirs_stride, const int32_t *idx, float *hv,
                               size_t hv_stride, float *work) {
  size_t nm = m->num_mlp_params, np = m->num_params, A = m->act_floats_per_row;
  size_t mw = (size_t)m->max_width, nk = (size_t)n * K;
  size_t ws = blpo_cuda_hvp_work_floats(m, n, K); // agent stride of every work block
  // Per-agent workspace layout, as hvp_agent in src/cpu_second_order.c.
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

  if (dirs) {
    size_t total = (size_t)P * K * nm;
    blpo_launch(impl, pack_dirs_kernel, blpo_cuda_blocks(total, kThreads), kThreads, 0, *m, P, K,
                dirs, dirs_stride, up, ws);
  } else {
    size_t total = (size_t)P * K * nm;
    blpo_launch(impl, zero_dirs_kernel, blpo_cuda_blocks(total, kThreads), kThreads, 0, P,
                (size_t)K * nm, up, ws);
    blpo_launch(impl, unit_dirs_kernel, blpo_cuda_blocks((size_t)P * K, kThreads), kThreads, 0, *m,
                P, K, idx, up, ws);
  }

  tangent_pass(impl, m, P, params, x, n, acts, K, up, ws, 1, rh, ws);

  // Head: g_L = -(2/n)(G - y), R{g_L} = (2/n) R{y}.
  {
    size_t total = (size_t)P * nk * dL;
    blpo_launch(impl, hvp_head_kernel, blpo_cuda_blocks(total, kThreads), kThreads, 0, P, n, K, dL,
                s, target, acts + blpo_mlp_act_offset(m, L, n), (size_t)n * A,
                rh + blpo_mlp_act_offset(m, L, K * n), g, rg, ws);
  }

  for (int l = L - 1; l >= 0; l--) {
    int din = m->dims[l], dout = m->dims[l + 1];
    const float *W = params + m->w_off[l];                               // (dout, din), stride Np
    const float *hin = l == 0 ? x : acts + blpo_mlp_act_offset(m, l, n); // (n, din)
    size_t hstride = l == 0 ? (size_t)n * m->dims[0] : (size_t)n * A;    // agent stride of hin
    const float *rhin = l == 0 ? NULL : rh + blpo_mlp_act_offset(m, l, K * n); // (n, K, din)
    float *hw = hp + (size_t)K * m->w_off[l];                                  // (K, dout, din)
    float *hb = hp + (size_t)K * m->b_off[l];                                  // (K, dout)
    const float *uw = up + (size_t)K * m->w_off[l];                            // (K, dout, din)

    // R{dW_l} first term R{g_l}^T h_{l-1}: (K*dout x din) in one GEMM.
    blpo_cuda_gemm_rm(impl, 1, 0, K * dout, din, n, rg, K * dout, (long long)ws, hin, din,
                      (long long)hstride, 0.0f, hw, din, (long long)ws, P);
    // Second term g_l^T R{h_{l-1}}: (dout, K, din), added in permuted.
    if (rhin) {
      blpo_cuda_gemm_rm(impl, 1, 0, dout, K * din, n, g, dout, (long long)ws, rhin, K * din,
                        (long long)ws, 0.0f, tmp, K * din, (long long)ws, P);
      size_t total = (size_t)P * K * dout * din;
      blpo_launch(impl, permute_add_kernel, blpo_cuda_blocks(total, kThreads), kThreads, 0, P, K,
                  dout, din, tmp, hw, ws);
    }
    // R{db_l} = column sums of R{g_l} (n x K*dout).
    blpo_cuda_col_sums(impl, P, n, K * dout, rg, ws, hb, ws);
    if (l == 0)
      break;

    // R{g_l} W_l over all n*K stacked rows -> (n, K, din).
    blpo_cuda_gemm_rm(impl, 0, 0, n * K, din, dout, rg, dout, (long long)ws, W, din, (long long)np,
                      0.0f, rgo, din, (long long)ws, P);
    // g_l U_l for all k: U_l repacked (dout, K, din), (n x dout)(dout x K*din).
    {
      size_t total = (size_t)P * K * dout * din;
      blpo_launch(impl, repack_u_kernel, blpo_cuda_blocks(total, kThreads), kThreads, 0, P, K, dout,
                  din, uw, tmp, ws);
    }
    blpo_cuda_gemm_rm(impl, 0, 0, n, K * din, dout, g, dout, (long long)ws, tmp, K * din,
                      (long long)ws, 1.0f, rgo, K * din, (long long)ws, P);
    // q = g_l W_l.
    blpo_cuda_gemm_rm(impl, 0, 0, n, din, dout, g, dout, (long long)ws, W, din, (long long)np, 0.0f,
                      q, din, (long long)ws, P);
    {
      size_t total = (size_t)P * n * din;
      blpo_launch(impl, hvp_act_kernel, blpo_cuda_blocks(total, kThreads), kThreads, 0, P, n, K,
                  din, hin, hstride, rgo, rhin, q, ws, m->activation == BLPO_ACT_TANH);
    }
    float *sw = rg;
    rg = rgo;
    rgo = sw;
    sw = g;
    g = q;
    q = sw;
  }
  size_t total = (size_t)P * K * np;
  blpo_launch(impl, unpack_out_kernel, blpo_cuda_blocks(total, kThreads), kThreads, 0, *m, P, K, hp,
              ws, hv, hv_stride);
}
