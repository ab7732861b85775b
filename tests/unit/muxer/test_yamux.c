/* yamux core: wire transcripts, two cores back to back in memory, a virtual-time link with delay
 * for flow control and auto-tuning, protocol errors, limits and budgets, allocation failures. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <cp2p/common.h>

#include "muxer/yamux.h"
#include "util/alloc.h"
#include "util/limits.h"

#define KIB 1024u
#define MIB (1024u * 1024u)

/* ---- helpers ---- */

static size_t frame(uint8_t *out, uint8_t type, uint16_t flags, uint32_t id, uint32_t len)
{
    cp2p__yamux_hdr_encode(out, type, flags, id, len);
    return CP2P__YAMUX_HDR_LEN;
}

static cp2p__yamux *core(bool client, const cp2p__yamux_config *cfg)
{
    cp2p__yamux *y = NULL;
    assert_int_equal(cp2p__yamux_new(cfg, client, &y), 0);
    assert_non_null(y);
    return y;
}

/* Copy out everything `y` wants to send (at most cap bytes), and mark it written. */
static size_t take_out(cp2p__yamux *y, uint8_t *buf, size_t cap)
{
    size_t total = 0;
    for (;;) {
        cp2p_slice iov[16];
        size_t n = cp2p__yamux_outv(y, iov, 16);
        if (n == 0) {
            return total;
        }
        size_t sum = 0;
        for (size_t i = 0; i < n; i++) {
            assert_true(total + sum + iov[i].len <= cap);
            memcpy(buf + total + sum, iov[i].ptr, iov[i].len);
            sum += iov[i].len;
        }
        assert_int_equal(cp2p__yamux_out_done(y, sum), 0);
        total += sum;
    }
}

/* Move all output of `from` into `to`; output chunks hold whole frames, so `to` consumes all. */
static size_t flush_into(cp2p__yamux *from, cp2p__yamux *to, uint64_t now)
{
    size_t moved = 0;
    for (;;) {
        cp2p_slice iov[16];
        size_t n = cp2p__yamux_outv(from, iov, 16);
        if (n == 0) {
            return moved;
        }
        size_t sum = 0;
        for (size_t i = 0; i < n; i++) {
            const char *why = NULL;
            ptrdiff_t r = cp2p__yamux_recv(to, iov[i].ptr, iov[i].len, now, &why);
            if (r != (ptrdiff_t)iov[i].len) {
                fail_msg("recv returned %td of %zu: %s", r, iov[i].len, why ? why : "");
            }
            sum += iov[i].len;
        }
        assert_int_equal(cp2p__yamux_out_done(from, sum), 0);
        moved += sum;
    }
}

static void pump(cp2p__yamux *a, cp2p__yamux *b, uint64_t now)
{
    while (flush_into(a, b, now) + flush_into(b, a, now) > 0) {
    }
}

#define MAX_EVS 64
typedef struct {
    cp2p__yamux_event ev[MAX_EVS];
    size_t n;
} evlist;

static void collect(cp2p__yamux *y, evlist *l)
{
    l->n = 0;
    cp2p__yamux_event ev;
    while (cp2p__yamux_next_event(y, &ev)) {
        assert_true(l->n < MAX_EVS);
        l->ev[l->n++] = ev;
    }
}

static const cp2p__yamux_event *find(const evlist *l, cp2p__yamux_event_type t, uint32_t id)
{
    for (size_t i = 0; i < l->n; i++) {
        if (l->ev[i].type == t && (id == 0 || l->ev[i].stream_id == id)) {
            return &l->ev[i];
        }
    }
    return NULL;
}

static ptrdiff_t feed(cp2p__yamux *y, const uint8_t *in, size_t len, uint64_t now)
{
    const char *why = NULL;
    return cp2p__yamux_recv(y, in, len, now, &why);
}

/* Open a stream on `a`, have `b` accept it, and return both ends. */
static void open_pair(cp2p__yamux *a, cp2p__yamux *b, cp2p__yamux_stream **sa,
                      cp2p__yamux_stream **sb)
{
    assert_int_equal(cp2p__yamux_stream_open(a, NULL, sa), 0);
    pump(a, b, 0);
    evlist l;
    collect(b, &l);
    const cp2p__yamux_event *e = find(&l, CP2P__YAMUX_EV_STREAM_OPENED, cp2p__yamux_stream_id(*sa));
    assert_non_null(e);
    *sb = e->stream;
    assert_int_equal(cp2p__yamux_stream_accept(*sb), 0);
    pump(a, b, 0);
    collect(a, &l);
}

/* ---- codec ---- */

static void hdr_roundtrip_and_every_truncation(void **state)
{
    (void)state;
    uint8_t b[CP2P__YAMUX_HDR_LEN];
    const char *why = NULL;
    cp2p__yamux_hdr h;
    for (uint8_t t = 0; t <= 3; t++) {
        cp2p__yamux_hdr_encode(b, t, 0x000f, 0x01020304, 0x0a0b0c0d);
        for (size_t i = 0; i < sizeof(b); i++) {
            assert_int_equal(cp2p__yamux_hdr_decode(&h, b, i, UINT32_MAX, &why), 0);
        }
        assert_int_equal(cp2p__yamux_hdr_decode(&h, b, sizeof(b), UINT32_MAX, &why), 12);
        assert_int_equal(h.type, t);
        assert_int_equal(h.flags, 0x000f);
        assert_int_equal(h.stream_id, 0x01020304);
        assert_int_equal(h.length, 0x0a0b0c0d);
    }
    const uint8_t exact[] = {0, 1, 0, 1, 0, 0, 0, 5, 0, 0, 1, 0};
    cp2p__yamux_hdr_encode(b, CP2P__YAMUX_WINDOW_UPDATE, CP2P__YAMUX_SYN, 5, 256);
    assert_memory_equal(b, exact, sizeof(b));

    b[0] = 1;
    assert_int_equal(cp2p__yamux_hdr_decode(&h, b, sizeof(b), UINT32_MAX, &why), CP2P_EPROTO);
    assert_string_equal(why, "unknown yamux version");
    b[0] = 0;
    b[1] = 4;
    assert_int_equal(cp2p__yamux_hdr_decode(&h, b, sizeof(b), UINT32_MAX, &why), CP2P_EPROTO);
    assert_string_equal(why, "unknown yamux frame type");
    cp2p__yamux_hdr_encode(b, CP2P__YAMUX_DATA, 0, 1, 1000);
    assert_int_equal(cp2p__yamux_hdr_decode(&h, b, sizeof(b), 999, &why), CP2P_EPROTO);
    assert_int_equal(cp2p__yamux_hdr_decode(&h, b, sizeof(b), 1000, &why), 12);
    /* Only Data lengths are bounded by the window: a WindowUpdate delta is not a length. */
    cp2p__yamux_hdr_encode(b, CP2P__YAMUX_WINDOW_UPDATE, 0, 1, 1000);
    assert_int_equal(cp2p__yamux_hdr_decode(&h, b, sizeof(b), 999, &why), 12);
}

static void config_is_validated(void **state)
{
    (void)state;
    cp2p__yamux_config cfg;
    cp2p__yamux *y = NULL;
    cp2p__yamux_config_default(&cfg);
    cfg.initial_window = 1000;
    assert_int_equal(cp2p__yamux_new(&cfg, true, &y), CP2P_EINVAL);
    cp2p__yamux_config_default(&cfg);
    cfg.max_window = cfg.initial_window - 1;
    assert_int_equal(cp2p__yamux_new(&cfg, true, &y), CP2P_EINVAL);
    cp2p__yamux_config_default(&cfg);
    cfg.ping_per_sec = 0;
    assert_int_equal(cp2p__yamux_new(&cfg, true, &y), CP2P_EINVAL);
    cp2p__yamux_config_default(&cfg);
    cfg.max_frame = 100;
    assert_int_equal(cp2p__yamux_new(&cfg, true, &y), CP2P_EINVAL);
    assert_null(y);
    assert_int_equal(cp2p__yamux_new(NULL, false, &y), 0);
    cp2p__yamux_free(y);
    cp2p__yamux_free(NULL);
}

/* ---- transcripts ---- */

/* The first frames a client sends, byte for byte, and the server's answers. */
static void client_first_frames_byte_exact(void **state)
{
    (void)state;
    cp2p__yamux *c = core(true, NULL), *s = core(false, NULL);
    cp2p__yamux_stream *cs;
    uint8_t out[256];

    assert_int_equal(cp2p__yamux_stream_open(c, NULL, &cs), 0);
    assert_int_equal(cp2p__yamux_stream_id(cs), 1);
    assert_int_equal(cp2p__yamux_stream_write(cs, "hello", 5), 5);
    static const uint8_t expect1[] = {
        0, 1, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0,                    /* WindowUpdate SYN id 1, +0 */
        0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 5, 'h', 'e', 'l', 'l', 'o', /* Data id 1, 5 bytes */
    };
    size_t n = take_out(c, out, sizeof(out));
    assert_int_equal(n, sizeof(expect1));
    assert_memory_equal(out, expect1, n);
    assert_int_equal(feed(s, out, n, 0), (ptrdiff_t)n);

    /* A ping goes ahead of stream frames not yet handed out; FIN travels on a WindowUpdate. */
    assert_int_equal(cp2p__yamux_stream_close_write(cs), 0);
    assert_int_equal(cp2p__yamux_ping(c, 0), 0);
    static const uint8_t expect2[] = {
        0, 2, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, /* Ping SYN, opaque 0 */
        0, 1, 0, 4, 0, 0, 0, 1, 0, 0, 0, 0, /* WindowUpdate FIN id 1 */
    };
    n = take_out(c, out, sizeof(out));
    assert_int_equal(n, sizeof(expect2));
    assert_memory_equal(out, expect2, n);
    assert_int_equal(feed(s, out, n, 0), (ptrdiff_t)n);

    evlist l;
    collect(s, &l);
    assert_int_equal(l.n, 3);
    assert_int_equal(l.ev[0].type, CP2P__YAMUX_EV_STREAM_OPENED);
    assert_int_equal(l.ev[1].type, CP2P__YAMUX_EV_STREAM_READABLE);
    assert_int_equal(l.ev[2].type, CP2P__YAMUX_EV_STREAM_REMOTE_FIN);
    cp2p__yamux_stream *ss = l.ev[0].stream;
    assert_int_equal(cp2p__yamux_stream_accept(ss), 0);
    static const uint8_t expect3[] = {
        0, 2, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, /* Ping ACK, opaque 0 (answered by the core) */
        0, 1, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0, /* WindowUpdate ACK id 1 */
    };
    n = take_out(s, out, sizeof(out));
    assert_int_equal(n, sizeof(expect3));
    assert_memory_equal(out, expect3, n);
    char buf[16];
    assert_int_equal(cp2p__yamux_stream_read(ss, buf, sizeof(buf), 0), 5);
    assert_memory_equal(buf, "hello", 5);
    assert_true(cp2p__yamux_stream_eof(ss));
    cp2p__yamux_stream_release(ss);
    cp2p__yamux_stream_release(cs);
    cp2p__yamux_free(c);
    cp2p__yamux_free(s);
}

/* A transcript split at every byte: header truncations consume nothing, a Data payload may be
 * consumed piecewise, and the outcome is the same as feeding it whole. */
static void every_truncation_needs_more(void **state)
{
    (void)state;
    uint8_t t[64];
    size_t len = 0;
    len += frame(t + len, CP2P__YAMUX_WINDOW_UPDATE, CP2P__YAMUX_SYN, 1, 0); /* [0,12) */
    len += frame(t + len, CP2P__YAMUX_DATA, CP2P__YAMUX_FIN, 1, 5);          /* [12,24) */
    memcpy(t + len, "hello", 5);                                             /* [24,29) */
    len += 5;
    len += frame(t + len, CP2P__YAMUX_PING, CP2P__YAMUX_SYN, 0, 7);          /* [29,41) */
    len += frame(t + len, CP2P__YAMUX_WINDOW_UPDATE, 0, 1, 100);             /* [41,53) */
    assert_int_equal(len, 53);

    for (size_t k = 0; k <= len; k++) {
        cp2p__yamux *s = core(false, NULL);
        ptrdiff_t r1 = feed(s, t, k, 0);
        size_t expect;
        if (k < 12) {
            expect = 0;
        } else if (k < 24) {
            expect = 12;
        } else if (k <= 29) {
            expect = k;
        } else if (k < 41) {
            expect = 29;
        } else if (k < 53) {
            expect = 41;
        } else {
            expect = 53;
        }
        assert_int_equal(r1, (ptrdiff_t)expect);
        ptrdiff_t r2 = feed(s, t + r1, len - (size_t)r1, 0);
        assert_int_equal(r1 + r2, (ptrdiff_t)len);

        evlist l;
        collect(s, &l);
        assert_int_equal(l.ev[0].type, CP2P__YAMUX_EV_STREAM_OPENED);
        assert_non_null(find(&l, CP2P__YAMUX_EV_STREAM_READABLE, 1));
        assert_non_null(find(&l, CP2P__YAMUX_EV_STREAM_REMOTE_FIN, 1));
        cp2p__yamux_stream *ss = l.ev[0].stream;
        char buf[8];
        assert_int_equal(cp2p__yamux_stream_read(ss, buf, sizeof(buf), 0), 5);
        assert_memory_equal(buf, "hello", 5);
        cp2p__yamux_stream_info info;
        cp2p__yamux_stream_get_info(ss, &info);
        assert_int_equal(info.send_window, 256 * KIB + 100);
        uint8_t out[64];
        size_t n = take_out(s, out, sizeof(out));
        static const uint8_t pong[] = {0, 2, 0, 2, 0, 0, 0, 0, 0, 0, 0, 7};
        assert_int_equal(n, 12);
        assert_memory_equal(out, pong, 12);
        cp2p__yamux_stream_release(ss);
        cp2p__yamux_free(s);
    }
}

/* ---- streams between two cores ---- */

static void open_accept_both_directions(void **state)
{
    (void)state;
    cp2p__yamux *c = core(true, NULL), *s = core(false, NULL);
    cp2p__yamux_stream *c1, *s1, *s2, *c2;
    int tag = 0;

    assert_int_equal(cp2p__yamux_stream_open(c, &tag, &c1), 0);
    assert_int_equal(cp2p__yamux_stream_open(s, NULL, &s2), 0);
    assert_int_equal(cp2p__yamux_stream_id(c1), 1);
    assert_int_equal(cp2p__yamux_stream_id(s2), 2);
    assert_ptr_equal(cp2p__yamux_stream_user(c1), &tag);
    pump(c, s, 0);
    evlist lc, ls;
    collect(c, &lc);
    collect(s, &ls);
    const cp2p__yamux_event *e = find(&ls, CP2P__YAMUX_EV_STREAM_OPENED, 1);
    assert_non_null(e);
    s1 = e->stream;
    e = find(&lc, CP2P__YAMUX_EV_STREAM_OPENED, 2);
    assert_non_null(e);
    c2 = e->stream;
    cp2p__yamux_stream_info info;
    cp2p__yamux_stream_get_info(c1, &info);
    assert_true(info.outbound);
    assert_false(info.acked);
    assert_int_equal(cp2p__yamux_stream_accept(s1), 0);
    assert_int_equal(cp2p__yamux_stream_accept(c2), 0);
    assert_int_equal(cp2p__yamux_stream_accept(c2), 0); /* idempotent */
    assert_int_equal(cp2p__yamux_stream_accept(c1), CP2P_EINVAL);
    pump(c, s, 0);
    cp2p__yamux_stream_get_info(c1, &info);
    assert_true(info.acked);
    cp2p__yamux_stream_get_info(s2, &info);
    assert_true(info.acked);
    assert_int_equal(cp2p__yamux_get_stats(c)->streams_opened_local, 1);
    assert_int_equal(cp2p__yamux_get_stats(c)->streams_opened_remote, 1);
    cp2p__yamux_stream_release(c1);
    cp2p__yamux_stream_release(c2);
    cp2p__yamux_stream_release(s1);
    cp2p__yamux_stream_release(s2);
    pump(c, s, 0);
    cp2p__yamux_free(c);
    cp2p__yamux_free(s);
}

static void data_echo(void **state)
{
    (void)state;
    cp2p__yamux *c = core(true, NULL), *s = core(false, NULL);
    cp2p__yamux_stream *cs, *ss;
    open_pair(c, s, &cs, &ss);

    size_t total = 200 * KIB; /* below the window: one write takes it all */
    uint8_t *msg = malloc(total), *echo = malloc(total), *back = malloc(total);
    for (size_t i = 0; i < total; i++) {
        msg[i] = (uint8_t)(i * 7 + 3);
    }
    assert_int_equal(cp2p__yamux_stream_write(cs, msg, total), (ptrdiff_t)total);
    pump(c, s, 0);
    size_t got = 0;
    while (got < total) {
        ptrdiff_t r = cp2p__yamux_stream_read(ss, echo + got, total - got, 0);
        assert_true(r > 0);
        got += (size_t)r;
    }
    assert_memory_equal(msg, echo, total);
    assert_int_equal(cp2p__yamux_stream_write(ss, echo, total), (ptrdiff_t)total);
    pump(c, s, 0);
    got = 0;
    while (got < total) {
        ptrdiff_t r = cp2p__yamux_stream_read(cs, back + got, total - got, 0);
        assert_true(r > 0);
        got += (size_t)r;
    }
    assert_memory_equal(msg, back, total);
    /* Data frames never exceed max_frame (64 KiB with the header). */
    assert_true(cp2p__yamux_get_stats(c)->frames_out >= total / (64 * KIB));
    free(msg);
    free(echo);
    free(back);
    cp2p__yamux_stream_release(cs);
    cp2p__yamux_stream_release(ss);
    cp2p__yamux_free(c);
    cp2p__yamux_free(s);
}

static void half_close_both_ways(void **state)
{
    (void)state;
    cp2p__yamux *c = core(true, NULL), *s = core(false, NULL);
    cp2p__yamux_stream *cs, *ss;
    open_pair(c, s, &cs, &ss);
    evlist l;

    assert_int_equal(cp2p__yamux_stream_write(cs, "req", 3), 3);
    assert_int_equal(cp2p__yamux_stream_close_write(cs), 0);
    assert_int_equal(cp2p__yamux_stream_close_write(cs), 0); /* idempotent */
    assert_int_equal(cp2p__yamux_stream_write(cs, "x", 1), CP2P_ECLOSED);
    pump(c, s, 0);
    collect(s, &l);
    assert_non_null(find(&l, CP2P__YAMUX_EV_STREAM_REMOTE_FIN, 1));
    char buf[8];
    assert_false(cp2p__yamux_stream_eof(ss));
    assert_int_equal(cp2p__yamux_stream_read(ss, buf, sizeof(buf), 0), 3);
    assert_true(cp2p__yamux_stream_eof(ss));
    /* The server can still answer on its half. */
    assert_int_equal(cp2p__yamux_stream_write(ss, "resp", 4), 4);
    assert_int_equal(cp2p__yamux_stream_close_write(ss), 0);
    pump(c, s, 0);
    collect(c, &l);
    assert_non_null(find(&l, CP2P__YAMUX_EV_STREAM_READABLE, 1));
    assert_non_null(find(&l, CP2P__YAMUX_EV_STREAM_REMOTE_FIN, 1));
    assert_int_equal(cp2p__yamux_stream_read(cs, buf, sizeof(buf), 0), 4);
    assert_memory_equal(buf, "resp", 4);
    assert_true(cp2p__yamux_stream_eof(cs));
    /* Fully closed: frames still arriving for the ID are dropped, not errors. */
    uint8_t f[CP2P__YAMUX_HDR_LEN];
    frame(f, CP2P__YAMUX_WINDOW_UPDATE, 0, 1, 10);
    assert_int_equal(feed(s, f, sizeof(f), 0), 12);
    assert_int_equal(cp2p__yamux_get_stats(s)->frames_discarded, 1);
    assert_int_equal(cp2p__yamux_num_streams(c), 1);
    cp2p__yamux_stream_release(cs);
    cp2p__yamux_stream_release(ss);
    assert_int_equal(cp2p__yamux_num_streams(c), 0);
    assert_int_equal(cp2p__yamux_num_streams(s), 0);
    assert_int_equal(cp2p__yamux_out_pending(c), 0);
    cp2p__yamux_free(c);
    cp2p__yamux_free(s);
}

static void reset_both_ways(void **state)
{
    (void)state;
    cp2p__yamux *c = core(true, NULL), *s = core(false, NULL);
    cp2p__yamux_stream *cs, *ss;
    open_pair(c, s, &cs, &ss);
    evlist l;

    assert_int_equal(cp2p__yamux_stream_write(cs, "abc", 3), 3);
    pump(c, s, 0);
    collect(s, &l);
    /* The client resets with a code (go-yamux carries it in the WindowUpdate length). */
    assert_int_equal(cp2p__yamux_stream_reset(cs, 42), 0);
    assert_int_equal(cp2p__yamux_stream_reset(cs, 42), 0); /* idempotent */
    assert_int_equal(cp2p__yamux_stream_write(cs, "x", 1), CP2P_ECANCELED);
    uint8_t out[64];
    size_t n = take_out(c, out, sizeof(out));
    static const uint8_t rst[] = {0, 1, 0, 8, 0, 0, 0, 1, 0, 0, 0, 42};
    assert_int_equal(n, 12);
    assert_memory_equal(out, rst, 12);
    assert_int_equal(feed(s, out, n, 0), 12);
    collect(s, &l);
    const cp2p__yamux_event *e = find(&l, CP2P__YAMUX_EV_STREAM_RESET, 1);
    assert_non_null(e);
    assert_int_equal(e->err, 0);
    assert_int_equal(e->code, 42);
    char buf[4];
    assert_int_equal(cp2p__yamux_stream_read(ss, buf, sizeof(buf), 0), CP2P_ECANCELED);
    assert_int_equal(cp2p__yamux_stream_write(ss, "x", 1), CP2P_ECANCELED);
    assert_int_equal(cp2p__yamux_stream_close_write(ss), CP2P_ECANCELED);
    assert_int_equal(cp2p__yamux_get_stats(s)->streams_reset_remote, 1);
    /* Data still in flight for the reset stream is dropped. */
    uint8_t d[CP2P__YAMUX_HDR_LEN + 2];
    frame(d, CP2P__YAMUX_DATA, 0, 1, 2);
    d[12] = d[13] = 'z';
    assert_int_equal(feed(s, d, sizeof(d), 0), (ptrdiff_t)sizeof(d));
    assert_int_equal(cp2p__yamux_get_stats(s)->bytes_discarded, 2);
    cp2p__yamux_stream_release(cs);
    cp2p__yamux_stream_release(ss);

    /* The other direction, on a fresh stream: the server resets, the client hears it. */
    open_pair(c, s, &cs, &ss);
    assert_int_equal(cp2p__yamux_stream_reset(ss, 0), 0);
    pump(c, s, 0);
    collect(c, &l);
    assert_non_null(find(&l, CP2P__YAMUX_EV_STREAM_RESET, 3));
    cp2p__yamux_stream_release(cs);
    cp2p__yamux_stream_release(ss);
    assert_int_equal(cp2p__yamux_num_streams(c), 0);
    assert_int_equal(cp2p__yamux_num_streams(s), 0);
    cp2p__yamux_free(c);
    cp2p__yamux_free(s);
}

/* Release semantics: abortive without our FIN; after it, the core drains the peer's rest. */
static void release_resets_or_drains(void **state)
{
    (void)state;
    cp2p__yamux *c = core(true, NULL), *s = core(false, NULL);
    cp2p__yamux_stream *cs, *ss;
    evlist l;

    open_pair(c, s, &cs, &ss);
    cp2p__yamux_stream_release(cs);
    pump(c, s, 0);
    collect(s, &l);
    assert_non_null(find(&l, CP2P__YAMUX_EV_STREAM_RESET, 1));
    cp2p__yamux_stream_release(ss);

    open_pair(c, s, &cs, &ss);
    assert_int_equal(cp2p__yamux_stream_close_write(cs), 0);
    cp2p__yamux_stream_release(cs); /* our half done: the core keeps it until the peer closes */
    pump(c, s, 0);
    assert_int_equal(cp2p__yamux_num_streams(c), 1);
    static uint8_t big[256 * 1024];
    assert_int_equal(cp2p__yamux_stream_write(ss, big, sizeof(big)), (ptrdiff_t)sizeof(big));
    assert_int_equal(cp2p__yamux_stream_write(ss, big, 1), 0); /* window spent */
    pump(c, s, 0);
    /* The released stream discarded the bytes and gave the window back. */
    collect(s, &l);
    assert_non_null(find(&l, CP2P__YAMUX_EV_STREAM_WRITABLE, 3));
    assert_true(cp2p__yamux_get_stats(c)->bytes_discarded >= sizeof(big));
    assert_int_equal(cp2p__yamux_stream_close_write(ss), 0);
    pump(c, s, 0);
    assert_int_equal(cp2p__yamux_num_streams(c), 0);
    collect(c, &l);
    assert_int_equal(l.n, 0); /* nobody to tell */
    cp2p__yamux_stream_release(ss);
    cp2p__yamux_free(c);
    cp2p__yamux_free(s);
}

/* ---- flow control ---- */

static void window_exhaustion_stops_and_consuming_resumes(void **state)
{
    (void)state;
    cp2p__yamux *c = core(true, NULL), *s = core(false, NULL);
    cp2p__yamux_stream *cs, *ss;
    open_pair(c, s, &cs, &ss);
    evlist l;
    static uint8_t buf[300 * 1024];

    assert_int_equal(cp2p__yamux_stream_write(cs, buf, sizeof(buf)), 256 * KIB);
    assert_int_equal(cp2p__yamux_stream_write(cs, buf, 1), 0);
    assert_true(cp2p__yamux_get_stats(c)->window_stalls >= 1);
    pump(c, s, 0);
    cp2p__yamux_stream_info info;
    cp2p__yamux_stream_get_info(ss, &info);
    assert_int_equal(info.buffered, 256 * KIB);
    assert_int_equal(info.recv_credit, 0);
    /* Nothing consumed: no window update, the sender stays stopped. */
    assert_int_equal(cp2p__yamux_get_stats(s)->window_updates_out, 0);
    collect(c, &l);
    assert_null(find(&l, CP2P__YAMUX_EV_STREAM_WRITABLE, 1));
    assert_int_equal(cp2p__yamux_stream_write(cs, buf, 1), 0);
    /* Consuming less than a quarter of the window sends nothing yet... */
    assert_int_equal(cp2p__yamux_stream_consumed(ss, 60 * KIB, 0), 0);
    assert_int_equal(cp2p__yamux_out_pending(s), 0);
    /* ...a quarter does, and the sender may continue with exactly that much. */
    assert_int_equal(cp2p__yamux_stream_consumed(ss, 4 * KIB, 0), 0);
    pump(c, s, 0);
    collect(c, &l);
    assert_non_null(find(&l, CP2P__YAMUX_EV_STREAM_WRITABLE, 1));
    assert_int_equal(cp2p__yamux_stream_write(cs, buf, sizeof(buf)), 64 * KIB);
    pump(c, s, 0);
    cp2p__yamux_stream_get_info(ss, &info);
    assert_int_equal(info.buffered, 256 * KIB);
    assert_int_equal(info.recv_window, 256 * KIB);
    cp2p__yamux_stream_release(cs);
    cp2p__yamux_stream_release(ss);
    cp2p__yamux_free(c);
    cp2p__yamux_free(s);
}

/* Regression (found by fuzz_yamux pair mode): accepting or consuming while a Data payload is
 * only partly received must not grant the bytes still on their way a second time. */
static void no_double_grant_mid_body(void **state)
{
    (void)state;
    cp2p__yamux *s = core(false, NULL);
    size_t body = 200 * KIB;
    uint8_t *in = calloc(1, 24 + body);
    frame(in, CP2P__YAMUX_WINDOW_UPDATE, CP2P__YAMUX_SYN, 1, 0);
    frame(in + 12, CP2P__YAMUX_DATA, 0, 1, (uint32_t)body);
    size_t first = 24 + 150 * KIB;
    assert_int_equal(feed(s, in, first, 0), (ptrdiff_t)first);
    evlist l;
    collect(s, &l);
    cp2p__yamux_stream *ss = l.ev[0].stream;
    assert_int_equal(cp2p__yamux_stream_accept(ss), 0);
    assert_int_equal(cp2p__yamux_stream_consumed(ss, 10 * KIB, 0), 0);
    uint8_t out[64];
    assert_int_equal(take_out(s, out, sizeof(out)), 12);
    static const uint8_t ack0[] = {0, 1, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0}; /* ACK, +0 */
    assert_memory_equal(out, ack0, 12);
    assert_int_equal(feed(s, in + first, 24 + body - first, 0), (ptrdiff_t)(24 + body - first));
    cp2p__yamux_stream_info info;
    cp2p__yamux_stream_get_info(ss, &info);
    assert_int_equal(info.buffered + info.recv_credit + 10 * KIB, info.recv_window);
    cp2p__yamux_stream_release(ss);
    cp2p__yamux_free(s);
    free(in);
}

static void larger_initial_window_goes_in_syn(void **state)
{
    (void)state;
    cp2p__yamux_config cfg;
    cp2p__yamux_config_default(&cfg);
    cfg.initial_window = 1 * MIB;
    cp2p__yamux *c = core(true, &cfg), *s = core(false, NULL);
    cp2p__yamux_stream *cs;
    assert_int_equal(cp2p__yamux_stream_open(c, NULL, &cs), 0);
    uint8_t out[32];
    assert_int_equal(take_out(c, out, sizeof(out)), 12);
    static const uint8_t syn[] = {0, 1, 0, 1, 0, 0, 0, 1, 0, 0x0c, 0, 0}; /* +768 KiB */
    assert_memory_equal(out, syn, 12);
    assert_int_equal(feed(s, out, 12, 0), 12);
    evlist l;
    collect(s, &l);
    cp2p__yamux_stream_info info;
    cp2p__yamux_stream_get_info(l.ev[0].stream, &info);
    assert_int_equal(info.send_window, 1 * MIB);
    cp2p__yamux_stream_release(l.ev[0].stream);
    cp2p__yamux_stream_release(cs);
    cp2p__yamux_free(c);
    cp2p__yamux_free(s);
}

static void small_writes_coalesce_and_iovec_contract(void **state)
{
    (void)state;
    cp2p__yamux *c = core(true, NULL);
    cp2p__yamux_stream *cs;
    assert_int_equal(cp2p__yamux_stream_open(c, NULL, &cs), 0);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(cp2p__yamux_stream_write(cs, "a", 1), 1);
    }
    cp2p_slice iov[8];
    assert_int_equal(cp2p__yamux_outv(c, iov, 8), 2);
    assert_int_equal(iov[0].len, 12);
    assert_int_equal(iov[1].len, 22); /* one Data frame of 10 bytes */
    static const uint8_t dhdr[] = {0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 10};
    assert_memory_equal(iov[1].ptr, dhdr, 12);
    assert_int_equal(cp2p__yamux_out_done(c, 35), CP2P_EINVAL);
    assert_int_equal(cp2p__yamux_out_done(c, 5), 0);
    /* Handed-out bytes are frozen: new writes and priority frames go after them. */
    assert_int_equal(cp2p__yamux_stream_write(cs, "b", 1), 1);
    assert_int_equal(cp2p__yamux_ping(c, 0), 0);
    assert_int_equal(cp2p__yamux_outv(c, iov, 8), 4);
    assert_int_equal(iov[0].len, 7);
    assert_int_equal(iov[1].len, 22);
    assert_int_equal(iov[2].len, 12); /* the ping, ahead of... */
    assert_int_equal(iov[3].len, 13); /* ...the Data frame not handed out before */
    assert_int_equal(((const uint8_t *)iov[2].ptr)[1], CP2P__YAMUX_PING);
    assert_int_equal(cp2p__yamux_out_pending(c), 7 + 22 + 12 + 13);
    assert_int_equal(cp2p__yamux_out_done(c, 7 + 22 + 12 + 13), 0);
    assert_int_equal(cp2p__yamux_out_pending(c), 0);
    assert_int_equal(cp2p__yamux_outv(c, iov, 8), 0);
    cp2p__yamux_stream_release(cs);
    cp2p__yamux_free(c);
}

/* Headers of the frames in out[0..n) (whole frames), in wire order. */
static size_t frame_headers(const uint8_t *out, size_t n, cp2p__yamux_hdr *h, size_t max)
{
    size_t k = 0, off = 0;
    while (off < n && k < max) {
        const char *why = NULL;
        assert_int_equal(cp2p__yamux_hdr_decode(&h[k], out + off, n - off, UINT32_MAX, &why),
                         CP2P__YAMUX_HDR_LEN);
        off += CP2P__YAMUX_HDR_LEN + (h[k].type == CP2P__YAMUX_DATA ? h[k].length : 0);
        k++;
    }
    assert_int_equal(off, n);
    return k;
}

/* RSTs and error GoAways go ahead of queued data, except a RST ahead of its own stream's SYN;
 * a normal GoAway and FINs keep their place. The peer core accepts every resulting order. */
static void rst_overtakes_data_but_not_its_syn(void **state)
{
    (void)state;
    cp2p__yamux *c = core(true, NULL), *s = core(false, NULL);
    static uint8_t out[1024 * 1024];
    static uint8_t bulk[100 * 1024];
    cp2p__yamux_hdr h[64];
    evlist l;

    /* 1. SYN not yet written: the RST stays behind the SYN (and the stream's data). */
    cp2p__yamux_stream *c1;
    assert_int_equal(cp2p__yamux_stream_open(c, NULL, &c1), 0);
    assert_int_equal(cp2p__yamux_stream_write(c1, "abc", 3), 3);
    assert_int_equal(cp2p__yamux_stream_reset(c1, 0), 0);
    size_t n = take_out(c, out, sizeof(out));
    size_t k = frame_headers(out, n, h, 64);
    assert_int_equal(k, 3);
    assert_true(h[0].flags & CP2P__YAMUX_SYN);
    assert_int_equal(h[1].type, CP2P__YAMUX_DATA);
    assert_true(h[2].flags & CP2P__YAMUX_RST);
    assert_int_equal(feed(s, out, n, 0), (ptrdiff_t)n);
    assert_false(cp2p__yamux_closed(s)); /* SYN, data, RST: a stream opened then reset */
    collect(s, &l);
    assert_null(find(&l, CP2P__YAMUX_EV_SESSION_ERROR, 0));
    for (size_t i = 0; i < l.n; i++) {
        if (l.ev[i].type == CP2P__YAMUX_EV_STREAM_OPENED) {
            cp2p__yamux_stream_release(l.ev[i].stream);
        }
    }
    cp2p__yamux_stream_release(c1);

    /* 2. An acknowledged stream with 100 KiB queued: its RST goes first, the peer drops the
     * data that follows as frames for a closed stream. */
    cp2p__yamux_stream *c2, *s2;
    open_pair(c, s, &c2, &s2);
    (void)take_out(s, out, sizeof(out));
    assert_int_equal(cp2p__yamux_stream_write(c2, bulk, sizeof(bulk)), (ptrdiff_t)sizeof(bulk));
    assert_int_equal(cp2p__yamux_stream_reset(c2, 7), 0);
    n = take_out(c, out, sizeof(out));
    k = frame_headers(out, n, h, 64);
    assert_true(k >= 3);
    assert_true(h[0].flags & CP2P__YAMUX_RST);
    assert_int_equal(h[0].stream_id, cp2p__yamux_stream_id(c2));
    uint64_t discarded = cp2p__yamux_get_stats(s)->frames_discarded;
    assert_int_equal(feed(s, out, n, 0), (ptrdiff_t)n);
    collect(s, &l);
    const cp2p__yamux_event *e = find(&l, CP2P__YAMUX_EV_STREAM_RESET, cp2p__yamux_stream_id(c2));
    assert_non_null(e);
    assert_int_equal(e->code, 7);
    assert_true(cp2p__yamux_get_stats(s)->frames_discarded > discarded);
    assert_false(cp2p__yamux_closed(s));
    cp2p__yamux_stream_release(c2);
    cp2p__yamux_stream_release(s2);

    /* 3. SYN written but not yet acknowledged: the RST may overtake the data. */
    cp2p__yamux_stream *c3;
    assert_int_equal(cp2p__yamux_stream_open(c, NULL, &c3), 0);
    n = take_out(c, out, sizeof(out));
    assert_int_equal(feed(s, out, n, 0), (ptrdiff_t)n);
    assert_int_equal(cp2p__yamux_stream_write(c3, bulk, 1000), 1000);
    assert_int_equal(cp2p__yamux_stream_reset(c3, 0), 0);
    n = take_out(c, out, sizeof(out));
    k = frame_headers(out, n, h, 64);
    assert_int_equal(k, 2);
    assert_true(h[0].flags & CP2P__YAMUX_RST);
    assert_int_equal(h[1].type, CP2P__YAMUX_DATA);
    assert_int_equal(feed(s, out, n, 0), (ptrdiff_t)n);
    assert_false(cp2p__yamux_closed(s));
    collect(s, &l);
    for (size_t i = 0; i < l.n; i++) {
        if (l.ev[i].type == CP2P__YAMUX_EV_STREAM_OPENED) {
            cp2p__yamux_stream_release(l.ev[i].stream);
        }
    }
    cp2p__yamux_stream_release(c3);

    /* 4. The peer's stream: our RST goes ahead of our data and of our FIN on it. */
    cp2p__yamux_stream *c4, *s4;
    open_pair(c, s, &c4, &s4);
    (void)take_out(s, out, sizeof(out));
    assert_int_equal(cp2p__yamux_stream_write(s4, bulk, 5000), 5000);
    assert_int_equal(cp2p__yamux_stream_close_write(s4), 0);
    assert_int_equal(cp2p__yamux_stream_reset(s4, 0), 0);
    n = take_out(s, out, sizeof(out));
    k = frame_headers(out, n, h, 64);
    assert_int_equal(k, 3);
    assert_true(h[0].flags & CP2P__YAMUX_RST);
    assert_int_equal(h[1].type, CP2P__YAMUX_DATA);
    assert_true(h[2].flags & CP2P__YAMUX_FIN);
    assert_int_equal(feed(c, out, n, 0), (ptrdiff_t)n);
    assert_false(cp2p__yamux_closed(c));
    collect(c, &l);
    assert_non_null(find(&l, CP2P__YAMUX_EV_STREAM_RESET, cp2p__yamux_stream_id(c4)));
    cp2p__yamux_stream_release(c4);
    cp2p__yamux_stream_release(s4);

    /* 5. A normal GoAway keeps its place after queued data and FIN; an error GoAway jumps. */
    cp2p__yamux_stream *c5, *s5;
    open_pair(c, s, &c5, &s5);
    (void)take_out(s, out, sizeof(out));
    assert_int_equal(cp2p__yamux_stream_write(c5, "last", 4), 4);
    assert_int_equal(cp2p__yamux_stream_close_write(c5), 0);
    assert_int_equal(cp2p__yamux_goaway(c, CP2P__YAMUX_GOAWAY_NORMAL), 0);
    n = take_out(c, out, sizeof(out));
    k = frame_headers(out, n, h, 64);
    assert_int_equal(k, 3);
    assert_int_equal(h[0].type, CP2P__YAMUX_DATA);
    assert_true(h[1].flags & CP2P__YAMUX_FIN);
    assert_int_equal(h[2].type, CP2P__YAMUX_GO_AWAY);
    assert_int_equal(cp2p__yamux_stream_write(s5, "x", 1), 1);
    assert_int_equal(cp2p__yamux_goaway(s, CP2P__YAMUX_GOAWAY_INTERNAL_ERR), 0);
    n = take_out(s, out, sizeof(out));
    k = frame_headers(out, n, h, 64);
    assert_int_equal(k, 2);
    assert_int_equal(h[0].type, CP2P__YAMUX_GO_AWAY);
    assert_int_equal(h[0].length, CP2P__YAMUX_GOAWAY_INTERNAL_ERR);
    assert_int_equal(h[1].type, CP2P__YAMUX_DATA);
    cp2p__yamux_stream_release(c5);
    cp2p__yamux_stream_release(s5);
    cp2p__yamux_free(c);
    cp2p__yamux_free(s);
}

/* A stream blocked by its window is woken by the window update even while the session's output
 * is full of another stream's data: a binding that keeps that other stream writing would
 * otherwise never let the output drain to half, and the blocked stream would starve. */
static void window_update_wakes_writer_while_output_full(void **state)
{
    (void)state;
    cp2p__yamux_config cfg;
    cp2p__yamux_config_default(&cfg);
    cfg.max_out_buffered = 100 * KIB;
    cp2p__yamux *c = core(true, &cfg), *s = core(false, NULL);
    cp2p__yamux_stream *c1, *s1, *c3, *s3;
    open_pair(c, s, &c1, &s1);
    open_pair(c, s, &c3, &s3);
    static uint8_t buf[400 * 1024];
    /* Stream 1 uses up its window (256 KiB), draining the output as it goes. */
    size_t total = 0;
    while (total < 256 * KIB) {
        ptrdiff_t n = cp2p__yamux_stream_write(c1, buf, 256 * KIB + 1 - total);
        assert_true(n > 0);
        total += (size_t)n;
        (void)flush_into(c, s, 0);
    }
    assert_int_equal(cp2p__yamux_stream_write(c1, buf, 1), 0);
    /* Stream 3 fills the output. */
    uint64_t stalls = cp2p__yamux_get_stats(c)->out_stalls;
    assert_true(cp2p__yamux_stream_write(c3, buf, 200 * KIB) < (ptrdiff_t)(200 * KIB));
    assert_int_equal(cp2p__yamux_get_stats(c)->out_stalls, stalls + 1);
    evlist l;
    collect(c, &l);
    collect(s, &l);
    static uint8_t rd[256 * 1024];
    assert_int_equal(cp2p__yamux_stream_read(s1, rd, sizeof(rd), 0), 256 * KIB);
    (void)flush_into(s, c, 0); /* the window update for stream 1 */
    collect(c, &l);
    assert_non_null(find(&l, CP2P__YAMUX_EV_STREAM_WRITABLE, cp2p__yamux_stream_id(c1)));
    assert_null(find(&l, CP2P__YAMUX_EV_STREAM_WRITABLE, cp2p__yamux_stream_id(c3)));
    cp2p__yamux_stream_release(c1);
    cp2p__yamux_stream_release(s1);
    cp2p__yamux_stream_release(c3);
    cp2p__yamux_stream_release(s3);
    cp2p__yamux_free(c);
    cp2p__yamux_free(s);
}

static void output_cap_stalls_writers_until_drained(void **state)
{
    (void)state;
    cp2p__yamux_config cfg;
    cp2p__yamux_config_default(&cfg);
    cfg.max_out_buffered = 100 * KIB;
    cp2p__yamux *c = core(true, &cfg), *s = core(false, NULL);
    cp2p__yamux_stream *cs, *ss;
    open_pair(c, s, &cs, &ss);
    static uint8_t buf[200 * 1024];
    assert_int_equal(cp2p__yamux_stream_write(cs, buf, sizeof(buf)), 100 * KIB);
    assert_int_equal(cp2p__yamux_get_stats(c)->out_stalls, 1);
    evlist l;
    collect(c, &l);
    assert_int_equal(l.n, 0);
    pump(c, s, 0);
    collect(c, &l);
    assert_non_null(find(&l, CP2P__YAMUX_EV_STREAM_WRITABLE, 1));
    cp2p__yamux_stream_release(cs);
    cp2p__yamux_stream_release(ss);
    cp2p__yamux_free(c);
    cp2p__yamux_free(s);
}

/* ---- virtual-time link ---- */

typedef struct {
    uint64_t at;
    size_t len;
    uint8_t *data;
} seg;

typedef struct {
    seg *q;
    size_t head, n, cap;
    uint64_t delay_ms, bytes_per_ms, free_us;
} vlink;

static void vlink_push(vlink *l, uint64_t now, const uint8_t *p, size_t n)
{
    if (l->head + l->n == l->cap) {
        if (l->head > 0) {
            memmove(l->q, l->q + l->head, l->n * sizeof(seg));
            l->head = 0;
        } else {
            l->cap = l->cap ? l->cap * 2 : 256;
            l->q = realloc(l->q, l->cap * sizeof(seg));
            assert_non_null(l->q);
        }
    }
    uint64_t start = now * 1000 > l->free_us ? now * 1000 : l->free_us;
    l->free_us = start + (uint64_t)n * 1000 / l->bytes_per_ms;
    seg *s = &l->q[l->head + l->n++];
    s->at = (l->free_us + 999) / 1000 + l->delay_ms;
    s->len = n;
    s->data = malloc(n);
    memcpy(s->data, p, n);
}

static void vlink_free(vlink *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->q[l->head + i].data);
    }
    free(l->q);
}

static void send_all(cp2p__yamux *y, vlink *l, uint64_t now)
{
    for (;;) {
        cp2p_slice iov[64];
        size_t n = cp2p__yamux_outv(y, iov, 64);
        if (n == 0) {
            return;
        }
        size_t sum = 0;
        for (size_t i = 0; i < n; i++) {
            vlink_push(l, now, iov[i].ptr, iov[i].len);
            sum += iov[i].len;
        }
        assert_int_equal(cp2p__yamux_out_done(y, sum), 0);
    }
}

static void deliver(vlink *l, cp2p__yamux *to, uint64_t now)
{
    while (l->n > 0 && l->q[l->head].at <= now) {
        seg *s = &l->q[l->head];
        assert_int_equal(feed(to, s->data, s->len, now), (ptrdiff_t)s->len);
        free(s->data);
        l->head++;
        l->n--;
    }
}

typedef struct {
    uint64_t sent, consumed;
    uint64_t first_over_512k_ms, reached_max_ms;
    uint64_t consumed_at_mark;
    uint32_t final_window;
    uint64_t max_buffered_over_window;
    uint64_t growth_denied;
} sim_result;

/* One bulk transfer client -> server over a link with `delay_ms` each way. Every `period_ms`
 * the reader consumes up to `amount` bytes (SIZE_MAX: everything buffered). */
static void run_transfer_cfg(const cp2p__yamux_config *scfg, bool idle_stream, uint64_t delay_ms,
                             uint64_t period_ms, size_t amount, uint64_t duration_ms,
                             uint64_t mark_ms, sim_result *res)
{
    cp2p__yamux *c = core(true, NULL), *s = core(false, scfg);
    vlink ab = {.delay_ms = delay_ms, .bytes_per_ms = 1024 * 1024};
    vlink ba = {.delay_ms = delay_ms, .bytes_per_ms = 1024 * 1024};
    static uint8_t chunk[64 * 1024];
    cp2p__yamux_stream *cs, *ss = NULL;
    memset(res, 0, sizeof(*res));
    assert_int_equal(cp2p__yamux_stream_open(c, NULL, &cs), 0);
    cp2p__yamux_stream *idle_c = NULL, *idle_s = NULL;
    if (idle_stream) { /* a second stream that holds its window but carries nothing */
        assert_int_equal(cp2p__yamux_stream_open(c, NULL, &idle_c), 0);
    }

    for (uint64_t now = 0; now <= duration_ms; now++) {
        for (;;) {
            ptrdiff_t w = cp2p__yamux_stream_write(cs, chunk, sizeof(chunk));
            assert_true(w >= 0);
            res->sent += (uint64_t)w;
            if ((size_t)w < sizeof(chunk)) {
                break;
            }
        }
        send_all(c, &ab, now);
        deliver(&ab, s, now);
        cp2p__yamux_event ev;
        while (cp2p__yamux_next_event(s, &ev)) {
            if (ev.type == CP2P__YAMUX_EV_STREAM_OPENED) {
                assert_int_equal(cp2p__yamux_stream_accept(ev.stream), 0);
                if (ev.stream_id == 1) {
                    ss = ev.stream;
                } else {
                    idle_s = ev.stream;
                }
            }
        }
        if (ss != NULL) {
            cp2p__yamux_stream_info info;
            cp2p__yamux_stream_get_info(ss, &info);
            if (info.buffered > info.recv_window) {
                res->max_buffered_over_window++;
            }
            size_t budget = now % period_ms == 0 ? amount : 0;
            while (budget > 0) {
                cp2p_slice sl[2];
                size_t nsl = cp2p__yamux_stream_peek(ss, sl);
                if (nsl == 0) {
                    break;
                }
                size_t k = sl[0].len < budget ? sl[0].len : budget;
                assert_int_equal(cp2p__yamux_stream_consumed(ss, k, now), 0);
                res->consumed += k;
                budget -= k;
            }
            cp2p__yamux_stream_get_info(ss, &info);
            if (info.recv_window > 512 * KIB && res->first_over_512k_ms == 0) {
                res->first_over_512k_ms = now;
            }
            if (info.recv_window == CP2P_YAMUX_MAX_WINDOW && res->reached_max_ms == 0) {
                res->reached_max_ms = now;
            }
            res->final_window = info.recv_window;
        }
        if (now == mark_ms) {
            res->consumed_at_mark = res->consumed;
        }
        send_all(s, &ba, now);
        deliver(&ba, c, now);
        while (cp2p__yamux_next_event(c, &ev)) {
        }
    }
    cp2p__yamux_stream_info ci;
    cp2p__yamux_stream_get_info(cs, &ci);
    /* Never more in flight plus buffered than the windows granted. */
    assert_true(res->sent <= res->consumed + res->final_window);
    cp2p__yamux_stream_release(cs);
    cp2p__yamux_stream_release(ss);
    cp2p__yamux_stream_release(idle_c);
    cp2p__yamux_stream_release(idle_s);
    res->growth_denied = cp2p__yamux_get_stats(s)->window_growth_denied;
    cp2p__yamux_free(c);
    cp2p__yamux_free(s);
    vlink_free(&ab);
    vlink_free(&ba);
}

static void run_transfer(uint64_t delay_ms, uint64_t period_ms, size_t amount,
                         uint64_t duration_ms, uint64_t mark_ms, sim_result *res)
{
    run_transfer_cfg(NULL, false, delay_ms, period_ms, amount, duration_ms, mark_ms, res);
}

/* A reader that keeps up, 50 ms each way: the window must pass 512 KiB (where go-yamux's
 * auto-tuning stalls, go-yamux#136) and reach the 16 MiB maximum, and the transfer must then
 * run near max_window per RTT. */
static void autotune_grows_to_max_when_reader_keeps_up(void **state)
{
    (void)state;
    sim_result r;
    run_transfer(50, 1, SIZE_MAX, 4000, 3000, &r);
    print_message("autotune: >512KiB at %llu ms, 16MiB at %llu ms, %llu MiB moved\n",
                  (unsigned long long)r.first_over_512k_ms, (unsigned long long)r.reached_max_ms,
                  (unsigned long long)(r.consumed / MIB));
    assert_int_equal(r.max_buffered_over_window, 0);
    assert_true(r.first_over_512k_ms > 0);
    assert_true(r.reached_max_ms > 0);
    assert_true(r.reached_max_ms < 3000);
    assert_int_equal(r.final_window, CP2P_YAMUX_MAX_WINDOW);
    /* Last second: at 16 MiB per 100 ms RTT the ideal is 160 MiB; demand at least half. */
    assert_true(r.consumed - r.consumed_at_mark >= 80ull * MIB);
}

/* A reader consuming 8 KiB every 10 ms (800 KB/s, 80 KB per RTT): the window never grows, the
 * sender is held back by it, and nothing is buffered beyond it. */
static void autotune_no_growth_for_slow_reader(void **state)
{
    (void)state;
    sim_result r;
    run_transfer(50, 10, 8 * KIB, 3000, 3000, &r);
    assert_int_equal(r.final_window, 256 * KIB);
    assert_int_equal(r.first_over_512k_ms, 0);
    assert_int_equal(r.max_buffered_over_window, 0);
    assert_true(r.consumed <= 301ull * 8 * KIB);
    assert_true(r.sent <= r.consumed + 256 * KIB);
}

/* A reader that drains everything but only once a second: it keeps up on average with what one
 * window per second allows, so the window has no reason to grow. */
static void autotune_no_growth_for_bursty_reader(void **state)
{
    (void)state;
    sim_result r;
    run_transfer(50, 1000, SIZE_MAX, 5000, 5000, &r);
    assert_int_equal(r.final_window, 256 * KIB);
    assert_int_equal(r.max_buffered_over_window, 0);
    assert_true(r.consumed >= 4ull * 256 * KIB);
}

/* The session cap bounds the sum of windows: with 1 MiB for the session and a second stream
 * holding its 256 KiB, the busy stream stops at 512 KiB. */
static void autotune_respects_session_cap(void **state)
{
    (void)state;
    cp2p__yamux_config cfg;
    cp2p__yamux_config_default(&cfg);
    cfg.max_window = 1 * MIB;
    cfg.max_session_recv = 1 * MIB;
    sim_result r;
    run_transfer_cfg(&cfg, true, 50, 1, SIZE_MAX, 2000, 2000, &r);
    assert_int_equal(r.final_window, 512 * KIB);
    assert_true(r.growth_denied > 0);
    assert_int_equal(r.max_buffered_over_window, 0);
}

/* The receive ring wraps and then grows with wrapped content; bytes come out in order. */
static void receive_ring_wraps_and_grows(void **state)
{
    (void)state;
    cp2p__yamux *c = core(true, NULL), *s = core(false, NULL);
    cp2p__yamux_stream *cs, *ss;
    open_pair(c, s, &cs, &ss);
    uint8_t msg[7000], got[7000];
    for (size_t i = 0; i < sizeof(msg); i++) {
        msg[i] = (uint8_t)(i * 13 + 1);
    }
    size_t w = 0, r = 0;
    static const size_t writes[] = {3000, 2000, 2000};
    static const size_t reads[] = {2000, 0, 5000};
    for (size_t k = 0; k < 3; k++) {
        assert_int_equal(cp2p__yamux_stream_write(cs, msg + w, writes[k]), (ptrdiff_t)writes[k]);
        w += writes[k];
        pump(c, s, 0);
        if (k == 1) {
            cp2p_slice sl[2];
            assert_int_equal(cp2p__yamux_stream_peek(ss, sl), 2); /* wrapped */
        }
        if (reads[k] > 0) {
            assert_int_equal(cp2p__yamux_stream_read(ss, got + r, reads[k], 0), (ptrdiff_t)reads[k]);
            r += reads[k];
        }
    }
    /* The third write needs 5000 bytes in a wrapped 4 KiB ring: it grows, linearizing. */
    assert_int_equal(r, 7000);
    assert_memory_equal(got, msg, sizeof(msg));
    cp2p__yamux_stream_release(cs);
    cp2p__yamux_stream_release(ss);
    cp2p__yamux_free(c);
    cp2p__yamux_free(s);
}

static void misc_api(void **state)
{
    (void)state;
    cp2p__yamux *c = core(true, NULL), *s = core(false, NULL);
    uint64_t rtt;
    assert_false(cp2p__yamux_rtt(c, &rtt));
    cp2p_slice one;
    assert_int_equal(cp2p__yamux_out(c, &one), 0);
    assert_null(one.ptr);
    cp2p__yamux_stream *cs;
    assert_int_equal(cp2p__yamux_stream_open(c, NULL, &cs), 0);
    int tag;
    cp2p__yamux_stream_set_user(cs, &tag);
    assert_ptr_equal(cp2p__yamux_stream_user(cs), &tag);
    assert_int_equal(cp2p__yamux_stream_write(cs, "", 0), 0);
    assert_int_equal(cp2p__yamux_out(c, &one), 1);
    assert_int_equal(one.len, 12);
    assert_int_equal(feed(s, one.ptr, one.len, 0), 12);
    assert_int_equal(cp2p__yamux_out_done(c, 12), 0);
    /* close_write on a stream not yet accepted accepts it: ACK|FIN in one frame. */
    evlist l;
    collect(s, &l);
    cp2p__yamux_stream *ss = l.ev[0].stream;
    assert_int_equal(cp2p__yamux_stream_close_write(ss), 0);
    uint8_t out[16];
    assert_int_equal(take_out(s, out, sizeof(out)), 12);
    static const uint8_t ackfin[] = {0, 1, 0, 6, 0, 0, 0, 1, 0, 0, 0, 0};
    assert_memory_equal(out, ackfin, 12);
    assert_int_equal(cp2p__yamux_stream_consumed(ss, 1, 0), CP2P_EINVAL);
    /* After abort nothing is left to send and the session is closed. */
    assert_int_equal(cp2p__yamux_ping(c, 0), 0);
    cp2p__yamux_abort(c, CP2P_EIO);
    cp2p__yamux_abort(c, CP2P_EIO);
    assert_int_equal(cp2p__yamux_out_pending(c), 0);
    assert_int_equal(cp2p__yamux_outv(c, &one, 1), 0);
    assert_true(cp2p__yamux_closed(c));
    assert_int_equal(cp2p__yamux_deadline(c), UINT64_MAX);
    assert_string_equal(cp2p__yamux_perr_name(CP2P__YAMUX_PERR_REUSE), "id_reuse");
    assert_string_equal(cp2p__yamux_perr_name(CP2P__YAMUX_PERR_COUNT), "unknown");
    cp2p__yamux_stream_release(cs);
    cp2p__yamux_stream_release(ss);
    cp2p__yamux_free(c);
    cp2p__yamux_free(s);
}

static void ping_rtt_and_timeout(void **state)
{
    (void)state;
    cp2p__yamux *c = core(true, NULL), *s = core(false, NULL);
    vlink ab = {.delay_ms = 50, .bytes_per_ms = MIB}, ba = {.delay_ms = 50, .bytes_per_ms = MIB};
    assert_int_equal(cp2p__yamux_deadline(c), UINT64_MAX);
    assert_int_equal(cp2p__yamux_ping(c, 1000), 0);
    assert_int_equal(cp2p__yamux_ping(c, 1001), 0); /* one in flight: nothing new sent */
    assert_int_equal(cp2p__yamux_get_stats(c)->pings_sent, 1);
    assert_int_equal(cp2p__yamux_deadline(c), 1000 + CP2P_YAMUX_PING_TIMEOUT_MS);
    cp2p__yamux_event ev;
    bool got = false;
    for (uint64_t now = 1000; now <= 1200 && !got; now++) {
        send_all(c, &ab, now);
        deliver(&ab, s, now);
        send_all(s, &ba, now);
        deliver(&ba, c, now);
        while (cp2p__yamux_next_event(c, &ev)) {
            assert_int_equal(ev.type, CP2P__YAMUX_EV_PING);
            assert_int_equal(ev.err, 0);
            assert_int_equal(ev.rtt_ms, 100);
            assert_int_equal(now, 1100);
            got = true;
        }
    }
    assert_true(got);
    uint64_t rtt = 0;
    assert_true(cp2p__yamux_rtt(c, &rtt));
    assert_int_equal(rtt, 100);
    assert_int_equal(cp2p__yamux_deadline(c), UINT64_MAX);

    /* Ping results nobody takes are coalesced: the latest one stays. */
    for (int k = 0; k < 20; k++) {
        uint64_t t0 = 1300 + (uint64_t)k * 30;
        assert_int_equal(cp2p__yamux_ping(c, t0), 0);
        uint8_t buf[64];
        size_t n = take_out(c, buf, sizeof(buf));
        assert_int_equal(feed(s, buf, n, t0), (ptrdiff_t)n);
        n = take_out(s, buf, sizeof(buf));
        assert_int_equal(feed(c, buf, n, t0 + 1 + (uint64_t)k), (ptrdiff_t)n);
    }
    assert_true(cp2p__yamux_next_event(c, &ev));
    assert_int_equal(ev.type, CP2P__YAMUX_EV_PING);
    assert_int_equal(ev.rtt_ms, 20);
    assert_false(cp2p__yamux_next_event(c, &ev));

    /* A ping nobody answers times out through the deadline. */
    assert_int_equal(cp2p__yamux_ping(c, 2000), 0);
    uint64_t d = cp2p__yamux_deadline(c);
    cp2p__yamux_on_timeout(c, d - 1);
    assert_false(cp2p__yamux_next_event(c, &ev));
    cp2p__yamux_on_timeout(c, d);
    assert_true(cp2p__yamux_next_event(c, &ev));
    assert_int_equal(ev.type, CP2P__YAMUX_EV_PING);
    assert_int_equal(ev.err, CP2P_ETIMEDOUT);
    assert_int_equal(cp2p__yamux_get_stats(c)->ping_timeouts, 1);
    /* A late answer matches nothing and is ignored. */
    uint8_t f[12];
    frame(f, CP2P__YAMUX_PING, CP2P__YAMUX_ACK, 0, 1);
    assert_int_equal(feed(c, f, 12, d + 5), 12);
    assert_int_equal(cp2p__yamux_get_stats(c)->pongs_unmatched, 1);
    cp2p__yamux_free(c);
    cp2p__yamux_free(s);
    vlink_free(&ab);
    vlink_free(&ba);
}

/* ---- protocol errors ---- */

/* Feed `in` to a fresh core; expect `err` and the one counter of `kind`, and a GoAway(code). */
static void expect_session_error(bool client, const uint8_t *in, size_t len, int err,
                                 cp2p__yamux_perr kind)
{
    cp2p__yamux *y = core(client, NULL);
    const char *why = NULL;
    assert_int_equal(cp2p__yamux_recv(y, in, len, 0, &why), err);
    assert_non_null(why);
    assert_int_equal(cp2p__yamux_get_stats(y)->proto_errors[kind], 1);
    assert_true(cp2p__yamux_closed(y));
    uint8_t out[4096];
    size_t n = take_out(y, out, sizeof(out));
    assert_true(n >= 12);
    static const uint8_t goaway[] = {0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    assert_memory_equal(out + n - 12, goaway, 12);
    cp2p__yamux_event ev;
    assert_true(cp2p__yamux_next_event(y, &ev));
    assert_int_equal(ev.type, CP2P__YAMUX_EV_SESSION_ERROR);
    assert_int_equal(ev.err, err);
    assert_string_equal(ev.why, why);
    assert_int_equal(cp2p__yamux_recv(y, in, len, 0, &why), CP2P_ECLOSED);
    cp2p__yamux_free(y);
}

static void bad_version_and_type_are_eproto(void **state)
{
    (void)state;
    uint8_t f[12];
    frame(f, CP2P__YAMUX_PING, CP2P__YAMUX_SYN, 0, 1);
    f[0] = 1;
    expect_session_error(false, f, 12, CP2P_EPROTO, CP2P__YAMUX_PERR_VERSION);
    f[0] = 0;
    f[1] = 4;
    expect_session_error(false, f, 12, CP2P_EPROTO, CP2P__YAMUX_PERR_TYPE);
    frame(f, CP2P__YAMUX_DATA, 0, 0, 0);
    expect_session_error(false, f, 12, CP2P_EPROTO, CP2P__YAMUX_PERR_STREAM_ZERO);
    frame(f, CP2P__YAMUX_PING, CP2P__YAMUX_SYN, 1, 0);
    expect_session_error(false, f, 12, CP2P_EPROTO, CP2P__YAMUX_PERR_STREAM_ZERO);
    frame(f, CP2P__YAMUX_GO_AWAY, 0, 3, 0);
    expect_session_error(false, f, 12, CP2P_EPROTO, CP2P__YAMUX_PERR_STREAM_ZERO);
    frame(f, CP2P__YAMUX_PING, CP2P__YAMUX_SYN | CP2P__YAMUX_ACK, 0, 0);
    expect_session_error(false, f, 12, CP2P_EPROTO, CP2P__YAMUX_PERR_PING_FLAGS);
    frame(f, CP2P__YAMUX_PING, 0, 0, 0);
    expect_session_error(false, f, 12, CP2P_EPROTO, CP2P__YAMUX_PERR_PING_FLAGS);
}

static void data_beyond_window_is_eproto(void **state)
{
    (void)state;
    size_t len = 12 + 12 + 256 * KIB + 1;
    uint8_t *in = calloc(1, len);
    frame(in, CP2P__YAMUX_WINDOW_UPDATE, CP2P__YAMUX_SYN, 1, 0);
    frame(in + 12, CP2P__YAMUX_DATA, 0, 1, 256 * KIB + 1);
    expect_session_error(false, in, len, CP2P_EPROTO, CP2P__YAMUX_PERR_WINDOW);
    /* The header alone is enough: the check comes before the body. */
    expect_session_error(false, in, 24, CP2P_EPROTO, CP2P__YAMUX_PERR_WINDOW);
    /* Exactly the window is fine; one more byte in a second frame is not. */
    frame(in + 12, CP2P__YAMUX_DATA, 0, 1, 256 * KIB);
    cp2p__yamux *y = core(false, NULL);
    assert_int_equal(feed(y, in, 24 + 256 * KIB, 0), (ptrdiff_t)(24 + 256 * KIB));
    uint8_t f[13];
    frame(f, CP2P__YAMUX_DATA, 0, 1, 1);
    assert_int_equal(feed(y, f, 13, 0), CP2P_EPROTO);
    cp2p__yamux_free(y);
    /* Larger than any window we grant: rejected by the header decoder. */
    frame(in, CP2P__YAMUX_DATA, CP2P__YAMUX_SYN, 1, CP2P_YAMUX_MAX_WINDOW + 1);
    expect_session_error(false, in, 12, CP2P_EPROTO, CP2P__YAMUX_PERR_WINDOW);
    free(in);
}

static void data_after_fin_is_eproto(void **state)
{
    (void)state;
    uint8_t in[40];
    size_t n = frame(in, CP2P__YAMUX_WINDOW_UPDATE, CP2P__YAMUX_SYN | CP2P__YAMUX_FIN, 1, 0);
    n += frame(in + n, CP2P__YAMUX_DATA, 0, 1, 1);
    in[n++] = 'x';
    expect_session_error(false, in, n, CP2P_EPROTO, CP2P__YAMUX_PERR_DATA_AFTER_FIN);
}

static void stream_id_reuse_is_eproto(void **state)
{
    (void)state;
    uint8_t in[64];
    /* Twice while open. */
    size_t n = frame(in, CP2P__YAMUX_WINDOW_UPDATE, CP2P__YAMUX_SYN, 1, 0);
    n += frame(in + n, CP2P__YAMUX_WINDOW_UPDATE, CP2P__YAMUX_SYN, 1, 0);
    expect_session_error(false, in, n, CP2P_EPROTO, CP2P__YAMUX_PERR_REUSE);
    /* Again after the first stream was reset and forgotten. */
    n = frame(in, CP2P__YAMUX_WINDOW_UPDATE, CP2P__YAMUX_SYN | CP2P__YAMUX_RST, 1, 0);
    n += frame(in + n, CP2P__YAMUX_WINDOW_UPDATE, CP2P__YAMUX_SYN, 1, 0);
    expect_session_error(false, in, n, CP2P_EPROTO, CP2P__YAMUX_PERR_REUSE);
    /* Out of order inside the window is fine (go-yamux can reorder concurrent SYNs)... */
    cp2p__yamux *y = core(false, NULL);
    n = frame(in, CP2P__YAMUX_WINDOW_UPDATE, CP2P__YAMUX_SYN, 7, 0);
    n += frame(in + n, CP2P__YAMUX_WINDOW_UPDATE, CP2P__YAMUX_SYN, 3, 0);
    n += frame(in + n, CP2P__YAMUX_WINDOW_UPDATE, CP2P__YAMUX_SYN, 5, 0);
    assert_int_equal(feed(y, in, n, 0), (ptrdiff_t)n);
    assert_int_equal(cp2p__yamux_get_stats(y)->streams_opened_remote, 3);
    /* ...but an ID too far below the newest counts as reuse. */
    n = frame(in, CP2P__YAMUX_WINDOW_UPDATE, CP2P__YAMUX_SYN, 7 + 2 * CP2P_YAMUX_ID_WINDOW, 0);
    n += frame(in + n, CP2P__YAMUX_WINDOW_UPDATE, CP2P__YAMUX_SYN, 1, 0);
    assert_int_equal(feed(y, in, n, 0), CP2P_EPROTO);
    assert_int_equal(cp2p__yamux_get_stats(y)->proto_errors[CP2P__YAMUX_PERR_REUSE], 1);
    cp2p__yamux_free(y);
}

static void wrong_parity_is_eproto(void **state)
{
    (void)state;
    uint8_t f[12];
    frame(f, CP2P__YAMUX_WINDOW_UPDATE, CP2P__YAMUX_SYN, 2, 0); /* server IDs are even */
    expect_session_error(false, f, 12, CP2P_EPROTO, CP2P__YAMUX_PERR_PARITY);
    frame(f, CP2P__YAMUX_DATA, CP2P__YAMUX_SYN, 1, 0); /* client IDs are odd */
    expect_session_error(true, f, 12, CP2P_EPROTO, CP2P__YAMUX_PERR_PARITY);
}

static void frames_for_never_opened_streams_are_eproto(void **state)
{
    (void)state;
    uint8_t f[12];
    frame(f, CP2P__YAMUX_WINDOW_UPDATE, 0, 9, 100); /* the peer never sent SYN for 9 */
    expect_session_error(false, f, 12, CP2P_EPROTO, CP2P__YAMUX_PERR_UNOPENED);
    frame(f, CP2P__YAMUX_DATA, CP2P__YAMUX_ACK, 2, 0); /* we never opened 2 */
    expect_session_error(false, f, 12, CP2P_EPROTO, CP2P__YAMUX_PERR_UNOPENED);
}

static void window_update_overflow_is_eproto(void **state)
{
    (void)state;
    uint8_t in[24];
    size_t n = frame(in, CP2P__YAMUX_WINDOW_UPDATE, CP2P__YAMUX_SYN, 1, 0);
    n += frame(in + n, CP2P__YAMUX_WINDOW_UPDATE, 0, 1, UINT32_MAX);
    expect_session_error(false, in, n, CP2P_EPROTO, CP2P__YAMUX_PERR_SEND_WINDOW);
}

static void session_error_resets_every_stream(void **state)
{
    (void)state;
    cp2p__yamux *c = core(true, NULL), *s = core(false, NULL);
    cp2p__yamux_stream *cs, *ss;
    open_pair(c, s, &cs, &ss);
    uint8_t f[12];
    frame(f, CP2P__YAMUX_PING, CP2P__YAMUX_SYN, 0, 0);
    f[0] = 9;
    assert_int_equal(feed(c, f, 12, 0), CP2P_EPROTO);
    evlist l;
    collect(c, &l);
    assert_int_equal(l.ev[0].type, CP2P__YAMUX_EV_SESSION_ERROR);
    const cp2p__yamux_event *e = find(&l, CP2P__YAMUX_EV_STREAM_RESET, 1);
    assert_non_null(e);
    assert_int_equal(e->err, CP2P_EPROTO);
    assert_int_equal(cp2p__yamux_stream_write(cs, "x", 1), CP2P_ECANCELED);
    assert_int_equal(cp2p__yamux_stream_open(c, NULL, &cs), CP2P_ECLOSED);
    cp2p__yamux_stream *dummy;
    assert_int_equal(cp2p__yamux_stream_open(c, NULL, &dummy), CP2P_ECLOSED);
    assert_int_equal(cp2p__yamux_ping(c, 0), CP2P_ECLOSED);
    /* The peer learns through GoAway(protocol error). */
    pump(c, s, 0);
    collect(s, &l);
    e = find(&l, CP2P__YAMUX_EV_GOAWAY, 0);
    assert_non_null(e);
    assert_int_equal(e->code, CP2P__YAMUX_GOAWAY_PROTO_ERR);
    cp2p__yamux_stream_release(cs);
    cp2p__yamux_stream_release(ss);
    /* The binding reports the connection gone: the server's streams die with it. */
    cp2p__yamux_abort(s, CP2P_EIO);
    collect(s, &l);
    assert_int_equal(l.ev[0].type, CP2P__YAMUX_EV_SESSION_ERROR);
    assert_int_equal(l.ev[0].err, CP2P_EIO);
    cp2p__yamux_free(c);
    cp2p__yamux_free(s);
}

/* ---- limits ---- */

static void too_many_unacked_inbound_streams_are_reset(void **state)
{
    (void)state;
    cp2p__yamux *s = core(false, NULL);
    uint8_t f[12];
    for (uint32_t i = 0; i < 300; i++) {
        frame(f, CP2P__YAMUX_WINDOW_UPDATE, CP2P__YAMUX_SYN, 1 + 2 * i, 0);
        assert_int_equal(feed(s, f, 12, 0), 12);
    }
    assert_int_equal(cp2p__yamux_get_stats(s)->streams_opened_remote,
                     CP2P_YAMUX_MAX_UNACKED_INBOUND);
    assert_int_equal(cp2p__yamux_get_stats(s)->streams_refused, 300 - CP2P_YAMUX_MAX_UNACKED_INBOUND);
    static uint8_t out[64 * 12];
    size_t n = take_out(s, out, sizeof(out));
    assert_int_equal(n, 12 * (300 - CP2P_YAMUX_MAX_UNACKED_INBOUND));
    uint8_t rst[12];
    frame(rst, CP2P__YAMUX_WINDOW_UPDATE, CP2P__YAMUX_RST, 1 + 2 * CP2P_YAMUX_MAX_UNACKED_INBOUND, 0);
    assert_memory_equal(out, rst, 12);
    /* Frames for a refused stream are dropped quietly. */
    frame(f, CP2P__YAMUX_WINDOW_UPDATE, 0, 1 + 2 * 299, 5);
    assert_int_equal(feed(s, f, 12, 0), 12);
    /* Accepting one makes room for one more. */
    cp2p__yamux_event ev;
    assert_true(cp2p__yamux_next_event(s, &ev));
    assert_int_equal(ev.type, CP2P__YAMUX_EV_STREAM_OPENED);
    assert_int_equal(cp2p__yamux_stream_accept(ev.stream), 0);
    frame(f, CP2P__YAMUX_WINDOW_UPDATE, CP2P__YAMUX_SYN, 601, 0);
    assert_int_equal(feed(s, f, 12, 0), 12);
    assert_int_equal(cp2p__yamux_get_stats(s)->streams_opened_remote,
                     CP2P_YAMUX_MAX_UNACKED_INBOUND + 1);
    cp2p__yamux_free(s); /* frees streams the application never released */
}

static void outbound_limits_return_efull(void **state)
{
    (void)state;
    cp2p__yamux_config cfg;
    cp2p__yamux_config_default(&cfg);
    cfg.max_unacked_outbound = 2;
    cfg.max_outbound_streams = 3;
    cp2p__yamux *c = core(true, &cfg), *s = core(false, NULL);
    cp2p__yamux_stream *a, *b, *d, *e;
    assert_int_equal(cp2p__yamux_stream_open(c, NULL, &a), 0);
    assert_int_equal(cp2p__yamux_stream_open(c, NULL, &b), 0);
    assert_int_equal(cp2p__yamux_stream_open(c, NULL, &d), CP2P_EFULL); /* 2 SYNs unanswered */
    pump(c, s, 0);
    evlist l;
    collect(s, &l);
    for (size_t i = 0; i < l.n; i++) {
        assert_int_equal(cp2p__yamux_stream_accept(l.ev[i].stream), 0);
    }
    pump(c, s, 0);
    assert_int_equal(cp2p__yamux_stream_open(c, NULL, &d), 0);
    assert_int_equal(cp2p__yamux_stream_open(c, NULL, &e), CP2P_EFULL); /* 3 alive */
    cp2p__yamux_stream_release(a);
    assert_int_equal(cp2p__yamux_stream_open(c, NULL, &e), 0);
    cp2p__yamux_free(c);
    cp2p__yamux_free(s);
}

static void recv_cap_resets_the_stream_that_overflows(void **state)
{
    (void)state;
    cp2p__yamux_config cfg;
    cp2p__yamux_config_default(&cfg);
    cfg.max_window = 256 * KIB;
    cfg.max_session_recv = 300 * KIB;
    cp2p__yamux *s = core(false, &cfg);
    size_t body = 200 * KIB;
    uint8_t *in = calloc(1, 24 + body);
    frame(in, CP2P__YAMUX_WINDOW_UPDATE, CP2P__YAMUX_SYN, 1, 0);
    frame(in + 12, CP2P__YAMUX_DATA, 0, 1, (uint32_t)body);
    assert_int_equal(feed(s, in, 24 + body, 0), (ptrdiff_t)(24 + body));
    frame(in, CP2P__YAMUX_WINDOW_UPDATE, CP2P__YAMUX_SYN, 3, 0);
    frame(in + 12, CP2P__YAMUX_DATA, 0, 3, (uint32_t)body);
    assert_int_equal(feed(s, in, 24 + body, 0), (ptrdiff_t)(24 + body));
    assert_int_equal(cp2p__yamux_get_stats(s)->recv_cap_resets, 1);
    assert_int_equal(cp2p__yamux_get_stats(s)->bytes_discarded, body);
    uint8_t out[64];
    assert_int_equal(take_out(s, out, sizeof(out)), 12);
    uint8_t rst[12];
    frame(rst, CP2P__YAMUX_WINDOW_UPDATE, CP2P__YAMUX_RST, 3, 0);
    assert_memory_equal(out, rst, 12);
    evlist l;
    assert_false(cp2p__yamux_closed(s)); /* SYN, data, RST: a stream opened then reset */
    collect(s, &l);
    assert_null(find(&l, CP2P__YAMUX_EV_SESSION_ERROR, 0));
    assert_null(find(&l, CP2P__YAMUX_EV_STREAM_OPENED, 3)); /* never surfaced: freed */
    assert_int_equal(cp2p__yamux_num_streams(s), 1);
    cp2p__yamux_free(s);
    free(in);
}

/* ---- GoAway ---- */

static void goaway_stops_new_streams(void **state)
{
    (void)state;
    cp2p__yamux *c = core(true, NULL), *s = core(false, NULL);
    cp2p__yamux_stream *cs, *ss, *x;
    open_pair(c, s, &cs, &ss);
    assert_int_equal(cp2p__yamux_goaway(s, CP2P__YAMUX_GOAWAY_NORMAL), 0);
    assert_int_equal(cp2p__yamux_goaway(s, CP2P__YAMUX_GOAWAY_NORMAL), CP2P_ESTATE);
    assert_int_equal(cp2p__yamux_stream_open(s, NULL, &x), CP2P_ECLOSED);
    pump(c, s, 0);
    evlist l;
    collect(c, &l);
    const cp2p__yamux_event *e = find(&l, CP2P__YAMUX_EV_GOAWAY, 0);
    assert_non_null(e);
    assert_int_equal(e->code, 0);
    assert_int_equal(cp2p__yamux_stream_open(c, NULL, &x), CP2P_ECLOSED);
    /* Existing streams carry on. */
    assert_int_equal(cp2p__yamux_stream_write(cs, "still", 5), 5);
    pump(c, s, 0);
    char buf[8];
    assert_int_equal(cp2p__yamux_stream_read(ss, buf, sizeof(buf), 0), 5);
    /* A SYN arriving after our GoAway is refused with RST. */
    uint8_t f[12];
    frame(f, CP2P__YAMUX_WINDOW_UPDATE, CP2P__YAMUX_SYN, 5, 0);
    assert_int_equal(feed(s, f, 12, 0), 12);
    assert_int_equal(cp2p__yamux_get_stats(s)->streams_refused, 1);
    uint8_t out[16];
    assert_int_equal(take_out(s, out, sizeof(out)), 12);
    uint8_t rst[12];
    frame(rst, CP2P__YAMUX_WINDOW_UPDATE, CP2P__YAMUX_RST, 5, 0);
    assert_memory_equal(out, rst, 12);
    cp2p__yamux_stream_release(cs);
    cp2p__yamux_stream_release(ss);
    cp2p__yamux_free(c);
    cp2p__yamux_free(s);
}

/* ---- budgets ---- */

static void reset_churn_budget(void **state)
{
    (void)state;
    cp2p__yamux *s = core(false, NULL);
    uint8_t f[12];
    ptrdiff_t r = 0;
    uint32_t i;
    for (i = 0; i < 1000 && r >= 0; i++) {
        frame(f, CP2P__YAMUX_WINDOW_UPDATE, CP2P__YAMUX_SYN | CP2P__YAMUX_RST, 1 + 2 * i, 0);
        r = feed(s, f, 12, 0);
    }
    assert_int_equal(r, CP2P_ELIMIT);
    assert_int_equal(i, CP2P_YAMUX_RESET_BURST + 1);
    assert_int_equal(cp2p__yamux_get_stats(s)->proto_errors[CP2P__YAMUX_PERR_RESET_FLOOD], 1);
    assert_int_equal(cp2p__yamux_num_streams(s), 0);
    cp2p__yamux_free(s);
    /* The same churn spread out in time stays within the budget. */
    s = core(false, NULL);
    for (i = 0; i < 2000; i++) {
        frame(f, CP2P__YAMUX_WINDOW_UPDATE, CP2P__YAMUX_SYN | CP2P__YAMUX_RST, 1 + 2 * i, 0);
        assert_int_equal(feed(s, f, 12, (uint64_t)i * 1000 / CP2P_YAMUX_RESET_PER_SEC), 12);
    }
    cp2p__yamux_free(s);
}

static void ping_flood_budget(void **state)
{
    (void)state;
    cp2p__yamux *s = core(false, NULL);
    uint8_t f[12];
    ptrdiff_t r = 0;
    uint32_t i;
    for (i = 0; i < 100 && r >= 0; i++) {
        frame(f, CP2P__YAMUX_PING, CP2P__YAMUX_SYN, 0, i);
        r = feed(s, f, 12, 0);
    }
    assert_int_equal(r, CP2P_ELIMIT);
    assert_int_equal(i, CP2P_YAMUX_PING_BURST + 1);
    assert_int_equal(cp2p__yamux_get_stats(s)->pongs_sent, CP2P_YAMUX_PING_BURST);
    cp2p__yamux_free(s);
    /* Unanswered answers are capped by the pong backlog, pings over time are fine. */
    s = core(false, NULL);
    for (i = 0; i < 200; i++) {
        frame(f, CP2P__YAMUX_PING, CP2P__YAMUX_SYN, 0, i);
        assert_int_equal(feed(s, f, 12, (uint64_t)i * 1000 / CP2P_YAMUX_PING_PER_SEC), 12);
    }
    assert_int_equal(cp2p__yamux_get_stats(s)->pongs_sent, CP2P_YAMUX_MAX_PONG_BACKLOG);
    assert_int_equal(cp2p__yamux_get_stats(s)->pongs_dropped, 200 - CP2P_YAMUX_MAX_PONG_BACKLOG);
    cp2p__yamux_free(s);
}

static void open_and_empty_frame_budgets(void **state)
{
    (void)state;
    cp2p__yamux_config cfg;
    cp2p__yamux_config_default(&cfg);
    cfg.max_inbound_streams = 1;
    cp2p__yamux *s = core(false, &cfg);
    uint8_t f[12];
    ptrdiff_t r = 0;
    uint32_t i;
    for (i = 0; i < 5000 && r >= 0; i++) {
        frame(f, CP2P__YAMUX_WINDOW_UPDATE, CP2P__YAMUX_SYN, 1 + 2 * i, 0);
        r = feed(s, f, 12, 0);
        if (r >= 0) {
            (void)take_out(s, (uint8_t[64]){0}, 64); /* the peer reads our RSTs */
        }
    }
    assert_int_equal(r, CP2P_ELIMIT);
    assert_int_equal(i, 1 + CP2P_YAMUX_REFUSE_BURST + 1);
    assert_int_equal(cp2p__yamux_get_stats(s)->proto_errors[CP2P__YAMUX_PERR_REFUSE_FLOOD], 1);
    cp2p__yamux_free(s);

    s = core(false, NULL);
    frame(f, CP2P__YAMUX_WINDOW_UPDATE, CP2P__YAMUX_SYN, 1, 0);
    assert_int_equal(feed(s, f, 12, 0), 12);
    r = 0;
    for (i = 0; i < 5000 && r >= 0; i++) {
        frame(f, (uint8_t)(i % 2), 0, 1, 0); /* empty Data, empty WindowUpdate */
        r = feed(s, f, 12, 0);
    }
    assert_int_equal(r, CP2P_ELIMIT);
    assert_int_equal(i, CP2P_YAMUX_EMPTY_BURST + 1);
    assert_int_equal(cp2p__yamux_get_stats(s)->proto_errors[CP2P__YAMUX_PERR_EMPTY_FLOOD], 1);
    cp2p__yamux_free(s);
}

/* ---- allocation failures (STYLE.md section 10) ---- */

static long g_allocs;
static void *count_malloc(size_t n)
{
    g_allocs++;
    return malloc(n);
}
static void *count_realloc(void *p, size_t n)
{
    g_allocs++;
    return realloc(p, n);
}

/* gcc's warn_unused_result is not silenced by a (void) cast. */
static void ign(ptrdiff_t r)
{
    (void)r;
}

/* A scenario that tolerates any failure: it must neither crash nor leak (ASan checks). */
static void torture_scenario(void)
{
    cp2p__yamux *c = NULL, *s = NULL;
    cp2p__yamux_stream *cs = NULL;
    static uint8_t data[100 * 1024];
    uint8_t io[512];
    const char *why;
    if (cp2p__yamux_new(NULL, true, &c) != 0 || cp2p__yamux_new(NULL, false, &s) != 0) {
        goto done;
    }
    if (cp2p__yamux_stream_open(c, NULL, &cs) == 0) {
        ign(cp2p__yamux_stream_write(cs, data, sizeof(data)));
        ign(cp2p__yamux_stream_close_write(cs));
    }
    ign(cp2p__yamux_ping(c, 0));
    for (int round = 0; round < 6; round++) {
        cp2p__yamux *from = round % 2 ? s : c, *to = round % 2 ? c : s;
        cp2p_slice iov[8];
        size_t n;
        while ((n = cp2p__yamux_outv(from, iov, 8)) > 0) {
            size_t sum = 0;
            for (size_t i = 0; i < n; i++) {
                ign(cp2p__yamux_recv(to, iov[i].ptr, iov[i].len, 0, &why));
                sum += iov[i].len;
            }
            ign(cp2p__yamux_out_done(from, sum));
        }
        cp2p__yamux_event ev;
        while (cp2p__yamux_next_event(to, &ev)) {
            if (ev.type == CP2P__YAMUX_EV_STREAM_OPENED) {
                ign(cp2p__yamux_stream_accept(ev.stream));
                ign(cp2p__yamux_stream_write(ev.stream, "pong", 4));
                ign(cp2p__yamux_stream_close_write(ev.stream));
            } else if (ev.type == CP2P__YAMUX_EV_STREAM_READABLE) {
                while (cp2p__yamux_stream_read(ev.stream, io, sizeof(io), 0) > 0) {
                }
            } else if (ev.type == CP2P__YAMUX_EV_STREAM_RESET && ev.stream != cs) {
                cp2p__yamux_stream_release(ev.stream);
            }
        }
    }
done:
    cp2p__yamux_free(c);
    cp2p__yamux_free(s);
}

static void allocation_failures_are_survived(void **state)
{
    (void)state;
    assert_int_equal(cp2p_set_allocator(count_malloc, count_realloc, free), 0);
    g_allocs = 0;
    torture_scenario();
    long total = g_allocs;
    assert_true(total > 10);
    for (long n = 1; n <= total; n++) {
        cp2p__alloc_fail_after(n);
        torture_scenario();
    }
    cp2p__alloc_fail_after(0);
    assert_int_equal(cp2p_set_allocator(malloc, realloc, free), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hdr_roundtrip_and_every_truncation),
        cmocka_unit_test(config_is_validated),
        cmocka_unit_test(client_first_frames_byte_exact),
        cmocka_unit_test(every_truncation_needs_more),
        cmocka_unit_test(open_accept_both_directions),
        cmocka_unit_test(data_echo),
        cmocka_unit_test(half_close_both_ways),
        cmocka_unit_test(reset_both_ways),
        cmocka_unit_test(release_resets_or_drains),
        cmocka_unit_test(window_exhaustion_stops_and_consuming_resumes),
        cmocka_unit_test(no_double_grant_mid_body),
        cmocka_unit_test(larger_initial_window_goes_in_syn),
        cmocka_unit_test(small_writes_coalesce_and_iovec_contract),
        cmocka_unit_test(rst_overtakes_data_but_not_its_syn),
        cmocka_unit_test(window_update_wakes_writer_while_output_full),
        cmocka_unit_test(output_cap_stalls_writers_until_drained),
        cmocka_unit_test(autotune_grows_to_max_when_reader_keeps_up),
        cmocka_unit_test(autotune_no_growth_for_slow_reader),
        cmocka_unit_test(autotune_no_growth_for_bursty_reader),
        cmocka_unit_test(autotune_respects_session_cap),
        cmocka_unit_test(receive_ring_wraps_and_grows),
        cmocka_unit_test(misc_api),
        cmocka_unit_test(ping_rtt_and_timeout),
        cmocka_unit_test(bad_version_and_type_are_eproto),
        cmocka_unit_test(data_beyond_window_is_eproto),
        cmocka_unit_test(data_after_fin_is_eproto),
        cmocka_unit_test(stream_id_reuse_is_eproto),
        cmocka_unit_test(wrong_parity_is_eproto),
        cmocka_unit_test(frames_for_never_opened_streams_are_eproto),
        cmocka_unit_test(window_update_overflow_is_eproto),
        cmocka_unit_test(session_error_resets_every_stream),
        cmocka_unit_test(too_many_unacked_inbound_streams_are_reset),
        cmocka_unit_test(outbound_limits_return_efull),
        cmocka_unit_test(recv_cap_resets_the_stream_that_overflows),
        cmocka_unit_test(goaway_stops_new_streams),
        cmocka_unit_test(reset_churn_budget),
        cmocka_unit_test(ping_flood_budget),
        cmocka_unit_test(open_and_empty_frame_budgets),
        cmocka_unit_test(allocation_failures_are_survived),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
