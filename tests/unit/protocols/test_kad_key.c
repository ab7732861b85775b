/* Kademlia keys and the XOR metric (libp2p kad-dht spec, "Distance"). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "protocols/kad/kad_key.h"

static void key_of_is_sha256(void **state)
{
    (void)state;
    cp2p__kad_key k;
    /* FIPS 180-2 appendix B.1 and the empty-string digest. */
    static const uint8_t abc[32] = {0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea,
                                    0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22, 0x23,
                                    0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c,
                                    0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
    static const uint8_t empty[32] = {0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14,
                                      0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
                                      0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c,
                                      0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55};
    cp2p__kad_key_of((const uint8_t *)"abc", 3, &k);
    assert_memory_equal(k.b, abc, 32);
    cp2p__kad_key_of(NULL, 0, &k);
    assert_memory_equal(k.b, empty, 32);
    /* A peer's key hashes its multihash bytes. */
    cp2p_peer_id p = {.len = 3};
    memcpy(p.bytes, "abc", 3);
    cp2p__kad_key_of_peer(&p, &k);
    assert_memory_equal(k.b, abc, 32);
}

static void cpl_counts_leading_equal_bits(void **state)
{
    (void)state;
    cp2p__kad_key a = {{0}}, b = {{0}};
    assert_int_equal(cp2p__kad_cpl(&a, &b), 256);
    b.b[0] = 0x80;
    assert_int_equal(cp2p__kad_cpl(&a, &b), 0);
    b.b[0] = 0x01;
    assert_int_equal(cp2p__kad_cpl(&a, &b), 7);
    b.b[0] = 0;
    b.b[5] = 0x10;
    assert_int_equal(cp2p__kad_cpl(&a, &b), 5 * 8 + 3);
    b.b[5] = 0;
    b.b[31] = 0x01;
    assert_int_equal(cp2p__kad_cpl(&a, &b), 255);
    assert_int_equal(cp2p__kad_cpl(&b, &a), 255);
}

static void cmp_dist_orders_by_xor(void **state)
{
    (void)state;
    cp2p__kad_key t, a, b;
    memset(t.b, 0xf0, 32);
    a = t;
    b = t;
    assert_int_equal(cp2p__kad_cmp_dist(&t, &a, &b), 0);
    a.b[31] ^= 0x01; /* distance 1 */
    b.b[30] ^= 0x01; /* distance 256 */
    assert_true(cp2p__kad_cmp_dist(&t, &a, &b) < 0);
    assert_true(cp2p__kad_cmp_dist(&t, &b, &a) > 0);
    /* XOR, not numeric difference: with target 0xf0.., 0x70.. (xor 0x80) is farther than
     * 0xff.. (xor 0x0f) even though 0x70 < 0xf0 < 0xff. */
    a = t;
    b = t;
    a.b[0] = 0x70;
    b.b[0] = 0xff;
    assert_true(cp2p__kad_cmp_dist(&t, &a, &b) > 0);
    /* The target itself is the closest. */
    assert_true(cp2p__kad_cmp_dist(&t, &t, &b) < 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(key_of_is_sha256),
        cmocka_unit_test(cpl_counts_leading_equal_bits),
        cmocka_unit_test(cmp_dist_orders_by_xor),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
