/* random.cu: uniform random actions on the GPU (the benchmark's policy), one thread per
 * Philox draw (four actions), around the same function as the CPU loop (env/actions.h). */
#include <cuda_runtime.h>

#include "env/actions.h"
#include "common/cuda.h"
#include "env/env_launch.h"

static __global__ void bd_random_actions_kernel(float *actions, int64_t nj, uint64_t k0,
                                                uint64_t c0, uint64_t ncalls, bd_action_space sp,
                                                uint64_t seed, uint64_t counter)
{
    uint64_t t = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (t < ncalls)
        bd_random_action_draw(c0 + t, actions, 0, nj, k0, &sp, seed, counter);
}

extern "C" int bd_random_actions_cuda(bd_env_batch *b, const bd_action_space *sp, uint64_t counter)
{
    int64_t nj = (int64_t)b->n * b->members * sp->act_dim;
    uint64_t k0 = (uint64_t)b->world0 * (uint64_t)b->members * (uint64_t)sp->act_dim;
    uint64_t c0 = k0 >> 2, ncalls = ((k0 + (uint64_t)nj + 3) >> 2) - c0;
    bd_random_actions_kernel<<<bd_cuda_blocks((int64_t)ncalls), BD_CUDA_THREADS>>>(
        b->actions, nj, k0, c0, ncalls, *sp, b->seed, counter);
    return bd_cuda_check_launch("random actions kernel");
}
