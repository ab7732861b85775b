/* The switch's Service lifecycle (cp2p/reactor.h): stop and keep, reset, start again, and wait
 * for quit. Start, traffic, stop (remove_peer "switch stopped" here, the peer removes us),
 * reset (counters zeroed, no peers), start again: the peer adds us again after a fresh node
 * info handshake and traffic flows; a quick restart the peer never saw as a stop ("peer
 * restarted its switch"); the quit waiters run on stop, close and host close; reset and start
 * in the wrong state are CP2P_ESTATE. Under ASan (build-asan) nothing leaks. */
#include <stdio.h>
#include <string.h>

#include <cp2p/reactor.h>

#include "integration/harness.h"

typedef struct node {
    cp2p_host *h;
    cp2p_switch *sw;
    cp2p_reactor *r;
    int added, removed, got;
    cp2p_reactor_peer *peer;
    char reason[64];
} node;

static void on_add(cp2p_reactor *r, cp2p_reactor_peer *p, void *ud)
{
    node *n = ud;
    (void)r;
    n->added++;
    n->peer = p;
    /* fresh per-peer state: a new peer never carries the old one's slot */
    assert_null(cp2p_reactor_peer_data(p, r));
    cp2p_reactor_peer_set_data(p, r, n);
}

static void on_remove(cp2p_reactor *r, cp2p_reactor_peer *p, const char *reason, void *ud)
{
    node *n = ud;
    (void)r;
    if (n->peer == p) {
        n->peer = NULL;
    }
    n->removed++;
    snprintf(n->reason, sizeof(n->reason), "%s", reason);
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

static void on_flag(void *ud)
{
    (*(int *)ud)++;
}

static void on_host_closed(cp2p_host *h, void *ud)
{
    (void)h;
    *(bool *)ud = true;
}

static void node_make(node *n)
{
    memset(n, 0, sizeof(*n));
    n->h = harness_host();
    assert_int_equal(cp2p_switch_new(n->h, NULL, &n->sw), 0);
    cp2p_channel_desc cd[] = {{.id = 0x30, .priority = 5, .send_queue_capacity = 4},
                              {.id = 0x22, .priority = 7}};
    /* one worker: the pool is stopped and started again too */
    cp2p_reactor_desc d = {.name = "r", .channels = cd, .n_channels = 2, .workers = 1,
                           .add_peer = on_add, .remove_peer = on_remove, .receive = on_receive};
    assert_int_equal(cp2p_switch_add_reactor(n->sw, &d, n, &n->r), 0);
    assert_int_equal(cp2p_switch_start(n->sw), 0);
}

static void close_host(cp2p_host *h)
{
    bool done = false;
    cp2p_host_close(h, on_host_closed, &done);
    run_until(&done);
}

/* a sends one message to b on 0x30 and b one to a; both arrive. */
static void traffic(node *a, node *b)
{
    int ga = a->got, gb = b->got;
    uint8_t m[100] = {1};
    assert_non_null(a->peer);
    assert_non_null(b->peer);
    assert_int_equal(cp2p_reactor_peer_try_send(a->peer, 0x30, m, sizeof(m)), 0);
    assert_int_equal(cp2p_reactor_peer_try_send(b->peer, 0x22, m, 10), 0);
    wait_until_count(&b->got, gb + 1);
    wait_until_count(&a->got, ga + 1);
}

static void stop_and_wait(node *n)
{
    int stopped = 0, quit = 0;
    assert_int_equal(cp2p_switch_on_quit(n->sw, on_flag, &quit), 0);
    assert_int_equal(cp2p_switch_stop(n->sw, on_flag, &stopped), 0);
    assert_false(cp2p_switch_is_running(n->sw));
    /* stopping: neither reset, start, a second stop nor a quit waiter's registration ... */
    assert_int_equal(cp2p_switch_reset(n->sw), CP2P_ESTATE);
    assert_int_equal(cp2p_switch_start(n->sw), CP2P_ESTATE);
    assert_int_equal(cp2p_switch_stop(n->sw, NULL, NULL), CP2P_ECLOSED);
    assert_int_equal(quit, 0); /* never inside the call */
    wait_until_count(&stopped, 1);
    assert_int_equal(quit, 1);
    assert_int_equal(cp2p_switch_on_quit(n->sw, on_flag, &quit), CP2P_ESTATE);
    assert_int_equal(cp2p_switch_start(n->sw), CP2P_ESTATE); /* stopped: reset first */
}

static void stop_reset_start(void **state)
{
    (void)state;
    node a, b;
    node_make(&a);
    node_make(&b);
    assert_int_equal(cp2p_switch_reset(a.sw), CP2P_ESTATE); /* running */
    dial_res r;
    assert_non_null(dial_host(a.h, b.h, &r));
    wait_until_count(&a.added, 1);
    wait_until_count(&b.added, 1);
    traffic(&a, &b);

    stop_and_wait(&a);
    assert_int_equal(a.removed, 1);
    assert_string_equal(a.reason, "switch stopped");
    wait_until_count(&b.removed, 1); /* b notices a's switch went */
    assert_int_equal(cp2p_switch_reset(a.sw), 0);
    cp2p_switch_stats st;
    cp2p_switch_stats_get(a.sw, &st);
    assert_int_equal(st.peers + st.peers_added + st.peers_removed + st.bytes_sent, 0);
    cp2p_channel_stats cs;
    assert_int_equal(cp2p_switch_channel_stats(a.sw, 0x30, &cs), 0);
    assert_int_equal(cs.msgs_sent + cs.send_queued + cs.recv_queued, 0);
    assert_int_equal(cp2p_switch_peers(a.sw, NULL, 0), 0);
    assert_int_equal(cp2p_switch_reset(a.sw), CP2P_ESTATE); /* not stopped any more */

    assert_int_equal(cp2p_switch_start(a.sw), 0);
    assert_true(cp2p_switch_is_running(a.sw));
    wait_until_count(&a.added, 2); /* the connection is still there: handshaken afresh */
    wait_until_count(&b.added, 2);
    traffic(&a, &b);
    cp2p_switch_stats_get(a.sw, &st);
    assert_int_equal(st.peers_added, 1);

    /* A restart b may never see as a stop: b removes the old a on its new node info. */
    stop_and_wait(&a);
    assert_int_equal(cp2p_switch_reset(a.sw), 0);
    assert_int_equal(cp2p_switch_start(a.sw), 0);
    wait_until_count(&a.added, 3);
    wait_until_count(&b.added, 3);
    assert_int_equal(b.removed, 2);
    assert_true(strcmp(b.reason, "peer stopped its switch") == 0 ||
                strcmp(b.reason, "peer restarted its switch") == 0);
    traffic(&a, &b);

    /* Quit waiters on close (before its callback) and on the host's close. */
    int quit_b = 0, closed_b = 0;
    assert_int_equal(cp2p_switch_on_quit(b.sw, on_flag, &quit_b), 0);
    assert_int_equal(cp2p_switch_close(b.sw, on_flag, &closed_b), 0);
    wait_until_count(&closed_b, 1);
    assert_int_equal(quit_b, 1);
    int quit_a = 0;
    assert_int_equal(cp2p_switch_on_quit(a.sw, on_flag, &quit_a), 0);
    close_host(a.h);
    assert_int_equal(quit_a, 1);
    close_host(b.h);
}

/* A stopped switch is the application's: free it, also after its host closed, and also when
 * the host's close came in the same turn as the stop. A never-started switch cannot be
 * stopped or reset. */
static void stopped_switch_is_freed(void **state)
{
    (void)state;
    node a;
    node_make(&a);
    int stopped = 0;
    assert_int_equal(cp2p_switch_stop(a.sw, on_flag, &stopped), 0);
    wait_until_count(&stopped, 1);
    close_host(a.h); /* the stopped switch is not the host's: it stays */
    cp2p_switch_free(a.sw);

    node b;
    node_make(&b);
    stopped = 0;
    assert_int_equal(cp2p_switch_stop(b.sw, on_flag, &stopped), 0);
    cp2p_host_close(b.h, NULL, NULL); /* in the same turn as the stop: it still completes */
    wait_until_count(&stopped, 1);
    cp2p_switch_free(b.sw);

    cp2p_host *h = harness_host();
    cp2p_switch *sw;
    assert_int_equal(cp2p_switch_new(h, NULL, &sw), 0);
    assert_int_equal(cp2p_switch_stop(sw, NULL, NULL), CP2P_ESTATE);
    assert_int_equal(cp2p_switch_reset(sw), CP2P_ESTATE);
    assert_int_equal(cp2p_switch_on_quit(sw, on_flag, &stopped), CP2P_ESTATE);
    cp2p_switch_free(sw);
    close_host(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(stop_reset_start, setup, teardown),
        cmocka_unit_test_setup_teardown(stopped_switch_is_freed, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
