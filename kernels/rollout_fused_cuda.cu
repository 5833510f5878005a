// The fused rollout step on the GPU: one kernel runs rollout steps t0..t1-1
// of every env (backend.h rollout_fused) instead of, per step, two forward
// passes of bias, GEMM and activation launches, a value copy, the action
// draw and the env step. Without observation normalisation the trainer asks
// for all T steps at once: one launch per rollout.
//
// Layout: a block serves EPB consecutive envs of one agent (blockIdx.y) with W
// threads each, W the widest layer rounded up to a warp, so a warp never
// spans two envs. The block first stages its agent's actor and critic into
// shared memory, each weight matrix transposed with a row pitch of d_out + 1
// (reads of a layer are then one consecutive word per thread, and the staging
// writes are conflict-free too). In a layer, thread j of an env computes
// neuron j with blpo_neuron from the env's previous activations (shared);
// thread 0 of the env then draws the action (blpo_policy_draw), steps the env
// (its state stays in that thread's registers across steps) and writes the
// transition. The per-element math is include/blpo/fused_rollout.h, policy.h
// and envs_gpu/envs.h, which the CPU backend's op runs too.
#include <stdio.h>
#include <string.h>

#include "blpo/fused_rollout.h"
#include "blpo/policy.h"
#include "cuda_ops.h"
#include "envs.h"

namespace {

// A network's layout in shared memory (floats from the network's base).
struct fused_net {
  int L, activation;
  int dims[BLPO_MAX_LAYERS + 1];
  int w_src[BLPO_MAX_LAYERS], b_src[BLPO_MAX_LAYERS]; // offsets in the parameters
  int w_dst[BLPO_MAX_LAYERS], b_dst[BLPO_MAX_LAYERS]; // offsets in shared memory
  int pitch[BLPO_MAX_LAYERS];                         // d_out + 1
  int smem_floats;
  int num_params, num_mlp;
};

fused_net net_layout(const blpo_mlp *m) {
  fused_net n;
  memset(&n, 0, sizeof(n));
  n.L = m->num_layers;
  n.activation = m->activation;
  int off = 0;
  for (int l = 0; l <= m->num_layers; l++)
    n.dims[l] = m->dims[l];
  for (int l = 0; l < m->num_layers; l++) {
    int din = m->dims[l], dout = m->dims[l + 1];
    n.w_src[l] = (int)m->w_off[l];
    n.b_src[l] = (int)m->b_off[l];
    n.pitch[l] = dout + 1;
    n.w_dst[l] = off;
    off += din * (dout + 1);
    n.b_dst[l] = off;
    off += dout;
  }
  n.smem_floats = off;
  n.num_params = (int)m->num_params;
  n.num_mlp = (int)m->num_mlp_params;
  return n;
}

// Per env in shared memory: two activation buffers of W, the observation (8)
// and the head outputs (4: actor head, then the value at +4).
constexpr int kEnvExtra = 16;
constexpr int kTargetThreads = 512;
// shape_of's blocks: EPB envs of W threads, W <= 256 (a warp multiple), so
// EPB * W <= kTargetThreads, the kernel's launch bound
static_assert((BLPO_FUSED_MAX_WIDTH + 31) / 32 * 32 <= kTargetThreads,
              "a fused rollout block would exceed the kernel's launch bound");

struct fused_shape {
  int W, epb, threads;
  size_t smem_bytes;
};

int widest(const blpo_mlp *m) {
  int w = 1;
  for (int l = 0; l <= m->num_layers; l++)
    w = m->dims[l] > w ? m->dims[l] : w;
  return w;
}

fused_shape shape_of(const blpo_mlp *actor, const blpo_mlp *critic) {
  fused_shape s;
  int w = widest(actor) > widest(critic) ? widest(actor) : widest(critic);
  s.W = (w + 31) / 32 * 32;
  s.epb = kTargetThreads / s.W > 1 ? kTargetThreads / s.W : 1;
  s.threads = s.epb * s.W;
  fused_net a = net_layout(actor), c = net_layout(critic);
  s.smem_bytes = sizeof(float) * ((size_t)a.smem_floats + (size_t)c.smem_floats +
                                  (size_t)s.epb * (2 * s.W + kEnvExtra));
  return s;
}

// Agent p's parameters src into the shared layout dst; every thread takes part.
__device__ void stage(const fused_net &n, const float *__restrict__ src, float *dst) {
  for (int l = 0; l < n.L; l++) {
    const int din = n.dims[l], dout = n.dims[l + 1], cnt = din * dout;
    for (int q = threadIdx.x; q < cnt; q += blockDim.x) {
      const int j = q / din, i = q % din; // consecutive threads read consecutive words
      dst[n.w_dst[l] + i * n.pitch[l] + j] = src[n.w_src[l] + q];
    }
    for (int q = threadIdx.x; q < dout; q += blockDim.x)
      dst[n.b_dst[l] + q] = src[n.b_src[l] + q];
  }
}

// The network on the env's input x (shared) into out (shared); buffers b0/b1
// take the hidden layers. Called by every thread of the block (it syncs).
__device__ void forward(const fused_net &n, const float *s, const float *x, float *b0, float *b1,
                        float *out, int lane, bool active) {
  const float *in = x;
  for (int l = 0; l < n.L; l++) {
    const int din = n.dims[l], dout = n.dims[l + 1];
    const bool last = l == n.L - 1;
    float *o = last ? out : (l % 2 == 0 ? b0 : b1);
    if (active && lane < dout) {
      float z =
          blpo_neuron(s[n.b_dst[l] + lane], s + n.w_dst[l] + lane, (size_t)n.pitch[l], in, din);
      o[lane] = last ? z : blpo_activate(n.activation, z);
    }
    __syncthreads();
    in = o;
  }
}

// The launch bound's minimum of one block per multiprocessor keeps ptxas at
// the 80 registers it chose before the bound was added; with the thread bound
// alone it caps the kernel at 64 and spills.
__global__ void __launch_bounds__(kTargetThreads, 1)
    rollout_fused_kernel(blpo_dims d, fused_net an, fused_net cn, int W, int epb,
                         const float *__restrict__ actor_params,
                         const float *__restrict__ critic_params, int t0, int t1, blpo_counter ctr,
                         blpo_env_state *__restrict__ states, float *__restrict__ obs,
                         float *__restrict__ act, float *__restrict__ logp,
                         float *__restrict__ value, float *__restrict__ reward,
                         float *__restrict__ done, float *__restrict__ ep_ret,
                         float *__restrict__ final_obs, float *__restrict__ trunc) {
  blpo_pdl_enter();
  extern __shared__ float sm[];
  const int p = blockIdx.y;
  const int O = d.obs_dim, A = d.act_dim;
  const size_t PN = (size_t)d.P * d.N;
  float *sa = sm, *sc = sm + an.smem_floats, *envs = sc + cn.smem_floats;
  const float *ap = actor_params + (size_t)p * an.num_params;
  stage(an, ap, sa);
  stage(cn, critic_params + (size_t)p * cn.num_params, sc);

  const int g = threadIdx.x / W, lane = threadIdx.x % W;
  const int i = blockIdx.x * epb + g;
  const bool active = i < d.N;
  const size_t e = (size_t)p * d.N + (active ? i : 0);
  float *b0 = envs + (size_t)g * (2 * W + kEnvExtra), *b1 = b0 + W, *xo = b1 + W, *yh = xo + 8;
  if (active && lane < O)
    xo[lane] = obs[((size_t)t0 * PN + e) * O + lane];
  blpo_env_state st = {};
  if (active && lane == 0)
    st = states[e];
  const blpo_key reset_key = blpo_env_reset_key(d.seed, p, i);
  const blpo_key action_key = blpo_action_key(d.seed, p, i);
  const uint64_t c0 = (uint64_t)blpo_counter_at(ctr, blpo_clock_read(ctr.clock));
  __syncthreads();

  for (int t = t0; t < t1; t++) {
    forward(an, sa, xo, b0, b1, yh, lane, active);
    forward(cn, sc, xo, b0, b1, yh + 4, lane, active);
    if (active && lane == 0) {
      const size_t r = (size_t)t * PN + e; // row of the (T,P,N) buffers
      value[r] = yh[4];
      float a[BLPO_ENV_MAX_ACT];
      logp[r] = blpo_policy_draw(d.discrete, d.num_actions, A, yh, ap + an.num_mlp, action_key,
                                 c0 + (uint64_t)t, a);
      for (int k = 0; k < A; k++)
        act[r * A + k] = a[k];
      float o[BLPO_ENV_MAX_OBS], fo[BLPO_ENV_MAX_OBS], rew, eret;
      int term, tr, len;
      blpo_env_step(d.env_id, &st, a, reset_key, o, &rew, &term, &tr, &eret, &len,
                    final_obs != nullptr ? fo : nullptr);
      for (int k = 0; k < O; k++) {
        obs[(r + PN) * O + k] = o[k];
        xo[k] = o[k]; // the next step's input, without a trip through global memory
      }
      reward[r] = rew;
      done[r] = (term || tr) ? 1.0f : 0.0f;
      ep_ret[r] = eret;
      if (final_obs != nullptr)
        for (int k = 0; k < O; k++)
          final_obs[e * O + k] = fo[k];
      if (trunc != nullptr)
        trunc[e] = tr ? 1.0f : 0.0f;
    }
    __syncthreads();
  }
  if (active && lane == 0)
    states[e] = st;
}

int cuda_rollout_fused_supported(blpo_backend *be, const blpo_mlp *actor, const blpo_mlp *critic) {
  (void)be;
  if (!blpo_fused_widths_fit(actor) || !blpo_fused_widths_fit(critic))
    return 0;
  // the per-env shared slots: obs 8 floats, actor head 4, value 1
  if (actor->dims[0] > 8 || actor->dims[actor->num_layers] > 4 ||
      critic->dims[critic->num_layers] != 1)
    return 0;
  // the attribute is set to the device's limit (not to this network's need,
  // which another trainer's could exceed); here, outside any graph capture
  const int room = blpo_cuda_smem_room((const void *)rollout_fused_kernel, "rollout_fused_kernel");
  fused_shape s = shape_of(actor, critic);
  if (s.smem_bytes > (size_t)room)
    return 0;
  return 2;
}

void cuda_rollout_fused(blpo_backend *be, const blpo_dims *d, const blpo_mlp *actor,
                        const float *actor_params, const blpo_mlp *critic,
                        const float *critic_params, int t0, int t1, blpo_counter counter,
                        blpo_env_state *states, float *obs, float *act, float *logp, float *value,
                        float *reward, float *done, float *ep_ret, float *final_obs, float *trunc) {
  if (d->P <= 0 || d->N <= 0 || t1 <= t0)
    return;
  fused_shape s = shape_of(actor, critic);
  dim3 grid((unsigned)((d->N + s.epb - 1) / s.epb), (unsigned)d->P);
  blpo_launch(blpo_cuda(be), rollout_fused_kernel, grid, s.threads, s.smem_bytes, *d,
              net_layout(actor), net_layout(critic), s.W, s.epb, actor_params, critic_params, t0,
              t1, counter, states, obs, act, logp, value, reward, done, ep_ret, final_obs, trunc);
}

} // namespace

void blpo_cuda_install_rollout_fused(blpo_backend *be) {
  be->rollout_fused_supported = cuda_rollout_fused_supported;
  be->rollout_fused = cuda_rollout_fused;
}
