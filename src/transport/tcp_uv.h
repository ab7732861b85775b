/* TCP transport on libuv, behind the transport interface (transport.h): listen and dial TCP
 * multiaddrs, DNS resolved without blocking the loop, TCP_NODELAY, dial timeout, the real bound
 * address of a port-0 listener. Loop thread only. */
#ifndef CP2P_TRANSPORT_TCP_UV_H
#define CP2P_TRANSPORT_TCP_UV_H

#include <uv.h>

#include <cp2p/multiaddr.h>

#include "transport/tcp_addr.h"
#include "transport/transport.h"

/* The TCP transport on `loop`; its connection sockets get TCP_NODELAY and, when
 * notsent_lowat is not 0, TCP_NOTSENT_LOWAT (see cp2p_host_config.tcp_notsent_lowat). Returns
 * 0 or CP2P_ENOMEM. Freed with tr->ops->free. */
CP2P_NODISCARD int cp2p__tcp_transport_new(uv_loop_t *loop, uint32_t notsent_lowat,
                                           cp2p__transport **out);

/* The socket under a TCP byte stream, or NULL when `t` is not one (tests set socket buffer
 * sizes through it). */
uv_tcp_t *cp2p__tcp_tconn_handle(cp2p__tconn *t);

/* The multiaddr (/ip4|ip6/A/tcp/P) of a socket's local or remote end. */
CP2P_NODISCARD int cp2p__tcp_sock_addr(uv_tcp_t *sock, bool remote, cp2p_multiaddr **out);

#endif
