/* TCP transport on libuv, behind the transport interface (transport.h): listen and dial TCP
 * multiaddrs, DNS resolved without blocking the loop, TCP_NODELAY, dial timeout, the real bound
 * address of a port-0 listener. Loop thread only. */
#ifndef CP2P_TRANSPORT_TCP_UV_H
#define CP2P_TRANSPORT_TCP_UV_H

#include <uv.h>

#include <cp2p/multiaddr.h>

#include "transport/tcp_addr.h"
#include "transport/transport.h"

/* The TCP transport on `loop`. Returns 0 or CP2P_ENOMEM. Freed with tr->ops->free. */
CP2P_NODISCARD int cp2p__tcp_transport_new(uv_loop_t *loop, cp2p__transport **out);

/* The socket under a TCP byte stream, or NULL when `t` is not one (tests set socket buffer
 * sizes through it). */
uv_tcp_t *cp2p__tcp_tconn_handle(cp2p__tconn *t);

/* The multiaddr (/ip4|ip6/A/tcp/P) of a socket's local or remote end. */
CP2P_NODISCARD int cp2p__tcp_sock_addr(uv_tcp_t *sock, bool remote, cp2p_multiaddr **out);
/* Set TCP_NOTSENT_LOWAT: the kernel reports the socket writable, and so takes more of our
 * bytes, only while fewer than `bytes` of what it holds are unsent, so that what waits to be
 * sent stays in the host, where stream priorities apply (h2o does this for HTTP/2). Returns 0,
 * CP2P_EIO (setsockopt failed) or CP2P_ENOTSUP (no such option on this system). */
CP2P_NODISCARD int cp2p__tcp_set_notsent_lowat(uv_tcp_t *sock, uint32_t bytes);

#endif
