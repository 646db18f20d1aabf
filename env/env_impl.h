/* env_impl.h: what built-in env files share: their registry entries and the BD_CUDA_FN
 * macro that names a kernel launcher (kernels/env_launch.h) only when the build has CUDA. */
#ifndef BODHI_ENV_IMPL_H
#define BODHI_ENV_IMPL_H

#include "bodhi/env.h"

#ifdef BODHI_HAVE_CUDA
#include "kernels/env_launch.h"
#define BD_CUDA_FN(f) (f)
#else
#define BD_CUDA_FN(f) NULL
#endif

extern const bd_env_desc bd_env_cartpole;
extern const bd_env_desc bd_env_pendulum, bd_env_mountaincar, bd_env_acrobot;
extern const bd_env_desc bd_env_tag;

#endif
