/* test_envlib.c: the env engine as a shared library. This suite links libbodhi_env.so alone
 * (no static bodhi library) and includes only the public headers, as a program without a
 * run file would (a binding, a benchmark): it sets Tag's tag_radius by name, steps, resets
 * with a seed, and checks that the library exports bodhi/env.h's functions and bodhi.h's
 * errors and nothing else (its dynamic symbol table, read with nm). */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "bodhi/env.h"

/* Rows whose reward is not 0 (a tag: -1 for the runner, +1 for the tagger) over `steps`
 * random steps of W Tag worlds with tag radius r (set by name). */
static long tags_with_radius(double r, int steps)
{
    const bd_env_desc *d = bd_env_find("tag");
    cr_assert_not_null(d);
    float p[BD_ENV_MAX_PARAMS];
    bd_env_param_defaults(d, p);
    cr_assert_eq(bd_env_param_set(d, p, "tag_radius", r), BD_OK, "%s", bd_lasterr());
    bd_env *e = NULL;
    const int W = 8;
    cr_assert_eq(bd_env_create(d, W, 0, 42, BD_DEVICE_CPU, 0, p, &e), BD_OK, "%s", bd_lasterr());
    bd_env_batch *b = bd_env_batch_of(e);
    cr_assert_eq(b->param[bd_env_param_index(d, "tag_radius")], (float)r);
    long tags = 0;
    const int R = W * b->members;
    for (int t = 0; t < steps; t++) {
        cr_assert_eq(bd_env_random_actions(e, (uint64_t)t), BD_OK, "%s", bd_lasterr());
        cr_assert_eq(bd_env_step(e), BD_OK, "%s", bd_lasterr());
        for (int i = 0; i < R; i++)
            tags += b->rewards[i] != 0.0f;
    }
    /* a reset with the seed it was made with gives the worlds it started with */
    bd_env *again = NULL;
    cr_assert_eq(bd_env_create(d, W, 0, 42, BD_DEVICE_CPU, 0, p, &again), BD_OK, "%s", bd_lasterr());
    cr_assert_eq(bd_env_reset(e, 42), BD_OK, "%s", bd_lasterr());
    cr_assert_eq(memcmp(b->obs, bd_env_batch_of(again)->obs, sizeof(float) * (size_t)R * (size_t)b->obs_dim), 0);
    bd_env_destroy(again);
    bd_env_destroy(e);
    return tags;
}

Test(envlib, tag_radius_by_name_then_steps)
{
    long wide = tags_with_radius(3.0, 50), narrow = tags_with_radius(0.001, 50);
    cr_assert(wide > 0, "taggers reach runners within 3");
    cr_assert(wide > narrow, "a wider tag radius tags more: %ld vs %ld", wide, narrow);
    const bd_env_desc *d = bd_env_find("tag");
    float p[BD_ENV_MAX_PARAMS];
    bd_env_param_defaults(d, p);
    cr_assert_eq(bd_env_param_set(d, p, "tag_radius", -1), BD_EINVAL);
    cr_assert(strstr(bd_lasterr(), "tag_radius: expected a number from 0.001 to 10000"), "%s", bd_lasterr());
    cr_assert_str_eq(bd_strerror(BD_EINVAL), "invalid argument");
}

Test(envlib, exports_the_api_and_nothing_else)
{
    char cmd[1024], line[512];
    snprintf(cmd, sizeof cmd, "nm -D --defined-only '%s'", BODHI_ENV_LIB);
    FILE *f = popen(cmd, "r");
    cr_assert_not_null(f);
    static const char *const errors[] = {"bd_strerror", "bd_seterr", "bd_lasterr", "bd_version"};
    int api = 0, create = 0, set = 0, reset = 0;
    while (fgets(line, sizeof line, f)) {
        char addr[64], type[8], name[256];
        if (sscanf(line, "%63s %7s %255s", addr, type, name) != 3 || strchr("TtWiI", type[0]) == NULL)
            continue; /* data (the built-ins' descriptors stay inside) and the loader's own */
        if (strncmp(name, "_", 1) == 0)
            continue; /* _init, _fini */
        int ok = strncmp(name, "bd_env_", 7) == 0;
        for (size_t k = 0; k < sizeof errors / sizeof errors[0]; k++)
            ok |= strcmp(name, errors[k]) == 0;
        cr_assert(ok, "libbodhi_env.so exports %s, which is not in bodhi/env.h or bodhi.h", name);
        api++;
        create |= strcmp(name, "bd_env_create") == 0;
        set |= strcmp(name, "bd_env_param_set") == 0;
        reset |= strcmp(name, "bd_env_reset") == 0;
    }
    cr_assert_eq(pclose(f), 0, "%s failed", cmd);
    cr_assert(create && set && reset, "the engine's functions are exported (%d symbols)", api);
}
