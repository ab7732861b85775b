/* The host's counters as metrics, and views of the host for operators (the node's HTTP API
 * shows them): its connections, its agent and protocols, closing a peer's connections. Loop
 * thread only, like cp2p/host.h: the node's HTTP threads reach these through
 * cp2p_node_call_on_loop(), and the registry they render is only written here through its
 * lock-free handles. */
#ifndef CP2P_HOST_INFO_H
#define CP2P_HOST_INFO_H

#include <cp2p/host.h>
#include <cp2p/metrics.h>

#ifdef __cplusplus
extern "C" {
#endif

/* What one registry holds for one host: its family and series handles and the host counter
 * values already added to the registry's counters. */
typedef struct cp2p_host_metrics cp2p_host_metrics;

/* Copy h's counters, gauges and configured limits into `reg` (metric names in docs/METRICS.md).
 * The first call for a registry passes *state == NULL: it registers the families and sets
 * *state; every later call for the same host and registry passes the same *state. A host
 * counter is kept as a registry counter by adding what it grew since the previous call, so the
 * registry's value equals the host's at the end of each call. Returns 0, CP2P_EINVAL (NULL
 * argument, or a *state made for another registry), CP2P_ENOMEM, or cp2p_metrics_register's
 * error when a name is taken; *state then stays NULL (families registered before the failure
 * stay in the registry, which cannot drop them, so a later call fails the same way). Loop
 * thread only. */
CP2P_API CP2P_NODISCARD int cp2p_host_metrics_update(cp2p_host_metrics **state, cp2p_host *h,
                                             cp2p_metrics *reg);
/* Free the state (the registry keeps its families and their values). NULL is a no-op. Any
 * thread, once no update runs. */
CP2P_API void cp2p_host_metrics_free(cp2p_host_metrics *state);

/* Longest remote socket address kept in a cp2p_host_conn_info (an IPv6 address and a port
 * take under 60 bytes; a longer one is left empty). */
#define CP2P_HOST_CONN_ADDR_MAX 128

/* One upgraded, open connection as the API's peers endpoint shows it. */
typedef struct cp2p_host_conn_info {
    cp2p_peer_id peer;
    char addr[CP2P_HOST_CONN_ADDR_MAX]; /* remote socket address, "" when unknown */
    bool outbound;
    uint64_t rtt_ns;     /* yamux ping RTT, else the peerstore's ping average; 0 = unknown */
    size_t streams;      /* yamux streams open now */
    uint64_t bytes_in;   /* yamux data payload bytes so far on this connection */
    uint64_t bytes_out;
    /* What may wait below the stream scheduler now (the transport write cap, which follows
     * the send rate: cp2p_host_config.conn_queue_us), and that rate (bytes a second while
     * writes filled the cap; 0 = not measured yet). */
    size_t send_queue_cap;
    uint64_t send_rate_bps;
} cp2p_host_conn_info;

/* Describe up to `max` open connections into out (oldest first); returns how many are open
 * in all (which may exceed max). Loop thread only. */
CP2P_API size_t cp2p_host_conns_list(cp2p_host *h, cp2p_host_conn_info *out, size_t max);

/* Close every open connection to `peer` (GoAway, then close; CONN_CLOSED events follow).
 * Returns how many were closed (0: not connected). Loop thread only. */
CP2P_API size_t cp2p_host_close_peer(cp2p_host *h, const cp2p_peer_id *peer);

/* identify's agentVersion of this host (borrowed, valid while the host lives), and up to max
 * protocol IDs it serves (borrowed likewise) into out; returns how many it serves in all.
 * Loop thread only. */
CP2P_API const char *cp2p_host_agent_version(const cp2p_host *h);
CP2P_API size_t cp2p_host_protocols(const cp2p_host *h, const char **out, size_t max);

#ifdef __cplusplus
}
#endif
#endif
