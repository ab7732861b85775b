/* The memory transport of one host on a cp2p_memnet (cp2p/memnet.h), behind the transport
 * interface (transport.h). Loop thread only. */
#ifndef CP2P_TRANSPORT_MEMNET_UV_H
#define CP2P_TRANSPORT_MEMNET_UV_H

#include <uv.h>

#include <cp2p/memnet.h>

#include "transport/transport.h"

/* A node of `net` for one host on `loop` (the network's loop); its connections model
 * TCP_NOTSENT_LOWAT = notsent_lowat bytes (0: none; see cp2p__mn_node_set_notsent_lowat).
 * Returns 0, CP2P_EINVAL (another loop, or the network is closing) or CP2P_ENOMEM. Freed with
 * tr->ops->free once the host's byte streams are closed. */
CP2P_NODISCARD int cp2p__memnet_transport_new(cp2p_memnet *net, uv_loop_t *loop,
                                              uint32_t notsent_lowat, cp2p__transport **out);

#endif
