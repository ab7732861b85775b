/* Fuzz the connection core (src/swarm/conn_core.c) with the remote's bytes in every stage.
 *
 * Input: byte 0 chooses the stage and how the bytes arrive:
 *   bits 0-2  stage (mod 6), the core's role, and what the rest of the input is:
 *             0  listener, from the start: the dialer's raw byte stream;
 *             1  dialer, from the start: the listener's raw byte stream;
 *             2  listener in NOISE (/noise agreed by a scripted dialer): raw Noise messages;
 *             3  listener in MUX_NEG (a scripted Noise initiator that inlines no muxer):
 *                plaintext, which the scripted peer encrypts, for multistream-select;
 *             4  listener OPEN (the scripted initiator inlines yamux): plaintext yamux frames;
 *             5  dialer OPEN (a scripted responder inlines yamux): plaintext yamux frames;
 *   bits 3-7  0: everything in one piece, through input() + process(); k: pieces of 8k bytes,
 *             as a socket would deliver them, through feed() (processed in place, a cut frame
 *             held), the binding's path.
 * After the input the core's output is drained and its timers run to their deadlines, so the
 * answers (GoAways, window updates, pongs) and the timeouts are exercised too. Keys are fixed:
 * a recorded exchange replays byte for byte, so the corpus reaches past the handshake.
 *
 * The corpus in tests/fuzz/corpus/conn_core/ is written by this file's generator:
 *   cc -std=c11 -D_DEFAULT_SOURCE -DCP2P_CONN_CORE_GEN_CORPUS -Iinclude -Isrc -I$BUILD/proto \
 *      tests/fuzz/fuzz_conn_core.c $BUILD/libcp2p.a $(pkg-config --libs libuv libsodium \
 *      libsecp256k1 libprotobuf-c sqlite3 libmicrohttpd jansson) -lpthread -lm \
 *      -o gen && ./gen tests/fuzz/corpus/conn_core
 * It is deterministic: running it again rewrites the same files. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cp2p/keys.h>
#include <cp2p/log.h>

#include "crypto/noise/noise.h"
#include "swarm/conn_core.h"

#define HDR "\x13/multistream/1.0.0\n"
#define NOISE_PROP "\x07/noise\n"

static const char *const YAMUX[] = {CP2P__CONN_YAMUX_ID};

typedef struct fixed_side {
    cp2p_privkey *identity;
    cp2p_peer_id peer;
    uint8_t s[32], e[32];
} fixed_side;

static fixed_side g_dialer, g_listener;
static uint8_t g_out[1 << 18];

static void side_init(fixed_side *f, uint8_t b)
{
    uint8_t seed[32];
    memset(seed, b, sizeof(seed));
    if (cp2p_privkey_from_seed(CP2P_KEY_ED25519, seed, &f->identity) != 0 ||
        cp2p_peer_id_from_pubkey(cp2p_privkey_public(f->identity), &f->peer) != 0) {
        abort();
    }
    memset(f->s, b + 1, 32);
    memset(f->e, b + 2, 32);
}

static void setup_once(void)
{
    static int done;
    if (!done) {
        done = 1;
        cp2p_log_set_level(CP2P_LOG_OFF);
        side_init(&g_dialer, 0x10);
        side_init(&g_listener, 0x20);
    }
}

static cp2p__conn_core *make_core(int outbound)
{
    const fixed_side *f = outbound ? &g_dialer : &g_listener;
    cp2p__conn_core_config cfg;
    cp2p__conn_core *c = NULL;
    cp2p__conn_core_config_default(&cfg);
    cfg.outbound = outbound;
    cfg.identity = f->identity;
    cfg.noise_static_key = f->s;
    cfg.noise_ephemeral_key = f->e;
    cfg.keepalive_ms = 1000;
    cfg.upgrade_timeout_ms = 5000;
    if (cp2p__conn_core_new(&cfg, 0, &c) != 0) {
        abort();
    }
    return c;
}

/* Everything the core sends now; returns its length (kept in g_out). An error is terminal. */
static size_t drain(cp2p__conn_core *c)
{
    size_t n = 0;
    cp2p_slice sl;
    if (cp2p__conn_core_flush(c, true) != 0) {
        return 0;
    }
    while (cp2p__conn_core_out(c, &sl) > 0) {
        size_t k = sl.len < sizeof(g_out) - n ? sl.len : sizeof(g_out) - n;
        memcpy(g_out + n, sl.ptr, k);
        n += k;
        cp2p__conn_core_out_done(c, sl.len);
        if (cp2p__conn_core_flush(c, true) != 0) {
            break;
        }
    }
    return n;
}

static int g_in_place;

/* Feed bytes; returns the process result (<0: the core failed, as it must stay). */
static int feed(cp2p__conn_core *c, const uint8_t *p, size_t len, uint64_t now)
{
    const char *why = NULL;
    int rc;
    if (g_in_place) {
        rc = cp2p__conn_core_feed(c, p, len, now, &why);
    } else if ((rc = cp2p__conn_core_input(c, p, len)) == 0) {
        rc = cp2p__conn_core_process(c, now, &why);
    } else {
        return rc;
    }
    if (rc < 0 && (why == NULL || cp2p__conn_core_stage(c) != CP2P__CONN_FAILED)) {
        abort(); /* every error has a reason and is terminal */
    }
    return rc;
}

/* Bring `c` through /noise with a scripted peer, in the clear. */
static void script_sec_neg(cp2p__conn_core *c, int outbound)
{
    static const uint8_t msgs[] = HDR NOISE_PROP;
    (void)drain(c);
    if (feed(c, msgs, sizeof(msgs) - 1, 0) < 0) {
        abort();
    }
    if (!outbound) {
        (void)drain(c); /* the echo; a dialer's Noise message 1 is left for the peer */
    }
}

/* Complete the Noise handshake between `c` and a scripted peer session (returned). */
static cp2p__noise *script_noise(cp2p__conn_core *c, int core_outbound, int inline_muxer)
{
    const fixed_side *f = core_outbound ? &g_listener : &g_dialer;
    cp2p__noise_config nc;
    cp2p__noise *peer = NULL;
    cp2p__noise_config_default(&nc);
    nc.static_key = f->s;
    nc.ephemeral_key = f->e;
    if (inline_muxer) {
        nc.muxers = YAMUX;
        nc.n_muxers = 1;
    }
    if (cp2p__noise_new(&nc, !core_outbound, f->identity, NULL, 0, &peer) != 0) {
        abort();
    }
    for (int round = 0; round < 4; round++) {
        cp2p_slice sl;
        const char *why = NULL;
        while (cp2p__noise_out(peer, &sl) > 0) {
            if (feed(c, sl.ptr, sl.len, 0) < 0) {
                abort();
            }
            cp2p__noise_out_done(peer, sl.len);
        }
        size_t n = drain(c);
        if (n > 0 && cp2p__noise_recv(peer, g_out, n, 0, &why) != (ptrdiff_t)n) {
            abort();
        }
        /* Throw away what the core sent inside Noise (its multistream header). */
        while (cp2p__noise_read(peer, &sl) > 0) {
            cp2p__noise_read_done(peer, sl.len);
        }
    }
    if (!cp2p__noise_handshake_done(peer)) {
        abort();
    }
    return peer;
}

/* The scripted peer's plaintext, encrypted. Returns bytes in g_wire. */
static uint8_t g_wire[1 << 18];
__attribute__((unused)) static size_t seal(cp2p__noise *peer, const uint8_t *p, size_t len)
{
    size_t n = 0;
    while (len > 0) {
        ptrdiff_t w = cp2p__noise_write(peer, p, len);
        if (w <= 0) {
            abort();
        }
        p += w;
        len -= (size_t)w;
        cp2p_slice sl;
        while (cp2p__noise_out(peer, &sl) > 0) {
            if (n + sl.len > sizeof(g_wire)) {
                abort();
            }
            memcpy(g_wire + n, sl.ptr, sl.len);
            n += sl.len;
            cp2p__noise_out_done(peer, sl.len);
        }
    }
    return n;
}

/* Build a core in `stage` (see the header); *peer is the scripted Noise session (stages 3-5). */
__attribute__((unused)) static cp2p__conn_core *prepare(unsigned stage, cp2p__noise **peer)
{
    int outbound = stage == 1 || stage == 5;
    cp2p__conn_core *c = make_core(outbound);
    *peer = NULL;
    if (stage >= 2) {
        script_sec_neg(c, outbound);
    }
    if (stage >= 3) {
        *peer = script_noise(c, outbound, stage != 3);
        if (cp2p__conn_core_stage(c) != (stage == 3 ? CP2P__CONN_MUX_NEG : CP2P__CONN_OPEN)) {
            abort();
        }
    }
    return c;
}

#ifndef CP2P_CONN_CORE_GEN_CORPUS

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    setup_once();
    unsigned stage = (data[0] & 7) % 6;
    size_t piece = (size_t)(data[0] >> 3) * 8;
    data++;
    size--;
    cp2p__noise *peer = NULL;
    g_in_place = 0;
    cp2p__conn_core *c = prepare(stage, &peer);
    g_in_place = piece != 0;
    uint64_t now = 1;
    int rc = 0;
    for (size_t off = 0; off < size && rc >= 0;) {
        size_t k = piece == 0 || size - off < piece ? size - off : piece;
        if (peer != NULL) {
            size_t n = seal(peer, data + off, k);
            rc = feed(c, g_wire, n, now);
        } else {
            rc = feed(c, data + off, k, now);
        }
        off += k;
        (void)drain(c);
        if (cp2p__conn_core_yamux(c) != NULL) {
            cp2p__yamux_event ev;
            while (cp2p__yamux_next_event(cp2p__conn_core_yamux(c), &ev)) {
                if (ev.type == CP2P__YAMUX_EV_STREAM_OPENED) {
                    (void)!cp2p__yamux_stream_accept(ev.stream);
                } else if (ev.type == CP2P__YAMUX_EV_STREAM_RESET) {
                    cp2p__yamux_stream_release(ev.stream);
                }
            }
        }
        now += 10;
    }
    cp2p__conn_event_type ev;
    while (cp2p__conn_core_next_event(c, &ev)) {
        if (ev == CP2P__CONN_EV_SECURED && cp2p__conn_core_remote_peer(c) == NULL) {
            abort();
        }
    }
    /* Timers: a few deadlines in turn (keepalive, ping timeout, upgrade timeout). */
    for (int i = 0; i < 4; i++) {
        const char *why = NULL;
        uint64_t d = cp2p__conn_core_deadline(c);
        if (d == UINT64_MAX) {
            break;
        }
        if (cp2p__conn_core_on_timeout(c, d > now ? d : now, &why) != 0 && why == NULL) {
            abort();
        }
        now = d > now ? d : now;
        (void)drain(c);
    }
    cp2p__conn_core_free(c);
    cp2p__noise_free(peer);
    return 0;
}

#else /* the corpus generator */

#include "corpus_gen.h"

/* One honest exchange between two cores; records each side's stream. */
static uint8_t g_log[2][1 << 14];
static size_t g_log_len[2];
static void record_exchange(void)
{
    cp2p__conn_core *side[2] = {make_core(1), make_core(0)};
    for (int round = 0; round < 20; round++) {
        size_t moved = 0;
        for (int i = 0; i < 2; i++) {
            size_t n = drain(side[i]);
            memcpy(g_log[i] + g_log_len[i], g_out, n);
            g_log_len[i] += n;
            if (n > 0 && feed(side[!i], g_out, n, 0) < 0) {
                abort();
            }
            moved += n;
        }
        if (moved == 0) {
            break;
        }
    }
    cp2p__conn_core_free(side[0]);
    cp2p__conn_core_free(side[1]);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        return 2;
    }
    setup_once();
    record_exchange();
    static const uint8_t mss_len = sizeof(HDR NOISE_PROP) - 1;
    /* 0: the dialer's stream, whole and in 8-byte pieces; 1: the listener's. */
    corpus_put(argv[1], "listener_whole", 0, g_log[0], g_log_len[0]);
    corpus_put(argv[1], "listener_pieces", 0 | (1 << 3), g_log[0], g_log_len[0]);
    corpus_put(argv[1], "dialer_whole", 1, g_log[1], g_log_len[1]);
    /* 2: the dialer's Noise messages after the multistream part. */
    corpus_put(argv[1], "noise_messages", 2, g_log[0] + mss_len, g_log_len[0] - mss_len);
    /* 3: the muxer negotiation, then a yamux ping. */
    static const uint8_t mux[] = HDR "\x0d/yamux/1.0.0\n"
                                     "\x00\x02\x00\x01\x00\x00\x00\x00\x00\x00\x00\x07";
    corpus_put(argv[1], "mux_neg", 3, mux, sizeof(mux) - 1);
    corpus_put(argv[1], "mux_na", 3, (const uint8_t *)HDR "\x09/mplex/1\n", sizeof(HDR) + 9);
    /* 4 and 5: yamux frames: a SYN with data on a stream of the peer's parity, a window
     * update, a ping, a FIN, a GoAway. */
    static const uint8_t frames_from_dialer[] =
        "\x00\x00\x00\x01\x00\x00\x00\x01\x00\x00\x00\x05hello"
        "\x00\x01\x00\x00\x00\x00\x00\x01\x00\x01\x00\x00"
        "\x00\x02\x00\x01\x00\x00\x00\x00\x00\x00\x00\x09"
        "\x00\x00\x00\x04\x00\x00\x00\x01\x00\x00\x00\x00"
        "\x00\x03\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00";
    static const uint8_t frames_from_listener[] =
        "\x00\x00\x00\x01\x00\x00\x00\x02\x00\x00\x00\x05hello"
        "\x00\x02\x00\x01\x00\x00\x00\x00\x00\x00\x00\x09"
        "\x00\x00\x00\x08\x00\x00\x00\x02\x00\x00\x00\x00";
    corpus_put(argv[1], "yamux_to_listener", 4, frames_from_dialer,
               sizeof(frames_from_dialer) - 1);
    corpus_put(argv[1], "yamux_to_dialer", 5, frames_from_listener,
               sizeof(frames_from_listener) - 1);
    corpus_put(argv[1], "yamux_pieces", 4 | (2 << 3), frames_from_dialer,
               sizeof(frames_from_dialer) - 1);
    return 0;
}

#endif
