/* Loading, overriding, checking and writing blpo_config.
 *
 * One table (src/config_table.c) names every key with its type, range,
 * default and doc; the YAML loader, --set, the validator, the writer and
 * --help-config all read it, so they cannot disagree.
 *
 * Errors go to stderr as `WHERE:LINE:COL: message` (1-based) and the
 * functions return 2 (the process exit code for a usage error):
 *   - a config file:  `configs/x.yaml:7:13: ...`
 *   - --set:          `--set:K:COL: ...` where K is the ordinal (1-based) of
 *                     the --set among those applied so far (the --set options
 *                     read as a virtual file with one assignment per line) and
 *                     COL the column in the argument `key.path=value`
 *   - --seed:         `--seed:1:COL: ...`, COL counting in the flag's value
 * A cross-field error points at the involved key that was set last. */
#ifndef BLPO_CONFIG_LOAD_H
#define BLPO_CONFIG_LOAD_H

#include <stddef.h>
#include <stdio.h>

#include "config.h"

typedef enum {
  BLPO_KEY_INT,      /* int */
  BLPO_KEY_INT64,    /* int64_t */
  BLPO_KEY_FLOAT,    /* float */
  BLPO_KEY_BOOL,     /* int 0/1 */
  BLPO_KEY_STRING,   /* char[size] */
  BLPO_KEY_ENUM,     /* int index into names */
  BLPO_KEY_TRISTATE, /* int: BLPO_TRI_AUTO / OFF / ON */
  BLPO_KEY_INT_LIST  /* int[size] plus an int count at count_offset */
} blpo_key_type;

typedef struct {
  const char *path; /* dotted key, e.g. "env.num_envs" */
  blpo_key_type type;
  size_t offset;            /* offsetof(blpo_config, field) */
  size_t size;              /* sizeof the field (string: buffer; list: the array) */
  size_t count_offset;      /* int list: offsetof its length field */
  double min, max;          /* numbers and list elements; strings: min length */
  int min_exclusive;        /* 1: value must be > min */
  int list_min, list_max;   /* int list: allowed lengths */
  const char *const *names; /* enum: allowed names (NULL-terminated); index = value */
  const char *def;          /* default as YAML text: the only place defaults live */
  const char *doc;          /* one line for --help-config */
} blpo_config_key;

extern const blpo_config_key blpo_config_keys[];
extern const int blpo_config_num_keys;

#define BLPO_CONFIG_MAX_KEYS 64

/* Where a key got its value. origin 0 (zero-initialised) means the default. */
enum { BLPO_SRC_DEFAULT = 0, BLPO_SRC_FILE = 1, BLPO_SRC_SET = 2, BLPO_SRC_SEED = 3 };
typedef struct {
  int origin;
  int line, col; /* 1-based; for --set: line = the --set's ordinal */
} blpo_config_loc;

/* memset to 0 is a valid empty state (nothing loaded, everything default). */
typedef struct {
  char file[BLPO_PATH_MAX];                  /* the config file loaded, "" if none */
  int num_sets;                              /* --set assignments applied so far */
  blpo_config_loc key[BLPO_CONFIG_MAX_KEYS]; /* indexed like blpo_config_keys */
} blpo_config_src;

/* Every key at its default (see --help-config). */
void blpo_config_defaults(blpo_config *c);

/* Reads a YAML file of nested mappings (`env: {num_envs: 1024}`; dotted
 * keys such as `env.num_envs: 1024` are accepted at any level) over *c.
 * Reports every problem it finds; on error *c and *src are left unchanged.
 * src may be NULL. Returns 0 or 2. */
int blpo_config_load_file(blpo_config *c, blpo_config_src *src, const char *path);

/* Applies one `key.path=value`; value is a YAML scalar or flow collection
 * (`net.actor_hidden=[128,128]`; a section takes a mapping:
 * `algo.hypergrad={rank: 10, rho: 20}`). Same checks as the file. src may be
 * NULL (then every --set reports as ordinal 1). Returns 0 or 2. */
int blpo_config_apply_set(blpo_config *c, blpo_config_src *src, const char *assignment);

/* --seed N: run.seed=N with errors reported as `--seed:1:COL`. Returns 0 or 2. */
int blpo_config_apply_seed(blpo_config *c, blpo_config_src *src, const char *value);

/* Cross-field checks plus every key's own range (so a struct filled in by
 * code is checked too). src may be NULL. Returns 0 or 2. */
int blpo_config_validate(const blpo_config *c, const blpo_config_src *src);

/* Writes every key in nested form; loading the output gives back an
 * identical struct. Returns 0, or -1 if the stream reports an error. */
int blpo_config_write_yaml(const blpo_config *c, FILE *f);

/* The key table: type, range, default and doc of every key. */
void blpo_config_print_keys(FILE *f);

/* Writes key number `key`'s value as config.yaml has it (no newline); 0, or
 * -1 for a bad index or a write error. */
int blpo_config_write_value(FILE *f, const blpo_config *c, int key);
/* Index of a key in blpo_config_keys, or -1. */
int blpo_config_key_index(const char *path);

/* Prints `WHERE:LINE:COL: message` for key (as recorded in src) to stderr,
 * for checks made outside this module. A key left at its default reports at
 * the config file's 1:1 (or as `blpo-gpu: config:` when there is none). */
void blpo_config_report(const blpo_config_src *src, const char *key, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Prints text word-wrapped at width, continuation lines indented by indent;
 * col is the column the cursor is at. Ends with a newline. */
void blpo_fprint_wrapped(FILE *f, const char *text, int indent, int col, int width);

/* Levenshtein distance (for did-you-mean suggestions; strings cut at 127). */
int blpo_edit_distance(const char *a, const char *b);

#endif
