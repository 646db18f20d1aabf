/* plugin.c: environments from shared objects named in a run file as
 * "path/to/lib.so:symbol" (see bd_env_load in include/bodhi/env.h). A plugin exports a
 * `const bd_env_desc symbol` built against include/bodhi/env_abi.h; it may provide a CUDA
 * launcher too. Handles are never closed: descriptors point into the object. */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "bodhi/env.h"

static int bd_env_check(const bd_env_desc *d, const char *what)
{
    if (d->abi_version != BD_ENV_ABI)
        return bd_seterr(BD_EINVAL, "%s: env ABI version %d, this bodhi needs %d (rebuild the plugin)",
                         what, d->abi_version, BD_ENV_ABI);
    if (!d->name || d->state_dim < 0 || !d->reset_cpu || !d->step_cpu || d->default_max_steps < 1
        || d->nparams < 0 || d->nparams > BD_ENV_MAX_PARAMS || d->ngroups < 0 || d->ngroups > BD_ENV_MAX_GROUPS
        || (d->nparams && !d->params) || (d->ngroups && !d->groups))
        return bd_seterr(BD_EINVAL, "%s: incomplete bd_env_desc (needs name, reset_cpu, step_cpu, "
                                    "default_max_steps; at most %d params and %d groups)", what,
                         BD_ENV_MAX_PARAMS, BD_ENV_MAX_GROUPS);
    for (int k = 0; k < d->nparams; k++) {
        const bd_env_param *pk = &d->params[k];
        if (!pk->name || !(pk->min <= pk->def && pk->def <= pk->max))
            return bd_seterr(BD_EINVAL, "%s: param %d has no name or a default outside its range", what, k);
        int taken = strcmp(pk->name, "worlds") == 0 || strcmp(pk->name, "max_steps") == 0;
        for (int j = 0; j < k; j++)
            taken |= strcmp(d->params[j].name, pk->name) == 0;
        if (taken)
            return bd_seterr(BD_EINVAL, "%s: param '%s' is declared twice (worlds and max_steps are every env's)", what,
                             pk->name);
    }
    /* the channels: the desc's own, or each group's */
    int groups = d->ngroups > 0 ? d->ngroups : 1;
    for (int g = 0; g < groups; g++) {
        const bd_env_group *gr = d->ngroups > 0 ? &d->groups[g] : NULL;
        int od = gr ? gr->obs_dim : d->obs_dim, ad = gr ? gr->act_dim : d->act_dim;
        const bd_channel *sens = gr ? gr->sensors : d->sensors, *acts = gr ? gr->actuators : d->actuators;
        if (gr && (!gr->name || gr->count_param < 0 || gr->count_param >= d->nparams
                   || !d->params[gr->count_param].integer || d->params[gr->count_param].min < 1))
            return bd_seterr(BD_EINVAL, "%s: group %d has no name or no count param (an integer param of at least 1)",
                             what, g);
        if (od < 1 || ad < 1 || od > BD_MAX_CHANNELS || ad > BD_MAX_ACTUATORS || !sens || !acts)
            return bd_seterr(BD_EINVAL, "%s: %s%s needs 1 to %d sensors and 1 to %d actuators", what,
                             gr ? "group " : "the env", gr ? gr->name : "", BD_MAX_CHANNELS, BD_MAX_ACTUATORS);
        for (int k = 0; k < od; k++)
            if (!sens[k].name)
                return bd_seterr(BD_EINVAL, "%s: sensor %d has no name", what, k);
        for (int k = 0; k < ad; k++)
            if (!acts[k].name || acts[k].n < 0)
                return bd_seterr(BD_EINVAL, "%s: actuator %d has no name or a negative size", what, k);
    }
    if ((d->step_cuda == NULL) != (d->reset_cuda == NULL))
        return bd_seterr(BD_EINVAL, "%s: step_cuda and reset_cuda come together", what);
    return BD_OK;
}

int bd_env_load(const char *name, const bd_env_desc **out)
{
    *out = bd_env_find(name);
    if (*out)
        return BD_OK;
    const char *colon = strrchr(name, ':');
    if (!colon || colon == name || !colon[1])
        return bd_seterr(BD_ENOTFOUND, "unknown environment '%s'", name);
    char path[4096];
    size_t len = (size_t)(colon - name);
    if (len >= sizeof path)
        return bd_seterr(BD_EINVAL, "plugin path too long: %s", name);
    memcpy(path, name, len);
    path[len] = '\0';
    /* dlopen searches the library path for a bare name; a plugin is a file: keep a '/'. */
    char file[4096 + 2];
    snprintf(file, sizeof file, "%s%s", strchr(path, '/') ? "" : "./", path);
    /* a file: dlopen of a named pipe waits for a writer, of a folder fails with less to say
     * (one that is not there, dlopen says so) */
    struct stat st;
    if (stat(file, &st) == 0 && !S_ISREG(st.st_mode))
        return bd_seterr(BD_ENOTFOUND, "environment plugin %s cannot be loaded: it is not a file (a shared object)",
                         path);
    void *h = dlopen(file, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *why = dlerror();
        size_t fl = strlen(file);
        if (why && strncmp(why, file, fl) == 0 && strncmp(why + fl, ": ", 2) == 0)
            why += fl + 2; /* dlerror names the file too */
        return bd_seterr(BD_ENOTFOUND, "environment plugin %s cannot be loaded: %s", path, why ? why : "?");
    }
    const bd_env_desc *d = dlsym(h, colon + 1);
    if (!d)
        return bd_seterr(BD_ENOTFOUND, "environment plugin %s has no symbol '%s'", path, colon + 1);
    int rc = bd_env_check(d, name);
    if (rc == BD_OK)
        *out = d;
    return rc;
}
