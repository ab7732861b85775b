/* cp2p: the peerstore. What the node knows about other peers: addresses (each with an expiry
 * and the source it was learned from), public key, supported protocols, agent version, round
 * trip time, connection history; optionally persisted in an SQLite file so that a restarted node
 * finds the peers it knew (as CometBFT's address book does).
 *
 * Threading: NOT thread-safe. A peerstore has one owner, the host's loop thread; every function
 * must be called from that thread (or, in tests, from one thread). Nothing here reads a clock or
 * touches the event loop: time is always a parameter `now` (milliseconds).
 *
 * Time: every `now` passed to one peerstore must come from the same clock. An in-memory store
 * accepts any monotonic millisecond clock (virtual time in tests). A file-backed store writes
 * absolute expiry times, so its `now` must be wall-clock milliseconds since the Unix epoch
 * (CLOCK_REALTIME), or addresses would expire wrongly after a restart.
 *
 * Borrowed results: pointers returned by the query functions (addresses, agent, protocols,
 * public key) point into the store and stay valid until the next call that takes a non-const
 * `cp2p_peerstore *`. Copy what you keep longer (cp2p_multiaddr_dup). */
#ifndef CP2P_PEERSTORE_H
#define CP2P_PEERSTORE_H

#include <stdbool.h>

#include <cp2p/common.h>
#include <cp2p/multiaddr.h>
#include <cp2p/peer_id.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Where an address came from. The values are stored in the database: never renumber them.
 * Addresses are returned in this order of preference (then most recently updated first):
 * MANUAL (configured by the user), IDENTIFY (the peer's own listen addresses), DHT (someone
 * else's claim), INBOUND (the remote end of an inbound connection: usually an ephemeral port
 * that cannot be dialed, so it is tried last). */
typedef enum cp2p_addr_source {
    CP2P_ADDR_SOURCE_MANUAL = 0,
    CP2P_ADDR_SOURCE_IDENTIFY = 1,
    CP2P_ADDR_SOURCE_DHT = 2,
    CP2P_ADDR_SOURCE_INBOUND = 3,
} cp2p_addr_source;

/* A TTL that never expires (e.g. for manual addresses). */
#define CP2P_PEERSTORE_TTL_PERMANENT UINT64_MAX
/* The expiry of an address added with CP2P_PEERSTORE_TTL_PERMANENT. */
#define CP2P_PEERSTORE_NEVER UINT64_MAX

typedef struct cp2p_peerstore cp2p_peerstore;

typedef struct cp2p_peerstore_config {
    /* Peers kept in memory (and in the file). When a new peer arrives and the store is full, the
     * least useful unprotected peer is evicted (see cp2p_peerstore_add_addrs). 1..1,000,000. */
    size_t max_peers;
    /* Addresses kept per peer; past it the address that expires first is dropped. 1..1024. */
    size_t max_addrs_per_peer;
    /* Protocols kept per peer; a longer list is refused with CP2P_ELIMIT. 1..4096. */
    size_t max_protocols_per_peer;
} cp2p_peerstore_config;

/* Defaults from src/util/limits.h: 10000 peers, 32 addresses and 256 protocols per peer.
 * Any thread. */
CP2P_API void cp2p_peerstore_config_default(cp2p_peerstore_config *cfg);

/* One address of a peer, as returned by cp2p_peerstore_addrs(). `addr` is borrowed (see the
 * top of this file). */
typedef struct cp2p_peerstore_addr {
    const cp2p_multiaddr *addr;
    uint64_t expires_ms; /* CP2P_PEERSTORE_NEVER for permanent addresses */
    uint64_t updated_ms; /* last time it was added or confirmed */
    cp2p_addr_source source;
} cp2p_peerstore_addr;

/* What the store knows about one peer besides addresses, protocols and strings. */
typedef struct cp2p_peerstore_info {
    bool protected_peer;       /* never evicted nor collected */
    uint32_t failures;         /* dial failures since the last successful connection */
    uint64_t last_seen_ms;     /* last time we heard of the peer (addresses, key, protocols,
                                * agent, RTT, connection); a dial failure does not count */
    uint64_t last_connected_ms;/* last cp2p_peerstore_record_connected(), 0 if never */
    uint64_t last_failure_ms;  /* last cp2p_peerstore_record_failure(), 0 if never */
    uint64_t rtt_last_ns;      /* last RTT sample, 0 if none (not persisted) */
    uint64_t rtt_ewma_ns;      /* smoothed RTT (alpha 0.1), 0 if none */
    size_t naddrs;             /* addresses held, expired ones included until gc */
    size_t nprotocols;
} cp2p_peerstore_info;

typedef struct cp2p_peerstore_stats {
    uint64_t peers;         /* peers in memory now */
    uint64_t addrs;         /* addresses in memory now (expired ones included until gc) */
    uint64_t evictions;     /* peers evicted to make room (peerstore.evicted) */
    uint64_t addrs_dropped; /* addresses dropped by the per-peer cap (peerstore.addr_dropped) */
    uint64_t gc_removed;    /* peers removed by gc or at load for having no address left */
    uint64_t flushes;       /* successful flushes that wrote something */
    uint64_t db_errors;     /* failed database operations (peerstore.db_error) */
    uint64_t db_bad_rows;   /* rows skipped at load because they did not validate */
} cp2p_peerstore_stats;

/* Open a peerstore. `cfg` NULL means the defaults. `path` NULL gives an in-memory store (flush
 * does nothing); otherwise the SQLite database at `path` is created (mode 0600, WAL journal) or
 * loaded: every peer with its addresses that have not expired at `now` (wall-clock ms, see the
 * top of this file) and its protocols, up to max_peers (protected peers first, then the most
 * recently seen). Unprotected peers left with no address are dropped from memory at once and
 * from the file at the next flush.
 * Returns 0 with *out owned by the caller (free it with cp2p_peerstore_close), or:
 *   CP2P_EINVAL  cfg out of range, or out NULL;
 *   CP2P_ENOMEM  allocation failed;
 *   CP2P_EIO     the file cannot be created or opened, is not an SQLite database, is corrupt,
 *                or is a database without our schema (a line "peerstore.db_open_failed" is
 *                logged with SQLite's message). Move the file away or fix it; nothing was
 *                written to it;
 *   CP2P_ENOTSUP the file was written by a newer cp2p (schema version above ours): use that
 *                version, or move the file away (logged as "peerstore.schema_newer").
 * Loop thread (one owner). Blocking file I/O: call it before the loop starts. */
CP2P_API CP2P_NODISCARD int cp2p_peerstore_open(const cp2p_peerstore_config *cfg,
                                                const char *path, uint64_t now,
                                                cp2p_peerstore **out);

/* Free the store and close its database. Changes since the last cp2p_peerstore_flush() are
 * NOT written (flush needs `now`; call it first). NULL is ignored. Owner thread. */
CP2P_API void cp2p_peerstore_close(cp2p_peerstore *ps);

/* Write every change since the last successful flush to the database in one transaction:
 * changed peers (with their unexpired addresses at `now`) and removed peers. Does nothing for
 * an in-memory store. Returns 0, or CP2P_EIO (logged as "peerstore.db_error", counted in
 * db_errors): the transaction was rolled back and the changes stay pending, so the next flush
 * retries them. Owner thread; blocking file I/O (milliseconds for thousands of changes). */
CP2P_API CP2P_NODISCARD int cp2p_peerstore_flush(cp2p_peerstore *ps, uint64_t now);

/* Add `n` addresses of `peer` (all borrowed; copied) learned from `source`, each expiring at
 * now + ttl_ms (CP2P_PEERSTORE_TTL_PERMANENT: never). An address already known keeps the later
 * of its two expiries and the better of its two sources, and its updated time becomes `now`.
 * Duplicates in `addrs` count once. The peer is created if new; when the store is full the
 * least useful unprotected peer is evicted first (no address left, then most dial failures,
 * then oldest last-seen), and counted in stats.evictions. Past max_addrs_per_peer the
 * addresses that expire first are dropped (counted in addrs_dropped); already expired
 * addresses are dropped too.
 * Returns 0, or (nothing changed in all these cases):
 *   CP2P_EINVAL  ps, peer or addrs (when n > 0) NULL, an entry NULL, ttl_ms 0, or an unknown
 *                source;
 *   CP2P_EFULL   the peer is new, the store is full and every peer is protected;
 *   CP2P_ENOMEM  allocation failed.
 * Owner thread. */
CP2P_API CP2P_NODISCARD int cp2p_peerstore_add_addrs(cp2p_peerstore *ps, const cp2p_peer_id *peer,
                                                     const cp2p_multiaddr *const *addrs, size_t n,
                                                     uint64_t ttl_ms, cp2p_addr_source source,
                                                     uint64_t now);

/* The addresses of `peer` that have not expired at `now`, best first (source order, then most
 * recently updated). Writes up to `max` entries to `out` (may be NULL when max is 0) and
 * returns how many there are in all (0 for an unknown peer), so a return above `max` means
 * `out` was too small. Entries are borrowed (see the top of this file). Owner thread. */
CP2P_API size_t cp2p_peerstore_addrs(const cp2p_peerstore *ps, const cp2p_peer_id *peer,
                                     uint64_t now, cp2p_peerstore_addr *out, size_t max);

/* Record the peer's public key, `len` bytes of protobuf PublicKey (borrowed; copied). The key
 * must hash to `peer` (libp2p peer-ids spec). Creates the peer if new (eviction as in
 * add_addrs). Returns 0, or CP2P_EINVAL (NULL argument), CP2P_ELIMIT (more than
 * CP2P_KEY_PB_MAX bytes), CP2P_EPROTO (not a valid key encoding), CP2P_EPEERID (the key is not
 * this peer's), CP2P_EFULL, CP2P_ENOMEM; nothing changed on error. Owner thread. */
CP2P_API CP2P_NODISCARD int cp2p_peerstore_set_pubkey(cp2p_peerstore *ps, const cp2p_peer_id *peer,
                                                      const uint8_t *pb, size_t len, uint64_t now);

/* The peer's protobuf PublicKey: the recorded one, else the one inlined in an identity peer ID
 * (Ed25519, secp256k1). Returns 0 with *out borrowed (from the store, or from *peer when the
 * peer is unknown and its ID inlines the key), or CP2P_ENOENT if neither exists,
 * CP2P_EINVAL on NULL arguments. Owner thread. */
CP2P_API CP2P_NODISCARD int cp2p_peerstore_pubkey(const cp2p_peerstore *ps,
                                                  const cp2p_peer_id *peer, cp2p_slice *out);

/* Replace the peer's protocol list with `n` NUL-terminated strings (borrowed; copied;
 * duplicates kept once). Creates the peer if new. Returns 0, or CP2P_EINVAL (NULL argument or
 * empty string), CP2P_ELIMIT (more than max_protocols_per_peer distinct entries, or one longer
 * than CP2P_PEERSTORE_PROTOCOL_MAX bytes), CP2P_EFULL, CP2P_ENOMEM; nothing changed on error.
 * Owner thread. */
CP2P_API CP2P_NODISCARD int cp2p_peerstore_set_protocols(cp2p_peerstore *ps,
                                                         const cp2p_peer_id *peer,
                                                         const char *const *protos, size_t n,
                                                         uint64_t now);

/* True when the peer is known to support `proto`. Owner thread. */
CP2P_API bool cp2p_peerstore_supports(const cp2p_peerstore *ps, const cp2p_peer_id *peer,
                                      const char *proto);

/* The peer's protocols: writes up to `max` borrowed strings to `out` and returns how many there
 * are (0 for an unknown peer). Owner thread. */
CP2P_API size_t cp2p_peerstore_protocols(const cp2p_peerstore *ps, const cp2p_peer_id *peer,
                                         const char **out, size_t max);

/* Record the peer's agent version (NUL-terminated, borrowed; copied). Creates the peer if new.
 * Returns 0, or CP2P_EINVAL (NULL argument), CP2P_ELIMIT (longer than
 * CP2P_PEERSTORE_AGENT_MAX bytes), CP2P_EFULL, CP2P_ENOMEM; nothing changed on error.
 * Owner thread. */
CP2P_API CP2P_NODISCARD int cp2p_peerstore_set_agent(cp2p_peerstore *ps, const cp2p_peer_id *peer,
                                                     const char *agent, uint64_t now);

/* The peer's agent version, borrowed, or NULL if unknown. Owner thread. */
CP2P_API const char *cp2p_peerstore_agent(const cp2p_peerstore *ps, const cp2p_peer_id *peer);

/* Record one round-trip sample (e.g. from ping) of a known peer: the last sample and an EWMA
 * with weight 0.1 for the new sample (as go-libp2p's peerstore). Samples above one minute are
 * clamped. Returns 0, CP2P_EINVAL (NULL argument, rtt_ns 0), or CP2P_ENOENT (unknown peer:
 * a peer we measured is one we are connected to, so the host has recorded it already).
 * Owner thread. */
CP2P_API CP2P_NODISCARD int cp2p_peerstore_record_rtt(cp2p_peerstore *ps, const cp2p_peer_id *peer,
                                                      uint64_t rtt_ns, uint64_t now);

/* A connection to the peer succeeded: last_connected = now, failures = 0. Creates the peer if
 * new (an inbound connection from a stranger). Returns 0, CP2P_EINVAL, CP2P_EFULL or
 * CP2P_ENOMEM. Owner thread. */
CP2P_API CP2P_NODISCARD int cp2p_peerstore_record_connected(cp2p_peerstore *ps,
                                                            const cp2p_peer_id *peer,
                                                            uint64_t now);

/* A dial to a known peer failed: failures += 1 (saturating). Returns 0, CP2P_EINVAL, or
 * CP2P_ENOENT (unknown peer). Owner thread. */
CP2P_API CP2P_NODISCARD int cp2p_peerstore_record_failure(cp2p_peerstore *ps,
                                                          const cp2p_peer_id *peer, uint64_t now);

/* Mark the peer protected (configured persistent peers): never evicted, never dropped by gc or
 * at load. Protecting an unknown peer creates it; unprotecting one returns CP2P_ENOENT.
 * Returns 0, CP2P_EINVAL, CP2P_ENOENT, CP2P_EFULL or CP2P_ENOMEM. Owner thread. */
CP2P_API CP2P_NODISCARD int cp2p_peerstore_set_protected(cp2p_peerstore *ps,
                                                         const cp2p_peer_id *peer, bool on,
                                                         uint64_t now);

/* Counters and the times of the peer. Returns 0, CP2P_EINVAL or CP2P_ENOENT. Owner thread. */
CP2P_API CP2P_NODISCARD int cp2p_peerstore_info_get(const cp2p_peerstore *ps,
                                                    const cp2p_peer_id *peer,
                                                    cp2p_peerstore_info *out);

/* The known peers, in no particular order: writes up to `max` IDs to `out` and returns how
 * many peers there are. Sort them with cp2p_peerstore_info_get() if order matters.
 * Owner thread. */
CP2P_API size_t cp2p_peerstore_peers(const cp2p_peerstore *ps, cp2p_peer_id *out, size_t max);

/* Forget the peer, protected or not (removed from the file at the next flush). Returns 0,
 * CP2P_EINVAL, or CP2P_ENOENT. Owner thread. */
CP2P_API CP2P_NODISCARD int cp2p_peerstore_remove(cp2p_peerstore *ps, const cp2p_peer_id *peer);

/* Drop the addresses expired at `now`, then every unprotected peer left with none. Returns the
 * number of peers removed. O(peers); the host calls it periodically. Owner thread. */
CP2P_API size_t cp2p_peerstore_gc(cp2p_peerstore *ps, uint64_t now);

/* Counters. Owner thread. */
CP2P_API void cp2p_peerstore_stats_get(const cp2p_peerstore *ps, cp2p_peerstore_stats *out);

#ifdef __cplusplus
}
#endif
#endif
