/* setpath.h: one value of a run file set by its path, as `bodhi sweep --set` names it
 * (docs/run-file.md, "Sweeps").
 *
 * The tree is a run file's effective tree (bd_runfile.effective: every phase written out in
 * full), so a value set in a phase is the value that phase runs with. A path is
 *   [PHASE:]WHERE.KEY[.KEY...]
 * where WHERE is
 *   - an agent's name (balancer.brain.params.learning_rate),
 *   - an environment's uid (pole.params.worlds: the keys of its `environment:` map),
 *   - a key of the phase (phase_config.worker, simulation.conditions.max_steps.params.steps:
 *     in a list, a KEY picks the item with that `name`, or the environment with that uid),
 *   - or, when the run file has one agent, one of its keys (brain.params.learning_rate).
 * The value goes to every phase that has what the path names (PHASE: only to that one).
 * Maps on the way that are not written are made; the last key is added or replaced; a
 * value is a plain YAML scalar (read as the run file's are: the check that follows says
 * whether it fits). */
#ifndef BODHI_CONFIG_SETPATH_H
#define BODHI_CONFIG_SETPATH_H

#include "config/yamltree.h"

/* Sets path to value in the effective tree eff (its `schedule`). BD_EINVAL with a message
 * naming the path and what it does not find (the agents, environments or keys there are),
 * (the tree may then be changed in part: the caller drops it); BD_ENOMEM. *phases (may be NULL): how
 * many phases took it. */
int bd_setpath(bd_node *eff, const char *path, const char *value, int *phases);

#endif
