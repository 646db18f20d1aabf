/* builtins.h: bodhi's registry: the built-in and plugin envs, the brains and muscles of
 * brain/ and muscle/, the objectives, and whether the torch shim has CUDA. The conductor
 * checks run files against it, and hands it to the brain and muscle processes it starts. */
#ifndef BODHI_CONDUCTOR_BUILTINS_H
#define BODHI_CONDUCTOR_BUILTINS_H

#include "config/registry.h"

/* The one registry of this program (static storage). */
const bd_registry *bd_registry_builtin(void);

#endif
