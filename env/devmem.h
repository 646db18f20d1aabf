/* devmem.h: buffers on a shard's device, for code that runs the same on CPU and GPU (the
 * muscle's rollout and inference buffers). On BD_DEVICE_CPU they are host memory and the
 * copies are memcpy; on BD_DEVICE_CUDA device memory through kernels/cuda.cu. Every
 * function returns BD_OK or an error naming what failed (BD_ENOMEM, BD_ECUDA,
 * BD_ENODEV in a build without CUDA). */
#ifndef BODHI_ENV_DEVMEM_H
#define BODHI_ENV_DEVMEM_H

#include <stddef.h>

#include "bodhi/env.h"

/* Zero-filled. */
int bd_dev_alloc(bd_device dev, size_t bytes, void **ptr);
void bd_dev_free(bd_device dev, void *ptr); /* NULL-safe */
int bd_dev_to_host(bd_device dev, void *dst, const void *src, size_t bytes);
int bd_dev_from_host(bd_device dev, void *dst, const void *src, size_t bytes);

#endif
