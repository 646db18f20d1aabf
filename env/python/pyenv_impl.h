/* pyenv_impl.h: what env/python/'s two files share: a loaded Python env (declare.c reads
 * the class's declarations into it) and the hosted env's calls over a shard (shard.c).
 * Include <Python.h> first. */
#ifndef BODHI_ENV_PYENV_IMPL_H
#define BODHI_ENV_PYENV_IMPL_H

#include <Python.h>

#include "env/hosted.h"
#include "env/python/pyenv.h"

/* Most uniform draws per world and step a class may ask for (step_draws). */
#define BD_PYENV_MAX_DRAWS 4096

typedef struct {
    bd_env_hosted h;   /* first: the desc the engine and the plans see */
    char *name;        /* the run file's name, "python:..." */
    char *label;       /* "module:Class", for messages */
    PyObject *cls;     /* the class (a strong reference, for the life of the process) */
    int draws;         /* step_draws: uniform floats per world handed to step */
    bd_channel sens[BD_ENV_MAX_GROUPS][BD_MAX_CHANNELS];
    bd_channel acts[BD_ENV_MAX_GROUPS][BD_MAX_ACTUATORS];
    bd_env_param params[BD_ENV_MAX_PARAMS];
    bd_env_group groups[BD_ENV_MAX_GROUPS];
} bd_pyenv;

/* Imports NumPy's C API into this process (after the interpreter started, holding the
 * GIL): BD_OK, or BD_EINVAL saying NumPy cannot be imported. */
int bd_pyshard_numpy(void);

/* The engine's calls (env/hosted.h) for a loaded env. */
int bd_pyshard_open(const bd_env_hosted *h, bd_env_batch *b, void **state);
int bd_pyshard_reset(void *state, bd_env_batch *b);
int bd_pyshard_step(void *state, bd_env_batch *b);
void bd_pyshard_close(void *state);

/* The pending Python exception as a BD error: "<label>: <what> raised <its traceback's last
 * line> (<file>:<line> of its innermost frame)"; the exception is cleared. With `print`,
 * the whole traceback goes to stderr first. Holding the GIL. Returns rc. */
int bd_py_raise(int rc, const char *label, const char *what, int print);

#endif
