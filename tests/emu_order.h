/* The order in which an emulated CUDA launch runs its threads and blocks.
 *
 * The block-program tests run a kernel's program on the host: for each agent
 * and block, for each phase (the code between two barriers), every thread one
 * after another. On a GPU the threads of a phase, and the blocks of a launch,
 * run at the same time, so a program is right only if its result does not
 * depend on the order they run in. A missing barrier (a thread reading what
 * another thread writes in the same phase), two threads writing one place,
 * or a block reading what another block of the same launch writes, all give
 * results that change with the order; run in one fixed order, such a race
 * passes unseen. So the tests run every emulation in each order below and ask
 * for the same bits each time (the programs use no atomics, and each value
 * has one writer, so a race-free program gives identical bits): forward and
 * reverse put every pair of threads, and of blocks, both ways round; the
 * strided order also splits up neighbours (a warp's lanes). */
#ifndef BLPO_TEST_EMU_ORDER_H
#define BLPO_TEST_EMU_ORDER_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_util.h"

enum { EMU_FORWARD, EMU_REVERSE, EMU_STRIDED, EMU_ORDERS };
static const char *const emu_order_names[EMU_ORDERS] = {"forward", "reverse", "strided"};
static int g_emu_order = EMU_FORWARD;

static inline int emu_gcd(int a, int b) {
  while (b) {
    int r = a % b;
    a = b, b = r;
  }
  return a;
}

/* The i-th of count items (0 <= i < count) in the current order; i itself
 * for i >= count (the value a loop computes as it ends, never used). */
static inline int emu_at(int i, int count) {
  static int cached_count = -1, cached_stride = 1;
  if (i >= count)
    return i;
  switch (g_emu_order) {
  case EMU_REVERSE:
    return count - 1 - i;
  case EMU_STRIDED:
    if (count != cached_count) { /* about 0.618 count, made coprime: a permutation */
      int s = (int)(0.618 * count) + 1;
      while (emu_gcd(s, count) != 1)
        s++;
      cached_count = count, cached_stride = s;
    }
    return (int)((int64_t)i * cached_stride % count);
  default:
    return i;
  }
}

/* for (v = each of 0..count-1 in the current order) */
#define EMU_FOR(v, count)                                                                          \
  for (int v##_i = 0, v##_n = (count), v = emu_at(0, v##_n); v##_i < v##_n;                        \
       v = emu_at(++v##_i, v##_n))

/* The outputs of the forward order, kept to compare the other orders with:
 * the k-th call of emu_same in an order meets the k-th of the forward one
 * (emu_begin_order resets the input stream, so the same calls see the same
 * inputs). */
static struct {
  void **copy;
  size_t *bytes;
  size_t count, cap, next;
} g_emu_seen;

static inline void emu_begin_order(int order, uint64_t rng_seed) {
  g_emu_order = order;
  g_rng = rng_seed;
  g_emu_seen.next = 0;
}

/* Forward order: keeps a copy of out and returns 0. Other orders: the
 * number of bytes in which out differs from the copy of the same call (its
 * first at *first), or -1 where there is no such copy. */
static inline long long emu_differs(const void *out, size_t bytes, size_t *first) {
  size_t k = g_emu_seen.next++;
  *first = 0;
  if (g_emu_order == EMU_FORWARD) {
    if (g_emu_seen.count == g_emu_seen.cap) {
      size_t cap = g_emu_seen.cap ? 2 * g_emu_seen.cap : 16;
      void **c = realloc(g_emu_seen.copy, cap * sizeof(*c));
      size_t *b = c ? realloc(g_emu_seen.bytes, cap * sizeof(*b)) : NULL;
      if (!c || !b) {
        fprintf(stderr, "out of memory\n");
        exit(2);
      }
      g_emu_seen.copy = c, g_emu_seen.bytes = b, g_emu_seen.cap = cap;
    }
    void *c = malloc(bytes ? bytes : 1);
    if (!c) {
      fprintf(stderr, "out of memory\n");
      exit(2);
    }
    memcpy(c, out, bytes);
    g_emu_seen.copy[g_emu_seen.count] = c, g_emu_seen.bytes[g_emu_seen.count] = bytes;
    g_emu_seen.count++;
    return 0;
  }
  if (k >= g_emu_seen.count || g_emu_seen.bytes[k] != bytes)
    return -1;
  const unsigned char *a = out, *b = g_emu_seen.copy[k];
  long long diff = 0;
  for (size_t i = 0; i < bytes; i++)
    if (a[i] != b[i] && diff++ == 0)
      *first = i;
  return diff;
}

/* emu_differs as a check: the same bits in every order. */
static inline void emu_same(const char *what, const void *out, size_t bytes) {
  size_t first;
  long long diff = emu_differs(out, bytes, &first);
  CHECK(diff >= 0, "%s, %s order: no forward-order call of %zu bytes to compare with", what,
        emu_order_names[g_emu_order], bytes);
  CHECK(diff <= 0,
        "%s: the %s order gives other bits than the forward order (%lld of %zu bytes, first at "
        "byte %zu): the result depends on the order threads or blocks run in, a race on a GPU",
        what, emu_order_names[g_emu_order], diff, bytes, first);
}

static inline void emu_seen_free(void) {
  for (size_t k = 0; k < g_emu_seen.count; k++)
    free(g_emu_seen.copy[k]);
  free(g_emu_seen.copy);
  free(g_emu_seen.bytes);
  memset(&g_emu_seen, 0, sizeof(g_emu_seen));
}

#endif
