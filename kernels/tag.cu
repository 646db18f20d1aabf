/* tag.cu: Tag on the GPU: one block per world, its threads striding over the world's
 * agents through the same per-world reset and step as the CPU loop (env/tag.h), with
 * __syncthreads between the phases and the grid sorted by atomic counts and scatter (the
 * order inside a cell does not change any result). Up to BD_TAG_THREADS threads per
 * world, fewer for small worlds (a warp at least). Built with --fmad=false so the floats
 * agree with the CPU bit for bit. */
#include "env/tag.h"
#include "common/cuda.h"
#include "env/env_launch.h"

static __global__ void bd_tag_reset_kernel(bd_env_batch b, bd_tag_cfg c)
{
    __shared__ bd_tag_shared sh;
    bd_tag_world_reset(&b, &c, (int)blockIdx.x, 0, (int)threadIdx.x, (int)blockDim.x, &sh);
}

static __global__ void bd_tag_step_kernel(bd_env_batch b, bd_tag_cfg c)
{
    __shared__ bd_tag_shared sh;
    bd_tag_world_step(&b, &c, (int)blockIdx.x, (int)threadIdx.x, (int)blockDim.x, &sh);
}

/* Threads per world: the agents rounded up to a warp, at most BD_TAG_THREADS. */
static unsigned bd_tag_threads(int members)
{
    int t = (members + 31) / 32 * 32;
    return (unsigned)(t < BD_TAG_THREADS ? t : BD_TAG_THREADS);
}

extern "C" int bd_tag_reset_cuda(bd_env_batch *b)
{
    bd_tag_cfg c;
    bd_tag_cfg_of(b->param, b->members, &c);
    bd_tag_reset_kernel<<<(unsigned)b->n, bd_tag_threads(b->members)>>>(*b, c);
    return bd_cuda_check_launch("tag reset kernel");
}

extern "C" int bd_tag_step_cuda(bd_env_batch *b)
{
    bd_tag_cfg c;
    bd_tag_cfg_of(b->param, b->members, &c);
    bd_tag_step_kernel<<<(unsigned)b->n, bd_tag_threads(b->members)>>>(*b, c);
    return bd_cuda_check_launch("tag step kernel");
}
