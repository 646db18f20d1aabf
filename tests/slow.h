/* slow.h: how many times slower the process tests run under AddressSanitizer (about ten
 * times: `make asan`). Their timeouts and their waits for what a run writes scale by it,
 * so that a sanitized build is given the time it needs; a plain build is unchanged. */
#ifndef BODHI_TESTS_SLOW_H
#define BODHI_TESTS_SLOW_H

#if defined(__SANITIZE_ADDRESS__) /* gcc */
#define BD_TEST_SLOW 10
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) /* clang */
#define BD_TEST_SLOW 10
#endif
#endif
#ifndef BD_TEST_SLOW
#define BD_TEST_SLOW 1
#endif

#include <stdio.h>
#include <stdlib.h>

/* NNG 1.5.2 never frees a connection that its listener stopped handing over in mid-
 * negotiation (nanomsg/nng#1518, which the tests that call this provoke on purpose, and
 * which bodhi's listener guard works around by listening again): under LeakSanitizer
 * every process that met such a connection reports NNG's and mbedTLS's objects as leaked
 * at exit and fails. Those tests turn leak checks off for the processes they start; every
 * other test keeps them, and AddressSanitizer's other checks stay on. */
static inline void bd_test_nng_stuck_leaks(void)
{
    if (BD_TEST_SLOW == 1)
        return;
    const char *o = getenv("ASAN_OPTIONS");
    char buf[1024];
    snprintf(buf, sizeof buf, "%s%sdetect_leaks=0", o ? o : "", o && *o ? ":" : "");
    setenv("ASAN_OPTIONS", buf, 1);
}

#endif
