/* cpunet_avx2.c: tanh as libtorch's AVX2 CPU kernel computes it (torch/cpunet_tanh.h:
 * SLEEF's Sleef_tanhf8_u10, 8 floats a vector). Built with -mavx2 -mfma. */
#define BDT_TANH_NAME bdt_cpunet_tanh_avx2
#define BDT_TANH_W 8
#define BDT_TANH_LOAD _mm256_loadu_ps
#define BDT_TANH_STORE _mm256_storeu_ps
#define BDT_TANH_SLEEF Sleef_tanhf8_u10
#include "torch/cpunet_tanh.h"
