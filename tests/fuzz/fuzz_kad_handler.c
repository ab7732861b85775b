/* Fuzz the DHT's request handler (cp2p__kad_handler_request in src/protocols/kad/
 * kad_handler.c), which answers every request a peer sends on an inbound kad stream, over a
 * small routing table, a fresh store and a fixed directory, as the binding drives it.
 *
 * Input: byte 0 picks the requester (one of the table's peers or a stranger); the rest
 * is the stream, read frame after frame with cp2p__frame_decode as kad_uv.c does, each frame
 * handed to the handler until one is refused (the binding then resets the stream). Checks: an
 * error comes with a reason and no output; an answer is exactly one frame that decodes, of the
 * request's type, with at most k closer peers (k + 1 for a FIND_NODE naming a known peer), never
 * the requester, and at most CP2P_KAD_MAX_PROVIDERS_ANSWER providers; ADD_PROVIDER alone is
 * answered with nothing; the counters add up. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cp2p/codec.h>
#include <cp2p/multiaddr.h>

#include "protocols/kad/kad_handler.h"
#include "util/frame.h"
#include "util/limits.h"

#define NPEERS 24
#define K 8
/* Which check failed, for whoever reads the crash. */
#define FAIL()                                                                                \
    do {                                                                                      \
        fprintf(stderr, "fuzz_kad_handler: check at line %d failed\n", __LINE__);            \
        abort();                                                                              \
    } while (0)

static cp2p_peer_id self, peers[NPEERS];
static cp2p_multiaddr *addr;
static cp2p__kad_rt *rt;

/* Peers with an even last byte have an address; the first half is connected. */
static size_t d_addrs(void *ud, const cp2p_peer_id *p, const cp2p_multiaddr **out, size_t max)
{
    (void)ud;
    if (max == 0 || p->len == 0 || (p->bytes[p->len - 1] & 1) != 0) {
        return 0;
    }
    out[0] = addr;
    return 1;
}

static bool d_known(void *ud, const cp2p_peer_id *p)
{
    return d_addrs(ud, p, (const cp2p_multiaddr *[1]){NULL}, 1) > 0;
}

static bool d_connected(void *ud, const cp2p_peer_id *p)
{
    (void)ud;
    return p->len > 0 && p->bytes[p->len - 1] < 128;
}

static size_t d_self_addrs(void *ud, cp2p_multiaddr **out, size_t max)
{
    (void)ud;
    return max > 0 && cp2p_multiaddr_dup(addr, &out[0]) == 0 ? 1 : 0;
}

static void d_learn(void *ud, const cp2p__kad_peer *p)
{
    (void)ud;
    if (p->n_addrs > CP2P_KAD_MAX_ADDRS_PER_PEER) {
        FAIL();
    }
}

static int accept_any(void *ud, const uint8_t *key, size_t key_len, const uint8_t *value,
                      size_t value_len)
{
    (void)ud, (void)key, (void)key_len, (void)value;
    return value_len > 0 && value[0] == 'X' ? CP2P_EPROTO : 0;
}

static void init_once(void)
{
    static const uint8_t HDR[6] = {0x00, 0x24, 0x08, 0x01, 0x12, 0x20};
    for (size_t i = 0; i <= NPEERS; i++) {
        cp2p_peer_id *p = i < NPEERS ? &peers[i] : &self;
        memset(p, 0, sizeof(*p));
        memcpy(p->bytes, HDR, 6);
        for (size_t j = 6; j < 38; j++) {
            p->bytes[j] = (uint8_t)(i * 37 + j * 11 + (j == 37 ? i : 0));
        }
        p->len = 38;
    }
    if (cp2p_multiaddr_parse("/ip4/10.1.2.3/tcp/4001", 22, &addr) != 0) {
        FAIL();
    }
    cp2p__kad_rt_config rc;
    cp2p__kad_rt_config_default(&rc);
    rc.k = K;
    if (cp2p__kad_rt_new(&self, &rc, &rt) != 0) {
        FAIL();
    }
    for (size_t i = 0; i < NPEERS; i++) {
        cp2p_peer_id chk;
        if (cp2p__kad_rt_add(rt, &peers[i], NULL, 0, &chk) < 0) {
            FAIL();
        }
    }
}

static bool has_peer(const cp2p__kad_peer *ps, size_t n, const cp2p_peer_id *p)
{
    for (size_t i = 0; i < n; i++) {
        if (cp2p_peer_id_equal(&ps[i].id, p)) {
            return true;
        }
    }
    return false;
}

static void check_answer(const cp2p_buf *out, const cp2p_peer_id *from, cp2p__kad_type type)
{
    uint64_t blen;
    ptrdiff_t used = cp2p_uvarint_decode(out->ptr, out->len, &blen);
    cp2p__kad_msg a;
    const char *why = NULL;
    if (used <= 0 || (size_t)used + blen != out->len ||
        cp2p__kad_msg_decode(out->ptr + used, (size_t)blen, &a, &why) != 0) {
        FAIL();
    }
    if (a.type != type || a.n_closer > K + 1 || has_peer(a.closer, a.n_closer, from) ||
        a.n_providers > CP2P_KAD_MAX_PROVIDERS_ANSWER || a.dropped_peers != 0) {
        FAIL();
    }
    cp2p__kad_msg_fini(&a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    if (!ready) {
        init_once();
        ready = true;
    }
    if (size == 0) {
        return 0;
    }
    cp2p_peer_id stranger = peers[0];
    stranger.bytes[20] ^= 0x5a; /* nobody we know */
    /* Never us: the host does not connect to itself. */
    unsigned pick = data[0] % (NPEERS + 1);
    const cp2p_peer_id *from = pick < NPEERS ? &peers[pick] : &stranger;
    cp2p__kad_store_config sc;
    cp2p__kad_store_config_default(&sc);
    sc.max_records = 4;
    sc.max_provider_keys = 4;
    cp2p__kad_store *store = NULL;
    cp2p__kad_handler *h = NULL;
    cp2p__kad_dir dir = {.addrs = d_addrs,
                         .known = d_known,
                         .connected = d_connected,
                         .self_addrs = d_self_addrs,
                         .learn = d_learn};
    cp2p__kad_handler_config hc = {.self = self, .k = K, .requests_per_sec = 5,
                                   .requests_burst = 16};
    if (cp2p__kad_store_new(&sc, &store) != 0 ||
        cp2p__kad_store_add_validator(store, "v", accept_any, NULL, NULL) != 0 ||
        cp2p__kad_handler_new(&hc, rt, store, &dir, &h) != 0) {
        FAIL();
    }
    const uint8_t *in = data + 1;
    size_t len = size - 1;
    uint64_t now = 1000, frames = 0, answers = 0, silent = 0;
    cp2p_buf out;
    cp2p_buf_init(&out, CP2P_KAD_MAX_MSG + CP2P_UVARINT_MAX);
    for (;;) {
        cp2p_slice frm;
        const char *why = NULL;
        ptrdiff_t used = cp2p__frame_decode(in, len, CP2P_KAD_MAX_MSG, &frm, &why);
        if (used <= 0) {
            break;
        }
        /* The type the answer must carry, when the frame decodes at all. */
        cp2p__kad_msg req;
        cp2p__kad_type type = CP2P__KAD_PING;
        if (cp2p__kad_msg_decode(frm.ptr, frm.len, &req, &why) == 0) {
            type = req.type;
            cp2p__kad_msg_fini(&req);
        }
        frames++;
        int rc = cp2p__kad_handler_request(h, from, frm.ptr, frm.len, now, &out, &why);
        if (rc < 0) {
            if (why == NULL || out.len != 0) {
                FAIL();
            }
            break;
        }
        if (rc == 1) {
            check_answer(&out, from, type);
            answers++;
        } else if (rc == 0) {
            if (type != CP2P__KAD_ADD_PROVIDER || out.len != 0) {
                FAIL();
            }
            silent++;
        } else {
            FAIL();
        }
        in += used;
        len -= (size_t)used;
        now += 50;
    }
    cp2p__kad_handler_stats st;
    cp2p__kad_handler_stats_get(h, &st);
    if (st.requests_in != frames || st.answers != answers ||
        st.requests_in != answers + silent + st.refused_rate + st.bad) {
        FAIL();
    }
    cp2p_buf_fini(&out);
    cp2p__kad_handler_free(h);
    cp2p__kad_store_free(store);
    return 0;
}
