/* fsm.c: the rule-based muscle's params read into a bd_fsm (muscle/fsm.h), with every
 * problem named at its line in the run file. Sensor and actuator names are the agent's
 * ids as the run file lists them ("tag.runner.n0_dist"), or their last part ("n0_dist")
 * when that is unambiguous.
 *   params:
 *     start: wander                  # optional: the first state written
 *     states:
 *       wander:
 *         action: {tag.runner.accel: 0.5, tag.runner.turn: 0.2}
 *         transitions:
 *           - {to: flee, when: "n0_tagger == 1 and n0_dist < 0.15", probability: 0.9}
 *       flee:
 *         action: {accel: 1}
 *         steer: {away: [n0_dx, n0_dy], turn: turn, gain: 2}
 *         transitions:
 *           - {to: wander, when: "n0_dist > 0.3 or n0_present == 0"}
 */
#include "muscle/fsm.h"

#include <float.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "muscle/fsm_parse.h"

static const char *bd_at(const bd_node *n, char *buf, size_t len)
{
    return bd_node_where(n, buf, len);
}

/* The index among ids (count) of `name`: the whole id, or its part after the last dot
 * when one id alone ends so. -1 when none, -2 when ambiguous. */
static int bd_fsm_id(char *const *ids, int count, const char *name)
{
    for (int k = 0; k < count; k++)
        if (strcmp(ids[k], name) == 0)
            return k;
    int found = -1;
    for (int k = 0; k < count; k++) {
        const char *dot = strrchr(ids[k], '.');
        if (dot && strcmp(dot + 1, name) == 0) {
            if (found >= 0)
                return -2;
            found = k;
        }
    }
    return found;
}

/* The id among ids (count of them) whose name (the part after its last '.') is nearest to
 * name: a likely misspelling (config/yamltree.h: bd_nearest), else the longest name that
 * name begins with or that begins with name (n0_distance: n0_dist); NULL when none is. */
static const char *bd_fsm_near(char *const *ids, int count, const char *name)
{
    const char *shorts[BD_MAX_CHANNELS] = {0};
    int n = count < BD_MAX_CHANNELS ? count : BD_MAX_CHANNELS;
    for (int k = 0; k < n; k++) {
        const char *dot = strrchr(ids[k], '.');
        shorts[k] = dot ? dot + 1 : ids[k];
    }
    const char *near = bd_nearest(name, shorts, n);
    size_t best = 0, nl = strlen(name);
    for (int k = 0; !near && k < n; k++) {
        size_t l = strlen(shorts[k]), m = l < nl ? l : nl;
        if (m >= 3 && m > best && strncmp(shorts[k], name, m) == 0) {
            best = m;
            near = shorts[k];
        }
    }
    return near;
}

static int bd_fsm_sensor(const bd_agent_plan *ap, const char *name, const bd_node *at, int *out)
{
    char w[256];
    int k = bd_fsm_id(ap->sensor_ids, ap->nsens, name);
    if (k >= 0) {
        *out = k;
        return BD_OK;
    }
    const char *near = k == -1 ? bd_fsm_near(ap->sensor_ids, ap->nsens, name) : NULL;
    if (near)
        return bd_seterr(BD_EINVAL, "%s: '%s' is not a sensor of agent '%s'; did you mean '%s'?", bd_at(at, w, sizeof w),
                         name, ap->cfg->name, near);
    return bd_seterr(BD_EINVAL, "%s: '%s' is %s of agent '%s' (its sensors: %s%s)", bd_at(at, w, sizeof w), name,
                     k == -2 ? "more than one sensor" : "not a sensor", ap->cfg->name, ap->sensor_ids[0],
                     ap->nsens > 1 ? ", ..." : "");
}

static int bd_fsm_actuator(const bd_agent_plan *ap, const char *name, const bd_node *at, int *out)
{
    char w[256];
    int k = bd_fsm_id(ap->actuator_ids, ap->nact, name);
    if (k >= 0) {
        *out = k;
        return BD_OK;
    }
    const char *near = k == -1 ? bd_fsm_near(ap->actuator_ids, ap->nact, name) : NULL;
    if (near)
        return bd_seterr(BD_EINVAL, "%s: '%s' is not an actuator of agent '%s'; did you mean '%s'?",
                         bd_at(at, w, sizeof w), name, ap->cfg->name, near);
    char known[512] = "";
    for (int j = 0; j < ap->nact; j++) {
        size_t l = strlen(known);
        snprintf(known + l, sizeof known - l, "%s%s", j ? ", " : "", ap->actuator_ids[j]);
    }
    return bd_seterr(BD_EINVAL, "%s: '%s' is %s of agent '%s' (its actuators: %s)", bd_at(at, w, sizeof w), name,
                     k == -2 ? "more than one actuator" : "not an actuator", ap->cfg->name, known);
}

/* The values of the agent's actuator u when it is discrete, else 0. */
static int bd_fsm_discrete(const bd_agent_plan *ap, int u)
{
    if (!ap->env || !ap->env->desc || !ap->act_cols)
        return 0;
    const bd_env_desc *e = ap->env->desc;
    const bd_channel *acts = e->ngroups ? e->groups[ap->group].actuators : e->actuators;
    return acts[ap->act_cols[u]].n;
}

/* A number scalar that fits a float. */
static int bd_fsm_number(const bd_node *n, const char *what, float *out)
{
    char w[256];
    double v;
    if (!n || n->kind != BD_NODE_SCALAR || bd_node_as_double(n, &v) != BD_OK || !(fabs(v) <= FLT_MAX))
        return bd_seterr(BD_EINVAL, "%s: %s: expected a number (a float: at most %g)", bd_at(n, w, sizeof w), what,
                         (double)FLT_MAX);
    *out = (float)v;
    return BD_OK;
}

/* "a < 1 and b >= 2 or c == 0" into f->cmps from f->ncmps on; *count set. */
static int bd_fsm_condition(bd_fsm *f, const bd_agent_plan *ap, const bd_node *n, int *count)
{
    static const char *const ops[] = {"<", "<=", ">", ">=", "==", "!="};
    char w[256];
    bd_at(n, w, sizeof w);
    if (n->kind != BD_NODE_SCALAR || !n->text[0])
        return bd_seterr(BD_EINVAL, "%s: when: expected a condition such as \"n0_dist < 0.2 and n0_tagger == 1\"",
                         w);
    char *text = bd_strdup(n->text), *save = NULL;
    if (!text)
        return bd_seterr(BD_ENOMEM, "out of memory");
    int rc = BD_OK, k = 0, first = f->ncmps;
    const char *tok[3];
    for (char *t = strtok_r(text, " \t\n", &save); t && rc == BD_OK; t = strtok_r(NULL, " \t\n", &save)) {
        if (k == 3) { /* a comparison is done: and/or, then the next */
            int is_or = strcmp(t, "or") == 0;
            if (!is_or && strcmp(t, "and") != 0) {
                rc = bd_seterr(BD_EINVAL, "%s: when: expected 'and' or 'or' after '%s %s %s', got '%s'", w, tok[0],
                               tok[1], tok[2], t);
                break;
            }
            f->cmps[f->ncmps - 1].ends_clause = is_or;
            k = 0;
            continue;
        }
        tok[k++] = t;
        if (k < 3)
            continue;
        if (f->ncmps >= BD_FSM_CMPS) {
            rc = bd_seterr(BD_EINVAL, "%s: when: the machine has more than %d comparisons", w, BD_FSM_CMPS);
            break;
        }
        bd_fsm_cmp *c = &f->cmps[f->ncmps];
        c->op = -1;
        for (int o = 0; o < 6; o++)
            if (strcmp(tok[1], ops[o]) == 0)
                c->op = o;
        char *end = NULL;
        double v = strtod(tok[2], &end);
        if (c->op < 0)
            rc = bd_seterr(BD_EINVAL, "%s: when: '%s' is not a comparison (<, <=, >, >=, ==, !=)", w, tok[1]);
        else if (!end || *end || end == tok[2] || !(fabs(v) <= FLT_MAX))
            rc = bd_seterr(BD_EINVAL, "%s: when: '%s' is not a number (a comparison is SENSOR OP NUMBER)", w,
                           tok[2]);
        else
            rc = bd_fsm_sensor(ap, tok[0], n, &c->sensor);
        c->value = (float)v;
        c->ends_clause = 0;
        f->ncmps++;
    }
    if (rc == BD_OK && k != 3)
        rc = bd_seterr(BD_EINVAL, "%s: when: '%s' ends %s (a comparison is SENSOR OP NUMBER with spaces between, "
                       "joined by and/or: \"n0_dist < 0.2 and n0_tagger == 1\")", w, n->text,
                       k == 0 ? "with 'and' or 'or'" : "in the middle of a comparison");
    if (rc == BD_OK)
        f->cmps[f->ncmps - 1].ends_clause = 1;
    *count = f->ncmps - first;
    free(text);
    return rc;
}

static int bd_fsm_state_index(const bd_node *states, const char *name)
{
    for (size_t k = 0; k < states->n; k++)
        if (strcmp(states->keys[k], name) == 0)
            return (int)k;
    return -1;
}

/* State s (its map m): action, steer, transitions. Problems into d. */
static void bd_fsm_read_state(bd_fsm *f, const bd_agent_plan *ap, const bd_node *states, int s, bd_diags *d)
{
    static const char *const keys[] = {"action", "steer", "transitions", NULL};
    static const char *const steer_keys[] = {"toward", "away", "turn", "gain", NULL};
    static const char *const trans_keys[] = {"to", "when", "probability", NULL};
    char w[256];
    const bd_node *m = states->items[s];
    bd_fsm_state *st = &f->states[s];
    if (m->kind != BD_NODE_MAP) {
        bd_diag(d, bd_seterr(BD_EINVAL, "%s: state '%s': expected a map (action, steer, transitions)",
                             bd_at(m, w, sizeof w), states->keys[s]));
        return;
    }
    bd_node_check_keys(m, keys, "a state", d);
    const bd_node *act = bd_node_get(m, "action");
    if (act && act->kind != BD_NODE_MAP)
        bd_diag(d, bd_seterr(BD_EINVAL, "%s: action: expected a map of actuator: setpoint", bd_at(act, w, sizeof w)));
    for (size_t k = 0; act && act->kind == BD_NODE_MAP && k < act->n; k++) {
        int u, rc = bd_fsm_actuator(ap, act->keys[k], act->items[k], &u);
        if (rc == BD_OK)
            rc = bd_fsm_number(act->items[k], act->keys[k], &st->set[u]);
        int n = rc == BD_OK ? bd_fsm_discrete(ap, u) : 0;
        if (n > 0 && !(st->set[u] >= 0 && st->set[u] < n && st->set[u] == floorf(st->set[u])))
            rc = bd_seterr(BD_EINVAL, "%s: %s: a discrete actuator of %d values takes 0 to %d, got %g",
                           bd_at(act->items[k], w, sizeof w), act->keys[k], n, n - 1, (double)st->set[u]);
        if (rc != BD_OK)
            bd_diag(d, rc);
    }
    const bd_node *steer = bd_node_get(m, "steer");
    if (steer && steer->kind != BD_NODE_MAP)
        bd_diag(d, bd_seterr(BD_EINVAL, "%s: steer: expected {toward or away: [X, Y], turn: ACTUATOR, gain: G}",
                             bd_at(steer, w, sizeof w)));
    if (steer && steer->kind == BD_NODE_MAP) {
        bd_node_check_keys(steer, steer_keys, "steer", d);
        const bd_node *to = bd_node_get(steer, "toward"), *away = bd_node_get(steer, "away");
        const bd_node *pt = to ? to : away, *turn = bd_node_get(steer, "turn");
        st->gain = 2.0f;
        int rc = BD_OK;
        if ((to != NULL) == (away != NULL))
            rc = bd_seterr(BD_EINVAL, "%s: steer: give one of toward or away (two sensors: the point's x and y in "
                           "the agent's frame)", bd_at(steer, w, sizeof w));
        else if (pt->kind != BD_NODE_SEQ || pt->n != 2 || pt->items[0]->kind != BD_NODE_SCALAR
                 || pt->items[1]->kind != BD_NODE_SCALAR)
            rc = bd_seterr(BD_EINVAL, "%s: steer: %s: expected two sensors [X, Y]", bd_at(pt, w, sizeof w),
                           to ? "toward" : "away");
        else if (!turn || turn->kind != BD_NODE_SCALAR)
            rc = bd_seterr(BD_EINVAL, "%s: steer: needs turn: the actuator that turns", bd_at(steer, w, sizeof w));
        if (rc == BD_OK)
            rc = bd_fsm_sensor(ap, pt->items[0]->text, pt->items[0], &st->sx);
        if (rc == BD_OK)
            rc = bd_fsm_sensor(ap, pt->items[1]->text, pt->items[1], &st->sy);
        if (rc == BD_OK)
            rc = bd_fsm_actuator(ap, turn->text, turn, &st->turn);
        if (rc == BD_OK && bd_fsm_discrete(ap, st->turn) > 0)
            rc = bd_seterr(BD_EINVAL, "%s: steer: turn: '%s' is discrete; steering sets a continuous (Box) actuator",
                           bd_at(turn, w, sizeof w), turn->text);
        if (rc == BD_OK && bd_node_get(steer, "gain"))
            rc = bd_fsm_number(bd_node_get(steer, "gain"), "gain", &st->gain);
        if (rc == BD_OK)
            st->steer = to ? 1 : -1;
        else
            bd_diag(d, rc);
    }
    const bd_node *tr = bd_node_get(m, "transitions");
    if (tr && tr->kind != BD_NODE_SEQ) {
        bd_diag(d, bd_seterr(BD_EINVAL, "%s: transitions: expected a list of {to, when, probability}",
                             bd_at(tr, w, sizeof w)));
        return;
    }
    for (size_t k = 0; tr && k < tr->n; k++) {
        const bd_node *t = tr->items[k];
        bd_at(t, w, sizeof w);
        if (t->kind != BD_NODE_MAP) {
            bd_diag(d, bd_seterr(BD_EINVAL, "%s: a transition: expected a map {to, when, probability}", w));
            continue;
        }
        if (f->ntrans >= BD_FSM_TRANS) {
            bd_diag(d, bd_seterr(BD_EINVAL, "%s: the machine has more than %d transitions", w, BD_FSM_TRANS));
            return;
        }
        bd_node_check_keys(t, trans_keys, "a transition", d);
        bd_fsm_trans *x = &f->trans[f->ntrans];
        x->from = s;
        x->prob = 1.0f;
        x->first = f->ncmps;
        const bd_node *to = bd_node_get(t, "to"), *when = bd_node_get(t, "when"), *p = bd_node_get(t, "probability");
        /* to, when and probability are checked each on its own: every problem is said */
        int bad = 0, rc;
        if (!to || to->kind != BD_NODE_SCALAR)
            bad = bd_diag(d, bd_seterr(BD_EINVAL, "%s: a transition needs to: the state it goes to", w));
        else if ((x->to = bd_fsm_state_index(states, to->text)) < 0)
            bad = bd_diag(d, bd_seterr(BD_EINVAL, "%s: to: no state '%s'", bd_at(to, w, sizeof w), to->text));
        if (when && (rc = bd_fsm_condition(f, ap, when, &x->count)) != BD_OK)
            bad = bd_diag(d, rc);
        if (p && (rc = bd_fsm_number(p, "probability", &x->prob)) != BD_OK)
            bad = bd_diag(d, rc);
        else if (p && !(x->prob > 0.0f && x->prob <= 1.0f))
            bad = bd_diag(d, bd_seterr(BD_EINVAL, "%s: probability: expected more than 0 and at most 1, got %g",
                                       bd_at(p, w, sizeof w), (double)x->prob));
        if (!bad)
            f->ntrans++;
        else
            f->ncmps = x->first; /* a condition read before a problem is dropped with it */
    }
}

int bd_fsm_parse(const bd_node *params, const bd_agent_plan *ap, bd_diags *d, bd_fsm *f)
{
    static const char *const keys[] = {"start", "states", NULL};
    char w[256];
    memset(f, 0, sizeof *f);
    long before = d->n + d->more;
    bd_node_check_keys(params, keys, "the fsm muscle's params", d);
    const bd_node *states = bd_node_get(params, "states");
    if (!states || states->kind != BD_NODE_MAP || states->n == 0)
        return bd_diag(d, bd_seterr(BD_EINVAL, "%s: the fsm muscle needs params.states: a map of state name: "
                                    "{action, steer, transitions}", bd_at(states ? states : params, w, sizeof w)));
    if (states->n > BD_FSM_STATES)
        return bd_diag(d, bd_seterr(BD_EINVAL, "%s: %zu states; the fsm muscle takes at most %d",
                                    bd_at(states, w, sizeof w), states->n, BD_FSM_STATES));
    if (ap->nact > BD_MAX_ACTUATORS)
        return bd_diag(d, bd_seterr(BD_EINVAL, "%s: agent '%s' has %d actuators, at most %d",
                                    bd_at(ap->cfg->node, w, sizeof w), ap->cfg->name, ap->nact, BD_MAX_ACTUATORS));
    f->nstates = (int)states->n;
    const bd_node *start = bd_node_get(params, "start");
    if (start && (start->kind != BD_NODE_SCALAR || (f->start = bd_fsm_state_index(states, start->text)) < 0)) {
        f->start = 0;
        bd_diag(d, bd_seterr(BD_EINVAL, "%s: start: no state '%s'", bd_at(start, w, sizeof w),
                             start->kind == BD_NODE_SCALAR ? start->text : "(a list or map)"));
    }
    for (int s = 0; s < f->nstates; s++)
        bd_fsm_read_state(f, ap, states, s, d);
    return d->n + d->more == before ? BD_OK : (d->rc ? d->rc : BD_EINVAL);
}
