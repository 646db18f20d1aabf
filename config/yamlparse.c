/* yamlparse.c: YAML text -> a tree of bd_node that remembers where each node was written.
 *
 * Parsing walks libyaml's event API (one document per file). Anchors and aliases work (an
 * alias is a copy of the node its anchor names, positions included) and so do merge keys
 * (`<<: *base`); aliases and merges may make at most YT_MAX_EXPANDED nodes and
 * YT_MAX_EXPANDED_BYTES of text in all, so an alias bomb is refused, and a copy may not
 * nest deeper than the file itself may. Limits, on purpose: tags other than !!str are
 * refused; map keys must be scalars and unique, at most YT_MAX_KEYS of them in a map;
 * nesting deeper than YT_MAX_DEPTH is refused. Scalars keep their text and whether
 * they were quoted (or written as a block scalar); the typed getters convert them on demand.
 * The nodes themselves and emitting them are yamltree.c's.
 */
#define _GNU_SOURCE
#include "config/yamltree.h"
#include "config/yamltree_impl.h"

#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define YT_MAX_DEPTH 200

/* ---- parsing ---------------------------------------------------------------------------- */

/* An anchor (&name) and the node it names, once that node is complete. */
typedef struct {
    char *name;
    const bd_node *node;
} yt_anchor;

typedef struct {
    yaml_parser_t p;
    const char *file;
    const char *text;
    size_t len;
    yt_anchor *anchors;
    size_t nanchors, capanchors;
    size_t expanded;    /* nodes made by aliases and merges so far */
    size_t expanded_bytes; /* ... and their text's bytes */
    bd_node **kept;     /* merge values taken out of their maps: anchors may name them */
    size_t nkept, capkept;
} yt_parser;

#define YT_MAX_EXPANDED 100000 /* nodes aliases may make in one file (alias bombs stop here) */
#define YT_MAX_EXPANDED_BYTES (16 << 20) /* ... and bytes of text */
#define YT_MAX_KEYS 4096         /* keys in one map (a run file's maps hold a few dozen) */

/* Bytes of text (scalars and keys) in n, and the levels below it (0 for a scalar). */
static size_t node_bytes(const bd_node *n, int *height)
{
    if (n->kind == BD_NODE_SCALAR) {
        *height = 0;
        return strlen(n->text);
    }
    size_t b = 0;
    int h = 0;
    for (size_t i = 0; i < n->n; i++) {
        int hi;
        b += node_bytes(n->items[i], &hi) + (n->kind == BD_NODE_MAP ? strlen(n->keys[i]) : 0);
        if (hi + 1 > h)
            h = hi + 1;
    }
    *height = h;
    return b;
}

/* Counts a copy of n, made by an alias or a merge for a node at nesting level depth,
 * against the file's budget; an error at line:col when it is spent or the copy nests too
 * deep (the copy must read back from run.yml, where it is written out). */
static int count_copy(yt_parser *y, const bd_node *n, int depth, int line, int col)
{
    int h;
    y->expanded += bd_node_count(n);
    y->expanded_bytes += node_bytes(n, &h);
    if (y->expanded > YT_MAX_EXPANDED || y->expanded_bytes > YT_MAX_EXPANDED_BYTES)
        return bd_seterr(BD_EPARSE, "%s:%d:%d: aliases and merges make more than %d values or %d MiB (an alias "
                         "bomb?)", y->file, line, col, YT_MAX_EXPANDED, YT_MAX_EXPANDED_BYTES >> 20);
    if (depth + h > YT_MAX_DEPTH)
        return bd_seterr(BD_EPARSE, "%s:%d:%d: an alias here nests more than %d levels deep", y->file, line, col,
                         YT_MAX_DEPTH);
    return BD_OK;
}

/* Remembers that anchor names n (n complete now; a later &name replaces it, as in YAML). */
static int anchor_add(yt_parser *y, const yaml_char_t *name, const bd_node *n)
{
    if (!name)
        return BD_OK;
    for (size_t i = 0; i < y->nanchors; i++)
        if (strcmp(y->anchors[i].name, (const char *)name) == 0) {
            y->anchors[i].node = n;
            return BD_OK;
        }
    if (y->nanchors == y->capanchors) {
        size_t cap = y->capanchors ? 2 * y->capanchors : 8;
        yt_anchor *a = realloc(y->anchors, cap * sizeof *a);
        if (!a)
            return bd_seterr(BD_ENOMEM, "%s: out of memory", y->file);
        y->anchors = a;
        y->capanchors = cap;
    }
    char *copy = strdup((const char *)name);
    if (!copy)
        return bd_seterr(BD_ENOMEM, "%s: out of memory", y->file);
    y->anchors[y->nanchors].name = copy;
    y->anchors[y->nanchors].node = n;
    y->nanchors++;
    return BD_OK;
}

/* 1-based line/column of a byte offset (for reader errors, which carry only an offset). */
static void offset_pos(const char *text, size_t len, size_t off, int *line, int *col)
{
    int l = 1, c = 1;
    for (size_t i = 0; i < off && i < len; i++) {
        if (text[i] == '\n') {
            l++;
            c = 1;
        } else {
            c++;
        }
    }
    *line = l;
    *col = c;
}

static int syntax_error(yt_parser *y)
{
    yaml_parser_t *p = &y->p;
    if (p->error == YAML_MEMORY_ERROR)
        return bd_seterr(BD_ENOMEM, "%s: out of memory while parsing", y->file);
    const char *problem = p->problem ? p->problem : "invalid YAML";
    int line, col;
    if (p->error == YAML_READER_ERROR) {
        offset_pos(y->text, y->len, p->problem_offset, &line, &col);
        return bd_seterr(BD_EPARSE, "%s:%d:%d: %s", y->file, line, col, problem);
    }
    line = (int)p->problem_mark.line + 1;
    col = (int)p->problem_mark.column + 1;
    if (p->context)
        return bd_seterr(BD_EPARSE, "%s:%d:%d: %s (%s that starts at %d:%d)", y->file, line, col,
                         problem, p->context, (int)p->context_mark.line + 1,
                         (int)p->context_mark.column + 1);
    return bd_seterr(BD_EPARSE, "%s:%d:%d: %s", y->file, line, col, problem);
}

static int next_event(yt_parser *y, yaml_event_t *ev)
{
    if (!yaml_parser_parse(&y->p, ev))
        return syntax_error(y);
    return BD_OK;
}

static int ev_line(const yaml_event_t *ev)
{
    return (int)ev->start_mark.line + 1;
}

static int ev_col(const yaml_event_t *ev)
{
    return (int)ev->start_mark.column + 1;
}

/* Refuses tags (other than !!str on scalars). Sets *is_str for !!str. */
static int check_props(yt_parser *y, const yaml_event_t *ev, const yaml_char_t *tag, int *is_str)
{
    if (tag) {
        if (is_str && strcmp((const char *)tag, YAML_STR_TAG) == 0) {
            *is_str = 1;
            return BD_OK;
        }
        return bd_seterr(BD_EPARSE, "%s:%d:%d: YAML tags ('%s') are not supported", y->file,
                         ev_line(ev), ev_col(ev), (const char *)tag);
    }
    return BD_OK;
}

static int parse_node(yt_parser *y, yaml_event_t *ev, int depth, bd_node **out);

static int parse_scalar(yt_parser *y, yaml_event_t *ev, bd_node **out)
{
    int is_str = 0;
    int rc = check_props(y, ev, ev->data.scalar.tag, &is_str);
    if (rc)
        return rc;
    bd_node *n = bd_yt_node_new(BD_NODE_SCALAR, y->file, ev_line(ev), ev_col(ev));
    if (!n)
        return bd_seterr(BD_ENOMEM, "%s: out of memory", y->file);
    size_t len = ev->data.scalar.length;
    if (memchr(ev->data.scalar.value, 0, len)) { /* "\0" would silently cut the value short */
        free(n);
        return bd_seterr(BD_EPARSE, "%s:%d:%d: a value may not contain a NUL character", y->file,
                         ev_line(ev), ev_col(ev));
    }
    n->text = malloc(len + 1);
    if (!n->text) {
        free(n);
        return bd_seterr(BD_ENOMEM, "%s: out of memory", y->file);
    }
    memcpy(n->text, ev->data.scalar.value, len);
    n->text[len] = '\0';
    n->quoted = is_str || ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
    *out = n;
    return anchor_add(y, ev->data.scalar.anchor, n);
}

static int parse_seq(yt_parser *y, yaml_event_t *start, int depth, bd_node **out)
{
    int rc = check_props(y, start, start->data.sequence_start.tag, NULL);
    if (rc)
        return rc;
    bd_node *n = bd_yt_node_new(BD_NODE_SEQ, y->file, ev_line(start), ev_col(start));
    if (!n)
        return bd_seterr(BD_ENOMEM, "%s: out of memory", y->file);
    size_t cap = 0;
    for (;;) {
        yaml_event_t ev;
        if ((rc = next_event(y, &ev)))
            goto fail;
        if (ev.type == YAML_SEQUENCE_END_EVENT) {
            yaml_event_delete(&ev);
            break;
        }
        if (n->n == cap) {
            cap = cap ? 2 * cap : 4;
            if (bd_yt_node_reserve(n, cap) != BD_OK) {
                yaml_event_delete(&ev);
                rc = bd_seterr(BD_ENOMEM, "%s: out of memory", y->file);
                goto fail;
            }
        }
        bd_node *item = NULL;
        rc = parse_node(y, &ev, depth + 1, &item);
        yaml_event_delete(&ev);
        if (rc)
            goto fail;
        n->items[n->n++] = item;
    }
    *out = n;
    return anchor_add(y, start->data.sequence_start.anchor, n);
fail:
    bd_node_destroy(n);
    return rc;
}

/* Keeps n alive until the parse ends (an anchor may name it); frees it if it cannot. */
static int keep(yt_parser *y, bd_node *n)
{
    if (y->nkept == y->capkept) {
        size_t cap = y->capkept ? 2 * y->capkept : 8;
        bd_node **k = realloc(y->kept, cap * sizeof *k);
        if (!k) {
            bd_node_destroy(n);
            return bd_seterr(BD_ENOMEM, "%s: out of memory", y->file);
        }
        y->kept = k;
        y->capkept = cap;
    }
    y->kept[y->nkept++] = n;
    return BD_OK;
}

/* Adds to map n a clone of each (key, value) of from that n lacks. */
static int merge_from(yt_parser *y, bd_node *n, const bd_node *from, int depth, int line, int col)
{
    if (from->kind != BD_NODE_MAP)
        return bd_seterr(BD_EPARSE, "%s:%d:%d: '<<' merges maps (or a list of maps), not %s%s%s (written at %d:%d)",
                         y->file, line, col, from->kind == BD_NODE_SEQ ? "a list" : "the value '",
                         from->kind == BD_NODE_SCALAR ? from->text : "",
                         from->kind == BD_NODE_SCALAR ? "'" : "", from->line, from->col);
    for (size_t i = 0; i < from->n; i++) {
        if (bd_yt_map_find(n, from->keys[i]) >= 0)
            continue; /* the map's own keys, and earlier merges, win */
        bd_node *v = bd_node_clone(from->items[i]);
        char *k = strdup(from->keys[i]);
        if (!v || !k || bd_yt_node_reserve(n, n->n + 1) != BD_OK) {
            bd_node_destroy(v);
            free(k);
            return bd_seterr(BD_ENOMEM, "%s: out of memory", y->file);
        }
        int rc = count_copy(y, v, depth + 1, line, col);
        if (rc == BD_OK && n->n >= YT_MAX_KEYS)
            rc = bd_seterr(BD_EPARSE, "%s:%d:%d: a map may have at most %d keys", y->file, line, col, YT_MAX_KEYS);
        if (rc) {
            bd_node_destroy(v);
            free(k);
            return rc;
        }
        n->keys[n->n] = k;
        n->key_line[n->n] = from->key_line[i];
        n->key_col[n->n] = from->key_col[i];
        n->items[n->n] = v;
        n->n++;
    }
    return BD_OK;
}

/* YAML's merge key: `<<: *base` (or `<<: [*a, *b]`) adds the keys of those maps that the
 * map does not have; the "<<" entry itself goes. */
static int merge_keys(yt_parser *y, bd_node *n, int depth)
{
    long at = bd_yt_map_find(n, "<<");
    if (at < 0)
        return BD_OK;
    bd_node *val = n->items[at];
    char *key = n->keys[at];
    int line = n->key_line[at], col = n->key_col[at];
    /* take the entry out first, so merged keys land after the map's own */
    memmove(&n->keys[at], &n->keys[at + 1], (n->n - (size_t)at - 1) * sizeof *n->keys);
    memmove(&n->items[at], &n->items[at + 1], (n->n - (size_t)at - 1) * sizeof *n->items);
    memmove(&n->key_line[at], &n->key_line[at + 1], (n->n - (size_t)at - 1) * sizeof *n->key_line);
    memmove(&n->key_col[at], &n->key_col[at + 1], (n->n - (size_t)at - 1) * sizeof *n->key_col);
    n->n--;
    int rc = BD_OK;
    if (val->kind == BD_NODE_SEQ)
        for (size_t i = 0; i < val->n && rc == BD_OK; i++)
            rc = merge_from(y, n, val->items[i], depth, line, col);
    else
        rc = merge_from(y, n, val, depth, line, col);
    free(key);
    /* an anchor may name val or a node in it: it lives until the parse ends */
    int krc = keep(y, val);
    return rc ? rc : krc;
}

static int parse_map(yt_parser *y, yaml_event_t *start, int depth, bd_node **out)
{
    int rc = check_props(y, start, start->data.mapping_start.tag, NULL);
    if (rc)
        return rc;
    bd_node *n = bd_yt_node_new(BD_NODE_MAP, y->file, ev_line(start), ev_col(start));
    if (!n)
        return bd_seterr(BD_ENOMEM, "%s: out of memory", y->file);
    size_t cap = 0;
    for (;;) {
        yaml_event_t ev;
        if ((rc = next_event(y, &ev)))
            goto fail;
        if (ev.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&ev);
            break;
        }
        /* the key */
        bd_node *key = NULL;
        int key_anchored = ev.type == YAML_SCALAR_EVENT && ev.data.scalar.anchor != NULL;
        if (ev.type == YAML_SCALAR_EVENT) {
            rc = parse_scalar(y, &ev, &key);
        } else if (ev.type == YAML_ALIAS_EVENT) {
            rc = parse_node(y, &ev, depth + 1, &key);
            if (rc == BD_OK && key->kind != BD_NODE_SCALAR) {
                rc = bd_seterr(BD_EPARSE, "%s:%d:%d: map keys must be plain text; alias *%s names a %s",
                               y->file, ev_line(&ev), ev_col(&ev), (const char *)ev.data.alias.anchor,
                               key->kind == BD_NODE_MAP ? "map" : "sequence");
                bd_node_destroy(key);
                key = NULL;
            }
        } else {
            rc = bd_seterr(BD_EPARSE, "%s:%d:%d: map keys must be plain text, not a %s",
                           y->file, ev_line(&ev), ev_col(&ev),
                           ev.type == YAML_MAPPING_START_EVENT ? "map" : "sequence");
        }
        yaml_event_delete(&ev);
        if (rc)
            goto fail;
        if (n->n >= YT_MAX_KEYS) {
            rc = bd_seterr(BD_EPARSE, "%s:%d:%d: a map may have at most %d keys", y->file, key->line, key->col,
                           YT_MAX_KEYS);
            bd_node_destroy(key);
            goto fail;
        }
        long dup = bd_yt_map_find(n, key->text);
        if (dup >= 0) {
            rc = bd_seterr(BD_EPARSE, "%s:%d:%d: duplicate key '%.200s' (first written at %d:%d)",
                           y->file, key->line, key->col, key->text, n->key_line[dup],
                           n->key_col[dup]);
            bd_node_destroy(key);
            goto fail;
        }
        if (n->n == cap) {
            cap = cap ? 2 * cap : 4;
            if (bd_yt_node_reserve(n, cap) != BD_OK) {
                bd_node_destroy(key);
                rc = bd_seterr(BD_ENOMEM, "%s: out of memory", y->file);
                goto fail;
            }
        }
        /* the value */
        bd_node *val = NULL;
        if ((rc = next_event(y, &ev))) {
            bd_node_destroy(key);
            goto fail;
        }
        rc = parse_node(y, &ev, depth + 1, &val);
        yaml_event_delete(&ev);
        if (rc) {
            bd_node_destroy(key);
            goto fail;
        }
        /* take the key's text, unless an anchor names the key (&k key: ...) */
        char *ktext = key_anchored ? strdup(key->text) : key->text;
        if (!ktext) {
            bd_node_destroy(key);
            bd_node_destroy(val);
            rc = bd_seterr(BD_ENOMEM, "%s: out of memory", y->file);
            goto fail;
        }
        n->keys[n->n] = ktext;
        n->key_line[n->n] = key->line;
        n->key_col[n->n] = key->col;
        n->items[n->n] = val;
        n->n++;
        if (key_anchored) {
            if ((rc = keep(y, key)))
                goto fail;
        } else {
            key->text = NULL;
            bd_node_destroy(key);
        }
    }
    if ((rc = merge_keys(y, n, depth)))
        goto fail;
    *out = n;
    return anchor_add(y, start->data.mapping_start.anchor, n);
fail:
    bd_node_destroy(n);
    return rc;
}

/* Builds the node that starts with *ev (the caller deletes *ev). */
static int parse_node(yt_parser *y, yaml_event_t *ev, int depth, bd_node **out)
{
    if (depth > YT_MAX_DEPTH)
        return bd_seterr(BD_EPARSE, "%s:%d:%d: nested deeper than %d levels", y->file,
                         ev_line(ev), ev_col(ev), YT_MAX_DEPTH);
    switch (ev->type) {
    case YAML_SCALAR_EVENT:
        return parse_scalar(y, ev, out);
    case YAML_SEQUENCE_START_EVENT:
        return parse_seq(y, ev, depth, out);
    case YAML_MAPPING_START_EVENT:
        return parse_map(y, ev, depth, out);
    case YAML_ALIAS_EVENT: {
        const char *name = (const char *)ev->data.alias.anchor;
        const bd_node *target = NULL;
        for (size_t i = 0; i < y->nanchors; i++)
            if (strcmp(y->anchors[i].name, name) == 0)
                target = y->anchors[i].node;
        if (!target) /* also an alias inside the node its anchor names: a loop */
            return bd_seterr(BD_EPARSE, "%s:%d:%d: alias *%s names no anchor &%s before it", y->file,
                             ev_line(ev), ev_col(ev), name, name);
        int rc = count_copy(y, target, depth, ev_line(ev), ev_col(ev));
        if (rc)
            return rc;
        if (!(*out = bd_node_clone(target)))
            return bd_seterr(BD_ENOMEM, "%s: out of memory", y->file);
        return BD_OK;
    }
    default:
        return bd_seterr(BD_EPARSE, "%s:%d:%d: unexpected YAML event %d", y->file, ev_line(ev),
                         ev_col(ev), (int)ev->type);
    }
}

static int parse_stream(yt_parser *y, bd_node **out)
{
    yaml_event_t ev;
    bd_node *root = NULL;
    int rc;
    if ((rc = next_event(y, &ev)))
        return rc;
    yaml_event_delete(&ev); /* STREAM-START */
    if ((rc = next_event(y, &ev)))
        return rc;
    if (ev.type == YAML_STREAM_END_EVENT) {
        yaml_event_delete(&ev);
        root = bd_yt_node_new(BD_NODE_MAP, y->file, 1, 1);
        if (!root)
            return bd_seterr(BD_ENOMEM, "%s: out of memory", y->file);
        *out = root;
        return BD_OK;
    }
    yaml_event_delete(&ev); /* DOCUMENT-START */
    if ((rc = next_event(y, &ev)))
        return rc;
    rc = parse_node(y, &ev, 0, &root);
    yaml_event_delete(&ev);
    if (rc)
        return rc;
    if ((rc = next_event(y, &ev))) /* DOCUMENT-END */
        goto fail;
    yaml_event_delete(&ev);
    if ((rc = next_event(y, &ev)))
        goto fail;
    if (ev.type != YAML_STREAM_END_EVENT) {
        rc = bd_seterr(BD_EPARSE, "%s:%d:%d: a second YAML document; a bodhi file holds one",
                       y->file, ev_line(&ev), ev_col(&ev));
        yaml_event_delete(&ev);
        goto fail;
    }
    yaml_event_delete(&ev);
    /* "---" alone, or a document that is a bare null: treat as empty */
    if (root->kind == BD_NODE_SCALAR && !root->quoted && root->text[0] == '\0') {
        bd_node *m = bd_yt_node_new(BD_NODE_MAP, y->file, root->line, root->col);
        bd_node_destroy(root);
        if (!m)
            return bd_seterr(BD_ENOMEM, "%s: out of memory", y->file);
        root = m;
    }
    *out = root;
    return BD_OK;
fail:
    bd_node_destroy(root);
    return rc;
}

int bd_yaml_parse(const char *text, size_t len, const char *file, bd_node **out)
{
    if (!out)
        return bd_seterr(BD_EINVAL, "bd_yaml_parse: out is NULL");
    *out = NULL;
    if (!text)
        return bd_seterr(BD_EINVAL, "bd_yaml_parse: text is NULL");
    yt_parser y = {.file = file ? file : "<text>", .text = text, .len = len};
    if (!yaml_parser_initialize(&y.p))
        return bd_seterr(BD_ENOMEM, "%s: cannot start the YAML parser", y.file);
    yaml_parser_set_input_string(&y.p, (const unsigned char *)text, len);
    int rc = parse_stream(&y, out);
    yaml_parser_delete(&y.p);
    for (size_t i = 0; i < y.nanchors; i++)
        free(y.anchors[i].name);
    free(y.anchors);
    for (size_t i = 0; i < y.nkept; i++)
        bd_node_destroy(y.kept[i]);
    free(y.kept);
    return rc;
}
