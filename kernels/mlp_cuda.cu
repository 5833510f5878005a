// The MLP passes of the CUDA backend: the layer GEMMs are cuBLAS strided
// batched GEMMs over the P agents, bias/activation/column sums small kernels;
// for networks that fit in shared memory the forward pass is one kernel and
// the backward pass one or two.
// Same semantics as cpu_mlp_forward / cpu_mlp_backward (src/backend_cpu.c).
//
// Row-major <-> column-major mapping (used by every GEMM below, written once):
// the CPU calls cblas_sgemm(CblasRowMajor, ...). cuBLAS is column-major. A
// row-major (r x c) matrix X with leading dimension c occupies memory exactly
// like the column-major (c x r) matrix X^T with the same leading dimension.
// So a row-major product C = op(A) op(B) is computed as the column-major
// product C^T = op(B)^T op(A)^T: swap the operands, keep each one's
// transpose flag, swap m and n, keep the leading dimensions.
//   forward   z (n x dout)    = h (n x din) W^T + z     [W is (dout x din)]
//     => z^T  (dout x n, ld dout) = W (op T of the col-major din x dout view, ld din)
//                                   * h^T (op N, din x n, ld din)
//        cublasSgemm(T, N, m=dout, n=n, k=din, W, lda=din, h, ldb=din, beta=1, z, ldc=dout)
//   backward  dW (dout x din) = g^T (dout x n) h (n x din)
//     => dW^T (din x dout, ld din) = h^T (op N, din x n, ld din) * g (op T of the
//        col-major dout x n view, ld dout)
//        cublasSgemm(N, T, m=din, n=dout, k=n, h, lda=din, g, ldb=dout, beta=0, dW, ldc=din)
//   backward  g_prev (n x din) = g (n x dout) W (dout x din)
//     => g_prev^T (din x n, ld din) = W^T (op N, din x dout, ld din) * g^T (op N, dout x n, ld
//     dout)
//        cublasSgemm(N, N, m=din, n=n, k=dout, W, lda=din, g, ldb=dout, beta=0, g_prev, ldc=din)
#include "blpo/ppo_blocks.h"
#include "cuda_ops.h"

namespace {

void sgemm_batched(blpo_cuda_impl *impl, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                   int k, const float *A, int lda, long long sA, const float *B, int ldb,
                   long long sB, float beta, float *C, int ldc, long long sC, int batch) {
  const float one = 1.0f;
  cublasCheck(cublasSgemmStridedBatched(impl->cublas, ta, tb, m, n, k, &one, A, lda, sA, B, ldb, sB,
                                        &beta, C, ldc, sC, batch));
}

// out (P, agent stride out_stride): rows r < n of the (n x dout) block get the
// bias b (P, agent stride np, dout floats) broadcast.
__global__ void bias_rows_kernel(int P, int n, int dout, const float *__restrict__ b, size_t np,
                                 float *__restrict__ out, size_t out_stride) {
  blpo_pdl_enter();
  size_t per = (size_t)n * dout;
  size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= (size_t)P * per)
    return;
  size_t p = e / per, k = e % per;
  out[p * out_stride + k] = b[p * np + k % dout];
}

// h (P, agent stride stride), cnt floats per agent: h = phi(h) in place.
__global__ void activation_kernel(int P, size_t cnt, float *__restrict__ h, size_t stride,
                                  int activation) {
  blpo_pdl_enter();
  size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= (size_t)P * cnt)
    return;
  float *x = h + (e / cnt) * stride + e % cnt;
  if (activation == BLPO_ACT_TANH)
    *x = tanhf(*x);
  else
    *x = *x > 0.0f ? *x : 0.0f;
}

// g (P, agent stride g_stride), cnt floats per agent: g *= phi'(z) given
// h = phi(z) (P, agent stride h_stride).
__global__ void act_deriv_kernel(int P, size_t cnt, float *__restrict__ g, size_t g_stride,
                                 const float *__restrict__ h, size_t h_stride, int activation) {
  blpo_pdl_enter();
  size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= (size_t)P * cnt)
    return;
  size_t p = e / cnt, k = e % cnt;
  float hv = h[p * h_stride + k];
  float *x = g + p * g_stride + k;
  if (activation == BLPO_ACT_TANH)
    *x *= 1.0f - hv * hv;
  else
    *x = hv > 0.0f ? *x : 0.0f;
}

// One network's whole forward pass, one block per (agent, rows), from the
// block program blpo_fwd (include/blpo/ppo_blocks.h; the CPU test runs it).
// At least 3 blocks per SM (up to 80 registers): with the thread bound
// alone ptxas took 64 on sm_80 and spilled 16 bytes once the TF32 tiles'
// steps were no longer unrolled (include/blpo/tc_tile.h, 2026-12-07).
__global__ void __launch_bounds__(BLPO_MBF_THREADS, 3)
    forward_fused_kernel(const __grid_constant__ blpo_fwd_args a) {
  blpo_pdl_enter();
  extern __shared__ __align__(32) float sm[]; // 32: the layer passes' float4 loads, WMMA tiles
  const int phases = blpo_fwd_phases(&a.lay);
  for (int ph = 0; ph < phases; ph++) {
    blpo_fwd(&a, blockIdx.y, blockIdx.x, threadIdx.x, ph, sm);
    __syncthreads();
  }
}

// One network's backward pass for small networks: the block's partial
// gradient (or, with one block per agent, the gradient itself) from the
// block program blpo_bwd_rows, then the partials' sums (blpo_bwd_reduce).
// At least 2 blocks per SM (up to 128 registers), as the PPO rows kernel:
// ptxas's own 64 registers spilled a word of the float4 dW tiles on sm_90;
// its 64-row layout (88.5 KiB for cartpole.yaml's actor) fits 2 per SM.
__global__ void __launch_bounds__(BLPO_MBF_THREADS, 2)
    backward_fused_kernel(const __grid_constant__ blpo_bwd_args a) {
  blpo_pdl_enter();
  extern __shared__ __align__(32) float sm[]; // 32: the layer passes' float4 loads, WMMA tiles
  const int phases = blpo_bwd_rows_phases(&a.lay);
  for (int ph = 0; ph < phases; ph++) {
    blpo_bwd_rows(&a, blockIdx.y, blockIdx.x, threadIdx.x, ph, sm);
    __syncthreads();
  }
}

// (256, 2) as backward_fused_kernel: with the thread bound alone ptxas aimed
// at 64 registers and spilled once the TF32 tiles were in (2026-12-07).
__global__ void __launch_bounds__(BLPO_MBF_THREADS, 2)
    backward_many_rows_kernel(const __grid_constant__ blpo_bwd_set s) {
  blpo_pdl_enter();
  extern __shared__ __align__(32) float sm[]; // 32: the layer passes' float4 loads, WMMA tiles
  const int t = blpo_pass_of(s.start, blockIdx.x);
  const blpo_bwd_args *a = &s.b[t];
  const int b = blockIdx.x - s.start[t], phases = blpo_bwd_rows_phases(&a->lay);
  for (int ph = 0; ph < phases; ph++) {
    blpo_bwd_rows(a, blockIdx.y, b, threadIdx.x, ph, sm);
    __syncthreads();
  }
}

__global__ void __launch_bounds__(BLPO_MBF_THREADS)
    backward_many_reduce_kernel(const __grid_constant__ blpo_bwd_set s) {
  blpo_pdl_enter();
  blpo_bwd_set_reduce(&s, blockIdx.y, blockIdx.x, threadIdx.x);
}

__global__ void __launch_bounds__(BLPO_MBF_THREADS)
    forward_many_kernel(const __grid_constant__ blpo_fwd_set s) {
  blpo_pdl_enter();
  extern __shared__ __align__(32) float sm[]; // 32: the layer passes' float4 loads, WMMA tiles
  const int t = blpo_pass_of(s.start, blockIdx.x);
  const blpo_fwd_args *a = &s.f[t];
  const int b = blockIdx.x - s.start[t], phases = blpo_fwd_phases(&a->lay);
  for (int ph = 0; ph < phases; ph++) {
    blpo_fwd(a, blockIdx.y, b, threadIdx.x, ph, sm);
    __syncthreads();
  }
}

__global__ void __launch_bounds__(BLPO_MBF_THREADS)
    backward_reduce_kernel(const __grid_constant__ blpo_bwd_args a) {
  blpo_pdl_enter();
  blpo_bwd_reduce(&a, blockIdx.y, blockIdx.x, threadIdx.x);
}

// params (P,Np); x (P,n,d_0); acts (P,n,act_floats_per_row) = [h_1|...|y].
// Networks whose weights fit in shared memory with 8 rows or more: one
// launch (forward_fused_kernel) instead of three per layer, which classic
// control's minibatches (a few thousand rows or fewer, 64-wide layers) are
// bound by; wider ones: the cuBLAS GEMMs below.
void cuda_mlp_forward(blpo_backend *be, const blpo_mlp *m, int P, const float *params,
                      const float *x, int n, float *acts) {
  if (P <= 0 || n <= 0)
    return;
  blpo_cuda_impl *impl = blpo_cuda(be);
  blpo_fwd_args fa;
  if (blpo_fwd_choose(&fa.lay, m, P, n, (size_t)impl->smem_optin, impl->tf32_tiles)) {
    fa.params = params, fa.x = x, fa.acts = acts;
    blpo_launch(impl, forward_fused_kernel, dim3((unsigned)fa.lay.blocks, (unsigned)P),
                BLPO_MBF_THREADS, sizeof(float) * (size_t)fa.lay.s_floats, fa);
    return;
  }
  const int T = BLPO_CUDA_THREADS;
  const long long np = (long long)m->num_params;
  const long long a_stride = (long long)n * (long long)m->act_floats_per_row;
  const float *in = x;
  long long in_stride = (long long)n * m->dims[0];
  for (int l = 0; l < m->num_layers; l++) {
    int din = m->dims[l], dout = m->dims[l + 1];
    float *out = acts + blpo_mlp_act_offset(m, l + 1, n); // agent p's block at + p * a_stride
    size_t cnt = (size_t)n * dout;
    blpo_launch(impl, bias_rows_kernel, blpo_cuda_blocks((size_t)P * cnt, T), T, 0, P, n, dout,
                params + m->b_off[l], (size_t)np, out, (size_t)a_stride);
    // z = in W^T + z (see the mapping at the top of the file)
    sgemm_batched(impl, CUBLAS_OP_T, CUBLAS_OP_N, dout, n, din, params + m->w_off[l], din, np, in,
                  din, in_stride, 1.0f, out, dout, a_stride, P);
    if (l < m->num_layers - 1) {
      blpo_launch(impl, activation_kernel, blpo_cuda_blocks((size_t)P * cnt, T), T, 0, P, cnt, out,
                  (size_t)a_stride, m->activation);
    }
    in = out;
    in_stride = a_stride;
  }
}

// mlp_forward_many: one launch for passes that all fit the fused kernel
// (BLPO's critic passes on the minibatch and the last observations and its
// actor pass); otherwise each on its own.
void cuda_mlp_forward_many(blpo_backend *be, int P, int count, const blpo_mlp_pass *f) {
  if (P <= 0 || count <= 0)
    return;
  blpo_cuda_impl *impl = blpo_cuda(be);
  blpo_fwd_set set;
  if (!blpo_fwd_set_init(&set, P, count, f, (size_t)impl->smem_optin, impl->tf32_tiles)) {
    for (int k = 0; k < count; k++)
      cuda_mlp_forward(be, f[k].m, P, f[k].params, f[k].x, f[k].n, f[k].acts);
    return;
  }
  blpo_launch(impl, forward_many_kernel, dim3((unsigned)set.start[set.count], (unsigned)P),
              BLPO_MBF_THREADS, sizeof(float) * (size_t)set.s_floats, set);
}

// grad (P,Np) (MLP part only, overwritten) = d/dparams of sum(dy . y);
// params (P,Np); x (P,n,d_0); acts (P,n,act_floats_per_row); dy (P,n,d_L);
// scratch (P, 2*n*max_width).
void cuda_mlp_backward(blpo_backend *be, const blpo_mlp *m, int P, const float *params,
                       const float *x, int n, const float *acts, const float *dy, float *grad,
                       float *scratch) {
  if (P <= 0)
    return;
  blpo_cuda_impl *impl = blpo_cuda(be);
  // networks that fit in shared memory, their partials in the scratch: one
  // or two launches instead of four per layer
  blpo_bwd_args ba;
  if (blpo_bwd_choose(&ba.lay, m, P, n, (size_t)impl->smem_optin, impl->tf32_tiles)) {
    ba.params = params, ba.x = x, ba.acts = acts, ba.dy = dy, ba.grad = grad, ba.parts = scratch;
    blpo_launch(impl, backward_fused_kernel, dim3((unsigned)ba.lay.blocks, (unsigned)P),
                BLPO_MBF_THREADS, sizeof(float) * (size_t)ba.lay.s_floats, ba);
    if (!ba.lay.direct) {
      unsigned cols = (unsigned)((m->num_mlp_params + BLPO_MBF_THREADS - 1) / BLPO_MBF_THREADS);
      blpo_launch(impl, backward_reduce_kernel, dim3(cols, (unsigned)P), BLPO_MBF_THREADS, 0, ba);
    }
    return;
  }
  const int T = BLPO_CUDA_THREADS;
  const long long np = (long long)m->num_params;
  const long long a_stride = (long long)n * (long long)m->act_floats_per_row;
  const long long s_stride = 2LL * n * m->max_width;
  float *s0 = scratch, *s1 = scratch + (size_t)n * m->max_width;
  const float *g = dy;
  long long g_stride = (long long)n * m->dims[m->num_layers];
  for (int l = m->num_layers - 1; l >= 0; l--) {
    int din = m->dims[l], dout = m->dims[l + 1];
    const float *hin = l == 0 ? x : acts + blpo_mlp_act_offset(m, l, n);
    long long h_stride = l == 0 ? (long long)n * m->dims[0] : a_stride;
    if (n > 0) {
      // dW = g^T h_in (overwrites W's gradient)
      sgemm_batched(impl, CUBLAS_OP_N, CUBLAS_OP_T, din, dout, n, hin, din, h_stride, g, dout,
                    g_stride, 0.0f, grad + m->w_off[l], din, np, P);
    } else {
      // no rows: the CPU's GEMM with k = 0 and beta = 0 writes zeros
      for (int p = 0; p < P; p++)
        cudaCheck(cudaMemsetAsync(grad + (size_t)p * np + m->w_off[l], 0,
                                  sizeof(float) * (size_t)din * dout, impl->stream));
    }
    // db = colsum(g)
    blpo_cuda_col_sums(impl, P, n, dout, g, (size_t)g_stride, grad + m->b_off[l], (size_t)np);
    if (l > 0 && n > 0) {
      float *gprev = (g == s0) ? s1 : s0;
      // g_prev = g W, then times phi'(z_l) from h_l = hin
      sgemm_batched(impl, CUBLAS_OP_N, CUBLAS_OP_N, din, n, dout, params + m->w_off[l], din, np, g,
                    dout, g_stride, 0.0f, gprev, din, s_stride, P);
      size_t cnt = (size_t)n * din;
      blpo_launch(impl, act_deriv_kernel, blpo_cuda_blocks((size_t)P * cnt, T), T, 0, P, cnt, gprev,
                  (size_t)s_stride, hin, (size_t)h_stride, m->activation);
      g = gprev;
      g_stride = s_stride;
    }
  }
}

// mlp_backward_many: two launches for passes that all fit the fused kernels
// (BLPO's actor pass and both critic passes of v, the second added to the
// first in the reduce); otherwise each on its own and the sums as axpy.
void cuda_mlp_backward_many(blpo_backend *be, int P, int count, const blpo_mlp_grad_pass *b) {
  if (P <= 0 || count <= 0)
    return;
  blpo_cuda_impl *impl = blpo_cuda(be);
  blpo_bwd_set set;
  if (!blpo_bwd_set_init(&set, P, count, b, (size_t)impl->smem_optin, impl->tf32_tiles)) {
    for (int k = 0; k < count; k++)
      cuda_mlp_backward(be, b[k].m, P, b[k].params, b[k].x, b[k].n, b[k].acts, b[k].dy, b[k].grad,
                        b[k].scratch);
    for (int k = 1; k < count; k++)
      if (b[k].add_to_prev)
        be->axpy(be, P, b[k].m->num_params, 1.0f, b[k].grad, b[k - 1].grad);
    return;
  }
  blpo_launch(impl, backward_many_rows_kernel, dim3((unsigned)set.start[set.count], (unsigned)P),
              BLPO_MBF_THREADS, sizeof(float) * (size_t)set.s_floats, set);
  if (set.rstart[set.count] > 0) {
    blpo_launch(impl, backward_many_reduce_kernel,
                dim3((unsigned)set.rstart[set.count], (unsigned)P), BLPO_MBF_THREADS, 0, set);
  }
}

} // namespace

void blpo_cuda_install_mlp(blpo_backend *be) {
  // process-wide, the device's limit (kernels/ppo_minibatch_cuda.cu says why)
  blpo_cuda_allow_smem(be, (const void *)forward_fused_kernel, "forward_fused_kernel");
  blpo_cuda_allow_smem(be, (const void *)backward_fused_kernel, "backward_fused_kernel");
  blpo_cuda_allow_smem(be, (const void *)forward_many_kernel, "forward_many_kernel");
  blpo_cuda_allow_smem(be, (const void *)backward_many_rows_kernel, "backward_many_rows_kernel");
  be->mlp_forward = cuda_mlp_forward;
  be->mlp_forward_many = cuda_mlp_forward_many;
  be->mlp_backward = cuda_mlp_backward;
  be->mlp_backward_many = cuda_mlp_backward_many;
}
