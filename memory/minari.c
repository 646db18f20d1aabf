/* minari.c: episodes in Minari's HDF5 layout (memory.h, bd_minari_*).
 *
 * main_data.hdf5 holds one group per episode, episode_<id>, with attributes id and
 * total_steps (int64) and the datasets observations (T+1, S) float32, actions (T,) int64
 * for a Discrete space or (T, U) float32 for a Box, rewards (T,) float64, terminations and
 * truncations (T,) as HDF5's bool (an int8 enum FALSE/TRUE, what h5py writes for numpy
 * bool), and an empty infos group. metadata.json beside it is the caller's. */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "memory/h5.h"

struct bd_minari_writer {
    char *path;
    hid_t file, t_bool;
};

static int minari_close_h5(bd_minari_writer *w)
{
    int rc = BD_OK;
    bd_h5_close(&w->t_bool);
    if (w->file >= 0 && H5Fclose(w->file) < 0)
        rc = bd_h5_fail("'%s': cannot close", w->path);
    w->file = H5I_INVALID_HID;
    return rc;
}

int bd_minari_create(const char *path, bd_minari_writer **out)
{
    *out = NULL;
    bd_minari_writer *w = calloc(1, sizeof *w);
    if (!w || !(w->path = bd_strdup(path))) {
        free(w);
        return bd_seterr(BD_ENOMEM, "out of memory");
    }
    w->file = w->t_bool = H5I_INVALID_HID;
    int rc = bd_h5_make_parent(path);
    bd_h5_guard g;
    bd_h5_enter(&g);
    if (rc == BD_OK && (w->file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT)) < 0)
        rc = bd_h5_fail("cannot create '%s'", path);
    if (rc == BD_OK) {
        int8_t f = 0, t = 1;
        w->t_bool = H5Tenum_create(H5T_STD_I8LE);
        if (w->t_bool < 0 || H5Tenum_insert(w->t_bool, "FALSE", &f) < 0 || H5Tenum_insert(w->t_bool, "TRUE", &t) < 0)
            rc = bd_h5_fail("'%s': cannot make the bool type", path);
    }
    if (rc)
        minari_close_h5(w);
    bd_h5_leave(&g);
    if (rc) {
        free(w->path);
        free(w);
        return rc;
    }
    *out = w;
    return BD_OK;
}

/* Dataset name in grp: rank 1 or 2 (dims), file type ft, memory type mt, from buf. */
static int put(bd_minari_writer *w, hid_t grp, const char *name, int rank, const hsize_t *dims, hid_t ft, hid_t mt,
               const void *buf)
{
    hid_t sp = H5Screate_simple(rank, dims, NULL), ds = H5I_INVALID_HID;
    int rc = BD_OK;
    if (sp < 0 || (ds = H5Dcreate2(grp, name, ft, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)) < 0 ||
        H5Dwrite(ds, mt, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0)
        rc = bd_h5_fail("'%s': cannot write %s", w->path, name);
    bd_h5_close(&ds);
    bd_h5_close(&sp);
    return rc;
}

static int put_i64_attr(bd_minari_writer *w, hid_t grp, const char *name, int64_t v)
{
    hid_t sp = H5Screate(H5S_SCALAR), a = H5I_INVALID_HID;
    int rc = BD_OK;
    if (sp < 0 || (a = H5Acreate2(grp, name, H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT)) < 0 ||
        H5Awrite(a, H5T_NATIVE_INT64, &v) < 0)
        rc = bd_h5_fail("'%s': cannot write attribute %s", w->path, name);
    bd_h5_close(&a);
    bd_h5_close(&sp);
    return rc;
}

int bd_minari_episode(bd_minari_writer *w, const bd_minari_ep *e)
{
    if (!w || !e || e->steps < 1 || e->s < 1 || e->u < 1)
        return bd_seterr(BD_EINVAL, "bd_minari_episode: bad episode");
    const size_t T = (size_t)e->steps;
    double *rew = malloc(sizeof(double) * T);
    int8_t *term = calloc(T, 1), *trunc = calloc(T, 1);
    int64_t *acts = e->discrete ? malloc(sizeof(int64_t) * T) : NULL;
    if (!rew || !term || !trunc || (e->discrete && !acts)) {
        free(rew);
        free(term);
        free(trunc);
        free(acts);
        return bd_seterr(BD_ENOMEM, "out of memory");
    }
    for (size_t t = 0; t < T; t++) {
        rew[t] = e->rewards[t];
        if (acts)
            acts[t] = (int64_t)e->actions[t * (size_t)e->u];
    }
    term[T - 1] = (int8_t)(e->terminated != 0);
    trunc[T - 1] = (int8_t)(e->truncated != 0);
    char name[48];
    snprintf(name, sizeof name, "episode_%lld", (long long)e->id);
    bd_h5_guard g;
    bd_h5_enter(&g);
    hid_t grp = H5Gcreate2(w->file, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), info = H5I_INVALID_HID;
    int rc = grp < 0 ? bd_h5_fail("'%s': cannot create %s", w->path, name) : BD_OK;
    hsize_t obs[2] = {T + 1, (hsize_t)e->s}, one[1] = {T}, act2[2] = {T, (hsize_t)e->u};
    if (!rc)
        rc = put_i64_attr(w, grp, "id", e->id);
    if (!rc)
        rc = put_i64_attr(w, grp, "total_steps", (int64_t)T);
    if (!rc)
        rc = put(w, grp, "observations", 2, obs, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, e->observations);
    if (!rc)
        rc = acts ? put(w, grp, "actions", 1, one, H5T_STD_I64LE, H5T_NATIVE_INT64, acts)
                  : put(w, grp, "actions", 2, act2, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, e->actions);
    if (!rc)
        rc = put(w, grp, "rewards", 1, one, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, rew);
    if (!rc)
        rc = put(w, grp, "terminations", 1, one, w->t_bool, w->t_bool, term);
    if (!rc)
        rc = put(w, grp, "truncations", 1, one, w->t_bool, w->t_bool, trunc);
    if (!rc && (info = H5Gcreate2(grp, "infos", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)) < 0)
        rc = bd_h5_fail("'%s': cannot create %s/infos", w->path, name);
    bd_h5_close(&info);
    bd_h5_close(&grp);
    bd_h5_leave(&g);
    free(rew);
    free(term);
    free(trunc);
    free(acts);
    return rc;
}

int bd_minari_close(bd_minari_writer *w)
{
    if (!w)
        return BD_OK;
    bd_h5_guard g;
    bd_h5_enter(&g);
    int rc = minari_close_h5(w);
    bd_h5_leave(&g);
    free(w->path);
    free(w);
    return rc;
}
