/* gather.c: a round's batch from the muscles (see brain_impl.h): who may greet, each
 * rollout into the (T, N) batch, the columns no muscle filled, the episodes' final
 * observations. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <nng/nng.h>

#include "brain/brain_impl.h"
#include "common/proc.h"
#include "common/util.h"
#include "wire/addr.h"
#include "wire/tls.h"

/* Muscle k's HELLO in req, decoded into *h, checked: that it is who the plan says. A local
 * muscle is a process the conductor started (the kernel names the process at the other end
 * of an ipc connection); a remote one comes over TCP with the grant the conductor gave it
 * for this phase, slot and pid (wire/tls.h), so another holder of the run's credential
 * cannot greet in its place, nor with a grant the conductor took back (its muscle lost) or
 * one older than the slot's newest (a valid grant shows every older one of the slot was
 * given up: the conductor gives a slot only once its holder is lost). Its columns and
 * sizes are the plan's. BD_OK, or why not. */
static int bd_brain_hello_check(bd_brain *b, int k, const bd_request *req, bd_hello *h)
{
    int rc = bd_hello_decode(req->payload, (size_t)req->h.payload_len, h);
    int n;
    uint32_t w0;
    bd_agent_shard(b->ap, b->M, k, &n, &w0);
    const int peer = bd_pipe_peer_pid(req->pipe), remote = k >= b->plan.worker;
    if (rc == BD_OK && !remote && (peer <= 0 || h->pid != (uint32_t)peer || bd_proc_parent((pid_t)peer) != getppid()))
        return bd_seterr(BD_EPROTO, "a HELLO as local muscle %d from %s, not a muscle this run started", k,
                         peer > 0 ? "another process" : "a TCP connection");
    if (rc == BD_OK && remote && peer > 0)
        return bd_seterr(BD_EPROTO, "a HELLO as remote muscle %d over ipc", k);
    if (rc == BD_OK && remote
        && !bd_tls_grant_ok(b->tls, (uint32_t)b->plan.phase_index, (uint32_t)k, h->pid, h->epoch, h->grant))
        return bd_seterr(BD_EPROTO, "a HELLO as remote muscle %d (pid %u) without the conductor's grant for them", k,
                         h->pid);
    if (rc == BD_OK && remote && h->epoch > b->newest[k])
        b->newest[k] = h->epoch;
    if (rc == BD_OK && remote && (h->epoch <= b->revoked[k] || h->epoch < b->newest[k]))
        return bd_seterr(BD_EPROTO, "a HELLO as remote muscle %d with grant %u, which the conductor took back or a "
                         "newer one replaced", k, h->epoch);
    if (rc == BD_OK && (h->muscle != (uint32_t)k || h->worlds != (uint32_t)n || h->world0 != w0))
        return bd_seterr(BD_EPROTO, "HELLO from muscle %u says it holds columns [%u, +%u); muscle %d of %d "
                         "holds [%u, +%d)", h->muscle, h->world0, h->worlds, k, b->M, w0, n);
    if (rc == BD_OK && (h->obs_dim != (uint32_t)b->S || h->act_dim != (uint32_t)b->U))
        return bd_seterr(BD_EPROTO, "muscle %u sends %u sensors / %u actuators, agent has %d / %d", h->muscle,
                         h->obs_dim, h->act_dim, b->S, b->U);
    return rc;
}

int bd_brain_supersedes(void *ctx, int k, bd_request *req)
{
    bd_brain *b = ctx;
    bd_hello h;
    if (k < b->plan.worker || k >= b->M)
        return 0;
    if (bd_brain_hello_check(b, k, req, &h) != BD_OK) {
        fprintf(stderr, "bodhi brain %s: %s\n", b->ap->cfg->name, bd_lasterr());
        return 0;
    }
    /* a remote slot's newer grant (the conductor gave the slot on), or the same muscle again
     * on a new connection (its old one's end not seen yet) */
    return h.epoch > b->hello[k].epoch || (h.epoch == b->hello[k].epoch && h.pid == b->hello[k].pid);
}

/* A muscle greets: check that it is who the plan says, start its columns over if it
 * restarted, and answer with the current weights (with STOP once the phase has ended). */
int bd_brain_greet(void *ctx, int k, bd_request *req, int again)
{
    bd_brain *b = ctx;
    bd_hello h;
    int rc = bd_brain_hello_check(b, k, req, &h);
    nng_msg *m = NULL;
    if (rc == BD_OK)
        rc = bd_brain_weights(b, b->ended ? BD_WEIGHTS_STOP : 0, &m);
    if (rc == BD_OK && (rc = bd_round_reply(b->round, req, m)) != BD_OK)
        nng_msg_free(m);
    if (rc != BD_OK) {
        fprintf(stderr, "bodhi brain %s: %s\n", b->ap->cfg->name, bd_lasterr());
        return rc;
    }
    /* a new process (a restart) brings fresh worlds; the same one greeting again (its
     * answer or connection lost, its rollout dropped) kept its worlds going through the
     * rounds it missed */
    if (again)
        bd_brain_lost_rows(b, k, !(h.pid && h.pid == b->hello[k].pid && h.epoch == b->hello[k].epoch));
    b->hello[k] = h;
    return BD_OK;
}

void bd_brain_lost_rows(bd_brain *b, int k, int fresh)
{
    int n;
    uint32_t w0;
    bd_agent_shard(b->ap, b->M, k, &n, &w0);
    if (fresh) {
        bd_stats_restart(&b->stats, (int)w0, n);
        if (b->refused_row) /* a new process: its rollouts start a count of their own */
            b->refused_row[k] = 0;
    } else
        bd_stats_cut(&b->stats, (int)w0, n);
    if (b->learner && b->lops->restart) /* nor does the learner tie its worlds to their last steps */
        b->lops->restart(b->learner, (int)w0, n);
}

/* Copies muscle k's rollout into the (T, N) batch and marks its columns valid. BD_EINVAL
 * (nothing copied) when its data is not fit to learn from (bd_rollout_check); another
 * error when it does not fit the muscle's HELLO. */
int bd_brain_collect(bd_brain *b, int k, const bd_request *req)
{
    bd_rollout_hdr r;
    const uint8_t *p = req->payload;
    int rc = bd_rollout_decode(p, (size_t)req->h.payload_len, &r);
    if (rc != BD_OK)
        return rc;
    const bd_hello *hi = &b->hello[k];
    if (r.muscle != (uint32_t)k || r.N != hi->worlds || r.world0 != hi->world0 || r.T != (uint32_t)b->T
        || r.S != (uint32_t)b->S || r.U != (uint32_t)b->U)
        return bd_seterr(BD_EPROTO, "rollout from muscle %d has dims T=%u N=%u S=%u U=%u world0=%u "
                                    "that disagree with its HELLO / the agent",
                         k, r.T, r.N, r.S, r.U, r.world0);
    const uint64_t now = b->learner ? b->lops->version(b->learner) : 0;
    if (r.version > now) /* weights this brain never sent */
        return bd_seterr(BD_EINVAL, "muscle %d: a rollout of weights version %llu; the newest is %llu", k,
                         (unsigned long long)r.version, (unsigned long long)now);
    if (bd_rollout_check(p, (size_t)req->h.payload_len, &r, b->ap->continuous ? 0 : (uint32_t)b->ap->n_actions)
        != BD_OK) {
        char why[256];
        snprintf(why, sizeof why, "%s", bd_lasterr());
        return bd_seterr(BD_EINVAL, "muscle %d: %s", k, why);
    }
    size_t off[BD_RO_COUNT], size[BD_RO_COUNT];
    bd_rollout_layout(&r, off, size);
    size_t n = r.N, N = (size_t)b->N, w0 = r.world0;
    for (int t = 0; t < b->T; t++) {
        size_t src = (size_t)t * n, dst = (size_t)t * N + w0;
        memcpy(b->obs + dst * b->S, p + off[BD_RO_OBS] + 4 * src * b->S, 4 * n * b->S);
        memcpy(b->act + dst * b->U, p + off[BD_RO_ACTIONS] + 4 * src * b->U, 4 * n * b->U);
        memcpy(b->logp + dst, p + off[BD_RO_LOGP] + 4 * src, 4 * n);
        memcpy(b->val + dst, p + off[BD_RO_VALUES] + 4 * src, 4 * n);
        memcpy(b->rew + dst, p + off[BD_RO_REWARDS] + 4 * src, 4 * n);
        memcpy(b->fval + dst, p + off[BD_RO_FINAL_VALUES] + 4 * src, 4 * n);
        memcpy(b->term + dst, p + off[BD_RO_TERMINATED] + src, n);
        memcpy(b->trunc + dst, p + off[BD_RO_TRUNCATED] + src, n);
        for (size_t i = 0; i < n; i++)
            b->wver[dst + i] = r.version;
    }
    memcpy(b->lastv + w0, p + off[BD_RO_LAST_VALUES], 4 * n);
    /* the ended episodes' final observations, in (t, world) order */
    const uint8_t *fo = p + off[BD_RO_FINAL_OBS];
    const size_t S = (size_t)b->S;
    for (size_t t = 0; t < (size_t)b->T; t++)
        for (size_t i = 0; i < n; i++)
            if (p[off[BD_RO_TERMINATED] + t * n + i] | p[off[BD_RO_TRUNCATED] + t * n + i]) {
                memcpy(b->fobs + ((t * N + w0 + i) * S), fo, 4 * S);
                fo += 4 * S;
            }
    memset(b->valid + w0, 1, n);
    return BD_OK;
}

/* The final observations of the episodes bd_stats_add just finished, in its order, into
 * b->efin: each from the row and column it ended at in this round's batch (an episode
 * that lost rows, bd_stats_cut, ended there too but is not one of them). */
int bd_brain_final_rows(bd_brain *b)
{
    const size_t N = (size_t)b->N, S = (size_t)b->S;
    const int64_t first = b->stats.rows - b->T; /* this round's first row */
    for (int k = 0; k < b->stats.done_n; k++) {
        const bd_episode *e = &b->stats.done[k];
        const int64_t t = e->start_step + e->length - 1 - first;
        if (t < 0 || t >= b->T || e->world < 0 || (size_t)e->world >= N)
            return bd_seterr(BD_ESTATE, "brain: episode %d of column %d ended at row %lld, outside this round", k,
                             e->world, (long long)(e->start_step + e->length - 1));
        const size_t c = (size_t)t * N + (size_t)e->world;
        if (!(b->term[c] | b->trunc[c]))
            return bd_seterr(BD_ESTATE, "brain: episode %d of column %d ended at a row without its flag", k,
                             e->world);
        memcpy(b->efin + (size_t)k * S, b->fobs + c * S, sizeof(float) * S);
    }
    return BD_OK;
}

/* Columns no muscle filled this round: NaN data, no episode flags. */
void bd_brain_blank(bd_brain *b)
{
    const size_t N = (size_t)b->N;
    for (size_t i = 0; i < N; i++) {
        if (b->valid[i])
            continue;
        for (int t = 0; t < b->T; t++) {
            size_t c = (size_t)t * N + i;
            for (int s = 0; s < b->S; s++)
                b->obs[c * (size_t)b->S + (size_t)s] = NAN;
            for (int u = 0; u < b->U; u++)
                b->act[c * (size_t)b->U + (size_t)u] = NAN;
            b->logp[c] = b->val[c] = b->rew[c] = b->fval[c] = NAN;
            b->term[c] = b->trunc[c] = 0;
            b->wver[c] = 0;
        }
        b->lastv[i] = NAN;
    }
}

