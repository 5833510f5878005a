/* The CPU backend's SGEMM (src/cpu_gemm.c) against a naive loop, bit for bit:
 * every element of C must be the sum over k in the order the kernel
 * documents (in k order; for the narrow A B^T heads, 16 lane sums combined
 * pairwise), with fused multiply-adds on the FMA instruction sets (fmaf in
 * the reference) and separate multiply and add on SSE2. Every kernel the CPU
 * supports, every transpose combination, shapes around the tile, panel and
 * KC-block edges, leading dimensions wider than the matrices (the padding
 * must stay untouched), C poisoned with NaN when it is overwritten, and the
 * threaded variant on 1 to 15 threads. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_gemm.h"
#include "test_util.h"

#define PAD 3 /* extra floats per row of every stored matrix */

/* C (M x N, ldc) = [C +] op(A) op(B), one element at a time: a sequential
 * sum over k; for A B^T narrower than 16 columns (the heads' dot-product
 * kernel) 16 lane sums over k = l, l + 16, ... combined pairwise, as the
 * kernel documents. */
static void ref_gemm(int fma_isa, int ta, int tb, int M, int N, int K, const float *A, int lda,
                     const float *B, int ldb, int acc, const float *bias, float *C, int ldc) {
  int narrow = N < 16 && !ta && tb && K > 0;
  for (int i = 0; i < M; i++)
    for (int j = 0; j < N; j++) {
      float c = bias ? bias[j] : acc ? C[(size_t)i * ldc + j] : 0.0f;
      float lane[16] = {0};
      for (int k = 0; k < K; k++) {
        float a = ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
        float b = tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
        float *s = narrow ? &lane[k % 16] : &c;
        *s = fma_isa ? fmaf(a, b, *s) : *s + a * b;
      }
      if (narrow) {
        for (int w = 8; w >= 1; w /= 2)
          for (int l = 0; l < w; l++)
            lane[l] += lane[l + w];
        c = acc || bias ? c + lane[0] : lane[0];
      }
      C[(size_t)i * ldc + j] = c;
    }
}

static float *rand_matrix(int rows, int cols, int ld) {
  float *x = malloc(sizeof(float) * (size_t)(rows > 0 ? rows : 1) * (size_t)ld);
  for (int r = 0; r < rows; r++)
    for (int c = 0; c < ld; c++)
      x[(size_t)r * ld + c] = c < cols ? (float)nrand() : 12345.0f; /* padding marker */
  return x;
}

/* One shape on one kernel: 0 if bit-identical and the padding is intact.
 * acc: 0 overwrite, 1 accumulate, 2 overwrite with a bias row (sgemm_bias). */
static int check_case(const char *isa, int ta, int tb, int M, int N, int K, int acc, int mt) {
  int fma_isa = strcmp(isa, "sse2") != 0;
  int ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N;
  int lda = ac + PAD, ldb = bc + PAD, ldc = N + PAD;
  float *A = rand_matrix(ar, ac, lda), *B = rand_matrix(br, bc, ldb);
  float *C = rand_matrix(M, N, ldc), *R = malloc(sizeof(float) * (size_t)(M > 0 ? M : 1) * ldc);
  float *bias = acc == 2 ? rand_matrix(1, N, N) : NULL;
  if (acc != 1) /* overwritten: poison, so an unwritten element shows up */
    for (int i = 0; i < M; i++)
      for (int j = 0; j < N; j++)
        C[(size_t)i * ldc + j] = NAN;
  memcpy(R, C, sizeof(float) * (size_t)M * ldc);
  ref_gemm(fma_isa, ta, tb, M, N, K, A, lda, B, ldb, acc == 1, bias, R, ldc);
  if (bias)
    blpo_cpu_sgemm_bias(ta, tb, M, N, K, A, lda, B, ldb, bias, C, ldc);
  else if (mt)
    blpo_cpu_sgemm_mt(ta, tb, M, N, K, A, lda, B, ldb, acc, C, ldc);
  else
    blpo_cpu_sgemm(ta, tb, M, N, K, A, lda, B, ldb, acc, C, ldc);
  int bad = 0;
  for (size_t e = 0; e < (size_t)M * ldc && !bad; e++)
    if (memcmp(&C[e], &R[e], sizeof(float)) != 0) {
      bad = 1;
      CHECK(0, "%s %c%c M=%d N=%d K=%d acc=%d mt=%d: C[%zu,%zu] = %.9g, reference %.9g", isa,
            ta ? 'T' : 'N', tb ? 'T' : 'N', M, N, K, acc, mt, e / ldc, e % ldc, C[e], R[e]);
    }
  free(A);
  free(B);
  free(C);
  free(R);
  free(bias);
  return bad;
}

int main(void) {
  /* tile edges (4 rows, 16-wide vectors, 32/64-wide panels), the narrow
   * heads (N = 1, 2: computed transposed), the first layer (K = 4), and
   * K past one 256-row block */
  const int Ms[] = {1, 2, 3, 5, 16, 64, 129};
  const int Ns[] = {1, 2, 4, 15, 16, 17, 33, 64, 65};
  const int Ks[] = {0, 1, 4, 17, 64, 300};
  const char *isas[] = {"sse2", "avx2", "avx512"};
  const int combos[][2] = {{0, 0}, {0, 1}, {1, 0}, {1, 1}};
  int ran = 0;
  for (int s = 0; s < 3; s++) {
    if (blpo_cpu_gemm_force_isa(isas[s]) != 0) {
      printf("test_gemm: kernel %s not supported on this CPU, skipped\n", isas[s]);
      continue;
    }
    ran++;
    int cases = 0, bad = 0;
    for (size_t c = 0; c < sizeof(combos) / sizeof(combos[0]); c++)
      for (size_t mi = 0; mi < sizeof(Ms) / sizeof(Ms[0]); mi++)
        for (size_t ni = 0; ni < sizeof(Ns) / sizeof(Ns[0]); ni++)
          for (size_t ki = 0; ki < sizeof(Ks) / sizeof(Ks[0]); ki++)
            for (int acc = 0; acc < 3; acc++) {
              bad +=
                  check_case(isas[s], combos[c][0], combos[c][1], Ms[mi], Ns[ni], Ks[ki], acc, 0);
              cases++;
            }
    printf("test_gemm: %s: %d cases, %d wrong\n", isas[s], cases, bad);
  }
  blpo_cpu_gemm_force_isa(NULL);
  CHECK(ran >= 1, "no kernel ran");
  printf("test_gemm: automatic choice on this CPU: %s\n", blpo_cpu_gemm_isa());

  /* the threaded variant: the same bits on 1 to 15 threads, both splits;
   * 320 is the side that 64-row blocks split 3:2, and 970 columns on 15
   * threads leave a 10-column tail that must not take the narrow kernel */
  const int mt_shapes[][3] = {{1024, 64, 64},  {64, 1024, 64}, {5120, 64, 64},
                              {64, 64, 1024},  {300, 2, 64},   {2, 300, 64},
                              {320, 64, 1024}, {20, 970, 64},  {64, 320, 1024}};
  const int mt_threads[] = {1, 2, 3, 5, 15};
  for (size_t ti = 0; ti < sizeof(mt_threads) / sizeof(mt_threads[0]); ti++) {
    omp_set_num_threads(mt_threads[ti]);
    for (size_t i = 0; i < sizeof(mt_shapes) / sizeof(mt_shapes[0]); i++)
      for (size_t c = 0; c < sizeof(combos) / sizeof(combos[0]); c++)
        check_case(blpo_cpu_gemm_isa(), combos[c][0], combos[c][1], mt_shapes[i][0],
                   mt_shapes[i][1], mt_shapes[i][2], (int)(i & 1), 1);
  }
  CHECK(blpo_cpu_gemm_force_isa("avx1024") == -1, "an unknown kernel name was accepted");
  return test_summary("test_gemm");
}
