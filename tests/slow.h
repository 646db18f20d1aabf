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

#endif
