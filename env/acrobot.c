/* acrobot.c: Acrobot-v1 on the CPU: loops of the shared physics in env/acrobot.h over a
 * range of worlds (compiled for AVX-512, AVX2 and baseline x86-64, picked at load time),
 * and the registry entry. */
#include "env/acrobot.h"

#include "bodhi/env.h"
#include "env/env_impl.h"
#include "env/loops.h"

BD_ENV_CPU_LOOPS(acrobot)

static const bd_channel acrobot_sensors[BD_ACROBOT_OBS] = {
    {"cos_theta1", -1.0f, 1.0f, 0},
    {"sin_theta1", -1.0f, 1.0f, 0},
    {"cos_theta2", -1.0f, 1.0f, 0},
    {"sin_theta2", -1.0f, 1.0f, 0},
    {"theta1_dot", -BD_ACROBOT_MAX_VEL_1, BD_ACROBOT_MAX_VEL_1, 0},
    {"theta2_dot", -BD_ACROBOT_MAX_VEL_2, BD_ACROBOT_MAX_VEL_2, 0},
};

static const bd_channel acrobot_actuators[1] = {
    {"torque", 0.0f, 2.0f, 3},
};

const bd_env_desc bd_env_acrobot = {
    .abi_version = BD_ENV_ABI,
    .name = "acrobot",
    .summary = "swing a two-link chain's tip above a line; reward -1 per step, 500-step limit",
    .obs_dim = BD_ACROBOT_OBS,
    .act_dim = 1,
    .state_dim = BD_ACROBOT_STATE,
    .sensors = acrobot_sensors,
    .actuators = acrobot_actuators,
    .discrete = 1,
    .default_max_steps = BD_ACROBOT_MAX_STEPS,
    .reset_cpu = bd_acrobot_reset_cpu,
    .step_cpu = bd_acrobot_step_cpu,
    .reset_cuda = BD_CUDA_FN(bd_acrobot_reset_cuda),
    .step_cuda = BD_CUDA_FN(bd_acrobot_step_cuda),
};
