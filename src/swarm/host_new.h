/* The bare host's constructor, for cp2p_host_new() (src/protocols/builtin.c), which adds the
 * built-in protocols: the one swarm declaration a file outside src/swarm/ may include. */
#ifndef CP2P_SWARM_HOST_NEW_H
#define CP2P_SWARM_HOST_NEW_H

#include <cp2p/host.h>

/* A host with no protocol. Returns what cp2p_host_new() documents. */
CP2P_NODISCARD int cp2p__swarm_new(uv_loop_t *loop, const cp2p_host_config *cfg,
                                   cp2p_host **out);

#endif
