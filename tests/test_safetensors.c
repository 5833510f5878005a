/* safetensors reader/writer: round trip of every dtype, then each corruption
 * class is refused with its own message; a failed write leaves nothing. CPU
 * only; works in a mkdtemp directory and removes it. */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blpo/safetensors.h"
#include "test_util.h"

static char g_dir[256];

static uint8_t *slurp(const char *path, size_t *len) {
  FILE *fp = fopen(path, "rb");
  if (!fp)
    return NULL;
  fseek(fp, 0, SEEK_END);
  long n = ftell(fp);
  fseek(fp, 0, SEEK_SET);
  uint8_t *b = malloc(n > 0 ? (size_t)n : 1);
  *len = b ? fread(b, 1, (size_t)n, fp) : 0;
  fclose(fp);
  return b;
}

static void spill(const char *path, const void *b, size_t n) {
  FILE *fp = fopen(path, "wb");
  if (fp) {
    fwrite(b, 1, n, fp);
    fclose(fp);
  }
}

/* Builds a file image from a header string and a buffer of dlen bytes. */
static uint8_t *image(const char *hdr, size_t dlen, size_t *len) {
  size_t h = strlen(hdr);
  *len = 8 + h + dlen;
  uint8_t *b = calloc(1, *len);
  for (int k = 0; k < 8; k++)
    b[k] = (uint8_t)((uint64_t)h >> (8 * k));
  memcpy(b + 8, hdr, h);
  for (size_t i = 0; i < dlen; i++)
    b[8 + h + i] = (uint8_t)i;
  return b;
}

/* Parses and expects failure whose message contains want. */
static void expect_fail(const uint8_t *b, size_t len, const char *want, const char *what) {
  blpo_st_file f;
  char err[512] = "";
  int r = blpo_st_parse(b, len, &f, err, sizeof err);
  CHECK(r == -1, "%s: parse succeeded", what);
  CHECK(strstr(err, want) != NULL, "%s: message '%s' lacks '%s'", what, err, want);
  CHECK(f.num_tensors == 0 && f.tensors == NULL && f.blob == NULL, "%s: output not empty", what);
  blpo_st_free(&f);
}

static void expect_hdr_fail(const char *hdr, size_t dlen, const char *want) {
  size_t len;
  uint8_t *b = image(hdr, dlen, &len);
  expect_fail(b, len, want, hdr);
  free(b);
}

static void test_round_trip(const char *path) {
  float f32[6] = {1.5f, -2.25f, 3.0f, 1e-30f, -0.0f, 7.0f};
  double f64[3] = {3.141592653589793, -1e300, 2.5e-308};
  int32_t i32[4] = {-1, 2147483647, -2147483647 - 1, 0};
  uint32_t u32[2] = {4294967295u, 7u};
  int64_t i64[1] = {-9223372036854775807ll - 1};
  uint64_t u64[2] = {18446744073709551615ull, 42};
  uint8_t u8[5] = {0, 1, 127, 128, 255};
  float scalar = 42.0f;
  blpo_st_tensor t[9];
  memset(t, 0, sizeof t);
#define T(i, nm, dt, nd, s0, s1, s2, ptr, nb)                                                      \
  do {                                                                                             \
    snprintf(t[i].name, sizeof t[i].name, "%s", nm);                                               \
    t[i].dtype = dt, t[i].ndim = nd, t[i].shape[0] = s0, t[i].shape[1] = s1, t[i].shape[2] = s2;   \
    t[i].data = ptr, t[i].nbytes = nb;                                                             \
  } while (0)
  T(0, "actor.layers.0.weight", BLPO_ST_F32, 3, 1, 2, 3, f32, sizeof f32);
  T(1, "f64", BLPO_ST_F64, 1, 3, 0, 0, f64, sizeof f64);
  T(2, "empty", BLPO_ST_F32, 2, 4, 0, 0, NULL, 0);
  T(3, "i32", BLPO_ST_I32, 2, 2, 2, 0, i32, sizeof i32);
  T(4, "u32", BLPO_ST_U32, 1, 2, 0, 0, u32, sizeof u32);
  T(5, "i64", BLPO_ST_I64, 1, 1, 0, 0, i64, sizeof i64);
  T(6, "u64 \"quoted\" \\ name", BLPO_ST_U64, 1, 2, 0, 0, u64, sizeof u64);
  T(7, "u8", BLPO_ST_U8, 1, 5, 0, 0, u8, sizeof u8);
  T(8, "scalar", BLPO_ST_F32, 0, 0, 0, 0, &scalar, sizeof scalar);
#undef T
  blpo_st_meta m[3];
  memset(m, 0, sizeof m);
  snprintf(m[0].key, sizeof m[0].key, "format");
  snprintf(m[0].value, sizeof m[0].value, "blpo-gpu-checkpoint");
  snprintf(m[1].key, sizeof m[1].key, "tricky");
  snprintf(m[1].value, sizeof m[1].value,
           "say \"hi\" C:\\path\\ tab\there\nnewline / \x01 \xc3\xa9");
  snprintf(m[2].key, sizeof m[2].key, "empty");

  char err[512] = "";
  int r = blpo_st_write(path, t, 9, m, 3, err, sizeof err);
  CHECK(r == 0, "write: %s", err);
  char tmp[300];
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  CHECK(access(tmp, F_OK) != 0, "temporary left behind");

  size_t len = 0;
  uint8_t *b = slurp(path, &len);
  CHECK(b && len > 8, "cannot read back");
  if (!b)
    return;
  uint64_t h = 0;
  for (int k = 7; k >= 0; k--)
    h = h << 8 | b[k];
  CHECK(h % 8 == 0, "header length %llu not a multiple of 8", (unsigned long long)h);
  free(b);

  blpo_st_file f;
  r = blpo_st_read(path, &f, err, sizeof err);
  CHECK(r == 0, "read: %s", err);
  if (r != 0)
    return;
  CHECK(f.num_tensors == 9, "num_tensors %d", f.num_tensors);
  CHECK(f.num_meta == 3, "num_meta %d", f.num_meta);
  for (int i = 0; i < 9; i++) {
    const blpo_st_tensor *g = blpo_st_find(&f, t[i].name);
    CHECK(g != NULL, "tensor '%s' missing", t[i].name);
    if (!g)
      continue;
    CHECK(g->dtype == t[i].dtype && g->ndim == t[i].ndim && g->nbytes == t[i].nbytes,
          "tensor '%s': dtype/ndim/nbytes differ", t[i].name);
    for (int d = 0; d < t[i].ndim; d++)
      CHECK(g->shape[d] == t[i].shape[d], "tensor '%s': shape[%d]", t[i].name, d);
    CHECK(g->data != NULL && (uintptr_t)g->data % 16 == 0, "tensor '%s': data not aligned",
          t[i].name);
    CHECK(t[i].nbytes == 0 || memcmp(g->data, t[i].data, t[i].nbytes) == 0,
          "tensor '%s': bytes differ", t[i].name);
  }
  for (int i = 0; i < 3; i++) {
    const char *v = blpo_st_meta_get(&f, m[i].key);
    CHECK(v && strcmp(v, m[i].value) == 0, "meta '%s': '%s'", m[i].key, v ? v : "(null)");
  }
  CHECK(blpo_st_find(&f, "nope") == NULL, "found a missing tensor");
  CHECK(blpo_st_meta_get(&f, "nope") == NULL, "found a missing key");
  blpo_st_free(&f);
  CHECK(f.tensors == NULL && f.num_tensors == 0, "free did not reset");
  blpo_st_free(&f);

  /* an empty file (no tensors, no metadata) round trips too */
  char p2[300];
  snprintf(p2, sizeof p2, "%s/empty.safetensors", g_dir);
  CHECK(blpo_st_write(p2, NULL, 0, NULL, 0, err, sizeof err) == 0, "write empty: %s", err);
  CHECK(blpo_st_read(p2, &f, err, sizeof err) == 0 && f.num_tensors == 0, "read empty: %s", err);
  blpo_st_free(&f);
  remove(p2);
}

static void test_truncation(const char *path) {
  size_t len = 0;
  uint8_t *b = slurp(path, &len);
  if (!b)
    return;
  uint64_t h = 0;
  for (int k = 7; k >= 0; k--)
    h = h << 8 | b[k];
  size_t cuts[] = {
      0,      3, 7, 8, 9, 8 + (size_t)h / 2, 8 + (size_t)h - 1, 8 + (size_t)h, 8 + (size_t)h + 1,
      len - 1};
  const char *want[] = {"truncated", "truncated", "truncated",    "truncated",    "truncated",
                        "truncated", "truncated", "past the end", "past the end", "past the end"};
  for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
    char what[64];
    snprintf(what, sizeof what, "cut at %zu of %zu", cuts[i], len);
    expect_fail(b, cuts[i], want[i], what);
  }
  /* the same through the file reader, with the path in the message */
  char p2[300];
  snprintf(p2, sizeof p2, "%s/cut.safetensors", g_dir);
  spill(p2, b, 40);
  blpo_st_file f;
  char err[512];
  CHECK(blpo_st_read(p2, &f, err, sizeof err) == -1, "cut file read");
  CHECK(strstr(err, "cut.safetensors: truncated: header says") != NULL, "message '%s'", err);
  printf("  e.g. %s\n", err);
  remove(p2);
  CHECK(blpo_st_read(p2, &f, err, sizeof err) == -1 && strstr(err, "No such file"),
        "missing file: '%s'", err);

  /* trailing bytes after the last tensor */
  uint8_t *b2 = malloc(len + 3);
  memcpy(b2, b, len);
  memset(b2 + len, 0xAB, 3);
  expect_fail(b2, len + 3, "trailing bytes", "3 trailing bytes");
  /* header length lies: too large for the file, absurd, and too small */
  memcpy(b2, b, len);
  b2[0] = (uint8_t)(b2[0] + 8);
  expect_fail(b2, len, "", "header length +8");
  b2[0] = b[0], b2[1] = b[1], b2[2] = b[2], b2[3] = 0x7F;
  expect_fail(b2, len, "absurd", "header length 2 GB");
  memset(b2, 0xFF, 8);
  expect_fail(b2, len, "absurd", "header length 2^64-1");
  memcpy(b2, b, len);
  b2[0] = (uint8_t)(b2[0] - 8), b2[1] = b[1] - (b[0] < 8);
  expect_fail(b2, len, "invalid header JSON", "header length -8");
  free(b2);
  free(b);
}

static void test_corruptions(void) {
  const char *ok = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}}";
  size_t len;
  uint8_t *b = image(ok, 24, &len);
  blpo_st_file f;
  char err[512];
  CHECK(blpo_st_parse(b, len, &f, err, sizeof err) == 0, "valid image refused: %s", err);
  blpo_st_free(&f);
  free(b);

  /* garbage JSON */
  expect_hdr_fail("", 0, "expected '{', found end of header");
  expect_hdr_fail("hello world", 0, "invalid header JSON at byte 0: expected '{'");
  expect_hdr_fail("{\"a\" {}}", 0, "invalid header JSON at byte 5: expected ':'");
  expect_hdr_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}", 4,
                  "at byte 53: expected ',' or '}' after a top-level entry");
  expect_hdr_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}}", 4,
                  "unexpected bytes after the header object");
  expect_hdr_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},}", 4,
                  "expected string");
  expect_hdr_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", 4,
                  "fraction or exponent");
  expect_hdr_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[01],\"data_offsets\":[0,4]}}", 4,
                  "leading zero");
  expect_hdr_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}}", 4,
                  "unknown field");
  expect_hdr_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 0, "missing data_offsets");
  expect_hdr_fail("{\"a\":{\"dtype\":\"F32\",\"dtype\":\"F32\"}}", 0, "duplicate field");
  expect_hdr_fail("{\"a\\q\":{}}", 0, "invalid escape");
  expect_hdr_fail("{\"a\\u00\":{}}", 0, "bad hex digit");
  expect_hdr_fail("{\"a\\ud800\":{}}", 0, "unpaired high surrogate");
  expect_hdr_fail("{\"a\\u0000\":{}}", 0, "tensor name contains \\u0000");
  expect_hdr_fail("{\"a\nb\":{}}", 0, "control character");
  expect_hdr_fail("{\"\xc3\x28\":{}}", 0, "invalid UTF-8 in header at byte 2");
  expect_hdr_fail("{\"\xed\xa0\x80\":{}}", 0, "invalid UTF-8"); /* encoded surrogate */
  expect_hdr_fail("{\"\xc0\xaf\":{}}", 0, "invalid UTF-8");     /* overlong '/' */
  /* dtype, shape */
  expect_hdr_fail("{\"a\":{\"dtype\":\"BF16\",\"shape\":[1],\"data_offsets\":[0,2]}}", 2,
                  "tensor 'a': unsupported dtype \"BF16\"");
  expect_hdr_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,0]}}", 0,
                  "negative dimension -1");
  expect_hdr_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1],\"data_offsets\":[0,4]}}", 4,
                  "more than 4 dimensions");
  expect_hdr_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],"
                  "\"data_offsets\":[0,0]}}",
                  0, "overflows");
  expect_hdr_fail("{\"a\":{\"dtype\":\"U8\",\"shape\":[99999999999999999999],"
                  "\"data_offsets\":[0,0]}}",
                  0, "integer out of range");
  /* offsets */
  expect_hdr_fail("{\"actor.params\":{\"dtype\":\"F32\",\"shape\":[2,13],\"data_offsets\":[0,96]}}",
                  96,
                  "tensor 'actor.params': data_offsets [0, 96] do not match F32 [2, 13] = 104 "
                  "bytes");
  expect_hdr_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]}}", 8,
                  "out of order");
  expect_hdr_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                  "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                  12, "tensor 'b': data_offsets [4, 12] overlap tensor 'a' [0, 8]");
  expect_hdr_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                  "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
                  12, "hole in the data buffer: bytes [4, 8)");
  expect_hdr_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8,
                  "hole in the data buffer: bytes [0, 4)");
  expect_hdr_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 6,
                  "trailing bytes: tensors cover 4 of the 6-byte data buffer");
  expect_hdr_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8,
                  "past the end of the 8-byte buffer");
  expect_hdr_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,-4]}}", 4,
                  "expected a non-negative integer");
  /* names, metadata */
  expect_hdr_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                  "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                  8, "duplicate tensor name 'a'");
  char longname[300];
  memset(longname, 0, sizeof longname);
  longname[0] = '{', longname[1] = '"';
  memset(longname + 2, 'n', 128);
  strcat(longname, "\":{}}");
  expect_hdr_fail(longname, 0, "tensor name longer than 127 bytes");
  expect_hdr_fail("{\"\":{}}", 0, "empty tensor name");
  expect_hdr_fail("{\"__metadata__\":{\"k\":1}}", 0, "metadata \"k\": value must be a string");
  expect_hdr_fail("{\"__metadata__\":{\"k\":{\"x\":\"y\"}}}", 0, "value must be a string");
  expect_hdr_fail("{\"__metadata__\":{\"k\":\"v\",\"k\":\"w\"}}", 0, "duplicate metadata key");
  expect_hdr_fail("{\"__metadata__\":{},\"__metadata__\":{}}", 0, "duplicate __metadata__");
  /* valid oddities are accepted: padding, escapes, zero-size tensors anywhere */
  const char *good[] = {
      "{}       ",
      " \t\r\n{ \"__metadata__\" : { \"k\\/\\u00e9\\ud83d\\ude00\" : \"\\b\\f\" } }  ",
      "{\"z\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]},"
      "\"a\":{\"shape\":[],\"data_offsets\":[0,8],\"dtype\":\"F64\"},"
      "\"y\":{\"dtype\":\"I64\",\"shape\":[3,0],\"data_offsets\":[8,8]}}",
  };
  size_t gl[] = {0, 0, 8};
  for (int i = 0; i < 3; i++) {
    b = image(good[i], gl[i], &len);
    int r = blpo_st_parse(b, len, &f, err, sizeof err);
    CHECK(r == 0, "valid header %d refused: %s", i, err);
    if (i == 1 && r == 0) {
      const char *v = blpo_st_meta_get(&f, "k/\xc3\xa9\xf0\x9f\x98\x80");
      CHECK(v && strcmp(v, "\b\f") == 0, "escapes decoded wrongly");
    }
    if (i == 2 && r == 0) {
      CHECK(f.num_tensors == 3 && blpo_st_find(&f, "a")->ndim == 0, "scalar tensor");
    }
    blpo_st_free(&f);
    free(b);
  }
}

static void test_failed_write(void) {
  float x[2] = {1, 2};
  blpo_st_tensor t;
  memset(&t, 0, sizeof t);
  snprintf(t.name, sizeof t.name, "x");
  t.dtype = BLPO_ST_F32, t.ndim = 1, t.shape[0] = 2, t.data = x, t.nbytes = sizeof x;
  char err[512] = "", path[300], tmp[310];
  snprintf(path, sizeof path, "%s/no/such/dir/ck.safetensors", g_dir);
  CHECK(blpo_st_write(path, &t, 1, NULL, 0, err, sizeof err) == -1, "write into missing dir");
  CHECK(strstr(err, "cannot create") != NULL, "message '%s'", err);
  printf("  e.g. %s\n", err);
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  CHECK(access(path, F_OK) != 0 && access(tmp, F_OK) != 0, "something left behind");

  /* invalid tensors are refused before anything is created, and an existing
   * file is left as it was */
  snprintf(path, sizeof path, "%s/keep.safetensors", g_dir);
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  CHECK(blpo_st_write(path, &t, 1, NULL, 0, err, sizeof err) == 0, "write: %s", err);
  t.nbytes = 4;
  CHECK(blpo_st_write(path, &t, 1, NULL, 0, err, sizeof err) == -1 &&
            strstr(err, "nbytes 4 does not match F32 [2]"),
        "bad nbytes: '%s'", err);
  t.nbytes = sizeof x;
  blpo_st_tensor two[2] = {t, t};
  CHECK(blpo_st_write(path, two, 2, NULL, 0, err, sizeof err) == -1 &&
            strstr(err, "duplicate tensor name 'x'"),
        "duplicate: '%s'", err);
  CHECK(access(tmp, F_OK) != 0, "temporary left behind");
  blpo_st_file f;
  CHECK(blpo_st_read(path, &f, err, sizeof err) == 0 && f.num_tensors == 1, "original damaged");
  blpo_st_free(&f);
  /* a rename onto a directory fails after the temporary was written */
  char dpath[300];
  snprintf(dpath, sizeof dpath, "%s/adir", g_dir);
  mkdir(dpath, 0700);
  char sub[320];
  snprintf(sub, sizeof sub, "%s/x", dpath);
  spill(sub, "x", 1);
  CHECK(blpo_st_write(dpath, &t, 1, NULL, 0, err, sizeof err) == -1, "rename onto a dir");
  snprintf(tmp, sizeof tmp, "%s.tmp", dpath);
  CHECK(access(tmp, F_OK) != 0, "temporary left behind after failed rename: %s", err);
  printf("  e.g. %s\n", err);
  remove(sub);
  rmdir(dpath);
  remove(path);
}

int main(void) {
  snprintf(g_dir, sizeof g_dir, "/tmp/blpo_st_XXXXXX");
  if (!mkdtemp(g_dir)) {
    perror("mkdtemp");
    return 1;
  }
  char path[300];
  snprintf(path, sizeof path, "%s/rt.safetensors", g_dir);
  test_round_trip(path);
  test_truncation(path);
  test_corruptions();
  test_failed_write();
  remove(path);
  rmdir(g_dir);
  return test_summary("test_safetensors");
}
