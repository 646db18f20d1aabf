/* run.h: the conductor's state during `bodhi run`, shared by the files that run it (not
 * for other folders; conductor.h is the public face):
 *   conductor.c  the run and its phases from start to end, `bodhi check`
 *   children.c   supervision: spawning, reaping, restarting, deadlines, stalls
 *   rounds.c     the round barrier and the stop decision (stop reasons as codes)
 *   join.c       the remote muscles: the --listen door, JOIN, the squat list, the credential
 *   dispatch.c   the control socket: requests in, answers out, sender checks
 *   journal.c    log.jsonl, summary.json and the console lines
 * Everything here runs on the conductor's one thread. */
#ifndef BODHI_CONDUCTOR_RUN_H
#define BODHI_CONDUCTOR_RUN_H

#include <signal.h>
#include <stdint.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "brain/steer.h"
#include "common/tfevents.h"
#include "conductor/conductor.h"
#include "conductor/supervise.h"
#include "config/plan.h"
#include "config/runfile.h"
#include "wire/serve.h"
#include "wire/stop.h"
#include "wire/tls.h"

#define BD_STOP_GRACE_S 4.0    /* after SIGTERM, children get this long before SIGKILL */
#define BD_FIRST_BEAT_S 30.0   /* a process's first heartbeat may take this long at least */
#define BD_STALL_S 1.0         /* a 50 ms slice that took longer: the conductor was not running */
#define BD_JOIN_BEAT_S 10.0    /* a remote muscle beats this soon after its JOIN, or loses the slot */
#define BD_JOIN_READY_S 60.0   /* ... and greets every brain (its "ready") this soon */
#define BD_SQUAT_S 60.0        /* a JOIN that lost its slot so waits this long before another */

typedef struct {
    char name[128];
    cJSON *last_update;  /* latest round report */
    cJSON *result;       /* the "result" event */
    double last_print;
    const cJSON *printed; /* the report its last progress line showed */
    bd_request *held;    /* its report of the current round, until every brain reported */
    int ready;           /* said "ready" */
    int port;            /* its TCP port for remote muscles (0: none) */
    bd_tfevents *tb;     /* its TensorBoard scalars, RUN_DIR/tb/<phase>/<agent>/ (NULL: none yet) */
    int tb_failed;       /* they could not be written (said once; log.jsonl still has them) */
    bd_steer steer;      /* its params with this phase's `bodhi set` changes (brain/steer.h) */
    cJSON *steer_news;   /* changes its brain has not heard yet: {"KEY": "VALUE", ...} (NULL: none) */
    double greedy;       /* its last greedy_average evaluation's mean return ... */
    int has_greedy;      /* ... when it had one this phase */
} bd_agent_state;

typedef struct {
    const bd_run_opts *o;
    bd_runfile *rf;
    char *dir, *sockdir;
    FILE *log;
    bd_server *hub;      /* the control socket (ipc: the run's own processes) */
    bd_server *door;     /* the --listen door (mutual TLS: remote muscles only) */
    bd_server *from;     /* the server the request being handled came on */
    bd_tls *tls;         /* the run's credential (--listen) */
    struct { char addr[64]; int pid; double until; } squat[16]; /* JOINs that lost a slot unused */
    int nsquat;
    uint32_t grants; /* JOINs given a slot so far: the last grant's number (wire/tls.h) */
    bd_procs procs;
    bd_agent_state *agents;
    int nagents;
    bd_phase_plan *plan; /* the current phase's (`bodhi set` changes its caps) */
    const char *phase;
    cJSON *phases;       /* summary phases array */
    double t0;
    int failed;          /* the run failed */
    char fail_msg[1024];
    int stopping;        /* the phase is over: children are leaving */
    char ended[256];     /* why the phase ended: "<reason>: <detail> (<agent>)" */
    bd_stop ended_code;  /* ... as a code (BD_STOP_NONE: no agent's condition held) */
    char parent[32];
    char *run_yml;       /* the effective run file's text, for remote muscles */
    char run_digest[65]; /* its SHA-256, which children check run.yml against */
    char *brain_tcp;     /* tls+tcp://HOST:0, where brains listen for remote muscles */
    double join_by;      /* remote muscles must have joined by then (0: no wait) */
    int run_over;        /* every phase has ended: JOINs hear "done" */
    cJSON *startup;      /* its own start-up stamps (common/proc.h), logged once spawning is done */
    double exec_t;       /* when `bodhi run` was exec'd (CLOCK_MONOTONIC): start-up's zero */
    double last_slice;   /* when the supervision loop last looked at the deadlines */
    double stalled_s;    /* time the conductor did not run in this run (stopped, suspended) */
    int diverged;        /* a phase ended because an agent's learning diverged */
    int stop_asked;      /* `bodhi stop`: BD_STEER_STOP_PHASE or _RUN, for the next round's answer */
    int run_stopped;     /* `bodhi stop` (without --phase) ended a phase: no later phase runs */
    uint64_t refused;    /* events and beats from a connection that does not own their sender */
    char refused_why[256];
} bd_conductor;

/* The last signal seen (SIGINT, SIGTERM, SIGHUP; 0: none) and how many came, counting
 * those within 0.3 s of the first as one (bd_on_signal, conductor.c). */
extern volatile sig_atomic_t bd_signal_seen, bd_signals;

/* ---- journal.c ------------------------------------------------------------------------ */

/* Appends o to log.jsonl with its wall time "t" (nothing when the log is not open). */
void bd_log(bd_conductor *c, cJSON *o);

/* A "startup" event (common/proc.h) gets "since_run_s": each stamp in seconds since
 * `bodhi run` was exec'd, the start-up breakdown as a user reads it. */
void bd_startup_since(const bd_conductor *c, cJSON *o);

/* A new log event {"event": kind}, the caller's to log and delete. */
cJSON *bd_ev(const char *kind);
/* "rank" and "world_size" into o for one rank of many (summary.json, the status answer). */
void bd_journal_rank(cJSON *o);

/* A new event about slot p of the current phase: its phase, role and agent or muscle id. */
cJSON *bd_proc_ev(const bd_conductor *c, const char *kind, const bd_proc *p);

/* Marks the run failed with its message (the first failure's is kept). */
void bd_fail(bd_conductor *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* o[key] when a number, else def. */
double bd_num(const cJSON *o, const char *key, double def);

/* The metrics of agent a's update event o as TensorBoard scalars in
 * RUN_DIR/tb/<phase>/<agent>/ (the file opened at its first update); a write that fails is
 * said once on stderr and the run goes on (log.jsonl holds the same numbers). */
void bd_journal_tb(bd_conductor *c, bd_agent_state *a, const cJSON *o);

/* The agent's progress line on stderr, from its latest round report: at most one a second
 * unless force, never the same report twice, none when quiet. */
void bd_progress(bd_conductor *c, bd_agent_state *a, int force);

/* The current phase (c->plan) begins: its "phase" event (envs, worlds, muscles) and its
 * line on stderr. */
void bd_journal_phase(bd_conductor *c);

/* The current phase's processes are gone (sig: the signal seen, 0 none; wall: its
 * seconds): how it ended (bd_phase_outcome), its entry of summary.json's phases into
 * phase_out (ended, reason, wall_s, restarts, each agent's counts), each agent's last line
 * and the phase's on stderr, and the "phase_end" event. */
void bd_journal_phase_end(bd_conductor *c, int sig, double wall, cJSON *phase_out);

/* The run is over (result: 0 done, 1 failed, else interrupted): the "end" event with what
 * the doors rejected and refused, summary.json, and the run's last line on stderr. */
void bd_journal_end(bd_conductor *c, int result);

/* ---- children.c ----------------------------------------------------------------------- */

/* Starts the phase's brains and local muscles (remote slots wait for a JOIN); BD_OK or the
 * first error. */
int bd_start_phase(bd_conductor *c, const bd_phase_plan *p);

/* The supervision loop of the current phase, until none of its processes lives: serves
 * the control socket in 50 ms slices, reaps, excuses stalls, judges deadlines; on a signal
 * or a failure sends SIGTERM to every child, and SIGKILL after BD_STOP_GRACE_S or a second
 * signal. Returns the first signal seen (0: none). */
int bd_supervise(bd_conductor *c);

/* ---- join.c --------------------------------------------------------------------------- */

/* The remote muscles' credential (wire/tls.h), before the run directory is touched: the
 * --credential file when it exists (it must hold its CA's key), else a new CA with a
 * client certificate, written to the --credential file now or to RUN_DIR/remote.key by
 * bd_credential_write. BD_OK or an error to exit 2 with. */
int bd_credential_prepare(bd_conductor *c);

/* RUN_DIR/remote.key (mode 0600) when no --credential is given: the CA's certificate and
 * the client certificate with its key, not the CA's key. */
int bd_credential_write(bd_conductor *c);

/* Opens the --listen door (see join.c); BD_OK or the error. */
int bd_open_door(bd_conductor *c);

/* Checks that req came through the right door: JOIN and a remote slot's events and beats
 * only through --listen, nothing of a remote slot's on the control socket, no plain text
 * through TLS. Refuses (counts and drops) what does not; 1 when req may go on. */
int bd_door_checks(bd_conductor *c, bd_request *req);

/* A remote muscle asks for a slot: a free one of this phase once every brain listens (the
 * answer carries what the muscle needs), "wait" until then, "done" after the run. */
void bd_handle_join(bd_conductor *c, bd_request *req);

/* A remote slot's deadlines, for bd_deadlines; 1 when it dealt with p. */
int bd_join_deadlines(bd_conductor *c, bd_proc *p, double now, double timeout);

/* A remote muscle left its slot (it said so, failed, or went silent; why): the brains
 * hear of it, the slot waits for another JOIN. Nothing when the slot is not alive. */
void bd_remote_left(bd_conductor *c, bd_proc *p, const char *why);

/* The current phase begins at t0: the time by which its remote slots must be filled
 * (phase_config.join_timeout), said on stderr. */
void bd_join_phase_open(bd_conductor *c, double t0);

/* Every phase has ended: remote muscles that come back hear for 2 s that the run is done. */
void bd_join_farewell(bd_conductor *c);

/* ---- dispatch.c: the control socket ------------------------------------------------- */

/* The server of the request being handled (the control socket, or the --listen door). */
bd_server *bd_from(const bd_conductor *c);

/* Answers req (on bd_from) with type and o as JSON (o NULL: an empty payload). */
void bd_answer_json(bd_conductor *c, bd_request *req, bd_msg_type type, const cJSON *o);

/* Drops a well-formed message the conductor does not take (why), counting it: one from a
 * connection that does not own its sender id, or that came on the wrong socket. */
void bd_refuse(bd_conductor *c, bd_request *req, const char *why);

/* The slot a message's sender names (wire.h: brains send as BD_SENDER_BRAIN + agent index,
 * muscles as their id); NULL for none. */
bd_proc *bd_sender(bd_conductor *c, uint32_t sender);

/* Everything the control socket and the --listen door hold, waiting up to ms for the
 * control socket's first. */
void bd_serve(bd_conductor *c, int ms);

/* The control socket (c->hub), with room to hold every child's messages at once, its ipc
 * listener's guard, and the --listen door when asked for; BD_OK or the error. */
int bd_open_hub(bd_conductor *c);

/* ---- steer.c: `bodhi set` and `bodhi stop` ------------------------------------------ */

enum { BD_STEER_STOP_PHASE = 1, BD_STEER_STOP_RUN = 2 };

/* A STEER request (`bodhi set`, `bodhi stop`) on the control socket: taken only from a
 * process of this user that is not one of the run's own (nor started by one), with sender
 * BD_SENDER_CONTROL; answered with {"ok": true, ...} or {"ok": false, "error": ...}. A
 * change is checked now and reaches the agents' brains with the next round's answer
 * (bd_steer_answer); a stop ends the phase in that answer. */
void bd_handle_steer(bd_conductor *c, bd_request *req);

/* The round's answer to agent i's brain with the changes it has not heard (a copy of
 * answer with "set"; answer itself when there are none); the caller deletes what is not
 * answer. */
cJSON *bd_steer_answer(bd_conductor *c, int i, cJSON *answer);

/* ---- rounds.c ----------------------------------------------------------------------- */

/* When every brain has reported the current round: the phase's word for all of them
 * (whether it goes on, and which restarted muscles every brain has greeted). */
void bd_barrier(bd_conductor *c);

/* Several ranks: a brain's result saying that another rank's stop ended its phase
 * ("stop_rank", with "why" and "ends_run"; brain.c agrees on it with the other ranks after
 * this conductor's word): the phase ends as that rank's did, when that weighs more than
 * this conductor's own reason (wire/stop.h), and no later phase runs when the run ended
 * there (an interruption, `bodhi stop` of the run). */
void bd_rank_stop(bd_conductor *c, const bd_agent_state *a);

/* How the phase ended, once its processes are gone: its code, and in *ended its words for
 * summary.json and log.jsonl (valid while c is). sig: the signal seen (0: none); started:
 * some brain reported a round. An agent whose learning diverged fails the run, as it says. */
bd_stop bd_phase_outcome(bd_conductor *c, int sig, int started, const char **ended);

#endif
