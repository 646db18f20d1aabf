/* diag.c: a list of errors (see diag.h). */
#define _GNU_SOURCE
#include "config/diag.h"

#include <stdlib.h>
#include <string.h>

/* 1 when a and b say the same thing about the same place: equal but for the names of
 * phases ("phase 'x'"), since a later phase inherits what an earlier one wrote, with its
 * problems, at the same place. */
static int bd_diag_same(const char *a, const char *b, size_t blen)
{
    const char *ae = a + strlen(a), *be = b + blen;
    while (a < ae && b < be) {
        if (ae - a > 7 && be - b > 7 && strncmp(a, "phase '", 7) == 0 && strncmp(b, "phase '", 7) == 0) {
            const char *qa = memchr(a + 7, '\'', (size_t)(ae - a - 7)), *qb = memchr(b + 7, '\'', (size_t)(be - b - 7));
            if (qa && qb) {
                a = qa + 1;
                b = qb + 1;
                continue;
            }
        }
        if (*a != *b)
            return 0;
        a++;
        b++;
    }
    return a == ae && b == be;
}

static int bd_diag_line(bd_diags *d, const char *s, size_t len)
{
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\r'))
        len--;
    if (!len)
        return 0;
    for (int i = 0; i < d->n; i++)
        if (bd_diag_same(d->msg[i], s, len))
            return 0;
    if (d->n >= BD_DIAGS_MAX) { /* a file of nothing but errors: count the rest */
        d->more++;
        return 0;
    }
    if (d->n == d->cap) {
        int cap = d->cap ? 2 * d->cap : 16;
        char **m = realloc(d->msg, (size_t)cap * sizeof *m);
        if (!m)
            return -1;
        d->msg = m;
        d->cap = cap;
    }
    char *c = strndup(s, len);
    if (!c)
        return -1;
    d->msg[d->n++] = c;
    return 0;
}

/* Appends s[0, len) to out, control characters (a name may hold a line break) written
 * as \n, \r, \t or \xNN so that one error stays one line. */
static size_t bd_diag_escape(char *out, size_t at, size_t cap, const char *s, size_t len)
{
    for (size_t i = 0; i < len && at + 5 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != 0x7f) {
            out[at++] = (char)c;
            continue;
        }
        at += (size_t)snprintf(out + at, cap - at, c == '\n' ? "\\n" : c == '\r' ? "\\r" : c == '\t' ? "\\t" : "\\x%02x",
                               c);
    }
    out[at] = '\0';
    return at;
}

int bd_diag(bd_diags *d, int rc)
{
    if (rc == BD_OK || !d)
        return rc;
    if (d->rc == BD_OK)
        d->rc = rc;
    const char *e = bd_lasterr();
    if (!e[0])
        e = bd_strerror(rc);
    /* one message is one error, on one line whatever names it quotes */
    char one[8192];
    size_t at = bd_diag_escape(one, 0, sizeof one, e, strlen(e));
    bd_diag_line(d, one, at);
    return rc;
}

/* "FILE:LINE:COL: ..." -> file, line, col; 0 when the message has no position. */
static int bd_diag_pos(const char *m, const char **file_end, long *line, long *col)
{
    for (const char *p = strchr(m, ':'); p; p = strchr(p + 1, ':')) {
        char *e1, *e2;
        long l = strtol(p + 1, &e1, 10);
        if (e1 == p + 1 || *e1 != ':')
            continue;
        long c = strtol(e1 + 1, &e2, 10);
        if (e2 == e1 + 1 || *e2 != ':')
            continue;
        *file_end = p;
        *line = l;
        *col = c;
        return 1;
    }
    return 0;
}

static int bd_diag_cmp(const void *pa, const void *pb)
{
    const char *a = *(const char *const *)pa, *b = *(const char *const *)pb;
    const char *ea, *eb;
    long la, ca, lb, cb;
    int ha = bd_diag_pos(a, &ea, &la, &ca), hb = bd_diag_pos(b, &eb, &lb, &cb);
    if (ha != hb)
        return hb - ha; /* positioned first */
    if (!ha)
        return 0;
    size_t fa = (size_t)(ea - a), fb = (size_t)(eb - b);
    int fc = strncmp(a, b, fa < fb ? fa : fb);
    if (fc || fa != fb)
        return fc ? fc : (fa < fb ? -1 : 1);
    if (la != lb)
        return la < lb ? -1 : 1;
    return ca < cb ? -1 : ca > cb;
}

/* The messages in file order (a stable sort: ties keep the order found). */
static char **bd_diag_sorted(const bd_diags *d)
{
    char **s = malloc((size_t)(d->n ? d->n : 1) * sizeof *s);
    if (!s)
        return NULL;
    memcpy(s, d->msg, (size_t)d->n * sizeof *s);
    for (int i = 1; i < d->n; i++) /* insertion sort: stable, and the lists are short */
        for (int j = i; j > 0 && bd_diag_cmp(&s[j - 1], &s[j]) > 0; j--) {
            char *t = s[j];
            s[j] = s[j - 1];
            s[j - 1] = t;
        }
    return s;
}

void bd_diags_print(const bd_diags *d, FILE *f, int max)
{
    char **s = bd_diag_sorted(d);
    char *const *list = s ? s : d->msg;
    int shown = max > 0 && d->n > max ? max : d->n;
    for (int i = 0; i < shown; i++)
        fprintf(f, "%s\n", list[i]);
    long more = (long)(d->n - shown) + d->more;
    if (more > 0)
        fprintf(f, "... and %ld more error%s\n", more, more == 1 ? "" : "s");
    free(s);
}

int bd_diags_finish(bd_diags *d)
{
    int rc = d->rc;
    if (rc != BD_OK) {
        char buf[4096];
        size_t len = 0;
        buf[0] = '\0';
        char **s = bd_diag_sorted(d);
        char *const *list = s ? s : d->msg;
        int i = 0;
        for (; i < d->n; i++) {
            size_t l = strlen(list[i]);
            if (len + l + 2 + 32 > sizeof buf && i > 0)
                break;
            len += (size_t)snprintf(buf + len, sizeof buf - len, "%s%s", i ? "\n" : "", list[i]);
            if (len >= sizeof buf)
                len = sizeof buf - 1;
        }
        if (i < d->n || d->more)
            snprintf(buf + len, sizeof buf - len, "\n... and %ld more", (long)(d->n - i) + d->more);
        free(s);
        bd_seterr(rc, "%s", buf);
    }
    bd_diags_fini(d);
    return rc;
}

void bd_diags_fini(bd_diags *d)
{
    for (int i = 0; i < d->n; i++)
        free(d->msg[i]);
    free(d->msg);
    d->msg = NULL;
    d->n = d->cap = 0;
    d->more = 0;
    d->rc = BD_OK;
}

int bd_diags_move(bd_diags *from, bd_diags *to)
{
    for (int k = 0; k < from->n; k++) {
        bd_seterr(from->rc, "%s", from->msg[k]);
        bd_diag(to, from->rc);
    }
    int rc = from->rc;
    bd_diags_fini(from);
    return rc;
}
