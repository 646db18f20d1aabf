/* env_impl.h: what built-in env files share: their registry entries (one per row of
 * env/builtins.h) and the BD_CUDA_FN macro that names a kernel launcher (env/env_launch.h)
 * only when the build has CUDA. */
#ifndef BODHI_ENV_IMPL_H
#define BODHI_ENV_IMPL_H

#include "bodhi/env.h"
#include "env/builtins.h"

#ifdef BODHI_HAVE_CUDA
#include "env/env_launch.h"
#define BD_CUDA_FN(f) (f)
#else
#define BD_CUDA_FN(f) NULL
#endif

#define BD_ENV_DECLARE(name, gym) extern const bd_env_desc bd_env_##name;
BD_BUILTIN_ENVS(BD_ENV_DECLARE)
#undef BD_ENV_DECLARE

#endif
