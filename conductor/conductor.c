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
 * has greeted, to take part from the next round.
 *
 * This file holds the run and its phases from start to end; the concerns it calls on
 * live beside it, sharing the run's state through run.h: supervision (children.c), the
 * round barrier and stop decision (rounds.c), remote joins (join.c), requests
 * (dispatch.c) and what is written down (journal.c). */
#define _GNU_SOURCE
#include "conductor/conductor.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "brain/ranks.h"
#include "common/proc.h"
#include "common/launch.h"
#include "common/util.h"
#include "config/check.h"
#include "config/plan.h"
#include "config/runfile.h"
#include "conductor/builtins.h"
#include "conductor/rundir.h"
#include "conductor/run.h"
#include "conductor/supervise.h"
#include "memory/memory.h"
#include "wire/addr.h"
#include "wire/serve.h"
#include "wire/tls.h"
#include "wire/wire.h"

volatile sig_atomic_t bd_signal_seen = 0, bd_signals = 0;

/* Signals this close to the first are the first again: GNU timeout sends its signal to the
 * command and then to its whole process group, a closed terminal's SIGHUP can come with a
 * SIGTERM, so the conductor got two at once, took the second for a second Ctrl-C and killed
 * the brains at once, before they saved their checkpoints (a run of three ranks under
 * `timeout` lost a rank's brain that way). A person's second Ctrl-C, after the message that
 * offers it, comes later. */
#define BD_SIGNAL_SAME_NS 300000000LL
static volatile long long bd_first_signal_ns = 0;

static void bd_on_signal(int sig)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now); /* async-signal-safe */
    const long long ns = (long long)now.tv_sec * 1000000000LL + now.tv_nsec;
    bd_signal_seen = sig;
    if (bd_signals == 0)
        bd_first_signal_ns = ns;
    if (bd_signals == 0 || ns - bd_first_signal_ns > BD_SIGNAL_SAME_NS)
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

int bd_conductor_check(const bd_run_opts *o, bd_runfile **checked)
{
    bd_runfile *rf = NULL;
    if (checked)
        *checked = NULL;
    bd_check_opts co = {.path = o->path, .device = o->device, .has_seed = o->has_seed, .seed = o->seed,
                        .out = o->out, .listen = o->listen != NULL, .listen_url = o->listen,
                        .out_check = bd_rundir_check, .listen_check = bd_tcp_bind_probe};
    if (bd_validate(&co, &rf, 1) != BD_OK)
        return 2;
    printf("%s: ok (uid %s, seed %llu, %d phase(s))\n", o->path, rf->uid,
           (unsigned long long)rf->seed, rf->nphases);
    if (checked)
        *checked = rf;
    else
        bd_runfile_destroy(rf);
    return 0;
}

/* ---- children ------------------------------------------------------------------------- */

/* ---- the control socket ---------------------------------------------------------------- */

/* ---- phases --------------------------------------------------------------------------- */

/* Rank 0 of a run of many ranks links every other rank's trace of agent from its run.h5,
 * as /<phase>/<agent>.r<k>: rank k writes it in its own run folder beside rank 0's
 * (<RUN_DIR>.r<k>/memory/<phase>.<agent>.r<k>.h5, cli/run.c), found relative to run.h5 on
 * shared storage; a rank that kept its folder on its own disk leaves a link that
 * bodhi replay names as missing, with the path it looked for. */
static void bd_link_ranks(bd_conductor *c, const char *h5, const char *phase, const char *agent)
{
    const char *r = getenv("BODHI_RANK");
    const long long world = bd_rank_world();
    long long rank = 0;
    if (!h5 || world < 2 || !r || bd_parse_ll(r, 0, world - 1, &rank) != BD_OK || rank != 0)
        return;
    size_t n = strlen(c->dir);
    while (n > 1 && c->dir[n - 1] == '/')
        n--;
    size_t b = n;
    while (b > 0 && c->dir[b - 1] != '/')
        b--;
    for (long long k = 1; k < world; k++) {
        char *name = bd_strfmt("%s.r%lld", agent, k);
        int taken = 0; /* an agent of the phase already has that name: its own link stays */
        for (int a = 0; name && a < c->plan->nagents; a++)
            taken |= strcmp(c->plan->agents[a].cfg->name, name) == 0;
        if (taken) {
            fprintf(stderr, "bodhi: run.h5: rank %lld's trace of %s is not linked: agent %s has that name; "
                            "read it from its run folder\n", k, agent, name);
            free(name);
            continue;
        }
        char *target = bd_strfmt("../%.*s.r%lld/memory/%s.%s.r%lld.h5", (int)(n - b), c->dir + b, k, phase, agent, k);
        if (!name || !target || bd_trace_master_link_as(h5, phase, name, agent, target) != BD_OK)
            fprintf(stderr, "bodhi: run.h5 link of rank %lld: %s\n", k, bd_lasterr());
        free(name);
        free(target);
    }
}

/* Phase i's plan into *p and the conductor's state for it: its agents (each linked into
 * run.h5) and its process slots. BD_OK, or the run failed (with nothing left to free). */
static int bd_phase_open(bd_conductor *c, int i, bd_phase_plan *p)
{
    int rc = bd_phase_plan_make(c->rf, i, bd_registry_builtin(), c->o->device, p);
    if (rc != BD_OK) {
        bd_fail(c, "%s", bd_lasterr());
        return rc;
    }
    c->plan = p;
    c->phase = p->ph->name;
    c->stopping = 0;
    c->stop_asked = 0;
    c->ended[0] = '\0';
    c->ended_code = BD_STOP_NONE;
    c->nagents = p->nagents;
    c->agents = calloc((size_t)p->nagents, sizeof *c->agents);
    const char **names = calloc((size_t)p->nagents + 1, sizeof *names);
    char *h5 = bd_strfmt("%s/run.h5", c->dir);
    char sfx[16];
    for (int a = 0; a < p->nagents && c->agents && names; a++) {
        snprintf(c->agents[a].name, sizeof c->agents[a].name, "%s", p->agents[a].cfg->name);
        names[a] = p->agents[a].cfg->name;
        char *target = bd_strfmt("memory/%s.%s%s.h5", p->ph->name, p->agents[a].cfg->name, bd_rank_suffix(sfx, sizeof sfx));
        if (!target || bd_trace_master_link(h5, p->ph->name, p->agents[a].cfg->name, target) != BD_OK)
            fprintf(stderr, "bodhi: run.h5 link: %s\n", bd_lasterr());
        free(target);
        bd_link_ranks(c, h5, p->ph->name, p->agents[a].cfg->name);
    }
    free(h5);
    if (!c->agents || !names || bd_procs_init(&c->procs, p->nagents, names, p->muscles, p->worker) != BD_OK) {
        free(names);
        free(c->agents);
        c->agents = NULL;
        bd_phase_plan_fini(p);
        bd_fail(c, "out of memory");
        return BD_ENOMEM;
    }
    free(names);
    return BD_OK;
}

/* Frees what bd_phase_open made. */
static void bd_phase_close(bd_conductor *c, bd_phase_plan *p)
{
    for (int a = 0; a < c->nagents; a++) {
        cJSON_Delete(c->agents[a].last_update);
        cJSON_Delete(c->agents[a].result);
        cJSON_Delete(c->agents[a].steer_news); /* changes of the phase's last round: not taken */
        bd_steer_fini(&c->agents[a].steer);
        if (bd_tfevents_close(c->agents[a].tb) != BD_OK)
            fprintf(stderr, "bodhi: %s\n", bd_lasterr());
    }
    free(c->agents);
    c->agents = NULL;
    c->nagents = 0;
    bd_procs_fini(&c->procs);
    bd_phase_plan_fini(p);
    c->plan = NULL;
    c->phase = NULL;
}

/* A rank of several whose run fails before its brains start (the run file refused here,
 * the run directory, the phase's plan, a spawn) has no brain to tell the others, whose
 * brains wait to join this rank's: it says so (bd_ranks_say_left), for `phase` (NULL:
 * before any phase, for the whole run), and their joins fail now, naming it, not at their
 * timeout. Brains that started speak for themselves (brain/ranks.h; their conductor, for
 * one killed). Not when another live process holds this rank's run directory (`out`, when
 * the run had not claimed it): this rank started twice (this one's word would stop the
 * launch that runs), or processes of an earlier run still live there (then the others
 * wait out their timeout, as before). */
static void bd_left_before_brains(const char *phase, const char *out, const char *why)
{
    int owner;
    if (!getenv("BODHI_GROUP_LEFT") || (out && bd_rundir_live(out, &owner)))
        return;
    const char *rk = getenv("BODHI_RANK");
    const int rank = rk ? atoi(rk) : 0;
    char *w = bd_strfmt("its bodhi run failed before its brains started: %s",
                        why && *why ? why : "its output says why");
    if (!w || bd_ranks_say_left(rank, phase, w) != BD_OK)
        fprintf(stderr, "bodhi: rank %d could not tell the other ranks it failed: %s\n", rank, bd_lasterr());
    free(w);
}

/* Runs phase i to its end, its entry of summary.json's phases into phase_out. Returns 0
 * done, 1 failed, or 128 + the signal seen (SIGHUP is 1: a bare signal number would read
 * as failed). */
static int bd_run_phase(bd_conductor *c, int i, cJSON *phase_out)
{
    bd_phase_plan p;
    if (bd_phase_open(c, i, &p) != BD_OK) {
        bd_left_before_brains(c->rf->phases[i].name, NULL, c->fail_msg);
        return 1;
    }
    bd_journal_phase(c);
    const double t0 = bd_now();
    bd_join_phase_open(c, t0);
    if (bd_start_phase(c, &p) != BD_OK) {
        bd_fail(c, "%s", bd_lasterr());
        bd_left_before_brains(p.ph->name, NULL, c->fail_msg);
    }
    if (c->startup) { /* the first phase's children are on their way */
        bd_startup_mark(c->startup, "spawned");
        bd_startup_since(c, c->startup);
        bd_log(c, c->startup);
        cJSON_Delete(c->startup);
        c->startup = NULL;
    }
    const int sig = bd_supervise(c);
    /* A brain's last events arrive before it exits, but take whatever is left. */
    bd_serve(c, 0);
    bd_journal_phase_end(c, sig, bd_now() - t0, phase_out);
    bd_phase_close(c, &p);
    if (sig)
        return 128 + sig;
    if (!c->failed && c->ended_code == BD_STOP_INTERRUPTED) /* on another rank (bd_rank_stop): as Ctrl-C's */
        return 128 + SIGINT;
    return c->failed ? 1 : 0;
}

/* Everything before the first phase: the run file checked, the credential (--listen), the
 * run directory claimed (*rd), run.yml, run.h5 and the socket folder written. 0, or the
 * exit code to return with (2 bad input, 1 failed) with everything undone and the
 * directory released. */
static int bd_run_open(bd_conductor *c, bd_rundir *rd)
{
    const bd_run_opts *o = c->o;
    bd_runfile *user = NULL;
    bd_check_opts co = {.path = o->path, .device = o->device, .has_seed = o->has_seed, .seed = o->seed,
                        .out = o->out, .listen = o->listen != NULL, .listen_url = o->listen,
                        .out_check = bd_rundir_check, .listen_check = bd_tcp_bind_probe};
    if (bd_validate(&co, &user, 0) != BD_OK) {
        cJSON_Delete(c->startup);
        return 2;
    }
    bd_startup_mark(c->startup, "plan");
    if (o->listen && bd_credential_prepare(c) != BD_OK) {
        fprintf(stderr, "bodhi run: %s\n", bd_lasterr());
        cJSON_Delete(c->startup);
        bd_tls_destroy(c->tls);
        bd_runfile_destroy(user);
        return 2;
    }
    c->dir = bd_config_run_dir(&co, user);
    int rc = bd_rundir_claim(c->dir, rd);
    if (rc == BD_EINVAL) {
        fprintf(stderr, "bodhi run: %s\n", bd_lasterr());
        cJSON_Delete(c->startup);
        bd_rundir_release(rd);
        bd_runfile_destroy(user);
        bd_tls_destroy(c->tls);
        free(c->dir);
        return 2;
    }
    if (rc == BD_OK && rd->moved_to) {
        char *aside = bd_rundir_aside_text(c->dir, rd->moved_to);
        fprintf(stderr, "bodhi: the previous run in %s was moved to %s\n", c->dir, aside ? aside : rd->moved_to);
        free(aside);
    }
    char *yml = bd_strfmt("%s/run.yml", c->dir);
    if (rc == BD_OK)
        rc = bd_runfile_write_effective(user, yml);
    /* From here on every process reads the same effective run file: the children check
     * it against this text's SHA-256, given on their command line. */
    if (rc == BD_OK)
        rc = yml ? bd_read_file(yml, &c->run_yml, NULL) : bd_seterr(BD_ENOMEM, "out of memory");
    if (rc == BD_OK) {
        bd_sha256_hex(c->run_yml, strlen(c->run_yml), c->run_digest);
        rc = bd_runfile_parse(c->run_yml, yml, &c->rf);
    }
    free(yml);
    char *h5 = bd_strfmt("%s/run.h5", c->dir);
    if (rc == BD_OK)
        rc = bd_trace_master_create(h5, user->text, c->rf->seed);
    free(h5);
    bd_startup_mark(c->startup, "trace"); /* run.yml and run.h5 written */
    if (rc == BD_OK)
        rc = bd_sockdir_create(c->dir, &c->sockdir);
    if (rc == BD_OK)
        rc = bd_credential_write(c);
    bd_runfile_destroy(user);
    if (rc != BD_OK) {
        fprintf(stderr, "bodhi: %s\n", bd_lasterr());
        cJSON_Delete(c->startup);
        bd_runfile_destroy(c->rf);
        free(c->run_yml);
        bd_tls_destroy(c->tls);
        bd_rundir_release(rd);
        free(c->dir);
        return rc == BD_EINVAL || rc == BD_EPARSE ? 2 : 1;
    }
    return 0;
}

/* SIGINT, SIGTERM and SIGHUP stop the run (bd_signal_seen); SIGPIPE is ignored. */
static void bd_catch_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = bd_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGINT); /* one handler at a time: it counts */
    sigaddset(&sa.sa_mask, SIGTERM);
    sigaddset(&sa.sa_mask, SIGHUP);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    /* a closed terminal or a dropped ssh session stops the run as SIGTERM does; the
     * terminal may be gone, so a failed write to it is an error, not a signal */
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

/* Frees what bd_run_open and the run made, and releases the run directory. */
static void bd_run_close(bd_conductor *c, bd_rundir *rd)
{
    bd_server_close(c->hub);
    bd_server_close(c->door);
    bd_tls_destroy(c->tls);
    bd_sockdir_remove(c->dir, c->sockdir);
    free(c->sockdir);
    free(c->run_yml);
    free(c->brain_tcp);
    if (c->log)
        fclose(c->log);
    cJSON_Delete(c->phases);
    cJSON_Delete(c->startup);
    bd_runfile_destroy(c->rf);
    bd_rundir_release(rd);
    free(c->dir);
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
    bd_rundir rd;
    int result = bd_run_open(&c, &rd);
    if (result != 0) {
        bd_left_before_brains(NULL, o->out, bd_lasterr());
        return result;
    }
    char *logp = bd_strfmt("%s/log.jsonl", c.dir);
    c.log = logp ? fopen(logp, "ae") : NULL;
    free(logp);
    bd_catch_signals();
    c.phases = cJSON_CreateArray();
    if (bd_open_hub(&c) != BD_OK) {
        bd_fail(&c, "%s", bd_lasterr());
        bd_left_before_brains(NULL, NULL, c.fail_msg);
        result = 1;
    }
    bd_startup_mark(c.startup, "sockets");
    if (!o->quiet)
        fprintf(stderr, "bodhi: run %s (seed %llu) in %s\n", c.rf->uid,
                (unsigned long long)c.rf->seed, c.dir);
    for (int i = 0; i < c.rf->nphases && result == 0 && !c.run_stopped; i++) { /* bodhi stop: no later phase */
        cJSON *ph = cJSON_CreateObject();
        result = bd_run_phase(&c, i, ph);
        cJSON_AddItemToArray(c.phases, ph);
    }
    bd_join_farewell(&c);
    bd_journal_end(&c, result);
    bd_run_close(&c, &rd);
    /* 128 + the signal: 130 Ctrl-C, 143 SIGTERM, 129 SIGHUP */
    return result;
}
