/* target.c: an example environment plugin (built as libbodhi_target.so; load it in a run
 * file with `name: path/to/libbodhi_target.so:bd_target_env`). A point on a line moves
 * left, stays or moves right (Discrete(3), 0.1 per step) and must reach a target drawn
 * in [-1, 1]; reward -|x - target| per step, terminated within 0.05 of the target,
 * truncated after 100 steps. It shows everything a plugin provides: sensors and
 * actuators with bounds, resets from bodhi's counter-based RNG, auto-reset with final
 * observations. CPU only (a plugin may add CUDA launchers). */
#include <math.h>

#include "bodhi/env.h"
#include "env/rng.h"

static void target_reset_world(bd_env_batch *b, int i, uint64_t counter)
{
    float u[4];
    bd_rng_uniform4(b->seed, b->world0 + (uint32_t)i, counter, BD_STREAM_RESET, u);
    b->obs[2 * i] = u[0] * 2.0f - 1.0f;     /* x */
    b->obs[2 * i + 1] = u[1] * 2.0f - 1.0f; /* target */
    b->elapsed[i] = 0;
}

static void target_reset(bd_env_batch *b, int i0, int i1)
{
    for (int i = i0; i < i1; i++)
        target_reset_world(b, i, 0);
}

static void target_step(bd_env_batch *b, int i0, int i1)
{
    for (int i = i0; i < i1; i++) {
        float x = b->obs[2 * i] + 0.1f * (b->actions[i] - 1.0f);
        x = fminf(fmaxf(x, -1.5f), 1.5f);
        float d = fabsf(x - b->obs[2 * i + 1]);
        int t = b->elapsed[i] + 1;
        b->obs[2 * i] = x;
        b->rewards[i] = -d;
        b->terminated[i] = d < 0.05f;
        b->truncated[i] = t >= b->max_steps;
        b->elapsed[i] = t;
        if (b->terminated[i] || b->truncated[i]) {
            b->final_obs[2 * i] = x;
            b->final_obs[2 * i + 1] = b->obs[2 * i + 1];
            target_reset_world(b, i, b->step + 1);
        }
    }
}

static const bd_channel target_sensors[2] = {{"x", -1.5f, 1.5f, 0}, {"target", -1.0f, 1.0f, 0}};
static const bd_channel target_actuators[1] = {{"move", 0.0f, 2.0f, 3}};

const bd_env_desc bd_target_env = {
    .abi_version = BD_ENV_ABI,
    .name = "target",
    .summary = "example plugin: move a point on a line to a random target",
    .obs_dim = 2,
    .act_dim = 1,
    .state_dim = 0,
    .sensors = target_sensors,
    .actuators = target_actuators,
    .discrete = 1,
    .default_max_steps = 100,
    .reset_cpu = target_reset,
    .step_cpu = target_step,
};
