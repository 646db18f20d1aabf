/* runfile_impl.h: what the files of the run-file reader share (config/runfile.c,
 * config/runfile_phase.c); not for other folders. */
#ifndef BODHI_CONFIG_RUNFILE_IMPL_H
#define BODHI_CONFIG_RUNFILE_IMPL_H

#include <stddef.h>

#include "config/diag.h"
#include "config/runfile.h"
#include "config/yamltree.h"

/* Storage owned by rf, freed by bd_runfile_destroy: count zeroed items of size bytes, a
 * copy of s, an empty map positioned at `where` (for defaults); NULL when out of memory. */
void *bd_rf_alloc(bd_runfile *rf, size_t count, size_t size);
const char *bd_rf_strdup(bd_runfile *rf, const char *s);
const bd_node *bd_rf_empty_map(bd_runfile *rf, const bd_node *where);

/* Sets the error "out of memory reading the run file"; returns BD_ENOMEM. */
int bd_rf_nomem(void);

/* Sets the error "FILE:LINE:COL: ..." at node n; returns err. */
int __attribute__((format(printf, 3, 4))) bd_rf_at(const bd_node *n, int err, const char *fmt, ...);

/* Why a name that becomes a folder, a file name part or an HDF5 group cannot be used
 * ([A-Za-z0-9_.-]{1,64}, not "." or ".."), or NULL when it can. */
const char *bd_rf_name_problem(const char *s);

/* Where problems go while parsing; bd_rf_note records one (rc != BD_OK) there and returns rc. */
bd_diags *bd_rf_diags(bd_runfile *rf);
int bd_rf_note(bd_runfile *rf, int rc);

/* A required, non-empty string map[key] into *out; `in` names the map for the error. */
int bd_rf_req_str(const bd_node *map, const char *key, const char *in, const char **out);

/* Merged phase pi of rf (rf->phases[pi].node) into rf->phases[pi], every problem noted;
 * BD_OK when it has none, else the first problem's code (and the phase marked invalid). */
int bd_rf_parse_phase(bd_runfile *rf, int pi);

#endif
