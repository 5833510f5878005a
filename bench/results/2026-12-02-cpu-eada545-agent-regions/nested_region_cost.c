/* Cost of an inactive nested parallel region (max_active_levels = 1), as the
 * CPU backend's agents-side-by-side paths would pay per agent and op. */
#include <omp.h>
#include <stdio.h>

static volatile float sink;

static void work(float *x, int n) {
  for (int i = 0; i < n; i++)
    x[i] = x[i] * 0.999f + 1.0f;
}

__attribute__((noinline)) static void agent_plain(float *x, int n) { work(x, n); }

__attribute__((noinline)) static void agent_region(float *x, int n) {
#pragma omp parallel num_threads(2)
  {
    if (omp_get_thread_num() == 0)
      work(x, n);
  }
}

int main(void) {
  omp_set_max_active_levels(1);
  enum { P = 16, REPS = 20000, N = 64 };
  static float x[P][N];
  for (int mode = 0; mode < 2; mode++)
    for (int round = 0; round < 3; round++) {
      double t0 = omp_get_wtime();
      for (int r = 0; r < REPS; r++) {
#pragma omp parallel for schedule(dynamic)
        for (int p = 0; p < P; p++)
          (mode ? agent_region : agent_plain)(x[p], N);
      }
      double t = omp_get_wtime() - t0;
      printf("%s: %.3f us per outer loop of %d agents (%.3f us per agent call)\n",
             mode ? "nested inactive region" : "plain call", 1e6 * t / REPS, P, 1e6 * t / REPS / P);
    }
  sink = x[0][0];
  return 0;
}
