/* The batching emitter on real hosts (src/emitter/emitter_uv.c) over loopback TCP: 8 hosts in two
 * organisations, host 0 broadcasting 100 messages of kind 0 ("own organisation only", fan-out 2)
 * and kind 1 ("anyone", fan-out 3), 2 iterations each. Checks: kind 0 reaches only the
 * organisation; each message reaches exactly min(fan-out x iterations, eligible) distinct peers
 * with the expected copies; frames are one per peer per emission (far fewer than message
 * copies); a partial batch leaves on the latency timer; malformed frames from a raw peer reset
 * only that stream and are counted, while a valid frame from it and a 1 MiB message (split
 * reads) still arrive. */
#include <stdlib.h>
#include <string.h>

#include <cp2p/emitter.h>
#include <cp2p/metrics.h>

#include "integration/harness.h"

#define NH 8          /* emitter hosts: 0..3 organisation A, 4..7 organisation B */
#define RAW NH        /* host 8: a raw peer without an emitter */
#define NMSG 100
#define BIG_IDX 1000
#define BIG_LEN (1024 * 1024)
#define LAT_MS 50

typedef struct {
    cp2p_host *h;
    cp2p_host_emitter *em;
    int idx;
    uint32_t copies[NMSG + 8];   /* per message index: copies received */
    size_t others;               /* messages that are not ours (the raw peer's) */
    bool big_ok;
} node;

static node nodes[NH + 1];
static cp2p_peer_id org_a[4];

static void start_host(node *n, int idx)
{
    memset(n, 0, sizeof(*n));
    n->idx = idx;
    n->h = harness_host();
}

static void on_msg(cp2p_host_emitter *he, const cp2p_peer_id *from, const uint8_t *msg,
                   size_t len, void *ud)
{
    node *n = ud;
    uint32_t idx;
    (void)he;
    if (!cp2p_peer_id_equal(from, cp2p_host_peer_id(nodes[0].h)) || len < 5) {
        n->others++;
        return;
    }
    memcpy(&idx, msg, 4);
    if (idx == BIG_IDX) {
        bool ok = len == BIG_LEN;
        for (size_t i = 5; ok && i < len; i++) {
            ok = msg[i] == (uint8_t)(i * 7);
        }
        n->big_ok = ok;
        return;
    }
    assert_true(idx < NMSG + 8);
    n->copies[idx]++;
}

static bool in_org_a(const cp2p_peer_id *p, void *ud)
{
    (void)ud;
    for (int i = 0; i < 4; i++) {
        if (cp2p_peer_id_equal(p, &org_a[i])) {
            return true;
        }
    }
    return false;
}

static bool only_host1(const cp2p_peer_id *p, void *ud)
{
    (void)ud;
    return cp2p_peer_id_equal(p, cp2p_host_peer_id(nodes[1].h));
}

static cp2p_host_emitter_stats stats_of(int i)
{
    cp2p_host_emitter_stats st;
    cp2p_host_emitter_stats_get(nodes[i].em, &st);
    return st;
}

static uint64_t received_total(void)
{
    uint64_t t = 0;
    for (int i = 1; i < NH; i++) {
        t += stats_of(i).msgs_received;
    }
    return t;
}

/* Run until the sender has nothing queued and every copy it sent was received. */
static void wait_drained(void)
{
    uint64_t start = uv_now(&loop);
    while (cp2p_host_emitter_pending(nodes[0].em) > 0 ||
           stats_of(0).msgs_sent != received_total()) {
        uv_run(&loop, UV_RUN_ONCE);
        uv_update_time(&loop);
        if (uv_now(&loop) - start > GUARD_MS) {
            fail_msg("deliveries did not complete");
        }
    }
}

typedef struct {
    bool done;
    int status;
    cp2p_stream *s;
    bool ended;
    ptrdiff_t end;
} raw_res;

static void raw_read(cp2p_stream *s, ptrdiff_t n, const uint8_t *data, void *ud)
{
    raw_res *r = ud;
    (void)data;
    if (n < 0) {
        r->ended = true;
        r->end = n;
        (void)s;
    }
}

static void raw_open(cp2p_stream *s, int status, void *ud)
{
    raw_res *r = ud;
    r->done = true;
    r->status = status;
    r->s = s;
}

/* From the raw host, open an emitter stream to host 1 and write `len` bytes. */
static void raw_send(cp2p_conn *c, raw_res *r, const uint8_t *bytes, size_t len)
{
    static const char *const protos[] = {CP2P_HOST_EMITTER_PROTOCOL};
    *r = (raw_res){0};
    assert_int_equal(cp2p_conn_open_stream(c, protos, 1, raw_open, r), 0);
    run_until(&r->done);
    assert_int_equal(r->status, 0);
    assert_int_equal(cp2p_stream_read_start(r->s, raw_read, r), 0);
    assert_int_equal(cp2p_stream_write(r->s, bytes, len, NULL, NULL), 0);
}

static void orgs(void **state)
{
    (void)state;
    dial_res dr;
    for (int i = 0; i <= NH; i++) {
        start_host(&nodes[i], i);
    }
    for (int i = 0; i < 4; i++) {
        org_a[i] = *cp2p_host_peer_id(nodes[i].h);
    }
    const cp2p_emitter_kind kinds[3] = {
        {.filter = in_org_a, .fanout = 2},    /* 0: own organisation only */
        {.filter = NULL, .fanout = 3},        /* 1: anyone */
        {.filter = only_host1, .fanout = 1},  /* 2: direct to host 1 (last phase) */
    };
    for (int i = 0; i < NH; i++) {
        cp2p_host_emitter_config ec;
        cp2p_host_emitter_config_default(&ec);
        ec.core.iterations = 2;
        ec.core.burst_size = 10;
        ec.core.max_latency_ms = LAT_MS;
        ec.core.kinds = kinds;
        ec.core.n_kinds = 3;
        ec.on_msg = on_msg;
        ec.on_msg_ud = &nodes[i];
        assert_int_equal(cp2p_host_emitter_new(nodes[i].h, &ec, &nodes[i].em), 0);
    }
    for (int i = 1; i < NH; i++) {
        assert_non_null(dial_host(nodes[0].h, nodes[i].h, &dr));
    }
    cp2p_conn *rawc = dial_host(nodes[RAW].h, nodes[1].h, &dr);
    assert_non_null(rawc);
    /* Identify tells host 0 who speaks the protocol: 7 candidates, the raw host is not one. */
    uint64_t start = uv_now(&loop);
    while (cp2p_host_emitter_peers(nodes[0].em, NULL, 0) < NH - 1) {
        uv_run(&loop, UV_RUN_ONCE);
        uv_update_time(&loop);
        assert_true(uv_now(&loop) - start < GUARD_MS);
    }
    run_for(100);
    assert_int_equal(cp2p_host_emitter_peers(nodes[0].em, NULL, 0), NH - 1);
    assert_int_equal(cp2p_host_emitter_peers(nodes[1].em, NULL, 0), 1); /* host 0 only */

    /* ---- 100 messages, kinds alternating, 10 per loop turn ---- */
    uint8_t m[64];
    memset(m, 0xee, sizeof(m));
    for (uint32_t i = 0; i < NMSG; i++) {
        memcpy(m, &i, 4);
        m[4] = (uint8_t)(i % 2);
        assert_int_equal(cp2p_host_emitter_add(nodes[0].em, m, sizeof(m), i % 2), 0);
        if (i % 10 == 9) {
            run_for(2);
        }
    }
    wait_drained();
    cp2p_host_emitter_stats s0 = stats_of(0);
    size_t frames_in = 0;
    for (int i = 1; i < NH; i++) {
        frames_in += stats_of(i).frames_received;
    }
    print_message("100 messages: %llu emissions, %llu frames, %llu message copies\n",
                  (unsigned long long)s0.core.emitted_batches,
                  (unsigned long long)s0.frames_sent, (unsigned long long)s0.msgs_sent);
    /* Kind 0: 3 eligible peers, fan-out 2 x 2 iterations: all 3, one twice (4 copies).
     * Kind 1: 7 eligible, 3 x 2: 6 distinct peers, once each. */
    for (uint32_t i = 0; i < NMSG; i++) {
        unsigned distinct = 0, copies = 0;
        for (int h = 1; h < NH; h++) {
            distinct += nodes[h].copies[i] > 0;
            copies += nodes[h].copies[i];
            if (i % 2 == 0 && h >= 4) {
                assert_int_equal(nodes[h].copies[i], 0); /* never outside organisation A */
            }
            assert_true(nodes[h].copies[i] <= (i % 2 == 0 ? 2u : 1u));
        }
        assert_int_equal(distinct, i % 2 == 0 ? 3 : 6);
        assert_int_equal(copies, i % 2 == 0 ? 4 : 6);
    }
    assert_int_equal(s0.msgs_sent, 50 * 4 + 50 * 6);
    assert_int_equal(s0.frames_dropped, 0);
    assert_int_equal(s0.core.unrouted, 0);
    /* Coalescing: one frame per peer per emission, far fewer frames than message copies. */
    assert_int_equal(s0.frames_sent, s0.core.sends);
    assert_true(s0.frames_sent <= s0.core.emitted_batches * (NH - 1));
    assert_true(s0.frames_sent * 3 < s0.msgs_sent);           /* ~137 frames for 500 copies */
    assert_true(s0.frames_sent * 4 < (uint64_t)NMSG * (NH - 1)); /* messages x peers: 700 */
    assert_int_equal(frames_in, s0.frames_sent);
    assert_int_equal(s0.streams_opened, NH - 1); /* one long-lived stream per peer */

    /* ---- latency: a partial batch (3 < burst 10) leaves on the timer ---- */
    uint64_t batches = s0.core.emitted_batches, before = received_total();
    uint64_t t0 = uv_now(&loop);
    for (uint32_t i = NMSG; i < NMSG + 3; i++) {
        memcpy(m, &i, 4);
        assert_int_equal(cp2p_host_emitter_add(nodes[0].em, m, sizeof(m), 1), 0);
    }
    run_for(LAT_MS / 5);
    assert_int_equal(stats_of(0).core.emitted_batches, batches); /* not yet: no burst */
    assert_int_equal(received_total(), before);
    while (received_total() < before + 9) {
        uv_run(&loop, UV_RUN_ONCE);
        uv_update_time(&loop);
        assert_true(uv_now(&loop) - t0 < GUARD_MS);
    }
    assert_true(uv_now(&loop) - t0 >= LAT_MS - 2); /* libuv timers may round 1 ms down */
    wait_drained();
    for (uint32_t i = NMSG; i < NMSG + 3; i++) {
        unsigned distinct = 0;
        for (int h = 1; h < NH; h++) {
            distinct += nodes[h].copies[i] > 0;
        }
        assert_int_equal(distinct, 6);
    }

    /* ---- a raw peer sends malformed frames to host 1 ---- */
    raw_res r;
    /* count 1, then a length of 2^40: refused from the prefix alone, before any body. */
    const uint8_t huge[] = {0x01, 0x80, 0x80, 0x80, 0x80, 0x80, 0x20, 'x', 'y'};
    raw_send(rawc, &r, huge, sizeof(huge));
    run_until(&r.ended);
    assert_int_equal(r.end, CP2P_ERESET);
    cp2p_stream_reset(r.s);
    assert_int_equal(stats_of(1).malformed, 1);
    /* An empty frame, and a non-minimal uvarint. */
    const uint8_t empty[] = {0x00};
    raw_send(rawc, &r, empty, sizeof(empty));
    run_until(&r.ended);
    cp2p_stream_reset(r.s);
    const uint8_t nonmin[] = {0x81, 0x00};
    raw_send(rawc, &r, nonmin, sizeof(nonmin));
    run_until(&r.ended);
    cp2p_stream_reset(r.s);
    assert_int_equal(stats_of(1).malformed, 3);
    /* A valid frame from the raw peer arrives: two messages "abc" and "". */
    const uint8_t good[] = {0x02, 0x03, 'a', 'b', 'c', 0x00};
    raw_send(rawc, &r, good, sizeof(good));
    start = uv_now(&loop);
    while (nodes[1].others < 2) {
        uv_run(&loop, UV_RUN_ONCE);
        uv_update_time(&loop);
        assert_true(uv_now(&loop) - start < GUARD_MS);
    }
    cp2p_stream_close(r.s);
    assert_int_equal(stats_of(1).malformed, 3);
    for (int i = 0; i < NH; i++) {
        if (i != 1) {
            assert_int_equal(stats_of(i).malformed, 0);
        }
    }
    /* Host 0's stream to host 1 was untouched: a message and a 1 MiB one (split reads) arrive
     * on it, no stream reopened. */
    uint32_t idx = NMSG + 3;
    memcpy(m, &idx, 4);
    uint8_t *big = malloc(BIG_LEN);
    for (size_t i = 0; i < BIG_LEN; i++) {
        big[i] = (uint8_t)(i * 7);
    }
    idx = BIG_IDX;
    memcpy(big, &idx, 4);
    assert_int_equal(cp2p_host_emitter_add(nodes[0].em, m, sizeof(m), 2), 0);
    assert_int_equal(cp2p_host_emitter_add(nodes[0].em, big, BIG_LEN, 2), 0);
    free(big);
    start = uv_now(&loop);
    while (!nodes[1].big_ok || nodes[1].copies[NMSG + 3] < 2) {
        uv_run(&loop, UV_RUN_ONCE);
        uv_update_time(&loop);
        assert_true(uv_now(&loop) - start < GUARD_MS);
    }
    s0 = stats_of(0);
    assert_int_equal(s0.streams_opened, NH - 1);
    assert_int_equal(s0.open_failed, 0);
    assert_int_equal(stats_of(1).truncated, 0);
    /* The counters as metrics: the registry holds the emitter's values after each update. */
    cp2p_metrics *reg;
    cp2p_host_emitter_metrics *em = NULL;
    assert_int_equal(cp2p_metrics_new(&reg), 0);
    assert_int_equal(cp2p_host_emitter_metrics_update(&em, nodes[0].em, reg), 0);
    assert_int_equal(cp2p_host_emitter_metrics_update(&em, nodes[0].em, reg), 0);
    cp2p_buf text;
    cp2p_buf_init(&text, CP2P_METRICS_RENDER_MAX_DEFAULT);
    assert_int_equal(cp2p_metrics_render(reg, &text), 0);
    assert_int_equal(cp2p_buf_append_byte(&text, 0), 0);
    char line[128];
    snprintf(line, sizeof(line), "\ncp2p_emitter_streams_opened_total %d\n", NH - 1);
    assert_non_null(strstr((const char *)text.ptr, line));
    snprintf(line, sizeof(line), "\ncp2p_emitter_frames_sent_total %llu\n",
             (unsigned long long)s0.frames_sent);
    assert_non_null(strstr((const char *)text.ptr, line));
    cp2p_buf_fini(&text);
    cp2p_host_emitter_metrics_free(em);
    cp2p_metrics_free(reg);
    for (int i = 0; i < NH; i++) {
        cp2p_host_emitter_close(nodes[i].em);
    }
    for (int i = 0; i <= NH; i++) {
        cp2p_host_close(nodes[i].h, NULL, NULL);
    }
    for (int i = 0; i < 200 && uv_loop_alive(&loop); i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
    }
}

static void new_emitter(int i)
{
    cp2p_host_emitter_config ec;
    cp2p_host_emitter_config_default(&ec);
    ec.core.fanout = 2;
    ec.core.max_latency_ms = 5;
    ec.on_msg = on_msg;
    ec.on_msg_ud = &nodes[i];
    assert_int_equal(cp2p_host_emitter_new(nodes[i].h, &ec, &nodes[i].em), 0);
}

static void wait_copies(int h, uint32_t idx, uint32_t want)
{
    uint64_t start = uv_now(&loop);
    while (nodes[h].copies[idx] < want) {
        uv_run(&loop, UV_RUN_ONCE);
        uv_update_time(&loop);
        assert_true(uv_now(&loop) - start < GUARD_MS);
    }
}

/* A receiver closes its emitter (its inbound stream is reset) and starts a new one: the
 * sender's stream to it died, and the next frame reopens it. */
static void reopen(void **state)
{
    (void)state;
    dial_res dr;
    for (int i = 0; i < 3; i++) {
        start_host(&nodes[i], i);
        new_emitter(i);
    }
    assert_non_null(dial_host(nodes[0].h, nodes[1].h, &dr));
    assert_non_null(dial_host(nodes[0].h, nodes[2].h, &dr));
    uint64_t start = uv_now(&loop);
    while (cp2p_host_emitter_peers(nodes[0].em, NULL, 0) < 2) {
        uv_run(&loop, UV_RUN_ONCE);
        uv_update_time(&loop);
        assert_true(uv_now(&loop) - start < GUARD_MS);
    }
    uint8_t m[8] = {0};
    assert_int_equal(cp2p_host_emitter_add(nodes[0].em, m, sizeof(m), 0), 0);
    wait_copies(1, 0, 1);
    wait_copies(2, 0, 1);
    assert_int_equal(stats_of(0).streams_opened, 2);
    cp2p_host_emitter_close(nodes[1].em);
    run_for(200);
    new_emitter(1);
    run_for(200);
    start = uv_now(&loop);
    while (cp2p_host_emitter_peers(nodes[0].em, NULL, 0) < 2) {
        uv_run(&loop, UV_RUN_ONCE);
        uv_update_time(&loop);
        assert_true(uv_now(&loop) - start < GUARD_MS);
    }
    m[0] = 1;
    assert_int_equal(cp2p_host_emitter_add(nodes[0].em, m, sizeof(m), 0), 0);
    wait_copies(1, 1, 1);
    wait_copies(2, 1, 1);
    cp2p_host_emitter_stats s0 = stats_of(0);
    assert_int_equal(s0.streams_opened, 3); /* host 1's stream reopened, host 2's kept */
    assert_int_equal(s0.frames_dropped, 0);
    assert_int_equal(s0.frames_sent, 4);
    for (int i = 0; i < 3; i++) {
        cp2p_host_emitter_close(nodes[i].em);
        cp2p_host_close(nodes[i].h, NULL, NULL);
    }
    for (int i = 0; i < 200 && uv_loop_alive(&loop); i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
    }
}

/* Bad configurations, and a send-only emitter with no peers (its messages are unrouted). */
static void config_errors(void **state)
{
    (void)state;
    node n;
    start_host(&n, 0);
    cp2p_host_emitter_config ec;
    cp2p_host_emitter *em;
    cp2p_host_emitter_config_default(&ec);
    ec.protocol = "no-slash";
    assert_int_equal(cp2p_host_emitter_new(n.h, &ec, &em), CP2P_EINVAL);
    ec.protocol = NULL;
    ec.core.fanout = 0;
    assert_int_equal(cp2p_host_emitter_new(n.h, &ec, &em), CP2P_EINVAL);
    ec.core.fanout = 3;
    ec.max_peers = 0;
    assert_int_equal(cp2p_host_emitter_new(n.h, &ec, &em), CP2P_EINVAL);
    ec.max_peers = 16;
    assert_int_equal(cp2p_host_emitter_new(n.h, &ec, &em), 0); /* send only: no handler */
    assert_int_equal(cp2p_host_emitter_add(em, "x", 1, 5), CP2P_EINVAL); /* no such kind */
    assert_int_equal(cp2p_host_emitter_add(em, "x", 1, 0), 0);
    assert_int_equal(cp2p_host_emitter_flush(em), 1); /* no peers: unrouted */
    cp2p_host_emitter_stats st;
    cp2p_host_emitter_stats_get(em, &st);
    assert_int_equal(st.core.unrouted, 1);
    assert_int_equal(st.frames_sent, 0);
    assert_int_equal(cp2p_host_emitter_flush(em), 0);
    cp2p_host_emitter_close(em);
    cp2p_host_close(n.h, NULL, NULL);
    for (int i = 0; i < 200 && uv_loop_alive(&loop); i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(orgs, setup, teardown),
        cmocka_unit_test_setup_teardown(reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(config_errors, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
