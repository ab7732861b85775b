/* Faults on the in-memory network (cp2p/memnet.h): a link with latency and loss, then a
 * partition that heals. Requests either complete or fail with a clear error; the connection
 * either recovers or closes cleanly; and everything is freed (the suite runs under ASan too).
 * This suite makes its own network whatever CP2P_TEST_TRANSPORT says. */
#include <string.h>

#include "integration/harness.h"

#include <cp2p/peerstore.h>
#include <cp2p/reqresp.h>

#define P_ECHO "/test/fault-echo/1.0.0"

static cp2p_memnet *net;

typedef struct {
    cp2p_host *h;
    int opened, closed;
} peer;

static void on_event(cp2p_host *h, const cp2p_event *ev, void *ud)
{
    peer *p = ud;
    (void)h;
    if (ev->type == CP2P_EVENT_CONN_OPENED) {
        p->opened++;
    } else if (ev->type == CP2P_EVENT_CONN_CLOSED) {
        p->closed++;
    }
}

static void echo_handler(cp2p_reqresp_responder *r, cp2p_conn *c, const uint8_t *req,
                         size_t len, void *ud)
{
    (void)c;
    (void)ud;
    assert_int_equal(cp2p_reqresp_respond(r, req, len), 0);
}

static void peer_start(peer *p, const char *name)
{
    cp2p_host_config cfg;
    cp2p_privkey *key;
    cp2p_multiaddr *ma;
    char text[64];
    memset(p, 0, sizeof(*p));
    assert_int_equal(cp2p_privkey_generate(CP2P_KEY_ED25519, &key), 0);
    cp2p_host_config_default(&cfg);
    cfg.identity = key;
    cfg.reconnect_known_peers = CP2P_HOST_NO_RECONNECT;
    cfg.memnet = net;
    cfg.keepalive_ms = 1000; /* the partition outlasts a few keepalives */
    cfg.dial_timeout_ms = 1000;
    assert_int_equal(cp2p_host_new(&loop, &cfg, &p->h), 0);
    cp2p_privkey_free(key);
    cp2p_host_set_event_cb(p->h, on_event, p);
    int n = snprintf(text, sizeof(text), "/memory/%s", name);
    assert_int_equal(cp2p_multiaddr_parse(text, (size_t)n, &ma), 0);
    assert_int_equal(cp2p_host_listen(p->h, ma), 0);
    cp2p_multiaddr_free(ma);
}

static void on_closed(cp2p_host *h, void *ud)
{
    (void)h;
    (*(int *)ud)++;
}

/* Close both hosts, then the network they were on. */
static void close_all(cp2p_host *x, cp2p_host *y)
{
    int closed = 0;
    cp2p_host_close(x, on_closed, &closed);
    cp2p_host_close(y, on_closed, &closed);
    while (closed < 2) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    assert_int_equal(cp2p_memnet_close(net, NULL, NULL), 0);
    net = NULL;
}

typedef struct {
    bool done;
    int status;
    size_t len;
    bool same;
    const uint8_t *want;
} req_res;

static void on_resp(cp2p_conn *c, int status, const uint8_t *resp, size_t len, void *ud)
{
    req_res *r = ud;
    (void)c;
    r->done = true;
    r->status = status;
    r->len = len;
    r->same = status == 0 && len > 0 && memcmp(resp, r->want, len) == 0;
}

static void request(cp2p_conn *c, const uint8_t *data, size_t len, uint64_t timeout_ms,
                    req_res *r)
{
    cp2p_reqresp_config cfg;
    cp2p_reqresp_config_default(&cfg);
    cfg.timeout_ms = timeout_ms;
    *r = (req_res){.want = data};
    assert_int_equal(cp2p_reqresp_request(c, P_ECHO, &cfg, data, len, on_resp, r), 0);
}

static void lossy_link_then_partition(void **state)
{
    static uint8_t data[32 * 1024];
    peer srv, cli;
    dial_res d;
    req_res r;
    cp2p_memnet_stats st;
    (void)state;
    assert_int_equal(cp2p_memnet_new(&loop, 1234, &net), 0);
    for (size_t i = 0; i < sizeof(data); i++) {
        data[i] = (uint8_t)(i * 31 + 7);
    }
    peer_start(&srv, "srv");
    peer_start(&cli, "cli");
    assert_int_equal(cp2p_reqresp_register(srv.h, P_ECHO, NULL, echo_handler, NULL), 0);
    cp2p_memnet_link lossy = {.latency_ms = 20, .bandwidth_bps = 10 * 1000 * 1000, .loss = 0.05};
    assert_int_equal(cp2p_memnet_link_set(net, "srv", "cli", &lossy), 0);
    cp2p_conn *c = dial_host(cli.h, srv.h, &d);
    assert_int_equal(d.status, 0);

    /* Latency, bandwidth and loss only delay: every request completes, intact. */
    for (int i = 0; i < 10; i++) {
        request(c, data, sizeof(data), 10000, &r);
        run_until(&r.done);
        assert_int_equal(r.status, 0);
        assert_int_equal(r.len, sizeof(data));
        assert_true(r.same);
    }
    assert_int_equal(cp2p_memnet_link_stats(net, "srv", "cli", &st), 0);
    assert_true(st.segments_delayed > 0); /* the loss was exercised */

    /* A partition: the request in flight fails with a clear error, not silence. */
    assert_int_equal(cp2p_memnet_cut(net, "cli", "srv"), 0);
    request(c, data, 1000, 500, &r);
    run_until(&r.done);
    assert_int_equal(r.status, CP2P_ETIMEDOUT);
    run_for(1500); /* a keepalive or two is held too */
    assert_int_equal(cp2p_memnet_link_stats(net, "srv", "cli", &st), 0);
    assert_true(st.bytes_held > 0);

    /* Heal: held bytes flow again. The connection either recovered or closed cleanly; either
     * way a request then completes (on a new connection if needed). */
    assert_int_equal(cp2p_memnet_heal(net, "srv", "cli"), 0);
    run_for(300);
    if (cli.closed > 0) {
        c = dial_host(cli.h, srv.h, &d);
        assert_int_equal(d.status, 0);
    }
    request(c, data, sizeof(data), 10000, &r);
    run_until(&r.done);
    assert_int_equal(r.status, 0);
    assert_true(r.same);

    close_all(cli.h, srv.h);
}

/* Dials on the memory network: a name nobody listens on fails at once (CP2P_EIO); across a
 * cut a dial fails with CP2P_ETIMEDOUT after the host's dial timeout; a partition that heals
 * before the timeout lets the dial through. */
static void dials_refused_and_cut(void **state)
{
    peer a, b;
    dial_res d = {0};
    cp2p_multiaddr *ma;
    cp2p_memnet_stats st;
    (void)state;
    assert_int_equal(cp2p_memnet_new(&loop, 5, &net), 0);
    peer_start(&a, "a");
    peer_start(&b, "b");
    assert_int_equal(cp2p_multiaddr_parse("/memory/nobody", 14, &ma), 0);
    assert_int_equal(cp2p_host_dial(a.h, ma, on_dial, &d), 0);
    assert_false(d.done); /* never inside the call */
    run_until(&d.done);
    assert_int_equal(d.status, CP2P_EIO);
    cp2p_multiaddr_free(ma);
    assert_int_equal(cp2p_memnet_cut(net, "a", "b"), 0);
    assert_int_equal(cp2p_host_listen_addr(b.h, 0, true, &ma), 0);
    d = (dial_res){0};
    assert_int_equal(cp2p_host_dial(a.h, ma, on_dial, &d), 0);
    run_until(&d.done);
    assert_int_equal(d.status, CP2P_ETIMEDOUT);
    cp2p_memnet_stats_get(net, &st);
    assert_int_equal(st.dials_timed_out, 1);
    assert_int_equal(st.dials_refused, 1);
    d = (dial_res){0};
    assert_int_equal(cp2p_host_dial(a.h, ma, on_dial, &d), 0);
    run_for(100);
    assert_false(d.done);
    assert_int_equal(cp2p_memnet_heal(net, "a", "b"), 0);
    run_until(&d.done);
    assert_int_equal(d.status, 0);
    assert_ping_ok(d.conn);
    cp2p_multiaddr_free(ma);
    close_all(a.h, b.h);
}

/* /memory/NAME/p2p/ID dials, and a peer known by its memory address in the peerstore is
 * dialed by peer ID through the dialer. */
static void dial_by_peer_id(void **state)
{
    peer a, b;
    dial_res d = {0};
    cp2p_multiaddr *ma;
    (void)state;
    assert_int_equal(cp2p_memnet_new(&loop, 9, &net), 0);
    peer_start(&a, "a");
    peer_start(&b, "b");
    assert_int_equal(cp2p_multiaddr_parse("/memory/b", 9, &ma), 0);
    const cp2p_multiaddr *addrs[] = {ma};
    assert_int_equal(cp2p_peerstore_add_addrs(cp2p_host_peerstore(a.h), cp2p_host_peer_id(b.h),
                                              addrs, 1, CP2P_PEERSTORE_TTL_PERMANENT,
                                              CP2P_ADDR_SOURCE_MANUAL, 0),
                     0);
    cp2p_multiaddr_free(ma);
    assert_int_equal(cp2p_host_dial_peer(a.h, cp2p_host_peer_id(b.h), on_dial, &d), 0);
    run_until(&d.done);
    assert_int_equal(d.status, 0);
    assert_true(cp2p_peer_id_equal(cp2p_conn_peer_id(d.conn), cp2p_host_peer_id(b.h)));
    assert_ping_ok(d.conn);
    /* The connection's addresses are memory addresses; no IP is counted for it. */
    cp2p_buf t;
    cp2p_buf_init(&t, CP2P_MULTIADDR_STR_MAX);
    assert_int_equal(cp2p_multiaddr_to_string(cp2p_conn_remote_addr(d.conn), &t), 0);
    assert_string_equal((const char *)t.ptr, "/memory/b");
    cp2p_buf_fini(&t);
    close_all(a.h, b.h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(lossy_link_then_partition, setup, teardown),
        cmocka_unit_test_setup_teardown(dials_refused_and_cut, setup, teardown),
        cmocka_unit_test_setup_teardown(dial_by_peer_id, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
