/* Small helpers shared by the C tests (and the CUDA ones, tests/ .cu files,
 * which include it as C++): random numbers and checks. */
#ifndef BLPO_TEST_UTIL_H
#define BLPO_TEST_UTIL_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_ADDRESS__)
#define TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TEST_ASAN 1
#endif
#endif
#ifndef TEST_ASAN
#define TEST_ASAN 0
#endif
#if TEST_ASAN
#include <sanitizer/asan_interface.h>
#endif

static int g_failures = 0;

#define CHECK(cond, ...)                                                                           \
  do {                                                                                             \
    if (!(cond)) {                                                                                 \
      fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);                     \
      fprintf(stderr, __VA_ARGS__);                                                                \
      fputc('\n', stderr);                                                                         \
      g_failures++;                                                                                \
    }                                                                                              \
  } while (0)

static uint64_t g_rng = 0x9E3779B97F4A7C15ull;
static inline double urand(void) { /* xorshift64*: test inputs only */
  g_rng ^= g_rng >> 12;
  g_rng ^= g_rng << 25;
  g_rng ^= g_rng >> 27;
  return (double)((g_rng * 2685821657736338717ull) >> 11) * (1.0 / 9007199254740992.0);
}
static inline double nrand(void) {
  double u1 = urand(), u2 = urand();
  if (u1 < 1e-300)
    u1 = 1e-300;
  return sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2);
}

/* k distinct indices in [0, range), a uniformly drawn prefix of a shuffle. */
static inline void test_distinct_indices(int k, int range, int32_t *out) {
  int32_t *pool = (int32_t *)malloc(sizeof(int32_t) * (size_t)range);
  if (!pool) {
    fprintf(stderr, "out of memory\n");
    exit(2);
  }
  for (int i = 0; i < range; i++)
    pool[i] = i;
  for (int i = 0; i < k; i++) {
    int j = i + (int)(urand() * (range - i));
    if (j >= range)
      j = range - 1;
    int32_t t = pool[i];
    pool[i] = pool[j];
    pool[j] = t;
    out[i] = pool[i];
  }
  free(pool);
}

/* A random orthogonal (k x k) matrix Q, row-major, by Gram-Schmidt (twice)
 * on normal entries: the eigenvectors of a prescribed spectrum. */
static inline void test_orthogonal(int k, double *Q) {
  for (int i = 0; i < k * k; i++)
    Q[i] = nrand();
  for (int j = 0; j < k; j++) {
    for (int pass = 0; pass < 2; pass++)
      for (int i = 0; i < j; i++) {
        double d = 0;
        for (int r = 0; r < k; r++)
          d += Q[r * k + i] * Q[r * k + j];
        for (int r = 0; r < k; r++)
          Q[r * k + j] -= d * Q[r * k + i];
      }
    double s = 0;
    for (int r = 0; r < k; r++)
      s += Q[r * k + j] * Q[r * k + j];
    s = sqrt(s);
    for (int r = 0; r < k; r++)
      Q[r * k + j] /= s;
  }
}

/* max |a-b| / (max |b| + floor) over n: one scale-aware error per array. */
static inline double rel_err_d(const float *a, const double *b, size_t n, double floor) {
  double mx = 0, me = 0;
  for (size_t i = 0; i < n; i++) {
    if (isnan(a[i]) || isnan(b[i]))
      return INFINITY;
    mx = fmax(mx, fabs(b[i]));
    me = fmax(me, fabs(a[i] - b[i]));
  }
  return me / (mx + floor);
}

/* count floats (at least one) or exit 2. */
static inline float *test_alloc_floats(size_t count) {
  float *p = (float *)malloc((count ? count : 1) * sizeof(float));
  if (!p) {
    fprintf(stderr, "out of memory\n");
    exit(2);
  }
  return p;
}

/* A block program's shared memory on the host: 32-byte aligned as the
 * kernels' (the tensor-core tiles check their pointers' alignment,
 * include/blpo/tc_tile.h). aligned_alloc takes a size that is a multiple
 * of the alignment; under ASan the rounding's tail is poisoned, so that a
 * read or write past `count` floats is still reported. */
static inline float *test_alloc_shared(size_t count) {
  const size_t want = (count ? count : 1) * sizeof(float), bytes = (want + 31) / 32 * 32;
  float *p = (float *)aligned_alloc(32, bytes);
  if (!p) {
    fprintf(stderr, "out of memory\n");
    exit(2);
  }
#if TEST_ASAN
  __asan_poison_memory_region((char *)p + want, bytes - want);
#endif
  return p;
}

/* x (count) set to NaN with payload tag, so that a value an op leaves
 * unwritten fails a comparison (two sides poisoned with different tags
 * never compare equal bit for bit). */
static inline void test_poison_nan(float *x, size_t count, uint32_t tag) {
  uint32_t bits = 0x7fc00000u | tag;
  for (size_t i = 0; i < count; i++)
    memcpy(&x[i], &bits, sizeof(bits));
}

/* |x - y| / |y| over n floats, each taken as its difference from base (if
 * not NULL: the change of an update); infinite where a value is not finite. */
static inline double test_rel_norm_err(const float *x, const float *y, const float *base,
                                       size_t n) {
  double d = 0, r = 0;
  for (size_t i = 0; i < n; i++) {
    if (!isfinite(x[i]) || !isfinite(y[i]))
      return INFINITY;
    double b = base ? base[i] : 0.0, dx = (double)x[i] - b, dy = (double)y[i] - b;
    d += (dx - dy) * (dx - dy);
    r += dy * dy;
  }
  return sqrt(d) / (sqrt(r) + 1e-30);
}

/* A float's bits and back. */
static inline uint32_t test_bits_of(float x) {
  uint32_t u;
  memcpy(&u, &x, sizeof u);
  return u;
}
static inline float test_from_bits(uint32_t u) {
  float x;
  memcpy(&x, &u, sizeof x);
  return x;
}

static inline int test_summary(const char *name) {
  if (g_failures) {
    printf("%s: %d check(s) failed\n", name, g_failures);
    return 1;
  }
  printf("%s: all checks passed\n", name);
  return 0;
}

#endif
