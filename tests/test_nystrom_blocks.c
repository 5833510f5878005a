/* The one-kernel Nystrom solve (include/blpo/nystrom_blocks.h) against the
 * CPU reference's nystrom_solve (LAPACK ssyevd + sgesv), on rows whose cores
 * have prescribed spectra, as tests/test_gpu_second_order.c builds them:
 * agent 0 with eigenvalues +-1e-9 that the cut-off drops between kept ones
 * (rank k - 2), agent 1 with all of [1, 10] (rank k), agent 2 a zero core
 * (nothing kept: x = v / rho and one core fault); and rows with no
 * structure. Ranks 1 to 32 (odd ones pair a dummy index in the Jacobi
 * rounds), 50 to 4545 parameters (the 64-64 CartPole critic). Two sides:
 *
 *   blocks  the block program run on the host thread by thread, shared
 *           memory poisoned with NaN (a read of anything not written first
 *           spoils x); also checked: the round-robin order meets every pair
 *           once a sweep, the sweeps converge, a NaN core falls back;
 *   cuda    (--cuda; exits 77 without a device) the CUDA backend's
 *           nystrom_solve with the fused solve on, then off (cuSOLVER).
 *
 * x to 1e-4 of its norm (both sides solve a system of condition ~1e2 in
 * float inputs), ranks and faults exactly, eigenvalue stats to 1e-5. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blpo/backend.h"
#include "blpo/nystrom_blocks.h"
#include "cuda_test_backend.h"
#include "emu_order.h"
#include "test_util.h"

enum { P = 3 };
static const float RHO = 0.5f, TOL = 1e-3f;

/* What the cores are: */
enum {
  UNSTRUCTURED, /* rows of N(0, 0.1^2), ridge 1, ranks taken from the reference */
  SPECTRA,      /* the three prescribed spectra, ridge 3 */
  PIVOTING,     /* ridge 0, eigenvalues in (-rho, 0) and > 0 and few other
                   columns: S indefinite, so the elimination must pivot */
  SINGULAR      /* diagonal cores C = diag(-rho, 1, 2) (np = k), ridge 0:
                   S = Lambda^2 + rho Lambda has an exact zero, a fault */
};
static const char *const kind_name[] = {"unstructured", "spectra", "pivoting", "singular"};

typedef struct {
  int k, kind;
  size_t np;
  float ridge;
  float *C, *v; /* (P, k, np), (P, np) */
  int32_t *idx; /* (P, k) */
  int rank[P], faults[P];
} nys_case;

static nys_case make_case(int k, size_t np, int kind) {
  nys_case c = {.k = k, .np = np, .kind = kind, .ridge = kind == SPECTRA ? 3.0f : 0.0f};
  if (kind == UNSTRUCTURED)
    c.ridge = 1.0f;
  c.C = test_alloc_floats((size_t)P * k * np);
  c.v = test_alloc_floats((size_t)P * np);
  c.idx = malloc(sizeof(int32_t) * P * k);
  for (size_t i = 0; i < (size_t)P * k * np; i++)
    c.C[i] = kind == SINGULAR ? 0.0f : (float)((kind == PIVOTING ? 0.3 : 0.1) * nrand());
  for (size_t i = 0; i < (size_t)P * np; i++)
    c.v[i] = (float)nrand();
  double *Q = malloc(sizeof(double) * k * k), *lam = malloc(sizeof(double) * k);
  for (int p = 0; p < P; p++) {
    int32_t *ix = c.idx + p * k;
    test_distinct_indices(k, (int)np, ix);
    c.rank[p] = -1, c.faults[p] = -1;
    if (kind == UNSTRUCTURED)
      continue;
    int cut = kind == SPECTRA && p == 0 && k >= 4;
    for (int a = 0; a < k; a++) {
      if (kind == SINGULAR)
        lam[a] = a == 0 ? -RHO : (double)a;
      else if (kind == PIVOTING)
        lam[a] = a % 3 == 2 ? 0.3 + 0.4 * urand() : -0.1 - 0.3 * urand();
      else
        lam[a] = p == 2   ? 0.0
                 : !cut   ? 1.0 + 9.0 * urand()
                 : a == 0 ? -2.0
                 : a == 1 ? 1e-9
                 : a == 2 ? -1e-9
                          : 1.0 + 0.4 * (a - 3);
    }
    c.rank[p] = kind == SPECTRA && p == 2 ? 0 : cut ? k - 2 : k;
    c.faults[p] = kind == SINGULAR || (kind == SPECTRA && p == 2);
    if (kind == SINGULAR)
      for (int i = 0; i < k * k; i++)
        Q[i] = i % (k + 1) == 0;
    else
      test_orthogonal(k, Q);
    float *Cp = c.C + (size_t)p * k * np;
    for (int a = 0; a < k; a++)
      for (int b = 0; b <= a; b++) {
        double s = 0;
        for (int q = 0; q < k; q++)
          s += Q[a * k + q] * lam[q] * Q[b * k + q];
        Cp[(size_t)a * np + ix[b]] = Cp[(size_t)b * np + ix[a]] = (float)s;
      }
  }
  free(Q), free(lam);
  return c;
}

static void free_case(nys_case *c) { free(c->C), free(c->v), free(c->idx); }

/* The block program for every agent, threads one after another per phase;
 * returns the most phases an agent ran. */
static int run_blocks(const nys_case *c, float *x, float *stats) {
  blpo_nys_args a = {.rows = c->C, .idx = c->idx, .v = c->v, .x = x, .stats = stats};
  a.rho = RHO, a.ridge = c->ridge, a.tol = TOL * (float)c->k;
  CHECK(blpo_nys_layout_init(&a.lay, c->k, c->np), "layout k = %d np = %zu", c->k, c->np);
  blpo_nys_shared *sh = malloc(sizeof(*sh));
  int most = 0;
  EMU_FOR (p, P) {
    memset(sh, 0xff, sizeof(*sh)); /* doubles NaN, ints -1 */
    int ran = 0;
    for (int ph = 0; ph < a.lay.phases; ph = blpo_nys_next(&a.lay, sh, ph), ran++)
      EMU_FOR (t, BLPO_NYS_THREADS)
        blpo_nys_block(&a, p, t, ph, sh);
    most = ran > most ? ran : most;
  }
  free(sh);
  return most;
}

static float *zeros(size_t n) {
  float *z = test_alloc_floats(n);
  memset(z, 0, sizeof(float) * n);
  return z;
}

/* One case on a fused side (blocks on the host, or gpu) against the CPU. */
static void check_case(blpo_backend *cpu, blpo_backend *gpu, const char *side, int k, size_t np,
                       int kind) {
  nys_case c = make_case(k, np, kind);
  const int failures = g_failures;
  double worst = 0;
  size_t nx = (size_t)P * np, ns = (size_t)P * BLPO_STAT_COUNT;
  float *xr = test_alloc_floats(nx), *xf = test_alloc_floats(nx);
  float *sr = zeros(ns), *sf = zeros(ns);
  test_poison_nan(xr, nx, 1);
  test_poison_nan(xf, nx, 2);
  CHECK(cpu->reserve_solver(cpu, P, k, np, 0) == 0, "cpu reserve_solver");
  cpu->nystrom_solve(cpu, P, np, k, c.C, c.idx, c.v, RHO, c.ridge, TOL * (float)k, xr, sr);
  int ran = 0;
  if (!gpu) {
    ran = run_blocks(&c, xf, sf);
    char what[96];
    snprintf(what, sizeof what, "%s k = %d np = %zu %s", side, k, np, kind_name[kind]);
    emu_same(what, xf, sizeof(float) * nx);
    emu_same(what, sf, sizeof(float) * ns);
  } else {
    CHECK(gpu->reserve_solver(gpu, P, k, np, 0) == 0, "gpu reserve_solver");
    float *dC = gpu->alloc(gpu, sizeof(float) * P * k * np), *dv = gpu->alloc(gpu, 4 * nx);
    float *dx = gpu->alloc(gpu, 4 * nx), *ds = gpu->alloc(gpu, 4 * ns);
    int32_t *di = gpu->alloc(gpu, sizeof(int32_t) * P * k);
    gpu->upload(gpu, dC, c.C, sizeof(float) * P * k * np);
    gpu->upload(gpu, dv, c.v, 4 * nx);
    gpu->upload(gpu, dx, xf, 4 * nx);
    gpu->upload(gpu, ds, sf, 4 * ns);
    gpu->upload(gpu, di, c.idx, sizeof(int32_t) * P * k);
    gpu->nystrom_solve(gpu, P, np, k, dC, di, dv, RHO, c.ridge, TOL * (float)k, dx, ds);
    gpu->download(gpu, xf, dx, 4 * nx);
    gpu->download(gpu, sf, ds, 4 * ns);
    void *bufs[] = {dC, dv, dx, ds, di};
    for (int i = 0; i < 5; i++)
      gpu->release(gpu, bufs[i]);
  }
  for (int p = 0; p < P; p++) {
    double e = test_rel_norm_err(xf + p * np, xr + p * np, NULL, np);
    const float *a = sf + p * BLPO_STAT_COUNT, *b = sr + p * BLPO_STAT_COUNT;
    worst = fmax(worst, e);
    CHECK(e < 1e-4, "%s k = %d np = %zu %s agent %d: x rel err %g", side, k, np, kind_name[kind], p,
          e);
    CHECK(a[BLPO_STAT_RANK] == b[BLPO_STAT_RANK] &&
              a[BLPO_STAT_CORE_FAULTS] == b[BLPO_STAT_CORE_FAULTS],
          "%s k = %d agent %d: rank %g faults %g, reference %g %g", side, k, p, a[BLPO_STAT_RANK],
          a[BLPO_STAT_CORE_FAULTS], b[BLPO_STAT_RANK], b[BLPO_STAT_CORE_FAULTS]);
    if (c.rank[p] >= 0)
      CHECK(b[BLPO_STAT_RANK] == c.rank[p] && b[BLPO_STAT_CORE_FAULTS] == c.faults[p],
            "k = %d agent %d: reference rank %g faults %g, prescribed %d %d", k, p,
            b[BLPO_STAT_RANK], b[BLPO_STAT_CORE_FAULTS], c.rank[p], c.faults[p]);
    const int slots[] = {BLPO_STAT_EIG_MIN, BLPO_STAT_EIG_MAX};
    for (int s = 0; s < 2; s++)
      CHECK(fabsf(a[slots[s]] - b[slots[s]]) <= 1e-5f * fmaxf(1.0f, fabsf(b[slots[s]])),
            "%s k = %d agent %d: eigenvalue stat %d: %g, reference %g", side, k, p, slots[s],
            a[slots[s]], b[slots[s]]);
  }
  if (!gpu) {
    blpo_nys_layout y;
    blpo_nys_layout_init(&y, k, np);
    CHECK(ran < y.phases, "k = %d: the Jacobi sweeps did not converge (%d phases)", k, ran);
  }
  printf("%s k = %2d np = %4zu %-12s: %s (x rel err %.1e", side, k, np, kind_name[kind],
         g_failures == failures ? "ok" : "FAILED", worst);
  if (!gpu)
    printf(", %d phases", ran);
  printf(")\n");
  free(xr), free(xf), free(sr), free(sf);
  free_case(&c);
}

/* The circle order pairs every index once a round and every pair once a
 * sweep. */
static void check_rounds(void) {
  for (int kp = 2; kp <= BLPO_NYS_KMAX; kp += 2) {
    int met[BLPO_NYS_KMAX][BLPO_NYS_KMAX] = {{0}};
    for (int t = 0; t < kp - 1; t++) {
      int seen[BLPO_NYS_KMAX] = {0};
      for (int j = 0; j < kp / 2; j++) {
        int p, q;
        blpo_nys_round_pair(kp, t, j, &p, &q);
        CHECK(p >= 0 && p < q && q < kp, "kp %d round %d pair %d: (%d, %d)", kp, t, j, p, q);
        seen[p]++, seen[q]++, met[p][q]++;
      }
      for (int i = 0; i < kp; i++)
        CHECK(seen[i] == 1, "kp %d round %d: index %d in %d pairs", kp, t, i, seen[i]);
    }
    for (int p = 0; p < kp; p++)
      for (int q = p + 1; q < kp; q++)
        CHECK(met[p][q] == 1, "kp %d: pair (%d, %d) met %d times a sweep", kp, p, q, met[p][q]);
  }
  printf("round-robin order: ok\n");
}

/* A NaN in agent 1's core: the sweeps never converge, so that agent falls
 * back to v / rho with one fault; the others are untouched by it. */
static void check_nan_core(blpo_backend *cpu) {
  nys_case c = make_case(5, 300, SPECTRA);
  c.C[(size_t)1 * 5 * 300 + c.idx[5]] = NAN;
  size_t nx = (size_t)P * 300, ns = (size_t)P * BLPO_STAT_COUNT;
  float *x = test_alloc_floats(nx), *st = zeros(ns), *xr = test_alloc_floats(nx), *sr = zeros(ns);
  test_poison_nan(x, nx, 3);
  run_blocks(&c, x, st);
  int exact = 1;
  for (size_t i = 300; i < 600; i++)
    exact &= x[i] == c.v[i] * (1.0f / RHO);
  CHECK(exact, "NaN core: x is not v / rho");
  CHECK(st[BLPO_STAT_COUNT + BLPO_STAT_CORE_FAULTS] == 1.0f &&
            st[BLPO_STAT_COUNT + BLPO_STAT_RANK] == 0.0f,
        "NaN core: faults %g rank %g", st[BLPO_STAT_COUNT + BLPO_STAT_CORE_FAULTS],
        st[BLPO_STAT_COUNT + BLPO_STAT_RANK]);
  /* agents 0 and 2 as the reference (agent 1's reference is LAPACK on NaN) */
  CHECK(cpu->reserve_solver(cpu, P, 5, 300, 0) == 0, "cpu reserve_solver");
  cpu->nystrom_solve(cpu, P, 300, 5, c.C, c.idx, c.v, RHO, c.ridge, TOL * 5, xr, sr);
  for (int p = 0; p < P; p += 2) {
    double e = test_rel_norm_err(x + p * 300, xr + p * 300, NULL, 300);
    CHECK(e < 1e-4, "NaN core case, agent %d: x rel err %g", p, e);
  }
  printf("NaN core falls back: ok\n");
  free(x), free(st), free(xr), free(sr);
  free_case(&c);
}

int main(int argc, char **argv) {
  int cuda = argc > 1 && !strcmp(argv[1], "--cuda");
  blpo_backend *cpu = blpo_backend_cpu_create(1);
  CHECK(cpu != NULL, "cpu backend");
  if (!cpu)
    return 1;
  const struct {
    int k;
    size_t np;
  } sizes[] = {{5, 4545}, {12, 203}, {1, 50}, {2, 64}, {3, 97}, {8, 1000}, {31, 777}, {32, 2000}};
  const size_t ns = sizeof(sizes) / sizeof(sizes[0]);
  blpo_nys_layout y;
  CHECK(!blpo_nys_layout_init(&y, BLPO_NYS_KMAX + 1, 5000), "k > KMAX is not taken");
  CHECK(!blpo_nys_layout_init(&y, 0, 5000), "k = 0 is not taken");
  CHECK(!blpo_nys_layout_init(&y, 8, 7), "np < k is not taken");
  if (cuda) {
#ifdef BLPO_WITH_CUDA
    char why[256];
    blpo_backend *gpu = blpo_test_cuda_create(why, sizeof why);
    if (!gpu) {
      printf("test_nystrom_blocks --cuda: skipped: %s\n", why);
      cpu->destroy(cpu);
      return 77;
    }
    CHECK(gpu->set_fused_solve && gpu->set_fused_solve(gpu, 1) == BLPO_NYS_KMAX,
          "the CUDA backend's fused solve takes k <= %d", BLPO_NYS_KMAX);
    for (size_t i = 0; i < ns; i++)
      for (int kind = UNSTRUCTURED; kind <= SPECTRA; kind++)
        check_case(cpu, gpu, "cuda fused", sizes[i].k, sizes[i].np, kind);
    check_case(cpu, gpu, "cuda fused", 6, 9, PIVOTING);
    check_case(cpu, gpu, "cuda fused", 3, 3, SINGULAR);
    CHECK(gpu->set_fused_solve(gpu, 0) == 0, "fused solve off");
    for (size_t i = 0; i < ns; i++)
      check_case(cpu, gpu, "cuda cusolver", sizes[i].k, sizes[i].np, SPECTRA);
    gpu->destroy(gpu);
    cpu->destroy(cpu);
    return test_summary("test_nystrom_blocks --cuda");
#else
    printf("test_nystrom_blocks --cuda: skipped: built without the CUDA backend\n");
    cpu->destroy(cpu);
    return 77;
#endif
  }
  check_rounds();
  const uint64_t seed = g_rng;
  for (int o = 0; o < EMU_ORDERS; o++) {
    emu_begin_order(o, seed);
    printf("threads and agents in %s order\n", emu_order_names[o]);
    for (size_t i = 0; i < ns; i++)
      for (int kind = UNSTRUCTURED; kind <= SPECTRA; kind++)
        check_case(cpu, NULL, "blocks", sizes[i].k, sizes[i].np, kind);
    check_case(cpu, NULL, "blocks", 6, 9, PIVOTING);
    check_case(cpu, NULL, "blocks", 3, 3, SINGULAR);
    check_nan_core(cpu);
  }
  emu_seen_free();
  cpu->destroy(cpu);
  return test_summary("test_nystrom_blocks");
}
