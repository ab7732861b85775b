/* Artifact gossip core (seed 000, dfinity/ic rs/p2p consensus_manager + state_sync_manager;
 * wire format docs/ARTIFACTS.md, codec art_msg.h).
 *
 * Sans-I/O: no clock (every call that needs time takes now_ms), no sockets, no threads. One
 * owner thread; nothing here is thread-safe. Driving it (the binding, art_uv.c):
 *
 *   1. cp2p__art_core_new(&cfg, now, &c).
 *   2. A peer's stream is usable: peer_up(peer, now) (the core queues a Retransmission request
 *      to it: event-driven resend after a reconnect). Peer gone: peer_down (its chunks in
 *      flight go back to be asked of others, its adverts are forgotten).
 *   3. Each inbound frame body: recv(peer, body, len, now). CP2P_EPROTO / CP2P_ELIMIT: reset
 *      that peer's inbound stream (the frame was malformed); the core's state is unchanged.
 *   4. Every cfg.tick_ms (the gossip timer): tick(now): chunk timeouts, "later" adverts.
 *   5. After any call: drain output. while (next_dirty(c, &p)) while (take_frame(c, &p, &b))
 *      send b as one frame to p. Then drain events: while (poll_event(c, &ev)) handle it:
 *        - CP2P_ART_EV_SERVE: peer asked chunk `index` of an artifact we hold: read bytes
 *          [offset, offset+len) from the application's pool and answer serve_reply (or
 *          serve_fail). At most cfg.max_serving_per_peer wait per peer; more are dropped.
 *        - CP2P_ART_EV_COMPLETE: an artifact arrived whole and passed the integrity checks;
 *          data[0..size) is borrowed until stored(id, ok) is called (the application validates
 *          and stores it, possibly on another thread: the core does not touch the bytes).
 *        - CP2P_ART_EV_RETRANS: peer's retransmission request was answered (the core resent
 *          its adverts); for the application's own state.
 *
 * The application's pool is consulted through cfg.bouncer (wanted / later / unwanted, called
 * synchronously from recv and tick: it must be quick, as dfinity/ic's Bouncer closures are).
 *
 * Partial availability (docs/ARTIFACTS.md, "Partial sources"): a fetch of more than one chunk
 * sends a partial advert to each up, non-banned peer that is not a full source of it (peers
 * that come up later are not told), then a Have for the chunks verified during each recv call
 * to those peers. A peer that sends us a partial advert of what we fetch with the same
 * manifest (or of an unknown artifact the bouncer wants: the fetch starts with it) becomes a
 * partial source: asked only for chunks it announced; its full advert upgrades it. Requests
 * for verified chunks of a fetch in progress are answered from the fetch's bytes.
 *
 * Every table is bounded (src/util/limits.h, "flows: artifact gossip"): peers, adverts per peer
 * (oldest forgotten past the bound), fetches and their bytes, held artifacts, "later" adverts,
 * serving per peer, outbox bytes per peer, partial sources per fetch (max_partial_sources,
 * each a bitmap of n_chunks / 8 + 1 bytes: at most max_fetches x max_partial_sources x 2 KiB),
 * peers told per fetch (the peers up when it started, <= max_peers), Haves queued (one per
 * chunk verified in one recv call, <= CP2P_ART_MAX_FRAME_MSGS). Every refusal and drop is
 * counted in cp2p__art_stats. */
#ifndef CP2P_FLOWS_ART_CORE_H
#define CP2P_FLOWS_ART_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cp2p/buf.h>
#include <cp2p/common.h>
#include <cp2p/peer_id.h>

#include "flows/art_msg.h"
#include "util/limits.h"

typedef enum cp2p__art_verdict {
    CP2P__ART_WANTED = 0,   /* fetch it now */
    CP2P__ART_LATER = 1,    /* keep the advert, ask again on a later tick */
    CP2P__ART_UNWANTED = 2, /* forget it */
} cp2p__art_verdict;

typedef cp2p__art_verdict (*cp2p__art_bouncer_fn)(const uint8_t *id, size_t id_len, uint64_t size,
                                                 const cp2p__art_attr *attrs, size_t n_attrs,
                                                 void *ud);

typedef struct cp2p__art_config {
    uint32_t chunk_size;          /* chunks of what we publish (CP2P_ART_CHUNK_SIZE) */
    uint32_t push_threshold;      /* pushed whole at or under (CP2P_ART_PUSH_THRESHOLD) */
    /* Small artifacts travel a push tree (default true): pushed whole only to peers that have
     * not pruned us, advertised to the others; a duplicate push is answered with a prune (the
     * sender advertises to us from then on); an advert of a small artifact waits push_wait_ms
     * (checked on the gossip tick) for a push before it is fetched, and fetching it grafts the
     * edge back (both sides push again). false: pushed whole to every peer not known to have
     * it. */
    bool push_tree;
    uint32_t push_wait_ms;        /* CP2P_ART_PUSH_WAIT_MS; adapts up to CP2P_ART_PUSH_WAIT_MAX_MS */
    uint64_t max_size;            /* largest artifact accepted (CP2P_ART_MAX_SIZE) */
    size_t max_frame;             /* largest frame either way (CP2P_ART_MAX_FRAME) */
    uint32_t max_peers;           /* CP2P_ART_MAX_PEERS */
    uint32_t max_adverts_per_peer; /* CP2P_ART_MAX_ADVERTS_PER_PEER */
    uint32_t max_fetches;         /* CP2P_ART_MAX_FETCHES */
    uint32_t max_small_fetches;   /* CP2P_ART_MAX_SMALL_FETCHES, besides max_fetches */
    uint64_t max_fetch_bytes;     /* CP2P_ART_MAX_FETCH_BYTES */
    uint32_t max_partial_sources; /* per fetch (CP2P_ART_MAX_PARTIAL_SOURCES); 0: none kept */
    uint32_t max_held;            /* CP2P_ART_MAX_HELD */
    uint32_t max_later;           /* "later" adverts kept (CP2P_ART_MAX_ADVERTS_PER_PEER) */
    uint32_t inflight_start, inflight_max; /* per peer (CP2P_ART_INFLIGHT_*) */
    uint32_t chunk_timeout_ms;    /* CP2P_ART_CHUNK_TIMEOUT_MS */
    uint32_t retrans_per_sec, retrans_burst; /* answered per peer (CP2P_ART_RETRANS_*) */
    uint32_t max_serving_per_peer; /* CP2P_ART_MAX_SERVING_PER_PEER */
    size_t max_outbox_bytes;      /* per peer (CP2P_ART_MAX_OUTBOX_BYTES) */
    uint32_t penalty_ban;         /* CP2P_ART_PENALTY_BAN */
    /* Ids are the sha2-256 multihash of the bytes (default true): adverts with another kind
     * of id are ignored (counted) and every complete artifact is checked against its id. */
    bool id_sha256;
    /* The application's id function (pure, thread-safe): writes the id of data[0..len) (a
     * multihash) to out and returns its length, or a negative error. When set it names
     * published artifacts and checks every complete one instead of sha2-256. */
    ptrdiff_t (*id_fn)(const uint8_t *data, size_t len, uint8_t out[CP2P_ART_MAX_ID], void *ud);
    void *id_ud;
    cp2p__art_bouncer_fn bouncer; /* NULL: everything is wanted */
    void *bouncer_ud;
} cp2p__art_config;

typedef struct cp2p__art_stats {
    uint64_t frames_received, frames_malformed;
    uint64_t adverts_received, adverts_dup, adverts_unwanted, adverts_later, adverts_bad_id;
    uint64_t adverts_evicted;     /* forgotten: a peer's table was at its bound */
    uint64_t adverts_other_manifest; /* a manifest unlike the one we fetch with */
    uint64_t later_dropped;       /* "later" table full */
    uint64_t pushes_received, pushes_dup, pushes_corrupt, pushes_oversized;
    uint64_t requests_received, requests_unknown, requests_bad_index, requests_dropped;
    uint64_t chunks_requested, chunks_received, chunks_unsolicited, chunks_unknown;
    uint64_t chunks_bad_index, chunks_corrupt, chunks_timeout, chunks_requeued;
    uint64_t chunks_endgame;      /* straggling chunks asked of a second source */
    uint64_t chunks_served, serve_failed;
    uint64_t fetches_started, fetches_refused, fetches_completed, fetches_bad_whole;
    uint64_t artifacts_stored, artifacts_rejected, artifacts_published;
    uint64_t retrans_sent, retrans_received, retrans_limited, retrans_adverts;
    uint64_t outbox_dropped;      /* messages not queued: a peer's outbox was full */
    /* Push tree (small artifacts): adverts sent instead of a push (the peer pruned us), prunes
     * sent (a duplicate push) and received, grafts (a pruned peer fetched a small artifact of
     * ours: we push to it again), small adverts put to wait for a push, of which fetched after
     * the wait (no push came), and waits refused (table full: fetched at once). */
    uint64_t adverts_lazy, prunes_sent, prunes_received, grafts;
    uint64_t small_waited, small_pulled, small_wait_full;
    uint64_t pushes_late; /* of pushes_dup: after we fetched it (no prune, the wait grows) */
    uint64_t push_wait_ms; /* the wait now (a level) */
    /* Partial availability: partial adverts sent (one per peer told of a fetch), received,
     * ignored (held, one chunk, "later", not wanted, validating, or the fetch refused), refused
     * because a fetch had max_partial_sources; Haves sent (one message per peer) and received,
     * of which for no fetch or from no partial source, and indexes past the last chunk;
     * chunks served from a fetch in progress (also in chunks_served). */
    uint64_t partial_adverts_sent, partial_adverts_received, partial_adverts_ignored;
    uint64_t partial_src_full;
    uint64_t haves_sent, haves_received, haves_unknown, haves_bad_index;
    uint64_t chunks_served_partial;
    uint64_t peers_refused, peers_banned;
    uint64_t peers, fetching, held, later, fetch_bytes; /* levels now */
} cp2p__art_stats;

typedef enum cp2p__art_event_kind {
    CP2P_ART_EV_SERVE = 1,
    CP2P_ART_EV_COMPLETE = 2,
    CP2P_ART_EV_RETRANS = 3, /* peer asked for a retransmission (answered within its limit) */
} cp2p__art_event_kind;

typedef struct cp2p__art_event {
    cp2p__art_event_kind kind;
    cp2p_peer_id peer;           /* SERVE: who asked */
    uint8_t id[CP2P_ART_MAX_ID]; /* the artifact */
    size_t id_len;
    uint32_t index;              /* SERVE: chunk */
    uint64_t offset;             /* SERVE: bytes [offset, offset + len) */
    size_t len;
    const uint8_t *data;         /* COMPLETE: the bytes, borrowed until stored() */
    uint64_t size;               /* COMPLETE: their length */
} cp2p__art_event;

typedef struct cp2p__art_core cp2p__art_core;

/* Defaults from src/util/limits.h; id_sha256 true, no bouncer. */
void cp2p__art_config_default(cp2p__art_config *cfg);

/* Returns 0 and *out, CP2P_EINVAL (a zero or inconsistent limit), CP2P_ENOMEM, CP2P_EIO (no
 * hash key, see util/hashmap.h). */
CP2P_NODISCARD int cp2p__art_core_new(const cp2p__art_config *cfg, uint64_t now,
                                      cp2p__art_core **out);
/* Free everything (events not polled included). Safe with NULL. */
void cp2p__art_core_free(cp2p__art_core *c);

/* Returns 0, CP2P_ESTATE (already up), CP2P_EFULL (max_peers, counted), CP2P_ENOMEM. */
CP2P_NODISCARD int cp2p__art_core_peer_up(cp2p__art_core *c, const cp2p_peer_id *peer,
                                          uint64_t now);
/* Forget the peer; its chunks in flight are asked of others. No-op for an unknown peer. */
void cp2p__art_core_peer_down(cp2p__art_core *c, const cp2p_peer_id *peer, uint64_t now);

/* One inbound frame body. Returns 0, or CP2P_EPROTO / CP2P_ELIMIT with *why (reset the
 * stream), CP2P_ENOMEM. Frames of peers that are not up are ignored (returns 0). */
CP2P_NODISCARD int cp2p__art_core_recv(cp2p__art_core *c, const cp2p_peer_id *peer,
                                       const uint8_t *body, size_t len, uint64_t now,
                                       const char **why);
/* The gossip timer. */
void cp2p__art_core_tick(cp2p__art_core *c, uint64_t now);

/* An artifact made ready to publish: its id, manifest and encoded advert. Built by
 * cp2p__art_prepare, a pure function (any thread: the binding hashes on a worker). */
typedef struct cp2p__art_prepared {
    uint8_t id[CP2P_ART_MAX_ID];
    size_t id_len;
    uint64_t size;
    uint32_t chunk_size;
    cp2p_buf advert; /* Envelope field 1 */
} cp2p__art_prepared;

/* Hash data[0..len) into chunks of chunk_size (one chunk when len <= push_threshold) and
 * encode the advert. id NULL: the sha2-256 multihash of the data. Returns 0 (release with
 * cp2p__art_prepared_fini), CP2P_EINVAL (empty, over max_size, a given id that is not a
 * multihash, too many attributes or an invalid one), CP2P_ENOMEM. */
CP2P_NODISCARD int cp2p__art_prepare(const cp2p__art_config *cfg, const uint8_t *id,
                                     size_t id_len, const uint8_t *data, size_t len,
                                     const cp2p__art_attr *attrs, size_t n_attrs,
                                     cp2p__art_prepared *out);
void cp2p__art_prepared_fini(cp2p__art_prepared *p);
/* Publish a prepared artifact; data (the bytes, or NULL) is needed only to push a small one
 * whole. Returns as cp2p__art_core_publish. */
CP2P_NODISCARD int cp2p__art_core_publish_prepared(cp2p__art_core *c, const cp2p__art_prepared *p,
                                                   const uint8_t *data, uint64_t now);

/* A local artifact (the application stored it already): held from now on, pushed or
 * advertised to every peer. id NULL: the sha2-256 multihash of data (written to id_out if
 * not NULL, CP2P_ART_MAX_ID bytes, length in *id_len_out). Returns 0, CP2P_ESTATE (already
 * held), CP2P_EINVAL (empty, over max_size, or a given id that is not a multihash),
 * CP2P_EFULL (max_held), CP2P_ENOMEM. */
CP2P_NODISCARD int cp2p__art_core_publish(cp2p__art_core *c, const uint8_t *id, size_t id_len,
                                          const uint8_t *data, size_t len,
                                          const cp2p__art_attr *attrs, size_t n_attrs,
                                          uint64_t now, uint8_t *id_out, size_t *id_len_out);
/* The application dropped the artifact: it is no longer served nor advertised. Returns 0 or
 * CP2P_ENOENT. */
CP2P_NODISCARD int cp2p__art_core_purge(cp2p__art_core *c, const uint8_t *id, size_t id_len);
/* True if held / being fetched. */
bool cp2p__art_core_holds(const cp2p__art_core *c, const uint8_t *id, size_t id_len);
bool cp2p__art_core_fetching(const cp2p__art_core *c, const uint8_t *id, size_t id_len);
/* Progress of a fetch: chunks done and total, peers it is fetched from. CP2P_ENOENT. */
CP2P_NODISCARD int cp2p__art_core_progress(const cp2p__art_core *c, const uint8_t *id,
                                           size_t id_len, uint32_t *done, uint32_t *total,
                                           uint32_t *sources);

/* Answer a SERVE event: appends the Chunk to the peer's outbox. CP2P_ENOENT (peer gone or
 * artifact purged; dropped), CP2P_EFULL (outbox full; dropped, counted), CP2P_EINVAL (len
 * differs from the event's). Either way the serving slot is released. */
CP2P_NODISCARD int cp2p__art_core_serve_reply(cp2p__art_core *c, const cp2p_peer_id *peer,
                                              const uint8_t *id, size_t id_len, uint32_t index,
                                              const uint8_t *data, size_t len);
/* The application could not read the bytes: release the serving slot (counted). */
void cp2p__art_core_serve_fail(cp2p__art_core *c, const cp2p_peer_id *peer);
/* Answer a COMPLETE event: ok = stored (held from now on, relayed to peers), !ok = the
 * application rejected it (forgotten; counted). The event's data is released. Returns 0 or
 * CP2P_ENOENT (no such completed fetch). */
CP2P_NODISCARD int cp2p__art_core_stored(cp2p__art_core *c, const uint8_t *id, size_t id_len,
                                         bool ok, uint64_t now);

/* Output. next_dirty gives (and forgets) a peer with queued bytes; take_frame moves at most
 * max_frame bytes of whole messages into `frame` (reset first; its max must be >= max_frame)
 * and returns true, or false when the peer has nothing queued (or is unknown). */
bool cp2p__art_core_next_dirty(cp2p__art_core *c, cp2p_peer_id *peer);
bool cp2p__art_core_take_frame(cp2p__art_core *c, const cp2p_peer_id *peer, cp2p_buf *frame);
size_t cp2p__art_core_queued(const cp2p__art_core *c, const cp2p_peer_id *peer);
/* Events: true with *ev filled, false when none. */
bool cp2p__art_core_poll_event(cp2p__art_core *c, cp2p__art_event *ev);

void cp2p__art_core_stats(const cp2p__art_core *c, cp2p__art_stats *out);
/* Adverts remembered for `peer` (0 if unknown); for tests of the bound. */
size_t cp2p__art_core_peer_adverts(const cp2p__art_core *c, const cp2p_peer_id *peer);
/* A peer's chunk allowance and penalty (false if unknown). */
bool cp2p__art_core_peer_info(const cp2p__art_core *c, const cp2p_peer_id *peer,
                              uint32_t *credit, uint32_t *inflight, uint32_t *penalty,
                              bool *banned);

#endif
