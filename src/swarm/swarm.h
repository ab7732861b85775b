/* The host's internals shared by host_uv.c (listen, dial, handlers, events) and conn_uv.c
 * (the connection pipeline and streams), and the internal surface the built-in protocols use.
 * Loop thread only. */
#ifndef CP2P_SWARM_SWARM_H
#define CP2P_SWARM_SWARM_H

#include <cp2p/host.h>

#include "crypto/noise/noise.h"
#include "muxer/sched.h"
#include "muxer/yamux.h"
#include "negotiate/mss.h"
#include "swarm/conn_core.h"
#include "transport/transport.h"
#include "util/hashmap.h"
#include "util/limits.h"
#include "swarm/connmgr.h"
#include "swarm/host_new.h"

/* Internal event, delivered to identify only (after the public ones in cp2p_event_type). */
#define CP2P__EVENT_PROTOCOLS_CHANGED 100

typedef struct {
    cp2p_stream_handler cb;
    void *ud;
    bool active;
    uint32_t max_inbound; /* inbound streams per connection; 0 = max_inbound_per_protocol */
} swarm_handler;

typedef struct swarm_listener {
    cp2p__tlistener *l;
    cp2p_multiaddr *addr; /* as bound */
} swarm_listener;

typedef struct swarm_dial swarm_dial;
typedef struct cp2p__dialer cp2p__dialer;
typedef struct host_persist host_persist;

/* Why a Noise handshake failed (the close error of a connection torn down before its handshake
 * completed), the reason label of cp2p_noise_handshake_failures_total. */
typedef enum {
    CP2P__NOISE_FAIL_TIMEOUT,   /* timeout: the handshake or the upgrade timed out */
    CP2P__NOISE_FAIL_PEER_ID,   /* peer_id: the remote is not the peer we dialled */
    CP2P__NOISE_FAIL_SIGNATURE, /* signature: the identity signature does not verify */
    CP2P__NOISE_FAIL_PROTOCOL,  /* protocol: malformed, decryption failed, no common muxer */
    CP2P__NOISE_FAIL_CLOSED,    /* closed: the connection closed or failed during it */
    CP2P__NOISE_FAIL_OTHER,     /* other: out of memory, ... */
    CP2P__NOISE_FAIL_COUNT
} cp2p__noise_fail;

/* Counters of the host (exported by host_metrics.c). */
typedef struct cp2p__host_stats {
    uint64_t conns_opened, conns_closed, inbound_refused, upgrade_failed;
    uint64_t streams_opened, streams_refused, negotiation_failed, protocol_errors;
    uint64_t streams_over_protocol_limit;
    uint64_t negotiation_output_deferred; /* an mss reply that waited behind other streams */
    uint64_t streams_opened_lazy;  /* outbound streams opened before the peer's echo */
    uint64_t lazy_refused;         /* ... whose peer then answered "na" (in negotiation_failed) */
    uint64_t conns_over_peer_limit, conns_trimmed; /* connmgr_uv.c */
    uint64_t noise_handshakes;                     /* Noise handshakes completed */
    uint64_t noise_failures[CP2P__NOISE_FAIL_COUNT];
} cp2p__host_stats;

/* Application bytes per negotiated protocol (conn_uv.c): read = delivered to the stream's reader,
 * written = taken by yamux from the stream's write queue (multistream-select bytes excluded).
 * Rows are only appended, for the protocols of the host's streams (its own handlers and the
 * protocols it opened), up to CP2P__HOST_PROTO_STATS_MAX; later protocols, and IDs longer than
 * CP2P__HOST_PROTO_NAME_MAX bytes, are counted in the last row (name "", exported as
 * "_other"). */
#define CP2P__HOST_PROTO_STATS_MAX 64
#define CP2P__HOST_PROTO_NAME_MAX 128
typedef struct cp2p__host_proto_stats {
    char name[CP2P__HOST_PROTO_NAME_MAX + 1];
    uint64_t bytes_read, bytes_written;
} cp2p__host_proto_stats;

struct cp2p_host {
    uv_loop_t *loop;
    cp2p_host_config cfg;
    char *agent_version, *protocol_version;
    cp2p_privkey *key;
    cp2p_peer_id id;
    swarm_listener listeners[CP2P_HOST_MAX_LISTENERS];
    size_t nlisteners;
    /* Handler table: names never move or disappear until the host is freed, so multistream
     * listeners can borrow the array; removal only clears `active`. */
    const char *proto_names[CP2P_MSS_MAX_SUPPORTED];
    swarm_handler handlers[CP2P_MSS_MAX_SUPPORTED];
    size_t nprotos;
    cp2p_conn *conns; /* doubly linked list of live connections */
    size_t nconns, npending_inbound;
    /* The one read buffer of all the host's connections (CP2P_CONN_READ_CHUNK, allocated at the
     * first read): a read is fed to its connection's core at once, and the core keeps only a
     * frame cut by the read, so an idle connection holds no read buffer. */
    uint8_t *read_buf;
    swarm_dial *dials; /* transport dials in flight */
    cp2p__transport *tcp; /* always */
    cp2p__transport *mem; /* when cfg.memnet is set */
    cp2p_event_cb event_cb;
    void *event_ud;
    uint64_t next_conn_id;
    bool closing;
    cp2p_host_close_cb close_cb;
    void *close_ud;
    uv_idle_t close_idle; /* polls for the last connection to go */
    cp2p__host_stats stats;
    /* Per-protocol stream bytes: nproto_stats rows in use, then the overflow row at
     * [CP2P__HOST_PROTO_STATS_MAX]. */
    cp2p__host_proto_stats proto_stats[CP2P__HOST_PROTO_STATS_MAX + 1];
    size_t nproto_stats;
    /* The yamux counters of the connections already torn down (conn_teardown adds each
     * session's before freeing it): with the live sessions', host-wide totals. */
    cp2p__yamux_stats yamux_closed;
    uint64_t refused_log_at, refused_unlogged; /* rate limit of the refusal log line */
    cp2p_peerstore *peerstore;
    uv_timer_t ps_timer;  /* periodic flush and gc of the peerstore */
    bool ps_timer_open;   /* until its close callback ran */
    cp2p__dialer *dialer; /* dials by peer ID (dialer_uv.c) */
    /* Connection manager (connmgr_uv.c): admission, per-IP counts, trimming. */
    cp2p__connmgr *cm;
    /* Upgraded connections by peer: the map holds each peer's most recent one, the others
     * chain from it through peer_next (newest first). Lookups by peer (cp2p_host_conn_to, the
     * per-peer limit, services) cost the peer's connections, not the host's. */
    cp2p_hashmap peer_conns;
    size_t nopen;           /* upgraded connections not yet torn down */
    uv_timer_t cm_timer;    /* trim check: every CP2P_CONNMGR_CHECK_MS, and at once when over */
    bool cm_timer_open;
    host_persist *persist;  /* persistent peers, redialed when they drop */
    size_t npersist;
    uv_timer_t persist_timer; /* the next redial of a persistent peer */
    bool persist_timer_open;
    uv_timer_t reconnect_timer; /* 0 ms after start: redial known peers (reconnect_known_peers) */
    bool reconnect_timer_open;
    /* Services (service_uv.c): slots never move while the host lives (a slot's index is the
     * service's bit in each connection's svc_bits); a removed service leaves NULL. */
    struct cp2p_service **services;
    size_t nservices, services_cap;
    size_t services_live;   /* registered and not done closing */
    uv_timer_t svc_timer;   /* deferred work: first sync of new services, the close phases */
    bool svc_timer_open;
    bool svc_sync;          /* a new service waits for its first sync */
    bool conns_closed;      /* close phase 2 (connections) started */
};

typedef enum {
    CONN_UPGRADING, /* the core negotiates security and the muxer */
    CONN_OPEN,      /* yamux running */
    CONN_CLOSED,    /* terminal: handles closing, waiting for the application's streams */
} conn_stage;

struct cp2p_conn {
    cp2p_host *host;
    cp2p_conn *next, *prev;
    cp2p_conn *peer_next, *peer_prev; /* the peer's other connections (h->peer_conns) */
    bool peer_indexed;
    uint64_t id;
    bool outbound;
    conn_stage stage;
    cp2p__tconn *t;         /* the byte stream (TCP or memory), NULL once closed */
    uv_timer_t timer;
    int handles_open;       /* byte stream + timer until their close callbacks ran */
    cp2p__conn_core *core;  /* the pipeline and the session, sans-I/O (conn_core.h) */
    cp2p__yamux *yamux;     /* the core's session once OPEN (owned by the core), else NULL */
    cp2p_peer_id peer;
    cp2p_pubkey *peer_key;
    cp2p_multiaddr *remote_addr, *local_addr;
    cp2p_dial_cb dial_cb;
    void *dial_ud;
    cp2p_stream *streams;   /* every stream with a yamux stream or held by the app */
    cp2p_stream *deliver;   /* streams whose reading (re)started: delivered on the next run */
    size_t app_streams;     /* streams the application has not closed or reset */
    size_t write_inflight;  /* bytes in uv_write requests */
    size_t max_write_inflight; /* yamux output waits past this (CP2P_CONN_MAX_WRITE_INFLIGHT) */
    /* The caps' maxima (the host's, or cp2p_conn_set_send_buffers'), and the send rate that
     * lowers them (CP2P_CONN_QUEUE_US): completed write bytes over time with writes in flight. */
    size_t cap_out_max, cap_inflight_max;
    uint64_t rate_from_us, rate_acc_bytes, rate_acc_us, rate_bps;
    /* Streams share the connection until shared_until_ms (CP2P_CONN_SHARED_MS after the
     * scheduler last served a stream other than last_served_id): the caps are then lower. */
    uint32_t last_served_id;
    uint64_t last_served_ms, shared_until_ms;
    bool shared;
    size_t queued_total;    /* bytes queued by this connection's stream writers */
    cp2p__sched sched;      /* streams with something for yamux (muxer/sched.h) */
    bool logged_protocol_limit;
    bool secured;           /* the Noise handshake completed (counted in the host's stats) */
    int in_run;             /* re-entrancy depth of conn_run */
    bool pending;           /* work was scheduled (conn_defer) */
    bool closing;           /* close requested; torn down when conn_run unwinds */
    bool upgraded;          /* yamux running: counted in nconns, CONN_OPENED sent */
    bool shutting_down;     /* uv_shutdown in flight before the close */
    bool goaway_received;   /* the peer sent GoAway: it takes no new stream (js-libp2p closes
                             * one of two connections between the same peers this way) */
    int close_err;
    const char *close_why;
    /* identify, set by the identify protocol */
    void *identify;         /* cp2p__identify_msg *, owned */
    cp2p_identify_info identify_view;
    void (*identify_free)(void *);
    /* connection manager (connmgr_uv.c) */
    uint8_t ip[16];         /* remote IP, counted in the connmgr's per-IP table */
    uint8_t iplen;          /* 4 or 16; 0 when not counted */
    int32_t tag;            /* cp2p_conn_set_tag */
    uint64_t opened_ms;     /* loop time of the upgrade */
    uint64_t last_active_ms; /* loop time of the last stream opened or data delivered */
    /* services: bit i set when the connection makes its peer ready for service slot i */
    uint8_t *svc_bits;
    size_t svc_bits_len;    /* bytes */
};

/* The most recent upgraded connection to `peer` (closing and closed ones included, until freed), the others through
 * peer_next; NULL when none. */
cp2p_conn *cp2p__host_peer_conns(const cp2p_host *h, const cp2p_peer_id *peer);
/* Take a connection out of that index: when it is freed (until then lookups by peer see it,
 * as services must while its close is being reported). */
void cp2p__host_peer_index_remove(cp2p_conn *c);

/* ---- conn_uv.c ---- */
/* Whether the peer's identify (so far) lists `proto`. */
bool cp2p__conn_peer_lists(const cp2p_conn *c, const char *proto);

/* ---- host_uv.c ---- */
void cp2p__host_emit(cp2p_host *h, cp2p_event_type type, cp2p_conn *c, int err, const char *why);
bool cp2p__host_handler_active(void *host, size_t idx);
/* cp2p_host_set_handler with a per-connection inbound stream limit (0 = the host's) that
 * refuses to replace an active handler (CP2P_ESTATE). */
CP2P_NODISCARD int cp2p__host_add_handler(cp2p_host *h, const char *protocol,
                                          cp2p_stream_handler cb, void *ud,
                                          uint32_t max_inbound);
/* The stream priority a live service declared for `protocol` (cp2p_service_desc
 * stream_priority), or 0 for none. */
unsigned cp2p__host_protocol_priority(const cp2p_host *h, const char *protocol);
/* Close phase 2: the connections, then the handles (services are done). */
void cp2p__host_close_conns(cp2p_host *h);

/* ---- identify/identify.c: the host's own identify and push (registered by the host) ---- */
CP2P_NODISCARD int cp2p__identify_register(cp2p_host *h);
/* Every host event, public and internal, before the services and the application: identify
 * asks new connections who they are and pushes when the handler set changed. */
void cp2p__identify_on_event(cp2p_host *h, const cp2p_event *ev);

/* ---- service_uv.c ---- */
CP2P_NODISCARD int cp2p__host_services_init(cp2p_host *h);
/* A host event: readiness of every service for ev->conn's peer may change. */
void cp2p__host_services_on_event(cp2p_host *h, const cp2p_event *ev);
/* cp2p_host_close: services close (their callbacks from the loop), then the connections. */
void cp2p__host_services_close(cp2p_host *h);
/* True once the services' timer is closed. */
bool cp2p__host_services_idle(const cp2p_host *h);
void cp2p__host_services_free(cp2p_host *h);
/* A connection is freed: drop its service bits. */
void cp2p__conn_services_free(cp2p_conn *c);
const cp2p__host_stats *cp2p__host_stats_get(const cp2p_host *h);

/* Wall-clock milliseconds since the Unix epoch (CLOCK_REALTIME): the peerstore's `now`, which
 * must survive a restart (uv_now does not). */
uint64_t cp2p__host_wall_ms(void);
/* cp2p_host_dial with the peerstore bookkeeping chosen by the caller: `from_dialer` dials
 * (an address already in the peerstore, failures counted per peer dial by the dialer) neither
 * re-add the address nor record a failure. */
CP2P_NODISCARD int cp2p__host_dial(cp2p_host *h, const cp2p_multiaddr *ma, bool from_dialer,
                                   cp2p_dial_cb cb, void *ud);
/* Cancel the host dial started with user data `ud` (TCP connect or upgrade): its callback runs
 * with CP2P_ECANCELED, possibly before this returns. No effect when there is none. */
void cp2p__host_dial_cancel(cp2p_host *h, void *ud);

/* ---- dialer_uv.c ---- */
CP2P_NODISCARD int cp2p__dialer_new(cp2p_host *h, cp2p__dialer **out);
/* Host closing: every dial by peer ID completes with CP2P_ECANCELED; timers start closing. */
void cp2p__dialer_close(cp2p__dialer *d);
/* True once every handle of the dialer is closed (the host may be freed). */
bool cp2p__dialer_idle(const cp2p__dialer *d);
void cp2p__dialer_free(cp2p__dialer *d);
/* Loop time at which the peer's dial backoff ends, or 0 when it is not in backoff. */
uint64_t cp2p__dialer_backoff_until(const cp2p__dialer *d, const cp2p_peer_id *peer);

/* ---- connmgr_uv.c: the connection manager and persistent peers, wired into the host ---- */
/* Create the connmgr from the host config (before any handle exists). Returns 0, CP2P_EINVAL
 * (low water above high water), CP2P_ENOMEM. */
CP2P_NODISCARD int cp2p__host_cm_new(cp2p_host *h);
/* Start the trim check and redial timers (they close in cp2p__host_cm_close). */
void cp2p__host_cm_start(cp2p_host *h);
void cp2p__host_cm_close(cp2p_host *h);
bool cp2p__host_cm_idle(const cp2p_host *h);
void cp2p__host_cm_free(cp2p_host *h);
/* Inbound admission (rate, per-IP): 0 or CP2P_ELIMIT with *why set, counted by the connmgr.
 * A byte stream without an IP (memory) is not counted per IP; the rate limit still applies. */
CP2P_NODISCARD int cp2p__host_cm_admit(cp2p_host *h, cp2p__tconn *sock, const char **why);
/* A connection started (either direction): count its IP. */
void cp2p__host_conn_track(cp2p_conn *c);
/* A connection is being torn down: uncount its IP, redial a persistent peer. */
void cp2p__host_conn_untrack(cp2p_conn *c);
/* Before the upgrade completes: 0, or CP2P_ELIMIT after closing c (logged and counted) when
 * the host already has max_conns_per_peer open connections to its peer. */
CP2P_NODISCARD int cp2p__host_conn_peer_check(cp2p_conn *c);
/* The upgrade completed: stamp the times, check the high water mark. */
void cp2p__host_conn_upgraded(cp2p_conn *c);
/* Run the trim check now (also what the timer does). Returns how many were closed. */
size_t cp2p__host_cm_trim(cp2p_host *h);
const cp2p__connmgr_stats *cp2p__host_cm_stats(const cp2p_host *h);

/* The most recent upgraded connection to `peer` (closing and closed ones included, until freed), the others through
 * peer_next; NULL when none. */
cp2p_conn *cp2p__host_peer_conns(const cp2p_host *h, const cp2p_peer_id *peer);
/* Take a connection out of that index: when it is freed (until then lookups by peer see it,
 * as services must while its close is being reported). */
void cp2p__host_peer_index_remove(cp2p_conn *c);

/* ---- conn_uv.c ---- */
/* Take over an accepted or dialed byte stream and start the upgrade. On failure the stream is
 * closed and NULL returned (the dial callback, if any, is the caller's to call). */
cp2p_conn *cp2p__conn_start(cp2p_host *h, cp2p__tconn *sock, bool outbound,
                            const cp2p_peer_id *expected, cp2p_dial_cb cb, void *ud);
/* Close with a reason (err 0 = local close). Safe to call more than once and from callbacks. */
void cp2p__conn_close(cp2p_conn *c, int err, const char *why);
/* Stop or resume reading c's socket (the peer's bytes wait in the kernel, then the peer's TCP
 * send buffer). Tests use it to hold a connection's output at its caps. */
int cp2p__conn_set_read_paused(cp2p_conn *c, bool paused);
/* The yamux counters summed over the host's connections: those torn down and the live ones. */
void cp2p__host_yamux_totals(const cp2p_host *h, cp2p__yamux_stats *out);
/* Replace the identify data of c (takes ownership of `msg`, freed with `free_fn`). */
void cp2p__conn_set_identify(cp2p_conn *c, void *msg, const cp2p_identify_info *view,
                             void (*free_fn)(void *));

#endif
