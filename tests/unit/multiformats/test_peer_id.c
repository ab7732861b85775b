/* Peer IDs: libp2p/specs peer-ids/peer-ids.md test vectors and string examples. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <cp2p/multiformats.h>
#include <cp2p/peer_id.h>

#include "util/alloc.h"

static cp2p_buf unhex(const char *hex)
{
    cp2p_buf b;
    cp2p_buf_init(&b, 4096);
    assert_int_equal(cp2p_hex_decode(&b, hex, strlen(hex)), 0);
    return b;
}

/* The spec's public key test vectors ("Test vectors"), with the peer IDs they give (identity
 * multihash for keys of at most 42 bytes, sha2-256 otherwise) in both text forms. The text
 * forms were checked against js multiformats. */
static const struct {
    const char *key_hex;
    const char *b58;
    const char *cid;
    const char *b36; /* CIDv1 libp2p-key in base36, as IPNS prints it */
} SPEC[] = {
    {"080112201ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e", /* ed25519 */
     "12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq",
     "bafzaajaiaejcahwr5d5ofrfbis4l5d6uwr57hu5tjodrypfm6yaq6dsc2r2pzyt6",
     "k51qzi5uqu5dgy8qsq67hbz73jqkw87l3fgf4a91qb0d9b5173tir7n4vxk1oe"},
    {"08021221037777e994e452c21604f91de093ce415f5432f701dd8cd1a7a6fea0e630bfca99", /* secp256k1 */
     "16Uiu2HAmLhLvBoYaoZfaMUKuibM6ac163GwKY74c5kiSLg5KvLpY",
     "bafzaajiiaijcca3xo7uzjzcsyilaj6i54cj44qk7kqzpoao5rti2pjx6udtdbp6kte",
     "kzwfwjn5ji4put13uvtwtc7azzwk42cq2o8ctfnxa6q8n90e72o3pjqbrp3lpcp"},
    {"0803125b3059301306072a8648ce3d020106082a8648ce3d03010703420004de3d300fa36ae0e8f5d5308"
     "99d83abab44abf3161f162a4bc901d8e6ecda020e8b6d5f8da30525e71d6851510c098e5c47c646a597fb"
     "4dcec034e9f77c409e62", /* ECDSA: 95 bytes, hashed */
     "QmVMT29id3TUASyfZZ6k9hmNyc2nYabCo4uMSpDw4zrgDk",
     "bafzbeidigywdclqvl5hxfefwp5onbffcfife7pza57mmfb4tiqmtkdjw64",
     "k2k4r8m0iploq6r25jp915xawtnx0qdr0je62jws2kki6votbj5191x3"},
};

/* Peer ID of a protobuf PublicKey, per the spec (deriving it is src/crypto's job; this is the
 * test's own reference). */
static cp2p_peer_id id_of_key(const cp2p_buf *key)
{
    cp2p_buf mh;
    cp2p_peer_id id;
    cp2p_buf_init(&mh, 128);
    if (key->len <= 42) {
        assert_int_equal(cp2p_multihash_encode(&mh, CP2P_MULTIHASH_IDENTITY, key->ptr, key->len),
                         0);
    } else {
        assert_int_equal(cp2p_multihash_sha256(&mh, key->ptr, key->len), 0);
    }
    assert_int_equal(cp2p_peer_id_from_bytes(mh.ptr, mh.len, &id), 0);
    cp2p_buf_fini(&mh);
    return id;
}

static void peer_id_spec_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(SPEC) / sizeof(SPEC[0]); i++) {
        cp2p_buf key = unhex(SPEC[i].key_hex), t;
        cp2p_peer_id id = id_of_key(&key), p;
        char str[CP2P_PEER_ID_STR_MAX];

        cp2p_buf_init(&t, CP2P_PEER_ID_STR_MAX);
        assert_int_equal(cp2p_peer_id_to_base58(&id, &t), 0);
        assert_string_equal((const char *)t.ptr, SPEC[i].b58);
        assert_string_equal(cp2p_peer_id_str(&id, str), SPEC[i].b58);
        cp2p_buf_reset(&t);
        assert_int_equal(cp2p_peer_id_to_cid(&id, &t), 0);
        assert_string_equal((const char *)t.ptr, SPEC[i].cid);
        cp2p_buf_fini(&t);

        const char *forms[] = {SPEC[i].b58, SPEC[i].cid, SPEC[i].b36};
        for (size_t f = 0; f < 3; f++) {
            memset(&p, 0xee, sizeof(p));
            assert_int_equal(cp2p_peer_id_parse(forms[f], strlen(forms[f]), &p), 0);
            assert_true(cp2p_peer_id_equal(&id, &p));
        }

        cp2p_slice k;
        if (key.len <= 42) {
            assert_int_equal(cp2p_peer_id_inline_key(&id, &k), 0);
            assert_int_equal(k.len, key.len);
            assert_memory_equal(k.ptr, key.ptr, key.len);
        } else {
            assert_int_equal(cp2p_peer_id_inline_key(&id, &k), CP2P_ENOENT);
        }
        cp2p_buf_fini(&key);
    }
}

/* The spec's "String representation" examples. */
static void peer_id_spec_string_examples(void **state)
{
    cp2p_peer_id a, b, c;
    cp2p_buf t;
    (void)state;
    const char *cid = "bafzbeie5745rpv2m6tjyuugywy4d5ewrqgqqhfnf445he3omzpjbx5xqxe";
    const char *b58 = "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N";
    const char *ed = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA";
    assert_int_equal(cp2p_peer_id_parse(cid, strlen(cid), &a), 0);
    assert_int_equal(cp2p_peer_id_parse(b58, strlen(b58), &b), 0);
    assert_true(cp2p_peer_id_equal(&a, &b));
    assert_int_equal(a.len, 34);
    assert_int_equal(cp2p_peer_id_parse(ed, strlen(ed), &c), 0);
    assert_int_equal(c.len, 38);
    assert_false(cp2p_peer_id_equal(&a, &c));
    cp2p_buf_init(&t, CP2P_PEER_ID_STR_MAX);
    assert_int_equal(cp2p_peer_id_to_cid(&a, &t), 0);
    assert_string_equal((const char *)t.ptr, cid);
    cp2p_buf_reset(&t);
    assert_int_equal(cp2p_peer_id_to_cid(&c, &t), 0);
    assert_string_equal((const char *)t.ptr,
                        "bafzaajaiaejcal72gwuz2or47oyxxn6b3rkwdmmkrxgkjxzy3rqt5kczyn7lcm3l");
    cp2p_buf_fini(&t);
}

static void peer_id_bytes_truncations_and_limits(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(SPEC) / sizeof(SPEC[0]); i++) {
        cp2p_buf key = unhex(SPEC[i].key_hex);
        cp2p_peer_id id = id_of_key(&key), p;
        for (size_t n = 0; n < id.len; n++) {
            assert_int_equal(cp2p_peer_id_from_bytes(id.bytes, n, &p), CP2P_EPROTO);
        }
        uint8_t longer[CP2P_PEER_ID_MAX + 1];
        memcpy(longer, id.bytes, id.len);
        longer[id.len] = 0;
        assert_int_equal(cp2p_peer_id_from_bytes(longer, id.len + 1, &p), CP2P_EPROTO);
        cp2p_buf_fini(&key);
    }
    uint8_t mh[CP2P_PEER_ID_MAX + 8] = {0};
    cp2p_peer_id p;
    /* identity: 1..42 bytes of key. */
    mh[0] = 0x00;
    mh[1] = 42;
    assert_int_equal(cp2p_peer_id_from_bytes(mh, 44, &p), 0);
    mh[1] = 43;
    assert_int_equal(cp2p_peer_id_from_bytes(mh, 45, &p), CP2P_EPROTO);
    mh[1] = 0;
    assert_int_equal(cp2p_peer_id_from_bytes(mh, 2, &p), CP2P_EPROTO);
    /* sha2-256: exactly 32 bytes. */
    mh[0] = 0x12;
    mh[1] = 31;
    assert_int_equal(cp2p_peer_id_from_bytes(mh, 33, &p), CP2P_EPROTO);
    mh[1] = 33;
    assert_int_equal(cp2p_peer_id_from_bytes(mh, 35, &p), CP2P_EPROTO);
    /* Other hash functions (sha1 0x11, sha2-512 0x13) are not peer IDs. */
    mh[0] = 0x11;
    mh[1] = 20;
    assert_int_equal(cp2p_peer_id_from_bytes(mh, 22, &p), CP2P_EPROTO);
    /* Non-minimal varints: 0x80 0x00 for identity; 0x20 padded for the length. */
    const uint8_t nonmin1[] = {0x80, 0x00, 0x01, 0xaa};
    assert_int_equal(cp2p_peer_id_from_bytes(nonmin1, sizeof(nonmin1), &p), CP2P_EPROTO);
    uint8_t nonmin2[35] = {0x12, 0xa0, 0x00};
    assert_int_equal(cp2p_peer_id_from_bytes(nonmin2, sizeof(nonmin2), &p), CP2P_EPROTO);
    assert_int_equal(cp2p_peer_id_from_bytes(mh, 0, &p), CP2P_EPROTO);
}

static void peer_id_parse_rejects(void **state)
{
    cp2p_peer_id p, untouched;
    static char longtext[CP2P_PEER_ID_STR_MAX + 4];
    (void)state;
    memset(&p, 0xab, sizeof(p));
    untouched = p;
    static const char *bad[] = {
        "",
        "1",
        "Qm",
        "Q",
        "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5S",   /* truncated */
        "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SAA", /* one more char */
        "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5S0",  /* '0' not base58 */
        "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5", /* truncated */
        /* CIDv1 with the dag-pb codec instead of libp2p-key. */
        "bafybeie5745rpv2m6tjyuugywy4d5ewrqgqqhfnf445he3omzpjbx5xqxe",
        /* A multibase-encoded CIDv0. */
        "zQmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N",
        /* Unknown or unsupported multibase prefixes. */
        "BAFZBEIE5745RPV2M6TJYUUGYWY4D5EWRQGQQHFNF445HE3OMZPJBX5XQXE",
        "mAXIAJAgBEiAe0ej64sShRLi+j9S0e/PTs0uHHDys9gEPDkLUdPzifg",
        /* A truncated CID. */
        "bafzbeie5745rpv2m6tjyuugywy4d5ewrqgqqhfnf445he3omzpjbx5xqx",
        "xyz",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(cp2p_peer_id_parse(bad[i], strlen(bad[i]), &p), CP2P_EINVAL);
        assert_memory_equal(&p, &untouched, sizeof(p));
    }
    memset(longtext, 'z', sizeof(longtext));
    longtext[0] = '1';
    assert_int_equal(cp2p_peer_id_parse(longtext, sizeof(longtext), &p), CP2P_EINVAL);
    /* An embedded NUL is not part of any alphabet. */
    assert_int_equal(cp2p_peer_id_parse("12D3KooW\0", 9, &p), CP2P_EINVAL);
}

static void peer_id_invalid_struct(void **state)
{
    cp2p_peer_id bad;
    char str[CP2P_PEER_ID_STR_MAX];
    cp2p_buf t;
    cp2p_slice k;
    (void)state;
    memset(&bad, 0, sizeof(bad));
    bad.len = 3;
    assert_string_equal(cp2p_peer_id_str(&bad, str), "<invalid>");
    bad.len = CP2P_PEER_ID_MAX + 100;
    assert_string_equal(cp2p_peer_id_str(&bad, str), "<invalid>");
    cp2p_buf_init(&t, 200);
    assert_int_equal(cp2p_buf_append(&t, "x", 1), 0);
    assert_int_equal(cp2p_peer_id_to_base58(&bad, &t), CP2P_EINVAL);
    assert_int_equal(cp2p_peer_id_to_cid(&bad, &t), CP2P_EINVAL);
    assert_int_equal(t.len, 1);
    assert_int_equal(cp2p_peer_id_inline_key(&bad, &k), CP2P_ENOENT);
    assert_false(cp2p_peer_id_equal(&bad, &bad));
    cp2p_buf_fini(&t);

    /* A buffer too small for the text: ELIMIT, nothing appended. */
    cp2p_peer_id id;
    const char *ed = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA";
    assert_int_equal(cp2p_peer_id_parse(ed, strlen(ed), &id), 0);
    cp2p_buf_init(&t, 20);
    assert_int_equal(cp2p_peer_id_to_base58(&id, &t), CP2P_ELIMIT);
    assert_int_equal(cp2p_peer_id_to_cid(&id, &t), CP2P_ELIMIT);
    assert_int_equal(t.len, 0);
    cp2p_buf_fini(&t);
}

static void peer_id_parse_allocation_failures(void **state)
{
    (void)state;
    const char *forms[] = {SPEC[0].b58, SPEC[0].cid, SPEC[0].b36};
    for (size_t f = 0; f < 3; f++) {
        for (long k = 1; k < 10; k++) {
            cp2p_peer_id id;
            cp2p__alloc_fail_after(k);
            int rc = cp2p_peer_id_parse(forms[f], strlen(forms[f]), &id);
            cp2p__alloc_fail_after(0);
            if (rc == 0) {
                break;
            }
            assert_int_equal(rc, CP2P_ENOMEM);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(peer_id_spec_vectors),
        cmocka_unit_test(peer_id_spec_string_examples),
        cmocka_unit_test(peer_id_bytes_truncations_and_limits),
        cmocka_unit_test(peer_id_parse_rejects),
        cmocka_unit_test(peer_id_invalid_struct),
        cmocka_unit_test(peer_id_parse_allocation_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
