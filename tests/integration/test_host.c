/* Two and more hosts in one process over loopback TCP: upgrade, identify, ping, streams,
 * perf, wrong peer IDs, bad input and clean shutdown. */
#include <string.h>

#include <sodium.h>

#include "integration/harness.h"
#include "swarm/swarm.h"
#include "transport/tcp_uv.h"

typedef struct {
    cp2p_host *h;
    int identified;
    int opened, closed;
    cp2p_conn *last_conn;
} node;

static void on_event(cp2p_host *h, const cp2p_event *ev, void *ud)
{
    node *n = ud;
    (void)h;
    if (ev->type == CP2P_EVENT_PEER_IDENTIFIED) {
        n->identified++;
    } else if (ev->type == CP2P_EVENT_CONN_OPENED) {
        n->opened++;
        n->last_conn = ev->conn;
    } else if (ev->type == CP2P_EVENT_CONN_CLOSED) {
        n->closed++;
    }
}

/* ---- echo protocol for the tests ---- */

static void echo_read(cp2p_stream *s, ptrdiff_t n, const uint8_t *data, void *ud)
{
    (void)ud;
    if (n == CP2P_EOF) {
        cp2p_stream_close(s);
    } else if (n < 0) {
        cp2p_stream_reset(s);
    } else if (cp2p_stream_write(s, data, (size_t)n, NULL, NULL) != 0) {
        cp2p_stream_reset(s);
    }
}

static void echo_handler(cp2p_stream *s, void *ud)
{
    (void)ud;
    assert_int_equal(cp2p_stream_read_start(s, echo_read, NULL), 0);
}

static void node_start(node *n, bool listen)
{
    cp2p_host_config cfg;
    cp2p_privkey *key;
    memset(n, 0, sizeof(*n));
    assert_int_equal(cp2p_privkey_generate(CP2P_KEY_ED25519, &key), 0);
    cp2p_host_config_default(&cfg);
    cfg.identity = key;
    cfg.perf_server = true;
    harness_config(&cfg);
    assert_int_equal(cp2p_host_new(&loop, &cfg, &n->h), 0);
    cp2p_privkey_free(key);
    cp2p_host_set_event_cb(n->h, on_event, n);
    assert_int_equal(cp2p_host_set_handler(n->h, "/test/echo/1.0.0", echo_handler, NULL), 0);
    if (listen) {
        harness_listen(n->h);
    }
}

/* a listening, b dialing it: the connection from b, upgraded. */
static cp2p_conn *connected_pair(node *a, node *b)
{
    dial_res r;
    node_start(a, true);
    node_start(b, false);
    cp2p_conn *c = dial_host(b->h, a->h, &r);
    assert_int_equal(r.status, 0);
    return c;
}

static bool closed_flag;
static void on_host_closed(cp2p_host *h, void *ud)
{
    (void)h;
    (*(int *)ud)++;
    closed_flag = true;
}

static void nodes_stop(node *ns, int count)
{
    int closed = 0;
    for (int i = 0; i < count; i++) {
        closed_flag = false;
        cp2p_host_close(ns[i].h, on_host_closed, &closed);
    }
    while (closed < count) {
        uv_run(&loop, UV_RUN_ONCE);
    }
}

static void connect_identify_and_close(void **state)
{
    node a, b;
    (void)state;
    cp2p_conn *c = connected_pair(&a, &b);
    assert_non_null(c);
    assert_true(cp2p_peer_id_equal(cp2p_conn_peer_id(c), cp2p_host_peer_id(a.h)));
    assert_true(cp2p_conn_is_outbound(c));
    /* Both sides identify each other. */
    while (a.identified < 1 || b.identified < 1) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    const cp2p_identify_info *info = cp2p_conn_identify(c);
    assert_non_null(info);
    assert_non_null(info->agent_version);
    assert_memory_equal(info->agent_version, "cp2p/", 5);
    bool has_echo = false;
    for (size_t i = 0; i < info->n_protocols; i++) {
        has_echo |= strcmp(info->protocols[i], "/test/echo/1.0.0") == 0;
    }
    assert_true(has_echo);
    assert_int_equal(info->n_listen_addrs, 1);
    assert_non_null(info->observed_addr);
    /* Identify push: a new handler on a reaches b. */
    int before = b.identified;
    assert_int_equal(cp2p_host_set_handler(a.h, "/test/new/1.0.0", echo_handler, NULL), 0);
    while (b.identified == before) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    info = cp2p_conn_identify(c);
    bool has_new = false;
    for (size_t i = 0; i < info->n_protocols; i++) {
        has_new |= strcmp(info->protocols[i], "/test/new/1.0.0") == 0;
    }
    assert_true(has_new);
    cp2p_conn_close(c);
    while (a.closed < 1 || b.closed < 1) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    nodes_stop((node[]){a, b}, 2);
}

static void ping_works(void **state)
{
    node a, b;
    (void)state;
    cp2p_conn *c = connected_pair(&a, &b);
    for (int i = 0; i < 10; i++) {
        ping_res p = {0};
        assert_int_equal(cp2p_ping(c, 5000, on_ping, &p), 0);
        run_until(&p.done);
        assert_int_equal(p.status, 0);
        assert_true(p.rtt > 0);
    }
    /* Streams closed from inside their read callback end with FIN, never RST: many pings in
     * a row must not look like a reset flood to the peer (a bug the benchmark found). */
    for (int i = 0; i < 400; i++) {
        ping_res q = {0};
        assert_int_equal(cp2p_ping(c, 5000, on_ping, &q), 0);
        run_until(&q.done);
        assert_int_equal(q.status, 0);
    }
    while (a.last_conn == NULL) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    assert_int_equal(cp2p__yamux_get_stats(a.last_conn->yamux)->streams_reset_remote, 0);
    assert_int_equal(cp2p__yamux_get_stats(c->yamux)->streams_reset_remote, 0);
    /* and from the other side */
    while (a.last_conn == NULL) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    ping_res p = {0};
    assert_int_equal(cp2p_ping(a.last_conn, 5000, on_ping, &p), 0);
    run_until(&p.done);
    assert_int_equal(p.status, 0);
    nodes_stop((node[]){a, b}, 2);
}

/* ---- many concurrent echo streams ---- */

#define NSTREAMS 50
#define STREAM_BYTES (256 * 1024)

typedef struct {
    uint8_t *sent;
    size_t got;
    bool done;
    bool ok;
    int *remaining;
    bool by_ref;         /* write with cp2p_stream_write_ref */
    unsigned ref_writes; /* of those, callbacks still to come */
} echo_client;

static void ec_ref_written(cp2p_stream *s, int status, void *ud)
{
    echo_client *e = ud;
    (void)s;
    assert_int_equal(status, 0);
    e->ref_writes--;
}

static void ec_read(cp2p_stream *s, ptrdiff_t n, const uint8_t *data, void *ud)
{
    echo_client *e = ud;
    if (n > 0) {
        if (e->got + (size_t)n > STREAM_BYTES || memcmp(e->sent + e->got, data, (size_t)n) != 0) {
            e->ok = false;
        }
        e->got += (size_t)n;
        return;
    }
    e->done = true;
    if (n != CP2P_EOF || e->got != STREAM_BYTES) {
        e->ok = false;
    }
    (*e->remaining)--;
    cp2p_stream_close(s);
}

static void ec_open(cp2p_stream *s, int status, void *ud)
{
    echo_client *e = ud;
    assert_int_equal(status, 0);
    assert_string_equal(cp2p_stream_protocol(s), "/test/echo/1.0.0");
    assert_int_equal(cp2p_stream_read_start(s, ec_read, e), 0);
    /* Write in pieces so several frames and window updates are needed. */
    for (size_t off = 0; off < STREAM_BYTES; off += 32768) {
        if (e->by_ref) {
            /* Read in place: the buffer outlives the callback (freed after the test). */
            assert_int_equal(cp2p_stream_write_ref(s, e->sent + off, 32768, NULL, NULL),
                             CP2P_EINVAL);
            assert_int_equal(cp2p_stream_write_ref(s, e->sent + off, 32768, ec_ref_written, e),
                             0);
            e->ref_writes++;
        } else {
            assert_int_equal(cp2p_stream_write(s, e->sent + off, 32768, NULL, NULL), 0);
        }
    }
    assert_int_equal(cp2p_stream_close_write(s), 0);
}

static void concurrent_echo_streams(void **state)
{
    static const char *const protos[] = {"/nope/1.0.0", "/test/echo/1.0.0"};
    node a, b;
    echo_client e[NSTREAMS];
    int remaining = NSTREAMS;
    (void)state;
    cp2p_conn *c = connected_pair(&a, &b);
    for (int i = 0; i < NSTREAMS; i++) {
        e[i] = (echo_client){.sent = malloc(STREAM_BYTES), .ok = true, .remaining = &remaining,
                             .by_ref = i % 2 == 1};
        randombytes_buf(e[i].sent, STREAM_BYTES);
        assert_int_equal(cp2p_conn_open_stream(c, protos, 2, ec_open, &e[i]), 0);
    }
    while (remaining > 0) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    for (int i = 0; i < NSTREAMS; i++) {
        assert_true(e[i].ok);
        assert_int_equal(e[i].ref_writes, 0); /* every write_ref callback ran, once */
        free(e[i].sent);
    }
    nodes_stop((node[]){a, b}, 2);
}

typedef struct {
    bool done;
    int status;
} open_res;

static void on_open_res(cp2p_stream *s, int status, void *ud)
{
    open_res *o = ud;
    o->done = true;
    o->status = status;
    if (s != NULL) {
        cp2p_stream_reset(s);
    }
}

static void unsupported_protocol_is_refused(void **state)
{
    static const char *const protos[] = {"/nope/1.0.0", "/nope/2.0.0"};
    node a, b;
    open_res o = {0};
    (void)state;
    cp2p_conn *c = connected_pair(&a, &b);
    assert_int_equal(cp2p_conn_open_stream(c, protos, 0, on_open_res, &o), CP2P_EINVAL);
    assert_int_equal(cp2p_conn_open_stream(c, protos, 2, on_open_res, &o), 0);
    run_until(&o.done);
    assert_int_equal(o.status, CP2P_ENOTSUP);
    /* A removed handler is refused too, and the connection keeps working. */
    static const char *const echo[] = {"/test/echo/1.0.0"};
    assert_int_equal(cp2p_host_remove_handler(a.h, "/test/echo/1.0.0"), 0);
    o = (open_res){0};
    assert_int_equal(cp2p_conn_open_stream(c, echo, 1, on_open_res, &o), 0);
    run_until(&o.done);
    assert_int_equal(o.status, CP2P_ENOTSUP);
    ping_res p = {0};
    assert_int_equal(cp2p_ping(c, 5000, on_ping, &p), 0);
    run_until(&p.done);
    assert_int_equal(p.status, 0);
    nodes_stop((node[]){a, b}, 2);
}

typedef struct {
    bool done;
    int status;
    cp2p_perf_result r;
} perf_res;

static void on_perf(cp2p_conn *c, int status, const cp2p_perf_result *res, void *ud)
{
    perf_res *p = ud;
    (void)c;
    p->done = true;
    p->status = status;
    if (res != NULL) {
        p->r = *res;
    }
}

static void perf_both_ways(void **state)
{
    node a, b;
    (void)state;
    cp2p_conn *c = connected_pair(&a, &b);
    perf_res p = {0};
    assert_int_equal(cp2p_perf(c, 32u << 20, 48u << 20, on_perf, &p), 0);
    run_until(&p.done);
    assert_int_equal(p.status, 0);
    assert_int_equal(p.r.upload_bytes, 32u << 20);
    assert_int_equal(p.r.download_bytes, 48u << 20);
    p = (perf_res){0};
    assert_int_equal(cp2p_perf(c, 0, 0, on_perf, &p), 0);
    run_until(&p.done);
    assert_int_equal(p.status, 0);
    nodes_stop((node[]){a, b}, 2);
}

static void wrong_peer_id_is_refused(void **state)
{
    node a, b;
    dial_res r = {0};
    cp2p_multiaddr *ma, *bad;
    cp2p_buf s;
    (void)state;
    node_start(&a, true);
    node_start(&b, false);
    /* a's address with b's own... no: with a third, random peer ID */
    cp2p_privkey *k;
    cp2p_peer_id other;
    assert_int_equal(cp2p_privkey_generate(CP2P_KEY_ED25519, &k), 0);
    assert_int_equal(cp2p_peer_id_from_pubkey(cp2p_privkey_public(k), &other), 0);
    cp2p_privkey_free(k);
    assert_int_equal(cp2p_host_listen_addr(a.h, 0, false, &ma), 0);
    cp2p_buf_init(&s, 4096);
    assert_int_equal(cp2p_multiaddr_to_string(ma, &s), 0);
    assert_int_equal(cp2p_buf_append(&s, "/p2p/", 5), 0);
    assert_int_equal(cp2p_peer_id_to_base58(&other, &s), 0);
    assert_int_equal(cp2p_multiaddr_parse((const char *)s.ptr, s.len, &bad), 0);
    assert_int_equal(cp2p_host_dial(b.h, bad, on_dial, &r), 0);
    run_until(&r.done);
    assert_int_equal(r.status, CP2P_EPEERID);
    assert_null(r.conn);
    cp2p_buf_fini(&s);
    cp2p_multiaddr_free(ma);
    cp2p_multiaddr_free(bad);
    /* Dialing a closed port (a name nobody listens on) fails cleanly. */
    r = (dial_res){0};
    const char *closed = harness_memory() ? "/memory/nobody" : "/ip4/127.0.0.1/tcp/1";
    assert_int_equal(cp2p_multiaddr_parse(closed, strlen(closed), &bad), 0);
    assert_int_equal(cp2p_host_dial(b.h, bad, on_dial, &r), 0);
    run_until(&r.done);
    assert_int_equal(r.status, CP2P_EIO);
    cp2p_multiaddr_free(bad);
    nodes_stop((node[]){a, b}, 2);
}

/* /dns4/localhost/... resolves (from /etc/hosts) through the thread pool and connects. */
static void dial_by_dns_name(void **state)
{
    node a, b;
    dial_res r = {0};
    cp2p_multiaddr *ma, *dns;
    cp2p_multiaddr_component port;
    char text[256];
    char pid[CP2P_PEER_ID_STR_MAX];
    (void)state;
    harness_skip_on_memory("DNS names resolve to TCP addresses only");
    node_start(&a, true);
    node_start(&b, false);
    assert_int_equal(cp2p_host_listen_addr(a.h, 0, false, &ma), 0);
    assert_int_equal(cp2p_multiaddr_component_at(ma, 1, &port), 0);
    int n = snprintf(text, sizeof(text), "/dns4/localhost/tcp/%u/p2p/%s",
                     (unsigned)(port.value.ptr[0] << 8 | port.value.ptr[1]),
                     cp2p_peer_id_str(cp2p_host_peer_id(a.h), pid));
    assert_int_equal(cp2p_multiaddr_parse(text, (size_t)n, &dns), 0);
    assert_int_equal(cp2p_host_dial(b.h, dns, on_dial, &r), 0);
    run_until(&r.done);
    assert_int_equal(r.status, 0);
    cp2p_multiaddr_free(dns);
    cp2p_multiaddr_free(ma);
    /* (No lookup of an unknown name here: it would send a query off this machine.) */
    /* Not TCP: refused at once, no callback. */
    assert_int_equal(cp2p_multiaddr_parse("/ip4/127.0.0.1/udp/1/quic-v1", 28, &dns), 0);
    assert_int_equal(cp2p_host_dial(b.h, dns, on_dial, &r), CP2P_ENOTSUP);
    cp2p_multiaddr_free(dns);
    nodes_stop((node[]){a, b}, 2);
}

/* A host on 0.0.0.0 announces its interface addresses, loopback among them, and a peer
 * dials the loopback one. */
static void unspecified_listen_address_expands(void **state)
{
    node a, b;
    dial_res r;
    cp2p_multiaddr *ma, *addrs[32];
    (void)state;
    harness_skip_on_memory("0.0.0.0 and interface addresses are TCP's");
    node_start(&a, false);
    node_start(&b, false);
    assert_int_equal(cp2p_multiaddr_parse("/ip4/0.0.0.0/tcp/0", 18, &ma), 0);
    assert_int_equal(cp2p_host_listen(a.h, ma), 0);
    cp2p_multiaddr_free(ma);
    ptrdiff_t n = cp2p_host_addrs(a.h, true, addrs, 32);
    assert_true(n >= 1);
    ptrdiff_t loopback = -1;
    for (ptrdiff_t i = 0; i < n; i++) {
        cp2p_buf t;
        cp2p_buf_init(&t, CP2P_MULTIADDR_STR_MAX);
        assert_int_equal(cp2p_multiaddr_to_string(addrs[i], &t), 0);
        assert_null(strstr((const char *)t.ptr, "0.0.0.0"));
        if (strncmp((const char *)t.ptr, "/ip4/127.0.0.1/tcp/", 19) == 0) {
            loopback = i;
        }
        cp2p_buf_fini(&t);
    }
    assert_true(loopback >= 0);
    r = (dial_res){0};
    assert_int_equal(cp2p_host_dial(b.h, addrs[loopback], on_dial, &r), 0);
    run_until(&r.done);
    assert_int_equal(r.status, 0);
    assert_ping_ok(r.conn);
    for (ptrdiff_t i = 0; i < n; i++) {
        cp2p_multiaddr_free(addrs[i]);
    }
    nodes_stop((node[]){a, b}, 2);
}

/* Resource limits: a protocol's inbound streams per connection, and bytes queued per
 * connection. Streams past the protocol limit are reset and counted; the rest work. */
static int held_count;
static cp2p_stream *held[8];

static void hold_handler(cp2p_stream *s, void *ud)
{
    (void)ud;
    held[held_count++] = s; /* keep it open */
}

typedef struct {
    int opened, reset;
} limit_res;

static void limit_read(cp2p_stream *s, ptrdiff_t n, const uint8_t *data, void *ud)
{
    limit_res *r = ud;
    (void)data;
    if (n == CP2P_ERESET) {
        r->reset++;
        cp2p_stream_close(s);
    } else if (n < 0) {
        cp2p_stream_close(s);
    }
}

static void limit_open(cp2p_stream *s, int status, void *ud)
{
    limit_res *r = ud;
    if (status == CP2P_ERESET) {
        r->reset++; /* the reset overtook the listener's echo: also a refusal */
        return;
    }
    assert_int_equal(status, 0);
    r->opened++;
    assert_int_equal(cp2p_stream_read_start(s, limit_read, r), 0);
}

static int write_budget_rc;
static void budget_open(cp2p_stream *s, int status, void *ud)
{
    static uint8_t big[2 * 1024 * 1024];
    (void)ud;
    assert_int_equal(status, 0);
    write_budget_rc = cp2p_stream_write(s, big, sizeof(big), NULL, NULL);
    cp2p_stream_reset(s);
}

static void resource_limits(void **state)
{
    static const char *const protos[] = {"/test/hold/1.0.0"};
    node a, b;
    dial_res r;
    limit_res lr = {0};
    (void)state;
    held_count = 0;
    node_start(&a, true);
    node_start(&b, false);
    a.h->cfg.max_inbound_per_protocol = 3;
    b.h->cfg.max_conn_write_buffer = 1024 * 1024;
    assert_int_equal(cp2p_host_set_handler(a.h, protos[0], hold_handler, NULL), 0);
    cp2p_conn *c = dial_host(b.h, a.h, &r);
    assert_int_equal(r.status, 0);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(cp2p_conn_open_stream(c, protos, 1, limit_open, &lr), 0);
    }
    while (lr.reset < 2 || held_count < 3) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    assert_int_equal(held_count, 3);
    assert_int_equal(cp2p__host_stats_get(a.h)->streams_over_protocol_limit, 2);
    /* Other protocols on the same connection are unaffected. */
    assert_ping_ok(c);
    for (int i = 0; i < held_count; i++) {
        cp2p_stream_reset(held[i]);
    }
    /* A write larger than the connection's write budget (1 MiB here) is refused up front. */
    static const char *const echo[] = {"/test/echo/1.0.0"};
    write_budget_rc = 1;
    assert_int_equal(cp2p_conn_open_stream(c, echo, 1, budget_open, NULL), 0);
    while (write_budget_rc == 1) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    assert_int_equal(write_budget_rc, CP2P_ELIMIT);
    nodes_stop((node[]){a, b}, 2);
}

/* ---- a stream the peer opens while our output is at its cap (issue 10) ----
 * b opens NSRC "source" streams to a, stops reading its socket, and asks each for 512 KiB: a's
 * writes fill the kernel, its socket write queue and then yamux's output cap (made small here).
 * b then opens an echo stream. a's listener answers while yamux takes no byte: the answer must
 * wait in front of the stream's writes, not be dropped with the negotiator (it was, and the
 * stream hung until the peer gave up). */
#define NSRC 32
#define SRC_BYTES (512 * 1024)

static void src_read(cp2p_stream *s, ptrdiff_t n, const uint8_t *data, void *ud)
{
    static uint8_t blob[SRC_BYTES];
    (void)data;
    (void)ud;
    if (n > 0) {
        int rc = cp2p_stream_write(s, blob, sizeof(blob), NULL, NULL);
        assert_true(rc == 0 || rc == CP2P_ECLOSED); /* closed once b resets it */
    } else {
        cp2p_stream_close(s);
    }
}

static void src_handler(cp2p_stream *s, void *ud)
{
    (void)ud;
    assert_int_equal(cp2p_stream_read_start(s, src_read, NULL), 0);
}

typedef struct {
    cp2p_stream *s[NSRC];
    int opened;
} src_set;

static void src_open(cp2p_stream *s, int status, void *ud)
{
    src_set *ss = ud;
    assert_int_equal(status, 0);
    ss->s[ss->opened++] = s;
}

typedef struct {
    bool done;
    int status;
    char got[16];
    size_t len;
} hello_res;

static void hello_read(cp2p_stream *s, ptrdiff_t n, const uint8_t *data, void *ud)
{
    hello_res *h = ud;
    if (n > 0) {
        size_t k = (size_t)n < sizeof(h->got) - h->len ? (size_t)n : sizeof(h->got) - h->len;
        memcpy(h->got + h->len, data, k);
        h->len += k;
        if (h->len >= 5) {
            h->done = true;
            cp2p_stream_close(s);
        }
    } else {
        h->done = true;
        cp2p_stream_close(s);
    }
}

static void hello_open(cp2p_stream *s, int status, void *ud)
{
    hello_res *h = ud;
    h->status = status;
    if (status != 0) {
        h->done = true;
        return;
    }
    assert_int_equal(cp2p_stream_write(s, "hello", 5, NULL, NULL), 0);
    assert_int_equal(cp2p_stream_read_start(s, hello_read, h), 0);
}

/* a and b connected, identified, with small socket buffers, and nsrc source streams from b
 * to a open. Returns b's connection; *ac is a's. */
static cp2p_conn *stall_setup(node *a, node *b, src_set *ss, int nsrc, cp2p_conn **ac)
{
    static const char *const src[] = {"/test/source/1.0.0"};
    dial_res r;
    node_start(a, true);
    node_start(b, false);
    assert_int_equal(cp2p_host_set_handler(a->h, src[0], src_handler, NULL), 0);
    cp2p_conn *c = dial_host(b->h, a->h, &r);
    assert_int_equal(r.status, 0);
    while (a->identified < 1 || b->identified < 1 || a->last_conn == NULL) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    *ac = a->last_conn;
    /* Small kernel buffers keep what the sockets hold far below what a will write (the
     * memory transport holds CP2P_MEMNET_QUEUE_MAX per direction, also far below). */
    if (!harness_memory()) {
        int sz = 64 * 1024;
        uv_handle_t *hs = (uv_handle_t *)cp2p__tcp_tconn_handle((*ac)->t);
        assert_int_equal(uv_send_buffer_size(hs, &sz), 0);
        sz = 64 * 1024;
        assert_int_equal(uv_recv_buffer_size((uv_handle_t *)cp2p__tcp_tconn_handle(c->t), &sz),
                         0);
    }
    for (int i = 0; i < nsrc; i++) {
        assert_int_equal(cp2p_conn_open_stream(c, src, 1, src_open, ss), 0);
    }
    while (ss->opened < nsrc) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    return c;
}

/* b stops reading its socket and asks every source for its 512 KiB. */
static void stall_go(cp2p_conn *c, src_set *ss)
{
    assert_int_equal(cp2p__conn_set_read_paused(c, true), 0);
    for (int i = 0; i < ss->opened; i++) {
        assert_int_equal(cp2p_stream_write(ss->s[i], "g", 1, NULL, NULL), 0);
    }
}

static void inbound_stream_under_backpressure(void **state)
{
    static const char *const echo[] = {"/test/echo/1.0.0"};
    node a, b;
    src_set ss = {0};
    hello_res hr = {0};
    cp2p_conn *ac;
    (void)state;
    cp2p_conn *c = stall_setup(&a, &b, &ss, NSRC, &ac);
    assert_int_equal(cp2p__yamux_set_max_out_buffered(ac->yamux, 64 * 1024), 0);
    /* (64 KiB is also the host's running cap: earlier traffic may have stalled already.) */
    uint64_t stalls0 = cp2p__yamux_get_stats(ac->yamux)->out_stalls;
    stall_go(c, &ss);
    /* a's yamux refuses data: its output cap is reached, nothing drains while b is paused. */
    while (cp2p__yamux_get_stats(ac->yamux)->out_stalls == stalls0) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    uint64_t opened = cp2p__host_stats_get(a.h)->streams_opened;
    uint64_t deferred = cp2p__host_stats_get(a.h)->negotiation_output_deferred;
    /* The streams are served only while the socket writes have room, so a's yamux output is
     * empty now, not full: a one-byte cap makes it refuse the answer to the new stream. */
    assert_int_equal(cp2p__yamux_set_max_out_buffered(ac->yamux, 1), 0);
    assert_int_equal(cp2p_conn_open_stream(c, echo, 1, hello_open, &hr), 0);
    while (cp2p__host_stats_get(a.h)->streams_opened == opened) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    /* a's echo handler runs with its answer still unsent: it waits in the stream's queue. */
    assert_int_equal(cp2p__host_stats_get(a.h)->negotiation_output_deferred, deferred + 1);
    assert_int_equal(cp2p__yamux_set_max_out_buffered(ac->yamux, 64 * 1024), 0);
    for (int i = 0; i < NSRC; i++) {
        cp2p_stream_reset(ss.s[i]);
    }
    assert_int_equal(cp2p__conn_set_read_paused(c, false), 0);
    run_until(&hr.done);
    assert_int_equal(hr.status, 0);
    assert_int_equal(hr.len, 5);
    assert_memory_equal(hr.got, "hello", 5);
    assert_ping_ok(c);
    nodes_stop((node[]){a, b}, 2);
}

/* A graceful close lets out what yamux holds even while the socket's write queue is at its
 * cap: the answer written just before cp2p_conn_close() reaches the peer (it stayed behind the
 * cap and was freed with the connection). */
static void last_words_read(cp2p_stream *s, ptrdiff_t n, const uint8_t *data, void *ud)
{
    (void)ud;
    if (n > 0) {
        assert_int_equal(cp2p_stream_write(s, data, (size_t)n, NULL, NULL), 0);
        cp2p_conn_close(cp2p_stream_conn(s));
    } else {
        cp2p_stream_close(s);
    }
}

static void last_words_handler(cp2p_stream *s, void *ud)
{
    (void)ud;
    assert_int_equal(cp2p_stream_read_start(s, last_words_read, NULL), 0);
}

static cp2p_stream *last_stream;
static void last_open(cp2p_stream *s, int status, void *ud)
{
    assert_int_equal(status, 0);
    last_stream = s;
    assert_int_equal(cp2p_stream_read_start(s, hello_read, ud), 0);
}

static void graceful_close_under_backpressure(void **state)
{
    static const char *const last[] = {"/test/last-words/1.0.0"};
    node a, b;
    src_set ss = {0};
    hello_res hr = {0};
    cp2p_conn *ac;
    (void)state;
    /* 20 windows of 256 KiB: the socket's write queue (4 MiB) fills, yamux keeps the rest. */
    cp2p_conn *c = stall_setup(&a, &b, &ss, 20, &ac);
    assert_int_equal(cp2p_host_set_handler(a.h, last[0], last_words_handler, NULL), 0);
    last_stream = NULL;
    assert_int_equal(cp2p_conn_open_stream(c, last, 1, last_open, &hr), 0);
    while (last_stream == NULL) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    stall_go(c, &ss);
    while (ac->write_inflight < ac->max_write_inflight) { /* the cap in force */
        uv_run(&loop, UV_RUN_ONCE);
    }
    /* a echoes the hello and closes the connection at once, its socket queue full. */
    uint64_t closed = cp2p__host_stats_get(a.h)->conns_closed;
    assert_int_equal(cp2p_stream_write(last_stream, "hello", 5, NULL, NULL), 0);
    while (cp2p__host_stats_get(a.h)->conns_closed == closed) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    assert_int_equal(cp2p__conn_set_read_paused(c, false), 0);
    run_until(&hr.done);
    assert_int_equal(hr.len, 5);
    assert_memory_equal(hr.got, "hello", 5);
    while (a.closed < 1 || b.closed < 1) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    nodes_stop((node[]){a, b}, 2);
}

/* A write queued on a stream the application then resets is failed, with its callback, even
 * when the connection closes before the loop serves the stream (the callback's context used
 * to leak: integration_reactor under ASan, CI of 2026-12-04). */
typedef struct {
    cp2p_stream *s;
    int calls, status;
} reset_res;

static void rq_open(cp2p_stream *s, int status, void *ud)
{
    reset_res *r = ud;
    assert_int_equal(status, 0);
    r->s = s;
}

static void rq_written(cp2p_stream *s, int status, void *ud)
{
    reset_res *r = ud;
    (void)s;
    r->calls++;
    r->status = status;
}

static void reset_then_close_fails_queued_writes(void **state)
{
    static const char *const echo[] = {"/test/echo/1.0.0"};
    node a, b;
    (void)state;
    cp2p_conn *c = connected_pair(&a, &b);
    for (int i = 0; i < 2; i++) {
        reset_res rr = {0};
        assert_int_equal(cp2p_conn_open_stream(c, echo, 1, rq_open, &rr), 0);
        while (rr.s == NULL) {
            uv_run(&loop, UV_RUN_ONCE);
        }
        assert_int_equal(cp2p_stream_write(rr.s, "queued", 6, rq_written, &rr), 0);
        cp2p_stream_reset(rr.s);
        assert_int_equal(rr.calls, 0); /* never inside the call that caused it */
        if (i == 0) {
            uv_run(&loop, UV_RUN_NOWAIT); /* the loop fails it */
            assert_int_equal(rr.calls, 1);
        } else {
            cp2p_conn_close(c); /* before the loop runs: the teardown fails it */
            assert_int_equal(rr.calls, 1);
        }
        assert_int_equal(rr.status, CP2P_ERESET);
    }
    while (a.closed < 1 || b.closed < 1) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    nodes_stop((node[]){a, b}, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(connect_identify_and_close, setup, teardown),
        cmocka_unit_test_setup_teardown(ping_works, setup, teardown),
        cmocka_unit_test_setup_teardown(concurrent_echo_streams, setup, teardown),
        cmocka_unit_test_setup_teardown(unsupported_protocol_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(perf_both_ways, setup, teardown),
        cmocka_unit_test_setup_teardown(wrong_peer_id_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(dial_by_dns_name, setup, teardown),
        cmocka_unit_test_setup_teardown(unspecified_listen_address_expands, setup, teardown),
        cmocka_unit_test_setup_teardown(resource_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(inbound_stream_under_backpressure, setup, teardown),
        cmocka_unit_test_setup_teardown(graceful_close_under_backpressure, setup, teardown),
        cmocka_unit_test_setup_teardown(reset_then_close_fails_queued_writes, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
