/* steer.c: `bodhi set RUN_DIR AGENT.KEY=VALUE...` and `bodhi stop RUN_DIR [--phase]`: a
 * live run's conductor takes them on its control socket (conductor/steer.c). */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <cjson/cJSON.h>

#include "brain/steer.h"
#include "cli/cli.h"
#include "conductor/conductor.h"

static int bd_cli_send(const char *cmd, const char *dir, cJSON *req)
{
    char *text = req ? cJSON_PrintUnformatted(req) : NULL;
    cJSON_Delete(req);
    if (!text) {
        fprintf(stderr, "bodhi %s: out of memory\n", cmd);
        return 1;
    }
    int rc = bd_conductor_steer(cmd, dir, text);
    free(text);
    return rc;
}

int bd_cmd_set(int argc, char **argv)
{
    const char *pos[1 + BD_STEER_MAX_ITEMS] = {NULL};
    int rc = bd_parse_opts("set", argc, argv, NULL, pos, 1 + BD_STEER_MAX_ITEMS, 2);
    if (rc)
        return BD_OPTS_EXIT(rc);
    cJSON *req = cJSON_CreateObject();
    cJSON *list = cJSON_AddArrayToObject(req, "set");
    for (int i = 1; i <= BD_STEER_MAX_ITEMS && pos[i]; i++) {
        char agent[BD_STEER_MAX_TEXT], key[BD_STEER_MAX_TEXT];
        const char *value;
        if (bd_steer_split(pos[i], agent, key, &value) != BD_OK) {
            fprintf(stderr, "bodhi set: %s\n", bd_lasterr());
            cJSON_Delete(req);
            return 2;
        }
        cJSON_AddItemToArray(list, cJSON_CreateString(pos[i]));
    }
    return bd_cli_send("set", pos[0], req);
}

int bd_cmd_stop(int argc, char **argv)
{
    const char *dir = NULL, *phase = NULL;
    bd_opt spec[] = {{"phase", &phase}, {0}};
    int rc = bd_parse_opts("stop", argc, argv, spec, &dir, 1, 1);
    if (rc)
        return BD_OPTS_EXIT(rc);
    cJSON *req = cJSON_CreateObject();
    cJSON_AddStringToObject(req, "stop", phase ? "phase" : "run");
    return bd_cli_send("stop", dir, req);
}
