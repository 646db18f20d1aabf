/* cartpole.cu: CartPole-v1 on the GPU, one thread per world, around the same physics
 * header as the CPU loop (env/cartpole.h). Built with --fmad=false so the floats agree with
 * the CPU bit for bit. The batch is passed by value; its pointers are device
 * pointers. */
#include <cuda_runtime.h>

#include "env/cartpole.h"
#include "kernels/kernels.h"

static __global__ void bd_cartpole_reset_kernel(bd_env_batch b)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= b.n)
        return;
    bd_cartpole_reset_one(b.obs + 4 * i, b.seed, b.world0 + (uint32_t)i, 0);
    b.elapsed[i] = 0;
}

static __global__ void bd_cartpole_step_kernel(bd_env_batch b)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < b.n)
        bd_cartpole_step_world(i, b.obs, b.actions, b.rewards, b.terminated, b.truncated, b.final_obs,
                               b.elapsed, b.seed, b.world0, b.step, b.max_steps);
}

extern "C" int bd_cartpole_reset_cuda(bd_env_batch *b)
{
    bd_cartpole_reset_kernel<<<bd_cuda_blocks(b->n), BD_CUDA_THREADS>>>(*b);
    return bd_cuda_check_launch("cartpole reset kernel");
}

extern "C" int bd_cartpole_step_cuda(bd_env_batch *b)
{
    bd_cartpole_step_kernel<<<bd_cuda_blocks(b->n), BD_CUDA_THREADS>>>(*b);
    return bd_cuda_check_launch("cartpole step kernel");
}
