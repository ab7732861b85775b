/* Services: how a protocol attaches to a host's peers. A service declares its protocol IDs and
 * the host calls it
 *   - peer_ready: once per peer, when the peer becomes usable for the service — after identify
 *     told us the peer supports one of the service's protocols (CP2P_SERVICE_READY_IDENTIFIED,
 *     the default), or as soon as a connection to it is up (CP2P_SERVICE_READY_CONNECTED);
 *   - peer_gone: once the peer stops being usable: its last connection closed (with the
 *     connection's close error), or (identified mode) a new identify or push no longer lists any
 *     of the service's protocols (CP2P_ENOTSUP);
 *   - inbound: for each inbound stream negotiated to one of its protocols (the service owns the
 *     stream, as a cp2p_stream_handler does);
 *   - close: when the host closes. The service releases what it holds and calls
 *     cp2p_service_close_done(), then or later (it may wait for its own handles to close); the
 *     host closes its connections only after every service is done, so a service may still
 *     write a last message. Services close in the reverse order of their registration.
 * Callbacks run on the host's loop, never inside the call that caused them (a service added
 * while peers are connected hears of them on a later loop turn). Readiness is per peer, not
 * per connection: with two connections to one peer, peer_ready names the first usable one and
 * peer_gone follows the last; use cp2p_host_conn_to() for the best connection at any time.
 *
 * This is the surface every built-in protocol is meant to use (see docs/ARCHITECTURE.md,
 * "Services"); examples/hello shows one built outside the tree.
 *
 * Threading: loop thread only, like cp2p/host.h. */
#ifndef CP2P_SERVICE_H
#define CP2P_SERVICE_H

#include <cp2p/host.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cp2p_service cp2p_service;

/* Protocol IDs one service may declare. */
#define CP2P_SERVICE_MAX_PROTOCOLS 8

typedef enum cp2p_service_ready {
    CP2P_SERVICE_READY_IDENTIFIED = 0, /* identify lists one of the service's protocols */
    CP2P_SERVICE_READY_CONNECTED = 1,  /* every connected peer, before identify */
} cp2p_service_ready;

typedef struct cp2p_service_desc {
    const char *name;                  /* for logs; copied */
    const char *const *protocols;      /* the service's protocol IDs (copied), most preferred
                                        * first; 1..CP2P_SERVICE_MAX_PROTOCOLS unless
                                        * ready == CONNECTED, where 0 is allowed */
    size_t n_protocols;
    cp2p_service_ready ready;
    /* Inbound streams of one of the protocols on one connection at once; more are reset and
     * counted (0 = the host's max_inbound_per_protocol). */
    uint32_t max_inbound_per_conn;
    /* Each may be NULL. `ud` is the pointer given to cp2p_host_add_service. */
    void (*peer_ready)(cp2p_service *svc, const cp2p_peer_id *peer, cp2p_conn *conn, void *ud);
    /* err: CP2P_ENOTSUP when the peer stopped announcing the protocols; otherwise its last
     * connection closed and err is why, as in CP2P_EVENT_CONN_CLOSED: 0 when we closed it,
     * CP2P_ELIMIT when the connection manager trimmed it, CP2P_ECLOSED when the peer did,
     * another error when it failed. */
    void (*peer_gone)(cp2p_service *svc, const cp2p_peer_id *peer, int err, void *ud);
    /* With inbound NULL the service handles no inbound stream: its protocols only select
     * peers (a client of a protocol). */
    void (*inbound)(cp2p_service *svc, cp2p_stream *s, void *ud);
    /* NULL: the service is done at once when the host closes. */
    void (*close)(cp2p_service *svc, void *ud);
    /* Write priority (cp2p_stream_set_priority) of every stream, inbound and outbound, that
     * negotiates one of the service's protocols, set before the stream is handed to the
     * application (which may still change it); 0 = CP2P_STREAM_PRIORITY_DEFAULT, else
     * CP2P_STREAM_PRIORITY_MIN..MAX (CP2P_EINVAL otherwise). */
    uint8_t stream_priority;
} cp2p_service_desc;

/* Attach a service to the host: its protocols (when it has an inbound callback) are
 * registered as handlers and announced to peers through identify push. Returns 0 with the
 * handle in *out, or CP2P_EINVAL (bad descriptor or protocol ID), CP2P_ESTATE (one of its
 * protocols already has a handler), CP2P_EFULL (the host's handler table is full),
 * CP2P_ECLOSED (host closing), CP2P_ENOMEM. */
CP2P_API CP2P_NODISCARD int cp2p_host_add_service(cp2p_host *h, const cp2p_service_desc *desc,
                                                  void *ud, cp2p_service **out);

/* Detach the service before the host closes: its handlers are removed and no callback of it
 * runs after this returns (not even close). The handle is invalid on return. May be called
 * from the service's own callbacks. */
CP2P_API void cp2p_service_remove(cp2p_service *svc);

/* The service finished closing (after its close callback ran, from inside it or later). The
 * handle is invalid on return. */
CP2P_API void cp2p_service_close_done(cp2p_service *svc);

CP2P_API cp2p_host *cp2p_service_host(const cp2p_service *svc);
/* The `ud` given to cp2p_host_add_service. */
CP2P_API void *cp2p_service_ud(const cp2p_service *svc);
/* The attached service that serves `protocol` with the inbound callback `inbound` (how a
 * module finds its own registration on a host), or NULL. */
CP2P_API cp2p_service *cp2p_host_find_service(const cp2p_host *h, const char *protocol,
                                              void (*inbound)(cp2p_service *, cp2p_stream *,
                                                              void *));
/* True between peer_ready and peer_gone for `peer`. Readiness is tracked only for services
 * with a peer_ready or peer_gone callback; for the others these two report no peer. */
CP2P_API bool cp2p_service_peer_is_ready(const cp2p_service *svc, const cp2p_peer_id *peer);
/* Peers currently ready for the service. */
CP2P_API size_t cp2p_service_peer_count(const cp2p_service *svc);

#ifdef __cplusplus
}
#endif
#endif
