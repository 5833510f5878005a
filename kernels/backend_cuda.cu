// The CUDA backend: device 0, one stream, one cuBLAS and one cuSOLVER handle.
// Every operation is queued on the stream; only download and sync wait for it.
// Each kernel runs the same BLPO_HD per-element functions as the CPU backend
// (src/backend_cpu.c), so both compute the same numbers up to float rounding
// (FMA contraction, libdevice vs libm ulps, reduction order). Reductions are
// deterministic: one block of BLPO_CUDA_THREADS threads per agent, summed in
// double in a fixed tree order (no atomics).
//
// Kernels here are the simple first version: one thread per element, one
// block per agent for reductions.
#include <stdio.h>
#include <string.h>

#include "blpo/cuda_envs.h"
#include "blpo/cuda_error_hint.h"
#include "blpo/episode_blocks.h"
#include "blpo/gae.h"
#include "blpo/heads.h"
#include "blpo/optim.h"
#include "blpo/permute.h"
#include "blpo/policy.h"
#include "blpo/ppo_loss.h"
#include "blpo/rng.h"
#include "cuda_ops.h"

// ---- errors ------------------------------------------------------------------

blpo_cuda_capture_state blpo_cuda_capture = {0, 0, {0}};

// The second line of a CUDA error's message, where its name is not enough.
static void print_cuda_hint(const char *err_name) {
  const char *hint = blpo_cuda_error_hint(err_name);
  if (hint)
    fprintf(stderr, "blpo-gpu: %s\n", hint);
}

void blpo_cuda_fail(const char *lib, const char *call, const char *err, const char *file,
                    int line) {
  if (blpo_cuda_capture.active) {
    // Inside a graph capture nothing has run: remember the first failure
    // (capture_end reports it and the trainer runs the work directly).
    if (!blpo_cuda_capture.failed)
      snprintf(blpo_cuda_capture.first, sizeof(blpo_cuda_capture.first),
               "%s error %s in %s at %s:%d", lib, err, call, file, line);
    blpo_cuda_capture.failed = 1;
    return;
  }
  fprintf(stderr, "blpo-gpu: %s error %s in %s at %s:%d\n", lib, err, call, file, line);
  if (!strcmp(lib, "CUDA"))
    print_cuda_hint(err);
  fflush(stderr);
  exit(4);
}

int blpo_cuda_smem_room(const void *kernel, const char *name) {
  int dev = 0, optin = 0;
  cudaCheck(cudaGetDevice(&dev));
  cudaCheck(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
  cudaFuncAttributes fa;
  cudaError_t e = cudaFuncGetAttributes(&fa, kernel);
  if (e != cudaSuccess)
    blpo_cuda_fail("CUDA", name, cudaGetErrorName(e), __FILE__, __LINE__);
  const int room = optin - (int)fa.sharedSizeBytes;
  e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, room);
  if (e != cudaSuccess)
    blpo_cuda_fail("CUDA", name, cudaGetErrorName(e), __FILE__, __LINE__);
  return room;
}

void blpo_cuda_allow_smem(blpo_backend *be, const void *kernel, const char *name) {
  const int room = blpo_cuda_smem_room(kernel, name);
  if (room < blpo_cuda(be)->smem_optin)
    blpo_cuda(be)->smem_optin = room;
}

const char *blpo_cublas_status_name(cublasStatus_t s) {
  switch (s) {
  case CUBLAS_STATUS_SUCCESS:
    return "CUBLAS_STATUS_SUCCESS";
  case CUBLAS_STATUS_NOT_INITIALIZED:
    return "CUBLAS_STATUS_NOT_INITIALIZED";
  case CUBLAS_STATUS_ALLOC_FAILED:
    return "CUBLAS_STATUS_ALLOC_FAILED";
  case CUBLAS_STATUS_INVALID_VALUE:
    return "CUBLAS_STATUS_INVALID_VALUE";
  case CUBLAS_STATUS_ARCH_MISMATCH:
    return "CUBLAS_STATUS_ARCH_MISMATCH";
  case CUBLAS_STATUS_MAPPING_ERROR:
    return "CUBLAS_STATUS_MAPPING_ERROR";
  case CUBLAS_STATUS_EXECUTION_FAILED:
    return "CUBLAS_STATUS_EXECUTION_FAILED";
  case CUBLAS_STATUS_INTERNAL_ERROR:
    return "CUBLAS_STATUS_INTERNAL_ERROR";
  case CUBLAS_STATUS_NOT_SUPPORTED:
    return "CUBLAS_STATUS_NOT_SUPPORTED";
  case CUBLAS_STATUS_LICENSE_ERROR:
    return "CUBLAS_STATUS_LICENSE_ERROR";
  default:
    return "CUBLAS_STATUS_UNKNOWN";
  }
}

const char *blpo_cusolver_status_name(cusolverStatus_t s) {
  switch (s) {
  case CUSOLVER_STATUS_SUCCESS:
    return "CUSOLVER_STATUS_SUCCESS";
  case CUSOLVER_STATUS_NOT_INITIALIZED:
    return "CUSOLVER_STATUS_NOT_INITIALIZED";
  case CUSOLVER_STATUS_ALLOC_FAILED:
    return "CUSOLVER_STATUS_ALLOC_FAILED";
  case CUSOLVER_STATUS_INVALID_VALUE:
    return "CUSOLVER_STATUS_INVALID_VALUE";
  case CUSOLVER_STATUS_ARCH_MISMATCH:
    return "CUSOLVER_STATUS_ARCH_MISMATCH";
  case CUSOLVER_STATUS_MAPPING_ERROR:
    return "CUSOLVER_STATUS_MAPPING_ERROR";
  case CUSOLVER_STATUS_EXECUTION_FAILED:
    return "CUSOLVER_STATUS_EXECUTION_FAILED";
  case CUSOLVER_STATUS_INTERNAL_ERROR:
    return "CUSOLVER_STATUS_INTERNAL_ERROR";
  case CUSOLVER_STATUS_MATRIX_TYPE_NOT_SUPPORTED:
    return "CUSOLVER_STATUS_MATRIX_TYPE_NOT_SUPPORTED";
  case CUSOLVER_STATUS_NOT_SUPPORTED:
    return "CUSOLVER_STATUS_NOT_SUPPORTED";
  case CUSOLVER_STATUS_ZERO_PIVOT:
    return "CUSOLVER_STATUS_ZERO_PIVOT";
  case CUSOLVER_STATUS_INVALID_LICENSE:
    return "CUSOLVER_STATUS_INVALID_LICENSE";
  default:
    return "CUSOLVER_STATUS_UNKNOWN";
  }
}

namespace {

const int kT = BLPO_CUDA_THREADS;

inline cudaStream_t stream_of(blpo_backend *be) { return blpo_cuda(be)->stream; }

// ---- buffers -----------------------------------------------------------------

void *cuda_alloc(blpo_backend *be, size_t bytes) {
  void *p = NULL;
  size_t want = bytes ? bytes : 1;
  cudaError_t e = cudaMalloc(&p, want);
  if (e != cudaSuccess) {
    fprintf(stderr, "blpo-gpu: cudaMalloc of %zu bytes failed: %s (%s)\n", want,
            cudaGetErrorName(e), cudaGetErrorString(e));
    print_cuda_hint(cudaGetErrorName(e));
    cudaGetLastError(); // an allocation failure is not sticky: clear it
    return NULL;
  }
  cudaCheck(cudaMemsetAsync(p, 0, want, stream_of(be)));
  return p;
}

void cuda_release(blpo_backend *be, void *p) {
  (void)be;
  if (p)
    cudaCheck(cudaFree(p)); // synchronises with the device: no kernel still uses p
}

// Pageable host memory: cudaMemcpyAsync returns once src has been staged, so
// the caller may overwrite src right away.
void cuda_upload(blpo_backend *be, void *dst, const void *src, size_t bytes) {
  if (bytes)
    cudaCheck(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_of(be)));
}

void cuda_download(blpo_backend *be, void *dst, const void *src, size_t bytes) {
  if (bytes)
    cudaCheck(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_of(be)));
  cudaCheck(cudaStreamSynchronize(stream_of(be)));
}

// dst (count) = value.
__global__ void fill_kernel(float *__restrict__ dst, float value, size_t count) {
  blpo_pdl_enter();
  size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < count)
    dst[i] = value;
}

void cuda_fill(blpo_backend *be, float *dst, float value, size_t count) {
  if (!count)
    return;
  blpo_launch(blpo_cuda(be), fill_kernel, blpo_cuda_blocks(count, kT), kT, 0, dst, value, count);
}

void cuda_sync(blpo_backend *be) { cudaCheck(cudaStreamSynchronize(stream_of(be))); }

// ---- envs --------------------------------------------------------------------

// states (P,N); obs (P,N,O).
void cuda_env_reset(blpo_backend *be, const blpo_dims *d, blpo_env_state *states, float *obs) {
  cudaCheck((cudaError_t)blpo_cuda_env_reset(d->env_id, d->P, d->N, d->seed, states, obs,
                                             (void *)stream_of(be)));
}

// states (P,N); actions (P,N,A); obs (P,N,O); reward, done, ep_ret (P,N);
// final_obs (P,N,O) and trunc (P,N) optional.
void cuda_env_step(blpo_backend *be, const blpo_dims *d, blpo_env_state *states,
                   const float *actions, float *obs, float *reward, float *done, float *ep_ret,
                   float *final_obs, float *trunc) {
  cudaCheck((cudaError_t)blpo_cuda_env_step(d->env_id, d->P, d->N, d->seed, states, actions, obs,
                                            reward, done, ep_ret, NULL, final_obs, trunc,
                                            (void *)stream_of(be)));
}

// ---- observation / reward normalisation --------------------------------------

// One block per agent p: Chan et al.'s update of stats (P, 2*dim+1) = [mean
// (dim) | var (dim) | count] with the batch x (P, rows, dim), as the CPU's
// running_moments_update: double sums, the batch mean first, then the
// centred second moment. Thread 0 alone reads and writes the stats.
__global__ void moments_update_kernel(int dim, int rows, float *__restrict__ stats,
                                      const float *__restrict__ x) {
  blpo_pdl_enter();
  __shared__ double sh[BLPO_CUDA_THREADS];
  const int p = blockIdx.x;
  float *mean = stats + (size_t)p * (2 * dim + 1), *var = mean + dim, *count = mean + 2 * dim;
  const float *xp = x + (size_t)p * rows * dim;
  for (int j = 0; j < dim; j++) {
    double s = 0;
    for (int i = threadIdx.x; i < rows; i += blockDim.x)
      s += xp[(size_t)i * dim + j];
    s = blpo_block_sum(s, sh);
    double bm = s / rows;
    double s2 = 0;
    for (int i = threadIdx.x; i < rows; i += blockDim.x) {
      double e = xp[(size_t)i * dim + j] - bm;
      s2 += e * e;
    }
    s2 = blpo_block_sum(s2, sh);
    if (threadIdx.x == 0) {
      double bv = s2 / rows, c = *count, tot = c + rows;
      double delta = bm - mean[j];
      double m2 = (double)var[j] * c + bv * rows + delta * delta * c * rows / tot;
      mean[j] = (float)(mean[j] + delta * rows / tot);
      var[j] = (float)(m2 / tot);
    }
  }
  if (threadIdx.x == 0)
    *count += (float)rows;
}

// obs (P,N,O) normalised in place with stats (P, 2*O+1).
__global__ void obs_normalise_kernel(int P, int N, int O, const float *__restrict__ stats,
                                     float *__restrict__ obs) {
  blpo_pdl_enter();
  size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= (size_t)P * N * O)
    return;
  size_t p = e / ((size_t)N * O);
  int j = (int)(e % O);
  const float *st = stats + p * (2 * O + 1);
  obs[e] = (obs[e] - st[j]) / sqrtf(st[O + j] + 1e-8f);
}

void cuda_obs_norm(blpo_backend *be, const blpo_dims *d, float *stats, float *obs, int update) {
  if (d->P <= 0 || d->N <= 0)
    return;
  const blpo_cuda_impl *impl = blpo_cuda(be);
  if (update) {
    blpo_launch(impl, moments_update_kernel, d->P, kT, 0, d->obs_dim, d->N, stats, obs);
  }
  size_t cnt = (size_t)d->P * d->N * d->obs_dim;
  blpo_launch(impl, obs_normalise_kernel, blpo_cuda_blocks(cnt, kT), kT, 0, d->P, d->N, d->obs_dim,
              stats, obs);
}

// ret_acc (count) = ret_acc * gamma * (1 - done) + reward.
__global__ void ret_acc_kernel(size_t count, float *__restrict__ ret_acc,
                               const float *__restrict__ reward, const float *__restrict__ done,
                               float gamma) {
  blpo_pdl_enter();
  size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (e < count)
    ret_acc[e] = ret_acc[e] * gamma * (1.0f - done[e]) + reward[e];
}

// reward (P,N) /= sqrt(var_p + 1e-8) with stats (P,3).
__global__ void reward_scale_kernel(int P, int N, const float *__restrict__ stats,
                                    float *__restrict__ reward) {
  blpo_pdl_enter();
  size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= (size_t)P * N)
    return;
  float inv = 1.0f / sqrtf(stats[(e / N) * 3 + 1] + 1e-8f);
  reward[e] *= inv;
}

// stats (P,3); ret_acc, reward, done (P,N).
void cuda_reward_norm(blpo_backend *be, const blpo_dims *d, float *stats, float *ret_acc,
                      float *reward, const float *done, float gamma) {
  if (d->P <= 0 || d->N <= 0)
    return;
  const blpo_cuda_impl *impl = blpo_cuda(be);
  size_t cnt = (size_t)d->P * d->N;
  blpo_launch(impl, ret_acc_kernel, blpo_cuda_blocks(cnt, kT), kT, 0, cnt, ret_acc, reward, done,
              gamma);
  // dim 1: stats (P, 2*1+1) = (mean, var, count), the batch ret_acc (P,N,1)
  blpo_launch(impl, moments_update_kernel, d->P, kT, 0, 1, d->N, stats, ret_acc);
  blpo_launch(impl, reward_scale_kernel, blpo_cuda_blocks(cnt, kT), kT, 0, d->P, d->N, stats,
              reward);
}

// ---- policy ------------------------------------------------------------------

// One thread per env e = p*N + i. head (P,N,Y) with agent stride head_stride;
// actor_params (P,np) with log_std at num_mlp; actions (P,N,A); logp (P,N).
__global__ void policy_sample_kernel(blpo_dims d, size_t np, size_t num_mlp,
                                     const float *__restrict__ actor_params,
                                     const float *__restrict__ head, size_t head_stride,
                                     blpo_counter ctr, float *__restrict__ actions,
                                     float *__restrict__ logp) {
  blpo_pdl_enter();
  size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= (size_t)d.P * d.N)
    return;
  const uint64_t counter = (uint64_t)blpo_counter_at(ctr, blpo_clock_read(ctr.clock));
  const int p = (int)(e / d.N), i = (int)(e % d.N);
  const float *log_std = actor_params + (size_t)p * np + num_mlp;
  const float *z = head + (size_t)p * head_stride + (size_t)i * d.head_dim;
  logp[e] = blpo_policy_draw(d.discrete, d.num_actions, d.act_dim, z, log_std,
                             blpo_action_key(d.seed, p, i), counter, actions + e * d.act_dim);
}

void cuda_policy_sample(blpo_backend *be, const blpo_dims *d, const blpo_mlp *actor,
                        const float *actor_params, const float *head, size_t head_stride,
                        blpo_counter counter, float *actions, float *logp) {
  size_t cnt = (size_t)d->P * d->N;
  if (!cnt)
    return;
  blpo_launch(blpo_cuda(be), policy_sample_kernel, blpo_cuda_blocks(cnt, kT), kT, 0, *d,
              actor->num_params, actor->num_mlp_params, actor_params, head, head_stride, counter,
              actions, logp);
}

// head (P,N,Y) with agent stride head_stride -> actions (P,N,A).
__global__ void policy_mode_kernel(blpo_dims d, const float *__restrict__ head, size_t head_stride,
                                   float *__restrict__ actions) {
  blpo_pdl_enter();
  size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= (size_t)d.P * d.N)
    return;
  const int Y = d.head_dim, A = d.act_dim;
  const size_t p = e / d.N, i = e % d.N;
  const float *z = head + p * head_stride + i * Y;
  float *act = actions + e * A;
  if (d.discrete) {
    int best = 0;
    for (int k = 1; k < d.num_actions; k++)
      if (z[k] > z[best])
        best = k;
    act[0] = (float)best;
  } else {
    for (int k = 0; k < A; k++)
      act[k] = z[k];
  }
}

void cuda_policy_mode(blpo_backend *be, const blpo_dims *d, const float *head, size_t head_stride,
                      float *actions) {
  size_t cnt = (size_t)d->P * d->N;
  if (!cnt)
    return;
  blpo_launch(blpo_cuda(be), policy_mode_kernel, blpo_cuda_blocks(cnt, kT), kT, 0, *d, head,
              head_stride, actions);
}

// ---- targets -----------------------------------------------------------------

// One thread per env column e < PN of the time-major (T,P,N) buffers reward,
// done, value, adv, ret; last_value (P,N).
__global__ void gae_kernel(int PN, int T, const float *__restrict__ reward,
                           const float *__restrict__ done, const float *__restrict__ value,
                           const float *__restrict__ last_value, float gamma, float lambda,
                           float *__restrict__ adv, float *__restrict__ ret) {
  blpo_pdl_enter();
  int e = blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= PN)
    return;
  blpo_gae_column(reward + e, done + e, value + e, last_value[e], T, PN, gamma, lambda, adv + e,
                  ret ? ret + e : NULL);
}

void cuda_gae(blpo_backend *be, const blpo_dims *d, const float *reward, const float *done,
              const float *value, const float *last_value, float gamma, float lambda, float *adv,
              float *ret) {
  int PN = d->P * d->N;
  if (PN <= 0)
    return;
  blpo_launch(blpo_cuda(be), gae_kernel, blpo_cuda_blocks((size_t)PN, kT), kT, 0, PN, d->T, reward,
              done, value, last_value, gamma, lambda, adv, ret);
}

// ---- episode summaries -------------------------------------------------------

// One block per agent runs the block program of include/blpo/episode_blocks.h.
__global__ void __launch_bounds__(BLPO_EPS_THREADS)
    episode_summary_kernel(const __grid_constant__ blpo_eps_args a) {
  blpo_pdl_enter();
  __shared__ blpo_eps_shared sh;
  const int phases = blpo_eps_phases();
  for (int ph = 0; ph < phases; ph++) {
    blpo_eps_block(&a, blockIdx.x, threadIdx.x, ph, &sh);
    __syncthreads();
  }
}

void cuda_episode_summary(blpo_backend *be, const blpo_dims *d, const float *eret,
                          blpo_episode_summary *out) {
  if (d->P <= 0)
    return;
  blpo_eps_args a = {d->T, d->N, (size_t)d->P * d->N, eret, out};
  blpo_launch(blpo_cuda(be), episode_summary_kernel, (unsigned)d->P, BLPO_EPS_THREADS, 0, a);
}

// ---- minibatches -------------------------------------------------------------

// dst (P,n,width): row i of agent p = src row idx[p*idx_stride + i] (a row of
// the whole src buffer, width floats per row); idx int32 (P, idx_stride).
__global__ void gather_rows_kernel(int P, const int32_t *__restrict__ idx, size_t idx_stride, int n,
                                   const float *__restrict__ src, int width,
                                   float *__restrict__ dst) {
  blpo_pdl_enter();
  size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  size_t per = (size_t)n * width;
  if (e >= (size_t)P * per)
    return;
  size_t p = e / per, k = e % per, i = k / width, c = k % width;
  dst[e] = src[(size_t)idx[p * idx_stride + i] * width + c];
}

void cuda_gather_rows(blpo_backend *be, int P, const int32_t *idx, size_t idx_stride, int n,
                      const float *src, int width, float *dst) {
  size_t cnt = (size_t)(P > 0 ? P : 0) * (size_t)(n > 0 ? n : 0) * (size_t)(width > 0 ? width : 0);
  if (!cnt)
    return;
  blpo_launch(blpo_cuda(be), gather_rows_kernel, blpo_cuda_blocks(cnt, kT), kT, 0, P, idx,
              idx_stride, n, src, width, dst);
}

// gather_rows_many: the gathers' elements end to end, gather t's P * n *
// width of them from end[t-1] to end[t]; each thread finds its gather by a
// scan of the (at most BLPO_GATHER_MAX) ends.
struct gather_set {
  blpo_gather g[BLPO_GATHER_MAX];
  size_t end[BLPO_GATHER_MAX];
  int count;
};

__global__ void gather_rows_many_kernel(const __grid_constant__ gather_set s) {
  blpo_pdl_enter();
  size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= s.end[s.count - 1])
    return;
  int t = 0;
  while (e >= s.end[t])
    t++;
  const blpo_gather *g = &s.g[t];
  e -= t ? s.end[t - 1] : 0;
  size_t per = (size_t)g->n * g->width;
  size_t p = e / per, k = e % per, i = k / g->width, c = k % g->width;
  g->dst[e] = g->src[(size_t)g->idx[p * g->idx_stride + i] * g->width + c];
}

void cuda_gather_rows_many(blpo_backend *be, int P, int count, const blpo_gather *g) {
  if (count > BLPO_GATHER_MAX) {
    blpo_cuda_fail("blpo", "gather_rows_many", "more gathers than BLPO_GATHER_MAX", __FILE__,
                   __LINE__);
    return;
  }
  gather_set s;
  memset(&s, 0, sizeof(s));
  size_t total = 0;
  for (int k = 0; k < count; k++) {
    size_t cnt = (size_t)(P > 0 ? P : 0) * (size_t)(g[k].n > 0 ? g[k].n : 0) *
                 (size_t)(g[k].width > 0 ? g[k].width : 0);
    if (!cnt)
      continue; // an empty gather takes no elements (and no division by n * width)
    s.g[s.count] = g[k];
    s.end[s.count++] = total += cnt;
  }
  if (!s.count)
    return;
  blpo_launch(blpo_cuda(be), gather_rows_many_kernel, blpo_cuda_blocks(total, kT), kT, 0, s);
}

// P blocks of count floats: dst[p*dst_stride + k] = src[p*src_stride + k].
__global__ void copy_blocks_kernel(int P, size_t count, float *__restrict__ dst, size_t dst_stride,
                                   const float *__restrict__ src, size_t src_stride) {
  blpo_pdl_enter();
  size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= (size_t)P * count)
    return;
  size_t p = e / count, k = e % count;
  dst[p * dst_stride + k] = src[p * src_stride + k];
}

void cuda_copy_blocks(blpo_backend *be, int P, size_t count, float *dst, size_t dst_stride,
                      const float *src, size_t src_stride) {
  if (P <= 0 || !count)
    return;
  size_t cnt = (size_t)P * count;
  blpo_launch(blpo_cuda(be), copy_blocks_kernel, blpo_cuda_blocks(cnt, kT), kT, 0, P, count, dst,
              dst_stride, src, src_stride);
}

// One thread per (agent p, position i < T*N): idx (P, T*N), as
// cpu_shuffle_samples (src/backend_cpu.c); the counter read from the clock.
__global__ void shuffle_samples_kernel(int P, int N, int T, uint64_t seed, blpo_counter ctr,
                                       int32_t *__restrict__ idx) {
  blpo_pdl_enter();
  const size_t TN = (size_t)T * N;
  size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= (size_t)P * TN)
    return;
  const int p = (int)(e / TN);
  const uint32_t c = (uint32_t)blpo_counter_at(ctr, blpo_clock_read(ctr.clock));
  blpo_perm pm = blpo_perm_make(blpo_samples_key(seed, p), c, (uint32_t)TN);
  idx[e] = blpo_sample_row(&pm, P, N, p, (uint32_t)(e % TN));
}

void cuda_shuffle_samples(blpo_backend *be, const blpo_dims *d, blpo_counter counter,
                          int32_t *idx) {
  size_t cnt = (size_t)d->P * d->T * d->N;
  if (!cnt)
    return;
  blpo_launch(blpo_cuda(be), shuffle_samples_kernel, blpo_cuda_blocks(cnt, kT), kT, 0, d->P, d->N,
              d->T, d->seed, counter, idx);
}

// One thread per (agent p, env slot < N) of the trajectory minibatches: rows
// (P, T*N), last (P, N), as cpu_shuffle_trajectories.
__global__ void shuffle_trajectories_kernel(int P, int N, int T, int m, uint64_t seed,
                                            blpo_counter ctr, int32_t *__restrict__ rows,
                                            int32_t *__restrict__ last) {
  blpo_pdl_enter();
  size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= (size_t)P * N)
    return;
  const int p = (int)(e / N), slot = (int)(e % N);
  const int mb = slot / m, j = slot % m;
  const uint32_t c = (uint32_t)blpo_counter_at(ctr, blpo_clock_read(ctr.clock));
  blpo_perm pm = blpo_perm_make(blpo_trajectories_key(seed, p), c, (uint32_t)N);
  const int env = (int)blpo_perm_at(&pm, (uint32_t)slot);
  const size_t TN = (size_t)T * N;
  for (int t = 0; t < T; t++)
    rows[(size_t)p * TN + (size_t)mb * T * m + (size_t)t * m + j] =
        (int32_t)(((int64_t)t * P + p) * N + env);
  last[(size_t)p * N + slot] = (int32_t)(((int64_t)T * P + p) * N + env);
}

void cuda_shuffle_trajectories(blpo_backend *be, const blpo_dims *d, int m, blpo_counter counter,
                               int32_t *rows, int32_t *last) {
  size_t cnt = (size_t)d->P * d->N;
  if (!cnt || m <= 0)
    return;
  blpo_launch(blpo_cuda(be), shuffle_trajectories_kernel, blpo_cuda_blocks(cnt, kT), kT, 0, d->P,
              d->N, d->T, m, d->seed, counter, rows, last);
}

// One thread per (draw j, agent p, index i < k): idx (draws, P, k), as
// cpu_sketch_indices.
__global__ void sketch_indices_kernel(int P, int draws, uint64_t seed, uint32_t np, int k,
                                      blpo_counter ctr, int32_t *__restrict__ idx) {
  blpo_pdl_enter();
  size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= (size_t)draws * P * k)
    return;
  const int p = (int)(e / k % P), j = (int)(e / ((size_t)k * P));
  const int64_t c0 = blpo_counter_at(ctr, blpo_clock_read(ctr.clock));
  blpo_perm pm = blpo_perm_make(blpo_sketch_key(seed, p), (uint32_t)(c0 + j), np);
  idx[e] = (int32_t)blpo_perm_at(&pm, (uint32_t)(e % k));
}

void cuda_sketch_indices(blpo_backend *be, const blpo_dims *d, size_t np, int k,
                         blpo_counter counter, int draws, int32_t *idx) {
  size_t cnt = (size_t)(draws > 0 ? draws : 0) * d->P * (size_t)(k > 0 ? k : 0);
  if (!cnt)
    return;
  blpo_launch(blpo_cuda(be), sketch_indices_kernel, blpo_cuda_blocks(cnt, kT), kT, 0, d->P, draws,
              d->seed, (uint32_t)np, k, counter, idx);
}

// reward, trunc (count = P*N); value (P, agent stride value_stride_agent, N floats).
__global__ void bootstrap_truncated_kernel(size_t count, float *__restrict__ reward,
                                           const float *__restrict__ trunc,
                                           const float *__restrict__ value,
                                           size_t value_stride_agent, int N, float gamma) {
  blpo_pdl_enter();
  size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= count)
    return;
  if (trunc[e] != 0.0f)
    reward[e] += gamma * value[(e / N) * value_stride_agent + e % N];
}

void cuda_bootstrap_truncated(blpo_backend *be, size_t count, float *reward, const float *trunc,
                              const float *value, size_t value_stride_agent, int N, float gamma) {
  if (!count)
    return;
  blpo_launch(blpo_cuda(be), bootstrap_truncated_kernel, blpo_cuda_blocks(count, kT), kT, 0, count,
              reward, trunc, value, value_stride_agent, N, gamma);
}

// ---- losses ------------------------------------------------------------------

// One block per agent p, rows i strided over the threads; the per-agent sums
// (advantage moments, loss statistics, log_std gradient) are block reductions
// in double. Inputs (P,n,.): head (agent stride head_stride, Y per row),
// value (agent stride value_stride), actions (A per row), logp_old, adv, ret,
// value_old. Outputs: dhead (P,n,Y), dvalue (P,n) written; actor_grad
// (P,np): log_std part [num_mlp, num_mlp + A) written for continuous heads;
// stats (P,BLPO_STAT_COUNT) accumulated. The bound's minimum of one block
// per multiprocessor keeps ptxas from capping the kernel at 64 registers and
// spilling, as it does on sm_80..89 with the thread bound alone
// (tools/kernel_resources.py).
__global__ void __launch_bounds__(kT, 1)
    ppo_loss_kernel(blpo_dims d, size_t np, size_t num_mlp, const float *__restrict__ actor_params,
                    int n, const float *__restrict__ head, size_t head_stride,
                    const float *__restrict__ value, size_t value_stride,
                    const float *__restrict__ actions, const float *__restrict__ logp_old,
                    const float *__restrict__ adv, const float *__restrict__ ret,
                    const float *__restrict__ value_old, blpo_ppo_params pp,
                    float *__restrict__ dhead, float *__restrict__ dvalue,
                    float *__restrict__ actor_grad, float *__restrict__ stats) {
  blpo_pdl_enter();
  __shared__ double sh[BLPO_CUDA_THREADS];
  const int p = blockIdx.x;
  const int Y = d.head_dim, A = d.act_dim;
  const float inv_n = 1.0f / (float)n;
  const size_t o = (size_t)p * n;
  const float *log_std = actor_params + (size_t)p * np + num_mlp;
  // advantage normalisation (PureJaxRL: population std, + 1e-8)
  double amean = 0, astd = 1;
  if (pp.norm_adv) {
    double s = 0, s2 = 0;
    for (int i = threadIdx.x; i < n; i += blockDim.x)
      s += adv[o + i];
    s = blpo_block_sum(s, sh);
    amean = s / n;
    for (int i = threadIdx.x; i < n; i += blockDim.x)
      s2 += (adv[o + i] - amean) * (adv[o + i] - amean);
    s2 = blpo_block_sum(s2, sh);
    astd = sqrt(s2 / n) + 1e-8;
  }
  double pg = 0, vl = 0, ent = 0, kl = 0, cf = 0;
  double gls[BLPO_ENV_MAX_ACT];
  for (int j = 0; j < BLPO_ENV_MAX_ACT; j++)
    gls[j] = 0;
  for (int i = threadIdx.x; i < n; i += blockDim.x) {
    size_t r = o + i;
    float a_n = (float)((adv[r] - amean) / astd);
    float dls[BLPO_ENV_MAX_ACT];
    blpo_ppo_row_terms t = blpo_ppo_row(
        d.discrete, d.num_actions, A, head + (size_t)p * head_stride + (size_t)i * Y, log_std,
        actions + r * A, logp_old[r], a_n, value[(size_t)p * value_stride + i], value_old[r],
        ret[r], pp, inv_n, dhead + r * Y, &dvalue[r], dls);
    if (!d.discrete)
      for (int j = 0; j < A; j++)
        gls[j] += dls[j];
    pg += t.pg;
    vl += t.vl;
    ent += t.ent;
    kl += t.kl;
    cf += t.clipped;
  }
  pg = blpo_block_sum(pg, sh);
  vl = blpo_block_sum(vl, sh);
  ent = blpo_block_sum(ent, sh);
  kl = blpo_block_sum(kl, sh);
  cf = blpo_block_sum(cf, sh);
  if (!d.discrete)
    for (int j = 0; j < A; j++) // A is the same in every thread: all reach the sync
      gls[j] = blpo_block_sum(gls[j], sh);
  if (threadIdx.x == 0) {
    if (!d.discrete) {
      float *g_log_std = actor_grad + (size_t)p * np + num_mlp;
      for (int j = 0; j < A; j++)
        g_log_std[j] = (float)gls[j];
    }
    float *st = stats + (size_t)p * BLPO_STAT_COUNT;
    st[BLPO_STAT_PG_LOSS] += (float)(pg / n);
    st[BLPO_STAT_V_LOSS] += (float)(vl / n);
    st[BLPO_STAT_ENTROPY] += (float)(ent / n);
    st[BLPO_STAT_APPROX_KL] += (float)(kl / n);
    st[BLPO_STAT_CLIPFRAC] += (float)(cf / n);
    st[BLPO_STAT_COUNT_MB] += 1.0f;
  }
}

void cuda_ppo_loss(blpo_backend *be, const blpo_dims *d, const blpo_mlp *actor,
                   const float *actor_params, int n, const float *head, size_t head_stride,
                   const float *value, size_t value_stride, const float *actions,
                   const float *logp_old, const float *adv, const float *ret,
                   const float *value_old, blpo_ppo_params pp, float *dhead, float *dvalue,
                   float *actor_grad, float *stats) {
  if (d->P <= 0)
    return;
  blpo_launch(blpo_cuda(be), ppo_loss_kernel, d->P, kT, 0, *d, actor->num_params,
              actor->num_mlp_params, actor_params, n, head, head_stride, value, value_stride,
              actions, logp_old, adv, ret, value_old, pp, dhead, dvalue, actor_grad, stats);
}

// ---- optimiser ---------------------------------------------------------------

// One block per agent: out (P) = sum of squares of x (P,count), in double.
__global__ void sumsq_kernel(const float *__restrict__ x, size_t count, float *__restrict__ out) {
  blpo_pdl_enter();
  __shared__ double sh[BLPO_CUDA_THREADS];
  const float *xp = x + (size_t)blockIdx.x * count;
  double s = 0;
  for (size_t i = threadIdx.x; i < count; i += blockDim.x)
    s += (double)xp[i] * xp[i];
  s = blpo_block_sum(s, sh);
  if (threadIdx.x == 0)
    out[blockIdx.x] = (float)s;
}

void cuda_sumsq(blpo_backend *be, int P, const float *x, size_t count, float *out) {
  if (P <= 0)
    return;
  blpo_launch(blpo_cuda(be), sumsq_kernel, P, kT, 0, x, count, out);
}

// sa, sc, scale (P); stats (P,BLPO_STAT_COUNT) accumulated.
__global__ void clip_scale_kernel(int P, const float *__restrict__ sa, const float *__restrict__ sc,
                                  float max_norm, float *__restrict__ stats,
                                  float *__restrict__ scale) {
  blpo_pdl_enter();
  int p = blockIdx.x * blockDim.x + threadIdx.x;
  if (p >= P)
    return;
  float *st = stats + (size_t)p * BLPO_STAT_COUNT;
  st[BLPO_STAT_ACTOR_GNORM] += sqrtf(sa[p]);
  st[BLPO_STAT_CRITIC_GNORM] += sqrtf(sc[p]);
  scale[p] = blpo_clip_scale(sqrtf(sa[p] + sc[p]), max_norm);
}

void cuda_clip_scale(blpo_backend *be, int P, const float *sa, const float *sc, float max_norm,
                     float *stats, float *scale) {
  if (P <= 0)
    return;
  blpo_launch(blpo_cuda(be), clip_scale_kernel, blpo_cuda_blocks((size_t)P, kT), kT, 0, P, sa, sc,
              max_norm, stats, scale);
}

// params, grad, m, v (P,count); scale (P) or NULL. The step constants are
// resolved from the clock once per block.
__global__ void adam_kernel(int P, size_t count, float *__restrict__ params,
                            const float *__restrict__ grad, float *__restrict__ m,
                            float *__restrict__ v, const float *__restrict__ scale,
                            blpo_adam_sched sched) {
  blpo_pdl_enter();
  __shared__ blpo_adam_step_params sp;
  if (threadIdx.x == 0)
    sp = blpo_adam_resolve(sched, blpo_clock_read(sched.step.clock));
  __syncthreads();
  size_t e = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (e >= (size_t)P * count)
    return;
  float s = scale ? scale[e / count] : 1.0f;
  blpo_adam_update(&params[e], &m[e], &v[e], grad[e] * s, sp);
}

void cuda_adam(blpo_backend *be, int P, size_t count, float *params, const float *grad, float *m,
               float *v, const float *scale, blpo_adam_sched sched) {
  if (P <= 0 || !count)
    return;
  size_t cnt = (size_t)P * count;
  blpo_launch(blpo_cuda(be), adam_kernel, blpo_cuda_blocks(cnt, kT), kT, 0, P, count, params, grad,
              m, v, scale, sched);
}

// ---- lifetime ----------------------------------------------------------------

void cuda_destroy(blpo_backend *be) {
  if (!be)
    return;
  blpo_cuda_impl *impl = blpo_cuda(be);
  if (impl) {
    cudaCheck(cudaStreamSynchronize(impl->stream));
    blpo_cuda_free_timer(impl);
    blpo_cuda_free_solver(impl);
    cusolverCheck(cusolverDnDestroy(impl->cusolver));
    cublasCheck(cublasDestroy(impl->cublas));
    if (impl->cublas_ws)
      cudaCheck(cudaFree(impl->cublas_ws));
    cudaCheck(cudaStreamDestroy(impl->stream));
    free(impl);
  }
  free(be);
}

void set_why(char *why, size_t why_len, const char *what, const char *err) {
  if (why && why_len)
    snprintf(why, why_len, "%s: %s", what, err);
}

} // namespace

extern "C" blpo_backend *blpo_backend_cuda_create(char *why, size_t why_len) {
  if (why && why_len)
    why[0] = 0;
  int count = 0;
  cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    if (why && why_len)
      snprintf(why, why_len, "cudaGetDeviceCount: %s (%s)", cudaGetErrorName(e),
               cudaGetErrorString(e));
    cudaGetLastError();
    return NULL;
  }
  if (count <= 0) {
    set_why(why, why_len, "no CUDA device found", "cudaGetDeviceCount returned 0");
    return NULL;
  }
  e = cudaSetDevice(0);
  if (e != cudaSuccess) {
    set_why(why, why_len, "cudaSetDevice(0)", cudaGetErrorString(e));
    cudaGetLastError();
    return NULL;
  }
  blpo_backend *be = (blpo_backend *)calloc(1, sizeof(*be));
  blpo_cuda_impl *impl = (blpo_cuda_impl *)calloc(1, sizeof(*impl));
  if (!be || !impl) {
    free(be);
    free(impl);
    set_why(why, why_len, "calloc", "out of host memory");
    return NULL;
  }
  // A blocking stream: it still orders against any legacy default-stream work.
  e = cudaStreamCreate(&impl->stream);
  if (e != cudaSuccess) {
    set_why(why, why_len, "cudaStreamCreate", cudaGetErrorString(e));
    cudaGetLastError();
    free(be);
    free(impl);
    return NULL;
  }
  cublasStatus_t bs = cublasCreate(&impl->cublas);
  if (bs != CUBLAS_STATUS_SUCCESS) {
    set_why(why, why_len, "cublasCreate", blpo_cublas_status_name(bs));
    cudaStreamDestroy(impl->stream);
    free(be);
    free(impl);
    return NULL;
  }
  cusolverStatus_t ss = cusolverDnCreate(&impl->cusolver);
  if (ss != CUSOLVER_STATUS_SUCCESS) {
    set_why(why, why_len, "cusolverDnCreate", blpo_cusolver_status_name(ss));
    cublasDestroy(impl->cublas);
    cudaStreamDestroy(impl->stream);
    free(be);
    free(impl);
    return NULL;
  }
  cublasCheck(cublasSetStream(impl->cublas, impl->stream));
  // FP32 GEMMs stay FP32 (no TF32 tensor-op downconversion) to match the CPU.
  cublasCheck(cublasSetMathMode(impl->cublas, CUBLAS_DEFAULT_MATH));
  cusolverCheck(cusolverDnSetStream(impl->cusolver, impl->stream));

  // the opt-in shared memory per block, for the fused kernels' layouts
  e = cudaDeviceGetAttribute(&impl->smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, 0);
  const char *attr = "cudaDeviceGetAttribute(MaxSharedMemoryPerBlockOptin)";
  if (e == cudaSuccess) {
    e = cudaDeviceGetAttribute(&impl->sms, cudaDevAttrMultiProcessorCount, 0);
    attr = "cudaDeviceGetAttribute(MultiProcessorCount)";
  }
  if (e != cudaSuccess) {
    set_why(why, why_len, attr, cudaGetErrorString(e));
    cudaGetLastError();
    cusolverDnDestroy(impl->cusolver);
    cublasDestroy(impl->cublas);
    cudaStreamDestroy(impl->stream);
    free(be);
    free(impl);
    return NULL;
  }
  be->impl = impl;
  be->name = "cuda";
  be->alloc = cuda_alloc;
  be->release = cuda_release;
  be->upload = cuda_upload;
  be->download = cuda_download;
  be->fill = cuda_fill;
  be->sync = cuda_sync;
  be->env_reset = cuda_env_reset;
  be->env_step = cuda_env_step;
  be->obs_norm = cuda_obs_norm;
  be->reward_norm = cuda_reward_norm;
  blpo_cuda_install_mlp(be); // mlp_forward, mlp_backward
  be->policy_sample = cuda_policy_sample;
  be->policy_mode = cuda_policy_mode;
  be->gae = cuda_gae;
  be->episode_summary = cuda_episode_summary;
  be->gather_rows = cuda_gather_rows;
  be->gather_rows_many = cuda_gather_rows_many;
  be->copy_blocks = cuda_copy_blocks;
  be->shuffle_samples = cuda_shuffle_samples;
  be->shuffle_trajectories = cuda_shuffle_trajectories;
  be->sketch_indices = cuda_sketch_indices;
  be->bootstrap_truncated = cuda_bootstrap_truncated;
  be->ppo_loss = cuda_ppo_loss;
  be->sumsq = cuda_sumsq;
  be->clip_scale = cuda_clip_scale;
  be->adam = cuda_adam;
  be->destroy = cuda_destroy;
  blpo_cuda_install_second_order(be);
  blpo_cuda_install_graph(be); // capture_begin/_end, graph_launch/_free/_count, precision
  blpo_cuda_install_rollout_fused(be);
  blpo_cuda_install_ppo_minibatch(be);
  blpo_cuda_install_critic_step(be);
  blpo_cuda_install_nystrom(be);
  blpo_cuda_install_hvp_rows(be);
  blpo_cuda_install_tangent(be);
  return be;
}
