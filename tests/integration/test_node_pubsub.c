/* The node API's pubsub (seed 001's broadcast handler): three nodes in a line, a subscription
 * handler on the worker pool, a validator on the pool that rejects some messages, publish from
 * any thread, topic and mesh peers; a message rejected by the middle node is neither delivered
 * there nor forwarded. */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include <cp2p/node.h>

#include "integration/harness.h"

typedef struct {
    atomic_int got, good, validated;
    pthread_t last_thread;
} counts;

static void on_msg(void *ud, const char *topic, const cp2p_peer_id *from, const uint8_t *data,
                   size_t len)
{
    counts *c = ud;
    assert_string_equal(topic, "t");
    assert_non_null(from);
    if (len >= 4 && memcmp(data, "good", 4) == 0) {
        atomic_fetch_add(&c->good, 1);
    }
    atomic_fetch_add(&c->got, 1);
}

static cp2p_pubsub_verdict reject_bad(void *ud, const char *topic, const cp2p_peer_id *from,
                                      const uint8_t *data, size_t len)
{
    counts *c = ud;
    (void)topic, (void)from;
    atomic_fetch_add(&c->validated, 1);
    struct timespec ts = {0, 2000000}; /* a slow check: it runs on a worker, not the loop */
    nanosleep(&ts, NULL);
    return len >= 3 && memcmp(data, "bad", 3) == 0 ? CP2P_PUBSUB_REJECT : CP2P_PUBSUB_ACCEPT;
}

static cp2p_node *start(void)
{
    cp2p_node_config cfg;
    cp2p_privkey *key;
    cp2p_node *n;
    const char *listen[] = {"/ip4/127.0.0.1/tcp/0"};
    const char *scored[] = {"t"};
    assert_int_equal(cp2p_privkey_generate(CP2P_KEY_ED25519, &key), 0);
    cp2p_node_config_default(&cfg);
    cfg.host.identity = key;
    cfg.listen = listen;
    cfg.n_listen = 1;
    cfg.pubsub = true;
    cfg.pubsub_cfg.scored_topics = scored;
    cfg.pubsub_cfg.n_scored_topics = 1;
    assert_int_equal(cp2p_node_start(&cfg, &n), 0);
    cp2p_privkey_free(key);
    return n;
}

static void wait_for(atomic_int *v, int want)
{
    for (int i = 0; i < 6000 && atomic_load(v) < want; i++) {
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    if (atomic_load(v) < want) {
        fail_msg("count %d of %d within the guard time", atomic_load(v), want);
    }
}

static void line_of_three(void **state)
{
    (void)state;
    cp2p_node *a = start(), *b = start(), *c = start();
    counts cb = {0}, cc = {0}, vb = {0};
    char addr[256];
    size_t total = 0;
    assert_int_equal(cp2p_node_subscribe(b, "t", on_msg, &cb, CP2P_NODE_ON_POOL), 0);
    assert_int_equal(cp2p_node_subscribe(c, "t", on_msg, &cc, CP2P_NODE_ON_LOOP), 0);
    assert_int_equal(cp2p_node_set_validator(b, reject_bad, &vb, CP2P_NODE_ON_POOL), 0);
    assert_int_equal(cp2p_node_addr(b, 0, addr, sizeof(addr)), 0);
    assert_int_equal(cp2p_node_dial(a, addr, 5000, NULL), 0);
    assert_int_equal(cp2p_node_addr(c, 0, addr, sizeof(addr)), 0);
    assert_int_equal(cp2p_node_dial(b, addr, 5000, NULL), 0);
    /* a knows b as a subscriber; b's mesh forms at a heartbeat. */
    for (int i = 0; i < 600 && total == 0; i++) {
        assert_int_equal(cp2p_node_topic_peers(a, "t", NULL, 0, &total), 0);
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    assert_int_equal(total, 1);
    size_t mesh = 0;
    for (int i = 0; i < 600 && mesh < 1; i++) {
        assert_int_equal(cp2p_node_mesh_peers(c, "t", NULL, 0, &mesh), 0);
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
    }
    assert_int_equal(mesh, 1);
    /* The good ones first: b's score for a drops with each rejected message (the topic is
     * scored), and a graylisted a would lose good messages published after bad ones. */
    for (int i = 0; i < 20; i++) {
        const char *m = i >= 15 ? "bad message" : "good message";
        char buf[32];
        int len = snprintf(buf, sizeof(buf), "%s %d", m, i);
        assert_int_equal(cp2p_node_publish(a, "t", buf, (size_t)len, 5000), 0);
    }
    wait_for(&cb.got, 15);
    wait_for(&cc.got, 15);
    wait_for(&vb.validated, 20); /* the last bad one may still be on b's pool */
    struct timespec settle = {0, 300000000};
    nanosleep(&settle, NULL);
    assert_int_equal(atomic_load(&cb.got), 15); /* the 5 bad ones are rejected at b ... */
    assert_int_equal(atomic_load(&cc.got), 15); /* ... and never forwarded to c */
    assert_int_equal(atomic_load(&cb.good), 15);
    assert_int_equal(atomic_load(&vb.validated), 20);
    cp2p_node_stats st;
    cp2p_node_stats_get(b, &st);
    assert_int_equal(st.validations_queued, 20);
    assert_int_equal(st.messages_delivered, 15);
    /* Unsubscribed: nothing more reaches c. */
    assert_int_equal(cp2p_node_unsubscribe(c, "t"), 0);
    assert_int_equal(cp2p_node_unsubscribe(c, "t"), CP2P_ENOENT);
    /* A node without pubsub says so. */
    cp2p_node_stop(c);
    cp2p_node_stop(b);
    cp2p_node_stop(a);
}

static void no_pubsub(void **state)
{
    (void)state;
    cp2p_node_config cfg;
    cp2p_privkey *key;
    cp2p_node *n;
    assert_int_equal(cp2p_privkey_generate(CP2P_KEY_ED25519, &key), 0);
    cp2p_node_config_default(&cfg);
    cfg.host.identity = key;
    assert_int_equal(cp2p_node_start(&cfg, &n), 0);
    cp2p_privkey_free(key);
    assert_int_equal(cp2p_node_publish(n, "t", "x", 1, 1000), CP2P_ENOTSUP);
    assert_int_equal(cp2p_node_subscribe(n, "t", on_msg, NULL, CP2P_NODE_ON_LOOP), CP2P_ENOTSUP);
    size_t tp;
    assert_int_equal(cp2p_node_dht_table_size(n, &tp), CP2P_ENOTSUP);
    cp2p_node_stop(n);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(line_of_three),
        cmocka_unit_test(no_pubsub),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
