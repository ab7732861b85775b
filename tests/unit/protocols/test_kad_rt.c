/* Kademlia routing table: placement, full buckets and liveness checks, diversity, closest(),
 * refresh, key generation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <cp2p/multiaddr.h>
#include <cp2p/peer_id.h>

#include "protocols/kad/kad_rt.h"
#include "util/alloc.h"
#include "util/limits.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rng(void *ud)
{
    (void)ud;
    /* splitmix64 */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* A random identity-style peer ID (Ed25519 protobuf key of random bytes). */
static cp2p_peer_id rand_peer(void)
{
    static const uint8_t HDR[6] = {0x00, 0x24, 0x08, 0x01, 0x12, 0x20};
    cp2p_peer_id p;
    memset(&p, 0, sizeof(p));
    memcpy(p.bytes, HDR, 6);
    for (size_t i = 0; i < 4; i++) {
        uint64_t r = rng(NULL);
        memcpy(p.bytes + 6 + 8 * i, &r, 8);
    }
    p.len = 38;
    return p;
}

static unsigned cpl_with(const cp2p_peer_id *a, const cp2p_peer_id *b)
{
    cp2p__kad_key ka, kb;
    cp2p__kad_key_of_peer(a, &ka);
    cp2p__kad_key_of_peer(b, &kb);
    return cp2p__kad_cpl(&ka, &kb);
}

/* A random peer whose cpl with `self` is exactly `cpl`. */
static cp2p_peer_id peer_at(const cp2p_peer_id *self, unsigned cpl)
{
    for (;;) {
        cp2p_peer_id p = rand_peer();
        if (cpl_with(self, &p) == cpl) {
            return p;
        }
    }
}

static cp2p_multiaddr *ma(const char *s)
{
    cp2p_multiaddr *m = NULL;
    assert_int_equal(cp2p_multiaddr_parse(s, strlen(s), &m), 0);
    return m;
}

static cp2p__kad_rt *rt_make(const cp2p_peer_id *self, uint32_t k)
{
    cp2p__kad_rt_config cfg;
    cp2p__kad_rt *rt = NULL;
    cp2p__kad_rt_config_default(&cfg);
    cfg.k = k;
    assert_int_equal(cp2p__kad_rt_new(self, &cfg, &rt), 0);
    return rt;
}

static void config_is_checked(void **state)
{
    cp2p__kad_rt_config cfg;
    cp2p__kad_rt *rt = NULL;
    cp2p_peer_id self = rand_peer();
    (void)state;
    cp2p__kad_rt_config_default(&cfg);
    assert_int_equal(cfg.k, 20);
    assert_int_equal(cfg.max_per_group_bucket, 2);
    cfg.k = 0;
    assert_int_equal(cp2p__kad_rt_new(&self, &cfg, &rt), CP2P_EINVAL);
    cfg.k = CP2P_KAD_MAX_K + 1;
    assert_int_equal(cp2p__kad_rt_new(&self, &cfg, &rt), CP2P_EINVAL);
    assert_null(rt);
    cp2p__kad_rt_free(NULL);
}

static void placement_by_cpl_and_self(void **state)
{
    cp2p_peer_id self = rand_peer(), chk;
    cp2p__kad_rt *rt = rt_make(&self, 20);
    (void)state;
    assert_int_equal(cp2p__kad_rt_add(rt, &self, NULL, 0, &chk), CP2P__KAD_RT_SELF);
    cp2p_peer_id p[6];
    for (unsigned i = 0; i < 6; i++) {
        p[i] = peer_at(&self, i);
        assert_int_equal(cp2p__kad_rt_add(rt, &p[i], NULL, 0, &chk), CP2P__KAD_RT_ADDED);
    }
    assert_int_equal(cp2p__kad_rt_add(rt, &p[3], NULL, 5, &chk), CP2P__KAD_RT_UPDATED);
    assert_int_equal(cp2p__kad_rt_size(rt), 6);
    /* rt_at lists bucket order: bucket i holds p[i]. */
    for (size_t i = 0; i < 6; i++) {
        cp2p_peer_id q;
        assert_true(cp2p__kad_rt_at(rt, i, &q));
        assert_true(cp2p_peer_id_equal(&q, &p[i]));
    }
    cp2p_peer_id q;
    assert_false(cp2p__kad_rt_at(rt, 6, &q));
    /* remove */
    assert_true(cp2p__kad_rt_remove(rt, &p[2]));
    assert_false(cp2p__kad_rt_remove(rt, &p[2]));
    assert_false(cp2p__kad_rt_contains(rt, &p[2]));
    assert_true(cp2p__kad_rt_contains(rt, &p[1]));
    assert_int_equal(cp2p__kad_rt_size(rt), 5);
    cp2p__kad_rt_stats st;
    cp2p__kad_rt_stats_get(rt, &st);
    assert_int_equal(st.added, 6);
    assert_int_equal(st.removed, 1);
    cp2p__kad_rt_free(rt);
}

static void full_bucket_check_and_replace(void **state)
{
    const uint64_t STALE = CP2P_KAD_STALE_AFTER_MS;
    cp2p_peer_id self = rand_peer(), chk, p[4];
    cp2p__kad_rt *rt = rt_make(&self, 4);
    cp2p__kad_rt_stats st;
    (void)state;
    for (unsigned i = 0; i < 4; i++) {
        p[i] = peer_at(&self, 0);
        assert_int_equal(cp2p__kad_rt_add(rt, &p[i], NULL, 1000 + i, &chk), CP2P__KAD_RT_ADDED);
    }
    /* Fresh and full: refused. */
    cp2p_peer_id n1 = peer_at(&self, 0);
    assert_int_equal(cp2p__kad_rt_add(rt, &n1, NULL, 2000, &chk), CP2P__KAD_RT_FULL);
    assert_false(cp2p__kad_rt_contains(rt, &n1));
    /* Other buckets are unaffected. */
    cp2p_peer_id o = peer_at(&self, 1);
    assert_int_equal(cp2p__kad_rt_add(rt, &o, NULL, 2000, &chk), CP2P__KAD_RT_ADDED);
    /* p[0] seen again recently: p[1] becomes the least recently seen. */
    cp2p__kad_rt_seen(rt, &p[0], 1500);
    uint64_t t = 1001 + STALE;
    memset(&chk, 0, sizeof(chk));
    assert_int_equal(cp2p__kad_rt_add(rt, &n1, NULL, t, &chk), CP2P__KAD_RT_CHECK);
    assert_true(cp2p_peer_id_equal(&chk, &p[1]));
    /* A second newcomer while the check runs becomes the pending one. */
    cp2p_peer_id n2 = peer_at(&self, 0);
    assert_int_equal(cp2p__kad_rt_add(rt, &n2, NULL, t + 1, &chk), CP2P__KAD_RT_PENDING);
    /* Dead: removed, pending n2 takes its place. */
    assert_true(cp2p__kad_rt_check_done(rt, &p[1], false, t + 2));
    assert_false(cp2p__kad_rt_contains(rt, &p[1]));
    assert_true(cp2p__kad_rt_contains(rt, &n2));
    assert_false(cp2p__kad_rt_contains(rt, &n1));
    assert_int_equal(cp2p__kad_rt_size(rt), 5);
    cp2p__kad_rt_stats_get(rt, &st);
    assert_int_equal(st.replaced, 1);
    assert_int_equal(st.checks_asked, 1);
    assert_int_equal(st.refused_full, 1);

    /* Next stale check: p[2] (last seen 1002) is the least recently seen; alive keeps it and
     * drops the pending newcomer. */
    t = 1002 + STALE;
    assert_int_equal(cp2p__kad_rt_add(rt, &n1, NULL, t, &chk), CP2P__KAD_RT_CHECK);
    assert_true(cp2p_peer_id_equal(&chk, &p[2]));
    assert_false(cp2p__kad_rt_check_done(rt, &p[2], true, t + 1));
    assert_true(cp2p__kad_rt_contains(rt, &p[2]));
    assert_false(cp2p__kad_rt_contains(rt, &n1));
    /* The pending was dropped: removing someone now frees a slot nobody takes. */
    assert_true(cp2p__kad_rt_remove(rt, &p[3]));
    assert_false(cp2p__kad_rt_contains(rt, &n1));
    assert_int_equal(cp2p__kad_rt_size(rt), 4);
    /* p[2] is fresh again (seen at t + 1): with room, a newcomer is simply added. */
    assert_int_equal(cp2p__kad_rt_add(rt, &n1, NULL, t + 2, &chk), CP2P__KAD_RT_ADDED);
    cp2p__kad_rt_free(rt);
}

static void abandoned_check_is_retried(void **state)
{
    const uint64_t STALE = CP2P_KAD_STALE_AFTER_MS;
    cp2p_peer_id self = rand_peer(), chk, p;
    cp2p__kad_rt *rt = rt_make(&self, 1);
    (void)state;
    p = peer_at(&self, 0);
    assert_int_equal(cp2p__kad_rt_add(rt, &p, NULL, 0, &chk), CP2P__KAD_RT_ADDED);
    cp2p_peer_id n = peer_at(&self, 0);
    assert_int_equal(cp2p__kad_rt_add(rt, &n, NULL, STALE, &chk), CP2P__KAD_RT_CHECK);
    assert_int_equal(cp2p__kad_rt_add(rt, &n, NULL, STALE + 1, &chk), CP2P__KAD_RT_PENDING);
    /* Never answered: after stale_after_ms more, a new check is asked. */
    assert_int_equal(cp2p__kad_rt_add(rt, &n, NULL, 2 * STALE, &chk), CP2P__KAD_RT_CHECK);
    assert_true(cp2p_peer_id_equal(&chk, &p));
    cp2p__kad_rt_free(rt);
}

static void diversity_limits(void **state)
{
    cp2p_peer_id self = rand_peer(), chk;
    cp2p__kad_rt *rt = rt_make(&self, 20);
    cp2p__kad_rt_stats st;
    cp2p_multiaddr *a1 = ma("/ip4/10.0.0.1/tcp/4001"), *a2 = ma("/ip4/10.0.0.2/tcp/4001"),
                   *a3 = ma("/ip4/10.0.0.3/udp/4001/quic-v1"), *b1 = ma("/ip4/10.0.1.1/tcp/1"),
                   *lo = ma("/ip4/127.0.0.1/tcp/1"), *lo6 = ma("/ip6/::1/tcp/1"),
                   *v6a = ma("/ip6/2001:db8:1::1/tcp/1"), *v6b = ma("/ip6/2001:db8:1:ff::2/tcp/1"),
                   *v6c = ma("/ip6/2001:db8:1:77::3/tcp/1"), *dns = ma("/dns4/example.com/tcp/1");
    (void)state;
    /* Three peers of 10.0.0.0/24 into one bucket: the third is refused. */
    cp2p_peer_id p1 = peer_at(&self, 0), p2 = peer_at(&self, 0), p3 = peer_at(&self, 0);
    assert_int_equal(cp2p__kad_rt_add(rt, &p1, a1, 0, &chk), CP2P__KAD_RT_ADDED);
    assert_int_equal(cp2p__kad_rt_add(rt, &p2, a2, 0, &chk), CP2P__KAD_RT_ADDED);
    assert_int_equal(cp2p__kad_rt_add(rt, &p3, a3, 0, &chk), CP2P__KAD_RT_DIVERSITY);
    cp2p__kad_rt_stats_get(rt, &st);
    assert_int_equal(st.refused_diversity, 1);
    /* Another /24, no address, a DNS address: fine. */
    assert_int_equal(cp2p__kad_rt_add(rt, &p3, b1, 0, &chk), CP2P__KAD_RT_ADDED);
    cp2p_peer_id p4 = peer_at(&self, 0), p5 = peer_at(&self, 0);
    assert_int_equal(cp2p__kad_rt_add(rt, &p4, NULL, 0, &chk), CP2P__KAD_RT_ADDED);
    assert_int_equal(cp2p__kad_rt_add(rt, &p5, dns, 0, &chk), CP2P__KAD_RT_ADDED);
    /* IPv6 /48. */
    cp2p_peer_id q1 = peer_at(&self, 1), q2 = peer_at(&self, 1), q3 = peer_at(&self, 1);
    assert_int_equal(cp2p__kad_rt_add(rt, &q1, v6a, 0, &chk), CP2P__KAD_RT_ADDED);
    assert_int_equal(cp2p__kad_rt_add(rt, &q2, v6b, 0, &chk), CP2P__KAD_RT_ADDED);
    assert_int_equal(cp2p__kad_rt_add(rt, &q3, v6c, 0, &chk), CP2P__KAD_RT_DIVERSITY);
    /* Loopback is exempt by default. */
    for (int i = 0; i < 4; i++) {
        cp2p_peer_id l = peer_at(&self, 2), l6 = peer_at(&self, 2);
        assert_int_equal(cp2p__kad_rt_add(rt, &l, lo, 0, &chk), CP2P__KAD_RT_ADDED);
        assert_int_equal(cp2p__kad_rt_add(rt, &l6, lo6, 0, &chk), CP2P__KAD_RT_ADDED);
    }
    cp2p__kad_rt_free(rt);

    /* limit_loopback, and the table-wide limit across buckets. */
    cp2p__kad_rt_config cfg;
    cp2p__kad_rt_config_default(&cfg);
    cfg.limit_loopback = true;
    cfg.max_per_group_table = 3;
    assert_int_equal(cp2p__kad_rt_new(&self, &cfg, &rt), 0);
    cp2p_peer_id l1 = peer_at(&self, 0), l2 = peer_at(&self, 0), l3 = peer_at(&self, 0);
    assert_int_equal(cp2p__kad_rt_add(rt, &l1, lo, 0, &chk), CP2P__KAD_RT_ADDED);
    assert_int_equal(cp2p__kad_rt_add(rt, &l2, lo, 0, &chk), CP2P__KAD_RT_ADDED);
    assert_int_equal(cp2p__kad_rt_add(rt, &l3, lo, 0, &chk), CP2P__KAD_RT_DIVERSITY);
    cp2p_peer_id t1 = peer_at(&self, 1), t2 = peer_at(&self, 2), t3 = peer_at(&self, 3),
                 t4 = peer_at(&self, 4);
    assert_int_equal(cp2p__kad_rt_add(rt, &t1, a1, 0, &chk), CP2P__KAD_RT_ADDED);
    assert_int_equal(cp2p__kad_rt_add(rt, &t2, a2, 0, &chk), CP2P__KAD_RT_ADDED);
    assert_int_equal(cp2p__kad_rt_add(rt, &t3, a3, 0, &chk), CP2P__KAD_RT_ADDED);
    assert_int_equal(cp2p__kad_rt_add(rt, &t4, a1, 0, &chk), CP2P__KAD_RT_DIVERSITY);
    /* A slot of the group frees up: the group may enter again. */
    assert_true(cp2p__kad_rt_remove(rt, &t2));
    assert_int_equal(cp2p__kad_rt_add(rt, &t4, a1, 0, &chk), CP2P__KAD_RT_ADDED);
    cp2p__kad_rt_stats_get(rt, &st);
    assert_int_equal(st.refused_diversity, 2);
    cp2p__kad_rt_free(rt);
    cp2p_multiaddr *all[] = {a1, a2, a3, b1, lo, lo6, v6a, v6b, v6c, dns};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        cp2p_multiaddr_free(all[i]);
    }
}

typedef struct keyed {
    cp2p_peer_id id;
    cp2p__kad_key key;
} keyed;

static cp2p__kad_key sort_target;

static int keyed_cmp(const void *a, const void *b)
{
    return cp2p__kad_cmp_dist(&sort_target, &((const keyed *)a)->key, &((const keyed *)b)->key);
}

static void closest_matches_brute_force(void **state)
{
    cp2p_peer_id self = rand_peer(), chk;
    cp2p__kad_rt *rt = rt_make(&self, 20);
    (void)state;
    for (int i = 0; i < 600; i++) {
        cp2p_peer_id p = rand_peer();
        assert_true(cp2p__kad_rt_add(rt, &p, NULL, 0, &chk) >= 0);
    }
    /* some deep peers too */
    for (unsigned c = 5; c < 10; c++) {
        cp2p_peer_id p = peer_at(&self, c);
        assert_true(cp2p__kad_rt_add(rt, &p, NULL, 0, &chk) >= 0);
    }
    size_t n = cp2p__kad_rt_size(rt);
    assert_true(n > 100);
    keyed *all = calloc(n, sizeof(*all));
    cp2p_peer_id *out = calloc(n + 5, sizeof(*out));
    assert_non_null(all);
    assert_non_null(out);
    for (size_t i = 0; i < n; i++) {
        assert_true(cp2p__kad_rt_at(rt, i, &all[i].id));
        cp2p__kad_key_of_peer(&all[i].id, &all[i].key);
    }
    for (int t = 0; t < 60; t++) {
        cp2p__kad_key target;
        if (t == 0) {
            cp2p__kad_key_of_peer(&self, &target); /* our own key */
        } else if (t < 10) {
            cp2p__kad_key_of_peer(&all[rng(NULL) % n].id, &target); /* a member's key */
        } else {
            for (size_t i = 0; i < 4; i++) {
                uint64_t r = rng(NULL);
                memcpy(target.b + 8 * i, &r, 8);
            }
        }
        sort_target = target;
        qsort(all, n, sizeof(*all), keyed_cmp);
        size_t max = (t % 3 == 0) ? n + 5 : 20;
        size_t got = cp2p__kad_rt_closest(rt, &target, out, max);
        assert_int_equal(got, max < n ? max : n);
        for (size_t i = 0; i < got; i++) {
            assert_true(cp2p_peer_id_equal(&out[i], &all[i].id));
        }
    }
    free(all);
    free(out);
    cp2p__kad_rt_free(rt);
}

static void refresh_due_and_touch(void **state)
{
    cp2p_peer_id self = rand_peer(), chk;
    cp2p__kad_rt *rt = rt_make(&self, 20);
    unsigned out[300];
    (void)state;
    /* Empty table: bucket 0 only. */
    assert_int_equal(cp2p__kad_rt_refresh_due(rt, 0, 1000, out, 300), 1);
    assert_int_equal(out[0], 0);
    for (unsigned c = 0; c <= 3; c++) {
        cp2p_peer_id p = peer_at(&self, c);
        assert_int_equal(cp2p__kad_rt_add(rt, &p, NULL, 0, &chk), CP2P__KAD_RT_ADDED);
    }
    /* Deepest non-empty bucket 3: cpl 0..4 due. */
    size_t n = cp2p__kad_rt_refresh_due(rt, 0, 1000, out, 300);
    assert_int_equal(n, 5);
    for (unsigned i = 0; i < 5; i++) {
        assert_int_equal(out[i], i);
    }
    assert_int_equal(cp2p__kad_rt_refresh_due(rt, 0, 1000, out, 2), 2);
    for (unsigned i = 0; i <= 4; i++) {
        cp2p__kad_rt_touch_bucket(rt, i, 5000);
    }
    cp2p__kad_rt_touch_bucket(rt, 2, 5500);
    assert_int_equal(cp2p__kad_rt_refresh_due(rt, 5999, 1000, out, 300), 0);
    n = cp2p__kad_rt_refresh_due(rt, 6000, 1000, out, 300);
    assert_int_equal(n, 4); /* all but 2 */
    assert_int_equal(out[0], 0);
    assert_int_equal(out[2], 3);
    /* Capped at CP2P_KAD_MAX_REFRESH_CPL even with a deeper peer. */
    cp2p_peer_id deep = peer_at(&self, CP2P_KAD_MAX_REFRESH_CPL + 1);
    assert_int_equal(cp2p__kad_rt_add(rt, &deep, NULL, 0, &chk), CP2P__KAD_RT_ADDED);
    n = cp2p__kad_rt_refresh_due(rt, 6000, 1000, out, 300);
    assert_int_equal(n, CP2P_KAD_MAX_REFRESH_CPL); /* 0..15 except 2 */
    assert_int_equal(out[n - 1], CP2P_KAD_MAX_REFRESH_CPL);
    cp2p__kad_rt_free(rt);
}

static void gen_key_has_the_cpl(void **state)
{
    cp2p_peer_id self = rand_peer(), out;
    cp2p__kad_rt *rt = rt_make(&self, 20);
    (void)state;
    for (unsigned c = 0; c <= 10; c++) {
        assert_int_equal(cp2p__kad_rt_gen_key(rt, c, rng, NULL, &out), 0);
        assert_int_equal(cpl_with(&self, &out), c);
        /* A valid peer ID with an inline Ed25519 key. */
        cp2p_peer_id v;
        assert_int_equal(cp2p_peer_id_from_bytes(out.bytes, out.len, &v), 0);
        cp2p_slice key;
        assert_int_equal(cp2p_peer_id_inline_key(&out, &key), 0);
        assert_int_equal(key.len, 36);
    }
    assert_int_equal(cp2p__kad_rt_gen_key(rt, CP2P_KAD_MAX_REFRESH_CPL + 1, rng, NULL, &out),
                     CP2P_EINVAL);
    cp2p__kad_rt_free(rt);
}

/* Every allocation failing in turn: ENOMEM from new and add, nothing leaks (ASan). */
static void allocation_failures(void **state)
{
    cp2p_peer_id self = rand_peer(), chk, p[3];
    cp2p__kad_rt_config cfg;
    (void)state;
    for (int i = 0; i < 3; i++) {
        p[i] = peer_at(&self, (unsigned)i);
    }
    cp2p__kad_rt_config_default(&cfg);
    for (long n = 1; n < 6; n++) {
        cp2p__kad_rt *rt = NULL;
        cp2p__alloc_fail_after(n);
        int rc = cp2p__kad_rt_new(&self, &cfg, &rt);
        for (int i = 0; rc >= 0 && i < 3; i++) {
            rc = cp2p__kad_rt_add(rt, &p[i], NULL, 0, &chk);
            if (rc == CP2P_ENOMEM) {
                assert_false(cp2p__kad_rt_contains(rt, &p[i]));
            }
        }
        cp2p__alloc_fail_after(0);
        assert_true(rc >= 0 || rc == CP2P_ENOMEM);
        cp2p__kad_rt_free(rt);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(config_is_checked),
        cmocka_unit_test(placement_by_cpl_and_self),
        cmocka_unit_test(full_bucket_check_and_replace),
        cmocka_unit_test(abandoned_check_is_retried),
        cmocka_unit_test(diversity_limits),
        cmocka_unit_test(closest_matches_brute_force),
        cmocka_unit_test(refresh_due_and_touch),
        cmocka_unit_test(gen_key_has_the_cpl),
        cmocka_unit_test(allocation_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
