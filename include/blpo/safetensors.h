/* Reading and writing safetensors files (https://huggingface.co/docs/safetensors):
 * an 8-byte little-endian u64 header length N, N bytes of UTF-8 JSON
 *   {"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...,
 *    "__metadata__": {"key": "string value", ...}}
 * padded with spaces, then the byte buffer (offsets relative to its start;
 * tensors contiguous, row-major, little-endian). Files written here open with
 * NumPy/PyTorch/JAX (`safetensors.numpy.load_file`).
 *
 * The reader validates everything before returning (it is fuzzed: see
 * fuzz/fuzz_safetensors.c) and says what is wrong, e.g.
 *   truncated: header says 812 bytes, file has 40
 *   tensor 'actor.params': data_offsets [0, 96] do not match F32 [2, 13] = 104 bytes
 *   invalid header JSON at byte 17: expected ':'
 * Byte positions in JSON messages count from the start of the JSON header
 * (add 8 for the file offset). */
#ifndef BLPO_SAFETENSORS_H
#define BLPO_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
  BLPO_ST_F32,
  BLPO_ST_F64,
  BLPO_ST_I32,
  BLPO_ST_U32,
  BLPO_ST_I64,
  BLPO_ST_U64,
  BLPO_ST_U8
} blpo_st_dtype;

#define BLPO_ST_MAX_DIMS 4
#define BLPO_ST_MAX_TENSORS 4096
#define BLPO_ST_MAX_META 1024
#define BLPO_ST_MAX_HEADER 100000000u /* bytes of JSON header accepted */

typedef struct {
  char name[128]; /* 1..127 bytes of UTF-8, no NUL */
  blpo_st_dtype dtype;
  int ndim; /* 0..4; 0 is a scalar (one element) */
  int64_t shape[4];
  void *data; /* reader: points into blpo_st_file.blob, 16-byte aligned */
  size_t nbytes;
} blpo_st_tensor;

typedef struct {
  char key[64];
  char value[1024];
} blpo_st_meta;

typedef struct {
  blpo_st_tensor *tensors; /* in the order of their data_offsets */
  int num_tensors;
  blpo_st_meta *meta;
  int num_meta;
  void *blob; /* owns every tensor's data */
} blpo_st_file;

/* "F32", "F64", "I32", "U32", "I64", "U64", "U8"; element size in bytes. */
const char *blpo_st_dtype_name(blpo_st_dtype dt);
size_t blpo_st_dtype_size(blpo_st_dtype dt);

/* Writes atomically: PATH.tmp, fwrite, fflush, fsync, fclose, rename; on any
 * failure the temporary is removed and PATH untouched. Tensors are laid out in
 * the order given; each t[i].nbytes must equal its shape's element count times
 * the element size. Returns 0 or -1 with a message in err. */
int blpo_st_write(const char *path, const blpo_st_tensor *t, int n, const blpo_st_meta *meta,
                  int nmeta, char *err, size_t errlen);

/* Reads and validates a whole file; 0 or -1 with a specific message in err.
 * On failure *out is left empty (blpo_st_free on it is harmless). */
int blpo_st_read(const char *path, blpo_st_file *out, char *err, size_t errlen);

/* The same from memory (copies what it keeps: buf may be freed afterwards). */
int blpo_st_parse(const uint8_t *buf, size_t len, blpo_st_file *out, char *err, size_t errlen);

/* NULL when absent. */
const blpo_st_tensor *blpo_st_find(const blpo_st_file *f, const char *name);
const char *blpo_st_meta_get(const blpo_st_file *f, const char *key);

/* Releases everything and zeroes *f; f may be NULL. */
void blpo_st_free(blpo_st_file *f);

#endif
