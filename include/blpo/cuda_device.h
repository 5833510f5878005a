/* Which CUDA devices this process can use (kernels/device.cu). */
#ifndef BLPO_CUDA_DEVICE_H
#define BLPO_CUDA_DEVICE_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Number of usable CUDA devices; 0 when there is none or the driver/runtime
 * cannot be initialised. When 0 and why != NULL, writes the reason. */
int blpo_cuda_device_count(char *why, size_t why_len);

/* Name of device 0 ("" when none). */
void blpo_cuda_device_name(char *out, size_t len);

#ifdef __cplusplus
}
#endif

#endif
