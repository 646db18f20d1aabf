/* envs.c: `bodhi envs`: the built-in environments with their sensors and actuators. */
#include <stdio.h>

#include "bodhi/env.h"
#include "cli/cli.h"

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
        printf("  sensors  Box(%d):", d->obs_dim);
        for (int k = 0; k < d->obs_dim; k++)
            printf(" %s[%g, %g]", d->sensors[k].name, d->sensors[k].low, d->sensors[k].high);
        printf("\n  actuators:");
        for (int k = 0; k < d->act_dim; k++) {
            if (d->actuators[k].n > 0)
                printf(" %s Discrete(%d)", d->actuators[k].name, d->actuators[k].n);
            else
                printf(" %s Box[%g, %g]", d->actuators[k].name, d->actuators[k].low,
                       d->actuators[k].high);
        }
        printf("\n");
    }
    return 0;
}
