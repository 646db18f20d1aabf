/* stop.c: why a phase ended, codes and words (see stop.h). */
#include "wire/stop.h"

#include <string.h>

static const struct {
    const char *words, *name;
} bd_stops[BD_STOP_COUNT] = {
    [BD_STOP_NONE] = {"", ""},
    [BD_STOP_OBJECTIVE] = {"objective reached", "objective_reached"},
    [BD_STOP_EPISODES] = {"episodes done", "episodes_done"},
    [BD_STOP_STEP_CAP] = {"step cap", "step_cap"},
    [BD_STOP_DIVERGED] = {"diverged", "diverged"},
    [BD_STOP_DONE] = {"done", "done"},
    [BD_STOP_FAILED] = {"failed", "failed"},
    [BD_STOP_INTERRUPTED] = {"interrupted", "interrupted"},
    [BD_STOP_STOPPED] = {"stopped", "stopped"},
    [BD_STOP_OTHER] = {"other", "other"},
};

const char *bd_stop_words(bd_stop s)
{
    return s >= 0 && s < BD_STOP_COUNT ? bd_stops[s].words : bd_stops[BD_STOP_OTHER].words;
}

const char *bd_stop_name(bd_stop s)
{
    return s >= 0 && s < BD_STOP_COUNT ? bd_stops[s].name : bd_stops[BD_STOP_OTHER].name;
}

bd_stop bd_stop_read(const char *text)
{
    if (!text || !*text)
        return BD_STOP_NONE;
    for (int k = BD_STOP_NONE + 1; k < BD_STOP_COUNT; k++) {
        size_t n = strlen(bd_stops[k].words);
        if (strncmp(text, bd_stops[k].words, n) == 0 && (text[n] == '\0' || text[n] == ':'))
            return (bd_stop)k;
    }
    return BD_STOP_OTHER;
}

bd_stop bd_stop_parse(const char *text)
{
    if (!text)
        return BD_STOP_NONE;
    /* a brain says these four; the others are the conductor's own */
    const bd_stop s = bd_stop_read(text);
    return s == BD_STOP_OBJECTIVE || s == BD_STOP_EPISODES || s == BD_STOP_STEP_CAP || s == BD_STOP_DIVERGED
               ? s
               : BD_STOP_OTHER;
}

int bd_stop_weight(bd_stop s)
{
    return s == BD_STOP_NONE ? 0 : s == BD_STOP_FAILED || s == BD_STOP_INTERRUPTED ? 3 : s == BD_STOP_DIVERGED ? 2 : 1;
}
