/* cp2p: artifact gossip (seed 000, the Internet Computer's P2P layer; wire format in
 * docs/ARTIFACTS.md, protocol /cp2p/artifact/1.0.0).
 *
 * Artifacts are byte strings the application wants on every node. A small one (at most
 * push_threshold bytes) is pushed whole along a push tree (peers that pruned us because they
 * had it from elsewhere get an advert instead, and fetch it if no push follows); a larger one
 * is advertised, and each node
 * that wants it fetches its chunks from every peer that has it, several in flight per peer,
 * checking each chunk against the advert's manifest of SHA-256 hashes (a peer serving a bad
 * chunk is penalised and the chunk asked elsewhere) and the whole against its id (by default
 * the sha2-256 multihash of the bytes). A node never fetches what it holds or is fetching.
 * When a peer (re)connects each side asks the other to advertise again what it holds.
 *
 * The application owns the pool of artifacts, through callbacks (cp2p_artifact_pool):
 *   - bouncer: is this id wanted now, later, or never (loop thread; must be quick);
 *   - store: validate and store a complete artifact (a worker of the chunk flow);
 *   - serve: copy bytes of an artifact it holds (a worker of the request flow);
 *   - purge: forget an artifact cp2p_artifact_purge() dropped (a worker of the advert flow);
 *   - peer: a peer became ready or went away (a worker of the transport flow);
 *   - retransmission: a peer asked us to resend what we hold (a worker of the
 *     retransmission flow; the layer resends its adverts itself, this is for the
 *     application's own state).
 * Each flow (advert, request, chunk, retransmission, transport) has its own bounded queue,
 * worker threads and in-flight bound (the seed's defaults: 100,000 / 100 / 100 / 1,000 /
 * 1,000); what does not fit is dropped and counted, and a callback that blocks holds up its
 * own flow only. cp2p_artifact_publish() hashes on the advert flow too; publications made
 * before cp2p_artifact_start() wait in the advert broadcaster (bounded, drops counted).
 *
 * Threading: every function on the host's loop thread. Callbacks run where said above, never
 * inside the call that caused them. */
#ifndef CP2P_ARTIFACT_H
#define CP2P_ARTIFACT_H

#include <stdbool.h>
#include <stdint.h>

#include <cp2p/host.h>
#include <cp2p/metrics.h>
#include <cp2p/service.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CP2P_ARTIFACT_PROTOCOL "/cp2p/artifact/1.0.0"
#define CP2P_ARTIFACT_ID_MAX 74 /* one multihash */

typedef struct cp2p_artifact cp2p_artifact;

typedef enum cp2p_artifact_verdict {
    CP2P_ARTIFACT_WANTED = 0,
    CP2P_ARTIFACT_LATER = 1,
    CP2P_ARTIFACT_UNWANTED = 2,
} cp2p_artifact_verdict;

typedef struct cp2p_artifact_attr {
    cp2p_slice key;   /* 1..64 bytes */
    cp2p_slice value; /* 0..256 bytes */
} cp2p_artifact_attr;

/* The application's pool. Every callback may be NULL except serve and store. `ud` is
 * cp2p_artifact_config.pool_ud. Ids and bytes are borrowed for the call. */
typedef struct cp2p_artifact_pool {
    cp2p_artifact_verdict (*bouncer)(const uint8_t *id, size_t id_len, uint64_t size,
                                     const cp2p_artifact_attr *attrs, size_t n_attrs, void *ud);
    /* Return 0 when stored (the node then holds and serves it), anything else to reject. */
    int (*store)(const uint8_t *id, size_t id_len, const uint8_t *data, size_t len, void *ud);
    /* Copy bytes [offset, offset + len) of a held artifact into out; 0, or an error. */
    int (*serve)(const uint8_t *id, size_t id_len, uint64_t offset, uint8_t *out, size_t len,
                 void *ud);
    void (*purge)(const uint8_t *id, size_t id_len, void *ud);
    void (*peer)(const cp2p_peer_id *peer, bool up, void *ud);
    void (*retransmission)(const cp2p_peer_id *peer, void *ud);
    /* The host closed the layer: it is freed, its handle invalid (loop thread; not called for
     * cp2p_artifact_close). */
    void (*closed)(void *ud);
} cp2p_artifact_pool;

/* Flows, in this order everywhere (stats, metrics labels). */
typedef enum cp2p_artifact_flow {
    CP2P_ARTIFACT_FLOW_ADVERT = 0,
    CP2P_ARTIFACT_FLOW_REQUEST = 1,
    CP2P_ARTIFACT_FLOW_CHUNK = 2,
    CP2P_ARTIFACT_FLOW_RETRANSMISSION = 3,
    CP2P_ARTIFACT_FLOW_TRANSPORT = 4,
    CP2P_ARTIFACT_FLOWS = 5,
} cp2p_artifact_flow;

typedef struct cp2p_artifact_flow_config {
    uint32_t queue;    /* items waiting */
    uint32_t workers;  /* threads (1) */
    uint32_t inflight; /* items being handled at once (workers x 4) */
} cp2p_artifact_flow_config;

typedef struct cp2p_artifact_config {
    cp2p_artifact_pool pool;
    void *pool_ud;
    uint32_t chunk_size;       /* 64 KiB */
    uint32_t push_threshold;   /* 1,024 bytes; at most chunk_size */
    /* false (default): small artifacts travel a push tree (docs/ARTIFACTS.md): pushed whole to
     * the peers that did not prune us, advertised to the others, who fetch one if no push came
     * within 50 ms. true: pushed whole to every peer not known to have it (fewer waits, about
     * twice the bytes on a graph of degree 8). */
    bool push_to_all;
    uint64_t max_size;         /* largest artifact, 256 MiB */
    uint32_t chunk_timeout_ms; /* 5,000 */
    uint32_t tick_ms;          /* the gossip timer, 100 */
    uint32_t max_adverts_per_peer; /* 10,000 */
    uint32_t max_held;         /* artifacts held and advertised, 100,000 */
    uint32_t broadcaster_max;  /* publications held before start, 1,000 */
    /* Ids are the sha2-256 multihash of the bytes (true, the default), checked on arrival;
     * false: the application names artifacts (cp2p_artifact_publish's id) and validates them
     * in store. */
    bool id_sha256;
    /* The application's id function instead (NULL: none): write the id of data[0..len) (a
     * multihash, at most CP2P_ARTIFACT_ID_MAX bytes) to out and return its length, or a
     * negative error. It names what cp2p_artifact_publish publishes without an id, and every
     * artifact that arrives is checked against it (id_sha256 is then ignored). Runs on the
     * loop and on the advert flow's workers: pure and thread-safe. */
    ptrdiff_t (*id_fn)(const uint8_t *data, size_t len, uint8_t out[CP2P_ARTIFACT_ID_MAX],
                       void *ud);
    void *id_ud;
    cp2p_artifact_flow_config flows[CP2P_ARTIFACT_FLOWS];
} cp2p_artifact_config;

typedef struct cp2p_artifact_flow_stats {
    uint64_t queued, inflight;      /* levels */
    uint64_t processed, dropped;
    uint64_t latency_ns_sum, latency_ns_max;
} cp2p_artifact_flow_stats;

typedef struct cp2p_artifact_stats {
    uint64_t held, fetching, peers;                     /* levels */
    uint64_t published, stored, rejected;
    uint64_t adverts_received, adverts_evicted, pushes_received;
    /* The push tree (small artifacts): pushes of what we had already, adverts sent instead of
     * a push, prunes sent and received, grafts, small artifacts fetched after waiting for a
     * push that did not come. */
    uint64_t pushes_dup, adverts_lazy, prunes_sent, prunes_received, grafts, small_pulled;
    uint64_t chunks_requested, chunks_received, chunks_corrupt, chunks_timeout, chunks_served;
    uint64_t requests_dropped, retrans_limited, outbox_dropped, frames_malformed;
    uint64_t fetches_bad_whole, peers_banned;
    /* Partial availability (docs/ARTIFACTS.md): partial adverts sent and received, Haves sent
     * and received, chunks served from a fetch in progress (also in chunks_served). */
    uint64_t partial_adverts_sent, partial_adverts_received, haves_sent, haves_received;
    uint64_t chunks_served_partial;
    uint64_t broadcaster_held, broadcaster_dropped;
    uint64_t frames_sent, bytes_sent, frames_received, bytes_received; /* the framed links */
    cp2p_artifact_flow_stats flows[CP2P_ARTIFACT_FLOWS];
} cp2p_artifact_stats;

/* Defaults (above), no pool callbacks. */
CP2P_API void cp2p_artifact_config_default(cp2p_artifact_config *cfg);

/* Attach artifact gossip to `h` (a service on CP2P_ARTIFACT_PROTOCOL) and start its flows'
 * threads. Returns 0 and *out; CP2P_EINVAL (no serve or store, a zero limit); the errors of
 * cp2p_framed_new; CP2P_ENOMEM; CP2P_EIO (a thread could not start). The layer exchanges
 * with peers from now on (it answers and fetches); until cp2p_artifact_start() the gossip
 * timer does not run (no chunk timeouts, no "later" adverts) and publications wait in the
 * advert broadcaster. */
CP2P_API CP2P_NODISCARD int cp2p_artifact_new(cp2p_host *h, const cp2p_artifact_config *cfg,
                                              cp2p_artifact **out);
/* Start: the advert broadcaster releases what it held, the gossip timer runs. 0 or
 * CP2P_ESTATE (already started). */
CP2P_API CP2P_NODISCARD int cp2p_artifact_start(cp2p_artifact *a);
/* Detach and free: stops the flows (waits for callbacks running now), drops what is queued.
 * Not from a callback. Safe with NULL. The host closing also frees it. */
CP2P_API void cp2p_artifact_close(cp2p_artifact *a);

/* Publish an artifact the application has stored: the bytes are copied, hashed on the advert
 * flow, then pushed or advertised. id NULL: the id function's (id_fn, else the sha2-256
 * multihash); a given id must be what they compute (when ids are checked).
 * Returns 0 (cb, if not NULL, runs later on the loop with the result and the id), CP2P_EINVAL,
 * CP2P_EFULL (advert flow or broadcaster full: counted), CP2P_ENOMEM. */
typedef void (*cp2p_artifact_publish_cb)(cp2p_artifact *a, int status, const uint8_t *id,
                                         size_t id_len, void *ud);
CP2P_API CP2P_NODISCARD int cp2p_artifact_publish(cp2p_artifact *a, const uint8_t *id,
                                                  size_t id_len, const uint8_t *data,
                                                  size_t len, const cp2p_artifact_attr *attrs,
                                                  size_t n_attrs, cp2p_artifact_publish_cb cb,
                                                  void *ud);
/* Stop holding an artifact (no longer served nor advertised); the pool's purge then runs.
 * 0 or CP2P_ENOENT. */
CP2P_API CP2P_NODISCARD int cp2p_artifact_purge(cp2p_artifact *a, const uint8_t *id,
                                                size_t id_len);
/* Held / being fetched (with progress: chunks done and total, peers fetched from). */
CP2P_API bool cp2p_artifact_holds(const cp2p_artifact *a, const uint8_t *id, size_t id_len);
CP2P_API CP2P_NODISCARD int cp2p_artifact_progress(const cp2p_artifact *a, const uint8_t *id,
                                                   size_t id_len, uint32_t *done,
                                                   uint32_t *total, uint32_t *peers);

CP2P_API void cp2p_artifact_stats_get(cp2p_artifact *a, cp2p_artifact_stats *out);
/* Copy the stats into `reg` (families cp2p_artifact_* and cp2p_artifact_flow_*{flow=...});
 * the first call registers them. 0 or the registry's errors. */
CP2P_API CP2P_NODISCARD int cp2p_artifact_metrics_update(cp2p_artifact *a, cp2p_metrics *reg);

/* ---- on a node (cp2p/node.h): a pool kept in a directory ----
 *
 * cp2p_node_artifacts_open() runs artifact gossip on a started node with a pool that is a
 * directory: one file per artifact, named by its id in base58btc (the sha2-256 multihash, as
 * an IPFS CIDv0 "Qm..."), written through a temporary file and renamed. Files already there
 * are checked against their names and published at open. The directory is bounded by
 * max_bytes: when a stored artifact takes it past, the oldest artifacts (by store time, at open
 * by modification time) are removed and no longer served. Every function: any thread except
 * the node's loop. Close it before cp2p_node_stop. */
typedef struct cp2p_node_artifacts cp2p_node_artifacts;
struct cp2p_node;

#define CP2P_NODE_ARTIFACT_ID_STR_MAX 112 /* base58btc of CP2P_ARTIFACT_ID_MAX bytes, NUL */

/* Returns 0 and *out, CP2P_EINVAL (max_bytes 0, dir NULL), CP2P_EIO (the directory cannot be
 * created or read), CP2P_ECANCELED (node stopping), the errors of cp2p_artifact_new. */
CP2P_API CP2P_NODISCARD int cp2p_node_artifacts_open(struct cp2p_node *n, const char *dir,
                                                     uint64_t max_bytes,
                                                     cp2p_node_artifacts **out);
CP2P_API void cp2p_node_artifacts_close(cp2p_node_artifacts *x);
/* The same for a node attached to a host the caller runs on its own loop (cp2p_node_attach),
 * called on that loop thread: `h` is the node's host. Publishing what the directory holds is
 * queued, not waited for. detach closes the layer (unless the host already did) and frees x:
 * stop the HTTP API first. */
CP2P_API CP2P_NODISCARD int cp2p_node_artifacts_attach(struct cp2p_node *n, cp2p_host *h,
                                                       const char *dir, uint64_t max_bytes,
                                                       cp2p_node_artifacts **out);
CP2P_API void cp2p_node_artifacts_detach(cp2p_node_artifacts *x);
/* Store data[0..len) in the pool and publish it; id_out gets its id (text). Returns 0,
 * CP2P_EINVAL (empty or over the layer's max_size), CP2P_EIO, CP2P_EFULL, CP2P_ETIMEDOUT. */
CP2P_API CP2P_NODISCARD int cp2p_node_artifact_put(cp2p_node_artifacts *x, const uint8_t *data,
                                                   size_t len, uint64_t timeout_ms,
                                                   char id_out[CP2P_NODE_ARTIFACT_ID_STR_MAX]);
/* The bytes of a held artifact (*data: free with cp2p_free). CP2P_EINVAL (not an id),
 * CP2P_ENOENT (not held), CP2P_EIO. */
CP2P_API CP2P_NODISCARD int cp2p_node_artifact_get(cp2p_node_artifacts *x, const char *id,
                                                   uint8_t **data, size_t *len);
/* Each held artifact, oldest first: cb(id text, size, ud). Returns how many. */
CP2P_API size_t cp2p_node_artifact_ls(cp2p_node_artifacts *x,
                                      void (*cb)(const char *id, uint64_t size, void *ud),
                                      void *ud);
typedef struct cp2p_node_artifact_stat {
    bool held;                 /* in the pool */
    uint64_t size;             /* when held */
    bool fetching;             /* being fetched now */
    uint32_t chunks_done, chunks_total, peers; /* when fetching: progress, sources */
} cp2p_node_artifact_stat;
/* CP2P_EINVAL (not an id), CP2P_ENOENT (neither held nor fetching), CP2P_ETIMEDOUT. */
CP2P_API CP2P_NODISCARD int cp2p_node_artifact_stat_get(cp2p_node_artifacts *x, const char *id,
                                                        uint64_t timeout_ms,
                                                        cp2p_node_artifact_stat *out);
/* Serve x on the node's HTTP API (cp2p/node.h): /api/v0/artifact/put (body: the bytes; answers
 * {"Id", "Bytes"}), artifact/get?arg=ID (answers the bytes), artifact/ls, artifact/stat?arg=ID.
 * NULL stops serving them (501). Call before closing x. Any thread. */
struct cp2p_node_api;
CP2P_API void cp2p_node_api_set_artifacts(struct cp2p_node_api *a, cp2p_node_artifacts *x);
/* The layer's counters (copied on the loop). */
CP2P_API CP2P_NODISCARD int cp2p_node_artifacts_stats(cp2p_node_artifacts *x,
                                                      uint64_t timeout_ms,
                                                      cp2p_artifact_stats *out);

#ifdef __cplusplus
}
#endif
#endif
