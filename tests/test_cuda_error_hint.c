/* include/blpo/cuda_error_hint.h: every error it means to explain gets its
 * hint, by the name the runtime prints for it, and others get none. The
 * names come from the toolkit's own enum (NAME(e) fails to compile for a
 * name the toolkit lacks), so a misspelling in the header's list, which
 * would silently drop its hint, fails here. Needs the CUDA headers only. */
#include <driver_types.h>
#include <stdio.h>
#include <string.h>

#include "blpo/cuda_error_hint.h"
#include "test_util.h"

#define NAME(e) ((void)(e), #e)

static void expect(const char *name, const char *must_contain) {
  const char *h = blpo_cuda_error_hint(name);
  if (!must_contain) {
    CHECK(h == NULL, "%s: no hint expected, got \"%s\"", name, h ? h : "");
    return;
  }
  CHECK(h && strstr(h, must_contain), "%s: a hint mentioning \"%s\" expected, got \"%s\"", name,
        must_contain, h ? h : "(none)");
}

int main(void) {
  /* a faulting kernel's errors: where to look */
  const char *faults[] = {NAME(cudaErrorIllegalAddress),      NAME(cudaErrorLaunchFailure),
                          NAME(cudaErrorIllegalInstruction),  NAME(cudaErrorMisalignedAddress),
                          NAME(cudaErrorInvalidAddressSpace), NAME(cudaErrorInvalidPc),
                          NAME(cudaErrorHardwareStackError)};
  for (size_t k = 0; k < sizeof(faults) / sizeof(faults[0]); k++) {
    expect(faults[k], "CUDA_LAUNCH_BLOCKING=1");
    expect(faults[k], "run.cuda_graph=false"); /* a graph's replay names no kernel */
  }
  expect(NAME(cudaErrorAssert), "assertion");
  expect(NAME(cudaErrorLaunchTimeout), "run.grid_sync");
  expect(NAME(cudaErrorCooperativeLaunchTooLarge), "run.grid_sync");
  expect(NAME(cudaErrorLaunchOutOfResources), "CMAKE_CUDA_ARCHITECTURES");
  expect(NAME(cudaErrorNoKernelImageForDevice), "CMAKE_CUDA_ARCHITECTURES");
  expect(NAME(cudaErrorUnsupportedPtxVersion), "driver");
  expect(NAME(cudaErrorMemoryAllocation), "env.num_envs");
  /* errors whose name says enough, and no name */
  expect(NAME(cudaErrorInvalidValue), NULL);
  expect(NAME(cudaErrorNotReady), NULL);
  expect("cudaErrorIllegalAddres", NULL); /* a prefix is no match */
  CHECK(blpo_cuda_error_hint(NULL) == NULL, "no name: no hint");
  return test_summary("test_cuda_error_hint");
}
