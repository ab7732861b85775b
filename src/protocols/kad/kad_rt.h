/* The Kademlia routing table (sans-I/O): 256 k-buckets indexed by the common prefix length
 * of SHA-256(peer ID) with ours. Go-libp2p-kad-dht's policy: a full bucket never drops a live
 * entry for a newcomer; when a bucket is full and its least recently seen entry is stale
 * (not seen for stale_after_ms), the table asks the caller to check that entry's liveness
 * (CP2P__KAD_RT_CHECK) and keeps the newcomer as that bucket's pending replacement; the caller
 * answers with cp2p__kad_rt_check_done(): a dead entry is replaced by the pending one.
 * Diversity (eclipse resistance): at most max_per_group_bucket peers of one IP group
 * (IPv4 /24, IPv6 /48) per bucket and max_per_group_table in the whole table; loopback
 * addresses are exempt unless limit_loopback. Only the caller decides who may enter (peers
 * that speak the kad protocol in server mode): the table does not know protocols. */
#ifndef CP2P_PROTOCOLS_KAD_RT_H
#define CP2P_PROTOCOLS_KAD_RT_H

#include <cp2p/multiaddr.h>

#include "protocols/kad/kad_key.h"

typedef struct cp2p__kad_rt_config {
    uint32_t k;                    /* bucket size (20, the spec's replication parameter) */
    uint32_t max_per_group_bucket; /* peers of one /24 or /48 per bucket (2); 0 = no limit */
    uint32_t max_per_group_table;  /* ... in the whole table (10); 0 = no limit */
    bool limit_loopback;           /* apply the group limits to loopback addresses too */
    uint64_t stale_after_ms;       /* an entry not seen for this long may be checked (5 min) */
} cp2p__kad_rt_config;

void cp2p__kad_rt_config_default(cp2p__kad_rt_config *c);

typedef struct cp2p__kad_rt cp2p__kad_rt;

/* Returns 0, CP2P_EINVAL (k == 0 or above CP2P_KAD_MAX_K), CP2P_ENOMEM. */
CP2P_NODISCARD int cp2p__kad_rt_new(const cp2p_peer_id *self, const cp2p__kad_rt_config *cfg,
                                    cp2p__kad_rt **out);
void cp2p__kad_rt_free(cp2p__kad_rt *rt);

typedef enum cp2p__kad_rt_result {
    CP2P__KAD_RT_ADDED,     /* the peer is now in the table */
    CP2P__KAD_RT_UPDATED,   /* it was already there: last seen refreshed */
    CP2P__KAD_RT_CHECK,     /* bucket full, *check is stale: check it, then check_done() */
    CP2P__KAD_RT_PENDING,   /* bucket full, a check is already running: kept as pending */
    CP2P__KAD_RT_FULL,      /* bucket full of fresh entries: not added */
    CP2P__KAD_RT_DIVERSITY, /* over the IP group limit: not added (counted) */
    CP2P__KAD_RT_SELF,      /* our own ID: not added */
} cp2p__kad_rt_result;

/* Add or refresh `p`, seen now; `addr` is the address the peer is connected from (its IP
 * decides the diversity group; NULL or a non-IP address = no group). Returns a result above
 * (>= 0) or CP2P_ENOMEM. */
CP2P_NODISCARD int cp2p__kad_rt_add(cp2p__kad_rt *rt, const cp2p_peer_id *p,
                                    const cp2p_multiaddr *addr, uint64_t now_ms,
                                    cp2p_peer_id *check);
/* The peer answered something (a query, a ping): refresh its last seen. No-op if absent. */
void cp2p__kad_rt_seen(cp2p__kad_rt *rt, const cp2p_peer_id *p, uint64_t now_ms);
/* Result of a liveness check asked for by CP2P__KAD_RT_CHECK (or started by the caller after
 * a failed request): alive refreshes it (the pending newcomer is dropped); dead removes it and
 * the bucket's pending newcomer, if any, takes its place. Returns true when `p` was removed. */
bool cp2p__kad_rt_check_done(cp2p__kad_rt *rt, const cp2p_peer_id *p, bool alive,
                             uint64_t now_ms);
/* Remove `p` now (e.g. it stopped speaking the protocol). Returns true when it was there. */
bool cp2p__kad_rt_remove(cp2p__kad_rt *rt, const cp2p_peer_id *p);
bool cp2p__kad_rt_contains(const cp2p__kad_rt *rt, const cp2p_peer_id *p);
size_t cp2p__kad_rt_size(const cp2p__kad_rt *rt);
/* Up to `max` peers closest to `target`, closest first, copied into out. */
size_t cp2p__kad_rt_closest(const cp2p__kad_rt *rt, const cp2p__kad_key *target,
                            cp2p_peer_id *out, size_t max);
/* The n-th peer of the table in bucket order (for listing/status); false past the end. */
bool cp2p__kad_rt_at(const cp2p__kad_rt *rt, size_t n, cp2p_peer_id *out);

/* Entries not seen for stale_after_ms (up to max, copied into out): the periodic sweep checks
 * their liveness, as go-libp2p-kad-dht's refresh manager pings idle peers. */
size_t cp2p__kad_rt_stale(const cp2p__kad_rt *rt, uint64_t now_ms, cp2p_peer_id *out,
                          size_t max);
/* Refresh: a lookup for a key in bucket `cpl` was made now (resets its refresh timer). */
void cp2p__kad_rt_touch_bucket(cp2p__kad_rt *rt, unsigned cpl, uint64_t now_ms);
/* Buckets due a refresh: cpl values 0..max_cpl (the deepest non-empty bucket + 1, at most
 * CP2P_KAD_MAX_REFRESH_CPL) whose last lookup is older than interval_ms. Writes up to max
 * cpls to out and returns how many. */
size_t cp2p__kad_rt_refresh_due(const cp2p__kad_rt *rt, uint64_t now_ms, uint64_t interval_ms,
                                unsigned *out, size_t max);
/* A random FIND_NODE target for refreshing bucket `cpl`: a valid peer ID (identity multihash of
 * an Ed25519 protobuf public key made of random bytes, which go and js accept as a FIND_NODE
 * key) whose SHA-256 has exactly `cpl` leading bits in common with ours. Tries up to
 * CP2P_KAD_REFRESH_KEY_TRIES candidates from `rand`. Returns 0, CP2P_ENOENT (no key found), or
 * CP2P_EINVAL (cpl above CP2P_KAD_MAX_REFRESH_CPL: it would cost about 2^cpl hashes). */
CP2P_NODISCARD int cp2p__kad_rt_gen_key(const cp2p__kad_rt *rt, unsigned cpl,
                                        uint64_t (*rand)(void *ud), void *ud,
                                        cp2p_peer_id *out);

typedef struct cp2p__kad_rt_stats {
    uint64_t added, removed, replaced, refused_full, refused_diversity, checks_asked;
} cp2p__kad_rt_stats;
void cp2p__kad_rt_stats_get(const cp2p__kad_rt *rt, cp2p__kad_rt_stats *out);

#endif
