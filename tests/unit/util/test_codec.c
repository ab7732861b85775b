/* varint and base-N encodings. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <cp2p/codec.h>

#include "util/alloc.h"
#include "util/limits.h"

#define CP2P_BASEX_MAX_BYTES_TEST (CP2P_BASEX_MAX_BYTES + 1)

/* ---- varint ---- */

static void uvarint_spec_examples(void **state)
{
    /* From the multiformats unsigned-varint README. */
    static const struct {
        uint64_t v;
        uint8_t enc[4];
        size_t n;
    } vec[] = {
        {1, {0x01}, 1},           {127, {0x7f}, 1},         {128, {0x80, 0x01}, 2},
        {255, {0xff, 0x01}, 2},   {300, {0xac, 0x02}, 2},   {16384, {0x80, 0x80, 0x01}, 3},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
        uint8_t out[CP2P_UVARINT_MAX];
        uint64_t v = 0;
        assert_int_equal(cp2p_uvarint_encode(out, vec[i].v), vec[i].n);
        assert_memory_equal(out, vec[i].enc, vec[i].n);
        assert_int_equal(cp2p_uvarint_decode(vec[i].enc, vec[i].n, &v), (ptrdiff_t)vec[i].n);
        assert_int_equal(v, vec[i].v);
        assert_int_equal(cp2p_uvarint_len(vec[i].v), vec[i].n);
    }
}

static void uvarint_round_trip_boundaries(void **state)
{
    (void)state;
    for (int shift = 0; shift < 63; shift++) {
        uint64_t vals[] = {(UINT64_C(1) << shift) - 1, UINT64_C(1) << shift,
                           (UINT64_C(1) << shift) + 1};
        for (size_t k = 0; k < 3; k++) {
            uint8_t out[CP2P_UVARINT_MAX];
            uint64_t v = 0;
            size_t n = cp2p_uvarint_encode(out, vals[k]);
            assert_true(n >= 1 && n <= CP2P_UVARINT_MAX);
            assert_int_equal(cp2p_uvarint_decode(out, n, &v), (ptrdiff_t)n);
            assert_int_equal(v, vals[k]);
        }
    }
    uint8_t out[CP2P_UVARINT_MAX];
    assert_int_equal(cp2p_uvarint_encode(out, CP2P_UVARINT_MAX_VALUE), 9);
    assert_int_equal(cp2p_uvarint_encode(out, CP2P_UVARINT_MAX_VALUE + 1), 0);
}

static void uvarint_every_truncation_needs_more(void **state)
{
    uint8_t enc[CP2P_UVARINT_MAX];
    size_t n = cp2p_uvarint_encode(enc, UINT64_C(0x7fffffffffffffff));
    (void)state;
    for (size_t i = 0; i < n; i++) {
        uint64_t v;
        assert_int_equal(cp2p_uvarint_decode(enc, i, &v), 0);
    }
}

static void uvarint_rejects_non_minimal_and_overlong(void **state)
{
    uint64_t v;
    (void)state;
    static const uint8_t nm1[] = {0x80, 0x00};       /* 0 in two bytes */
    static const uint8_t nm2[] = {0x81, 0x80, 0x00}; /* 1 in three bytes */
    static const uint8_t over[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x80, 0x01};
    static const uint8_t nine_cont[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80};
    assert_int_equal(cp2p_uvarint_decode(nm1, sizeof(nm1), &v), CP2P_EPROTO);
    assert_int_equal(cp2p_uvarint_decode(nm2, sizeof(nm2), &v), CP2P_EPROTO);
    assert_int_equal(cp2p_uvarint_decode(over, sizeof(over), &v), CP2P_EPROTO);
    assert_int_equal(cp2p_uvarint_decode(nine_cont, sizeof(nine_cont), &v), CP2P_EPROTO);
    assert_int_equal(cp2p_uvarint_decode(nm1, 0, &v), 0);
    /* The ninth byte may carry 7 bits, the maximum 63-bit value. */
    static const uint8_t max[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f};
    assert_int_equal(cp2p_uvarint_decode(max, sizeof(max), &v), 9);
    assert_true(v == CP2P_UVARINT_MAX_VALUE);
}

/* ---- base-N ---- */

typedef int (*enc_fn)(cp2p_buf *, const uint8_t *, size_t);
typedef int (*dec_fn)(cp2p_buf *, const char *, size_t);

static void check_vec(enc_fn enc, dec_fn dec, const char *raw, const char *text)
{
    cp2p_buf b;
    cp2p_buf_init(&b, 4096);
    assert_int_equal(enc(&b, (const uint8_t *)raw, strlen(raw)), 0);
    assert_int_equal(b.len, strlen(text));
    if (b.len > 0) {
        assert_string_equal((const char *)b.ptr, text);
    }
    cp2p_buf_reset(&b);
    assert_int_equal(dec(&b, text, strlen(text)), 0);
    assert_int_equal(b.len, strlen(raw));
    if (b.len > 0) {
        assert_memory_equal(b.ptr, raw, b.len);
    }
    cp2p_buf_fini(&b);
}

static void rfc4648_vectors(void **state)
{
    static const char *raw[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    static const char *b32[] = {"", "my", "mzxq", "mzxw6", "mzxw6yq", "mzxw6ytb", "mzxw6ytboi"};
    static const char *b64[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
    static const char *hex[] = {"", "66", "666f", "666f6f", "666f6f62", "666f6f6261",
                                "666f6f626172"};
    (void)state;
    for (size_t i = 0; i < 7; i++) {
        check_vec(cp2p_base32_encode, cp2p_base32_decode, raw[i], b32[i]);
        check_vec(cp2p_base64url_encode, cp2p_base64url_decode, raw[i], b64[i]);
        check_vec(cp2p_hex_encode, cp2p_hex_decode, raw[i], hex[i]);
    }
}

static void base58_vectors(void **state)
{
    /* From the base58 IETF draft (draft-msporny-base58). */
    (void)state;
    check_vec(cp2p_base58btc_encode, cp2p_base58btc_decode, "Hello World!", "2NEpo7TZRRrLZSi2U");
    check_vec(cp2p_base58btc_encode, cp2p_base58btc_decode,
              "The quick brown fox jumps over the lazy dog.",
              "USm3fpXnKG5EUBx2ndxBDMPVciP5hGey2Jh4NDv6gmeo1LkMeiKrLJUUBk6Z");
    cp2p_buf b;
    cp2p_buf_init(&b, 64);
    static const uint8_t lead[] = {0, 0, 0x28, 0x7f, 0xb4, 0xcd};
    assert_int_equal(cp2p_base58btc_encode(&b, lead, sizeof(lead)), 0);
    assert_string_equal((const char *)b.ptr, "11233QC4");
    cp2p_buf_reset(&b);
    assert_int_equal(cp2p_base58btc_decode(&b, "11233QC4", 8), 0);
    assert_int_equal(b.len, sizeof(lead));
    assert_memory_equal(b.ptr, lead, sizeof(lead));
    cp2p_buf_fini(&b);
}

static void decoders_reject_bad_text(void **state)
{
    cp2p_buf b;
    (void)state;
    cp2p_buf_init(&b, 64);
    assert_int_equal(cp2p_base58btc_decode(&b, "0OIl", 4), CP2P_EINVAL);
    assert_int_equal(cp2p_base58btc_decode(&b, "abc+", 4), CP2P_EINVAL);
    assert_int_equal(cp2p_base32_decode(&b, "MZXW6", 5), CP2P_EINVAL); /* upper case */
    assert_int_equal(cp2p_base32_decode(&b, "m", 1), CP2P_EINVAL);     /* impossible length */
    assert_int_equal(cp2p_base32_decode(&b, "mz", 2), CP2P_EINVAL);    /* non-zero pad bits */
    assert_int_equal(cp2p_base32_decode(&b, "my======", 8), CP2P_EINVAL); /* padding */
    assert_int_equal(cp2p_base64url_decode(&b, "Zg==", 4), CP2P_EINVAL);
    assert_int_equal(cp2p_base64url_decode(&b, "Zh", 2), CP2P_EINVAL); /* non-zero pad bits */
    assert_int_equal(cp2p_base64url_decode(&b, "Z", 1), CP2P_EINVAL);
    assert_int_equal(cp2p_base64url_decode(&b, "Zm9+", 4), CP2P_EINVAL); /* std alphabet */
    assert_int_equal(cp2p_hex_decode(&b, "abc", 3), CP2P_EINVAL);
    assert_int_equal(cp2p_hex_decode(&b, "zz", 2), CP2P_EINVAL);
    assert_int_equal(cp2p_hex_decode(&b, "a\0", 2), CP2P_EINVAL);
    assert_int_equal(b.len, 0); /* a failed decode appends nothing */
    assert_int_equal(cp2p_hex_decode(&b, "ABcd", 4), 0);
    assert_int_equal(b.len, 2);
    cp2p_buf_fini(&b);
}

static void random_round_trips(void **state)
{
    uint8_t raw[64];
    uint32_t x = 12345;
    (void)state;
    for (int iter = 0; iter < 500; iter++) {
        size_t n = (size_t)(iter % 65);
        for (size_t i = 0; i < n; i++) {
            x = x * 1103515245u + 12345u;
            raw[i] = (uint8_t)(iter % 7 == 0 && i < 3 ? 0 : x >> 16);
        }
        enc_fn encs[] = {cp2p_base58btc_encode, cp2p_base32_encode, cp2p_base64url_encode,
                         cp2p_hex_encode};
        dec_fn decs[] = {cp2p_base58btc_decode, cp2p_base32_decode, cp2p_base64url_decode,
                         cp2p_hex_decode};
        for (size_t k = 0; k < 4; k++) {
            cp2p_buf t, r;
            cp2p_buf_init(&t, 1024);
            cp2p_buf_init(&r, 1024);
            assert_int_equal(encs[k](&t, raw, n), 0);
            assert_int_equal(decs[k](&r, (const char *)t.ptr, t.len), 0);
            assert_int_equal(r.len, n);
            if (n > 0) {
                assert_memory_equal(r.ptr, raw, n);
            }
            cp2p_buf_fini(&t);
            cp2p_buf_fini(&r);
        }
    }
}

static void encoders_respect_buffer_max(void **state)
{
    cp2p_buf b;
    (void)state;
    cp2p_buf_init(&b, 3);
    static const uint8_t raw[] = {1, 2};
    assert_int_equal(cp2p_hex_encode(&b, raw, 2), CP2P_ELIMIT);
    assert_int_equal(b.len, 0);
    uint8_t big[CP2P_BASEX_MAX_BYTES_TEST];
    memset(big, 1, sizeof(big));
    cp2p_buf_fini(&b);
    cp2p_buf_init(&b, 100000);
    assert_int_equal(cp2p_base58btc_encode(&b, big, sizeof(big)), CP2P_ELIMIT);
    cp2p_buf_fini(&b);
}

static void allocation_failure_leaves_buffer_unchanged(void **state)
{
    (void)state;
    for (long fail = 1; fail < 4; fail++) {
        cp2p_buf b;
        cp2p_buf_init(&b, 1 << 20);
        cp2p__alloc_fail_after(fail);
        int rc = cp2p_hex_encode(&b, (const uint8_t *)"abcdef", 6);
        cp2p__alloc_fail_after(0);
        if (rc != 0) {
            assert_int_equal(rc, CP2P_ENOMEM);
            assert_int_equal(b.len, 0);
        }
        cp2p_buf_fini(&b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(uvarint_spec_examples),
        cmocka_unit_test(uvarint_round_trip_boundaries),
        cmocka_unit_test(uvarint_every_truncation_needs_more),
        cmocka_unit_test(uvarint_rejects_non_minimal_and_overlong),
        cmocka_unit_test(rfc4648_vectors),
        cmocka_unit_test(base58_vectors),
        cmocka_unit_test(decoders_reject_bad_text),
        cmocka_unit_test(random_round_trips),
        cmocka_unit_test(encoders_respect_buffer_max),
        cmocka_unit_test(allocation_failure_leaves_buffer_unchanged),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
