/* Loads the CUDA backend plugin (include/blpo/cuda_plugin.h says why it is
 * one) on the first call that needs a GPU, and forwards to it. Built into
 * blpo_core when the CUDA backend is built.
 *
 * Search order: $BLPO_CUDA_PLUGIN (that file only, if set); next to the
 * executable; its parent directory (tests run from build/tests/);
 * <executable>/../<libdir>/blpo-gpu/ (an installed tree moved elsewhere);
 * the configured install directory; the build directory. Before loading it, the NVIDIA driver
 * library is looked up: without it no device can be used, and the CUDA libraries are not worth
 * mapping just to learn that. */
#define _POSIX_C_SOURCE 200809L /* access, dlopen under -std=c11 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "blpo/backend.h"
#include "blpo/cli.h"
#include "blpo/config.h" /* BLPO_PATH_MAX */
#include "blpo/cuda_device.h"
#include "blpo/cuda_plugin.h"

#ifndef BLPO_CUDA_PLUGIN_INSTALL_DIR
#define BLPO_CUDA_PLUGIN_INSTALL_DIR "/usr/local/lib/blpo-gpu"
#endif
#ifndef BLPO_CUDA_PLUGIN_BUILD_DIR
#define BLPO_CUDA_PLUGIN_BUILD_DIR "."
#endif
#ifndef BLPO_INSTALL_LIBDIR_NAME
#define BLPO_INSTALL_LIBDIR_NAME "lib"
#endif

/* Only the main thread loads the plugin (backend choice at start-up), so
 * this state needs no lock. */
static const blpo_cuda_plugin *loaded;
static int attempted;
static char status[1024];

/* dlopen()s path and checks its table; on failure writes why into status. */
static const blpo_cuda_plugin *open_plugin(const char *path) {
  void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!h) {
    snprintf(status, sizeof(status), "cannot load the CUDA backend plugin: %s", dlerror());
    return NULL;
  }
  blpo_cuda_plugin_get_fn get;
  /* ISO C has no function-pointer cast from void *; POSIX guarantees this copy */
  void *sym = dlsym(h, BLPO_CUDA_PLUGIN_ENTRY);
  memcpy(&get, &sym, sizeof(get));
  const blpo_cuda_plugin *p = sym ? get() : NULL;
  if (!p) {
    snprintf(status, sizeof(status), "%s is not a blpo-gpu CUDA plugin (no %s)", path,
             BLPO_CUDA_PLUGIN_ENTRY);
  } else if (p->abi != BLPO_CUDA_PLUGIN_ABI) {
    snprintf(status, sizeof(status),
             "%s comes from another build of blpo-gpu (plugin ABI %d, this program's %d); "
             "rebuild or point BLPO_CUDA_PLUGIN at the matching one",
             path, p->abi, BLPO_CUDA_PLUGIN_ABI);
    p = NULL;
  } else if (p->backend_size != sizeof(blpo_backend) || p->timer_slots != BLPO_TIMER_SLOTS) {
    snprintf(status, sizeof(status),
             "%s comes from another build of blpo-gpu (backend table %zu bytes, %d timer slots; "
             "this program: %zu, %d); rebuild or point BLPO_CUDA_PLUGIN at the matching one",
             path, p->backend_size, p->timer_slots, sizeof(blpo_backend), BLPO_TIMER_SLOTS);
    p = NULL;
  } else if (p->seam_signature != blpo_cuda_plugin_seam_signature()) {
    snprintf(status, sizeof(status),
             "%s comes from another build of blpo-gpu (the sizes of the structs its ops take "
             "differ: seam signature %016llx, this program's %016llx); rebuild or point "
             "BLPO_CUDA_PLUGIN at the matching one",
             path, (unsigned long long)p->seam_signature,
             (unsigned long long)blpo_cuda_plugin_seam_signature());
    p = NULL;
  }
  if (!p)
    dlclose(h);
  return p;
}

static const blpo_cuda_plugin *plugin(void) {
  if (attempted)
    return loaded;
  attempted = 1;
  const char *env = getenv("BLPO_CUDA_PLUGIN");
  if (env && *env) {
    loaded = open_plugin(env);
    return loaded;
  }
  /* no driver, no device: say so without mapping the CUDA libraries */
  void *drv = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL);
  if (!drv) {
    snprintf(status, sizeof(status), "no NVIDIA driver (%s)", dlerror());
    return NULL;
  }
  dlclose(drv);
  char dir[BLPO_PATH_MAX], cand[5][BLPO_PATH_MAX + 64];
  blpo_exe_dir(dir, sizeof(dir));
  int nc = 0;
  if (dir[0]) {
    snprintf(cand[nc++], sizeof(cand[0]), "%s/%s", dir, BLPO_CUDA_PLUGIN_FILE);
    /* a test in build/tests/ takes build/'s plugin before any installed one */
    snprintf(cand[nc++], sizeof(cand[0]), "%s/../%s", dir, BLPO_CUDA_PLUGIN_FILE);
    snprintf(cand[nc++], sizeof(cand[0]), "%s/../%s/blpo-gpu/%s", dir, BLPO_INSTALL_LIBDIR_NAME,
             BLPO_CUDA_PLUGIN_FILE);
  }
  snprintf(cand[nc++], sizeof(cand[0]), "%s/%s", BLPO_CUDA_PLUGIN_INSTALL_DIR,
           BLPO_CUDA_PLUGIN_FILE);
  snprintf(cand[nc++], sizeof(cand[0]), "%s/%s", BLPO_CUDA_PLUGIN_BUILD_DIR, BLPO_CUDA_PLUGIN_FILE);
  for (int i = 0; i < nc; i++)
    if (access(cand[i], R_OK) == 0) {
      /* the first one found decides: a broken plugin is reported, not skipped */
      loaded = open_plugin(cand[i]);
      if (loaded)
        status[0] = 0;
      return loaded;
    }
  snprintf(status, sizeof(status),
           "the CUDA backend plugin %s was not found (looked next to the executable, in its "
           "parent directory and its ../%s/blpo-gpu, in %s and in %s; BLPO_CUDA_PLUGIN names "
           "another)",
           BLPO_CUDA_PLUGIN_FILE, BLPO_INSTALL_LIBDIR_NAME, BLPO_CUDA_PLUGIN_INSTALL_DIR,
           BLPO_CUDA_PLUGIN_BUILD_DIR);
  return NULL;
}

const char *blpo_cuda_plugin_status(void) { return status; }

static void write_why(char *why, size_t why_len) {
  if (why && why_len)
    snprintf(why, why_len, "%s", status);
}

int blpo_cuda_device_count(char *why, size_t why_len) {
  const blpo_cuda_plugin *p = plugin();
  if (!p) {
    write_why(why, why_len);
    return 0;
  }
  return p->device_count(why, why_len);
}

void blpo_cuda_device_name(char *out, size_t len) {
  const blpo_cuda_plugin *p = plugin();
  if (p)
    p->device_name(out, len);
  else if (len)
    out[0] = 0;
}

blpo_backend *blpo_backend_cuda_create(char *why, size_t why_len) {
  const blpo_cuda_plugin *p = plugin();
  if (!p) {
    write_why(why, why_len);
    return NULL;
  }
  return p->backend_create(why, why_len);
}
