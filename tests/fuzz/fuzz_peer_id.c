/* Fuzz peer ID parsing, text and binary. Every accepted peer ID must print in both text forms
 * and parse back to itself. */
#include <stdlib.h>
#include <string.h>

#include <cp2p/peer_id.h>

static void round_trip(const cp2p_peer_id *id)
{
    cp2p_buf t;
    cp2p_peer_id back;
    char str[CP2P_PEER_ID_STR_MAX];

    cp2p_buf_init(&t, CP2P_PEER_ID_STR_MAX);
    if (cp2p_peer_id_to_base58(id, &t) != 0 ||
        cp2p_peer_id_parse((const char *)t.ptr, t.len, &back) != 0 ||
        !cp2p_peer_id_equal(id, &back) || strcmp(cp2p_peer_id_str(id, str), (char *)t.ptr) != 0) {
        abort();
    }
    cp2p_buf_reset(&t);
    if (cp2p_peer_id_to_cid(id, &t) != 0 ||
        cp2p_peer_id_parse((const char *)t.ptr, t.len, &back) != 0 ||
        !cp2p_peer_id_equal(id, &back) || t.len >= CP2P_PEER_ID_STR_MAX) {
        abort();
    }
    cp2p_slice key;
    int rc = cp2p_peer_id_inline_key(id, &key);
    if (rc != 0 && rc != CP2P_ENOENT) {
        abort();
    }
    cp2p_buf_fini(&t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cp2p_peer_id id;
    if (cp2p_peer_id_parse((const char *)data, size, &id) == 0) {
        round_trip(&id);
    }
    if (cp2p_peer_id_from_bytes(data, size, &id) == 0) {
        if (id.len != size || memcmp(id.bytes, data, size) != 0) {
            abort();
        }
        round_trip(&id);
    }
    return 0;
}
