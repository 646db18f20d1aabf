/* writer.c: an agent's trace writer (memory.h, docs/trace-format.md).
 *
 * bd_trace_writer_create makes <path> holding /<phase>/<agent>, its datasets and
 * attributes, switches the file to SWMR writing (so a reader can open it while it grows,
 * and after a crash) and starts one pthread. Appends copy their rows into a bounded queue
 * (at most BD_TRACE_QUEUE_MAX bytes; a caller blocks beyond that) and return; the thread
 * extends the datasets, writes each item as one hyperslab and flushes the file. Between
 * create and destroy only that thread calls HDF5 for the writer.
 *
 * The writer holds an exclusive lock on its file (memory/h5.h) from before it is created
 * until it is closed. The kernel drops it when the process dies, so bd_trace_recover can
 * tell a file whose writer died from a live one.
 *
 * Limits: one writer per file; N, S, U >= 1 and fixed for the file's life; rows and
 * episodes only grow; phase and agent names are single HDF5 link names (no '/').
 */
#define _GNU_SOURCE
#include <math.h>
#include <pthread.h>
#include <unistd.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "memory/h5.h"

#define BD_TRACE_CHUNK_BYTES (512u * 1024u)     /* one chunk, below the 1 MiB chunk cache */
#define BD_TRACE_CHUNK_ROWS 4096                /* rows per chunk at most (small rows) */
#define BD_TRACE_EP_CHUNK 4096                  /* episode rows per chunk (22 B each) */
#define BD_TRACE_QUEUE_MAX ((size_t)256 << 20)  /* bytes queued before append blocks */
#define BD_TRACE_ERR_BYTES 256                  /* the write_error attribute's size */
#define BD_TRACE_GROUP_BYTES 40                 /* the group_id attribute's (32 hex digits) */


enum { ITEM_ROWS, ITEM_EPISODES, ITEM_GROUP };

typedef struct item {
    struct item *next;
    int kind;
    int64_t count;      /* rows (T) or episodes */
    size_t bytes;       /* payload bytes, counted against the queue bound */
    const void *data[BD_STEP_COUNT]; /* rows: one pointer per dataset; episodes: data[0], and
                                   their final observations data[1] */
} item;

struct bd_trace_writer {
    char *path, *phase, *agent;
    int lock_fd;                                 /* the writer's flock on path */
    int n, s, u;
    int width, every;                            /* appended rows hold `width` columns, of
                                                    which the first n of every every-th step
                                                    are kept */
    int64_t steps_in;                            /* env steps appended so far (the appender's) */
    hid_t file, ds[BD_STEP_COUNT], ds_ep, ds_fin, t_ep_mem; /* touched only by the thread after create */
    bd_compression compression;
    int steps;                                   /* step rows are recorded */
    int64_t rows_written, eps_written;           /* thread only */
    int64_t rows_flushed, eps_flushed;           /* thread only: in the file at the last flush */
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

#define BD_FILTER_BLOSC 32001 /* registered HDF5 filter ids of the plugins */
#define BD_FILTER_LZ4 32004

static const char *const bd_compression_names[] = {"none", "blosc", "lz4", "deflate"};

int bd_compression_parse(const char *name)
{
    for (int c = 0; c < 4; c++)
        if (name && strcmp(name, bd_compression_names[c]) == 0)
            return c;
    return -1;
}

const char *bd_compression_name(bd_compression c)
{
    return (int)c >= 0 && (int)c < 4 ? bd_compression_names[c] : "?";
}

int bd_compression_available(bd_compression c)
{
    H5Z_filter_t id = c == BD_COMPRESS_BLOSC ? BD_FILTER_BLOSC : c == BD_COMPRESS_LZ4 ? BD_FILTER_LZ4 : H5Z_FILTER_DEFLATE;
    if (c == BD_COMPRESS_NONE)
        return BD_OK;
    bd_h5_guard g;
    bd_h5_enter(&g);
    /* asks the plugin path too: a dataset that uses the filter loads it */
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    htri_t ok = H5Zfilter_avail(id);
    bd_h5_close(&dcpl);
    bd_h5_leave(&g);
    if (ok > 0)
        return BD_OK;
    return bd_seterr(BD_ENOTFOUND, "compression %s: HDF5 here has no %s filter (Debian: apt install %s)",
                     bd_compression_name(c), bd_compression_name(c),
                     c == BD_COMPRESS_BLOSC ? "hdf5-filter-plugin-blosc-serial" : "hdf5-filter-plugin");
}

bd_compression bd_compression_default(void)
{
    return bd_compression_available(BD_COMPRESS_LZ4) == BD_OK ? BD_COMPRESS_LZ4 : BD_COMPRESS_NONE;
}

/* The step datasets' filter on dcpl: Blosc's cd_values 4..6 are level 5, byte shuffle,
 * LZ4 (0..3 the filter fills in); deflate level 1 after a shuffle. */
static int set_filter(hid_t dcpl, bd_compression c)
{
    static const unsigned blosc[7] = {0, 0, 0, 0, 5, 1, 1};
    switch (c) {
    case BD_COMPRESS_BLOSC:
        return H5Pset_filter(dcpl, BD_FILTER_BLOSC, H5Z_FLAG_MANDATORY, 7, blosc) >= 0 ? 0 : -1;
    case BD_COMPRESS_LZ4:
        return H5Pset_filter(dcpl, BD_FILTER_LZ4, H5Z_FLAG_MANDATORY, 0, NULL) >= 0 ? 0 : -1;
    case BD_COMPRESS_DEFLATE:
        return H5Pset_shuffle(dcpl) >= 0 && H5Pset_deflate(dcpl, 1) >= 0 ? 0 : -1;
    default:
        return 0;
    }
}

static hid_t make_dataset(const bd_trace_writer *w, hid_t grp, int d, hid_t ftype, size_t esize)
{
    int rank = d <= BD_STEP_ACTUATORS ? 3 : 2;
    hsize_t k = d == BD_STEP_SENSORS ? (hsize_t)w->s : d == BD_STEP_ACTUATORS ? (hsize_t)w->u : 1;
    hsize_t dims[3] = {0, (hsize_t)w->n, k};
    hsize_t maxdims[3] = {H5S_UNLIMITED, (hsize_t)w->n, k};
    hsize_t chunk[3];
    chunk_shape(rank, (hsize_t)w->n, k, esize, chunk);

    hid_t sp = H5Screate_simple(rank, dims, maxdims), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    hid_t ds = H5I_INVALID_HID;
    if (sp >= 0 && dcpl >= 0 && H5Pset_chunk(dcpl, rank, chunk) >= 0 && set_filter(dcpl, w->compression) == 0)
        ds = H5Dcreate2(grp, bd_step_names[d], ftype, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (ds < 0)
        bd_h5_fail("'%s': cannot create /%s/%s/%s", w->path, w->phase, w->agent, bd_step_names[d]);
    bd_h5_close(&dcpl);
    bd_h5_close(&sp);
    return ds;
}

/* Closes the writer's HDF5 objects; returns the file close's error, if any (recorded
 * with bd_seterr only when record is set, so a setup error's detail survives). */
static int writer_close_h5(bd_trace_writer *w, int record)
{
    for (int d = 0; d < BD_STEP_COUNT; d++)
        bd_h5_close(&w->ds[d]);
    bd_h5_close(&w->ds_ep);
    bd_h5_close(&w->ds_fin);
    bd_h5_close(&w->t_ep_mem);
    int rc = BD_OK;
    if (w->file >= 0 && H5Fclose(w->file) < 0)
        rc = record ? bd_h5_fail("'%s': cannot close the trace file", w->path) : BD_EHDF5;
    w->file = H5I_INVALID_HID;
    return rc;
}

/* A fixed-length text attribute `name` of `size` bytes on group g, "" for now: rewritten in
 * place later (writer_rewrite_text), which SWMR allows where a new attribute is not. */
static int writer_fixed_text(hid_t g, const char *path, const char *obj, const char *name, size_t size,
                             H5T_cset_t cset)
{
    char *none = calloc(1, size);
    hid_t t = H5Tcopy(H5T_C_S1);
    int rc = BD_OK;
    if (!none)
        rc = bd_seterr(BD_ENOMEM, "out of memory");
    else if (t < 0 || H5Tset_size(t, size) < 0 || H5Tset_cset(t, cset) < 0 || H5Tset_strpad(t, H5T_STR_NULLTERM) < 0)
        rc = bd_h5_fail("'%s': cannot make a string type", path);
    else
        rc = bd_h5_attr_scalar(g, path, obj, name, t, t, none);
    bd_h5_close(&t);
    free(none);
    return rc;
}

/* Writes text (its attribute's size in bytes) into the agent's attribute `name` made by
 * writer_fixed_text: < 0 when HDF5 refused. Thread only. */
static int writer_rewrite_text(bd_trace_writer *w, const char *name, const void *text)
{
    char obj[512];
    snprintf(obj, sizeof obj, "/%s/%s", w->phase, w->agent);
    hid_t grp = H5Gopen2(w->file, obj, H5P_DEFAULT), a = H5I_INVALID_HID, t = H5I_INVALID_HID;
    int rc = grp < 0 || (a = H5Aopen(grp, name, H5P_DEFAULT)) < 0 || (t = H5Aget_type(a)) < 0 ||
                     H5Awrite(a, t, text) < 0
                 ? -1
                 : 0;
    bd_h5_close(&t);
    bd_h5_close(&a);
    bd_h5_close(&grp);
    return rc;
}

/* Creates the file, groups, datasets and attributes, then starts SWMR writing. Caller holds
 * the HDF5 guard. */
static int writer_setup(bd_trace_writer *w, const bd_trace_spec *spec)
{
    int rc = BD_OK;
    char obj[512];
    snprintf(obj, sizeof obj, "/%s/%s", w->phase, w->agent);
    hid_t fapl = bd_h5_fapl(1), fcpl = bd_h5_fcpl(), gcpl = bd_h5_gcpl();
    hid_t pg = H5I_INVALID_HID, g = H5I_INVALID_HID, ftype = H5I_INVALID_HID;
    hid_t sp = H5I_INVALID_HID;
    if (fapl < 0 || fcpl < 0 || gcpl < 0) {
        rc = bd_h5_fail("'%s': cannot make property lists", w->path);
        goto done;
    }
    w->file = H5Fcreate(w->path, H5F_ACC_TRUNC, fcpl, fapl);
    if (w->file < 0) {
        rc = bd_h5_fail("cannot create trace file '%s'", w->path);
        goto done;
    }
    if ((pg = H5Gcreate2(w->file, w->phase, H5P_DEFAULT, gcpl, H5P_DEFAULT)) < 0 ||
        (g = H5Gcreate2(pg, w->agent, H5P_DEFAULT, gcpl, H5P_DEFAULT)) < 0) {
        rc = bd_h5_fail("'%s': cannot create group %s", w->path, obj);
        goto done;
    }
    const hid_t ftypes[BD_STEP_COUNT] = {H5T_IEEE_F32LE, H5T_IEEE_F32LE, H5T_IEEE_F32LE,
                                         H5T_STD_U8LE,   H5T_STD_U8LE,   H5T_STD_U64LE};
    const size_t esizes[BD_STEP_COUNT] = {4, 4, 4, 1, 1, 8};
    for (int d = 0; d < BD_STEP_COUNT; d++) {
        if ((w->ds[d] = make_dataset(w, g, d, ftypes[d], esizes[d])) < 0) {
            rc = BD_EHDF5;
            goto done;
        }
    }

    /* episodes (E,) */
    hsize_t edims[1] = {0}, emax[1] = {H5S_UNLIMITED}, echunk[1] = {BD_TRACE_EP_CHUNK};
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    ftype = bd_h5_episode_type(1);
    w->t_ep_mem = bd_h5_episode_type(0);
    sp = H5Screate_simple(1, edims, emax);
    if (dcpl >= 0 && ftype >= 0 && w->t_ep_mem >= 0 && sp >= 0 &&
        H5Pset_chunk(dcpl, 1, echunk) >= 0)
        w->ds_ep = H5Dcreate2(g, "episodes", ftype, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (w->ds_ep < 0)
        rc = bd_h5_fail("'%s': cannot create %s/episodes", w->path, obj);
    bd_h5_close(&dcpl);
    bd_h5_close(&sp);
    if (rc)
        goto done;
    /* final_sensors (E, S), row e beside episode e */
    hsize_t fdims[2] = {0, (hsize_t)w->s}, fmax[2] = {H5S_UNLIMITED, (hsize_t)w->s}, fchunk[2];
    fchunk[1] = (hsize_t)w->s;
    fchunk[0] = BD_TRACE_CHUNK_BYTES / 4 / (hsize_t)w->s;
    fchunk[0] = fchunk[0] < 1 ? 1 : fchunk[0] > BD_TRACE_EP_CHUNK ? BD_TRACE_EP_CHUNK : fchunk[0];
    dcpl = H5Pcreate(H5P_DATASET_CREATE);
    sp = H5Screate_simple(2, fdims, fmax);
    if (dcpl >= 0 && sp >= 0 && H5Pset_chunk(dcpl, 2, fchunk) >= 0)
        w->ds_fin = H5Dcreate2(g, "final_sensors", H5T_IEEE_F32LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    if (w->ds_fin < 0)
        rc = bd_h5_fail("'%s': cannot create %s/final_sensors", w->path, obj);
    bd_h5_close(&dcpl);
    if (rc)
        goto done;

    const char *env = spec->env_name ? spec->env_name : "";
    const char *params = spec->env_params_json ? spec->env_params_json : "{}";
    int32_t worlds = spec->worlds > 0 ? spec->worlds : spec->n, every = spec->every > 0 ? spec->every : 1;
    int32_t recorded = w->steps ? spec->n : 0, members = spec->members > 0 ? spec->members : 1;
    const char *comp = bd_compression_name(w->compression);
    const char *uid = spec->env_uid ? spec->env_uid : env, *group = spec->group ? spec->group : "";
    if ((rc = bd_h5_attr_strings(g, w->path, obj, "sensor_ids", spec->sensor_ids, spec->s)) ||
        (rc = bd_h5_attr_scalar(g, w->path, obj, "record_every", H5T_STD_I32LE, H5T_NATIVE_INT32, &every)) ||
        (rc = bd_h5_attr_scalar(g, w->path, obj, "record_worlds", H5T_STD_I32LE, H5T_NATIVE_INT32, &recorded)) ||
        (rc = bd_h5_attr_strings(g, w->path, obj, "compression", &comp, -1)) ||
        (rc = bd_h5_attr_strings(g, w->path, obj, "actuator_ids", spec->actuator_ids, spec->u)) ||
        (rc = bd_h5_attr_strings(g, w->path, obj, "env", &env, -1)) ||
        (rc = bd_h5_attr_strings(g, w->path, obj, "env_params", &params, -1)) ||
        (rc = bd_h5_attr_strings(g, w->path, obj, "env_uid", &uid, -1)) ||
        (rc = bd_h5_attr_strings(g, w->path, obj, "group", &group, -1)) ||
        (rc = bd_h5_attr_scalar(g, w->path, obj, "members", H5T_STD_I32LE, H5T_NATIVE_INT32, &members)) ||
        (rc = bd_h5_attr_scalar(g, w->path, obj, "seed", H5T_STD_U64LE, H5T_NATIVE_UINT64, &spec->seed)) ||
        (rc = bd_h5_attr_scalar(g, w->path, obj, "worlds", H5T_STD_I32LE, H5T_NATIVE_INT32, &worlds)) ||
        (rc = bd_h5_attr_scalar(g, w->path, obj, "world0", H5T_STD_U32LE, H5T_NATIVE_UINT32, &spec->world0)))
        goto done;
    /* write_error: fixed-length, so that writing it after the disk filled up needs no new
     * space in the file ("" while nothing failed); group_id: the launch of a run of many
     * ranks this trace belongs to ("" until its learner group formed;
     * bd_trace_writer_group), fixed-length like it so that it can be written under SWMR */
    if ((rc = writer_fixed_text(g, w->path, obj, "write_error", BD_TRACE_ERR_BYTES, H5T_CSET_UTF8)) ||
        (rc = writer_fixed_text(g, w->path, obj, "group_id", BD_TRACE_GROUP_BYTES, H5T_CSET_ASCII)))
        goto done;

    /* SWMR writing wants no open groups or attributes. */
    bd_h5_close(&g);
    bd_h5_close(&pg);
    if (H5Fstart_swmr_write(w->file) < 0 || H5Fflush(w->file, H5F_SCOPE_LOCAL) < 0)
        rc = bd_h5_fail("'%s': cannot start SWMR writing", w->path);
done:
    bd_h5_close(&sp);
    bd_h5_close(&ftype);
    bd_h5_close(&g);
    bd_h5_close(&pg);
    bd_h5_close(&gcpl);
    bd_h5_close(&fcpl);
    bd_h5_close(&fapl);
    if (rc)
        writer_close_h5(w, 0);
    return rc;
}

/* Extends dataset d to row0 + T rows and writes buf, (T, N[, K]), at row0. */
static int write_block(bd_trace_writer *w, int d, int64_t row0, int64_t T, const void *buf)
{
    int rank = d <= BD_STEP_ACTUATORS ? 3 : 2;
    hsize_t k = d == BD_STEP_SENSORS ? (hsize_t)w->s : d == BD_STEP_ACTUATORS ? (hsize_t)w->u : 1;
    hsize_t dims[3] = {(hsize_t)(row0 + T), (hsize_t)w->n, k};
    hsize_t start[3] = {(hsize_t)row0, 0, 0};
    hsize_t count[3] = {(hsize_t)T, (hsize_t)w->n, k};
    hid_t mtype = bd_h5_step_mtype(d);
    hid_t fs = H5I_INVALID_HID, ms = H5I_INVALID_HID;
    int rc = BD_OK;
    if (H5Dset_extent(w->ds[d], dims) < 0 || (fs = H5Dget_space(w->ds[d])) < 0 ||
        H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL) < 0 ||
        (ms = H5Screate_simple(rank, count, NULL)) < 0 ||
        H5Dwrite(w->ds[d], mtype, ms, fs, H5P_DEFAULT, buf) < 0)
        rc = bd_h5_fail("'%s': cannot write rows %lld..%lld of /%s/%s/%s", w->path, (long long)row0,
                     (long long)(row0 + T - 1), w->phase, w->agent, bd_step_names[d]);
    bd_h5_close(&ms);
    bd_h5_close(&fs);
    return rc;
}

/* Extends ds (rank 1 or 2: (E,) or (E, K)) to e0 + count rows and writes buf there. */
static int append_rows(bd_trace_writer *w, hid_t ds, int rank, hsize_t k, hid_t mtype, int64_t e0, int64_t count,
                       const void *buf, const char *name)
{
    hsize_t dims[2] = {(hsize_t)(e0 + count), k}, start[2] = {(hsize_t)e0, 0}, cnt[2] = {(hsize_t)count, k};
    hid_t fs = H5I_INVALID_HID, ms = H5I_INVALID_HID;
    int rc = BD_OK;
    if (H5Dset_extent(ds, dims) < 0 || (fs = H5Dget_space(ds)) < 0 ||
        H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, cnt, NULL) < 0 ||
        (ms = H5Screate_simple(rank, cnt, NULL)) < 0 || H5Dwrite(ds, mtype, ms, fs, H5P_DEFAULT, buf) < 0)
        rc = bd_h5_fail("'%s': cannot write rows %lld..%lld of /%s/%s/%s", w->path, (long long)e0,
                        (long long)(e0 + count - 1), w->phase, w->agent, name);
    bd_h5_close(&ms);
    bd_h5_close(&fs);
    return rc;
}

static int write_episodes(bd_trace_writer *w, const item *it)
{
    int rc = append_rows(w, w->ds_fin, 2, (hsize_t)w->s, H5T_NATIVE_FLOAT, w->eps_written, it->count, it->data[1],
                         "final_sensors");
    if (rc == BD_OK)
        rc = append_rows(w, w->ds_ep, 1, 1, w->t_ep_mem, w->eps_written, it->count, it->data[0], "episodes");
    if (rc == BD_OK)
        w->eps_written += it->count;
    return rc;
}

static int write_item(bd_trace_writer *w, const item *it)
{
    int rc = BD_OK;
    if (it->kind == ITEM_ROWS) {
        for (int d = 0; d < BD_STEP_COUNT && !rc; d++)
            rc = write_block(w, d, w->rows_written, it->count, it->data[d]);
        if (!rc)
            w->rows_written += it->count;
    } else if (it->kind == ITEM_GROUP) {
        if (writer_rewrite_text(w, "group_id", it->data[0]) < 0)
            rc = bd_h5_fail("'%s': cannot write group_id", w->path);
    } else {
        rc = write_episodes(w, it);
    }
    if (!rc && H5Fflush(w->file, H5F_SCOPE_LOCAL) < 0)
        rc = bd_h5_fail("'%s': cannot flush", w->path);
    if (!rc) {
        w->rows_flushed = w->rows_written;
        w->eps_flushed = w->eps_written;
    }
    return rc;
}

/* After the first write error (a full disk, a file size limit): cuts every step dataset
 * back to the rows of the last successful flush, and the episodes tables to theirs, so the
 * file never shows rows that were not written (a chunk that never reached the disk would
 * read as zeros); records why in write_error and flushes what remains. Best effort: on a
 * full disk each step may fail too; the first error stays the writer's. */
static void writer_cut(bd_trace_writer *w, const char *why)
{
    for (int d = 0; d < BD_STEP_COUNT; d++) {
        hsize_t k = d == BD_STEP_SENSORS ? (hsize_t)w->s : d == BD_STEP_ACTUATORS ? (hsize_t)w->u : 1;
        hsize_t dims[3] = {(hsize_t)w->rows_flushed, (hsize_t)w->n, k};
        H5Dset_extent(w->ds[d], dims);
    }
    hsize_t edims[2] = {(hsize_t)w->eps_flushed, (hsize_t)w->s};
    H5Dset_extent(w->ds_ep, edims);
    H5Dset_extent(w->ds_fin, edims);
    w->rows_written = w->rows_flushed;
    w->eps_written = w->eps_flushed;

    char text[BD_TRACE_ERR_BYTES];
    snprintf(text, sizeof text, "stopped after row %lld: %.200s", (long long)w->rows_flushed, why);
    writer_rewrite_text(w, "write_error", text);
    H5Fflush(w->file, H5F_SCOPE_LOCAL);
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
            bd_h5_guard g;
            bd_h5_enter(&g);
            rc = write_item(w, it);
            if (rc) {
                char why[BD_TRACE_ERR_BYTES];
                snprintf(why, sizeof why, "%s", bd_lasterr());
                writer_cut(w, why);
                bd_seterr(rc, "%s", why);
            }
            bd_h5_leave(&g);
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
    if (w->lock_fd >= 0)
        close(w->lock_fd);
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
    if ((rc = bd_h5_check_name("phase", spec->phase)) || (rc = bd_h5_check_name("agent", spec->agent)))
        return rc;
    if (spec->n < 1 || spec->s < 1 || spec->u < 1)
        return bd_seterr(BD_EINVAL, "'%s': trace needs N, S, U >= 1 (got %d, %d, %d)",
                         spec->path, spec->n, spec->s, spec->u);
    if ((int)spec->compression < 0 || (int)spec->compression > BD_COMPRESS_DEFLATE || spec->every < 0 || spec->worlds < 0
        || (spec->worlds > 0 && spec->worlds < spec->n))
        return bd_seterr(BD_EINVAL, "'%s': bad recording options", spec->path);
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
    w->lock_fd = -1;
    w->path = bd_strdup(spec->path);
    w->phase = bd_strdup(spec->phase);
    w->agent = bd_strdup(spec->agent);
    w->n = spec->n;
    w->s = spec->s;
    w->u = spec->u;
    w->width = spec->worlds > 0 ? spec->worlds : spec->n;
    w->every = spec->every > 0 ? spec->every : 1;
    w->file = w->ds_ep = w->ds_fin = w->t_ep_mem = H5I_INVALID_HID;
    w->compression = spec->compression;
    w->steps = !spec->no_steps;
    for (int d = 0; d < BD_STEP_COUNT; d++)
        w->ds[d] = H5I_INVALID_HID;
    if (!w->path || !w->phase || !w->agent) {
        writer_free(w);
        return bd_seterr(BD_ENOMEM, "'%s': out of memory", spec->path);
    }
    if ((rc = bd_h5_make_parent(w->path)) || (rc = bd_h5_lock_writer(w->path, &w->lock_fd))) {
        writer_free(w);
        return rc;
    }

    bd_h5_guard g;
    bd_h5_enter(&g);
    rc = writer_setup(w, spec);
    bd_h5_leave(&g);
    if (rc) {
        writer_free(w);
        return rc;
    }

    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv_work, NULL);
    pthread_cond_init(&w->cv_done, NULL);
    int e = pthread_create(&w->thread, NULL, writer_main, w);
    if (e) {
        bd_h5_enter(&g);
        writer_close_h5(w, 0);
        bd_h5_leave(&g);
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

/* How many of T env steps about to be appended the trace keeps: those whose step is a
 * multiple of every (counting the steps appended before); *first is the first of them. */
static int64_t kept_rows(const bd_trace_writer *w, int T, int64_t *first)
{
    *first = (w->every - w->steps_in % w->every) % w->every;
    return *first < T ? (T - 1 - *first) / w->every + 1 : 0;
}

int bd_trace_writer_append(bd_trace_writer *w, int T, const float *sensors,
                           const float *actuators, const float *rewards,
                           const uint8_t *terminated, const uint8_t *truncated)
{
    return bd_trace_writer_append_versions(w, T, sensors, actuators, rewards, terminated, truncated, NULL);
}

int bd_trace_writer_append_versions(bd_trace_writer *w, int T, const float *sensors, const float *actuators,
                                    const float *rewards, const uint8_t *terminated, const uint8_t *truncated,
                                    const uint64_t *versions)
{
    if (!w)
        return bd_seterr(BD_EINVAL, "bd_trace_writer_append: writer is NULL");
    if (T < 0)
        return bd_seterr(BD_EINVAL, "'%s': append of %d rows", w->path, T);
    if (T > 0 && (!sensors || !actuators || !rewards || !terminated || !truncated))
        return bd_seterr(BD_EINVAL, "'%s': append with a NULL buffer", w->path);

    /* bytes per dataset of the rows kept: sensors (R,N,S) f32, actuators (R,N,U) f32,
     * rewards (R,N) f32, terminated and truncated (R,N) u8, versions (R,N) u64 */
    int64_t first;
    const int64_t R = kept_rows(w, T, &first);
    const size_t width[BD_STEP_COUNT] = {(size_t)w->s, (size_t)w->u, 1, 1, 1, 1};
    const size_t esize[BD_STEP_COUNT] = {4, 4, 4, 1, 1, 8};
    size_t cells, sz[BD_STEP_COUNT], total = 0;
    if (__builtin_mul_overflow((size_t)R, (size_t)w->n, &cells))
        return bd_seterr(BD_EINVAL, "'%s': append of %d rows is too large", w->path, T);
    for (int d = 0; d < BD_STEP_COUNT; d++)
        if (__builtin_mul_overflow(cells, width[d] * esize[d], &sz[d]) || __builtin_add_overflow(total, sz[d], &total))
            return bd_seterr(BD_EINVAL, "'%s': append of %d rows is too large", w->path, T);

    pthread_mutex_lock(&w->mu);
    int rc = writer_error(w);
    pthread_mutex_unlock(&w->mu);
    if (rc || T == 0)
        return rc;
    if (!w->steps)
        return bd_seterr(BD_ESTATE, "'%s': this trace records no steps", w->path);
    w->steps_in += T;
    if (R == 0)
        return BD_OK;

    item *it = malloc(sizeof *it + total);
    if (!it)
        return bd_seterr(BD_ENOMEM, "'%s': out of memory queueing %d rows", w->path, T);
    const void *src[BD_STEP_COUNT] = {sensors, actuators, rewards, terminated, truncated, versions};
    unsigned char *p = (unsigned char *)(it + 1); /* the versions first (8-byte aligned), then the floats */
    static const int order[BD_STEP_COUNT] = {BD_STEP_VERSION,    BD_STEP_SENSORS,    BD_STEP_ACTUATORS,
                                             BD_STEP_REWARDS,    BD_STEP_TERMINATED, BD_STEP_TRUNCATED};
    for (int j = 0; j < BD_STEP_COUNT; j++) {
        const int d = order[j];
        const size_t cell = width[d] * esize[d], in_row = (size_t)w->width * cell, out_row = (size_t)w->n * cell;
        it->data[d] = p;
        if (!src[d]) { /* no versions given: 0 (an agent without weights, or a caller that does not say) */
            memset(p, 0, sz[d]);
            p += sz[d];
            continue;
        }
        if (w->every == 1 && w->n == w->width) { /* every row whole: one copy */
            memcpy(p, src[d], sz[d]);
            p += sz[d];
            continue;
        }
        for (int64_t t = first; t < T; t += w->every, p += out_row) /* the first n columns of a kept step */
            memcpy(p, (const unsigned char *)src[d] + (size_t)t * in_row, out_row);
    }
    it->kind = ITEM_ROWS;
    it->count = R;
    it->bytes = total;
    return enqueue(w, it);
}

int bd_trace_writer_episodes(bd_trace_writer *w, const bd_episode *eps, int count,
                             const float *final_sensors)
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
    size_t fbytes = (size_t)count * (size_t)w->s * sizeof(float), ebytes = (size_t)count * sizeof *eps;
    size_t fpad = (fbytes + 7) & ~(size_t)7; /* the episodes after them 8-byte aligned */
    size_t bytes = fpad + ebytes;
    item *it = malloc(sizeof *it + bytes);
    if (!it)
        return bd_seterr(BD_ENOMEM, "'%s': out of memory queueing %d episodes", w->path, count);
    float *fin = (float *)(it + 1); /* floats first: aligned */
    if (final_sensors) {
        memcpy(fin, final_sensors, fbytes);
    } else {
        for (size_t k = 0; k < (size_t)count * (size_t)w->s; k++)
            fin[k] = NAN;
    }
    memcpy((unsigned char *)fin + fpad, eps, ebytes);
    memset(it->data, 0, sizeof it->data);
    it->data[0] = (unsigned char *)fin + fpad;
    it->data[1] = fin;
    it->kind = ITEM_EPISODES;
    it->count = count;
    it->bytes = bytes;
    return enqueue(w, it);
}

int bd_trace_writer_group(bd_trace_writer *w, const char *id)
{
    if (!w || !id)
        return bd_seterr(BD_EINVAL, "bd_trace_writer_group: NULL argument");
    if (strlen(id) >= BD_TRACE_GROUP_BYTES)
        return bd_seterr(BD_EINVAL, "'%s': a group id of %zu characters (at most %d)", w->path, strlen(id),
                         BD_TRACE_GROUP_BYTES - 1);
    pthread_mutex_lock(&w->mu);
    int rc = writer_error(w);
    pthread_mutex_unlock(&w->mu);
    if (rc)
        return rc;
    item *it = calloc(1, sizeof *it + BD_TRACE_GROUP_BYTES);
    if (!it)
        return bd_seterr(BD_ENOMEM, "'%s': out of memory", w->path);
    memcpy(it + 1, id, strlen(id) + 1);
    it->data[0] = it + 1;
    it->kind = ITEM_GROUP;
    it->bytes = BD_TRACE_GROUP_BYTES;
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

    bd_h5_guard g;
    bd_h5_enter(&g);
    int crc = writer_close_h5(w, !w->err);
    bd_h5_leave(&g);
    int rc = w->err ? bd_seterr(w->err, "%s", w->errmsg) : crc;
    pthread_cond_destroy(&w->cv_done);
    pthread_cond_destroy(&w->cv_work);
    pthread_mutex_destroy(&w->mu);
    writer_free(w);
    return rc;
}
