/* pendulum.c: Pendulum-v1 on the CPU: loops of the shared physics in env/pendulum.h over
 * a range of worlds (compiled for AVX-512, AVX2 and baseline x86-64, picked at load
 * time), and the registry entry. */
#include "env/pendulum.h"

#include "bodhi/env.h"
#include "env/env_impl.h"
#include "env/loops.h"

BD_ENV_CPU_LOOPS(pendulum)

static const bd_channel pendulum_sensors[BD_PENDULUM_OBS] = {
    {"cos_theta", -1.0f, 1.0f, 0},
    {"sin_theta", -1.0f, 1.0f, 0},
    {"theta_dot", -BD_PENDULUM_MAX_SPEED, BD_PENDULUM_MAX_SPEED, 0},
};

static const bd_channel pendulum_actuators[1] = {
    {"torque", -BD_PENDULUM_MAX_TORQUE, BD_PENDULUM_MAX_TORQUE, 0},
};

const bd_env_desc bd_env_pendulum = {
    .abi_version = BD_ENV_ABI,
    .name = "pendulum",
    .summary = "swing a pendulum up and hold it; torque in [-2, 2], 200-step limit",
    .obs_dim = BD_PENDULUM_OBS,
    .act_dim = 1,
    .state_dim = BD_PENDULUM_STATE,
    .sensors = pendulum_sensors,
    .actuators = pendulum_actuators,
    .discrete = 0,
    .default_max_steps = BD_PENDULUM_MAX_STEPS,
    .reset_cpu = bd_pendulum_reset_cpu,
    .step_cpu = bd_pendulum_step_cpu,
    .reset_cuda = BD_CUDA_FN(bd_pendulum_reset_cuda),
    .step_cuda = BD_CUDA_FN(bd_pendulum_step_cuda),
};
