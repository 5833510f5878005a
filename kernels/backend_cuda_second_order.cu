// CUDA backend operations of the nested critic and the BLPO hypergradient
// (blpo.md step 4), with the semantics of src/backend_cpu_blpo.c line by line:
// axpy, dot, value_loss, blpo_actor (GAE and its adjoint per trajectory),
// mixed_head, mlp_tangent, critic_hvp(_rows) (kernels/second_order_cuda.cu),
// the Nystrom solve (one kernel per solve for k <= 32, kernels/nystrom_cuda.cu;
// with run.fused_update off or a larger k, batched over the population:
// cuSOLVER syevjBatched for k <= 32, else syevd per agent; cuBLAS batched
// LU), CG, the dense solve, and the norm bound with or without the actor's
// Adam step after it (hypergrad_step: one kernel, include/blpo/
// hypergrad_blocks.h). Per-element math comes from
// the BLPO_HD headers shared with the CPU. Per-agent sums are deterministic
// block reductions in double (one block of BLPO_CUDA_THREADS per agent,
// blpo_block_sum). Nothing here synchronises with the host: solver failures
// (devInfo) are read on the device and folded into the outputs / the
// CORE_FAULTS stat by small kernels.
//
// The Nystrom workspaces hold the whole population (reserve_solver is given
// P), so one launch per step serves every agent; CG is batched by nature; the
// dense solve (tests and small networks only) loops over the agents.
#include <math.h>

#include "blpo/actor_blocks.h"
#include "blpo/blpo_math.h"
#include "blpo/blpo_rows.h"
#include "blpo/gae.h"
#include "blpo/heads.h"
#include "blpo/hypergrad_blocks.h"
#include "cuda_ops.h"
#include "second_order_cuda.h"

namespace {

const int kThreads = BLPO_CUDA_THREADS;

// Solver workspaces (impl->solver) for P agents; sized by reserve_solver and
// grown by the ops if a call needs more.
typedef struct {
  int P;          // reserved agents
  int k;          // reserved rank
  size_t np;      // reserved parameter count
  int dense;      // dense_ipiv reserved
  float *core;    // (P, k, k) cores M, then their eigenvectors (column a = eigenvector a)
  float *lam;     // (P, k) eigenvalues, ascending
  float *mask;    // (P, k) 1 kept / 0 cut
  float *B;       // (P, k, np) row-major B = U^T C, rows of cut eigenpairs 0
  float *S;       // (P, k, k) Woodbury systems, then their LU factors
  float *bv;      // (P, k) B v, then S^-1 B v
  float *t;       // (P, np) B^T S^-1 B v; (np) scratch of the dense solve's query
  float **S_ptr;  // (P) device pointers to each S, for cuBLAS's batched LU
  float **bv_ptr; // (P) device pointers to each bv
  float *work;    // cuSOLVER workspace (lwork floats): syevjBatched or syevd, dense getrf
  int lwork;
  syevjInfo_t syevj; // batched Jacobi settings (defaults: tolerance eps, 100 sweeps)
  int *ipiv;         // (P, k) Nystrom pivots
  int *eig_info;     // (P) eigensolver status (0 ok; > 0 failed / not converged)
  int *lu_info;      // (P) LU status (0 ok; > 0 singular)
  int *rank;         // (P) kept rank r
  int *dipiv;        // (np) dense pivots
  int *info;         // [1] dense getrf, [2] dense getrs
  double *cg;        // (cg_cap, 4) per-agent CG state: rr, |v|, active, unused
  int cg_cap;
} so_solver;

// syevjBatched handles matrices up to 32 x 32; larger cores go agent by agent.
const int kBatchedEigMax = 32;

so_solver *solver_of(blpo_backend *be) { return (so_solver *)blpo_cuda(be)->solver; }

// ---- elementwise and per-agent reductions -----------------------------------

// dst (total) += alpha * src (total).
__global__ void axpy_kernel(size_t total, float alpha, const float *src, float *dst) {
  blpo_pdl_enter();
  size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < total)
    dst[i] += alpha * src[i];
}

// out (P) = <a, b> over (P, count); block p = agent p.
__global__ void dot_kernel(size_t count, const float *a, const float *b, float *out) {
  blpo_pdl_enter();
  __shared__ double sh[kThreads];
  size_t p = blockIdx.x;
  const float *x = a + p * count, *y = b + p * count;
  double s = 0;
  for (size_t i = threadIdx.x; i < count; i += blockDim.x)
    s += (double)x[i] * y[i];
  s = blpo_block_sum(s, sh);
  if (threadIdx.x == 0)
    out[p] = (float)s;
}

// value (P, stride vstride) (n), target (P, n) -> dvalue (P, n); loss to
// stats (P, BLPO_STAT_COUNT)[slot] (slot < 0: not recorded).
__global__ void value_loss_kernel(int n, const float *value, size_t vstride, const float *target,
                                  float *dvalue, float *stats, int slot) {
  blpo_pdl_enter();
  __shared__ double sh[kThreads];
  size_t p = blockIdx.x;
  double s = 0;
  for (int i = threadIdx.x; i < n; i += blockDim.x) {
    float e = target[p * n + i] - value[p * vstride + i];
    dvalue[p * n + i] = -2.0f * e / (float)n;
    s += (double)e * e;
  }
  s = blpo_block_sum(s, sh);
  if (threadIdx.x == 0 && slot >= 0)
    stats[p * BLPO_STAT_COUNT + slot] += (float)(s / n);
}

// blpo_actor and mixed_head: one block per agent runs the block program of
// include/blpo/actor_blocks.h (the GAE columns, the rows and their sums,
// the adjoint columns), one launch each instead of three and two.
__global__ void __launch_bounds__(BLPO_ACB_THREADS)
    acb_kernel(const __grid_constant__ blpo_acb_args a) {
  blpo_pdl_enter();
  __shared__ blpo_acb_shared sh;
  const int phases = blpo_acb_phases();
  for (int ph = 0; ph < phases; ph++) {
    blpo_acb_block(&a, blockIdx.x, threadIdx.x, ph, &sh);
    __syncthreads();
  }
}

__global__ void __launch_bounds__(BLPO_ACB_THREADS)
    mxb_kernel(const __grid_constant__ blpo_mxb_args a) {
  blpo_pdl_enter();
  __shared__ blpo_acb_shared sh;
  const int phases = blpo_acb_phases();
  for (int ph = 0; ph < phases; ph++) {
    blpo_mxb_block(&a, blockIdx.x, threadIdx.x, ph, &sh);
    __syncthreads();
  }
}

// The norm bound and hypergradient, with or without Adam after it: one block
// per agent runs the block program of include/blpo/hypergrad_blocks.h.
__global__ void __launch_bounds__(BLPO_HGS_THREADS)
    hgs_kernel(const __grid_constant__ blpo_hgs_args a) {
  blpo_pdl_enter();
  __shared__ blpo_hgs_shared sh;
  const int phases = blpo_hgs_phases();
  for (int ph = 0; ph < phases; ph++) {
    blpo_hgs_block(&a, blockIdx.x, threadIdx.x, ph, &sh);
    __syncthreads();
  }
}

// ---- Nystrom (one agent per launch) ------------------------------------------

// cores M (P, k, k): M_p[a, b] = 0.5 (C_p[a, idx_p[b]] + C_p[b, idx_p[a]]);
// C (P, k, np); ix (P, k).
__global__ void nys_core_kernel(int P, int k, size_t np, const float *C, const int32_t *ix,
                                float *M) {
  blpo_pdl_enter();
  size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  size_t kk = (size_t)k * k;
  if (e >= (size_t)P * kk)
    return;
  size_t p = e / kk, a = (e % kk) / k, b = e % k;
  const float *Cp = C + p * k * np;
  const int32_t *ip = ix + p * k;
  M[e] = 0.5f * (Cp[a * np + ip[b]] + Cp[b * np + ip[a]]);
}

// After the eigensolver, one block per agent p: the eigen cut-off
// |lambda| > tol max|lambda| (none kept when the solver failed), the stats
// RANK/EIG_MAX/EIG_MIN, mask (k), rank[p], and the cut eigenvectors (rows a
// of the row-major view of M_p (k, k)) zeroed so that B's rows of cut pairs
// are exactly 0. lam (P, k); M (P, k, k); stats (P, BLPO_STAT_COUNT).
__global__ void nys_select_kernel(int k, const float *lam_all, const int *eig_info, float tol,
                                  float *M_all, float *mask_all, int *rank, float *stats) {
  blpo_pdl_enter();
  int p = blockIdx.x;
  const float *lam = lam_all + (size_t)p * k;
  float *M = M_all + (size_t)p * k * k;
  float *mask = mask_all + (size_t)p * k;
  if (threadIdx.x == 0) {
    float *st = stats + (size_t)p * BLPO_STAT_COUNT;
    float lmax = 0.0f;
    for (int a = 0; a < k; a++)
      lmax = fmaxf(lmax, fabsf(lam[a]));
    int r = 0;
    float lmin_kept = INFINITY;
    for (int a = 0; a < k; a++) {
      int keep = eig_info[p] == 0 && fabsf(lam[a]) > tol * lmax && lmax > 0.0f;
      mask[a] = keep ? 1.0f : 0.0f;
      if (keep) {
        r++;
        lmin_kept = fminf(lmin_kept, fabsf(lam[a]));
      }
    }
    rank[p] = r;
    st[BLPO_STAT_RANK] += (float)r;
    st[BLPO_STAT_EIG_MAX] += lmax;
    st[BLPO_STAT_EIG_MIN] += r ? lmin_kept : 0.0f;
  }
  __syncthreads();
  for (size_t e = threadIdx.x; e < (size_t)k * k; e += blockDim.x)
    if (mask[e / k] == 0.0f)
      M[e] = 0.0f;
}

// S_p (k, k) += diag(rho (lambda_a + ridge)) on kept a, 1 on cut a (whose
// rows and columns of B B^T are exactly 0, so the kept block is the CPU's
// r x r system and the cut unknowns solve to 0). S (P, k, k); lam, mask (P, k).
__global__ void nys_diag_kernel(int P, int k, const float *lam, const float *mask, float rho,
                                float ridge, float *S) {
  blpo_pdl_enter();
  int e = blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= P * k)
    return;
  int p = e / k, a = e % k;
  S[(size_t)p * k * k + (size_t)a * k + a] += mask[e] != 0.0f ? rho * (lam[e] + ridge) : 1.0f;
}

// x_p (np) = (v_p - t_p) / rho, or v_p / rho when nothing was kept or S_p was
// singular (then one CORE_FAULTS counted for agent p). v, t, x (P, np).
__global__ void nys_final_kernel(int P, size_t np, const float *v, const float *t, const int *rank,
                                 const int *lu_info, float rho, float *x, float *stats) {
  blpo_pdl_enter();
  size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= (size_t)P * np)
    return;
  size_t p = e / np, i = e % np;
  int fault = rank[p] == 0 || lu_info[p] != 0;
  float inv_rho = 1.0f / rho;
  x[e] = fault ? v[e] * inv_rho : (v[e] - t[e]) * inv_rho;
  if (i == 0 && fault)
    stats[p * BLPO_STAT_COUNT + BLPO_STAT_CORE_FAULTS] += 1.0f;
}

// ptrs[p] = base + p * stride, for cuBLAS's batched LU.
__global__ void batch_ptrs_kernel(int P, float *base, size_t stride, float **ptrs) {
  blpo_pdl_enter();
  int p = blockIdx.x * blockDim.x + threadIdx.x;
  if (p < P)
    ptrs[p] = base + (size_t)p * stride;
}

// ---- dense (one agent per launch) --------------------------------------------

// H (np, np) += rho I.
__global__ void dense_diag_kernel(size_t np, float *H, float rho) {
  blpo_pdl_enter();
  size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < np)
    H[i * np + i] += rho;
}

// x (np) = NaN where getrf reported a singular matrix (info[1] != 0).
__global__ void dense_nan_kernel(size_t np, const int *info, float *x) {
  blpo_pdl_enter();
  size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < np && info[1] != 0)
    x[i] = NAN;
}

// ---- CG (all agents, block p = agent p) --------------------------------------
// cg (P, 4 np): r | dir | hd | unused; st (P, 4) doubles: rr, |v|, active.

__global__ void cg_init_kernel(size_t np, const float *v, float *x, float *cg, double *state,
                               int iters, float tol) {
  blpo_pdl_enter();
  __shared__ double sh[kThreads];
  size_t p = blockIdx.x;
  const float *vp = v + p * np;
  float *xp = x + p * np, *r = cg + p * 4 * np, *dir = r + np;
  double vn = 0;
  for (size_t i = threadIdx.x; i < np; i += blockDim.x) {
    xp[i] = 0.0f;
    r[i] = dir[i] = vp[i];
    vn += (double)vp[i] * vp[i];
  }
  vn = blpo_block_sum(vn, sh);
  if (threadIdx.x == 0) {
    double *st = state + p * 4;
    double vnorm = sqrt(vn);
    st[0] = vn;
    st[1] = vnorm;
    st[2] = (iters > 0 && sqrt(vn) > tol * vnorm) ? 1.0 : 0.0;
  }
}

// One CG iteration of the active agents, given hd = H dir.
__global__ void cg_iter_kernel(size_t np, float rho, float tol, float *cg, float *x,
                               double *state) {
  blpo_pdl_enter();
  __shared__ double sh[kThreads];
  size_t p = blockIdx.x;
  double *st = state + p * 4;
  double rr = st[0], vnorm = st[1];
  if (st[2] == 0.0) // the same for the whole block
    return;
  float *r = cg + p * 4 * np, *dir = r + np, *hd = r + 2 * np, *xp = x + p * np;
  double part = 0;
  for (size_t i = threadIdx.x; i < np; i += blockDim.x) {
    hd[i] += rho * dir[i];
    part += (double)dir[i] * hd[i];
  }
  double dhd = blpo_block_sum(part, sh);
  if (dhd <= 0) { // H + rho I not positive along dir: stop with what we have
    if (threadIdx.x == 0)
      st[2] = 0.0;
    return;
  }
  float alpha = (float)(rr / dhd);
  part = 0;
  for (size_t i = threadIdx.x; i < np; i += blockDim.x) {
    xp[i] += alpha * dir[i];
    r[i] -= alpha * hd[i];
    part += (double)r[i] * r[i];
  }
  double rr_new = blpo_block_sum(part, sh);
  float beta = (float)(rr_new / rr);
  for (size_t i = threadIdx.x; i < np; i += blockDim.x)
    dir[i] = r[i] + beta * dir[i];
  if (threadIdx.x == 0) {
    st[0] = rr_new;
    st[2] = sqrt(rr_new) > tol * vnorm ? 1.0 : 0.0;
  }
}

// stats (P, BLPO_STAT_COUNT)[CG_RESID] += final |r| / |v|.
__global__ void cg_final_kernel(int P, const double *state, float *stats) {
  blpo_pdl_enter();
  int p = blockIdx.x * blockDim.x + threadIdx.x;
  if (p >= P)
    return;
  const double *st = state + (size_t)p * 4;
  double vnorm = st[1];
  stats[(size_t)p * BLPO_STAT_COUNT + BLPO_STAT_CG_RESID] +=
      vnorm > 0 ? (float)(sqrt(st[0]) / vnorm) : 0.0f;
}

// ---- solver workspaces --------------------------------------------------------

void free_solver(so_solver *s) {
  if (!s)
    return;
  void *ptrs[] = {s->core,    s->lam,   s->mask,   s->B,    s->S,    s->bv,
                  s->t,       s->S_ptr, s->bv_ptr, s->work, s->ipiv, s->eig_info,
                  s->lu_info, s->rank,  s->dipiv,  s->info, s->cg};
  for (size_t i = 0; i < sizeof(ptrs) / sizeof(ptrs[0]); i++)
    if (ptrs[i])
      cudaFree(ptrs[i]);
  if (s->syevj)
    cusolverDnDestroySyevjInfo(s->syevj);
  free(s);
}

int dev_alloc(void **p, size_t bytes) {
  *p = NULL;
  if (cudaMalloc(p, bytes ? bytes : 4) != cudaSuccess) {
    cudaGetLastError();
    *p = NULL;
    return -1;
  }
  return 0;
}

// Allocates the workspaces for P agents, rank k, np parameters and (dense)
// the dense solve; replaces any previous ones. 0 on success.
int reserve(blpo_backend *be, int P, int k, size_t np, int dense) {
  blpo_cuda_impl *impl = blpo_cuda(be);
  if (impl->solver) {
    cudaCheck(cudaStreamSynchronize(impl->stream)); // queued work may still use them
    free_solver((so_solver *)impl->solver);
    impl->solver = NULL;
  }
  so_solver *s = (so_solver *)calloc(1, sizeof(so_solver));
  if (!s)
    return -1;
  s->P = P < 1 ? 1 : P;
  s->k = k < 0 ? 0 : k;
  s->np = np;
  s->dense = dense;
  size_t Pn = (size_t)s->P, kk = (size_t)s->k, F = sizeof(float);
  int fail = 0;
  fail |= dev_alloc((void **)&s->core, F * Pn * kk * kk);
  fail |= dev_alloc((void **)&s->lam, F * Pn * kk);
  fail |= dev_alloc((void **)&s->mask, F * Pn * kk);
  fail |= dev_alloc((void **)&s->B, F * Pn * kk * np);
  fail |= dev_alloc((void **)&s->S, F * Pn * kk * kk);
  fail |= dev_alloc((void **)&s->bv, F * Pn * kk);
  fail |= dev_alloc((void **)&s->t, F * Pn * (np ? np : 1));
  fail |= dev_alloc((void **)&s->S_ptr, sizeof(float *) * Pn);
  fail |= dev_alloc((void **)&s->bv_ptr, sizeof(float *) * Pn);
  fail |= dev_alloc((void **)&s->ipiv, sizeof(int) * Pn * (kk ? kk : 1));
  fail |= dev_alloc((void **)&s->eig_info, sizeof(int) * Pn);
  fail |= dev_alloc((void **)&s->lu_info, sizeof(int) * Pn);
  fail |= dev_alloc((void **)&s->rank, sizeof(int) * Pn);
  fail |= dev_alloc((void **)&s->info, sizeof(int) * 4);
  s->cg_cap = s->P > 64 ? s->P : 64;
  fail |= dev_alloc((void **)&s->cg, sizeof(double) * 4 * (size_t)s->cg_cap);
  if (dense)
    fail |= dev_alloc((void **)&s->dipiv, sizeof(int) * (np ? np : 1));
  if (fail) {
    free_solver(s);
    return -1;
  }
  if (kk > 0) {
    blpo_launch(impl, batch_ptrs_kernel, blpo_cuda_blocks(Pn, kThreads), kThreads, 0, s->P, s->S,
                kk * kk, s->S_ptr);
    blpo_launch(impl, batch_ptrs_kernel, blpo_cuda_blocks(Pn, kThreads), kThreads, 0, s->P, s->bv,
                kk, s->bv_ptr);
  }
  // cuSOLVER workspace: the eigensolver's (batched Jacobi for k <= 32, else
  // syevd for one agent at a time) and the dense solve's getrf.
  int lw = 1;
  if (s->k > 0 && s->k <= kBatchedEigMax) {
    cusolverCheck(cusolverDnCreateSyevjInfo(&s->syevj));
    int q = 0;
    cusolverCheck(cusolverDnSsyevjBatched_bufferSize(impl->cusolver, CUSOLVER_EIG_MODE_VECTOR,
                                                     CUBLAS_FILL_MODE_UPPER, s->k, s->core, s->k,
                                                     s->lam, &q, s->syevj, s->P));
    lw = q > lw ? q : lw;
  } else if (s->k > 0) {
    int q = 0;
    cusolverCheck(cusolverDnSsyevd_bufferSize(impl->cusolver, CUSOLVER_EIG_MODE_VECTOR,
                                              CUBLAS_FILL_MODE_UPPER, s->k, s->core, s->k, s->lam,
                                              &q));
    lw = q > lw ? q : lw;
  }
  if (dense && np > 0) {
    int q = 0;
    // the query only reads the shape; the pointer is any valid device buffer
    cusolverCheck(cusolverDnSgetrf_bufferSize(impl->cusolver, (int)np, (int)np, s->t, (int)np, &q));
    lw = q > lw ? q : lw;
  }
  s->lwork = lw;
  if (dev_alloc((void **)&s->work, F * (size_t)lw)) {
    free_solver(s);
    return -1;
  }
  impl->solver = s;
  return 0;
}

// The workspaces for this call, grown (rarely: the trainer reserves once) if
// the reserved ones are too small.
so_solver *ensure(blpo_backend *be, int P, int k, size_t np, int dense) {
  so_solver *s = solver_of(be);
  // the batched LU's pointer arrays are laid out for the reserved rank: any
  // other rank needs its own workspaces
  int k_ok = s && (k == 0 || s->k == k);
  if (!s || s->P < P || !k_ok || s->np < np || (dense && !s->dense)) {
    if (blpo_cuda_capture.active) {
      // growing frees and allocates, which a capture forbids: fail the
      // capture (nothing recorded runs, so the small workspaces are never
      // used; the trainer reruns the iteration directly, which grows them)
      blpo_cuda_fail("blpo", "reserve_solver", "workspace growth inside a graph capture", __FILE__,
                     __LINE__);
      if (s)
        return s;
      fprintf(stderr, "blpo-gpu: solver workspaces first asked for inside a graph capture\n");
      exit(4);
    }
    if (blpo_cuda(be)->live_graphs > 0) // a captured graph holds their addresses
      blpo_cuda_fail("blpo", "reserve_solver",
                     "the solver workspaces would be regrown while a captured graph uses them "
                     "(trainers with different solver sizes on one backend: give each its own)",
                     __FILE__, __LINE__);
    int P2 = s && s->P > P ? s->P : P;
    int k2 = k > 0 ? k : (s ? s->k : 0);
    size_t np2 = s && s->np > np ? s->np : np;
    int d2 = dense || (s && s->dense);
    if (reserve(be, P2, k2, np2, d2) != 0)
      blpo_cuda_fail("blpo", "reserve_solver", "out of device memory", __FILE__, __LINE__);
    s = solver_of(be);
  }
  return s;
}

// ---- the seam's operations ------------------------------------------------------

void cuda_axpy(blpo_backend *be, int P, size_t count, float alpha, const float *src, float *dst) {
  size_t total = (size_t)P * count;
  blpo_launch(blpo_cuda(be), axpy_kernel, blpo_cuda_blocks(total, kThreads), kThreads, 0, total,
              alpha, src, dst);
}

// P <= 0 (here and below): nothing to do, as the CPU op, rather than a launch
// of an empty grid (an invalid configuration, which exits)
void cuda_dot(blpo_backend *be, int P, size_t count, const float *a, const float *b, float *out) {
  if (P <= 0)
    return;
  blpo_launch(blpo_cuda(be), dot_kernel, P, kThreads, 0, count, a, b, out);
}

void cuda_value_loss(blpo_backend *be, int P, int n, const float *value, size_t vstride,
                     const float *target, float *dvalue, float *stats, int slot) {
  if (P <= 0)
    return;
  blpo_launch(blpo_cuda(be), value_loss_kernel, P, kThreads, 0, n, value, vstride, target, dvalue,
              stats, slot);
}

void cuda_blpo_actor(blpo_backend *be, const blpo_dims *d, const blpo_mlp *actor,
                     const float *actor_params, int T, int m, const float *head, size_t head_stride,
                     const float *value, size_t value_stride, const float *value_last,
                     size_t last_stride, const float *actions, const float *logp_old,
                     const float *reward, const float *done, const float *target, float gamma,
                     float lambda, float clip_eps, float clip_f, float *dhead, float *actor_grad,
                     float *vbar, float *vbar_last, float *rho, float *adv, float *alpha_f,
                     float *resid, float *stats) {
  if (d->P <= 0)
    return;
  blpo_acb_args a = blpo_acb_args_of(d, actor, actor_params, T, m, head, head_stride, value,
                                     value_stride, value_last, last_stride, actions, logp_old,
                                     reward, done, target, gamma, lambda, clip_eps, clip_f, dhead,
                                     actor_grad, vbar, vbar_last, rho, adv, alpha_f, resid, stats);
  blpo_launch(blpo_cuda(be), acb_kernel, (unsigned)d->P, BLPO_ACB_THREADS, 0, a);
}

void cuda_mixed_head(blpo_backend *be, const blpo_dims *d, const blpo_mlp *actor,
                     const float *actor_params, int T, int m, const float *head, size_t head_stride,
                     const float *actions, const float *done, const float *vdot,
                     const float *vdot_last, const float *rho, const float *adv,
                     const float *alpha_f, const float *resid, float gamma, float lambda,
                     float *cdot, float *dhead, float *p_grad) {
  if (d->P <= 0)
    return;
  blpo_mxb_args a =
      blpo_mxb_args_of(d, actor, actor_params, T, m, head, head_stride, actions, done, vdot,
                       vdot_last, rho, adv, alpha_f, resid, gamma, lambda, cdot, dhead, p_grad);
  blpo_launch(blpo_cuda(be), mxb_kernel, (unsigned)d->P, BLPO_ACB_THREADS, 0, a);
}

void cuda_mlp_tangent(blpo_backend *be, const blpo_mlp *m, int P, const float *params,
                      const float *x, int n, const float *acts, int K, const float *dirs, float *ry,
                      float *work) {
  if (blpo_cuda_tangent_fused(be, m, P, params, x, n, acts, K, dirs, ry))
    return;
  blpo_cuda_tangent(blpo_cuda(be), m, P, params, x, n, acts, K, dirs, work, ry);
}

size_t cuda_mlp_tangent_work(const blpo_mlp *m, int n, int K) {
  return (size_t)K * n * m->act_floats_per_row;
}

void cuda_critic_hvp_rows(blpo_backend *be, const blpo_mlp *m, int P, const float *params,
                          const float *x, int n, const float *acts, const float *target, int K,
                          const int32_t *idx, float *rows, float *work) {
  if (blpo_cuda_hvp_rows_fused(be, m, P, params, x, n, acts, target, K, idx, rows, work))
    return;
  size_t stride = (size_t)K * m->num_params;
  blpo_cuda_critic_hvp_pass(blpo_cuda(be), m, P, params, x, n, acts, target, K, NULL, 0, idx, rows,
                            stride, work);
}

void cuda_critic_hvp(blpo_backend *be, const blpo_mlp *m, int P, const float *params,
                     const float *x, int n, const float *acts, const float *target, int K,
                     const float *dirs, float *hv, float *work) {
  size_t stride = (size_t)K * m->num_params;
  blpo_cuda_critic_hvp_pass(blpo_cuda(be), m, P, params, x, n, acts, target, K, dirs, stride, NULL,
                            hv, stride, work);
}

size_t cuda_critic_hvp_work(const blpo_mlp *m, int n, int K) {
  return blpo_cuda_hvp_work_floats(m, n, K);
}

void cuda_nystrom_solve(blpo_backend *be, int P, size_t np, int k, const float *rows,
                        const int32_t *idx, const float *v, float rho, float ridge, float tol,
                        float *x, float *stats) {
  if (blpo_cuda_nystrom_fused(be, P, np, k, rows, idx, v, rho, ridge, tol, x, stats))
    return;
  blpo_cuda_impl *impl = blpo_cuda(be);
  so_solver *s = ensure(be, P, k, np, 0);
  size_t kk = (size_t)k * k;
  long long kn = (long long)k * (long long)np;
  // cores M_p = C_p[:, idx_p], symmetrised; symmetric, so row- and
  // column-major agree
  blpo_launch(impl, nys_core_kernel, blpo_cuda_blocks((size_t)P * kk, kThreads), kThreads, 0, P, k,
              np, rows, idx, s->core);
  if (k <= kBatchedEigMax) {
    cusolverCheck(cusolverDnSsyevjBatched(impl->cusolver, CUSOLVER_EIG_MODE_VECTOR,
                                          CUBLAS_FILL_MODE_UPPER, k, s->core, k, s->lam, s->work,
                                          s->lwork, s->eig_info, s->syevj, P));
  } else {
    for (int p = 0; p < P; p++)
      cusolverCheck(cusolverDnSsyevd(impl->cusolver, CUSOLVER_EIG_MODE_VECTOR,
                                     CUBLAS_FILL_MODE_UPPER, k, s->core + (size_t)p * kk, k,
                                     s->lam + (size_t)p * k, s->work, s->lwork, s->eig_info + p));
  }
  blpo_launch(impl, nys_select_kernel, P, kThreads, 0, k, s->lam, s->eig_info, tol, s->core,
              s->mask, s->rank, stats);
  // B_p (k x np) = U_p^T C_p: row a of the row-major view of an eigenvector
  // buffer is eigenvector a (cut ones zeroed), so B_p = Mbuf_p C_p row-major.
  blpo_cuda_gemm_rm(impl, 0, 0, k, (int)np, k, s->core, k, (long long)kk, rows, (int)np, kn, 0.0f,
                    s->B, (int)np, kn, P);
  // S_p = B_p B_p^T; bv_p = B_p v_p
  blpo_cuda_gemm_rm(impl, 0, 1, k, k, (int)np, s->B, (int)np, kn, s->B, (int)np, kn, 0.0f, s->S, k,
                    (long long)kk, P);
  blpo_cuda_gemm_rm(impl, 0, 0, k, 1, (int)np, s->B, (int)np, kn, v, 1, (long long)np, 0.0f, s->bv,
                    1, k, P);
  blpo_launch(impl, nys_diag_kernel, blpo_cuda_blocks((size_t)P * k, kThreads), kThreads, 0, P, k,
              s->lam, s->mask, rho, ridge, s->S);
  // y_p = S_p^-1 bv_p, all agents in one batched LU (S_p is symmetric, so the
  // column-major factorisation solves the same system)
  cublasCheck(cublasSgetrfBatched(impl->cublas, k, s->S_ptr, k, s->ipiv, s->lu_info, P));
  int arg_info = 0; // argument check only (host); singular systems show in lu_info
  cublasCheck(cublasSgetrsBatched(impl->cublas, CUBLAS_OP_N, k, 1, (const float *const *)s->S_ptr,
                                  k, s->ipiv, s->bv_ptr, k, &arg_info, P));
  // t_p (1 x np) = y_p^T B_p; x_p = (v_p - t_p) / rho, or the fallback
  blpo_cuda_gemm_rm(impl, 0, 0, 1, (int)np, k, s->bv, k, k, s->B, (int)np, kn, 0.0f, s->t, (int)np,
                    (long long)np, P);
  blpo_launch(impl, nys_final_kernel, blpo_cuda_blocks((size_t)P * np, kThreads), kThreads, 0, P,
              np, v, s->t, s->rank, s->lu_info, rho, x, stats);
}

void cuda_cg_solve(blpo_backend *be, const blpo_mlp *m, int P, const float *params,
                   const float *x_in, int n, const float *acts, const float *target, const float *v,
                   float rho, int iters, float tol, float *x, float *cg, float *work,
                   float *stats) {
  if (P <= 0)
    return;
  blpo_cuda_impl *impl = blpo_cuda(be);
  cudaStream_t st = impl->stream;
  size_t np = m->num_params;
  so_solver *s = ensure(be, P, 0, 0, 0);
  if (s->cg_cap < P && blpo_cuda_capture.active) {
    blpo_cuda_fail("blpo", "cg_solve", "workspace growth inside a graph capture", __FILE__,
                   __LINE__);
    return; // the capture is discarded: nothing recorded runs
  }
  if (s->cg_cap < P) {
    cudaCheck(cudaStreamSynchronize(st));
    cudaCheck(cudaFree(s->cg));
    s->cg = NULL;
    if (dev_alloc((void **)&s->cg, sizeof(double) * 4 * (size_t)P))
      blpo_cuda_fail("blpo", "cg_solve", "out of device memory", __FILE__, __LINE__);
    s->cg_cap = P;
  }
  blpo_launch(impl, cg_init_kernel, P, kThreads, 0, np, v, x, cg, s->cg, iters, tol);
  // A fixed count of iterations; an agent that has converged (or met a
  // non-positive curvature) is inactive and its iterations change nothing.
  for (int it = 0; it < iters; it++) {
    blpo_cuda_critic_hvp_pass(impl, m, P, params, x_in, n, acts, target, 1, cg + np, 4 * np, NULL,
                              cg + 2 * np, 4 * np, work);
    blpo_launch(impl, cg_iter_kernel, P, kThreads, 0, np, rho, tol, cg, x, s->cg);
  }
  blpo_launch(impl, cg_final_kernel, blpo_cuda_blocks((size_t)P, kThreads), kThreads, 0, P, s->cg,
              stats);
}

void cuda_dense_solve(blpo_backend *be, int P, size_t np, float *hess, const float *v, float rho,
                      float *x) {
  blpo_cuda_impl *impl = blpo_cuda(be);
  cudaStream_t st = impl->stream;
  so_solver *s = ensure(be, 1, 0, np, 1);
  unsigned np_blocks = blpo_cuda_blocks(np, kThreads);
  int nn = (int)np;
  for (int p = 0; p < P; p++) {
    float *H = hess + (size_t)p * np * np; // (np, np) row-major: LAPACK sees H^T, as on the CPU
    float *xp = x + (size_t)p * np;
    blpo_launch(impl, dense_diag_kernel, np_blocks, kThreads, 0, np, H, rho);
    cudaCheck(
        cudaMemcpyAsync(xp, v + (size_t)p * np, sizeof(float) * np, cudaMemcpyDeviceToDevice, st));
    cusolverCheck(cusolverDnSgetrf(impl->cusolver, nn, nn, H, nn, s->work, s->dipiv, s->info + 1));
    cusolverCheck(
        cusolverDnSgetrs(impl->cusolver, CUBLAS_OP_N, nn, 1, H, nn, s->dipiv, xp, nn, s->info + 2));
    blpo_launch(impl, dense_nan_kernel, np_blocks, kThreads, 0, np, s->info, xp);
  }
}

void cuda_hypergrad_combine(blpo_backend *be, int P, size_t count, float *g, const float *p,
                            float beta, float *stats) {
  if (P <= 0)
    return;
  blpo_hgs_args a = {};
  a.count = count, a.g = g, a.p = p, a.beta = beta, a.stats = stats;
  blpo_launch(blpo_cuda(be), hgs_kernel, (unsigned)P, BLPO_HGS_THREADS, 0, a);
}

// backend.h hypergrad_step: Adam inside the combine's kernel with
// run.fused_update where the agent's vectors are small enough for one block
// (hypergrad_blocks.h), else the combine and the many-block Adam kernel.
void cuda_hypergrad_step(blpo_backend *be, int P, size_t count, float *g, const float *p,
                         float beta, float *stats, float *params, float *m, float *v,
                         blpo_adam_sched sched) {
  if (P <= 0)
    return;
  if (!blpo_cuda(be)->fused_solve || count > BLPO_HGS_MAX_COUNT) {
    cuda_hypergrad_combine(be, P, count, g, p, beta, stats);
    be->adam(be, P, count, params, g, m, v, NULL, sched);
    return;
  }
  blpo_hgs_args a = {};
  a.count = count, a.g = g, a.p = p, a.beta = beta, a.stats = stats;
  a.adam = 1, a.params = params, a.m = m, a.v = v, a.sched = sched;
  blpo_launch(blpo_cuda(be), hgs_kernel, (unsigned)P, BLPO_HGS_THREADS, 0, a);
}

// backend.h reserve_solver. Workspaces that already hold the request are
// kept (as ensure keeps them; a rank-0 request, CG or the dense solve, takes
// any rank): another trainer on this backend may have captured a graph that
// holds their addresses, and while one does (live_graphs) they cannot be
// reallocated, so a request they do not hold fails, with the reason. Grown,
// they hold the old request and the new, as ensure grows them.
int cuda_reserve_solver(blpo_backend *be, int P, int k, size_t np, int dense) {
  blpo_cuda_impl *impl = blpo_cuda(be);
  so_solver *s = solver_of(be);
  if (k < 0)
    k = 0;
  if (s && s->P >= P && (k == 0 || s->k == k) && s->np >= np && (s->dense || !dense))
    return 0;
  if (s && impl->live_graphs > 0) {
    fprintf(stderr,
            "blpo-gpu: reserve_solver: the solver workspaces (P %d, rank %d, %zu parameters) "
            "cannot be regrown for P %d, rank %d, %zu parameters while %d captured graph(s) on "
            "this backend use them; create the trainer with the largest solver first, or give "
            "each trainer its own backend\n",
            s->P, s->k, s->np, P, k, np, impl->live_graphs);
    return -1;
  }
  if (s)
    return reserve(be, s->P > P ? s->P : P, k > 0 ? k : s->k, s->np > np ? s->np : np,
                   dense || s->dense);
  return reserve(be, P, k, np, dense);
}

} // namespace

void blpo_cuda_install_second_order(blpo_backend *be) {
  be->reserve_solver = cuda_reserve_solver;
  be->axpy = cuda_axpy;
  be->dot = cuda_dot;
  be->value_loss = cuda_value_loss;
  be->blpo_actor = cuda_blpo_actor;
  be->mixed_head = cuda_mixed_head;
  be->mlp_tangent = cuda_mlp_tangent;
  be->mlp_tangent_work = cuda_mlp_tangent_work;
  be->critic_hvp_rows = cuda_critic_hvp_rows;
  be->critic_hvp = cuda_critic_hvp;
  be->critic_hvp_work = cuda_critic_hvp_work;
  be->nystrom_solve = cuda_nystrom_solve;
  be->cg_solve = cuda_cg_solve;
  be->dense_solve = cuda_dense_solve;
  be->hypergrad_combine = cuda_hypergrad_combine;
  be->hypergrad_step = cuda_hypergrad_step;
}

void blpo_cuda_free_solver(blpo_cuda_impl *impl) {
  if (!impl || !impl->solver)
    return;
  free_solver((so_solver *)impl->solver);
  impl->solver = NULL;
}
