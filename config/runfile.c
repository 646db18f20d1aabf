/* runfile.c: reads, cascades and validates an experiment run file (docs/run-file.md).
 *
 * Steps: parse the YAML (yamlparse.c), check the top level, deep-merge each schedule phase
 * onto the merged phase before it (the result is rf->effective), then validate every
 * merged phase into the bd_phase_cfg structs (runfile_phase.c). Every string and node those structs point
 * to lives in rf->effective or in rf->priv (an arena freed by bd_runfile_destroy).
 * Unknown keys are errors everywhere except inside params maps and run_config, which
 * belong to the plugin/conductor that reads them. Phase, agent and uid names must match
 * [A-Za-z0-9_.-]+ because they name folders and HDF5 groups.
 */
#define _GNU_SOURCE
#include "config/runfile.h"
#include "config/runfile_impl.h"

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

void *bd_rf_alloc(bd_runfile *rf, size_t count, size_t size)
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

const char *bd_rf_strdup(bd_runfile *rf, const char *s)
{
    size_t len = strlen(s) + 1;
    char *d = bd_rf_alloc(rf, len, 1);
    if (d)
        memcpy(d, s, len);
    return d;
}

/* An empty map owned by the run file, positioned at `where` (for defaults). */
const bd_node *bd_rf_empty_map(bd_runfile *rf, const bd_node *where)
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

int bd_rf_nomem(void)
{
    return bd_seterr(BD_ENOMEM, "out of memory reading the run file");
}

/* ---- error helpers ---------------------------------------------------------------------- */

/* "FILE:LINE:COL: ..." at node n. */
int __attribute__((format(printf, 3, 4))) bd_rf_at(const bd_node *n, int err, const char *fmt, ...)
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
const char *bd_rf_name_problem(const char *s)
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
bd_diags *bd_rf_diags(bd_runfile *rf)
{
    return ((rf_priv *)rf->priv)->d;
}

int bd_rf_note(bd_runfile *rf, int rc)
{
    return bd_diag(bd_rf_diags(rf), rc);
}

/* A required string map[key]; `in` names the map for the error. */
int bd_rf_req_str(const bd_node *map, const char *key, const char *in, const char **out)
{
    int rc = bd_node_str(map, key, NULL, out);
    if (rc)
        return rc;
    if (!*out)
        return bd_rf_at(map, BD_EINVAL, "missing required key '%s' %s %s", key,
                        strcmp(in, "the top level") == 0 ? "at" : "in", in);
    if (!(*out)[0])
        return bd_rf_at(bd_node_get(map, key), BD_EINVAL, "%s: must not be empty", key);
    return BD_OK;
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
        return bd_rf_at(root, BD_EINVAL, "missing required key 'schedule' at the top level");
    if (s->kind != BD_NODE_SEQ || s->n == 0)
        return bd_rf_at(s, BD_EINVAL,
                        "schedule must be a non-empty list of phases, e.g. [- train: {...}]");
    int bad = BD_OK;
    for (size_t i = 0; i < s->n; i++) {
        const bd_node *it = s->items[i];
        if (it->kind != BD_NODE_MAP || it->n != 1) {
            bad = bd_rf_note(rf, bd_rf_at(it, BD_EINVAL,
                                          "each schedule entry must be a map with exactly one key, the phase name "
                                          "(e.g. '- train: {...}')"));
            continue;
        }
        const char *name = it->keys[0];
        const char *why = bd_rf_name_problem(name);
        if (why)
            bad = bd_rf_note(rf, at_key(it, 0, BD_EINVAL, "phase name '%.80s' %s (it names folders and HDF5 groups)",
                                        name, why));
        const bd_node *v = it->items[0];
        if (v->kind != BD_NODE_MAP && !bd_node_is_null(v))
            bad = bd_rf_note(rf, bd_rf_at(v, BD_EINVAL, "phase '%s' must be a map {environments, agents, ...}", name));
        for (size_t j = 0; j < i; j++)
            if (s->items[j]->kind == BD_NODE_MAP && s->items[j]->n == 1
                && strcmp(s->items[j]->keys[0], name) == 0)
                bad = bd_rf_note(rf, at_key(it, 0, BD_EINVAL, "duplicate phase name '%s' (first at %d:%d)",
                                            name, s->items[j]->key_line[0], s->items[j]->key_col[0]));
    }
    if (bad)
        return bad;
    rf->effective = bd_node_clone(root);
    if (!rf->effective)
        return bd_rf_nomem();
    bd_node *es = NULL;
    for (size_t i = 0; i < rf->effective->n; i++)
        if (strcmp(rf->effective->keys[i], "schedule") == 0)
            es = rf->effective->items[i];
    rf->phases = bd_rf_alloc(rf, es->n, sizeof *rf->phases);
    if (!rf->phases)
        return bd_rf_nomem();
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
            return bd_rf_nomem();
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
        return bd_rf_note(rf, bd_rf_at(root, BD_EINVAL,
                                       "the file is empty; a run file is a map with uid, seed, version, "
                                       "schedule and run_config (docs/run-file.md)"));
    if (root->kind != BD_NODE_MAP)
        return bd_rf_note(rf, bd_rf_at(root, BD_EINVAL,
                                       "a run file must be a map with uid, seed, version, schedule and run_config"));
    if ((rc = bd_node_check_keys(root, keys, "the top level", bd_rf_diags(rf))))
        bad = bd_rf_note(rf, rc);
    long long v;
    if ((rc = bd_node_int(root, "version", 1, &v)))
        bad = bd_rf_note(rf, rc);
    else if (v != 1)
        bad = bd_rf_note(rf, bd_rf_at(bd_node_get(root, "version"), BD_EINVAL,
                                      "version: this bodhi reads run file version 1, got %lld", v));
    rf->version = 1;
    int uid_ok = 0;
    if ((rc = bd_rf_req_str(root, "uid", "the top level", &rf->uid))) {
        bad = bd_rf_note(rf, rc);
    } else {
        const char *why = bd_rf_name_problem(rf->uid);
        if (why)
            bad = bd_rf_note(rf, bd_rf_at(bd_node_get(root, "uid"), BD_EINVAL,
                                          "uid '%.80s' %s (it names the run folder)", rf->uid, why));
        uid_ok = !why;
    }
    if (!uid_ok)
        rf->uid = NULL; /* NULL unless it can name a folder */
    if ((rc = bd_node_u64(root, "seed", 0, &rf->seed)))
        bad = bd_rf_note(rf, rc);
    const bd_node *rc_node = bd_node_get(root, "run_config");
    if (rc_node && rc_node->kind != BD_NODE_MAP && !bd_node_is_null(rc_node))
        bad = bd_rf_note(rf, bd_rf_at(rc_node, BD_EINVAL, "run_config must be a map"));
    if ((rc = build_schedule(rf)))
        return bd_rf_note(rf, rc);
    /* strings for the caller point into the effective tree */
    if (uid_ok)
        rf->uid = bd_node_get(rf->effective, "uid")->text;
    for (int i = 0; i < rf->nphases; i++)
        if ((rc = bd_rf_parse_phase(rf, i)))
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
        return bd_diag(d, bd_rf_nomem());
    rf->priv = calloc(1, sizeof(rf_priv));
    rf->path = strdup(name ? name : "<run file>");
    rf->text = strdup(text);
    int rc;
    if (!rf->priv || !rf->path || !rf->text) {
        rc = bd_diag(d, bd_rf_nomem());
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
        return bd_rf_nomem();
    fputs("# bodhi effective run file: every phase written out in full, after cascading\n", f);
    int rc = bd_node_emit(rf->effective, f);
    if (fclose(f) != 0 && !rc)
        rc = bd_rf_nomem();
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
