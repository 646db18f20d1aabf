/* plugin.c: environments from shared objects named in a run file as
 * "path/to/lib.so:symbol" (see bd_env_load in include/bodhi/env.h). A plugin exports a
 * `const bd_env_desc symbol` built against include/bodhi/env.h; it may provide a CUDA
 * launcher too. Handles are never closed: descriptors point into the object. */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "bodhi/env.h"

static int bd_env_check(const bd_env_desc *d, const char *what)
{
    if (d->abi_version != BD_ENV_ABI)
        return bd_seterr(BD_EINVAL, "%s: env ABI version %d, this bodhi needs %d (rebuild the plugin)",
                         what, d->abi_version, BD_ENV_ABI);
    if (!d->name || d->obs_dim < 1 || d->act_dim < 1 || d->state_dim < 0 || !d->sensors
        || !d->actuators || !d->reset_cpu || !d->step_cpu || d->default_max_steps < 1)
        return bd_seterr(BD_EINVAL, "%s: incomplete bd_env_desc (needs name, obs_dim, act_dim, sensors, "
                                    "actuators, reset_cpu, step_cpu, default_max_steps)", what);
    for (int k = 0; k < d->obs_dim; k++)
        if (!d->sensors[k].name)
            return bd_seterr(BD_EINVAL, "%s: sensor %d has no name", what, k);
    for (int k = 0; k < d->act_dim; k++)
        if (!d->actuators[k].name || d->actuators[k].n < 0)
            return bd_seterr(BD_EINVAL, "%s: actuator %d has no name or a negative size", what, k);
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
