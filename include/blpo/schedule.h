/* Per-iteration values read when an operation runs, not when it is queued.
 *
 * Everything that changes from one training iteration to the next (the
 * action-sampling and permutation counters, Adam's step count and bias
 * corrections, the annealed learning rate) is a function of the iteration
 * index and of the operation's place inside the iteration. The trainer keeps
 * the index in a backend buffer (the clock) and passes each operation a
 * blpo_counter or blpo_adam_sched naming its place; the backend reads the
 * clock when the operation executes. So a queued iteration does not depend
 * on host state, and the CUDA backend can capture one iteration as a graph
 * and replay it with the clock advanced (kernels/graph_cuda.cu). Host and
 * device: the CPU backend and the kernels resolve them with the same code. */
#ifndef BLPO_SCHEDULE_H
#define BLPO_SCHEDULE_H

#include <math.h>
#include <stdint.h>

#include "hd.h"

/* value = iteration * per_iter + offset, the iteration read from *clock at
 * run time (a backend buffer; NULL reads as iteration 0). */
typedef struct {
  const int64_t *clock;
  int64_t per_iter;
  int64_t offset;
} blpo_counter;

BLPO_HD int64_t blpo_counter_at(blpo_counter c, int64_t iteration) {
  return iteration * c.per_iter + c.offset;
}

BLPO_HD int64_t blpo_clock_read(const int64_t *clock) { return clock ? *clock : 0; }

/* Per-step Adam constants (optax.adam; see optim.h). */
typedef struct {
  float lr; /* this step's learning rate (after any anneal) */
  float b1, b2, eps;
  float bc1; /* 1 - b1^t, t counting from 1 */
  float bc2; /* 1 - b2^t */
} blpo_adam_step_params;

/* One Adam call's schedule: its step t = step + 1 (step counts the updates
 * before this one) and, with anneal_iters > 0, lr * (1 - iteration /
 * anneal_iters), the linear anneal of PureJaxRL's ppo.py (per iteration,
 * in float, as the trainer always computed it). */
typedef struct {
  float lr, b1, b2, eps;
  int64_t anneal_iters;
  blpo_counter step;
} blpo_adam_sched;

/* A fixed learning rate and bias corrections for step t (tests, and the
 * fallback of schedules without a clock). */
BLPO_HD blpo_adam_sched blpo_adam_fixed(float lr, float b1, float b2, float eps, int64_t t) {
  blpo_adam_sched s;
  s.lr = lr;
  s.b1 = b1;
  s.b2 = b2;
  s.eps = eps;
  s.anneal_iters = 0;
  s.step.clock = 0;
  s.step.per_iter = 0;
  s.step.offset = t - 1;
  return s;
}

/* The step constants at `iteration`. The bias corrections are rounded once
 * from double (b^t in double is within an ulp on glibc and CUDA alike), so
 * both backends get the same floats. */
BLPO_HD blpo_adam_step_params blpo_adam_resolve(blpo_adam_sched s, int64_t iteration) {
  blpo_adam_step_params p;
  double t = (double)(blpo_counter_at(s.step, iteration) + 1);
  float frac = s.anneal_iters > 0 ? 1.0f - (float)iteration / (float)s.anneal_iters : 1.0f;
  p.lr = s.lr * frac;
  p.b1 = s.b1;
  p.b2 = s.b2;
  p.eps = s.eps;
  p.bc1 = (float)(1.0 - pow((double)s.b1, t));
  p.bc2 = (float)(1.0 - pow((double)s.b2, t));
  return p;
}

#endif
