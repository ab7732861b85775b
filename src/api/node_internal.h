/* What the node API's per-subsystem files (node_dht.c, ...) need of the node itself: they run
 * their work on the loop through cp2p_node_call_on_loop (cp2p/node.h) and reach the node's
 * subsystems with these accessors. Loop thread only. */
#ifndef CP2P_API_NODE_INTERNAL_H
#define CP2P_API_NODE_INTERNAL_H

#include <cp2p/kad.h>
#include <cp2p/node.h>

/* The node's DHT, or NULL when it runs none. */
cp2p_kad *cp2p__node_kad(cp2p_node *n);

#endif
