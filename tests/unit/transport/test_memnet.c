/* The in-memory network's model (src/transport/memnet.c) on virtual time, without sockets or
 * a loop: latency, bandwidth, loss with head-of-line order, cut and heal, back-pressure,
 * refused and timed-out dials, and determinism from the seed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "transport/memnet.h"

#define MS CP2P__MN_NS_PER_MS

typedef struct {
    cp2p__mn *net;
    cp2p__mn_node *a, *b;
    cp2p__mn_ep *ea, *eb; /* a's (dialer) and b's (listener) ends */
    int writes_done, shutdowns;
} world;

/* Drain every event; remember the endpoints of a connection; count completions. */
static void drain(world *w)
{
    cp2p__mn_evnode *ev;
    while ((ev = cp2p__mn_next_event(w->net)) != NULL) {
        switch (ev->type) {
        case CP2P__MN_EV_ACCEPT:
            w->eb = cp2p__mn_ev_ep(ev);
            break;
        case CP2P__MN_EV_DIAL_DONE: {
            cp2p__mn_dial *d = cp2p__mn_ev_dial(ev);
            if (d->status == 0) {
                w->ea = d->ep;
                d->ep = NULL;
            }
            cp2p__mn_dial_release(d);
            break;
        }
        case CP2P__MN_EV_WRITE_DONE:
            assert_int_equal(cp2p__mn_ev_wreq(ev)->status, 0);
            w->writes_done++;
            break;
        case CP2P__MN_EV_SHUTDOWN_DONE:
            w->shutdowns++;
            break;
        case CP2P__MN_EV_CLOSED:
            cp2p__mn_ep_free(cp2p__mn_ev_ep(ev));
            break;
        default:
            break;
        }
    }
}

/* Advance virtual time to `t` and drain. */
static void at(world *w, uint64_t t)
{
    cp2p__mn_advance(w->net, t);
    drain(w);
}

static void world_new(world *w, uint64_t seed)
{
    cp2p__mn_listener *l;
    const char *why = NULL;
    memset(w, 0, sizeof(*w));
    assert_int_equal(cp2p__mn_new(seed, &w->net), 0);
    assert_int_equal(cp2p__mn_node_new(w->net, &w->a), 0);
    assert_int_equal(cp2p__mn_node_new(w->net, &w->b), 0);
    assert_int_equal(cp2p__mn_listen(w->a, "a", NULL, &l, &why), 0);
    assert_int_equal(cp2p__mn_listen(w->b, "b", NULL, &l, &why), 0);
}

/* Connect a -> b at time `t` and advance until both ends exist. */
static void world_connect(world *w, uint64_t t)
{
    cp2p__mn_dial *d;
    assert_int_equal(cp2p__mn_dial_start(w->a, "b", 1000 * MS, t, NULL, &d), 0);
    drain(w);
    for (uint64_t now = t; w->ea == NULL; now = cp2p__mn_deadline(w->net)) {
        assert_true(now != UINT64_MAX);
        at(w, now);
    }
    cp2p__mn_read_start(w->ea, t);
    cp2p__mn_read_start(w->eb, t);
}

static void world_free(world *w)
{
    if (w->ea != NULL) {
        cp2p__mn_close(w->ea, 0);
    }
    if (w->eb != NULL) {
        cp2p__mn_close(w->eb, 0);
    }
    drain(w);
    cp2p__mn_node_free(w->a);
    cp2p__mn_node_free(w->b);
    assert_int_equal(cp2p__mn_nodes(w->net), 0);
    cp2p__mn_free(w->net);
}

static void tx(world *w, cp2p__mn_wreq *r, const void *p, size_t n, uint64_t now)
{
    cp2p_slice s = {p, n};
    assert_int_equal(cp2p__mn_write(w->ea, r, &s, 1, now), 0);
    drain(w); /* the write completes from the event queue, never inside the call */
}

static void link_cfg(world *w, uint32_t lat, uint64_t bw, double loss)
{
    cp2p_memnet_link l = {.latency_ms = lat, .bandwidth_bps = bw, .loss = loss};
    assert_int_equal(cp2p__mn_link_set(w->net, "a", "b", &l, 0), 0);
}

/* A write completes through an event, and its bytes become readable one latency later. */
static void latency_one_way(void **state)
{
    world w;
    cp2p__mn_wreq r;
    uint8_t buf[64];
    (void)state;
    world_new(&w, 1);
    link_cfg(&w, 30, 0, 0);
    world_connect(&w, 0);
    /* The dialer learns the connection after one RTT, the listener after one way. */
    uint64_t t0 = 60 * MS;
    assert_int_equal(cp2p__mn_write(w.ea, &r, &(cp2p_slice){(const uint8_t *)"hello", 5}, 1, t0),
                     0);
    assert_int_equal(w.writes_done, 0); /* not inside the call */
    drain(&w);
    assert_int_equal(w.writes_done, 1);
    assert_int_equal(cp2p__mn_deadline(w.net), t0 + 30 * MS);
    assert_int_equal(cp2p__mn_read(w.eb, t0 + 30 * MS - 1, buf, sizeof(buf)), 0);
    at(&w, t0 + 30 * MS);
    assert_int_equal(cp2p__mn_read(w.eb, t0 + 30 * MS, buf, sizeof(buf)), 5);
    assert_memory_equal(buf, "hello", 5);
    world_free(&w);
}

/* At 1 MB/s, 100 KB takes 100 ms to leave: the last byte arrives latency + 100 ms later, and a
 * second write waits behind the first (FIFO per direction). */
static void bandwidth_serialises(void **state)
{
    world w;
    static uint8_t big[100000];
    uint8_t buf[200000];
    cp2p__mn_wreq r1, r2;
    (void)state;
    world_new(&w, 1);
    link_cfg(&w, 10, 1000000, 0);
    world_connect(&w, 0);
    uint64_t t0 = 100 * MS;
    tx(&w, &r1, big, sizeof(big), t0);
    tx(&w, &r2, "x", 1, t0);
    size_t got = 0;
    uint64_t last = 0;
    for (uint64_t now = t0; got < sizeof(big) + 1; now = cp2p__mn_deadline(w.net)) {
        at(&w, now);
        ptrdiff_t n = cp2p__mn_read(w.eb, now, buf + got, sizeof(buf) - got);
        assert_true(n >= 0);
        if (n > 0) {
            got += (size_t)n;
            last = now;
        }
    }
    /* 100,001 bytes at 1e6 B/s: 100.001 ms of serialisation, then 10 ms of latency. */
    assert_int_equal(last, t0 + 100001 * 1000 + 10 * MS);
    assert_int_equal(buf[sizeof(big)], 'x');
    world_free(&w);
}

/* Loss delays a segment by the RTO; every later byte waits behind it, in order. */
static void loss_blocks_head_of_line(void **state)
{
    world w;
    static uint8_t data[20 * CP2P_MEMNET_SEGMENT];
    uint8_t buf[sizeof(data)];
    cp2p__mn_wreq r;
    cp2p_memnet_stats st;
    (void)state;
    for (size_t i = 0; i < sizeof(data); i++) {
        data[i] = (uint8_t)(i * 7);
    }
    world_new(&w, 7);
    link_cfg(&w, 10, 0, 0.3);
    world_connect(&w, 0);
    uint64_t t0 = 20 * MS;
    tx(&w, &r, data, sizeof(data), t0);
    cp2p__mn_stats(w.net, &st);
    assert_int_equal(st.segments, 20);
    assert_true(st.segments_delayed > 0 && st.segments_delayed < 20);
    size_t got = 0;
    uint64_t prev = 0;
    for (uint64_t now = t0; got < sizeof(data); now = cp2p__mn_deadline(w.net)) {
        assert_true(now != UINT64_MAX);
        at(&w, now);
        ptrdiff_t n = cp2p__mn_read(w.eb, now, buf + got, sizeof(buf) - got);
        assert_true(n >= 0);
        got += (size_t)n;
        assert_true(now >= prev);
        prev = now;
    }
    assert_memory_equal(buf, data, sizeof(data)); /* order kept */
    /* The first lost segment arrives after 10 ms + the RTO (200 ms: 3 x RTT is 60 ms). */
    assert_true(prev >= t0 + 210 * MS);
    world_free(&w);
}

/* A cut holds bytes in flight and bytes sent during it; a heal delivers them, in order, one
 * latency after the heal. A dial across the cut times out. */
static void cut_and_heal(void **state)
{
    world w;
    uint8_t buf[16];
    cp2p__mn_wreq r1, r2;
    cp2p_memnet_stats st;
    (void)state;
    world_new(&w, 1);
    link_cfg(&w, 50, 0, 0);
    world_connect(&w, 0);
    uint64_t t0 = 100 * MS;
    tx(&w, &r1, "ab", 2, t0);
    assert_int_equal(cp2p__mn_cut(w.net, "a", "b", true, t0 + 10 * MS), 0);
    tx(&w, &r2, "cd", 2, t0 + 20 * MS);
    assert_int_equal(w.writes_done, 2); /* accepted: the queue has room */
    at(&w, t0 + 500 * MS);
    assert_int_equal(cp2p__mn_read(w.eb, t0 + 500 * MS, buf, sizeof(buf)), 0);
    cp2p__mn_stats(w.net, &st);
    assert_int_equal(st.bytes_held, 4);
    /* A new dial across the cut waits, then times out. */
    cp2p__mn_dial *d;
    assert_int_equal(cp2p__mn_dial_start(w.a, "b", 100 * MS, t0 + 500 * MS, NULL, &d), 0);
    cp2p__mn_advance(w.net, t0 + 600 * MS);
    cp2p__mn_evnode *ev = cp2p__mn_next_event(w.net);
    assert_non_null(ev);
    assert_ptr_equal(cp2p__mn_ev_dial(ev), d);
    assert_int_equal(d->status, CP2P_ETIMEDOUT);
    cp2p__mn_dial_release(d);
    cp2p__mn_stats(w.net, &st);
    assert_int_equal(st.dials_timed_out, 1);
    /* Heal: everything arrives one latency later, in order. */
    uint64_t th = t0 + 1000 * MS;
    assert_int_equal(cp2p__mn_cut(w.net, "a", "b", false, th), 0);
    at(&w, th + 50 * MS - 1);
    assert_int_equal(cp2p__mn_read(w.eb, th + 50 * MS - 1, buf, sizeof(buf)), 0);
    at(&w, th + 50 * MS);
    assert_int_equal(cp2p__mn_read(w.eb, th + 50 * MS, buf, sizeof(buf)), 4);
    assert_memory_equal(buf, "abcd", 4);
    world_free(&w);
}

/* A reader that does not read pushes back: writes past the queue cap wait for it. */
static void backpressure_until_read(void **state)
{
    world w;
    static uint8_t chunk[64 * 1024];
    static uint8_t sink[CP2P_MEMNET_QUEUE_MAX * 2];
    cp2p__mn_wreq r[8];
    (void)state;
    world_new(&w, 1);
    world_connect(&w, 0);
    for (int i = 0; i < 8; i++) {
        tx(&w, &r[i], chunk, sizeof(chunk), 0);
    }
    assert_int_equal(w.writes_done, CP2P_MEMNET_QUEUE_MAX / (int)sizeof(chunk));
    ptrdiff_t n = cp2p__mn_read(w.eb, 0, sink, sizeof(sink));
    assert_true(n > 0);
    drain(&w);
    assert_int_equal(w.writes_done, 8);
    world_free(&w);
}

/* TCP_NOTSENT_LOWAT: with a low-water mark, the next write waits until the link's unsent
 * backlog falls under it (a timer, not a read, resumes it); without one it is taken at once. */
static void notsent_lowat_paces_writes(void **state)
{
    world w;
    static uint8_t chunk[40000];
    cp2p__mn_wreq r[3];
    (void)state;
    world_new(&w, 1);
    cp2p__mn_node_set_notsent_lowat(w.a, 10000);
    link_cfg(&w, 10, 1000000, 0); /* 1e6 B/s: 1 byte per us */
    world_connect(&w, 0);
    uint64_t t0 = 100 * MS;
    tx(&w, &r[0], chunk, sizeof(chunk), t0); /* backlog 0 < lowat: taken */
    tx(&w, &r[1], chunk, sizeof(chunk), t0); /* backlog 40,000 B: waits */
    tx(&w, &r[2], chunk, sizeof(chunk), t0);
    assert_int_equal(w.writes_done, 1);
    /* The mark is widened by one ms of the link (1,000 B; the binding's clock is in ms): the
     * backlog is under 11,000 B once 29,000 B are serialised, 29 ms later. */
    uint64_t due = t0 + 29 * MS + 1;
    at(&w, due - 1);
    assert_int_equal(w.writes_done, 1);
    at(&w, due);
    assert_int_equal(w.writes_done, 2);
    at(&w, t0 + 69 * MS); /* 80,000 B are serialised at 80 ms: the third waits until 69 ms */
    assert_int_equal(w.writes_done, 2);
    at(&w, t0 + 69 * MS + 1);
    assert_int_equal(w.writes_done, 3);
    world_free(&w);
    /* No mark: every write is taken at once (the queue's 256 KiB bound alone). */
    world_new(&w, 1);
    link_cfg(&w, 10, 1000000, 0);
    world_connect(&w, 0);
    for (int i = 0; i < 3; i++) {
        tx(&w, &r[i], chunk, sizeof(chunk), t0);
    }
    assert_int_equal(w.writes_done, 3);
    world_free(&w);
}

/* Unknown names are refused at once; names are unique; "0" picks a fresh one; the end of a
 * shut-down stream is read after its bytes. */
static void names_refusal_and_end(void **state)
{
    world w;
    cp2p__mn_listener *l;
    cp2p__mn_dial *d;
    const char *why = NULL;
    uint8_t buf[8];
    cp2p__mn_wreq r;
    (void)state;
    world_new(&w, 1);
    assert_int_equal(cp2p__mn_listen(w.a, "b", NULL, &l, &why), CP2P_EIO);
    assert_int_equal(cp2p__mn_listen(w.a, "0", NULL, &l, &why), 0);
    assert_string_equal(l->name, "mem-1");
    assert_int_equal(cp2p__mn_dial_start(w.a, "nobody", MS, 0, NULL, &d), 0);
    cp2p__mn_evnode *ev = cp2p__mn_next_event(w.net);
    assert_ptr_equal(cp2p__mn_ev_dial(ev), d);
    assert_int_equal(d->status, CP2P_EIO);
    cp2p__mn_dial_release(d);
    world_connect(&w, 0);
    tx(&w, &r, "zz", 2, 0);
    assert_int_equal(cp2p__mn_shutdown(w.ea, 0), 0);
    drain(&w);
    assert_int_equal(w.shutdowns, 1);
    assert_int_equal(cp2p__mn_read(w.eb, 0, buf, sizeof(buf)), 2);
    assert_int_equal(cp2p__mn_read(w.eb, 0, buf, sizeof(buf)), CP2P_ECLOSED);
    world_free(&w);
}

/* The delivery times of a lossy, rate-limited exchange, as a list. */
static size_t trace(uint64_t seed, uint64_t *times, size_t max)
{
    world w;
    static uint8_t data[50 * CP2P_MEMNET_SEGMENT];
    uint8_t buf[4096];
    cp2p__mn_wreq r;
    size_t n = 0, got = 0;
    world_new(&w, seed);
    link_cfg(&w, 5, 10000000, 0.2);
    world_connect(&w, 0);
    tx(&w, &r, data, sizeof(data), 10 * MS);
    for (uint64_t now = 10 * MS; got < sizeof(data) && n < max;
         now = cp2p__mn_deadline(w.net)) {
        at(&w, now);
        ptrdiff_t k;
        while ((k = cp2p__mn_read(w.eb, now, buf, sizeof(buf))) > 0) {
            got += (size_t)k;
            times[n++] = now;
        }
    }
    world_free(&w);
    return n;
}

static void same_seed_same_times(void **state)
{
    uint64_t t1[512], t2[512], t3[512];
    (void)state;
    size_t n1 = trace(42, t1, 512), n2 = trace(42, t2, 512), n3 = trace(43, t3, 512);
    assert_int_equal(n1, n2);
    assert_memory_equal(t1, t2, n1 * sizeof(t1[0]));
    /* Another seed loses other segments. */
    assert_true(n1 != n3 || memcmp(t1, t3, n1 * sizeof(t1[0])) != 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(latency_one_way),
        cmocka_unit_test(bandwidth_serialises),
        cmocka_unit_test(loss_blocks_head_of_line),
        cmocka_unit_test(cut_and_heal),
        cmocka_unit_test(backpressure_until_read),
        cmocka_unit_test(notsent_lowat_paces_writes),
        cmocka_unit_test(names_refusal_and_end),
        cmocka_unit_test(same_seed_same_times),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
