/* replay.c: `bodhi replay RUN_DIR|SWEEP_DIR|FILE.h5 [--csv F] [--verify] [--plot F] [--minari DIR]
 * [--metrics F.csv] [--tensorboard DIR]`:
 * the options, then replay/'s report (replay/replay.h) with the built-in kinds for
 * --verify's re-simulation. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bodhi/bodhi.h"
#include "cli/cli.h"
#include "conductor/builtins.h"
#include "memory/memory.h"
#include "replay/replay.h"

/* The report itself: bodhi replay's exit code. */
static int replay_report(const char *target, const char *csv, const char *verify, const char *plot,
                         const char *minari, const char *metrics, const char *tb)
{
    int rc;
    if (metrics || tb) { /* from log.jsonl: before the traces, which a live run may still write */
        if ((metrics && !metrics[0]) || (tb && !tb[0])) {
            fprintf(stderr, "bodhi replay: --metrics/--tensorboard: an empty path\n");
            return 2;
        }
        if ((rc = bd_replay_metrics(target, metrics, tb, stdout)) != BD_OK) {
            fprintf(stderr, "bodhi replay: %s\n", bd_lasterr());
            return 2;
        }
    }
    int64_t mismatches = 0;
    bd_replay_opts o = {.csv = csv, .verify = verify != NULL, .plot = plot, .minari = minari,
                        .mismatches = &mismatches, .registry = bd_registry_builtin()};
    rc = bd_replay(target, stdout, &o);
    if (rc != BD_OK)
        fprintf(stderr, "bodhi replay: %s\n", bd_lasterr());
    if (rc == BD_OK)
        return 0;
    /* 1: the check failed, or --verify/--minari could do nothing; 2: the run could not be read */
    return mismatches > 0 ? 1 : 2;
}

int bd_cmd_replay(int argc, char **argv)
{
    const char *target = NULL, *csv = NULL, *verify = NULL, *plot = NULL, *minari = NULL, *metrics = NULL,
               *tb = NULL;
    bd_opt spec[] = {{"csv=", &csv},         {"verify", &verify},    {"plot=", &plot}, {"minari=", &minari},
                     {"metrics=", &metrics}, {"tensorboard=", &tb}, {0}};
    int rc = bd_parse_opts("replay", argc, argv, spec, &target, 1, 1);
    if (rc)
        return BD_OPTS_EXIT(rc);
    const char *outs[] = {csv, plot, minari, metrics, tb};
    const char *names[] = {"csv", "plot", "minari", "metrics", "tensorboard"};
    for (int k = 0; k < 5; k++)
        if (outs[k] && strcmp(outs[k], "-") == 0) { /* not stdout: the table is there */
            fprintf(stderr, "bodhi replay: --%s -: give a file (stdout holds the table; a file named '-' is "
                            "written as ./-)\n", names[k]);
            return 2;
        }
    /* HDF5 1.10 trusts some sizes a file states (a variable-length string's in its global
     * heap; Debian's LZ4 filter decodes a chunk without bounds): a damaged file can crash
     * the process that reads it. The report runs in a child that names each file as it
     * opens it, so that such a crash is said as that file's damage, exit 2, not a
     * segfault of bodhi replay. */
    enum { NOTE = 4096 };
    char *note = mmap(NULL, NOTE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    fflush(stdout);
    fflush(stderr);
    /* a caller that ignores SIGCHLD would have the child reaped unseen, its exit code lost */
    signal(SIGCHLD, SIG_DFL);
    const pid_t parent = getpid();
    pid_t pid = note != MAP_FAILED ? fork() : -1;
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* gone with bodhi replay */
        if (getppid() != parent) /* it went before the line above */
            _exit(2);
        bd_trace_note_files(note, NOTE);
        rc = replay_report(target, csv, verify, plot, minari, metrics, tb);
        fflush(stdout);
        fflush(stderr);
        _exit(rc);
    }
    if (pid < 0) { /* no child: the report here, unguarded */
        if (note != MAP_FAILED)
            munmap(note, NOTE);
        return replay_report(target, csv, verify, plot, minari, metrics, tb);
    }
    int st = 0;
    pid_t w;
    while ((w = waitpid(pid, &st, 0)) < 0 && errno == EINTR)
        ;
    if (w < 0) {
        fprintf(stderr, "bodhi replay: lost its report's process: %s\n", strerror(errno));
        munmap(note, NOTE);
        return 2;
    }
    rc = WIFEXITED(st) ? WEXITSTATUS(st) : 2;
    if (WIFSIGNALED(st)) {
        const int sig = WTERMSIG(st);
        if (sig == SIGSEGV || sig == SIGBUS || sig == SIGABRT || sig == SIGFPE || sig == SIGILL) {
            note[NOTE - 1] = '\0';
            if (note[0])
                fprintf(stderr, "bodhi replay: reading '%s' crashed the HDF5 library (%s): the file is damaged in a "
                                "way HDF5 does not check; bodhi cannot read it\n", note, strsignal(sig));
            else
                fprintf(stderr, "bodhi replay: its report crashed (%s) outside the HDF5 library: a fault of bodhi's "
                                "own; please report it with the command\n", strsignal(sig));
        } else { /* Ctrl-C, a closed pipe: end as it did */
            munmap(note, NOTE);
            signal(sig, SIG_DFL);
            raise(sig);
            rc = 128 + sig;
        }
    }
    munmap(note, NOTE);
    return rc;
}
