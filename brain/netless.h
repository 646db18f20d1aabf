/* netless.h: the brain kinds without a network (random, none): the muscles act by
 * themselves (uniform actions, rules); the brain records, counts and learns nothing. Their
 * params: rollout_steps alone (bd_brain_auto_rollout without it). */
#ifndef BODHI_BRAIN_NETLESS_H
#define BODHI_BRAIN_NETLESS_H

#include <stdlib.h>

#include "brain/learner.h"

/* The registry's hooks (config/registry.h): params read into a bd_netless_params, the
 * check that the rollouts fit their messages, the rollout length. */
typedef struct {
    int rollout_steps;
} bd_netless_params;
int bd_netless_parse(const bd_node *params, const bd_phase_plan *p, const bd_agent_plan *ap, bd_diags *d,
                     void **out);
int bd_netless_check(const bd_node *params, const bd_phase_plan *p, const bd_agent_plan *ap, bd_diags *d);
long long bd_netless_rollout(const void *value);

/* Its learner: sends a WEIGHTS message with no network, learns nothing, saves nothing. */
extern const bd_learner_ops bd_netless_learner;

#define BD_NETLESS_KIND(name, family)                                                                     \
    {(name), (family), 1, bd_netless_parse, free, bd_netless_check, bd_netless_rollout, NULL,              \
     &bd_netless_learner, NULL}

#endif
