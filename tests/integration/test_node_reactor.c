/* Reactors on the thread-safe node API (cp2p_node_switch_*): two nodes, each with a reactor
 * whose receive runs on its worker thread and answers through the node API from there; sends
 * from the test thread; try_send to a peer that is not there; broadcast; stats; stop (before
 * the node's). */
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include <cp2p/reactor.h>

#include "integration/harness_node.h"

enum { CH_ASK = 0x30, CH_ANSWER = 0x31 };

typedef struct {
    cp2p_node_switch *ns;
    atomic_int asked, answered, added;
} side;

static void on_add(cp2p_reactor *r, cp2p_reactor_peer *p, void *ud)
{
    side *s = ud;
    (void)r;
    (void)p;
    atomic_fetch_add(&s->added, 1);
}

/* On the reactor's worker: answer every question through the node API. */
static void on_receive(cp2p_reactor *r, uint8_t ch, cp2p_reactor_peer *p, const uint8_t *msg,
                       size_t len, void *ud)
{
    side *s = ud;
    (void)r;
    if (ch == CH_ASK) {
        atomic_fetch_add(&s->asked, 1);
        assert_int_equal(cp2p_node_switch_send(s->ns, cp2p_reactor_peer_id(p), CH_ANSWER, msg,
                                               len, 5000),
                         0);
    } else {
        atomic_fetch_add(&s->answered, 1);
    }
}

static void wait_for(atomic_int *v, int want)
{
    struct timespec ts = {0, 2000000};
    for (int i = 0; atomic_load(v) < want; i++) {
        if (i > 30000) {
            fail_msg("%d of %d within the guard time", atomic_load(v), want);
        }
        nanosleep(&ts, NULL);
    }
}

static void start_side(cp2p_node *n, side *s)
{
    cp2p_channel_desc ch[] = {{.id = CH_ASK, .priority = 5, .send_queue_capacity = 8},
                              {.id = CH_ANSWER, .priority = 7, .send_queue_capacity = 8}};
    cp2p_reactor_desc d = {.name = "qa", .channels = ch, .n_channels = 2, .workers = 1,
                           .add_peer = on_add, .receive = on_receive};
    void *uds[] = {s};
    assert_int_equal(cp2p_node_switch_start(n, NULL, &d, 1, uds, &s->ns), 0);
}

static void ask_and_answer(void **state)
{
    (void)state;
    cp2p_node *a = harness_node(), *b = harness_node();
    side sa = {0}, sb = {0};
    start_side(a, &sa);
    start_side(b, &sb);
    char addr[256];
    assert_int_equal(cp2p_node_addr(b, 0, addr, sizeof(addr)), 0);
    cp2p_peer_id bid;
    assert_int_equal(cp2p_node_dial(a, addr, 10000, &bid), 0);
    wait_for(&sa.added, 1);
    wait_for(&sb.added, 1);
    for (int i = 0; i < 50; i++) {
        char q[32];
        int len = snprintf(q, sizeof(q), "question %d", i);
        assert_int_equal(cp2p_node_switch_send(sa.ns, &bid, CH_ASK, q, (size_t)len, 5000), 0);
    }
    wait_for(&sa.answered, 50);
    assert_int_equal(atomic_load(&sb.asked), 50);
    size_t queued = 0;
    assert_int_equal(cp2p_node_switch_broadcast(sa.ns, CH_ASK, "all", 3, &queued), 0);
    assert_int_equal(queued, 1);
    wait_for(&sa.answered, 51);
    /* Not a peer of the switch; not a channel of it. */
    assert_int_equal(cp2p_node_switch_try_send(sa.ns, cp2p_node_peer_id(a), CH_ASK, "x", 1),
                     CP2P_ENOENT);
    assert_int_equal(cp2p_node_switch_try_send(sa.ns, &bid, 0x99, "x", 1), CP2P_ENOENT);
    /* The HTTP API's channels view: reactors, channels with totals, peers with queues. */
    cp2p_node_api *api;
    cp2p_node_api_config acfg;
    cp2p_node_api_config_default(&acfg);
    acfg.listen = "127.0.0.1:0";
    assert_int_equal(cp2p_node_api_start(a, &acfg, &api), 0);
    char *r = harness_http(harness_api_port(api), "POST /api/v0/channels HTTP/1.0\r\n\r\n");
    assert_non_null(strstr(r, "200 OK"));
    assert_non_null(strstr(r, "\"Name\":\"qa\""));
    assert_non_null(strstr(r, "\"MsgsReceived\":51"));
    assert_non_null(strstr(r, "0x31"));
    assert_non_null(strstr(r, "\"PeersTotal\""));
    char bs[CP2P_PEER_ID_STR_MAX];
    assert_non_null(strstr(r, cp2p_peer_id_str(&bid, bs)));
    free(r);
    cp2p_node_api_stop(api);
    cp2p_switch_stats st;
    assert_int_equal(cp2p_node_switch_stats(sb.ns, &st), 0);
    assert_int_equal(st.peers, 1);
    assert_true(st.bytes_received > 0);
    /* Stop, reset, start on the node API: b's reactor loses a and gets it back, and works. */
    int added_before = atomic_load(&sb.added);
    assert_int_equal(cp2p_node_switch_restart(sb.ns), 0);
    wait_for(&sb.added, added_before + 1);
    wait_for(&sa.added, 2); /* a saw b's switch go and come back */
    assert_int_equal(cp2p_node_switch_send(sa.ns, &bid, CH_ASK, "again", 5, 5000), 0);
    wait_for(&sa.answered, 52);
    cp2p_node_switch_stop(sa.ns);
    cp2p_node_switch_stop(sb.ns);
    cp2p_node_stop(a);
    cp2p_node_stop(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ask_and_answer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
