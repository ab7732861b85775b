/* The DHT's request handler (sans-I/O): answers one inbound kad-dht request (libp2p kad-dht
 * spec, "RPC messages": FIND_NODE, GET_VALUE, PUT_VALUE, ADD_PROVIDER, GET_PROVIDERS, PING)
 * from the routing table and the stores, as go-libp2p-kad-dht's handlers do on the wire.
 *
 * No clock (every call takes now_ms, the time base of kad_rt and kad_store), no sockets, no
 * host: what the handler needs to know about peers beyond the table (their addresses, whether
 * we are connected, our own addresses) it asks through a cp2p__kad_dir, which the binding
 * implements over the peerstore and the host and a test or fuzzer over a fixed list. One
 * owner thread; nothing here is thread-safe. Driving it (the binding, kad_uv.c):
 *
 *   1. cp2p__kad_handler_new(&cfg, rt, store, &dir, &h). rt, store and dir are borrowed and
 *      must outlive h.
 *   2. For each frame read from an inbound stream (the body after the uvarint length prefix,
 *      at most CP2P_KAD_MAX_MSG, which the binding enforces before buffering):
 *      rc = cp2p__kad_handler_request(h, from, body, len, now, &out, &why).
 *      rc 1: write `out` (the framed answer: uvarint length + body) to the stream;
 *      rc 0: nothing to answer (ADD_PROVIDER), read on;
 *      rc < 0: reset the stream (*why says why, for the log).
 *   3. cp2p__kad_handler_free(h) before rt and store.
 *
 * Order per request (unchanged from the binding it came from): count it, take a token of the
 * requester's bucket (cfg.requests_per_sec, burst cfg.requests_burst; CP2P_KAD_RATE_SLOTS
 * buckets, the least recently used one reused) before decoding, decode, mark the requester
 * seen in the routing table (it is alive), answer.
 *
 * Answers carry peers with the addresses dir->addrs gives (never an inbound connection's far
 * end: the directory leaves those out), peers without one skipped, except providers (the
 * asker may look them up). Nobody is told about itself. FIND_NODE for our own ID answers
 * exactly one peer, us (spec); FIND_NODE for another peer we know addresses of adds it even
 * when it is not in the table (go). PUT_VALUE echoes the record once stored (or when we keep a
 * better one); an invalid or refused record is an error (the peer sees a reset, as go's error
 * does). ADD_PROVIDER: only the sender may announce itself (spec); its addresses go to
 * dir->learn. Bounded: at most cfg.k closer peers and CP2P_KAD_MAX_PROVIDERS_ANSWER
 * providers, each with at most CP2P_KAD_MAX_ADDRS_PER_PEER addresses, in at most
 * CP2P_KAD_MAX_MSG bytes. */
#ifndef CP2P_PROTOCOLS_KAD_HANDLER_H
#define CP2P_PROTOCOLS_KAD_HANDLER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cp2p/buf.h>
#include <cp2p/multiaddr.h>
#include <cp2p/peer_id.h>

#include "protocols/kad/kad_msg.h"
#include "protocols/kad/kad_rt.h"
#include "protocols/kad/kad_store.h"

/* What the DHT knows about peers outside its table (the peerstore and the host, in the
 * binding). Every function is required; ud is passed back. */
typedef struct cp2p__kad_dir {
    /* Up to max addresses of p to tell others (unexpired, never the far end of an inbound
     * connection), borrowed until the handler call returns. Returns how many were written. */
    size_t (*addrs)(void *ud, const cp2p_peer_id *p, const cp2p_multiaddr **out, size_t max);
    /* Whether p has any unexpired address at all (inbound ones included). */
    bool (*known)(void *ud, const cp2p_peer_id *p);
    /* Whether we have a connection to p (the answer's connection field). */
    bool (*connected)(void *ud, const cp2p_peer_id *p);
    /* Our own addresses: up to max owned copies written to out (the caller frees them with
     * cp2p_multiaddr_free). Returns how many (0 when we have none or on error). */
    size_t (*self_addrs)(void *ud, cp2p_multiaddr **out, size_t max);
    /* A peer named in a message, with its addresses (spec: "Any time a relevant Peer record is
     * encountered, the associated multiaddrs are stored in the node's peerbook"). */
    void (*learn)(void *ud, const cp2p__kad_peer *p);
    void *ud;
} cp2p__kad_dir;

/* Peer infos of a list of IDs with their directory addresses, as kad_msg peers (for answers
 * and for results delivered to the application). The addresses are borrowed from the
 * directory, except ours (cp2p__kad_peer_list_add_self), owned by the list. */
typedef struct cp2p__kad_peer_list {
    cp2p__kad_peer *peers;
    size_t n;
    cp2p_multiaddr **addrs; /* one array for all: CP2P_KAD_MAX_ADDRS_PER_PEER each */
    cp2p__kad_peer *own;          /* the entry whose addresses we own (add_self) */
} cp2p__kad_peer_list;

/* Fill pl with the peers of ids (n of them) and their addresses; peers without an address are
 * skipped unless keep_bare. Leaves room for one more (add_self). Returns 0 or CP2P_ENOMEM (pl
 * then empty). */
CP2P_NODISCARD int cp2p__kad_peer_list_fill(const cp2p__kad_dir *dir, const cp2p_peer_id *ids,
                                            size_t n, bool keep_bare, cp2p__kad_peer_list *pl);
/* Append self with dir->self_addrs (nothing when we have no address). pl must come from
 * cp2p__kad_peer_list_fill and not have had add_self yet. */
void cp2p__kad_peer_list_add_self(const cp2p__kad_dir *dir, const cp2p_peer_id *self,
                                  cp2p__kad_peer_list *pl);
/* Free what fill and add_self allocated; safe on a zeroed list. */
void cp2p__kad_peer_list_fini(cp2p__kad_peer_list *pl);

typedef struct cp2p__kad_handler_config {
    cp2p_peer_id self;
    uint32_t k;                /* closer peers per answer (1..CP2P_KAD_MAX_K) */
    uint32_t requests_per_sec; /* each requester's token bucket (> 0) */
    uint32_t requests_burst;   /* (> 0) */
} cp2p__kad_handler_config;

typedef struct cp2p__kad_handler cp2p__kad_handler;

/* Returns 0, CP2P_EINVAL (k 0 or above CP2P_KAD_MAX_K, a rate of 0, a directory function
 * missing), CP2P_ENOMEM. */
CP2P_NODISCARD int cp2p__kad_handler_new(const cp2p__kad_handler_config *cfg, cp2p__kad_rt *rt,
                                         cp2p__kad_store *store, const cp2p__kad_dir *dir,
                                         cp2p__kad_handler **out);
void cp2p__kad_handler_free(cp2p__kad_handler *h);

/* Handle one request frame body (without its length prefix) from peer `from`, at now_ms.
 * out is the caller's (its content is replaced; give it a max of at least CP2P_KAD_MAX_MSG +
 * CP2P_UVARINT_MAX). Returns 1 (out holds the framed answer), 0 (nothing to answer), or a
 * negative error, the stream to be reset, with *why set: CP2P_ELIMIT (over the requester's
 * rate; counted in refused_rate, not decoded), CP2P_EPROTO (undecodable, unknown type, no
 * key, PUT_VALUE without a matching record), CP2P_ENOTSUP / the validator's error /
 * CP2P_EFULL (PUT_VALUE refused by the store), CP2P_ENOMEM. Every error except ELIMIT and
 * the final framing's ENOMEM counts in stats.bad. */
CP2P_NODISCARD int cp2p__kad_handler_request(cp2p__kad_handler *h, const cp2p_peer_id *from,
                                             const uint8_t *body, size_t len, uint64_t now_ms,
                                             cp2p_buf *out, const char **why);

typedef struct cp2p__kad_handler_stats {
    uint64_t requests_in;      /* frames handed to cp2p__kad_handler_request */
    uint64_t refused_rate;     /* over the requester's rate */
    uint64_t bad;              /* undecodable or refused */
    uint64_t records_stored;   /* PUT_VALUE that stored (not "we have a better one") */
    uint64_t providers_stored; /* ADD_PROVIDER that stored */
    uint64_t answers;          /* answers produced (rc 1) */
} cp2p__kad_handler_stats;
void cp2p__kad_handler_stats_get(const cp2p__kad_handler *h, cp2p__kad_handler_stats *out);

#endif
