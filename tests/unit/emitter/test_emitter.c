/* Batching emitter core (Fabric gossip push phase), on virtual time with a seeded PRNG. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "emitter/emitter.h"
#include "util/alloc.h"

#define NPEERS 32
#define MAX_CALLS 512
#define MAX_MSGS 64

/* One recorded send call: the peer (its index, bytes[0]) and the message ids (first byte). */
typedef struct rec_call {
    int peer;
    size_t n;
    int msgs[MAX_MSGS];
} rec_call;

typedef struct rec {
    rec_call calls[MAX_CALLS];
    size_t n;
    cp2p_emitter *e; /* for the re-entrancy test */
    int reenter_rc;
} rec;

static cp2p_peer_id PEERS[NPEERS];

static void peers_init(void)
{
    for (int i = 0; i < NPEERS; i++) {
        memset(&PEERS[i], 0, sizeof(PEERS[i]));
        PEERS[i].bytes[0] = (uint8_t)i;
        PEERS[i].bytes[1] = 0x5a;
        PEERS[i].len = 8;
    }
}

static void on_send(const cp2p_peer_id *peer, const cp2p_slice *msgs, size_t n, void *ud)
{
    rec *r = ud;
    rec_call *c;

    assert_true(r->n < MAX_CALLS);
    assert_true(n >= 1 && n <= MAX_MSGS);
    c = &r->calls[r->n++];
    c->peer = peer->bytes[0];
    c->n = n;
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(msgs[i].len, 3);
        c->msgs[i] = msgs[i].ptr[0];
    }
    if (r->e != NULL) {
        r->reenter_rc = cp2p_emitter_add(r->e, "x", 1, 0, 0);
    }
}

static uint64_t xorshift(void *ud)
{
    uint64_t *s = ud;

    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void add_msg(cp2p_emitter *e, int id, uint32_t kind, uint64_t now)
{
    uint8_t m[3] = {(uint8_t)id, 0xee, 0xff};

    assert_int_equal(cp2p_emitter_add(e, m, sizeof(m), kind, now), 0);
}

/* How many times message `id` went to peer `p` in calls[from..r->n). */
static int count_to(const rec *r, size_t from, int id, int p)
{
    int c = 0;

    for (size_t i = from; i < r->n; i++) {
        for (size_t j = 0; j < r->calls[i].n; j++) {
            if (r->calls[i].msgs[j] == id && (p < 0 || r->calls[i].peer == p)) {
                c++;
            }
        }
    }
    return c;
}

/* Every peer appears in at most one call of calls[from..r->n), and inside each call the message
 * ids are strictly increasing (add order). */
static void assert_coalesced(const rec *r, size_t from)
{
    int seen[NPEERS] = {0};

    for (size_t i = from; i < r->n; i++) {
        assert_int_equal(seen[r->calls[i].peer], 0);
        seen[r->calls[i].peer] = 1;
        for (size_t j = 1; j < r->calls[i].n; j++) {
            assert_true(r->calls[i].msgs[j - 1] < r->calls[i].msgs[j]);
        }
    }
}

static cp2p_emitter *mk(cp2p_emitter_config *cfg, rec *r)
{
    cp2p_emitter *e = NULL;

    cfg->send = on_send;
    cfg->send_ud = r;
    assert_int_equal(cp2p_emitter_new(cfg, &e), 0);
    return e;
}

static void defaults_are_fabrics(void **state)
{
    cp2p_emitter_config cfg;
    (void)state;
    cp2p_emitter_config_default(&cfg);
    assert_int_equal(cfg.iterations, 1);
    assert_int_equal(cfg.burst_size, 10);
    assert_int_equal(cfg.max_latency_ms, 10);
    assert_int_equal(cfg.fanout, 3);
    assert_int_equal(cfg.max_buffered, 10000);
    /* Invalid configurations. */
    cp2p_emitter *e = NULL;
    assert_int_equal(cp2p_emitter_new(&cfg, &e), CP2P_EINVAL); /* no send callback */
    cfg.send = on_send;
    cfg.iterations = 0;
    assert_int_equal(cp2p_emitter_new(&cfg, &e), CP2P_EINVAL);
    cfg.iterations = 1;
    cfg.burst_size = 0;
    assert_int_equal(cp2p_emitter_new(&cfg, &e), CP2P_EINVAL);
    cfg.burst_size = 10;
    cfg.fanout = 65;
    assert_int_equal(cp2p_emitter_new(&cfg, &e), CP2P_EINVAL);
    cfg.fanout = 3;
    cfg.n_kinds = 2; /* kinds NULL */
    assert_int_equal(cp2p_emitter_new(&cfg, &e), CP2P_EINVAL);
    assert_null(e);
    cp2p_emitter_free(NULL);
}

static void burst_triggers_emission(void **state)
{
    static rec r;
    cp2p_emitter_config cfg;
    uint64_t seed = 42;
    (void)state;
    memset(&r, 0, sizeof(r));
    cp2p_emitter_config_default(&cfg);
    cp2p_emitter *e = mk(&cfg, &r);
    assert_int_equal(cp2p_emitter_next_deadline(e, 0), UINT64_MAX);
    for (int i = 0; i < 9; i++) {
        add_msg(e, i, 0, 1000);
    }
    assert_int_equal(cp2p_emitter_next_deadline(e, 1000), 1010); /* latency, not burst */
    assert_int_equal(cp2p_emitter_tick(e, 1000, PEERS, 5, xorshift, &seed), 0);
    assert_int_equal(r.n, 0);
    add_msg(e, 9, 0, 1001);
    assert_true(cp2p_emitter_next_deadline(e, 1001) <= 1001); /* due now */
    assert_int_equal(cp2p_emitter_tick(e, 1001, PEERS, 5, xorshift, &seed), 1);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(count_to(&r, 0, i, -1), 3); /* fan-out 3, once per peer */
        for (int p = 0; p < 5; p++) {
            assert_true(count_to(&r, 0, i, p) <= 1);
        }
    }
    assert_true(r.n <= 5);
    assert_coalesced(&r, 0);
    const cp2p_emitter_stats *st = cp2p_emitter_stats_get(e);
    assert_int_equal(st->added, 10);
    assert_int_equal(st->emitted_batches, 1);
    assert_int_equal(st->sends, r.n);
    assert_int_equal(st->messages_sent, 30);
    assert_int_equal(cp2p_emitter_pending(e), 0);
    assert_int_equal(cp2p_emitter_next_deadline(e, 1001), UINT64_MAX);
    assert_int_equal(cp2p_emitter_tick(e, 5000, PEERS, 5, xorshift, &seed), 0);
    cp2p_emitter_free(e);
}

static void latency_triggers_partial_batch(void **state)
{
    static rec r;
    cp2p_emitter_config cfg;
    uint64_t seed = 7;
    (void)state;
    memset(&r, 0, sizeof(r));
    cp2p_emitter_config_default(&cfg);
    cp2p_emitter *e = mk(&cfg, &r);
    add_msg(e, 0, 0, 100);
    add_msg(e, 1, 0, 104);
    add_msg(e, 2, 0, 108);
    /* The deadline runs from the oldest queued message. */
    assert_int_equal(cp2p_emitter_next_deadline(e, 108), 110);
    assert_int_equal(cp2p_emitter_tick(e, 109, PEERS, 8, xorshift, &seed), 0);
    assert_int_equal(r.n, 0);
    assert_int_equal(cp2p_emitter_tick(e, 110, PEERS, 8, xorshift, &seed), 1);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(count_to(&r, 0, i, -1), 3);
    }
    assert_coalesced(&r, 0);
    assert_int_equal(cp2p_emitter_pending(e), 0);
    /* A new round starts with the next add. */
    add_msg(e, 3, 0, 500);
    assert_int_equal(cp2p_emitter_next_deadline(e, 500), 510);
    cp2p_emitter_free(e);
}

static void iterations_go_to_new_peers(void **state)
{
    static rec r;
    cp2p_emitter_config cfg;
    uint64_t seed = 99;
    (void)state;
    for (int trial = 0; trial < 20; trial++) {
        memset(&r, 0, sizeof(r));
        cp2p_emitter_config_default(&cfg);
        cfg.iterations = 3;
        cfg.fanout = 2;
        cp2p_emitter *e = mk(&cfg, &r);
        add_msg(e, 0, 0, 0);
        add_msg(e, 1, 0, 0);
        uint64_t now = 10;
        for (int it = 0; it < 3; it++) {
            assert_int_equal(cp2p_emitter_pending(e), 2);
            assert_int_equal(cp2p_emitter_next_deadline(e, now), now);
            size_t from = r.n;
            assert_int_equal(cp2p_emitter_tick(e, now, PEERS, 6, xorshift, &seed), 1);
            assert_coalesced(&r, from);
            assert_int_equal(count_to(&r, from, 0, -1), 2);
            /* Remaining messages wait a full latency for their next iteration. */
            now += 10;
        }
        assert_int_equal(cp2p_emitter_pending(e), 0);
        /* 3 iterations x 2 peers = 6 distinct peers of the 6 available, for each message. */
        for (int id = 0; id < 2; id++) {
            for (int p = 0; p < 6; p++) {
                assert_int_equal(count_to(&r, 0, id, p), 1);
            }
        }
        assert_int_equal(cp2p_emitter_stats_get(e)->emitted_batches, 3);
        assert_int_equal(cp2p_emitter_stats_get(e)->messages_sent, 12);
        cp2p_emitter_free(e);
    }
    /* Too few peers for all-new choices: the fan-out is kept by reusing peers. */
    memset(&r, 0, sizeof(r));
    cp2p_emitter_config_default(&cfg);
    cfg.iterations = 3;
    cfg.fanout = 1;
    cp2p_emitter *e = mk(&cfg, &r);
    add_msg(e, 0, 0, 0);
    for (int it = 0; it < 3; it++) {
        assert_int_equal(cp2p_emitter_flush(e, 0, PEERS, 2, xorshift, &seed), 1);
    }
    assert_int_equal(r.n, 3);
    assert_int_not_equal(r.calls[0].peer, r.calls[1].peer); /* the first two are distinct */
    assert_int_equal(cp2p_emitter_flush(e, 0, PEERS, 2, xorshift, &seed), 0);
    cp2p_emitter_free(e);
}

/* Peers 0..3 are "my organisation". */
static bool same_org(const cp2p_peer_id *p, void *ud)
{
    int *calls = ud;

    (*calls)++;
    return p->bytes[0] < 4;
}

static void partition_by_kind(void **state)
{
    static rec r;
    cp2p_emitter_config cfg;
    uint64_t seed = 5;
    int filter_calls = 0;
    cp2p_emitter_kind kinds[2] = {
        {.filter = same_org, .filter_ud = &filter_calls, .fanout = 4}, /* e.g. blocks */
        {.filter = NULL, .fanout = 2},                                   /* e.g. state info */
    };
    (void)state;
    memset(&r, 0, sizeof(r));
    cp2p_emitter_config_default(&cfg);
    cfg.kinds = kinds;
    cfg.n_kinds = 2;
    cp2p_emitter *e = mk(&cfg, &r);
    assert_int_equal(cp2p_emitter_add(e, "abc", 3, 2, 0), CP2P_EINVAL); /* no kind 2 */
    for (int i = 0; i < 8; i++) {
        add_msg(e, i, (uint32_t)(i % 2), 0);
    }
    assert_int_equal(cp2p_emitter_flush(e, 0, PEERS, 12, xorshift, &seed), 1);
    assert_int_equal(filter_calls, 12); /* once per candidate, not per message */
    for (int i = 0; i < 8; i += 2) {    /* kind 0: exactly the 4 same-org peers */
        for (int p = 0; p < 12; p++) {
            assert_int_equal(count_to(&r, 0, i, p), p < 4 ? 1 : 0);
        }
    }
    for (int i = 1; i < 8; i += 2) { /* kind 1: any 2 peers */
        assert_int_equal(count_to(&r, 0, i, -1), 2);
    }
    assert_coalesced(&r, 0);
    assert_int_equal(cp2p_emitter_stats_get(e)->messages_sent, 4 * 4 + 4 * 2);
    /* A kind whose filter passes nobody: the iteration is spent, unrouted and counted. */
    add_msg(e, 20, 0, 0);
    size_t from = r.n;
    assert_int_equal(cp2p_emitter_flush(e, 0, PEERS + 4, 8, xorshift, &seed), 1);
    assert_int_equal(r.n, from);
    assert_int_equal(cp2p_emitter_stats_get(e)->unrouted, 1);
    assert_int_equal(cp2p_emitter_pending(e), 0);
    cp2p_emitter_free(e);
}

static void one_send_per_peer_per_emission(void **state)
{
    static rec r;
    cp2p_emitter_config cfg;
    uint64_t seed = 1234;
    (void)state;
    memset(&r, 0, sizeof(r));
    cp2p_emitter_config_default(&cfg);
    cfg.fanout = 4;
    cp2p_emitter *e = mk(&cfg, &r);
    for (int i = 0; i < 5; i++) {
        add_msg(e, i, 0, 0);
    }
    assert_int_equal(cp2p_emitter_flush(e, 0, PEERS, 4, xorshift, &seed), 1);
    /* Every peer gets all 5 messages, in one call, in add order. */
    assert_int_equal(r.n, 4);
    for (size_t c = 0; c < 4; c++) {
        assert_int_equal(r.calls[c].n, 5);
        for (int i = 0; i < 5; i++) {
            assert_int_equal(r.calls[c].msgs[i], i);
        }
    }
    assert_coalesced(&r, 0);
    /* Many messages, many peers: one call per chosen peer, the totals add up. */
    memset(&r, 0, sizeof(r));
    cfg.fanout = 3;
    cfg.burst_size = 40;
    cp2p_emitter_free(e);
    e = mk(&cfg, &r);
    for (int i = 0; i < 40; i++) {
        add_msg(e, i, 0, 0);
    }
    assert_int_equal(cp2p_emitter_tick(e, 0, PEERS, NPEERS, xorshift, &seed), 1);
    assert_coalesced(&r, 0);
    size_t total = 0;
    for (size_t c = 0; c < r.n; c++) {
        total += r.calls[c].n;
    }
    assert_int_equal(total, 120);
    assert_int_equal(cp2p_emitter_stats_get(e)->sends, r.n);
    assert_true(r.n < 120); /* coalesced: far fewer frames than message copies */
    cp2p_emitter_free(e);
}

static void fanout_bounded_by_peers(void **state)
{
    static rec r;
    cp2p_emitter_config cfg;
    uint64_t seed = 3;
    (void)state;
    memset(&r, 0, sizeof(r));
    cp2p_emitter_config_default(&cfg);
    cfg.fanout = 5;
    cp2p_emitter *e = mk(&cfg, &r);
    add_msg(e, 0, 0, 0);
    add_msg(e, 1, 0, 0);
    assert_int_equal(cp2p_emitter_flush(e, 0, PEERS, 2, xorshift, &seed), 1);
    assert_int_equal(r.n, 2);
    for (int p = 0; p < 2; p++) {
        assert_int_equal(count_to(&r, 0, 0, p), 1);
        assert_int_equal(count_to(&r, 0, 1, p), 1);
    }
    /* No peers at all: nothing sent, iterations spent, counted. */
    add_msg(e, 2, 0, 0);
    assert_int_equal(cp2p_emitter_flush(e, 0, NULL, 0, xorshift, &seed), 1);
    assert_int_equal(r.n, 2);
    assert_int_equal(cp2p_emitter_stats_get(e)->unrouted, 1);
    /* Bad arguments. */
    add_msg(e, 3, 0, 0);
    assert_int_equal(cp2p_emitter_flush(e, 0, PEERS, 2, NULL, NULL), CP2P_EINVAL);
    assert_int_equal(cp2p_emitter_flush(e, 0, NULL, 2, xorshift, &seed), CP2P_EINVAL);
    assert_int_equal(cp2p_emitter_pending(e), 1);
    cp2p_emitter_free(e); /* frees the queued message */
}

static void full_buffer_is_refused_and_counted(void **state)
{
    static rec r;
    cp2p_emitter_config cfg;
    uint64_t seed = 11;
    (void)state;
    memset(&r, 0, sizeof(r));
    cp2p_emitter_config_default(&cfg);
    cfg.max_buffered = 4;
    cfg.burst_size = 100;
    cfg.max_msg_bytes = 3;
    cp2p_emitter *e = mk(&cfg, &r);
    for (int i = 0; i < 4; i++) {
        add_msg(e, i, 0, 0);
    }
    assert_int_equal(cp2p_emitter_add(e, "abc", 3, 0, 0), CP2P_EFULL);
    assert_int_equal(cp2p_emitter_add(e, "abc", 3, 0, 0), CP2P_EFULL);
    assert_int_equal(cp2p_emitter_add(e, "abcd", 4, 0, 0), CP2P_ELIMIT);
    assert_int_equal(cp2p_emitter_add(e, NULL, 3, 0, 0), CP2P_EINVAL);
    const cp2p_emitter_stats *st = cp2p_emitter_stats_get(e);
    assert_int_equal(st->refused_full, 2);
    assert_int_equal(st->refused_limit, 1);
    assert_int_equal(st->added, 4);
    assert_int_equal(cp2p_emitter_pending(e), 4);
    /* The queued messages are untouched; after an emission there is room again. */
    assert_int_equal(cp2p_emitter_flush(e, 0, PEERS, 3, xorshift, &seed), 1);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(count_to(&r, 0, i, -1), 3);
    }
    add_msg(e, 9, 0, 0);
    cp2p_emitter_free(e);
    /* The byte bound refuses too. */
    cp2p_emitter_config_default(&cfg);
    cfg.max_buffered_bytes = 300;
    e = mk(&cfg, &r);
    int ok = 0, rc;
    while ((rc = cp2p_emitter_add(e, "abc", 3, 0, 0)) == 0) {
        ok++;
        assert_true(ok < 100);
    }
    assert_int_equal(rc, CP2P_EFULL);
    assert_true(ok >= 1);
    assert_int_equal(cp2p_emitter_stats_get(e)->refused_full, 1);
    cp2p_emitter_free(e);
}

static void flush_on_demand(void **state)
{
    static rec r;
    cp2p_emitter_config cfg;
    uint64_t seed = 8;
    (void)state;
    memset(&r, 0, sizeof(r));
    cp2p_emitter_config_default(&cfg);
    cfg.iterations = 2;
    cp2p_emitter *e = mk(&cfg, &r);
    assert_int_equal(cp2p_emitter_flush(e, 0, PEERS, 4, xorshift, &seed), 0); /* empty */
    add_msg(e, 0, 0, 0);
    assert_int_equal(cp2p_emitter_tick(e, 1, PEERS, 4, xorshift, &seed), 0); /* not due */
    assert_int_equal(cp2p_emitter_flush(e, 1, PEERS, 4, xorshift, &seed), 1);
    assert_int_equal(count_to(&r, 0, 0, -1), 3);
    assert_int_equal(cp2p_emitter_pending(e), 1);               /* one iteration left */
    assert_int_equal(cp2p_emitter_next_deadline(e, 1), 11);     /* a new round from the flush */
    while (cp2p_emitter_pending(e) > 0) {
        assert_int_equal(cp2p_emitter_flush(e, 2, PEERS, 4, xorshift, &seed), 1);
    }
    assert_int_equal(count_to(&r, 0, 0, -1), 6);
    assert_int_equal(cp2p_emitter_stats_get(e)->emitted_batches, 2);
    cp2p_emitter_free(e);
}

static void callbacks_cannot_reenter(void **state)
{
    static rec r;
    cp2p_emitter_config cfg;
    uint64_t seed = 8;
    (void)state;
    memset(&r, 0, sizeof(r));
    cp2p_emitter_config_default(&cfg);
    cp2p_emitter *e = mk(&cfg, &r);
    add_msg(e, 0, 0, 0);
    r.e = e;
    assert_int_equal(cp2p_emitter_flush(e, 0, PEERS, 1, xorshift, &seed), 1);
    assert_int_equal(r.reenter_rc, CP2P_ESTATE);
    assert_int_equal(cp2p_emitter_pending(e), 0);
    cp2p_emitter_free(e);
}

/* Each allocation fails in turn: new/add report CP2P_ENOMEM; a failing emission leaves the queue
 * as it was (nothing sent, nothing spent). */
static void allocation_failures(void **state)
{
    static rec r;
    cp2p_emitter_config cfg;
    (void)state;
    cp2p_emitter_config_default(&cfg);
    for (long n = 1; n < 40; n++) {
        uint64_t seed = 77;
        cp2p_emitter *e = NULL;
        int rc;

        memset(&r, 0, sizeof(r));
        cfg.send = on_send;
        cfg.send_ud = &r;
        cp2p__alloc_fail_after(n);
        rc = cp2p_emitter_new(&cfg, &e);
        if (rc != 0) {
            assert_int_equal(rc, CP2P_ENOMEM);
            continue;
        }
        rc = cp2p_emitter_add(e, "abc", 3, 0, 0);
        if (rc == 0) {
            rc = cp2p_emitter_flush(e, 0, PEERS, 4, xorshift, &seed);
            if (rc < 0) {
                assert_int_equal(rc, CP2P_ENOMEM);
                assert_int_equal(r.n, 0);
                assert_int_equal(cp2p_emitter_pending(e), 1);
            } else {
                assert_int_equal(rc, 1);
                assert_int_equal(r.n, 3);
            }
        } else {
            assert_int_equal(rc, CP2P_ENOMEM);
            assert_int_equal(cp2p_emitter_pending(e), 0);
        }
        cp2p__alloc_fail_after(0);
        cp2p_emitter_free(e);
    }
    cp2p__alloc_fail_after(0);
}

int main(void)
{
    peers_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults_are_fabrics),
        cmocka_unit_test(burst_triggers_emission),
        cmocka_unit_test(latency_triggers_partial_batch),
        cmocka_unit_test(iterations_go_to_new_peers),
        cmocka_unit_test(partition_by_kind),
        cmocka_unit_test(one_send_per_peer_per_emission),
        cmocka_unit_test(fanout_bounded_by_peers),
        cmocka_unit_test(full_buffer_is_refused_and_counted),
        cmocka_unit_test(flush_on_demand),
        cmocka_unit_test(callbacks_cannot_reenter),
        cmocka_unit_test(allocation_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
