/* The overlay through the node API (cp2p/node.h): four nodes on their own loop threads in a
 * line over loopback TCP, driven from several test threads at once; reliable sends wait for
 * their acknowledgement; the tables answer; a node that stops while a reliable send waits
 * completes it with CP2P_ECANCELED. */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <cp2p/node.h>

#define N 4

typedef struct counter {
    pthread_mutex_t mu;
    int delivered;
} counter;

static counter got[N];

/* Runs on the destination node's loop thread. */
static void on_deliver(cp2p_overlay *ov, const cp2p_peer_id *src, uint64_t id,
                       const uint8_t *data, size_t len, bool reliable, void *ud)
{
    counter *c = ud;
    (void)ov;
    (void)src;
    (void)id;
    (void)data;
    (void)len;
    (void)reliable;
    pthread_mutex_lock(&c->mu);
    c->delivered++;
    pthread_mutex_unlock(&c->mu);
}

static cp2p_node *start(int i)
{
    static const char *const listen[] = {"/ip4/127.0.0.1/tcp/0"};
    cp2p_node_config cfg;
    cp2p_privkey *key;
    cp2p_node *n;
    assert_int_equal(cp2p_privkey_generate(CP2P_KEY_ED25519, &key), 0);
    cp2p_node_config_default(&cfg);
    cfg.host.identity = key;
    cfg.listen = listen;
    cfg.n_listen = 1;
    cfg.overlay = true;
    cfg.overlay_cfg.update_interval_ms = 500;
    cfg.overlay_cfg.deliver = on_deliver;
    cfg.overlay_ud = &got[i];
    assert_int_equal(cp2p_node_start(&cfg, &n), 0);
    cp2p_privkey_free(key);
    return n;
}

static cp2p_node *nodes[N];

typedef struct sender {
    pthread_t t;
    int from, to, count, ok;
} sender;

static void *send_thread(void *arg)
{
    sender *s = arg;
    for (int k = 0; k < s->count; k++) {
        uint64_t id = 0;
        int rc = cp2p_node_overlay_send(nodes[s->from], cp2p_node_peer_id(nodes[s->to]), "hi", 2,
                                        CP2P_OVERLAY_RELIABLE | (k % 2 ? CP2P_OVERLAY_SOURCE_ROUTE
                                                                       : 0),
                                        30000, &id);
        s->ok += rc == 0 && id != 0;
    }
    return NULL;
}

static void line_of_nodes(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN);
    for (int i = 0; i < N; i++) {
        pthread_mutex_init(&got[i].mu, NULL);
        nodes[i] = start(i);
    }
    for (int i = 0; i + 1 < N; i++) {
        char addr[512];
        assert_int_equal(cp2p_node_addr(nodes[i + 1], 0, addr, sizeof(addr)), 0);
        assert_int_equal(cp2p_node_dial(nodes[i], addr, 10000, NULL), 0);
    }
    /* Routes: node 0 reaches node 3 in 3 hops (polled; a 60 s guard). */
    cp2p_overlay_route rt[8];
    size_t total = 0;
    bool found = false;
    for (int tries = 0; tries < 600 && !found; tries++) {
        assert_int_equal(cp2p_node_overlay_routes(nodes[0], rt, 8, &total), 0);
        for (size_t i = 0; i < total && i < 8; i++) {
            if (cp2p_peer_id_equal(&rt[i].dst, cp2p_node_peer_id(nodes[N - 1])) &&
                rt[i].metric == N - 1) {
                found = true;
            }
        }
        if (!found) {
            usleep(100 * 1000);
        }
    }
    assert_true(found);
    cp2p_overlay_link links[64];
    assert_int_equal(cp2p_node_overlay_topology(nodes[0], links, 64, &total), 0);
    assert_true(total >= 2 * (N - 1));

    /* Three threads send at once, both directions. */
    sender s[3] = {{.from = 0, .to = N - 1, .count = 30},
                   {.from = N - 1, .to = 0, .count = 30},
                   {.from = 1, .to = N - 1, .count = 30}};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(pthread_create(&s[i].t, NULL, send_thread, &s[i]), 0);
    }
    for (int i = 0; i < 3; i++) {
        pthread_join(s[i].t, NULL);
        assert_int_equal(s[i].ok, s[i].count);
    }
    pthread_mutex_lock(&got[N - 1].mu);
    assert_int_equal(got[N - 1].delivered, 60);
    pthread_mutex_unlock(&got[N - 1].mu);
    pthread_mutex_lock(&got[0].mu);
    assert_int_equal(got[0].delivered, 30);
    pthread_mutex_unlock(&got[0].mu);

    /* Bad arguments; best effort to nobody: no route. */
    assert_int_equal(cp2p_node_overlay_send(nodes[0], cp2p_node_peer_id(nodes[0]), "x", 1, 0,
                                            1000, NULL),
                     CP2P_EINVAL);
    cp2p_peer_id stranger;
    cp2p_privkey *k;
    assert_int_equal(cp2p_privkey_generate(CP2P_KEY_ED25519, &k), 0);
    assert_int_equal(cp2p_peer_id_from_pubkey(cp2p_privkey_public(k), &stranger), 0);
    cp2p_privkey_free(k);
    assert_int_equal(cp2p_node_overlay_send(nodes[0], &stranger, "x", 1, 0, 1000, NULL),
                     CP2P_ENOENT);
    for (int i = N - 1; i >= 0; i--) {
        cp2p_node_stop(nodes[i]);
    }
}

typedef struct waiter {
    pthread_t t;
    cp2p_node *n;
    cp2p_peer_id dst;
    int rc;
} waiter;

static void *wait_thread(void *arg)
{
    waiter *w = arg;
    w->rc = cp2p_node_overlay_send(w->n, &w->dst, "lost", 4, CP2P_OVERLAY_RELIABLE, 60000, NULL);
    return NULL;
}

static void stop_with_a_send_waiting(void **state)
{
    (void)state;
    pthread_mutex_init(&got[0].mu, NULL);
    cp2p_node *n = start(0);
    waiter w = {.n = n};
    cp2p_privkey *k;
    assert_int_equal(cp2p_privkey_generate(CP2P_KEY_ED25519, &k), 0);
    assert_int_equal(cp2p_peer_id_from_pubkey(cp2p_privkey_public(k), &w.dst), 0);
    cp2p_privkey_free(k);
    /* Reliable to a peer nobody knows: kept and retried, so the call waits. */
    assert_int_equal(pthread_create(&w.t, NULL, wait_thread, &w), 0);
    usleep(300 * 1000);
    cp2p_node_stop(n);
    pthread_join(w.t, NULL);
    assert_int_equal(w.rc, CP2P_ECANCELED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(line_of_nodes),
        cmocka_unit_test(stop_with_a_send_waiting),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
