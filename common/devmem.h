/* devmem.h: memory on a device, for code that runs the same on CPU and GPU (env shards,
 * a muscle's rollout and inference buffers). On BD_DEVICE_CPU buffers are host memory and
 * copies are memcpy; on BD_DEVICE_CUDA device memory through common/cuda.cu. Every
 * function returns BD_OK or an error naming what failed (BD_ENOMEM, BD_ECUDA, or BD_ENODEV
 * in a build without CUDA). */
#ifndef BODHI_COMMON_DEVMEM_H
#define BODHI_COMMON_DEVMEM_H

#include <stddef.h>

#include "bodhi/bodhi.h"

/* Zero-filled. */
int bd_dev_alloc(bd_device dev, size_t bytes, void **ptr);
void bd_dev_free(bd_device dev, void *ptr); /* NULL-safe */
int bd_dev_to_host(bd_device dev, void *dst, const void *src, size_t bytes);
int bd_dev_from_host(bd_device dev, void *dst, const void *src, size_t bytes);

/* Waits until the device has finished the work queued so far (BD_OK at once on CPU). */
int bd_dev_sync(bd_device dev);

/* 1 when this build has CUDA and a CUDA device answers. */
int bd_cuda_available(void);

/* The GPU's name into buf (empty when none). */
void bd_cuda_device_name(char *buf, int len);

#endif
