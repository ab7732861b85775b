/* Keys, signatures, key encodings, key files and peer-ID derivation (include/cp2p/keys.h).
 * Vectors: libp2p peer-ids spec (keys_vectors.h), RFC 8032 section 7.1 test 1, and the
 * go-libp2p secp256k1 fixture (core/crypto/test_data/2.*). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <secp256k1.h>
#include <sodium.h>

#include <cp2p/codec.h>
#include <cp2p/keys.h>
#include <cp2p/log.h>

#include "keys_vectors.h"
#include "util/alloc.h"
#include "util/limits.h"

#define BIG 8192

/* Decode a hex literal from this file (the vectors are trusted test data). */
static size_t unhex(const char *hex, uint8_t *out, size_t cap)
{
    size_t n = strlen(hex);
    assert_int_equal(n % 2, 0);
    assert_true(n / 2 <= cap);
    for (size_t i = 0; i < n / 2; i++) {
        unsigned v;
        assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
        out[i] = (uint8_t)v;
    }
    return n / 2;
}

static void assert_bytes_equal(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    assert_int_equal(alen, blen);
    assert_memory_equal(a, b, alen);
}

static void marshal_pub_equals(const cp2p_pubkey *pub, const uint8_t *want, size_t wlen)
{
    cp2p_buf b;
    cp2p_buf_init(&b, 1024);
    assert_int_equal(cp2p_pubkey_marshal(pub, &b), 0);
    assert_bytes_equal(b.ptr, b.len, want, wlen);
    cp2p_buf_fini(&b);
}

static void marshal_priv_equals(const cp2p_privkey *priv, const uint8_t *want, size_t wlen)
{
    cp2p_buf b;
    cp2p_buf_init(&b, 1024);
    assert_int_equal(cp2p_privkey_marshal(priv, &b), 0);
    assert_bytes_equal(b.ptr, b.len, want, wlen);
    cp2p_buf_fini_wipe(&b);
}

/* Both unmarshal functions on the same bytes. */
static int try_pub(const uint8_t *in, size_t len)
{
    cp2p_pubkey *pub = NULL;
    int rc = cp2p_pubkey_unmarshal(in, len, &pub);
    if (rc == 0) {
        assert_non_null(pub);
    } else {
        assert_null(pub);
    }
    cp2p_pubkey_free(pub);
    return rc;
}

static int try_priv(const uint8_t *in, size_t len)
{
    cp2p_privkey *priv = NULL;
    int rc = cp2p_privkey_unmarshal(in, len, &priv);
    if (rc == 0) {
        assert_non_null(priv);
    } else {
        assert_null(priv);
    }
    cp2p_privkey_free(priv);
    return rc;
}

/* ---- spec vectors ---- */

static void check_spec_pair(const char *priv_hex, const char *pub_hex, cp2p_key_type type)
{
    uint8_t privb[128], pubb[128];
    size_t privlen = unhex(priv_hex, privb, sizeof(privb));
    size_t publen = unhex(pub_hex, pubb, sizeof(pubb));

    cp2p_privkey *priv = NULL;
    assert_int_equal(cp2p_privkey_unmarshal(privb, privlen, &priv), 0);
    assert_int_equal(cp2p_privkey_type(priv), type);
    /* The spec: "Implementations SHOULD check that they can produce the provided public key
     * from the private key", and re-encoding must be deterministic. */
    marshal_pub_equals(cp2p_privkey_public(priv), pubb, publen);
    marshal_priv_equals(priv, privb, privlen);

    cp2p_pubkey *pub = NULL;
    assert_int_equal(cp2p_pubkey_unmarshal(pubb, publen, &pub), 0);
    assert_int_equal(cp2p_pubkey_type(pub), type);
    assert_true(cp2p_pubkey_equal(pub, cp2p_privkey_public(priv)));
    marshal_pub_equals(pub, pubb, publen);
    /* Data is the tail of the encoding. */
    cp2p_slice raw = cp2p_pubkey_raw(pub);
    assert_bytes_equal(raw.ptr, raw.len, pubb + 4, publen - 4);

    /* Peer ID: the encoding is <= 42 bytes, so the identity multihash of it. */
    assert_true(publen <= 42);
    cp2p_peer_id id, id2;
    assert_int_equal(cp2p_peer_id_from_pubkey(pub, &id), 0);
    assert_int_equal(id.len, publen + 2);
    assert_int_equal(id.bytes[0], 0x00);
    assert_int_equal(id.bytes[1], publen);
    assert_memory_equal(id.bytes + 2, pubb, publen);
    assert_int_equal(cp2p_peer_id_from_pubkey_proto(pubb, publen, &id2), 0);
    assert_bytes_equal(id.bytes, id.len, id2.bytes, id2.len);

    /* And back from the peer ID. */
    cp2p_pubkey *back = NULL;
    assert_int_equal(cp2p_pubkey_from_peer_id(&id, &back), 0);
    assert_true(cp2p_pubkey_equal(back, pub));

    /* Sign with the vector's private key, verify with the vector's public key. */
    static const uint8_t msg[] = "peer-ids spec vector";
    cp2p_buf sig;
    cp2p_buf_init(&sig, CP2P_SIG_MAX);
    assert_int_equal(cp2p_privkey_sign(priv, msg, sizeof(msg), &sig), 0);
    assert_int_equal(cp2p_pubkey_verify(pub, msg, sizeof(msg), sig.ptr, sig.len), 0);
    cp2p_buf_fini(&sig);

    cp2p_pubkey_free(back);
    cp2p_pubkey_free(pub);
    cp2p_privkey_free(priv);
}

static void spec_vectors_ed25519(void **state)
{
    (void)state;
    check_spec_pair(SPEC_ED25519_PRIV, SPEC_ED25519_PUB, CP2P_KEY_ED25519);
}

static void spec_vectors_secp256k1(void **state)
{
    (void)state;
    check_spec_pair(SPEC_SECP256K1_PRIV, SPEC_SECP256K1_PUB, CP2P_KEY_SECP256K1);
}

/* RSA and ECDSA: not usable, but their peer IDs (sha2-256 multihash) can be derived. */
static void check_unsupported_pair(const char *priv_hex, const char *pub_hex)
{
    static uint8_t privb[BIG], pubb[BIG];
    size_t privlen = unhex(priv_hex, privb, sizeof(privb));
    size_t publen = unhex(pub_hex, pubb, sizeof(pubb));
    assert_true(privlen <= CP2P_KEY_PB_MAX);
    assert_int_equal(try_priv(privb, privlen), CP2P_ENOTSUP);
    assert_int_equal(try_pub(pubb, publen), CP2P_ENOTSUP);

    assert_true(publen > 42);
    cp2p_peer_id id;
    assert_int_equal(cp2p_peer_id_from_pubkey_proto(pubb, publen, &id), 0);
    uint8_t want[34] = {0x12, 0x20};
    crypto_hash_sha256(want + 2, pubb, publen);
    assert_bytes_equal(id.bytes, id.len, want, sizeof(want));

    cp2p_pubkey *pub = (cp2p_pubkey *)1;
    assert_int_equal(cp2p_pubkey_from_peer_id(&id, &pub), CP2P_ENOENT);
    assert_ptr_equal(pub, (cp2p_pubkey *)1); /* untouched on error */

    /* Their framing is still checked strictly. */
    for (size_t i = 0; i < publen; i++) {
        assert_int_equal(cp2p_peer_id_from_pubkey_proto(pubb, i, &id), CP2P_EPROTO);
    }
    pubb[publen] = 0;
    assert_int_equal(cp2p_peer_id_from_pubkey_proto(pubb, publen + 1, &id), CP2P_EPROTO);
}

static void spec_vectors_rsa_ecdsa(void **state)
{
    (void)state;
    check_unsupported_pair(SPEC_RSA_PRIV, SPEC_RSA_PUB);
    check_unsupported_pair(SPEC_ECDSA_PRIV, SPEC_ECDSA_PUB);
}

/* The spec's example 12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA is an Ed25519 peer ID:
 * the key inside must re-derive the same ID. */
static void spec_example_peer_id_round_trip(void **state)
{
    static const char text[] = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA";
    cp2p_buf b;
    (void)state;
    cp2p_buf_init(&b, 64);
    assert_int_equal(cp2p_base58btc_decode(&b, text, strlen(text)), 0);
    assert_int_equal(b.len, 38);
    cp2p_peer_id id = {.len = b.len};
    memcpy(id.bytes, b.ptr, b.len);
    cp2p_buf_fini(&b);

    cp2p_pubkey *pub = NULL;
    assert_int_equal(cp2p_pubkey_from_peer_id(&id, &pub), 0);
    assert_int_equal(cp2p_pubkey_type(pub), CP2P_KEY_ED25519);
    cp2p_peer_id again;
    assert_int_equal(cp2p_peer_id_from_pubkey(pub, &again), 0);
    assert_bytes_equal(again.bytes, again.len, id.bytes, id.len);
    cp2p_pubkey_free(pub);
}

/* ---- RFC 8032 and the go fixture ---- */

static void rfc8032_test1(void **state)
{
    uint8_t seed[32], pk[32], sigwant[64];
    (void)state;
    unhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60", seed, 32);
    unhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", pk, 32);
    unhex("e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bac"
          "c61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
          sigwant, 64);

    cp2p_privkey *priv = NULL;
    assert_int_equal(cp2p_privkey_from_seed(CP2P_KEY_ED25519, seed, &priv), 0);
    cp2p_slice raw = cp2p_pubkey_raw(cp2p_privkey_public(priv));
    assert_bytes_equal(raw.ptr, raw.len, pk, 32);

    /* Test 1 signs the empty message; NULL with length 0 is the same message. */
    cp2p_buf sig;
    cp2p_buf_init(&sig, CP2P_SIG_MAX);
    assert_int_equal(cp2p_privkey_sign(priv, NULL, 0, &sig), 0);
    assert_bytes_equal(sig.ptr, sig.len, sigwant, 64);
    assert_int_equal(cp2p_pubkey_verify(cp2p_privkey_public(priv), NULL, 0, sig.ptr, sig.len), 0);
    assert_int_equal(cp2p_pubkey_verify(cp2p_privkey_public(priv), (const uint8_t *)"", 0, sig.ptr,
                                        sig.len),
                     0);
    cp2p_buf_fini(&sig);

    /* The libp2p encoding is seed || public key, as js generateKeyPairFromSeed produces. */
    uint8_t want[68] = {0x08, 0x01, 0x12, 0x40};
    memcpy(want + 4, seed, 32);
    memcpy(want + 36, pk, 32);
    marshal_priv_equals(priv, want, sizeof(want));
    cp2p_privkey_free(priv);
}

/* go-libp2p core/crypto/test_data/2.{priv,pub,sig}: a secp256k1 key and its (deterministic,
 * RFC 6979) signature of "Libp2p is the _best_!". Ours must be byte-identical. */
static void go_fixture_secp256k1(void **state)
{
    uint8_t privb[64], pubb[64], sigwant[80];
    static const char msg[] = "Libp2p is the _best_!";
    (void)state;
    size_t privlen =
        unhex("080212203141bd606a504c44f23494d8f3174ef25b1fb9b52daa07d058be83b6e046b158", privb,
              sizeof(privb));
    size_t publen =
        unhex("08021221023540ad842af8a43551a94d8383a555a99226506b88f953d2e70316a3a1b3d6a2", pubb,
              sizeof(pubb));
    size_t siglen = unhex("3044022031a7d633c2f3e45a16128d43751afaa8dc9ba24092c5f5b3cad2c8fe4cf388f2"
                          "022049ea8d219f458683d24775d543ea8fb290704347fb35493c403bc2c259b29d9e",
                          sigwant, sizeof(sigwant));
    cp2p_privkey *priv = NULL;
    cp2p_pubkey *pub = NULL;
    assert_int_equal(cp2p_privkey_unmarshal(privb, privlen, &priv), 0);
    assert_int_equal(cp2p_pubkey_unmarshal(pubb, publen, &pub), 0);
    assert_true(cp2p_pubkey_equal(pub, cp2p_privkey_public(priv)));

    cp2p_buf sig;
    cp2p_buf_init(&sig, CP2P_SIG_MAX);
    assert_int_equal(cp2p_privkey_sign(priv, (const uint8_t *)msg, strlen(msg), &sig), 0);
    assert_bytes_equal(sig.ptr, sig.len, sigwant, siglen);
    assert_int_equal(cp2p_pubkey_verify(pub, (const uint8_t *)msg, strlen(msg), sigwant, siglen),
                     0);
    cp2p_buf_fini(&sig);
    cp2p_pubkey_free(pub);
    cp2p_privkey_free(priv);
}

/* ---- sign / verify ---- */

static void check_sign_verify(cp2p_key_type type)
{
    cp2p_privkey *priv = NULL, *other = NULL;
    assert_int_equal(cp2p_privkey_generate(type, &priv), 0);
    assert_int_equal(cp2p_privkey_generate(type, &other), 0);
    assert_int_equal(cp2p_privkey_type(priv), type);
    const cp2p_pubkey *pub = cp2p_privkey_public(priv);
    assert_false(cp2p_pubkey_equal(pub, cp2p_privkey_public(other)));

    uint8_t msg[300];
    for (size_t i = 0; i < sizeof(msg); i++) {
        msg[i] = (uint8_t)(i * 7);
    }
    static const size_t lens[] = {0, 1, 31, 32, 33, 64, 299, 300};
    for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
        size_t len = lens[k];
        cp2p_buf sig;
        cp2p_buf_init(&sig, CP2P_SIG_MAX);
        assert_int_equal(cp2p_privkey_sign(priv, msg, len, &sig), 0);
        assert_true(sig.len <= CP2P_SIG_MAX);
        if (type == CP2P_KEY_ED25519) {
            assert_int_equal(sig.len, CP2P_ED25519_SIG_LEN);
        }
        assert_int_equal(cp2p_pubkey_verify(pub, msg, len, sig.ptr, sig.len), 0);

        /* Deterministic. */
        cp2p_buf sig2;
        cp2p_buf_init(&sig2, CP2P_SIG_MAX);
        assert_int_equal(cp2p_privkey_sign(priv, msg, len, &sig2), 0);
        assert_bytes_equal(sig.ptr, sig.len, sig2.ptr, sig2.len);
        cp2p_buf_fini(&sig2);

        /* Wrong key, altered message, every truncation and extension of the signature. */
        assert_int_equal(
            cp2p_pubkey_verify(cp2p_privkey_public(other), msg, len, sig.ptr, sig.len),
            CP2P_EBADSIG);
        if (len > 0) {
            msg[len - 1] ^= 1;
            assert_int_equal(cp2p_pubkey_verify(pub, msg, len, sig.ptr, sig.len), CP2P_EBADSIG);
            msg[len - 1] ^= 1;
        }
        assert_int_equal(cp2p_pubkey_verify(pub, msg, len + 1, sig.ptr, sig.len), CP2P_EBADSIG);
        for (size_t n = 0; n < sig.len; n++) {
            assert_int_equal(cp2p_pubkey_verify(pub, msg, len, sig.ptr, n), CP2P_EBADSIG);
        }
        uint8_t longer[CP2P_SIG_MAX + 1];
        memcpy(longer, sig.ptr, sig.len);
        longer[sig.len] = 0;
        assert_int_equal(cp2p_pubkey_verify(pub, msg, len, longer, sig.len + 1), CP2P_EBADSIG);
        assert_int_equal(cp2p_pubkey_verify(pub, msg, len, NULL, 0), CP2P_EBADSIG);
        /* Every single-bit flip of the signature. */
        for (size_t i = 0; i < sig.len * 8; i++) {
            sig.ptr[i / 8] ^= (uint8_t)(1u << (i % 8));
            assert_int_equal(cp2p_pubkey_verify(pub, msg, len, sig.ptr, sig.len), CP2P_EBADSIG);
            sig.ptr[i / 8] ^= (uint8_t)(1u << (i % 8));
        }
        assert_int_equal(cp2p_pubkey_verify(pub, msg, len, sig.ptr, sig.len), 0);
        cp2p_buf_fini(&sig);
    }
    /* sign appends, and respects the buffer's limit. */
    cp2p_buf small;
    cp2p_buf_init(&small, 8);
    assert_int_equal(cp2p_privkey_sign(priv, msg, 3, &small), CP2P_ELIMIT);
    assert_int_equal(small.len, 0);
    cp2p_buf_fini(&small);

    assert_int_equal(cp2p_pubkey_verify(NULL, msg, 1, msg, 1), CP2P_EINVAL);
    cp2p_privkey_free(other);
    cp2p_privkey_free(priv);
}

static void sign_verify_ed25519(void **state)
{
    (void)state;
    check_sign_verify(CP2P_KEY_ED25519);
}

static void sign_verify_secp256k1(void **state)
{
    (void)state;
    check_sign_verify(CP2P_KEY_SECP256K1);
}

/* secp256k1 group order n, big endian. */
static const uint8_t SECP_N[32] = {
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe,
    0xba, 0xae, 0xdc, 0xe6, 0xaf, 0x48, 0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c, 0xd0, 0x36, 0x41, 0x41,
};

/* out = a - b (32-byte big endian, a >= b). */
static void sub256(uint8_t out[32], const uint8_t a[32], const uint8_t b[32])
{
    int borrow = 0;
    for (int i = 31; i >= 0; i--) {
        int d = (int)a[i] - (int)b[i] - borrow;
        borrow = d < 0;
        out[i] = (uint8_t)(d + (borrow ? 256 : 0));
    }
}

/* DER-encode r and s (32 bytes each, big endian) minimally. */
static size_t der_encode(uint8_t *out, const uint8_t r[32], const uint8_t s[32])
{
    uint8_t ints[2][33];
    size_t lens[2];
    const uint8_t *v[2] = {r, s};
    for (int k = 0; k < 2; k++) {
        size_t i = 0;
        while (i < 31 && v[k][i] == 0 && (v[k][i + 1] & 0x80) == 0) {
            i++;
        }
        size_t n = 0;
        if (v[k][i] & 0x80) {
            ints[k][n++] = 0;
        }
        memcpy(ints[k] + n, v[k] + i, 32 - i);
        lens[k] = n + 32 - i;
    }
    size_t o = 0;
    out[o++] = 0x30;
    out[o++] = (uint8_t)(4 + lens[0] + lens[1]);
    for (int k = 0; k < 2; k++) {
        out[o++] = 0x02;
        out[o++] = (uint8_t)lens[k];
        memcpy(out + o, ints[k], lens[k]);
        o += lens[k];
    }
    return o;
}

/* High S, non-canonical DER and out-of-range r/s are refused. */
static void secp256k1_signature_strictness(void **state)
{
    (void)state;
    uint8_t seed[32];
    memset(seed, 0x11, sizeof(seed));
    cp2p_privkey *priv = NULL;
    assert_int_equal(cp2p_privkey_from_seed(CP2P_KEY_SECP256K1, seed, &priv), 0);
    const cp2p_pubkey *pub = cp2p_privkey_public(priv);
    static const uint8_t msg[] = "malleability";
    cp2p_buf sig;
    cp2p_buf_init(&sig, CP2P_SIG_MAX);
    assert_int_equal(cp2p_privkey_sign(priv, msg, sizeof(msg), &sig), 0);

    /* Recover r and s with libsecp256k1 itself. */
    secp256k1_context *ctx = secp256k1_context_create(SECP256K1_CONTEXT_NONE);
    secp256k1_ecdsa_signature s;
    uint8_t compact[64];
    assert_int_equal(secp256k1_ecdsa_signature_parse_der(ctx, &s, sig.ptr, sig.len), 1);
    assert_int_equal(secp256k1_ecdsa_signature_serialize_compact(ctx, compact, &s), 1);
    const uint8_t *r = compact, *lows = compact + 32;

    uint8_t der[80];
    size_t n = der_encode(der, r, lows);
    assert_bytes_equal(der, n, sig.ptr, sig.len); /* our encoder agrees with libsecp256k1 */
    assert_int_equal(cp2p_pubkey_verify(pub, msg, sizeof(msg), der, n), 0);

    /* High S: n - s is an equally valid ECDSA signature, refused (js-libp2p also refuses). */
    uint8_t highs[32];
    sub256(highs, SECP_N, lows);
    n = der_encode(der, r, highs);
    assert_int_equal(cp2p_pubkey_verify(pub, msg, sizeof(msg), der, n), CP2P_EBADSIG);

    /* r or s >= n. */
    uint8_t big[32];
    memcpy(big, SECP_N, 32);
    n = der_encode(der, big, lows);
    assert_int_equal(cp2p_pubkey_verify(pub, msg, sizeof(msg), der, n), CP2P_EBADSIG);
    n = der_encode(der, r, big);
    assert_int_equal(cp2p_pubkey_verify(pub, msg, sizeof(msg), der, n), CP2P_EBADSIG);

    /* r or s zero. */
    uint8_t zero[32] = {0};
    n = der_encode(der, zero, lows);
    assert_int_equal(cp2p_pubkey_verify(pub, msg, sizeof(msg), der, n), CP2P_EBADSIG);

    /* Extra 0x00 padding of r (not minimal DER), and a long-form length. */
    n = der_encode(der, r, lows);
    uint8_t padded[80];
    padded[0] = 0x30;
    padded[1] = (uint8_t)(der[1] + 1);
    padded[2] = 0x02;
    padded[3] = (uint8_t)(der[3] + 1);
    padded[4] = 0x00;
    memcpy(padded + 5, der + 4, n - 4);
    assert_int_equal(cp2p_pubkey_verify(pub, msg, sizeof(msg), padded, n + 1), CP2P_EBADSIG);
    uint8_t longform[80];
    longform[0] = 0x30;
    longform[1] = 0x81;
    memcpy(longform + 2, der + 1, n - 1);
    assert_int_equal(cp2p_pubkey_verify(pub, msg, sizeof(msg), longform, n + 1), CP2P_EBADSIG);
    /* A 64-byte compact signature is not DER. */
    assert_int_equal(cp2p_pubkey_verify(pub, msg, sizeof(msg), compact, 64), CP2P_EBADSIG);

    secp256k1_context_destroy(ctx);
    cp2p_buf_fini(&sig);
    cp2p_privkey_free(priv);
}

/* ---- decoding strictness ---- */

static void every_truncation_fails(void **state)
{
    (void)state;
    static const char *const pubs[] = {SPEC_ED25519_PUB, SPEC_SECP256K1_PUB, SPEC_RSA_PUB,
                                       SPEC_ECDSA_PUB};
    static const char *const privs[] = {SPEC_ED25519_PRIV, SPEC_SECP256K1_PRIV, SPEC_ECDSA_PRIV};
    static uint8_t b[BIG];
    for (size_t k = 0; k < sizeof(pubs) / sizeof(pubs[0]); k++) {
        size_t n = unhex(pubs[k], b, sizeof(b));
        for (size_t i = 0; i < n; i++) {
            assert_int_equal(try_pub(b, i), CP2P_EPROTO);
            /* The same prefix with the rest of the buffer is never read past len. */
        }
    }
    for (size_t k = 0; k < sizeof(privs) / sizeof(privs[0]); k++) {
        size_t n = unhex(privs[k], b, sizeof(b));
        for (size_t i = 0; i < n; i++) {
            assert_int_equal(try_priv(b, i), CP2P_EPROTO);
        }
    }
    assert_int_equal(try_pub(NULL, 0), CP2P_EPROTO);
    assert_int_equal(try_priv(NULL, 0), CP2P_EPROTO);
}

/* Build {Type = type, Data = data} by hand (canonical framing, data shorter than 128). */
static size_t frame(uint8_t *out, uint8_t type, const uint8_t *data, size_t dlen)
{
    out[0] = 0x08;
    out[1] = type;
    out[2] = 0x12;
    out[3] = (uint8_t)dlen;
    memcpy(out + 4, data, dlen);
    return 4 + dlen;
}

static void wrong_lengths(void **state)
{
    (void)state;
    uint8_t data[128], enc[160];
    memset(data, 0x42, sizeof(data));
    uint8_t secp[33];
    size_t n = unhex(SPEC_SECP256K1_PUB, enc, sizeof(enc));
    memcpy(secp, enc + 4, 33);
    assert_int_equal(n, 37);

    /* Ed25519 public: only 32. */
    static const size_t edpub[] = {0, 1, 31, 33, 64};
    for (size_t i = 0; i < sizeof(edpub) / sizeof(edpub[0]); i++) {
        assert_int_equal(try_pub(enc, frame(enc, 1, data, edpub[i])), CP2P_EPROTO);
    }
    assert_int_equal(try_pub(enc, frame(enc, 1, data, 32)), 0);
    /* secp256k1 public: only 33, a valid compressed point. */
    static const size_t secppub[] = {0, 32, 34, 65};
    for (size_t i = 0; i < sizeof(secppub) / sizeof(secppub[0]); i++) {
        memcpy(data, secp, 33);
        assert_int_equal(try_pub(enc, frame(enc, 2, data, secppub[i])), CP2P_EPROTO);
    }
    /* Ed25519 private: 64 or 96. */
    static const size_t edpriv[] = {0, 32, 63, 65, 95, 97, 127};
    for (size_t i = 0; i < sizeof(edpriv) / sizeof(edpriv[0]); i++) {
        assert_int_equal(try_priv(enc, frame(enc, 1, data, edpriv[i])), CP2P_EPROTO);
    }
    /* secp256k1 private: 32. */
    memset(data, 0x42, sizeof(data));
    static const size_t secppriv[] = {0, 31, 33, 64};
    for (size_t i = 0; i < sizeof(secppriv) / sizeof(secppriv[0]); i++) {
        assert_int_equal(try_priv(enc, frame(enc, 2, data, secppriv[i])), CP2P_EPROTO);
    }
    assert_int_equal(try_priv(enc, frame(enc, 2, data, 32)), 0);
    /* from_raw reports the caller's bad bytes as EINVAL. */
    cp2p_pubkey *pub = NULL;
    assert_int_equal(cp2p_pubkey_from_raw(CP2P_KEY_ED25519, data, 31, &pub), CP2P_EINVAL);
    assert_int_equal(cp2p_pubkey_from_raw(CP2P_KEY_SECP256K1, data, 33, &pub), CP2P_EINVAL);
    assert_int_equal(cp2p_pubkey_from_raw(CP2P_KEY_RSA, data, 33, &pub), CP2P_ENOTSUP);
    assert_int_equal(cp2p_pubkey_from_raw(CP2P_KEY_ECDSA, data, 33, &pub), CP2P_ENOTSUP);
    assert_int_equal(cp2p_pubkey_from_raw((cp2p_key_type)9, data, 32, &pub), CP2P_EINVAL);
    assert_null(pub);
}

static void unknown_key_type(void **state)
{
    (void)state;
    uint8_t data[64], enc[80];
    memset(data, 0x42, sizeof(data));
    static const uint8_t types[] = {4, 5, 0x7f};
    for (size_t i = 0; i < sizeof(types); i++) {
        assert_int_equal(try_pub(enc, frame(enc, types[i], data, 32)), CP2P_EPROTO);
        assert_int_equal(try_priv(enc, frame(enc, types[i], data, 32)), CP2P_EPROTO);
    }
    /* A two-byte varint type (200) and a negative one (10-byte varint). */
    static const uint8_t t200[] = {0x08, 0xc8, 0x01, 0x12, 0x01, 0x00};
    assert_int_equal(try_pub(t200, sizeof(t200)), CP2P_EPROTO);
    static const uint8_t tneg[] = {0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                   0xff, 0xff, 0x01, 0x12, 0x01, 0x00};
    assert_int_equal(try_pub(tneg, sizeof(tneg)), CP2P_EPROTO);
    /* Generating or seeding an unknown or unsupported type. */
    cp2p_privkey *priv = NULL;
    uint8_t seed[32] = {1};
    assert_int_equal(cp2p_privkey_generate(CP2P_KEY_RSA, &priv), CP2P_ENOTSUP);
    assert_int_equal(cp2p_privkey_generate(CP2P_KEY_ECDSA, &priv), CP2P_ENOTSUP);
    assert_int_equal(cp2p_privkey_generate((cp2p_key_type)7, &priv), CP2P_EINVAL);
    assert_int_equal(cp2p_privkey_from_seed(CP2P_KEY_RSA, seed, &priv), CP2P_ENOTSUP);
    assert_int_equal(cp2p_privkey_from_seed((cp2p_key_type)-1, seed, &priv), CP2P_EINVAL);
    assert_null(priv);
}

static void missing_fields(void **state)
{
    (void)state;
    static const uint8_t only_type[] = {0x08, 0x01};
    static const uint8_t only_data[] = {0x12, 0x02, 0xaa, 0xbb};
    static const uint8_t empty_data[] = {0x08, 0x01, 0x12, 0x00};
    assert_int_equal(try_pub(only_type, sizeof(only_type)), CP2P_EPROTO);
    assert_int_equal(try_priv(only_type, sizeof(only_type)), CP2P_EPROTO);
    assert_int_equal(try_pub(only_data, sizeof(only_data)), CP2P_EPROTO);
    assert_int_equal(try_priv(only_data, sizeof(only_data)), CP2P_EPROTO);
    assert_int_equal(try_pub(empty_data, sizeof(empty_data)), CP2P_EPROTO);
    assert_int_equal(try_priv(empty_data, sizeof(empty_data)), CP2P_EPROTO);
    /* Type 0 (RSA) is written explicitly, never omitted as a proto3 default would be. */
    static const uint8_t rsa_no_type[] = {0x12, 0x01, 0x30};
    assert_int_equal(try_pub(rsa_no_type, sizeof(rsa_no_type)), CP2P_EPROTO);
}

/* Variations of a valid encoding that a lenient protobuf decoder would accept. */
static void non_canonical_encodings(void **state)
{
    (void)state;
    uint8_t v[128], b[200];
    size_t n = unhex(SPEC_ED25519_PUB, v, sizeof(v));
    assert_int_equal(try_pub(v, n), 0);

    /* Trailing bytes: a zero byte, an unknown varint field 3, an unknown bytes field 15. */
    memcpy(b, v, n);
    b[n] = 0x00;
    assert_int_equal(try_pub(b, n + 1), CP2P_EPROTO);
    b[n] = 0x18;
    b[n + 1] = 0x01;
    assert_int_equal(try_pub(b, n + 2), CP2P_EPROTO);
    b[n] = 0x7a;
    b[n + 1] = 0x00;
    assert_int_equal(try_pub(b, n + 2), CP2P_EPROTO);
    /* An unknown field between Type and Data. */
    b[0] = 0x08;
    b[1] = 0x01;
    b[2] = 0x18;
    b[3] = 0x05;
    memcpy(b + 4, v + 2, n - 2);
    assert_int_equal(try_pub(b, n + 2), CP2P_EPROTO);
    /* Fields in the wrong order: Data, then Type. */
    memcpy(b, v + 2, n - 2);
    b[n - 2] = 0x08;
    b[n - 1] = 0x01;
    assert_int_equal(try_pub(b, n), CP2P_EPROTO);
    /* Type twice, Data twice. */
    b[0] = 0x08;
    b[1] = 0x01;
    memcpy(b + 2, v, n);
    assert_int_equal(try_pub(b, n + 2), CP2P_EPROTO);
    memcpy(b, v, n);
    memcpy(b + n, v + 2, n - 2);
    assert_int_equal(try_pub(b, n + n - 2), CP2P_EPROTO);
    /* Non-minimal varints: the type as 0x81 0x00, the length as 0xa0 0x00. */
    b[0] = 0x08;
    b[1] = 0x81;
    b[2] = 0x00;
    memcpy(b + 3, v + 2, n - 2);
    assert_int_equal(try_pub(b, n + 1), CP2P_EPROTO);
    memcpy(b, v, 3);
    b[3] = 0xa0;
    b[4] = 0x00;
    memcpy(b + 5, v + 4, n - 4);
    assert_int_equal(try_pub(b, n + 1), CP2P_EPROTO);
    /* Non-minimal tag (0x88 0x00 for field 1, varint). */
    b[0] = 0x88;
    b[1] = 0x00;
    memcpy(b + 2, v + 1, n - 1);
    assert_int_equal(try_pub(b, n + 1), CP2P_EPROTO);
    /* Type sent with a wrong wire type (length-delimited). */
    b[0] = 0x0a;
    b[1] = 0x01;
    b[2] = 0x01;
    memcpy(b + 3, v + 2, n - 2);
    assert_int_equal(try_pub(b, n + 1), CP2P_EPROTO);
    /* The same for private keys: trailing byte. */
    n = unhex(SPEC_SECP256K1_PRIV, v, sizeof(v));
    memcpy(b, v, n);
    b[n] = 0;
    assert_int_equal(try_priv(b, n + 1), CP2P_EPROTO);
    assert_int_equal(try_priv(b, n), 0);
    /* A public key is not a private key and vice versa (same framing, different lengths). */
    n = unhex(SPEC_ED25519_PUB, v, sizeof(v));
    assert_int_equal(try_priv(v, n), CP2P_EPROTO);
    n = unhex(SPEC_ED25519_PRIV, v, sizeof(v));
    assert_int_equal(try_pub(v, n), CP2P_EPROTO);
}

static void size_limit_before_parsing(void **state)
{
    (void)state;
    static uint8_t big[CP2P_KEY_PB_MAX + 1];
    /* A well-framed RSA key of CP2P_KEY_PB_MAX + 1 bytes: 0x08 0x00 0x12 <len 2 bytes> data. */
    size_t dlen = sizeof(big) - 5;
    big[0] = 0x08;
    big[1] = 0x00;
    big[2] = 0x12;
    big[3] = (uint8_t)(0x80 | (dlen & 0x7f));
    big[4] = (uint8_t)(dlen >> 7);
    assert_int_equal(try_pub(big, sizeof(big)), CP2P_ELIMIT);
    assert_int_equal(try_priv(big, sizeof(big)), CP2P_ELIMIT);
    cp2p_peer_id id;
    assert_int_equal(cp2p_peer_id_from_pubkey_proto(big, sizeof(big), &id), CP2P_ELIMIT);
    /* One byte less is parsed (and is an RSA key). */
    dlen--;
    big[3] = (uint8_t)(0x80 | (dlen & 0x7f));
    big[4] = (uint8_t)(dlen >> 7);
    assert_int_equal(try_pub(big, sizeof(big) - 1), CP2P_ENOTSUP);
}

/* ---- secp256k1 specifics ---- */

static void secp256k1_invalid_scalars(void **state)
{
    (void)state;
    uint8_t zero[32] = {0}, nminus1[32], one[32] = {0}, enc[64];
    cp2p_privkey *priv = NULL;
    one[31] = 1;
    sub256(nminus1, SECP_N, one);

    assert_int_equal(cp2p_privkey_from_seed(CP2P_KEY_SECP256K1, zero, &priv), CP2P_EINVAL);
    assert_int_equal(cp2p_privkey_from_seed(CP2P_KEY_SECP256K1, SECP_N, &priv), CP2P_EINVAL);
    uint8_t ff[32];
    memset(ff, 0xff, sizeof(ff));
    assert_int_equal(cp2p_privkey_from_seed(CP2P_KEY_SECP256K1, ff, &priv), CP2P_EINVAL);
    assert_null(priv);
    assert_int_equal(try_priv(enc, frame(enc, 2, zero, 32)), CP2P_EPROTO);
    assert_int_equal(try_priv(enc, frame(enc, 2, SECP_N, 32)), CP2P_EPROTO);
    assert_int_equal(try_priv(enc, frame(enc, 2, ff, 32)), CP2P_EPROTO);

    /* 1 and n - 1 are valid; their public keys are G and -G. */
    assert_int_equal(cp2p_privkey_from_seed(CP2P_KEY_SECP256K1, one, &priv), 0);
    cp2p_slice g = cp2p_pubkey_raw(cp2p_privkey_public(priv));
    uint8_t gwant[33];
    unhex("0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798", gwant, 33);
    assert_bytes_equal(g.ptr, g.len, gwant, 33);
    cp2p_privkey_free(priv);
    assert_int_equal(cp2p_privkey_from_seed(CP2P_KEY_SECP256K1, nminus1, &priv), 0);
    g = cp2p_pubkey_raw(cp2p_privkey_public(priv));
    gwant[0] = 0x03;
    assert_bytes_equal(g.ptr, g.len, gwant, 33);
    marshal_priv_equals(priv, enc, frame(enc, 2, nminus1, 32));
    cp2p_privkey_free(priv);
}

static void secp256k1_public_key_forms(void **state)
{
    (void)state;
    uint8_t enc[80];
    /* G, compressed and uncompressed. */
    uint8_t comp[33], uncomp[65];
    unhex("0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798", comp, 33);
    unhex("0479be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"
          "483ada7726a3c4655da4fbfc0e1108a8fd17b448a68554199c47d08ffb10d4b8",
          uncomp, 65);
    cp2p_pubkey *a = NULL, *b = NULL;
    assert_int_equal(cp2p_pubkey_from_raw(CP2P_KEY_SECP256K1, comp, 33, &a), 0);
    assert_int_equal(cp2p_pubkey_from_raw(CP2P_KEY_SECP256K1, uncomp, 65, &b), 0);
    assert_true(cp2p_pubkey_equal(a, b));
    cp2p_slice raw = cp2p_pubkey_raw(b);
    assert_bytes_equal(raw.ptr, raw.len, comp, 33);
    marshal_pub_equals(b, enc, frame(enc, 2, comp, 33));
    /* The uncompressed form inside a protobuf is refused: it would not round-trip. */
    assert_int_equal(try_pub(enc, frame(enc, 2, uncomp, 65)), CP2P_EPROTO);
    /* Hybrid form (0x06/0x07 prefix) is refused everywhere. */
    uint8_t hybrid[65];
    memcpy(hybrid, uncomp, 65);
    hybrid[0] = 0x06; /* y is even */
    cp2p_pubkey *c = NULL;
    assert_int_equal(cp2p_pubkey_from_raw(CP2P_KEY_SECP256K1, hybrid, 65, &c), CP2P_EINVAL);
    /* Not on the curve (secp256k1 has no point with x = 0), a bad prefix, x >= p. */
    uint8_t bad[33] = {0x02};
    assert_int_equal(try_pub(enc, frame(enc, 2, bad, 33)), CP2P_EPROTO);
    bad[0] = 0x03;
    assert_int_equal(try_pub(enc, frame(enc, 2, bad, 33)), CP2P_EPROTO);
    memcpy(bad, comp, 33);
    bad[0] = 0x05;
    assert_int_equal(try_pub(enc, frame(enc, 2, bad, 33)), CP2P_EPROTO);
    memset(bad + 1, 0xff, 32);
    bad[0] = 0x02;
    assert_int_equal(try_pub(enc, frame(enc, 2, bad, 33)), CP2P_EPROTO);
    assert_null(c);
    cp2p_pubkey_free(a);
    cp2p_pubkey_free(b);
}

/* ---- Ed25519 private key forms ---- */

static void ed25519_private_key_forms(void **state)
{
    (void)state;
    uint8_t v[128], b[160];
    size_t n = unhex(SPEC_ED25519_PRIV, v, sizeof(v));
    const uint8_t *seedpk = v + 4; /* 64 bytes */

    /* Legacy 96-byte form: seed || pk || pk, accepted, marshaled back as 64 bytes. */
    uint8_t legacy[96];
    memcpy(legacy, seedpk, 64);
    memcpy(legacy + 64, seedpk + 32, 32);
    cp2p_privkey *priv = NULL;
    size_t ln = frame(b, 1, legacy, 96);
    assert_int_equal(cp2p_privkey_unmarshal(b, ln, &priv), 0);
    marshal_priv_equals(priv, v, n);
    cp2p_privkey_free(priv);
    /* Legacy form whose two public keys differ. */
    legacy[95] ^= 1;
    assert_int_equal(try_priv(b, frame(b, 1, legacy, 96)), CP2P_EPROTO);
    /* 64-byte form whose public key is not the seed's. */
    uint8_t wrong[64];
    memcpy(wrong, seedpk, 64);
    wrong[63] ^= 0x80;
    assert_int_equal(try_priv(b, frame(b, 1, wrong, 64)), CP2P_EPROTO);
    /* Legacy form with both copies equal but not the seed's. */
    memcpy(legacy, wrong, 64);
    memcpy(legacy + 64, wrong + 32, 32);
    assert_int_equal(try_priv(b, frame(b, 1, legacy, 96)), CP2P_EPROTO);
}

/* ---- objects, determinism, peer IDs ---- */

static void marshal_round_trip_and_determinism(void **state)
{
    (void)state;
    static const cp2p_key_type types[] = {CP2P_KEY_ED25519, CP2P_KEY_SECP256K1};
    for (size_t t = 0; t < 2; t++) {
        for (int round = 0; round < 20; round++) {
            cp2p_privkey *priv = NULL, *priv2 = NULL;
            assert_int_equal(cp2p_privkey_generate(types[t], &priv), 0);
            cp2p_buf a, b2;
            cp2p_buf_init(&a, CP2P_KEY_MARSHAL_MAX);
            cp2p_buf_init(&b2, CP2P_KEY_MARSHAL_MAX);
            assert_int_equal(cp2p_privkey_marshal(priv, &a), 0);
            assert_int_equal(cp2p_privkey_unmarshal(a.ptr, a.len, &priv2), 0);
            assert_int_equal(cp2p_privkey_marshal(priv2, &b2), 0);
            assert_bytes_equal(a.ptr, a.len, b2.ptr, b2.len);
            assert_true(cp2p_pubkey_equal(cp2p_privkey_public(priv), cp2p_privkey_public(priv2)));
            cp2p_buf_fini_wipe(&a);
            cp2p_buf_fini_wipe(&b2);

            const cp2p_pubkey *pub = cp2p_privkey_public(priv);
            cp2p_buf_init(&a, CP2P_KEY_MARSHAL_MAX);
            cp2p_buf_init(&b2, CP2P_KEY_MARSHAL_MAX);
            assert_int_equal(cp2p_pubkey_marshal(pub, &a), 0);
            assert_int_equal(cp2p_pubkey_marshal(pub, &b2), 0);
            assert_bytes_equal(a.ptr, a.len, b2.ptr, b2.len);
            assert_int_equal(a.len, types[t] == CP2P_KEY_ED25519 ? 36 : 37);
            cp2p_pubkey *pub2 = NULL, *dup = NULL;
            assert_int_equal(cp2p_pubkey_unmarshal(a.ptr, a.len, &pub2), 0);
            assert_true(cp2p_pubkey_equal(pub, pub2));
            assert_int_equal(cp2p_pubkey_dup(pub2, &dup), 0);
            assert_true(cp2p_pubkey_equal(dup, pub));
            cp2p_slice raw = cp2p_pubkey_raw(pub);
            cp2p_pubkey *fromraw = NULL;
            assert_int_equal(cp2p_pubkey_from_raw(types[t], raw.ptr, raw.len, &fromraw), 0);
            assert_true(cp2p_pubkey_equal(fromraw, pub));

            cp2p_peer_id id1, id2;
            assert_int_equal(cp2p_peer_id_from_pubkey(pub, &id1), 0);
            assert_int_equal(cp2p_peer_id_from_pubkey_proto(a.ptr, a.len, &id2), 0);
            assert_bytes_equal(id1.bytes, id1.len, id2.bytes, id2.len);
            cp2p_pubkey *back = NULL;
            assert_int_equal(cp2p_pubkey_from_peer_id(&id1, &back), 0);
            assert_true(cp2p_pubkey_equal(back, pub));

            cp2p_pubkey_free(back);
            cp2p_pubkey_free(fromraw);
            cp2p_pubkey_free(dup);
            cp2p_pubkey_free(pub2);
            cp2p_buf_fini(&a);
            cp2p_buf_fini(&b2);
            cp2p_privkey_free(priv2);
            cp2p_privkey_free(priv);
        }
    }
    /* Marshal into a buffer that is too small appends nothing. */
    cp2p_privkey *priv = NULL;
    assert_int_equal(cp2p_privkey_generate(CP2P_KEY_ED25519, &priv), 0);
    cp2p_buf small;
    cp2p_buf_init(&small, 40);
    assert_int_equal(cp2p_privkey_marshal(priv, &small), CP2P_ELIMIT);
    assert_int_equal(small.len, 0);
    assert_int_equal(cp2p_pubkey_marshal(cp2p_privkey_public(priv), &small), 0);
    cp2p_buf_fini(&small);
    cp2p_privkey_free(priv);
}

static void equal_and_free_edge_cases(void **state)
{
    (void)state;
    cp2p_privkey_free(NULL);
    cp2p_pubkey_free(NULL);
    assert_true(cp2p_pubkey_equal(NULL, NULL));
    uint8_t k[32];
    memset(k, 9, sizeof(k));
    cp2p_privkey *a = NULL, *b = NULL;
    assert_int_equal(cp2p_privkey_from_seed(CP2P_KEY_ED25519, k, &a), 0);
    assert_int_equal(cp2p_privkey_from_seed(CP2P_KEY_SECP256K1, k, &b), 0);
    assert_false(cp2p_pubkey_equal(cp2p_privkey_public(a), NULL));
    assert_false(cp2p_pubkey_equal(cp2p_privkey_public(a), cp2p_privkey_public(b)));
    /* from_seed is deterministic. */
    cp2p_privkey *a2 = NULL;
    assert_int_equal(cp2p_privkey_from_seed(CP2P_KEY_ED25519, k, &a2), 0);
    assert_true(cp2p_pubkey_equal(cp2p_privkey_public(a), cp2p_privkey_public(a2)));
    cp2p_privkey_free(a2);
    cp2p_privkey_free(a);
    cp2p_privkey_free(b);
}

static void peer_id_extraction_errors(void **state)
{
    (void)state;
    cp2p_pubkey *pub = NULL;
    cp2p_peer_id id = {.len = 0};
    assert_int_equal(cp2p_pubkey_from_peer_id(&id, &pub), CP2P_EPROTO);
    /* sha2-256 peer ID: the key is not inside. */
    id.len = 34;
    id.bytes[0] = 0x12;
    id.bytes[1] = 0x20;
    assert_int_equal(cp2p_pubkey_from_peer_id(&id, &pub), CP2P_ENOENT);
    /* Malformed: wrong digest length, unknown hash code, identity length mismatch. */
    id.bytes[1] = 0x1f;
    assert_int_equal(cp2p_pubkey_from_peer_id(&id, &pub), CP2P_EPROTO);
    id.bytes[0] = 0x13;
    id.bytes[1] = 0x20;
    assert_int_equal(cp2p_pubkey_from_peer_id(&id, &pub), CP2P_EPROTO);
    uint8_t v[64];
    size_t n = unhex(SPEC_ED25519_PUB, v, sizeof(v));
    id.bytes[0] = 0x00;
    id.bytes[1] = (uint8_t)n;
    memcpy(id.bytes + 2, v, n);
    id.len = n + 2;
    assert_int_equal(cp2p_pubkey_from_peer_id(&id, &pub), 0);
    cp2p_pubkey_free(pub);
    pub = NULL;
    id.len = n + 1;
    assert_int_equal(cp2p_pubkey_from_peer_id(&id, &pub), CP2P_EPROTO);
    id.len = CP2P_PEER_ID_MAX + 1;
    assert_int_equal(cp2p_pubkey_from_peer_id(&id, &pub), CP2P_EPROTO);
    /* An inlined key that is invalid. */
    id.len = n + 2;
    id.bytes[3] = 0x09;
    assert_int_equal(cp2p_pubkey_from_peer_id(&id, &pub), CP2P_EPROTO);
    assert_null(pub);
    /* An invalid secp256k1 point or an unknown type cannot get a peer ID from its encoding. */
    cp2p_peer_id out;
    uint8_t bad[33] = {0x02}, enc[64];
    assert_int_equal(cp2p_peer_id_from_pubkey_proto(enc, frame(enc, 2, bad, 33), &out),
                     CP2P_EPROTO);
    assert_int_equal(cp2p_peer_id_from_pubkey_proto(enc, frame(enc, 9, bad, 33), &out),
                     CP2P_EPROTO);
}

/* ---- allocation failures ---- */

static void allocation_failures(void **state)
{
    (void)state;
    uint8_t pubv[64], privv[80];
    size_t publen = unhex(SPEC_SECP256K1_PUB, pubv, sizeof(pubv));
    size_t privlen = unhex(SPEC_ED25519_PRIV, privv, sizeof(privv));
    /* Let the n-th allocation fail, for growing n, until the call succeeds: every failure must
     * be CP2P_ENOMEM (never EPROTO) and leak nothing (ASan checks). */
    for (int which = 0; which < 4; which++) {
        int rc = CP2P_ENOMEM;
        for (long n = 1; rc == CP2P_ENOMEM; n++) {
            assert_true(n < 100);
            cp2p_pubkey *pub = NULL;
            cp2p_privkey *priv = NULL;
            cp2p__alloc_fail_after(n);
            switch (which) {
            case 0:
                rc = cp2p_pubkey_unmarshal(pubv, publen, &pub);
                break;
            case 1:
                rc = cp2p_privkey_unmarshal(privv, privlen, &priv);
                break;
            case 2:
                rc = cp2p_privkey_generate(CP2P_KEY_SECP256K1, &priv);
                break;
            default: {
                cp2p_peer_id id;
                rc = cp2p_peer_id_from_pubkey_proto(pubv, publen, &id);
                break;
            }
            }
            cp2p__alloc_fail_after(0);
            assert_true(rc == 0 || rc == CP2P_ENOMEM);
            cp2p_pubkey_free(pub);
            cp2p_privkey_free(priv);
        }
    }
}

/* ---- key files ---- */

static char tmpdir[256];

static int files_setup(void **state)
{
    (void)state;
    const char *base = getenv("TMPDIR");
    snprintf(tmpdir, sizeof(tmpdir), "%s/cp2p-keys-XXXXXX", base != NULL ? base : "/tmp");
    return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int files_teardown(void **state)
{
    (void)state;
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static void path_in_tmp(char *out, size_t cap, const char *name)
{
    int n = snprintf(out, cap, "%s/%s", tmpdir, name);
    assert_true(n > 0 && (size_t)n < cap);
}

static void write_file(const char *path, const uint8_t *p, size_t n, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, p, n), (ssize_t)n);
    assert_int_equal(fchmod(fd, mode), 0);
    close(fd);
}

static int warn_lines;
static char last_line[1024];

static void capture_sink(cp2p_log_level level, const char *module, uint64_t conn, const char *msg,
                         void *ud)
{
    (void)conn;
    (void)ud;
    if (level >= CP2P_LOG_WARN && strcmp(module, "keys") == 0) {
        warn_lines++;
        snprintf(last_line, sizeof(last_line), "%s", msg);
    }
}

static void key_file_round_trip(void **state)
{
    (void)state;
    char path[512];
    path_in_tmp(path, sizeof(path), "id.key");
    static const cp2p_key_type types[] = {CP2P_KEY_ED25519, CP2P_KEY_SECP256K1};
    for (size_t t = 0; t < 2; t++) {
        cp2p_privkey *priv = NULL, *back = NULL;
        assert_int_equal(cp2p_privkey_generate(types[t], &priv), 0);
        /* Saving twice replaces the file. */
        assert_int_equal(cp2p_privkey_save(priv, path), 0);
        assert_int_equal(cp2p_privkey_save(priv, path), 0);
        struct stat st;
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0600);
        assert_int_equal(cp2p_privkey_load(path, &back), 0);
        assert_int_equal(cp2p_privkey_type(back), types[t]);
        assert_true(cp2p_pubkey_equal(cp2p_privkey_public(priv), cp2p_privkey_public(back)));

        /* The file holds exactly the marshaled key. */
        cp2p_buf enc;
        cp2p_buf_init(&enc, CP2P_KEY_MARSHAL_MAX);
        assert_int_equal(cp2p_privkey_marshal(priv, &enc), 0);
        assert_int_equal(st.st_size, (off_t)enc.len);
        cp2p_buf_fini_wipe(&enc);
        cp2p_privkey_free(back);
        cp2p_privkey_free(priv);
    }
    /* No temporary file is left behind. */
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "test -z \"$(ls -A '%s' | grep -v '^id.key$')\"", tmpdir);
    assert_int_equal(system(cmd), 0);
}

static void key_file_spec_vector_loads(void **state)
{
    (void)state;
    char path[512];
    uint8_t v[80];
    size_t n = unhex(SPEC_ED25519_PRIV, v, sizeof(v));
    path_in_tmp(path, sizeof(path), "vector.key");
    write_file(path, v, n, 0600);
    cp2p_privkey *priv = NULL;
    assert_int_equal(cp2p_privkey_load(path, &priv), 0);
    marshal_priv_equals(priv, v, n);
    cp2p_privkey_free(priv);
}

static void key_file_refused_when_readable_by_others(void **state)
{
    (void)state;
    char path[512];
    path_in_tmp(path, sizeof(path), "open.key");
    cp2p_privkey *priv = NULL;
    assert_int_equal(cp2p_privkey_generate(CP2P_KEY_ED25519, &priv), 0);
    assert_int_equal(cp2p_privkey_save(priv, path), 0);
    cp2p_privkey_free(priv);
    priv = NULL;

    cp2p_log_set_sink(capture_sink, NULL);
    static const mode_t modes[] = {0644, 0640, 0604, 0660, 0601, 0610, 0700, 0400};
    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        assert_int_equal(chmod(path, modes[i]), 0);
        warn_lines = 0;
        int rc = cp2p_privkey_load(path, &priv);
        if ((modes[i] & 077) != 0) {
            assert_int_equal(rc, CP2P_EPERM);
            assert_null(priv);
            assert_int_equal(warn_lines, 1);
            assert_non_null(strstr(last_line, "keys.file_mode"));
            assert_non_null(strstr(last_line, "chmod 600"));
        } else {
            assert_int_equal(rc, 0);
            cp2p_privkey_free(priv);
            priv = NULL;
        }
    }
    cp2p_log_set_sink(NULL, NULL);

    /* Saving over a too-open file leaves a 0600 file. */
    assert_int_equal(chmod(path, 0644), 0);
    assert_int_equal(cp2p_privkey_generate(CP2P_KEY_ED25519, &priv), 0);
    assert_int_equal(cp2p_privkey_save(priv, path), 0);
    cp2p_privkey_free(priv);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
}

static void key_file_errors(void **state)
{
    (void)state;
    char path[512];
    cp2p_privkey *priv = NULL;

    path_in_tmp(path, sizeof(path), "missing.key");
    assert_int_equal(cp2p_privkey_load(path, &priv), CP2P_ENOENT);
    path_in_tmp(path, sizeof(path), "missing-dir/x.key");
    assert_int_equal(cp2p_privkey_load(path, &priv), CP2P_ENOENT);

    /* Malformed contents. */
    path_in_tmp(path, sizeof(path), "garbage.key");
    static const uint8_t garbage[] = "not a key";
    write_file(path, garbage, sizeof(garbage), 0600);
    assert_int_equal(cp2p_privkey_load(path, &priv), CP2P_EPROTO);
    write_file(path, garbage, 0, 0600);
    assert_int_equal(cp2p_privkey_load(path, &priv), CP2P_EPROTO);

    /* Too large: refused before reading. */
    static uint8_t big[CP2P_KEY_FILE_MAX + 1];
    write_file(path, big, sizeof(big), 0600);
    assert_int_equal(cp2p_privkey_load(path, &priv), CP2P_ELIMIT);

    /* A directory is not a key file (the WARN lines of this test are expected: silence them). */
    cp2p_log_set_level(CP2P_LOG_OFF);
    assert_int_equal(cp2p_privkey_load(tmpdir, &priv), CP2P_EINVAL);
    assert_null(priv);

    /* Saving into a directory that does not exist. */
    assert_int_equal(cp2p_privkey_generate(CP2P_KEY_ED25519, &priv), 0);
    path_in_tmp(path, sizeof(path), "missing-dir/x.key");
    assert_int_equal(cp2p_privkey_save(priv, path), CP2P_EIO);
    cp2p_log_set_level(CP2P_LOG_INFO);
    assert_int_equal(cp2p_privkey_save(priv, ""), CP2P_EINVAL);
    assert_int_equal(cp2p_privkey_save(NULL, path), CP2P_EINVAL);
    cp2p_privkey_free(priv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(spec_vectors_ed25519),
        cmocka_unit_test(spec_vectors_secp256k1),
        cmocka_unit_test(spec_vectors_rsa_ecdsa),
        cmocka_unit_test(spec_example_peer_id_round_trip),
        cmocka_unit_test(rfc8032_test1),
        cmocka_unit_test(go_fixture_secp256k1),
        cmocka_unit_test(sign_verify_ed25519),
        cmocka_unit_test(sign_verify_secp256k1),
        cmocka_unit_test(secp256k1_signature_strictness),
        cmocka_unit_test(every_truncation_fails),
        cmocka_unit_test(wrong_lengths),
        cmocka_unit_test(unknown_key_type),
        cmocka_unit_test(missing_fields),
        cmocka_unit_test(non_canonical_encodings),
        cmocka_unit_test(size_limit_before_parsing),
        cmocka_unit_test(secp256k1_invalid_scalars),
        cmocka_unit_test(secp256k1_public_key_forms),
        cmocka_unit_test(ed25519_private_key_forms),
        cmocka_unit_test(marshal_round_trip_and_determinism),
        cmocka_unit_test(equal_and_free_edge_cases),
        cmocka_unit_test(peer_id_extraction_errors),
        cmocka_unit_test(allocation_failures),
        cmocka_unit_test(key_file_round_trip),
        cmocka_unit_test(key_file_spec_vector_loads),
        cmocka_unit_test(key_file_refused_when_readable_by_others),
        cmocka_unit_test(key_file_errors),
    };
    /* Key files are created with an explicit mode; make the umask irrelevant to the checks. */
    umask(022);
    int rc = files_setup(NULL);
    if (rc != 0) {
        return 1;
    }
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (files_teardown(NULL) != 0) {
        return 1;
    }
    return rc;
}
