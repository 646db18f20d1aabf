/* addr.h: where a run's sockets live. The conductor listens for events and status
 * queries, each brain for its muscles; every process derives the same addresses from the
 * run directory. Each returns a heap string (the caller frees it), NULL on ENOMEM. */
#ifndef BODHI_WIRE_ADDR_H
#define BODHI_WIRE_ADDR_H

char *bd_url_brain(const char *run_dir, const char *agent);
char *bd_url_events(const char *run_dir);
char *bd_url_control(const char *run_dir);

#endif
