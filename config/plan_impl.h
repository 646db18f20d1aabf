/* plan_impl.h: what the files of a phase plan share (config/plan.c, config/plan_agent.c,
 * config/plan_env.c); not for other folders. */
#ifndef BODHI_CONFIG_PLAN_IMPL_H
#define BODHI_CONFIG_PLAN_IMPL_H

#include <stddef.h>

#include "config/diag.h"
#include "config/plan.h"
#include "config/registry.h"
#include "config/runfile.h"

/* "FILE:LINE:COL" of n, or "?" without one. */
static inline const char *bd_where(const bd_node *n, char *buf, size_t len)
{
    return n ? bd_node_where(n, buf, len) : "?";
}

/* The bytes of one shard's env buffers for n worlds of shape s (bd_env_buffer_sizes, summed):
 * what a muscle's shard, or greedy_average's worlds in a brain, hold. */
static inline double bd_plan_shard_bytes(const bd_env_shape *s, double n)
{
    double sizes[9], sum = 0;
    bd_env_buffer_sizes(s, n, sizes);
    for (int j = 0; j < 9; j++)
        sum += sizes[j];
    return sum;
}

/* "did you mean 'x'?" (the nearest of names) or "known: a, b, c" for an unknown name,
 * into buf (len); returns buf. */
const char *bd_suggest(const char *name, const char *const *names, int n, char *buf, size_t len);

/* The envs of phase ph into p->envs. Returns non-zero (noted in d) when an env cannot be
 * found, which stops the agents' checks; problems with an env's params are noted and
 * leave its worlds 0. */
int bd_plan_envs(const bd_phase_cfg *ph, bd_phase_plan *p, bd_diags *d);

/* Parts of bd_plan_agent (plan.c), each recording its problems in d and returning the
 * first one's code: where agent ap (run-file agent a) starts from; agent i's actuators (of
 * group g of env e) and that no other agent sets them; and a kind's params read once into
 * *value (bd_kind.parse), then its check. */
int bd_plan_load(bd_phase_plan *p, bd_agent_plan *ap, const bd_agent_cfg *a, bd_diags *d);
int bd_plan_actuators(bd_phase_plan *p, int i, const bd_env_plan *e, int g, bd_diags *d);
int bd_plan_kind(const bd_kind *k, const bd_node *params, const bd_phase_plan *p, bd_agent_plan *ap,
                 void **value, bd_diags *d);

#endif
