/* The CUDA backend of the GPU tests. With BLPO_TEST_PDL=1 (the CTest *_pdl
 * variants) every op's kernels launch with programmatic dependent launch
 * (run.pdl), so that a kernel reading what the one ahead of it has not
 * finished writing shows as a difference from the CPU; a device that cannot
 * gives NULL with the reason, and the test skips. */
#ifndef BLPO_CUDA_TEST_BACKEND_H
#define BLPO_CUDA_TEST_BACKEND_H

#include <stdio.h>
#include <stdlib.h>

#include "blpo/backend.h"

static inline blpo_backend *blpo_test_cuda_create(char *why, size_t why_len) {
  blpo_backend *be = blpo_backend_cuda_create(why, why_len);
  const char *pdl = getenv("BLPO_TEST_PDL");
  if (be && pdl && atoi(pdl) && (!be->set_pdl || !be->set_pdl(be, 1))) {
    snprintf(why, why_len,
             "BLPO_TEST_PDL: this device cannot launch with programmatic dependent launch "
             "(compute capability 9.0 and kernels built for it)");
    be->destroy(be);
    return NULL;
  }
  return be;
}

#endif
