/* yamltree.c: a tree of bd_node that remembers where each node was written, and the tree
 * back to YAML text.
 *
 * The nodes (made, cloned, merged, counted) live here; parsing YAML text into them is
 * yamlparse.c's. Emitting uses libyaml's emitter in block style: unquoted scalars plain,
 * quoted ones double-quoted, so that the output reads back to the same tree (a plain scalar
 * that libyaml cannot write plain, e.g. one with a line break, comes back quoted).
 * Reading values out of the tree is yamlvalue.c's.
 */
#define _GNU_SOURCE
#include "config/yamltree.h"
#include "config/yamltree_impl.h"

#include <stdlib.h>
#include <string.h>
#include <yaml.h>

/* ---- nodes ------------------------------------------------------------------------------ */

bd_node *bd_yt_node_new(bd_node_kind kind, const char *file, int line, int col)
{
    bd_node *n = calloc(1, sizeof *n);
    if (!n)
        return NULL;
    n->kind = kind;
    n->file = file;
    n->line = line;
    n->col = col;
    return n;
}

bd_node *bd_node_new(bd_node_kind kind, const char *file, int line, int col)
{
    bd_node *n = bd_yt_node_new(kind, file, line, col);
    if (n && kind == BD_NODE_SCALAR && !(n->text = calloc(1, 1))) {
        free(n);
        return NULL;
    }
    return n;
}

void bd_node_destroy(bd_node *n)
{
    if (!n)
        return;
    for (size_t i = 0; i < n->n; i++) {
        if (n->keys)
            free(n->keys[i]);
        if (n->items)
            bd_node_destroy(n->items[i]);
    }
    free(n->keys);
    free(n->key_line);
    free(n->key_col);
    free(n->items);
    free(n->text);
    free(n);
}

/* Makes room for `cap` children (keys too for a map). */
int bd_yt_node_reserve(bd_node *n, size_t cap)
{
    bd_node **items = realloc(n->items, cap * sizeof *items);
    if (!items)
        return BD_ENOMEM;
    n->items = items;
    if (n->kind == BD_NODE_MAP) {
        char **keys = realloc(n->keys, cap * sizeof *keys);
        if (!keys)
            return BD_ENOMEM;
        n->keys = keys;
        int *kl = realloc(n->key_line, cap * sizeof *kl);
        if (!kl)
            return BD_ENOMEM;
        n->key_line = kl;
        int *kc = realloc(n->key_col, cap * sizeof *kc);
        if (!kc)
            return BD_ENOMEM;
        n->key_col = kc;
    }
    return BD_OK;
}

bd_node *bd_node_clone(const bd_node *n)
{
    if (!n)
        return NULL;
    bd_node *c = bd_yt_node_new(n->kind, n->file, n->line, n->col);
    if (!c)
        return NULL;
    c->quoted = n->quoted;
    if (n->text && !(c->text = strdup(n->text)))
        goto fail;
    if (n->n == 0)
        return c;
    if (bd_yt_node_reserve(c, n->n) != BD_OK)
        goto fail;
    for (size_t i = 0; i < n->n; i++) {
        if (n->kind == BD_NODE_MAP) {
            c->keys[i] = strdup(n->keys[i]);
            c->key_line[i] = n->key_line[i];
            c->key_col[i] = n->key_col[i];
        }
        c->items[i] = bd_node_clone(n->items[i]);
        c->n = i + 1; /* destroy frees what is there so far */
        if ((n->kind == BD_NODE_MAP && !c->keys[i]) || !c->items[i])
            goto fail;
    }
    return c;
fail:
    bd_node_destroy(c);
    return NULL;
}

long bd_yt_map_find(const bd_node *map, const char *key)
{
    if (!map || map->kind != BD_NODE_MAP)
        return -1;
    for (size_t i = 0; i < map->n; i++)
        if (strcmp(map->keys[i], key) == 0)
            return (long)i;
    return -1;
}

const bd_node *bd_node_get(const bd_node *map, const char *key)
{
    long i = bd_yt_map_find(map, key);
    return i < 0 ? NULL : map->items[i];
}

bd_node *bd_node_merge(const bd_node *base, const bd_node *over)
{
    if (!over)
        return bd_node_clone(base);
    if (!base || base->kind != BD_NODE_MAP || over->kind != BD_NODE_MAP)
        return bd_node_clone(over);
    bd_node *m = bd_node_clone(base);
    if (!m)
        return NULL;
    /* the merged map is where `over` was written */
    m->file = over->file;
    m->line = over->line;
    m->col = over->col;
    for (size_t j = 0; j < over->n; j++) {
        long i = bd_yt_map_find(m, over->keys[j]);
        if (i >= 0) {
            bd_node *v = bd_node_merge(m->items[i], over->items[j]);
            if (!v)
                goto fail;
            bd_node_destroy(m->items[i]);
            m->items[i] = v;
            m->key_line[i] = over->key_line[j];
            m->key_col[i] = over->key_col[j];
            continue;
        }
        if (bd_yt_node_reserve(m, m->n + 1) != BD_OK)
            goto fail;
        char *k = strdup(over->keys[j]);
        bd_node *v = bd_node_clone(over->items[j]);
        if (!k || !v) {
            free(k);
            bd_node_destroy(v);
            goto fail;
        }
        m->keys[m->n] = k;
        m->key_line[m->n] = over->key_line[j];
        m->key_col[m->n] = over->key_col[j];
        m->items[m->n] = v;
        m->n++;
    }
    return m;
fail:
    bd_node_destroy(m);
    return NULL;
}

const char *bd_node_where(const bd_node *n, char *buf, size_t len)
{
    if (!buf || len == 0)
        return "";
    if (!n)
        snprintf(buf, len, "?");
    else
        snprintf(buf, len, "%s:%d:%d", n->file ? n->file : "?", n->line, n->col);
    return buf;
}

size_t bd_node_count(const bd_node *n)
{
    size_t c = 1;
    for (size_t i = 0; n->kind != BD_NODE_SCALAR && i < n->n; i++)
        c += bd_node_count(n->items[i]);
    return c;
}

/* ---- emitting --------------------------------------------------------------------------- */

static int emit_event(yaml_emitter_t *em, yaml_event_t *ev)
{
    /* yaml_emitter_emit takes the event, also on failure */
    return yaml_emitter_emit(em, ev) ? BD_OK : BD_EIO;
}

static int emit_scalar(yaml_emitter_t *em, const char *text, int quoted, int is_key)
{
    yaml_event_t ev;
    yaml_scalar_style_t style = YAML_PLAIN_SCALAR_STYLE;
    if (is_key)
        style = YAML_ANY_SCALAR_STYLE;
    else if (quoted)
        style = YAML_DOUBLE_QUOTED_SCALAR_STYLE;
    if (!yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)text, (int)strlen(text),
                                      is_key || !quoted, 1, style))
        return BD_ENOMEM;
    return emit_event(em, &ev);
}

static int emit_node(yaml_emitter_t *em, const bd_node *n)
{
    yaml_event_t ev;
    int rc;
    switch (n->kind) {
    case BD_NODE_SCALAR:
        return emit_scalar(em, n->text ? n->text : "", n->quoted, 0);
    case BD_NODE_SEQ:
        if (!yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_SEQUENCE_STYLE))
            return BD_ENOMEM;
        if ((rc = emit_event(em, &ev)))
            return rc;
        for (size_t i = 0; i < n->n; i++)
            if ((rc = emit_node(em, n->items[i])))
                return rc;
        if (!yaml_sequence_end_event_initialize(&ev))
            return BD_ENOMEM;
        return emit_event(em, &ev);
    case BD_NODE_MAP:
        if (!yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE))
            return BD_ENOMEM;
        if ((rc = emit_event(em, &ev)))
            return rc;
        for (size_t i = 0; i < n->n; i++) {
            if ((rc = emit_scalar(em, n->keys[i], 0, 1)))
                return rc;
            if ((rc = emit_node(em, n->items[i])))
                return rc;
        }
        if (!yaml_mapping_end_event_initialize(&ev))
            return BD_ENOMEM;
        return emit_event(em, &ev);
    }
    return BD_EINVAL;
}

int bd_node_emit(const bd_node *n, FILE *out)
{
    if (!n || !out)
        return bd_seterr(BD_EINVAL, "bd_node_emit: NULL argument");
    yaml_emitter_t em;
    yaml_event_t ev;
    if (!yaml_emitter_initialize(&em))
        return bd_seterr(BD_ENOMEM, "cannot start the YAML emitter");
    yaml_emitter_set_output_file(&em, out);
    yaml_emitter_set_unicode(&em, 1);
    yaml_emitter_set_width(&em, -1);
    yaml_emitter_set_indent(&em, 2);
    int rc = BD_ENOMEM;
    if (!yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING) || (rc = emit_event(&em, &ev)))
        goto done;
    rc = BD_ENOMEM;
    if (!yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1) ||
        (rc = emit_event(&em, &ev)))
        goto done;
    if ((rc = emit_node(&em, n)))
        goto done;
    rc = BD_ENOMEM;
    if (!yaml_document_end_event_initialize(&ev, 1) || (rc = emit_event(&em, &ev)))
        goto done;
    rc = BD_ENOMEM;
    if (!yaml_stream_end_event_initialize(&ev) || (rc = emit_event(&em, &ev)))
        goto done;
    rc = yaml_emitter_flush(&em) ? BD_OK : BD_EIO;
done:
    if (rc == BD_ENOMEM && em.error == YAML_NO_ERROR)
        bd_seterr(BD_ENOMEM, "out of memory while writing YAML");
    else if (rc)
        rc = bd_seterr(BD_EIO, "cannot write YAML: %s", em.problem ? em.problem : "write error");
    yaml_emitter_delete(&em);
    return rc;
}


int bd_node_set_scalar(bd_node *map, const char *key, const char *text, int quoted)
{
    if (!map || map->kind != BD_NODE_MAP)
        return bd_seterr(BD_EINVAL, "bd_node_set_scalar: not a map");
    char *t = strdup(text);
    if (!t)
        return bd_seterr(BD_ENOMEM, "out of memory");
    for (size_t k = 0; k < map->n; k++)
        if (strcmp(map->keys[k], key) == 0) {
            bd_node *old = map->items[k];
            if (old->kind != BD_NODE_SCALAR) { /* a map or list there becomes the scalar */
                bd_node *v = bd_yt_node_new(BD_NODE_SCALAR, old->file, old->line, old->col);
                if (!v) {
                    free(t);
                    return bd_seterr(BD_ENOMEM, "out of memory");
                }
                bd_node_destroy(old);
                map->items[k] = old = v;
            }
            free(old->text);
            old->text = t;
            old->quoted = quoted != 0;
            return BD_OK;
        }
    bd_node *v = bd_yt_node_new(BD_NODE_SCALAR, map->file, map->line, map->col);
    char *k = strdup(key);
    if (!v || !k || bd_yt_node_reserve(map, map->n + 1) != BD_OK) {
        free(v);
        free(k);
        free(t);
        return bd_seterr(BD_ENOMEM, "out of memory");
    }
    v->text = t;
    v->quoted = quoted != 0;
    map->keys[map->n] = k;
    map->items[map->n] = v;
    map->key_line[map->n] = map->line;
    map->key_col[map->n] = map->col;
    map->n++;
    return BD_OK;
}
