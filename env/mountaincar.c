/* mountaincar.c: MountainCar-v0 on the CPU: loops of the shared physics in
 * env/mountaincar.h over a range of worlds (compiled for AVX-512, AVX2 and baseline x86-64,
 * picked at load time), and the registry entry. */
#include "env/mountaincar.h"

#include "bodhi/env.h"
#include "env/env_impl.h"

static void mountaincar_reset_cpu(bd_env_batch *b, int i0, int i1)
{
    for (int i = i0; i < i1; i++) {
        bd_mountaincar_reset_one(b->obs + BD_MOUNTAINCAR_OBS * i, b->seed, b->world0 + (uint32_t)i, 0);
        b->elapsed[i] = 0;
    }
}

/* Two passes over [i0, i1): the stepping half vectorises; resets are rare and scalar. */
BD_CPU_CLONES static void mountaincar_step_cpu(bd_env_batch *b, int i0, int i1)
{
    float *restrict obs = b->obs;
    const float *restrict act = b->actions;
    float *restrict rew = b->rewards;
    uint8_t *restrict term = b->terminated, *restrict trunc = b->truncated;
    int32_t *restrict el = b->elapsed;
    const int max_steps = b->max_steps;
#pragma GCC ivdep /* world i touches only row i of every buffer */
    for (int i = i0; i < i1; i++)
        bd_mountaincar_advance_world(i, obs, act, rew, term, trunc, el, max_steps);
    for (int i = i0; i < i1; i++)
        bd_mountaincar_finish_world(i, obs, term, trunc, b->final_obs, el, b->seed, b->world0,
                                    b->step);
}

static const bd_channel mountaincar_sensors[BD_MOUNTAINCAR_OBS] = {
    {"position", BD_MOUNTAINCAR_MIN_POSITION, BD_MOUNTAINCAR_MAX_POSITION, 0},
    {"velocity", -BD_MOUNTAINCAR_MAX_SPEED, BD_MOUNTAINCAR_MAX_SPEED, 0},
};

static const bd_channel mountaincar_actuators[1] = {
    {"push", 0.0f, 2.0f, 3},
};

const bd_env_desc bd_env_mountaincar = {
    .name = "mountaincar",
    .summary = "MountainCar-v0 (Gymnasium): drive an underpowered car up the right hill; reward -1 per step, 200-step limit",
    .obs_dim = BD_MOUNTAINCAR_OBS,
    .act_dim = 1,
    .state_dim = 0,
    .sensors = mountaincar_sensors,
    .actuators = mountaincar_actuators,
    .discrete = 1,
    .default_max_steps = BD_MOUNTAINCAR_MAX_STEPS,
    .reset_cpu = mountaincar_reset_cpu,
    .step_cpu = mountaincar_step_cpu,
    .reset_cuda = BD_CUDA_FN(bd_mountaincar_reset_cuda),
    .step_cuda = BD_CUDA_FN(bd_mountaincar_step_cuda),
};
