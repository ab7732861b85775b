/* The Noise handshake: the generic XX layer against the cacophony test vector, and the libp2p
 * core (src/crypto/noise/noise.c) against itself in memory, on virtual time. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include <cp2p/keys.h>
#include <cp2p/log.h>

#include "crypto/noise/noise.h"
#include "crypto/noise/noise_hs.h"
#include "noise.pb-c.h"
#include "util/alloc.h"
#include "util/limits.h"

/* ---- helpers ---- */

static size_t unhex(const char *hex, uint8_t *out, size_t cap)
{
    size_t n = strlen(hex) / 2;
    assert_true(n <= cap);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
        out[i] = (uint8_t)v;
    }
    return n;
}

static cp2p_privkey *key_ed25519(uint8_t seed_byte)
{
    uint8_t seed[32];
    cp2p_privkey *k;
    memset(seed, seed_byte, sizeof(seed));
    assert_int_equal(cp2p_privkey_from_seed(CP2P_KEY_ED25519, seed, &k), 0);
    return k;
}

static cp2p_privkey *key_secp256k1(uint8_t seed_byte)
{
    uint8_t seed[32];
    cp2p_privkey *k;
    memset(seed, seed_byte, sizeof(seed));
    assert_int_equal(cp2p_privkey_from_seed(CP2P_KEY_SECP256K1, seed, &k), 0);
    return k;
}

static cp2p_peer_id peer_of(const cp2p_privkey *k)
{
    cp2p_peer_id id;
    assert_int_equal(cp2p_peer_id_from_pubkey(cp2p_privkey_public(k), &id), 0);
    return id;
}

/* One end of an in-memory connection: the core, the bytes it received but has not consumed,
 * and the plaintext it has delivered. */
typedef struct side {
    cp2p__noise *n;
    uint8_t *pend;
    size_t pend_len, pend_cap;
    uint8_t *got;
    size_t got_len, got_cap;
    const char *why;
} side;

static void grow_append(uint8_t **p, size_t *len, size_t *cap, const uint8_t *src, size_t n)
{
    if (*len + n > *cap) {
        size_t c = *cap ? *cap : 1024;
        while (c < *len + n) {
            c *= 2;
        }
        *p = realloc(*p, c);
        assert_non_null(*p);
        *cap = c;
    }
    if (n > 0) {
        memcpy(*p + *len, src, n);
    }
    *len += n;
}

static void side_fini(side *s)
{
    cp2p__noise_free(s->n);
    free(s->pend);
    free(s->got);
    memset(s, 0, sizeof(*s));
}

/* Feed s->pend to the core until it consumes nothing more, draining plaintext as it goes.
 * Returns 0 or the core's error. */
static int side_feed(side *s, uint64_t now)
{
    for (;;) {
        ptrdiff_t r = cp2p__noise_recv(s->n, s->pend, s->pend_len, now, &s->why);
        if (r < 0) {
            return (int)r;
        }
        memmove(s->pend, s->pend + r, s->pend_len - (size_t)r);
        s->pend_len -= (size_t)r;
        cp2p_slice pl;
        size_t k = cp2p__noise_read(s->n, &pl);
        grow_append(&s->got, &s->got_len, &s->got_cap, pl.ptr, k);
        cp2p__noise_read_done(s->n, k);
        if (r == 0 && k == 0) {
            return 0;
        }
    }
}

/* Move everything `from` has to send into `to` and let `to` process it. */
static int flow(side *from, side *to, uint64_t now)
{
    cp2p_slice o;
    size_t k = cp2p__noise_out(from->n, &o);
    grow_append(&to->pend, &to->pend_len, &to->pend_cap, o.ptr, k);
    cp2p__noise_out_done(from->n, k);
    return side_feed(to, now);
}

/* Take the next queued frame of `s` (the caller frees). */
static uint8_t *take_out(side *s, size_t *len)
{
    cp2p_slice o;
    size_t k = cp2p__noise_out(s->n, &o);
    uint8_t *p = malloc(k ? k : 1);
    assert_non_null(p);
    memcpy(p, o.ptr, k);
    cp2p__noise_out_done(s->n, k);
    *len = k;
    return p;
}

typedef struct pair_opts {
    const char *const *ini_muxers;
    size_t ini_n;
    const char *const *resp_muxers;
    size_t resp_n;
    const cp2p_peer_id *ini_expects;
    const cp2p_peer_id *resp_expects;
    size_t rx_max, tx_max;
} pair_opts;

static void make_pair(side *ini, side *resp, const cp2p_privkey *ki, const cp2p_privkey *kr,
                      const pair_opts *o, uint64_t now)
{
    cp2p__noise_config ci, cr;
    pair_opts none = {0};
    if (o == NULL) {
        o = &none;
    }
    memset(ini, 0, sizeof(*ini));
    memset(resp, 0, sizeof(*resp));
    cp2p__noise_config_default(&ci);
    cp2p__noise_config_default(&cr);
    ci.muxers = o->ini_muxers;
    ci.n_muxers = o->ini_n;
    cr.muxers = o->resp_muxers;
    cr.n_muxers = o->resp_n;
    if (o->rx_max) {
        ci.rx_buf_max = cr.rx_buf_max = o->rx_max;
    }
    if (o->tx_max) {
        ci.tx_buf_max = cr.tx_buf_max = o->tx_max;
    }
    assert_int_equal(cp2p__noise_new(&ci, true, ki, o->ini_expects, now, &ini->n), 0);
    assert_int_equal(cp2p__noise_new(&cr, false, kr, o->resp_expects, now, &resp->n), 0);
}

/* Run the three messages; returns 0 or the first error (which side: check the cores). */
static int run_handshake(side *ini, side *resp, uint64_t now)
{
    int rc;
    if ((rc = flow(ini, resp, now)) != 0) {
        return rc;
    }
    if ((rc = flow(resp, ini, now)) != 0) {
        return rc;
    }
    return flow(ini, resp, now);
}

static void fill_pattern(uint8_t *p, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = (uint8_t)(seed >> 16);
    }
}

/* ---- the cacophony vector ---- */

/* Noise_XX_25519_ChaChaPoly_SHA256 from cacophony.txt (as shipped in mcginty/snow,
 * tests/vectors/cacophony.txt; originally haskell-cryptography/cacophony vectors). */
#define CACO_PROLOGUE "4a6f686e2047616c74"
#define CACO_INIT_STATIC "e61ef9919cde45dd5f82166404bd08e38bceb5dfdfded0a34c8df7ed542214d1"
#define CACO_INIT_EPHEMERAL "893e28b9dc6ca8d611ab664754b8ceb7bac5117349a4439a6b0569da977c464a"
#define CACO_RESP_STATIC "4a3acbfdb163dec651dfa3194dece676d437029c62a408b4c5ea9114246e4893"
#define CACO_RESP_EPHEMERAL "bbdb4cdbd309f1a1f2e1456967fe288cadd6f712d65dc7b7793d5e63da6b375b"
#define CACO_HANDSHAKE_HASH "c8e5f64e846193be2a834104c2a009868d6c9f3bd3c186299888b488b2f1f58e"

static const struct {
    const char *payload, *ciphertext;
} CACO_MSGS[] = {
    {"4c756477696720766f6e204d69736573",
     "ca35def5ae56cec33dc2036731ab14896bc4c75dbb07a61f879f8e3afa4c79444c756477696720766f6e204d69"
     "736573"},
    {"4d757272617920526f746862617264",
     "95ebc60d2b1fa672c1f46a8aa265ef51bfe38e7ccb39ec5be34069f14480884381cbad1f276e038c48378ffce2"
     "b65285e08d6b68aaa3629a5a8639392490e5b9bd5269c2f1e4f488ed8831161f19b7815528f8982ffe09be9b5c"
     "412f8a0db50f8814c7194e83f23dbd8d162c9326ad"},
    {"462e20412e20486179656b",
     "c7195ffacac1307ff99046f219750fc47693e23c3cb08b89c2af808b444850a80ae475b9df0f169ae80a89be08"
     "65b57f58c9fea0d4ec82a286427402f113e4b6ae769a1d95941d49b25030"},
    {"4361726c204d656e676572", "96763ed773f8e47bb3712f0e29b3060ffc956ffc146cee53d5e1df"},
    {"4a65616e2d426170746973746520536179",
     "3e40f15f6f3a46ae446b253bf8b1d9ffb6ed9b174d272328ff91a7e2e5c79c07f5"},
    {"457567656e2042f6686d20766f6e2042617765726b",
     "eb3f3515110702e047a6c9da4478b6ead94873c11c0f2d710ddb3f09fce024b3a58502ae3f"},
};

static void caco_init(cp2p__noise_xx *ini, cp2p__noise_xx *resp)
{
    uint8_t prologue[16], is[32], ie[32], rs[32], re[32];
    size_t plen = unhex(CACO_PROLOGUE, prologue, sizeof(prologue));
    unhex(CACO_INIT_STATIC, is, 32);
    unhex(CACO_INIT_EPHEMERAL, ie, 32);
    unhex(CACO_RESP_STATIC, rs, 32);
    unhex(CACO_RESP_EPHEMERAL, re, 32);
    assert_int_equal(cp2p__noise_xx_init(ini, true, prologue, plen, is, ie), 0);
    assert_int_equal(cp2p__noise_xx_init(resp, false, prologue, plen, rs, re), 0);
}

static void cacophony_xx_transcript(void **state)
{
    cp2p__noise_xx ini, resp;
    cp2p__noise_cipher i_tx, i_rx, r_tx, r_rx, c1, c2;
    uint8_t payload[128], expect[256], msg[256], got[256], hash[32];
    const char *why = NULL;
    (void)state;

    caco_init(&ini, &resp);
    for (size_t m = 0; m < 3; m++) {
        cp2p__noise_xx *w = m % 2 == 0 ? &ini : &resp;
        cp2p__noise_xx *r = m % 2 == 0 ? &resp : &ini;
        size_t plen = unhex(CACO_MSGS[m].payload, payload, sizeof(payload));
        size_t elen = unhex(CACO_MSGS[m].ciphertext, expect, sizeof(expect));
        size_t mlen, glen;
        assert_int_equal(cp2p__noise_xx_write_size(w, plen), elen);
        assert_int_equal(cp2p__noise_xx_write(w, payload, plen, msg, sizeof(msg), &mlen, &why), 0);
        assert_int_equal(mlen, elen);
        assert_memory_equal(msg, expect, elen);
        assert_int_equal(cp2p__noise_xx_read(r, msg, mlen, got, sizeof(got), &glen, &why), 0);
        assert_int_equal(glen, plen);
        assert_memory_equal(got, payload, plen);
    }
    assert_true(cp2p__noise_xx_done(&ini));
    assert_true(cp2p__noise_xx_done(&resp));
    unhex(CACO_HANDSHAKE_HASH, hash, 32);
    assert_memory_equal(cp2p__noise_xx_hash(&ini), hash, 32);
    assert_memory_equal(cp2p__noise_xx_hash(&resp), hash, 32);
    /* Both sides learned the other's static key. */
    assert_memory_equal(cp2p__noise_xx_remote_static(&ini), cp2p__noise_xx_static_pub(&resp), 32);
    assert_memory_equal(cp2p__noise_xx_remote_static(&resp), cp2p__noise_xx_static_pub(&ini), 32);

    assert_int_equal(cp2p__noise_xx_split(&ini, &c1, &c2), 0);
    i_tx = c1;
    i_rx = c2;
    assert_int_equal(cp2p__noise_xx_split(&resp, &c1, &c2), 0);
    r_rx = c1;
    r_tx = c2;
    /* Transport messages alternate, starting with the initiator; empty associated data. */
    for (size_t m = 3; m < sizeof(CACO_MSGS) / sizeof(CACO_MSGS[0]); m++) {
        bool from_ini = m % 2 == 0; /* the alternation continues across the handshake */
        size_t plen = unhex(CACO_MSGS[m].payload, payload, sizeof(payload));
        size_t elen = unhex(CACO_MSGS[m].ciphertext, expect, sizeof(expect));
        assert_int_equal(elen, plen + CP2P__NOISE_TAGLEN);
        assert_int_equal(cp2p__noise_cipher_encrypt(from_ini ? &i_tx : &r_tx, NULL, 0, payload,
                                                    plen, msg, msg + plen),
                         0);
        assert_memory_equal(msg, expect, elen);
        /* Decrypt in place, as the core may. */
        assert_int_equal(
            cp2p__noise_cipher_decrypt(from_ini ? &r_rx : &i_rx, NULL, 0, msg, plen, msg), 0);
        assert_memory_equal(msg, payload, plen);
    }
    cp2p__noise_xx_wipe(&ini);
    cp2p__noise_xx_wipe(&resp);
}

/* Every truncated or corrupted vector message fails authentication (or is too short). */
static void cacophony_xx_damaged_messages_fail(void **state)
{
    uint8_t payload[128], msg[256], got[256];
    const char *why;
    (void)state;
    for (size_t m = 1; m < 3; m++) { /* messages 2 and 3 are authenticated */
        size_t elen = unhex(CACO_MSGS[m].ciphertext, msg, sizeof(msg));
        for (size_t cut = 0; cut <= elen; cut++) {
            for (int flip = 0; flip < 2; flip++) {
                cp2p__noise_xx ini, resp;
                size_t glen;
                if (flip && cut == elen) {
                    continue;
                }
                caco_init(&ini, &resp);
                /* Bring the reader to message m by replaying the earlier messages. */
                for (size_t k = 0; k < m; k++) {
                    uint8_t prev[256];
                    size_t plen = unhex(CACO_MSGS[k].payload, payload, sizeof(payload));
                    size_t wlen;
                    cp2p__noise_xx *w = k % 2 == 0 ? &ini : &resp;
                    cp2p__noise_xx *r = k % 2 == 0 ? &resp : &ini;
                    assert_int_equal(
                        cp2p__noise_xx_write(w, payload, plen, prev, sizeof(prev), &wlen, &why), 0);
                    assert_int_equal(
                        cp2p__noise_xx_read(r, prev, wlen, got, sizeof(got), &glen, &why), 0);
                }
                cp2p__noise_xx *r = m % 2 == 0 ? &resp : &ini;
                uint8_t bad[256];
                memcpy(bad, msg, elen);
                size_t len = cut;
                if (flip) {
                    bad[cut] ^= 0x01; /* corrupt one byte, keep the length */
                    len = elen;
                }
                if (!flip && cut == elen) {
                    assert_int_equal(cp2p__noise_xx_read(r, bad, len, got, sizeof(got), &glen,
                                                         &why),
                                     0);
                } else {
                    assert_int_equal(cp2p__noise_xx_read(r, bad, len, got, sizeof(got), &glen,
                                                         &why),
                                     CP2P_EPROTO);
                }
                cp2p__noise_xx_wipe(&ini);
                cp2p__noise_xx_wipe(&resp);
            }
        }
    }
}

/* A low-order remote ephemeral (here the all-zero point) makes DH(e, re) all zeros: refused. */
static void xx_rejects_all_zero_dh(void **state)
{
    cp2p__noise_xx ini, resp;
    uint8_t msg[256], got[256];
    size_t glen, wlen;
    const char *why = NULL;
    (void)state;
    caco_init(&ini, &resp);
    memset(msg, 0, 32);
    assert_int_equal(cp2p__noise_xx_read(&resp, msg, 32, got, sizeof(got), &glen, &why), 0);
    assert_int_equal(cp2p__noise_xx_write(&resp, NULL, 0, msg, sizeof(msg), &wlen, &why),
                     CP2P_EPROTO);
    assert_non_null(why);
    cp2p__noise_xx_wipe(&ini);
    cp2p__noise_xx_wipe(&resp);
}

/* The nonce 2^64-1 is never used (Noise spec 5.1). */
static void cipher_refuses_last_nonce(void **state)
{
    cp2p__noise_cipher c = {.has_key = true, .n = UINT64_MAX - 1};
    uint8_t buf[32] = {0};
    (void)state;
    memset(c.k, 7, sizeof(c.k));
    assert_int_equal(cp2p__noise_cipher_encrypt(&c, NULL, 0, buf, 16, buf, buf + 16), 0);
    assert_int_equal(c.n, UINT64_MAX);
    assert_int_equal(cp2p__noise_cipher_encrypt(&c, NULL, 0, buf, 16, buf, buf + 16),
                     CP2P_ELIMIT);
    assert_int_equal(cp2p__noise_cipher_decrypt(&c, NULL, 0, buf, 16, buf), CP2P_ELIMIT);
}

/* ---- the libp2p core ---- */

static void check_established(side *ini, side *resp, const cp2p_privkey *ki,
                              const cp2p_privkey *kr)
{
    cp2p_peer_id idi = peer_of(ki), idr = peer_of(kr);
    assert_true(cp2p__noise_handshake_done(ini->n));
    assert_true(cp2p__noise_handshake_done(resp->n));
    assert_true(cp2p_peer_id_equal(cp2p__noise_remote_peer_id(ini->n), &idr));
    assert_true(cp2p_peer_id_equal(cp2p__noise_remote_peer_id(resp->n), &idi));
    assert_true(cp2p_pubkey_equal(cp2p__noise_remote_pubkey(ini->n), cp2p_privkey_public(kr)));
    assert_true(cp2p_pubkey_equal(cp2p__noise_remote_pubkey(resp->n), cp2p_privkey_public(ki)));
    assert_int_equal(cp2p__noise_deadline(ini->n), UINT64_MAX);
    assert_int_equal(cp2p__noise_deadline(resp->n), UINT64_MAX);
    assert_int_equal(cp2p__noise_error(ini->n, NULL), 0);
    assert_int_equal(cp2p__noise_error(resp->n, NULL), 0);
}

/* Send `len` bytes from a to b and check they arrive intact. */
static void transfer(side *a, side *b, size_t len, uint32_t seed)
{
    uint8_t *data = malloc(len ? len : 1);
    size_t sent = 0;
    assert_non_null(data);
    fill_pattern(data, len, seed);
    b->got_len = 0;
    while (sent < len) {
        ptrdiff_t w = cp2p__noise_write(a->n, data + sent, len - sent);
        assert_true(w >= 0);
        sent += (size_t)w;
        assert_int_equal(flow(a, b, 0), 0);
    }
    assert_int_equal(flow(a, b, 0), 0);
    assert_int_equal(b->got_len, len);
    if (len > 0) {
        assert_memory_equal(b->got, data, len);
    }
    free(data);
}

static void handshake_between(const cp2p_privkey *ki, const cp2p_privkey *kr)
{
    side ini, resp;
    make_pair(&ini, &resp, ki, kr, NULL, 0);
    assert_false(cp2p__noise_handshake_done(ini.n));
    assert_null(cp2p__noise_remote_peer_id(ini.n));
    assert_int_equal(cp2p__noise_deadline(ini.n), CP2P_NOISE_HANDSHAKE_TIMEOUT_MS);
    assert_int_equal(run_handshake(&ini, &resp, 0), 0);
    check_established(&ini, &resp, ki, kr);
    assert_null(cp2p__noise_muxer(ini.n));
    assert_int_equal(cp2p__noise_remote_muxer_count(resp.n), 0);
    transfer(&ini, &resp, 100, 1);
    transfer(&resp, &ini, 100, 2);
    side_fini(&ini);
    side_fini(&resp);
}

static void handshake_ed25519(void **state)
{
    cp2p_privkey *a = key_ed25519(1), *b = key_ed25519(2);
    (void)state;
    handshake_between(a, b);
    cp2p_privkey_free(a);
    cp2p_privkey_free(b);
}

static void handshake_secp256k1(void **state)
{
    cp2p_privkey *a = key_secp256k1(0x11), *b = key_secp256k1(0x22);
    (void)state;
    handshake_between(a, b);
    cp2p_privkey_free(a);
    cp2p_privkey_free(b);
}

static void handshake_mixed_key_types(void **state)
{
    cp2p_privkey *a = key_ed25519(3), *b = key_secp256k1(0x33);
    (void)state;
    handshake_between(a, b);
    handshake_between(b, a);
    cp2p_privkey_free(a);
    cp2p_privkey_free(b);
}

/* Frame sizes: message 1 is 32 bytes; the initiator's first transport frame may follow
 * message 3 in the same output. */
static void handshake_wire_shape(void **state)
{
    cp2p_privkey *a = key_ed25519(1), *b = key_ed25519(2);
    side ini, resp;
    size_t len;
    (void)state;
    make_pair(&ini, &resp, a, b, NULL, 0);
    uint8_t *m1 = take_out(&ini, &len);
    assert_int_equal(len, 2 + 32);
    assert_int_equal(m1[0], 0);
    assert_int_equal(m1[1], 32);
    grow_append(&resp.pend, &resp.pend_len, &resp.pend_cap, m1, len);
    assert_int_equal(side_feed(&resp, 0), 0);
    assert_int_equal(flow(&resp, &ini, 0), 0);
    assert_true(cp2p__noise_handshake_done(ini.n));
    assert_int_equal(cp2p__noise_write(ini.n, (const uint8_t *)"hi", 2), 2);
    /* Message 3 and the data frame travel together. */
    assert_int_equal(flow(&ini, &resp, 0), 0);
    assert_true(cp2p__noise_handshake_done(resp.n));
    assert_int_equal(resp.got_len, 2);
    assert_memory_equal(resp.got, "hi", 2);
    free(m1);
    side_fini(&ini);
    side_fini(&resp);
    cp2p_privkey_free(a);
    cp2p_privkey_free(b);
}

static void transport_sizes_both_ways(void **state)
{
    cp2p_privkey *a = key_ed25519(1), *b = key_ed25519(2);
    side ini, resp;
    (void)state;
    make_pair(&ini, &resp, a, b, NULL, 0);
    assert_int_equal(run_handshake(&ini, &resp, 0), 0);
    const size_t sizes[] = {0, 1, 15, 16, 17, 1000, CP2P_NOISE_PLAINTEXT_MAX - 1,
                            CP2P_NOISE_PLAINTEXT_MAX, CP2P_NOISE_PLAINTEXT_MAX + 1,
                            3 * CP2P_NOISE_PLAINTEXT_MAX + 7, 1 << 20};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        transfer(&ini, &resp, sizes[i], (uint32_t)i);
        transfer(&resp, &ini, sizes[i], (uint32_t)i + 100);
    }
    side_fini(&ini);
    side_fini(&resp);
    cp2p_privkey_free(a);
    cp2p_privkey_free(b);
}

/* The output buffer handed over (cp2p__noise_out_take) carries the same frames as out/out_done,
 * the session goes on with a new buffer or with the one given back (cp2p__noise_out_give), and
 * a partly consumed output is not taken. */
static void transport_out_take(void **state)
{
    cp2p_privkey *a = key_ed25519(1), *b = key_ed25519(2);
    side ini, resp;
    uint8_t *p;
    size_t len;
    (void)state;
    make_pair(&ini, &resp, a, b, NULL, 0);
    assert_int_equal(run_handshake(&ini, &resp, 0), 0);
    assert_false(cp2p__noise_out_take(ini.n, &p, &len)); /* nothing waits */
    size_t n = 3 * CP2P_NOISE_PLAINTEXT_MAX + 5;
    uint8_t *data = malloc(n);
    assert_non_null(data);
    fill_pattern(data, n, 9);
    uint8_t *given = NULL;
    for (int round = 0; round < 3; round++) {
        resp.got_len = 0;
        assert_int_equal(cp2p__noise_write(ini.n, data, n), (ptrdiff_t)n);
        assert_true(cp2p__noise_out_take(ini.n, &p, &len));
        assert_int_equal(len, n + 4 * CP2P__NOISE_FRAME_OVERHEAD);
        if (given != NULL) {
            assert_ptr_equal(p, given); /* the buffer given back was encrypted into */
        }
        cp2p_slice o;
        assert_int_equal(cp2p__noise_out(ini.n, &o), 0); /* counted as sent */
        grow_append(&resp.pend, &resp.pend_len, &resp.pend_cap, p, len);
        if (round < 2) {
            cp2p__noise_out_give(ini.n, p, len); /* written: reuse it */
            given = p;
        } else {
            cp2p_free(p);
        }
        assert_int_equal(side_feed(&resp, 0), 0);
        assert_int_equal(resp.got_len, n);
        assert_memory_equal(resp.got, data, n);
    }
    /* Part of the output consumed already: not taken, the rest still goes out. */
    resp.got_len = 0;
    assert_int_equal(cp2p__noise_write(ini.n, data, 100), 100);
    cp2p_slice o;
    assert_int_equal(cp2p__noise_out(ini.n, &o), 100 + CP2P__NOISE_FRAME_OVERHEAD);
    grow_append(&resp.pend, &resp.pend_len, &resp.pend_cap, o.ptr, 10);
    cp2p__noise_out_done(ini.n, 10);
    assert_false(cp2p__noise_out_take(ini.n, &p, &len));
    /* A buffer given back while the output holds one is freed (ASan sees no leak). */
    uint8_t *extra = cp2p_malloc(64);
    assert_non_null(extra);
    cp2p__noise_out_give(ini.n, extra, 63);
    assert_int_equal(flow(&ini, &resp, 0), 0);
    assert_int_equal(resp.got_len, 100);
    assert_memory_equal(resp.got, data, 100);
    free(data);
    side_fini(&ini);
    side_fini(&resp);
    cp2p_privkey_free(a);
    cp2p_privkey_free(b);
}

/* A frame of exactly 65535 bytes carries 65519 bytes of plaintext; more is split. */
static void transport_full_frame_on_the_wire(void **state)
{
    cp2p_privkey *a = key_ed25519(1), *b = key_ed25519(2);
    side ini, resp;
    size_t len;
    (void)state;
    make_pair(&ini, &resp, a, b, NULL, 0);
    assert_int_equal(run_handshake(&ini, &resp, 0), 0);
    uint8_t *data = calloc(1, CP2P_NOISE_PLAINTEXT_MAX + 1);
    assert_non_null(data);
    assert_int_equal(cp2p__noise_write(ini.n, data, CP2P_NOISE_PLAINTEXT_MAX),
                     CP2P_NOISE_PLAINTEXT_MAX);
    uint8_t *wire = take_out(&ini, &len);
    assert_int_equal(len, 2 + 65535);
    assert_int_equal(wire[0], 0xff);
    assert_int_equal(wire[1], 0xff);
    /* The receiver takes it whole, and not a byte earlier. */
    assert_int_equal(cp2p__noise_recv(resp.n, wire, len - 1, 0, NULL), 0);
    assert_int_equal(cp2p__noise_recv(resp.n, wire, len, 0, NULL), (ptrdiff_t)len);
    cp2p_slice s;
    assert_int_equal(cp2p__noise_read(resp.n, &s), CP2P_NOISE_PLAINTEXT_MAX);
    cp2p__noise_read_done(resp.n, s.len);
    free(wire);
    /* One byte more: two frames, 65535 and 17. */
    assert_int_equal(cp2p__noise_write(ini.n, data, CP2P_NOISE_PLAINTEXT_MAX + 1),
                     CP2P_NOISE_PLAINTEXT_MAX + 1);
    wire = take_out(&ini, &len);
    assert_int_equal(len, 2 + 65535 + 2 + 17);
    assert_int_equal(wire[65537], 0);
    assert_int_equal(wire[65538], 17);
    free(wire);
    free(data);
    side_fini(&ini);
    side_fini(&resp);
    cp2p_privkey_free(a);
    cp2p_privkey_free(b);
}

/* writev packs slices into one frame; a short outgoing buffer takes a prefix. */
static void transport_writev_and_out_backpressure(void **state)
{
    cp2p_privkey *a = key_ed25519(1), *b = key_ed25519(2);
    pair_opts o = {.tx_max = 2 + CP2P_NOISE_MSG_MAX};
    side ini, resp;
    size_t len;
    (void)state;
    make_pair(&ini, &resp, a, b, &o, 0);
    assert_int_equal(run_handshake(&ini, &resp, 0), 0);
    cp2p_slice iov[4] = {{(const uint8_t *)"head", 4}, {NULL, 0}, {(const uint8_t *)"-", 1},
                         {(const uint8_t *)"tail", 4}};
    assert_int_equal(cp2p__noise_writev(ini.n, iov, 4), 9);
    uint8_t *wire = take_out(&ini, &len);
    assert_int_equal(len, 2 + 9 + 16);
    grow_append(&resp.pend, &resp.pend_len, &resp.pend_cap, wire, len);
    assert_int_equal(side_feed(&resp, 0), 0);
    assert_int_equal(resp.got_len, 9);
    assert_memory_equal(resp.got, "head-tail", 9);
    free(wire);
    /* The buffer holds one full frame: a big write takes exactly that much. */
    uint8_t *data = calloc(1, 200000);
    assert_non_null(data);
    assert_int_equal(cp2p__noise_write_space(ini.n), CP2P_NOISE_PLAINTEXT_MAX);
    assert_int_equal(cp2p__noise_write(ini.n, data, 200000), CP2P_NOISE_PLAINTEXT_MAX);
    assert_int_equal(cp2p__noise_write(ini.n, data, 200000), 0);
    assert_int_equal(cp2p__noise_write_space(ini.n), 0);
    /* Partial drains: the room comes back as bytes leave. */
    cp2p_slice s;
    assert_int_equal(cp2p__noise_out(ini.n, &s), 2 + CP2P_NOISE_MSG_MAX);
    grow_append(&resp.pend, &resp.pend_len, &resp.pend_cap, s.ptr, 1000);
    cp2p__noise_out_done(ini.n, 1000);
    assert_int_equal(cp2p__noise_write_space(ini.n), 1000 - CP2P__NOISE_FRAME_OVERHEAD);
    assert_int_equal(cp2p__noise_write(ini.n, data, 200000), 1000 - CP2P__NOISE_FRAME_OVERHEAD);
    assert_int_equal(flow(&ini, &resp, 0), 0);
    assert_int_equal(resp.got_len, 9 + CP2P_NOISE_PLAINTEXT_MAX + 1000 - 18);
    free(data);
    side_fini(&ini);
    side_fini(&resp);
    cp2p_privkey_free(a);
    cp2p_privkey_free(b);
}

/* The plaintext buffer bounds decryption: a frame that does not fit waits until the reader
 * drains. */
static void transport_rx_backpressure(void **state)
{
    cp2p_privkey *a = key_ed25519(1), *b = key_ed25519(2);
    pair_opts o = {.rx_max = CP2P_NOISE_PLAINTEXT_MAX};
    side ini, resp;
    size_t len;
    (void)state;
    make_pair(&ini, &resp, a, b, &o, 0);
    assert_int_equal(run_handshake(&ini, &resp, 0), 0);
    uint8_t *data = calloc(1, 2 * CP2P_NOISE_PLAINTEXT_MAX);
    assert_non_null(data);
    fill_pattern(data, 2 * CP2P_NOISE_PLAINTEXT_MAX, 9);
    assert_int_equal(cp2p__noise_write(ini.n, data, 2 * CP2P_NOISE_PLAINTEXT_MAX),
                     2 * CP2P_NOISE_PLAINTEXT_MAX);
    uint8_t *wire = take_out(&ini, &len);
    assert_int_equal(len, 2 * (2 + 65535));
    assert_int_equal(cp2p__noise_recv(resp.n, wire, len, 0, NULL), 2 + 65535);
    assert_int_equal(cp2p__noise_recv(resp.n, wire + 65537, len - 65537, 0, NULL), 0);
    cp2p_slice s;
    assert_int_equal(cp2p__noise_read(resp.n, &s), CP2P_NOISE_PLAINTEXT_MAX);
    assert_memory_equal(s.ptr, data, 100);
    cp2p__noise_read_done(resp.n, 100); /* a partial read is not enough room */
    assert_int_equal(cp2p__noise_recv(resp.n, wire + 65537, len - 65537, 0, NULL), 0);
    cp2p__noise_read_done(resp.n, CP2P_NOISE_PLAINTEXT_MAX - 100);
    assert_int_equal(cp2p__noise_recv(resp.n, wire + 65537, len - 65537, 0, NULL), 65537);
    assert_int_equal(cp2p__noise_read(resp.n, &s), CP2P_NOISE_PLAINTEXT_MAX);
    assert_memory_equal(s.ptr, data + CP2P_NOISE_PLAINTEXT_MAX, CP2P_NOISE_PLAINTEXT_MAX);
    free(wire);
    free(data);
    side_fini(&ini);
    side_fini(&resp);
    cp2p_privkey_free(a);
    cp2p_privkey_free(b);
}

/* Deliver message `m` (0..2) of the handshake of a fresh pair byte by byte in truncations:
 * every proper prefix consumes 0 and changes nothing; the whole message is consumed. */
static void every_truncation_needs_more(void **state)
{
    cp2p_privkey *a = key_ed25519(1), *b = key_ed25519(2);
    static const char *const mux[] = {"/yamux/1.0.0"};
    pair_opts o = {.ini_muxers = mux, .ini_n = 1, .resp_muxers = mux, .resp_n = 1};
    (void)state;
    side ini, resp;
    make_pair(&ini, &resp, a, b, &o, 0);
    for (int m = 0; m < 3; m++) {
        side *from = m == 1 ? &resp : &ini;
        side *to = m == 1 ? &ini : &resp;
        size_t len;
        uint8_t *msg = take_out(from, &len);
        assert_true(len > 2);
        for (size_t cut = 0; cut < len; cut++) {
            assert_int_equal(cp2p__noise_recv(to->n, msg, cut, 0, &to->why), 0);
            cp2p_slice s;
            assert_int_equal(cp2p__noise_out(to->n, &s), 0);
            assert_false(cp2p__noise_handshake_done(to->n));
        }
        assert_int_equal(cp2p__noise_recv(to->n, msg, len, 0, &to->why), (ptrdiff_t)len);
        free(msg);
    }
    check_established(&ini, &resp, a, b);
    /* Transport frames too. */
    assert_int_equal(cp2p__noise_write(ini.n, (const uint8_t *)"abc", 3), 3);
    size_t len;
    uint8_t *f = take_out(&ini, &len);
    for (size_t cut = 0; cut < len; cut++) {
        assert_int_equal(cp2p__noise_recv(resp.n, f, cut, 0, NULL), 0);
    }
    assert_int_equal(cp2p__noise_recv(resp.n, f, len, 0, NULL), (ptrdiff_t)len);
    free(f);
    side_fini(&ini);
    side_fini(&resp);
    cp2p_privkey_free(a);
    cp2p_privkey_free(b);
}

/* One corrupted body byte in any handshake message makes the handshake fail (on whichever side
 * first authenticates the damage), and never complete. */
static void corrupted_byte_fails(void **state)
{
    cp2p_privkey *a = key_ed25519(1), *b = key_secp256k1(0x44);
    static const char *const mux[] = {"/yamux/1.0.0"};
    pair_opts o = {.ini_muxers = mux, .ini_n = 1, .resp_muxers = mux, .resp_n = 1};
    (void)state;
    for (int m = 0; m < 3; m++) {
        for (size_t pos = 2;; pos++) {
            side ini, resp;
            make_pair(&ini, &resp, a, b, &o, 0);
            side *sides[2] = {&ini, &resp};
            bool done_all = false;
            int rc = 0;
            for (int k = 0; k < 3 && rc == 0; k++) {
                side *from = sides[k % 2], *to = sides[1 - k % 2];
                size_t len;
                uint8_t *msg = take_out(from, &len);
                if (k == m) {
                    if (pos >= len) {
                        done_all = true;
                        free(msg);
                        break;
                    }
                    msg[pos] ^= 0x80;
                }
                grow_append(&to->pend, &to->pend_len, &to->pend_cap, msg, len);
                free(msg);
                rc = side_feed(to, 0);
            }
            if (!done_all) {
                assert_int_equal(rc, CP2P_EPROTO);
                assert_false(cp2p__noise_handshake_done(ini.n) &&
                             cp2p__noise_handshake_done(resp.n));
            }
            side_fini(&ini);
            side_fini(&resp);
            if (done_all) {
                break;
            }
        }
    }
    cp2p_privkey_free(a);
    cp2p_privkey_free(b);
}

/* A fake responder driven with the generic layer, so that message 2 can carry any payload. */
typedef struct fake_resp {
    cp2p__noise_xx hs;
} fake_resp;

/* Read the initiator's message 1 and answer with message 2 carrying `payload`; feed it to the
 * initiator and return the initiator's result. */
static int fake_msg2(side *ini, const uint8_t *payload, size_t plen)
{
    fake_resp f;
    uint8_t s_priv[32], got[64];
    uint8_t *msg2 = malloc(2 + CP2P_NOISE_MSG_MAX);
    size_t len, glen, wlen;
    const char *why;
    assert_non_null(msg2);
    memset(s_priv, 0x5a, sizeof(s_priv));
    assert_int_equal(cp2p__noise_xx_init(&f.hs, false, NULL, 0, s_priv, NULL), 0);
    uint8_t *m1 = take_out(ini, &len);
    assert_int_equal(cp2p__noise_xx_read(&f.hs, m1 + 2, len - 2, got, sizeof(got), &glen, &why),
                     0);
    free(m1);
    assert_int_equal(cp2p__noise_xx_write(&f.hs, payload, plen, msg2 + 2, CP2P_NOISE_MSG_MAX,
                                          &wlen, &why),
                     0);
    msg2[0] = (uint8_t)(wlen >> 8);
    msg2[1] = (uint8_t)wlen;
    ptrdiff_t r = cp2p__noise_recv(ini->n, msg2, 2 + wlen, 0, &ini->why);
    free(msg2);
    cp2p__noise_xx_wipe(&f.hs);
    return r < 0 ? (int)r : 0;
}

/* Build a NoiseHandshakePayload. The signature is by `signer` over the prefix and `static_pub`
 * (the fake responder's static key, derived from its fixed private key). NULL fields are
 * omitted. */
static size_t build_payload(uint8_t *out, size_t cap, const cp2p_privkey *identity,
                            const cp2p_privkey *signer, const uint8_t *signed_static,
                            const ProtobufCBinaryData *muxers, size_t nmux)
{
    Cp2pPb__NoiseHandshakePayload pl = CP2P_PB__NOISE_HANDSHAKE_PAYLOAD__INIT;
    Cp2pPb__NoiseExtensions ext = CP2P_PB__NOISE_EXTENSIONS__INIT;
    cp2p_buf key, sig;
    uint8_t data[24 + 32];
    cp2p_buf_init(&key, 256);
    cp2p_buf_init(&sig, 256);
    if (identity != NULL) {
        assert_int_equal(cp2p_pubkey_marshal(cp2p_privkey_public(identity), &key), 0);
        pl.has_identity_key = 1;
        pl.identity_key = (ProtobufCBinaryData){key.len, key.ptr};
    }
    if (signer != NULL) {
        memcpy(data, "noise-libp2p-static-key:", 24);
        memcpy(data + 24, signed_static, 32);
        assert_int_equal(cp2p_privkey_sign(signer, data, sizeof(data), &sig), 0);
        pl.has_identity_sig = 1;
        pl.identity_sig = (ProtobufCBinaryData){sig.len, sig.ptr};
    }
    if (nmux > 0) {
        ext.n_stream_muxers = nmux;
        ext.stream_muxers = (ProtobufCBinaryData *)muxers;
        pl.extensions = &ext;
    }
    size_t n = cp2p_pb__noise_handshake_payload__get_packed_size(&pl);
    assert_true(n <= cap);
    cp2p_pb__noise_handshake_payload__pack(&pl, out);
    cp2p_buf_fini(&key);
    cp2p_buf_fini(&sig);
    return n;
}

static void fake_static_pub(uint8_t pub[32])
{
    uint8_t s_priv[32];
    memset(s_priv, 0x5a, sizeof(s_priv));
    assert_int_equal(crypto_scalarmult_base(pub, s_priv), 0);
}

static int initiator_vs_payload(const uint8_t *payload, size_t plen, const cp2p_peer_id *expect,
                                const char **why)
{
    cp2p_privkey *a = key_ed25519(1);
    cp2p__noise_config c;
    side ini = {0};
    cp2p__noise_config_default(&c);
    assert_int_equal(cp2p__noise_new(&c, true, a, expect, 0, &ini.n), 0);
    int rc = fake_msg2(&ini, payload, plen);
    if (rc != 0) {
        /* A failed initiator sends nothing more: message 3 would reveal our identity. */
        cp2p_slice s;
        assert_int_equal(cp2p__noise_out(ini.n, &s), 0);
        assert_false(cp2p__noise_handshake_done(ini.n));
        assert_null(cp2p__noise_remote_peer_id(ini.n));
        assert_int_equal(cp2p__noise_error(ini.n, why), rc);
    }
    side_fini(&ini);
    cp2p_privkey_free(a);
    return rc;
}

static void payload_signature_checks(void **state)
{
    cp2p_privkey *b = key_ed25519(2), *c = key_ed25519(3), *k = key_secp256k1(0x55);
    uint8_t spub[32], other[32], buf[1024];
    const char *why = NULL;
    size_t n;
    (void)state;
    fake_static_pub(spub);
    memset(other, 9, sizeof(other));

    /* The well-formed payload is accepted (the fake responder is a fine peer). */
    n = build_payload(buf, sizeof(buf), b, b, spub, NULL, 0);
    assert_int_equal(initiator_vs_payload(buf, n, NULL, &why), 0);
    n = build_payload(buf, sizeof(buf), k, k, spub, NULL, 0);
    assert_int_equal(initiator_vs_payload(buf, n, NULL, &why), 0);
    /* Signed by another key than the one presented. */
    n = build_payload(buf, sizeof(buf), b, c, spub, NULL, 0);
    assert_int_equal(initiator_vs_payload(buf, n, NULL, &why), CP2P_EBADSIG);
    assert_non_null(strstr(why, "signature"));
    n = build_payload(buf, sizeof(buf), k, b, spub, NULL, 0);
    assert_int_equal(initiator_vs_payload(buf, n, NULL, &why), CP2P_EBADSIG);
    /* Signed over another static key. */
    n = build_payload(buf, sizeof(buf), b, b, other, NULL, 0);
    assert_int_equal(initiator_vs_payload(buf, n, NULL, &why), CP2P_EBADSIG);
    n = build_payload(buf, sizeof(buf), k, k, other, NULL, 0);
    assert_int_equal(initiator_vs_payload(buf, n, NULL, &why), CP2P_EBADSIG);
    /* Missing fields, empty and malformed payloads. */
    n = build_payload(buf, sizeof(buf), b, NULL, spub, NULL, 0);
    assert_int_equal(initiator_vs_payload(buf, n, NULL, &why), CP2P_EPROTO);
    n = build_payload(buf, sizeof(buf), NULL, b, spub, NULL, 0);
    assert_int_equal(initiator_vs_payload(buf, n, NULL, &why), CP2P_EPROTO);
    assert_int_equal(initiator_vs_payload(NULL, 0, NULL, &why), CP2P_EPROTO);
    memset(buf, 0xff, 40);
    assert_int_equal(initiator_vs_payload(buf, 40, NULL, &why), CP2P_EPROTO);
    /* An identity key that is not a PublicKey message. */
    {
        Cp2pPb__NoiseHandshakePayload pl = CP2P_PB__NOISE_HANDSHAKE_PAYLOAD__INIT;
        uint8_t junk[8] = {1, 2, 3, 4, 5, 6, 7, 8};
        pl.has_identity_key = pl.has_identity_sig = 1;
        pl.identity_key = (ProtobufCBinaryData){sizeof(junk), junk};
        pl.identity_sig = (ProtobufCBinaryData){sizeof(junk), junk};
        n = cp2p_pb__noise_handshake_payload__pack(&pl, buf);
        assert_int_equal(initiator_vs_payload(buf, n, NULL, &why), CP2P_EPROTO);
    }
    cp2p_privkey_free(b);
    cp2p_privkey_free(c);
    cp2p_privkey_free(k);
}

/* The responder checks message 3's payload the same way: a fake initiator (the generic layer)
 * presents a signature by another key. */
static void responder_rejects_bad_signature(void **state)
{
    cp2p_privkey *b = key_ed25519(2), *a = key_ed25519(1), *c = key_secp256k1(0x12);
    uint8_t s_priv[32], s_pub[32], got[1024], payload[512], *msg;
    size_t len, glen, wlen, plen;
    cp2p__noise_config cfg;
    cp2p__noise_xx hs;
    const char *why = NULL;
    side resp = {0};
    (void)state;
    for (int good = 0; good < 2; good++) {
        memset(s_priv, 0x6b, sizeof(s_priv));
        assert_int_equal(crypto_scalarmult_base(s_pub, s_priv), 0);
        cp2p__noise_config_default(&cfg);
        assert_int_equal(cp2p__noise_new(&cfg, false, b, NULL, 0, &resp.n), 0);
        assert_int_equal(cp2p__noise_xx_init(&hs, true, NULL, 0, s_priv, NULL), 0);
        msg = malloc(2 + CP2P_NOISE_MSG_MAX);
        assert_non_null(msg);
        assert_int_equal(cp2p__noise_xx_write(&hs, NULL, 0, msg + 2, 64, &wlen, &why), 0);
        msg[0] = 0;
        msg[1] = (uint8_t)wlen;
        assert_int_equal(cp2p__noise_recv(resp.n, msg, 2 + wlen, 0, &why),
                         (ptrdiff_t)(2 + wlen));
        uint8_t *m2 = take_out(&resp, &len);
        assert_int_equal(cp2p__noise_xx_read(&hs, m2 + 2, len - 2, got, sizeof(got), &glen, &why),
                         0);
        free(m2);
        plen = build_payload(payload, sizeof(payload), a, good ? a : c, s_pub, NULL, 0);
        assert_int_equal(cp2p__noise_xx_write(&hs, payload, plen, msg + 2, CP2P_NOISE_MSG_MAX,
                                              &wlen, &why),
                         0);
        msg[0] = (uint8_t)(wlen >> 8);
        msg[1] = (uint8_t)wlen;
        ptrdiff_t r = cp2p__noise_recv(resp.n, msg, 2 + wlen, 0, &why);
        if (good) {
            cp2p_peer_id ida = peer_of(a);
            assert_int_equal(r, (ptrdiff_t)(2 + wlen));
            assert_true(cp2p_peer_id_equal(cp2p__noise_remote_peer_id(resp.n), &ida));
        } else {
            assert_int_equal(r, CP2P_EBADSIG);
            assert_null(cp2p__noise_remote_peer_id(resp.n));
        }
        free(msg);
        cp2p__noise_xx_wipe(&hs);
        side_fini(&resp);
    }
    cp2p_privkey_free(a);
    cp2p_privkey_free(b);
    cp2p_privkey_free(c);
}

static void expected_peer_id(void **state)
{
    cp2p_privkey *a = key_ed25519(1), *b = key_ed25519(2), *c = key_secp256k1(0x66);
    cp2p_peer_id ida = peer_of(a), idb = peer_of(b), idc = peer_of(c);
    const char *why = NULL;
    side ini, resp;
    (void)state;

    /* The initiator dialled b and reaches b. */
    pair_opts ok = {.ini_expects = &idb, .resp_expects = &ida};
    make_pair(&ini, &resp, a, b, &ok, 0);
    assert_int_equal(run_handshake(&ini, &resp, 0), 0);
    check_established(&ini, &resp, a, b);
    side_fini(&ini);
    side_fini(&resp);

    /* The initiator dialled c but b answers: it stops before message 3. */
    pair_opts bad = {.ini_expects = &idc};
    make_pair(&ini, &resp, a, b, &bad, 0);
    assert_int_equal(flow(&ini, &resp, 0), 0);
    assert_int_equal(flow(&resp, &ini, 0), CP2P_EPEERID);
    assert_int_equal(cp2p__noise_error(ini.n, &why), CP2P_EPEERID);
    assert_non_null(strstr(why, "peer ID"));
    cp2p_slice s;
    assert_int_equal(cp2p__noise_out(ini.n, &s), 0);
    side_fini(&ini);
    side_fini(&resp);

    /* A responder told to expect c, reached by a. */
    pair_opts bad2 = {.resp_expects = &idc};
    make_pair(&ini, &resp, a, b, &bad2, 0);
    assert_int_equal(run_handshake(&ini, &resp, 0), CP2P_EPEERID);
    assert_true(cp2p__noise_handshake_done(ini.n));
    assert_false(cp2p__noise_handshake_done(resp.n));
    side_fini(&ini);
    side_fini(&resp);
    cp2p_privkey_free(a);
    cp2p_privkey_free(b);
    cp2p_privkey_free(c);
}

static void oversize_and_short_lengths(void **state)
{
    cp2p_privkey *a = key_ed25519(1), *b = key_ed25519(2);
    cp2p__noise_config c;
    cp2p__noise *n;
    const char *why = NULL;
    (void)state;
    cp2p__noise_config_default(&c);

    /* A handshake length above the limit fails on the two length bytes alone. */
    uint8_t hdr[2] = {(CP2P_NOISE_HS_MSG_MAX_DEFAULT + 1) >> 8,
                      (CP2P_NOISE_HS_MSG_MAX_DEFAULT + 1) & 0xff};
    assert_int_equal(cp2p__noise_new(&c, false, b, NULL, 0, &n), 0);
    assert_int_equal(cp2p__noise_recv(n, hdr, 1, 0, &why), 0);
    assert_int_equal(cp2p__noise_recv(n, hdr, 2, 0, &why), CP2P_ELIMIT);
    assert_non_null(why);
    cp2p__noise_free(n);
    /* At the limit it waits for the body. */
    hdr[0] = CP2P_NOISE_HS_MSG_MAX_DEFAULT >> 8;
    hdr[1] = CP2P_NOISE_HS_MSG_MAX_DEFAULT & 0xff;
    assert_int_equal(cp2p__noise_new(&c, false, b, NULL, 0, &n), 0);
    assert_int_equal(cp2p__noise_recv(n, hdr, 2, 0, &why), 0);
    cp2p__noise_free(n);
    /* A configured 65535 accepts the largest length. */
    c.max_handshake_msg = CP2P_NOISE_MSG_MAX;
    hdr[0] = hdr[1] = 0xff;
    assert_int_equal(cp2p__noise_new(&c, false, b, NULL, 0, &n), 0);
    assert_int_equal(cp2p__noise_recv(n, hdr, 2, 0, &why), 0);
    cp2p__noise_free(n);
    /* A message 1 shorter than an ephemeral key. */
    uint8_t shortm[2 + 31] = {0, 31};
    assert_int_equal(cp2p__noise_new(&c, false, b, NULL, 0, &n), 0);
    assert_int_equal(cp2p__noise_recv(n, shortm, sizeof(shortm), 0, &why), CP2P_EPROTO);
    cp2p__noise_free(n);

    /* Transport frames shorter than the tag are malformed (0 and 15 bytes). */
    for (int len = 0; len < 16; len += 15) {
        side ini, resp;
        make_pair(&ini, &resp, a, b, NULL, 0);
        assert_int_equal(run_handshake(&ini, &resp, 0), 0);
        uint8_t f[2 + 15] = {0, (uint8_t)len};
        assert_int_equal(cp2p__noise_recv(resp.n, f, 2, 0, &why), CP2P_EPROTO);
        side_fini(&ini);
        side_fini(&resp);
    }
    /* Writing nothing queues no frame. */
    {
        side ini, resp;
        cp2p_slice iov = {(const uint8_t *)"", 0}, o;
        make_pair(&ini, &resp, a, b, NULL, 0);
        assert_int_equal(run_handshake(&ini, &resp, 0), 0);
        assert_int_equal(cp2p__noise_writev(ini.n, &iov, 1), 0);
        assert_int_equal(cp2p__noise_writev(ini.n, NULL, 0), 0);
        assert_int_equal(cp2p__noise_out(ini.n, &o), 0);
        side_fini(&ini);
        side_fini(&resp);
    }
    cp2p_privkey_free(a);
    cp2p_privkey_free(b);
}

static void handshake_timeout_virtual_time(void **state)
{
    cp2p_privkey *a = key_ed25519(1), *b = key_ed25519(2);
    side ini, resp;
    const char *why = NULL;
    (void)state;
    make_pair(&ini, &resp, a, b, NULL, 1000);
    uint64_t dl = 1000 + CP2P_NOISE_HANDSHAKE_TIMEOUT_MS;
    assert_int_equal(cp2p__noise_deadline(resp.n), dl);
    assert_int_equal(flow(&ini, &resp, 5000), 0);
    assert_int_equal(cp2p__noise_on_timeout(resp.n, dl - 1), 0);
    assert_int_equal(cp2p__noise_on_timeout(resp.n, dl), CP2P_ETIMEDOUT);
    assert_int_equal(cp2p__noise_deadline(resp.n), UINT64_MAX);
    assert_int_equal(cp2p__noise_error(resp.n, &why), CP2P_ETIMEDOUT);
    /* Terminal: further input gets the same error, writes too. */
    assert_int_equal(cp2p__noise_recv(resp.n, (const uint8_t *)"xx", 2, dl, &why), CP2P_ETIMEDOUT);
    assert_int_equal(cp2p__noise_write(resp.n, (const uint8_t *)"x", 1), CP2P_ETIMEDOUT);
    assert_int_equal(cp2p__noise_on_timeout(resp.n, dl + 1), 0);
    /* Input arriving at or after the deadline fails the handshake too. */
    assert_int_equal(flow(&resp, &ini, dl), CP2P_ETIMEDOUT);
    side_fini(&ini);
    side_fini(&resp);

    /* A finished handshake has no deadline, and time no longer matters. */
    make_pair(&ini, &resp, a, b, NULL, 0);
    assert_int_equal(run_handshake(&ini, &resp, 10), 0);
    assert_int_equal(cp2p__noise_on_timeout(ini.n, UINT64_MAX - 1), 0);
    assert_int_equal(cp2p__noise_on_timeout(resp.n, UINT64_MAX - 1), 0);
    assert_int_equal(cp2p__noise_write(ini.n, (const uint8_t *)"x", 1), 1);
    assert_int_equal(flow(&ini, &resp, UINT64_MAX - 1), 0);
    assert_int_equal(resp.got_len, 1);
    side_fini(&ini);
    side_fini(&resp);
    cp2p_privkey_free(a);
    cp2p_privkey_free(b);
}

static void muxer_case(const char *const *im, size_t in, const char *const *rm, size_t rn,
                       const char *expect, int expect_rc)
{
    cp2p_privkey *a = key_ed25519(1), *b = key_ed25519(2);
    pair_opts o = {.ini_muxers = im, .ini_n = in, .resp_muxers = rm, .resp_n = rn};
    side ini, resp;
    make_pair(&ini, &resp, a, b, &o, 0);
    int rc = run_handshake(&ini, &resp, 0);
    assert_int_equal(rc, expect_rc);
    if (rc == 0) {
        if (expect == NULL) {
            assert_null(cp2p__noise_muxer(ini.n));
            assert_null(cp2p__noise_muxer(resp.n));
        } else {
            assert_string_equal(cp2p__noise_muxer(ini.n), expect);
            assert_string_equal(cp2p__noise_muxer(resp.n), expect);
        }
        /* Each side sees the other's list, in its order. */
        assert_int_equal(cp2p__noise_remote_muxer_count(ini.n), rn);
        for (size_t i = 0; i < rn; i++) {
            assert_string_equal(cp2p__noise_remote_muxer(ini.n, i), rm[i]);
        }
        assert_null(cp2p__noise_remote_muxer(ini.n, rn));
        assert_int_equal(cp2p__noise_remote_muxer_count(resp.n), in);
        for (size_t i = 0; i < in; i++) {
            assert_string_equal(cp2p__noise_remote_muxer(resp.n, i), im[i]);
        }
    } else {
        /* No overlap: the initiator refuses at message 2 and sends no message 3. */
        const char *why;
        assert_int_equal(cp2p__noise_error(ini.n, &why), CP2P_EPROTO);
        assert_non_null(strstr(why, "muxer"));
        assert_int_equal(cp2p__noise_remote_muxer_count(ini.n), 0);
        assert_false(cp2p__noise_handshake_done(resp.n));
    }
    side_fini(&ini);
    side_fini(&resp);
    cp2p_privkey_free(a);
    cp2p_privkey_free(b);
}

static void early_muxer_negotiation(void **state)
{
    static const char *const yamux[] = {"/yamux/1.0.0"};
    static const char *const ym[] = {"/yamux/1.0.0", "/mplex/6.7.0"};
    static const char *const my[] = {"/mplex/6.7.0", "/yamux/1.0.0"};
    static const char *const other[] = {"/other/1"};
    (void)state;
    /* The spec's example: the initiator's preference wins. */
    muxer_case(ym, 2, my, 2, "/yamux/1.0.0", 0);
    muxer_case(my, 2, ym, 2, "/mplex/6.7.0", 0);
    muxer_case(yamux, 1, my, 2, "/yamux/1.0.0", 0);
    muxer_case(my, 2, yamux, 1, "/yamux/1.0.0", 0);
    /* Absent on either side: nothing negotiated, multistream-select follows. */
    muxer_case(NULL, 0, yamux, 1, NULL, 0);
    muxer_case(yamux, 1, NULL, 0, NULL, 0);
    muxer_case(NULL, 0, NULL, 0, NULL, 0);
    /* Both present, nothing in common: the handshake fails. */
    muxer_case(other, 1, ym, 2, NULL, CP2P_EPROTO);
}

static void bad_muxer_lists_from_remote(void **state)
{
    cp2p_privkey *b = key_ed25519(2);
    uint8_t spub[32];
    uint8_t *buf = malloc(CP2P_NOISE_MSG_MAX);
    ProtobufCBinaryData mux[CP2P_NOISE_MUXERS_MAX + 1];
    char longname[CP2P_NOISE_MUXER_NAME_MAX + 2];
    const char *why;
    size_t n;
    (void)state;
    assert_non_null(buf);
    fake_static_pub(spub);
    for (size_t i = 0; i <= CP2P_NOISE_MUXERS_MAX; i++) {
        mux[i] = (ProtobufCBinaryData){12, (uint8_t *)"/yamux/1.0.0"};
    }
    /* Up to the maximum is fine. */
    n = build_payload(buf, CP2P_NOISE_MSG_MAX, b, b, spub, mux, CP2P_NOISE_MUXERS_MAX);
    assert_int_equal(initiator_vs_payload(buf, n, NULL, &why), 0);
    n = build_payload(buf, CP2P_NOISE_MSG_MAX, b, b, spub, mux, CP2P_NOISE_MUXERS_MAX + 1);
    assert_int_equal(initiator_vs_payload(buf, n, NULL, &why), CP2P_ELIMIT);
    /* An embedded NUL, an empty name, an overlong name. */
    mux[0] = (ProtobufCBinaryData){5, (uint8_t *)"/ya\0x"};
    n = build_payload(buf, CP2P_NOISE_MSG_MAX, b, b, spub, mux, 1);
    assert_int_equal(initiator_vs_payload(buf, n, NULL, &why), CP2P_EPROTO);
    mux[0] = (ProtobufCBinaryData){0, (uint8_t *)""};
    n = build_payload(buf, CP2P_NOISE_MSG_MAX, b, b, spub, mux, 1);
    assert_int_equal(initiator_vs_payload(buf, n, NULL, &why), CP2P_EPROTO);
    memset(longname, 'a', sizeof(longname));
    mux[0] = (ProtobufCBinaryData){CP2P_NOISE_MUXER_NAME_MAX + 1, (uint8_t *)longname};
    n = build_payload(buf, CP2P_NOISE_MSG_MAX, b, b, spub, mux, 1);
    assert_int_equal(initiator_vs_payload(buf, n, NULL, &why), CP2P_ELIMIT);
    free(buf);
    cp2p_privkey_free(b);
}

static void garbage_before_handshake(void **state)
{
    cp2p_privkey *a = key_ed25519(1), *b = key_ed25519(2);
    cp2p__noise_config c;
    cp2p__noise *n;
    const char *why = NULL;
    (void)state;
    cp2p__noise_config_default(&c);
    /* An HTTP request to a responder: "GE" is a length of 18245. */
    static const char http[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_int_equal(cp2p__noise_new(&c, false, b, NULL, 0, &n), 0);
    assert_int_equal(cp2p__noise_recv(n, (const uint8_t *)http, sizeof(http) - 1, 0, &why),
                     CP2P_ELIMIT);
    cp2p__noise_free(n);
    /* A multistream header ("\x13/multistream...") reads as a 4911-byte message: it waits, and
     * the handshake deadline ends it. */
    static const char mss[] = "\x13/multistream/1.0.0\n";
    assert_int_equal(cp2p__noise_new(&c, false, b, NULL, 0, &n), 0);
    assert_int_equal(cp2p__noise_recv(n, (const uint8_t *)mss, sizeof(mss) - 1, 0, &why), 0);
    assert_int_equal(cp2p__noise_on_timeout(n, cp2p__noise_deadline(n)), CP2P_ETIMEDOUT);
    cp2p__noise_free(n);
    /* Random bytes framed as message 2 fail authentication at the initiator. */
    uint8_t junk[2 + 200] = {0, 200};
    fill_pattern(junk + 2, 200, 77);
    assert_int_equal(cp2p__noise_new(&c, true, a, NULL, 0, &n), 0);
    assert_int_equal(cp2p__noise_recv(n, junk, sizeof(junk), 0, &why), CP2P_EPROTO);
    cp2p__noise_free(n);
    /* Random bytes framed as message 1 are accepted by the responder (any 32 bytes are an
     * ephemeral key), and the handshake then fails at the real peer's message 3. */
    side ini, resp;
    make_pair(&ini, &resp, a, b, NULL, 0);
    junk[1] = 32;
    grow_append(&resp.pend, &resp.pend_len, &resp.pend_cap, junk, 2 + 32);
    assert_int_equal(side_feed(&resp, 0), 0);
    assert_int_equal(flow(&resp, &ini, 0), CP2P_EPROTO); /* the real initiator rejects msg 2 */
    side_fini(&ini);
    side_fini(&resp);
    cp2p_privkey_free(a);
    cp2p_privkey_free(b);
}

/* A message 1 with a payload (the spec puts nothing there) is accepted and the payload
 * ignored. */
static void msg1_payload_ignored(void **state)
{
    cp2p_privkey *b = key_ed25519(2);
    cp2p__noise_config c;
    cp2p__noise *n;
    cp2p__noise_xx hs;
    uint8_t s_priv[32], msg[2 + 64];
    size_t wlen;
    const char *why;
    (void)state;
    memset(s_priv, 1, sizeof(s_priv));
    cp2p__noise_config_default(&c);
    assert_int_equal(cp2p__noise_new(&c, false, b, NULL, 0, &n), 0);
    assert_int_equal(cp2p__noise_xx_init(&hs, true, NULL, 0, s_priv, NULL), 0);
    assert_int_equal(cp2p__noise_xx_write(&hs, (const uint8_t *)"hello", 5, msg + 2, 64, &wlen,
                                          &why),
                     0);
    msg[0] = 0;
    msg[1] = (uint8_t)wlen;
    assert_int_equal(cp2p__noise_recv(n, msg, 2 + wlen, 0, &why), (ptrdiff_t)(2 + wlen));
    cp2p_slice s;
    assert_true(cp2p__noise_out(n, &s) > 2 + 96); /* message 2 queued */
    cp2p__noise_xx_wipe(&hs);
    cp2p__noise_free(n);
    cp2p_privkey_free(b);
}

static void nonce_exhaustion(void **state)
{
    cp2p_privkey *a = key_ed25519(1), *b = key_ed25519(2);
    side ini, resp;
    const char *why = NULL;
    (void)state;
    make_pair(&ini, &resp, a, b, NULL, 0);
    assert_int_equal(run_handshake(&ini, &resp, 0), 0);
    /* Both ends jump to the last usable nonce 2^64-2: one more message each way. */
    cp2p__noise_test_set_nonces(ini.n, UINT64_MAX - 1, UINT64_MAX - 1);
    cp2p__noise_test_set_nonces(resp.n, UINT64_MAX - 1, UINT64_MAX - 1);
    transfer(&ini, &resp, 10, 1);
    transfer(&resp, &ini, 10, 2);
    /* The next message would use 2^64-1: refused, and the session is over. */
    assert_int_equal(cp2p__noise_write(ini.n, (const uint8_t *)"x", 1), CP2P_ELIMIT);
    assert_int_equal(cp2p__noise_error(ini.n, &why), CP2P_ELIMIT);
    assert_non_null(strstr(why, "nonce"));
    assert_false(cp2p__noise_handshake_done(ini.n));
    assert_int_equal(cp2p__noise_write(ini.n, (const uint8_t *)"x", 1), CP2P_ELIMIT);
    side_fini(&ini);
    side_fini(&resp);

    /* Receiving with an exhausted counter fails the session too. */
    make_pair(&ini, &resp, a, b, NULL, 0);
    assert_int_equal(run_handshake(&ini, &resp, 0), 0);
    cp2p__noise_test_set_nonces(resp.n, 0, UINT64_MAX);
    assert_int_equal(cp2p__noise_write(ini.n, (const uint8_t *)"x", 1), 1);
    assert_int_equal(flow(&ini, &resp, 0), CP2P_ELIMIT);
    assert_non_null(strstr(resp.why, "nonce"));
    side_fini(&ini);
    side_fini(&resp);
    cp2p_privkey_free(a);
    cp2p_privkey_free(b);
}

/* Transport-phase damage: a flipped bit, a replayed frame, a dropped frame. */
static void transport_damage_fails(void **state)
{
    cp2p_privkey *a = key_ed25519(1), *b = key_ed25519(2);
    (void)state;
    for (int kind = 0; kind < 3; kind++) {
        side ini, resp;
        size_t len1, len2;
        make_pair(&ini, &resp, a, b, NULL, 0);
        assert_int_equal(run_handshake(&ini, &resp, 0), 0);
        assert_int_equal(cp2p__noise_write(ini.n, (const uint8_t *)"first", 5), 5);
        uint8_t *f1 = take_out(&ini, &len1);
        assert_int_equal(cp2p__noise_write(ini.n, (const uint8_t *)"second", 6), 6);
        uint8_t *f2 = take_out(&ini, &len2);
        if (kind == 0) {
            f1[5] ^= 1;
            assert_int_equal(cp2p__noise_recv(resp.n, f1, len1, 0, NULL), CP2P_EPROTO);
        } else if (kind == 1) {
            assert_int_equal(cp2p__noise_recv(resp.n, f1, len1, 0, NULL), (ptrdiff_t)len1);
            assert_int_equal(cp2p__noise_recv(resp.n, f1, len1, 0, NULL), CP2P_EPROTO);
        } else {
            assert_int_equal(cp2p__noise_recv(resp.n, f2, len2, 0, NULL), CP2P_EPROTO);
        }
        /* Terminal. */
        assert_int_equal(cp2p__noise_recv(resp.n, f2, len2, 0, NULL), CP2P_EPROTO);
        free(f1);
        free(f2);
        side_fini(&ini);
        side_fini(&resp);
    }
    cp2p_privkey_free(a);
    cp2p_privkey_free(b);
}

static void api_misuse(void **state)
{
    cp2p_privkey *a = key_ed25519(1);
    cp2p__noise_config c;
    cp2p__noise *n = NULL;
    (void)state;
    cp2p__noise_config_default(&c);
    assert_int_equal(cp2p__noise_new(NULL, true, a, NULL, 0, &n), CP2P_EINVAL);
    assert_int_equal(cp2p__noise_new(&c, true, NULL, NULL, 0, &n), CP2P_EINVAL);
    c.max_handshake_msg = CP2P_NOISE_MSG_MAX + 1;
    assert_int_equal(cp2p__noise_new(&c, true, a, NULL, 0, &n), CP2P_EINVAL);
    cp2p__noise_config_default(&c);
    c.rx_buf_max = CP2P_NOISE_PLAINTEXT_MAX - 1;
    assert_int_equal(cp2p__noise_new(&c, true, a, NULL, 0, &n), CP2P_EINVAL);
    cp2p__noise_config_default(&c);
    c.tx_buf_max = CP2P_NOISE_MSG_MAX;
    assert_int_equal(cp2p__noise_new(&c, true, a, NULL, 0, &n), CP2P_EINVAL);
    cp2p__noise_config_default(&c);
    static const char *const bad_mux[] = {""};
    c.muxers = bad_mux;
    c.n_muxers = 1;
    assert_int_equal(cp2p__noise_new(&c, true, a, NULL, 0, &n), CP2P_EINVAL);
    c.n_muxers = CP2P_NOISE_MUXERS_MAX + 1;
    assert_int_equal(cp2p__noise_new(&c, true, a, NULL, 0, &n), CP2P_EINVAL);
    assert_null(n);
    /* Writing before the handshake is done. */
    cp2p__noise_config_default(&c);
    assert_int_equal(cp2p__noise_new(&c, false, a, NULL, 0, &n), 0);
    assert_int_equal(cp2p__noise_write(n, (const uint8_t *)"x", 1), CP2P_ESTATE);
    assert_int_equal(cp2p__noise_write_space(n), 0);
    cp2p__noise_free(n);
    cp2p__noise_free(NULL);
    cp2p_privkey_free(a);
}

/* A configured static key is the one the remote sees. */
static void static_key_is_used(void **state)
{
    cp2p_privkey *a = key_ed25519(1), *b = key_ed25519(2);
    cp2p__noise_config ci, cr;
    uint8_t s_priv[32], s_pub[32];
    side ini = {0}, resp = {0};
    (void)state;
    memset(s_priv, 0x42, sizeof(s_priv));
    assert_int_equal(crypto_scalarmult_base(s_pub, s_priv), 0);
    cp2p__noise_config_default(&ci);
    cp2p__noise_config_default(&cr);
    ci.static_key = s_priv;
    assert_int_equal(cp2p__noise_new(&ci, true, a, NULL, 0, &ini.n), 0);
    assert_int_equal(cp2p__noise_new(&cr, false, b, NULL, 0, &resp.n), 0);
    assert_null(cp2p__noise_remote_static(resp.n));
    assert_int_equal(run_handshake(&ini, &resp, 0), 0);
    assert_memory_equal(cp2p__noise_remote_static(resp.n), s_pub, 32);
    side_fini(&ini);
    side_fini(&resp);
    cp2p_privkey_free(a);
    cp2p_privkey_free(b);
}

/* Counting allocator: how many allocations a clean run makes. */
static long g_allocs;

static void *count_malloc(size_t n)
{
    g_allocs++;
    return malloc(n);
}

static void *count_realloc(void *p, size_t n)
{
    g_allocs++;
    return realloc(p, n);
}

/* One full run: both cores, the handshake and a write. Returns 0 or the first error. */
static int alloc_run(const cp2p__noise_config *ci, const cp2p__noise_config *cr,
                     const cp2p_privkey *a, const cp2p_privkey *b)
{
    side ini = {0}, resp = {0};
    int rc;
    if ((rc = cp2p__noise_new(ci, true, a, NULL, 0, &ini.n)) == 0 &&
        (rc = cp2p__noise_new(cr, false, b, NULL, 0, &resp.n)) == 0 &&
        (rc = run_handshake(&ini, &resp, 0)) == 0) {
        ptrdiff_t w = cp2p__noise_write(ini.n, (const uint8_t *)"data", 4);
        rc = w < 0 ? (int)w : flow(&ini, &resp, 0);
        if (rc == 0 && resp.got_len != 4) {
            rc = CP2P_EPROTO;
        }
    }
    side_fini(&ini);
    side_fini(&resp);
    return rc;
}

/* Make each allocation fail in turn (STYLE.md section 10): every failure surfaces as
 * CP2P_ENOMEM and is clean (ASan checks for leaks). */
static void allocation_failures(void **state)
{
    cp2p_privkey *a = key_ed25519(1), *b = key_secp256k1(0x77);
    static const char *const mux[] = {"/yamux/1.0.0"};
    cp2p__noise_config ci, cr;
    (void)state;
    cp2p__noise_config_default(&ci);
    cp2p__noise_config_default(&cr);
    ci.muxers = cr.muxers = mux;
    ci.n_muxers = cr.n_muxers = 1;
    assert_int_equal(cp2p_set_allocator(count_malloc, count_realloc, free), 0);
    g_allocs = 0;
    assert_int_equal(alloc_run(&ci, &cr, a, b), 0);
    long total = g_allocs;
    assert_int_equal(cp2p_set_allocator(malloc, realloc, free), 0);
    assert_true(total > 5);
    for (long k = 1; k <= total; k++) {
        cp2p__alloc_fail_after(k);
        int rc = alloc_run(&ci, &cr, a, b);
        cp2p__alloc_fail_after(0);
        assert_int_equal(rc, CP2P_ENOMEM);
    }
    cp2p_privkey_free(a);
    cp2p_privkey_free(b);
}


/* trim gives back the buffers a burst grew only while they are empty: bytes waiting to be
 * sent or read survive it, and the session goes on (the next message allocates again). */
static void trim_keeps_pending_bytes(void **state)
{
    cp2p_privkey *a = key_ed25519(1), *b = key_ed25519(2);
    side ini, resp;
    (void)state;
    make_pair(&ini, &resp, a, b, NULL, 0);
    assert_int_equal(run_handshake(&ini, &resp, 0), 0);
    transfer(&ini, &resp, 1 << 20, 3);
    transfer(&resp, &ini, 1 << 20, 4);
    /* Empty: the buffers go; a later message allocates them again. */
    assert_int_equal(cp2p_set_allocator(count_malloc, count_realloc, free), 0);
    g_allocs = 0;
    transfer(&ini, &resp, 1000, 5);
    assert_int_equal(g_allocs, 0); /* grown buffers are reused... */
    cp2p__noise_trim(ini.n);
    cp2p__noise_trim(resp.n);
    transfer(&ini, &resp, 1000, 6);
    assert_true(g_allocs >= 2); /* ...until trimmed: ini's out and resp's in again */
    assert_int_equal(cp2p_set_allocator(malloc, realloc, free), 0);
    /* Unsent output survives a trim. */
    uint8_t data[3000];
    fill_pattern(data, sizeof(data), 7);
    assert_int_equal(cp2p__noise_write(ini.n, data, sizeof(data)), (ptrdiff_t)sizeof(data));
    cp2p__noise_trim(ini.n);
    resp.got_len = 0;
    assert_int_equal(flow(&ini, &resp, 0), 0);
    assert_int_equal(resp.got_len, sizeof(data));
    assert_memory_equal(resp.got, data, sizeof(data));
    /* Decrypted bytes not yet read survive a trim too. */
    assert_int_equal(cp2p__noise_write(resp.n, data, sizeof(data)), (ptrdiff_t)sizeof(data));
    cp2p_slice o;
    size_t k = cp2p__noise_out(resp.n, &o);
    ptrdiff_t used = cp2p__noise_recv(ini.n, o.ptr, k, 0, &ini.why);
    assert_int_equal(used, (ptrdiff_t)k);
    cp2p__noise_out_done(resp.n, k);
    cp2p__noise_trim(ini.n);
    cp2p_slice pl;
    assert_int_equal(cp2p__noise_read(ini.n, &pl), sizeof(data));
    assert_memory_equal(pl.ptr, data, sizeof(data));
    cp2p__noise_read_done(ini.n, pl.len);
    transfer(&resp, &ini, 100, 8);
    side_fini(&ini);
    side_fini(&resp);
    cp2p_privkey_free(a);
    cp2p_privkey_free(b);
}

int main(void)
{
    /* Failures log one INFO line each; the tests provoke hundreds. CP2P_LOG=info shows them. */
    if (getenv("CP2P_LOG") == NULL) {
        cp2p_log_set_level(CP2P_LOG_WARN);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cacophony_xx_transcript),
        cmocka_unit_test(cacophony_xx_damaged_messages_fail),
        cmocka_unit_test(xx_rejects_all_zero_dh),
        cmocka_unit_test(cipher_refuses_last_nonce),
        cmocka_unit_test(handshake_ed25519),
        cmocka_unit_test(transport_out_take),
        cmocka_unit_test(handshake_secp256k1),
        cmocka_unit_test(handshake_mixed_key_types),
        cmocka_unit_test(handshake_wire_shape),
        cmocka_unit_test(transport_sizes_both_ways),
        cmocka_unit_test(trim_keeps_pending_bytes),
        cmocka_unit_test(transport_full_frame_on_the_wire),
        cmocka_unit_test(transport_writev_and_out_backpressure),
        cmocka_unit_test(transport_rx_backpressure),
        cmocka_unit_test(every_truncation_needs_more),
        cmocka_unit_test(corrupted_byte_fails),
        cmocka_unit_test(payload_signature_checks),
        cmocka_unit_test(responder_rejects_bad_signature),
        cmocka_unit_test(expected_peer_id),
        cmocka_unit_test(oversize_and_short_lengths),
        cmocka_unit_test(handshake_timeout_virtual_time),
        cmocka_unit_test(early_muxer_negotiation),
        cmocka_unit_test(bad_muxer_lists_from_remote),
        cmocka_unit_test(garbage_before_handshake),
        cmocka_unit_test(msg1_payload_ignored),
        cmocka_unit_test(nonce_exhaustion),
        cmocka_unit_test(transport_damage_fails),
        cmocka_unit_test(api_misuse),
        cmocka_unit_test(static_key_is_used),
        cmocka_unit_test(allocation_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
