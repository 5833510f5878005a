/* Checkpoints: the trainer's state as a safetensors file plus metadata, and
 * the checks that make resume refuse what it cannot continue exactly. */
#ifndef BLPO_CHECKPOINT_H
#define BLPO_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "safetensors.h"
#include "trainer.h"

#define BLPO_CHECKPOINT_FILE "checkpoint.safetensors"
#define BLPO_CHECKPOINT_FORMAT "blpo-gpu-checkpoint"
#define BLPO_CHECKPOINT_VERSION 1
#define BLPO_STATE_MAX_TENSORS 64

/* Host copies of the state tensors (owned; blpo_state_free releases them). */
typedef struct {
  blpo_st_tensor t[BLPO_STATE_MAX_TENSORS];
  int n;
} blpo_state;

int blpo_trainer_export_state(blpo_trainer *tr, blpo_state *s);
void blpo_state_free(blpo_state *s);
/* Validates every tensor's presence, dtype and shape against this trainer
 * before changing anything; 0 or -1 with a message. */
int blpo_trainer_import_state(blpo_trainer *tr, const blpo_st_file *f, char *err, size_t errlen);
int64_t blpo_trainer_iteration(const blpo_trainer *tr);
/* Testing hook (run.debug_nan_iteration): fills the critic with NaN. */
void blpo_trainer_debug_poison_critic(blpo_trainer *tr);

/* FNV-1a hash of the effective config: one "path=value" line per key whose
 * value differs from its default, in the table's order. The run.* keys a
 * resume may change (total_steps, out_dir, name, log_every, threads,
 * checkpoint_every, debug_nan_iteration, cuda_graph, precision, pdl,
 * fused_rollout, debug_emulate_replay) are left out. Keys at their defaults
 * are left out so that a build which adds a key, at a default that keeps
 * the old behaviour, still resumes the runs of older builds (hashing the
 * whole YAML refused them as "config changed"). */
uint64_t blpo_config_hash(const blpo_config *c);

/* Writes RUN_DIR/checkpoint.safetensors atomically; extra metadata such as
 * the wall time so far. 0 or -1 with a message. */
int blpo_checkpoint_save(blpo_trainer *tr, const blpo_config *c, const char *run_dir,
                         double wall_time, char *err, size_t errlen);
/* Reads and checks a checkpoint against the config (format and version,
 * config hash, algorithm, env, shapes) and loads it into the trainer. On
 * success *wall_time is the saved wall time. 0 or -1 with a message naming
 * the class of problem. */
int blpo_checkpoint_load(blpo_trainer *tr, const blpo_config *c, const char *path,
                         double *wall_time, char *err, size_t errlen);

#endif
