/* The dialer and the host's peerstore: dial by peer ID from peerstore addresses, a bad address
 * raced with a good one, one shared dial for concurrent callers, backoff, identify and ping
 * filling the peerstore, a peerstore file carried across a restart (and the restarted host
 * reconnecting to its known peers by itself), and the node API's
 * cp2p_node_add_addrs + auto-dialing cp2p_node_request. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cp2p/node.h>

#include "integration/harness_node.h"

#include "integration/harness.h"
#include "swarm/swarm.h"

typedef struct {
    cp2p_host *h;
    int identified, opened_in, opened_out;
} node;

static void on_event(cp2p_host *h, const cp2p_event *ev, void *ud)
{
    node *n = ud;
    (void)h;
    if (ev->type == CP2P_EVENT_PEER_IDENTIFIED) {
        n->identified++;
    } else if (ev->type == CP2P_EVENT_CONN_OPENED) {
        if (cp2p_conn_is_outbound(ev->conn)) {
            n->opened_out++;
        } else {
            n->opened_in++;
        }
    }
}

static void echo_handler(cp2p_stream *s, void *ud)
{
    (void)ud;
    cp2p_stream_reset(s);
}

static cp2p_multiaddr *ma_parse(const char *text)
{
    cp2p_multiaddr *ma;
    assert_int_equal(cp2p_multiaddr_parse(text, strlen(text), &ma), 0);
    return ma;
}

static void host_listen(node *n)
{
    cp2p_multiaddr *ma = ma_parse("/ip4/127.0.0.1/tcp/0");
    assert_int_equal(cp2p_host_listen(n->h, ma), 0);
    cp2p_multiaddr_free(ma);
}

static void start_cfg(node *n, const cp2p_host_config *base, bool listen)
{
    cp2p_host_config cfg;
    cp2p_privkey *key;
    memset(n, 0, sizeof(*n));
    assert_int_equal(cp2p_privkey_generate(CP2P_KEY_ED25519, &key), 0);
    if (base != NULL) {
        cfg = *base;
    } else {
        cp2p_host_config_default(&cfg);
    }
    cfg.identity = key;
    assert_int_equal(cp2p_host_new(&loop, &cfg, &n->h), 0);
    cp2p_privkey_free(key);
    cp2p_host_set_event_cb(n->h, on_event, n);
    assert_int_equal(cp2p_host_set_handler(n->h, "/test/echo/1.0.0", echo_handler, NULL), 0);
    if (listen) {
        host_listen(n);
    }
}

static void start(node *n, bool listen)
{
    start_cfg(n, NULL, listen);
}

static void on_closed(cp2p_host *h, void *ud)
{
    (void)h;
    *(bool *)ud = true;
}

static void stop(node *n)
{
    bool done = false;
    cp2p_host_close(n->h, on_closed, &done);
    run_until(&done);
}

/* Teach `from` the n-th listen address of `to` (without /p2p/). */
static void teach(node *from, node *to, size_t n, cp2p_addr_source src)
{
    cp2p_multiaddr *ma;
    assert_int_equal(cp2p_host_listen_addr(to->h, n, false, &ma), 0);
    const cp2p_multiaddr *const a[] = {ma};
    assert_int_equal(cp2p_peerstore_add_addrs(cp2p_host_peerstore(from->h),
                                              cp2p_host_peer_id(to->h), a, 1, 60000, src,
                                              cp2p__host_wall_ms()),
                     0);
    cp2p_multiaddr_free(ma);
}

static void teach_text(node *from, node *to, const char *text, cp2p_addr_source src)
{
    cp2p_multiaddr *ma = ma_parse(text);
    const cp2p_multiaddr *const a[] = {ma};
    assert_int_equal(cp2p_peerstore_add_addrs(cp2p_host_peerstore(from->h),
                                              cp2p_host_peer_id(to->h), a, 1, 60000, src,
                                              cp2p__host_wall_ms()),
                     0);
    cp2p_multiaddr_free(ma);
}

/* Nothing listens on port 1 of the loopback: connection refused at once. */
#define BAD_ADDR "/ip4/127.0.0.1/tcp/1"

static void dial_by_peer_id(void **state)
{
    node a, b;
    dial_res r = {0}, r2 = {0};
    cp2p_peer_id stranger;
    (void)state;
    start(&a, true);
    start(&b, false);
    /* Unknown peer: nothing to dial. */
    stranger = *cp2p_host_peer_id(a.h);
    stranger.bytes[stranger.len - 1] ^= 1;
    assert_int_equal(cp2p_host_dial_peer(b.h, &stranger, on_dial, &r), CP2P_ENOENT);
    assert_int_equal(cp2p_host_dial_peer(b.h, cp2p_host_peer_id(b.h), on_dial, &r), CP2P_EINVAL);
    teach(&b, &a, 0, CP2P_ADDR_SOURCE_MANUAL);
    assert_int_equal(cp2p_host_dial_peer(b.h, cp2p_host_peer_id(a.h), on_dial, &r), 0);
    assert_false(r.done);
    run_until(&r.done);
    assert_int_equal(r.status, 0);
    assert_true(cp2p_peer_id_equal(cp2p_conn_peer_id(r.conn), cp2p_host_peer_id(a.h)));
    /* Connected: the same connection, from the loop, not inside the call. */
    assert_int_equal(cp2p_host_dial_peer(b.h, cp2p_host_peer_id(a.h), on_dial, &r2), 0);
    assert_false(r2.done);
    run_until(&r2.done);
    assert_int_equal(r2.status, 0);
    assert_ptr_equal(r2.conn, r.conn);
    assert_int_equal(b.opened_out, 1);
    stop(&b);
    stop(&a);
}

static void bad_address_then_good(void **state)
{
    node a, b;
    dial_res r = {0};
    cp2p_peerstore_addr pa[4];
    (void)state;
    start(&a, true);
    start(&b, false);
    /* MANUAL sorts before IDENTIFY: the bad address is tried first. */
    teach(&b, &a, 0, CP2P_ADDR_SOURCE_IDENTIFY);
    teach_text(&b, &a, BAD_ADDR, CP2P_ADDR_SOURCE_MANUAL);
    size_t n = cp2p_peerstore_addrs(cp2p_host_peerstore(b.h), cp2p_host_peer_id(a.h),
                                    cp2p__host_wall_ms(), pa, 4);
    assert_int_equal(n, 2);
    cp2p_multiaddr *bad = ma_parse(BAD_ADDR);
    assert_true(cp2p_multiaddr_equal(pa[0].addr, bad));
    cp2p_multiaddr_free(bad);
    assert_int_equal(cp2p_host_dial_peer(b.h, cp2p_host_peer_id(a.h), on_dial, &r), 0);
    run_until(&r.done);
    assert_int_equal(r.status, 0);
    cp2p_multiaddr *good;
    assert_int_equal(cp2p_host_listen_addr(a.h, 0, false, &good), 0);
    assert_true(cp2p_multiaddr_equal(cp2p_conn_remote_addr(r.conn), good));
    cp2p_multiaddr_free(good);
    stop(&b);
    stop(&a);
}

typedef struct {
    int calls;
    int status;
    cp2p_conn *conn;
} shared_res;

static void on_shared(cp2p_host *h, int status, cp2p_conn *c, void *ud)
{
    shared_res *r = ud;
    (void)h;
    r->calls++;
    r->status = status;
    r->conn = c;
}

static void concurrent_callers_share_one_dial(void **state)
{
    node a, b;
    shared_res r[3] = {{0}};
    (void)state;
    start(&a, true);
    start(&b, false);
    teach(&b, &a, 0, CP2P_ADDR_SOURCE_MANUAL);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(cp2p_host_dial_peer(b.h, cp2p_host_peer_id(a.h), on_shared, &r[i]), 0);
    }
    while (r[0].calls + r[1].calls + r[2].calls < 3 || a.opened_in < 1) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    for (int i = 0; i < 3; i++) {
        assert_int_equal(r[i].calls, 1);
        assert_int_equal(r[i].status, 0);
        assert_ptr_equal(r[i].conn, r[0].conn);
    }
    /* Exactly one TCP connection on each side. */
    assert_int_equal(cp2p__host_stats_get(b.h)->conns_opened, 1);
    assert_int_equal(cp2p__host_stats_get(a.h)->conns_opened, 1);
    assert_int_equal(a.opened_in, 1);
    stop(&b);
    stop(&a);
}

static void failure_backoff_then_success(void **state)
{
    node a, b;
    dial_res r = {0};
    cp2p_host_config cfg;
    cp2p_peerstore_info info;
    (void)state;
    cp2p_host_config_default(&cfg);
    cfg.dial_backoff_base_ms = 50;
    cfg.dial_backoff_max_ms = 100;
    start(&a, true);
    start_cfg(&b, &cfg, false);
    teach_text(&b, &a, BAD_ADDR, CP2P_ADDR_SOURCE_MANUAL);
    assert_int_equal(cp2p_host_dial_peer(b.h, cp2p_host_peer_id(a.h), on_dial, &r), 0);
    run_until(&r.done);
    assert_int_not_equal(r.status, 0);
    assert_int_equal(cp2p_peerstore_info_get(cp2p_host_peerstore(b.h), cp2p_host_peer_id(a.h),
                                             &info),
                     0);
    assert_int_equal(info.failures, 1);
    /* In backoff: fails fast, no callback. */
    r = (dial_res){0};
    assert_int_equal(cp2p_host_dial_peer(b.h, cp2p_host_peer_id(a.h), on_dial, &r),
                     CP2P_ESTATE);
    /* Learn a good address; after the backoff (at most the max), the dial succeeds. */
    teach(&b, &a, 0, CP2P_ADDR_SOURCE_IDENTIFY);
    run_for(cfg.dial_backoff_max_ms + 20);
    assert_int_equal(cp2p_host_dial_peer(b.h, cp2p_host_peer_id(a.h), on_dial, &r), 0);
    run_until(&r.done);
    assert_int_equal(r.status, 0);
    assert_int_equal(cp2p_peerstore_info_get(cp2p_host_peerstore(b.h), cp2p_host_peer_id(a.h),
                                             &info),
                     0);
    assert_int_equal(info.failures, 0);
    assert_true(info.last_connected_ms > 0);
    stop(&b);
    stop(&a);
}

static bool has_addr(cp2p_host *h, const cp2p_peer_id *peer, const cp2p_multiaddr *ma,
                     cp2p_addr_source src)
{
    cp2p_peerstore_addr pa[16];
    size_t n = cp2p_peerstore_addrs(cp2p_host_peerstore(h), peer, cp2p__host_wall_ms(), pa, 16);
    for (size_t i = 0; i < n && i < 16; i++) {
        if (cp2p_multiaddr_equal(pa[i].addr, ma) && pa[i].source == src) {
            return true;
        }
    }
    return false;
}

static void identify_and_ping_fill_the_peerstore(void **state)
{
    node a, b;
    dial_res r;
    cp2p_peerstore_info info;
    cp2p_slice key;
    ping_res p = {0};
    (void)state;
    start(&a, true);
    host_listen(&a); /* a second address, only announced by identify */
    start(&b, false);
    cp2p_conn *c = dial_host(b.h, a.h, &r);
    assert_int_equal(r.status, 0);
    while (b.identified < 1) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    cp2p_peerstore *ps = cp2p_host_peerstore(b.h);
    const cp2p_peer_id *ida = cp2p_host_peer_id(a.h);
    assert_true(cp2p_peerstore_supports(ps, ida, "/test/echo/1.0.0"));
    assert_true(cp2p_peerstore_supports(ps, ida, CP2P_PING_PROTOCOL));
    assert_non_null(cp2p_peerstore_agent(ps, ida));
    assert_memory_equal(cp2p_peerstore_agent(ps, ida), "cp2p/", 5);
    assert_int_equal(cp2p_peerstore_pubkey(ps, ida, &key), 0);
    cp2p_multiaddr *a0, *a1;
    assert_int_equal(cp2p_host_listen_addr(a.h, 0, false, &a0), 0);
    assert_int_equal(cp2p_host_listen_addr(a.h, 1, false, &a1), 0);
    assert_true(has_addr(b.h, ida, a0, CP2P_ADDR_SOURCE_MANUAL)); /* dialed explicitly */
    assert_true(has_addr(b.h, ida, a1, CP2P_ADDR_SOURCE_IDENTIFY));
    cp2p_multiaddr_free(a0);
    cp2p_multiaddr_free(a1);
    assert_int_equal(cp2p_peerstore_info_get(ps, ida, &info), 0);
    assert_true(info.last_connected_ms > 0);
    assert_int_equal(info.rtt_ewma_ns, 0);
    assert_int_equal(cp2p_ping(c, 5000, on_ping, &p), 0);
    run_until(&p.done);
    assert_int_equal(p.status, 0);
    assert_int_equal(cp2p_peerstore_info_get(ps, ida, &info), 0);
    assert_int_equal(info.rtt_last_ns, p.rtt);
    assert_true(info.rtt_ewma_ns > 0);
    stop(&b);
    stop(&a);
}

static void peerstore_survives_a_restart(void **state)
{
    node a, b1, b2;
    dial_res r;
    cp2p_host_config cfg;
    char dir[] = "/tmp/cp2p-dialer-XXXXXX", path[256], extra[300];
    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/peers.db", dir);
    cp2p_host_config_default(&cfg);
    cfg.peerstore_path = path;
    start(&a, true);
    start_cfg(&b1, &cfg, false);
    (void)dial_host(b1.h, a.h, &r);
    assert_int_equal(r.status, 0);
    while (b1.identified < 1) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    stop(&b1); /* flushes */
    start_cfg(&b2, &cfg, false);
    r = (dial_res){0};
    assert_int_equal(cp2p_host_dial_peer(b2.h, cp2p_host_peer_id(a.h), on_dial, &r), 0);
    run_until(&r.done);
    assert_int_equal(r.status, 0);
    assert_true(cp2p_peer_id_equal(cp2p_conn_peer_id(r.conn), cp2p_host_peer_id(a.h)));
    stop(&b2);
    stop(&a);
    unlink(path);
    snprintf(extra, sizeof(extra), "%s-wal", path);
    unlink(extra);
    snprintf(extra, sizeof(extra), "%s-shm", path);
    unlink(extra);
    rmdir(dir);
}

/* Issue 4's proof: a host restarted with the same identity and peerstore file reconnects to
 * the peers it knew without being told (as CometBFT's address book), from the loop after
 * cp2p_host_new; with reconnect_known_peers = CP2P_HOST_NO_RECONNECT it does not. */
typedef struct {
    const cp2p_peer_id *want;
    bool opened;
    bool outbound;
} watch;

static void on_watch(cp2p_host *h, const cp2p_event *ev, void *ud)
{
    watch *w = ud;
    (void)h;
    if (ev->type == CP2P_EVENT_CONN_OPENED &&
        cp2p_peer_id_equal(cp2p_conn_peer_id(ev->conn), w->want)) {
        w->opened = true;
        w->outbound = cp2p_conn_is_outbound(ev->conn);
    }
}

static void restart_reconnects_to_known_peers(void **state)
{
    node a, b;
    dial_res r = {0};
    cp2p_host_config cfg;
    cp2p_privkey *key;
    cp2p_multiaddr *ma;
    char dir[] = "/tmp/cp2p-reconnect-XXXXXX", path[256], extra[300];
    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/peers.db", dir);
    assert_int_equal(cp2p_privkey_generate(CP2P_KEY_ED25519, &key), 0);
    cp2p_host_config_default(&cfg);
    cfg.peerstore_path = path;
    start(&b, true);
    /* A (with the file) dials B once, by address without /p2p/, then closes (flushes). */
    cfg.identity = key;
    assert_int_equal(cp2p_host_new(&loop, &cfg, &a.h), 0);
    assert_int_equal(cp2p_host_listen_addr(b.h, 0, false, &ma), 0);
    assert_int_equal(cp2p_host_dial(a.h, ma, on_dial, &r), 0);
    cp2p_multiaddr_free(ma);
    run_until(&r.done);
    assert_int_equal(r.status, 0);
    stop(&a);
    /* A' (same key, same file), told nothing: it dials B by itself. */
    watch w = {.want = cp2p_host_peer_id(b.h)};
    assert_int_equal(cp2p_host_new(&loop, &cfg, &a.h), 0);
    cp2p_host_set_event_cb(a.h, on_watch, &w);
    assert_false(w.opened); /* never inside cp2p_host_new */
    run_until(&w.opened);
    assert_true(w.outbound);
    assert_non_null(cp2p_host_conn_to(a.h, cp2p_host_peer_id(b.h)));
    stop(&a);
    /* Disabled: the same restart dials nobody. */
    cfg.reconnect_known_peers = CP2P_HOST_NO_RECONNECT;
    w = (watch){.want = cp2p_host_peer_id(b.h)};
    assert_int_equal(cp2p_host_new(&loop, &cfg, &a.h), 0);
    cp2p_host_set_event_cb(a.h, on_watch, &w);
    run_for(300);
    assert_false(w.opened);
    stop(&a);
    cp2p_privkey_free(key);
    stop(&b);
    unlink(path);
    snprintf(extra, sizeof(extra), "%s-wal", path);
    unlink(extra);
    snprintf(extra, sizeof(extra), "%s-shm", path);
    unlink(extra);
    rmdir(dir);
}

/* ---- a TCP listener that accepts and never answers: an upgrade to it hangs ---- */

typedef struct {
    uv_tcp_t srv;
    uv_tcp_t cli[4];
    int accepted, eof, handles;
    char buf[256];
} silent;

static void silent_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    silent *s = h->data;
    (void)suggested;
    *buf = uv_buf_init(s->buf, sizeof(s->buf));
}

static void silent_closed(uv_handle_t *h)
{
    ((silent *)h->data)->handles--;
}

static void silent_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    silent *s = st->data;
    (void)buf;
    if (n < 0) {
        s->eof++; /* the dialer gave up on us */
        uv_close((uv_handle_t *)st, silent_closed);
    }
}

static void silent_conn(uv_stream_t *srv, int status)
{
    silent *s = srv->data;
    assert_int_equal(status, 0);
    assert_true(s->accepted < 4);
    uv_tcp_t *c = &s->cli[s->accepted++];
    assert_int_equal(uv_tcp_init(&loop, c), 0);
    c->data = s;
    s->handles++;
    assert_int_equal(uv_accept(srv, (uv_stream_t *)c), 0);
    assert_int_equal(uv_read_start((uv_stream_t *)c, silent_alloc, silent_read), 0);
}

/* Listen on a loopback port; writes "/ip4/127.0.0.1/tcp/PORT" to text. */
static void silent_start(silent *s, char *text, size_t len)
{
    struct sockaddr_in sa;
    struct sockaddr_storage bound;
    int blen = sizeof(bound);
    memset(s, 0, sizeof(*s));
    assert_int_equal(uv_ip4_addr("127.0.0.1", 0, &sa), 0);
    assert_int_equal(uv_tcp_init(&loop, &s->srv), 0);
    s->srv.data = s;
    s->handles = 1;
    assert_int_equal(uv_tcp_bind(&s->srv, (const struct sockaddr *)&sa, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&s->srv, 8, silent_conn), 0);
    assert_int_equal(uv_tcp_getsockname(&s->srv, (struct sockaddr *)&bound, &blen), 0);
    snprintf(text, len, "/ip4/127.0.0.1/tcp/%u",
             (unsigned)ntohs(((struct sockaddr_in *)&bound)->sin_port));
}

static void silent_stop(silent *s)
{
    uv_close((uv_handle_t *)&s->srv, silent_closed);
    while (s->handles > 0) {
        uv_run(&loop, UV_RUN_ONCE);
    }
}

static void stagger_race_timeout_and_cap(void **state)
{
    node a, b, c;
    dial_res r = {0}, rc = {0};
    silent s;
    char hang[64];
    cp2p_host_config cfg;
    (void)state;
    cp2p_host_config_default(&cfg);
    cfg.max_peer_dials = 1;
    cfg.dial_peer_timeout_ms = 1000;
    silent_start(&s, hang, sizeof(hang));
    start(&a, true);
    start(&c, true);
    start_cfg(&b, &cfg, false);
    /* The hanging address is tried first; the good one starts after the stagger and wins. */
    teach_text(&b, &a, hang, CP2P_ADDR_SOURCE_MANUAL);
    teach(&b, &a, 0, CP2P_ADDR_SOURCE_IDENTIFY);
    assert_int_equal(cp2p_host_dial_peer(b.h, cp2p_host_peer_id(a.h), on_dial, &r), 0);
    /* One dial by peer ID in flight is the cap. */
    teach_text(&b, &c, hang, CP2P_ADDR_SOURCE_MANUAL);
    assert_int_equal(cp2p_host_dial_peer(b.h, cp2p_host_peer_id(c.h), on_dial, &rc), CP2P_EFULL);
    run_until(&r.done);
    assert_int_equal(r.status, 0);
    cp2p_multiaddr *good;
    assert_int_equal(cp2p_host_listen_addr(a.h, 0, false, &good), 0);
    assert_true(cp2p_multiaddr_equal(cp2p_conn_remote_addr(r.conn), good));
    cp2p_multiaddr_free(good);
    /* The loser was canceled: its socket closed, and it never became a connection. */
    while (s.accepted < 1 || s.eof < s.accepted) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    assert_int_equal(s.accepted, 1);
    assert_int_equal(b.opened_out, 1);
    /* A peer whose only address hangs: the overall deadline ends the dial. */
    assert_int_equal(cp2p_host_dial_peer(b.h, cp2p_host_peer_id(c.h), on_dial, &rc), 0);
    run_until(&rc.done);
    assert_int_equal(rc.status, CP2P_ETIMEDOUT);
    while (s.accepted < 2 || s.eof < s.accepted) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    assert_int_equal(cp2p_host_dial_peer(b.h, cp2p_host_peer_id(c.h), on_dial, &rc),
                     CP2P_ESTATE);
    stop(&b);
    stop(&c);
    stop(&a);
    silent_stop(&s);
}

static void host_close_cancels_dials(void **state)
{
    node a, b;
    shared_res r[2] = {{0}};
    silent s;
    char hang[64];
    bool closed = false;
    (void)state;
    silent_start(&s, hang, sizeof(hang));
    start(&a, false);
    start(&b, false);
    teach_text(&b, &a, hang, CP2P_ADDR_SOURCE_MANUAL);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(cp2p_host_dial_peer(b.h, cp2p_host_peer_id(a.h), on_shared, &r[i]), 0);
    }
    while (s.accepted < 1) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    cp2p_host_close(b.h, on_closed, &closed);
    run_until(&closed);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(r[i].calls, 1);
        assert_int_equal(r[i].status, CP2P_ECANCELED);
    }
    stop(&a);
    while (s.eof < s.accepted) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    silent_stop(&s);
}

/* ---- the node API ---- */

static int echo_req(void *ud, const cp2p_peer_id *from, const uint8_t *req, size_t len,
                    cp2p_buf *resp)
{
    (void)ud;
    (void)from;
    return cp2p_buf_append(resp, req, len);
}


static void node_add_addrs_then_request(void **state)
{
    char addr[512];
    uint8_t *resp = NULL;
    size_t resp_len = 0;
    (void)state;
    cp2p_node *a = harness_node();
    cp2p_node *b = harness_node();
    assert_int_equal(cp2p_node_set_request_handler(a, "/test/echo/1", echo_req, NULL,
                                                   CP2P_NODE_ON_LOOP),
                     0);
    /* Not connected and no address known. */
    assert_int_equal(cp2p_node_request(b, cp2p_node_peer_id(a), "/test/echo/1", "hi", 2, 10000,
                                       &resp, &resp_len),
                     CP2P_ENOENT);
    assert_int_equal(cp2p_node_addr(a, 0, addr, sizeof(addr)), 0); /* with /p2p/ */
    const char *const addrs[] = {addr};
    char other[512];
    assert_int_equal(cp2p_node_addr(b, 0, other, sizeof(other)), 0); /* names b, not a */
    const char *const wrong[] = {other};
    assert_int_equal(cp2p_node_add_addrs(b, cp2p_node_peer_id(a), wrong, 1, 60000),
                     CP2P_EINVAL);
    assert_int_equal(cp2p_node_add_addrs(b, cp2p_node_peer_id(a), addrs, 1, 0), CP2P_EINVAL);
    assert_int_equal(cp2p_node_add_addrs(b, cp2p_node_peer_id(a), addrs, 1, 60000), 0);
    assert_int_equal(cp2p_node_request(b, cp2p_node_peer_id(a), "/test/echo/1", "hello", 5,
                                       10000, &resp, &resp_len),
                     0);
    assert_int_equal(resp_len, 5);
    assert_memory_equal(resp, "hello", 5);
    cp2p_free(resp);
    cp2p_node_stop(b);
    cp2p_node_stop(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(dial_by_peer_id, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_address_then_good, setup, teardown),
        cmocka_unit_test_setup_teardown(concurrent_callers_share_one_dial, setup, teardown),
        cmocka_unit_test_setup_teardown(failure_backoff_then_success, setup, teardown),
        cmocka_unit_test_setup_teardown(stagger_race_timeout_and_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(host_close_cancels_dials, setup, teardown),
        cmocka_unit_test_setup_teardown(identify_and_ping_fill_the_peerstore, setup, teardown),
        cmocka_unit_test_setup_teardown(peerstore_survives_a_restart, setup, teardown),
        cmocka_unit_test_setup_teardown(restart_reconnects_to_known_peers, setup, teardown),
        cmocka_unit_test_setup_teardown(node_add_addrs_then_request, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
