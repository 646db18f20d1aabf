/* remote.c: a muscle on another machine (`bodhi muscle --connect HOST:PORT --credential
 * FILE`; see muscle.h). Every connection it makes is mutual TLS with the run's credential
 * (wire/tls.h): it proves itself with the run's client certificate and talks only to a
 * conductor and brains whose certificate the run's CA signed. It asks the conductor for a
 * slot (JOIN); the answer carries the effective run file, the phase, its muscle id and
 * restart count, and the ports the brains listen on (on HOST too). It runs that phase as
 * any muscle does, then asks again for the next phase with remote muscles, until the
 * conductor says the run is done or is gone. It loads no environment plugin the run file
 * names unless started with --allow-plugins, and then only a file that is on this host. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "common/util.h"
#include "muscle/muscle.h"
#include "wire/events.h"
#include "wire/wire.h"

/* HOST:PORT, tcp://HOST:PORT or tls+tcp://HOST:PORT (all the same door, which is TLS):
 * tls+tcp://HOST:PORT into tls (heap) and HOST (brackets kept for IPv6) into host. */
static int bd_remote_url(const char *url, char **tls, char *host, size_t len)
{
    const char *h = url;
    if (strncmp(url, "tls+tcp://", 10) == 0)
        h = url + 10;
    else if (strncmp(url, "tcp://", 6) == 0)
        h = url + 6;
    const char *colon = strrchr(h, ':');
    char *end = NULL;
    long port = colon ? strtol(colon + 1, &end, 10) : -1;
    if (!colon || colon == h || (size_t)(colon - h) >= len || !end || *end || port < 1 || port > 65535
        || strstr(h, "://"))
        return bd_seterr(BD_EINVAL, "--connect %s: expected HOST:PORT (tcp:// or tls+tcp:// may come first)", url);
    snprintf(host, len, "%.*s", (int)(colon - h), h);
    if (!(*tls = bd_strfmt("tls+tcp://%s", h)))
        return bd_seterr(BD_ENOMEM, "out of memory");
    return BD_OK;
}

#define BD_REMOTE_PROBE_MS 5000 /* a TLS handshake takes milliseconds; a stalled one is given up */

static void bd_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- plugins: a run file may name code; a remote muscle runs none unless allowed ------ */

static const bd_registry *bd_remote_base;
static int bd_remote_plugins_ok, bd_remote_refused;

/* env_load for a remote muscle: built-ins always; a plugin only with --allow-plugins and
 * when its file is a regular file on this host; a Python env (python:...) only with
 * --allow-plugins, its module imported from this host's folder of that name. */
static int bd_remote_env_load(const char *name, const bd_env_desc **out)
{
    *out = bd_env_find(name);
    if (*out)
        return BD_OK;
    const char *colon = strrchr(name, ':');
    if (!colon) /* no plugin: the loader says what is unknown */
        return bd_remote_base->env_load(name, out);
    if (!bd_remote_plugins_ok) {
        bd_remote_refused = 1;
        return bd_seterr(BD_EINVAL, "the run file names the environment plugin '%s', and loading a plugin runs its "
                                    "code: this muscle loads none (start it with --allow-plugins to load plugins "
                                    "that are on this host)", name);
    }
    if (strncmp(name, "python:", 7) == 0) /* a Python env (env/python/pyenv.h): imported from here */
        return bd_remote_base->env_load(name, out);
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%.*s", (int)(colon - name), name);
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
        bd_remote_refused = 1;
        return bd_seterr(BD_EINVAL, "the run file names the environment plugin '%s', which is not a file on this "
                                    "host (%s)", name, errno ? strerror(errno) : "not a regular file");
    }
    return bd_remote_base->env_load(name, out);
}

/* ---- the connection --------------------------------------------------------------- */

/* One probe: a blocking dial on a thread of its own, so that its caller can give up. */
typedef struct {
    nng_socket s;
    nng_dialer d;
    int rv, done;
    pthread_mutex_t mu;
    pthread_cond_t cv;
} bd_probe;

static void *bd_probe_dial(void *arg)
{
    bd_probe *p = arg;
    int rv = nng_dialer_start(p->d, 0);
    pthread_mutex_lock(&p->mu);
    p->rv = rv;
    p->done = 1;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* One TLS handshake with the conductor, waiting up to ms: 0 when both sides accepted the
 * other's certificate, NNG_ETIMEDOUT when the handshake did not end in time (a peer that
 * takes the connection and says nothing: a stopped conductor, a stranger on the port), else
 * NNG's error (bd_remote_refused_by says whether it means a refusal). */
static int bd_remote_probe(const char *url, bd_tls *tls, int ms)
{
    bd_probe p = {.rv = NNG_ETIMEDOUT, .mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    int rv = nng_req0_open(&p.s);
    if (rv != 0)
        return rv;
    nng_tls_config *cfg;
    if (bd_tls_config(tls, 0, &cfg) != BD_OK) {
        nng_close(p.s);
        return NNG_ENOMEM;
    }
    rv = nng_dialer_create(&p.d, p.s, url);
    if (rv == 0)
        rv = nng_dialer_set_ptr(p.d, NNG_OPT_TLS_CONFIG, cfg);
    pthread_t th;
    if (rv == 0 && (rv = pthread_create(&th, NULL, bd_probe_dial, &p)) != 0)
        rv = NNG_ENOMEM;
    if (rv != 0) {
        nng_close(p.s);
        return rv;
    }
    const struct timespec until = bd_timespec_after(CLOCK_REALTIME, ms); /* the cond's default clock */
    pthread_mutex_lock(&p.mu);
    while (!p.done && pthread_cond_timedwait(&p.cv, &p.mu, &until) == 0)
        ;
    int done = p.done;
    pthread_mutex_unlock(&p.mu);
    nng_close(p.s); /* ends a dial still under way */
    pthread_join(th, NULL);
    return done ? p.rv : NNG_ETIMEDOUT;
}

/* 1 when a probe's error means that the TLS handshake failed (the conductor refused the
 * credential, or its certificate is not of the credential's run), not that nothing answers. */
static int bd_remote_refused_by(int rv)
{
    return rv == NNG_EPEERAUTH || rv == NNG_ECRYPTO || rv == NNG_ECONNSHUT || rv == NNG_ECONNRESET
           || rv == NNG_ECLOSED || rv == NNG_EPROTO;
}

/* Runs the phase the conductor's answer names. */
static int bd_remote_phase(const char *url, const char *host, const cJSON *a, const char *device,
                           const bd_registry *reg, bd_tls *tls)
{
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(a, "run_file");
    const cJSON *phase = cJSON_GetObjectItemCaseSensitive(a, "phase");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(a, "id");
    const cJSON *restart = cJSON_GetObjectItemCaseSensitive(a, "restart");
    const cJSON *ports = cJSON_GetObjectItemCaseSensitive(a, "ports");
    const cJSON *epoch = cJSON_GetObjectItemCaseSensitive(a, "epoch");
    const cJSON *grant = cJSON_GetObjectItemCaseSensitive(a, "grant");
    uint8_t mac[BD_TLS_GRANT_SIZE];
    uint32_t number = 0;
    const int granted = bd_events_grant_number(epoch, &number) && cJSON_IsString(grant)
                        && bd_unhex(grant->valuestring, mac, sizeof mac);
    if (!cJSON_IsString(text) || !cJSON_IsString(phase) || !cJSON_IsNumber(id) || !cJSON_IsNumber(restart)
        || !cJSON_IsArray(ports) || cJSON_GetArraySize(ports) < 1) {
        fprintf(stderr, "bodhi muscle: the conductor at %s answered JOIN with something else\n", url);
        return 1;
    }
    if (!granted) {
        fprintf(stderr, "bodhi muscle: the conductor at %s gave a slot without a grant the brains take "
                        "(a whole number and 32 hex digits)\n", url);
        return 1;
    }
    int n = cJSON_GetArraySize(ports);
    char **urls = calloc((size_t)n + 1, sizeof *urls);
    int ok = urls != NULL;
    for (int k = 0; ok && k < n; k++) {
        const cJSON *p = cJSON_GetArrayItem(ports, k);
        ok = cJSON_IsNumber(p) && p->valueint > 0 && p->valueint < 65536
             && (urls[k] = bd_strfmt("tls+tcp://%s:%d", host, p->valueint)) != NULL;
    }
    int code = 1;
    if (ok) {
        fprintf(stderr, "bodhi muscle: joined phase %s as muscle %d\n", phase->valuestring, id->valueint);
        bd_muscle_opts o = {.run_file = text->valuestring, .phase = phase->valuestring, .id = id->valueint,
                            .restart = restart->valueint, .device = device, .reg = reg, .control_url = url,
                            .brain_urls = urls, .tls = tls, .epoch = number};
        memcpy(o.grant, mac, sizeof mac);
        code = bd_muscle_main(&o);
        if (code != 0 && bd_remote_refused)
            code = 2; /* refused the run file's plugin: bad input, not a failure of the run */
    } else {
        fprintf(stderr, "bodhi muscle: the conductor at %s sent bad brain ports\n", url);
    }
    for (int k = 0; urls && k < n; k++)
        free(urls[k]);
    free(urls);
    return code;
}

/* how long a remote muscle waits for a place before it says why it waits */
#define BD_REMOTE_QUIET_S 3.0
/* Between asks for a place: 500 ms at first (a run's next phase is seconds away), doubling
 * once the wait is longer than BD_REMOTE_QUIET_S, up to BD_REMOTE_ASK_MAX_MS. Every ask opens
 * and closes two connections, and any close can meet NNG's hang (wire.h), which stops this
 * muscle: a minute's wait at 500 ms was some 240 of them, and the muscle of a test that
 * waited out an address's minute stopped so in 2 runs of 4 here. */
#define BD_REMOTE_ASK_MS 500
#define BD_REMOTE_ASK_MAX_MS 4000

int bd_muscle_remote(const bd_remote_opts *ro, const bd_registry *reg)
{
    char host[256], *url = NULL;
    if (bd_remote_url(ro->url, &url, host, sizeof host) != BD_OK) {
        fprintf(stderr, "bodhi muscle: %s\n", bd_lasterr());
        return 2;
    }
    bd_tls *tls = NULL;
    int rc = ro->credential ? bd_tls_load(ro->credential, &tls)
                            : bd_seterr(BD_EINVAL, "--credential FILE is required: the run's RUN_DIR/remote.key, or "
                                                   "the file given to bodhi run --credential");
    if (rc == BD_OK && !(bd_tls_parts(tls) & BD_TLS_CLIENT))
        rc = bd_seterr(BD_EINVAL, "%s holds no client certificate and key", ro->credential);
    if (rc != BD_OK) {
        fprintf(stderr, "bodhi muscle: %s\n", bd_lasterr());
        bd_tls_destroy(tls);
        free(url);
        return 2;
    }
    /* the run file's env names go through a loader that refuses plugins unless allowed */
    static bd_registry guarded;
    guarded = *reg;
    guarded.env_load = bd_remote_env_load;
    bd_remote_base = reg;
    bd_remote_plugins_ok = ro->allow_plugins;
    bd_remote_refused = 0;
    int phases = 0, code = 1;
    double since = bd_now();
    char why[256] = "", said[256] = ""; /* the conductor's last reason to wait; the last one printed */
    int pause_ms = BD_REMOTE_ASK_MS;
    char me[300];
    char hostname[256] = "?";
    gethostname(hostname, sizeof hostname - 1);
    snprintf(me, sizeof me, "%s", hostname);
    for (;;) {
        if (bd_nng_wedged()) { /* every later connection's close would hang: wire.h */
            fprintf(stderr, "bodhi muscle: the NNG library hung closing a connection; this muscle stops here\n");
            break;
        }
        int rv = bd_remote_probe(url, tls, BD_REMOTE_PROBE_MS);
        if (rv != 0 && bd_remote_refused_by(rv)) { /* a refusal is the same twice: look again */
            bd_sleep_ms(500);
            rv = bd_remote_probe(url, tls, BD_REMOTE_PROBE_MS);
        }
        if (rv != 0 && bd_remote_refused_by(rv)) {
            fprintf(stderr, "bodhi muscle: the TLS handshake with %s failed (%s): the conductor there refuses the "
                            "credential %s, or it is not the run that credential belongs to\n",
                    url, nng_strerror(rv), ro->credential);
            code = phases > 0 ? 0 : 2;
            break;
        }
        bd_events *ev = NULL;
        cJSON *answer = NULL;
        rc = rv == 0 ? bd_events_dial_tls(url, BD_SENDER_JOINING, tls, &ev) : bd_nng_err(rv, url);
        if (rc == BD_OK) {
            bd_events_set_timeout(ev, 5000);
            cJSON *join = cJSON_CreateObject();
            cJSON_AddStringToObject(join, "event", "join");
            cJSON_AddNumberToObject(join, "pid", (double)getpid());
            cJSON_AddStringToObject(join, "host", me);
            rc = bd_events_request(ev, BD_MSG_JOIN, join, &answer);
            cJSON_Delete(join);
            bd_events_close(ev);
        }
        if (rc != BD_OK) {
            if (phases > 0) { /* it ran phases with us and is gone: the run is over */
                fprintf(stderr, "bodhi muscle: the conductor at %s is gone; the run is over\n", url);
                code = 0;
                break;
            }
            if (bd_now() - since > ro->wait_s) {
                fprintf(stderr, "bodhi muscle: no conductor answers at %s after %.0f s\n", url, ro->wait_s);
                break;
            }
            bd_sleep_ms(1000);
            continue;
        }
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(answer, "done"))) {
            cJSON_Delete(answer);
            fprintf(stderr, "bodhi muscle: the run is done\n");
            code = 0;
            break;
        }
        if (!answer || cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(answer, "wait"))) {
            /* the conductor's reason (the peer's words: made printable), said when it changes
             * once the wait is longer than the few seconds between a run's phases */
            const cJSON *w = cJSON_GetObjectItemCaseSensitive(answer, "why");
            snprintf(why, sizeof why, "%s",
                     cJSON_IsString(w) ? w->valuestring : "the conductor gave no reason (an older bodhi?)");
            bd_text_printable(why);
            if (bd_now() - since > BD_REMOTE_QUIET_S && strcmp(why, said) != 0) {
                fprintf(stderr, "bodhi muscle: waiting for a place: %s\n", why);
                snprintf(said, sizeof said, "%s", why);
            }
            cJSON_Delete(answer);
            if (bd_now() - since > ro->wait_s) {
                fprintf(stderr, "bodhi muscle: the conductor at %s had no place for this muscle for %.0f s (%s)\n",
                        url, ro->wait_s, why);
                break;
            }
            bd_sleep_ms(pause_ms);
            if (bd_now() - since > BD_REMOTE_QUIET_S && pause_ms < BD_REMOTE_ASK_MAX_MS)
                pause_ms *= 2;
            continue;
        }
        code = bd_remote_phase(url, host, answer, ro->device, &guarded, tls);
        cJSON_Delete(answer);
        if (code != 0)
            break;
        phases++;
        since = bd_now();
        pause_ms = BD_REMOTE_ASK_MS;
        why[0] = said[0] = '\0';
    }
    bd_tls_destroy(tls);
    free(url);
    return code;
}
