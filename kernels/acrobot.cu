/* acrobot.cu: Acrobot-v1 on the GPU: the kernels and launchers of env/loops.h around the
 * same physics header as the CPU loop (env/acrobot.h). Built with --fmad=false so the floats
 * agree with the CPU bit for bit. */
#include "env/acrobot.h"
#include "env/loops.h"

BD_ENV_CUDA_LAUNCHERS(acrobot)
