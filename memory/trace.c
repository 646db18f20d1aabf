/* trace.c: the HDF5 trace writer, the run's master file and the trace readers (memory.h,
 * docs/trace-format.md).
 *
 * Writer: bd_trace_writer_create makes <path> holding /<phase>/<agent>, its datasets and
 * attributes, switches the file to SWMR writing (so a reader can open it while it grows,
 * and after a crash) and starts one pthread. Appends copy their rows into a bounded queue
 * (at most BD_TRACE_QUEUE_MAX bytes; a caller blocks beyond that) and return; the thread
 * extends the datasets, writes each item as one hyperslab and flushes the file. Between
 * create and destroy only that thread calls HDF5 for the writer.
 *
 * Readers open files read-only (plain first, then as SWMR readers for a file that is still
 * being written or whose writer died), follow external links themselves, relative to the
 * linking file's folder, and refuse truncated files (a SWMR open skips HDF5's own check).
 *
 * Every HDF5 call in this file runs under one process-wide mutex (Debian's build is
 * thread-safe, a serial build need not be) with HDF5's automatic error printing off;
 * failures come back as BD_EHDF5 naming the file, the object and HDF5's innermost reason.
 *
 * Limits: one writer per file; N, S, U >= 1 and fixed for the file's life; rows and
 * episodes only grow; phase and agent names are single HDF5 link names (no '/').
 */
#define _GNU_SOURCE
#include "memory/memory.h"

#include <errno.h>
#include <hdf5.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/util.h"

#define BD_TRACE_CHUNK_BYTES (512u * 1024u)     /* one chunk, below the 1 MiB chunk cache */
#define BD_TRACE_CHUNK_ROWS 4096                /* rows per chunk at most (small rows) */
#define BD_TRACE_EP_CHUNK 4096                  /* episode rows per chunk (22 B each) */
#define BD_TRACE_QUEUE_MAX ((size_t)256 << 20)  /* bytes queued before append blocks */
#define BD_TRACE_MAX_HOPS 8                     /* external links followed per lookup */

/* ---- HDF5 guard and errors ------------------------------------------------------------ */

static pthread_mutex_t g_h5_mu = PTHREAD_MUTEX_INITIALIZER;

typedef struct {
    H5E_auto2_t fn;
    void *data;
} h5_guard;

/* Takes the module's HDF5 lock and turns HDF5's error printing off for this thread. */
static void h5_enter(h5_guard *g)
{
    pthread_mutex_lock(&g_h5_mu);
    g->fn = NULL;
    g->data = NULL;
    H5Eget_auto2(H5E_DEFAULT, &g->fn, &g->data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

/* Restores the caller's error printing and releases the lock. */
static void h5_leave(h5_guard *g)
{
    H5Eset_auto2(H5E_DEFAULT, g->fn, g->data);
    pthread_mutex_unlock(&g_h5_mu);
}

static herr_t h5_walk_cb(unsigned n, const H5E_error2_t *e, void *data)
{
    if (n == 0 && e->desc)
        snprintf(data, 256, "%s", e->desc);
    return 0;
}

/* The innermost description on HDF5's error stack (call right after the failing call,
 * before any other HDF5 call clears the stack). buf holds 256 bytes. */
static const char *h5_reason(char *buf)
{
    buf[0] = '\0';
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, h5_walk_cb, buf);
    return buf[0] ? buf : "unknown HDF5 error";
}

/* Records "<what>: <HDF5's reason>" as BD_EHDF5 and returns BD_EHDF5. */
static int h5_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int h5_fail(const char *fmt, ...)
{
    char why[256], what[768];
    h5_reason(why);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return bd_seterr(BD_EHDF5, "%s: %s", what, why);
}

static void h5_close_id(hid_t *id)
{
    if (*id < 0)
        return;
    switch (H5Iget_type(*id)) {
    case H5I_FILE: H5Fclose(*id); break;
    case H5I_GROUP: H5Gclose(*id); break;
    case H5I_DATASET: H5Dclose(*id); break;
    case H5I_DATASPACE: H5Sclose(*id); break;
    case H5I_DATATYPE: H5Tclose(*id); break;
    case H5I_ATTR: H5Aclose(*id); break;
    case H5I_GENPROP_LST: H5Pclose(*id); break;
    default: break;
    }
    *id = H5I_INVALID_HID;
}

/* File access list: latest format (for SWMR) or the library default. This module takes no
 * file locks: a reader (ours or h5py) must never stop a run's writer or its master file,
 * HDF5 refuses to share one file between two opens in a process whose locking flags
 * differ (a reader beside its writer), and a SWMR writer drops its lock anyway. One
 * writer per file is the caller's contract (one brain per agent). */
static hid_t h5_fapl(int latest)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0)
        return fapl;
    if (latest && H5Pset_libver_bounds(fapl, H5F_LIBVER_LATEST, H5F_LIBVER_LATEST) < 0) {
        H5Pclose(fapl);
        return H5I_INVALID_HID;
    }
#if H5_VERSION_GE(1, 10, 7)  /* before 1.10.7 HDF5 always locks */
    if (H5Pset_file_locking(fapl, 0, 1) < 0) {
        H5Pclose(fapl);
        return H5I_INVALID_HID;
    }
#endif
    return fapl;
}

/* Group creation list that remembers link creation order (so listings keep file order). */
static hid_t h5_gcpl(void)
{
    hid_t gcpl = H5Pcreate(H5P_GROUP_CREATE);
    if (gcpl >= 0 &&
        H5Pset_link_creation_order(gcpl, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED) < 0) {
        H5Pclose(gcpl);
        return H5I_INVALID_HID;
    }
    return gcpl;
}

static hid_t h5_fcpl(void)
{
    hid_t fcpl = H5Pcreate(H5P_FILE_CREATE);
    if (fcpl >= 0 &&
        H5Pset_link_creation_order(fcpl, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED) < 0) {
        H5Pclose(fcpl);
        return H5I_INVALID_HID;
    }
    return fcpl;
}

/* The episodes record in memory (bd_episode) and in the file (packed little-endian). */
static hid_t episode_type(int in_file)
{
    hid_t t = H5Tcreate(H5T_COMPOUND, in_file ? 22 : sizeof(bd_episode));
    if (t < 0)
        return t;
    herr_t e = 0;
    if (in_file) {
        e |= H5Tinsert(t, "world", 0, H5T_STD_I32LE);
        e |= H5Tinsert(t, "start_step", 4, H5T_STD_I64LE);
        e |= H5Tinsert(t, "length", 12, H5T_STD_I32LE);
        e |= H5Tinsert(t, "return", 16, H5T_IEEE_F32LE);
        e |= H5Tinsert(t, "terminated", 20, H5T_STD_U8LE);
        e |= H5Tinsert(t, "truncated", 21, H5T_STD_U8LE);
    } else {
        e |= H5Tinsert(t, "world", HOFFSET(bd_episode, world), H5T_NATIVE_INT32);
        e |= H5Tinsert(t, "start_step", HOFFSET(bd_episode, start_step), H5T_NATIVE_INT64);
        e |= H5Tinsert(t, "length", HOFFSET(bd_episode, length), H5T_NATIVE_INT32);
        e |= H5Tinsert(t, "return", HOFFSET(bd_episode, ret), H5T_NATIVE_FLOAT);
        e |= H5Tinsert(t, "terminated", HOFFSET(bd_episode, terminated), H5T_NATIVE_UINT8);
        e |= H5Tinsert(t, "truncated", HOFFSET(bd_episode, truncated), H5T_NATIVE_UINT8);
    }
    if (e < 0) {
        H5Tclose(t);
        return H5I_INVALID_HID;
    }
    return t;
}

/* Variable-length UTF-8 string type (h5py reads it as str). */
static hid_t vlen_utf8(void)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0)
        return t;
    if (H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0) {
        H5Tclose(t);
        return H5I_INVALID_HID;
    }
    return t;
}

/* Attribute `name` on obj: n strings (n < 0: one scalar string). `file` names the file in
 * errors. */
static int attr_strings(hid_t obj, const char *file, const char *objname, const char *name,
                        const char *const *v, int n)
{
    int rc = BD_OK;
    hid_t t = vlen_utf8(), sp = H5I_INVALID_HID, a = H5I_INVALID_HID;
    hsize_t dims[1] = {(hsize_t)(n < 0 ? 1 : n)};
    if (t < 0 || (sp = n < 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, dims, NULL)) < 0 ||
        (a = H5Acreate2(obj, name, t, sp, H5P_DEFAULT, H5P_DEFAULT)) < 0 ||
        H5Awrite(a, t, v) < 0)
        rc = h5_fail("'%s': cannot write attribute %s of %s", file, name, objname);
    h5_close_id(&a);
    h5_close_id(&sp);
    h5_close_id(&t);
    return rc;
}

static int attr_scalar(hid_t obj, const char *file, const char *objname, const char *name,
                       hid_t ftype, hid_t mtype, const void *v)
{
    int rc = BD_OK;
    hid_t sp = H5Screate(H5S_SCALAR), a = H5I_INVALID_HID;
    if (sp < 0 || (a = H5Acreate2(obj, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT)) < 0 ||
        H5Awrite(a, mtype, v) < 0)
        rc = h5_fail("'%s': cannot write attribute %s of %s", file, name, objname);
    h5_close_id(&a);
    h5_close_id(&sp);
    return rc;
}

static int check_name(const char *what, const char *s)
{
    if (!s || !*s || strchr(s, '/') || !strcmp(s, ".") || !strcmp(s, ".."))
        return bd_seterr(BD_EINVAL, "%s name '%s' must be non-empty and hold no '/'", what,
                         s ? s : "(null)");
    return BD_OK;
}

/* mkdir -p of path's folder (nothing when path has none). */
static int make_parent(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash || slash == path)
        return BD_OK;
    char *dir = bd_strdup(path);
    if (!dir)
        return bd_seterr(BD_ENOMEM, "out of memory");
    dir[slash - path] = '\0';
    int rc = bd_exists(dir) ? BD_OK : bd_mkdirs(dir);
    free(dir);
    return rc;
}

/* ---- writer ------------------------------------------------------------------------ */

enum { DS_SENSORS, DS_ACTUATORS, DS_REWARDS, DS_TERMINATED, DS_TRUNCATED, DS_COUNT };

static const char *const ds_names[DS_COUNT] = {"sensors", "actuators", "rewards", "terminated",
                                               "truncated"};

enum { ITEM_ROWS, ITEM_EPISODES };

typedef struct item {
    struct item *next;
    int kind;
    int64_t count;      /* rows (T) or episodes */
    size_t bytes;       /* payload bytes, counted against the queue bound */
    const void *data[DS_COUNT]; /* rows: one pointer per dataset; episodes: data[0] */
} item;

struct bd_trace_writer {
    char *path, *phase, *agent;
    int n, s, u;
    hid_t file, ds[DS_COUNT], ds_ep, t_ep_mem;   /* touched only by the thread after create */
    int64_t rows_written, eps_written;           /* thread only */
    _Atomic int64_t rows_queued;                 /* rows appended so far */

    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv_work;   /* an item arrived, or stop */
    pthread_cond_t cv_done;   /* an item finished (space freed, sync may return) */
    item *head, *tail;
    size_t queued;            /* payload bytes queued or being written */
    int busy;                 /* the thread holds an item */
    int stop;
    int err;                  /* first error, with its detail */
    char errmsg[1024];
};

/* Chunk shape for a (T, N, K) dataset of esize-byte elements: whole rows when a row fits in
 * BD_TRACE_CHUNK_BYTES (as many as fit, at most BD_TRACE_CHUNK_ROWS), else one row split
 * along N (and K if one column alone is too big). rank 2 datasets pass k = 1. */
static void chunk_shape(int rank, hsize_t n, hsize_t k, size_t esize, hsize_t chunk[3])
{
    hsize_t max = BD_TRACE_CHUNK_BYTES / esize;
    hsize_t row = n * k;
    if (row <= max) {
        hsize_t rows = max / row;
        chunk[0] = rows > BD_TRACE_CHUNK_ROWS ? BD_TRACE_CHUNK_ROWS : rows;
        chunk[1] = n;
        chunk[2] = k;
    } else if (k <= max) {
        chunk[0] = 1;
        chunk[1] = max / k;
        chunk[2] = k;
    } else {
        chunk[0] = 1;
        chunk[1] = 1;
        chunk[2] = max;
    }
    if (rank == 2)
        chunk[2] = 1;
}

static hid_t make_dataset(const bd_trace_writer *w, hid_t grp, int d, hid_t ftype, size_t esize)
{
    int rank = d <= DS_ACTUATORS ? 3 : 2;
    hsize_t k = d == DS_SENSORS ? (hsize_t)w->s : d == DS_ACTUATORS ? (hsize_t)w->u : 1;
    hsize_t dims[3] = {0, (hsize_t)w->n, k};
    hsize_t maxdims[3] = {H5S_UNLIMITED, (hsize_t)w->n, k};
    hsize_t chunk[3];
    chunk_shape(rank, (hsize_t)w->n, k, esize, chunk);

    hid_t sp = H5Screate_simple(rank, dims, maxdims), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    hid_t ds = H5I_INVALID_HID;
    if (sp >= 0 && dcpl >= 0 && H5Pset_chunk(dcpl, rank, chunk) >= 0)
        ds = H5Dcreate2(grp, ds_names[d], ftype, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (ds < 0)
        h5_fail("'%s': cannot create /%s/%s/%s", w->path, w->phase, w->agent, ds_names[d]);
    h5_close_id(&dcpl);
    h5_close_id(&sp);
    return ds;
}

/* Closes the writer's HDF5 objects; returns the file close's error, if any (recorded
 * with bd_seterr only when record is set, so a setup error's detail survives). */
static int writer_close_h5(bd_trace_writer *w, int record)
{
    for (int d = 0; d < DS_COUNT; d++)
        h5_close_id(&w->ds[d]);
    h5_close_id(&w->ds_ep);
    h5_close_id(&w->t_ep_mem);
    int rc = BD_OK;
    if (w->file >= 0 && H5Fclose(w->file) < 0)
        rc = record ? h5_fail("'%s': cannot close the trace file", w->path) : BD_EHDF5;
    w->file = H5I_INVALID_HID;
    return rc;
}

/* Creates the file, groups, datasets and attributes, then starts SWMR writing. Caller holds
 * the HDF5 guard. */
static int writer_setup(bd_trace_writer *w, const bd_trace_spec *spec)
{
    int rc = BD_OK;
    char obj[512];
    snprintf(obj, sizeof obj, "/%s/%s", w->phase, w->agent);
    hid_t fapl = h5_fapl(1), fcpl = h5_fcpl(), gcpl = h5_gcpl();
    hid_t pg = H5I_INVALID_HID, g = H5I_INVALID_HID, ftype = H5I_INVALID_HID;
    hid_t sp = H5I_INVALID_HID;
    if (fapl < 0 || fcpl < 0 || gcpl < 0) {
        rc = h5_fail("'%s': cannot make property lists", w->path);
        goto done;
    }
    w->file = H5Fcreate(w->path, H5F_ACC_TRUNC, fcpl, fapl);
    if (w->file < 0) {
        rc = h5_fail("cannot create trace file '%s'", w->path);
        goto done;
    }
    if ((pg = H5Gcreate2(w->file, w->phase, H5P_DEFAULT, gcpl, H5P_DEFAULT)) < 0 ||
        (g = H5Gcreate2(pg, w->agent, H5P_DEFAULT, gcpl, H5P_DEFAULT)) < 0) {
        rc = h5_fail("'%s': cannot create group %s", w->path, obj);
        goto done;
    }
    const hid_t ftypes[DS_COUNT] = {H5T_IEEE_F32LE, H5T_IEEE_F32LE, H5T_IEEE_F32LE, H5T_STD_U8LE,
                                    H5T_STD_U8LE};
    const size_t esizes[DS_COUNT] = {4, 4, 4, 1, 1};
    for (int d = 0; d < DS_COUNT; d++) {
        if ((w->ds[d] = make_dataset(w, g, d, ftypes[d], esizes[d])) < 0) {
            rc = BD_EHDF5;
            goto done;
        }
    }

    /* episodes (E,) */
    hsize_t edims[1] = {0}, emax[1] = {H5S_UNLIMITED}, echunk[1] = {BD_TRACE_EP_CHUNK};
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    ftype = episode_type(1);
    w->t_ep_mem = episode_type(0);
    sp = H5Screate_simple(1, edims, emax);
    if (dcpl >= 0 && ftype >= 0 && w->t_ep_mem >= 0 && sp >= 0 &&
        H5Pset_chunk(dcpl, 1, echunk) >= 0)
        w->ds_ep = H5Dcreate2(g, "episodes", ftype, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (w->ds_ep < 0)
        rc = h5_fail("'%s': cannot create %s/episodes", w->path, obj);
    h5_close_id(&dcpl);
    if (rc)
        goto done;

    const char *env = spec->env_name ? spec->env_name : "";
    const char *params = spec->env_params_json ? spec->env_params_json : "{}";
    int32_t worlds = spec->n;
    if ((rc = attr_strings(g, w->path, obj, "sensor_ids", spec->sensor_ids, spec->s)) ||
        (rc = attr_strings(g, w->path, obj, "actuator_ids", spec->actuator_ids, spec->u)) ||
        (rc = attr_strings(g, w->path, obj, "env", &env, -1)) ||
        (rc = attr_strings(g, w->path, obj, "env_params", &params, -1)) ||
        (rc = attr_scalar(g, w->path, obj, "seed", H5T_STD_U64LE, H5T_NATIVE_UINT64, &spec->seed)) ||
        (rc = attr_scalar(g, w->path, obj, "worlds", H5T_STD_I32LE, H5T_NATIVE_INT32, &worlds)))
        goto done;

    /* SWMR writing wants no open groups or attributes. */
    h5_close_id(&g);
    h5_close_id(&pg);
    if (H5Fstart_swmr_write(w->file) < 0 || H5Fflush(w->file, H5F_SCOPE_LOCAL) < 0)
        rc = h5_fail("'%s': cannot start SWMR writing", w->path);
done:
    h5_close_id(&sp);
    h5_close_id(&ftype);
    h5_close_id(&g);
    h5_close_id(&pg);
    h5_close_id(&gcpl);
    h5_close_id(&fcpl);
    h5_close_id(&fapl);
    if (rc)
        writer_close_h5(w, 0);
    return rc;
}

/* Extends dataset d to row0 + T rows and writes buf, (T, N[, K]), at row0. */
static int write_block(bd_trace_writer *w, int d, int64_t row0, int64_t T, const void *buf)
{
    int rank = d <= DS_ACTUATORS ? 3 : 2;
    hsize_t k = d == DS_SENSORS ? (hsize_t)w->s : d == DS_ACTUATORS ? (hsize_t)w->u : 1;
    hsize_t dims[3] = {(hsize_t)(row0 + T), (hsize_t)w->n, k};
    hsize_t start[3] = {(hsize_t)row0, 0, 0};
    hsize_t count[3] = {(hsize_t)T, (hsize_t)w->n, k};
    hid_t mtype = d <= DS_REWARDS ? H5T_NATIVE_FLOAT : H5T_NATIVE_UINT8;
    hid_t fs = H5I_INVALID_HID, ms = H5I_INVALID_HID;
    int rc = BD_OK;
    if (H5Dset_extent(w->ds[d], dims) < 0 || (fs = H5Dget_space(w->ds[d])) < 0 ||
        H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
        (ms = H5Screate_simple(rank, count, NULL)) < 0 ||
        H5Dwrite(w->ds[d], mtype, ms, fs, H5P_DEFAULT, buf) < 0)
        rc = h5_fail("'%s': cannot write rows %lld..%lld of /%s/%s/%s", w->path, (long long)row0,
                     (long long)(row0 + T - 1), w->phase, w->agent, ds_names[d]);
    h5_close_id(&ms);
    h5_close_id(&fs);
    return rc;
}

static int write_episodes(bd_trace_writer *w, const item *it)
{
    hsize_t dims[1] = {(hsize_t)(w->eps_written + it->count)};
    hsize_t start[1] = {(hsize_t)w->eps_written}, count[1] = {(hsize_t)it->count};
    hid_t fs = H5I_INVALID_HID, ms = H5I_INVALID_HID;
    int rc = BD_OK;
    if (H5Dset_extent(w->ds_ep, dims) < 0 || (fs = H5Dget_space(w->ds_ep)) < 0 ||
        H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
        (ms = H5Screate_simple(1, count, NULL)) < 0 ||
        H5Dwrite(w->ds_ep, w->t_ep_mem, ms, fs, H5P_DEFAULT, it->data[0]) < 0)
        rc = h5_fail("'%s': cannot write episodes %lld..%lld of /%s/%s/episodes", w->path,
                     (long long)w->eps_written, (long long)(w->eps_written + it->count - 1),
                     w->phase, w->agent);
    else
        w->eps_written += it->count;
    h5_close_id(&ms);
    h5_close_id(&fs);
    return rc;
}

static int write_item(bd_trace_writer *w, const item *it)
{
    int rc = BD_OK;
    if (it->kind == ITEM_ROWS) {
        for (int d = 0; d < DS_COUNT && !rc; d++)
            rc = write_block(w, d, w->rows_written, it->count, it->data[d]);
        if (!rc)
            w->rows_written += it->count;
    } else {
        rc = write_episodes(w, it);
    }
    if (!rc && H5Fflush(w->file, H5F_SCOPE_LOCAL) < 0)
        rc = h5_fail("'%s': cannot flush", w->path);
    return rc;
}

static void *writer_main(void *arg)
{
    bd_trace_writer *w = arg;
    for (;;) {
        pthread_mutex_lock(&w->mu);
        while (!w->head && !w->stop)
            pthread_cond_wait(&w->cv_work, &w->mu);
        item *it = w->head;
        if (!it) {
            pthread_mutex_unlock(&w->mu);
            break;
        }
        w->head = it->next;
        if (!w->head)
            w->tail = NULL;
        w->busy = 1;
        int failed = w->err != BD_OK;
        pthread_mutex_unlock(&w->mu);

        int rc = BD_OK;
        if (!failed) {  /* after the first error nothing more is written */
            h5_guard g;
            h5_enter(&g);
            rc = write_item(w, it);
            h5_leave(&g);
        }

        pthread_mutex_lock(&w->mu);
        if (rc && !w->err) {
            w->err = rc;
            snprintf(w->errmsg, sizeof w->errmsg, "%s", bd_lasterr());
        }
        w->queued -= it->bytes;
        w->busy = 0;
        pthread_cond_broadcast(&w->cv_done);
        pthread_mutex_unlock(&w->mu);
        free(it);
    }
    return NULL;
}

static void writer_free(bd_trace_writer *w)
{
    free(w->path);
    free(w->phase);
    free(w->agent);
    free(w);
}

static int spec_check(const bd_trace_spec *spec)
{
    if (!spec || !spec->path || !*spec->path)
        return bd_seterr(BD_EINVAL, "trace spec: no file path");
    int rc;
    if ((rc = check_name("phase", spec->phase)) || (rc = check_name("agent", spec->agent)))
        return rc;
    if (spec->n < 1 || spec->s < 1 || spec->u < 1)
        return bd_seterr(BD_EINVAL, "'%s': trace needs N, S, U >= 1 (got %d, %d, %d)",
                         spec->path, spec->n, spec->s, spec->u);
    if (!spec->sensor_ids || !spec->actuator_ids)
        return bd_seterr(BD_EINVAL, "'%s': sensor_ids and actuator_ids are required", spec->path);
    for (int i = 0; i < spec->s; i++)
        if (!spec->sensor_ids[i])
            return bd_seterr(BD_EINVAL, "'%s': sensor_ids[%d] is NULL", spec->path, i);
    for (int i = 0; i < spec->u; i++)
        if (!spec->actuator_ids[i])
            return bd_seterr(BD_EINVAL, "'%s': actuator_ids[%d] is NULL", spec->path, i);
    return BD_OK;
}

int bd_trace_writer_create(const bd_trace_spec *spec, bd_trace_writer **out)
{
    if (!out)
        return bd_seterr(BD_EINVAL, "bd_trace_writer_create: out is NULL");
    *out = NULL;
    int rc = spec_check(spec);
    if (rc)
        return rc;
    bd_trace_writer *w = calloc(1, sizeof *w);
    if (!w)
        return bd_seterr(BD_ENOMEM, "'%s': out of memory", spec->path);
    w->path = bd_strdup(spec->path);
    w->phase = bd_strdup(spec->phase);
    w->agent = bd_strdup(spec->agent);
    w->n = spec->n;
    w->s = spec->s;
    w->u = spec->u;
    w->file = w->ds_ep = w->t_ep_mem = H5I_INVALID_HID;
    for (int d = 0; d < DS_COUNT; d++)
        w->ds[d] = H5I_INVALID_HID;
    if (!w->path || !w->phase || !w->agent) {
        writer_free(w);
        return bd_seterr(BD_ENOMEM, "'%s': out of memory", spec->path);
    }
    if ((rc = make_parent(w->path))) {
        writer_free(w);
        return rc;
    }

    h5_guard g;
    h5_enter(&g);
    rc = writer_setup(w, spec);
    h5_leave(&g);
    if (rc) {
        writer_free(w);
        return rc;
    }

    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv_work, NULL);
    pthread_cond_init(&w->cv_done, NULL);
    int e = pthread_create(&w->thread, NULL, writer_main, w);
    if (e) {
        h5_enter(&g);
        writer_close_h5(w, 0);
        h5_leave(&g);
        pthread_cond_destroy(&w->cv_done);
        pthread_cond_destroy(&w->cv_work);
        pthread_mutex_destroy(&w->mu);
        writer_free(w);
        return bd_seterr(BD_EIO, "'%s': cannot start the writer thread: %s", spec->path,
                         strerror(e));
    }
    *out = w;
    return BD_OK;
}

/* Returns the writer's first error (re-recorded for this thread), or BD_OK. Caller holds mu. */
static int writer_error(const bd_trace_writer *w)
{
    return w->err ? bd_seterr(w->err, "%s", w->errmsg) : BD_OK;
}

/* Queues it (taking ownership), blocking while the queue is over its bound. */
static int enqueue(bd_trace_writer *w, item *it)
{
    pthread_mutex_lock(&w->mu);
    while (!w->err && w->queued > 0 && w->queued + it->bytes > BD_TRACE_QUEUE_MAX)
        pthread_cond_wait(&w->cv_done, &w->mu);
    int rc = writer_error(w);
    if (rc) {
        pthread_mutex_unlock(&w->mu);
        free(it);
        return rc;
    }
    it->next = NULL;
    if (w->tail)
        w->tail->next = it;
    else
        w->head = it;
    w->tail = it;
    w->queued += it->bytes;
    if (it->kind == ITEM_ROWS)
        atomic_fetch_add(&w->rows_queued, it->count);
    pthread_cond_signal(&w->cv_work);
    pthread_mutex_unlock(&w->mu);
    return BD_OK;
}

int bd_trace_writer_append(bd_trace_writer *w, int T, const float *sensors,
                           const float *actuators, const float *rewards,
                           const uint8_t *terminated, const uint8_t *truncated)
{
    if (!w)
        return bd_seterr(BD_EINVAL, "bd_trace_writer_append: writer is NULL");
    if (T < 0)
        return bd_seterr(BD_EINVAL, "'%s': append of %d rows", w->path, T);
    if (T > 0 && (!sensors || !actuators || !rewards || !terminated || !truncated))
        return bd_seterr(BD_EINVAL, "'%s': append with a NULL buffer", w->path);

    /* bytes per dataset: sensors (T,N,S) f32, actuators (T,N,U) f32, rewards (T,N) f32,
     * terminated and truncated (T,N) u8 */
    size_t cells, sz[DS_COUNT], total = 0;
    if (__builtin_mul_overflow((size_t)T, (size_t)w->n, &cells) ||
        __builtin_mul_overflow(cells, (size_t)w->s * 4, &sz[DS_SENSORS]) ||
        __builtin_mul_overflow(cells, (size_t)w->u * 4, &sz[DS_ACTUATORS]))
        return bd_seterr(BD_EINVAL, "'%s': append of %d rows is too large", w->path, T);
    sz[DS_REWARDS] = cells * 4;
    sz[DS_TERMINATED] = sz[DS_TRUNCATED] = cells;
    for (int d = 0; d < DS_COUNT; d++)
        if (__builtin_add_overflow(total, sz[d], &total))
            return bd_seterr(BD_EINVAL, "'%s': append of %d rows is too large", w->path, T);

    pthread_mutex_lock(&w->mu);
    int rc = writer_error(w);
    pthread_mutex_unlock(&w->mu);
    if (rc || T == 0)
        return rc;

    item *it = malloc(sizeof *it + total);
    if (!it)
        return bd_seterr(BD_ENOMEM, "'%s': out of memory queueing %d rows", w->path, T);
    const void *src[DS_COUNT] = {sensors, actuators, rewards, terminated, truncated};
    unsigned char *p = (unsigned char *)(it + 1);  /* floats first: 4-byte aligned */
    for (int d = 0; d < DS_COUNT; d++) {
        memcpy(p, src[d], sz[d]);
        it->data[d] = p;
        p += sz[d];
    }
    it->kind = ITEM_ROWS;
    it->count = T;
    it->bytes = total;
    return enqueue(w, it);
}

int bd_trace_writer_episodes(bd_trace_writer *w, const bd_episode *eps, int count)
{
    if (!w)
        return bd_seterr(BD_EINVAL, "bd_trace_writer_episodes: writer is NULL");
    if (count < 0 || (count > 0 && !eps))
        return bd_seterr(BD_EINVAL, "'%s': bad episodes batch (%d)", w->path, count);
    pthread_mutex_lock(&w->mu);
    int rc = writer_error(w);
    pthread_mutex_unlock(&w->mu);
    if (rc || count == 0)
        return rc;
    size_t bytes = (size_t)count * sizeof *eps;
    item *it = malloc(sizeof *it + bytes);
    if (!it)
        return bd_seterr(BD_ENOMEM, "'%s': out of memory queueing %d episodes", w->path, count);
    memcpy(it + 1, eps, bytes);
    memset(it->data, 0, sizeof it->data);
    it->data[0] = it + 1;
    it->kind = ITEM_EPISODES;
    it->count = count;
    it->bytes = bytes;
    return enqueue(w, it);
}

int64_t bd_trace_writer_rows(const bd_trace_writer *w)
{
    return w ? atomic_load(&w->rows_queued) : 0;
}

int bd_trace_writer_sync(bd_trace_writer *w)
{
    if (!w)
        return bd_seterr(BD_EINVAL, "bd_trace_writer_sync: writer is NULL");
    pthread_mutex_lock(&w->mu);
    while (w->head || w->busy)
        pthread_cond_wait(&w->cv_done, &w->mu);
    int rc = writer_error(w);
    pthread_mutex_unlock(&w->mu);
    return rc;
}

int bd_trace_writer_destroy(bd_trace_writer *w)
{
    if (!w)
        return BD_OK;
    pthread_mutex_lock(&w->mu);
    w->stop = 1;
    pthread_cond_signal(&w->cv_work);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);  /* the thread drains the queue before it sees stop */

    h5_guard g;
    h5_enter(&g);
    int crc = writer_close_h5(w, !w->err);
    h5_leave(&g);
    int rc = w->err ? bd_seterr(w->err, "%s", w->errmsg) : crc;
    pthread_cond_destroy(&w->cv_done);
    pthread_cond_destroy(&w->cv_work);
    pthread_mutex_destroy(&w->mu);
    writer_free(w);
    return rc;
}

/* ---- master file ------------------------------------------------------------------- */

int bd_trace_master_create(const char *run_h5, const char *run_file_text, uint64_t seed)
{
    if (!run_h5 || !*run_h5)
        return bd_seterr(BD_EINVAL, "bd_trace_master_create: no path");
    int rc = make_parent(run_h5);
    if (rc)
        return rc;
    const char *text = run_file_text ? run_file_text : "";
    const char *version = bd_version();
    h5_guard g;
    h5_enter(&g);
    hid_t fcpl = h5_fcpl(), fapl = h5_fapl(0), f = H5I_INVALID_HID;
    if (fcpl < 0 || fapl < 0 || (f = H5Fcreate(run_h5, H5F_ACC_TRUNC, fcpl, fapl)) < 0) {
        rc = h5_fail("cannot create master file '%s'", run_h5);
    } else if (!(rc = attr_strings(f, run_h5, "/", "run_file", &text, -1)) &&
               !(rc = attr_scalar(f, run_h5, "/", "seed", H5T_STD_U64LE, H5T_NATIVE_UINT64,
                                  &seed)) &&
               !(rc = attr_strings(f, run_h5, "/", "bodhi_version", &version, -1))) {
        if (H5Fclose(f) < 0)
            rc = h5_fail("'%s': cannot close the master file", run_h5);
        f = H5I_INVALID_HID;
    }
    h5_close_id(&f);
    h5_close_id(&fapl);
    h5_close_id(&fcpl);
    h5_leave(&g);
    return rc;
}

/* 1 when link name in loc is an external link to file:obj already. */
static int same_elink(hid_t loc, const char *name, const char *file, const char *obj)
{
    H5L_info_t li;
    if (H5Lget_info(loc, name, &li, H5P_DEFAULT) < 0 || li.type != H5L_TYPE_EXTERNAL)
        return 0;
    char *val = malloc(li.u.val_size ? li.u.val_size : 1);
    const char *f = NULL, *o = NULL;
    unsigned flags = 0;
    int same = val && H5Lget_val(loc, name, val, li.u.val_size, H5P_DEFAULT) >= 0 &&
               H5Lunpack_elink_val(val, li.u.val_size, &flags, &f, &o) >= 0 && !strcmp(f, file) &&
               !strcmp(o, obj);
    free(val);
    return same;
}

int bd_trace_master_link(const char *run_h5, const char *phase, const char *agent,
                         const char *target_file)
{
    int rc;
    if (!run_h5 || !target_file || !*target_file)
        return bd_seterr(BD_EINVAL, "bd_trace_master_link: no master or target path");
    if ((rc = check_name("phase", phase)) || (rc = check_name("agent", agent)))
        return rc;
    if (!bd_exists(run_h5))
        return bd_seterr(BD_ENOTFOUND, "master file '%s' not found", run_h5);
    char obj[512];
    snprintf(obj, sizeof obj, "/%s/%s", phase, agent);

    h5_guard g;
    h5_enter(&g);
    hid_t fapl = h5_fapl(0), gcpl = H5I_INVALID_HID, f = H5I_INVALID_HID;
    hid_t pg = H5I_INVALID_HID;
    htri_t ex;
    if (fapl < 0 || (f = H5Fopen(run_h5, H5F_ACC_RDWR, fapl)) < 0) {
        rc = h5_fail("cannot open master file '%s' for writing", run_h5);
        goto done;
    }
    if ((ex = H5Lexists(f, phase, H5P_DEFAULT)) < 0) {
        rc = h5_fail("'%s': cannot look up /%s", run_h5, phase);
        goto done;
    }
    if (!ex && ((gcpl = h5_gcpl()) < 0 ||
                (pg = H5Gcreate2(f, phase, H5P_DEFAULT, gcpl, H5P_DEFAULT)) < 0)) {
        rc = h5_fail("'%s': cannot create group /%s", run_h5, phase);
        goto done;
    }
    if (ex && (pg = H5Gopen2(f, phase, H5P_DEFAULT)) < 0) {
        rc = h5_fail("'%s': /%s is not a group", run_h5, phase);
        goto done;
    }
    /* The same link again is kept (and keeps its place in the listing); another one
     * replaces the old link. */
    int keep = 0;
    if ((ex = H5Lexists(pg, agent, H5P_DEFAULT)) < 0 ||
        (ex > 0 && !(keep = same_elink(pg, agent, target_file, obj)) &&
         H5Ldelete(pg, agent, H5P_DEFAULT) < 0) ||
        (!keep && H5Lcreate_external(target_file, obj, pg, agent, H5P_DEFAULT, H5P_DEFAULT) < 0)) {
        rc = h5_fail("'%s': cannot link %s to '%s'", run_h5, obj, target_file);
        goto done;
    }
    h5_close_id(&pg);
    if (H5Fclose(f) < 0)
        rc = h5_fail("'%s': cannot close the master file", run_h5);
    f = H5I_INVALID_HID;
done:
    h5_close_id(&pg);
    h5_close_id(&f);
    h5_close_id(&gcpl);
    h5_close_id(&fapl);
    h5_leave(&g);
    return rc;
}

/* ---- readers ----------------------------------------------------------------------- */

/* Opens path read-only: plainly (HDF5 checks the file is whole), else as a SWMR reader (a
 * file still being written, or left open by a writer that died), checking its size
 * ourselves since a SWMR open does not. Missing: BD_ENOTFOUND. Caller holds the guard. */
static int h5_open_ro(const char *path, hid_t *out)
{
    struct stat st;
    *out = H5I_INVALID_HID;
    if (stat(path, &st) != 0)
        return errno == ENOENT ? bd_seterr(BD_ENOTFOUND, "trace file '%s' not found", path)
                               : bd_seterr(BD_EIO, "'%s': %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode))
        return bd_seterr(BD_EINVAL, "'%s' is a folder, not an HDF5 file", path);
    hid_t fapl = h5_fapl(0);
    if (fapl < 0)
        return h5_fail("'%s': cannot make a file access list", path);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    if (f < 0) {
        char why[256];
        h5_reason(why);
        f = H5Fopen(path, H5F_ACC_RDONLY | H5F_ACC_SWMR_READ, fapl);
        hsize_t size = 0;
        if (f >= 0 && H5Fget_filesize(f, &size) >= 0 && stat(path, &st) == 0 &&
            size > (hsize_t)st.st_size) {
            H5Fclose(f);
            H5Pclose(fapl);
            return bd_seterr(BD_EHDF5, "'%s' is truncated: %lld bytes, its superblock says %llu",
                             path, (long long)st.st_size, (unsigned long long)size);
        }
        if (f < 0) {
            H5Pclose(fapl);
            return bd_seterr(BD_EHDF5, "cannot open '%s' as HDF5: %s", path, why);
        }
    }
    H5Pclose(fapl);
    *out = f;
    return BD_OK;
}

/* The files a lookup opened (it follows external links across files). */
typedef struct {
    hid_t files[BD_TRACE_MAX_HOPS + 1];
    int nfiles;
    char *where;  /* path of the file that holds the object found */
} h5_chain;

static void chain_close(h5_chain *c)
{
    for (int i = c->nfiles - 1; i >= 0; i--)
        h5_close_id(&c->files[i]);
    c->nfiles = 0;
    free(c->where);
    c->where = NULL;
}

/* target relative to the folder of the file that links to it (absolute stays). */
static char *link_target(const char *from, const char *target)
{
    const char *slash = strrchr(from, '/');
    if (target[0] == '/' || !slash)
        return bd_strdup(target);
    return bd_strfmt("%.*s/%s", (int)(slash - from), from, target);
}

/* Opens group /<phase>[/<agent>] of path (agent may be NULL), following external links.
 * *grp is an open object id; close it, then chain_close(c). Caller holds the guard. */
static int h5_open_group(const char *path, const char *phase, const char *agent, h5_chain *c,
                         hid_t *grp)
{
    memset(c, 0, sizeof *c);
    *grp = H5I_INVALID_HID;
    int rc;
    if ((rc = check_name("phase", phase)) || (agent && (rc = check_name("agent", agent))))
        return rc;
    c->where = bd_strdup(path);
    if (!c->where)
        return bd_seterr(BD_ENOMEM, "out of memory");
    if ((rc = h5_open_ro(path, &c->files[0]))) {
        chain_close(c);
        return rc;
    }
    c->nfiles = 1;
    const char *parts[2] = {phase, agent};
    int nparts = agent ? 2 : 1;
    hid_t loc = c->files[0];
    char shown[512];
    snprintf(shown, sizeof shown, agent ? "/%s/%s" : "/%s", phase, agent);
    for (int i = 0; i < nparts; i++) {
        htri_t ex = H5Lexists(loc, parts[i], H5P_DEFAULT);
        H5L_info_t li;
        hid_t next = H5I_INVALID_HID;
        if (ex < 0 || (ex > 0 && H5Lget_info(loc, parts[i], &li, H5P_DEFAULT) < 0)) {
            rc = h5_fail("'%s': cannot look up %s", c->where, shown);
        } else if (!ex) {
            rc = bd_seterr(BD_ENOTFOUND, "'%s' has no group %s", c->where, shown);
        } else if (li.type == H5L_TYPE_EXTERNAL) {
            char *val = malloc(li.u.val_size ? li.u.val_size : 1), *target = NULL;
            const char *fname = NULL, *oname = NULL;
            unsigned flags = 0;
            if (!val) {
                rc = bd_seterr(BD_ENOMEM, "out of memory");
            } else if (H5Lget_val(loc, parts[i], val, li.u.val_size, H5P_DEFAULT) < 0 ||
                       H5Lunpack_elink_val(val, li.u.val_size, &flags, &fname, &oname) < 0) {
                rc = h5_fail("'%s': cannot read the external link %s", c->where, shown);
            } else if (c->nfiles > BD_TRACE_MAX_HOPS) {
                rc = bd_seterr(BD_EINVAL, "'%s': more than %d external links to %s", path,
                               BD_TRACE_MAX_HOPS, shown);
            } else if (!(target = link_target(c->where, fname))) {
                rc = bd_seterr(BD_ENOMEM, "out of memory");
            } else if ((rc = h5_open_ro(target, &c->files[c->nfiles]))) {
                if (rc == BD_ENOTFOUND)
                    bd_seterr(rc, "'%s': %s links to '%s', which is missing", c->where, shown,
                              target);
                free(target);
            } else {
                hid_t f2 = c->files[c->nfiles++];
                free(c->where);
                c->where = target;
                if ((next = H5Oopen(f2, oname, H5P_DEFAULT)) < 0)
                    rc = h5_fail("'%s': cannot open %s (linked from %s)", target, oname, shown);
            }
            free(val);
        } else if ((next = H5Oopen(loc, parts[i], H5P_DEFAULT)) < 0) {
            rc = h5_fail("'%s': cannot open %s", c->where, shown);
        }
        if (loc != c->files[0] && H5Iget_type(loc) != H5I_FILE)
            h5_close_id(&loc);
        if (rc) {
            h5_close_id(&next);
            chain_close(c);
            return rc;
        }
        loc = next;
        if (H5Iget_type(loc) != H5I_GROUP) {
            h5_close_id(&loc);
            rc = bd_seterr(BD_EINVAL, "'%s': %s is not a group", c->where, shown);
            chain_close(c);
            return rc;
        }
    }
    *grp = loc;
    return BD_OK;
}

/* Opens dataset name in /<phase>/<agent> of path. Close *ds, *grp, then chain_close. */
static int h5_open_dataset(const char *path, const char *phase, const char *agent,
                           const char *name, h5_chain *c, hid_t *grp, hid_t *ds)
{
    *ds = H5I_INVALID_HID;
    if (!name || !*name)
        return bd_seterr(BD_EINVAL, "no dataset name");
    int rc = h5_open_group(path, phase, agent, c, grp);
    if (rc)
        return rc;
    htri_t ex = H5Lexists(*grp, name, H5P_DEFAULT);
    if (ex > 0 && (*ds = H5Dopen2(*grp, name, H5P_DEFAULT)) >= 0)
        return BD_OK;
    rc = ex == 0 ? bd_seterr(BD_ENOTFOUND, "'%s': no dataset /%s/%s/%s", c->where, phase, agent,
                             name)
                 : h5_fail("'%s': cannot open /%s/%s/%s", c->where, phase, agent, name);
    h5_close_id(grp);
    chain_close(c);
    return rc;
}

static void h5_close_dataset(h5_chain *c, hid_t *grp, hid_t *ds)
{
    h5_close_id(ds);
    h5_close_id(grp);
    chain_close(c);
}

/* BD_OK when an episodes table's compound type has every field of bd_episode. */
static int episodes_fields_ok(hid_t ds, const char *where, const char *phase, const char *agent)
{
    static const char *const fields[] = {"world", "start_step", "length", "return", "terminated", "truncated"};
    hid_t t = H5Dget_type(ds);
    int rc = BD_OK;
    if (t < 0 || H5Tget_class(t) != H5T_COMPOUND)
        rc = bd_seterr(BD_EHDF5, "'%s': /%s/%s/episodes is not a compound table", where, phase, agent);
    for (size_t i = 0; rc == BD_OK && i < sizeof fields / sizeof fields[0]; i++)
        if (H5Tget_member_index(t, fields[i]) < 0)
            rc = bd_seterr(BD_EHDF5, "'%s': /%s/%s/episodes has no field '%s'", where, phase, agent,
                           fields[i]);
    h5_close_id(&t);
    return rc;
}

int bd_trace_read_episodes(const char *path, const char *phase, const char *agent,
                           bd_episode **out, int64_t *count)
{
    if (!path || !out || !count)
        return bd_seterr(BD_EINVAL, "bd_trace_read_episodes: NULL argument");
    *out = NULL;
    *count = 0;
    h5_guard g;
    h5_enter(&g);
    h5_chain c;
    hid_t grp, ds, sp = H5I_INVALID_HID, mt = H5I_INVALID_HID;
    int rc = h5_open_dataset(path, phase, agent, "episodes", &c, &grp, &ds);
    if (rc) {
        h5_leave(&g);
        return rc;
    }
    hsize_t dims[1];
    bd_episode *eps = NULL;
    if ((sp = H5Dget_space(ds)) < 0 || H5Sget_simple_extent_ndims(sp) != 1 ||
        H5Sget_simple_extent_dims(sp, dims, NULL) < 0) {
        rc = h5_fail("'%s': /%s/%s/episodes is not a table", c.where, phase, agent);
    } else if ((rc = episodes_fields_ok(ds, c.where, phase, agent))) {
        /* a table without all six fields would leave garbage in the missing ones */
    } else if (dims[0] > (hsize_t)(SIZE_MAX / sizeof *eps) ||
               !(eps = calloc(dims[0] ? dims[0] : 1, sizeof *eps))) {
        rc = bd_seterr(BD_ENOMEM, "'%s': no memory for %llu episodes", c.where,
                       (unsigned long long)dims[0]);
    } else if ((mt = episode_type(0)) < 0 ||
               (dims[0] && H5Dread(ds, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, eps) < 0)) {
        rc = h5_fail("'%s': cannot read /%s/%s/episodes", c.where, phase, agent);
    }
    h5_close_id(&mt);
    h5_close_id(&sp);
    h5_close_dataset(&c, &grp, &ds);
    h5_leave(&g);
    if (rc) {
        free(eps);
        return rc;
    }
    *out = eps;
    *count = (int64_t)dims[0];
    return BD_OK;
}

/* Shape and memory type (float32 or uint8) of an open dataset; unused dims are 1. */
static int dataset_info(hid_t ds, const char *where, const char *phase, const char *agent,
                        const char *name, int64_t dims[3], int *rank, hid_t *mtype)
{
    hid_t sp = H5Dget_space(ds), t = H5Dget_type(ds);
    hsize_t d[3] = {1, 1, 1};
    int r = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
    int rc = BD_OK;
    if (r < 0 || t < 0) {
        rc = h5_fail("'%s': cannot read the shape of /%s/%s/%s", where, phase, agent, name);
    } else if (r < 1 || r > 3 || H5Sget_simple_extent_dims(sp, d, NULL) < 0) {
        rc = bd_seterr(BD_EINVAL, "'%s': /%s/%s/%s has rank %d (want 1 to 3)", where, phase,
                       agent, name, r);
    } else {
        H5T_class_t cls = H5Tget_class(t);
        size_t size = H5Tget_size(t);
        if (cls == H5T_FLOAT && size == 4)
            *mtype = H5T_NATIVE_FLOAT;
        else if (cls == H5T_INTEGER && size == 1)
            *mtype = H5T_NATIVE_UINT8;
        else
            rc = bd_seterr(BD_EINVAL, "'%s': /%s/%s/%s is neither float32 nor uint8", where,
                           phase, agent, name);
    }
    for (int i = 0; i < 3; i++)
        dims[i] = (int64_t)d[i];
    if (rank)
        *rank = r;
    h5_close_id(&t);
    h5_close_id(&sp);
    return rc;
}

int bd_trace_dataset_shape(const char *path, const char *phase, const char *agent,
                           const char *name, int64_t dims[3], int *rank, int *float32)
{
    if (!path || !dims)
        return bd_seterr(BD_EINVAL, "bd_trace_dataset_shape: NULL argument");
    h5_guard g;
    h5_enter(&g);
    h5_chain c;
    hid_t grp, ds, mt;
    int rc = h5_open_dataset(path, phase, agent, name, &c, &grp, &ds);
    if (!rc) {
        rc = dataset_info(ds, c.where, phase, agent, name, dims, rank, &mt);
        if (!rc && float32)
            *float32 = mt == H5T_NATIVE_FLOAT;
        h5_close_dataset(&c, &grp, &ds);
    }
    h5_leave(&g);
    return rc;
}

int bd_trace_read_dataset(const char *path, const char *phase, const char *agent,
                          const char *name, void **out, int64_t dims[3], int *rank)
{
    if (!path || !out || !dims)
        return bd_seterr(BD_EINVAL, "bd_trace_read_dataset: NULL argument");
    *out = NULL;
    h5_guard g;
    h5_enter(&g);
    h5_chain c;
    hid_t grp, ds, mt = H5I_INVALID_HID;
    void *buf = NULL;
    int rc = h5_open_dataset(path, phase, agent, name, &c, &grp, &ds);
    if (rc) {
        h5_leave(&g);
        return rc;
    }
    size_t n = 1, bytes;
    rc = dataset_info(ds, c.where, phase, agent, name, dims, rank, &mt);
    for (int i = 0; i < 3 && !rc; i++)
        if (__builtin_mul_overflow(n, (size_t)dims[i], &n))
            rc = bd_seterr(BD_ENOMEM, "'%s': /%s/%s/%s is too large", c.where, phase, agent,
                           name);
    if (!rc && __builtin_mul_overflow(n, (size_t)(mt == H5T_NATIVE_FLOAT ? 4 : 1), &bytes))
        rc = bd_seterr(BD_ENOMEM, "'%s': /%s/%s/%s is too large", c.where, phase, agent, name);
    if (!rc) {
        if (!(buf = malloc(bytes ? bytes : 1)))
            rc = bd_seterr(BD_ENOMEM, "'%s': no memory for /%s/%s/%s (%zu bytes)", c.where,
                           phase, agent, name, bytes);
        else if (n && H5Dread(ds, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0)
            rc = h5_fail("'%s': cannot read /%s/%s/%s", c.where, phase, agent, name);
    }
    h5_close_dataset(&c, &grp, &ds);
    h5_leave(&g);
    if (rc) {
        free(buf);
        return rc;
    }
    *out = buf;
    return BD_OK;
}

int bd_trace_read_rows(const char *path, const char *phase, const char *agent,
                       const char *name, int64_t row0, int64_t nrows, void *buf)
{
    if (!path || (!buf && nrows > 0) || row0 < 0 || nrows < 0)
        return bd_seterr(BD_EINVAL, "bd_trace_read_rows: bad argument");
    if (nrows == 0)
        return BD_OK;
    h5_guard g;
    h5_enter(&g);
    h5_chain c;
    hid_t grp, ds, mt, fs = H5I_INVALID_HID, ms = H5I_INVALID_HID;
    int rc = h5_open_dataset(path, phase, agent, name, &c, &grp, &ds);
    if (rc) {
        h5_leave(&g);
        return rc;
    }
    int64_t dims[3];
    int rank;
    rc = dataset_info(ds, c.where, phase, agent, name, dims, &rank, &mt);
    if (!rc && row0 + nrows > dims[0])
        rc = bd_seterr(BD_EINVAL, "'%s': rows %lld..%lld of /%s/%s/%s, which has %lld", c.where,
                       (long long)row0, (long long)(row0 + nrows - 1), phase, agent, name,
                       (long long)dims[0]);
    if (!rc) {
        hsize_t start[3] = {(hsize_t)row0, 0, 0};
        hsize_t count[3] = {(hsize_t)nrows, (hsize_t)dims[1], (hsize_t)dims[2]};
        if ((fs = H5Dget_space(ds)) < 0 ||
            H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
            (ms = H5Screate_simple(rank, count, NULL)) < 0 ||
            H5Dread(ds, mt, ms, fs, H5P_DEFAULT, buf) < 0)
            rc = h5_fail("'%s': cannot read rows %lld..%lld of /%s/%s/%s", c.where,
                         (long long)row0, (long long)(row0 + nrows - 1), phase, agent, name);
    }
    h5_close_id(&ms);
    h5_close_id(&fs);
    h5_close_dataset(&c, &grp, &ds);
    h5_leave(&g);
    return rc;
}

typedef struct {
    char **v;
    int n, cap;
    int oom;
} name_vec;

static int vec_push(name_vec *v, char *s)
{
    if (!s) {
        v->oom = 1;
        return -1;
    }
    if (v->n == v->cap) {
        int cap = v->cap ? 2 * v->cap : 8;
        char **nv = realloc(v->v, (size_t)cap * sizeof *nv);
        if (!nv) {
            free(s);
            v->oom = 1;
            return -1;
        }
        v->v = nv;
        v->cap = cap;
    }
    v->v[v->n++] = s;
    return 0;
}

static void vec_free(name_vec *v)
{
    for (int i = 0; i < v->n; i++)
        free(v->v[i]);
    free(v->v);
    memset(v, 0, sizeof *v);
}

static herr_t list_cb(hid_t grp, const char *name, const H5L_info_t *info, void *data)
{
    (void)grp;
    (void)info;
    return vec_push(data, bd_strdup(name)) ? -1 : 0;
}

/* Link names of group loc in creation order (name order when the file kept none). */
static int link_names(hid_t loc, const char *where, const char *shown, name_vec *out)
{
    memset(out, 0, sizeof *out);
    if (H5Literate(loc, H5_INDEX_CRT_ORDER, H5_ITER_INC, NULL, list_cb, out) >= 0)
        return BD_OK;
    int oom = out->oom;
    vec_free(out);
    if (!oom && H5Literate(loc, H5_INDEX_NAME, H5_ITER_INC, NULL, list_cb, out) >= 0)
        return BD_OK;
    oom = oom || out->oom;
    int rc = oom ? bd_seterr(BD_ENOMEM, "out of memory")
                 : h5_fail("'%s': cannot list %s", where, shown);
    vec_free(out);
    return rc;
}

int bd_trace_list(const char *path, char ***names, int *count)
{
    if (!path || !names || !count)
        return bd_seterr(BD_EINVAL, "bd_trace_list: NULL argument");
    *names = NULL;
    *count = 0;
    h5_guard g;
    h5_enter(&g);
    name_vec phases = {0}, found = {0};
    hid_t f = H5I_INVALID_HID;
    int rc = h5_open_ro(path, &f);
    if (!rc)
        rc = link_names(f, path, "/", &phases);
    h5_close_id(&f);
    for (int i = 0; i < phases.n && !rc; i++) {
        h5_chain c;
        hid_t pg;
        name_vec agents = {0};
        rc = h5_open_group(path, phases.v[i], NULL, &c, &pg);
        if (rc == BD_ENOTFOUND || rc == BD_EINVAL) {  /* a dangling link, or not a group */
            rc = BD_OK;
            continue;
        }
        if (!rc) {
            char shown[512];
            snprintf(shown, sizeof shown, "/%s", phases.v[i]);
            rc = link_names(pg, c.where, shown, &agents);
            h5_close_id(&pg);
            chain_close(&c);
        }
        for (int j = 0; j < agents.n && !rc; j++) {
            hid_t ag;
            rc = h5_open_group(path, phases.v[i], agents.v[j], &c, &ag);
            if (rc == BD_ENOTFOUND || rc == BD_EINVAL) {
                rc = BD_OK;
                continue;
            }
            if (rc)
                break;
            htri_t has = H5Lexists(ag, "rewards", H5P_DEFAULT);
            if (has < 0)
                rc = h5_fail("'%s': cannot look up /%s/%s/rewards", c.where, phases.v[i],
                             agents.v[j]);
            else if (has && vec_push(&found, bd_strfmt("%s/%s", phases.v[i], agents.v[j])))
                rc = bd_seterr(BD_ENOMEM, "out of memory");
            h5_close_id(&ag);
            chain_close(&c);
        }
        vec_free(&agents);
    }
    vec_free(&phases);
    h5_leave(&g);
    if (rc) {
        vec_free(&found);
        return rc;
    }
    *names = found.v;
    *count = found.n;
    return BD_OK;
}
