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
 * max_buffered 0 or over 1,000,000, max_msg_bytes 0), CP2P_ENOMEM, or CP2P_EIO (libsodium could
 * not be initialised for the keyed hash of peer IDs). */
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

/* ---- the emitter on a host (src/emitter/emitter_uv.c) ----
 *
 * A cp2p_emitter bound to a cp2p_host (cp2p/host.h): application broadcast with per-kind peer
 * filters, as Fabric's gossip uses its batcher. The binding arms a libuv timer from
 * cp2p_emitter_next_deadline(), and when it fires calls cp2p_emitter_tick() with the candidate
 * peers: the peers with an open connection whose identify lists the emitter's protocol ID (so
 * a peer counts once identify has arrived; a peer that stops announcing the protocol stops
 * being a candidate). Randomness comes from libsodium.
 *
 * Wire format, on streams negotiated to the protocol ID (default "/cp2p/emitter/1.0.0"): a
 * stream carries a sequence of frames, each
 *
 *     frame   = uvarint count, then `count` times: uvarint len, then `len` message bytes
 *
 * with 1 <= count <= max_recv_frame_msgs and len <= max_recv_msg_bytes (uvarints minimal, at
 * most 9 bytes, as cp2p/codec.h). One emission writes exactly ONE frame per chosen peer
 * holding every message chosen for that peer, in add order. The message kind is not sent:
 * kinds only route. The receiver parses as bytes arrive, checks each count and length before
 * buffering anything for it, buffers at most one message body, and hands each message to the
 * receive handler as soon as it is complete (zero-copy when it lies within one read). A
 * malformed frame (count 0 or over the limit, length over the limit, bad uvarint) resets that
 * stream only and is counted (`malformed`); messages of the frame before the fault were
 * already delivered. A stream ending in the middle of a frame is counted as `truncated`.
 *
 * Streams: we keep ONE long-lived outbound stream per peer, opened when the first frame for
 * the peer is ready and reopened (on the next frame) after it dies; frames produced while it
 * is being opened wait in a bounded per-peer queue (max_pending_frames, max_pending_bytes;
 * beyond, the frame is dropped and counted). We never read data from our outbound streams, and
 * the peer's outbound stream to us is our inbound one: a pair of peers uses up to two streams.
 * A frame the stream refuses (its write buffer is full: the peer reads too slowly) is dropped
 * and counted. Everything is best effort, as in Fabric: no acknowledgements, no retries.
 *
 * Threading: loop thread only (the host's). The receive handler must not close the emitter;
 * it may add messages. The emitter is a service of the host (cp2p/service.h): close it with
 * cp2p_host_emitter_close, or let cp2p_host_close close it (queued messages are dropped); its
 * handle is invalid once the host's close has begun closing it. */

/* Default protocol ID of the emitter binding. */
#define CP2P_HOST_EMITTER_PROTOCOL "/cp2p/emitter/1.0.0"

typedef struct cp2p_host cp2p_host; /* cp2p/host.h (repeated typedef: same type) */
typedef struct cp2p_host_emitter cp2p_host_emitter;

/* One received message: `msg[0..len)` from `from`, both borrowed for the call. */
typedef void (*cp2p_host_emitter_recv_fn)(cp2p_host_emitter *he, const cp2p_peer_id *from,
                                          const uint8_t *msg, size_t len, void *ud);

typedef struct cp2p_host_emitter_config {
    const char *protocol;         /* protocol ID (copied); NULL: CP2P_HOST_EMITTER_PROTOCOL */
    cp2p_emitter_config core;     /* batching and routing (see above); core.send and
                                   * core.send_ud are ignored: the binding sends */
    cp2p_host_emitter_recv_fn on_msg; /* NULL: send only (no handler is registered, so peers
                                       * do not choose us) */
    void *on_msg_ud;
    uint32_t max_peers;           /* candidate peers tracked; more are ignored, counted (4,096) */
    uint32_t max_pending_frames;  /* frames queued for one peer while its stream opens (64) */
    size_t max_pending_bytes;     /* their bytes (8 MiB, the host's default stream buffer) */
    uint32_t max_inbound_streams; /* inbound streams at once; more are reset, counted (1,024) */
    size_t max_recv_msg_bytes;    /* 0: core.max_msg_bytes */
    uint32_t max_recv_frame_msgs; /* 0: core.max_buffered */
} cp2p_host_emitter_config;

typedef struct cp2p_host_emitter_stats {
    cp2p_emitter_stats core;  /* the batching core's counters (adds, emissions, refusals) */
    uint64_t frames_sent;     /* frames handed to a stream (cp2p_stream_write accepted it) */
    uint64_t msgs_sent;       /* messages in those frames */
    uint64_t bytes_sent;      /* their bytes, framing included */
    uint64_t frames_dropped;  /* frames lost: pending queue full, open failed, stream refused */
    uint64_t streams_opened;  /* outbound streams negotiated */
    uint64_t open_failed;     /* outbound opens that failed */
    uint64_t frames_received; /* complete frames received */
    uint64_t msgs_received;   /* messages handed to the receive handler */
    uint64_t malformed;       /* inbound streams reset for a malformed frame */
    uint64_t truncated;       /* inbound streams that ended inside a frame */
    uint64_t refused;         /* inbound streams refused (max_inbound_streams, no memory) */
    uint64_t peers_refused;   /* candidate peers not tracked (max_peers) */
} cp2p_host_emitter_stats;

/* Fill *cfg: cp2p_emitter_config_default() for core, the defaults above, no handler. */
CP2P_API void cp2p_host_emitter_config_default(cp2p_host_emitter_config *cfg);

/* Create an emitter on `h`: registers the stream handler (when on_msg is set) and starts
 * tracking peers (those already connected and identified count from the next loop turn).
 * Returns 0 and *out, CP2P_EINVAL (NULL argument, bad protocol ID, a core config
 * cp2p_emitter_new refuses, zero bounds), CP2P_ESTATE (the protocol already has a handler),
 * CP2P_EFULL (the host's handler table is full), CP2P_ECLOSED (host closing), CP2P_EIO,
 * CP2P_ENOMEM. */
CP2P_API CP2P_NODISCARD int cp2p_host_emitter_new(cp2p_host *h, const cp2p_host_emitter_config *cfg,
                                                  cp2p_host_emitter **out);
/* Stop: unregister the handler, reset inbound streams, close outbound ones (frames already
 * written still go out), drop queued messages (call cp2p_host_emitter_flush first to send
 * them). Frees the emitter (its timer memory goes on a later loop turn). NULL is a no-op. */
CP2P_API void cp2p_host_emitter_close(cp2p_host_emitter *he);

/* Queue a message of `kind` (copied) for broadcast: cp2p_emitter_add() at the loop's time, with
 * its results (CP2P_EINVAL, CP2P_ELIMIT, CP2P_EFULL, CP2P_ENOMEM). Never sends from inside:
 * a due emission happens from the timer on the next loop turn. */
CP2P_API CP2P_NODISCARD int cp2p_host_emitter_add(cp2p_host_emitter *he, const void *msg,
                                                  size_t len, uint32_t kind);
/* Emit once now (cp2p_emitter_flush), due or not. Returns 1 (emitted), 0 (nothing queued),
 * CP2P_ENOMEM. */
CP2P_API CP2P_NODISCARD int cp2p_host_emitter_flush(cp2p_host_emitter *he);
/* The current candidate peers: copies up to `max` of them to out (may be NULL when max is 0)
 * and returns how many there are. */
CP2P_API size_t cp2p_host_emitter_peers(const cp2p_host_emitter *he, cp2p_peer_id *out,
                                        size_t max);
/* Messages queued (cp2p_emitter_pending). */
CP2P_API size_t cp2p_host_emitter_pending(const cp2p_host_emitter *he);
/* Copy the counters. */
CP2P_API void cp2p_host_emitter_stats_get(const cp2p_host_emitter *he,
                                          cp2p_host_emitter_stats *out);

/* Copy he's counters (the core's and the binding's) into a metrics registry (cp2p/metrics.h;
 * e.g. the node API's, cp2p_node_api_metrics), as cp2p_emitter_* counters (names in
 * docs/METRICS.md). The first call passes *state == NULL: it registers the families; later
 * calls pass the same state and registry. Call it when you want the registry current (before
 * a scrape, or on a timer). Returns 0, CP2P_EINVAL (NULL argument, another registry),
 * CP2P_ENOMEM, or cp2p_metrics_register's error (a name taken). Loop thread only. */
typedef struct cp2p_host_emitter_metrics cp2p_host_emitter_metrics;
typedef struct cp2p_metrics cp2p_metrics; /* cp2p/metrics.h (repeated typedef: same type) */
CP2P_API CP2P_NODISCARD int cp2p_host_emitter_metrics_update(cp2p_host_emitter_metrics **state,
                                                             const cp2p_host_emitter *he,
                                                             cp2p_metrics *reg);
/* Free the state (the registry keeps its families). NULL is a no-op. */
CP2P_API void cp2p_host_emitter_metrics_free(cp2p_host_emitter_metrics *state);

#ifdef __cplusplus
}
#endif
#endif
