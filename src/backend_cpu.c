/* The CPU reference backend: src/cpu_gemm.c for the layer GEMMs, OpenMP over envs for
 * the per-element work. Agents are processed one after another and every
 * reduction runs in a fixed order, so agent p's numbers never depend on the
 * population size or the thread count. */
#define _POSIX_C_SOURCE 200809L /* clock_gettime under -std=c11 */
#include <math.h>
#include <omp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "blpo/backend.h"
#include "blpo/gae.h"
#include "blpo/heads.h"
#include "blpo/permute.h"
#include "blpo/policy.h"
#include "blpo/ppo_loss.h"
#include "blpo/rng.h"
#include "cpu_backend_internal.h"
#include "cpu_gemm.h"
#include "cpu_tanh.h"
#include "envs.h"

static void *cpu_alloc(blpo_backend *be, size_t bytes) {
  (void)be;
  return calloc(1, bytes ? bytes : 1);
}
static void cpu_release(blpo_backend *be, void *p) {
  (void)be;
  free(p);
}
static void cpu_copy(blpo_backend *be, void *dst, const void *src, size_t bytes) {
  (void)be;
  if (bytes)
    memmove(dst, src, bytes);
}
static void cpu_fill(blpo_backend *be, float *dst, float value, size_t count) {
  (void)be;
  for (size_t i = 0; i < count; i++)
    dst[i] = value;
}

/* ---- envs ------------------------------------------------------------- */

static void cpu_env_reset(blpo_backend *be, const blpo_dims *d, blpo_env_state *states,
                          float *obs) {
  (void)be;
  for (int p = 0; p < d->P; p++) {
#pragma omp parallel for schedule(static) if (d->N >= 512)
    for (int i = 0; i < d->N; i++) {
      size_t e = (size_t)p * d->N + i;
      blpo_key key = blpo_env_reset_key(d->seed, p, i);
      memset(&states[e], 0, sizeof(states[e]));
      blpo_env_reset(d->env_id, &states[e], key);
      blpo_env_obs(d->env_id, &states[e], obs + e * d->obs_dim);
    }
  }
}

static void cpu_env_step(blpo_backend *be, const blpo_dims *d, blpo_env_state *states,
                         const float *actions, float *obs, float *reward, float *done,
                         float *ep_ret, float *final_obs, float *trunc) {
  (void)be;
  for (int p = 0; p < d->P; p++) {
#pragma omp parallel for schedule(static) if (d->N >= 512)
    for (int i = 0; i < d->N; i++) {
      size_t e = (size_t)p * d->N + i;
      blpo_key key = blpo_env_reset_key(d->seed, p, i);
      float r, eret;
      int term, tr, elen;
      blpo_env_step(d->env_id, &states[e], actions + e * d->act_dim, key, obs + e * d->obs_dim, &r,
                    &term, &tr, &eret, &elen, final_obs ? final_obs + e * d->obs_dim : NULL);
      reward[e] = r;
      done[e] = (term || tr) ? 1.0f : 0.0f;
      ep_ret[e] = eret;
      if (trunc)
        trunc[e] = tr ? 1.0f : 0.0f;
    }
  }
}

/* Chan et al.'s parallel update of (mean, var, count) with a batch, in
 * double for stability; the batch moments are summed in a fixed order. */
static void running_moments_update(float *mean, float *var, float *count, int dim, const float *x,
                                   int rows, int stride) {
  for (int j = 0; j < dim; j++) {
    double s = 0, s2 = 0;
    for (int i = 0; i < rows; i++)
      s += x[(size_t)i * stride + j];
    double bm = s / rows;
    for (int i = 0; i < rows; i++) {
      double e = x[(size_t)i * stride + j] - bm;
      s2 += e * e;
    }
    double bv = s2 / rows, c = *count, tot = c + rows;
    double delta = bm - mean[j];
    double m2 = (double)var[j] * c + bv * rows + delta * delta * c * rows / tot;
    mean[j] = (float)(mean[j] + delta * rows / tot);
    var[j] = (float)(m2 / tot);
  }
  *count += (float)rows;
}

static void cpu_obs_norm(blpo_backend *be, const blpo_dims *d, float *stats, float *obs,
                         int update) {
  (void)be;
  int O = d->obs_dim;
  for (int p = 0; p < d->P; p++) {
    float *st = stats + (size_t)p * (2 * O + 1);
    float *mean = st, *var = st + O, *count = st + 2 * O;
    float *x = obs + (size_t)p * d->N * O;
    if (update)
      running_moments_update(mean, var, count, O, x, d->N, O);
#pragma omp parallel for schedule(static) if (d->N >= 512)
    for (int i = 0; i < d->N; i++)
      for (int j = 0; j < O; j++)
        x[(size_t)i * O + j] = (x[(size_t)i * O + j] - mean[j]) / sqrtf(var[j] + 1e-8f);
  }
}

static void cpu_reward_norm(blpo_backend *be, const blpo_dims *d, float *stats, float *ret_acc,
                            float *reward, const float *done, float gamma) {
  (void)be;
  for (int p = 0; p < d->P; p++) {
    size_t o = (size_t)p * d->N;
    for (int i = 0; i < d->N; i++)
      ret_acc[o + i] = ret_acc[o + i] * gamma * (1.0f - done[o + i]) + reward[o + i];
    float *st = stats + (size_t)p * 3;
    running_moments_update(&st[0], &st[1], &st[2], 1, ret_acc + o, d->N, 1);
    float inv = 1.0f / sqrtf(st[1] + 1e-8f);
    for (int i = 0; i < d->N; i++)
      reward[o + i] *= inv;
  }
}

/* ---- networks ---------------------------------------------------------- */

/* Row chunks of the MLP passes. A minibatch's rows are cut into a number of
 * chunks that depends on n alone (never on the thread count); threads take
 * whole chunks, each running its GEMMs single-threaded, and the weight
 * gradient is the sum of the chunks' partial sums in chunk order. One
 * parallel region per pass instead of one per layer and GEMM, no serial
 * column sums, and results that depend on the seed only. Below 256 rows there
 * is one chunk: the plain whole-batch pass. */
#define BLPO_CPU_CHUNK_ROWS 128
#define BLPO_CPU_MAX_CHUNKS 16

static int row_chunks(int n) {
  int c = n / BLPO_CPU_CHUNK_ROWS;
  return c < 1 ? 1 : (c > BLPO_CPU_MAX_CHUNKS ? BLPO_CPU_MAX_CHUNKS : c);
}

static void chunk_rows(int n, int chunks, int c, int *r0, int *r1) {
  *r0 = (int)((int64_t)n * c / chunks);
  *r1 = (int)((int64_t)n * (c + 1) / chunks);
}

/* Row chunks shared out with affinity: thread t owns chunks [t C/T, (t+1) C/T)
 * and takes them from the front; a thread whose own are done takes another's
 * from the back. With both vCPUs at the same speed every pass gives thread t
 * the same chunks, so the activations the forward pass writes are read by the
 * loss and the backward pass on the core that wrote them (schedule(dynamic)
 * moved about half of them between cores: static was 8% faster end to end
 * here on 2026-12-02); with one vCPU slowed (steal time on a shared VM, which
 * made plain static scheduling lose on 2026-12-01) the other takes over its
 * remaining chunks. Which thread runs a chunk never changes the results. */
typedef struct {
  _Atomic uint64_t range[BLPO_CPU_MAX_CHUNKS]; /* owner u's chunks [lo, hi): lo << 32 | hi */
  int owners;
} chunk_queue;

/* Called before the parallel region; threads: the region's team size. */
static void chunk_queue_init(chunk_queue *q, int chunks, int threads) {
  int owners = threads < chunks ? threads : chunks;
  q->owners = owners < 1 ? 1 : owners;
  for (int u = 0; u < q->owners; u++) {
    uint64_t lo = (uint64_t)chunks * u / q->owners, hi = (uint64_t)chunks * (u + 1) / q->owners;
    atomic_init(&q->range[u], lo << 32 | hi);
  }
}

/* The next chunk for thread t: its own from the front, then another owner's
 * from the back; -1 when every chunk has been taken. A thread that owns none
 * (more threads than chunks) takes none either, so that no chunk changes
 * core between passes; when the team is smaller than assumed, every thread
 * is an owner and takes the absent owners' chunks. */
static int chunk_queue_next(chunk_queue *q, int t) {
  if (t >= q->owners)
    return -1;
  for (int k = 0; k < q->owners; k++) {
    int u = (t + k) % q->owners, own = k == 0;
    uint64_t r = atomic_load(&q->range[u]);
    for (;;) {
      uint32_t lo = (uint32_t)(r >> 32), hi = (uint32_t)r;
      if (lo >= hi)
        break;
      uint64_t next = own ? (uint64_t)(lo + 1) << 32 | hi : (uint64_t)lo << 32 | (hi - 1);
      if (atomic_compare_exchange_weak(&q->range[u], &r, next))
        return (int)(own ? lo : hi - 1);
    }
  }
  return -1;
}

/* The team size of a region over `chunks` chunks (one thread for one chunk). */
static int chunk_team(int chunks) { return chunks > 1 ? omp_get_max_threads() : 1; }

/* Rows [r0, r1) of one agent's forward pass: w (Np); x (n, d_0); a (n, A);
 * wt (Nm): layer l's W^T (d_l x d_{l+1}) at w_off[l] for the layers at least
 * one vector wide (the others read W as it is, in the narrow kernel). */
static void forward_rows(const blpo_mlp *m, const float *w, const float *wt, const float *x, int n,
                         float *a, int r0, int r1) {
  int nr = r1 - r0;
  const float *in = x + (size_t)r0 * m->dims[0];
  for (int l = 0; l < m->num_layers; l++) {
    int din = m->dims[l], dout = m->dims[l + 1];
    float *out = a + blpo_mlp_act_offset(m, l + 1, n) + (size_t)r0 * dout; // (nr, dout)
    const float *b = w + m->b_off[l];
    /* z = b + in W^T (each sum starts from the bias) */
    if (dout >= 16)
      blpo_cpu_sgemm_bias(BLPO_GEMM_N, BLPO_GEMM_N, nr, dout, din, in, din, wt + m->w_off[l], dout,
                          b, out, dout);
    else
      blpo_cpu_sgemm_bias(BLPO_GEMM_N, BLPO_GEMM_T, nr, dout, din, in, din, w + m->w_off[l], din, b,
                          out, dout);
    if (l < m->num_layers - 1) {
      size_t cnt = (size_t)nr * dout;
      if (m->activation == BLPO_ACT_TANH) {
        blpo_cpu_tanh_inplace(out, cnt);
      } else {
        for (size_t i = 0; i < cnt; i++)
          out[i] = out[i] > 0.0f ? out[i] : 0.0f;
      }
    }
    in = out;
  }
}

/* Grow-only host buffer of at least `floats` floats in *buf (size in *cap). */
static float *grow_buffer(float **buf, size_t *cap, size_t floats, const char *what) {
  if (floats > *cap) {
    free(*buf);
    *buf = malloc(sizeof(float) * floats);
    *cap = *buf ? floats : 0;
    if (!*buf) {
      fprintf(stderr, "blpo-gpu: out of host memory for %zu MiB of %s\n",
              sizeof(float) * floats >> 20, what);
      exit(1);
    }
  }
  return *buf;
}

/* Rows [i0, i1) of layer l's W^T (din x dout) from W (dout x din). */
static void transpose_rows(const blpo_mlp *m, const float *w, float *wt, int l, int i0, int i1) {
  int din = m->dims[l], dout = m->dims[l + 1];
  const float *wl = w + m->w_off[l];
  float *tl = wt + m->w_off[l];
  for (int i = i0; i < i1; i++)
    for (int o = 0; o < dout; o++)
      tl[(size_t)i * dout + o] = wl[(size_t)o * din + i];
}

/* wt (Nm) = W^T of every layer at least one vector wide, rows shared out
 * between the threads of the enclosing parallel region (no barrier). */
static void transpose_weights(const blpo_mlp *m, const float *w, float *wt) {
  for (int l = 0; l < m->num_layers; l++) {
    if (m->dims[l + 1] < 16)
      continue;
#pragma omp for schedule(static) nowait
    for (int i = 0; i < m->dims[l]; i++)
      transpose_rows(m, w, wt, l, i, i + 1);
  }
}

/* The same on the calling thread alone. */
static void transpose_weights_serial(const blpo_mlp *m, const float *w, float *wt) {
  for (int l = 0; l < m->num_layers; l++)
    if (m->dims[l + 1] >= 16)
      transpose_rows(m, w, wt, l, 0, m->dims[l]);
}

static void cpu_mlp_forward(blpo_backend *be, const blpo_mlp *m, int P, const float *params,
                            const float *x, int n, float *acts) {
  blpo_cpu_impl *impl = be->impl;
  int chunks = row_chunks(n);
  size_t nm = m->num_mlp_params;
  if (blpo_cpu_agents_parallel(P, chunks > 1)) {
    /* the agents side by side, each with its own W^T (rows are independent:
     * one pass over all n rows computes each the same as a chunk's) */
    float *wt = grow_buffer(&impl->wt, &impl->wt_floats, (size_t)P * nm, "transposed weights");
#pragma omp parallel for schedule(dynamic)
    for (int p = 0; p < P; p++) {
      const float *w = params + (size_t)p * m->num_params;
      transpose_weights_serial(m, w, wt + (size_t)p * nm);
      forward_rows(m, w, wt + (size_t)p * nm, x + (size_t)p * n * m->dims[0], n,
                   acts + (size_t)p * n * m->act_floats_per_row, 0, n);
    }
    return;
  }
  float *wt = grow_buffer(&impl->wt, &impl->wt_floats, nm, "transposed weights");
  for (int p = 0; p < P; p++) {
    const float *w = params + (size_t)p * m->num_params;
    const float *in = x + (size_t)p * n * m->dims[0];
    float *a = acts + (size_t)p * n * m->act_floats_per_row;
    /* W^T once per pass (so that no row chunk transposes W again), its rows
     * shared between the threads of the pass's one parallel region */
    chunk_queue q;
    chunk_queue_init(&q, chunks, chunk_team(chunks));
#pragma omp parallel if (chunks > 1)
    {
      transpose_weights(m, w, wt);
#pragma omp barrier
      for (int c, t = omp_get_thread_num(); (c = chunk_queue_next(&q, t)) >= 0;) {
        int r0, r1;
        chunk_rows(n, chunks, c, &r0, &r1);
        forward_rows(m, w, wt, in, n, a, r0, r1);
      }
    }
  }
}

static void cpu_mlp_forward_many(blpo_backend *be, int P, int count, const blpo_mlp_pass *f) {
  for (int k = 0; k < count; k++)
    cpu_mlp_forward(be, f[k].m, P, f[k].params, f[k].x, f[k].n, f[k].acts);
}

/* g *= phi'(z) given h = phi(z). */
BLPO_CPU_VECTOR_CLONES
static void mul_act_deriv(int activation, float *restrict g, const float *restrict h, size_t cnt) {
  if (activation == BLPO_ACT_TANH) {
    for (size_t i = 0; i < cnt; i++)
      g[i] *= 1.0f - h[i] * h[i];
  } else {
    for (size_t i = 0; i < cnt; i++)
      g[i] = h[i] > 0.0f ? g[i] : 0.0f;
  }
}

/* Column sums of a (n x dout) matrix into out, in a fixed order. */
BLPO_CPU_VECTOR_CLONES
static void col_sums(const float *restrict g, int n, int dout, float *restrict out) {
  for (int j = 0; j < dout; j++)
    out[j] = 0.0f;
  for (int r = 0; r < n; r++)
    for (int j = 0; j < dout; j++)
      out[j] += g[(size_t)r * dout + j];
}

/* Rows [r0, r1) of one agent's backward pass into gw (Nm): w (Np); x (n, d_0);
 * a (n, A); dy (n, d_L); s0, s1 (n, mw) scratch, mw >= max_width (rows r0..r1
 * used). */
static void backward_rows(const blpo_mlp *m, const float *w, const float *x, int n, const float *a,
                          const float *dy, float *gw, float *s0, float *s1, size_t mw, int r0,
                          int r1) {
  int nr = r1 - r0;
  float *c0 = s0 + (size_t)r0 * mw, *c1 = s1 + (size_t)r0 * mw;
  const float *g = dy + (size_t)r0 * m->dims[m->num_layers]; // (nr, d_L)
  for (int l = m->num_layers - 1; l >= 0; l--) {
    int din = m->dims[l], dout = m->dims[l + 1];
    const float *hin = (l == 0 ? x : a + blpo_mlp_act_offset(m, l, n)) + (size_t)r0 * din;
    /* dW = g^T h_in, db = colsum(g) */
    blpo_cpu_sgemm(BLPO_GEMM_T, BLPO_GEMM_N, dout, din, nr, g, dout, hin, din, 0, gw + m->w_off[l],
                   din);
    col_sums(g, nr, dout, gw + m->b_off[l]);
    if (l > 0) {
      float *gprev = (g == c0) ? c1 : c0; // (nr, din)
      blpo_cpu_sgemm(BLPO_GEMM_N, BLPO_GEMM_N, nr, din, dout, g, dout, w + m->w_off[l], din, 0,
                     gprev, din);
      mul_act_deriv(m->activation, gprev, hin, (size_t)nr * din);
      g = gprev;
    }
  }
}

/* Elementwise loops (and the minibatch shuffle) are cut into spans of this
 * many elements for the threads. */
#define SPAN 2048

/* gw[j] = parts[0][j] + parts[1][j] + ... in chunk order, j in [j0, j1);
 * chunk c's part at parts + c * stride. */
BLPO_CPU_VECTOR_CLONES
static void sum_chunk_parts(const float *restrict parts, int chunks, size_t stride, size_t j0,
                            size_t j1, float *restrict gw) {
  /* chunk by chunk over contiguous j (vectorised), the same order per j */
  for (size_t j = j0; j < j1; j++)
    gw[j] = parts[j];
  for (int c = 1; c < chunks; c++) {
    const float *pc = parts + (size_t)c * stride;
    for (size_t j = j0; j < j1; j++)
      gw[j] += pc[j];
  }
}

/* Grow-only buffer for the chunks' partial weight gradients. */
static float *grad_parts(blpo_backend *be, size_t floats) {
  blpo_cpu_impl *impl = be->impl;
  return grow_buffer(&impl->grad_parts, &impl->grad_parts_floats, floats, "gradient partial sums");
}

static void cpu_mlp_backward(blpo_backend *be, const blpo_mlp *m, int P, const float *params,
                             const float *x, int n, const float *acts, const float *dy, float *grad,
                             float *scratch) {
  int chunks = row_chunks(n);
  size_t nm = m->num_mlp_params;
  if (blpo_cpu_agents_parallel(P, chunks > 1)) {
    /* each agent whole on one thread: its chunks one after another, summed
     * in chunk order as when they are shared out */
    float *parts = chunks > 1 ? grad_parts(be, (size_t)P * chunks * nm) : NULL; // (P, chunks, Nm)
#pragma omp parallel for schedule(dynamic)
    for (int p = 0; p < P; p++) {
      const float *w = params + (size_t)p * m->num_params;
      const float *in0 = x + (size_t)p * n * m->dims[0];
      const float *a = acts + (size_t)p * n * m->act_floats_per_row;
      const float *g = dy + (size_t)p * n * m->dims[m->num_layers];
      float *gw = grad + (size_t)p * m->num_params;
      float *s0 = scratch + (size_t)p * 2 * n * m->max_width, *s1 = s0 + (size_t)n * m->max_width;
      if (chunks == 1) {
        backward_rows(m, w, in0, n, a, g, gw, s0, s1, m->max_width, 0, n);
        continue;
      }
      float *pp = parts + (size_t)p * chunks * nm;
      for (int c = 0; c < chunks; c++) {
        int r0, r1;
        chunk_rows(n, chunks, c, &r0, &r1);
        backward_rows(m, w, in0, n, a, g, pp + (size_t)c * nm, s0, s1, m->max_width, r0, r1);
      }
      sum_chunk_parts(pp, chunks, nm, 0, nm, gw);
    }
    return;
  }
  float *parts = chunks > 1 ? grad_parts(be, (size_t)chunks * nm) : NULL; // (chunks, Nm)
  for (int p = 0; p < P; p++) {
    const float *w = params + (size_t)p * m->num_params;
    const float *in0 = x + (size_t)p * n * m->dims[0];
    const float *a = acts + (size_t)p * n * m->act_floats_per_row;
    const float *g = dy + (size_t)p * n * m->dims[m->num_layers];
    float *gw = grad + (size_t)p * m->num_params;
    float *s0 = scratch + (size_t)p * 2 * n * m->max_width, *s1 = s0 + (size_t)n * m->max_width;
    if (chunks == 1) {
      backward_rows(m, w, in0, n, a, g, gw, s0, s1, m->max_width, 0, n);
      continue;
    }
    /* one parallel region: the chunks, then their sum in chunk order, one
     * equal span of the parameters per thread */
    chunk_queue q;
    int team = chunk_team(chunks);
    chunk_queue_init(&q, chunks, team);
    size_t per = blpo_cpu_even_piece(nm, team, 64);
#pragma omp parallel num_threads(team)
    {
      for (int c, t = omp_get_thread_num(); (c = chunk_queue_next(&q, t)) >= 0;) {
        int r0, r1;
        chunk_rows(n, chunks, c, &r0, &r1);
        backward_rows(m, w, in0, n, a, g, parts + (size_t)c * nm, s0, s1, m->max_width, r0, r1);
      }
#pragma omp barrier
#pragma omp for schedule(static)
      for (int b = 0; b < team; b++) {
        size_t j0 = (size_t)b * per, j1 = j0 + per < nm ? j0 + per : nm;
        if (j0 < j1)
          sum_chunk_parts(parts, chunks, nm, j0, j1, gw);
      }
    }
  }
}

static void cpu_mlp_backward_many(blpo_backend *be, int P, int count, const blpo_mlp_grad_pass *b) {
  for (int k = 0; k < count; k++)
    cpu_mlp_backward(be, b[k].m, P, b[k].params, b[k].x, b[k].n, b[k].acts, b[k].dy, b[k].grad,
                     b[k].scratch);
  for (int k = 1; k < count; k++)
    if (b[k].add_to_prev) {
      if (b[k].m->num_params != b[k - 1].m->num_params) { /* a caller's error */
        fprintf(stderr,
                "blpo-gpu: mlp_backward_many: add_to_prev between networks of %zu and "
                "%zu parameters\n",
                b[k].m->num_params, b[k - 1].m->num_params);
        abort();
      }
      be->axpy(be, P, b[k].m->num_params, 1.0f, b[k].grad, b[k - 1].grad);
    }
}

/* ---- policy ------------------------------------------------------------ */

static void cpu_policy_sample(blpo_backend *be, const blpo_dims *d, const blpo_mlp *actor,
                              const float *actor_params, const float *head, size_t head_stride,
                              blpo_counter ctr, float *actions, float *logp) {
  (void)be;
  int Y = d->head_dim, A = d->act_dim;
  uint64_t counter = (uint64_t)blpo_counter_at(ctr, blpo_clock_read(ctr.clock));
  for (int p = 0; p < d->P; p++) {
    const float *log_std = actor_params + (size_t)p * actor->num_params + actor->num_mlp_params;
#pragma omp parallel for schedule(static) if (d->N >= 512)
    for (int i = 0; i < d->N; i++) {
      size_t e = (size_t)p * d->N + i;
      logp[e] =
          blpo_policy_draw(d->discrete, d->num_actions, A, head + p * head_stride + (size_t)i * Y,
                           log_std, blpo_action_key(d->seed, p, i), counter, actions + e * A);
    }
  }
}

static void cpu_policy_mode(blpo_backend *be, const blpo_dims *d, const float *head,
                            size_t head_stride, float *actions) {
  (void)be;
  int Y = d->head_dim, A = d->act_dim;
  for (int p = 0; p < d->P; p++)
    for (int i = 0; i < d->N; i++) {
      const float *z = head + p * head_stride + (size_t)i * Y;
      float *act = actions + ((size_t)p * d->N + i) * A;
      if (d->discrete) {
        int best = 0;
        for (int k = 1; k < d->num_actions; k++)
          if (z[k] > z[best])
            best = k;
        act[0] = (float)best;
      } else {
        for (int k = 0; k < A; k++)
          act[k] = z[k];
      }
    }
}

/* ---- targets ----------------------------------------------------------- */

static void cpu_gae(blpo_backend *be, const blpo_dims *d, const float *reward, const float *done,
                    const float *value, const float *last_value, float gamma, float lambda,
                    float *adv, float *ret) {
  (void)be;
  int PN = d->P * d->N; /* (T,P,N): step t of env (p,i) at t*P*N + p*N + i */
#pragma omp parallel for schedule(static) if (PN >= 512)
  for (int e = 0; e < PN; e++)
    blpo_gae_column(reward + e, done + e, value + e, last_value[e], d->T, PN, gamma, lambda,
                    adv + e, ret + e);
}

/* The reference for every backend's op: agent p's returns in (step, env)
 * order, summed in double one after another, then the tail from the end. */
static void cpu_episode_summary(blpo_backend *be, const blpo_dims *d, const float *eret,
                                blpo_episode_summary *out) {
  (void)be;
  const int T = d->T, N = d->N;
  const size_t PN = (size_t)d->P * N;
#pragma omp parallel for schedule(static) if (d->P >= 4)
  for (int p = 0; p < d->P; p++) {
    const float *ep = eret + (size_t)p * N; /* step t of env i at t * PN + i */
    blpo_episode_summary *o = &out[p];
    double s = 0;
    float mn = INFINITY, mx = -INFINITY;
    int32_t cnt = 0;
    for (int t = 0; t < T; t++)
      for (int i = 0; i < N; i++) {
        float r = ep[(size_t)t * PN + i];
        if (!blpo_episode_ended(r))
          continue;
        s += r;
        mn = fminf(mn, r);
        mx = fmaxf(mx, r);
        cnt++;
      }
    o->count = cnt;
    o->mean = cnt ? (float)(s / cnt) : NAN;
    o->min = cnt ? mn : NAN;
    o->max = cnt ? mx : NAN;
    int kept = blpo_episode_tail_kept(cnt), slot = BLPO_EPISODE_TAIL;
    for (int t = T - 1; t >= 0 && slot > BLPO_EPISODE_TAIL - kept; t--)
      for (int i = N - 1; i >= 0 && slot > BLPO_EPISODE_TAIL - kept; i--) {
        float r = ep[(size_t)t * PN + i];
        if (blpo_episode_ended(r))
          o->tail[--slot] = r;
      }
    while (slot > 0)
      o->tail[--slot] = NAN;
  }
}

static void cpu_gather_rows(blpo_backend *be, int P, const int32_t *idx, size_t idx_stride, int n,
                            const float *src, int width, float *dst) {
  (void)be;
  /* plain loops, not a memcpy call per row: rows are 1 to 8 floats wide */
  for (int p = 0; p < P; p++) {
    const int32_t *ix = idx + (size_t)p * idx_stride;
    float *o = dst + (size_t)p * n * width;
    if (width == 1) {
#pragma omp parallel for schedule(static) if (n >= 1024)
      for (int i = 0; i < n; i++)
        o[i] = src[ix[i]];
    } else {
#pragma omp parallel for schedule(static) if (n >= 512)
      for (int i = 0; i < n; i++) {
        const float *r = src + (size_t)ix[i] * width;
        for (int c = 0; c < width; c++)
          o[(size_t)i * width + c] = r[c];
      }
    }
  }
}

static void cpu_gather_rows_many(blpo_backend *be, int P, int count, const blpo_gather *g) {
  for (int k = 0; k < count; k++)
    cpu_gather_rows(be, P, g[k].idx, g[k].idx_stride, g[k].n, g[k].src, g[k].width, g[k].dst);
}

typedef uint32_t perm_v16 __attribute__((vector_size(64)));

/* blpo_feistel (include/blpo/permute.h) on 16 lanes at once, the same
 * arithmetic lane by lane (the round function is blpo_mix32 spelled out for
 * vectors): one element's six rounds are a chain of dependent multiplies,
 * so the scalar loop waits on latency; 16 independent chains do not. */
static inline __attribute__((always_inline)) void feistel16(const blpo_perm *pm, perm_v16 *x) {
  uint32_t h = pm->half_bits, m = pm->mask;
  perm_v16 left = *x >> h, right = *x & m;
  for (int j = 0; j < BLPO_FEISTEL_ROUNDS; j++) {
    perm_v16 f = right ^ pm->round_key[j];
    f ^= f >> 16;
    f *= 0x7feb352dU;
    f ^= f >> 15;
    f *= 0x846ca68bU;
    f ^= f >> 16;
    perm_v16 t = left ^ (f & m);
    left = right;
    right = t;
  }
  *x = (left << h) | right;
}

/* o[i - i0] = blpo_sample_row(pm, P, N, p, i) for i in [i0, i1): 64 at a
 * time as four independent 16-lane chains (one chain alone waits on its
 * multiplies' latency), every lane walked until it lands in [0, n), then the
 * scalar tail. */
BLPO_CPU_VECTOR_CLONES
static void sample_rows_span(const blpo_perm *pm, int P, int N, int p, uint32_t i0, uint32_t i1,
                             int32_t *o) {
  enum { V = 4 };
  uint32_t i = i0;
  for (; i1 - i >= 16 * V; i += 16 * V) {
    perm_v16 x[V];
    for (int v = 0; v < V; v++) {
      for (int l = 0; l < 16; l++)
        x[v][l] = i + (uint32_t)(16 * v + l);
      feistel16(pm, &x[v]);
    }
    for (;;) {
      perm_v16 out[V];
      uint32_t any = 0;
      for (int v = 0; v < V; v++) {
        out[v] = (perm_v16)(x[v] >= pm->n);
        for (int l = 0; l < 16; l++)
          any |= out[v][l];
      }
      if (!any)
        break;
      for (int v = 0; v < V; v++) {
        perm_v16 y = x[v];
        feistel16(pm, &y);
        x[v] = (out[v] & y) | (~out[v] & x[v]);
      }
    }
    for (int v = 0; v < V; v++)
      for (int l = 0; l < 16; l++) {
        uint32_t t = x[v][l] / (uint32_t)N, e = x[v][l] % (uint32_t)N;
        o[i - i0 + (uint32_t)(16 * v + l)] = (int32_t)(((int64_t)t * P + p) * N + e);
      }
  }
  for (; i < i1; i++)
    o[i - i0] = blpo_sample_row(pm, P, N, p, i);
}

static void cpu_shuffle_samples(blpo_backend *be, const blpo_dims *d, blpo_counter counter,
                                int32_t *idx) {
  (void)be;
  uint32_t ctr = (uint32_t)blpo_counter_at(counter, blpo_clock_read(counter.clock));
  int64_t total = (int64_t)d->T * d->N;
  int64_t spans = (total + SPAN - 1) / SPAN;
  for (int p = 0; p < d->P; p++) {
    blpo_perm pm = blpo_perm_make(blpo_samples_key(d->seed, p), ctr, (uint32_t)total);
    int32_t *o = idx + (size_t)p * total;
#pragma omp parallel for schedule(static) if (spans > 1)
    for (int64_t b = 0; b < spans; b++) {
      int64_t i0 = b * SPAN, i1 = i0 + SPAN < total ? i0 + SPAN : total;
      sample_rows_span(&pm, d->P, d->N, p, (uint32_t)i0, (uint32_t)i1, o + i0);
    }
  }
}

static void cpu_shuffle_trajectories(blpo_backend *be, const blpo_dims *d, int m,
                                     blpo_counter counter, int32_t *rows, int32_t *last) {
  (void)be;
  uint32_t ctr = (uint32_t)blpo_counter_at(counter, blpo_clock_read(counter.clock));
  int P = d->P, N = d->N, T = d->T;
  size_t TN = (size_t)T * N;
  for (int p = 0; p < P; p++) {
    blpo_perm pm = blpo_perm_make(blpo_trajectories_key(d->seed, p), ctr, (uint32_t)N);
#pragma omp parallel for schedule(static) if (N >= 1024)
    for (int slot = 0; slot < N; slot++) {
      int mb = slot / m, j = slot % m;
      int env = (int)blpo_perm_at(&pm, (uint32_t)slot);
      for (int t = 0; t < T; t++)
        rows[(size_t)p * TN + (size_t)mb * T * m + (size_t)t * m + j] =
            (int32_t)(((int64_t)t * P + p) * N + env);
      last[(size_t)p * N + slot] = (int32_t)(((int64_t)T * P + p) * N + env);
    }
  }
}

static void cpu_sketch_indices(blpo_backend *be, const blpo_dims *d, size_t np, int k,
                               blpo_counter counter, int draws, int32_t *idx) {
  (void)be;
  const int64_t c0 = blpo_counter_at(counter, blpo_clock_read(counter.clock));
  for (int j = 0; j < draws; j++)
    for (int p = 0; p < d->P; p++) {
      blpo_perm pm = blpo_perm_make(blpo_sketch_key(d->seed, p), (uint32_t)(c0 + j), (uint32_t)np);
      for (int i = 0; i < k; i++)
        idx[((size_t)j * d->P + p) * k + i] = (int32_t)blpo_perm_at(&pm, (uint32_t)i);
    }
}

static void cpu_copy_blocks(blpo_backend *be, int P, size_t count, float *dst, size_t dst_stride,
                            const float *src, size_t src_stride) {
  (void)be;
  for (int p = 0; p < P; p++)
    memcpy(dst + p * dst_stride, src + p * src_stride, sizeof(float) * count);
}

static void cpu_bootstrap_truncated(blpo_backend *be, size_t count, float *reward,
                                    const float *trunc, const float *value,
                                    size_t value_stride_agent, int N, float gamma) {
  (void)be;
  for (size_t e = 0; e < count; e++)
    if (trunc[e] != 0.0f)
      reward[e] += gamma * value[(e / N) * value_stride_agent + e % N];
}

/* ---- losses ------------------------------------------------------------ */

/* Sums of one chunk of PPO loss rows (combined over chunks in chunk order). */
typedef struct {
  double pg, vl, ent, kl, cf;
  double gls[BLPO_ENV_MAX_ACT];
} ppo_loss_sums;

/* Rows [r0, r1) of agent p's minibatch: per-row gradients written, sums
 * into *out. Arguments as cpu_ppo_loss, with the advantage moments. */
static void ppo_loss_rows(const blpo_dims *d, const float *log_std, int n, const float *head,
                          const float *value, const float *actions, const float *logp_old,
                          const float *adv, const float *ret, const float *value_old,
                          blpo_ppo_params pp, double amean, double astd, float *dhead,
                          float *dvalue, int r0, int r1, ppo_loss_sums *out) {
  int Y = d->head_dim, A = d->act_dim;
  float inv_n = 1.0f / (float)n;
  ppo_loss_sums s;
  memset(&s, 0, sizeof(s));
  for (int i = r0; i < r1; i++) {
    float a_n = (float)((adv[i] - amean) / astd);
    float dls[BLPO_ENV_MAX_ACT];
    blpo_ppo_row_terms t =
        blpo_ppo_row(d->discrete, d->num_actions, A, head + (size_t)i * Y, log_std,
                     actions + (size_t)i * A, logp_old[i], a_n, value[i], value_old[i], ret[i], pp,
                     inv_n, dhead + (size_t)i * Y, &dvalue[i], dls);
    if (!d->discrete)
      for (int j = 0; j < A; j++)
        s.gls[j] += dls[j];
    s.pg += t.pg;
    s.vl += t.vl;
    s.ent += t.ent;
    s.kl += t.kl;
    s.cf += t.clipped;
  }
  *out = s;
}

/* Advantage moments for the normalisation (PureJaxRL: population std, +
 * 1e-8) of one agent's n gathered advantages. */
static void adv_moments(const float *adv, int n, int norm_adv, double *amean, double *astd) {
  *amean = 0;
  *astd = 1;
  if (!norm_adv)
    return;
  double s = 0, s2 = 0;
  for (int i = 0; i < n; i++)
    s += adv[i];
  *amean = s / n;
  for (int i = 0; i < n; i++)
    s2 += (adv[i] - *amean) * (adv[i] - *amean);
  *astd = sqrt(s2 / n) + 1e-8;
}

/* One agent's loss: the chunks' sums combined in chunk order, the log_std
 * gradient g_log_std (A) written (continuous), the means added to st. */
static void ppo_loss_finish(const blpo_dims *d, const ppo_loss_sums *part, int chunks, int n,
                            float *g_log_std, float *st) {
  int A = d->act_dim;
  ppo_loss_sums t = part[0];
  for (int c = 1; c < chunks; c++) {
    t.pg += part[c].pg;
    t.vl += part[c].vl;
    t.ent += part[c].ent;
    t.kl += part[c].kl;
    t.cf += part[c].cf;
    for (int j = 0; j < A; j++)
      t.gls[j] += part[c].gls[j];
  }
  if (!d->discrete)
    for (int j = 0; j < A; j++)
      g_log_std[j] = (float)t.gls[j];
  st[BLPO_STAT_PG_LOSS] += (float)(t.pg / n);
  st[BLPO_STAT_V_LOSS] += (float)(t.vl / n);
  st[BLPO_STAT_ENTROPY] += (float)(t.ent / n);
  st[BLPO_STAT_APPROX_KL] += (float)(t.kl / n);
  st[BLPO_STAT_CLIPFRAC] += (float)(t.cf / n);
  st[BLPO_STAT_COUNT_MB] += 1.0f;
}

static void cpu_ppo_loss(blpo_backend *be, const blpo_dims *d, const blpo_mlp *actor,
                         const float *actor_params, int n, const float *head, size_t head_stride,
                         const float *value, size_t value_stride, const float *actions,
                         const float *logp_old, const float *adv, const float *ret,
                         const float *value_old, blpo_ppo_params pp, float *dhead, float *dvalue,
                         float *actor_grad, float *stats) {
  (void)be;
  int Y = d->head_dim, A = d->act_dim;
  /* the MLP passes' row chunks: the sums depend on n, never on the threads */
  int chunks = row_chunks(n);
  if (blpo_cpu_agents_parallel(d->P, chunks > 1)) {
    /* each agent whole on one thread, its chunks' sums in chunk order */
#pragma omp parallel for schedule(dynamic)
    for (int p = 0; p < d->P; p++) {
      size_t o = (size_t)p * n;
      const float *log_std = actor_params + (size_t)p * actor->num_params + actor->num_mlp_params;
      double amean, astd;
      adv_moments(adv + o, n, pp.norm_adv, &amean, &astd);
      ppo_loss_sums part[BLPO_CPU_MAX_CHUNKS];
      for (int c = 0; c < chunks; c++) {
        int r0, r1;
        chunk_rows(n, chunks, c, &r0, &r1);
        ppo_loss_rows(d, log_std, n, head + p * head_stride, value + p * value_stride,
                      actions + o * A, logp_old + o, adv + o, ret + o, value_old + o, pp, amean,
                      astd, dhead + o * Y, dvalue + o, r0, r1, &part[c]);
      }
      ppo_loss_finish(d, part, chunks, n,
                      actor_grad + (size_t)p * actor->num_params + actor->num_mlp_params,
                      stats + (size_t)p * BLPO_STAT_COUNT);
    }
    return;
  }
  ppo_loss_sums part[BLPO_CPU_MAX_CHUNKS];
  for (int p = 0; p < d->P; p++) {
    size_t o = (size_t)p * n;
    const float *log_std = actor_params + (size_t)p * actor->num_params + actor->num_mlp_params;
    float *g_log_std = actor_grad + (size_t)p * actor->num_params + actor->num_mlp_params;
    double amean, astd;
    adv_moments(adv + o, n, pp.norm_adv, &amean, &astd);
    chunk_queue q;
    chunk_queue_init(&q, chunks, chunk_team(chunks));
#pragma omp parallel if (chunks > 1)
    for (int c, t = omp_get_thread_num(); (c = chunk_queue_next(&q, t)) >= 0;) {
      int r0, r1;
      chunk_rows(n, chunks, c, &r0, &r1);
      ppo_loss_rows(d, log_std, n, head + p * head_stride, value + p * value_stride,
                    actions + o * A, logp_old + o, adv + o, ret + o, value_old + o, pp, amean, astd,
                    dhead + o * Y, dvalue + o, r0, r1, &part[c]);
    }
    ppo_loss_finish(d, part, chunks, n, g_log_std, stats + (size_t)p * BLPO_STAT_COUNT);
  }
}

/* ---- optimiser --------------------------------------------------------- */

/* Sum of x[i]^2 in double as 16 lane sums (lane i % 16) combined pairwise:
 * one sequential double sum waits on each add's latency, about 6 us per
 * network and minibatch on the main thread while the other one idles. */
BLPO_CPU_VECTOR_CLONES
static double sumsq_lanes(const float *x, size_t count) {
  double lane[16] = {0};
  size_t full = count / 16 * 16;
  for (size_t i = 0; i < full; i += 16)
    for (int l = 0; l < 16; l++)
      lane[l] += (double)x[i + l] * x[i + l];
  for (size_t i = full; i < count; i++)
    lane[i - full] += (double)x[i] * x[i];
  for (int w = 8; w >= 1; w /= 2)
    for (int l = 0; l < w; l++)
      lane[l] += lane[l + w];
  return lane[0];
}

static void cpu_sumsq(blpo_backend *be, int P, const float *x, size_t count, float *out) {
  (void)be;
#pragma omp parallel for schedule(static) if (blpo_cpu_agents_parallel(P, 0))
  for (int p = 0; p < P; p++)
    out[p] = (float)sumsq_lanes(x + (size_t)p * count, count);
}

/* One agent's clip factor from the squared norms; both norms added to st. */
static float clip_scale_agent(float sa, float sc, float max_norm, float *st) {
  st[BLPO_STAT_ACTOR_GNORM] += sqrtf(sa);
  st[BLPO_STAT_CRITIC_GNORM] += sqrtf(sc);
  return blpo_clip_scale(sqrtf(sa + sc), max_norm);
}

static void cpu_clip_scale(blpo_backend *be, int P, const float *sa, const float *sc,
                           float max_norm, float *stats, float *scale) {
  (void)be;
  for (int p = 0; p < P; p++)
    scale[p] = clip_scale_agent(sa[p], sc[p], max_norm, stats + (size_t)p * BLPO_STAT_COUNT);
}

/* Adam on elements [i0, i1) with gradients times s. */
BLPO_CPU_VECTOR_CLONES
static void adam_span(float *restrict params, const float *restrict grad, float *restrict m,
                      float *restrict v, float s, blpo_adam_step_params sp, size_t i0, size_t i1) {
  for (size_t i = i0; i < i1; i++)
    blpo_adam_update(&params[i], &m[i], &v[i], grad[i] * s, sp);
}

static void cpu_adam(blpo_backend *be, int P, size_t count, float *params, const float *grad,
                     float *m, float *v, const float *scale, blpo_adam_sched sched) {
  (void)be;
  blpo_adam_step_params sp = blpo_adam_resolve(sched, blpo_clock_read(sched.step.clock));
  int spans = count >= 2 * SPAN ? omp_get_max_threads() : 1;
  if (blpo_cpu_agents_parallel(P, spans > 1)) {
    /* elementwise: any split of the elements gives the same numbers */
#pragma omp parallel for schedule(static)
    for (int p = 0; p < P; p++) {
      size_t o = (size_t)p * count;
      adam_span(params + o, grad + o, m + o, v + o, scale ? scale[p] : 1.0f, sp, 0, count);
    }
    return;
  }
  size_t per = blpo_cpu_even_piece(count, spans, 64);
  for (int p = 0; p < P; p++) {
    size_t o = (size_t)p * count;
    float s = scale ? scale[p] : 1.0f;
#pragma omp parallel for schedule(static) if (spans > 1)
    for (int b = 0; b < spans; b++) {
      size_t i0 = (size_t)b * per, i1 = i0 + per < count ? i0 + per : count;
      if (i0 < i1)
        adam_span(params + o, grad + o, m + o, v + o, s, sp, i0, i1);
    }
  }
}

/* ---- the fused PPO minibatch update ----------------------------------- */

/* dst rows [r0, r1) (width floats each) = src rows ix[r0..r1). */
static void gather_span(const int32_t *ix, const float *src, int width, float *dst, int r0,
                        int r1) {
  if (width == 1) {
    for (int i = r0; i < r1; i++)
      dst[i] = src[ix[i]];
    return;
  }
  for (int i = r0; i < r1; i++)
    for (int c = 0; c < width; c++)
      dst[(size_t)i * width + c] = src[(size_t)ix[i] * width + c];
}

/* One agent's minibatch update: its slices of mb's buffers, its W^T (actor |
 * critic), its chunks' partial gradients and loss sums. */
typedef struct {
  const blpo_dims *d;
  const blpo_ppo_minibatch *mb;
  int p, n, chunks;
  size_t nma, nmc, nm, mw;
  const int32_t *ix;
  float *aw, *cw, *ag, *cg, *aa, *ca, *a_head, *c_head, *x, *act, *s0, *s1, *st;
  float *wt;    /* (nma + nmc) */
  float *parts; /* (chunks, nma + nmc) */
  double amean, astd;
  ppo_loss_sums part[BLPO_CPU_MAX_CHUNKS];
} mb_agent;

static void mb_agent_init(mb_agent *g, const blpo_dims *d, const blpo_ppo_minibatch *mb, int p,
                          float *wt, float *parts) {
  const blpo_mlp *am = mb->actor, *cm = mb->critic;
  int n = mb->n;
  size_t o = (size_t)p * n;
  g->d = d, g->mb = mb, g->p = p, g->n = n, g->chunks = row_chunks(n);
  g->nma = am->num_mlp_params, g->nmc = cm->num_mlp_params, g->nm = g->nma + g->nmc;
  g->mw = am->max_width > cm->max_width ? (size_t)am->max_width : (size_t)cm->max_width;
  g->ix = mb->idx + (size_t)p * mb->idx_stride;
  g->aw = mb->actor_params + (size_t)p * am->num_params;
  g->cw = mb->critic_params + (size_t)p * cm->num_params;
  g->ag = mb->actor_grad + (size_t)p * am->num_params;
  g->cg = mb->critic_grad + (size_t)p * cm->num_params;
  g->aa = mb->actor_acts + o * am->act_floats_per_row;
  g->ca = mb->critic_acts + o * cm->act_floats_per_row;
  g->a_head = g->aa + blpo_mlp_act_offset(am, am->num_layers, n);
  g->c_head = g->ca + blpo_mlp_act_offset(cm, cm->num_layers, n);
  g->x = mb->mb_obs + o * d->obs_dim, g->act = mb->mb_act + o * d->act_dim;
  g->s0 = mb->scratch + o * 2 * g->mw, g->s1 = g->s0 + (size_t)n * g->mw;
  g->st = mb->stats + (size_t)p * BLPO_STAT_COUNT;
  g->wt = wt, g->parts = parts;
  /* the advantages first: their moments normalise every chunk's rows */
  gather_span(g->ix, mb->adv, 1, mb->mb_adv + o, 0, n);
  adv_moments(mb->mb_adv + o, n, mb->pp.norm_adv, &g->amean, &g->astd);
}

/* Chunk c: gathered, both forward passes, the loss, both backward passes. */
static void mb_agent_chunk(mb_agent *g, int c) {
  const blpo_ppo_minibatch *mb = g->mb;
  const blpo_dims *d = g->d;
  int n = g->n, r0, r1;
  size_t o = (size_t)g->p * n;
  chunk_rows(n, g->chunks, c, &r0, &r1);
  gather_span(g->ix, mb->obs, d->obs_dim, g->x, r0, r1);
  gather_span(g->ix, mb->act, d->act_dim, g->act, r0, r1);
  gather_span(g->ix, mb->logp, 1, mb->mb_logp + o, r0, r1);
  gather_span(g->ix, mb->ret, 1, mb->mb_ret + o, r0, r1);
  gather_span(g->ix, mb->val, 1, mb->mb_val + o, r0, r1);
  forward_rows(mb->actor, g->aw, g->wt, g->x, n, g->aa, r0, r1);
  forward_rows(mb->critic, g->cw, g->wt + g->nma, g->x, n, g->ca, r0, r1);
  ppo_loss_rows(d, g->aw + g->nma, n, g->a_head, g->c_head, g->act, mb->mb_logp + o, mb->mb_adv + o,
                mb->mb_ret + o, mb->mb_val + o, mb->pp, g->amean, g->astd,
                mb->dhead + o * d->head_dim, mb->dvalue + o, r0, r1, &g->part[c]);
  float *pc = g->parts + (size_t)c * g->nm;
  backward_rows(mb->actor, g->aw, g->x, n, g->aa, mb->dhead + o * d->head_dim, pc, g->s0, g->s1,
                g->mw, r0, r1);
  backward_rows(mb->critic, g->cw, g->x, n, g->ca, mb->dvalue + o, pc + g->nma, g->s0, g->s1, g->mw,
                r0, r1);
}

/* Piece t of `team` of the chunk sums into the gradients (the log_std part
 * by piece 0); then, once every piece is in, the norms. */
static void mb_agent_sum(mb_agent *g, int t, int team) {
  size_t pa = blpo_cpu_even_piece(g->nma, team, 64), pc = blpo_cpu_even_piece(g->nmc, team, 64);
  if ((size_t)t * pa < g->nma)
    sum_chunk_parts(g->parts, g->chunks, g->nm, (size_t)t * pa,
                    (size_t)(t + 1) * pa < g->nma ? (size_t)(t + 1) * pa : g->nma, g->ag);
  if ((size_t)t * pc < g->nmc)
    sum_chunk_parts(g->parts + g->nma, g->chunks, g->nm, (size_t)t * pc,
                    (size_t)(t + 1) * pc < g->nmc ? (size_t)(t + 1) * pc : g->nmc, g->cg);
  if (t == 0) /* the log_std gradient belongs to the actor's norm */
    ppo_loss_finish(g->d, g->part, g->chunks, g->n, g->ag + g->nma, g->st);
}

/* Piece t of `team` of both Adam steps, with the clip factor of norms sa, sc. */
static void mb_agent_adam(mb_agent *g, int t, int team, float sa, float sc,
                          blpo_adam_step_params spa, blpo_adam_step_params spc) {
  const blpo_ppo_minibatch *mb = g->mb;
  size_t Na = mb->actor->num_params, Nc = mb->critic->num_params, p = (size_t)g->p;
  float scale = blpo_clip_scale(sqrtf(sa + sc), mb->max_grad_norm);
  size_t qa = blpo_cpu_even_piece(Na, team, 64), qc = blpo_cpu_even_piece(Nc, team, 64);
  size_t i0 = (size_t)t * qa, i1 = i0 + qa < Na ? i0 + qa : Na;
  if (i0 < i1)
    adam_span(g->aw, g->ag, mb->actor_m + p * Na, mb->actor_v + p * Na, scale, spa, i0, i1);
  i0 = (size_t)t * qc, i1 = i0 + qc < Nc ? i0 + qc : Nc;
  if (i0 < i1)
    adam_span(g->cw, g->cg, mb->critic_m + p * Nc, mb->critic_v + p * Nc, scale, spc, i0, i1);
}

static void mb_agent_finish(mb_agent *g, float sa, float sc) {
  const blpo_ppo_minibatch *mb = g->mb;
  mb->sumsq_a[g->p] = sa;
  mb->sumsq_c[g->p] = sc;
  mb->scale[g->p] = clip_scale_agent(sa, sc, mb->max_grad_norm, g->st);
}

/* backend.h ppo_minibatch: the ops of blpo_ppo_minibatch_ops as one op. One
 * agent's row chunks are gathered, go through both forward passes, the loss
 * and both backward passes back to back on one core, with the rows'
 * activations still in that core's cache; then the chunks' gradients are
 * summed, the norms taken and Adam run. An agent runs either in one parallel
 * region of its own, three barriers where the separate ops have about twelve
 * forks and joins, or, when the agents are enough for the threads or have
 * one chunk each, whole on one thread beside the others. Every value is
 * computed by the same functions in the same order as by the separate ops,
 * so the results are the same bits. */
static void cpu_ppo_minibatch(blpo_backend *be, const blpo_dims *d, const blpo_ppo_minibatch *mb) {
  blpo_cpu_impl *impl = be->impl;
  int P = d->P, chunks = row_chunks(mb->n);
  size_t Na = mb->actor->num_params, Nc = mb->critic->num_params;
  size_t nm = mb->actor->num_mlp_params + mb->critic->num_mlp_params;
  blpo_adam_step_params spa =
      blpo_adam_resolve(mb->actor_sched, blpo_clock_read(mb->actor_sched.step.clock));
  blpo_adam_step_params spc =
      blpo_adam_resolve(mb->critic_sched, blpo_clock_read(mb->critic_sched.step.clock));
  if (blpo_cpu_agents_parallel(P, chunks > 1)) {
    float *wt = grow_buffer(&impl->wt, &impl->wt_floats, (size_t)P * nm, "transposed weights");
    float *parts = grad_parts(be, (size_t)P * chunks * nm); // (P, chunks, nma + nmc)
#pragma omp parallel for schedule(dynamic)
    for (int p = 0; p < P; p++) {
      mb_agent g;
      mb_agent_init(&g, d, mb, p, wt + (size_t)p * nm, parts + (size_t)p * chunks * nm);
      transpose_weights_serial(mb->actor, g.aw, g.wt);
      transpose_weights_serial(mb->critic, g.cw, g.wt + g.nma);
      for (int c = 0; c < chunks; c++)
        mb_agent_chunk(&g, c);
      mb_agent_sum(&g, 0, 1);
      float sa = (float)sumsq_lanes(g.ag, Na), sc = (float)sumsq_lanes(g.cg, Nc);
      mb_agent_adam(&g, 0, 1, sa, sc, spa, spc);
      mb_agent_finish(&g, sa, sc);
    }
    return;
  }
  float *wt = grow_buffer(&impl->wt, &impl->wt_floats, nm, "transposed weights");
  float *parts = grad_parts(be, (size_t)chunks * nm); // (chunks, nma + nmc)
  for (int p = 0; p < P; p++) {
    mb_agent g;
    mb_agent_init(&g, d, mb, p, wt, parts);
    chunk_queue q;
    chunk_queue_init(&q, chunks, chunk_team(chunks));
    float sa = 0, sc = 0;
#pragma omp parallel num_threads(chunk_team(chunks))
    {
      int t = omp_get_thread_num(), team = omp_get_num_threads();
      transpose_weights(mb->actor, g.aw, g.wt);
      transpose_weights(mb->critic, g.cw, g.wt + g.nma);
#pragma omp barrier
      for (int c; (c = chunk_queue_next(&q, t)) >= 0;)
        mb_agent_chunk(&g, c);
#pragma omp barrier
      /* each thread one equal piece of each network's parameters */
      mb_agent_sum(&g, t, team);
#pragma omp barrier
      /* the two norms side by side, each one thread's ordered sum */
      if (t == 0)
        sa = (float)sumsq_lanes(g.ag, Na);
      if (t == (team > 1 ? 1 : 0))
        sc = (float)sumsq_lanes(g.cg, Nc);
#pragma omp barrier
      mb_agent_adam(&g, t, team, sa, sc, spa, spc);
    }
    mb_agent_finish(&g, sa, sc);
  }
}

static void cpu_sync(blpo_backend *be) { (void)be; /* every CPU op is synchronous */ }

static void cpu_timer_mark(blpo_backend *be, int slot) {
  blpo_cpu_impl *impl = be->impl;
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  impl->timer_s[slot] = (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double cpu_timer_seconds(blpo_backend *be, int a, int b) {
  blpo_cpu_impl *impl = be->impl;
  return impl->timer_s[b] - impl->timer_s[a];
}

static void cpu_destroy(blpo_backend *be) {
  blpo_cpu_impl *impl = be->impl;
  free(impl->wt);
  blpo_cpu_free_solver(be->impl);
  free(be->impl);
  free(be);
}

blpo_backend *blpo_backend_cpu_create(int threads) {
  if (threads > 0)
    omp_set_num_threads(threads);
  /* one active level whatever OMP_NESTED or OMP_MAX_ACTIVE_LEVELS say: the
   * ops that run agents side by side call threaded GEMMs and loops, which
   * must then stay on their agent's thread, not start threads x threads */
  omp_set_max_active_levels(1);
  blpo_backend *be = calloc(1, sizeof(*be));
  blpo_cpu_impl *impl = calloc(1, sizeof(*impl));
  if (!be || !impl) {
    free(be);
    free(impl);
    return NULL;
  }
  be->impl = impl;
  be->name = "cpu";
  be->alloc = cpu_alloc;
  be->release = cpu_release;
  be->upload = cpu_copy;
  be->download = cpu_copy;
  be->fill = cpu_fill;
  be->sync = cpu_sync;
  be->env_reset = cpu_env_reset;
  be->env_step = cpu_env_step;
  be->obs_norm = cpu_obs_norm;
  be->reward_norm = cpu_reward_norm;
  be->mlp_forward = cpu_mlp_forward;
  be->mlp_forward_many = cpu_mlp_forward_many;
  be->mlp_backward_many = cpu_mlp_backward_many;
  be->mlp_backward = cpu_mlp_backward;
  be->policy_sample = cpu_policy_sample;
  be->policy_mode = cpu_policy_mode;
  be->gae = cpu_gae;
  be->episode_summary = cpu_episode_summary;
  be->gather_rows = cpu_gather_rows;
  be->gather_rows_many = cpu_gather_rows_many;
  be->copy_blocks = cpu_copy_blocks;
  be->shuffle_samples = cpu_shuffle_samples;
  be->shuffle_trajectories = cpu_shuffle_trajectories;
  be->sketch_indices = cpu_sketch_indices;
  be->bootstrap_truncated = cpu_bootstrap_truncated;
  be->ppo_loss = cpu_ppo_loss;
  be->sumsq = cpu_sumsq;
  be->clip_scale = cpu_clip_scale;
  be->adam = cpu_adam;
  be->ppo_minibatch = cpu_ppo_minibatch;
  be->timer_mark = cpu_timer_mark;
  be->timer_seconds = cpu_timer_seconds;
  be->destroy = cpu_destroy;
  blpo_cpu_register_blpo_ops(be);
  blpo_cpu_install_rollout_fused(be);
  return be;
}
