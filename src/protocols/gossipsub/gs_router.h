/* Gossipsub router core: gossipsub v1.0 / v1.1 / v1.2 (meshsub) with floodsub peers, per
 * libp2p/specs pubsub/README.md and pubsub/gossipsub/gossipsub-v1.{0,1,2}.md, behaving as
 * go-libp2p-pubsub and js @chainsafe/libp2p-gossipsub do on the wire.
 *
 * Sans-I/O: no clock (every call that needs time takes now_ms), no sockets, no randomness
 * source (cfg.rand). One owner thread; nothing here is thread-safe. Driving it (the binding):
 *
 *   1. cp2p__gs_router_new(&cfg, now, &r). Keep cfg.key alive until cp2p__gs_router_free.
 *   2. When a pubsub stream to a peer is up (its protocol negotiated): add_peer(peer, proto,
 *      outbound, ip, now). When the peer's streams are gone: remove_peer.
 *   3. Each inbound frame (the body after the uvarint length prefix; at most cfg.max_rpc_size,
 *      which the binding should also enforce before buffering): on_rpc(peer, body, len, now).
 *      CP2P_EPROTO / CP2P_ELIMIT from on_rpc: close the peer's inbound stream.
 *   4. Every cfg.heartbeat_ms: heartbeat(now).
 *   5. After any call: drain output. while (next_dirty_peer(r, &p)) { while take_rpc(r, &p,
 *      &buf) gives bytes: write uvarint(len) + bytes to p's outbound stream }. take_rpc never
 *      writes more than cfg.max_rpc_size bytes per frame; everything pending for a peer
 *      (subscriptions, control, messages) is coalesced into as few frames as fit.
 *   6. Drain events: while (poll_event(r, &ev)) { handle; cp2p__gs_event_fini(&ev); }.
 *
 * Output per peer is bounded: past cfg.outbox_msgs queued messages the newest is dropped and
 * counted (stats.outbox_msg_drops), past CP2P_GS_OUTBOX_CONTROL control entries likewise.
 * Every table is bounded (src/util/limits.h, "gossipsub" section); refusals are counted in
 * cp2p__gs_stats. Peer scoring (gs_score.h) is on when cfg.score_params is not NULL.
 *
 * Topic table. Local topics (subscribed, or published to within fanout_ttl_ms) are bounded by
 * cfg.max_local_topics only; remote-only topics (known from peers' subscriptions) by
 * cfg.max_topics, so that peers filling the table (even each within max_peer_subs) never make
 * our own subscribe or publish fail. When the remote part is full, a new remote topic evicts
 * a randomly sampled remote-only topic that has no subscriber, or whose single subscriber
 * holds more topics than the newcomer's peer (stats.topics_evicted); otherwise the
 * subscription is refused (stats.topics_refused, subs_refused). A popular topic (two or more
 * subscribers) is never evicted for a new one.
 *
 * Async validation (cfg.async_validation): each message to validate gives a VALIDATE event
 * with a token; answer with validation_result. At most cfg.max_pending_validations wait: past
 * that (or with a full event queue) the newest message is dropped (stats.validations_dropped,
 * score: throttled, no penalty). Unanswered after cfg.validation_timeout_ms: dropped as IGNORE
 * (stats.validations_expired).
 *
 * Messages. StrictSign (default): published messages carry from, an 8-byte big-endian seqno
 * (a counter starting at cfg.seqno_start), signature over "libp2p-pubsub:" + the Message
 * protobuf without signature and key, and key when the public key is not inlined in the peer
 * ID; received messages must verify. StrictNoSign: published messages have only data and
 * topic; received messages carrying from, seqno, signature or key are rejected. Message IDs:
 * cfg.msg_id (default: from bytes || seqno bytes, as go and js; with StrictNoSign set a
 * content-based one, e.g. a hash of the data). Our own published messages are not delivered
 * to ourselves (js emitSelf=false). */
#ifndef CP2P_PROTOCOLS_GOSSIPSUB_GS_ROUTER_H
#define CP2P_PROTOCOLS_GOSSIPSUB_GS_ROUTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cp2p/buf.h>
#include <cp2p/common.h>
#include <cp2p/keys.h>
#include <cp2p/peer_id.h>

#include "protocols/gossipsub/gs_rpc.h"
#include "protocols/gossipsub/gs_score.h"

/* Protocol a peer speaks: /meshsub/1.2.0, /meshsub/1.1.0, /meshsub/1.0.0, /floodsub/1.0.0. */
typedef enum cp2p__gs_proto {
    CP2P_GS_MESHSUB_1_2 = 0,
    CP2P_GS_MESHSUB_1_1 = 1,
    CP2P_GS_MESHSUB_1_0 = 2,
    CP2P_GS_FLOODSUB = 3,
} cp2p__gs_proto;

typedef enum cp2p__gs_verdict {
    CP2P_GS_ACCEPT = 0,
    CP2P_GS_REJECT = 1,
    CP2P_GS_IGNORE = 2,
} cp2p__gs_verdict;

typedef enum cp2p__gs_sign_policy {
    CP2P_GS_STRICT_SIGN = 0,
    CP2P_GS_STRICT_NO_SIGN = 1,
} cp2p__gs_sign_policy;

/* Append the ID of message m to out (at most CP2P_GS_MAX_MSG_ID bytes). Returns 0 or an error
 * (the message is then dropped and counted). */
typedef int (*cp2p__gs_msg_id_fn)(void *ud, const cp2p__gs_msg *m, cp2p_buf *out);
/* Synchronous validator. from is NULL when the message has no (valid) from field. */
typedef cp2p__gs_verdict (*cp2p__gs_validator_fn)(void *ud, const char *topic,
                                                  const cp2p_peer_id *from, const uint8_t *data,
                                                  size_t len);
typedef uint64_t (*cp2p__gs_rand_fn)(void *ud);

typedef struct cp2p__gs_config {
    /* overlay (defaults: src/util/limits.h CP2P_GS_*) */
    unsigned d, d_lo, d_hi, d_lazy, d_score, d_out;
    uint64_t heartbeat_ms, fanout_ttl_ms, seen_ttl_ms, prune_backoff_ms, unsub_backoff_ms,
        graft_flood_ms, iwant_followup_ms;
    unsigned mcache_len, mcache_gossip;
    double gossip_factor;
    unsigned prune_peers, opp_graft_ticks, opp_graft_peers;
    unsigned max_ihave_len, max_ihave_msgs;
    size_t idontwant_threshold;
    /* limits */
    /* max_topics bounds remote-only topics; max_local_topics ours (subscribed, or published to
     * within fanout_ttl_ms), so that remote topics never refuse ours. When the remote part is
     * full a new remote topic may evict another (see "Topic table" above). */
    size_t max_rpc_size, max_peer_subs, max_topics, max_local_topics, outbox_msgs,
        max_pending_validations;
    /* Async mode: a VALIDATE event unanswered this long is dropped as IGNORE at the next
     * heartbeat (stats.validations_expired); 0 = never. */
    uint64_t validation_timeout_ms;
    /* behaviour */
    bool flood_publish;               /* default true (go and js) */
    bool do_px;                       /* send PX in PRUNE to v1.1+ peers; default false */
    bool allow_publish_to_zero_peers; /* default false: publish fails with CP2P_ENOENT */
    bool async_validation;            /* VALIDATE events instead of cfg.validator */
    cp2p__gs_sign_policy sign_policy;
    /* identity: key (borrowed, required for StrictSign) gives `local`; with StrictNoSign and no
     * key, set local yourself (it is only used to refuse our own messages coming back). */
    const cp2p_privkey *key;
    cp2p_peer_id local;
    uint64_t seqno_start; /* first seqno: a random value from the caller */
    cp2p__gs_msg_id_fn msg_id;
    void *msg_id_ud;
    cp2p__gs_validator_fn validator; /* NULL: accept everything (sync mode) */
    void *validator_ud;
    cp2p__gs_rand_fn rand; /* required */
    void *rand_ud;
    /* scoring: both NULL = off. Copied by router_new. */
    const cp2p__gs_score_params *score_params;
    const cp2p__gs_score_thresholds *thresholds;
} cp2p__gs_config;

typedef enum cp2p__gs_event_kind {
    CP2P_GS_EV_DELIVER = 1,  /* a valid message for a subscribed topic, for the application */
    CP2P_GS_EV_VALIDATE = 2, /* async mode: answer with validation_result(token, verdict) */
    CP2P_GS_EV_PEER_TAG = 3, /* peer joined (joined=true) or left our mesh of topic */
    CP2P_GS_EV_PX = 4,       /* peer suggested by a PRUNE; record = signed peer record or empty */
} cp2p__gs_event_kind;

typedef struct cp2p__gs_event {
    cp2p__gs_event_kind kind;
    cp2p_peer_id peer;   /* DELIVER/VALIDATE: the peer it came from; PEER_TAG, PX: that peer */
    const char *topic;   /* all kinds (PX: the topic of the PRUNE) */
    cp2p_slice data;     /* DELIVER/VALIDATE */
    cp2p_slice from;     /* DELIVER/VALIDATE: the message's from field (empty when absent) */
    cp2p_slice seqno;    /* DELIVER/VALIDATE: empty when absent */
    cp2p_slice msg_id;   /* DELIVER/VALIDATE */
    cp2p_slice record;   /* PX */
    uint64_t token;      /* VALIDATE */
    bool joined;         /* PEER_TAG */
    void *owned_;        /* internal */
} cp2p__gs_event;

typedef struct cp2p__gs_stats {
    uint64_t rpcs_in, rpcs_refused, rpcs_graylisted, frames_out;
    uint64_t msgs_in, msgs_delivered, msgs_duplicate, msgs_rejected, msgs_ignored,
        msgs_bad_sig, msgs_bad_policy, msgs_self_origin, msgs_unsubscribed_topic, msgs_bad_id,
        msgs_published, msgs_forwarded;
    uint64_t decode_drops;            /* entries dropped by the codec (gs_rpc_drops summed) */
    uint64_t subs_refused, topics_refused, topics_evicted, peers_refused;
    uint64_t ihave_ignored, iwant_ignored, iwant_sent, iwant_served, promises_broken,
        promises_dropped;
    uint64_t graft_backoff_violations, graft_refused, prunes_in, px_events, px_ignored;
    uint64_t idontwant_sent, idontwant_in, idontwant_dropped, idontwant_suppressed;
    uint64_t outbox_msg_drops, outbox_ctl_drops, oversize_drops;
    uint64_t events_dropped, validations_dropped, validations_pending, validations_expired;
    uint64_t seen_evicted, mcache_refused;
    uint64_t penalties;
} cp2p__gs_stats;

typedef struct cp2p__gs_router cp2p__gs_router;

/* Defaults: the CP2P_GS_* values, StrictSign, flood publish on, sync validation. */
void cp2p__gs_config_default(cp2p__gs_config *c);
/* Errors: CP2P_EINVAL (bad parameters: d_lo <= d <= d_hi, d_out < d_lo, d_out <= d/2,
 * d_score <= d, gossip window <= mcache_len, no rand, StrictSign without key, invalid score
 * params), CP2P_ENOMEM. */
CP2P_NODISCARD int cp2p__gs_router_new(const cp2p__gs_config *cfg, uint64_t now_ms,
                                       cp2p__gs_router **out);
void cp2p__gs_router_free(cp2p__gs_router *r);

/* Peers. add_peer: 0, CP2P_ESTATE (already added), CP2P_EFULL (CP2P_GS_MAX_PEERS),
 * CP2P_EINVAL, CP2P_ENOMEM. outbound: we dialed the connection (D_out quota). ip: text or NULL
 * (score P6). Our subscriptions are queued for the new peer at once. remove_peer: ignored for
 * an unknown peer; its queued output is discarded. */
CP2P_NODISCARD int cp2p__gs_add_peer(cp2p__gs_router *r, const cp2p_peer_id *peer,
                                     cp2p__gs_proto proto, bool outbound, const char *ip,
                                     uint64_t now_ms);
void cp2p__gs_remove_peer(cp2p__gs_router *r, const cp2p_peer_id *peer, uint64_t now_ms);

/* One inbound RPC body. Returns 0 (also when parts were ignored: counted in stats),
 * CP2P_ENOENT (unknown peer), CP2P_ELIMIT (larger than max_rpc_size), CP2P_EPROTO (not an
 * RPC), CP2P_ENOMEM. The binding closes the stream on CP2P_EPROTO / CP2P_ELIMIT. */
CP2P_NODISCARD int cp2p__gs_on_rpc(cp2p__gs_router *r, const cp2p_peer_id *peer,
                                   const uint8_t *body, size_t len, uint64_t now_ms);

/* Topics. subscribe: 0 (also when already subscribed), CP2P_EINVAL (empty, too long or NUL
 * in topic), CP2P_EFULL (max_local_topics local topics already: remote topics never count),
 * CP2P_ENOMEM. unsubscribe: 0 or CP2P_ENOENT. */
CP2P_NODISCARD int cp2p__gs_subscribe(cp2p__gs_router *r, const char *topic, uint64_t now_ms);
CP2P_NODISCARD int cp2p__gs_unsubscribe(cp2p__gs_router *r, const char *topic, uint64_t now_ms);
bool cp2p__gs_subscribed(const cp2p__gs_router *r, const char *topic);

/* Publish data on topic. On 0 the message ID is appended to msg_id (if not NULL). Errors:
 * CP2P_ENOENT when no peer would receive it (no subscribed peer above publish threshold; not
 * returned when cfg.allow_publish_to_zero_peers), CP2P_ESTATE (a message with the same ID
 * was seen within seen_ttl_ms: content IDs), CP2P_ELIMIT (the message cannot fit
 * max_rpc_size), CP2P_EINVAL (bad topic), CP2P_ENOMEM, or the msg_id function's error.
 * On error nothing was sent or remembered, and the seqno is not consumed. */
CP2P_NODISCARD int cp2p__gs_publish(cp2p__gs_router *r, const char *topic, const uint8_t *data,
                                    size_t len, uint64_t now_ms, cp2p_buf *msg_id);

/* Answer a VALIDATE event. Returns 0, or CP2P_ENOENT for an unknown token: answered already,
 * or timed out (cfg.validation_timeout_ms). */
CP2P_NODISCARD int cp2p__gs_validation_result(cp2p__gs_router *r, uint64_t token,
                                              cp2p__gs_verdict v, uint64_t now_ms);

/* Periodic maintenance, every cfg.heartbeat_ms. */
void cp2p__gs_heartbeat(cp2p__gs_router *r, uint64_t now_ms);

/* Output. next_dirty_peer: a peer with something pending (round robin), false when none.
 * take_rpc: encode the next frame for peer into out (reset first; at most max_rpc_size bytes;
 * out->max must allow that). Returns the frame length (> 0), 0 when nothing is pending, or
 * CP2P_ENOENT (unknown peer), CP2P_ENOMEM / CP2P_ELIMIT (out too small; nothing taken). */
bool cp2p__gs_next_dirty_peer(cp2p__gs_router *r, cp2p_peer_id *out);
CP2P_NODISCARD ptrdiff_t cp2p__gs_take_rpc(cp2p__gs_router *r, const cp2p_peer_id *peer,
                                           cp2p_buf *out);

/* Events: true and *ev filled (release with cp2p__gs_event_fini), or false when none. The queue
 * holds CP2P_GS_EVENT_QUEUE events; past it new events are dropped (stats.events_dropped), so
 * drain it after every call. */
bool cp2p__gs_poll_event(cp2p__gs_router *r, cp2p__gs_event *ev);
void cp2p__gs_event_fini(cp2p__gs_event *ev);

/* Introspection and score passthrough. mesh_peers copies up to max peers, returns the mesh
 * size (0 for a topic we are not subscribed to). score: 0 when scoring is off. */
size_t cp2p__gs_mesh_peers(const cp2p__gs_router *r, const char *topic, cp2p_peer_id *out,
                           size_t max);
/* Peers known to subscribe to topic (whether or not we do): copies up to max, returns the
 * total. */
size_t cp2p__gs_topic_peers(const cp2p__gs_router *r, const char *topic, cp2p_peer_id *out,
                            size_t max);
bool cp2p__gs_in_mesh(const cp2p__gs_router *r, const char *topic, const cp2p_peer_id *peer);
double cp2p__gs_peer_score(cp2p__gs_router *r, const cp2p_peer_id *peer, uint64_t now_ms);
void cp2p__gs_set_app_score(cp2p__gs_router *r, const cp2p_peer_id *peer, double v);
void cp2p__gs_stats_get(const cp2p__gs_router *r, cp2p__gs_stats *out);

/* The default message ID: from || seqno (exposed for tests and custom functions). */
CP2P_NODISCARD int cp2p__gs_default_msg_id(void *ud, const cp2p__gs_msg *m, cp2p_buf *out);

#endif
