/* cartpole.c: CartPole-v1 on the CPU: loops of the shared physics in env/cartpole.h over
 * a range of worlds (compiled for AVX-512, AVX2 and baseline x86-64, picked at load
 * time), and the registry entry. */
#include "env/cartpole.h"

#include "bodhi/env.h"
#include "env/env_impl.h"
#include "env/loops.h"

BD_ENV_CPU_LOOPS(cartpole)

static const bd_channel cartpole_sensors[BD_CARTPOLE_OBS] = {
    {"x", -4.8f, 4.8f, 0},
    {"x_dot", -3.4028235e38f, 3.4028235e38f, 0},
    {"theta", -0.41887903f, 0.41887903f, 0},
    {"theta_dot", -3.4028235e38f, 3.4028235e38f, 0},
};

static const bd_channel cartpole_actuators[1] = {
    {"push", 0.0f, 1.0f, 2},
};

const bd_env_desc bd_env_cartpole = {
    .abi_version = BD_ENV_ABI,
    .name = "cartpole",
    .summary = "balance a pole on a cart; reward 1 per step, 500-step limit",
    .obs_dim = BD_CARTPOLE_OBS,
    .act_dim = 1,
    .state_dim = 0,
    .sensors = cartpole_sensors,
    .actuators = cartpole_actuators,
    .discrete = 1,
    .default_max_steps = BD_CARTPOLE_MAX_STEPS,
    .reset_cpu = bd_cartpole_reset_cpu,
    .step_cpu = bd_cartpole_step_cpu,
    .reset_cuda = BD_CUDA_FN(bd_cartpole_reset_cuda),
    .step_cuda = BD_CUDA_FN(bd_cartpole_step_cuda),
};
