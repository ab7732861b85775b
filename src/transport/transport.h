/* The transport interface: what a cp2p connection runs on.
 *
 * A transport turns a multiaddr into connected byte streams (cp2p__tconn): listen(addr) hands
 * out inbound ones, dial(addr, timeout) one outbound one, and can be canceled. A byte stream
 * moves bytes and nothing else: read start/stop with a read callback, write of an iovec with a
 * completion callback, shutdown (our side is done sending), close, the remote IP if it has one
 * and its two multiaddrs. The connection (src/swarm/conn_uv.c) only moves bytes between a
 * tconn and its protocol cores, so a later sans-I/O connection core can sit on the same
 * interface unchanged.
 *
 * Two implementations: TCP on libuv (tcp_uv.c: every address form, option and error of the
 * original TCP code) and the in-memory network (memnet_uv.c, cp2p/memnet.h). The host picks one
 * by the first component of an address (cp2p__transport_for).
 *
 * Contract, as libuv's:
 * - Loop thread only. No callback runs inside the call that caused it, except dial_cancel,
 *   whose dial callback runs (with CP2P_ECANCELED) before it returns, as the TCP dial's does.
 * - A function that returns an error never calls its callback; one that returns 0 calls it
 *   exactly once.
 * - write: the iovec's memory stays the caller's and must stay valid until the callback runs
 *   (the memory transport copies when it accepts the bytes into its link; TCP when the kernel
 *   takes them). Writes complete in order. After close, pending writes complete with
 *   CP2P_ECANCELED before the close callback.
 * - read: alloc_cb asks for a buffer (len 0 = no memory: the read callback then gets
 *   CP2P_ELIMIT), read_cb gets the number of bytes placed in it (> 0), or CP2P_ECLOSED at the
 *   end of the peer's bytes, or CP2P_EIO.
 * - close: no callback but the pending writes' and the close callback runs after it; the
 *   transport frees the tconn after the close callback returns. */
#ifndef CP2P_TRANSPORT_TRANSPORT_H
#define CP2P_TRANSPORT_TRANSPORT_H

#include <stdalign.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cp2p/buf.h>
#include <cp2p/common.h>
#include <cp2p/multiaddr.h>
#include <cp2p/peer_id.h>

typedef struct cp2p__tconn cp2p__tconn;
typedef struct cp2p__twrite cp2p__twrite;

typedef void (*cp2p__tconn_alloc_cb)(cp2p__tconn *t, uint8_t **buf, size_t *len);
typedef void (*cp2p__tconn_read_cb)(cp2p__tconn *t, ptrdiff_t nread);
typedef void (*cp2p__tconn_write_cb)(cp2p__twrite *req, int status);
typedef void (*cp2p__tconn_shutdown_cb)(cp2p__tconn *t, int status);
typedef void (*cp2p__tconn_close_cb)(cp2p__tconn *t);

/* A write request, allocated by the caller and alive until its callback ran (libuv's
 * uv_write_t): the transport keeps its own state in `priv`, so a write costs no allocation. */
#define CP2P__TWRITE_PRIV 256
struct cp2p__twrite {
    alignas(max_align_t) uint8_t priv[CP2P__TWRITE_PRIV];
    cp2p__tconn *conn;
    cp2p__tconn_write_cb cb;
    void *data; /* the caller's */
};

typedef struct cp2p__tconn_ops {
    CP2P_NODISCARD int (*read_start)(cp2p__tconn *t, cp2p__tconn_alloc_cb alloc_cb,
                                     cp2p__tconn_read_cb read_cb);
    CP2P_NODISCARD int (*read_stop)(cp2p__tconn *t);
    CP2P_NODISCARD int (*write)(cp2p__tconn *t, cp2p__twrite *req, const cp2p_slice *iov,
                                size_t n, cp2p__tconn_write_cb cb);
    CP2P_NODISCARD int (*shutdown)(cp2p__tconn *t, cp2p__tconn_shutdown_cb cb);
    void (*close)(cp2p__tconn *t, cp2p__tconn_close_cb cb);
    /* The remote IP: 4 bytes (IPv4, also IPv4-mapped IPv6) or 16; 0 when it has none. */
    size_t (*remote_ip)(cp2p__tconn *t, uint8_t ip[16]);
    /* The local or remote end as a new multiaddr. */
    CP2P_NODISCARD int (*addr)(cp2p__tconn *t, bool remote, cp2p_multiaddr **out);
} cp2p__tconn_ops;

struct cp2p__tconn {
    const cp2p__tconn_ops *ops;
    void *data;      /* the owner's */
    const char *why; /* static text of the last error passed to the read callback */
};

/* ---- listeners and dials ---- */

typedef struct cp2p__transport cp2p__transport;
typedef struct cp2p__tlistener cp2p__tlistener;
typedef struct cp2p__tdial cp2p__tdial;

/* A new inbound byte stream, which now belongs to the callee. */
typedef void (*cp2p__taccept_cb)(cp2p__tlistener *l, cp2p__tconn *conn, void *ud);
/* status 0 with a connected byte stream that now belongs to the callee, or a negative
 * cp2p_err (CP2P_ETIMEDOUT, CP2P_EIO: refused/unreachable, CP2P_ENOENT: the name did not
 * resolve, CP2P_ECANCELED) with conn NULL. */
typedef void (*cp2p__tdial_cb)(int status, cp2p__tconn *conn, void *ud);

typedef struct cp2p__transport_ops {
    /* Listen on `ma`. Returns 0, CP2P_ENOTSUP (not an address of this transport; *why set),
     * CP2P_EIO or CP2P_EADDRINUSE-like errors (*why set), CP2P_ENOMEM. */
    CP2P_NODISCARD int (*listen)(cp2p__transport *tr, const cp2p_multiaddr *ma,
                                 cp2p__taccept_cb cb, void *ud, cp2p__tlistener **out,
                                 const char **why);
    /* The address actually bound (a port or name picked by the transport). */
    CP2P_NODISCARD int (*listener_addr)(const cp2p__tlistener *l, cp2p_multiaddr **out);
    /* Stop listening; no accept callback runs after this. */
    void (*listener_close)(cp2p__tlistener *l);
    /* Dial `ma` (a trailing /p2p/ is allowed and ignored here). Returns 0 and cb runs later,
     * exactly once, or an error (CP2P_ENOTSUP with *why set, CP2P_ENOMEM, ...) and cb never
     * runs. *out (may be NULL) lets the caller cancel. */
    CP2P_NODISCARD int (*dial)(cp2p__transport *tr, const cp2p_multiaddr *ma,
                               uint64_t timeout_ms, cp2p__tdial_cb cb, void *ud,
                               cp2p__tdial **out, const char **why);
    /* Cancel a dial whose callback has not run yet: it runs now with CP2P_ECANCELED. */
    void (*dial_cancel)(cp2p__tdial *d);
    /* Free the transport (its listeners and dials are gone). */
    void (*free)(cp2p__transport *tr);
} cp2p__transport_ops;

struct cp2p__transport {
    const cp2p__transport_ops *ops;
    const char *name; /* "tcp", "memory" */
};

/* Every listener and dial starts with its transport, so the host needs no per-kind code. */
struct cp2p__tlistener {
    cp2p__transport *tr;
};
struct cp2p__tdial {
    cp2p__transport *tr;
};

/* Whether `ma` is an address of the memory transport (its first component is /memory/). */
bool cp2p__transport_is_memory(const cp2p_multiaddr *ma);

/* What a dialable address says about the peer, whichever transport carries it: checks that
 * `ma` is <transport address>[/p2p/<id>] for a transport cp2p has (TCP or memory). Returns 0
 * with *has_peer (and *peer when true) set, or CP2P_ENOTSUP with *why set. */
CP2P_NODISCARD int cp2p__transport_addr_peer(const cp2p_multiaddr *ma, bool *has_peer,
                                             cp2p_peer_id *peer, const char **why);

/* The memory transport's name from /memory/NAME[/p2p/ID]: 0 and NAME copied NUL-terminated
 * into name[cap], or CP2P_ENOTSUP (not such an address, *why set) or CP2P_ELIMIT. */
CP2P_NODISCARD int cp2p__memory_addr_parse(const cp2p_multiaddr *ma, char *name, size_t cap,
                                           bool *has_peer, cp2p_peer_id *peer,
                                           const char **why);

#endif
