/* The connection core (src/swarm/conn_core.c) against scripted peers, without sockets: the
 * multistream-select bytes of each stage compared byte for byte, Noise's first message
 * checked against the fixed ephemeral key, a muxer negotiated inside Noise by a peer that does
 * not inline it, stage boundaries crossed one byte at a time, every failure (wrong header,
 * refused protocol, wrong peer, corrupted frame, input past its bound, deadlines) and the
 * keepalive. Keys are fixed, so a whole exchange is deterministic. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include <cp2p/keys.h>
#include <cp2p/log.h>

#include "crypto/noise/noise.h"
#include "negotiate/mss.h"
#include "swarm/conn_core.h"

#define HDR "\x13/multistream/1.0.0\n"
#define NOISE_PROP "\x07/noise\n"
#define YAMUX_PROP "\x0d/yamux/1.0.0\n"

typedef struct side {
    cp2p_privkey *id;
    uint8_t s[32], e[32];
    cp2p_peer_id peer;
} side;

static side g_dialer, g_listener;

static void side_init(side *sd, uint8_t seed_byte)
{
    uint8_t seed[32];
    memset(seed, seed_byte, sizeof(seed));
    assert_int_equal(cp2p_privkey_from_seed(CP2P_KEY_ED25519, seed, &sd->id), 0);
    assert_int_equal(cp2p_peer_id_from_pubkey(cp2p_privkey_public(sd->id), &sd->peer), 0);
    memset(sd->s, seed_byte + 1, 32);
    memset(sd->e, seed_byte + 2, 32);
}

static int setup(void **state)
{
    (void)state;
    cp2p_log_set_level(CP2P_LOG_OFF);
    side_init(&g_dialer, 0x10);
    side_init(&g_listener, 0x20);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    cp2p_privkey_free(g_dialer.id);
    cp2p_privkey_free(g_listener.id);
    return 0;
}

static bool g_ping_at_open; /* the default is on; the scripted transcripts are without it */

static cp2p__conn_core *mk_cfg(const side *sd, bool outbound, const cp2p_peer_id *expected,
                               size_t max_input, uint64_t now)
{
    cp2p__conn_core_config cfg;
    cp2p__conn_core_config_default(&cfg);
    cfg.ping_at_open = g_ping_at_open;
    cfg.outbound = outbound;
    cfg.identity = sd->id;
    cfg.expected = expected;
    cfg.upgrade_timeout_ms = 10000;
    cfg.keepalive_ms = 15000;
    cfg.noise_static_key = sd->s;
    cfg.noise_ephemeral_key = sd->e;
    if (max_input != 0) {
        cfg.max_input = max_input;
    }
    cp2p__conn_core *c = NULL;
    assert_int_equal(cp2p__conn_core_new(&cfg, now, &c), 0);
    return c;
}

static cp2p__conn_core *mk(const side *sd, bool outbound, uint64_t now)
{
    return mk_cfg(sd, outbound, NULL, 0, now);
}

/* Everything the core has to send now (negotiation and yamux). */
static size_t drain(cp2p__conn_core *c, uint8_t *dst, size_t cap)
{
    size_t n = 0;
    cp2p_slice sl;
    assert_int_equal(cp2p__conn_core_flush(c, true), 0);
    while (cp2p__conn_core_out(c, &sl) > 0) {
        assert_true(n + sl.len <= cap);
        memcpy(dst + n, sl.ptr, sl.len);
        n += sl.len;
        cp2p__conn_core_out_done(c, sl.len);
        assert_int_equal(cp2p__conn_core_flush(c, true), 0);
    }
    return n;
}

static bool g_in_place; /* feed through cp2p__conn_core_feed (the binding's path) */

static int feed(cp2p__conn_core *c, const void *p, size_t len, uint64_t now, const char **why)
{
    if (g_in_place) {
        int r = cp2p__conn_core_feed(c, p, len, now, why);
        return r < 0 ? r : 0;
    }
    int rc = cp2p__conn_core_input(c, p, len);
    if (rc != 0) {
        return rc;
    }
    rc = cp2p__conn_core_process(c, now, why);
    return rc < 0 ? rc : 0;
}

static uint8_t g_buf[1 << 20];

/* Move bytes both ways, `piece` bytes per feed (0: all at once), until neither side sends.
 * Returns the first error either side reported (0 if none); `log` (may be NULL) records what
 * the dialer `a` sent. */
static int pump(cp2p__conn_core *a, cp2p__conn_core *b, size_t piece, uint64_t now,
                uint8_t *log, size_t *log_len)
{
    const char *why = NULL;
    for (int round = 0; round < 100; round++) {
        size_t na = drain(a, g_buf, sizeof(g_buf));
        if (log != NULL) {
            memcpy(log + *log_len, g_buf, na);
            *log_len += na;
        }
        for (size_t off = 0; off < na;) {
            size_t k = piece == 0 || na - off < piece ? na - off : piece;
            int rc = feed(b, g_buf + off, k, now, &why);
            if (rc != 0) {
                return rc;
            }
            off += k;
        }
        size_t nb = drain(b, g_buf, sizeof(g_buf));
        for (size_t off = 0; off < nb;) {
            size_t k = piece == 0 || nb - off < piece ? nb - off : piece;
            int rc = feed(a, g_buf + off, k, now, &why);
            if (rc != 0) {
                return rc;
            }
            off += k;
        }
        if (na == 0 && nb == 0) {
            return 0;
        }
    }
    fail_msg("the exchange did not settle");
    return -1;
}

static void expect_events(cp2p__conn_core *c, cp2p__conn_event_type first,
                          cp2p__conn_event_type second)
{
    cp2p__conn_event_type ev;
    assert_true(cp2p__conn_core_next_event(c, &ev));
    assert_int_equal(ev, first);
    assert_true(cp2p__conn_core_next_event(c, &ev));
    assert_int_equal(ev, second);
    assert_false(cp2p__conn_core_next_event(c, &ev));
}

static void dialer_proposes_noise(void **state)
{
    (void)state;
    cp2p__conn_core *d = mk(&g_dialer, true, 0);
    size_t n = drain(d, g_buf, sizeof(g_buf));
    assert_int_equal(n, sizeof(HDR NOISE_PROP) - 1);
    assert_memory_equal(g_buf, HDR NOISE_PROP, n);
    assert_int_equal(cp2p__conn_core_stage(d), CP2P__CONN_SEC_NEG);
    assert_null(cp2p__conn_core_remote_peer(d));
    cp2p__conn_core_free(d);
}

static void listener_echoes_noise_in_the_clear(void **state)
{
    (void)state;
    const char *why = NULL;
    cp2p__conn_core *l = mk(&g_listener, false, 0);
    size_t n = drain(l, g_buf, sizeof(g_buf));
    assert_int_equal(n, sizeof(HDR) - 1);
    assert_memory_equal(g_buf, HDR, n);
    assert_int_equal(feed(l, HDR NOISE_PROP, sizeof(HDR NOISE_PROP) - 1, 0, &why), 0);
    assert_int_equal(cp2p__conn_core_stage(l), CP2P__CONN_NOISE);
    /* The echo, and nothing of Noise: the responder waits for message 1. */
    n = drain(l, g_buf, sizeof(g_buf));
    assert_int_equal(n, sizeof(NOISE_PROP) - 1);
    assert_memory_equal(g_buf, NOISE_PROP, n);
    assert_true(cp2p__conn_core_in_handshake(l));
    cp2p__conn_core_free(l);
}

static void dialer_sends_noise_message_one_after_the_echo(void **state)
{
    (void)state;
    const char *why = NULL;
    cp2p__conn_core *d = mk(&g_dialer, true, 0);
    (void)drain(d, g_buf, sizeof(g_buf));
    assert_int_equal(feed(d, HDR NOISE_PROP, sizeof(HDR NOISE_PROP) - 1, 0, &why), 0);
    size_t n = drain(d, g_buf, sizeof(g_buf));
    /* Message 1 of XX: a 2-byte length, then the ephemeral public key, no payload. */
    uint8_t epub[32];
    assert_int_equal(crypto_scalarmult_base(epub, g_dialer.e), 0);
    assert_int_equal(n, 2 + 32);
    assert_int_equal(g_buf[0], 0);
    assert_int_equal(g_buf[1], 32);
    assert_memory_equal(g_buf + 2, epub, 32);
    cp2p__conn_core_free(d);
}

static void pair_opens(size_t piece)
{
    cp2p__conn_core *d = mk(&g_dialer, true, 0);
    cp2p__conn_core *l = mk(&g_listener, false, 0);
    assert_int_equal(pump(d, l, piece, 1, NULL, NULL), 0);
    assert_int_equal(cp2p__conn_core_stage(d), CP2P__CONN_OPEN);
    assert_int_equal(cp2p__conn_core_stage(l), CP2P__CONN_OPEN);
    expect_events(d, CP2P__CONN_EV_SECURED, CP2P__CONN_EV_OPEN);
    expect_events(l, CP2P__CONN_EV_SECURED, CP2P__CONN_EV_OPEN);
    assert_true(cp2p_peer_id_equal(cp2p__conn_core_remote_peer(d), &g_listener.peer));
    assert_true(cp2p_peer_id_equal(cp2p__conn_core_remote_peer(l), &g_dialer.peer));
    assert_non_null(cp2p__conn_core_yamux(d));
    assert_non_null(cp2p__conn_core_yamux(l));
    /* Open: the upgrade deadline is gone, the keepalive is next. */
    assert_int_equal(cp2p__conn_core_deadline(d), 1 + 15000);
    cp2p__conn_core_free(d);
    cp2p__conn_core_free(l);
}

static void pair_opens_with_the_muxer_inlined_in_noise(void **state)
{
    (void)state;
    pair_opens(0);
}

static void pair_opens_one_byte_at_a_time(void **state)
{
    (void)state;
    pair_opens(1);
}

/* The binding's path: bytes processed where they were read, only a cut frame held. */
static void pair_opens_fed_in_place(void **state)
{
    (void)state;
    g_in_place = true;
    pair_opens(0);
    pair_opens(1);
    pair_opens(7);
    g_in_place = false;
}

/* Data frames cut across reads at every offset arrive whole, and once a read ends on a frame
 * boundary the core holds no input memory. */
static void cut_frames_are_held_then_released(void **state)
{
    (void)state;
    const char *why = NULL;
    g_in_place = true;
    cp2p__conn_core *d = mk(&g_dialer, true, 0);
    cp2p__conn_core *l = mk(&g_listener, false, 0);
    assert_int_equal(pump(d, l, 0, 1, NULL, NULL), 0);
    cp2p__yamux *yd = cp2p__conn_core_yamux(d), *yl = cp2p__conn_core_yamux(l);
    cp2p__yamux_stream *s = NULL;
    assert_int_equal(cp2p__yamux_stream_open(yd, NULL, &s), 0);
    static uint8_t msg[100000];
    for (size_t i = 0; i < sizeof(msg); i++) {
        msg[i] = (uint8_t)(i * 7);
    }
    assert_int_equal(cp2p__yamux_stream_write(s, msg, sizeof(msg)), (ptrdiff_t)sizeof(msg));
    size_t n = drain(d, g_buf, sizeof(g_buf));
    assert_true(n > sizeof(msg));
    /* Reads of 1,000 bytes: almost every one ends inside a Noise frame. */
    size_t max_held = 0;
    for (size_t off = 0; off < n; off += 1000) {
        size_t k = n - off < 1000 ? n - off : 1000;
        assert_int_equal(cp2p__conn_core_feed(l, g_buf + off, k, 2, &why) >= 0, 1);
        size_t held = cp2p__conn_core_input_held(l);
        max_held = held > max_held ? held : max_held;
    }
    assert_true(max_held > 0);
    assert_int_equal(cp2p__conn_core_input_held(l), 0);
    cp2p__yamux_event ev;
    cp2p__yamux_stream *rs = NULL;
    while (cp2p__yamux_next_event(yl, &ev)) {
        if (ev.type == CP2P__YAMUX_EV_STREAM_OPENED) {
            rs = ev.stream;
        }
    }
    assert_non_null(rs);
    static uint8_t got[sizeof(msg)];
    assert_int_equal(cp2p__yamux_stream_read(rs, got, sizeof(got), 2), (ptrdiff_t)sizeof(msg));
    assert_memory_equal(got, msg, sizeof(msg));
    cp2p__conn_core_free(d);
    cp2p__conn_core_free(l);
    g_in_place = false;
}

static void exchange_is_deterministic(void **state)
{
    (void)state;
    static uint8_t log1[1 << 14], log2[1 << 14];
    size_t n1 = 0, n2 = 0;
    for (int run = 0; run < 2; run++) {
        cp2p__conn_core *d = mk(&g_dialer, true, 0);
        cp2p__conn_core *l = mk(&g_listener, false, 0);
        assert_int_equal(pump(d, l, 0, 1, run == 0 ? log1 : log2, run == 0 ? &n1 : &n2), 0);
        cp2p__conn_core_free(d);
        cp2p__conn_core_free(l);
    }
    assert_true(n1 > sizeof(HDR NOISE_PROP) + 34);
    assert_int_equal(n1, n2);
    assert_memory_equal(log1, log2, n1);
}

/* A scripted initiator that does not inline the muxer (as go-libp2p before v0.24): plain
 * multistream-select of /noise, a Noise session without a muxer list, then multistream-select
 * of /yamux/1.0.0 inside it, all byte for byte. */
static void muxer_negotiated_inside_noise(void **state)
{
    (void)state;
    const char *why = NULL;
    cp2p__conn_core *l = mk(&g_listener, false, 0);
    (void)drain(l, g_buf, sizeof(g_buf));
    assert_int_equal(feed(l, HDR NOISE_PROP, sizeof(HDR NOISE_PROP) - 1, 0, &why), 0);
    (void)drain(l, g_buf, sizeof(g_buf)); /* the echo */

    cp2p__noise_config nc;
    cp2p__noise_config_default(&nc);
    nc.static_key = g_dialer.s;
    nc.ephemeral_key = g_dialer.e;
    cp2p__noise *peer = NULL;
    assert_int_equal(cp2p__noise_new(&nc, true, g_dialer.id, &g_listener.peer, 0, &peer), 0);
    for (int round = 0; round < 4; round++) {
        cp2p_slice sl;
        while (cp2p__noise_out(peer, &sl) > 0) {
            assert_int_equal(feed(l, sl.ptr, sl.len, 0, &why), 0);
            cp2p__noise_out_done(peer, sl.len);
        }
        size_t n = drain(l, g_buf, sizeof(g_buf));
        if (n > 0) {
            assert_int_equal(cp2p__noise_recv(peer, g_buf, n, 0, &why), (ptrdiff_t)n);
        }
    }
    assert_true(cp2p__noise_handshake_done(peer));
    assert_int_equal(cp2p__conn_core_stage(l), CP2P__CONN_MUX_NEG);

    /* The listener's header arrives inside Noise at once. */
    static const char prop[] = HDR YAMUX_PROP;
    assert_int_equal(cp2p__noise_write(peer, (const uint8_t *)prop, sizeof(prop) - 1), (ptrdiff_t)sizeof(prop) - 1);
    cp2p_slice sl;
    while (cp2p__noise_out(peer, &sl) > 0) {
        assert_int_equal(feed(l, sl.ptr, sl.len, 0, &why), 0);
        cp2p__noise_out_done(peer, sl.len);
    }
    size_t n = drain(l, g_buf, sizeof(g_buf));
    assert_int_equal(cp2p__noise_recv(peer, g_buf, n, 0, &why), (ptrdiff_t)n);
    uint8_t plain[256];
    size_t got = 0;
    cp2p_slice pt;
    while (cp2p__noise_read(peer, &pt) > 0) {
        memcpy(plain + got, pt.ptr, pt.len);
        got += pt.len;
        cp2p__noise_read_done(peer, pt.len);
    }
    assert_int_equal(got, sizeof(prop) - 1);
    assert_memory_equal(plain, prop, got);
    assert_int_equal(cp2p__conn_core_stage(l), CP2P__CONN_OPEN);
    expect_events(l, CP2P__CONN_EV_SECURED, CP2P__CONN_EV_OPEN);
    cp2p__noise_free(peer);
    cp2p__conn_core_free(l);
}

static void wrong_header_fails(void **state)
{
    (void)state;
    const char *why = NULL;
    cp2p__conn_core *l = mk(&g_listener, false, 0);
    static const char bad[] = "\x13/multistream/2.0.0\n";
    assert_int_equal(feed(l, bad, sizeof(bad) - 1, 0, &why), CP2P_EPROTO);
    assert_non_null(why);
    assert_int_equal(cp2p__conn_core_stage(l), CP2P__CONN_FAILED);
    /* Terminal: the same error again, no output, no deadline. */
    assert_int_equal(cp2p__conn_core_process(l, 0, &why), CP2P_EPROTO);
    assert_int_equal(cp2p__conn_core_flush(l, true), CP2P_EPROTO);
    assert_int_equal(cp2p__conn_core_deadline(l), UINT64_MAX);
    cp2p__conn_core_free(l);
}

static void refused_noise_fails_not_supported(void **state)
{
    (void)state;
    const char *why = NULL;
    cp2p__conn_core *d = mk(&g_dialer, true, 0);
    (void)drain(d, g_buf, sizeof(g_buf));
    static const char na[] = HDR "\x03na\n";
    assert_int_equal(feed(d, na, sizeof(na) - 1, 0, &why), CP2P_ENOTSUP);
    cp2p__conn_core_free(d);
}

static void wrong_peer_fails(void **state)
{
    (void)state;
    cp2p__conn_core *d = mk_cfg(&g_dialer, true, &g_dialer.peer /* not who answers */, 0, 0);
    cp2p__conn_core *l = mk(&g_listener, false, 0);
    assert_int_equal(pump(d, l, 0, 1, NULL, NULL), CP2P_EPEERID);
    assert_int_equal(cp2p__conn_core_stage(d), CP2P__CONN_FAILED);
    assert_true(cp2p__conn_core_in_handshake(d)); /* the stage that failed */
    cp2p__conn_core_free(d);
    cp2p__conn_core_free(l);
}

static void corrupted_frame_after_open_fails(void **state)
{
    (void)state;
    const char *why = NULL;
    cp2p__conn_core *d = mk(&g_dialer, true, 0);
    cp2p__conn_core *l = mk(&g_listener, false, 0);
    assert_int_equal(pump(d, l, 0, 1, NULL, NULL), 0);
    assert_int_equal(cp2p__yamux_ping(cp2p__conn_core_yamux(d), 2), 0);
    size_t n = drain(d, g_buf, sizeof(g_buf));
    assert_true(n > 2 + 12);
    g_buf[n - 1] ^= 0x01; /* the tag */
    assert_true(feed(l, g_buf, n, 2, &why) < 0);
    assert_non_null(why);
    assert_int_equal(cp2p__conn_core_stage(l), CP2P__CONN_FAILED);
    cp2p__conn_core_free(d);
    cp2p__conn_core_free(l);
}

static void input_is_bounded(void **state)
{
    (void)state;
    const char *why = NULL;
    cp2p__conn_core *l = mk_cfg(&g_listener, false, NULL, 64, 0);
    uint8_t *p;
    assert_int_equal(cp2p__conn_core_read_buf(l, 1000, &p), 0); /* room for 64 */
    /* An incomplete multistream message longer than the bound: held, then refused. */
    uint8_t msg[80];
    memset(msg, 'a', sizeof(msg));
    msg[0] = 0x7f;
    assert_int_equal(cp2p__conn_core_input(l, msg, 64), 0);
    assert_int_equal(cp2p__conn_core_process(l, 0, &why), 0);
    assert_int_equal(cp2p__conn_core_input(l, msg + 64, 16), CP2P_ELIMIT);
    assert_int_equal(cp2p__conn_core_read_buf(l, 1, &p), CP2P_ELIMIT);
    cp2p__conn_core_free(l);
}

static void upgrade_deadline(void **state)
{
    (void)state;
    const char *why = NULL;
    cp2p__conn_core *d = mk(&g_dialer, true, 100);
    assert_int_equal(cp2p__conn_core_deadline(d), 100 + 10000);
    assert_int_equal(cp2p__conn_core_on_timeout(d, 100 + 9999, &why), 0);
    assert_int_equal(cp2p__conn_core_on_timeout(d, 100 + 10000, &why), CP2P_ETIMEDOUT);
    assert_string_equal(why, "upgrade timed out");
    assert_int_equal(cp2p__conn_core_stage(d), CP2P__CONN_FAILED);
    cp2p__conn_core_free(d);
}

static void keepalive_pings_and_times_out_unanswered(void **state)
{
    (void)state;
    const char *why = NULL;
    cp2p__conn_core *d = mk(&g_dialer, true, 0);
    cp2p__conn_core *l = mk(&g_listener, false, 0);
    assert_int_equal(pump(d, l, 0, 0, NULL, NULL), 0);
    cp2p__yamux *y = cp2p__conn_core_yamux(d);
    uint64_t t = cp2p__conn_core_deadline(d);
    assert_int_equal(t, 15000);
    assert_int_equal(cp2p__conn_core_on_timeout(d, t, &why), 0);
    assert_int_equal(cp2p__conn_core_get_stats(d)->keepalive_pings, 1);
    /* Answered: an RTT is measured. */
    assert_int_equal(pump(d, l, 0, t + 3, NULL, NULL), 0);
    uint64_t rtt = 0;
    cp2p__yamux_event ev;
    assert_true(cp2p__yamux_next_event(y, &ev));
    assert_int_equal(ev.type, CP2P__YAMUX_EV_PING);
    assert_int_equal(ev.err, 0);
    assert_true(cp2p__yamux_rtt(y, &rtt));
    assert_int_equal(rtt, 3);
    /* The next one is never delivered: yamux reports it unanswered. */
    t = cp2p__conn_core_deadline(d);
    assert_int_equal(t, 30000);
    assert_int_equal(cp2p__conn_core_on_timeout(d, t, &why), 0);
    assert_true(drain(d, g_buf, sizeof(g_buf)) > 0);
    bool timed_out = false;
    for (int i = 0; i < 10 && !timed_out; i++) {
        t = cp2p__conn_core_deadline(d);
        assert_int_equal(cp2p__conn_core_on_timeout(d, t, &why), 0);
        while (cp2p__yamux_next_event(y, &ev)) {
            timed_out |= ev.type == CP2P__YAMUX_EV_PING && ev.err == CP2P_ETIMEDOUT;
        }
    }
    assert_true(timed_out);
    cp2p__conn_core_free(d);
    cp2p__conn_core_free(l);
}

/* With the default ping at open, both ends know the RTT once the upgrade's exchange is over,
 * before any data; with a finer clock offered, samples are in microseconds. */
static void ping_at_open_measures_rtt(void **state)
{
    (void)state;
    const char *why = NULL;
    g_ping_at_open = true;
    cp2p__conn_core *d = mk(&g_dialer, true, 0);
    cp2p__conn_core *l = mk(&g_listener, false, 0);
    g_ping_at_open = false;
    cp2p__conn_core_set_clock_us(d, 1000);
    cp2p__conn_core_set_clock_us(l, 1000);
    assert_int_equal(pump(d, l, 0, 1, NULL, NULL), 0);
    assert_int_equal(cp2p__conn_core_get_stats(d)->keepalive_pings, 1);
    assert_int_equal(cp2p__conn_core_get_stats(l)->keepalive_pings, 1);
    cp2p__yamux *yd = cp2p__conn_core_yamux(d);
    uint64_t rtt = 1;
    assert_true(cp2p__yamux_rtt_us(yd, &rtt));
    assert_int_equal(rtt, 0); /* no time passed */
    assert_true(cp2p__yamux_rtt_us(cp2p__conn_core_yamux(l), &rtt));
    /* A ping answered 250 us later: the smoothed estimate moves by 1/8 of the difference. */
    cp2p__conn_core_set_clock_us(d, 5000);
    assert_int_equal(cp2p__yamux_ping(yd, 5), 0);
    size_t n = drain(d, g_buf, sizeof(g_buf));
    assert_int_equal(feed(l, g_buf, n, 5, &why), 0);
    n = drain(l, g_buf, sizeof(g_buf));
    cp2p__conn_core_set_clock_us(d, 5250);
    assert_int_equal(feed(d, g_buf, n, 5, &why), 0);
    assert_true(cp2p__yamux_rtt_us(yd, &rtt));
    assert_int_equal(rtt, 250 / 8);
    cp2p__conn_core_free(d);
    cp2p__conn_core_free(l);
}

static void bad_config_is_refused(void **state)
{
    (void)state;
    cp2p__conn_core_config cfg;
    cp2p__conn_core *c = NULL;
    cp2p__conn_core_config_default(&cfg);
    assert_int_equal(cp2p__conn_core_new(&cfg, 0, &c), CP2P_EINVAL); /* no identity */
    cfg.identity = g_dialer.id;
    cfg.max_input = 0;
    assert_int_equal(cp2p__conn_core_new(&cfg, 0, &c), CP2P_EINVAL);
    assert_null(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(dialer_proposes_noise),
        cmocka_unit_test(listener_echoes_noise_in_the_clear),
        cmocka_unit_test(dialer_sends_noise_message_one_after_the_echo),
        cmocka_unit_test(pair_opens_with_the_muxer_inlined_in_noise),
        cmocka_unit_test(pair_opens_one_byte_at_a_time),
        cmocka_unit_test(pair_opens_fed_in_place),
        cmocka_unit_test(cut_frames_are_held_then_released),
        cmocka_unit_test(exchange_is_deterministic),
        cmocka_unit_test(muxer_negotiated_inside_noise),
        cmocka_unit_test(wrong_header_fails),
        cmocka_unit_test(refused_noise_fails_not_supported),
        cmocka_unit_test(wrong_peer_fails),
        cmocka_unit_test(corrupted_frame_after_open_fails),
        cmocka_unit_test(input_is_bounded),
        cmocka_unit_test(upgrade_deadline),
        cmocka_unit_test(keepalive_pings_and_times_out_unanswered),
        cmocka_unit_test(ping_at_open_measures_rtt),
        cmocka_unit_test(bad_config_is_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
