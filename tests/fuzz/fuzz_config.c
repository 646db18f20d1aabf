/* fuzz_config.c: libFuzzer target for the run-file loader (config/): YAML with anchors,
 * aliases and merge keys (yamltree.c), the run file's shape and values (runfile.c), and
 * each phase resolved against bodhi's built-in environments (plan.c), and the fsm
 * muscle's state machines (muscle/fsm.c). Every file the
 * loader accepts must also write out as the effective run file (run.yml) and read back
 * the same, as each process of a run reads it. Crashes, leaks, hangs (alias bombs) and
 * out-of-bounds reads show under ASan and UBSan.
 *   build/fuzz_config -max_total_time=600 -dict=tests/fuzz/config.dict tests/fuzz/corpus-config
 * The suite runs it for a few seconds (fuzz_config in CMakeLists.txt). */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bodhi/env.h"
#include "config/diag.h"
#include "config/plan.h"
#include "config/runfile.h"
#include "muscle/fsm_parse.h"

/* The brain and muscle kinds' names and families as bodhi's registry has them; their own
 * params checks live above config/ (brain/, muscle/) and are not part of this target. */
static int fz_fsm_parse(const bd_node *params, const bd_phase_plan *p, const bd_agent_plan *ap, bd_diags *d,
                        void **out)
{
    (void)p;
    (void)out; /* kept nowhere: the machine is only read */
    static bd_fsm f;
    return bd_fsm_parse(params, ap, d, &f);
}

static const bd_kind fz_brains[] = {
    {"ppo", "ppo", 0, NULL, NULL, NULL}, {"random", "random", 1, NULL, NULL, NULL}, {"none", "rules", 1, NULL, NULL, NULL}};
static const bd_kind fz_muscles[] = {
    {"ppo", "ppo", 0, NULL, NULL, NULL}, {"random", "random", 1, NULL, NULL, NULL}, {"fsm", "rules", 1, fz_fsm_parse, NULL, NULL, NULL, NULL, NULL}};
static const char *const fz_objectives[] = {"reward", NULL};

static int fz_no_cuda(void)
{
    return 0;
}

/* Built-ins only: a fuzzed name must not dlopen files. */
static int fz_env_load(const char *name, const bd_env_desc **out)
{
    *out = bd_env_find(name);
    return *out ? BD_OK : bd_seterr(BD_ENOTFOUND, "unknown environment '%s'", name);
}

static const bd_registry fz_reg = {
    .env_load = fz_env_load,
    .env_builtins = bd_env_registry,
    .env_gym_id = bd_env_gym_id,
    .env_shape = bd_env_shape_of,
    .env_param_check = bd_env_param_check,
    .brains = fz_brains,
    .nbrains = 3,
    .muscles = fz_muscles,
    .nmuscles = 3,
    .objectives = fz_objectives,
    .learner_cuda = fz_no_cuda,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 16)
        return 0;
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0';
    bd_diags d = BD_DIAGS_INIT;
    bd_runfile *rf = NULL;
    bd_runfile_parse_all(text, "fuzz.yml", NULL, &d, &rf);
    free(text);
    for (int i = 0; rf && i < rf->nphases; i++) {
        bd_phase_plan p;
        bd_phase_plan_check(rf, i, &fz_reg, "cpu", 0, &d, &p);
        bd_phase_plan_fini(&p);
    }
    /* every message is "FILE:LINE:COL: ..." or names the file */
    for (int i = 0; i < d.n; i++)
        if (strncmp(d.msg[i], "fuzz.yml", 8) != 0 && !strstr(d.msg[i], "out of memory"))
            __builtin_trap();
    if (d.rc == BD_OK && rf) {
        /* run.yml: written out and read back, it is the same run file */
        char *out = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&out, &len);
        if (bd_node_emit(rf->effective, f) != BD_OK)
            __builtin_trap();
        fclose(f);
        bd_runfile *back = NULL;
        if (bd_runfile_parse(out, "run.yml", &back) != BD_OK || back->nphases != rf->nphases
            || back->seed != rf->seed || strcmp(back->uid, rf->uid) != 0)
            __builtin_trap();
        for (int i = 0; i < rf->nphases; i++)
            if (back->phases[i].nagents != rf->phases[i].nagents || back->phases[i].mode != rf->phases[i].mode
                || back->phases[i].episodes != rf->phases[i].episodes)
                __builtin_trap();
        bd_runfile_destroy(back);
        free(out);
    }
    bd_runfile_destroy(rf);
    bd_diags_fini(&d);
    return 0;
}
