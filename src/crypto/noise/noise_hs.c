/* The generic Noise XX handshake (Noise Protocol Framework rev 34, sections 5 and 12) with
 * libsodium: X25519, ChaCha20-Poly1305 (IETF, 96-bit nonce), SHA-256, HMAC-SHA256. */
#include <assert.h>
#include <string.h>

#include <sodium.h>

#include <cp2p/common.h>

#include "crypto/crypto_init.h"
#include "crypto/noise/noise_hs.h"

static_assert(crypto_scalarmult_BYTES == CP2P__NOISE_DHLEN, "X25519 output size");
static_assert(crypto_scalarmult_SCALARBYTES == CP2P__NOISE_DHLEN, "X25519 scalar size");
static_assert(crypto_aead_chacha20poly1305_ietf_KEYBYTES == CP2P__NOISE_KEYLEN, "key size");
static_assert(crypto_aead_chacha20poly1305_ietf_ABYTES == CP2P__NOISE_TAGLEN, "tag size");
static_assert(crypto_aead_chacha20poly1305_ietf_NPUBBYTES == 12, "nonce size");
static_assert(crypto_hash_sha256_BYTES == CP2P__NOISE_HASHLEN, "hash size");
static_assert(crypto_auth_hmacsha256_BYTES == CP2P__NOISE_HASHLEN, "HMAC size");
static_assert(sizeof(CP2P__NOISE_PROTOCOL_NAME) - 1 <= CP2P__NOISE_HASHLEN,
              "the protocol name is padded, not hashed, into h");

/* ---- CipherState (spec 5.1) ---- */

/* Spec 12.3: "96 bits of zeros followed by the 64-bit little-endian value of n" is the AESGCM
 * form; for ChaChaPoly it is 32 bits of zeros followed by the 64-bit little-endian n. */
static void nonce_bytes(uint64_t n, uint8_t out[12])
{
    memset(out, 0, 4);
    for (int i = 0; i < 8; i++) {
        out[4 + i] = (uint8_t)(n >> (8 * i));
    }
}

int cp2p__noise_cipher_encrypt(cp2p__noise_cipher *c, const uint8_t *ad, size_t adlen,
                               const uint8_t *in, size_t len, uint8_t *out, uint8_t *tag)
{
    if (!c->has_key) {
        if (len > 0 && out != in) {
            memmove(out, in, len);
        }
        return 0;
    }
    /* Spec 5.1: 2^64-1 is reserved; a session must end before it would be used. */
    if (c->n == UINT64_MAX) {
        return CP2P_ELIMIT;
    }
    uint8_t nonce[12];
    nonce_bytes(c->n, nonce);
    crypto_aead_chacha20poly1305_ietf_encrypt_detached(out, tag, NULL, in, len, ad, adlen, NULL,
                                                       nonce, c->k);
    c->n++;
    return 0;
}

int cp2p__noise_cipher_decrypt(cp2p__noise_cipher *c, const uint8_t *ad, size_t adlen,
                               const uint8_t *in, size_t len, uint8_t *out)
{
    if (!c->has_key) {
        if (len > 0 && out != in) {
            memmove(out, in, len);
        }
        return 0;
    }
    if (c->n == UINT64_MAX) {
        return CP2P_ELIMIT;
    }
    uint8_t nonce[12];
    nonce_bytes(c->n, nonce);
    if (crypto_aead_chacha20poly1305_ietf_decrypt_detached(out, NULL, in, len, in + len, ad, adlen,
                                                           nonce, c->k) != 0) {
        return CP2P_EPROTO;
    }
    c->n++;
    return 0;
}

void cp2p__noise_cipher_wipe(cp2p__noise_cipher *c)
{
    sodium_memzero(c, sizeof(*c));
}

static void cipher_init_key(cp2p__noise_cipher *c, const uint8_t k[CP2P__NOISE_KEYLEN])
{
    memcpy(c->k, k, CP2P__NOISE_KEYLEN);
    c->n = 0;
    c->has_key = true;
}

/* ---- SymmetricState (spec 5.2) ---- */

static void hmac2(const uint8_t key[CP2P__NOISE_HASHLEN], const uint8_t *a, size_t alen,
                  const uint8_t *b, size_t blen, uint8_t out[CP2P__NOISE_HASHLEN])
{
    crypto_auth_hmacsha256_state st;
    crypto_auth_hmacsha256_init(&st, key, CP2P__NOISE_HASHLEN);
    if (alen > 0) {
        crypto_auth_hmacsha256_update(&st, a, alen);
    }
    if (blen > 0) {
        crypto_auth_hmacsha256_update(&st, b, blen);
    }
    crypto_auth_hmacsha256_final(&st, out);
    sodium_memzero(&st, sizeof(st));
}

/* HKDF(chaining_key, input_key_material, 2) (spec 4.3). o1 may be the chaining key itself: the
 * key is consumed into temp_key before o1 is written. */
static void hkdf2(const uint8_t ck[CP2P__NOISE_HASHLEN], const uint8_t *ikm, size_t ikmlen,
                  uint8_t o1[CP2P__NOISE_HASHLEN], uint8_t o2[CP2P__NOISE_HASHLEN])
{
    uint8_t temp[CP2P__NOISE_HASHLEN];
    const uint8_t one = 0x01, two = 0x02;
    hmac2(ck, ikm, ikmlen, NULL, 0, temp);
    hmac2(temp, &one, 1, NULL, 0, o1);
    hmac2(temp, o1, CP2P__NOISE_HASHLEN, &two, 1, o2);
    sodium_memzero(temp, sizeof(temp));
}

static void mix_hash(cp2p__noise_symmetric *ss, const uint8_t *data, size_t len)
{
    crypto_hash_sha256_state st;
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, ss->h, CP2P__NOISE_HASHLEN);
    if (len > 0) {
        crypto_hash_sha256_update(&st, data, len);
    }
    crypto_hash_sha256_final(&st, ss->h);
}

static void mix_key(cp2p__noise_symmetric *ss, const uint8_t *ikm, size_t len)
{
    uint8_t temp_k[CP2P__NOISE_HASHLEN];
    hkdf2(ss->ck, ikm, len, ss->ck, temp_k);
    cipher_init_key(&ss->cs, temp_k); /* HASHLEN == 32: no truncation (spec 5.2) */
    sodium_memzero(temp_k, sizeof(temp_k));
}

/* EncryptAndHash: writes len bytes (plus the tag once a key is set) at out. */
static int encrypt_and_hash(cp2p__noise_symmetric *ss, const uint8_t *in, size_t len,
                            uint8_t *out, size_t *outlen, const char **why)
{
    int rc = cp2p__noise_cipher_encrypt(&ss->cs, ss->h, CP2P__NOISE_HASHLEN, in, len, out,
                                        out + len);
    if (rc != 0) {
        *why = "noise handshake nonce exhausted";
        return rc;
    }
    *outlen = len + (ss->cs.has_key ? CP2P__NOISE_TAGLEN : 0);
    mix_hash(ss, out, *outlen);
    return 0;
}

/* DecryptAndHash: `in` holds len bytes (the tag included once a key is set); the plaintext goes
 * to out. The new h is computed from the ciphertext before decrypting, so out may equal in. */
static int decrypt_and_hash(cp2p__noise_symmetric *ss, const uint8_t *in, size_t len,
                            uint8_t *out, size_t *outlen, const char **why)
{
    uint8_t h_next[CP2P__NOISE_HASHLEN];
    crypto_hash_sha256_state st;
    size_t plen = len;

    if (ss->cs.has_key) {
        if (len < CP2P__NOISE_TAGLEN) {
            *why = "noise handshake message too short for its tag";
            return CP2P_EPROTO;
        }
        plen = len - CP2P__NOISE_TAGLEN;
    }
    crypto_hash_sha256_init(&st);
    crypto_hash_sha256_update(&st, ss->h, CP2P__NOISE_HASHLEN);
    if (len > 0) {
        crypto_hash_sha256_update(&st, in, len);
    }
    crypto_hash_sha256_final(&st, h_next);
    int rc = cp2p__noise_cipher_decrypt(&ss->cs, ss->h, CP2P__NOISE_HASHLEN, in, plen, out);
    if (rc != 0) {
        *why = rc == CP2P_EPROTO ? "noise handshake message fails authentication"
                                 : "noise handshake nonce exhausted";
        return rc;
    }
    memcpy(ss->h, h_next, CP2P__NOISE_HASHLEN);
    *outlen = plen;
    return 0;
}

/* ---- HandshakeState (spec 5.3) ---- */

static int dh(const uint8_t priv[CP2P__NOISE_DHLEN], const uint8_t pub[CP2P__NOISE_DHLEN],
              uint8_t out[CP2P__NOISE_DHLEN], const char **why)
{
    /* libsodium returns -1 when the result is all zeros: the peer sent a low-order point. Noise
     * (spec 12.1) allows either behaviour; rejecting is the safe one. */
    if (crypto_scalarmult(out, priv, pub) != 0) {
        sodium_memzero(out, CP2P__NOISE_DHLEN);
        *why = "noise DH gave the all-zero output (low-order X25519 key)";
        return CP2P_EPROTO;
    }
    return 0;
}

static int mix_dh(cp2p__noise_xx *hs, const uint8_t *priv, const uint8_t *pub, const char **why)
{
    uint8_t shared[CP2P__NOISE_DHLEN];
    int rc = dh(priv, pub, shared, why);
    if (rc == 0) {
        mix_key(&hs->ss, shared, sizeof(shared));
    }
    sodium_memzero(shared, sizeof(shared));
    return rc;
}

int cp2p__noise_xx_init(cp2p__noise_xx *hs, bool initiator, const uint8_t *prologue, size_t plen,
                        const uint8_t s_priv[CP2P__NOISE_DHLEN],
                        const uint8_t e_priv[CP2P__NOISE_DHLEN])
{
    static const char name[] = CP2P__NOISE_PROTOCOL_NAME;
    int rc = cp2p__crypto_init();

    memset(hs, 0, sizeof(*hs));
    if (rc != 0) {
        return rc;
    }
    if (s_priv == NULL || (plen > 0 && prologue == NULL)) {
        return CP2P_EINVAL;
    }
    hs->initiator = initiator;
    /* InitializeSymmetric: the name fits in HASHLEN, so h is the name padded with zeros. */
    memcpy(hs->ss.h, name, sizeof(name) - 1);
    memcpy(hs->ss.ck, hs->ss.h, CP2P__NOISE_HASHLEN);
    hs->ss.cs.has_key = false;
    mix_hash(&hs->ss, prologue, plen);
    /* XX has no pre-messages. */
    memcpy(hs->s_priv, s_priv, CP2P__NOISE_DHLEN);
    if (crypto_scalarmult_base(hs->s_pub, hs->s_priv) != 0) {
        cp2p__noise_xx_wipe(hs);
        return CP2P_EINVAL;
    }
    if (e_priv != NULL) {
        memcpy(hs->e_priv, e_priv, CP2P__NOISE_DHLEN);
        if (crypto_scalarmult_base(hs->e_pub, hs->e_priv) != 0) {
            cp2p__noise_xx_wipe(hs);
            return CP2P_EINVAL;
        }
        hs->has_e = true;
    }
    return 0;
}

static bool our_turn_to_write(const cp2p__noise_xx *hs)
{
    /* Messages 0 and 2 are the initiator's, message 1 the responder's. */
    return hs->next < 3 && ((hs->next % 2 == 0) == hs->initiator);
}

size_t cp2p__noise_xx_write_size(const cp2p__noise_xx *hs, size_t plen)
{
    if (!our_turn_to_write(hs)) {
        return 0;
    }
    switch (hs->next) {
    case 0:
        return CP2P__NOISE_XX_MSG1_OVERHEAD + plen;
    case 1:
        return CP2P__NOISE_XX_MSG2_OVERHEAD + plen;
    default:
        return CP2P__NOISE_XX_MSG3_OVERHEAD + plen;
    }
}

size_t cp2p__noise_xx_read_min(const cp2p__noise_xx *hs)
{
    if (hs->next >= 3 || our_turn_to_write(hs)) {
        return 0;
    }
    return cp2p__noise_xx_write_size(
        &(cp2p__noise_xx){.next = hs->next, .initiator = !hs->initiator}, 0);
}

int cp2p__noise_xx_write(cp2p__noise_xx *hs, const uint8_t *payload, size_t plen, uint8_t *out,
                         size_t cap, size_t *outlen, const char **why)
{
    size_t need = cp2p__noise_xx_write_size(hs, plen);
    size_t off = 0, n;
    int rc;

    if (need == 0 || cap < need || (plen > 0 && payload == NULL)) {
        *why = "noise handshake message written out of turn";
        return CP2P_EINVAL;
    }
    if (hs->next < 2) {
        /* Token "e": a fresh ephemeral unless one was injected. */
        if (!hs->has_e) {
            randombytes_buf(hs->e_priv, CP2P__NOISE_DHLEN);
            if (crypto_scalarmult_base(hs->e_pub, hs->e_priv) != 0) {
                *why = "noise ephemeral key generation failed";
                return CP2P_EINVAL;
            }
            hs->has_e = true;
        }
        memcpy(out, hs->e_pub, CP2P__NOISE_DHLEN);
        mix_hash(&hs->ss, hs->e_pub, CP2P__NOISE_DHLEN);
        off = CP2P__NOISE_DHLEN;
    }
    if (hs->next == 1) {
        /* "ee", "s", "es" (responder: DH(s, re)). */
        if ((rc = mix_dh(hs, hs->e_priv, hs->re, why)) != 0) {
            return rc;
        }
        if ((rc = encrypt_and_hash(&hs->ss, hs->s_pub, CP2P__NOISE_DHLEN, out + off, &n,
                                    why)) != 0) {
            return rc;
        }
        off += n;
        if ((rc = mix_dh(hs, hs->s_priv, hs->re, why)) != 0) {
            return rc;
        }
    } else if (hs->next == 2) {
        /* "s", "se" (initiator: DH(s, re)). */
        if ((rc = encrypt_and_hash(&hs->ss, hs->s_pub, CP2P__NOISE_DHLEN, out, &n, why)) != 0) {
            return rc;
        }
        off = n;
        if ((rc = mix_dh(hs, hs->s_priv, hs->re, why)) != 0) {
            return rc;
        }
    }
    if ((rc = encrypt_and_hash(&hs->ss, payload, plen, out + off, &n, why)) != 0) {
        return rc;
    }
    *outlen = off + n;
    hs->next++;
    return 0;
}

int cp2p__noise_xx_read(cp2p__noise_xx *hs, const uint8_t *msg, size_t len, uint8_t *payload,
                        size_t cap, size_t *plen, const char **why)
{
    size_t min = cp2p__noise_xx_read_min(hs);
    size_t off = 0, n;
    int rc;

    if (min == 0) {
        *why = "noise handshake message read out of turn";
        return CP2P_EINVAL;
    }
    if (len < min) {
        *why = "noise handshake message too short";
        return CP2P_EPROTO;
    }
    if (cap < len - min) {
        *why = "noise handshake payload buffer too small";
        return CP2P_EINVAL;
    }
    if (hs->next < 2) {
        /* Token "e". Any 32 bytes are a valid X25519 public key; low-order ones are caught by
         * the all-zero DH check when they are used. */
        memcpy(hs->re, msg, CP2P__NOISE_DHLEN);
        mix_hash(&hs->ss, hs->re, CP2P__NOISE_DHLEN);
        off = CP2P__NOISE_DHLEN;
    }
    if (hs->next == 1) {
        /* "ee", "s", "es" (initiator: DH(e, rs)). */
        if ((rc = mix_dh(hs, hs->e_priv, hs->re, why)) != 0) {
            return rc;
        }
        rc = decrypt_and_hash(&hs->ss, msg + off, CP2P__NOISE_DHLEN + CP2P__NOISE_TAGLEN, hs->rs,
                              &n, why);
        if (rc != 0) {
            return rc;
        }
        off += CP2P__NOISE_DHLEN + CP2P__NOISE_TAGLEN;
        if ((rc = mix_dh(hs, hs->e_priv, hs->rs, why)) != 0) {
            return rc;
        }
    } else if (hs->next == 2) {
        /* "s", "se" (responder: DH(e, rs)). */
        rc = decrypt_and_hash(&hs->ss, msg, CP2P__NOISE_DHLEN + CP2P__NOISE_TAGLEN, hs->rs, &n,
                              why);
        if (rc != 0) {
            return rc;
        }
        off = CP2P__NOISE_DHLEN + CP2P__NOISE_TAGLEN;
        if ((rc = mix_dh(hs, hs->e_priv, hs->rs, why)) != 0) {
            return rc;
        }
    }
    if ((rc = decrypt_and_hash(&hs->ss, msg + off, len - off, payload, plen, why)) != 0) {
        return rc;
    }
    hs->next++;
    return 0;
}

bool cp2p__noise_xx_done(const cp2p__noise_xx *hs)
{
    return hs->next >= 3;
}

int cp2p__noise_xx_split(const cp2p__noise_xx *hs, cp2p__noise_cipher *c1,
                         cp2p__noise_cipher *c2)
{
    uint8_t k1[CP2P__NOISE_HASHLEN], k2[CP2P__NOISE_HASHLEN];

    if (!cp2p__noise_xx_done(hs)) {
        return CP2P_EINVAL;
    }
    hkdf2(hs->ss.ck, NULL, 0, k1, k2);
    cipher_init_key(c1, k1);
    cipher_init_key(c2, k2);
    sodium_memzero(k1, sizeof(k1));
    sodium_memzero(k2, sizeof(k2));
    return 0;
}

const uint8_t *cp2p__noise_xx_static_pub(const cp2p__noise_xx *hs)
{
    return hs->s_pub;
}

const uint8_t *cp2p__noise_xx_remote_static(const cp2p__noise_xx *hs)
{
    return hs->rs;
}

const uint8_t *cp2p__noise_xx_hash(const cp2p__noise_xx *hs)
{
    return hs->ss.h;
}

void cp2p__noise_xx_wipe(cp2p__noise_xx *hs)
{
    sodium_memzero(hs, sizeof(*hs));
}
