/* pendulum.cu: Pendulum-v1 on the GPU, one thread per world, around the same physics
 * header as the CPU loop (env/pendulum.h). Built with --fmad=false so the floats agree with
 * the CPU bit for bit. The batch is passed by value; its pointers (state (N,2) included) are device
 * pointers. */
#include <cuda_runtime.h>

#include "env/pendulum.h"
#include "kernels/kernels.h"

static __global__ void bd_pendulum_reset_kernel(bd_env_batch b)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= b.n)
        return;
    bd_pendulum_reset_one(b.state + BD_PENDULUM_STATE * i, b.obs + BD_PENDULUM_OBS * i, b.seed,
                              b.world0 + (uint32_t)i, 0);
    b.elapsed[i] = 0;
}

static __global__ void bd_pendulum_step_kernel(bd_env_batch b)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < b.n)
        bd_pendulum_step_world(i, b.state, b.obs, b.actions, b.rewards, b.terminated, b.truncated,
                               b.final_obs, b.elapsed, b.seed, b.world0, b.step, b.max_steps);
}

extern "C" int bd_pendulum_reset_cuda(bd_env_batch *b)
{
    bd_pendulum_reset_kernel<<<bd_cuda_blocks(b->n), BD_CUDA_THREADS>>>(*b);
    return bd_cuda_check_launch("pendulum reset kernel");
}

extern "C" int bd_pendulum_step_cuda(bd_env_batch *b)
{
    bd_pendulum_step_kernel<<<bd_cuda_blocks(b->n), BD_CUDA_THREADS>>>(*b);
    return bd_cuda_check_launch("pendulum step kernel");
}
