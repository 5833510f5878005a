/* blpo-gpu: command-line entry point. Parses the command line, builds and
 * checks the config (nothing is written before it is valid), picks the
 * backend and runs. */
#include <stdio.h>
#include <string.h>

#include "blpo/backend.h"
#include "blpo/cli.h"
#include "blpo/config_load.h"
#include "blpo/eval.h"
#include "blpo/run.h"
#include "blpo_build_info.h"
#ifdef BLPO_WITH_CUDA
#include "blpo/cuda_device.h"
#endif

/* Chooses the backend for --device; returns NULL with a message on error. */
static blpo_backend *pick_backend(const blpo_cli *cli, const blpo_config *cfg, int quiet) {
  char why[256] = "this build has no CUDA support (configured without nvcc or -DBLPO_CUDA=OFF)";
  int ndev = 0;
#ifdef BLPO_WITH_CUDA
  /* --device cpu never asks: asking loads the CUDA plugin and its libraries */
  if (cli->device != BLPO_DEVICE_CPU)
    ndev = blpo_cuda_device_count(why, sizeof(why));
#endif
  if (cli->device == BLPO_DEVICE_CUDA && ndev == 0) {
    fprintf(stderr, "blpo-gpu: --device cuda: no usable CUDA device: %s\n", why);
    return NULL;
  }
#ifdef BLPO_WITH_CUDA
  if (cli->device != BLPO_DEVICE_CPU && ndev > 0) {
    blpo_backend *gpu = blpo_backend_cuda_create(why, sizeof(why));
    if (gpu) {
      if (!quiet) {
        char name[256];
        blpo_cuda_device_name(name, sizeof(name));
        fprintf(stderr, "blpo-gpu: running on %s (CUDA)\n", name);
      }
      return gpu;
    }
    if (cli->device == BLPO_DEVICE_CUDA) {
      fprintf(stderr, "blpo-gpu: --device cuda: %s\n", why);
      return NULL;
    }
  }
#endif
  if (cli->device == BLPO_DEVICE_AUTO && !quiet)
    fprintf(stderr, "blpo-gpu: running on the CPU (%s)\n", why);
  if (cfg->precision == BLPO_PREC_TF32 && !quiet)
    fprintf(stderr, "blpo-gpu: run.precision tf32 applies to the CUDA backend's GEMMs; the CPU "
                    "computes in fp32\n");
  if (cfg->pdl && !quiet)
    fprintf(stderr, "blpo-gpu: run.pdl applies to the CUDA backend's kernel launches; no effect on "
                    "the CPU\n");
  if (cfg->grid_sync && !quiet)
    fprintf(stderr, "blpo-gpu: run.grid_sync applies to the CUDA backend's fused update kernels; "
                    "no effect on the CPU\n");
  blpo_backend *be = blpo_backend_cpu_create(cfg->threads);
  if (!be)
    fprintf(stderr, "blpo-gpu: out of host memory creating the CPU backend\n");
  return be;
}

int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "eval") == 0)
    return blpo_eval_main(argc, argv);
  blpo_cli cli;
  int rc = blpo_cli_parse(argc, argv, &cli);
  if (rc)
    return rc;
  if (cli.help) {
    blpo_cli_print_help(stdout);
    return 0;
  }
  if (cli.version) {
    printf("blpo-gpu %s (commit %s)\n", BLPO_VERSION, BLPO_GIT_COMMIT);
    return 0;
  }
  if (cli.help_config) {
    blpo_config_print_keys(stdout);
    return 0;
  }
  blpo_config cfg;
  blpo_config_src src;
  memset(&src, 0, sizeof(src));
  rc = blpo_config_from_cli(&cli, &cfg, &src);
  if (rc)
    return rc;
  if (cli.print_config) {
    return blpo_config_write_yaml(&cfg, stdout) == 0 ? 0 : 1;
  }
  blpo_backend *be = pick_backend(&cli, &cfg, cli.quiet);
  if (!be)
    return 2;
  blpo_run_opts opts = {src.file, cli.out_dir, cli.force, cli.quiet, cli.resume};
  rc = blpo_run(&cfg, &opts, be);
  be->destroy(be);
  return rc;
}
