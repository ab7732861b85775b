/* TCP multiaddrs: which ones cp2p can listen on and dial, and what they mean. Pure. */
#ifndef CP2P_TRANSPORT_TCP_ADDR_H
#define CP2P_TRANSPORT_TCP_ADDR_H

#include <stdbool.h>

#include <cp2p/multiaddr.h>

typedef enum {
    CP2P_TCP_IP4,  /* /ip4/A/tcp/P: literal address */
    CP2P_TCP_IP6,  /* /ip6/A/tcp/P */
    CP2P_TCP_DNS,  /* /dns/NAME/tcp/P: resolve, either family */
    CP2P_TCP_DNS4, /* /dns4/NAME/tcp/P: resolve, IPv4 only */
    CP2P_TCP_DNS6, /* /dns6/NAME/tcp/P: resolve, IPv6 only */
} cp2p__tcp_kind;

typedef struct cp2p__tcp_target {
    cp2p__tcp_kind kind;
    char host[256];      /* NUL-terminated: the literal address text or the DNS name */
    uint16_t port;
    bool has_peer;       /* a trailing /p2p/<id> names the peer we expect */
    cp2p_peer_id peer;
} cp2p__tcp_target;

/* Parse `ma` as <ip4|ip6|dns|dns4|dns6>/<value>/tcp/<port>[/p2p/<id>]. Returns 0, or
 * CP2P_ENOTSUP (a valid multiaddr this transport does not carry, e.g. /udp/… or /ws) with
 * *why set. */
CP2P_NODISCARD int cp2p__tcp_target_parse(const cp2p_multiaddr *ma, cp2p__tcp_target *t,
                                          const char **why);

#endif
