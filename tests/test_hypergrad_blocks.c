/* The actor step's block program (include/blpo/hypergrad_blocks.h) against
 * the CPU backend's hypergrad_combine followed by its adam (no scale), the
 * two ops the trainer runs where a backend has no hypergrad_step: with Adam
 * on and off, 1 to 40000 parameters (under, at and over one pass of the
 * block's threads, the 64-64 CartPole actor's 4610, and past
 * BLPO_HGS_MAX_COUNT, which the program takes although the backends send
 * such sizes to the Adam kernel), one and three agents, and mixed terms
 * whose bound is active (s < 1), inactive (s = 1), zero (nested: |p| = 0)
 * and a zero gradient (s = 0, cos 0). Adam's constants come from a clock
 * buffer with an anneal, as the trainer's.
 *
 * Checked: h, the parameters' change and both moments to 1e-5 of their
 * norms (the sums differ from the CPU's sequential ones in double rounding
 * only); the four stats to 1e-6; the other stats slots and a guard past
 * every buffer bit for bit unchanged; shared memory starts as NaN. Threads
 * and agents run in forward, reverse and strided order, with the same bits
 * each time (tests/emu_order.h).
 *
 *   --cuda  (exits 77 without a device) the CUDA backend's hypergrad_step
 *           with the one kernel on and off (set_fused_solve) and its
 *           hypergrad_combine, against the CPU. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blpo/backend.h"
#include "blpo/hypergrad_blocks.h"
#include "cuda_test_backend.h"
#include "emu_order.h"
#include "test_util.h"

enum { GUARD = 37 };

enum { BOUND_ACTIVE, BOUND_INACTIVE, P_ZERO, G_ZERO, KINDS };
static const char *const kind_name[KINDS] = {"bound active", "bound inactive", "p = 0", "g = 0"};

typedef struct {
  int P;
  size_t count;
  int kind;
} hg_case;

/* One side's buffers, each (P, count) plus a guard. */
typedef struct {
  float *g, *p, *w, *m, *v, *stats;
} hg_side;

static const size_t kCounts[] = {1, 255, 256, 257, 4610, 40000};
static const float BETA = 0.5f;
static int64_t g_clock = 3; /* the iteration Adam's schedule reads */

static blpo_adam_sched sched_of(void) {
  blpo_adam_sched s = blpo_adam_fixed(5e-4f, 0.9f, 0.999f, 1e-5f, 1);
  s.anneal_iters = 10;
  s.step = (blpo_counter){&g_clock, 128, 7};
  return s;
}

static size_t total(const hg_case *c) { return (size_t)c->P * c->count; }

static void side_new(hg_side *s, const hg_case *c) {
  size_t n = total(c) + GUARD;
  s->g = test_alloc_floats(n), s->p = test_alloc_floats(n), s->w = test_alloc_floats(n);
  s->m = test_alloc_floats(n), s->v = test_alloc_floats(n);
  s->stats = test_alloc_floats((size_t)c->P * BLPO_STAT_COUNT);
}

static void side_free(hg_side *s) {
  free(s->g), free(s->p), free(s->w), free(s->m), free(s->v), free(s->stats);
}

static void side_copy(hg_side *dst, const hg_side *src, const hg_case *c) {
  size_t b = (total(c) + GUARD) * sizeof(float);
  memcpy(dst->g, src->g, b), memcpy(dst->p, src->p, b), memcpy(dst->w, src->w, b);
  memcpy(dst->m, src->m, b), memcpy(dst->v, src->v, b);
  memcpy(dst->stats, src->stats, (size_t)c->P * BLPO_STAT_COUNT * sizeof(float));
}

/* Random inputs of the case's kind; guards poisoned. */
static void side_fill(hg_side *s, const hg_case *c) {
  size_t n = total(c);
  /* |p| against |g|: s = beta |g| / |p| = 0.05 (active) or 1 (inactive) */
  double ps = c->kind == BOUND_ACTIVE ? 10.0 : c->kind == BOUND_INACTIVE ? 0.1 : 1.0;
  for (size_t i = 0; i < n; i++) {
    s->g[i] = c->kind == G_ZERO ? 0.0f : (float)(1e-2 * nrand());
    s->p[i] = c->kind == P_ZERO ? 0.0f : (float)(1e-2 * ps * nrand());
    s->w[i] = (float)(0.3 * nrand());
    s->m[i] = (float)(1e-3 * nrand());
    s->v[i] = (float)(1e-5 * urand());
  }
  if (c->kind == BOUND_ACTIVE || c->kind == BOUND_INACTIVE)
    for (int a = 0; a < c->P; a++) { /* |p| = ps |g| exactly, whatever the draw */
      float *g = s->g + (size_t)a * c->count, *pv = s->p + (size_t)a * c->count;
      double gg = 0, pp = 0;
      for (size_t i = 0; i < c->count; i++)
        gg += (double)g[i] * g[i], pp += (double)pv[i] * pv[i];
      double f = ps * sqrt(gg) / (sqrt(pp) + 1e-30);
      for (size_t i = 0; i < c->count; i++)
        pv[i] = (float)(f * pv[i]);
    }
  float *bufs[] = {s->g, s->p, s->w, s->m, s->v};
  for (size_t k = 0; k < 5; k++)
    test_poison_nan(bufs[k] + n, GUARD, 0x40 + (uint32_t)k);
  for (size_t i = 0; i < (size_t)c->P * BLPO_STAT_COUNT; i++)
    s->stats[i] = (float)urand();
}

static void reference(blpo_backend *cpu, const hg_case *c, hg_side *s, int adam) {
  cpu->hypergrad_combine(cpu, c->P, c->count, s->g, s->p, BETA, s->stats);
  if (adam)
    cpu->adam(cpu, c->P, c->count, s->w, s->g, s->m, s->v, NULL, sched_of());
}

/* got against want (both from `start`): values, guards and stats. */
static void compare(const hg_case *c, const char *side, int adam, const hg_side *got,
                    const hg_side *want, const hg_side *start) {
  size_t n = total(c);
  char what[200];
  snprintf(what, sizeof what, "%s: P %d, %zu parameters, %s, adam %s", side, c->P, c->count,
           kind_name[c->kind], adam ? "on" : "off");
  struct {
    const char *name;
    const float *x, *y, *base, *st;
  } f[] = {{"h", got->g, want->g, NULL, start->g},
           {"parameters' change", got->w, want->w, start->w, start->w},
           {"m", got->m, want->m, NULL, start->m},
           {"v", got->v, want->v, NULL, start->v},
           {"p", got->p, want->p, NULL, start->p}};
  for (size_t k = 0; k < sizeof(f) / sizeof(f[0]); k++) {
    if (c->kind == G_ZERO && !strcmp(f[k].name, "h")) { /* h = g - 0 p = 0 exactly */
      size_t nz = 0;
      for (size_t i = 0; i < n; i++)
        nz += f[k].x[i] != 0.0f;
      CHECK(nz == 0, "%s: h has %zu non-zero values where g = 0", what, nz);
      continue;
    }
    double e = test_rel_norm_err(f[k].x, f[k].y, f[k].base, n);
    CHECK(e < 1e-5, "%s: %s differs by %.3e of its norm", what, f[k].name, e);
  }
  for (size_t k = 0; k < sizeof(f) / sizeof(f[0]); k++)
    CHECK(!memcmp(f[k].x + n, f[k].st + n, GUARD * sizeof(float)),
          "%s: the guard past %s was written", what, f[k].name);
  const int slots[] = {BLPO_STAT_G_NORM, BLPO_STAT_P_NORM, BLPO_STAT_SCALE, BLPO_STAT_COS};
  for (int p = 0; p < c->P; p++)
    for (int q = 0; q < BLPO_STAT_COUNT; q++) {
      float x = got->stats[p * BLPO_STAT_COUNT + q], y = want->stats[p * BLPO_STAT_COUNT + q];
      int reported = 0;
      for (size_t k = 0; k < 4; k++)
        reported |= q == slots[k];
      if (reported)
        CHECK(fabsf(x - y) <= 1e-6f * fmaxf(1.0f, fabsf(y)), "%s: agent %d stat %d: %g, want %g",
              what, p, q, (double)x, (double)y);
      else
        CHECK(!memcmp(&x, &y, sizeof x), "%s: agent %d stat %d (not the op's) changed", what, p, q);
    }
  /* the bound did what the case says (the CPU's scale, on one agent) */
  float s = want->stats[BLPO_STAT_SCALE] - start->stats[BLPO_STAT_SCALE];
  if (c->kind == BOUND_ACTIVE)
    CHECK(s < 0.5f, "%s: the bound was not active (s %g)", what, (double)s);
  else if (c->kind == G_ZERO)
    CHECK(s == 0.0f, "%s: s %g where g = 0", what, (double)s);
  else
    CHECK(fabsf(s - 1.0f) < 1e-6f, "%s: s %g, want 1", what, (double)s);
}

static void run_program(const hg_case *c, hg_side *s, int adam) {
  blpo_hgs_args a = {.count = c->count, .g = s->g, .p = s->p, .beta = BETA, .stats = s->stats};
  if (adam)
    a.adam = 1, a.params = s->w, a.m = s->m, a.v = s->v, a.sched = sched_of();
  blpo_hgs_shared sh;
  EMU_FOR (p, c->P) {
    memset(&sh, 0xff, sizeof(sh)); /* NaN: a read before a write spoils the result */
    for (int ph = 0; ph < blpo_hgs_phases(); ph++)
      EMU_FOR (t, BLPO_HGS_THREADS)
        blpo_hgs_block(&a, p, t, ph, &sh);
  }
}

static void check_blocks(const hg_case *c, blpo_backend *cpu) {
  hg_side start, want, got;
  side_new(&start, c), side_new(&want, c), side_new(&got, c);
  side_fill(&start, c);
  for (int adam = 0; adam <= 1; adam++) {
    side_copy(&want, &start, c);
    side_copy(&got, &start, c);
    reference(cpu, c, &want, adam);
    run_program(c, &got, adam);
    compare(c, "block program", adam, &got, &want, &start);
    size_t b = (total(c) + GUARD) * sizeof(float);
    char what[160];
    snprintf(what, sizeof what, "P %d, %zu parameters, %s, adam %d", c->P, c->count,
             kind_name[c->kind], adam);
    emu_same(what, got.g, b);
    emu_same(what, got.w, b);
    emu_same(what, got.m, b);
    emu_same(what, got.v, b);
    emu_same(what, got.stats, (size_t)c->P * BLPO_STAT_COUNT * sizeof(float));
  }
  side_free(&start), side_free(&want), side_free(&got);
}

#ifdef BLPO_WITH_CUDA
static void check_cuda(const hg_case *c, blpo_backend *cpu, blpo_backend *gpu) {
  hg_side start, want, got, dev;
  side_new(&start, c), side_new(&want, c), side_new(&got, c);
  side_fill(&start, c);
  size_t b = (total(c) + GUARD) * sizeof(float),
         sb = (size_t)c->P * BLPO_STAT_COUNT * sizeof(float);
  int64_t *clock = gpu->alloc(gpu, sizeof(int64_t));
  gpu->upload(gpu, clock, &g_clock, sizeof(int64_t));
  float **d[] = {&dev.g, &dev.p, &dev.w, &dev.m, &dev.v};
  float *h[] = {got.g, got.p, got.w, got.m, got.v};
  const float *h0[] = {start.g, start.p, start.w, start.m, start.v};
  for (size_t k = 0; k < 5; k++)
    *d[k] = gpu->alloc(gpu, b);
  dev.stats = gpu->alloc(gpu, sb);
  /* three ways: combine only, step with the one kernel, step on the two kernels */
  for (int way = 0; way < 3; way++) {
    int adam = way > 0;
    side_copy(&want, &start, c);
    reference(cpu, c, &want, adam);
    for (size_t k = 0; k < 5; k++)
      gpu->upload(gpu, *d[k], h0[k], b);
    gpu->upload(gpu, dev.stats, start.stats, sb);
    blpo_adam_sched s = sched_of();
    s.step.clock = clock;
    if (way == 0) {
      gpu->hypergrad_combine(gpu, c->P, c->count, dev.g, dev.p, BETA, dev.stats);
    } else {
      gpu->set_fused_solve(gpu, way == 1);
      gpu->hypergrad_step(gpu, c->P, c->count, dev.g, dev.p, BETA, dev.stats, dev.w, dev.m, dev.v,
                          s);
      gpu->set_fused_solve(gpu, 1);
    }
    for (size_t k = 0; k < 5; k++)
      gpu->download(gpu, h[k], *d[k], b);
    gpu->download(gpu, got.stats, dev.stats, sb);
    compare(c,
            way == 0   ? "cuda combine"
            : way == 1 ? "cuda step, one kernel"
                       : "cuda step, two",
            adam, &got, &want, &start);
  }
  for (size_t k = 0; k < 5; k++)
    gpu->release(gpu, *d[k]);
  gpu->release(gpu, dev.stats);
  gpu->release(gpu, clock);
  side_free(&start), side_free(&want), side_free(&got);
}
#endif

int main(int argc, char **argv) {
  int cuda = argc > 1 && !strcmp(argv[1], "--cuda");
  blpo_backend *cpu = blpo_backend_cpu_create(1);
  hg_case cases[2 * (sizeof(kCounts) / sizeof(kCounts[0])) * KINDS];
  size_t nc = 0;
  for (int P = 1; P <= 3; P += 2)
    for (size_t k = 0; k < sizeof(kCounts) / sizeof(kCounts[0]); k++)
      for (int kind = 0; kind < KINDS; kind++)
        cases[nc++] = (hg_case){P, kCounts[k], kind};
  if (cuda) {
#ifdef BLPO_WITH_CUDA
    char why[256];
    blpo_backend *gpu = blpo_test_cuda_create(why, sizeof why);
    if (!gpu) {
      printf("test_hypergrad_blocks --cuda: skipped: %s\n", why);
      cpu->destroy(cpu);
      return 77;
    }
    for (size_t k = 0; k < nc; k++)
      check_cuda(&cases[k], cpu, gpu);
    gpu->destroy(gpu);
    cpu->destroy(cpu);
    return test_summary("test_hypergrad_blocks --cuda");
#else
    printf("test_hypergrad_blocks --cuda: skipped: built without the CUDA backend\n");
    cpu->destroy(cpu);
    return 77;
#endif
  }
  CHECK(cpu->hypergrad_step == NULL, "the CPU runs the two ops (hypergrad_step NULL)");
  const uint64_t seed = g_rng;
  for (int o = 0; o < EMU_ORDERS; o++) {
    emu_begin_order(o, seed);
    for (size_t k = 0; k < nc; k++)
      check_blocks(&cases[k], cpu);
  }
  emu_seen_free();
  cpu->destroy(cpu);
  return test_summary("test_hypergrad_blocks");
}
