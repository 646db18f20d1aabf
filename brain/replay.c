/* replay.c: the replay buffer of the off-policy brains (see replay.h). */
#include "brain/replay.h"

#include <errno.h>
#include <limits.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rng.h"
#include "common/util.h"
#include "config/diag.h"
#include "wire/wire.h"

/* per row, in memory and in a saved file alike: obs and next obs (2 S floats), act (U), rew,
 * version (8), term (1) */
static double bd_replay_row_bytes(double S, double U)
{
    return 4.0 * (2.0 * S + U + 1) + 8 + 1;
}

double bd_replay_bytes(int64_t capacity, int S, int U, int N)
{
    return (double)capacity * bd_replay_row_bytes(S, U) + (double)N * (4.0 * (S + U + 1) + 9);
}

int bd_replay_init(bd_replay *r, int64_t capacity, int S, int U, int N)
{
    memset(r, 0, sizeof *r);
    if (capacity < 1 || S < 1 || U < 1 || N < 0)
        return bd_seterr(BD_EINVAL, "replay: capacity %lld, %d sensors, %d actuators, %d columns",
                         (long long)capacity, S, U, N);
    r->capacity = capacity;
    r->S = S;
    r->U = U;
    r->N = N;
    const size_t c = (size_t)capacity, n = (size_t)(N > 0 ? N : 1);
    r->obs = malloc(sizeof(float) * c * (size_t)S);
    r->next_obs = malloc(sizeof(float) * c * (size_t)S);
    r->act = malloc(sizeof(float) * c * (size_t)U);
    r->rew = malloc(sizeof(float) * c);
    r->term = malloc(c);
    r->version = malloc(sizeof(uint64_t) * c);
    r->pending = calloc(n, 1);
    r->p_obs = malloc(sizeof(float) * n * (size_t)S);
    r->p_act = malloc(sizeof(float) * n * (size_t)U);
    r->p_rew = malloc(sizeof(float) * n);
    r->p_version = malloc(sizeof(uint64_t) * n);
    if (!r->obs || !r->next_obs || !r->act || !r->rew || !r->term || !r->version || !r->pending || !r->p_obs
        || !r->p_act || !r->p_rew || !r->p_version) {
        bd_replay_fini(r);
        return bd_seterr(BD_ENOMEM, "replay: out of memory for %lld transitions of %d sensors (%.3g GiB): the "
                         "brain's buffer_size (default 1000000) asks for more than this process may have",
                         (long long)capacity, S, bd_replay_bytes(capacity, S, U, N) / (1 << 30));
    }
    return BD_OK;
}

void bd_replay_fini(bd_replay *r)
{
    if (!r)
        return;
    free(r->obs);
    free(r->next_obs);
    free(r->act);
    free(r->rew);
    free(r->term);
    free(r->version);
    free(r->pending);
    free(r->p_obs);
    free(r->p_act);
    free(r->p_rew);
    free(r->p_version);
    memset(r, 0, sizeof *r);
}

void bd_replay_add(bd_replay *r, const float *obs, const float *act, float rew, const float *next_obs, int term,
                   uint64_t version)
{
    const int64_t k = bd_replay_row(r->added, r->capacity);
    const size_t S = (size_t)r->S, U = (size_t)r->U;
    memcpy(r->obs + (size_t)k * S, obs, sizeof(float) * S);
    memcpy(r->next_obs + (size_t)k * S, next_obs, sizeof(float) * S);
    memcpy(r->act + (size_t)k * U, act, sizeof(float) * U);
    r->rew[k] = rew;
    r->term[k] = term ? 1 : 0;
    r->version[k] = version;
    r->added++;
    if (r->size < r->capacity)
        r->size++;
}

long long bd_replay_collect(bd_replay *r, const bd_batch *b, uint64_t version)
{
    const size_t N = (size_t)b->N, S = (size_t)b->S, U = (size_t)b->U;
    long long added = 0;
    for (size_t i = 0; i < N && (int)i < r->N; i++) {
        if (b->valid && !b->valid[i]) {
            r->pending[i] = 0; /* its worlds start over: the next observation is lost */
            continue;
        }
        if (r->pending[i]) { /* last round's last step: its next observation is this round's first */
            bd_replay_add(r, r->p_obs + i * S, r->p_act + i * U, r->p_rew[i], b->obs + i * S, 0, r->p_version[i]);
            r->pending[i] = 0;
            added++;
        }
        for (size_t t = 0; t < (size_t)b->T; t++) {
            const size_t c = t * N + i;
            const float *o = b->obs + c * S, *a = b->act + c * U;
            const uint64_t v = b->wver ? b->wver[c] : version;
            if (b->term[c] || b->trunc[c]) {
                bd_replay_add(r, o, a, b->rew[c], b->fobs + c * S, b->term[c], v);
                added++;
            } else if (t + 1 < (size_t)b->T) {
                bd_replay_add(r, o, a, b->rew[c], b->obs + (c + N) * S, 0, v);
                added++;
            } else {
                memcpy(r->p_obs + i * S, o, sizeof(float) * S);
                memcpy(r->p_act + i * U, a, sizeof(float) * U);
                r->p_rew[i] = b->rew[c];
                r->p_version[i] = v;
                r->pending[i] = 1;
            }
        }
    }
    return added;
}

void bd_replay_restart(bd_replay *r, int c0, int n)
{
    for (int i = c0 < 0 ? 0 : c0; r->pending && i < c0 + n && i < r->N; i++)
        r->pending[i] = 0;
}

void bd_replay_sample(uint64_t seed, uint64_t draw, int64_t size, int n, int64_t *idx)
{
    /* two 64-bit draws per Philox block: counter (draw, k / 2), the draw's high word as world */
    for (int k = 0; k < n; k += 2) {
        uint32_t w[4];
        bd_rng_u32x4(seed, (uint32_t)(draw >> 32), ((draw & 0xffffffffull) << 32) | (uint64_t)(k / 2),
                     BD_STREAM_REPLAY, w);
        idx[k] = bd_replay_pick(((uint64_t)w[0] << 32) | w[1], (uint64_t)size);
        if (k + 1 < n)
            idx[k + 1] = bd_replay_pick(((uint64_t)w[2] << 32) | w[3], (uint64_t)size);
    }
}

void bd_replay_gather(const bd_replay *r, const int64_t *idx, int n, float *obs, float *act, float *rew,
                      float *next_obs, float *term, uint64_t *version)
{
    const size_t S = (size_t)r->S, U = (size_t)r->U;
    for (int j = 0; j < n; j++) {
        const size_t k = (size_t)idx[j];
        memcpy(obs + (size_t)j * S, r->obs + k * S, sizeof(float) * S);
        memcpy(next_obs + (size_t)j * S, r->next_obs + k * S, sizeof(float) * S);
        memcpy(act + (size_t)j * U, r->act + k * U, sizeof(float) * U);
        rew[j] = r->rew[k];
        term[j] = r->term[k] ? 1.0f : 0.0f;
        if (version)
            version[j] = r->version[k];
    }
}

/* ---- save and load ---- */

#define BD_REPLAY_MAGIC "BDRPLY01"

static uint64_t bd_fnv1a(const unsigned char *b, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* header: magic (8), S, U (u32 each), rows (u64); then per row, oldest first: obs (S),
 * act (U), rew, next_obs (S) as floats, version (u64), term (u8); then FNV-1a 64 of it all */
/* The buffer's file beside a checkpoint. */
static char *bd_replay_beside(const char *checkpoint)
{
    return bd_strfmt("%s.replay", checkpoint);
}

int bd_replay_save(const bd_replay *r, const char *path)
{
    const size_t S = (size_t)r->S, U = (size_t)r->U, row = (size_t)bd_replay_row_bytes(r->S, r->U);
    const size_t n = (size_t)r->size, bytes = 24 + n * row + 8;
    unsigned char *buf = malloc(bytes), *p = buf;
    if (!buf)
        return bd_seterr(BD_ENOMEM, "replay: out of memory to save %zu transitions", n);
    memcpy(p, BD_REPLAY_MAGIC, 8);
    uint32_t su[2] = {(uint32_t)r->S, (uint32_t)r->U};
    uint64_t rows = n;
    memcpy(p + 8, su, 8);
    memcpy(p + 16, &rows, 8);
    p += 24;
    const uint64_t first = r->added - n;
    for (size_t j = 0; j < n; j++) {
        const size_t k = (size_t)bd_replay_row(first + j, r->capacity);
        memcpy(p, r->obs + k * S, 4 * S), p += 4 * S;
        memcpy(p, r->act + k * U, 4 * U), p += 4 * U;
        memcpy(p, &r->rew[k], 4), p += 4;
        memcpy(p, r->next_obs + k * S, 4 * S), p += 4 * S;
        memcpy(p, &r->version[k], 8), p += 8;
        *p++ = r->term[k];
    }
    uint64_t h = bd_fnv1a(buf, (size_t)(p - buf));
    memcpy(p, &h, 8);
    int rc = bd_write_file(path, buf, bytes);
    free(buf);
    return rc;
}

int bd_replay_load(bd_replay *r, const char *path)
{
    char *buf = NULL;
    size_t len = 0;
    int rc = bd_read_file(path, &buf, &len);
    if (rc != BD_OK)
        return rc;
    const unsigned char *p = (const unsigned char *)buf;
    const size_t S = (size_t)r->S, U = (size_t)r->U, row = (size_t)bd_replay_row_bytes(r->S, r->U);
    uint32_t su[2] = {0, 0};
    uint64_t rows = 0, h = 0;
    if (len >= 32) {
        memcpy(su, p + 8, 8);
        memcpy(&rows, p + 16, 8);
        memcpy(&h, p + len - 8, 8);
    }
    if (len < 32 || memcmp(p, BD_REPLAY_MAGIC, 8) != 0)
        rc = bd_seterr(BD_EINVAL, "%s: not a replay buffer file", path);
    else if (su[0] != (uint32_t)r->S || su[1] != (uint32_t)r->U)
        rc = bd_seterr(BD_EINVAL, "%s: a buffer of %u sensors and %u actuators for one of %d and %d", path, su[0],
                       su[1], r->S, r->U);
    else if (rows > (len - 32) / row || 32 + rows * row != len || bd_fnv1a(p, len - 8) != h)
        rc = bd_seterr(BD_EINVAL, "%s: damaged (its size or checksum does not match)", path);
    if (rc == BD_OK) {
        r->size = 0;
        r->added = 0;
        const uint64_t skip = rows > (uint64_t)r->capacity ? rows - (uint64_t)r->capacity : 0;
        float *o = malloc(4 * S), *a = malloc(4 * U), *no = malloc(4 * S);
        if (!o || !a || !no)
            rc = bd_seterr(BD_ENOMEM, "out of memory");
        p += 24 + skip * row;
        for (uint64_t j = skip; rc == BD_OK && j < rows; j++) {
            float rew;
            uint64_t v;
            memcpy(o, p, 4 * S), p += 4 * S;
            memcpy(a, p, 4 * U), p += 4 * U;
            memcpy(&rew, p, 4), p += 4;
            memcpy(no, p, 4 * S), p += 4 * S;
            memcpy(&v, p, 8), p += 8;
            bd_replay_add(r, o, a, rew, no, *p++, v);
        }
        free(o);
        free(a);
        free(no);
    }
    free(buf);
    return rc;
}

int bd_replay_save_beside(const bd_replay *r, const char *checkpoint)
{
    char *path = bd_replay_beside(checkpoint);
    int rc = path ? bd_replay_save(r, path) : bd_seterr(BD_ENOMEM, "out of memory");
    free(path);
    return rc;
}

int bd_replay_resume(bd_replay *r, const char *checkpoint)
{
    char *path = bd_replay_beside(checkpoint);
    if (!path)
        return bd_seterr(BD_ENOMEM, "out of memory");
    int rc = BD_OK;
    if (bd_exists(path))
        rc = bd_replay_load(r, path);
    else /* not silent: a user who saved one expects it back */
        fprintf(stderr, "bodhi brain: no replay buffer beside %s (save_buffer: true saves one): the buffer starts "
                        "empty\n", checkpoint);
    free(path);
    return rc;
}

int bd_replay_sizes_check(const bd_node *params, long long learning_starts, long long batch_size,
                          long long capacity, bd_diags *d)
{
    char w[256];
    int rc = BD_OK;
    if (batch_size > capacity) { /* a batch of more than the buffer can ever hold: a mistake */
        const bd_node *n = bd_node_get(params, "batch_size");
        rc = bd_diag(d, bd_seterr(BD_EINVAL, "%s: batch_size %lld is more than buffer_size %lld",
                                  bd_node_where(n ? n : params, w, sizeof w), batch_size, capacity));
    }
    if (learning_starts > capacity) {
        /* the buffer never holds more than its capacity, so every round would stay at 0
         * gradient steps */
        const bd_node *n = bd_node_get(params, "learning_starts");
        int src = bd_diag(d, bd_seterr(BD_EINVAL, "%s: learning_starts %lld is more than the buffer_size %lld: "
                                       "learning would never start", bd_node_where(n ? n : params, w, sizeof w),
                                       learning_starts, capacity));
        rc = rc ? rc : src;
    }
    return rc;
}

double bd_replay_brain_bytes(const bd_agent_plan *ap, long long capacity, long long T)
{
    return bd_replay_bytes(capacity, ap->nsens, ap->nact, (int)(ap->columns > 0 ? ap->columns : 0))
           + bd_brain_batch_bytes(ap, T, 0);
}

int bd_replay_check(const bd_node *params, const bd_phase_plan *p, const bd_agent_plan *ap, long long T,
                    long long capacity, bd_diags *d)
{
    char w[256];
    if (ap->columns <= 0 || p->muscles < 1)
        return BD_OK;
    /* the rollouts and the round's batch as for PPO (no minibatches, no epochs) */
    int rc = bd_brain_batch_check(params, p, ap, T, 0, 0, d);
    const bd_node *bn = bd_node_get(params, "buffer_size");
    bd_node_where(bn ? bn : params, w, sizeof w);
    double need = bd_replay_bytes(capacity, ap->nsens, ap->nact, (int)ap->columns);
    double have = bd_phys_bytes();
    if (rc == BD_OK && have > 0 && need > 0.8 * have)
        rc = bd_diag(d, bd_seterr(BD_EINVAL, "%s: buffer_size %lld transitions of %d sensors need about %.3g GiB "
                                  "in the brain; this machine has %.3g GiB (a smaller buffer_size)",
                                  w, capacity, ap->nsens, need / (1 << 30), have / (1 << 30)));
    return rc;
}

int bd_replay_load_check(const bd_agent_plan *ap, bd_diags *d)
{
    if (!ap->load_run || !ap->load_phase || !ap->load_agent)
        return BD_OK; /* none, or this run's own (it does not exist yet) */
    char *ckpt = bd_strfmt("%s/checkpoints/%s/%s.pt", ap->load_run, ap->load_phase, ap->load_agent);
    char *path = ckpt ? bd_replay_beside(ckpt) : NULL;
    free(ckpt);
    if (!path)
        return bd_seterr(BD_ENOMEM, "out of memory");
    char w[256];
    const bd_node *ld = bd_node_get(ap->cfg->node, "load");
    bd_node_where(ld ? ld : ap->cfg->node, w, sizeof w);
    struct stat st;
    FILE *f = stat(path, &st) == 0 ? fopen(path, "rb") : NULL;
    int rc = BD_OK;
    if (f) {
        unsigned char h[24];
        uint32_t su[2];
        uint64_t rows;
        const size_t got = fread(h, 1, sizeof h, f);
        memcpy(su, h + 8, 8);
        memcpy(&rows, h + 16, 8);
        const double row = bd_replay_row_bytes(su[0], su[1]);
        if (got < sizeof h || memcmp(h, BD_REPLAY_MAGIC, 8) != 0)
            rc = bd_seterr(BD_EINVAL, "%s: load: %s is not a replay buffer file", w, path);
        else if (su[0] != (uint32_t)ap->nsens || su[1] != (uint32_t)ap->nact)
            rc = bd_seterr(BD_EINVAL, "%s: load: %s holds transitions of %u sensors and %u actuators; agent '%s' has "
                           "%d and %d", w, path, su[0], su[1], ap->cfg->name, ap->nsens, ap->nact);
        else if (32.0 + (double)rows * row != (double)st.st_size)
            rc = bd_seterr(BD_EINVAL, "%s: load: %s is damaged: %lld bytes where its header's %llu transitions take "
                           "%.0f (cut short?); remove it to start with an empty buffer", w, path,
                           (long long)st.st_size, (unsigned long long)rows, 32.0 + (double)rows * row);
        fclose(f);
    } else if (errno != ENOENT) {
        rc = bd_seterr(BD_EIO, "%s: load: %s: %s", w, path, strerror(errno));
    }
    free(path);
    return rc == BD_OK ? BD_OK : bd_diag(d, rc);
}
