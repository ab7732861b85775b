/* cp2p: batching emitter (the push phase of Hyperledger Fabric's gossip, gossip/batcher.go).
 *
 * Messages to broadcast are queued; the whole queue is emitted when `burst_size` messages wait
 * for their first emission, or when `max_latency_ms` has passed since the current round began.
 * Each emission sends every queued message once and decrements its remaining iteration count;
 * a message with iterations left stays queued for later emissions, which pick new peers for it.
 * Each message has a kind (0 .. n_kinds-1); each kind has its own peer filter (e.g. "same
 * organisation", "member of the channel") and fan-out. Peers are chosen at random, through a
 * caller-provided random function, among the candidates that pass the kind's filter. All that one
 * emission sends to one peer is coalesced into ONE call of the send callback (one frame per peer
 * per emission).
 *
 * Sans-I/O: no clock, no thread, no randomness source. The caller passes `now_ms`, arms a timer
 * from cp2p_emitter_next_deadline() and calls cp2p_emitter_tick() when it fires (and right after
 * an add that makes the deadline due). An emitter must not be used from two threads at once; the
 * send callback and the filters must not call back into the emitter (such calls fail with
 * CP2P_ESTATE).
 */
#ifndef CP2P_EMITTER_H
#define CP2P_EMITTER_H

#include <stdbool.h>
#include <stdint.h>

#include <cp2p/common.h>
#include <cp2p/peer_id.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cp2p_emitter cp2p_emitter;

/* Does `peer` receive messages of this kind? Called at most once per candidate and kind per
 * emission, from inside cp2p_emitter_tick()/cp2p_emitter_flush(). `peer` is borrowed. */
typedef bool (*cp2p_emitter_filter_fn)(const cp2p_peer_id *peer, void *ud);

/* Uniform random 64-bit value (caller's source: a CSPRNG, or a seeded PRNG in a simulator). */
typedef uint64_t (*cp2p_emitter_rand_fn)(void *ud);

/* One coalesced frame: `msgs[0..n)` (n >= 1) go to `peer`, in the order they were added. The
 * slices and `peer` are borrowed for the duration of the call: copy what must outlive it. */
typedef void (*cp2p_emitter_send_fn)(const cp2p_peer_id *peer, const cp2p_slice *msgs, size_t n,
                                     void *ud);

/* Routing of one message kind. */
typedef struct cp2p_emitter_kind {
    cp2p_emitter_filter_fn filter; /* NULL: every candidate peer is eligible */
    void *filter_ud;
    uint32_t fanout;               /* peers per message per emission; 0: config.fanout */
} cp2p_emitter_kind;

typedef struct cp2p_emitter_config {
    uint32_t iterations;       /* emissions of each message (Fabric PropagateIterations: 1) */
    uint32_t burst_size;       /* messages awaiting their first emission that trigger one
                                * (Fabric MaxPropagationBurstSize: 10) */
    uint64_t max_latency_ms;   /* longest wait of a queued message (Fabric
                                * MaxPropagationBurstLatency: 10 ms) */
    uint32_t fanout;           /* default peers per message (Fabric PropagatePeerNum: 3) */
    uint32_t max_buffered;     /* queued messages; beyond, add fails with CP2P_EFULL (10,000) */
    size_t max_buffered_bytes; /* queued bytes incl. bookkeeping; beyond: CP2P_EFULL (64 MiB) */
    size_t max_msg_bytes;      /* one message; beyond, add fails with CP2P_ELIMIT (4 MiB) */
    const cp2p_emitter_kind *kinds; /* n_kinds entries, copied by cp2p_emitter_new */
    size_t n_kinds;            /* 0: one kind (0) with no filter and the default fan-out */
    cp2p_emitter_send_fn send; /* required */
    void *send_ud;
} cp2p_emitter_config;

typedef struct cp2p_emitter_stats {
    uint64_t added;           /* messages accepted by cp2p_emitter_add */
    uint64_t emitted_batches; /* emissions (tick when due, or flush) with at least one message */
    uint64_t sends;           /* send callback calls (coalesced frames) */
    uint64_t messages_sent;   /* message copies handed to the send callback, over all frames */
    uint64_t refused_full;    /* adds refused with CP2P_EFULL (count or byte bound) */
    uint64_t refused_limit;   /* adds refused with CP2P_ELIMIT (message too large) */
    uint64_t unrouted;        /* message iterations spent with no eligible peer */
} cp2p_emitter_stats;

/* Fill *cfg with Fabric's defaults (iterations 1, burst 10, latency 10 ms, fan-out 3) and our
 * bounds (10,000 messages, 64 MiB, 4 MiB per message); kinds NULL, send NULL. Any thread. */
CP2P_API void cp2p_emitter_config_default(cp2p_emitter_config *cfg);

/* Create an emitter. `cfg` and its kinds array are copied. Returns 0 and *out, or CP2P_EINVAL
 * (NULL send, iterations 0 or over 16, burst_size 0, fan-out 0 or over 64, more than 64 kinds,
 * max_buffered 0 or over 1,000,000, max_msg_bytes 0), or CP2P_ENOMEM. */
CP2P_API CP2P_NODISCARD int cp2p_emitter_new(const cp2p_emitter_config *cfg, cp2p_emitter **out);
/* Free the emitter and every queued message (not sent). NULL is a no-op. */
CP2P_API void cp2p_emitter_free(cp2p_emitter *e);

/* Queue `len` bytes (copied: `msg` is free on return) of kind `kind`, at time `now_ms`.
 * Returns 0; CP2P_EINVAL (kind out of range, NULL msg with len > 0); CP2P_ELIMIT (len over
 * max_msg_bytes, counted); CP2P_EFULL (the queue holds max_buffered messages or the message
 * would pass max_buffered_bytes, counted: the caller keeps its message and may retry after the
 * next emission -- we reject the newest rather than evict older ones because an evicted message
 * would silently miss its remaining iterations); CP2P_ENOMEM; CP2P_ESTATE (called from a
 * callback). Never sends: when the add makes an emission due, next_deadline returns now_ms. */
CP2P_API CP2P_NODISCARD int cp2p_emitter_add(cp2p_emitter *e, const void *msg, size_t len,
                                             uint32_t kind, uint64_t now_ms);

/* Absolute time (ms) at which cp2p_emitter_tick must next be called: `now_ms` (or earlier) if an
 * emission is due, UINT64_MAX when nothing is queued. */
CP2P_API uint64_t cp2p_emitter_next_deadline(const cp2p_emitter *e, uint64_t now_ms);

/* If an emission is due at `now_ms`, emit once to peers chosen among `peers[0..n_peers)`
 * (borrowed; distinct peers expected: duplicates are treated as different peers). The send
 * callback runs once per chosen peer before this returns. Returns 1 (emitted), 0 (not due or
 * empty), CP2P_EINVAL (NULL rnd, NULL peers with n_peers > 0), CP2P_ELIMIT (over 65,536
 * peers), CP2P_ENOMEM (nothing emitted, queue unchanged: retry later), CP2P_ESTATE (from a
 * callback). */
CP2P_API CP2P_NODISCARD int cp2p_emitter_tick(cp2p_emitter *e, uint64_t now_ms,
                                              const cp2p_peer_id *peers, size_t n_peers,
                                              cp2p_emitter_rand_fn rnd, void *rnd_ud);
/* Emit once now, due or not (same arguments and results as tick; 0 only when empty). One call
 * spends one iteration of each queued message: call it while cp2p_emitter_pending() > 0 to
 * drain everything (e.g. before shutdown). */
CP2P_API CP2P_NODISCARD int cp2p_emitter_flush(cp2p_emitter *e, uint64_t now_ms,
                                               const cp2p_peer_id *peers, size_t n_peers,
                                               cp2p_emitter_rand_fn rnd, void *rnd_ud);

/* Messages queued now (with at least one iteration left). */
CP2P_API size_t cp2p_emitter_pending(const cp2p_emitter *e);
/* Counters since creation; the pointer stays valid until cp2p_emitter_free. */
CP2P_API const cp2p_emitter_stats *cp2p_emitter_stats_get(const cp2p_emitter *e);

#ifdef __cplusplus
}
#endif
#endif
