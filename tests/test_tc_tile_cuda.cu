// The TF32 tile of include/blpo/tc_tile.h on the device (WMMA m16n16k8,
// compute capability 8.0+) against the host's emulation of it, which the
// CPU tests (tests/test_tc_tile.c and every block-program test with tf32)
// hold the layer passes to. The emulation shares no code with the WMMA path,
// so this is what checks the device's side of that contract directly:
//   rounding  blpo_tf32_round on the device (__float_to_tf32) and on the
//             host, the same value for 200 000 random inputs and the cases
//             worked by hand in test_tc_tile.c (the low 13 bits, which the
//             tensor cores ignore, masked off); NaN stays NaN;
//   tile      one warp, operands in 32-byte aligned shared memory as the
//             kernels have them, the four layouts of A and B, K from 8 to
//             72, the layer passes' leading dimensions (4 mod 8, 8 mod 16,
//             K rows apart as the Hessian rows' directions) and 0 mod 8:
//             every output to 1e-5 of the sum of its products' magnitudes
//             (the tensor cores add within a step of 8 in their own order),
//             the 16 x 16 written and the rows of margin around it not.
// Exits 77 (skipped) without a device of compute capability 8.0 or more.
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blpo/tc_tile.h"
#include "test_util.h"

#define CK(call)                                                                                   \
  do {                                                                                             \
    cudaError_t e_ = (call);                                                                       \
    if (e_ != cudaSuccess) {                                                                       \
      fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorName(e_));         \
      exit(1);                                                                                     \
    }                                                                                              \
  } while (0)

static size_t g_smem_optin; // the device's shared memory per block, opted in

__global__ void round_kernel(const float *x, float *y, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n)
    y[i] = blpo_tf32_round(x[i]);
}

// One warp: a (na floats) and b (nb) into shared memory, c (nc floats, the
// tile at row 2 of its margins) too; the tile; c back.
__global__ void tile_kernel(const float *a, int na, int lda, const float *b, int nb, int ldb,
                            int cols, int K, float *c, int nc, int ldc) {
  extern __shared__ __align__(32) float sm[];
  const int oa = 0, ob = (na + 7) / 8 * 8, oc = ob + (nb + 7) / 8 * 8;
  const int lane = (int)threadIdx.x;
  for (int i = lane; i < na; i += 32)
    sm[oa + i] = a[i];
  for (int i = lane; i < nb; i += 32)
    sm[ob + i] = b[i];
  for (int i = lane; i < nc; i += 32)
    sm[oc + i] = c[i];
  __syncwarp();
  if (blpo_tc_tile(sm + oa, lda, sm + ob, ldb, cols, K, sm + oc + 2 * ldc, ldc, lane))
    blpo_tc_sync();
  for (int i = lane; i < nc; i += 32)
    c[i] = sm[oc + i];
}

static void check_rounding(void) {
  enum { N = 200000 };
  float *x = test_alloc_floats(N), *y = test_alloc_floats(N);
  const float hand[] = {1.0f,
                        1.0f + ldexpf(1.0f, -11),
                        -(1.0f + ldexpf(1.0f, -11)),
                        1.0f + ldexpf(1.0f, -11) - ldexpf(1.0f, -23),
                        1.0f + 3 * ldexpf(1.0f, -11),
                        2.0f - ldexpf(1.0f, -23),
                        0.0f,
                        -0.0f,
                        ldexpf(1.0f, -130),
                        ldexpf(1.0f, -140),
                        INFINITY,
                        -INFINITY,
                        NAN,
                        test_from_bits(0x7fffffffu)};
  const int nh = (int)(sizeof hand / sizeof hand[0]);
  for (int i = 0; i < N; i++)
    x[i] = i < nh ? hand[i] : (float)(nrand() * pow(10.0, 6 * urand() - 3));
  float *dx, *dy;
  CK(cudaMalloc(&dx, N * sizeof(float)));
  CK(cudaMalloc(&dy, N * sizeof(float)));
  CK(cudaMemcpy(dx, x, N * sizeof(float), cudaMemcpyHostToDevice));
  round_kernel<<<(N + 255) / 256, 256>>>(dx, dy, N);
  CK(cudaGetLastError());
  CK(cudaMemcpy(y, dy, N * sizeof(float), cudaMemcpyDeviceToHost));
  int bad = 0, low = 0;
  for (int i = 0; i < N; i++) {
    const float h = blpo_tf32_round(x[i]);
    const uint32_t d = test_bits_of(y[i]);
    low += (d & 0x1fffu) != 0;
    const int same = isnan(h) ? isnan(y[i]) : (d & 0xffffe000u) == test_bits_of(h);
    if (!same && bad++ < 5)
      fprintf(stderr, "  %a: device %a (0x%08x), host %a\n", (double)x[i], (double)y[i], d,
              (double)h);
  }
  CHECK(bad == 0, "rounding: %d of %d values differ between the device and the host", bad, N);
  printf("test_tc_tile_cuda: rounding of %d values agrees (%d device results with low bits set)\n",
         N, low);
  CK(cudaFree(dx));
  CK(cudaFree(dy));
  free(x);
  free(y);
}

// a: 16 x K row-major (lda) or K x 16 column-major storage; b likewise.
static void check_tile(int K, int lda, int ldb, int cols, int ldc) {
  const int a_col = (cols & BLPO_TC_A_COL) != 0, b_col = (cols & BLPO_TC_B_COL) != 0;
  const int na = (a_col ? K : 16) * lda, nb = (b_col ? 16 : K) * ldb, nc = 20 * ldc;
  const size_t smem = sizeof(float) * (size_t)((na + 7) / 8 * 8 + (nb + 7) / 8 * 8 + nc);
  if (smem > g_smem_optin) { // a device with less shared memory than an A100 or H100
    printf("test_tc_tile_cuda: K %d, lda %d, ldb %d: skipped (%zu bytes of shared memory)\n", K,
           lda, ldb, smem);
    return;
  }
  float *a = test_alloc_shared((size_t)na), *b = test_alloc_shared((size_t)nb);
  float *c = test_alloc_shared((size_t)nc), *want = test_alloc_shared((size_t)nc);
  for (int i = 0; i < na; i++)
    a[i] = (float)nrand();
  for (int i = 0; i < nb; i++)
    b[i] = (float)nrand();
  for (int i = 0; i < nc; i++)
    c[i] = want[i] = NAN;
  blpo_tc_tile(a, lda, b, ldb, cols, K, want + 2 * ldc, ldc, 0); // the host's emulation
  float *da, *db, *dc;
  CK(cudaMalloc(&da, (size_t)na * sizeof(float)));
  CK(cudaMalloc(&db, (size_t)nb * sizeof(float)));
  CK(cudaMalloc(&dc, (size_t)nc * sizeof(float)));
  CK(cudaMemcpy(da, a, (size_t)na * sizeof(float), cudaMemcpyHostToDevice));
  CK(cudaMemcpy(db, b, (size_t)nb * sizeof(float), cudaMemcpyHostToDevice));
  CK(cudaMemcpy(dc, c, (size_t)nc * sizeof(float), cudaMemcpyHostToDevice));
  tile_kernel<<<1, 32, smem>>>(da, na, lda, db, nb, ldb, cols, K, dc, nc, ldc);
  CK(cudaGetLastError());
  CK(cudaMemcpy(c, dc, (size_t)nc * sizeof(float), cudaMemcpyDeviceToHost));
  int bad = 0, margin = 0;
  double worst = 0.0;
  for (int i = 0; i < nc; i++) {
    const int r = i / ldc - 2, n = i % ldc;
    if (r < 0 || r >= 16 || n >= 16) {
      margin += !isnan(c[i]);
      continue;
    }
    double mag = 0.0;
    for (int k = 0; k < K; k++)
      mag += fabs((double)blpo_tf32_round(a_col ? a[k * lda + r] : a[r * lda + k]) *
                  (double)blpo_tf32_round(b_col ? b[n * ldb + k] : b[k * ldb + n]));
    const double e = fabs((double)c[i] - (double)want[i]) / mag;
    worst = e > worst ? e : worst;
    bad += !(e <= 1e-5);
  }
  CHECK(bad == 0 && margin == 0,
        "K %d, lda %d, ldb %d, layout %d (a %s, b %s), ldc %d: %d of 256 off the host's "
        "emulation (worst %.3g of the terms), %d written outside the tile",
        K, lda, ldb, cols, a_col ? "column-major" : "row-major",
        b_col ? "column-major" : "row-major", ldc, bad, worst, margin);
  CK(cudaFree(da));
  CK(cudaFree(db));
  CK(cudaFree(dc));
  free(a);
  free(b);
  free(c);
  free(want);
}

int main(void) {
  int n = 0, major = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) {
    printf("test_tc_tile_cuda: skipped: no CUDA device\n");
    return 77;
  }
  CK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0));
  if (major < 8) {
    printf("test_tc_tile_cuda: skipped: compute capability %d.x has no TF32 tensor cores\n", major);
    return 77;
  }
  // the largest case (K = 72 rows of A at 5 x 72 apart) takes 123 KiB of
  // shared memory, past the 48 KiB a kernel gets without opting in
  int optin = 0;
  CK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, 0));
  CK(cudaFuncSetAttribute(tile_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, optin));
  g_smem_optin = (size_t)optin;
  check_rounding();
  const int Ks[] = {8, 16, 32, 64, 72};
  for (size_t k = 0; k < sizeof Ks / sizeof Ks[0]; k++)
    for (int cols = 0; cols < 4; cols++) {
      const int K = Ks[k], a_col = (cols & BLPO_TC_A_COL) != 0, b_col = (cols & BLPO_TC_B_COL) != 0;
      const int p4 = (K + 3) / 4 * 4 % 8 == 0 ? K + 4 : K; // 4 mod 8, as blpo_mbf_pitch
      // the layer passes' pitches: 68 (P(64)), 72 (the Hessian rows' Pk(64)) and 5 x 72 (a
      // direction's rows, K = 5 apart)
      check_tile(K, a_col ? 68 : p4, b_col ? p4 : 68, cols, 16);
      check_tile(K, a_col ? 5 * 72 : p4, b_col ? p4 : 72, cols, 20);
      check_tile(K, a_col ? 24 : K + 8, b_col ? K + 16 : 24, cols, 16); // 0 mod 8
    }
  return test_summary("test_tc_tile_cuda");
}
