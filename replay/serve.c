/* serve.c: `bodhi serve [DIR...] [--listen HOST:PORT]`: a web page over the runs under the
 * folders given (replay/serve.h). HTTP by libmicrohttpd, one epoll thread, loopback only.
 *   GET /                 the list of runs (replay/page.c draws it)
 *   GET /run?run=ID&...   curves per agent and metric of one run or several overlaid
 *   GET /api/runs         JSON: every run found now, with status, phase, agents, steps,
 *                         last mean return and a sparkline of it
 *   GET /api/log?run=ID&from=OFFSET   JSON: the update events (common/tfevents.h's metrics)
 *                         of log.jsonl from byte OFFSET (at most SERVE_CHUNK bytes), and the
 *                         offset to ask from next
 *   GET /api/stream?run=ID[&run=ID...][&from=O1,O2...]   server-sent events: each run's
 *                         updates from byte O (0 when not given; a reconnecting browser's
 *                         Last-Event-ID), then the new ones as log.jsonl grows (replay/stream.c)
 * A run is named by ID = "<k>/<sub>" (k: the folder's index on the command line, sub: its
 * folder under it, or "." for the folder itself) and is served only when that exact ID is
 * among the runs found by a fresh scan: a request never names a path, so nothing outside
 * the runs can be read. Runs whose run.yml are the same but for the top-level `seed:` line
 * are one sweep's seeds: /api/runs gives them the same "sweep" key. Requests other than
 * GET, longer than the connection's memory limit or slower than SERVE_TIMEOUT_S are
 * refused or dropped by libmicrohttpd. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <microhttpd.h>

#include "common/tfevents.h"
#include "common/util.h"
#include "replay/replay.h"
#include "replay/serve.h"

#define SERVE_MAX_DIRS 16
#define SERVE_SCAN_MAX ((size_t)64 << 20) /* log bytes /api/runs reads of one run */
#define SERVE_TIMEOUT_S 15
#define SERVE_CONNECTIONS 1024
#define SERVE_SPARK 60                    /* points of a sparkline */

/* A run's file (log.jsonl, summary.json) opened for reading when it is a regular file and
 * not a symbolic link, checked and read through one descriptor opened without blocking (a
 * FIFO or a file swapped in is refused, never waited on); NULL otherwise. */
static FILE *open_regular(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW);
    struct stat st;
    if (fd < 0)
        return NULL;
    FILE *f = NULL;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && fcntl(fd, F_SETFL, 0) == 0)
        f = fdopen(fd, "r");
    if (!f)
        close(fd);
    return f;
}

int bd_serve_is_run(const char *dir)
{
    char p[PATH_MAX];
    struct stat st;
    return snprintf(p, sizeof p, "%s/log.jsonl", dir) < (int)sizeof p && lstat(p, &st) == 0 && S_ISREG(st.st_mode)
           && lstat(dir, &st) == 0 && S_ISDIR(st.st_mode); /* no run through a symbolic link */
}

int bd_serve_scan_dir(const char *dir, int k, run_ref *out, int max)
{
    int n = 0;
    if (bd_serve_is_run(dir)) {
        snprintf(out[n].id, sizeof out[n].id, "%d/.", k);
        snprintf(out[n++].path, sizeof out[n].path, "%s", dir);
        return n;
    }
    struct dirent **ents = NULL;
    int m = scandir(dir, &ents, NULL, alphasort);
    for (int i = 0; i < m; i++) {
        const char *e = ents[i]->d_name;
        char p[PATH_MAX];
        if (e[0] != '.' && n < max && snprintf(p, sizeof p, "%s/%s", dir, e) < (int)sizeof p) {
            if (bd_serve_is_run(p)) {
                snprintf(out[n].id, sizeof out[n].id, "%d/%s", k, e);
                snprintf(out[n++].path, sizeof out[n].path, "%s", p);
            } else {
                struct dirent **sub = NULL;
                int ms = scandir(p, &sub, NULL, alphasort);
                for (int j = 0; j < ms; j++) {
                    char q[PATH_MAX];
                    if (sub[j]->d_name[0] != '.' && n < max
                        && snprintf(q, sizeof q, "%s/%s", p, sub[j]->d_name) < (int)sizeof q && bd_serve_is_run(q)) {
                        snprintf(out[n].id, sizeof out[n].id, "%d/%s/%s", k, e, sub[j]->d_name);
                        snprintf(out[n++].path, sizeof out[n].path, "%s", q);
                    }
                    free(sub[j]);
                }
                free(sub);
            }
        }
        free(ents[i]);
    }
    free(ents);
    return n;
}

/* The runs under the folders (bd_serve_scan_dir of each), sorted by id. */
static int scan(const serve_ctx *c, run_ref *out, int max)
{
    int n = 0;
    for (int k = 0; k < c->ndirs && n < max; k++)
        n += bd_serve_scan_dir(c->dirs[k], k, out + n, max - n);
    return n;
}

const run_ref *bd_serve_find_run(const serve_ctx *c, run_ref *runs, const char *id)
{
    if (!id)
        return NULL;
    int n = scan(c, runs, SERVE_MAX_RUNS);
    for (int i = 0; i < n; i++)
        if (strcmp(runs[i].id, id) == 0)
            return &runs[i];
    return NULL;
}

/* Up to max bytes of path from offset `from`, cut after the last whole line; NULL when the
 * file cannot be read there. A line longer than max is skipped whole (*next passes it). */
static char *read_lines(const char *path, long long from, size_t max, size_t *len, long long *next)
{
    *len = 0;
    *next = from;
    FILE *f = open_regular(path);
    if (!f)
        return NULL;
    char *buf = malloc(max + 1);
    if (!buf || fseeko(f, (off_t)from, SEEK_SET) != 0) {
        free(buf);
        fclose(f);
        return NULL;
    }
    size_t got = fread(buf, 1, max, f), n = got;
    while (n > 0 && buf[n - 1] != '\n')
        n--;
    if (n == 0 && got == max) { /* no line end in a whole chunk: past that line */
        int ch;
        long long skip = (long long)got;
        while ((ch = fgetc(f)) != EOF && ch != '\n')
            skip++;
        *next = from + skip + (ch == '\n');
    } else
        *next = from + (long long)n;
    buf[n] = '\0';
    *len = n;
    fclose(f);
    return buf;
}

/* A brain's event as a row for the page: its phase and agent, and its number `a` and `b`
 * (0 where it has none); NULL when it names no phase or agent. */
static cJSON *event_row(const cJSON *o, const char *a, const char *b)
{
    const cJSON *ph = cJSON_GetObjectItemCaseSensitive(o, "phase"), *ag = cJSON_GetObjectItemCaseSensitive(o, "agent");
    if (!cJSON_IsString(ph) || !cJSON_IsString(ag))
        return NULL;
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "phase", ph->valuestring);
    cJSON_AddStringToObject(r, "agent", ag->valuestring);
    const char *keys[2] = {a, b};
    for (int k = 0; k < 2; k++) {
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, keys[k]);
        cJSON_AddNumberToObject(r, keys[k], cJSON_IsNumber(x) ? x->valuedouble : 0);
    }
    return r;
}

/* An update event as the page wants it: phase, agent, steps, t and its metrics. */
static cJSON *update_row(const cJSON *o)
{
    cJSON *r = event_row(o, "steps", "t");
    if (!r)
        return NULL;
    const char *tag[BD_UPDATE_METRICS_MAX];
    double v[BD_UPDATE_METRICS_MAX];
    int n = bd_update_metrics(o, tag, v, BD_UPDATE_METRICS_MAX);
    cJSON *m = cJSON_CreateObject();
    for (int i = 0; i < n; i++)
        cJSON_AddNumberToObject(m, tag[i], v[i]);
    cJSON_AddItemToObject(r, "m", m);
    return r;
}

/* Calls fn on every JSON event of the lines in buf. */
static void each_event(char *buf, void (*fn)(const cJSON *o, const char *kind, void *arg), void *arg)
{
    for (char *line = buf, *nl; line && *line; line = nl ? nl + 1 : NULL) {
        nl = strchr(line, '\n');
        size_t n = nl ? (size_t)(nl - line) : strlen(line);
        cJSON *o = cJSON_ParseWithLength(line, n);
        const cJSON *ev = cJSON_GetObjectItemCaseSensitive(o, "event");
        if (cJSON_IsString(ev))
            fn(o, ev->valuestring, arg);
        cJSON_Delete(o);
    }
}

int bd_serve_log_moved(const struct stat *st, dev_t *dev, ino_t *ino, long long off)
{
    const int moved = ((*dev || *ino) && (st->st_dev != *dev || st->st_ino != *ino)) || st->st_size < off;
    *dev = st->st_dev;
    *ino = st->st_ino;
    return moved;
}

/* A brain's "set" event (`bodhi set`'s changes it took) as the page wants it: phase,
 * agent, the first update and the steps they came at, and {KEY: VALUE}. */
static cJSON *change_row(const cJSON *o)
{
    const cJSON *set = cJSON_GetObjectItemCaseSensitive(o, "set"), *x;
    cJSON *r = cJSON_IsObject(set) ? event_row(o, "update", "steps") : NULL, *kv;
    if (!r)
        return NULL;
    kv = cJSON_CreateObject();
    cJSON_ArrayForEach(x, set) {
        if (cJSON_IsString(x) && x->string)
            cJSON_AddStringToObject(kv, x->string, x->valuestring);
    }
    cJSON_AddItemToObject(r, "set", kv);
    return r;
}

/* The updates and the changes of a stretch of log (bd_serve_log). */
typedef struct {
    cJSON *updates, *changes;
} log_rows;

static void log_event(const cJSON *o, const char *kind, void *arg)
{
    log_rows *rows = arg;
    cJSON *row;
    if (strcmp(kind, "update") == 0 && (row = update_row(o)))
        cJSON_AddItemToArray(rows->updates, row);
    else if (strcmp(kind, "set") == 0 && (row = change_row(o)))
        cJSON_AddItemToArray(rows->changes, row);
}

cJSON *bd_serve_log(const run_ref *r, long long from)
{
    char log[PATH_MAX + 16];
    snprintf(log, sizeof log, "%s/log.jsonl", r->path);
    size_t len;
    long long next;
    char *buf = read_lines(log, from, SERVE_CHUNK, &len, &next);
    cJSON *out = cJSON_CreateObject();
    cJSON_AddStringToObject(out, "run", r->id);
    log_rows rows;
    rows.updates = cJSON_AddArrayToObject(out, "updates");
    rows.changes = cJSON_AddArrayToObject(out, "changes");
    if (buf)
        each_event(buf, log_event, &rows);
    cJSON_AddNumberToObject(out, "next", (double)next);
    free(buf);
    return out;
}

/* The whole of a run's small file (summary.json, run.yml: at most 1 MiB) when regular;
 * NULL otherwise. */
static char *read_small(const char *dir, const char *name)
{
    char p[PATH_MAX + 32], *text = NULL;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = open_regular(p);
    int fd = f ? dup(fileno(f)) : -1;
    if (f)
        fclose(f);
    if (fd >= 0 && bd_read_fd_max(fd, p, 1 << 20, &text, NULL) != BD_OK)
        text = NULL;
    return text;
}

void bd_serve_status(const char *path, char *out, size_t n)
{
    char *sum = read_small(path, "summary.json");
    cJSON *sj = sum ? cJSON_Parse(sum) : NULL;
    const cJSON *status = cJSON_GetObjectItemCaseSensitive(sj, "status");
    snprintf(out, n, "%s", cJSON_IsString(status) ? status->valuestring : "");
    cJSON_Delete(sj);
    free(sum);
}

/* FNV-1a, 64 bits, of every line of run.yml but one that starts "seed:" (the top level's). */
void bd_serve_sweep_key(const char *path, char out[17])
{
    char *yml = read_small(path, "run.yml");
    out[0] = '\0';
    if (!yml)
        return;
    uint64_t h = 14695981039346656037ull;
    for (char *line = yml, *nl; line && *line; line = nl ? nl + 1 : NULL) {
        nl = strchr(line, '\n');
        size_t n = nl ? (size_t)(nl - line) + 1 : strlen(line);
        if (strncmp(line, "seed:", 5) == 0)
            continue;
        for (size_t i = 0; i < n; i++)
            h = (h ^ (unsigned char)line[i]) * 1099511628211ull;
    }
    snprintf(out, 17, "%016llx", (unsigned long long)h);
    free(yml);
}

typedef struct {
    cJSON *agents, *spark;
    char phase[128];
    double steps, ret;
    int have_ret;
} run_summary;

static void summary_event(const cJSON *o, const char *kind, void *arg)
{
    run_summary *s = arg;
    const cJSON *ph = cJSON_GetObjectItemCaseSensitive(o, "phase"), *ag = cJSON_GetObjectItemCaseSensitive(o, "agent");
    if (strcmp(kind, "phase") == 0 && cJSON_IsString(ph)) {
        snprintf(s->phase, sizeof s->phase, "%s", ph->valuestring);
        cJSON_Delete(s->agents);
        s->agents = cJSON_CreateArray();
        while (cJSON_GetArraySize(s->spark))
            cJSON_DeleteItemFromArray(s->spark, 0);
    } else if (strcmp(kind, "update") == 0 && cJSON_IsString(ag)) {
        int known = 0;
        const cJSON *x;
        cJSON_ArrayForEach(x, s->agents) known |= strcmp(x->valuestring, ag->valuestring) == 0;
        if (!known)
            cJSON_AddItemToArray(s->agents, cJSON_CreateString(ag->valuestring));
        const cJSON *first = cJSON_GetArrayItem(s->agents, 0);
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(o, "steps");
        const cJSON *mr = cJSON_GetObjectItemCaseSensitive(o, "mean_return");
        if (first && strcmp(first->valuestring, ag->valuestring) == 0) { /* the first agent's curve */
            s->steps = cJSON_IsNumber(st) ? st->valuedouble : s->steps;
            if (cJSON_IsNumber(mr)) {
                s->ret = mr->valuedouble;
                s->have_ret = 1;
                cJSON_AddItemToArray(s->spark, cJSON_CreateNumber(mr->valuedouble));
                if (cJSON_GetArraySize(s->spark) > 4 * SERVE_SPARK) /* thinned: every other point */
                    for (int i = 1; i < cJSON_GetArraySize(s->spark); i++)
                        cJSON_DeleteItemFromArray(s->spark, i);
            }
        }
    }
}

/* What /api/runs knows of a run's log: its summary so far, and where it was read to (the
 * next poll reads only what was written since). Used by the server's thread only. */
struct serve_cached {
    char path[PATH_MAX];
    dev_t dev;
    ino_t ino;
    long long off;
    int seen; /* found by this scan: the others are dropped after it */
    run_summary s;
};

static void summary_reset(run_summary *s)
{
    cJSON_Delete(s->agents);
    cJSON_Delete(s->spark);
    *s = (run_summary){.agents = cJSON_CreateArray(), .spark = cJSON_CreateArray()};
}

/* The cache entry of the run at path (a new one when there is room; NULL otherwise). */
static struct serve_cached *cached(serve_ctx *c, const char *path)
{
    for (int i = 0; i < c->ncache; i++)
        if (strcmp(c->cache[i].path, path) == 0)
            return &c->cache[i];
    if (c->ncache == SERVE_MAX_RUNS || (!c->cache && !(c->cache = calloc(SERVE_MAX_RUNS, sizeof *c->cache))))
        return NULL;
    struct serve_cached *e = &c->cache[c->ncache++];
    memset(e, 0, sizeof *e);
    snprintf(e->path, sizeof e->path, "%s", path);
    summary_reset(&e->s);
    return e;
}

/* e's summary brought up to the end of its log: from where the last call stopped, or
 * afresh when the file was replaced or cut; a log longer than SERVE_SCAN_MAX is summed
 * from its last SERVE_SCAN_MAX bytes (its first, partial line skipped). */
static void summarize(struct serve_cached *e)
{
    char p[PATH_MAX + 16];
    struct stat st;
    snprintf(p, sizeof p, "%s/log.jsonl", e->path);
    if (stat(p, &st) != 0)
        return;
    if (bd_serve_log_moved(&st, &e->dev, &e->ino, e->off)) {
        summary_reset(&e->s);
        e->off = 0;
    }
    int partial = 0;
    if (e->off == 0 && (size_t)st.st_size > SERVE_SCAN_MAX) {
        e->off = st.st_size - (long long)SERVE_SCAN_MAX;
        partial = 1;
    }
    while (e->off < st.st_size) {
        size_t len;
        long long next;
        char *buf = read_lines(p, e->off, SERVE_SCAN_MAX, &len, &next), *from = buf;
        if (!buf || next == e->off) {
            free(buf);
            break;
        }
        if (partial && strchr(buf, '\n'))
            from = strchr(buf, '\n') + 1;
        partial = 0;
        each_event(from, summary_event, &e->s);
        free(buf);
        e->off = next;
    }
}

static cJSON *api_runs(serve_ctx *c)
{
    run_ref *runs = malloc(SERVE_MAX_RUNS * sizeof *runs);
    cJSON *out = cJSON_CreateArray();
    int n = runs ? scan(c, runs, SERVE_MAX_RUNS) : 0;
    for (int i = 0; i < c->ncache; i++)
        c->cache[i].seen = 0;
    for (int i = 0; i < n; i++) {
        struct serve_cached *e = cached(c, runs[i].path);
        if (!e)
            continue;
        e->seen = 1;
        summarize(e);
        cJSON *r = cJSON_CreateObject();
        cJSON_AddStringToObject(r, "id", runs[i].id);
        cJSON_AddStringToObject(r, "path", runs[i].path);
        char status[64], sweep[17];
        bd_serve_status(runs[i].path, status, sizeof status);
        cJSON_AddStringToObject(r, "status", status[0] ? status : "running (or killed)");
        bd_serve_sweep_key(runs[i].path, sweep);
        cJSON_AddStringToObject(r, "sweep", sweep);
        cJSON_AddStringToObject(r, "phase", e->s.phase);
        cJSON_AddItemToObject(r, "agents", cJSON_Duplicate(e->s.agents, 1));
        cJSON_AddNumberToObject(r, "steps", e->s.steps);
        if (e->s.have_ret)
            cJSON_AddNumberToObject(r, "mean_return", e->s.ret);
        cJSON_AddItemToObject(r, "spark", cJSON_Duplicate(e->s.spark, 1));
        cJSON_AddItemToArray(out, r);
    }
    for (int i = 0; i < c->ncache;) /* runs gone since: dropped */
        if (!c->cache[i].seen) {
            cJSON_Delete(c->cache[i].s.agents);
            cJSON_Delete(c->cache[i].s.spark);
            c->cache[i] = c->cache[--c->ncache];
        } else
            i++;
    free(runs);
    return out;
}

/* Frees the cache of /api/runs. */
static void cache_free(serve_ctx *c)
{
    for (int i = 0; i < c->ncache; i++) {
        cJSON_Delete(c->cache[i].s.agents);
        cJSON_Delete(c->cache[i].s.spark);
    }
    free(c->cache);
}

enum MHD_Result bd_serve_answer(struct MHD_Connection *conn, unsigned code, const char *type, char *body, size_t len)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", type);
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, "Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline'; "
                                                             "style-src 'unsafe-inline'; connect-src 'self'");
    enum MHD_Result rc = MHD_queue_response(conn, code, resp);
    MHD_destroy_response(resp);
    return rc;
}

static enum MHD_Result answer_text(struct MHD_Connection *conn, unsigned code, const char *text)
{
    char *b = bd_strdup(text);
    return b ? bd_serve_answer(conn, code, "text/plain; charset=utf-8", b, strlen(b)) : MHD_NO;
}

static enum MHD_Result answer_json(struct MHD_Connection *conn, cJSON *j)
{
    char *b = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return b ? bd_serve_answer(conn, MHD_HTTP_OK, "application/json", b, strlen(b)) : MHD_NO;
}

/* A Host header that names a loopback server: localhost, [::1] or an IPv4 address in
 * 127/8, with or without a port. */
static int loopback_host(const char *host)
{
    if (!host)
        return 0;
    char name[64];
    size_t n = strcspn(host, ":");
    if (strncmp(host, "[::1]", 5) == 0)
        n = 5;
    if (n == 0 || n >= sizeof name)
        return 0;
    memcpy(name, host, n);
    name[n] = '\0';
    const char *rest = host + n;
    if (*rest == ':') { /* a port: digits only */
        rest++;
        if (!*rest || strspn(rest, "0123456789") != strlen(rest))
            return 0;
    } else if (*rest)
        return 0;
    struct in_addr a;
    return strcmp(name, "localhost") == 0 || strcmp(name, "[::1]") == 0
           || (inet_pton(AF_INET, name, &a) == 1 && (ntohl(a.s_addr) >> 24) == 127);
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                              const char *version, const char *upload, size_t *upload_len, void **state)
{
    (void)version;
    (void)upload;
    serve_ctx *c = cls;
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return answer_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET\n"); /* before any body is read */
    if (!*state) { /* first call: headers only */
        *state = (void *)1;
        return MHD_YES;
    }
    if (*upload_len)
        return answer_text(conn, MHD_HTTP_BAD_REQUEST, "a GET has no body\n");
    /* Only pages that name this loopback server: a page elsewhere that rebinds its own name
     * to 127.0.0.1 cannot read the runs through the user's browser. */
    const char *host = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
    if (!loopback_host(host))
        return answer_text(conn, MHD_HTTP_FORBIDDEN, "bodhi serve answers requests for 127.0.0.1 or localhost only\n");
    if (strcmp(url, "/") == 0 || strcmp(url, "/run") == 0) {
        char *b = bd_strdup(bd_serve_page(strcmp(url, "/run") == 0));
        return b ? bd_serve_answer(conn, MHD_HTTP_OK, "text/html; charset=utf-8", b, strlen(b)) : MHD_NO;
    }
    if (strcmp(url, "/api/runs") == 0)
        return answer_json(conn, api_runs(c));
    if (strcmp(url, "/api/stream") == 0)
        return bd_serve_stream(c, conn);
    if (strcmp(url, "/api/log") == 0) {
        const char *id = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "run");
        const char *from = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "from");
        char *end = NULL;
        errno = 0;
        long long off = from ? strtoll(from, &end, 10) : 0;
        if (from && (end == from || *end || off < 0 || off > SERVE_MAX_OFFSET || errno == ERANGE))
            return answer_text(conn, MHD_HTTP_BAD_REQUEST, "from: a byte offset, 0 to 2^53\n");
        run_ref *runs = malloc(SERVE_MAX_RUNS * sizeof *runs);
        const run_ref *r = runs ? bd_serve_find_run(c, runs, id) : NULL;
        enum MHD_Result rc = r ? answer_json(conn, bd_serve_log(r, off)) : answer_text(conn, MHD_HTTP_NOT_FOUND, "no such run\n");
        free(runs);
        return rc;
    }
    return answer_text(conn, MHD_HTTP_NOT_FOUND, "not found\n");
}

/* libmicrohttpd's messages on stderr, named as bodhi serve's; a client gone before its
 * answer was sent (a page closed while its event stream ran) is routine and not said. */
static void log_mhd(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    if (strncmp(fmt, "Failed to send", 14) == 0)
        return;
    fputs("bodhi serve: ", stderr);
    vfprintf(stderr, fmt, ap);
}

/* HOST:PORT on a loopback address, into sa; BD_EINVAL naming what is wrong. */
static int loopback_addr(const char *listen, struct sockaddr_in *sa)
{
    char host[64];
    int port = 0, used = 0;
    if (sscanf(listen, "%63[^:]:%d%n", host, &port, &used) != 2 || listen[used] || port < 0 || port > 65535)
        return bd_seterr(BD_EINVAL, "--listen '%s': not HOST:PORT", listen);
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    if (strcmp(host, "localhost") == 0)
        snprintf(host, sizeof host, "127.0.0.1");
    if (inet_pton(AF_INET, host, &sa->sin_addr) != 1)
        return bd_seterr(BD_EINVAL, "--listen '%s': '%s' is no IPv4 address", listen, host);
    if ((ntohl(sa->sin_addr.s_addr) >> 24) != 127)
        return bd_seterr(BD_EINVAL,
                         "--listen '%s': not a loopback address. The page has no TLS or credential: "
                         "serve on 127.0.0.1 and reach it from another machine through an SSH tunnel "
                         "(ssh -L %d:127.0.0.1:%d HOST)",
                         listen, port, port);
    return BD_OK;
}

int bd_serve_runs(const char *const *dirs, int ndirs, const char *listen, FILE *out)
{
    if (ndirs < 1 || ndirs > SERVE_MAX_DIRS)
        return bd_seterr(BD_EINVAL, "serve: 1 to %d folders, not %d", SERVE_MAX_DIRS, ndirs);
    for (int k = 0; k < ndirs; k++) {
        struct stat st;
        if (stat(dirs[k], &st) != 0 || !S_ISDIR(st.st_mode))
            return bd_seterr(BD_ENOTFOUND, "serve: '%s' is no folder", dirs[k]);
    }
    struct sockaddr_in sa;
    int rc = loopback_addr(listen, &sa);
    if (rc)
        return rc;
    serve_ctx c = {.dirs = dirs, .ndirs = ndirs};
    pthread_mutex_init(&c.mu, NULL);
    struct rlimit rl; /* a descriptor per connection, up to SERVE_CONNECTIONS of them */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* the server's thread inherits it; sigwait below */
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG, 0, NULL, NULL, handle, &c,
        MHD_OPTION_EXTERNAL_LOGGER, log_mhd, NULL, MHD_OPTION_SOCK_ADDR, &sa,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)SERVE_CONNECTIONS, MHD_OPTION_CONNECTION_TIMEOUT,
        (unsigned)SERVE_TIMEOUT_S, MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)32768, MHD_OPTION_END);
    pthread_t waker;
    if (!d || pthread_create(&waker, NULL, bd_serve_waker, &c) != 0) {
        int e = errno;
        if (d)
            MHD_stop_daemon(d);
        pthread_mutex_destroy(&c.mu);
        return bd_seterr(BD_EIO, "serve: cannot listen on %s: %s", listen, strerror(e));
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    fprintf(out, "bodhi serve: http://%s:%u/ (%d folder(s); Ctrl-C ends)\n", inet_ntoa(sa.sin_addr),
            info ? (unsigned)info->port : 0u, ndirs);
    fflush(out);
    int sig = 0;
    sigwait(&set, &sig);
    pthread_mutex_lock(&c.mu);
    c.stopping = 1; /* the streams end, none sleeps again: then the daemon may stop */
    pthread_mutex_unlock(&c.mu);
    pthread_join(waker, NULL);
    MHD_stop_daemon(d);
    cache_free(&c);
    pthread_mutex_destroy(&c.mu);
    return BD_OK;
}
