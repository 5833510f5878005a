/* The order check of the block-program tests (tests/emu_order.h) on three
 * toy programs of the same form (block b, thread tid, phase), with shared
 * memory poisoned per block as the tests do: a block's sum of squares with a
 * barrier between the writes of the squares and the sum must give the same
 * bits in every order; the same sum without that barrier, and a launch whose
 * blocks read the block before them, must be caught, although the forward
 * order alone gives both the right answer (which is why one fixed order is
 * not enough). */
#include <math.h>
#include <stdio.h>

#include "emu_order.h"
#include "test_util.h"

#define TOY_THREADS 64
#define TOY_BLOCKS 5

typedef struct {
  const float *x; /* (TOY_BLOCKS, TOY_THREADS) */
  float *out;     /* (2 TOY_BLOCKS): each block's sum, then what it read of the block before */
  int barrier;    /* the sum one phase after the squares */
  int cross;      /* thread 0 of block b > 0 reads block b - 1's sum */
} toy_args;

static void toy_block(const toy_args *a, int b, int tid, int phase, float *sm) {
  const int last = TOY_THREADS - 1;
  if (phase == 0)
    sm[tid] = a->x[b * TOY_THREADS + tid] * a->x[b * TOY_THREADS + tid];
  if (tid == last && phase == (a->barrier ? 1 : 0)) {
    float s = 0.0f;
    for (int i = 0; i < TOY_THREADS; i++)
      s += sm[i];
    a->out[b] = s;
  }
  if (a->cross && phase == 1 && tid == 0)
    a->out[TOY_BLOCKS + b] = b > 0 ? a->out[b - 1] : 0.0f;
}

/* One launch in the current order; 1 if its sums are the reference's. */
static int toy_run(const toy_args *a, const float *want) {
  float sm[TOY_THREADS];
  test_poison_nan(a->out, 2 * TOY_BLOCKS, 1);
  EMU_FOR (b, TOY_BLOCKS) {
    test_poison_nan(sm, TOY_THREADS, 2);
    for (int ph = 0; ph < 2; ph++)
      EMU_FOR (t, TOY_THREADS)
        toy_block(a, b, t, ph, sm);
  }
  int right = 1;
  for (int b = 0; b < TOY_BLOCKS; b++) {
    right &= fabsf(a->out[b] - want[b]) <= 1e-5f * want[b];
    if (a->cross && b > 0)
      right &= fabsf(a->out[TOY_BLOCKS + b] - want[b - 1]) <= 1e-5f * want[b - 1];
  }
  return right;
}

int main(void) {
  float x[TOY_BLOCKS * TOY_THREADS], want[TOY_BLOCKS], out[2 * TOY_BLOCKS];
  for (int b = 0; b < TOY_BLOCKS; b++) {
    double s = 0;
    for (int t = 0; t < TOY_THREADS; t++) {
      x[b * TOY_THREADS + t] = (float)nrand();
      s += (double)x[b * TOY_THREADS + t] * x[b * TOY_THREADS + t];
    }
    want[b] = (float)s;
  }
  const struct {
    const char *name;
    int barrier, cross, race;
  } progs[] = {{"the sum after a barrier", 1, 0, 0},
               {"the sum in the phase that writes its terms", 0, 0, 1},
               {"a block reading the block before it in the same launch", 1, 1, 1}};
  /* the permutations: every index once */
  for (int o = 0; o < EMU_ORDERS; o++) {
    g_emu_order = o;
    for (int n = 1; n <= 300; n++) {
      int seen[300] = {0}, ok = 1;
      for (int i = 0; i < n; i++) {
        int v = emu_at(i, n);
        ok &= v >= 0 && v < n && !seen[v];
        if (v >= 0 && v < n)
          seen[v] = 1;
      }
      CHECK(ok, "%s order over %d items is not a permutation", emu_order_names[o], n);
    }
  }
  for (int o = 0; o < EMU_ORDERS; o++) {
    emu_begin_order(o, 0);
    for (size_t k = 0; k < sizeof(progs) / sizeof(progs[0]); k++) {
      toy_args a = {x, out, progs[k].barrier, progs[k].cross};
      int right = toy_run(&a, want);
      size_t first;
      long long diff = emu_differs(out, sizeof(out), &first);
      printf("%-56s %-8s order: %s, %lld bytes differ from forward\n", progs[k].name,
             emu_order_names[o], right ? "right" : "wrong", diff);
      if (o == EMU_FORWARD)
        CHECK(right, "%s: wrong in forward order", progs[k].name);
      else if (!progs[k].race)
        CHECK(right && diff == 0, "%s, %s order: right %d, %lld bytes differ", progs[k].name,
              emu_order_names[o], right, diff);
      else if (o == EMU_REVERSE) /* every pair both ways round: a race shows */
        CHECK(diff > 0, "%s: the race passed unseen in reverse order", progs[k].name);
    }
  }
  /* the strided order splits warps: thread 0 lands apart from thread 1 */
  g_emu_order = EMU_STRIDED;
  CHECK(emu_at(1, 256) - emu_at(0, 256) > 32, "strided order: neighbours %d, %d", emu_at(0, 256),
        emu_at(1, 256));
  emu_seen_free();
  return test_summary("test_emu_order");
}
