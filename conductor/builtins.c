/* builtins.c: bodhi's registry (see builtins.h), assembled from the tables of the folders
 * below the conductor. */
#include "conductor/builtins.h"

#include "brain/brain.h"
#include "memory/memory.h"
#include "muscle/muscle.h"
#include "torch/bd_torch.h"

static const char *const bd_objectives[] = {"reward", NULL};

/* record.compression: a name memory/ knows, whose filter HDF5 here can load. */
static int bd_compression_ok(const char *name)
{
    int c = bd_compression_parse(name);
    if (c < 0)
        return bd_seterr(BD_EINVAL, "expected none, blosc, lz4 or deflate, got '%s'", name);
    return bd_compression_available((bd_compression)c);
}

const bd_registry *bd_registry_builtin(void)
{
    static bd_registry reg;
    if (!reg.env_load) {
        reg.env_builtins = bd_env_registry;
        reg.env_gym_id = bd_env_gym_id;
        reg.env_shape = bd_env_shape_of;
        reg.env_param_check = bd_env_param_check;
        reg.brains = bd_brain_kinds;
        reg.nbrains = bd_brain_nkinds;
        reg.muscles = bd_muscle_kinds;
        reg.nmuscles = bd_muscle_nkinds;
        reg.objectives = bd_objectives;
        reg.learner_cuda = bdt_cuda_available;
        reg.env_load = bd_env_load;
        reg.compression_ok = bd_compression_ok;
    }
    return &reg;
}
