/* env_launch.h: the CUDA launchers of env/ (defined by the .cu files in kernels/, which
 * launch the env physics of env/<name>.h and the random actions of env/actions.h). It lives
 * beside its callers, so that env/ never includes kernels/ and kernels/ includes env/ only.
 * Only built when nvcc exists (BODHI_HAVE_CUDA). Each launcher takes the batch's device
 * pointers, checks its launch, and returns BD_OK or BD_ECUDA with CUDA's error text. */
#ifndef BODHI_ENV_ENV_LAUNCH_H
#define BODHI_ENV_ENV_LAUNCH_H

#include <stdint.h>

#include "bodhi/env.h"
#include "env/actions.h"
#include "env/builtins.h"

#ifdef __cplusplus
extern "C" {
#endif

int bd_random_actions_cuda(bd_env_batch *b, const bd_action_space *sp, uint64_t counter);

/* Every built-in's reset and step over the whole batch (Tag: one block per world). */
#define BD_ENV_LAUNCHERS(name, gym)                                                                \
    int bd_##name##_reset_cuda(bd_env_batch *b);                                                   \
    int bd_##name##_step_cuda(bd_env_batch *b);
BD_BUILTIN_ENVS(BD_ENV_LAUNCHERS)
#undef BD_ENV_LAUNCHERS

#ifdef __cplusplus
}
#endif
#endif
