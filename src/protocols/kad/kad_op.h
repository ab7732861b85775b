/* One Kademlia operation as a sans-I/O state machine: the lookup (kad_lookup.h) plus what each
 * public operation adds to it — the stop rules (FIND_PEER: the target's addresses arrived;
 * GET: a quorum of valid values; GET_PROVIDERS: enough providers), the second phase of PUT
 * and PROVIDE (the record or provider announcement sent to the k closest peers found, counting
 * those that took it), and the final status (a lookup that timed out still succeeds with what
 * it found). The caller (kad_uv.c) asks it whom to send what, does the I/O, validates records
 * against its store, and feeds back answers, failures and `now`; the operation never reads a
 * clock or calls back. Model: gs_router.h.
 *
 * Driving:
 *   new + seed(...) -> loop { next(now) -> send; on_answer / on_failure / on_stored; tick(now) }
 *   until done(&status); then read the results and free. */
#ifndef CP2P_PROTOCOLS_KAD_OP_H
#define CP2P_PROTOCOLS_KAD_OP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cp2p/peer_id.h>

#include "protocols/kad/kad_lookup.h"
#include "protocols/kad/kad_msg.h"

typedef enum {
    CP2P__KAD_OP_FIND_PEER,
    CP2P__KAD_OP_CLOSEST,
    CP2P__KAD_OP_PUT,
    CP2P__KAD_OP_GET,
    CP2P__KAD_OP_PROVIDE,
    CP2P__KAD_OP_FIND_PROVIDERS,
    CP2P__KAD_OP_REFRESH, /* a self lookup or bucket refresh: only the lookup */
} cp2p__kad_op_type;

typedef struct cp2p__kad_op_config {
    cp2p__kad_lookup_config lookup;
    uint32_t quorum;      /* GET: stop at this many valid values (0: run the whole lookup) */
    size_t max_providers; /* GET_PROVIDERS: stop at this many (1..CP2P_KAD_MAX_PROVIDERS_ANSWER) */
} cp2p__kad_op_config;

typedef struct cp2p__kad_op cp2p__kad_op;

/* key: the wire key (for FIND_PEER, the target's ID bytes; its lookup target is the SHA-256
 * of the key, as for every key). Returns 0, CP2P_EINVAL (key too long, no max_providers for
 * GET_PROVIDERS, the lookup config's errors), CP2P_ENOMEM. */
CP2P_NODISCARD int cp2p__kad_op_new(cp2p__kad_op_type type, const uint8_t *key, size_t key_len,
                                    const cp2p_peer_id *self, const cp2p__kad_op_config *cfg,
                                    uint64_t now_ms, cp2p__kad_op **out);
void cp2p__kad_op_free(cp2p__kad_op *op);

cp2p__kad_op_type cp2p__kad_op_type_of(const cp2p__kad_op *op);
/* The wire key (borrowed until free). */
const uint8_t *cp2p__kad_op_key(const cp2p__kad_op *op, size_t *len);
/* The lookup target (the SHA-256 of the key). */
const cp2p__kad_key *cp2p__kad_op_target(const cp2p__kad_op *op);

/* A starting candidate (routing table, bootstrap peers). Returns 0 or CP2P_ENOMEM. */
CP2P_NODISCARD int cp2p__kad_op_seed(cp2p__kad_op *op, const cp2p_peer_id *p);

/* A value known before the lookup (our own store's record counts as one answer) or validated
 * by the caller from an answer: kept (up to CP2P_KAD_MAX_VALUES_PER_GET) with who gave it.
 * Returns 0, CP2P_ENOMEM (dropped). GET only. */
CP2P_NODISCARD int cp2p__kad_op_add_value(cp2p__kad_op *op, const cp2p_peer_id *from,
                                          const uint8_t *value, size_t len);
/* Providers known before the lookup (our store). GET_PROVIDERS only; duplicates ignored. */
void cp2p__kad_op_add_providers(cp2p__kad_op *op, const cp2p_peer_id *ids, size_t n);

/* What to send next. `store`: the second phase of PUT / PROVIDE (send the PUT_VALUE or
 * ADD_PROVIDER message); otherwise the lookup's request (FIND_NODE, GET_VALUE or
 * GET_PROVIDERS, by type). */
typedef struct cp2p__kad_op_send {
    cp2p_peer_id peer;
    bool store;
} cp2p__kad_op_send;

/* The next message to send now, if any (at most alpha lookup requests in flight; every
 * store message at once). Returns true with *out set. */
bool cp2p__kad_op_next(cp2p__kad_op *op, uint64_t now_ms, cp2p__kad_op_send *out);

/* The answer of `from` to a lookup request, decoded. record_ok: the caller's store validated
 * m->record for this key (GET). Answers of peers not in flight are ignored. Returns 0, or
 * CP2P_ENOMEM (the op then finishes with it). */
CP2P_NODISCARD int cp2p__kad_op_on_answer(cp2p__kad_op *op, const cp2p_peer_id *from,
                                          const cp2p__kad_msg *m, bool record_ok,
                                          uint64_t now_ms);
/* A message to `from` failed (not sent, dial error, reset, bad answer). `store`: it was a
 * store-phase message. */
void cp2p__kad_op_on_failure(cp2p__kad_op *op, const cp2p_peer_id *from, bool store,
                             uint64_t now_ms);
/* A store-phase message to `from` ended: ok when the peer took it (PUT's echo, or the
 * one-way ADD_PROVIDER written). */
void cp2p__kad_op_on_stored(cp2p__kad_op *op, const cp2p_peer_id *from, bool ok);
/* FIND_PEER: the caller knows the target's addresses (connected, or from an answer): done. */
void cp2p__kad_op_target_found(cp2p__kad_op *op);
/* Time passes: lookup requests past their timeout fail. Returns the peers that timed out now
 * (up to max) so the caller can drop their queries and count them. */
size_t cp2p__kad_op_tick(cp2p__kad_op *op, uint64_t now_ms, cp2p_peer_id *out, size_t max);

/* True once the operation is over, with its status: 0; CP2P_ETIMEDOUT (nothing found in
 * time); CP2P_ENOENT (PUT / PROVIDE stored nowhere; GET found no value; GET_PROVIDERS none);
 * CP2P_ENOMEM. FIND_PEER reports 0 when its lookup completed: whether the target was found
 * is the caller's (it knows the addresses). */
bool cp2p__kad_op_done(const cp2p__kad_op *op, int *status);
/* End it now with `status` (e.g. CP2P_ECANCELED). */
void cp2p__kad_op_cancel(cp2p__kad_op *op, int status);

/* Results. The k closest peers that answered, closest first. */
size_t cp2p__kad_op_closest(const cp2p__kad_op *op, cp2p_peer_id *out, size_t max);
/* GET: the values kept, in arrival order (borrowed until free). */
size_t cp2p__kad_op_values(const cp2p__kad_op *op, const uint8_t **vals, size_t *lens,
                           size_t max);
/* GET_PROVIDERS: the providers found (borrowed until free). */
const cp2p_peer_id *cp2p__kad_op_providers(const cp2p__kad_op *op, size_t *n);
/* PUT / PROVIDE: peers that took the message. */
size_t cp2p__kad_op_stored(const cp2p__kad_op *op);

typedef struct cp2p__kad_op_stats {
    uint64_t values_invalid; /* GET answers whose record did not validate or match the key */
    bool lookup_timed_out;   /* the lookup's deadline ended it */
} cp2p__kad_op_stats;
void cp2p__kad_op_stats_get(const cp2p__kad_op *op, cp2p__kad_op_stats *out);

#endif
