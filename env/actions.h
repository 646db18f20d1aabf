/* actions.h: uniform random actions, shared by the CPU loop in env/env.c and the CUDA
 * kernel in kernels/random.cu: a Discrete(n) actuator gets an index in 0..n-1 (as a
 * float), a Box actuator U(low, high).
 * The actions of all rows form one flat array (R, act_dim), R = worlds x members; element
 * j of a shard whose first world is world0 has the global index
 * k = world0 * members * act_dim + j, and takes word
 * k & 3 of the Philox draw number k >> 2 at (seed, k >> 2, counter, BD_STREAM_BENCH). One
 * draw thus feeds four actions, and a world's actions do not depend on the shard split. */
#ifndef BODHI_ENV_ACTIONS_H
#define BODHI_ENV_ACTIONS_H

#include <stdint.h>

#include "bodhi/env.h"
#include "common/hostdev.h"
#include "common/rng.h"

typedef struct {
    int act_dim;
    int n[BD_MAX_ACTUATORS];       /* > 0: Discrete(n); 0: Box */
    float low[BD_MAX_ACTUATORS], high[BD_MAX_ACTUATORS];
} bd_action_space;

/* Draw number c: fills the (up to four) elements of actions (N * act_dim, flat) that fall
 * in [j0, j1). */
BD_HOSTDEV static inline void bd_random_action_draw(uint64_t c, float *BD_RESTRICT actions,
                                                    int64_t j0, int64_t j1, uint64_t k0,
                                                    const bd_action_space *BD_RESTRICT sp,
                                                    uint64_t seed, uint64_t counter)
{
    float u[4];
    bd_rng_uniform4(seed, (uint32_t)c, counter, BD_STREAM_BENCH, u);
    for (int l = 0; l < 4; l++) {
        uint64_t k = 4 * c + (uint64_t)l;
        int64_t j = (int64_t)(k - k0);
        int a = (int)(k % (uint64_t)sp->act_dim);
        float x = sp->n[a] > 0 ? (float)(int)(u[l] * (float)sp->n[a])
                               : sp->low[a] + u[l] * (sp->high[a] - sp->low[a]);
        if (j >= j0 && j < j1)
            actions[j] = x;
    }
}

#endif
