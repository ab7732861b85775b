/* TCP multiaddr parsing. */
#include <string.h>

#include "transport/tcp_addr.h"

int cp2p__tcp_target_parse(const cp2p_multiaddr *ma, cp2p__tcp_target *t, const char **why)
{
    cp2p_multiaddr_component c0, c1, c2;
    size_t n = cp2p_multiaddr_count(ma);
    cp2p_buf host;
    *t = (cp2p__tcp_target){0};
    if (n < 2 || n > 3 || cp2p_multiaddr_component_at(ma, 0, &c0) != 0 ||
        cp2p_multiaddr_component_at(ma, 1, &c1) != 0) {
        *why = "not a TCP address (want /ip4|ip6|dns|dns4|dns6/…/tcp/PORT[/p2p/ID])";
        return CP2P_ENOTSUP;
    }
    switch (c0.code) {
    case CP2P_MA_IP4: t->kind = CP2P_TCP_IP4; break;
    case CP2P_MA_IP6: t->kind = CP2P_TCP_IP6; break;
    case CP2P_MA_DNS: t->kind = CP2P_TCP_DNS; break;
    case CP2P_MA_DNS4: t->kind = CP2P_TCP_DNS4; break;
    case CP2P_MA_DNS6: t->kind = CP2P_TCP_DNS6; break;
    default:
        *why = "not a TCP address: the first component must be ip4, ip6, dns, dns4 or dns6";
        return CP2P_ENOTSUP;
    }
    if (c1.code != CP2P_MA_TCP || c1.value.len != 2) {
        *why = "not a TCP address: the second component must be /tcp/PORT";
        return CP2P_ENOTSUP;
    }
    t->port = (uint16_t)(c1.value.ptr[0] << 8 | c1.value.ptr[1]);
    if (n == 3) {
        if (cp2p_multiaddr_component_at(ma, 2, &c2) != 0 || c2.code != CP2P_MA_P2P ||
            cp2p_peer_id_from_bytes(c2.value.ptr, c2.value.len, &t->peer) != 0) {
            *why = "not a TCP address: only /p2p/ID may follow /tcp/PORT";
            return CP2P_ENOTSUP;
        }
        t->has_peer = true;
    }
    cp2p_buf_init(&host, sizeof(t->host) - 1);
    if (cp2p_multiaddr_component_value_string(&c0, &host) != 0) {
        cp2p_buf_fini(&host);
        *why = "host name too long";
        return CP2P_ENOTSUP;
    }
    memcpy(t->host, host.ptr, host.len);
    t->host[host.len] = 0;
    cp2p_buf_fini(&host);
    return 0;
}
