/* reader.c: trace readers (memory.h). They open files read-only (plainly first, then as
 * SWMR readers for a file that is still being written or whose writer died), follow
 * external links themselves, relative to the linking file's folder, and refuse truncated
 * files (a SWMR open skips HDF5's own check). */
#define _GNU_SOURCE
#include <errno.h>
#include <libgen.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "common/util.h"
#include "memory/h5.h"

#define BD_TRACE_MAX_HOPS 8 /* external links followed per lookup */

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
    if (!S_ISREG(st.st_mode)) /* a pipe or device would block the open, or never end */
        return bd_seterr(BD_EINVAL, "'%s' is not a regular file, not an HDF5 file", path);
    hid_t fapl = bd_h5_fapl(0);
    if (fapl < 0)
        return bd_h5_fail("'%s': cannot make a file access list", path);
    bd_h5_note_open(path);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    if (f < 0) {
        char why[256];
        bd_h5_reason(why);
        /* a SWMR reader retries a metadata checksum that fails (for a writer's half-written
         * block) up to 100 times with a doubling sleep: on a damaged file, for ever */
        H5Pset_metadata_read_attempts(fapl, 1);
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
        bd_h5_close(&c->files[i]);
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
    if ((rc = bd_h5_check_name("phase", phase)) || (agent && (rc = bd_h5_check_name("agent", agent))))
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
            rc = bd_h5_fail("'%s': cannot look up %s", c->where, shown);
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
                rc = bd_h5_fail("'%s': cannot read the external link %s", c->where, shown);
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
                    rc = bd_h5_fail("'%s': cannot open %s (linked from %s)", target, oname, shown);
            }
            free(val);
        } else if ((next = H5Oopen(loc, parts[i], H5P_DEFAULT)) < 0) {
            rc = bd_h5_fail("'%s': cannot open %s", c->where, shown);
        }
        if (loc != c->files[0] && H5Iget_type(loc) != H5I_FILE)
            bd_h5_close(&loc);
        if (rc) {
            bd_h5_close(&next);
            chain_close(c);
            return rc;
        }
        loc = next;
        if (H5Iget_type(loc) != H5I_GROUP) {
            bd_h5_close(&loc);
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
                 : bd_h5_fail("'%s': cannot open /%s/%s/%s", c->where, phase, agent, name);
    bd_h5_close(grp);
    chain_close(c);
    return rc;
}

static void h5_close_dataset(h5_chain *c, hid_t *grp, hid_t *ds)
{
    bd_h5_close(ds);
    bd_h5_close(grp);
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
    bd_h5_close(&t);
    return rc;
}

int64_t bd_episode_share(long long episodes, int columns, int members, int c)
{
    const int worlds = columns / members;
    const long long k = (long long)(c % members) * worlds + c / members;
    return (int64_t)((episodes + k) / columns);
}

int64_t bd_episodes_wrong(const bd_episode *eps, int64_t n, int columns, int64_t steps, int64_t *first)
{
    int64_t wrong = 0;
    *first = -1;
    for (int64_t e = 0; e < n; e++) {
        const bd_episode *x = &eps[e];
        if (!x->world && !x->start_step && !x->length && !x->ret && !x->terminated && !x->truncated)
            continue; /* all zero: a row a killed writer had made room for and not written */
        if (x->world < 0 || (columns > 0 && x->world >= columns) || x->length < 1 || x->start_step < 0
            || (steps > 0 && (x->start_step > steps || x->length > steps - x->start_step)) || isnan(x->ret)
            || x->terminated > 1 || x->truncated > 1) {
            wrong++;
            *first = *first < 0 ? e : *first;
        }
    }
    return wrong;
}

int bd_trace_read_episodes(const char *path, const char *phase, const char *agent,
                           bd_episode **out, int64_t *count)
{
    if (!path || !out || !count)
        return bd_seterr(BD_EINVAL, "bd_trace_read_episodes: NULL argument");
    *out = NULL;
    *count = 0;
    bd_h5_guard g;
    bd_h5_enter(&g);
    h5_chain c;
    hid_t grp, ds, sp = H5I_INVALID_HID, mt = H5I_INVALID_HID;
    int rc = h5_open_dataset(path, phase, agent, "episodes", &c, &grp, &ds);
    if (rc) {
        bd_h5_leave(&g);
        return rc;
    }
    hsize_t dims[1];
    bd_episode *eps = NULL;
    if ((sp = H5Dget_space(ds)) < 0 || H5Sget_simple_extent_ndims(sp) != 1 ||
        H5Sget_simple_extent_dims(sp, dims, NULL) < 0) {
        rc = bd_h5_fail("'%s': /%s/%s/episodes is not a table", c.where, phase, agent);
    } else if ((rc = episodes_fields_ok(ds, c.where, phase, agent))) {
        /* a table without all six fields would leave garbage in the missing ones */
    } else if (dims[0] > (hsize_t)(SIZE_MAX / sizeof *eps) ||
               !(eps = calloc(dims[0] ? dims[0] : 1, sizeof *eps))) {
        rc = bd_seterr(BD_ENOMEM, "'%s': no memory for %llu episodes", c.where,
                       (unsigned long long)dims[0]);
    } else if ((mt = bd_h5_episode_type(0)) < 0 ||
               (dims[0] && H5Dread(ds, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, eps) < 0)) {
        rc = bd_h5_fail("'%s': cannot read /%s/%s/episodes", c.where, phase, agent);
    }
    bd_h5_close(&mt);
    bd_h5_close(&sp);
    h5_close_dataset(&c, &grp, &ds);
    bd_h5_leave(&g);
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
        rc = bd_h5_fail("'%s': cannot read the shape of /%s/%s/%s", where, phase, agent, name);
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
        else if (cls == H5T_INTEGER && size == 8 && H5Tget_sign(t) == H5T_SGN_NONE)
            *mtype = H5T_NATIVE_UINT64;
        else
            rc = bd_seterr(BD_EINVAL, "'%s': /%s/%s/%s is neither float32, uint8 nor uint64", where,
                           phase, agent, name);
    }
    for (int i = 0; i < 3; i++)
        dims[i] = (int64_t)d[i];
    if (rank)
        *rank = r;
    bd_h5_close(&t);
    bd_h5_close(&sp);
    return rc;
}

int bd_trace_dataset_shape(const char *path, const char *phase, const char *agent,
                           const char *name, int64_t dims[3], int *rank, int *float32)
{
    if (!path || !dims)
        return bd_seterr(BD_EINVAL, "bd_trace_dataset_shape: NULL argument");
    bd_h5_guard g;
    bd_h5_enter(&g);
    h5_chain c;
    hid_t grp, ds, mt;
    int rc = h5_open_dataset(path, phase, agent, name, &c, &grp, &ds);
    if (!rc) {
        rc = dataset_info(ds, c.where, phase, agent, name, dims, rank, &mt);
        if (!rc && float32)
            *float32 = mt == H5T_NATIVE_FLOAT;
        h5_close_dataset(&c, &grp, &ds);
    }
    bd_h5_leave(&g);
    return rc;
}

int bd_trace_read_dataset(const char *path, const char *phase, const char *agent,
                          const char *name, void **out, int64_t dims[3], int *rank)
{
    if (!path || !out || !dims)
        return bd_seterr(BD_EINVAL, "bd_trace_read_dataset: NULL argument");
    *out = NULL;
    bd_h5_guard g;
    bd_h5_enter(&g);
    h5_chain c;
    hid_t grp, ds, mt = H5I_INVALID_HID;
    void *buf = NULL;
    int rc = h5_open_dataset(path, phase, agent, name, &c, &grp, &ds);
    if (rc) {
        bd_h5_leave(&g);
        return rc;
    }
    size_t n = 1, bytes;
    rc = dataset_info(ds, c.where, phase, agent, name, dims, rank, &mt);
    for (int i = 0; i < 3 && !rc; i++)
        if (__builtin_mul_overflow(n, (size_t)dims[i], &n))
            rc = bd_seterr(BD_ENOMEM, "'%s': /%s/%s/%s is too large", c.where, phase, agent,
                           name);
    if (!rc && __builtin_mul_overflow(n, (size_t)(mt == H5T_NATIVE_FLOAT ? 4 : mt == H5T_NATIVE_UINT64 ? 8 : 1), &bytes))
        rc = bd_seterr(BD_ENOMEM, "'%s': /%s/%s/%s is too large", c.where, phase, agent, name);
    if (!rc) {
        if (!(buf = malloc(bytes ? bytes : 1)))
            rc = bd_seterr(BD_ENOMEM, "'%s': no memory for /%s/%s/%s (%zu bytes)", c.where,
                           phase, agent, name, bytes);
        else if (n && H5Dread(ds, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0)
            rc = bd_h5_fail("'%s': cannot read /%s/%s/%s", c.where, phase, agent, name);
    }
    h5_close_dataset(&c, &grp, &ds);
    bd_h5_leave(&g);
    if (rc) {
        free(buf);
        return rc;
    }
    *out = buf;
    return BD_OK;
}

int bd_trace_read_rows(const char *path, const char *phase, const char *agent,
                       const char *name, int64_t row0, int64_t nrows, int64_t N, int64_t K, void *buf)
{
    if (!path || (!buf && nrows > 0) || row0 < 0 || nrows < 0)
        return bd_seterr(BD_EINVAL, "bd_trace_read_rows: bad argument");
    if (nrows == 0)
        return BD_OK;
    bd_h5_guard g;
    bd_h5_enter(&g);
    h5_chain c;
    hid_t grp, ds, mt, fs = H5I_INVALID_HID, ms = H5I_INVALID_HID;
    int rc = h5_open_dataset(path, phase, agent, name, &c, &grp, &ds);
    if (rc) {
        bd_h5_leave(&g);
        return rc;
    }
    int64_t dims[3];
    int rank;
    rc = dataset_info(ds, c.where, phase, agent, name, dims, &rank, &mt);
    /* a step dataset is read as bodhi writes it, whatever the file holds (HDF5 converts):
     * the caller sized buf for that, so flags stored as uint64 must not fill 8 bytes a cell */
    const int step = bd_h5_step_index(name);
    if (!rc && step >= 0)
        mt = bd_h5_step_mtype(step);
    if (!rc && (dims[1] != N || rank != (K > 0 ? 3 : 2) || (K > 0 && dims[2] != K)))
        rc = bd_seterr(BD_EINVAL, "'%s': /%s/%s/%s has rows of %lld x %lld, where the run's other records say %lld x %lld",
                       c.where, phase, agent, name, (long long)dims[1], (long long)(rank == 3 ? dims[2] : 1),
                       (long long)N, (long long)(K > 0 ? K : 1));
    else if (!rc && row0 + nrows > dims[0])
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
            rc = bd_h5_fail("'%s': cannot read rows %lld..%lld of /%s/%s/%s", c.where,
                         (long long)row0, (long long)(row0 + nrows - 1), phase, agent, name);
    }
    bd_h5_close(&ms);
    bd_h5_close(&fs);
    h5_close_dataset(&c, &grp, &ds);
    bd_h5_leave(&g);
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
                 : bd_h5_fail("'%s': cannot list %s", where, shown);
    vec_free(out);
    return rc;
}

/* A fixed-length text attribute of trace group grp into buf; "" when absent, empty or
 * unreadable. group_id: the launch of a run of many ranks the trace belongs to ("": a trace
 * of one rank, of an older bodhi, or whose group never formed); write_error: why its
 * writer stopped early. Caller holds the guard. */
static void trace_fixed_text(hid_t grp, const char *name, char *buf, size_t len)
{
    buf[0] = '\0';
    if (H5Aexists(grp, name) <= 0)
        return;
    hid_t a = H5Aopen(grp, name, H5P_DEFAULT), ft = a >= 0 ? H5Aget_type(a) : -1;
    size_t sz = ft >= 0 && H5Tget_class(ft) == H5T_STRING && H5Tis_variable_str(ft) == 0 ? H5Tget_size(ft) : 0;
    char *v = sz > 0 && sz < 4096 ? calloc(1, sz + 1) : NULL;
    if (v && H5Aread(a, ft, v) >= 0)
        snprintf(buf, len, "%.*s", (int)sz, v);
    free(v);
    bd_h5_close(&ft);
    bd_h5_close(&a);
}

int bd_trace_rank_suffix(const char *name, size_t *base)
{
    const char *dot = strrchr(name, '.');
    long long k;
    *base = strlen(name);
    if (!dot || dot[1] != 'r' || dot[2] == '0' || bd_parse_ll(dot + 2, 1, 65535, &k) != BD_OK)
        return 0;
    *base = (size_t)(dot - name);
    return (int)k;
}

/* The file of pg's external link `name` when it is missing (relative names beside the
 * master, in dir), as a heap string; NULL otherwise. Caller holds the guard. */
static char *elink_missing_file(hid_t pg, const char *name, const char *dir)
{
    H5L_info_t li;
    if (H5Lget_info(pg, name, &li, H5P_DEFAULT) < 0 || li.type != H5L_TYPE_EXTERNAL || li.u.val_size == 0
        || li.u.val_size > 1 << 16)
        return NULL;
    char *val = malloc(li.u.val_size), *missing = NULL;
    const char *file = NULL, *obj = NULL;
    unsigned flags = 0;
    if (val && H5Lget_val(pg, name, val, li.u.val_size, H5P_DEFAULT) >= 0
        && H5Lunpack_elink_val(val, li.u.val_size, &flags, &file, &obj) >= 0 && file) {
        char *full = file[0] == '/' ? bd_strdup(file) : bd_strfmt("%s/%s", dir, file);
        struct stat st;
        if (full && stat(full, &st) != 0)
            missing = bd_strdup(file);
        free(full);
    }
    free(val);
    return missing;
}

int bd_trace_list_all(const char *path, char ***names, int *count, char ***missing, int *nmissing)
{
    if (!path || !names || !count)
        return bd_seterr(BD_EINVAL, "bd_trace_list: NULL argument");
    *names = NULL;
    *count = 0;
    if (missing) {
        *missing = NULL;
        *nmissing = 0;
    }
    bd_h5_guard g;
    bd_h5_enter(&g);
    name_vec phases = {0}, found = {0}, lost = {0};
    hid_t f = H5I_INVALID_HID;
    int rc = h5_open_ro(path, &f);
    if (!rc)
        rc = link_names(f, path, "/", &phases);
    bd_h5_close(&f);
    char *copy = missing ? bd_strdup(path) : NULL;
    const char *dir = copy ? dirname(copy) : ".";
    for (int i = 0; i < phases.n && !rc; i++) {
        h5_chain c, ca;
        hid_t pg;
        name_vec agents = {0};
        rc = h5_open_group(path, phases.v[i], NULL, &c, &pg);
        if (rc == BD_ENOTFOUND || rc == BD_EINVAL) {  /* a dangling link, or not a group */
            rc = BD_OK;
            continue;
        }
        if (rc)
            break;
        char shown[512];
        snprintf(shown, sizeof shown, "/%s", phases.v[i]);
        rc = link_names(pg, c.where, shown, &agents);
        for (int j = 0; j < agents.n && !rc; j++) {
            hid_t ag;
            rc = h5_open_group(path, phases.v[i], agents.v[j], &ca, &ag);
            if (rc == BD_ENOTFOUND || rc == BD_EINVAL) { /* not a trace; said when its file is gone */
                rc = BD_OK;
                char *file = missing ? elink_missing_file(pg, agents.v[j], dir) : NULL;
                if (file && vec_push(&lost, bd_strfmt("%s/%s %s", phases.v[i], agents.v[j], file)))
                    rc = bd_seterr(BD_ENOMEM, "out of memory");
                free(file);
                continue;
            }
            if (rc)
                break;
            htri_t has = H5Lexists(ag, bd_step_names[BD_STEP_REWARDS], H5P_DEFAULT);
            /* Rank k's trace (agent.r<k>, linked from rank 0's run.h5) must be of rank 0's
             * launch: after a later run into the same --out, ../DIR.r<k> is that run's
             * folder, and its trace another launch's (their group ids differ). Such a
             * trace is said, like a missing one, and not read. */
            size_t blen;
            int rk = has > 0 ? bd_trace_rank_suffix(agents.v[j], &blen) : 0;
            /* rank k's, not rank 0's own agent of a name that ends so: its file is rank k's
             * (...<dir>.r<k>/memory/<phase>.<agent>.r<k>.h5; rank 0's are .r0.h5) */
            if (rk > 0) {
                char tail[64], dirpart[64];
                snprintf(tail, sizeof tail, ".r%d.h5", rk);
                snprintf(dirpart, sizeof dirpart, ".r%d/memory/", rk);
                const size_t wl = strlen(ca.where), tl = strlen(tail);
                if (wl < tl || strcmp(ca.where + wl - tl, tail) != 0 || !strstr(ca.where, dirpart))
                    rk = 0;
            }
            char mine[64] = "", base_id[64] = "";
            if (rk > 0) {
                trace_fixed_text(ag, "group_id", mine, sizeof mine);
                char *base = bd_strfmt("%.*s", (int)blen, agents.v[j]);
                h5_chain cb;
                hid_t bg;
                if (base && mine[0] && h5_open_group(path, phases.v[i], base, &cb, &bg) == BD_OK) {
                    trace_fixed_text(bg, "group_id", base_id, sizeof base_id);
                    bd_h5_close(&bg);
                    chain_close(&cb);
                }
                free(base);
            }
            if (has < 0) {
                rc = bd_h5_fail("'%s': cannot look up /%s/%s/rewards", ca.where, phases.v[i],
                             agents.v[j]);
            } else if (rk > 0 && mine[0] && base_id[0] && strcmp(mine, base_id) != 0) {
                if (missing && vec_push(&lost, bd_strfmt("%s/%s %s\nits group id %s is not rank 0's %s: a trace of another "
                                              "launch (a later run into the same --out moved this run's folders "
                                              "aside: rank %d's is among the *.prev-* folders beside it)",
                                              phases.v[i], agents.v[j], ca.where, mine, base_id, rk)))
                    rc = bd_seterr(BD_ENOMEM, "out of memory");
            } else if (has && vec_push(&found, bd_strfmt("%s/%s", phases.v[i], agents.v[j]))) {
                rc = bd_seterr(BD_ENOMEM, "out of memory");
            }
            bd_h5_close(&ag);
            chain_close(&ca);
        }
        bd_h5_close(&pg);
        chain_close(&c);
        vec_free(&agents);
    }
    free(copy);
    vec_free(&phases);
    bd_h5_leave(&g);
    if (rc) {
        vec_free(&found);
        vec_free(&lost);
        return rc;
    }
    *names = found.v;
    *count = found.n;
    if (missing) {
        *missing = lost.v;
        *nmissing = lost.n;
    }
    return BD_OK;
}

int bd_trace_list(const char *path, char ***names, int *count)
{
    return bd_trace_list_all(path, names, count, NULL, NULL);
}

/* ---- what a trace says of itself ------------------------------------------------------ */

/* Attribute name of grp as strings: *out (heap, n of them; n = 1 for a scalar). Absent:
 * BD_ENOTFOUND. Caller holds the guard. */
static int attr_strings(hid_t grp, const char *where, const char *name, char ***out, int *n)
{
    *out = NULL;
    *n = 0;
    htri_t ex = H5Aexists(grp, name);
    if (ex < 0) /* damaged, not absent */
        return bd_h5_fail("'%s': cannot read the attributes (looking for %s)", where, name);
    if (ex == 0)
        return bd_seterr(BD_ENOTFOUND, "'%s': no attribute %s", where, name);
    hid_t a = H5Aopen(grp, name, H5P_DEFAULT), ft = a >= 0 ? H5Aget_type(a) : -1;
    hid_t sp = a >= 0 ? H5Aget_space(a) : -1, mt = H5Tcopy(H5T_C_S1);
    hssize_t cnt = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
    int rc = BD_OK;
    char **v = NULL;
    if (a < 0 || ft < 0 || sp < 0 || mt < 0 || cnt < 1 || cnt > 1 << 20 || H5Tget_class(ft) != H5T_STRING
        || H5Tis_variable_str(ft) <= 0 || H5Tset_size(mt, H5T_VARIABLE) < 0 || H5Tset_cset(mt, H5Tget_cset(ft)) < 0) {
        rc = bd_seterr(BD_EHDF5, "'%s': attribute %s is not text", where, name);
    } else if (!(v = calloc((size_t)cnt, sizeof *v))) {
        rc = bd_seterr(BD_ENOMEM, "out of memory");
    } else if (H5Aread(a, mt, v) < 0) {
        rc = bd_h5_fail("'%s': cannot read attribute %s", where, name);
        free(v);
        v = NULL;
    } else {
        char **copy = calloc((size_t)cnt, sizeof *copy);
        for (hssize_t i = 0; copy && i < cnt; i++)
            copy[i] = bd_strdup(v[i] ? v[i] : "");
        H5Dvlen_reclaim(mt, sp, H5P_DEFAULT, v);
        free(v);
        v = copy;
        if (!copy)
            rc = bd_seterr(BD_ENOMEM, "out of memory");
    }
    bd_h5_close(&mt);
    bd_h5_close(&sp);
    bd_h5_close(&ft);
    bd_h5_close(&a);
    if (rc)
        return rc;
    *out = v;
    *n = (int)cnt;
    return BD_OK;
}

/* A numeric scalar attribute into *v (def when absent). */
static int attr_number(hid_t grp, const char *where, const char *name, hid_t mtype, void *v)
{
    htri_t ex = H5Aexists(grp, name);
    if (ex < 0)
        return bd_h5_fail("'%s': cannot read the attributes (looking for %s)", where, name);
    if (ex == 0)
        return BD_ENOTFOUND;
    hid_t a = H5Aopen(grp, name, H5P_DEFAULT), sp = a >= 0 ? H5Aget_space(a) : -1;
    int rc = BD_OK;
    if (a < 0 || sp < 0 || H5Sget_simple_extent_npoints(sp) != 1 || H5Aread(a, mtype, v) < 0)
        rc = bd_seterr(BD_EHDF5, "'%s': attribute %s is not a number", where, name);
    bd_h5_close(&sp);
    bd_h5_close(&a);
    return rc;
}

static void free_strings(char **v, int n)
{
    for (int i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
}

int64_t bd_trace_span(const bd_trace_info *info)
{
    return info->rows > 0 ? (info->rows - 1) * (int64_t)(info->every > 0 ? info->every : 1) + 1 : 0;
}

void bd_trace_info_free(bd_trace_info *info)
{
    if (!info)
        return;
    free_strings(info->sensor_ids, info->s);
    free_strings(info->actuator_ids, info->u);
    free(info->env);
    free(info->env_params);
    free(info->compression);
    memset(info, 0, sizeof *info);
}

/* The first dimension of dataset name in grp into *rows (-1 when absent); a dataset that
 * is there but cannot be read is an error naming it, never 0 rows. */
static int rows_of(hid_t grp, const char *where, const char *name, int64_t *rows)
{
    *rows = -1;
    htri_t ex = H5Lexists(grp, name, H5P_DEFAULT);
    if (ex < 0)
        return bd_h5_fail("'%s': cannot read the group's links (looking for %s)", where, name);
    if (ex == 0)
        return BD_OK;
    hid_t ds = H5Dopen2(grp, name, H5P_DEFAULT), sp = ds >= 0 ? H5Dget_space(ds) : -1;
    hsize_t d[3] = {0, 0, 0};
    int rc = BD_OK;
    if (sp < 0 || H5Sget_simple_extent_ndims(sp) < 1 || H5Sget_simple_extent_ndims(sp) > 3
        || H5Sget_simple_extent_dims(sp, d, NULL) < 0)
        rc = bd_h5_fail("'%s': dataset %s cannot be read", where, name);
    bd_h5_close(&sp);
    bd_h5_close(&ds);
    if (rc == BD_OK)
        *rows = (int64_t)d[0];
    return rc;
}

int bd_trace_read_info(const char *path, const char *phase, const char *agent, bd_trace_info *out)
{
    if (!path || !out)
        return bd_seterr(BD_EINVAL, "bd_trace_read_info: NULL argument");
    memset(out, 0, sizeof *out);
    bd_h5_guard g;
    bd_h5_enter(&g);
    h5_chain c;
    hid_t grp;
    int rc = h5_open_group(path, phase, agent, &c, &grp);
    if (rc) {
        bd_h5_leave(&g);
        return rc;
    }
    char **v = NULL;
    int n = 0;
    /* a file another program wrote may lack the ids: it is read for what it has */
    if ((rc = attr_strings(grp, c.where, "sensor_ids", &out->sensor_ids, &out->s)) == BD_ENOTFOUND)
        rc = BD_OK;
    if (!rc && (rc = attr_strings(grp, c.where, "actuator_ids", &out->actuator_ids, &out->u)) == BD_ENOTFOUND)
        rc = BD_OK;
    if (!rc) {
        /* text attributes a file may lack (their defaults below) */
        static const char *const texts[] = {"env", "env_params", "compression"};
        char **tdst[] = {&out->env, &out->env_params, &out->compression};
        for (int k = 0; k < 3 && !rc; k++) {
            int arc = attr_strings(grp, c.where, texts[k], &v, &n);
            if (arc == BD_OK) {
                *tdst[k] = v[0];
                v[0] = NULL;
                free_strings(v, n);
            } else if (arc != BD_ENOTFOUND) {
                rc = arc;
            }
        }
        int32_t worlds = 0, every = 1, recorded = -1, members = 1;
        static const char *const nums[] = {"seed", "worlds", "record_every", "record_worlds", "members"};
        void *dst[] = {&out->seed, &worlds, &every, &recorded, &members};
        for (int k = 0; k < 5 && !rc; k++) {
            int arc = attr_number(grp, c.where, nums[k], k == 0 ? H5T_NATIVE_UINT64 : H5T_NATIVE_INT32, dst[k]);
            rc = arc == BD_ENOTFOUND ? BD_OK : arc;
        }
        out->world0 = -1; /* unsaid: the reader decides (replay --verify asks the run's rank) */
        if (!rc) {
            uint32_t w0 = 0;
            int arc = attr_number(grp, c.where, "world0", H5T_NATIVE_UINT32, &w0);
            if (arc == BD_OK)
                out->world0 = w0;
            rc = arc == BD_ENOTFOUND ? BD_OK : arc;
        }
        /* the step rows: as many as every step dataset holds (a killed writer may have
         * extended some further than others), sensors' or (a file without them) rewards' */
        const char *rowset = bd_step_names[BD_STEP_REWARDS];
        out->rows = -1;
        for (int k = 0; k < BD_STEP_COUNT && !rc; k++) {
            int64_t r;
            rc = rows_of(grp, c.where, bd_step_names[k], &r);
            if (!rc && r >= 0) {
                if (k == BD_STEP_SENSORS)
                    rowset = bd_step_names[BD_STEP_SENSORS];
                out->rows = out->rows < 0 || r < out->rows ? r : out->rows;
            }
        }
        out->rows = out->rows < 0 ? 0 : out->rows;
        int64_t e = -1;
        if (!rc)
            rc = rows_of(grp, c.where, "episodes", &e);
        out->episodes = e < 0 ? 0 : e;
        out->has_final = H5Lexists(grp, "final_sensors", H5P_DEFAULT) > 0;
        trace_fixed_text(grp, "write_error", out->write_error, sizeof out->write_error);
        bd_text_printable(out->write_error); /* printed on a terminal: a file's word */
        /* columns of the sensors dataset, for traces that do not say */
        int64_t cols = 0;
        if (H5Lexists(grp, rowset, H5P_DEFAULT) > 0) {
            hid_t ds = H5Dopen2(grp, rowset, H5P_DEFAULT), sp = ds >= 0 ? H5Dget_space(ds) : -1;
            hsize_t d[3] = {0, 0, 0};
            int r = sp >= 0 ? H5Sget_simple_extent_ndims(sp) : -1;
            if ((r == 2 || r == 3) && H5Sget_simple_extent_dims(sp, d, NULL) >= 0)
                cols = (int64_t)d[1];
            bd_h5_close(&sp);
            bd_h5_close(&ds);
        }
        out->worlds = worlds > 0 ? worlds : (int)cols;
        out->every = every > 0 ? every : 1;
        out->members = members > 0 && out->worlds % members == 0 ? members : 1;
        out->recorded_worlds = recorded >= 0 ? recorded : (int)cols;
        if (!out->compression)
            out->compression = bd_strdup("none");
        if (!out->env)
            out->env = bd_strdup("");
        if (!out->env_params)
            out->env_params = bd_strdup("{}");
        if (!out->compression || !out->env || !out->env_params)
            rc = bd_seterr(BD_ENOMEM, "out of memory");
    }
    bd_h5_close(&grp);
    chain_close(&c);
    bd_h5_leave(&g);
    if (rc)
        bd_trace_info_free(out);
    return rc;
}

/* ---- how a run ended: summary.json, else log.jsonl's end event ------------------------ */

/* e's status and error from object o ("status" a string); 0 when o says no status. */
static int run_end_take(const cJSON *o, bd_run_end *e)
{
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(o, "status");
    const cJSON *er = cJSON_GetObjectItemCaseSensitive(o, "error");
    if (!cJSON_IsString(st) || !st->valuestring[0])
        return 0;
    snprintf(e->status, sizeof e->status, "%s", st->valuestring);
    snprintf(e->error, sizeof e->error, "%s", cJSON_IsString(er) ? er->valuestring : "");
    bd_text_printable(e->status); /* printed on a terminal: a file's word */
    bd_text_printable(e->error);
    return 1;
}

void bd_run_end_read(const char *run_dir, bd_run_end *e)
{
    memset(e, 0, sizeof *e);
    char *path = bd_strfmt("%s/summary.json", run_dir), *text = NULL;
    if (path && bd_read_file(path, &text, NULL) == BD_OK) {
        cJSON *j = cJSON_Parse(text);
        e->summary = cJSON_IsObject(j) && run_end_take(j, e) ? 1 : -1;
        cJSON_Delete(j);
    }
    free(text);
    free(path);
    if (e->summary == 1)
        return;
    /* the last end event: the conductor logs it before it writes summary.json */
    static const char head[] = "{\"event\":\"end\",";
    path = bd_strfmt("%s/log.jsonl", run_dir);
    text = NULL;
    size_t len = 0;
    if (path && bd_read_file(path, &text, &len) == BD_OK) {
        for (size_t i = len; i-- > 0;) {
            if ((i > 0 && text[i - 1] != '\n') || len - i < sizeof head - 1
                || strncmp(text + i, head, sizeof head - 1) != 0)
                continue;
            const char *nl = memchr(text + i, '\n', len - i);
            cJSON *j = cJSON_ParseWithLength(text + i, nl ? (size_t)(nl - (text + i)) : len - i);
            e->logged = run_end_take(j, e);
            cJSON_Delete(j);
            if (e->logged)
                break;
        }
    }
    free(text);
    free(path);
}

int bd_run_end_say(const bd_run_end *e, const char *lead, FILE *f)
{
    if (e->summary < 0)
        fprintf(f, "%s: its summary.json is damaged (not JSON, or no status)%s\n", lead,
                e->logged ? "" : ", and log.jsonl has no end event: the run was killed, or its files were damaged");
    if (e->summary <= 0 && e->logged)
        fprintf(f, "%s: the run ended '%s' (log.jsonl's end event%s)%s%s\n", lead, e->status,
                e->summary < 0 ? "" : "; it left no summary.json", e->error[0] ? ": " : "", e->error);
    return e->summary < 0 || e->logged;
}
