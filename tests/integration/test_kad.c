/* The Kademlia DHT over loopback TCP (issue 5's proof): 50 hosts in one process, each told one
 * bootstrap peer; every node finds every other by find_peer; a PUT on one node is read by a
 * GET on another; a provider record is found; 10 nodes are killed and lookups keep working
 * while the dead peers leave the survivors' routing tables after their liveness check. Also:
 * a configurable protocol ID, and a client-mode node that never enters anyone's table. */
#include <stdlib.h>
#include <string.h>

#include <cp2p/kad.h>

#include "integration/harness.h"

#define N 50
#define KILL 10

typedef struct {
    cp2p_host *h;
    cp2p_kad *kad;
    char addr[256];
    bool alive;
} node;

static node nodes[N];
static cp2p_peer_id dead_ids[N];

typedef struct {
    int pending;
    int ok, failed;
    int status;
    bool done;
    size_t count;
    uint8_t value[64];
    size_t value_len;
    cp2p_peer_id want;
    bool want_found;
    char want_addr[256];
} waiter;

static void start_host(node *n)
{
    memset(n, 0, sizeof(*n));
    n->h = harness_host();
    cp2p_multiaddr *ma;
    cp2p_buf b;
    assert_int_equal(cp2p_host_listen_addr(n->h, 0, true, &ma), 0);
    cp2p_buf_init(&b, sizeof(n->addr));
    assert_int_equal(cp2p_multiaddr_to_string(ma, &b), 0);
    memcpy(n->addr, b.ptr, b.len);
    n->addr[b.len] = 0;
    cp2p_buf_fini(&b);
    cp2p_multiaddr_free(ma);
    n->alive = true;
}

static void start_kad(node *n, const char *bootstrap, const char *protocol, cp2p_kad_mode mode)
{
    cp2p_kad_config kc;
    const char *boot[1] = {bootstrap};
    cp2p_kad_config_default(&kc);
    if (protocol != NULL) {
        kc.protocol = protocol;
    }
    kc.mode = mode;
    kc.bootstrap = boot;
    kc.n_bootstrap = bootstrap != NULL;
    /* The default query timeout (10 s): CI runs this under ASan next to other heavy tests. */
    assert_int_equal(cp2p_kad_new(n->h, &kc, &n->kad), 0);
    assert_int_equal(cp2p_kad_add_validator(n->kad, "test", cp2p_kad_accept_any, NULL, NULL), 0);
}

static void on_closed(cp2p_host *h, void *ud)
{
    (void)h;
    (*(int *)ud)--;
}

static void kill_node(node *n, int *closing)
{
    cp2p_kad_close(n->kad);
    n->kad = NULL;
    (*closing)++;
    cp2p_host_close(n->h, on_closed, closing);
    n->h = NULL;
    n->alive = false;
}

static void wait_count(waiter *w)
{
    uint64_t start = uv_now(&loop);
    while (w->pending > 0) {
        uv_run(&loop, UV_RUN_ONCE);
        uv_update_time(&loop);
        if (uv_now(&loop) - start > 2 * GUARD_MS) {
            fail_msg("operations still pending after the guard time");
        }
    }
}

static void on_boot(cp2p_kad *kad, int status, size_t size, void *ud)
{
    waiter *w = ud;
    (void)kad;
    w->pending--;
    if (status == 0 || status == CP2P_ETIMEDOUT) {
        w->ok++;
        w->count += size;
    } else {
        w->failed++;
    }
}

static void on_found(cp2p_kad *kad, int status, const cp2p_kad_peer_info *p, void *ud)
{
    waiter *w = ud;
    (void)kad;
    w->pending--;
    if (status != 0) {
        w->failed++;
        if (w->failed <= 5) {
            cp2p_kad_stats st;
            cp2p_kad_stats_get(kad, &st);
            print_message("find_peer failed: %s (table %llu, queries failed %llu, deferred %llu)\n",
                          cp2p_strerror(status), (unsigned long long)st.table_size,
                          (unsigned long long)st.queries_failed,
                          (unsigned long long)st.queries_deferred);
        }
        return;
    }
    w->ok++;
    /* The answer carries the peer's real listen address. */
    cp2p_buf b;
    bool seen = false;
    for (size_t i = 0; i < p->n_addrs; i++) {
        cp2p_buf_init(&b, 256);
        if (cp2p_multiaddr_to_string(p->addrs[i], &b) == 0) {
            for (int j = 0; j < N; j++) {
                if (nodes[j].h != NULL &&
                    cp2p_peer_id_equal(&p->id, cp2p_host_peer_id(nodes[j].h)) &&
                    strncmp(nodes[j].addr, (const char *)b.ptr, b.len) == 0) {
                    seen = true;
                }
            }
        }
        cp2p_buf_fini(&b);
    }
    if (!seen) {
        w->failed++;
        w->ok--;
    }
}

static void on_put(cp2p_kad *kad, int status, size_t stored, void *ud)
{
    waiter *w = ud;
    (void)kad;
    w->pending--;
    w->status = status;
    w->count = stored;
}

static void on_value(cp2p_kad *kad, int status, const uint8_t *v, size_t len, void *ud)
{
    waiter *w = ud;
    (void)kad;
    w->pending--;
    w->status = status;
    if (status == 0 && len <= sizeof(w->value)) {
        memcpy(w->value, v, len);
        w->value_len = len;
    }
}

static void on_providers(cp2p_kad *kad, int status, const cp2p_kad_peer_info *p, size_t n,
                         void *ud)
{
    waiter *w = ud;
    (void)kad;
    w->pending--;
    w->status = status;
    for (size_t i = 0; status == 0 && i < n; i++) {
        if (cp2p_peer_id_equal(&p[i].id, &w->want) && p[i].n_addrs > 0) {
            w->want_found = true;
        }
    }
}

static bool in_table(int at, int who)
{
    cp2p_peer_id p;
    for (size_t k = 0; cp2p_kad_table_peer(nodes[at].kad, k, &p); k++) {
        if (cp2p_peer_id_equal(&p, cp2p_host_peer_id(nodes[who].h))) {
            return true;
        }
    }
    return false;
}

/* Every live node finds every other live node; returns the failures. */
static int find_all(void)
{
    waiter w = {0};
    for (int i = 0; i < N; i++) {
        if (!nodes[i].alive) {
            continue;
        }
        int failed_before = w.failed;
        for (int j = 0; j < N; j++) {
            if (i == j || !nodes[j].alive) {
                continue;
            }
            assert_int_equal(cp2p_kad_find_peer(nodes[i].kad, cp2p_host_peer_id(nodes[j].h),
                                                on_found, &w),
                             0);
            w.pending++;
        }
        wait_count(&w); /* one node's lookups at a time keeps the loop's work bounded */
        if (w.failed > failed_before) {
            /* Diagnose: which targets, and how many tables hold them. */
            for (int j = 0; j < N; j++) {
                if (i == j || !nodes[j].alive) {
                    continue;
                }
                waiter one = {.pending = 1};
                assert_int_equal(cp2p_kad_find_peer(nodes[i].kad, cp2p_host_peer_id(nodes[j].h),
                                                    on_found, &one),
                                 0);
                wait_count(&one);
                if (one.failed) {
                    int holders = 0;
                    for (int k = 0; k < N; k++) {
                        holders += k != j && nodes[k].alive && in_table(k, j);
                    }
                    print_message("node %d cannot find node %d: %d tables hold it, %s\n", i, j,
                                  holders, in_table(i, j) ? "its own too" : "not its own");
                }
            }
        }
    }
    print_message("find_peer: %d found, %d failed\n", w.ok, w.failed);
    return w.failed;
}

static size_t dead_in_tables(void)
{
    size_t dead = 0;
    for (int i = 0; i < N; i++) {
        if (!nodes[i].alive) {
            continue;
        }
        cp2p_peer_id p;
        for (size_t k = 0; cp2p_kad_table_peer(nodes[i].kad, k, &p); k++) {
            for (int j = 0; j < N; j++) {
                if (!nodes[j].alive && cp2p_peer_id_equal(&p, &dead_ids[j])) {
                    dead++;
                }
            }
        }
    }
    return dead;
}

static void network_of_50(void **state)
{
    (void)state;
    waiter w = {0};
    int closing = 0;
    for (int i = 0; i < N; i++) {
        start_host(&nodes[i]);
    }
    /* Node 0 is told node 1; every other node is told node 0 only. */
    for (int i = 0; i < N; i++) {
        start_kad(&nodes[i], nodes[i == 0 ? 1 : 0].addr, NULL, CP2P_KAD_MODE_AUTO);
        assert_true(cp2p_kad_is_server(nodes[i].kad));
    }
    /* Two bootstrap rounds: the second lets early nodes learn of later ones. */
    for (int round = 0; round < 2; round++) {
        w = (waiter){0};
        for (int i = 0; i < N; i++) {
            assert_int_equal(cp2p_kad_bootstrap(nodes[i].kad, on_boot, &w), 0);
            w.pending++;
        }
        wait_count(&w);
        assert_int_equal(w.failed, 0);
        print_message("bootstrap round %d: mean table size %.1f\n", round,
                      (double)w.count / N);
    }
    for (int i = 0; i < N; i++) {
        assert_true(cp2p_kad_table_size(nodes[i].kad) >= 10);
    }
    assert_int_equal(find_all(), 0);

    /* PUT on one node, GET on another. */
    const char *key = "/test/hello";
    w = (waiter){.pending = 1};
    assert_int_equal(cp2p_kad_put_value(nodes[3].kad, (const uint8_t *)key, strlen(key),
                                        (const uint8_t *)"world", 5, on_put, &w),
                     0);
    wait_count(&w);
    assert_int_equal(w.status, 0);
    assert_true(w.count >= 10);
    print_message("put: stored on %zu peers\n", w.count);
    w = (waiter){.pending = 1};
    assert_int_equal(cp2p_kad_get_value(nodes[40].kad, (const uint8_t *)key, strlen(key),
                                        on_value, &w),
                     0);
    wait_count(&w);
    assert_int_equal(w.status, 0);
    assert_int_equal(w.value_len, 5);
    assert_memory_equal(w.value, "world", 5);
    /* A namespace without a validator is refused locally. */
    assert_int_equal(cp2p_kad_put_value(nodes[3].kad, (const uint8_t *)"/nons/x", 7,
                                        (const uint8_t *)"v", 1, on_put, &w),
                     CP2P_ENOTSUP);

    /* Provider records. */
    uint8_t cid_key[64];
    ptrdiff_t kl = cp2p_kad_key_from_cid("bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy",
                                         cid_key, sizeof(cid_key));
    assert_true(kl > 0);
    w = (waiter){.pending = 1};
    assert_int_equal(cp2p_kad_provide(nodes[5].kad, cid_key, (size_t)kl, on_put, &w), 0);
    wait_count(&w);
    assert_int_equal(w.status, 0);
    print_message("provide: %zu peers told\n", w.count);
    w = (waiter){.pending = 1, .want = *cp2p_host_peer_id(nodes[5].h)};
    assert_int_equal(cp2p_kad_find_providers(nodes[30].kad, cid_key, (size_t)kl, 5,
                                             on_providers, &w),
                     0);
    wait_count(&w);
    assert_int_equal(w.status, 0);
    assert_true(w.want_found);

    /* Kill 10 nodes; lookups keep working and the dead leave the tables. */
    for (int i = N - KILL; i < N; i++) {
        dead_ids[i] = *cp2p_host_peer_id(nodes[i].h);
        kill_node(&nodes[i], &closing);
    }
    while (closing > 0) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    assert_int_equal(find_all(), 0);
    uint64_t start = uv_now(&loop);
    size_t dead = dead_in_tables();
    while (dead > 0 && uv_now(&loop) - start < GUARD_MS) {
        uv_run(&loop, UV_RUN_ONCE);
        uv_update_time(&loop);
        dead = dead_in_tables();
    }
    print_message("dead peers left in routing tables: %zu\n", dead);
    assert_int_equal(dead, 0);
    /* A find_peer for a dead node fails cleanly. */
    w = (waiter){.pending = 1};
    assert_int_equal(cp2p_kad_find_peer(nodes[0].kad, &dead_ids[N - 1], on_found, &w), 0);
    wait_count(&w);
    assert_int_equal(w.failed, 1);

    for (int i = 0; i < N - KILL; i++) {
        kill_node(&nodes[i], &closing);
    }
    while (closing > 0) {
        uv_run(&loop, UV_RUN_ONCE);
    }
}

/* Our own protocol ID; a client-mode node queries but never enters a table. */
static void custom_protocol_and_client(void **state)
{
    (void)state;
    int closing = 0;
    node *a = &nodes[0], *b = &nodes[1], *c = &nodes[2], *cl = &nodes[3];
    start_host(a);
    start_host(b);
    start_host(c);
    start_host(cl);
    start_kad(a, NULL, "/mychain/kad/1.0.0", CP2P_KAD_MODE_AUTO);
    start_kad(b, a->addr, "/mychain/kad/1.0.0", CP2P_KAD_MODE_SERVER);
    start_kad(c, a->addr, "/mychain/kad/1.0.0", CP2P_KAD_MODE_SERVER);
    start_kad(cl, a->addr, "/mychain/kad/1.0.0", CP2P_KAD_MODE_CLIENT);
    assert_false(cp2p_kad_is_server(cl->kad));
    waiter w = {0};
    node *all[] = {b, c, cl};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(cp2p_kad_bootstrap(all[i]->kad, on_boot, &w), 0);
        w.pending++;
    }
    wait_count(&w);
    w = (waiter){.pending = 1};
    assert_int_equal(cp2p_kad_find_peer(cl->kad, cp2p_host_peer_id(c->h), on_found, &w), 0);
    wait_count(&w);
    assert_int_equal(w.ok, 1);
    /* The servers know each other, never the client. */
    assert_true(cp2p_kad_table_size(a->kad) >= 2);
    node *servers[] = {a, b, c};
    for (int i = 0; i < 3; i++) {
        cp2p_peer_id p;
        for (size_t k = 0; cp2p_kad_table_peer(servers[i]->kad, k, &p); k++) {
            assert_false(cp2p_peer_id_equal(&p, cp2p_host_peer_id(cl->h)));
        }
    }
    for (int i = 0; i < 4; i++) {
        kill_node(&nodes[i], &closing);
    }
    while (closing > 0) {
        uv_run(&loop, UV_RUN_ONCE);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(custom_protocol_and_client, setup, teardown),
        cmocka_unit_test_setup_teardown(network_of_50, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
