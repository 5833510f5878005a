/* Command line of blpo-gpu. Parsing only records what was given; the
 * config itself is built by blpo_config_from_cli so that --set and --seed
 * go through the same checks as the YAML file. */
#ifndef BLPO_CLI_H
#define BLPO_CLI_H

#include <stddef.h>
#include <stdio.h>

#include "config_load.h"

#define BLPO_CLI_MAX_SETS 64

typedef enum { BLPO_DEVICE_AUTO = 0, BLPO_DEVICE_CPU = 1, BLPO_DEVICE_CUDA = 2 } blpo_device;

typedef struct {
  const char *config;                  /* --config FILE as given; NULL if absent */
  const char *sets[BLPO_CLI_MAX_SETS]; /* --set KEY=VALUE, in command-line order */
  int num_sets;
  const char *seed;    /* --seed N as given; NULL if absent */
  const char *out_dir; /* --out DIR: the exact run directory; NULL if absent */
  const char *resume;  /* --resume RUN_DIR; NULL if absent */
  int device;          /* blpo_device from --device (default auto) */
  int force;           /* --force: allow a non-empty --out directory */
  int quiet;           /* --quiet: no progress output */
  int print_config;    /* --print-config: print the effective config and exit */
  int help, version, help_config;
} blpo_cli;

/* Fills *out from argv (pointers into argv). Returns 0, or 2 after printing
 * one message plus "try 'blpo-gpu --help'" to stderr. --help, --version and
 * --help-config only set their flags (the caller prints and exits 0); without
 * one of them --config is required. */
int blpo_cli_parse(int argc, char **argv, blpo_cli *out);

void blpo_cli_print_help(FILE *f);

/* Finds a config file: as given if it exists; else (for a relative name)
 * in <dir of the executable>/../share/blpo-gpu/configs/, then
 * BLPO_INSTALL_CONFIG_DIR, then BLPO_SOURCE_CONFIG_DIR; at each place
 * NAME.yaml is tried too when NAME has no .yaml/.yml ending. Writes the path
 * found to out and returns 0; otherwise prints the places tried and
 * returns 2. */
int blpo_resolve_config_path(const char *given, char *out, size_t n);

/* The directory of the running executable (from /proc/self/exe) into out:
 * 0, or -1 with out = "" when it is unknown or does not fit. */
int blpo_exe_dir(char *out, size_t n);

/* defaults -> resolved --config file -> each --set in order -> --seed ->
 * validate. src->file holds the resolved config path afterwards. Returns 0,
 * or 2 with the message already printed. Nothing is written to disk. */
int blpo_config_from_cli(const blpo_cli *cli, blpo_config *c, blpo_config_src *src);

#endif
