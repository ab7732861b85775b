/* Artifact gossip core on a virtual clock: several cores wired together in memory, each with
 * an application pool (answers SERVE from its store, stores COMPLETE). Scheduling across peers,
 * timeouts and re-requests, corrupt chunks, peers leaving, retransmission, duplicates and the
 * bound of the advert tables under a flood. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "flows/art_core.h"
#include "util/alloc.h"
#include "util/limits.h"

#define MAXN 8
#define MAXSTORE 128
#define MAXPEND 4096

typedef struct item {
    uint8_t id[CP2P_ART_MAX_ID];
    size_t id_len;
    uint8_t *data;
    size_t len;
} item;

typedef struct pend {
    cp2p__art_event ev;
    uint64_t due;
} pend;

typedef struct node {
    cp2p__art_core *c;
    cp2p_peer_id id;
    item store[MAXSTORE];
    size_t n_store;
    uint32_t delay_ms;   /* SERVE answered this late */
    bool silent;         /* SERVE never answered */
    bool corrupt;        /* every chunk served is corrupted */
    uint32_t served;     /* chunks answered */
    pend pending[MAXPEND];
    size_t n_pending;
    bool link[MAXN];
    uint32_t retrans_events; /* retransmission requests answered */
    uint32_t store_delay_ms; /* COMPLETE stored this late (as a worker thread would) */
} node;

static node N[MAXN];
static size_t n_nodes;
static uint64_t now;
static cp2p__art_config cfg;

static void mk_peer_id(cp2p_peer_id *p, uint8_t i)
{
    uint8_t b[34] = {0x12, 0x20};
    memset(b + 2, i + 1, 32);
    assert_int_equal(cp2p_peer_id_from_bytes(b, sizeof(b), p), 0);
}

static void setup_nodes(size_t n)
{
    memset(N, 0, sizeof(N));
    n_nodes = n;
    now = 1000;
    for (size_t i = 0; i < n; i++) {
        mk_peer_id(&N[i].id, (uint8_t)i);
        assert_int_equal(cp2p__art_core_new(&cfg, now, &N[i].c), 0);
    }
}

static void teardown_nodes(void)
{
    for (size_t i = 0; i < n_nodes; i++) {
        cp2p__art_core_free(N[i].c);
        for (size_t j = 0; j < N[i].n_store; j++) {
            free(N[i].store[j].data);
        }
    }
}

static node *by_id(const cp2p_peer_id *p)
{
    for (size_t i = 0; i < n_nodes; i++) {
        if (cp2p_peer_id_equal(&N[i].id, p)) {
            return &N[i];
        }
    }
    return NULL;
}

static void connect(size_t a, size_t b)
{
    N[a].link[b] = N[b].link[a] = true;
    assert_int_equal(cp2p__art_core_peer_up(N[a].c, &N[b].id, now), 0);
    assert_int_equal(cp2p__art_core_peer_up(N[b].c, &N[a].id, now), 0);
}

static void disconnect(size_t a, size_t b)
{
    N[a].link[b] = N[b].link[a] = false;
    cp2p__art_core_peer_down(N[a].c, &N[b].id, now);
    cp2p__art_core_peer_down(N[b].c, &N[a].id, now);
}

static item *find_item(node *n, const uint8_t *id, size_t len)
{
    for (size_t i = 0; i < n->n_store; i++) {
        if (n->store[i].id_len == len && memcmp(n->store[i].id, id, len) == 0) {
            return &n->store[i];
        }
    }
    return NULL;
}

static void add_item(node *n, const uint8_t *id, size_t id_len, const uint8_t *data, size_t len)
{
    assert_true(n->n_store < MAXSTORE);
    item *it = &n->store[n->n_store++];
    memcpy(it->id, id, id_len);
    it->id_len = id_len;
    it->data = malloc(len);
    memcpy(it->data, data, len);
    it->len = len;
}

static void publish(size_t i, const uint8_t *data, size_t len, uint8_t *id, size_t *id_len)
{
    assert_int_equal(cp2p__art_core_publish(N[i].c, NULL, 0, data, len, NULL, 0, now, id, id_len),
                     0);
    add_item(&N[i], id, *id_len, data, len);
}

static void answer(node *n, const cp2p__art_event *ev)
{
    item *it = find_item(n, ev->id, ev->id_len);
    if (it == NULL) {
        cp2p__art_core_serve_fail(n->c, &ev->peer);
        return;
    }
    uint8_t *buf = malloc(ev->len);
    memcpy(buf, it->data + ev->offset, ev->len);
    if (n->corrupt) {
        buf[0] ^= 0xff;
    }
    n->served++;
    int rc = cp2p__art_core_serve_reply(n->c, &ev->peer, ev->id, ev->id_len, ev->index, buf,
                                        ev->len);
    assert_true(rc == 0 || rc == CP2P_ENOENT); /* ENOENT: the asker is gone */
    free(buf);
}

/* Move frames and events until nothing moves. */
static void pump(void)
{
    bool moved = true;
    cp2p_buf b;
    cp2p_buf_init(&b, CP2P_ART_MAX_FRAME);
    while (moved) {
        moved = false;
        for (size_t i = 0; i < n_nodes; i++) {
            node *n = &N[i];
            for (size_t k = 0; k < n->n_pending;) {
                if (n->pending[k].due <= now) {
                    if (n->pending[k].ev.kind == CP2P_ART_EV_COMPLETE) {
                        cp2p__art_event *ce = &n->pending[k].ev;
                        add_item(n, ce->id, ce->id_len, ce->data, ce->size);
                        assert_int_equal(
                            cp2p__art_core_stored(n->c, ce->id, ce->id_len, true, now), 0);
                    } else {
                        answer(n, &n->pending[k].ev);
                    }
                    n->pending[k] = n->pending[--n->n_pending];
                    moved = true;
                } else {
                    k++;
                }
            }
            cp2p_peer_id p;
            while (cp2p__art_core_next_dirty(n->c, &p)) {
                node *d = by_id(&p);
                while (cp2p__art_core_take_frame(n->c, &p, &b)) {
                    const char *why = NULL;
                    moved = true;
                    if (d != NULL && d->link[i]) {
                        assert_int_equal(cp2p__art_core_recv(d->c, &n->id, b.ptr, b.len, now,
                                                             &why), 0);
                    }
                }
            }
            cp2p__art_event ev;
            while (cp2p__art_core_poll_event(n->c, &ev)) {
                moved = true;
                if (ev.kind == CP2P_ART_EV_COMPLETE && n->store_delay_ms > 0) {
                    assert_true(n->n_pending < MAXPEND);
                    n->pending[n->n_pending++] = (pend){ev, now + n->store_delay_ms};
                } else if (ev.kind == CP2P_ART_EV_COMPLETE) {
                    add_item(n, ev.id, ev.id_len, ev.data, ev.size);
                    assert_int_equal(cp2p__art_core_stored(n->c, ev.id, ev.id_len, true, now), 0);
                } else if (ev.kind == CP2P_ART_EV_RETRANS) {
                    n->retrans_events++;
                } else if (n->silent) {
                    continue;
                } else if (n->delay_ms > 0) {
                    assert_true(n->n_pending < MAXPEND);
                    n->pending[n->n_pending++] = (pend){ev, now + n->delay_ms};
                } else {
                    answer(n, &ev);
                }
            }
        }
    }
    cp2p_buf_fini(&b);
}

/* Advance virtual time in 10 ms steps (ticks every CP2P_ART_TICK_MS) until `done` or `limit`. */
static bool run_until(bool (*done)(void *), void *arg, uint64_t limit_ms)
{
    uint64_t end = now + limit_ms;
    pump();
    while (!done(arg)) {
        if (now >= end) {
            return false;
        }
        now += 10;
        if (now % CP2P_ART_TICK_MS == 0) {
            for (size_t i = 0; i < n_nodes; i++) {
                cp2p__art_core_tick(N[i].c, now);
            }
        }
        pump();
    }
    return true;
}

typedef struct want {
    size_t node;
    const uint8_t *id;
    size_t id_len;
} want;

static bool has_it(void *arg)
{
    want *w = arg;
    return find_item(&N[w->node], w->id, w->id_len) != NULL;
}

static void check_same(size_t i, const uint8_t *id, size_t id_len, const uint8_t *data,
                       size_t len)
{
    item *it = find_item(&N[i], id, id_len);
    assert_non_null(it);
    assert_int_equal(it->len, len);
    assert_memory_equal(it->data, data, len);
}

static uint8_t *pattern(size_t len, uint32_t seed)
{
    uint8_t *d = malloc(len);
    for (size_t i = 0; i < len; i++) {
        seed = seed * 1103515245u + 12345u;
        d[i] = (uint8_t)(seed >> 16);
    }
    return d;
}

static int reset_cfg(void **state)
{
    (void)state;
    cp2p__art_config_default(&cfg);
    return 0;
}

/* A small artifact is pushed whole and relayed (A - B - C), arriving byte-identical; the
 * relay does not send it back to where it came from. */
static void small_pushed_and_relayed(void **state)
{
    (void)state;
    setup_nodes(3);
    connect(0, 1);
    connect(1, 2);
    pump();
    uint8_t id[CP2P_ART_MAX_ID];
    size_t id_len;
    uint8_t *d = pattern(500, 1);
    publish(0, d, 500, id, &id_len);
    want w = {2, id, id_len};
    assert_true(run_until(has_it, &w, 1000));
    check_same(1, id, id_len, d, 500);
    check_same(2, id, id_len, d, 500);
    cp2p__art_stats s0, s1;
    cp2p__art_core_stats(N[0].c, &s0);
    cp2p__art_core_stats(N[1].c, &s1);
    assert_int_equal(s1.pushes_received, 1);
    assert_int_equal(s1.chunks_requested, 0); /* no request: it came whole */
    assert_int_equal(s0.pushes_received, 0);  /* B did not push it back to A */
    free(d);
    teardown_nodes();
}

typedef struct multi {
    want w;
} multi;

/* A 1 MiB artifact held by A, B and C is fetched by D from all three in parallel. */
static void chunks_from_every_peer(void **state)
{
    (void)state;
    setup_nodes(4);
    size_t len = 1 << 20;
    uint8_t *d = pattern(len, 2);
    uint8_t id[CP2P_ART_MAX_ID];
    size_t id_len;
    for (size_t i = 0; i < 3; i++) {
        publish(i, d, len, id, &id_len);
    }
    for (size_t i = 0; i < 3; i++) {
        connect(i, 3);
    }
    want w = {3, id, id_len};
    assert_true(run_until(has_it, &w, 10000));
    check_same(3, id, id_len, d, len);
    for (size_t i = 0; i < 3; i++) {
        assert_true(N[i].served > 0);
    }
    assert_int_equal(N[0].served + N[1].served + N[2].served, len / CP2P_ART_CHUNK_SIZE);
    cp2p__art_stats s;
    cp2p__art_core_stats(N[3].c, &s);
    assert_int_equal(s.fetches_started, 1); /* three adverts, one fetch */
    assert_int_equal(s.chunks_requested, len / CP2P_ART_CHUNK_SIZE);
    assert_int_equal(s.adverts_dup, 2);
    free(d);
    teardown_nodes();
}

/* A peer that never answers: its chunks time out and are asked of the other; its allowance
 * shrinks. */
static void timeout_then_elsewhere(void **state)
{
    (void)state;
    setup_nodes(3);
    size_t len = 512 * 1024;
    uint8_t *d = pattern(len, 3);
    uint8_t id[CP2P_ART_MAX_ID];
    size_t id_len;
    publish(0, d, len, id, &id_len);
    publish(1, d, len, id, &id_len);
    N[0].silent = true;
    connect(0, 2);
    want w = {2, id, id_len};
    /* Only the silent peer has it: its chunks time out (and, with no one else, go back to it). */
    assert_false(run_until(has_it, &w, CP2P_ART_CHUNK_TIMEOUT_MS + 200));
    cp2p__art_stats s;
    cp2p__art_core_stats(N[2].c, &s);
    assert_int_equal(s.chunks_timeout, CP2P_ART_INFLIGHT_START);
    /* Another source appears: the next timeouts send the chunks to it. */
    connect(1, 2);
    assert_true(run_until(has_it, &w, 4 * CP2P_ART_CHUNK_TIMEOUT_MS));
    check_same(2, id, id_len, d, len);
    cp2p__art_core_stats(N[2].c, &s);
    assert_true(s.chunks_timeout >= CP2P_ART_INFLIGHT_START);
    assert_int_equal(N[0].served, 0);
    assert_int_equal(N[1].served, len / CP2P_ART_CHUNK_SIZE);
    uint32_t credit, inflight, penalty;
    bool banned;
    assert_true(cp2p__art_core_peer_info(N[2].c, &N[0].id, &credit, &inflight, &penalty, &banned));
    assert_true(credit < CP2P_ART_INFLIGHT_START);
    assert_true(penalty > 0);
    free(d);
    teardown_nodes();
}

/* A slow peer (answers after 200 ms, well under the chunk timeout) gets fewer chunks than a
 * fast one (10 ms): chunks go to whoever has room, and the fast one frees its room sooner. */
static void slow_peer_gets_fewer(void **state)
{
    (void)state;
    setup_nodes(3);
    size_t len = 4 << 20;
    uint8_t *d = pattern(len, 4);
    uint8_t id[CP2P_ART_MAX_ID];
    size_t id_len;
    publish(0, d, len, id, &id_len);
    publish(1, d, len, id, &id_len);
    N[0].delay_ms = 10;
    N[1].delay_ms = 200;
    connect(0, 2);
    connect(1, 2);
    want w = {2, id, id_len};
    assert_true(run_until(has_it, &w, 60000));
    check_same(2, id, id_len, d, len);
    assert_true(N[0].served > 4 * N[1].served);
    /* The slow peer's last chunks were also asked of the fast one (endgame). */
    cp2p__art_stats s;
    cp2p__art_core_stats(N[2].c, &s);
    assert_true(s.chunks_endgame > 0);
    assert_int_equal(s.chunks_timeout, 0);
    free(d);
    teardown_nodes();
}

/* A peer serving corrupted chunks is caught on every chunk it corrupts; the chunk comes from
 * the honest peer and the artifact arrives intact. */
static void corrupt_chunks_caught(void **state)
{
    (void)state;
    setup_nodes(3);
    size_t len = 1 << 20;
    uint8_t *d = pattern(len, 5);
    uint8_t id[CP2P_ART_MAX_ID];
    size_t id_len;
    publish(0, d, len, id, &id_len);
    publish(1, d, len, id, &id_len);
    N[0].corrupt = true;
    connect(0, 2);
    connect(1, 2);
    want w = {2, id, id_len};
    assert_true(run_until(has_it, &w, 10000));
    check_same(2, id, id_len, d, len);
    cp2p__art_stats s;
    cp2p__art_core_stats(N[2].c, &s);
    assert_true(N[0].served > 0);
    assert_int_equal(s.chunks_corrupt, N[0].served);
    uint32_t credit, inflight, penalty;
    bool banned;
    assert_true(cp2p__art_core_peer_info(N[2].c, &N[0].id, &credit, &inflight, &penalty, &banned));
    assert_int_equal(penalty, 10 * N[0].served);
    free(d);
    teardown_nodes();
}

/* A peer leaves mid-transfer: its chunks in flight go to the other peer. */
static void peer_gone_mid_transfer(void **state)
{
    (void)state;
    setup_nodes(3);
    size_t len = 1 << 20;
    uint8_t *d = pattern(len, 6);
    uint8_t id[CP2P_ART_MAX_ID];
    size_t id_len;
    publish(0, d, len, id, &id_len);
    publish(1, d, len, id, &id_len);
    N[0].delay_ms = 500;
    N[1].delay_ms = 500;
    connect(0, 2);
    connect(1, 2);
    pump();
    now += 100;
    pump();
    uint32_t done, total, src;
    assert_int_equal(cp2p__art_core_progress(N[2].c, id, id_len, &done, &total, &src), 0);
    assert_int_equal(src, 2);
    assert_int_equal(done, 0);
    disconnect(0, 2);
    N[0].n_pending = 0;
    cp2p__art_stats s;
    cp2p__art_core_stats(N[2].c, &s);
    assert_true(s.chunks_requeued > 0);
    want w = {2, id, id_len};
    assert_true(run_until(has_it, &w, 20000));
    check_same(2, id, id_len, d, len);
    free(d);
    teardown_nodes();
}

/* Retransmission: a peer that reconnects learns at once (no tick) what it missed; a flood of
 * retransmission requests is answered at the rate limit only. */
static void retransmission_after_reconnect(void **state)
{
    (void)state;
    setup_nodes(2);
    connect(0, 1);
    pump();
    disconnect(0, 1);
    uint8_t id[CP2P_ART_MAX_ID];
    size_t id_len;
    uint8_t *d = pattern(100000, 7);
    publish(0, d, 100000, id, &id_len);
    connect(0, 1);
    uint64_t t0 = now;
    pump(); /* no time passes: no tick involved */
    assert_int_equal(now, t0);
    check_same(1, id, id_len, d, 100000);
    /* Flood: 100 retransmission requests from node 1 in one instant. */
    cp2p__art_stats before, after;
    cp2p__art_core_stats(N[0].c, &before);
    uint8_t f[16];
    cp2p_buf b = {.ptr = f, .cap = sizeof(f), .max = sizeof(f)};
    assert_int_equal(cp2p__art_retrans_append(&b, 0), 0);
    for (int i = 0; i < 100; i++) {
        const char *why;
        assert_int_equal(cp2p__art_core_recv(N[0].c, &N[1].id, b.ptr, b.len, now, &why), 0);
    }
    cp2p__art_core_stats(N[0].c, &after);
    assert_int_equal(after.retrans_received - before.retrans_received, 100);
    assert_true(after.retrans_limited - before.retrans_limited >= 98);
    assert_true(after.retrans_adverts - before.retrans_adverts <= 2);
    /* Each answered request is told to the application: two connects, at most two more. */
    uint32_t told = N[0].retrans_events;
    pump();
    assert_true(N[0].retrans_events - told <= 2);
    assert_true(told >= 2);
    free(d);
    teardown_nodes();
}

/* Never fetch what we hold or are fetching; the bouncer's "unwanted" and "later" verdicts. */
static uint32_t bouncer_calls;
static cp2p__art_verdict verdict;
static cp2p__art_verdict test_bouncer(const uint8_t *id, size_t id_len, uint64_t size,
                                      const cp2p__art_attr *attrs, size_t n_attrs, void *ud)
{
    (void)id, (void)id_len, (void)size, (void)attrs, (void)n_attrs, (void)ud;
    bouncer_calls++;
    return verdict;
}

static void bouncer_and_duplicates(void **state)
{
    (void)state;
    cfg.bouncer = test_bouncer;
    bouncer_calls = 0;
    verdict = CP2P__ART_UNWANTED;
    setup_nodes(2);
    uint8_t id[CP2P_ART_MAX_ID];
    size_t id_len;
    uint8_t *d = pattern(200000, 8);
    publish(0, d, 200000, id, &id_len);
    connect(0, 1);
    pump();
    assert_int_equal(bouncer_calls, 1);
    assert_false(cp2p__art_core_fetching(N[1].c, id, id_len));
    /* later: kept, asked again on each tick, fetched once it is wanted */
    verdict = CP2P__ART_LATER;
    disconnect(0, 1);
    connect(0, 1);
    pump();
    assert_false(cp2p__art_core_fetching(N[1].c, id, id_len));
    cp2p__art_stats s;
    cp2p__art_core_stats(N[1].c, &s);
    assert_int_equal(s.later, 1);
    now += CP2P_ART_TICK_MS;
    cp2p__art_core_tick(N[1].c, now);
    assert_false(cp2p__art_core_fetching(N[1].c, id, id_len));
    verdict = CP2P__ART_WANTED;
    want w = {1, id, id_len};
    assert_true(run_until(has_it, &w, 2000));
    check_same(1, id, id_len, d, 200000);
    /* Held now: another advert or push of it fetches nothing. */
    uint32_t calls = bouncer_calls;
    cp2p__art_core_stats(N[1].c, &s);
    uint64_t started = s.fetches_started;
    disconnect(0, 1);
    connect(0, 1);
    pump();
    cp2p__art_core_stats(N[1].c, &s);
    assert_int_equal(s.fetches_started, started);
    assert_int_equal(bouncer_calls, calls);
    assert_true(s.adverts_dup >= 1);
    /* Publishing what we hold is refused. */
    assert_int_equal(cp2p__art_core_publish(N[1].c, NULL, 0, d, 200000, NULL, 0, now, NULL, NULL),
                     CP2P_ESTATE);
    free(d);
    teardown_nodes();
}

/* Chunks for unknown artifacts, out-of-range indexes and requests for what we do not hold are
 * counted and change nothing. */
static void stray_chunks_and_requests(void **state)
{
    (void)state;
    setup_nodes(2);
    connect(0, 1);
    pump();
    uint8_t idb[34] = {0x12, 0x20};
    uint8_t data[10] = {0};
    uint8_t f[256];
    cp2p_buf b = {.ptr = f, .cap = sizeof(f), .max = sizeof(f)};
    assert_int_equal(cp2p__art_chunk_append(&b, (cp2p_slice){idb, 34}, 5, data, 10), 0);
    assert_int_equal(cp2p__art_request_append(&b, (cp2p_slice){idb, 34}, 1000000), 0);
    const char *why;
    assert_int_equal(cp2p__art_core_recv(N[0].c, &N[1].id, b.ptr, b.len, now, &why), 0);
    cp2p__art_stats s;
    cp2p__art_core_stats(N[0].c, &s);
    assert_int_equal(s.chunks_unknown, 1);
    assert_int_equal(s.requests_unknown, 1);
    /* A held artifact, an index past its end. */
    uint8_t id[CP2P_ART_MAX_ID];
    size_t id_len;
    uint8_t *d = pattern(3000, 9);
    publish(0, d, 3000, id, &id_len);
    b.len = 0;
    assert_int_equal(cp2p__art_request_append(&b, (cp2p_slice){id, id_len}, 1), 0);
    assert_int_equal(cp2p__art_core_recv(N[0].c, &N[1].id, b.ptr, b.len, now, &why), 0);
    cp2p__art_core_stats(N[0].c, &s);
    assert_int_equal(s.requests_bad_index, 1);
    /* Malformed frame: an error, counted. */
    assert_int_equal(cp2p__art_core_recv(N[0].c, &N[1].id, (const uint8_t *)"\x0a\x05xx", 4, now,
                                         &why),
                     CP2P_EPROTO);
    cp2p__art_core_stats(N[0].c, &s);
    assert_int_equal(s.frames_malformed, 1);
    free(d);
    teardown_nodes();
}

/* 10^6 adverts from one peer: its table stays at its bound, the "later" table at its own, and
 * an honest peer's artifact still arrives. */
static cp2p__art_verdict flood_bouncer(const uint8_t *id, size_t id_len, uint64_t size,
                                       const cp2p__art_attr *attrs, size_t n_attrs, void *ud)
{
    (void)id, (void)id_len, (void)attrs, (void)n_attrs, (void)ud;
    return size == 1 ? CP2P__ART_LATER : CP2P__ART_WANTED; /* flood adverts: size 1 */
}

static void flood_of_adverts_stays_bounded(void **state)
{
    (void)state;
    cfg.bouncer = flood_bouncer;
    setup_nodes(3);
    connect(0, 2); /* 0 floods node 2 */
    connect(1, 2); /* 1 is honest */
    pump();
    cp2p_buf b;
    cp2p_buf_init(&b, CP2P_ART_MAX_FRAME);
    uint8_t idb[34] = {0x12, 0x20}, h[32] = {0};
    cp2p__art_advert a = {.id = {idb, 34}, .size = 1, .chunk_size = 1, .n_chunks = 1,
                          .hashes = {h, 32}};
    const uint32_t total = 1000000;
    for (uint32_t i = 0; i < total;) {
        cp2p_buf_reset(&b);
        for (uint32_t k = 0; k < CP2P_ART_MAX_FRAME_MSGS && i < total; k++, i++) {
            memcpy(idb + 2, &i, sizeof(i));
            assert_int_equal(cp2p__art_advert_append(&b, &a), 0);
        }
        const char *why;
        assert_int_equal(cp2p__art_core_recv(N[2].c, &N[0].id, b.ptr, b.len, now, &why), 0);
    }
    cp2p_buf_fini(&b);
    assert_int_equal(cp2p__art_core_peer_adverts(N[2].c, &N[0].id), cfg.max_adverts_per_peer);
    cp2p__art_stats s;
    cp2p__art_core_stats(N[2].c, &s);
    assert_int_equal(s.adverts_received, total);
    assert_int_equal(s.adverts_evicted, total - cfg.max_adverts_per_peer);
    assert_true(s.later <= cfg.max_later);
    assert_int_equal(s.later + s.later_dropped, total);
    /* The honest artifact still arrives. */
    uint8_t id[CP2P_ART_MAX_ID];
    size_t id_len;
    uint8_t *d = pattern(300000, 10);
    publish(1, d, 300000, id, &id_len);
    want w = {2, id, id_len};
    assert_true(run_until(has_it, &w, 2000));
    check_same(2, id, id_len, d, 300000);
    free(d);
    teardown_nodes();
}

/* An advert whose manifest does not add up to its id: every chunk matches the manifest, the
 * whole does not match the id; the advertiser is banned and nothing is stored. */
static void lying_manifest(void **state)
{
    (void)state;
    setup_nodes(2);
    connect(0, 1);
    pump();
    size_t len = 100000;
    uint8_t *d = pattern(len, 11);
    uint8_t id[CP2P_ART_MAX_ID];
    size_t id_len;
    /* Node 0 holds the bytes under someone else's id (its own check is off: a liar). */
    uint8_t other[34] = {0x12, 0x20};
    memset(other + 2, 0x5a, 32);
    assert_int_equal(cp2p__art_core_publish(N[1].c, other, 34, d, len, NULL, 0, now, id, &id_len),
                     CP2P_EINVAL); /* an honest node refuses to publish it */
    cp2p__art_config liar = cfg;
    liar.id_sha256 = false;
    cp2p__art_core_free(N[0].c);
    assert_int_equal(cp2p__art_core_new(&liar, now, &N[0].c), 0);
    assert_int_equal(cp2p__art_core_peer_up(N[0].c, &N[1].id, now), 0);
    assert_int_equal(cp2p__art_core_publish(N[0].c, other, 34, d, len, NULL, 0, now, id, &id_len),
                     0);
    add_item(&N[0], id, id_len, d, len);
    uint64_t end = now + 2000;
    while (now < end) {
        now += 10;
        pump();
    }
    assert_null(find_item(&N[1], other, 34));
    cp2p__art_stats s;
    cp2p__art_core_stats(N[1].c, &s);
    assert_int_equal(s.fetches_bad_whole, 1);
    assert_int_equal(s.peers_banned, 1);
    assert_false(cp2p__art_core_fetching(N[1].c, other, 34));
    free(d);
    teardown_nodes();
}

/* Each allocation of a core's life fails in turn (create, peer up, publish, an advert, a
 * chunk request, the chunks, the completion): each call fails cleanly or succeeds, nothing
 * leaks (ASan), and with no failure the artifact arrives. */
static void core_allocation_failures(void **state)
{
    (void)state;
    size_t len = 200000;
    uint8_t *d = pattern(len, 12);
    int arrivals = 0;
    for (long n = 1; n < 300; n++) {
        bool arrived = false;
        cp2p__art_core *a = NULL, *b = NULL;
        cp2p_peer_id pa, pb;
        mk_peer_id(&pa, 0);
        mk_peer_id(&pb, 1);
        if (cp2p__art_core_new(&cfg, now, &a) != 0) {
            continue;
        }
        cp2p__alloc_fail_after(n);
        int rc = cp2p__art_core_new(&cfg, now, &b);
        if (rc == 0 && cp2p__art_core_peer_up(a, &pb, now) == 0 &&
            cp2p__art_core_peer_up(b, &pa, now) == 0 &&
            cp2p__art_core_publish(a, NULL, 0, d, len, NULL, 0, now, NULL, NULL) == 0) {
            /* Move frames both ways and answer events until nothing moves. */
            cp2p_buf fr;
            cp2p_buf_init(&fr, CP2P_ART_MAX_FRAME);
            for (int round = 0; round < 20; round++) {
                cp2p_peer_id p;
                const char *why;
                while (cp2p__art_core_next_dirty(a, &p)) {
                    while (cp2p__art_core_take_frame(a, &p, &fr)) {
                        (void)!cp2p__art_core_recv(b, &pa, fr.ptr, fr.len, now, &why);
                    }
                }
                while (cp2p__art_core_next_dirty(b, &p)) {
                    while (cp2p__art_core_take_frame(b, &p, &fr)) {
                        (void)!cp2p__art_core_recv(a, &pb, fr.ptr, fr.len, now, &why);
                    }
                }
                cp2p__art_event ev;
                while (cp2p__art_core_poll_event(a, &ev)) {
                    if (ev.kind == CP2P_ART_EV_SERVE) {
                        (void)!cp2p__art_core_serve_reply(a, &ev.peer, ev.id, ev.id_len,
                                                          ev.index, d + ev.offset, ev.len);
                    }
                }
                while (cp2p__art_core_poll_event(b, &ev)) {
                    if (ev.kind == CP2P_ART_EV_COMPLETE) {
                        arrived = ev.size == len && memcmp(ev.data, d, len) == 0;
                        (void)!cp2p__art_core_stored(b, ev.id, ev.id_len, true, now);
                    }
                }
                now += CP2P_ART_CHUNK_TIMEOUT_MS;
                cp2p__art_core_tick(a, now);
                cp2p__art_core_tick(b, now);
            }
            cp2p_buf_fini(&fr);
        }
        cp2p__alloc_fail_after(0);
        cp2p__art_core_free(a);
        cp2p__art_core_free(b);
        arrivals += arrived;
    }
    /* Most single failures are survived (a dropped message is asked again on a timeout). */
    assert_true(arrivals > 0);
    free(d);
}

/* The application's id function (here the blake2b-256 multihash): it names what is
 * published, and the receiver checks chunked and pushed artifacts against it. */
static ptrdiff_t blake2b_id(const uint8_t *data, size_t len, uint8_t out[CP2P_ART_MAX_ID],
                            void *ud)
{
    (void)ud;
    out[0] = 0xa0; /* multicodec blake2b-256 = 0xb220, as a varint */
    out[1] = 0xe4;
    out[2] = 0x02;
    out[3] = 0x20;
    crypto_generichash(out + 4, 32, data, len, NULL, 0);
    return 36;
}

static void application_id_function(void **state)
{
    (void)state;
    cfg.id_fn = blake2b_id;
    setup_nodes(2);
    connect(0, 1);
    pump();
    uint8_t id[CP2P_ART_MAX_ID], expect[CP2P_ART_MAX_ID], sid[CP2P_ART_MAX_ID];
    size_t id_len, sid_len;
    uint8_t *d = pattern(300000, 13), *small = pattern(300, 14);
    publish(0, d, 300000, id, &id_len);
    assert_int_equal(blake2b_id(d, 300000, expect, NULL), 36);
    assert_int_equal(id_len, 36);
    assert_memory_equal(id, expect, 36);
    publish(0, small, 300, sid, &sid_len);
    want w = {1, id, id_len}, ws = {1, sid, sid_len};
    assert_true(run_until(has_it, &w, 2000));
    assert_true(run_until(has_it, &ws, 2000));
    check_same(1, id, id_len, d, 300000);
    check_same(1, sid, sid_len, small, 300);
    /* A given id must be the function's. */
    assert_int_equal(cp2p__art_core_publish(N[1].c, expect, 36, small, 299, NULL, 0, now, NULL,
                                            NULL),
                     CP2P_EINVAL);
    free(d);
    free(small);
    teardown_nodes();
}


typedef struct all_want {
    const uint8_t (*ids)[CP2P_ART_MAX_ID];
    size_t n_ids, id_len;
} all_want;

static bool all_have(void *arg)
{
    all_want *w = arg;
    for (size_t i = 0; i < n_nodes; i++) {
        for (size_t k = 0; k < w->n_ids; k++) {
            if (find_item(&N[i], w->ids[k], w->id_len) == NULL) {
                return false;
            }
        }
    }
    return true;
}

static void sum_stats(cp2p__art_stats *t)
{
    memset(t, 0, sizeof(*t));
    for (size_t i = 0; i < n_nodes; i++) {
        cp2p__art_stats s;
        cp2p__art_core_stats(N[i].c, &s);
        t->pushes_received += s.pushes_received;
        t->pushes_dup += s.pushes_dup;
        t->adverts_lazy += s.adverts_lazy;
        t->prunes_sent += s.prunes_sent;
        t->small_pulled += s.small_pulled;
        t->grafts += s.grafts;
    }
}

/* The push tree: 5 nodes, every pair linked (degree 4), each storing COMPLETE 10..30 ms late
 * (as a worker thread would). First 40 small artifacts published one after another from
 * changing nodes: duplicate pushes prune their edges until the pushes follow a tree, then each
 * node receives each artifact once whole (4 pushes an artifact, no duplicate, no fetch after a
 * wait) and adverts on the other edges. Then 40 more four at a time from four nodes (pushes
 * cross): fewer duplicates than pushing to every peer. Everything arrives byte-identical.
 * push_tree off: every artifact costs duplicate pushes. */
static void small_push_tree(void **state)
{
    (void)state;
    uint64_t dup_burst[2] = {0, 0};
    for (int tree = 1; tree >= 0; tree--) {
        cfg.push_tree = tree == 1;
        setup_nodes(5);
        for (size_t i = 0; i < 5; i++) {
            N[i].store_delay_ms = 10 + 10 * (uint32_t)(i % 3);
        }
        for (size_t a = 0; a < 5; a++) {
            for (size_t b = a + 1; b < 5; b++) {
                connect(a, b);
            }
        }
        pump();
        static uint8_t ids[80][CP2P_ART_MAX_ID];
        uint8_t *data[80];
        size_t id_len = 0;
        cp2p__art_stats warm, seq, t;
        for (size_t k = 0; k < 80; k++) {
            data[k] = pattern(100 + 10 * k, (uint32_t)(500 + k));
            publish(k % 5, data[k], 100 + 10 * k, ids[k], &id_len);
            if (k >= 40 && k % 4 != 3) {
                continue; /* four at once, from four nodes */
            }
            all_want w = {ids, k + 1, id_len};
            assert_true(run_until(all_have, &w, 10000));
            if (k == 19) {
                sum_stats(&warm);
            } else if (k == 39) {
                sum_stats(&seq);
            }
        }
        sum_stats(&t);
        for (size_t k = 0; k < 80; k++) {
            for (size_t i = 0; i < 5; i++) {
                check_same(i, ids[k], id_len, data[k], 100 + 10 * k);
            }
            free(data[k]);
        }
        dup_burst[tree] = t.pushes_dup - seq.pushes_dup;
        if (tree) {
            assert_int_equal(seq.pushes_dup, warm.pushes_dup);
            assert_int_equal(seq.pushes_received - warm.pushes_received, 20 * 4);
            assert_int_equal(seq.small_pulled, warm.small_pulled);
            assert_true(seq.adverts_lazy > warm.adverts_lazy);
            assert_true(t.prunes_sent > 0);
        } else {
            assert_true(seq.pushes_dup - warm.pushes_dup >= 20);
            assert_int_equal(t.prunes_sent, 0);
            assert_int_equal(t.adverts_lazy, 0);
        }
        teardown_nodes();
    }
    print_message("duplicate pushes, 40 published four at a time: tree %llu, to all %llu\n",
                  (unsigned long long)dup_burst[1], (unsigned long long)dup_burst[0]);
    assert_true(2 * dup_burst[1] < dup_burst[0]);
}

/* Pushes that find the small-fetch table full are kept with their bytes and validated when a
 * slot frees: nothing is fetched a second time, everything arrives byte-identical. */
static void small_pushes_kept_when_full(void **state)
{
    (void)state;
    cfg.max_small_fetches = 1;
    setup_nodes(2);
    N[1].store_delay_ms = 250; /* the one slot stays busy while the others arrive */
    connect(0, 1);
    pump();
    uint8_t ids[3][CP2P_ART_MAX_ID];
    uint8_t *data[3];
    size_t id_len = 0;
    for (size_t k = 0; k < 3; k++) {
        data[k] = pattern(200 + 100 * k, (uint32_t)(900 + k));
        publish(0, data[k], 200 + 100 * k, ids[k], &id_len);
    }
    all_want w = {(const uint8_t(*)[CP2P_ART_MAX_ID])ids, 3, id_len};
    assert_true(run_until(all_have, &w, 5000));
    for (size_t k = 0; k < 3; k++) {
        check_same(1, ids[k], id_len, data[k], 200 + 100 * k);
        free(data[k]);
    }
    cp2p__art_stats s;
    cp2p__art_core_stats(N[1].c, &s);
    assert_int_equal(s.pushes_received, 3);
    assert_true(s.fetches_refused >= 2);
    assert_int_equal(s.chunks_requested, 0);
    assert_int_equal(s.artifacts_stored, 3);
    teardown_nodes();
}

/* Partial availability, chain A - B - C (C not linked to A): C learns of the artifact from B's
 * partial advert while B is still fetching, starts at once, and receives from B chunks B got
 * from A (answered from B's fetch in progress, announced to C with Have). */
static bool fetching_it(void *arg)
{
    want *w = arg;
    return cp2p__art_core_fetching(N[w->node].c, w->id, w->id_len);
}

static void partial_chain_pipelines(void **state)
{
    (void)state;
    setup_nodes(3);
    N[0].delay_ms = 40; /* A serves slowly: B's fetch takes a while */
    connect(0, 1);
    connect(1, 2);
    pump();
    size_t len = 1 << 20;
    uint8_t *d = pattern(len, 20);
    uint8_t id[CP2P_ART_MAX_ID];
    size_t id_len;
    publish(0, d, len, id, &id_len);
    want st = {2, id, id_len};
    assert_true(run_until(fetching_it, &st, 1000));
    /* C fetches before B holds it: it heard only B's partial advert. */
    assert_false(cp2p__art_core_holds(N[1].c, id, id_len));
    uint32_t done_b, total, src;
    assert_int_equal(cp2p__art_core_progress(N[1].c, id, id_len, &done_b, &total, &src), 0);
    assert_true(done_b < total);
    want w = {2, id, id_len};
    assert_true(run_until(has_it, &w, 20000));
    check_same(1, id, id_len, d, len);
    check_same(2, id, id_len, d, len);
    cp2p__art_stats sb, sc;
    cp2p__art_core_stats(N[1].c, &sb);
    cp2p__art_core_stats(N[2].c, &sc);
    assert_int_equal(sb.partial_adverts_sent, 1); /* to C only: A is a full source */
    assert_true(sb.haves_sent > 0);
    assert_true(sb.chunks_served_partial > 0);   /* served while B was still fetching */
    assert_int_equal(sc.partial_adverts_received, 1);
    assert_true(sc.haves_received > 0);
    assert_int_equal(sc.haves_bad_index + sc.haves_unknown, 0);
    assert_int_equal(sc.fetches_started, 1);
    assert_int_equal(sc.chunks_corrupt + sc.chunks_timeout, 0);
    /* C asked each chunk once: B was asked only for what it announced or held. */
    assert_int_equal(sc.chunks_requested, len / CP2P_ART_CHUNK_SIZE);
    free(d);
    teardown_nodes();
}

/* One core (B) driven by hand with two fake peers: A advertised the whole, X is fetching it
 * too (partial advert). The frames B sends are decoded and checked. */
static uint32_t frames_to(cp2p__art_core *c, const cp2p_peer_id *to, uint32_t *req,
                          uint32_t max_req, uint32_t *n_partials, uint32_t *n_chunks)
{
    cp2p_buf b;
    cp2p_buf_init(&b, CP2P_ART_MAX_FRAME);
    uint32_t n = 0;
    while (cp2p__art_core_take_frame(c, to, &b)) {
        cp2p__art_env e;
        const char *why;
        assert_int_equal(cp2p__art_env_decode(b.ptr, b.len, CP2P_ART_MAX_FRAME, CP2P_ART_MAX_SIZE,
                                              &e, &why),
                         0);
        for (size_t i = 0; i < e.n_requests; i++) {
            assert_true(n < max_req);
            req[n++] = e.requests[i].index;
        }
        if (n_partials != NULL) {
            *n_partials += (uint32_t)e.n_partials;
        }
        if (n_chunks != NULL) {
            *n_chunks += (uint32_t)e.n_chunks;
        }
        cp2p__art_env_fini(&e);
    }
    cp2p_buf_fini(&b);
    return n;
}

static void feed(cp2p__art_core *c, const cp2p_peer_id *from, const cp2p_buf *b)
{
    const char *why;
    assert_int_equal(cp2p__art_core_recv(c, from, b->ptr, b->len, now, &why), 0);
}

static void partial_source_by_hand(void **state)
{
    (void)state;
    setup_nodes(3); /* 0: A (full source), 1: B (the core under test), 2: X (partial source) */
    cp2p__art_core *b = N[1].c;
    const cp2p_peer_id *pa = &N[0].id, *px = &N[2].id;
    assert_int_equal(cp2p__art_core_peer_up(b, pa, now), 0);
    assert_int_equal(cp2p__art_core_peer_up(b, px, now), 0);
    size_t len = 1 << 20;
    uint32_t n_chunks = (uint32_t)(len / CP2P_ART_CHUNK_SIZE);
    uint8_t *d = pattern(len, 21);
    cp2p__art_prepared prep;
    assert_int_equal(cp2p__art_prepare(&cfg, NULL, 0, d, len, NULL, 0, &prep), 0);
    cp2p_slice id = {prep.id, prep.id_len};
    cp2p_buf f;
    cp2p_buf_init(&f, CP2P_ART_MAX_FRAME);
    uint32_t req[64], n, partials = 0;
    (void)frames_to(b, px, req, 64, NULL, NULL); /* retransmission requests */
    /* A advertises the whole: B asks A for the first chunks and tells X it fetches it. */
    assert_int_equal(cp2p_buf_append(&f, prep.advert.ptr, prep.advert.len), 0);
    feed(b, pa, &f);
    cp2p__art_stats s;
    cp2p__art_core_stats(b, &s);
    assert_int_equal(s.partial_adverts_sent, 1);
    n = frames_to(b, px, req, 64, &partials, NULL);
    assert_int_equal(n, 0);
    assert_int_equal(partials, 1);
    /* X fetches it too: a partial source, never asked before it announces a chunk. */
    cp2p_buf_reset(&f);
    assert_int_equal(cp2p_buf_append(&f, prep.advert.ptr, prep.advert.len), 0);
    f.ptr[0] = CP2P_ART_KEY_PARTIAL;
    feed(b, px, &f);
    assert_int_equal(frames_to(b, px, req, 64, NULL, NULL), 0);
    uint32_t done, total, src;
    assert_int_equal(cp2p__art_core_progress(b, id.ptr, id.len, &done, &total, &src), 0);
    assert_int_equal(src, 2);
    /* Haves: chunks 10 and 11, an index past the end (counted), and Haves B cannot use. */
    uint32_t have[] = {10, 11, n_chunks + 5};
    cp2p_buf_reset(&f);
    assert_int_equal(cp2p__art_have_append(&f, id, have, 3), 0);
    feed(b, px, &f);
    cp2p__art_core_stats(b, &s);
    assert_int_equal(s.haves_received, 1);
    assert_int_equal(s.haves_bad_index, 1);
    n = frames_to(b, px, req, 64, NULL, NULL);
    assert_int_equal(n, 2); /* only what it announced */
    assert_true((req[0] == 10 && req[1] == 11) || (req[0] == 11 && req[1] == 10));
    cp2p_buf_reset(&f);
    assert_int_equal(cp2p__art_have_append(&f, id, have, 1), 0);
    feed(b, pa, &f); /* A is a full source, not a partial one */
    uint8_t other[34] = {0x12, 0x20, 7};
    cp2p_buf_reset(&f);
    assert_int_equal(cp2p__art_have_append(&f, (cp2p_slice){other, 34}, have, 1), 0);
    feed(b, px, &f); /* an artifact B does not fetch */
    cp2p__art_core_stats(b, &s);
    assert_int_equal(s.haves_unknown, 2);
    /* X leaves with chunks 10 and 11 in flight: they go back, no one else has them... */
    cp2p__art_core_peer_down(b, px, now);
    cp2p__art_core_stats(b, &s);
    assert_int_equal(s.chunks_requeued, 2);
    assert_int_equal(cp2p__art_core_progress(b, id.ptr, id.len, &done, &total, &src), 0);
    assert_int_equal(src, 1);
    /* ... A's allowance is taken by chunks 0..3; answer chunk 0: A is asked the next one,
     * which is the first needed chunk (4), not what X had. */
    n = frames_to(b, pa, req, 64, NULL, NULL);
    assert_int_equal(n, CP2P_ART_INFLIGHT_START);
    /* X comes back (it is not told again: it came up after the fetch started), advertises
     * it is fetching and announces 10 and 11 again. */
    assert_int_equal(cp2p__art_core_peer_up(b, px, now), 0);
    (void)frames_to(b, px, req, 64, NULL, NULL);
    cp2p_buf_reset(&f);
    assert_int_equal(cp2p_buf_append(&f, prep.advert.ptr, prep.advert.len), 0);
    f.ptr[0] = CP2P_ART_KEY_PARTIAL;
    assert_int_equal(cp2p__art_have_append(&f, id, have, 2), 0);
    feed(b, px, &f);
    n = frames_to(b, px, req, 64, NULL, NULL);
    assert_int_equal(n, 2);
    assert_true(req[0] >= 10 && req[0] <= 11 && req[1] >= 10 && req[1] <= 11);
    /* X answers both; B verifies them and serves them to A on request (from its fetch in
     * progress); a chunk B does not have yet is not served. */
    cp2p_buf_reset(&f);
    for (uint32_t i = 10; i <= 11; i++) {
        assert_int_equal(cp2p__art_chunk_append(&f, id, i, d + (size_t)i * CP2P_ART_CHUNK_SIZE,
                                                CP2P_ART_CHUNK_SIZE),
                         0);
    }
    feed(b, px, &f);
    assert_int_equal(cp2p__art_core_progress(b, id.ptr, id.len, &done, &total, &src), 0);
    assert_int_equal(done, 2);
    cp2p_buf_reset(&f);
    assert_int_equal(cp2p__art_request_append(&f, id, 10), 0);
    assert_int_equal(cp2p__art_request_append(&f, id, 5), 0);
    feed(b, pa, &f);
    uint32_t chunks = 0;
    (void)frames_to(b, pa, req, 64, NULL, &chunks);
    assert_int_equal(chunks, 1);
    cp2p__art_core_stats(b, &s);
    assert_int_equal(s.chunks_served_partial, 1);
    assert_int_equal(s.requests_unknown, 1);
    /* X never was asked a chunk it had not announced; its full advert upgrades it to a full
     * source: from now on it is asked for any needed chunk. */
    assert_int_equal(frames_to(b, px, req, 64, NULL, NULL), 0);
    cp2p_buf_reset(&f);
    assert_int_equal(cp2p_buf_append(&f, prep.advert.ptr, prep.advert.len), 0);
    feed(b, px, &f);
    n = frames_to(b, px, req, 64, NULL, NULL);
    assert_true(n > 0);
    for (uint32_t i = 0; i < n; i++) {
        assert_true(req[i] >= CP2P_ART_INFLIGHT_START && req[i] != 10 && req[i] != 11);
    }
    cp2p__art_core_stats(b, &s);
    assert_int_equal(s.partial_adverts_received, 2);
    cp2p_buf_fini(&f);
    cp2p__art_prepared_fini(&prep);
    free(d);
    teardown_nodes();
}

/* Partial adverts of what we hold, of one-chunk artifacts, or that the bouncer does not want
 * leave nothing behind (counted); one with another manifest is counted as such. */
static void partial_adverts_ignored(void **state)
{
    (void)state;
    cfg.bouncer = test_bouncer;
    verdict = CP2P__ART_UNWANTED;
    setup_nodes(2);
    cp2p__art_core *b = N[1].c;
    assert_int_equal(cp2p__art_core_peer_up(b, &N[0].id, now), 0);
    size_t len = 300000;
    uint8_t *d = pattern(len, 22);
    cp2p__art_prepared prep;
    assert_int_equal(cp2p__art_prepare(&cfg, NULL, 0, d, len, NULL, 0, &prep), 0);
    cp2p_buf f;
    cp2p_buf_init(&f, CP2P_ART_MAX_FRAME);
    assert_int_equal(cp2p_buf_append(&f, prep.advert.ptr, prep.advert.len), 0);
    f.ptr[0] = CP2P_ART_KEY_PARTIAL;
    feed(b, &N[0].id, &f); /* unwanted */
    assert_false(cp2p__art_core_fetching(b, prep.id, prep.id_len));
    verdict = CP2P__ART_LATER;
    feed(b, &N[0].id, &f); /* later: not kept for a partial advert */
    cp2p__art_stats s;
    cp2p__art_core_stats(b, &s);
    assert_int_equal(s.later, 0);
    assert_int_equal(s.partial_adverts_ignored, 2);
    verdict = CP2P__ART_WANTED;
    feed(b, &N[0].id, &f); /* wanted: fetched, with N[0] as a partial source */
    assert_true(cp2p__art_core_fetching(b, prep.id, prep.id_len));
    /* The same id with another manifest (another chunk size). */
    cp2p__art_config c2 = cfg;
    c2.chunk_size = 32 * 1024;
    cp2p__art_prepared p2;
    assert_int_equal(cp2p__art_prepare(&c2, NULL, 0, d, len, NULL, 0, &p2), 0);
    cp2p_buf_reset(&f);
    assert_int_equal(cp2p_buf_append(&f, p2.advert.ptr, p2.advert.len), 0);
    f.ptr[0] = CP2P_ART_KEY_PARTIAL;
    feed(b, &N[0].id, &f);
    cp2p__art_core_stats(b, &s);
    assert_int_equal(s.adverts_other_manifest, 1);
    assert_int_equal(s.partial_adverts_received, 4);
    cp2p__art_prepared_fini(&p2);
    cp2p_buf_fini(&f);
    cp2p__art_prepared_fini(&prep);
    free(d);
    teardown_nodes();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(small_pushed_and_relayed, reset_cfg),
        cmocka_unit_test_setup(small_push_tree, reset_cfg),
        cmocka_unit_test_setup(small_pushes_kept_when_full, reset_cfg),
        cmocka_unit_test_setup(chunks_from_every_peer, reset_cfg),
        cmocka_unit_test_setup(timeout_then_elsewhere, reset_cfg),
        cmocka_unit_test_setup(slow_peer_gets_fewer, reset_cfg),
        cmocka_unit_test_setup(corrupt_chunks_caught, reset_cfg),
        cmocka_unit_test_setup(peer_gone_mid_transfer, reset_cfg),
        cmocka_unit_test_setup(retransmission_after_reconnect, reset_cfg),
        cmocka_unit_test_setup(bouncer_and_duplicates, reset_cfg),
        cmocka_unit_test_setup(stray_chunks_and_requests, reset_cfg),
        cmocka_unit_test_setup(flood_of_adverts_stays_bounded, reset_cfg),
        cmocka_unit_test_setup(lying_manifest, reset_cfg),
        cmocka_unit_test_setup(core_allocation_failures, reset_cfg),
        cmocka_unit_test_setup(application_id_function, reset_cfg),
        cmocka_unit_test_setup(partial_chain_pipelines, reset_cfg),
        cmocka_unit_test_setup(partial_source_by_hand, reset_cfg),
        cmocka_unit_test_setup(partial_adverts_ignored, reset_cfg),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
