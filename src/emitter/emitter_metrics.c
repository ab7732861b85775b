/* The emitter's counters as metrics (cp2p_host_emitter_metrics_update, cp2p/emitter.h): one
 * table over cp2p_host_emitter_stats, copied by the shared stats table (metrics/stats_table.h).
 * Names and meanings: docs/METRICS.md. */
#include <cp2p/emitter.h>
#include <cp2p/metrics.h>

#include "metrics/stats_table.h"

#define EC(f, name, help) {name, help, offsetof(cp2p_host_emitter_stats, core.f), false}
#define EB(f, name, help) {name, help, offsetof(cp2p_host_emitter_stats, f), false}
static const cp2p__stat_def emitter_defs[] = {
    EC(added, "cp2p_emitter_messages_added_total", "Messages accepted for emission."),
    EC(emitted_batches, "cp2p_emitter_batches_total", "Emissions with at least one message."),
    EC(messages_sent, "cp2p_emitter_message_copies_total",
       "Message copies chosen for peers, over all frames."),
    EC(refused_full, "cp2p_emitter_refused_full_total",
       "Messages refused because the queue was full."),
    EC(refused_limit, "cp2p_emitter_refused_too_large_total",
       "Messages refused because they were too large."),
    EC(unrouted, "cp2p_emitter_unrouted_total",
       "Message iterations spent with no eligible peer."),
    EB(frames_sent, "cp2p_emitter_frames_sent_total", "Frames handed to a peer's stream."),
    EB(msgs_sent, "cp2p_emitter_messages_sent_total", "Messages in those frames."),
    EB(bytes_sent, "cp2p_emitter_sent_bytes_total", "Bytes of those frames, framing included."),
    EB(frames_dropped, "cp2p_emitter_frames_dropped_total",
       "Frames lost: pending queue full, open failed, or the stream refused them."),
    EB(streams_opened, "cp2p_emitter_streams_opened_total", "Outbound streams negotiated."),
    EB(open_failed, "cp2p_emitter_stream_open_failures_total", "Outbound opens that failed."),
    EB(frames_received, "cp2p_emitter_frames_received_total", "Complete frames received."),
    EB(msgs_received, "cp2p_emitter_messages_received_total",
       "Messages handed to the receive handler."),
    EB(malformed, "cp2p_emitter_malformed_total", "Inbound streams reset for a malformed frame."),
    EB(truncated, "cp2p_emitter_truncated_total", "Inbound streams that ended inside a frame."),
    EB(refused, "cp2p_emitter_inbound_refused_total", "Inbound streams refused."),
    EB(peers_refused, "cp2p_emitter_peers_refused_total",
       "Candidate peers not tracked (max_peers)."),
};

int cp2p_host_emitter_metrics_update(cp2p_host_emitter_metrics **state,
                                     const cp2p_host_emitter *he, cp2p_metrics *reg)
{
    if (state == NULL || he == NULL || reg == NULL) {
        return CP2P_EINVAL;
    }
    cp2p_host_emitter_stats st;
    cp2p_host_emitter_stats_get(he, &st);
    return cp2p__stats_metrics_update((cp2p__stats_metrics **)state, reg, emitter_defs,
                                      sizeof(emitter_defs) / sizeof(emitter_defs[0]), &st);
}

void cp2p_host_emitter_metrics_free(cp2p_host_emitter_metrics *state)
{
    cp2p__stats_metrics_free((cp2p__stats_metrics *)state);
}
