/* Fuzz a Kademlia operation (kad_op.c) with the answers peers send: every operation type, each
 * driven as kad_uv.c drives it. Input: byte 0 picks the type and GET's quorum; then a script of
 * steps, each one byte (what happens: an answer, a failure, a stored result, time passing) and,
 * for answers, a uvarint-length-prefixed body decoded with cp2p__kad_msg_decode as the binding
 * does. Answers go to peers the op asked (or strangers, which it must ignore). Checks: the op
 * never hands out more than k store messages nor more lookup requests than peers it heard of,
 * ends with a known status, and its results stay within their bounds. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cp2p/codec.h>

#include "protocols/kad/kad_op.h"
#include "util/frame.h"
#include "util/limits.h"

#define FAIL()                                                                                \
    do {                                                                                      \
        fprintf(stderr, "fuzz_kad_op: check at line %d failed\n", __LINE__);                 \
        abort();                                                                              \
    } while (0)

#define K 4
#define ASKED_MAX 512

static cp2p_peer_id make_id(uint8_t n)
{
    static const uint8_t HDR[6] = {0x00, 0x24, 0x08, 0x01, 0x12, 0x20};
    cp2p_peer_id p;
    memset(&p, 0, sizeof(p));
    memcpy(p.bytes, HDR, 6);
    memset(p.bytes + 6, n, 32);
    p.len = 38;
    return p;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    static const uint8_t key[] = "/v/fuzz";
    cp2p__kad_op_type type = (cp2p__kad_op_type)(data[0] % 7);
    cp2p__kad_op_config cfg = {.quorum = data[0] >> 4, .max_providers = 3};
    cp2p__kad_lookup_config_default(&cfg.lookup);
    cfg.lookup.k = K;
    cfg.lookup.alpha = 3;
    cfg.lookup.query_timeout_ms = 100;
    cfg.lookup.timeout_ms = 1000;
    cp2p_peer_id self = make_id(0);
    cp2p__kad_op *op;
    if (cp2p__kad_op_new(type, key, sizeof(key) - 1, &self, &cfg, 0, &op) != 0) {
        FAIL();
    }
    for (uint8_t i = 1; i <= 3; i++) {
        cp2p_peer_id p = make_id(i);
        if (cp2p__kad_op_seed(op, &p) != 0) {
            FAIL();
        }
    }
    cp2p_peer_id asked[ASKED_MAX];
    bool asked_store[ASKED_MAX];
    size_t nasked = 0, nstore = 0;
    uint64_t now = 0;
    size_t off = 1;
    int status;
    while (!cp2p__kad_op_done(op, &status)) {
        cp2p__kad_op_send snd;
        while (nasked < ASKED_MAX && cp2p__kad_op_next(op, now, &snd)) {
            asked[nasked] = snd.peer;
            asked_store[nasked++] = snd.store;
            nstore += snd.store;
        }
        if (nstore > K || off >= size) {
            break;
        }
        uint8_t step = data[off++];
        cp2p_peer_id who = nasked > 0 && (step & 0x80) == 0 ? asked[(step >> 2) % nasked]
                                                             : make_id((uint8_t)(step | 0x80));
        bool store = nasked > 0 && (step & 0x80) == 0 && asked_store[(step >> 2) % nasked];
        switch (step & 3) {
        case 0: { /* an answer */
            cp2p_slice body;
            const char *why = NULL;
            ptrdiff_t used = cp2p__frame_decode(data + off, size - off, CP2P_KAD_MAX_MSG, &body,
                                                &why);
            if (used <= 0) {
                off = size;
                break;
            }
            off += (size_t)used;
            cp2p__kad_msg m;
            if (cp2p__kad_msg_decode(body.ptr, body.len, &m, &why) != 0) {
                cp2p__kad_op_on_failure(op, &who, store, now);
                break;
            }
            if (store) {
                cp2p__kad_op_on_stored(op, &who, m.type == CP2P__KAD_PUT_VALUE);
            } else {
                bool ok = m.has_record && m.record.value_len > 0 && m.record.value[0] != 'X';
                (void)!cp2p__kad_op_on_answer(op, &who, &m, ok, now);
            }
            cp2p__kad_msg_fini(&m);
            break;
        }
        case 1:
            cp2p__kad_op_on_failure(op, &who, store, now);
            break;
        case 2:
            cp2p__kad_op_on_stored(op, &who, (step & 0x40) != 0);
            break;
        default: {
            cp2p_peer_id out[8];
            now += (uint64_t)(step >> 2) * 10;
            if (cp2p__kad_op_tick(op, now, out, 8) > 8) {
                FAIL();
            }
            break;
        }
        }
    }
    if (nstore > K) {
        FAIL();
    }
    if (cp2p__kad_op_done(op, &status) && status != 0 && status != CP2P_ENOENT &&
        status != CP2P_ETIMEDOUT && status != CP2P_ENOMEM) {
        FAIL();
    }
    const uint8_t *vals[CP2P_KAD_MAX_VALUES_PER_GET + 1];
    size_t lens[CP2P_KAD_MAX_VALUES_PER_GET + 1], np;
    if (cp2p__kad_op_values(op, vals, lens, CP2P_KAD_MAX_VALUES_PER_GET + 1) >
            CP2P_KAD_MAX_VALUES_PER_GET ||
        (cp2p__kad_op_providers(op, &np), np > 3) || cp2p__kad_op_stored(op) > K) {
        FAIL();
    }
    cp2p__kad_op_free(op);
    return 0;
}
