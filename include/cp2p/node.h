/* cp2p: the node — a host on its own loop thread, driven from any thread (seed 001's
 * Client/Server split). Every cp2p_node_* call is thread-safe: it posts a command to the loop
 * thread through a bounded queue and, for the blocking calls, waits for the answer on the calling
 * thread only. Nothing in the loop takes a lock except the queues' own mutexes.
 *
 * Request handlers are registered once per protocol and run either on the loop thread (short,
 * non-blocking handlers) or on a bounded worker pool (anything slow): when the pool's queue is
 * full, the inbound request is refused (the requester sees its stream reset) and counted, never
 * silently dropped. */
#ifndef CP2P_NODE_H
#define CP2P_NODE_H

#include <cp2p/host.h>
#include <cp2p/kad.h>
#include <cp2p/overlay.h>
#include <cp2p/pubsub.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cp2p_node cp2p_node;

typedef struct cp2p_node_config {
    cp2p_host_config host;        /* host.identity is required; the node keeps its own copy */
    const char *const *listen;    /* multiaddrs to listen on (copied); may be empty */
    size_t n_listen;
    size_t command_queue;         /* commands waiting for the loop (default 1024) */
    uint32_t workers;             /* handler worker threads (default 2) */
    size_t worker_queue;          /* inbound requests waiting for a worker (default 1024) */
    size_t max_request_bytes;     /* request-response limits for every protocol of the node */
    size_t max_response_bytes;    /* (defaults 1 MiB and 10 MiB) */
    /* The Kademlia DHT (cp2p/kad.h): off by default. kad's strings (protocol, bootstrap) and
     * dht_namespaces are only read while cp2p_node_start() runs. */
    bool dht;
    cp2p_kad_config kad;          /* filled with cp2p_kad_config_default() */
    /* Record namespaces ("/ns/...") the DHT stores without checking the value
     * (cp2p_kad_accept_any); others need a validator ("pk" is built in). */
    const char *const *dht_namespaces;
    size_t n_dht_namespaces;
    /* Gossipsub (cp2p/pubsub.h): off by default; pubsub_cfg's strings are only read while
     * cp2p_node_start() runs. */
    bool pubsub;
    cp2p_pubsub_config pubsub_cfg; /* filled with cp2p_pubsub_config_default() */
    /* The overlay (cp2p/overlay.h): off by default. overlay_cfg's callbacks run on the loop
     * thread with overlay_ud; its strings are only read while cp2p_node_start() runs. */
    bool overlay;
    cp2p_overlay_config overlay_cfg; /* filled with cp2p_overlay_config_default() */
    void *overlay_ud;
} cp2p_node_config;

/* Fill c with the defaults (no identity, no listen address). Any thread. */
CP2P_API void cp2p_node_config_default(cp2p_node_config *c);

/* Start a node: creates the host on a new loop thread, listens, and returns once it is ready.
 * Returns 0, CP2P_EINVAL (bad config), CP2P_ENOTSUP/CP2P_EIO (a listen address failed: nothing
 * is left running), CP2P_ENOMEM. Any thread. */
CP2P_API CP2P_NODISCARD int cp2p_node_start(const cp2p_node_config *cfg, cp2p_node **out);
/* Stop: refuse new commands, fail queued and in-flight ones with CP2P_ECANCELED, close the
 * host (connections get GoAway), let workers finish their current handler, join every thread
 * and free everything. Calls blocked in cp2p_node_* return CP2P_ECANCELED. Any thread except
 * the node's own loop and worker threads; call it once. */
CP2P_API void cp2p_node_stop(cp2p_node *n);

CP2P_API const cp2p_peer_id *cp2p_node_peer_id(const cp2p_node *n);
/* The n-th address the node can be dialed at, with /p2p/<id>, as text into out (NUL ended).
 * Returns 0, CP2P_ENOENT past the last, CP2P_ENOSPC when outlen is too small. Any thread. */
CP2P_API CP2P_NODISCARD int cp2p_node_addr(cp2p_node *n, size_t i, char *out, size_t outlen);

/* How a call behaves when the command queue is full: timeout_ms 0 fails at once with
 * CP2P_EFULL; otherwise it waits up to timeout_ms for room (then CP2P_EFULL). The same
 * timeout_ms also bounds the whole operation (then CP2P_ETIMEDOUT). */

/* Connect to a multiaddr (text, e.g. "/ip4/1.2.3.4/tcp/4001/p2p/12D3KooW..."). On success the
 * peer's ID goes to *peer (may be NULL). Blocks the calling thread only. Returns 0 or the
 * dial's error (see cp2p_host_dial), CP2P_EINVAL (bad address), CP2P_ETIMEDOUT, CP2P_EFULL,
 * CP2P_ECANCELED (node stopping). */
CP2P_API CP2P_NODISCARD int cp2p_node_dial(cp2p_node *n, const char *multiaddr,
                                           uint64_t timeout_ms, cp2p_peer_id *peer);

/* Send `req` to `peer` over `protocol` (request-response: one stream per request) and wait for
 * the response. On success *resp (free with cp2p_free; NULL when empty) and *resp_len hold it.
 * A peer that is not connected is dialed first from the addresses the node's peerstore knows
 * (cp2p_node_add_addrs, identify, earlier dials; see cp2p_host_dial_peer): CP2P_ENOENT when it
 * knows none, CP2P_ESTATE while the peer is in dial backoff after a failed dial, or the dial's
 * error. Errors: CP2P_ETIMEDOUT
 * (within timeout_ms: never a hang), CP2P_ENOTSUP (the peer lacks the protocol), CP2P_ERESET
 * (the peer refused, e.g. its handler failed or its worker queue was full), CP2P_ELIMIT (a
 * message over its size limit), CP2P_ECLOSED (the connection died), CP2P_EFULL, CP2P_ECANCELED,
 * CP2P_ENOMEM. Blocks the calling thread only; any thread except the node's own. */
CP2P_API CP2P_NODISCARD int cp2p_node_request(cp2p_node *n, const cp2p_peer_id *peer,
                                              const char *protocol, const void *req,
                                              size_t len, uint64_t timeout_ms, uint8_t **resp,
                                              size_t *resp_len);

/* Teach the node addresses of `peer` (multiaddr text, copied; a trailing /p2p/ must name
 * `peer` and is dropped), kept in its peerstore as configured by the user (source MANUAL) for
 * ttl_ms (CP2P_PEERSTORE_TTL_PERMANENT: never expire). cp2p_node_request then dials the peer
 * by ID when it is not connected. Blocks until the loop has them. Returns 0, CP2P_EINVAL (peer
 * or addrs NULL, n_addrs 0 or above 1024, ttl_ms 0, peer is this node, an address that does
 * not parse or names another peer), CP2P_EFULL (the peerstore is full of protected peers, or
 * the command queue stayed full), CP2P_ETIMEDOUT, CP2P_ECANCELED (node stopping), CP2P_ENOMEM.
 * Any thread except the node's own. */
CP2P_API CP2P_NODISCARD int cp2p_node_add_addrs(cp2p_node *n, const cp2p_peer_id *peer,
                                                const char *const *addrs, size_t n_addrs,
                                                uint64_t ttl_ms);

/* An inbound request: fill `resp` (bounded by the node's max_response_bytes) and return 0, or
 * return a negative cp2p_err to refuse it (the requester sees CP2P_ERESET). `from` and `req` are
 * borrowed for the call. Runs on the loop thread or a worker thread, as registered. */
typedef int (*cp2p_node_request_handler)(void *ud, const cp2p_peer_id *from, const uint8_t *req,
                                         size_t len, cp2p_buf *resp);
typedef enum cp2p_node_exec {
    CP2P_NODE_ON_LOOP,  /* called on the loop thread: must not block */
    CP2P_NODE_ON_POOL,  /* called on a worker thread; may block */
} cp2p_node_exec;
/* Register the handler of `protocol` (replacing an earlier one). Blocks until the loop has it.
 * Returns 0, CP2P_EINVAL, CP2P_EFULL, CP2P_ECANCELED, CP2P_ENOMEM. */
CP2P_API CP2P_NODISCARD int cp2p_node_set_request_handler(cp2p_node *n, const char *protocol,
                                                          cp2p_node_request_handler cb,
                                                          void *ud, cp2p_node_exec exec);

/* Connection events, delivered to one handler registered once (replacing an earlier one),
 * on the loop thread or a worker thread as chosen. `peer` is borrowed for the call; `err` is
 * why a connection closed (0 when we closed it). On the pool, an event that finds the worker
 * queue full is dropped and counted (events_dropped), never blocking the loop. */
typedef enum cp2p_node_event_type {
    CP2P_NODE_EVENT_CONNECTED,
    CP2P_NODE_EVENT_DISCONNECTED,
    CP2P_NODE_EVENT_IDENTIFIED,   /* identify (or a push) from the peer arrived */
} cp2p_node_event_type;
typedef void (*cp2p_node_event_handler)(void *ud, cp2p_node_event_type type,
                                        const cp2p_peer_id *peer, int err);
/* Returns 0, CP2P_EINVAL (NULL cb, bad exec, ON_POOL without workers), CP2P_EFULL,
 * CP2P_ECANCELED, CP2P_ENOMEM. Any thread except the node's own. */
CP2P_API CP2P_NODISCARD int cp2p_node_set_event_handler(cp2p_node *n, cp2p_node_event_handler cb,
                                                        void *ud, cp2p_node_exec exec);

/* ---- the DHT (cfg.dht): each call blocks the calling thread up to timeout_ms; any thread
 * except the node's own. Errors common to all: CP2P_ENOTSUP (the node runs no DHT),
 * CP2P_ETIMEDOUT, CP2P_EFULL (command queue), CP2P_ECANCELED (node stopping), CP2P_ENOMEM;
 * the others are those of the cp2p_kad_* call named. ---- */

/* Dial the bootstrap peers and look ourselves up (cp2p_kad_bootstrap); *table_size (may be
 * NULL) gets the routing table's size afterwards. */
CP2P_API CP2P_NODISCARD int cp2p_node_dht_bootstrap(cp2p_node *n, uint64_t timeout_ms,
                                                    size_t *table_size);
/* The routing table's size now. */
CP2P_API CP2P_NODISCARD int cp2p_node_dht_table_size(cp2p_node *n, size_t *out);
/* cp2p_kad_find_peer: on success *addrs holds *n_addrs multiaddrs as text (free with
 * cp2p_node_free_strings); they are also in the node's peerstore, so cp2p_node_request() can
 * dial the peer. */
CP2P_API CP2P_NODISCARD int cp2p_node_dht_find_peer(cp2p_node *n, const cp2p_peer_id *peer,
                                                    uint64_t timeout_ms, char ***addrs,
                                                    size_t *n_addrs);
CP2P_API void cp2p_node_free_strings(char **s, size_t n);
/* cp2p_kad_put_value: *stored (may be NULL) gets how many peers stored it. */
CP2P_API CP2P_NODISCARD int cp2p_node_dht_put(cp2p_node *n, const void *key, size_t key_len,
                                              const void *value, size_t value_len,
                                              uint64_t timeout_ms, size_t *stored);
/* cp2p_kad_get_value: *value (free with cp2p_free) and *value_len get the best value. */
CP2P_API CP2P_NODISCARD int cp2p_node_dht_get(cp2p_node *n, const void *key, size_t key_len,
                                              uint64_t timeout_ms, uint8_t **value,
                                              size_t *value_len);
/* cp2p_kad_provide: *told (may be NULL) gets how many peers were told. */
CP2P_API CP2P_NODISCARD int cp2p_node_dht_provide(cp2p_node *n, const void *key, size_t key_len,
                                                  uint64_t timeout_ms, size_t *told);
/* cp2p_kad_find_providers: up to max provider IDs into out, their count into *n_out (their
 * addresses go to the node's peerstore). */
CP2P_API CP2P_NODISCARD int cp2p_node_dht_find_providers(cp2p_node *n, const void *key,
                                                         size_t key_len, size_t max,
                                                         uint64_t timeout_ms, cp2p_peer_id *out,
                                                         size_t *n_out);

/* ---- pubsub (cfg.pubsub): the broadcast handler of seed 001 ---- */

/* A message of a subscribed topic: `from` is its author (NULL under StrictNoSign); everything
 * is borrowed for the call. Runs on the loop or a worker thread, as subscribed; on the pool, a
 * message that finds the worker queue full is dropped and counted (messages_dropped). */
typedef void (*cp2p_node_message_handler)(void *ud, const char *topic, const cp2p_peer_id *from,
                                          const uint8_t *data, size_t len);
/* Subscribe to `topic` with cb (replacing an earlier handler of it). Returns 0, CP2P_EINVAL,
 * CP2P_ENOTSUP (no pubsub on this node), CP2P_EFULL, CP2P_ECANCELED, CP2P_ENOMEM. */
CP2P_API CP2P_NODISCARD int cp2p_node_subscribe(cp2p_node *n, const char *topic,
                                                cp2p_node_message_handler cb, void *ud,
                                                cp2p_node_exec exec);
/* Returns 0, CP2P_ENOENT (not subscribed), CP2P_ENOTSUP, CP2P_ECANCELED. */
CP2P_API CP2P_NODISCARD int cp2p_node_unsubscribe(cp2p_node *n, const char *topic);
/* Publish (cp2p_pubsub_publish): CP2P_ENOENT when no peer would get it (as libp2p does). */
CP2P_API CP2P_NODISCARD int cp2p_node_publish(cp2p_node *n, const char *topic, const void *data,
                                              size_t len, uint64_t timeout_ms);
/* Peers subscribed to topic / in our mesh of it: up to max IDs into out, the total into
 * *total. */
CP2P_API CP2P_NODISCARD int cp2p_node_topic_peers(cp2p_node *n, const char *topic,
                                                  cp2p_peer_id *out, size_t max, size_t *total);
CP2P_API CP2P_NODISCARD int cp2p_node_mesh_peers(cp2p_node *n, const char *topic,
                                                 cp2p_peer_id *out, size_t max, size_t *total);

/* The validator of every pubsub message before delivery and forwarding (NULL: accept all),
 * replacing an earlier one. ON_LOOP: called on the loop, must answer at once. ON_POOL: called on
 * a worker thread (it may block, e.g. check a transaction against a database); when the worker
 * queue is full the message is dropped (IGNORE: no penalty for its sender) and counted
 * (validations_dropped); a validation unanswered after the pubsub's validation timeout (5 s)
 * counts as IGNORE. REJECT penalises the sender's score. Returns 0, CP2P_EINVAL, CP2P_ENOTSUP,
 * CP2P_ECANCELED. */
typedef cp2p_pubsub_verdict (*cp2p_node_validator)(void *ud, const char *topic,
                                                   const cp2p_peer_id *from,
                                                   const uint8_t *data, size_t len);
CP2P_API CP2P_NODISCARD int cp2p_node_set_validator(cp2p_node *n, cp2p_node_validator cb,
                                                    void *ud, cp2p_node_exec exec);

/* ---- the overlay (cfg.overlay, or cp2p_node_attach_overlay): routed messages to peers the
 * node is not connected to. Each call blocks the calling thread; any thread except the node's
 * own. Errors common to all: CP2P_ENOTSUP (no overlay on this node), CP2P_EFULL (command
 * queue), CP2P_ECANCELED (node stopping), CP2P_ENOMEM. ---- */

/* Send data (copied) to dst (cp2p_overlay_send; flags CP2P_OVERLAY_RELIABLE,
 * CP2P_OVERLAY_SOURCE_ROUTE); *id (may be NULL) gets the message id. Best effort: returns once
 * the message is handed to the next hop (CP2P_ENOENT: no route now). Reliable: waits for its
 * result: 0 when dst acknowledged it, CP2P_ETIMEDOUT when the overlay gave up (retry limit)
 * or timeout_ms passed first (the message may then still arrive), CP2P_EFULL (too many
 * unacknowledged). Also CP2P_EINVAL, CP2P_ELIMIT (len over 48 KiB). */
CP2P_API CP2P_NODISCARD int cp2p_node_overlay_send(cp2p_node *n, const cp2p_peer_id *dst,
                                                   const void *data, size_t len, uint32_t flags,
                                                   uint64_t timeout_ms, uint64_t *id);
/* The distance-vector routes / the link-state links: up to max into out, the total into
 * *total. */
CP2P_API CP2P_NODISCARD int cp2p_node_overlay_routes(cp2p_node *n, cp2p_overlay_route *out,
                                                     size_t max, size_t *total);
CP2P_API CP2P_NODISCARD int cp2p_node_overlay_topology(cp2p_node *n, cp2p_overlay_link *out,
                                                       size_t max, size_t *total);

/* Counters (a snapshot; any thread). */
typedef struct cp2p_node_stats {
    uint64_t commands, commands_refused_full;
    uint64_t requests_sent, requests_failed;
    uint64_t requests_handled, requests_refused_pool_full, requests_refused_handler;
    uint64_t events_delivered, events_dropped;
    uint64_t messages_delivered, messages_dropped; /* pubsub handler calls, pool-full drops */
    uint64_t validations_queued, validations_dropped; /* pool validations, pool-full drops */
} cp2p_node_stats;
CP2P_API void cp2p_node_stats_get(cp2p_node *n, cp2p_node_stats *out);

/* ---- running code on the loop thread ---- */

/* A call posted with cp2p_node_call_on_loop, completed with cp2p_node_call_done. */
typedef struct cp2p_node_call cp2p_node_call;
/* Runs on the loop thread with the node's host (see cp2p/host.h: every cp2p_host_* and
 * cp2p_conn_* call is allowed). It must complete `call` exactly once with
 * cp2p_node_call_done(): before returning, or later from the loop thread (e.g. from a host
 * callback), after which it must not touch `ud` again. */
typedef void (*cp2p_node_call_fn)(cp2p_node_call *call, cp2p_host *host, void *ud);

/* Run fn(call, host, ud) on the loop thread and wait up to timeout_ms (> 0) for its
 * cp2p_node_call_done(). Returns the status fn completed with (0 or a negative cp2p_err), or
 * CP2P_EINVAL (NULL fn, timeout_ms 0), CP2P_ETIMEDOUT, CP2P_EFULL (command queue),
 * CP2P_ECANCELED (node stopping: fn may never run), CP2P_ENOMEM.
 * Ownership of ud: on 0, fn is done and ud is the caller's again. On an error the node keeps
 * ud until fn can no longer touch it -- fn may still be running, or not have started, when
 * the call times out -- and then calls free_ud(ud) (unless free_ud is NULL), at once when fn
 * never started; free_ud may run on any thread, with the node's lock held, so it must only
 * free memory. Any thread except the node's own (the loop would wait on itself). */
CP2P_API CP2P_NODISCARD int cp2p_node_call_on_loop(cp2p_node *n, cp2p_node_call_fn fn, void *ud,
                                                   void (*free_ud)(void *),
                                                   uint64_t timeout_ms);
/* Complete a call with `status` (0 or a negative cp2p_err). Loop thread. */
CP2P_API void cp2p_node_call_done(cp2p_node_call *call, int status);

/* ---- a node on the caller's own host and loop ---- */

/* Put the node's thread-safe interface (commands from any thread) in front of a host the
 * caller runs on its own libuv loop, e.g. a program built on cp2p/host.h that also serves the
 * HTTP API below. The host, and the pubsub and DHT when not NULL, stay the caller's: the node
 * only borrows them, registers no host event callback (so cp2p_node_set_event_handler delivers
 * nothing), installs no pubsub validator, and runs every handler on the loop (no worker pool:
 * CP2P_NODE_ON_POOL is refused). cfg may be NULL (the defaults); its command_queue and
 * request-response sizes are used. The node's addresses are the host's at this call.
 * Returns 0, CP2P_EINVAL, CP2P_EIO, CP2P_ENOMEM. Loop thread (the thread that runs the host's
 * loop; the loop need not be running yet). End it with cp2p_node_detach_begin, then
 * cp2p_node_detach -- never cp2p_node_stop, which ignores an attached node. */
CP2P_API CP2P_NODISCARD int cp2p_node_attach(cp2p_host *host, cp2p_pubsub *ps, cp2p_kad *kad,
                                             const cp2p_node_config *cfg, cp2p_node **out);
/* First step of the end of an attached node, before the caller closes its pubsub, DHT and host:
 * new calls fail with CP2P_ECANCELED, queued ones are failed with it, request handlers
 * registered through the node are unregistered. Calls already in flight (a dial, a request, a
 * call_on_loop waiting on a host callback) complete when what they wait on closes. Loop
 * thread. */
CP2P_API void cp2p_node_detach_begin(cp2p_node *n);
/* Last step: once nothing can be in flight -- after the host's close callback, or at once when
 * no command ever ran -- wait for the threads still inside a cp2p_node_* call to return (they
 * have their answer), and free the node on a later turn of the loop (its async handle
 * closes), so the loop must run again. Loop thread. */
CP2P_API void cp2p_node_detach(cp2p_node *n);
/* Run an overlay on an attached node's host, owned by the node (its callbacks in cfg run on
 * the loop with ud; cp2p_node_detach_begin closes it). Returns 0, CP2P_EINVAL, CP2P_ESTATE
 * (the node has one), or cp2p_overlay_new's errors. Loop thread, before the host closes. */
CP2P_API CP2P_NODISCARD int cp2p_node_attach_overlay(cp2p_node *n, const cp2p_overlay_config *cfg,
                                                     void *ud);

/* ---- the HTTP API (docs/API.md): /metrics, /healthz and a kubo-style /api/v0 ----
 * The server runs on libmicrohttpd's own threads (one per connection, at most
 * max_connections) which only call the thread-safe cp2p_node_* functions above: the loop
 * thread never waits on HTTP. */

#include <cp2p/metrics.h>

/* Defaults of cp2p_node_api_config. Our choices: kubo's RPC port; a few operators and scrapers
 * at once; 10 s of silence is ample for a local client (a stalled one holds a connection no
 * longer); URLs carry a multiaddr or a topic (kubo's own limits are larger, for CIDs in bulk);
 * a pubsub message of 1 MiB (gossipsub's default max_rpc_size). */
#define CP2P_NODE_API_DEFAULT_LISTEN "127.0.0.1:5001"
#define CP2P_NODE_API_MAX_CONNECTIONS 32
#define CP2P_NODE_API_TIMEOUT_S 10
#define CP2P_NODE_API_MAX_URL 8192
#define CP2P_NODE_API_MAX_BODY (1024 * 1024)
#define CP2P_NODE_API_OP_TIMEOUT_MS 30000
/* Longest access token accepted, and the longest "HOST:PORT" text. */
#define CP2P_NODE_API_TOKEN_MAX 1024
#define CP2P_NODE_API_ADDR_MAX 64

typedef struct cp2p_node_api cp2p_node_api;

typedef struct cp2p_node_api_config {
    /* "HOST:PORT": an IPv4 address, [IPv6] or localhost; port 0 picks a free port (see
     * cp2p_node_api_addr). Copied. Default CP2P_NODE_API_DEFAULT_LISTEN. */
    const char *listen;
    /* Access token (copied; only its hash is kept): every request but /healthz must carry
     * "Authorization: Bearer <token>". Required when `listen` is not a loopback address. NULL:
     * no token. */
    const char *token;
    uint32_t max_connections;  /* HTTP connections at once (libmicrohttpd's limit) */
    uint32_t timeout_s;        /* a connection silent this long is closed */
    size_t max_url;            /* bytes of the request target (path and query), 64 B to
                                * 1 MiB; 414 past it */
    size_t max_body;           /* bytes of a request body; 413 past it */
    uint64_t op_timeout_ms;    /* bound of one node operation (connect, ping, publish) */
} cp2p_node_api_config;

/* Fill c with the defaults. Any thread. */
CP2P_API void cp2p_node_api_config_default(cp2p_node_api_config *c);

/* Serve the HTTP API of node `n` (started or attached) on cfg->listen. The API owns a metrics
 * registry (cp2p_node_api_metrics) that /metrics renders after the loop has copied the host's
 * counters into it. Returns 0 and *out, or CP2P_EINVAL (bad config or address text),
 * CP2P_EPERM (a listen address other than loopback without a token: refused, so the API is
 * never reachable from the network unauthenticated), CP2P_EIO (the address cannot be bound,
 * e.g. in use), CP2P_ENOMEM. Any thread except the node's own. */
CP2P_API CP2P_NODISCARD int cp2p_node_api_start(cp2p_node *n, const cp2p_node_api_config *cfg,
                                                cp2p_node_api **out);
/* The address the API listens on as "HOST:PORT" with the real port (NUL ended). Returns 0 or
 * CP2P_ENOSPC. Any thread. */
CP2P_API CP2P_NODISCARD int cp2p_node_api_addr(const cp2p_node_api *a, char *out, size_t outlen);
/* The API's registry: applications may register their own families in it (they appear in
 * /metrics). Valid until cp2p_node_api_stop. Any thread. */
CP2P_API cp2p_metrics *cp2p_node_api_metrics(cp2p_node_api *a);
/* Stop serving: close the listener and every HTTP connection, wait for the HTTP threads (each
 * returns within one node operation's bound) and free the API. NULL is a no-op. Call it before
 * cp2p_node_stop, or for an attached node after its host closed and before
 * cp2p_node_detach. Any thread except the node's own loop thread while the node runs (an HTTP
 * thread may be waiting on the loop). */
CP2P_API void cp2p_node_api_stop(cp2p_node_api *a);

#ifdef __cplusplus
}
#endif
#endif
