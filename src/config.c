/* Config loading (libyaml document API), --set overrides, validation and
 * the effective-config writer, all driven by the key table in
 * src/config_table.c. See include/blpo/config_load.h for the error format. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "blpo/config_load.h"
#include "blpo/env.h"

#define MAX_ERRORS 20
#define MAX_PATH_LEN 256
#define MAX_FILE_BYTES (1 << 20)

/* ---- small helpers ---------------------------------------------------------------------- */

int blpo_edit_distance(const char *a, const char *b) {
  int row[128];
  size_t la = strlen(a), lb = strlen(b);
  if (la > 127)
    la = 127;
  if (lb > 127)
    lb = 127;
  for (size_t j = 0; j <= lb; j++)
    row[j] = (int)j;
  for (size_t i = 1; i <= la; i++) {
    int diag = row[0];
    row[0] = (int)i;
    for (size_t j = 1; j <= lb; j++) {
      int up = row[j];
      int best = diag + (a[i - 1] != b[j - 1]);
      if (up + 1 < best)
        best = up + 1;
      if (row[j - 1] + 1 < best)
        best = row[j - 1] + 1;
      row[j] = best;
      diag = up;
    }
  }
  return row[lb];
}

int blpo_config_key_index(const char *path) {
  for (int i = 0; i < blpo_config_num_keys; i++)
    if (strcmp(blpo_config_keys[i].path, path) == 0)
      return i;
  return -1;
}

/* "" is the root section; "algo" and "algo.hypergrad" are sections. */
static int is_section(const char *path) {
  size_t n = strlen(path);
  if (n == 0)
    return 1;
  for (int i = 0; i < blpo_config_num_keys; i++)
    if (strncmp(blpo_config_keys[i].path, path, n) == 0 && blpo_config_keys[i].path[n] == '.')
      return 1;
  return 0;
}

static const char *leaf_of(const char *path) {
  const char *d = strrchr(path, '.');
  return d ? d + 1 : path;
}

/* Quotes a user value for a message: at most 60 bytes, control characters escaped. */
static const char *quoted(char *buf, size_t n, const char *s, size_t len) {
  size_t o = 0;
  buf[o++] = '\'';
  for (size_t i = 0; i < len && o + 6 < n; i++) {
    unsigned char ch = (unsigned char)s[i];
    if (i >= 60) {
      o += (size_t)snprintf(buf + o, n - o, "...");
      break;
    }
    if (ch < 0x20 || ch == 0x7f)
      o += (size_t)snprintf(buf + o, n - o, "\\x%02x", ch);
    else
      buf[o++] = (char)ch;
  }
  buf[o++] = '\'';
  buf[o] = 0;
  return buf;
}

/* Best near match for an unknown key. Besides plain edit distance, the leaf
 * name alone is compared, because a right key in the wrong section
 * (`num_envs:` at the top level) is the commonest slip. */
static const char *suggest_key(const char *path) {
  const char *best = NULL;
  int best_score = 1 << 30;
  const char *leaf = leaf_of(path);
  for (int i = 0; i < blpo_config_num_keys; i++) {
    const char *k = blpo_config_keys[i].path;
    int s = blpo_edit_distance(path, k);
    int sl = blpo_edit_distance(leaf, leaf_of(k)) + 1;
    if (sl < s)
      s = sl;
    if (s < best_score) {
      best_score = s;
      best = k;
    }
  }
  int limit = (int)strlen(leaf) / 3;
  if (limit < 2)
    limit = 2;
  if (best && best_score <= limit)
    return best;
  /* `hidden` for `actor_hidden`: a fragment of a longer name. */
  if (strlen(leaf) >= 4)
    for (int i = 0; i < blpo_config_num_keys; i++)
      if (strstr(leaf_of(blpo_config_keys[i].path), leaf))
        return blpo_config_keys[i].path;
  return NULL;
}

/* ---- value text ------------------------------------------------------------------------- */

static int ieq(const char *a, const char *b) {
  for (; *a && *b; a++, b++)
    if (tolower((unsigned char)*a) != tolower((unsigned char)*b))
      return 0;
  return *a == *b;
}

/* YAML 1.1 booleans, which is what people write in YAML files. */
static int parse_bool(const char *s) {
  static const char *const t[] = {"true", "yes", "on"}, *const f[] = {"false", "no", "off"};
  for (int i = 0; i < 3; i++) {
    if (ieq(s, t[i]))
      return 1;
    if (ieq(s, f[i]))
      return 0;
  }
  return -1;
}

/* 0: ok; 1: not a number at all; 2: a number but not an integer; 3: too large. */
static int parse_int64(const char *s, int64_t *out) {
  if (!*s || isspace((unsigned char)*s))
    return 1;
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (*end == 0)
    return errno == ERANGE ? 3 : (*out = (int64_t)v, 0);
  /* 5e5 is how step counts get written; accept it when exactly integral. */
  errno = 0;
  double d = strtod(s, &end);
  if (*end != 0 || !isfinite(d))
    return 1;
  if (d != floor(d))
    return 2;
  if (fabs(d) > 9007199254740992.0)
    return 3;
  *out = (int64_t)d;
  return 0;
}

static int parse_double(const char *s, double *out) {
  if (!*s || isspace((unsigned char)*s))
    return 1;
  char *end;
  double d = strtod(s, &end);
  if (*end != 0 || !isfinite(d))
    return 1;
  *out = d;
  return 0;
}

static void range_text(const blpo_config_key *k, char *buf, size_t n) {
  if (k->min_exclusive)
    snprintf(buf, n, "> %.10g and <= %.10g", k->min, k->max);
  else
    snprintf(buf, n, "in [%.10g, %.10g]", k->min, k->max);
}

static void enum_list(const blpo_config_key *k, char *buf, size_t n, const char *sep) {
  size_t o = 0;
  buf[0] = 0;
  for (int i = 0; k->names[i] && o < n; i++)
    o += (size_t)snprintf(buf + o, n - o, "%s%s", i ? sep : "", k->names[i]);
}

/* What a value of k must look like, for "expected ..." messages. */
static const char *type_desc(const blpo_config_key *k, char *buf, size_t n) {
  switch (k->type) {
  case BLPO_KEY_INT:
  case BLPO_KEY_INT64:
    return "an integer";
  case BLPO_KEY_FLOAT:
    return "a number";
  case BLPO_KEY_BOOL:
    return "true or false";
  case BLPO_KEY_TRISTATE:
    return "one of auto, true, false";
  case BLPO_KEY_STRING:
    return "a string";
  case BLPO_KEY_INT_LIST:
    return "a list of integers such as [64, 64]";
  case BLPO_KEY_ENUM: {
    int o = snprintf(buf, n, "one of: ");
    enum_list(k, buf + o, n - (size_t)o, ", ");
    return buf;
  }
  }
  return "a value";
}

static const char *node_kind(const yaml_node_t *n) {
  if (n->type == YAML_MAPPING_NODE)
    return "a mapping";
  if (n->type == YAML_SEQUENCE_NODE)
    return "a list";
  return "a scalar";
}

/* ---- error reporting -------------------------------------------------------------------- */

typedef struct {
  blpo_config *c;
  blpo_config_src *src;
  const char *label; /* file path, "--set" or a flag such as "--seed" */
  int origin;
  int line;    /* --set/flag: the line every position reports */
  int col_off; /* --set/flag: the value's 0-based column in the argument */
  int errors;
  unsigned char seen[BLPO_CONFIG_MAX_KEYS];
  blpo_config_loc seen_at[BLPO_CONFIG_MAX_KEYS];
} ctx_t;

static blpo_config_loc pos_of(const ctx_t *x, yaml_mark_t m) {
  blpo_config_loc p = {x->origin, (int)m.line + 1, (int)m.column + 1};
  if (x->origin != BLPO_SRC_FILE) {
    /* a value continued on another line has no column in the argument */
    p.line = x->line;
    p.col = m.line == 0 ? x->col_off + (int)m.column + 1 : 1;
  }
  return p;
}

static void err_at(ctx_t *x, blpo_config_loc p, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static void err_at(ctx_t *x, blpo_config_loc p, const char *fmt, ...) {
  if (++x->errors > MAX_ERRORS)
    return;
  if (x->errors == MAX_ERRORS) {
    fprintf(stderr, "%s: too many errors, stopping\n", x->label);
    return;
  }
  fprintf(stderr, "%s:%d:%d: ", x->label, p.line, p.col);
  va_list ap;
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
}

static void loc_prefix(const blpo_config_src *src, int ki, char *buf, size_t n) {
  const blpo_config_loc *l = src && ki >= 0 ? &src->key[ki] : NULL;
  if (l && l->origin == BLPO_SRC_FILE)
    snprintf(buf, n, "%s:%d:%d", src->file, l->line, l->col);
  else if (l && l->origin == BLPO_SRC_SET)
    snprintf(buf, n, "--set:%d:%d", l->line, l->col);
  else if (l && l->origin == BLPO_SRC_SEED)
    snprintf(buf, n, "--seed:%d:%d", l->line, l->col);
  else if (src && src->file[0])
    snprintf(buf, n, "%s:1:1", src->file); /* the default is part of this file's config */
  else
    snprintf(buf, n, "blpo-gpu: config");
}

static void vreport(const blpo_config_src *src, int ki, const char *fmt, va_list ap) {
  char where[BLPO_PATH_MAX + 32];
  loc_prefix(src, ki, where, sizeof(where));
  fprintf(stderr, "%s: ", where);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
}

void blpo_config_report(const blpo_config_src *src, const char *key, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vreport(src, blpo_config_key_index(key), fmt, ap);
  va_end(ap);
}

/* ---- setting one key -------------------------------------------------------------------- */

static void *field(blpo_config *c, const blpo_config_key *k) { return (char *)c + k->offset; }

/* Checks an integer against the key's range; reports and returns 1 if out. */
static int int_in_range(ctx_t *x, const blpo_config_key *k, blpo_config_loc p, int64_t v,
                        const char *what) {
  if ((double)v < k->min || (double)v > k->max || (k->min_exclusive && (double)v <= k->min)) {
    char r[96];
    range_text(k, r, sizeof(r));
    err_at(x, p, "%s: %s %lld is out of range; expected an integer %s", k->path, what, (long long)v,
           r);
    return 1;
  }
  return 0;
}

/* Parses an integer scalar for key k (also list items). Returns 0 or 1 (reported). */
static int scalar_int(ctx_t *x, const blpo_config_key *k, const yaml_node_t *n, const char *what,
                      int64_t *out) {
  char q[96];
  blpo_config_loc p = pos_of(x, n->start_mark);
  if (n->type != YAML_SCALAR_NODE) {
    err_at(x, p, "%s: expected an integer%s, got %s", k->path, *what ? " list item" : "",
           node_kind(n));
    return 1;
  }
  const char *s = (const char *)n->data.scalar.value;
  size_t len = n->data.scalar.length;
  if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) {
    err_at(x, p, "%s: expected an integer, got the quoted string %s (drop the quotes)", k->path,
           quoted(q, sizeof(q), s, len));
    return 1;
  }
  if (len == 0) {
    err_at(x, p, "%s: expected an integer, got an empty value", k->path);
    return 1;
  }
  int rc = parse_int64(s, out);
  if (rc == 2)
    err_at(x, p, "%s: expected an integer, got %s (not a whole number)", k->path,
           quoted(q, sizeof(q), s, len));
  else if (rc == 3)
    err_at(x, p, "%s: %s is too large for an integer", k->path, quoted(q, sizeof(q), s, len));
  else if (rc != 0)
    err_at(x, p, "%s: expected an integer, got %s", k->path, quoted(q, sizeof(q), s, len));
  if (rc != 0)
    return 1;
  return int_in_range(x, k, p, *out, *what ? what : "value");
}

/* Matches a name list case-insensitively; -1 if none. */
static int match_name(const char *const *names, const char *s) {
  for (int i = 0; names[i]; i++)
    if (ieq(names[i], s))
      return i;
  return -1;
}

static int set_leaf(ctx_t *x, int ki, yaml_document_t *d, const yaml_node_t *n) {
  const blpo_config_key *k = &blpo_config_keys[ki];
  blpo_config_loc p = pos_of(x, n->start_mark);
  char q[96], r[160];
  void *f = field(x->c, k);
  int64_t iv;

  if (k->type == BLPO_KEY_INT_LIST) {
    if (n->type != YAML_SEQUENCE_NODE) {
      const char *s = n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : "";
      if (n->type == YAML_SCALAR_NODE)
        err_at(x, p, "%s: expected a list of integers such as [64, 64], got %s", k->path,
               quoted(q, sizeof(q), s, n->data.scalar.length));
      else
        err_at(x, p, "%s: expected a list of integers such as [64, 64], got a mapping", k->path);
      return 1;
    }
    int cnt = (int)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (cnt < k->list_min || cnt > k->list_max) {
      err_at(x, p, "%s: expected %d to %d widths, got %d", k->path, k->list_min, k->list_max, cnt);
      return 1;
    }
    int vals[BLPO_MAX_HIDDEN] = {0};
    int bad = 0;
    for (int i = 0; i < cnt; i++) {
      yaml_node_t *it = yaml_document_get_node(d, n->data.sequence.items.start[i]);
      if (scalar_int(x, k, it, "item", &iv) == 0)
        vals[i] = (int)iv;
      else
        bad = 1;
    }
    if (bad)
      return 1;
    memset(f, 0, k->size);
    memcpy(f, vals, (size_t)cnt * sizeof(int));
    *(int *)((char *)x->c + k->count_offset) = cnt;
    return 0;
  }

  if (n->type != YAML_SCALAR_NODE) {
    err_at(x, p, "%s: expected %s, got %s", k->path, type_desc(k, r, sizeof(r)), node_kind(n));
    return 1;
  }
  const char *s = (const char *)n->data.scalar.value;
  size_t len = n->data.scalar.length;
  int plain = n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
  if (strlen(s) != len) {
    err_at(x, p, "%s: value contains a NUL character", k->path);
    return 1;
  }

  switch (k->type) {
  case BLPO_KEY_INT:
  case BLPO_KEY_INT64:
    if (scalar_int(x, k, n, "", &iv))
      return 1;
    if (k->type == BLPO_KEY_INT)
      *(int *)f = (int)iv;
    else
      *(int64_t *)f = iv;
    return 0;
  case BLPO_KEY_FLOAT: {
    double v;
    if (!plain || parse_double(s, &v)) {
      err_at(x, p, "%s: expected a number, got %s%s", k->path, plain ? "" : "the quoted string ",
             quoted(q, sizeof(q), s, len));
      return 1;
    }
    /* Range and storage use the float the trainer will see. */
    float fv = strtof(s, NULL);
    if (!isfinite(fv) || fv < k->min || fv > k->max || (k->min_exclusive && fv <= k->min)) {
      range_text(k, r, sizeof(r));
      err_at(x, p, "%s: %s is out of range; expected a number %s", k->path,
             quoted(q, sizeof(q), s, len), r);
      return 1;
    }
    *(float *)f = fv;
    return 0;
  }
  case BLPO_KEY_BOOL: {
    int b = plain ? parse_bool(s) : -1;
    if (b < 0) {
      err_at(x, p, "%s: expected true or false, got %s", k->path, quoted(q, sizeof(q), s, len));
      return 1;
    }
    *(int *)f = b;
    return 0;
  }
  case BLPO_KEY_TRISTATE: {
    /* parse_bool's "no match" (-1) would read as BLPO_TRI_AUTO: keep them apart */
    int b = plain ? parse_bool(s) : -1, is_auto = plain && ieq(s, "auto");
    if (b < 0 && !is_auto) {
      err_at(x, p, "%s: expected one of auto, true, false; got %s", k->path,
             quoted(q, sizeof(q), s, len));
      return 1;
    }
    *(int *)f = is_auto ? BLPO_TRI_AUTO : b;
    return 0;
  }
  case BLPO_KEY_ENUM: {
    int e = match_name(k->names, s);
    if (e < 0) {
      enum_list(k, r, sizeof(r), ", ");
      err_at(x, p, "%s: unknown value %s; expected one of: %s", k->path,
             quoted(q, sizeof(q), s, len), r);
      return 1;
    }
    *(int *)f = e;
    return 0;
  }
  case BLPO_KEY_STRING:
    if (len + 1 > k->size) {
      err_at(x, p, "%s: %s is too long (%zu bytes; at most %zu)", k->path,
             quoted(q, sizeof(q), s, len), len, k->size - 1);
      return 1;
    }
    if ((double)len < k->min) {
      err_at(x, p, "%s: expected a non-empty string, got an empty value", k->path);
      return 1;
    }
    memset(f, 0, k->size);
    memcpy(f, s, len);
    return 0;
  case BLPO_KEY_INT_LIST:
    break;
  }
  return 1;
}

/* ---- walking the YAML tree -------------------------------------------------------------- */

static void section_keys(const char *sec, char *buf, size_t n) {
  size_t o = 0, sl = strlen(sec);
  buf[0] = 0;
  for (int i = 0; i < blpo_config_num_keys && o < n; i++) {
    const char *k = blpo_config_keys[i].path;
    if (strncmp(k, sec, sl) == 0 && k[sl] == '.')
      o += (size_t)snprintf(buf + o, n - o, "%s%s", o ? ", " : "", k + sl + 1);
  }
}

static void unknown_key(ctx_t *x, blpo_config_loc kp, const char *path) {
  char q[96], keys[1024], parent[MAX_PATH_LEN];
  const char *s = suggest_key(path);
  quoted(q, sizeof(q), path, strlen(path));
  if (s) {
    err_at(x, kp, "unknown key %s; did you mean '%s'?", q, s);
    return;
  }
  snprintf(parent, sizeof(parent), "%s", path);
  char *dot = strrchr(parent, '.');
  if (dot) {
    *dot = 0;
    if (is_section(parent)) {
      section_keys(parent, keys, sizeof(keys));
      err_at(x, kp, "unknown key %s; the keys under '%s' are: %s", q, parent, keys);
      return;
    }
  }
  err_at(x, kp, "unknown key %s (blpo-gpu --help-config lists every key)", q);
}

static void apply_node(ctx_t *x, yaml_document_t *d, const char *path, blpo_config_loc kp,
                       yaml_node_t *n) {
  char q[96];
  int ki = path[0] ? blpo_config_key_index(path) : -1;
  if (ki >= 0) {
    if (x->seen[ki]) {
      err_at(x, kp, "duplicate key '%s' (first set at %d:%d)", path, x->seen_at[ki].line,
             x->seen_at[ki].col);
      return;
    }
    x->seen[ki] = 1;
    x->seen_at[ki] = kp;
    if (set_leaf(x, ki, d, n) == 0)
      x->src->key[ki] = kp;
    return;
  }
  if (!is_section(path)) {
    unknown_key(x, kp, path);
    return;
  }
  if (n->type != YAML_MAPPING_NODE) {
    blpo_config_loc vp = pos_of(x, n->start_mark);
    const char *got = node_kind(n);
    if (n->type == YAML_SCALAR_NODE)
      got = quoted(q, sizeof(q), (const char *)n->data.scalar.value, n->data.scalar.length);
    if (path[0])
      err_at(x, vp, "'%s' is a section; expected a mapping of its keys, got %s", path, got);
    else
      err_at(x, vp,
             "expected a mapping of config keys (env:, run:, algo:, net:) at the top "
             "level, got %s",
             got);
    return;
  }
  for (yaml_node_pair_t *pr = n->data.mapping.pairs.start; pr < n->data.mapping.pairs.top; pr++) {
    yaml_node_t *kn = yaml_document_get_node(d, pr->key);
    yaml_node_t *vn = yaml_document_get_node(d, pr->value);
    blpo_config_loc kpos = pos_of(x, kn->start_mark);
    if (kn->type != YAML_SCALAR_NODE || kn->data.scalar.length == 0) {
      err_at(x, kpos, "expected a key name, got %s",
             kn->type == YAML_SCALAR_NODE ? "an empty key" : node_kind(kn));
      continue;
    }
    const char *name = (const char *)kn->data.scalar.value;
    int dup = 0;
    for (yaml_node_pair_t *pp = n->data.mapping.pairs.start; pp < pr && !dup; pp++) {
      yaml_node_t *pk = yaml_document_get_node(d, pp->key);
      if (pk->type == YAML_SCALAR_NODE && strcmp((const char *)pk->data.scalar.value, name) == 0) {
        blpo_config_loc first = pos_of(x, pk->start_mark);
        err_at(x, kpos, "duplicate key %s (first at %d:%d)",
               quoted(q, sizeof(q), name, strlen(name)), first.line, first.col);
        dup = 1;
      }
    }
    if (dup)
      continue;
    char child[MAX_PATH_LEN];
    int len = path[0] ? snprintf(child, sizeof(child), "%s.%s", path, name)
                      : snprintf(child, sizeof(child), "%s", name);
    if (len < 0 || (size_t)len >= sizeof(child)) {
      err_at(x, kpos, "unknown key %s (too long)", quoted(q, sizeof(q), name, strlen(name)));
      continue;
    }
    apply_node(x, d, child, kpos, vn);
  }
}

/* libyaml's own problem text and mark; reader errors (bad UTF-8) carry only
 * a byte offset, turned into line and column here. */
static void yaml_error(ctx_t *x, const yaml_parser_t *ps, const char *text, size_t tlen) {
  yaml_mark_t m = ps->problem_mark;
  if (ps->error == YAML_READER_ERROR) {
    memset(&m, 0, sizeof(m));
    for (size_t i = 0; i < ps->problem_offset && i < tlen; i++) {
      if (text[i] == '\n') {
        m.line++;
        m.column = 0;
      } else if (((unsigned char)text[i] & 0xC0) != 0x80) {
        m.column++;
      }
    }
  }
  blpo_config_loc p = pos_of(x, m);
  const char *problem = ps->problem ? ps->problem : "unknown parser error";
  if (ps->context) {
    blpo_config_loc cp = pos_of(x, ps->context_mark);
    err_at(x, p, "invalid YAML: %s (%s at %d:%d)", problem, ps->context, cp.line, cp.col);
  } else if (ps->error == YAML_READER_ERROR && ps->problem_value >= 0) {
    err_at(x, p, "invalid YAML: %s (byte 0x%02x)", problem, (unsigned)ps->problem_value & 0xff);
  } else {
    err_at(x, p, "invalid YAML: %s", problem);
  }
}

/* ---- public entry points ---------------------------------------------------------------- */

void blpo_config_defaults(blpo_config *c) {
  memset(c, 0, sizeof(*c));
  blpo_config_src src;
  memset(&src, 0, sizeof(src));
  for (int i = 0; i < blpo_config_num_keys; i++) {
    char a[512];
    snprintf(a, sizeof(a), "%s=%s", blpo_config_keys[i].path, blpo_config_keys[i].def);
    if (blpo_config_apply_set(c, &src, a) != 0)
      abort(); /* a broken default is a bug in config_table.c */
  }
}

static int read_all(const char *path, char **out, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    fprintf(stderr, "blpo-gpu: cannot open config file '%s': %s\n", path, strerror(errno));
    return 2;
  }
  size_t cap = 4096, n = 0;
  char *buf = malloc(cap + 1);
  int bad = !buf;
  while (!bad) {
    n += fread(buf + n, 1, cap - n, f);
    if (ferror(f) || n > MAX_FILE_BYTES)
      bad = 1;
    else if (n < cap)
      break;
    else {
      char *nb = realloc(buf, 2 * cap + 1);
      if (!nb)
        bad = 1;
      else {
        buf = nb;
        cap *= 2;
      }
    }
  }
  fclose(f);
  if (bad) {
    fprintf(stderr, "blpo-gpu: cannot read config file '%s': %s\n", path,
            n > MAX_FILE_BYTES ? "larger than 1 MiB" : "read error");
    free(buf);
    return 2;
  }
  buf[n] = 0;
  *out = buf;
  *len = n;
  return 0;
}

int blpo_config_load_file(blpo_config *c, blpo_config_src *src, const char *path) {
  char *text;
  size_t len;
  if (read_all(path, &text, &len))
    return 2;
  /* Work on copies so a failed load changes nothing. */
  blpo_config tmp = *c;
  blpo_config_src stmp;
  if (src)
    stmp = *src;
  else
    memset(&stmp, 0, sizeof(stmp));
  ctx_t x;
  memset(&x, 0, sizeof(x));
  x.c = &tmp;
  x.src = &stmp;
  x.label = path;
  x.origin = BLPO_SRC_FILE;

  yaml_parser_t ps;
  yaml_document_t doc;
  yaml_parser_initialize(&ps);
  yaml_parser_set_input_string(&ps, (const unsigned char *)text, len);
  if (!yaml_parser_load(&ps, &doc)) {
    yaml_error(&x, &ps, text, len);
  } else {
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    /* An empty file (or one of comments only) is a config with every default. */
    if (root) {
      blpo_config_loc top = {BLPO_SRC_FILE, 1, 1};
      apply_node(&x, &doc, "", top, root);
      yaml_document_t doc2;
      if (!yaml_parser_load(&ps, &doc2)) {
        yaml_error(&x, &ps, text, len);
      } else {
        yaml_node_t *r2 = yaml_document_get_root_node(&doc2);
        if (r2)
          err_at(&x, pos_of(&x, r2->start_mark),
                 "expected a single YAML document, found a second one");
        yaml_document_delete(&doc2);
      }
    }
    yaml_document_delete(&doc);
  }
  yaml_parser_delete(&ps);
  free(text);
  if (x.errors)
    return 2;
  snprintf(stmp.file, sizeof(stmp.file), "%s", path);
  *c = tmp;
  if (src)
    *src = stmp;
  return 0;
}

/* One `key=value` with positions reported as LABEL:LINE:COL; key_col and
 * val_col are the 0-based columns of key and value in what the user typed. */
static int apply_kv(blpo_config *c, blpo_config_src *src, const char *key, size_t key_len,
                    const char *value, const char *label, int origin, int line, int key_col,
                    int val_col) {
  char q[96];
  blpo_config_src stmp;
  if (src)
    stmp = *src;
  else
    memset(&stmp, 0, sizeof(stmp));
  blpo_config tmp = *c;
  ctx_t x;
  memset(&x, 0, sizeof(x));
  x.c = &tmp;
  x.src = &stmp;
  x.label = label;
  x.origin = origin;
  x.line = line;
  x.col_off = val_col;
  blpo_config_loc kp = {origin, line, key_col + 1};

  char path[MAX_PATH_LEN];
  if (key_len == 0 || key_len >= sizeof(path)) {
    err_at(&x, kp, "expected key.path=value, got %s",
           quoted(q, sizeof(q), key, key_len + strlen(key + key_len)));
    return 2;
  }
  memcpy(path, key, key_len);
  path[key_len] = 0;
  if (blpo_config_key_index(path) < 0 && !is_section(path)) {
    unknown_key(&x, kp, path);
    return 2;
  }

  yaml_parser_t ps;
  yaml_document_t doc;
  yaml_parser_initialize(&ps);
  yaml_parser_set_input_string(&ps, (const unsigned char *)value, strlen(value));
  if (!yaml_parser_load(&ps, &doc)) {
    yaml_error(&x, &ps, value, strlen(value));
  } else {
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    yaml_node_t empty;
    if (!root) {
      /* `run.name=` means the empty string, which libyaml reads as no document. */
      memset(&empty, 0, sizeof(empty));
      empty.type = YAML_SCALAR_NODE;
      empty.data.scalar.value = (yaml_char_t *)"";
      empty.data.scalar.style = YAML_PLAIN_SCALAR_STYLE;
      root = &empty;
    }
    apply_node(&x, &doc, path, kp, root);
    yaml_document_delete(&doc);
  }
  yaml_parser_delete(&ps);
  if (x.errors)
    return 2;
  *c = tmp;
  if (src)
    *src = stmp;
  return 0;
}

int blpo_config_apply_set(blpo_config *c, blpo_config_src *src, const char *assignment) {
  int line = src ? ++src->num_sets : 1;
  const char *eq = strchr(assignment, '=');
  if (!eq) {
    char q[96];
    fprintf(stderr, "--set:%d:1: expected key.path=value, got %s\n", line,
            quoted(q, sizeof(q), assignment, strlen(assignment)));
    return 2;
  }
  size_t klen = (size_t)(eq - assignment);
  return apply_kv(c, src, assignment, klen, eq + 1, "--set", BLPO_SRC_SET, line, 0, (int)klen + 1);
}

int blpo_config_apply_seed(blpo_config *c, blpo_config_src *src, const char *value) {
  /* The key is not typed by the user: a key error cannot happen, value columns count from 1. */
  return apply_kv(c, src, "run.seed", strlen("run.seed"), value, "--seed", BLPO_SRC_SEED, 1, 0, 0);
}

/* ---- validation ------------------------------------------------------------------------- */

typedef struct {
  const blpo_config_src *src;
  int errors;
} vctx_t;

/* Reports a cross-field problem at whichever of keys was set last. */
static void verr(vctx_t *v, const char *const *keys, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static void verr(vctx_t *v, const char *const *keys, const char *fmt, ...) {
  int best = blpo_config_key_index(keys[0]);
  for (int i = 1; keys[i] && v->src; i++) {
    int ki = blpo_config_key_index(keys[i]);
    const blpo_config_loc *a = &v->src->key[ki], *b = &v->src->key[best];
    if (a->origin > b->origin ||
        (a->origin == b->origin && a->origin == BLPO_SRC_SET && a->line > b->line))
      best = ki;
  }
  v->errors++;
  va_list ap;
  va_start(ap, fmt);
  vreport(v->src, best, fmt, ap);
  va_end(ap);
}

#define KEYS(...) ((const char *const[]){__VA_ARGS__, NULL})

/* The table's own checks on a struct that may have been filled in by code. */
static void check_ranges(vctx_t *v, const blpo_config *c) {
  char r[160];
  for (int i = 0; i < blpo_config_num_keys; i++) {
    const blpo_config_key *k = &blpo_config_keys[i];
    const void *f = (const char *)c + k->offset;
    const char *const one[] = {k->path, NULL};
    double val = 0;
    int is_num = 1;
    switch (k->type) {
    case BLPO_KEY_INT:
      val = *(const int *)f;
      break;
    case BLPO_KEY_INT64:
      val = (double)*(const int64_t *)f;
      break;
    case BLPO_KEY_FLOAT:
      val = *(const float *)f;
      break;
    default:
      is_num = 0;
    }
    if (is_num) {
      if (!(val >= k->min && val <= k->max) || (k->min_exclusive && val <= k->min)) {
        range_text(k, r, sizeof(r));
        verr(v, one, "%s: %.10g is out of range; expected %s %s", k->path, val,
             k->type == BLPO_KEY_FLOAT ? "a number" : "an integer", r);
      }
      continue;
    }
    int iv = *(const int *)f;
    switch (k->type) {
    case BLPO_KEY_BOOL:
      if (iv != 0 && iv != 1)
        verr(v, one, "%s: expected true or false, got %d", k->path, iv);
      break;
    case BLPO_KEY_TRISTATE:
      if (iv < -1 || iv > 1)
        verr(v, one, "%s: expected auto, true or false, got %d", k->path, iv);
      break;
    case BLPO_KEY_ENUM: {
      int n = 0;
      while (k->names[n])
        n++;
      if (iv < 0 || iv >= n) {
        enum_list(k, r, sizeof(r), ", ");
        verr(v, one, "%s: value %d is not one of: %s", k->path, iv, r);
      }
      break;
    }
    case BLPO_KEY_STRING: {
      const char *nul = memchr(f, 0, k->size);
      if (!nul)
        verr(v, one, "%s: string is not terminated", k->path);
      else if ((double)(nul - (const char *)f) < k->min)
        verr(v, one, "%s: expected a non-empty string", k->path);
      break;
    }
    case BLPO_KEY_INT_LIST: {
      int cnt = *(const int *)((const char *)c + k->count_offset);
      if (cnt < k->list_min || cnt > k->list_max) {
        verr(v, one, "%s: expected %d to %d widths, got %d", k->path, k->list_min, k->list_max,
             cnt);
        break;
      }
      for (int j = 0; j < cnt; j++) {
        int w = ((const int *)f)[j];
        if (w < k->min || w > k->max) {
          range_text(k, r, sizeof(r));
          verr(v, one, "%s: width %d is out of range; expected an integer %s", k->path, w, r);
        }
      }
      break;
    }
    default:
      break;
    }
  }
}

static int64_t mlp_params(int in, const int *hidden, int nh, int out) {
  int64_t p = 0;
  for (int i = 0; i < nh; i++) {
    p += (int64_t)in * hidden[i] + hidden[i];
    in = hidden[i];
  }
  return p + (int64_t)in * out + out;
}

int blpo_config_validate(const blpo_config *c, const blpo_config_src *src) {
  vctx_t v = {src, 0};
  check_ranges(&v, c);
  if (v.errors)
    return 2; /* cross checks below assume sane values */

  int env = blpo_env_from_name(c->env_id);
  if (env < 0) {
    char names[256], q[96];
    size_t o = 0;
    const char *best = NULL;
    int bd = 1 << 30;
    for (int i = 0; i < BLPO_ENV_COUNT; i++) {
      const blpo_env_info *info = blpo_env_get_info((blpo_env_id)i);
      o += (size_t)snprintf(names + o, sizeof(names) - o, "%s%s", i ? ", " : "", info->name);
      int dd = blpo_edit_distance(c->env_id, info->name);
      if (dd < bd) {
        bd = dd;
        best = info->name;
      }
    }
    quoted(q, sizeof(q), c->env_id, strlen(c->env_id));
    if (best && bd <= 3)
      verr(&v, KEYS("env.id"), "env.id: unknown task %s; did you mean '%s'? (known: %s)", q, best,
           names);
    else
      verr(&v, KEYS("env.id"), "env.id: unknown task %s; expected one of: %s", q, names);
  }

  int64_t batch = (int64_t)c->num_envs * c->num_steps;
  if (c->algo == BLPO_ALGO_PPO) {
    if (batch % c->num_minibatches != 0)
      verr(&v, KEYS("algo.num_minibatches", "env.num_envs", "env.num_steps"),
           "algo.num_minibatches (%d) must divide env.num_envs * env.num_steps (%d * %d = %lld): "
           "ppo splits the rollout into equal minibatches of samples",
           c->num_minibatches, c->num_envs, c->num_steps, (long long)batch);
  } else if (c->num_envs % c->num_minibatches != 0) {
    verr(&v, KEYS("algo.num_minibatches", "env.num_envs", "algo.name"),
         "algo.num_minibatches (%d) must divide env.num_envs (%d): algo '%s' splits the envs "
         "into minibatches of whole trajectories",
         c->num_minibatches, c->num_envs,
         blpo_config_keys[blpo_config_key_index("algo.name")].names[c->algo]);
  }
  if (c->total_steps < batch)
    verr(&v, KEYS("run.total_steps", "env.num_envs", "env.num_steps"),
         "run.total_steps (%lld) is less than one iteration of env.num_envs * env.num_steps = "
         "%lld env steps",
         (long long)c->total_steps, (long long)batch);
  /* Sample buffers are indexed with 32-bit ints on both backends. */
  if (batch * c->num_seeds > INT32_MAX)
    verr(&v, KEYS("env.num_envs", "env.num_steps", "run.num_seeds"),
         "run.num_seeds * env.num_envs * env.num_steps = %lld samples per iteration; at most %d",
         (long long)(batch * c->num_seeds), INT32_MAX);
  if (strchr(c->name, '/') || strcmp(c->name, ".") == 0 || strcmp(c->name, "..") == 0)
    verr(&v, KEYS("run.name"), "run.name: '%s' is not a valid directory name prefix", c->name);

  if (env >= 0 && c->algo == BLPO_ALGO_BLPO) {
    /* The critic V(s): obs_dim -> net.critic_hidden -> 1, a weight matrix and a bias per layer. */
    const blpo_env_info *info = blpo_env_get_info((blpo_env_id)env);
    int64_t pc = mlp_params(info->obs_dim, c->critic_hidden, c->critic_num_hidden, 1);
    char widths[BLPO_MAX_HIDDEN * 12 + 4];
    size_t o = 0;
    widths[0] = 0;
    for (int i = 0; i < c->critic_num_hidden && o < sizeof(widths); i++)
      o += (size_t)snprintf(widths + o, sizeof(widths) - o, "%s%d", i ? ", " : "",
                            c->critic_hidden[i]);
    /* Nystrom samples k distinct critic parameter indices. The error is about the rank,
     * so it points there even when net.critic_hidden was set later. */
    if (c->hg_method == BLPO_HG_NYSTROM && c->hg_rank > pc)
      verr(&v, KEYS("algo.hypergrad.rank"),
           "algo.hypergrad.rank (%d) exceeds the critic's parameter count %lld (obs dim %d of "
           "%s, net.critic_hidden [%s], output 1); Nystrom samples at most that many indices",
           c->hg_rank, (long long)pc, info->obs_dim, info->name, widths);
    if (c->hg_method == BLPO_HG_EXACT && pc > c->hg_exact_max_params)
      verr(&v,
           KEYS("algo.hypergrad.method", "net.critic_hidden", "algo.hypergrad.exact_max_params"),
           "algo.hypergrad.method exact builds a dense Hessian, but the critic has %lld "
           "parameters, more than algo.hypergrad.exact_max_params = %d; use method nystrom or cg",
           (long long)pc, c->hg_exact_max_params);
    else if (c->hg_check && pc > c->hg_exact_max_params)
      verr(&v, KEYS("algo.hypergrad.check", "net.critic_hidden", "algo.hypergrad.exact_max_params"),
           "algo.hypergrad.check builds a dense Hessian, but the critic has %lld parameters, "
           "more than algo.hypergrad.exact_max_params = %d; turn the check off",
           (long long)pc, c->hg_exact_max_params);
  }
  return v.errors ? 2 : 0;
}

void blpo_fprint_wrapped(FILE *f, const char *text, int indent, int col, int width) {
  while (*text) {
    size_t word = strcspn(text, " ");
    if (col > indent && col + 1 + (int)word > width) {
      fprintf(f, "\n%*s", indent, "");
      col = indent;
    } else if (col > indent) {
      fputc(' ', f);
      col++;
    }
    fprintf(f, "%.*s", (int)word, text);
    col += (int)word;
    text += word;
    while (*text == ' ')
      text++;
  }
  fputc('\n', f);
}

/* ---- writing ---------------------------------------------------------------------------- */

/* Shortest text that reads back as the same float; whole numbers without an exponent. */
static void format_float(float v, char *buf, size_t n) {
  if (v == floorf(v) && fabsf(v) < 1e9f) {
    snprintf(buf, n, "%.0f", (double)v);
    return;
  }
  for (int prec = 1; prec <= 9; prec++) {
    snprintf(buf, n, "%.*g", prec, (double)v);
    if (strtof(buf, NULL) == v)
      return;
  }
}

static void write_string(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\')
      fprintf(f, "\\%c", ch);
    else if (ch < 0x20 || ch == 0x7f)
      fprintf(f, "\\x%02x", ch);
    else
      fputc(ch, f);
  }
  fputc('"', f);
}

static void write_value(FILE *f, const blpo_config *c, const blpo_config_key *k) {
  const void *p = (const char *)c + k->offset;
  char buf[64];
  int iv = *(const int *)p;
  switch (k->type) {
  case BLPO_KEY_INT:
    fprintf(f, "%d", iv);
    break;
  case BLPO_KEY_INT64:
    fprintf(f, "%lld", (long long)*(const int64_t *)p);
    break;
  case BLPO_KEY_FLOAT:
    format_float(*(const float *)p, buf, sizeof(buf));
    fputs(buf, f);
    break;
  case BLPO_KEY_BOOL:
    fputs(iv ? "true" : "false", f);
    break;
  case BLPO_KEY_TRISTATE:
    fputs(iv == BLPO_TRI_AUTO ? "auto" : iv ? "true" : "false", f);
    break;
  case BLPO_KEY_ENUM:
    fputs(k->names[iv], f);
    break;
  case BLPO_KEY_STRING:
    write_string(f, (const char *)p);
    break;
  case BLPO_KEY_INT_LIST: {
    int cnt = *(const int *)((const char *)c + k->count_offset);
    fputc('[', f);
    for (int j = 0; j < cnt; j++)
      fprintf(f, "%s%d", j ? ", " : "", ((const int *)p)[j]);
    fputc(']', f);
    break;
  }
  }
}

int blpo_config_write_value(FILE *f, const blpo_config *c, int key) {
  if (key < 0 || key >= blpo_config_num_keys)
    return -1;
  write_value(f, c, &blpo_config_keys[key]);
  return ferror(f) ? -1 : 0;
}

/* Splits "algo.hypergrad" into components; returns how many. */
static int split_path(const char *path, char comp[][64], int max) {
  int n = 0;
  while (*path && n < max) {
    size_t len = strcspn(path, ".");
    snprintf(comp[n++], 64, "%.*s", (int)len, path);
    path += len + (path[len] == '.');
  }
  return n;
}

int blpo_config_write_yaml(const blpo_config *c, FILE *f) {
  char open[8][64], sec[8][64];
  int nopen = 0;
  fputs("# blpo-gpu effective configuration (blpo-gpu --help-config documents each key)\n", f);
  for (int i = 0; i < blpo_config_num_keys; i++) {
    const blpo_config_key *k = &blpo_config_keys[i];
    char path[MAX_PATH_LEN];
    snprintf(path, sizeof(path), "%s", k->path);
    *strrchr(path, '.') = 0; /* every key lives in a section */
    int nsec = split_path(path, sec, 8);
    /* Sections shared with the previous key stay open (the table keeps them contiguous). */
    int common = 0;
    while (common < nopen && common < nsec && strcmp(open[common], sec[common]) == 0)
      common++;
    for (int d = common; d < nsec; d++)
      fprintf(f, "%*s%s:\n", 2 * d, "", sec[d]);
    memcpy(open, sec, sizeof(sec));
    nopen = nsec;
    fprintf(f, "%*s%s: ", 2 * nsec, "", leaf_of(k->path));
    write_value(f, c, k);
    fputc('\n', f);
  }
  return ferror(f) ? -1 : 0;
}

void blpo_config_print_keys(FILE *f) {
  fputs("Config keys (YAML path, type and allowed values, default):\n", f);
  for (int i = 0; i < blpo_config_num_keys; i++) {
    const blpo_config_key *k = &blpo_config_keys[i];
    char t[192], r[160];
    switch (k->type) {
    case BLPO_KEY_INT:
    case BLPO_KEY_INT64:
      range_text(k, r, sizeof(r));
      snprintf(t, sizeof(t), "integer %s", r);
      break;
    case BLPO_KEY_FLOAT:
      range_text(k, r, sizeof(r));
      snprintf(t, sizeof(t), "number %s", r);
      break;
    case BLPO_KEY_BOOL:
      snprintf(t, sizeof(t), "true|false");
      break;
    case BLPO_KEY_TRISTATE:
      snprintf(t, sizeof(t), "auto|true|false");
      break;
    case BLPO_KEY_ENUM:
      enum_list(k, r, sizeof(r), "|");
      snprintf(t, sizeof(t), "%s", r);
      break;
    case BLPO_KEY_STRING:
      snprintf(t, sizeof(t), "%sstring, at most %zu bytes", k->min > 0 ? "non-empty " : "",
               k->size - 1);
      break;
    case BLPO_KEY_INT_LIST:
      snprintf(t, sizeof(t), "list of %d-%d integers in [%.10g, %.10g]", k->list_min, k->list_max,
               k->min, k->max);
      break;
    }
    fprintf(f, "\n  %-34s %s\n      default: %s\n      ", k->path, t,
            k->type == BLPO_KEY_STRING && !k->def[0] ? "\"\"" : k->def);
    blpo_fprint_wrapped(f, k->doc, 6, 6, 80);
  }
}
