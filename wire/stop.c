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

bd_stop bd_stop_parse(const char *text)
{
    if (!text)
        return BD_STOP_NONE;
    /* a brain says these four; the others are the conductor's own */
    static const bd_stop said[] = {BD_STOP_OBJECTIVE, BD_STOP_EPISODES, BD_STOP_STEP_CAP, BD_STOP_DIVERGED};
    for (size_t i = 0; i < sizeof said / sizeof said[0]; i++) {
        size_t n = strlen(bd_stops[said[i]].words);
        if (strncmp(text, bd_stops[said[i]].words, n) == 0 && (text[n] == '\0' || text[n] == ':'))
            return said[i];
    }
    return BD_STOP_OTHER;
}
