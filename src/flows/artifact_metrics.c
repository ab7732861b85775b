/* Artifact gossip metrics (cp2p_artifact_metrics_update, cp2p/artifact.h): the layer's counters
 * unlabelled, and each flow's queue depth, in flight, processed, dropped and handling latency
 * labelled by flow. Copied by the shared stats table (metrics/stats_table.h). Names and
 * meanings: docs/METRICS.md. */
#include <cp2p/artifact.h>
#include <cp2p/metrics.h>

#include "flows/artifact_internal.h"
#include "metrics/stats_table.h"
#include "util/alloc.h"

#define AC(f, name, help) {name, help, offsetof(cp2p_artifact_stats, f), false}
#define AG(f, name, help) {name, help, offsetof(cp2p_artifact_stats, f), true}
static const cp2p__stat_def art_defs[] = {
    AG(held, "cp2p_artifact_held", "Artifacts held and advertised."),
    AG(fetching, "cp2p_artifact_fetching", "Artifacts being fetched or validated."),
    AG(peers, "cp2p_artifact_peers", "Peers the layer exchanges with."),
    AC(published, "cp2p_artifact_published_total", "Artifacts published by this node."),
    AC(stored, "cp2p_artifact_stored_total", "Artifacts received and stored by the pool."),
    AC(rejected, "cp2p_artifact_rejected_total", "Artifacts the pool refused to store."),
    AC(adverts_received, "cp2p_artifact_adverts_received_total", "Adverts received."),
    AC(adverts_evicted, "cp2p_artifact_adverts_evicted_total",
       "Adverts forgotten because a peer's table was at its bound."),
    AC(pushes_received, "cp2p_artifact_pushes_received_total", "Small artifacts received whole."),
    AC(pushes_dup, "cp2p_artifact_pushes_dup_total",
       "Small artifacts received whole that were held or being fetched (answered by a prune)."),
    AC(adverts_lazy, "cp2p_artifact_adverts_lazy_total",
       "Small artifacts advertised instead of pushed (the peer pruned us)."),
    AC(prunes_sent, "cp2p_artifact_prunes_sent_total", "Prunes sent (a duplicate push)."),
    AC(prunes_received, "cp2p_artifact_prunes_received_total", "Prunes received."),
    AC(grafts, "cp2p_artifact_grafts_total",
       "Pruned peers that fetched a small artifact of ours (pushed to again)."),
    AC(small_pulled, "cp2p_artifact_small_pulled_total",
       "Small artifacts fetched after waiting for a push that did not come."),
    AC(chunks_requested, "cp2p_artifact_chunks_requested_total", "Chunk requests sent."),
    AC(chunks_received, "cp2p_artifact_chunks_received_total", "Chunks received."),
    AC(chunks_corrupt, "cp2p_artifact_chunks_corrupt_total",
       "Chunks that did not match their manifest hash (the sender is penalised)."),
    AC(chunks_timeout, "cp2p_artifact_chunk_timeouts_total",
       "Chunk requests unanswered in time (asked of another peer)."),
    AC(chunks_served, "cp2p_artifact_chunks_served_total", "Chunks sent to peers."),
    AC(requests_dropped, "cp2p_artifact_requests_dropped_total",
       "Chunk requests dropped: a peer had too many being served."),
    AC(retrans_limited, "cp2p_artifact_retransmissions_limited_total",
       "Retransmission requests over a peer's rate limit."),
    AC(outbox_dropped, "cp2p_artifact_outbox_dropped_total",
       "Messages not queued: a peer's outbox was full."),
    AC(frames_malformed, "cp2p_artifact_frames_malformed_total",
       "Frames rejected as malformed (the stream is reset)."),
    AC(fetches_bad_whole, "cp2p_artifact_bad_whole_total",
       "Artifacts whose chunks matched the manifest but whose whole did not match the id."),
    AC(peers_banned, "cp2p_artifact_peers_banned_total", "Peers no longer asked for anything."),
    AC(partial_adverts_sent, "cp2p_artifact_partial_adverts_sent_total",
       "Partial adverts sent: peers told that we fetch an artifact (one per peer and fetch)."),
    AC(partial_adverts_received, "cp2p_artifact_partial_adverts_received_total",
       "Partial adverts received: a peer fetches an artifact and will announce its chunks."),
    AC(haves_sent, "cp2p_artifact_haves_sent_total",
       "Have messages sent (chunks of a fetch in progress announced to a peer)."),
    AC(haves_received, "cp2p_artifact_haves_received_total", "Have messages received."),
    AC(chunks_served_partial, "cp2p_artifact_chunks_served_partial_total",
       "Chunks served from a fetch in progress (also counted in chunks_served)."),
    AG(broadcaster_held, "cp2p_artifact_broadcaster_held",
       "Publications held by the advert broadcaster until start."),
    AC(broadcaster_dropped, "cp2p_artifact_broadcaster_dropped_total",
       "Publications the advert broadcaster refused (full)."),
    AC(bytes_sent, "cp2p_artifact_sent_bytes_total", "Bytes of frames sent, framing included."),
    AC(bytes_received, "cp2p_artifact_received_bytes_total", "Bytes of frames received."),
};
#define NART (sizeof(art_defs) / sizeof(art_defs[0]))

#define FC(f, name, help) {name, help, offsetof(cp2p_artifact_flow_stats, f), false}
#define FG(f, name, help) {name, help, offsetof(cp2p_artifact_flow_stats, f), true}
static const cp2p__stat_def flow_defs[] = {
    FG(queued, "cp2p_artifact_flow_queue_depth", "Items waiting for a worker of the flow."),
    FG(inflight, "cp2p_artifact_flow_in_flight", "Items taken by a worker and not yet answered."),
    FC(processed, "cp2p_artifact_flow_processed_total", "Items the flow's workers handled."),
    FC(dropped, "cp2p_artifact_flow_dropped_total", "Items refused: the flow's queue was full."),
};
#define NFLOW (sizeof(flow_defs) / sizeof(flow_defs[0]))

/* Latency in seconds (Prometheus base unit), outside the integer stats table. */
enum { LAT_SUM, LAT_MAX, NLAT };
static const cp2p_metric_desc lat_descs[NLAT] = {
    [LAT_SUM] = {.type = CP2P_METRIC_COUNTER, .name = "cp2p_artifact_flow_handling_seconds_total",
                 .help = "Sum over handled items of the time from queueing to the end of "
                         "handling.",
                 .labels = {"flow"}},
    [LAT_MAX] = {.type = CP2P_METRIC_GAUGE, .name = "cp2p_artifact_flow_handling_max_seconds",
                 .help = "Longest time from queueing to the end of handling of one item.",
                 .labels = {"flow"}},
};

struct cp2p__artifact_metrics {
    cp2p_metrics *reg;
    cp2p__stats_metrics *plain;
    cp2p_metric_family *fams[NFLOW];
    cp2p_metric *series[CP2P_ARTIFACT_FLOWS][NFLOW];
    uint64_t last[CP2P_ARTIFACT_FLOWS][NFLOW];
    cp2p_metric *lat[CP2P_ARTIFACT_FLOWS][NLAT];
    uint64_t lat_last[CP2P_ARTIFACT_FLOWS];
};

static const char *const flow_names[CP2P_ARTIFACT_FLOWS] = {"advert", "request", "chunk",
                                                            "retransmission", "transport"};

int cp2p_artifact_metrics_update(cp2p_artifact *a, cp2p_metrics *reg)
{
    if (a == NULL || reg == NULL) {
        return CP2P_EINVAL;
    }
    cp2p__artifact_metrics **slot = cp2p__artifact_metrics_slot(a);
    cp2p__artifact_metrics *m = *slot;
    int rc;
    if (m == NULL) {
        if ((m = cp2p_calloc(1, sizeof(*m))) == NULL) {
            return CP2P_ENOMEM;
        }
        if ((rc = cp2p__stats_fams_register(reg, flow_defs, NFLOW, "flow", m->fams)) != 0) {
            cp2p_free(m);
            return rc;
        }
        cp2p_metric_family *lf[NLAT];
        for (int i = 0; i < NLAT; i++) {
            if ((rc = cp2p_metrics_register(reg, &lat_descs[i], &lf[i])) != 0) {
                cp2p_free(m);
                return rc;
            }
        }
        for (int f = 0; f < CP2P_ARTIFACT_FLOWS; f++) {
            for (int i = 0; i < NLAT; i++) {
                if ((rc = cp2p_metrics_series(lf[i], &flow_names[f], 1, &m->lat[f][i])) != 0) {
                    cp2p_free(m);
                    return rc;
                }
            }
            for (size_t i = 0; i < NFLOW; i++) {
                if ((rc = cp2p_metrics_series(m->fams[i], &flow_names[f], 1,
                                              &m->series[f][i])) != 0) {
                    cp2p_free(m);
                    return rc;
                }
            }
        }
        m->reg = reg;
        *slot = m;
    }
    if (m->reg != reg) {
        return CP2P_EINVAL;
    }
    cp2p_artifact_stats st;
    cp2p_artifact_stats_get(a, &st);
    if ((rc = cp2p__stats_metrics_update(&m->plain, reg, art_defs, NART, &st)) != 0) {
        return rc;
    }
    for (int f = 0; f < CP2P_ARTIFACT_FLOWS; f++) {
        cp2p__stats_copy(m->series[f], m->last[f], flow_defs, NFLOW, &st.flows[f]);
        cp2p_metric_add(m->lat[f][LAT_SUM],
                        (double)(st.flows[f].latency_ns_sum - m->lat_last[f]) / 1e9);
        m->lat_last[f] = st.flows[f].latency_ns_sum;
        cp2p_metric_set(m->lat[f][LAT_MAX], (double)st.flows[f].latency_ns_max / 1e9);
    }
    return 0;
}

void cp2p__artifact_metrics_free(cp2p__artifact_metrics *m)
{
    if (m == NULL) {
        return;
    }
    cp2p__stats_metrics_free(m->plain);
    cp2p_free(m);
}
