/* The CUDA backend's fused forward pass (mlp_forward for networks that fit
 * in shared memory, kernels/mlp_cuda.cu) as its block program blpo_fwd
 * (include/blpo/ppo_blocks.h), run on the host thread by thread with 32 and
 * 8 rows per block and shared memory poisoned per block, against the CPU
 * backend's mlp_forward: every activation of every layer, the outputs
 * poisoned with NaN first so that one left unwritten fails. Networks: tanh
 * and relu, one and two hidden layers of uneven widths, a log_std extra
 * part, 1 to 3 agents, 1 to 2100 rows. Tolerance 1e-5 (1 + |cpu|) per value:
 * the two sum each neuron in other orders; a wrong index is off by O(1). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blpo/backend.h"
#include "blpo/mlp.h"
#include "blpo/ppo_blocks.h"
#include "test_util.h"

typedef struct {
  const char *name;
  int in, nh, hidden[2], out, act, extra, P, n;
} fwd_case;

static float *alloc_f(size_t count) {
  float *p = malloc((count ? count : 1) * sizeof(float));
  if (!p) {
    fprintf(stderr, "out of memory\n");
    exit(2);
  }
  return p;
}

static void poison(float *x, size_t count) {
  for (size_t i = 0; i < count; i++)
    x[i] = NAN;
}

static void check_case(blpo_backend *be, const fwd_case *c, int R) {
  blpo_mlp m;
  blpo_mlp_init_shape(&m, c->in, c->hidden, c->nh, c->out, c->act, c->extra);
  size_t np = (size_t)c->P * m.num_params, nx = (size_t)c->P * c->n * c->in;
  size_t na = (size_t)c->P * c->n * m.act_floats_per_row;
  float *params = alloc_f(np), *x = alloc_f(nx), *cpu = alloc_f(na), *blk = alloc_f(na);
  for (size_t i = 0; i < np; i++)
    params[i] = (float)(0.4 * nrand());
  for (size_t i = 0; i < nx; i++)
    x[i] = (float)nrand();
  poison(cpu, na);
  poison(blk, na);
  be->mlp_forward(be, &m, c->P, params, x, c->n, cpu);
  blpo_fwd_args a;
  int sf = blpo_fwd_layout_init(&a.lay, &m, c->n, R);
  a.params = params, a.x = x, a.acts = blk;
  float *sm = alloc_f((size_t)sf);
  for (int p = 0; p < c->P; p++)
    for (int b = 0; b < a.lay.blocks; b++) {
      poison(sm, (size_t)sf);
      for (int ph = 0; ph < blpo_fwd_phases(&a.lay); ph++)
        for (int t = 0; t < BLPO_MBF_THREADS; t++)
          blpo_fwd(&a, p, b, t, ph, sm);
    }
  size_t bad = 0, first = 0;
  for (size_t i = 0; i < na; i++)
    if (!(fabsf(blk[i] - cpu[i]) <= 1e-5f * (1.0f + fabsf(cpu[i]))) && bad++ == 0)
      first = i;
  CHECK(bad == 0, "%s, %d rows per block: %zu of %zu activations differ (first [%zu]: %g, cpu %g)",
        c->name, R, bad, na, first, (double)blk[first], (double)cpu[first]);
  free(params);
  free(x);
  free(cpu);
  free(blk);
  free(sm);
}

int main(void) {
  blpo_backend *be = blpo_backend_cpu_create(1);
  const fwd_case cases[] = {
      {"4-64-64-2 tanh, 4096 rows", 4, 2, {64, 64}, 2, BLPO_ACT_TANH, 0, 1, 4096},
      {"6-37-19-3 relu, 2 agents x 1000 rows", 6, 2, {37, 19}, 3, BLPO_ACT_RELU, 0, 2, 1000},
      {"3-37-19-1 tanh + log_std, 3 agents x 77 rows", 3, 2, {37, 19}, 1, BLPO_ACT_TANH, 1, 3, 77},
      {"5-19-1 relu (1 hidden), 2100 rows", 5, 1, {19, 0}, 1, BLPO_ACT_RELU, 0, 1, 2100},
      {"2-24-24-3 relu, 2 agents x 1 row", 2, 2, {24, 24}, 3, BLPO_ACT_RELU, 0, 2, 1},
  };
  const int rows[] = {BLPO_MBF_ROWS, 8};
  for (size_t r = 0; r < sizeof(rows) / sizeof(rows[0]); r++)
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++)
      check_case(be, &cases[k], rows[r]);
  /* the choice: 64-64 takes 32 rows per block on 227 KiB; 512-384 does not fit */
  blpo_mlp m, wide;
  int h[2] = {64, 64}, hw[2] = {512, 384};
  blpo_mlp_init_shape(&m, 4, h, 2, 2, BLPO_ACT_TANH, 0);
  blpo_mlp_init_shape(&wide, 4, hw, 2, 2, BLPO_ACT_TANH, 0);
  blpo_fwd_layout y;
  CHECK(blpo_fwd_choose(&y, &m, 1, 4096, 227 * 1024) == 32, "64-64: 32 rows per block");
  CHECK(blpo_fwd_choose(&y, &wide, 1, 4096, 227 * 1024) == 0, "512-384: the cuBLAS path");
  be->destroy(be);
  return test_summary("test_forward_blocks");
}
