/* rundir.h: claiming a run directory for one run (docs/architecture.md, "Run directory").
 *
 * A run directory belongs to one run. The conductor holds an exclusive flock(2) on
 * <dir>/run.lock (which names its pid), and its children inherit it; the kernel drops the
 * lock when the last of them ends, however it ends, so a held lock means a live run.
 * Claiming DIR (trailing slashes ignored):
 *   - DIR does not exist, or is an empty folder: it is used;
 *   - DIR is a bodhi run directory (it holds run.yml and log.jsonl) whose lock nobody
 *     holds (a finished or dead run): it is renamed to DIR.prev-<time> and a new DIR made;
 *   - DIR's lock is held: refused, "a run is in progress in DIR (pid N)";
 *   - anything else (a file, a folder of other things, a symbolic link, ".", "/"): refused,
 *     nothing is touched.
 * Every lock taken is checked to be the file still at DIR/run.lock, so two runs that claim
 * one folder at once cannot both win.
 * Refusals are BD_EINVAL (the caller exits 2); I/O failures BD_EIO. */
#ifndef BODHI_CONDUCTOR_RUNDIR_H
#define BODHI_CONDUCTOR_RUNDIR_H

typedef struct {
    int lock_fd;     /* the held lock (-1 when none) */
    char *moved_to;  /* where a previous run was moved (NULL when nothing moved) */
} bd_rundir;

/* Claims dir as above and creates dir/memory. On success *rd holds the lock until
 * bd_rundir_release (or the process ends). */
int bd_rundir_claim(const char *dir, bd_rundir *rd);

/* What bd_rundir_claim would refuse (BD_EINVAL with its message), read only: nothing is
 * created, moved or locked. The gate (config/check.h) calls it for `bodhi check` and
 * `bodhi run` alike. */
int bd_rundir_check(const char *dir);

/* 1 when a live run holds dir (its run.lock is locked), else 0. */
int bd_rundir_live(const char *dir, int *owner);

/* Releases the lock and frees; NULL-safe, idempotent. */
void bd_rundir_release(bd_rundir *rd);

/* Renames dir to dir.prev-<local time> (dir.prev-<time>-2, ... when taken): what a run
 * directory's earlier run becomes, and an earlier sweep's folder (bodhi sweep). what names
 * it in the error ("run", "sweep"). BD_OK with *moved_to (caller frees), or BD_EIO. */
int bd_move_aside_as_prev(const char *dir, const char *what, char **moved_to);

/* What moving a run aside left on disk, for the console: "<moved_to> (920 MB)", and, when
 * earlier copies of dir (dir.prev-*) sit beside it, "; with N earlier copies beside it,
 * <dir>.prev-* hold X in all". Caller frees; NULL when out of memory. */
char *bd_rundir_aside_text(const char *dir, const char *moved_to);

#endif
