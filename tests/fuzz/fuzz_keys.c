/* Fuzz the key decoders (include/cp2p/keys.h): cp2p_pubkey_unmarshal, cp2p_privkey_unmarshal,
 * cp2p_pubkey_from_raw and signature verification.
 *
 * Input layout (every part optional, missing parts are empty):
 *   [k: 1 byte][key: k bytes][s: 1 byte][sig: s bytes][msg: the rest]
 * The key bytes go to every decoder; the whole input is also tried as one key encoding, so
 * plain key files work as corpus entries too. Invariants (abort() when broken):
 *  - a decoded key marshals back to exactly the input (strict decoding), except the legacy
 *    96-byte Ed25519 private key, which must marshal to its canonical 64-byte form;
 *  - peer IDs derived from the key and from its encoding agree, and the key comes back out of
 *    an inline peer ID;
 *  - a decoded private key's own signature verifies under its public key.
 * Verifying the fuzzer's signature bytes must simply not crash. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cp2p/keys.h>

static void check(int ok)
{
    if (!ok) {
        abort();
    }
}

static void check_pub(const cp2p_pubkey *pub, const uint8_t *enc, size_t enclen,
                      const uint8_t *msg, size_t msglen, const uint8_t *sig, size_t siglen)
{
    cp2p_buf out;
    cp2p_buf_init(&out, CP2P_KEY_MARSHAL_MAX);
    check(cp2p_pubkey_marshal(pub, &out) == 0);
    if (enc != NULL) {
        check(out.len == enclen && memcmp(out.ptr, enc, enclen) == 0);
    }
    cp2p_peer_id a, b;
    check(cp2p_peer_id_from_pubkey(pub, &a) == 0);
    check(cp2p_peer_id_from_pubkey_proto(out.ptr, out.len, &b) == 0);
    check(a.len == b.len && memcmp(a.bytes, b.bytes, a.len) == 0);
    cp2p_pubkey *back = NULL;
    check(cp2p_pubkey_from_peer_id(&a, &back) == 0);
    check(cp2p_pubkey_equal(back, pub));
    cp2p_pubkey_free(back);
    cp2p_buf_fini(&out);

    int rc = cp2p_pubkey_verify(pub, msg, msglen, sig, siglen);
    check(rc == 0 || rc == CP2P_EBADSIG);
}

static void try_key_bytes(const uint8_t *key, size_t klen, const uint8_t *msg, size_t msglen,
                          const uint8_t *sig, size_t siglen)
{
    cp2p_pubkey *pub = NULL;
    int rc = cp2p_pubkey_unmarshal(key, klen, &pub);
    check(rc == 0 || rc == CP2P_EPROTO || rc == CP2P_ENOTSUP || rc == CP2P_ELIMIT);
    if (rc == 0) {
        check_pub(pub, key, klen, msg, msglen, sig, siglen);
        cp2p_pubkey_free(pub);
    }
    cp2p_peer_id id;
    int rc2 = cp2p_peer_id_from_pubkey_proto(key, klen, &id);
    /* Same framing rules: a key cp2p_pubkey_unmarshal accepts (or finds unsupported) has an ID. */
    check((rc2 == 0) == (rc == 0 || rc == CP2P_ENOTSUP));

    cp2p_privkey *priv = NULL;
    rc = cp2p_privkey_unmarshal(key, klen, &priv);
    check(rc == 0 || rc == CP2P_EPROTO || rc == CP2P_ENOTSUP || rc == CP2P_ELIMIT);
    if (rc == 0) {
        cp2p_buf out;
        cp2p_buf_init(&out, CP2P_KEY_MARSHAL_MAX);
        check(cp2p_privkey_marshal(priv, &out) == 0);
        if (out.len != klen) {
            /* Only the legacy form may differ: 08 01 12 60 seed pk pk -> 08 01 12 40 seed pk. */
            check(klen == 100 && out.len == 68 && key[3] == 0x60 && out.ptr[3] == 0x40 &&
                  memcmp(out.ptr, key, 3) == 0 && memcmp(out.ptr + 4, key + 4, 64) == 0);
        } else {
            check(memcmp(out.ptr, key, klen) == 0);
        }
        cp2p_buf_fini_wipe(&out);

        const cp2p_pubkey *pk = cp2p_privkey_public(priv);
        check_pub(pk, NULL, 0, msg, msglen, sig, siglen);
        cp2p_buf s;
        cp2p_buf_init(&s, CP2P_SIG_MAX);
        check(cp2p_privkey_sign(priv, msg, msglen, &s) == 0);
        check(cp2p_pubkey_verify(pk, msg, msglen, s.ptr, s.len) == 0);
        cp2p_buf_fini(&s);
        cp2p_privkey_free(priv);
    }

    /* The raw forms (Ed25519 32 bytes, secp256k1 33 or 65 bytes). */
    static const cp2p_key_type types[] = {CP2P_KEY_ED25519, CP2P_KEY_SECP256K1};
    for (size_t t = 0; t < 2; t++) {
        pub = NULL;
        rc = cp2p_pubkey_from_raw(types[t], key, klen, &pub);
        check(rc == 0 || rc == CP2P_EINVAL);
        if (rc == 0) {
            cp2p_slice raw = cp2p_pubkey_raw(pub);
            check(klen == 65 || (raw.len == klen && memcmp(raw.ptr, key, klen) == 0));
            check_pub(pub, NULL, 0, msg, msglen, sig, siglen);
            cp2p_pubkey_free(pub);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t none[1];
    const uint8_t *p = data, *end = data + size;
    size_t k = 0, s = 0;
    if (p < end) {
        k = *p++;
    }
    if (k > (size_t)(end - p)) {
        k = (size_t)(end - p);
    }
    const uint8_t *key = p;
    p += k;
    if (p < end) {
        s = *p++;
    }
    if (s > (size_t)(end - p)) {
        s = (size_t)(end - p);
    }
    const uint8_t *sig = p;
    p += s;
    const uint8_t *msg = p;
    size_t msglen = (size_t)(end - p);

    try_key_bytes(k > 0 ? key : none, k, msglen > 0 ? msg : none, msglen, s > 0 ? sig : none, s);
    try_key_bytes(size > 0 ? data : none, size, none, 0, none, 0);
    return 0;
}
