/* Address helpers of the transport interface. Pure. See transport.h. */
#include <string.h>

#include "transport/tcp_addr.h"
#include "transport/transport.h"

bool cp2p__transport_is_memory(const cp2p_multiaddr *ma)
{
    cp2p_multiaddr_component c;
    return cp2p_multiaddr_component_at(ma, 0, &c) == 0 && c.code == CP2P_MA_MEMORY;
}

int cp2p__memory_addr_parse(const cp2p_multiaddr *ma, char *name, size_t cap, bool *has_peer,
                            cp2p_peer_id *peer, const char **why)
{
    cp2p_multiaddr_component c0, c1;
    size_t n = cp2p_multiaddr_count(ma);
    if (n < 1 || n > 2 || cp2p_multiaddr_component_at(ma, 0, &c0) != 0 ||
        c0.code != CP2P_MA_MEMORY) {
        *why = "not a memory address (want /memory/NAME[/p2p/ID])";
        return CP2P_ENOTSUP;
    }
    *has_peer = false;
    if (n == 2) {
        if (cp2p_multiaddr_component_at(ma, 1, &c1) != 0 || c1.code != CP2P_MA_P2P ||
            cp2p_peer_id_from_bytes(c1.value.ptr, c1.value.len, peer) != 0) {
            *why = "not a memory address: only /p2p/ID may follow /memory/NAME";
            return CP2P_ENOTSUP;
        }
        *has_peer = true;
    }
    if (c0.value.len >= cap) {
        *why = "memory address name too long";
        return CP2P_ELIMIT;
    }
    memcpy(name, c0.value.ptr, c0.value.len);
    name[c0.value.len] = 0;
    return 0;
}

int cp2p__transport_addr_peer(const cp2p_multiaddr *ma, bool *has_peer, cp2p_peer_id *peer,
                              const char **why)
{
    if (cp2p__transport_is_memory(ma)) {
        char name[256];
        int rc = cp2p__memory_addr_parse(ma, name, sizeof(name), has_peer, peer, why);
        return rc == CP2P_ELIMIT ? CP2P_ENOTSUP : rc;
    }
    cp2p__tcp_target t;
    int rc = cp2p__tcp_target_parse(ma, &t, why);
    if (rc == 0) {
        *has_peer = t.has_peer;
        *peer = t.peer;
    }
    return rc;
}
