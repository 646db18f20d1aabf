/* serve.h: what replay/serve.c (the HTTP server and its JSON) and replay/stream.c (its
 * server-sent events) share; nothing outside replay/ includes it. */
#ifndef BODHI_REPLAY_SERVE_H
#define BODHI_REPLAY_SERVE_H

#include <limits.h>
#include <pthread.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>
#include <microhttpd.h>

#define SERVE_MAX_RUNS 512
#define SERVE_CHUNK ((size_t)2 << 20) /* log bytes per /api/log answer or event */
#define SERVE_MAX_OFFSET (1LL << 53)  /* byte offsets past this are refused: JSON's numbers hold them exactly */

struct serve_stream;

typedef struct {
    const char *const *dirs;
    int ndirs;
    pthread_mutex_t mu;          /* guards the three below */
    struct serve_stream *asleep; /* streams suspended until the next wake (stream.c) */
    int stopping;                /* set once: streams end instead of sleeping */
    int streams;                 /* open streams */
    struct serve_cached *cache;  /* /api/runs' summaries of the logs so far (serve.c; its thread only) */
    int ncache;
} serve_ctx;

typedef struct {
    char id[PATH_MAX];   /* "<k>/<sub>" */
    char path[PATH_MAX]; /* the run folder */
} run_ref;

/* 1 when dir is a run folder (a real folder, no symbolic link, with a regular log.jsonl). */
int bd_serve_is_run(const char *dir);

/* The runs under dir into out (max of them), with ids "<k>/<sub>": dir itself when it holds
 * log.jsonl, else its subfolders that do, and theirs (a sweep's folder of runs: one more
 * level), in name order. Their count. */
int bd_serve_scan_dir(const char *dir, int k, run_ref *out, int max);

/* The run named id, found by a fresh scan into runs (SERVE_MAX_RUNS of them); NULL when
 * there is none. */
const run_ref *bd_serve_find_run(const serve_ctx *c, run_ref *runs, const char *id);

/* A log.jsonl read up to byte off from the file (*dev, *ino) now stats as st: 1 when it was
 * replaced (another file: rotated, copied over) or cut below off, and must be read again
 * from 0. *dev and *ino become st's; (0, 0) is a file not seen yet. */
int bd_serve_log_moved(const struct stat *st, dev_t *dev, ino_t *ino, long long off);

/* {"run": id, "updates": [...], "changes": [...], "next": offset}: the update events and
 * the brains' "set" events (`bodhi set`'s changes as taken) of r's log.jsonl from
 * byte `from`, at most one chunk of it. */
cJSON *bd_serve_log(const run_ref *r, long long from);

/* summary.json's status of the run at path into out; "" when it has none yet. */
void bd_serve_status(const char *path, char *out, size_t n);

/* The run's sweep key into out (17 bytes): a hash of its run.yml without the top-level
 * `seed:` line, so the seeds of one run file share it; "" without a run.yml. */
void bd_serve_sweep_key(const char *path, char out[17]);

/* Answers a body owned by the caller's malloc, with the headers every answer carries. */
enum MHD_Result bd_serve_answer(struct MHD_Connection *conn, unsigned code, const char *type, char *body, size_t len);

/* GET /api/stream (stream.c): the runs named by the `run` arguments as server-sent events. */
enum MHD_Result bd_serve_stream(serve_ctx *c, struct MHD_Connection *conn);

/* Wakes the sleeping streams every few hundred ms until c->stopping; then ends them all. */
void *bd_serve_waker(void *arg);

#endif
