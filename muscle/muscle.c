/* muscle.c: the inference worker (see muscle.h).
 *
 * Per agent it keeps a REQ socket to the agent's brain and the rollout buffers
 * (T, n, ...) for its shard of n worlds, on the env's device. One round: T steps (gather
 * each agent's sensor columns, act, write its actuator columns, step the env once for
 * everybody, record rewards and flags), then one ROLLOUT to each brain (the round's one
 * copy off a GPU, straight into the message), then one WEIGHTS from each brain. REQ
 * resending is turned off: a brain may take long to learn, and a resent rollout would
 * count twice. */
#include "muscle/muscle.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>

#include "common/proc.h"
#include "common/util.h"
#include "config/plan.h"
#include "common/devmem.h"
#include "muscle/actor.h"
#include "wire/addr.h"
#include "wire/wire.h"

const bd_kind bd_muscle_kinds[] = {
    {"ppo", "ppo", NULL},
    {"random", "random", NULL},
};
const int bd_muscle_nkinds = (int)(sizeof bd_muscle_kinds / sizeof bd_muscle_kinds[0]);

typedef struct {
    const bd_agent_plan *ap;
    nng_socket sock;
    int sock_open;
    bd_actor pol;
    int S, U;
    /* rollout (T, n, ...) on the env's device */
    float *obs, *act, *logp, *val, *rew, *fval, *lastv;
    uint8_t *term, *trunc;
    float *params;      /* host: the last WEIGHTS message's floats (parameters, then 2 S
                           normaliser floats with use_norm) */
    size_t nparams;     /* policy parameters */
    int use_norm;       /* the brain sends an observation normaliser */
    int stopped;
} bd_magent;

typedef struct {
    const char *run_dir;
    int id;
    bd_runfile *rf;
    bd_phase_plan plan;
    bd_env *env;
    int n;
    uint32_t world0;
    int T;
    bd_magent *ag;
    int na;
} bd_muscle;

/* The brain's first WEIGHTS: the rollout length, and the network to build (none for a
 * brain that sends no parameters). */
static int bd_first_weights(bd_muscle *m, bd_magent *a, const bd_weights_hdr *w)
{
    if (m->T == 0)
        m->T = (int)w->rollout_steps;
    else if ((int)w->rollout_steps != m->T)
        return bd_seterr(BD_EINVAL, "agents ask for different rollout lengths (%d and %u); "
                                    "give their brains the same rollout_steps", m->T, w->rollout_steps);
    if (m->T <= 0)
        return bd_seterr(BD_EPROTO, "brain asked for a rollout of %d steps", m->T);
    if (w->norm_dims && w->norm_dims != (uint32_t)a->S)
        return bd_seterr(BD_EPROTO, "brain sends a normaliser of %u sensors, agent '%s' has %d",
                         w->norm_dims, a->ap->cfg->name, a->S);
    a->use_norm = w->norm_dims != 0;
    if (w->nparams == 0)
        return BD_OK;
    if (w->hidden == 0 || w->layers == 0 || w->hidden > (1u << 16) || w->layers > 64)
        return bd_seterr(BD_EPROTO, "brain asks for a network of %u x %u", w->layers, w->hidden);
    int rc = bd_actor_set_net(&a->pol, (int)w->hidden, (int)w->layers);
    if (rc != BD_OK)
        return rc;
    a->nparams = bdt_policy_param_count(a->pol.net);
    a->params = malloc(sizeof(float) * (a->nparams + 2 * (size_t)a->S));
    return a->params ? BD_OK : bd_seterr(BD_ENOMEM, "muscle: out of memory");
}

static int bd_recv_weights(bd_muscle *m, bd_magent *a, int first)
{
    nng_msg *msg;
    int rv = nng_recvmsg(a->sock, &msg, 0);
    if (rv != 0)
        return bd_nng_err(rv, "muscle: waiting for weights");
    bd_wire_header h;
    const uint8_t *p, *floats;
    bd_weights_hdr w;
    int rc = bd_wire_msg_decode(msg, BD_MSG_WEIGHTS, &h, &p);
    if (rc == BD_OK)
        rc = bd_weights_decode(p, (size_t)h.payload_len, &w, &floats);
    if (rc == BD_OK && first)
        rc = bd_first_weights(m, a, &w);
    if (rc == BD_OK && (w.flags & BD_WEIGHTS_STOP))
        a->stopped = 1;
    else if (rc == BD_OK && a->pol.net) {
        size_t extra = a->use_norm ? 2 * (size_t)a->S : 0;
        if (w.nparams != a->nparams || w.norm_dims != (a->use_norm ? (uint32_t)a->S : 0))
            rc = bd_seterr(BD_EPROTO, "brain sent %llu parameters and %u normaliser columns, the policy "
                           "expects %zu and %d", (unsigned long long)w.nparams, w.norm_dims, a->nparams,
                           a->use_norm ? a->S : 0);
        else {
            memcpy(a->params, floats, sizeof(float) * (a->nparams + extra));
            rc = bd_actor_set_params(&a->pol, a->params, a->nparams);
            if (rc == BD_OK && a->use_norm)
                rc = bd_actor_set_norm(&a->pol, a->params + a->nparams, a->params + a->nparams + a->S);
        }
    }
    nng_msg_free(msg);
    return rc;
}

static int bd_agent_alloc(bd_muscle *m, bd_magent *a)
{
    const size_t tn = (size_t)m->T * (size_t)m->n;
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
        {(void **)&a->lastv, sizeof(float) * (size_t)m->n},
        {(void **)&a->term, tn},
        {(void **)&a->trunc, tn},
    };
    for (size_t k = 0; k < sizeof bufs / sizeof bufs[0]; k++) {
        int rc = bd_dev_alloc(m->plan.device, bufs[k].bytes, bufs[k].p);
        if (rc != BD_OK) {
            char why[512];
            snprintf(why, sizeof why, "%s", bd_lasterr());
            return bd_seterr(rc, "muscle: a rollout of %d x %d worlds: %s", m->T, m->n, why);
        }
    }
    return BD_OK;
}

static int bd_muscle_connect(bd_muscle *m, bd_magent *a)
{
    char *url = bd_url_brain(m->run_dir, a->ap->cfg->name);
    int rv = url ? nng_req0_open(&a->sock) : NNG_ENOMEM;
    if (rv == 0) {
        a->sock_open = 1;
        nng_socket_set_ms(a->sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
        nng_socket_set_ms(a->sock, NNG_OPT_RECONNMINT, 10);
        nng_socket_set_ms(a->sock, NNG_OPT_RECONNMAXT, 200);
        rv = nng_dial(a->sock, url, NULL, NNG_FLAG_NONBLOCK);
    }
    int rc = rv ? bd_nng_err(rv, url ? url : "muscle socket") : BD_OK;
    free(url);
    if (rc != BD_OK)
        return rc;
    nng_msg *msg;
    uint8_t *p;
    rc = bd_wire_msg_alloc(&msg, BD_MSG_HELLO, (uint32_t)m->id, 0, BD_HELLO_SIZE, &p);
    if (rc != BD_OK)
        return rc;
    bd_hello h = {(uint32_t)m->id, (uint32_t)m->n, m->world0, (uint32_t)a->S, (uint32_t)a->U,
                  (uint32_t)getpid()};
    bd_hello_encode(&h, p);
    if ((rv = nng_sendmsg(a->sock, msg, 0)) != 0) {
        nng_msg_free(msg);
        return bd_nng_err(rv, "muscle: HELLO");
    }
    return BD_OK;
}

static int bd_muscle_setup(bd_muscle *m, const char *phase, const bd_registry *reg, const char *device)
{
    char *path = bd_strfmt("%s/run.yml", m->run_dir);
    int rc = path ? bd_runfile_load(path, &m->rf) : BD_ENOMEM;
    free(path);
    if (rc != BD_OK)
        return rc;
    int pi = bd_runfile_phase_index(m->rf, phase);
    if (pi < 0)
        return bd_seterr(BD_ENOTFOUND, "run file has no phase '%s'", phase);
    if ((rc = bd_phase_plan_make(m->rf, pi, reg, device, &m->plan)) != BD_OK)
        return rc;
    if (m->id < 0 || m->id >= m->plan.worker)
        return bd_seterr(BD_EINVAL, "muscle id %d is outside 0..%d", m->id, m->plan.worker - 1);
    bd_shard(m->plan.worlds, m->plan.worker, m->id, &m->n, &m->world0);
    rc = bd_env_create(m->plan.env, m->n, m->world0, m->plan.env_seed, m->plan.device,
                       m->plan.max_steps, &m->env);
    /* A large shard steps on this muscle's share of the cores (results do not depend on
     * it); a small one is not worth the hand-offs. */
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int threads = m->n >= 16384 && cores > m->plan.worker ? (int)(cores / m->plan.worker) : 1;
    if (rc == BD_OK && threads > 1)
        rc = bd_env_set_threads(m->env, threads);
    if (rc != BD_OK)
        return rc;
    m->na = m->plan.nagents;
    m->ag = calloc((size_t)m->na, sizeof *m->ag);
    if (!m->ag)
        return bd_seterr(BD_ENOMEM, "muscle: out of memory");
    bd_act_mode mode = m->plan.ph->mode == BD_MODE_TRAIN ? BD_ACT_SAMPLE : BD_ACT_GREEDY;
    for (int k = 0; k < m->na && rc == BD_OK; k++) {
        bd_magent *a = &m->ag[k];
        a->ap = &m->plan.agents[k];
        a->S = a->ap->nsens;
        a->U = a->ap->nact;
        rc = bd_actor_init(&a->pol, a->ap, bd_env_batch_of(m->env), m->plan.device, mode);
        if (rc == BD_OK)
            rc = bd_muscle_connect(m, a);
    }
    for (int k = 0; k < m->na && rc == BD_OK; k++)
        rc = bd_recv_weights(m, &m->ag[k], 1);
    for (int k = 0; k < m->na && rc == BD_OK; k++)
        rc = bd_agent_alloc(m, &m->ag[k]);
    return rc;
}

static void bd_muscle_teardown(bd_muscle *m)
{
    for (int k = 0; m->ag && k < m->na; k++) {
        bd_magent *a = &m->ag[k];
        if (a->sock_open)
            nng_close(a->sock);
        bd_actor_fini(&a->pol);
        void *bufs[] = {a->obs, a->act, a->logp, a->val, a->rew, a->fval, a->lastv, a->term, a->trunc};
        for (size_t j = 0; j < sizeof bufs / sizeof bufs[0]; j++)
            bd_dev_free(m->plan.device, bufs[j]);
        free(a->params);
    }
    free(m->ag);
    bd_env_destroy(m->env);
    bd_phase_plan_fini(&m->plan);
    bd_runfile_destroy(m->rf);
}

static int bd_send_rollout(bd_muscle *m, bd_magent *a)
{
    bd_rollout_hdr h = {(uint32_t)m->id, (uint32_t)m->T, (uint32_t)m->n, (uint32_t)a->S,
                        (uint32_t)a->U, m->world0, 0};
    size_t off[BD_RO_COUNT], size[BD_RO_COUNT];
    size_t bytes = bd_rollout_layout(&h, off, size);
    if (bytes == 0)
        return bd_seterr(BD_EINVAL, "rollout too large (T=%d n=%d)", m->T, m->n);
    nng_msg *msg;
    uint8_t *p;
    int rc = bd_wire_msg_alloc(&msg, BD_MSG_ROLLOUT, (uint32_t)m->id, 0, bytes, &p);
    if (rc != BD_OK)
        return rc;
    bd_rollout_hdr_encode(&h, p);
    /* the one copy off the device: straight into the message */
    const void *src[BD_RO_COUNT] = {a->obs, a->act, a->logp, a->val, a->rew, a->fval,
                                    a->lastv, a->term, a->trunc};
    for (int k = 0; k < BD_RO_COUNT && rc == BD_OK; k++)
        rc = bd_dev_to_host(m->plan.device, p + off[k], src[k], size[k]);
    if (rc != BD_OK) {
        nng_msg_free(msg);
        return rc;
    }
    int rv = nng_sendmsg(a->sock, msg, 0);
    if (rv != 0) {
        nng_msg_free(msg);
        return bd_nng_err(rv, "muscle: send rollout");
    }
    return BD_OK;
}

/* One round: T steps of every agent and the env, on the env's device, then the rollouts
 * out and the new weights in. */
static int bd_muscle_round(bd_muscle *m)
{
    bd_env_batch *b = bd_env_batch_of(m->env); /* device pointers on CUDA */
    const size_t n = (size_t)m->n;
    int rc = BD_OK;
    for (int t = 0; t < m->T && rc == BD_OK; t++) {
        const size_t row = (size_t)t * n;
        for (int k = 0; k < m->na && rc == BD_OK; k++) {
            bd_magent *a = &m->ag[k];
            rc = bd_actor_act(&a->pol, b->obs, b->step, a->obs + row * a->S, a->act + row * a->U,
                                a->logp + row, a->val + row, b->actions);
        }
        if (rc == BD_OK)
            rc = bd_env_step(m->env);
        for (int k = 0; k < m->na && rc == BD_OK; k++) {
            bd_magent *a = &m->ag[k];
            rc = bd_actor_record(&a->pol, b, a->rew + row, a->term + row, a->trunc + row,
                                   a->fval + row);
        }
    }
    for (int k = 0; k < m->na && rc == BD_OK; k++)
        rc = bd_actor_values(&m->ag[k].pol, b->obs, m->ag[k].lastv);
    for (int k = 0; k < m->na && rc == BD_OK; k++)
        rc = bd_send_rollout(m, &m->ag[k]);
    for (int k = 0; k < m->na && rc == BD_OK; k++)
        rc = bd_recv_weights(m, &m->ag[k], 0);
    return rc;
}

int bd_muscle_main(const char *run_dir, const char *phase, int id, const bd_registry *reg,
                   const char *device)
{
    bd_muscle m;
    memset(&m, 0, sizeof m);
    m.run_dir = run_dir;
    m.id = id;
    bdt_set_threads(1);
    int rc = bd_muscle_setup(&m, phase, reg, device);
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
    if (rc != BD_OK)
        fprintf(stderr, "bodhi muscle %d (phase %s): %s\n", id, phase, bd_lasterr());
    bd_muscle_teardown(&m);
    return rc == BD_OK ? 0 : 1;
}
