/* Multihash and multibase. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <cp2p/multiformats.h>

#include "util/alloc.h"

/* Decode hex for test vectors; the buffer is the caller's to fini. */
static cp2p_buf unhex(const char *hex)
{
    cp2p_buf b;
    cp2p_buf_init(&b, 4096);
    assert_int_equal(cp2p_hex_decode(&b, hex, strlen(hex)), 0);
    return b;
}

/* ---- multihash ---- */

/* sha2-256("hello"), a common multihash example (multiformats/multihash README). */
static const char SHA256_HELLO[] =
    "12202cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

static void multihash_sha256_vector(void **state)
{
    cp2p_buf out, want = unhex(SHA256_HELLO);
    (void)state;
    cp2p_buf_init(&out, 128);
    assert_int_equal(cp2p_multihash_sha256(&out, (const uint8_t *)"hello", 5), 0);
    assert_int_equal(out.len, 34);
    assert_memory_equal(out.ptr, want.ptr, 34);

    uint64_t code = 99;
    cp2p_slice d;
    assert_int_equal(cp2p_multihash_decode(out.ptr, out.len, &code, &d), 34);
    assert_int_equal(code, CP2P_MULTIHASH_SHA2_256);
    assert_int_equal(d.len, 32);
    assert_ptr_equal(d.ptr, out.ptr + 2);
    assert_int_equal(cp2p_multihash_validate(out.ptr, out.len), 0);
    cp2p_buf_fini(&out);
    cp2p_buf_fini(&want);
}

static void multihash_every_truncation_needs_more(void **state)
{
    cp2p_buf mh = unhex(SHA256_HELLO);
    (void)state;
    for (size_t i = 0; i < mh.len; i++) {
        uint64_t code;
        cp2p_slice d;
        assert_int_equal(cp2p_multihash_decode(mh.ptr, i, &code, &d), 0);
        assert_int_equal(cp2p_multihash_validate(mh.ptr, i), CP2P_EPROTO);
    }
    cp2p_buf_fini(&mh);
}

static void multihash_rejects_malformed(void **state)
{
    uint64_t code;
    cp2p_slice d;
    uint8_t buf[80] = {0};
    (void)state;
    /* Non-minimal code varint (0x92 0x00 is 0x12 padded). */
    const uint8_t nonmin_code[] = {0x92, 0x00, 0x01, 0xaa};
    assert_int_equal(cp2p_multihash_decode(nonmin_code, sizeof(nonmin_code), &code, &d),
                     CP2P_EPROTO);
    /* Non-minimal length varint. */
    const uint8_t nonmin_len[] = {0x12, 0x81, 0x00, 0xaa};
    assert_int_equal(cp2p_multihash_decode(nonmin_len, sizeof(nonmin_len), &code, &d),
                     CP2P_EPROTO);
    /* Over-long code varint: ten bytes. */
    const uint8_t overlong[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
    assert_int_equal(cp2p_multihash_decode(overlong, sizeof(overlong), &code, &d), CP2P_EPROTO);
    /* Digest length 65 > CP2P_MULTIHASH_MAX_DIGEST; 64 is fine. */
    buf[0] = 0x13;
    buf[1] = 65;
    assert_int_equal(cp2p_multihash_decode(buf, 67, &code, &d), CP2P_EPROTO);
    buf[1] = 64;
    assert_int_equal(cp2p_multihash_decode(buf, 66, &code, &d), 66);
    assert_int_equal(cp2p_multihash_validate(buf, 66), 0);
    /* Trailing bytes: decode consumes the multihash, validate refuses. */
    assert_int_equal(cp2p_multihash_decode(buf, 67, &code, &d), 66);
    assert_int_equal(cp2p_multihash_validate(buf, 67), CP2P_EPROTO);
    /* Identity with an empty digest is a valid multihash. */
    const uint8_t empty_id[] = {0x00, 0x00};
    assert_int_equal(cp2p_multihash_validate(empty_id, 2), 0);
    assert_int_equal(cp2p_multihash_validate(empty_id, 0), CP2P_EPROTO);
}

static void multihash_encode(void **state)
{
    cp2p_buf out;
    uint8_t d[65] = {1, 2, 3};
    (void)state;
    cp2p_buf_init(&out, 128);
    assert_int_equal(cp2p_multihash_encode(&out, CP2P_MULTIHASH_IDENTITY, d, 3), 0);
    const uint8_t want[] = {0x00, 0x03, 1, 2, 3};
    assert_int_equal(out.len, sizeof(want));
    assert_memory_equal(out.ptr, want, sizeof(want));
    /* A large code takes a multi-byte varint and round-trips. */
    cp2p_buf_reset(&out);
    assert_int_equal(cp2p_multihash_encode(&out, 0xb220, d, 32), 0); /* blake2b-256 */
    uint64_t code;
    cp2p_slice s;
    assert_int_equal(cp2p_multihash_decode(out.ptr, out.len, &code, &s), (ptrdiff_t)out.len);
    assert_int_equal(code, 0xb220);
    assert_int_equal(s.len, 32);
    /* Limits. */
    cp2p_buf_reset(&out);
    assert_int_equal(cp2p_multihash_encode(&out, 0x12, d, 65), CP2P_EINVAL);
    assert_int_equal(cp2p_multihash_encode(&out, UINT64_MAX, d, 1), CP2P_EINVAL);
    assert_int_equal(out.len, 0);
    cp2p_buf_fini(&out);
    /* A full buffer: nothing appended. */
    cp2p_buf small;
    cp2p_buf_init(&small, 10);
    assert_int_equal(cp2p_buf_append(&small, "abc", 3), 0);
    assert_int_equal(cp2p_multihash_encode(&small, 0x12, d, 32), CP2P_ELIMIT);
    assert_int_equal(small.len, 3);
    assert_int_equal(cp2p_multihash_sha256(&small, d, 1), CP2P_ELIMIT);
    assert_int_equal(small.len, 3);
    cp2p_buf_fini(&small);
}

/* ---- multibase ---- */

/* multiformats/multibase test vectors (tests/basic.csv, leading_zero.csv, two_leading_zeros.csv)
 * for the bases we support. */
static const struct {
    const char *in;
    size_t len;
    const char *enc[5]; /* f, b, k, z, u */
} MB_VEC[] = {
    {"yes mani !", 10,
     {"f796573206d616e692021", "bpfsxgidnmfxgsibb", "k2lcpzo5yikidynfl", "z7paNL19xttacUY",
      "ueWVzIG1hbmkgIQ"}},
    {"\0yes mani !", 11,
     {"f00796573206d616e692021", "bab4wk4zanvqw42jaee", "k02lcpzo5yikidynfl",
      "z17paNL19xttacUY", "uAHllcyBtYW5pICE"}},
    {"\0\0yes mani !", 12,
     {"f0000796573206d616e692021", "baaahszltebwwc3tjeaqq", "k002lcpzo5yikidynfl",
      "z117paNL19xttacUY", "uAAB5ZXMgbWFuaSAh"}},
    {"", 0, {"f", "b", "k", "z", "u"}},
    {"\0", 1, {"f00", "baa", "k0", "z1", "uAA"}},
    {"\0\0", 2, {"f0000", "baaaa", "k00", "z11", "uAAA"}},
};
static const char MB_BASES[5] = {'f', 'b', 'k', 'z', 'u'};

static void multibase_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(MB_VEC) / sizeof(MB_VEC[0]); i++) {
        for (size_t k = 0; k < 5; k++) {
            cp2p_buf out;
            cp2p_buf_init(&out, 256);
            assert_int_equal(cp2p_multibase_encode(&out, MB_BASES[k],
                                                   (const uint8_t *)MB_VEC[i].in, MB_VEC[i].len),
                             0);
            assert_string_equal((const char *)out.ptr, MB_VEC[i].enc[k]);
            cp2p_buf_reset(&out);
            assert_int_equal(
                cp2p_multibase_decode(&out, MB_VEC[i].enc[k], strlen(MB_VEC[i].enc[k])), 0);
            assert_int_equal(out.len, MB_VEC[i].len);
            if (out.len > 0) {
                assert_memory_equal(out.ptr, MB_VEC[i].in, out.len);
            }
            cp2p_buf_fini(&out);
        }
    }
}

static void multibase_round_trip_random(void **state)
{
    (void)state;
    uint8_t in[200];
    uint32_t x = 12345;
    for (size_t len = 0; len <= sizeof(in); len += 7) {
        for (size_t i = 0; i < len; i++) {
            x = x * 1103515245u + 12345u;
            in[i] = (uint8_t)(x >> 16);
            if (i < 3 && len % 2 == 0) {
                in[i] = 0; /* leading zeros matter for the big-number bases */
            }
        }
        for (size_t k = 0; k < 5; k++) {
            cp2p_buf enc, dec;
            cp2p_buf_init(&enc, 1024);
            cp2p_buf_init(&dec, 1024);
            assert_int_equal(cp2p_multibase_encode(&enc, MB_BASES[k], in, len), 0);
            assert_int_equal(enc.ptr[0], MB_BASES[k]);
            assert_int_equal(cp2p_multibase_decode(&dec, (const char *)enc.ptr, enc.len), 0);
            assert_int_equal(dec.len, len);
            if (len > 0) {
                assert_memory_equal(dec.ptr, in, len);
            }
            cp2p_buf_fini(&enc);
            cp2p_buf_fini(&dec);
        }
    }
}

static void multibase_errors_leave_buffer_unchanged(void **state)
{
    cp2p_buf out;
    (void)state;
    cp2p_buf_init(&out, 64);
    assert_int_equal(cp2p_buf_append(&out, "keep", 4), 0);
    static const struct {
        const char *s;
        int rc;
    } bad[] = {
        {"", CP2P_EINVAL},         {"x1234", CP2P_ENOTSUP},  {"B", CP2P_ENOTSUP},
        {"Zabc", CP2P_ENOTSUP},    {"m", CP2P_ENOTSUP},      {"fabc", CP2P_EINVAL},
        {"fzz", CP2P_EINVAL},      {"b1", CP2P_EINVAL},      {"bA", CP2P_EINVAL},
        {"bab", CP2P_EINVAL},      {"z0", CP2P_EINVAL},      {"zO", CP2P_EINVAL},
        {"zl", CP2P_EINVAL},       {"kA", CP2P_EINVAL},      {"k-", CP2P_EINVAL},
        {"u+", CP2P_EINVAL},       {"u/", CP2P_EINVAL},      {"uA", CP2P_EINVAL},
        {"uAB=", CP2P_EINVAL},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(cp2p_multibase_decode(&out, bad[i].s, strlen(bad[i].s)), bad[i].rc);
        assert_int_equal(out.len, 4);
        assert_string_equal((const char *)out.ptr, "keep");
    }
    /* Embedded NUL is never a digit. */
    assert_int_equal(cp2p_multibase_decode(&out, "k1\0", 3), CP2P_EINVAL);
    assert_int_equal(out.len, 4);
    /* Unsupported base on encode; and a full buffer. */
    assert_int_equal(cp2p_multibase_encode(&out, 'Q', (const uint8_t *)"a", 1), CP2P_ENOTSUP);
    uint8_t big[64] = {1};
    for (size_t k = 0; k < 5; k++) {
        assert_int_equal(cp2p_multibase_encode(&out, MB_BASES[k], big, sizeof(big)),
                         CP2P_ELIMIT);
        assert_int_equal(out.len, 4);
        assert_string_equal((const char *)out.ptr, "keep");
    }
    cp2p_buf_fini(&out);
}

static void multibase_quadratic_bases_are_bounded(void **state)
{
    cp2p_buf out;
    static uint8_t big[300];
    static char text[700];
    (void)state;
    cp2p_buf_init(&out, 4096);
    assert_int_equal(cp2p_multibase_encode(&out, 'k', big, sizeof(big)), CP2P_ELIMIT);
    assert_int_equal(cp2p_multibase_encode(&out, 'z', big, sizeof(big)), CP2P_ELIMIT);
    memset(text, '2', sizeof(text));
    text[0] = 'k';
    assert_int_equal(cp2p_multibase_decode(&out, text, sizeof(text)), CP2P_ELIMIT);
    text[0] = 'z';
    assert_int_equal(cp2p_multibase_decode(&out, text, sizeof(text)), CP2P_ELIMIT);
    assert_int_equal(out.len, 0);
    cp2p_buf_fini(&out);
}

static void multibase_allocation_failures(void **state)
{
    (void)state;
    for (long k = 1; k < 10; k++) {
        cp2p_buf out;
        cp2p_buf_init(&out, 256);
        cp2p__alloc_fail_after(k);
        int rc = cp2p_multibase_decode(&out, "k2lcpzo5yikidynfl", 17);
        cp2p__alloc_fail_after(0);
        assert_true(rc == 0 || rc == CP2P_ENOMEM);
        cp2p_buf_fini(&out);
        if (rc == 0) {
            break;
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(multihash_sha256_vector),
        cmocka_unit_test(multihash_every_truncation_needs_more),
        cmocka_unit_test(multihash_rejects_malformed),
        cmocka_unit_test(multihash_encode),
        cmocka_unit_test(multibase_vectors),
        cmocka_unit_test(multibase_round_trip_random),
        cmocka_unit_test(multibase_errors_leave_buffer_unchanged),
        cmocka_unit_test(multibase_quadratic_bases_are_bounded),
        cmocka_unit_test(multibase_allocation_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
