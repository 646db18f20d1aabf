/* master.c: the run's master file, run.h5 (memory.h, docs/trace-format.md): the run file
 * text, seed and bodhi version as root attributes, and one external link per phase and
 * agent to the file that agent's brain writes (HDF5 files have one writer each). */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "memory/h5.h"

int bd_trace_master_create(const char *run_h5, const char *run_file_text, uint64_t seed)
{
    if (!run_h5 || !*run_h5)
        return bd_seterr(BD_EINVAL, "bd_trace_master_create: no path");
    int rc = bd_h5_make_parent(run_h5);
    if (rc)
        return rc;
    const char *text = run_file_text ? run_file_text : "";
    const char *version = bd_version();
    bd_h5_guard g;
    bd_h5_enter(&g);
    hid_t fcpl = bd_h5_fcpl(), fapl = bd_h5_fapl(0), f = H5I_INVALID_HID;
    if (fcpl < 0 || fapl < 0 || (f = H5Fcreate(run_h5, H5F_ACC_TRUNC, fcpl, fapl)) < 0) {
        rc = bd_h5_fail("cannot create master file '%s'", run_h5);
    } else if (!(rc = bd_h5_attr_strings(f, run_h5, "/", "run_file", &text, -1)) &&
               !(rc = bd_h5_attr_scalar(f, run_h5, "/", "seed", H5T_STD_U64LE, H5T_NATIVE_UINT64,
                                  &seed)) &&
               !(rc = bd_h5_attr_strings(f, run_h5, "/", "bodhi_version", &version, -1))) {
        if (H5Fclose(f) < 0)
            rc = bd_h5_fail("'%s': cannot close the master file", run_h5);
        f = H5I_INVALID_HID;
    }
    bd_h5_close(&f);
    bd_h5_close(&fapl);
    bd_h5_close(&fcpl);
    bd_h5_leave(&g);
    return rc;
}

/* 1 when link name in loc is an external link to file:obj already. */
static int same_elink(hid_t loc, const char *name, const char *file, const char *obj)
{
    H5L_info_t li;
    if (H5Lget_info(loc, name, &li, H5P_DEFAULT) < 0 || li.type != H5L_TYPE_EXTERNAL)
        return 0;
    char *val = malloc(li.u.val_size ? li.u.val_size : 1);
    const char *f = NULL, *o = NULL;
    unsigned flags = 0;
    int same = val && H5Lget_val(loc, name, val, li.u.val_size, H5P_DEFAULT) >= 0 &&
               H5Lunpack_elink_val(val, li.u.val_size, &flags, &f, &o) >= 0 && !strcmp(f, file) &&
               !strcmp(o, obj);
    free(val);
    return same;
}

/* Adds phase to the root attribute `phases` (the phases in run order; h5py lists groups by
 * name). Caller holds the HDF5 guard. */
static int master_add_phase(hid_t f, const char *run_h5, const char *phase)
{
    hid_t t = H5Tcopy(H5T_C_S1), a = H5I_INVALID_HID, sp = H5I_INVALID_HID;
    if (t < 0 || H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0) {
        bd_h5_close(&t);
        return bd_h5_fail("'%s': cannot make a string type", run_h5);
    }
    htri_t ex = H5Aexists(f, "phases");
    hssize_t n = 0;
    char **old = NULL;
    int rc = BD_OK;
    if (ex > 0) {
        if ((a = H5Aopen(f, "phases", H5P_DEFAULT)) < 0 || (sp = H5Aget_space(a)) < 0 ||
            (n = H5Sget_simple_extent_npoints(sp)) < 0 || !(old = calloc((size_t)n + 1, sizeof *old)) ||
            H5Aread(a, t, old) < 0)
            rc = bd_h5_fail("'%s': cannot read attribute phases", run_h5);
    } else if (ex < 0) {
        rc = bd_h5_fail("'%s': cannot look up attribute phases", run_h5);
    }
    const char **names = rc ? NULL : calloc((size_t)n + 1, sizeof *names);
    if (!rc && !names)
        rc = bd_seterr(BD_ENOMEM, "out of memory");
    for (hssize_t i = 0; !rc && i < n; i++)
        names[i] = old[i];
    if (!rc) {
        names[n] = phase;
        bd_h5_close(&a);
        if (ex > 0 && H5Adelete(f, "phases") < 0)
            rc = bd_h5_fail("'%s': cannot replace attribute phases", run_h5);
        else
            rc = bd_h5_attr_strings(f, run_h5, "/", "phases", names, (int)n + 1);
    }
    if (old && sp >= 0)
        H5Dvlen_reclaim(t, sp, H5P_DEFAULT, old);
    free(old);
    free(names);
    bd_h5_close(&a);
    bd_h5_close(&sp);
    bd_h5_close(&t);
    return rc;
}

int bd_trace_master_link(const char *run_h5, const char *phase, const char *agent,
                         const char *target_file)
{
    return bd_trace_master_link_as(run_h5, phase, agent, agent, target_file);
}

int bd_trace_master_link_as(const char *run_h5, const char *phase, const char *name, const char *agent,
                            const char *target_file)
{
    int rc;
    if (!run_h5 || !target_file || !*target_file)
        return bd_seterr(BD_EINVAL, "bd_trace_master_link: no master or target path");
    if ((rc = bd_h5_check_name("phase", phase)) || (rc = bd_h5_check_name("agent", agent))
        || (rc = bd_h5_check_name("link", name)))
        return rc;
    if (!bd_exists(run_h5))
        return bd_seterr(BD_ENOTFOUND, "master file '%s' not found", run_h5);
    char obj[512];
    snprintf(obj, sizeof obj, "/%s/%s", phase, agent);

    bd_h5_guard g;
    bd_h5_enter(&g);
    hid_t fapl = bd_h5_fapl(0), gcpl = H5I_INVALID_HID, f = H5I_INVALID_HID;
    hid_t pg = H5I_INVALID_HID;
    htri_t ex;
    if (fapl < 0 || (f = H5Fopen(run_h5, H5F_ACC_RDWR, fapl)) < 0) {
        rc = bd_h5_fail("cannot open master file '%s' for writing", run_h5);
        goto done;
    }
    if ((ex = H5Lexists(f, phase, H5P_DEFAULT)) < 0) {
        rc = bd_h5_fail("'%s': cannot look up /%s", run_h5, phase);
        goto done;
    }
    if (!ex && ((gcpl = bd_h5_gcpl()) < 0 ||
                (pg = H5Gcreate2(f, phase, H5P_DEFAULT, gcpl, H5P_DEFAULT)) < 0)) {
        rc = bd_h5_fail("'%s': cannot create group /%s", run_h5, phase);
        goto done;
    }
    if (!ex && (rc = master_add_phase(f, run_h5, phase)))
        goto done;
    if (ex && (pg = H5Gopen2(f, phase, H5P_DEFAULT)) < 0) {
        rc = bd_h5_fail("'%s': /%s is not a group", run_h5, phase);
        goto done;
    }
    /* The same link again is kept (and keeps its place in the listing); another one
     * replaces the old link. */
    int keep = 0;
    if ((ex = H5Lexists(pg, name, H5P_DEFAULT)) < 0 ||
        (ex > 0 && !(keep = same_elink(pg, name, target_file, obj)) &&
         H5Ldelete(pg, name, H5P_DEFAULT) < 0) ||
        (!keep && H5Lcreate_external(target_file, obj, pg, name, H5P_DEFAULT, H5P_DEFAULT) < 0)) {
        rc = bd_h5_fail("'%s': cannot link /%s/%s to '%s':%s", run_h5, phase, name, target_file, obj);
        goto done;
    }
    bd_h5_close(&pg);
    if (H5Fclose(f) < 0)
        rc = bd_h5_fail("'%s': cannot close the master file", run_h5);
    f = H5I_INVALID_HID;
done:
    bd_h5_close(&pg);
    bd_h5_close(&f);
    bd_h5_close(&gcpl);
    bd_h5_close(&fapl);
    bd_h5_leave(&g);
    return rc;
}
