// State and helpers shared by the CUDA backend's files (kernels/backend_cuda*.cu).
// Everything runs on one stream per backend; only `download` synchronises.
#ifndef BLPO_CUDA_BACKEND_INTERNAL_H
#define BLPO_CUDA_BACKEND_INTERNAL_H

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cusolverDn.h>
#include <stdio.h>
#include <stdlib.h>

#include <utility>

#include "blpo/backend.h"
#include "pdl_cuda.h"

// Every CUDA / cuBLAS / cuSOLVER call goes through one of these: on failure
// they print the call, file:line and the library's error name, then exit(4).
void blpo_cuda_fail(const char *lib, const char *call, const char *err, const char *file, int line);
const char *blpo_cublas_status_name(cublasStatus_t s);
const char *blpo_cusolver_status_name(cusolverStatus_t s);

#define cudaCheck(call)                                                                            \
  do {                                                                                             \
    cudaError_t e_ = (call);                                                                       \
    if (e_ != cudaSuccess)                                                                         \
      blpo_cuda_fail("CUDA", #call, cudaGetErrorName(e_), __FILE__, __LINE__);                     \
  } while (0)
#define cublasCheck(call)                                                                          \
  do {                                                                                             \
    cublasStatus_t s_ = (call);                                                                    \
    if (s_ != CUBLAS_STATUS_SUCCESS)                                                               \
      blpo_cuda_fail("cuBLAS", #call, blpo_cublas_status_name(s_), __FILE__, __LINE__);            \
  } while (0)
#define cusolverCheck(call)                                                                        \
  do {                                                                                             \
    cusolverStatus_t s_ = (call);                                                                  \
    if (s_ != CUSOLVER_STATUS_SUCCESS)                                                             \
      blpo_cuda_fail("cuSOLVER", #call, blpo_cusolver_status_name(s_), __FILE__, __LINE__);        \
  } while (0)
// While a graph capture is active (kernels/graph_cuda.cu) a failing call does
// not exit: nothing has run yet, so the first failure is kept here, the
// capture is discarded, and the trainer runs the iteration directly.
typedef struct {
  int active, failed;
  char first[256];
} blpo_cuda_capture_state;
extern blpo_cuda_capture_state blpo_cuda_capture;

// A cooperative kernel's blocks resident on the whole device at `smem` bytes
// of dynamic shared memory (0: not yet asked).
typedef struct {
  size_t smem;
  long long resident;
} blpo_cuda_grid_room;

typedef struct {
  cudaStream_t stream;
  cublasHandle_t cublas;
  cusolverDnHandle_t cusolver;
  // Second-order solver workspaces, sized by reserve_solver
  // (kernels/backend_cuda_second_order.cu owns them).
  void *solver;
  // cuBLAS's own workspace, set explicitly so that a captured GEMM never
  // allocates (kernels/graph_cuda.cu).
  void *cublas_ws;
  // Profile mode's phase timer: one event per slot, made on first use.
  cudaEvent_t timer_ev[BLPO_TIMER_SLOTS];
  int timer_made;
  // The device's opt-in shared memory per block, less the most static shared
  // memory of any fused kernel (blpo_cuda_allow_smem): the layouts of the
  // fused kernels are chosen within it (set at create).
  int smem_optin;
  // The device's multiprocessors: the fused rollout's layout takes fewer
  // envs per block where the bigger blocks would leave some idle.
  int sms;
  // Nystrom solves of rank <= BLPO_NYS_KMAX as one kernel (kernels/nystrom_cuda.cu)
  // instead of the cuSOLVER path, the Hessian rows as two kernels
  // (kernels/hvp_rows_cuda.cu) and the tangents as one (kernels/tangent_cuda.cu)
  // instead of the cuBLAS path; on unless set_fused_solve turns it off.
  int fused_solve;
  // Instantiated graphs not yet freed (kernels/graph_cuda.cu): they hold the
  // solver workspaces' addresses, so reserve_solver may not reallocate them.
  int live_graphs;
  // Every blpo_launch with programmatic dependent launch (run.pdl, set_pdl;
  // kernels/pdl_cuda.h); pdl_supported: 0 not yet asked, 1 this device and
  // build can (compute capability 9.0+), -1 they cannot.
  int pdl;
  int pdl_supported;
  // run.precision tf32 (set_gemm_precision) on a device of compute
  // capability 8.0+: the fused kernels' hidden layers whose widths are
  // multiples of 16 run on TF32 tensor-core tiles (include/blpo/tc_tile.h).
  int tf32_tiles;
  // run.grid_sync (set_grid_sync): critic_step's steps and each PPO
  // minibatch as one cooperative kernel (kernels/critic_step_cuda.cu,
  // kernels/ppo_minibatch_cuda.cu); grid_sync_supported as pdl_supported
  // (cooperative launch); each kernel's residency (blpo_cuda_grid_resident).
  int grid_sync;
  int grid_sync_supported;
  blpo_cuda_grid_room cvf_grid, mbf_grid;
} blpo_cuda_impl;

static inline blpo_cuda_impl *blpo_cuda(blpo_backend *be) { return (blpo_cuda_impl *)be->impl; }

// cudaLaunchKernelEx of kernel on impl's stream with one launch attribute
// (blpo_launch's programmatic dependent launch, blpo_launch_cooperative's
// cooperative launch); returns its error.
template <typename... Params, typename... Args>
static inline cudaError_t blpo_launch_with(const blpo_cuda_impl *impl, cudaLaunchAttribute attr,
                                           void (*kernel)(Params...), dim3 grid, dim3 block,
                                           size_t smem, Args &&...args) {
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = impl->stream;
  cfg.attrs = &attr;
  cfg.numAttrs = 1;
  return cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...);
}

// kernel<<<grid, block, smem, impl->stream>>>(args...), launched with
// programmatic dependent launch where impl->pdl is on (kernels/pdl_cuda.h:
// the kernel may be scheduled before the one ahead of it has finished, and
// waits for it at its start). A failed launch exits, or fails the capture,
// naming the kernel and the caller's file:line.
#define blpo_launch(impl, kernel, grid, block, smem, ...)                                          \
  blpo_launch_at(__FILE__, __LINE__, #kernel, (impl), kernel, (grid), (block), (smem), __VA_ARGS__)

template <typename... Params, typename... Args>
static inline void blpo_launch_at(const char *file, int line, const char *name,
                                  const blpo_cuda_impl *impl, void (*kernel)(Params...), dim3 grid,
                                  dim3 block, size_t smem, Args &&...args) {
  cudaError_t e;
  if (!impl->pdl) {
    kernel<<<grid, block, smem, impl->stream>>>(std::forward<Args>(args)...);
    e = cudaPeekAtLastError();
  } else {
    cudaLaunchAttribute attr;
    attr.id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr.val.programmaticStreamSerializationAllowed = 1;
    e = blpo_launch_with(impl, attr, kernel, grid, block, smem, std::forward<Args>(args)...);
  }
  if (e != cudaSuccess)
    blpo_cuda_fail("CUDA", name, cudaGetErrorName(e), file, line);
}

// kernel<<<grid, block, smem, impl->stream>>>(args...) as a cooperative
// launch (run.grid_sync: a kernel whose blocks synchronise the grid, which
// the runtime launches only if every block can be resident at once; the
// caller sizes the grid from the kernel's occupancy). Never with
// programmatic dependent launch: it waits for the kernel ahead of it in
// full, so the device is its own when its blocks start. A failed launch
// exits, or fails the capture, as blpo_launch.
#define blpo_launch_cooperative(impl, kernel, grid, block, smem, ...)                              \
  blpo_launch_cooperative_at(__FILE__, __LINE__, #kernel, (impl), kernel, (grid), (block), (smem), \
                             __VA_ARGS__)

template <typename... Params, typename... Args>
static inline void blpo_launch_cooperative_at(const char *file, int line, const char *name,
                                              const blpo_cuda_impl *impl, void (*kernel)(Params...),
                                              dim3 grid, dim3 block, size_t smem, Args &&...args) {
  cudaLaunchAttribute attr;
  attr.id = cudaLaunchAttributeCooperative;
  attr.val.cooperative = 1;
  cudaError_t e =
      blpo_launch_with(impl, attr, kernel, grid, block, smem, std::forward<Args>(args)...);
  if (e != cudaSuccess)
    blpo_cuda_fail("CUDA", name, cudaGetErrorName(e), file, line);
}

// How many blocks of the cooperative `kernel` (`threads` per block, `smem`
// bytes of shared memory) the whole device holds at once, asked once per
// size and kept in *room: the ops' _work functions ask before training, and
// where the layout changed after that (run.precision is set later) the
// trainer's first iteration, which runs directly, asks. The query is no
// stream operation, so one inside a capture would be harmless.
template <typename Kernel>
static inline long long blpo_cuda_grid_resident(const blpo_cuda_impl *impl,
                                                blpo_cuda_grid_room *room, Kernel kernel,
                                                int threads, size_t smem) {
  if (room->resident <= 0 || room->smem != smem) {
    int per_sm = 0;
    cudaCheck(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, smem));
    room->smem = smem;
    room->resident = (long long)per_sm * impl->sms;
  }
  return room->resident;
}

// Lets `kernel` launch with the device's opt-in shared memory per block less
// its own static shared memory (the runtime refuses a larger dynamic limit)
// and returns that room. The attribute is the kernel's, process-wide; set
// outside any capture.
int blpo_cuda_smem_room(const void *kernel, const char *name);
// blpo_cuda_smem_room, and impl->smem_optin, the bound every fused layout is
// chosen within, lowered to that room. At backend create.
void blpo_cuda_allow_smem(blpo_backend *be, const void *kernel, const char *name);

// Grid size for `count` threads of `threads` per block.
static inline unsigned blpo_cuda_blocks(size_t count, int threads) {
  size_t b = (count + (size_t)threads - 1) / (size_t)threads;
  return (unsigned)(b ? b : 1);
}

// Installs the nested-critic / BLPO operations (axpy, value_loss, blpo_actor,
// mixed_head, mlp_tangent(_work), critic_hvp_rows, critic_hvp(_work),
// nystrom_solve, cg_solve, dense_solve, hypergrad_combine, reserve_solver,
// dot) into be; defined in kernels/backend_cuda_second_order.cu. Also frees
// what reserve_solver allocated when called with be->impl's solver on destroy.
void blpo_cuda_install_second_order(blpo_backend *be);
void blpo_cuda_free_solver(blpo_cuda_impl *impl);

// Installs the optional replay, precision and timer operations
// (capture_begin, capture_end, graph_launch, graph_free, graph_count,
// set_gemm_precision, set_pdl, timer_mark, timer_seconds); kernels/graph_cuda.cu.
// Also sets the cuBLAS workspace.
void blpo_cuda_install_graph(blpo_backend *be);
// Destroys the phase timer's events, if any were made (kernels/graph_cuda.cu).
void blpo_cuda_free_timer(blpo_cuda_impl *impl);

// Installs rollout_fused_supported and rollout_fused (kernels/rollout_fused_cuda.cu).
void blpo_cuda_install_rollout_fused(blpo_backend *be);

// Installs ppo_minibatch_work and ppo_minibatch (kernels/ppo_minibatch_cuda.cu).
void blpo_cuda_install_ppo_minibatch(blpo_backend *be);
// Installs critic_step_work and critic_step (kernels/critic_step_cuda.cu).
void blpo_cuda_install_critic_step(blpo_backend *be);
// Installs set_fused_solve (kernels/nystrom_cuda.cu). The one-kernel solve:
// 0 where it cannot take (P, k, np) (then the caller takes the cuSOLVER path).
void blpo_cuda_install_nystrom(blpo_backend *be);
int blpo_cuda_nystrom_fused(blpo_backend *be, int P, size_t np, int k, const float *rows,
                            const int32_t *idx, const float *v, float rho, float ridge, float tol,
                            float *x, float *stats);
// Sets the rows kernel's shared memory limit (kernels/hvp_rows_cuda.cu).
void blpo_cuda_install_hvp_rows(blpo_backend *be);
// critic_hvp_rows as the two kernels of include/blpo/hvp_rows_blocks.h, taken
// with the one-kernel solve (fused_solve) where the layout fits shared memory;
// 0 where it does not (then the caller takes the cuBLAS path). work is the
// caller's HVP workspace, (P, blpo_cuda_hvp_work_floats(m, n, K)).
int blpo_cuda_hvp_rows_fused(blpo_backend *be, const blpo_mlp *m, int P, const float *params,
                             const float *x, int n, const float *acts, const float *target, int K,
                             const int32_t *idx, float *rows, float *work);
// Sets the tangent kernels' shared memory limits and installs
// mlp_tangent_many (kernels/tangent_cuda.cu).
void blpo_cuda_install_tangent(blpo_backend *be);
// mlp_tangent as the one kernel of include/blpo/tangent_blocks.h, taken with
// the one-kernel solve (fused_solve) where the layout fits shared memory; 0
// where it does not (then the caller takes the cuBLAS path).
int blpo_cuda_tangent_fused(blpo_backend *be, const blpo_mlp *m, int P, const float *params,
                            const float *x, int n, const float *acts, int K, const float *dirs,
                            float *ry);

#endif
