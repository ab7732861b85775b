/* TCP transport on libuv: listen and dial TCP multiaddrs, DNS resolved without blocking the
 * loop, TCP_NODELAY, dial timeout, the real bound address of a port-0 listener.
 * Loop thread only. Sockets handed out are heap-allocated uv_tcp_t owned by the receiver,
 * which closes them with uv_close(sock, cp2p__tcp_free_on_close). */
#ifndef CP2P_TRANSPORT_TCP_UV_H
#define CP2P_TRANSPORT_TCP_UV_H

#include <uv.h>

#include <cp2p/multiaddr.h>

#include "transport/tcp_addr.h"

typedef struct cp2p__tcp_listener cp2p__tcp_listener;
/* A new inbound connection, already accepted and set to TCP_NODELAY. */
typedef void (*cp2p__tcp_accept_cb)(cp2p__tcp_listener *l, uv_tcp_t *sock, void *ud);

/* Listen on `ma` (/ip4|ip6/ADDR/tcp/PORT; port 0 picks a free port). Returns 0, CP2P_ENOTSUP
 * (not such an address; *why set), CP2P_EIO (bind/listen failed, e.g. address in use; *why
 * set), CP2P_ENOMEM. */
CP2P_NODISCARD int cp2p__tcp_listen(uv_loop_t *loop, const cp2p_multiaddr *ma,
                                    cp2p__tcp_accept_cb cb, void *ud, cp2p__tcp_listener **out,
                                    const char **why);
/* The address actually bound (the real port when 0 was asked). New multiaddr for the caller. */
CP2P_NODISCARD int cp2p__tcp_listener_addr(const cp2p__tcp_listener *l, cp2p_multiaddr **out);
/* Stop listening; the memory goes once libuv has closed the handle. */
void cp2p__tcp_listener_close(cp2p__tcp_listener *l);

typedef struct cp2p__tcp_dial cp2p__tcp_dial;
/* status 0 with a connected socket (TCP_NODELAY set) that now belongs to the callee, or a
 * negative cp2p_err (CP2P_ETIMEDOUT, CP2P_EIO: refused/unreachable, CP2P_ENOENT: name did not
 * resolve, CP2P_ECANCELED) with sock NULL. */
typedef void (*cp2p__tcp_dial_cb)(int status, uv_tcp_t *sock, void *ud);

/* Connect to t; names resolve through uv_getaddrinfo (the thread pool, never the loop) and each
 * resolved address is tried in turn within timeout_ms overall. Returns 0 and cb runs exactly
 * once later (never before this returns), or an error and cb never runs. *out (may be NULL)
 * lets the caller cancel. */
CP2P_NODISCARD int cp2p__tcp_dial_start(uv_loop_t *loop, const cp2p__tcp_target *t,
                                        uint64_t timeout_ms, cp2p__tcp_dial_cb cb, void *ud,
                                        cp2p__tcp_dial **out);
/* Cancel a dial whose callback has not run yet: it then runs with CP2P_ECANCELED. */
void cp2p__tcp_dial_cancel(cp2p__tcp_dial *d);

/* The multiaddr (/ip4|ip6/A/tcp/P) of a socket's local or remote end. */
CP2P_NODISCARD int cp2p__tcp_sock_addr(uv_tcp_t *sock, bool remote, cp2p_multiaddr **out);
/* Set TCP_NOTSENT_LOWAT: the kernel reports the socket writable, and so takes more of our
 * bytes, only while fewer than `bytes` of what it holds are unsent, so that what waits to be
 * sent stays in the host, where stream priorities apply (h2o does this for HTTP/2). Returns 0,
 * CP2P_EIO (setsockopt failed) or CP2P_ENOTSUP (no such option on this system). */
CP2P_NODISCARD int cp2p__tcp_set_notsent_lowat(uv_tcp_t *sock, uint32_t bytes);
/* uv_close callback that frees a socket from this module. */
void cp2p__tcp_free_on_close(uv_handle_t *h);

#endif
