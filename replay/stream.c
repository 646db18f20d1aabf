/* stream.c: `bodhi serve`'s GET /api/stream: server-sent events of the runs' log.jsonl, so
 * a page's curves grow as the runs write updates and nothing is fetched twice.
 *   event: hello  data: {"runs":[{"run":ID,"path":..,"sweep":KEY}...]}  once
 *   event: log    data: {"runs":[{"run":ID,"updates":[...],"changes":[...],"next":OFFSET[,"reset":true]
 *                 [,"status":S]}...]}  ("reset": its log was replaced or cut, and is read
 *                 again from its start: what the page holds of that run is stale)
 *                 id: O1,O2,...  (each run's next offset: a browser that reconnects sends it
 *                 back as Last-Event-ID and goes on from there)
 *   ": \n\n"      a comment every SERVE_KEEPALIVE_S when nothing is new, so a quiet stream
 *                 is not taken for an idle connection
 * A stream whose answer is sent and has nothing new is suspended (libmicrohttpd's
 * suspend/resume, so the server's one thread never waits on it); bd_serve_waker resumes
 * every sleeping stream each SERVE_WAKE_MS and each then reads what its runs' logs gained.
 * A run's "status" comes once, when its summary.json says it ended and its log is read
 * to the end. At most SERVE_STREAMS streams are open at once (503 beyond), each of at most
 * SERVE_STREAM_RUNS runs; the runs are found by id in a fresh scan, as /api/log's are. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "replay/serve.h"

#define SERVE_STREAMS 64
#define SERVE_STREAM_RUNS 16
#define SERVE_WAKE_MS 500
#define SERVE_KEEPALIVE_S 5.0

typedef struct serve_stream {
    serve_ctx *c;
    struct MHD_Connection *conn;
    struct serve_stream *next; /* in c->asleep */
    int n;
    run_ref run[SERVE_STREAM_RUNS];
    long long off[SERVE_STREAM_RUNS];
    dev_t dev[SERVE_STREAM_RUNS]; /* the log file read (bd_serve_log_moved) */
    ino_t ino[SERVE_STREAM_RUNS];
    int ended[SERVE_STREAM_RUNS]; /* its status was sent */
    char *buf;                    /* what is still to send, from pos */
    size_t len, pos;
    double sent; /* monotonic seconds of the last event or comment */
} serve_stream;

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* buf becomes "event: KIND\n[id: ...\n]data: JSON\n\n" (j deleted); 0 when out of memory. */
static int set_event(serve_stream *s, const char *kind, cJSON *j, const char *id)
{
    char *data = cJSON_PrintUnformatted(j); /* one line: strings have their newlines escaped */
    cJSON_Delete(j);
    free(s->buf);
    s->buf = data ? bd_strfmt("event: %s\n%s%s%sdata: %s\n\n", kind, id ? "id: " : "", id ? id : "", id ? "\n" : "", data)
                  : NULL;
    free(data);
    s->pos = 0;
    s->len = s->buf ? strlen(s->buf) : 0;
    return s->buf != NULL;
}

/* What each run's log gained since the last event, as the next event (or a keep-alive
 * comment when it is time for one); nothing when there is nothing to say. */
static void fill(serve_stream *s)
{
    free(s->buf);
    s->buf = NULL;
    s->len = s->pos = 0;
    cJSON *ev = cJSON_CreateObject(), *runs = cJSON_AddArrayToObject(ev, "runs");
    int news = 0;
    long long got = 0; /* log bytes in this event: past half a chunk, the rest waits for the next */
    for (int i = 0; i < s->n && got < (long long)SERVE_CHUNK / 2; i++) {
        if (s->ended[i] || !bd_serve_is_run(s->run[i].path))
            continue;
        char status[64], lp[PATH_MAX + 16];
        bd_serve_status(s->run[i].path, status, sizeof status); /* before the log: all of it is then in */
        struct stat st;
        snprintf(lp, sizeof lp, "%s/log.jsonl", s->run[i].path);
        const int moved = stat(lp, &st) == 0 && bd_serve_log_moved(&st, &s->dev[i], &s->ino[i], s->off[i]);
        if (moved) /* replaced or cut: read again from its start, and the page starts afresh */
            s->off[i] = 0;
        cJSON *r = bd_serve_log(&s->run[i], s->off[i]);
        if (moved)
            cJSON_AddBoolToObject(r, "reset", 1);
        const cJSON *next = cJSON_GetObjectItemCaseSensitive(r, "next");
        long long to = cJSON_IsNumber(next) ? (long long)next->valuedouble : s->off[i];
        if (to == s->off[i] && status[0] && !moved) { /* read to its end, and it ended */
            cJSON_AddStringToObject(r, "status", status);
            s->ended[i] = 1;
        } else if (to == s->off[i] && !moved) {
            cJSON_Delete(r);
            continue;
        }
        got += to - s->off[i];
        s->off[i] = to;
        cJSON_AddItemToArray(runs, r);
        news = 1;
    }
    if (news) {
        char id[SERVE_STREAM_RUNS * 24] = "";
        for (int i = 0, at = 0; i < s->n; i++)
            at += snprintf(id + at, sizeof id - (size_t)at, "%s%lld", i ? "," : "", s->off[i]);
        set_event(s, "log", ev, id);
    } else {
        cJSON_Delete(ev);
        if (now_s() - s->sent >= SERVE_KEEPALIVE_S && (s->buf = bd_strdup(": \n\n")))
            s->len = 4;
    }
    if (s->len)
        s->sent = now_s();
}

static ssize_t stream_read(void *cls, uint64_t pos, char *out, size_t max)
{
    serve_stream *s = cls;
    (void)pos;
    if (s->pos == s->len)
        fill(s);
    if (s->pos == s->len) { /* nothing new: asleep until the waker's next round */
        pthread_mutex_lock(&s->c->mu);
        int stopping = s->c->stopping;
        if (!stopping) {
            s->next = s->c->asleep;
            s->c->asleep = s;
            MHD_suspend_connection(s->conn);
        }
        pthread_mutex_unlock(&s->c->mu);
        return stopping ? MHD_CONTENT_READER_END_OF_STREAM : 0;
    }
    size_t n = s->len - s->pos < max ? s->len - s->pos : max;
    memcpy(out, s->buf + s->pos, n);
    s->pos += n;
    return (ssize_t)n;
}

static void stream_free(void *cls)
{
    serve_stream *s = cls;
    pthread_mutex_lock(&s->c->mu);
    s->c->streams--;
    pthread_mutex_unlock(&s->c->mu);
    free(s->buf);
    free(s);
}

typedef struct {
    serve_stream *s;
    run_ref *runs;
    int bad; /* a run named twice, one too many, or none such */
} collect_arg;

static enum MHD_Result collect_run(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    collect_arg *a = cls;
    (void)kind;
    if (strcmp(key, "run") != 0)
        return MHD_YES;
    const run_ref *r = bd_serve_find_run(a->s->c, a->runs, value);
    for (int i = 0; r && i < a->s->n; i++)
        if (strcmp(a->s->run[i].id, r->id) == 0)
            r = NULL;
    if (!r || a->s->n == SERVE_STREAM_RUNS) {
        a->bad = 1;
        return MHD_NO;
    }
    a->s->run[a->s->n++] = *r;
    return MHD_YES;
}

/* O1,O2,... (one byte offset per run, 0 to SERVE_MAX_OFFSET) into s->off; 0 when malformed. */
static int parse_offsets(serve_stream *s, const char *text)
{
    const char *p = text;
    for (int i = 0; i < s->n; i++) {
        char *end = NULL;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (end == p || v < 0 || v > SERVE_MAX_OFFSET || errno == ERANGE || *p == '-' || *p == '+' || *p == ' ')
            return 0;
        s->off[i] = v;
        if (i + 1 < s->n && *end != ',')
            return 0;
        p = end + (i + 1 < s->n);
    }
    return *p == '\0';
}

static enum MHD_Result refuse(struct MHD_Connection *conn, serve_stream *s, unsigned code, const char *text)
{
    free(s);
    char *b = bd_strdup(text);
    return b ? bd_serve_answer(conn, code, "text/plain; charset=utf-8", b, strlen(b)) : MHD_NO;
}

enum MHD_Result bd_serve_stream(serve_ctx *c, struct MHD_Connection *conn)
{
    serve_stream *s = calloc(1, sizeof *s);
    run_ref *runs = malloc(SERVE_MAX_RUNS * sizeof *runs);
    if (!s || !runs) {
        free(runs);
        free(s);
        return MHD_NO;
    }
    s->c = c;
    s->conn = conn;
    collect_arg a = {s, runs, 0};
    MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, collect_run, &a);
    free(runs);
    if (a.bad || s->n == 0)
        return refuse(conn, s, MHD_HTTP_NOT_FOUND, "run: the id of a run served here, each once, at most 16\n");
    const char *from = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Last-Event-ID");
    if (!from)
        from = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "from");
    if (from && !parse_offsets(s, from))
        return refuse(conn, s, MHD_HTTP_BAD_REQUEST, "from: one byte offset per run, 0 or more, comma-separated\n");
    pthread_mutex_lock(&c->mu);
    int full = c->streams >= SERVE_STREAMS || c->stopping;
    c->streams += !full;
    pthread_mutex_unlock(&c->mu);
    if (full)
        return refuse(conn, s, MHD_HTTP_SERVICE_UNAVAILABLE, "too many streams open\n");
    cJSON *hello = cJSON_CreateObject(), *hr = cJSON_AddArrayToObject(hello, "runs");
    for (int i = 0; i < s->n; i++) {
        cJSON *r = cJSON_CreateObject();
        char key[17];
        bd_serve_sweep_key(s->run[i].path, key);
        cJSON_AddStringToObject(r, "run", s->run[i].id);
        cJSON_AddStringToObject(r, "path", s->run[i].path);
        cJSON_AddStringToObject(r, "sweep", key);
        cJSON_AddItemToArray(hr, r);
    }
    s->sent = now_s();
    struct MHD_Response *resp = NULL;
    if (set_event(s, "hello", hello, NULL))
        resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_read, s, stream_free);
    if (!resp) {
        stream_free(s); /* and its count */
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", "text/event-stream");
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    enum MHD_Result rc = MHD_queue_response(conn, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    return rc;
}

void *bd_serve_waker(void *arg)
{
    serve_ctx *c = arg;
    for (int rounds_stopping = 0;;) {
        usleep(SERVE_WAKE_MS * 1000);
        pthread_mutex_lock(&c->mu);
        for (serve_stream *s = c->asleep; s; s = s->next)
            MHD_resume_connection(s->conn);
        c->asleep = NULL;
        int done = c->stopping && (c->streams == 0 || ++rounds_stopping > 4);
        pthread_mutex_unlock(&c->mu);
        if (done) /* every stream woken since stopping, so none sleeps: the daemon may stop */
            return NULL;
    }
}
