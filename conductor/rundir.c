/* rundir.c: claiming a run directory for one run (see rundir.h). */
#define _GNU_SOURCE
#include "conductor/rundir.h"

#include <dirent.h>
#include <ftw.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "wire/addr.h"

#define BD_LOCK_NAME "run.lock"
#define BD_CLAIM_TRIES 5

/* 1 when dir has no entries besides . and ..; -1 when it cannot be read. */
static int bd_dir_empty(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int empty = 1;
    struct dirent *e;
    while (empty && (e = readdir(d)))
        empty = strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0;
    closedir(d);
    return empty;
}

static int bd_has(const char *dir, const char *name)
{
    char *p = bd_strfmt("%s/%s", dir, name);
    int yes = p && bd_exists(p);
    free(p);
    return yes;
}

/* What bodhi writes first: the lock, or (runs made before the lock) run.yml and log.jsonl. */
static int bd_is_run_dir(const char *dir)
{
    return bd_has(dir, BD_LOCK_NAME) || (bd_has(dir, "run.yml") && bd_has(dir, "log.jsonl"));
}

static int bd_read_pid(int fd)
{
    char buf[32] = "";
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    buf[n > 0 ? n : 0] = '\0';
    return atoi(buf);
}

/* 1 when fd is still the file at dir/run.lock (another claimer may have moved the folder
 * between our open and our lock). */
static int bd_lock_is_current(const char *dir, int fd)
{
    char *p = bd_strfmt("%s/%s", dir, BD_LOCK_NAME);
    struct stat a, b;
    int same = p && fstat(fd, &a) == 0 && stat(p, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
    free(p);
    return same;
}

enum { LOCK_TAKEN, LOCK_HELD, LOCK_MOVED, LOCK_ERROR };

/* Opens (creating) dir/run.lock and takes it: LOCK_TAKEN with *fd; LOCK_HELD with *owner
 * the holder's pid (0: not written yet) when a live run holds it; LOCK_MOVED when the
 * folder moved meanwhile (try again); LOCK_ERROR with the error recorded. The fd is not
 * closed on exec: the children of the run inherit it, so the folder stays claimed while
 * any process of the run lives. */
static int bd_take_lock(const char *dir, int *fd, int *owner)
{
    *fd = -1;
    *owner = 0;
    char *p = bd_strfmt("%s/%s", dir, BD_LOCK_NAME);
    if (!p) {
        bd_seterr(BD_ENOMEM, "out of memory");
        return LOCK_ERROR;
    }
    /* not through a symbolic link (someone's run.lock pointing at a file of yours would
     * be truncated); not O_CLOEXEC: the children inherit it, so the folder stays claimed
     * while any process of the run lives */
    int f = open(p, O_RDWR | O_CREAT | O_NOFOLLOW, 0666);
    if (f < 0) {
        bd_seterr(BD_EIO, "%s: %s", p, strerror(errno));
        free(p);
        return LOCK_ERROR;
    }
    free(p);
    if (flock(f, LOCK_EX | LOCK_NB) != 0) {
        int current = bd_lock_is_current(dir, f);
        *owner = bd_read_pid(f);
        close(f);
        return current ? LOCK_HELD : LOCK_MOVED;
    }
    if (!bd_lock_is_current(dir, f)) {
        close(f);
        return LOCK_MOVED;
    }
    *fd = f;
    return LOCK_TAKEN;
}

static int bd_refuse_live(const char *dir, int owner)
{
    if (owner > 0)
        return bd_seterr(BD_EINVAL, "a run is in progress in %s (pid %d); nothing was touched "
                         "(wait for it, stop it, or choose another --out)", dir, owner);
    return bd_seterr(BD_EINVAL, "a run is starting in %s; nothing was touched (choose another --out)", dir);
}

int bd_move_aside_as_prev(const char *dir, const char *what, char **moved_to)
{
    *moved_to = NULL;
    char stamp[32];
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
    char *to = bd_strfmt("%s.prev-%s", dir, stamp);
    for (int k = 2; to && bd_exists(to); k++) {
        free(to);
        to = bd_strfmt("%s.prev-%s-%d", dir, stamp, k);
    }
    if (!to)
        return bd_seterr(BD_ENOMEM, "out of memory");
    if (rename(dir, to) != 0) {
        free(to);
        return bd_seterr(BD_EIO, "cannot move the previous %s %s aside: %s", what, dir, strerror(errno));
    }
    *moved_to = to;
    return BD_OK;
}

/* Moves the finished or dead run at dir aside, holding its lock meanwhile so that no other
 * run claims it in between. BD_OK (with *retry set when the folder moved under us and the
 * claim must look again), or an error. */
static int bd_move_aside(const char *dir, bd_rundir *rd, int *retry)
{
    *retry = 0;
    int fd, owner;
    switch (bd_take_lock(dir, &fd, &owner)) {
    case LOCK_HELD:
        return bd_refuse_live(dir, owner);
    case LOCK_MOVED:
        *retry = 1;
        return BD_OK;
    case LOCK_ERROR:
        return BD_EIO;
    default:
        break;
    }
    bd_sockdir_reap(dir); /* a killed conductor's sockets: no process of that run lives */
    int rc = bd_move_aside_as_prev(dir, "run", &rd->moved_to);
    close(fd);
    return rc;
}

/* dir without trailing slashes, refused when it names no folder bodhi may claim. */
static int bd_clean_path(const char *in, char *out, size_t len)
{
    size_t n = strlen(in);
    while (n > 1 && in[n - 1] == '/')
        n--;
    if (n == 0 || n >= len)
        return bd_seterr(BD_EINVAL, "'%s' is not a usable run directory path", in);
    memcpy(out, in, n);
    out[n] = '\0';
    const char *base = strrchr(out, '/') ? strrchr(out, '/') + 1 : out;
    if (strcmp(out, "/") == 0 || strcmp(base, ".") == 0 || strcmp(base, "..") == 0)
        return bd_seterr(BD_EINVAL, "'%s' cannot be a run directory (name a folder of its own, e.g. %s/run)",
                         in, out);
    return BD_OK;
}

/* An existing path (st from lstat) that no run may claim: a link, a file, an unreadable
 * folder, a folder of other things. BD_OK with *empty for a folder a run may use. */
static int bd_refuse_existing(const char *dir, const struct stat *st, int *empty)
{
    *empty = 0;
    if (S_ISLNK(st->st_mode))
        return bd_seterr(BD_EINVAL, "%s is a symbolic link; nothing was touched (give the folder it "
                         "points to as --out)", dir);
    if (!S_ISDIR(st->st_mode))
        return bd_seterr(BD_EINVAL, "%s exists and is not a folder; nothing was touched "
                         "(choose another --out)", dir);
    *empty = bd_dir_empty(dir);
    if (*empty < 0)
        return bd_seterr(BD_EINVAL, "%s cannot be read (%s); nothing was touched", dir, strerror(errno));
    if (!*empty && !bd_is_run_dir(dir))
        return bd_seterr(BD_EINVAL, "%s is a folder that does not hold a bodhi run (no run.lock, "
                         "run.yml or log.jsonl); nothing was touched (choose another --out)", dir);
    return BD_OK;
}

int bd_rundir_check(const char *path)
{
    char dir[4096];
    int rc = bd_clean_path(path, dir, sizeof dir), empty;
    if (rc != BD_OK)
        return rc;
    struct stat st;
    if (lstat(dir, &st) != 0)
        return errno == ENOENT ? BD_OK : bd_seterr(BD_EINVAL, "%s: %s", dir, strerror(errno));
    if ((rc = bd_refuse_existing(dir, &st, &empty)) != BD_OK || empty)
        return rc;
    int owner;
    return bd_rundir_live(dir, &owner) ? bd_refuse_live(dir, owner) : BD_OK;
}

int bd_rundir_live(const char *dir, int *owner)
{
    /* a live run holds run.lock exclusively; a shared lock, dropped at once, asks without
     * claiming */
    *owner = 0;
    char *p = bd_strfmt("%s/%s", dir, BD_LOCK_NAME);
    int fd = p ? open(p, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC) : -1; /* never waiting on a pipe */
    free(p);
    if (fd < 0)
        return 0;
    struct stat st;
    const int live = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && flock(fd, LOCK_SH | LOCK_NB) != 0
                     && errno == EWOULDBLOCK;
    if (live)
        *owner = bd_read_pid(fd);
    close(fd);
    return live;
}

int bd_rundir_claim(const char *path, bd_rundir *rd)
{
    rd->lock_fd = -1;
    rd->moved_to = NULL;
    char dir[4096];
    int rc = bd_clean_path(path, dir, sizeof dir);
    if (rc != BD_OK)
        return rc;
    for (int tries = 0; tries < BD_CLAIM_TRIES; tries++) {
        struct stat st;
        if (lstat(dir, &st) == 0) {
            int empty;
            if ((rc = bd_refuse_existing(dir, &st, &empty)) != BD_OK)
                return rc;
            if (!empty) {
                int retry;
                if ((rc = bd_move_aside(dir, rd, &retry)) != BD_OK)
                    return rc;
                if (retry)
                    continue;
            }
        } else if (errno != ENOENT) {
            return bd_seterr(BD_EIO, "%s: %s", dir, strerror(errno));
        }
        if ((rc = bd_mkdirs(dir)) != BD_OK) { /* a path no folder can be made at is bad input */
            char why[1024];
            snprintf(why, sizeof why, "%s", bd_lasterr());
            return bd_seterr(BD_EINVAL, "%s; nothing was written", why);
        }
        if ((rc = bd_dir_private(dir)) != BD_OK) /* checked before; and now that it is there */
            return rc;
        int owner;
        switch (bd_take_lock(dir, &rd->lock_fd, &owner)) {
        case LOCK_HELD: /* another run claimed the new folder first */
            return bd_refuse_live(dir, owner);
        case LOCK_MOVED:
            continue;
        case LOCK_ERROR:
            return BD_EIO;
        default:
            break;
        }
        char pid[32];
        int len = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
        if (ftruncate(rd->lock_fd, 0) != 0 || pwrite(rd->lock_fd, pid, (size_t)len, 0) != len)
            return bd_seterr(BD_EIO, "%s/%s: %s", dir, BD_LOCK_NAME, strerror(errno));
        char *mem = bd_strfmt("%s/memory", dir);
        rc = mem ? bd_mkdirs(mem) : bd_seterr(BD_ENOMEM, "out of memory");
        free(mem);
        return rc;
    }
    return bd_seterr(BD_EINVAL, "%s keeps changing under us (other runs claim it); nothing was claimed", dir);
}

void bd_rundir_release(bd_rundir *rd)
{
    if (!rd)
        return;
    if (rd->lock_fd >= 0)
        close(rd->lock_fd);
    rd->lock_fd = -1;
    free(rd->moved_to);
    rd->moved_to = NULL;
}

static __thread double g_du_bytes; /* nftw's callback has no context pointer */

static int bd_du_cb(const char *path, const struct stat *st, int type, struct FTW *f)
{
    (void)path;
    (void)f;
    if (type == FTW_F)
        g_du_bytes += (double)st->st_blocks * 512; /* on disk: a sparse file counts what it holds */
    return 0;
}

/* Bytes under path on disk (du), 0 when unreadable. */
static double bd_du(const char *path)
{
    g_du_bytes = 0;
    nftw(path, bd_du_cb, 16, FTW_PHYS);
    return g_du_bytes;
}

char *bd_rundir_aside_text(const char *dir, const char *moved_to)
{
    char one[32], all[32];
    double size = bd_du(moved_to), total = 0;
    int copies = 0;
    /* the earlier copies: <base>.prev-* in dir's folder */
    const char *slash = strrchr(dir, '/');
    char *parent = slash ? bd_strfmt("%.*s", (int)(slash == dir ? 1 : slash - dir), dir) : bd_strdup(".");
    char *prefix = bd_strfmt("%s.prev-", slash ? slash + 1 : dir);
    DIR *dp = parent ? opendir(parent) : NULL;
    struct dirent *de;
    while (dp && prefix && (de = readdir(dp))) {
        if (strncmp(de->d_name, prefix, strlen(prefix)) != 0)
            continue;
        char *p = bd_strfmt("%s/%s", parent, de->d_name);
        if (p && strcmp(p, moved_to) != 0 && !(slash == NULL && strcmp(de->d_name, moved_to) == 0)) {
            copies++;
            total += bd_du(p);
        }
        free(p);
    }
    if (dp)
        closedir(dp);
    free(parent);
    free(prefix);
    if (copies == 0)
        return bd_strfmt("%s (%s)", moved_to, bd_bytes_text(size, one, sizeof one));
    return bd_strfmt("%s (%s); with %d earlier cop%s beside it, %s.prev-* hold %s in all (remove what you do not "
                     "need)", moved_to, bd_bytes_text(size, one, sizeof one), copies, copies == 1 ? "y" : "ies", dir,
                     bd_bytes_text(size + total, all, sizeof all));
}
