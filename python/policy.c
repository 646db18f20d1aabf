/* policy.c: bodhi._policy, a PPO checkpoint's network for Python: the torch shim
 * (libbodhi_torch.so, torch/bd_torch.h) loads the checkpoint into the network a muscle
 * runs and forwards NumPy observations through it. A module of its own, imported by
 * bodhi.load_policy only, so that `import bodhi` never loads libtorch. The shim's errors go
 * through bd_seterr/bd_lasterr, which libbodhi_env.so (linked here) provides. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
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
    static char *kwlist[] = {"obs_dim", "continuous", "act_dim", "hidden", "layers", "path", NULL};
    int obs_dim, continuous, act_dim, hidden, layers;
    const char *path;
    if (self->net) {
        PyErr_SetString(PyExc_RuntimeError, "bodhi: Net already initialised");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(args, kw, "ipiiis", kwlist, &obs_dim, &continuous, &act_dim, &hidden,
                                     &layers, &path))
        return -1;
    if (obs_dim < 1 || act_dim < 1 || hidden < 1 || layers < 1 || obs_dim > (1 << 24) || act_dim > (1 << 24) ||
        hidden > 65536 || layers > 16) {
        PyErr_Format(PyExc_ValueError, "bodhi: network of %d sensors, %d actions, %d x %d hidden: out of range",
                     obs_dim, act_dim, layers, hidden);
        return -1;
    }
    self->cfg = (bdt_policy_config){.obs_dim = obs_dim, .act_kind = continuous ? BDT_CONTINUOUS : BDT_DISCRETE,
                                    .act_dim = act_dim, .hidden = hidden, .layers = layers, .device = BDT_CPU};
    bdt_policy *net = NULL;
    int rc;
    Py_BEGIN_ALLOW_THREADS
    rc = bdt_policy_create(&self->cfg, &net);
    if (rc == BD_OK)
        rc = bdt_load(net, NULL, path);
    Py_END_ALLOW_THREADS
    if (rc != BD_OK) {
        bdt_policy_destroy(net);
        PyErr_Format(PyExc_ValueError, "bodhi: checkpoint %s: %s", path, bd_lasterr());
        return -1;
    }
    self->net = net;
    return 0;
}

static void net_dealloc(NetObject *self)
{
    bdt_policy_destroy(self->net);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* forward(obs (n, obs_dim) float32) -> (out (n, act_dim): logits or means, value (n,)) */
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
    npy_intp n = PyArray_DIM(o, 0), d2[2] = {n, self->cfg.act_dim};
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
    .tp_doc = "Net(obs_dim, continuous, act_dim, hidden, layers, path): a checkpoint's actor-critic",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)net_init,
    .tp_dealloc = (destructor)net_dealloc,
    .tp_methods = net_methods,
};

static struct PyModuleDef policy_module = {
    PyModuleDef_HEAD_INIT, "bodhi._policy", "a PPO checkpoint's network (libbodhi_torch)", -1, NULL,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__policy(void)
{
    import_array();
    if (PyType_Ready(&NetType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&policy_module);
    if (!m)
        return NULL;
    Py_INCREF(&NetType);
    if (PyModule_AddObject(m, "Net", (PyObject *)&NetType) < 0) {
        Py_DECREF(&NetType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
