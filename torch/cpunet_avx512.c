/* cpunet_avx512.c: tanh as libtorch's AVX512 CPU kernel computes it (torch/cpunet.h): SLEEF's
 * Sleef_tanhf16_u10 one vector of 16 at a time (ATen's vec::map), the tail through the same function
 * from a zero-padded vector. Built with the
 * instruction set's flags (CMakeLists.txt) and called only where the CPU has it. */
#include <immintrin.h>
#include <stddef.h>
#include <string.h>
#include <sleef.h>

void bdt_cpunet_tanh_avx512(float *x, size_t len);

void bdt_cpunet_tanh_avx512(float *x, size_t len)
{
    size_t i = 0;
    for (; i + 16 <= len; i += 16)
        _mm512_storeu_ps(x + i, Sleef_tanhf16_u10(_mm512_loadu_ps(x + i)));
    if (i < len) {
        float tail[16] = {0};
        memcpy(tail, x + i, sizeof(float) * (len - i));
        _mm512_storeu_ps(tail, Sleef_tanhf16_u10(_mm512_loadu_ps(tail)));
        memcpy(x + i, tail, sizeof(float) * (len - i));
    }
}
