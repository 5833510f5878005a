// Device discovery for --device auto|cuda.
#include <cuda_runtime.h>
#include <stdio.h>

#include "blpo/cuda_device.h"

extern "C" int blpo_cuda_device_count(char *why, size_t why_len) {
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    if (why)
      snprintf(why, why_len, "cudaGetDeviceCount: %s (%s)", cudaGetErrorName(e),
               cudaGetErrorString(e));
    cudaGetLastError(); /* clear the sticky-free error so later calls start clean */
    return 0;
  }
  if (n == 0 && why)
    snprintf(why, why_len, "no CUDA device found");
  return n;
}

extern "C" void blpo_cuda_device_name(char *out, size_t len) {
  cudaDeviceProp prop;
  if (len == 0)
    return;
  out[0] = 0;
  if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess)
    snprintf(out, len, "%s", prop.name);
}
