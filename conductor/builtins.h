/* builtins.h: bodhi's registry: the built-in and plugin envs, the brains and muscles of
 * brain/ and muscle/, the objectives, and whether the torch shim has CUDA. The conductor
 * checks run files against it, and hands it to the brain and muscle processes it starts. */
#ifndef BODHI_CONDUCTOR_BUILTINS_H
#define BODHI_CONDUCTOR_BUILTINS_H

#include "config/registry.h"

/* The one registry of this program (static storage). */
const bd_registry *bd_registry_builtin(void);

/* Adds brain kinds (borrowed: static storage) to this program's registry, after brain/'s,
 * for a program that links bodhi's libraries and brings kinds of its own (the test suite's
 * noop learner, tests/noop_brain.c). Every process of a run is this executable, so each
 * must add the same kinds before it reads a run file. BD_EINVAL for a name the registry
 * has, BD_ENOMEM past BD_REGISTRY_MAX_BRAINS kinds. */
#define BD_REGISTRY_MAX_BRAINS 32
int bd_registry_add_brains(const bd_kind *kinds, int n);

#endif
