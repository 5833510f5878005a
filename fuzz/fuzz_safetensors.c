/* libFuzzer target: the safetensors parser must refuse any input without
 * crashing, leaking or reading out of bounds. Build with tools/fuzz.sh. */
#include <stddef.h>
#include <stdint.h>

#include "blpo/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  blpo_st_file f;
  char err[256];
  if (blpo_st_parse(data, size, &f, err, sizeof err) == 0) {
    /* touch everything the parser promises to be valid */
    volatile uint8_t sink = 0;
    for (int i = 0; i < f.num_tensors; i++) {
      const uint8_t *p = f.tensors[i].data;
      if (f.tensors[i].nbytes)
        sink ^= p[0] ^ p[f.tensors[i].nbytes - 1];
      if (blpo_st_find(&f, f.tensors[i].name) != &f.tensors[i])
        __builtin_trap(); /* duplicate names must have been refused */
    }
    for (int i = 0; i < f.num_meta; i++)
      (void)blpo_st_meta_get(&f, f.meta[i].key);
    (void)sink;
  }
  blpo_st_free(&f);
  return 0;
}
