/* resim.c: `bodhi replay RUN_DIR --verify`'s re-simulation (see replay.h).
 *
 * An env's worlds depend only on the run's seed, their global index and the actions they
 * were given (include/bodhi/env.h), so one shard of all of an env's worlds on the CPU,
 * seeded as the muscles' were (config/plan.h: bd_env_plan.seed), replays the phase from
 * the actuator setpoints every agent of that env recorded. Row r of each agent's sensors
 * must then be what the env shows before step r, and its rewards and flags what the step
 * gave its rows. A world whose row holds NaN (its muscle was lost for a
 * round, and a restarted muscle starts its worlds over) is not checked from there on.
 * The agent's rows of the env are walked with the muscles' own per-world functions
 * (muscle/act.h): bd_act_gather for the sensors (and the final observations),
 * bd_act_put for the setpoints, clipped to their actuator's bounds as the muscles clip
 * them (a discrete setpoint is its index), bd_act_record for the step's reward and flags.
 * Needs every step (record.every 1) of the worlds it checks: with record.worlds the first
 * worlds recorded are re-simulated alone (a world depends on no other); rows are streamed
 * in blocks.
 *
 * Ranks (docs/architecture.md, "Many machines"): world ids are global, rank k's from k x
 * worlds, so each rank's trace is re-simulated from its own first id: the trace's world0
 * attribute, or for a trace written before it the rank (summary.json's for the folder's own
 * traces, k for the /<phase>/<agent>.r<k> links of rank 0's run.h5) x worlds. From rank 0's
 * folder every linked rank's trace is re-simulated too. */
#define _GNU_SOURCE
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "bodhi/env.h"
#include "common/util.h"
#include "config/plan.h"
#include "config/runfile.h"
#include "memory/memory.h"
#include "muscle/act.h"
#include "replay/replay.h"

#define RESIM_BLOCK_BYTES ((size_t)32 << 20) /* rows read per agent and block */
#define RESIM_REL_TOL 1e-5                   /* a GPU run's float rounding may differ */
#define RESIM_ABS_TOL 1e-6
#define RESIM_MAX_REPORTS 10

#define RESIM_FINAL_MAX_BYTES ((size_t)512 << 20) /* final_sensors checked up to this size */

typedef struct {
    int64_t step;      /* the episode's last step */
    int32_t column;
    int64_t row;       /* its row in final_sensors */
} resim_end;

static int resim_end_cmp(const void *a, const void *b)
{
    const resim_end *x = a, *y = b;
    if (x->step != y->step)
        return x->step < y->step ? -1 : 1;
    return (x->column > y->column) - (x->column < y->column);
}

typedef struct {
    const bd_agent_plan *ap;
    char trace[96];    /* its trace's name under the phase: the agent, or <agent>.r<k> */
    int N;             /* its columns: worlds x members */
    bd_act_args args;  /* its rows of the env (host), for muscle/act.h */
    float *sens, *act; /* a block of rows: (B, N, S) and (B, N, U) */
    float *rew;        /* (B, N) the step's outcome as recorded */
    uint8_t *term, *trunc;
    float *sim;        /* (N, S) what the env shows its columns (sensors, or final observations) */
    float *srew, *sfval; /* (N) the step's reward for its columns, and scratch */
    uint8_t *sterm, *strunc; /* (N) and flags */
    /* the final observations of its episodes, by the step they ended at */
    resim_end *ends;   /* (nends) sorted by step, then column */
    int64_t nends, next;
    float *fin;        /* (E, S) final_sensors, or NULL: not checked */
} resim_agent;

/* Agent k's episodes and final observations, when the trace has them and they fit; else
 * a line saying they are not checked. */
static int resim_load_finals(resim_agent *ag, const char *master, const char *phase, FILE *out)
{
    const char *agent = ag->trace;
    const int S = ag->ap->nsens;
    int64_t dims[3] = {0, 0, 0}, count = 0;
    int rank = 0, f32 = 0;
    int rc = bd_trace_dataset_shape(master, phase, agent, "final_sensors", dims, &rank, &f32);
    if (rc == BD_ENOTFOUND)
        return BD_OK; /* an older trace: none kept */
    if (rc != BD_OK)
        return rc;
    if (rank != 2 || dims[1] != S || !f32 || (double)dims[0] * S * 4 > (double)RESIM_FINAL_MAX_BYTES) {
        fprintf(out, "verify %s/%s: final observations not re-simulated (%lld of them%s)\n", phase, agent,
                (long long)dims[0], rank == 2 && dims[1] == S ? ", more than this check reads" : ", of another shape");
        return BD_OK;
    }
    bd_episode *eps = NULL;
    if ((rc = bd_trace_read_episodes(master, phase, agent, &eps, &count)) != BD_OK)
        return rc;
    if (count != dims[0]) {
        fprintf(out, "verify %s/%s: final observations not re-simulated (%lld for %lld episodes)\n", phase, agent,
                (long long)dims[0], (long long)count);
        free(eps);
        return BD_OK;
    }
    void *buf = NULL;
    int64_t fd[3];
    int frank;
    if (count > 0 && (rc = bd_trace_read_dataset(master, phase, agent, "final_sensors", &buf, fd, &frank)) != BD_OK) {
        free(eps);
        return rc;
    }
    ag->ends = malloc(sizeof *ag->ends * (size_t)(count ? count : 1));
    if (!ag->ends) {
        free(eps);
        free(buf);
        return bd_seterr(BD_ENOMEM, "out of memory");
    }
    for (int64_t e = 0; e < count; e++)
        ag->ends[e] = (resim_end){eps[e].start_step + eps[e].length - 1, eps[e].world, e};
    qsort(ag->ends, (size_t)count, sizeof *ag->ends, resim_end_cmp);
    ag->nends = count;
    ag->fin = buf;
    free(eps);
    return BD_OK;
}


static int resim_close(float stored, float sim)
{
    return fabsf(stored - sim) <= RESIM_REL_TOL * fmaxf(fabsf(stored), fabsf(sim)) + RESIM_ABS_TOL;
}

/* "world 3", or "member 2 of world 3" for an agent of a group. */
static const char *resim_where(const bd_agent_plan *ap, int column, char *buf, size_t len)
{
    if (ap->members == 1)
        snprintf(buf, len, "world %d", column);
    else
        snprintf(buf, len, "member %d of world %d (column %d)", column % ap->members, column / ap->members, column);
    return buf;
}

/* Agent ap's columns of the env's batch b as muscle/act.h walks them, on the host. */
static int resim_args(const bd_agent_plan *ap, const bd_env_batch *b, int n, bd_act_args *a)
{
    memset(a, 0, sizeof *a);
    if (ap->nact > BD_MAX_ACTUATORS)
        return bd_seterr(BD_EINVAL, "agent %s: %d actuators, at most %d", ap->cfg->name, ap->nact, BD_MAX_ACTUATORS);
    a->n = n;
    a->S = ap->nsens;
    a->U = ap->nact;
    a->A = ap->continuous ? ap->nact : ap->n_actions;
    a->D = b->obs_dim;
    a->AD = b->act_dim;
    a->M = b->members;
    a->first = ap->env->shape.first[ap->group];
    a->count = ap->members;
    a->continuous = ap->continuous;
    a->cols = ap->sens_cols;
    for (int d = 0; d < a->U; d++) {
        a->act_cols[d] = ap->act_cols[d];
        a->low[d] = ap->act_low[d];
        a->high[d] = ap->act_high[d];
    }
    return BD_OK;
}

/* What the re-simulation of one env has found. */
typedef struct {
    FILE *out;
    const char *phase;
    int rank;          /* the rank whose trace it is, -1: a run of one rank */
    uint8_t *skip;     /* (W) by world: 1 lost (NaN), 2 diverged */
    int64_t lost, diverged, reports, finals;
} resim_tally;

/* A world that diverged at step r: counted, and (the first RESIM_MAX_REPORTS) said. */
static void resim_diverged(resim_tally *t, const resim_agent *g, int column, int64_t r, const char *what,
                           const char *detail, double stored, double sim)
{
    const bd_agent_plan *ap = g->ap;
    char wb[96];
    t->skip[column / ap->members] = 2;
    t->diverged++;
    if (++t->reports <= RESIM_MAX_REPORTS)
        fprintf(t->out, "verify %s/%s: %s first differs at step %lld: %s%s stored %.9g, re-simulated %.9g\n", t->phase,
                g->trace, resim_where(ap, column, wb, sizeof wb), (long long)r, detail, what, stored, sim);
}

/* Before step r (row r - r0 of the block): agent g's recorded sensors against what the
 * env shows, then its recorded setpoints into the env's actions. */
static void resim_sensors_and_act(resim_agent *g, bd_env_batch *b, int64_t r, int64_t r0, resim_tally *t)
{
    const bd_agent_plan *ap = g->ap;
    const int S = ap->nsens, U = ap->nact, N = g->N;
    const float *sens = g->sens + (size_t)(r - r0) * (size_t)N * (size_t)S;
    const float *act = g->act + (size_t)(r - r0) * (size_t)N * (size_t)U;
    for (int i = 0; i < N; i++)
        bd_act_gather(i, &g->args, b->obs, g->sim, NULL);
    for (int i = 0; i < N; i++) {
        const int w = i / ap->members;
        for (int s = 0; s < S && !t->skip[w]; s++) {
            float stored = sens[(size_t)i * S + s], sim = g->sim[(size_t)i * S + s];
            if (isnan(stored)) {
                t->skip[w] = 1;
                t->lost++;
            } else if (!resim_close(stored, sim)) {
                resim_diverged(t, g, i, r, ap->sensor_ids[s], "", stored, sim);
            }
        }
        float row[BD_MAX_ACTUATORS];
        for (int u = 0; u < U; u++) {
            float x = act[(size_t)i * U + u];
            row[u] = !ap->continuous && isnan(x) ? 0 : x; /* a lost round's row */
        }
        bd_act_put(i, &g->args, row, b->actions);
    }
}

/* After step r: agent g's recorded reward and flags (in the row of its action) against
 * the step's, then the final observations of its episodes that ended at r. */
static void resim_outcome(resim_agent *g, const bd_env_batch *b, int64_t r, int64_t r0, resim_tally *t)
{
    const bd_agent_plan *ap = g->ap;
    const int N = g->N, S = ap->nsens;
    const size_t base = (size_t)(r - r0) * (size_t)N;
    for (int i = 0; i < N; i++)
        bd_act_record(i, &g->args, b->rewards, b->terminated, b->truncated, g->srew, g->sterm, g->strunc, g->sfval);
    for (int i = 0; i < N; i++) {
        if (t->skip[i / ap->members] || isnan(g->rew[base + i]))
            continue;
        if (!resim_close(g->rew[base + i], g->srew[i]))
            resim_diverged(t, g, i, r, "reward", "", g->rew[base + i], g->srew[i]);
        else if ((g->term[base + i] != 0) != (g->sterm[i] != 0))
            resim_diverged(t, g, i, r, "terminated", "", g->term[base + i], g->sterm[i]);
        else if ((g->trunc[base + i] != 0) != (g->strunc[i] != 0))
            resim_diverged(t, g, i, r, "truncated", "", g->trunc[base + i], g->strunc[i]);
    }
    /* the episodes that ended at this step: what each saw last, before its reset */
    while (g->fin && g->next < g->nends && g->ends[g->next].step < r)
        g->next++;
    for (; g->fin && g->next < g->nends && g->ends[g->next].step == r; g->next++) {
        const resim_end *en = &g->ends[g->next];
        if (en->column < 0 || en->column >= N)
            continue;
        if (t->skip[en->column / ap->members] || !(g->sterm[en->column] || g->strunc[en->column]))
            continue; /* lost, or a flag that differs (reported above) */
        t->finals++;
        bd_act_gather(en->column, &g->args, b->final_obs, g->sim, NULL);
        const float *sim = g->sim + (size_t)en->column * S;
        for (int sx = 0; sx < S; sx++) {
            float stored = g->fin[en->row * S + sx];
            if (resim_close(stored, sim[sx]))
                continue;
            char what[160];
            snprintf(what, sizeof what, "%s of its episode", ap->sensor_ids[sx]);
            resim_diverged(t, g, en->column, r, what, "the final ", stored, sim[sx]);
            break;
        }
    }
}

/* The agents of phase p that drive env e, into ag (*na of them), their traces named
 * <agent><sfx>, with the worlds W they all recorded, the rows T they all hold and the
 * world0 they say (-1: none says); *na 0 (said on out) when the env cannot be
 * re-simulated from their traces. */
static int resim_agents(const bd_phase_plan *p, const bd_env_plan *e, const char *master, const char *sfx,
                        FILE *out, resim_agent *ag, int *na, int *W, int64_t *T, int64_t *world0)
{
    const char *phase = p->ph->name;
    *na = 0;
    *W = -1;
    *T = -1;
    *world0 = -1;
    for (int k = 0; k < p->nagents; k++) {
        const bd_agent_plan *ap = &p->agents[k];
        if (ap->env != e)
            continue;
        bd_trace_info info;
        snprintf(ag[*na].trace, sizeof ag[*na].trace, "%s%s", ap->cfg->name, sfx);
        const char *agent = ag[*na].trace;
        const int N = (int)ap->columns;
        int rc = bd_trace_read_info(master, phase, agent, &info);
        if (rc == BD_ENOTFOUND)
            fprintf(out, "verify %s: not re-simulated: no trace of agent %s (the phase did not run, or its file is missing)\n", phase, agent);
        if (rc != BD_OK) {
            *na = 0;
            return rc == BD_ENOTFOUND ? BD_OK : rc;
        }
        const int members = ap->members, rec = info.recorded_worlds;
        int ok = info.every == 1 && info.worlds == N && rec > 0 && rec % members == 0 && (*W < 0 || rec / members == *W);
        int64_t rows = info.rows;
        if (ok && info.world0 >= 0 && *world0 >= 0 && info.world0 != *world0) {
            fprintf(out, "verify %s: not re-simulated: agent %s's trace starts at world %lld, another agent's of "
                         "env %s at %lld\n", phase, agent, (long long)info.world0, e->uid, (long long)*world0);
            bd_trace_info_free(&info);
            *na = 0;
            return BD_OK;
        }
        if (info.world0 >= 0)
            *world0 = info.world0;
        if (!ok)
            fprintf(out, "verify %s: not re-simulated: agent %s records every %d step(s) of %d of %d columns "
                         "(re-simulation needs every step of the worlds it checks)\n", phase, agent, info.every,
                    rec, N);
        bd_trace_info_free(&info);
        if (!ok) {
            *na = 0;
            return BD_OK;
        }
        *W = rec / members;
        *T = *T < 0 || rows < *T ? rows : *T;
        ag[*na].ap = ap;
        ag[(*na)++].N = rec;
    }
    if (*na > 0 && *T <= 0) {
        fprintf(out, "verify %s: not re-simulated: no steps recorded\n", phase);
        *na = 0;
    }
    return BD_OK;
}

/* Agent g's buffers: blocks of B recorded rows and one step of the env's view. */
static int resim_alloc(resim_agent *g, int64_t B, const char *phase)
{
    const size_t bn = (size_t)B * (size_t)g->N, n = (size_t)g->N, S = (size_t)g->ap->nsens;
    g->sens = malloc(sizeof(float) * bn * S);
    g->act = malloc(sizeof(float) * bn * (size_t)g->ap->nact);
    g->rew = malloc(sizeof(float) * bn);
    g->term = malloc(bn);
    g->trunc = malloc(bn);
    g->sim = malloc(sizeof(float) * n * S);
    g->srew = malloc(sizeof(float) * n);
    g->sfval = malloc(sizeof(float) * n);
    g->sterm = malloc(n);
    g->strunc = malloc(n);
    if (!g->sens || !g->act || !g->rew || !g->term || !g->trunc || !g->sim || !g->srew || !g->sfval || !g->sterm
        || !g->strunc)
        return bd_seterr(BD_ENOMEM, "out of memory re-simulating %s", phase);
    return BD_OK;
}

static void resim_free(resim_agent *g)
{
    free(g->sens);
    free(g->act);
    free(g->rew);
    free(g->term);
    free(g->trunc);
    free(g->sim);
    free(g->srew);
    free(g->sfval);
    free(g->sterm);
    free(g->strunc);
    free(g->ends);
    free(g->fin);
}

/* Rows [r0, r0 + nr) of agent g's step datasets into its block buffers. */
static int resim_read(resim_agent *g, const char *master, const char *phase, int64_t r0, int64_t nr)
{
    const char *agent = g->trace;
    const int N = g->N;
    int rc = bd_trace_read_rows(master, phase, agent, "sensors", r0, nr, N, g->ap->nsens, g->sens);
    if (rc == BD_OK)
        rc = bd_trace_read_rows(master, phase, agent, "actuators", r0, nr, N, g->ap->nact, g->act);
    if (rc == BD_OK)
        rc = bd_trace_read_rows(master, phase, agent, "rewards", r0, nr, N, 0, g->rew);
    if (rc == BD_OK)
        rc = bd_trace_read_rows(master, phase, agent, "terminated", r0, nr, N, 0, g->term);
    if (rc == BD_OK)
        rc = bd_trace_read_rows(master, phase, agent, "truncated", r0, nr, N, 0, g->trunc);
    return rc;
}

/* What the re-simulation of env e found, on out. */
static void resim_say(const resim_tally *t, const bd_env_plan *e, int64_t T, int W, uint32_t world0)
{
    char ids[96] = "";
    if (t->rank >= 0)
        snprintf(ids, sizeof ids, " of rank %d (world ids %u to %u)", t->rank, world0, world0 + (uint32_t)W - 1);
    if (W < (int)e->worlds)
        fprintf(t->out, "verify %s: re-simulated %lld steps of the %d recorded worlds (of %d) of %s%s from seed and "
                        "setpoints: ", t->phase, (long long)T, W, (int)e->worlds, e->uid, ids);
    else
        fprintf(t->out, "verify %s: re-simulated %lld steps of %d worlds of %s%s from seed and setpoints: ", t->phase,
                (long long)T, W, e->uid, ids);
    if (t->diverged)
        fprintf(t->out, "%lld world(s) differ from their recorded sensors, rewards, flags or final observations\n",
                (long long)t->diverged);
    else
        fprintf(t->out, "every recorded sensor, reward and flag matches, and the final observations of %lld "
                        "episodes\n", (long long)t->finals);
    if (t->lost)
        fprintf(t->out, "verify %s: %lld world(s) not checked past a row of NaN (a round their muscle lost, or "
                        "damaged data)\n", t->phase, (long long)t->lost);
}

/* Re-simulates env e of phase p from the traces in master of the agents that drive it,
 * named <agent><sfx>: rank's (-1: a run of one rank, 0 its rank; a trace without world0
 * starts at rank x worlds). *bad counts worlds that diverged. */
static int resim_env(const bd_phase_plan *p, const bd_env_plan *e, const char *master, const char *sfx, int rank,
                     FILE *out, int64_t *bad, int *checked)
{
    const char *phase = p->ph->name;
    int W = -1, na = 0; /* the worlds every agent of the env recorded (the first W) */
    int64_t T = -1, said = -1;
    resim_agent *ag = calloc((size_t)p->nagents + 1, sizeof *ag);
    if (!ag)
        return bd_seterr(BD_ENOMEM, "out of memory");
    int rc = resim_agents(p, e, master, sfx, out, ag, &na, &W, &T, &said);
    if (rc != BD_OK || na == 0) { /* no agent drives it, or nothing to compare */
        free(ag);
        return rc;
    }
    /* its worlds' global ids, as the muscles made them (muscle/muscle.c) */
    const int64_t w0 = said >= 0 ? said : (int64_t)(rank > 0 ? rank : 0) * e->worlds;
    if (w0 + W - 1 > (int64_t)UINT32_MAX) {
        fprintf(out, "verify %s: not re-simulated: the worlds of %s start at id %lld, past 32-bit world ids\n", phase,
                ag[0].trace, (long long)w0);
        free(ag);
        return BD_OK;
    }
    const uint32_t world0 = (uint32_t)w0;
    bd_env *env = NULL;
    if ((rc = bd_env_create(e->desc, W, world0, e->seed, BD_DEVICE_CPU, e->max_steps, e->param, &env)) != BD_OK) {
        free(ag);
        return rc;
    }
    bd_env_set_threads(env, 0);
    bd_env_batch *b = bd_env_batch_of(env);
    size_t row_bytes = 0;
    for (int k = 0; k < na; k++)
        row_bytes += (size_t)ag[k].N * (sizeof(float) * (size_t)(ag[k].ap->nsens + ag[k].ap->nact + 1) + 2);
    int64_t B = (int64_t)(RESIM_BLOCK_BYTES / (row_bytes ? row_bytes : 1));
    B = B < 1 ? 1 : B > T ? T : B;
    resim_tally t = {.out = out, .phase = phase, .rank = rank, .skip = calloc((size_t)W, 1)};
    if (!t.skip)
        rc = bd_seterr(BD_ENOMEM, "out of memory");
    for (int k = 0; rc == BD_OK && k < na; k++)
        if ((rc = resim_args(ag[k].ap, b, ag[k].N, &ag[k].args)) == BD_OK && (rc = resim_alloc(&ag[k], B, phase)) == BD_OK)
            rc = resim_load_finals(&ag[k], master, phase, out);
    for (int64_t r0 = 0; rc == BD_OK && r0 < T; r0 += B) {
        int64_t nr = T - r0 < B ? T - r0 : B;
        for (int k = 0; rc == BD_OK && k < na; k++)
            rc = resim_read(&ag[k], master, phase, r0, nr);
        for (int64_t r = r0; rc == BD_OK && r < r0 + nr; r++) {
            for (int k = 0; k < na; k++)
                resim_sensors_and_act(&ag[k], b, r, r0, &t);
            rc = bd_env_step(env);
            for (int k = 0; rc == BD_OK && k < na; k++)
                resim_outcome(&ag[k], b, r, r0, &t);
        }
    }
    if (rc == BD_OK) {
        resim_say(&t, e, T, W, world0);
        (*checked)++;
        *bad += t.diverged;
    }
    for (int k = 0; k < na; k++)
        resim_free(&ag[k]);
    free(ag);
    free(t.skip);
    bd_env_destroy(env);
    return rc;
}

/* This folder's rank in a run of many ranks (summary.json's "rank" beside "world_size"),
 * -1 for a run of one rank or a folder that does not say. */
static int resim_own_rank(const char *run_dir)
{
    char *path = bd_strfmt("%s/summary.json", run_dir), *text = NULL;
    int rank = -1;
    if (path && bd_read_file(path, &text, NULL) == BD_OK) {
        cJSON *j = cJSON_Parse(text);
        const cJSON *r = cJSON_GetObjectItem(j, "rank"), *w = cJSON_GetObjectItem(j, "world_size");
        if (cJSON_IsNumber(r) && cJSON_IsNumber(w) && w->valuedouble > 1 && r->valuedouble >= 0
            && r->valuedouble < w->valuedouble && r->valuedouble <= 65535)
            rank = (int)r->valuedouble;
        cJSON_Delete(j);
    }
    free(text);
    free(path);
    return rank;
}

/* k >= 1 when name ("<phase>/<agent>.r<k>", from the master's list) is rank k's trace of
 * agent of phase p (rank 0's run.h5 links them; bd_link_ranks in conductor/conductor.c),
 * else 0. An agent of the phase that has that name is its own trace, not a rank's. */
static int resim_rank_of(const bd_phase_plan *p, const char *agent, const char *name)
{
    const char *phase = p->ph->name;
    const size_t pl = strlen(phase);
    if (strncmp(name, phase, pl) != 0 || name[pl] != '/')
        return 0;
    size_t base;
    const int k = bd_trace_rank_suffix(name + pl + 1, &base);
    if (k == 0 || base != strlen(agent) || strncmp(name + pl + 1, agent, base) != 0)
        return 0;
    for (int a = 0; a < p->nagents; a++)
        if (strcmp(p->agents[a].cfg->name, name + pl + 1) == 0)
            return 0;
    return k;
}

static int resim_int_cmp(const void *a, const void *b)
{
    return (*(const int *)a > *(const int *)b) - (*(const int *)a < *(const int *)b);
}

/* Env e of phase p from the folder's own traces, then (rank 0's run.h5) from every other
 * rank's it links, in rank order. */
static int resim_env_ranks(const bd_phase_plan *p, const bd_env_plan *e, const char *master, int own, char **names,
                           int count, FILE *out, int64_t *bad, int *checked)
{
    int rc = resim_env(p, e, master, "", own, out, bad, checked);
    const char *agent = NULL; /* the ranks that hold a trace of its first agent */
    for (int a = 0; !agent && a < p->nagents; a++)
        if (p->agents[a].env == e)
            agent = p->agents[a].cfg->name;
    int *ranks = agent && count > 0 ? malloc(sizeof *ranks * (size_t)count) : NULL, n = 0;
    for (int i = 0; ranks && i < count; i++) {
        int k = resim_rank_of(p, agent, names[i]);
        if (k > 0)
            ranks[n++] = k;
    }
    if (n > 0)
        qsort(ranks, (size_t)n, sizeof *ranks, resim_int_cmp);
    for (int i = 0; rc == BD_OK && i < n; i++) {
        if (i > 0 && ranks[i] == ranks[i - 1])
            continue;
        char sfx[16];
        snprintf(sfx, sizeof sfx, ".r%d", ranks[i]);
        rc = resim_env(p, e, master, sfx, ranks[i], out, bad, checked);
    }
    free(ranks);
    return rc;
}

int bd_replay_resim(const char *run_dir, const char *master, const bd_registry *reg, FILE *out, int64_t *bad,
                    int *checked, int *unmade)
{
    *bad = 0;
    *checked = *unmade = 0;
    char *yml = bd_strfmt("%s/run.yml", run_dir);
    if (!yml)
        return bd_seterr(BD_ENOMEM, "out of memory");
    if (!bd_exists(yml)) {
        fprintf(out, "verify: %s has no run.yml: steps are not re-simulated\n", run_dir);
        free(yml);
        return BD_OK;
    }
    if (!reg) {
        free(yml);
        return bd_seterr(BD_EINVAL, "bd_replay_resim: no registry to plan %s/run.yml's phases with", run_dir);
    }
    bd_runfile *rf = NULL;
    int rc = bd_runfile_load(yml, &rf);
    free(yml);
    if (rc != BD_OK)
        return rc;
    /* the traces the master holds, for the ranks it links (links to missing files are left
     * out: bodhi replay has said them) */
    char **names = NULL;
    int count = 0;
    if ((rc = bd_trace_list(master, &names, &count)) != BD_OK) {
        bd_runfile_destroy(rf);
        return rc;
    }
    const int own = resim_own_rank(run_dir);
    for (int i = 0; rc == BD_OK && i < rf->nphases; i++) {
        bd_phase_plan p;
        if (bd_phase_plan_make(rf, i, reg, "cpu", &p) != BD_OK) {
            /* its envs cannot be made here (a plugin moved away): that is a check not done */
            fprintf(out, "verify %s: not re-simulated: %s\n", rf->phases[i].name, bd_lasterr());
            (*unmade)++;
        } else {
            for (int k = 0; rc == BD_OK && k < p.nenvs; k++)
                rc = resim_env_ranks(&p, &p.envs[k], master, own, names, count, out, bad, checked);
        }
        bd_phase_plan_fini(&p);
    }
    for (int i = 0; i < count; i++)
        free(names[i]);
    free(names);
    bd_runfile_destroy(rf);
    return rc;
}
