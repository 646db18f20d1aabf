/* cpunet_avx512.c: tanh as libtorch's AVX-512 CPU kernel computes it (torch/cpunet_tanh.h:
 * SLEEF's Sleef_tanhf16_u10, 16 floats a vector). Built with the AVX-512 flags. */
#define BDT_TANH_NAME bdt_cpunet_tanh_avx512
#define BDT_TANH_W 16
#define BDT_TANH_LOAD _mm512_loadu_ps
#define BDT_TANH_STORE _mm512_storeu_ps
#define BDT_TANH_SLEEF Sleef_tanhf16_u10
#include "torch/cpunet_tanh.h"
