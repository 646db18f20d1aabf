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

void bd_sockdir_remove(const char *run_dir, const char *sockdir)
{
    DIR *d = sockdir ? opendir(sockdir) : NULL;
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char *p = bd_strfmt("%s/%s", sockdir, e->d_name);
        if (p)
            unlink(p);
        free(p);
    }
    if (d)
        closedir(d);
    if (sockdir)
        rmdir(sockdir);
    char *link = bd_strfmt("%s/sockets", run_dir);
    if (link)
        unlink(link);
    free(link);
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
