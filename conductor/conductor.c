/* conductor.c: `bodhi run` and `bodhi check` (see conductor.h).
 *
 * Children are this executable (/proc/self/exe) started with posix_spawn, which execs at
 * once (no code runs in a forked copy of a process that has NNG threads), so spawning
 * after NNG is up is safe. Each child sets PR_SET_PDEATHSIG itself and inherits the run
 * directory's lock, so none outlives the conductor for long and the directory stays
 * claimed while any of them lives.
 *
 * One thread does everything: it takes what arrives on the control socket (events,
 * heartbeats, status queries; wire/serve.h) in 50 ms slices, reaps children with
 * waitpid(-1, WNOHANG), restarts muscles that died or stopped beating, and watches for
 * signals. Each brain reports every round and waits for the answer; the conductor answers
 * a round's reports together, once every brain has reported it: whether the phase goes on
 * (it ends when an agent's stop conditions hold) and which restarted muscles every brain
 * has greeted, to take part from the next round. */
#define _GNU_SOURCE
#include "conductor/conductor.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "common/proc.h"
#include "common/util.h"
#include "config/check.h"
#include "config/plan.h"
#include "config/runfile.h"
#include "conductor/builtins.h"
#include "conductor/ipcguard.h"
#include "conductor/rundir.h"
#include "conductor/run.h"
#include "conductor/supervise.h"
#include "memory/memory.h"
#include "wire/addr.h"
#include "wire/serve.h"
#include "wire/tls.h"
#include "wire/wire.h"

volatile sig_atomic_t bd_signal_seen = 0, bd_signals = 0;

static void bd_on_signal(int sig)
{
    bd_signal_seen = sig;
    bd_signals++;
}

/* ---- validation ----------------------------------------------------------------------- */

/* An agent's ids for `bodhi check`: all of them when few (8 at most), else the patterns
 * the run file gives, when fewer ("tag.tagger.*"), else the first three and a count. */
static void bd_print_ids(char *const *ids, int n, const char *const *patterns, int npat)
{
    if (n <= 8) {
        for (int s = 0; s < n; s++)
            printf("%s%s", s ? " " : "", ids[s]);
    } else if (npat < 4) {
        for (int s = 0; s < npat; s++)
            printf("%s%s", s ? " " : "", patterns[s]);
    } else {
        printf("%s %s %s ... and %d more", ids[0], ids[1], ids[2], n - 3);
    }
}

/* The run file and the command line through config/'s one gate (config/check.h); prints
 * every problem. With verbose (bodhi check), describes each phase. */
static int bd_validate(const bd_check_opts *co, bd_runfile **out, int verbose)
{
    bd_diags d = BD_DIAGS_INIT;
    int rc = bd_config_check(co, bd_registry_builtin(), &d, out);
    if (rc != BD_OK) {
        bd_diags_print(&d, stderr, 100);
        if (d.n + d.more > 1)
            fprintf(stderr, "%s: %ld problems\n", co->path, (long)d.n + d.more);
        bd_diags_fini(&d);
        return rc;
    }
    bd_diags_fini(&d);
    for (int i = 0; verbose && i < (*out)->nphases; i++) {
        bd_phase_plan p;
        if (bd_phase_plan_make(*out, i, bd_registry_builtin(), co->device, &p) == BD_OK) {
            char *envs = bd_phase_envs_text(&p);
            printf("phase %s (%s): %s on %s, %d muscle(s)", p.ph->name,
                   p.ph->mode == BD_MODE_TRAIN ? "train" : "test", envs ? envs : "?",
                   p.device == BD_DEVICE_CUDA ? "cuda" : "cpu", p.worker);
            free(envs);
            if (p.remote)
                printf(" and %d remote", p.remote);
            printf("\n");
            for (int a = 0; a < p.nagents; a++) {
                const bd_agent_cfg *ac = p.agents[a].cfg;
                printf("  agent %s: brain %s, %d sensors (", ac->name, ac->brain.name, p.agents[a].nsens);
                bd_print_ids(p.agents[a].sensor_ids, p.agents[a].nsens, ac->sensors, ac->nsensors);
                printf("), actuators (");
                bd_print_ids(p.agents[a].actuator_ids, p.agents[a].nact, ac->actuators, ac->nactuators);
                printf(")");
                const bd_agent_plan *ap = &p.agents[a];
                if (ap->load_phase && !ap->random)
                    printf(", loads %s/%s%s%s", ap->load_phase, ap->load_agent, ap->load_run ? " of " : "",
                           ap->load_run ? ap->load_run : "");
                printf("\n");
            }
        }
        bd_phase_plan_fini(&p);
    }
    return BD_OK;
}

int bd_conductor_check(const bd_run_opts *o)
{
    bd_runfile *rf = NULL;
    bd_check_opts co = {.path = o->path, .device = o->device, .has_seed = o->has_seed, .seed = o->seed,
                        .out = o->out, .listen = o->listen != NULL, .listen_url = o->listen,
                        .out_check = bd_rundir_check, .listen_check = bd_tcp_bind_probe};
    if (bd_validate(&co, &rf, 1) != BD_OK)
        return 2;
    printf("%s: ok (uid %s, seed %llu, %d phase(s))\n", o->path, rf->uid,
           (unsigned long long)rf->seed, rf->nphases);
    bd_runfile_destroy(rf);
    return 0;
}

/* ---- children ------------------------------------------------------------------------- */

/* ---- the control socket ---------------------------------------------------------------- */

/* ---- phases --------------------------------------------------------------------------- */

/* Runs phase i to its end. Returns 0 done, 1 failed, or 128 + the signal seen (SIGHUP is
 * 1: a bare signal number would read as failed). */
static int bd_run_phase(bd_conductor *c, int i, cJSON *phase_out)
{
    bd_phase_plan p;
    int rc = bd_phase_plan_make(c->rf, i, bd_registry_builtin(), c->o->device, &p);
    if (rc != BD_OK) {
        bd_fail(c, "%s", bd_lasterr());
        return 1;
    }
    c->plan = &p;
    c->phase = p.ph->name;
    c->stopping = 0;
    c->ended[0] = '\0';
    c->ended_code = BD_STOP_NONE;
    c->nagents = p.nagents;
    c->agents = calloc((size_t)p.nagents, sizeof *c->agents);
    const char **names = calloc((size_t)p.nagents + 1, sizeof *names);
    char *h5 = bd_strfmt("%s/run.h5", c->dir);
    for (int a = 0; a < p.nagents && c->agents && names; a++) {
        snprintf(c->agents[a].name, sizeof c->agents[a].name, "%s", p.agents[a].cfg->name);
        names[a] = p.agents[a].cfg->name;
        char *target = bd_strfmt("memory/%s.%s.h5", p.ph->name, p.agents[a].cfg->name);
        if (!target || bd_trace_master_link(h5, p.ph->name, p.agents[a].cfg->name, target) != BD_OK)
            fprintf(stderr, "bodhi: run.h5 link: %s\n", bd_lasterr());
        free(target);
    }
    free(h5);
    if (!c->agents || !names || bd_procs_init(&c->procs, p.nagents, names, p.muscles, p.worker) != BD_OK) {
        free(names);
        free(c->agents);
        c->agents = NULL;
        bd_phase_plan_fini(&p);
        bd_fail(c, "out of memory");
        return 1;
    }
    free(names);
    cJSON *o = bd_ev("phase");
    cJSON_AddStringToObject(o, "phase", p.ph->name);
    cJSON_AddStringToObject(o, "mode", p.ph->mode == BD_MODE_TRAIN ? "train" : "test");
    cJSON_AddStringToObject(o, "device", p.device == BD_DEVICE_CUDA ? "cuda" : "cpu");
    long long worlds = 0;
    cJSON *envs = cJSON_AddArrayToObject(o, "environments");
    for (int k = 0; k < p.nenvs; k++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "uid", p.envs[k].uid);
        cJSON_AddStringToObject(e, "name", p.envs[k].desc->name);
        cJSON_AddNumberToObject(e, "worlds", (double)p.envs[k].worlds);
        cJSON_AddNumberToObject(e, "agents_per_world", p.envs[k].shape.members);
        cJSON_AddItemToArray(envs, e);
        worlds += p.envs[k].worlds;
    }
    cJSON_AddNumberToObject(o, "worlds", (double)worlds);
    cJSON_AddNumberToObject(o, "worker", p.worker);
    cJSON_AddNumberToObject(o, "remote_worker", p.remote);
    bd_log(c, o);
    cJSON_Delete(o);
    if (!c->o->quiet) {
        char *et = bd_phase_envs_text(&p);
        fprintf(stderr, "bodhi: phase %s (%s): %s on %s, %d muscle(s), %d agent(s)\n",
                p.ph->name, p.ph->mode == BD_MODE_TRAIN ? "train" : "test", et ? et : "?",
                p.device == BD_DEVICE_CUDA ? "cuda" : "cpu", p.muscles, p.nagents);
        free(et);
    }
    double t0 = bd_now();
    c->nlost = 0;
    c->join_by = p.remote > 0 ? t0 + p.ph->join_timeout : 0;
    if (p.remote > 0 && !c->o->quiet)
        fprintf(stderr, "bodhi: waiting up to %.0f s for %d remote muscle(s): bodhi muscle --connect %s "
                        "--credential %s\n", p.ph->join_timeout, p.remote, c->o->listen,
                c->o->credential ? c->o->credential : "RUN_DIR/remote.key");
    if (bd_start_phase(c, &p) != BD_OK)
        bd_fail(c, "%s", bd_lasterr());
    if (c->startup) { /* the first phase's children are on their way */
        bd_startup_mark(c->startup, "spawned");
        bd_startup_since(c, c->startup);
        bd_log(c, c->startup);
        cJSON_Delete(c->startup);
        c->startup = NULL;
    }
    double stop_at = 0;
    int sig = 0;
    c->last_slice = bd_now();
    while (bd_procs_alive(&c->procs) > 0) {
        bd_serve(c, 50);
        bd_reap(c);
        if (!sig && bd_signal_seen)
            sig = bd_signal_seen;
        bd_excuse_stall(c, &stop_at);
        if (!sig && !c->failed)
            bd_deadlines(c);
        if ((sig || c->failed) && stop_at == 0) {
            bd_procs_signal(&c->procs, SIGTERM);
            stop_at = bd_now() + BD_STOP_GRACE_S;
        }
        /* past the grace, or a second Ctrl-C: at once */
        if (stop_at > 0 && (bd_now() > stop_at || bd_signals > 1)) {
            bd_procs_signal(&c->procs, SIGKILL);
            stop_at = bd_now() + 3600;
        }
    }
    /* A brain's last events arrive before it exits, but take whatever is left. */
    bd_serve(c, 0);
    double wall = bd_now() - t0;
    int started = 0; /* some brain reported a round: the phase was past its start-up */
    for (int a = 0; a < c->nagents; a++)
        started |= c->agents[a].last_update != NULL || bd_num(c->agents[a].result, "steps", 0) > 0;
    const char *ended;
    const bd_stop code = bd_phase_outcome(c, sig, started, &ended);
    cJSON_AddStringToObject(phase_out, "name", p.ph->name);
    cJSON_AddStringToObject(phase_out, "mode", p.ph->mode == BD_MODE_TRAIN ? "train" : "test");
    cJSON_AddStringToObject(phase_out, "ended", ended);
    /* the reason alone, for programs: objective_reached, episodes_done, step_cap, ... */
    cJSON_AddStringToObject(phase_out, "reason", bd_stop_name(code));
    cJSON_AddNumberToObject(phase_out, "wall_s", wall);
    int restarts = 0;
    for (int k = 0; k < c->procs.n; k++)
        restarts += c->procs.p[k].restarts;
    cJSON_AddNumberToObject(phase_out, "restarts", restarts);
    cJSON *agents = cJSON_AddArrayToObject(phase_out, "agents");
    for (int a = 0; a < c->nagents; a++) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "name", c->agents[a].name);
        bd_agent_counts(c, &c->agents[a], j);
        cJSON_AddItemToArray(agents, j);
        const cJSON *r = j;
        if (!c->o->quiet && (c->agents[a].result || c->agents[a].last_update || bd_num(r, "steps", 0) > 0))
            fprintf(stderr, "bodhi: phase %s agent %s: %.0f episodes, mean return %.1f (last %.0f), "
                            "max %.1f, %.0f steps in %.1f s\n",
                    p.ph->name, c->agents[a].name, bd_num(r, "episodes", 0), bd_num(r, "mean_return", 0),
                    fmin(bd_num(r, "episodes", 0), 100), bd_num(r, "max_return", 0), bd_num(r, "steps", 0), wall);
        cJSON_Delete(c->agents[a].last_update);
        cJSON_Delete(c->agents[a].result);
    }
    if (!c->o->quiet && (!c->failed || c->diverged) && (!sig || !started))
        fprintf(stderr, "bodhi: phase %s ended: %s\n", p.ph->name, ended);
    o = bd_ev("phase_end");
    cJSON_AddStringToObject(o, "phase", p.ph->name);
    cJSON_AddStringToObject(o, "ended", ended);
    bd_log(c, o);
    cJSON_Delete(o);
    free(c->agents);
    c->agents = NULL;
    c->nagents = 0;
    bd_procs_fini(&c->procs);
    bd_phase_plan_fini(&p);
    c->plan = NULL;
    c->phase = NULL;
    if (sig)
        return 128 + sig;
    return c->failed ? 1 : 0;
}

int bd_conductor_run(const bd_run_opts *o)
{
    bd_conductor c;
    memset(&c, 0, sizeof c);
    c.o = o;
    c.t0 = bd_now();
    c.startup = bd_startup_new("conductor");
    const cJSON *ex = cJSON_GetObjectItemCaseSensitive(c.startup, "exec");
    c.exec_t = cJSON_IsNumber(ex) ? ex->valuedouble : bd_main_t;
    snprintf(c.parent, sizeof c.parent, "%d", (int)getpid());
    bd_runfile *user = NULL;
    bd_check_opts co = {.path = o->path, .device = o->device, .has_seed = o->has_seed, .seed = o->seed,
                        .out = o->out, .listen = o->listen != NULL, .listen_url = o->listen,
                        .out_check = bd_rundir_check, .listen_check = bd_tcp_bind_probe};
    if (bd_validate(&co, &user, 0) != BD_OK) {
        cJSON_Delete(c.startup);
        return 2;
    }
    bd_startup_mark(c.startup, "plan");
    if (o->listen && bd_credential_prepare(&c) != BD_OK) {
        fprintf(stderr, "bodhi run: %s\n", bd_lasterr());
        cJSON_Delete(c.startup);
        bd_tls_destroy(c.tls);
        bd_runfile_destroy(user);
        return 2;
    }
    c.dir = bd_config_run_dir(&co, user);
    bd_rundir rd;
    int rc = bd_rundir_claim(c.dir, &rd);
    if (rc == BD_EINVAL) {
        fprintf(stderr, "bodhi run: %s\n", bd_lasterr());
        cJSON_Delete(c.startup);
        bd_rundir_release(&rd);
        bd_runfile_destroy(user);
        bd_tls_destroy(c.tls);
        free(c.dir);
        return 2;
    }
    if (rc == BD_OK && rd.moved_to) {
        char *aside = bd_rundir_aside_text(c.dir, rd.moved_to);
        fprintf(stderr, "bodhi: the previous run in %s was moved to %s\n", c.dir, aside ? aside : rd.moved_to);
        free(aside);
    }
    char *yml = bd_strfmt("%s/run.yml", c.dir);
    if (rc == BD_OK)
        rc = bd_runfile_write_effective(user, yml);
    /* From here on every process reads the same effective run file: the children check
     * it against this text's SHA-256, given on their command line. */
    if (rc == BD_OK)
        rc = yml ? bd_read_file(yml, &c.run_yml, NULL) : bd_seterr(BD_ENOMEM, "out of memory");
    if (rc == BD_OK) {
        bd_sha256_hex(c.run_yml, strlen(c.run_yml), c.run_digest);
        rc = bd_runfile_parse(c.run_yml, yml, &c.rf);
    }
    free(yml);
    char *h5 = bd_strfmt("%s/run.h5", c.dir);
    if (rc == BD_OK)
        rc = bd_trace_master_create(h5, user->text, c.rf->seed);
    free(h5);
    bd_startup_mark(c.startup, "trace"); /* run.yml and run.h5 written */
    if (rc == BD_OK)
        rc = bd_sockdir_create(c.dir, &c.sockdir);
    if (rc == BD_OK)
        rc = bd_credential_write(&c);
    bd_runfile_destroy(user);
    if (rc != BD_OK) {
        fprintf(stderr, "bodhi: %s\n", bd_lasterr());
        cJSON_Delete(c.startup);
        bd_runfile_destroy(c.rf);
        free(c.run_yml);
        bd_tls_destroy(c.tls);
        bd_rundir_release(&rd);
        free(c.dir);
        return rc == BD_EINVAL || rc == BD_EPARSE ? 2 : 1;
    }
    char *logp = bd_strfmt("%s/log.jsonl", c.dir);
    c.log = logp ? fopen(logp, "ae") : NULL;
    free(logp);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = bd_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    /* a closed terminal or a dropped ssh session stops the run as SIGTERM does; the
     * terminal may be gone, so a failed write to it is an error, not a signal */
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    c.phases = cJSON_CreateArray();
    int result = 0;
    if (bd_open_hub(&c) != BD_OK) {
        bd_fail(&c, "%s", bd_lasterr());
        result = 1;
    }
    bd_startup_mark(c.startup, "sockets");
    if (!o->quiet)
        fprintf(stderr, "bodhi: run %s (seed %llu) in %s\n", c.rf->uid,
                (unsigned long long)c.rf->seed, c.dir);
    for (int i = 0; i < c.rf->nphases && result == 0; i++) {
        cJSON *ph = cJSON_CreateObject();
        result = bd_run_phase(&c, i, ph);
        cJSON_AddItemToArray(c.phases, ph);
    }
    bd_join_farewell(&c);
    const char *status = result == 0 ? "done" : result == 1 ? (c.diverged ? "diverged" : "failed") : "interrupted";
    cJSON *end = bd_ev("end");
    cJSON_AddStringToObject(end, "status", status);
    if (c.fail_msg[0])
        cJSON_AddStringToObject(end, "error", c.fail_msg);
    char why[256];
    uint64_t rejected = c.hub ? bd_server_rejected(c.hub, why, sizeof why) : 0;
    if (rejected) { /* garbage sent to the control socket, dropped */
        cJSON_AddNumberToObject(end, "rejected_messages", (double)rejected);
        cJSON_AddStringToObject(end, "last_rejected", why);
    }
    uint64_t door = c.door ? bd_server_rejected(c.door, why, sizeof why) : 0;
    if (door) { /* malformed, or over the door's connection cap */
        cJSON_AddNumberToObject(end, "door_rejected", (double)door);
        cJSON_AddStringToObject(end, "door_last_rejected", why);
    }
    if (c.refused) { /* well-formed, but not what the door (or the control socket) takes from its sender */
        cJSON_AddNumberToObject(end, "refused_messages", (double)c.refused);
        cJSON_AddStringToObject(end, "last_refused", c.refused_why);
    }
    bd_log(&c, end);
    cJSON_Delete(end);
    bd_write_summary(&c, status);
    if (result == 1 && c.diverged) /* fail_msg: "diverged: why (agent)" */
        fprintf(stderr, "bodhi: run %s\n", c.fail_msg);
    else if (result == 1)
        fprintf(stderr, "bodhi: run failed: %s\n", c.fail_msg);
    else /* the one line --quiet keeps */
        fprintf(stderr, "bodhi: run %s %s in %.1f s; results in %s\n", c.rf->uid, status,
                bd_now() - c.t0, c.dir);
    bd_ipc_guard_destroy(c.guard);
    bd_server_close(c.hub);
    bd_server_close(c.door);
    bd_tls_destroy(c.tls);
    bd_sockdir_remove(c.dir, c.sockdir);
    free(c.sockdir);
    free(c.run_yml);
    free(c.brain_tcp);
    if (c.log)
        fclose(c.log);
    cJSON_Delete(c.phases);
    cJSON_Delete(c.startup);
    bd_runfile_destroy(c.rf);
    bd_rundir_release(&rd);
    free(c.dir);
    /* 128 + the signal: 130 Ctrl-C, 143 SIGTERM, 129 SIGHUP */
    return result;
}
