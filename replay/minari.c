/* minari.c: `bodhi replay RUN_DIR --minari DIR` (see replay.h): each trace as a Minari
 * dataset, DIR/<run>/<phase>-<agent>-v0/data/{main_data.hdf5, metadata.json}, so that
 * with MINARI_DATASETS_PATH=DIR, minari.load_dataset("<run>/<phase>-<agent>-v0") reads it.
 *
 * An episode's observations are its sensors rows and, last, its final observation
 * (final_sensors), T + 1 rows; its actions the recorded setpoints (a Discrete index as an
 * int64); its rewards as float64; terminations and truncations false but on the last
 * step. Spaces come from the env's sensor and actuator bounds (a plugin's, unknown here,
 * are unbounded); env_spec is null (datasets load and sample; recover_environment needs
 * a Gymnasium spec, which bodhi's batched envs do not have). Needs every step of every
 * world. Rows are streamed in blocks; each episode in progress is held until it ends. */
#define _GNU_SOURCE
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "bodhi/env.h"
#include "common/util.h"
#include "memory/memory.h"
#include "muscle/act.h"
#include "replay/replay.h"

#define MINARI_BLOCK_BYTES ((size_t)32 << 20)
#define MINARI_VERSION "0.5.3" /* the Minari format version these files follow */

/* [-_A-Za-z0-9] of s, anything else as '_' (Minari's dataset ids). */
static char *minari_name(const char *s)
{
    char *d = bd_strdup(s);
    for (char *p = d; p && *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '-'))
            *p = '_';
    return d;
}

/* The channel named after the "<uid>." of id among the env's channels, or NULL. */
static const bd_channel *channel_of(const bd_channel *ch, int n, const char *id)
{
    const char *dot = strchr(id, '.');
    const char *name = dot ? dot + 1 : id;
    for (int k = 0; ch && k < n; k++)
        if (strcmp(ch[k].name, name) == 0)
            return &ch[k];
    return NULL;
}

/* A Box over k channels as Minari serialises it: a JSON string in metadata.json. */
static char *box_json(const bd_channel *const *ch, int k)
{
    cJSON *o = cJSON_CreateObject(), *lo = cJSON_CreateArray(), *hi = cJSON_CreateArray(), *shape = cJSON_CreateArray();
    cJSON_AddStringToObject(o, "type", "Box");
    cJSON_AddStringToObject(o, "dtype", "float32");
    cJSON_AddItemToArray(shape, cJSON_CreateNumber(k));
    cJSON_AddItemToObject(o, "shape", shape);
    /* cJSON cannot write Infinity: the float32 extremes bound an unbounded channel */
    for (int i = 0; i < k; i++) {
        double l = ch[i] ? ch[i]->low : -INFINITY, h = ch[i] ? ch[i]->high : INFINITY;
        cJSON_AddItemToArray(lo, cJSON_CreateNumber(isfinite(l) ? l : -3.4028234663852886e38));
        cJSON_AddItemToArray(hi, cJSON_CreateNumber(isfinite(h) ? h : 3.4028234663852886e38));
    }
    cJSON_AddItemToObject(o, "low", lo);
    cJSON_AddItemToObject(o, "high", hi);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

static char *discrete_json(int n)
{
    return bd_strfmt("{\"type\": \"Discrete\", \"dtype\": \"int64\", \"start\": 0, \"n\": %d}", n);
}

typedef struct {
    const bd_episode *e;
    int64_t id;
    float *obs, *act, *rew; /* (len + 1, S), (len, U), (len) */
} minari_open;

static int cmp_start(const void *a, const void *b, void *ctx)
{
    const bd_episode *eps = ctx;
    int64_t x = eps[*(const int64_t *)a].start_step, y = eps[*(const int64_t *)b].start_step;
    return (x > y) - (x < y);
}

/* The dataset's metadata.json at meta: its id, size, spaces (sc, uc: the channels of its
 * sensors and actuators, NULL where unknown) and where it comes from. */
static int write_metadata(const char *meta, const char *dataset_id, const char *phase, const char *agent,
                          const bd_trace_info *info, const bd_channel **sc, const bd_channel **uc, int discrete,
                          int64_t written, int64_t steps)
{
    char *obs_space = box_json(sc, info->s);
    char *act_space = discrete ? discrete_json(uc[0]->n) : box_json(uc, info->u);
    cJSON *md = cJSON_CreateObject();
    cJSON_AddStringToObject(md, "dataset_id", dataset_id);
    cJSON_AddNumberToObject(md, "total_episodes", (double)written);
    cJSON_AddNumberToObject(md, "total_steps", (double)steps);
    cJSON_AddStringToObject(md, "data_format", "hdf5");
    cJSON_AddStringToObject(md, "observation_space", obs_space ? obs_space : "");
    cJSON_AddStringToObject(md, "action_space", act_space ? act_space : "");
    cJSON_AddNullToObject(md, "env_spec");
    cJSON_AddStringToObject(md, "minari_version", MINARI_VERSION);
    cJSON_AddStringToObject(md, "algorithm_name", agent);
    cJSON *authors = cJSON_AddArrayToObject(md, "author");
    cJSON_AddItemToArray(authors, cJSON_CreateString("bodhi"));
    char *desc = bd_strfmt("bodhi trace of agent %s in phase %s: env %s (%s), %d worlds, seed %llu", agent, phase,
                           info->env, info->env_params, info->worlds, (unsigned long long)info->seed);
    cJSON_AddStringToObject(md, "description", desc ? desc : "");
    cJSON_AddBoolToObject(md, "jpeg_encoding", 0);
    char *text = cJSON_Print(md);
    int rc = text && obs_space && act_space ? bd_write_file(meta, text, strlen(text)) : bd_seterr(BD_ENOMEM, "out of memory");
    free(text);
    free(desc);
    cJSON_Delete(md);
    free(obs_space);
    free(act_space);
    return rc;
}

/* The episodes being assembled while rows stream by, and where finished ones go. */
typedef struct {
    bd_minari_writer *mw;
    const bd_channel **uc; /* (u) the actuators' channels (NULL: unknown) */
    int s, u, discrete;
    const float *fin;      /* (E, s) final_sensors */
    minari_open *open;     /* (nopen) */
    int64_t nopen, written, steps;
} minari_stream;

/* Row r of the trace (sensors sb (N, s), actuators ab (N, u), rewards rb (N)) into each
 * open episode; the ones it ends are written and closed. */
static int feed_row(minari_stream *st, int64_t r, const float *sb, const float *ab, const float *rb)
{
    const size_t S = (size_t)st->s, U = (size_t)st->u;
    int rc = BD_OK;
    for (int64_t k = 0; rc == BD_OK && k < st->nopen;) {
        minari_open *o = &st->open[k];
        size_t t = (size_t)(r - o->e->start_step), w = (size_t)o->e->world;
        memcpy(o->obs + t * S, sb + w * S, sizeof(float) * S);
        /* what the env received: the policy's sample clipped into the Box, as the
         * muscle did (Minari's action space is the env's) */
        for (size_t u = 0; u < U; u++) {
            float a = ab[w * U + u];
            if (st->uc[u] && st->uc[u]->n == 0)
                a = bd_act_clip(a, st->uc[u]->low, st->uc[u]->high);
            o->act[t * U + u] = a;
        }
        o->rew[t] = rb[w];
        if ((int64_t)t + 1 < o->e->length) {
            k++;
            continue;
        }
        /* it ended: its final observation closes the observations */
        memcpy(o->obs + (t + 1) * S, st->fin + (size_t)o->id * S, sizeof(float) * S);
        bd_minari_ep me = {.id = st->written, .steps = o->e->length, .s = st->s, .u = st->u, .discrete = st->discrete,
                           .observations = o->obs, .actions = o->act, .rewards = o->rew,
                           .terminated = o->e->terminated, .truncated = o->e->truncated};
        rc = bd_minari_episode(st->mw, &me);
        st->written++;
        st->steps += o->e->length;
        free(o->obs);
        free(o->act);
        free(o->rew);
        *o = st->open[--st->nopen];
    }
    return rc;
}

/* One trace into dir/data/; *written its episodes. */
static int export_trace(const char *master, const char *phase, const char *agent, const char *dir,
                        const char *dataset_id, FILE *out, int *exported)
{
    bd_trace_info info;
    int rc = bd_trace_read_info(master, phase, agent, &info);
    if (rc)
        return rc;
    if (info.every != 1 || info.recorded_worlds != info.worlds || !info.has_final) {
        fprintf(out, "minari %s/%s: skipped: it records every %d step(s) of %d of %d worlds%s (a dataset needs "
                     "whole episodes)\n", phase, agent, info.every, info.recorded_worlds, info.worlds,
                info.has_final ? "" : " and no final observations");
        bd_trace_info_free(&info);
        return BD_OK;
    }
    const int S = info.s, U = info.u, N = info.worlds;
    const bd_env_desc *env = bd_env_find(info.env);
    const bd_channel **sc = calloc((size_t)S, sizeof *sc), **uc = calloc((size_t)U, sizeof *uc);
    bd_episode *eps = NULL;
    float *fin = NULL;
    int64_t n = 0, fdims[3];
    int frank;
    if (!sc || !uc)
        rc = bd_seterr(BD_ENOMEM, "out of memory");
    for (int k = 0; rc == BD_OK && k < S; k++)
        sc[k] = env ? channel_of(env->sensors, env->obs_dim, info.sensor_ids[k]) : NULL;
    int discrete = U == 1;
    for (int k = 0; rc == BD_OK && k < U; k++) {
        uc[k] = env ? channel_of(env->actuators, env->act_dim, info.actuator_ids[k]) : NULL;
        discrete &= uc[k] && uc[k]->n > 0;
    }
    if (rc == BD_OK)
        rc = bd_trace_read_episodes(master, phase, agent, &eps, &n);
    if (rc == BD_OK)
        rc = bd_trace_read_dataset(master, phase, agent, "final_sensors", (void **)&fin, fdims, &frank);
    if (rc == BD_OK && fdims[1] != S)
        rc = bd_seterr(BD_EHDF5, "'%s': /%s/%s/final_sensors has %lld columns for %d sensors", master, phase, agent,
                       (long long)fdims[1], S);
    if (rc == BD_OK && fdims[0] < n) /* a killed writer: only the episodes with a final observation */
        n = fdims[0];
    char *h5 = bd_strfmt("%s/data/main_data.hdf5", dir), *meta = bd_strfmt("%s/data/metadata.json", dir);
    bd_minari_writer *mw = NULL;
    if (rc == BD_OK)
        rc = h5 && meta ? bd_minari_create(h5, &mw) : bd_seterr(BD_ENOMEM, "out of memory");
    /* the episodes that fit the rows recorded, by their start */
    int64_t *order = malloc(sizeof(int64_t) * (size_t)(n ? n : 1)), m = 0;
    minari_open *open = calloc((size_t)(n ? n : 1), sizeof *open);
    if (rc == BD_OK && (!order || !open))
        rc = bd_seterr(BD_ENOMEM, "out of memory");
    for (int64_t i = 0; rc == BD_OK && i < n; i++)
        if (eps[i].world >= 0 && eps[i].world < N && eps[i].length >= 1 && eps[i].start_step >= 0
            && eps[i].start_step + eps[i].length <= info.rows)
            order[m++] = i;
    if (rc == BD_OK)
        qsort_r(order, (size_t)m, sizeof *order, cmp_start, eps);
    size_t row_floats = (size_t)N * (size_t)(S + U + 1);
    int64_t B = (int64_t)(MINARI_BLOCK_BYTES / (row_floats * sizeof(float)));
    B = B < 1 ? 1 : B > info.rows ? (info.rows ? info.rows : 1) : B;
    float *sb = malloc(sizeof(float) * (size_t)B * (size_t)N * (size_t)S);
    float *ab = malloc(sizeof(float) * (size_t)B * (size_t)N * (size_t)U);
    float *rb = malloc(sizeof(float) * (size_t)B * (size_t)N);
    if (rc == BD_OK && (!sb || !ab || !rb))
        rc = bd_seterr(BD_ENOMEM, "out of memory");
    int64_t next = 0;
    minari_stream st = {.mw = mw, .uc = uc, .s = S, .u = U, .discrete = discrete, .fin = fin, .open = open};
    int64_t first = m ? eps[order[0]].start_step : info.rows;
    for (int64_t r0 = first; rc == BD_OK && r0 < info.rows && (next < m || st.nopen); r0 += B) {
        int64_t nr = info.rows - r0 < B ? info.rows - r0 : B;
        if ((rc = bd_trace_read_rows(master, phase, agent, "sensors", r0, nr, N, S, sb)) ||
            (rc = bd_trace_read_rows(master, phase, agent, "actuators", r0, nr, N, U, ab)) ||
            (rc = bd_trace_read_rows(master, phase, agent, "rewards", r0, nr, N, 0, rb)))
            break;
        for (int64_t r = r0; rc == BD_OK && r < r0 + nr; r++) {
            while (next < m && eps[order[next]].start_step == r) {
                int64_t i = order[next++];
                minari_open *o = &open[st.nopen++];
                size_t L = (size_t)eps[i].length;
                o->e = &eps[i];
                o->id = i;
                o->obs = malloc(sizeof(float) * (L + 1) * (size_t)S);
                o->act = malloc(sizeof(float) * L * (size_t)U);
                o->rew = malloc(sizeof(float) * L);
                if (!o->obs || !o->act || !o->rew)
                    rc = bd_seterr(BD_ENOMEM, "out of memory for episode %lld", (long long)i);
            }
            const size_t base = (size_t)(r - r0) * (size_t)N;
            if (rc == BD_OK)
                rc = feed_row(&st, r, sb + base * (size_t)S, ab + base * (size_t)U, rb + base);
        }
    }
    for (int64_t k = 0; k < st.nopen; k++) {
        free(open[k].obs);
        free(open[k].act);
        free(open[k].rew);
    }
    int crc = bd_minari_close(mw);
    rc = rc ? rc : crc;
    if (rc == BD_OK)
        rc = write_metadata(meta, dataset_id, phase, agent, &info, sc, uc, discrete, st.written, st.steps);
    if (rc == BD_OK) {
        fprintf(out, "minari %s/%s: %lld episodes, %lld steps in %s\n", phase, agent, (long long)st.written,
                (long long)st.steps, dir);
        *exported += st.written > 0; /* a dataset of no episode is no export */
    }
    free(sb);
    free(ab);
    free(rb);
    free(open);
    free(order);
    free(h5);
    free(meta);
    free(fin);
    free(eps);
    free(sc);
    free(uc);
    bd_trace_info_free(&info);
    return rc;
}

int bd_replay_minari(const char *master, const char *run_name, const char *root, FILE *out, int *exported)
{
    *exported = 0;
    char **names = NULL;
    int count = 0;
    int rc = bd_trace_list(master, &names, &count);
    char *run = minari_name(run_name);
    if (!rc && !run)
        rc = bd_seterr(BD_ENOMEM, "out of memory");
    /* Before anything is written: every dataset's id is its own, and none is there
     * already (as Minari refuses to overwrite one; a half-replaced dataset would lie). */
    char **ids = calloc((size_t)(count ? count : 1), sizeof *ids);
    if (!rc && !ids)
        rc = bd_seterr(BD_ENOMEM, "out of memory");
    for (int i = 0; rc == BD_OK && i < count; i++) {
        char *slash = strchr(names[i], '/');
        if (!slash)
            continue;
        *slash = '\0';
        char *ph = minari_name(names[i]), *ag = minari_name(slash + 1);
        *slash = '/';
        ids[i] = ph && ag ? bd_strfmt("%s/%s-%s-v0", run, ph, ag) : NULL;
        free(ph);
        free(ag);
        if (!ids[i]) {
            rc = bd_seterr(BD_ENOMEM, "out of memory");
            break;
        }
        for (int j = 0; j < i; j++)
            if (ids[j] && strcmp(ids[j], ids[i]) == 0)
                rc = bd_seterr(BD_EINVAL, "--minari: traces '%s' and '%s' would both be dataset '%s'", names[j],
                               names[i], ids[i]);
        char *data = rc ? NULL : bd_strfmt("%s/%s/data", root, ids[i]);
        struct stat st;
        if (data && stat(data, &st) == 0)
            rc = bd_seterr(BD_EINVAL, "--minari: a dataset is already at '%s'; remove it or choose another folder",
                           data);
        free(data);
    }
    for (int i = 0; rc == BD_OK && i < count; i++) {
        char *slash = strchr(names[i], '/');
        if (!slash)
            continue;
        *slash = '\0';
        char *ph = minari_name(names[i]), *ag = minari_name(slash + 1);
        char *id = ph && ag ? bd_strfmt("%s/%s-%s-v0", run, ph, ag) : NULL;
        char *dir = id ? bd_strfmt("%s/%s", root, id) : NULL;
        rc = dir ? export_trace(master, names[i], slash + 1, dir, id, out, exported) : bd_seterr(BD_ENOMEM, "out of memory");
        free(ph);
        free(ag);
        free(id);
        free(dir);
    }
    for (int i = 0; i < count; i++) {
        free(names[i]);
        if (ids)
            free(ids[i]);
    }
    free(ids);
    free(names);
    free(run);
    return rc;
}
