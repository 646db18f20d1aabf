/* brain_impl.h: the brain process's state (brain.c), shared with the file that gathers
 * each round's batch from the muscles (gather.c). Private to brain/. */
#ifndef BODHI_BRAIN_BRAIN_IMPL_H
#define BODHI_BRAIN_BRAIN_IMPL_H

#include <pthread.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "brain/learner.h"
#include "brain/stats.h"
#include "brain/steer.h"
#include "config/plan.h"
#include "memory/memory.h"
#include "brain/ranks.h"
#include "wire/events.h"
#include "wire/round.h"
#include "wire/tls.h"
#include "wire/wire.h"

/* A muscle whose rollouts are refused (bd_rollout_check: a NaN or infinite observation or
 * reward, a flag other than 0 or 1) this many rounds in a row fails the phase: its env
 * gives data no learner can take, and a phase whose every rollout is refused would never
 * count a step toward its caps. */
#define BD_BRAIN_REFUSED_MAX 10

typedef struct {
    /* config */
    const char *run_dir;
    const char *run_digest;   /* run.yml's SHA-256 from the conductor (NULL: none) */
    char *sockdir;
    bd_runfile *rf;
    bd_phase_plan plan;
    bd_agent_plan *ap;
    const bd_learner_ops *lops; /* its brain kind's learner (brain/learner.h) */
    void *learner;
    int train;                /* learn in this phase */
    /* sockets */
    bd_round *round;          /* the M muscles */
    int M;
    bd_events *ev;
    /* muscles, by id */
    bd_hello *hello;          /* (M) what each said when it last greeted */
    /* the round's batch (T, N, ...) over all muscles */
    int T, N, S, U;
    float *obs, *act, *logp, *val, *rew, *fval, *lastv;
    uint8_t *term, *trunc, *valid;
    float *fobs;              /* (T, N, S) final observations, where an episode ended */
    uint64_t *wver;           /* (T, N) the weights version each action came from (the rollout's) */
    float *efin;              /* (<= T N, S) those of the round's finished episodes, in order */
    /* recording: every K-th env step of the first Nr worlds (record in the run file),
     * which the trace writer keeps of the batches it is given */
    int rec_every, rec_nr;
    long long round_no;
    int port;                 /* the TCP port muscles on other machines dial (0: none) */
    bd_tls *tls;              /* the run's server credential for that port */
    bd_stats stats;
    /* several ranks, once joined: the group's episode statistics of the last round (every
     * rank's last `window` returns together; brain.c bd_brain_group_stats) */
    int group_stats;              /* 1 once they were summed */
    double group_episodes, group_fewest, group_mean_w, group_mean_100, group_max; /* fewest: of one rank */
    long long group_steps;        /* the fewest steps of one rank */
    bd_trace_writer *mem;
    char *mem_path;
    long long steps;
    double t0;
    double rate_t;            /* when the last round was reported (0: none yet) */
    long long rate_steps;     /* ... and the steps then */
    char why[192];            /* why the phase ended, from the conductor (or another rank) */
    int ends_run;             /* the conductor said the run ends with the phase (its answer's "ends_run") */
    int stop_rank;            /* several ranks: the rank whose stop ended the phase here, or -1 */
    int stopping;             /* interrupted: the last events are best effort */
    int ended;                /* the last round is over: every answer to a muscle says STOP */
    cJSON *learned;           /* the last update's losses, for the next round's report */
    int learn_failed;         /* an update failed (not cancelled): no checkpoint of it */
    char diverged[256];       /* why learning diverged (its update undone), or "" */
    long long refused_rollouts; /* rollouts whose data failed bd_rollout_check: not learned from */
    int gap_marked; /* a round without any rollout, after rollouts were recorded, is in the trace as a round
                       of NaN (a restarted muscle's fresh worlds never follow its lost ones unmarked) */
    char refused_why[256];    /* the last one's reason */
    int *refused_row;         /* (M) each muscle's rollouts refused in a row (BD_BRAIN_REFUSED_MAX ends it) */
    /* news from the conductor's answers to heartbeats */
    cJSON *startup;           /* start-up stamps (common/proc.h), sent with "ready" */
    pthread_mutex_t news_mu;
    uint32_t *taken_back;     /* (M) each remote slot's newest grant the conductor took back (its
                                 muscle lost), as its heartbeats' answers say (under news_mu) */
    /* whose grant a remote slot may be greeted with (wire/tls.h; main thread): */
    uint32_t *revoked;        /* (M) never this one or older: taken back ... */
    uint32_t *newest;         /* (M) ... nor older than the newest grant of the slot seen */
    bd_ranks ranks;           /* this agent's brains on the other ranks (brain/ranks.h) */
    bd_steer steer;           /* its params with this phase's `bodhi set` changes (brain/steer.h) */
    /* greedy_average (config/plan.h): its greedy episodes, NULL when the condition is not
     * this agent's; the next evaluation at eval_next agent-steps */
    const bd_greedy_ops *greedy; /* the registry's */
    void *eval;
    long long eval_next, eval_count;
    uint64_t eval_version;    /* the weights version last evaluated */
    double eval_mean;         /* its mean return */
    long long eval_round;     /* the round it was evaluated in (-1: none) */
} bd_brain;

/* gather.c: a muscle's HELLO (the round's greet hook: checks who it is, answers with the
 * current weights); muscle k's ROLLOUT into the batch (BD_EINVAL, nothing copied, when its
 * data is not fit to learn from); columns no muscle filled; the final observations of the
 * episodes bd_stats_add just finished. */
int bd_brain_greet(void *ctx, int k, bd_request *req, int again);
/* The round's supersedes hook: a greeting as remote muscle k, while k's connection is still
 * open, takes k's place when it passes every check of a HELLO and carries a newer grant of
 * the conductor's than k greeted with (the conductor gave the slot to it; the old holder is
 * lost, its news on the way), or is the same muscle again (its old connection's end not
 * seen yet). A greeting that fails a check is said on stderr, as greet says it. */
int bd_brain_supersedes(void *ctx, int k, bd_request *req);
/* Muscle k's columns lost rows: with fresh worlds (a new process) their running episodes
 * are dropped and the next start at their next data; without (the same worlds went on)
 * those episodes are not counted when they end. Either way the learner drops what it
 * keeps of their last steps. */
void bd_brain_lost_rows(bd_brain *b, int k, int fresh);
int bd_brain_collect(bd_brain *b, int k, const bd_request *req);
void bd_brain_blank(bd_brain *b);
int bd_brain_final_rows(bd_brain *b);

/* brain.c: a WEIGHTS message with the current policy (flags: BD_WEIGHTS_STOP). */
int bd_brain_weights(bd_brain *b, uint32_t flags, nng_msg **out);

#endif
