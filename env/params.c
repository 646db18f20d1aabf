/* params.c: an env's params by name, with their declared ranges (bd_env_param in
 * bodhi/env_abi.h): the one place a value is checked before an env gets it, for the run
 * file's checks (config/plan.c, through the registry) and for programs that use the engine
 * without a run file. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "bodhi/env.h"

int bd_env_param_index(const bd_env_desc *d, const char *name)
{
    for (int k = 0; k < d->nparams && k < BD_ENV_MAX_PARAMS; k++)
        if (strcmp(d->params[k].name, name) == 0)
            return k;
    return -1;
}

int bd_env_param_check(const bd_env_desc *d, int k, double v)
{
    if (k < 0 || k >= d->nparams || k >= BD_ENV_MAX_PARAMS)
        return bd_seterr(BD_ENOTFOUND, "env %s has no param %d", d->name, k);
    const bd_env_param *ep = &d->params[k];
    if (!isfinite(v))
        return bd_seterr(BD_EINVAL, "%s: expected a number (%s), got %g", ep->name, ep->help, v);
    /* compared as the float the env gets: 0.001 is the float min 1e-3f */
    if ((float)v < ep->min || (float)v > ep->max || (ep->integer && v != floor(v)))
        return bd_seterr(BD_EINVAL, "%s: expected %s %g to %g (%s), got %g", ep->name,
                         ep->integer ? "a whole number from" : "a number from", (double)ep->min,
                         (double)ep->max, ep->help, v);
    return BD_OK;
}

int bd_env_param_set(const bd_env_desc *d, float *param, const char *name, double v)
{
    int k = bd_env_param_index(d, name);
    if (k < 0) {
        char known[512] = "";
        size_t l = 0;
        for (int j = 0; j < d->nparams && j < BD_ENV_MAX_PARAMS && l < sizeof known; j++)
            l += (size_t)snprintf(known + l, sizeof known - l, "%s%s", j ? ", " : "", d->params[j].name);
        return bd_seterr(BD_ENOTFOUND, "env %s has no param '%s' (%s%s)", d->name, name,
                         d->nparams ? "its params: " : "it takes none beside worlds and max_steps", known);
    }
    int rc = bd_env_param_check(d, k, v);
    if (rc != BD_OK)
        return rc;
    param[k] = (float)v;
    return BD_OK;
}
