/* libFuzzer target: the YAML config loader must report errors, never crash.
 * blpo_config_load_file has no in-memory entry point, so each input is written
 * to one file created once with mkstemp. The loader's error messages go to
 * stderr; fd 2 points at /dev/null only while the loader runs, and sanitizer
 * reports go to the real stderr (kept as another fd), so libFuzzer's own
 * output and crash reports stay visible. */
#define _POSIX_C_SOURCE 200809L

#include <fcntl.h>
#include <sanitizer/common_interface_defs.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "blpo/config_load.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char g_path[] = "/tmp/blpo_fuzz_config_XXXXXX";
static int g_fd = -1, g_null = -1, g_stderr = -1;

static void cleanup(void) { unlink(g_path); }

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  g_fd = mkstemp(g_path);
  if (g_fd < 0) {
    perror("mkstemp");
    abort();
  }
  atexit(cleanup);
  g_null = open("/dev/null", O_WRONLY);
  g_stderr = dup(2);
  if (g_null < 0 || g_stderr < 0)
    abort();
  __sanitizer_set_report_fd((void *)(intptr_t)g_stderr);
  return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (ftruncate(g_fd, 0) != 0 || pwrite(g_fd, data, size, 0) != (ssize_t)size)
    abort();
  blpo_config c;
  blpo_config_src src = {0};
  blpo_config_defaults(&c);
  fflush(stderr);
  dup2(g_null, 2);
  (void)blpo_config_load_file(&c, &src, g_path);
  fflush(stderr);
  dup2(g_stderr, 2);
  return 0;
}
