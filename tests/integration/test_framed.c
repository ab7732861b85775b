/* Framed links (cp2p/framed.h) between two hosts over loopback: frames both ways in order and
 * byte-exact, the queue's two full policies and `writable`, bad inbound frames (oversized,
 * malformed, rejected) resetting only their stream, reopening after the peer resets our
 * stream, `down` when the connection closes, and the host closing the helper. Only the public
 * surface is used. */
#include <string.h>

#include <cp2p/framed.h>

#include "integration/harness.h"

#define PROTO "/test/framed/1.0.0"

typedef struct {
    cp2p_framed *f;
    int up, down, down_err, writable;
    uint32_t next_seq;    /* sequence number expected next */
    uint32_t got, bad_order;
    uint32_t seen[64];    /* sequence numbers received, in order (first 64) */
    size_t bytes;
    bool reject_next;     /* `frame` returns an error once */
    cp2p_peer_id peer;
} side;

static void on_up(cp2p_framed *f, const cp2p_peer_id *peer, const char *protocol, void *ud)
{
    side *s = ud;
    (void)f;
    assert_string_equal(protocol, PROTO);
    s->peer = *peer;
    s->up++;
}

static void on_down(cp2p_framed *f, const cp2p_peer_id *peer, int err, void *ud)
{
    side *s = ud;
    (void)f;
    (void)peer;
    s->down++;
    s->down_err = err;
}

/* Frames carry a 4-byte big-endian sequence number, then (len - 4) bytes of (seq + i) & 0xff. */
static int on_frame(cp2p_framed *f, const cp2p_peer_id *peer, const char *protocol,
                    const uint8_t *data, size_t len, void *ud)
{
    side *s = ud;
    (void)f;
    (void)peer;
    assert_string_equal(protocol, PROTO);
    if (s->reject_next) {
        s->reject_next = false;
        return CP2P_EPROTO;
    }
    assert_true(len >= 4);
    uint32_t seq = (uint32_t)data[0] << 24 | (uint32_t)data[1] << 16 | (uint32_t)data[2] << 8 |
                   data[3];
    for (size_t i = 4; i < len; i++) {
        assert_int_equal(data[i], (uint8_t)(seq + i));
    }
    if (seq < s->next_seq) {
        s->bad_order++;
    }
    s->next_seq = seq + 1;
    if (s->got < 64) {
        s->seen[s->got] = seq;
    }
    s->got++;
    s->bytes += len;
    return 0;
}

static void on_writable(cp2p_framed *f, const cp2p_peer_id *peer, void *ud)
{
    side *s = ud;
    (void)f;
    (void)peer;
    s->writable++;
}

static int send_seq(side *s, uint32_t seq, size_t len)
{
    static uint8_t buf[200 * 1024];
    assert_true(len >= 4 && len <= sizeof(buf));
    buf[0] = (uint8_t)(seq >> 24);
    buf[1] = (uint8_t)(seq >> 16);
    buf[2] = (uint8_t)(seq >> 8);
    buf[3] = (uint8_t)seq;
    for (size_t i = 4; i < len; i++) {
        buf[i] = (uint8_t)(seq + i);
    }
    return cp2p_framed_send(s->f, &s->peer, buf, len);
}

static void wait_got(const side *s, uint32_t want)
{
    uint64_t start = uv_now(&loop);
    while (s->got < want) {
        uv_run(&loop, UV_RUN_ONCE);
        uv_update_time(&loop);
        if (uv_now(&loop) - start > GUARD_MS) {
            fail_msg("%u frames of %u within the guard time", s->got, want);
        }
    }
}

static void on_host_closed(cp2p_host *h, void *ud)
{
    (void)h;
    *(bool *)ud = true;
}

static void close_host(cp2p_host *h)
{
    bool done = false;
    cp2p_host_close(h, on_host_closed, &done);
    run_until(&done);
}

static void attach(cp2p_host *h, side *s, const cp2p_framed_config *base)
{
    static const char *const protos[] = {PROTO};
    cp2p_framed_config cfg;
    if (base != NULL) {
        cfg = *base;
    } else {
        cp2p_framed_config_default(&cfg);
    }
    cfg.name = "test";
    cfg.protocols = protos;
    cfg.n_protocols = 1;
    cfg.max_frame = 128 * 1024;
    cfg.up = on_up;
    cfg.down = on_down;
    cfg.frame = on_frame;
    cfg.writable = on_writable;
    assert_int_equal(cp2p_framed_new(h, &cfg, s, &s->f), 0);
}

/* Two hosts with the helper, connected, each side's outbound stream up. */
static void pair(cp2p_host **a, cp2p_host **b, side *sa, side *sb, const cp2p_framed_config *ca,
                 const cp2p_framed_config *cb)
{
    dial_res r;
    *a = harness_host();
    *b = harness_host();
    attach(*a, sa, ca);
    attach(*b, sb, cb);
    assert_non_null(dial_host(*a, *b, &r));
    assert_int_equal(r.status, 0);
    wait_until_count(&sa->up, 1);
    wait_until_count(&sb->up, 1);
    assert_true(cp2p_framed_peer_ready(sa->f, &sa->peer));
    assert_string_equal(cp2p_framed_peer_protocol(sa->f, &sa->peer), PROTO);
}

static void frames_both_ways(void **state)
{
    (void)state;
    cp2p_host *a, *b;
    side sa = {0}, sb = {0};
    pair(&a, &b, &sa, &sb, NULL, NULL);
    /* Sizes across the prefix's 1/2/3-byte boundaries and over a yamux window's quarter. */
    static const size_t sizes[] = {4, 5, 127, 128, 16383, 16384, 100000, 128 * 1024};
    size_t want_bytes = 0;
    /* 400 frames of 33 KB on average pass the 4 MiB queue: refused frames wait for
     * `writable` and are sent again, so every frame arrives, in order. */
    int refused = 0;
    for (uint32_t i = 0; i < 400; i++) {
        size_t len = sizes[i % 8];
        int rc;
        while ((rc = send_seq(&sa, i, len)) == CP2P_EFULL) {
            refused++;
            wait_until_count(&sa.writable, refused);
        }
        assert_int_equal(rc, 0);
        want_bytes += len;
        assert_int_equal(send_seq(&sb, i, 4 + i % 50), 0);
    }
    wait_got(&sb, 400);
    wait_got(&sa, 400);
    assert_int_equal(sb.bad_order, 0);
    assert_int_equal(sa.bad_order, 0);
    assert_int_equal(sb.bytes, want_bytes);
    /* Too large: refused at once, counted, nothing sent. */
    static uint8_t big[128 * 1024 + 1];
    assert_int_equal(cp2p_framed_send(sa.f, &sa.peer, big, sizeof(big)), CP2P_ELIMIT);
    cp2p_peer_id nobody = {.len = 3, .bytes = {1, 2, 3}};
    assert_int_equal(cp2p_framed_send(sa.f, &nobody, "x", 1), CP2P_ENOENT);
    cp2p_framed_stats st;
    cp2p_framed_stats_get(sa.f, &st);
    assert_int_equal(st.frames_sent, 400);
    assert_int_equal(st.send_refused, (uint64_t)refused);
    assert_true(refused > 0);
    assert_int_equal(st.send_too_large, 1);
    assert_int_equal(st.streams_opened, 1);
    assert_int_equal(st.frames_received, 400);
    assert_int_equal(st.peers, 1);
    assert_int_equal(st.queued_frames, 0);
    /* The host closes the helpers (their services) with everything else. */
    close_host(a);
    close_host(b);
}

/* With a backlog of one byte, every frame after the first waits in the queue until the
 * stream takes the one before: a burst within one loop turn meets the queue's bound. */
static void full_policies(void **state)
{
    (void)state;
    cp2p_host *a, *b;
    side sa = {0}, sb = {0};
    cp2p_framed_config cfg;
    cp2p_framed_config_default(&cfg);
    cfg.stream_backlog = 1;
    cfg.max_queue_frames = 8;
    pair(&a, &b, &sa, &sb, &cfg, NULL);
    /* Refuse: the first frame goes to the stream, 8 wait, the other 11 are refused. */
    int refused = 0;
    for (uint32_t i = 0; i < 20; i++) {
        int rc = send_seq(&sa, i, 64);
        if (rc == CP2P_EFULL) {
            refused++;
        } else {
            assert_int_equal(rc, 0);
        }
    }
    assert_int_equal(refused, 11);
    assert_int_equal(cp2p_framed_queued(sa.f, &sa.peer), 8);
    wait_got(&sb, 9);
    for (uint32_t i = 0; i < 9; i++) {
        assert_int_equal(sb.seen[i], i);
    }
    wait_until_count(&sa.writable, 1); /* drained to half after refusing */
    cp2p_framed_stats st;
    cp2p_framed_stats_get(sa.f, &st);
    assert_int_equal(st.send_refused, 11);
    assert_int_equal(st.send_dropped, 0);
    close_host(a);
    close_host(b);

    /* Drop oldest: the first frame, then the newest 8 of the 19 that waited. */
    side sc = {0}, sd = {0};
    cfg.full = CP2P_FRAMED_FULL_DROP_OLDEST;
    pair(&a, &b, &sc, &sd, &cfg, NULL);
    for (uint32_t i = 0; i < 20; i++) {
        assert_int_equal(send_seq(&sc, i, 64), 0);
    }
    wait_got(&sd, 9);
    assert_int_equal(sd.seen[0], 0);
    for (uint32_t i = 1; i < 9; i++) {
        assert_int_equal(sd.seen[i], 11 + i);
    }
    cp2p_framed_stats_get(sc.f, &st);
    assert_int_equal(st.send_dropped, 11);
    assert_int_equal(st.send_refused, 0);
    close_host(a);
    close_host(b);
}

static void bad_frames_and_reopen(void **state)
{
    (void)state;
    cp2p_host *a, *b;
    side sa = {0}, sb = {0};
    pair(&a, &b, &sa, &sb, NULL, NULL);
    cp2p_conn *c = cp2p_host_conn_to(a, &sa.peer);
    assert_non_null(c);
    /* Over max_frame (128 KiB): 0x80 0x80 0x10 = 262144. */
    static const uint8_t oversized[] = {0x80, 0x80, 0x10};
    harness_raw_bad(c, PROTO, oversized, sizeof(oversized));
    /* A non-minimal uvarint. */
    static const uint8_t malformed[] = {0x81, 0x00, 0x41};
    harness_raw_bad(c, PROTO, malformed, sizeof(malformed));
    cp2p_framed_stats st;
    cp2p_framed_stats_get(sb.f, &st);
    assert_int_equal(st.frames_oversized, 1);
    assert_int_equal(st.frames_malformed, 1);
    /* The helper's own streams were not touched. */
    assert_int_equal(send_seq(&sa, 0, 10), 0);
    wait_got(&sb, 1);
    /* b rejects the next frame: it resets a's outbound stream; a reopens after its backoff and
     * frames flow again, in order, on the new stream. */
    sb.reject_next = true;
    assert_int_equal(send_seq(&sa, 1, 10), 0);
    wait_until_count(&sa.up, 2);
    assert_int_equal(send_seq(&sa, 2, 10), 0);
    wait_got(&sb, 2);
    assert_int_equal(sb.seen[1], 2);
    cp2p_framed_stats_get(sb.f, &st);
    assert_int_equal(st.frames_rejected, 1);
    cp2p_framed_stats_get(sa.f, &st);
    assert_int_equal(st.streams_opened, 2);
    assert_true(st.reopens >= 1);
    /* The connection closes: `down` on both sides, sends refused. */
    cp2p_conn_close(c);
    wait_until_count(&sa.down, 1);
    wait_until_count(&sb.down, 1);
    assert_int_equal(send_seq(&sa, 3, 10), CP2P_ENOENT);
    assert_false(cp2p_framed_peer_ready(sa.f, &sa.peer));
    /* Closed by the application before its host. */
    cp2p_framed_close(sa.f);
    close_host(a);
    close_host(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(frames_both_ways, setup, teardown),
        cmocka_unit_test_setup_teardown(full_policies, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_frames_and_reopen, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
