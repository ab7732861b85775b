/* The keyed hash map (src/util/hashmap.c): insert/find/remove/iterate, the item bound, the
 * grow/shrink policy, keys sharing long prefixes, allocation failures, and a randomized run
 * against a plain array. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "util/alloc.h"
#include "util/hashmap.h"
#include "util/limits.h"

typedef struct item {
    size_t len;
    uint8_t key[160];
    int val;
    bool in_map; /* reference model */
} item;

static cp2p_slice item_key(const void *it)
{
    const item *i = it;
    return (cp2p_slice){i->key, i->len};
}

static void set_key(item *it, const char *s)
{
    it->len = strlen(s);
    memcpy(it->key, s, it->len);
}

/* Zero n items and key them prefix0, prefix1, ... */
static void number_items(item *it, size_t n, const char *prefix)
{
    memset(it, 0, n * sizeof(*it));
    for (size_t i = 0; i < n; i++) {
        it[i].len = (size_t)snprintf((char *)it[i].key, sizeof(it[i].key), "%s%zu", prefix, i);
    }
}

/* The structural invariants: count, load at most 1/2, at most 4 x max slots, and every item
 * reachable from its home slot without crossing an empty one. */
static void check_invariants(const cp2p_hashmap *m)
{
    size_t n = 0;
    assert_true(m->cap <= 4 * m->max || m->cap == 16);
    assert_true(m->n * 2 <= m->cap || m->cap == 0);
    for (size_t i = 0; i < m->cap; i++) {
        const cp2p_hashmap_slot *s = &m->slots[i];
        if (s->item == NULL) {
            continue;
        }
        n++;
        cp2p_slice k = item_key(s->item);
        assert_true(s->h == cp2p__hashmap_hash(k.ptr, k.len));
        for (size_t j = s->h & (m->cap - 1); j != i; j = (j + 1) & (m->cap - 1)) {
            assert_non_null(m->slots[j].item);
        }
        assert_ptr_equal(cp2p__hashmap_find(m, k.ptr, k.len), s->item);
    }
    assert_int_equal(n, m->n);
}

static void insert_find_remove_iterate(void **state)
{
    cp2p_hashmap m;
    item a = {0}, b = {0}, a2 = {0}, e = {0};
    (void)state;
    set_key(&a, "alpha");
    set_key(&b, "beta");
    set_key(&a2, "alpha");
    /* e: the empty key is a key like any other. */
    assert_int_equal(cp2p__hashmap_init(&m, 10, item_key), 0);
    assert_null(cp2p__hashmap_find(&m, "alpha", 5));
    assert_false(cp2p__hashmap_remove(&m, &a));
    assert_null(m.slots); /* nothing allocated before the first insertion */
    assert_int_equal(cp2p__hashmap_insert(&m, &a), 0);
    assert_int_equal(cp2p__hashmap_insert(&m, &b), 0);
    assert_int_equal(cp2p__hashmap_insert(&m, &e), 0);
    assert_int_equal(cp2p__hashmap_insert(&m, &a2), CP2P_EINVAL); /* equal key */
    assert_int_equal(cp2p__hashmap_insert(&m, &a), CP2P_EINVAL);  /* itself again */
    assert_int_equal(cp2p__hashmap_insert(&m, NULL), CP2P_EINVAL);
    assert_int_equal(cp2p__hashmap_len(&m), 3);
    assert_ptr_equal(cp2p__hashmap_find(&m, "alpha", 5), &a);
    assert_ptr_equal(cp2p__hashmap_find(&m, "beta", 4), &b);
    assert_ptr_equal(cp2p__hashmap_find(&m, "", 0), &e);
    assert_null(cp2p__hashmap_find(&m, "alph", 4));
    assert_null(cp2p__hashmap_find(&m, "alphaa", 6));
    assert_false(cp2p__hashmap_remove(&m, &a2)); /* same key, other item: not in the map */
    size_t cur = 0, seen = 0;
    for (item *it; (it = cp2p__hashmap_next(&m, &cur)) != NULL;) {
        assert_true(it == &a || it == &b || it == &e);
        seen++;
    }
    assert_int_equal(seen, 3);
    assert_null(cp2p__hashmap_next(&m, &cur)); /* stays at the end */
    assert_true(cp2p__hashmap_remove(&m, &a));
    assert_null(cp2p__hashmap_find(&m, "alpha", 5));
    assert_int_equal(cp2p__hashmap_insert(&m, &a2), 0);
    assert_ptr_equal(cp2p__hashmap_find(&m, "alpha", 5), &a2);
    check_invariants(&m);
    cp2p__hashmap_fini(&m, NULL, NULL);
    cp2p__hashmap_fini(&m, NULL, NULL); /* twice is safe */
}

static void init_is_validated(void **state)
{
    cp2p_hashmap m;
    (void)state;
    assert_int_equal(cp2p__hashmap_init(&m, 0, item_key), CP2P_EINVAL);
    assert_int_equal(cp2p__hashmap_init(&m, CP2P_HASHMAP_MAX_ITEMS + (size_t)1, item_key),
                     CP2P_EINVAL);
    assert_int_equal(cp2p__hashmap_init(&m, 1, NULL), CP2P_EINVAL);
    cp2p__hashmap_fini(&m, NULL, NULL); /* zeroed on error */
    assert_int_equal(cp2p__hashmap_init(&m, CP2P_HASHMAP_MAX_ITEMS, item_key), 0);
    cp2p__hashmap_fini(&m, NULL, NULL);
}

static void the_bound_is_enforced(void **state)
{
    cp2p_hashmap m;
    item it[6];
    (void)state;
    number_items(it, 6, "k");
    assert_int_equal(cp2p__hashmap_init(&m, 5, item_key), 0);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(cp2p__hashmap_insert(&m, &it[i]), 0);
    }
    assert_int_equal(cp2p__hashmap_insert(&m, &it[5]), CP2P_EFULL);
    assert_int_equal(cp2p__hashmap_insert(&m, &it[0]), CP2P_EINVAL); /* duplicate wins */
    assert_null(cp2p__hashmap_find(&m, it[5].key, it[5].len));
    assert_true(cp2p__hashmap_remove(&m, &it[2]));
    assert_int_equal(cp2p__hashmap_insert(&m, &it[5]), 0);
    assert_true(m.cap <= 16);
    check_invariants(&m);
    cp2p__hashmap_fini(&m, NULL, NULL);
}

static void count_release(void *it, void *ud)
{
    (void)it;
    (*(int *)ud)++;
}

static void grows_and_gives_memory_back(void **state)
{
    enum { N = 1000 };
    static item it[N];
    cp2p_hashmap m;
    (void)state;
    number_items(it, N, "");
    assert_int_equal(cp2p__hashmap_init(&m, N, item_key), 0);
    for (int i = 0; i < N; i++) {
        assert_int_equal(cp2p__hashmap_insert(&m, &it[i]), 0);
        assert_true(m.n * 2 <= m.cap);
    }
    assert_int_equal(m.cap, 2048);
    check_invariants(&m);
    for (int i = 0; i < N - 3; i++) {
        assert_true(cp2p__hashmap_remove(&m, &it[i]));
        assert_true(m.cap == 16 || m.n * 8 > m.cap); /* shrunk as soon as load hits 1/8 */
    }
    assert_int_equal(m.cap, 16);
    check_invariants(&m);
    int released = 0;
    cp2p__hashmap_fini(&m, count_release, &released);
    assert_int_equal(released, 3);
}

/* Keys that differ only in their last bytes after a long shared prefix (what a peer controls
 * in message IDs or topic names), and keys that are prefixes of each other. */
static void colliding_prefix_keys(void **state)
{
    enum { N = 4000 };
    static item it[N];
    cp2p_hashmap m;
    (void)state;
    memset(it, 0, sizeof(it));
    assert_int_equal(cp2p__hashmap_init(&m, N, item_key), 0);
    for (int i = 0; i < N; i++) {
        memset(it[i].key, 'A', 150);
        if (i < N / 2) { /* same length, last two bytes differ */
            it[i].len = 152;
            it[i].key[150] = (uint8_t)(i >> 8);
            it[i].key[151] = (uint8_t)i;
        } else { /* prefixes of each other: "aAA...", one byte longer each time */
            it[i].len = (size_t)(i - N / 2) % 150 + 1;
            it[i].key[0] = (uint8_t)('a' + (i - N / 2) / 150);
        }
        assert_int_equal(cp2p__hashmap_insert(&m, &it[i]), 0);
    }
    check_invariants(&m);
    /* No long probe runs: with load <= 1/2 and a keyed hash the longest run stays short. */
    size_t run = 0, longest = 0;
    for (size_t i = 0; i < 2 * m.cap; i++) {
        run = m.slots[i & (m.cap - 1)].item != NULL ? run + 1 : 0;
        longest = run > longest ? run : longest;
    }
    assert_true(longest < 64);
    for (int i = 0; i < N; i += 2) {
        assert_true(cp2p__hashmap_remove(&m, &it[i]));
    }
    for (int i = 0; i < N; i++) {
        assert_ptr_equal(cp2p__hashmap_find(&m, it[i].key, it[i].len), i % 2 ? &it[i] : NULL);
    }
    check_invariants(&m);
    cp2p__hashmap_fini(&m, NULL, NULL);
}

static void allocation_failures_leave_the_map_intact(void **state)
{
    enum { N = 100 };
    static item it[N];
    cp2p_hashmap m;
    (void)state;
    number_items(it, N, "x");
    assert_int_equal(cp2p__hashmap_init(&m, N, item_key), 0);
    for (int i = 0; i < N; i++) {
        cp2p__alloc_fail_after(1);
        int rc = cp2p__hashmap_insert(&m, &it[i]);
        cp2p__alloc_fail_after(0);
        if (rc == CP2P_ENOMEM) { /* the growth failed: nothing changed */
            assert_null(cp2p__hashmap_find(&m, it[i].key, it[i].len));
            assert_int_equal(cp2p__hashmap_insert(&m, &it[i]), 0);
        } else {
            assert_int_equal(rc, 0);
        }
    }
    check_invariants(&m);
    /* A failed shrink keeps the larger array. */
    for (int i = 0; i < N; i++) {
        cp2p__alloc_fail_after(1);
        assert_true(cp2p__hashmap_remove(&m, &it[i]));
        cp2p__alloc_fail_after(0);
        check_invariants(&m);
    }
    assert_int_equal(m.n, 0);
    cp2p__hashmap_fini(&m, NULL, NULL);
}

static uint64_t xs(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Random inserts, removals and lookups over a small key space (so that duplicates and
 * re-insertions are frequent), checked against the in_map flags after every step. */
static void randomized_against_a_reference(void **state)
{
    enum { KEYS = 300, MAX = 200 };
    static item it[KEYS];
    cp2p_hashmap m;
    uint64_t seed = 0x9e3779b97f4a7c15ULL;
    size_t in = 0;
    (void)state;
    memset(it, 0, sizeof(it));
    for (int i = 0; i < KEYS; i++) {
        it[i].len = (size_t)(xs(&seed) % 20);
        for (size_t k = 0; k < it[i].len; k++) {
            it[i].key[k] = (uint8_t)(xs(&seed) % 3); /* short alphabet: many shared prefixes */
        }
        it[i].val = i;
    }
    assert_int_equal(cp2p__hashmap_init(&m, MAX, item_key), 0);
    for (int step = 0; step < 50000; step++) {
        item *x = &it[xs(&seed) % KEYS];
        item *same = NULL; /* the item in the map with x's key, per the reference */
        for (int i = 0; i < KEYS; i++) {
            if (it[i].in_map && it[i].len == x->len && memcmp(it[i].key, x->key, x->len) == 0) {
                same = &it[i];
            }
        }
        switch (xs(&seed) % 3) {
        case 0: {
            int rc = cp2p__hashmap_insert(&m, x);
            int want = same != NULL ? CP2P_EINVAL : in == MAX ? CP2P_EFULL : 0;
            assert_int_equal(rc, want);
            if (rc == 0) {
                x->in_map = true;
                in++;
            }
            break;
        }
        case 1:
            assert_int_equal(cp2p__hashmap_remove(&m, x), x->in_map);
            if (x->in_map) {
                x->in_map = false;
                in--;
            }
            break;
        default:
            assert_ptr_equal(cp2p__hashmap_find(&m, x->key, x->len), same);
            break;
        }
        assert_int_equal(cp2p__hashmap_len(&m), in);
        if (step % 1000 == 0) {
            check_invariants(&m);
            size_t cur = 0, n = 0;
            for (item *y; (y = cp2p__hashmap_next(&m, &cur)) != NULL; n++) {
                assert_true(y->in_map);
            }
            assert_int_equal(n, in);
        }
    }
    cp2p__hashmap_fini(&m, NULL, NULL);
}

static void the_hash_is_keyed(void **state)
{
    uint8_t zero_key[crypto_shorthash_KEYBYTES] = {0}, out[crypto_shorthash_BYTES];
    (void)state;
    assert_int_equal(cp2p__hashmap_key_init(), 0);
    assert_int_equal(cp2p__hashmap_hash("abc", 3), cp2p__hashmap_hash("abc", 3));
    assert_true(cp2p__hashmap_hash("abc", 3) != cp2p__hashmap_hash("abd", 3));
    /* Not SipHash under a zero key: a key was drawn (equal by chance with p = 2^-64). */
    crypto_shorthash(out, (const uint8_t *)"abc", 3, zero_key);
    uint64_t unkeyed = 0;
    for (size_t i = sizeof(out); i > 0; i--) {
        unkeyed = (unkeyed << 8) | out[i - 1];
    }
    assert_true(cp2p__hashmap_hash("abc", 3) != unkeyed);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(insert_find_remove_iterate),
        cmocka_unit_test(init_is_validated),
        cmocka_unit_test(the_bound_is_enforced),
        cmocka_unit_test(grows_and_gives_memory_back),
        cmocka_unit_test(colliding_prefix_keys),
        cmocka_unit_test(allocation_failures_leave_the_map_intact),
        cmocka_unit_test(randomized_against_a_reference),
        cmocka_unit_test(the_hash_is_keyed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
