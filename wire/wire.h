/* wire.h: bodhi's NNG message framing, shared by conductor, brains and muscles.
 *
 * Every message is a 24-byte header followed by a payload:
 *   magic u32 "BDHI" | version u16 | type u16 | sender u32 | seq u32 | payload_len u64
 * little-endian. Decoders never trust lengths: a message shorter than its header, with
 * a wrong magic, an unknown type or a payload_len that disagrees with the message size is
 * refused with BD_EPROTO; another protocol version with BD_EVERSION. Payloads are raw
 * little-endian arrays; their own small headers are checked the same way.
 *
 * Messages:
 *   HELLO    muscle -> brain   bd_hello (who it is, which worlds it holds)
 *   WEIGHTS  brain -> muscle   bd_weights_hdr + float32 parameters and normaliser (flags: STOP)
 *   ROLLOUT  muscle -> brain   bd_rollout_hdr + arrays (see bd_rollout_layout)
 *   EVENT    child -> conductor  JSON text (wire/events.h); the answer may carry JSON
 *   STATUS   client <-> conductor control socket: JSON text
 *   BEAT     child -> conductor  heartbeat, JSON text; the answer may carry JSON
 *   JOIN     remote muscle -> conductor  asks for a slot, JSON text; the answer (JSON)
 *            carries the run file, the phase, its id and the brains' ports, or says wait
 *   STEER    client <-> conductor control socket: `bodhi set` and `bodhi stop`, JSON text
 *            from BD_SENDER_CONTROL; the answer (JSON) says whether it was taken
 */
#ifndef BODHI_WIRE_WIRE_H
#define BODHI_WIRE_WIRE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <nng/nng.h>

#include "bodhi/bodhi.h"

#define BD_WIRE_MAGIC 0x49484442u /* "BDHI" as little-endian bytes */
#define BD_WIRE_VERSION 6 /* 6: HELLO carries a remote muscle's grant; 5: WEIGHTS describes the policy
                            (kind, head, sizes); 4: the normaliser's inverse std (3: its variance) */
#define BD_WIRE_HEADER_SIZE 24
/* What NNG puts in front of a message on the wire (REQ/REP: the request id), counted in
 * its receive limit (NNG_OPT_RECVMAXSZ) */
#define BD_WIRE_SP_SLACK 64

typedef enum {
    BD_MSG_HELLO = 1,
    BD_MSG_WEIGHTS = 2,
    BD_MSG_ROLLOUT = 3,
    BD_MSG_EVENT = 4,
    BD_MSG_STATUS = 5,
    BD_MSG_BEAT = 6,
    BD_MSG_JOIN = 7,
    BD_MSG_STEER = 8,
    BD_MSG_TYPE_MAX = 8
} bd_msg_type;

/* Senders: a muscle is its id (0 .. 8191), a brain BD_SENDER_BRAIN + its agent index, a
 * remote muscle that has no id yet BD_SENDER_JOINING, a user's command on the control
 * socket (bodhi set, bodhi stop) BD_SENDER_CONTROL, the conductor 0 in its answers. */
#define BD_SENDER_BRAIN 0x100000u
#define BD_SENDER_JOINING 0x40000000u
#define BD_SENDER_CONTROL 0x50000000u

typedef struct {
    uint32_t magic;
    uint16_t version;
    uint16_t type;
    uint32_t sender;
    uint32_t seq;
    uint64_t payload_len;
} bd_wire_header;

/* Writes h as 24 little-endian bytes. */
void bd_wire_header_encode(const bd_wire_header *h, uint8_t out[BD_WIRE_HEADER_SIZE]);

/* Validates and decodes msg (len bytes): header into *h, *payload points into msg. */
int bd_wire_decode(const void *msg, size_t len, bd_wire_header *h, const uint8_t **payload);

/* Allocates an nng message of header + payload_len bytes with the header filled in;
 * *payload points at the payload area for the caller to fill. */
int bd_wire_msg_alloc(nng_msg **m, bd_msg_type type, uint32_t sender, uint32_t seq,
                      size_t payload_len, uint8_t **payload);

/* Decodes an nng message and checks its type (expect 0 = any). */
int bd_wire_msg_decode(nng_msg *m, bd_msg_type expect, bd_wire_header *h,
                       const uint8_t **payload);

/* ---- payloads ---------------------------------------------------------------------- */

typedef struct {
    uint32_t muscle;   /* muscle id 0..W-1 */
    uint32_t worlds;   /* worlds in its shard (N_k) */
    uint32_t world0;   /* global index of its first world */
    uint32_t obs_dim;  /* sensors it will send per world for this agent */
    uint32_t act_dim;  /* actuators per world */
    uint32_t pid;
    uint32_t epoch;    /* a remote muscle's grant (the conductor's JOIN answer): its number */
    uint8_t grant[16]; /* ... and its MAC (wire/tls.h, bd_tls_grant); 0 from a local muscle */
} bd_hello;
#define BD_HELLO_SIZE 44

void bd_hello_encode(const bd_hello *h, uint8_t *out);
int bd_hello_decode(const uint8_t *p, size_t len, bd_hello *h);

/* A brain's answer to each muscle: every round's new policy, and everything a muscle needs
 * to build that policy, so that muscles never read the brain's own params. */
enum { BD_WEIGHTS_STOP = 1u };
/* The policy a WEIGHTS message describes, and its action head. */
enum {
    BD_POLICY_NONE = 0, /* no network: the muscle acts without one (random, rules) */
    BD_POLICY_MLP = 1,  /* an actor-critic MLP (torch/policy.cpp): `layers` tanh layers of `hidden` */
    BD_POLICY_Q_MLP = 2, /* a Q-network (torch/policy.cpp, BDT_Q): `layers` ReLU layers of `hidden`, one
                            value per discrete action */
};
enum {
    BD_HEAD_NONE = 0,
    BD_HEAD_CATEGORICAL = 1,       /* act_dim logits, one discrete actuator */
    BD_HEAD_GAUSSIAN = 2,          /* act_dim means and a state-independent log std */
    BD_HEAD_SQUASHED_GAUSSIAN = 3, /* SAC: tanh of a Gaussian, 2 act_dim outputs (means, log stds) */
    BD_HEAD_Q = 4,                 /* Q-values per discrete action: epsilon-greedy argmax */
};
/* Floats a head adds after the parameters and the normaliser: BD_HEAD_Q sends its
 * exploration rate epsilon (the brain's schedule; muscles of a test phase act greedily). */
#define BD_WEIGHTS_HEAD_FLOATS(head) ((head) == BD_HEAD_Q ? 1u : 0u)
typedef struct {
    uint64_t version;       /* policy version (updates so far) */
    uint64_t nparams;       /* policy parameters that follow (0: the brain sends no network) */
    uint32_t flags;         /* BD_WEIGHTS_STOP: the phase is over, exit */
    uint32_t rollout_steps; /* T: steps each muscle collects per round */
    uint32_t hidden;        /* the policy network's shape: units per hidden layer ... */
    uint32_t layers;        /* ... and hidden layers (0, 0 without a network) */
    uint32_t norm_dims;     /* S when an observation normaliser (S means, then S inverse
                               standard deviations, as floats the learner uses too)
                               follows the parameters, else 0 */
    uint32_t policy;        /* BD_POLICY_*: the network the muscle builds */
    uint32_t head;          /* BD_HEAD_*: how it turns the network's output into actions */
    uint32_t obs_dim;       /* the network's inputs (the agent's sensors; 0 without one) */
    uint32_t act_dim;       /* its head's width: logits, or action dimensions (0 without one) */
} bd_weights_hdr;
#define BD_WEIGHTS_HDR_SIZE 52

/* Floats after the header: nparams + 2 norm_dims + BD_WEIGHTS_HEAD_FLOATS(head). */
uint64_t bd_weights_floats(const bd_weights_hdr *h);
/* Message payload size for h's floats (0 when they could not fit in memory). */
size_t bd_weights_size(const bd_weights_hdr *h);
/* floats: bd_weights_floats(h) of them (may be NULL when that is 0). */
void bd_weights_encode(const bd_weights_hdr *h, const float *floats, uint8_t *out);
/* Validates; *floats points into p (copy with memcpy; it may be unaligned). */
int bd_weights_decode(const uint8_t *p, size_t len, bd_weights_hdr *h, const uint8_t **floats);

typedef struct {
    uint32_t muscle, T, N, S, U, world0;
    uint64_t version;  /* weights version the rollout was collected with */
    uint64_t ended;    /* not in the 32 header bytes: the (t, world) pairs whose episode
                          ended (terminated or truncated), which the flags say; the final
                          observations' size follows from it */
} bd_rollout_hdr;
#define BD_ROLLOUT_HDR_SIZE 32

/* Array order after the rollout header (byte offsets filled by bd_rollout_layout):
 *   obs (T,N,S) f32, actions (T,N,U) f32, logp (T,N) f32, values (T,N) f32,
 *   rewards (T,N) f32, final_values (T,N) f32 (value of the final obs where truncated,
 *   else 0), last_values (N) f32 (value of the obs after step T-1),
 *   terminated (T,N) u8, truncated (T,N) u8, final_obs (ended, S) f32: the sensors a
 *   world saw as its episode ended (before the reset), one row per (t, world) with
 *   terminated or truncated set, t-major, in world order. */
enum {
    BD_RO_OBS, BD_RO_ACTIONS, BD_RO_LOGP, BD_RO_VALUES, BD_RO_REWARDS, BD_RO_FINAL_VALUES,
    BD_RO_LAST_VALUES, BD_RO_TERMINATED, BD_RO_TRUNCATED, BD_RO_FINAL_OBS, BD_RO_COUNT
};

#define BD_RO_MAX_DIM (1u << 24)          /* the most steps (T) or worlds (N) in one rollout */
#define BD_RO_MAX_BYTES ((size_t)1 << 40) /* the most bytes one rollout message may hold */

/* Offsets (from the payload start) and total payload size for the header's dims and
 * h->ended. Returns 0 when the dims overflow or exceed limits. */
size_t bd_rollout_layout(const bd_rollout_hdr *h, size_t off[BD_RO_COUNT], size_t size[BD_RO_COUNT]);
void bd_rollout_hdr_encode(const bd_rollout_hdr *h, uint8_t *out);
/* Validates the header and that len equals the layout's size, with h->ended counted
 * from the message's own flags. */
int bd_rollout_decode(const uint8_t *p, size_t len, bd_rollout_hdr *h);
/* Checks what a decoded rollout (p, len: bd_rollout_decode's) says before anything learns
 * from it: every observation, log-probability, value, reward, final value, last value and
 * final observation finite; every flag 0 or 1; with n_actions > 0 (one discrete
 * actuator) every action a whole number in [0, n_actions), else every action finite.
 * BD_EPROTO naming the first bad entry ("rewards[t=3, world=5] is nan"). */
int bd_rollout_check(const uint8_t *p, size_t len, const bd_rollout_hdr *h, uint32_t n_actions);

/* The (t, world) pairs of a (T, N) batch with terminated or truncated set. */
uint64_t bd_rollout_count_ended(const uint8_t *terminated, const uint8_t *truncated, size_t tn);

/* nng errors as bd errors with context. */
int bd_nng_err(int nng_rv, const char *what);

/* The time ms milliseconds from now on clock clk (CLOCK_REALTIME for
 * pthread_cond_timedwait's default clock, CLOCK_MONOTONIC for deadlines). */
struct timespec bd_timespec_after(clockid_t clk, long ms);

/* nng_close(s) on a thread of its own, waited for at most ms: 1 when it returned, 0 when
 * it did not (it goes on there, and the socket's callbacks may still come: what they
 * point to must stay). NNG 1.5.2 (Debian 12's) can hang in nng_close for good, its one
 * reaper thread waiting on a connection (nanomsg/nng#1813, fixed in 1.9): a remote muscle
 * that had refused a run file then never exited. After one such hang every later close
 * would wait on the same reaper, so bd_nng_wedged() says 1 and bd_nng_close_within leaves
 * sockets open at once (a process in that state should finish what it must and exit). */
#define BD_NNG_CLOSE_MS 5000
int bd_nng_close_within(nng_socket s, int ms);
int bd_nng_wedged(void);

#endif
