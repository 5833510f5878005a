/* Counter-based random numbers: Philox4x32-10 (Salmon et al., SC'11), the
 * generator behind cuRAND's Philox and JAX's threefry-style streams.
 * Written out here instead of calling cuRAND because the CPU reference must
 * draw the very same numbers; a stream is (key, counter), so a value depends
 * only on which env/agent/step asks for it, never on thread placement. */
#ifndef BLPO_RNG_H
#define BLPO_RNG_H

#include <stdint.h>

#include "hd.h"

/* What a stream is used for: keeps the streams of one env/agent disjoint. */
enum {
  BLPO_STREAM_ENV_RESET = 1, /* env reset draws, counter = env's reset count */
  BLPO_STREAM_ACTION = 2,    /* action sampling, counter = global rollout step */
  BLPO_STREAM_INIT = 3,      /* network initialisation */
  BLPO_STREAM_PERMUTE = 4,   /* minibatch permutations */
  BLPO_STREAM_SKETCH = 5     /* Nystrom index sampling */
};

typedef struct {
  uint32_t k0, k1;
} blpo_key;

BLPO_HD uint32_t blpo_mulhilo32(uint32_t a, uint32_t b, uint32_t *hi) {
  uint64_t p = (uint64_t)a * (uint64_t)b;
  *hi = (uint32_t)(p >> 32);
  return (uint32_t)p;
}

/* Philox4x32 with 10 rounds on counter c[4] and key k. */
BLPO_HD void blpo_philox4x32(const uint32_t c_in[4], blpo_key k, uint32_t out[4]) {
  uint32_t c0 = c_in[0], c1 = c_in[1], c2 = c_in[2], c3 = c_in[3];
  uint32_t k0 = k.k0, k1 = k.k1;
  for (int r = 0; r < 10; r++) {
    uint32_t hi0, hi1;
    uint32_t lo0 = blpo_mulhilo32(0xD2511F53u, c0, &hi0);
    uint32_t lo1 = blpo_mulhilo32(0xCD9E8D57u, c2, &hi1);
    uint32_t n0 = hi1 ^ c1 ^ k0;
    uint32_t n1 = lo1;
    uint32_t n2 = hi0 ^ c3 ^ k1;
    uint32_t n3 = lo0;
    c0 = n0;
    c1 = n1;
    c2 = n2;
    c3 = n3;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
}

/* splitmix-style mixing for deriving keys from small integers. */
BLPO_HD uint32_t blpo_mix32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x7feb352dU;
  x ^= x >> 15;
  x *= 0x846ca68bU;
  x ^= x >> 16;
  return x;
}

/* The key of one stream: run seed, agent seed offset, purpose, and an index
 * (env index, or 0 for agent-wide streams). Agent i of a population uses
 * seed + i, so its streams do not depend on the population size. */
BLPO_HD blpo_key blpo_make_key(uint64_t seed, uint32_t purpose, uint32_t index) {
  blpo_key k;
  k.k0 = blpo_mix32((uint32_t)seed ^ blpo_mix32(purpose * 0x9E3779B9u + 0x632BE5ABu));
  k.k1 = blpo_mix32((uint32_t)(seed >> 32) ^ blpo_mix32(index + 0x85EBCA6Bu) ^ (purpose << 24));
  return k;
}

/* The auto-reset stream of env `env` of agent `agent` (counter = the env's
 * reset count): every backend and the fused rollout step use this one. */
BLPO_HD blpo_key blpo_env_reset_key(uint64_t seed, int agent, int env) {
  return blpo_make_key(seed + (uint64_t)agent, BLPO_STREAM_ENV_RESET, (uint32_t)env);
}

/* Four 32-bit words for (key, counter hi, counter lo). */
BLPO_HD void blpo_rand4(blpo_key k, uint32_t ctr_hi, uint32_t ctr_lo, uint32_t out[4]) {
  uint32_t c[4] = {ctr_lo, ctr_hi, 0u, 0u};
  blpo_philox4x32(c, k, out);
}

/* Uniform in [0, 1) with 24 random bits (exactly representable in float). */
BLPO_HD float blpo_u01(uint32_t x) { return (float)(x >> 8) * (1.0f / 16777216.0f); }

/* Uniform in (0, 1]: safe for log(). */
BLPO_HD float blpo_u01_open0(uint32_t x) { return ((float)(x >> 8) + 1.0f) * (1.0f / 16777216.0f); }

/* Uniform double in [0,1) from two words (53 bits), for host-side init. */
BLPO_HD double blpo_u01_d(uint32_t a, uint32_t b) {
  uint64_t v = ((uint64_t)(a >> 5) << 26) | (uint64_t)(b >> 6);
  return (double)v * (1.0 / 9007199254740992.0);
}

#endif
