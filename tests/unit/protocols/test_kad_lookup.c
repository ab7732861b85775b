/* Kademlia lookup state machine, proven on a simulated network: 1,000 in-memory nodes, each with
 * a real routing table, answering FIND_NODE from it, with random virtual delays and failures;
 * plus hostile and degenerate cases (a peer flooding bogus peers, a silent peer, the deadline,
 * a network smaller than k). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <cp2p/peer_id.h>

#include "protocols/kad/kad_lookup.h"
#include "protocols/kad/kad_rt.h"
#include "util/alloc.h"
#include "util/limits.h"

static uint64_t rng_state = 0x243f6a8885a308d3ULL;

static uint64_t rng(void)
{
    /* splitmix64 */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static const uint8_t HDR[6] = {0x00, 0x24, 0x08, 0x01, 0x12, 0x20};
#define TAG 0x5a /* marks simulated-node IDs; bogus IDs use another byte */

/* An identity-style peer ID (Ed25519 protobuf key of random bytes). Simulated nodes carry their
 * index in bytes 7..10 so a query can be routed to them without a map. */
static cp2p_peer_id make_id(uint8_t tag, uint32_t idx)
{
    cp2p_peer_id p;
    memset(&p, 0, sizeof(p));
    memcpy(p.bytes, HDR, 6);
    for (size_t i = 0; i < 4; i++) {
        uint64_t r = rng();
        memcpy(p.bytes + 6 + 8 * i, &r, 8);
    }
    p.bytes[6] = tag;
    memcpy(p.bytes + 7, &idx, 4);
    p.len = 38;
    return p;
}

typedef struct node {
    cp2p_peer_id id;
    cp2p__kad_key key;
    cp2p__kad_rt *rt;
} node;

static node *net;
static uint32_t nnet;

static uint32_t node_of(const cp2p_peer_id *p)
{
    uint32_t idx;
    if (p->len != 38 || p->bytes[6] != TAG) {
        return UINT32_MAX;
    }
    memcpy(&idx, p->bytes + 7, 4);
    if (idx >= nnet || !cp2p_peer_id_equal(p, &net[idx].id)) {
        return UINT32_MAX;
    }
    return idx;
}

/* Every node learns every other node in random order; the bucket policy keeps at most k per
 * bucket (fresh entries are never evicted), as in a converged network. */
static void net_build(uint32_t n)
{
    cp2p__kad_rt_config cfg;
    uint32_t *order = calloc(n, sizeof(*order));
    assert_non_null(order);
    nnet = n;
    net = calloc(n, sizeof(*net));
    assert_non_null(net);
    cp2p__kad_rt_config_default(&cfg);
    for (uint32_t i = 0; i < n; i++) {
        net[i].id = make_id(TAG, i);
        cp2p__kad_key_of_peer(&net[i].id, &net[i].key);
        assert_int_equal(cp2p__kad_rt_new(&net[i].id, &cfg, &net[i].rt), 0);
        order[i] = i;
    }
    for (uint32_t i = 0; i < n; i++) {
        for (uint32_t j = n - 1; j > 0; j--) {
            uint32_t r = (uint32_t)(rng() % (j + 1)), t = order[j];
            order[j] = order[r];
            order[r] = t;
        }
        for (uint32_t j = 0; j < n; j++) {
            cp2p_peer_id chk;
            int rc = cp2p__kad_rt_add(net[i].rt, &net[order[j]].id, NULL, 0, &chk);
            assert_true(rc == CP2P__KAD_RT_ADDED || rc == CP2P__KAD_RT_FULL ||
                        rc == CP2P__KAD_RT_SELF);
        }
    }
    free(order);
}

static void net_free(void)
{
    for (uint32_t i = 0; i < nnet; i++) {
        cp2p__kad_rt_free(net[i].rt);
    }
    free(net);
    net = NULL;
    nnet = 0;
}

typedef struct ev {
    uint64_t at;
    uint32_t node;
    bool fail;
} ev;

typedef struct sim_result {
    bool exact;      /* the result is exactly the k closest non-failed nodes, in order */
    bool live_found; /* every non-failed node of the true k closest is in the result */
    bool done, timed_out;
    cp2p__kad_lookup_stats st;
} sim_result;

static size_t brute_force(uint32_t origin, const cp2p__kad_key *target, const bool *failed,
                          uint32_t truth[CP2P_KAD_K]);

/* One lookup from `origin` for `target`. fail_permille: share of queries answered by a failure
 * (4/5 of them) or by silence until the query timeout (1/5). */
static void sim_lookup(uint32_t origin, const cp2p__kad_key *target, unsigned fail_permille,
                       sim_result *res)
{
    cp2p__kad_lookup_config cfg;
    cp2p__kad_lookup *l;
    cp2p_peer_id seeds[CP2P_KAD_K], closer[CP2P_KAD_K], got[CP2P_KAD_K], p;
    ev evs[CP2P_KAD_MAX_ALPHA];
    size_t nev = 0;
    uint64_t now = 1000;
    bool *failed = calloc(nnet, sizeof(bool));

    assert_non_null(failed);
    cp2p__kad_lookup_config_default(&cfg);
    assert_int_equal(cp2p__kad_lookup_new(target, &net[origin].id, &cfg, now, &l), 0);
    size_t ns = cp2p__kad_rt_closest(net[origin].rt, target, seeds, CP2P_KAD_K);
    for (size_t i = 0; i < ns; i++) {
        assert_int_equal(cp2p__kad_lookup_seed(l, &seeds[i]), 0);
    }
    for (int guard = 0; guard < 100000; guard++) {
        while (cp2p__kad_lookup_next(l, now, &p)) {
            uint32_t idx = node_of(&p);
            assert_true(idx != UINT32_MAX && idx != origin);
            assert_true(nev < cfg.alpha);
            unsigned r = (unsigned)(rng() % 1000);
            uint64_t delay = 5 + rng() % 300;
            if (r < fail_permille) {
                failed[idx] = true;
                if (r % 5 == 0) {
                    continue; /* silent: tick() times it out */
                }
                evs[nev++] = (ev){now + delay, idx, true};
            } else {
                evs[nev++] = (ev){now + delay, idx, false};
            }
        }
        if (cp2p__kad_lookup_done(l)) {
            break;
        }
        size_t first = 0;
        for (size_t i = 1; i < nev; i++) {
            if (evs[i].at < evs[first].at) {
                first = i;
            }
        }
        uint64_t dl = cp2p__kad_lookup_next_deadline(l);
        if (nev > 0 && evs[first].at <= dl) {
            ev e = evs[first];
            evs[first] = evs[--nev];
            now = e.at;
            if (e.fail) {
                cp2p__kad_lookup_on_failure(l, &net[e.node].id, now);
            } else {
                size_t nc = cp2p__kad_rt_closest(net[e.node].rt, target, closer, CP2P_KAD_K);
                assert_int_equal(cp2p__kad_lookup_on_response(l, &net[e.node].id, closer, nc,
                                                              now),
                                 0);
            }
        } else {
            assert_true(dl != UINT64_MAX);
            now = dl;
            cp2p_peer_id to[CP2P_KAD_MAX_ALPHA];
            size_t nt = cp2p__kad_lookup_tick(l, now, to, CP2P_KAD_MAX_ALPHA);
            for (size_t i = 0; i < nt; i++) {
                assert_true(failed[node_of(&to[i])]); /* only silent peers time out */
            }
        }
    }
    res->done = cp2p__kad_lookup_done(l);
    res->timed_out = cp2p__kad_lookup_timed_out(l);
    cp2p__kad_lookup_stats_get(l, &res->st);

    size_t ng = cp2p__kad_lookup_result(l, got, CP2P_KAD_K);
    /* Brute force: the k closest nodes to the target, the origin excluded, and with the nodes
     * whose query failed in this lookup excluded too (a failed peer is never returned, by
     * design). */
    uint32_t truth[CP2P_KAD_K];
    size_t nt = brute_force(origin, target, NULL, truth);
    res->live_found = true;
    for (size_t i = 0; i < nt; i++) {
        bool in = failed[truth[i]];
        for (size_t j = 0; j < ng && !in; j++) {
            in = cp2p_peer_id_equal(&got[j], &net[truth[i]].id);
        }
        res->live_found = res->live_found && in;
    }
    nt = brute_force(origin, target, failed, truth);
    res->exact = ng == nt;
    for (size_t i = 0; res->exact && i < ng; i++) {
        res->exact = cp2p_peer_id_equal(&got[i], &net[truth[i]].id);
    }
    cp2p__kad_lookup_free(l);
    free(failed);
}

/* The k closest nodes to `target` (origin and, if given, failed nodes excluded), closest
 * first, into truth; returns how many. */
static size_t brute_force(uint32_t origin, const cp2p__kad_key *target, const bool *failed,
                          uint32_t truth[CP2P_KAD_K])
{
    size_t nt = 0;
    for (uint32_t i = 0; i < nnet; i++) {
        if (i == origin || (failed != NULL && failed[i])) {
            continue;
        }
        size_t at = nt < CP2P_KAD_K ? nt++ : CP2P_KAD_K;
        if (at == CP2P_KAD_K) {
            if (cp2p__kad_cmp_dist(target, &net[i].key, &net[truth[CP2P_KAD_K - 1]].key) >= 0) {
                continue;
            }
            at = CP2P_KAD_K - 1;
        }
        while (at > 0 && cp2p__kad_cmp_dist(target, &net[i].key, &net[truth[at - 1]].key) < 0) {
            truth[at] = truth[at - 1];
            at--;
        }
        truth[at] = i;
    }
    return nt;
}

static cp2p__kad_key rand_key(void)
{
    cp2p__kad_key k;
    for (size_t i = 0; i < 4; i++) {
        uint64_t r = rng();
        memcpy(k.b + 8 * i, &r, 8);
    }
    return k;
}

/* Runs `lookups` random lookups. Asserts that at least 99% find every non-failed node of the
 * true k closest, and that at least min_exact_pct% return exactly the k closest non-failed
 * nodes: with failures, the nodes ranked just past k replace the failed ones in that set, and
 * an honest node's answer (its k closest) may not name them, so that rate is a little lower. */
static void run_batch(const char *name, unsigned fail_permille, unsigned lookups,
                      unsigned min_exact_pct)
{
    unsigned exact = 0, found = 0, hist[16] = {0};
    uint64_t queries = 0;
    for (unsigned i = 0; i < lookups; i++) {
        cp2p__kad_key target = rand_key();
        uint32_t origin = (uint32_t)(rng() % nnet);
        sim_result r;
        sim_lookup(origin, &target, fail_permille, &r);
        assert_true(r.done);
        assert_false(r.timed_out);
        exact += r.exact;
        found += r.live_found;
        hist[r.st.rounds < 15 ? r.st.rounds : 15]++;
        queries += r.st.queried;
    }
    printf("kad lookup sim (%s): %u nodes, %u lookups\n", name, nnet, lookups);
    printf("  found every live node of the true k closest: %u (%.1f%%)\n", found,
           100.0 * found / lookups);
    printf("  result exactly the k closest live nodes: %u (%.1f%%)\n", exact,
           100.0 * exact / lookups);
    printf("  rounds:");
    for (unsigned i = 0; i < 16; i++) {
        if (hist[i] != 0) {
            printf(" %u:%u", i, hist[i]);
        }
    }
    printf("\n  mean queries per lookup: %.1f\n", (double)queries / lookups);
    assert_true(found * 100 >= lookups * 99);
    assert_true(exact * 100 >= lookups * min_exact_pct);
}

static void sim_1000_nodes_finds_the_k_closest(void **state)
{
    (void)state;
    rng_state = 0x243f6a8885a308d3ULL; /* the same network and lookups whatever ran before */
    net_build(1000);
    run_batch("no failures", 0, 500, 99);
    run_batch("5% of queries fail", 50, 500, 90);
    net_free();
}

static void network_smaller_than_k_ends_when_all_answered(void **state)
{
    (void)state;
    net_build(8);
    for (uint32_t origin = 0; origin < 8; origin++) {
        cp2p__kad_key target = rand_key();
        sim_result r;
        sim_lookup(origin, &target, 0, &r);
        assert_true(r.done);
        assert_false(r.timed_out);
        assert_true(r.exact);
        assert_int_equal(r.st.answered, 7);
        assert_int_equal(r.st.queried, 7);
        assert_int_equal(r.st.rounds, 1); /* everyone was a seed */
    }
    net_free();
}

static cp2p_peer_id any_id(void)
{
    return make_id(0x77, (uint32_t)rng());
}

static void flooding_peer_cannot_keep_it_going(void **state)
{
    cp2p__kad_lookup_config cfg;
    cp2p__kad_lookup *l;
    cp2p__kad_lookup_stats st;
    cp2p_peer_id self = any_id(), evil = any_id(), p, honest[5];
    cp2p__kad_key target = rand_key();
    enum { BOGUS = 5000 };
    cp2p_peer_id *flood = calloc(BOGUS + 2, sizeof(*flood));
    (void)state;
    assert_non_null(flood);
    cp2p__kad_lookup_config_default(&cfg);
    assert_int_equal(cp2p__kad_lookup_new(&target, &self, &cfg, 0, &l), 0);
    assert_int_equal(cp2p__kad_lookup_seed(l, &evil), 0);
    assert_int_equal(cp2p__kad_lookup_seed(l, &evil), 0); /* duplicate ignored */
    assert_int_equal(cp2p__kad_lookup_seed(l, &self), 0); /* self ignored */
    for (size_t i = 0; i < 5; i++) {
        honest[i] = any_id();
        assert_int_equal(cp2p__kad_lookup_seed(l, &honest[i]), 0);
    }
    cp2p__kad_lookup_stats_get(l, &st);
    assert_int_equal(st.candidates, 6);
    /* Ask everyone once; evil answers with itself, us, and 5,000 bogus peers. */
    uint64_t now = 0;
    for (int i = 0; i < 6; i++) {
        assert_true(cp2p__kad_lookup_next(l, now, &p));
    }
    flood[0] = evil;
    flood[1] = self;
    for (size_t i = 0; i < BOGUS; i++) {
        flood[i + 2] = any_id();
    }
    assert_int_equal(cp2p__kad_lookup_on_response(l, &evil, flood, BOGUS + 2, 10), 0);
    /* A second answer from evil is ignored (not in flight any more). */
    assert_int_equal(cp2p__kad_lookup_on_response(l, &evil, flood, BOGUS + 2, 11), 0);
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(cp2p__kad_lookup_on_response(l, &honest[i], NULL, 0, 12), 0);
    }
    cp2p__kad_lookup_stats_get(l, &st);
    assert_true(st.candidates <= CP2P_KAD_LOOKUP_MAX_CANDIDATES);
    assert_int_equal(st.candidates, 6 + CP2P_KAD_MAX_CLOSER_PER_RESPONSE);
    assert_int_equal(st.closer_dropped, BOGUS - CP2P_KAD_MAX_CLOSER_PER_RESPONSE);
    /* The bogus peers fail as they are dialed; the lookup then ends with the honest ones. */
    int steps = 0;
    while (!cp2p__kad_lookup_done(l)) {
        now += 1;
        int sent = 0;
        while (cp2p__kad_lookup_next(l, now, &p)) {
            assert_false(cp2p_peer_id_equal(&p, &evil));
            cp2p__kad_lookup_on_failure(l, &p, now);
            sent++;
        }
        assert_true(sent > 0);
        assert_true(++steps < 1000);
    }
    assert_false(cp2p__kad_lookup_timed_out(l));
    cp2p__kad_lookup_stats_get(l, &st);
    assert_int_equal(st.queried, 6 + CP2P_KAD_MAX_CLOSER_PER_RESPONSE);
    assert_int_equal(st.failed, CP2P_KAD_MAX_CLOSER_PER_RESPONSE);
    assert_int_equal(st.answered, 6);
    assert_int_equal(st.rounds, 1);
    cp2p_peer_id res[CP2P_KAD_K];
    assert_int_equal(cp2p__kad_lookup_result(l, res, CP2P_KAD_K), 6);
    free(flood);
    cp2p__kad_lookup_free(l);
}

static void candidates_are_capped_keeping_the_closest(void **state)
{
    cp2p__kad_lookup_config cfg;
    cp2p__kad_lookup *l;
    cp2p__kad_lookup_stats st;
    cp2p_peer_id self = any_id(), p;
    cp2p__kad_key target = rand_key();
    cp2p_peer_id batch[CP2P_KAD_MAX_CLOSER_PER_RESPONSE];
    (void)state;
    cp2p__kad_lookup_config_default(&cfg);
    cfg.alpha = CP2P_KAD_MAX_ALPHA;
    cfg.k = CP2P_KAD_MAX_K; /* next() asks within the k closest non-failed only */
    assert_int_equal(cp2p__kad_lookup_new(&target, &self, &cfg, 0, &l), 0);
    /* 64 seeds; each answers with 40 new peers: 64 + 2,560 heard, capped at 512. */
    cp2p_peer_id seeds[CP2P_KAD_MAX_ALPHA];
    for (size_t i = 0; i < CP2P_KAD_MAX_ALPHA; i++) {
        seeds[i] = any_id();
        assert_int_equal(cp2p__kad_lookup_seed(l, &seeds[i]), 0);
    }
    for (size_t i = 0; i < CP2P_KAD_MAX_ALPHA; i++) {
        assert_true(cp2p__kad_lookup_next(l, 0, &p));
    }
    assert_false(cp2p__kad_lookup_next(l, 0, &p)); /* alpha in flight */
    for (size_t i = 0; i < CP2P_KAD_MAX_ALPHA; i++) {
        for (size_t j = 0; j < CP2P_KAD_MAX_CLOSER_PER_RESPONSE; j++) {
            batch[j] = any_id();
        }
        assert_int_equal(cp2p__kad_lookup_on_response(l, &seeds[i], batch,
                                                      CP2P_KAD_MAX_CLOSER_PER_RESPONSE, 1),
                         0);
    }
    cp2p__kad_lookup_stats_get(l, &st);
    assert_int_equal(st.candidates, CP2P_KAD_LOOKUP_MAX_CANDIDATES);
    assert_int_equal(st.closer_dropped, CP2P_KAD_MAX_ALPHA * CP2P_KAD_MAX_CLOSER_PER_RESPONSE +
                                            CP2P_KAD_MAX_ALPHA - CP2P_KAD_LOOKUP_MAX_CANDIDATES);
    /* The next peers asked come closest first: distances never decrease. */
    cp2p__kad_key prev, cur;
    for (size_t i = 0; i < 30; i++) {
        assert_true(cp2p__kad_lookup_next(l, 2, &p));
        cp2p__kad_key_of_peer(&p, &cur);
        if (i > 0) {
            assert_true(cp2p__kad_cmp_dist(&target, &prev, &cur) < 0);
        }
        prev = cur;
    }
    cp2p__kad_lookup_free(l);
}

static void silent_peer_times_out_and_deadline_ends_it(void **state)
{
    cp2p__kad_lookup_config cfg;
    cp2p__kad_lookup *l;
    cp2p__kad_lookup_stats st;
    cp2p_peer_id self = any_id(), a = any_id(), b = any_id(), p, to[4], res[4];
    cp2p__kad_key target = rand_key();
    (void)state;
    cp2p__kad_lookup_config_default(&cfg);
    assert_int_equal(cp2p__kad_lookup_new(&target, &self, &cfg, 100, &l), 0);
    /* Nobody to ask: done at once (an empty routing table). */
    assert_true(cp2p__kad_lookup_done(l));
    assert_false(cp2p__kad_lookup_timed_out(l));
    assert_int_equal(cp2p__kad_lookup_next_deadline(l), UINT64_MAX);
    assert_int_equal(cp2p__kad_lookup_seed(l, &a), 0);
    assert_int_equal(cp2p__kad_lookup_seed(l, &b), 0);
    assert_false(cp2p__kad_lookup_done(l));
    assert_int_equal(cp2p__kad_lookup_next_deadline(l), 100 + CP2P_KAD_LOOKUP_TIMEOUT_MS);
    assert_true(cp2p__kad_lookup_next(l, 100, &p));
    assert_true(cp2p__kad_lookup_next(l, 200, &p));
    assert_false(cp2p__kad_lookup_next(l, 200, &p));
    /* The first one sent answers; the other stays silent. */
    cp2p_peer_id first = cp2p_peer_id_equal(&p, &a) ? b : a, silent = p;
    assert_int_equal(cp2p__kad_lookup_on_response(l, &first, NULL, 0, 150), 0);
    assert_false(cp2p__kad_lookup_done(l));
    assert_int_equal(cp2p__kad_lookup_next_deadline(l), 200 + CP2P_KAD_QUERY_TIMEOUT_MS);
    assert_int_equal(cp2p__kad_lookup_tick(l, 199 + CP2P_KAD_QUERY_TIMEOUT_MS, to, 4), 0);
    assert_int_equal(cp2p__kad_lookup_tick(l, 200 + CP2P_KAD_QUERY_TIMEOUT_MS, to, 4), 1);
    assert_true(cp2p_peer_id_equal(&to[0], &silent));
    assert_true(cp2p__kad_lookup_done(l));
    assert_false(cp2p__kad_lookup_timed_out(l));
    assert_int_equal(cp2p__kad_lookup_next_deadline(l), UINT64_MAX);
    /* A late answer from the timed-out peer is ignored. */
    assert_int_equal(cp2p__kad_lookup_on_response(l, &silent, &a, 1, 20000), 0);
    assert_int_equal(cp2p__kad_lookup_result(l, res, 4), 1);
    assert_true(cp2p_peer_id_equal(&res[0], &first));
    cp2p__kad_lookup_stats_get(l, &st);
    assert_int_equal(st.timed_out, 1);
    assert_int_equal(st.answered, 1);
    assert_int_equal(st.in_flight, 0);
    cp2p__kad_lookup_free(l);

    /* The whole-lookup deadline: queries outlive it, the lookup does not. */
    cfg.query_timeout_ms = 120000;
    assert_int_equal(cp2p__kad_lookup_new(&target, &self, &cfg, 0, &l), 0);
    assert_int_equal(cp2p__kad_lookup_seed(l, &a), 0);
    assert_true(cp2p__kad_lookup_next(l, 0, &p));
    assert_int_equal(cp2p__kad_lookup_next_deadline(l), CP2P_KAD_LOOKUP_TIMEOUT_MS);
    assert_int_equal(cp2p__kad_lookup_tick(l, CP2P_KAD_LOOKUP_TIMEOUT_MS - 1, to, 4), 0);
    assert_false(cp2p__kad_lookup_done(l));
    assert_int_equal(cp2p__kad_lookup_tick(l, CP2P_KAD_LOOKUP_TIMEOUT_MS, to, 4), 0);
    assert_true(cp2p__kad_lookup_done(l));
    assert_true(cp2p__kad_lookup_timed_out(l));
    assert_false(cp2p__kad_lookup_next(l, CP2P_KAD_LOOKUP_TIMEOUT_MS, &p));
    assert_int_equal(cp2p__kad_lookup_result(l, res, 4), 0);
    cp2p__kad_lookup_free(l);
}

/* Sorts three random peers by distance to target. */
static void three_sorted(const cp2p__kad_key *target, cp2p_peer_id out[3])
{
    for (int i = 0; i < 3; i++) {
        out[i] = any_id();
    }
    for (int i = 0; i < 3; i++) {
        for (int j = 0; j + 1 < 3 - i; j++) {
            cp2p__kad_key a, b;
            cp2p__kad_key_of_peer(&out[j], &a);
            cp2p__kad_key_of_peer(&out[j + 1], &b);
            if (cp2p__kad_cmp_dist(target, &a, &b) > 0) {
                cp2p_peer_id t = out[j];
                out[j] = out[j + 1];
                out[j + 1] = t;
            }
        }
    }
}

static void asks_only_within_the_k_closest(void **state)
{
    cp2p__kad_lookup_config cfg;
    cp2p__kad_lookup *l;
    cp2p__kad_key target = rand_key();
    cp2p_peer_id s[3], p, res[3];
    (void)state;
    three_sorted(&target, s);
    cp2p__kad_lookup_config_default(&cfg);
    cfg.k = 2;
    assert_int_equal(cp2p__kad_lookup_new(&target, NULL, &cfg, 0, &l), 0);
    for (int i = 2; i >= 0; i--) {
        assert_int_equal(cp2p__kad_lookup_seed(l, &s[i]), 0);
    }
    assert_true(cp2p__kad_lookup_next(l, 0, &p));
    assert_true(cp2p_peer_id_equal(&p, &s[0]));
    assert_true(cp2p__kad_lookup_next(l, 0, &p));
    assert_true(cp2p_peer_id_equal(&p, &s[1]));
    /* s[2] is third: not asked while the two closest may still answer. */
    assert_false(cp2p__kad_lookup_next(l, 0, &p));
    cp2p__kad_lookup_on_failure(l, &s[0], 1);
    assert_true(cp2p__kad_lookup_next(l, 1, &p));
    assert_true(cp2p_peer_id_equal(&p, &s[2]));
    assert_int_equal(cp2p__kad_lookup_on_response(l, &s[2], NULL, 0, 2), 0);
    assert_false(cp2p__kad_lookup_done(l));
    assert_int_equal(cp2p__kad_lookup_on_response(l, &s[1], NULL, 0, 3), 0);
    assert_true(cp2p__kad_lookup_done(l));
    assert_int_equal(cp2p__kad_lookup_result(l, res, 3), 2);
    assert_true(cp2p_peer_id_equal(&res[0], &s[1]));
    assert_true(cp2p_peer_id_equal(&res[1], &s[2]));
    cp2p__kad_lookup_free(l);
}

/* Every allocation failing in turn: ENOMEM, nothing leaks (ASan), the lookup stays usable. */
static void allocation_failures(void **state)
{
    cp2p__kad_lookup_config cfg;
    cp2p__kad_key target = rand_key();
    cp2p_peer_id seed = any_id(), batch[40], p;
    (void)state;
    for (int i = 0; i < 40; i++) {
        batch[i] = any_id();
    }
    cp2p__kad_lookup_config_default(&cfg);
    for (long n = 1; n < 10; n++) {
        cp2p__kad_lookup *l = NULL;
        cp2p__alloc_fail_after(n);
        int rc = cp2p__kad_lookup_new(&target, NULL, &cfg, 0, &l);
        if (rc == 0) {
            rc = cp2p__kad_lookup_seed(l, &seed);
        }
        if (rc == 0 && cp2p__kad_lookup_next(l, 0, &p)) {
            rc = cp2p__kad_lookup_on_response(l, &seed, batch, 40, 1);
        }
        cp2p__alloc_fail_after(0);
        assert_true(rc == 0 || rc == CP2P_ENOMEM);
        if (l != NULL) {
            cp2p__kad_lookup_stats st;
            cp2p__kad_lookup_stats_get(l, &st);
            assert_true(st.candidates <= 41);
            while (cp2p__kad_lookup_next(l, 2, &p)) {
                cp2p__kad_lookup_on_failure(l, &p, 2);
            }
        }
        cp2p__kad_lookup_free(l);
    }
}

static void config_is_checked(void **state)
{
    cp2p__kad_lookup_config cfg;
    cp2p__kad_lookup *l = NULL;
    cp2p__kad_key target = rand_key();
    (void)state;
    cp2p__kad_lookup_config_default(&cfg);
    assert_int_equal(cfg.k, 20);
    assert_int_equal(cfg.alpha, 10);
    cfg.alpha = 0;
    assert_int_equal(cp2p__kad_lookup_new(&target, NULL, &cfg, 0, &l), CP2P_EINVAL);
    cfg.alpha = CP2P_KAD_MAX_ALPHA + 1;
    assert_int_equal(cp2p__kad_lookup_new(&target, NULL, &cfg, 0, &l), CP2P_EINVAL);
    cfg.alpha = 3;
    cfg.k = 0;
    assert_int_equal(cp2p__kad_lookup_new(&target, NULL, &cfg, 0, &l), CP2P_EINVAL);
    assert_null(l);
    cp2p__kad_lookup_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(config_is_checked),
        cmocka_unit_test(silent_peer_times_out_and_deadline_ends_it),
        cmocka_unit_test(asks_only_within_the_k_closest),
        cmocka_unit_test(allocation_failures),
        cmocka_unit_test(flooding_peer_cannot_keep_it_going),
        cmocka_unit_test(candidates_are_capped_keeping_the_closest),
        cmocka_unit_test(network_smaller_than_k_ends_when_all_answered),
        cmocka_unit_test(sim_1000_nodes_finds_the_k_closest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
