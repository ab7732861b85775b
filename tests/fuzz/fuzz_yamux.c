/* Fuzz the yamux core as a peer would: the input's first byte picks the side, a configuration
 * and how the bytes are chunked; the rest is fed to recv() as wire bytes. After every chunk the
 * harness drains output and events and reacts like an application (accept, read, write, close,
 * reset, release, open, ping, timers), checking invariants. ASan/UBSan catch the rest, and
 * cp2p__yamux_free() must leave nothing behind. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cp2p/common.h>

#include "muxer/yamux.h"

#define HELD_MAX 32

typedef struct {
    cp2p__yamux *y;
    cp2p__yamux_stream *held[HELD_MAX];
    size_t nheld;
    uint64_t now;
    uint32_t ops;
} fz;

static void check(bool ok)
{
    if (!ok) {
        abort();
    }
}

static void ign(ptrdiff_t r)
{
    (void)r;
}

static void drop_held(fz *f, size_t i)
{
    cp2p__yamux_stream_release(f->held[i]);
    f->held[i] = f->held[--f->nheld];
}

static size_t find_held(const fz *f, const cp2p__yamux_stream *s)
{
    for (size_t i = 0; i < f->nheld; i++) {
        if (f->held[i] == s) {
            return i;
        }
    }
    return SIZE_MAX;
}

static void hold(fz *f, cp2p__yamux_stream *s)
{
    if (f->nheld == HELD_MAX) {
        ign(cp2p__yamux_stream_reset(s, 1));
        cp2p__yamux_stream_release(s);
        return;
    }
    f->held[f->nheld++] = s;
}

static void drain_output(fz *f)
{
    for (;;) {
        cp2p_slice iov[8];
        size_t n = cp2p__yamux_outv(f->y, iov, 8);
        if (n == 0) {
            check(cp2p__yamux_closed(f->y) || cp2p__yamux_out_pending(f->y) == 0);
            return;
        }
        size_t sum = 0;
        for (size_t i = 0; i < n; i++) {
            check(iov[i].len > 0);
            sum += iov[i].len;
        }
        check(sum <= cp2p__yamux_out_pending(f->y));
        check(cp2p__yamux_out_done(f->y, sum + 1) == CP2P_EINVAL);
        /* Sometimes write only part, as a socket may. */
        size_t part = (f->ops++ % 3 == 0 && sum > 1) ? sum / 2 : sum;
        check(cp2p__yamux_out_done(f->y, part) == 0);
    }
}

static void read_some(fz *f, cp2p__yamux_stream *s)
{
    uint8_t buf[1500];
    cp2p_slice sl[2];
    if (f->ops++ % 2 == 0) {
        size_t n = cp2p__yamux_stream_peek(s, sl);
        size_t total = 0;
        for (size_t i = 0; i < n; i++) {
            check(sl[i].len > 0);
            total += sl[i].len;
        }
        ign(cp2p__yamux_stream_consumed(s, total / 2 + (total & 1), f->now));
    } else {
        while (cp2p__yamux_stream_read(s, buf, sizeof(buf), f->now) > 0) {
        }
    }
    cp2p__yamux_stream_info info;
    cp2p__yamux_stream_get_info(s, &info);
    check(info.buffered <= info.recv_window);
}

static void drain_events(fz *f)
{
    static const uint8_t payload[3000];
    cp2p__yamux_event ev;
    while (cp2p__yamux_next_event(f->y, &ev)) {
        cp2p__yamux_stream *s = ev.stream;
        size_t i;
        switch (ev.type) {
        case CP2P__YAMUX_EV_STREAM_OPENED:
            check(s != NULL && cp2p__yamux_stream_id(s) == ev.stream_id);
            if (ev.stream_id % 7 == 0) {
                ign(cp2p__yamux_stream_reset(s, 3));
                cp2p__yamux_stream_release(s);
                break;
            }
            if (ev.stream_id % 3 != 0) {
                ign(cp2p__yamux_stream_accept(s));
            }
            ign(cp2p__yamux_stream_write(s, payload, ev.stream_id % sizeof(payload)));
            hold(f, s);
            break;
        case CP2P__YAMUX_EV_STREAM_READABLE:
            if (find_held(f, s) != SIZE_MAX) {
                read_some(f, s);
            }
            break;
        case CP2P__YAMUX_EV_STREAM_REMOTE_FIN:
            i = find_held(f, s);
            if (i != SIZE_MAX) {
                read_some(f, s);
                ign(cp2p__yamux_stream_close_write(s));
                if (f->ops++ % 2 == 0) {
                    drop_held(f, i);
                }
            }
            break;
        case CP2P__YAMUX_EV_STREAM_WRITABLE:
            if (find_held(f, s) != SIZE_MAX) {
                ign(cp2p__yamux_stream_write(s, payload, sizeof(payload)));
            }
            break;
        case CP2P__YAMUX_EV_STREAM_RESET:
            i = find_held(f, s);
            check(i != SIZE_MAX);
            check(cp2p__yamux_stream_write(s, payload, 1) < 0);
            drop_held(f, i);
            break;
        case CP2P__YAMUX_EV_PING:
        case CP2P__YAMUX_EV_GOAWAY:
            break;
        case CP2P__YAMUX_EV_SESSION_ERROR:
            check(ev.err < 0 && ev.why != NULL);
            break;
        default:
            abort();
        }
    }
}

/* Application-side actions chosen by a byte of the input. */
static void act(fz *f, uint8_t op)
{
    cp2p__yamux_stream *s;
    switch (op % 8) {
    case 0:
        if (cp2p__yamux_stream_open(f->y, NULL, &s) == 0) {
            hold(f, s);
        }
        break;
    case 1:
        ign(cp2p__yamux_ping(f->y, f->now));
        break;
    case 2:
        cp2p__yamux_on_timeout(f->y, cp2p__yamux_deadline(f->y));
        if (cp2p__yamux_deadline(f->y) != UINT64_MAX) {
            f->now = cp2p__yamux_deadline(f->y);
        }
        break;
    case 3:
        if (f->nheld > 0) {
            ign(cp2p__yamux_stream_close_write(f->held[op % f->nheld]));
        }
        break;
    case 4:
        if (f->nheld > 0) {
            ign(cp2p__yamux_stream_reset(f->held[op % f->nheld], op));
        }
        break;
    case 5:
        if (f->nheld > 0) {
            drop_held(f, op % f->nheld);
        }
        break;
    case 6:
        if (op == 6) {
            ign(cp2p__yamux_goaway(f->y, 0));
        }
        break;
    default:
        break;
    }
}

/* ---- pair mode: two cores back to back, the input drives legal application operations ----
 * Neither core may ever see a protocol error from the other (only the reset, refusal and ping
 * budgets may end a session, since the input can legally churn streams and ping in a loop), and
 * every byte read must be the byte the peer wrote at that offset. */

#define PAIR_STREAMS 16
#define LINK_MAX (1u << 20)
/* Bytes written per run, both sides together: keeps one input at a few milliseconds. */
#define PAIR_WRITE_BUDGET (1u << 20)

typedef struct {
    cp2p__yamux_stream *s;
    uint32_t id;
    uint64_t tx, rx; /* bytes written / read so far */
    bool reset;
} pstream;

typedef struct {
    cp2p__yamux *y;
    pstream st[PAIR_STREAMS];
    size_t n;
    uint8_t *link; /* bytes on the way to the other side: link[link_off .. link_len) */
    size_t link_off, link_len;
} pside;

/* The byte at offset `off` of a stream direction is pat[(off + shift) % PAT_PERIOD], a prime
 * period no frame size is a multiple of; memcpy/memcmp against `pat` keep the harness cheap. */
#define PAT_PERIOD 251u
#define PAT_SPAN 70000u
static uint8_t pat[PAT_PERIOD + PAT_SPAN];

static void pat_init(void)
{
    if (pat[1] == 0) {
        for (size_t i = 0; i < sizeof(pat); i++) {
            pat[i] = (uint8_t)((i % PAT_PERIOD) * 7u + 1u);
        }
    }
}

static const uint8_t *pattern_at(uint32_t id, bool from_client, uint64_t off)
{
    return pat + (off + id * 17u + (from_client ? 101u : 0u)) % PAT_PERIOD;
}

static void pside_drop(pside *p, size_t i)
{
    cp2p__yamux_stream_release(p->st[i].s);
    p->st[i] = p->st[--p->n];
}

static void pside_hold(pside *p, cp2p__yamux_stream *s)
{
    if (p->n == PAIR_STREAMS) {
        ign(cp2p__yamux_stream_reset(s, 0));
        cp2p__yamux_stream_release(s);
        return;
    }
    p->st[p->n++] = (pstream){.s = s, .id = cp2p__yamux_stream_id(s)};
}

static void pair_check_errors(const cp2p__yamux *y)
{
    const cp2p__yamux_stats *st = cp2p__yamux_get_stats(y);
    for (int k = 0; k < CP2P__YAMUX_PERR_COUNT; k++) {
        /* The input may legally churn streams or ping in a tight loop: budgets may trip. */
        if (k != CP2P__YAMUX_PERR_RESET_FLOOD && k != CP2P__YAMUX_PERR_REFUSE_FLOOD &&
            k != CP2P__YAMUX_PERR_PING_FLOOD) {
            check(st->proto_errors[k] == 0);
        }
    }
}

static void pair_events(pside *p, uint64_t now)
{
    cp2p__yamux_event ev;
    while (cp2p__yamux_next_event(p->y, &ev)) {
        if (ev.type == CP2P__YAMUX_EV_STREAM_OPENED) {
            pside_hold(p, ev.stream);
        } else if (ev.type == CP2P__YAMUX_EV_STREAM_RESET) {
            for (size_t i = 0; i < p->n; i++) {
                if (p->st[i].s == ev.stream) {
                    p->st[i].reset = true;
                }
            }
        } else if (ev.type == CP2P__YAMUX_EV_SESSION_ERROR) {
            check(ev.err == CP2P_ELIMIT || ev.err == CP2P_EIO);
        }
    }
    (void)now;
}

/* Take the side's output onto its link (bounded), as a socket write would. */
static void pair_take(pside *p)
{
    cp2p_slice iov[16];
    size_t n = cp2p__yamux_outv(p->y, iov, 16);
    size_t sum = 0;
    size_t want = 0;
    for (size_t i = 0; i < n; i++) {
        want += iov[i].len;
    }
    if (p->link_off > 0 && p->link_len + want > LINK_MAX) {
        memmove(p->link, p->link + p->link_off, p->link_len - p->link_off);
        p->link_len -= p->link_off;
        p->link_off = 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (p->link_len + iov[i].len > LINK_MAX) {
            break;
        }
        memcpy(p->link + p->link_len, iov[i].ptr, iov[i].len);
        p->link_len += iov[i].len;
        sum += iov[i].len;
    }
    check(cp2p__yamux_out_done(p->y, sum) == 0);
}

/* Deliver up to `max` bytes of `from`'s link into `to`. */
/* Deliver up to `max` bytes of `from`'s link into `to`; returns the bytes consumed. */
static size_t pair_deliver(pside *from, pside *to, size_t max, uint64_t now)
{
    size_t avail = from->link_len - from->link_off;
    size_t n = avail < max ? avail : max;
    if (n == 0 || cp2p__yamux_closed(to->y)) {
        return 0;
    }
    const char *why = NULL;
    ptrdiff_t r = cp2p__yamux_recv(to->y, from->link + from->link_off, n, now, &why);
    if (r < 0) {
        check(r == CP2P_ELIMIT); /* a budget; never a protocol error between our own cores */
        return 0;
    }
    from->link_off += (size_t)r;
    if (from->link_off == from->link_len) {
        from->link_off = from->link_len = 0;
    }
    return (size_t)r;
}

static size_t pair_read(pside *p, size_t i, size_t max, bool client, uint64_t now)
{
    pstream *ps = &p->st[i];
    cp2p_slice sl[2];
    size_t nsl = cp2p__yamux_stream_peek(ps->s, sl);
    size_t take = 0;
    for (size_t k = 0; k < nsl && take < max; k++) {
        size_t len = sl[k].len < max - take ? sl[k].len : max - take;
        for (size_t j = 0; j < len; j += PAT_SPAN) {
            size_t m = len - j < PAT_SPAN ? len - j : PAT_SPAN;
            check(memcmp(sl[k].ptr + j, pattern_at(ps->id, !client, ps->rx + take + j), m) == 0);
        }
        take += len;
    }
    check(cp2p__yamux_stream_consumed(ps->s, take, now) == 0 || cp2p__yamux_closed(p->y));
    ps->rx += take;
    return take;
}

static void run_pair(const uint8_t *data, size_t size)
{
    static uint8_t links[2][LINK_MAX];
    pat_init();
    pside side[2] = {{.link = links[0]}, {.link = links[1]}};
    if (cp2p__yamux_new(NULL, true, &side[0].y) != 0 ||
        cp2p__yamux_new(NULL, false, &side[1].y) != 0) {
        goto out;
    }
    uint64_t now = 0;
    size_t write_budget = PAIR_WRITE_BUDGET;
    for (size_t pos = 0; pos + 1 < size; pos += 2) {
        uint8_t op = data[pos], arg = data[pos + 1];
        bool client = (op & 0x80) == 0;
        pside *me = &side[client ? 0 : 1], *peer = &side[client ? 1 : 0];
        size_t k = me->n ? arg % me->n : 0;
        cp2p__yamux_stream *s;
        switch (op % 12) {
        case 0:
            if (cp2p__yamux_stream_open(me->y, NULL, &s) == 0) {
                pside_hold(me, s);
            }
            break;
        case 1:
        case 2:
            if (me->n > 0) {
                pstream *ps = &me->st[k];
                size_t len = (size_t)arg * (op % 12 == 1 ? 1 : 271);
                len = len < write_budget ? len : write_budget;
                ptrdiff_t w = cp2p__yamux_stream_write(ps->s, pattern_at(ps->id, client, ps->tx), len);
                if (w > 0) {
                    check((size_t)w <= len);
                    ps->tx += (uint64_t)w;
                    write_budget -= (size_t)w;
                } else {
                    check(w == 0 || w == CP2P_ECLOSED || w == CP2P_ECANCELED);
                }
            }
            break;
        case 3:
            if (me->n > 0) {
                pair_read(me, k, (size_t)arg * 997, client, now);
            }
            break;
        case 4:
            if (me->n > 0) {
                ign(cp2p__yamux_stream_close_write(me->st[k].s));
            }
            break;
        case 5:
            if (me->n > 0 && arg % 4 == 0) {
                ign(cp2p__yamux_stream_reset(me->st[k].s, arg));
            }
            break;
        case 6:
            if (me->n > 0 && arg % 2 == 0) {
                pside_drop(me, k);
            }
            break;
        case 7:
            ign(cp2p__yamux_ping(me->y, now));
            break;
        case 8:
            now += arg;
            cp2p__yamux_on_timeout(me->y, now);
            break;
        case 9:
            if (arg == 9) {
                ign(cp2p__yamux_goaway(me->y, 0));
            }
            break;
        case 10:
            if (me->n > 0) {
                ign(cp2p__yamux_stream_accept(me->st[k].s));
            }
            break;
        default:
            pair_take(me);
            pair_deliver(me, peer, (size_t)arg * 53 + 1, now);
            break;
        }
        pair_events(&side[0], now);
        pair_events(&side[1], now);
        pair_check_errors(side[0].y);
        pair_check_errors(side[1].y);
        for (int j = 0; j < 2; j++) {
            for (size_t i = 0; i < side[j].n; i++) {
                cp2p__yamux_stream_info info;
                cp2p__yamux_stream_get_info(side[j].st[i].s, &info);
                check(info.buffered <= info.recv_window);
            }
        }
    }
    /* Flush everything both ways: still no protocol error, and all reads check out. */
    for (int round = 0; round < 256; round++) {
        size_t progress = 0;
        pair_take(&side[0]);
        pair_take(&side[1]);
        progress += pair_deliver(&side[0], &side[1], SIZE_MAX, now);
        progress += pair_deliver(&side[1], &side[0], SIZE_MAX, now);
        pair_events(&side[0], now);
        pair_events(&side[1], now);
        for (int j = 0; j < 2; j++) {
            for (size_t i = 0; i < side[j].n; i++) {
                progress += pair_read(&side[j], i, SIZE_MAX, j == 0, now);
            }
        }
        if (progress == 0 && cp2p__yamux_out_pending(side[0].y) == 0 &&
            cp2p__yamux_out_pending(side[1].y) == 0) {
            break;
        }
    }
    pair_check_errors(side[0].y);
    pair_check_errors(side[1].y);
out:
    for (int j = 0; j < 2; j++) {
        if (side[j].y != NULL) {
            while (side[j].n > 0) {
                pside_drop(&side[j], 0);
            }
            cp2p__yamux_free(side[j].y);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    uint8_t mode = data[0];
    data++;
    size--;
    if (mode == 0xff) {
        run_pair(data, size);
        return 0;
    }
    cp2p__yamux_config cfg;
    cp2p__yamux_config_default(&cfg);
    if (mode & 2) { /* tight limits reach the refusal and reset paths quickly */
        cfg.max_window = cfg.initial_window;
        cfg.max_session_recv = cfg.max_window + 4096;
        cfg.max_inbound_streams = 4;
        cfg.max_unacked_inbound = 2;
        cfg.max_outbound_streams = 3;
        cfg.max_unacked_outbound = 2;
        cfg.max_out_buffered = 8192;
        cfg.max_frame = 1024;
        cfg.reset_burst = cfg.refuse_burst = cfg.ping_burst = cfg.empty_burst = 4;
        cfg.max_pong_backlog = 2;
    }
    fz f = {.now = 0};
    if (cp2p__yamux_new(&cfg, (mode & 1) != 0, &f.y) != 0) {
        return 0;
    }
    static const size_t chunks[8] = {1, 5, 12, 13, 29, 100, 4096, SIZE_MAX};
    size_t chunk = chunks[(mode >> 2) & 7];
    bool acts = (mode & 0x20) != 0;
    if (mode & 1) { /* as client, have stream 1 exist so the input can talk on it */
        act(&f, 0);
        drain_output(&f);
    }
    const uint8_t *pending = data;
    size_t avail = 0, left = size;
    while (left > 0 || avail > 0) {
        size_t add = left < chunk ? left : chunk;
        avail += add;
        left -= add;
        const char *why = NULL;
        ptrdiff_t r = cp2p__yamux_recv(f.y, pending, avail, f.now, &why);
        if (r < 0) {
            check(why != NULL);
            check(cp2p__yamux_closed(f.y));
            check(cp2p__yamux_recv(f.y, pending, avail, f.now, &why) == CP2P_ECLOSED);
            drain_events(&f);
            drain_output(&f);
            break;
        }
        check((size_t)r <= avail);
        check(avail - (size_t)r < CP2P__YAMUX_HDR_LEN || r > 0);
        pending += r;
        avail -= (size_t)r;
        drain_events(&f);
        if (acts && r > 0) {
            act(&f, pending[-1]);
        }
        drain_events(&f);
        drain_output(&f);
        f.now += 7;
        if (left == 0 && avail > 0 && r == 0) {
            break; /* an incomplete header at the end */
        }
    }
    if (mode & 0x40) {
        cp2p__yamux_abort(f.y, CP2P_EIO);
        drain_events(&f);
    }
    while (f.nheld > 0) {
        drop_held(&f, 0);
    }
    check(cp2p__yamux_num_streams(f.y) <= 1000 + 1000);
    cp2p__yamux_free(f.y);
    return 0;
}
