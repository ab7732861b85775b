/* The node info handshake of the switch (cp2p/reactor.h, cp2p/nodeinfo.h) between hosts on one
 * loop: switches on different networks (or block versions, or with no channel in common) never
 * see each other in add_peer and count the refusal by reason, while the same network does and
 * its reactors read the peer's node info; a peer whose node info is malformed or names another
 * peer id is rejected and counted; a peer that runs the keepalive but never sends its node
 * info is dropped after the handshake timeout (and, with disconnect_rejected, disconnected).
 * Only the public surface, plus the node info encoder for hand-made peers. */
#include <stdio.h>
#include <string.h>

#include <cp2p/buf.h>
#include <cp2p/codec.h>
#include <cp2p/reactor.h>

#include "integration/harness.h"
#include "reactor/nodeinfo.h"

typedef struct node {
    cp2p_host *h;
    cp2p_switch *sw;
    cp2p_reactor *r;
    int added, removed, got;
    cp2p_reactor_peer *peer;
    char peer_moniker[CP2P_NODEINFO_MONIKER_MAX + 1];
} node;

static void on_add(cp2p_reactor *r, cp2p_reactor_peer *p, void *ud)
{
    node *n = ud;
    (void)r;
    n->added++;
    n->peer = p;
    const cp2p_node_info *ni = cp2p_reactor_peer_node_info(p);
    snprintf(n->peer_moniker, sizeof(n->peer_moniker), "%s", ni->moniker);
}

static void on_remove(cp2p_reactor *r, cp2p_reactor_peer *p, const char *reason, void *ud)
{
    node *n = ud;
    (void)r;
    (void)p;
    (void)reason;
    n->removed++;
}

static void on_receive(cp2p_reactor *r, uint8_t ch, cp2p_reactor_peer *p, const uint8_t *msg,
                       size_t len, void *ud)
{
    node *n = ud;
    (void)r;
    (void)ch;
    (void)p;
    (void)msg;
    (void)len;
    n->got++;
}

static void on_host_closed(cp2p_host *h, void *ud)
{
    (void)h;
    *(bool *)ud = true;
}

/* A switch with one reactor on `chans`, on network `net`, block version `block`. */
static void node_make(node *n, const char *net, uint64_t block, const uint8_t *chans, size_t nch,
                      const char *moniker, cp2p_switch_config *cfg_in)
{
    memset(n, 0, sizeof(*n));
    n->h = harness_host();
    cp2p_node_info ni;
    cp2p_node_info_default(&ni);
    snprintf(ni.network, sizeof(ni.network), "%s", net);
    snprintf(ni.moniker, sizeof(ni.moniker), "%s", moniker);
    ni.block_version = block;
    cp2p_switch_config cfg;
    if (cfg_in != NULL) {
        cfg = *cfg_in;
    } else {
        cp2p_switch_config_default(&cfg);
    }
    cfg.node_info = &ni;
    assert_int_equal(cp2p_switch_new(n->h, &cfg, &n->sw), 0);
    cp2p_channel_desc cd[4];
    for (size_t i = 0; i < nch; i++) {
        cd[i] = (cp2p_channel_desc){.id = chans[i], .priority = 5};
    }
    cp2p_reactor_desc d = {.name = "r", .channels = cd, .n_channels = nch, .add_peer = on_add,
                           .remove_peer = on_remove, .receive = on_receive};
    assert_int_equal(cp2p_switch_add_reactor(n->sw, &d, n, &n->r), 0);
    assert_int_equal(cp2p_switch_start(n->sw), 0);
    /* ours as sent: the switch filled in the id and channels */
    const cp2p_node_info *ours = cp2p_switch_node_info(n->sw);
    char id[CP2P_PEER_ID_STR_MAX];
    assert_string_equal(ours->node_id, cp2p_peer_id_str(cp2p_host_peer_id(n->h), id));
    assert_int_equal(ours->n_channels, nch);
    assert_string_equal(ours->network, net);
}

static void close_host(cp2p_host *h)
{
    bool done = false;
    cp2p_host_close(h, on_host_closed, &done);
    run_until(&done);
}

static cp2p_switch_stats stats(const node *n)
{
    cp2p_switch_stats st;
    cp2p_switch_stats_get(n->sw, &st);
    return st;
}

#define WAIT_STAT(n, field, want)                                                             \
    do {                                                                                      \
        uint64_t t0_ = uv_now(&loop);                                                         \
        while (stats(n).field < (want)) {                                                     \
            uv_run(&loop, UV_RUN_ONCE);                                                       \
            uv_update_time(&loop);                                                            \
            assert_true(uv_now(&loop) - t0_ < GUARD_MS);                                      \
        }                                                                                     \
    } while (0)

static void connect_to(node *a, cp2p_host *b)
{
    dial_res r;
    assert_non_null(dial_host(a->h, b, &r));
    assert_int_equal(r.status, 0);
}

static const uint8_t chans[] = {0x20, 0x30};

/* Another network: neither side adds the other, both count it; the connection stays for the
 * host's other services (disconnect_rejected is off). The same network: added both ways, the
 * peer's node info readable by the reactors and in the channels view, and traffic flows. */
static void networks(void **state)
{
    (void)state;
    node a, b, c;
    node_make(&a, "alpha", 11, chans, 2, "node-a", NULL);
    node_make(&b, "beta", 11, chans, 2, "node-b", NULL);
    node_make(&c, "alpha", 11, chans + 1, 1, "node-c", NULL);
    connect_to(&a, b.h);
    WAIT_STAT(&a, rejected_network, 1);
    WAIT_STAT(&b, rejected_network, 1);
    connect_to(&a, c.h);
    wait_until_count(&a.added, 1);
    wait_until_count(&c.added, 1);
    assert_int_equal(b.added, 0); /* rejected peers are never added later */
    assert_int_equal(a.added, 1);
    assert_string_equal(a.peer_moniker, "node-c");
    assert_string_equal(c.peer_moniker, "node-a");
    assert_non_null(cp2p_host_conn_to(a.h, cp2p_host_peer_id(b.h)));
    assert_null(cp2p_switch_find_peer(a.sw, cp2p_host_peer_id(b.h)));
    const cp2p_node_info *ci = cp2p_reactor_peer_node_info(a.peer);
    assert_int_equal(ci->n_channels, 1);
    assert_int_equal(ci->channels[0], 0x30);
    /* c has no 0x20: refused at once, without a stream */
    uint8_t m[10] = {0};
    assert_int_equal(cp2p_reactor_peer_try_send(a.peer, 0x20, m, sizeof(m)), CP2P_ENOTSUP);
    assert_int_equal(cp2p_reactor_peer_try_send(a.peer, 0x30, m, sizeof(m)), 0);
    wait_until_count(&c.got, 1);
    cp2p_buf js;
    cp2p_buf_init(&js, 1 << 20);
    assert_int_equal(cp2p_switch_channels_json(a.sw, &js), 0);
    assert_int_equal(cp2p_buf_append_byte(&js, 0), 0);
    assert_non_null(strstr((const char *)js.ptr, "\"Moniker\":\"node-c\""));
    assert_non_null(strstr((const char *)js.ptr, "\"Network\":\"alpha\""));
    assert_non_null(strstr((const char *)js.ptr, "\"Rejected\":{\"Network\":1,"));
    cp2p_buf_fini(&js);
    cp2p_switch_stats st = stats(&a);
    assert_int_equal(st.peers, 1);
    assert_int_equal(st.rejected_block_version + st.rejected_no_channels +
                         st.rejected_bad_node_info + st.handshake_timeouts,
                     0);
    close_host(a.h);
    close_host(b.h);
    close_host(c.h);
}

/* Another block version, and no channel in common: each its own counter. With
 * disconnect_rejected the connection is closed too. */
static void versions_and_channels(void **state)
{
    (void)state;
    node a, b, c;
    cp2p_switch_config cfg;
    cp2p_switch_config_default(&cfg);
    cfg.disconnect_rejected = true;
    node_make(&a, "alpha", 11, chans, 1, "a", &cfg);
    node_make(&b, "alpha", 10, chans, 1, "b", NULL);
    node_make(&c, "alpha", 11, chans + 1, 1, "c", NULL);
    connect_to(&a, b.h);
    WAIT_STAT(&a, rejected_block_version, 1);
    WAIT_STAT(&b, rejected_block_version, 1);
    connect_to(&a, c.h);
    WAIT_STAT(&a, rejected_no_channels, 1);
    WAIT_STAT(&c, rejected_no_channels, 1);
    uint64_t t0 = uv_now(&loop);
    while (cp2p_host_conn_to(a.h, cp2p_host_peer_id(c.h)) != NULL ||
           cp2p_host_conn_to(a.h, cp2p_host_peer_id(b.h)) != NULL) {
        uv_run(&loop, UV_RUN_ONCE); /* a closes both connections */
        assert_true(uv_now(&loop) - t0 < GUARD_MS);
    }
    assert_int_equal(a.added + b.added + c.added, 0);
    close_host(a.h);
    close_host(b.h);
    close_host(c.h);
}

/* A hand-made peer: answers the keepalive (so it looks like a switch) and sends `wire` (if
 * any) as its node info. */
static void ka_read(cp2p_stream *s, ptrdiff_t n, const uint8_t *data, void *ud)
{
    (void)data;
    (void)ud;
    if (n < 0) {
        cp2p_stream_reset(s);
    }
}

static void ka_handler(cp2p_stream *s, void *ud)
{
    (void)ud;
    assert_int_equal(cp2p_stream_read_start(s, ka_read, NULL), 0);
}

static cp2p_host *fake_peer(node *a, harness_raw *raw)
{
    cp2p_host *f = harness_host();
    assert_int_equal(cp2p_host_set_handler(f, CP2P_REACTOR_KEEPALIVE_PROTOCOL, ka_handler, NULL),
                     0);
    connect_to(a, f);
    cp2p_conn *fc;
    uint64_t t0 = uv_now(&loop);
    while ((fc = cp2p_host_conn_to(f, cp2p_host_peer_id(a->h))) == NULL) {
        uv_run(&loop, UV_RUN_ONCE);
        assert_true(uv_now(&loop) - t0 < GUARD_MS);
    }
    if (raw != NULL) {
        const char *proto = CP2P_NODEINFO_PROTOCOL;
        assert_int_equal(cp2p_conn_open_stream(fc, &proto, 1, harness_raw_open, raw), 0);
    }
    return f;
}

/* Malformed node info, node info naming another peer, an oversized declared length: each
 * rejects the peer, counted as bad node info; the switch and other peers carry on. */
static void bad_node_info(void **state)
{
    (void)state;
    node a;
    node_make(&a, "alpha", 11, chans, 2, "a", NULL);
    const uint8_t junk[] = {0x03, 0x0f, 0x01, 0x02};
    harness_raw r1 = {.bytes = junk, .len = sizeof(junk)};
    cp2p_host *f1 = fake_peer(&a, &r1);
    WAIT_STAT(&a, rejected_bad_node_info, 1);
    /* a's own node info, replayed by another peer */
    cp2p_node_info ni = *cp2p_switch_node_info(a.sw);
    static uint8_t wire[CP2P__NODEINFO_WIRE_MAX];
    ptrdiff_t n = cp2p__nodeinfo_encode(&ni, wire, sizeof(wire));
    assert_true(n > 0);
    harness_raw r2 = {.bytes = wire, .len = (size_t)n};
    cp2p_host *f2 = fake_peer(&a, &r2);
    WAIT_STAT(&a, rejected_bad_node_info, 2);
    uint8_t big[CP2P_UVARINT_MAX];
    size_t bl = cp2p_uvarint_encode(big, CP2P_NODEINFO_MAX + 1);
    harness_raw r3 = {.bytes = big, .len = bl};
    cp2p_host *f3 = fake_peer(&a, &r3);
    WAIT_STAT(&a, rejected_bad_node_info, 3);
    assert_int_equal(a.added, 0);
    /* a good peer still gets in */
    node c;
    node_make(&c, "alpha", 11, chans, 2, "c", NULL);
    connect_to(&a, c.h);
    wait_until_count(&a.added, 1);
    close_host(f1);
    close_host(f2);
    close_host(f3);
    close_host(a.h);
    close_host(c.h);
}

/* A peer that takes the keepalive but never sends its node info is dropped after the
 * handshake timeout and disconnected (disconnect_rejected); the timeout is a lower bound. */
static void handshake_timeout(void **state)
{
    (void)state;
    node a;
    cp2p_switch_config cfg;
    cp2p_switch_config_default(&cfg);
    cfg.handshake_timeout_ms = 300;
    cfg.disconnect_rejected = true;
    node_make(&a, "alpha", 11, chans, 2, "a", &cfg);
    uint64_t t0 = uv_now(&loop);
    cp2p_host *f = fake_peer(&a, NULL);
    WAIT_STAT(&a, handshake_timeouts, 1);
    assert_true(uv_now(&loop) - t0 >= 300);
    while (cp2p_host_conn_to(a.h, cp2p_host_peer_id(f)) != NULL) {
        uv_run(&loop, UV_RUN_ONCE);
        assert_true(uv_now(&loop) - t0 < GUARD_MS);
    }
    assert_int_equal(a.added, 0);
    /* A bad node info of our own is refused at cp2p_switch_new. */
    cp2p_node_info bad;
    cp2p_node_info_default(&bad);
    bad.moniker[0] = 0;
    cfg.node_info = &bad;
    cp2p_switch *sw;
    assert_int_equal(cp2p_switch_new(a.h, &cfg, &sw), CP2P_EINVAL);
    close_host(f);
    close_host(a.h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(networks, setup, teardown),
        cmocka_unit_test_setup_teardown(versions_and_channels, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_node_info, setup, teardown),
        cmocka_unit_test_setup_teardown(handshake_timeout, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
