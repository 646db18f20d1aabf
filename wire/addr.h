/* addr.h: where a run's sockets live.
 *
 * ipc socket paths must fit in 108 bytes (sockaddr_un), and a run directory may be
 * anywhere, at any depth. So a run's ipc sockets live in a short directory of their own,
 * made when the run starts: $XDG_RUNTIME_DIR/bodhi-XXXXXX when that is short, else
 * /tmp/bodhi-XXXXXX (mode 0700), and the run directory holds a symlink to it, `sockets`.
 * Every process of the run, and `bodhi status`, finds the sockets through that link.
 * Names inside are short and fixed: `control` (the conductor), `p<phase>-b<agent index>`
 * (a brain). Muscles on other machines reach the same sockets over TCP. */
#ifndef BODHI_WIRE_ADDR_H
#define BODHI_WIRE_ADDR_H

/* Makes the socket directory and the run directory's `sockets` link to it (replacing a
 * stale link). *sockdir is a heap string, the caller's. BD_EIO naming the path. */
int bd_sockdir_create(const char *run_dir, char **sockdir);

/* The socket directory of the run in run_dir (from its `sockets` link): BD_ENOTFOUND when
 * the run has none. */
int bd_sockdir_find(const char *run_dir, char **sockdir);

/* Removes the socket directory (and what is left in it) and the run directory's link. */
void bd_sockdir_remove(const char *run_dir, const char *sockdir);

/* The socket directory that a dead run in run_dir left behind (its conductor killed before
 * it could remove it), removed, and the link with it; the caller holds the run's lock, so
 * no process of that run lives. Only a directory bd_sockdir_create could have made is
 * touched: bodhi-XXXXXX in /tmp or $XDG_RUNTIME_DIR (not a link), this user's, mode
 * 0700, holding nothing but server.pem (a listening run's TLS key) and sockets that no
 * process listens on (the link may point at a live run's folder: a copied run directory).
 * Anything else is left as it is. 1 when it removed one, else 0. */
int bd_sockdir_reap(const char *run_dir);

/* Socket URLs in a socket directory; heap strings (NULL on ENOMEM). */
char *bd_url_brain(const char *sockdir, int phase, int agent);
char *bd_url_control(const char *sockdir);

/* Whether a TCP listener could bind url (tcp:// or tls+tcp://HOST:PORT, HOST a name, an address or
 * [IPv6]) now: a socket is bound and closed at once, as NNG's listener would bind it
 * (SO_REUSEADDR). BD_OK, or BD_EINVAL saying why ("the port is in use", "not an address of
 * this machine"). Nothing listens; nothing is accepted. */
int bd_tcp_bind_probe(const char *url);

#endif
