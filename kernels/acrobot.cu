/* acrobot.cu: Acrobot-v1 on the GPU, one thread per world, around the same physics header
 * as the CPU loop (env/acrobot.h). Built with --fmad=false so the floats agree with the CPU
 * bit for bit. b's pointers (state (N,4) included) are device pointers. */
#include <cuda_runtime.h>

#include "env/acrobot.h"
#include "kernels/kernels.h"

static __global__ void bd_acrobot_reset_kernel(float *state, float *obs, int32_t *elapsed, int n,
                                               uint64_t seed, uint32_t world0)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n)
        return;
    bd_acrobot_reset_one(state + BD_ACROBOT_STATE * i, obs + BD_ACROBOT_OBS * i, seed,
                         world0 + (uint32_t)i, 0);
    elapsed[i] = 0;
}

static __global__ void bd_acrobot_step_kernel(float *state, float *obs, const float *actions,
                                              float *rewards, uint8_t *terminated,
                                              uint8_t *truncated, float *final_obs,
                                              int32_t *elapsed, int n, uint64_t seed,
                                              uint32_t world0, uint64_t step, int max_steps)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n)
        return;
    bd_acrobot_step_world(i, state, obs, actions, rewards, terminated, truncated, final_obs,
                          elapsed, seed, world0, step, max_steps);
}

static int bd_launch_check(const char *what)
{
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess)
        return bd_seterr(BD_ECUDA, "%s: %s", what, cudaGetErrorString(e));
    return BD_OK;
}

extern "C" int bd_acrobot_reset_cuda(bd_env_batch *b)
{
    int threads = 256, blocks = (b->n + threads - 1) / threads;
    bd_acrobot_reset_kernel<<<blocks, threads>>>(b->state, b->obs, b->elapsed, b->n, b->seed,
                                                 b->world0);
    return bd_launch_check("acrobot reset kernel");
}

extern "C" int bd_acrobot_step_cuda(bd_env_batch *b)
{
    int threads = 256, blocks = (b->n + threads - 1) / threads;
    bd_acrobot_step_kernel<<<blocks, threads>>>(b->state, b->obs, b->actions, b->rewards,
                                                b->terminated, b->truncated, b->final_obs,
                                                b->elapsed, b->n, b->seed, b->world0, b->step,
                                                b->max_steps);
    return bd_launch_check("acrobot step kernel");
}
