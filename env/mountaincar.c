/* mountaincar.c: MountainCar-v0 on the CPU: loops of the shared physics in
 * env/mountaincar.h over a range of worlds (compiled for AVX-512, AVX2 and baseline x86-64,
 * picked at load time), and the registry entry. */
#include "env/mountaincar.h"

#include "bodhi/env.h"
#include "env/env_impl.h"
#include "env/loops.h"

BD_ENV_CPU_LOOPS(mountaincar)

static const bd_channel mountaincar_sensors[BD_MOUNTAINCAR_OBS] = {
    {"position", BD_MOUNTAINCAR_MIN_POSITION, BD_MOUNTAINCAR_MAX_POSITION, 0},
    {"velocity", -BD_MOUNTAINCAR_MAX_SPEED, BD_MOUNTAINCAR_MAX_SPEED, 0},
};

static const bd_channel mountaincar_actuators[1] = {
    {"push", 0.0f, 2.0f, 3},
};

const bd_env_desc bd_env_mountaincar = {
    .abi_version = BD_ENV_ABI,
    .name = "mountaincar",
    .summary = "drive an underpowered car up the right hill; reward -1 per step, 200-step limit",
    .obs_dim = BD_MOUNTAINCAR_OBS,
    .act_dim = 1,
    .state_dim = 0,
    .sensors = mountaincar_sensors,
    .actuators = mountaincar_actuators,
    .discrete = 1,
    .default_max_steps = BD_MOUNTAINCAR_MAX_STEPS,
    .reset_cpu = bd_mountaincar_reset_cpu,
    .step_cpu = bd_mountaincar_step_cpu,
    .reset_cuda = BD_CUDA_FN(bd_mountaincar_reset_cuda),
    .step_cuda = BD_CUDA_FN(bd_mountaincar_step_cuda),
};
