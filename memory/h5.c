/* h5.c: what memory/'s files share about HDF5 (see h5.h): one process-wide lock with
 * HDF5's error printing off, errors as BD_EHDF5 naming the file, the object and HDF5's
 * innermost reason, property lists, the episodes record type and attribute writers. */
#define _GNU_SOURCE
#include "memory/h5.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"

const char *const bd_step_names[BD_STEP_COUNT] = {"sensors",   "actuators", "rewards",
                                                      "terminated", "truncated", "weights_version"};

hid_t bd_h5_step_mtype(int d)
{
    return d <= BD_STEP_REWARDS ? H5T_NATIVE_FLOAT : d == BD_STEP_VERSION ? H5T_NATIVE_UINT64 : H5T_NATIVE_UINT8;
}

int bd_h5_step_index(const char *name)
{
    for (int d = 0; d < BD_STEP_COUNT; d++)
        if (strcmp(name, bd_step_names[d]) == 0)
            return d;
    return -1;
}

static pthread_mutex_t g_h5_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t g_h5_once = PTHREAD_ONCE_INIT;

/* HDF5 closes what is still open at exit by default; a trace whose disk filled up cannot be
 * closed (each flush fails), and HDF5 1.10 then loops ("infinite loop closing library") or
 * crashes at exit. memory/ closes every file it opens itself, so it asks HDF5 not to
 * (when memory/ is the first to call HDF5 in the process; otherwise the call is a no-op). */
static void h5_init(void)
{
    H5dont_atexit();
}

/* bd_trace_note_files's buffer (NULL: none): the file a guarded section opened, "" outside one */
static char *bd_h5_note;
static size_t bd_h5_note_len;

/* Takes the module's HDF5 lock and turns HDF5's error printing off for this thread. */
void bd_h5_enter(bd_h5_guard *g)
{
    pthread_once(&g_h5_once, h5_init);
    pthread_mutex_lock(&g_h5_mu);
    g->fn = NULL;
    g->data = NULL;
    H5Eget_auto2(H5E_DEFAULT, &g->fn, &g->data);
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

/* Restores the caller's error printing and releases the lock. */
void bd_h5_leave(bd_h5_guard *g)
{
    if (bd_h5_note) /* no HDF5 call of memory/'s is under way: a crash now is not a file's */
        bd_h5_note[0] = '\0';
    H5Eset_auto2(H5E_DEFAULT, g->fn, g->data);
    pthread_mutex_unlock(&g_h5_mu);
}

/* One line of HDF5's description: a failed read or write ("file write failed: time = ...,
 * filename = ..., errno = 28, error message = 'No space left on device', ...") becomes its
 * first words and the system's message; other descriptions have their line breaks and
 * runs of blanks made single spaces. */
static herr_t h5_walk_cb(unsigned n, const H5E_error2_t *e, void *data)
{
    if (n != 0 || !e->desc)
        return 0;
    char *buf = data;
    const char *msg = strstr(e->desc, "error message = '"), *colon = strchr(e->desc, ':');
    if (msg && colon && colon < msg) {
        msg += strlen("error message = '");
        const char *end = strchr(msg, '\'');
        snprintf(buf, 256, "%.*s: %.*s", (int)(colon - e->desc), e->desc,
                 (int)(end ? end - msg : (ptrdiff_t)strlen(msg)), msg);
        return 0;
    }
    size_t k = 0;
    for (const char *p = e->desc; *p && k < 255; p++) {
        int blank = *p == '\n' || *p == '\r' || *p == '\t' || *p == ' ';
        if (blank && (k == 0 || buf[k - 1] == ' '))
            continue;
        buf[k++] = blank ? ' ' : *p;
    }
    while (k > 0 && buf[k - 1] == ' ')
        k--;
    buf[k] = '\0';
    return 0;
}

void bd_trace_note_files(char *buf, size_t len)
{
    bd_h5_note = len > 0 ? buf : NULL;
    bd_h5_note_len = len;
}

void bd_h5_note_open(const char *path)
{
    if (bd_h5_note)
        snprintf(bd_h5_note, bd_h5_note_len, "%s", path);
}

/* The innermost description on HDF5's error stack (call right after the failing call,
 * before any other HDF5 call clears the stack). buf holds 256 bytes. */
const char *bd_h5_reason(char *buf)
{
    buf[0] = '\0';
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, h5_walk_cb, buf);
    return buf[0] ? buf : "unknown HDF5 error";
}

/* Records "<what>: <HDF5's reason>" as BD_EHDF5 and returns BD_EHDF5. */
int bd_h5_fail(const char *fmt, ...)
{
    char why[256], what[768];
    bd_h5_reason(why);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return bd_seterr(BD_EHDF5, "%s: %s", what, why);
}

void bd_h5_close(hid_t *id)
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
hid_t bd_h5_fapl(int latest)
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
hid_t bd_h5_gcpl(void)
{
    hid_t gcpl = H5Pcreate(H5P_GROUP_CREATE);
    if (gcpl >= 0 &&
        H5Pset_link_creation_order(gcpl, H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED) < 0) {
        H5Pclose(gcpl);
        return H5I_INVALID_HID;
    }
    return gcpl;
}

hid_t bd_h5_fcpl(void)
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
hid_t bd_h5_episode_type(int in_file)
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
int bd_h5_attr_strings(hid_t obj, const char *file, const char *objname, const char *name,
                        const char *const *v, int n)
{
    int rc = BD_OK;
    hid_t t = vlen_utf8(), sp = H5I_INVALID_HID, a = H5I_INVALID_HID;
    hsize_t dims[1] = {(hsize_t)(n < 0 ? 1 : n)};
    if (t < 0 || (sp = n < 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, dims, NULL)) < 0 ||
        (a = H5Acreate2(obj, name, t, sp, H5P_DEFAULT, H5P_DEFAULT)) < 0 ||
        H5Awrite(a, t, v) < 0)
        rc = bd_h5_fail("'%s': cannot write attribute %s of %s", file, name, objname);
    bd_h5_close(&a);
    bd_h5_close(&sp);
    bd_h5_close(&t);
    return rc;
}

int bd_h5_attr_scalar(hid_t obj, const char *file, const char *objname, const char *name,
                       hid_t ftype, hid_t mtype, const void *v)
{
    int rc = BD_OK;
    hid_t sp = H5Screate(H5S_SCALAR), a = H5I_INVALID_HID;
    if (sp < 0 || (a = H5Acreate2(obj, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT)) < 0 ||
        H5Awrite(a, mtype, v) < 0)
        rc = bd_h5_fail("'%s': cannot write attribute %s of %s", file, name, objname);
    bd_h5_close(&a);
    bd_h5_close(&sp);
    return rc;
}

int bd_h5_check_name(const char *what, const char *s)
{
    if (!s || !*s || strchr(s, '/') || !strcmp(s, ".") || !strcmp(s, ".."))
        return bd_seterr(BD_EINVAL, "%s name '%s' must be non-empty and hold no '/'", what,
                         s ? s : "(null)");
    return BD_OK;
}

/* mkdir -p of path's folder (nothing when path has none). */
int bd_h5_make_parent(const char *path)
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

int bd_h5_try_lock(int fd, int how)
{
    struct flock l = {.l_type = how > 0 ? F_WRLCK : how < 0 ? F_RDLCK : F_UNLCK, .l_whence = SEEK_SET};
    return fcntl(fd, F_OFD_SETLK, &l);
}

int bd_h5_lock_writer(const char *path, int *fd)
{
    *fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0666);
    if (*fd < 0)
        return bd_seterr(BD_EIO, "cannot create trace file '%s': %s", path, strerror(errno));
    if (bd_h5_try_lock(*fd, 1) != 0) {
        int e = errno;
        close(*fd);
        *fd = -1;
        return bd_seterr(BD_EIO, "'%s': %s", path,
                         e == EAGAIN || e == EACCES ? "another process writes this trace" : strerror(e));
    }
    return BD_OK;
}
