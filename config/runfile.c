/* runfile.c: reads, cascades and validates an experiment run file (docs/run-file.md).
 *
 * Steps: parse the YAML (yamlparse.c), check the top level, deep-merge each schedule phase
 * onto the merged phase before it (the result is rf->effective), then validate every
 * merged phase into the bd_phase_cfg structs. Every string and node those structs point
 * to lives in rf->effective or in rf->priv (an arena freed by bd_runfile_destroy).
 * Unknown keys are errors everywhere except inside params maps and run_config, which
 * belong to the plugin/conductor that reads them. Phase, agent and uid names must match
 * [A-Za-z0-9_.-]+ because they name folders and HDF5 groups.
 */
#define _GNU_SOURCE
#include "config/runfile.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

/* ---- storage owned by the run file ------------------------------------------------------ */

typedef struct {
    void **blocks;     /* calloc'd blocks freed on destroy */
    size_t n, cap;
    bd_node **nodes;   /* nodes made here (defaults) */
    size_t nn, ncap;
    bd_diags *d;       /* where problems go while parsing */
} rf_priv;

static void *rf_alloc(bd_runfile *rf, size_t count, size_t size)
{
    rf_priv *p = rf->priv;
    if (p->n == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 16;
        void **b = realloc(p->blocks, cap * sizeof *b);
        if (!b)
            return NULL;
        p->blocks = b;
        p->cap = cap;
    }
    void *m = calloc(count ? count : 1, size);
    if (m)
        p->blocks[p->n++] = m;
    return m;
}

static const char *rf_strdup(bd_runfile *rf, const char *s)
{
    size_t len = strlen(s) + 1;
    char *d = rf_alloc(rf, len, 1);
    if (d)
        memcpy(d, s, len);
    return d;
}

/* An empty map owned by the run file, positioned at `where` (for defaults). */
static const bd_node *rf_empty_map(bd_runfile *rf, const bd_node *where)
{
    rf_priv *p = rf->priv;
    if (p->nn == p->ncap) {
        size_t cap = p->ncap ? 2 * p->ncap : 16;
        bd_node **b = realloc(p->nodes, cap * sizeof *b);
        if (!b)
            return NULL;
        p->nodes = b;
        p->ncap = cap;
    }
    bd_node *m = bd_node_new(BD_NODE_MAP, where->file, where->line, where->col);
    if (m)
        p->nodes[p->nn++] = m;
    return m;
}

static int nomem(void)
{
    return bd_seterr(BD_ENOMEM, "out of memory reading the run file");
}

/* ---- error helpers ---------------------------------------------------------------------- */

/* "FILE:LINE:COL: ..." at node n. */
static int __attribute__((format(printf, 3, 4))) at(const bd_node *n, int err, const char *fmt,
                                                    ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return bd_seterr(err, "%s:%d:%d: %s", n->file, n->line, n->col, msg);
}

/* "FILE:LINE:COL: ..." at the i-th key of map m. */
static int __attribute__((format(printf, 4, 5))) at_key(const bd_node *m, size_t i, int err,
                                                        const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return bd_seterr(err, "%s:%d:%d: %s", m->file, m->key_line[i], m->key_col[i], msg);
}


/* Why a name that becomes a folder, a file name part or an HDF5 group cannot be used
 * ([A-Za-z0-9_.-]{1,64}, not "." or ".."), or NULL when it can. */
static const char *name_problem(const char *s)
{
    if (!s[0] || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
        return "is not a name (use letters, digits, '_', '.' and '-')";
    if (strlen(s) > BD_NAME_MAX)
        return "is longer than " BD_STR(BD_NAME_MAX) " characters";
    for (const char *p = s; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return "may only use letters, digits, '_', '.' and '-'";
    }
    return NULL;
}

/* Where problems go while parsing; records one (rc != BD_OK) there; returns rc. */
static bd_diags *diags(bd_runfile *rf)
{
    return ((rf_priv *)rf->priv)->d;
}

static int note(bd_runfile *rf, int rc)
{
    return bd_diag(diags(rf), rc);
}

/* A required string map[key]; `in` names the map for the error. */
static int req_str(const bd_node *map, const char *key, const char *in, const char **out)
{
    int rc = bd_node_str(map, key, NULL, out);
    if (rc)
        return rc;
    if (!*out)
        return at(map, BD_EINVAL, "missing required key '%s' %s %s", key,
                  strcmp(in, "the top level") == 0 ? "at" : "in", in);
    if (!(*out)[0])
        return at(bd_node_get(map, key), BD_EINVAL, "%s: must not be empty", key);
    return BD_OK;
}

/* params: a map, or absent/null (an empty map owned by rf). */
static int get_params(bd_runfile *rf, const bd_node *map, const char *in, const bd_node **out)
{
    const bd_node *p = bd_node_get(map, "params");
    if (!p || bd_node_is_null(p)) {
        *out = rf_empty_map(rf, p ? p : map);
        return *out ? BD_OK : nomem();
    }
    if (p->kind != BD_NODE_MAP)
        return at(p, BD_EINVAL, "params of %s must be a map (e.g. {worlds: 64})", in);
    *out = p;
    return BD_OK;
}

/* {name, params} for brain, muscle, objective, conditions. */
static int parse_named(bd_runfile *rf, const bd_node *n, const char *in, bd_named *out)
{
    static const char *const keys[] = {"name", "params", NULL};
    if (n->kind != BD_NODE_MAP)
        return at(n, BD_EINVAL, "%s must be a map like {name: ..., params: {...}}", in);
    int rc = bd_node_check_keys(n, keys, in, diags(rf));
    if (!rc)
        rc = req_str(n, "name", in, &out->name);
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
        return at(map, BD_EINVAL, "missing required key '%s' in %s", key, in);
    if (s->kind != BD_NODE_SEQ || s->n == 0)
        return at(s, BD_EINVAL, "%s of %s must be a non-empty list, e.g. [pole.*]", key, in);
    const char **v = rf_alloc(rf, s->n, sizeof *v);
    if (!v)
        return nomem();
    for (size_t i = 0; i < s->n; i++) {
        const bd_node *it = s->items[i];
        if (it->kind != BD_NODE_SCALAR || bd_node_is_null(it) || !it->text[0])
            return at(it, BD_EINVAL, "%s of %s: each item must be an id like pole.theta", key, in);
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
        return note(rf, rc);
    if (v < lo || v > hi)
        return note(rf, at(bd_node_get(pc, key), BD_EINVAL, "%s: expected %s, got %lld", key, what, v));
    *out = v;
    return BD_OK;
}

static int double_key(bd_runfile *rf, const bd_node *pc, const char *key, double def, double lo, double hi,
                      const char *what, double *out)
{
    double v;
    int rc = bd_node_double(pc, key, def, &v);
    if (rc)
        return note(rf, rc);
    if (!(v >= lo && v <= hi))
        return note(rf, at(bd_node_get(pc, key), BD_EINVAL, "%s: expected %s, got %g", key, what, v));
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
        return at(m, BD_EINVAL, "missing required key 'environments' in phase '%s'", ph->name);
    if (envs->kind != BD_NODE_SEQ || envs->n == 0)
        return at(envs, BD_EINVAL,
                  "environments of phase '%s' must be a non-empty list of "
                  "{environment: {name, uid, params}}",
                  ph->name);
    ph->envs = rf_alloc(rf, envs->n, sizeof *ph->envs);
    if (!ph->envs)
        return nomem();
    int bad = BD_OK;
    for (size_t i = 0; i < envs->n; i++) {
        const bd_node *it = envs->items[i];
        bd_env_cfg *e = &ph->envs[ph->nenvs];
        int rc;
        if (it->kind != BD_NODE_MAP) {
            bad = note(rf, at(it, BD_EINVAL,
                              "each item of environments must be a map {environment: {name, uid, params}}"));
            continue;
        }
        if ((rc = bd_node_check_keys(it, item_keys, "an environments entry", diags(rf))))
            bad = note(rf, rc);
        const bd_node *en = bd_node_get(it, "environment");
        if (!en) {
            bad = note(rf, at(it, BD_EINVAL, "missing required key 'environment' in environments entry"));
            continue;
        }
        if (en->kind != BD_NODE_MAP) {
            bad = note(rf, at(en, BD_EINVAL, "environment must be a map {name, uid, params}"));
            continue;
        }
        int ok = 1;
        if ((rc = bd_node_check_keys(en, env_keys, "environment", diags(rf))))
            ok = !note(rf, rc);
        if ((rc = req_str(en, "name", "environment", &e->env.name))) {
            bad = note(rf, rc);
            continue;
        }
        /* the uid prefixes every sensor and actuator id ("<uid>.<name>"): no dots in it */
        const bd_node *un = bd_node_get(en, "uid");
        e->uid = NULL;
        if (un && (rc = bd_node_str(en, "uid", NULL, &e->uid))) {
            ok = !note(rf, rc);
        } else if (e->uid) {
            const char *why = name_problem(e->uid);
            if (!why && strchr(e->uid, '.'))
                why = "may not contain '.' (ids are written <uid>.<sensor>)";
            if (why)
                ok = !note(rf, at(un, BD_EINVAL, "environment uid '%.80s' %s", e->uid, why));
        }
        if ((rc = get_params(rf, en, "environment", &e->env.params)))
            ok = !note(rf, rc);
        e->env.node = en;
        for (int j = 0; ok && e->uid && j < ph->nenvs; j++)
            if (ph->envs[j].uid && strcmp(ph->envs[j].uid, e->uid) == 0)
                ok = !note(rf, at(en, BD_EINVAL,
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
        return at(ld, BD_EINVAL, "load of agent '%s' must be a map {experiment_run, phase, agent}",
                  a->name);
    int rc = bd_node_check_keys(ld, keys, "load", diags(rf));
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
        return run[0] ? BD_OK : at(bd_node_get(ld, "experiment_run"), BD_EINVAL, "load.experiment_run: must not be empty");
    }
    a->load_phase = phase ? phase : last_train_phase(rf, pi, a->load_agent);
    a->load_phase_given = phase != NULL;
    if (!a->load_phase)
        return at(ld, BD_EINVAL,
                  "load: no train phase before phase '%s' has agent '%s', so there is no "
                  "checkpoint to load; name one with load.phase, or an earlier run with "
                  "load.experiment_run",
                  ph->name, a->load_agent);
    int from = -1;
    for (int k = 0; k < pi; k++)
        if (strcmp(rf->phases[k].name, a->load_phase) == 0)
            from = k;
    if (from < 0)
        return at(bd_node_get(ld, "phase"), BD_EINVAL,
                  "load.phase: no phase '%s' before phase '%s' (to load from another run, add "
                  "load.experiment_run)", a->load_phase, ph->name);
    if (!bd_phase_agent(&rf->phases[from], a->load_agent))
        return at(bd_node_get(ld, "agent") ? bd_node_get(ld, "agent") : ld, BD_EINVAL,
                  "load.agent: phase '%s' has no agent '%s'", a->load_phase, a->load_agent);
    if (rf->phases[from].mode != BD_MODE_TRAIN)
        return at(bd_node_get(ld, "phase"), BD_EINVAL,
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
            return note(rf, at(r, BD_EINVAL, "record: expected true, false or a map {every, worlds, compression}, "
                               "got '%.80s'", r->text));
        a->record_steps = on;
        return BD_OK;
    }
    if (r->kind != BD_NODE_MAP)
        return note(rf, at(r, BD_EINVAL, "record: expected true, false or a map {every, worlds, compression}"));
    int bad = note(rf, bd_node_check_keys(r, keys, "record", diags(rf)));
    long long every = 1, worlds = 0;
    int rcs[] = {int_key(rf, r, "every", 1, 1, 1 << 30, "1 to 2^30 (every K-th step)", &every),
                 int_key(rf, r, "worlds", 1, 1, 1 << 30, "1 to 2^30 (the first N worlds)", &worlds)};
    for (size_t k = 0; k < 2; k++)
        bad = bad ? bad : rcs[k];
    a->record_every = (int)every;
    a->record_worlds = bd_node_get(r, "worlds") ? worlds : 0;
    int rc = bd_node_str(r, "compression", NULL, &a->record_compression);
    return bad ? bad : note(rf, rc);
}

/* One agent of phase pi into a; every problem is noted. BD_OK when it has none. */
static int parse_agent(bd_runfile *rf, int pi, const bd_node *an, bd_agent_cfg *a)
{
    static const char *const keys[] = {"name",    "brain",     "muscle", "objective",
                                       "sensors", "actuators", "load",   "record", NULL};
    bd_phase_cfg *ph = &rf->phases[pi];
    int bad = BD_OK, rc;
    a->node = an;
    if ((rc = bd_node_check_keys(an, keys, "agent", diags(rf))))
        bad = note(rf, rc);
    if ((rc = req_str(an, "name", "agent", &a->name)))
        return note(rf, rc);
    const bd_node *nn = bd_node_get(an, "name");
    const char *why = name_problem(a->name);
    if (why)
        bad = note(rf, at(nn, BD_EINVAL, "agent name '%.80s' %s (it names files and HDF5 groups)", a->name, why));
    for (int j = 0; j < ph->nagents; j++)
        if (strcmp(ph->agents[j].name, a->name) == 0)
            bad = note(rf, at(nn, BD_EINVAL, "duplicate agent '%s' in phase '%s' (first at %d:%d)", a->name,
                              ph->name, ph->agents[j].node->line, ph->agents[j].node->col));
    char in[96];
    const bd_node *b = bd_node_get(an, "brain");
    snprintf(in, sizeof in, "brain of agent '%.40s'", a->name);
    if (!b)
        bad = note(rf, at(an, BD_EINVAL, "missing required key 'brain' in agent '%s'", a->name));
    else if ((rc = parse_named(rf, b, in, &a->brain)))
        bad = note(rf, rc);
    const bd_node *mu = bd_node_get(an, "muscle");
    snprintf(in, sizeof in, "muscle of agent '%.40s'", a->name);
    if (!mu)
        bad = note(rf, at(an, BD_EINVAL, "missing required key 'muscle' in agent '%s'", a->name));
    else if ((rc = parse_named(rf, mu, in, &a->muscle)))
        bad = note(rf, rc);
    const bd_node *ob = bd_node_get(an, "objective");
    snprintf(in, sizeof in, "objective of agent '%.40s'", a->name);
    if (ob && !bd_node_is_null(ob)) {
        if ((rc = parse_named(rf, ob, in, &a->objective)))
            bad = note(rf, rc);
    } else {
        a->objective.name = rf_strdup(rf, "reward");
        a->objective.params = rf_empty_map(rf, an);
        a->objective.node = an;
        if (!a->objective.name || !a->objective.params)
            return note(rf, nomem());
    }
    snprintf(in, sizeof in, "agent '%.40s'", a->name);
    if ((rc = parse_strlist(rf, an, "sensors", in, &a->sensors, &a->nsensors)))
        bad = note(rf, rc);
    if ((rc = parse_strlist(rf, an, "actuators", in, &a->actuators, &a->nactuators)))
        bad = note(rf, rc);
    if ((rc = parse_load(rf, pi, a)))
        bad = note(rf, rc);
    if ((rc = parse_record(rf, a)))
        bad = rc;
    return bad;
}

static int parse_agents(bd_runfile *rf, int pi, const bd_node *m)
{
    bd_phase_cfg *ph = &rf->phases[pi];
    const bd_node *ags = bd_node_get(m, "agents");
    if (!ags)
        return at(m, BD_EINVAL, "missing required key 'agents' in phase '%s'", ph->name);
    if (ags->kind != BD_NODE_SEQ || ags->n == 0)
        return at(ags, BD_EINVAL, "agents of phase '%s' must be a non-empty list of agents",
                  ph->name);
    ph->agents = rf_alloc(rf, ags->n, sizeof *ph->agents);
    if (!ph->agents)
        return nomem();
    int bad = BD_OK;
    for (size_t i = 0; i < ags->n; i++) {
        const bd_node *an = ags->items[i];
        if (an->kind != BD_NODE_MAP) {
            bad = note(rf, at(an, BD_EINVAL, "each item of agents must be a map {name, brain, muscle, ...}"));
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
        ph->sim_name = rf_strdup(rf, "vanilla");
        return ph->sim_name ? BD_OK : nomem();
    }
    if (sim->kind != BD_NODE_MAP)
        return at(sim, BD_EINVAL, "simulation must be a map {name, conditions}");
    if ((rc = bd_node_check_keys(sim, keys, "simulation", diags(rf))))
        bad = note(rf, rc);
    if ((rc = bd_node_str(sim, "name", NULL, &ph->sim_name)))
        bad = note(rf, rc);
    else if (ph->sim_name && strcmp(ph->sim_name, "vanilla") != 0)
        bad = note(rf, at(bd_node_get(sim, "name"), BD_EINVAL,
                          "simulation.name: this bodhi has one simulation, 'vanilla' (every agent acts "
                          "each step), got '%s'", ph->sim_name));
    if (!(ph->sim_name = rf_strdup(rf, "vanilla")))
        return nomem();
    const bd_node *cs = bd_node_get(sim, "conditions");
    if (!cs || bd_node_is_null(cs))
        return bad;
    if (cs->kind != BD_NODE_SEQ)
        return note(rf, at(cs, BD_EINVAL, "conditions must be a list of {name, params}"));
    ph->conditions = rf_alloc(rf, cs->n, sizeof *ph->conditions);
    if (!ph->conditions)
        return nomem();
    for (size_t i = 0; i < cs->n; i++) {
        if ((rc = parse_named(rf, cs->items[i], "condition", &ph->conditions[ph->nconditions])))
            bad = note(rf, rc);
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
    if (!(ph->device = rf_strdup(rf, "auto")))
        return nomem();
    if (pc && bd_node_is_null(pc))
        pc = NULL;
    if (pc && pc->kind != BD_NODE_MAP)
        return note(rf, at(pc, BD_EINVAL, "phase_config must be a map {mode, worker, device, episodes, ...}"));
    if (pc && (rc = bd_node_check_keys(pc, keys, "phase_config", diags(rf))))
        bad = note(rf, rc);
    const char *mode;
    if ((rc = bd_node_str(pc, "mode", "train", &mode)))
        bad = note(rf, rc);
    else if (strcmp(mode, "train") == 0)
        ph->mode = BD_MODE_TRAIN;
    else if (strcmp(mode, "test") == 0)
        ph->mode = BD_MODE_TEST;
    else
        bad = note(rf, at(bd_node_get(pc, "mode"), BD_EINVAL, "mode: expected train or test, got '%s'", mode));
    const char *dev;
    if ((rc = bd_node_str(pc, "device", "auto", &dev)))
        bad = note(rf, rc);
    else if (strcmp(dev, "auto") && strcmp(dev, "cpu") && strcmp(dev, "cuda"))
        bad = note(rf, at(bd_node_get(pc, "device"), BD_EINVAL, "device: expected auto, cpu or cuda, got '%s'", dev));
    else
        ph->device = dev;
    long long worker = 1, remote = 0, restarts = 3, episodes = 0;
    int rcs[] = {
        int_key(rf, pc, "worker", 1, 1, 4096, "1 to 4096 worker processes", &worker),
        int_key(rf, pc, "remote_worker", 0, 0, 4096, "0 to 4096 muscles that join over TCP", &remote),
        int_key(rf, pc, "restarts", 3, 0, 1000, "0 to 1000 restarts of crashed or hung muscles per phase", &restarts),
        /* absent: 0, no episode count; written: at least 1 */
        int_key(rf, pc, "episodes", 1, 1, 1ll << 40, "1 to 2^40 episodes to end the phase after", &episodes),
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
static int parse_phase(bd_runfile *rf, int pi)
{
    static const char *const keys[] = {"environments", "agents", "simulation", "phase_config",
                                       NULL};
    bd_phase_cfg *ph = &rf->phases[pi];
    const bd_node *m = ph->node;
    char in[96];
    snprintf(in, sizeof in, "phase '%.60s'", ph->name);
    /* each part's problems are noted; noting one twice keeps it once */
    int rcs[] = {note(rf, bd_node_check_keys(m, keys, in, diags(rf))), note(rf, parse_phase_config(rf, ph, m)),
                 note(rf, parse_simulation(rf, ph, m)), note(rf, parse_envs(rf, ph, m)),
                 note(rf, parse_agents(rf, pi, m))};
    int bad = BD_OK;
    for (size_t k = 0; k < sizeof rcs / sizeof rcs[0]; k++)
        bad = bad ? bad : rcs[k];
    ph->invalid = bad != BD_OK;
    return bad;
}

/* ---- top level -------------------------------------------------------------------------- */

#define BD_MAX_SCHEDULE_VALUES 1000000 /* values in all phases, cascaded */

/* Checks the schedule's shape, then builds rf->effective with each phase merged onto the one
 * before it, and points rf->phases[i].name/node into it. */
static int build_schedule(bd_runfile *rf)
{
    const bd_node *root = rf->root;
    const bd_node *s = bd_node_get(root, "schedule");
    if (!s)
        return at(root, BD_EINVAL, "missing required key 'schedule' at the top level");
    if (s->kind != BD_NODE_SEQ || s->n == 0)
        return at(s, BD_EINVAL,
                  "schedule must be a non-empty list of phases, e.g. [- train: {...}]");
    int bad = BD_OK;
    for (size_t i = 0; i < s->n; i++) {
        const bd_node *it = s->items[i];
        if (it->kind != BD_NODE_MAP || it->n != 1) {
            bad = note(rf, at(it, BD_EINVAL,
                              "each schedule entry must be a map with exactly one key, the phase name "
                              "(e.g. '- train: {...}')"));
            continue;
        }
        const char *name = it->keys[0];
        const char *why = name_problem(name);
        if (why)
            bad = note(rf, at_key(it, 0, BD_EINVAL, "phase name '%.80s' %s (it names folders and HDF5 groups)",
                                  name, why));
        const bd_node *v = it->items[0];
        if (v->kind != BD_NODE_MAP && !bd_node_is_null(v))
            bad = note(rf, at(v, BD_EINVAL, "phase '%s' must be a map {environments, agents, ...}", name));
        for (size_t j = 0; j < i; j++)
            if (s->items[j]->kind == BD_NODE_MAP && s->items[j]->n == 1
                && strcmp(s->items[j]->keys[0], name) == 0)
                bad = note(rf, at_key(it, 0, BD_EINVAL, "duplicate phase name '%s' (first at %d:%d)",
                                      name, s->items[j]->key_line[0], s->items[j]->key_col[0]));
    }
    if (bad)
        return bad;
    rf->effective = bd_node_clone(root);
    if (!rf->effective)
        return nomem();
    bd_node *es = NULL;
    for (size_t i = 0; i < rf->effective->n; i++)
        if (strcmp(rf->effective->keys[i], "schedule") == 0)
            es = rf->effective->items[i];
    rf->phases = rf_alloc(rf, es->n, sizeof *rf->phases);
    if (!rf->phases)
        return nomem();
    const bd_node *prev = NULL;
    size_t values = 0;
    for (size_t i = 0; i < es->n; i++) {
        bd_node *it = es->items[i];
        bd_node *v = it->items[0];
        bd_node *merged;
        /* each phase is a whole copy of the one before it, with its own keys merged in:
         * many large phases multiply (what run.yml writes out, and each process reads) */
        if (prev && (values += bd_node_count(prev)) > BD_MAX_SCHEDULE_VALUES)
            return at_key(it, 0, BD_EINVAL, "the schedule, with each phase merged onto the one before it, makes more "
                          "than %d values by phase '%.80s'; write fewer or smaller phases", BD_MAX_SCHEDULE_VALUES,
                          it->keys[0]);
        if (bd_node_is_null(v))
            merged = prev ? bd_node_merge(prev, NULL)
                          : bd_node_new(BD_NODE_MAP, v->file, v->line, v->col);
        else
            merged = prev ? bd_node_merge(prev, v) : NULL;
        if (merged) {
            bd_node_destroy(v);
            it->items[0] = merged;
        } else if (prev || bd_node_is_null(v)) {
            return nomem();
        }
        rf->phases[i].name = it->keys[0];
        rf->phases[i].node = it->items[0];
        prev = it->items[0];
    }
    rf->nphases = (int)es->n;
    return BD_OK;
}

static int parse_root(bd_runfile *rf)
{
    static const char *const keys[] = {"uid", "seed", "version", "schedule", "run_config", NULL};
    const bd_node *root = rf->root;
    int rc, bad = BD_OK;
    if (bd_node_is_null(root) || (root->kind == BD_NODE_MAP && root->n == 0))
        return note(rf, at(root, BD_EINVAL, "the file is empty; a run file is a map with uid, seed, version, "
                           "schedule and run_config (docs/run-file.md)"));
    if (root->kind != BD_NODE_MAP)
        return note(rf, at(root, BD_EINVAL,
                           "a run file must be a map with uid, seed, version, schedule and run_config"));
    if ((rc = bd_node_check_keys(root, keys, "the top level", diags(rf))))
        bad = note(rf, rc);
    long long v;
    if ((rc = bd_node_int(root, "version", 1, &v)))
        bad = note(rf, rc);
    else if (v != 1)
        bad = note(rf, at(bd_node_get(root, "version"), BD_EINVAL,
                          "version: this bodhi reads run file version 1, got %lld", v));
    rf->version = 1;
    int uid_ok = 0;
    if ((rc = req_str(root, "uid", "the top level", &rf->uid))) {
        bad = note(rf, rc);
    } else {
        const char *why = name_problem(rf->uid);
        if (why)
            bad = note(rf, at(bd_node_get(root, "uid"), BD_EINVAL, "uid '%.80s' %s (it names the run folder)",
                              rf->uid, why));
        uid_ok = !why;
    }
    if (!uid_ok)
        rf->uid = NULL; /* NULL unless it can name a folder */
    if ((rc = bd_node_u64(root, "seed", 0, &rf->seed)))
        bad = note(rf, rc);
    const bd_node *rc_node = bd_node_get(root, "run_config");
    if (rc_node && rc_node->kind != BD_NODE_MAP && !bd_node_is_null(rc_node))
        bad = note(rf, at(rc_node, BD_EINVAL, "run_config must be a map"));
    if ((rc = build_schedule(rf)))
        return note(rf, rc);
    /* strings for the caller point into the effective tree */
    if (uid_ok)
        rf->uid = bd_node_get(rf->effective, "uid")->text;
    for (int i = 0; i < rf->nphases; i++)
        if ((rc = parse_phase(rf, i)))
            bad = rc;
    return bad;
}

int bd_runfile_parse_all(const char *text, const char *name, const bd_runfile_overrides *ov,
                         bd_diags *d, bd_runfile **out)
{
    if (!out || !d)
        return bd_seterr(BD_EINVAL, "bd_runfile_parse_all: NULL argument");
    *out = NULL;
    if (!text)
        return bd_diag(d, bd_seterr(BD_EINVAL, "bd_runfile_parse: text is NULL"));
    bd_runfile *rf = calloc(1, sizeof *rf);
    if (!rf)
        return bd_diag(d, nomem());
    rf->priv = calloc(1, sizeof(rf_priv));
    rf->path = strdup(name ? name : "<run file>");
    rf->text = strdup(text);
    int rc;
    if (!rf->priv || !rf->path || !rf->text) {
        rc = bd_diag(d, nomem());
        goto fail;
    }
    ((rf_priv *)rf->priv)->d = d;
    if ((rc = bd_yaml_parse(rf->text, strlen(rf->text), rf->path, &rf->root))) {
        bd_diag(d, rc);
        goto fail;
    }
    /* --seed goes through the same checks as the file's seed (a file that is not a map
     * is reported as such by parse_root) */
    if (ov && ov->has_seed && rf->root->kind == BD_NODE_MAP && rf->root->n > 0) {
        char seed[32];
        snprintf(seed, sizeof seed, "%llu", (unsigned long long)ov->seed);
        if ((rc = bd_node_set_scalar(rf->root, "seed", seed, 0))) {
            bd_diag(d, rc);
            goto fail;
        }
    }
    rc = parse_root(rf);
    ((rf_priv *)rf->priv)->d = NULL;
    *out = rf;
    return rc;
fail:
    bd_runfile_destroy(rf);
    return rc;
}

int bd_runfile_parse(const char *text, const char *name, bd_runfile **out)
{
    if (!out)
        return bd_seterr(BD_EINVAL, "bd_runfile_parse: out is NULL");
    bd_diags d = BD_DIAGS_INIT;
    bd_runfile *rf = NULL;
    bd_runfile_parse_all(text, name, NULL, &d, &rf);
    int rc = bd_diags_finish(&d);
    if (rc != BD_OK) {
        bd_runfile_destroy(rf);
        rf = NULL;
    }
    *out = rf;
    return rc;
}

int bd_runfile_load(const char *path, bd_runfile **out)
{
    if (!out || !path)
        return bd_seterr(BD_EINVAL, "bd_runfile_load: NULL argument");
    *out = NULL;
    char *text = NULL;
    int rc = bd_read_file(path, &text, NULL);
    if (rc)
        return rc;
    rc = bd_runfile_parse(text, path, out);
    free(text);
    return rc;
}

int bd_runfile_load_checked(const char *path, const char *sha256_hex, bd_runfile **out)
{
    if (!sha256_hex)
        return bd_runfile_load(path, out);
    *out = NULL;
    char *text = NULL;
    size_t len = 0;
    int rc = bd_read_file(path, &text, &len);
    if (rc)
        return rc;
    char got[65];
    bd_sha256_hex(text, len, got);
    if (strcmp(got, sha256_hex) != 0) {
        free(text);
        return bd_seterr(BD_EINVAL, "%s is not the run file this run started with (SHA-256 %.16s..., the "
                         "conductor's %.16s...): it was changed after the run began; refused", path, got,
                         sha256_hex);
    }
    rc = bd_runfile_parse(text, path, out);
    free(text);
    return rc;
}

void bd_runfile_destroy(bd_runfile *rf)
{
    if (!rf)
        return;
    rf_priv *p = rf->priv;
    if (p) {
        for (size_t i = 0; i < p->n; i++)
            free(p->blocks[i]);
        for (size_t i = 0; i < p->nn; i++)
            bd_node_destroy(p->nodes[i]);
        free(p->blocks);
        free(p->nodes);
        free(p);
    }
    bd_node_destroy(rf->effective);
    bd_node_destroy(rf->root);
    free(rf->text);
    free(rf->path);
    free(rf);
}

int bd_runfile_write_effective(const bd_runfile *rf, const char *path)
{
    if (!rf || !rf->effective || !path)
        return bd_seterr(BD_EINVAL, "bd_runfile_write_effective: NULL argument");
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return nomem();
    fputs("# bodhi effective run file: every phase written out in full, after cascading\n", f);
    int rc = bd_node_emit(rf->effective, f);
    if (fclose(f) != 0 && !rc)
        rc = nomem();
    if (!rc)
        rc = bd_write_file(path, buf, len);
    free(buf);
    return rc;
}

/* ---- lookups ---------------------------------------------------------------------------- */

int bd_runfile_phase_index(const bd_runfile *rf, const char *name)
{
    if (!rf || !name)
        return -1;
    for (int i = 0; i < rf->nphases; i++)
        if (strcmp(rf->phases[i].name, name) == 0)
            return i;
    return -1;
}

const bd_phase_cfg *bd_runfile_phase(const bd_runfile *rf, const char *name)
{
    int i = bd_runfile_phase_index(rf, name);
    return i < 0 ? NULL : &rf->phases[i];
}

const bd_agent_cfg *bd_phase_agent(const bd_phase_cfg *ph, const char *name)
{
    if (!ph || !name)
        return NULL;
    for (int i = 0; i < ph->nagents; i++)
        if (strcmp(ph->agents[i].name, name) == 0)
            return &ph->agents[i];
    return NULL;
}
