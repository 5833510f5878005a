/* The CUDA backend's mlp_forward_many and mlp_backward_many as block
 * programs (blpo_fwd_set, blpo_bwd_set and blpo_bwd_set_reduce in
 * include/blpo/ppo_blocks.h), run on the host by the blocks backend
 * (tests/blocks_backend.h), against the CPU backend's ops: sets of two and
 * three passes of a 64-64 critic and an actor on row counts with several
 * blocks per agent and with one (whose rows program writes the gradient
 * itself), with add_to_prev in each combination a pass and its predecessor
 * can be in: both reduced, only the first, only the second, neither (which
 * the set refuses: each pass on its own and the sum as axpy), and a chain
 * of two sums, with its middle pass reduced and with one block (refused:
 * the middle gradient would be read and added to in one launch, the race
 * this test's order check found). One and three agents.
 *
 * Outputs poisoned with NaN first (the two sides with different payloads);
 * the gradients to 1e-5 of their norms per pass (the rows are summed in
 * other orders), the activations to the same; threads and blocks in
 * forward, reverse and strided order, the same bits each time. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blocks_backend.h"
#include "blpo/mlp.h"

typedef struct {
  const char *name;
  int P, count;
  int n[3], actor[3], add[3]; /* per pass: rows, whether the actor's network, add_to_prev */
  int fused;                  /* whether the set should take the two kernels */
} many_case;

static const many_case kCases[] = {
    {"both passes reduced", 1, 2, {300, 200}, {0, 0}, {0, 1}, 1},
    {"the second with one block", 3, 2, {300, 37}, {0, 0}, {0, 1}, 1},
    {"the first with one block", 1, 2, {37, 300}, {0, 0}, {0, 1}, 1},
    {"both with one block (axpy)", 3, 2, {20, 30}, {0, 0}, {0, 1}, 0},
    {"actor, then v over the minibatch and the last observations",
     3,
     3,
     {300, 300, 37},
     {1, 0, 0},
     {0, 0, 1},
     1},
    {"a chain of two sums", 1, 3, {100, 80, 200}, {0, 0, 0}, {0, 1, 1}, 1},
    {"a chain through a pass of one block (refused: axpy)",
     1,
     3,
     {100, 50, 200},
     {0, 0, 0},
     {0, 1, 1},
     0},
    {"no sums", 1, 3, {100, 37, 200}, {1, 0, 0}, {0, 0, 0}, 1},
    {"a chain from a pass of one block", 3, 3, {37, 300, 200}, {0, 0, 0}, {0, 1, 1}, 1},
    {"a chain into a pass of one block", 1, 3, {300, 200, 37}, {0, 0, 0}, {0, 1, 1}, 1},
};

typedef struct {
  float *x, *acts, *dy, *grad, *scratch;
} pass_bufs;

static void check_case(const many_case *c, blpo_backend *cpu, blpo_backend *blk) {
  blpo_mlp critic, actor;
  int h[2] = {64, 64};
  blpo_mlp_init_shape(&critic, 4, h, 2, 1, BLPO_ACT_TANH, 0);
  blpo_mlp_init_shape(&actor, 4, h, 2, 2, BLPO_ACT_TANH, 0);
  const size_t P = (size_t)c->P;
  float *cw = test_alloc_floats(P * critic.num_params),
        *aw = test_alloc_floats(P * actor.num_params);
  for (size_t i = 0; i < P * critic.num_params; i++)
    cw[i] = (float)(0.3 * nrand());
  for (size_t i = 0; i < P * actor.num_params; i++)
    aw[i] = (float)(0.3 * nrand());
  pass_bufs side[2][3];
  blpo_mlp_pass fw[2][3];
  blpo_mlp_grad_pass bw[2][3];
  for (int t = 0; t < c->count; t++) {
    const blpo_mlp *m = c->actor[t] ? &actor : &critic;
    const size_t n = (size_t)c->n[t], na = P * n * m->act_floats_per_row;
    const size_t ny = P * n * m->dims[m->num_layers], ns = P * 2 * n * m->max_width;
    for (int s = 0; s < 2; s++) {
      pass_bufs *b = &side[s][t];
      b->x = test_alloc_floats(P * n * 4), b->acts = test_alloc_floats(na);
      b->dy = test_alloc_floats(ny), b->grad = test_alloc_floats(P * m->num_params);
      b->scratch = test_alloc_floats(ns);
      test_poison_nan(b->acts, na, 1 + s);
      test_poison_nan(b->grad, P * m->num_params, 1 + s);
      test_poison_nan(b->scratch, ns, 1 + s);
    }
    for (size_t i = 0; i < P * n * 4; i++)
      side[0][t].x[i] = (float)nrand();
    for (size_t i = 0; i < ny; i++)
      side[0][t].dy[i] = (float)nrand();
    memcpy(side[1][t].x, side[0][t].x, P * n * 4 * sizeof(float));
    memcpy(side[1][t].dy, side[0][t].dy, ny * sizeof(float));
    for (int s = 0; s < 2; s++) {
      const float *w = c->actor[t] ? aw : cw;
      pass_bufs *b = &side[s][t];
      fw[s][t] = (blpo_mlp_pass){m, w, b->x, c->n[t], b->acts};
      bw[s][t] =
          (blpo_mlp_grad_pass){m, w, b->x, c->n[t], b->acts, b->dy, b->grad, b->scratch, c->add[t]};
    }
  }
  blpo_bwd_set set;
  CHECK(blpo_bwd_set_init(&set, c->P, c->count, bw[1], BLK_SMEM, 0) == c->fused,
        "%s: the set %s the two kernels", c->name, c->fused ? "does not take" : "takes");
  cpu->mlp_forward_many(cpu, c->P, c->count, fw[0]);
  blk->mlp_forward_many(blk, c->P, c->count, fw[1]);
  /* the same activations on both sides for the backward passes */
  for (int t = 0; t < c->count; t++) {
    const blpo_mlp *m = c->actor[t] ? &actor : &critic;
    size_t na = P * (size_t)c->n[t] * m->act_floats_per_row;
    double e = test_rel_norm_err(side[1][t].acts, side[0][t].acts, NULL, na);
    CHECK(e < 1e-5, "%s: pass %d activations differ by %.3e", c->name, t, e);
    memcpy(side[1][t].acts, side[0][t].acts, na * sizeof(float));
  }
  /* the CPU without the sums, to see that they change something */
  float *plain[3] = {NULL, NULL, NULL};
  {
    blpo_mlp_grad_pass nb[3];
    for (int t = 0; t < c->count; t++) {
      const blpo_mlp *m = c->actor[t] ? &actor : &critic;
      plain[t] = test_alloc_floats(P * m->num_params);
      nb[t] = bw[0][t];
      nb[t].grad = plain[t], nb[t].add_to_prev = 0;
    }
    cpu->mlp_backward_many(cpu, c->P, c->count, nb);
  }
  cpu->mlp_backward_many(cpu, c->P, c->count, bw[0]);
  blk->mlp_backward_many(blk, c->P, c->count, bw[1]);
  for (int t = 0; t < c->count; t++) {
    const blpo_mlp *m = c->actor[t] ? &actor : &critic;
    double e = test_rel_norm_err(side[1][t].grad, side[0][t].grad, NULL, P * m->num_params);
    CHECK(e < 1e-5, "%s: pass %d gradient differs by %.3e of its norm", c->name, t, e);
    char what[160];
    snprintf(what, sizeof what, "%s: pass %d gradient", c->name, t);
    emu_same(what, side[1][t].grad, P * m->num_params * sizeof(float));
  }
  /* the sums are there: where pass t adds to pass t - 1, the block
   * programs' pass t - 1 is not that pass's own gradient (plain) */
  for (int t = 1; t < c->count; t++)
    if (c->add[t]) {
      double e = test_rel_norm_err(side[1][t - 1].grad, plain[t - 1], NULL, P * critic.num_params);
      CHECK(e > 1e-2, "%s: pass %d's gradient is its own alone (%.2e off it): the sum is missing",
            c->name, t - 1, e);
    }
  for (int t = 0; t < c->count; t++)
    free(plain[t]);
  for (int t = 0; t < c->count; t++)
    for (int s = 0; s < 2; s++) {
      pass_bufs *b = &side[s][t];
      free(b->x), free(b->acts), free(b->dy), free(b->grad), free(b->scratch);
    }
  free(cw), free(aw);
}

/* Sets blpo_bwd_set_init must refuse: a sum between networks of other
 * sizes, or into or from one with extra parameters (its axpy covers them,
 * the reduce does not). */
static void check_refusals(void) {
  blpo_mlp a, b, e1, e2;
  int h[2] = {64, 64}, g[2] = {64, 32};
  blpo_mlp_init_shape(&a, 4, h, 2, 1, BLPO_ACT_TANH, 0);
  blpo_mlp_init_shape(&b, 4, g, 2, 1, BLPO_ACT_TANH, 0);
  blpo_mlp_init_shape(&e1, 4, h, 2, 1, BLPO_ACT_TANH, 1);
  blpo_mlp_init_shape(&e2, 4, h, 2, 1, BLPO_ACT_TANH, 1);
  static float buf[1]; /* never read: only the layouts are chosen */
  const blpo_mlp *pairs[][2] = {{&a, &b}, {&e1, &e2}};
  const char *what[] = {"networks of other sizes", "networks with extra parameters"};
  for (int k = 0; k < 2; k++) {
    blpo_mlp_grad_pass p[2] = {{pairs[k][0], buf, buf, 300, buf, buf, buf, buf, 0},
                               {pairs[k][1], buf, buf, 300, buf, buf, buf, buf, 1}};
    blpo_bwd_set s;
    CHECK(!blpo_bwd_set_init(&s, 1, 2, p, BLK_SMEM, 0), "a sum between %s is refused", what[k]);
    p[1].add_to_prev = 0;
    CHECK(blpo_bwd_set_init(&s, 1, 2, p, BLK_SMEM, 0), "the same passes without the sum are taken");
  }
}

/* The sums against the ops they stand for: the passes one at a time, then
 * axpy, on the CPU (the reference for the fused sums above). */
static void check_cpu_semantics(blpo_backend *cpu) {
  blpo_mlp m;
  int h[2] = {16, 8};
  blpo_mlp_init_shape(&m, 4, h, 2, 1, BLPO_ACT_TANH, 0);
  const int P = 2, n0 = 30, n1 = 11;
  float *w = test_alloc_floats(P * m.num_params);
  for (size_t i = 0; i < P * m.num_params; i++)
    w[i] = (float)(0.3 * nrand());
  float *x[2], *acts[2], *dy[2], *scr[2], *g[2], *want[2];
  const int ns[2] = {n0, n1};
  for (int t = 0; t < 2; t++) {
    x[t] = test_alloc_floats((size_t)P * ns[t] * 4);
    for (int i = 0; i < P * ns[t] * 4; i++)
      x[t][i] = (float)nrand();
    acts[t] = test_alloc_floats((size_t)P * ns[t] * m.act_floats_per_row);
    dy[t] = test_alloc_floats((size_t)P * ns[t]);
    for (int i = 0; i < P * ns[t]; i++)
      dy[t][i] = (float)nrand();
    scr[t] = test_alloc_floats((size_t)P * 2 * ns[t] * m.max_width);
    g[t] = test_alloc_floats(P * m.num_params);
    want[t] = test_alloc_floats(P * m.num_params);
    cpu->mlp_forward(cpu, &m, P, w, x[t], ns[t], acts[t]);
    cpu->mlp_backward(cpu, &m, P, w, x[t], ns[t], acts[t], dy[t], want[t], scr[t]);
  }
  cpu->axpy(cpu, P, m.num_params, 1.0f, want[1], want[0]);
  blpo_mlp_grad_pass b[2] = {{&m, w, x[0], n0, acts[0], dy[0], g[0], scr[0], 0},
                             {&m, w, x[1], n1, acts[1], dy[1], g[1], scr[1], 1}};
  cpu->mlp_backward_many(cpu, P, 2, b);
  for (int t = 0; t < 2; t++)
    CHECK(!memcmp(g[t], want[t], P * m.num_params * sizeof(float)),
          "cpu: add_to_prev is not mlp_backward twice and axpy (pass %d)", t);
  for (int t = 0; t < 2; t++)
    free(x[t]), free(acts[t]), free(dy[t]), free(scr[t]), free(g[t]), free(want[t]);
  free(w);
}

int main(void) {
  blpo_backend *cpu = blpo_backend_cpu_create(1);
  check_cpu_semantics(cpu);
  check_refusals();
  const uint64_t seed = g_rng;
  for (int o = 0; o < EMU_ORDERS; o++) {
    emu_begin_order(o, seed);
    blpo_backend *blk = blocks_backend_create();
    for (size_t k = 0; k < sizeof(kCases) / sizeof(kCases[0]); k++)
      check_case(&kCases[k], cpu, blk);
    blk->destroy(blk);
  }
  emu_seen_free();
  cpu->destroy(cpu);
  return test_summary("test_mlp_many_blocks");
}
