/* The node API from many threads: blocking requests, timeouts, back-pressure of the command
 * queue, the worker pool's refusals, and stopping with calls in flight. Every node runs its own
 * loop thread; the test threads only use cp2p_node_* calls. */
#include <pthread.h>
#include <semaphore.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <cp2p/node.h>

static cp2p_node *node_new(uint32_t workers, size_t worker_queue, size_t command_queue)
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
    cfg.workers = workers;
    cfg.worker_queue = worker_queue;
    cfg.command_queue = command_queue;
    assert_int_equal(cp2p_node_start(&cfg, &n), 0);
    cp2p_privkey_free(key);
    return n;
}

static void connect_nodes(cp2p_node *from, cp2p_node *to)
{
    char addr[512];
    cp2p_peer_id peer;
    assert_int_equal(cp2p_node_addr(to, 0, addr, sizeof(addr)), 0);
    assert_int_equal(cp2p_node_dial(from, addr, 10000, &peer), 0);
    assert_true(cp2p_peer_id_equal(&peer, cp2p_node_peer_id(to)));
}

/* Answers "<node tag>:" followed by the request. */
static int tag_handler(void *ud, const cp2p_peer_id *from, const uint8_t *req, size_t len,
                       cp2p_buf *resp)
{
    const char *tag = ud;
    (void)from;
    if (cp2p_buf_append(resp, tag, strlen(tag)) != 0 || cp2p_buf_append_byte(resp, ':') != 0 ||
        cp2p_buf_append(resp, req, len) != 0) {
        return CP2P_ENOMEM;
    }
    return 0;
}

/* Blocks until the test posts the semaphore. */
static sem_t gate;
static int gated_handler(void *ud, const cp2p_peer_id *from, const uint8_t *req, size_t len,
                         cp2p_buf *resp)
{
    (void)ud;
    (void)from;
    (void)req;
    (void)len;
    (void)resp;
    sem_wait(&gate);
    return 0;
}

/* Wait (polling; a 60 s guard fails instead of hanging) until a counter of n reaches `want`. */
static void wait_stat(cp2p_node *n, size_t offset, uint64_t want)
{
    for (int i = 0; i < 60000; i++) {
        cp2p_node_stats st;
        cp2p_node_stats_get(n, &st);
        if (*(uint64_t *)((char *)&st + offset) >= want) {
            return;
        }
        usleep(1000);
    }
    fail_msg("counter not reached");
}

/* ---- 8 threads x 1000 requests to 3 peers ---- */

#define THREADS 8
#define PER_THREAD 1000

typedef struct {
    cp2p_node *client;
    cp2p_node **servers;
    int id;
    int ok;
} load_arg;

static void *load_thread(void *p)
{
    load_arg *a = p;
    static const char *const tags[] = {"s0", "s1", "s2"};
    for (int i = 0; i < PER_THREAD; i++) {
        char req[64], want[80];
        uint8_t *resp = NULL;
        size_t len = 0;
        int s = (a->id + i) % 3;
        int n = snprintf(req, sizeof(req), "t%d-r%d", a->id, i);
        snprintf(want, sizeof(want), "%s:%s", tags[s], req);
        int rc = cp2p_node_request(a->client, cp2p_node_peer_id(a->servers[s]), "/test/tag/1",
                                   req, (size_t)n, 10000, &resp, &len);
        if (rc == 0 && len == strlen(want) && memcmp(resp, want, len) == 0) {
            a->ok++;
        }
        cp2p_free(resp);
    }
    return NULL;
}

static void many_threads_many_requests(void **state)
{
    static char *tags[] = {"s0", "s1", "s2"};
    cp2p_node *servers[3], *client = node_new(0, 1, 64);
    pthread_t th[THREADS];
    load_arg args[THREADS];
    (void)state;
    for (int i = 0; i < 3; i++) {
        servers[i] = node_new(2, 256, 64);
        assert_int_equal(cp2p_node_set_request_handler(servers[i], "/test/tag/1", tag_handler,
                                                       tags[i], i == 0 ? CP2P_NODE_ON_LOOP
                                                                       : CP2P_NODE_ON_POOL),
                         0);
        connect_nodes(client, servers[i]);
    }
    for (int t = 0; t < THREADS; t++) {
        args[t] = (load_arg){.client = client, .servers = servers, .id = t};
        assert_int_equal(pthread_create(&th[t], NULL, load_thread, &args[t]), 0);
    }
    int ok = 0;
    for (int t = 0; t < THREADS; t++) {
        pthread_join(th[t], NULL);
        ok += args[t].ok;
    }
    assert_int_equal(ok, THREADS * PER_THREAD);
    cp2p_node_stats st;
    cp2p_node_stats_get(client, &st);
    assert_int_equal(st.requests_sent, THREADS * PER_THREAD);
    assert_int_equal(st.requests_failed, 0);
    /* A request to a peer we are not connected to fails at once. */
    uint8_t *resp;
    size_t len;
    assert_int_equal(cp2p_node_request(servers[0], cp2p_node_peer_id(servers[1]), "/test/tag/1",
                                       "x", 1, 1000, &resp, &len),
                     CP2P_ENOENT);
    /* An unknown protocol is reported as such. */
    assert_int_equal(cp2p_node_request(client, cp2p_node_peer_id(servers[1]), "/nope/1", "x", 1,
                                       5000, &resp, &len),
                     CP2P_ENOTSUP);
    cp2p_node_stop(client);
    for (int i = 0; i < 3; i++) {
        cp2p_node_stop(servers[i]);
    }
}

/* A handler that never answers in time: the request returns CP2P_ETIMEDOUT, not a hang; a
 * full worker queue refuses with a reset instead of queueing without bound. */
static void timeouts_and_pool_refusals(void **state)
{
    cp2p_node *srv = node_new(1, 1, 64), *cli = node_new(0, 1, 64);
    uint8_t *resp;
    size_t len;
    (void)state;
    sem_init(&gate, 0, 0);
    assert_int_equal(cp2p_node_set_request_handler(srv, "/test/gate/1", gated_handler, NULL,
                                                   CP2P_NODE_ON_POOL),
                     0);
    connect_nodes(cli, srv);
    /* 1: the worker takes it and blocks; the client gives up after 300 ms. */
    assert_int_equal(cp2p_node_request(cli, cp2p_node_peer_id(srv), "/test/gate/1", "a", 1, 300,
                                       &resp, &len),
                     CP2P_ETIMEDOUT);
    /* 2: waits in the (1-slot) worker queue; 3: refused at once. */
    assert_int_equal(cp2p_node_request(cli, cp2p_node_peer_id(srv), "/test/gate/1", "b", 1, 300,
                                       &resp, &len),
                     CP2P_ETIMEDOUT);
    assert_int_equal(cp2p_node_request(cli, cp2p_node_peer_id(srv), "/test/gate/1", "c", 1, 5000,
                                       &resp, &len),
                     CP2P_ERESET);
    cp2p_node_stats st;
    cp2p_node_stats_get(srv, &st);
    assert_true(st.requests_refused_pool_full >= 1);
    sem_post(&gate);
    sem_post(&gate);
    cp2p_node_stop(cli);
    cp2p_node_stop(srv);
    sem_destroy(&gate);
}

/* The command queue at capacity pushes back: fail fast with timeout 0, or after the wait. The
 * client's loop is held busy by a loop-thread handler that blocks (only a test does that). */
typedef struct {
    cp2p_node *from, *to;
    int rc;
} call_arg;

static void *call_thread(void *p)
{
    call_arg *a = p;
    uint8_t *resp = NULL;
    size_t len;
    a->rc = cp2p_node_request(a->from, cp2p_node_peer_id(a->to), "/test/gate/1", "z", 1, 20000,
                              &resp, &len);
    cp2p_free(resp);
    return NULL;
}

static void command_queue_pushes_back(void **state)
{
    cp2p_node *busy = node_new(0, 1, 1), *other = node_new(0, 1, 64);
    pthread_t t1, t2;
    uint8_t *resp;
    size_t len;
    (void)state;
    sem_init(&gate, 0, 0);
    assert_int_equal(cp2p_node_set_request_handler(busy, "/test/gate/1", gated_handler, NULL,
                                                   CP2P_NODE_ON_LOOP),
                     0);
    connect_nodes(other, busy);
    /* other -> busy: busy's loop thread blocks inside the handler. */
    call_arg a1 = {.from = other, .to = busy};
    assert_int_equal(pthread_create(&t1, NULL, call_thread, &a1), 0);
    wait_stat(busy, offsetof(cp2p_node_stats, requests_handled), 1); /* its loop is blocked */
    /* One command fits in busy's queue (it waits there, unserved)... */
    cp2p_node_stats before;
    cp2p_node_stats_get(busy, &before);
    call_arg a2 = {.from = busy, .to = other};
    assert_int_equal(pthread_create(&t2, NULL, call_thread, &a2), 0);
    wait_stat(busy, offsetof(cp2p_node_stats, commands), before.commands + 1);
    /* ...the next is refused at once, or after waiting for room that never comes. */
    assert_int_equal(cp2p_node_request(busy, cp2p_node_peer_id(other), "/x/1", "y", 1, 0, &resp,
                                       &len),
                     CP2P_EINVAL); /* timeout 0 is not a valid request timeout */
    char addr[512];
    assert_int_equal(cp2p_node_addr(other, 0, addr, sizeof(addr)), 0);
    assert_int_equal(cp2p_node_dial(busy, addr, 0, NULL), CP2P_EFULL);
    assert_int_equal(cp2p_node_dial(busy, addr, 100, NULL), CP2P_EFULL);
    cp2p_node_stats st;
    cp2p_node_stats_get(busy, &st);
    assert_int_equal(st.commands_refused_full, 2);
    sem_post(&gate); /* release the loop */
    pthread_join(t1, NULL);
    assert_int_equal(a1.rc, 0);
    pthread_join(t2, NULL);
    assert_int_equal(a2.rc, CP2P_ENOTSUP); /* other has no /test/gate/1 */
    cp2p_node_stop(busy);
    cp2p_node_stop(other);
    sem_destroy(&gate);
}

/* Stopping a node with calls in flight fails them with CP2P_ECANCELED and leaks nothing. */
static void stop_with_requests_in_flight(void **state)
{
    cp2p_node *srv = node_new(2, 64, 64), *cli = node_new(0, 1, 64);
    pthread_t th[4];
    call_arg args[4];
    (void)state;
    sem_init(&gate, 0, 0);
    assert_int_equal(cp2p_node_set_request_handler(srv, "/test/gate/1", gated_handler, NULL,
                                                   CP2P_NODE_ON_POOL),
                     0);
    connect_nodes(cli, srv);
    for (int i = 0; i < 4; i++) {
        args[i] = (call_arg){.from = cli, .to = srv};
        assert_int_equal(pthread_create(&th[i], NULL, call_thread, &args[i]), 0);
    }
    wait_stat(srv, offsetof(cp2p_node_stats, requests_handled), 4); /* all four in flight */
    cp2p_node_stop(cli);
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(args[i].rc, CP2P_ECANCELED);
    }
    for (int i = 0; i < 4; i++) {
        sem_post(&gate);
    }
    cp2p_node_stop(srv);
    sem_destroy(&gate);
}

/* Connection events reach the handler registered once, on the loop or on the pool. */
typedef struct {
    pthread_mutex_t mu;
    int connected, identified, disconnected;
} ev_count;

static void on_node_event(void *ud, cp2p_node_event_type type, const cp2p_peer_id *peer, int err)
{
    ev_count *e = ud;
    (void)peer;
    (void)err;
    pthread_mutex_lock(&e->mu);
    e->connected += type == CP2P_NODE_EVENT_CONNECTED;
    e->identified += type == CP2P_NODE_EVENT_IDENTIFIED;
    e->disconnected += type == CP2P_NODE_EVENT_DISCONNECTED;
    pthread_mutex_unlock(&e->mu);
}

static void wait_events(ev_count *e, int connected, int identified, int disconnected)
{
    for (int i = 0; i < 60000; i++) {
        pthread_mutex_lock(&e->mu);
        bool ok = e->connected >= connected && e->identified >= identified &&
                  e->disconnected >= disconnected;
        pthread_mutex_unlock(&e->mu);
        if (ok) {
            return;
        }
        usleep(1000);
    }
    fail_msg("events not delivered");
}

static void connection_events(void **state)
{
    cp2p_node *a = node_new(1, 16, 64), *b = node_new(0, 1, 64);
    ev_count ea = {.mu = PTHREAD_MUTEX_INITIALIZER}, eb = {.mu = PTHREAD_MUTEX_INITIALIZER};
    (void)state;
    assert_int_equal(cp2p_node_set_event_handler(a, on_node_event, &ea, CP2P_NODE_ON_POOL), 0);
    assert_int_equal(cp2p_node_set_event_handler(b, on_node_event, &eb, CP2P_NODE_ON_LOOP), 0);
    assert_int_equal(cp2p_node_set_event_handler(b, on_node_event, &eb, CP2P_NODE_ON_POOL),
                     CP2P_EINVAL); /* b has no workers */
    connect_nodes(b, a);
    wait_events(&ea, 1, 1, 0);
    wait_events(&eb, 1, 1, 0);
    cp2p_node_stop(b); /* a sees the connection go */
    wait_events(&ea, 1, 1, 1);
    cp2p_node_stats st;
    cp2p_node_stats_get(a, &st);
    assert_true(st.events_delivered >= 3);
    assert_int_equal(st.events_dropped, 0);
    cp2p_node_stop(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(many_threads_many_requests),
        cmocka_unit_test(timeouts_and_pool_refusals),
        cmocka_unit_test(command_queue_pushes_back),
        cmocka_unit_test(stop_with_requests_in_flight),
        cmocka_unit_test(connection_events),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
