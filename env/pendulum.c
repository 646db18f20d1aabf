/* pendulum.c: Pendulum-v1 on the CPU: loops of the shared physics in env/pendulum.h over
 * a range of worlds (compiled for AVX-512, AVX2 and baseline x86-64, picked at load
 * time), and the registry entry. */
#include "env/pendulum.h"

#include "bodhi/env.h"
#include "env/env_impl.h"

static void pendulum_reset_cpu(bd_env_batch *b, int i0, int i1)
{
    for (int i = i0; i < i1; i++) {
        bd_pendulum_reset_one(b->state + BD_PENDULUM_STATE * i, b->obs + BD_PENDULUM_OBS * i,
                              b->seed, b->world0 + (uint32_t)i, 0);
        b->elapsed[i] = 0;
    }
}

/* Two passes over [i0, i1): the stepping half vectorises; resets are rare and scalar. */
BD_CPU_CLONES static void pendulum_step_cpu(bd_env_batch *b, int i0, int i1)
{
    float *restrict state = b->state, *restrict obs = b->obs;
    const float *restrict act = b->actions;
    float *restrict rew = b->rewards;
    uint8_t *restrict term = b->terminated, *restrict trunc = b->truncated;
    int32_t *restrict el = b->elapsed;
    const int max_steps = b->max_steps;
#pragma GCC ivdep /* world i touches only row i of every buffer */
    for (int i = i0; i < i1; i++)
        bd_pendulum_advance_world(i, state, obs, act, rew, term, trunc, el, max_steps);
    for (int i = i0; i < i1; i++)
        bd_pendulum_finish_world(i, state, obs, term, trunc, b->final_obs, el, b->seed, b->world0,
                                 b->step);
}

static const bd_channel pendulum_sensors[BD_PENDULUM_OBS] = {
    {"cos_theta", -1.0f, 1.0f, 0},
    {"sin_theta", -1.0f, 1.0f, 0},
    {"theta_dot", -BD_PENDULUM_MAX_SPEED, BD_PENDULUM_MAX_SPEED, 0},
};

static const bd_channel pendulum_actuators[1] = {
    {"torque", -BD_PENDULUM_MAX_TORQUE, BD_PENDULUM_MAX_TORQUE, 0},
};

const bd_env_desc bd_env_pendulum = {
    .name = "pendulum",
    .summary = "Pendulum-v1 (Gymnasium): swing a pendulum up and hold it; torque in [-2, 2], 200-step limit",
    .obs_dim = BD_PENDULUM_OBS,
    .act_dim = 1,
    .state_dim = BD_PENDULUM_STATE,
    .sensors = pendulum_sensors,
    .actuators = pendulum_actuators,
    .discrete = 0,
    .default_max_steps = BD_PENDULUM_MAX_STEPS,
    .reset_cpu = pendulum_reset_cpu,
    .step_cpu = pendulum_step_cpu,
    .reset_cuda = BD_CUDA_FN(bd_pendulum_reset_cuda),
    .step_cuda = BD_CUDA_FN(bd_pendulum_step_cuda),
};
