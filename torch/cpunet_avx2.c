/* cpunet_avx2.c: tanh as libtorch's AVX2 CPU kernel computes it (torch/cpunet.h): SLEEF's
 * Sleef_tanhf8_u10 one vector of 8 at a time (ATen's vec::map), the tail through the same function
 * from a zero-padded vector. Built with the
 * instruction set's flags (CMakeLists.txt) and called only where the CPU has it. */
#include <immintrin.h>
#include <stddef.h>
#include <string.h>
#include <sleef.h>

void bdt_cpunet_tanh_avx2(float *x, size_t len);

void bdt_cpunet_tanh_avx2(float *x, size_t len)
{
    size_t i = 0;
    for (; i + 8 <= len; i += 8)
        _mm256_storeu_ps(x + i, Sleef_tanhf8_u10(_mm256_loadu_ps(x + i)));
    if (i < len) {
        float tail[8] = {0};
        memcpy(tail, x + i, sizeof(float) * (len - i));
        _mm256_storeu_ps(tail, Sleef_tanhf8_u10(_mm256_loadu_ps(tail)));
        memcpy(x + i, tail, sizeof(float) * (len - i));
    }
}
