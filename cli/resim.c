/* resim.c: `bodhi replay RUN_DIR --verify`'s re-simulation (see cli.h).
 *
 * An env's worlds depend only on the run's seed, their global index and the actions they
 * were given (include/bodhi/env.h), so one shard of all of an env's worlds on the CPU,
 * seeded as the muscles' were (config/plan.h: bd_env_plan.seed), replays the phase from
 * the actuator setpoints every agent of that env recorded. Row r of each agent's sensors
 * must then be what the env shows before step r, and its rewards and flags what the step
 * gave its rows. A world whose row holds NaN (its muscle was lost for a
 * round, and a restarted muscle starts its worlds over) is not checked from there on.
 * Setpoints are clipped to their actuator's bounds as the muscles clip them
 * (muscle/act.h); a discrete setpoint is its index.
 * Needs every step (record.every 1) of the worlds it checks: with record.worlds the first
 * worlds recorded are re-simulated alone (a world depends on no other); rows are streamed
 * in blocks. */
#define _GNU_SOURCE
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bodhi/env.h"
#include "cli/cli.h"
#include "common/util.h"
#include "conductor/builtins.h"
#include "config/plan.h"
#include "config/runfile.h"
#include "memory/memory.h"

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
    int N;             /* its columns: worlds x members */
    float *sens, *act; /* a block of rows: (B, N, S) and (B, N, U) */
    float *rew;        /* (B, N) the step's outcome as recorded */
    uint8_t *term, *trunc;
    /* the final observations of its episodes, by the step they ended at */
    resim_end *ends;   /* (nends) sorted by step, then column */
    int64_t nends, next;
    float *fin;        /* (E, S) final_sensors, or NULL: not checked */
} resim_agent;

/* Agent k's episodes and final observations, when the trace has them and they fit; else
 * a line saying they are not checked. */
static int resim_load_finals(resim_agent *ag, const char *master, const char *phase, FILE *out)
{
    const char *agent = ag->ap->cfg->name;
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

/* Re-simulates env e of phase p from the traces in master of the agents that drive it;
 * *bad counts worlds that diverged. */
static int resim_env(const bd_phase_plan *p, const bd_env_plan *e, const char *master, FILE *out, int64_t *bad,
                     int *checked)
{
    const char *phase = p->ph->name;
    int W = -1; /* the worlds every agent of the env recorded (the first W) */
    int na = 0;
    int64_t T = -1;
    resim_agent *ag = calloc((size_t)p->nagents + 1, sizeof *ag);
    if (!ag)
        return bd_seterr(BD_ENOMEM, "out of memory");
    for (int k = 0; k < p->nagents; k++) {
        const bd_agent_plan *ap = &p->agents[k];
        if (ap->env != e)
            continue;
        bd_trace_info info;
        const char *agent = ap->cfg->name;
        const int N = (int)ap->columns;
        int rc = bd_trace_read_info(master, phase, agent, &info);
        if (rc == BD_ENOTFOUND)
            fprintf(out, "verify %s: not re-simulated: no trace of agent %s (the phase did not run, or its file is missing)\n", phase, agent);
        if (rc != BD_OK) {
            free(ag);
            return rc == BD_ENOTFOUND ? BD_OK : rc;
        }
        const int members = ap->members, rec = info.recorded_worlds;
        int ok = info.every == 1 && info.worlds == N && rec > 0 && rec % members == 0 && (W < 0 || rec / members == W);
        int64_t rows = info.rows;
        if (!ok)
            fprintf(out, "verify %s: not re-simulated: agent %s records every %d step(s) of %d of %d columns "
                         "(re-simulation needs every step of the worlds it checks)\n", phase, agent, info.every,
                    rec, N);
        bd_trace_info_free(&info);
        if (!ok) {
            free(ag);
            return BD_OK;
        }
        W = rec / members;
        T = T < 0 || rows < T ? rows : T;
        ag[na].ap = ap;
        ag[na++].N = rec;
    }
    if (na == 0) {
        free(ag);
        return BD_OK; /* no agent drives it: nothing recorded to compare */
    }
    if (T <= 0) {
        fprintf(out, "verify %s: not re-simulated: no steps recorded\n", phase);
        free(ag);
        return BD_OK;
    }
    bd_env *env = NULL;
    int rc = bd_env_create(e->desc, W, 0, e->seed, BD_DEVICE_CPU, e->max_steps, e->param, &env);
    if (rc != BD_OK) {
        free(ag);
        return rc;
    }
    bd_env_set_threads(env, 0);
    bd_env_batch *b = bd_env_batch_of(env);
    const int D = b->obs_dim, AD = b->act_dim;
    size_t row_bytes = 0;
    for (int k = 0; k < na; k++)
        row_bytes += (size_t)ag[k].N * (sizeof(float) * (size_t)(ag[k].ap->nsens + ag[k].ap->nact + 1) + 2);
    int64_t B = (int64_t)(RESIM_BLOCK_BYTES / (row_bytes ? row_bytes : 1));
    B = B < 1 ? 1 : B > T ? T : B;
    uint8_t *skip = calloc((size_t)W, 1); /* by world: 1 lost (NaN), 2 diverged */
    if (!skip)
        rc = bd_seterr(BD_ENOMEM, "out of memory");
    for (int k = 0; rc == BD_OK && k < na; k++) {
        const size_t bn = (size_t)B * (size_t)ag[k].N;
        ag[k].sens = malloc(sizeof(float) * bn * (size_t)ag[k].ap->nsens);
        ag[k].act = malloc(sizeof(float) * bn * (size_t)ag[k].ap->nact);
        ag[k].rew = malloc(sizeof(float) * bn);
        ag[k].term = malloc(bn);
        ag[k].trunc = malloc(bn);
        if (!ag[k].sens || !ag[k].act || !ag[k].rew || !ag[k].term || !ag[k].trunc)
            rc = bd_seterr(BD_ENOMEM, "out of memory re-simulating %s", phase);
    }
    for (int k = 0; rc == BD_OK && k < na; k++)
        rc = resim_load_finals(&ag[k], master, phase, out);
    int64_t lost = 0, diverged = 0, reports = 0, finals = 0;
    char wb[96];
    for (int64_t r0 = 0; rc == BD_OK && r0 < T; r0 += B) {
        int64_t nr = T - r0 < B ? T - r0 : B;
        for (int k = 0; rc == BD_OK && k < na; k++) {
            const char *agent = ag[k].ap->cfg->name;
            const int N = ag[k].N;
            rc = bd_trace_read_rows(master, phase, agent, "sensors", r0, nr, N, ag[k].ap->nsens, ag[k].sens);
            if (rc == BD_OK)
                rc = bd_trace_read_rows(master, phase, agent, "actuators", r0, nr, N, ag[k].ap->nact, ag[k].act);
            if (rc == BD_OK)
                rc = bd_trace_read_rows(master, phase, agent, "rewards", r0, nr, N, 0, ag[k].rew);
            if (rc == BD_OK)
                rc = bd_trace_read_rows(master, phase, agent, "terminated", r0, nr, N, 0, ag[k].term);
            if (rc == BD_OK)
                rc = bd_trace_read_rows(master, phase, agent, "truncated", r0, nr, N, 0, ag[k].trunc);
        }
        for (int64_t r = r0; rc == BD_OK && r < r0 + nr; r++) {
            for (int k = 0; k < na; k++) {
                const bd_agent_plan *ap = ag[k].ap;
                const int S = ap->nsens, U = ap->nact, N = ag[k].N, cnt = ap->members;
                const float *sens = ag[k].sens + (size_t)(r - r0) * (size_t)N * (size_t)S;
                const float *act = ag[k].act + (size_t)(r - r0) * (size_t)N * (size_t)U;
                for (int i = 0; i < N; i++) {
                    const int w = i / cnt;
                    const size_t row = (size_t)bd_agent_row(ap, i);
                    for (int s = 0; s < S && !skip[w]; s++) {
                        float stored = sens[(size_t)i * S + s], sim = b->obs[row * D + ap->sens_cols[s]];
                        if (isnan(stored)) {
                            skip[w] = 1;
                            lost++;
                        } else if (!resim_close(stored, sim)) {
                            skip[w] = 2;
                            diverged++;
                            if (++reports <= RESIM_MAX_REPORTS)
                                fprintf(out, "verify %s/%s: %s first differs at step %lld: %s stored %.9g, "
                                             "re-simulated %.9g\n", phase, ap->cfg->name, resim_where(ap, i, wb, sizeof wb),
                                        (long long)r, ap->sensor_ids[s], stored, sim);
                        }
                    }
                    for (int u = 0; u < U; u++) {
                        float x = act[(size_t)i * U + u];
                        if (ap->continuous) /* clipped as muscle/act.h clips, NaN to low */
                            x = !(x >= ap->act_low[u]) ? ap->act_low[u] : x > ap->act_high[u] ? ap->act_high[u] : x;
                        else if (isnan(x)) /* a lost round's row */
                            x = 0;
                        b->actions[row * AD + ap->act_cols[u]] = x;
                    }
                }
            }
            rc = bd_env_step(env);
            /* the step's reward and flags, as each agent recorded them in the row of its action */
            for (int k = 0; rc == BD_OK && k < na; k++) {
                const bd_agent_plan *ap = ag[k].ap;
                const int N = ag[k].N, cnt = ap->members;
                const size_t base = (size_t)(r - r0) * (size_t)N;
                for (int i = 0; i < N; i++) {
                    const int w = i / cnt;
                    const size_t row = (size_t)bd_agent_row(ap, i);
                    if (skip[w] || isnan(ag[k].rew[base + i]))
                        continue;
                    const char *what = NULL;
                    double stored = 0, sim = 0;
                    if (!resim_close(ag[k].rew[base + i], b->rewards[row]))
                        what = "reward", stored = ag[k].rew[base + i], sim = b->rewards[row];
                    else if ((ag[k].term[base + i] != 0) != (b->terminated[row] != 0))
                        what = "terminated", stored = ag[k].term[base + i], sim = b->terminated[row];
                    else if ((ag[k].trunc[base + i] != 0) != (b->truncated[row] != 0))
                        what = "truncated", stored = ag[k].trunc[base + i], sim = b->truncated[row];
                    if (what) {
                        skip[w] = 2;
                        diverged++;
                        if (++reports <= RESIM_MAX_REPORTS)
                            fprintf(out, "verify %s/%s: %s first differs at step %lld: %s stored %.9g, "
                                         "re-simulated %.9g\n", phase, ap->cfg->name, resim_where(ap, i, wb, sizeof wb),
                                    (long long)r, what, stored, sim);
                    }
                }
                /* the episodes that ended at this step: what each saw last, before its reset */
                resim_agent *g = &ag[k];
                while (g->fin && g->next < g->nends && g->ends[g->next].step < r)
                    g->next++;
                for (; g->fin && g->next < g->nends && g->ends[g->next].step == r; g->next++) {
                    const resim_end *en = &g->ends[g->next];
                    if (en->column < 0 || en->column >= N)
                        continue;
                    const int w = en->column / cnt, S = ap->nsens;
                    const size_t row = (size_t)bd_agent_row(ap, en->column);
                    if (skip[w] || !(b->terminated[row] || b->truncated[row]))
                        continue; /* lost, or a flag that differs (reported above) */
                    finals++;
                    for (int sx = 0; sx < S; sx++) {
                        float stored = g->fin[en->row * S + sx], sim = b->final_obs[row * D + ap->sens_cols[sx]];
                        if (resim_close(stored, sim))
                            continue;
                        skip[w] = 2;
                        diverged++;
                        if (++reports <= RESIM_MAX_REPORTS)
                            fprintf(out, "verify %s/%s: %s first differs at step %lld: the final %s of its episode "
                                         "stored %.9g, re-simulated %.9g\n", phase, ap->cfg->name,
                                    resim_where(ap, en->column, wb, sizeof wb), (long long)r, ap->sensor_ids[sx],
                                    stored, sim);
                        break;
                    }
                }
            }
        }
    }
    if (rc == BD_OK) {
        if (W < (int)e->worlds)
            fprintf(out, "verify %s: re-simulated %lld steps of the %d recorded worlds (of %d) of %s from seed and "
                         "setpoints: ", phase, (long long)T, W, (int)e->worlds, e->uid);
        else
            fprintf(out, "verify %s: re-simulated %lld steps of %d worlds of %s from seed and setpoints: ", phase,
                    (long long)T, W, e->uid);
        (*checked)++;
        if (diverged)
            fprintf(out, "%lld world(s) differ from their recorded sensors, rewards, flags or final observations\n",
                    (long long)diverged);
        else
            fprintf(out, "every recorded sensor, reward and flag matches, and the final observations of %lld "
                         "episodes\n", (long long)finals);
        if (lost)
            fprintf(out, "verify %s: %lld world(s) not checked past a round their muscle lost\n", phase,
                    (long long)lost);
        *bad += diverged;
    }
    for (int k = 0; k < na; k++) {
        free(ag[k].sens);
        free(ag[k].act);
        free(ag[k].rew);
        free(ag[k].term);
        free(ag[k].trunc);
        free(ag[k].ends);
        free(ag[k].fin);
    }
    free(ag);
    free(skip);
    bd_env_destroy(env);
    return rc;
}

int bd_replay_resim(const char *run_dir, const char *master, FILE *out, int64_t *bad, int *checked, int *unmade)
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
    bd_runfile *rf = NULL;
    int rc = bd_runfile_load(yml, &rf);
    free(yml);
    if (rc != BD_OK)
        return rc;
    for (int i = 0; rc == BD_OK && i < rf->nphases; i++) {
        bd_phase_plan p;
        if (bd_phase_plan_make(rf, i, bd_registry_builtin(), "cpu", &p) != BD_OK) {
            /* its envs cannot be made here (a plugin moved away): that is a check not done */
            fprintf(out, "verify %s: not re-simulated: %s\n", rf->phases[i].name, bd_lasterr());
            (*unmade)++;
        } else {
            for (int k = 0; rc == BD_OK && k < p.nenvs; k++)
                rc = resim_env(&p, &p.envs[k], master, out, bad, checked);
        }
        bd_phase_plan_fini(&p);
    }
    bd_runfile_destroy(rf);
    return rc;
}
