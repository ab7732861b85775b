/* cp2p: the host on the caller's libuv loop — listen, dial, secure multiplexed connections
 * (TCP + multistream-select + Noise + yamux), streams with protocol negotiation, protocol
 * handlers and connection events. Built-in protocols: /ipfs/ping/1.0.0, /ipfs/id/1.0.0,
 * /ipfs/id/push/1.0.0 and /perf/1.0.0 (see cp2p/protocols.h).
 *
 * Threading: every function here is called on the loop thread that runs the host, and every
 * callback runs on it. Callback rule (STYLE.md section 3): a function that returns an error
 * never calls its callback; one that returns 0 calls it exactly once, never before it returned.
 *
 * Signals: like every libuv program, an application must ignore SIGPIPE
 * (signal(SIGPIPE, SIG_IGN)) so that a peer closing while we write costs an EPIPE on that
 * connection, not the process. cp2p_node_start() does it for the node API.
 *
 * Lifetimes: a cp2p_conn is valid from the callback that hands it out until the
 * CP2P_EVENT_CONN_CLOSED event for it returns. A cp2p_stream belongs to the application from
 * the callback that hands it out until the application calls cp2p_stream_close() or
 * cp2p_stream_reset() — always exactly one of them, even after the connection died. */
#ifndef CP2P_HOST_H
#define CP2P_HOST_H

#include <stdbool.h>

#include <uv.h>

#include <cp2p/keys.h>
#include <cp2p/multiaddr.h>
#include <cp2p/peerstore.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cp2p_host cp2p_host;
typedef struct cp2p_conn cp2p_conn;
typedef struct cp2p_stream cp2p_stream;

/* cp2p_host_config.conn_grace_ms: no grace period (0 there means the default). */
#define CP2P_HOST_NO_GRACE UINT64_MAX
/* cp2p_host_config.reconnect_known_peers: redial no known peer at start. */
#define CP2P_HOST_NO_RECONNECT UINT32_MAX
/* cp2p_host_config.tcp_notsent_lowat: leave the kernel's unsent queue unlimited, or the
 * default (measured: docs/BENCHMARKS.md, "Stream scheduling"). */
#define CP2P_HOST_NOTSENT_LOWAT_OFF UINT32_MAX
#define CP2P_HOST_NOTSENT_LOWAT_DEFAULT (16 * 1024)
/* cp2p_host_config.conn_queue_us: no adaptation, the caps below the scheduler stay fixed. */
#define CP2P_HOST_CONN_QUEUE_FIXED UINT32_MAX

typedef struct cp2p_memnet cp2p_memnet;

typedef struct cp2p_host_config {
    /* Required: the host's identity. The host keeps its own copy. */
    const cp2p_privkey *identity;
    /* identify's agentVersion (default "cp2p/<version>") and protocolVersion ("ipfs/0.1.0").
     * Copied. */
    const char *agent_version;
    const char *protocol_version;
    uint64_t dial_timeout_ms;       /* TCP connect (default 10 s) */
    uint64_t upgrade_timeout_ms;    /* security + muxer negotiation of a new connection (10 s) */
    uint64_t negotiate_timeout_ms;  /* multistream-select on a new stream (10 s) */
    uint64_t keepalive_ms;          /* yamux ping on idle connections; 0 = off (15 s) */
    uint32_t max_conns;             /* connections at once; more are refused (256) */
    uint32_t max_pending_inbound;   /* inbound connections still upgrading (64): slow-loris cap */
    uint32_t yamux_max_window;      /* receive-window auto-tuning ceiling (16 MiB) */
    size_t max_stream_write_buffer; /* bytes queued by cp2p_stream_write not yet taken (8 MiB) */
    size_t max_conn_write_buffer;   /* the same, summed over one connection's streams (32 MiB) */
    uint32_t max_streams_per_conn;  /* streams each way on one connection (1000, go-yamux's) */
    uint32_t max_inbound_per_protocol; /* inbound streams of one protocol on one connection
                                        * (64); more are reset and counted */
    bool perf_server;               /* serve /perf/1.0.0 (off: it sends whatever a peer asks) */
    /* The host's peerstore (cp2p/peerstore.h): an SQLite file, created if missing and written
     * every 30 s and when the host closes, or NULL to keep it in memory. Only read while
     * cp2p_host_new() runs. */
    const char *peerstore_path;
    uint32_t peerstore_max_peers;   /* peers the peerstore keeps; 0 = default (10,000) */
    /* Dials by peer ID (cp2p_host_dial_peer). */
    uint64_t dial_peer_timeout_ms;  /* overall deadline of one, every address included (30 s) */
    uint64_t dial_backoff_base_ms;  /* backoff after the first failure (5 s), doubled per */
    uint64_t dial_backoff_max_ms;   /* further failure up to this (5 min), with jitter */
    uint32_t max_peer_dials;        /* dials by peer ID in flight at once (40) */
    /* Connection manager. For each field 0 means the default in parentheses. Upgraded
     * connections above conn_high_water are trimmed down to conn_low_water: never those of
     * protected or persistent peers (cp2p_host_protect, cp2p_host_add_persistent_peer), never
     * those younger than conn_grace_ms; the least valuable first (lowest cp2p_conn_set_tag
     * value, then no open streams, then least recently active, then oldest). The check runs
     * after each upgrade and every 10 s. low_water must not exceed high_water (else
     * cp2p_host_new returns CP2P_EINVAL). */
    uint32_t conn_low_water;        /* trim down to this many (192) */
    uint32_t conn_high_water;       /* trim when above this many (224) */
    uint64_t conn_grace_ms;         /* new connections are not trimmed for this long (60 s;
                                     * CP2P_HOST_NO_GRACE for none) */
    /* Inbound admission, before any byte is read: inbound connections from one IP address (8;
     * UINT32_MAX for no limit; loopback addresses are exempt unless limit_loopback_per_ip, so a
     * local testnet works) and accepted inbound connections per second with a burst (32, 64).
     * Refusals are counted and logged. */
    uint32_t max_conns_per_ip;
    bool limit_loopback_per_ip;
    uint32_t inbound_per_sec;
    uint32_t inbound_burst;
    /* Open connections to one peer (2): a further one is closed when its upgrade completes
     * (its dial fails with CP2P_ELIMIT). */
    uint32_t max_conns_per_peer;
    /* Reconnect at start (as CometBFT's address book): from the loop, just after
     * cp2p_host_new() returns, the host dials (cp2p_host_dial_peer) up to this many peers of
     * its peerstore (a file-backed one remembers the last run's) that it once connected to and
     * that have an unexpired address, most recently connected first, while the dialer's
     * max_peer_dials allows. Failures are only logged at debug level (the dialer's backoff
     * applies). 0 = default (32); CP2P_HOST_NO_RECONNECT for none. */
    uint32_t reconnect_known_peers;
    /* The in-memory network the host joins (cp2p/memnet.h); NULL (the default) for none. With
     * it, the host listens on and dials /memory/NAME addresses; TCP addresses keep working.
     * It must be on the host's loop (else cp2p_host_new returns CP2P_EINVAL). Borrowed: the
     * network must outlive the host (cp2p_memnet_close refuses while a host uses it). */
    cp2p_memnet *memnet;
    /* TCP_NOTSENT_LOWAT on connection sockets (Linux): the kernel takes more of a
     * connection's bytes only while fewer than this many are queued unsent, so what waits to
     * be sent stays in the host, where stream priorities (cp2p_stream_set_priority) apply. 0 =
     * default (CP2P_HOST_NOTSENT_LOWAT_DEFAULT); CP2P_HOST_NOTSENT_LOWAT_OFF keeps the kernel's
     * unlimited queue. docs/BENCHMARKS.md ("Stream scheduling") has what it costs. The memory
     * transport models the same bound on its links (cp2p/memnet.h). */
    uint32_t tcp_notsent_lowat;
    /* What may wait below the stream scheduler on each connection: yamux's unsent output and
     * the socket write requests not yet completed, in bytes; 0 = default (64 KiB each). Bytes
     * there are past the priorities: a small message waits behind all of them. The kernel
     * holds the data in flight, so larger values rarely add throughput (docs/BENCHMARKS.md). */
    size_t conn_out_buffered;
    size_t conn_write_inflight;
    /* Both are maxima: each connection lowers them to what it sends in this many microseconds
     * at its measured send rate, never under 16 KiB (as Linux's byte queue limits size a NIC's
     * queue), so on slow links priorities act within about this time; and while streams share
     * the connection (two different ones served less than 100 ms apart) never over 32 KiB
     * each, so a newly ready stream waits for about one 64 KiB frame. 0 = 250 us;
     * CP2P_HOST_CONN_QUEUE_FIXED keeps the maxima (and no shared-connection limit). */
    uint32_t conn_queue_us;
} cp2p_host_config;

/* Fill c with the defaults (identity NULL). Any thread. */
CP2P_API void cp2p_host_config_default(cp2p_host_config *c);

/* Create a host on `loop`. Opens the peerstore (blocking file I/O when peerstore_path is set:
 * call it before the loop runs). Returns 0, CP2P_EINVAL (no identity, bad config), CP2P_ENOMEM,
 * or the peerstore's CP2P_EIO / CP2P_ENOTSUP (see cp2p_peerstore_open). */
CP2P_API CP2P_NODISCARD int cp2p_host_new(uv_loop_t *loop, const cp2p_host_config *cfg,
                                          cp2p_host **out);
/* Close listeners and connections (GoAway, then close), reset streams; `cb` runs once all
 * handles are closed, with h == NULL since the memory is gone by then. Streams still held by
 * the application get their read callback with CP2P_ERESET; when cb runs every stream and
 * connection handle is invalid, so the application must not close them after it. */
typedef void (*cp2p_host_close_cb)(cp2p_host *h, void *ud);
CP2P_API void cp2p_host_close(cp2p_host *h, cp2p_host_close_cb cb, void *ud);

CP2P_API const cp2p_peer_id *cp2p_host_peer_id(const cp2p_host *h);
/* The host's private key (borrowed, valid until the host's close callback): for protocols that
 * sign as this peer (gossipsub messages, signed records), as go-libp2p's peerstore PrivKey. */
CP2P_API const cp2p_privkey *cp2p_host_privkey(const cp2p_host *h);
CP2P_API uv_loop_t *cp2p_host_loop(const cp2p_host *h);

/* Listen on a TCP multiaddr (/ip4|ip6/ADDR/tcp/PORT; port 0 picks one). Returns 0,
 * CP2P_ENOTSUP (not a TCP address), CP2P_EIO (bind failed, e.g. in use), CP2P_ENOMEM. */
CP2P_API CP2P_NODISCARD int cp2p_host_listen(cp2p_host *h, const cp2p_multiaddr *ma);
/* The n-th listen address as actually bound (real port), with /p2p/<our id> appended when
 * `with_peer_id`. Returns 0 with a new multiaddr in *out, or CP2P_ENOENT past the last. */
CP2P_API CP2P_NODISCARD int cp2p_host_listen_addr(const cp2p_host *h, size_t n, bool with_peer_id,
                                                 cp2p_multiaddr **out);

/* The addresses peers can dial us at: each listen address, with an unspecified one (0.0.0.0,
 * ::) replaced by one address per interface of its family (loopback included), each with
 * /p2p/<our id> when `with_peer_id`. Writes up to `max` new multiaddrs to out (the caller frees
 * each) and returns how many, or CP2P_ENOMEM. Identify announces these. */
CP2P_API CP2P_NODISCARD ptrdiff_t cp2p_host_addrs(const cp2p_host *h, bool with_peer_id,
                                                 cp2p_multiaddr **out, size_t max);

/* Dial a TCP multiaddr; with a trailing /p2p/<id> the authenticated peer must be that peer
 * (else the connection closes with CP2P_EPEERID). cb gets the connection, upgraded and ready,
 * or an error: CP2P_ETIMEDOUT, CP2P_EIO (refused), CP2P_ENOENT (name did not resolve),
 * CP2P_EPROTO (the peer broke a protocol), CP2P_EPEERID, CP2P_ENOTSUP (no common security or
 * muxer protocol), CP2P_ELIMIT (too many connections), CP2P_ECANCELED (host closing).
 * Returns 0, CP2P_ENOTSUP (not a TCP address), CP2P_ECLOSED (host closing), CP2P_ENOMEM. */
typedef void (*cp2p_dial_cb)(cp2p_host *h, int status, cp2p_conn *conn, void *ud);
CP2P_API CP2P_NODISCARD int cp2p_host_dial(cp2p_host *h, const cp2p_multiaddr *ma,
                                           cp2p_dial_cb cb, void *ud);

/* Dial a peer by ID: complete with an open connection to it if there is one; otherwise dial
 * the peer's unexpired addresses from the peerstore (best first, at most 16), up to 4 at once,
 * each started 250 ms after the previous one unless that one failed sooner (go-libp2p's TCP
 * dial ranking). Each address is dialed as cp2p_host_dial(addr/p2p/<peer>), so the peer ID is
 * checked. The first connection to finish its upgrade wins; the other dials are canceled.
 * Concurrent calls for the same peer share one dial: every cb runs once, with the same result.
 * After a failed dial the peer is in backoff (dial_backoff_base_ms doubled per consecutive
 * failure up to dial_backoff_max_ms, with jitter); a success ends it.
 * cb gets the connection or an error: the last address's error (see cp2p_host_dial),
 * CP2P_ETIMEDOUT (dial_peer_timeout_ms passed), CP2P_ECANCELED (host closing).
 * Returns 0, or (cb never runs):
 *   CP2P_EINVAL    peer or cb NULL, or peer is this host;
 *   CP2P_ENOENT    not connected and the peerstore has no unexpired address of the peer
 *                  (teach it one: cp2p_peerstore_add_addrs, or cp2p_host_dial an address);
 *   CP2P_ESTATE    the peer is in dial backoff after a failed dial: retry later;
 *   CP2P_EFULL     max_peer_dials dials by peer ID are in flight: retry later;
 *   CP2P_ENOTSUP   none of the peer's addresses is one this host can dial;
 *   CP2P_ECLOSED   host closing;  CP2P_ENOMEM.
 * cb runs from the loop, never inside this call (also when already connected). */
CP2P_API CP2P_NODISCARD int cp2p_host_dial_peer(cp2p_host *h, const cp2p_peer_id *peer,
                                                cp2p_dial_cb cb, void *ud);

/* The host's peerstore (see cp2p/peerstore.h), owned by the host and valid until the host's
 * close callback. The host fills it: identify results (listen addresses, protocols, agent,
 * public key), addresses dialed explicitly that connected (source MANUAL), connections and
 * failed dials, ping round trips. A file-backed store takes wall-clock `now` (CLOCK_REALTIME
 * milliseconds). Loop thread only. */
CP2P_API cp2p_peerstore *cp2p_host_peerstore(cp2p_host *h);

/* Protect `peer` (on) or stop protecting it (off): a protected peer's connections are never
 * trimmed by the connection manager, and the peerstore never evicts it (its protected flag,
 * persisted with it). Returns 0, CP2P_EINVAL (NULL argument), CP2P_ENOENT (unprotecting an
 * unknown peer), CP2P_ESTATE (unprotecting a persistent peer), CP2P_EFULL or CP2P_ENOMEM (the
 * peerstore's, see cp2p_peerstore_set_protected). Loop thread only. */
CP2P_API CP2P_NODISCARD int cp2p_host_protect(cp2p_host *h, const cp2p_peer_id *peer, bool on);

/* Keep a connection to the peer at `ma` (borrowed), which must end in /p2p/<peer-id>, as
 * CometBFT's persistent_peers: the address goes to the peerstore (source MANUAL, permanent),
 * the peer is protected, dialed now with cp2p_host_dial_peer and redialed whenever its last
 * connection closes or a dial fails — when the dialer's backoff for it ends
 * (dial_backoff_base_ms doubling up to dial_backoff_max_ms, with jitter). Adding a peer twice
 * adds the address and changes nothing else. At most CP2P_HOST_MAX_PERSISTENT_PEERS (256).
 * Returns 0 (dial failures are not errors: they are retried), or CP2P_EINVAL (no /p2p/ part,
 * or this host's own ID), CP2P_ENOTSUP (not a TCP address), CP2P_EFULL (too many persistent
 * peers, or the peerstore is full of protected peers), CP2P_ECLOSED (host closing),
 * CP2P_ENOMEM. Loop thread only. */
CP2P_API CP2P_NODISCARD int cp2p_host_add_persistent_peer(cp2p_host *h, const cp2p_multiaddr *ma);

/* An open connection to `peer` that can take new streams (the most recent when there are
 * several; one whose peer sent GoAway is skipped), or NULL. */
CP2P_API cp2p_conn *cp2p_host_conn_to(const cp2p_host *h, const cp2p_peer_id *peer);

/* ---- protocol handlers ---- */

/* An inbound stream negotiated to `protocol`: the handler owns it (see the lifetime rule). */
typedef void (*cp2p_stream_handler)(cp2p_stream *s, void *ud);
/* Register (or replace) the handler of `protocol` (copied). Connected peers learn of a new
 * protocol through identify push. Returns 0, CP2P_EINVAL (not a valid protocol ID),
 * CP2P_EFULL (CP2P_MSS_MAX_SUPPORTED handlers), CP2P_ENOMEM. */
CP2P_API CP2P_NODISCARD int cp2p_host_set_handler(cp2p_host *h, const char *protocol,
                                                  cp2p_stream_handler cb, void *ud);
/* Remove a handler: new streams for it are refused ("na"). Returns 0 or CP2P_ENOENT. */
CP2P_API CP2P_NODISCARD int cp2p_host_remove_handler(cp2p_host *h, const char *protocol);

/* ---- events ---- */

typedef enum cp2p_event_type {
    CP2P_EVENT_CONN_OPENED,     /* a connection finished its upgrade (either direction) */
    CP2P_EVENT_CONN_CLOSED,     /* err: why it closed (0 = we closed it; CP2P_ELIMIT with why
                                   "trimmed by the connection manager" when trimmed, closed
                                   at once without a GoAway) */
    CP2P_EVENT_PEER_IDENTIFIED, /* identify (or a push) from the peer arrived: see
                                   cp2p_conn_identify() */
    CP2P_EVENT_INBOUND_REFUSED, /* an inbound connection was refused or failed its upgrade */
} cp2p_event_type;

typedef struct cp2p_event {
    cp2p_event_type type;
    cp2p_conn *conn;            /* NULL for INBOUND_REFUSED */
    int err;                    /* CONN_CLOSED, INBOUND_REFUSED */
    const char *why;            /* static text or NULL */
} cp2p_event;

/* One listener for host events (NULL removes it). */
typedef void (*cp2p_event_cb)(cp2p_host *h, const cp2p_event *ev, void *ud);
CP2P_API void cp2p_host_set_event_cb(cp2p_host *h, cp2p_event_cb cb, void *ud);

/* ---- connections ---- */

CP2P_API const cp2p_peer_id *cp2p_conn_peer_id(const cp2p_conn *c);
CP2P_API const cp2p_pubkey *cp2p_conn_peer_key(const cp2p_conn *c);
/* Remote and local socket addresses (borrowed, valid with the connection). */
CP2P_API const cp2p_multiaddr *cp2p_conn_remote_addr(const cp2p_conn *c);
CP2P_API const cp2p_multiaddr *cp2p_conn_local_addr(const cp2p_conn *c);
CP2P_API bool cp2p_conn_is_outbound(const cp2p_conn *c);
CP2P_API cp2p_host *cp2p_conn_host(const cp2p_conn *c);
CP2P_API uint64_t cp2p_conn_id(const cp2p_conn *c);
/* Smoothed RTT measured by yamux pings, or 0 when none yet. */
CP2P_API uint64_t cp2p_conn_rtt_ms(const cp2p_conn *c);
/* Mark how valuable the connection is to the application (0 initially; higher = keep): when
 * the connection manager trims, lower values go first. Protocols use it for connections they
 * rely on (e.g. a gossip mesh peer); protect the peer (cp2p_host_protect) to exempt it
 * entirely. Loop thread only. */
CP2P_API void cp2p_conn_set_tag(cp2p_conn *c, int32_t value);
/* What may wait below the stream scheduler on this connection alone, in bytes: yamux's unsent
 * output and the transport writes not yet completed (cp2p_host_config.conn_out_buffered and
 * conn_write_inflight; 0 = the host's setting). Smaller values let stream priorities act
 * sooner, at some cost in one stream's throughput (docs/BENCHMARKS.md); every stream of the
 * connection is affected. These are maxima: the caps below them follow the send rate
 * (conn_queue_us). The reactor switch calls it when cp2p_switch_config.conn_send_buffer is
 * set. Returns 0, CP2P_ECLOSED (closing), CP2P_ESTATE (not upgraded yet). Loop thread only. */
CP2P_API CP2P_NODISCARD int cp2p_conn_set_send_buffers(cp2p_conn *c, size_t out_buffered,
                                                       size_t write_inflight);
/* Close the connection: GoAway, flush, close; streams are reset. CONN_CLOSED follows. */
CP2P_API void cp2p_conn_close(cp2p_conn *c);

/* What identify told us about the peer (NULL until it arrived). Borrowed: valid until the
 * next PEER_IDENTIFIED or CONN_CLOSED event for this connection. */
typedef struct cp2p_identify_info {
    const char *agent_version;      /* NULL when not sent */
    const char *protocol_version;
    const char *const *protocols;
    size_t n_protocols;
    const cp2p_multiaddr *const *listen_addrs;
    size_t n_listen_addrs;
    const cp2p_multiaddr *observed_addr; /* how the peer sees us; NULL when not sent */
} cp2p_identify_info;
CP2P_API const cp2p_identify_info *cp2p_conn_identify(const cp2p_conn *c);

/* ---- streams ---- */

/* Open a stream and negotiate the first of protos[0..n) (copied) that the peer supports. cb
 * gets the stream (the application's, see the lifetime rule) or an error: CP2P_ENOTSUP (the
 * peer supports none), CP2P_ETIMEDOUT, CP2P_ERESET, CP2P_EPROTO, CP2P_ECLOSED.
 * Returns 0, CP2P_EINVAL (n == 0, too many, or a bad ID), CP2P_ECLOSED (connection closing),
 * CP2P_EFULL (too many streams), CP2P_ENOMEM. */
typedef void (*cp2p_open_cb)(cp2p_stream *s, int status, void *ud);
CP2P_API CP2P_NODISCARD int cp2p_conn_open_stream(cp2p_conn *c, const char *const *protos,
                                                  size_t n, cp2p_open_cb cb, void *ud);

/* Options of cp2p_conn_open_stream_opts. Fill with cp2p_open_opts_default() (all off), so that
 * fields added later keep their defaults. */
typedef struct cp2p_open_opts {
    /* Lazy multistream-select when the answer is known: with a single protocol that the peer's
     * identify (cp2p_conn_identify) lists, the stream is open at once (cb runs from the loop
     * without waiting for the peer), and the proposal goes out in the same flight as the
     * first bytes written, saving one round trip. The peer's echo is read before the first
     * byte is delivered. Toward peers whose identify agent is not "cp2p/..." the FIN
     * (cp2p_stream_close_write) waits for the echo: js-libp2p 3.x loses a FIN that arrives
     * with the protocol line (docs/ARCHITECTURE.md). If the peer answers "na" nevertheless (it removed the handler since
     * identify), the stream dies: its read callback and pending writes get CP2P_ENOTSUP (or
     * CP2P_ETIMEDOUT when no echo came within negotiate_timeout_ms, CP2P_EPROTO for a
     * malformed one). Otherwise, or before identify arrived, the stream negotiates as
     * cp2p_conn_open_stream does. Off by default; request-response turns it on. */
    bool lazy_if_known;
} cp2p_open_opts;

/* Fill o with the defaults. Any thread. */
CP2P_API void cp2p_open_opts_default(cp2p_open_opts *o);
/* cp2p_conn_open_stream with options (NULL: the defaults); same results. */
CP2P_API CP2P_NODISCARD int cp2p_conn_open_stream_opts(cp2p_conn *c, const char *const *protos,
                                                       size_t n, const cp2p_open_opts *opts,
                                                       cp2p_open_cb cb, void *ud);

/* Reading: after cp2p_stream_read_start(), cb runs with n > 0 and `data` (borrowed for the
 * call) for each chunk; then once with CP2P_EOF (the peer closed its side) or an error
 * (CP2P_ERESET, CP2P_ECLOSED when the connection ended; on a stream opened lazily also the
 * negotiation's CP2P_ENOTSUP, CP2P_ETIMEDOUT, CP2P_EPROTO); no more calls follow those. Bytes are
 * credited back to the peer (flow control) when cb returns; cp2p_stream_read_stop() stops the
 * calls and so, once the window is used, the sender. Returns 0, CP2P_ESTATE (already
 * reading) or CP2P_ECLOSED (the stream already ended or died: nothing more to read). The
 * callback may close or reset the stream. */
typedef void (*cp2p_read_cb)(cp2p_stream *s, ptrdiff_t n, const uint8_t *data, void *ud);
CP2P_API CP2P_NODISCARD int cp2p_stream_read_start(cp2p_stream *s, cp2p_read_cb cb, void *ud);
CP2P_API void cp2p_stream_read_stop(cp2p_stream *s);

/* Queue len bytes (copied). cb runs once with 0 when all of them were handed to the
 * connection (the peer's window admitted them), or with an error (CP2P_ERESET, CP2P_ECLOSED)
 * if the stream or connection died first. cb may be NULL. Returns 0, CP2P_ECLOSED (after
 * close_write, or the stream is dead), CP2P_ELIMIT (more than max_stream_write_buffer bytes
 * would be queued: wait for earlier callbacks), CP2P_ENOMEM. */
typedef void (*cp2p_write_cb)(cp2p_stream *s, int status, void *ud);
CP2P_API CP2P_NODISCARD int cp2p_stream_write(cp2p_stream *s, const void *data, size_t len,
                                              cp2p_write_cb cb, void *ud);
/* cp2p_stream_write without the copy (as uv_write): the bytes are read in place, so they must
 * stay valid and unchanged until cb runs, which it always does, once (cb is required). Saves a
 * copy of every byte for large writes (docs/BENCHMARKS.md, "Throughput"). Returns as
 * cp2p_stream_write, or CP2P_EINVAL (cb NULL, or data NULL with len > 0). */
CP2P_API CP2P_NODISCARD int cp2p_stream_write_ref(cp2p_stream *s, const void *data, size_t len,
                                                  cp2p_write_cb cb, void *ud);
/* Bytes queued by cp2p_stream_write and not yet handed to the connection. */
CP2P_API size_t cp2p_stream_write_queued(const cp2p_stream *s);
/* Half-close: FIN once the queued bytes are sent. Reading continues. Returns 0 or
 * CP2P_ECLOSED (already closed or dead). */
CP2P_API CP2P_NODISCARD int cp2p_stream_close_write(cp2p_stream *s);
/* Done with the stream: queued bytes are still sent, then FIN; what the peer sends is
 * discarded. Pending write callbacks still run. The handle is invalid on return. */
CP2P_API void cp2p_stream_close(cp2p_stream *s);
/* Abort both directions (RST); queued bytes are dropped and pending write callbacks run with
 * CP2P_ERESET. The handle is invalid on return. */
CP2P_API void cp2p_stream_reset(cp2p_stream *s);

/* Write priority. The streams of a connection that have bytes waiting share the connection
 * by bytes in proportion to their priorities (deficit round robin): two backlogged streams of
 * priorities 1 and 4 get 1/5 and 4/5 of what the connection carries; a stream alone gets it
 * all, whatever its priority. A stream that starts sending after being idle goes before the
 * backlogged ones once (up to priority * 4 KiB), so a short message is not held behind bulk
 * transfers. Priorities are local: nothing goes on the wire. Default
 * CP2P_STREAM_PRIORITY_DEFAULT, or the service's stream_priority (cp2p/service.h). Returns 0,
 * or CP2P_EINVAL outside MIN..MAX. Takes effect at the stream's next turn. Loop thread only. */
#define CP2P_STREAM_PRIORITY_MIN 1
#define CP2P_STREAM_PRIORITY_DEFAULT 4
#define CP2P_STREAM_PRIORITY_MAX 16
CP2P_API CP2P_NODISCARD int cp2p_stream_set_priority(cp2p_stream *s, unsigned priority);
CP2P_API unsigned cp2p_stream_get_priority(const cp2p_stream *s);

CP2P_API const char *cp2p_stream_protocol(const cp2p_stream *s);
CP2P_API cp2p_conn *cp2p_stream_conn(const cp2p_stream *s);
CP2P_API void cp2p_stream_set_user(cp2p_stream *s, void *user);
CP2P_API void *cp2p_stream_user(const cp2p_stream *s);

#ifdef __cplusplus
}
#endif
#endif
