/* muscle.cu: a muscle's per-column work on the GPU (one thread per column), around the same
 * functions as the CPU loops in muscle/actor.c (muscle/act.h). With the env's kernels
 * and libtorch's inference on the same (default) stream, a muscle's round keeps its
 * observations, actions and rollout on the device. */
#include <cuda_runtime.h>

#include "common/cuda.h"
#include "muscle/muscle_launch.h"

static __global__ void bd_act_gather_kernel(bd_act_args a, const float *src, float *raw, float *net)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < a.n)
        bd_act_gather(i, &a, src, raw, net);
}

static __global__ void bd_act_select_kernel(bd_act_args a, uint64_t step, const float *out,
                                            const float *obs, float *act, float *logp, float *value,
                                            float *env_act)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < a.n)
        bd_act_select(i, &a, step, out, obs, act, logp, value, env_act);
}

static __global__ void bd_act_record_kernel(bd_act_args a, bd_env_batch b, float *rew, uint8_t *term,
                                            uint8_t *trunc, float *fval, float *fobs, int *any)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < a.n && bd_act_record(i, &a, b.rewards, b.terminated, b.truncated, rew, term, trunc, fval)
        && fobs) {
        bd_act_gather(i, &a, b.final_obs, NULL, fobs);
        atomicExch(any, 1); /* every writer stores the same value, atomically */
    }
}

static __global__ void bd_act_fval_kernel(int n, const uint8_t *term, const uint8_t *trunc,
                                          const float *fv, float *fval)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n && trunc[i] && !term[i])
        fval[i] = fv[i];
}

extern "C" int bd_act_gather_cuda(const bd_act_args *a, const float *src, float *raw, float *net)
{
    bd_act_gather_kernel<<<bd_cuda_blocks(a->n), BD_CUDA_THREADS>>>(*a, src, raw, net);
    return bd_cuda_check_launch("muscle gather kernel");
}

extern "C" int bd_act_select_cuda(const bd_act_args *a, uint64_t step, const float *out, const float *obs,
                                  float *act, float *logp, float *value, float *env_act)
{
    bd_act_select_kernel<<<bd_cuda_blocks(a->n), BD_CUDA_THREADS>>>(*a, step, out, obs, act, logp, value,
                                                                     env_act);
    return bd_cuda_check_launch("muscle select kernel");
}

extern "C" int bd_act_record_cuda(const bd_act_args *a, const bd_env_batch *b, float *rew,
                                  uint8_t *term, uint8_t *trunc, float *fval, float *fobs, int *any)
{
    cudaError_t e = cudaMemsetAsync(any, 0, sizeof(int), 0);
    if (e != cudaSuccess)
        return bd_seterr(BD_ECUDA, "muscle record: cudaMemsetAsync: %s", cudaGetErrorString(e));
    bd_act_record_kernel<<<bd_cuda_blocks(a->n), BD_CUDA_THREADS>>>(*a, *b, rew, term, trunc, fval,
                                                                     fobs, any);
    return bd_cuda_check_launch("muscle record kernel");
}

extern "C" int bd_act_fval_cuda(int n, const uint8_t *term, const uint8_t *trunc, const float *fv,
                                float *fval)
{
    bd_act_fval_kernel<<<bd_cuda_blocks(n), BD_CUDA_THREADS>>>(n, term, trunc, fv, fval);
    return bd_cuda_check_launch("muscle final-value kernel");
}
