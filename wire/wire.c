/* wire.c: header and payload codecs (see wire.h), NNG's errors and a bounded close.
 * Little-endian on the wire; every length is checked against the bytes actually
 * received before anything is read. */
#include "wire/wire.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static void put64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static uint64_t get64(const uint8_t *p) { return (uint64_t)get32(p) | ((uint64_t)get32(p + 4) << 32); }

int bd_nng_err(int rv, const char *what)
{
    if (rv == NNG_ETIMEDOUT)
        return bd_seterr(BD_ETIMEDOUT, "%s: %s", what, nng_strerror(rv));
    if (rv == NNG_ECLOSED || rv == NNG_ECONNREFUSED || rv == NNG_ECONNSHUT)
        return bd_seterr(BD_ECLOSED, "%s: %s", what, nng_strerror(rv));
    if (rv == NNG_EINTR)
        return bd_seterr(BD_EINTR, "%s: %s", what, nng_strerror(rv));
    return bd_seterr(BD_ENNG, "%s: %s", what, nng_strerror(rv));
}

void bd_wire_header_encode(const bd_wire_header *h, uint8_t out[BD_WIRE_HEADER_SIZE])
{
    put32(out, h->magic);
    put16(out + 4, h->version);
    put16(out + 6, h->type);
    put32(out + 8, h->sender);
    put32(out + 12, h->seq);
    put64(out + 16, h->payload_len);
}

int bd_wire_decode(const void *msg, size_t len, bd_wire_header *h, const uint8_t **payload)
{
    const uint8_t *p = msg;
    if (len < BD_WIRE_HEADER_SIZE)
        return bd_seterr(BD_EPROTO, "message of %zu bytes is shorter than the %d-byte header", len,
                         BD_WIRE_HEADER_SIZE);
    h->magic = get32(p);
    h->version = get16(p + 4);
    h->type = get16(p + 6);
    h->sender = get32(p + 8);
    h->seq = get32(p + 12);
    h->payload_len = get64(p + 16);
    if (h->magic != BD_WIRE_MAGIC)
        return bd_seterr(BD_EPROTO, "bad magic 0x%08x (not a bodhi message)", h->magic);
    if (h->version != BD_WIRE_VERSION)
        return bd_seterr(BD_EVERSION, "protocol version %u, this bodhi speaks %u", h->version,
                         BD_WIRE_VERSION);
    if (h->type == 0 || h->type > BD_MSG_TYPE_MAX)
        return bd_seterr(BD_EPROTO, "unknown message type %u", h->type);
    if (h->payload_len != len - BD_WIRE_HEADER_SIZE)
        return bd_seterr(BD_EPROTO, "header says %llu payload bytes, message has %zu",
                         (unsigned long long)h->payload_len, len - BD_WIRE_HEADER_SIZE);
    *payload = p + BD_WIRE_HEADER_SIZE;
    return BD_OK;
}

int bd_wire_msg_alloc(nng_msg **m, bd_msg_type type, uint32_t sender, uint32_t seq,
                      size_t payload_len, uint8_t **payload)
{
    int rv = nng_msg_alloc(m, BD_WIRE_HEADER_SIZE + payload_len);
    if (rv != 0)
        return bd_nng_err(rv, "nng_msg_alloc");
    uint8_t *body = nng_msg_body(*m);
    bd_wire_header h = {BD_WIRE_MAGIC, BD_WIRE_VERSION, (uint16_t)type, sender, seq, payload_len};
    bd_wire_header_encode(&h, body);
    *payload = body + BD_WIRE_HEADER_SIZE;
    return BD_OK;
}

static const char *bd_msg_name(unsigned t)
{
    static const char *const names[] = {"?", "HELLO", "WEIGHTS", "ROLLOUT", "EVENT", "STATUS", "BEAT", "JOIN", "STEER"};
    return t <= BD_MSG_TYPE_MAX ? names[t] : "?";
}

int bd_wire_msg_decode(nng_msg *m, bd_msg_type expect, bd_wire_header *h, const uint8_t **payload)
{
    int rc = bd_wire_decode(nng_msg_body(m), nng_msg_len(m), h, payload);
    if (rc != BD_OK)
        return rc;
    if (expect && h->type != expect)
        return bd_seterr(BD_EPROTO, "expected a %s message, got %s from sender %u",
                         bd_msg_name(expect), bd_msg_name(h->type), h->sender);
    return BD_OK;
}

void bd_hello_encode(const bd_hello *h, uint8_t *out)
{
    put32(out, h->muscle);
    put32(out + 4, h->worlds);
    put32(out + 8, h->world0);
    put32(out + 12, h->obs_dim);
    put32(out + 16, h->act_dim);
    put32(out + 20, h->pid);
    put32(out + 24, h->epoch);
    memcpy(out + 28, h->grant, sizeof h->grant);
}

int bd_hello_decode(const uint8_t *p, size_t len, bd_hello *h)
{
    if (len != BD_HELLO_SIZE)
        return bd_seterr(BD_EPROTO, "HELLO payload of %zu bytes, expected %d", len, BD_HELLO_SIZE);
    h->muscle = get32(p);
    h->worlds = get32(p + 4);
    h->world0 = get32(p + 8);
    h->obs_dim = get32(p + 12);
    h->act_dim = get32(p + 16);
    h->pid = get32(p + 20);
    h->epoch = get32(p + 24);
    memcpy(h->grant, p + 28, sizeof h->grant);
    return BD_OK;
}

/* Caps that keep the size arithmetic far from overflow. */
#define BD_WEIGHTS_MAX_FLOATS ((uint64_t)1 << 40)

uint64_t bd_weights_floats(const bd_weights_hdr *h)
{
    if (h->nparams > BD_WEIGHTS_MAX_FLOATS)
        return UINT64_MAX;
    return h->nparams + 2 * (uint64_t)h->norm_dims + BD_WEIGHTS_HEAD_FLOATS(h->head);
}

size_t bd_weights_size(const bd_weights_hdr *h)
{
    uint64_t n = bd_weights_floats(h);
    return n > BD_WEIGHTS_MAX_FLOATS ? 0 : BD_WEIGHTS_HDR_SIZE + sizeof(float) * (size_t)n;
}

void bd_weights_encode(const bd_weights_hdr *h, const float *floats, uint8_t *out)
{
    put64(out, h->version);
    put64(out + 8, h->nparams);
    put32(out + 16, h->flags);
    put32(out + 20, h->rollout_steps);
    put32(out + 24, h->hidden);
    put32(out + 28, h->layers);
    put32(out + 32, h->norm_dims);
    put32(out + 36, h->policy);
    put32(out + 40, h->head);
    put32(out + 44, h->obs_dim);
    put32(out + 48, h->act_dim);
    uint64_t n = bd_weights_floats(h);
    if (n)
        memcpy(out + BD_WEIGHTS_HDR_SIZE, floats, sizeof(float) * (size_t)n);
}

int bd_weights_decode(const uint8_t *p, size_t len, bd_weights_hdr *h, const uint8_t **floats)
{
    if (len < BD_WEIGHTS_HDR_SIZE)
        return bd_seterr(BD_EPROTO, "WEIGHTS payload of %zu bytes is shorter than its header", len);
    h->version = get64(p);
    h->nparams = get64(p + 8);
    h->flags = get32(p + 16);
    h->rollout_steps = get32(p + 20);
    h->hidden = get32(p + 24);
    h->layers = get32(p + 28);
    h->norm_dims = get32(p + 32);
    h->policy = get32(p + 36);
    h->head = get32(p + 40);
    h->obs_dim = get32(p + 44);
    h->act_dim = get32(p + 48);
    size_t need = bd_weights_size(h);
    if (need == 0 || need != len)
        return bd_seterr(BD_EPROTO, "WEIGHTS says %llu parameters and %u normaliser columns but carries "
                         "%zu bytes", (unsigned long long)h->nparams, h->norm_dims,
                         len - BD_WEIGHTS_HDR_SIZE);
    *floats = p + BD_WEIGHTS_HDR_SIZE;
    return BD_OK;
}

/* Limits that keep every product below 2^62 and catch garbage dims early. */

size_t bd_rollout_layout(const bd_rollout_hdr *h, size_t off[BD_RO_COUNT], size_t size[BD_RO_COUNT])
{
    if (h->T == 0 || h->N == 0 || h->T > BD_RO_MAX_DIM || h->N > BD_RO_MAX_DIM
        || h->S > 4096 || h->U > 4096)
        return 0;
    size_t tn = (size_t)h->T * h->N;
    if (tn > BD_RO_MAX_BYTES / 64 / (h->S + h->U + 8) || h->ended > tn)
        return 0;
    size_t s[BD_RO_COUNT] = {
        [BD_RO_OBS] = 4 * tn * h->S,     [BD_RO_ACTIONS] = 4 * tn * h->U,
        [BD_RO_LOGP] = 4 * tn,           [BD_RO_VALUES] = 4 * tn,
        [BD_RO_REWARDS] = 4 * tn,        [BD_RO_FINAL_VALUES] = 4 * tn,
        [BD_RO_LAST_VALUES] = 4 * (size_t)h->N,
        [BD_RO_TERMINATED] = tn,         [BD_RO_TRUNCATED] = tn,
        [BD_RO_FINAL_OBS] = 4 * (size_t)h->ended * h->S,
    };
    size_t at = BD_ROLLOUT_HDR_SIZE;
    for (int k = 0; k < BD_RO_COUNT; k++) {
        off[k] = at;
        size[k] = s[k];
        at += s[k];
    }
    return at;
}

uint64_t bd_rollout_count_ended(const uint8_t *terminated, const uint8_t *truncated, size_t tn)
{
    uint64_t k = 0;
    for (size_t i = 0; i < tn; i++)
        k += (terminated[i] | truncated[i]) != 0;
    return k;
}

/* The first entry of n float32s at p that is not finite, or n. */
static size_t bd_first_nonfinite(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float v;
        memcpy(&v, p + 4 * i, 4);
        if (!isfinite(v))
            return i;
    }
    return n;
}

int bd_rollout_check(const uint8_t *p, size_t len, const bd_rollout_hdr *h, uint32_t n_actions)
{
    size_t off[BD_RO_COUNT], size[BD_RO_COUNT];
    size_t need = bd_rollout_layout(h, off, size);
    if (need == 0 || need != len)
        return bd_seterr(BD_EPROTO, "ROLLOUT of %zu bytes does not match its dims", len);
    static const struct {
        int k;
        const char *name;
    } floats[] = {{BD_RO_OBS, "observations"}, {BD_RO_LOGP, "log-probabilities"}, {BD_RO_VALUES, "values"},
                  {BD_RO_REWARDS, "rewards"}, {BD_RO_FINAL_VALUES, "final values"},
                  {BD_RO_LAST_VALUES, "last values"}, {BD_RO_FINAL_OBS, "final observations"}};
    const size_t N = h->N ? h->N : 1;
    for (size_t j = 0; j < sizeof floats / sizeof floats[0]; j++) {
        const int k = floats[j].k;
        size_t n = size[k] / 4, i = bd_first_nonfinite(p + off[k], n);
        if (i == n)
            continue;
        float v;
        memcpy(&v, p + off[k] + 4 * i, 4);
        /* the entry's step and world: per (t, world) arrays of width S, 1 ...; final
         * observations are rows of S in the order of the ended pairs */
        size_t width = n / (k == BD_RO_LAST_VALUES ? N : k == BD_RO_FINAL_OBS ? (h->ended ? h->ended : 1)
                                                                              : (size_t)h->T * N);
        size_t row = width ? i / width : 0;
        if (k == BD_RO_LAST_VALUES)
            return bd_seterr(BD_EPROTO, "ROLLOUT %s[world=%zu] is %g", floats[j].name, row, (double)v);
        if (k == BD_RO_FINAL_OBS)
            return bd_seterr(BD_EPROTO, "ROLLOUT %s[ended episode %zu] is %g", floats[j].name, row, (double)v);
        return bd_seterr(BD_EPROTO, "ROLLOUT %s[t=%zu, world=%zu] is %g", floats[j].name, row / N, row % N,
                         (double)v);
    }
    const uint8_t *act = p + off[BD_RO_ACTIONS];
    const size_t na = size[BD_RO_ACTIONS] / 4, U = h->U ? h->U : 1;
    for (size_t i = 0; i < na; i++) {
        float v;
        memcpy(&v, act + 4 * i, 4);
        int bad = !isfinite(v) || (n_actions > 0 && (v < 0 || v >= (float)n_actions || v != floorf(v)));
        if (bad)
            return bd_seterr(BD_EPROTO, "ROLLOUT actions[t=%zu, world=%zu] is %g%s", i / U / N, i / U % N, (double)v,
                             n_actions > 0 ? ", not one of the discrete actions" : "");
    }
    for (int k = BD_RO_TERMINATED; k <= BD_RO_TRUNCATED; k++)
        for (size_t i = 0; i < size[k]; i++)
            if (p[off[k] + i] > 1)
                return bd_seterr(BD_EPROTO, "ROLLOUT %s[t=%zu, world=%zu] is %u, not 0 or 1",
                                 k == BD_RO_TERMINATED ? "terminated" : "truncated", i / N, i % N, p[off[k] + i]);
    return BD_OK;
}

void bd_rollout_hdr_encode(const bd_rollout_hdr *h, uint8_t *out)
{
    put32(out, h->muscle);
    put32(out + 4, h->T);
    put32(out + 8, h->N);
    put32(out + 12, h->S);
    put32(out + 16, h->U);
    put32(out + 20, h->world0);
    put64(out + 24, h->version);
}

int bd_rollout_decode(const uint8_t *p, size_t len, bd_rollout_hdr *h)
{
    if (len < BD_ROLLOUT_HDR_SIZE)
        return bd_seterr(BD_EPROTO, "ROLLOUT payload of %zu bytes is shorter than its header", len);
    h->muscle = get32(p);
    h->T = get32(p + 4);
    h->N = get32(p + 8);
    h->S = get32(p + 12);
    h->U = get32(p + 16);
    h->world0 = get32(p + 20);
    h->version = get64(p + 24);
    h->ended = 0;
    size_t off[BD_RO_COUNT], size[BD_RO_COUNT];
    size_t need = bd_rollout_layout(h, off, size);
    if (need == 0)
        return bd_seterr(BD_EPROTO, "ROLLOUT with impossible dims T=%u N=%u S=%u U=%u", h->T, h->N,
                         h->S, h->U);
    if (need > len)
        return bd_seterr(BD_EPROTO, "ROLLOUT T=%u N=%u S=%u U=%u needs at least %zu bytes, got %zu", h->T,
                         h->N, h->S, h->U, need, len);
    /* the flags say how many final observations follow */
    h->ended = bd_rollout_count_ended(p + off[BD_RO_TERMINATED], p + off[BD_RO_TRUNCATED], size[BD_RO_TERMINATED]);
    need = bd_rollout_layout(h, off, size);
    if (need != len)
        return bd_seterr(BD_EPROTO, "ROLLOUT T=%u N=%u S=%u U=%u needs %zu bytes, got %zu", h->T,
                         h->N, h->S, h->U, need, len);
    return BD_OK;
}

struct timespec bd_timespec_after(clockid_t clk, long ms)
{
    struct timespec t;
    clock_gettime(clk, &t);
    t.tv_sec += ms / 1000;
    t.tv_nsec += ms % 1000 * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}

/* ---- bounded close -------------------------------------------------------------- */

typedef struct {
    nng_socket s;
    int done, refs;
    pthread_mutex_t mu;
    pthread_cond_t cv;
} bd_closer;

static int bd_nng_stuck; /* a close timed out: NNG's one reaper thread is stuck for good */

int bd_nng_wedged(void)
{
    return __atomic_load_n(&bd_nng_stuck, __ATOMIC_RELAXED);
}

static void bd_closer_put(bd_closer *c)
{
    int last = --c->refs == 0; /* under c->mu */
    pthread_mutex_unlock(&c->mu);
    if (last) {
        pthread_cond_destroy(&c->cv);
        pthread_mutex_destroy(&c->mu);
        free(c);
    }
}

static void *bd_closer_main(void *arg)
{
    bd_closer *c = arg;
    nng_close(c->s);
    pthread_mutex_lock(&c->mu);
    c->done = 1;
    pthread_cond_signal(&c->cv);
    bd_closer_put(c);
    return NULL;
}

int bd_nng_close_within(nng_socket s, int ms)
{
    if (bd_nng_wedged()) /* it would wait for the stuck reaper too: left open */
        return 0;
    bd_closer *c = calloc(1, sizeof *c);
    pthread_condattr_t ca;
    pthread_t t;
    if (!c) {
        nng_close(s);
        return 1;
    }
    c->s = s;
    c->refs = 2;
    pthread_mutex_init(&c->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&c->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&t, NULL, bd_closer_main, c) != 0) {
        nng_close(s);
        c->refs = 1;
        pthread_mutex_lock(&c->mu);
        bd_closer_put(c);
        return 1;
    }
    pthread_detach(t);
    const struct timespec until = bd_timespec_after(CLOCK_MONOTONIC, ms);
    pthread_mutex_lock(&c->mu);
    while (!c->done && pthread_cond_timedwait(&c->cv, &c->mu, &until) == 0) {
    }
    const int done = c->done;
    bd_closer_put(c);
    if (!done)
        __atomic_store_n(&bd_nng_stuck, 1, __ATOMIC_RELAXED);
    return done;
}
