/* plan.c: resolves a run-file phase against the env registry (see plan.h). */
#include "config/plan.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/devmem.h"
#include "common/util.h"
#include "config/plan_impl.h"

uint64_t bd_seed_mix(uint64_t seed, uint64_t a, uint64_t b)
{
    uint64_t x = seed ^ (a * 0x9E3779B97F4A7C15ull) ^ (b * 0xC2B2AE3D27D4EB4Full);
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

void bd_shard(long long worlds, int workers, int k, int *n, uint32_t *world0)
{
    long long base = worlds / workers, extra = worlds % workers;
    *n = (int)(base + (k < extra ? 1 : 0));
    *world0 = (uint32_t)(k * base + (k < extra ? k : extra));
}

void bd_agent_shard(const bd_agent_plan *ap, int muscles, int k, int *n, uint32_t *col0)
{
    int w;
    uint32_t w0;
    bd_shard(ap->env->worlds, muscles, k, &w, &w0);
    *n = w * ap->members;
    *col0 = w0 * (uint32_t)ap->members;
}

const bd_kind *bd_kind_find(const bd_kind *kinds, int count, const char *name)
{
    for (int i = 0; i < count; i++)
        if (strcmp(kinds[i].name, name) == 0)
            return &kinds[i];
    return NULL;
}

/* Columns of `chan` (count of them) whose "<uid>.<name>" matches pattern: exact, or
 * "<uid>.*" for all. Appends to cols/ids; returns how many matched. */
static int bd_match(const char *uid, const bd_channel *chan, int count, const char *pattern,
                    int *cols, char **ids, int *n)
{
    size_t ulen = strlen(uid);
    int all = strncmp(pattern, uid, ulen) == 0 && strcmp(pattern + ulen, ".*") == 0;
    int matched = 0;
    for (int c = 0; c < count; c++) {
        int hit = all || (strncmp(pattern, uid, ulen) == 0 && pattern[ulen] == '.'
                          && strcmp(pattern + ulen + 1, chan[c].name) == 0);
        if (!hit)
            continue;
        int dup = 0;
        for (int j = 0; j < *n; j++)
            dup |= cols[j] == c;
        if (!dup) {
            cols[*n] = c;
            ids[*n] = bd_strfmt("%s.%s", uid, chan[c].name);
            (*n)++;
        }
        matched++;
    }
    return matched;
}

/* Agent a's patterns against the channels (count) whose ids are "<uid>.<name>"; others
 * names every env and group of the phase ("pole.*, tag.runner.*") for errors, or is "" when
 * there is no other. */
static int bd_resolve_ids(const bd_agent_cfg *a, const char *uid, const bd_channel *chan,
                          int count, const char **patterns, int npat, const char *what,
                          const char *others, int **cols_out, char ***ids_out, int *n_out)
{
    char w[256];
    int *cols = calloc((size_t)count + 1, sizeof *cols);
    char **ids = calloc((size_t)count + 1, sizeof *ids);
    int n = 0;
    *cols_out = cols;
    *ids_out = ids;
    *n_out = 0;
    if (!cols || !ids)
        return bd_seterr(BD_ENOMEM, "out of memory");
    for (int p = 0; p < npat; p++) {
        if (bd_match(uid, chan, count, patterns[p], cols, ids, &n) == 0) {
            char known[240] = "";
            for (int c = 0; c < count; c++) {
                size_t l = strlen(known);
                char item[160];
                snprintf(item, sizeof item, "%s%s.%s", c ? ", " : "", uid, chan[c].name);
                if (l + strlen(item) + 6 >= sizeof known) { /* whole ids only */
                    snprintf(known + l, sizeof known - l, ", ...");
                    break;
                }
                memcpy(known + l, item, strlen(item) + 1);
            }
            *n_out = n;
            const bd_node *list = bd_node_get(a->node, strcmp(what, "sensor") == 0 ? "sensors" : "actuators");
            const bd_node *at = list && list->kind == BD_NODE_SEQ && (size_t)p < list->n ? list->items[p] : a->node;
            return bd_seterr(BD_EINVAL, "%s: agent '%s': %s '%s' matches nothing (known: %s, or %s.*%s%s)",
                             bd_where(at, w, sizeof w), a->name, what, patterns[p], known, uid,
                             others[0] ? "; in this phase: " : "", others);
        }
    }
    *n_out = n;
    if (n == 0)
        return bd_seterr(BD_EINVAL, "%s: agent '%s' lists no %ss", bd_where(a->node, w, sizeof w),
                         a->name, what);
    return BD_OK;
}

const char *bd_suggest(const char *name, const char *const *names, int n, char *buf, size_t len)
{
    const char *near = bd_nearest(name, names, n);
    if (near) {
        snprintf(buf, len, "did you mean '%s'?", near);
        return buf;
    }
    size_t l = (size_t)snprintf(buf, len, "known: ");
    for (int i = 0; i < n && l < len; i++)
        l += (size_t)snprintf(buf + l, len - l, "%s%s", i ? ", " : "", names[i]);
    return buf;
}

static int bd_kind_suggest(const char *name, const bd_kind *kinds, int count, char *buf, size_t len)
{
    const char *names[64];
    int n = count < 64 ? count : 64;
    for (int i = 0; i < n; i++)
        names[i] = kinds[i].name;
    bd_suggest(name, names, n, buf, len);
    return 0;
}

/* A condition's optional agent (the one whose figures it watches; NULL: any) into *out. */
static int bd_condition_agent(const bd_phase_cfg *ph, const bd_named *cond, const char **out, bd_diags *d)
{
    char w[256];
    const bd_node *an = bd_node_get(cond->params, "agent");
    const char *agent = NULL;
    int rc = an ? bd_node_str(cond->params, "agent", NULL, &agent) : BD_OK;
    if (rc != BD_OK)
        return bd_diag(d, rc);
    if (agent && !bd_phase_agent(ph, agent))
        return bd_diag(d, bd_seterr(BD_ENOTFOUND, "%s: agent: phase '%s' has no agent '%s'",
                                    bd_where(an, w, sizeof w), ph->name, agent));
    *out = agent;
    return BD_OK;
}

/* A cap's integer map[key], 1 to hi (what: the range in words): BD_OK, or BD_EINVAL with
 * "FILE:LINE:COL: KEY: expected WHAT, got V". */
static int bd_cap_int(const bd_node *map, const char *key, long long hi, const char *what, long long *out)
{
    char w[256];
    long long v;
    int rc = bd_node_int(map, key, 0, &v);
    if (rc != BD_OK)
        return rc;
    if (v < 1 || v > hi)
        return bd_seterr(BD_EINVAL, "%s: %s: expected %s, got %lld", bd_where(bd_node_get(map, key), w, sizeof w), key,
                         what, v);
    *out = v;
    return BD_OK;
}

int bd_plan_set_cap(bd_phase_plan *p, const bd_node *map, const char *key)
{
    long long v;
    int rc;
    if (strcmp(key, "max_steps") == 0) {
        if ((rc = bd_cap_int(map, key, BD_CAP_STEPS_MAX, BD_CAP_STEPS_WHAT, &v)) == BD_OK)
            p->max_agent_steps = v;
        return rc;
    }
    if (strcmp(key, "episodes") == 0) {
        if ((rc = bd_cap_int(map, key, BD_CAP_EPISODES_MAX, BD_CAP_EPISODES_WHAT, &v)) == BD_OK)
            p->episodes_target = v;
        return rc;
    }
    return bd_seterr(BD_EINVAL, "%s: no cap of a phase (max_steps, episodes)", key);
}

/* The stop conditions of phase ph: each one checked, problems noted in d. */
static int bd_plan_conditions(const bd_phase_cfg *ph, bd_phase_plan *p, bd_diags *d)
{
    static const char *const kinds[] = {"objective_average", "max_steps", "greedy_average"};
    static const char *const avg_keys[] = {"window", "threshold", "agent", NULL};
    static const char *const steps_keys[] = {"steps", "agent", NULL};
    static const char *const greedy_keys[] = {"episodes", "every", "threshold", "agent", NULL};
    char w[256], hint[256];
    int rc, bad = BD_OK;
    p->objective_threshold = NAN;
    p->objective_window = 100;
    p->greedy_threshold = NAN;
    p->greedy_episodes = BD_GREEDY_EPISODES;
    p->greedy_every = BD_GREEDY_EVERY;
    for (int c = 0; c < ph->nconditions; c++) {
        const bd_named *cond = &ph->conditions[c];
        char cw[256]; /* where the condition is written (w is for its params) */
        bd_where(cond->node, cw, sizeof cw);
        int twice = -1;
        for (int e = 0; e < c; e++)
            if (strcmp(ph->conditions[e].name, cond->name) == 0)
                twice = e;
        if (twice >= 0) { /* which of two would hold? neither silently */
            bad = bd_diag(d, bd_seterr(BD_EINVAL, "%s: condition '%s' is given twice (first at %d:%d); keep one", cw,
                                       cond->name, ph->conditions[twice].node->line, ph->conditions[twice].node->col));
            continue;
        }
        if (strcmp(cond->name, "objective_average") == 0) {
            long long win;
            double thr;
            if ((rc = bd_node_check_keys(cond->params, avg_keys, "the params of objective_average", d)))
                bad = bd_diag(d, rc);
            if ((rc = bd_node_int(cond->params, "window", 100, &win)) != BD_OK)
                bad = bd_diag(d, rc);
            else if (win < 1 || win > 4096)
                bad = bd_diag(d, bd_seterr(BD_EINVAL, "%s: window: expected 1 to 4096 episodes, got %lld",
                                           bd_where(bd_node_get(cond->params, "window"), w, sizeof w), win));
            else
                p->objective_window = (int)win;
            if (!bd_node_get(cond->params, "threshold"))
                bad = bd_diag(d, bd_seterr(BD_EINVAL, "%s: objective_average needs params.threshold (the "
                                           "average return that ends the phase)", cw));
            else if ((rc = bd_node_double(cond->params, "threshold", 0, &thr)) != BD_OK)
                bad = bd_diag(d, rc);
            else
                p->objective_threshold = thr;
            if ((rc = bd_condition_agent(ph, cond, &p->objective_agent, d)) != BD_OK)
                bad = rc;
        } else if (strcmp(cond->name, "max_steps") == 0) {
            long long steps = 0;
            if ((rc = bd_node_check_keys(cond->params, steps_keys, "the params of max_steps", d)))
                bad = bd_diag(d, rc);
            if (!bd_node_get(cond->params, "steps"))
                bad = bd_diag(d, bd_seterr(BD_EINVAL, "%s: max_steps needs params.steps (agent-steps, "
                                           "over all worlds, that end the phase)", cw));
            else if ((rc = bd_cap_int(cond->params, "steps", BD_CAP_STEPS_MAX, BD_CAP_STEPS_WHAT, &steps)) != BD_OK)
                bad = bd_diag(d, rc);
            else
                p->max_agent_steps = steps;
            if ((rc = bd_condition_agent(ph, cond, &p->max_steps_agent, d)) != BD_OK)
                bad = rc;
        } else if (strcmp(cond->name, "greedy_average") == 0) {
            long long eps = BD_GREEDY_EPISODES, every = BD_GREEDY_EVERY;
            double thr;
            if ((rc = bd_node_check_keys(cond->params, greedy_keys, "the params of greedy_average", d)))
                bad = bd_diag(d, rc);
            if ((rc = bd_node_int(cond->params, "episodes", BD_GREEDY_EPISODES, &eps)) != BD_OK)
                bad = bd_diag(d, rc);
            else if (eps < 1 || eps > 4096)
                bad = bd_diag(d, bd_seterr(BD_EINVAL, "%s: episodes: expected 1 to 4096 greedy episodes, got %lld",
                                           bd_where(bd_node_get(cond->params, "episodes"), w, sizeof w), eps));
            else
                p->greedy_episodes = (int)eps;
            if (bd_node_get(cond->params, "every")
                && (rc = bd_cap_int(cond->params, "every", BD_CAP_STEPS_MAX, BD_CAP_STEPS_WHAT, &every)) != BD_OK)
                bad = bd_diag(d, rc);
            else
                p->greedy_every = every;
            if (!bd_node_get(cond->params, "threshold"))
                bad = bd_diag(d, bd_seterr(BD_EINVAL, "%s: greedy_average needs params.threshold (the mean "
                                           "return of the greedy episodes that ends the phase)", cw));
            else if ((rc = bd_node_double(cond->params, "threshold", 0, &thr)) != BD_OK)
                bad = bd_diag(d, rc);
            else
                p->greedy_threshold = thr;
            if ((rc = bd_condition_agent(ph, cond, &p->greedy_agent, d)) != BD_OK)
                bad = rc;
            if (ph->mode == BD_MODE_TEST) /* its muscles play greedily already (a test phase inherits the
                                              train phase's conditions): its episodes count */
                p->greedy_threshold = NAN;
        } else {
            bad = bd_diag(d, bd_seterr(BD_ENOTFOUND, "%s: unknown simulation condition '%s' (%s)", cw, cond->name,
                                       bd_suggest(cond->name, kinds, 3, hint, sizeof hint)));
        }
    }
    p->episodes_target = ph->episodes;
    if (bad || ph->invalid) /* a phase_config with problems would make false ones here */
        return bad;
    if (ph->mode == BD_MODE_TRAIN && p->max_agent_steps == 0 && isnan(p->objective_threshold)
        && isnan(p->greedy_threshold) && ph->episodes == 0)
        return bd_diag(d, bd_seterr(BD_EINVAL, "%s: train phase '%s' has no stop condition "
                                    "(add max_steps, objective_average or greedy_average to "
                                    "simulation.conditions, or phase_config.episodes)",
                                    bd_where(ph->node, w, sizeof w), ph->name));
    if (ph->mode == BD_MODE_TEST && ph->episodes == 0 && p->max_agent_steps == 0)
        return bd_diag(d, bd_seterr(BD_EINVAL, "%s: test phase '%s' needs phase_config.episodes or a max_steps condition",
                                    bd_where(ph->node, w, sizeof w), ph->name));
    return BD_OK;
}

/* greedy_average plays an agent's policy alone, as its muscle would in a test phase:
 * each agent it is about must have a network and an env no other agent acts in. */
static int bd_plan_greedy(const bd_phase_plan *p, bd_diags *d)
{
    char cw[256];
    const bd_node *node = NULL;
    for (int c = 0; c < p->ph->nconditions && !node; c++)
        if (strcmp(p->ph->conditions[c].name, "greedy_average") == 0)
            node = p->ph->conditions[c].node;
    if (isnan(p->greedy_threshold) || !node)
        return BD_OK;
    bd_where(node, cw, sizeof cw);
    int bad = BD_OK;
    for (int i = 0; i < p->nagents; i++) {
        const bd_agent_plan *ap = &p->agents[i];
        if (p->greedy_agent && strcmp(p->greedy_agent, ap->cfg->name) != 0)
            continue;
        const char *name = ap->cfg->name;
        if (ap->random || (ap->muscle && ap->muscle->netless)) {
            bad = bd_diag(d, bd_seterr(BD_EINVAL, "%s: greedy_average plays the policy network of agent '%s', which "
                                       "has none (its %s is '%s')%s", cw, name, ap->random ? "brain" : "muscle",
                                       ap->random ? ap->brain->name : ap->muscle->name,
                                       p->greedy_agent ? "" : "; name the agent it is about: params.agent"));
            continue;
        }
        /* its worlds, one an episode, are a shard in the brain, beside its learner: half
         * this machine's memory at most */
        const double have = bd_phys_bytes(),
                     need = ap->env ? bd_plan_shard_bytes(&ap->env->shape, (double)p->greedy_episodes) : 0;
        if (ap->env && ((long long)p->greedy_episodes * ap->env->shape.members > BD_MAX_WORLDS
                        || (have > 0 && need > 0.5 * have))) {
            bad = bd_diag(d, bd_seterr(BD_EINVAL, "%s: greedy_average: %d episodes of environment '%s' are as many "
                                       "worlds of %d agents, %.3g GiB of env buffers in the brain, more than half "
                                       "of this machine's %.3g GiB or %d agents (fewer episodes)", cw,
                                       p->greedy_episodes, ap->env->uid, ap->env->shape.members, need / (1 << 30),
                                       have / (1 << 30), BD_MAX_WORLDS));
            continue;
        }
        for (int k = 0; k < p->nagents && ap->env; k++)
            if (k != i && p->agents[k].env == ap->env) {
                bad = bd_diag(d, bd_seterr(BD_EINVAL, "%s: greedy_average plays agent '%s' alone on worlds of its "
                                           "own, but agent '%s' acts in its environment '%s' too; the condition "
                                           "needs an environment the agent has to itself", cw, name,
                                           p->agents[k].cfg->name, ap->env->uid));
                break;
            }
    }
    return bad;
}

/* The channels of group g of env e (its own, or the env's for an env without groups),
 * how many its rows show, and the id prefix ("uid" or "uid.group") into pre. */
static const bd_channel *bd_group_channels(const bd_env_plan *e, int g, int sensors, int *count, char *pre,
                                           size_t len)
{
    const bd_env_desc *d = e->desc;
    if (d->ngroups > 0) {
        snprintf(pre, len, "%s.%s", e->uid, d->groups[g].name);
        *count = sensors ? e->shape.obs_dim[g] : e->shape.act_dim[g];
        return sensors ? d->groups[g].sensors : d->groups[g].actuators;
    }
    snprintf(pre, len, "%s", e->uid);
    *count = sensors ? d->obs_dim : d->act_dim;
    return sensors ? d->sensors : d->actuators;
}

/* The env (its index) and group whose sensors (or actuators) `pattern` names; -1 if none. */
static int bd_pattern_owner(const bd_phase_plan *p, const char *pattern, int sensors, int *group)
{
    for (int k = 0; k < p->nenvs; k++) {
        const bd_env_plan *e = &p->envs[k];
        if (!e->desc || e->shape.groups == 0)
            continue;
        for (int g = 0; g < e->shape.groups; g++) {
            char pre[256];
            int n, cols[BD_MAX_CHANNELS], m = 0;
            char *ids[BD_MAX_CHANNELS];
            const bd_channel *ch = bd_group_channels(e, g, sensors, &n, pre, sizeof pre);
            n = n < BD_MAX_CHANNELS ? n : BD_MAX_CHANNELS;
            int hit = bd_match(pre, ch, n, pattern, cols, ids, &m) > 0;
            for (int j = 0; j < m; j++)
                free(ids[j]);
            if (hit) {
                *group = g;
                return k;
            }
        }
    }
    return -1;
}

/* Which env and group agent a's ids name: the first sensor (else actuator) pattern that
 * matches some group's channels. -1 when none does. */
static int bd_agent_group(const bd_phase_plan *p, const bd_agent_cfg *a, int *group)
{
    for (int i = 0; i < a->nsensors; i++) {
        int k = bd_pattern_owner(p, a->sensors[i], 1, group);
        if (k >= 0)
            return k;
    }
    for (int i = 0; i < a->nactuators; i++) {
        int k = bd_pattern_owner(p, a->actuators[i], 0, group);
        if (k >= 0)
            return k;
    }
    return -1;
}

/* "pole" or "tag.runner": who an agent's ids belong to, for messages. */
static const char *bd_owner_name(const bd_env_plan *e, int g, char *buf, size_t len)
{
    int n;
    bd_group_channels(e, g, 1, &n, buf, len);
    return buf;
}

/* Every id of agent a names env k's group g, or nothing at all (reported by the
 * resolution); one that names another env or group is a problem, noted in d. */
static int bd_agent_one_group(const bd_phase_plan *p, const bd_agent_cfg *a, int k, int g, bd_diags *d)
{
    char w[256], mine[256], other[256];
    int bad = BD_OK;
    for (int l = 0; l < 2; l++) {
        const char **pats = l == 0 ? a->sensors : a->actuators;
        int count = l == 0 ? a->nsensors : a->nactuators;
        const bd_node *list = bd_node_get(a->node, l == 0 ? "sensors" : "actuators");
        for (int i = 0; i < count; i++) {
            int og = 0, ok = bd_pattern_owner(p, pats[i], l == 0, &og);
            if (ok < 0 || (ok == k && og == g))
                continue;
            const bd_node *at = list && list->kind == BD_NODE_SEQ && (size_t)i < list->n ? list->items[i] : a->node;
            bad = bd_diag(d, bd_seterr(BD_EINVAL, "%s: agent '%s': '%s' belongs to %s, its other ids to %s; an agent's "
                                       "sensors and actuators come from one environment%s (add an agent for each)",
                                       bd_where(at, w, sizeof w), a->name, pats[i],
                                       bd_owner_name(&p->envs[ok], og, other, sizeof other),
                                       bd_owner_name(&p->envs[k], g, mine, sizeof mine),
                                       p->envs[k].desc->ngroups || p->envs[ok].desc->ngroups ? " and one group" : ""));
        }
    }
    return bad;
}

/* Agent a's objective is one the registry knows. */
static int bd_plan_objective(const bd_registry *reg, const bd_agent_cfg *a, bd_diags *d)
{
    char w[256], known[512];
    int nobj = 0;
    while (reg->objectives[nobj])
        nobj++;
    for (int k = 0; k < nobj; k++)
        if (strcmp(reg->objectives[k], a->objective.name) == 0)
            return BD_OK;
    return bd_diag(d, bd_seterr(BD_ENOTFOUND, "%s: agent '%s': unknown objective '%s' (%s)",
                                bd_where(a->objective.node, w, sizeof w), a->name, a->objective.name,
                                bd_suggest(a->objective.name, reg->objectives, nobj, known, sizeof known)));
}

/* Agent i of the plan; every problem noted in d. */
/* An agent whose env is unknown: its brain's params are checked as far as they go without
 * the env (the kind's check sees ap->env NULL). */
static int bd_plan_brain_params_only(bd_phase_plan *p, bd_agent_plan *ap, bd_diags *d)
{
    const bd_kind *b = bd_kind_find(p->reg->brains, p->reg->nbrains, ap->cfg->brain.name);
    if ((ap->brain = b) != NULL)
        bd_plan_kind(b, ap->cfg->brain.params, p, ap, &ap->brain_params, d);
    return BD_EINVAL;
}

static int bd_plan_agent(bd_phase_plan *p, int i, bd_diags *d)
{
    char w[256];
    const bd_agent_cfg *a = &p->ph->agents[i];
    bd_agent_plan *ap = &p->agents[i];
    ap->cfg = a;
    ap->index = i;
    ap->seed = bd_seed_mix(p->rf->seed, 1000 + (uint64_t)i, 0);
    int bad = BD_OK, rs, ra, rc;
    int g = ap->group, k = ap->env ? ap->env->index : -1; /* what its ids name (the pre-pass) */
    for (int j = 0; k < 0 && j < p->nenvs; j++) {
        /* ids of an env whose own params have problems, or that is unknown (noted): nothing
         * to check them against; an unknown env's agent still has its brain's params checked */
        const bd_env_plan *ej = &p->envs[j];
        size_t ul = ej->uid ? strlen(ej->uid) : 0;
        for (int l = 0; ul && ej->shape.groups == 0 && l < a->nsensors + a->nactuators; l++) {
            const char *pat = l < a->nsensors ? a->sensors[l] : a->actuators[l - a->nsensors];
            if (strncmp(pat, ej->uid, ul) == 0 && pat[ul] == '.')
                return ej->desc ? BD_EINVAL : bd_plan_brain_params_only(p, ap, d);
        }
    }
    if (k < 0) {
        /* nothing matches: the first env's (or first group's) channels name what there is */
        k = 0;
        while (k < p->nenvs - 1 && (!p->envs[k].desc || p->envs[k].shape.groups == 0))
            k++;
    }
    const bd_env_plan *e = &p->envs[k];
    if (!e->desc)
        return bd_plan_brain_params_only(p, ap, d); /* its env is unknown (noted) */
    if (e->shape.groups == 0)
        return BD_EINVAL; /* its env's params are wrong (noted): nothing to check against */
    if ((rc = bd_agent_one_group(p, a, k, g, d)) != BD_OK)
        return rc;
    if (!ap->env) { /* its ids name nothing: resolved against e, whose ids the errors list */
        ap->env = e;
        ap->members = e->shape.count[g];
        ap->columns = e->worlds * ap->members;
    }
    {
        char pre[256];
        int ns, na;
        const bd_channel *sc = bd_group_channels(e, g, 1, &ns, pre, sizeof pre);
        const bd_channel *acs = bd_group_channels(e, g, 0, &na, pre, sizeof pre);
        char others[512] = ""; /* every env's and group's ids, when there is more than this one */
        size_t ol = 0;
        int owners = 0;
        for (int k2 = 0; k2 < p->nenvs; k2++)
            for (int g2 = 0; p->envs[k2].desc && g2 < p->envs[k2].shape.groups && ol < sizeof others; g2++) {
                char op[256];
                bd_owner_name(&p->envs[k2], g2, op, sizeof op);
                ol += (size_t)snprintf(others + ol, sizeof others - ol, "%s%s.*", ol ? ", " : "", op);
                owners++;
            }
        if (owners < 2)
            others[0] = '\0';
        rs = bd_resolve_ids(a, pre, sc, ns, a->sensors, a->nsensors, "sensor", others, &ap->sens_cols,
                            &ap->sensor_ids, &ap->nsens);
        if (rs)
            bad = bd_diag(d, rs);
        ra = bd_resolve_ids(a, pre, acs, na, a->actuators, a->nactuators, "actuator", others, &ap->act_cols,
                            &ap->actuator_ids, &ap->nact);
        if (ra)
            bad = bd_diag(d, ra);
    }
    const bd_registry *reg = p->reg;
    char known[512];
    ap->brain = bd_kind_find(reg->brains, reg->nbrains, a->brain.name);
    if (!ap->brain) {
        bd_kind_suggest(a->brain.name, reg->brains, reg->nbrains, known, sizeof known);
        bad = bd_diag(d, bd_seterr(BD_ENOTFOUND, "%s: agent '%s': unknown brain '%s' (%s)",
                                   bd_where(a->brain.node, w, sizeof w), a->name, a->brain.name, known));
    }
    ap->muscle = bd_kind_find(reg->muscles, reg->nmuscles, a->muscle.name);
    if (!ap->muscle) {
        bd_kind_suggest(a->muscle.name, reg->muscles, reg->nmuscles, known, sizeof known);
        bad = bd_diag(d, bd_seterr(BD_ENOTFOUND, "%s: agent '%s': unknown muscle '%s' (%s)",
                                   bd_where(a->muscle.node, w, sizeof w), a->name, a->muscle.name, known));
    }
    if (ap->brain && ap->muscle && strcmp(ap->brain->family, ap->muscle->family) != 0) {
        const char *mate = "?"; /* the muscle that goes with this brain */
        for (int k2 = reg->nmuscles - 1; k2 >= 0; k2--)
            if (strcmp(reg->muscles[k2].family, ap->brain->family) == 0)
                mate = reg->muscles[k2].name;
        bad = bd_diag(d, bd_seterr(BD_EINVAL, "%s: agent '%s': brain '%s' and muscle '%s' do not belong "
                                   "together (brain '%s' drives muscle '%s')",
                                   bd_where(a->node, w, sizeof w), a->name, a->brain.name, a->muscle.name,
                                   a->brain.name, mate));
    }
    ap->random = ap->brain && ap->brain->netless;
    if ((rc = bd_plan_objective(reg, a, d)) != BD_OK)
        bad = rc;
    /* how its trace is written */
    if (reg->compression_ok && a->record_compression && reg->compression_ok(a->record_compression) != BD_OK) {
        char why[512];
        snprintf(why, sizeof why, "%s", bd_lasterr());
        const bd_node *cn = bd_node_get(bd_node_get(a->node, "record"), "compression");
        bad = bd_diag(d, bd_seterr(BD_EINVAL, "%s: record.compression: %s", bd_where(cn ? cn : a->node, w, sizeof w),
                                   why));
    }
    if ((rc = bd_plan_load(p, ap, a, d)) != BD_OK)
        bad = rc;
    if (rs || ra)
        return bad; /* what follows needs the columns */
    if ((rc = bd_plan_actuators(p, i, e, g, d)) != BD_OK)
        bad = rc;
    /* the kinds' own params are checked here, before any process starts (its env's worlds are 0
     * when the env's params have problems: what needs the worlds is not checked then) */
    if (ap->brain && (rc = bd_plan_kind(ap->brain, a->brain.params, p, ap, &ap->brain_params, d)) != BD_OK)
        bad = bd_diag(d, rc);
    if (ap->muscle && (rc = bd_plan_kind(ap->muscle, a->muscle.params, p, ap, &ap->muscle_params, d)) != BD_OK)
        bad = bd_diag(d, rc);
    return bad;
}

/* The agents of a phase step together: every brain must ask the muscles for the same
 * rollout length (given or automatic). */
static int bd_plan_rollouts(const bd_phase_plan *p, bd_diags *d)
{
    char w[256];
    int first = -1;
    long long t0 = 0;
    if (p->max_columns <= 0)
        return BD_OK;
    for (int i = 0; i < p->nagents; i++) {
        const bd_agent_plan *ap = &p->agents[i];
        if (!ap->cfg || !ap->brain || !ap->brain->rollout_steps || !ap->brain_params)
            continue; /* its params' problems are reported by its parse */
        long long t = ap->brain->rollout_steps(ap->brain_params);
        if (first < 0) {
            first = i;
            t0 = t;
            continue;
        }
        if (t != t0) {
            const bd_agent_plan *fp = &p->agents[first];
            const bd_node *mine = bd_node_get(ap->cfg->brain.params, "rollout_steps");
            const bd_node *theirs = bd_node_get(fp->cfg->brain.params, "rollout_steps");
            return bd_diag(d, bd_seterr(BD_EINVAL, "%s: agent '%s' collects rollouts of %lld steps (%s), agent '%s' of "
                                        "%lld (%s); the agents of a phase step together: give their brains the same "
                                        "rollout_steps", bd_where(mine ? mine : ap->cfg->node, w, sizeof w),
                                        ap->cfg->name, t, mine ? "rollout_steps" : "automatic for these worlds",
                                        fp->cfg->name, t0, theirs ? "rollout_steps" : "automatic for these worlds"));
        }
    }
    return BD_OK;
}

/* The brains of a phase run on this machine together (each rank's on its own): what they
 * hold at most (bd_kind.memory_bytes: a batch, a replay buffer) must fit it together, as
 * each kind's check asks of one brain alone (a replay buffer within 0.8 of the memory). A
 * phase of two agents each within that, and twice it together, was passed, and its brains
 * were killed for memory once their buffers had filled. Only when no single brain is
 * refused already: that one says it. */
static int bd_plan_memory(const bd_phase_plan *p, bd_diags *d)
{
    const double have = bd_phys_bytes(), share = 0.8 * have;
    double sum = 0, most = 0;
    int counted = 0;
    char parts[512] = "", w[256];
    for (int i = 0; i < p->nagents; i++) {
        const bd_agent_plan *ap = &p->agents[i];
        if (!ap->cfg || !ap->brain || !ap->brain->memory_bytes || !ap->brain_params || ap->columns <= 0)
            continue;
        const double need = ap->brain->memory_bytes(ap->brain_params, ap);
        sum += need;
        most = need > most ? need : most;
        counted++;
        size_t l = strlen(parts);
        if (l < sizeof parts - 1)
            snprintf(parts + l, sizeof parts - l, "%s'%s' %.3g GiB", l ? ", " : "", ap->cfg->name,
                     need / (1 << 30));
    }
    if (counted < 2 || !(have > 0) || sum <= share || most > share)
        return BD_OK;
    return bd_diag(d, bd_seterr(BD_EINVAL, "%s: phase '%s': its brains need about %.3g GiB together (%s); this "
                                "machine has %.3g GiB, and a run needs room beside them (smaller buffer_size, fewer "
                                "worlds or rollout_steps)", bd_where(p->ph->node, w, sizeof w), p->ph->name,
                                sum / (1 << 30), parts, have / (1 << 30)));
}

int bd_phase_plan_check(const bd_runfile *rf, int phase_index, const bd_registry *reg,
                        const char *device_override, int flags, bd_diags *d, bd_phase_plan *p)
{
    char w[256];
    memset(p, 0, sizeof *p);
    p->reg = reg;
    p->gate = (flags & BD_PLAN_GATE) != 0;
    if (phase_index < 0 || phase_index >= rf->nphases)
        return bd_diag(d, bd_seterr(BD_ENOTFOUND, "%s: no phase %d", rf->path, phase_index));
    p->rf = rf;
    p->ph = &rf->phases[phase_index];
    p->phase_index = phase_index;
    p->worker = p->ph->worker;
    p->remote = p->ph->remote_worker;
    p->muscles = p->worker + p->remote;
    int bad = bd_plan_conditions(p->ph, p, d);
    int rc = bd_plan_envs(p->ph, p, d);
    if (rc != BD_OK && !p->envs)
        return rc;
    int envs_bad = rc; /* an unknown env: its agents' params are still checked (bd_plan_agent) */
    const bd_env_desc *no_kernel = NULL;
    for (int k = 0; k < p->nenvs; k++)
        if (p->envs[k].desc && !p->envs[k].desc->step_cuda && !no_kernel)
            no_kernel = p->envs[k].desc;
    const char *dev = device_override ? device_override : p->ph->device;
    const char *flag = device_override ? " (--device cuda)" : "";
    bd_where(p->ph->node, w, sizeof w);
    p->device = BD_DEVICE_CPU;
    if (strcmp(dev, "cpu") == 0) {
        p->device = BD_DEVICE_CPU;
    } else if (strcmp(dev, "cuda") == 0) {
        if (!bd_cuda_available())
            bad = bd_diag(d, bd_seterr(BD_ENODEV, "%s: device cuda asked for%s, but no CUDA GPU answers here", w, flag));
        else if (no_kernel)
            bad = bd_diag(d, bd_seterr(BD_ENODEV, "%s: device cuda asked for%s, but environment '%s' has no CUDA "
                                       "kernel", w, flag, no_kernel->name));
        else if (!reg->learner_cuda())
            bad = bd_diag(d, bd_seterr(BD_ENODEV, "%s: device cuda asked for%s, but this bodhi's libtorch has no "
                                       "CUDA (Debian's is CPU-only; bench/gpu/ rebuilds the torch shim "
                                       "against a CUDA libtorch)", w, flag));
        else
            p->device = BD_DEVICE_CUDA;
    } else if (strcmp(dev, "auto") == 0) {
        /* the policies run beside the env buffers: cuda needs both a kernel and CUDA libtorch */
        p->device = bd_cuda_available() && !no_kernel && reg->learner_cuda()
                        ? BD_DEVICE_CUDA : BD_DEVICE_CPU;
    } else {
        bad = bd_diag(d, bd_seterr(BD_EINVAL, "device '%s' is not cpu, cuda or auto", dev));
    }
    p->nagents = p->ph->nagents;
    p->agents = calloc((size_t)(p->nagents ? p->nagents : 1), sizeof *p->agents);
    if (!p->agents)
        return bd_diag(d, bd_seterr(BD_ENOMEM, "out of memory"));
    /* which env and group each agent drives, and its columns: automatic rollout lengths
     * need every agent's, before the kinds' checks (bd_plan_agent checks the ids) */
    int known = 1;
    for (int i = 0; i < p->nagents; i++) {
        bd_agent_plan *ap = &p->agents[i];
        int g = 0, k = bd_agent_group(p, &p->ph->agents[i], &g);
        if (k >= 0) {
            ap->env = &p->envs[k];
            ap->group = g;
            ap->members = ap->env->shape.count[g];
            ap->columns = ap->env->worlds * ap->members;
        }
        known &= ap->columns > 0;
        p->max_columns = ap->columns > p->max_columns ? ap->columns : p->max_columns;
    }
    if (!known)
        p->max_columns = 0;
    for (int i = 0; i < p->nagents; i++)
        if ((rc = bd_plan_agent(p, i, d)) != BD_OK)
            bad = rc;
    if ((rc = bd_plan_greedy(p, d)) != BD_OK)
        bad = rc;
    if ((rc = bd_plan_rollouts(p, d)) != BD_OK)
        bad = rc;
    if (bad == BD_OK && (rc = bd_plan_memory(p, d)) != BD_OK)
        bad = rc;
    return envs_bad ? envs_bad : bad;
}

int bd_phase_plan_make(const bd_runfile *rf, int phase_index, const bd_registry *reg,
                       const char *device_override, bd_phase_plan *p)
{
    bd_diags d = BD_DIAGS_INIT;
    bd_phase_plan_check(rf, phase_index, reg, device_override, 0, &d, p);
    return bd_diags_finish(&d);
}

void bd_phase_plan_fini(bd_phase_plan *p)
{
    for (int i = 0; p->agents && i < p->nagents; i++) {
        bd_agent_plan *a = &p->agents[i];
        if (a->brain_params && a->brain && a->brain->free_params)
            a->brain->free_params(a->brain_params);
        if (a->muscle_params && a->muscle && a->muscle->free_params)
            a->muscle->free_params(a->muscle_params);
        for (int k = 0; k < a->nsens && a->sensor_ids; k++)
            free(a->sensor_ids[k]);
        for (int k = 0; k < a->nact && a->actuator_ids; k++)
            free(a->actuator_ids[k]);
        free(a->sensor_ids);
        free(a->actuator_ids);
        free(a->sens_cols);
        free(a->act_cols);
        free(a->act_low);
        free(a->act_high);
    }
    free(p->agents);
    for (int k = 0; p->envs && k < p->nenvs; k++)
        free(p->envs[k].params_json);
    free(p->envs);
    memset(p, 0, sizeof *p);
}
