/* proc.h: what every child process (brain, muscle) does at start: go when its parent goes
 * (PR_SET_PDEATHSIG), leave Ctrl-C to the conductor (SIGINT ignored), and optionally turn
 * SIGTERM into a flag so it can flush what it holds before exiting. */
#ifndef BODHI_COMMON_PROC_H
#define BODHI_COMMON_PROC_H

#include <signal.h>
#include <sys/types.h>

/* Set by the SIGTERM handler when catch_term was asked for. */
extern volatile sig_atomic_t bd_term_requested;

/* parent: the pid the child expects as parent (0 = do not check); deathsig: the signal the
 * child gets when its parent dies (SIGTERM for a process that saves what it holds, SIGKILL
 * for one with nothing to save). Returns BD_OK, or BD_ECLOSED when the parent is already
 * gone. */
int bd_child_init(pid_t parent, int catch_term, int deathsig);

/* 1 when the parent given to bd_child_init is no longer this process's parent. */
int bd_parent_gone(void);

/* The parent of process pid (from /proc/PID/stat), or 0 when it is gone or unreadable. */
pid_t bd_proc_parent(pid_t pid);

#endif
