/* stats.c: episode bookkeeping (see stats.h). */
#include "brain/stats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int bd_stats_init(bd_stats *s, int n, int window)
{
    memset(s, 0, sizeof *s);
    s->n = n;
    s->window = window < 1 ? 1 : window > BD_STATS_WINDOW_MAX ? BD_STATS_WINDOW_MAX : window;
    s->max_return = -INFINITY;
    s->ret = calloc((size_t)n, sizeof *s->ret);
    s->len = calloc((size_t)n, sizeof *s->len);
    s->start = calloc((size_t)n, sizeof *s->start);
    s->cut = calloc((size_t)n, sizeof *s->cut);
    if (!s->ret || !s->len || !s->start || !s->cut) {
        bd_stats_fini(s);
        return bd_seterr(BD_ENOMEM, "stats: out of memory for %d columns", n);
    }
    return BD_OK;
}

void bd_stats_fini(bd_stats *s)
{
    free(s->ret);
    free(s->len);
    free(s->start);
    free(s->cut);
    free(s->done);
    free(s->quota_left);
    memset(s, 0, sizeof *s);
}

int bd_stats_set_quota(bd_stats *s, long long episodes, int members)
{
    if (episodes < 1 || members < 1 || s->n % members)
        return bd_seterr(BD_EINVAL, "stats: a quota of %lld episodes over %d columns of %d members", episodes, s->n,
                         members);
    if (!s->quota_left && !(s->quota_left = malloc((size_t)s->n * sizeof *s->quota_left)))
        return bd_seterr(BD_ENOMEM, "stats: out of memory for %d columns", s->n);
    /* what is left of the quota: all of it at the start; after a cap that changed
     * mid-phase (`bodhi set`), what the episodes counted so far leave, shared afresh */
    const long long left = episodes > (long long)s->episodes ? episodes - (long long)s->episodes : 0;
    for (int i = 0; i < s->n; i++)
        s->quota_left[i] = bd_episode_share(left, s->n, members, i);
    return BD_OK;
}

static int bd_stats_push_done(bd_stats *s, const bd_episode *e)
{
    if (s->done_n == s->done_cap) {
        int cap = s->done_cap ? 2 * s->done_cap : 64;
        bd_episode *d = realloc(s->done, (size_t)cap * sizeof *d);
        if (!d)
            return bd_seterr(BD_ENOMEM, "stats: out of memory");
        s->done = d;
        s->done_cap = cap;
    }
    s->done[s->done_n++] = *e;
    return BD_OK;
}

void bd_stats_restart(bd_stats *s, int c0, int n)
{
    for (int i = c0 < 0 ? 0 : c0; i < c0 + n && i < s->n; i++) {
        s->ret[i] = 0;
        s->len[i] = 0;
        s->start[i] = -1; /* set at the column's next valid row */
        s->cut[i] = 0;    /* fresh worlds: nothing lost of their episodes */
    }
}

void bd_stats_cut(bd_stats *s, int c0, int n)
{
    for (int i = c0 < 0 ? 0 : c0; i < c0 + n && i < s->n; i++)
        s->cut[i] = 1;
}

int bd_stats_add(bd_stats *s, int T, const float *rewards, const uint8_t *terminated,
                 const uint8_t *truncated, const uint8_t *valid)
{
    s->done_n = 0;
    for (int t = 0; t < T; t++) {
        const size_t row = (size_t)t * (size_t)s->n;
        for (int i = 0; i < s->n; i++) {
            if (valid && !valid[i])
                continue;
            if (s->start[i] < 0)
                s->start[i] = s->rows + t;
            s->ret[i] += rewards[row + i];
            s->len[i]++;
            if (!terminated[row + i] && !truncated[row + i])
                continue;
            if (s->cut[i]) { /* it lost rows: not an episode to count; the next one is */
                s->cut[i] = 0;
                s->ret[i] = 0;
                s->len[i] = 0;
                s->start[i] = s->rows + t + 1;
                continue;
            }
            bd_episode e = {.world = i, .start_step = s->start[i], .length = s->len[i],
                            .ret = (float)s->ret[i], .terminated = terminated[row + i],
                            .truncated = truncated[row + i]};
            int rc = bd_stats_push_done(s, &e);
            if (rc != BD_OK)
                return rc;
            int counts = !s->quota_left || s->quota_left[i] > 0;
            if (counts && s->quota_left)
                s->quota_left[i]--;
            if (counts) {
                s->episodes++;
                if (s->ret[i] > s->max_return)
                    s->max_return = s->ret[i];
                s->recent[s->recent_at] = s->ret[i];
                s->recent_at = (s->recent_at + 1) % s->window;
                if (s->recent_n < s->window)
                    s->recent_n++;
            }
            s->ret[i] = 0;
            s->len[i] = 0;
            s->start[i] = s->rows + t + 1;
        }
    }
    s->rows += T;
    return BD_OK;
}

double bd_stats_mean_recent(const bd_stats *s, int window)
{
    int k = window < s->recent_n ? window : s->recent_n;
    if (k <= 0)
        return 0;
    double sum = 0;
    for (int j = 1; j <= k; j++)
        sum += s->recent[(s->recent_at - j + s->window) % s->window];
    return sum / k;
}
