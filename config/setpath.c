/* setpath.c: one value of a run file's effective tree set by its path (setpath.h). */
#include <stdlib.h>
#include <string.h>

#include "config/setpath.h"

static const char *const phase_keys[] = {"environments", "agents", "simulation", "phase_config", NULL};
static const char *const agent_keys[] = {"brain", "muscle", "objective", "sensors", "actuators", "load", "record", NULL};

static int in_list(const char *word, size_t n, const char *const *list)
{
    for (int i = 0; list[i]; i++)
        if (strlen(list[i]) == n && strncmp(list[i], word, n) == 0)
            return 1;
    return 0;
}

/* The item's name in a list: its `name`, or for an `- environment:` entry its uid (or its
 * env's name); *inner: the map the path goes on in. NULL when it has none. */
static const char *item_name(bd_node *item, bd_node **inner)
{
    *inner = item;
    if (!item || item->kind != BD_NODE_MAP)
        return NULL;
    bd_node *env = (bd_node *)bd_node_get(item, "environment");
    if (env && env->kind == BD_NODE_MAP) {
        *inner = env;
        const bd_node *u = bd_node_get(env, "uid");
        return u && u->kind == BD_NODE_SCALAR ? u->text : NULL;
    }
    const bd_node *n = bd_node_get(item, "name");
    return n && n->kind == BD_NODE_SCALAR ? n->text : NULL;
}

/* The item of list seq whose name is the longest prefix of p ending at '.' or the end;
 * *len: its length. */
static bd_node *pick_item(bd_node *seq, const char *p, size_t *len, bd_node **inner)
{
    bd_node *best = NULL;
    *len = 0;
    for (size_t i = 0; seq && seq->kind == BD_NODE_SEQ && i < seq->n; i++) {
        bd_node *in;
        const char *nm = item_name(seq->items[i], &in);
        size_t n = nm ? strlen(nm) : 0;
        if (n && n > *len && strncmp(p, nm, n) == 0 && (p[n] == '.' || p[n] == '\0')) {
            best = in;
            *len = n;
        }
    }
    if (inner)
        *inner = best;
    return best;
}

/* The names of list seq's items, ", "-separated, into buf. */
static void item_names(const bd_node *seq, char *buf, size_t len)
{
    buf[0] = '\0';
    for (size_t i = 0; seq && seq->kind == BD_NODE_SEQ && i < seq->n; i++) {
        bd_node *in;
        const char *nm = item_name(seq->items[i], &in);
        size_t u = strlen(buf);
        snprintf(buf + u, len - u, "%s%s", u ? ", " : "", nm ? nm : "?");
    }
}

/* Sets rest (KEY[.KEY...]) under node to value. */
static int walk_set(bd_node *node, const char *path, const char *rest, const char *value)
{
    char w[256];
    for (;;) {
        if (!*rest || *rest == '.')
            return bd_seterr(BD_EINVAL, "--set %s: an empty key in the path", path);
        if (node->kind == BD_NODE_SEQ) {
            size_t n;
            bd_node *in;
            if (!pick_item(node, rest, &n, &in)) {
                char names[512];
                item_names(node, names, sizeof names);
                return bd_seterr(BD_EINVAL, "--set %s: no item named '%.*s' in the list at %s (it has: %s)", path,
                                 (int)strcspn(rest, "."), rest, bd_node_where(node, w, sizeof w), names);
            }
            if (!rest[n])
                return bd_seterr(BD_EINVAL, "--set %s: names a whole list item; name a key in it", path);
            node = in;
            rest += n + 1;
            continue;
        }
        if (node->kind != BD_NODE_MAP)
            return bd_seterr(BD_EINVAL, "--set %s: %s holds '%s', not a map the path can go into", path,
                             bd_node_where(node, w, sizeof w), node->text);
        size_t k = strcspn(rest, ".");
        char *key = strndup(rest, k);
        if (!key)
            return bd_seterr(BD_ENOMEM, "out of memory");
        bd_node *child = (bd_node *)bd_node_get(node, key);
        if (!rest[k]) { /* the last key */
            int rc = BD_OK;
            if (child && child->kind != BD_NODE_SCALAR)
                rc = bd_seterr(BD_EINVAL, "--set %s: %s is a %s; --set gives one value", path,
                               bd_node_where(child, w, sizeof w), child->kind == BD_NODE_MAP ? "map" : "list");
            else
                rc = bd_node_set_scalar(node, key, value, 0);
            free(key);
            return rc;
        }
        if (!child || (child->kind == BD_NODE_SCALAR && bd_node_is_null(child))) { /* a map not written yet */
            int rc = bd_node_set_scalar(node, key, "", 0);
            size_t at = 0;
            while (rc == BD_OK && strcmp(node->keys[at], key) != 0)
                at++;
            bd_node *m = rc == BD_OK ? bd_node_new(BD_NODE_MAP, node->file, node->items[at]->line,
                                                   node->items[at]->col) : NULL;
            if (!m) {
                free(key);
                return rc == BD_OK ? bd_seterr(BD_ENOMEM, "out of memory") : rc;
            }
            bd_node_destroy(node->items[at]);
            node->items[at] = child = m;
        }
        free(key);
        node = child;
        rest += k + 1;
    }
}

/* The agent names of every phase (distinct), into names (max of them); their count. */
static int all_agents(bd_node *sched, const char **names, int max)
{
    int n = 0;
    for (size_t i = 0; sched && sched->kind == BD_NODE_SEQ && i < sched->n; i++) {
        const bd_node *e = sched->items[i];
        const bd_node *ph = e && e->kind == BD_NODE_MAP && e->n == 1 ? e->items[0] : NULL;
        const bd_node *ags = bd_node_get(ph, "agents");
        for (size_t k = 0; ags && ags->kind == BD_NODE_SEQ && k < ags->n; k++) {
            bd_node *in;
            const char *nm = item_name(ags->items[k], &in);
            int seen = !nm;
            for (int j = 0; j < n && !seen; j++)
                seen = strcmp(names[j], nm) == 0;
            if (!seen && n < max)
                names[n++] = nm;
            else if (!seen)
                n++;
        }
    }
    return n;
}

/* Where in phase ph the path rest starts: *node and *after (the keys below it); 0 when
 * the phase has nothing it names. */
static int find_start(bd_node *ph, const char *rest, const char *only_agent, bd_node **node, const char **after)
{
    size_t k = strcspn(rest, ".");
    if (in_list(rest, k, phase_keys)) {
        *node = ph;
        *after = rest;
        return 1;
    }
    size_t n;
    bd_node *in;
    if (pick_item((bd_node *)bd_node_get(ph, "agents"), rest, &n, &in) && rest[n] == '.') {
        *node = in;
        *after = rest + n + 1;
        return 1;
    }
    if (pick_item((bd_node *)bd_node_get(ph, "environments"), rest, &n, &in) && rest[n] == '.') {
        *node = in;
        *after = rest + n + 1;
        return 1;
    }
    if (only_agent && in_list(rest, k, agent_keys)
        && pick_item((bd_node *)bd_node_get(ph, "agents"), only_agent, &n, &in)) {
        *node = in;
        *after = rest;
        return 1;
    }
    return 0;
}

int bd_setpath(bd_node *eff, const char *path, const char *value, int *phases)
{
    if (phases)
        *phases = 0;
    bd_node *sched = (bd_node *)bd_node_get(eff, "schedule");
    const char *colon = strchr(path, ':'), *rest = colon ? colon + 1 : path;
    size_t plen = colon ? (size_t)(colon - path) : 0;
    const char *agents[64];
    int nagents = all_agents(sched, agents, 64);
    const char *only = nagents == 1 ? agents[0] : NULL;
    size_t k = strcspn(rest, ".");
    if (!rest[k] && !colon && (strcmp(rest, "seed") == 0 || strcmp(rest, "uid") == 0))
        return bd_seterr(BD_EINVAL, "--set %s: a sweep's seeds are --seeds; its runs keep the run file's uid", path);
    if (!*rest || !rest[k])
        return bd_seterr(BD_EINVAL, "--set %s: name a value in a phase: AGENT.KEY..., ENV_UID.KEY..., "
                         "phase_config.KEY or simulation.KEY... (docs/run-file.md, \"Sweeps\")", path);
    int took = 0, had_phase = 0;
    for (size_t i = 0; sched && sched->kind == BD_NODE_SEQ && i < sched->n; i++) {
        bd_node *e = sched->items[i];
        if (!e || e->kind != BD_NODE_MAP || e->n != 1)
            continue;
        if (colon && (strlen(e->keys[0]) != plen || strncmp(e->keys[0], path, plen) != 0))
            continue;
        had_phase = 1;
        bd_node *ph = e->items[0], *node;
        const char *after;
        if (!ph || ph->kind != BD_NODE_MAP || !find_start(ph, rest, only, &node, &after))
            continue;
        int rc = walk_set(node, path, after, value);
        if (rc != BD_OK)
            return rc;
        took++;
    }
    if (colon && !had_phase)
        return bd_seterr(BD_EINVAL, "--set %s: the run file has no phase '%.*s'", path, (int)plen, path);
    if (took == 0) {
        char names[600] = "";
        for (int j = 0; j < nagents && j < 64; j++) {
            size_t u = strlen(names);
            snprintf(names + u, sizeof names - u, "%s%s", u ? ", " : "", agents[j]);
        }
        char envs[300] = "";
        for (size_t i = 0; sched && sched->kind == BD_NODE_SEQ && i < sched->n && !envs[0]; i++) {
            const bd_node *e = sched->items[i];
            if (e && e->kind == BD_NODE_MAP && e->n == 1)
                item_names(bd_node_get(e->items[0], "environments"), envs, sizeof envs);
        }
        if (in_list(rest, k, agent_keys) && nagents > 1)
            return bd_seterr(BD_EINVAL, "--set %s: the run file has several agents (%s): name one, e.g. %s.%s", path,
                             names, agents[0], rest);
        return bd_seterr(BD_EINVAL, "--set %s: '%.*s' is no agent (%s), environment uid (%s) or phase key "
                         "(environments, agents, simulation, phase_config) of %s%.*s%s", path, (int)k, rest, names,
                         envs[0] ? envs : "none written", colon ? "phase '" : "any phase", (int)plen, path,
                         colon ? "'" : "");
    }
    if (phases)
        *phases = took;
    return BD_OK;
}
