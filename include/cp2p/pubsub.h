/* cp2p: publish/subscribe with gossipsub (libp2p pubsub specs: gossipsub v1.0, v1.1 with peer
 * scoring, v1.2 IDONTWANT; floodsub as the fallback), wire-compatible with go-libp2p-pubsub
 * and js @chainsafe/libp2p-gossipsub, on the host's public API.
 *
 * Each peer that speaks /meshsub/1.2.0, /meshsub/1.1.0, /meshsub/1.0.0 or /floodsub/1.0.0
 * (learned from identify) gets one long-lived outbound stream from us and one inbound from it;
 * RPCs are uvarint-length-prefixed protobuf frames of at most max_rpc_size bytes. Everything
 * the router has for one peer is coalesced into as few frames as fit, written once per loop
 * turn (or after coalesce_ms), so a burst of publishes costs one frame per peer, not one per
 * message.
 *
 * Threading: every function here is called on the loop thread that runs the host, and every
 * callback runs on it. The pubsub is a service of its host (cp2p/service.h): close it with
 * cp2p_pubsub_close, or let cp2p_host_close close it (its last frames still go out); its handle
 * is invalid once the host has begun closing it. */
#ifndef CP2P_PUBSUB_H
#define CP2P_PUBSUB_H

#include <cp2p/host.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CP2P_GOSSIPSUB_1_2 "/meshsub/1.2.0"
#define CP2P_GOSSIPSUB_1_1 "/meshsub/1.1.0"
#define CP2P_GOSSIPSUB_1_0 "/meshsub/1.0.0"
#define CP2P_FLOODSUB "/floodsub/1.0.0"

typedef enum cp2p_pubsub_verdict {
    CP2P_PUBSUB_ACCEPT = 0, /* deliver and forward */
    CP2P_PUBSUB_REJECT = 1, /* invalid: drop, and penalise the sender (score P4) */
    CP2P_PUBSUB_IGNORE = 2, /* drop without penalty */
} cp2p_pubsub_verdict;

/* Compute a message's ID into out (at most 64 bytes: return the length) from its fields
 * (from/seqno empty under StrictNoSign). Return a negative cp2p_err to drop the message. */
typedef int (*cp2p_pubsub_msg_id_fn)(void *ud, const char *topic, const uint8_t *from,
                                     size_t from_len, const uint8_t *seqno, size_t seqno_len,
                                     const uint8_t *data, size_t len, uint8_t out[64]);

typedef struct cp2p_pubsub_config {
    /* Mesh (go and js defaults): D 6, D_lo 5, D_hi 12, D_lazy 6, D_score 4, D_out 2; heartbeat
     * every 1 s. 0 = default. */
    unsigned d, d_lo, d_hi, d_lazy, d_score, d_out;
    uint64_t heartbeat_ms;
    size_t max_rpc_size;     /* largest RPC frame each way (1 MiB, go's default) */
    bool strict_no_sign;     /* StrictNoSign instead of StrictSign (signed, the default) */
    bool no_flood_publish;   /* publish to the mesh only (go and js flood by default) */
    bool do_px;              /* send peer exchange in PRUNE (off, as go's default) */
    bool allow_publish_to_zero_peers; /* publish succeeds with no peer to send to */
    bool no_floodsub;        /* do not serve /floodsub/1.0.0 */
    size_t idontwant_threshold; /* v1.2: messages of at least this size get IDONTWANT (1 KiB) */
    /* Write coalescing: frames for a peer are flushed at most this long after the first
     * pending byte (0: at the end of the current loop turn). */
    uint64_t coalesce_ms;
    bool no_coalesce;        /* write each router output at once, one frame per call (for
                                measuring what coalescing saves; not for production) */
    /* Peer scoring (gossipsub v1.1): on by default with cp2p's defaults (see docs): topics in
     * scored_topics get P1-P4 with moderate weights; every peer gets P6 (IP colocation,
     * loopback exempt) and P7 (behaviour penalty); thresholds gossip -10, publish -50,
     * graylist -80, accept PX 10. no_scoring turns it off. */
    bool no_scoring;
    const char *const *scored_topics;
    size_t n_scored_topics;
    /* Pluggable message ID (Ethereum uses a hash of the data). NULL: from || seqno. */
    cp2p_pubsub_msg_id_fn msg_id;
    void *msg_id_ud;
    /* Asynchronous validation (see cp2p_pubsub_set_async_validator): fixed at creation; the
     * synchronous validator is then unused. max_pending_validations: messages waiting for a
     * verdict (0 = default 1024); past it the newest message is dropped, counted in
     * validations_dropped, without penalty for its sender. validation_timeout_ms: a message
     * unanswered this long is dropped as IGNORE at the next heartbeat and counted in
     * validations_expired (0 = default 5 s, UINT64_MAX = never). */
    bool async_validation;
    size_t max_pending_validations;
    uint64_t validation_timeout_ms;
} cp2p_pubsub_config;

CP2P_API void cp2p_pubsub_config_default(cp2p_pubsub_config *c);

typedef struct cp2p_pubsub cp2p_pubsub;

/* Start pubsub on h: registers the protocol handlers (identify push tells connected peers),
 * opens streams to peers that support them (those already connected from the next loop turn).
 * Returns 0, CP2P_EINVAL, CP2P_ESTATE (a pubsub protocol already has a handler), CP2P_EFULL,
 * CP2P_ECLOSED (host closing), CP2P_ENOMEM. */
CP2P_API CP2P_NODISCARD int cp2p_pubsub_new(cp2p_host *h, const cp2p_pubsub_config *cfg,
                                            cp2p_pubsub **out);
/* Stop: handlers removed, last frames flushed, streams closed, memory released at once. */
CP2P_API void cp2p_pubsub_close(cp2p_pubsub *ps);

/* A message delivered to a subscriber: `from` is its author (NULL under StrictNoSign), `via`
 * the peer that forwarded it; everything is borrowed for the call. */
typedef struct cp2p_pubsub_msg {
    const char *topic;
    const uint8_t *data;
    size_t len;
    const cp2p_peer_id *from;
    const cp2p_peer_id *via;
    const uint8_t *seqno;
    size_t seqno_len;
    const uint8_t *id;
    size_t id_len;
} cp2p_pubsub_msg;
typedef void (*cp2p_pubsub_handler)(cp2p_pubsub *ps, const cp2p_pubsub_msg *m, void *ud);

/* Join `topic` (copied) and deliver its messages to cb (replacing an earlier handler).
 * Returns 0, CP2P_EINVAL (empty or too long topic), CP2P_EFULL (too many topics), CP2P_ENOMEM. */
CP2P_API CP2P_NODISCARD int cp2p_pubsub_subscribe(cp2p_pubsub *ps, const char *topic,
                                                  cp2p_pubsub_handler cb, void *ud);
/* Leave `topic` (PRUNE to its mesh). Returns 0 or CP2P_ENOENT. */
CP2P_API CP2P_NODISCARD int cp2p_pubsub_unsubscribe(cp2p_pubsub *ps, const char *topic);
/* Whether this node joined `topic` (cp2p_pubsub_subscribe, not yet left): a joined topic has a
 * handler, which a second subscribe would replace. Loop thread. */
CP2P_API bool cp2p_pubsub_subscribed(const cp2p_pubsub *ps, const char *topic);

/* Publish len bytes (copied) on topic (subscribed or not: fanout). Returns 0, CP2P_ENOENT (no
 * peer to send it to, as go and js refuse; see allow_publish_to_zero_peers), CP2P_ELIMIT (too
 * large for max_rpc_size), CP2P_EINVAL, CP2P_ENOMEM. */
CP2P_API CP2P_NODISCARD int cp2p_pubsub_publish(cp2p_pubsub *ps, const char *topic,
                                                const void *data, size_t len);

/* A validator for every message before delivery and forwarding (NULL: accept all). It runs on
 * the loop thread and must answer at once. */
typedef cp2p_pubsub_verdict (*cp2p_pubsub_validator)(cp2p_pubsub *ps, const cp2p_pubsub_msg *m,
                                                     void *ud);
CP2P_API void cp2p_pubsub_set_validator(cp2p_pubsub *ps, cp2p_pubsub_validator cb, void *ud);

/* Asynchronous validation, for a pubsub created with config.async_validation. cb runs on the
 * loop thread for every message before delivery and forwarding, with everything in m borrowed
 * for the call (copy what you need) and a token; the application answers later, or within cb,
 * with cp2p_pubsub_validation_result (loop thread only: from another thread, hand the verdict
 * to the loop first, e.g. through a uv_async_t). Until then the message is neither delivered
 * nor forwarded. Unanswered messages are bounded: at most max_pending_validations wait (the
 * newest beyond are dropped and counted, stats.validations_dropped), and each is dropped as
 * IGNORE after validation_timeout_ms (stats.validations_expired). With no async validator
 * set, every message is accepted. cb NULL removes it. Loop thread only. */
typedef void (*cp2p_pubsub_async_validator)(cp2p_pubsub *ps, const cp2p_pubsub_msg *m,
                                            uint64_t token, void *ud);
CP2P_API void cp2p_pubsub_set_async_validator(cp2p_pubsub *ps, cp2p_pubsub_async_validator cb,
                                              void *ud);
/* The verdict for token: ACCEPT delivers (to the topic's handler, possibly before this returns)
 * and forwards the message; REJECT drops it and penalises the peer it came from (score P4 on
 * scored topics); IGNORE drops it without penalty. Returns 0; CP2P_ENOENT when the token is
 * unknown (answered already, timed out, or never issued): nothing to do; CP2P_EINVAL (bad
 * verdict); CP2P_ESTATE (the pubsub was not created with async_validation). Loop thread only. */
CP2P_API CP2P_NODISCARD int cp2p_pubsub_validation_result(cp2p_pubsub *ps, uint64_t token,
                                                          cp2p_pubsub_verdict v);

/* Peers known to subscribe to topic that we can send to (our stream to them is up) / peers
 * in our mesh of topic (0 unless we subscribe to it): up to max copied into out; the return
 * value is the total. */
CP2P_API size_t cp2p_pubsub_topic_peers(const cp2p_pubsub *ps, const char *topic,
                                        cp2p_peer_id *out, size_t max);
CP2P_API size_t cp2p_pubsub_mesh_peers(const cp2p_pubsub *ps, const char *topic,
                                       cp2p_peer_id *out, size_t max);
/* The peer's score (0 when scoring is off or the peer is unknown). */
CP2P_API double cp2p_pubsub_peer_score(cp2p_pubsub *ps, const cp2p_peer_id *peer);

typedef struct cp2p_pubsub_stats {
    uint64_t peers, rpcs_in, rpcs_refused, frames_out, bytes_out;
    uint64_t msgs_in, msgs_delivered, msgs_duplicate, msgs_rejected, msgs_ignored, msgs_bad_sig,
        msgs_published, msgs_forwarded;
    uint64_t subs_refused, graylisted, idontwant_sent, idontwant_suppressed, iwant_sent,
        promises_broken, outbox_drops, penalties, px_dials;
    /* Async validation: waiting for a verdict now; dropped because max_pending_validations
     * were waiting (or the event queue was full); dropped unanswered after the timeout. */
    uint64_t validations_pending, validations_dropped, validations_expired;
    /* PRUNEs received; peers suggested by them (PX) passed on / ignored (sender's score below
     * the accept-PX threshold); remote topics refused / evicted by the bounded topic table. */
    uint64_t prunes_in, px_events, px_ignored, topics_refused, topics_evicted;
    /* Signed peer records carried by PX: opened (their addresses went to the peerstore) /
     * refused (malformed, bad signature, or not the suggested peer's). */
    uint64_t px_records_ok, px_records_bad;
} cp2p_pubsub_stats;
CP2P_API void cp2p_pubsub_stats_get(const cp2p_pubsub *ps, cp2p_pubsub_stats *out);

#ifdef __cplusplus
}
#endif
#endif
