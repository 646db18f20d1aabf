/* stats.h: episode bookkeeping for one agent over N world columns: running return and
 * length per column, finished episodes, and the last-100 window the objective_average
 * condition and summary.json use.
 *
 * With a quota of E episodes (phase_config.episodes), world i counts only its first
 * (E + i) / N episodes, as Stable-Baselines3's evaluate_policy splits episodes over its
 * environments: stopping at the first E episodes over all worlds would favour short
 * episodes. (For agents of a group, i orders the columns member-major: see below.) Episodes past a world's share are still reported in `done` (the trace keeps
 * every step), but not counted in episodes, the window or max_return. */
#ifndef BODHI_BRAIN_STATS_H
#define BODHI_BRAIN_STATS_H

#include <stdint.h>

#include "memory/memory.h"

#define BD_STATS_WINDOW_MAX 4096

typedef struct {
    int n;                 /* columns */
    double *ret;           /* (N) return so far of each column's running episode */
    int32_t *len;          /* (N) its length */
    int64_t *start;        /* (N) its first row */
    int64_t rows;          /* rows seen */
    int64_t episodes;      /* finished episodes */
    double max_return;     /* over all finished episodes (-inf if none) */
    int window;            /* size of the recent-returns ring (<= BD_STATS_WINDOW_MAX) */
    double recent[BD_STATS_WINDOW_MAX];
    int recent_n, recent_at;
    bd_episode *done;      /* episodes finished by the last bd_stats_add */
    int done_n, done_cap;
    int64_t *quota_left;   /* (N) episodes each column may still count, or NULL (no quota) */
    uint8_t *cut;          /* (N) 1: its running episode lost rows (bd_stats_cut): not counted */
} bd_stats;

int bd_stats_init(bd_stats *s, int n, int window);
void bd_stats_fini(bd_stats *s);

/* Counts at most `episodes` (>= 1) episodes from now on, split over the columns as above;
 * for an agent of a group (members columns per world, world-major) the shares go round the
 * worlds first, so a small quota is not one world's members. */
int bd_stats_set_quota(bd_stats *s, long long episodes, int members);
/* (Called again mid-phase, when the cap changed, the episodes counted so far stay counted
 * and the rest of the new cap is shared over the worlds as above; a cap already reached
 * leaves every world's share at 0.) */

/* Adds T rows: rewards/terminated/truncated are (T, N); valid (N, may be NULL: all) says
 * which columns hold data (a muscle that died leaves its columns empty for a round).
 * Finished episodes land in s->done (replaced on each call). */
int bd_stats_add(bd_stats *s, int T, const float *rewards, const uint8_t *terminated,
                 const uint8_t *truncated, const uint8_t *valid);

/* Columns [c0, c0 + n) start over (their muscle restarted and reset its worlds): their
 * running episodes are dropped, and the next episode starts at their next valid row. */
void bd_stats_restart(bd_stats *s, int c0, int n);

/* Columns [c0, c0 + n) lost rows of their running episodes (a rollout refused while their
 * worlds went on): those episodes are not counted when they end (their return and length
 * would miss the lost steps), and each column's next episode counts again. */
void bd_stats_cut(bd_stats *s, int c0, int n);

/* Mean of the last `window` finished returns (of all if fewer); 0 if none. */
double bd_stats_mean_recent(const bd_stats *s, int window);

#endif
