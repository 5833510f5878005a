/* Small helpers shared by the C tests: random numbers and checks. */
#ifndef BLPO_TEST_UTIL_H
#define BLPO_TEST_UTIL_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static int g_failures = 0;

#define CHECK(cond, ...)                                                                        \
  do {                                                                                          \
    if (!(cond)) {                                                                              \
      fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);                  \
      fprintf(stderr, __VA_ARGS__);                                                             \
      fputc('\n', stderr);                                                                      \
      g_failures++;                                                                             \
    }                                                                                           \
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

static inline int test_summary(const char *name) {
  if (g_failures) {
    printf("%s: %d check(s) failed\n", name, g_failures);
    return 1;
  }
  printf("%s: all checks passed\n", name);
  return 0;
}

#endif
