/* Fuzz the transport phase of the Noise core (src/crypto/noise/noise.c): an established session
 * is fed the remote's transport frames.
 *
 * Input: byte 0 chooses the receiver and how the bytes arrive:
 *   bit 0    0: the responder receives (the input is the initiator's frames);
 *            1: the initiator receives (the input is the responder's frames);
 *   bits 1-7 0: everything in one call; k: delivered in pieces of k bytes, and the reader
 *               drains at most k * 251 bytes between calls (exercising backpressure).
 * The rest is the remote's byte stream. Keys are fixed, so the session keys are the same in every
 * run and recorded frames stay valid: the corpus decrypts, and mutations probe the framing and
 * authentication. The receiver echoes what it reads back through cp2p__noise_writev.
 *
 * The corpus in tests/fuzz/corpus/noise_frame/ was made by this file's generator:
 *   cc -std=c11 -D_DEFAULT_SOURCE -DCP2P_NOISE_GEN_CORPUS -Iinclude -Isrc -I$BUILD/proto \
 *      tests/fuzz/fuzz_noise_frame.c $BUILD/libcp2p.a -lsodium -lsecp256k1 -lprotobuf-c -lpthread \
 *      -o gen && ./gen tests/fuzz/corpus/noise_frame
 * It is deterministic: running it again rewrites the same files.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cp2p/keys.h>
#include <cp2p/log.h>

#include "crypto/noise/noise.h"

static cp2p_privkey *g_id[2];

static void setup_once(void)
{
    static int done;
    uint8_t seed[32];
    if (done) {
        return;
    }
    done = 1;
    cp2p_log_set_level(CP2P_LOG_OFF);
    memset(seed, 0x03, sizeof(seed));
    if (cp2p_privkey_from_seed(CP2P_KEY_ED25519, seed, &g_id[0]) != 0) {
        abort();
    }
    memset(seed, 0x04, sizeof(seed));
    if (cp2p_privkey_from_seed(CP2P_KEY_ED25519, seed, &g_id[1]) != 0) {
        abort();
    }
}

static void move_all(cp2p__noise *from, cp2p__noise *to)
{
    cp2p_slice s;
    size_t k = cp2p__noise_out(from, &s);
    if (cp2p__noise_recv(to, s.ptr, k, 0, NULL) != (ptrdiff_t)k) {
        abort();
    }
    cp2p__noise_out_done(from, k);
}

/* An established pair with fixed keys: p[0] the initiator, p[1] the responder. */
static void make_pair(cp2p__noise *p[2])
{
    uint8_t s[2][32], e[2][32];
    for (int i = 0; i < 2; i++) {
        cp2p__noise_config c;
        memset(s[i], 0x50 + i, 32);
        memset(e[i], 0x60 + i, 32);
        cp2p__noise_config_default(&c);
        c.static_key = s[i];
        c.ephemeral_key = e[i];
        c.rx_buf_max = 65519; /* the minimum */
        c.tx_buf_max = 2 + 65535;
        if (cp2p__noise_new(&c, i == 0, g_id[i], NULL, 0, &p[i]) != 0) {
            abort();
        }
    }
    move_all(p[0], p[1]);
    move_all(p[1], p[0]);
    move_all(p[0], p[1]);
    if (!cp2p__noise_handshake_done(p[0]) || !cp2p__noise_handshake_done(p[1])) {
        abort();
    }
}

#ifndef CP2P_NOISE_GEN_CORPUS

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cp2p__noise *p[2];
    if (size < 1) {
        return 0;
    }
    setup_once();
    make_pair(p);
    cp2p__noise *rx = p[data[0] & 1 ? 0 : 1];
    size_t piece = data[0] >> 1;
    size_t read_max = piece == 0 ? SIZE_MAX : piece * 251;
    data++;
    size--;

    uint8_t *pend = malloc(size + 1);
    size_t plen = 0, off = 0;
    if (pend == NULL) {
        abort();
    }
    for (;;) {
        size_t k = piece == 0 ? size - off : (size - off < piece ? size - off : piece);
        memcpy(pend + plen, data + off, k);
        plen += k;
        off += k;
        const char *why = NULL;
        ptrdiff_t r = cp2p__noise_recv(rx, pend, plen, 0, &why);
        if (r < 0) {
            if (why == NULL || cp2p__noise_error(rx, NULL) != (int)r) {
                abort();
            }
            break;
        }
        if ((size_t)r > plen) {
            abort();
        }
        memmove(pend, pend + r, plen - (size_t)r);
        plen -= (size_t)r;
        /* Read some, echo it back in two slices, send it. */
        cp2p_slice in;
        size_t got = cp2p__noise_read(rx, &in);
        if (got > read_max) {
            got = read_max;
        }
        if (got > 0) {
            cp2p_slice iov[2] = {{in.ptr, got / 2}, {in.ptr + got / 2, got - got / 2}};
            ptrdiff_t w = cp2p__noise_writev(rx, iov, 2);
            if (w < 0 || (size_t)w > got) {
                abort();
            }
            cp2p__noise_read_done(rx, got);
        }
        cp2p_slice out;
        cp2p__noise_out_done(rx, cp2p__noise_out(rx, &out));
        if (r == 0 && k == 0 && got == 0) {
            break;
        }
    }
    free(pend);
    cp2p__noise_free(p[0]);
    cp2p__noise_free(p[1]);
    return 0;
}

#else /* CP2P_NOISE_GEN_CORPUS: write the seed corpus */

static void put(const char *dir, const char *name, uint8_t mode, const uint8_t *a, size_t alen,
                const uint8_t *b, size_t blen)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(&mode, 1, 1, f) != 1 || fwrite(a, 1, alen, f) != alen ||
        (blen > 0 && fwrite(b, 1, blen, f) != blen)) {
        abort();
    }
    fclose(f);
}

/* Frames `from` sends for `len` bytes of `msg`, appended to buf. */
static size_t frames(cp2p__noise *from, const uint8_t *msg, size_t len, uint8_t *buf, size_t at)
{
    size_t done = 0;
    while (done < len) {
        ptrdiff_t w = cp2p__noise_write(from, msg + done, len - done);
        if (w < 0) {
            abort();
        }
        done += (size_t)w;
        cp2p_slice s;
        size_t k = cp2p__noise_out(from, &s);
        memcpy(buf + at, s.ptr, k);
        at += k;
        cp2p__noise_out_done(from, k);
    }
    return at;
}

int main(int argc, char **argv)
{
    static uint8_t wire[1 << 20], big[70000];
    const char *dir = argc > 1 ? argv[1] : ".";
    cp2p__noise *p[2];
    size_t n;
    setup_once();
    for (size_t i = 0; i < sizeof(big); i++) {
        big[i] = (uint8_t)(i * 7);
    }

    make_pair(p);
    n = frames(p[0], (const uint8_t *)"hello", 5, wire, 0);
    put(dir, "to_resp_one", 0, wire, n, NULL, 0);
    n = frames(p[0], (const uint8_t *)"/yamux/1.0.0\n", 13, wire, 0);
    n = frames(p[0], (const uint8_t *)"second frame", 12, wire, n);
    put(dir, "to_resp_wrong_nonce", 0, wire, n, NULL, 0);
    cp2p__noise_free(p[0]);
    cp2p__noise_free(p[1]);

    make_pair(p);
    n = frames(p[0], (const uint8_t *)"a", 1, wire, 0);
    n = frames(p[0], (const uint8_t *)"bb", 2, wire, n);
    n = frames(p[0], (const uint8_t *)"ccc", 3, wire, n);
    put(dir, "to_resp_three", 0, wire, n, NULL, 0);
    put(dir, "to_resp_three_pieces3", 3 << 1, wire, n, NULL, 0);
    cp2p__noise_free(p[0]);
    cp2p__noise_free(p[1]);

    make_pair(p);
    n = frames(p[1], big, 70000, wire, 0); /* a full frame and a short one */
    put(dir, "to_ini_full_frame", 1, wire, n, NULL, 0); /* also backpressure: rx holds 65519 */
    cp2p__noise_free(p[0]);
    cp2p__noise_free(p[1]);

    put(dir, "short_frame", 0, (const uint8_t *)"\x00\x0f" "0123456789abcde", 17, NULL, 0);
    put(dir, "empty_frame", 0, (const uint8_t *)"\x00\x00", 2, NULL, 0);
    return 0;
}

#endif
