/* tls.h: a run's credentials for its TCP doors (mutual TLS over NNG's tls+tcp transport).
 *
 * `bodhi run --listen` makes a certificate authority of its own for the run (ECDSA P-256,
 * mbedTLS) and signs two certificates with it: a server certificate (the conductor's and
 * the brains' TCP listeners; DNS name "bodhi-run", extended key usage serverAuth) and a
 * client certificate (every remote muscle; clientAuth). Both sides require the other's
 * certificate and check it against the run's CA, so only the run's own credential gets a
 * connection, and a muscle talks only to its own run. mbedTLS 2.28 does not match IP
 * addresses in certificates: clients ask for the fixed name "bodhi-run" whatever address
 * they dial; what pins the peer is the per-run CA.
 *
 * A credential file is PEM blocks, each after a line "bodhi-part: NAME" that says what it
 * is: ca (the CA's certificate), ca-key, server, server-key, client, client-key. A muscle's
 * file (RUN_DIR/remote.key) holds ca, client, client-key; a file named by `bodhi run
 * --credential` holds ca-key too, so that a later run can sign a server certificate again
 * (whoever holds it can act as the run's conductor as well as its muscle). Files are
 * written with mode 0600 and never through a symbolic link. */
#ifndef BODHI_WIRE_TLS_H
#define BODHI_WIRE_TLS_H

#include <stdint.h>

#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>

#include "bodhi/bodhi.h"

/* The name every server certificate carries and every client asks for. */
#define BD_TLS_NAME "bodhi-run"

/* Connections a TLS door takes at once for `peers` remote muscles (each holds one per
 * socket; a restarting one briefly two), beyond which more are closed as they come. */
#define BD_TLS_DOOR_CAP(peers) (2 * (peers) + 8)

typedef struct bd_tls bd_tls;

/* The parts of a credential (bit flags). */
enum {
    BD_TLS_CA = 1,          /* the CA's certificate */
    BD_TLS_CA_KEY = 2,      /* the CA's private key */
    BD_TLS_SERVER = 4,      /* a server certificate and its key */
    BD_TLS_CLIENT = 8       /* a client certificate and its key */
};

/* A new certificate authority (certificate and key), nothing signed yet. */
int bd_tls_create(bd_tls **out);

/* Signs a new server (BD_TLS_SERVER) or client (BD_TLS_CLIENT) certificate with a fresh
 * key; needs the CA's key. BD_ESTATE when the credential holds none. */
int bd_tls_issue(bd_tls *t, int part);

/* Reads a credential file: BD_ENOTFOUND when it does not exist, BD_EINVAL naming the file
 * when it is not one (a part that does not parse, a certificate without its key). */
int bd_tls_load(const char *path, bd_tls **out);

/* The same from a credential file's text (len bytes, not NUL-terminated); path names it
 * in errors. Every part is parsed by mbedTLS as what its line says it is. */
int bd_tls_parse(const char *text, size_t len, const char *path, bd_tls **out);

/* The parts (BD_TLS_* bits) the credential holds. */
int bd_tls_parts(const bd_tls *t);

/* Writes `parts` of the credential to a new file path (mode 0600, O_EXCL|O_NOFOLLOW: never
 * over anything). BD_EIO naming the path. */
int bd_tls_write(const bd_tls *t, const char *path, int parts);

/* The NNG TLS configuration of a listener (server certificate, client certificates
 * required and checked against the CA) or a dialer (client certificate, the server's
 * checked against the CA under the name BD_TLS_NAME). Built on first use, owned by t:
 * NNG holds its own reference once a listener or dialer takes it. */
int bd_tls_config(bd_tls *t, int server, nng_tls_config **cfg);

/* Dials url from socket s (flags as nng_dial's): through TLS with the credential's client
 * certificate when tls is given (url must then be tls+tcp://), plainly otherwise. */
int bd_tls_dial(nng_socket s, const char *url, bd_tls *tls, int flags);

/* 1 for a URL of NNG's TLS transport (tls+tcp://...). */
int bd_tls_url(const char *url);

/* A remote muscle's grant (BD_TLS_GRANT_SIZE bytes into mac): what the conductor gives
 * the peer it lets into slot `slot` of phase `phase` (its index in the schedule) with
 * JOIN, for the pid the peer said and the grant's number (`epoch`, rising through the
 * run); the muscle shows it in its HELLO. An HMAC-SHA256 keyed with the run's server key
 * (the SHA-256 of its DER: for a key longer than HMAC's block, the same MAC), which the
 * conductor and its brains hold and a muscle's credential does not: a holder of that
 * credential can greet a brain only as the phase, slot, pid and grant the conductor gave
 * it. BD_ESTATE without a server key. */
#define BD_TLS_GRANT_SIZE 16
int bd_tls_grant(const bd_tls *t, uint32_t phase, uint32_t slot, uint32_t pid, uint32_t epoch,
                 uint8_t mac[BD_TLS_GRANT_SIZE]);

/* 1 when mac is that grant by t's server key (compared in constant time), else 0. */
int bd_tls_grant_ok(const bd_tls *t, uint32_t phase, uint32_t slot, uint32_t pid, uint32_t epoch,
                    const uint8_t mac[BD_TLS_GRANT_SIZE]);

/* Frees; NULL-safe. */
void bd_tls_destroy(bd_tls *t);

#endif
