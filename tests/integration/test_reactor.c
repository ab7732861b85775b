/* Reactors and channels (cp2p/reactor.h) between hosts on one loop: each anchor problem of
 * issue 14 turned round. A Receive that blocks on channel X (on its reactor's worker) does not
 * stop channel Y of the same reactor and peer, nor the keepalive, nor drop the peer; try_send
 * fails at each channel's own capacity while its receiver is blocked, send times out with
 * CP2P_ETIMEDOUT, and another channel still flows; bad input (oversized, malformed, a channel
 * the peer has no reactor for) costs only that stream or channel and is counted; a peer that
 * stops answering pings is removed with "pong timeout". Blocking is done with semaphores the
 * test releases, not with sleeps, so nothing depends on timing. Only the public surface. */
#include <stdio.h>
#include <string.h>

#include <cp2p/buf.h>
#include <cp2p/codec.h>
#include <cp2p/metrics.h>
#include <cp2p/reactor.h>

#include "integration/harness.h"
#include "reactor/nodeinfo.h"
#include "swarm/swarm.h"

enum { CH_X = 0x20, CH_Y = 0x22, CH_BULK = 0x40, CH_FREE = 0x41, CH_ONLY_A = 0x50 };

typedef struct node {
    cp2p_host *h;
    cp2p_switch *sw;
    cp2p_reactor *r1, *r2;
    int added, removed;
    char reason[64];
    cp2p_reactor_peer *peer; /* the last added */
    /* receive counts per channel (written by workers: read after the loop saw them) */
    int got[256];
    size_t got_bytes[256];
    uint8_t block_on; /* a channel whose receive waits on `gate` (0: none) */
    uv_sem_t gate;
    volatile int blocked; /* a receive is waiting on the gate */
    uv_mutex_t mu;
    int send_done, send_status;
    size_t last_len[256]; /* order check: lengths must grow per channel when set */
    bool check_order;
    int out_of_order;
} node;

static void on_host_closed(cp2p_host *h, void *ud)
{
    (void)h;
    *(bool *)ud = true;
}

static void on_flag(void *ud)
{
    *(bool *)ud = true;
}

static void on_add(cp2p_reactor *r, cp2p_reactor_peer *p, void *ud)
{
    node *n = ud;
    (void)r;
    if (r == n->r1) {
        n->added++;
        n->peer = p;
        cp2p_reactor_peer_set_data(p, r, n);
    }
}

static void on_remove(cp2p_reactor *r, cp2p_reactor_peer *p, const char *reason, void *ud)
{
    node *n = ud;
    if (r == n->r1) {
        assert_ptr_equal(cp2p_reactor_peer_data(p, r), n);
        n->removed++;
        snprintf(n->reason, sizeof(n->reason), "%s", reason);
        if (n->peer == p) {
            n->peer = NULL;
        }
    }
}

static void on_receive(cp2p_reactor *r, uint8_t ch, cp2p_reactor_peer *p, const uint8_t *msg,
                       size_t len, void *ud)
{
    node *n = ud;
    (void)r;
    (void)p;
    for (size_t i = 0; i < len; i++) {
        assert_int_equal(msg[i], (uint8_t)(len + i));
    }
    if (ch == n->block_on) {
        uv_mutex_lock(&n->mu);
        n->blocked++;
        uv_mutex_unlock(&n->mu);
        uv_sem_wait(&n->gate);
        uv_mutex_lock(&n->mu);
        n->blocked--;
        uv_mutex_unlock(&n->mu);
    }
    uv_mutex_lock(&n->mu);
    n->got[ch]++;
    n->got_bytes[ch] += len;
    if (n->check_order) {
        if (len <= n->last_len[ch] && n->got[ch] > 1) {
            n->out_of_order++;
        }
        n->last_len[ch] = len;
    }
    uv_mutex_unlock(&n->mu);
}

static int got(node *n, uint8_t ch)
{
    uv_mutex_lock(&n->mu);
    int v = n->got[ch];
    uv_mutex_unlock(&n->mu);
    return v;
}

static int blocked(node *n)
{
    uv_mutex_lock(&n->mu);
    int v = n->blocked;
    uv_mutex_unlock(&n->mu);
    return v;
}

/* Run the loop until got(n, ch) >= want. */
static void wait_got(node *n, uint8_t ch, int want)
{
    uint64_t start = uv_now(&loop);
    while (got(n, ch) < want) {
        uv_run(&loop, UV_RUN_NOWAIT);
        uv_sleep(1);
        uv_update_time(&loop);
        if (uv_now(&loop) - start > GUARD_MS) {
            fail_msg("channel 0x%02x: %d of %d messages", ch, got(n, ch), want);
        }
    }
}

static void wait_blocked(node *n)
{
    uint64_t start = uv_now(&loop);
    while (blocked(n) == 0) {
        uv_run(&loop, UV_RUN_NOWAIT);
        uv_sleep(1);
        uv_update_time(&loop);
        if (uv_now(&loop) - start > GUARD_MS) {
            fail_msg("no receive blocked");
        }
    }
}

static void fill(uint8_t *buf, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        buf[i] = (uint8_t)(len + i);
    }
}

/* A node: reactor 1 ("consensus": X and Y, two workers, plus BULK and FREE), reactor 2 on the
 * loop (no channel of interest, only to show several reactors), optional ONLY_A channel. */
static void node_make(node *n, const cp2p_switch_config *cfg, bool only_a)
{
    memset(n, 0, sizeof(*n));
    assert_int_equal(uv_sem_init(&n->gate, 0), 0);
    assert_int_equal(uv_mutex_init(&n->mu), 0);
    n->h = harness_host();
    assert_int_equal(cp2p_switch_new(n->h, cfg, &n->sw), 0);
    cp2p_channel_desc c1[] = {
        {.id = CH_X, .priority = 6, .recv_queue_capacity = 2},
        {.id = CH_Y, .priority = 7},
        {.id = CH_BULK, .priority = 5, .send_queue_capacity = 3, .recv_queue_capacity = 1},
        {.id = CH_FREE, .priority = 5, .send_queue_capacity = 2},
    };
    cp2p_reactor_desc d1 = {.name = "consensus", .channels = c1, .n_channels = 4, .workers = 2,
                            .add_peer = on_add, .remove_peer = on_remove,
                            .receive = on_receive};
    assert_int_equal(cp2p_switch_add_reactor(n->sw, &d1, n, &n->r1), 0);
    cp2p_channel_desc c2[] = {{.id = 0x30, .priority = 5}, {.id = CH_ONLY_A, .priority = 1}};
    cp2p_reactor_desc d2 = {.name = "mempool", .channels = c2, .n_channels = only_a ? 2 : 1,
                            .add_peer = on_add, .remove_peer = on_remove,
                            .receive = on_receive};
    assert_int_equal(cp2p_switch_add_reactor(n->sw, &d2, n, &n->r2), 0);
    assert_int_equal(cp2p_switch_start(n->sw), 0);
    assert_true(cp2p_switch_is_running(n->sw));
}

static void node_close(node *n)
{
    bool done = false;
    if (n->block_on != 0) {
        n->block_on = 0;
        for (int i = 0; i < 4; i++) {
            uv_sem_post(&n->gate); /* release any receive still waiting */
        }
    }
    cp2p_host_close(n->h, on_host_closed, &done); /* frees the switch too */
    run_until(&done);
    uv_sem_destroy(&n->gate);
    uv_mutex_destroy(&n->mu);
}

/* Pings every 50 ms, a peer is removed after 200 ms without a pong. */
static cp2p_switch_config fast_keepalive(void)
{
    cp2p_switch_config cfg;
    cp2p_switch_config_default(&cfg);
    cfg.ping_interval_ms = 50;
    cfg.pong_timeout_ms = 200;
    return cfg;
}

static void connect_nodes(node *a, node *b)
{
    dial_res r;
    assert_non_null(dial_host(a->h, b->h, &r));
    assert_int_equal(r.status, 0);
    wait_until_count(&a->added, 1);
    wait_until_count(&b->added, 1);
}

/* Two nodes with the same switch config, connected, each added to the other's reactors. */
static void two_nodes(node *a, node *b, const cp2p_switch_config *cfg)
{
    node_make(a, cfg, false);
    node_make(b, cfg, false);
    connect_nodes(a, b);
}

/* Messages of many sizes (across the 16 KiB packet and yamux frame boundaries) on three
 * channels at once arrive whole (the content depends on the length and is checked), each
 * channel in order (lengths grow), none lost. */
static void interleaved_sizes_arrive_whole_and_in_order(void **state)
{
    (void)state;
    node a, b;
    two_nodes(&a, &b, NULL);
    b.check_order = true;
    static uint8_t msg[200000];
    static const struct {
        uint8_t ch;
        size_t first, step;
    } plan[] = {{CH_X, 16000, 257}, {CH_Y, 1, 3}, {CH_BULK, 1000, 1999}};
    const int per = 80;
    for (int k = 0; k < per; k++) {
        for (size_t c = 0; c < 3; c++) {
            size_t len = plan[c].first + (size_t)k * plan[c].step;
            fill(msg, len);
            int rc;
            while ((rc = cp2p_reactor_peer_try_send(a.peer, plan[c].ch, msg, len)) ==
                   CP2P_EFULL) {
                uv_run(&loop, UV_RUN_ONCE);
            }
            assert_int_equal(rc, 0);
        }
    }
    for (size_t c = 0; c < 3; c++) {
        wait_got(&b, plan[c].ch, per);
    }
    assert_int_equal(b.out_of_order, 0);
    cp2p_channel_stats cs;
    assert_int_equal(cp2p_switch_channel_stats(b.sw, CH_BULK, &cs), 0);
    assert_int_equal(cs.msgs_received, (uint64_t)per);
    assert_int_equal(cs.malformed + cs.oversized + cs.truncated, 0);
    assert_int_equal(a.removed + b.removed, 0);
    node_close(&a);
    node_close(&b);
}

static void registration_errors(void **state)
{
    (void)state;
    cp2p_host *h = harness_host();
    cp2p_switch *sw;
    cp2p_reactor *r;
    assert_int_equal(cp2p_switch_new(h, NULL, &sw), 0);
    cp2p_channel_desc c[] = {{.id = 1, .priority = 3}, {.id = 2, .priority = 3}};
    cp2p_reactor_desc d = {.name = "a", .channels = c, .n_channels = 2};
    assert_int_equal(cp2p_switch_add_reactor(sw, &d, NULL, &r), 0);
    cp2p_reactor_desc d2 = {.name = "b", .channels = c + 1, .n_channels = 1};
    assert_int_equal(cp2p_switch_add_reactor(sw, &d2, NULL, &r), CP2P_ESTATE); /* id 2 taken */
    cp2p_channel_desc twice[] = {{.id = 9}, {.id = 9}};
    cp2p_reactor_desc d3 = {.name = "c", .channels = twice, .n_channels = 2};
    assert_int_equal(cp2p_switch_add_reactor(sw, &d3, NULL, &r), CP2P_ESTATE);
    cp2p_channel_desc bad[] = {{.id = 3, .priority = 17}};
    cp2p_reactor_desc d4 = {.name = "d", .channels = bad, .n_channels = 1};
    assert_int_equal(cp2p_switch_add_reactor(sw, &d4, NULL, &r), CP2P_EINVAL);
    assert_false(cp2p_switch_is_running(sw));
    assert_int_equal(cp2p_switch_start(sw), 0);
    assert_int_equal(cp2p_switch_start(sw), CP2P_ESTATE);
    cp2p_channel_desc late[] = {{.id = 4}};
    cp2p_reactor_desc d5 = {.name = "e", .channels = late, .n_channels = 1};
    assert_int_equal(cp2p_switch_add_reactor(sw, &d5, NULL, &r), CP2P_ESTATE);
    /* A second switch on the host cannot take the same channels. */
    cp2p_switch *sw2;
    assert_int_equal(cp2p_switch_new(h, NULL, &sw2), 0);
    assert_int_equal(cp2p_switch_add_reactor(sw2, &d, NULL, &r), 0);
    assert_int_not_equal(cp2p_switch_start(sw2), 0);
    cp2p_switch_free(sw2); /* its start failed: nothing to close */
    bool closed = false;
    assert_int_equal(cp2p_switch_close(sw, on_flag, &closed), 0); /* before the host */
    assert_int_equal(cp2p_switch_close(sw, on_flag, &closed), CP2P_ECLOSED);
    assert_false(closed); /* never inside the call */
    run_until(&closed);
    bool done = false;
    cp2p_host_close(h, on_host_closed, &done);
    run_until(&done);
}

/* Receive on X blocks (a worker waits on a gate). Meanwhile 200 messages on Y arrive, pings
 * keep being answered, and the peer stays. Released, X's messages all arrive. */
static void blocked_receive_stalls_only_its_channel(void **state)
{
    (void)state;
    cp2p_switch_config cfg = fast_keepalive();
    node a, b;
    node_make(&a, &cfg, false);
    node_make(&b, &cfg, false);
    b.block_on = CH_X;
    connect_nodes(&a, &b);
    static uint8_t msg[3000];
    fill(msg, 100);
    /* The first X message blocks b's worker; more X messages fill X's queue on b. */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(cp2p_reactor_peer_send(a.peer, CH_X, msg, 100, 5000, NULL, NULL), 0);
    }
    wait_blocked(&b);
    int sent = 0;
    while (sent < 200) {
        size_t len = 200 + (size_t)sent;
        fill(msg, len);
        int rc = cp2p_reactor_peer_try_send(a.peer, CH_Y, msg, len);
        if (rc == CP2P_EFULL) {
            uv_run(&loop, UV_RUN_NOWAIT); /* capacity 1: let it go out */
            continue;
        }
        assert_int_equal(rc, 0);
        sent++;
    }
    wait_got(&b, CH_Y, 200);
    /* Keepalive goes on both ways while X stays blocked, for more than the pong timeout
     * (200 ms): a stalled keepalive would have removed the peer. */
    cp2p_reactor_peer_stats pa0, pb0, pa, pb;
    cp2p_reactor_peer_stats_get(a.peer, &pa0);
    cp2p_reactor_peer_stats_get(b.peer, &pb0);
    run_for(600);
    cp2p_reactor_peer_stats_get(a.peer, &pa);
    cp2p_reactor_peer_stats_get(b.peer, &pb);
    assert_true(pa.pongs_received > pa0.pongs_received);
    assert_true(pb.pongs_received > pb0.pongs_received);
    assert_true(blocked(&b) == 1);
    assert_int_equal(got(&b, CH_X), 0);
    assert_int_equal(a.removed + b.removed, 0);
    cp2p_channel_stats cs;
    assert_int_equal(cp2p_switch_channel_stats(b.sw, CH_Y, &cs), 0);
    assert_int_equal(cs.msgs_received, 200);
    /* Release the gate: X's three messages arrive. */
    b.block_on = 0;
    uv_sem_post(&b.gate);
    wait_got(&b, CH_X, 3);
    assert_int_equal(a.removed + b.removed, 0);
    cp2p_switch_stats st;
    cp2p_switch_stats_get(b.sw, &st);
    assert_int_equal(st.peers, 1);
    assert_int_equal(st.pong_timeouts, 0);
    node_close(&a);
    node_close(&b);
    /* Closing the host removed the peer from each reactor. */
    assert_int_equal(a.removed, 1);
}

static void on_send_done(cp2p_reactor_peer *p, uint8_t ch, int status, void *ud)
{
    node *n = ud;
    (void)p;
    (void)ch;
    n->send_done++;
    n->send_status = status;
}

/* With b's BULK receive blocked, a's BULK queue fills at its own capacity (3): try_send fails
 * at once, send times out with CP2P_ETIMEDOUT; the FREE channel still flows. */
static void capacity_and_timeout(void **state)
{
    (void)state;
    node a, b;
    node_make(&a, NULL, false);
    node_make(&b, NULL, false);
    b.block_on = CH_BULK;
    connect_nodes(&a, &b);
    static uint8_t msg[16384];
    fill(msg, sizeof(msg));
    int queued = 0, rc = 0;
    /* Fill everything between a's queue and b's blocked receive: the peer's window, the
     * stream, the queue. Bounded: b's window is at most the host's 16 MiB. */
    for (int i = 0; i < 4000; i++) {
        rc = cp2p_reactor_peer_try_send(a.peer, CH_BULK, msg, sizeof(msg));
        if (rc == CP2P_EFULL) {
            /* Full now; is it still full after the loop ran (nothing drains any more)? */
            for (int k = 0; k < 50; k++) {
                uv_run(&loop, UV_RUN_NOWAIT);
            }
            run_for(20);
            rc = cp2p_reactor_peer_try_send(a.peer, CH_BULK, msg, sizeof(msg));
            if (rc == CP2P_EFULL) {
                break;
            }
        }
        assert_int_equal(rc, 0);
        queued++;
        uv_run(&loop, UV_RUN_NOWAIT);
    }
    assert_int_equal(rc, CP2P_EFULL);
    cp2p_channel_stats cs;
    assert_int_equal(cp2p_reactor_peer_channel_stats(a.peer, CH_BULK, &cs), 0);
    assert_true(cs.send_queued >= 3); /* the channel's own capacity, not a default */
    assert_true(cs.try_send_refused >= 1);
    /* send waits, then times out. */
    assert_int_equal(cp2p_reactor_peer_send(a.peer, CH_BULK, msg, 100, 150, on_send_done, &a),
                     0);
    assert_int_equal(a.send_done, 0); /* never inside the call */
    wait_until_count(&a.send_done, 1);
    assert_int_equal(a.send_status, CP2P_ETIMEDOUT);
    assert_int_equal(cp2p_reactor_peer_channel_stats(a.peer, CH_BULK, &cs), 0);
    assert_int_equal(cs.send_timeouts, 1);
    /* Unknown channel, too large. */
    assert_int_equal(cp2p_reactor_peer_try_send(a.peer, 0x99, msg, 1), CP2P_ENOENT);
    static uint8_t huge[22020097];
    assert_int_equal(cp2p_reactor_peer_try_send(a.peer, CH_FREE, huge, sizeof(huge)),
                     CP2P_ELIMIT);
    /* The FREE channel of the same peer and reactor still flows. */
    for (int i = 0; i < 20; i++) {
        fill(msg, 500);
        while ((rc = cp2p_reactor_peer_try_send(a.peer, CH_FREE, msg, 500)) == CP2P_EFULL) {
            uv_run(&loop, UV_RUN_ONCE);
        }
        assert_int_equal(rc, 0);
    }
    wait_got(&b, CH_FREE, 20);
    /* A send that gets room in time completes with 0. */
    a.send_done = 0;
    assert_int_equal(cp2p_reactor_peer_send(a.peer, CH_FREE, msg, 500, 0, on_send_done, &a), 0);
    wait_until_count(&a.send_done, 1);
    assert_int_equal(a.send_status, 0);
    /* Released, every BULK message queued arrives. */
    b.block_on = 0;
    uv_sem_post(&b.gate);
    wait_got(&b, CH_BULK, queued);
    assert_int_equal(a.removed + b.removed, 0);
    /* The same counters as metrics, labelled by channel. */
    cp2p_metrics *reg;
    cp2p_switch_metrics *ms = NULL;
    assert_int_equal(cp2p_metrics_new(&reg), 0);
    assert_int_equal(cp2p_switch_metrics_update(&ms, a.sw, reg), 0);
    assert_int_equal(cp2p_switch_metrics_update(&ms, a.sw, reg), 0); /* idempotent */
    cp2p_buf text;
    cp2p_buf_init(&text, CP2P_METRICS_RENDER_MAX_DEFAULT);
    assert_int_equal(cp2p_metrics_render(reg, &text), 0);
    assert_int_equal(cp2p_buf_append_byte(&text, 0), 0);
    const char *t = (const char *)text.ptr;
    assert_non_null(strstr(t, "cp2p_channel_send_timeouts_total{channel=\"0x40\"} 1\n"));
    assert_non_null(strstr(t, "cp2p_channel_try_send_refused_total{channel=\"0x40\"}"));
    assert_non_null(strstr(t, "cp2p_channel_too_large_total{channel=\"0x41\"} 1\n"));
    assert_non_null(strstr(t, "cp2p_switch_peers 1\n"));
    char pid[CP2P_PEER_ID_STR_MAX], line[160];
    snprintf(line, sizeof(line), "cp2p_switch_peer_sent_bytes_total{peer=\"%s\"} ",
             cp2p_peer_id_str(cp2p_host_peer_id(b.h), pid));
    assert_non_null(strstr(t, line));
    /* promtool (Debian's prometheus) accepts the exposition, when it is installed. */
    FILE *pt = popen("if command -v promtool >/dev/null; then promtool check metrics; "
                     "else cat >/dev/null; fi",
                     "w");
    assert_non_null(pt);
    assert_int_equal(fwrite(text.ptr, 1, text.len - 1, pt), text.len - 1);
    assert_int_equal(pclose(pt), 0);
    cp2p_buf_fini(&text);
    cp2p_switch_metrics_free(ms);
    cp2p_metrics_free(reg);
    node_close(&a);
    node_close(&b);
}

/* A raw stream that writes bytes and is kept (not read, not ended) until the test ends it. */
typedef struct {
    const uint8_t *bytes;
    size_t len;
    cp2p_stream *s;
} kept;

static void kept_open(cp2p_stream *s, int status, void *ud)
{
    kept *k = ud;
    assert_int_equal(status, 0);
    assert_int_equal(cp2p_stream_write(s, k->bytes, k->len, NULL, NULL), 0);
    k->s = s;
}

/* Bad input costs one stream (oversized length, malformed length) or one channel (a channel
 * the peer has no reactor for), each counted; the peer stays and other channels flow. */
static void bad_input_costs_one_stream(void **state)
{
    (void)state;
    node a, b;
    node_make(&a, NULL, true);
    node_make(&b, NULL, false);
    connect_nodes(&a, &b);
    cp2p_conn *c = cp2p_host_conn_to(a.h, cp2p_host_peer_id(b.h));
    assert_non_null(c);
    /* Over the channel's largest message (22,020,096): 22,020,097 as a uvarint. */
    uint8_t oversized[CP2P_UVARINT_MAX];
    size_t n = cp2p_uvarint_encode(oversized, 22020097);
    harness_raw_bad(c, CP2P_CHANNEL_PROTOCOL_PREFIX "0x30", oversized, n);
    uint8_t nonminimal[] = {0x80, 0x80, 0x00};
    harness_raw_bad(c, CP2P_CHANNEL_PROTOCOL_PREFIX "0x22", nonminimal, sizeof(nonminimal));
    cp2p_channel_stats cs;
    assert_int_equal(cp2p_switch_channel_stats(b.sw, 0x30, &cs), 0);
    assert_int_equal(cs.oversized, 1);
    assert_int_equal(cp2p_switch_channel_stats(b.sw, CH_Y, &cs), 0);
    assert_int_equal(cs.malformed, 1);
    cp2p_switch_stats st;
    cp2p_switch_stats_get(b.sw, &st);
    assert_int_equal(st.bad_streams, 2);
    /* A channel's streams are read one after the other: a newer one waits while the older
     * (here with half a message) lives, and is read once it ends (the half message counted as
     * truncated): a sender with a stream per message is read in order. */
    const char *p30 = CP2P_CHANNEL_PROTOCOL_PREFIX "0x30";
    uint8_t partial[] = {10, 1, 2, 3};
    uint8_t whole[1 + 50];
    whole[0] = 50;
    fill(whole + 1, 50);
    kept old = {.bytes = partial, .len = sizeof(partial)};
    kept newer = {.bytes = whole, .len = sizeof(whole)};
    assert_int_equal(cp2p_conn_open_stream(c, &p30, 1, kept_open, &old), 0);
    assert_int_equal(cp2p_conn_open_stream(c, &p30, 1, kept_open, &newer), 0);
    uint64_t t0 = uv_now(&loop);
    do { /* until b has both streams */
        uv_run(&loop, UV_RUN_ONCE);
        cp2p_switch_stats_get(b.sw, &st);
        assert_true(uv_now(&loop) - t0 < GUARD_MS);
    } while (st.inbound_waiting < 1 || old.s == NULL || newer.s == NULL);
    run_for(50);
    assert_int_equal(got(&b, 0x30), 0); /* the newer one waits */
    assert_int_equal(cp2p_stream_close_write(old.s), 0);
    wait_got(&b, 0x30, 1);
    assert_int_equal(cp2p_switch_channel_stats(b.sw, 0x30, &cs), 0);
    assert_int_equal(cs.truncated, 1);
    cp2p_stream_reset(old.s);
    cp2p_stream_reset(newer.s);
    /* A channel b declared no reactor for: a's stream is refused, counted, later sends fail
     * with CP2P_ENOTSUP; nothing else changes. */
    uint8_t m[64];
    fill(m, sizeof(m));
    assert_int_equal(cp2p_reactor_peer_try_send(a.peer, CH_ONLY_A, m, sizeof(m)), CP2P_ENOTSUP);
    /* A raw stream for a channel b declared no reactor for is refused at negotiation. */
    harness_raw raw = {.bytes = m, .len = sizeof(m)};
    const char *only_a = CP2P_CHANNEL_PROTOCOL_PREFIX "0x50";
    assert_int_equal(cp2p_conn_open_stream(c, &only_a, 1, harness_raw_open, &raw), 0);
    uint64_t start = uv_now(&loop);
    while (raw.status == 0) {
        uv_run(&loop, UV_RUN_ONCE);
        assert_true(uv_now(&loop) - start < GUARD_MS);
    }
    assert_int_equal(raw.status, CP2P_ENOTSUP);
    cp2p_switch_stats_get(a.sw, &st);
    /* b's node info lists no ONLY_A: a refuses it up front, no stream is tried. */
    assert_int_equal(st.channel_refused, 0);
    /* The peer is still there, and Y (after its bad stream) works again. */
    fill(m, sizeof(m));
    assert_int_equal(cp2p_reactor_peer_try_send(a.peer, CH_Y, m, sizeof(m)), 0);
    wait_got(&b, CH_Y, 1);
    assert_int_equal(a.removed + b.removed, 0);
    node_close(&a);
    node_close(&b);
}

/* A peer flooding past the receive rate costs only itself: reading pauses (every channel of
 * that peer) and the time is counted, while the keepalive, exempt, keeps it alive through a
 * throttle far longer than the pong timeout. The bytes can arrive no faster than the rate
 * allows (a lower bound on the time taken, which a slow machine only lengthens). */
static void receive_rate_pauses_only_that_peer(void **state)
{
    (void)state;
    cp2p_switch_config cfg = fast_keepalive();
    node a, b;
    node_make(&a, &cfg, false);
    cfg.recv_rate = 400000;
    cfg.recv_burst = 40000;
    node_make(&b, &cfg, false);
    connect_nodes(&a, &b);
    static uint8_t msg[10000];
    fill(msg, sizeof(msg));
    uint64_t start = uv_now(&loop);
    for (int i = 0; i < 100; i++) {
        int rc;
        while ((rc = cp2p_reactor_peer_try_send(a.peer, CH_BULK, msg, sizeof(msg))) ==
               CP2P_EFULL) {
            uv_run(&loop, UV_RUN_ONCE);
        }
        assert_int_equal(rc, 0);
    }
    wait_got(&b, CH_BULK, 100);
    uint64_t took = uv_now(&loop) - start;
    /* 1,000,300 bytes; the bucket's burst and one read (a yamux window, 256 KiB) may come
     * before the debt stops reading. */
    assert_true(took >= (1000300 - 40000 - 262144) / 400);
    cp2p_reactor_peer_stats ps;
    cp2p_reactor_peer_stats_get(b.peer, &ps);
    assert_true(ps.recv_throttled_ms > 0);
    assert_true(ps.pongs_received > 0);
    assert_int_equal(a.removed + b.removed, 0);
    node_close(&a);
    node_close(&b);
}

/* A connected peer that runs no switch is never added, never pinged, never timed out: its
 * connection belongs to the other services. */
static void foreign_peer_is_left_alone(void **state)
{
    (void)state;
    cp2p_switch_config cfg = fast_keepalive();
    node a;
    node_make(&a, &cfg, false);
    cp2p_host *plain = harness_host();
    dial_res r;
    assert_non_null(dial_host(a.h, plain, &r));
    run_for(600); /* ping interval + pong timeout, three times over */
    cp2p_switch_stats st;
    cp2p_switch_stats_get(a.sw, &st);
    assert_int_equal(st.foreign_peers, 1);
    assert_int_equal(st.peers_added, 0);
    assert_int_equal(a.added + a.removed, 0);
    assert_non_null(cp2p_host_conn_to(a.h, cp2p_host_peer_id(plain)));
    bool done = false;
    cp2p_host_close(plain, on_host_closed, &done);
    run_until(&done);
    node_close(&a);
}

/* By default the switch leaves its peers' connections the host's caps; conn_send_buffer sets
 * them on both ends; cp2p_conn_set_send_buffers(c, 0, 0) restores the host's. */
static void switch_sets_connection_buffers(void **state)
{
    (void)state;
    node a, b;
    two_nodes(&a, &b, NULL);
    cp2p_conn *ca = cp2p_host_conn_to(a.h, cp2p_host_peer_id(b.h));
    assert_non_null(ca);
    assert_int_equal(ca->cap_inflight_max, CP2P_CONN_MAX_WRITE_INFLIGHT);
    node_close(&a);
    node_close(&b);
    cp2p_switch_config cfg;
    cp2p_switch_config_default(&cfg);
    cfg.conn_send_buffer = 20000;
    two_nodes(&a, &b, &cfg);
    ca = cp2p_host_conn_to(a.h, cp2p_host_peer_id(b.h));
    cp2p_conn *cb = cp2p_host_conn_to(b.h, cp2p_host_peer_id(a.h));
    assert_non_null(ca);
    assert_non_null(cb);
    assert_int_equal(ca->cap_inflight_max, 20000);
    assert_int_equal(cb->cap_out_max, 20000);
    assert_true(ca->max_write_inflight <= 20000);
    assert_int_equal(cp2p_conn_set_send_buffers(ca, 0, 0), 0);
    assert_int_equal(ca->cap_inflight_max, CP2P_CONN_MAX_WRITE_INFLIGHT);
    assert_int_equal(ca->cap_out_max, CP2P_CONN_YAMUX_OUT_BUFFERED);
    node_close(&a);
    node_close(&b);
}

/* A peer whose switch stops (its host stays) leaves our reactors, and the connection stays. */
static void peer_switch_stopped(void **state)
{
    (void)state;
    node a, b;
    two_nodes(&a, &b, NULL);
    bool closed = false;
    assert_int_equal(cp2p_switch_close(b.sw, on_flag, &closed), 0);
    assert_int_equal(b.removed, 0); /* on a later turn */
    assert_int_equal(cp2p_reactor_peer_try_send(b.peer, CH_Y, "x", 1), CP2P_ECLOSED);
    run_until(&closed);
    assert_int_equal(b.removed, 1);
    assert_string_equal(b.reason, "switch stopped");
    wait_until_count(&a.removed, 1);
    assert_string_equal(a.reason, "peer stopped its switch");
    assert_non_null(cp2p_host_conn_to(a.h, cp2p_host_peer_id(b.h)));
    node_close(&a);
    node_close(&b);
}

/* The memory network's NAME of a host listening on /memory/0. */
static void mem_name(cp2p_host *h, char *out, size_t cap)
{
    cp2p_multiaddr *ma;
    cp2p_buf t;
    cp2p_buf_init(&t, 256);
    assert_int_equal(cp2p_host_listen_addr(h, 0, false, &ma), 0);
    assert_int_equal(cp2p_multiaddr_to_string(ma, &t), 0);
    cp2p_multiaddr_free(ma);
    assert_true(t.len > 8 && t.len - 8 < cap);
    memcpy(out, t.ptr + 8, t.len - 8); /* after "/memory/" */
    out[t.len - 8] = 0;
    cp2p_buf_fini(&t);
}

/* Two switches whose link is cut (the memory network holds every byte, as a dead path does):
 * both remove the other with "pong timeout" once a ping goes unanswered for the timeout. */
static void cut_link_removes_both(void **state)
{
    (void)state;
    if (!harness_memory()) {
        printf("SKIP on TCP: a cut needs the memory transport\n");
        skip();
    }
    cp2p_switch_config cfg = fast_keepalive();
    node a, b;
    two_nodes(&a, &b, &cfg);
    char na[64], nb[64];
    mem_name(a.h, na, sizeof(na));
    mem_name(b.h, nb, sizeof(nb));
    assert_int_equal(cp2p_memnet_cut(harness_net, na, nb), 0);
    wait_until_count(&a.removed, 1);
    wait_until_count(&b.removed, 1);
    assert_string_equal(a.reason, "pong timeout");
    assert_string_equal(b.reason, "pong timeout");
    assert_int_equal(cp2p_memnet_heal(harness_net, na, nb), 0);
    node_close(&a);
    node_close(&b);
}

/* A close still pending when the host closes: either may tear the switch down first; the
 * close's callback runs once, the peer is removed once, nothing is used after it is freed. */
static void close_pending_at_host_close(void **state)
{
    (void)state;
    node a, b;
    two_nodes(&a, &b, NULL);
    bool closed = false;
    assert_int_equal(cp2p_switch_close(a.sw, on_flag, &closed), 0);
    node_close(&a); /* the host's close in the same turn */
    run_until(&closed);
    assert_int_equal(a.removed, 1);
    wait_until_count(&b.removed, 1);
    node_close(&b);
}

static void silent_read(cp2p_stream *s, ptrdiff_t n, const uint8_t *data, void *ud)
{
    (void)data;
    (void)ud;
    if (n < 0) {
        cp2p_stream_reset(s);
    }
}

/* Negotiates the keepalive, reads the pings, never answers. */
static void silent_handler(cp2p_stream *s, void *ud)
{
    (void)ud;
    assert_int_equal(cp2p_stream_read_start(s, silent_read, NULL), 0);
}

static void silent_peer_is_removed(void **state)
{
    (void)state;
    cp2p_switch_config cfg;
    cp2p_switch_config_default(&cfg);
    cfg.ping_interval_ms = 100;
    cfg.pong_timeout_ms = 300;
    node a;
    node_make(&a, &cfg, false);
    cp2p_host *silent = harness_host();
    assert_int_equal(cp2p_host_set_handler(silent, CP2P_REACTOR_KEEPALIVE_PROTOCOL,
                                           silent_handler, NULL),
                     0);
    dial_res r;
    assert_non_null(dial_host(a.h, silent, &r));
    /* It sends a node info like a's (a's own, under its own id), so a adds it. */
    cp2p_node_info ni = *cp2p_switch_node_info(a.sw);
    char id[CP2P_PEER_ID_STR_MAX];
    snprintf(ni.node_id, sizeof(ni.node_id), "%s", cp2p_peer_id_str(cp2p_host_peer_id(silent), id));
    uint8_t wire[CP2P__NODEINFO_WIRE_MAX];
    ptrdiff_t wn = cp2p__nodeinfo_encode(&ni, wire, sizeof(wire));
    assert_true(wn > 0);
    harness_raw raw = {.bytes = wire, .len = (size_t)wn};
    const char *nip = CP2P_NODEINFO_PROTOCOL;
    cp2p_conn *sc;
    uint64_t t0 = uv_now(&loop);
    while ((sc = cp2p_host_conn_to(silent, cp2p_host_peer_id(a.h))) == NULL) {
        uv_run(&loop, UV_RUN_ONCE); /* its side of the connection comes up */
        assert_true(uv_now(&loop) - t0 < GUARD_MS);
    }
    assert_int_equal(cp2p_conn_open_stream(sc, &nip, 1, harness_raw_open, &raw), 0);
    wait_until_count(&a.added, 1);
    uint64_t added_at = uv_now(&loop);
    wait_until_count(&a.removed, 1);
    assert_string_equal(a.reason, "pong timeout");
    /* Not before a ping and its timeout could pass (a lower bound only). */
    assert_true(uv_now(&loop) - added_at >= 300);
    cp2p_switch_stats st;
    cp2p_switch_stats_get(a.sw, &st);
    assert_int_equal(st.pong_timeouts, 1);
    assert_int_equal(st.peers, 0);
    bool done = false;
    cp2p_host_close(silent, on_host_closed, &done);
    run_until(&done);
    node_close(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(registration_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(interleaved_sizes_arrive_whole_and_in_order, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(switch_sets_connection_buffers, setup, teardown),
        cmocka_unit_test_setup_teardown(blocked_receive_stalls_only_its_channel, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(capacity_and_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_input_costs_one_stream, setup, teardown),
        cmocka_unit_test_setup_teardown(receive_rate_pauses_only_that_peer, setup, teardown),
        cmocka_unit_test_setup_teardown(silent_peer_is_removed, setup, teardown),
        cmocka_unit_test_setup_teardown(foreign_peer_is_left_alone, setup, teardown),
        cmocka_unit_test_setup_teardown(peer_switch_stopped, setup, teardown),
        cmocka_unit_test_setup_teardown(cut_link_removes_both, setup, teardown),
        cmocka_unit_test_setup_teardown(close_pending_at_host_close, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
