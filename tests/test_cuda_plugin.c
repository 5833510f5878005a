/* The CUDA backend plugin's loader (src/cuda_loader.c), one scenario per
 * process (the loader decides once per process):
 *   cpu-only   a CPU run never maps the CUDA runtime; without an NVIDIA
 *              driver the reason says so
 *   real PATH  the built plugin loads (the CUDA runtime is then mapped) and
 *              answers: a device count, or the runtime's own reason for none
 *   missing    BLPO_CUDA_PLUGIN names no file: a clear reason, no crash
 *   foreign    a shared library without the entry point is refused
 *   stale      a plugin from another build (other ABI) is refused
 *   mismatched a plugin with this ABI but other seam struct sizes is refused
 * The scenario's BLPO_CUDA_PLUGIN comes from CTest (tests/gpu.cmake). */
#define _POSIX_C_SOURCE 200809L
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blpo/backend.h"
#include "blpo/cuda_device.h"
#include "blpo/cuda_plugin.h"
#include "test_util.h"

/* 1 if a library whose path contains name is mapped into this process. */
static int mapped(const char *name) {
  FILE *f = fopen("/proc/self/maps", "r");
  char line[4096];
  int found = 0;
  if (!f)
    return -1;
  while (!found && fgets(line, sizeof(line), f))
    found = strstr(line, name) != NULL;
  fclose(f);
  return found;
}

static int driver_present(void) {
  void *h = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL);
  if (h)
    dlclose(h);
  return h != NULL;
}

int main(int argc, char **argv) {
  const char *mode = argc > 1 ? argv[1] : "";
  char why[1024] = "";
  if (!strcmp(mode, "cpu-only")) {
    blpo_backend *cpu = blpo_backend_cpu_create(1);
    CHECK(cpu != NULL, "CPU backend");
    cpu->destroy(cpu);
    CHECK(mapped("libcudart") == 0, "a CPU backend mapped the CUDA runtime");
    if (!driver_present()) {
      int n = blpo_cuda_device_count(why, sizeof(why));
      CHECK(n == 0, "%d devices without a driver", n);
      CHECK(strstr(why, "no NVIDIA driver") != NULL, "reason: %s", why);
      CHECK(mapped("libcudart") == 0, "the runtime was mapped only to find no driver");
      CHECK(blpo_backend_cuda_create(why, sizeof(why)) == NULL, "a CUDA backend without a driver");
      printf("test_cuda_plugin: cpu-only: %s\n", why);
    } else {
      printf("test_cuda_plugin: cpu-only: a driver is present; only the CPU part checked\n");
    }
  } else if (!strcmp(mode, "real")) {
    int n = blpo_cuda_device_count(why, sizeof(why));
    CHECK(blpo_cuda_plugin_status()[0] == 0, "the built plugin did not load: %s",
          blpo_cuda_plugin_status());
    CHECK(mapped("libblpo-cuda.so") == 1, "plugin not mapped");
    CHECK(mapped("libcudart") == 1, "plugin loaded without its CUDA runtime");
    CHECK(n > 0 || why[0] != 0, "no device and no reason");
    printf("test_cuda_plugin: real: %d device(s)%s%s\n", n, n ? "" : ": ", n ? "" : why);
  } else if (!strcmp(mode, "missing") || !strcmp(mode, "foreign") || !strcmp(mode, "stale") ||
             !strcmp(mode, "mismatched")) {
    const char *expect = !strcmp(mode, "missing")      ? "cannot load the CUDA backend plugin"
                         : !strcmp(mode, "foreign")    ? "is not a blpo-gpu CUDA plugin"
                         : !strcmp(mode, "mismatched") ? "seam signature"
                                                       : "comes from another build";
    CHECK(blpo_cuda_device_count(why, sizeof(why)) == 0, "devices through a bad plugin");
    CHECK(strstr(why, expect) != NULL, "reason '%s' lacks '%s'", why, expect);
    CHECK(blpo_backend_cuda_create(why, sizeof(why)) == NULL, "a backend from a bad plugin");
    char name[64] = "unset";
    blpo_cuda_device_name(name, sizeof(name));
    CHECK(name[0] == 0, "device name '%s' from a bad plugin", name);
    printf("test_cuda_plugin: %s: %s\n", mode, why);
  } else {
    fprintf(stderr, "usage: test_cuda_plugin cpu-only|real|missing|foreign|stale|mismatched\n");
    return 2;
  }
  return test_summary("test_cuda_plugin");
}
