/* Counter-based random permutations, host and device.
 *
 * Element i of a permutation of [0, n) is computed on its own: a balanced
 * Feistel network on 2h bits (the smallest with 2^(2h) >= n; at most 4n
 * values) with six rounds keyed by Philox words of (key, counter), walked
 * (the network applied again) until the value lands in [0, n). Cycle-walking
 * a permutation of the larger domain gives a permutation of [0, n), and each
 * element takes under four walks on average. So the minibatch shuffles and
 * the Nystrom index draws of an iteration are one kernel of independent
 * threads on the GPU, the same numbers as the CPU's loop, and depend only on
 * (seed, agent, counter), never on the thread layout; and no index array is
 * uploaded from the host, which is what lets an iteration be replayed as a
 * CUDA graph. (The earlier host-side Fisher-Yates was serial and uploaded.)
 * Six rounds: four already make a pseudo-random permutation from random
 * round functions (Luby-Rackoff); two more for the small domains here. */
#ifndef BLPO_PERMUTE_H
#define BLPO_PERMUTE_H

#include <stdint.h>

#include "hd.h"
#include "rng.h"

#define BLPO_FEISTEL_ROUNDS 6

typedef struct {
  uint32_t round_key[BLPO_FEISTEL_ROUNDS];
  uint32_t half_bits; /* h */
  uint32_t mask;      /* 2^h - 1 */
  uint32_t n;
} blpo_perm;

/* The permutation of [0, n) (n >= 1) drawn from stream key at counter. */
BLPO_HD blpo_perm blpo_perm_make(blpo_key key, uint32_t counter, uint32_t n) {
  blpo_perm pm;
  uint32_t r[8];
  blpo_rand4(key, counter, 0u, r);
  blpo_rand4(key, counter, 1u, r + 4);
  for (int j = 0; j < BLPO_FEISTEL_ROUNDS; j++)
    pm.round_key[j] = r[j];
  uint32_t h = 1;
  while (h < 16 && ((uint64_t)1 << (2 * h)) < (uint64_t)n)
    h++;
  pm.half_bits = h;
  pm.mask = (1u << h) - 1u;
  pm.n = n;
  return pm;
}

/* One pass of the network over the 2h-bit domain (a bijection of it). */
BLPO_HD uint32_t blpo_feistel(const blpo_perm *pm, uint32_t x) {
  uint32_t h = pm->half_bits, m = pm->mask;
  uint32_t left = x >> h, right = x & m;
  for (int j = 0; j < BLPO_FEISTEL_ROUNDS; j++) {
    uint32_t f = blpo_mix32(right ^ pm->round_key[j]) & m;
    uint32_t t = left ^ f;
    left = right;
    right = t;
  }
  return (left << h) | right;
}

/* Element i (< n) of the permutation. */
BLPO_HD uint32_t blpo_perm_at(const blpo_perm *pm, uint32_t i) {
  uint32_t x = blpo_feistel(pm, i);
  while (x >= pm->n)
    x = blpo_feistel(pm, x);
  return x;
}

/* Streams of the three shuffles (the purpose index inside BLPO_STREAM_PERMUTE
 * / BLPO_STREAM_SKETCH keeps them apart). */
BLPO_HD blpo_key blpo_samples_key(uint64_t seed, int agent) {
  return blpo_make_key(seed + (uint64_t)agent, BLPO_STREAM_PERMUTE, 0u);
}
BLPO_HD blpo_key blpo_trajectories_key(uint64_t seed, int agent) {
  return blpo_make_key(seed + (uint64_t)agent, BLPO_STREAM_PERMUTE, 1u);
}
BLPO_HD blpo_key blpo_sketch_key(uint64_t seed, int agent) {
  return blpo_make_key(seed + (uint64_t)agent, BLPO_STREAM_SKETCH, 0u);
}

/* PPO's flat minibatches: position i of agent p's shuffled T*N samples holds
 * the (T, P, N) rollout row of sample s = perm(i) = t*N + env. */
BLPO_HD int32_t blpo_sample_row(const blpo_perm *pm, int P, int N, int p, uint32_t i) {
  uint32_t s = blpo_perm_at(pm, i);
  uint32_t t = s / (uint32_t)N, e = s % (uint32_t)N;
  return (int32_t)(((int64_t)t * P + p) * N + e);
}

#endif
