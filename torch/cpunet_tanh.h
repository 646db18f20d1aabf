/* cpunet_tanh.h: tanh over x[0, len) as libtorch's vectorised CPU kernel computes it
 * (torch/cpunet.h): SLEEF's tanh one vector at a time (ATen's vec::map), the tail through
 * the same function from a zero-padded vector. Included by one file per instruction set,
 * each built with that set's flags (CMakeLists.txt) and called only where the CPU has it:
 * define BDT_TANH_NAME, BDT_TANH_W (floats per vector),
 * BDT_TANH_LOAD, BDT_TANH_STORE and BDT_TANH_SLEEF first. */
#include <immintrin.h>
#include <stddef.h>
#include <string.h>
#include <sleef.h>

void BDT_TANH_NAME(float *x, size_t len);

void BDT_TANH_NAME(float *x, size_t len)
{
    size_t i = 0;
    for (; i + BDT_TANH_W <= len; i += BDT_TANH_W)
        BDT_TANH_STORE(x + i, BDT_TANH_SLEEF(BDT_TANH_LOAD(x + i)));
    if (i < len) {
        float tail[BDT_TANH_W] = {0};
        memcpy(tail, x + i, sizeof(float) * (len - i));
        BDT_TANH_STORE(tail, BDT_TANH_SLEEF(BDT_TANH_LOAD(tail)));
        memcpy(x + i, tail, sizeof(float) * (len - i));
    }
}
