/* resim.c: `bodhi replay RUN_DIR --verify`'s re-simulation (see cli.h).
 *
 * A phase's worlds depend only on the run's seed, their global index and the actions they
 * were given (include/bodhi/env.h), so one shard of all the phase's worlds on the CPU,
 * seeded as the muscles' were (config/plan.h: env_seed), replays the phase from the
 * actuator setpoints every agent recorded. Row r of each agent's sensors must then be what
 * the env shows before step r. A world whose row holds NaN (its muscle was lost for a
 * round, and a restarted muscle starts its worlds over) is not checked from there on.
 * Setpoints are clipped to their actuator's bounds as the muscles clip them
 * (muscle/act.h); a discrete setpoint is its index.
 * Needs every step of every world (record: true); rows are streamed in blocks. */
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

typedef struct {
    const bd_agent_plan *ap;
    float *sens, *act; /* a block of rows: (B, N, S) and (B, N, U) */
} resim_agent;

static int resim_close(float stored, float sim)
{
    return fabsf(stored - sim) <= RESIM_REL_TOL * fmaxf(fabsf(stored), fabsf(sim)) + RESIM_ABS_TOL;
}

/* Re-simulates phase p from the traces in master; *bad counts worlds that diverged. */
static int resim_phase(const bd_phase_plan *p, const char *master, FILE *out, int64_t *bad)
{
    const char *phase = p->ph->name;
    const int N = (int)p->worlds, na = p->nagents;
    int64_t T = -1;
    for (int k = 0; k < na; k++) {
        bd_trace_info info;
        const char *agent = p->agents[k].cfg->name;
        int rc = bd_trace_read_info(master, phase, agent, &info);
        if (rc == BD_ENOTFOUND) {
            fprintf(out, "verify %s: not re-simulated: no trace of agent %s (the phase did not run, or its file is missing)\n", phase, agent);
            return BD_OK;
        }
        if (rc != BD_OK)
            return rc;
        int whole = info.every == 1 && info.recorded_worlds == N && info.worlds == N;
        int64_t rows = info.rows;
        if (!whole)
            fprintf(out, "verify %s: not re-simulated: agent %s records every %d step(s) of %d of %d worlds "
                         "(re-simulation needs every step of every world)\n", phase, agent, info.every,
                    info.recorded_worlds, N);
        bd_trace_info_free(&info);
        if (!whole)
            return BD_OK;
        T = T < 0 || rows < T ? rows : T;
    }
    if (T <= 0) {
        fprintf(out, "verify %s: not re-simulated: no steps recorded\n", phase);
        return BD_OK;
    }
    bd_env *env = NULL;
    int rc = bd_env_create(p->env, N, 0, p->env_seed, BD_DEVICE_CPU, p->max_steps, &env);
    if (rc != BD_OK)
        return rc;
    bd_env_set_threads(env, 0);
    bd_env_batch *b = bd_env_batch_of(env);
    const int D = p->env->obs_dim, AD = p->env->act_dim;
    size_t row_bytes = 0;
    for (int k = 0; k < na; k++)
        row_bytes += sizeof(float) * (size_t)N * (size_t)(p->agents[k].nsens + p->agents[k].nact);
    int64_t B = (int64_t)(RESIM_BLOCK_BYTES / (row_bytes ? row_bytes : 1));
    B = B < 1 ? 1 : B > T ? T : B;
    resim_agent *ag = calloc((size_t)na, sizeof *ag);
    uint8_t *skip = calloc((size_t)N, 1); /* 1: lost (NaN), 2: diverged */
    /* the step's outcome as recorded (the env's, the same in every agent's trace) */
    float *rew = malloc(sizeof(float) * (size_t)B * (size_t)N);
    uint8_t *term = malloc((size_t)B * (size_t)N), *trunc = malloc((size_t)B * (size_t)N);
    if (!ag || !skip || !rew || !term || !trunc)
        rc = bd_seterr(BD_ENOMEM, "out of memory");
    for (int k = 0; rc == BD_OK && k < na; k++) {
        ag[k].ap = &p->agents[k];
        ag[k].sens = malloc(sizeof(float) * (size_t)B * (size_t)N * (size_t)ag[k].ap->nsens);
        ag[k].act = malloc(sizeof(float) * (size_t)B * (size_t)N * (size_t)ag[k].ap->nact);
        if (!ag[k].sens || !ag[k].act)
            rc = bd_seterr(BD_ENOMEM, "out of memory re-simulating %s", phase);
    }
    int64_t lost = 0, diverged = 0, reports = 0;
    for (int64_t r0 = 0; rc == BD_OK && r0 < T; r0 += B) {
        int64_t nr = T - r0 < B ? T - r0 : B;
        for (int k = 0; rc == BD_OK && k < na; k++) {
            const char *agent = ag[k].ap->cfg->name;
            rc = bd_trace_read_rows(master, phase, agent, "sensors", r0, nr, N, ag[k].ap->nsens, ag[k].sens);
            if (rc == BD_OK)
                rc = bd_trace_read_rows(master, phase, agent, "actuators", r0, nr, N, ag[k].ap->nact, ag[k].act);
            if (rc == BD_OK && k == 0)
                rc = bd_trace_read_rows(master, phase, agent, "rewards", r0, nr, N, 0, rew);
            if (rc == BD_OK && k == 0)
                rc = bd_trace_read_rows(master, phase, agent, "terminated", r0, nr, N, 0, term);
            if (rc == BD_OK && k == 0)
                rc = bd_trace_read_rows(master, phase, agent, "truncated", r0, nr, N, 0, trunc);
        }
        for (int64_t r = r0; rc == BD_OK && r < r0 + nr; r++) {
            for (int k = 0; k < na; k++) {
                const bd_agent_plan *ap = ag[k].ap;
                const int S = ap->nsens, U = ap->nact;
                const float *sens = ag[k].sens + (size_t)(r - r0) * (size_t)N * (size_t)S;
                const float *act = ag[k].act + (size_t)(r - r0) * (size_t)N * (size_t)U;
                for (int i = 0; i < N; i++) {
                    for (int s = 0; s < S && !skip[i]; s++) {
                        float stored = sens[(size_t)i * S + s], sim = b->obs[(size_t)i * D + ap->sens_cols[s]];
                        if (isnan(stored)) {
                            skip[i] = 1;
                            lost++;
                        } else if (!resim_close(stored, sim)) {
                            skip[i] = 2;
                            diverged++;
                            if (++reports <= RESIM_MAX_REPORTS)
                                fprintf(out, "verify %s/%s: world %d first differs at step %lld: %s stored %.9g, "
                                             "re-simulated %.9g\n", phase, ap->cfg->name, i, (long long)r,
                                        ap->sensor_ids[s], stored, sim);
                        }
                    }
                    for (int u = 0; u < U; u++) {
                        float x = act[(size_t)i * U + u];
                        if (isnan(x))
                            x = 0;
                        if (ap->continuous)
                            x = x < ap->act_low[u] ? ap->act_low[u] : x > ap->act_high[u] ? ap->act_high[u] : x;
                        b->actions[(size_t)i * AD + ap->act_cols[u]] = x;
                    }
                }
            }
            rc = bd_env_step(env);
            /* the step's reward and flags, as recorded in the row of its action */
            const size_t base = (size_t)(r - r0) * (size_t)N;
            for (int i = 0; rc == BD_OK && i < N; i++) {
                if (skip[i] || isnan(rew[base + i]))
                    continue;
                const char *what = NULL;
                double stored = 0, sim = 0;
                if (!resim_close(rew[base + i], b->rewards[i]))
                    what = "reward", stored = rew[base + i], sim = b->rewards[i];
                else if ((term[base + i] != 0) != (b->terminated[i] != 0))
                    what = "terminated", stored = term[base + i], sim = b->terminated[i];
                else if ((trunc[base + i] != 0) != (b->truncated[i] != 0))
                    what = "truncated", stored = trunc[base + i], sim = b->truncated[i];
                if (what) {
                    skip[i] = 2;
                    diverged++;
                    if (++reports <= RESIM_MAX_REPORTS)
                        fprintf(out, "verify %s: world %d first differs at step %lld: %s stored %.9g, re-simulated "
                                     "%.9g\n", phase, i, (long long)r, what, stored, sim);
                }
            }
        }
    }
    if (rc == BD_OK) {
        fprintf(out, "verify %s: re-simulated %lld steps of %d worlds from seed and setpoints: ", phase, (long long)T, N);
        if (diverged)
            fprintf(out, "%lld world(s) differ from their recorded sensors, rewards or flags\n", (long long)diverged);
        else
            fprintf(out, "every recorded sensor, reward and flag matches\n");
        if (lost)
            fprintf(out, "verify %s: %lld world(s) not checked past a round their muscle lost\n", phase,
                    (long long)lost);
        *bad += diverged;
    }
    for (int k = 0; ag && k < na; k++) {
        free(ag[k].sens);
        free(ag[k].act);
    }
    free(ag);
    free(skip);
    free(rew);
    free(term);
    free(trunc);
    bd_env_destroy(env);
    return rc;
}

int bd_replay_resim(const char *run_dir, const char *master, FILE *out, int64_t *bad)
{
    *bad = 0;
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
        if (bd_phase_plan_make(rf, i, bd_registry_builtin(), "cpu", &p) != BD_OK)
            fprintf(out, "verify %s: not re-simulated: %s\n", rf->phases[i].name, bd_lasterr());
        else
            rc = resim_phase(&p, master, out, bad);
        bd_phase_plan_fini(&p);
    }
    bd_runfile_destroy(rf);
    return rc;
}
