/* The fused rollout step (backend.h rollout_fused) as a block program for
 * host and device, in the manner of ppo_blocks.h: the CUDA kernel
 * (kernels/rollout_fused_cuda.cu) runs its phases with a barrier after
 * each; tests/test_rollout_blocks.c runs it thread by thread, in every
 * thread order, against the CPU backend's op (src/cpu_rollout_fused.c), and
 * tests/blocks_backend.h runs it in the trainer's own calls.
 *
 * Block b of agent p runs the E envs b E .. b E + E - 1 of that agent
 * (E = 4, 8, 16 or 32; blpo_rof_choose) for rollout steps t0 .. t1 - 1, with
 * BLPO_ROF_THREADS threads:
 *
 *   stage        both networks' weights into shared memory, each W_l
 *                transposed, (d_in, d_out + 1): row i holds input i's
 *                weights to every neuron, so a warp's neurons read one
 *                consecutive word each, and the staging writes, a column at
 *                a time, fall in distinct banks where d_out is even (the
 *                hidden layers; once per launch either way); a zero column
 *                and bias pad at d_out (read by the tiles' unused second
 *                neuron, below). The envs' observations at t0 and states.
 *   per step t, Lmax + 1 phases (Lmax the deeper network's layers):
 *     layer l    layer l of each network that has one, for the E envs. The
 *                activations are input-major, (width, ep) with ep = E
 *                rounded to 4 mod 8 floats, so that a thread computes two
 *                neurons (j and j + H, H = ceil(d_out / 2)) of four
 *                adjacent envs from one float4 of the 4 envs' input and a
 *                weight for each neuron per input: 3 loads for 8 FMA, where
 *                a neuron per thread and env (the kernel until 2026-12-07)
 *                took 2 for 1. In a 64-wide layer a warp's 32 threads take
 *                32 consecutive j of one env group: the float4 is a
 *                broadcast and each weight load 32 consecutive words. The
 *                heads (1-2 neurons) spread over the envs the same way:
 *                an item per 4 envs, rather than a warp per env with 30
 *                lanes idle.
 *     env        thread e < E: the value, the action draw
 *                (blpo_policy_draw), the env step (blpo_env_step, state in
 *                shared memory), the transition written; the next
 *                observation into the layer-0 input; after the last step
 *                the state back to global memory.
 *
 * Each neuron is blpo_neuron's sum (bias, then fused multiply-adds in input
 * order) and blpo_activate's activation, as blpo_mlp_forward_one computes
 * them for the CPU op, so on the host the program gives the CPU op's bits;
 * on the device results differ only where libdevice's transcendentals
 * (tanhf, expf, sinf, cosf) differ from libm's and where nvcc contracts the
 * env and policy code's multiply-adds (the host builds with
 * -ffp-contract=off). */
#ifndef BLPO_ROLLOUT_BLOCKS_H
#define BLPO_ROLLOUT_BLOCKS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "env.h"
#include "envs.h"
#include "fused_rollout.h"
#include "hd.h"
#include "mlp.h"
#include "policy.h"
#include "schedule.h"

#define BLPO_ROF_THREADS 256
#define BLPO_ROF_MAX_ENVS 32 /* envs per block */
#define BLPO_ROF_MAX_HEAD 8  /* actor head width (logits or means) */
/* An env state's slot in shared memory, in floats: odd, so that the env
 * phase's threads copying their states word by word hit distinct banks. */
#define BLPO_ROF_STATE_FLOATS                                                                      \
  ((int)((sizeof(blpo_env_state) + sizeof(float) - 1) / sizeof(float)) | 1)

/* One network's place in shared memory (offsets in floats from the block's
 * base) and in its agent's parameters. */
typedef struct {
  int L, activation;
  int dims[BLPO_MAX_LAYERS + 1];
  int w[BLPO_MAX_LAYERS], b[BLPO_MAX_LAYERS]; /* W_l^T (d_l, d_{l+1} + 1); b_l (d_{l+1} + 1) */
  int h[2];                                   /* hidden activations, ping-pong: (hmax, ep) */
  int y;                                      /* head: (d_L, ep) */
  size_t w_src[BLPO_MAX_LAYERS], b_src[BLPO_MAX_LAYERS];
  size_t num_params, num_mlp;
} blpo_rof_net;

typedef struct {
  blpo_rof_net net[2]; /* actor, critic */
  int E;               /* envs per block, a multiple of 4 */
  int ep;              /* pitch of the input-major arrays */
  int x;               /* observations: (O, ep) */
  int st;              /* env states: E slots of BLPO_ROF_STATE_FLOATS */
  int Lmax;            /* the deeper network's layers */
  int s_floats;        /* shared memory per block */
  int blocks;          /* per agent: ceil(N / E) */
} blpo_rof_layout;

typedef struct {
  blpo_rof_layout lay;
  blpo_dims d;
  const float *actor_params, *critic_params; /* (P, Na), (P, Nc) */
  int t0, t1;
  blpo_counter counter;
  blpo_env_state *states;                             /* (P, N) */
  float *obs;                                         /* (T+1, P, N, O) */
  float *act, *logp, *value, *reward, *done, *ep_ret; /* (T, P, N, A); (T, P, N) x 5 */
  float *final_obs, *trunc;                           /* (P, N, O), (P, N) or NULL */
} blpo_rof_args;

/* The input-major arrays' pitch for E envs: a multiple of 4 (each row's
 * float4 groups 16-byte aligned) and 4 mod 8, so that a warp's float4
 * stores down a column (32 neurons of one env group, rows ep apart) spread
 * over every bank in each quarter warp; E itself, a multiple of 8 past 4,
 * would put 2 (E = 8) to 8 (E = 32) of a quarter warp's rows on the same 4
 * banks. */
BLPO_HD int blpo_rof_pitch(int E) {
  const int p = (E + 3) & ~3;
  return p % 8 == 0 ? p + 4 : p;
}

static inline int blpo_rof_place(int *off, int floats, int align) {
  const int o = (*off + align - 1) / align * align;
  *off = o + floats;
  return o;
}

static inline void blpo_rof_net_layout(blpo_rof_net *n, const blpo_mlp *m, int ep, int *off) {
  memset(n, 0, sizeof(*n));
  n->L = m->num_layers;
  n->activation = m->activation;
  int hmax = 0;
  for (int l = 0; l <= m->num_layers; l++) {
    n->dims[l] = m->dims[l];
    if (l > 0 && l < m->num_layers && m->dims[l] > hmax)
      hmax = m->dims[l];
  }
  for (int l = 0; l < m->num_layers; l++) {
    const int din = m->dims[l], dout = m->dims[l + 1];
    n->w_src[l] = m->w_off[l];
    n->b_src[l] = m->b_off[l];
    n->w[l] = blpo_rof_place(off, din * (dout + 1), 1);
    n->b[l] = blpo_rof_place(off, dout + 1, 1);
  }
  for (int k = 0; k < 2; k++)
    n->h[k] = blpo_rof_place(off, hmax * ep, 4);
  n->y = blpo_rof_place(off, m->dims[m->num_layers] * ep, 4);
  n->num_params = m->num_params;
  n->num_mlp = m->num_mlp_params;
}

/* The layout for d's envs: the most envs per block (up to 32) that still
 * give the device's `sms` multiprocessors a block each, where P N allows,
 * and that fit smem_bytes. 0 where these networks or this task cannot run
 * fused: no layout fits even 4 envs; a layer wider than
 * BLPO_FUSED_MAX_WIDTH; a head wider than BLPO_ROF_MAX_HEAD; a critic that
 * is not scalar; networks whose input is not the task's observation (or
 * wider than BLPO_ENV_MAX_OBS); actions wider than BLPO_ENV_MAX_ACT; more
 * than 65535 agents (the grid's y; run.num_seeds stops at 4096). Every
 * array the tiles read or write by float4 (x, h, y) is placed at a
 * multiple of 4 floats. */
static inline int blpo_rof_choose(blpo_rof_layout *lay, const blpo_dims *d, const blpo_mlp *actor,
                                  const blpo_mlp *critic, size_t smem_bytes, int sms) {
  memset(lay, 0, sizeof(*lay));
  if (d->P <= 0 || d->P > 65535 /* gridDim.y */ || d->N <= 0 || !blpo_fused_widths_fit(actor) ||
      !blpo_fused_widths_fit(critic) || actor->dims[actor->num_layers] > BLPO_ROF_MAX_HEAD ||
      actor->dims[0] > BLPO_ENV_MAX_OBS || critic->dims[critic->num_layers] != 1 ||
      critic->dims[0] != actor->dims[0] || d->obs_dim != actor->dims[0] ||
      d->act_dim > BLPO_ENV_MAX_ACT)
    return 0;
  int E = BLPO_ROF_MAX_ENVS;
  while (E > 4 && (E / 2 >= d->N || (int64_t)d->P * ((d->N + E - 1) / E) < sms))
    E /= 2;
  for (; E >= 4; E /= 2) {
    const int ep = blpo_rof_pitch(E);
    int off = 0;
    lay->E = E;
    lay->ep = ep;
    lay->st = blpo_rof_place(&off, E * BLPO_ROF_STATE_FLOATS, 4);
    lay->x = blpo_rof_place(&off, actor->dims[0] * ep, 4);
    blpo_rof_net_layout(&lay->net[0], actor, ep, &off);
    blpo_rof_net_layout(&lay->net[1], critic, ep, &off);
    lay->Lmax = actor->num_layers > critic->num_layers ? actor->num_layers : critic->num_layers;
    lay->s_floats = off;
    lay->blocks = (d->N + E - 1) / E;
    if ((size_t)off * sizeof(float) <= smem_bytes)
      return 1;
  }
  memset(lay, 0, sizeof(*lay));
  return 0;
}

/* backend.h rollout_fused_supported for a backend that runs this program:
 * whether the networks fit a block of 4 envs, the smallest layout
 * blpo_rof_choose falls back to, so that every call finds a layout. */
static inline int blpo_rof_supported(const blpo_mlp *actor, const blpo_mlp *critic,
                                     size_t smem_bytes) {
  blpo_dims d;
  memset(&d, 0, sizeof(d));
  d.P = 1, d.N = 4, d.obs_dim = actor->dims[0], d.act_dim = 1;
  blpo_rof_layout lay;
  return blpo_rof_choose(&lay, &d, actor, critic, smem_bytes, 1 << 30);
}

static inline blpo_rof_args blpo_rof_args_of(const blpo_rof_layout *lay, const blpo_dims *d,
                                             const float *actor_params, const float *critic_params,
                                             int t0, int t1, blpo_counter counter,
                                             blpo_env_state *states, float *obs, float *act,
                                             float *logp, float *value, float *reward, float *done,
                                             float *ep_ret, float *final_obs, float *trunc) {
  blpo_rof_args a;
  memset(&a, 0, sizeof(a));
  a.lay = *lay;
  a.d = *d;
  a.actor_params = actor_params, a.critic_params = critic_params;
  a.t0 = t0, a.t1 = t1, a.counter = counter;
  a.states = states, a.obs = obs, a.act = act, a.logp = logp, a.value = value;
  a.reward = reward, a.done = done, a.ep_ret = ep_ret, a.final_obs = final_obs, a.trunc = trunc;
  return a;
}

BLPO_HD int blpo_rof_phases(const blpo_rof_args *a) {
  return 1 + (a->t1 - a->t0) * (a->lay.Lmax + 1);
}

/* Four consecutive floats from p, 16-byte aligned (checked on the host, as
 * blpo_mbf_load does: a layout the device's float4 load would fault on
 * aborts the CPU tests). */
BLPO_HD void blpo_rof_load4(const float *p, float v[4]) {
#ifdef __CUDA_ARCH__
  const float4 q = *(const float4 *)p;
  v[0] = q.x, v[1] = q.y, v[2] = q.z, v[3] = q.w;
#else
  if (((uintptr_t)p & 15u) != 0) {
    fprintf(stderr, "blpo_rof_load4: %p is not 16-byte aligned (a float4 load faults there)\n",
            (const void *)p);
    abort();
  }
  for (int u = 0; u < 4; u++)
    v[u] = p[u];
#endif
}

BLPO_HD void blpo_rof_store4(float *p, const float v[4]) {
#ifdef __CUDA_ARCH__
  *(float4 *)p = make_float4(v[0], v[1], v[2], v[3]);
#else
  if (((uintptr_t)p & 15u) != 0) {
    fprintf(stderr, "blpo_rof_store4: %p is not 16-byte aligned (a float4 store faults there)\n",
            (void *)p);
    abort();
  }
  for (int u = 0; u < 4; u++)
    p[u] = v[u];
#endif
}

/* Agent p's network n's parameters into shared memory. */
BLPO_HD void blpo_rof_stage_net(const blpo_rof_net *n, const float *src, int tid, float *sm) {
  for (int l = 0; l < n->L; l++) {
    const int din = n->dims[l], dout = n->dims[l + 1], pitch = dout + 1, cnt = din * dout;
    float *w = sm + n->w[l], *b = sm + n->b[l];
    const float *ws = src + n->w_src[l], *bs = src + n->b_src[l];
    for (int q = tid; q < cnt; q += BLPO_ROF_THREADS) {
      const int j = q / din, i = q % din; /* consecutive threads, consecutive words */
      w[i * pitch + j] = ws[q];
    }
    for (int i = tid; i < din; i += BLPO_ROF_THREADS)
      w[i * pitch + dout] = 0.0f;
    for (int j = tid; j <= dout; j += BLPO_ROF_THREADS)
      b[j] = j < dout ? bs[j] : 0.0f;
  }
}

/* Item k of network n's layer l: neurons j0 = k % H and j0 + H of envs
 * 4 g .. 4 g + 3, g = k / H. */
BLPO_HD void blpo_rof_item(const blpo_rof_layout *y, const blpo_rof_net *n, int l, int k,
                           float *sm) {
  const int din = n->dims[l], dout = n->dims[l + 1], pitch = dout + 1, H = (dout + 1) / 2;
  const int j0 = k % H, g = k / H, j1 = j0 + H, ep = y->ep;
  const int last = l == n->L - 1;
  const float *in = sm + (l == 0 ? y->x : n->h[(l - 1) & 1]) + 4 * g;
  const float *w = sm + n->w[l];
  float z0[4], z1[4];
  const float b0 = sm[n->b[l] + j0], b1 = sm[n->b[l] + j1];
  for (int v = 0; v < 4; v++)
    z0[v] = b0, z1[v] = b1;
#ifdef __CUDA_ARCH__
#pragma unroll 4
#endif
  for (int i = 0; i < din; i++) {
    float xv[4];
    blpo_rof_load4(in + (size_t)i * ep, xv);
    const float w0 = w[i * pitch + j0], w1 = w[i * pitch + j1];
    for (int v = 0; v < 4; v++) {
      z0[v] = fmaf(w0, xv[v], z0[v]);
      z1[v] = fmaf(w1, xv[v], z1[v]);
    }
  }
  if (!last)
    for (int v = 0; v < 4; v++) {
      z0[v] = blpo_activate(n->activation, z0[v]);
      z1[v] = blpo_activate(n->activation, z1[v]);
    }
  /* The output's place in float4s. Written as 4 times an index, the
   * address is one nvcc can see is 16-byte aligned; as base + offset (the
   * offset's alignment only implied by the layout) nvcc 13.0 emitted four
   * st.shared.f32 for the float4 store (seen in the PTX), while the loads'
   * ld.shared.v4 came out in either form. */
  const int q = (last ? n->y : n->h[l & 1]) / 4 + g, ep4 = ep / 4;
  blpo_rof_store4(sm + 4 * (q + j0 * ep4), z0);
  if (j1 < dout)
    blpo_rof_store4(sm + 4 * (q + j1 * ep4), z1);
}

/* Agent p's block b, thread tid, phase ph (0 <= ph < blpo_rof_phases). */
BLPO_HD void blpo_rof_block(const blpo_rof_args *a, int p, int b, int tid, int ph, float *sm) {
  const blpo_rof_layout *y = &a->lay;
  const blpo_dims *d = &a->d;
  const int E = y->E, ep = y->ep, O = d->obs_dim, A = d->act_dim, N = d->N;
  const size_t PN = (size_t)d->P * N;
  const blpo_rof_net *an = &y->net[0], *cn = &y->net[1];
  if (ph == 0) {
    blpo_rof_stage_net(an, a->actor_params + (size_t)p * an->num_params, tid, sm);
    blpo_rof_stage_net(cn, a->critic_params + (size_t)p * cn->num_params, tid, sm);
    for (int q = tid; q < E * O; q += BLPO_ROF_THREADS) {
      const int e = q / O, k = q % O, i = b * E + e;
      /* envs past N compute on zeros and write nothing */
      sm[y->x + k * ep + e] = i < N ? a->obs[((size_t)a->t0 * PN + (size_t)p * N + i) * O + k] : 0;
    }
    if (tid < E && b * E + tid < N)
      memcpy(sm + y->st + tid * BLPO_ROF_STATE_FLOATS, &a->states[(size_t)p * N + b * E + tid],
             sizeof(blpo_env_state));
    return;
  }
  const int s = (ph - 1) / (y->Lmax + 1), l = (ph - 1) % (y->Lmax + 1);
  if (l < y->Lmax) {
    const int G = E / 4;
    const int ia = l < an->L ? (an->dims[l + 1] + 1) / 2 * G : 0;
    const int ic = l < cn->L ? (cn->dims[l + 1] + 1) / 2 * G : 0;
    for (int k = tid; k < ia + ic; k += BLPO_ROF_THREADS) {
      if (k < ia)
        blpo_rof_item(y, an, l, k, sm);
      else
        blpo_rof_item(y, cn, l, k - ia, sm);
    }
    return;
  }
  const int i = b * E + tid;
  if (tid >= E || i >= N)
    return;
  const size_t e = (size_t)p * N + i;
  const int t = a->t0 + s;
  const size_t r = (size_t)t * PN + e; /* row of the (T, P, N) buffers */
  float head[BLPO_ROF_MAX_HEAD], av[BLPO_ENV_MAX_ACT];
  for (int j = 0; j < an->dims[an->L]; j++)
    head[j] = sm[an->y + j * ep + tid];
  a->value[r] = sm[cn->y + tid];
  const uint64_t c0 = (uint64_t)blpo_counter_at(a->counter, blpo_clock_read(a->counter.clock));
  a->logp[r] = blpo_policy_draw(d->discrete, d->num_actions, A, head,
                                a->actor_params + (size_t)p * an->num_params + an->num_mlp,
                                blpo_action_key(d->seed, p, i), c0 + (uint64_t)t, av);
  for (int k = 0; k < A; k++)
    a->act[r * A + k] = av[k];
  blpo_env_state st;
  float *slot = sm + y->st + tid * BLPO_ROF_STATE_FLOATS;
  memcpy(&st, slot, sizeof(st));
  float o[BLPO_ENV_MAX_OBS], fo[BLPO_ENV_MAX_OBS], rew, eret;
  int term, tr, len;
  blpo_env_step(d->env_id, &st, av, blpo_env_reset_key(d->seed, p, i), o, &rew, &term, &tr, &eret,
                &len, a->final_obs ? fo : NULL);
  for (int k = 0; k < O; k++) {
    a->obs[(r + PN) * O + k] = o[k];
    sm[y->x + k * ep + tid] = o[k]; /* the next step's input, not read back from global */
  }
  a->reward[r] = rew;
  a->done[r] = (term || tr) ? 1.0f : 0.0f;
  a->ep_ret[r] = eret;
  if (a->final_obs)
    for (int k = 0; k < O; k++)
      a->final_obs[e * O + k] = fo[k];
  if (a->trunc)
    a->trunc[e] = tr ? 1.0f : 0.0f;
  memcpy(slot, &st, sizeof(st));
  if (t == a->t1 - 1)
    a->states[e] = st;
}

#endif
