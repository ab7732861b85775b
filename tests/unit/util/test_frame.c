/* The one uvarint-length-prefixed frame reader (src/util/frame.c): vectors, every truncation,
 * limits, non-minimal and overlong prefixes, frames back to back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <cp2p/codec.h>

#include "util/frame.h"

static void vectors_and_every_truncation(void **state)
{
    static const uint8_t three[] = {0x03, 'a', 'b', 'c'};
    uint8_t big[2 + 300];
    cp2p_slice body;
    const char *why = NULL;
    (void)state;
    assert_int_equal(cp2p__frame_decode(three, sizeof(three), 3, &body, &why), 4);
    assert_ptr_equal(body.ptr, three + 1);
    assert_int_equal(body.len, 3);
    for (size_t i = 0; i < sizeof(three); i++) {
        assert_int_equal(cp2p__frame_decode(three, i, 3, &body, &why), 0);
    }
    /* A two-byte prefix (300 = 0xac 0x02). */
    assert_int_equal(cp2p_uvarint_encode(big, 300), 2);
    memset(big + 2, 'x', 300);
    for (size_t i = 0; i < sizeof(big); i++) {
        assert_int_equal(cp2p__frame_decode(big, i, 300, &body, &why), 0);
    }
    assert_int_equal(cp2p__frame_decode(big, sizeof(big), 300, &body, &why), 302);
    assert_int_equal(body.len, 300);
    /* The empty body. */
    assert_int_equal(cp2p__frame_decode((const uint8_t *)"\0", 1, 0, &body, &why), 1);
    assert_int_equal(body.len, 0);
}

static void limits_and_bad_prefixes(void **state)
{
    static const uint8_t nonminimal[] = {0x80, 0x00};
    static const uint8_t overlong[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    static const uint8_t four_of_five[] = {0x05, 'a', 'b', 'c', 'd'};
    cp2p_slice body;
    const char *why = NULL;
    (void)state;
    assert_int_equal(cp2p__frame_decode(nonminimal, sizeof(nonminimal), 10, &body, &why),
                     CP2P_EPROTO);
    assert_non_null(why);
    why = NULL;
    assert_int_equal(cp2p__frame_decode(overlong, sizeof(overlong), SIZE_MAX, &body, &why),
                     CP2P_EPROTO);
    assert_non_null(why);
    /* Over the limit is known from the prefix alone, before the body arrives. */
    why = NULL;
    assert_int_equal(cp2p__frame_decode(four_of_five, 1, 4, &body, &why), CP2P_ELIMIT);
    assert_non_null(why);
    assert_int_equal(cp2p__frame_decode(four_of_five, sizeof(four_of_five), 5, &body, &why), 0);
}

static void frames_back_to_back(void **state)
{
    static const uint8_t two[] = {0x02, 'h', 'i', 0x00, 0x01, '!', 0x7f};
    cp2p_slice body;
    const char *why = NULL;
    size_t off = 0;
    (void)state;
    static const char *const want[] = {"hi", "", "!"};
    for (size_t k = 0; k < 3; k++) {
        ptrdiff_t n = cp2p__frame_decode(two + off, sizeof(two) - off, 16, &body, &why);
        assert_true(n > 0);
        assert_int_equal(body.len, strlen(want[k]));
        assert_memory_equal(body.ptr, want[k], body.len);
        off += (size_t)n;
    }
    /* The trailing 0x7f declares 127 bytes: over the limit of 16. */
    assert_int_equal(cp2p__frame_decode(two + off, sizeof(two) - off, 16, &body, &why),
                     CP2P_ELIMIT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(vectors_and_every_truncation),
        cmocka_unit_test(limits_and_bad_prefixes),
        cmocka_unit_test(frames_back_to_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
