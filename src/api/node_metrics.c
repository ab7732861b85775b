/* Protocol statistics as metrics: a protocol's public stats struct (cp2p_pubsub_stats,
 * cp2p_kad_stats, cp2p_reqresp_stats per protocol) is copied into the node's registry on the
 * loop thread when /metrics is scraped, the same way as the host's counters
 * (src/swarm/host_metrics.c). One table per protocol names each field; the shared copier
 * (metrics/stats_table.c, also used by the emitter) turns a field that only grows into a
 * counter (the registry adds what it grew since the last copy) and a level into a gauge. The
 * node's own counters (cp2p_node_stats: its command queue, the request-response requests it
 * sends and handles, its worker pool's refusals) go the same way. Metric names and meanings:
 * docs/METRICS.md. */
#include <stddef.h>
#include <string.h>

#include <cp2p/kad.h>
#include <cp2p/node.h>
#include <cp2p/pubsub.h>
#include <cp2p/reqresp.h>

#include "api/node_internal.h"
#include "metrics/stats_table.h"
#include "util/alloc.h"

#define PS(f, name, help) {name, help, offsetof(cp2p_pubsub_stats, f), false}
#define PSG(f, name, help) {name, help, offsetof(cp2p_pubsub_stats, f), true}
static const cp2p__stat_def pubsub_defs[] = {
    PSG(peers, "cp2p_gossipsub_peers", "Peers known to the router."),
    PS(rpcs_in, "cp2p_gossipsub_rpcs_received_total", "RPC frames received."),
    PS(rpcs_refused, "cp2p_gossipsub_rpcs_refused_total",
       "RPC frames refused (malformed, oversized, or from a graylisted peer)."),
    PS(frames_out, "cp2p_gossipsub_frames_sent_total", "RPC frames written to peers."),
    PS(bytes_out, "cp2p_gossipsub_sent_bytes_total", "Bytes of RPC frames written to peers."),
    PS(msgs_in, "cp2p_gossipsub_messages_received_total", "Messages received (all copies)."),
    PS(msgs_delivered, "cp2p_gossipsub_messages_delivered_total",
       "Messages delivered to local subscribers."),
    PS(msgs_duplicate, "cp2p_gossipsub_messages_duplicate_total",
       "Copies of messages already seen."),
    PS(msgs_rejected, "cp2p_gossipsub_messages_rejected_total", "Messages a validator rejected."),
    PS(msgs_ignored, "cp2p_gossipsub_messages_ignored_total", "Messages a validator ignored."),
    PS(msgs_bad_sig, "cp2p_gossipsub_messages_bad_signature_total",
       "Messages with a bad or missing signature."),
    PS(msgs_published, "cp2p_gossipsub_messages_published_total", "Messages published here."),
    PS(msgs_forwarded, "cp2p_gossipsub_messages_forwarded_total",
       "Messages forwarded to mesh peers."),
    PS(subs_refused, "cp2p_gossipsub_subscriptions_refused_total",
       "Peer subscriptions refused by the per-peer limit."),
    PS(graylisted, "cp2p_gossipsub_graylisted_total",
       "RPC frames dropped from graylisted peers."),
    PS(idontwant_sent, "cp2p_gossipsub_idontwant_sent_total", "IDONTWANT entries sent."),
    PS(idontwant_suppressed, "cp2p_gossipsub_idontwant_suppressed_total",
       "Messages not sent because the peer said IDONTWANT."),
    PS(iwant_sent, "cp2p_gossipsub_iwant_sent_total", "IWANT entries sent."),
    PS(promises_broken, "cp2p_gossipsub_promises_broken_total",
       "IWANT promises a peer did not keep."),
    PS(outbox_drops, "cp2p_gossipsub_outbox_drops_total",
       "RPC parts dropped because a slow peer's outbox was full."),
    PS(penalties, "cp2p_gossipsub_penalties_total", "Behaviour penalties (P7) given."),
    PS(px_dials, "cp2p_gossipsub_px_dials_total", "Dials to peers learned through PX."),
    PSG(validations_pending, "cp2p_gossipsub_validations_pending",
        "Messages waiting for an asynchronous validation verdict."),
    PS(validations_dropped, "cp2p_gossipsub_validations_dropped_total",
       "Messages dropped because too many validations were pending."),
    PS(validations_expired, "cp2p_gossipsub_validations_expired_total",
       "Messages dropped after their validation timed out."),
    PS(prunes_in, "cp2p_gossipsub_prunes_received_total", "PRUNE messages received."),
    PS(topics_refused, "cp2p_gossipsub_topics_refused_total",
       "Remote topics refused by the bounded topic table."),
    PS(topics_evicted, "cp2p_gossipsub_topics_evicted_total",
       "Remote topics evicted from the bounded topic table."),
};

#define KD(f, name, help) {name, help, offsetof(cp2p_kad_stats, f), false}
#define KDG(f, name, help) {name, help, offsetof(cp2p_kad_stats, f), true}
static const cp2p__stat_def kad_defs[] = {
    KDG(table_size, "cp2p_kad_routing_table_peers", "Peers in the routing table."),
    KD(table_added, "cp2p_kad_routing_table_added_total", "Peers added to the routing table."),
    KD(table_removed, "cp2p_kad_routing_table_removed_total",
       "Peers removed from the routing table."),
    KD(table_refused_diversity, "cp2p_kad_routing_table_refused_diversity_total",
       "Peers refused by the IP diversity limits."),
    KD(requests_in, "cp2p_kad_requests_received_total", "DHT requests received."),
    KD(requests_refused_rate, "cp2p_kad_requests_refused_rate_total",
       "DHT requests refused by the per-peer rate limit."),
    KD(requests_bad, "cp2p_kad_requests_malformed_total", "Malformed DHT requests."),
    KD(responses_sent, "cp2p_kad_responses_sent_total", "DHT responses sent."),
    KD(queries_out, "cp2p_kad_queries_sent_total", "Queries sent to other peers."),
    KD(queries_failed, "cp2p_kad_queries_failed_total", "Queries that failed or timed out."),
    KD(lookups, "cp2p_kad_lookups_total", "Iterative lookups started."),
    KD(lookups_timed_out, "cp2p_kad_lookups_timed_out_total", "Lookups that timed out."),
    KD(values_invalid, "cp2p_kad_values_invalid_total", "Records refused by a validator."),
    KD(records_stored, "cp2p_kad_records_stored_total", "Records stored for other peers."),
    KD(providers_stored, "cp2p_kad_providers_stored_total", "Provider records stored."),
    KD(liveness_failed, "cp2p_kad_liveness_failed_total",
       "Table peers that failed a liveness check."),
    KD(ops_refused, "cp2p_kad_operations_refused_total",
       "Operations refused because too many were in flight."),
};

#define ND(f, name, help) {name, help, offsetof(cp2p_node_stats, f), false}
static const cp2p__stat_def node_defs[] = {
    ND(commands, "cp2p_node_commands_total", "Calls posted to the node's loop."),
    ND(commands_refused_full, "cp2p_node_commands_refused_total",
       "Calls refused because the node's command queue was full."),
    ND(requests_sent, "cp2p_node_requests_sent_total",
       "Request-response requests sent through the node (cp2p_node_request, /api/v0/req)."),
    ND(requests_failed, "cp2p_node_requests_failed_total",
       "Of those, requests that got no response (refused, timed out, unsupported, closed)."),
    ND(requests_handled, "cp2p_node_requests_handled_total",
       "Inbound requests answered by a handler registered through the node."),
    ND(requests_refused_pool_full, "cp2p_node_requests_refused_pool_full_total",
       "Inbound requests refused because the worker queue was full."),
    ND(requests_refused_handler, "cp2p_node_requests_refused_handler_total",
       "Inbound requests a handler refused."),
    ND(events_delivered, "cp2p_node_events_delivered_total",
       "Connection events delivered to the node's event handler."),
    ND(events_dropped, "cp2p_node_events_dropped_total",
       "Connection events dropped because the worker queue was full."),
    ND(messages_delivered, "cp2p_node_pubsub_messages_delivered_total",
       "Pubsub messages delivered to handlers subscribed through the node."),
    ND(messages_dropped, "cp2p_node_pubsub_messages_dropped_total",
       "Pubsub messages dropped because the worker queue was full."),
    ND(validations_queued, "cp2p_node_validations_queued_total",
       "Pubsub validations queued for the worker pool."),
    ND(validations_dropped, "cp2p_node_validations_dropped_total",
       "Pubsub validations dropped because the worker queue was full."),
};

#define RR(f, name, help) {name, help, offsetof(cp2p_reqresp_stats, f), false}
static const cp2p__stat_def reqresp_defs[] = {
    RR(requests_served, "cp2p_reqresp_requests_served_total",
       "Inbound requests handed to the handler."),
    RR(inbound_over_limit, "cp2p_reqresp_inbound_over_limit_total",
       "Inbound streams reset: the peer had its maximum of requests in flight."),
    RR(request_too_large, "cp2p_reqresp_requests_too_large_total",
       "Inbound requests over max_request_bytes (stream reset)."),
    RR(bad_frame, "cp2p_reqresp_bad_frames_total",
       "Inbound requests with a bad length prefix or cut short."),
    RR(inbound_failed, "cp2p_reqresp_inbound_failed_total",
       "Inbound streams that died before their request was read."),
    RR(response_too_large, "cp2p_reqresp_responses_too_large_total",
       "Responses over max_response_bytes (stream reset)."),
    RR(refused, "cp2p_reqresp_refused_total", "Requests the handler refused."),
};
#define NRR (sizeof(reqresp_defs) / sizeof(reqresp_defs[0]))

/* One protocol's series and the values last copied. */
typedef struct rr_entry {
    struct rr_entry *next;
    char *protocol;
    cp2p_metric *series[NRR];
    uint64_t last[NRR];
} rr_entry;

struct cp2p__reqresp_metrics {
    cp2p_metrics *reg;
    cp2p_metric_family *fams[NRR];
    rr_entry *entries;
};

int cp2p__reqresp_metrics_update(cp2p__reqresp_metrics **state, cp2p_host *h,
                                 const char *protocol, cp2p_metrics *reg)
{
    cp2p_reqresp_stats st;
    if (cp2p_reqresp_stats_get(h, protocol, &st) != 0) {
        return 0; /* not registered (any more): nothing to copy */
    }
    cp2p__reqresp_metrics *m = *state;
    if (m == NULL) {
        if ((m = cp2p_calloc(1, sizeof(*m))) == NULL) {
            return CP2P_ENOMEM;
        }
        int rc = cp2p__stats_fams_register(reg, reqresp_defs, NRR, "protocol", m->fams);
        if (rc != 0) {
            cp2p_free(m);
            return rc;
        }
        m->reg = reg;
        *state = m;
    }
    if (m->reg != reg) {
        return CP2P_EINVAL;
    }
    rr_entry *e = m->entries;
    while (e != NULL && strcmp(e->protocol, protocol) != 0) {
        e = e->next;
    }
    if (e == NULL) {
        if ((e = cp2p_calloc(1, sizeof(*e))) == NULL ||
            (e->protocol = cp2p__memdup(protocol, strlen(protocol) + 1)) == NULL) {
            cp2p_free(e);
            return CP2P_ENOMEM;
        }
        for (size_t i = 0; i < NRR; i++) {
            int rc = cp2p_metrics_series(m->fams[i], (const char *const *)&e->protocol, 1,
                                         &e->series[i]);
            if (rc != 0) {
                cp2p_free(e->protocol);
                cp2p_free(e);
                return rc;
            }
        }
        e->next = m->entries;
        m->entries = e;
    }
    cp2p__stats_copy(e->series, e->last, reqresp_defs, NRR, &st);
    return 0;
}

void cp2p__reqresp_metrics_free(cp2p__reqresp_metrics *m)
{
    if (m == NULL) {
        return;
    }
    for (rr_entry *e = m->entries, *next; e != NULL; e = next) {
        next = e->next;
        cp2p_free(e->protocol);
        cp2p_free(e);
    }
    cp2p_free(m);
}

int cp2p__pubsub_metrics_update(cp2p__stats_metrics **state, const cp2p_pubsub *ps,
                                cp2p_metrics *reg)
{
    cp2p_pubsub_stats st;
    cp2p_pubsub_stats_get(ps, &st);
    return cp2p__stats_metrics_update(state, reg, pubsub_defs, sizeof(pubsub_defs) / sizeof(pubsub_defs[0]),
                        &st);
}

int cp2p__kad_metrics_update(cp2p__stats_metrics **state, const cp2p_kad *kad, cp2p_metrics *reg)
{
    cp2p_kad_stats st;
    cp2p_kad_stats_get(kad, &st);
    return cp2p__stats_metrics_update(state, reg, kad_defs, sizeof(kad_defs) / sizeof(kad_defs[0]),
                                      &st);
}

int cp2p__node_metrics_update(cp2p__stats_metrics **state, cp2p_node *node, cp2p_metrics *reg)
{
    cp2p_node_stats st;
    cp2p_node_stats_get(node, &st);
    return cp2p__stats_metrics_update(state, reg, node_defs,
                                      sizeof(node_defs) / sizeof(node_defs[0]), &st);
}
