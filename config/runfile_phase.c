/* runfile_phase.c: one merged phase of a run file into its bd_phase_cfg (docs/run-file.md):
 * phase_config, simulation, environments and agents (with load and record), every problem
 * noted so that all of them are listed at once. The rest of reading a run file (the top
 * level, the cascade of phases, storage, errors) is runfile.c's.
 */
#define _GNU_SOURCE
#include "config/runfile.h"
#include "config/runfile_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

/* ---- values ----------------------------------------------------------------------------- */

/* params: a map, or absent/null (an empty map owned by rf). */
static int get_params(bd_runfile *rf, const bd_node *map, const char *in, const bd_node **out)
{
    const bd_node *p = bd_node_get(map, "params");
    if (!p || bd_node_is_null(p)) {
        *out = bd_rf_empty_map(rf, p ? p : map);
        return *out ? BD_OK : bd_rf_nomem();
    }
    if (p->kind != BD_NODE_MAP)
        return bd_rf_at(p, BD_EINVAL, "params of %s must be a map (e.g. {worlds: 64})", in);
    *out = p;
    return BD_OK;
}

/* {name, params} for brain, muscle, objective, conditions. */
static int parse_named(bd_runfile *rf, const bd_node *n, const char *in, bd_named *out)
{
    static const char *const keys[] = {"name", "params", NULL};
    if (n->kind != BD_NODE_MAP)
        return bd_rf_at(n, BD_EINVAL, "%s must be a map like {name: ..., params: {...}}", in);
    int rc = bd_node_check_keys(n, keys, in, bd_rf_diags(rf));
    if (!rc)
        rc = bd_rf_req_str(n, "name", in, &out->name);
    if (!rc)
        rc = get_params(rf, n, in, &out->params);
    out->node = n;
    return rc;
}

/* A non-empty sequence of strings map[key] (required). */
static int parse_strlist(bd_runfile *rf, const bd_node *map, const char *key, const char *in,
                         const char ***out, int *count)
{
    const bd_node *s = bd_node_get(map, key);
    if (!s)
        return bd_rf_at(map, BD_EINVAL, "missing required key '%s' in %s", key, in);
    if (s->kind != BD_NODE_SEQ || s->n == 0)
        return bd_rf_at(s, BD_EINVAL, "%s of %s must be a non-empty list, e.g. [pole.*]", key, in);
    const char **v = bd_rf_alloc(rf, s->n, sizeof *v);
    if (!v)
        return bd_rf_nomem();
    for (size_t i = 0; i < s->n; i++) {
        const bd_node *it = s->items[i];
        if (it->kind != BD_NODE_SCALAR || bd_node_is_null(it) || !it->text[0])
            return bd_rf_at(it, BD_EINVAL, "%s of %s: each item must be an id like pole.theta", key, in);
        v[i] = it->text;
    }
    *out = v;
    *count = (int)s->n;
    return BD_OK;
}

/* pc[key] (def when absent) in [lo, hi], into *out; a problem is noted. `what` reads
 * after "expected", e.g. "1 to 4096 worker processes". */
static int int_key(bd_runfile *rf, const bd_node *pc, const char *key, long long def, long long lo, long long hi,
                   const char *what, long long *out)
{
    long long v;
    int rc = bd_node_int(pc, key, def, &v);
    if (rc)
        return bd_rf_note(rf, rc);
    if (v < lo || v > hi)
        return bd_rf_note(rf, bd_rf_at(bd_node_get(pc, key), BD_EINVAL, "%s: expected %s, got %lld", key, what, v));
    *out = v;
    return BD_OK;
}

static int double_key(bd_runfile *rf, const bd_node *pc, const char *key, double def, double lo, double hi,
                      const char *what, double *out)
{
    double v;
    int rc = bd_node_double(pc, key, def, &v);
    if (rc)
        return bd_rf_note(rf, rc);
    if (!(v >= lo && v <= hi))
        return bd_rf_note(rf, bd_rf_at(bd_node_get(pc, key), BD_EINVAL, "%s: expected %s, got %g", key, what, v));
    *out = v;
    return BD_OK;
}

/* ---- phases ----------------------------------------------------------------------------- */

static int parse_envs(bd_runfile *rf, bd_phase_cfg *ph, const bd_node *m)
{
    static const char *const item_keys[] = {"environment", NULL};
    static const char *const env_keys[] = {"name", "uid", "params", NULL};
    const bd_node *envs = bd_node_get(m, "environments");
    if (!envs)
        return bd_rf_at(m, BD_EINVAL, "missing required key 'environments' in phase '%s'", ph->name);
    if (envs->kind != BD_NODE_SEQ || envs->n == 0)
        return bd_rf_at(envs, BD_EINVAL,
                        "environments of phase '%s' must be a non-empty list of "
                        "{environment: {name, uid, params}}",
                        ph->name);
    ph->envs = bd_rf_alloc(rf, envs->n, sizeof *ph->envs);
    if (!ph->envs)
        return bd_rf_nomem();
    int bad = BD_OK;
    for (size_t i = 0; i < envs->n; i++) {
        const bd_node *it = envs->items[i];
        bd_env_cfg *e = &ph->envs[ph->nenvs];
        int rc;
        if (it->kind != BD_NODE_MAP) {
            bad = bd_rf_note(rf, bd_rf_at(it, BD_EINVAL, "each item of environments must be a map "
                                          "{environment: {name, uid, params}}"));
            continue;
        }
        if ((rc = bd_node_check_keys(it, item_keys, "an environments entry", bd_rf_diags(rf))))
            bad = bd_rf_note(rf, rc);
        const bd_node *en = bd_node_get(it, "environment");
        if (!en) {
            bad = bd_rf_note(rf, bd_rf_at(it, BD_EINVAL, "missing required key 'environment' in environments entry"));
            continue;
        }
        if (en->kind != BD_NODE_MAP) {
            bad = bd_rf_note(rf, bd_rf_at(en, BD_EINVAL, "environment must be a map {name, uid, params}"));
            continue;
        }
        int ok = 1;
        if ((rc = bd_node_check_keys(en, env_keys, "environment", bd_rf_diags(rf))))
            ok = !bd_rf_note(rf, rc);
        if ((rc = bd_rf_req_str(en, "name", "environment", &e->env.name))) {
            bad = bd_rf_note(rf, rc);
            continue;
        }
        /* the uid prefixes every sensor and actuator id ("<uid>.<name>"): no dots in it */
        const bd_node *un = bd_node_get(en, "uid");
        e->uid = NULL;
        if (un && (rc = bd_node_str(en, "uid", NULL, &e->uid))) {
            ok = !bd_rf_note(rf, rc);
        } else if (e->uid) {
            const char *why = bd_rf_name_problem(e->uid);
            if (!why && strchr(e->uid, '.'))
                why = "may not contain '.' (ids are written <uid>.<sensor>)";
            if (why)
                ok = !bd_rf_note(rf, bd_rf_at(un, BD_EINVAL, "environment uid '%.80s' %s", e->uid, why));
        }
        if ((rc = get_params(rf, en, "environment", &e->env.params)))
            ok = !bd_rf_note(rf, rc);
        e->env.node = en;
        for (int j = 0; ok && e->uid && j < ph->nenvs; j++)
            if (ph->envs[j].uid && strcmp(ph->envs[j].uid, e->uid) == 0)
                ok = !bd_rf_note(rf, bd_rf_at(en, BD_EINVAL,
                                              "duplicate environment uid '%s' in phase '%s' (first at %d:%d); "
                                              "give each environment its own uid",
                                              e->uid, ph->name, ph->envs[j].env.node->line, ph->envs[j].env.node->col));
        if (ok)
            ph->nenvs++;
        else
            bad = BD_EINVAL;
    }
    return bad;
}

/* The latest train phase before pi that has agent `name` (only train phases write
 * checkpoints), or NULL. */
static const char *last_train_phase(const bd_runfile *rf, int pi, const char *name)
{
    for (int k = pi - 1; k >= 0; k--)
        if (rf->phases[k].mode == BD_MODE_TRAIN && bd_phase_agent(&rf->phases[k], name))
            return rf->phases[k].name;
    return NULL;
}

static int parse_load(bd_runfile *rf, int pi, bd_agent_cfg *a)
{
    static const char *const keys[] = {"experiment_run", "phase", "agent", NULL};
    const bd_phase_cfg *ph = &rf->phases[pi];
    const char *prev = last_train_phase(rf, pi, a->name);
    const bd_node *ld = bd_node_get(a->node, "load");
    a->load_agent = a->name;
    a->load_phase = prev;
    a->load_phase_given = 0;
    a->load_run = NULL;
    if (!ld || bd_node_is_null(ld))
        return BD_OK;
    if (ld->kind != BD_NODE_MAP)
        return bd_rf_at(ld, BD_EINVAL, "load of agent '%s' must be a map {experiment_run, phase, agent}",
                        a->name);
    int rc = bd_node_check_keys(ld, keys, "load", bd_rf_diags(rf));
    const char *run = NULL, *phase = NULL;
    if (!rc)
        rc = bd_node_str(ld, "agent", a->name, &a->load_agent);
    if (!rc)
        rc = bd_node_str(ld, "phase", NULL, &phase);
    if (!rc)
        rc = bd_node_str(ld, "experiment_run", NULL, &run);
    if (rc)
        return rc;
    if (run) { /* an earlier run: config/check.c looks at it (run.yml then names it absolutely) */
        a->load_run = run;
        a->load_phase = phase;
        a->load_phase_given = phase != NULL;
        return run[0] ? BD_OK
                      : bd_rf_at(bd_node_get(ld, "experiment_run"), BD_EINVAL, "load.experiment_run: must not be empty");
    }
    a->load_phase = phase ? phase : last_train_phase(rf, pi, a->load_agent);
    a->load_phase_given = phase != NULL;
    if (!a->load_phase)
        return bd_rf_at(ld, BD_EINVAL,
                        "load: no train phase before phase '%s' has agent '%s', so there is no "
                        "checkpoint to load; name one with load.phase, or an earlier run with "
                        "load.experiment_run",
                        ph->name, a->load_agent);
    int from = -1;
    for (int k = 0; k < pi; k++)
        if (strcmp(rf->phases[k].name, a->load_phase) == 0)
            from = k;
    if (from < 0)
        return bd_rf_at(bd_node_get(ld, "phase"), BD_EINVAL,
                        "load.phase: no phase '%s' before phase '%s' (to load from another run, add "
                        "load.experiment_run)", a->load_phase, ph->name);
    if (!bd_phase_agent(&rf->phases[from], a->load_agent))
        return bd_rf_at(bd_node_get(ld, "agent") ? bd_node_get(ld, "agent") : ld, BD_EINVAL,
                        "load.agent: phase '%s' has no agent '%s'", a->load_phase, a->load_agent);
    if (rf->phases[from].mode != BD_MODE_TRAIN)
        return bd_rf_at(bd_node_get(ld, "phase"), BD_EINVAL,
                        "load.phase: phase '%s' is a test phase and writes no checkpoint; name a train phase",
                        a->load_phase);
    return BD_OK;
}

/* record: true | false | {every, worlds, compression}. The compression's name is checked
 * against the registry by config/plan.c (its filter may be missing here). */
static int parse_record(bd_runfile *rf, bd_agent_cfg *a)
{
    static const char *const keys[] = {"every", "worlds", "compression", NULL};
    const bd_node *r = bd_node_get(a->node, "record");
    a->record_steps = 1;
    a->record_every = 1;
    a->record_worlds = 0;
    a->record_compression = NULL; /* the default: memory/'s bd_compression_default */
    if (!r || bd_node_is_null(r))
        return BD_OK;
    if (r->kind == BD_NODE_SCALAR) {
        int on;
        int rc = bd_node_bool(a->node, "record", 1, &on);
        if (rc)
            return bd_rf_note(rf, bd_rf_at(r, BD_EINVAL,
                                           "record: expected true, false or a map {every, worlds, compression}, "
                                           "got '%.80s'", r->text));
        a->record_steps = on;
        return BD_OK;
    }
    if (r->kind != BD_NODE_MAP)
        return bd_rf_note(rf, bd_rf_at(r, BD_EINVAL,
                                       "record: expected true, false or a map {every, worlds, compression}"));
    int bad = bd_rf_note(rf, bd_node_check_keys(r, keys, "record", bd_rf_diags(rf)));
    long long every = 1, worlds = 0;
    int rcs[] = {int_key(rf, r, "every", 1, 1, 1 << 30, "1 to 2^30 (every K-th step)", &every),
                 int_key(rf, r, "worlds", 1, 1, 1 << 30, "1 to 2^30 (the first N worlds)", &worlds)};
    for (size_t k = 0; k < 2; k++)
        bad = bad ? bad : rcs[k];
    a->record_every = (int)every;
    a->record_worlds = bd_node_get(r, "worlds") ? worlds : 0;
    int rc = bd_node_str(r, "compression", NULL, &a->record_compression);
    return bad ? bad : bd_rf_note(rf, rc);
}

/* One agent of phase pi into a; every problem is noted. BD_OK when it has none. */
static int parse_agent(bd_runfile *rf, int pi, const bd_node *an, bd_agent_cfg *a)
{
    static const char *const keys[] = {"name",    "brain",     "muscle", "objective",
                                       "sensors", "actuators", "load",   "record", NULL};
    bd_phase_cfg *ph = &rf->phases[pi];
    int bad = BD_OK, rc;
    a->node = an;
    if ((rc = bd_node_check_keys(an, keys, "agent", bd_rf_diags(rf))))
        bad = bd_rf_note(rf, rc);
    if ((rc = bd_rf_req_str(an, "name", "agent", &a->name)))
        return bd_rf_note(rf, rc);
    const bd_node *nn = bd_node_get(an, "name");
    const char *why = bd_rf_name_problem(a->name);
    if (why)
        bad = bd_rf_note(rf, bd_rf_at(nn, BD_EINVAL, "agent name '%.80s' %s (it names files and HDF5 groups)",
                                      a->name, why));
    for (int j = 0; j < ph->nagents; j++)
        if (strcmp(ph->agents[j].name, a->name) == 0)
            bad = bd_rf_note(rf, bd_rf_at(nn, BD_EINVAL, "duplicate agent '%s' in phase '%s' (first at %d:%d)", a->name,
                                          ph->name, ph->agents[j].node->line, ph->agents[j].node->col));
    char in[96];
    const bd_node *b = bd_node_get(an, "brain");
    snprintf(in, sizeof in, "brain of agent '%.40s'", a->name);
    if (!b)
        bad = bd_rf_note(rf, bd_rf_at(an, BD_EINVAL, "missing required key 'brain' in agent '%s'", a->name));
    else if ((rc = parse_named(rf, b, in, &a->brain)))
        bad = bd_rf_note(rf, rc);
    const bd_node *mu = bd_node_get(an, "muscle");
    snprintf(in, sizeof in, "muscle of agent '%.40s'", a->name);
    if (!mu)
        bad = bd_rf_note(rf, bd_rf_at(an, BD_EINVAL, "missing required key 'muscle' in agent '%s'", a->name));
    else if ((rc = parse_named(rf, mu, in, &a->muscle)))
        bad = bd_rf_note(rf, rc);
    const bd_node *ob = bd_node_get(an, "objective");
    snprintf(in, sizeof in, "objective of agent '%.40s'", a->name);
    if (ob && !bd_node_is_null(ob)) {
        if ((rc = parse_named(rf, ob, in, &a->objective)))
            bad = bd_rf_note(rf, rc);
    } else {
        a->objective.name = bd_rf_strdup(rf, "reward");
        a->objective.params = bd_rf_empty_map(rf, an);
        a->objective.node = an;
        if (!a->objective.name || !a->objective.params)
            return bd_rf_note(rf, bd_rf_nomem());
    }
    snprintf(in, sizeof in, "agent '%.40s'", a->name);
    if ((rc = parse_strlist(rf, an, "sensors", in, &a->sensors, &a->nsensors)))
        bad = bd_rf_note(rf, rc);
    if ((rc = parse_strlist(rf, an, "actuators", in, &a->actuators, &a->nactuators)))
        bad = bd_rf_note(rf, rc);
    if ((rc = parse_load(rf, pi, a)))
        bad = bd_rf_note(rf, rc);
    if ((rc = parse_record(rf, a)))
        bad = rc;
    return bad;
}

static int parse_agents(bd_runfile *rf, int pi, const bd_node *m)
{
    bd_phase_cfg *ph = &rf->phases[pi];
    const bd_node *ags = bd_node_get(m, "agents");
    if (!ags)
        return bd_rf_at(m, BD_EINVAL, "missing required key 'agents' in phase '%s'", ph->name);
    if (ags->kind != BD_NODE_SEQ || ags->n == 0)
        return bd_rf_at(ags, BD_EINVAL, "agents of phase '%s' must be a non-empty list of agents",
                        ph->name);
    ph->agents = bd_rf_alloc(rf, ags->n, sizeof *ph->agents);
    if (!ph->agents)
        return bd_rf_nomem();
    int bad = BD_OK;
    for (size_t i = 0; i < ags->n; i++) {
        const bd_node *an = ags->items[i];
        if (an->kind != BD_NODE_MAP) {
            bad = bd_rf_note(rf, bd_rf_at(an, BD_EINVAL,
                                          "each item of agents must be a map {name, brain, muscle, ...}"));
            continue;
        }
        bd_agent_cfg *a = &ph->agents[ph->nagents];
        memset(a, 0, sizeof *a);
        int rc = parse_agent(rf, pi, an, a);
        if (rc == BD_OK)
            ph->nagents++;
        else
            bad = rc;
    }
    return bad;
}

static int parse_simulation(bd_runfile *rf, bd_phase_cfg *ph, const bd_node *m)
{
    static const char *const keys[] = {"name", "conditions", NULL};
    const bd_node *sim = bd_node_get(m, "simulation");
    int rc, bad = BD_OK;
    if (!sim || bd_node_is_null(sim)) {
        ph->sim_name = bd_rf_strdup(rf, "vanilla");
        return ph->sim_name ? BD_OK : bd_rf_nomem();
    }
    if (sim->kind != BD_NODE_MAP)
        return bd_rf_at(sim, BD_EINVAL, "simulation must be a map {name, conditions}");
    if ((rc = bd_node_check_keys(sim, keys, "simulation", bd_rf_diags(rf))))
        bad = bd_rf_note(rf, rc);
    if ((rc = bd_node_str(sim, "name", NULL, &ph->sim_name)))
        bad = bd_rf_note(rf, rc);
    else if (ph->sim_name && strcmp(ph->sim_name, "vanilla") != 0)
        bad = bd_rf_note(rf, bd_rf_at(bd_node_get(sim, "name"), BD_EINVAL,
                                      "simulation.name: this bodhi has one simulation, 'vanilla' (every agent acts "
                                      "each step), got '%s'", ph->sim_name));
    if (!(ph->sim_name = bd_rf_strdup(rf, "vanilla")))
        return bd_rf_nomem();
    const bd_node *cs = bd_node_get(sim, "conditions");
    if (!cs || bd_node_is_null(cs))
        return bad;
    if (cs->kind != BD_NODE_SEQ)
        return bd_rf_note(rf, bd_rf_at(cs, BD_EINVAL, "conditions must be a list of {name, params}"));
    ph->conditions = bd_rf_alloc(rf, cs->n, sizeof *ph->conditions);
    if (!ph->conditions)
        return bd_rf_nomem();
    for (size_t i = 0; i < cs->n; i++) {
        if ((rc = parse_named(rf, cs->items[i], "condition", &ph->conditions[ph->nconditions])))
            bad = bd_rf_note(rf, rc);
        else
            ph->nconditions++;
    }
    return bad;
}

static int parse_phase_config(bd_runfile *rf, bd_phase_cfg *ph, const bd_node *m)
{
    static const char *const keys[] = {"mode", "worker", "device", "episodes", "remote_worker",
                                       "restarts", "heartbeat_timeout", "join_timeout", NULL};
    const bd_node *pc = bd_node_get(m, "phase_config");
    int rc, bad = BD_OK;
    ph->mode = BD_MODE_TRAIN;
    ph->heartbeat_timeout = 60;
    ph->join_timeout = 300;
    if (!(ph->device = bd_rf_strdup(rf, "auto")))
        return bd_rf_nomem();
    if (pc && bd_node_is_null(pc))
        pc = NULL;
    if (pc && pc->kind != BD_NODE_MAP)
        return bd_rf_note(rf, bd_rf_at(pc, BD_EINVAL,
                                       "phase_config must be a map {mode, worker, device, episodes, ...}"));
    if (pc && (rc = bd_node_check_keys(pc, keys, "phase_config", bd_rf_diags(rf))))
        bad = bd_rf_note(rf, rc);
    const char *mode;
    if ((rc = bd_node_str(pc, "mode", "train", &mode)))
        bad = bd_rf_note(rf, rc);
    else if (strcmp(mode, "train") == 0)
        ph->mode = BD_MODE_TRAIN;
    else if (strcmp(mode, "test") == 0)
        ph->mode = BD_MODE_TEST;
    else
        bad = bd_rf_note(rf, bd_rf_at(bd_node_get(pc, "mode"), BD_EINVAL, "mode: expected train or test, got '%s'",
                                      mode));
    const char *dev;
    if ((rc = bd_node_str(pc, "device", "auto", &dev)))
        bad = bd_rf_note(rf, rc);
    else if (strcmp(dev, "auto") && strcmp(dev, "cpu") && strcmp(dev, "cuda"))
        bad = bd_rf_note(rf, bd_rf_at(bd_node_get(pc, "device"), BD_EINVAL,
                                      "device: expected auto, cpu or cuda, got '%s'", dev));
    else
        ph->device = dev;
    long long worker = 1, remote = 0, restarts = 3, episodes = 0;
    int rcs[] = {
        int_key(rf, pc, "worker", 1, 1, 4096, "1 to 4096 worker processes", &worker),
        int_key(rf, pc, "remote_worker", 0, 0, 4096, "0 to 4096 muscles that join over TCP", &remote),
        int_key(rf, pc, "restarts", 3, 0, 1000, "0 to 1000 restarts of crashed or hung muscles per phase", &restarts),
        /* absent: 0, no episode count; written: at least 1 */
        int_key(rf, pc, "episodes", 1, 1, BD_CAP_EPISODES_MAX, BD_CAP_EPISODES_WHAT, &episodes),
        double_key(rf, pc, "heartbeat_timeout", 60, 1, 86400, "1 to 86400 seconds", &ph->heartbeat_timeout),
        double_key(rf, pc, "join_timeout", 300, 1, 86400 * 7, "1 to 604800 seconds", &ph->join_timeout),
    };
    for (size_t k = 0; k < sizeof rcs / sizeof rcs[0]; k++)
        bad = bad ? bad : rcs[k];
    ph->worker = (int)worker;
    ph->remote_worker = (int)remote;
    ph->restarts = (int)restarts;
    ph->episodes = bd_node_get(pc, "episodes") ? episodes : 0;
    return bad;
}

/* Phase pi, every problem noted; BD_OK when it has none. */
int bd_rf_parse_phase(bd_runfile *rf, int pi)
{
    static const char *const keys[] = {"environments", "agents", "simulation", "phase_config",
                                       NULL};
    bd_phase_cfg *ph = &rf->phases[pi];
    const bd_node *m = ph->node;
    char in[96];
    snprintf(in, sizeof in, "phase '%.60s'", ph->name);
    /* each part's problems are noted; noting one twice keeps it once */
    int rcs[] = {bd_rf_note(rf, bd_node_check_keys(m, keys, in, bd_rf_diags(rf))),
                 bd_rf_note(rf, parse_phase_config(rf, ph, m)),
                 bd_rf_note(rf, parse_simulation(rf, ph, m)), bd_rf_note(rf, parse_envs(rf, ph, m)),
                 bd_rf_note(rf, parse_agents(rf, pi, m))};
    int bad = BD_OK;
    for (size_t k = 0; k < sizeof rcs / sizeof rcs[0]; k++)
        bad = bad ? bad : rcs[k];
    ph->invalid = bad != BD_OK;
    return bad;
}
