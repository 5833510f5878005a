/* Exact second-order passes of an MLP on the CPU (derivatives.md, "Hessian-vector
 * products of the critic loss"): the forward-mode tangent (Pearlmutter's
 * R-operator) along K directions, and Hessian-vector products of the critic
 * loss g(w) = (1/n) sum_rows (G - y)^2 for K directions in one batched pass.
 *
 * Population-batched like the backend seam: P agents, agent p's slice of a
 * per-agent array of shape S starts at p * prod(S). Np = m->num_params.
 *
 * K-stacked layout. Every R-quantity of layer l is stored (n, K, d_l): row r
 * of the minibatch, then direction k. With that order both terms of the
 * tangent forward are single GEMMs writing the same buffer with no
 * transposition: R{h_{l-1}} W_l^T runs over n*K rows of width d_{l-1}, and
 * h_{l-1} [U_l^(1); ...; U_l^(K)]^T is (n x d_{l-1}) times (d_{l-1} x K*d_l),
 * whose (n, K*d_l) result is exactly (n, K, d_l). The per-layer tangents of
 * all layers form one (n*K) x act_floats_per_row workspace laid out like the
 * activation workspace with n*K rows: layer l starts at
 * blpo_mlp_act_offset(m, l, K * n). */
#ifndef BLPO_SECOND_ORDER_H
#define BLPO_SECOND_ORDER_H

#include <stddef.h>
#include <stdint.h>

#include "mlp.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Forward-mode tangent along K directions.
 *   params (P, Np); x (P, n, d_0); acts (P, n, act_floats_per_row) from the
 *   forward pass ([h_1 | ... | y]); dirs (P, K, Np), each shaped like params
 *   (the `extra` tail is ignored).
 * Writes
 *   rh (P, K * n * act_floats_per_row): per agent [R{h_1} (n, K, d_1) | ... |
 *     R{h_{L-1}} | R{y} (n, K, d_L)], the tangents of exactly what `acts`
 *     stores (post-activation for hidden layers, the linear head last). R{h}
 *     rather than R{z} is kept because it is what the next layer and the
 *     second-order backward consume (for tanh, phi''(z) R{z} = -2 h R{h}), and
 *     keeping R{z} too would need a second buffer the seam does not provide;
 *   ry (P, K, n, d_L): the head tangent, direction-major (for d_L = 1 and
 *     K = 1 this is V̇ = grad_w V . u of the mixed term, (P, n)).
 * rh is the seam's tangent workspace (mlp_tangent_work = K*n*act_floats_per_row
 * per agent). With K > 1 the h U^T term runs as K GEMMs into column blocks of
 * the stacked output, because dirs are Np apart and this entry has no room to
 * pack them; blpo_cpu_critic_hvp packs and uses one GEMM. */
void blpo_cpu_mlp_tangent(const blpo_mlp *m, int P, const float *params, const float *x, int n,
                          const float *acts, int K, const float *dirs, float *rh, float *ry);

/* The HVP passes' buffers per agent at (n, K), laid out alike by both
 * backends (hvp_agent in src/cpu_second_order.c, blpo_cuda_critic_hvp_pass
 * in kernels/second_order_cuda.cu; the CUDA Hessian rows kernel keeps its
 * partials there):
 *   2 K Nm + K n A + 2 K n w + 2 n w + K Wmax
 * with Nm = num_mlp_params, A = act_floats_per_row, w = max_width,
 * Wmax = max_l d_l d_{l-1}. */
static inline size_t blpo_hvp_pass_floats(const blpo_mlp *m, int n, int K) {
  size_t nm = m->num_mlp_params, A = m->act_floats_per_row, w = (size_t)m->max_width;
  size_t kk = (size_t)K, nn = (size_t)n, wmax = 0;
  for (int l = 0; l < m->num_layers; l++) {
    size_t b = (size_t)m->dims[l + 1] * m->dims[l];
    wmax = b > wmax ? b : wmax;
  }
  return 2 * kk * nm + kk * nn * A + 2 * kk * nn * w + 2 * nn * w + kk * wmax;
}

/* Floats of workspace per agent for the HVP entries below at (n, K); the
 * caller allocates P times this once (it grows with K and n, so the largest
 * (n, K) used covers smaller calls): blpo_hvp_pass_floats + 3 K, the last
 * 3 K holding where each unit direction of the rows and the dense Hessian
 * sits, so that those allocate nothing. */
size_t blpo_cpu_critic_hvp_work_floats(const blpo_mlp *m, int n, int K);

/* Hessian-vector products hv (P, K, Np) = H u_k of g(w) = (1/n) sum (G - y)^2,
 * target G (P, n, d_L) (d_L = 1 for the critic), for dirs (P, K, Np) (`extra`
 * tail ignored; hv's `extra` tail set to 0). work (P, work_floats(m, n, K)). */
void blpo_cpu_critic_hvp(const blpo_mlp *m, int P, const float *params, const float *x, int n,
                         const float *acts, const float *target, int K, const float *dirs,
                         float *hv, float *work);

/* Nystrom rows rows (P, K, Np) = H[idx, :] (= H e_j, H symmetric) for parameter
 * indices idx (P, K); the unit directions are built straight into the packed
 * workspace, and the passes skip their exact-zero terms (the same numbers as
 * blpo_cpu_critic_hvp of the unit vectors, at about a third of the GEMM work
 * for an index in a wide middle layer). An index in the `extra` tail or out
 * of range gives a zero row.
 * work (P, work_floats(m, n, K)). */
void blpo_cpu_critic_hvp_rows(const blpo_mlp *m, int P, const float *params, const float *x, int n,
                              const float *acts, const float *target, int K, const int32_t *idx,
                              float *rows, float *work);

/* Dense Hessian hess (Np, Np) of ONE agent (row-major; rows and columns of the
 * `extra` tail are 0), as rows of chunks of `chunk` unit directions.
 * work: work_floats(m, n, chunk). For tests and the exact solver on tiny nets. */
void blpo_cpu_critic_hessian_dense(const blpo_mlp *m, const float *params, const float *x, int n,
                                   const float *acts, const float *target, int chunk, float *hess,
                                   float *work);

#ifdef __cplusplus
}
#endif

#endif
