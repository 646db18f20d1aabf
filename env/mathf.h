/* mathf.h: float sin/cos that give the same bits on CPU and GPU.
 * Cody-Waite reduction by pi/2 and Cephes' single-precision polynomials on [-pi/4, pi/4];
 * about 1 ulp for |x| < 1e4, which covers every angle our physics produces. */
#ifndef BODHI_ENV_MATHF_H
#define BODHI_ENV_MATHF_H

#include "common/hostdev.h"

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

/* r = x - k*pi/2 in three parts; returns the quadrant k mod 4. k is rounded to nearest
 * with the 1.5*2^23 trick (exact for |x| < 2^21), which vectorises and needs no rintf. */
BD_HOSTDEV static inline int bd_reduce_pio2(float x, float *r)
{
    float k = (x * 0.636619772367581343f + 12582912.0f) - 12582912.0f;
    *r = ((x - k * 1.5703125f) - k * 4.837512969970703125e-4f) - k * 7.54978995489188216e-8f;
    return (int)k & 3;
}

/* sin and cos of x together, without branches (selects only), so loops over worlds
 * vectorise: quadrant q picks which polynomial and which sign. */
BD_HOSTDEV static inline void bd_sincosf(float x, float *s, float *c)
{
    float r;
    int q = bd_reduce_pio2(x, &r);
    float ps = bd_sin_poly(r), pc = bd_cos_poly(r);
    float sv = (q & 1) ? pc : ps;
    float cv = (q & 1) ? ps : pc;
    *s = (q & 2) ? -sv : sv;
    *c = ((q + 1) & 2) ? -cv : cv;
}

BD_HOSTDEV static inline float bd_sinf(float x)
{
    float s, c;
    bd_sincosf(x, &s, &c);
    return s;
}

BD_HOSTDEV static inline float bd_cosf(float x)
{
    float s, c;
    bd_sincosf(x, &s, &c);
    return c;
}

/* pi in float (3.14159274, 8.7e-8 above pi) and 1/(2 pi). */
#define BD_PI_F 3.14159265358979323846f
#define BD_INV_2PI_F 0.159154943091895335769f

/* x - 2 pi k, k a whole number of turns, into [-pi_f, pi_f): k = x / (2 pi) rounded to
 * nearest with the 1.5*2^23 trick, then one turn more or less where rounding left r at an
 * end. 2 pi is split in three parts (4x the pi/2 parts above), so r is within about 1e-7
 * of the true value for |x| < 4e5. No loop and no libm: NaN and inf give NaN. */
BD_HOSTDEV static inline float bd_angle_reduce(float x)
{
    float k = (x * BD_INV_2PI_F + 12582912.0f) - 12582912.0f;
    float r = ((x - k * 6.28125f) - k * 1.93500518798828125e-3f) - k * 3.01991598195675286e-7f;
    /* both corrections computed, one selected: no branches, so loops vectorise */
    float up = ((r - 6.28125f) - 1.93500518798828125e-3f) - 3.01991598195675286e-7f;
    float dn = ((r + 6.28125f) + 1.93500518798828125e-3f) + 3.01991598195675286e-7f;
    return r >= BD_PI_F ? up : r < -BD_PI_F ? dn : r;
}

/* Gymnasium's Pendulum angle_normalize: ((x + pi) mod 2 pi) - pi, into [-pi, pi). */
BD_HOSTDEV static inline float bd_angle_normalize(float x)
{
    return bd_angle_reduce(x);
}

/* Gymnasium's Acrobot wrap(x, -pi, pi): x unchanged when already in [-pi, pi], else
 * shifted by whole turns into range (a closed form of its subtract-2-pi loop). */
BD_HOSTDEV static inline float bd_wrap_pi(float x)
{
    float r = bd_angle_reduce(x);
    return ((x > BD_PI_F) | (x < -BD_PI_F)) ? r : x;
}

/* atan2(y, x) in float from + - * / only (a degree-11 odd minimax polynomial of atan on
 * [0, 1], after Hastings; error under 2e-6 rad), so the CPU and the GPU agree bit for bit.
 * 0 at the origin; signed zeros are not told apart; NaN in, NaN out. */
BD_HOSTDEV static inline float bd_atan2f(float y, float x)
{
    float ax = x < 0.0f ? -x : x, ay = y < 0.0f ? -y : y;
    float mx = ax > ay ? ax : ay, mn = ax > ay ? ay : ax;
    if (mx == 0.0f)
        return 0.0f;
    float a = mn / mx, q = a * a;
    float r = a * (0.99997726f
                   + q * (-0.33262347f + q * (0.19354346f + q * (-0.11643287f + q * (0.05265332f + q * -0.01172120f)))));
    if (ay > ax)
        r = 1.57079632679489661923f - r;
    if (x < 0.0f)
        r = BD_PI_F - r;
    return y < 0.0f ? -r : r;
}

#endif
