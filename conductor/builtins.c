/* builtins.c: bodhi's registry (see builtins.h), assembled from the tables of the folders
 * below the conductor. */
#include "conductor/builtins.h"

#include "brain/brain.h"
#ifdef BODHI_HAVE_PYENV
#include "env/python/pyenv.h"
#endif
#include "memory/memory.h"
#include "muscle/eval.h"
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

static bd_kind bd_brains[BD_REGISTRY_MAX_BRAINS]; /* brain/'s, then those added */
static int bd_nbrains;

int bd_registry_add_brains(const bd_kind *kinds, int n)
{
    if (bd_nbrains == 0) {
        for (int i = 0; i < bd_brain_nkinds && i < BD_REGISTRY_MAX_BRAINS; i++)
            bd_brains[i] = bd_brain_kinds[i];
        bd_nbrains = bd_brain_nkinds;
    }
    for (int i = 0; i < n; i++) {
        if (bd_kind_find(bd_brains, bd_nbrains, kinds[i].name))
            return bd_seterr(BD_EINVAL, "a brain kind named '%s' exists already", kinds[i].name);
        if (bd_nbrains >= BD_REGISTRY_MAX_BRAINS)
            return bd_seterr(BD_ENOMEM, "more than %d brain kinds", BD_REGISTRY_MAX_BRAINS);
        bd_brains[bd_nbrains++] = kinds[i];
    }
    bd_registry_builtin();
    return BD_OK;
}

const bd_registry *bd_registry_builtin(void)
{
    static bd_registry reg;
    if (bd_nbrains) { /* kinds were added */
        reg.brains = bd_brains;
        reg.nbrains = bd_nbrains;
    }
    if (!reg.env_load) {
        reg.env_builtins = bd_env_registry;
        reg.env_gym_id = bd_env_gym_id;
        reg.env_shape = bd_env_shape_of;
        reg.env_param_check = bd_env_param_check;
        reg.brains = bd_nbrains ? bd_brains : bd_brain_kinds;
        reg.nbrains = bd_nbrains ? bd_nbrains : bd_brain_nkinds;
        reg.muscles = bd_muscle_kinds;
        reg.nmuscles = bd_muscle_nkinds;
        reg.objectives = bd_objectives;
        reg.learner_cuda = bdt_cuda_available;
#ifdef BODHI_HAVE_PYENV
        reg.env_load = bd_pyenv_load; /* built-ins, plugins and python:module:Class */
#else
        reg.env_load = bd_env_load;
#endif
        reg.compression_ok = bd_compression_ok;
        reg.greedy = &bd_muscle_greedy;
    }
    return &reg;
}
