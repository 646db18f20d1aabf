/* pyenv.h: environments written in Python (docs/python.md, "Envs written in Python"). A
 * run file names one as "python:MODULE:Class" or "python:FOLDER/MODULE:Class": a class
 * with vectorised NumPy reset(rows, seeds, obs) and step(actions, obs, rewards,
 * terminated) over every world of a shard, its sensors, actuators, groups and params
 * declared on the class. The first such name a process loads starts an embedded CPython
 * interpreter (Debian's libpython, with its NumPy) in that process; none is started
 * otherwise. The loaded env is a hosted env (env/hosted.h): the engine steps it on the
 * CPU, its buffers handed to the class as NumPy arrays that are views (no copy per step).
 * Loading one runs the module's code, as loading a plugin does. */
#ifndef BODHI_ENV_PYENV_H
#define BODHI_ENV_PYENV_H

#include "bodhi/env.h"

/* The prefix of a Python env's name. */
#define BD_PYENV_PREFIX "python:"

/* 1 when `name` names a Python env (starts with "python:"). */
int bd_pyenv_is(const char *name);

/* Resolves a run file's environment name as bd_env_load does (built-ins and plugins go to
 * it), and a Python env's: its module imported (FOLDER first on sys.path when the name
 * gives one, a relative FOLDER from the working directory), the class found and its
 * declarations checked. The env stays loaded for the life of the process; loading one
 * name twice gives the same desc. BD_ENOTFOUND when the module cannot be imported or has
 * no such class, BD_EINVAL when its declarations are wrong, each naming module:Class and
 * what Python said (its traceback's last line). */
int bd_pyenv_load(const char *name, const bd_env_desc **out);

#endif
