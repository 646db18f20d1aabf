/* policy.c: bodhi._policy, a checkpoint's acting network for Python: the torch shim
 * (libbodhi_torch.so, torch/bd_torch.h) loads the network a muscle runs from a ppo brain's
 * checkpoint (its policy), a dqn brain's (its Q-network) or a sac brain's (its actor), in
 * the shape the file holds, and forwards NumPy observations through it. A module of its
 * own, imported by bodhi.load_policy only, so that `import bodhi` never loads libtorch.
 * The shim's errors go through bd_seterr/bd_lasterr, which libbodhi_env.so (linked here)
 * provides; the C network's functions that a shim rebuilt on a GPU machine calls are
 * this module's (CMakeLists.txt). */
#define _GNU_SOURCE /* dladdr */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <dlfcn.h>
#include <stddef.h>
#include <structmember.h>
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#include <numpy/arrayobject.h>

#include "torch/bd_torch.h"

typedef struct {
    PyObject_HEAD
    bdt_policy *net;
    bdt_policy_config cfg;
} NetObject;

static int net_init(NetObject *self, PyObject *args, PyObject *kw)
{
    static char *kwlist[] = {"path", NULL};
    const char *path;
    if (self->net) {
        PyErr_SetString(PyExc_RuntimeError, "bodhi: Net already initialised");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kw, "s", kwlist, &path))
        return -1;
    bdt_policy *net = NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = bdt_load_actor(path, &self->cfg, &net);
    Py_END_ALLOW_THREADS
    if (rc != BD_OK) {
        PyErr_Format(rc == BD_ENOTFOUND ? PyExc_FileNotFoundError : PyExc_ValueError, "bodhi: checkpoint %s: %s",
                     path, bd_lasterr());
        return -1;
    }
    self->net = net;
    return 0;
}

/* kind: "discrete", "continuous" (a ppo policy), "q" (a dqn Q-network), "squashed" (a sac actor) */
static PyObject *net_kind(NetObject *self, void *Py_UNUSED(closure))
{
    static const char *const names[] = {"discrete", "continuous", "squashed", "q"};
    const int k = (int)self->cfg.act_kind;
    if (!self->net || k < 0 || k > 3) {
        PyErr_SetString(PyExc_RuntimeError, "bodhi: Net not initialised");
        return NULL;
    }
    return PyUnicode_FromString(names[k]);
}

static PyGetSetDef net_getset[] = {
    {"kind", (getter)net_kind, NULL, "discrete, continuous (ppo), q (dqn) or squashed (sac)", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef net_members[] = {
    {"obs_dim", T_INT, offsetof(NetObject, cfg.obs_dim), READONLY, "sensors"},
    {"act_dim", T_INT, offsetof(NetObject, cfg.act_dim), READONLY, "discrete: actions; otherwise action dimensions"},
    {"hidden", T_INT, offsetof(NetObject, cfg.hidden), READONLY, "units per hidden layer"},
    {"layers", T_INT, offsetof(NetObject, cfg.layers), READONLY, "hidden layers"},
    {NULL, 0, 0, 0, NULL},
};

static void net_dealloc(NetObject *self)
{
    bdt_policy_destroy(self->net);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* forward(obs (n, obs_dim) float32) -> (out (n, act_dim): logits, means or Q-values, or
 * (n, 2 act_dim): a squashed actor's means and raw log stds; value (n,): the critic's, the
 * largest Q-value, or 0) */
static PyObject *net_forward(NetObject *self, PyObject *arg)
{
    if (!self->net) {
        PyErr_SetString(PyExc_RuntimeError, "bodhi: Net not initialised");
        return NULL;
    }
    PyArrayObject *o = (PyArrayObject *)PyArray_FromAny(arg, PyArray_DescrFromType(NPY_FLOAT32), 2, 2,
                                                        NPY_ARRAY_C_CONTIGUOUS | NPY_ARRAY_ALIGNED | NPY_ARRAY_FORCECAST,
                                                        NULL);
    if (!o)
        return NULL;
    if (PyArray_DIM(o, 1) != self->cfg.obs_dim || PyArray_DIM(o, 0) > (1 << 30)) {
        PyErr_Format(PyExc_ValueError, "bodhi: observations of shape (n, %d) expected, got (%ld, %ld)",
                     self->cfg.obs_dim, (long)PyArray_DIM(o, 0), (long)PyArray_DIM(o, 1));
        Py_DECREF(o);
        return NULL;
    }
    npy_intp n = PyArray_DIM(o, 0), d2[2] = {n, bdt_policy_out_dim(&self->cfg)};
    PyObject *out = PyArray_SimpleNew(2, d2, NPY_FLOAT32), *val = PyArray_SimpleNew(1, &n, NPY_FLOAT32);
    if (!out || !val) {
        Py_XDECREF(out);
        Py_XDECREF(val);
        Py_DECREF(o);
        return NULL;
    }
    int rc = BD_OK;
    if (n > 0) {
        Py_BEGIN_ALLOW_THREADS
        rc = bdt_policy_forward(self->net, PyArray_DATA(o), (int)n, PyArray_DATA((PyArrayObject *)out),
                                PyArray_DATA((PyArrayObject *)val));
        Py_END_ALLOW_THREADS
    }
    Py_DECREF(o);
    if (rc != BD_OK) {
        Py_DECREF(out);
        Py_DECREF(val);
        PyErr_Format(PyExc_RuntimeError, "bodhi: policy forward: %s", bd_lasterr());
        return NULL;
    }
    return Py_BuildValue("(NN)", out, val);
}

/* logstd() -> (act_dim,) float32: a continuous policy's log std */
static PyObject *net_logstd(NetObject *self, PyObject *Py_UNUSED(ignored))
{
    if (!self->net || self->cfg.act_kind != BDT_CONTINUOUS) {
        PyErr_SetString(PyExc_ValueError, "bodhi: logstd: not a continuous policy");
        return NULL;
    }
    npy_intp a = self->cfg.act_dim;
    PyObject *r = PyArray_SimpleNew(1, &a, NPY_FLOAT32);
    if (r && bdt_policy_logstd(self->net, PyArray_DATA((PyArrayObject *)r), self->cfg.act_dim) != BD_OK) {
        Py_DECREF(r);
        PyErr_Format(PyExc_RuntimeError, "bodhi: logstd: %s", bd_lasterr());
        return NULL;
    }
    return r;
}

static PyMethodDef net_methods[] = {
    {"forward", (PyCFunction)net_forward, METH_O, "forward(obs) -> (logits or means, values)"},
    {"logstd", (PyCFunction)net_logstd, METH_NOARGS, "logstd() -> a continuous policy's log std"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject NetType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "bodhi._policy.Net",
    .tp_basicsize = sizeof(NetObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Net(path): the acting network of a ppo, dqn or sac brain's checkpoint",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)net_init,
    .tp_dealloc = (destructor)net_dealloc,
    .tp_methods = net_methods,
    .tp_members = net_members,
    .tp_getset = net_getset,
};

static struct PyModuleDef policy_module = {
    PyModuleDef_HEAD_INIT, "bodhi._policy", "a checkpoint's acting network (libbodhi_torch)", -1, NULL,
    NULL, NULL, NULL, NULL,
};

/* Weak: a shim from before the interface hash has neither, and is refused by its absence
 * (below) rather than by the loader's "undefined symbol" naming this module. */
#pragma weak bdt_abi
#pragma weak bdt_load_actor

PyMODINIT_FUNC PyInit__policy(void)
{
    /* a shim of other sources (torch/abi.cmake): refused before anything of it is called */
    Dl_info di;
    const char *file = dladdr((void *)bdt_policy_create, &di) && di.dli_fname ? di.dli_fname : "libbodhi_torch.so";
    char why[1024];
    const char *theirs = bdt_abi && bdt_load_actor ? bdt_abi() : NULL;
    if (bdt_abi_other(theirs, BDT_ABI_HASH, file, why, sizeof why)) {
        PyErr_Format(PyExc_ImportError, "bodhi: %s", why);
        return NULL;
    }
    import_array();
    if (PyType_Ready(&NetType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&policy_module);
    if (!m)
        return NULL;
    /* a squashed actor's log std bounds (torch/net.h) */
    const struct {
        const char *name;
        double v;
    } consts[] = {{"LOGSTD_MIN", BDT_LOGSTD_MIN}, {"LOGSTD_MAX", BDT_LOGSTD_MAX}};
    for (size_t i = 0; i < sizeof consts / sizeof consts[0]; i++) {
        PyObject *v = PyFloat_FromDouble(consts[i].v);
        const int bad = !v || PyModule_AddObjectRef(m, consts[i].name, v) < 0;
        Py_XDECREF(v);
        if (bad) {
            Py_DECREF(m);
            return NULL;
        }
    }
    Py_INCREF(&NetType);
    if (PyModule_AddObject(m, "Net", (PyObject *)&NetType) < 0) {
        Py_DECREF(&NetType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
