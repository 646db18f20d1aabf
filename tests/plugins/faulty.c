/* faulty.c: an environment plugin for the tests that goes wrong on purpose, as a buggy
 * simulator would: a point on a line (one Discrete(2) actuator: left, right; reward 1 per
 * step, truncated after 20 steps) whose world 0 pays a NaN reward on the 4th step of each
 * episode. A brain must refuse the rollouts that carry it and learn from the others. */
#include <math.h>

#include "bodhi/env_abi.h"
#include "common/rng.h"

static void faulty_reset_world(bd_env_batch *b, int i, uint64_t counter)
{
    float u[4];
    bd_rng_uniform4(b->seed, b->world0 + (uint32_t)i, counter, BD_STREAM_RESET, u);
    b->obs[i] = u[0] * 2.0f - 1.0f;
    b->elapsed[i] = 0;
}

static void faulty_reset(bd_env_batch *b, int i0, int i1)
{
    for (int i = i0; i < i1; i++)
        faulty_reset_world(b, i, 0);
}

static void faulty_step(bd_env_batch *b, int i0, int i1)
{
    for (int i = i0; i < i1; i++) {
        float *x = b->obs + i;
        *x = fminf(fmaxf(*x + 0.1f * (b->actions[i] * 2.0f - 1.0f), -1.0f), 1.0f);
        int t = b->elapsed[i] + 1;
        b->rewards[i] = b->world0 + (uint32_t)i == 0 && t == 4 ? NAN : 1.0f;
        b->terminated[i] = 0;
        b->truncated[i] = t >= b->max_steps;
        b->elapsed[i] = t;
        if (b->truncated[i]) {
            b->final_obs[i] = *x;
            faulty_reset_world(b, i, b->step + 1);
        }
    }
}

static const bd_channel faulty_sensors[1] = {{"x", -1.0f, 1.0f, 0}};
static const bd_channel faulty_actuators[1] = {{"move", 0.0f, 1.0f, 2}};

const bd_env_desc bd_faulty_env = {
    .abi_version = BD_ENV_ABI,
    .name = "faulty",
    .summary = "test plugin: a point on a line whose world 0 pays a NaN reward on step 4",
    .obs_dim = 1,
    .act_dim = 1,
    .state_dim = 0,
    .sensors = faulty_sensors,
    .actuators = faulty_actuators,
    .discrete = 1,
    .default_max_steps = 20,
    .reset_cpu = faulty_reset,
    .step_cpu = faulty_step,
};
