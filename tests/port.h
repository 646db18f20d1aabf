/* port.h: a TCP port on loopback for a test's run to listen on (--listen, MASTER_PORT).
 * Below the kernel's range of ephemeral ports, so that no outgoing connection of any
 * process (a rank's Gloo pair, a muscle's dial) takes it as its own port between the
 * choice and the run's bind; drawn at random, so that tests running side by side (whose
 * pids are neighbours) do not choose the same one; and free when chosen. */
#ifndef BODHI_TESTS_PORT_H
#define BODHI_TESTS_PORT_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static inline int bd_test_port(void)
{
    int low = 32768, high = 60999;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (f) {
        if (fscanf(f, "%d %d", &low, &high) != 2)
            low = 32768;
        fclose(f);
    }
    int first = 10000, last = low - 1;
    if (last - first < 1000) { /* a wide ephemeral range: the ports above it */
        first = high + 1;
        last = 65535;
    }
    if (last - first < 1000) { /* nothing much outside it: any */
        first = 10000;
        last = 65535;
    }
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    unsigned seed = (unsigned)getpid() * 2654435761u ^ (unsigned)ts.tv_nsec;
    for (int tries = 0; tries < 1000; tries++) {
        const int port = first + (int)(rand_r(&seed) % (unsigned)(last - first + 1));
        int s = socket(AF_INET, SOCK_STREAM, 0);
        if (s < 0) {
            perror("port.h: socket");
            abort();
        }
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                                .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        const int free_now = bind(s, (struct sockaddr *)&a, sizeof a) == 0;
        close(s);
        if (free_now)
            return port;
    }
    fprintf(stderr, "port.h: no free port in %d-%d on loopback after 1000 draws\n", first, last);
    abort();
}

#endif
