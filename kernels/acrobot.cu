/* acrobot.cu: Acrobot-v1 on the GPU, one thread per world, around the same physics
 * header as the CPU loop (env/acrobot.h). Built with --fmad=false so the floats agree with
 * the CPU bit for bit. The batch is passed by value; its pointers (state (N,4) included) are device
 * pointers. */
#include <cuda_runtime.h>

#include "env/acrobot.h"
#include "kernels/kernels.h"

static __global__ void bd_acrobot_reset_kernel(bd_env_batch b)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= b.n)
        return;
    bd_acrobot_reset_one(b.state + BD_ACROBOT_STATE * i, b.obs + BD_ACROBOT_OBS * i, b.seed,
                             b.world0 + (uint32_t)i, 0);
    b.elapsed[i] = 0;
}

static __global__ void bd_acrobot_step_kernel(bd_env_batch b)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < b.n)
        bd_acrobot_step_world(i, b.state, b.obs, b.actions, b.rewards, b.terminated, b.truncated,
                              b.final_obs, b.elapsed, b.seed, b.world0, b.step, b.max_steps);
}

extern "C" int bd_acrobot_reset_cuda(bd_env_batch *b)
{
    bd_acrobot_reset_kernel<<<bd_cuda_blocks(b->n), BD_CUDA_THREADS>>>(*b);
    return bd_cuda_check_launch("acrobot reset kernel");
}

extern "C" int bd_acrobot_step_cuda(bd_env_batch *b)
{
    bd_acrobot_step_kernel<<<bd_cuda_blocks(b->n), BD_CUDA_THREADS>>>(*b);
    return bd_cuda_check_launch("acrobot step kernel");
}
