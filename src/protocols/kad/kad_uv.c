/* The Kademlia DHT on the host (see cp2p/kad.h): the binding that drives the sans-I/O cores
 * (kad_rt: routing table, kad_lookup: iterative lookups, kad_store: records and providers,
 * kad_msg: the wire message, kad_handler: answers to inbound requests) with streams, dials,
 * pings and a timer. The handler sees the peerstore and the host only through the
 * cp2p__kad_dir implemented here (dir_*), which the operations' results use too.
 *
 * Outbound queries use request-response in length-prefixed mode (one stream per request, as
 * js-libp2p does); ADD_PROVIDER has no answer, so it is written on its own stream and closed.
 * Inbound streams may carry several requests one after another (the spec requires it; go
 * reuses streams). Every asynchronous context (query, one-way send, liveness check, bootstrap
 * dial) is its own allocation that points back to the DHT; cp2p_kad_close() detaches them, so
 * their callbacks, which the host still runs later, only free themselves. */
#include <string.h>

#include <sodium.h>

#include <cp2p/codec.h>
#include <cp2p/kad.h>
#include <cp2p/multiformats.h>
#include <cp2p/protocols.h>
#include <cp2p/reqresp.h>
#include <cp2p/service.h>

#include "protocols/kad/kad_handler.h"
#include "protocols/kad/kad_lookup.h"
#include "protocols/kad/kad_op.h"
#include "protocols/kad/kad_msg.h"
#include "protocols/kad/kad_rt.h"
#include "protocols/kad/kad_store.h"
#include "util/alloc.h"
#include "util/clock.h"
#include "util/frame.h"
#include "util/limits.h"
#include "util/log_internal.h"

#define KLOG(lvl, ...) CP2P_LOG(CP2P_LOG_##lvl, "kad", 0, __VA_ARGS__)

typedef struct kad_op kad_op;
typedef struct kad_query kad_query;

/* An operation in flight: its core (kad_op.c: lookup, stop rules, store phase, status) and
 * what the binding needs to send its messages and deliver its result. */
struct kad_op {
    kad_op *next, *prev;
    cp2p_kad *kad;
    cp2p__kad_op *core;
    cp2p__kad_op_type type;
    cp2p_peer_id target;   /* CP2P__KAD_OP_FIND_PEER */
    uint8_t *value;        /* CP2P__KAD_OP_PUT */
    size_t value_len;
    void *cb;
    void *ud;
    bool is_bootstrap;     /* CP2P__KAD_OP_REFRESH started by a bootstrap: report to bootstrap_cb */
    bool finished;         /* result delivered */
    unsigned refresh_cpl;  /* CP2P__KAD_OP_REFRESH of a bucket: the bucket (UINT32_MAX for self) */
};

/* One outbound request (or one-way message) to one peer. */
struct kad_query {
    kad_query *next, *prev;
    cp2p_kad *kad;         /* NULL once the DHT closed */
    kad_op *op;            /* NULL when the op no longer waits for it */
    cp2p_peer_id peer;
    uint8_t *msg;          /* the encoded request (no prefix for reqresp; prefixed one-way) */
    size_t msg_len;
    bool one_way;          /* written and closed, no answer (ADD_PROVIDER) */
    bool store;            /* a message of the PUT / PROVIDE phase */
    bool deferred;         /* the host's dialer was full (CP2P_EFULL): dial again at the next
                              tick, until the lookup gives up on this peer */
};

/* A liveness check: dial if needed, then ping. */
typedef struct kad_check {
    struct kad_check *next, *prev;
    cp2p_kad *kad;
    cp2p_peer_id peer;
    unsigned pings;       /* pings sent: a slow answer gets a second chance */
} kad_check;

/* An inbound stream being served. */
typedef struct kad_srv {
    struct kad_srv *next, *prev;
    cp2p_kad *kad;
    cp2p_stream *s;
    cp2p_peer_id from;
    cp2p_buf in;
} kad_srv;

/* A key we provide, re-announced periodically. */
typedef struct provided {
    struct provided *next;
    uint8_t *key;
    size_t key_len;
    uint64_t next_ms;
} provided;

struct cp2p_kad {
    cp2p_host *h;
    cp2p_service *svc;
    cp2p_kad_config cfg;
    char *protocol;
    bool server;
    cp2p_peer_id self;
    cp2p__kad_rt *rt;
    cp2p__kad_store *store;
    cp2p__kad_dir dir;           /* the peerstore and the host, for the handler and results */
    cp2p__kad_handler *handler;  /* answers inbound requests */
    cp2p_multiaddr **boot;
    size_t nboot;
    uv_timer_t *timer;       /* heap: it outlives the DHT until its close callback */
    kad_op *ops;
    size_t nops;             /* operations in flight, at most CP2P_KAD_MAX_OPS */
    kad_query *queries;
    kad_check *checks;
    size_t nchecks;
    kad_srv *srvs;
    provided *provided;
    uint64_t next_refresh_ms, next_purge_ms, last_bootstrap_ms, next_sweep_ms;
    size_t boot_pending;     /* bootstrap dials in flight */
    cp2p_kad_bootstrap_cb boot_cb;
    void *boot_ud;
    bool boot_cb_set;
    cp2p__kad_key self_key;
    cp2p_kad_stats stats;
    uint64_t rng;
};

/* ---- small helpers ---- */

#define LIST_ADD(head, e)                                                                     \
    do {                                                                                      \
        (e)->prev = NULL;                                                                     \
        (e)->next = (head);                                                                   \
        if ((head) != NULL) {                                                                 \
            (head)->prev = (e);                                                               \
        }                                                                                     \
        (head) = (e);                                                                         \
    } while (0)
#define LIST_DEL(head, e)                                                                     \
    do {                                                                                      \
        if ((e)->prev != NULL) {                                                              \
            (e)->prev->next = (e)->next;                                                      \
        } else {                                                                              \
            (head) = (e)->next;                                                               \
        }                                                                                     \
        if ((e)->next != NULL) {                                                              \
            (e)->next->prev = (e)->prev;                                                      \
        }                                                                                     \
        (e)->next = (e)->prev = NULL;                                                         \
    } while (0)

static uint64_t kad_now(const cp2p_kad *kad)
{
    return uv_now(cp2p_host_loop(kad->h));
}

static uint64_t kad_rand(void *ud)
{
    (void)ud;
    uint64_t v;
    randombytes_buf(&v, sizeof(v));
    return v;
}

static const char *pstr(const cp2p_peer_id *p, char buf[CP2P_PEER_ID_STR_MAX])
{
    return cp2p_peer_id_str(p, buf);
}

void cp2p_kad_config_default(cp2p_kad_config *c)
{
    *c = (cp2p_kad_config){
        .protocol = CP2P_KAD_PROTOCOL,
        .mode = CP2P_KAD_MODE_AUTO,
        .k = CP2P_KAD_K,
        .alpha = CP2P_KAD_ALPHA,
        .query_timeout_ms = CP2P_KAD_QUERY_TIMEOUT_MS,
        .lookup_timeout_ms = CP2P_KAD_LOOKUP_TIMEOUT_MS,
        .refresh_interval_ms = CP2P_KAD_REFRESH_INTERVAL_MS,
        .max_per_group_bucket = CP2P_KAD_MAX_PER_GROUP_BUCKET,
        .max_per_group_table = CP2P_KAD_MAX_PER_GROUP_TABLE,
        .republish_interval_ms = CP2P_KAD_REPUBLISH_INTERVAL_MS,
        .requests_per_sec = CP2P_KAD_REQUESTS_PER_SEC,
        .requests_burst = CP2P_KAD_REQUESTS_BURST,
    };
}

int cp2p_kad_accept_any(void *ud, const uint8_t *key, size_t key_len, const uint8_t *value,
                        size_t value_len)
{
    (void)ud, (void)key, (void)key_len, (void)value, (void)value_len;
    return 0;
}

/* ---- the directory (cp2p__kad_dir): what the peerstore and the host know of peers ---- */

static size_t dir_addrs(void *ud, const cp2p_peer_id *p, const cp2p_multiaddr **out, size_t max)
{
    cp2p_kad *kad = ud;
    cp2p_peerstore_addr a[CP2P_KAD_MAX_ADDRS_PER_PEER];
    if (max > CP2P_KAD_MAX_ADDRS_PER_PEER) {
        max = CP2P_KAD_MAX_ADDRS_PER_PEER;
    }
    size_t na = cp2p_peerstore_addrs(cp2p_host_peerstore(kad->h), p, cp2p__wall_ms(), a, max);
    if (na > max) {
        na = max;
    }
    size_t n = 0;
    for (size_t j = 0; j < na; j++) {
        /* The far end of an inbound connection is usually an ephemeral port nobody can dial:
         * never pass it on. */
        if (a[j].source != CP2P_ADDR_SOURCE_INBOUND) {
            out[n++] = a[j].addr; /* borrowed */
        }
    }
    return n;
}

static bool dir_known(void *ud, const cp2p_peer_id *p)
{
    cp2p_kad *kad = ud;
    return cp2p_peerstore_addrs(cp2p_host_peerstore(kad->h), p, cp2p__wall_ms(), NULL, 0) > 0;
}

static bool dir_connected(void *ud, const cp2p_peer_id *p)
{
    cp2p_kad *kad = ud;
    return cp2p_host_conn_to(kad->h, p) != NULL;
}

/* Our own addresses (the peerstore has none of ours), owned copies. */
static size_t dir_self_addrs(void *ud, cp2p_multiaddr **out, size_t max)
{
    cp2p_kad *kad = ud;
    ptrdiff_t na = cp2p_host_addrs(kad->h, false, out, max);
    return na > 0 ? (size_t)na : 0;
}

/* Addresses of a peer named in a message go to the peerstore (spec: "Any time a relevant Peer
 * record is encountered, the associated multiaddrs are stored in the node's peerbook"). */
static void dir_learn(void *ud, const cp2p__kad_peer *p)
{
    cp2p_kad *kad = ud;
    if (p->n_addrs == 0 || cp2p_peer_id_equal(&p->id, &kad->self)) {
        return;
    }
    (void)!cp2p_peerstore_add_addrs(cp2p_host_peerstore(kad->h), &p->id,
                                    (const cp2p_multiaddr *const *)p->addrs, p->n_addrs,
                                    CP2P_KAD_ADDR_TTL_MS, CP2P_ADDR_SOURCE_DHT,
                                    cp2p__wall_ms());
}

static int encode_lp(const cp2p__kad_msg *m, bool prefixed, uint8_t **out, size_t *len)
{
    cp2p_buf b, body;
    int rc;
    cp2p_buf_init(&body, CP2P_KAD_MAX_MSG);
    if ((rc = cp2p__kad_msg_encode(m, &body)) != 0) {
        cp2p_buf_fini(&body);
        return rc;
    }
    if (!prefixed) {
        *len = cp2p_buf_take(&body, out);
        return 0;
    }
    cp2p_buf_init(&b, CP2P_KAD_MAX_MSG + CP2P_UVARINT_MAX);
    if ((rc = cp2p_uvarint_append(&b, body.len)) != 0 ||
        (rc = cp2p_buf_append(&b, body.ptr, body.len)) != 0) {
        cp2p_buf_fini(&b);
        cp2p_buf_fini(&body);
        return rc;
    }
    cp2p_buf_fini(&body);
    *len = cp2p_buf_take(&b, out);
    return 0;
}

/* ---- routing table upkeep ---- */

static void check_start(cp2p_kad *kad, const cp2p_peer_id *p);

static void rt_add(cp2p_kad *kad, const cp2p_peer_id *p, const cp2p_multiaddr *addr)
{
    cp2p_peer_id check;
    char b[CP2P_PEER_ID_STR_MAX];
    size_t before = cp2p__kad_rt_size(kad->rt);
    int r = cp2p__kad_rt_add(kad->rt, p, addr, kad_now(kad), &check);
    if (r == CP2P__KAD_RT_ADDED) {
        kad->stats.table_added++;
        KLOG(DEBUG, "table: added %s (%zu peers)", pstr(p, b), before + 1);
    } else if (r == CP2P__KAD_RT_CHECK) {
        check_start(kad, &check);
    } else if (r == CP2P__KAD_RT_DIVERSITY) {
        kad->stats.table_refused_diversity++;
    }
}

static void rt_remove(cp2p_kad *kad, const cp2p_peer_id *p)
{
    if (cp2p__kad_rt_remove(kad->rt, p)) {
        kad->stats.table_removed++;
    }
}

static void check_free(kad_check *c)
{
    if (c->kad != NULL) {
        LIST_DEL(c->kad->checks, c);
        c->kad->nchecks--;
    }
    cp2p_free(c);
}

static void check_done(kad_check *c, bool alive)
{
    cp2p_kad *kad = c->kad;
    if (kad != NULL) {
        char b[CP2P_PEER_ID_STR_MAX];
        if (!alive) {
            kad->stats.liveness_failed++;
            KLOG(DEBUG, "liveness check failed: %s removed", pstr(&c->peer, b));
        }
        if (cp2p__kad_rt_check_done(kad->rt, &c->peer, alive, kad_now(kad))) {
            kad->stats.table_removed++;
        }
    }
    check_free(c);
}

static void check_ping(kad_check *c, cp2p_conn *conn);

static void on_check_ping(cp2p_conn *conn, int status, uint64_t rtt_ns, void *ud)
{
    kad_check *c = ud;
    (void)rtt_ns;
    /* A ping that timed out on a live connection is retried once (a busy peer is not a dead
     * one); a reset, a closed connection or a second time-out is final. */
    if (status == CP2P_ETIMEDOUT && c->kad != NULL && c->pings < CP2P_KAD_CHECK_PINGS &&
        cp2p_host_conn_to(c->kad->h, &c->peer) == conn) {
        check_ping(c, conn);
        return;
    }
    check_done(c, status == 0);
}

static void check_ping(kad_check *c, cp2p_conn *conn)
{
    c->pings++;
    if (cp2p_ping(conn, c->kad->cfg.query_timeout_ms, on_check_ping, c) != 0) {
        check_done(c, false);
    }
}

static void on_check_dialed(cp2p_host *h, int status, cp2p_conn *conn, void *ud)
{
    kad_check *c = ud;
    (void)h;
    if (c->kad == NULL || status != 0) {
        if (c->kad == NULL) {
            check_free(c);
        } else {
            check_done(c, false);
        }
        return;
    }
    check_ping(c, conn);
}

/* Is `p` alive? Ping it (dialing first when not connected); the table learns the answer. */
static void check_start(cp2p_kad *kad, const cp2p_peer_id *p)
{
    for (kad_check *c = kad->checks; c != NULL; c = c->next) {
        if (cp2p_peer_id_equal(&c->peer, p)) {
            return;
        }
    }
    if (kad->nchecks >= CP2P_KAD_MAX_CHECKS) {
        return; /* the next failure or full bucket asks again */
    }
    kad_check *c = cp2p_calloc(1, sizeof(*c));
    if (c == NULL) {
        return;
    }
    c->kad = kad;
    c->peer = *p;
    LIST_ADD(kad->checks, c);
    kad->nchecks++;
    kad->stats.liveness_checks++;
    cp2p_conn *conn = cp2p_host_conn_to(kad->h, p);
    if (conn != NULL) {
        check_ping(c, conn);
        return;
    }
    if (cp2p_host_dial_peer(kad->h, p, on_check_dialed, c) != 0) {
        check_done(c, false);
    }
}

/* ---- operations ---- */

static void op_pump(kad_op *op);
static void on_timer(uv_timer_t *t);

static void query_free(kad_query *q)
{
    if (q->kad != NULL) {
        LIST_DEL(q->kad->queries, q);
    }
    cp2p_free(q->msg);
    cp2p_free(q);
}

/* A query failed: its op forgets the peer, the table checks it. */
static void query_failed(kad_query *q, int status)
{
    cp2p_kad *kad = q->kad;
    kad_op *op = q->op;
    if (kad != NULL) {
        char b[CP2P_PEER_ID_STR_MAX];
        kad->stats.queries_failed++;
        KLOG(DEBUG, "query to %s failed: %s", pstr(&q->peer, b), cp2p_strerror(status));
        if (cp2p__log_enabled(CP2P_LOG_DEBUG, "kad")) {
            cp2p_peerstore_addr a[8];
            size_t na = cp2p_peerstore_addrs(cp2p_host_peerstore(kad->h), &q->peer,
                                             cp2p__wall_ms(), a, 8);
            for (size_t i = 0; i < na && i < 8; i++) {
                cp2p_buf t;
                cp2p_buf_init(&t, CP2P_MULTIADDR_STR_MAX);
                if (cp2p_multiaddr_to_string(a[i].addr, &t) == 0) {
                    KLOG(DEBUG, "  known address %s (source %d)", (const char *)t.ptr,
                         (int)a[i].source);
                }
                cp2p_buf_fini(&t);
            }
        }
        if (cp2p__kad_rt_contains(kad->rt, &q->peer)) {
            check_start(kad, &q->peer);
        }
    }
    if (op != NULL) {
        cp2p__kad_op_on_failure(op->core, &q->peer, q->store, kad_now(op->kad));
        query_free(q);
        op_pump(op);
        return;
    }
    query_free(q);
}

static void on_query_response(cp2p_conn *conn, int status, const uint8_t *resp, size_t len,
                              void *ud)
{
    kad_query *q = ud;
    cp2p__kad_msg m;
    const char *why = NULL;
    if (q->kad == NULL) {
        query_free(q);
        return;
    }
    if (status != 0) {
        if (status == CP2P_ELIMIT || status == CP2P_EPROTO) {
            /* reqresp refused the answer's framing (length prefix over CP2P_KAD_MAX_MSG, bad
             * varint, truncated): a bad answer, as one that does not decode. */
            char b[CP2P_PEER_ID_STR_MAX];
            KLOG(INFO, "bad answer from %s: %s", pstr(&q->peer, b), cp2p_strerror(status));
            q->kad->stats.requests_bad++;
        }
        query_failed(q, status);
        return;
    }
    if (cp2p__kad_msg_decode(resp, len, &m, &why) != 0) {
        char b[CP2P_PEER_ID_STR_MAX];
        KLOG(INFO, "bad answer from %s: %s", pstr(&q->peer, b), why ? why : "?");
        q->kad->stats.requests_bad++;
        query_failed(q, CP2P_EPROTO);
        return;
    }
    cp2p_kad *kad = q->kad;
    kad_op *op = q->op;
    /* It answered on the DHT protocol, so it is a server: table candidate. */
    rt_add(kad, &q->peer, conn != NULL ? cp2p_conn_remote_addr(conn) : NULL);
    cp2p__kad_rt_seen(kad->rt, &q->peer, kad_now(kad));
    kad->stats.closer_dropped += m.dropped_peers;
    for (size_t i = 0; i < m.n_closer; i++) {
        dir_learn(kad, &m.closer[i]);
    }
    for (size_t i = 0; i < m.n_providers; i++) {
        dir_learn(kad, &m.providers[i]);
    }
    if (op != NULL && q->store) {
        /* PUT phase: the echo of our record means stored. */
        cp2p__kad_op_on_stored(op->core, &q->peer, m.type == CP2P__KAD_PUT_VALUE);
    } else if (op != NULL) {
        /* Only a GET keeps records: validate (a namespace validator may verify a signature)
         * only there. */
        bool record_ok = op->type == CP2P__KAD_OP_GET && m.has_record &&
                         cp2p__kad_store_validate(kad->store, m.record.key, m.record.key_len,
                                                  m.record.value, m.record.value_len) == 0;
        (void)!cp2p__kad_op_on_answer(op->core, &q->peer, &m, record_ok, kad_now(kad));
    }
    cp2p__kad_msg_fini(&m);
    query_free(q);
    if (op != NULL) {
        op_pump(op);
    }
}

static int query_send(kad_query *q, cp2p_conn *conn);

static void on_query_dialed(cp2p_host *h, int status, cp2p_conn *conn, void *ud)
{
    kad_query *q = ud;
    (void)h;
    if (q->kad == NULL) {
        query_free(q);
        return;
    }
    if (status != 0) {
        query_failed(q, status);
        return;
    }
    int rc = query_send(q, conn);
    if (rc != 0) {
        query_failed(q, rc);
    }
}

/* One-way sends: open, write, close; the write's result is the outcome. */
static void on_oneway_written(cp2p_stream *s, int status, void *ud)
{
    kad_query *q = ud;
    (void)s;
    if (q->kad == NULL || q->op == NULL) {
        query_free(q);
        return;
    }
    kad_op *op = q->op;
    cp2p__kad_op_on_stored(op->core, &q->peer, status == 0);
    query_free(q);
    op_pump(op);
}

static void on_oneway_open(cp2p_stream *s, int status, void *ud)
{
    kad_query *q = ud;
    if (status != 0) {
        if (q->kad == NULL) {
            query_free(q);
        } else {
            query_failed(q, status);
        }
        return;
    }
    int rc = cp2p_stream_write(s, q->msg, q->msg_len, on_oneway_written, q);
    cp2p_stream_close(s);
    if (rc != 0) {
        if (q->kad == NULL) {
            query_free(q);
        } else {
            query_failed(q, rc);
        }
    }
}

static int query_send(kad_query *q, cp2p_conn *conn)
{
    cp2p_kad *kad = q->kad;
    kad->stats.queries_out++;
    if (q->one_way) {
        const char *protos[] = {kad->protocol};
        return cp2p_conn_open_stream(conn, protos, 1, on_oneway_open, q);
    }
    cp2p_reqresp_config rc;
    cp2p_reqresp_config_default(&rc);
    rc.length_prefixed = true;
    /* js kad-dht servers reset a stream whose write side closed, possibly on top of their
     * answer: keep ours open until the answer is read (js requesters do the same). */
    rc.keep_write_open = true;
    rc.max_request_bytes = CP2P_KAD_MAX_MSG;
    rc.max_response_bytes = CP2P_KAD_MAX_MSG;
    rc.timeout_ms = kad->cfg.query_timeout_ms;
    return cp2p_reqresp_request(conn, kad->protocol, &rc, q->msg, q->msg_len, on_query_response,
                                q);
}

/* Send `m` to `peer` for `op`, dialing first when not connected. `store`: a message of the
 * PUT / PROVIDE phase (ADD_PROVIDER goes one way). Returns 0 (the outcome comes back through
 * query_failed / on_query_response / on_oneway_written) or an error (nothing started). */
static int query_start(kad_op *op, const cp2p_peer_id *peer, const cp2p__kad_msg *m, bool store)
{
    cp2p_kad *kad = op->kad;
    kad_query *q = cp2p_calloc(1, sizeof(*q));
    int rc;
    if (q == NULL) {
        return CP2P_ENOMEM;
    }
    q->kad = kad;
    q->op = op;
    q->peer = *peer;
    q->store = store;
    q->one_way = m->type == CP2P__KAD_ADD_PROVIDER;
    if ((rc = encode_lp(m, q->one_way, &q->msg, &q->msg_len)) != 0) {
        cp2p_free(q);
        return rc;
    }
    LIST_ADD(kad->queries, q);
    cp2p_conn *conn = cp2p_host_conn_to(kad->h, peer);
    if (conn != NULL) {
        rc = query_send(q, conn);
    } else {
        rc = cp2p_host_dial_peer(kad->h, peer, on_query_dialed, q);
        if (rc == CP2P_EFULL) {
            /* A burst of lookups can fill the dialer (max_peer_dials): not this peer's fault.
             * Wait for room rather than fail it; the lookup's query timeout still applies. */
            q->deferred = true;
            kad->stats.queries_deferred++;
            return 0;
        }
    }
    if (rc != 0) {
        query_free(q);
    }
    return rc;
}

/* Dial again for the deferred queries (from the timer); those the lookup gave up on go. */
static void retry_deferred(cp2p_kad *kad)
{
    for (kad_query *q = kad->queries, *next; q != NULL; q = next) {
        next = q->next;
        if (!q->deferred) {
            continue;
        }
        if (q->op == NULL) {
            query_free(q);
            continue;
        }
        cp2p_conn *conn = cp2p_host_conn_to(kad->h, &q->peer);
        int rc = conn != NULL ? query_send(q, conn)
                              : cp2p_host_dial_peer(kad->h, &q->peer, on_query_dialed, q);
        if (rc == CP2P_EFULL) {
            return; /* still full: the rest wait too */
        }
        q->deferred = false;
        if (rc != 0) {
            query_failed(q, rc); /* may free other deferred queries' ops: restart next tick */
            return;
        }
    }
}

/* Detach every query still running for op (their answers will be ignored). */
static void op_detach_queries(kad_op *op)
{
    for (kad_query *q = op->kad->queries; q != NULL; q = q->next) {
        if (q->op == op) {
            q->op = NULL;
        }
    }
}

static void op_free(kad_op *op)
{
    op_detach_queries(op);
    LIST_DEL(op->kad->ops, op);
    op->kad->nops--;
    cp2p__kad_op_free(op->core);
    cp2p_free(op->value);
    cp2p_free(op);
}

/* The closest answered peers as peer infos, closest first. */
static int op_result_peers(kad_op *op, cp2p__kad_peer_list *pl, bool keep_bare)
{
    cp2p_peer_id ids[CP2P_KAD_MAX_K];
    size_t n = cp2p__kad_op_closest(op->core, ids, op->kad->cfg.k);
    return cp2p__kad_peer_list_fill(&op->kad->dir, ids, n, keep_bare, pl);
}

/* The operation is over with `status`: the user callback, in the public types. */
static void op_deliver(kad_op *op, int status)
{
    cp2p_kad *kad = op->kad;
    cp2p__kad_peer_list pl = {0};
    cp2p__kad_op_stats st;
    cp2p__kad_op_stats_get(op->core, &st);
    kad->stats.values_invalid += st.values_invalid;
    kad->stats.lookups_timed_out += st.lookup_timed_out;
    switch (op->type) {
    case CP2P__KAD_OP_FIND_PEER: {
        cp2p_kad_peer_cb cb = (cp2p_kad_peer_cb)op->cb;
        /* The core ran the lookup; whether the target was found is what the directory (the
         * peerstore, fed by every answer) now knows of it. */
        if (status == 0 || status == CP2P_ETIMEDOUT) {
            status = dir_known(kad, &op->target) ? 0 : (status != 0 ? status : CP2P_ENOENT);
        }
        if (status == 0 &&
            (cp2p__kad_peer_list_fill(&kad->dir, &op->target, 1, false, &pl) != 0 || pl.n == 0)) {
            status = CP2P_ENOENT;
        }
        if (status == 0) {
            cp2p_kad_peer_info pi = {.id = op->target,
                                     .addrs = (const cp2p_multiaddr *const *)pl.peers[0].addrs,
                                     .n_addrs = pl.peers[0].n_addrs};
            cb(kad, 0, &pi, op->ud);
        } else {
            cb(kad, status, NULL, op->ud);
        }
        break;
    }
    case CP2P__KAD_OP_CLOSEST:
    case CP2P__KAD_OP_FIND_PROVIDERS: {
        cp2p_kad_peers_cb cb = (cp2p_kad_peers_cb)op->cb;
        int rc = status;
        if (rc == 0 && op->type == CP2P__KAD_OP_CLOSEST) {
            rc = op_result_peers(op, &pl, true);
        } else if (rc == 0) {
            size_t np;
            const cp2p_peer_id *prov = cp2p__kad_op_providers(op->core, &np);
            rc = cp2p__kad_peer_list_fill(&kad->dir, prov, np, true, &pl);
        }
        if (rc == 0 && pl.n == 0) {
            rc = CP2P_ENOENT;
        }
        if (rc != 0) {
            cb(kad, rc, NULL, 0, op->ud);
            break;
        }
        cp2p_kad_peer_info *pi = cp2p_calloc(pl.n, sizeof(*pi));
        if (pi == NULL) {
            cb(kad, CP2P_ENOMEM, NULL, 0, op->ud);
            break;
        }
        for (size_t i = 0; i < pl.n; i++) {
            pi[i] = (cp2p_kad_peer_info){.id = pl.peers[i].id,
                                         .addrs = (const cp2p_multiaddr *const *)pl.peers[i].addrs,
                                         .n_addrs = pl.peers[i].n_addrs};
        }
        cb(kad, 0, pi, pl.n, op->ud);
        cp2p_free(pi);
        break;
    }
    case CP2P__KAD_OP_GET: {
        cp2p_kad_value_cb cb = (cp2p_kad_value_cb)op->cb;
        const uint8_t *vals[CP2P_KAD_MAX_VALUES_PER_GET];
        size_t lens[CP2P_KAD_MAX_VALUES_PER_GET];
        size_t nv = cp2p__kad_op_values(op->core, vals, lens, CP2P_KAD_MAX_VALUES_PER_GET);
        if (status != 0 || nv == 0) {
            cb(kad, status != 0 ? status : CP2P_ENOENT, NULL, 0, op->ud);
            break;
        }
        size_t key_len;
        const uint8_t *key = cp2p__kad_op_key(op->core, &key_len);
        int best = cp2p__kad_store_select(kad->store, key, key_len, vals, lens, nv);
        if (best < 0 || (size_t)best >= nv) {
            best = 0;
        }
        /* Keep the best locally too (the store's select decides against ours). */
        (void)!cp2p__kad_store_put(kad->store, key, key_len, vals[best], lens[best],
                                   kad_now(kad));
        cb(kad, 0, vals[best], lens[best], op->ud);
        break;
    }
    case CP2P__KAD_OP_PUT:
    case CP2P__KAD_OP_PROVIDE: {
        cp2p_kad_put_cb cb = (cp2p_kad_put_cb)op->cb;
        cb(kad, status, cp2p__kad_op_stored(op->core), op->ud);
        break;
    }
    case CP2P__KAD_OP_REFRESH:
        if (op->is_bootstrap && kad->boot_cb_set) {
            cp2p_kad_bootstrap_cb cb = kad->boot_cb;
            kad->boot_cb_set = false;
            cb(kad, status, cp2p__kad_rt_size(kad->rt), kad->boot_ud);
        }
        break;
    }
    cp2p__kad_peer_list_fini(&pl);
}

/* The message the core asks for: its lookup request, or the PUT / PROVIDE store message. */
static int op_send(kad_op *op, const cp2p__kad_op_send *snd)
{
    cp2p_kad *kad = op->kad;
    size_t key_len;
    uint8_t *key = (uint8_t *)cp2p__kad_op_key(op->core, &key_len); /* only read by encode */
    cp2p__kad_msg m = {.key = key, .key_len = key_len};
    if (!snd->store) {
        m.type = op->type == CP2P__KAD_OP_GET               ? CP2P__KAD_GET_VALUE
                 : op->type == CP2P__KAD_OP_FIND_PROVIDERS ? CP2P__KAD_GET_PROVIDERS
                                                 : CP2P__KAD_FIND_NODE;
        return query_start(op, &snd->peer, &m, false);
    }
    if (op->type == CP2P__KAD_OP_PUT) {
        m.type = CP2P__KAD_PUT_VALUE;
        m.has_record = true;
        m.record = (cp2p__kad_record){.key = key, .key_len = m.key_len, .value = op->value,
                                      .value_len = op->value_len};
        return query_start(op, &snd->peer, &m, true);
    }
    cp2p_multiaddr *addrs[CP2P_KAD_MAX_ADDRS_PER_PEER];
    ptrdiff_t na = cp2p_host_addrs(kad->h, false, addrs, CP2P_KAD_MAX_ADDRS_PER_PEER);
    cp2p__kad_peer me = {.id = kad->self, .addrs = addrs, .n_addrs = na > 0 ? (size_t)na : 0};
    m.type = CP2P__KAD_ADD_PROVIDER;
    m.providers = &me;
    m.n_providers = 1;
    int rc = query_start(op, &snd->peer, &m, true);
    for (ptrdiff_t i = 0; i < na; i++) {
        cp2p_multiaddr_free(addrs[i]);
    }
    return rc;
}

/* Send what the core asks for; deliver and free the op once it is done. Messages that fail
 * at once are fed back in the loop (no recursion). */
static void op_pump(kad_op *op)
{
    cp2p_kad *kad = op->kad;
    if (op->finished) {
        return;
    }
    if (op->type == CP2P__KAD_OP_FIND_PEER && cp2p_host_conn_to(kad->h, &op->target) != NULL &&
        dir_known(kad, &op->target)) {
        /* Connected and its addresses are known (a peer that just connected to us may not
         * have told us its listen addresses yet: then look it up). */
        cp2p__kad_op_target_found(op->core);
    }
    cp2p__kad_op_send snd;
    uint64_t now = kad_now(kad);
    while (cp2p__kad_op_next(op->core, now, &snd)) {
        int rc = op_send(op, &snd);
        if (rc != 0) {
            char b[CP2P_PEER_ID_STR_MAX];
            kad->stats.queries_failed++;
            KLOG(DEBUG, "query to %s not sent: %s", pstr(&snd.peer, b), cp2p_strerror(rc));
            cp2p__kad_op_on_failure(op->core, &snd.peer, snd.store, now);
            if (rc == CP2P_ENOENT && cp2p__kad_rt_contains(kad->rt, &snd.peer)) {
                check_start(kad, &snd.peer);
            }
        }
    }
    int status;
    if (cp2p__kad_op_done(op->core, &status)) {
        op->finished = true;
        op_deliver(op, status);
        op_free(op);
    }
}

/* Create an op for `key` seeded from the table (and `extra` seeds). */
static int op_new(cp2p_kad *kad, cp2p__kad_op_type type, const uint8_t *key, size_t key_len, size_t max,
                  const cp2p_peer_id *extra, size_t nextra, kad_op **out)
{
    cp2p__kad_op_config oc;
    cp2p_peer_id seeds[CP2P_KAD_MAX_K];
    int rc;
    if (kad->nops >= CP2P_KAD_MAX_OPS) {
        kad->stats.ops_refused++;
        return CP2P_EFULL; /* retry later; refreshes are retried by the next refresh */
    }
    kad_op *op = cp2p_calloc(1, sizeof(*op));
    if (op == NULL) {
        return CP2P_ENOMEM;
    }
    op->kad = kad;
    op->type = type;
    memset(&oc, 0, sizeof(oc));
    cp2p__kad_lookup_config_default(&oc.lookup);
    oc.lookup.k = kad->cfg.k;
    oc.lookup.alpha = kad->cfg.alpha;
    oc.lookup.query_timeout_ms = kad->cfg.query_timeout_ms;
    oc.lookup.timeout_ms = kad->cfg.lookup_timeout_ms;
    oc.quorum = kad->cfg.quorum;
    oc.max_providers = max;
    if ((rc = cp2p__kad_op_new(type, key, key_len, &kad->self, &oc, kad_now(kad), &op->core)) !=
        0) {
        cp2p_free(op);
        return rc;
    }
    LIST_ADD(kad->ops, op);
    kad->nops++;
    const cp2p__kad_key *target = cp2p__kad_op_target(op->core);
    size_t n = cp2p__kad_rt_closest(kad->rt, target, seeds, kad->cfg.k);
    for (size_t i = 0; i < n && rc == 0; i++) {
        rc = cp2p__kad_op_seed(op->core, &seeds[i]);
    }
    for (size_t i = 0; i < nextra && rc == 0; i++) {
        rc = cp2p__kad_op_seed(op->core, &extra[i]);
    }
    if (rc != 0) {
        op_free(op);
        return rc;
    }
    cp2p__kad_rt_touch_bucket(kad->rt, cp2p__kad_cpl(target, &kad->self_key), kad_now(kad));
    kad->stats.lookups++;
    *out = op;
    return 0;
}

/* The bootstrap peers we know of, as extra seeds (they may not be in the table yet). */
static size_t boot_seeds(const cp2p_kad *kad, cp2p_peer_id *out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < kad->nboot && n < max; i++) {
        if (cp2p_multiaddr_peer_id(kad->boot[i], &out[n]) == 0 &&
            !cp2p_peer_id_equal(&out[n], &kad->self)) {
            n++;
        }
    }
    return n;
}

/* Start an op; the callback runs later from the loop (never inside the call). */
static int op_start(cp2p_kad *kad, cp2p__kad_op_type type, const uint8_t *key, size_t key_len, size_t max,
                    void *cb, void *ud, kad_op **out)
{
    cp2p_peer_id extra[CP2P_KAD_MAX_BOOTSTRAP];
    kad_op *op;
    size_t nextra = cp2p__kad_rt_size(kad->rt) == 0 ? boot_seeds(kad, extra, CP2P_KAD_MAX_BOOTSTRAP)
                                                     : 0;
    int rc = op_new(kad, type, key, key_len, max, extra, nextra, &op);
    if (rc != 0) {
        return rc;
    }
    op->cb = cb;
    op->ud = ud;
    if (out != NULL) {
        *out = op;
    }
    /* First pump from the timer (0 ms), so that the callback never runs inside this call. */
    uv_timer_start(kad->timer, on_timer, 0, 0);
    return 0;
}

/* ---- server: inbound streams ---- */

static void srv_free(kad_srv *sv)
{
    if (sv->kad != NULL) {
        LIST_DEL(sv->kad->srvs, sv);
    }
    cp2p_buf_fini(&sv->in);
    cp2p_free(sv);
}

static void srv_read(cp2p_stream *s, ptrdiff_t n, const uint8_t *data, void *ud)
{
    kad_srv *sv = ud;
    cp2p_kad *kad = sv->kad;
    char b[CP2P_PEER_ID_STR_MAX];
    if (n < 0) {
        if (n == CP2P_EOF && sv->in.len == 0) {
            cp2p_stream_close(s);
        } else {
            cp2p_stream_reset(s);
        }
        srv_free(sv);
        return;
    }
    if (cp2p_buf_append(&sv->in, data, (size_t)n) != 0) {
        KLOG(INFO, "request from %s over the size limit: stream reset", pstr(&sv->from, b));
        kad->stats.requests_bad++;
        goto reset;
    }
    for (;;) {
        cp2p_slice frm;
        const char *why = NULL;
        ptrdiff_t used = cp2p__frame_decode(sv->in.ptr, sv->in.len, CP2P_KAD_MAX_MSG, &frm, &why);
        if (used == 0) {
            return;
        }
        if (used < 0) {
            KLOG(INFO, "bad length prefix from %s (%s): stream reset", pstr(&sv->from, b), why);
            kad->stats.requests_bad++;
            goto reset;
        }
        cp2p_buf ans;
        cp2p_buf_init(&ans, CP2P_KAD_MAX_MSG + CP2P_UVARINT_MAX);
        int rc = cp2p__kad_handler_request(kad->handler, &sv->from, frm.ptr, frm.len,
                                           kad_now(kad), &ans, &why);
        if (rc < 0) {
            cp2p_buf_fini(&ans);
            if (rc == CP2P_ELIMIT) {
                KLOG(DEBUG, "request from %s: %s: stream reset", pstr(&sv->from, b), why);
            } else {
                KLOG(INFO, "request from %s refused: %s (%s): stream reset", pstr(&sv->from, b),
                     why ? why : "?", cp2p_strerror(rc));
            }
            goto reset;
        }
        cp2p_buf_consume(&sv->in, (size_t)used);
        if (rc == 1) {
            rc = cp2p_stream_write(s, ans.ptr, ans.len, NULL, NULL);
            kad->stats.responses_sent += rc == 0;
        }
        cp2p_buf_fini(&ans);
        if (rc < 0) {
            goto reset;
        }
    }
reset:
    cp2p_stream_reset(s);
    srv_free(sv);
}

static void srv_handler(cp2p_service *svc, cp2p_stream *s, void *ud)
{
    (void)svc;
    cp2p_kad *kad = ud;
    kad_srv *sv = cp2p_calloc(1, sizeof(*sv));
    if (sv == NULL) {
        cp2p_stream_reset(s);
        return;
    }
    sv->kad = kad;
    sv->s = s;
    sv->from = *cp2p_conn_peer_id(cp2p_stream_conn(s));
    cp2p_buf_init(&sv->in, CP2P_KAD_MAX_MSG + CP2P_UVARINT_MAX);
    LIST_ADD(kad->srvs, sv);
    if (cp2p_stream_read_start(s, srv_read, sv) != 0) {
        cp2p_stream_reset(s);
        srv_free(sv);
    }
}

/* ---- the service: identify tells who speaks the DHT ---- */

static void svc_ready(cp2p_service *svc, const cp2p_peer_id *peer, cp2p_conn *conn, void *ud)
{
    (void)svc;
    rt_add(ud, peer, cp2p_conn_remote_addr(conn));
}

static void svc_gone(cp2p_service *svc, const cp2p_peer_id *peer, int err, void *ud)
{
    cp2p_kad *kad = ud;
    (void)svc;
    if (err == CP2P_ENOTSUP) {
        rt_remove(kad, peer); /* it stopped speaking the DHT as a server: not a table member */
        return;
    }
    /* A table peer whose last connection died (not closed or trimmed by us): is it still
     * there? Seed 001: peers whose dial or ping fails leave the table. */
    if (err != 0 && err != CP2P_ELIMIT && cp2p__kad_rt_contains(kad->rt, peer)) {
        check_start(kad, peer);
    }
}

static void kad_free(cp2p_kad *kad);

/* The host closes: operations end with CP2P_ECANCELED, then we are done. */
static void svc_close(cp2p_service *svc, void *ud)
{
    cp2p_kad *kad = ud;
    kad->svc = NULL;
    kad_free(kad);
    cp2p_service_close_done(svc);
}

/* ---- bootstrap, refresh and the timer ---- */

static void start_refresh(cp2p_kad *kad, bool is_bootstrap)
{
    kad_op *op;
    cp2p_peer_id extra[CP2P_KAD_MAX_BOOTSTRAP];
    size_t nextra = boot_seeds(kad, extra, CP2P_KAD_MAX_BOOTSTRAP);
    /* Self lookup first: it fills the buckets near us. */
    if (op_new(kad, CP2P__KAD_OP_REFRESH, kad->self.bytes, kad->self.len, 0, extra, nextra, &op) == 0) {
        op->is_bootstrap = is_bootstrap;
        op->refresh_cpl = UINT32_MAX;
    } else if (is_bootstrap && kad->boot_cb_set) {
        kad->boot_cb_set = false;
        kad->boot_cb(kad, CP2P_ENOMEM, cp2p__kad_rt_size(kad->rt), kad->boot_ud);
    }
    unsigned cpls[CP2P_KAD_MAX_REFRESH_CPL + 1];
    uint64_t now = kad_now(kad);
    size_t n = cp2p__kad_rt_refresh_due(kad->rt, now, kad->cfg.refresh_interval_ms, cpls,
                                        CP2P_KAD_MAX_REFRESH_CPL + 1);
    for (size_t i = 0; i < n; i++) {
        cp2p_peer_id key;
        if (cp2p__kad_rt_gen_key(kad->rt, cpls[i], kad_rand, NULL, &key) == 0 &&
            op_new(kad, CP2P__KAD_OP_REFRESH, key.bytes, key.len, 0, NULL, 0, &op) == 0) {
            op->refresh_cpl = cpls[i];
        }
    }
    kad->next_refresh_ms = now + kad->cfg.refresh_interval_ms;
}

static void on_boot_dialed(cp2p_host *h, int status, cp2p_conn *conn, void *ud)
{
    kad_check *c = ud; /* reuses the check record as a detachable context */
    (void)h, (void)conn;
    cp2p_kad *kad = c->kad;
    if (kad != NULL) {
        char b[CP2P_PEER_ID_STR_MAX];
        if (status != 0) {
            KLOG(INFO, "bootstrap peer %s: %s", pstr(&c->peer, b), cp2p_strerror(status));
        }
        LIST_DEL(kad->checks, c);
        kad->nchecks--;
        c->kad = NULL;
        if (--kad->boot_pending == 0) {
            start_refresh(kad, true);
        }
    }
    cp2p_free(c);
}

static int bootstrap_now(cp2p_kad *kad)
{
    kad->stats.bootstraps++;
    kad->last_bootstrap_ms = kad_now(kad);
    if (kad->boot_pending > 0) {
        return 0; /* one already running: its end reports */
    }
    for (size_t i = 0; i < kad->nboot; i++) {
        kad_check *c = cp2p_calloc(1, sizeof(*c));
        if (c == NULL) {
            break;
        }
        c->kad = kad;
        (void)!cp2p_multiaddr_peer_id(kad->boot[i], &c->peer);
        if (cp2p_peer_id_equal(&c->peer, &kad->self) ||
            cp2p_host_conn_to(kad->h, &c->peer) != NULL ||
            cp2p_host_dial(kad->h, kad->boot[i], on_boot_dialed, c) != 0) {
            cp2p_free(c);
            continue;
        }
        LIST_ADD(kad->checks, c);
        kad->nchecks++;
        kad->boot_pending++;
    }
    if (kad->boot_pending == 0) {
        start_refresh(kad, true);
    }
    return 0;
}

static void republish(cp2p_kad *kad, uint64_t now);
static void on_republished(cp2p_kad *kad, int status, size_t stored, void *ud)
{
    (void)ud;
    KLOG(DEBUG, "provider record republished to %zu peers (%s)", stored,
                   cp2p_strerror(status));
    (void)kad;
}

static void on_timer(uv_timer_t *t)
{
    cp2p_kad *kad = t->data;
    uint64_t now = kad_now(kad);
    cp2p_peer_id timed_out[CP2P_KAD_MAX_ALPHA];
    retry_deferred(kad);
    /* Drive every lookup: time-outs, then new queries (op_pump may free the op). */
    for (kad_op *op = kad->ops, *next; op != NULL; op = next) {
        next = op->next;
        if (op->finished) {
            continue;
        }
        {
            size_t n = cp2p__kad_op_tick(op->core, now, timed_out, CP2P_KAD_MAX_ALPHA);
            for (size_t i = 0; i < n; i++) {
                for (kad_query *q = kad->queries; q != NULL; q = q->next) {
                    if (q->op == op && cp2p_peer_id_equal(&q->peer, &timed_out[i])) {
                        q->op = NULL; /* its late answer is still learned from, not counted */
                    }
                }
                kad->stats.queries_failed++;
            }
        }
        op_pump(op);
    }
    if (kad->rt != NULL && cp2p__kad_rt_size(kad->rt) == 0 && kad->nboot > 0 &&
        now - kad->last_bootstrap_ms >= CP2P_KAD_REBOOTSTRAP_MS) {
        KLOG(INFO, "routing table empty: bootstrapping again");
        (void)!bootstrap_now(kad);
    } else if (now >= kad->next_refresh_ms) {
        start_refresh(kad, false);
    }
    if (now >= kad->next_sweep_ms) {
        /* Idle table entries get a liveness check (bounded by CP2P_KAD_MAX_CHECKS in flight;
         * those left over are found again by the next sweep). */
        cp2p_peer_id stale[CP2P_KAD_MAX_CHECKS];
        size_t n = cp2p__kad_rt_stale(kad->rt, now, stale, CP2P_KAD_MAX_CHECKS);
        for (size_t i = 0; i < n; i++) {
            check_start(kad, &stale[i]);
        }
        kad->next_sweep_ms = now + CP2P_KAD_SWEEP_INTERVAL_MS;
    }
    if (now >= kad->next_purge_ms) {
        cp2p__kad_store_purge(kad->store, now);
        republish(kad, now);
        kad->next_purge_ms = now + CP2P_KAD_PURGE_INTERVAL_MS;
    }
    uv_timer_start(t, on_timer, kad->ops != NULL ? CP2P_KAD_TICK_MS : CP2P_KAD_IDLE_TICK_MS, 0);
}

static void republish(cp2p_kad *kad, uint64_t now)
{
    for (provided *p = kad->provided; p != NULL; p = p->next) {
        if (now >= p->next_ms) {
            p->next_ms = now + kad->cfg.republish_interval_ms;
            (void)!cp2p__kad_store_add_provider(kad->store, p->key, p->key_len, &kad->self, now);
            if (op_start(kad, CP2P__KAD_OP_PROVIDE, p->key, p->key_len, 0, (void *)on_republished, NULL,
                         NULL) != 0) {
                p->next_ms = now + CP2P_KAD_PURGE_INTERVAL_MS; /* busy: try again soon */
            }
        }
    }
}

static void on_timer_closed(uv_handle_t *t)
{
    cp2p_free(t);
}

/* ---- public API ---- */

int cp2p_kad_new(cp2p_host *h, const cp2p_kad_config *cfg, cp2p_kad **out)
{
    cp2p_kad_config def;
    int rc;
    if (h == NULL || out == NULL) {
        return CP2P_EINVAL;
    }
    if (cfg == NULL) {
        cp2p_kad_config_default(&def);
        cfg = &def;
    }
    if (cfg->protocol == NULL || cfg->k == 0 || cfg->k > CP2P_KAD_MAX_K || cfg->alpha == 0 ||
        cfg->alpha > CP2P_KAD_MAX_ALPHA || cfg->query_timeout_ms == 0 ||
        cfg->lookup_timeout_ms == 0 || cfg->refresh_interval_ms == 0 ||
        cfg->n_bootstrap > CP2P_KAD_MAX_BOOTSTRAP || cfg->requests_per_sec == 0 ||
        cfg->requests_burst == 0 || (cfg->n_bootstrap > 0 && cfg->bootstrap == NULL)) {
        return CP2P_EINVAL;
    }
    cp2p_kad *kad = cp2p_calloc(1, sizeof(*kad));
    if (kad == NULL) {
        return CP2P_ENOMEM;
    }
    kad->h = h;
    kad->cfg = *cfg;
    kad->cfg.bootstrap = NULL;
    kad->cfg.n_bootstrap = 0;
    kad->self = *cp2p_host_peer_id(h);
    cp2p__kad_key_of_peer(&kad->self, &kad->self_key);
    size_t plen = strlen(cfg->protocol);
    kad->protocol = cp2p_malloc(plen + 1);
    kad->timer = cp2p_calloc(1, sizeof(*kad->timer));
    if (kad->protocol == NULL || kad->timer == NULL) {
        rc = CP2P_ENOMEM;
        goto fail;
    }
    memcpy(kad->protocol, cfg->protocol, plen + 1);
    cp2p__kad_rt_config rtc;
    cp2p__kad_rt_config_default(&rtc);
    rtc.k = cfg->k;
    rtc.max_per_group_bucket = cfg->max_per_group_bucket;
    rtc.max_per_group_table = cfg->max_per_group_table;
    rtc.limit_loopback = cfg->limit_loopback;
    cp2p__kad_store_config sc;
    cp2p__kad_store_config_default(&sc);
    if (cfg->max_records) {
        sc.max_records = cfg->max_records;
    }
    if (cfg->record_ttl_ms) {
        sc.record_ttl_ms = cfg->record_ttl_ms;
    }
    if (cfg->provider_ttl_ms) {
        sc.provider_ttl_ms = cfg->provider_ttl_ms;
    }
    if (kad->cfg.republish_interval_ms == 0) {
        kad->cfg.republish_interval_ms = CP2P_KAD_REPUBLISH_INTERVAL_MS;
    }
    if ((rc = cp2p__kad_rt_new(&kad->self, &rtc, &kad->rt)) != 0 ||
        (rc = cp2p__kad_store_new(&sc, &kad->store)) != 0) {
        goto fail;
    }
    kad->dir = (cp2p__kad_dir){.addrs = dir_addrs,
                               .known = dir_known,
                               .connected = dir_connected,
                               .self_addrs = dir_self_addrs,
                               .learn = dir_learn,
                               .ud = kad};
    cp2p__kad_handler_config hc = {.self = kad->self,
                                   .k = cfg->k,
                                   .requests_per_sec = cfg->requests_per_sec,
                                   .requests_burst = cfg->requests_burst};
    if ((rc = cp2p__kad_handler_new(&hc, kad->rt, kad->store, &kad->dir, &kad->handler)) != 0) {
        goto fail;
    }
    if (cfg->n_bootstrap > 0) {
        kad->boot = cp2p_calloc(cfg->n_bootstrap, sizeof(*kad->boot));
        if (kad->boot == NULL) {
            rc = CP2P_ENOMEM;
            goto fail;
        }
        for (size_t i = 0; i < cfg->n_bootstrap; i++) {
            cp2p_peer_id bp;
            const char *s = cfg->bootstrap[i];
            if (s == NULL) {
                rc = CP2P_EINVAL;
                goto fail;
            }
            rc = cp2p_multiaddr_parse(s, strlen(s), &kad->boot[kad->nboot]);
            if (rc != 0) {
                goto fail;
            }
            kad->nboot++;
            if (cp2p_multiaddr_peer_id(kad->boot[kad->nboot - 1], &bp) != 0) {
                rc = CP2P_EINVAL; /* a bootstrap address must name its peer */
                goto fail;
            }
        }
    }
    switch (cfg->mode) {
    case CP2P_KAD_MODE_SERVER:
        kad->server = true;
        break;
    case CP2P_KAD_MODE_CLIENT:
        kad->server = false;
        break;
    default: {
        cp2p_multiaddr *a = NULL;
        kad->server = cp2p_host_listen_addr(h, 0, false, &a) == 0;
        cp2p_multiaddr_free(a);
        break;
    }
    }
    const char *const protos[] = {kad->protocol};
    cp2p_service_desc d = {
        .name = "kad",
        .protocols = protos,
        .n_protocols = 1,
        .ready = CP2P_SERVICE_READY_IDENTIFIED,
        .peer_ready = svc_ready,
        .peer_gone = svc_gone,
        .inbound = kad->server ? srv_handler : NULL, /* a client serves no one */
        .close = svc_close,
    };
    if ((rc = cp2p_host_add_service(h, &d, kad, &kad->svc)) != 0) {
        goto fail;
    }
    uv_timer_init(cp2p_host_loop(h), kad->timer);
    kad->timer->data = kad;
    uint64_t now = kad_now(kad);
    kad->next_refresh_ms = now + kad->cfg.refresh_interval_ms;
    kad->next_purge_ms = now + CP2P_KAD_PURGE_INTERVAL_MS;
    kad->next_sweep_ms = now + CP2P_KAD_SWEEP_INTERVAL_MS;
    kad->last_bootstrap_ms = now;
    uv_timer_start(kad->timer, on_timer, 0, 0);
    if (kad->nboot > 0) {
        (void)!bootstrap_now(kad);
    }
    KLOG(DEBUG, "DHT started: %s, %s mode, %zu bootstrap peers", kad->protocol,
                  kad->server ? "server" : "client", kad->nboot);
    *out = kad;
    return 0;
fail:
    for (size_t i = 0; i < kad->nboot; i++) {
        cp2p_multiaddr_free(kad->boot[i]);
    }
    cp2p_free(kad->boot);
    cp2p__kad_handler_free(kad->handler);
    cp2p__kad_store_free(kad->store);
    cp2p__kad_rt_free(kad->rt);
    cp2p_free(kad->protocol);
    cp2p_free(kad->timer);
    cp2p_free(kad);
    return rc;
}

void cp2p_kad_close(cp2p_kad *kad)
{
    if (kad == NULL) {
        return;
    }
    cp2p_service_remove(kad->svc);
    kad_free(kad);
}

static void kad_free(cp2p_kad *kad)
{
    uv_timer_stop(kad->timer);
    uv_close((uv_handle_t *)kad->timer, on_timer_closed);
    /* Operations end with CP2P_ECANCELED. */
    while (kad->ops != NULL) {
        kad_op *op = kad->ops;
        op->finished = true;
        cp2p__kad_op_cancel(op->core, CP2P_ECANCELED);
        op_deliver(op, CP2P_ECANCELED);
        op_free(op);
    }
    if (kad->boot_cb_set) {
        kad->boot_cb_set = false;
        kad->boot_cb(kad, CP2P_ECANCELED, cp2p__kad_rt_size(kad->rt), kad->boot_ud);
    }
    /* Detach what the host will still call back. */
    for (kad_query *q = kad->queries, *next; q != NULL; q = next) {
        next = q->next;
        q->kad = NULL;
        q->op = NULL;
        q->next = q->prev = NULL;
        if (q->deferred) {
            query_free(q); /* nothing of the host's refers to it */
        }
    }
    for (kad_check *c = kad->checks, *next; c != NULL; c = next) {
        next = c->next;
        c->kad = NULL;
        c->next = c->prev = NULL;
    }
    while (kad->srvs != NULL) {
        kad_srv *sv = kad->srvs;
        cp2p_stream_reset(sv->s);
        srv_free(sv);
    }
    while (kad->provided != NULL) {
        provided *p = kad->provided;
        kad->provided = p->next;
        cp2p_free(p->key);
        cp2p_free(p);
    }
    for (size_t i = 0; i < kad->nboot; i++) {
        cp2p_multiaddr_free(kad->boot[i]);
    }
    cp2p_free(kad->boot);
    cp2p__kad_handler_free(kad->handler);
    cp2p__kad_store_free(kad->store);
    cp2p__kad_rt_free(kad->rt);
    cp2p_free(kad->protocol);
    cp2p_free(kad);
}

int cp2p_kad_bootstrap(cp2p_kad *kad, cp2p_kad_bootstrap_cb cb, void *ud)
{
    if (kad == NULL) {
        return CP2P_EINVAL;
    }
    if (cb != NULL) {
        if (kad->boot_cb_set) {
            return CP2P_ESTATE;
        }
        kad->boot_cb = cb;
        kad->boot_ud = ud;
        kad->boot_cb_set = true;
    }
    /* From the timer, so that cb never runs inside this call. */
    kad->last_bootstrap_ms = 0;
    if (cp2p__kad_rt_size(kad->rt) > 0 || kad->nboot == 0) {
        start_refresh(kad, true);
    } else {
        (void)!bootstrap_now(kad);
    }
    uv_timer_start(kad->timer, on_timer, 0, 0);
    return 0;
}

size_t cp2p_kad_table_size(const cp2p_kad *kad)
{
    return cp2p__kad_rt_size(kad->rt);
}

bool cp2p_kad_table_peer(const cp2p_kad *kad, size_t n, cp2p_peer_id *out)
{
    return cp2p__kad_rt_at(kad->rt, n, out);
}

bool cp2p_kad_is_server(const cp2p_kad *kad)
{
    return kad->server;
}

int cp2p_kad_find_peer(cp2p_kad *kad, const cp2p_peer_id *peer, cp2p_kad_peer_cb cb, void *ud)
{
    kad_op *op;
    if (kad == NULL || peer == NULL || cb == NULL || cp2p_peer_id_equal(peer, &kad->self)) {
        return CP2P_EINVAL;
    }
    if (cp2p__kad_rt_size(kad->rt) == 0 && kad->nboot == 0) {
        return CP2P_ESTATE;
    }
    int rc = op_start(kad, CP2P__KAD_OP_FIND_PEER, peer->bytes, peer->len, 0, (void *)cb, ud, &op);
    if (rc == 0) {
        op->target = *peer;
    }
    return rc;
}

int cp2p_kad_closest_peers(cp2p_kad *kad, const uint8_t *key, size_t key_len,
                           cp2p_kad_peers_cb cb, void *ud)
{
    if (kad == NULL || key == NULL || key_len == 0 || key_len > CP2P_KAD_MAX_KEY || cb == NULL) {
        return CP2P_EINVAL;
    }
    if (cp2p__kad_rt_size(kad->rt) == 0 && kad->nboot == 0) {
        return CP2P_ESTATE;
    }
    return op_start(kad, CP2P__KAD_OP_CLOSEST, key, key_len, 0, (void *)cb, ud, NULL);
}

int cp2p_kad_put_value(cp2p_kad *kad, const uint8_t *key, size_t key_len, const uint8_t *value,
                       size_t value_len, cp2p_kad_put_cb cb, void *ud)
{
    kad_op *op;
    int rc;
    if (kad == NULL || key == NULL || key_len == 0 || cb == NULL ||
        (value == NULL && value_len > 0)) {
        return CP2P_EINVAL;
    }
    if (key_len > CP2P_KAD_MAX_KEY || value_len > CP2P_KAD_MAX_VALUE) {
        return CP2P_ELIMIT;
    }
    if ((rc = cp2p__kad_store_validate(kad->store, key, key_len, value, value_len)) != 0) {
        return rc;
    }
    rc = cp2p__kad_store_put(kad->store, key, key_len, value, value_len, kad_now(kad));
    if (rc != 0 && rc != CP2P_ESTATE) {
        return rc;
    }
    if (cp2p__kad_rt_size(kad->rt) == 0 && kad->nboot == 0) {
        return CP2P_ESTATE;
    }
    if ((rc = op_start(kad, CP2P__KAD_OP_PUT, key, key_len, 0, (void *)cb, ud, &op)) != 0) {
        return rc;
    }
    op->value = cp2p_malloc(value_len ? value_len : 1);
    if (op->value == NULL) {
        op_free(op);
        return CP2P_ENOMEM;
    }
    if (value_len > 0) {
        memcpy(op->value, value, value_len);
    }
    op->value_len = value_len;
    return 0;
}

int cp2p_kad_get_value(cp2p_kad *kad, const uint8_t *key, size_t key_len, cp2p_kad_value_cb cb,
                       void *ud)
{
    kad_op *op;
    const uint8_t *v;
    size_t vl;
    uint64_t at;
    int rc;
    if (kad == NULL || key == NULL || key_len == 0 || cb == NULL) {
        return CP2P_EINVAL;
    }
    if (key_len > CP2P_KAD_MAX_KEY) {
        return CP2P_ELIMIT;
    }
    if (cp2p__kad_rt_size(kad->rt) == 0 && kad->nboot == 0) {
        return CP2P_ESTATE;
    }
    if ((rc = op_start(kad, CP2P__KAD_OP_GET, key, key_len, 0, (void *)cb, ud, &op)) != 0) {
        return rc;
    }
    /* The local record counts as one answer (spec, "Getting values"). */
    if (cp2p__kad_store_get(kad->store, key, key_len, kad_now(kad), &v, &vl, &at) == 0) {
        if (cp2p__kad_op_add_value(op->core, &kad->self, v, vl) != 0) {
            op_free(op);
            return CP2P_ENOMEM;
        }
    }
    return 0;
}

int cp2p_kad_provide(cp2p_kad *kad, const uint8_t *key, size_t key_len, cp2p_kad_put_cb cb,
                     void *ud)
{
    int rc;
    if (kad == NULL || key == NULL || key_len == 0 || cb == NULL) {
        return CP2P_EINVAL;
    }
    if (key_len > CP2P_KAD_MAX_KEY) {
        return CP2P_ELIMIT;
    }
    if (cp2p__kad_rt_size(kad->rt) == 0 && kad->nboot == 0) {
        return CP2P_ESTATE;
    }
    uint64_t now = kad_now(kad);
    provided *p = NULL;
    for (provided *q = kad->provided; q != NULL; q = q->next) {
        if (q->key_len == key_len && memcmp(q->key, key, key_len) == 0) {
            p = q;
        }
    }
    if (p == NULL) {
        p = cp2p_calloc(1, sizeof(*p));
        if (p == NULL || (p->key = cp2p_malloc(key_len)) == NULL) {
            cp2p_free(p);
            return CP2P_ENOMEM;
        }
        memcpy(p->key, key, key_len);
        p->key_len = key_len;
        p->next = kad->provided;
        kad->provided = p;
    }
    p->next_ms = now + kad->cfg.republish_interval_ms;
    if ((rc = cp2p__kad_store_add_provider(kad->store, key, key_len, &kad->self, now)) != 0) {
        return rc;
    }
    return op_start(kad, CP2P__KAD_OP_PROVIDE, key, key_len, 0, (void *)cb, ud, NULL);
}

int cp2p_kad_find_providers(cp2p_kad *kad, const uint8_t *key, size_t key_len, size_t max,
                            cp2p_kad_peers_cb cb, void *ud)
{
    kad_op *op;
    int rc;
    if (kad == NULL || key == NULL || key_len == 0 || cb == NULL || max == 0) {
        return CP2P_EINVAL;
    }
    if (key_len > CP2P_KAD_MAX_KEY) {
        return CP2P_ELIMIT;
    }
    if (max > CP2P_KAD_MAX_PROVIDERS_ANSWER) {
        max = CP2P_KAD_MAX_PROVIDERS_ANSWER;
    }
    if (cp2p__kad_rt_size(kad->rt) == 0 && kad->nboot == 0) {
        return CP2P_ESTATE;
    }
    if ((rc = op_start(kad, CP2P__KAD_OP_FIND_PROVIDERS, key, key_len, max, (void *)cb, ud, &op)) != 0) {
        return rc;
    }
    cp2p_peer_id local[CP2P_KAD_MAX_PROVIDERS_ANSWER];
    size_t nl = cp2p__kad_store_providers(kad->store, key, key_len, kad_now(kad), local, max);
    cp2p__kad_op_add_providers(op->core, local, nl);
    return 0;
}

ptrdiff_t cp2p_kad_key_from_cid(const char *cid, uint8_t *out, size_t out_max)
{
    cp2p_cid c;
    if (cid == NULL || out == NULL || cp2p_cid_parse(cid, strlen(cid), &c) != 0) {
        return CP2P_EINVAL;
    }
    if (c.mh_len > out_max) {
        return CP2P_ENOSPC;
    }
    memcpy(out, c.mh, c.mh_len);
    return (ptrdiff_t)c.mh_len;
}

int cp2p_kad_add_validator(cp2p_kad *kad, const char *ns, cp2p_kad_validate_fn validate,
                           cp2p_kad_select_fn select, void *ud)
{
    if (kad == NULL || validate == NULL) {
        return CP2P_EINVAL;
    }
    return cp2p__kad_store_add_validator(kad->store, ns, validate, select, ud);
}

void cp2p_kad_stats_get(const cp2p_kad *kad, cp2p_kad_stats *out)
{
    cp2p__kad_handler_stats hs;
    cp2p__kad_handler_stats_get(kad->handler, &hs);
    *out = kad->stats;
    out->table_size = cp2p__kad_rt_size(kad->rt);
    /* The handler counts what it answers; the binding its streams' framing errors. */
    out->requests_in = hs.requests_in;
    out->requests_refused_rate = hs.refused_rate;
    out->requests_bad += hs.bad;
    out->records_stored = hs.records_stored;
    out->providers_stored = hs.providers_stored;
}
