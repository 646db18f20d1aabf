/* hostdev.h: BD_HOSTDEV marks functions compiled for both the CPU loops (gcc) and the
 * CUDA kernels (nvcc). Code under it must give the same floats on both: no FMA
 * contraction (-ffp-contract=off, --fmad=false), no fast-math, and only the math in
 * env/mathf.h, never the platform's sinf/cosf, which differ in the last bit.
 * BD_CPU_CLONES compiles a CPU loop for AVX-512, AVX2 and baseline x86-64 and picks one
 * at load time; the clones compute identical floats (same IEEE operations, no FMA). */
#ifndef BODHI_COMMON_HOSTDEV_H
#define BODHI_COMMON_HOSTDEV_H

#ifdef __CUDACC__
#define BD_HOSTDEV __host__ __device__
#define BD_RESTRICT __restrict__
#else
#define BD_HOSTDEV
#define BD_RESTRICT restrict
#endif

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__CUDACC__) \
    && !defined(__SANITIZE_ADDRESS__)
#define BD_CPU_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define BD_CPU_CLONES
#endif

#endif
