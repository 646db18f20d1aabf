/* pyenvbench.c: `bodhi-pyenvbench [--worlds LIST] [--steps K] [--rounds R] [--out FILE]`:
 * what hosting an env written in Python costs per step call (env/python/): the engine's
 * bd_env_step of a python:module:Class env (the embedded interpreter, the GIL taken, the
 * class's step called with the NumPy views of the shard's buffers, the episode clocks and
 * flags kept in C) against the same class's step called directly from a Python loop over
 * NumPy arrays of the same shapes (the NumPy work alone; bench/pyenv/benchenvs.py,
 * time_direct). Envs: Noop (a step that does nothing: the hosting cost itself), Work (a few
 * NumPy operations) and experiments/sugarscape.py's SugarScape (8 agents on a 16 x 16
 * grid; its worlds end and start over: the direct loop clears the flags, finds the ended
 * worlds and calls reset as bodhi's host does, in NumPy).
 * Rounds interleave the two ways; each way's per-call time is the median over rounds.
 * Actions stay zero. One thread (Python envs step on the muscle's thread). The results
 * file records the load average per round (the machine is shared). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bodhi/env.h"
#include "common/util.h"
#include "env/python/pyenv.h"

typedef struct {
    const char *cls, *module, *folder; /* folder relative to the source tree */
    const char *params;                /* "name=value,..." for both ways */
    int restarts;                      /* its episodes end: the direct way starts them over too */
} bench_env;

static const bench_env ENVS[] = {
    {"Noop", "benchenvs", "bench/pyenv", "", 0},
    {"Work", "benchenvs", "bench/pyenv", "", 0},
    {"SugarScape", "sugarscape", "experiments", "agents=8,size=16,regrow=0.5", 1},
};

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static double loadavg(void)
{
    double l = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f && fscanf(f, "%lf", &l) != 1)
        l = -1;
    if (f)
        fclose(f);
    return l;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Seconds per call of the class's step straight from Python (benchenvs.time_direct). */
static double direct(const bench_env *be, int worlds, int steps)
{
    PyGILState_STATE gs = PyGILState_Ensure();
    double s = -1;
    PyObject *mod = PyImport_ImportModule("benchenvs");
    PyObject *params = PyDict_New();
    char buf[256];
    snprintf(buf, sizeof buf, "%s", be->params);
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        char *eq = strchr(tok, '=');
        *eq = '\0';
        PyObject *v = strchr(eq + 1, '.') ? PyFloat_FromDouble(atof(eq + 1)) : PyLong_FromLong(atol(eq + 1));
        PyDict_SetItemString(params, tok, v);
        Py_DECREF(v);
    }
    PyObject *r = mod ? PyObject_CallMethod(mod, "time_direct", "ssiiOi", be->module, be->cls, worlds, steps, params,
                                            be->restarts)
                      : NULL;
    if (r)
        s = PyFloat_AsDouble(r);
    else
        PyErr_Print();
    Py_XDECREF(r);
    Py_XDECREF(params);
    Py_XDECREF(mod);
    PyGILState_Release(gs);
    return s;
}

/* Seconds per bd_env_step of the env through bodhi. */
static double hosted(bd_env *e, int steps)
{
    for (int t = 0; t < 100 && t < steps; t++)
        if (bd_env_step(e) != BD_OK)
            return -1;
    double t0 = now_s();
    for (int t = 0; t < steps; t++)
        if (bd_env_step(e) != BD_OK)
            return -1;
    return (now_s() - t0) / steps;
}

static cJSON *bench_one(const bench_env *be, int worlds, int steps, int rounds)
{
    char name[4096];
    snprintf(name, sizeof name, "python:%s/%s/%s:%s", BODHI_SOURCE_DIR, be->folder, be->module, be->cls);
    const bd_env_desc *d;
    float param[BD_ENV_MAX_PARAMS];
    bd_env *e = NULL;
    int rc = bd_pyenv_load(name, &d);
    if (rc == BD_OK) {
        bd_env_param_defaults(d, param);
        char buf[256];
        snprintf(buf, sizeof buf, "%s", be->params);
        for (char *tok = strtok(buf, ","); tok && rc == BD_OK; tok = strtok(NULL, ",")) {
            char *eq = strchr(tok, '=');
            *eq = '\0';
            rc = bd_env_param_set(d, param, tok, atof(eq + 1));
        }
    }
    if (rc == BD_OK)
        rc = bd_env_create(d, worlds, 0, 42, BD_DEVICE_CPU, 0, param, &e);
    if (rc != BD_OK) {
        fprintf(stderr, "bodhi-pyenvbench: %s: %s\n", name, bd_lasterr());
        return NULL;
    }
    double *h = calloc((size_t)rounds, sizeof *h), *p = calloc((size_t)rounds, sizeof *p);
    cJSON *o = cJSON_CreateObject(), *hl = cJSON_CreateArray(), *pl = cJSON_CreateArray(), *ll = cJSON_CreateArray();
    for (int r = 0; r < rounds; r++) {
        cJSON_AddItemToArray(ll, cJSON_CreateNumber(loadavg()));
        h[r] = hosted(e, steps) * 1e6;
        p[r] = direct(be, worlds, steps) * 1e6;
        cJSON_AddItemToArray(hl, cJSON_CreateNumber(h[r]));
        cJSON_AddItemToArray(pl, cJSON_CreateNumber(p[r]));
    }
    double hm = median(h, rounds), pm = median(p, rounds); /* sorts them */
    cJSON_AddNumberToObject(o, "bodhi_step_us_min", h[0]);
    cJSON_AddNumberToObject(o, "numpy_alone_step_us_min", p[0]);
    cJSON_AddNumberToObject(o, "overhead_us_of_mins", h[0] - p[0]);
    cJSON_AddStringToObject(o, "env", be->cls);
    cJSON_AddNumberToObject(o, "worlds", worlds);
    cJSON_AddNumberToObject(o, "rows", (double)worlds * bd_env_shape_get(e)->members);
    cJSON_AddNumberToObject(o, "steps_per_round", steps);
    cJSON_AddItemToObject(o, "bodhi_step_us_per_round", hl);
    cJSON_AddItemToObject(o, "numpy_alone_step_us_per_round", pl);
    cJSON_AddItemToObject(o, "load_average_1min_per_round", ll);
    cJSON_AddNumberToObject(o, "bodhi_step_us_median", hm);
    cJSON_AddNumberToObject(o, "numpy_alone_step_us_median", pm);
    cJSON_AddNumberToObject(o, "overhead_us", hm - pm);
    printf("%-10s worlds %6d: bodhi %9.2f us/step, NumPy alone %9.2f us/step, overhead %7.2f us (of the fastest "
           "rounds: %.2f)\n", be->cls, worlds, hm, pm, hm - pm, h[0] - p[0]);
    fflush(stdout);
    free(h);
    free(p);
    bd_env_destroy(e);
    return o;
}

int main(int argc, char **argv)
{
    const char *worlds_list = "16,256,4096", *out = NULL, *note = NULL;
    long long steps = 2000, rounds = 5;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--worlds") && i + 1 < argc)
            worlds_list = argv[++i];
        else if (!strcmp(argv[i], "--steps") && i + 1 < argc && bd_parse_ll(argv[++i], 1, 1000000000, &steps) == BD_OK)
            ;
        else if (!strcmp(argv[i], "--rounds") && i + 1 < argc && bd_parse_ll(argv[++i], 1, 1000, &rounds) == BD_OK)
            ;
        else if (!strcmp(argv[i], "--out") && i + 1 < argc)
            out = argv[++i];
        else if (!strcmp(argv[i], "--note") && i + 1 < argc)
            note = argv[++i];
        else {
            fprintf(stderr, "usage: bodhi-pyenvbench [--worlds LIST] [--steps K] [--rounds R] [--out FILE] [--note TEXT]\n");
            return 2;
        }
    }
    cJSON *res = cJSON_CreateArray();
    char list[1024];
    for (size_t k = 0; k < sizeof ENVS / sizeof ENVS[0]; k++) {
        snprintf(list, sizeof list, "%s", worlds_list);
        char *save = NULL;
        for (char *tok = strtok_r(list, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
            long long w;
            if (bd_parse_ll(tok, 1, 1 << 24, &w) != BD_OK)
                return 2;
            /* SugarScape's steps cost far more: fewer of them, and up to 1024 worlds (beyond,
             * a step takes tens of milliseconds and the hosting's microseconds are noise) */
            long long st = k == 2 ? (steps / 10 > 10 ? steps / 10 : 10) : steps;
            if (k == 2 && w > 1024)
                continue;
            cJSON *o = bench_one(&ENVS[k], (int)w, (int)st, (int)rounds);
            if (!o)
                return 1;
            cJSON_AddItemToArray(res, o);
        }
    }
    if (out) {
        cJSON *doc = cJSON_CreateObject();
        cJSON_AddStringToObject(doc, "what", "per step call: bd_env_step of a python:module:Class env (embedded "
                                "CPython, GIL, NumPy views, episode bookkeeping in C) against the class's step "
                                "called from a Python loop over NumPy arrays (the NumPy work alone); medians "
                                "over interleaved rounds; overhead_us = the difference of the medians, overhead_us_of_mins of the "
                                "fastest rounds (the least disturbed on a loaded machine)");
        char cmd[2048] = "";
        for (int i = 0; i < argc; i++)
            snprintf(cmd + strlen(cmd), sizeof cmd - strlen(cmd), "%s%s", i ? " " : "", i ? argv[i] : "bodhi-pyenvbench");
        cJSON_AddStringToObject(doc, "command", cmd);
        char date[64];
        time_t t = time(NULL);
        strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
        cJSON_AddStringToObject(doc, "date", date);
        cJSON *m = cJSON_AddObjectToObject(doc, "machine");
        char cpu[256] = "?", line[512];
        FILE *ci = fopen("/proc/cpuinfo", "r");
        while (ci && fgets(line, sizeof line, ci))
            if (strncmp(line, "model name", 10) == 0 && strchr(line, ':')) {
                snprintf(cpu, sizeof cpu, "%s", strchr(line, ':') + 2);
                cpu[strcspn(cpu, "\n")] = '\0';
                break;
            }
        if (ci)
            fclose(ci);
        cJSON_AddStringToObject(m, "cpu", cpu);
        cJSON_AddNumberToObject(m, "cores", (double)sysconf(_SC_NPROCESSORS_ONLN));
        cJSON_AddStringToObject(m, "note", note ? note : "shared with other engineers' builds and tests at the "
                                "time (see the load average per round)");
        cJSON_AddStringToObject(doc, "python", Py_GetVersion());
        cJSON_AddItemToObject(doc, "results", res);
        res = doc;
        char *text = cJSON_Print(res);
        FILE *f = fopen(out, "w");
        if (!f || fputs(text, f) < 0) {
            fprintf(stderr, "bodhi-pyenvbench: cannot write %s\n", out);
            return 1;
        }
        fclose(f);
        free(text);
    }
    cJSON_Delete(res);
    return 0;
}
