/* muscle.c: the inference worker (see muscle.h).
 *
 * Per agent it keeps a REQ socket to the agent's brain and the rollout buffers
 * (T, n, ...) for its shard of n worlds, on the env's device. It greets every brain
 * (HELLO), whose answer is the first WEIGHTS: the rollout length, the network to build and
 * its parameters. One round: T steps (gather each agent's sensor columns, act, write its
 * actuator columns, step the env once for everybody, record rewards and flags), then one
 * ROLLOUT to every brain (the round's one copy off a GPU, straight into the message), and
 * only then the answers (a brain answers after every brain has its rollout: see
 * brain.c), WEIGHTS or STOP. Requests carry sequence numbers (HELLO 0, rollouts 1, 2, ...)
 * and are never sent twice (REQ resending is off: a brain may take long to learn). */
#include "muscle/muscle.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "common/devmem.h"
#include "common/proc.h"
#include "common/util.h"
#include "config/plan.h"
#include "muscle/actor.h"
#include "muscle/fsm_parse.h"
#include "wire/addr.h"
#include "wire/call.h"
#include "wire/events.h"
#include "wire/wire.h"

/* What the ppo and random muscles (muscle/act.h) can drive: one discrete actuator
 * (categorical) or only Box ones (diagonal Gaussian, or uniform). */
static int bd_actor_check(const bd_node *params, const bd_phase_plan *p, const bd_agent_plan *ap, bd_diags *d)
{
    char w[256];
    (void)p;
    int rc = BD_OK;
    if (ap->discrete && (ap->discrete != 1 || ap->nact != 1))
        rc = bd_diag(d, bd_seterr(BD_EINVAL, "%s: agent '%s': the %s muscle drives either one discrete actuator or "
                                  "only continuous (Box) ones; this agent lists %d actuators, %d of them discrete",
                                  bd_node_where(ap->cfg->node, w, sizeof w), ap->cfg->name, ap->muscle->name,
                                  ap->nact, ap->discrete));
    static const char *const none[] = {NULL};
    int krc = bd_node_check_keys(params, none, "the muscle's params (it takes none)", d);
    return rc ? rc : krc;
}

/* The fsm muscle: its machine, read once into the plan (muscle/fsm.c). */
static int bd_fsm_kind_parse(const bd_node *params, const bd_phase_plan *p, const bd_agent_plan *ap, bd_diags *d,
                             void **out)
{
    (void)p;
    bd_fsm *f = malloc(sizeof *f);
    if (!f)
        return bd_diag(d, bd_seterr(BD_ENOMEM, "out of memory"));
    int rc = bd_fsm_parse(params, ap, d, f);
    if (rc != BD_OK) {
        free(f);
        return rc;
    }
    *out = f;
    return BD_OK;
}

/* The init hooks: the actor of a network (sampling in train phases, greedy in test
 * phases), of uniform draws, or of the agent's machine. */
static int bd_net_init(bd_actor *ac, const bd_agent_plan *ap, const bd_env_batch *b, bd_device dev,
                       bd_act_mode mode)
{
    return bd_actor_init(ac, ap, b, dev, mode, NULL);
}

static int bd_uniform_init(bd_actor *ac, const bd_agent_plan *ap, const bd_env_batch *b, bd_device dev,
                           bd_act_mode mode)
{
    (void)mode;
    return bd_actor_init(ac, ap, b, dev, BD_ACT_UNIFORM, NULL);
}

static int bd_fsm_init(bd_actor *ac, const bd_agent_plan *ap, const bd_env_batch *b, bd_device dev,
                       bd_act_mode mode)
{
    (void)mode;
    if (!ap->muscle_params)
        return bd_seterr(BD_EINVAL, "agent '%s': the fsm muscle has no machine", ap->cfg->name);
    return bd_actor_init(ac, ap, b, dev, BD_ACT_FSM, ap->muscle_params);
}

/* What the sac muscle drives: continuous (Box) actuators only. */
static int bd_sac_check(const bd_node *params, const bd_phase_plan *p, const bd_agent_plan *ap, bd_diags *d)
{
    char w[256];
    int rc = BD_OK;
    if (ap->discrete)
        rc = bd_diag(d, bd_seterr(BD_EINVAL, "%s: agent '%s': the sac muscle drives continuous (Box) actuators "
                                  "only; this agent lists %d discrete one(s) (dqn or ppo drive those)",
                                  bd_node_where(ap->cfg->muscle.node ? ap->cfg->muscle.node : ap->cfg->node, w, sizeof w),
                                  ap->cfg->name, ap->discrete));
    int krc = bd_actor_check(params, p, ap, d);
    return rc ? rc : krc;
}

static const bd_muscle_ops bd_net_ops = {bd_net_init, 0}, bd_uniform_ops = {bd_uniform_init, 0},
                           bd_fsm_ops = {bd_fsm_init, 0}, bd_q_ops = {bd_net_init, BD_HEAD_Q},
                           bd_sac_ops = {bd_net_init, BD_HEAD_SQUASHED_GAUSSIAN};

const bd_kind bd_muscle_kinds[] = {
    {"ppo", "ppo", 0, NULL, NULL, bd_actor_check, NULL, NULL, &bd_net_ops, NULL},
    /* argmax over Q-values (epsilon-greedy in train phases); the dqn brain checks the actuators */
    {"dqn", "dqn", 0, NULL, NULL, bd_actor_check, NULL, NULL, &bd_q_ops, NULL},
    {"random", "random", 1, NULL, NULL, bd_actor_check, NULL, NULL, &bd_uniform_ops, NULL},
    {"sac", "sac", 0, NULL, NULL, bd_sac_check, NULL, NULL, &bd_sac_ops, NULL},
    {"fsm", "rules", 1, bd_fsm_kind_parse, free, NULL, NULL, NULL, &bd_fsm_ops, NULL},
};
const int bd_muscle_nkinds = (int)(sizeof bd_muscle_kinds / sizeof bd_muscle_kinds[0]);

typedef struct {
    const bd_agent_plan *ap;
    bd_env *env;        /* its env's shard (one of the muscle's) */
    int n;              /* its columns here: [col0, col0 + n) */
    uint32_t col0;
    nng_socket sock;
    int sock_open;
    nng_ctx ctx;
    bd_call *call;
    uint32_t seq;       /* the next request's sequence number */
    uint64_t wversion;  /* the version of the weights it acts with (its rollouts say it) */
    bd_actor actor;
    int S, U;
    /* rollout (T, n, ...) on the env's device */
    float *obs, *act, *logp, *val, *rew, *fval, *lastv;
    float *fobs;        /* (T, n, S) the final observations of ended episodes */
    float *hfobs;       /* CUDA: their host copy, compacted into the rollout */
    uint8_t *hflags;    /* CUDA: (2 T n) host copies of terminated and truncated */
    uint8_t *term, *trunc;
    float *params;      /* host: the last WEIGHTS message's floats (parameters, then 2 S
                           normaliser floats with use_norm) */
    size_t nparams;     /* policy parameters */
    bd_weights_hdr shape; /* the first WEIGHTS' shape, which every later one must repeat */
    int use_norm;       /* the brain sends an observation normaliser */
    int stopped;
    int weighed;        /* the first WEIGHTS came */
    volatile sig_atomic_t wake; /* its connection to the brain closed (a request on it is lost),
                                   or the conductor took this muscle for lost */
} bd_magent;

typedef struct {
    const bd_muscle_opts *o;
    bd_runfile *rf;
    bd_phase_plan plan;
    bd_env **envs;      /* (plan.nenvs) a shard of each env */
    int T;
    bd_magent *ag;
    int na;
    bd_events *ev;
    long long rounds;
    cJSON *startup;     /* start-up stamps (common/proc.h), sent after the first env step */
    int answer_ms;      /* how long a request to a brain waits for its answer */
    double beat_since;  /* a remote muscle: when it began to beat, or last saw the conductor connected */
    double orphan_s;    /* a remote muscle: the phase's heartbeat_timeout (under mu; 0: not yet) */
    double stuck_s;     /* the phase's heartbeat_timeout: one env step longer is a hang (under mu; 0: not yet) */
    double step_since;  /* when the env step under way began, 0 between steps and in the first (atomic) */
    int stepped;        /* its envs have stepped once (the main thread's) */
    pthread_mutex_t mu; /* guards ag and na for the heartbeat thread */
} bd_muscle;

/* Set when the conductor answers a heartbeat with "exit" (it took this muscle for lost),
 * or (bd_muscle_orphan too) when a remote muscle's conductor has neither answered a
 * heartbeat nor held a connection for the phase's heartbeat_timeout: the run is gone. */
static volatile sig_atomic_t bd_muscle_lost = 0, bd_muscle_orphan = 0;

/* Why waits for a brain end when bd_muscle_lost is set. */
static int bd_muscle_lost_err(void)
{
    return bd_muscle_orphan ? bd_seterr(BD_ECLOSED, "the conductor has not answered a heartbeat nor held a "
                                                    "connection for the phase's heartbeat_timeout: the run is "
                                                    "over or out of reach")
                            : bd_seterr(BD_ECLOSED, "the conductor took this muscle for lost");
}

/* The brain's first WEIGHTS: the rollout length, and the network to build (none for a
 * brain that sends no parameters), checked before anything is built. */
static int bd_first_weights(bd_muscle *m, bd_magent *a, const bd_weights_hdr *w)
{
    if (m->T == 0)
        m->T = (int)w->rollout_steps;
    else if ((int)w->rollout_steps != m->T)
        return bd_seterr(BD_EINVAL, "agents ask for different rollout lengths (%d and %u); "
                                    "give their brains the same rollout_steps", m->T, w->rollout_steps);
    if (m->T <= 0 || m->T > (1 << 20))
        return bd_seterr(BD_EPROTO, "brain asked for a rollout of %d steps", m->T);
    if (w->norm_dims && w->norm_dims != (uint32_t)a->S)
        return bd_seterr(BD_EPROTO, "brain sends a normaliser of %u sensors, agent '%s' has %d",
                         w->norm_dims, a->ap->cfg->name, a->S);
    const int wants_net = a->actor.args.mode != BD_ACT_UNIFORM && a->actor.args.mode != BD_ACT_FSM;
    if (!wants_net) {
        if (w->policy != BD_POLICY_NONE || w->nparams || w->hidden || w->layers || w->norm_dims)
            return bd_seterr(BD_EPROTO, "brain of agent '%s' sends a network to a netless muscle",
                             a->ap->cfg->name);
        a->shape = *w;
        return BD_OK;
    }
    /* the policy the message describes, which this muscle must be able to run */
    const bd_muscle_ops *mo = a->ap->muscle->ops;
    const uint32_t head = mo && mo->head ? mo->head : a->ap->continuous ? BD_HEAD_GAUSSIAN : BD_HEAD_CATEGORICAL;
    const uint32_t policy = head == BD_HEAD_Q ? BD_POLICY_Q_MLP : BD_POLICY_MLP;
    if (w->policy != policy || w->head != head || w->obs_dim != (uint32_t)a->S
        || w->act_dim != (uint32_t)a->actor.args.A)
        return bd_seterr(BD_EPROTO, "brain of agent '%s' describes policy %u with head %u over %u inputs and %u "
                         "outputs; its muscle runs policy %u with head %u over %d and %d", a->ap->cfg->name,
                         w->policy, w->head, w->obs_dim, w->act_dim, policy, head, a->S, a->actor.args.A);
    bdt_policy_config pc = {.obs_dim = (int)w->obs_dim,
                            .act_kind = head == BD_HEAD_Q                   ? BDT_Q
                                        : head == BD_HEAD_SQUASHED_GAUSSIAN ? BDT_SQUASHED
                                        : head == BD_HEAD_GAUSSIAN          ? BDT_CONTINUOUS
                                                                            : BDT_DISCRETE,
                            .act_dim = (int)w->act_dim, .hidden = (int)w->hidden, .layers = (int)w->layers};
    uint64_t want = w->hidden <= (1u << 16) && w->layers <= 64 ? bdt_policy_param_count_of(&pc) : 0;
    if (want == 0 || w->nparams != want)
        return bd_seterr(BD_EPROTO, "brain of agent '%s' sends %llu parameters for a network of %u x %u "
                         "(which has %llu)", a->ap->cfg->name, (unsigned long long)w->nparams, w->layers,
                         w->hidden, (unsigned long long)want);
    a->use_norm = w->norm_dims != 0;
    int rc = bd_actor_net_of(&a->actor, w);
    if (rc != BD_OK)
        return rc;
    a->nparams = (size_t)want;
    a->params = malloc(sizeof(float) * (a->nparams + 2 * (size_t)a->S + BD_WEIGHTS_HEAD_FLOATS(head)));
    if (!a->params)
        return bd_seterr(BD_ENOMEM, "muscle: out of memory");
    a->shape = *w;
    return BD_OK;
}

/* A brain's WEIGHTS (the answer to a HELLO or a ROLLOUT) into the actor. */
static int bd_take_weights(bd_muscle *m, bd_magent *a, nng_msg *msg, int first)
{
    bd_wire_header h;
    const uint8_t *p, *floats;
    bd_weights_hdr w;
    int rc = bd_wire_msg_decode(msg, BD_MSG_WEIGHTS, &h, &p);
    if (rc == BD_OK)
        rc = bd_weights_decode(p, (size_t)h.payload_len, &w, &floats);
    if (rc == BD_OK && first)
        rc = bd_first_weights(m, a, &w);
    else if (rc == BD_OK && (w.nparams != a->shape.nparams || w.rollout_steps != a->shape.rollout_steps
                             || w.hidden != a->shape.hidden || w.layers != a->shape.layers
                             || w.norm_dims != a->shape.norm_dims || w.policy != a->shape.policy
                             || w.head != a->shape.head || w.obs_dim != a->shape.obs_dim
                             || w.act_dim != a->shape.act_dim))
        rc = bd_seterr(BD_EPROTO, "brain of agent '%s' changed the network's shape or the rollout length",
                       a->ap->cfg->name);
    if (rc == BD_OK)
        a->wversion = w.version;
    if (rc == BD_OK && (w.flags & BD_WEIGHTS_STOP))
        a->stopped = 1;
    else if (rc == BD_OK && bd_actor_has_net(&a->actor)) {
        const size_t nn = a->nparams + (a->use_norm ? 2 * (size_t)a->S : 0);
        memcpy(a->params, floats, sizeof(float) * (nn + BD_WEIGHTS_HEAD_FLOATS(w.head)));
        rc = bd_actor_take(&a->actor, &w, a->params);
    }
    return rc;
}

/* Sends msg to agent a's brain (taken), without waiting for the answer. A send cut short
 * by a closed connection is not an error here: bd_recv then greets again. */
static int bd_send(bd_muscle *m, bd_magent *a, nng_msg *msg)
{
    bd_call_send(a->call, a->ctx, msg);
    int rc = bd_call_wait(a->call, m->answer_ms, &a->wake, NULL);
    if (bd_muscle_lost)
        return bd_muscle_lost_err();
    if (rc == BD_EINTR || rc == BD_ETIMEDOUT)
        a->wake = 1;
    return rc == BD_EINTR || rc == BD_ETIMEDOUT ? BD_OK : rc;
}

/* HELLO to agent a's brain: who this muscle is and which columns it holds. */
static int bd_greet(bd_muscle *m, bd_magent *a)
{
    nng_msg *msg;
    uint8_t *p;
    int rc = bd_wire_msg_alloc(&msg, BD_MSG_HELLO, (uint32_t)m->o->id, a->seq++, BD_HELLO_SIZE, &p);
    if (rc != BD_OK)
        return rc;
    bd_hello h = {(uint32_t)m->o->id, (uint32_t)a->n, a->col0, (uint32_t)a->S, (uint32_t)a->U,
                  (uint32_t)getpid(), m->o->epoch, {0}};
    memcpy(h.grant, m->o->grant, sizeof h.grant);
    bd_hello_encode(&h, p);
    return bd_send(m, a, msg);
}

static void bd_muscle_event(bd_muscle *m, const char *kind, const char *error);

/* Waits for agent a's brain's answer. A request is lost when the connection it went on
 * closes (the brain dropped this muscle, or NNG reconnected) or no answer comes within
 * m->answer_ms: the muscle then greets the brain again (a HELLO, answered at once with the
 * current weights; the brain admits it again at a round boundary) instead of waiting for
 * ever while its heartbeats say it lives. */
static int bd_recv(bd_muscle *m, bd_magent *a, int first)
{
    for (int tries = 0;; tries++) {
        nng_msg *msg = NULL;
        int rc = a->wake ? BD_EINTR : BD_OK;
        if (rc == BD_OK) {
            bd_call_recv(a->call, a->ctx);
            rc = bd_call_wait(a->call, m->answer_ms, &a->wake, &msg);
        }
        if (bd_muscle_lost)
            return bd_muscle_lost_err();
        if (rc == BD_OK) {
            rc = bd_take_weights(m, a, msg, first && !a->weighed);
            nng_msg_free(msg);
            a->weighed |= rc == BD_OK;
            return rc;
        }
        if (tries >= 1000)
            return bd_seterr(BD_ETIMEDOUT, "the brain of agent '%s' lost %d requests in a row", a->ap->cfg->name,
                             tries);
        char why[320];
        if (rc == BD_ETIMEDOUT)
            snprintf(why, sizeof why, "agent '%s': no answer in %d s", a->ap->cfg->name, m->answer_ms / 1000);
        else
            snprintf(why, sizeof why, "agent '%s': the connection to its brain closed%s%.200s", a->ap->cfg->name,
                     rc == BD_EINTR ? "" : " (", rc == BD_EINTR ? "" : bd_lasterr());
        if (rc != BD_ETIMEDOUT && rc != BD_EINTR)
            strncat(why, ")", sizeof why - strlen(why) - 1);
        a->wake = 0;
        bd_muscle_event(m, "greeting_again", why);
        if ((rc = bd_greet(m, a)) != BD_OK)
            return rc;
        struct timespec ts = {0, 20 * 1000000L}; /* a closed connection takes a moment to come back */
        nanosleep(&ts, NULL);
    }
}

static int bd_agent_alloc(bd_muscle *m, bd_magent *a)
{
    const size_t tn = (size_t)m->T * (size_t)a->n;
    struct {
        void **p;
        size_t bytes;
    } bufs[] = {
        {(void **)&a->obs, sizeof(float) * tn * (size_t)a->S},
        {(void **)&a->act, sizeof(float) * tn * (size_t)a->U},
        {(void **)&a->logp, sizeof(float) * tn},
        {(void **)&a->val, sizeof(float) * tn},
        {(void **)&a->rew, sizeof(float) * tn},
        {(void **)&a->fval, sizeof(float) * tn},
        {(void **)&a->lastv, sizeof(float) * (size_t)a->n},
        {(void **)&a->term, tn},
        {(void **)&a->trunc, tn},
        {(void **)&a->fobs, sizeof(float) * tn * (size_t)a->S},
    };
    for (size_t k = 0; k < sizeof bufs / sizeof bufs[0]; k++) {
        int rc = bd_dev_alloc(m->plan.device, bufs[k].bytes, bufs[k].p);
        if (rc != BD_OK) {
            char why[512];
            snprintf(why, sizeof why, "%s", bd_lasterr());
            return bd_seterr(rc, "muscle: a rollout of %d x %d columns: %s", m->T, a->n, why);
        }
    }
    if (m->plan.device == BD_DEVICE_CUDA
        && (!(a->hfobs = malloc(sizeof(float) * tn * (size_t)a->S)) || !(a->hflags = malloc(2 * tn))))
        return bd_seterr(BD_ENOMEM, "muscle: out of memory");
    return BD_OK;
}

/* NNG's thread: a connection to agent a's brain closed; a request on it is lost. */
static void bd_brain_gone(nng_pipe p, nng_pipe_ev ev, void *arg)
{
    (void)p;
    (void)ev;
    ((bd_magent *)arg)->wake = 1;
}

/* Dials agent a's brain at url and sends it HELLO (the answer is taken later). */
static int bd_muscle_connect(bd_muscle *m, bd_magent *a, const char *url)
{
    int rv = nng_req0_open(&a->sock);
    if (rv == 0) {
        a->sock_open = 1;
        nng_pipe_notify(a->sock, NNG_PIPE_EV_REM_POST, bd_brain_gone, a);
        nng_socket_set_ms(a->sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
        nng_socket_set_ms(a->sock, NNG_OPT_RECONNMINT, 10);
        nng_socket_set_ms(a->sock, NNG_OPT_RECONNMAXT, 200);
        /* the longest answer: WEIGHTS with the network the brain's params describe */
        const bd_kind *bk = a->ap->brain;
        unsigned long long floats = bk && bk->weights_floats && a->ap->brain_params
                                        ? bk->weights_floats(a->ap->brain_params, a->ap)
                                        : 0;
        rv = nng_socket_set_size(a->sock, NNG_OPT_RECVMAXSZ,
                                 BD_WIRE_SP_SLACK + BD_WIRE_HEADER_SIZE + BD_WEIGHTS_HDR_SIZE + 4 * (size_t)floats);
        if (rv == 0)
            rv = nng_ctx_open(&a->ctx, a->sock);
    }
    if (rv != 0)
        return bd_nng_err(rv, url);
    int rc = bd_tls_dial(a->sock, url, m->o->tls, NNG_FLAG_NONBLOCK);
    if (rc == BD_OK)
        rc = bd_call_open(&a->call);
    if (rc != BD_OK)
        return rc;
    return bd_greet(m, a);
}

static int bd_muscle_setup(bd_muscle *m)
{
    const bd_muscle_opts *o = m->o;
    int rc;
    if (o->run_file) {
        rc = bd_runfile_parse(o->run_file, "run.yml (from the conductor)", &m->rf);
    } else {
        char *path = bd_strfmt("%s/run.yml", o->run_dir);
        rc = path ? bd_runfile_load_checked(path, o->run_digest, &m->rf) : bd_seterr(BD_ENOMEM, "out of memory");
        free(path);
    }
    if (rc != BD_OK)
        return rc;
    int pi = bd_runfile_phase_index(m->rf, o->phase);
    if (pi < 0)
        return bd_seterr(BD_ENOTFOUND, "run file has no phase '%s'", o->phase);
    if ((rc = bd_phase_plan_make(m->rf, pi, o->reg, o->device, &m->plan)) != BD_OK)
        return rc;
    /* On CUDA the network is libtorch's: it loads while the env is built and the brain
     * sends its first weights. On the CPU the C network (torch/cpunet.h) needs none. */
    for (int k = 0; m->plan.device == BD_DEVICE_CUDA && k < m->plan.nagents; k++)
        if (!m->plan.agents[k].random) {
            bdt_preload();
            break;
        }
    if (o->id < 0 || o->id >= m->plan.muscles)
        return bd_seterr(BD_EINVAL, "muscle id %d is outside 0..%d", o->id, m->plan.muscles - 1);
    m->envs = calloc((size_t)m->plan.nenvs, sizeof *m->envs);
    if (!m->envs)
        return bd_seterr(BD_ENOMEM, "muscle: out of memory");
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    for (int k = 0; k < m->plan.nenvs; k++) {
        const bd_env_plan *ep = &m->plan.envs[k];
        int n;
        uint32_t world0;
        bd_shard(ep->worlds, m->plan.muscles, o->id, &n, &world0);
        /* Ranks (brain/ranks.h): `worlds` is per rank and world ids are global, rank k's
         * from k x worlds, so no two ranks draw the same world's seeds. */
        const char *rk = getenv("BODHI_RANK");
        long long rank = 0;
        if (rk && bd_parse_ll(rk, 0, 65535, &rank) == BD_OK && (long long)world0 + (rank + 1) * ep->worlds > UINT32_MAX)
            return bd_seterr(BD_EINVAL, "rank %lld: %lld worlds a rank do not fit 32-bit world ids", rank,
                             (long long)ep->worlds);
        world0 += (uint32_t)(rank * ep->worlds);
        /* A restarted muscle starts its worlds over from draws of their own (restart 0 keeps
         * the plan's seeds, so a run without failures is what it always was). */
        uint64_t seed = o->restart ? bd_seed_mix(ep->seed, 0x5265737461727400ull + (uint64_t)o->restart,
                                                 (uint64_t)o->id)
                                   : ep->seed;
        rc = bd_env_create(ep->desc, n, world0, seed, m->plan.device, ep->max_steps, ep->param, &m->envs[k]);
        /* A large shard steps on this muscle's share of the cores (results do not depend on
         * it); a small one is not worth the hand-offs. */
        long long rows = (long long)n * ep->shape.members;
        int threads = rows >= 16384 && cores > m->plan.worker ? (int)(cores / m->plan.worker) : 1;
        if (rc == BD_OK && threads > 1 && n > 1)
            rc = bd_env_set_threads(m->envs[k], threads);
        if (rc != BD_OK)
            return rc;
    }
    /* A request that no answer follows is lost (the brain dropped this muscle, a
     * connection broke): after this long the muscle greets again. Far above a legitimate
     * wait, which a long update may make minutes. */
    double answer_s = fmin(fmax(600.0, 10.0 * m->plan.ph->heartbeat_timeout), 3600.0);
    m->answer_ms = (int)(answer_s * 1000);
    pthread_mutex_lock(&m->mu);
    m->orphan_s = o->brain_urls ? m->plan.ph->heartbeat_timeout : 0;
    m->stuck_s = m->plan.ph->heartbeat_timeout;
    m->na = m->plan.nagents;
    m->ag = calloc((size_t)m->na, sizeof *m->ag);
    pthread_mutex_unlock(&m->mu);
    if (!m->ag)
        return bd_seterr(BD_ENOMEM, "muscle: out of memory");
    int nurls = 0; /* a remote muscle: the conductor sent one brain port per agent */
    while (o->brain_urls && o->brain_urls[nurls])
        nurls++;
    if (o->brain_urls && nurls != m->na)
        return bd_seterr(BD_EINVAL, "the conductor sent %d brain port(s) for %d agents", nurls, m->na);
    char *sockdir = NULL;
    if (!o->brain_urls && (rc = bd_sockdir_find(o->run_dir, &sockdir)) != BD_OK)
        return rc;
    bd_act_mode mode = m->plan.ph->mode == BD_MODE_TRAIN ? BD_ACT_SAMPLE : BD_ACT_GREEDY;
    for (int k = 0; k < m->na && rc == BD_OK; k++) {
        bd_magent *a = &m->ag[k];
        a->ap = &m->plan.agents[k];
        a->S = a->ap->nsens;
        a->U = a->ap->nact;
        a->env = m->envs[a->ap->env->index];
        bd_agent_shard(a->ap, m->plan.muscles, o->id, &a->n, &a->col0);
        const bd_muscle_ops *mo = a->ap->muscle->ops;
        rc = mo && mo->init ? mo->init(&a->actor, a->ap, bd_env_batch_of(a->env), m->plan.device, mode)
                            : bd_seterr(BD_EINVAL, "muscle '%s' has no init", a->ap->muscle->name);
        if (rc == BD_OK && o->restart) /* its own action draws too */
            a->actor.args.seed = bd_seed_mix(a->ap->seed, 0x5265737461727400ull + (uint64_t)o->restart,
                                             (uint64_t)o->id);
        char *url = o->brain_urls ? bd_strdup(o->brain_urls[k]) : bd_url_brain(sockdir, pi, k);
        if (rc == BD_OK)
            rc = url ? bd_muscle_connect(m, a, url) : bd_seterr(BD_ENOMEM, "out of memory");
        free(url);
    }
    free(sockdir);
    for (int k = 0; k < m->na && rc == BD_OK; k++)
        rc = bd_recv(m, &m->ag[k], 1);
    for (int k = 0; k < m->na && rc == BD_OK; k++)
        rc = bd_agent_alloc(m, &m->ag[k]);
    return rc;
}

static void bd_muscle_teardown(bd_muscle *m)
{
    int kept = 0; /* a socket whose close hung (wire.h): its pipe callbacks point into m->ag */
    for (int k = 0; m->ag && k < m->na; k++) {
        bd_magent *a = &m->ag[k];
        bd_call_close(a->call);
        if (a->sock_open && !bd_nng_close_within(a->sock, BD_NNG_CLOSE_MS))
            kept = 1;
        bd_actor_fini(&a->actor);
        void *bufs[] = {a->obs, a->act, a->logp, a->val, a->rew, a->fval, a->lastv, a->term, a->trunc, a->fobs};
        for (size_t j = 0; j < sizeof bufs / sizeof bufs[0]; j++)
            bd_dev_free(m->plan.device, bufs[j]);
        free(a->hfobs);
        free(a->hflags);
        free(a->params);
    }
    if (!kept)
        free(m->ag);
    for (int k = 0; m->envs && k < m->plan.nenvs; k++)
        bd_env_destroy(m->envs[k]);
    free(m->envs);
    bd_phase_plan_fini(&m->plan);
    bd_runfile_destroy(m->rf);
}

static int bd_send_rollout(bd_muscle *m, bd_magent *a)
{
    const size_t tn = (size_t)m->T * (size_t)a->n, S = (size_t)a->S;
    /* the flags, and the final observations, on the host: the ended episodes' rows go */
    const uint8_t *term = a->term, *trunc = a->trunc;
    const float *fobs = a->fobs;
    int rc = BD_OK;
    if (m->plan.device == BD_DEVICE_CUDA) {
        rc = bd_dev_to_host(m->plan.device, a->hflags, a->term, tn);
        if (rc == BD_OK)
            rc = bd_dev_to_host(m->plan.device, a->hflags + tn, a->trunc, tn);
        term = a->hflags;
        trunc = a->hflags + tn;
    }
    bd_rollout_hdr h = {(uint32_t)m->o->id, (uint32_t)m->T, (uint32_t)a->n, (uint32_t)a->S,
                        (uint32_t)a->U, a->col0, a->wversion, 0};
    h.ended = rc == BD_OK ? bd_rollout_count_ended(term, trunc, tn) : 0;
    if (rc == BD_OK && h.ended && m->plan.device == BD_DEVICE_CUDA) {
        rc = bd_dev_to_host(m->plan.device, a->hfobs, a->fobs, sizeof(float) * tn * S);
        fobs = a->hfobs;
    }
    if (rc != BD_OK)
        return rc;
    size_t off[BD_RO_COUNT], size[BD_RO_COUNT];
    size_t bytes = bd_rollout_layout(&h, off, size);
    if (bytes == 0)
        return bd_seterr(BD_EINVAL, "rollout too large (T=%d n=%d)", m->T, a->n);
    nng_msg *msg;
    uint8_t *p;
    rc = bd_wire_msg_alloc(&msg, BD_MSG_ROLLOUT, (uint32_t)m->o->id, a->seq++, bytes, &p);
    if (rc != BD_OK)
        return rc;
    bd_rollout_hdr_encode(&h, p);
    /* the one copy off the device: straight into the message */
    const void *src[BD_RO_FINAL_OBS] = {a->obs, a->act, a->logp, a->val, a->rew, a->fval,
                                        a->lastv, a->term, a->trunc};
    for (int k = 0; k < BD_RO_FINAL_OBS && rc == BD_OK; k++)
        rc = bd_dev_to_host(m->plan.device, p + off[k], src[k], size[k]);
    if (rc != BD_OK) {
        nng_msg_free(msg);
        return rc;
    }
    uint8_t *dst = p + off[BD_RO_FINAL_OBS];
    for (size_t c = 0; c < tn; c++)
        if (term[c] | trunc[c]) {
            memcpy(dst, fobs + c * S, 4 * S);
            dst += 4 * S;
        }
    return bd_send(m, a, msg);
}

/* One round: T steps of every agent and the envs, on the envs' device, then the rollouts
 * out and the new weights in. */
static int bd_muscle_round(bd_muscle *m)
{
    int rc = BD_OK;
    for (int t = 0; t < m->T && rc == BD_OK; t++) {
        for (int k = 0; k < m->na && rc == BD_OK; k++) {
            bd_magent *a = &m->ag[k];
            const bd_env_batch *b = bd_env_batch_of(a->env); /* device pointers on CUDA */
            const size_t row = (size_t)t * (size_t)a->n;
            rc = bd_actor_act(&a->actor, b->obs, b->step, a->obs + row * a->S, a->act + row * a->U,
                              a->logp + row, a->val + row, b->actions);
        }
        /* the heartbeat thread watches how long a step takes; not the muscle's first, which
         * may compile (CUDA kernels for a new GPU, a Python env's JIT) for longer. One
         * writer, one reader of a double: a relaxed atomic, no lock in the step loop */
        const double since = m->stepped ? bd_now() : 0, none = 0;
        __atomic_store(&m->step_since, &since, __ATOMIC_RELAXED);
        for (int e = 0; e < m->plan.nenvs && rc == BD_OK; e++)
            rc = bd_env_step(m->envs[e]);
        __atomic_store(&m->step_since, &none, __ATOMIC_RELAXED);
        m->stepped = 1;
        if (m->startup) { /* the first env step: this muscle's start-up is over */
            bd_startup_mark(m->startup, "first_step");
            cJSON_AddNumberToObject(m->startup, "muscle", m->o->id);
            cJSON_AddStringToObject(m->startup, "phase", m->o->phase);
            if (m->ev)
                bd_events_send(m->ev, m->startup, NULL);
            cJSON_Delete(m->startup);
            m->startup = NULL;
        }
        for (int k = 0; k < m->na && rc == BD_OK; k++) {
            bd_magent *a = &m->ag[k];
            const size_t row = (size_t)t * (size_t)a->n;
            rc = bd_actor_record(&a->actor, bd_env_batch_of(a->env), a->rew + row, a->term + row, a->trunc + row,
                                 a->fval + row, a->fobs + row * a->S);
        }
    }
    for (int k = 0; k < m->na && rc == BD_OK; k++)
        rc = bd_actor_values(&m->ag[k].actor, bd_env_batch_of(m->ag[k].env)->obs, m->ag[k].lastv);
    for (int k = 0; k < m->na && rc == BD_OK; k++)
        rc = bd_send_rollout(m, &m->ag[k]);
    for (int k = 0; k < m->na && rc == BD_OK; k++)
        rc = bd_recv(m, &m->ag[k], 0);
    m->rounds++;
    return rc;
}

static void bd_muscle_wake_all(bd_muscle *m);
static void bd_muscle_event(bd_muscle *m, const char *kind, const char *error);

/* Who sends o to the conductor: this process's pid, and a remote muscle's grant (the
 * conductor takes a remote slot's heartbeats and events only with the grant it gave). */
static void bd_muscle_whoami(const bd_muscle *m, cJSON *o)
{
    cJSON_AddNumberToObject(o, "pid", (double)getpid());
    if (m->o->epoch) {
        char hex[2 * sizeof m->o->grant + 1];
        bd_hex(m->o->grant, sizeof m->o->grant, hex);
        cJSON_AddNumberToObject(o, "epoch", m->o->epoch);
        cJSON_AddStringToObject(o, "grant", hex);
    }
}

static cJSON *bd_muscle_beat(void *ctx)
{
    bd_muscle *m = ctx;
    /* a remote muscle has no parent to die with: when its conductor has answered no
     * heartbeat and held no connection to it for as long as it would take this muscle for
     * hung, the run is gone (a stopped conductor keeps its connections: it is waited for) */
    pthread_mutex_lock(&m->mu);
    double limit = m->orphan_s, stuck = m->stuck_s, since;
    pthread_mutex_unlock(&m->mu);
    __atomic_load(&m->step_since, &since, __ATOMIC_RELAXED);
    /* This thread beats whatever the muscle computes, so a step of its envs that never
     * returns (a plugin's or a Python env's loop or deadlock) would hide behind the beats
     * for ever: a step longer than the phase's heartbeat_timeout is a hang. The muscle
     * says so and ends, and the conductor restarts it as a crashed one. */
    if (stuck > 0 && since > 0 && bd_now() - since > stuck) {
        char err[256];
        snprintf(err, sizeof err, "hung: one step of its envs has not returned after %.0f s (more than the phase's "
                                  "heartbeat_timeout, %g s)", bd_now() - since, stuck);
        fprintf(stderr, "bodhi muscle %d (phase %s): %s\n", m->o->id, m->o->phase, err);
        bd_muscle_event(m, "error", err);
        _exit(1);
    }
    if (bd_events_connected(m->ev))
        m->beat_since = bd_now();
    if (limit > 0 && !bd_muscle_lost && bd_now() - fmax(bd_events_beat_ok(m->ev), m->beat_since) > limit) {
        bd_muscle_orphan = 1;
        bd_muscle_lost = 1;
        bd_muscle_wake_all(m);
    }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "event", "beat");
    cJSON_AddNumberToObject(o, "round", (double)m->rounds);
    bd_muscle_whoami(m, o);
    return o;
}

static void bd_muscle_heard(void *ctx, const cJSON *answer)
{
    bd_muscle *m = ctx;
    if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(answer, "exit")))
        return;
    bd_muscle_lost = 1;
    bd_muscle_wake_all(m);
}

static void bd_muscle_wake_all(bd_muscle *m)
{
    pthread_mutex_lock(&m->mu); /* ends every wait for a brain */
    for (int k = 0; m->ag && k < m->na; k++)
        m->ag[k].wake = 1;
    pthread_mutex_unlock(&m->mu);
}

static void bd_muscle_event(bd_muscle *m, const char *kind, const char *error)
{
    if (!m->ev)
        return;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "event", kind);
    cJSON_AddStringToObject(o, "phase", m->o->phase);
    cJSON_AddNumberToObject(o, "muscle", m->o->id);
    cJSON_AddNumberToObject(o, "restart", m->o->restart);
    bd_muscle_whoami(m, o);
    if (error) /* an error's message, or why the muscle does what kind says */
        cJSON_AddStringToObject(o, strcmp(kind, "error") == 0 ? "error" : "reason", error);
    bd_events_send(m->ev, o, NULL);
    cJSON_Delete(o);
}

int bd_muscle_main(const bd_muscle_opts *o)
{
    bd_muscle m;
    memset(&m, 0, sizeof m);
    m.o = o;
    m.startup = o->restart == 0 && !o->brain_urls ? bd_startup_new("muscle") : NULL;
    pthread_mutex_init(&m.mu, NULL);
    bdt_set_threads(1);
    char *sockdir = NULL, *curl = NULL;
    if (o->control_url)
        curl = bd_strdup(o->control_url);
    else if (bd_sockdir_find(o->run_dir, &sockdir) == BD_OK)
        curl = bd_url_control(sockdir);
    free(sockdir);
    if (curl && bd_events_dial_tls(curl, (uint32_t)o->id, o->tls, &m.ev) == BD_OK) {
        bd_events_set_recvmax(m.ev, BD_EVENTS_CHILD_RECVMAX);
        m.beat_since = bd_now();
        bd_events_beat(m.ev, 500, bd_muscle_beat, bd_muscle_heard, &m);
    }
    free(curl);
    bd_startup_mark(m.startup, "sockets");
    int rc = bd_muscle_setup(&m);
    bd_startup_mark(m.startup, "first_weights"); /* the setup ends with them */
    if (rc == BD_OK)
        bd_muscle_event(&m, "ready", NULL);
    for (;;) {
        if (rc != BD_OK)
            break;
        int stopped = 0;
        for (int k = 0; k < m.na; k++)
            stopped |= m.ag[k].stopped;
        if (stopped)
            break;
        rc = bd_muscle_round(&m);
    }
    if (rc != BD_OK) {
        char err[1024];
        snprintf(err, sizeof err, "%s", bd_lasterr());
        fprintf(stderr, "bodhi muscle %d (phase %s): %s\n", o->id, o->phase, err);
        bd_muscle_event(&m, "error", err);
    } else if (o->brain_urls) { /* a remote muscle tells the conductor its slot is free */
        bd_muscle_event(&m, "leaving", NULL);
    }
    bd_events_close(m.ev);
    cJSON_Delete(m.startup);
    bd_muscle_teardown(&m);
    pthread_mutex_destroy(&m.mu);
    return rc == BD_OK ? 0 : 1;
}
