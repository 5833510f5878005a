/* A training run: run directory, metrics CSV, progress, final summary. */
#ifndef BLPO_RUN_H
#define BLPO_RUN_H

#include "backend.h"
#include "config.h"

typedef struct {
  const char *config_path; /* the resolved config file (for the run name) */
  const char *out_dir;     /* exact run directory, or NULL for run.out_dir/<name>-<time> */
  int force;               /* allow an existing non-empty out_dir */
  int quiet;               /* no progress output */
  const char *resume;      /* continue the run in this directory from its checkpoint */
} blpo_run_opts;

/* Creates the run directory (or resumes one), trains, writes outputs.
 * Returns a process exit code: 0 on success, 1 on a runtime failure, 2 if
 * the run directory or its checkpoint cannot be used, 3 on a numerical fault
 * (NaN/Inf; the last good checkpoint is kept), 128 + signal after SIGINT or
 * SIGTERM (a checkpoint was written). Messages go to stderr. */
int blpo_run(const blpo_config *cfg, const blpo_run_opts *opts, blpo_backend *be);

/* Creates parent directories as needed (mkdir -p); 0 on success. */
int blpo_mkdirs(const char *path);

#endif
