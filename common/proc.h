/* proc.h: what every child process (brain, muscle) does at start: go when its parent goes
 * (PR_SET_PDEATHSIG), leave Ctrl-C and a hang-up to the conductor (SIGINT and SIGHUP ignored), and optionally turn
 * SIGTERM into a flag so it can flush what it holds before exiting. */
#ifndef BODHI_COMMON_PROC_H
#define BODHI_COMMON_PROC_H

#include <signal.h>
#include <sys/types.h>

/* Set by the handlers catch_term asks for: 1 by SIGTERM (stop: interrupted, or the
 * conductor's death signal), 2 by SIGUSR2 (stop: the conductor's run failed; several ranks
 * tell the others so, brain/brain.c). Either stays set; 2 is not lowered to 1. */
extern volatile sig_atomic_t bd_term_requested;

/* parent: the pid the child expects as parent (0 = do not check); deathsig: the signal the
 * child gets when its parent dies (SIGTERM for a process that saves what it holds, SIGKILL
 * for one with nothing to save). Returns BD_OK, or BD_ECLOSED when the parent is already
 * gone. */
int bd_child_init(pid_t parent, int catch_term, int deathsig);

/* 1 when the parent given to bd_child_init is no longer this process's parent. */
int bd_parent_gone(void);

/* The allocator policy of every bodhi process, set first thing in main(): glibc's malloc
 * keeps what it got from the kernel instead of returning large blocks and faulting them in
 * again at each update (blocks up to 1 GiB come from the heap, the heap's top is never
 * trimmed). Left to glibc's dynamic threshold, one run in two of identical work took twice
 * the wall time, most of it page faults in the kernel. Cannot fail (a refused setting
 * keeps glibc's default). */
void bd_alloc_policy(void);

/* The BLAS environment the conductor gives its children (conductor/children.c), each
 * variable only where the user has not set it (or set it empty):
 *  - OPENBLAS_NUM_THREADS=1: OpenBLAS's own pool would fight libtorch's threads and the
 *    learner's second thread for the cores;
 *  - OMP_WAIT_POLICY=passive: OpenMP workers sleep instead of spinning.
 * The libraries read them when they load, before main(). Returns 1 when it set any. */
int bd_blas_env(void);

/* 1 when the OpenBLAS this process runs uses its AVX-512 kernels (SkylakeX, Cooperlake,
 * SapphireRapids: openblas_get_corename; Debian 12's 0.3.21 picks them on AVX-512 CPUs,
 * AMD's Zen 4 and later included, unless OPENBLAS_CORETYPE says otherwise, as this
 * machine's environment does: Haswell), 0 otherwise or without OpenBLAS (in a process
 * that does not link it, until libtorch has loaded it). */
int bd_blas_avx512(void);

/* bd_blas_env for a process started without the conductor (a remote muscle, a bench):
 * when it set anything, starts again as argv. Returns when nothing was to be set, or when
 * the new start failed (it goes on as it is). */
void bd_thread_env_reexec(char *const *argv);

/* Raises the soft limit on open descriptors to the hard one. A TCP door's connections
 * hold a descriptor each from the moment the kernel accepts them, before their TLS
 * handshake (NNG 1.5.2 gives that no deadline); at a default soft limit of 1024 a stranger
 * with no credential could take them all and keep the run's own muscles out. */
void bd_nofile_raise(void);

/* Start-up timing. Every bodhi process stamps bd_main_t = bd_now() first thing in main();
 * its start-up breakdown is a "startup" event (log.jsonl) of CLOCK_MONOTONIC seconds, which
 * all processes of a machine share: "exec" (when the kernel started the process, from
 * /proc/self/stat, 10 ms resolution), "main" (after the dynamic loader and the libraries'
 * constructors: libtorch's take most of it) and each stage a process adds with
 * bd_startup_mark. bd_startup_new returns NULL when out of memory; bd_startup_mark is
 * NULL-safe. */
extern double bd_main_t;
struct cJSON;
struct cJSON *bd_startup_new(const char *role);
void bd_startup_mark(struct cJSON *o, const char *stage);

/* The parent of process pid (from /proc/PID/stat), or 0 when it is gone or unreadable. */
pid_t bd_proc_parent(pid_t pid);

#endif
