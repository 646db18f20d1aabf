/* cuda.cu: device memory, copies and launch checks (see cuda.h). */
#include <stdio.h>

#include <cuda_runtime.h>

#include "common/cuda.h"

static int bd_cuda_check(cudaError_t e, const char *what)
{
    if (e == cudaSuccess)
        return BD_OK;
    return bd_seterr(BD_ECUDA, "%s: %s", what, cudaGetErrorString(e));
}

extern "C" int bd_cuda_check_launch(const char *what)
{
    return bd_cuda_check(cudaGetLastError(), what);
}

extern "C" int bd_cuda_device_count(void)
{
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError(); /* clear the sticky "no device" error */
        return 0;
    }
    return n;
}

extern "C" int bd_cuda_name(char *buf, int len)
{
    cudaDeviceProp p;
    int dev = 0;
    int rc = bd_cuda_check(cudaGetDevice(&dev), "cudaGetDevice");
    if (rc == BD_OK)
        rc = bd_cuda_check(cudaGetDeviceProperties(&p, dev), "cudaGetDeviceProperties");
    if (rc != BD_OK) {
        if (len > 0)
            buf[0] = '\0';
        return rc;
    }
    snprintf(buf, (size_t)len, "%s", p.name);
    return BD_OK;
}

extern "C" int bd_cuda_alloc(void **ptr, size_t bytes)
{
    *ptr = NULL;
    int rc = bd_cuda_check(cudaMalloc(ptr, bytes ? bytes : 1), "cudaMalloc");
    if (rc == BD_OK)
        rc = bd_cuda_check(cudaMemset(*ptr, 0, bytes), "cudaMemset");
    return rc;
}

extern "C" void bd_cuda_release(void *ptr)
{
    if (ptr)
        cudaFree(ptr);
}

extern "C" int bd_cuda_to_device(void *dst, const void *src, size_t bytes)
{
    return bd_cuda_check(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice), "cudaMemcpy H2D");
}

extern "C" int bd_cuda_to_host(void *dst, const void *src, size_t bytes)
{
    return bd_cuda_check(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost), "cudaMemcpy D2H");
}

extern "C" int bd_cuda_sync(void)
{
    return bd_cuda_check(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
}

extern "C" int bd_cuda_copy_bandwidth(size_t bytes, double *bytes_per_s)
{
    void *a = NULL, *b = NULL;
    cudaEvent_t t0 = NULL, t1 = NULL;
    int rc = bd_cuda_alloc(&a, bytes);
    if (rc == BD_OK)
        rc = bd_cuda_alloc(&b, bytes);
    if (rc == BD_OK)
        rc = bd_cuda_check(cudaEventCreate(&t0), "cudaEventCreate");
    if (rc == BD_OK)
        rc = bd_cuda_check(cudaEventCreate(&t1), "cudaEventCreate");
    float best = 0;
    for (int rep = 0; rep < 20 && rc == BD_OK; rep++) {
        cudaEventRecord(t0);
        cudaMemcpy(b, a, bytes, cudaMemcpyDeviceToDevice);
        cudaEventRecord(t1);
        rc = bd_cuda_check(cudaEventSynchronize(t1), "copy bandwidth");
        float ms = 0;
        cudaEventElapsedTime(&ms, t0, t1);
        if (rep >= 3 && (best == 0 || ms < best))
            best = ms;
    }
    if (t0)
        cudaEventDestroy(t0);
    if (t1)
        cudaEventDestroy(t1);
    bd_cuda_release(a);
    bd_cuda_release(b);
    if (rc == BD_OK)
        *bytes_per_s = best > 0 ? 2.0 * (double)bytes / (best * 1e-3) : 0;
    return rc;
}
