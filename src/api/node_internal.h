/* What the node API's per-subsystem files (node_dht.c, ...) need of the node itself: they run
 * their work on the loop through cp2p_node_call_on_loop (cp2p/node.h) and reach the node's
 * subsystems with these accessors. Loop thread only. */
#ifndef CP2P_API_NODE_INTERNAL_H
#define CP2P_API_NODE_INTERNAL_H

#include <cp2p/kad.h>
#include <cp2p/metrics.h>
#include <cp2p/node.h>
#include <cp2p/pubsub.h>

/* The node's DHT and pubsub, or NULL when it runs none. */
cp2p_kad *cp2p__node_kad(cp2p_node *n);
cp2p_pubsub *cp2p__node_pubsub(cp2p_node *n);

/* Observe the latency of each answered cp2p_node_request (from the call to the response,
 * queueing and dial included, in seconds) into histogram h; NULL stops it. The caller keeps h
 * valid until it sets NULL. Any thread. */
void cp2p__node_set_request_latency(cp2p_node *n, cp2p_metric *h);

/* node_metrics.c: a protocol's stats copied into a metrics registry (names in
 * docs/METRICS.md). The first call passes *state == NULL and registers the families; later
 * calls pass the same state and registry. Returns 0, CP2P_ENOMEM, CP2P_EINVAL (another
 * registry), or cp2p_metrics_register's error. Loop thread only. */
typedef struct cp2p__stats_metrics cp2p__stats_metrics;
CP2P_NODISCARD int cp2p__pubsub_metrics_update(cp2p__stats_metrics **state,
                                               const cp2p_pubsub *ps, cp2p_metrics *reg);
CP2P_NODISCARD int cp2p__kad_metrics_update(cp2p__stats_metrics **state, const cp2p_kad *kad,
                                            cp2p_metrics *reg);
CP2P_NODISCARD int cp2p__node_metrics_update(cp2p__stats_metrics **state, cp2p_node *node,
                                             cp2p_metrics *reg);
void cp2p__stats_metrics_free(cp2p__stats_metrics *s);

#endif
