/* tls.c: a run's certificate authority and credentials (see tls.h), made with mbedTLS's
 * X.509 writer, used through NNG's TLS configuration (NNG's TLS engine is mbedTLS too). */
#define _GNU_SOURCE
#include "wire/tls.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/ecp.h>
#include <mbedtls/entropy.h>
#include <mbedtls/md.h>
#include <mbedtls/oid.h>
#include <mbedtls/pk.h>
#include <mbedtls/platform_util.h>
#include <mbedtls/x509_crt.h>

#include "common/util.h"
#include "wire/wire.h"

_Static_assert(sizeof(((bd_hello *)0)->grant) == BD_TLS_GRANT_SIZE, "a HELLO carries one grant");

#define BD_TLS_PEM_MAX 4096      /* a P-256 certificate or key in PEM is well under 1 KiB */
#define BD_TLS_FILE_MAX (64 << 10)
#define BD_TLS_YEARS 10          /* certificates are valid from an hour ago for this long */

/* the PEM texts, NUL-terminated (NNG and mbedTLS take PEM with its terminator) */
enum { P_CA, P_CA_KEY, P_SERVER, P_SERVER_KEY, P_CLIENT, P_CLIENT_KEY, P_COUNT };
static const char *const bd_tls_names[P_COUNT] = {"ca", "ca-key", "server", "server-key", "client", "client-key"};

#define BD_TLS_DER_MAX 8192 /* a key's DER: P-256's is 121 bytes, an RSA-4096 key's about 2.4 KiB */
#define BD_TLS_GKEY_SIZE 32 /* SHA-256 */

struct bd_tls {
    char *pem[P_COUNT];
    nng_tls_config *cfg[2]; /* [0] dialer, [1] listener */
    /* the grants' HMAC key (bd_tls_grant), made when the server key is set: a HELLO's
     * check is one HMAC, not a PEM parse */
    unsigned char gkey[BD_TLS_GKEY_SIZE];
    int have_gkey; /* 0: no server key */
};

static int bd_tls_mbed_err(int e, const char *what)
{
    return bd_seterr(BD_EIO, "%s: mbedTLS error -0x%04x", what, (unsigned)-e);
}

/* Frees a PEM text (NULL: nothing) after wiping it: it may hold a private key. */
static void bd_pem_free(char *pem)
{
    if (pem) {
        explicit_bzero(pem, strlen(pem));
        free(pem);
    }
}

/* The grants' HMAC key from a server key's PEM: the SHA-256 of the key's DER, the same
 * however the PEM text was written (HMAC-SHA256 keys itself so with any key longer than
 * its 64-byte block, as a P-256 key's DER is). */
static int bd_tls_grant_key(const char *pem, unsigned char out[BD_TLS_GKEY_SIZE])
{
    mbedtls_pk_context k;
    mbedtls_pk_init(&k);
    unsigned char *der = malloc(BD_TLS_DER_MAX);
    if (!der)
        return bd_seterr(BD_ENOMEM, "out of memory");
    int e = mbedtls_pk_parse_key(&k, (const unsigned char *)pem, strlen(pem) + 1, NULL, 0);
    int n = e == 0 ? mbedtls_pk_write_key_der(&k, der, BD_TLS_DER_MAX) : e; /* at the buffer's end */
    mbedtls_pk_free(&k);
    if (n > 0)
        e = mbedtls_md(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), der + BD_TLS_DER_MAX - n, (size_t)n, out);
    mbedtls_platform_zeroize(der, BD_TLS_DER_MAX);
    free(der);
    if (n <= 0 || e != 0)
        return bd_tls_mbed_err(n <= 0 ? n : e, "the server key for the grants");
    return BD_OK;
}

/* A random generator seeded from the system's entropy. */
typedef struct {
    mbedtls_entropy_context ent;
    mbedtls_ctr_drbg_context drbg;
} bd_rng;

static int bd_rng_init(bd_rng *r)
{
    mbedtls_entropy_init(&r->ent);
    mbedtls_ctr_drbg_init(&r->drbg);
    int e = mbedtls_ctr_drbg_seed(&r->drbg, mbedtls_entropy_func, &r->ent, (const unsigned char *)"bodhi-run", 9);
    return e ? bd_tls_mbed_err(e, "seeding a random generator") : BD_OK;
}

static void bd_rng_fini(bd_rng *r)
{
    mbedtls_ctr_drbg_free(&r->drbg);
    mbedtls_entropy_free(&r->ent);
}

/* A fresh P-256 key, and its PEM text (heap) in *pem. */
static int bd_tls_keygen(bd_rng *r, mbedtls_pk_context *key, char **pem)
{
    int e = mbedtls_pk_setup(key, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY));
    if (!e)
        e = mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(*key), mbedtls_ctr_drbg_random, &r->drbg);
    if (e)
        return bd_tls_mbed_err(e, "making a key");
    if (!(*pem = calloc(1, BD_TLS_PEM_MAX)))
        return bd_seterr(BD_ENOMEM, "out of memory");
    e = mbedtls_pk_write_key_pem(key, (unsigned char *)*pem, BD_TLS_PEM_MAX);
    return e ? bd_tls_mbed_err(e, "writing a key") : BD_OK;
}

/* "YYYYMMDDhhmmss" of now + seconds, UTC. */
static void bd_tls_time(long long seconds, char out[16])
{
    time_t t = time(NULL) + (time_t)seconds;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 16, "%Y%m%d%H%M%S", &tm);
}

/* The subject (or issuer) name of a parsed certificate, as mbedTLS's writer takes it. */
static int bd_tls_dn(const mbedtls_x509_name *dn, char *out, size_t len)
{
    char buf[512];
    if (mbedtls_x509_dn_gets(buf, sizeof buf, dn) < 0)
        return bd_seterr(BD_EINVAL, "a certificate's name is too long");
    size_t o = 0;
    for (const char *p = buf; *p && o + 1 < len; p++) /* "CN=a, O=b" -> "CN=a,O=b" */
        if (!(*p == ' ' && p > buf && p[-1] == ','))
            out[o++] = *p;
    out[o] = '\0';
    return BD_OK;
}

/* Signs a certificate for subject key `key` named `subject`: a CA (self-signed with
 * issuer_key == key) or a leaf with extended key usage eku (an OID's bytes, or NULL). */
static int bd_tls_sign(bd_rng *r, mbedtls_pk_context *key, const char *subject, mbedtls_pk_context *issuer_key,
                       const char *issuer, int ca, const char *eku, char **pem)
{
    mbedtls_x509write_cert w;
    mbedtls_mpi serial;
    mbedtls_x509write_crt_init(&w);
    mbedtls_mpi_init(&serial);
    char from[16], until[16];
    bd_tls_time(-3600, from);
    bd_tls_time(BD_TLS_YEARS * 365LL * 86400, until);
    mbedtls_x509write_crt_set_version(&w, MBEDTLS_X509_CRT_VERSION_3);
    mbedtls_x509write_crt_set_md_alg(&w, MBEDTLS_MD_SHA256);
    mbedtls_x509write_crt_set_subject_key(&w, key);
    mbedtls_x509write_crt_set_issuer_key(&w, issuer_key);
    int e = mbedtls_mpi_fill_random(&serial, 16, mbedtls_ctr_drbg_random, &r->drbg);
    if (!e) /* a positive serial: clear the top bit */
        e = mbedtls_mpi_set_bit(&serial, 127, 0);
    if (!e)
        e = mbedtls_x509write_crt_set_serial(&w, &serial);
    if (!e)
        e = mbedtls_x509write_crt_set_validity(&w, from, until);
    if (!e)
        e = mbedtls_x509write_crt_set_subject_name(&w, subject);
    if (!e)
        e = mbedtls_x509write_crt_set_issuer_name(&w, issuer);
    if (!e)
        e = mbedtls_x509write_crt_set_basic_constraints(&w, ca, ca ? 0 : -1);
    if (!e)
        e = mbedtls_x509write_crt_set_key_usage(&w, ca ? MBEDTLS_X509_KU_KEY_CERT_SIGN | MBEDTLS_X509_KU_CRL_SIGN
                                                       : MBEDTLS_X509_KU_DIGITAL_SIGNATURE);
    if (!e)
        e = mbedtls_x509write_crt_set_subject_key_identifier(&w);
    if (!e && !ca)
        e = mbedtls_x509write_crt_set_authority_key_identifier(&w);
    if (!e && eku) { /* SEQUENCE { OID } */
        unsigned char v[16] = {0x30, 0x0a, 0x06, 0x08};
        memcpy(v + 4, eku, 8);
        e = mbedtls_x509write_crt_set_extension(&w, MBEDTLS_OID_EXTENDED_KEY_USAGE,
                                                MBEDTLS_OID_SIZE(MBEDTLS_OID_EXTENDED_KEY_USAGE), 0, v, 12);
    }
    if (!e && !ca) { /* subjectAltName: SEQUENCE { dNSName "bodhi-run" } */
        unsigned char v[2 + 2 + sizeof BD_TLS_NAME - 1] = {0x30, (unsigned char)(2 + sizeof BD_TLS_NAME - 1), 0x82,
                                                           (unsigned char)(sizeof BD_TLS_NAME - 1)};
        memcpy(v + 4, BD_TLS_NAME, sizeof BD_TLS_NAME - 1);
        e = mbedtls_x509write_crt_set_extension(&w, MBEDTLS_OID_SUBJECT_ALT_NAME,
                                                MBEDTLS_OID_SIZE(MBEDTLS_OID_SUBJECT_ALT_NAME), 0, v, sizeof v);
    }
    if (!e && !(*pem = calloc(1, BD_TLS_PEM_MAX)))
        e = MBEDTLS_ERR_X509_ALLOC_FAILED;
    if (!e)
        e = mbedtls_x509write_crt_pem(&w, (unsigned char *)*pem, BD_TLS_PEM_MAX, mbedtls_ctr_drbg_random, &r->drbg);
    mbedtls_mpi_free(&serial);
    mbedtls_x509write_crt_free(&w);
    return e ? bd_tls_mbed_err(e, "signing a certificate") : BD_OK;
}

int bd_tls_create(bd_tls **out)
{
    *out = NULL;
    bd_tls *t = calloc(1, sizeof *t);
    if (!t)
        return bd_seterr(BD_ENOMEM, "out of memory");
    bd_rng r;
    mbedtls_pk_context key;
    mbedtls_pk_init(&key);
    int rc = bd_rng_init(&r);
    if (rc == BD_OK)
        rc = bd_tls_keygen(&r, &key, &t->pem[P_CA_KEY]);
    /* a name of its own, so that an error about another run's certificate can tell them apart */
    unsigned char id[8];
    char subject[96];
    if (rc == BD_OK && mbedtls_ctr_drbg_random(&r.drbg, id, sizeof id) != 0)
        rc = bd_seterr(BD_EIO, "random bytes for the CA's name");
    if (rc == BD_OK) {
        snprintf(subject, sizeof subject, "CN=bodhi run CA %02x%02x%02x%02x%02x%02x%02x%02x,O=bodhi", id[0], id[1],
                 id[2], id[3], id[4], id[5], id[6], id[7]);
        rc = bd_tls_sign(&r, &key, subject, &key, subject, 1, NULL, &t->pem[P_CA]);
    }
    mbedtls_pk_free(&key);
    bd_rng_fini(&r);
    if (rc != BD_OK) {
        bd_tls_destroy(t);
        return rc;
    }
    *out = t;
    return BD_OK;
}

int bd_tls_issue(bd_tls *t, int part)
{
    if (part != BD_TLS_SERVER && part != BD_TLS_CLIENT)
        return bd_seterr(BD_EINVAL, "tls: a server or a client certificate");
    if (!t->pem[P_CA] || !t->pem[P_CA_KEY])
        return bd_seterr(BD_ESTATE, "the credential holds no CA key to sign with");
    int cert = part == BD_TLS_SERVER ? P_SERVER : P_CLIENT;
    mbedtls_x509_crt ca;
    mbedtls_pk_context cakey, key;
    mbedtls_x509_crt_init(&ca);
    mbedtls_pk_init(&cakey);
    mbedtls_pk_init(&key);
    bd_rng r;
    char issuer[512];
    int rc = bd_rng_init(&r);
    int e = 0;
    if (rc == BD_OK && ((e = mbedtls_x509_crt_parse(&ca, (const unsigned char *)t->pem[P_CA], strlen(t->pem[P_CA]) + 1))
                        || (e = mbedtls_pk_parse_key(&cakey, (const unsigned char *)t->pem[P_CA_KEY],
                                                     strlen(t->pem[P_CA_KEY]) + 1, NULL, 0))))
        rc = bd_tls_mbed_err(e, "reading the CA");
    if (rc == BD_OK)
        rc = bd_tls_dn(&ca.subject, issuer, sizeof issuer);
    char *kp = NULL, *cp = NULL;
    if (rc == BD_OK)
        rc = bd_tls_keygen(&r, &key, &kp);
    if (rc == BD_OK)
        rc = bd_tls_sign(&r, &key, part == BD_TLS_SERVER ? "CN=" BD_TLS_NAME ",O=bodhi" : "CN=bodhi-muscle,O=bodhi",
                         &cakey, issuer, 0, part == BD_TLS_SERVER ? MBEDTLS_OID_SERVER_AUTH : MBEDTLS_OID_CLIENT_AUTH,
                         &cp);
    unsigned char gk[BD_TLS_GKEY_SIZE];
    if (rc == BD_OK && cert == P_SERVER) /* before anything changes */
        rc = bd_tls_grant_key(kp, gk);
    if (rc == BD_OK) {
        free(t->pem[cert]);
        bd_pem_free(t->pem[cert + 1]);
        t->pem[cert] = cp;
        t->pem[cert + 1] = kp;
        if (cert == P_SERVER) {
            memcpy(t->gkey, gk, sizeof gk);
            t->have_gkey = 1;
        }
    } else {
        free(cp);
        bd_pem_free(kp);
    }
    mbedtls_platform_zeroize(gk, sizeof gk);
    mbedtls_pk_free(&key);
    mbedtls_pk_free(&cakey);
    mbedtls_x509_crt_free(&ca);
    bd_rng_fini(&r);
    return rc;
}

int bd_tls_grant(const bd_tls *t, uint32_t phase, uint32_t slot, uint32_t pid, uint32_t epoch,
                 uint8_t mac[BD_TLS_GRANT_SIZE])
{
    memset(mac, 0, BD_TLS_GRANT_SIZE);
    if (!t || !t->have_gkey)
        return bd_seterr(BD_ESTATE, "a grant needs the run's server key");
    uint8_t in[28] = "bodhi-grant", out[32]; /* the words, then phase, slot, pid, epoch (LE) */
    const uint32_t v[4] = {phase, slot, pid, epoch};
    for (int i = 0; i < 4; i++)
        for (int b = 0; b < 4; b++)
            in[12 + 4 * i + b] = (uint8_t)(v[i] >> (8 * b));
    int e = mbedtls_md_hmac(mbedtls_md_info_from_type(MBEDTLS_MD_SHA256), t->gkey, sizeof t->gkey, in, sizeof in, out);
    if (e != 0)
        return bd_tls_mbed_err(e, "a grant's HMAC");
    memcpy(mac, out, BD_TLS_GRANT_SIZE);
    return BD_OK;
}

int bd_tls_grant_ok(const bd_tls *t, uint32_t phase, uint32_t slot, uint32_t pid, uint32_t epoch,
                    const uint8_t mac[BD_TLS_GRANT_SIZE])
{
    uint8_t want[BD_TLS_GRANT_SIZE];
    if (bd_tls_grant(t, phase, slot, pid, epoch, want) != BD_OK)
        return 0;
    uint8_t diff = 0;
    for (int i = 0; i < BD_TLS_GRANT_SIZE; i++)
        diff |= (uint8_t)(want[i] ^ mac[i]);
    return diff == 0;
}

int bd_tls_parts(const bd_tls *t)
{
    return (t->pem[P_CA] ? BD_TLS_CA : 0) | (t->pem[P_CA_KEY] ? BD_TLS_CA_KEY : 0)
           | (t->pem[P_SERVER] && t->pem[P_SERVER_KEY] ? BD_TLS_SERVER : 0)
           | (t->pem[P_CLIENT] && t->pem[P_CLIENT_KEY] ? BD_TLS_CLIENT : 0);
}

/* Checks that part i's PEM text parses as what it says it is. */
static int bd_tls_check_part(const char *path, int i, const char *pem)
{
    int e;
    if (i == P_CA || i == P_SERVER || i == P_CLIENT) {
        mbedtls_x509_crt c;
        mbedtls_x509_crt_init(&c);
        e = mbedtls_x509_crt_parse(&c, (const unsigned char *)pem, strlen(pem) + 1);
        mbedtls_x509_crt_free(&c);
    } else {
        mbedtls_pk_context k;
        mbedtls_pk_init(&k);
        e = mbedtls_pk_parse_key(&k, (const unsigned char *)pem, strlen(pem) + 1, NULL, 0);
        mbedtls_pk_free(&k);
    }
    return e ? bd_seterr(BD_EINVAL, "%s: its part '%s' does not parse (mbedTLS error -0x%04x)", path,
                         bd_tls_names[i], (unsigned)-e)
             : BD_OK;
}

int bd_tls_parse(const char *text, size_t len, const char *path, bd_tls **out)
{
    *out = NULL;
    char *copy = malloc(len + 1); /* NUL-terminated, and cut at the first NUL */
    if (!copy)
        return bd_seterr(BD_ENOMEM, "out of memory");
    memcpy(copy, text, len);
    copy[len] = '\0';
    bd_tls *t = calloc(1, sizeof *t);
    if (!t) {
        free(copy);
        return bd_seterr(BD_ENOMEM, "out of memory");
    }
    int rc = BD_OK;
    /* "bodhi-part: NAME\n-----BEGIN ...-----\n...\n-----END ...-----\n" */
    for (char *p = copy; (p = strstr(p, "bodhi-part: "));) {
        p += strlen("bodhi-part: ");
        size_t nl = strcspn(p, "\r\n");
        int i = 0;
        while (i < P_COUNT && !(strlen(bd_tls_names[i]) == nl && strncmp(p, bd_tls_names[i], nl) == 0))
            i++;
        char *begin = strstr(p, "-----BEGIN "), *end = begin ? strstr(begin, "-----END ") : NULL;
        char *stop = end ? strstr(end + 9, "-----") : NULL;
        if (i == P_COUNT || !stop || t->pem[i]) {
            rc = bd_seterr(BD_EINVAL, "%s: not a bodhi credential (a part '%.*s' that is unknown, twice, or not "
                                      "followed by a PEM block)", path, (int)(nl < 40 ? nl : 40), p);
            break;
        }
        stop += 5;
        size_t n = (size_t)(stop - begin);
        if (!(t->pem[i] = malloc(n + 2))) {
            rc = bd_seterr(BD_ENOMEM, "out of memory");
            break;
        }
        memcpy(t->pem[i], begin, n);
        memcpy(t->pem[i] + n, "\n", 2);
        if ((rc = bd_tls_check_part(path, i, t->pem[i])) != BD_OK)
            break;
        p = stop;
    }
    explicit_bzero(copy, len);
    free(copy);
    if (rc == BD_OK && !t->pem[P_CA])
        rc = bd_seterr(BD_EINVAL, "%s: not a bodhi credential (no CA certificate; it is made by bodhi run --listen, "
                                  "as RUN_DIR/remote.key or the --credential file)", path);
    for (int i = P_SERVER; rc == BD_OK && i < P_COUNT; i += 2)
        if (!t->pem[i] != !t->pem[i + 1])
            rc = bd_seterr(BD_EINVAL, "%s: its %s certificate comes without its key, or the key without it", path,
                           bd_tls_names[i]);
    if (rc == BD_OK && t->pem[P_SERVER_KEY]) {
        if (bd_tls_grant_key(t->pem[P_SERVER_KEY], t->gkey) == BD_OK) {
            t->have_gkey = 1;
        } else {
            rc = bd_seterr(BD_EINVAL, "%s: its server key: %s", path, bd_lasterr()); /* bd_seterr may read it */
        }
    }
    if (rc != BD_OK) {
        bd_tls_destroy(t);
        return rc;
    }
    *out = t;
    return BD_OK;
}

int bd_tls_load(const char *path, bd_tls **out)
{
    *out = NULL;
    char *text = NULL;
    size_t len = 0;
    /* Opened once, checked and read through the same descriptor (a file swapped in
     * between is never read), without blocking (a FIFO is refused, not waited on). */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return bd_seterr(errno == ENOENT ? BD_ENOTFOUND : BD_EIO, "%s: %s", path, strerror(errno));
    /* It holds the run's private keys: like ssh with a private key, refuse one that others
     * may read or change (they could join the run, or sign for it). */
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return bd_seterr(BD_EIO, "%s: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return bd_seterr(BD_EINVAL, "%s: the credential is not a regular file", path);
    }
    if (st.st_mode & 077) {
        close(fd);
        return bd_seterr(BD_EINVAL, "%s: the credential may be read or changed by others (mode %03o); it holds the "
                         "run's private keys: chmod 600 it", path, (unsigned)(st.st_mode & 0777));
    }
    if (fcntl(fd, F_SETFL, 0) != 0) {
        int e = errno;
        close(fd);
        return bd_seterr(BD_EIO, "%s: %s", path, strerror(e));
    }
    int rc = bd_read_fd_max(fd, path, BD_TLS_FILE_MAX, &text, &len);
    if (rc != BD_OK)
        return rc;
    rc = bd_tls_parse(text, len, path, out);
    explicit_bzero(text, len);
    free(text);
    return rc;
}

int bd_tls_write(const bd_tls *t, const char *path, int parts)
{
    static const int bits[P_COUNT] = {BD_TLS_CA, BD_TLS_CA_KEY, BD_TLS_SERVER, BD_TLS_SERVER, BD_TLS_CLIENT,
                                      BD_TLS_CLIENT};
    size_t cap = 0;
    for (int i = 0; i < P_COUNT; i++)
        if ((parts & bits[i]) && !t->pem[i])
            return bd_seterr(BD_ESTATE, "tls: the credential has no part '%s' to write", bd_tls_names[i]);
        else if (parts & bits[i])
            cap += strlen(t->pem[i]) + 32;
    char *text = malloc(cap + 1), *q = text;
    if (!text)
        return bd_seterr(BD_ENOMEM, "out of memory");
    for (int i = 0; i < P_COUNT; i++)
        if (parts & bits[i])
            q += sprintf(q, "bodhi-part: %s\n%s", bd_tls_names[i], t->pem[i]);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    int rc = BD_OK;
    if (fd < 0) {
        rc = bd_seterr(BD_EIO, "%s: %s", path, strerror(errno));
    } else {
        size_t n = (size_t)(q - text), done = 0;
        while (done < n) {
            ssize_t w = write(fd, text + done, n - done);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                break;
            done += (size_t)w;
        }
        if (done < n || fsync(fd) != 0)
            rc = bd_seterr(BD_EIO, "%s: %s", path, strerror(errno));
        close(fd);
        if (rc != BD_OK)
            unlink(path);
    }
    explicit_bzero(text, cap);
    free(text);
    return rc;
}

int bd_tls_config(bd_tls *t, int server, nng_tls_config **cfg)
{
    *cfg = NULL;
    server = server != 0;
    if (t->cfg[server]) {
        *cfg = t->cfg[server];
        return BD_OK;
    }
    int cert = server ? P_SERVER : P_CLIENT;
    if (!t->pem[P_CA] || !t->pem[cert] || !t->pem[cert + 1])
        return bd_seterr(BD_ESTATE, "the credential holds no %s certificate", server ? "server" : "client");
    nng_tls_config *c;
    int rv = nng_tls_config_alloc(&c, server ? NNG_TLS_MODE_SERVER : NNG_TLS_MODE_CLIENT);
    if (rv != 0)
        return bd_nng_err(rv, "tls configuration");
    rv = nng_tls_config_auth_mode(c, NNG_TLS_AUTH_MODE_REQUIRED);
    if (rv == 0)
        rv = nng_tls_config_ca_chain(c, t->pem[P_CA], NULL);
    if (rv == 0)
        rv = nng_tls_config_own_cert(c, t->pem[cert], t->pem[cert + 1], NULL);
    if (rv == 0 && !server)
        rv = nng_tls_config_server_name(c, BD_TLS_NAME);
    if (rv == 0)
        rv = nng_tls_config_version(c, NNG_TLS_1_2, NNG_TLS_1_2); /* what mbedTLS 2.28 offers */
    if (rv != 0) {
        nng_tls_config_free(c);
        return bd_nng_err(rv, "tls configuration");
    }
    t->cfg[server] = c;
    *cfg = c;
    return BD_OK;
}

int bd_tls_dial(nng_socket s, const char *url, bd_tls *tls, int flags)
{
    if (bd_tls_url(url) != (tls != NULL))
        return bd_seterr(BD_EINVAL, "%s: %s", url, tls ? "a credential dials tls+tcp:// only"
                                                    : "tls+tcp:// needs the run's credential (--credential FILE)");
    if (!tls) {
        int rv = nng_dial(s, url, NULL, flags);
        return rv ? bd_nng_err(rv, url) : BD_OK;
    }
    nng_tls_config *cfg;
    int rc = bd_tls_config(tls, 0, &cfg);
    if (rc != BD_OK)
        return rc;
    nng_dialer d = NNG_DIALER_INITIALIZER;
    int rv = nng_dialer_create(&d, s, url);
    if (rv == 0 && (rv = nng_dialer_set_ptr(d, NNG_OPT_TLS_CONFIG, cfg)) == 0)
        rv = nng_dialer_start(d, flags);
    if (rv != 0 && nng_dialer_id(d) > 0)
        nng_dialer_close(d);
    return rv ? bd_nng_err(rv, url) : BD_OK;
}

int bd_tls_url(const char *url)
{
    return url && strncmp(url, "tls+tcp", 7) == 0;
}

void bd_tls_destroy(bd_tls *t)
{
    if (!t)
        return;
    for (int i = 0; i < 2; i++)
        if (t->cfg[i])
            nng_tls_config_free(t->cfg[i]);
    for (int i = 0; i < P_COUNT; i++)
        bd_pem_free(t->pem[i]);
    explicit_bzero(t->gkey, sizeof t->gkey);
    free(t);
}
