/* The overlay (cp2p/overlay.h) on the in-memory network: ten hosts in a line (each connected
 * to the next only), messages across nine hops, reliable ones delivered exactly once in both
 * routing modes; then a partition in the middle that heals: every reliable message sent
 * across it is acknowledged after the heal or reported failed to its sender, none silently
 * lost, none delivered twice. This suite makes its own network whatever CP2P_TEST_TRANSPORT
 * says. */
#include <stdio.h>
#include <string.h>

#include "integration/harness.h"

#include <cp2p/metrics.h>
#include <cp2p/overlay.h>

#define N 10
#define MAX_MSGS 512

static cp2p_memnet *net;

typedef struct node {
    int idx;
    cp2p_host *h;
    cp2p_overlay *ov;
    /* deliveries to this node */
    int delivered;
    cp2p_peer_id from[MAX_MSGS];
    uint64_t ids[MAX_MSGS];
    /* results of this node's reliable messages */
    int acked, failed;
} node;

static node nodes[N];

static void on_deliver(cp2p_overlay *ov, const cp2p_peer_id *src, uint64_t id,
                       const uint8_t *data, size_t len, bool reliable, void *ud)
{
    node *n = ud;
    (void)ov;
    (void)reliable;
    assert_true(len >= 3 && memcmp(data, "msg", 3) == 0);
    for (int i = 0; i < n->delivered; i++) {
        if (n->ids[i] == id && cp2p_peer_id_equal(&n->from[i], src)) {
            fail_msg("node %d: message %llu delivered twice", n->idx, (unsigned long long)id);
        }
    }
    assert_true(n->delivered < MAX_MSGS);
    n->from[n->delivered] = *src;
    n->ids[n->delivered++] = id;
}

static void on_result(cp2p_overlay *ov, const cp2p_peer_id *dst, uint64_t id, int status,
                      void *ud)
{
    node *n = ud;
    (void)ov;
    (void)dst;
    (void)id;
    if (status == 0) {
        n->acked++;
    } else {
        assert_int_equal(status, CP2P_ETIMEDOUT);
        n->failed++;
    }
}

static void node_start(node *n, int i)
{
    cp2p_host_config cfg;
    cp2p_privkey *key;
    cp2p_multiaddr *ma;
    char text[64];
    memset(n, 0, sizeof(*n));
    n->idx = i;
    assert_int_equal(cp2p_privkey_generate(CP2P_KEY_ED25519, &key), 0);
    cp2p_host_config_default(&cfg);
    cfg.identity = key;
    cfg.reconnect_known_peers = CP2P_HOST_NO_RECONNECT;
    cfg.memnet = net;
    assert_int_equal(cp2p_host_new(&loop, &cfg, &n->h), 0);
    cp2p_privkey_free(key);
    int len = snprintf(text, sizeof(text), "/memory/n%d", i);
    assert_int_equal(cp2p_multiaddr_parse(text, (size_t)len, &ma), 0);
    assert_int_equal(cp2p_host_listen(n->h, ma), 0);
    cp2p_multiaddr_free(ma);
    cp2p_overlay_config oc;
    cp2p_overlay_config_default(&oc);
    oc.update_interval_ms = 500; /* a fast overlay: routes expire after 1.75 s */
    oc.lsa_refresh_ms = 1000;
    oc.rto_initial_ms = 300;
    oc.rto_max_ms = 2000;
    oc.retry_limit = 10;
    oc.deliver = on_deliver;
    oc.result = on_result;
    assert_int_equal(cp2p_overlay_new(n->h, &oc, n, &n->ov), 0);
}

static void on_closed(cp2p_host *h, void *ud)
{
    (void)h;
    (*(int *)ud)++;
}

static void close_all(void)
{
    int closed = 0;
    for (int i = 0; i < N; i++) {
        cp2p_host_close(nodes[i].h, on_closed, &closed); /* closes the overlay too */
    }
    while (closed < N) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    assert_int_equal(cp2p_memnet_close(net, NULL, NULL), 0);
    net = NULL;
}

/* Run until node a has a DV route and a source route to node b of `hops` hops. */
static void wait_route(int a, int b, uint32_t hops)
{
    uint64_t start = uv_now(&loop);
    for (;;) {
        cp2p_overlay_route rt[2 * N];
        size_t n = cp2p_overlay_routes(nodes[a].ov, rt, 2 * N);
        cp2p_peer_id path[N];
        int np = cp2p_overlay_path(nodes[a].ov, cp2p_host_peer_id(nodes[b].h), path, N);
        bool dv = false;
        for (size_t i = 0; i < n && i < 2 * N; i++) {
            if (cp2p_peer_id_equal(&rt[i].dst, cp2p_host_peer_id(nodes[b].h)) &&
                rt[i].metric == hops) {
                dv = true;
            }
        }
        if (dv && np == (int)hops) {
            return;
        }
        run_for(50);
        if (uv_now(&loop) - start > GUARD_MS) {
            fail_msg("no %u-hop route from %d to %d", hops, a, b);
        }
    }
}

static void send_batch(int from, int to, int count, uint32_t flags, int *sent)
{
    for (int k = 0; k < count; k++) {
        uint64_t id;
        char msg[32];
        int len = snprintf(msg, sizeof(msg), "msg %d", k);
        assert_int_equal(cp2p_overlay_send(nodes[from].ov, cp2p_host_peer_id(nodes[to].h), msg,
                                           (size_t)len, flags | CP2P_OVERLAY_RELIABLE, &id),
                         0);
        (*sent)++;
    }
}

static void line_of_ten_with_partition(void **state)
{
    (void)state;
    dial_res d;
    assert_int_equal(cp2p_memnet_new(&loop, 16, &net), 0);
    cp2p_memnet_link link = {.latency_ms = 5, .bandwidth_bps = 100 * 1000 * 1000};
    cp2p_memnet_set_default_link(net, &link);
    for (int i = 0; i < N; i++) {
        node_start(&nodes[i], i);
    }
    for (int i = 0; i + 1 < N; i++) {
        dial_host(nodes[i].h, nodes[i + 1].h, &d);
        assert_int_equal(d.status, 0);
    }
    wait_route(0, N - 1, N - 1);
    wait_route(N - 1, 0, N - 1);

    /* 1. Across nine hops, both modes, both ways: every message acked and delivered once. */
    int sent0 = 0, sent9 = 0;
    send_batch(0, N - 1, 50, 0, &sent0);
    send_batch(0, N - 1, 50, CP2P_OVERLAY_SOURCE_ROUTE, &sent0);
    send_batch(N - 1, 0, 50, 0, &sent9);
    wait_until_count(&nodes[0].acked, sent0);
    wait_until_count(&nodes[N - 1].acked, sent9);
    assert_int_equal(nodes[N - 1].delivered, sent0);
    assert_int_equal(nodes[0].delivered, sent9);
    assert_int_equal(nodes[0].failed + nodes[N - 1].failed, 0);
    cp2p_overlay_stats st;
    cp2p_overlay_stats_get(nodes[4].ov, &st);
    assert_true(st.forwarded >= 2 * (uint64_t)(sent0 + sent9)); /* data and acks */
    printf("line of %d: %d + %d reliable messages over %d hops, all acked once\n", N, sent0,
           sent9, N - 1);

    /* 2. A partition between n4 and n5 while messages cross it; it heals after 3 s, within
     * the retry budget (10 retries, RTO up to 2 s). */
    assert_int_equal(cp2p_memnet_cut(net, "n4", "n5"), 0);
    run_for(200);
    int before_acked = nodes[0].acked, before_deliv = nodes[N - 1].delivered;
    send_batch(0, N - 1, 20, 0, &sent0);
    send_batch(0, N - 1, 20, CP2P_OVERLAY_SOURCE_ROUTE, &sent0);
    run_for(3000);
    assert_int_equal(nodes[N - 1].delivered, before_deliv); /* nothing crossed the cut */
    cp2p_overlay_stats_get(nodes[0].ov, &st);
    uint64_t retx = st.retransmissions;
    assert_true(retx > 0);
    assert_int_equal(cp2p_memnet_heal(net, "n4", "n5"), 0);
    /* Every message gets exactly one result; acked ones were delivered, none twice. */
    uint64_t start = uv_now(&loop);
    while (nodes[0].acked + nodes[0].failed < sent0) {
        run_for(100);
        if (uv_now(&loop) - start > GUARD_MS) {
            fail_msg("%d of %d results", nodes[0].acked + nodes[0].failed, sent0);
        }
    }
    run_for(500); /* late duplicates, if any, would show up now */
    int acked = nodes[0].acked - before_acked, deliv = nodes[N - 1].delivered - before_deliv;
    printf("partition: 40 sent, %d acked after the heal, %d failed, %d delivered, "
           "%llu retransmissions\n",
           acked, nodes[0].failed, deliv, (unsigned long long)retx);
    assert_true(deliv >= acked);   /* an acked message was delivered */
    assert_true(deliv <= 40);      /* none twice (on_deliver checks each id) */
    assert_int_equal(acked + nodes[0].failed, 40);
    cp2p_overlay_stats_get(nodes[N - 1].ov, &st);
    assert_int_equal(st.stale, 0);
    assert_int_equal(st.frames_rejected, 0);
    /* The counters as metrics. */
    cp2p_metrics *reg;
    cp2p_overlay_metrics *ms = NULL;
    cp2p_buf text;
    assert_int_equal(cp2p_metrics_new(&reg), 0);
    assert_int_equal(cp2p_overlay_metrics_update(&ms, nodes[N - 1].ov, reg), 0);
    assert_int_equal(cp2p_overlay_metrics_update(&ms, nodes[N - 1].ov, reg), 0);
    cp2p_buf_init(&text, 1 << 20);
    assert_int_equal(cp2p_metrics_render(reg, &text), 0);
    assert_int_equal(cp2p_buf_append_byte(&text, 0), 0);
    assert_non_null(strstr((const char *)text.ptr, "cp2p_overlay_messages_delivered_total"));
    assert_non_null(strstr((const char *)text.ptr, "cp2p_overlay_duplicates_suppressed_total"));
    cp2p_buf_fini(&text);
    cp2p_overlay_metrics_free(ms);
    cp2p_metrics_free(reg);
    close_all();
}

/* A ring of ten: the link n0-n1 is cut while reliable messages from n0 to n5 and n1 flow; the
 * routes through it expire and the messages go the other way round: all acknowledged, each
 * delivered once, with n0's route to n1 going from 1 hop to 9. */
static void ring_reroutes_around_a_cut(void **state)
{
    (void)state;
    dial_res d;
    assert_int_equal(cp2p_memnet_new(&loop, 17, &net), 0);
    cp2p_memnet_link link = {.latency_ms = 2, .bandwidth_bps = 100 * 1000 * 1000};
    cp2p_memnet_set_default_link(net, &link);
    for (int i = 0; i < N; i++) {
        node_start(&nodes[i], i);
    }
    for (int i = 0; i < N; i++) {
        dial_host(nodes[i].h, nodes[(i + 1) % N].h, &d);
        assert_int_equal(d.status, 0);
    }
    wait_route(0, 5, 5);
    wait_route(0, 1, 1);
    int sent = 0;
    send_batch(0, 5, 20, 0, &sent);
    send_batch(0, 1, 20, CP2P_OVERLAY_SOURCE_ROUTE, &sent);
    assert_int_equal(cp2p_memnet_cut(net, "n0", "n1"), 0);
    send_batch(0, 5, 20, 0, &sent);
    send_batch(0, 1, 20, 0, &sent);
    wait_route(0, 1, N - 1); /* the long way round */
    send_batch(0, 1, 20, CP2P_OVERLAY_SOURCE_ROUTE, &sent);
    uint64_t start = uv_now(&loop);
    while (nodes[0].acked + nodes[0].failed < sent) {
        run_for(100);
        if (uv_now(&loop) - start > GUARD_MS) {
            fail_msg("%d of %d results", nodes[0].acked + nodes[0].failed, sent);
        }
    }
    printf("ring: %d sent across the cut, %d acked, %d failed, %d + %d delivered\n", sent,
           nodes[0].acked, nodes[0].failed, nodes[5].delivered, nodes[1].delivered);
    assert_int_equal(nodes[0].acked, sent);
    assert_int_equal(nodes[5].delivered + nodes[1].delivered, sent);
    /* The bytes held by the cut arrive after the heal: duplicates, suppressed. */
    assert_int_equal(cp2p_memnet_heal(net, "n0", "n1"), 0);
    run_for(1000);
    assert_int_equal(nodes[5].delivered + nodes[1].delivered, sent);
    close_all();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(line_of_ten_with_partition, setup, teardown),
        cmocka_unit_test_setup_teardown(ring_reroutes_around_a_cut, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
