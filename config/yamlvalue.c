/* yamlvalue.c: values out of a bd_node tree (see yamltree.h): YAML's scalars as ints,
 * doubles, bools and strings with "FILE:LINE:COL: key: expected ..." errors, unknown keys
 * refused with the nearest known one suggested, and the tree as JSON (cJSON; numbers keep
 * integer precision, written as raw JSON). */
#define _GNU_SOURCE
#include "config/yamltree.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- scalar conversions ----------------------------------------------------------------- */

/* YAML's null: an empty plain scalar, ~, null, Null, NULL. */
int bd_node_is_null(const bd_node *n)
{
    if (!n || n->kind != BD_NODE_SCALAR || n->quoted)
        return 0;
    const char *t = n->text;
    return t[0] == '\0' || strcmp(t, "~") == 0 || strcmp(t, "null") == 0 ||
           strcmp(t, "Null") == 0 || strcmp(t, "NULL") == 0;
}

/* Decimal integer: [+-]?[0-9]+, whole text. ERANGE -> 2. */
static int text_int(const char *t, long long *out)
{
    const char *p = t;
    if (*p == '+' || *p == '-')
        p++;
    if (!isdigit((unsigned char)*p))
        return 0;
    for (const char *q = p; *q; q++)
        if (!isdigit((unsigned char)*q))
            return 0;
    errno = 0;
    long long v = strtoll(t, NULL, 10);
    if (errno == ERANGE)
        return 2;
    *out = v;
    return 1;
}

/* YAML float: [+-]? (digits [. digits?] | . digits) ([eE] [+-]? digits)?, whole text, finite. */
static int text_double(const char *t, double *out)
{
    const char *p = t;
    int digits = 0;
    if (*p == '+' || *p == '-')
        p++;
    while (isdigit((unsigned char)*p)) {
        p++;
        digits++;
    }
    if (*p == '.') {
        p++;
        while (isdigit((unsigned char)*p)) {
            p++;
            digits++;
        }
    }
    if (!digits)
        return 0;
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        if (!isdigit((unsigned char)*p))
            return 0;
        while (isdigit((unsigned char)*p))
            p++;
    }
    if (*p)
        return 0;
    errno = 0;
    double v = strtod(t, NULL);
    if (errno == ERANGE && isinf(v))
        return 2;
    *out = v;
    return 1;
}

static int text_bool(const char *t, int *out)
{
    static const char *const yes[] = {"true", "yes", "on"};
    static const char *const no[] = {"false", "no", "off"};
    for (int i = 0; i < 3; i++) {
        if (strcasecmp(t, yes[i]) == 0) {
            *out = 1;
            return 1;
        }
        if (strcasecmp(t, no[i]) == 0) {
            *out = 0;
            return 1;
        }
    }
    return 0;
}

/* "FILE:LINE:COL: KEY: expected WHAT, got ..." for node n (key may be NULL). */
static int type_error(const bd_node *n, const char *key, const char *what)
{
    char where[512];
    bd_node_where(n, where, sizeof where);
    const char *sep = key ? ": " : "";
    key = key ? key : "";
    if (n->kind == BD_NODE_MAP)
        return bd_seterr(BD_EINVAL, "%s: %s%sexpected %s, got a map", where, key, sep, what);
    if (n->kind == BD_NODE_SEQ)
        return bd_seterr(BD_EINVAL, "%s: %s%sexpected %s, got a sequence", where, key, sep, what);
    if (n->quoted)
        return bd_seterr(BD_EINVAL, "%s: %s%sexpected %s, got the quoted string \"%.200s\"", where,
                         key, sep, what, n->text);
    if (bd_node_is_null(n))
        return bd_seterr(BD_EINVAL, "%s: %s%sexpected %s, got nothing (null)", where, key, sep,
                         what);
    return bd_seterr(BD_EINVAL, "%s: %s%sexpected %s, got '%.200s'", where, key, sep, what,
                     n->text);
}

/* 1 when t is an integer written with a leading 0 ([+-]?0[0-9]+, whole text): YAML 1.1
 * reads 0400 as octal (256), as PyYAML does, and a reader of decimals as 400, so bodhi
 * reads it as neither. */
static int octal_like(const char *t)
{
    if (*t == '+' || *t == '-')
        t++;
    if (t[0] != '0' || !isdigit((unsigned char)t[1]))
        return 0;
    for (; *t; t++)
        if (!isdigit((unsigned char)*t))
            return 0;
    return 1;
}

#define BD_OCTAL_LIKE "a number without a leading 0 (YAML 1.1 reads 0400 as octal, 256)"

static int node_int(const bd_node *n, const char *key, long long *out)
{
    if (n->kind != BD_NODE_SCALAR || n->quoted)
        return type_error(n, key, "an integer");
    if (octal_like(n->text))
        return type_error(n, key, BD_OCTAL_LIKE);
    long long v;
    int r = text_int(n->text, &v);
    if (r == 1) {
        *out = v;
        return BD_OK;
    }
    /* a float that is exactly integral, e.g. 2e6 or 2000000.0 */
    double d;
    int rd = r == 0 ? text_double(n->text, &d) : 0;
    if (rd == 1 && d == floor(d)) {
        if (d >= -9223372036854775808.0 && d < 9223372036854775808.0) {
            *out = (long long)d;
            return BD_OK;
        }
        rd = 2;
    }
    if (r == 2 || rd == 2)
        return type_error(n, key, "an integer in the 64-bit range");
    return type_error(n, key, "an integer");
}

static int node_double(const bd_node *n, const char *key, double *out)
{
    if (n->kind != BD_NODE_SCALAR || n->quoted)
        return type_error(n, key, "a number");
    if (octal_like(n->text))
        return type_error(n, key, BD_OCTAL_LIKE);
    double d;
    int r = text_double(n->text, &d);
    if (r == 1) {
        *out = d;
        return BD_OK;
    }
    return type_error(n, key, r == 2 ? "a finite number" : "a number");
}

int bd_node_as_int(const bd_node *n, long long *out)
{
    if (!n)
        return bd_seterr(BD_EINVAL, "expected an integer, got nothing");
    return node_int(n, NULL, out);
}

int bd_node_as_double(const bd_node *n, double *out)
{
    if (!n)
        return bd_seterr(BD_EINVAL, "expected a number, got nothing");
    return node_double(n, NULL, out);
}

int bd_node_int(const bd_node *map, const char *key, long long def, long long *out)
{
    const bd_node *n = bd_node_get(map, key);
    if (!n) {
        *out = def;
        return BD_OK;
    }
    return node_int(n, key, out);
}

int bd_node_u64(const bd_node *map, const char *key, uint64_t def, uint64_t *out)
{
    const bd_node *n = bd_node_get(map, key);
    if (!n) {
        *out = def;
        return BD_OK;
    }
    if (n->kind == BD_NODE_SCALAR && !n->quoted && octal_like(n->text))
        return type_error(n, key, BD_OCTAL_LIKE);
    if (n->kind != BD_NODE_SCALAR || n->quoted || !bd_text_u64(n->text, out))
        return type_error(n, key, "an integer from 0 to 18446744073709551615");
    return BD_OK;
}

int bd_text_u64(const char *t, uint64_t *out)
{
    /* decimal digits only: no sign, no exponent (a float cannot hold every 64-bit seed) */
    size_t len = t ? strlen(t) : 0;
    if (len == 0 || len > 20)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (t[i] < '0' || t[i] > '9')
            return 0;
    errno = 0;
    unsigned long long v = strtoull(t, NULL, 10);
    if (errno == ERANGE)
        return 0;
    *out = (uint64_t)v;
    return 1;
}

int bd_node_double(const bd_node *map, const char *key, double def, double *out)
{
    const bd_node *n = bd_node_get(map, key);
    if (!n) {
        *out = def;
        return BD_OK;
    }
    return node_double(n, key, out);
}

int bd_node_bool(const bd_node *map, const char *key, int def, int *out)
{
    const bd_node *n = bd_node_get(map, key);
    if (!n) {
        *out = def;
        return BD_OK;
    }
    if (n->kind != BD_NODE_SCALAR || n->quoted || !text_bool(n->text, out))
        return type_error(n, key, "true or false");
    return BD_OK;
}

int bd_node_str(const bd_node *map, const char *key, const char *def, const char **out)
{
    const bd_node *n = bd_node_get(map, key);
    if (!n) {
        *out = def;
        return BD_OK;
    }
    if (n->kind != BD_NODE_SCALAR || bd_node_is_null(n))
        return type_error(n, key, "a string");
    *out = n->text;
    return BD_OK;
}

/* ---- JSON ------------------------------------------------------------------------------- */

static cJSON *scalar_json(const bd_node *n)
{
    if (n->quoted)
        return cJSON_CreateString(n->text);
    if (bd_node_is_null(n))
        return cJSON_CreateNull();
    const char *t = n->text;
    int b;
    if (text_bool(t, &b)) /* the same words bd_node_bool reads as booleans */
        return cJSON_CreateBool(b);
    long long v;
    if (text_int(t, &v) == 1) {
        char buf[32];
        snprintf(buf, sizeof buf, "%lld", v); /* exact, and valid JSON (no '+', no 007) */
        return cJSON_CreateRaw(buf);
    }
    double d;
    if (text_double(t, &d) == 1)
        return cJSON_CreateNumber(d);
    return cJSON_CreateString(t);
}

static cJSON *node_json(const bd_node *n)
{
    if (n->kind == BD_NODE_SCALAR)
        return scalar_json(n);
    cJSON *j = n->kind == BD_NODE_MAP ? cJSON_CreateObject() : cJSON_CreateArray();
    if (!j)
        return NULL;
    for (size_t i = 0; i < n->n; i++) {
        cJSON *c = node_json(n->items[i]);
        if (!c) {
            cJSON_Delete(j);
            return NULL;
        }
        if (n->kind == BD_NODE_MAP)
            cJSON_AddItemToObject(j, n->keys[i], c);
        else
            cJSON_AddItemToArray(j, c);
    }
    return j;
}

char *bd_node_to_json(const bd_node *n)
{
    if (!n)
        return NULL;
    cJSON *j = node_json(n);
    if (!j) {
        bd_seterr(BD_ENOMEM, "out of memory converting to JSON");
        return NULL;
    }
    char *s = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!s)
        bd_seterr(BD_ENOMEM, "out of memory converting to JSON");
    return s;
}

static size_t bd_edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63)
        return 64;
    size_t row[64];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (tolower((unsigned char)a[i - 1]) != tolower((unsigned char)b[j - 1]));
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

const char *bd_nearest(const char *word, const char *const *names, int n)
{
    const char *best = NULL;
    size_t bestd = strlen(word) <= 3 ? 2 : 3; /* at most 1 edit for short words, 2 else */
    for (int i = 0; i < n; i++) {
        size_t d = bd_edit_distance(word, names[i]);
        if (d < bestd) {
            bestd = d;
            best = names[i];
        }
    }
    return best;
}

int bd_node_check_keys(const bd_node *m, const char *const *allowed, const char *in, bd_diags *d)
{
    if (!m || m->kind != BD_NODE_MAP)
        return BD_OK;
    int first = BD_OK;
    for (size_t i = 0; i < m->n; i++) {
        const char *k = m->keys[i];
        int ok = 0;
        int nallowed = 0;
        for (const char *const *a = allowed; *a; a++, nallowed++)
            ok |= strcmp(k, *a) == 0;
        if (ok)
            continue;
        const char *close = bd_nearest(k, allowed, nallowed);
        const char *prep = strcmp(in, "the top level") == 0 ? "at" : "in";
        int rc;
        if (close) {
            rc = bd_seterr(BD_EINVAL, "%s:%d:%d: unknown key '%.200s' %s %s; did you mean '%s'?", m->file ? m->file : "?",
                           m->key_line[i], m->key_col[i], k, prep, in, close);
        } else {
            char list[256] = "";
            size_t len = 0;
            for (const char *const *a = allowed; *a && len < sizeof list; a++)
                len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", a == allowed ? "" : ", ", *a);
            rc = bd_seterr(BD_EINVAL, "%s:%d:%d: unknown key '%.200s' %s %s (known keys: %s)", m->file ? m->file : "?",
                           m->key_line[i], m->key_col[i], k, prep, in, allowed[0] ? list : "none");
        }
        if (!d)
            return rc; /* the first one only */
        bd_diag(d, rc);
        first = first ? first : rc;
    }
    if (first) /* bd_lasterr: the first unknown key, for a caller that reports one */
        return bd_node_check_keys(m, allowed, in, NULL);
    return BD_OK;
}
