/* Bad input against a real host over loopback TCP: garbage before and during the Noise
 * handshake, bad Noise frames, bad yamux frames after a genuine handshake, and a slow-loris
 * crowd. Each case must cost only the offending connection: a well-behaved peer connected
 * alongside keeps working, the host counts the event, and nothing leaks (ASan). */
#include <stdlib.h>
#include <string.h>

#include "integration/harness.h"

#include "crypto/noise/noise.h"
#include "muxer/yamux.h"
#include "negotiate/mss.h"
#include "swarm/swarm.h"
#include "transport/tcp_addr.h"
#include "util/bytes.h"

static cp2p_host *host_new(uint64_t upgrade_timeout_ms, uint32_t max_pending)
{
    cp2p_host_config cfg;
    cp2p_privkey *key;
    cp2p_host *h;
    cp2p_multiaddr *ma;
    assert_int_equal(cp2p_privkey_generate(CP2P_KEY_ED25519, &key), 0);
    cp2p_host_config_default(&cfg);
    cfg.identity = key;
    cfg.upgrade_timeout_ms = upgrade_timeout_ms;
    cfg.max_pending_inbound = max_pending;
    assert_int_equal(cp2p_host_new(&loop, &cfg, &h), 0);
    cp2p_privkey_free(key);
    assert_int_equal(cp2p_multiaddr_parse("/ip4/127.0.0.1/tcp/0", 20, &ma), 0);
    assert_int_equal(cp2p_host_listen(h, ma), 0);
    cp2p_multiaddr_free(ma);
    return h;
}

static int closed_hosts;
static void on_host_closed(cp2p_host *h, void *ud)
{
    (void)h;
    (void)ud;
    closed_hosts++;
}

static void hosts_close(cp2p_host **hs, int n)
{
    closed_hosts = 0;
    for (int i = 0; i < n; i++) {
        cp2p_host_close(hs[i], on_host_closed, NULL);
    }
    while (closed_hosts < n) {
        uv_run(&loop, UV_RUN_ONCE);
    }
}

/* ---- an evil peer: raw TCP, optionally a genuine Noise handshake first ---- */

typedef struct {
    uv_tcp_t tcp;
    uv_connect_t creq;
    bool connected, closed_by_peer, handle_closed;
    /* what to send: raw bytes at once, or after a genuine handshake (encrypted) */
    const uint8_t *raw;
    size_t raw_len;
    bool handshake;
    const uint8_t *after;
    size_t after_len;
    bool sent_after;
    cp2p__mss mss;
    cp2p__noise *noise;
    cp2p_privkey *key;
    uint8_t in[1 << 17];
    size_t in_len;
} evil;

static void on_evil_written(uv_write_t *w, int status)
{
    (void)status; /* the host may hang up before reading it all */
    free(w);
}

static void evil_write(evil *e, const uint8_t *p, size_t n)
{
    uv_write_t *w = malloc(sizeof(*w) + n);
    memcpy(w + 1, p, n);
    uv_buf_t b = uv_buf_init((char *)(w + 1), (unsigned)n);
    assert_int_equal(uv_write(w, (uv_stream_t *)&e->tcp, &b, 1, on_evil_written), 0);
}

static void evil_flush(evil *e)
{
    cp2p_slice s = cp2p__mss_out(&e->mss);
    if (s.len > 0) {
        evil_write(e, s.ptr, s.len);
        cp2p__mss_out_done(&e->mss, s.len);
    }
    while (e->noise != NULL && cp2p__noise_out(e->noise, &s) > 0) {
        evil_write(e, s.ptr, s.len);
        cp2p__noise_out_done(e->noise, s.len);
    }
}

static void evil_alloc(uv_handle_t *h, size_t sz, uv_buf_t *b)
{
    evil *e = h->data;
    (void)sz;
    *b = uv_buf_init((char *)e->in + e->in_len, (unsigned)(sizeof(e->in) - e->in_len));
}

static void evil_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
    evil *e = st->data;
    const char *why = NULL;
    (void)b;
    if (n < 0) {
        e->closed_by_peer = true;
        uv_read_stop(st);
        return;
    }
    e->in_len += (size_t)n;
    if (!e->handshake) {
        e->in_len = 0; /* whatever the host says, we ignore */
        return;
    }
    for (;;) {
        ptrdiff_t used;
        if (cp2p__mss_state_get(&e->mss) != MSS_DONE) {
            used = cp2p__mss_recv(&e->mss, e->in, e->in_len, &why);
            assert_true(used >= 0);
            if (cp2p__mss_state_get(&e->mss) == MSS_DONE && e->noise == NULL) {
                cp2p__noise_config nc;
                static const char *const mux[] = {"/yamux/1.0.0"};
                cp2p__noise_config_default(&nc);
                nc.muxers = mux;
                nc.n_muxers = 1;
                assert_int_equal(cp2p__noise_new(&nc, true, e->key, NULL, 0, &e->noise), 0);
            }
        } else {
            used = cp2p__noise_recv(e->noise, e->in, e->in_len, 0, &why);
            if (used < 0) {
                return; /* the host's GoAway etc. after our attack: irrelevant */
            }
        }
        memmove(e->in, e->in + used, e->in_len - (size_t)used);
        e->in_len -= (size_t)used;
        if (used == 0) {
            break;
        }
    }
    if (e->noise != NULL && cp2p__noise_handshake_done(e->noise) && !e->sent_after) {
        e->sent_after = true;
        for (size_t off = 0; off < e->after_len;) {
            ptrdiff_t w = cp2p__noise_write(e->noise, e->after + off, e->after_len - off);
            assert_true(w >= 0);
            off += (size_t)w;
            evil_flush(e);
        }
    }
    evil_flush(e);
}

static void evil_connected(uv_connect_t *req, int status)
{
    evil *e = req->data;
    assert_int_equal(status, 0);
    e->connected = true;
    assert_int_equal(uv_read_start((uv_stream_t *)&e->tcp, evil_alloc, evil_read), 0);
    if (e->raw_len > 0) {
        evil_write(e, e->raw, e->raw_len);
    }
    if (e->handshake) {
        static const char *const sec[] = {"/noise"};
        assert_int_equal(cp2p__mss_init_dialer(&e->mss, sec, 1, false), 0);
        evil_flush(e);
    }
}

static void evil_start(evil *e, cp2p_host *target)
{
    cp2p_multiaddr *ma;
    cp2p__tcp_target t;
    const char *why;
    struct sockaddr_in sa;
    assert_int_equal(cp2p_host_listen_addr(target, 0, false, &ma), 0);
    assert_int_equal(cp2p__tcp_target_parse(ma, &t, &why), 0);
    cp2p_multiaddr_free(ma);
    assert_int_equal(uv_ip4_addr(t.host, t.port, &sa), 0);
    assert_int_equal(uv_tcp_init(&loop, &e->tcp), 0);
    e->tcp.data = e;
    e->creq.data = e;
    if (e->handshake) {
        assert_int_equal(cp2p_privkey_generate(CP2P_KEY_ED25519, &e->key), 0);
    }
    assert_int_equal(uv_tcp_connect(&e->creq, &e->tcp, (struct sockaddr *)&sa, evil_connected), 0);
}

static void evil_closed(uv_handle_t *h)
{
    evil *e = h->data;
    e->handle_closed = true;
}

static void evil_end(evil *e)
{
    uv_close((uv_handle_t *)&e->tcp, evil_closed);
    run_until(&e->handle_closed);
    cp2p__mss_fini(&e->mss);
    cp2p__noise_free(e->noise);
    cp2p_privkey_free(e->key);
}

/* Run one attack against a host that also has a good peer, and check the aftermath. */
static void attack(evil *e)
{
    cp2p_host *victim = host_new(10000, 64);
    cp2p_host *friend = host_new(10000, 64);
    dial_res dr;
    cp2p_conn *good = dial_host(friend, victim, &dr);
    assert_int_equal(dr.status, 0);
    const cp2p__host_stats *st = cp2p__host_stats_get(victim);
    uint64_t failed_before = st->upgrade_failed + st->protocol_errors + st->conns_closed;
    evil_start(e, victim);
    run_until(&e->closed_by_peer); /* the host hung up on the attacker */
    assert_true(st->upgrade_failed + st->protocol_errors + st->conns_closed > failed_before);
    assert_ping_ok(good);           /* and still serves the good peer */
    evil_end(e);
    cp2p_host *hs[] = {victim, friend};
    hosts_close(hs, 2);
}

static void garbage_before_handshake(void **state)
{
    static const char http[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    evil e = {.raw = (const uint8_t *)http, .raw_len = sizeof(http) - 1};
    (void)state;
    attack(&e);
}

static void garbage_noise_message(void **state)
{
    /* A proper multistream negotiation of /noise, then a 5-byte "msg1" (needs 32 bytes). */
    static const uint8_t bytes[] = "\x13/multistream/1.0.0\n\x07/noise\n\x00\x05hello";
    evil e = {.raw = bytes, .raw_len = sizeof(bytes) - 1};
    (void)state;
    attack(&e);
}

static void oversized_noise_frame(void **state)
{
    static uint8_t bytes[31 + 2 + 65535];
    memcpy(bytes, "\x13/multistream/1.0.0\n\x07/noise\n", 29);
    cp2p_store_be16(bytes + 29, 0xffff); /* over the 8 KiB handshake-message limit */
    evil e = {.raw = bytes, .raw_len = 31 + 65535};
    (void)state;
    attack(&e);
}

static void yamux_unknown_frame_type(void **state)
{
    static const uint8_t frame[12] = {0, 9, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0};
    evil e = {.handshake = true, .after = frame, .after_len = sizeof(frame)};
    (void)state;
    attack(&e);
}

static void yamux_absurd_length(void **state)
{
    /* SYN + data frame on stream 1 claiming 2 GiB. */
    static const uint8_t frame[12] = {0, 0, 0, 1, 0, 0, 0, 1, 0x80, 0, 0, 0};
    evil e = {.handshake = true, .after = frame, .after_len = sizeof(frame)};
    (void)state;
    attack(&e);
}

static void yamux_stream_id_reuse(void **state)
{
    /* Open stream 1 twice (SYN on a window update, twice). */
    static const uint8_t frames[24] = {0, 1, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0,
                                       0, 1, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0};
    evil e = {.handshake = true, .after = frames, .after_len = sizeof(frames)};
    (void)state;
    attack(&e);
}

static void yamux_window_overflow(void **state)
{
    /* SYN with 300 KiB of data on a stream whose window is 256 KiB. */
    static uint8_t frame[12 + 300 * 1024];
    cp2p__yamux_hdr_encode(frame, 0, 1, 1, 300 * 1024);
    evil e = {.handshake = true, .after = frame, .after_len = sizeof(frame)};
    (void)state;
    attack(&e);
}

/* 200 connections that send nothing: past max_pending_inbound they are refused at once, the
 * rest time out; a peer connected before keeps working, and one arriving after is served. */
static void slow_loris(void **state)
{
    enum { N = 200 };
    static evil crowd[N];
    cp2p_host *victim = host_new(1500, 64);
    cp2p_host *friend = host_new(10000, 64);
    dial_res dr;
    cp2p_conn *good = dial_host(friend, victim, &dr);
    assert_int_equal(dr.status, 0);
    const cp2p__host_stats *st = cp2p__host_stats_get(victim);
    (void)state;
    memset(crowd, 0, sizeof(crowd));
    for (int i = 0; i < N; i++) {
        evil_start(&crowd[i], victim);
    }
    for (int i = 0; i < N; i++) {
        run_until(&crowd[i].closed_by_peer);
    }
    assert_true(st->inbound_refused >= N - 64);
    assert_true(st->upgrade_failed >= 1);
    assert_int_equal(victim->npending_inbound, 0);
    assert_ping_ok(good);
    cp2p_host *late = host_new(10000, 64);
    assert_ping_ok(dial_host(late, victim, &dr));
    for (int i = 0; i < N; i++) {
        evil_end(&crowd[i]);
    }
    cp2p_host *hs[] = {victim, friend, late};
    hosts_close(hs, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(garbage_before_handshake, setup, teardown),
        cmocka_unit_test_setup_teardown(garbage_noise_message, setup, teardown),
        cmocka_unit_test_setup_teardown(oversized_noise_frame, setup, teardown),
        cmocka_unit_test_setup_teardown(yamux_unknown_frame_type, setup, teardown),
        cmocka_unit_test_setup_teardown(yamux_absurd_length, setup, teardown),
        cmocka_unit_test_setup_teardown(yamux_stream_id_reuse, setup, teardown),
        cmocka_unit_test_setup_teardown(yamux_window_overflow, setup, teardown),
        cmocka_unit_test_setup_teardown(slow_loris, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
