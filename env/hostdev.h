/* hostdev.h: BD_HOSTDEV marks functions compiled for both the CPU loops (gcc) and the
 * CUDA kernels (nvcc). Code under it must give the same floats on both: no FMA
 * contraction (-ffp-contract=off, --fmad=false), no fast-math, and only the math below
 * (bd_sinf/bd_cosf), never the platform's sinf/cosf, which differ in the last bit. */
#ifndef BODHI_ENV_HOSTDEV_H
#define BODHI_ENV_HOSTDEV_H

#ifdef __CUDACC__
#define BD_HOSTDEV __host__ __device__
#else
#define BD_HOSTDEV
#endif

#endif
