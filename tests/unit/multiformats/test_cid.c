/* CID: binary and text forms. Vectors from the multiformats/cid README and computed with the
 * js multiformats library (v14). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <cp2p/multiformats.h>

#include "util/alloc.h"

static cp2p_buf unhex(const char *hex)
{
    cp2p_buf b;
    cp2p_buf_init(&b, 4096);
    assert_int_equal(cp2p_hex_decode(&b, hex, strlen(hex)), 0);
    return b;
}

/* CIDv1 dag-pb from the multiformats/cid README. */
static const char V1_DAGPB[] = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi";
static const char V1_DAGPB_HEX[] =
    "01701220c3c4733ec8affd06cf9e9ff50ffc6bcd2ec85a6170004bb709669c31de94391a";
/* A CIDv0 and the same multihash as a CIDv1 (dag-pb). */
static const char V0[] = "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N";
static const char V0_HEX[] = "12209dff3b17d74cf4d38a50d8b6383e92d181a10395a5e73a726dcccbd21bf6f0b9";
static const char V0_AS_V1[] = "bafybeie5745rpv2m6tjyuugywy4d5ewrqgqqhfnf445he3omzpjbx5xqxe";
/* raw codec over sha2-256("hello") in three bases. */
static const char RAW_B32[] = "bafkreibm6jg3ux5qumhcn2b3flc3tyu6dmlb4xa7u5bf44yegnrjhc4yeq";
static const char RAW_B58[] = "zb2rhZfjRh2FHHB2RkHVEvL2vJnCTcu7kwRqgVsf9gpkLgteo";
static const char RAW_B36[] = "k2cwue9rqdypmt3thjky14z1tk9fi9f0o5w7b3ofitdewlcf87lismqs";

static void cid_v1_text_and_binary(void **state)
{
    cp2p_cid c;
    cp2p_buf bin, txt, want = unhex(V1_DAGPB_HEX);
    (void)state;
    assert_int_equal(cp2p_cid_parse(V1_DAGPB, strlen(V1_DAGPB), &c), 0);
    assert_int_equal(c.version, 1);
    assert_int_equal(c.codec, CP2P_CODEC_DAG_PB);
    assert_int_equal(c.mh_len, 34);
    cp2p_buf_init(&bin, 256);
    cp2p_buf_init(&txt, CP2P_CID_STR_MAX);
    assert_int_equal(cp2p_cid_encode(&c, &bin), 0);
    assert_int_equal(bin.len, want.len);
    assert_memory_equal(bin.ptr, want.ptr, want.len);
    assert_int_equal(cp2p_cid_to_string(&c, &txt), 0);
    assert_string_equal((const char *)txt.ptr, V1_DAGPB);

    cp2p_cid d;
    assert_int_equal(cp2p_cid_decode(bin.ptr, bin.len, &d), (ptrdiff_t)bin.len);
    assert_true(cp2p_cid_equal(&c, &d));
    assert_int_equal(cp2p_cid_from_bytes(bin.ptr, bin.len, &d), 0);
    assert_true(cp2p_cid_equal(&c, &d));
    cp2p_buf_fini(&bin);
    cp2p_buf_fini(&txt);
    cp2p_buf_fini(&want);
}

static void cid_v0(void **state)
{
    cp2p_cid c, v1;
    cp2p_buf txt, want = unhex(V0_HEX);
    (void)state;
    assert_int_equal(cp2p_cid_parse(V0, strlen(V0), &c), 0);
    assert_int_equal(c.version, 0);
    assert_int_equal(c.codec, CP2P_CODEC_DAG_PB);
    assert_int_equal(c.mh_len, 34);
    assert_memory_equal(c.mh, want.ptr, 34);
    cp2p_buf_init(&txt, CP2P_CID_STR_MAX);
    assert_int_equal(cp2p_cid_to_string(&c, &txt), 0);
    assert_string_equal((const char *)txt.ptr, V0);
    /* A CIDv0 has no multibase form. */
    assert_int_equal(cp2p_cid_to_string_base(&c, 'b', &txt), CP2P_EINVAL);
    assert_int_equal(txt.len, strlen(V0));
    /* Its binary form is the bare multihash. */
    cp2p_cid d;
    assert_int_equal(cp2p_cid_from_bytes(want.ptr, want.len, &d), 0);
    assert_true(cp2p_cid_equal(&c, &d));
    /* The same multihash as a CIDv1. */
    assert_int_equal(cp2p_cid_init(&v1, 1, CP2P_CODEC_DAG_PB, c.mh, c.mh_len), 0);
    cp2p_buf_reset(&txt);
    assert_int_equal(cp2p_cid_to_string(&v1, &txt), 0);
    assert_string_equal((const char *)txt.ptr, V0_AS_V1);
    assert_false(cp2p_cid_equal(&c, &v1));
    cp2p_buf_fini(&txt);
    cp2p_buf_fini(&want);
}

static void cid_raw_in_every_base(void **state)
{
    cp2p_cid a, b, c, want;
    cp2p_buf mh;
    (void)state;
    cp2p_buf_init(&mh, 64);
    assert_int_equal(cp2p_multihash_sha256(&mh, (const uint8_t *)"hello", 5), 0);
    assert_int_equal(cp2p_cid_init(&want, 1, CP2P_CODEC_RAW, mh.ptr, mh.len), 0);
    assert_int_equal(cp2p_cid_parse(RAW_B32, strlen(RAW_B32), &a), 0);
    assert_int_equal(cp2p_cid_parse(RAW_B58, strlen(RAW_B58), &b), 0);
    assert_int_equal(cp2p_cid_parse(RAW_B36, strlen(RAW_B36), &c), 0);
    assert_true(cp2p_cid_equal(&a, &want));
    assert_true(cp2p_cid_equal(&b, &want));
    assert_true(cp2p_cid_equal(&c, &want));
    const struct {
        char base;
        const char *s;
    } forms[] = {{'b', RAW_B32}, {'z', RAW_B58}, {'k', RAW_B36}};
    for (size_t i = 0; i < 3; i++) {
        cp2p_buf t;
        cp2p_buf_init(&t, CP2P_CID_STR_MAX);
        assert_int_equal(cp2p_cid_to_string_base(&want, forms[i].base, &t), 0);
        assert_string_equal((const char *)t.ptr, forms[i].s);
        assert_int_equal(cp2p_cid_to_string_base(&want, 'Q', &t), CP2P_ENOTSUP);
        cp2p_buf_fini(&t);
    }
    cp2p_buf_fini(&mh);
}

static void cid_every_truncation_needs_more(void **state)
{
    const char *hexes[] = {V1_DAGPB_HEX, V0_HEX};
    (void)state;
    for (size_t h = 0; h < 2; h++) {
        cp2p_buf b = unhex(hexes[h]);
        for (size_t i = 0; i < b.len; i++) {
            cp2p_cid c;
            assert_int_equal(cp2p_cid_decode(b.ptr, i, &c), 0);
            assert_int_equal(cp2p_cid_from_bytes(b.ptr, i, &c), CP2P_EPROTO);
        }
        cp2p_buf_fini(&b);
    }
}

static void cid_rejects_malformed_binary(void **state)
{
    cp2p_cid c;
    (void)state;
    static const char *bad[] = {
        "02701220c3c4733ec8affd06cf9e9ff50ffc6bcd2ec85a6170004bb709669c31de94391a", /* v2 */
        "03701220c3c4733ec8affd06cf9e9ff50ffc6bcd2ec85a6170004bb709669c31de94391a", /* v3 */
        "00701220c3c4733ec8affd06cf9e9ff50ffc6bcd2ec85a6170004bb709669c31de94391a", /* v0 tag */
        /* version 1 written as the non-minimal 0x81 0x00 */
        "8100701220c3c4733ec8affd06cf9e9ff50ffc6bcd2ec85a6170004bb709669c31de94391a",
        "01f0001220c3c4733ec8affd06cf9e9ff50ffc6bcd2ec85a6170004bb709669c31de94391a", /* codec */
        "0170124100", /* digest > 64 */
        "1221c3c4733ec8affd06cf9e9ff50ffc6bcd2ec85a6170004bb709669c31de94391a00",   /* v0 len 33 */
        "ffffffffffffffffff01",                                                     /* overlong */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cp2p_buf b = unhex(bad[i]);
        assert_int_equal(cp2p_cid_decode(b.ptr, b.len, &c), CP2P_EPROTO);
        assert_int_equal(cp2p_cid_from_bytes(b.ptr, b.len, &c), CP2P_EPROTO);
        cp2p_buf_fini(&b);
    }
    /* Trailing bytes: decode stops at the end of the CID; from_bytes refuses. */
    cp2p_buf b =
        unhex("01701220c3c4733ec8affd06cf9e9ff50ffc6bcd2ec85a6170004bb709669c31de94391aff");
    assert_int_equal(cp2p_cid_decode(b.ptr, b.len, &c), (ptrdiff_t)b.len - 1);
    assert_int_equal(cp2p_cid_from_bytes(b.ptr, b.len, &c), CP2P_EPROTO);
    assert_int_equal(cp2p_cid_from_bytes(b.ptr, 0, &c), CP2P_EPROTO);
    cp2p_buf_fini(&b);
}

static void cid_rejects_malformed_text(void **state)
{
    cp2p_cid c;
    static char longtext[CP2P_CID_STR_MAX + 1];
    (void)state;
    static const struct {
        const char *s;
        int rc;
    } bad[] = {
        {"", CP2P_EINVAL},
        /* A multibase-encoded CIDv0 is refused ("no CIDv18"). */
        {"zQmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N", CP2P_EINVAL},
        /* 45 and 47 characters starting with Qm are not CIDv0; 'Q' is no multibase. */
        {"QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5", CP2P_ENOTSUP},
        {"QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5NN", CP2P_ENOTSUP},
        /* 46 characters, Qm, but not valid base58 (0 and l are not in the alphabet). */
        {"Qm0yQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N", CP2P_EINVAL},
        /* Uppercase base32 prefix is not supported. */
        {"BAFYBEIGDYRZT5SFP7UDM7HU76UH7Y26NF3EFUYLQABF3OCLGTQY55FBZDI", CP2P_ENOTSUP},
        /* Truncated CIDv1 text. */
        {"bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzd", CP2P_EINVAL},
        {"bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdia", CP2P_EINVAL},
        {"b", CP2P_EINVAL},
        {"f0170", CP2P_EINVAL},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(cp2p_cid_parse(bad[i].s, strlen(bad[i].s), &c), bad[i].rc);
    }
    memset(longtext, 'a', sizeof(longtext));
    longtext[0] = 'b';
    assert_int_equal(cp2p_cid_parse(longtext, sizeof(longtext), &c), CP2P_EINVAL);
}

static void cid_init_and_encode_validate(void **state)
{
    cp2p_cid c;
    cp2p_buf out, mh = unhex(V0_HEX);
    (void)state;
    cp2p_buf_init(&out, 256);
    assert_int_equal(cp2p_cid_init(&c, 2, CP2P_CODEC_RAW, mh.ptr, mh.len), CP2P_EINVAL);
    assert_int_equal(cp2p_cid_init(&c, 0, CP2P_CODEC_RAW, mh.ptr, mh.len), CP2P_EINVAL);
    assert_int_equal(cp2p_cid_init(&c, 1, CP2P_CODEC_RAW, mh.ptr, mh.len - 1), CP2P_EINVAL);
    assert_int_equal(cp2p_cid_init(&c, 1, UINT64_MAX, mh.ptr, mh.len), CP2P_EINVAL);
    assert_int_equal(cp2p_cid_init(&c, 1, CP2P_CODEC_RAW, mh.ptr, CP2P_CID_MH_MAX + 1),
                     CP2P_EINVAL);
    assert_int_equal(cp2p_cid_init(&c, 1, CP2P_CODEC_RAW, mh.ptr, mh.len), 0);
    /* A hand-broken struct is refused by every encoder, leaving out unchanged. */
    c.mh_len = 5;
    assert_int_equal(cp2p_cid_encode(&c, &out), CP2P_EINVAL);
    assert_int_equal(cp2p_cid_to_string(&c, &out), CP2P_EINVAL);
    c.mh_len = 34;
    c.version = 7;
    assert_int_equal(cp2p_cid_encode(&c, &out), CP2P_EINVAL);
    assert_int_equal(out.len, 0);
    cp2p_buf_fini(&out);
    cp2p_buf_fini(&mh);
}

static void cid_parse_allocation_failures(void **state)
{
    (void)state;
    for (long k = 1; k < 10; k++) {
        cp2p_cid c;
        cp2p__alloc_fail_after(k);
        int rc = cp2p_cid_parse(V1_DAGPB, strlen(V1_DAGPB), &c);
        cp2p__alloc_fail_after(0);
        if (rc == 0) {
            break;
        }
        assert_int_equal(rc, CP2P_ENOMEM);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cid_v1_text_and_binary),
        cmocka_unit_test(cid_v0),
        cmocka_unit_test(cid_raw_in_every_base),
        cmocka_unit_test(cid_every_truncation_needs_more),
        cmocka_unit_test(cid_rejects_malformed_binary),
        cmocka_unit_test(cid_rejects_malformed_text),
        cmocka_unit_test(cid_init_and_encode_validate),
        cmocka_unit_test(cid_parse_allocation_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
