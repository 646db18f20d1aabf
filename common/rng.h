/* rng.h: counter-based randomness shared by CPU and GPU (Random123 Philox4x32-10), for
 * bodhi's own code: the public bodhi/rng.h (which env plugins include too), with
 * BD_HOSTDEV from common/hostdev.h. */
#ifndef BODHI_COMMON_RNG_H
#define BODHI_COMMON_RNG_H

#include "common/hostdev.h"
#include "bodhi/rng.h"

#endif
