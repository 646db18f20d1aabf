/* proc.c: child-process set-up (see proc.h). */
#include "common/proc.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "bodhi/bodhi.h"

volatile sig_atomic_t bd_term_requested = 0;

static void bd_on_term(int sig)
{
    (void)sig;
    bd_term_requested = 1;
}

static pid_t bd_parent = 0;

int bd_parent_gone(void)
{
    return bd_parent > 0 && getppid() != bd_parent;
}

int bd_child_init(pid_t parent, int catch_term, int deathsig)
{
    prctl(PR_SET_PDEATHSIG, deathsig);
    bd_parent = parent;
    if (parent > 0 && getppid() != parent)
        return bd_seterr(BD_ECLOSED, "parent %d is gone", (int)parent);
    signal(SIGINT, SIG_IGN);
    if (catch_term) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = bd_on_term;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGTERM, &sa, NULL);
    }
    return BD_OK;
}

pid_t bd_proc_parent(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = pid > 0 ? fopen(path, "re") : NULL;
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* "PID (COMM) STATE PPID ...": COMM may hold spaces and parentheses, so after the last ')' */
    const char *close = strrchr(buf, ')');
    char state;
    int ppid;
    if (!close || sscanf(close + 1, " %c %d", &state, &ppid) != 2 || ppid <= 0)
        return 0;
    return (pid_t)ppid;
}
