/* devmem.c: host or device buffers behind one interface (see devmem.h). */
#include "common/devmem.h"

#include <stdlib.h>
#include <string.h>

#ifdef BODHI_HAVE_CUDA
#include "common/cuda.h"
#endif

#ifndef BODHI_HAVE_CUDA
static int bd_no_cuda(void)
{
    return bd_seterr(BD_ENODEV, "device cuda: this bodhi was built without CUDA");
}
#endif

int bd_dev_alloc(bd_device dev, size_t bytes, void **ptr)
{
    *ptr = NULL;
    if (dev == BD_DEVICE_CPU) {
        *ptr = calloc(1, bytes ? bytes : 1);
        return *ptr ? BD_OK : bd_seterr(BD_ENOMEM, "cannot allocate %zu bytes", bytes);
    }
#ifdef BODHI_HAVE_CUDA
    return bd_cuda_alloc(ptr, bytes);
#else
    return bd_no_cuda();
#endif
}

void bd_dev_free(bd_device dev, void *ptr)
{
    if (dev == BD_DEVICE_CPU) {
        free(ptr);
        return;
    }
#ifdef BODHI_HAVE_CUDA
    bd_cuda_release(ptr);
#endif
}

static int bd_dev_copy(bd_device dev, void *dst, const void *src, size_t bytes, int to_device)
{
    if (dev == BD_DEVICE_CPU) {
        if (bytes)
            memcpy(dst, src, bytes);
        return BD_OK;
    }
#ifdef BODHI_HAVE_CUDA
    return to_device ? bd_cuda_to_device(dst, src, bytes) : bd_cuda_to_host(dst, src, bytes);
#else
    (void)to_device;
    return bd_no_cuda();
#endif
}

int bd_dev_to_host(bd_device dev, void *dst, const void *src, size_t bytes)
{
    return bd_dev_copy(dev, dst, src, bytes, 0);
}

int bd_dev_from_host(bd_device dev, void *dst, const void *src, size_t bytes)
{
    return bd_dev_copy(dev, dst, src, bytes, 1);
}

int bd_dev_sync(bd_device dev)
{
    if (dev == BD_DEVICE_CPU)
        return BD_OK;
#ifdef BODHI_HAVE_CUDA
    return bd_cuda_sync();
#else
    return bd_no_cuda();
#endif
}

int bd_cuda_available(void)
{
#ifdef BODHI_HAVE_CUDA
    return bd_cuda_device_count() > 0;
#else
    return 0;
#endif
}

void bd_cuda_device_name(char *buf, int len)
{
    if (len > 0)
        buf[0] = '\0';
#ifdef BODHI_HAVE_CUDA
    if (bd_cuda_available())
        bd_cuda_name(buf, len);
#endif
}
