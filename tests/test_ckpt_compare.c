/* test_ckpt_compare A B: exit 0 if two checkpoints hold bit-identical
 * tensors (names, dtypes, shapes, bytes); metadata such as the wall time may
 * differ. Prints the first difference. */
#include <stdio.h>
#include <string.h>

#include "blpo/safetensors.h"

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: test_ckpt_compare A.safetensors B.safetensors\n");
    return 2;
  }
  blpo_st_file a, b;
  char err[512];
  if (blpo_st_read(argv[1], &a, err, sizeof(err)) != 0) {
    fprintf(stderr, "%s: %s\n", argv[1], err);
    return 1;
  }
  if (blpo_st_read(argv[2], &b, err, sizeof(err)) != 0) {
    fprintf(stderr, "%s: %s\n", argv[2], err);
    blpo_st_free(&a);
    return 1;
  }
  int diff = a.num_tensors != b.num_tensors;
  if (diff)
    printf("tensor counts differ: %d vs %d\n", a.num_tensors, b.num_tensors);
  for (int i = 0; i < a.num_tensors && !diff; i++) {
    const blpo_st_tensor *x = &a.tensors[i], *y = blpo_st_find(&b, x->name);
    if (!y || y->dtype != x->dtype || y->nbytes != x->nbytes || y->ndim != x->ndim) {
      printf("tensor '%s' missing or shaped differently in %s\n", x->name, argv[2]);
      diff = 1;
    } else if (memcmp(x->data, y->data, x->nbytes) != 0) {
      printf("tensor '%s' differs\n", x->name);
      diff = 1;
    }
  }
  if (!diff)
    printf("%d tensors bit-identical\n", a.num_tensors);
  blpo_st_free(&a);
  blpo_st_free(&b);
  return diff;
}
