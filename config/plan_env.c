/* plan_env.c: a phase's environments resolved against the registry (see plan.h): each
 * env found by name, its uid, worlds, max_steps and own params checked (the ranges by the
 * env's own check), its layout, and whether its muscles' buffers fit this machine. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "config/plan.h"
#include "config/plan_impl.h"

/* The params every env takes, worlds and max_steps (default_max_steps when absent), into
 * e; their problems are noted. Also for an env that is unknown, so that its other
 * problems are not hidden behind its name. */
static void bd_plan_env_counts(const bd_phase_cfg *ph, const bd_env_cfg *ec, bd_env_plan *e, int default_max_steps,
                               bd_diags *d)
{
    char w[256];
    int rc;
    const bd_node *params = ec->env.params;
    long long worlds, max_steps;
    int muscles = ph->worker + ph->remote_worker;
    const bd_node *wn = bd_node_get(params, "worlds");
    if ((rc = bd_node_int(params, "worlds", 1, &worlds)) != BD_OK)
        bd_diag(d, rc);
    else if (worlds < muscles || worlds > BD_MAX_WORLDS)
        bd_diag(d, bd_seterr(BD_EINVAL, "%s: worlds: expected %d (one per muscle) to %d, got %lld",
                             bd_where(wn ? wn : ec->env.node, w, sizeof w), muscles, BD_MAX_WORLDS, worlds));
    else
        e->worlds = worlds;
    const bd_node *mn = bd_node_get(params, "max_steps");
    if ((rc = bd_node_int(params, "max_steps", default_max_steps, &max_steps)) != BD_OK)
        bd_diag(d, rc);
    else if (max_steps < 1 || max_steps > (1ll << 30))
        bd_diag(d, bd_seterr(BD_EINVAL, "%s: max_steps: expected 1 to 2^30 steps per episode, got %lld",
                             bd_where(mn ? mn : ec->env.node, w, sizeof w), max_steps));
    else
        e->max_steps = (int)max_steps;
}

/* env e's params: worlds, max_steps and the env's own, each a number in its range (the
 * env's own check, through the registry). Returns 1 when the env's own are (the layout
 * can be worked out). */
static int bd_plan_env_params(const bd_phase_plan *p, const bd_phase_cfg *ph, const bd_env_cfg *ec, bd_env_plan *e,
                              bd_diags *d)
{
    char w[256];
    int rc;
    const bd_env_desc *env = e->desc;
    const bd_node *params = ec->env.params;
    const char *keys[BD_ENV_MAX_PARAMS + 3] = {"worlds", "max_steps"};
    int nk = 2;
    for (int k = 0; k < env->nparams && k < BD_ENV_MAX_PARAMS; k++)
        keys[nk++] = env->params[k].name;
    keys[nk] = NULL;
    if ((rc = bd_node_check_keys(params, keys, "environment params", d)) != BD_OK)
        bd_diag(d, rc);
    bd_plan_env_counts(ph, ec, e, env->default_max_steps, d);
    int params_ok = 1;
    for (int k = 0; k < env->nparams && k < BD_ENV_MAX_PARAMS; k++) {
        const bd_env_param *ep = &env->params[k];
        const bd_node *n = bd_node_get(params, ep->name);
        double v = ep->def;
        e->param[k] = ep->def;
        if (!n)
            continue;
        bd_where(n, w, sizeof w);
        if ((rc = bd_node_as_double(n, &v)) != BD_OK || !isfinite(v)) {
            params_ok = 0;
            bd_diag(d, bd_seterr(BD_EINVAL, "%s: %s: expected a number (%s), got '%s'", w, ep->name, ep->help,
                                 n->kind == BD_NODE_SCALAR && n->text ? n->text : "a list or map"));
        } else if ((rc = p->reg->env_param_check(env, k, v)) != BD_OK) { /* its range: the env's own check */
            char why[1024];
            snprintf(why, sizeof why, "%s", bd_lasterr());
            params_ok = 0;
            bd_diag(d, bd_seterr(rc, "%s: %s", w, why));
        } else {
            e->param[k] = (float)v;
        }
    }
    if (!(e->params_json = bd_node_to_json(params)))
        bd_diag(d, BD_ENOMEM);
    return params_ok;
}

int bd_plan_envs(const bd_phase_cfg *ph, bd_phase_plan *p, bd_diags *d)
{
    char w[256];
    if (ph->nenvs == 0 && ph->invalid)
        return BD_EINVAL; /* its environments entry has problems, noted already */
    if (ph->nenvs < 1)
        return bd_diag(d, bd_seterr(BD_EINVAL, "%s: phase '%s' lists no environments", bd_where(ph->node, w, sizeof w),
                                    ph->name));
    p->envs = calloc((size_t)ph->nenvs, sizeof *p->envs);
    if (!p->envs)
        return bd_diag(d, bd_seterr(BD_ENOMEM, "out of memory"));
    p->nenvs = ph->nenvs;
    int bad = BD_OK;
    for (int k = 0; k < ph->nenvs; k++) {
        const bd_env_cfg *ec = &ph->envs[k];
        bd_env_plan *e = &p->envs[k];
        e->index = k;
        /* the first env's draws are what a one-env phase always drew */
        e->seed = bd_seed_mix(p->rf->seed, (uint64_t)p->phase_index, 7 + 0x100 * (uint64_t)k);
        int lrc = p->reg->env_load(ec->env.name, &e->desc);
        bd_where(ec->env.node, w, sizeof w);
        if (lrc != BD_OK && strchr(ec->env.name, ':')) {
            char why[2048]; /* bd_seterr must not read the buffer it writes */
            snprintf(why, sizeof why, "%s", bd_lasterr());
            bad = bd_diag(d, bd_seterr(lrc, "%s: %s", w, why));
            e->uid = ec->uid;
            bd_plan_env_counts(ph, ec, e, 1, d);
            continue;
        }
        if (lrc != BD_OK) {
            int n;
            const bd_env_desc *const *r = p->reg->env_builtins(&n);
            const char *names[64];
            char hint[512];
            int j = 0;
            for (int i = 0; i < n && j < 62; i++) {
                names[j++] = r[i]->name;
                const char *gym = p->reg->env_gym_id ? p->reg->env_gym_id(r[i]) : NULL;
                if (gym)
                    names[j++] = gym;
            }
            bd_suggest(ec->env.name, names, j, hint, sizeof hint);
            if (hint[0] == 'd') /* "did you mean ..." */
                bad = bd_diag(d, bd_seterr(BD_ENOTFOUND, "%s: unknown environment '%s'; %s", w, ec->env.name, hint));
            else
                bad = bd_diag(d, bd_seterr(BD_ENOTFOUND, "%s: unknown environment '%s' (%s; or a plugin, "
                                           "path/to/lib.so:symbol)", w, ec->env.name, hint));
            e->uid = ec->uid; /* the agents naming it are not checked against another env */
            bd_plan_env_counts(ph, ec, e, 1, d);
            continue;
        }
        /* ids are "<uid>.<sensor>": the uid written, else the env's own name */
        e->uid = ec->uid ? ec->uid : e->desc->name;
        for (int j = 0; j < k; j++)
            if (p->envs[j].uid && strcmp(p->envs[j].uid, e->uid) == 0)
                bad = bd_diag(d, bd_seterr(BD_EINVAL, "%s: two environments of phase '%s' have the uid '%s'; give "
                                           "each its own uid", w, ph->name, e->uid));
        int params_ok = bd_plan_env_params(p, ph, ec, e, d);
        int src = params_ok ? p->reg->env_shape(e->desc, e->param, &e->shape) : BD_EINVAL;
        if (params_ok && src != BD_OK) {
            char why[1024];
            snprintf(why, sizeof why, "%s", bd_lasterr());
            bd_diag(d, bd_seterr(src, "%s: %s", w, why));
        }
        if (src != BD_OK)
            e->worlds = 0; /* what needs the layout is not checked */
        else if (e->worlds * e->shape.members > BD_MAX_WORLDS) {
            bd_diag(d, bd_seterr(BD_EINVAL, "%s: %lld worlds x %d agents per world; a phase holds at most %d agents "
                                 "per environment", w, e->worlds, e->shape.members, BD_MAX_WORLDS));
            e->worlds = 0;
        } else if (e->worlds > 0 && ph->worker + ph->remote_worker > 0) {
            /* the local muscles' shards (the largest each) must fit this machine */
            int muscles = ph->worker + ph->remote_worker;
            long long shard = (e->worlds + muscles - 1) / muscles;
            const double need = bd_plan_shard_bytes(&e->shape, (double)shard) * ph->worker, have = bd_phys_bytes();
            if (have > 0 && need > have) {
                bd_diag(d, bd_seterr(BD_EINVAL, "%s: %d muscle(s) of %lld worlds of %d agents need %.3g GiB of env "
                                     "buffers; this machine has %.3g GiB (fewer worlds or agents)", w, ph->worker,
                                     shard, e->shape.members, need / (1 << 30), have / (1 << 30)));
                e->worlds = 0;
            }
        }
    }
    return bad;
}

char *bd_phase_envs_text(const bd_phase_plan *p)
{
    char buf[1024] = "";
    size_t l = 0;
    for (int k = 0; k < p->nenvs && l < sizeof buf; k++) {
        const bd_env_plan *e = &p->envs[k];
        l += (size_t)snprintf(buf + l, sizeof buf - l, "%s%s x %lld worlds", k ? ", " : "", e->desc->name, e->worlds);
        if (l < sizeof buf && e->shape.members > 1)
            l += (size_t)snprintf(buf + l, sizeof buf - l, " of %d agents", e->shape.members);
    }
    return bd_strdup(buf);
}

const bd_env_plan *bd_phase_env(const bd_phase_plan *p, const char *uid)
{
    for (int k = 0; k < p->nenvs; k++)
        if (p->envs[k].uid && strcmp(p->envs[k].uid, uid) == 0)
            return &p->envs[k];
    return NULL;
}
