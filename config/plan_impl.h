/* plan_impl.h: what the files of a phase plan share (config/plan.c, config/plan_env.c);
 * not for other folders. */
#ifndef BODHI_CONFIG_PLAN_IMPL_H
#define BODHI_CONFIG_PLAN_IMPL_H

#include <stddef.h>

#include "config/diag.h"
#include "config/plan.h"

/* "FILE:LINE:COL" of node n into buf (len), or "?" for no node; returns buf's text. */
const char *bd_where(const bd_node *n, char *buf, size_t len);

/* "did you mean 'x'?" (the nearest of names) or "known: a, b, c" for an unknown name,
 * into buf (len); returns buf. */
const char *bd_suggest(const char *name, const char *const *names, int n, char *buf, size_t len);

/* The envs of phase ph into p->envs. Returns non-zero (noted in d) when an env cannot be
 * found, which stops the agents' checks; problems with an env's params are noted and
 * leave its worlds 0. */
int bd_plan_envs(const bd_phase_cfg *ph, bd_phase_plan *p, bd_diags *d);

#endif
