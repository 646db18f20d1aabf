/* builtins.h: the built-in environments, one row each, in the registry's fixed order:
 *   X(name, gymnasium id or NULL)
 * where `name` is the run-file name and the suffix of the env's descriptor (bd_env_<name>,
 * in env/<name>.c) and of its CUDA launchers (bd_<name>_reset_cuda, bd_<name>_step_cuda,
 * in kernels/<name>.cu). Every per-env list is made from this table: the descriptors'
 * declarations (env/env_impl.h), the registry and the Gymnasium ids (env/env.c) and the
 * launchers' declarations (env/env_launch.h). A new env is one row here plus its files. */
#ifndef BODHI_ENV_BUILTINS_H
#define BODHI_ENV_BUILTINS_H

#define BD_BUILTIN_ENVS(X)                                                                         \
    X(cartpole, "CartPole-v1")                                                                     \
    X(pendulum, "Pendulum-v1")                                                                     \
    X(mountaincar, "MountainCar-v0")                                                               \
    X(acrobot, "Acrobot-v1")                                                                       \
    X(tag, NULL)

#endif
