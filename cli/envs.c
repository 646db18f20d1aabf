/* envs.c: `bodhi envs`: the built-in environments with their params, agent groups,
 * sensors and actuators (at the default params). */
#include <stdio.h>

#include "bodhi/env.h"
#include "cli/cli.h"

static void bd_envs_channels(const char *prefix, const bd_channel *sens, int ns, const bd_channel *acts, int na)
{
    printf("  %ssensors  Box(%d):", prefix, ns);
    for (int k = 0; k < ns; k++)
        printf(" %s[%g, %g]", sens[k].name, sens[k].low, sens[k].high);
    printf("\n  %sactuators:", prefix);
    for (int k = 0; k < na; k++) {
        if (acts[k].n > 0)
            printf(" %s Discrete(%d)", acts[k].name, acts[k].n);
        else
            printf(" %s Box[%g, %g]", acts[k].name, acts[k].low, acts[k].high);
    }
    printf("\n");
}

int bd_cmd_envs(int argc, char **argv)
{
    int rc = bd_parse_opts("envs", argc, argv, NULL, NULL, 0, 0);
    if (rc)
        return BD_OPTS_EXIT(rc);
    int n;
    const bd_env_desc *const *r = bd_env_registry(&n);
    for (int i = 0; i < n; i++) {
        const bd_env_desc *d = r[i];
        const char *gym = bd_env_gym_id(d);
        printf("%s%s%s%s: %s\n  kernels: cpu%s; time limit %d steps\n", d->name, gym ? " (Gymnasium " : "", gym ? gym : "",
               gym ? ")" : "", d->summary, d->step_cuda ? ", cuda" : "", d->default_max_steps);
        for (int k = 0; k < d->nparams; k++)
            printf("  param %s: %s%g (%g to %g): %s\n", d->params[k].name, d->params[k].integer ? "integer " : "",
                   (double)d->params[k].def, (double)d->params[k].min, (double)d->params[k].max, d->params[k].help);
        bd_env_shape sh;
        if (d->ngroups == 0 || bd_env_shape_of(d, NULL, &sh) != BD_OK) {
            bd_envs_channels("", d->sensors, d->obs_dim, d->actuators, d->act_dim);
            continue;
        }
        for (int g = 0; g < d->ngroups; g++) {
            const bd_env_group *gr = &d->groups[g];
            printf("  group %s (%s per world; ids <uid>.%s.<name>):\n", gr->name, d->params[gr->count_param].name, gr->name);
            bd_envs_channels("  ", gr->sensors, sh.obs_dim[g], gr->actuators, sh.act_dim[g]);
        }
    }
    return 0;
}
