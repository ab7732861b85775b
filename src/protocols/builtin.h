/* Registration of the built-in protocols on a new host. */
#ifndef CP2P_PROTOCOLS_BUILTIN_H
#define CP2P_PROTOCOLS_BUILTIN_H

#include <cp2p/protocols.h>
#include <cp2p/service.h>

CP2P_NODISCARD int cp2p__ping_register(cp2p_host *h);
/* Serve /perf/1.0.0 (only when the config asks: it sends whatever a peer asks for). */
CP2P_NODISCARD int cp2p__perf_register(cp2p_host *h);
/* A service that only answers inbound streams of `protocol` (its ud is NULL). */
CP2P_NODISCARD int cp2p__builtin_serve(cp2p_host *h, const char *name, const char *protocol,
                                       void (*inbound)(cp2p_service *, cp2p_stream *, void *));

#endif
