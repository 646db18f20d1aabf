/* loops.h: the loops every environment runs, written once. An env header provides two
 * BD_HOSTDEV per-world functions:
 *   bd_<env>_reset(i, b, counter)  a fresh episode in world i from draws at `counter`
 *                                  (state, obs, and the episode clock set to 0)
 *   bd_<env>_advance(i, state, obs, actions, rewards, terminated, truncated, elapsed,
 *                    max_steps)    dynamics, reward, flags, episode clock: no branches
 *                                  (the buffers as restrict pointers: gcc vectorises the loop
 *                                  over worlds only when it sees them so); a world that
 *                                  ended still shows its last observation
 * and this header adds bd_<env>_finish(i, b): if world i ended, its last observation into
 * final_obs and a fresh episode from draws at counter step+1. BD_ENV_CPU_LOOPS(env) then
 * defines bd_<env>_reset_cpu and bd_<env>_step_cpu for the
 * bd_env_desc (the advance loop vectorises: AVX-512/AVX2/baseline clones; the finish loop
 * is scalar and cheap), and BD_ENV_CUDA_LAUNCHERS(env), in a .cu file, the kernels (one
 * thread per world: advance then finish) and their launchers bd_<env>_reset_cuda and
 * bd_<env>_step_cuda. A plugin can use both. */
#ifndef BODHI_ENV_LOOPS_H
#define BODHI_ENV_LOOPS_H

#include "bodhi/env.h"
#include "common/hostdev.h"

#define BD_ENV_FINISH(env)                                                                         \
    BD_HOSTDEV static inline void bd_##env##_finish(int i, const bd_env_batch *b)                  \
    {                                                                                              \
        if (!b->terminated[i] && !b->truncated[i])                                                 \
            return;                                                                                \
        const int64_t D = b->obs_dim;                                                              \
        for (int64_t k = 0; k < D; k++)                                                            \
            b->final_obs[i * D + k] = b->obs[i * D + k];                                           \
        bd_##env##_reset(i, b, b->step + 1);                                                       \
    }

#define BD_ENV_CPU_LOOPS(env)                                                                      \
    BD_ENV_FINISH(env)                                                                             \
    static void bd_##env##_reset_cpu(bd_env_batch *b, int i0, int i1)                              \
    {                                                                                              \
        for (int i = i0; i < i1; i++)                                                              \
            bd_##env##_reset(i, b, 0);                                                             \
    }                                                                                              \
    BD_CPU_CLONES static void bd_##env##_step_cpu(bd_env_batch *b, int i0, int i1)                 \
    {                                                                                              \
        float *restrict state = b->state, *restrict obs = b->obs, *restrict rew = b->rewards;     \
        const float *restrict act = b->actions;                                                    \
        uint8_t *restrict term = b->terminated, *restrict trunc = b->truncated;                    \
        int32_t *restrict el = b->elapsed;                                                         \
        const int max_steps = b->max_steps;                                                        \
        _Pragma("GCC ivdep") /* world i touches only row i of every buffer */                      \
        for (int i = i0; i < i1; i++)                                                              \
            bd_##env##_advance(i, state, obs, act, rew, term, trunc, el, max_steps);               \
        for (int i = i0; i < i1; i++)                                                              \
            bd_##env##_finish(i, b);                                                               \
    }

#ifdef __CUDACC__
#include "common/cuda.h"

#define BD_ENV_CUDA_LAUNCHERS(env)                                                                 \
    BD_ENV_FINISH(env)                                                                             \
    static __global__ void bd_##env##_reset_kernel(bd_env_batch b)                                 \
    {                                                                                              \
        int i = blockIdx.x * blockDim.x + threadIdx.x;                                             \
        if (i < b.n)                                                                               \
            bd_##env##_reset(i, &b, 0);                                                            \
    }                                                                                              \
    static __global__ void bd_##env##_step_kernel(bd_env_batch b)                                  \
    {                                                                                              \
        int i = blockIdx.x * blockDim.x + threadIdx.x;                                             \
        if (i < b.n) {                                                                             \
            bd_##env##_advance(i, b.state, b.obs, b.actions, b.rewards, b.terminated, b.truncated, \
                               b.elapsed, b.max_steps);                                            \
            bd_##env##_finish(i, &b);                                                              \
        }                                                                                          \
    }                                                                                              \
    extern "C" int bd_##env##_reset_cuda(bd_env_batch *b)                                          \
    {                                                                                              \
        bd_##env##_reset_kernel<<<bd_cuda_blocks(b->n), BD_CUDA_THREADS>>>(*b);                     \
        return bd_cuda_check_launch(#env " reset kernel");                                         \
    }                                                                                              \
    extern "C" int bd_##env##_step_cuda(bd_env_batch *b)                                           \
    {                                                                                              \
        bd_##env##_step_kernel<<<bd_cuda_blocks(b->n), BD_CUDA_THREADS>>>(*b);                      \
        return bd_cuda_check_launch(#env " step kernel");                                          \
    }
#endif

#endif
