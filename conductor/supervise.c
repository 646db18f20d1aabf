/* supervise.c: the processes of a phase (see supervise.h). */
#define _GNU_SOURCE
#include "conductor/supervise.h"

#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "bodhi/bodhi.h"
#include "common/util.h"

extern char **environ;

int bd_procs_init(bd_procs *ps, int nagents, const char *const *agent_names, int nmuscles, int local)
{
    memset(ps, 0, sizeof *ps);
    ps->n = nagents + nmuscles;
    ps->p = calloc((size_t)(ps->n ? ps->n : 1), sizeof *ps->p);
    if (!ps->p)
        return bd_seterr(BD_ENOMEM, "out of memory");
    for (int i = 0; i < nagents; i++) {
        bd_proc *p = &ps->p[i];
        p->role = BD_ROLE_BRAIN;
        p->index = i;
        snprintf(p->name, sizeof p->name, "%s", agent_names[i]);
    }
    for (int k = 0; k < nmuscles; k++) {
        bd_proc *p = &ps->p[nagents + k];
        p->role = BD_ROLE_MUSCLE;
        p->index = k;
        p->remote = k >= local;
        snprintf(p->name, sizeof p->name, "%d", k);
    }
    return BD_OK;
}

void bd_procs_fini(bd_procs *ps)
{
    free(ps->p);
    memset(ps, 0, sizeof *ps);
}

static bd_proc *bd_procs_find(bd_procs *ps, bd_role role, int index)
{
    for (int i = 0; i < ps->n; i++)
        if (ps->p[i].role == role && ps->p[i].index == index)
            return &ps->p[i];
    return NULL;
}

bd_proc *bd_procs_brain(bd_procs *ps, int agent)
{
    return bd_procs_find(ps, BD_ROLE_BRAIN, agent);
}

bd_proc *bd_procs_muscle(bd_procs *ps, int id)
{
    return bd_procs_find(ps, BD_ROLE_MUSCLE, id);
}

bd_proc *bd_procs_by_pid(bd_procs *ps, pid_t pid)
{
    for (int i = 0; pid > 0 && i < ps->n; i++)
        if (ps->p[i].pid == pid && !ps->p[i].remote)
            return &ps->p[i];
    return NULL;
}

int bd_proc_spawn(bd_proc *p, char *const argv[])
{
    posix_spawnattr_t at;
    posix_spawnattr_init(&at);
    /* Its own process group: a terminal's Ctrl-C goes to the conductor alone, which stops
     * the children in order. */
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setpgroup(&at, 0);
    pid_t pid;
    int err = posix_spawn(&pid, "/proc/self/exe", NULL, &at, argv, environ);
    posix_spawnattr_destroy(&at);
    if (err != 0)
        return bd_seterr(BD_EIO, "cannot start %s %s: %s", p->role == BD_ROLE_BRAIN ? "brain" : "muscle",
                         p->name, strerror(err));
    p->pid = pid;
    p->pipe = 0;
    p->alive = 1;
    p->started = bd_now();
    p->last_beat = 0;
    p->round = 0;
    p->error[0] = '\0';
    p->killed_for[0] = '\0';
    return BD_OK;
}

void bd_procs_excuse(bd_procs *ps, double s)
{
    for (int i = 0; i < ps->n; i++) {
        bd_proc *p = &ps->p[i];
        p->started += s;
        if (p->last_beat > 0)
            p->last_beat += s;
        if (p->free_since > 0)
            p->free_since += s;
    }
}

int bd_procs_alive(const bd_procs *ps)
{
    int n = 0;
    for (int i = 0; i < ps->n; i++)
        n += ps->p[i].alive && !ps->p[i].remote;
    return n;
}

void bd_procs_signal(bd_procs *ps, int sig, int brain_sig)
{
    for (int i = 0; i < ps->n; i++) {
        const int s = ps->p[i].role == BD_ROLE_BRAIN ? brain_sig : sig;
        if (s && ps->p[i].alive && !ps->p[i].remote && ps->p[i].pid > 0)
            kill(ps->p[i].pid, s);
    }
}

void bd_proc_how(const bd_proc *p, char *buf, size_t len)
{
    const int st = p->status;
    if (p->killed_for[0])
        snprintf(buf, len, "%s", p->killed_for);
    else if (WIFEXITED(st))
        snprintf(buf, len, "exited with code %d", WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        snprintf(buf, len, "was killed by signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
    else
        snprintf(buf, len, "ended");
    if (p->error[0]) {
        size_t l = strlen(buf);
        snprintf(buf + l, len - l, ": %s", p->error);
    }
}

cJSON *bd_procs_json(const bd_procs *ps, double now)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < ps->n; i++) {
        const bd_proc *p = &ps->p[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "role", p->role == BD_ROLE_BRAIN ? "brain" : "muscle");
        cJSON_AddStringToObject(o, "name", p->name);
        cJSON_AddNumberToObject(o, "pid", p->pid);
        cJSON_AddBoolToObject(o, "alive", p->alive);
        cJSON_AddBoolToObject(o, "remote", p->remote);
        cJSON_AddNumberToObject(o, "restarts", p->restarts);
        if (p->last_beat > 0)
            cJSON_AddNumberToObject(o, "last_beat_s", now - p->last_beat);
        cJSON_AddNumberToObject(o, "round", (double)p->round);
        cJSON_AddItemToArray(a, o);
    }
    return a;
}
