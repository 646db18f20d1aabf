/* conductor.c: `bodhi run`, `bodhi check`, `bodhi status` (see conductor.h).
 *
 * Children are this executable (/proc/self/exe) started with posix_spawn, which execs at
 * once (no code runs in a forked copy of a process that has NNG threads), so spawning
 * after NNG is up is safe. Each child sets PR_SET_PDEATHSIG itself, so none outlives the
 * conductor. The main loop waits at most 50 ms on the events socket, then polls the
 * control socket and reaps children with waitpid(-1, WNOHANG). */
#define _GNU_SOURCE
#include "conductor/conductor.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>

#include "common/util.h"
#include "config/plan.h"
#include "conductor/builtins.h"
#include "conductor/rundir.h"
#include "config/runfile.h"
#include "memory/memory.h"
#include "wire/addr.h"
#include "wire/events.h"
#include "wire/wire.h"

extern char **environ;

#define BD_MAX_CHILDREN 1024
#define BD_KILL_GRACE_S 10.0

typedef struct {
    pid_t pid;
    int role;          /* 0 brain, 1 muscle */
    char name[128];    /* agent name or muscle id */
    int alive;
    int status;        /* waitpid status once exited */
} bd_child;

typedef struct {
    char name[128];
    cJSON *last_update;  /* latest "update" event */
    cJSON *result;       /* the "result" event */
    double last_print;
} bd_agent_state;

typedef struct {
    const bd_run_opts *o;
    bd_runfile *rf;
    char *dir;
    FILE *log;
    bd_events *ev;
    nng_socket ctl;
    int ctl_open;
    bd_child kids[BD_MAX_CHILDREN];
    int nkids;
    bd_agent_state *agents;
    int nagents;
    const char *phase;
    cJSON *phases;       /* summary phases array */
    double t0;
    int failed;          /* a child failed */
    char fail_msg[512];
} bd_conductor;

static volatile sig_atomic_t bd_signal_seen = 0;

static void bd_on_signal(int sig)
{
    bd_signal_seen = sig;
}

static void bd_log(bd_conductor *c, cJSON *o)
{
    if (!c->log)
        return;
    cJSON_AddNumberToObject(o, "t", bd_wall());
    char *s = cJSON_PrintUnformatted(o);
    if (s) {
        fprintf(c->log, "%s\n", s);
        fflush(c->log);
        free(s);
    }
}

static cJSON *bd_ev(const char *kind)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "event", kind);
    return o;
}

/* ---- run directory -------------------------------------------------------------------- */

/* Validates the run file and every phase; prints "FILE:LINE:COL: message" on failure. */
static int bd_validate(const char *path, const char *device, bd_runfile **out, int verbose)
{
    int rc = bd_runfile_load(path, out);
    if (rc != BD_OK) {
        fprintf(stderr, "%s\n", bd_lasterr());
        return rc;
    }
    for (int i = 0; i < (*out)->nphases; i++) {
        bd_phase_plan p;
        rc = bd_phase_plan_make(*out, i, bd_registry_builtin(), device, &p);
        if (rc == BD_OK && verbose) {
            printf("phase %s (%s): %s x %lld worlds on %s, %d muscle(s)\n", p.ph->name,
                   p.ph->mode == BD_MODE_TRAIN ? "train" : "test", p.env->name, p.worlds,
                   p.device == BD_DEVICE_CUDA ? "cuda" : "cpu", p.worker);
            for (int a = 0; a < p.nagents; a++) {
                printf("  agent %s: brain %s, %d sensors (", p.agents[a].cfg->name,
                       p.agents[a].cfg->brain.name, p.agents[a].nsens);
                for (int s = 0; s < p.agents[a].nsens; s++)
                    printf("%s%s", s ? " " : "", p.agents[a].sensor_ids[s]);
                printf("), actuators (");
                for (int s = 0; s < p.agents[a].nact; s++)
                    printf("%s%s", s ? " " : "", p.agents[a].actuator_ids[s]);
                printf(")\n");
            }
        }
        bd_phase_plan_fini(&p);
        if (rc != BD_OK) {
            fprintf(stderr, "%s\n", bd_lasterr());
            bd_runfile_destroy(*out);
            *out = NULL;
            return rc;
        }
    }
    return BD_OK;
}

int bd_conductor_check(const char *path, const char *device)
{
    bd_runfile *rf = NULL;
    if (bd_validate(path, device, &rf, 1) != BD_OK)
        return 2;
    printf("%s: ok (uid %s, seed %llu, %d phase(s))\n", path, rf->uid,
           (unsigned long long)rf->seed, rf->nphases);
    bd_runfile_destroy(rf);
    return 0;
}

/* ---- children ------------------------------------------------------------------------- */

static int bd_spawn(bd_conductor *c, int role, const char *name, char *const argv[])
{
    if (c->nkids >= BD_MAX_CHILDREN)
        return bd_seterr(BD_EINVAL, "too many processes");
    pid_t pid;
    int err = posix_spawn(&pid, "/proc/self/exe", NULL, NULL, argv, environ);
    if (err != 0)
        return bd_seterr(BD_EIO, "cannot start %s %s: %s", role ? "muscle" : "brain", name,
                         strerror(err));
    bd_child *k = &c->kids[c->nkids++];
    memset(k, 0, sizeof *k);
    k->pid = pid;
    k->role = role;
    snprintf(k->name, sizeof k->name, "%s", name);
    k->alive = 1;
    cJSON *o = bd_ev("spawned");
    cJSON_AddStringToObject(o, "phase", c->phase);
    cJSON_AddStringToObject(o, "role", role ? "muscle" : "brain");
    cJSON_AddStringToObject(o, role ? "muscle" : "agent", name);
    cJSON_AddNumberToObject(o, "pid", pid);
    bd_log(c, o);
    cJSON_Delete(o);
    return BD_OK;
}

static int bd_alive(const bd_conductor *c)
{
    int n = 0;
    for (int i = 0; i < c->nkids; i++)
        n += c->kids[i].alive;
    return n;
}

static void bd_signal_all(bd_conductor *c, int sig)
{
    for (int i = 0; i < c->nkids; i++)
        if (c->kids[i].alive)
            kill(c->kids[i].pid, sig);
}

/* A brain that died left its memory file marked open for write; clear the mark so that
 * h5py opens it plainly (memory.h, bd_trace_recover). */
static void bd_recover_memory(bd_conductor *c, const char *agent)
{
    char *path = bd_strfmt("%s/memory/%s.%s.h5", c->dir, c->phase, agent);
    int recovered = 0;
    if (path && bd_trace_recover(path, &recovered) != BD_OK)
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

static void bd_reap(bd_conductor *c, int stopping)
{
    int st;
    pid_t pid;
    while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
        for (int i = 0; i < c->nkids; i++) {
            bd_child *k = &c->kids[i];
            if (k->pid != pid || !k->alive)
                continue;
            k->alive = 0;
            k->status = st;
            cJSON *o = bd_ev("exited");
            cJSON_AddStringToObject(o, "phase", c->phase);
            cJSON_AddStringToObject(o, "role", k->role ? "muscle" : "brain");
            cJSON_AddStringToObject(o, k->role ? "muscle" : "agent", k->name);
            cJSON_AddNumberToObject(o, "pid", pid);
            int ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
            if (WIFEXITED(st))
                cJSON_AddNumberToObject(o, "code", WEXITSTATUS(st));
            else if (WIFSIGNALED(st))
                cJSON_AddStringToObject(o, "signal", strsignal(WTERMSIG(st)));
            bd_log(c, o);
            cJSON_Delete(o);
            if (!ok && k->role == 0)
                bd_recover_memory(c, k->name);
            if (!ok && !stopping && !c->failed) {
                c->failed = 1;
                if (WIFEXITED(st))
                    snprintf(c->fail_msg, sizeof c->fail_msg, "%s %s exited with code %d",
                             k->role ? "muscle" : "brain", k->name, WEXITSTATUS(st));
                else
                    snprintf(c->fail_msg, sizeof c->fail_msg, "%s %s was killed by %s",
                             k->role ? "muscle" : "brain", k->name,
                             WIFSIGNALED(st) ? strsignal(WTERMSIG(st)) : "a signal");
            }
        }
    }
}

/* ---- events, progress and status ------------------------------------------------------ */

static bd_agent_state *bd_agent(bd_conductor *c, const char *name)
{
    for (int i = 0; name && i < c->nagents; i++)
        if (strcmp(c->agents[i].name, name) == 0)
            return &c->agents[i];
    return NULL;
}

static double bd_num(const cJSON *o, const char *key, double def)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : def;
}

static void bd_progress(bd_conductor *c, bd_agent_state *a, int force)
{
    double now = bd_now();
    if (c->o->quiet || !a->last_update || (!force && now - a->last_print < 1.0))
        return;
    a->last_print = now;
    const cJSON *u = a->last_update;
    fprintf(stderr, "[%s] %-12s %6.1fs  steps %-10.0f %9.0f steps/s  episodes %-7.0f", c->phase,
            a->name, now - c->t0, bd_num(u, "steps", 0), bd_num(u, "steps_per_s", 0),
            bd_num(u, "episodes", 0));
    if (cJSON_GetObjectItemCaseSensitive(u, "mean_return"))
        fprintf(stderr, "  mean_return %.1f", bd_num(u, "mean_return", 0));
    fprintf(stderr, "\n");
}

static void bd_handle_event(bd_conductor *c, cJSON *o, uint32_t sender)
{
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(o, "event");
    const cJSON *agent = cJSON_GetObjectItemCaseSensitive(o, "agent");
    cJSON_AddNumberToObject(o, "sender", sender);
    bd_agent_state *a = bd_agent(c, cJSON_IsString(agent) ? agent->valuestring : NULL);
    bd_log(c, o);
    if (!cJSON_IsString(kind) || !a) {
        cJSON_Delete(o);
        return;
    }
    if (strcmp(kind->valuestring, "update") == 0) {
        cJSON_Delete(a->last_update);
        a->last_update = o;
        bd_progress(c, a, 0);
        return;
    }
    if (strcmp(kind->valuestring, "result") == 0) {
        cJSON_Delete(a->result);
        a->result = o;
        bd_progress(c, a, 1);
        return;
    }
    cJSON_Delete(o);
}

static cJSON *bd_status_json(bd_conductor *c, const char *status)
{
    cJSON *s = cJSON_CreateObject();
    cJSON_AddStringToObject(s, "uid", c->rf->uid);
    cJSON_AddStringToObject(s, "status", status);
    cJSON_AddNumberToObject(s, "pid", getpid());
    cJSON_AddNumberToObject(s, "wall_s", bd_now() - c->t0);
    if (c->phase)
        cJSON_AddStringToObject(s, "phase", c->phase);
    cJSON *kids = cJSON_AddArrayToObject(s, "processes");
    for (int i = 0; i < c->nkids; i++) {
        cJSON *k = cJSON_CreateObject();
        cJSON_AddStringToObject(k, "role", c->kids[i].role ? "muscle" : "brain");
        cJSON_AddStringToObject(k, "name", c->kids[i].name);
        cJSON_AddNumberToObject(k, "pid", c->kids[i].pid);
        cJSON_AddBoolToObject(k, "alive", c->kids[i].alive);
        cJSON_AddItemToArray(kids, k);
    }
    cJSON *ag = cJSON_AddArrayToObject(s, "agents");
    for (int i = 0; i < c->nagents; i++)
        if (c->agents[i].last_update)
            cJSON_AddItemToArray(ag, cJSON_Duplicate(c->agents[i].last_update, 1));
    return s;
}

/* Answers pending status requests on the control socket (never blocks). */
static void bd_serve_control(bd_conductor *c)
{
    if (!c->ctl_open)
        return;
    nng_msg *m;
    while (nng_recvmsg(c->ctl, &m, NNG_FLAG_NONBLOCK) == 0) {
        bd_wire_header h;
        const uint8_t *p;
        uint32_t seq = 0;
        cJSON *s;
        if (bd_wire_msg_decode(m, BD_MSG_STATUS, &h, &p) == BD_OK) {
            seq = h.seq;
            s = bd_status_json(c, "running");
        } else {
            s = cJSON_CreateObject();
            cJSON_AddStringToObject(s, "error", bd_lasterr());
        }
        nng_msg_free(m);
        char *text = cJSON_PrintUnformatted(s);
        cJSON_Delete(s);
        nng_msg *r;
        uint8_t *payload;
        if (text && bd_wire_msg_alloc(&r, BD_MSG_STATUS, 0, seq, strlen(text), &payload) == BD_OK) {
            memcpy(payload, text, strlen(text));
            if (nng_sendmsg(c->ctl, r, 0) != 0)
                nng_msg_free(r);
        }
        free(text);
    }
}

/* ---- phases --------------------------------------------------------------------------- */

static int bd_start_phase(bd_conductor *c, const bd_phase_plan *p)
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
     * one busy process on 2 cores, halved them (16.5-17.1 s -> 8.8 s). */
    setenv("OPENBLAS_NUM_THREADS", "1", 0);
    setenv("OMP_WAIT_POLICY", "passive", 0);
    char parent[32];
    snprintf(parent, sizeof parent, "%d", (int)getpid());
    const char *dev = c->o->device;
    int rc = BD_OK;
    for (int i = 0; i < p->nagents && rc == BD_OK; i++) {
        const char *name = p->agents[i].cfg->name;
        char *argv[] = {"bodhi", "brain", "--run-dir", c->dir, "--phase", (char *)p->ph->name,
                        "--agent", (char *)name, "--parent", parent,
                        dev ? "--device" : NULL, (char *)dev, NULL};
        rc = bd_spawn(c, 0, name, argv);
    }
    for (int k = 0; k < p->worker && rc == BD_OK; k++) {
        char id[16];
        snprintf(id, sizeof id, "%d", k);
        char *argv[] = {"bodhi", "muscle", "--run-dir", c->dir, "--phase", (char *)p->ph->name,
                        "--id", id, "--parent", parent, dev ? "--device" : NULL, (char *)dev, NULL};
        rc = bd_spawn(c, 1, id, argv);
    }
    return rc;
}

/* Runs phase i to its end. Returns 0 done, 1 failed, or the signal seen. */
static int bd_run_phase(bd_conductor *c, int i, cJSON *phase_out)
{
    bd_phase_plan p;
    int rc = bd_phase_plan_make(c->rf, i, bd_registry_builtin(), c->o->device, &p);
    if (rc != BD_OK) {
        snprintf(c->fail_msg, sizeof c->fail_msg, "%s", bd_lasterr());
        return 1;
    }
    c->phase = p.ph->name;
    c->nagents = p.nagents;
    c->agents = calloc((size_t)p.nagents, sizeof *c->agents);
    char *h5 = bd_strfmt("%s/run.h5", c->dir);
    for (int a = 0; a < p.nagents && c->agents; a++) {
        snprintf(c->agents[a].name, sizeof c->agents[a].name, "%s", p.agents[a].cfg->name);
        char *target = bd_strfmt("memory/%s.%s.h5", p.ph->name, p.agents[a].cfg->name);
        if (!target || bd_trace_master_link(h5, p.ph->name, p.agents[a].cfg->name, target) != BD_OK)
            fprintf(stderr, "bodhi: run.h5 link: %s\n", bd_lasterr());
        free(target);
    }
    free(h5);
    cJSON *o = bd_ev("phase");
    cJSON_AddStringToObject(o, "phase", p.ph->name);
    cJSON_AddStringToObject(o, "mode", p.ph->mode == BD_MODE_TRAIN ? "train" : "test");
    cJSON_AddStringToObject(o, "device", p.device == BD_DEVICE_CUDA ? "cuda" : "cpu");
    cJSON_AddNumberToObject(o, "worlds", (double)p.worlds);
    cJSON_AddNumberToObject(o, "worker", p.worker);
    bd_log(c, o);
    cJSON_Delete(o);
    if (!c->o->quiet)
        fprintf(stderr, "bodhi: phase %s (%s): %s, %lld worlds on %s, %d muscle(s), %d agent(s)\n",
                p.ph->name, p.ph->mode == BD_MODE_TRAIN ? "train" : "test", p.env->name,
                p.worlds, p.device == BD_DEVICE_CUDA ? "cuda" : "cpu", p.worker, p.nagents);
    double t0 = bd_now();
    rc = bd_start_phase(c, &p);
    if (rc != BD_OK && !c->failed) {
        c->failed = 1;
        snprintf(c->fail_msg, sizeof c->fail_msg, "%s", bd_lasterr());
    }
    double stop_at = 0;
    int sig = 0;
    while (bd_alive(c) > 0) {
        cJSON *e;
        uint32_t sender;
        int r = bd_events_recv(c->ev, 50, &e, &sender);
        if (r == BD_OK)
            bd_handle_event(c, e, sender);
        else if (r == BD_EPROTO)
            fprintf(stderr, "bodhi: bad event: %s\n", bd_lasterr());
        bd_serve_control(c);
        bd_reap(c, sig || c->failed);
        if (!sig && bd_signal_seen)
            sig = bd_signal_seen;
        if ((sig || c->failed) && stop_at == 0) {
            bd_signal_all(c, SIGTERM);
            stop_at = bd_now() + BD_KILL_GRACE_S;
        }
        if (stop_at > 0 && bd_now() > stop_at) {
            bd_signal_all(c, SIGKILL);
            stop_at = bd_now() + 3600;
        }
    }
    /* A brain's last events arrive before it exits, but drain whatever is left. */
    cJSON *e;
    uint32_t sender;
    while (bd_events_recv(c->ev, 0, &e, &sender) == BD_OK)
        bd_handle_event(c, e, sender);
    double wall = bd_now() - t0;
    cJSON_AddStringToObject(phase_out, "name", p.ph->name);
    cJSON_AddStringToObject(phase_out, "mode", p.ph->mode == BD_MODE_TRAIN ? "train" : "test");
    cJSON_AddNumberToObject(phase_out, "wall_s", wall);
    cJSON *agents = cJSON_AddArrayToObject(phase_out, "agents");
    for (int a = 0; a < c->nagents; a++) {
        const cJSON *r = c->agents[a].result;
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "name", c->agents[a].name);
        cJSON_AddNumberToObject(j, "episodes", bd_num(r, "episodes", 0));
        cJSON_AddNumberToObject(j, "mean_return", bd_num(r, "mean_return", 0));
        cJSON_AddNumberToObject(j, "max_return", bd_num(r, "max_return", 0));
        cJSON_AddNumberToObject(j, "steps", bd_num(r, "steps", 0));
        cJSON_AddNumberToObject(j, "steps_per_s", bd_num(r, "steps_per_s", 0));
        cJSON_AddItemToArray(agents, j);
        if (!c->o->quiet && r)
            fprintf(stderr, "bodhi: phase %s agent %s: %.0f episodes, mean return %.1f (last 100), "
                            "max %.1f, %.0f steps in %.1f s\n",
                    p.ph->name, c->agents[a].name, bd_num(r, "episodes", 0),
                    bd_num(r, "mean_return", 0), bd_num(r, "max_return", 0), bd_num(r, "steps", 0), wall);
        cJSON_Delete(c->agents[a].last_update);
        cJSON_Delete(c->agents[a].result);
    }
    free(c->agents);
    c->agents = NULL;
    c->nagents = 0;
    bd_phase_plan_fini(&p);
    c->phase = NULL;
    if (sig)
        return sig;
    return c->failed ? 1 : 0;
}

static int bd_write_summary(bd_conductor *c, const char *status)
{
    cJSON *s = cJSON_CreateObject();
    cJSON_AddStringToObject(s, "uid", c->rf->uid);
    cJSON_AddNumberToObject(s, "seed", (double)c->rf->seed);
    cJSON_AddStringToObject(s, "status", status);
    cJSON_AddNumberToObject(s, "wall_s", bd_now() - c->t0);
    if (c->fail_msg[0])
        cJSON_AddStringToObject(s, "error", c->fail_msg);
    cJSON_AddItemToObject(s, "phases", cJSON_Duplicate(c->phases, 1));
    char *text = cJSON_Print(s);
    cJSON_Delete(s);
    char *path = bd_strfmt("%s/summary.json", c->dir);
    int rc = text && path ? bd_write_file(path, text, strlen(text)) : BD_ENOMEM;
    if (rc != BD_OK)
        fprintf(stderr, "bodhi: summary.json: %s\n", bd_lasterr());
    free(text);
    free(path);
    return rc;
}

static int bd_open_sockets(bd_conductor *c)
{
    char *url = bd_url_events(c->dir);
    int rc = url ? bd_events_listen(url, &c->ev) : BD_ENOMEM;
    free(url);
    if (rc != BD_OK)
        return rc;
    url = bd_url_control(c->dir);
    int rv = url ? nng_rep0_open(&c->ctl) : NNG_ENOMEM;
    if (rv == 0) {
        c->ctl_open = 1;
        rv = nng_listen(c->ctl, url, NULL, 0);
    }
    rc = rv ? bd_nng_err(rv, url ? url : "control socket") : BD_OK;
    free(url);
    return rc;
}

int bd_conductor_run(const bd_run_opts *o)
{
    bd_conductor c;
    memset(&c, 0, sizeof c);
    c.o = o;
    c.t0 = bd_now();
    bd_runfile *user = NULL;
    if (bd_validate(o->path, o->device, &user, 0) != BD_OK)
        return 2;
    c.dir = o->out ? strdup(o->out) : bd_strfmt("runs/%s", user->uid);
    /* ipc socket paths live in the run dir and must fit in sockaddr_un (108 bytes). */
    if (strlen(c.dir) + 40 > 100) {
        fprintf(stderr, "bodhi: run directory path '%s' is too long for its ipc sockets "
                        "(keep it under 60 characters; use a shorter --out)\n", c.dir);
        bd_runfile_destroy(user);
        free(c.dir);
        return 2;
    }
    if (o->has_seed) {
        char seed[32];
        snprintf(seed, sizeof seed, "%llu", (unsigned long long)o->seed);
        bd_node_set_scalar(user->effective, "seed", seed);
    }
    bd_rundir rd;
    int rc = bd_rundir_claim(c.dir, &rd);
    if (rc == BD_EINVAL) {
        fprintf(stderr, "bodhi run: %s\n", bd_lasterr());
        bd_runfile_destroy(user);
        free(c.dir);
        return 2;
    }
    if (rc == BD_OK && rd.moved_to)
        fprintf(stderr, "bodhi: the previous run in %s was moved to %s\n", c.dir, rd.moved_to);
    char *yml = bd_strfmt("%s/run.yml", c.dir);
    if (rc == BD_OK)
        rc = bd_runfile_write_effective(user, yml);
    /* From here on every process reads the same effective run file. */
    if (rc == BD_OK)
        rc = bd_runfile_load(yml, &c.rf);
    free(yml);
    char *h5 = bd_strfmt("%s/run.h5", c.dir);
    if (rc == BD_OK)
        rc = bd_trace_master_create(h5, user->text, c.rf->seed);
    free(h5);
    bd_runfile_destroy(user);
    if (rc != BD_OK) {
        fprintf(stderr, "bodhi: %s\n", bd_lasterr());
        bd_runfile_destroy(c.rf);
        bd_rundir_release(&rd);
        free(c.dir);
        return rc == BD_EINVAL || rc == BD_EPARSE ? 2 : 1;
    }
    char *logp = bd_strfmt("%s/log.jsonl", c.dir);
    c.log = logp ? fopen(logp, "a") : NULL;
    free(logp);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = bd_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    c.phases = cJSON_CreateArray();
    int result = 0;
    rc = bd_open_sockets(&c);
    if (rc != BD_OK) {
        snprintf(c.fail_msg, sizeof c.fail_msg, "%s", bd_lasterr());
        result = 1;
    }
    if (!o->quiet)
        fprintf(stderr, "bodhi: run %s (seed %llu) in %s\n", c.rf->uid,
                (unsigned long long)c.rf->seed, c.dir);
    for (int i = 0; i < c.rf->nphases && result == 0; i++) {
        cJSON *ph = cJSON_CreateObject();
        result = bd_run_phase(&c, i, ph);
        cJSON_AddItemToArray(c.phases, ph);
    }
    const char *status = result == 0 ? "done" : result == 1 ? "failed" : "interrupted";
    cJSON *end = bd_ev("end");
    cJSON_AddStringToObject(end, "status", status);
    bd_log(&c, end);
    cJSON_Delete(end);
    bd_write_summary(&c, status);
    if (result == 1)
        fprintf(stderr, "bodhi: run failed: %s\n", c.fail_msg);
    else if (!o->quiet)
        fprintf(stderr, "bodhi: run %s %s in %.1f s; results in %s\n", c.rf->uid, status,
                bd_now() - c.t0, c.dir);
    bd_events_close(c.ev);
    if (c.ctl_open)
        nng_close(c.ctl);
    if (c.log)
        fclose(c.log);
    cJSON_Delete(c.phases);
    bd_runfile_destroy(c.rf);
    bd_rundir_release(&rd);
    free(c.dir);
    return result == 0 ? 0 : result == 1 ? 1 : result == SIGTERM ? 143 : 130;
}

int bd_conductor_status(const char *run_dir)
{
    char *url = bd_url_control(run_dir);
    nng_socket s;
    int rv = url ? nng_req0_open(&s) : NNG_ENOMEM;
    int answered = 0;
    if (rv == 0) {
        nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 2000);
        nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, 1000);
        char *path = bd_strfmt("%s/control", run_dir);
        int live = path && bd_exists(path);
        free(path);
        if (live && nng_dial(s, url, NULL, 0) == 0) {
            nng_msg *m;
            uint8_t *p;
            if (bd_wire_msg_alloc(&m, BD_MSG_STATUS, 0, 1, 0, &p) == BD_OK) {
                if (nng_sendmsg(s, m, 0) != 0)
                    nng_msg_free(m);
                else if (nng_recvmsg(s, &m, 0) == 0) {
                    bd_wire_header h;
                    if (bd_wire_msg_decode(m, BD_MSG_STATUS, &h, (const uint8_t **)&p) == BD_OK) {
                        printf("%.*s\n", (int)h.payload_len, (const char *)p);
                        answered = 1;
                    }
                    nng_msg_free(m);
                }
            }
        }
        nng_close(s);
    }
    free(url);
    if (answered)
        return 0;
    char *sum = bd_strfmt("%s/summary.json", run_dir), *text = NULL;
    if (sum && bd_read_file(sum, &text, NULL) == BD_OK) {
        printf("%s\n", text);
        free(text);
        free(sum);
        return 0;
    }
    free(sum);
    fprintf(stderr, "bodhi status: %s: no running conductor answers and there is no summary.json\n",
            run_dir);
    return 2;
}
