/* cp2p: the Kademlia DHT (libp2p kad-dht spec, /ipfs/kad/1.0.0), wire-compatible with
 * go-libp2p-kad-dht and js @libp2p/kad-dht, on the host's public API.
 *
 * What it does: keeps a routing table of peers that speak the DHT protocol in server mode
 * (learned from identify and from answers to our queries; k = 20 per bucket; at most 2 per
 * IPv4 /24 or IPv6 /48 per bucket and 10 in the table, loopback exempt by default), answers
 * FIND_NODE, GET_VALUE, PUT_VALUE, ADD_PROVIDER, GET_PROVIDERS and PING (server mode), runs
 * iterative lookups (alpha = 10 queries in flight, ending when the k closest peers heard of
 * have answered), stores records (validated by namespace) and provider records, bootstraps
 * from configured peers, refreshes its buckets periodically and bootstraps again when the
 * table empties. Peers found by lookups go to the host's peerstore (source DHT); a peer whose
 * query fails is checked with a ping (after a dial) and removed from the table when that
 * fails too.
 *
 * Threading: every function here is called on the loop thread that runs the host, and every
 * callback runs on it. Callback rule (STYLE.md section 3): a function that returns an error
 * never calls its callback; one that returns 0 calls it exactly once, never before it returned.
 * The DHT is a service of its host (cp2p/service.h): close it with cp2p_kad_close, or let
 * cp2p_host_close close it (operations in flight end with CP2P_ECANCELED); its handle is invalid
 * once the host has begun closing it. */
#ifndef CP2P_KAD_H
#define CP2P_KAD_H

#include <cp2p/host.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CP2P_KAD_PROTOCOL "/ipfs/kad/1.0.0"

typedef enum cp2p_kad_mode {
    /* Server when the host listens on at least one address when cp2p_kad_new runs (there is
     * no reachability detection yet: a configured listen address counts as dialable). */
    CP2P_KAD_MODE_AUTO = 0,
    CP2P_KAD_MODE_SERVER,  /* answer queries and advertise the protocol (identify) */
    CP2P_KAD_MODE_CLIENT,  /* only query others; never enters other peers' tables */
} cp2p_kad_mode;

typedef struct cp2p_kad_config {
    const char *protocol;          /* protocol ID (CP2P_KAD_PROTOCOL); e.g. "/mychain/kad/1.0.0" */
    cp2p_kad_mode mode;
    uint32_t k;                    /* bucket size and replication (20) */
    uint32_t alpha;                /* lookup concurrency (10, go-libp2p-kad-dht's) */
    uint32_t quorum;               /* GET: stop after this many valid answers (0 = all of the
                                      k closest; go's default behaviour) */
    uint64_t query_timeout_ms;     /* one peer's answer, dial included (10 s) */
    uint64_t lookup_timeout_ms;    /* one whole lookup (60 s) */
    uint64_t refresh_interval_ms;  /* self lookup + due bucket refresh (10 min, go's) */
    uint32_t max_per_group_bucket; /* diversity: peers of one /24 or /48 per bucket (2) */
    uint32_t max_per_group_table;  /* ... in the table (10) */
    bool limit_loopback;           /* apply diversity limits to loopback too (false) */
    /* Bootstrap peers: multiaddrs ending in /p2p/<id> (copied). Dialed at start, whenever the
     * table becomes empty, and on cp2p_kad_bootstrap(). */
    const char *const *bootstrap;
    size_t n_bootstrap;
    /* Local store (0 = default). */
    size_t max_records;            /* 10,000 */
    uint64_t record_ttl_ms;        /* 36 h (go's MaxRecordAge) */
    uint64_t provider_ttl_ms;      /* 48 h (go's) */
    uint64_t republish_interval_ms;/* our provider records are re-announced this often (22 h) */
    /* Inbound requests per peer per second, with a burst (20, 40): over it the stream is
     * reset and counted. */
    uint32_t requests_per_sec;
    uint32_t requests_burst;
} cp2p_kad_config;

CP2P_API void cp2p_kad_config_default(cp2p_kad_config *c);

typedef struct cp2p_kad cp2p_kad;

/* Start the DHT on h: registers the protocol handler (server mode), watches identify to fill
 * the table, dials the bootstrap peers and starts the refresh timer. Returns 0, CP2P_EINVAL
 * (bad config or bootstrap address), CP2P_EFULL (handler table full), CP2P_ENOMEM. */
CP2P_API CP2P_NODISCARD int cp2p_kad_new(cp2p_host *h, const cp2p_kad_config *cfg,
                                         cp2p_kad **out);
/* Stop: every operation in flight completes with CP2P_ECANCELED (before this returns), the
 * handler is removed, inbound streams are reset, timers stop. The memory is released at once.
 * Not needed before cp2p_host_close(), which does the same. */
CP2P_API void cp2p_kad_close(cp2p_kad *kad);

/* Bootstrap now: dial the bootstrap peers, then look ourselves up and refresh due buckets.
 * cb (may be NULL) runs when the self lookup ended, with the routing table's size. Returns 0,
 * CP2P_ENOMEM. */
typedef void (*cp2p_kad_bootstrap_cb)(cp2p_kad *kad, int status, size_t table_size, void *ud);
CP2P_API CP2P_NODISCARD int cp2p_kad_bootstrap(cp2p_kad *kad, cp2p_kad_bootstrap_cb cb, void *ud);

CP2P_API size_t cp2p_kad_table_size(const cp2p_kad *kad);
/* The n-th peer of the routing table; false past the end. */
CP2P_API bool cp2p_kad_table_peer(const cp2p_kad *kad, size_t n, cp2p_peer_id *out);
CP2P_API bool cp2p_kad_is_server(const cp2p_kad *kad);

/* A peer and what we know of its addresses (borrowed for the callback). */
typedef struct cp2p_kad_peer_info {
    cp2p_peer_id id;
    const cp2p_multiaddr *const *addrs;
    size_t n_addrs;
} cp2p_kad_peer_info;

/* Every operation below (and cp2p_kad_bootstrap's lookups) also fails with CP2P_EFULL when
 * CP2P_KAD_MAX_OPS (256) operations are in flight: retry later. */

/* Find a peer's addresses: answers at once when connected and its addresses are known (from
 * identify or earlier), else looks the peer up (FIND_NODE
 * on its ID) and stops when a peer returns it. cb gets status 0 and the peer, or CP2P_ENOENT
 * (the lookup ended without it), CP2P_ETIMEDOUT, CP2P_ECANCELED. Returns 0, CP2P_EINVAL (self),
 * CP2P_ESTATE (the table is empty: bootstrap first), CP2P_ENOMEM. */
typedef void (*cp2p_kad_peer_cb)(cp2p_kad *kad, int status, const cp2p_kad_peer_info *peer,
                                 void *ud);
CP2P_API CP2P_NODISCARD int cp2p_kad_find_peer(cp2p_kad *kad, const cp2p_peer_id *peer,
                                               cp2p_kad_peer_cb cb, void *ud);

/* The k peers closest to `key` (bytes, SHA-256 space), by lookup. cb gets them closest first. */
typedef void (*cp2p_kad_peers_cb)(cp2p_kad *kad, int status, const cp2p_kad_peer_info *peers,
                                  size_t n, void *ud);
CP2P_API CP2P_NODISCARD int cp2p_kad_closest_peers(cp2p_kad *kad, const uint8_t *key,
                                                   size_t key_len, cp2p_kad_peers_cb cb,
                                                   void *ud);

/* PUT_VALUE: validate the record locally, store it, find the k closest peers to the key and
 * send it to each. cb gets 0 and how many peers accepted it (0 is an error: CP2P_ENOENT when
 * no remote peer took it). Returns 0, CP2P_ENOTSUP (no validator for the key's namespace),
 * the validator's error, CP2P_EINVAL, CP2P_ELIMIT (key or value too large), CP2P_ENOMEM. */
typedef void (*cp2p_kad_put_cb)(cp2p_kad *kad, int status, size_t stored, void *ud);
CP2P_API CP2P_NODISCARD int cp2p_kad_put_value(cp2p_kad *kad, const uint8_t *key, size_t key_len,
                                               const uint8_t *value, size_t value_len,
                                               cp2p_kad_put_cb cb, void *ud);

/* GET_VALUE: the local record if any, then a lookup collecting valid values (invalid answers
 * are dropped and counted); the best by the namespace's select wins, and peers that returned
 * a worse one are sent the best (spec, "entry correction"). cb gets 0 and the value (borrowed),
 * or CP2P_ENOENT, CP2P_ETIMEDOUT, CP2P_ECANCELED. */
typedef void (*cp2p_kad_value_cb)(cp2p_kad *kad, int status, const uint8_t *value, size_t len,
                                  void *ud);
CP2P_API CP2P_NODISCARD int cp2p_kad_get_value(cp2p_kad *kad, const uint8_t *key, size_t key_len,
                                               cp2p_kad_value_cb cb, void *ud);

/* ADD_PROVIDER: announce that we provide `key` (a CID's multihash bytes: use
 * cp2p_kad_key_from_cid for a CID) to the k closest peers, and re-announce it every
 * republish_interval_ms until cp2p_kad_close. cb gets the number of peers told. */
CP2P_API CP2P_NODISCARD int cp2p_kad_provide(cp2p_kad *kad, const uint8_t *key, size_t key_len,
                                             cp2p_kad_put_cb cb, void *ud);
/* GET_PROVIDERS: up to `max` providers of key (local ones first), stopping the lookup once it
 * has max. cb gets them, or CP2P_ENOENT when none was found. */
CP2P_API CP2P_NODISCARD int cp2p_kad_find_providers(cp2p_kad *kad, const uint8_t *key,
                                                    size_t key_len, size_t max,
                                                    cp2p_kad_peers_cb cb, void *ud);

/* The DHT key of a CID (text, any supported form): its multihash bytes, as go and js use for
 * provider records. Writes up to out_max bytes. Returns the length or CP2P_EINVAL/CP2P_ENOSPC. */
CP2P_API CP2P_NODISCARD ptrdiff_t cp2p_kad_key_from_cid(const char *cid, uint8_t *out,
                                                        size_t out_max);

/* A record validator for namespace `ns` (keys "/ns/..."): validate returns 0 for a valid value;
 * select returns the index of the best of n valid values (NULL: the first wins). Replaces an
 * earlier one. Without a validator for its namespace a record is refused, as go and js do. */
typedef int (*cp2p_kad_validate_fn)(void *ud, const uint8_t *key, size_t key_len,
                                    const uint8_t *value, size_t value_len);
typedef int (*cp2p_kad_select_fn)(void *ud, const uint8_t *key, size_t key_len,
                                  const uint8_t *const *values, const size_t *lens, size_t n);
CP2P_API CP2P_NODISCARD int cp2p_kad_add_validator(cp2p_kad *kad, const char *ns,
                                                   cp2p_kad_validate_fn validate,
                                                   cp2p_kad_select_fn select, void *ud);
/* A validator that accepts any value (select: the first), for application namespaces whose
 * values need no check. Pass as validate with ud NULL. */
CP2P_API int cp2p_kad_accept_any(void *ud, const uint8_t *key, size_t key_len,
                                 const uint8_t *value, size_t value_len);

typedef struct cp2p_kad_stats {
    uint64_t table_size, table_added, table_removed, table_refused_diversity;
    uint64_t requests_in, requests_refused_rate, requests_bad, responses_sent;
    uint64_t queries_out, queries_failed, queries_deferred, lookups, lookups_timed_out;
    uint64_t closer_dropped, values_invalid, records_stored, providers_stored;
    uint64_t liveness_checks, liveness_failed, bootstraps;
    uint64_t ops_refused;   /* operations refused with CP2P_EFULL (CP2P_KAD_MAX_OPS in flight) */
} cp2p_kad_stats;
CP2P_API void cp2p_kad_stats_get(const cp2p_kad *kad, cp2p_kad_stats *out);

#ifdef __cplusplus
}
#endif
#endif
