/* test_wire.c: header encode/decode, refusal of bad headers and payloads, a real NNG
 * round trip of HELLO/WEIGHTS/ROLLOUT, the gather-and-answer round with three peers, and
 * the acknowledged event channel. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>

#include "wire/events.h"
#include "wire/round.h"
#include "wire/wire.h"

static void make_msg(uint8_t *buf, uint16_t type, uint64_t plen)
{
    bd_wire_header h = {BD_WIRE_MAGIC, BD_WIRE_VERSION, type, 7, 42, plen};
    bd_wire_header_encode(&h, buf);
}

Test(wire, header_round_trip)
{
    uint8_t buf[BD_WIRE_HEADER_SIZE + 5] = {0};
    make_msg(buf, BD_MSG_EVENT, 5);
    memcpy(buf + BD_WIRE_HEADER_SIZE, "hello", 5);
    /* the encoding is little-endian and fixed */
    cr_assert_eq(buf[0], 'B');
    cr_assert_eq(buf[1], 'D');
    cr_assert_eq(buf[2], 'H');
    cr_assert_eq(buf[3], 'I');
    bd_wire_header h;
    const uint8_t *p;
    cr_assert_eq(bd_wire_decode(buf, sizeof buf, &h, &p), BD_OK);
    cr_assert_eq(h.type, BD_MSG_EVENT);
    cr_assert_eq(h.sender, 7);
    cr_assert_eq(h.seq, 42);
    cr_assert_eq(h.payload_len, 5);
    cr_assert_eq(memcmp(p, "hello", 5), 0);
}

Test(wire, refuses_bad_headers)
{
    uint8_t buf[64] = {0};
    bd_wire_header h;
    const uint8_t *p;
    make_msg(buf, BD_MSG_EVENT, 0);
    cr_assert_eq(bd_wire_decode(buf, 10, &h, &p), BD_EPROTO, "short message");
    cr_assert(strstr(bd_lasterr(), "shorter"));
    buf[0] = 'X';
    cr_assert_eq(bd_wire_decode(buf, BD_WIRE_HEADER_SIZE, &h, &p), BD_EPROTO, "bad magic");
    make_msg(buf, BD_MSG_EVENT, 0);
    buf[4] = 9; /* version 9 */
    cr_assert_eq(bd_wire_decode(buf, BD_WIRE_HEADER_SIZE, &h, &p), BD_EVERSION);
    cr_assert(strstr(bd_lasterr(), "version 9"));
    make_msg(buf, 77, 0);
    cr_assert_eq(bd_wire_decode(buf, BD_WIRE_HEADER_SIZE, &h, &p), BD_EPROTO, "unknown type");
    make_msg(buf, BD_MSG_EVENT, 1000); /* says 1000 bytes, carries 8 */
    cr_assert_eq(bd_wire_decode(buf, BD_WIRE_HEADER_SIZE + 8, &h, &p), BD_EPROTO);
    make_msg(buf, BD_MSG_EVENT, UINT64_MAX);
    cr_assert_eq(bd_wire_decode(buf, 64, &h, &p), BD_EPROTO, "huge length");
}

Test(wire, weights_and_hello_payloads)
{
    float params[3] = {1.5f, -2.0f, 3.25f};
    uint8_t buf[128];
    bd_weights_hdr w = {.version = 9, .nparams = 1, .flags = BD_WEIGHTS_STOP, .rollout_steps = 64,
                        .hidden = 32, .layers = 2, .norm_dims = 1}, r;
    cr_assert_eq(bd_weights_floats(&w), 3);
    bd_weights_encode(&w, params, buf);
    const uint8_t *pp;
    cr_assert_eq(bd_weights_decode(buf, bd_weights_size(&w), &r, &pp), BD_OK);
    cr_assert(r.version == w.version && r.nparams == w.nparams && r.flags == w.flags
                  && r.rollout_steps == w.rollout_steps && r.hidden == w.hidden && r.layers == w.layers
                  && r.norm_dims == w.norm_dims,
              "every header field round-trips");
    float back[3];
    memcpy(back, pp, sizeof back);
    cr_assert_eq(memcmp(back, params, sizeof back), 0);
    cr_assert_eq(bd_weights_decode(buf, bd_weights_size(&w) - 1, &r, &pp), BD_EPROTO);
    cr_assert_eq(bd_weights_decode(buf, 10, &r, &pp), BD_EPROTO);
    w.nparams = 0;
    w.norm_dims = 0;
    bd_weights_encode(&w, NULL, buf);
    memset(buf + 8, 0x7f, 8); /* nparams field now lies: ~9e18 floats */
    cr_assert_eq(bd_weights_decode(buf, BD_WEIGHTS_HDR_SIZE, &r, &pp), BD_EPROTO);
    bd_weights_encode(&w, NULL, buf);
    memset(buf + 32, 0xff, 4); /* norm_dims lies: 2^33 floats */
    cr_assert_eq(bd_weights_decode(buf, BD_WEIGHTS_HDR_SIZE + 16, &r, &pp), BD_EPROTO);

    bd_hello h = {1, 100, 50, 4, 1, 1234}, g;
    bd_hello_encode(&h, buf);
    cr_assert_eq(bd_hello_decode(buf, BD_HELLO_SIZE, &g), BD_OK);
    cr_assert_eq(memcmp(&h, &g, sizeof h), 0);
    cr_assert_eq(bd_hello_decode(buf, BD_HELLO_SIZE + 1, &g), BD_EPROTO);
}

Test(wire, rollout_layout_and_refusals)
{
    bd_rollout_hdr h = {1, 8, 3, 4, 1, 3, 5}, g;
    size_t off[BD_RO_COUNT], size[BD_RO_COUNT];
    size_t total = bd_rollout_layout(&h, off, size);
    /* 8*3 steps: obs 4 + act 1 + logp, val, rew, fval (4 floats) = 9 floats, +2 flags; + last (3) */
    cr_assert_eq(total, BD_ROLLOUT_HDR_SIZE + 24 * (9 * 4 + 2) + 3 * 4);
    uint8_t buf[BD_ROLLOUT_HDR_SIZE];
    bd_rollout_hdr_encode(&h, buf);
    cr_assert_eq(bd_rollout_decode(buf, BD_ROLLOUT_HDR_SIZE, &g), BD_EPROTO, "too short for dims");
    h.T = 0;
    bd_rollout_hdr_encode(&h, buf);
    cr_assert_eq(bd_rollout_decode(buf, BD_ROLLOUT_HDR_SIZE, &g), BD_EPROTO, "T = 0");
    h.T = 0xFFFFFFFFu;
    h.N = 0xFFFFFFFFu;
    bd_rollout_hdr_encode(&h, buf);
    cr_assert_eq(bd_rollout_decode(buf, BD_ROLLOUT_HDR_SIZE, &g), BD_EPROTO, "overflowing dims");
}

Test(wire, nng_round_trip_and_type_check)
{
    char url[128];
    snprintf(url, sizeof url, "ipc:///tmp/bodhi-test-wire-%d.sock", (int)getpid());
    nng_socket rep, req;
    cr_assert_eq(nng_rep0_open(&rep), 0);
    cr_assert_eq(nng_listen(rep, url, NULL, 0), 0);
    cr_assert_eq(nng_req0_open(&req), 0);
    cr_assert_eq(nng_dial(req, url, NULL, 0), 0);
    nng_msg *m;
    uint8_t *p;
    cr_assert_eq(bd_wire_msg_alloc(&m, BD_MSG_HELLO, 3, 1, BD_HELLO_SIZE, &p), BD_OK);
    bd_hello h = {3, 10, 20, 4, 1, 99};
    bd_hello_encode(&h, p);
    cr_assert_eq(nng_sendmsg(req, m, 0), 0);
    cr_assert_eq(nng_recvmsg(rep, &m, 0), 0);
    bd_wire_header wh;
    const uint8_t *pl;
    cr_assert_eq(bd_wire_msg_decode(m, BD_MSG_ROLLOUT, &wh, &pl), BD_EPROTO, "wrong type refused");
    cr_assert(strstr(bd_lasterr(), "expected a ROLLOUT"));
    cr_assert_eq(bd_wire_msg_decode(m, BD_MSG_HELLO, &wh, &pl), BD_OK);
    bd_hello g;
    cr_assert_eq(bd_hello_decode(pl, wh.payload_len, &g), BD_OK);
    cr_assert_eq(g.worlds, 10);
    cr_assert_eq(wh.sender, 3);
    nng_msg_free(m);
    nng_close(req);
    nng_close(rep);
}

typedef struct {
    const char *url;
    int rc;
} sender_arg;

static void *send_one(void *p)
{
    sender_arg *a = p;
    bd_events *c;
    a->rc = bd_events_dial(a->url, 5, &c);
    if (a->rc != BD_OK)
        return NULL;
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "event", "ready");
    a->rc = bd_events_send(c, e); /* returns only once the conductor side acknowledged */
    cJSON_Delete(e);
    bd_events_close(c);
    return NULL;
}

Test(wire, events_are_acknowledged)
{
    char url[128];
    snprintf(url, sizeof url, "ipc:///tmp/bodhi-test-events-%d.sock", (int)getpid());
    bd_events *srv;
    cr_assert_eq(bd_events_listen(url, &srv), BD_OK);
    sender_arg a = {url, -1};
    pthread_t th;
    pthread_create(&th, NULL, send_one, &a);
    cJSON *got;
    uint32_t sender;
    cr_assert_eq(bd_events_recv(srv, 5000, &got, &sender), BD_OK);
    cr_assert_eq(sender, 5);
    cr_assert_str_eq(cJSON_GetObjectItem(got, "event")->valuestring, "ready");
    cJSON_Delete(got);
    pthread_join(th, NULL);
    cr_assert_eq(a.rc, BD_OK, "sender saw its acknowledgement");
    cr_assert_eq(bd_events_recv(srv, 50, &got, &sender), BD_ETIMEDOUT);
    bd_events_close(srv);
}

/* A peer of the round: sends "peer k, round r" and checks the answer echoes it, rounds
 * times, then hangs up. */
typedef struct {
    char url[128];
    int k, rounds, ok;
} round_peer;

static void *round_peer_main(void *arg)
{
    round_peer *p = arg;
    nng_socket s;
    if (nng_req0_open(&s) != 0)
        return NULL;
    nng_socket_set_ms(s, NNG_OPT_RECONNMINT, 10);
    nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 10000);
    if (nng_dial(s, p->url, NULL, NNG_FLAG_NONBLOCK) != 0) {
        nng_close(s);
        return NULL;
    }
    int ok = 1;
    for (int r = 0; r < p->rounds && ok; r++) {
        char text[32], back[64] = "";
        snprintf(text, sizeof text, "peer %d, round %d", p->k, r);
        size_t len = sizeof back - 1;
        char *buf = NULL;
        ok = nng_send(s, text, strlen(text) + 1, 0) == 0 && nng_recv(s, &buf, &len, NNG_FLAG_ALLOC) == 0;
        if (ok) {
            snprintf(back, sizeof back, "%.*s", (int)len, buf);
            nng_free(buf, len);
            char want[64];
            snprintf(want, sizeof want, "answer to %s", text);
            ok = strcmp(back, want) == 0;
        }
    }
    p->ok = ok;
    nng_close(s);
    return NULL;
}

Test(wire, round_holds_every_peer_then_answers_all)
{
    enum { PEERS = 3, ROUNDS = 4 };
    char url[128];
    snprintf(url, sizeof url, "ipc:///tmp/bd-test-round-%d", (int)getpid());
    bd_round *r;
    cr_assert_eq(bd_round_listen(url, PEERS, &r), BD_OK, "%s", bd_lasterr());
    round_peer peers[PEERS];
    pthread_t th[PEERS];
    for (int k = 0; k < PEERS; k++) {
        peers[k] = (round_peer){.k = k, .rounds = ROUNDS};
        snprintf(peers[k].url, sizeof peers[k].url, "%s", url);
        pthread_create(&th[k], NULL, round_peer_main, &peers[k]);
    }
    for (int round = 0; round < ROUNDS; round++) {
        cr_assert_eq(bd_round_gather(r, NULL), BD_OK, "%s", bd_lasterr());
        int seen[PEERS] = {0};
        for (int i = 0; i < PEERS; i++) { /* every peer's request of this round is held */
            nng_msg *m = bd_round_request(r, i);
            cr_assert_not_null(m);
            int k = -1, rr = -1;
            cr_assert_eq(sscanf(nng_msg_body(m), "peer %d, round %d", &k, &rr), 2);
            cr_assert(k >= 0 && k < PEERS && rr == round, "slot %d holds peer %d round %d", i, k, rr);
            seen[k]++;
        }
        for (int k = 0; k < PEERS; k++)
            cr_assert_eq(seen[k], 1, "peer %d once per round", k);
        for (int i = 0; i < PEERS; i++) {
            nng_msg *a;
            cr_assert_eq(nng_msg_alloc(&a, 0), 0);
            nng_msg_append(a, "answer to ", 10);
            nng_msg_append(a, nng_msg_body(bd_round_request(r, i)), nng_msg_len(bd_round_request(r, i)));
            cr_assert_eq(bd_round_answer(r, i, a), BD_OK, "%s", bd_lasterr());
        }
        bd_round_release(r);
    }
    for (int k = 0; k < PEERS; k++) {
        pthread_join(th[k], NULL);
        cr_assert(peers[k].ok, "peer %d got its answers", k);
    }
    bd_round_wait_hangup(r, 5.0, NULL);
    /* a gather that nobody answers ends when the stop flag is set */
    volatile sig_atomic_t stop = 1;
    cr_assert_eq(bd_round_gather(r, &stop), BD_EINTR);
    bd_round_close(r);
}
