/* The episode summary op of the CPU backend (the reference test_gpu_ops
 * holds the CUDA kernel to), the block program that kernel runs, and the
 * ring the summaries feed:
 *   - against a plain list of the ended episodes in (step, env) order, over
 *     shapes with one env, one step, N above and below a warp, and episode
 *     counts of 0, 1, 99, 100, 101, 200 and dense, five agents (the op
 *     threads over them): count, mean (the double sum in
 *     that order, so bit for bit), min, max, and the tail right-aligned with
 *     NaN before it; every field written over a poisoned record;
 *   - each agent reads only its own columns (agents get different counts);
 *   - the block program (episode_blocks.h), run thread after thread per
 *     phase in each order of emu_order.h over NaN-poisoned shared memory:
 *     the CPU op's record (the mean within 1e-6: its double sum is in the
 *     tree's order), and the same bits in every order;
 *   - blpo_episode_ring_add leaves a ring exactly as pushing every episode
 *     one by one does, across iterations, for the trainer's 100 slots and a
 *     ring smaller than the tail;
 *   - the trainer's metrics (episodes, return mean, min, max, the mean and
 *     count of the last 100, blpo_trainer_recent_returns) are, bit for bit,
 *     what its host scan of the returns gave before the summaries: the
 *     returns each iteration hands the op are recorded and scanned here as
 *     that code did, over iterations with more and fewer than 100 episodes
 *     and with none, for a population of three. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blocks_backend.h" /* the block program as test_blocks_update runs it */
#include "blpo/backend.h"
#include "blpo/config_load.h"
#include "blpo/episode_summary.h"
#include "blpo/trainer.h"
#include "test_util.h"

static blpo_backend *g_cpu, *g_blk_be; /* the CPU backend; it with the block programs */

static void *xcalloc(size_t n, size_t size) {
  void *p = calloc(n ? n : 1, size);
  if (!p) {
    fprintf(stderr, "out of memory\n");
    exit(2);
  }
  return p;
}

/* eret (T, P, N): agent p gets exactly counts[p] ended episodes at distinct
 * random (t, i), returns in [-50, 500) with fractions, NaN elsewhere. */
static float *make_eret(int T, int P, int N, const int *counts) {
  size_t PN = (size_t)P * N, TN = (size_t)T * N;
  float *e = xcalloc((size_t)T * PN, sizeof(float));
  for (size_t k = 0; k < (size_t)T * PN; k++)
    e[k] = NAN;
  int32_t *pos = xcalloc(TN, sizeof(int32_t));
  for (int p = 0; p < P; p++) {
    test_distinct_indices(counts[p], (int)TN, pos);
    for (int k = 0; k < counts[p]; k++) {
      int t = pos[k] / N, i = pos[k] % N;
      e[(size_t)t * PN + (size_t)p * N + i] = (float)(-50.0 + 550.0 * urand());
    }
  }
  free(pos);
  return e;
}

/* The summary by its definition: the list of ended episodes, then its stats. */
static void summary_by_list(int T, int P, int N, const float *eret, int p,
                            blpo_episode_summary *out) {
  size_t PN = (size_t)P * N;
  float *list = xcalloc((size_t)T * N, sizeof(float));
  int n = 0;
  for (int t = 0; t < T; t++)
    for (int i = 0; i < N; i++) {
      float r = eret[(size_t)t * PN + (size_t)p * N + i];
      if (!isnan(r))
        list[n++] = r;
    }
  double s = 0;
  float mn = INFINITY, mx = -INFINITY;
  for (int k = 0; k < n; k++) {
    s += list[k];
    mn = list[k] < mn ? list[k] : mn;
    mx = list[k] > mx ? list[k] : mx;
  }
  out->count = n;
  out->mean = n ? (float)(s / n) : NAN;
  out->min = n ? mn : NAN;
  out->max = n ? mx : NAN;
  int kept = n < BLPO_EPISODE_TAIL ? n : BLPO_EPISODE_TAIL;
  for (int j = 0; j < BLPO_EPISODE_TAIL; j++)
    out->tail[j] = j < BLPO_EPISODE_TAIL - kept ? NAN : list[n - BLPO_EPISODE_TAIL + j];
  free(list);
}

static int same_float(float a, float b) { return (isnan(a) && isnan(b)) || a == b; }

static void check_summary(const char *what, const blpo_episode_summary *got,
                          const blpo_episode_summary *want) {
  CHECK(got->count == want->count, "%s: count %d, want %d", what, got->count, want->count);
  CHECK(same_float(got->mean, want->mean), "%s: mean %.9g, want %.9g", what, got->mean, want->mean);
  CHECK(same_float(got->min, want->min), "%s: min %.9g, want %.9g", what, got->min, want->min);
  CHECK(same_float(got->max, want->max), "%s: max %.9g, want %.9g", what, got->max, want->max);
  int bad = -1;
  for (int j = 0; j < BLPO_EPISODE_TAIL && bad < 0; j++)
    if (!same_float(got->tail[j], want->tail[j]))
      bad = j;
  CHECK(bad < 0, "%s: tail[%d] %.9g, want %.9g", what, bad, bad < 0 ? 0.0 : got->tail[bad],
        bad < 0 ? 0.0 : want->tail[bad]);
}

enum { AGENTS = 5 }; /* enough for the op's threads over agents */

static void test_against_list(int T, int N, const int *counts) {
  enum { P = AGENTS };
  blpo_dims d;
  memset(&d, 0, sizeof(d));
  d.P = P;
  d.N = N;
  d.T = T;
  float *eret = make_eret(T, P, N, counts);
  blpo_episode_summary out[P], prog[P], want;
  memset(out, 0xA5, sizeof(out)); /* every byte must be written */
  g_cpu->episode_summary(g_cpu, &d, eret, out);
  for (int p = 0; p < P; p++) {
    char what[96];
    snprintf(what, sizeof what, "T=%d N=%d agent %d (%d episodes)", T, N, p, counts[p]);
    summary_by_list(T, P, N, eret, p, &want);
    check_summary(what, &out[p], &want);
  }
  /* the block program in the current order (main runs every order), as
   * blocks_backend.h runs it for the trainings of test_blocks_update */
  memset(prog, 0xA5, sizeof(prog));
  g_blk_be->episode_summary(g_blk_be, &d, eret, prog);
  for (int p = 0; p < P; p++) {
    char what[128];
    snprintf(what, sizeof what, "block program, %s order, T=%d N=%d agent %d (%d episodes)",
             emu_order_names[g_emu_order], T, N, p, counts[p]);
    blpo_episode_summary w = out[p];
    /* the mean within 1e-6, then the rest bit for bit */
    CHECK(isnan(w.mean) == isnan(prog[p].mean) &&
              (isnan(w.mean) || fabs((double)prog[p].mean - w.mean) <= 1e-6 * fabs(w.mean)),
          "%s: mean %.9g, want %.9g", what, prog[p].mean, w.mean);
    w.mean = prog[p].mean;
    check_summary(what, &prog[p], &w);
  }
  emu_same("block program", prog, sizeof(prog));
  free(eret);
}

static void test_shapes(void) {
  const struct {
    int T, N;
  } shapes[] = {{1, 1}, {1, 300}, {300, 1}, {7, 37}, {128, 4}, {32, 300}, {5, 1000}};
  for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
    int T = shapes[s].T, N = shapes[s].N, TN = T * N;
    int c_full[AGENTS] = {TN, TN / 2, 0, 1, TN - 1};
    int c_edge[AGENTS] = {99, 100, 101, 0, 200};
    int c_rand[AGENTS];
    for (int k = 0; k < AGENTS; k++) {
      c_full[k] = c_full[k] < 0 ? 0 : c_full[k];
      c_edge[k] = c_edge[k] < TN ? c_edge[k] : TN;
      c_rand[k] = (int)(urand() * (k % 2 ? TN / 50 + 1 : TN + 1));
      c_rand[k] = c_rand[k] < TN ? c_rand[k] : TN;
    }
    test_against_list(T, N, c_full);
    test_against_list(T, N, c_edge);
    test_against_list(T, N, c_rand);
  }
}

/* The ring as the trainer kept it before the summaries: one push per episode. */
static void ring_push_each(float *ring, int cap, int *head, int *n, const float *list, int count) {
  for (int k = 0; k < count; k++) {
    ring[*head] = list[k];
    *head = (*head + 1) % cap;
    if (*n < cap)
      (*n)++;
  }
}

static void test_ring(int cap) {
  enum { P = 1, T = 16, N = 40 };
  blpo_dims d;
  memset(&d, 0, sizeof(d));
  d.P = P;
  d.N = N;
  d.T = T;
  float a[BLPO_EPISODE_TAIL], b[BLPO_EPISODE_TAIL];
  for (int k = 0; k < cap; k++)
    a[k] = b[k] = 0.0f;
  int ha = 0, na = 0, hb = 0, nb = 0;
  const int per_iter[] = {0, 3, 57, 0, 1, 99, 100, 101, 250, 640, 7, 0, 123};
  for (size_t it = 0; it < sizeof(per_iter) / sizeof(per_iter[0]); it++) {
    int c[1] = {per_iter[it]};
    float *eret = make_eret(T, P, N, c);
    blpo_episode_summary s;
    g_cpu->episode_summary(g_cpu, &d, eret, &s);
    float list[T * N];
    int n = 0;
    for (int k = 0; k < T * N; k++)
      if (!isnan(eret[k]))
        list[n++] = eret[k];
    ring_push_each(a, cap, &ha, &na, list, n);
    blpo_episode_ring_add(b, cap, &hb, &nb, &s);
    CHECK(ha == hb && na == nb, "cap %d, iteration %zu: head %d n %d, want head %d n %d", cap, it,
          hb, nb, ha, na);
    CHECK(memcmp(a, b, sizeof(float) * (size_t)cap) == 0, "cap %d, iteration %zu: ring differs",
          cap, it);
    free(eret);
  }
}

/* ---- the trainer's metrics against the host scan they replace ---------- */

static void (*g_real_summary)(blpo_backend *, const blpo_dims *, const float *,
                              blpo_episode_summary *);
static float *g_seen_eret; /* the (T, P, N) returns of the last call */
static size_t g_seen_n;

static void spy_summary(blpo_backend *be, const blpo_dims *d, const float *eret,
                        blpo_episode_summary *out) {
  g_seen_n = (size_t)d->T * d->P * d->N;
  free(g_seen_eret);
  g_seen_eret = xcalloc(g_seen_n, sizeof(float));
  memcpy(g_seen_eret, eret, g_seen_n * sizeof(float));
  g_real_summary(be, d, eret, out);
}

/* The host scan of src/trainer.c's collect_metrics before the summaries. */
typedef struct {
  float ring[BLPO_RECENT_EPISODES];
  int head, n;
} old_ring;

static void old_scan(const float *eret, int T, int P, int N, int p, old_ring *rg,
                     blpo_iter_metrics *m) {
  size_t PN = (size_t)P * N;
  double s = 0;
  float mn = INFINITY, mx = -INFINITY;
  int cnt = 0;
  for (int t = 0; t < T; t++)
    for (int i = 0; i < N; i++) {
      float r = eret[(size_t)t * PN + (size_t)p * N + i];
      if (isnan(r))
        continue;
      s += r;
      mn = fminf(mn, r);
      mx = fmaxf(mx, r);
      cnt++;
      rg->ring[rg->head] = r;
      rg->head = (rg->head + 1) % BLPO_RECENT_EPISODES;
      if (rg->n < BLPO_RECENT_EPISODES)
        rg->n++;
    }
  m->episodes = cnt;
  m->ret_mean = cnt ? (float)(s / cnt) : NAN;
  m->ret_min = cnt ? mn : NAN;
  m->ret_max = cnt ? mx : NAN;
  double rs = 0;
  for (int k = 0; k < rg->n; k++)
    rs += rg->ring[k];
  m->recent_count = rg->n;
  m->recent_mean = rg->n ? (float)(rs / rg->n) : NAN;
}

static void test_trainer(const char *env, int num_envs, int num_steps, int iters) {
  blpo_config c;
  blpo_config_defaults(&c);
  snprintf(c.env_id, sizeof(c.env_id), "%s", env);
  c.algo = BLPO_ALGO_PPO;
  c.num_envs = num_envs;
  c.num_steps = num_steps;
  c.num_minibatches = 4;
  c.num_seeds = 3;
  c.total_steps = (int64_t)num_envs * num_steps * iters;
  c.seed = 5;
  blpo_backend *be = blpo_backend_cpu_create(2);
  g_real_summary = be->episode_summary;
  be->episode_summary = spy_summary;
  char err[256];
  blpo_trainer *tr = blpo_trainer_create(&c, be, err, sizeof(err));
  CHECK(tr != NULL, "%s: trainer create: %s", env, err);
  if (!tr) {
    be->destroy(be);
    return;
  }
  old_ring rings[3];
  memset(rings, 0, sizeof(rings));
  int more = 0, fewer = 0, none = 0;
  for (int it = 0; it < iters; it++) {
    blpo_iter_metrics m[3], w;
    g_seen_n = 0;
    blpo_trainer_iterate(tr, m);
    CHECK(g_seen_n == (size_t)num_steps * 3 * num_envs, "%s it %d: the op saw %zu returns", env, it,
          g_seen_n);
    if (g_seen_n != (size_t)num_steps * 3 * num_envs)
      break;
    for (int p = 0; p < 3; p++) {
      memset(&w, 0, sizeof(w));
      old_scan(g_seen_eret, num_steps, 3, num_envs, p, &rings[p], &w);
      more += w.episodes > BLPO_RECENT_EPISODES;
      fewer += w.episodes > 0 && w.episodes <= BLPO_RECENT_EPISODES;
      none += w.episodes == 0;
      CHECK(m[p].episodes == w.episodes && m[p].recent_count == w.recent_count,
            "%s it %d agent %d: episodes %d recent %d, want %d %d", env, it, p, m[p].episodes,
            m[p].recent_count, w.episodes, w.recent_count);
      CHECK(same_float(m[p].ret_mean, w.ret_mean) && same_float(m[p].ret_min, w.ret_min) &&
                same_float(m[p].ret_max, w.ret_max) && same_float(m[p].recent_mean, w.recent_mean),
            "%s it %d agent %d: mean %.9g min %.9g max %.9g recent %.9g, want %.9g %.9g %.9g %.9g",
            env, it, p, m[p].ret_mean, m[p].ret_min, m[p].ret_max, m[p].recent_mean, w.ret_mean,
            w.ret_min, w.ret_max, w.recent_mean);
      float got[BLPO_RECENT_EPISODES];
      int n = blpo_trainer_recent_returns(tr, p, got);
      int start = rings[p].n < BLPO_RECENT_EPISODES ? 0 : rings[p].head, same = n == rings[p].n;
      for (int k = 0; k < n && same; k++)
        same = got[k] == rings[p].ring[(start + k) % BLPO_RECENT_EPISODES];
      CHECK(same, "%s it %d agent %d: recent returns differ from the per-episode ring", env, it, p);
    }
  }
  printf(
      "trainer %s: %d agent-iterations with more than %d episodes, %d with fewer, %d with none\n",
      env, more, BLPO_RECENT_EPISODES, fewer, none);
  blpo_trainer_destroy(tr);
  be->destroy(be);
  free(g_seen_eret);
  g_seen_eret = NULL;
}

int main(void) {
  g_cpu = blpo_backend_cpu_create(2);
  g_blk_be = blocks_backend_create();
  if (!g_cpu || !g_blk_be) {
    fprintf(stderr, "backend creation failed\n");
    return 1;
  }
  for (int order = 0; order < EMU_ORDERS; order++) {
    emu_begin_order(order, 0x5eedull + 1); /* the same inputs in every order */
    test_shapes();
  }
  test_ring(BLPO_EPISODE_TAIL);
  test_ring(7);
  test_trainer("CartPole-v1", 64, 64, 4); /* about 200 episodes per iteration at first */
  test_trainer("CartPole-v1", 4, 16, 6);  /* a few, and some iterations with none */
  test_trainer("Pendulum-v1", 4, 64, 5);  /* 200-step episodes: none, then 4 at once */
  g_cpu->destroy(g_cpu);
  g_blk_be->destroy(g_blk_be);
  emu_seen_free();
  return test_summary("test_episode_summary");
}
