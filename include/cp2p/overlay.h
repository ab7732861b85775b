/* cp2p overlay: messages to peers we are not directly connected to, routed over the peers we
 * are connected to, best effort or reliable (acknowledged, retransmitted, delivered exactly
 * once), on protocol /cp2p/overlay/1.0.0 (framed links, cp2p/framed.h). docs/OVERLAY.md has
 * the design; docs/ARCHITECTURE.md ("Overlay") why it is loop-free.
 *
 *     cp2p_overlay_config oc;
 *     cp2p_overlay_config_default(&oc);
 *     oc.deliver = on_message;                  // a message for us
 *     oc.result = on_result;                    // our reliable message acked, or failed
 *     cp2p_overlay_new(host, &oc, app, &ov);
 *     cp2p_overlay_send(ov, &dst, "hi", 2, CP2P_OVERLAY_RELIABLE, &id);
 *
 * Neighbours: every peer the host is connected to that identifies with the overlay protocol.
 * Routing: a Babel-style distance vector (default) or source routes from a link-state
 * database (CP2P_OVERLAY_SOURCE_ROUTE per message, or cfg.source_routing for every message).
 * Route updates and link-state advertisements are signed by the peer they are about, so a
 * neighbour cannot forge another peer's sequence numbers or links. Every message carries a
 * hop limit.
 *
 * Version: the protocol ID carries the major version and every frame its wire version; a
 * frame of another version is refused with one INFO log line ("overlay.version_mismatch"),
 * counted (stats.version_mismatch), its stream reset, and the peer is not used as a neighbour.
 *
 * Ids: 64-bit, snowflake layout (41 bits of ms, 10 of host, 12 of sequence), strictly
 * increasing per node even when the clock steps back and, with cfg.id_floor_path, across
 * restarts (the floor file is rewritten, with fsync, once per 10 s of ids: blocking I/O on
 * the loop, short). Without a floor file, a restart with the clock set back can repeat ids:
 * receivers would then refuse them as stale and the sender would see them fail (never a
 * double delivery).
 *
 * Callbacks run on the host's loop, never inside the call that caused them.
 * Threading: loop thread only, like cp2p/host.h. */
#ifndef CP2P_OVERLAY_H
#define CP2P_OVERLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cp2p/common.h>
#include <cp2p/peer_id.h>

#ifdef __cplusplus
extern "C" {
#endif

/* cp2p/host.h (repeated typedef: same type). Not included, so that the sans-I/O core can share
 * the stats struct without libuv's header. */
typedef struct cp2p_host cp2p_host;

#define CP2P_OVERLAY_PROTOCOL "/cp2p/overlay/1.0.0"

/* cp2p_overlay_send flags. */
#define CP2P_OVERLAY_RELIABLE 1u     /* acked, retransmitted, exactly once; result callback */
#define CP2P_OVERLAY_SOURCE_ROUTE 2u /* route by link state (Dijkstra) instead of the DV */

typedef struct cp2p_overlay cp2p_overlay;

typedef struct cp2p_overlay_config {
    bool source_routing;           /* every message source routed (false: distance vector) */
    bool random_fallback;          /* no route: send to a random neighbour (the seed's rule) */
    uint8_t hop_limit;             /* default hop limit (16; 2..32) */
    uint32_t max_nodes;            /* peers the overlay knows about (1,024) */
    uint32_t max_unacked;          /* reliable messages in flight, all (4,096) */
    uint32_t max_unacked_per_dst;  /* ... to one destination (256) */
    uint32_t retry_limit;          /* retransmissions before a message fails (8) */
    uint64_t rto_initial_ms;       /* before a round trip is measured (1 s) */
    uint64_t rto_min_ms, rto_max_ms; /* RTO bounds (200 ms, 10 s) */
    uint64_t update_interval_ms;   /* periodic route updates (4 s); expiry 3.5 x */
    uint64_t lsa_refresh_ms;       /* link-state refresh (10 s); expiry 3 x */
    uint32_t dedup_window;         /* ids remembered per source (1,024) */
    const char *id_floor_path;     /* file keeping the id floor across restarts, or NULL */
    /* A message for us, borrowed for the call. `id` is the sender's. */
    void (*deliver)(cp2p_overlay *ov, const cp2p_peer_id *src, uint64_t id,
                    const uint8_t *data, size_t len, bool reliable, void *ud);
    /* Our reliable message `id` to `dst`: status 0 (acknowledged by dst) or CP2P_ETIMEDOUT
     * (no ack after retry_limit retransmissions: dst may or may not have it). */
    void (*result)(cp2p_overlay *ov, const cp2p_peer_id *dst, uint64_t id, int status,
                   void *ud);
} cp2p_overlay_config;

typedef struct cp2p_overlay_stats {
    uint64_t nodes, neighbours, routes, lsas; /* gauges */
    uint64_t unacked;                         /* gauge: reliable messages in flight */
    uint64_t updates_sent, updates_received;  /* route entries */
    uint64_t updates_infeasible;              /* received but not selectable (feasibility) */
    uint64_t requests_sent, requests_received, requests_forwarded; /* seqno requests */
    uint64_t lsas_received, lsas_flooded, lsas_originated;
    uint64_t spf_runs;                        /* Dijkstra runs */
    uint64_t bad_signature;                   /* updates and LSAs that did not verify */
    uint64_t verify_budget;                   /* entries skipped: a neighbour's verification
                                               * budget was spent (abuse budget) */
    uint64_t unverifiable;                    /* origins whose key is not in their peer ID */
    uint64_t nodes_refused;                   /* node table full */
    uint64_t frames_rejected;                 /* bad frames: stream reset */
    uint64_t version_mismatch;                /* frames of another overlay wire version */
    uint64_t sent, sent_reliable;
    uint64_t delivered, forwarded;
    uint64_t dropped_hop_limit, dropped_no_route, dropped_bad_route, dropped_events_full;
    uint64_t random_forwards;
    uint64_t retransmissions, failed;
    uint64_t acks_sent, acks_received, acks_unknown;
    uint64_t duplicates, stale;               /* suppressed at the receiver */
    uint64_t out_dropped;                     /* frames dropped: output queue full */
    uint64_t dedup_sources;                   /* gauge */
    uint64_t link_refused;                    /* frames a neighbour's link refused (full) */
    uint64_t neighbours_silent;               /* neighbours silent for a route expiry (a
                                               * stalled link): out of our LSA until heard */
} cp2p_overlay_stats;

typedef struct cp2p_overlay_route {
    cp2p_peer_id dst, next_hop;
    uint32_t metric; /* sum of link costs (1 per link by default) */
    uint32_t seqno;  /* the destination's sequence number */
} cp2p_overlay_route;

typedef struct cp2p_overlay_link {
    cp2p_peer_id from, to; /* from's LSA lists to */
    uint32_t cost;
    uint64_t seq;          /* from's LSA sequence number */
} cp2p_overlay_link;

/* Defaults (above), no callbacks. Any thread. */
CP2P_API void cp2p_overlay_config_default(cp2p_overlay_config *cfg);

/* Join the overlay on `h`. Returns 0 and *out; CP2P_EINVAL (bad config); CP2P_EIO (the floor
 * file exists but cannot be read or parsed); the errors of cp2p_framed_new (CP2P_ESTATE: the
 * protocol already has a handler; CP2P_ECLOSED; CP2P_ENOMEM). */
CP2P_API CP2P_NODISCARD int cp2p_overlay_new(cp2p_host *h, const cp2p_overlay_config *cfg,
                                             void *ud, cp2p_overlay **out);
/* Leave the overlay and free it: no callback runs after this returns; reliable messages in
 * flight get no result. The host closing closes it too (the handle is then invalid). Not from
 * the overlay's own callbacks. NULL allowed. */
CP2P_API void cp2p_overlay_close(cp2p_overlay *ov);

/* Send data[0..len) (copied) to `dst`; *id (may be NULL) gets the message id. flags:
 * CP2P_OVERLAY_RELIABLE, CP2P_OVERLAY_SOURCE_ROUTE. Returns 0 (best effort: handed to the
 * next hop; reliable: in flight, `result` follows, also when no route exists yet: retried);
 * CP2P_EINVAL (dst is us, unknown flags); CP2P_ELIMIT (len over 48 KiB); CP2P_EFULL (reliable:
 * max_unacked or max_unacked_per_dst reached: retry after a result; best effort: output
 * full); CP2P_ENOENT (best effort: no route now); CP2P_EIO (the id floor could not be
 * written); CP2P_ENOMEM. */
CP2P_API CP2P_NODISCARD int cp2p_overlay_send(cp2p_overlay *ov, const cp2p_peer_id *dst,
                                              const void *data, size_t len, uint32_t flags,
                                              uint64_t *id);

/* The distance-vector table: up to max routes into out; returns how many exist. */
CP2P_API size_t cp2p_overlay_routes(const cp2p_overlay *ov, cp2p_overlay_route *out, size_t max);
/* The link-state database as links (ours first): up to max; returns how many exist. */
CP2P_API size_t cp2p_overlay_topology(const cp2p_overlay *ov, cp2p_overlay_link *out, size_t max);
/* The source route to dst (hops after us, dst last) into path[0..max): returns the number of
 * hops, 0 when unreachable, CP2P_ENOSPC when longer than max. */
CP2P_API CP2P_NODISCARD int cp2p_overlay_path(cp2p_overlay *ov, const cp2p_peer_id *dst,
                                              cp2p_peer_id *path, size_t max);
/* Reliable messages in flight to dst. */
CP2P_API uint32_t cp2p_overlay_unacked(const cp2p_overlay *ov, const cp2p_peer_id *dst);
CP2P_API void cp2p_overlay_stats_get(const cp2p_overlay *ov, cp2p_overlay_stats *out);

/* Copy the overlay's counters into a metrics registry as cp2p_overlay_* series (names in
 * docs/METRICS.md). First call with *state NULL; free state with cp2p_overlay_metrics_free.
 * Returns 0, CP2P_EINVAL, CP2P_ENOMEM, or the registry's error. Loop thread only. */
typedef struct cp2p_overlay_metrics cp2p_overlay_metrics;
typedef struct cp2p_metrics cp2p_metrics;
CP2P_API CP2P_NODISCARD int cp2p_overlay_metrics_update(cp2p_overlay_metrics **state,
                                                        const cp2p_overlay *ov,
                                                        cp2p_metrics *reg);
CP2P_API void cp2p_overlay_metrics_free(cp2p_overlay_metrics *state);

#ifdef __cplusplus
}
#endif
#endif
