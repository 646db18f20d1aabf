/* h5.h: HDF5 helpers shared by memory/'s writer, master file and readers (not a public
 * interface). Every HDF5 call in memory/ runs between bd_h5_enter and bd_h5_leave: one
 * process-wide mutex (Debian's HDF5 is thread-safe, a serial build need not be) with
 * HDF5's automatic error printing off; a failure is reported with bd_h5_fail right after
 * the failing call, while HDF5's error stack still holds its reason. */
#ifndef BODHI_MEMORY_H5_H
#define BODHI_MEMORY_H5_H

#include <hdf5.h>

#include "memory/memory.h"

typedef struct {
    H5E_auto2_t fn;
    void *data;
} bd_h5_guard;

/* Takes the HDF5 lock and turns HDF5's error printing off for this thread. */
void bd_h5_enter(bd_h5_guard *g);
/* Restores the caller's error printing and releases the lock. */
void bd_h5_leave(bd_h5_guard *g);

/* Names path in bd_trace_note_files's buffer, when one was given: memory/ calls it before
 * each file it opens to read or repair. */
void bd_h5_note_open(const char *path);

/* The innermost description on HDF5's error stack; buf holds 256 bytes. */
const char *bd_h5_reason(char *buf);
/* Records "<what>: <HDF5's reason>" and returns BD_EHDF5. */
int bd_h5_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Closes any HDF5 id by its type and sets it invalid; negative ids are left alone. */
void bd_h5_close(hid_t *id);

/* File access list: latest format (for SWMR) or the library default; never file locks
 * (a reader must never stop a run's writer; one writer per file is the caller's
 * contract). */
hid_t bd_h5_fapl(int latest);
/* Group and file creation lists that remember link creation order. */
hid_t bd_h5_gcpl(void);
hid_t bd_h5_fcpl(void);
/* The step datasets of a trace (memory.h, docs/trace-format.md), in the order of
 * bd_trace_writer_append_versions's buffers: (T, N, S) and (T, N, U) float32, (T, N)
 * float32, two (T, N) uint8, then (T, N) uint64 (the weights version; traces written
 * before it have none). The one list the writer and the readers use. */
enum { BD_STEP_SENSORS, BD_STEP_ACTUATORS, BD_STEP_REWARDS, BD_STEP_TERMINATED, BD_STEP_TRUNCATED, BD_STEP_VERSION,
       BD_STEP_COUNT };
extern const char *const bd_step_names[BD_STEP_COUNT];
/* Step dataset d's memory type (float32 for the first three, uint8 flags, uint64 version):
 * what the writer writes from and the readers read into, whatever the file holds. */
hid_t bd_h5_step_mtype(int d);
/* The step dataset called name (BD_STEP_*), or -1 for another dataset. */
int bd_h5_step_index(const char *name);

/* The episodes record in memory (bd_episode) or in the file (packed little-endian). */
hid_t bd_h5_episode_type(int in_file);

/* Attribute `name` on obj: n UTF-8 strings (n < 0: one scalar string); `file` and
 * `objname` name the place in errors. */
int bd_h5_attr_strings(hid_t obj, const char *file, const char *objname, const char *name,
                       const char *const *v, int n);
int bd_h5_attr_scalar(hid_t obj, const char *file, const char *objname, const char *name,
                      hid_t ftype, hid_t mtype, const void *v);

/* The writer's lock on its file: an exclusive open-file-description lock (fcntl
 * F_OFD_SETLK over the whole file), held by the open file description, so closing another
 * descriptor of the file in the same process does not drop it, and released by the kernel
 * when the process dies. It lives apart from flock(2) locks, which HDF5 readers (h5py)
 * take: a SWMR reader of a live trace is not blocked. (On NFS, where flock is emulated
 * with byte-range locks, the two would meet.)
 * bd_h5_try_lock takes it (how > 0: exclusive, fd open for writing; how < 0: shared, which
 * a writer's lock excludes too) or drops it (how 0); 0, or -1 with errno (EAGAIN: held). */
int bd_h5_try_lock(int fd, int how);

/* Takes the writer's lock on path (creating the file when absent) into *fd: BD_EIO
 * "another process writes ..." when it is held. */
int bd_h5_lock_writer(const char *path, int *fd);

/* BD_EINVAL unless s is one HDF5 link name (non-empty, no '/', not . or ..). */
int bd_h5_check_name(const char *what, const char *s);
/* mkdir -p of path's folder. */
int bd_h5_make_parent(const char *path);

#endif
