/* Profile mode's phase timing through the backend's timer (the seam's
 * timer_mark / timer_seconds, CUDA events on a GPU): the CPU backend with a
 * counting timer in place of its clock, so that every interval between two
 * stamps is worth exactly 1 and each read can be checked.
 *   - every read is of two consecutive stamps of the ring (stamp ids one
 *     apart), also when the ring fills within an iteration (BLPO marks more
 *     than BLPO_TIMER_SLOTS phases per iteration here);
 *   - the phases' total is every interval but the one per iteration that
 *     falls between iterations: marks - iterations;
 *   - PPO's four phases come once per iteration each; BLPO's per-minibatch
 *     phases all get time.
 * And the real CPU clock: phases of a short run are positive and finite. */
#include <string.h>

#include "blpo/config_load.h"
#include "blpo/trainer.h"
#include "test_util.h"

static long stamp_id[BLPO_TIMER_SLOTS], marks;
static int bad_reads;

static void count_mark(blpo_backend *be, int slot) {
  (void)be;
  CHECK(slot >= 0 && slot < BLPO_TIMER_SLOTS, "slot %d", slot);
  stamp_id[slot] = marks++;
}

static double count_seconds(blpo_backend *be, int a, int b) {
  (void)be;
  if (b != (a + 1) % BLPO_TIMER_SLOTS || stamp_id[b] - stamp_id[a] != 1)
    bad_reads++;
  return (double)(stamp_id[b] - stamp_id[a]);
}

static blpo_config small_config(int algo) {
  blpo_config c;
  blpo_config_defaults(&c);
  snprintf(c.env_id, sizeof(c.env_id), "CartPole-v1");
  c.algo = algo;
  c.num_envs = 8;
  c.num_steps = 16;
  c.num_minibatches = 4;
  c.total_steps = 8 * 16 * 4;
  c.seed = 3;
  return c;
}

static void run_counted(int algo, const char *name) {
  blpo_config c = small_config(algo);
  if (algo == BLPO_ALGO_BLPO) { /* 4 epochs x 16 minibatches x 7 phases: the ring fills */
    c.num_envs = 32;
    c.num_minibatches = 16;
    c.total_steps = 32 * 16 * 4;
  }
  blpo_backend *be = blpo_backend_cpu_create(1);
  be->timer_mark = count_mark;
  be->timer_seconds = count_seconds;
  char err[256];
  blpo_trainer *tr = blpo_trainer_create(&c, be, err, sizeof(err));
  CHECK(tr != NULL, "%s: %s", name, err);
  if (!tr)
    return;
  blpo_iter_metrics m[1];
  blpo_trainer_iterate(tr, m); /* not profiled: no stamps */
  CHECK(marks == 0, "%s: %ld stamps outside profile mode", name, marks);
  blpo_trainer_set_profile(tr, 1);
  const int iters = 3;
  bad_reads = 0;
  for (int it = 0; it < iters; it++)
    blpo_trainer_iterate(tr, m);
  double ph[BLPO_PHASE_COUNT], total = 0;
  blpo_trainer_phase_seconds(tr, ph);
  for (int i = 0; i < BLPO_PHASE_COUNT; i++)
    total += ph[i];
  CHECK(bad_reads == 0, "%s: %d reads of non-consecutive stamps", name, bad_reads);
  CHECK(total == (double)(marks - iters), "%s: phases hold %g intervals of %ld stamps", name, total,
        marks);
  CHECK(ph[BLPO_PHASE_ROLLOUT] == iters && ph[BLPO_PHASE_TARGETS] == iters &&
            ph[BLPO_PHASE_METRICS] == iters,
        "%s: rollout %g targets %g metrics %g", name, ph[BLPO_PHASE_ROLLOUT],
        ph[BLPO_PHASE_TARGETS], ph[BLPO_PHASE_METRICS]);
  if (algo == BLPO_ALGO_PPO) {
    CHECK(ph[BLPO_PHASE_PPO] == iters, "ppo: update %g", ph[BLPO_PHASE_PPO]);
  } else {
    CHECK(marks / iters > BLPO_TIMER_SLOTS, "blpo: %ld stamps per iteration: the ring never filled",
          marks / iters);
    const int per_mb[] = {BLPO_PHASE_GATHER,    BLPO_PHASE_NESTED,     BLPO_PHASE_ACTOR_LOSS,
                          BLPO_PHASE_HVP_ROWS,  BLPO_PHASE_CORE_SOLVE, BLPO_PHASE_MIXED,
                          BLPO_PHASE_ACTOR_STEP};
    for (size_t i = 0; i < sizeof(per_mb) / sizeof(per_mb[0]); i++)
      CHECK(ph[per_mb[i]] >= iters, "blpo: %s got %g intervals", blpo_phase_names[per_mb[i]],
            ph[per_mb[i]]);
  }
  printf("test_phase_timer: %s: %ld stamps, %g intervals charged\n", name, marks, total);
  marks = 0;
  blpo_trainer_destroy(tr);
  be->destroy(be);
}

static void run_clock(void) {
  blpo_config c = small_config(BLPO_ALGO_BLPO);
  blpo_backend *be = blpo_backend_cpu_create(1);
  char err[256];
  blpo_trainer *tr = blpo_trainer_create(&c, be, err, sizeof(err));
  CHECK(tr != NULL, "clock: %s", err);
  if (!tr)
    return;
  blpo_iter_metrics m[1];
  blpo_trainer_set_profile(tr, 1);
  blpo_trainer_iterate(tr, m);
  double ph[BLPO_PHASE_COUNT];
  blpo_trainer_phase_seconds(tr, ph);
  CHECK(ph[BLPO_PHASE_ROLLOUT] > 0 && ph[BLPO_PHASE_HVP_ROWS] > 0 && ph[BLPO_PHASE_NESTED] > 0,
        "clock: rollout %g hvp_rows %g nested %g", ph[BLPO_PHASE_ROLLOUT], ph[BLPO_PHASE_HVP_ROWS],
        ph[BLPO_PHASE_NESTED]);
  for (int i = 0; i < BLPO_PHASE_COUNT; i++)
    CHECK(ph[i] >= 0 && ph[i] < 60, "clock: %s %g s", blpo_phase_names[i], ph[i]);
  blpo_trainer_destroy(tr);
  be->destroy(be);
}

int main(void) {
  run_counted(BLPO_ALGO_PPO, "ppo");
  run_counted(BLPO_ALGO_BLPO, "blpo");
  run_clock();
  return test_summary("test_phase_timer");
}
