/* Fuzz the Noise handshake core (src/crypto/noise/noise.c) with the remote's bytes.
 *
 * Input: byte 0 chooses the role and how the bytes arrive:
 *   bit 0    0: we are the responder, the input is the initiator's stream (message 1, then
 *               message 3, then transport frames);
 *            1: we are the initiator (message 1 already queued), the input is the responder's
 *               stream (message 2, then transport frames);
 *   bits 1-7 0: everything in one call; k: delivered in pieces of k bytes, as a socket would.
 * The rest is the remote's byte stream. Keys are fixed (identity, static and ephemeral), so a
 * recorded handshake replays byte for byte and the corpus reaches past the handshake.
 *
 * The corpus in tests/fuzz/corpus/noise_hs/ was made by this file's generator:
 *   cc -std=c11 -D_DEFAULT_SOURCE -DCP2P_NOISE_GEN_CORPUS -Iinclude -Isrc -I$BUILD/proto \
 *      tests/fuzz/fuzz_noise_hs.c $BUILD/libcp2p.a -lsodium -lsecp256k1 -lprotobuf-c -lpthread \
 *      -o gen && ./gen tests/fuzz/corpus/noise_hs
 * It is deterministic: running it again rewrites the same files.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cp2p/keys.h>
#include <cp2p/log.h>

#include "crypto/noise/noise.h"

static const char *const MUXERS[] = {"/yamux/1.0.0", "/mplex/6.7.0"};

typedef struct fixed_side {
    cp2p_privkey *identity;
    uint8_t s[32], e[32];
} fixed_side;

static fixed_side g_ini, g_resp;

static void setup_once(void)
{
    static int done;
    uint8_t seed[32];
    if (done) {
        return;
    }
    done = 1;
    cp2p_log_set_level(CP2P_LOG_OFF);
    memset(seed, 0x01, sizeof(seed));
    if (cp2p_privkey_from_seed(CP2P_KEY_ED25519, seed, &g_ini.identity) != 0) {
        abort();
    }
    memset(seed, 0x22, sizeof(seed));
    if (cp2p_privkey_from_seed(CP2P_KEY_SECP256K1, seed, &g_resp.identity) != 0) {
        abort();
    }
    memset(g_ini.s, 0x31, 32);
    memset(g_ini.e, 0x32, 32);
    memset(g_resp.s, 0x41, 32);
    memset(g_resp.e, 0x42, 32);
}

static cp2p__noise *make_core(int initiator)
{
    const fixed_side *f = initiator ? &g_ini : &g_resp;
    cp2p__noise_config c;
    cp2p__noise *n = NULL;
    cp2p__noise_config_default(&c);
    c.static_key = f->s;
    c.ephemeral_key = f->e;
    c.muxers = MUXERS;
    c.n_muxers = initiator ? 2 : 1;
    c.rx_buf_max = 65519; /* the minimum: exercises backpressure */
    if (cp2p__noise_new(&c, initiator, f->identity, NULL, 0, &n) != 0) {
        abort();
    }
    return n;
}

#ifndef CP2P_NOISE_GEN_CORPUS

/* Throw away what the core queued and what it decrypted. Returns the plaintext bytes read. */
static size_t drain(cp2p__noise *n)
{
    cp2p_slice s;
    size_t k = cp2p__noise_out(n, &s);
    cp2p__noise_out_done(n, k);
    k = cp2p__noise_read(n, &s);
    if (k > 0 && s.ptr == NULL) {
        abort();
    }
    cp2p__noise_read_done(n, k);
    return k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    setup_once();
    int initiator = data[0] & 1;
    size_t piece = data[0] >> 1;
    data++;
    size--;
    cp2p__noise *n = make_core(initiator);
    drain(n); /* the initiator's message 1 */

    /* The caller's side of the contract: unconsumed bytes are kept and offered again. */
    uint8_t *pend = malloc(size + 1);
    size_t plen = 0, off = 0;
    if (pend == NULL) {
        abort();
    }
    while (off < size || plen > 0) {
        size_t k = piece == 0 ? size - off : (size - off < piece ? size - off : piece);
        memcpy(pend + plen, data + off, k);
        plen += k;
        off += k;
        const char *why = NULL;
        ptrdiff_t r = cp2p__noise_recv(n, pend, plen, 0, &why);
        if (r < 0) {
            if (why == NULL || cp2p__noise_error(n, NULL) != (int)r) {
                abort(); /* every error has a reason and is terminal */
            }
            break;
        }
        if ((size_t)r > plen) {
            abort();
        }
        memmove(pend, pend + r, plen - (size_t)r);
        plen -= (size_t)r;
        if (drain(n) == 0 && r == 0 && k == 0) {
            break; /* nothing arrives, nothing is consumed, nothing is waiting to be read */
        }
    }
    if (cp2p__noise_handshake_done(n)) {
        if (cp2p__noise_remote_peer_id(n) == NULL || cp2p__noise_remote_pubkey(n) == NULL) {
            abort();
        }
        for (size_t i = 0; i < cp2p__noise_remote_muxer_count(n); i++) {
            if (cp2p__noise_remote_muxer(n, i) == NULL) {
                abort();
            }
        }
        if (cp2p__noise_write(n, (const uint8_t *)"ping", 4) != 4) {
            abort();
        }
    }
    int trc = cp2p__noise_on_timeout(n, UINT64_MAX);
    if (trc != 0 && trc != CP2P_ETIMEDOUT) {
        abort();
    }
    drain(n);
    free(pend);
    cp2p__noise_free(n);
    return 0;
}

#else /* CP2P_NOISE_GEN_CORPUS: write the seed corpus */

#include "corpus_gen.h"

/* Move everything `from` queued into buf (appending). */
static size_t take(cp2p__noise *from, uint8_t *buf, size_t at)
{
    cp2p_slice s;
    size_t k = cp2p__noise_out(from, &s);
    memcpy(buf + at, s.ptr, k);
    cp2p__noise_out_done(from, k);
    return at + k;
}

int main(int argc, char **argv)
{
    static uint8_t to_resp[1 << 20], to_ini[1 << 20];
    size_t nr = 0, ni = 0, m1, m3;
    const char *dir = argc > 1 ? argv[1] : ".";
    setup_once();
    cp2p__noise *ini = make_core(1), *resp = make_core(0);

    nr = take(ini, to_resp, nr); /* message 1 */
    m1 = nr;
    if (cp2p__noise_recv(resp, to_resp, nr, 0, NULL) != (ptrdiff_t)nr) {
        abort();
    }
    ni = take(resp, to_ini, ni); /* message 2 */
    if (cp2p__noise_recv(ini, to_ini, ni, 0, NULL) != (ptrdiff_t)ni) {
        abort();
    }
    nr = take(ini, to_resp, nr); /* message 3 */
    m3 = nr;
    if (cp2p__noise_recv(resp, to_resp + m1, m3 - m1, 0, NULL) != (ptrdiff_t)(m3 - m1)) {
        abort();
    }
    if (cp2p__noise_write(ini, (const uint8_t *)"hello", 5) != 5 ||
        cp2p__noise_write(resp, (const uint8_t *)"world!", 6) != 6) {
        abort();
    }
    nr = take(ini, to_resp, nr);
    ni = take(resp, to_ini, ni);

    corpus_put(dir, "resp_msg1", 0, to_resp, m1);
    corpus_put(dir, "resp_msg1_msg3", 0, to_resp, m3);
    corpus_put(dir, "resp_full", 0, to_resp, nr);
    corpus_put(dir, "resp_full_pieces7", 7 << 1, to_resp, nr);
    corpus_put(dir, "ini_msg2", 1, to_ini, ni - (2 + 6 + 16));
    corpus_put(dir, "ini_full", 1, to_ini, ni);
    corpus_put(dir, "ini_full_pieces1", 1 | (1 << 1), to_ini, ni);
    corpus_put(dir, "resp_garbage_http", 0, (const uint8_t *)"GET / HTTP/1.1\r\n\r\n", 18);
    corpus_put(dir, "resp_short_msg1", 0, (const uint8_t *)"\x00\x05hello", 7);
    cp2p__noise_free(ini);
    cp2p__noise_free(resp);
    return 0;
}

#endif
