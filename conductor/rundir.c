/* rundir.c: claiming a run directory for one run (see rundir.h). */
#define _GNU_SOURCE
#include "conductor/rundir.h"

#include <dirent.h>
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

#define BD_LOCK_NAME "run.lock"

/* 1 when dir has no entries besides . and .. (0 also when it cannot be read). */
static int bd_dir_empty(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
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

/* Opens dir's lock file (creating it when create) and tries to take it exclusively.
 * Returns the fd holding the lock, -1 with *owner = the holder's pid when another
 * process holds it, or -1 with *owner = 0 when there is no lock file (and !create) or
 * it cannot be opened (errno set). */
static int bd_try_lock(const char *dir, int create, int *owner)
{
    *owner = 0;
    char *p = bd_strfmt("%s/%s", dir, BD_LOCK_NAME);
    if (!p) {
        errno = ENOMEM;
        return -1;
    }
    int fd = open(p, O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0), 0644);
    free(p);
    if (fd < 0)
        return -1;
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        *owner = bd_read_pid(fd);
        if (*owner == 0)
            *owner = -1; /* held, but the holder has not written its pid yet */
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

static int bd_refuse_live(const char *dir, int owner)
{
    if (owner > 0)
        return bd_seterr(BD_EINVAL, "a run is in progress in %s (pid %d); nothing was touched "
                         "(wait for it, stop it, or choose another --out)", dir, owner);
    return bd_seterr(BD_EINVAL, "a run is starting in %s; nothing was touched "
                     "(choose another --out)", dir);
}

/* Moves a finished or dead run at dir aside, holding its lock meanwhile so that no other
 * run claims it in between. */
static int bd_move_aside(const char *dir, bd_rundir *rd)
{
    int owner;
    int old = bd_try_lock(dir, 0, &owner);
    if (old < 0 && owner != 0)
        return bd_refuse_live(dir, owner);
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
    int rc = BD_OK;
    if (!to)
        rc = bd_seterr(BD_ENOMEM, "out of memory");
    else if (rename(dir, to) != 0)
        rc = bd_seterr(BD_EIO, "cannot move the previous run %s aside: %s", dir, strerror(errno));
    if (old >= 0)
        close(old);
    if (rc == BD_OK)
        rd->moved_to = to;
    else
        free(to);
    return rc;
}

int bd_rundir_claim(const char *dir, bd_rundir *rd)
{
    rd->lock_fd = -1;
    rd->moved_to = NULL;
    struct stat st;
    if (stat(dir, &st) == 0) {
        if (!S_ISDIR(st.st_mode))
            return bd_seterr(BD_EINVAL, "%s exists and is not a folder; nothing was touched "
                             "(choose another --out)", dir);
        if (!bd_dir_empty(dir)) {
            if (!bd_is_run_dir(dir))
                return bd_seterr(BD_EINVAL, "%s is a folder that does not hold a bodhi run (no run.lock, "
                                 "run.yml or log.jsonl); nothing was touched (choose another --out)", dir);
            int rc = bd_move_aside(dir, rd);
            if (rc != BD_OK)
                return rc;
        }
    } else if (errno != ENOENT) {
        return bd_seterr(BD_EIO, "%s: %s", dir, strerror(errno));
    }
    int rc = bd_mkdirs(dir);
    if (rc != BD_OK)
        return rc;
    int owner;
    rd->lock_fd = bd_try_lock(dir, 1, &owner);
    if (rd->lock_fd < 0) /* another run claimed the new folder first */
        return owner ? bd_refuse_live(dir, owner)
                     : bd_seterr(BD_EIO, "%s/%s: %s", dir, BD_LOCK_NAME, strerror(errno));
    char pid[32];
    int len = snprintf(pid, sizeof pid, "%d\n", (int)getpid());
    if (ftruncate(rd->lock_fd, 0) != 0 || pwrite(rd->lock_fd, pid, (size_t)len, 0) != len)
        return bd_seterr(BD_EIO, "%s/%s: %s", dir, BD_LOCK_NAME, strerror(errno));
    char *mem = bd_strfmt("%s/memory", dir);
    rc = mem ? bd_mkdirs(mem) : bd_seterr(BD_ENOMEM, "out of memory");
    free(mem);
    return rc;
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

int bd_rundir_owner(const char *dir)
{
    int owner;
    int fd = bd_try_lock(dir, 0, &owner);
    if (fd >= 0)
        close(fd);
    return owner > 0 ? owner : 0;
}
