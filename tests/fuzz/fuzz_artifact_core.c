/* Fuzz the artifact core (src/flows/art_core.c) with remote bytes: the input is a sequence of
 * frames (uint16 little-endian length, then the body) from two peers (the length's top bit
 * picks the peer), fed on a clock that advances with each frame, with the core's own output
 * and events drained and answered (serves answered with zeros, completions stored). One
 * artifact is held at the start so that requests find something to serve. Invariants: no
 * crash, no leak (ASan), every table within its bound. */
#include <stdlib.h>
#include <string.h>

#include "flows/art_core.h"
#include "util/limits.h"

static void drain(cp2p__art_core *c, uint64_t now)
{
    cp2p_buf b;
    cp2p_peer_id p;
    cp2p__art_event ev;
    cp2p_buf_init(&b, CP2P_ART_MAX_FRAME);
    while (cp2p__art_core_next_dirty(c, &p)) {
        while (cp2p__art_core_take_frame(c, &p, &b)) {
            if (b.len > CP2P_ART_MAX_FRAME) {
                abort();
            }
        }
    }
    while (cp2p__art_core_poll_event(c, &ev)) {
        if (ev.kind == CP2P_ART_EV_SERVE) {
            uint8_t *z = calloc(1, ev.len ? ev.len : 1);
            (void)!cp2p__art_core_serve_reply(c, &ev.peer, ev.id, ev.id_len, ev.index, z, ev.len);
            free(z);
        } else if (ev.kind == CP2P_ART_EV_COMPLETE) {
            (void)!cp2p__art_core_stored(c, ev.id, ev.id_len, ev.size % 2 == 0, now);
        }
    }
    cp2p_buf_fini(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cp2p__art_config cfg;
    cp2p__art_core *c;
    cp2p_peer_id peers[2];
    uint8_t pid[34] = {0x12, 0x20};
    uint64_t now = 1000;
    cp2p__art_config_default(&cfg);
    cfg.max_peers = 4;
    cfg.max_adverts_per_peer = 64;
    cfg.max_later = 64;
    cfg.max_fetches = 8;
    cfg.max_small_fetches = 8;
    cfg.max_held = 64;
    cfg.max_size = 1 << 20;
    cfg.max_fetch_bytes = 4 << 20;
    if (cp2p__art_core_new(&cfg, now, &c) != 0) {
        return 0;
    }
    for (int i = 0; i < 2; i++) {
        memset(pid + 2, i + 1, 32);
        if (cp2p_peer_id_from_bytes(pid, sizeof(pid), &peers[i]) != 0 ||
            cp2p__art_core_peer_up(c, &peers[i], now) != 0) {
            abort();
        }
    }
    static const uint8_t held[3000] = {1, 2, 3};
    if (cp2p__art_core_publish(c, NULL, 0, held, sizeof(held), NULL, 0, now, NULL, NULL) != 0) {
        abort();
    }
    drain(c, now);
    while (size >= 2) {
        size_t len = (size_t)(data[0] | (data[1] & 0x7f) << 8);
        int who = data[1] >> 7;
        data += 2;
        size -= 2;
        if (len > size) {
            len = size;
        }
        const char *why;
        (void)!cp2p__art_core_recv(c, &peers[who], data, len, now, &why);
        data += len;
        size -= len;
        now += 700;
        cp2p__art_core_tick(c, now);
        drain(c, now);
    }
    cp2p__art_stats st;
    cp2p__art_core_stats(c, &st);
    if (st.fetching > cfg.max_fetches + cfg.max_small_fetches || st.held > cfg.max_held ||
        st.later > cfg.max_later ||
        cp2p__art_core_peer_adverts(c, &peers[0]) > cfg.max_adverts_per_peer) {
        abort();
    }
    cp2p__art_core_peer_down(c, &peers[1], now);
    drain(c, now);
    cp2p__art_core_free(c);
    return 0;
}
