/* Identity keys, signatures and peer-ID derivation (libp2p peer-ids spec).
 * Ed25519 comes from libsodium, secp256k1 from libsecp256k1, the key encodings from protobuf-c
 * (proto/keys.proto). See include/cp2p/keys.h for the contract and the decoding policy. */
#include <assert.h>
#include <string.h>

#include <secp256k1.h>
#include <sodium.h>

#include <cp2p/keys.h>

#include "crypto/crypto_init.h"
#include "keys.pb-c.h"
#include "util/limits.h"
#include "util/pb.h"

/* Multihash codes used by peer IDs (multiformats multicodec table). */
#define MH_IDENTITY 0x00
#define MH_SHA2_256 0x12
#define SHA256_LEN 32
/* Spec, section "Peer Ids": encodings of at most 42 bytes are inlined (identity multihash). */
#define PEER_ID_INLINE_MAX 42

#define ED25519_SEED_LEN 32
#define ED25519_SK_LEN 64            /* libsodium's secret key: seed || public key */
#define ED25519_PRIV_LEGACY_LEN 96   /* seed || public key || public key (spec, "Ed25519") */
#define SECP256K1_SECKEY_LEN 32
#define SECP256K1_UNCOMPRESSED_LEN 65

static_assert(crypto_sign_PUBLICKEYBYTES == CP2P_ED25519_PUBKEY_LEN, "Ed25519 public key size");
static_assert(crypto_sign_SECRETKEYBYTES == ED25519_SK_LEN, "Ed25519 secret key size");
static_assert(crypto_sign_SEEDBYTES == ED25519_SEED_LEN, "Ed25519 seed size");
static_assert(crypto_sign_BYTES == CP2P_ED25519_SIG_LEN, "Ed25519 signature size");
static_assert(2 + PEER_ID_INLINE_MAX <= CP2P_PEER_ID_MAX, "inline peer ID fits cp2p_peer_id");

struct cp2p_pubkey {
    cp2p_key_type type;
    size_t len;                              /* of raw: 32 (Ed25519) or 33 (secp256k1) */
    uint8_t raw[CP2P_SECP256K1_PUBKEY_LEN];  /* the Data field */
    secp256k1_pubkey point;                  /* secp256k1 only: raw, parsed once */
};

struct cp2p_privkey {
    cp2p_key_type type;
    /* Ed25519: libsodium's 64-byte secret key (seed || public key), which is also the libp2p
     * Data encoding. secp256k1: the 32-byte scalar in sk[0..32), the rest zero. */
    uint8_t sk[ED25519_SK_LEN];
    cp2p_pubkey pub;
};

/* ---- protobuf framing ---- */

/* Routes protobuf-c's allocations through cp2p_malloc and remembers whether one failed, so that a
 * failed unpack can be told apart as CP2P_ENOMEM rather than CP2P_EPROTO. */

static int key_type_from_pb(Cp2pPb__KeyType t, cp2p_key_type *out)
{
    switch (t) {
    case CP2P_PB__KEY_TYPE__RSA:
        *out = CP2P_KEY_RSA;
        return 0;
    case CP2P_PB__KEY_TYPE__Ed25519:
        *out = CP2P_KEY_ED25519;
        return 0;
    case CP2P_PB__KEY_TYPE__Secp256k1:
        *out = CP2P_KEY_SECP256K1;
        return 0;
    case CP2P_PB__KEY_TYPE__ECDSA:
        *out = CP2P_KEY_ECDSA;
        return 0;
    default:
        return CP2P_EPROTO;
    }
}

static int key_type_to_pb(cp2p_key_type t, Cp2pPb__KeyType *out)
{
    switch (t) {
    case CP2P_KEY_RSA:
        *out = CP2P_PB__KEY_TYPE__RSA;
        return 0;
    case CP2P_KEY_ED25519:
        *out = CP2P_PB__KEY_TYPE__Ed25519;
        return 0;
    case CP2P_KEY_SECP256K1:
        *out = CP2P_PB__KEY_TYPE__Secp256k1;
        return 0;
    case CP2P_KEY_ECDSA:
        *out = CP2P_PB__KEY_TYPE__ECDSA;
        return 0;
    default:
        return CP2P_EINVAL;
    }
}

/* Decode a PublicKey (is_private false) or PrivateKey message, strictly: the message must be the
 * deterministic encoding the spec requires, which we check by packing the decoded message again
 * and comparing it with the input. That rejects fields out of tag order, duplicated fields,
 * non-minimal varints and, with the unknown-field check, extra fields (spec, section "Keys":
 * "encoding must be deterministic"). On success *data points into `in` (the Data bytes are the
 * tail of a canonical message). Returns 0, CP2P_ELIMIT, CP2P_EPROTO or CP2P_ENOMEM. */
static int key_pb_decode(const uint8_t *in, size_t len, bool is_private, cp2p_key_type *type,
                         cp2p_slice *data)
{
    if (in == NULL && len > 0) {
        return CP2P_EINVAL;
    }
    /* STYLE.md 6.10: bound the size before protobuf-c allocates anything. */
    if (len > CP2P_KEY_PB_MAX) {
        return CP2P_ELIMIT;
    }
    cp2p__pb_alloc pa;
    cp2p__pb_alloc_init(&pa);
    const ProtobufCMessageDescriptor *desc =
        is_private ? &cp2p_pb__private_key__descriptor : &cp2p_pb__public_key__descriptor;
    ProtobufCMessage *m = protobuf_c_message_unpack(desc, &pa.a, len, in);
    if (m == NULL) {
        /* Missing required fields, bad wire types, truncation: all malformed input. */
        return pa.failed ? CP2P_ENOMEM : CP2P_EPROTO;
    }
    /* The two messages have the same fields; read them through the matching type. */
    Cp2pPb__KeyType pbtype;
    ProtobufCBinaryData *pbdata;
    if (is_private) {
        Cp2pPb__PrivateKey *k = (Cp2pPb__PrivateKey *)m;
        pbtype = k->type;
        pbdata = &k->data;
    } else {
        Cp2pPb__PublicKey *k = (Cp2pPb__PublicKey *)m;
        pbtype = k->type;
        pbdata = &k->data;
    }
    size_t dlen = pbdata->len;
    int rc = key_type_from_pb(pbtype, type);
    /* protobuf-c keeps unknown fields and would pack them again, so refuse them explicitly. */
    if (rc == 0 && m->n_unknown_fields != 0) {
        rc = CP2P_EPROTO;
    }
    /* The size check also keeps the repacking below inside `again` (len <= CP2P_KEY_PB_MAX). */
    if (rc == 0 && protobuf_c_message_get_packed_size(m) != len) {
        rc = CP2P_EPROTO;
    }
    if (rc == 0) {
        uint8_t again[CP2P_KEY_PB_MAX];
        size_t n = protobuf_c_message_pack(m, again);
        if (n != len || memcmp(again, in, len) != 0) {
            rc = CP2P_EPROTO;
        }
        sodium_memzero(again, n);
    }
    /* The copy of Data may be private key material. */
    if (pbdata->data != NULL) {
        sodium_memzero(pbdata->data, pbdata->len);
    }
    protobuf_c_message_free_unpacked(m, &pa.a);
    if (rc != 0) {
        return rc;
    }
    data->ptr = in + (len - dlen);
    data->len = dlen;
    return 0;
}

/* Write the deterministic encoding of {type, data} to out[CP2P_KEY_MARSHAL_MAX] and store its
 * length in *outlen. protobuf-c packs fields in tag order with minimal varints, which is the
 * encoding the spec requires (the spec's test vectors check this). */
static int key_pb_encode(bool is_private, cp2p_key_type type, const uint8_t *data, size_t dlen,
                         uint8_t out[CP2P_KEY_MARSHAL_MAX], size_t *outlen)
{
    Cp2pPb__KeyType pbtype;
    int rc = key_type_to_pb(type, &pbtype);
    if (rc != 0) {
        return rc;
    }
    /* protobuf-c does not write through Data; the cast only satisfies its non-const field. */
    ProtobufCBinaryData bd = {.len = dlen, .data = (uint8_t *)(uintptr_t)data};
    if (is_private) {
        Cp2pPb__PrivateKey k = CP2P_PB__PRIVATE_KEY__INIT;
        k.type = pbtype;
        k.data = bd;
        if (cp2p_pb__private_key__get_packed_size(&k) > CP2P_KEY_MARSHAL_MAX) {
            return CP2P_EINVAL;
        }
        *outlen = cp2p_pb__private_key__pack(&k, out);
    } else {
        Cp2pPb__PublicKey k = CP2P_PB__PUBLIC_KEY__INIT;
        k.type = pbtype;
        k.data = bd;
        if (cp2p_pb__public_key__get_packed_size(&k) > CP2P_KEY_MARSHAL_MAX) {
            return CP2P_EINVAL;
        }
        *outlen = cp2p_pb__public_key__pack(&k, out);
    }
    return 0;
}

/* Append the encoding to a buffer; the stack copy is wiped (it may be a private key). */
static int key_pb_append(bool is_private, cp2p_key_type type, const uint8_t *data, size_t dlen,
                         cp2p_buf *out)
{
    uint8_t tmp[CP2P_KEY_MARSHAL_MAX];
    size_t n = 0;
    int rc = key_pb_encode(is_private, type, data, dlen, tmp, &n);
    if (rc == 0) {
        rc = cp2p_buf_append(out, tmp, n);
    }
    sodium_memzero(tmp, sizeof(tmp));
    return rc;
}

/* ---- public keys ---- */

/* Fill *pub from raw bytes. `allow_uncompressed` admits the 65-byte SEC1 form for secp256k1.
 * Returns 0, CP2P_ENOTSUP (RSA, ECDSA), CP2P_EINVAL (not a key type) or `bad` for a wrong
 * length or invalid point. */
static int pubkey_parse(cp2p_key_type type, const uint8_t *raw, size_t len,
                        bool allow_uncompressed, int bad, cp2p_pubkey *pub)
{
    memset(pub, 0, sizeof(*pub));
    pub->type = type;
    switch (type) {
    case CP2P_KEY_ED25519:
        /* Like go and js, any 32 bytes: libsodium refuses bad points when verifying. */
        if (len != CP2P_ED25519_PUBKEY_LEN) {
            return bad;
        }
        memcpy(pub->raw, raw, len);
        pub->len = len;
        return 0;
    case CP2P_KEY_SECP256K1: {
        /* 0x02/0x03 compressed; 0x04 uncompressed. The SEC1 hybrid form (0x06/0x07), which
         * libsecp256k1 would parse, is not used by libp2p and is refused. */
        bool ok_len = (len == CP2P_SECP256K1_PUBKEY_LEN && (raw[0] == 0x02 || raw[0] == 0x03)) ||
                      (allow_uncompressed && len == SECP256K1_UNCOMPRESSED_LEN && raw[0] == 0x04);
        if (!ok_len) {
            return bad;
        }
        int rc = cp2p__crypto_init();
        if (rc != 0) {
            return rc;
        }
        const secp256k1_context *ctx = cp2p__secp_ctx();
        if (secp256k1_ec_pubkey_parse(ctx, &pub->point, raw, len) != 1) {
            return bad;
        }
        size_t outlen = sizeof(pub->raw);
        if (secp256k1_ec_pubkey_serialize(ctx, pub->raw, &outlen, &pub->point,
                                          SECP256K1_EC_COMPRESSED) != 1 ||
            outlen != CP2P_SECP256K1_PUBKEY_LEN) {
            return bad;
        }
        /* A valid compressed point serialises back to the same bytes; anything else would break
         * the round-trip guarantee, so treat it as invalid. */
        if (len == CP2P_SECP256K1_PUBKEY_LEN && memcmp(pub->raw, raw, len) != 0) {
            return bad;
        }
        pub->len = outlen;
        return 0;
    }
    case CP2P_KEY_RSA:
    case CP2P_KEY_ECDSA:
        return CP2P_ENOTSUP;
    default:
        return CP2P_EINVAL;
    }
}

static int pubkey_new_copy(const cp2p_pubkey *src, cp2p_pubkey **out)
{
    cp2p_pubkey *p = cp2p_malloc(sizeof(*p));
    if (p == NULL) {
        return CP2P_ENOMEM;
    }
    memcpy(p, src, sizeof(*p));
    *out = p;
    return 0;
}

int cp2p_pubkey_unmarshal(const uint8_t *in, size_t len, cp2p_pubkey **out)
{
    if (out == NULL) {
        return CP2P_EINVAL;
    }
    cp2p_key_type type;
    cp2p_slice data;
    int rc = key_pb_decode(in, len, false, &type, &data);
    if (rc != 0) {
        return rc;
    }
    cp2p_pubkey tmp;
    rc = pubkey_parse(type, data.ptr, data.len, false, CP2P_EPROTO, &tmp);
    if (rc != 0) {
        return rc;
    }
    return pubkey_new_copy(&tmp, out);
}

int cp2p_pubkey_from_raw(cp2p_key_type type, const uint8_t *raw, size_t len, cp2p_pubkey **out)
{
    if (out == NULL || (raw == NULL && len > 0)) {
        return CP2P_EINVAL;
    }
    cp2p_pubkey tmp;
    int rc = pubkey_parse(type, raw, len, true, CP2P_EINVAL, &tmp);
    if (rc != 0) {
        return rc;
    }
    return pubkey_new_copy(&tmp, out);
}

int cp2p_pubkey_marshal(const cp2p_pubkey *pub, cp2p_buf *out)
{
    if (pub == NULL || out == NULL) {
        return CP2P_EINVAL;
    }
    return key_pb_append(false, pub->type, pub->raw, pub->len, out);
}

cp2p_slice cp2p_pubkey_raw(const cp2p_pubkey *pub)
{
    cp2p_slice s = {pub->raw, pub->len};
    return s;
}

cp2p_key_type cp2p_pubkey_type(const cp2p_pubkey *pub)
{
    return pub->type;
}

static int verify_ed25519(const cp2p_pubkey *pub, const uint8_t *msg, size_t len,
                          const uint8_t *sig, size_t siglen)
{
    if (siglen != CP2P_ED25519_SIG_LEN) {
        return CP2P_EBADSIG;
    }
    /* libsodium 1.0.18 also rejects non-canonical S, small-order R and small-order or
     * non-canonical public keys here. */
    if (crypto_sign_verify_detached(sig, msg, len, pub->raw) != 0) {
        return CP2P_EBADSIG;
    }
    return 0;
}

static int verify_secp256k1(const cp2p_pubkey *pub, const uint8_t *msg, size_t len,
                            const uint8_t *sig, size_t siglen)
{
    /* The smallest DER signature is 8 bytes (1-byte r and s), the largest 72. */
    if (siglen < 8 || siglen > CP2P_SECP256K1_SIG_MAX) {
        return CP2P_EBADSIG;
    }
    /* cp2p_pubkey_verify() has initialised the libraries. */
    const secp256k1_context *ctx = cp2p__secp_ctx();
    secp256k1_ecdsa_signature s;
    if (secp256k1_ecdsa_signature_parse_der(ctx, &s, sig, siglen) != 1) {
        return CP2P_EBADSIG;
    }
    /* parse_der accepts r or s >= n (it zeroes the signature then). Re-serialising and comparing
     * rejects those and anything else that is not the one canonical encoding, as go's
     * ParseDERSignature does. */
    uint8_t again[CP2P_SECP256K1_SIG_MAX];
    size_t n = sizeof(again);
    if (secp256k1_ecdsa_signature_serialize_der(ctx, again, &n, &s) != 1 || n != siglen ||
        memcmp(again, sig, siglen) != 0) {
        return CP2P_EBADSIG;
    }
    /* High S is refused, like js-libp2p (noble-curves, lowS) and libsecp256k1's verify; every
     * libp2p signer emits low S (BIP 62), so only a malleated signature has high S. */
    if (secp256k1_ecdsa_signature_normalize(ctx, NULL, &s) != 0) {
        return CP2P_EBADSIG;
    }
    uint8_t digest[SHA256_LEN];
    crypto_hash_sha256(digest, msg, len);
    if (secp256k1_ecdsa_verify(ctx, &s, digest, &pub->point) != 1) {
        return CP2P_EBADSIG;
    }
    return 0;
}

int cp2p_pubkey_verify(const cp2p_pubkey *pub, const uint8_t *msg, size_t len, const uint8_t *sig,
                       size_t siglen)
{
    static const uint8_t empty[1];
    if (pub == NULL) {
        return CP2P_EINVAL;
    }
    if (sig == NULL || siglen == 0) {
        return CP2P_EBADSIG;
    }
    if (msg == NULL) {
        if (len > 0) {
            return CP2P_EINVAL;
        }
        msg = empty;
    }
    int rc = cp2p__crypto_init();
    if (rc != 0) {
        return rc;
    }
    switch (pub->type) {
    case CP2P_KEY_ED25519:
        return verify_ed25519(pub, msg, len, sig, siglen);
    case CP2P_KEY_SECP256K1:
        return verify_secp256k1(pub, msg, len, sig, siglen);
    default:
        return CP2P_EINVAL;
    }
}

bool cp2p_pubkey_equal(const cp2p_pubkey *a, const cp2p_pubkey *b)
{
    if (a == NULL || b == NULL) {
        return a == b;
    }
    return a->type == b->type && a->len == b->len && memcmp(a->raw, b->raw, a->len) == 0;
}

int cp2p_pubkey_dup(const cp2p_pubkey *pub, cp2p_pubkey **out)
{
    if (pub == NULL || out == NULL) {
        return CP2P_EINVAL;
    }
    return pubkey_new_copy(pub, out);
}

void cp2p_pubkey_free(cp2p_pubkey *pub)
{
    cp2p_free(pub);
}

/* ---- private keys ---- */

static void privkey_free(cp2p_privkey *priv)
{
    if (priv != NULL) {
        sodium_memzero(priv, sizeof(*priv));
        cp2p_free(priv);
    }
}

void cp2p_privkey_free(cp2p_privkey *priv)
{
    privkey_free(priv);
}

/* Fill priv->pub from a valid secp256k1 scalar in priv->sk. */
static int secp256k1_fill_public(cp2p_privkey *priv)
{
    const secp256k1_context *ctx = cp2p__secp_ctx();
    cp2p_pubkey *pub = &priv->pub;
    pub->type = CP2P_KEY_SECP256K1;
    if (secp256k1_ec_pubkey_create(ctx, &pub->point, priv->sk) != 1) {
        return CP2P_EINVAL;
    }
    size_t n = sizeof(pub->raw);
    if (secp256k1_ec_pubkey_serialize(ctx, pub->raw, &n, &pub->point, SECP256K1_EC_COMPRESSED) !=
        1) {
        return CP2P_EINVAL;
    }
    pub->len = n;
    return 0;
}

/* Build a key from a 32-byte seed. `bad` is returned for an invalid secp256k1 scalar. */
static int privkey_from_seed(cp2p_key_type type, const uint8_t seed[32], int bad,
                             cp2p_privkey **out)
{
    if (type == CP2P_KEY_RSA || type == CP2P_KEY_ECDSA) {
        return CP2P_ENOTSUP;
    }
    if (type != CP2P_KEY_ED25519 && type != CP2P_KEY_SECP256K1) {
        return CP2P_EINVAL;
    }
    int rc = cp2p__crypto_init();
    if (rc != 0) {
        return rc;
    }
    if (type == CP2P_KEY_SECP256K1 && secp256k1_ec_seckey_verify(cp2p__secp_ctx(), seed) != 1) {
        return bad;
    }
    cp2p_privkey *priv = cp2p_calloc(1, sizeof(*priv));
    if (priv == NULL) {
        return CP2P_ENOMEM;
    }
    priv->type = type;
    if (type == CP2P_KEY_ED25519) {
        priv->pub.type = CP2P_KEY_ED25519;
        priv->pub.len = CP2P_ED25519_PUBKEY_LEN;
        /* Cannot fail; sk becomes seed || public key. */
        (void)crypto_sign_seed_keypair(priv->pub.raw, priv->sk, seed);
    } else {
        memcpy(priv->sk, seed, SECP256K1_SECKEY_LEN);
        if ((rc = secp256k1_fill_public(priv)) != 0) {
            goto fail;
        }
    }
    *out = priv;
    return 0;
fail:
    privkey_free(priv);
    return rc;
}

int cp2p_privkey_from_seed(cp2p_key_type type, const uint8_t seed[32], cp2p_privkey **out)
{
    if (seed == NULL || out == NULL) {
        return CP2P_EINVAL;
    }
    return privkey_from_seed(type, seed, CP2P_EINVAL, out);
}

int cp2p_privkey_generate(cp2p_key_type type, cp2p_privkey **out)
{
    if (out == NULL) {
        return CP2P_EINVAL;
    }
    int rc = cp2p__crypto_init();
    if (rc != 0) {
        return rc;
    }
    uint8_t seed[32];
    for (;;) {
        randombytes_buf(seed, sizeof(seed));
        rc = privkey_from_seed(type, seed, CP2P_EINVAL, out);
        /* A random secp256k1 scalar is out of range with probability below 2^-127: draw again. */
        if (!(rc == CP2P_EINVAL && type == CP2P_KEY_SECP256K1)) {
            break;
        }
    }
    sodium_memzero(seed, sizeof(seed));
    return rc;
}

cp2p_key_type cp2p_privkey_type(const cp2p_privkey *priv)
{
    return priv->type;
}

const cp2p_pubkey *cp2p_privkey_public(const cp2p_privkey *priv)
{
    return &priv->pub;
}

int cp2p_privkey_sign(const cp2p_privkey *priv, const uint8_t *msg, size_t len, cp2p_buf *sig)
{
    static const uint8_t empty[1];
    if (priv == NULL || sig == NULL || (msg == NULL && len > 0)) {
        return CP2P_EINVAL;
    }
    if (msg == NULL) {
        msg = empty;
    }
    int rc = cp2p__crypto_init();
    if (rc != 0) {
        return rc;
    }
    switch (priv->type) {
    case CP2P_KEY_ED25519: {
        uint8_t s[CP2P_ED25519_SIG_LEN];
        (void)crypto_sign_detached(s, NULL, msg, len, priv->sk);
        return cp2p_buf_append(sig, s, sizeof(s));
    }
    case CP2P_KEY_SECP256K1: {
        /* Spec, "Secp256k1": ECDSA over SHA-256(msg), DER encoded. libsecp256k1 uses an RFC 6979
         * nonce and always produces low S, exactly as go-libp2p (dcrd) and js-libp2p do. */
        const secp256k1_context *ctx = cp2p__secp_ctx();
        uint8_t digest[SHA256_LEN];
        crypto_hash_sha256(digest, msg, len);
        secp256k1_ecdsa_signature s;
        if (secp256k1_ecdsa_sign(ctx, &s, digest, priv->sk, NULL, NULL) != 1) {
            return CP2P_EINVAL;
        }
        uint8_t der[CP2P_SECP256K1_SIG_MAX];
        size_t n = sizeof(der);
        if (secp256k1_ecdsa_signature_serialize_der(ctx, der, &n, &s) != 1) {
            return CP2P_EINVAL;
        }
        return cp2p_buf_append(sig, der, n);
    }
    default:
        return CP2P_EINVAL;
    }
}

int cp2p_privkey_marshal(const cp2p_privkey *priv, cp2p_buf *out)
{
    if (priv == NULL || out == NULL) {
        return CP2P_EINVAL;
    }
    size_t n = priv->type == CP2P_KEY_ED25519 ? ED25519_SK_LEN : SECP256K1_SECKEY_LEN;
    return key_pb_append(true, priv->type, priv->sk, n, out);
}

/* Ed25519 private key Data: 64 bytes (seed || pk) or the legacy 96 (seed || pk || pk). */
static int ed25519_priv_decode(const uint8_t *d, size_t len, cp2p_privkey **out)
{
    if (len != ED25519_SK_LEN && len != ED25519_PRIV_LEGACY_LEN) {
        return CP2P_EPROTO;
    }
    const uint8_t *pk = d + ED25519_SEED_LEN;
    if (len == ED25519_PRIV_LEGACY_LEN &&
        sodium_memcmp(pk, pk + CP2P_ED25519_PUBKEY_LEN, CP2P_ED25519_PUBKEY_LEN) != 0) {
        return CP2P_EPROTO;
    }
    cp2p_privkey *priv;
    int rc = privkey_from_seed(CP2P_KEY_ED25519, d, CP2P_EPROTO, &priv);
    if (rc != 0) {
        return rc;
    }
    /* The stored public key must be the one the seed derives: libsodium signs with the stored
     * copy, and signatures under a wrong public key can leak the secret. */
    if (sodium_memcmp(priv->pub.raw, pk, CP2P_ED25519_PUBKEY_LEN) != 0) {
        privkey_free(priv);
        return CP2P_EPROTO;
    }
    *out = priv;
    return 0;
}

int cp2p_privkey_unmarshal(const uint8_t *in, size_t len, cp2p_privkey **out)
{
    if (out == NULL) {
        return CP2P_EINVAL;
    }
    cp2p_key_type type;
    cp2p_slice data;
    int rc = key_pb_decode(in, len, true, &type, &data);
    if (rc != 0) {
        return rc;
    }
    switch (type) {
    case CP2P_KEY_ED25519:
        return ed25519_priv_decode(data.ptr, data.len, out);
    case CP2P_KEY_SECP256K1:
        if (data.len != SECP256K1_SECKEY_LEN) {
            return CP2P_EPROTO;
        }
        return privkey_from_seed(CP2P_KEY_SECP256K1, data.ptr, CP2P_EPROTO, out);
    case CP2P_KEY_RSA:
    case CP2P_KEY_ECDSA:
        return CP2P_ENOTSUP;
    default:
        return CP2P_EPROTO;
    }
}

/* ---- peer IDs ---- */

/* Spec, section "Peer Ids": identity multihash of the encoding if it is at most 42 bytes, else
 * the sha2-256 multihash. */
static void peer_id_from_encoding(const uint8_t *enc, size_t len, cp2p_peer_id *out)
{
    memset(out, 0, sizeof(*out));
    if (len <= PEER_ID_INLINE_MAX) {
        out->bytes[0] = MH_IDENTITY;
        out->bytes[1] = (uint8_t)len; /* a one-byte varint: len < 128 */
        memcpy(out->bytes + 2, enc, len);
        out->len = 2 + len;
    } else {
        out->bytes[0] = MH_SHA2_256;
        out->bytes[1] = SHA256_LEN;
        crypto_hash_sha256(out->bytes + 2, enc, len);
        out->len = 2 + SHA256_LEN;
    }
}

int cp2p_peer_id_from_pubkey(const cp2p_pubkey *pub, cp2p_peer_id *out)
{
    if (pub == NULL || out == NULL) {
        return CP2P_EINVAL;
    }
    uint8_t enc[CP2P_KEY_MARSHAL_MAX];
    size_t n = 0;
    int rc = key_pb_encode(false, pub->type, pub->raw, pub->len, enc, &n);
    if (rc != 0) {
        return rc;
    }
    peer_id_from_encoding(enc, n, out);
    return 0;
}

int cp2p_peer_id_from_pubkey_proto(const uint8_t *encoded, size_t len, cp2p_peer_id *out)
{
    if (out == NULL) {
        return CP2P_EINVAL;
    }
    int rc = cp2p__crypto_init();
    if (rc != 0) {
        return rc;
    }
    cp2p_key_type type;
    cp2p_slice data;
    if ((rc = key_pb_decode(encoded, len, false, &type, &data)) != 0) {
        return rc;
    }
    if (type == CP2P_KEY_ED25519 || type == CP2P_KEY_SECP256K1) {
        cp2p_pubkey tmp;
        if ((rc = pubkey_parse(type, data.ptr, data.len, false, CP2P_EPROTO, &tmp)) != 0) {
            return rc;
        }
    }
    peer_id_from_encoding(encoded, len, out);
    return 0;
}

int cp2p_pubkey_from_peer_id(const cp2p_peer_id *id, cp2p_pubkey **out)
{
    if (id == NULL || out == NULL) {
        return CP2P_EINVAL;
    }
    if (id->len < 2 || id->len > CP2P_PEER_ID_MAX) {
        return CP2P_EPROTO;
    }
    const uint8_t *b = id->bytes;
    switch (b[0]) {
    case MH_SHA2_256:
        return id->len == 2 + SHA256_LEN && b[1] == SHA256_LEN ? CP2P_ENOENT : CP2P_EPROTO;
    case MH_IDENTITY:
        /* The digest length is a varint; any length up to 42 fits in its first byte. */
        if (b[1] > PEER_ID_INLINE_MAX || (size_t)b[1] != id->len - 2) {
            return CP2P_EPROTO;
        }
        return cp2p_pubkey_unmarshal(b + 2, id->len - 2, out);
    default:
        return CP2P_EPROTO;
    }
}
