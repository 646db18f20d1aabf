/* yamltree.h: a YAML document as a tree of nodes that remember their line and column.
 *
 * Built on libyaml's parser. Scalars stay text; typed getters convert them and, on a
 * wrong type, record "FILE:LINE:COL: key: expected ..., got '...'" with bd_seterr.
 * Anchors, aliases and merge keys (<<) work; an alias bomb (more than 100000 values or
 * 16 MiB made by aliases and merges) is refused with an error naming the place, and so is
 * a map of more than 4096 keys.
 * Trees are plain heap data: bd_node_clone copies, bd_node_merge deep-merges (maps
 * merge key by key, anything else is replaced), bd_node_emit writes block-style YAML.
 */
#ifndef BODHI_CONFIG_YAMLTREE_H
#define BODHI_CONFIG_YAMLTREE_H

#include <stddef.h>
#include <stdio.h>

#include "bodhi/bodhi.h"
#include "config/diag.h"

typedef enum { BD_NODE_SCALAR, BD_NODE_MAP, BD_NODE_SEQ } bd_node_kind;

typedef struct bd_node bd_node;
struct bd_node {
    bd_node_kind kind;
    int line, col;       /* 1-based position of the node in its file */
    const char *file;    /* name used in error messages; borrowed, outlives the tree */
    char *text;          /* SCALAR: the text ("" for an empty/null scalar) */
    int quoted;          /* SCALAR: 1 when written quoted (then never a number/bool/null) */
    size_t n;            /* MAP: pairs, SEQ: items */
    char **keys;         /* MAP: n keys */
    int *key_line, *key_col; /* MAP: where each key was written */
    bd_node **items;     /* MAP: n values, SEQ: n items */
};

/* Parses text (named `file` in errors). On a syntax error returns BD_EPARSE with
 * "FILE:LINE:COL: message" in bd_lasterr(). An empty document gives an empty map. */
int bd_yaml_parse(const char *text, size_t len, const char *file, bd_node **out);

/* A new empty node (SCALAR text "", or an empty MAP/SEQ) at the given position; `file` is
 * borrowed. NULL on ENOMEM. */
bd_node *bd_node_new(bd_node_kind kind, const char *file, int line, int col);

void bd_node_destroy(bd_node *n); /* NULL-safe */
bd_node *bd_node_clone(const bd_node *n);

/* Deep merge of `over` onto a clone of `base`; returns a new tree (NULL on ENOMEM). */
bd_node *bd_node_merge(const bd_node *base, const bd_node *over);

/* Writes the tree as block-style YAML (strings quoted where needed so that they read back
 * the same). Returns BD_OK or BD_EIO. */
int bd_node_emit(const bd_node *n, FILE *out);

/* Sets map[key] to the scalar `text` (quoted: a string, whatever it reads as; else
 * plain), replacing whatever was there and adding the key (at the map's position) when it
 * is absent. BD_EINVAL when map is not a map, BD_ENOMEM. */
int bd_node_set_scalar(bd_node *map, const char *key, const char *text, int quoted);

/* Map lookup; NULL when map is NULL, not a map, or has no such key. */
const bd_node *bd_node_get(const bd_node *map, const char *key);

/* Refuses a key of map m that is not in allowed (NULL-terminated): BD_EINVAL with
 * "FILE:LINE:COL: unknown key 'k' in <in>; did you mean 'x'?" (or the known keys) in
 * bd_lasterr() for the first, and each of them recorded in d when d is not NULL.
 * BD_OK when m is NULL or not a map. */
int bd_node_check_keys(const bd_node *m, const char *const *allowed, const char *in, bd_diags *d);

/* The name among names (n of them) nearest to word, ignoring case, when it is near enough
 * to be a likely misspelling (1 edit for words of up to 3 letters, 2 else); else NULL. */
const char *bd_nearest(const char *word, const char *const *names, int n);

/* Nodes in n (n itself, and everything below it). */
size_t bd_node_count(const bd_node *n);

/* "FILE:LINE:COL" of a node into buf. */
const char *bd_node_where(const bd_node *n, char *buf, size_t len);

/* Typed getters on map[key]. Missing key (or map NULL): *out = def, BD_OK.
 * Present but wrong type/range: BD_EINVAL with the position in bd_lasterr(). */
int bd_node_int(const bd_node *map, const char *key, long long def, long long *out);
int bd_node_double(const bd_node *map, const char *key, double def, double *out);
/* An unsigned 64-bit integer written in decimal digits (seeds): no sign, no exponent. */
int bd_node_u64(const bd_node *map, const char *key, uint64_t def, uint64_t *out);
/* The same rule for text (the command line's --seed): 1 and *out set when t is one. */
int bd_text_u64(const char *t, uint64_t *out);
int bd_node_bool(const bd_node *map, const char *key, int def, int *out);
/* *out is borrowed from the tree (or def). Refuses maps, sequences and a null value. */
int bd_node_str(const bd_node *map, const char *key, const char *def, const char **out);

/* 1 when n is a YAML null: an unquoted scalar that is empty, ~, null, Null or NULL. */
int bd_node_is_null(const bd_node *n);

/* Scalar conversions of a node itself (same error rules). */
int bd_node_as_int(const bd_node *n, long long *out);
int bd_node_as_double(const bd_node *n, double *out);

/* The node as compact JSON text (scalars that read as numbers, bools (the words
 * bd_node_bool accepts) or null stay so, others become strings). Caller frees. NULL on
 * ENOMEM. For HDF5 attributes and logs. */
char *bd_node_to_json(const bd_node *n);

#endif
