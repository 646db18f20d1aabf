/* proc.c: child-process set-up (see proc.h). */
#include "common/proc.h"

#include <limits.h>
#include <malloc.h>
#include <signal.h>
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

void bd_alloc_policy(void)
{
    /* Setting either also turns off glibc's moving mmap threshold, the cause of the bimodal
     * run times: a freed mmapped block raises it, so whether an update's large buffers
     * live in the heap or in fresh mappings depended on the order of the first frees. */
    mallopt(M_MMAP_THRESHOLD, 1 << 30);
    mallopt(M_TRIM_THRESHOLD, INT_MAX);
}

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
