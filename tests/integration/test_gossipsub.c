/* Gossipsub over loopback TCP (issue 6's proof): a small full mesh first (delivery, validator
 * reject, publish without peers, unsubscribe), then 100 nodes in a random sparse topology
 * (each dials 4 random others), one topic, 1,000 messages of 1 KiB from random publishers:
 * every message reaches every subscriber; the delivery latency p50/p99 and the duplicate factor
 * (copies received per delivered message) are printed. */
#include <stdlib.h>
#include <string.h>

#include <cp2p/pubsub.h>

#include "integration/harness.h"

#define MAXN 100
#define TOPIC "blocks"

typedef struct {
    cp2p_host *h;
    cp2p_pubsub *ps;
    int idx;
    size_t got;
    uint8_t *seen;       /* per message index: delivered once */
    size_t dup_deliveries;
} node;

static node nodes[MAXN];
static size_t nmsgs_expected;
static uint64_t *sent_at;    /* uv_hrtime of each message's publish */
static uint64_t *latencies;
static size_t nlat;

static void start_node(node *n, int idx)
{
    memset(n, 0, sizeof(*n));
    n->idx = idx;
    n->h = harness_host();
    cp2p_pubsub_config pc;
    cp2p_pubsub_config_default(&pc);
    const char *scored[] = {TOPIC};
    pc.scored_topics = scored;
    pc.n_scored_topics = 1;
    assert_int_equal(cp2p_pubsub_new(n->h, &pc, &n->ps), 0);
}

static void on_msg(cp2p_pubsub *ps, const cp2p_pubsub_msg *m, void *ud)
{
    node *n = ud;
    uint32_t idx;
    (void)ps;
    assert_string_equal(m->topic, TOPIC);
    assert_non_null(m->from); /* StrictSign: the author is known and verified */
    if (m->len < 4) {
        return;
    }
    memcpy(&idx, m->data, 4);
    if (n->seen == NULL || idx >= nmsgs_expected) {
        n->got++;
        return;
    }
    if (n->seen[idx]) {
        n->dup_deliveries++;
        return;
    }
    n->seen[idx] = 1;
    n->got++;
    if (sent_at != NULL) {
        latencies[nlat++] = uv_hrtime() - sent_at[idx];
    }
}

static void close_all(int n)
{
    int closing = 0;
    for (int i = 0; i < n; i++) {
        cp2p_pubsub_close(nodes[i].ps);
        free(nodes[i].seen);
        closing++;
        cp2p_host_close(nodes[i].h, NULL, NULL);
    }
    (void)closing;
    for (int i = 0; i < 200 && uv_loop_alive(&loop); i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
    }
}

/* Run until every subscriber but the publisher of each message got all n messages. */
static bool all_delivered(int n, size_t want)
{
    for (int i = 0; i < n; i++) {
        if (nodes[i].got < want) {
            return false;
        }
    }
    return true;
}

static void wait_mesh(int n, size_t min_topic_peers)
{
    uint64_t start = uv_now(&loop);
    for (;;) {
        bool ok = true;
        for (int i = 0; i < n && ok; i++) {
            ok = cp2p_pubsub_topic_peers(nodes[i].ps, TOPIC, NULL, 0) >= min_topic_peers &&
                 cp2p_pubsub_mesh_peers(nodes[i].ps, TOPIC, NULL, 0) >= 1;
        }
        if (ok) {
            return;
        }
        uv_run(&loop, UV_RUN_ONCE);
        uv_update_time(&loop);
        if (uv_now(&loop) - start > GUARD_MS) {
            fail_msg("meshes did not form");
        }
    }
}

static cp2p_pubsub_verdict reject_odd(cp2p_pubsub *ps, const cp2p_pubsub_msg *m, void *ud)
{
    (void)ps, (void)ud;
    return m->len > 0 && (m->data[0] & 1) ? CP2P_PUBSUB_REJECT : CP2P_PUBSUB_ACCEPT;
}

static void small_mesh(void **state)
{
    (void)state;
    const int n = 5;
    dial_res r;
    for (int i = 0; i < n; i++) {
        start_node(&nodes[i], i);
    }
    /* Publishing with nobody to send to fails, as in go and js. */
    assert_int_equal(cp2p_pubsub_publish(nodes[0].ps, TOPIC, "x", 1), CP2P_ENOENT);
    for (int i = 0; i < n; i++) {
        for (int j = i + 1; j < n; j++) {
            assert_non_null(dial_host(nodes[i].h, nodes[j].h, &r));
        }
        assert_int_equal(cp2p_pubsub_subscribe(nodes[i].ps, TOPIC, on_msg, &nodes[i]), 0);
    }
    wait_mesh(n, (size_t)n - 1);
    uint8_t msg[8] = {0, 1, 2, 3, 4, 5, 6, 7};
    assert_int_equal(cp2p_pubsub_publish(nodes[0].ps, TOPIC, msg, sizeof(msg)), 0);
    uint64_t start = uv_now(&loop);
    for (;;) {
        bool rest = true;
        for (int i = 1; i < n; i++) {
            rest = rest && nodes[i].got >= 1;
        }
        if (rest) {
            break;
        }
        uv_run(&loop, UV_RUN_ONCE);
        uv_update_time(&loop);
        assert_true(uv_now(&loop) - start < GUARD_MS);
    }
    for (int i = 1; i < n; i++) {
        assert_int_equal(nodes[i].got, 1);
    }
    assert_int_equal(nodes[0].got, 0); /* no delivery to ourselves */
    /* A validator rejecting odd first bytes on node 1: it neither delivers nor forwards it. */
    cp2p_pubsub_set_validator(nodes[1].ps, reject_odd, NULL);
    msg[0] = 1;
    assert_int_equal(cp2p_pubsub_publish(nodes[0].ps, TOPIC, msg, sizeof(msg)), 0);
    run_for(500);
    assert_int_equal(nodes[1].got, 1);
    for (int i = 2; i < n; i++) {
        assert_int_equal(nodes[i].got, 2);
    }
    cp2p_pubsub_stats st;
    cp2p_pubsub_stats_get(nodes[1].ps, &st);
    assert_true(st.msgs_rejected >= 1);
    assert_true(cp2p_pubsub_peer_score(nodes[1].ps, cp2p_host_peer_id(nodes[0].h)) < 0);
    /* Unsubscribe: node 4 stops receiving. */
    assert_int_equal(cp2p_pubsub_unsubscribe(nodes[4].ps, TOPIC), 0);
    run_for(300);
    msg[0] = 2;
    assert_int_equal(cp2p_pubsub_publish(nodes[2].ps, TOPIC, msg, sizeof(msg)), 0);
    run_for(500);
    assert_int_equal(nodes[4].got, 2);
    assert_int_equal(nodes[3].got, 3);
    close_all(n);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void hundred_nodes(void **state)
{
    (void)state;
    const int n = MAXN;
    const size_t msgs = 1000;
    dial_res r;
    srand(12345);
    for (int i = 0; i < n; i++) {
        start_node(&nodes[i], i);
        nodes[i].seen = calloc(msgs, 1);
        assert_int_equal(cp2p_pubsub_subscribe(nodes[i].ps, TOPIC, on_msg, &nodes[i]), 0);
    }
    nmsgs_expected = msgs;
    /* Random sparse topology: each node dials 4 random others. */
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < 4; k++) {
            int j;
            do {
                j = rand() % n;
            } while (j == i || cp2p_host_conn_to(nodes[i].h, cp2p_host_peer_id(nodes[j].h)));
            assert_non_null(dial_host(nodes[i].h, nodes[j].h, &r));
        }
    }
    wait_mesh(n, 1);
    run_for(2500); /* a couple of heartbeats: meshes settle */
    sent_at = calloc(msgs, sizeof(*sent_at));
    latencies = calloc(msgs * MAXN, sizeof(*latencies));
    nlat = 0;
    uint8_t data[1024];
    memset(data, 0xab, sizeof(data));
    /* 1,000 messages from random publishers, 10 per loop turn of about a millisecond. */
    for (uint32_t m = 0; m < msgs; m++) {
        int pub = rand() % n;
        memcpy(data, &m, 4);
        sent_at[m] = uv_hrtime();
        nodes[pub].seen[m] = 1; /* the publisher has it */
        nodes[pub].got++;
        assert_int_equal(cp2p_pubsub_publish(nodes[pub].ps, TOPIC, data, sizeof(data)), 0);
        if (m % 10 == 9) {
            uv_run(&loop, UV_RUN_NOWAIT);
        }
    }
    uint64_t start = uv_now(&loop);
    while (!all_delivered(n, msgs)) {
        uv_run(&loop, UV_RUN_ONCE);
        uv_update_time(&loop);
        if (uv_now(&loop) - start > 2 * GUARD_MS) {
            break;
        }
    }
    size_t missing = 0, dups = 0;
    uint64_t copies = 0, delivered = 0;
    for (int i = 0; i < n; i++) {
        missing += msgs - nodes[i].got;
        dups += nodes[i].dup_deliveries;
        cp2p_pubsub_stats st;
        cp2p_pubsub_stats_get(nodes[i].ps, &st);
        copies += st.msgs_in;
        delivered += st.msgs_delivered;
    }
    size_t mesh_total = 0, conns_total = 0;
    uint64_t dw_sent = 0, dw_supp = 0;
    for (int i = 0; i < n; i++) {
        mesh_total += cp2p_pubsub_mesh_peers(nodes[i].ps, TOPIC, NULL, 0);
        conns_total += cp2p_pubsub_topic_peers(nodes[i].ps, TOPIC, NULL, 0);
        cp2p_pubsub_stats st;
        cp2p_pubsub_stats_get(nodes[i].ps, &st);
        dw_sent += st.idontwant_sent;
        dw_supp += st.idontwant_suppressed;
    }
    print_message("mean mesh %.2f, mean topic peers %.2f, IDONTWANT sent %llu, copies suppressed %llu\n",
                  (double)mesh_total / n, (double)conns_total / n, (unsigned long long)dw_sent,
                  (unsigned long long)dw_supp);
    qsort(latencies, nlat, sizeof(*latencies), cmp_u64);
    print_message("100 nodes, 1000 x 1 KiB: %zu deliveries missing, latency p50 %.2f ms p99 %.2f ms, "
                  "duplicate factor %.2f (copies received per delivered message)\n",
                  missing, nlat ? latencies[nlat / 2] / 1e6 : 0.0,
                  nlat ? latencies[nlat * 99 / 100] / 1e6 : 0.0,
                  delivered ? (double)copies / (double)delivered : 0.0);
    assert_int_equal(missing, 0);
    assert_int_equal(dups, 0); /* the seen cache: each message delivered once */
    free(sent_at);
    free(latencies);
    sent_at = NULL;
    latencies = NULL;
    nmsgs_expected = 0;
    close_all(n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(small_mesh, setup, teardown),
        cmocka_unit_test_setup_teardown(hundred_nodes, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
