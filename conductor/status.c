/* status.c: `bodhi status RUN_DIR [--json]` (see conductor.h): a live run's conductor
 * answers on its control socket; a finished one left summary.json. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "common/util.h"
#include "conductor/conductor.h"
#include "conductor/rundir.h"
#include "conductor/run.h" /* bd_num */
#include "memory/memory.h"
#include "wire/addr.h"
#include "wire/wire.h"

static const char *bd_str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : "";
}

/* A live conductor's answer (its JSON text) to a request of type with payload (len bytes)
 * from sender, or NULL when none answers. */
static char *bd_control_ask(const char *run_dir, bd_msg_type type, uint32_t sender, const char *payload, size_t len)
{
    char *sockdir = NULL, *url = NULL, *text = NULL;
    if (bd_sockdir_find(run_dir, &sockdir) != BD_OK || !(url = bd_url_control(sockdir))) {
        free(sockdir);
        return NULL;
    }
    nng_socket s;
    if (nng_req0_open(&s) == 0) {
        /* a status answers at once; a steering request is checked against the run file's
         * rules first, and a busy conductor (a loaded machine) may take longer: the
         * client must not report failure for a request the conductor then takes */
        nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, type == BD_MSG_STEER ? 15000 : 2000);
        nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, 1000);
        nng_socket_set_size(s, NNG_OPT_RECVMAXSZ, (size_t)16 << 20); /* a status names every process */
        nng_msg *m;
        uint8_t *p;
        if (nng_dial(s, url, NULL, 0) == 0 && bd_wire_msg_alloc(&m, type, sender, 1, len, &p) == BD_OK) {
            if (len)
                memcpy(p, payload, len);
            if (nng_sendmsg(s, m, 0) != 0)
                nng_msg_free(m);
            else if (nng_recvmsg(s, &m, 0) == 0) {
                bd_wire_header h;
                const uint8_t *answer;
                if (bd_wire_msg_decode(m, type, &h, &answer) == BD_OK)
                    text = bd_strfmt("%.*s", (int)h.payload_len, (const char *)answer);
                nng_msg_free(m);
            }
        }
        nng_close(s);
    }
    free(url);
    free(sockdir);
    return text;
}

/* The live conductor's status JSON, or NULL when none answers. */
static char *bd_status_ask(const char *run_dir)
{
    return bd_control_ask(run_dir, BD_MSG_STATUS, 0, NULL, 0);
}

/* run_dir names a directory: 0, or 2 with the problem said as `bodhi cmd`'s. */
static int bd_run_dir_ok(const char *cmd, const char *run_dir)
{
    struct stat st;
    int e = stat(run_dir, &st) == 0 ? 0 : errno;
    if (e || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "bodhi %s: %s: %s\n", cmd, run_dir,
                e == ENOENT ? "no such directory" : e ? strerror(e) : "not a directory (give a run directory)");
        return 2;
    }
    return 0;
}

int bd_conductor_steer(const char *cmd, const char *run_dir, const char *request)
{
    int rc = bd_run_dir_ok(cmd, run_dir);
    if (rc)
        return rc;
    char *text = bd_control_ask(run_dir, BD_MSG_STEER, BD_SENDER_CONTROL, request, strlen(request));
    if (!text) {
        char *sum = bd_strfmt("%s/summary.json", run_dir);
        struct stat st;
        const int over = sum && stat(sum, &st) == 0;
        free(sum);
        fprintf(stderr, "bodhi %s: %s: %s\n", cmd, run_dir,
                over ? "the run is over (its summary.json is written): nothing to change"
                     : "no running conductor answers (is the run still going? bodhi status says)");
        return 1;
    }
    cJSON *a = cJSON_Parse(text);
    const cJSON *ok = cJSON_GetObjectItemCaseSensitive(a, "ok");
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(a, "error");
    if (cJSON_IsTrue(ok)) {
        rc = 0;
        /* the brains hear it with the answer to the round they are collecting */
        const double round = bd_num(a, "round", -1) + 1;
        char when[64] = "its first round";
        if (round > 0)
            snprintf(when, sizeof when, "round %.0f", round);
        if (strcmp(cmd, "stop") == 0)
            printf("phase %s ends with %s\n", bd_str(a, "phase"), when);
        else
            printf("phase %s: the brains take it before the update after %s (log.jsonl's \"set\" event says "
                   "which)\n", bd_str(a, "phase"), when);
    } else {
        rc = cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(a, "code")) && bd_num(a, "code", 2) == 1 ? 1 : 2;
        fprintf(stderr, "bodhi %s: %s\n", cmd, cJSON_IsString(err) ? err->valuestring : "the conductor refused it");
    }
    cJSON_Delete(a);
    free(text);
    return rc;
}

/* A live run's status as a table. */
static void bd_status_table(const cJSON *s)
{
    char rank[64] = "";
    if (bd_num(s, "world_size", 1) > 1)
        snprintf(rank, sizeof rank, " (rank %.0f of %.0f)", bd_num(s, "rank", 0), bd_num(s, "world_size", 1));
    printf("run %s%s: %s, phase %s, %.0f s, conductor pid %.0f\n", bd_str(s, "uid"), rank, bd_str(s, "status"),
           bd_str(s, "phase"), bd_num(s, "wall_s", 0), bd_num(s, "pid", 0));
    printf("%-8s %-16s %8s %-6s %8s %12s %8s\n", "role", "name", "pid", "alive", "restarts", "last beat", "round");
    const cJSON *p;
    cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(s, "processes")) {
        char beat[32] = "-";
        if (cJSON_GetObjectItemCaseSensitive(p, "last_beat_s"))
            snprintf(beat, sizeof beat, "%.1f s ago", bd_num(p, "last_beat_s", 0));
        printf("%-8s %-16s %8.0f %-6s %8.0f %12s %8.0f%s\n", bd_str(p, "role"), bd_str(p, "name"),
               bd_num(p, "pid", 0), cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "alive")) ? "yes" : "no",
               bd_num(p, "restarts", 0), beat, bd_num(p, "round", 0),
               cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "remote")) ? "  (remote)" : "");
    }
    const cJSON *a;
    cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(s, "agents")) {
        printf("agent %-16s steps %-12.0f episodes %-8.0f", bd_str(a, "agent"), bd_num(a, "steps", 0),
               bd_num(a, "episodes", 0));
        if (cJSON_GetObjectItemCaseSensitive(a, "mean_return"))
            printf(" mean_return %.1f", bd_num(a, "mean_return", 0));
        printf("\n");
    }
}

/* A finished run's summary as a table. */
static void bd_summary_table(const cJSON *s)
{
    const cJSON *seed = cJSON_GetObjectItemCaseSensitive(s, "seed");
    char *seedtext = seed ? cJSON_PrintUnformatted(seed) : NULL;
    printf("run %s (seed %s): %s in %.1f s\n", bd_str(s, "uid"), seedtext ? seedtext : "?", bd_str(s, "status"),
           bd_num(s, "wall_s", 0));
    free(seedtext);
    if (*bd_str(s, "error"))
        printf("error: %s\n", bd_str(s, "error"));
    const cJSON *ph;
    cJSON_ArrayForEach(ph, cJSON_GetObjectItemCaseSensitive(s, "phases")) {
        printf("phase %s (%s): ended %s, %.1f s", bd_str(ph, "name"), bd_str(ph, "mode"), bd_str(ph, "ended"),
               bd_num(ph, "wall_s", 0));
        if (bd_num(ph, "restarts", 0) > 0)
            printf(", %.0f muscle restart(s)", bd_num(ph, "restarts", 0));
        printf("\n");
        const cJSON *a;
        cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(ph, "agents"))
            printf("  agent %-16s episodes %-8.0f mean_return %-10.1f max_return %-10.1f steps %.0f\n",
                   bd_str(a, "name"), bd_num(a, "episodes", 0), bd_num(a, "mean_return", 0),
                   bd_num(a, "max_return", 0), bd_num(a, "steps", 0));
    }
}

int bd_conductor_status(const char *run_dir, int json)
{
    if (bd_run_dir_ok("status", run_dir))
        return 2;
    char *text = bd_status_ask(run_dir);
    int live = text != NULL;
    bd_run_end end = {0};
    if (!text) {
        bd_run_end_read(run_dir, &end);
        char *sum = bd_strfmt("%s/summary.json", run_dir);
        if (end.summary <= 0 || !sum || bd_read_file(sum, &text, NULL) != BD_OK)
            text = NULL;
        free(sum);
    }
    if (!text) { /* summary.json damaged, or not written (a full disk): said, exit 1 */
        char *lead = bd_strfmt("bodhi status: %s", run_dir);
        const int said = bd_run_end_say(&end, lead ? lead : run_dir, stderr);
        free(lead);
        if (said)
            return 1;
    }
    if (!text) { /* a run that is gone without its summary, or no run at all */
        int owner = 0;
        char *log = bd_strfmt("%s/log.jsonl", run_dir);
        const int was_run = log && bd_exists(log);
        free(log);
        const int held = bd_rundir_live(run_dir, &owner);
        if (held)
            fprintf(stderr, "bodhi status: %s: a run holds the folder (pid %d) but its conductor does not answer "
                            "(still starting, or hung); there is no summary.json yet\n", run_dir, owner);
        else if (was_run)
            fprintf(stderr, "bodhi status: %s: the run was killed or crashed: no conductor holds it and it left no "
                            "summary.json; `bodhi replay %s` repairs and reads what it recorded\n", run_dir, run_dir);
        else
            fprintf(stderr, "bodhi status: %s: not a run's folder (no log.jsonl, no summary.json, no run holds "
                            "it)\n", run_dir);
        return was_run || held ? 1 : 2;
    }
    cJSON *s = json ? NULL : cJSON_Parse(text);
    if (json || !s)
        printf("%s\n", text);
    else if (live)
        bd_status_table(s);
    else
        bd_summary_table(s);
    cJSON_Delete(s);
    free(text);
    return 0;
}
