/* mathf.h: float sin/cos that give the same bits on CPU and GPU.
 * Cody-Waite reduction by pi/2 and Cephes' single-precision polynomials on [-pi/4, pi/4];
 * about 1 ulp for |x| < 1e4, which covers every angle our physics produces. */
#ifndef BODHI_ENV_MATHF_H
#define BODHI_ENV_MATHF_H

#include <math.h>

#include "env/hostdev.h"

BD_HOSTDEV static inline float bd_sin_poly(float r)
{
    float z = r * r;
    return ((-1.9515295891e-4f * z + 8.3321608736e-3f) * z - 1.6666654611e-1f) * z * r + r;
}

BD_HOSTDEV static inline float bd_cos_poly(float r)
{
    float z = r * r;
    return ((2.443315711809948e-5f * z - 1.388731625493765e-3f) * z + 4.166664568298827e-2f) * z * z
           - 0.5f * z + 1.0f;
}

/* r = x - k*pi/2 in three parts; returns the quadrant k mod 4. */
BD_HOSTDEV static inline int bd_reduce_pio2(float x, float *r)
{
    float k = rintf(x * 0.636619772367581343f);
    *r = ((x - k * 1.5703125f) - k * 4.837512969970703125e-4f) - k * 7.54978995489188216e-8f;
    return (int)k & 3;
}

BD_HOSTDEV static inline float bd_sinf(float x)
{
    float r;
    switch (bd_reduce_pio2(x, &r)) {
    case 0: return bd_sin_poly(r);
    case 1: return bd_cos_poly(r);
    case 2: return -bd_sin_poly(r);
    default: return -bd_cos_poly(r);
    }
}

BD_HOSTDEV static inline float bd_cosf(float x)
{
    float r;
    switch (bd_reduce_pio2(x, &r)) {
    case 0: return bd_cos_poly(r);
    case 1: return -bd_sin_poly(r);
    case 2: return -bd_cos_poly(r);
    default: return bd_sin_poly(r);
    }
}

#endif
