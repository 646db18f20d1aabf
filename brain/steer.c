/* steer.c: `bodhi set`'s changes, read by the run file's rules (see steer.h). */
#include "brain/steer.h"

#include <stdio.h>
#include <string.h>

#include "brain/learner.h"
#include "common/util.h"
#include "config/diag.h"

/* Where a change is "written": a problem the parsers name it at loses that prefix. */
static const char bd_steer_file[] = "bodhi set";
#define BD_STEER_WHERE "bodhi set:1:1: "

static const char *const bd_steer_caps[] = {"max_steps", "episodes", NULL};

int bd_steer_split(const char *text, char *agent, char *key, const char **value)
{
    const size_t n = strnlen(text, BD_STEER_MAX_TEXT);
    if (n >= BD_STEER_MAX_TEXT)
        return bd_seterr(BD_EINVAL, "'%.40s...': longer than %d bytes", text, BD_STEER_MAX_TEXT - 1);
    const char *eq = strchr(text, '=');
    const char *dot = NULL;
    for (const char *c = text; eq && c < eq; c++)
        if (*c == '.')
            dot = c;
    if (!eq || !dot || dot == text || dot + 1 == eq)
        return bd_seterr(BD_EINVAL, "'%s': expected AGENT.PARAM=VALUE (e.g. balancer.learning_rate=3e-4, "
                         "phase.max_steps=500000)", text);
    for (const char *c = text; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            return bd_seterr(BD_EINVAL, "'%.*s': a control character in it", (int)(c - text), text);
    if (!eq[1])
        return bd_seterr(BD_EINVAL, "'%s': no value after '='", text);
    memcpy(agent, text, (size_t)(dot - text));
    agent[dot - text] = '\0';
    memcpy(key, dot + 1, (size_t)(eq - dot - 1));
    key[eq - dot - 1] = '\0';
    *value = eq + 1;
    return BD_OK;
}

/* The keys agent ap of p can change: its learner's, in a train phase (NULL: none). */
static const char *const *bd_steer_keys(const bd_phase_plan *p, const bd_agent_plan *ap)
{
    if (p->ph->mode != BD_MODE_TRAIN || !ap->brain || !ap->brain->ops || ap->random)
        return NULL;
    return bd_learner_of(ap->brain)->steer ? bd_learner_of(ap->brain)->steer_keys : NULL;
}

void bd_steer_can(const bd_phase_plan *p, char *buf, size_t len)
{
    size_t n = 0;
    buf[0] = '\0';
    for (int a = 0; a < p->nagents; a++) {
        const char *const *k = bd_steer_keys(p, &p->agents[a]);
        for (; k && *k && n < len; k++)
            n += (size_t)snprintf(buf + n, len - n, "%s.%s, ", p->agents[a].cfg->name, *k);
    }
    for (const char *const *k = bd_steer_caps; *k && n < len; k++)
        n += (size_t)snprintf(buf + n, len - n, "%s%s.%s", k == bd_steer_caps ? "" : ", ", BD_STEER_PHASE, *k);
}

static int bd_steer_in(const char *const *keys, const char *key)
{
    for (; keys && *keys; keys++)
        if (strcmp(*keys, key) == 0)
            return 1;
    return 0;
}

int bd_steer_target(const bd_phase_plan *p, const char *agent, const char *key, int *index)
{
    char can[2048];
    int a = 0;
    while (a < p->nagents && strcmp(p->agents[a].cfg->name, agent) != 0)
        a++;
    if (a == p->nagents && strcmp(agent, BD_STEER_PHASE) == 0) { /* an agent named "phase" wins */
        *index = -1;
        if (bd_steer_in(bd_steer_caps, key))
            return BD_OK;
        bd_steer_can(p, can, sizeof can);
        return bd_seterr(BD_EINVAL, "'%s' is no cap of a phase; what can change in phase '%s': %s", key,
                         p->ph->name, can);
    }
    if (a == p->nagents) {
        size_t n = 0;
        for (int i = 0; i < p->nagents && n < sizeof can; i++)
            n += (size_t)snprintf(can + n, sizeof can - n, "%s%s", i ? ", " : "", p->agents[i].cfg->name);
        return bd_seterr(BD_ENOTFOUND, "no agent '%s' in phase '%s' (its agents: %s; the phase's caps: %s.max_steps, "
                         "%s.episodes)", agent, p->ph->name, can, BD_STEER_PHASE, BD_STEER_PHASE);
    }
    *index = a;
    const bd_agent_plan *ap = &p->agents[a];
    if (bd_steer_in(bd_steer_keys(p, ap), key))
        return BD_OK;
    bd_steer_can(p, can, sizeof can);
    char reason[192];
    if (p->ph->mode != BD_MODE_TRAIN)
        snprintf(reason, sizeof reason, ": phase '%s' does not learn", p->ph->name);
    else if (!bd_steer_keys(p, ap))
        snprintf(reason, sizeof reason, ": its brain (%s) takes no change while it learns", ap->cfg->brain.name);
    else
        snprintf(reason, sizeof reason, " while it learns (brain %s)", ap->cfg->brain.name);
    return bd_seterr(BD_EINVAL, "'%s' of agent '%s' cannot change%s; what can change in phase '%s': %s", key, agent,
                     reason, p->ph->name, can);
}

/* map[key] = value as the user wrote it (a plain scalar), "written" at bd_steer_file. */
static int bd_steer_put(bd_node *map, const char *key, const char *value)
{
    int rc = bd_node_set_scalar(map, key, value, 0);
    for (size_t k = 0; rc == BD_OK && k < map->n; k++)
        if (strcmp(map->keys[k], key) == 0) {
            map->items[k]->file = bd_steer_file;
            map->items[k]->line = map->items[k]->col = 1;
        }
    return rc;
}

/* The problems of d as one error, without the position of the change. */
static int bd_steer_problem(bd_diags *d)
{
    int rc = bd_diags_finish(d);
    if (rc == BD_OK)
        return rc;
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", bd_lasterr());
    const char *m = strncmp(msg, BD_STEER_WHERE, strlen(BD_STEER_WHERE)) == 0 ? msg + strlen(BD_STEER_WHERE) : msg;
    char *nl = strchr(m, '\n');
    if (nl)
        *nl = '\0';
    return bd_seterr(BD_EINVAL, "%s", m);
}

static int bd_steer_parse(const bd_node *params, const bd_phase_plan *p, const bd_agent_plan *ap, void **out)
{
    bd_diags d = BD_DIAGS_INIT;
    *out = NULL;
    if (!ap->brain->parse)
        return BD_OK;
    ap->brain->parse(params, p, ap, &d, out);
    int rc = bd_steer_problem(&d);
    if (rc != BD_OK && *out && ap->brain->free_params)
        ap->brain->free_params(*out);
    if (rc != BD_OK)
        *out = NULL;
    return rc;
}

int bd_steer_params(const bd_steer *s, const bd_phase_plan *p, int index, void **out)
{
    const bd_agent_plan *ap = &p->agents[index];
    return bd_steer_parse(s->params ? s->params : ap->cfg->brain.params, p, ap, out);
}

int bd_steer_apply(bd_steer *s, bd_phase_plan *p, int index, const char *key, const char *value, void **out)
{
    *out = NULL;
    if (index < 0) {
        bd_node *m = bd_node_new(BD_NODE_MAP, bd_steer_file, 1, 1);
        int rc = m ? bd_steer_put(m, key, value) : bd_seterr(BD_ENOMEM, "out of memory");
        if (rc == BD_OK)
            rc = bd_plan_set_cap(p, m, key);
        bd_node_destroy(m);
        if (rc != BD_OK) {
            char msg[1024];
            snprintf(msg, sizeof msg, "%s", bd_lasterr());
            const size_t w = strlen(BD_STEER_WHERE);
            rc = bd_seterr(rc, "%s", strncmp(msg, BD_STEER_WHERE, w) == 0 ? msg + w : msg);
        }
        return rc;
    }
    const bd_agent_plan *ap = &p->agents[index];
    const bd_node *base = ap->cfg->brain.params;
    bd_node *next = s->params ? bd_node_clone(s->params)
                    : base    ? bd_node_clone(base)
                              : bd_node_new(BD_NODE_MAP, bd_steer_file, 1, 1);
    int rc = next ? bd_steer_put(next, key, value) : bd_seterr(BD_ENOMEM, "out of memory");
    if (rc == BD_OK)
        rc = bd_steer_parse(next, p, ap, out);
    if (rc != BD_OK) {
        bd_node_destroy(next);
        return rc;
    }
    bd_node_destroy(s->params);
    s->params = next;
    return BD_OK;
}

void bd_steer_fini(bd_steer *s)
{
    if (!s)
        return;
    bd_node_destroy(s->params);
    s->params = NULL;
}
