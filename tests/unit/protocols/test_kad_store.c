/* The DHT's local stores: records, providers, validators. Virtual time throughout. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <cp2p/keys.h>

#include "protocols/kad/kad_store.h"
#include "util/alloc.h"
#include "util/limits.h"

#define HOUR (3600ULL * 1000)

static cp2p__kad_store *store(const cp2p__kad_store_config *c)
{
    cp2p__kad_store *s = NULL;
    assert_int_equal(cp2p__kad_store_new(c, &s), 0);
    return s;
}

static int accept_all(void *ud, const uint8_t *key, size_t key_len, const uint8_t *value,
                      size_t value_len)
{
    (void)ud, (void)key, (void)key_len, (void)value;
    return value_len > 0 && value[0] == 'X' ? CP2P_EPROTO : 0; /* "X..." is invalid */
}

/* The lexicographically greatest value wins. */
static int select_max(void *ud, const uint8_t *key, size_t key_len,
                      const uint8_t *const *values, const size_t *lens, size_t n)
{
    (void)ud, (void)key, (void)key_len;
    size_t best = 0;
    for (size_t i = 1; i < n; i++) {
        size_t m = lens[i] < lens[best] ? lens[i] : lens[best];
        int c = memcmp(values[i], values[best], m);
        if (c > 0 || (c == 0 && lens[i] > lens[best])) {
            best = i;
        }
    }
    return (int)best;
}

#define K(s) (const uint8_t *)(s), strlen(s)

static void put_get_and_expiry(void **state)
{
    (void)state;
    cp2p__kad_store_config c;
    cp2p__kad_store_config_default(&c);
    assert_int_equal(c.record_ttl_ms, 36 * HOUR);
    assert_int_equal(c.provider_ttl_ms, 48 * HOUR);
    cp2p__kad_store *s = store(&c);
    assert_int_equal(cp2p__kad_store_add_validator(s, "v", accept_all, NULL, NULL), 0);
    const uint8_t *v;
    size_t vl;
    uint64_t rx = 0;
    assert_int_equal(cp2p__kad_store_get(s, K("/v/a"), 0, &v, &vl, &rx), CP2P_ENOENT);
    assert_int_equal(cp2p__kad_store_put(s, K("/v/a"), K("one"), 1000), 0);
    assert_int_equal(cp2p__kad_store_put(s, K("/v/b"), K("two"), 2000), 0);
    assert_int_equal(cp2p__kad_store_get(s, K("/v/a"), 5000, &v, &vl, &rx), 0);
    assert_int_equal(vl, 3);
    assert_memory_equal(v, "one", 3);
    assert_int_equal(rx, 1000);
    /* Invalid values are refused and counted. */
    assert_int_equal(cp2p__kad_store_put(s, K("/v/c"), K("Xbad"), 2000), CP2P_EPROTO);
    /* Still there just before the TTL, gone at it. */
    assert_int_equal(cp2p__kad_store_get(s, K("/v/a"), 1000 + 36 * HOUR - 1, &v, &vl, NULL), 0);
    assert_int_equal(cp2p__kad_store_get(s, K("/v/a"), 1000 + 36 * HOUR, &v, &vl, NULL),
                     CP2P_ENOENT);
    cp2p__kad_store_stats st;
    cp2p__kad_store_stats_get(s, &st);
    assert_int_equal(st.records, 1);
    assert_int_equal(st.record_bytes, 3);
    assert_int_equal(st.expired, 1);
    assert_int_equal(st.puts_refused_invalid, 1);
    /* purge drops the other one. */
    cp2p__kad_store_purge(s, 2000 + 36 * HOUR);
    cp2p__kad_store_stats_get(s, &st);
    assert_int_equal(st.records, 0);
    assert_int_equal(st.record_bytes, 0);
    assert_int_equal(st.expired, 2);
    cp2p__kad_store_free(s);
}

static void capacity_is_refused_and_counted(void **state)
{
    (void)state;
    cp2p__kad_store_config c;
    cp2p__kad_store_config_default(&c);
    c.max_records = 3;
    c.max_record_bytes = 10;
    c.record_ttl_ms = 100;
    cp2p__kad_store *s = store(&c);
    assert_int_equal(cp2p__kad_store_add_validator(s, "v", accept_all, NULL, NULL), 0);
    assert_int_equal(cp2p__kad_store_put(s, K("/v/1"), K("aaa"), 0), 0);
    assert_int_equal(cp2p__kad_store_put(s, K("/v/2"), K("bbb"), 10), 0);
    assert_int_equal(cp2p__kad_store_put(s, K("/v/3"), K("ccc"), 20), 0);
    /* Count full. */
    assert_int_equal(cp2p__kad_store_put(s, K("/v/4"), K("d"), 30), CP2P_EFULL);
    /* Replacing an existing key is not a new record, but bytes still count: 3+3+3 -> 9 - 3 + 5
     * = 11 > 10. */
    assert_int_equal(cp2p__kad_store_put(s, K("/v/3"), K("ccccc"), 30), CP2P_EFULL);
    assert_int_equal(cp2p__kad_store_put(s, K("/v/3"), K("cccc"), 30), 0);
    cp2p__kad_store_stats st;
    cp2p__kad_store_stats_get(s, &st);
    assert_int_equal(st.puts_refused_full, 2);
    assert_int_equal(st.record_bytes, 10);
    /* Once the first has expired (at 100), a new put purges it and fits. */
    assert_int_equal(cp2p__kad_store_put(s, K("/v/4"), K("d"), 100), 0);
    const uint8_t *v;
    size_t vl;
    assert_int_equal(cp2p__kad_store_get(s, K("/v/1"), 100, &v, &vl, NULL), CP2P_ENOENT);
    assert_int_equal(cp2p__kad_store_get(s, K("/v/4"), 100, &v, &vl, NULL), 0);
    cp2p__kad_store_stats_get(s, &st);
    assert_int_equal(st.records, 3);
    assert_int_equal(st.expired, 1);
    /* A value over the whole byte budget never fits. */
    assert_int_equal(cp2p__kad_store_put(s, K("/v/5"), K("12345678901"), 100), CP2P_EFULL);
    cp2p__kad_store_free(s);
}

static void select_replaces_or_refuses(void **state)
{
    (void)state;
    cp2p__kad_store *s = store(NULL);
    assert_int_equal(cp2p__kad_store_add_validator(s, "m", accept_all, select_max, NULL), 0);
    assert_int_equal(cp2p__kad_store_add_validator(s, "f", accept_all, NULL, NULL), 0);
    const uint8_t *v;
    size_t vl;
    uint64_t rx;
    assert_int_equal(cp2p__kad_store_put(s, K("/m/k"), K("b"), 1), 0);
    assert_int_equal(cp2p__kad_store_put(s, K("/m/k"), K("a"), 2), CP2P_ESTATE);
    assert_int_equal(cp2p__kad_store_get(s, K("/m/k"), 3, &v, &vl, &rx), 0);
    assert_memory_equal(v, "b", 1);
    assert_int_equal(rx, 1);
    assert_int_equal(cp2p__kad_store_put(s, K("/m/k"), K("c"), 4), 0);
    assert_int_equal(cp2p__kad_store_get(s, K("/m/k"), 5, &v, &vl, &rx), 0);
    assert_memory_equal(v, "c", 1);
    assert_int_equal(rx, 4);
    /* The same value again refreshes the time. */
    assert_int_equal(cp2p__kad_store_put(s, K("/m/k"), K("c"), 6), 0);
    assert_int_equal(cp2p__kad_store_get(s, K("/m/k"), 7, &v, &vl, &rx), 0);
    assert_int_equal(rx, 6);
    /* Without select the new value wins (index 0 of {new, existing}). */
    assert_int_equal(cp2p__kad_store_put(s, K("/f/k"), K("z"), 1), 0);
    assert_int_equal(cp2p__kad_store_put(s, K("/f/k"), K("a"), 2), 0);
    assert_int_equal(cp2p__kad_store_get(s, K("/f/k"), 3, &v, &vl, NULL), 0);
    assert_memory_equal(v, "a", 1);
    /* select over a list. */
    const uint8_t *vals[] = {(const uint8_t *)"a", (const uint8_t *)"c", (const uint8_t *)"b"};
    size_t lens[] = {1, 1, 1};
    assert_int_equal(cp2p__kad_store_select(s, K("/m/x"), vals, lens, 3), 1);
    assert_int_equal(cp2p__kad_store_select(s, K("/f/x"), vals, lens, 3), 0);
    assert_int_equal(cp2p__kad_store_select(s, K("/q/x"), vals, lens, 3), CP2P_ENOTSUP);
    cp2p__kad_store_free(s);
}

static void namespaces(void **state)
{
    (void)state;
    cp2p__kad_store *s = store(NULL);
    /* No validator for "/ipns/", no namespace at all, empty namespace: refused, counted. */
    assert_int_equal(cp2p__kad_store_put(s, K("/ipns/abc"), K("v"), 0), CP2P_ENOTSUP);
    assert_int_equal(cp2p__kad_store_validate(s, K("plain"), K("v")), CP2P_ENOTSUP);
    assert_int_equal(cp2p__kad_store_validate(s, K("/pk"), K("v")), CP2P_ENOTSUP);
    assert_int_equal(cp2p__kad_store_validate(s, K("//x"), K("v")), CP2P_ENOTSUP);
    assert_int_equal(cp2p__kad_store_validate(s, NULL, 0, K("v")), CP2P_ENOTSUP);
    cp2p__kad_store_stats st;
    cp2p__kad_store_stats_get(s, &st);
    assert_int_equal(st.puts_refused_invalid, 1);
    /* Bad names; the table of namespaces is bounded ("pk" takes one slot). */
    assert_int_equal(cp2p__kad_store_add_validator(s, "", accept_all, NULL, NULL), CP2P_EINVAL);
    assert_int_equal(cp2p__kad_store_add_validator(s, "a/b", accept_all, NULL, NULL),
                     CP2P_EINVAL);
    assert_int_equal(cp2p__kad_store_add_validator(s, "ok", NULL, NULL, NULL), CP2P_EINVAL);
    char ns[8];
    for (int i = 0; i < CP2P_KAD_MAX_NAMESPACES - 1; i++) {
        ns[0] = 'n';
        ns[1] = (char)('a' + i / 26);
        ns[2] = (char)('a' + i % 26);
        ns[3] = 0;
        assert_int_equal(cp2p__kad_store_add_validator(s, ns, accept_all, NULL, NULL), 0);
    }
    assert_int_equal(cp2p__kad_store_add_validator(s, "one-more", accept_all, NULL, NULL),
                     CP2P_EFULL);
    /* Replacing an existing one still works when full. */
    assert_int_equal(cp2p__kad_store_add_validator(s, "naa", accept_all, select_max, NULL), 0);
    assert_int_equal(cp2p__kad_store_put(s, K("/naa/k"), K("v"), 0), 0);
    /* Oversized keys and values never reach a validator. */
    static uint8_t big[CP2P_KAD_MAX_VALUE + 1];
    memcpy(big, "/naa/", 5);
    assert_int_equal(cp2p__kad_store_validate(s, big, CP2P_KAD_MAX_KEY + 1, K("v")),
                     CP2P_ELIMIT);
    assert_int_equal(cp2p__kad_store_validate(s, K("/naa/k"), big, sizeof(big)), CP2P_ELIMIT);
    cp2p__kad_store_free(s);
}

static void pk_record(cp2p_privkey **priv, cp2p_buf *key, cp2p_buf *value)
{
    cp2p_peer_id id;
    assert_int_equal(cp2p_privkey_generate(CP2P_KEY_ED25519, priv), 0);
    const cp2p_pubkey *pub = cp2p_privkey_public(*priv);
    cp2p_buf_init(value, 4096);
    assert_int_equal(cp2p_pubkey_marshal(pub, value), 0);
    assert_int_equal(cp2p_peer_id_from_pubkey(pub, &id), 0);
    cp2p_buf_init(key, 256);
    assert_int_equal(cp2p_buf_append(key, "/pk/", 4), 0);
    assert_int_equal(cp2p_buf_append(key, id.bytes, id.len), 0);
}

static void pk_validator(void **state)
{
    (void)state;
    cp2p_privkey *a, *b;
    cp2p_buf ka, va, kb, vb;
    pk_record(&a, &ka, &va);
    pk_record(&b, &kb, &vb);
    cp2p__kad_store *s = store(NULL);
    assert_int_equal(cp2p__kad_store_validate(s, ka.ptr, ka.len, va.ptr, va.len), 0);
    assert_int_equal(cp2p__kad_store_validate(s, kb.ptr, kb.len, vb.ptr, vb.len), 0);
    /* B's key stored under A's ID: refused. */
    assert_int_equal(cp2p__kad_store_validate(s, ka.ptr, ka.len, vb.ptr, vb.len), CP2P_EPROTO);
    assert_int_equal(cp2p__kad_store_put(s, ka.ptr, ka.len, vb.ptr, vb.len, 0), CP2P_EPROTO);
    /* Garbage value, truncated value, an ID that is not a multihash. */
    assert_int_equal(cp2p__kad_store_validate(s, ka.ptr, ka.len, K("junk")), CP2P_EPROTO);
    assert_int_equal(cp2p__kad_store_validate(s, ka.ptr, ka.len, va.ptr, va.len - 1),
                     CP2P_EPROTO);
    assert_int_equal(cp2p__kad_store_validate(s, ka.ptr, ka.len - 1, va.ptr, va.len),
                     CP2P_EPROTO);
    assert_int_equal(cp2p__kad_store_validate(s, K("/pk/"), va.ptr, va.len), CP2P_EPROTO);
    /* Stored and fetched; "first" select keeps the (identical) value. */
    assert_int_equal(cp2p__kad_store_put(s, ka.ptr, ka.len, va.ptr, va.len, 10), 0);
    assert_int_equal(cp2p__kad_store_put(s, ka.ptr, ka.len, va.ptr, va.len, 20), 0);
    const uint8_t *v;
    size_t vl;
    assert_int_equal(cp2p__kad_store_get(s, ka.ptr, ka.len, 30, &v, &vl, NULL), 0);
    assert_int_equal(vl, va.len);
    assert_memory_equal(v, va.ptr, va.len);
    const uint8_t *vals[] = {va.ptr, vb.ptr};
    size_t lens[] = {va.len, vb.len};
    assert_int_equal(cp2p__kad_store_select(s, ka.ptr, ka.len, vals, lens, 2), 0);
    cp2p__kad_store_free(s);
    cp2p_privkey_free(a);
    cp2p_privkey_free(b);
    cp2p_buf_fini(&ka);
    cp2p_buf_fini(&va);
    cp2p_buf_fini(&kb);
    cp2p_buf_fini(&vb);
}

static cp2p_peer_id pid(uint8_t fill)
{
    cp2p_peer_id p = {.len = 34};
    p.bytes[0] = 0x12;
    p.bytes[1] = 0x20;
    memset(p.bytes + 2, fill, 32);
    return p;
}

static void providers(void **state)
{
    (void)state;
    cp2p__kad_store_config c;
    cp2p__kad_store_config_default(&c);
    c.max_providers_per_key = 3;
    c.max_provider_keys = 2;
    c.provider_ttl_ms = 1000;
    cp2p__kad_store *s = store(&c);
    cp2p_peer_id out[8];
    cp2p_peer_id p1 = pid(1), p2 = pid(2), p3 = pid(3), p4 = pid(4);
    assert_int_equal(cp2p__kad_store_providers(s, K("k1"), 0, out, 8), 0);
    assert_int_equal(cp2p__kad_store_add_provider(s, K("k1"), &p1, 0), 0);
    assert_int_equal(cp2p__kad_store_add_provider(s, K("k1"), &p2, 100), 0);
    assert_int_equal(cp2p__kad_store_add_provider(s, K("k1"), &p3, 200), 0);
    /* Most recent first; max respected. */
    assert_int_equal(cp2p__kad_store_providers(s, K("k1"), 300, out, 8), 3);
    assert_true(cp2p_peer_id_equal(&out[0], &p3));
    assert_true(cp2p_peer_id_equal(&out[2], &p1));
    assert_int_equal(cp2p__kad_store_providers(s, K("k1"), 300, out, 2), 2);
    /* Refresh p1: it becomes the most recent and lives on past its first expiry. */
    assert_int_equal(cp2p__kad_store_add_provider(s, K("k1"), &p1, 500), 0);
    assert_int_equal(cp2p__kad_store_providers(s, K("k1"), 1000, out, 8), 3);
    assert_true(cp2p_peer_id_equal(&out[0], &p1));
    /* A full key replaces its oldest (p2). */
    assert_int_equal(cp2p__kad_store_add_provider(s, K("k1"), &p4, 600), 0);
    assert_int_equal(cp2p__kad_store_providers(s, K("k1"), 700, out, 8), 3);
    assert_true(cp2p_peer_id_equal(&out[0], &p4));
    assert_true(cp2p_peer_id_equal(&out[1], &p1));
    assert_true(cp2p_peer_id_equal(&out[2], &p3));
    /* Expiry: p3 (added 200) is gone at 1200, p1 (500) at 1500. */
    assert_int_equal(cp2p__kad_store_providers(s, K("k1"), 1200, out, 8), 2);
    assert_int_equal(cp2p__kad_store_providers(s, K("k1"), 1500, out, 8), 1);
    assert_true(cp2p_peer_id_equal(&out[0], &p4));
    /* Key cap: k1 and k2 fit, k3 is refused and counted. */
    assert_int_equal(cp2p__kad_store_add_provider(s, K("k2"), &p1, 1500), 0);
    assert_int_equal(cp2p__kad_store_add_provider(s, K("k3"), &p1, 1500), CP2P_EFULL);
    cp2p__kad_store_stats st;
    cp2p__kad_store_stats_get(s, &st);
    assert_int_equal(st.provider_keys, 2);
    assert_int_equal(st.providers, 2);
    assert_int_equal(st.providers_refused_full, 1);
    /* Once k1 has expired entirely (at 1600), k3 fits: the add purges first. */
    assert_int_equal(cp2p__kad_store_add_provider(s, K("k3"), &p1, 1600), 0);
    assert_int_equal(cp2p__kad_store_providers(s, K("k1"), 1600, out, 8), 0);
    cp2p__kad_store_stats_get(s, &st);
    assert_int_equal(st.provider_keys, 2);
    assert_int_equal(st.providers, 2);
    /* Purge drops the rest. */
    cp2p__kad_store_purge(s, 10000);
    cp2p__kad_store_stats_get(s, &st);
    assert_int_equal(st.provider_keys, 0);
    assert_int_equal(st.providers, 0);
    /* Bad arguments. */
    assert_int_equal(cp2p__kad_store_add_provider(s, NULL, 0, &p1, 0), CP2P_EINVAL);
    cp2p__kad_store_free(s);
}

static void allocation_failures_leak_nothing(void **state)
{
    (void)state;
    bool done = false;
    for (long fail = 1; fail < 40 && !done; fail++) {
        cp2p__kad_store *s = NULL;
        cp2p_peer_id p1 = pid(1);
        cp2p__alloc_fail_after(fail);
        int rc = cp2p__kad_store_new(NULL, &s);
        if (rc == 0) {
            rc = cp2p__kad_store_add_validator(s, "v", accept_all, NULL, NULL);
        }
        if (rc == 0) {
            rc = cp2p__kad_store_put(s, K("/v/a"), K("one"), 0);
        }
        if (rc == 0) {
            rc = cp2p__kad_store_put(s, K("/v/a"), K("two"), 0);
        }
        if (rc == 0) {
            rc = cp2p__kad_store_add_provider(s, K("k"), &p1, 0);
        }
        cp2p__alloc_fail_after(0);
        assert_true(rc == 0 || rc == CP2P_ENOMEM);
        if (rc == 0) {
            done = true;
        }
        if (s != NULL) {
            /* The store stays consistent after a failure. */
            cp2p__kad_store_stats st;
            cp2p__kad_store_stats_get(s, &st);
            assert_true(st.records <= 1);
            assert_true(st.provider_keys <= 1);
            assert_int_equal(st.providers, st.provider_keys);
        }
        cp2p__kad_store_free(s);
    }
    assert_true(done);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(put_get_and_expiry),
        cmocka_unit_test(capacity_is_refused_and_counted),
        cmocka_unit_test(select_replaces_or_refuses),
        cmocka_unit_test(namespaces),
        cmocka_unit_test(pk_validator),
        cmocka_unit_test(providers),
        cmocka_unit_test(allocation_failures_leak_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
