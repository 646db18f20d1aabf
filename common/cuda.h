/* cuda.h: the C face of common/cuda.cu, built only when nvcc exists (BODHI_HAVE_CUDA):
 * device memory and copies (which common/devmem.c wraps for device-neutral code) and the
 * launch helpers every kernel launcher in kernels/ uses. Every function checks every CUDA
 * call and returns BD_OK or BD_ECUDA with CUDA's error text in bd_lasterr(). */
#ifndef BODHI_COMMON_CUDA_H
#define BODHI_COMMON_CUDA_H

#include <stddef.h>
#include <stdint.h>

#include "bodhi/bodhi.h"

#ifdef __cplusplus
extern "C" {
#endif

#define BD_CUDA_THREADS 256

/* Blocks of BD_CUDA_THREADS covering n items. */
static inline unsigned bd_cuda_blocks(int64_t n)
{
    return (unsigned)((n + BD_CUDA_THREADS - 1) / BD_CUDA_THREADS);
}

/* After a kernel launch: BD_OK, or BD_ECUDA naming `what` with CUDA's error text. */
int bd_cuda_check_launch(const char *what);

int bd_cuda_device_count(void);
int bd_cuda_name(char *buf, int len);
int bd_cuda_alloc(void **ptr, size_t bytes);   /* zero-filled */
void bd_cuda_release(void *ptr);               /* NULL-safe */
int bd_cuda_to_device(void *dst, const void *src, size_t bytes);
int bd_cuda_to_host(void *dst, const void *src, size_t bytes);
int bd_cuda_sync(void);
/* Device-to-device copy bandwidth (bytes read + written per second) over `bytes`. */
int bd_cuda_copy_bandwidth(size_t bytes, double *bytes_per_s);

#ifdef __cplusplus
}
#endif
#endif
