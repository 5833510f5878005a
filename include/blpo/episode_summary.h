/* What an iteration's metrics need from its rollout's episode returns, as one
 * small record per agent that a backend op (blpo_backend.episode_summary)
 * fills on the device, so that the host reads a few hundred bytes per agent
 * instead of the whole (T, P, N) array of returns. */
#ifndef BLPO_EPISODE_SUMMARY_H
#define BLPO_EPISODE_SUMMARY_H

#include <math.h>
#include <stdint.h>

#include "hd.h"

/* Finished episodes a summary keeps the returns of, the last ones: as many
 * as the trainer's ring of recent episodes holds. */
#define BLPO_EPISODE_TAIL 100

/* The episodes that ended during one rollout of one agent, taken in the
 * order they ended: step t first, then env i (eret (T, P, N) holds an
 * episode's return at the step it ended and NaN everywhere else). */
typedef struct {
  int32_t count;        /* episodes that ended */
  float mean, min, max; /* of their returns (the sum in double); NaN when count is 0 */
  /* The last min(count, BLPO_EPISODE_TAIL) returns, oldest first, ending at
   * the array's end: tail[BLPO_EPISODE_TAIL - kept + j] is the j-th of them;
   * the slots before those are NaN. */
  float tail[BLPO_EPISODE_TAIL];
} blpo_episode_summary;

/* Whether an eret element marks an episode's end. */
BLPO_HD int blpo_episode_ended(float ret) { return !isnan(ret); }

/* Returns kept in a summary's tail. */
BLPO_HD int blpo_episode_tail_kept(int32_t count) {
  return count < BLPO_EPISODE_TAIL ? (int)count : BLPO_EPISODE_TAIL;
}

/* Adds a summary's episodes to a ring of cap returns (cap <= BLPO_EPISODE_TAIL;
 * *head: the next slot written, *n: slots filled), leaving it as pushing
 * every one of the count episodes in order would: the ones before the tail
 * would all be overwritten, so they only move the head. */
static inline void blpo_episode_ring_add(float *ring, int cap, int *head, int *n,
                                         const blpo_episode_summary *s) {
  int kept = blpo_episode_tail_kept(s->count);
  int64_t skipped = (int64_t)s->count - kept;
  *head = (int)((*head + skipped % cap) % cap);
  for (int j = BLPO_EPISODE_TAIL - kept; j < BLPO_EPISODE_TAIL; j++) {
    ring[*head] = s->tail[j];
    *head = (*head + 1) % cap;
  }
  int64_t filled = (int64_t)*n + s->count;
  *n = filled < cap ? (int)filled : cap;
}

#endif
