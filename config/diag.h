/* diag.h: every error a check finds, not just the first.
 *
 * A check that can go on after an error (the next key, the next agent, the next phase)
 * records it with bd_diag(d, rc) and goes on; one that cannot returns. Each call records
 * bd_lasterr() as one error ("FILE:LINE:COL: message"), on one line: control characters
 * in it (a name may hold a line break) are written as \n, \xNN. The same problem twice
 * is kept once, also when only the phase named differs (a later phase inherits what an
 * earlier one wrote, with its problems). At most BD_DIAGS_MAX are kept; the rest are
 * counted. bd_diags_print lists them in file order. */
#ifndef BODHI_CONFIG_DIAG_H
#define BODHI_CONFIG_DIAG_H

#include <stdio.h>

#include "bodhi/bodhi.h"

typedef struct {
    char **msg;   /* one error per entry, in the order found */
    int n, cap;
    int rc;       /* the first error's code (BD_OK while none) */
    long more;    /* errors past BD_DIAGS_MAX, counted only */
} bd_diags;

#define BD_DIAGS_INIT {NULL, 0, 0, BD_OK, 0}
#define BD_DIAGS_MAX 1000

/* rc != BD_OK: records bd_lasterr() as an error. Returns rc. */
int bd_diag(bd_diags *d, int rc);

/* Prints every error, one per line, sorted by file position (errors without one last),
 * at most max of them (then "... and N more errors"); max <= 0 prints all. */
void bd_diags_print(const bd_diags *d, FILE *f, int max);

/* BD_OK if no error was recorded; else the first error's code, with bd_lasterr() holding
 * as many errors as fit, one per line, in file order. Frees d's storage either way. */
int bd_diags_finish(bd_diags *d);

void bd_diags_fini(bd_diags *d); /* frees without setting bd_lasterr */

/* Records each error of from into to (each on its own), then frees from. Returns from's
 * first error's code (BD_OK when it had none). */
int bd_diags_move(bd_diags *from, bd_diags *to);

#endif
