/* bd_torch.h: the C shim over libtorch — the only C++ in bodhi (the .cpp files of torch/).
 * It is split by concern: networks and heads (torch/net.h: policy.cpp, heads.cpp),
 * algorithms (torch/ppo_algo.h: ppo.cpp; torch/sac_algo.h: sac.cpp), and here
 * checkpoints and the process-wide calls.
 *
 * Opaque handles, BD_OK/bd_err return codes (libtorch exceptions are caught and become
 * BD_ETORCH with the message in bd_lasterr()). All array arguments are host float32
 * arrays in row-major order unless stated; the shim copies them to the policy's device.
 *
 * The policy is CleanRL's actor-critic MLP: separate actor and critic trunks of
 * `layers` hidden layers of `hidden` units with tanh, orthogonal init (gain sqrt(2),
 * actor head 0.01, critic head 1.0), zero biases. Discrete policies output `act_dim`
 * logits; continuous ones a mean of `act_dim` and a state-independent log std parameter.
 */
#ifndef BODHI_TORCH_BD_TORCH_H
#define BODHI_TORCH_BD_TORCH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "bodhi/bodhi.h"
#include "torch/net.h"      /* networks and heads */
#include "torch/ppo_algo.h" /* algorithms: PPO */
#include "torch/dqn_algo.h" /* ... and DQN */
#include "torch/sac_algo.h" /* ... and SAC */
#include "torch/dist.h"     /* learner groups (c10d Gloo) */

#ifdef __cplusplus
extern "C" {
#endif

/* The shim is built with hidden visibility: only this C API leaves libbodhi_torch.so. */
#pragma GCC visibility push(default)

/* Checkpoint: model parameters and, when o is non-NULL, the optimiser state.
 * Written through path.tmp + rename. load checks the architecture matches. */
int bdt_save(bdt_policy *p, bdt_ppo *o, const char *path);
int bdt_load(bdt_policy *p, bdt_ppo *o, const char *path);
/* The network that acts in the checkpoint at path, whichever brain wrote it: a ppo brain's
 * policy, a dqn brain's Q-network, a sac brain's actor (BDT_SQUASHED). Its shape is the
 * file's, in *cfg (on the CPU); *out the network, loaded (the caller destroys it).
 * (bodhi.load_policy.) */
int bdt_load_actor(const char *path, bdt_policy_config *cfg, bdt_policy **out);

/* The interface this shim was built to: BDT_ABI_HASH, the SHA-256 of its C API's headers
 * (torch/abi.cmake). torch/lazy.c and bodhi._policy refuse a shim whose answer is not
 * their own (one built from other sources, left on LD_LIBRARY_PATH after an update). */
const char *bdt_abi(void);

/* Intra-op threads for this process. */
void bdt_set_threads(int n);

/* 1 when libtorch was built with CUDA and a device answers. */
int bdt_cuda_available(void);

/* Starts loading libtorch in a background thread, so that a process that will build a
 * network soon (a muscle waiting for its brain's first weights) has it loaded by then;
 * the first call that needs it waits for that load. Provided by torch/lazy.c, through
 * which bodhi's processes reach the shim (not by libbodhi_torch.so itself). */
void bdt_preload(void);

#pragma GCC visibility pop

/* Whether the shim at path, whose bdt_abi answered theirs (NULL: it has none), is of other
 * sources than mine (the loader's BDT_ABI_HASH): 1, and why, naming it, in why (len
 * bytes); 0 when it is the same. torch/lazy.c's refusal and bodhi._policy's, in one set of
 * words. */
static inline int bdt_abi_other(const char *theirs, const char *mine, const char *path, char *why, size_t len)
{
    if (theirs && strcmp(theirs, mine) == 0)
        return 0;
    snprintf(why, len,
             "%s was built from other sources than this bodhi (its interface %.12s%s, this bodhi's %.12s): "
             "rebuild it from these (bench/gpu/torch-shim/) or take it off LD_LIBRARY_PATH",
             path, theirs ? theirs : "none", theirs ? "" : " named", mine);
    return 1;
}

#ifdef __cplusplus
}
#endif
#endif
