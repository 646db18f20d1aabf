/* mountaincar.cu: MountainCar-v0 on the GPU, one thread per world, around the same physics
 * header as the CPU loop (env/mountaincar.h). Built with --fmad=false so the floats agree with
 * the CPU bit for bit. The batch is passed by value; its pointers are device
 * pointers. */
#include <cuda_runtime.h>

#include "env/mountaincar.h"
#include "kernels/kernels.h"

static __global__ void bd_mountaincar_reset_kernel(bd_env_batch b)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= b.n)
        return;
    bd_mountaincar_reset_one(b.obs + BD_MOUNTAINCAR_OBS * i, b.seed, b.world0 + (uint32_t)i, 0);
    b.elapsed[i] = 0;
}

static __global__ void bd_mountaincar_step_kernel(bd_env_batch b)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < b.n)
        bd_mountaincar_step_world(i, b.obs, b.actions, b.rewards, b.terminated, b.truncated,
                                  b.final_obs, b.elapsed, b.seed, b.world0, b.step, b.max_steps);
}

extern "C" int bd_mountaincar_reset_cuda(bd_env_batch *b)
{
    bd_mountaincar_reset_kernel<<<bd_cuda_blocks(b->n), BD_CUDA_THREADS>>>(*b);
    return bd_cuda_check_launch("mountaincar reset kernel");
}

extern "C" int bd_mountaincar_step_cuda(bd_env_batch *b)
{
    bd_mountaincar_step_kernel<<<bd_cuda_blocks(b->n), BD_CUDA_THREADS>>>(*b);
    return bd_cuda_check_launch("mountaincar step kernel");
}
