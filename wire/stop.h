/* stop.h: why a phase ended, as a code with its words (docs/run-file.md, "Why a phase
 * ended"). A brain says why its agent is done in its round report's "done" text,
 * "<words>: <detail>" (brain/brain.c); the conductor reads the code from it once, decides
 * on codes, and writes the words into log.jsonl and summary.json's "ended" and the name
 * into summary.json's "reason". One table holds both. */
#ifndef BODHI_WIRE_STOP_H
#define BODHI_WIRE_STOP_H

typedef enum {
    BD_STOP_NONE = 0,    /* the phase goes on */
    BD_STOP_OBJECTIVE,   /* the objective's mean return was reached */
    BD_STOP_EPISODES,    /* phase_config.episodes were done */
    BD_STOP_STEP_CAP,    /* the agent-step cap came first */
    BD_STOP_DIVERGED,    /* learning diverged (the run fails) */
    BD_STOP_DONE,        /* every process ended with no condition said */
    BD_STOP_FAILED,      /* a process failed */
    BD_STOP_INTERRUPTED, /* SIGINT, SIGTERM or SIGHUP */
    BD_STOP_STOPPED,     /* `bodhi stop` asked for it */
    BD_STOP_OTHER,       /* a "done" text whose words are none of the above */
    BD_STOP_COUNT
} bd_stop;

/* The words an "ended" text starts with ("episodes done"); "" for BD_STOP_NONE. */
const char *bd_stop_words(bd_stop s);

/* The name for programs (summary.json's "reason": "episodes_done"). */
const char *bd_stop_name(bd_stop s);

/* The code a brain's "done" text gives: its words, alone or followed by ':'.
 * BD_STOP_NONE for NULL (nothing said), BD_STOP_OTHER for words the table does not hold
 * or that are the conductor's own (a brain does not say "interrupted"). */
bd_stop bd_stop_parse(const char *text);

/* The code of any text that starts with a code's words (alone or followed by ':'), the
 * conductor's own included: its answers' "why" ("stopped: by bodhi stop"). BD_STOP_NONE
 * for NULL or "", BD_STOP_OTHER for words the table does not hold. */
bd_stop bd_stop_read(const char *text);

/* How much a code says about the run, for choosing among several (the ranks' agreement,
 * brain/ranks.h): 3 for a process interrupted or failed, 2 for diverged, 1 for the
 * others, 0 for BD_STOP_NONE. */
int bd_stop_weight(bd_stop s);

#endif
