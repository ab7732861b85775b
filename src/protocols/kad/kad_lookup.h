/* One iterative Kademlia lookup as a sans-I/O state machine (libp2p kad-dht spec, "Peer
 * routing"): the caller seeds it with the closest peers of its routing table, asks it which
 * peer to query next (at most alpha in flight), and feeds back each response's closer peers or
 * the failure. It ends when the k closest peers it has heard of (failed ones excluded) have all
 * answered, when nobody is left to ask, or at its deadline. Each peer is queried at most once,
 * so a peer answering with itself or with thousands of peers cannot keep it going: candidates
 * are capped at CP2P_KAD_LOOKUP_MAX_CANDIDATES (the farthest dropped) and each response
 * contributes at most CP2P_KAD_MAX_CLOSER_PER_RESPONSE peers (the rest counted as dropped).
 * The caller does the I/O, stores addresses, and decides for value/provider lookups when it
 * has enough answers (it may stop a lookup at any time by freeing it). */
#ifndef CP2P_PROTOCOLS_KAD_LOOKUP_H
#define CP2P_PROTOCOLS_KAD_LOOKUP_H

#include "protocols/kad/kad_key.h"

typedef struct cp2p__kad_lookup_config {
    uint32_t k;                /* closest peers that must answer (20) */
    uint32_t alpha;            /* queries in flight (10, go-libp2p-kad-dht's concurrency) */
    uint64_t query_timeout_ms; /* one peer's answer (10 s); then it counts as failed */
    uint64_t timeout_ms;       /* the whole lookup (60 s) */
} cp2p__kad_lookup_config;

void cp2p__kad_lookup_config_default(cp2p__kad_lookup_config *c);

typedef struct cp2p__kad_lookup cp2p__kad_lookup;

/* target: the key looked up (SHA-256 space); self is never queried nor returned. Returns 0,
 * CP2P_EINVAL (k or alpha 0 or too large), CP2P_ENOMEM. */
CP2P_NODISCARD int cp2p__kad_lookup_new(const cp2p__kad_key *target, const cp2p_peer_id *self,
                                        const cp2p__kad_lookup_config *cfg, uint64_t now_ms,
                                        cp2p__kad_lookup **out);
void cp2p__kad_lookup_free(cp2p__kad_lookup *l);

/* Add a starting candidate (round 0). Duplicates and self are ignored. Returns 0 or
 * CP2P_ENOMEM. */
CP2P_NODISCARD int cp2p__kad_lookup_seed(cp2p__kad_lookup *l, const cp2p_peer_id *p);

/* The next peer to query now, if any: the closest not-yet-queried candidate while fewer than
 * alpha queries are in flight and the lookup is not done. The peer is marked in flight.
 * Returns true with *out set, false when nothing is to be sent now. */
bool cp2p__kad_lookup_next(cp2p__kad_lookup *l, uint64_t now_ms, cp2p_peer_id *out);
/* `from` answered with these closer peers (its claims: they join as candidates one round
 * deeper than `from`). Answers from peers not in flight are ignored. Returns 0 or CP2P_ENOMEM
 * (the lookup stays consistent). */
CP2P_NODISCARD int cp2p__kad_lookup_on_response(cp2p__kad_lookup *l, const cp2p_peer_id *from,
                                                const cp2p_peer_id *closer, size_t n,
                                                uint64_t now_ms);
/* `from` failed (dial error, reset, bad message): it will not be asked again or returned. */
void cp2p__kad_lookup_on_failure(cp2p__kad_lookup *l, const cp2p_peer_id *from,
                                 uint64_t now_ms);
/* Time passes: in-flight queries past query_timeout_ms fail; past timeout_ms the lookup is
 * done. Returns the peers that timed out now (up to max, copied into out) so the caller can
 * cancel them and count them as failed dials. */
size_t cp2p__kad_lookup_tick(cp2p__kad_lookup *l, uint64_t now_ms, cp2p_peer_id *out,
                             size_t max);
/* Earliest time tick() has something to do: the first in-flight query's timeout or the
 * lookup's deadline, whichever is first (UINT64_MAX once the lookup is done). */
uint64_t cp2p__kad_lookup_next_deadline(const cp2p__kad_lookup *l);
bool cp2p__kad_lookup_done(const cp2p__kad_lookup *l);
/* True when the deadline ended it (the result may then be incomplete). */
bool cp2p__kad_lookup_timed_out(const cp2p__kad_lookup *l);
/* Up to max peers that answered, closest to the target first. */
size_t cp2p__kad_lookup_result(const cp2p__kad_lookup *l, cp2p_peer_id *out, size_t max);

typedef struct cp2p__kad_lookup_stats {
    uint32_t queried, answered, failed, timed_out;
    uint32_t rounds;          /* deepest round among answered peers + 1 */
    uint32_t closer_dropped;  /* closer peers over the per-response or candidate cap */
    uint32_t in_flight, candidates;
} cp2p__kad_lookup_stats;
void cp2p__kad_lookup_stats_get(const cp2p__kad_lookup *l, cp2p__kad_lookup_stats *out);

#endif
