/* declare.c: loading a Python env (see pyenv.h): the embedded interpreter started on the
 * first load, the module imported, the class found, and its declarations read into a
 * bd_env_desc the engine and the run-file checks use like any env's:
 *
 *   name = "sugarscape"          the env's own name (default: the class's, lower case)
 *   max_steps = 200              default episode length (default 1000)
 *   params = {"agents": (8, 1, 64, "agents per world")}   (default, min, max[, help]);
 *                                an integer param when all three are ints
 *   sensors = ["x", ("y", -1.0, 1.0)]         a name (unbounded) or (name, low, high)
 *   actuators = [("move", 5), ("force", -1.0, 1.0)]   (name, n): Discrete(n); or a Box
 *   groups = {"agent": {"count": "agents", "sensors": [...], "actuators": [...]}}
 *                                instead of sensors/actuators: agent groups, `count`
 *                                naming an integer param of at least 1
 *   step_draws = 4               uniform draws per world handed to step (default 0)
 *
 * Descriptors and the class live for the life of the process (as a plugin's handle does).
 * The interpreter starts without signal handlers (bodhi's own stay), reads PYTHONPATH,
 * imports site (Debian's dist-packages) and is never finalised. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "env/python/pyenv_impl.h"

#define BD_PYENV_MAX_LOADED 64

static bd_pyenv *bd_loaded[BD_PYENV_MAX_LOADED];
static int bd_nloaded;

int bd_pyenv_is(const char *name)
{
    return name && strncmp(name, BD_PYENV_PREFIX, strlen(BD_PYENV_PREFIX)) == 0;
}

/* Starts the interpreter once (none when this process is one already), NumPy's C API
 * imported, the GIL released. */
static int bd_py_start(void)
{
    static int started, failed;
    static char why[512];
    if (failed)
        return bd_seterr(BD_EINVAL, "%s", why);
    if (started)
        return BD_OK;
    if (Py_IsInitialized()) { /* this process is an interpreter already: NumPy's C API into this library */
        PyGILState_STATE gs = PyGILState_Ensure();
        int rc = bd_pyshard_numpy();
        PyGILState_Release(gs);
        started = rc == BD_OK;
        return rc;
    }
    PyConfig c;
    PyConfig_InitPythonConfig(&c);
    c.install_signal_handlers = 0; /* Ctrl-C stays bodhi's */
    c.parse_argv = 0;
    PyStatus st = Py_InitializeFromConfig(&c);
    PyConfig_Clear(&c);
    if (PyStatus_Exception(st)) {
        failed = 1;
        snprintf(why, sizeof why, "the Python interpreter cannot start: %s", st.err_msg ? st.err_msg : "?");
        return bd_seterr(BD_EINVAL, "%s", why);
    }
    started = 1;
    int rc = bd_pyshard_numpy();
    if (rc != BD_OK) {
        failed = 1;
        snprintf(why, sizeof why, "%s", bd_lasterr());
    }
    PyEval_SaveThread(); /* every call takes the GIL with PyGILState_Ensure */
    return rc;
}

int bd_py_raise(int rc, const char *label, const char *what, int print)
{
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (!value)
        return bd_seterr(rc, "%s: %s failed (no Python exception set)", label, what);
    if (tb)
        PyException_SetTraceback(value, tb);
    char last[1024] = "?", where[1024] = "";
    PyObject *mod = PyImport_ImportModule("traceback");
    if (mod && print) {
        PyObject *r = PyObject_CallMethod(mod, "print_exception", "O", value);
        Py_XDECREF(r);
        PyErr_Clear();
    }
    PyObject *lines = mod ? PyObject_CallMethod(mod, "format_exception_only", "OO", type, value) : NULL;
    Py_ssize_t nl = lines && PyList_Check(lines) ? PyList_Size(lines) : 0;
    const char *s = nl > 0 ? PyUnicode_AsUTF8(PyList_GetItem(lines, nl - 1)) : NULL;
    if (s) {
        snprintf(last, sizeof last, "%s", s);
        for (size_t n = strlen(last); n > 0 && isspace((unsigned char)last[n - 1]); n--)
            last[n - 1] = '\0';
    }
    PyErr_Clear();
    /* the innermost frame: where it was raised */
    PyObject *t = tb;
    Py_XINCREF(t);
    for (PyObject *next; t && (next = PyObject_GetAttrString(t, "tb_next")) && next != Py_None;) {
        Py_DECREF(t);
        t = next;
    }
    PyErr_Clear();
    PyObject *line = t ? PyObject_GetAttrString(t, "tb_lineno") : NULL;
    PyObject *frame = t ? PyObject_GetAttrString(t, "tb_frame") : NULL;
    PyObject *code = frame ? PyObject_GetAttrString(frame, "f_code") : NULL;
    PyObject *file = code ? PyObject_GetAttrString(code, "co_filename") : NULL;
    const char *fs = file && PyUnicode_Check(file) ? PyUnicode_AsUTF8(file) : NULL;
    if (fs && line)
        snprintf(where, sizeof where, " (%s:%ld)", fs, PyLong_AsLong(line));
    PyErr_Clear();
    Py_XDECREF(file);
    Py_XDECREF(code);
    Py_XDECREF(frame);
    Py_XDECREF(line);
    Py_XDECREF(t);
    Py_XDECREF(lines);
    Py_XDECREF(mod);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    return bd_seterr(rc, "%s: %s raised %s%s", label, what, last, where);
}

static char *bd_py_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *c = malloc(n);
    if (c)
        memcpy(c, s, n);
    return c;
}

/* A Python str attribute's copy (kept for the life of the process), or NULL. */
static char *bd_py_text(PyObject *o)
{
    const char *s = o && PyUnicode_Check(o) ? PyUnicode_AsUTF8(o) : NULL;
    PyErr_Clear();
    return s ? bd_py_strdup(s) : NULL;
}

/* A real number (not a bool, str or container): 1 and *v, else 0. */
static int bd_py_number(PyObject *o, double *v, int *integer)
{
    if (!o || PyBool_Check(o) || !PyNumber_Check(o) || PyUnicode_Check(o))
        return 0;
    *v = PyFloat_AsDouble(o);
    if (PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    if (integer)
        *integer = PyIndex_Check(o);
    return 1;
}

/* One sensor ("x" or ("x", low, high)) or actuator (("a", n) or ("a", low, high)). */
static int bd_py_channel(const bd_pyenv *py, PyObject *o, int actuator, const char *where, bd_channel *ch)
{
    double low = -INFINITY, high = INFINITY, n = 0;
    int nint = 0;
    PyObject *name = o;
    Py_ssize_t len = PyTuple_Check(o) || PyList_Check(o) ? PySequence_Size(o) : -1;
    PyObject *a = len >= 2 ? PySequence_GetItem(o, 1) : NULL, *b = len == 3 ? PySequence_GetItem(o, 2) : NULL;
    name = len >= 1 ? PySequence_GetItem(o, 0) : (Py_INCREF(o), o);
    int ok = name && PyUnicode_Check(name) && PyUnicode_GetLength(name) > 0;
    if (ok && len == 3)
        ok = bd_py_number(a, &low, NULL) && bd_py_number(b, &high, NULL) && low <= high && !isnan(low);
    else if (ok && len == 2)
        ok = actuator && bd_py_number(a, &n, &nint) && nint && n >= 2 && n <= (1 << 24);
    else if (ok)
        ok = !actuator && len < 0;
    if (ok) {
        ch->name = bd_py_text(name);
        ok = ch->name != NULL && !strchr(ch->name, '.') && !strchr(ch->name, '*');
    }
    Py_XDECREF(name);
    Py_XDECREF(a);
    Py_XDECREF(b);
    PyErr_Clear();
    if (!ok) {
        PyObject *repr = PyObject_Repr(o);
        const char *rs = repr ? PyUnicode_AsUTF8(repr) : NULL;
        PyErr_Clear();
        bd_seterr(BD_EINVAL, "%s: %s: expected %s, got %.200s", py->label, where,
                  actuator ? "(name, n) for Discrete(n) with n >= 2, or (name, low, high) with low <= high"
                           : "a name, or (name, low, high) with low <= high",
                  rs ? rs : Py_TYPE(o)->tp_name);
        Py_XDECREF(repr);
        return BD_EINVAL;
    }
    ch->n = len == 2 ? (int)n : 0;
    ch->low = len == 2 ? 0.0f : (float)low;
    ch->high = len == 2 ? (float)(n - 1) : (float)high;
    return BD_OK;
}

/* A list of channels (class attribute `attr`, or a group's key) into chs; *count set. */
static int bd_py_channels(const bd_pyenv *py, PyObject *seq, int actuator, const char *where, bd_channel *chs,
                          int *count)
{
    int most = actuator ? BD_MAX_ACTUATORS : BD_MAX_CHANNELS;
    Py_ssize_t n = seq && (PyList_Check(seq) || PyTuple_Check(seq)) ? PySequence_Size(seq) : -1;
    if (n < 1 || n > most)
        return bd_seterr(BD_EINVAL, "%s: %s: expected a list of 1 to %d %s, got %s", py->label, where, most,
                         actuator ? "actuators" : "sensors",
                         !seq ? "none" : n < 0 ? Py_TYPE(seq)->tp_name : "a list of another length");
    for (Py_ssize_t k = 0; k < n; k++) {
        char w[256];
        snprintf(w, sizeof w, "%s[%zd]", where, k);
        PyObject *item = PySequence_GetItem(seq, k);
        int rc = item ? bd_py_channel(py, item, actuator, w, &chs[k]) : BD_EINVAL;
        Py_XDECREF(item);
        if (rc != BD_OK)
            return rc;
        for (Py_ssize_t j = 0; j < k; j++)
            if (strcmp(chs[j].name, chs[k].name) == 0)
                return bd_seterr(BD_EINVAL, "%s: %s: '%s' is declared twice", py->label, w, chs[k].name);
    }
    *count = (int)n;
    return BD_OK;
}

/* params = {name: (default, min, max[, help])}. */
static int bd_py_params(bd_pyenv *py, PyObject *dict)
{
    bd_env_desc *d = &py->h.desc;
    if (!dict || dict == Py_None)
        return BD_OK;
    if (!PyDict_Check(dict) || PyDict_Size(dict) > BD_ENV_MAX_PARAMS)
        return bd_seterr(BD_EINVAL, "%s: params: expected a dict of at most %d {name: (default, min, max[, help])}",
                         py->label, BD_ENV_MAX_PARAMS);
    PyObject *key, *val;
    Py_ssize_t pos = 0;
    while (PyDict_Next(dict, &pos, &key, &val)) {
        bd_env_param *p = &py->params[d->nparams];
        const char *name = PyUnicode_Check(key) ? PyUnicode_AsUTF8(key) : NULL;
        PyErr_Clear();
        if (!name || !name[0] || strcmp(name, "worlds") == 0 || strcmp(name, "max_steps") == 0)
            return bd_seterr(BD_EINVAL, "%s: params: a param needs a name other than worlds and max_steps "
                             "(every env's)", py->label);
        Py_ssize_t n = PyTuple_Check(val) || PyList_Check(val) ? PySequence_Size(val) : -1;
        double v[3] = {0, 0, 0};
        int ints = 1, ok = n == 3 || n == 4;
        for (int k = 0; ok && k < 3; k++) {
            PyObject *o = PySequence_GetItem(val, k);
            int isint = 0;
            ok = bd_py_number(o, &v[k], &isint) && isfinite(v[k]);
            ints &= isint;
            Py_XDECREF(o);
        }
        PyObject *help = ok && n == 4 ? PySequence_GetItem(val, 3) : NULL;
        p->help = help ? bd_py_text(help) : bd_py_strdup("a param of the Python env");
        Py_XDECREF(help);
        if (!ok || !p->help || !(v[1] <= v[0] && v[0] <= v[2]))
            return bd_seterr(BD_EINVAL, "%s: params: '%s': expected (default, min, max[, help]) with min <= "
                             "default <= max", py->label, name);
        p->name = bd_py_strdup(name);
        p->def = (float)v[0];
        p->min = (float)v[1];
        p->max = (float)v[2];
        p->integer = ints;
        d->nparams++;
    }
    d->params = py->params;
    return BD_OK;
}

/* groups = {name: {"count": param, "sensors": [...], "actuators": [...]}}. */
static int bd_py_groups(bd_pyenv *py, PyObject *dict)
{
    bd_env_desc *d = &py->h.desc;
    if (!PyDict_Check(dict) || PyDict_Size(dict) < 1 || PyDict_Size(dict) > BD_ENV_MAX_GROUPS)
        return bd_seterr(BD_EINVAL, "%s: groups: expected a dict of 1 to %d {name: {count, sensors, actuators}}",
                         py->label, BD_ENV_MAX_GROUPS);
    PyObject *key, *val;
    Py_ssize_t pos = 0;
    while (PyDict_Next(dict, &pos, &key, &val)) {
        int g = d->ngroups;
        bd_env_group *gr = &py->groups[g];
        char w[256];
        gr->name = bd_py_text(key);
        if (!gr->name || !gr->name[0] || strchr(gr->name, '.') || !PyDict_Check(val))
            return bd_seterr(BD_EINVAL, "%s: groups: expected {name: {count, sensors, actuators}}", py->label);
        PyObject *count = PyDict_GetItemString(val, "count");
        const char *cp = count && PyUnicode_Check(count) ? PyUnicode_AsUTF8(count) : NULL;
        gr->count_param = cp ? bd_env_param_index(d, cp) : -1;
        if (gr->count_param < 0 || !py->params[gr->count_param].integer || py->params[gr->count_param].min < 1)
            return bd_seterr(BD_EINVAL, "%s: groups: '%s': count must name an integer param of at least 1 "
                             "(declared in params)", py->label, gr->name);
        snprintf(w, sizeof w, "groups['%s']['sensors']", gr->name);
        int rc = bd_py_channels(py, PyDict_GetItemString(val, "sensors"), 0, w, py->sens[g], &gr->obs_dim);
        snprintf(w, sizeof w, "groups['%s']['actuators']", gr->name);
        if (rc == BD_OK)
            rc = bd_py_channels(py, PyDict_GetItemString(val, "actuators"), 1, w, py->acts[g], &gr->act_dim);
        if (rc != BD_OK)
            return rc;
        gr->sensors = py->sens[g];
        gr->actuators = py->acts[g];
        d->ngroups++;
    }
    d->groups = py->groups;
    return BD_OK;
}

/* An int class attribute in [lo, hi] (def when absent). */
static int bd_py_int_attr(const bd_pyenv *py, const char *attr, long lo, long hi, long def, long *out)
{
    PyObject *o = PyObject_GetAttrString(py->cls, attr);
    double v = (double)def;
    int isint = 1;
    int ok = o ? bd_py_number(o, &v, &isint) && isint && v >= lo && v <= hi : 1;
    Py_XDECREF(o);
    PyErr_Clear();
    if (!ok)
        return bd_seterr(BD_EINVAL, "%s: %s: expected an integer from %ld to %ld", py->label, attr, lo, hi);
    *out = (long)v;
    return BD_OK;
}

/* The constructor takes worlds and every declared param by name (or **kwargs): checked
 * with inspect.signature; a class whose signature cannot be read passes. */
static int bd_py_takes(const bd_pyenv *py)
{
    const bd_env_desc *d = &py->h.desc;
    PyObject *inspect = PyImport_ImportModule("inspect");
    PyObject *sig = inspect ? PyObject_CallMethod(inspect, "signature", "O", py->cls) : NULL;
    PyObject *ps = sig ? PyObject_GetAttrString(sig, "parameters") : NULL;
    PyObject *vals = ps ? PyMapping_Values(ps) : NULL;
    int rc = BD_OK, kwargs = 0;
    for (Py_ssize_t i = 0; vals && i < PyList_Size(vals); i++) { /* a **kwargs takes every name */
        PyObject *kind = PyObject_GetAttrString(PyList_GetItem(vals, i), "kind");
        PyObject *kn = kind ? PyObject_GetAttrString(kind, "name") : NULL;
        const char *k = kn && PyUnicode_Check(kn) ? PyUnicode_AsUTF8(kn) : NULL;
        kwargs |= k && strcmp(k, "VAR_KEYWORD") == 0;
        Py_XDECREF(kn);
        Py_XDECREF(kind);
    }
    for (int k = -1; ps && !kwargs && rc == BD_OK && k < d->nparams; k++) {
        const char *name = k < 0 ? "worlds" : d->params[k].name;
        if (PyMapping_HasKeyString(ps, name) != 1)
            rc = bd_seterr(BD_EINVAL, "%s: its constructor takes no '%s' (it is called with worlds and every "
                           "param by name: __init__(self, worlds%s%s)", py->label, name, d->nparams ? ", " : "",
                           d->nparams ? d->params[0].name : "");
    }
    PyErr_Clear();
    Py_XDECREF(vals);
    Py_XDECREF(ps);
    Py_XDECREF(sig);
    Py_XDECREF(inspect);
    return rc;
}

/* The class's declarations into py's desc (see the top of this file). */
static int bd_py_declare(bd_pyenv *py)
{
    bd_env_desc *d = &py->h.desc;
    d->abi_version = BD_ENV_HOSTED;
    long max_steps, draws;
    int rc = bd_py_int_attr(py, "max_steps", 1, 1l << 30, 1000, &max_steps);
    if (rc == BD_OK)
        rc = bd_py_int_attr(py, "step_draws", 0, BD_PYENV_MAX_DRAWS, 0, &draws);
    if (rc != BD_OK)
        return rc;
    d->default_max_steps = (int)max_steps;
    py->draws = (int)draws;
    const char *missing = NULL;
    for (const char *const *m = (const char *const[]){"reset", "step", NULL}; *m && !missing; m++) {
        PyObject *f = PyObject_GetAttrString(py->cls, *m);
        if (!f || !PyCallable_Check(f))
            missing = *m;
        Py_XDECREF(f);
    }
    PyErr_Clear();
    if (missing)
        return bd_seterr(BD_EINVAL, "%s: the class has no method %s (an env needs reset(rows, seeds, obs) and "
                         "step(actions, obs, rewards, terminated))", py->label, missing);
    PyObject *params = PyObject_GetAttrString(py->cls, "params");
    PyErr_Clear();
    rc = bd_py_params(py, params);
    Py_XDECREF(params);
    if (rc == BD_OK)
        rc = bd_py_takes(py);
    if (rc != BD_OK)
        return rc;
    PyObject *groups = PyObject_GetAttrString(py->cls, "groups");
    PyErr_Clear();
    if (groups && groups != Py_None) {
        rc = bd_py_groups(py, groups);
    } else {
        PyObject *s = PyObject_GetAttrString(py->cls, "sensors"), *a;
        PyErr_Clear();
        a = PyObject_GetAttrString(py->cls, "actuators");
        PyErr_Clear();
        rc = bd_py_channels(py, s, 0, "sensors", py->sens[0], &d->obs_dim);
        if (rc == BD_OK)
            rc = bd_py_channels(py, a, 1, "actuators", py->acts[0], &d->act_dim);
        d->sensors = py->sens[0];
        d->actuators = py->acts[0];
        Py_XDECREF(s);
        Py_XDECREF(a);
    }
    Py_XDECREF(groups);
    if (rc != BD_OK)
        return rc;
    d->discrete = 1;
    for (int g = 0; g < (d->ngroups ? d->ngroups : 1); g++)
        for (int k = 0; k < (d->ngroups ? d->groups[g].act_dim : d->act_dim); k++)
            d->discrete &= (d->ngroups ? d->groups[g].actuators : d->actuators)[k].n > 0;
    PyObject *name = PyObject_GetAttrString(py->cls, "name"), *doc = PyObject_GetAttrString(py->cls, "__doc__");
    PyErr_Clear();
    d->name = bd_py_text(name);
    if (!d->name) {
        PyObject *cn = PyObject_GetAttrString(py->cls, "__name__");
        PyErr_Clear();
        if ((d->name = bd_py_text(cn)))
            for (char *c = (char *)d->name; *c; c++)
                *c = (char)tolower((unsigned char)*c);
        Py_XDECREF(cn);
    }
    char *summary = bd_py_text(doc);
    if (summary)
        summary[strcspn(summary, "\n")] = '\0';
    d->summary = summary ? summary : bd_py_strdup("an environment written in Python");
    Py_XDECREF(name);
    Py_XDECREF(doc);
    if (!d->name || !d->name[0] || strchr(d->name, '.'))
        return bd_seterr(BD_EINVAL, "%s: name: expected a name without dots", py->label);
    py->h.open = bd_pyshard_open;
    py->h.reset = bd_pyshard_reset;
    py->h.step = bd_pyshard_step;
    py->h.close = bd_pyshard_close;
    return bd_env_shape_of(d, NULL, &(bd_env_shape){0});
}

/* Frees a load that failed (the message is made already); holding the GIL. */
static void bd_py_free(bd_pyenv *py)
{
    bd_env_desc *d = &py->h.desc;
    for (int g = 0; g < BD_ENV_MAX_GROUPS; g++) {
        for (int k = 0; k < BD_MAX_CHANNELS; k++)
            free((char *)py->sens[g][k].name);
        for (int k = 0; k < BD_MAX_ACTUATORS; k++)
            free((char *)py->acts[g][k].name);
        free((char *)py->groups[g].name);
    }
    for (int k = 0; k < BD_ENV_MAX_PARAMS; k++) {
        free((char *)py->params[k].name);
        free((char *)py->params[k].help);
    }
    free((char *)d->name);
    free((char *)d->summary);
    Py_XDECREF(py->cls);
    free(py->name);
    free(py->label);
    free(py);
}

/* name "python:[FOLDER/]MODULE:Class" split; BD_EINVAL when malformed. */
static int bd_py_split(const char *name, char *folder, char *module, char *cls, size_t len)
{
    const char *rest = name + strlen(BD_PYENV_PREFIX), *colon = strrchr(rest, ':');
    const char *slash = colon ? memrchr(rest, '/', (size_t)(colon - rest)) : NULL;
    const char *m = slash ? slash + 1 : rest;
    int ok = colon && colon > m && colon[1] && strlen(name) < len;
    for (const char *c = m; ok && c < colon; c++)
        ok = isalnum((unsigned char)*c) || *c == '_' || (*c == '.' && c > m && c[1] != ':' && c[-1] != '.');
    for (const char *c = colon ? colon + 1 : ""; ok && *c; c++)
        ok = isalnum((unsigned char)*c) || *c == '_';
    if (!ok)
        return bd_seterr(BD_EINVAL, "environment '%s': expected python:MODULE:Class or python:FOLDER/MODULE:Class "
                         "(a dotted module name and a class name)", name);
    snprintf(folder, len, "%.*s", slash ? (int)(slash - rest) : 0, rest);
    if (slash && slash == rest)
        snprintf(folder, len, "/");
    snprintf(module, len, "%.*s", (int)(colon - m), m);
    snprintf(cls, len, "%s", colon + 1);
    return BD_OK;
}

/* Imports the module (folder first on sys.path) and finds the class; holding the GIL. */
static int bd_py_find(bd_pyenv *py, const char *folder, const char *module, const char *cls)
{
    if (folder[0]) {
        PyObject *path = PySys_GetObject("path"), *f = PyUnicode_DecodeFSDefault(folder); /* borrowed, new */
        int has = path && f ? PySequence_Contains(path, f) : -1;
        if (has == 0)
            has = PyList_Insert(path, 0, f) == 0;
        Py_XDECREF(f);
        if (has < 0)
            return bd_py_raise(BD_EINVAL, py->label, "putting its folder on sys.path", 0);
    }
    PyObject *mod = PyImport_ImportModule(module);
    if (!mod) {
        char what[8400];
        snprintf(what, sizeof what, "importing '%s' (searched %s%sPYTHONPATH and the interpreter's path)", module,
                 folder[0] ? folder : "", folder[0] ? ", " : "");
        return bd_py_raise(BD_ENOTFOUND, py->label, what, 0);
    }
    PyObject *file = PyObject_GetAttrString(mod, "__file__");
    PyErr_Clear();
    const char *fs = file && PyUnicode_Check(file) ? PyUnicode_AsUTF8(file) : NULL;
    py->cls = PyObject_GetAttrString(mod, cls);
    PyErr_Clear();
    int rc = BD_OK;
    const size_t fl = strlen(folder);
    /* a module of that name imported before, from elsewhere (sys.modules holds one per
     * name): this folder's would never be read */
    if (folder[0] && fs && !(strncmp(fs, folder, fl) == 0 && (fs[fl] == '/' || folder[fl - 1] == '/')))
        rc = bd_seterr(BD_EINVAL, "%s: a module named '%s' is loaded already, from %s, not from %s: Python envs "
                       "in different folders need different module names", py->label, module, fs, folder);
    else if (!py->cls || !PyType_Check(py->cls))
        rc = bd_seterr(BD_ENOTFOUND, "%s: module '%s' (%s) has no class '%s'", py->label, module, fs ? fs : "?",
                       cls);
    Py_XDECREF(file);
    Py_DECREF(mod);
    return rc;
}

int bd_pyenv_load(const char *name, const bd_env_desc **out)
{
    *out = NULL;
    if (!bd_pyenv_is(name))
        return bd_env_load(name, out);
    for (int i = 0; i < bd_nloaded; i++)
        if (strcmp(bd_loaded[i]->name, name) == 0) {
            *out = &bd_loaded[i]->h.desc;
            return BD_OK;
        }
    char folder[4096], module[4096], cls[4096];
    int rc = bd_py_split(name, folder, module, cls, sizeof folder);
    if (rc != BD_OK)
        return rc;
    if (bd_nloaded >= BD_PYENV_MAX_LOADED)
        return bd_seterr(BD_ENOMEM, "%s: more than %d Python envs in one process", name, BD_PYENV_MAX_LOADED);
    if ((rc = bd_py_start()) != BD_OK)
        return bd_seterr(rc, "%s: %s", name, bd_lasterr());
    bd_pyenv *py = calloc(1, sizeof *py);
    if (!py)
        return bd_seterr(BD_ENOMEM, "%s: out of memory", name);
    py->name = bd_py_strdup(name);
    char label[8200];
    snprintf(label, sizeof label, "python:%s:%s", module, cls);
    py->label = bd_py_strdup(label);
    PyGILState_STATE gs = PyGILState_Ensure();
    rc = py->name && py->label ? bd_py_find(py, folder, module, cls) : bd_seterr(BD_ENOMEM, "%s: out of memory", name);
    if (rc == BD_OK)
        rc = bd_py_declare(py);
    if (rc != BD_OK)
        bd_py_free(py);
    PyGILState_Release(gs);
    if (rc != BD_OK)
        return rc;
    bd_loaded[bd_nloaded++] = py;
    *out = &py->h.desc;
    return BD_OK;
}
