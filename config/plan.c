/* plan.c: resolves a run-file phase against the env registry (see plan.h). */
#include "config/plan.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/devmem.h"
#include "common/util.h"

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

const bd_kind *bd_kind_find(const bd_kind *kinds, int count, const char *name)
{
    for (int i = 0; i < count; i++)
        if (strcmp(kinds[i].name, name) == 0)
            return &kinds[i];
    return NULL;
}

/* "a, b, c" of the kinds' names into buf. */
static const char *bd_kind_names(const bd_kind *kinds, int count, char *buf, size_t len)
{
    buf[0] = '\0';
    for (int i = 0; i < count; i++) {
        size_t l = strlen(buf);
        snprintf(buf + l, len - l, "%s%s", i ? ", " : "", kinds[i].name);
    }
    return buf;
}

static const char *bd_where(const bd_node *n, char *buf, size_t len)
{
    return n ? bd_node_where(n, buf, len) : "?";
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

static int bd_resolve_ids(const bd_agent_cfg *a, const char *uid, const bd_channel *chan,
                          int count, const char **patterns, int npat, const char *what,
                          int **cols_out, char ***ids_out, int *n_out)
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
            char known[512] = "";
            for (int c = 0; c < count; c++) {
                size_t l = strlen(known);
                snprintf(known + l, sizeof known - l, "%s%s.%s", c ? ", " : "", uid, chan[c].name);
            }
            *n_out = n;
            return bd_seterr(BD_EINVAL, "%s: agent '%s': %s '%s' matches nothing (known: %s, or %s.*)",
                             bd_where(a->node, w, sizeof w), a->name, what, patterns[p], known, uid);
        }
    }
    *n_out = n;
    if (n == 0)
        return bd_seterr(BD_EINVAL, "%s: agent '%s' lists no %ss", bd_where(a->node, w, sizeof w),
                         a->name, what);
    return BD_OK;
}

static int bd_plan_conditions(const bd_phase_cfg *ph, bd_phase_plan *p)
{
    char w[256];
    int rc;
    p->objective_threshold = NAN;
    p->objective_window = 100;
    for (int c = 0; c < ph->nconditions; c++) {
        const bd_named *cond = &ph->conditions[c];
        if (strcmp(cond->name, "objective_average") == 0) {
            long long win;
            double thr;
            if ((rc = bd_node_int(cond->params, "window", 100, &win)) != BD_OK)
                return rc;
            if (!bd_node_get(cond->params, "threshold"))
                return bd_seterr(BD_EINVAL, "%s: objective_average needs params.threshold",
                                 bd_where(cond->node, w, sizeof w));
            if ((rc = bd_node_double(cond->params, "threshold", 0, &thr)) != BD_OK)
                return rc;
            if (win < 1 || win > 4096)
                return bd_seterr(BD_EINVAL, "%s: objective_average window must be in [1, 4096]",
                                 bd_where(cond->node, w, sizeof w));
            p->objective_window = (int)win;
            p->objective_threshold = thr;
        } else if (strcmp(cond->name, "max_steps") == 0) {
            long long steps;
            if (!bd_node_get(cond->params, "steps"))
                return bd_seterr(BD_EINVAL, "%s: max_steps needs params.steps",
                                 bd_where(cond->node, w, sizeof w));
            if ((rc = bd_node_int(cond->params, "steps", 0, &steps)) != BD_OK)
                return rc;
            if (steps < 1)
                return bd_seterr(BD_EINVAL, "%s: max_steps steps must be >= 1",
                                 bd_where(cond->node, w, sizeof w));
            p->max_agent_steps = steps;
        } else {
            return bd_seterr(BD_ENOTFOUND,
                             "%s: unknown simulation condition '%s' (known: objective_average, max_steps)",
                             bd_where(cond->node, w, sizeof w), cond->name);
        }
    }
    p->episodes_target = ph->episodes;
    if (ph->mode == BD_MODE_TRAIN && p->max_agent_steps == 0 && isnan(p->objective_threshold)
        && ph->episodes == 0)
        return bd_seterr(BD_EINVAL, "%s: train phase '%s' has no stop condition "
                                    "(add max_steps or objective_average to simulation.conditions, "
                                    "or phase_config.episodes)",
                         bd_where(ph->node, w, sizeof w), ph->name);
    if (ph->mode == BD_MODE_TEST && ph->episodes == 0 && p->max_agent_steps == 0)
        return bd_seterr(BD_EINVAL, "%s: test phase '%s' needs phase_config.episodes or a max_steps condition",
                         bd_where(ph->node, w, sizeof w), ph->name);
    return BD_OK;
}

static const char *const bd_env_param_keys[] = {"worlds", "max_steps", NULL};

static int bd_plan_env(const bd_phase_cfg *ph, bd_phase_plan *p)
{
    char w[256];
    int rc;
    if (ph->nenvs != 1)
        return bd_seterr(BD_EINVAL, "%s: phase '%s' lists %d environments; this bodhi runs one per phase",
                         bd_where(ph->node, w, sizeof w), ph->name, ph->nenvs);
    const bd_env_cfg *ec = &ph->envs[0];
    int lrc = p->reg->env_load(ec->env.name, &p->env);
    if (lrc != BD_OK && strchr(ec->env.name, ':'))
        return bd_seterr(lrc, "%s: %s", bd_where(ec->env.node, w, sizeof w), bd_lasterr());
    if (lrc != BD_OK) {
        char known[512] = "";
        int n;
        const bd_env_desc *const *r = p->reg->env_builtins(&n);
        for (int i = 0; i < n; i++) {
            size_t l = strlen(known);
            snprintf(known + l, sizeof known - l, "%s%s", i ? ", " : "", r[i]->name);
        }
        return bd_seterr(BD_ENOTFOUND, "%s: unknown environment '%s' (known: %s)",
                         bd_where(ec->env.node, w, sizeof w), ec->env.name, known);
    }
    p->env_uid = ec->uid;
    const bd_node *params = ec->env.params;
    if ((rc = bd_node_check_keys(params, bd_env_param_keys, "environment params")) != BD_OK)
        return rc;
    long long worlds, max_steps;
    if ((rc = bd_node_int(params, "worlds", 1, &worlds)) != BD_OK)
        return rc;
    if ((rc = bd_node_int(params, "max_steps", p->env->default_max_steps, &max_steps)) != BD_OK)
        return rc;
    int muscles = ph->worker + ph->remote_worker;
    if (worlds < muscles || worlds > (1ll << 31))
        return bd_seterr(BD_EINVAL, "%s: worlds = %lld must be >= the muscles (%d) and <= 2^31",
                         bd_where(params ? params : ec->env.node, w, sizeof w), worlds, muscles);
    if (max_steps < 1 || max_steps > (1ll << 30))
        return bd_seterr(BD_EINVAL, "%s: max_steps = %lld must be >= 1",
                         bd_where(params ? params : ec->env.node, w, sizeof w), max_steps);
    p->worlds = worlds;
    p->max_steps = (int)max_steps;
    p->env_params_json = bd_node_to_json(params);
    return BD_OK;
}

static int bd_plan_agent(bd_phase_plan *p, int i)
{
    char w[256];
    const bd_agent_cfg *a = &p->ph->agents[i];
    bd_agent_plan *ap = &p->agents[i];
    ap->cfg = a;
    ap->index = i;
    ap->seed = bd_seed_mix(p->rf->seed, 1000 + (uint64_t)i, 0);
    int rc = bd_resolve_ids(a, p->env_uid, p->env->sensors, p->env->obs_dim, a->sensors,
                            a->nsensors, "sensor", &ap->sens_cols, &ap->sensor_ids, &ap->nsens);
    if (rc == BD_OK)
        rc = bd_resolve_ids(a, p->env_uid, p->env->actuators, p->env->act_dim, a->actuators,
                            a->nactuators, "actuator", &ap->act_cols, &ap->actuator_ids, &ap->nact);
    if (rc != BD_OK)
        return rc;
    const bd_registry *reg = p->reg;
    char known[256];
    ap->brain = bd_kind_find(reg->brains, reg->nbrains, a->brain.name);
    if (!ap->brain)
        return bd_seterr(BD_ENOTFOUND, "%s: agent '%s': unknown brain '%s' (known: %s)",
                         bd_where(a->brain.node, w, sizeof w), a->name, a->brain.name,
                         bd_kind_names(reg->brains, reg->nbrains, known, sizeof known));
    ap->muscle = bd_kind_find(reg->muscles, reg->nmuscles, a->muscle.name);
    if (!ap->muscle)
        return bd_seterr(BD_ENOTFOUND, "%s: agent '%s': unknown muscle '%s' (known: %s)",
                         bd_where(a->muscle.node, w, sizeof w), a->name, a->muscle.name,
                         bd_kind_names(reg->muscles, reg->nmuscles, known, sizeof known));
    if (strcmp(ap->brain->family, ap->muscle->family) != 0)
        return bd_seterr(BD_EINVAL, "%s: agent '%s': brain '%s' and muscle '%s' do not belong together",
                         bd_where(a->node, w, sizeof w), a->name, a->brain.name, a->muscle.name);
    ap->random = ap->brain->netless;
    int objective_known = 0;
    known[0] = '\0';
    for (int k = 0; reg->objectives[k]; k++) {
        objective_known |= strcmp(reg->objectives[k], a->objective.name) == 0;
        size_t l = strlen(known);
        snprintf(known + l, sizeof known - l, "%s%s", k ? ", " : "", reg->objectives[k]);
    }
    if (!objective_known)
        return bd_seterr(BD_ENOTFOUND, "%s: agent '%s': unknown objective '%s' (known: %s)",
                         bd_where(a->objective.node, w, sizeof w), a->name, a->objective.name, known);
    int discrete = 0;
    ap->act_low = calloc((size_t)ap->nact, sizeof(float));
    ap->act_high = calloc((size_t)ap->nact, sizeof(float));
    if (!ap->act_low || !ap->act_high)
        return bd_seterr(BD_ENOMEM, "out of memory");
    for (int x = 0; x < ap->nact; x++) {
        const bd_channel *ch = &p->env->actuators[ap->act_cols[x]];
        discrete += ch->n > 0;
        ap->act_low[x] = ch->low;
        ap->act_high[x] = ch->high;
    }
    ap->discrete = discrete;
    ap->continuous = !discrete;
    ap->n_actions = discrete == 1 && ap->nact == 1 ? p->env->actuators[ap->act_cols[0]].n : 0;
    /* An actuator has one owner. */
    for (int j = 0; j < i; j++)
        for (int x = 0; x < ap->nact; x++)
            for (int y = 0; y < p->agents[j].nact; y++)
                if (ap->act_cols[x] == p->agents[j].act_cols[y])
                    return bd_seterr(BD_EINVAL, "%s: actuator '%s' is set by agents '%s' and '%s'",
                                     bd_where(a->node, w, sizeof w), ap->actuator_ids[x],
                                     p->agents[j].cfg->name, a->name);
    /* a learner tested needs what it learnt */
    if (p->ph->mode == BD_MODE_TEST && !ap->random && !a->load_phase)
        return bd_seterr(BD_EINVAL, "%s: agent '%s' in test phase '%s' has nothing to load: no "
                                    "earlier train phase has it (add a train phase, or load: {phase, agent})",
                         bd_where(a->node, w, sizeof w), a->name, p->ph->name);
    /* the kinds' own params are checked here, before any process starts */
    if (ap->brain->check && (rc = ap->brain->check(a->brain.params, p, ap)) != BD_OK)
        return rc;
    if (ap->muscle->check && (rc = ap->muscle->check(a->muscle.params, p, ap)) != BD_OK)
        return rc;
    return BD_OK;
}

int bd_phase_plan_make(const bd_runfile *rf, int phase_index, const bd_registry *reg,
                       const char *device_override, bd_phase_plan *p)
{
    char w[256];
    memset(p, 0, sizeof *p);
    p->reg = reg;
    if (phase_index < 0 || phase_index >= rf->nphases)
        return bd_seterr(BD_ENOTFOUND, "%s: no phase %d", rf->path, phase_index);
    p->rf = rf;
    p->ph = &rf->phases[phase_index];
    p->phase_index = phase_index;
    p->worker = p->ph->worker;
    p->remote = p->ph->remote_worker;
    p->muscles = p->worker + p->remote;
    p->env_seed = bd_seed_mix(rf->seed, (uint64_t)phase_index, 7);
    int rc = bd_plan_env(p->ph, p);
    if (rc == BD_OK)
        rc = bd_plan_conditions(p->ph, p);
    if (rc != BD_OK)
        return rc;
    const char *dev = device_override ? device_override : p->ph->device;
    if (strcmp(dev, "cpu") == 0) {
        p->device = BD_DEVICE_CPU;
    } else if (strcmp(dev, "cuda") == 0) {
        if (!bd_cuda_available())
            return bd_seterr(BD_ENODEV, "%s: device cuda asked for, but no CUDA GPU answers here%s",
                             bd_where(p->ph->node, w, sizeof w),
                             device_override ? " (--device cuda)" : "");
        if (!p->env->step_cuda)
            return bd_seterr(BD_ENODEV, "%s: environment '%s' has no CUDA kernel",
                             bd_where(p->ph->node, w, sizeof w), p->env->name);
        if (!reg->learner_cuda())
            return bd_seterr(BD_ENODEV, "%s: device cuda asked for, but this bodhi's libtorch has no "
                             "CUDA (Debian's is CPU-only; bench/gpu/ rebuilds the torch shim "
                             "against a CUDA libtorch)", bd_where(p->ph->node, w, sizeof w));
        p->device = BD_DEVICE_CUDA;
    } else if (strcmp(dev, "auto") == 0) {
        /* the policies run beside the env buffers: cuda needs both a kernel and CUDA libtorch */
        p->device = bd_cuda_available() && p->env->step_cuda && reg->learner_cuda()
                        ? BD_DEVICE_CUDA : BD_DEVICE_CPU;
    } else {
        return bd_seterr(BD_EINVAL, "device '%s' is not cpu, cuda or auto", dev);
    }
    p->nagents = p->ph->nagents;
    p->agents = calloc((size_t)p->nagents, sizeof *p->agents);
    if (!p->agents)
        return bd_seterr(BD_ENOMEM, "out of memory");
    for (int i = 0; i < p->nagents && rc == BD_OK; i++)
        rc = bd_plan_agent(p, i);
    return rc;
}

void bd_phase_plan_fini(bd_phase_plan *p)
{
    for (int i = 0; p->agents && i < p->nagents; i++) {
        bd_agent_plan *a = &p->agents[i];
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
    free(p->env_params_json);
    memset(p, 0, sizeof *p);
}
