/* env_launch.h: how env/ reaches its CUDA kernels (the .cu files in kernels/ that launch
 * the env physics of env/<name>.h and the random actions of env/actions.h). Only built
 * when nvcc exists (BODHI_HAVE_CUDA). Each launcher takes the batch's device pointers,
 * checks its launch, and returns BD_OK or BD_ECUDA with CUDA's error text. */
#ifndef BODHI_KERNELS_ENV_LAUNCH_H
#define BODHI_KERNELS_ENV_LAUNCH_H

#include <stdint.h>

#include "bodhi/env.h"
#include "env/actions.h"

#ifdef __cplusplus
extern "C" {
#endif

int bd_random_actions_cuda(bd_env_batch *b, const bd_action_space *sp, uint64_t counter);

int bd_cartpole_reset_cuda(bd_env_batch *b);
int bd_cartpole_step_cuda(bd_env_batch *b);
int bd_pendulum_reset_cuda(bd_env_batch *b);
int bd_pendulum_step_cuda(bd_env_batch *b);
int bd_mountaincar_reset_cuda(bd_env_batch *b);
int bd_mountaincar_step_cuda(bd_env_batch *b);
int bd_acrobot_reset_cuda(bd_env_batch *b);
int bd_acrobot_step_cuda(bd_env_batch *b);
/* Tag: one block per world (kernels/tag.cu). */
int bd_tag_reset_cuda(bd_env_batch *b);
int bd_tag_step_cuda(bd_env_batch *b);

#ifdef __cplusplus
}
#endif
#endif
