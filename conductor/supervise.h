/* supervise.h: the processes of a phase, as the conductor sees them: one brain per agent
 * and the muscles, started as children of this executable (posix_spawn of /proc/self/exe,
 * each in a process group of its own so that a terminal's Ctrl-C reaches only the
 * conductor), or joined from another machine. A slot is a brain or a muscle id; a muscle's
 * slot may be refilled (restarted) when its process dies or stops beating.
 * Everything here runs on the conductor's one thread. */
#ifndef BODHI_CONDUCTOR_SUPERVISE_H
#define BODHI_CONDUCTOR_SUPERVISE_H

#include <stdint.h>
#include <sys/types.h>

#include <cjson/cJSON.h>

typedef enum { BD_ROLE_BRAIN = 0, BD_ROLE_MUSCLE = 1 } bd_role;

typedef struct {
    bd_role role;
    int index;            /* agent index, or muscle id */
    char name[128];       /* agent name, or the muscle id as text */
    int remote;           /* a muscle on another machine: no pid of ours */
    pid_t pid;            /* the process now in the slot (0: none) */
    int alive;
    int restarts;         /* restarts of this slot in this phase */
    double started;       /* when its process started (bd_now) */
    double last_beat;     /* its last heartbeat (0: none yet) */
    long long round;      /* the round its heartbeats report */
    int status;           /* waitpid status of the last process that left the slot */
    char error[512];      /* the child's own last error message */
    char killed_for[128]; /* why the conductor killed it ("hung: ...") */
    char host[128];       /* a remote muscle's machine */
    double free_since;    /* a remote slot: when it was last left free (bd_now) */
    uint32_t pipe;        /* the control connection its process speaks on (0: none yet) */
    char addr[64];        /* a remote muscle's address as its JOIN's connection showed it */
    int greeted;          /* a remote muscle said "ready": it greeted every brain */
    uint32_t epoch;       /* a remote muscle's grant: its number (wire/tls.h, bd_tls_grant) */
    uint8_t grant[16];    /* ... and the grant, which its heartbeats and events show */
    uint32_t revoked;     /* the newest grant of this slot taken back (its muscle lost): the
                             brains hear it with every heartbeat's answer, and refuse it */
} bd_proc;

typedef struct {
    bd_proc *p;
    int n;
} bd_procs;

/* Slots for nagents brains and nmuscles muscles (the first `local` of them started here). */
int bd_procs_init(bd_procs *ps, int nagents, const char *const *agent_names, int nmuscles, int local);
void bd_procs_fini(bd_procs *ps);

/* The slot of a brain (agent index) or muscle (id), or NULL. */
bd_proc *bd_procs_brain(bd_procs *ps, int agent);
bd_proc *bd_procs_muscle(bd_procs *ps, int id);

/* The slot a pid runs in, or NULL. */
bd_proc *bd_procs_by_pid(bd_procs *ps, pid_t pid);

/* Starts the slot's process: `bodhi brain|muscle` with argv (NULL-terminated, after the
 * subcommand), in its own process group. BD_EIO naming the slot. */
int bd_proc_spawn(bd_proc *p, char *const argv[]);

/* Moves every slot's clocks (start, last heartbeat, free since) s seconds later: time the
 * conductor did not run (stopped, suspended) counts against no process. */
void bd_procs_excuse(bd_procs *ps, double s);

/* Processes alive. */
int bd_procs_alive(const bd_procs *ps);

/* Sends sig to every live local process but the brains, and brain_sig to the brains (0: nothing). */
void bd_procs_signal(bd_procs *ps, int sig, int brain_sig);

/* How the slot's last process ended, in words: "exited with code 1", "was killed by
 * signal 9 (Killed)", "hung: no heartbeat for 3.0 s", followed by ": <its own error>" when it sent one. */
void bd_proc_how(const bd_proc *p, char *buf, size_t len);

/* The process table as JSON (for `bodhi status`): role, name, pid, alive, restarts,
 * seconds since the last heartbeat, round, remote. */
cJSON *bd_procs_json(const bd_procs *ps, double now);

#endif
