/* Fuzz the overlay frame decoder and the core that consumes frames: whatever decodes must
 * re-encode and decode to the same counts; the core must take any frame from a neighbour
 * without crashing, stay within its bounds and keep its output decodable. */
#include <stdlib.h>
#include <string.h>

#include "overlay/ovl_core.h"
#include "overlay/ovl_msg.h"

static cp2p__ovl_frame f1, f2;

static uint64_t fuzz_rand(void *ud)
{
    uint64_t *s = ud;
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return *s >> 11;
}

static void check_codec(const uint8_t *data, size_t size)
{
    const char *why = NULL;
    cp2p_buf b;
    if (cp2p__ovl_frame_decode(data, size, &f1, &why) != 0) {
        if (why == NULL) {
            abort();
        }
        return;
    }
    cp2p_buf_init(&b, CP2P_OVL_MAX_FRAME);
    if (cp2p__ovl_frame_encode(&f1, &b) != 0) {
        abort(); /* what decodes within the limits encodes within them */
    }
    if (cp2p__ovl_frame_decode(b.ptr, b.len, &f2, &why) != 0 || f1.n_routes != f2.n_routes ||
        f1.n_reqs != f2.n_reqs || f1.n_lsas != f2.n_lsas || f1.has_packet != f2.has_packet ||
        (f1.has_packet && (f1.packet.payload.len != f2.packet.payload.len ||
                           f1.packet.n_path != f2.packet.n_path || f1.packet.id != f2.packet.id))) {
        abort();
    }
    cp2p__ovl_frame_release(&f2);
    cp2p__ovl_frame_release(&f1);
    cp2p_buf_fini(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static cp2p_privkey *key, *nkey;
    static cp2p_peer_id nid;
    uint64_t seed = 1;
    check_codec(data, size);
    if (key == NULL) {
        uint8_t s1[32] = {1}, s2[32] = {2};
        if (cp2p_privkey_from_seed(CP2P_KEY_ED25519, s1, &key) != 0 ||
            cp2p_privkey_from_seed(CP2P_KEY_ED25519, s2, &nkey) != 0 ||
            cp2p_peer_id_from_pubkey(cp2p_privkey_public(nkey), &nid) != 0) {
            abort();
        }
    }
    cp2p__ovl_config cfg;
    cp2p__ovl *o;
    cp2p__ovl_config_default(&cfg);
    cfg.key = key;
    cfg.rand = fuzz_rand;
    cfg.rand_ud = &seed;
    cfg.max_nodes = 32;
    cfg.max_unacked = 8;
    cfg.max_out_frames = 64;
    cfg.max_events = 8;
    if (cp2p__ovl_new(&cfg, 1000, &o) != 0) {
        abort();
    }
    if (cp2p__ovl_add_neighbour(o, &nid, 1, 1000) != 0) {
        abort();
    }
    const char *why = NULL;
    int rc = cp2p__ovl_on_frame(o, &nid, data, size, 2000, &why);
    (void)rc; /* any outcome is fine; crashes and leaks are not */
    cp2p__ovl_on_timeout(o, 60000);
    cp2p_peer_id to;
    cp2p_buf out;
    while (cp2p__ovl_take_out(o, &to, &out)) {
        if (cp2p__ovl_frame_decode(out.ptr, out.len, &f1, &why) != 0) {
            abort(); /* our own output always decodes */
        }
        cp2p__ovl_frame_release(&f1);
        cp2p_buf_fini(&out);
    }
    cp2p__ovl_event ev;
    while (cp2p__ovl_poll_event(o, &ev)) {
        cp2p__ovl_event_fini(&ev);
    }
    cp2p__ovl_stats st;
    cp2p__ovl_stats_get(o, &st);
    if (st.nodes > cfg.max_nodes) {
        abort();
    }
    cp2p__ovl_free(o);
    return 0;
}
