/* Row-major SGEMM for small matrices (see cpu_gemm.h for why it exists).
 *
 * Structure: op(B) is read in place when stored plainly (or packed, KC rows
 * by one panel of NR columns at a time, into a zero-padded buffer on the
 * stack when transposed or narrower than the panel); each MR x NR tile of C
 * is kept in vector registers over the KC-row block and updated with one
 * broadcast of op(A)(i, k) and NR/16 fused multiply-adds per row. When C is
 * narrower than one vector and taller than wide (the first layer's weight
 * gradient), C^T = op(B)^T op(A)^T is computed instead and stored
 * transposed. Every element of C is therefore acc = fma(a_k, b_k, acc) for
 * k = 0..K-1 in order, starting from C or 0: the same bits whatever the
 * tiling, the orientation, the vector width (with FMA) or the thread split.
 * The one exception is A B^T with fewer than 16 columns (a policy or value
 * head's forward pass): there each element is a dot product of two
 * contiguous rows, summed as 16 lanes (k = l, l + 16, ...) that are then
 * combined pairwise in a fixed order; still the same bits on every machine
 * with FMA and for any split.
 *
 * The kernel is one always_inline body compiled three times, for AVX-512F,
 * AVX2+FMA and baseline SSE2, with tile sizes that fit each register file;
 * the vector type is 16 floats everywhere (two ymm or four xmm registers on
 * the narrower sets). This file is built with -ffp-contract=fast so that
 * acc += a * b becomes an FMA where the instruction set has one. */
#include "cpu_gemm.h"

#include <omp.h>
#include <stddef.h>
#include <string.h>

typedef float v16 __attribute__((vector_size(64)));

#define KC 256    /* rows of op(B) per packed block */
#define NR_MAX 64 /* widest panel (AVX-512: four vectors) */

/* Element (i, j) of C, stored plainly or transposed (ct). */
#define C_AT(C, ldc, ct, i, j)                                                                     \
  (*((ct) ? &(C)[(size_t)(j) * (ldc) + (i)] : &(C)[(size_t)(i) * (ldc) + (j)]))

/* Rows [k0, k0+kc) and columns [j0, j0+nc) of op(B) into Bp (kc x nrx), zero
 * beyond column nc. */
static inline __attribute__((always_inline)) void
pack_b(int tb, const float *B, int ldb, int k0, int kc, int j0, int nc, int nrx, float *Bp) {
  if (!tb) {
    for (int k = 0; k < kc; k++) {
      float *dst = Bp + (size_t)k * nrx;
      memcpy(dst, B + (size_t)(k0 + k) * ldb + j0, sizeof(float) * (size_t)nc);
      if (nc < nrx)
        memset(dst + nc, 0, sizeof(float) * (size_t)(nrx - nc));
    }
  } else {
    /* op(B)(k, j) = B[j * ldb + k]: read each stored row once */
    for (int j = 0; j < nc; j++) {
      const float *src = B + (size_t)(j0 + j) * ldb + k0;
      for (int k = 0; k < kc; k++)
        Bp[(size_t)k * nrx + j] = src[k];
    }
    if (nc < nrx)
      for (int k = 0; k < kc; k++)
        memset(Bp + (size_t)k * nrx + nc, 0, sizeof(float) * (size_t)(nrx - nc));
  }
}

/* One MR x (16 NV) tile of C at rows i0.., panel columns j0.. (nc of them
 * real), over rows [k0, k0+kc) of op(A)'s columns / op(B)'s rows; the panel
 * Bp holds row k of the block at Bp + k * bs. MR, NV and TA are constants at
 * every call site, so the accumulators live in registers and the loop over k
 * is a broadcast and NV fused multiply-adds per row. */
static inline __attribute__((always_inline)) void tile(const int MR, const int NV, const int TA,
                                                       const float *A, int lda, int i0, int k0,
                                                       int kc, const float *Bp, size_t bs, float *C,
                                                       int ldc, int ct, int j0, int nc, int load,
                                                       const float *bias) {
  v16 acc[4][4];
  /* full: every vector of the tile is a whole row piece of a plainly stored C */
  const int full = !ct && nc >= 16 * NV;
  if (bias && !load && full) {
    /* the accumulators start from the bias, as if C held it */
    for (int v = 0; v < NV; v++) {
      v16 b;
      memcpy(&b, bias + j0 + 16 * v, sizeof(v16));
      for (int r = 0; r < MR; r++)
        acc[r][v] = b;
    }
  } else if (bias && !load) {
    float t[4][64] = {{0}};
    for (int r = 0; r < MR; r++)
      for (int j = 0; j < nc && j < 16 * NV; j++)
        t[r][j] = ct ? bias[i0 + r] : bias[j0 + j];
    for (int r = 0; r < MR; r++)
      for (int v = 0; v < NV; v++)
        memcpy(&acc[r][v], &t[r][16 * v], sizeof(v16));
  } else if (load && full) {
    for (int r = 0; r < MR; r++)
      for (int v = 0; v < NV; v++)
        memcpy(&acc[r][v], &C[(size_t)(i0 + r) * ldc + j0 + 16 * v], sizeof(v16));
  } else if (load) {
    float t[4][64] = {{0}};
    for (int r = 0; r < MR; r++)
      for (int j = 0; j < nc && j < 16 * NV; j++)
        t[r][j] = C_AT(C, ldc, ct, i0 + r, j0 + j);
    for (int r = 0; r < MR; r++)
      for (int v = 0; v < NV; v++)
        memcpy(&acc[r][v], &t[r][16 * v], sizeof(v16));
  } else {
    for (int r = 0; r < MR; r++)
      for (int v = 0; v < NV; v++)
        acc[r][v] = (v16){0};
  }
  /* op(A)(i0 + r, k0 + k) = ap[r][k * as] */
  const float *ap[4];
  const size_t as = TA ? (size_t)lda : 1;
  for (int r = 0; r < MR; r++)
    ap[r] = TA ? A + (size_t)k0 * lda + i0 + r : A + (size_t)(i0 + r) * lda + k0;
  for (int k = 0; k < kc; k++) {
    const float *bp = Bp + (size_t)k * bs;
    v16 b[4];
    for (int v = 0; v < NV; v++)
      memcpy(&b[v], bp + 16 * v, sizeof(v16));
    for (int r = 0; r < MR; r++) {
      float a = ap[r][(size_t)k * as];
      for (int v = 0; v < NV; v++)
        acc[r][v] += a * b[v];
    }
  }
  if (full) {
    for (int r = 0; r < MR; r++)
      for (int v = 0; v < NV; v++)
        memcpy(&C[(size_t)(i0 + r) * ldc + j0 + 16 * v], &acc[r][v], sizeof(v16));
  } else {
    float t[4][64];
    for (int r = 0; r < MR; r++)
      for (int v = 0; v < NV; v++)
        memcpy(&t[r][16 * v], &acc[r][v], sizeof(v16));
    for (int r = 0; r < MR; r++)
      for (int j = 0; j < nc && j < 16 * NV; j++)
        C_AT(C, ldc, ct, i0 + r, j0 + j) = t[r][j];
  }
}

#define TILE(MR_, NV_, TA_)                                                                        \
  tile(MR_, NV_, TA_, A, lda, i0, k0, kc, Bp, bs, C, ldc, ct, j0, nc, load, bias)
#define TILE_ROWS(NV_, TA_)                                                                        \
  switch (mr) {                                                                                    \
  case 4:                                                                                          \
    TILE(4, NV_, TA_);                                                                             \
    break;                                                                                         \
  case 3:                                                                                          \
    TILE(3, NV_, TA_);                                                                             \
    break;                                                                                         \
  case 2:                                                                                          \
    TILE(2, NV_, TA_);                                                                             \
    break;                                                                                         \
  default:                                                                                         \
    TILE(1, NV_, TA_);                                                                             \
    break;                                                                                         \
  }
#define TILE_COLS(TA_)                                                                             \
  switch (nv) {                                                                                    \
  case 4:                                                                                          \
    TILE_ROWS(4, TA_);                                                                             \
    break;                                                                                         \
  case 3:                                                                                          \
    TILE_ROWS(3, TA_);                                                                             \
    break;                                                                                         \
  case 2:                                                                                          \
    TILE_ROWS(2, TA_);                                                                             \
    break;                                                                                         \
  default:                                                                                         \
    TILE_ROWS(1, TA_);                                                                             \
    break;                                                                                         \
  }

/* Lanes l of a and b picked by 16 constant indices (0..15: a, 16..31: b). */
#define SHUF(a, b, ...) __builtin_shufflevector(a, b, __VA_ARGS__)

/* out[o] = the 16 lanes of s[o] summed (o < 16).
 * Every output's lanes are combined in the same pairwise order,
 *   t[l] += t[l + w] for w = 8, 4, 2, 1,
 * four rounds of two-vector shuffles and adds for all 16 at once (outputs
 * stay in order: round r packs 2^r outputs per vector). */
static inline __attribute__((always_inline)) void lane_sums16(const v16 *s, float *out) {
  v16 u[8], w[4], x[2];
  for (int q = 0; q < 8; q++)
    u[q] =
        SHUF(s[2 * q], s[2 * q + 1], 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23) +
        SHUF(s[2 * q], s[2 * q + 1], 8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
  for (int q = 0; q < 4; q++)
    w[q] = SHUF(u[2 * q], u[2 * q + 1], 0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18, 19, 24, 25, 26, 27) +
           SHUF(u[2 * q], u[2 * q + 1], 4, 5, 6, 7, 12, 13, 14, 15, 20, 21, 22, 23, 28, 29, 30, 31);
  for (int q = 0; q < 2; q++)
    x[q] = SHUF(w[2 * q], w[2 * q + 1], 0, 1, 4, 5, 8, 9, 12, 13, 16, 17, 20, 21, 24, 25, 28, 29) +
           SHUF(w[2 * q], w[2 * q + 1], 2, 3, 6, 7, 10, 11, 14, 15, 18, 19, 22, 23, 26, 27, 30, 31);
  v16 r = SHUF(x[0], x[1], 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30) +
          SHUF(x[0], x[1], 1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
  memcpy(out, &r, sizeof(r));
}

/* 16 / NN rows of C [+]= A B^T with NN columns (NN constant): each element
 * is a dot product of two contiguous rows, kept as 16 lane sums over
 * k = l, l + 16, ... (fused multiply-adds in k order), then lane_sums16.
 * Rows past M (r >= mr) reuse row i0 and are not stored. */
static inline __attribute__((always_inline)) void
narrow_rows(const int NN, int mr, int K, const float *A, int lda, int i0, const float *B, int ldb,
            int accumulate, const float *bias, float *C, int ldc) {
  enum { G = 16 };
  const int R = G / NN;
  v16 s[G];
  for (int o = 0; o < G; o++)
    s[o] = (v16){0};
  const float *ar[16];
  for (int r = 0; r < R; r++)
    ar[r] = A + (size_t)(i0 + (r < mr ? r : 0)) * lda;
  int kf = K / 16 * 16, kt = K - kf;
  for (int k = 0; k < kf; k += 16) {
    v16 b[16];
    for (int j = 0; j < NN; j++)
      memcpy(&b[j], B + (size_t)j * ldb + k, sizeof(v16));
    for (int r = 0; r < R; r++) {
      v16 a;
      memcpy(&a, ar[r] + k, sizeof(v16));
      for (int j = 0; j < NN; j++)
        s[r * NN + j] += a * b[j];
    }
  }
  if (kt) { /* zero-padded tail: the padding adds exact zeros */
    v16 b[16];
    for (int j = 0; j < NN; j++) {
      b[j] = (v16){0};
      memcpy(&b[j], B + (size_t)j * ldb + kf, sizeof(float) * (size_t)kt);
    }
    for (int r = 0; r < R; r++) {
      v16 a = {0};
      memcpy(&a, ar[r] + kf, sizeof(float) * (size_t)kt);
      for (int j = 0; j < NN; j++)
        s[r * NN + j] += a * b[j];
    }
  }
  float t[16];
  lane_sums16(s, t);
  for (int r = 0; r < mr; r++)
    for (int j = 0; j < NN; j++) {
      float *c = &C[(size_t)(i0 + r) * ldc + j];
      *c = bias ? bias[j] + t[r * NN + j] : accumulate ? *c + t[r * NN + j] : t[r * NN + j];
    }
}

/* C (M x N) [+]= A B^T for N narrower than a vector (a policy or value head). */
static inline __attribute__((always_inline)) void
gemm_narrow_nt(int M, int N, int K, const float *A, int lda, const float *B, int ldb,
               int accumulate, const float *bias, float *C, int ldc) {
  int R = 16 / N;
  for (int i0 = 0; i0 < M; i0 += R) {
    int mr = M - i0 < R ? M - i0 : R;
    switch (N) {
#define NARROW_CASE(NN_)                                                                           \
  case NN_:                                                                                        \
    narrow_rows(NN_, mr, K, A, lda, i0, B, ldb, accumulate, bias, C, ldc);                         \
    break;
      NARROW_CASE(1)
      NARROW_CASE(2)
      NARROW_CASE(3)
      NARROW_CASE(4)
      NARROW_CASE(5)
      NARROW_CASE(6)
      NARROW_CASE(7)
      NARROW_CASE(8)
      NARROW_CASE(9)
      NARROW_CASE(10)
      NARROW_CASE(11)
      NARROW_CASE(12)
      NARROW_CASE(13)
      NARROW_CASE(14)
      NARROW_CASE(15)
#undef NARROW_CASE
    }
  }
}

/* The whole product with tiles of at most MRX rows and NVX vectors. */
static inline __attribute__((always_inline)) void
gemm_body(const int MRX, const int NVX, int ta, int tb, int M, int N, int K, const float *A,
          int lda, const float *B, int ldb, int accumulate, const float *bias, float *C, int ldc) {
  if (N < 16 && !ta && tb && K > 0) {
    gemm_narrow_nt(M, N, K, A, lda, B, ldb, accumulate, bias, C, ldc);
    return;
  }
  int ct = 0;
  if (N < 16 && M > N) {
    /* C^T (N x M) = op(B)^T op(A)^T: op'(A') = op(B)^T is B with the
     * opposite flag, op'(B') = op(A)^T is A with the opposite flag. */
    const float *t = A;
    A = B;
    B = t;
    int tl = lda;
    lda = ldb;
    ldb = tl;
    int tf = ta;
    ta = !tb;
    tb = !tf;
    int tm = M;
    M = N;
    N = tm;
    ct = 1;
  }
  if (K <= 0) {
    if (!accumulate)
      for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++)
          C_AT(C, ldc, ct, i, j) = bias ? bias[ct ? i : j] : 0.0f;
    return;
  }
  const int nrx = 16 * NVX;
  float pack[KC * NR_MAX] __attribute__((aligned(64)));
  for (int j0 = 0; j0 < N; j0 += nrx) {
    int nc = N - j0 < nrx ? N - j0 : nrx;
    int nv = (nc + 15) / 16;
    /* a full panel of a plainly stored B is read in place; a transposed or
     * partial one is packed (zero-padded) first */
    int direct = !tb && nc == 16 * nv;
    for (int k0 = 0; k0 < K; k0 += KC) {
      int kc = K - k0 < KC ? K - k0 : KC;
      const float *Bp = pack;
      size_t bs = (size_t)nrx;
      if (direct) {
        Bp = B + (size_t)k0 * ldb + j0;
        bs = (size_t)ldb;
      } else {
        pack_b(tb, B, ldb, k0, kc, j0, nc, nrx, pack);
      }
      int load = accumulate || k0 > 0;
      for (int i0 = 0; i0 < M; i0 += MRX) {
        int mr = M - i0 < MRX ? M - i0 : MRX;
        if (ta) {
          TILE_COLS(1);
        } else {
          TILE_COLS(0);
        }
      }
    }
  }
}

#define GEMM_ARGS                                                                                  \
  int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B, int ldb,           \
      int accumulate, const float *bias, float *C, int ldc

#if defined(__x86_64__) && defined(__GNUC__)
/* 16 zmm accumulators + 4 for the B row of 32 registers. */
__attribute__((target("avx512f,fma"))) static void gemm_avx512(GEMM_ARGS) {
  gemm_body(4, 4, ta, tb, M, N, K, A, lda, B, ldb, accumulate, bias, C, ldc);
}
/* 2 x 2 vectors of 16 = 8 ymm accumulators + 4 for B of 16 registers. */
__attribute__((target("avx2,fma"))) static void gemm_avx2(GEMM_ARGS) {
  gemm_body(2, 2, ta, tb, M, N, K, A, lda, B, ldb, accumulate, bias, C, ldc);
}
#define BLPO_GEMM_X86 1
#endif
/* 2 x 1 vectors of 16 = 8 xmm accumulators + 4 for B of 16 registers. */
static void gemm_base(GEMM_ARGS) {
  gemm_body(2, 1, ta, tb, M, N, K, A, lda, B, ldb, accumulate, bias, C, ldc);
}

enum { ISA_AUTO = -1, ISA_BASE = 0, ISA_AVX2 = 1, ISA_AVX512 = 2 };
static const char *const isa_names[] = {"sse2", "avx2", "avx512"};
static int forced_isa = ISA_AUTO;

static int detect_isa(void) {
#ifdef BLPO_GEMM_X86
  if (__builtin_cpu_supports("avx512f"))
    return ISA_AVX512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
    return ISA_AVX2;
#endif
  return ISA_BASE;
}

static int current_isa(void) { return forced_isa != ISA_AUTO ? forced_isa : detect_isa(); }

const char *blpo_cpu_gemm_isa(void) { return isa_names[current_isa()]; }

int blpo_cpu_gemm_force_isa(const char *isa) {
  if (!isa) {
    forced_isa = ISA_AUTO;
    return 0;
  }
  for (int i = ISA_BASE; i <= ISA_AVX512; i++)
    if (!strcmp(isa, isa_names[i])) {
      if (i > detect_isa())
        return -1;
      forced_isa = i;
      return 0;
    }
  return -1;
}

static void gemm_dispatch(GEMM_ARGS) {
  if (M <= 0 || N <= 0)
    return;
  switch (current_isa()) {
#ifdef BLPO_GEMM_X86
  case ISA_AVX512:
    gemm_avx512(ta, tb, M, N, K, A, lda, B, ldb, accumulate, bias, C, ldc);
    return;
  case ISA_AVX2:
    gemm_avx2(ta, tb, M, N, K, A, lda, B, ldb, accumulate, bias, C, ldc);
    return;
#endif
  default:
    gemm_base(ta, tb, M, N, K, A, lda, B, ldb, accumulate, bias, C, ldc);
    return;
  }
}

#define PLAIN_ARGS                                                                                 \
  int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B, int ldb,           \
      int accumulate, float *C, int ldc

void blpo_cpu_sgemm(PLAIN_ARGS) {
  gemm_dispatch(ta, tb, M, N, K, A, lda, B, ldb, accumulate, NULL, C, ldc);
}

void blpo_cpu_sgemm_bias(int ta, int tb, int M, int N, int K, const float *A, int lda,
                         const float *B, int ldb, const float *bias, float *C, int ldc) {
  gemm_dispatch(ta, tb, M, N, K, A, lda, B, ldb, 0, bias, C, ldc);
}

#define MT_MIN_PIECE 64 /* fewest output rows (or columns) worth a thread */

void blpo_cpu_sgemm_mt(PLAIN_ARGS) {
  if (M <= 0 || N <= 0)
    return;
  int rows = M >= N; /* split the longer side of C */
  int len = rows ? M : N;
  int threads = omp_get_max_threads();
  /* One contiguous piece per thread, a multiple of 16 long: 64-row blocks
   * shared out statically gave two threads a 3:2 split of a 320-long side. */
  int pieces = len / MT_MIN_PIECE < threads ? len / MT_MIN_PIECE : threads;
  if (pieces < 2 || (double)M * N * (K > 0 ? K : 1) < 262144.0) {
    blpo_cpu_sgemm(ta, tb, M, N, K, A, lda, B, ldb, accumulate, C, ldc);
    return;
  }
  int per = ((len + pieces - 1) / pieces + 15) / 16 * 16;
  int used = (len + per - 1) / per;
  /* a column piece narrower than a vector would take the narrow A B^T
   * kernel, whose sum order differs: such a tail joins the piece before */
  if (used > 1 && len - (used - 1) * per < 16)
    used--;
#pragma omp parallel for schedule(static) num_threads(used)
  for (int b = 0; b < used; b++) {
    int s = b * per, e = b == used - 1 ? len : s + per;
    if (rows) /* rows [s, e) of op(A) and of C */
      blpo_cpu_sgemm(ta, tb, e - s, N, K, ta ? A + s : A + (size_t)s * lda, lda, B, ldb, accumulate,
                     C + (size_t)s * ldc, ldc);
    else /* columns [s, e) of op(B) and of C */
      blpo_cpu_sgemm(ta, tb, M, e - s, K, A, lda, tb ? B + (size_t)s * ldb : B + s, ldb, accumulate,
                     C + s, ldc);
  }
}
