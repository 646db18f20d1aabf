/* shard.c: a Python env's shard (see pyenv.h): one instance of the class per shard,
 * Class(worlds=N, **params), stepped over every world at once. The class sees the shard's
 * buffers as NumPy arrays that are views, made once (no copy per step):
 *
 *   obs         float32 (N, S), or (N, M, S) with groups: write what each agent sees
 *   actions     float32 (N, U) or (N, M, U), read-only: a discrete column holds the index
 *   rewards     float32 (N) or (N, M)
 *   terminated  bool (N): a world ended by the env's rules (cleared before each step)
 *   draws       float32 (N, step_draws), when declared: uniform [0, 1) at (seed, world, step)
 *
 *   step(actions, obs, rewards, terminated[, draws])
 *   reset(rows, seeds, obs)   rows int64 (K): the worlds to start over (indices into the
 *                             shard), seeds uint64 (K): one per world and episode
 *
 * The host does the engine's part (include/bodhi/env_abi.h): the episode clock and
 * truncation at max_steps, every row of an ended world flagged, its final observation
 * kept, then one reset call for the worlds that ended. Seeds and draws come from Philox at
 * (run seed, global world, step) as the built-ins' do, so a world's episode is the same
 * whatever the shard split (replay --verify re-simulates the worlds as one shard) when
 * the class draws only from them. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#include <numpy/arrayobject.h>

#include <stdlib.h>
#include <string.h>

#include "bodhi/rng.h"
#include "env/python/pyenv_impl.h"

typedef struct {
    const bd_pyenv *py;
    PyObject *inst, *reset_fn, *step_fn, *step_args;
    PyObject *obs, *actions, *rewards, *term, *draws;
    uint8_t *wterm;   /* (N) the class's per-world flags, when a world has several rows */
    float *udraws;    /* (N, draws) */
    int64_t *rows;    /* (N) the worlds a reset call starts over */
    uint64_t *seeds;  /* (N) their seeds */
} bd_pyshard;

int bd_pyshard_numpy(void)
{
    if (_import_array() < 0)
        return bd_py_raise(BD_EINVAL, "numpy", "import (the muscle needs NumPy: python3-numpy)", 0);
    return BD_OK;
}

/* A view of `data` as an array of nd dims and type `type` (read-only unless `writable`). */
static PyObject *bd_view(void *data, int nd, const npy_intp *dims, int type, int writable)
{
    return PyArray_New(&PyArray_Type, nd, (npy_intp *)dims, type, NULL, data, 0,
                       writable ? NPY_ARRAY_CARRAY : NPY_ARRAY_CARRAY_RO, NULL);
}

static void bd_pyshard_free(bd_pyshard *s)
{
    PyObject *objs[] = {s->inst, s->reset_fn, s->step_fn, s->step_args, s->obs, s->actions,
                        s->rewards, s->term, s->draws};
    for (size_t k = 0; k < sizeof objs / sizeof objs[0]; k++)
        Py_XDECREF(objs[k]);
    free(s->wterm);
    free(s->udraws);
    free(s->rows);
    free(s->seeds);
    free(s);
}

void bd_pyshard_close(void *state)
{
    if (!state)
        return;
    PyGILState_STATE gs = PyGILState_Ensure();
    bd_pyshard_free(state);
    PyGILState_Release(gs);
}

/* The instance: Class(worlds=N, **params), each param an int or a float as declared. */
static PyObject *bd_pyshard_instance(const bd_pyenv *py, const bd_env_batch *b)
{
    const bd_env_desc *d = &py->h.desc;
    PyObject *kw = PyDict_New(), *args = PyTuple_New(0), *inst = NULL;
    int ok = kw && args;
    PyObject *v = ok ? PyLong_FromLong(b->n) : NULL;
    ok = v && PyDict_SetItemString(kw, "worlds", v) == 0;
    Py_XDECREF(v);
    for (int k = 0; ok && k < d->nparams; k++) {
        v = d->params[k].integer ? PyLong_FromDouble(b->param[k]) : PyFloat_FromDouble(b->param[k]);
        ok = v && PyDict_SetItemString(kw, d->params[k].name, v) == 0;
        Py_XDECREF(v);
    }
    if (ok)
        inst = PyObject_Call(py->cls, args, kw);
    Py_XDECREF(kw);
    Py_XDECREF(args);
    return inst;
}

int bd_pyshard_open(const bd_env_hosted *h, bd_env_batch *b, void **state)
{
    const bd_pyenv *py = (const bd_pyenv *)h;
    const int grouped = h->desc.ngroups > 0;
    const npy_intp N = b->n, M = b->members;
    *state = NULL;
    bd_pyshard *s = calloc(1, sizeof *s);
    if (!s)
        return bd_seterr(BD_ENOMEM, "%s: out of memory", py->label);
    s->py = py;
    s->rows = malloc(sizeof *s->rows * (size_t)N);
    s->seeds = malloc(sizeof *s->seeds * (size_t)N);
    s->wterm = M > 1 ? calloc((size_t)N, 1) : NULL;
    s->udraws = py->draws ? calloc((size_t)N * (size_t)py->draws, sizeof(float)) : NULL;
    if (!s->rows || !s->seeds || (M > 1 && !s->wterm) || (py->draws && !s->udraws)) {
        bd_pyshard_free(s);
        return bd_seterr(BD_ENOMEM, "%s: out of memory for %d worlds", py->label, b->n);
    }
    PyGILState_STATE gs = PyGILState_Ensure();
    int rc = BD_OK;
    if (!(s->inst = bd_pyshard_instance(py, b))) {
        rc = bd_py_raise(BD_EINVAL, py->label, "the constructor", 1);
        goto out;
    }
    s->reset_fn = PyObject_GetAttrString(s->inst, "reset");
    s->step_fn = s->reset_fn ? PyObject_GetAttrString(s->inst, "step") : NULL;
    if (!s->step_fn) {
        rc = bd_py_raise(BD_EINVAL, py->label, "looking up reset and step", 1);
        goto out;
    }
    npy_intp od[3] = {N, grouped ? M : b->obs_dim, b->obs_dim}, ad[3] = {N, grouped ? M : b->act_dim, b->act_dim};
    npy_intp rd[2] = {N, M}, dd[2] = {N, py->draws};
    s->obs = bd_view(b->obs, grouped ? 3 : 2, od, NPY_FLOAT32, 1);
    s->actions = bd_view(b->actions, grouped ? 3 : 2, ad, NPY_FLOAT32, 0);
    s->rewards = bd_view(b->rewards, grouped ? 2 : 1, rd, NPY_FLOAT32, 1);
    s->term = bd_view(M > 1 ? s->wterm : b->terminated, 1, rd, NPY_BOOL, 1);
    s->draws = py->draws ? bd_view(s->udraws, 2, dd, NPY_FLOAT32, 0) : NULL;
    if (s->obs && s->actions && s->rewards && s->term && (!py->draws || s->draws))
        s->step_args = py->draws ? PyTuple_Pack(5, s->actions, s->obs, s->rewards, s->term, s->draws)
                                 : PyTuple_Pack(4, s->actions, s->obs, s->rewards, s->term);
    if (!s->step_args)
        rc = bd_py_raise(BD_ENOMEM, py->label, "making the views of its buffers", 0);
out:
    if (rc != BD_OK)
        bd_pyshard_free(s);
    else
        *state = s;
    PyGILState_Release(gs);
    return rc;
}

/* The class's reset of the first k worlds in s->rows (seeds in s->seeds); holding the GIL. */
static int bd_pyshard_call_reset(bd_pyshard *s, npy_intp k)
{
    PyObject *rows = bd_view(s->rows, 1, &k, NPY_INT64, 0), *seeds = bd_view(s->seeds, 1, &k, NPY_UINT64, 0);
    PyObject *r = rows && seeds ? PyObject_CallFunctionObjArgs(s->reset_fn, rows, seeds, s->obs, NULL) : NULL;
    Py_XDECREF(rows);
    Py_XDECREF(seeds);
    if (!r)
        return bd_py_raise(BD_EINVAL, s->py->label, "reset", 1);
    Py_DECREF(r);
    return BD_OK;
}

/* The seed of world i's episode that starts at counter c: Philox at (seed, world, c). */
static uint64_t bd_pyshard_seed(const bd_env_batch *b, int i, uint64_t c)
{
    uint32_t r[4];
    bd_rng_u32x4(b->seed, b->world0 + (uint32_t)i, c, BD_STREAM_RESET, r);
    return (uint64_t)r[0] | (uint64_t)r[1] << 32;
}

int bd_pyshard_reset(void *state, bd_env_batch *b)
{
    bd_pyshard *s = state;
    for (int i = 0; i < b->n; i++) {
        s->rows[i] = i;
        s->seeds[i] = bd_pyshard_seed(b, i, b->step);
        b->elapsed[i] = 0;
    }
    PyGILState_STATE gs = PyGILState_Ensure();
    int rc = bd_pyshard_call_reset(s, b->n);
    PyGILState_Release(gs);
    return rc;
}

/* Draw j of world i at step t: word j % 4 of Philox at (seed, world, t, ENV + 256 (j / 4)). */
static void bd_pyshard_draw(bd_pyshard *s, const bd_env_batch *b)
{
    const int K = s->py->draws;
    for (int i = 0; i < b->n; i++)
        for (int j = 0; j < K; j += 4) {
            float u[4];
            bd_rng_uniform4(b->seed, b->world0 + (uint32_t)i, b->step, BD_STREAM_ENV + 256u * (uint32_t)(j / 4), u);
            for (int q = 0; q < 4 && j + q < K; q++)
                s->udraws[(size_t)i * (size_t)K + (size_t)(j + q)] = u[q];
        }
}

int bd_pyshard_step(void *state, bd_env_batch *b)
{
    bd_pyshard *s = state;
    const int M = b->members;
    const size_t od = (size_t)b->obs_dim;
    uint8_t *wt = M > 1 ? s->wterm : b->terminated;
    memset(wt, 0, (size_t)b->n);
    if (s->py->draws)
        bd_pyshard_draw(s, b);
    PyGILState_STATE gs = PyGILState_Ensure();
    PyObject *r = PyObject_Call(s->step_fn, s->step_args, NULL);
    int rc = r ? BD_OK : bd_py_raise(BD_EINVAL, s->py->label, "step", 1);
    Py_XDECREF(r);
    /* the episode clocks and every row's flags (one pass, over locals: the flags are bytes,
     * which may alias anything), then the worlds that ended */
    const int n = b->n, max_steps = b->max_steps;
    int32_t *elapsed = b->elapsed;
    uint8_t *term = b->terminated, *trunc = b->truncated, ended = 0;
    if (rc == BD_OK && M == 1) {
        for (int i = 0; i < n; i++) {
            const int32_t t = elapsed[i] + 1;
            const uint8_t d = wt[i] != 0, tr = t >= max_steps;
            elapsed[i] = t;
            term[i] = d;
            trunc[i] = tr;
            ended |= d | tr;
        }
    } else if (rc == BD_OK) {
        for (int i = 0; i < n; i++) {
            const int32_t t = elapsed[i] + 1;
            const uint8_t d = wt[i] != 0, tr = t >= max_steps;
            elapsed[i] = t;
            memset(term + (size_t)i * (size_t)M, d, (size_t)M);
            memset(trunc + (size_t)i * (size_t)M, tr, (size_t)M);
            ended |= d | tr;
        }
    }
    npy_intp k = 0;
    for (int i = 0; ended && i < b->n && rc == BD_OK; i++) {
        const size_t r0 = (size_t)i * (size_t)M;
        if (b->terminated[r0] | b->truncated[r0]) {
            memcpy(b->final_obs + r0 * od, b->obs + r0 * od, sizeof(float) * od * (size_t)M);
            s->rows[k] = i;
            s->seeds[k++] = bd_pyshard_seed(b, i, b->step + 1);
            b->elapsed[i] = 0;
        }
    }
    if (rc == BD_OK && k > 0)
        rc = bd_pyshard_call_reset(s, k);
    PyGILState_Release(gs);
    return rc;
}
