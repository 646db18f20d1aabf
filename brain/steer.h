/* steer.h: `bodhi set` (docs/run-file.md, "Steering a live run"): changes to a live phase,
 * "AGENT.KEY=VALUE", read by the rules the run file is read by. KEY is one of the
 * agent's brain params its learner can take while it learns (bd_learner_ops.steer_keys;
 * a train phase only), or, for AGENT "phase", one of the phase's caps (max_steps,
 * episodes). The conductor checks every change before it answers; each agent's brain
 * takes its changes before its next update. Both keep, per agent, its params with every
 * change of the phase so far (a bd_steer), so each change is read with the ones before it. */
#ifndef BODHI_BRAIN_STEER_H
#define BODHI_BRAIN_STEER_H

#include <stddef.h>

#include "config/plan.h"
#include "config/yamltree.h"

#define BD_STEER_MAX_ITEMS 64 /* changes in one `bodhi set` */
#define BD_STEER_MAX_TEXT 256 /* bytes of one "AGENT.KEY=VALUE" */
#define BD_STEER_PHASE "phase" /* the AGENT of the phase's caps */

/* An agent's params with the phase's changes so far (params NULL: none yet). */
typedef struct {
    bd_node *params;
} bd_steer;

/* Splits text "AGENT.KEY=VALUE" (the last '.' before the '=' ends AGENT) into agent and
 * key (NUL-terminated, at most BD_STEER_MAX_TEXT bytes each) and *value (into text).
 * BD_EINVAL naming what is wrong with it. */
int bd_steer_split(const char *text, char *agent, char *key, const char **value);

/* What can change in phase p, "AGENT.KEY, ..., phase.max_steps, phase.episodes", into buf:
 * every agent's steer keys in a train phase, the caps always. */
void bd_steer_can(const bd_phase_plan *p, char *buf, size_t len);

/* The agent of p a change names: *index its index, or -1 for the phase's caps. BD_EINVAL
 * ("'KEY' of agent 'A' cannot change ...") when KEY cannot change, BD_ENOTFOUND when no
 * agent has that name. */
int bd_steer_target(const bd_phase_plan *p, const char *agent, const char *key, int *index);

/* Makes the change key=value (bd_steer_target said where: index) on s (the agent's state;
 * NULL for the phase's) and p: a brain param is read with the agent's other params and
 * every earlier change by its kind's own parser, which yields *out (the kind's params, for
 * bd_learner_ops.steer; free with the kind's free_params; NULL for a cap); a cap is read
 * as phase_config's. BD_EINVAL with "KEY: expected ..., got V" leaves s and p as they
 * were. */
int bd_steer_apply(bd_steer *s, bd_phase_plan *p, int index, const char *key, const char *value, void **out);

/* The kind's parse of the agent's params with the changes so far (s->params, or the run
 * file's when none), into *out (the kind's free_params frees it). */
int bd_steer_params(const bd_steer *s, const bd_phase_plan *p, int index, void **out);

void bd_steer_fini(bd_steer *s); /* NULL-safe */

#endif
