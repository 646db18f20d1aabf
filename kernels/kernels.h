/* kernels.h: the C face of the CUDA side (the .cu files in kernels/): device memory,
 * copies, one launcher per environment, and the muscle's per-world kernels. Every
 * function checks every CUDA call and returns BD_OK or BD_ECUDA with the CUDA error text
 * in bd_lasterr(). Only built when nvcc exists (BODHI_HAVE_CUDA); env/ and
 * muscle/policy.c call them. */
#ifndef BODHI_KERNELS_KERNELS_H
#define BODHI_KERNELS_KERNELS_H

#include <stddef.h>

#include "bodhi/env.h"
#include "env/actions.h"
#include "muscle/act.h"

#ifdef __cplusplus
extern "C" {
#endif

#define BD_CUDA_THREADS 256

/* Blocks of BD_CUDA_THREADS covering n items. */
static inline unsigned bd_cuda_blocks(int64_t n)
{
    return (unsigned)((n + BD_CUDA_THREADS - 1) / BD_CUDA_THREADS);
}

/* After a kernel launch: BD_OK, or BD_ECUDA naming `what` with CUDA's error text. */
int bd_cuda_check_launch(const char *what);

int bd_cuda_device_count(void);
int bd_cuda_name(char *buf, int len);
int bd_cuda_alloc(void **ptr, size_t bytes);   /* zero-filled */
void bd_cuda_release(void *ptr);               /* NULL-safe */
int bd_cuda_to_device(void *dst, const void *src, size_t bytes);
int bd_cuda_to_host(void *dst, const void *src, size_t bytes);
int bd_cuda_sync(void);
/* Device-to-device copy bandwidth (bytes read + written per second) over `bytes`. */
int bd_cuda_copy_bandwidth(size_t bytes, double *bytes_per_s);

int bd_random_actions_cuda(bd_env_batch *b, const bd_action_space *sp, uint64_t counter);

/* The muscle's per-world work of muscle/act.h over a->n worlds (device pointers).
 * record also clears *any and, unless fobs is NULL (no network), gathers the final
 * observations that need a value by world and sets *any. */
int bd_act_gather_cuda(const bd_act_args *a, const float *src, float *raw, float *net);
int bd_act_select_cuda(const bd_act_args *a, uint64_t step, const float *out, float *act,
                       float *logp, float *value, float *env_act);
int bd_act_record_cuda(const bd_act_args *a, const bd_env_batch *b, float *rew, uint8_t *term,
                       uint8_t *trunc, float *fval, float *fobs, int *any);
/* fval[i] = fv[i] where trunc[i] and not term[i]. */
int bd_act_fval_cuda(int n, const uint8_t *term, const uint8_t *trunc, const float *fv, float *fval);

int bd_cartpole_reset_cuda(bd_env_batch *b);
int bd_cartpole_step_cuda(bd_env_batch *b);
int bd_pendulum_reset_cuda(bd_env_batch *b);
int bd_pendulum_step_cuda(bd_env_batch *b);
int bd_mountaincar_reset_cuda(bd_env_batch *b);
int bd_mountaincar_step_cuda(bd_env_batch *b);
int bd_acrobot_reset_cuda(bd_env_batch *b);
int bd_acrobot_step_cuda(bd_env_batch *b);

#ifdef __cplusplus
}
#endif
#endif
