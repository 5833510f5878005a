/* What to do about a CUDA error, by its name (cudaGetErrorName), for the
 * message blpo_cuda_fail prints (kernels/backend_cuda.cu). Plain C on names,
 * so the CPU tests check it (tests/test_cuda_error_hint.c).
 *
 * The one that matters most: a kernel that faults (an out-of-bounds access,
 * a trap) is reported asynchronously, by whatever CUDA call comes next, so
 * the call and file:line in the message are where it surfaced, not the
 * kernel that faulted; the context is then unusable. The hint says so and
 * how to find the kernel. */
#ifndef BLPO_CUDA_ERROR_HINT_H
#define BLPO_CUDA_ERROR_HINT_H

#include <stddef.h>
#include <string.h>

/* The hint for err_name, or NULL where the error name says enough. */
static inline const char *blpo_cuda_error_hint(const char *err_name) {
  /* the errors a faulting kernel leaves behind (sticky: every later call
   * returns them too) */
  static const char *const faults[] = {
      "cudaErrorIllegalAddress",     "cudaErrorLaunchFailure",       "cudaErrorIllegalInstruction",
      "cudaErrorMisalignedAddress",  "cudaErrorInvalidAddressSpace", "cudaErrorInvalidPc",
      "cudaErrorHardwareStackError",
  };
  if (!err_name)
    return NULL;
  for (size_t k = 0; k < sizeof(faults) / sizeof(faults[0]); k++)
    if (!strcmp(err_name, faults[k]))
      return "a kernel faulted, this one or one queued before it (kernel errors surface at "
             "the next CUDA call); rerun with --set run.cuda_graph=false and "
             "CUDA_LAUNCH_BLOCKING=1 to stop at the kernel itself, or under compute-sanitizer "
             "--tool memcheck to see the access";
  if (!strcmp(err_name, "cudaErrorAssert"))
    return "a kernel's device-side assertion failed; the line the device printed above "
           "names the kernel and the condition";
  if (!strcmp(err_name, "cudaErrorLaunchTimeout"))
    return "a kernel ran past the display watchdog's limit, or hung: run on a GPU without a "
           "display attached, and rerun without run.grid_sync (a grid barrier whose blocks "
           "are not all resident never returns)";
  if (!strcmp(err_name, "cudaErrorCooperativeLaunchTooLarge"))
    return "run.grid_sync's grid did not fit on the device at once (the backend sizes it "
           "from the device's occupancy, which MPS or a partitioned GPU may cut); rerun "
           "without run.grid_sync";
  if (!strcmp(err_name, "cudaErrorLaunchOutOfResources"))
    return "a block needs more registers than the device has for it (or too large "
           "arguments); the kernel_resources test checks the registers for every "
           "architecture built, so check that this device's is among them "
           "(CMAKE_CUDA_ARCHITECTURES)";
  if (!strcmp(err_name, "cudaErrorNoKernelImageForDevice") ||
      !strcmp(err_name, "cudaErrorUnsupportedPtxVersion"))
    return "the CUDA plugin was not built for this GPU's architecture or its driver is "
           "older than the toolkit; rebuild with CMAKE_CUDA_ARCHITECTURES including this "
           "device's compute capability, or update the driver";
  if (!strcmp(err_name, "cudaErrorMemoryAllocation"))
    return "the device is out of memory; fewer env.num_envs or run.num_seeds, or a GPU "
           "with more memory (nvidia-smi shows what else holds it)";
  return NULL;
}

#endif
