/* Overlay core: multi-hop routing and reliable delivery between peers that are not all
 * directly connected (docs/OVERLAY.md). Sans-I/O: no clock (every call takes now_ms, a
 * monotonic millisecond clock), no sockets; randomness from cfg.rand. One owner thread.
 *
 * Routing, two modes, chosen per message (CP2P_OVL_F_SOURCE) or by default (cfg):
 *   - distance vector after Babel (RFC 8966): per destination a sequence number signed by the
 *     destination, a feasibility distance (seqno, metric) per destination, and the
 *     feasibility condition on every route selected, so that no forwarding loop forms, even
 *     transiently; triggered updates on every change of a selected route, periodic full
 *     updates every update_interval_ms, route expiry after route_expiry_ms without an update,
 *     seqno requests forwarded toward the destination when only infeasible routes are left;
 *   - link state: every node floods a signed LSA listing its neighbours (re-originated on a
 *     change and every lsa_refresh_ms, expired after lsa_max_age_ms); a link counts only when
 *     both ends list each other; Dijkstra over the database gives a source route, carried in
 *     the message.
 * Route updates are authenticated by the destination's signature over (origin, seqno) (so no
 * node can announce routes to a destination with a seqno the destination did not issue) and
 * LSAs by their origin's signature over the whole LSA (so no node can forge another's links).
 * The metric in an update is the sender's own and is not signed (as in Babel): a lying
 * neighbour can attract traffic but not forge a destination's seqno.
 *
 * Forwarding: every message carries a hop limit; a node that is not the destination drops a
 * message that arrives with hop_limit <= 1 (stats.dropped_hop_limit), else decrements it.
 * No route: dropped (stats.dropped_no_route), or with cfg.random_fallback sent to a random
 * other neighbour (the seed's rule; it may wander, bounded by the hop limit).
 *
 * Reliable delivery (CP2P_OVL_F_RELIABLE): the sender keeps the message until the
 * destination's ack comes back (routed like data), retransmits after an RTO computed from the
 * measured round trip (RFC 6298: srtt + 4 rttvar, Karn's rule), doubling per retry, and after
 * cfg.retry_limit retransmissions reports CP2P_OVL_EV_FAILED (CP2P_ETIMEDOUT). Sends past
 * max_unacked (all) or max_unacked_per_dst (one destination) fail with CP2P_EFULL.
 * The receiver keeps per source a floor and the dedup_window highest ids above it: a new id
 * is delivered once and acked; a duplicate is acked again, not delivered; an id below the floor
 * is neither delivered nor acked (its sender retries, then reports failure: never silently
 * lost, never delivered twice). A source's dedup state is freed dedup_ttl_ms after its last
 * message (config check: longer than the sender's retry budget).
 *
 * Driving it (the binding):
 *   1. new(cfg, now). add_neighbour / remove_neighbour as framed links come and go.
 *   2. on_frame(peer, bytes, len, now) for every inbound frame; an error return: reset that
 *      peer's stream (the error is counted; *why says what).
 *   3. on_timeout(now) when now >= deadline().
 *   4. After every call: while (take_out(&peer, &buf)) send the frame; while (poll_event(&ev))
 *      hand it to the application, then event_fini(&ev).
 * Every table is bounded (max_nodes, CP2P_OVL_MAX_NEIGHBOURS, max_unacked, max_out_frames,
 * max_events); what does not fit is refused and counted. */
#ifndef CP2P_OVERLAY_OVL_CORE_H
#define CP2P_OVERLAY_OVL_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cp2p/buf.h>
#include <cp2p/common.h>
#include <cp2p/keys.h>
#include <cp2p/overlay.h>
#include <cp2p/peer_id.h>

#include "overlay/ovl_msg.h"

typedef uint64_t (*cp2p__ovl_rand_fn)(void *ud);

typedef struct cp2p__ovl_config {
    const cp2p_privkey *key;        /* required, borrowed: our identity (signs) */
    uint32_t initial_seqno;         /* our first route seqno (a restart should not reuse) */
    uint64_t initial_lsa_seq;       /* our first LSA seq: above any earlier run's (an id) */
    uint32_t max_nodes;             /* CP2P_OVL_MAX_NODES */
    uint64_t update_interval_ms;    /* CP2P_OVL_UPDATE_INTERVAL_MS */
    uint64_t route_expiry_ms;       /* 0 = 3.5 x update_interval_ms */
    uint64_t lsa_refresh_ms;        /* CP2P_OVL_LSA_REFRESH_MS */
    uint64_t lsa_max_age_ms;        /* 0 = 3 x lsa_refresh_ms */
    uint8_t hop_limit;              /* CP2P_OVL_DEFAULT_HOP_LIMIT, 2..CP2P_OVL_MAX_HOPS */
    bool source_routing;            /* default mode of sends without CP2P_OVL_F_SOURCE */
    bool random_fallback;           /* no route: a random neighbour (seed rule); default off */
    uint32_t max_unacked;           /* CP2P_OVL_MAX_UNACKED */
    uint32_t max_unacked_per_dst;   /* CP2P_OVL_MAX_UNACKED_PER_DST */
    uint32_t retry_limit;           /* CP2P_OVL_RETRY_LIMIT */
    uint64_t rto_initial_ms, rto_min_ms, rto_max_ms;
    uint32_t dedup_window;          /* CP2P_OVL_DEDUP_WINDOW */
    uint64_t dedup_ttl_ms;          /* 0 = 4 x the retry budget */
    uint32_t verify_per_sec, verify_burst; /* per neighbour (CP2P_OVL_VERIFY_*) */
    uint32_t max_out_frames;        /* frames waiting to be taken (4,096) */
    uint32_t max_events;            /* deliveries waiting to be polled (4,096) */
    cp2p__ovl_rand_fn rand;         /* required */
    void *rand_ud;
} cp2p__ovl_config;

typedef enum cp2p__ovl_event_kind {
    CP2P_OVL_EV_DELIVER = 1, /* a message for us: src, id, data */
    CP2P_OVL_EV_ACKED = 2,   /* our reliable message `id` to `peer` was acknowledged */
    CP2P_OVL_EV_FAILED = 3,  /* our reliable message `id` to `peer` failed: status */
} cp2p__ovl_event_kind;

typedef struct cp2p__ovl_event {
    cp2p__ovl_event_kind kind;
    cp2p_peer_id peer; /* DELIVER: the source; ACKED/FAILED: the destination */
    uint64_t id;
    int status;        /* FAILED: CP2P_ETIMEDOUT (retry limit) or CP2P_ECLOSED (core freed) */
    bool reliable;     /* DELIVER */
    cp2p_buf data;     /* DELIVER: owned by the event until event_fini */
} cp2p__ovl_event;

/* The public counters (cp2p/overlay.h); link_refused is the binding's. */
typedef cp2p_overlay_stats cp2p__ovl_stats;

typedef struct cp2p__ovl cp2p__ovl;

/* Defaults (above); key and rand NULL. */
void cp2p__ovl_config_default(cp2p__ovl_config *cfg);

/* Returns 0 and *out, CP2P_EINVAL (no key or rand, a zero limit, hop limit out of range,
 * rto_min > rto_max, dedup_ttl_ms not above the retry budget), CP2P_ENOMEM. */
CP2P_NODISCARD int cp2p__ovl_new(const cp2p__ovl_config *cfg, uint64_t now_ms, cp2p__ovl **out);
/* Pending reliable messages are dropped without events. NULL allowed. */
void cp2p__ovl_free(cp2p__ovl *o);

const cp2p_peer_id *cp2p__ovl_local(const cp2p__ovl *o);

/* A direct link to `peer` came up, with cost 1..CP2P_OVL_MAX_COST. Returns 0, CP2P_EINVAL
 * (ourselves, bad cost), CP2P_EFULL (CP2P_OVL_MAX_NEIGHBOURS, or the node table full),
 * CP2P_ENOMEM. Adding a present neighbour updates its cost. */
CP2P_NODISCARD int cp2p__ovl_add_neighbour(cp2p__ovl *o, const cp2p_peer_id *peer, uint32_t cost,
                                           uint64_t now_ms);
/* The link went down: its routes are retracted at once. Unknown peers are ignored. */
void cp2p__ovl_remove_neighbour(cp2p__ovl *o, const cp2p_peer_id *peer, uint64_t now_ms);
bool cp2p__ovl_is_neighbour(const cp2p__ovl *o, const cp2p_peer_id *peer);

/* One frame from neighbour `from`. Returns 0, or a decode error (cp2p__ovl_frame_decode:
 * CP2P_ENOTSUP for another wire version), CP2P_EBADSIG (an update or LSA that does not
 * verify), CP2P_EPROTO (a frame from a peer that is not a neighbour is accepted; a packet
 * that claims to come from us, or a source route that does not name us): *why says what.
 * Valid entries before a bad one have been applied. */
CP2P_NODISCARD int cp2p__ovl_on_frame(cp2p__ovl *o, const cp2p_peer_id *from, const uint8_t *in,
                                      size_t len, uint64_t now_ms, const char **why);

/* Send data[0..len) (copied) to `dst` with message id `id` (from the caller's id generator:
 * unique and increasing for this node) and flags CP2P_OVL_F_RELIABLE / CP2P_OVL_F_SOURCE
 * (without CP2P_OVL_F_SOURCE the node's default mode; hop_limit 0 = the default).
 * Returns 0 (sent; reliable: kept until acked, an ACKED or FAILED event follows, also when no
 * route exists yet: it is retried), CP2P_EINVAL (dst is us, unknown flags, hop limit over
 * CP2P_OVL_MAX_HOPS), CP2P_ELIMIT (len > CP2P_OVL_MAX_PAYLOAD), CP2P_EFULL (unacked limits;
 * best effort: the output queue), CP2P_ENOENT (best effort: no route now), CP2P_ENOMEM. */
CP2P_NODISCARD int cp2p__ovl_send(cp2p__ovl *o, const cp2p_peer_id *dst, const void *data,
                                  size_t len, uint32_t flags, uint8_t hop_limit, uint64_t id,
                                  uint64_t now_ms);

uint64_t cp2p__ovl_deadline(const cp2p__ovl *o);
void cp2p__ovl_on_timeout(cp2p__ovl *o, uint64_t now_ms);

/* The next frame to send: true with its neighbour and bytes (the caller owns *frame: free
 * with cp2p_buf_fini), false when none waits. */
bool cp2p__ovl_take_out(cp2p__ovl *o, cp2p_peer_id *to, cp2p_buf *frame);
bool cp2p__ovl_poll_event(cp2p__ovl *o, cp2p__ovl_event *ev);
void cp2p__ovl_event_fini(cp2p__ovl_event *ev);
bool cp2p__ovl_events_pending(const cp2p__ovl *o);

/* Routing table queries. */
typedef struct cp2p__ovl_route_info {
    cp2p_peer_id dst, next_hop;
    uint16_t metric;   /* CP2P_OVL_INF: none */
    uint32_t seqno;
    bool feasible_alternatives; /* another feasible route exists */
} cp2p__ovl_route_info;
/* The selected distance-vector route to dst: true and *out, or false (none). */
bool cp2p__ovl_route_get(const cp2p__ovl *o, const cp2p_peer_id *dst, cp2p__ovl_route_info *out);
/* Walk the selected routes: *cursor starts at 0; false at the end. */
bool cp2p__ovl_route_next(const cp2p__ovl *o, size_t *cursor, cp2p__ovl_route_info *out);
/* The source route to dst from the link-state database (Dijkstra): writes the hops after us
 * (dst last) to path[0..max) and returns how many, 0 when dst is unreachable, CP2P_ENOSPC
 * when longer than max. *dist gets the path's cost. */
CP2P_NODISCARD int cp2p__ovl_source_route(cp2p__ovl *o, const cp2p_peer_id *dst,
                                          cp2p_peer_id *path, size_t max, uint32_t *dist);
/* Link-state database walk: each node's LSA (borrowed until the next call into the core). */
bool cp2p__ovl_lsa_next(const cp2p__ovl *o, size_t *cursor, const cp2p__ovl_lsa **out);
/* Reliable messages in flight to dst. */
uint32_t cp2p__ovl_unacked_to(const cp2p__ovl *o, const cp2p_peer_id *dst);

void cp2p__ovl_stats_get(const cp2p__ovl *o, cp2p__ovl_stats *out);

#endif
