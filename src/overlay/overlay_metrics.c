/* The overlay's counters as metrics (cp2p_overlay_metrics_update, cp2p/overlay.h): one table
 * over cp2p_overlay_stats, copied by the shared stats table (metrics/stats_table.h). Names and
 * meanings: docs/METRICS.md. */
#include <cp2p/metrics.h>
#include <cp2p/overlay.h>

#include "metrics/stats_table.h"

#define OC(f, name, help) {name, help, offsetof(cp2p_overlay_stats, f), false}
#define OG(f, name, help) {name, help, offsetof(cp2p_overlay_stats, f), true}
static const cp2p__stat_def overlay_defs[] = {
    OG(nodes, "cp2p_overlay_nodes", "Peers the overlay keeps state for."),
    OG(neighbours, "cp2p_overlay_neighbours", "Directly linked overlay peers."),
    OG(routes, "cp2p_overlay_routes", "Destinations with a selected distance-vector route."),
    OG(lsas, "cp2p_overlay_lsas", "Link-state advertisements in the database."),
    OG(unacked, "cp2p_overlay_unacked", "Reliable messages sent and not yet acknowledged."),
    OC(updates_sent, "cp2p_overlay_route_updates_sent_total", "Route update entries sent."),
    OC(updates_received, "cp2p_overlay_route_updates_received_total",
       "Route update entries received."),
    OC(updates_infeasible, "cp2p_overlay_route_updates_infeasible_total",
       "Route updates not selectable under the feasibility condition."),
    OC(requests_sent, "cp2p_overlay_seqno_requests_sent_total", "Seqno requests sent."),
    OC(requests_forwarded, "cp2p_overlay_seqno_requests_forwarded_total",
       "Seqno requests forwarded toward their origin."),
    OC(lsas_received, "cp2p_overlay_lsas_received_total", "LSAs received."),
    OC(lsas_originated, "cp2p_overlay_lsas_originated_total", "LSAs of ours signed and sent."),
    OC(spf_runs, "cp2p_overlay_spf_runs_total", "Dijkstra runs over the link-state database."),
    OC(bad_signature, "cp2p_overlay_bad_signatures_total",
       "Route updates and LSAs whose signature did not verify (stream reset)."),
    OC(verify_budget, "cp2p_overlay_verify_budget_exceeded_total",
       "Route updates and LSAs skipped: a neighbour spent its signature-verification budget."),
    OC(frames_rejected, "cp2p_overlay_frames_rejected_total",
       "Frames refused: malformed, over a limit, bad signature, other version."),
    OC(version_mismatch, "cp2p_overlay_version_mismatch_total",
       "Frames of another overlay wire version."),
    OC(nodes_refused, "cp2p_overlay_nodes_refused_total", "Peers refused: node table full."),
    OC(sent, "cp2p_overlay_messages_sent_total", "Messages sent by this node."),
    OC(delivered, "cp2p_overlay_messages_delivered_total",
       "Messages delivered to the application (each once)."),
    OC(forwarded, "cp2p_overlay_messages_forwarded_total", "Messages forwarded for others."),
    OC(dropped_hop_limit, "cp2p_overlay_dropped_hop_limit_total",
       "Messages dropped: hop limit reached."),
    OC(dropped_no_route, "cp2p_overlay_dropped_no_route_total",
       "Messages dropped: no route to the destination."),
    OC(dropped_bad_route, "cp2p_overlay_dropped_bad_route_total",
       "Source-routed messages whose route does not name this node."),
    OC(dropped_events_full, "cp2p_overlay_dropped_events_full_total",
       "Messages for us not taken: delivery queue full (not acked; retransmitted)."),
    OC(retransmissions, "cp2p_overlay_retransmissions_total", "Reliable retransmissions."),
    OC(failed, "cp2p_overlay_failed_total", "Reliable messages failed after the retry limit."),
    OC(acks_sent, "cp2p_overlay_acks_sent_total", "Acknowledgements sent."),
    OC(acks_received, "cp2p_overlay_acks_received_total", "Acknowledgements of our messages."),
    OC(acks_unknown, "cp2p_overlay_acks_unknown_total",
       "Acknowledgements for no message in flight (late, duplicated or forged)."),
    OC(duplicates, "cp2p_overlay_duplicates_suppressed_total",
       "Messages received again and not delivered again."),
    OC(stale, "cp2p_overlay_stale_total",
       "Messages below a source's dedup floor: neither delivered nor acked."),
    OC(out_dropped, "cp2p_overlay_out_dropped_total", "Frames dropped: output queue full."),
    OC(neighbours_silent, "cp2p_overlay_neighbours_silent_total",
       "Neighbours silent for a route expiry (stalled link), left out of our LSA."),
    OC(link_refused, "cp2p_overlay_link_refused_total",
       "Frames a neighbour's framed link refused (queue full or peer gone)."),
};

int cp2p_overlay_metrics_update(cp2p_overlay_metrics **state, const cp2p_overlay *ov,
                                cp2p_metrics *reg)
{
    if (state == NULL || ov == NULL || reg == NULL) {
        return CP2P_EINVAL;
    }
    cp2p_overlay_stats st;
    cp2p_overlay_stats_get(ov, &st);
    return cp2p__stats_metrics_update((cp2p__stats_metrics **)state, reg, overlay_defs,
                                      sizeof(overlay_defs) / sizeof(overlay_defs[0]), &st);
}

void cp2p_overlay_metrics_free(cp2p_overlay_metrics *state)
{
    cp2p__stats_metrics_free((cp2p__stats_metrics *)state);
}
