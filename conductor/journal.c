/* journal.c: what the conductor writes down (see run.h): log.jsonl's events, summary.json
 * and the lines on stderr. */
#define _GNU_SOURCE
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/launch.h"
#include "common/util.h"
#include "conductor/run.h"
#include "memory/memory.h"

void bd_log(bd_conductor *c, cJSON *o)
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

/* A "startup" event (common/proc.h) gets "since_run_s": each stamp in seconds since
 * `bodhi run` was exec'd, the start-up breakdown as a user reads it. */
void bd_startup_since(const bd_conductor *c, cJSON *o)
{
    cJSON *rel = cJSON_CreateObject();
    for (const cJSON *x = o->child; x && rel; x = x->next)
        if (cJSON_IsNumber(x) && strcmp(x->string, "muscle") != 0 && strcmp(x->string, "sender") != 0)
            cJSON_AddNumberToObject(rel, x->string, round((x->valuedouble - c->exec_t) * 1e4) / 1e4);
    cJSON_AddItemToObject(o, "since_run_s", rel);
}

cJSON *bd_ev(const char *kind)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "event", kind);
    return o;
}

cJSON *bd_proc_ev(const bd_conductor *c, const char *kind, const bd_proc *p)
{
    cJSON *o = bd_ev(kind);
    cJSON_AddStringToObject(o, "phase", c->phase);
    cJSON_AddStringToObject(o, "role", p->role == BD_ROLE_BRAIN ? "brain" : "muscle");
    if (p->role == BD_ROLE_BRAIN)
        cJSON_AddStringToObject(o, "agent", p->name);
    else
        cJSON_AddNumberToObject(o, "muscle", p->index);
    return o;
}

void bd_fail(bd_conductor *c, const char *fmt, ...)
{
    if (c->failed)
        return;
    c->failed = 1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->fail_msg, sizeof c->fail_msg, fmt, ap);
    va_end(ap);
}

double bd_num(const cJSON *o, const char *key, double def)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : def;
}

void bd_journal_tb(bd_conductor *c, bd_agent_state *a, const cJSON *o)
{
    if (a->tb_failed || !c->dir || !c->phase)
        return;
    int rc = BD_OK;
    if (!a->tb) {
        if (c->phase[0] == '.' || strchr(c->phase, '/') || a->name[0] == '.' || strchr(a->name, '/'))
            rc = bd_seterr(BD_EINVAL, "phase '%s' or agent '%s' is no folder name", c->phase, a->name);
        char *dir = rc ? NULL : bd_strfmt("%s/tb/%s/%s", c->dir, c->phase, a->name);
        if (!rc)
            rc = dir ? bd_tfevents_open(dir, bd_num(o, "t", 0), &a->tb) : bd_seterr(BD_ENOMEM, "out of memory");
        free(dir);
    }
    if (!rc)
        rc = bd_tfevents_update(a->tb, o);
    if (rc) {
        a->tb_failed = 1;
        fprintf(stderr, "bodhi: no TensorBoard scalars for %s/%s: %s (log.jsonl has them)\n", c->phase, a->name,
                bd_lasterr());
    }
}

void bd_progress(bd_conductor *c, bd_agent_state *a, int force)
{
    double now = bd_now();
    if (c->o->quiet || !a->last_update || a->printed == a->last_update || (!force && now - a->last_print < 1.0))
        return;
    a->last_print = now;
    a->printed = a->last_update;
    const cJSON *u = a->last_update;
    fprintf(stderr, "[%s] %-12s %6.1fs  steps %-10.0f ", c->phase, a->name, now - c->t0, bd_num(u, "steps", 0));
    if (cJSON_GetObjectItemCaseSensitive(u, "steps_per_s")) /* over the last round and its update */
        fprintf(stderr, "%9.0f steps/s", bd_num(u, "steps_per_s", 0));
    else
        fprintf(stderr, "%9s steps/s", "-");
    fprintf(stderr, "  episodes %-7.0f", bd_num(u, "episodes", 0));
    if (cJSON_GetObjectItemCaseSensitive(u, "mean_return"))
        fprintf(stderr, "  mean_return %.1f", bd_num(u, "mean_return", 0));
    if (a->has_greedy) /* greedy_average's last evaluation */
        fprintf(stderr, "  greedy %.1f", a->greedy);
    fprintf(stderr, "\n");
}

/* An agent's counts for summary.json: its brain's result event; without one (the brain was
 * killed, or the phase was interrupted before it could say), what was recorded: the
 * last round it reported, or the trace it left (repaired when the brain died) when that
 * holds as much or more. "counted_from" says which. */
static void bd_agent_counts(bd_conductor *c, const bd_agent_state *a, cJSON *j)
{
    const cJSON *r = a->result ? a->result : a->last_update;
    double steps = bd_num(r, "steps", 0), episodes = bd_num(r, "episodes", 0), mean = bd_num(r, "mean_return", 0),
           best = bd_num(r, "max_return", 0), rate = bd_num(r, "steps_per_s", 0);
    const char *from = a->result ? "result" : a->last_update ? "last update" : "nothing recorded";
    char sfx[16];
    char *path = a->result ? NULL : bd_strfmt("%s/memory/%s.%s%s.h5", c->dir, c->phase, a->name, bd_rank_suffix(sfx, sizeof sfx));
    bd_trace_info ti;
    memset(&ti, 0, sizeof ti);
    int64_t dims[3] = {0, 0, 0}, ne = 0;
    int rank = 0;
    bd_episode *eps = NULL;
    if (path && bd_exists(path) && bd_trace_read_info(path, c->phase, a->name, &ti) == BD_OK
        && bd_trace_dataset_shape(path, c->phase, a->name, "rewards", dims, &rank, NULL) == BD_OK
        && ti.recorded_worlds > 0 && bd_trace_read_episodes(path, c->phase, a->name, &eps, &ne) == BD_OK) {
        /* rows are every `every` env steps of the first recorded_worlds worlds' columns */
        double traced = (double)bd_trace_span(&ti) * ((double)dims[1] * ti.worlds / ti.recorded_worlds);
        if (traced >= steps && (double)ne >= episodes) { /* it holds max_return too */
            steps = fmax(steps, traced);
            episodes = fmax(episodes, (double)ne);
            double sum = 0;
            best = ne ? -INFINITY : 0;
            for (int64_t k = 0; k < ne; k++) {
                best = fmax(best, eps[k].ret);
                sum += k >= ne - 100 ? eps[k].ret : 0;
            }
            mean = ne ? sum / (double)(ne < 100 ? ne : 100) : 0;
            from = "trace"; /* this rank's own: the group's figures went with the brain */
        }
    }
    free(eps);
    bd_trace_info_free(&ti);
    free(path);
    cJSON_AddNumberToObject(j, "episodes", episodes);
    const double group = strcmp(from, "trace") != 0 ? bd_num(r, "group_episodes", 0) : 0;
    if (group > 0) /* several ranks: mean_return and max_return are every rank's (brain.c) */
        cJSON_AddNumberToObject(j, "group_episodes", group);
    cJSON_AddNumberToObject(j, "mean_return", mean);
    cJSON_AddNumberToObject(j, "max_return", best);
    cJSON_AddNumberToObject(j, "steps", steps);
    cJSON_AddNumberToObject(j, "steps_per_s", rate);
    cJSON_AddStringToObject(j, "counted_from", from);
    if (bd_num(r, "refused_messages", 0) > 0) /* a brain's round refused them (wire/round.h) */
        cJSON_AddNumberToObject(j, "refused_messages", bd_num(r, "refused_messages", 0));
    if (bd_num(r, "refused_rollouts", 0) > 0) /* data not fit to learn from */
        cJSON_AddNumberToObject(j, "refused_rollouts", bd_num(r, "refused_rollouts", 0));
}

void bd_journal_rank(cJSON *o)
{
    const char *rank = getenv("BODHI_RANK"), *world = getenv("BODHI_WORLD_SIZE");
    if (rank && world) { /* one rank of many (docs/architecture.md "Many machines") */
        cJSON_AddNumberToObject(o, "rank", atof(rank));
        cJSON_AddNumberToObject(o, "world_size", atof(world));
    }
}

/* RUN_DIR/summary.json with the run's status and the phases so far; BD_OK or the error
 * (also printed). */
static int bd_write_summary(bd_conductor *c, const char *status)
{
    cJSON *s = cJSON_CreateObject();
    char seed[32];
    snprintf(seed, sizeof seed, "%llu", (unsigned long long)c->rf->seed);
    cJSON_AddStringToObject(s, "uid", c->rf->uid);
    cJSON_AddItemToObject(s, "seed", cJSON_CreateRaw(seed)); /* exact: a double holds 53 bits */
    cJSON_AddStringToObject(s, "status", status);
    bd_journal_rank(s);
    cJSON_AddNumberToObject(s, "wall_s", bd_now() - c->t0);
    if (c->fail_msg[0])
        cJSON_AddStringToObject(s, "error", c->fail_msg);
    if (c->stalled_s > 0) /* the conductor was stopped or suspended that long */
        cJSON_AddNumberToObject(s, "stalled_s", c->stalled_s);
    if (c->refused)
        cJSON_AddNumberToObject(s, "refused_messages", (double)c->refused);
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

/* The "phase" event and the phase's first line (bd_journal_phase in run.h). */
void bd_journal_phase(bd_conductor *c)
{
    const bd_phase_plan *p = c->plan;
    cJSON *o = bd_ev("phase");
    cJSON_AddStringToObject(o, "phase", p->ph->name);
    cJSON_AddStringToObject(o, "mode", p->ph->mode == BD_MODE_TRAIN ? "train" : "test");
    cJSON_AddStringToObject(o, "device", p->device == BD_DEVICE_CUDA ? "cuda" : "cpu");
    long long worlds = 0;
    cJSON *envs = cJSON_AddArrayToObject(o, "environments");
    for (int k = 0; k < p->nenvs; k++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "uid", p->envs[k].uid);
        cJSON_AddStringToObject(e, "name", p->envs[k].desc->name);
        cJSON_AddNumberToObject(e, "worlds", (double)p->envs[k].worlds);
        cJSON_AddNumberToObject(e, "agents_per_world", p->envs[k].shape.members);
        cJSON_AddItemToArray(envs, e);
        worlds += p->envs[k].worlds;
    }
    cJSON_AddNumberToObject(o, "worlds", (double)worlds);
    cJSON_AddNumberToObject(o, "worker", p->worker);
    cJSON_AddNumberToObject(o, "remote_worker", p->remote);
    bd_log(c, o);
    cJSON_Delete(o);
    if (!c->o->quiet) {
        char *et = bd_phase_envs_text(p);
        fprintf(stderr, "bodhi: phase %s (%s): %s on %s, %d muscle(s), %d agent(s)\n",
                p->ph->name, p->ph->mode == BD_MODE_TRAIN ? "train" : "test", et ? et : "?",
                p->device == BD_DEVICE_CUDA ? "cuda" : "cpu", p->muscles, p->nagents);
        free(et);
    }
}

/* The phase's entry of summary.json, its last lines and the "phase_end" event
 * (bd_journal_phase_end in run.h). */
void bd_journal_phase_end(bd_conductor *c, int sig, double wall, cJSON *phase_out)
{
    const bd_phase_plan *p = c->plan;
    int started = 0; /* some brain reported a round: the phase was past its start-up */
    for (int a = 0; a < c->nagents; a++)
        started |= c->agents[a].last_update != NULL || bd_num(c->agents[a].result, "steps", 0) > 0;
    const char *ended;
    const bd_stop code = bd_phase_outcome(c, sig, started, &ended);
    cJSON_AddStringToObject(phase_out, "name", p->ph->name);
    cJSON_AddStringToObject(phase_out, "mode", p->ph->mode == BD_MODE_TRAIN ? "train" : "test");
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
            fprintf(stderr, "bodhi: phase %s agent %s: %.0f episodes, mean return %.1f (last %.0f%s), "
                            "max %.1f, %.0f steps in %.1f s\n",
                    p->ph->name, c->agents[a].name, bd_num(r, "episodes", 0), bd_num(r, "mean_return", 0),
                    fmin(bd_num(r, "episodes", 0), 100), bd_num(r, "group_episodes", 0) > 0 ? " of every rank" : "",
                    bd_num(r, "max_return", 0), bd_num(r, "steps", 0), wall);
    }
    if (!c->o->quiet && (!c->failed || c->diverged) && (!sig || !started))
        fprintf(stderr, "bodhi: phase %s ended: %s\n", p->ph->name, ended);
    cJSON *o = bd_ev("phase_end");
    cJSON_AddStringToObject(o, "phase", p->ph->name);
    cJSON_AddStringToObject(o, "ended", ended);
    bd_log(c, o);
    cJSON_Delete(o);
}

/* The run's "end" event, summary.json and its last line (bd_journal_end in run.h). */
void bd_journal_end(bd_conductor *c, int result)
{
    const char *status = result == 0 ? (c->run_stopped ? "stopped" : "done") : result == 1 ? (c->diverged ? "diverged" : "failed") : "interrupted";
    cJSON *end = bd_ev("end");
    cJSON_AddStringToObject(end, "status", status);
    if (c->fail_msg[0])
        cJSON_AddStringToObject(end, "error", c->fail_msg);
    char why[256];
    uint64_t rejected = c->hub ? bd_server_rejected(c->hub, why, sizeof why) : 0;
    if (rejected) { /* garbage sent to the control socket, dropped */
        cJSON_AddNumberToObject(end, "rejected_messages", (double)rejected);
        cJSON_AddStringToObject(end, "last_rejected", why);
    }
    uint64_t door = c->door ? bd_server_rejected(c->door, why, sizeof why) : 0;
    if (door) { /* malformed, or over the door's connection cap */
        cJSON_AddNumberToObject(end, "door_rejected", (double)door);
        cJSON_AddStringToObject(end, "door_last_rejected", why);
    }
    if (c->refused) { /* well-formed, but not what the door (or the control socket) takes from its sender */
        cJSON_AddNumberToObject(end, "refused_messages", (double)c->refused);
        cJSON_AddStringToObject(end, "last_refused", c->refused_why);
    }
    bd_log(c, end);
    cJSON_Delete(end);
    bd_write_summary(c, status);
    if (result == 1 && c->diverged) /* fail_msg: "diverged: why (agent)" */
        fprintf(stderr, "bodhi: run %s\n", c->fail_msg);
    else if (result == 1)
        fprintf(stderr, "bodhi: run failed: %s\n", c->fail_msg);
    else /* the one line --quiet keeps */
        fprintf(stderr, "bodhi: run %s %s in %.1f s; results in %s\n", c->rf->uid, status,
                bd_now() - c->t0, c->dir);
}
