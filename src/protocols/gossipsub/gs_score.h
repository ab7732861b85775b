/* Gossipsub v1.1 peer scoring (libp2p/specs pubsub/gossipsub/gossipsub-v1.1.md, "Peer Scoring"):
 * the score function P1..P7 with the topic score cap, counter decay, score retention of
 * disconnected peers and the message delivery records that P2, P3 and P4 need.
 *
 * Sans-I/O: no clock (every call that needs time takes `now_ms`), no sockets, no callbacks. The
 * semantics follow go-libp2p-pubsub (score.go). One owner: the gossipsub router's loop thread;
 * nothing here is thread-safe, so call every function from that thread.
 *
 * Peers are `cp2p_peer_id` values, copied when kept. Topics are NUL-terminated strings, message
 * IDs byte strings; neither is kept past the call (the score copies what it keeps). Calls about
 * a peer that is not tracked (never added, or dropped) are ignored, and calls about a topic
 * without parameters change nothing: such topics contribute nothing to the score. */
#ifndef CP2P_PROTOCOLS_GOSSIPSUB_GS_SCORE_H
#define CP2P_PROTOCOLS_GOSSIPSUB_GS_SCORE_H

#include <stddef.h>
#include <stdint.h>

#include <cp2p/common.h>
#include <cp2p/peer_id.h>

/* Parameters of one scored topic (spec "Topic Parameter Calculation"; go TopicScoreParams).
 * Weights of rewards (P1, P2) are >= 0, weights of penalties (P3, P3b, P4) <= 0. A decay is the
 * factor applied to a counter at each refresh, in (0,1) when its weight is not 0. */
typedef struct cp2p__gs_topic_score_params {
    double topic_weight;
    /* P1 time in mesh: floor(time in mesh / quantum), capped, counted only while in the mesh */
    double time_in_mesh_weight; uint64_t time_in_mesh_quantum_ms; double time_in_mesh_cap;
    /* P2 first message deliveries: a decaying counter, capped */
    double first_message_deliveries_weight, first_message_deliveries_decay,
           first_message_deliveries_cap;
    /* P3 mesh message delivery rate: (threshold - counter)^2 when the counter is below the
     * threshold, once the peer has been in the mesh for the activation time. First deliveries
     * and duplicates within the window after validation count, from mesh peers only. */
    double mesh_message_deliveries_weight, mesh_message_deliveries_decay,
           mesh_message_deliveries_cap, mesh_message_deliveries_threshold;
    uint64_t mesh_message_deliveries_window_ms, mesh_message_deliveries_activation_ms;
    /* P3b sticky mesh failure penalty: the P3 deficit squared, added when the peer leaves the
     * mesh (prune or disconnect) with an active deficit */
    double mesh_failure_penalty_weight, mesh_failure_penalty_decay;
    /* P4 invalid messages: counter squared */
    double invalid_message_deliveries_weight, invalid_message_deliveries_decay;
} cp2p__gs_topic_score_params;

/* Score parameters (go PeerScoreParams). The application-specific score P5 is set per peer
 * with cp2p__gs_score_set_app_score() instead of a callback. */
typedef struct cp2p__gs_score_params {
    const char *const *topics;                       /* topics with score parameters */
    const cp2p__gs_topic_score_params *topic_params; /* parallel to topics */
    size_t n_topics;                                 /* <= CP2P_GS_SCORE_MAX_TOPICS */
    double topic_score_cap;                          /* 0 = no cap */
    double app_specific_weight;                      /* P5 */
    double ip_colocation_factor_weight;              /* P6 (<= 0) */
    uint32_t ip_colocation_factor_threshold;         /* >= 1 when the weight is not 0 */
    /* P7: (penalty - threshold)^2 * weight when the penalty is above the threshold */
    double behaviour_penalty_weight, behaviour_penalty_threshold, behaviour_penalty_decay;
    uint64_t decay_interval_ms; double decay_to_zero; /* counters below decay_to_zero become 0 */
    uint64_t retain_score_ms;                        /* 0: forget removed peers at once */
} cp2p__gs_score_params;

/* Score thresholds (spec "Score Thresholds"; go PeerScoreThresholds). Only validated here; the
 * router applies them. */
typedef struct cp2p__gs_score_thresholds {
    double gossip_threshold, publish_threshold, graylist_threshold, accept_px_threshold,
           opportunistic_graft_threshold;
} cp2p__gs_score_thresholds;

typedef struct cp2p__gs_score cp2p__gs_score;

/* Validate parameters (the rules of go-libp2p-pubsub's validate()): weight signs, decays in
 * (0,1) for enabled parameters, positive caps, quanta and thresholds, activation >= 1 s,
 * decay_interval >= 1 s, decay_to_zero in (0,1), topic names non-empty, unique and at most
 * CP2P_GS_SCORE_MAX_TOPIC_LEN bytes, at most CP2P_GS_SCORE_MAX_TOPICS topics, every number finite
 * and within +-CP2P_GS_SCORE_PARAM_MAX; thresholds: gossip <= 0, publish <= gossip,
 * graylist <= publish, accept_px >= 0, opportunistic_graft >= 0. `t` may be NULL (not checked).
 * Returns 0 or CP2P_EINVAL. */
CP2P_NODISCARD int cp2p__gs_score_params_validate(const cp2p__gs_score_params *p,
                                                  const cp2p__gs_score_thresholds *t);
/* Create a score tracker. `p` is validated (without thresholds) and copied, topic names too, so
 * the caller's arrays are free on return. Returns 0 and *out, CP2P_EINVAL (bad parameters) or
 * CP2P_ENOMEM; on error *out is untouched. */
CP2P_NODISCARD int cp2p__gs_score_new(const cp2p__gs_score_params *p, uint64_t now_ms,
                                      cp2p__gs_score **out);
/* Free the tracker and everything it holds. Accepts NULL. */
void cp2p__gs_score_free(cp2p__gs_score *s);

/* A peer connected (go AddPeer). A retained peer gets its old counters back. `ip` is the peer's
 * IP as text ("1.2.3.4" / "::1"), or NULL when unknown (no P6); it replaces any earlier IP.
 * Adding a connected peer again only updates its IP.
 * Returns 0, CP2P_EINVAL (bad peer ID length or IP longer than CP2P_GS_SCORE_IP_MAX - 1),
 * CP2P_EFULL (CP2P_GS_SCORE_MAX_PEERS tracked: not tracked, its score is 0; counted in
 * peers_refused) or CP2P_ENOMEM. On error nothing changed. */
CP2P_NODISCARD int cp2p__gs_score_add_peer(cp2p__gs_score *s, const cp2p_peer_id *p,
                                           const char *ip, uint64_t now_ms);
/* A peer disconnected (go RemovePeer). A peer with a positive score is forgotten. Otherwise its
 * score is retained for retain_score_ms (as go, so reconnecting does not reset a penalty):
 * first-delivery counters are cleared, mesh membership ends with the P3b penalty for an active
 * deficit, and its counters stop decaying; it keeps counting for P6 until it is forgotten. */
void cp2p__gs_score_remove_peer(cp2p__gs_score *s, const cp2p_peer_id *p, uint64_t now_ms);
/* The peer joined our mesh of `topic` (P1 time starts, P3 activation restarts). */
void cp2p__gs_score_graft(cp2p__gs_score *s, const cp2p_peer_id *p, const char *topic,
                          uint64_t now_ms);
/* The peer left our mesh of `topic`: P3b penalty when its P3 deficit was active. */
void cp2p__gs_score_prune(cp2p__gs_score *s, const cp2p_peer_id *p, const char *topic,
                          uint64_t now_ms);
/* Message pipeline: validate_message when a message first arrives (before validation);
 * then exactly one of deliver_message (accepted), reject_message (invalid / bad signature),
 * ignore_message (validator said ignore); duplicate_message for every later copy.
 * `from` is the peer that sent this copy. Every message has one topic. A second outcome for the
 * same record is ignored, as go does. Records are keyed by the ID (at most
 * CP2P_GS_SCORE_MAX_MSG_ID bytes; longer IDs get P2/P4 for `from` but no record, counted in
 * ids_refused), kept CP2P_GS_SCORE_RECORD_TTL_MS (or the longest P3 window if longer), at most
 * CP2P_GS_SCORE_MAX_RECORDS of them (the oldest is dropped and counted). */
void cp2p__gs_score_validate_message(cp2p__gs_score *s, const cp2p_peer_id *from,
                                     const uint8_t *id, size_t id_len, const char *topic,
                                     uint64_t now_ms);
/* Accepted: P2 (and P3 when in the mesh) for `from`; P3 for the mesh peers that sent a
 * duplicate while the message was being validated. */
void cp2p__gs_score_deliver_message(cp2p__gs_score *s, const cp2p_peer_id *from,
                                    const uint8_t *id, size_t id_len, const char *topic,
                                    uint64_t now_ms);
/* Invalid: P4 for `from` and for every peer that sent a copy during validation. */
void cp2p__gs_score_reject_message(cp2p__gs_score *s, const cp2p_peer_id *from,
                                   const uint8_t *id, size_t id_len, const char *topic,
                                   uint64_t now_ms);
/* The validator said ignore: nobody is rewarded or penalised for this message. */
void cp2p__gs_score_ignore_message(cp2p__gs_score *s, const cp2p_peer_id *from,
                                   const uint8_t *id, size_t id_len, const char *topic,
                                   uint64_t now_ms);
/* A later copy: during validation the sender is remembered (once); after acceptance a mesh
 * peer's first copy within mesh_message_deliveries_window_ms counts for P3; every copy of an
 * invalid message counts P4 for its sender; ignored and throttled messages count nothing. */
void cp2p__gs_score_duplicate_message(cp2p__gs_score *s, const cp2p_peer_id *from,
                                      const uint8_t *id, size_t id_len, const char *topic,
                                      uint64_t now_ms);
/* A message whose signature/format is invalid before it has an ID (P4 on `topic`). */
void cp2p__gs_score_reject_invalid(cp2p__gs_score *s, const cp2p_peer_id *from,
                                   const char *topic);
/* Added: validation was throttled (queue full): the outcome is unknown, so, as go, nobody is
 * rewarded or penalised for this message and later copies count nothing. */
void cp2p__gs_score_throttle_message(cp2p__gs_score *s, const cp2p_peer_id *from,
                                     const uint8_t *id, size_t id_len, const char *topic,
                                     uint64_t now_ms);
/* P7: add `count` to the peer's behaviour penalty counter (saturates at
 * CP2P_GS_SCORE_COUNTER_MAX). */
void cp2p__gs_score_add_penalty(cp2p__gs_score *s, const cp2p_peer_id *p, uint32_t count);
/* P5: the application-specific value of the peer (weighted by app_specific_weight); kept while
 * the peer is tracked. A non-finite value is ignored. */
void cp2p__gs_score_set_app_score(cp2p__gs_score *s, const cp2p_peer_id *p, double v);
/* The peer's score at now_ms; 0 for a peer that is not tracked. Retained peers have a score. */
double cp2p__gs_score_get(cp2p__gs_score *s, const cp2p_peer_id *p, uint64_t now_ms);
/* Call every decay_interval_ms: decays counters of connected peers (values below decay_to_zero
 * become 0), forgets retained peers past retain_score_ms, forgets delivery records past their
 * lifetime. Work is O(tracked peers * their topics + expired records). */
void cp2p__gs_score_refresh(cp2p__gs_score *s, uint64_t now_ms);

/* Counters for tests/metrics. peers: connected peers tracked; retained: disconnected peers whose
 * score is kept; msg_records: delivery records held; records_dropped: records dropped at the
 * bound or for lack of memory; peers_refused: add_peer refused at the bound; record_peers_dropped:
 * duplicate senders not remembered past CP2P_GS_SCORE_RECORD_PEERS; ids_refused: message IDs too
 * long to track. (Fields after records_dropped were added; existing ones are unchanged.) */
typedef struct cp2p__gs_score_stats {
    uint64_t peers, retained, msg_records, records_dropped;
    uint64_t peers_refused, record_peers_dropped, ids_refused;
} cp2p__gs_score_stats;
void cp2p__gs_score_stats_get(const cp2p__gs_score *s, cp2p__gs_score_stats *out);

#endif
