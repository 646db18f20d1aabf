/* bodhi/rng.h: bodhi's counter-based randomness (Random123 Philox4x32-10), public for
 * environment plugins. A draw is a pure function of (seed, world, counter, stream): no
 * state to carry, the same on CPU and GPU and whatever the shard split, so a plugin's
 * resets are reproducible like the built-in envs' (env/plugins/target.c draws its resets
 * with it). Needs Random123's headers (Debian: librandom123-dev). */
#ifndef BODHI_RNG_H
#define BODHI_RNG_H

#include <stdint.h>

#include <Random123/philox.h>

#ifndef BD_HOSTDEV /* bodhi's own code gets it from common/hostdev.h */
#ifdef __CUDACC__
#define BD_HOSTDEV __host__ __device__
#else
#define BD_HOSTDEV
#endif
#endif

/* Streams keep uses apart: an env draws its resets from BD_STREAM_RESET and the noise
 * inside a step from BD_STREAM_ENV. */
enum {
    BD_STREAM_RESET = 1,  /* env resets */
    BD_STREAM_ENV = 2,    /* env noise inside a step */
    BD_STREAM_ACTION = 3, /* policy sampling in muscles */
    BD_STREAM_BENCH = 4,  /* random actions in benchmarks */
    BD_STREAM_SHUFFLE = 5, /* minibatch order in learners */
    BD_STREAM_REPLAY = 6, /* replay-buffer samples in off-policy learners */
    BD_STREAM_EXPLORE = 7, /* epsilon-greedy exploration in muscles */
    BD_STREAM_INIT = 8,    /* initial weights of networks */
};

/* Four random 32-bit words. */
BD_HOSTDEV static inline void bd_rng_u32x4(uint64_t seed, uint32_t world, uint64_t counter, uint32_t stream,
                                           uint32_t out[4])
{
    philox4x32_ctr_t c = {{world, (uint32_t)counter, (uint32_t)(counter >> 32), stream}};
    philox4x32_key_t k = {{(uint32_t)seed, (uint32_t)(seed >> 32)}};
    philox4x32_ctr_t r = philox4x32(c, k);
    for (int i = 0; i < 4; i++)
        out[i] = r.v[i];
}

/* Four uniform floats in [0, 1) with 24 random bits each (exact on every device). */
BD_HOSTDEV static inline void bd_rng_uniform4(uint64_t seed, uint32_t world, uint64_t counter,
                                              uint32_t stream, float out[4])
{
    uint32_t r[4];
    bd_rng_u32x4(seed, world, counter, stream, r);
    for (int i = 0; i < 4; i++)
        out[i] = (float)(r[i] >> 8) * (1.0f / 16777216.0f);
}

#endif
