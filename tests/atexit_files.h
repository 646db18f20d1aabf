/* atexit_files.h: files a test writes for itself (a run file, a key), removed when its
 * process exits. Criterion runs each test in a process of its own, which returns from main
 * whether the test passed or failed; a failed run's folder keeps its run file as run.yml.
 * A process killed by a timeout keeps them (the suite's sweep, tests/tmp_sweep.sh, takes
 * them then). */
#ifndef BODHI_TESTS_ATEXIT_FILES_H
#define BODHI_TESTS_ATEXIT_FILES_H

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *bd_test_files[32];
static int bd_test_files_n;

static inline void bd_test_files_remove(void)
{
    for (int k = 0; k < bd_test_files_n; k++)
        unlink(bd_test_files[k]);
}

/* path is removed when this process exits (the first 32 a process names). */
static inline void bd_test_remove_at_exit(const char *path)
{
    if (bd_test_files_n == 0)
        atexit(bd_test_files_remove);
    if (bd_test_files_n < (int)(sizeof bd_test_files / sizeof bd_test_files[0]))
        bd_test_files[bd_test_files_n++] = strdup(path); /* the process's to the end */
}

#endif
