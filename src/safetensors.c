/* safetensors reader and writer (see include/blpo/safetensors.h).
 *
 * The JSON writer and parser are written here rather than taken from a
 * library: the header grammar is tiny (one object of objects holding strings,
 * integer arrays and one string->string map), and the reader must be hardened
 * against arbitrary input (it is fuzzed), which is easier to guarantee for
 * ~400 lines we own than for a general JSON library. Every read is bounds
 * checked, every size product uses checked 64-bit multiplication, and nothing
 * from the file is trusted before the whole header has been validated. */
#define _POSIX_C_SOURCE 200809L

#include "blpo/safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors.c assumes a little-endian host (the format is little-endian)"
#endif

#define ALIGN 16u

static const char *const dtype_names[] = {"F32", "F64", "I32", "U32", "I64", "U64", "U8"};
static const size_t dtype_sizes[] = {4, 8, 4, 4, 8, 8, 1};
#define NUM_DTYPES ((int)(sizeof dtype_names / sizeof dtype_names[0]))

const char *blpo_st_dtype_name(blpo_st_dtype dt) {
  return (int)dt >= 0 && (int)dt < NUM_DTYPES ? dtype_names[dt] : "?";
}

size_t blpo_st_dtype_size(blpo_st_dtype dt) {
  return (int)dt >= 0 && (int)dt < NUM_DTYPES ? dtype_sizes[dt] : 0;
}

static void seterr(char *err, size_t errlen, const char *fmt, ...) {
  if (!err || errlen == 0)
    return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errlen, fmt, ap);
  va_end(ap);
}

/* a * b into *r; 0 on overflow (operands must be >= 0). */
static int mul_ok(uint64_t a, uint64_t b, uint64_t *r) {
  if (a != 0 && b > UINT64_MAX / a)
    return 0;
  *r = a * b;
  return 1;
}

/* Element count * element size, or 0 with *ok = 0 on a negative dimension or
 * an overflow past INT64_MAX. */
static uint64_t tensor_bytes(blpo_st_dtype dt, int ndim, const int64_t *shape, int *ok) {
  uint64_t n = 1;
  *ok = 0;
  for (int d = 0; d < ndim; d++) {
    if (shape[d] < 0 || !mul_ok(n, (uint64_t)shape[d], &n))
      return 0;
  }
  if (!mul_ok(n, blpo_st_dtype_size(dt), &n) || n > (uint64_t)INT64_MAX)
    return 0;
  *ok = 1;
  return n;
}

static void shape_str(char *s, size_t len, int ndim, const int64_t *shape) {
  size_t k = (size_t)snprintf(s, len, "[");
  for (int d = 0; d < ndim && k < len; d++)
    k += (size_t)snprintf(s + k, len - k, "%s%lld", d ? ", " : "", (long long)shape[d]);
  if (k < len)
    snprintf(s + k, len - k, "]");
}

/* Strict UTF-8 (no overlong forms, no surrogates, <= U+10FFFF). Returns the
 * offset of the first bad byte, or len when all is valid. */
static size_t utf8_check(const uint8_t *s, size_t len) {
  size_t i = 0;
  while (i < len) {
    uint8_t c = s[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t n;
    uint32_t cp, min;
    if (c >= 0xC2 && c <= 0xDF) {
      n = 1, cp = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2, cp = c & 0x0F, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
      n = 3, cp = c & 0x07, min = 0x10000;
    } else {
      return i;
    }
    if (len - i <= n)
      return i;
    for (size_t k = 1; k <= n; k++) {
      if ((s[i + k] & 0xC0) != 0x80)
        return i;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
      return i;
    i += n + 1;
  }
  return len;
}

/* ---- writer ---------------------------------------------------------------- */

typedef struct {
  char *s;
  size_t n, cap;
  int oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
  if (b->oom)
    return;
  if (b->n + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + n + 1)
      cap *= 2;
    char *p = realloc(b->s, cap);
    if (!p) {
      b->oom = 1;
      return;
    }
    b->s = p, b->cap = cap;
  }
  memcpy(b->s + b->n, s, n);
  b->n += n;
  b->s[b->n] = 0;
}

static void sb_printf(sbuf *b, const char *fmt, ...) {
  char tmp[64];
  va_list ap;
  va_start(ap, fmt);
  int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
  va_end(ap);
  if (k > 0)
    sb_put(b, tmp, (size_t)k < sizeof tmp ? (size_t)k : sizeof tmp - 1);
}

static void sb_json_string(sbuf *b, const char *s) {
  sb_put(b, "\"", 1);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') {
      char e[2] = {'\\', (char)c};
      sb_put(b, e, 2);
    } else if (c == '\n') {
      sb_put(b, "\\n", 2);
    } else if (c == '\t') {
      sb_put(b, "\\t", 2);
    } else if (c == '\r') {
      sb_put(b, "\\r", 2);
    } else if (c < 0x20 || c == 0x7F) {
      sb_printf(b, "\\u%04x", c);
    } else {
      sb_put(b, (const char *)&c, 1);
    }
  }
  sb_put(b, "\"", 1);
}

/* A C string in a fixed buffer: terminated, valid UTF-8, at least min bytes. */
static int check_cstr(const char *s, size_t cap, size_t min) {
  size_t n = strnlen(s, cap);
  return n < cap && n >= min && utf8_check((const uint8_t *)s, n) == n;
}

int blpo_st_write(const char *path, const blpo_st_tensor *t, int n, const blpo_st_meta *meta,
                  int nmeta, char *err, size_t errlen) {
  if (!path || n < 0 || n > BLPO_ST_MAX_TENSORS || (n > 0 && !t) || nmeta < 0 ||
      nmeta > BLPO_ST_MAX_META || (nmeta > 0 && !meta)) {
    seterr(err, errlen, "%s: invalid arguments", path ? path : "(null)");
    return -1;
  }
  /* validate before touching the file system */
  for (int i = 0; i < n; i++) {
    if (!check_cstr(t[i].name, sizeof t[i].name, 1) || strcmp(t[i].name, "__metadata__") == 0) {
      seterr(err, errlen, "tensor %d: name must be 1..127 bytes of UTF-8 and not __metadata__", i);
      return -1;
    }
    if ((int)t[i].dtype < 0 || (int)t[i].dtype >= NUM_DTYPES || t[i].ndim < 0 ||
        t[i].ndim > BLPO_ST_MAX_DIMS) {
      seterr(err, errlen, "tensor '%s': bad dtype or ndim %d", t[i].name, t[i].ndim);
      return -1;
    }
    int ok;
    uint64_t nb = tensor_bytes(t[i].dtype, t[i].ndim, t[i].shape, &ok);
    char sh[128];
    shape_str(sh, sizeof sh, t[i].ndim, t[i].shape);
    if (!ok || nb != (uint64_t)t[i].nbytes || (nb > 0 && !t[i].data)) {
      seterr(err, errlen, "tensor '%s': nbytes %zu does not match %s %s%s", t[i].name, t[i].nbytes,
             dtype_names[t[i].dtype], sh, ok ? "" : " (invalid shape)");
      return -1;
    }
    for (int j = 0; j < i; j++) {
      if (strcmp(t[i].name, t[j].name) == 0) {
        seterr(err, errlen, "duplicate tensor name '%s'", t[i].name);
        return -1;
      }
    }
  }
  for (int i = 0; i < nmeta; i++) {
    if (!check_cstr(meta[i].key, sizeof meta[i].key, 1) ||
        !check_cstr(meta[i].value, sizeof meta[i].value, 0)) {
      seterr(err, errlen, "metadata %d: key/value must be terminated UTF-8 (key non-empty)", i);
      return -1;
    }
    for (int j = 0; j < i; j++) {
      if (strcmp(meta[i].key, meta[j].key) == 0) {
        seterr(err, errlen, "duplicate metadata key '%s'", meta[i].key);
        return -1;
      }
    }
  }

  /* header */
  sbuf h = {0};
  sb_put(&h, "{", 1);
  if (nmeta > 0) {
    sb_put(&h, "\"__metadata__\":{", 16);
    for (int i = 0; i < nmeta; i++) {
      if (i)
        sb_put(&h, ",", 1);
      sb_json_string(&h, meta[i].key);
      sb_put(&h, ":", 1);
      sb_json_string(&h, meta[i].value);
    }
    sb_put(&h, "}", 1);
  }
  uint64_t off = 0;
  for (int i = 0; i < n; i++) {
    if (i || nmeta > 0)
      sb_put(&h, ",", 1);
    sb_json_string(&h, t[i].name);
    sb_printf(&h, ":{\"dtype\":\"%s\",\"shape\":[", dtype_names[t[i].dtype]);
    for (int d = 0; d < t[i].ndim; d++)
      sb_printf(&h, "%s%lld", d ? "," : "", (long long)t[i].shape[d]);
    sb_printf(&h, "],\"data_offsets\":[%llu,", (unsigned long long)off);
    off += t[i].nbytes;
    sb_printf(&h, "%llu]}", (unsigned long long)off);
  }
  sb_put(&h, "}", 1);
  while (!h.oom && h.n % 8 != 0)
    sb_put(&h, " ", 1);
  if (h.oom) {
    free(h.s);
    seterr(err, errlen, "%s: out of memory", path);
    return -1;
  }

  size_t plen = strlen(path);
  char *tmp = malloc(plen + 5);
  if (!tmp) {
    free(h.s);
    seterr(err, errlen, "%s: out of memory", path);
    return -1;
  }
  memcpy(tmp, path, plen);
  memcpy(tmp + plen, ".tmp", 5);

  FILE *fp = fopen(tmp, "wb");
  if (!fp) {
    seterr(err, errlen, "%s: cannot create: %s", tmp, strerror(errno));
    free(h.s);
    free(tmp);
    return -1;
  }
  uint8_t len8[8];
  for (int k = 0; k < 8; k++)
    len8[k] = (uint8_t)((uint64_t)h.n >> (8 * k));
  const char *what = "write";
  int ok = fwrite(len8, 1, 8, fp) == 8 && fwrite(h.s, 1, h.n, fp) == h.n;
  for (int i = 0; ok && i < n; i++)
    ok = t[i].nbytes == 0 || fwrite(t[i].data, 1, t[i].nbytes, fp) == t[i].nbytes;
  if (ok && fflush(fp) != 0)
    ok = 0, what = "flush";
  if (ok && fsync(fileno(fp)) != 0)
    ok = 0, what = "fsync";
  int saved = errno;
  if (fclose(fp) != 0 && ok)
    ok = 0, what = "close", saved = errno;
  if (ok && rename(tmp, path) != 0)
    ok = 0, what = "rename", saved = errno;
  if (!ok) {
    seterr(err, errlen, "%s: %s failed: %s", tmp, what, strerror(saved));
    remove(tmp);
    free(h.s);
    free(tmp);
    return -1;
  }
  /* make the rename durable (best effort) */
  const char *slash = strrchr(path, '/');
  char *dir = slash ? malloc((size_t)(slash - path) + 2) : NULL;
  if (dir) {
    size_t dl = slash == path ? 1 : (size_t)(slash - path);
    memcpy(dir, path, dl);
    dir[dl] = 0;
  }
  int dfd = open(dir ? dir : ".", O_RDONLY);
  if (dfd >= 0) {
    (void)fsync(dfd);
    close(dfd);
  }
  free(dir);
  free(h.s);
  free(tmp);
  return 0;
}

/* ---- JSON header parser ---------------------------------------------------- */

typedef struct {
  const uint8_t *s;
  size_t n, i;
  char *err;
  size_t errlen;
} jp;

/* Reports at the current position; always returns -1. */
static int jerr(jp *p, const char *fmt, ...) {
  if (p->err && p->errlen) {
    int k = snprintf(p->err, p->errlen, "invalid header JSON at byte %zu: ", p->i);
    if (k >= 0 && (size_t)k < p->errlen) {
      va_list ap;
      va_start(ap, fmt);
      vsnprintf(p->err + k, p->errlen - (size_t)k, fmt, ap);
      va_end(ap);
    }
  }
  return -1;
}

static void ws(jp *p) {
  while (p->i < p->n &&
         (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' || p->s[p->i] == '\r'))
    p->i++;
}

static int expect(jp *p, char c) {
  ws(p);
  if (p->i >= p->n)
    return jerr(p, "expected '%c', found end of header", c);
  if (p->s[p->i] != (uint8_t)c)
    return jerr(p, "expected '%c'", c);
  p->i++;
  return 0;
}

/* Next non-space byte without consuming it; -1 at the end. */
static int peek(jp *p) {
  ws(p);
  return p->i < p->n ? p->s[p->i] : -1;
}

static int hex4(jp *p, uint32_t *v) {
  if (p->n - p->i < 4)
    return jerr(p, "truncated \\u escape");
  *v = 0;
  for (int k = 0; k < 4; k++) {
    uint8_t c = p->s[p->i + (size_t)k];
    uint32_t d;
    if (c >= '0' && c <= '9')
      d = c - '0';
    else if (c >= 'a' && c <= 'f')
      d = c - 'a' + 10u;
    else if (c >= 'A' && c <= 'F')
      d = c - 'A' + 10u;
    else
      return jerr(p, "bad hex digit in \\u escape");
    *v = *v << 4 | d;
  }
  p->i += 4;
  return 0;
}

/* Parses a JSON string into out (cap bytes including the terminator).
 * Returns 0, -1 on a syntax error (message set), or -2 when the decoded
 * string (or an embedded NUL, reported as -3) does not fit what the caller
 * keeps; then *start holds its position for the caller's message. */
static int jstring(jp *p, char *out, size_t cap, size_t *start) {
  ws(p);
  *start = p->i;
  if (p->i >= p->n || p->s[p->i] != '"')
    return p->i >= p->n ? jerr(p, "expected string, found end of header")
                        : jerr(p, "expected string");
  p->i++;
  size_t k = 0;
  int toolong = 0, nul = 0;
  for (;;) {
    if (p->i >= p->n)
      return jerr(p, "unterminated string");
    uint8_t c = p->s[p->i];
    uint8_t enc[4];
    size_t ne = 1;
    if (c == '"') {
      p->i++;
      break;
    }
    if (c < 0x20)
      return jerr(p, "control character in string");
    if (c != '\\') {
      enc[0] = c;
      p->i++;
    } else {
      if (p->n - p->i < 2)
        return jerr(p, "unterminated escape");
      uint8_t e = p->s[p->i + 1];
      p->i += 2;
      switch (e) {
      case '"':
      case '\\':
      case '/':
        enc[0] = e;
        break;
      case 'b':
        enc[0] = '\b';
        break;
      case 'f':
        enc[0] = '\f';
        break;
      case 'n':
        enc[0] = '\n';
        break;
      case 'r':
        enc[0] = '\r';
        break;
      case 't':
        enc[0] = '\t';
        break;
      case 'u': {
        uint32_t cp;
        if (hex4(p, &cp) != 0)
          return -1;
        if (cp >= 0xDC00 && cp <= 0xDFFF)
          return jerr(p, "unpaired low surrogate in \\u escape");
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          uint32_t lo;
          if (p->n - p->i < 2 || p->s[p->i] != '\\' || p->s[p->i + 1] != 'u')
            return jerr(p, "unpaired high surrogate in \\u escape");
          p->i += 2;
          if (hex4(p, &lo) != 0)
            return -1;
          if (lo < 0xDC00 || lo > 0xDFFF)
            return jerr(p, "unpaired high surrogate in \\u escape");
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        }
        if (cp == 0)
          nul = 1;
        if (cp < 0x80) {
          enc[0] = (uint8_t)cp;
        } else if (cp < 0x800) {
          enc[0] = (uint8_t)(0xC0 | cp >> 6), enc[1] = (uint8_t)(0x80 | (cp & 0x3F)), ne = 2;
        } else if (cp < 0x10000) {
          enc[0] = (uint8_t)(0xE0 | cp >> 12), enc[1] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
          enc[2] = (uint8_t)(0x80 | (cp & 0x3F)), ne = 3;
        } else {
          enc[0] = (uint8_t)(0xF0 | cp >> 18), enc[1] = (uint8_t)(0x80 | (cp >> 12 & 0x3F));
          enc[2] = (uint8_t)(0x80 | (cp >> 6 & 0x3F)), enc[3] = (uint8_t)(0x80 | (cp & 0x3F));
          ne = 4;
        }
        break;
      }
      default:
        p->i -= 1;
        return jerr(p, "invalid escape '\\%c'", e >= 0x20 && e < 0x7F ? e : '?');
      }
    }
    if (k + ne < cap) {
      memcpy(out + k, enc, ne);
      k += ne;
    } else {
      toolong = 1;
    }
  }
  out[k < cap ? k : cap - 1] = 0;
  return nul ? -3 : toolong ? -2 : 0;
}

/* A non-negative JSON integer (no sign, fraction or exponent) <= INT64_MAX.
 * neg_ok: a leading '-' parses (the caller reports negative values itself). */
static int jint(jp *p, int64_t *v, int neg_ok) {
  ws(p);
  size_t start = p->i;
  int neg = 0;
  if (p->i < p->n && p->s[p->i] == '-') {
    if (!neg_ok)
      return jerr(p, "expected a non-negative integer");
    neg = 1;
    p->i++;
  }
  if (p->i >= p->n || p->s[p->i] < '0' || p->s[p->i] > '9') {
    p->i = start;
    return jerr(p, "expected an integer");
  }
  if (p->s[p->i] == '0' && p->i + 1 < p->n && p->s[p->i + 1] >= '0' && p->s[p->i + 1] <= '9')
    return jerr(p, "leading zero in integer");
  uint64_t x = 0;
  while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') {
    uint64_t d = p->s[p->i] - (uint64_t)'0';
    if (x > ((uint64_t)INT64_MAX - d) / 10) {
      p->i = start;
      return jerr(p, "integer out of range");
    }
    x = x * 10 + d;
    p->i++;
  }
  if (p->i < p->n && (p->s[p->i] == '.' || p->s[p->i] == 'e' || p->s[p->i] == 'E')) {
    p->i = start;
    return jerr(p, "expected an integer, found a fraction or exponent");
  }
  *v = neg ? -(int64_t)x : (int64_t)x;
  return 0;
}

/* Growable arrays capped by the format's limits. */
static int grow(void **arr, int *cap, int need, size_t elem) {
  if (need <= *cap)
    return 0;
  int c = *cap ? *cap * 2 : 16;
  while (c < need)
    c *= 2;
  void *p = realloc(*arr, (size_t)c * elem);
  if (!p)
    return -1;
  *arr = p, *cap = c;
  return 0;
}

typedef struct {
  blpo_st_tensor t;
  uint64_t begin, end;
} tinfo;

static int parse_tensor(jp *p, tinfo *ti) {
  char key[32], val[32];
  size_t at;
  int seen_dtype = 0, seen_shape = 0, seen_off = 0;
  if (expect(p, '{') != 0)
    return -1;
  if (peek(p) == '}')
    return jerr(p, "tensor '%s': missing dtype, shape and data_offsets", ti->t.name);
  for (;;) {
    int r = jstring(p, key, sizeof key, &at);
    if (r == -1)
      return -1;
    if (r == 0 && strcmp(key, "dtype") == 0) {
      if (seen_dtype++)
        return jerr(p, "tensor '%s': duplicate field \"dtype\"", ti->t.name);
      if (expect(p, ':') != 0)
        return -1;
      r = jstring(p, val, sizeof val, &at);
      if (r == -1)
        return -1;
      int d = -1;
      for (int k = 0; r == 0 && k < NUM_DTYPES; k++)
        if (strcmp(val, dtype_names[k]) == 0)
          d = k;
      if (d < 0) {
        p->i = at;
        return jerr(p,
                    "tensor '%s': unsupported dtype \"%s\" (expected F32, F64, I32, U32, "
                    "I64, U64 or U8)",
                    ti->t.name, r == 0 ? val : "...");
      }
      ti->t.dtype = (blpo_st_dtype)d;
    } else if (r == 0 && strcmp(key, "shape") == 0) {
      if (seen_shape++)
        return jerr(p, "tensor '%s': duplicate field \"shape\"", ti->t.name);
      if (expect(p, ':') != 0 || expect(p, '[') != 0)
        return -1;
      ti->t.ndim = 0;
      if (peek(p) == ']') {
        p->i++;
      } else {
        for (;;) {
          int64_t v;
          size_t vat = (ws(p), p->i);
          if (ti->t.ndim == BLPO_ST_MAX_DIMS)
            return jerr(p, "tensor '%s': more than %d dimensions", ti->t.name, BLPO_ST_MAX_DIMS);
          if (jint(p, &v, 1) != 0)
            return -1;
          if (v < 0) {
            p->i = vat;
            return jerr(p, "tensor '%s': negative dimension %lld", ti->t.name, (long long)v);
          }
          ti->t.shape[ti->t.ndim++] = v;
          int c = peek(p);
          if (c == ']') {
            p->i++;
            break;
          }
          if (expect(p, ',') != 0)
            return jerr(p, "expected ',' or ']' in shape");
        }
      }
    } else if (r == 0 && strcmp(key, "data_offsets") == 0) {
      if (seen_off++)
        return jerr(p, "tensor '%s': duplicate field \"data_offsets\"", ti->t.name);
      int64_t b, e;
      if (expect(p, ':') != 0 || expect(p, '[') != 0 || jint(p, &b, 0) != 0 ||
          expect(p, ',') != 0 || jint(p, &e, 0) != 0)
        return -1;
      if (expect(p, ']') != 0)
        return jerr(p, "tensor '%s': data_offsets must be [begin, end]", ti->t.name);
      ti->begin = (uint64_t)b, ti->end = (uint64_t)e;
    } else {
      p->i = at;
      return jerr(p, "tensor '%s': unknown field (expected dtype, shape, data_offsets)",
                  ti->t.name);
    }
    int c = peek(p);
    if (c == '}') {
      p->i++;
      break;
    }
    if (expect(p, ',') != 0)
      return jerr(p, "expected ',' or '}' in tensor '%s'", ti->t.name);
  }
  if (!seen_dtype || !seen_shape || !seen_off)
    return jerr(p, "tensor '%s': missing %s", ti->t.name,
                !seen_dtype   ? "dtype"
                : !seen_shape ? "shape"
                              : "data_offsets");
  return 0;
}

static int parse_meta(jp *p, blpo_st_file *out, int *cap) {
  size_t at;
  if (expect(p, '{') != 0)
    return -1;
  if (peek(p) == '}') {
    p->i++;
    return 0;
  }
  for (;;) {
    if (out->num_meta == BLPO_ST_MAX_META)
      return jerr(p, "more than %d metadata entries", BLPO_ST_MAX_META);
    if (grow((void **)&out->meta, cap, out->num_meta + 1, sizeof *out->meta) != 0)
      return jerr(p, "out of memory");
    blpo_st_meta *m = &out->meta[out->num_meta];
    int r = jstring(p, m->key, sizeof m->key, &at);
    if (r == -1)
      return -1;
    if (r != 0) {
      p->i = at;
      return jerr(p, "metadata key %s", r == -3 ? "contains \\u0000" : "longer than 63 bytes");
    }
    for (int k = 0; k < out->num_meta; k++) {
      if (strcmp(out->meta[k].key, m->key) == 0) {
        p->i = at;
        return jerr(p, "duplicate metadata key \"%s\"", m->key);
      }
    }
    if (expect(p, ':') != 0)
      return -1;
    if (peek(p) != '"')
      return jerr(p, "metadata \"%s\": value must be a string", m->key);
    r = jstring(p, m->value, sizeof m->value, &at);
    if (r == -1)
      return -1;
    if (r != 0) {
      p->i = at;
      return jerr(p, "metadata \"%s\": value %s", m->key,
                  r == -3 ? "contains \\u0000" : "longer than 1023 bytes");
    }
    out->num_meta++;
    int c = peek(p);
    if (c == '}') {
      p->i++;
      return 0;
    }
    if (expect(p, ',') != 0)
      return jerr(p, "expected ',' or '}' in __metadata__");
  }
}

static int cmp_offsets(const void *a, const void *b) {
  const tinfo *x = a, *y = b;
  if (x->begin != y->begin)
    return x->begin < y->begin ? -1 : 1;
  if (x->end != y->end)
    return x->end < y->end ? -1 : 1;
  return 0;
}

static int cmp_names(const void *a, const void *b) {
  const tinfo *x = *(const tinfo *const *)a, *y = *(const tinfo *const *)b;
  return strcmp(x->t.name, y->t.name);
}

void blpo_st_free(blpo_st_file *f) {
  if (!f)
    return;
  free(f->tensors);
  free(f->meta);
  free(f->blob);
  memset(f, 0, sizeof *f);
}

int blpo_st_parse(const uint8_t *buf, size_t len, blpo_st_file *out, char *err, size_t errlen) {
  if (!out)
    return -1;
  memset(out, 0, sizeof *out);
  if (!buf && len > 0) {
    seterr(err, errlen, "invalid arguments");
    return -1;
  }
  if (len < 8) {
    seterr(err, errlen, "truncated: file has %zu bytes, the header length alone takes 8", len);
    return -1;
  }
  uint64_t hlen = 0;
  for (int k = 7; k >= 0; k--)
    hlen = hlen << 8 | buf[k];
  if (hlen > BLPO_ST_MAX_HEADER) {
    seterr(err, errlen, "header length %llu is absurd (limit %u bytes)", (unsigned long long)hlen,
           BLPO_ST_MAX_HEADER);
    return -1;
  }
  if (hlen > len - 8) {
    seterr(err, errlen, "truncated: header says %llu bytes, file has %zu", (unsigned long long)hlen,
           len - 8);
    return -1;
  }
  const uint8_t *hdr = buf + 8;
  const uint8_t *data = hdr + hlen;
  uint64_t dlen = len - 8 - hlen;
  size_t bad = utf8_check(hdr, (size_t)hlen);
  if (bad != (size_t)hlen) {
    seterr(err, errlen, "invalid UTF-8 in header at byte %zu", bad);
    return -1;
  }

  jp p = {hdr, (size_t)hlen, 0, err, errlen};
  tinfo *ti = NULL;
  int nt = 0, tcap = 0, mcap = 0, seen_meta = 0;
  const tinfo **byname = NULL;
  if (expect(&p, '{') != 0)
    goto fail;
  if (peek(&p) == '}') {
    p.i++;
  } else {
    for (;;) {
      char name[128];
      size_t at;
      int r = jstring(&p, name, sizeof name, &at);
      if (r == -1)
        goto fail;
      if (r != 0) {
        p.i = at;
        jerr(&p, "tensor name %s", r == -3 ? "contains \\u0000" : "longer than 127 bytes");
        goto fail;
      }
      if (strcmp(name, "__metadata__") == 0) {
        if (seen_meta++) {
          p.i = at;
          jerr(&p, "duplicate __metadata__");
          goto fail;
        }
        if (expect(&p, ':') != 0 || parse_meta(&p, out, &mcap) != 0)
          goto fail;
      } else {
        if (name[0] == 0) {
          p.i = at;
          jerr(&p, "empty tensor name");
          goto fail;
        }
        if (nt == BLPO_ST_MAX_TENSORS) {
          p.i = at;
          jerr(&p, "more than %d tensors", BLPO_ST_MAX_TENSORS);
          goto fail;
        }
        if (grow((void **)&ti, &tcap, nt + 1, sizeof *ti) != 0) {
          jerr(&p, "out of memory");
          goto fail;
        }
        memset(&ti[nt], 0, sizeof ti[nt]);
        memcpy(ti[nt].t.name, name, sizeof name);
        if (expect(&p, ':') != 0 || parse_tensor(&p, &ti[nt]) != 0)
          goto fail;
        nt++;
      }
      int c = peek(&p);
      if (c == '}') {
        p.i++;
        break;
      }
      if (expect(&p, ',') != 0) {
        jerr(&p, "expected ',' or '}' after a top-level entry");
        goto fail;
      }
    }
  }
  ws(&p);
  if (p.i != p.n) {
    jerr(&p, "unexpected bytes after the header object");
    goto fail;
  }

  /* duplicate names */
  if (nt > 1) {
    byname = malloc((size_t)nt * sizeof *byname);
    if (!byname) {
      seterr(err, errlen, "out of memory");
      goto fail;
    }
    for (int i = 0; i < nt; i++)
      byname[i] = &ti[i];
    qsort(byname, (size_t)nt, sizeof *byname, cmp_names);
    for (int i = 1; i < nt; i++) {
      if (strcmp(byname[i]->t.name, byname[i - 1]->t.name) == 0) {
        seterr(err, errlen, "duplicate tensor name '%s'", byname[i]->t.name);
        goto fail;
      }
    }
  }

  /* sizes against shapes, then coverage of the buffer */
  for (int i = 0; i < nt; i++) {
    blpo_st_tensor *t = &ti[i].t;
    char sh[128];
    shape_str(sh, sizeof sh, t->ndim, t->shape);
    int ok;
    uint64_t nb = tensor_bytes(t->dtype, t->ndim, t->shape, &ok);
    if (!ok) {
      seterr(err, errlen, "tensor '%s': %s %s overflows 64-bit byte count", t->name,
             dtype_names[t->dtype], sh);
      goto fail;
    }
    if (ti[i].begin > ti[i].end) {
      seterr(err, errlen, "tensor '%s': data_offsets [%llu, %llu] out of order", t->name,
             (unsigned long long)ti[i].begin, (unsigned long long)ti[i].end);
      goto fail;
    }
    if (ti[i].end - ti[i].begin != nb) {
      seterr(err, errlen, "tensor '%s': data_offsets [%llu, %llu] do not match %s %s = %llu bytes",
             t->name, (unsigned long long)ti[i].begin, (unsigned long long)ti[i].end,
             dtype_names[t->dtype], sh, (unsigned long long)nb);
      goto fail;
    }
    if (ti[i].end > dlen) {
      seterr(err, errlen,
             "tensor '%s': data_offsets [%llu, %llu] past the end of the %llu-byte buffer%s",
             t->name, (unsigned long long)ti[i].begin, (unsigned long long)ti[i].end,
             (unsigned long long)dlen, " (truncated file?)");
      goto fail;
    }
    t->nbytes = (size_t)nb;
  }
  if (nt > 1)
    qsort(ti, (size_t)nt, sizeof *ti, cmp_offsets);
  uint64_t pos = 0;
  for (int i = 0; i < nt; i++) {
    if (ti[i].begin < pos) {
      seterr(err, errlen, "tensor '%s': data_offsets [%llu, %llu] overlap tensor '%s' [%llu, %llu]",
             ti[i].t.name, (unsigned long long)ti[i].begin, (unsigned long long)ti[i].end,
             ti[i - 1].t.name, (unsigned long long)ti[i - 1].begin,
             (unsigned long long)ti[i - 1].end);
      goto fail;
    }
    if (ti[i].begin > pos) {
      seterr(err, errlen, "hole in the data buffer: bytes [%llu, %llu) belong to no tensor",
             (unsigned long long)pos, (unsigned long long)ti[i].begin);
      goto fail;
    }
    pos = ti[i].end;
  }
  if (pos != dlen) {
    seterr(err, errlen, "trailing bytes: tensors cover %llu of the %llu-byte data buffer",
           (unsigned long long)pos, (unsigned long long)dlen);
    goto fail;
  }

  /* copy: each tensor 16-byte aligned in one blob */
  size_t total = ALIGN;
  for (int i = 0; i < nt; i++)
    total += (ti[i].t.nbytes + ALIGN - 1) / ALIGN * ALIGN; /* <= dlen + 16 nt: no overflow */
  out->blob = aligned_alloc(ALIGN, total);
  if (nt > 0)
    out->tensors = malloc((size_t)nt * sizeof *out->tensors);
  if (!out->blob || (nt > 0 && !out->tensors)) {
    seterr(err, errlen, "out of memory (%zu bytes of tensor data)", total);
    goto fail;
  }
  size_t o = 0;
  for (int i = 0; i < nt; i++) {
    out->tensors[i] = ti[i].t;
    out->tensors[i].data = (uint8_t *)out->blob + o;
    if (ti[i].t.nbytes)
      memcpy(out->tensors[i].data, data + ti[i].begin, ti[i].t.nbytes);
    o += (ti[i].t.nbytes + ALIGN - 1) / ALIGN * ALIGN;
  }
  out->num_tensors = nt;
  free(ti);
  free(byname);
  return 0;

fail:
  free(ti);
  free(byname);
  blpo_st_free(out);
  return -1;
}

int blpo_st_read(const char *path, blpo_st_file *out, char *err, size_t errlen) {
  if (out)
    memset(out, 0, sizeof *out);
  if (!path || !out) {
    seterr(err, errlen, "invalid arguments");
    return -1;
  }
  FILE *fp = fopen(path, "rb");
  if (!fp) {
    seterr(err, errlen, "%s: %s", path, strerror(errno));
    return -1;
  }
  struct stat st;
  if (fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode)) {
    seterr(err, errlen, "%s: not a regular file", path);
    fclose(fp);
    return -1;
  }
  size_t len = (size_t)st.st_size;
  uint8_t *buf = malloc(len ? len : 1);
  if (!buf) {
    seterr(err, errlen, "%s: out of memory (%zu bytes)", path, len);
    fclose(fp);
    return -1;
  }
  size_t got = fread(buf, 1, len, fp);
  int rerr = ferror(fp);
  fclose(fp);
  if (rerr || got != len) {
    seterr(err, errlen, "%s: read error", path);
    free(buf);
    return -1;
  }
  char msg[512] = "";
  int r = blpo_st_parse(buf, len, out, msg, sizeof msg);
  free(buf);
  if (r != 0)
    seterr(err, errlen, "%s: %s", path, msg);
  return r;
}

const blpo_st_tensor *blpo_st_find(const blpo_st_file *f, const char *name) {
  for (int i = 0; f && name && i < f->num_tensors; i++)
    if (strcmp(f->tensors[i].name, name) == 0)
      return &f->tensors[i];
  return NULL;
}

const char *blpo_st_meta_get(const blpo_st_file *f, const char *key) {
  for (int i = 0; f && key && i < f->num_meta; i++)
    if (strcmp(f->meta[i].key, key) == 0)
      return f->meta[i].value;
  return NULL;
}
