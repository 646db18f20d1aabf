/* addr.c: a run's socket directory and socket addresses (see addr.h). */
#define _GNU_SOURCE
#include "wire/addr.h"

#include <dirent.h>
#include <stdio.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <netdb.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <fcntl.h>
#include <unistd.h>

#include "common/util.h"

/* Leaves room for "/" + the longest socket name and ipc's 107-byte limit. */
#define BD_SOCKDIR_MAX 80

int bd_sockdir_create(const char *run_dir, char **sockdir)
{
    *sockdir = NULL;
    const char *rt = getenv("XDG_RUNTIME_DIR");
    char tmpl[PATH_MAX];
    if (rt && rt[0] == '/' && strlen(rt) + 16 < BD_SOCKDIR_MAX)
        snprintf(tmpl, sizeof tmpl, "%s/bodhi-XXXXXX", rt);
    else
        snprintf(tmpl, sizeof tmpl, "/tmp/bodhi-XXXXXX");
    if (!mkdtemp(tmpl))
        return bd_seterr(BD_EIO, "cannot make a socket directory %s: %s", tmpl, strerror(errno));
    char *link = bd_strfmt("%s/sockets", run_dir);
    if (!link)
        return bd_seterr(BD_ENOMEM, "out of memory");
    unlink(link); /* a dead run's */
    int rc = BD_OK;
    if (symlink(tmpl, link) != 0) {
        rc = bd_seterr(BD_EIO, "cannot link %s to the socket directory %s: %s", link, tmpl, strerror(errno));
        rmdir(tmpl);
    }
    free(link);
    if (rc == BD_OK && !(*sockdir = bd_strdup(tmpl)))
        rc = bd_seterr(BD_ENOMEM, "out of memory");
    return rc;
}

int bd_sockdir_find(const char *run_dir, char **sockdir)
{
    *sockdir = NULL;
    char *link = bd_strfmt("%s/sockets", run_dir);
    if (!link)
        return bd_seterr(BD_ENOMEM, "out of memory");
    char buf[PATH_MAX];
    ssize_t n = readlink(link, buf, sizeof buf - 1);
    int e = errno;
    free(link);
    if (n < 0)
        return bd_seterr(e == ENOENT ? BD_ENOTFOUND : BD_EIO, "%s/sockets: %s", run_dir, strerror(e));
    buf[n] = '\0';
    if (!(*sockdir = bd_strdup(buf)))
        return bd_seterr(BD_ENOMEM, "out of memory");
    return BD_OK;
}

/* Every entry of the open folder d unlinked (through its descriptor), then the folder
 * sockdir itself by its name (a link put there meanwhile is no folder: rmdir refuses it):
 * 1 when the folder went. */
static int bd_sockdir_empty_rmdir(DIR *d, const char *sockdir)
{
    struct dirent *e;
    rewinddir(d);
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            unlinkat(dirfd(d), e->d_name, 0);
    return rmdir(sockdir) == 0;
}

static void bd_sockdir_unlink(const char *run_dir) /* the run directory's `sockets` link */
{
    char *link = bd_strfmt("%s/sockets", run_dir);
    if (link)
        unlink(link);
    free(link);
}

void bd_sockdir_remove(const char *run_dir, const char *sockdir)
{
    DIR *d = sockdir ? opendir(sockdir) : NULL;
    if (d) {
        bd_sockdir_empty_rmdir(d, sockdir);
        closedir(d);
    } else if (sockdir) {
        rmdir(sockdir);
    }
    bd_sockdir_unlink(run_dir);
}

/* Whether path names a socket directory bd_sockdir_create makes: <parent>/bodhi-XXXXXX,
 * parent /tmp or $XDG_RUNTIME_DIR, six characters of mkdtemp's alphabet. */
static int bd_sockdir_name_ok(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash || strlen(slash + 1) != 12 || strncmp(slash + 1, "bodhi-", 6) != 0)
        return 0;
    for (const char *c = slash + 7; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9')))
            return 0;
    const size_t plen = (size_t)(slash - path);
    const char *rt = getenv("XDG_RUNTIME_DIR");
    return (plen == 4 && strncmp(path, "/tmp", 4) == 0)
           || (rt && rt[0] == '/' && strlen(rt) == plen && strncmp(path, rt, plen) == 0);
}

/* Whether a process listens on the socket `name` in the folder open as dfd: a connect
 * through /proc/self/fd (the folder checked, not whatever its path names by then) that
 * is not refused. A live run's sockets answer; a killed one's do not. */
static int bd_sock_live(int dfd, const char *name)
{
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    if (snprintf(a.sun_path, sizeof a.sun_path, "/proc/self/fd/%d/%s", dfd, name) >= (int)sizeof a.sun_path)
        return 1; /* cannot tell: take it for live */
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return 1;
    int live = connect(s, (struct sockaddr *)&a, sizeof a) == 0 || (errno != ECONNREFUSED && errno != ENOENT);
    close(s);
    return live;
}

int bd_sockdir_reap(const char *run_dir)
{
    char *sockdir = NULL;
    if (bd_sockdir_find(run_dir, &sockdir) != BD_OK)
        return 0;
    /* the folder itself, not a link in its place, checked and emptied through one descriptor */
    int dfd = bd_sockdir_name_ok(sockdir) ? open(sockdir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC) : -1;
    struct stat st;
    int ok = dfd >= 0 && fstat(dfd, &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == geteuid()
             && (st.st_mode & 07777) == 0700;
    DIR *d = ok ? fdopendir(dfd) : NULL; /* d owns dfd from here */
    if (!d && dfd >= 0)
        close(dfd);
    ok = ok && d;
    /* first look: nothing but sockets that no process listens on (a dead run's link may
     * point at a live run's folder) and the conductor's server.pem (the TLS door's key,
     * conductor/join.c); anything else and it is not ours to empty */
    struct dirent *e;
    while (ok && (e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        struct stat es;
        ok = fstatat(dfd, e->d_name, &es, AT_SYMLINK_NOFOLLOW) == 0
             && ((S_ISSOCK(es.st_mode) && !bd_sock_live(dfd, e->d_name))
                 || (S_ISREG(es.st_mode) && strcmp(e->d_name, "server.pem") == 0));
    }
    /* what it holds was looked at through d, and only this user may add to a 0700 folder */
    const int reaped = ok && bd_sockdir_empty_rmdir(d, sockdir);
    if (reaped)
        bd_sockdir_unlink(run_dir);
    if (d)
        closedir(d);
    free(sockdir);
    return reaped;
}

char *bd_url_brain(const char *sockdir, int phase, int agent)
{
    return bd_strfmt("ipc://%s/p%d-b%d", sockdir, phase, agent);
}

char *bd_url_control(const char *sockdir)
{
    return bd_strfmt("ipc://%s/control", sockdir);
}

int bd_tcp_bind_probe(const char *url)
{
    const size_t skip = !url ? 0 : strncmp(url, "tcp://", 6) == 0 ? 6 : strncmp(url, "tls+tcp://", 10) == 0 ? 10 : 0;
    const char *colon = url ? strrchr(url, ':') : NULL;
    if (!skip || !colon || colon <= url + skip)
        return bd_seterr(BD_EINVAL, "'%s' is not tcp://HOST:PORT", url ? url : "");
    char host[256];
    const char *h = url + skip;
    size_t hl = (size_t)(colon - h);
    if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') { /* [::1] */
        h++;
        hl -= 2;
    }
    if (hl >= sizeof host)
        return bd_seterr(BD_EINVAL, "the host name of '%s' is too long", url);
    memcpy(host, h, hl);
    host[hl] = '\0';
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *ai = NULL;
    int e = getaddrinfo(hl ? host : NULL, colon + 1, &hints, &ai);
    if (e != 0)
        return bd_seterr(BD_EINVAL, "cannot resolve '%s': %s", host, gai_strerror(e));
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol), rc = BD_OK;
    int on = 1;
    if (fd < 0)
        rc = bd_seterr(BD_EINVAL, "cannot make a socket: %s", strerror(errno));
    else if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0
             || bind(fd, ai->ai_addr, ai->ai_addrlen) != 0)
        rc = bd_seterr(BD_EINVAL, "%s", errno == EADDRINUSE ? "the port is in use (another program listens there)"
                                         : errno == EADDRNOTAVAIL ? "not an address of this machine"
                                         : strerror(errno));
    if (fd >= 0)
        close(fd);
    freeaddrinfo(ai);
    return rc;
}
