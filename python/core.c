/* core.c: bodhi._core, the C half of the `bodhi` Python package: a Batch type over the env
 * engine (libbodhi_env.so, bodhi/env.h) that creates a shard of N worlds, takes actions
 * from NumPy arrays, steps with the GIL released, and hands out NumPy arrays that are views
 * of the shard's buffers (the host mirrors on CUDA). The Gymnasium-shaped classes are
 * python/bodhi/vector.py; this file only checks input and moves numbers.
 *
 * Lifetime: every view holds a reference to its Batch, and the engine's shard is freed only
 * when the Batch is (close() marks it closed: later calls raise, views stay readable). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#include <numpy/arrayobject.h>

#include <float.h>
#include <math.h>
#include <limits.h>
#include <string.h>

#include "bodhi/env.h"

typedef struct {
    PyObject_HEAD
    bd_env *env;
    const bd_env_desc *desc;
    bd_env_shape shape;
    bd_env_batch host;  /* host view of the buffers (the batch itself on the CPU) */
    float *act_host;    /* CUDA: actions written here, then uploaded; CPU: host.actions */
    uint8_t *done;      /* (R) terminated | truncated of the last step */
    bd_device device;
    int closed, busy;
    long long steps;
} BatchObject;

static PyObject *bd_py_error(PyObject *type, const char *what)
{
    PyErr_Format(type, "%s: %s", what, bd_lasterr());
    return NULL;
}

static int batch_usable(BatchObject *self)
{
    if (!self->env || self->closed) {
        PyErr_SetString(PyExc_RuntimeError, "bodhi: this environment is closed");
        return 0;
    }
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "bodhi: this environment is being stepped by another thread");
        return 0;
    }
    return 1;
}

/* Sets param `key` of d from a Python number into param[]. */
static int set_param(const bd_env_desc *d, float *param, PyObject *key, PyObject *val)
{
    const char *name = PyUnicode_Check(key) ? PyUnicode_AsUTF8(key) : NULL;
    if (!name) {
        PyErr_SetString(PyExc_TypeError, "bodhi: param names must be strings");
        return -1;
    }
    if (PyBool_Check(val) || !PyNumber_Check(val) || PyComplex_Check(val)) {
        PyErr_Format(PyExc_TypeError, "bodhi: param %s of env %s must be a number, got %s", name, d->name,
                     Py_TYPE(val)->tp_name);
        return -1;
    }
    if (strcmp(name, "worlds") == 0) { /* a run file's env param; here the constructor's own */
        PyErr_SetString(PyExc_TypeError, "bodhi: the worlds are not a param here: give them as make_vec's "
                                         "num_envs (make_multi's worlds)");
        return -1;
    }
    double v = PyFloat_AsDouble(val);
    if (v == -1.0 && PyErr_Occurred())
        return -1;
    int rc = bd_env_param_set(d, param, name, v);
    if (rc != BD_OK) {
        PyErr_Format(PyExc_ValueError, "bodhi: %s", bd_lasterr());
        return -1;
    }
    return 0;
}

static int batch_init(BatchObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"env_id", "worlds", "seed", "device", "threads", "max_steps", "params", NULL};
    const char *id = NULL, *device = "cpu";
    long long worlds = 0;
    unsigned long long seed = 0;
    long long threads = 1, max_steps = 0;
    PyObject *params = NULL;
    if (self->env) {
        PyErr_SetString(PyExc_RuntimeError, "bodhi: Batch already initialised");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kw, "sL|KsLLO!", kwlist, &id, &worlds, &seed, &device, &threads,
                                     &max_steps, &PyDict_Type, &params))
        return -1;
    const bd_env_desc *d = bd_env_find(id);
    if (!d && strchr(id, ':') && bd_env_load(id, &d) != BD_OK) {
        PyErr_Format(PyExc_ValueError, "bodhi: env '%s': %s", id, bd_lasterr());
        return -1;
    }
    if (!d) {
        int count;
        const bd_env_desc *const *reg = bd_env_registry(&count);
        char known[512] = "";
        size_t l = 0;
        for (int i = 0; i < count && l < sizeof known; i++) {
            const char *g = bd_env_gym_id(reg[i]);
            l += (size_t)snprintf(known + l, sizeof known - l, "%s%s%s%s%s", i ? ", " : "", reg[i]->name,
                                  g ? " (" : "", g ? g : "", g ? ")" : "");
        }
        PyErr_Format(PyExc_ValueError, "bodhi: unknown environment '%s' (known: %s; or a plugin path.so:symbol)",
                     id, known);
        return -1;
    }
    if (worlds < 1 || worlds > (1 << 30)) {
        PyErr_Format(PyExc_ValueError, "bodhi: num_envs must be from 1 to 2^30, got %lld", worlds);
        return -1;
    }
    if (threads < 0 || threads > 4096) {
        PyErr_Format(PyExc_ValueError, "bodhi: threads must be from 0 (one per core) to 4096, got %lld", threads);
        return -1;
    }
    if (max_steps < 0 || max_steps > INT_MAX) {
        PyErr_Format(PyExc_ValueError, "bodhi: max_steps must be from 0 (the env's own) to %d, got %lld", INT_MAX,
                     max_steps);
        return -1;
    }
    bd_device dev;
    if (strcmp(device, "cpu") == 0)
        dev = BD_DEVICE_CPU;
    else if (strcmp(device, "cuda") == 0)
        dev = BD_DEVICE_CUDA;
    else {
        PyErr_Format(PyExc_ValueError, "bodhi: device must be 'cpu' or 'cuda', got '%s'", device);
        return -1;
    }
    float param[BD_ENV_MAX_PARAMS] = {0};
    bd_env_param_defaults(d, param);
    PyObject *key, *val;
    Py_ssize_t pos = 0;
    while (params && PyDict_Next(params, &pos, &key, &val))
        if (set_param(d, param, key, val) < 0)
            return -1;
    if (bd_env_shape_of(d, param, &self->shape) != BD_OK) {
        bd_py_error(PyExc_ValueError, "bodhi");
        return -1;
    }
    if ((double)worlds * self->shape.members > (double)(1 << 30)) {
        PyErr_Format(PyExc_ValueError, "bodhi: %lld worlds of %d agents is more than 2^30 rows", worlds,
                     self->shape.members);
        return -1;
    }
    bd_env *e = NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = bd_env_create(d, (int)worlds, 0, seed, dev, (int)max_steps, param, &e);
    if (rc == BD_OK)
        rc = bd_env_set_threads(e, (int)threads);
    Py_END_ALLOW_THREADS
    if (rc != BD_OK) {
        bd_env_destroy(e);
        if (rc == BD_ENODEV)
            PyErr_Format(PyExc_RuntimeError, "bodhi: device='cuda' for env %s: %s", d->name, bd_lasterr());
        else if (rc == BD_ENOMEM)
            PyErr_Format(PyExc_MemoryError, "bodhi: env %s with %lld worlds: %s", d->name, worlds, bd_lasterr());
        else
            PyErr_Format(PyExc_ValueError, "bodhi: env %s: %s", d->name, bd_lasterr());
        return -1;
    }
    size_t rows = (size_t)worlds * (size_t)self->shape.members;
    self->done = PyMem_Calloc(rows, 1);
    if (dev == BD_DEVICE_CUDA)
        self->act_host = PyMem_Calloc(rows * (size_t)self->shape.act_stride, sizeof(float));
    if (!self->done || (dev == BD_DEVICE_CUDA && !self->act_host) || bd_env_download(e, &self->host) != BD_OK) {
        bd_env_destroy(e);
        PyErr_NoMemory();
        return -1;
    }
    if (dev == BD_DEVICE_CPU)
        self->act_host = self->host.actions;
    self->env = e;
    self->desc = d;
    self->device = dev;
    return 0;
}

static void batch_dealloc(BatchObject *self)
{
    bd_env_destroy(self->env);
    if (self->device == BD_DEVICE_CUDA)
        PyMem_Free(self->act_host);
    PyMem_Free(self->done);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *channels_list(const bd_channel *c, int n)
{
    PyObject *l = PyList_New(n);
    for (int i = 0; l && i < n; i++) {
        PyObject *t = Py_BuildValue("(sddi)", c[i].name, (double)c[i].low, (double)c[i].high, c[i].n);
        if (!t) {
            Py_DECREF(l);
            return NULL;
        }
        PyList_SET_ITEM(l, i, t);
    }
    return l;
}

/* spec(): the env's name, Gymnasium id, params, rows and groups with their channels. */
static PyObject *batch_spec(BatchObject *self, PyObject *Py_UNUSED(ignored))
{
    if (!self->env) {
        PyErr_SetString(PyExc_RuntimeError, "bodhi: Batch not initialised");
        return NULL;
    }
    const bd_env_desc *d = self->desc;
    const bd_env_shape *s = &self->shape;
    PyObject *groups = PyList_New(s->groups), *params = PyDict_New();
    if (!groups || !params)
        goto fail;
    for (int g = 0; g < s->groups; g++) {
        const bd_env_group *eg = d->ngroups ? &d->groups[g] : NULL;
        PyObject *so = channels_list(eg ? eg->sensors : d->sensors, s->obs_dim[g]);
        PyObject *ao = channels_list(eg ? eg->actuators : d->actuators, s->act_dim[g]);
        PyObject *gd = so && ao ? Py_BuildValue("{s:s,s:i,s:i,s:i,s:i,s:N,s:N}", "name", eg ? eg->name : d->name,
                                                "count", s->count[g], "first", s->first[g], "obs_dim",
                                                s->obs_dim[g], "act_dim", s->act_dim[g], "sensors", so,
                                                "actuators", ao)
                                : NULL;
        if (!gd) {
            Py_XDECREF(so);
            Py_XDECREF(ao);
            goto fail;
        }
        PyList_SET_ITEM(groups, g, gd);
    }
    for (int k = 0; k < d->nparams && k < BD_ENV_MAX_PARAMS; k++) {
        PyObject *v = PyFloat_FromDouble((double)self->host.param[k]);
        if (!v || PyDict_SetItemString(params, d->params[k].name, v) < 0) {
            Py_XDECREF(v);
            goto fail;
        }
        Py_DECREF(v);
    }
    const char *gym = bd_env_gym_id(d);
    return Py_BuildValue("{s:s,s:z,s:s,s:i,s:i,s:i,s:i,s:N,s:N,s:s}", "name", d->name, "gym_id", gym, "summary",
                         d->summary ? d->summary : "", "discrete", d->discrete, "worlds", self->host.n, "members",
                         s->members, "max_steps", self->host.max_steps, "params", params, "groups", groups,
                         "device", self->device == BD_DEVICE_CUDA ? "cuda" : "cpu");
fail:
    Py_XDECREF(groups);
    Py_XDECREF(params);
    return NULL;
}

/* A NumPy view of `data` with `nd` dims; its base is self. */
static PyObject *make_view(BatchObject *self, void *data, int type, int nd, npy_intp *dims, npy_intp *strides,
                           int writable)
{
    PyObject *a = PyArray_New(&PyArray_Type, nd, dims, type, strides, data, 0,
                              writable ? NPY_ARRAY_WRITEABLE | NPY_ARRAY_ALIGNED : NPY_ARRAY_ALIGNED, NULL);
    if (!a)
        return NULL;
    Py_INCREF(self);
    if (PyArray_SetBaseObject((PyArrayObject *)a, (PyObject *)self) < 0) {
        Py_DECREF(a);
        return NULL;
    }
    return a;
}

/* view(which, group=-1): which in obs, final_obs, actions, rewards, terminated, truncated,
 * done. group -1: every row, (R, columns) or (R,); group g: (worlds, members of g, its
 * columns) or (worlds, members), strided over the rows of g. Views are read-only except
 * actions. */
static PyObject *batch_view(BatchObject *self, PyObject *args)
{
    const char *which;
    int g = -1;
    if (!PyArg_ParseTuple(args, "s|i", &which, &g) || !batch_usable(self))
        return NULL;
    const bd_env_shape *s = &self->shape;
    if (g < -1 || g >= s->groups) {
        PyErr_Format(PyExc_IndexError, "bodhi: env %s has %d group(s); no group %d", self->desc->name, s->groups, g);
        return NULL;
    }
    char *base;
    int type, cols, width, writable = 0;
    npy_intp R = (npy_intp)self->host.n * s->members;
    if (!strcmp(which, "obs") || !strcmp(which, "final_obs")) {
        base = (char *)(which[0] == 'o' ? self->host.obs : self->host.final_obs);
        type = NPY_FLOAT32, width = 4, cols = s->obs_stride;
    } else if (!strcmp(which, "actions")) {
        base = (char *)self->act_host, type = NPY_FLOAT32, width = 4, cols = s->act_stride; /* read-only: step() checks what it takes */
    } else if (!strcmp(which, "rewards")) {
        base = (char *)self->host.rewards, type = NPY_FLOAT32, width = 4, cols = 0;
    } else if (!strcmp(which, "terminated") || !strcmp(which, "truncated") || !strcmp(which, "done")) {
        base = (char *)(which[0] == 'd' ? self->done : which[1] == 'e' ? self->host.terminated : self->host.truncated);
        type = NPY_BOOL, width = 1, cols = 0;
    } else {
        PyErr_Format(PyExc_ValueError, "bodhi: no buffer '%s'", which);
        return NULL;
    }
    npy_intp dims[3], strides[3];
    if (g < 0) {
        dims[0] = R, dims[1] = cols, strides[0] = (npy_intp)width * (cols ? cols : 1), strides[1] = width;
        return make_view(self, base, type, cols ? 2 : 1, dims, strides, writable);
    }
    int gc = !strcmp(which, "actions") ? s->act_dim[g] : s->obs_dim[g];
    base += (size_t)s->first[g] * width * (size_t)(cols ? cols : 1);
    dims[0] = self->host.n, dims[1] = s->count[g], dims[2] = gc;
    strides[0] = (npy_intp)s->members * width * (cols ? cols : 1);
    strides[1] = (npy_intp)width * (cols ? cols : 1), strides[2] = width;
    return make_view(self, base, type, cols ? 3 : 2, dims, strides, writable);
}

static const char *shape_text(PyArrayObject *a, char *buf, size_t n)
{
    size_t l = (size_t)snprintf(buf, n, "(");
    for (int i = 0; i < PyArray_NDIM(a) && l < n; i++)
        l += (size_t)snprintf(buf + l, n - l, "%s%ld", i ? ", " : "", (long)PyArray_DIM(a, i));
    if (l < n)
        snprintf(buf + l, n - l, "%s)", PyArray_NDIM(a) == 1 ? "," : "");
    return buf;
}

/* Copies actions of group g from `obj` into the action rows: shape (worlds, count, act_dim),
 * where a count of 1 and an act_dim of 1 may be left out; integers in [0, n) for a
 * discrete actuator, finite numbers otherwise. */
static int put_actions(BatchObject *self, int g, PyObject *obj)
{
    const bd_env_shape *s = &self->shape;
    const int discrete = self->desc->discrete, c = s->count[g], A = s->act_dim[g], N = self->host.n;
    PyObject *probe = PyArray_FROM_O(obj);
    if (!probe)
        return -1;
    int kind = PyArray_DESCR((PyArrayObject *)probe)->kind;
    int ok = discrete ? (kind == 'i' || kind == 'u') : (kind == 'i' || kind == 'u' || kind == 'f');
    if (!ok) {
        PyErr_Format(PyExc_TypeError, "bodhi: actions for %s must be %s, got dtype %S", self->desc->name,
                     discrete ? "integers (a Discrete space)" : "real numbers (a Box space)",
                     (PyObject *)PyArray_DESCR((PyArrayObject *)probe));
        Py_DECREF(probe);
        return -1;
    }
    const int wide = PyArray_DESCR((PyArrayObject *)probe)->elsize > 4;
    if (wide && (kind == 'u' || (!discrete && kind == 'f'))) {
        /* what a cast would change: an unsigned past int64's range would read as negative in
         * the error; a real past float's range would become infinite where the bounds clip */
        PyArrayObject *w = (PyArrayObject *)PyArray_FromAny(
            probe, PyArray_DescrFromType(kind == 'u' ? NPY_UINT64 : NPY_DOUBLE), 0, 0,
            NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED | NPY_ARRAY_FORCECAST | NPY_ARRAY_ENSURECOPY, NULL);
        Py_DECREF(probe);
        if (!w)
            return -1;
        const npy_intp n = PyArray_SIZE(w);
        if (kind == 'u') {
            const uint64_t *u = PyArray_DATA(w);
            for (npy_intp i = 0; i < n; i++)
                if (u[i] > (uint64_t)INT64_MAX) {
                    PyErr_Format(PyExc_ValueError, "bodhi: action %llu of env %s (element %lld) is outside %s",
                                 (unsigned long long)u[i], self->desc->name, (long long)i,
                                 discrete ? "its Discrete space" : "the numbers a Box takes");
                    Py_DECREF(w);
                    return -1;
                }
        } else {
            double *x = PyArray_DATA(w);
            for (npy_intp i = 0; i < n; i++)
                if (isfinite(x[i]) && fabs(x[i]) > FLT_MAX)
                    x[i] = copysign(FLT_MAX, x[i]); /* the bounds clip it further */
        }
        probe = (PyObject *)w;
    }
    PyArray_Descr *want = PyArray_DescrFromType(discrete ? NPY_INT64 : NPY_FLOAT32); /* FromAny steals it */
    PyArrayObject *a = (PyArrayObject *)PyArray_FromAny(probe, want, 0, 0,
                                                        NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED | NPY_ARRAY_FORCECAST, NULL);
    Py_DECREF(probe);
    if (!a)
        return -1;
    /* the shape: (N, c, A), where c == 1 or A == 1 may be left out */
    const npy_intp cand[4][3] = {{N, c, A}, {N, c == 1 ? A : -1, -1}, {N, A == 1 ? c : -1, -1}, {N, -1, -1}};
    const int cnd[4] = {3, 2, 2, c == 1 && A == 1 ? 1 : -1};
    int nd = PyArray_NDIM(a), match = 0;
    for (int i = 0; i < 4 && !match; i++) {
        int same = cnd[i] == nd;
        for (int j = 0; same && j < nd; j++)
            same = cand[i][j] == PyArray_DIM(a, j);
        match = same;
    }
    if (!match) {
        char buf[96], want_s[96];
        if (c == 1 && A == 1)
            snprintf(want_s, sizeof want_s, discrete ? "(%d,)" : "(%d, 1) or (%d,)", N, N);
        else if (c == 1)
            snprintf(want_s, sizeof want_s, "(%d, %d)", N, A);
        else if (A == 1)
            snprintf(want_s, sizeof want_s, "(%d, %d, 1) or (%d, %d)", N, c, N, c);
        else
            snprintf(want_s, sizeof want_s, "(%d, %d, %d)", N, c, A);
        PyErr_Format(PyExc_ValueError, "bodhi: actions%s%s for %s: expected shape %s (num_envs%s%s), got %s",
                     s->groups > 1 ? " of group " : "", s->groups > 1 ? self->desc->groups[g].name : "",
                     self->desc->name, want_s, c > 1 ? ", members" : "", A > 1 ? ", actuators" : "",
                     shape_text(a, buf, sizeof buf));
        Py_DECREF(a);
        return -1;
    }
    const bd_channel *ch = self->desc->ngroups ? self->desc->groups[g].actuators : self->desc->actuators;
    const int64_t M = s->members, AS = s->act_stride, first = s->first[g];
    float *dst = self->act_host;
    if (M == c && AS == 1 && A == 1) { /* one column, rows in order: a flat loop the compiler vectorises */
        const int64_t R = (int64_t)N * c;
        int64_t bad = -1;
        if (discrete) {
            const int64_t *src = PyArray_DATA(a);
            const uint64_t n = (uint64_t)ch[0].n;
            uint64_t acc = 0;
            for (int64_t i = 0; i < R; i++)
                acc |= (uint64_t)((uint64_t)src[i] >= n);
            for (int64_t i = 0; acc && i < R && bad < 0; i++)
                bad = (uint64_t)src[i] >= n ? i : -1;
            if (bad < 0)
                for (int64_t i = 0; i < R; i++)
                    dst[i] = (float)src[i];
            else
                PyErr_Format(PyExc_ValueError, "bodhi: action %lld of env %s (row %lld, %s) is outside Discrete(%d)",
                             (long long)src[bad], self->desc->name, (long long)bad, ch[0].name, ch[0].n);
        } else {
            const float *src = PyArray_DATA(a);
            float acc = 0;
            for (int64_t i = 0; i < R; i++)
                acc += src[i] * 0.0f; /* NaN when any is NaN or infinite */
            for (int64_t i = 0; acc != 0.0f && i < R && bad < 0; i++)
                bad = isfinite(src[i]) ? -1 : i;
            if (bad < 0)
                memcpy(dst, src, sizeof(float) * (size_t)R);
            else
                PyErr_Format(PyExc_ValueError, "bodhi: action of env %s (row %lld, %s) is not a finite number",
                             self->desc->name, (long long)bad, ch[0].name);
        }
        Py_DECREF(a);
        return bad < 0 ? 0 : -1;
    }
    if (discrete) {
        const int64_t *src = PyArray_DATA(a);
        for (int64_t w = 0; w < N; w++)
            for (int64_t m = 0; m < c; m++)
                for (int64_t j = 0; j < A; j++) {
                    int64_t v = src[(w * c + m) * A + j];
                    if (v < 0 || v >= ch[j].n) {
                        PyErr_Format(PyExc_ValueError, "bodhi: action %lld of env %s (row %lld, %s) is outside Discrete(%d)",
                                     (long long)v, self->desc->name, (long long)(w * c + m), ch[j].name, ch[j].n);
                        Py_DECREF(a);
                        return -1;
                    }
                    dst[(w * M + first + m) * AS + j] = (float)v;
                }
    } else {
        const float *src = PyArray_DATA(a);
        for (int64_t w = 0; w < N; w++)
            for (int64_t m = 0; m < c; m++)
                for (int64_t j = 0; j < A; j++) {
                    float v = src[(w * c + m) * A + j];
                    if (!isfinite(v)) {
                        PyErr_Format(PyExc_ValueError, "bodhi: action of env %s (row %lld, %s) is not a finite number",
                                     self->desc->name, (long long)(w * c + m), ch[j].name);
                        Py_DECREF(a);
                        return -1;
                    }
                    dst[(w * M + first + m) * AS + j] = v;
                }
    }
    Py_DECREF(a);
    return 0;
}

static PyObject *batch_set_actions(BatchObject *self, PyObject *args)
{
    int g;
    PyObject *obj;
    if (!PyArg_ParseTuple(args, "iO", &g, &obj) || !batch_usable(self))
        return NULL;
    if (g < 0 || g >= self->shape.groups) {
        PyErr_Format(PyExc_IndexError, "bodhi: env %s has %d group(s); no group %d", self->desc->name,
                     self->shape.groups, g);
        return NULL;
    }
    if (put_actions(self, g, obj) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* step(actions=None): actions for the single group (else set_actions first), one step of
 * every world, done = terminated | truncated; returns whether any row ended. */
static PyObject *batch_step(BatchObject *self, PyObject *args)
{
    PyObject *obj = Py_None;
    if (!PyArg_ParseTuple(args, "|O", &obj) || !batch_usable(self))
        return NULL;
    if (obj != Py_None) {
        if (self->shape.groups != 1) {
            PyErr_Format(PyExc_TypeError, "bodhi: env %s has %d groups: give each its actions", self->desc->name,
                         self->shape.groups);
            return NULL;
        }
        if (put_actions(self, 0, obj) < 0)
            return NULL;
    }
    int rc = BD_OK, any = 0;
    const size_t R = (size_t)self->host.n * (size_t)self->shape.members;
    self->busy = 1;
    Py_BEGIN_ALLOW_THREADS
    if (self->device == BD_DEVICE_CUDA)
        rc = bd_env_upload_actions(self->env, self->act_host);
    if (rc == BD_OK)
        rc = bd_env_step(self->env);
    if (rc == BD_OK)
        rc = bd_env_download(self->env, &self->host);
    if (rc == BD_OK) {
        const uint8_t *t = self->host.terminated, *u = self->host.truncated;
        uint8_t *d = self->done, acc = 0;
        for (size_t i = 0; i < R; i++)
            acc |= d[i] = (uint8_t)((t[i] | u[i]) != 0);
        any = acc;
    }
    Py_END_ALLOW_THREADS
    self->busy = 0;
    if (rc != BD_OK)
        return bd_py_error(PyExc_RuntimeError, "bodhi: step");
    self->steps++;
    return PyBool_FromLong(any);
}

static PyObject *batch_reset(BatchObject *self, PyObject *args)
{
    unsigned long long seed;
    if (!PyArg_ParseTuple(args, "K", &seed) || !batch_usable(self))
        return NULL;
    int rc;
    self->busy = 1;
    Py_BEGIN_ALLOW_THREADS
    rc = bd_env_reset(self->env, seed);
    if (rc == BD_OK)
        rc = bd_env_download(self->env, &self->host);
    Py_END_ALLOW_THREADS
    self->busy = 0;
    if (rc != BD_OK)
        return bd_py_error(PyExc_RuntimeError, "bodhi: reset");
    memset(self->done, 0, (size_t)self->host.n * (size_t)self->shape.members);
    Py_RETURN_NONE;
}

static PyObject *batch_close(BatchObject *self, PyObject *Py_UNUSED(ignored))
{
    self->closed = 1;
    Py_RETURN_NONE;
}

static PyObject *batch_get_closed(BatchObject *self, void *Py_UNUSED(c))
{
    return PyBool_FromLong(self->closed || !self->env);
}

static PyObject *batch_get_steps(BatchObject *self, void *Py_UNUSED(c))
{
    return PyLong_FromLongLong(self->steps);
}

static PyMethodDef batch_methods[] = {
    {"spec", (PyCFunction)batch_spec, METH_NOARGS, "spec() -> dict: the env, its params and groups"},
    {"view", (PyCFunction)batch_view, METH_VARARGS, "view(which, group=-1) -> ndarray over the shard's buffer"},
    {"set_actions", (PyCFunction)batch_set_actions, METH_VARARGS, "set_actions(group, actions)"},
    {"step", (PyCFunction)batch_step, METH_VARARGS, "step(actions=None) -> bool (any row ended)"},
    {"reset", (PyCFunction)batch_reset, METH_VARARGS, "reset(seed): every world starts over"},
    {"close", (PyCFunction)batch_close, METH_NOARGS, "close(): later calls raise; views stay readable"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef batch_getset[] = {
    {"closed", (getter)batch_get_closed, NULL, "whether close() was called", NULL},
    {"steps", (getter)batch_get_steps, NULL, "steps taken", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject BatchType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "bodhi._core.Batch",
    .tp_basicsize = sizeof(BatchObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Batch(env_id, worlds, seed=0, device='cpu', threads=1, max_steps=0, params=None): a shard of "
              "worlds of a bodhi env",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)batch_init,
    .tp_dealloc = (destructor)batch_dealloc,
    .tp_methods = batch_methods,
    .tp_getset = batch_getset,
};

/* envs() -> [(name, gymnasium id or None, summary)] */
static PyObject *core_envs(PyObject *Py_UNUSED(m), PyObject *Py_UNUSED(ignored))
{
    int count;
    const bd_env_desc *const *reg = bd_env_registry(&count);
    PyObject *l = PyList_New(count);
    for (int i = 0; l && i < count; i++) {
        PyObject *t = Py_BuildValue("(szs)", reg[i]->name, bd_env_gym_id(reg[i]), reg[i]->summary);
        if (!t) {
            Py_DECREF(l);
            return NULL;
        }
        PyList_SET_ITEM(l, i, t);
    }
    return l;
}

static PyMethodDef core_methods[] = {
    {"envs", core_envs, METH_NOARGS, "envs() -> [(name, gymnasium_id, summary)] of the built-ins"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef core_module = {
    PyModuleDef_HEAD_INIT, "bodhi._core", "bodhi's env engine (libbodhi_env) for Python", -1, core_methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__core(void)
{
    import_array();
    if (PyType_Ready(&BatchType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&core_module);
    if (!m)
        return NULL;
    Py_INCREF(&BatchType);
    if (PyModule_AddObject(m, "Batch", (PyObject *)&BatchType) < 0 ||
        PyModule_AddStringConstant(m, "version", bd_version()) < 0) {
        Py_DECREF(&BatchType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
