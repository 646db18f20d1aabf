/* dist.h: a group of learner processes (one per rank) over libtorch's c10d ProcessGroupGloo,
 * for data-parallel learning: parameters broadcast from rank 0, gradients and statistics
 * all-reduced. Part of torch/bd_torch.h's C API.
 *
 * Rendezvous: c10d's FileStore, a file in a folder only the run's user may enter (the run
 * directory, checked by the caller with bd_dir_private) on storage every rank sees. No
 * TCPStore: it authenticates nobody. Gloo's own data traffic (TCP between the ranks, to the
 * addresses they publish in that store) is neither authenticated nor encrypted: it needs a
 * private network (docs/architecture.md, "Many machines"). */
#ifndef BODHI_TORCH_DIST_H
#define BODHI_TORCH_DIST_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif
#pragma GCC visibility push(default)

typedef struct bdt_group bdt_group;

/* Joins group `name` of `world` processes as `rank` through the FileStore at store_path.
 * Gloo binds to `host` (an address or name of this machine; NULL: this machine's
 * hostname, loopback when it does not resolve). Every collective fails with BD_ETORCH
 * after timeout_s (a rank dead or hung); the join within timeout_s too (every store wait
 * of its two rendezvous, c10d's group's and the pairs' of the calling thread's own
 * all-reduces, polls until one deadline; a peer that dies between publishing its address
 * and connecting can still hold a pair's connect for its own timeout). */
/* A rank's word that it left before the group formed, which the caller keeps (bodhi's:
 * brain/ranks.h, files beside the store): 1 and why (at most n bytes) when there is one to
 * obey, else 0. */
typedef int (*bdt_left_fn)(char *why, size_t n);
int bdt_group_join(const char *store_path, const char *name, int rank, int world, const char *host,
                   double timeout_s, const char *meta, const volatile int *cancel, bdt_left_fn left,
                   double launched, bdt_group **out);
/* (bdt_group_join, continued) meta (NULL: none): what every rank's launch must agree on
 * (bodhi's: "run=<run.yml's SHA-256>"), compared with rank 0's, with the group's size,
 * before Gloo's rendezvous: a rank started otherwise fails every rank's join, naming the
 * difference. cancel (NULL: none): a nonzero *cancel ends the join at its next poll of the
 * store (a stop asked for). left (NULL: none): asked every 100 ms while the join waits; a
 * word fails the join with it at once (a rank that failed, or was stopped, before it
 * joined) rather than at its deadline. launched (wall-clock seconds; 0: unknown): when this
 * rank's launch began; a rank numbered at or past rank 0's size, which rank 0 never answers,
 * fails at once, naming both sizes, once rank 0 has begun to join after that (a size an
 * earlier launch's rank 0 left is only named at the deadline). Each launch's keys are its own (rank 0 answers every
 * rank's fresh draw with the group's id, and the rendezvous runs under it), so what an
 * earlier launch left in the same store file is never read; once every rank is past the
 * rendezvous rank 0 removes the file. */
/* This launch's id for the group (32 hex digits, drawn by rank 0 at the join and the same
 * on every rank; "" for NULL): traces of one launch carry it (memory, "group_id"). */
const char *bdt_group_id(const bdt_group *g);
void bdt_group_leave(bdt_group *g); /* NULL-safe */
int bdt_group_rank(const bdt_group *g);
int bdt_group_size(const bdt_group *g);
/* x (n floats) := the mean of every rank's x, the same bits on every rank. Up to 16 MiB on
 * the calling thread alone (Gloo's halving-doubling over pairs of the group's own,
 * synchronous: no hand-off to c10d's or Gloo's threads; in chunks of 192 KiB, which any
 * socket buffer takes), larger through c10d. */
int bdt_group_allreduce_mean(bdt_group *g, float *x, size_t n);
/* 1 when the group's all-reduces take the calling thread's own path (a group of more than
 * one, unless BODHI_GROUP_SLOW is set to anything but 0 on every rank, for comparisons). */
int bdt_group_fast(const bdt_group *g);
/* on: the waits of bdt_group_allreduce_mean's own path spin (poll the socket without
 * sleeping, still failing at the group's timeout) rather than sleep in the kernel; for a
 * learner with a core of its own (bodhi's brain, bound to its share: brain/ranks.h),
 * where the wakeup of a sleeping wait cost most of a small all-reduce: a 36.6 KB mean
 * after 2 ms of work took a median 124-131 us sleeping, 35-36 us spinning
 * (bodhi-allreducebench, 2 ranks on 2 cores). The other collectives, which can wait
 * through another rank's whole rollout, keep sleeping. Off at the join. */
void bdt_group_spin(bdt_group *g, int on);
/* x (n doubles) := the sum (op 0), max (op 1) or min (op 2) over every rank's x (the same
 * path as the mean's). */
int bdt_group_allreduce_f64(bdt_group *g, double *x, size_t n, int op);
/* x (n floats) := root's x. */
int bdt_group_broadcast(bdt_group *g, float *x, size_t n, int root);

#pragma GCC visibility pop
#ifdef __cplusplus
}
#endif
#endif
