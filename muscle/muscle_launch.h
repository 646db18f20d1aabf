/* muscle_launch.h: the CUDA launchers of muscle/ (defined by kernels/muscle.cu): the
 * per-column work of muscle/act.h over a->n columns, one thread per column, on device
 * pointers. It lives beside its caller (muscle/actor.c), so that muscle/ never includes
 * kernels/. Only built when nvcc exists (BODHI_HAVE_CUDA). Each returns BD_OK or BD_ECUDA
 * with CUDA's error text. */
#ifndef BODHI_MUSCLE_MUSCLE_LAUNCH_H
#define BODHI_MUSCLE_MUSCLE_LAUNCH_H

#include <stdint.h>

#include "bodhi/env.h"
#include "muscle/act.h"

#ifdef __cplusplus
extern "C" {
#endif

int bd_act_gather_cuda(const bd_act_args *a, const float *src, float *raw, float *net);
int bd_act_select_cuda(const bd_act_args *a, uint64_t step, const float *out, const float *obs,
                       float *act, float *logp, float *value, float *env_act);
/* Also clears *any and, unless fobs is NULL (no network), gathers the final observations
 * that need a value by world and sets *any. */
int bd_act_record_cuda(const bd_act_args *a, const bd_env_batch *b, float *rew, uint8_t *term,
                       uint8_t *trunc, float *fval, float *fobs, int *any);
/* fval[i] = fv[i] where trunc[i] and not term[i]. */
int bd_act_fval_cuda(int n, const uint8_t *term, const uint8_t *trunc, const float *fv, float *fval);

#ifdef __cplusplus
}
#endif
#endif
