/* params_get.h: how a brain kind's params parser reads one key (brain/ppo.c, dqn.c,
 * sac.c): into dst, with its default, a problem naming FILE:LINE:COL added to the
 * diagnostics when the value has the wrong type or lies outside [lo, hi] (lo excluded when
 * open_lo). The macros use the parser's locals: p (the params node), d (bd_diags), where
 * (char[256]), dv (double), i (long long), b (int). */
#ifndef BODHI_BRAIN_PARAMS_GET_H
#define BODHI_BRAIN_PARAMS_GET_H

#include "config/diag.h"
#include "config/yamltree.h"

#define BD_GETD_IN(key, def, lo, hi, open_lo, dst)                                                                  \
    if (bd_diag(&d, bd_node_double(p, key, def, &dv)) != BD_OK) {                                             \
    } else if (!((open_lo) ? dv > (lo) : dv >= (lo)) || !(dv <= (hi))) {                                      \
        bd_diag(&d, bd_seterr(BD_EINVAL, "%s: %s: expected %s%g to %g, got %g",                               \
                              bd_node_where(bd_node_get(p, key), where, sizeof where), key,                   \
                              (open_lo) ? "more than " : "", (double)(lo), (double)(hi), dv));                \
    } else {                                                                                                  \
        dst = dv;                                                                                             \
    }
#define BD_GETI(key, def, lo, hi, dst)                                                                           \
    if (bd_diag(&d, bd_node_int(p, key, def, &i)) != BD_OK) {                                                 \
    } else if (i < (lo) || i > (hi)) {                                                                        \
        bd_diag(&d, bd_seterr(BD_EINVAL, "%s: %s: expected %lld to %lld, got %lld",                           \
                              bd_node_where(bd_node_get(p, key), where, sizeof where), key,                   \
                              (long long)(lo), (long long)(hi), i));                                          \
    } else {                                                                                                  \
        dst = i;                                                                                              \
    }
#define BD_GETB(key, def, dst)                                                                                   \
    if (bd_diag(&d, bd_node_bool(p, key, def, &b)) == BD_OK)                                                  \
        dst = b;

#endif
