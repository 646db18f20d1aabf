/* remote.c: a muscle on another machine (`bodhi muscle --connect tcp://HOST:PORT`; see
 * muscle.h). It asks the conductor for a slot (JOIN); the answer carries the effective run
 * file, the phase, its muscle id and restart count, and the ports the brains listen on
 * (on HOST too). It runs that phase as any muscle does, then asks again for the next phase
 * with remote muscles, until the conductor says the run is done or is gone. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"
#include "muscle/muscle.h"
#include "wire/events.h"




/* HOST of tcp://HOST:PORT (brackets kept for IPv6) into host; BD_EINVAL when url is not one. */
static int bd_tcp_host(const char *url, char *host, size_t len)
{
    if (strncmp(url, "tcp://", 6) != 0)
        return bd_seterr(BD_EINVAL, "--connect %s: expected tcp://HOST:PORT", url);
    const char *h = url + 6, *colon = strrchr(h, ':');
    if (!colon || colon == h || (size_t)(colon - h) >= len || !colon[1])
        return bd_seterr(BD_EINVAL, "--connect %s: expected tcp://HOST:PORT", url);
    snprintf(host, len, "%.*s", (int)(colon - h), h);
    return BD_OK;
}

static void bd_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Runs the phase the conductor's answer names. */
static int bd_remote_phase(const char *url, const char *host, const cJSON *a, const char *device,
                           const bd_registry *reg)
{
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(a, "run_file");
    const cJSON *phase = cJSON_GetObjectItemCaseSensitive(a, "phase");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(a, "id");
    const cJSON *restart = cJSON_GetObjectItemCaseSensitive(a, "restart");
    const cJSON *ports = cJSON_GetObjectItemCaseSensitive(a, "ports");
    if (!cJSON_IsString(text) || !cJSON_IsString(phase) || !cJSON_IsNumber(id) || !cJSON_IsNumber(restart)
        || !cJSON_IsArray(ports) || cJSON_GetArraySize(ports) < 1) {
        fprintf(stderr, "bodhi muscle: the conductor at %s answered JOIN with something else\n", url);
        return 1;
    }
    int n = cJSON_GetArraySize(ports);
    char **urls = calloc((size_t)n + 1, sizeof *urls);
    int ok = urls != NULL;
    for (int k = 0; ok && k < n; k++) {
        const cJSON *p = cJSON_GetArrayItem(ports, k);
        ok = cJSON_IsNumber(p) && p->valueint > 0 && p->valueint < 65536
             && (urls[k] = bd_strfmt("tcp://%s:%d", host, p->valueint)) != NULL;
    }
    int code = 1;
    if (ok) {
        fprintf(stderr, "bodhi muscle: joined phase %s as muscle %d\n", phase->valuestring, id->valueint);
        bd_muscle_opts o = {.run_file = text->valuestring, .phase = phase->valuestring, .id = id->valueint,
                            .restart = restart->valueint, .device = device, .reg = reg, .control_url = url,
                            .brain_urls = urls};
        code = bd_muscle_main(&o);
    } else {
        fprintf(stderr, "bodhi muscle: the conductor at %s sent bad brain ports\n", url);
    }
    for (int k = 0; urls && k < n; k++)
        free(urls[k]);
    free(urls);
    return code;
}

int bd_muscle_remote(const char *url, const char *device, double wait_s, const bd_registry *reg)
{
    char host[256];
    if (bd_tcp_host(url, host, sizeof host) != BD_OK) {
        fprintf(stderr, "bodhi muscle: %s\n", bd_lasterr());
        return 2;
    }
    int phases = 0;
    double since = bd_now();
    char me[300];
    char hostname[256] = "?";
    gethostname(hostname, sizeof hostname - 1);
    snprintf(me, sizeof me, "%s", hostname);
    for (;;) {
        bd_events *ev = NULL;
        cJSON *answer = NULL;
        int rc = bd_events_dial(url, BD_SENDER_JOINING, &ev);
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
                return 0;
            }
            if (bd_now() - since > wait_s) {
                fprintf(stderr, "bodhi muscle: no conductor answers at %s after %.0f s\n", url, wait_s);
                return 1;
            }
            bd_sleep_ms(1000);
            continue;
        }
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(answer, "done"))) {
            cJSON_Delete(answer);
            fprintf(stderr, "bodhi muscle: the run is done\n");
            return 0;
        }
        if (!answer || cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(answer, "wait"))) {
            cJSON_Delete(answer);
            if (bd_now() - since > wait_s) {
                fprintf(stderr, "bodhi muscle: the conductor at %s had no place for this muscle for %.0f s\n",
                        url, wait_s);
                return 1;
            }
            bd_sleep_ms(500);
            continue;
        }
        int code = bd_remote_phase(url, host, answer, device, reg);
        cJSON_Delete(answer);
        if (code != 0)
            return code;
        phases++;
        since = bd_now();
    }
}
