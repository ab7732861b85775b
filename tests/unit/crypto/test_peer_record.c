/* Signed peer records (src/crypto/peer_record.h): seal/open round trips, a record produced by
 * js-libp2p, and every refusal (tampering, wrong signer, wrong type, limits, bad addresses). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <cp2p/keys.h>
#include <cp2p/multiaddr.h>

#include "crypto/peer_record.h"
#include "util/alloc.h"
#include "util/limits.h"

/* Produced by js-libp2p (@libp2p/peer-record 0.x in tests/interop/node_modules):
 *   key = generateKeyPairFromSeed('Ed25519', bytes 1..32)
 *   RecordEnvelope.seal(new PeerRecord({ peerId, seqNumber: 1700000000000n, multiaddrs: [
 *     /ip4/127.0.0.1/tcp/4001, /ip6/::1/tcp/4002, /ip4/10.0.0.1/udp/4003/quic-v1 ] }), key)
 *   .marshal() */
static const char JS_ENVELOPE[] =
    "0a240801122079b5562e8fe654f94078b112e8a98ba7901f853ae695bed7e0e3910bad04966412020301"
    "1a620a2600240801122079b5562e8fe654f94078b112e8a98ba7901f853ae695bed7e0e3910bad049664"
    "1080d095ffbc311a0a0a08047f000001060fa11a160a14290000000000000000000000000000000106"
    "0fa21a0d0a0b040a00000191020fa3cd032a401dfc27d0d41d250ce1f8c7378685402606977e258bb575"
    "e195a16eea8a460efcd689673923c26d54de825d6a95ec3e486eac448f94c46c80275eecac29d1b107";
static const char JS_PEER[] = "12D3KooWJ1TsijH7H5F74hfAD5XishQz3sxrmAtVY37GtNd9CqYf";
static const char *const JS_ADDRS[] = {"/ip4/127.0.0.1/tcp/4001", "/ip6/::1/tcp/4002",
                                       "/ip4/10.0.0.1/udp/4003/quic-v1"};
#define JS_SEQ 1700000000000ULL
/* Offsets in JS_ENVELOPE: the payload type bytes, and the payload (98 bytes). */
#define JS_TYPE_OFF 40
#define JS_PAYLOAD_OFF 44
#define JS_PAYLOAD_LEN 98

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

static cp2p_multiaddr *ma(const char *s)
{
    cp2p_multiaddr *m = NULL;
    assert_int_equal(cp2p_multiaddr_parse(s, strlen(s), &m), 0);
    return m;
}

static cp2p_privkey *seed_key(cp2p_key_type t, uint8_t first)
{
    uint8_t seed[32];
    for (size_t i = 0; i < sizeof(seed); i++) {
        seed[i] = (uint8_t)(first + i);
    }
    cp2p_privkey *k = NULL;
    assert_int_equal(cp2p_privkey_from_seed(t, seed, &k), 0);
    return k;
}

static cp2p_peer_id key_id(const cp2p_privkey *k)
{
    cp2p_peer_id id;
    assert_int_equal(cp2p_peer_id_from_pubkey(cp2p_privkey_public(k), &id), 0);
    return id;
}

static void round_trip(cp2p_key_type t)
{
    cp2p_privkey *k = seed_key(t, 7);
    cp2p_multiaddr *a[2] = {ma("/ip4/1.2.3.4/tcp/5"), ma("/dns4/example.com/tcp/443/wss")};
    cp2p_buf b;
    cp2p_buf_init(&b, CP2P_PEER_RECORD_MAX);
    assert_int_equal(cp2p__peer_record_seal(k, (const cp2p_multiaddr *const *)a, 2, 42, &b), 0);
    cp2p__peer_record r;
    assert_int_equal(cp2p__peer_record_open(b.ptr, b.len, &r), 0);
    cp2p_peer_id id = key_id(k);
    assert_true(cp2p_peer_id_equal(&r.peer, &id));
    assert_int_equal(r.seq, 42);
    assert_int_equal(r.n_addrs, 2);
    assert_int_equal(r.dropped_addrs, 0);
    assert_true(cp2p_multiaddr_equal(r.addrs[0], a[0]));
    assert_true(cp2p_multiaddr_equal(r.addrs[1], a[1]));
    cp2p__peer_record_fini(&r);
    cp2p__peer_record_fini(&r); /* twice is safe */

    /* No address, seq 0 (left out of the encoding, as proto3 does). */
    cp2p_buf_reset(&b);
    assert_int_equal(cp2p__peer_record_seal(k, NULL, 0, 0, &b), 0);
    assert_int_equal(cp2p__peer_record_open(b.ptr, b.len, &r), 0);
    assert_int_equal(r.seq, 0);
    assert_int_equal(r.n_addrs, 0);
    assert_true(cp2p_peer_id_equal(&r.peer, &id));
    cp2p__peer_record_fini(&r);

    cp2p_multiaddr_free(a[0]);
    cp2p_multiaddr_free(a[1]);
    cp2p_buf_fini(&b);
    cp2p_privkey_free(k);
}

static void test_round_trip_ed25519(void **state)
{
    (void)state;
    round_trip(CP2P_KEY_ED25519);
}

static void test_round_trip_secp256k1(void **state)
{
    (void)state;
    round_trip(CP2P_KEY_SECP256K1);
}

/* js-libp2p's envelope opens, and ours for the same key and record is byte-identical. */
static void test_js_vector(void **state)
{
    (void)state;
    uint8_t env[1024];
    size_t n = unhex(JS_ENVELOPE, env, sizeof(env));
    cp2p__peer_record r;
    assert_int_equal(cp2p__peer_record_open(env, n, &r), 0);
    cp2p_peer_id want;
    assert_int_equal(cp2p_peer_id_parse(JS_PEER, strlen(JS_PEER), &want), 0);
    assert_true(cp2p_peer_id_equal(&r.peer, &want));
    assert_int_equal(r.seq, JS_SEQ);
    assert_int_equal(r.n_addrs, 3);
    assert_int_equal(r.dropped_addrs, 0);
    cp2p_multiaddr *a[3];
    for (size_t i = 0; i < 3; i++) {
        a[i] = ma(JS_ADDRS[i]);
        assert_true(cp2p_multiaddr_equal(r.addrs[i], a[i]));
    }
    cp2p__peer_record_fini(&r);

    cp2p_privkey *k = seed_key(CP2P_KEY_ED25519, 1);
    cp2p_peer_id id = key_id(k);
    assert_true(cp2p_peer_id_equal(&id, &want));
    cp2p_buf b;
    cp2p_buf_init(&b, CP2P_PEER_RECORD_MAX);
    assert_int_equal(cp2p__peer_record_seal(k, (const cp2p_multiaddr *const *)a, 3, JS_SEQ, &b),
                     0);
    assert_int_equal(b.len, n);
    assert_memory_equal(b.ptr, env, n);
    for (size_t i = 0; i < 3; i++) {
        cp2p_multiaddr_free(a[i]);
    }
    cp2p_buf_fini(&b);
    cp2p_privkey_free(k);
}

/* Any changed bit in the payload or the signature breaks the signature. */
static void test_tampered(void **state)
{
    (void)state;
    uint8_t env[1024];
    size_t n = unhex(JS_ENVELOPE, env, sizeof(env));
    cp2p__peer_record r;
    for (size_t i = 0; i < JS_PAYLOAD_LEN; i += 7) {
        env[JS_PAYLOAD_OFF + i] ^= 0x01;
        int rc = cp2p__peer_record_open(env, n, &r);
        assert_int_equal(rc, CP2P_EBADSIG);
        assert_int_equal(r.n_addrs, 0);
        env[JS_PAYLOAD_OFF + i] ^= 0x01;
    }
    env[n - 1] ^= 0x80; /* last signature byte */
    assert_int_equal(cp2p__peer_record_open(env, n, &r), CP2P_EBADSIG);
    env[n - 1] ^= 0x80;
    env[10] ^= 0x01; /* inside the public key: another (valid) Ed25519 key */
    assert_int_equal(cp2p__peer_record_open(env, n, &r), CP2P_EBADSIG);
    env[10] ^= 0x01;
    assert_int_equal(cp2p__peer_record_open(env, n, &r), 0);
    cp2p__peer_record_fini(&r);
}

/* A payload type other than libp2p-peer-record is refused before the signature is checked. */
static void test_wrong_type(void **state)
{
    (void)state;
    uint8_t env[1024];
    size_t n = unhex(JS_ENVELOPE, env, sizeof(env));
    assert_int_equal(env[JS_TYPE_OFF], 0x03);
    assert_int_equal(env[JS_TYPE_OFF + 1], 0x01);
    env[JS_TYPE_OFF + 1] = 0x02;
    cp2p__peer_record r;
    assert_int_equal(cp2p__peer_record_open(env, n, &r), CP2P_EPROTO);
}

/* Hand-encoded PeerRecord: peer_id, seq 1, then the given AddressInfo bytes. */
static size_t record_bytes(const cp2p_peer_id *id, const uint8_t *const *addrs,
                           const size_t *lens, size_t n, uint8_t *out, size_t cap)
{
    size_t off = 0;
    out[off++] = 0x0a;
    out[off++] = (uint8_t)id->len;
    memcpy(out + off, id->bytes, id->len);
    off += id->len;
    out[off++] = 0x10;
    out[off++] = 0x01;
    for (size_t i = 0; i < n; i++) {
        assert_true(lens[i] < 126 && off + lens[i] + 4 <= cap);
        out[off++] = 0x1a;
        out[off++] = (uint8_t)(lens[i] + 2);
        out[off++] = 0x0a;
        out[off++] = (uint8_t)lens[i];
        memcpy(out + off, addrs[i], lens[i]);
        off += lens[i];
    }
    return off;
}

/* A correctly signed record about someone else: EPEERID. */
static void test_other_peer(void **state)
{
    (void)state;
    cp2p_privkey *k = seed_key(CP2P_KEY_ED25519, 1);
    cp2p_privkey *other = seed_key(CP2P_KEY_ED25519, 100);
    cp2p_peer_id oid = key_id(other);
    uint8_t payload[256];
    size_t plen = record_bytes(&oid, NULL, NULL, 0, payload, sizeof(payload));
    cp2p_buf b;
    cp2p_buf_init(&b, CP2P_PEER_RECORD_MAX);
    assert_int_equal(cp2p__peer_record_seal_payload(k, payload, plen, &b), 0);
    cp2p__peer_record r;
    assert_int_equal(cp2p__peer_record_open(b.ptr, b.len, &r), CP2P_EPEERID);
    /* The same payload signed by its own peer opens. */
    cp2p_buf_reset(&b);
    assert_int_equal(cp2p__peer_record_seal_payload(other, payload, plen, &b), 0);
    assert_int_equal(cp2p__peer_record_open(b.ptr, b.len, &r), 0);
    assert_true(cp2p_peer_id_equal(&r.peer, &oid));
    assert_int_equal(r.seq, 1);
    cp2p__peer_record_fini(&r);
    /* Signed, but no peer_id, or a peer_id that is not a multihash: EPROTO. */
    cp2p_buf_reset(&b);
    static const uint8_t no_id[] = {0x10, 0x01};
    assert_int_equal(cp2p__peer_record_seal_payload(k, no_id, sizeof(no_id), &b), 0);
    assert_int_equal(cp2p__peer_record_open(b.ptr, b.len, &r), CP2P_EPROTO);
    cp2p_buf_reset(&b);
    static const uint8_t bad_id[] = {0x0a, 0x03, 0x00, 0x05, 0x01};
    assert_int_equal(cp2p__peer_record_seal_payload(k, bad_id, sizeof(bad_id), &b), 0);
    assert_int_equal(cp2p__peer_record_open(b.ptr, b.len, &r), CP2P_EPROTO);
    cp2p_buf_reset(&b);
    static const uint8_t not_pb[] = {0xff, 0xff};
    assert_int_equal(cp2p__peer_record_seal_payload(k, not_pb, sizeof(not_pb), &b), 0);
    assert_int_equal(cp2p__peer_record_open(b.ptr, b.len, &r), CP2P_EPROTO);
    cp2p_buf_fini(&b);
    cp2p_privkey_free(k);
    cp2p_privkey_free(other);
}

/* Invalid and surplus addresses are dropped and counted; the valid ones are kept in order. */
static void test_addresses_dropped(void **state)
{
    (void)state;
    cp2p_privkey *k = seed_key(CP2P_KEY_ED25519, 1);
    cp2p_peer_id id = key_id(k);
    static const uint8_t good[] = {0x04, 0x7f, 0x00, 0x00, 0x01, 0x06, 0x0f, 0xa1};
    static const uint8_t bad[] = {0x04, 0x7f, 0x00}; /* truncated ip4 */
    const uint8_t *addrs[3] = {bad, good, good};
    size_t lens[3] = {sizeof(bad), sizeof(good), 0};
    uint8_t payload[1024];
    size_t plen = record_bytes(&id, addrs, lens, 3, payload, sizeof(payload));
    cp2p_buf b;
    cp2p_buf_init(&b, CP2P_PEER_RECORD_MAX);
    assert_int_equal(cp2p__peer_record_seal_payload(k, payload, plen, &b), 0);
    cp2p__peer_record r;
    assert_int_equal(cp2p__peer_record_open(b.ptr, b.len, &r), 0);
    assert_int_equal(r.n_addrs, 1);
    assert_int_equal(r.dropped_addrs, 2);
    cp2p_slice s = cp2p_multiaddr_bytes(r.addrs[0]);
    assert_int_equal(s.len, sizeof(good));
    assert_memory_equal(s.ptr, good, sizeof(good));
    cp2p__peer_record_fini(&r);

    /* More than CP2P_PEER_RECORD_MAX_ADDRS: the first ones are kept, the rest counted. */
    const uint8_t *many[CP2P_PEER_RECORD_MAX_ADDRS + 3];
    size_t mlens[CP2P_PEER_RECORD_MAX_ADDRS + 3];
    for (size_t i = 0; i < CP2P_PEER_RECORD_MAX_ADDRS + 3; i++) {
        many[i] = good;
        mlens[i] = sizeof(good);
    }
    plen = record_bytes(&id, many, mlens, CP2P_PEER_RECORD_MAX_ADDRS + 3, payload,
                        sizeof(payload));
    cp2p_buf_reset(&b);
    assert_int_equal(cp2p__peer_record_seal_payload(k, payload, plen, &b), 0);
    assert_int_equal(cp2p__peer_record_open(b.ptr, b.len, &r), 0);
    assert_int_equal(r.n_addrs, CP2P_PEER_RECORD_MAX_ADDRS);
    assert_int_equal(r.dropped_addrs, 3);
    cp2p__peer_record_fini(&r);
    cp2p_buf_fini(&b);
    cp2p_privkey_free(k);
}

static void test_limits_and_garbage(void **state)
{
    (void)state;
    static uint8_t big[CP2P_PEER_RECORD_MAX + 1];
    cp2p__peer_record r;
    assert_int_equal(cp2p__peer_record_open(big, sizeof(big), &r), CP2P_ELIMIT);
    assert_int_equal(cp2p__peer_record_open(NULL, 0, &r), CP2P_EPROTO); /* no field at all */
    static const uint8_t junk[] = {0xff, 0xff, 0xff};
    assert_int_equal(cp2p__peer_record_open(junk, sizeof(junk), &r), CP2P_EPROTO);

    /* Every strict prefix of a valid envelope is refused. */
    uint8_t env[1024];
    size_t n = unhex(JS_ENVELOPE, env, sizeof(env));
    for (size_t i = 0; i < n; i++) {
        assert_int_not_equal(cp2p__peer_record_open(env, i, &r), 0);
        assert_int_equal(r.n_addrs, 0);
    }

    /* Seal refuses too many addresses and a payload over the limit. */
    cp2p_privkey *k = seed_key(CP2P_KEY_ED25519, 1);
    cp2p_multiaddr *a = ma("/ip4/1.2.3.4/tcp/5");
    const cp2p_multiaddr *many[CP2P_PEER_RECORD_MAX_ADDRS + 1];
    for (size_t i = 0; i < CP2P_PEER_RECORD_MAX_ADDRS + 1; i++) {
        many[i] = a;
    }
    cp2p_buf b;
    cp2p_buf_init(&b, 2 * CP2P_PEER_RECORD_MAX);
    assert_int_equal(cp2p__peer_record_seal(k, many, CP2P_PEER_RECORD_MAX_ADDRS + 1, 1, &b),
                     CP2P_ELIMIT);
    assert_int_equal(cp2p__peer_record_seal(k, many, CP2P_PEER_RECORD_MAX_ADDRS, 1, &b), 0);
    assert_int_equal(cp2p__peer_record_seal_payload(k, big, sizeof(big), &b), CP2P_ELIMIT);
    /* A payload that fits but whose envelope does not. */
    size_t before = b.len;
    assert_int_equal(cp2p__peer_record_seal_payload(k, big, CP2P_PEER_RECORD_MAX - 10, &b),
                     CP2P_ELIMIT);
    assert_int_equal(b.len, before);
    assert_int_equal(cp2p__peer_record_seal(NULL, NULL, 0, 1, &b), CP2P_EINVAL);
    cp2p_buf_fini(&b);
    cp2p_multiaddr_free(a);
    cp2p_privkey_free(k);
}

/* Every allocation failing in turn: ENOMEM or success, nothing leaked (run under ASan). */
static void test_alloc_failures(void **state)
{
    (void)state;
    uint8_t env[1024];
    size_t n = unhex(JS_ENVELOPE, env, sizeof(env));
    bool ok = false;
    for (long fail = 1; fail < 200 && !ok; fail++) {
        cp2p__peer_record r;
        cp2p__alloc_fail_after(fail);
        int rc = cp2p__peer_record_open(env, n, &r);
        cp2p__alloc_fail_after(0);
        if (rc == 0) {
            assert_int_equal(r.n_addrs, 3);
            cp2p__peer_record_fini(&r);
            ok = true;
        } else {
            assert_int_equal(rc, CP2P_ENOMEM);
        }
    }
    assert_true(ok);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_ed25519),
        cmocka_unit_test(test_round_trip_secp256k1),
        cmocka_unit_test(test_js_vector),
        cmocka_unit_test(test_tampered),
        cmocka_unit_test(test_wrong_type),
        cmocka_unit_test(test_other_peer),
        cmocka_unit_test(test_addresses_dropped),
        cmocka_unit_test(test_limits_and_garbage),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
