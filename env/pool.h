/* pool.h: a fixed set of worker threads that run one function over contiguous ranges of
 * worlds, for the CPU env loops. The caller's thread takes the first range, so a pool of
 * one thread runs everything inline. Ranges start at multiples of 64 worlds (whole
 * cache lines for every buffer). Not reentrant: one bd_pool_run at a time. */
#ifndef BODHI_ENV_POOL_H
#define BODHI_ENV_POOL_H

typedef struct bd_pool bd_pool;
typedef void (*bd_pool_fn)(void *ctx, int i0, int i1);

/* threads >= 1 (threads - 1 workers are started). */
int bd_pool_create(int threads, bd_pool **out);
void bd_pool_destroy(bd_pool *p); /* NULL-safe */
int bd_pool_threads(const bd_pool *p);

/* Runs fn over [0, n) split into ranges, one per thread; returns when all are done. */
void bd_pool_run(bd_pool *p, bd_pool_fn fn, void *ctx, int n);

#endif
