/* Counter-based permutations (include/blpo/permute.h) and the CPU backend's
 * index draws built on them:
 *   - every permutation is a bijection of [0, n), for n around the
 *     Feistel domain's edges (powers of 4 and 2, +-1) and the sizes used;
 *   - positions are uniform: over 4000 counters, where element i lands is
 *     within a chi-square bound for every i of n = 10, and the chance that
 *     element 0 lands before element 1 is 1/2 within 5 standard errors;
 *   - other counters, agents and purposes give other permutations;
 *   - shuffle_samples gives agent p each of its T*N rollout rows once;
 *     shuffle_trajectories gives each env once per agent, in whole
 *     trajectories (time order kept) with the matching last_obs rows;
 *     sketch_indices gives k distinct indices in [0, np);
 *   - all three read their counter from the clock when they run. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blpo/backend.h"
#include "blpo/permute.h"
#include "test_util.h"

static int is_bijection(const blpo_perm *pm, uint32_t n) {
  unsigned char *seen = calloc(n, 1);
  int ok = 1;
  for (uint32_t i = 0; i < n && ok; i++) {
    uint32_t x = blpo_perm_at(pm, i);
    if (x >= n || seen[x])
      ok = 0;
    else
      seen[x] = 1;
  }
  free(seen);
  return ok;
}

static void test_bijections(void) {
  const uint32_t ns[] = {1,    2,    3,    4,     5,     15,    16,    17,   63,
                         64,   65,   100,  255,   256,   257,   1000,  1023, 1024,
                         1025, 4096, 4545, 32768, 65535, 65537, 131072};
  for (size_t k = 0; k < sizeof(ns) / sizeof(ns[0]); k++)
    for (uint32_t c = 0; c < 3; c++) {
      blpo_perm pm = blpo_perm_make(blpo_samples_key(7, (int)c), c * 977u, ns[k]);
      CHECK(is_bijection(&pm, ns[k]), "n=%u counter %u is not a permutation", ns[k], c * 977u);
    }
}

static void test_uniformity(void) {
  enum { n = 10, draws = 4000 };
  int hist[n][n] = {{0}};
  int before = 0;
  for (uint32_t c = 0; c < draws; c++) {
    blpo_perm pm = blpo_perm_make(blpo_trajectories_key(11, 0), c, n);
    for (uint32_t i = 0; i < n; i++)
      hist[i][blpo_perm_at(&pm, i)]++;
    before += blpo_perm_at(&pm, 0) < blpo_perm_at(&pm, 1);
  }
  /* chi-square with 9 degrees of freedom: P(> 33.7) < 1e-4 */
  double expect = (double)draws / n;
  for (int i = 0; i < n; i++) {
    double chi = 0;
    for (int j = 0; j < n; j++)
      chi += (hist[i][j] - expect) * (hist[i][j] - expect) / expect;
    CHECK(chi < 33.7, "element %d: chi-square %.1f over 9 dof", i, chi);
  }
  double f = (double)before / draws, se = sqrt(0.25 / draws);
  CHECK(fabs(f - 0.5) < 5 * se, "P(perm(0) < perm(1)) = %.3f", f);
}

static void test_streams_differ(void) {
  const uint32_t n = 1000;
  blpo_perm a = blpo_perm_make(blpo_samples_key(5, 0), 1, n);
  blpo_perm b = blpo_perm_make(blpo_samples_key(5, 0), 2, n);
  blpo_perm c = blpo_perm_make(blpo_samples_key(5, 1), 1, n);
  blpo_perm e = blpo_perm_make(blpo_trajectories_key(5, 0), 1, n);
  int same_b = 0, same_c = 0, same_e = 0;
  for (uint32_t i = 0; i < n; i++) {
    uint32_t x = blpo_perm_at(&a, i);
    same_b += x == blpo_perm_at(&b, i);
    same_c += x == blpo_perm_at(&c, i);
    same_e += x == blpo_perm_at(&e, i);
  }
  /* about one coincidence in a thousand positions is chance */
  CHECK(same_b < 10 && same_c < 10 && same_e < 10,
        "fixed points against another counter/agent/purpose: %d %d %d", same_b, same_c, same_e);
}

static void test_backend_draws(void) {
  blpo_backend *be = blpo_backend_cpu_create(2);
  blpo_dims d;
  memset(&d, 0, sizeof(d));
  d.P = 3, d.N = 40, d.T = 7, d.seed = 9;
  int m = 5;
  size_t TN = (size_t)d.T * d.N, PTN = (size_t)d.P * TN;
  int64_t *clock = be->alloc(be, sizeof(int64_t));
  int64_t it = 12;
  be->upload(be, clock, &it, sizeof(it));
  int32_t *idx = be->alloc(be, PTN * sizeof(int32_t));
  int32_t *last = be->alloc(be, (size_t)d.P * d.N * sizeof(int32_t));
  unsigned char *seen = calloc((PTN + (size_t)d.P * d.N), 1);

  be->shuffle_samples(be, &d, (blpo_counter){clock, 4, 2}, idx);
  int bad = 0;
  for (int p = 0; p < d.P; p++)
    for (size_t i = 0; i < TN; i++) {
      int32_t r = idx[(size_t)p * TN + i];
      /* row (t*P + q)*N + e must be this agent's (q == p) and new */
      if (r < 0 || (size_t)r >= PTN || (r / d.N) % d.P != p || seen[r]++)
        bad++;
    }
  CHECK(bad == 0, "shuffle_samples: %d rows wrong, repeated or another agent's", bad);
  /* the counter comes from the clock: iteration 12 of 4 epochs, epoch 2 */
  blpo_perm pm = blpo_perm_make(blpo_samples_key(d.seed, 1), 12 * 4 + 2, (uint32_t)TN);
  CHECK(idx[TN + 5] == blpo_sample_row(&pm, d.P, d.N, 1, 5), "shuffle_samples ignores the clock");
  /* the CPU op computes 16 lanes at a time: every element, vector body and
   * scalar tail (TN = 280 is not a multiple of 16), is the scalar formula */
  bad = 0;
  for (int p = 0; p < d.P; p++) {
    blpo_perm pp = blpo_perm_make(blpo_samples_key(d.seed, p), 12 * 4 + 2, (uint32_t)TN);
    for (size_t i = 0; i < TN; i++)
      bad += idx[(size_t)p * TN + i] != blpo_sample_row(&pp, d.P, d.N, p, (uint32_t)i);
  }
  CHECK(bad == 0, "shuffle_samples: %d rows differ from blpo_sample_row", bad);

  be->shuffle_trajectories(be, &d, m, (blpo_counter){clock, 4, 3}, idx, last);
  bad = 0;
  for (int p = 0; p < d.P; p++) {
    int envs[64] = {0};
    for (int mb = 0; mb < d.N / m; mb++)
      for (int j = 0; j < m; j++) {
        int32_t l = last[(size_t)p * d.N + mb * m + j];
        int env = l % d.N;
        if (l != (int32_t)(((int64_t)d.T * d.P + p) * d.N + env) || envs[env]++)
          bad++;
        for (int t = 0; t < d.T; t++)
          if (idx[(size_t)p * TN + (size_t)mb * d.T * m + (size_t)t * m + j] !=
              (int32_t)(((int64_t)t * d.P + p) * d.N + env))
            bad++;
      }
  }
  CHECK(bad == 0, "shuffle_trajectories: %d rows not whole trajectories of distinct envs", bad);

  const int k = 40;
  const size_t np = 4545;
  be->sketch_indices(be, &d, np, k, (blpo_counter){clock, 128, 17}, 1, idx);
  bad = 0;
  for (int p = 0; p < d.P; p++)
    for (int i = 0; i < k; i++) {
      int32_t v = idx[p * k + i];
      if (v < 0 || (size_t)v >= np)
        bad++;
      for (int j = 0; j < i; j++)
        bad += idx[p * k + j] == v;
    }
  CHECK(bad == 0, "sketch_indices: %d indices out of range or repeated", bad);
  int differ = 0;
  for (int i = 0; i < k; i++)
    differ += idx[i] != idx[k + i];
  CHECK(differ > k / 2, "sketch_indices: agents 0 and 1 share %d of %d draws", k - differ, k);
  /* three draws in one call: draw j is the single draw at the counter + j */
  {
    int32_t *three = malloc(sizeof(int32_t) * 3 * d.P * k),
            *one = malloc(sizeof(int32_t) * d.P * k);
    be->sketch_indices(be, &d, np, k, (blpo_counter){clock, 128, 17}, 3, three);
    int same = 1, fresh = 0;
    for (int j = 0; j < 3; j++) {
      be->sketch_indices(be, &d, np, k, (blpo_counter){clock, 128, 17 + j}, 1, one);
      same &= !memcmp(one, three + (size_t)j * d.P * k, sizeof(int32_t) * d.P * k);
      if (j > 0)
        fresh += memcmp(three, three + (size_t)j * d.P * k, sizeof(int32_t) * d.P * k) != 0;
    }
    CHECK(same, "sketch_indices: draw j of one call is not the single draw at counter + j");
    /* and each is the permutation of the documented counter, clock * 128 +
     * 17 + j: what the trainer's solves drew one at a time before */
    int pinned = 1;
    for (int j = 0; j < 3; j++)
      for (int p = 0; p < d.P; p++) {
        blpo_perm q =
            blpo_perm_make(blpo_sketch_key(d.seed, p), (uint32_t)(it * 128 + 17 + j), (uint32_t)np);
        for (int i = 0; i < k; i++)
          pinned &= three[((size_t)j * d.P + p) * k + i] == (int32_t)blpo_perm_at(&q, (uint32_t)i);
      }
    CHECK(pinned, "sketch_indices: a draw is not blpo_perm at clock * per_iter + offset + j");
    CHECK(fresh == 2, "sketch_indices: the draws of one call repeat");
    free(three);
    free(one);
  }

  free(seen);
  be->release(be, idx);
  be->release(be, last);
  be->release(be, clock);
  be->destroy(be);
}

int main(void) {
  test_bijections();
  test_uniformity();
  test_streams_differ();
  test_backend_draws();
  return test_summary("test_permute");
}
