// Replay of a whole training iteration as a CUDA graph, and the GEMM
// precision switch. The trainer (src/trainer.c) runs the first iteration
// directly (libraries set themselves up lazily), captures the second one with
// stream capture, and from then on launches the instantiated graph once per
// iteration. Every value that changes between iterations is read on the
// device from the trainer's clock (include/blpo/schedule.h), so the same
// graph serves every iteration. While the capture is active, a failing call
// is recorded instead of ending the process (blpo_cuda_fail): nothing has run,
// so the trainer can discard the capture and run the iteration directly.
#include <stdio.h>
#include <stdlib.h>

#include "cuda_ops.h"

namespace {

struct cuda_graph {
  cudaGraph_t graph;
  cudaGraphExec_t exec;
  size_t nodes, kernels;
};

// cuBLAS workspace: NVIDIA's recommendation for Hopper is 32 MiB; set once
// so that no GEMM inside a capture asks for memory.
constexpr size_t kCublasWorkspace = 32u << 20;

void cuda_capture_begin(blpo_backend *be) {
  blpo_cuda_impl *impl = blpo_cuda(be);
  blpo_cuda_capture.failed = 0;
  blpo_cuda_capture.first[0] = 0;
  cudaGetLastError(); // no earlier error may be blamed on the capture
  // thread-local: only this thread's calls are checked for capture safety
  cudaCheck(cudaStreamBeginCapture(impl->stream, cudaStreamCaptureModeThreadLocal));
  blpo_cuda_capture.active = 1;
}

void *cuda_capture_end(blpo_backend *be, char *why, size_t why_len) {
  blpo_cuda_impl *impl = blpo_cuda(be);
  cudaGraph_t g = nullptr;
  cudaError_t e = cudaStreamEndCapture(impl->stream, &g);
  blpo_cuda_capture.active = 0;
  cudaGetLastError(); // launch errors of an invalidated capture are not sticky
  if (blpo_cuda_capture.failed || e != cudaSuccess || !g) {
    snprintf(why, why_len, "%s",
             blpo_cuda_capture.failed ? blpo_cuda_capture.first : cudaGetErrorName(e));
    if (g)
      cudaGraphDestroy(g);
    return nullptr;
  }
  cudaGraphExec_t exec = nullptr;
  e = cudaGraphInstantiate(&exec, g, 0);
  if (e != cudaSuccess) {
    snprintf(why, why_len, "cudaGraphInstantiate: %s", cudaGetErrorName(e));
    cudaGetLastError();
    cudaGraphDestroy(g);
    return nullptr;
  }
  cuda_graph *h = (cuda_graph *)calloc(1, sizeof(cuda_graph));
  if (!h) {
    snprintf(why, why_len, "out of host memory");
    cudaGraphExecDestroy(exec);
    cudaGraphDestroy(g);
    return nullptr;
  }
  h->graph = g;
  h->exec = exec;
  impl->live_graphs++;
  size_t n = 0;
  cudaCheck(cudaGraphGetNodes(g, nullptr, &n));
  h->nodes = n;
  if (n) {
    cudaGraphNode_t *nodes = (cudaGraphNode_t *)malloc(sizeof(cudaGraphNode_t) * n);
    if (nodes) {
      cudaCheck(cudaGraphGetNodes(g, nodes, &n));
      for (size_t i = 0; i < n; i++) {
        cudaGraphNodeType t;
        cudaCheck(cudaGraphNodeGetType(nodes[i], &t));
        h->kernels += t == cudaGraphNodeTypeKernel;
      }
      free(nodes);
    }
  }
  return h;
}

void cuda_graph_launch(blpo_backend *be, void *graph) {
  cudaCheck(cudaGraphLaunch(((cuda_graph *)graph)->exec, blpo_cuda(be)->stream));
}

void cuda_graph_free(blpo_backend *be, void *graph) {
  cuda_graph *h = (cuda_graph *)graph;
  if (!h)
    return;
  cudaCheck(cudaStreamSynchronize(blpo_cuda(be)->stream)); // a launch may still run
  cudaCheck(cudaGraphExecDestroy(h->exec));
  cudaCheck(cudaGraphDestroy(h->graph));
  free(h);
  blpo_cuda(be)->live_graphs--;
}

size_t cuda_graph_count(const void *graph, size_t *kernels) {
  const cuda_graph *h = (const cuda_graph *)graph;
  if (kernels)
    *kernels = h ? h->kernels : 0;
  return h ? h->nodes : 0;
}

// TF32: cuBLAS rounds the fp32 GEMM inputs to TF32 (10-bit mantissa) for the
// tensor cores and accumulates in fp32, and so do the fused kernels' layer
// passes for their hidden layers of widths that are multiples of 16 (their
// layouts take impl->tf32_tiles; include/blpo/tc_tile.h), on devices of
// compute capability 8.0+ (before that, WMMA has no TF32 and the tiles
// would be emulated by one lane). The other kernels are unchanged.
void cuda_set_gemm_precision(blpo_backend *be, int tf32) {
  blpo_cuda_impl *impl = blpo_cuda(be);
  cublasCheck(
      cublasSetMathMode(impl->cublas, tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH));
  int dev = 0, major = 0;
  cudaCheck(cudaGetDevice(&dev));
  cudaCheck(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
  impl->tf32_tiles = tf32 && major >= 8;
}

// backend.h set_pdl. Launching with the attribute is only safe where the
// kernels that run hold blpo_pdl_enter's wait: a device of compute
// capability 9.0+ running code compiled for compute_90 or later (an sm_90
// device JIT-compiling compute_80 PTX would run kernels without it). Every
// file of the plugin is built with the same architectures, so one kernel's
// PTX version stands for all.
int cuda_set_pdl(blpo_backend *be, int on) {
  blpo_cuda_impl *impl = blpo_cuda(be);
  if (impl->pdl_supported == 0) {
    int dev = 0, major = 0;
    cudaFuncAttributes fa;
    cudaCheck(cudaGetDevice(&dev));
    cudaCheck(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
    cudaCheck(cudaFuncGetAttributes(&fa, (const void *)blpo_col_sums_kernel));
    impl->pdl_supported = major >= 9 && fa.ptxVersion >= 90 ? 1 : -1;
  }
  impl->pdl = on && impl->pdl_supported > 0;
  return impl->pdl;
}

// Profile mode's phase stamps: events on the stream, so that timing the
// phases adds no synchronisation between them (the trainer reads them once
// per iteration, or when its ring of BLPO_TIMER_SLOTS stamps is full).
void cuda_timer_mark(blpo_backend *be, int slot) {
  blpo_cuda_impl *impl = blpo_cuda(be);
  if (!impl->timer_made) {
    for (int i = 0; i < BLPO_TIMER_SLOTS; i++)
      cudaCheck(cudaEventCreate(&impl->timer_ev[i]));
    impl->timer_made = 1;
  }
  cudaCheck(cudaEventRecord(impl->timer_ev[slot], impl->stream));
}

double cuda_timer_seconds(blpo_backend *be, int a, int b) {
  blpo_cuda_impl *impl = blpo_cuda(be);
  float ms = 0.0f;
  cudaCheck(cudaEventSynchronize(impl->timer_ev[b]));
  cudaCheck(cudaEventElapsedTime(&ms, impl->timer_ev[a], impl->timer_ev[b]));
  return 1e-3 * (double)ms;
}

} // namespace

void blpo_cuda_free_timer(blpo_cuda_impl *impl) {
  if (!impl->timer_made)
    return;
  for (int i = 0; i < BLPO_TIMER_SLOTS; i++)
    cudaCheck(cudaEventDestroy(impl->timer_ev[i]));
  impl->timer_made = 0;
}

void blpo_cuda_install_graph(blpo_backend *be) {
  blpo_cuda_impl *impl = blpo_cuda(be);
  if (cudaMalloc(&impl->cublas_ws, kCublasWorkspace) == cudaSuccess) {
    cublasCheck(cublasSetWorkspace(impl->cublas, impl->cublas_ws, kCublasWorkspace));
  } else {
    cudaGetLastError(); // cuBLAS keeps its own workspace then
    impl->cublas_ws = nullptr;
  }
  be->capture_begin = cuda_capture_begin;
  be->capture_end = cuda_capture_end;
  be->graph_launch = cuda_graph_launch;
  be->graph_free = cuda_graph_free;
  be->graph_count = cuda_graph_count;
  be->set_gemm_precision = cuda_set_gemm_precision;
  be->set_pdl = cuda_set_pdl;
  be->timer_mark = cuda_timer_mark;
  be->timer_seconds = cuda_timer_seconds;
}
