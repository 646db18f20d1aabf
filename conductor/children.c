/* children.c: supervision (see run.h): the phase's processes are started, reaped, restarted
 * when a muscle dies or stops beating, and killed when they hang; a conductor that did not
 * run for a while blames no one. */
#define _GNU_SOURCE
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "brain/ranks.h"
#include "common/launch.h"
#include "common/proc.h"
#include "common/util.h"
#include "conductor/run.h"
#include "memory/memory.h"

/* Starts the slot's process (a brain, or a local muscle with its restart count). */
static int bd_start(bd_conductor *c, bd_proc *p)
{
    const char *dev = c->o->device;
    char id[16], restart[16];
    snprintf(id, sizeof id, "%d", p->index);
    snprintf(restart, sizeof restart, "%d", p->restarts);
    char *argv[20];
    int n = 0;
    argv[n++] = "bodhi";
    argv[n++] = p->role == BD_ROLE_BRAIN ? "brain" : "muscle";
    argv[n++] = "--run-dir";
    argv[n++] = c->dir;
    argv[n++] = "--phase";
    argv[n++] = (char *)c->phase;
    if (p->role == BD_ROLE_BRAIN) {
        argv[n++] = "--agent";
        argv[n++] = p->name;
        if (c->plan->remote > 0 && c->brain_tcp) {
            argv[n++] = "--tcp";
            argv[n++] = c->brain_tcp;
        }
    } else {
        argv[n++] = "--id";
        argv[n++] = id;
        argv[n++] = "--restart";
        argv[n++] = restart;
    }
    argv[n++] = "--parent";
    argv[n++] = c->parent;
    argv[n++] = "--run-digest";
    argv[n++] = c->run_digest;
    if (dev) {
        argv[n++] = "--device";
        argv[n++] = (char *)dev;
    }
    argv[n] = NULL;
    int rc = bd_proc_spawn(p, argv);
    if (rc == BD_OK) {
        cJSON *o = bd_proc_ev(c, "spawned", p);
        cJSON_AddNumberToObject(o, "pid", p->pid);
        if (p->restarts)
            cJSON_AddNumberToObject(o, "restart", p->restarts);
        bd_log(c, o);
        cJSON_Delete(o);
    }
    return rc;
}

/* A brain that died left its memory file marked open for write; clear the mark so that
 * h5py opens it plainly (memory.h, bd_trace_recover). */
static void bd_recover_memory(bd_conductor *c, const char *agent)
{
    char sfx[16];
    char *path = bd_strfmt("%s/memory/%s.%s%s.h5", c->dir, c->phase, agent, bd_rank_suffix(sfx, sizeof sfx));
    int recovered = 0, rc = path ? bd_trace_recover(path, &recovered) : BD_ENOMEM;
    if (rc != BD_OK && rc != BD_ENOTFOUND) /* none: it died before recording anything */
        fprintf(stderr, "bodhi: %s\n", bd_lasterr());
    if (recovered) {
        cJSON *o = bd_ev("repaired");
        cJSON_AddStringToObject(o, "phase", c->phase);
        cJSON_AddStringToObject(o, "agent", agent);
        cJSON_AddStringToObject(o, "memory", path);
        bd_log(c, o);
        cJSON_Delete(o);
    }
    free(path);
}

/* A muscle left before its phase ended: start another in its slot, or fail the run past
 * the restart budget. */
static void bd_muscle_left(bd_conductor *c, bd_proc *p)
{
    char how[800];
    bd_proc_how(p, how, sizeof how);
    if (p->restarts >= c->plan->ph->restarts) {
        bd_fail(c, "muscle %s %s (after %d restart%s; phase_config.restarts is %d)", p->name, how,
                p->restarts, p->restarts == 1 ? "" : "s", c->plan->ph->restarts);
        return;
    }
    p->restarts++;
    cJSON *o = bd_proc_ev(c, "restarted", p);
    cJSON_AddStringToObject(o, "reason", how);
    cJSON_AddNumberToObject(o, "restart", p->restarts);
    bd_log(c, o);
    cJSON_Delete(o);
    if (!c->o->quiet)
        fprintf(stderr, "bodhi: muscle %s %s; restarting it (%d of %d)\n", p->name, how, p->restarts,
                c->plan->ph->restarts);
    if (bd_start(c, p) != BD_OK)
        bd_fail(c, "%s", bd_lasterr());
}

/* A brain that reported its result as done: its checkpoint and trace were written before
 * (brain.c closes them first), so one that then fails to exit is killed as late and its
 * phase is not failed for it. */
static int bd_brain_done(const bd_conductor *c, const bd_proc *p)
{
    if (p->role != BD_ROLE_BRAIN || p->index < 0 || p->index >= c->nagents || !c->agents)
        return 0;
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(c->agents[p->index].result, "status");
    return cJSON_IsString(st) && strcmp(st->valuestring, "done") == 0;
}

/* Reaps every child that exited: logs it, repairs a dead brain's memory, restarts a muscle
 * that left before its phase ended (or fails the run past the restart budget), fails the
 * run for a brain that did not exit cleanly. */
/* Several ranks: a brain killed by a signal (a Ctrl-C during its start-up, before its
 * handler; a kill -9), before or during its join, cannot tell the other ranks it left
 * (bd_ranks_abandon, which a brain that ends on its own before its join runs itself): its
 * conductor tells them, for its phase, so that the joins of those still joining fail now,
 * naming it, not at their timeout. Once its group formed the others' collectives fail on
 * the closed connection; a join of the phase still under way (another agent's) fails on
 * the word, as it should: this rank's run fails. Not for a brain that had ended its phase
 * (killed late, as it exited: the phase goes on). */
static void bd_brain_abandoned(bd_conductor *c, const bd_proc *p)
{
    bd_ranks r;
    char how[300];
    if (!bd_brain_done(c, p) && bd_ranks_plan(&r, c->plan->ph->name, p->name) == BD_OK && r.world > 1) {
        snprintf(how, sizeof how, "its brain %s was killed by signal %d (%s)", p->name, WTERMSIG(p->status),
                 strsignal(WTERMSIG(p->status)));
        bd_ranks_abandon(&r, how);
        bd_ranks_leave(&r);
    }
}

static void bd_reap(bd_conductor *c)
{
    int st;
    pid_t pid;
    while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
        bd_proc *p = bd_procs_by_pid(&c->procs, pid);
        if (!p || !p->alive)
            continue;
        p->alive = 0;
        p->status = st;
        cJSON *o = bd_proc_ev(c, "exited", p);
        cJSON_AddNumberToObject(o, "pid", pid);
        int ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
        if (WIFEXITED(st))
            cJSON_AddNumberToObject(o, "code", WEXITSTATUS(st));
        else if (WIFSIGNALED(st))
            cJSON_AddStringToObject(o, "signal", strsignal(WTERMSIG(st)));
        if (p->killed_for[0])
            cJSON_AddStringToObject(o, "reason", p->killed_for);
        bd_log(c, o);
        cJSON_Delete(o);
        if (!ok && p->role == BD_ROLE_BRAIN)
            bd_recover_memory(c, p->name);
        if (p->role == BD_ROLE_BRAIN && WIFSIGNALED(st))
            bd_brain_abandoned(c, p);
        if (ok || c->failed || bd_signal_seen)
            continue;
        if (p->killed_for[0] && bd_brain_done(c, p)) { /* what it learnt and recorded is written */
            if (!c->o->quiet)
                fprintf(stderr, "bodhi: brain %s %s; its result, checkpoint and trace were written before, "
                                "so the phase goes on\n", p->name, p->killed_for);
            continue;
        }
        if (p->role == BD_ROLE_MUSCLE && !c->stopping) {
            bd_muscle_left(c, p);
        } else if (p->role == BD_ROLE_BRAIN || !c->stopping) {
            char how[800];
            bd_proc_how(p, how, sizeof how);
            bd_fail(c, "%s %s %s", p->role == BD_ROLE_BRAIN ? "brain" : "muscle", p->name, how);
        }
    }
}

/* Kills a process that stopped beating (SIGSTOP, a deadlock of every thread, a machine
 * paging itself to death); reaping it then restarts or fails as for a crash. */
static void bd_deadlines(bd_conductor *c)
{
    const double now = bd_now(), timeout = c->plan->ph->heartbeat_timeout;
    for (int i = 0; i < c->procs.n; i++) {
        bd_proc *p = &c->procs.p[i];
        if (p->remote && bd_join_deadlines(c, p, now, timeout))
            continue;
        if (!p->alive || p->killed_for[0])
            continue;
        double since = p->last_beat > 0 ? now - p->last_beat : now - p->started;
        double limit = p->last_beat > 0 ? timeout : fmax(timeout, BD_FIRST_BEAT_S);
        if (since <= limit)
            continue;
        if (bd_brain_done(c, p))
            snprintf(p->killed_for, sizeof p->killed_for, "late: did not exit %.1f s after its result", since);
        else
            snprintf(p->killed_for, sizeof p->killed_for, "hung: no heartbeat for %.1f s", since);
        if (p->remote) /* not ours to kill: it is lost, its slot waits for another */
            bd_remote_left(c, p, p->killed_for);
        else {
            strncat(p->killed_for, " (killed)", sizeof p->killed_for - strlen(p->killed_for) - 1);
            kill(p->pid, SIGKILL);
        }
    }
}

/* The conductor itself stopped (Ctrl-Z, SIGSTOP, a suspended machine, a starved core):
 * while it did not run it read no heartbeats, so the time it lost is added to every
 * deadline (the slots' clocks, the remote join's, the stop grace) before any is judged. */
static void bd_excuse_stall(bd_conductor *c, double *stop_at)
{
    const double now = bd_now(), gap = now - c->last_slice;
    c->last_slice = now;
    if (gap <= BD_STALL_S)
        return;
    bd_procs_excuse(&c->procs, gap);
    if (c->join_by > 0)
        c->join_by += gap;
    if (*stop_at > 0)
        *stop_at += gap;
    c->stalled_s += gap;
    cJSON *o = bd_ev("stalled");
    cJSON_AddStringToObject(o, "phase", c->phase);
    cJSON_AddNumberToObject(o, "seconds", gap);
    bd_log(c, o);
    cJSON_Delete(o);
    if (!c->o->quiet)
        fprintf(stderr, "bodhi: the conductor did not run for %.1f s (stopped or suspended); every deadline "
                        "moves by as much\n", gap);
}

int bd_start_phase(bd_conductor *c, const bd_phase_plan *p)
{
    /* OpenBLAS starts its own thread pool when libtorch loads: on top of the brain's
     * intra-op threads and the muscles it oversubscribes the cores, and its threads miss
     * the shim's flush-to-zero mode. One BLAS thread per process (unless the user says
     * otherwise) made PPO CartPole 1.66x faster to 475 on 2 cores (bench/train.py, 5 seeds:
     * mean 5.66 s -> 3.41 s).
     * libtorch's OpenMP workers spin after every parallel region by default; when anything
     * else wants the core (the brain's HDF5 writer, the user's other programs) the spinning
     * starves it. Passive waiting costs nothing measurable on a quiet machine (1M-sample
     * updates in 65536-sample minibatches, 2 threads: 7.1-7.7 s either way) and, beside
     * one busy process on 2 cores, halved them (16.5-17.1 s -> 8.8 s). (bd_blas_env) */
    bd_blas_env();
    int rc = BD_OK;
    for (int i = 0; i < c->procs.n && rc == BD_OK; i++)
        if (c->procs.p[i].role == BD_ROLE_BRAIN || !c->procs.p[i].remote)
            rc = bd_start(c, &c->procs.p[i]);
    (void)p;
    return rc;
}

static int bd_brains_alive(const bd_procs *ps)
{
    for (int i = 0; i < ps->n; i++)
        if (ps->p[i].alive && ps->p[i].role == BD_ROLE_BRAIN)
            return 1;
    return 0;
}

/* How long brains get after SIGTERM. Alone, BD_STOP_GRACE_S: a brain cancels its update
 * between minibatches. With several ranks a brain finishes the update it is in (a rank that
 * stopped at its own minibatch would leave the others in an all-reduce that never pairs),
 * so it gets the ranks' collective timeout on top: no rank waits longer for another. */
static double bd_brain_grace(void)
{
    const char *t = getenv("BODHI_GROUP_TIMEOUT");
    long long timeout = 60;
    if (bd_rank_world() < 2)
        return BD_STOP_GRACE_S;
    if (t && bd_parse_ll(t, 1, 86400, &timeout) != BD_OK)
        timeout = 60;
    return BD_STOP_GRACE_S + (double)timeout;
}

int bd_supervise(bd_conductor *c)
{
    double stop_at = 0, brains_at = 0;
    int sig = 0, told = 0;
    c->last_slice = bd_now();
    while (bd_procs_alive(&c->procs) > 0) {
        bd_serve(c, 50);
        bd_reap(c);
        if (!sig && bd_signal_seen)
            sig = bd_signal_seen;
        const double before = stop_at;
        bd_excuse_stall(c, &stop_at);
        if (brains_at > 0)
            brains_at += stop_at - before;
        if (!sig && !c->failed)
            bd_deadlines(c);
        if ((sig || c->failed) && stop_at == 0) {
            /* the brains hear why: SIGUSR2 for a run that failed here (with several ranks
             * they tell the others it failed, not that it was interrupted; brain.c) */
            bd_procs_signal(&c->procs, SIGTERM, sig ? SIGTERM : SIGUSR2);
            stop_at = bd_now() + BD_STOP_GRACE_S;
            brains_at = bd_now() + bd_brain_grace();
        }
        /* past the grace, or a second Ctrl-C: at once */
        const int again = bd_signals > 1;
        if (stop_at > 0 && (bd_now() > stop_at || again)) {
            bd_procs_signal(&c->procs, SIGKILL, (again || bd_now() > brains_at) ? SIGKILL : 0);
            if (!again && bd_now() <= brains_at && !told && !c->o->quiet && bd_brains_alive(&c->procs)) {
                fprintf(stderr, "bodhi: the brains finish the update they are in with the other ranks (up to "
                                "%.0f s more%s)\n", brains_at - bd_now(), sig ? "; Ctrl-C again stops them at once" : "");
                told = 1;
            }
            if (again || bd_now() > brains_at)
                stop_at = bd_now() + 3600;
        }
    }
    return sig;
}
