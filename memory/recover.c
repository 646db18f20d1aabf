/* recover.c: repairing the traces of a run that was killed (memory.h).
 *
 * A trace is written in SWMR mode, which marks the file "open for write" in its
 * superblock until the writer closes it. A writer that dies leaves the mark, and HDF5 (so
 * h5py) refuses a plain open of such a file ("file is already open for write (may use
 * h5clear ...)"); only a SWMR read works. Every step written up to the writer's last flush
 * is intact, though: clearing the mark, as `h5clear -s` does, makes the file open plainly
 * again. bd_trace_recover does that, and only when no writer holds the file's lock
 * (memory/h5.h: the writer takes it before creating the file and keeps it until it closes
 * it), so a live run's files are never touched. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "memory/h5.h"

/* 1 when path opens read-only, plainly or (swmr) as a SWMR reader. Caller holds the guard. */
static int opens(const char *path, int swmr)
{
    hid_t fapl = bd_h5_fapl(0);
    unsigned flags = H5F_ACC_RDONLY | (swmr ? H5F_ACC_SWMR_READ : 0);
    if (swmr && fapl >= 0) /* no doubling retries on a damaged file (memory/reader.c) */
        H5Pset_metadata_read_attempts(fapl, 1);
    bd_h5_note_open(path);
    hid_t f = fapl >= 0 ? H5Fopen(path, flags, fapl) : H5I_INVALID_HID;
    bd_h5_close(&fapl);
    if (f < 0)
        return 0;
    H5Fclose(f);
    return 1;
}

int bd_trace_recover(const char *path, int *recovered)
{
    *recovered = 0;
    /* Held exclusively while we repair; a file we may only read gets a shared lock, which
     * still tells a live writer apart (and the repair then fails, saying why). */
    int how = 1, fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0 && (errno == EACCES || errno == EROFS || errno == EPERM)) {
        how = -1;
        fd = open(path, O_RDONLY | O_CLOEXEC);
    }
    if (fd < 0)
        return errno == ENOENT ? bd_seterr(BD_ENOTFOUND, "trace file '%s' not found", path)
                               : bd_seterr(BD_EIO, "'%s': %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) { /* not ours to repair: the readers say */
        close(fd);
        return BD_OK;
    }
    if (bd_h5_try_lock(fd, how) != 0) { /* its writer lives: read it as a SWMR reader */
        close(fd);
        return BD_OK;
    }
    if (how < 0) { /* read-only storage: nothing is repaired, the readers read it as SWMR */
        bd_h5_try_lock(fd, 0);
        close(fd);
        return BD_OK;
    }
    bd_h5_guard g;
    bd_h5_enter(&g);
    int rc = BD_OK;
    /* Left open for write: not plainly, but as a SWMR reader. Anything else (not HDF5,
     * truncated) is not ours to repair; the readers say what is wrong with it. */
    if (!opens(path, 0) && opens(path, 1)) {
        hid_t fapl = bd_h5_fapl(1), f = H5I_INVALID_HID;
        hbool_t clear = 1;
        /* "clear_status_flags" is the file access property h5clear sets. */
        if (fapl < 0 || H5Pset(fapl, "clear_status_flags", &clear) < 0)
            rc = bd_h5_fail("'%s': cannot ask HDF5 to clear the file's status flags", path);
        else if ((f = H5Fopen(path, H5F_ACC_RDWR, fapl)) < 0)
            rc = bd_h5_fail("'%s' cannot be repaired", path);
        else if (H5Fclose(f) < 0)
            rc = bd_h5_fail("'%s': cannot close the repaired file", path);
        else if (!opens(path, 0))
            rc = bd_seterr(BD_EHDF5, "'%s' still does not open after clearing its status flags", path);
        else
            *recovered = 1;
        bd_h5_close(&fapl);
    }
    bd_h5_leave(&g);
    bd_h5_try_lock(fd, 0);
    close(fd);
    return rc;
}

typedef struct {
    const char *master;
    char **files;
    int n, cap;
    int oom;
} target_list;

/* target relative to the folder of the master file (absolute stays). */
static char *resolve(const char *master, const char *target)
{
    const char *slash = strrchr(master, '/');
    if (target[0] == '/' || !slash)
        return bd_strdup(target);
    return bd_strfmt("%.*s/%s", (int)(slash - master), master, target);
}

static herr_t agent_link_cb(hid_t grp, const char *name, const H5L_info_t *info, void *data)
{
    target_list *t = data;
    if (info->type != H5L_TYPE_EXTERNAL)
        return 0;
    char *val = malloc(info->u.val_size ? info->u.val_size : 1);
    const char *file = NULL, *obj = NULL;
    unsigned flags = 0;
    if (val && H5Lget_val(grp, name, val, info->u.val_size, H5P_DEFAULT) >= 0
        && H5Lunpack_elink_val(val, info->u.val_size, &flags, &file, &obj) >= 0) {
        char *path = resolve(t->master, file);
        int dup = 0;
        for (int i = 0; path && i < t->n; i++)
            dup |= strcmp(t->files[i], path) == 0;
        if (path && !dup && t->n == t->cap) {
            int cap = t->cap ? 2 * t->cap : 8;
            char **nf = realloc(t->files, (size_t)cap * sizeof *nf);
            if (nf) {
                t->files = nf;
                t->cap = cap;
            }
        }
        if (!path || (!dup && t->n == t->cap))
            t->oom = 1;
        if (path && !dup && t->n < t->cap)
            t->files[t->n++] = path;
        else
            free(path);
    }
    free(val);
    return 0;
}

static herr_t phase_cb(hid_t root, const char *name, const H5L_info_t *info, void *data)
{
    if (info->type != H5L_TYPE_HARD)
        return 0;
    hid_t g = H5Gopen2(root, name, H5P_DEFAULT);
    if (g < 0)
        return 0;
    H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, NULL, agent_link_cb, data);
    H5Gclose(g);
    return 0;
}

int bd_trace_recover_run(const char *master, bd_trace_recovered_fn fn, void *ctx)
{
    int recovered = 0;
    int rc = bd_trace_recover(master, &recovered);
    if (rc != BD_OK)
        return rc;
    if (recovered && fn)
        fn(ctx, master);
    target_list t = {.master = master};
    bd_h5_guard g;
    bd_h5_enter(&g);
    hid_t fapl = bd_h5_fapl(0);
    bd_h5_note_open(master);
    hid_t f = fapl >= 0 ? H5Fopen(master, H5F_ACC_RDONLY, fapl) : H5I_INVALID_HID;
    if (f >= 0) {
        H5Literate(f, H5_INDEX_NAME, H5_ITER_INC, NULL, phase_cb, &t);
        H5Fclose(f);
    }
    bd_h5_close(&fapl);
    bd_h5_leave(&g);
    if (t.oom)
        rc = bd_seterr(BD_ENOMEM, "out of memory");
    for (int i = 0; i < t.n; i++) {
        int r = rc == BD_OK ? bd_trace_recover(t.files[i], &recovered) : rc;
        if (r == BD_OK && recovered && fn)
            fn(ctx, t.files[i]);
        if (r != BD_OK && r != BD_ENOTFOUND && rc == BD_OK) /* a link to a missing file is the readers' to report */
            rc = r;
        free(t.files[i]);
    }
    free(t.files);
    return rc;
}
