/* target.c: an example environment plugin (built as libbodhi_target.so; load it in a run
 * file with `name: path/to/libbodhi_target.so:bd_target_env`). A point in the plane moves
 * along x and y (two Discrete(3) actuators: back, stay, forward, 0.1 per step) and must
 * reach a target drawn in [-1, 1]^2; reward -distance per step, terminated within 0.1 of
 * the target, truncated after 100 steps. The two actuators can belong to two agents.
 * It shows everything a plugin provides: sensors and actuators with bounds, resets from
 * bodhi's counter-based RNG, auto-reset with final observations. CPU only (a plugin may
 * add CUDA launchers; env/loops.h generates both from per-world functions). */
#include <math.h>

#include "bodhi/env_abi.h"
#include "bodhi/rng.h"

static void target_reset_world(bd_env_batch *b, int i, uint64_t counter)
{
    float u[4];
    bd_rng_uniform4(b->seed, b->world0 + (uint32_t)i, counter, BD_STREAM_RESET, u);
    for (int k = 0; k < 4; k++)
        b->obs[4 * i + k] = u[k] * 2.0f - 1.0f; /* x, y, target x, target y */
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
        float *o = b->obs + 4 * i;
        for (int k = 0; k < 2; k++)
            o[k] = fminf(fmaxf(o[k] + 0.1f * (b->actions[2 * i + k] - 1.0f), -1.5f), 1.5f);
        float d = hypotf(o[0] - o[2], o[1] - o[3]);
        int t = b->elapsed[i] + 1;
        b->rewards[i] = -d;
        b->terminated[i] = d < 0.1f;
        b->truncated[i] = t >= b->max_steps;
        b->elapsed[i] = t;
        if (b->terminated[i] || b->truncated[i]) {
            for (int k = 0; k < 4; k++)
                b->final_obs[4 * i + k] = o[k];
            target_reset_world(b, i, b->step + 1);
        }
    }
}

static const bd_channel target_sensors[4] = {
    {"x", -1.5f, 1.5f, 0}, {"y", -1.5f, 1.5f, 0}, {"target_x", -1.0f, 1.0f, 0}, {"target_y", -1.0f, 1.0f, 0},
};
static const bd_channel target_actuators[2] = {{"move_x", 0.0f, 2.0f, 3}, {"move_y", 0.0f, 2.0f, 3}};

const bd_env_desc bd_target_env = {
    .abi_version = BD_ENV_ABI,
    .name = "target",
    .summary = "example plugin: move a point in the plane to a random target (x and y actuators)",
    .obs_dim = 4,
    .act_dim = 2,
    .state_dim = 0,
    .sensors = target_sensors,
    .actuators = target_actuators,
    .discrete = 1,
    .default_max_steps = 100,
    .reset_cpu = target_reset,
    .step_cpu = target_step,
};
