/* The switch's counters as metrics (cp2p_switch_metrics_update, cp2p/reactor.h): switch-wide
 * rows over cp2p_switch_stats, and per channel rows over cp2p_channel_stats with the label
 * channel="0xNN", copied by the shared stats table (metrics/stats_table.h). The channel label
 * takes at most CP2P_SWITCH_MAX_CHANNELS values, all chosen locally; per-peer rows (label peer)
 * at most 64 series a family, the rest in peer="_other". Names: docs/METRICS.md. */
#include <stdio.h>
#include <string.h>

#include <cp2p/metrics.h>
#include <cp2p/reactor.h>

#include "metrics/stats_table.h"
#include "reactor/reactor.h"

#define SW(f, name, help) {name, help, offsetof(cp2p_switch_stats, f), false}
#define SWG(f, name, help) {name, help, offsetof(cp2p_switch_stats, f), true}
static const cp2p__stat_def switch_defs[] = {
    SWG(peers, "cp2p_switch_peers", "Peers added to the reactors now."),
    SW(peers_added, "cp2p_switch_peers_added_total", "Peers added to the reactors."),
    SW(peers_removed, "cp2p_switch_peers_removed_total", "Peers removed from the reactors."),
    SW(pong_timeouts, "cp2p_switch_pong_timeouts_total",
       "Peers removed because they did not answer a keepalive ping in time."),
    SW(peers_refused, "cp2p_switch_peers_refused_total", "Peers not tracked (max_peers)."),
    SW(foreign_peers, "cp2p_switch_foreign_peers_total",
       "Connected peers that run no switch (keepalive refused)."),
    SW(channel_refused, "cp2p_switch_channel_refused_total",
       "Channel streams the peer refused (no reactor on the channel there)."),
    SW(inbound_refused, "cp2p_switch_inbound_refused_total", "Inbound channel streams refused."),
    SW(inbound_waiting, "cp2p_switch_inbound_waiting_total",
       "Inbound channel streams that waited for an earlier one of the channel to end."),
    SW(bad_streams, "cp2p_switch_bad_streams_total",
       "Inbound channel streams reset for bad input."),
    SW(rejected_network, "cp2p_switch_rejected_network_total",
       "Peers rejected at the node info handshake: another network."),
    SW(rejected_block_version, "cp2p_switch_rejected_block_version_total",
       "Peers rejected at the node info handshake: another block protocol version."),
    SW(rejected_no_channels, "cp2p_switch_rejected_no_channels_total",
       "Peers rejected at the node info handshake: no channel in common."),
    SW(rejected_bad_node_info, "cp2p_switch_rejected_bad_node_info_total",
       "Peers rejected at the node info handshake: malformed node info or another peer id."),
    SW(handshake_timeouts, "cp2p_switch_handshake_timeouts_total",
       "Peers rejected because their node info did not arrive in time."),
    SW(bytes_sent, "cp2p_switch_sent_bytes_total", "Channel bytes sent, all peers."),
    SW(bytes_received, "cp2p_switch_received_bytes_total", "Channel bytes received, all peers."),
};
#define NSW (sizeof(switch_defs) / sizeof(switch_defs[0]))

#define CH(f, name, help) {name, help, offsetof(cp2p_channel_stats, f), false}
#define CHG(f, name, help) {name, help, offsetof(cp2p_channel_stats, f), true}
static const cp2p__stat_def channel_defs[] = {
    CH(msgs_sent, "cp2p_channel_sent_messages_total", "Messages sent on the channel."),
    CH(bytes_sent, "cp2p_channel_sent_bytes_total", "Bytes sent on the channel."),
    CH(msgs_received, "cp2p_channel_received_messages_total", "Messages received."),
    CH(bytes_received, "cp2p_channel_received_bytes_total", "Bytes received."),
    CH(send_timeouts, "cp2p_channel_send_timeouts_total", "Sends that timed out."),
    CH(try_send_refused, "cp2p_channel_try_send_refused_total",
       "try_send calls refused because the channel's queue was full."),
    CH(too_large, "cp2p_channel_too_large_total", "Sends over the largest message."),
    CH(send_dropped, "cp2p_channel_send_dropped_total",
       "Queued messages lost (stream died, channel refused by the peer)."),
    CH(oversized, "cp2p_channel_oversized_total",
       "Inbound streams reset for a message over the largest size."),
    CH(malformed, "cp2p_channel_malformed_total",
       "Inbound streams reset for a malformed length prefix."),
    CH(truncated, "cp2p_channel_truncated_total", "Inbound streams that ended inside a message."),
    CH(read_pauses, "cp2p_channel_read_pauses_total",
       "Times a peer's channel stopped reading because its receive queue was full."),
    CHG(send_queued, "cp2p_channel_send_queue_depth", "Messages waiting to be sent, all peers."),
    CHG(recv_queued, "cp2p_channel_recv_queue_depth", "Messages waiting for receive, all peers."),
};
#define NCHD (sizeof(channel_defs) / sizeof(channel_defs[0]))

/* Per peer, label peer="<ID>": at most PEER_SERIES series a family (the registry puts the rest
 * in peer="_other"), so the label set stays bounded whatever the peers' churn. */
#define PEER_SERIES 64
#define PR(f, name, help) {name, help, offsetof(cp2p_reactor_peer_stats, f), false}
static const cp2p__stat_def peer_defs[] = {
    PR(bytes_sent, "cp2p_switch_peer_sent_bytes_total", "Channel bytes sent to the peer."),
    PR(bytes_received, "cp2p_switch_peer_received_bytes_total",
       "Channel bytes received from the peer."),
};
#define NPR (sizeof(peer_defs) / sizeof(peer_defs[0]))

/* Throttled time is kept in milliseconds and exported in seconds (Prometheus base units), so
 * these rows are copied here rather than by the stats table (which copies whole numbers). */
static const char *const throttle_names[2][2] = {
    {"cp2p_switch_send_throttled_seconds_total", "cp2p_switch_recv_throttled_seconds_total"},
    {"cp2p_switch_peer_send_throttled_seconds_total",
     "cp2p_switch_peer_recv_throttled_seconds_total"},
};
static const char *const throttle_help[2] = {
    "Time spent waiting for send tokens (rate limit).",
    "Time reading was paused by the receive rate limit.",
};

static void ms_copy(cp2p_metric *m, uint64_t *last, uint64_t v)
{
    if (v > *last) {
        cp2p_metric_add(m, (double)(v - *last) / 1000.0);
    }
    *last = v;
}

/* One current peer's series; entries of peers that left are dropped at the next update (their
 * series stay in the registry, stopped). */
typedef struct peer_entry {
    struct peer_entry *next;
    cp2p_peer_id id;
    bool seen;
    cp2p_metric *series[NPR];
    uint64_t last[NPR];
    cp2p_metric *thr[2];
    uint64_t thr_last[2];
} peer_entry;

typedef struct ch_entry {
    bool used;
    uint8_t id;
    cp2p_metric *series[NCHD];
    uint64_t last[NCHD];
} ch_entry;

struct cp2p_switch_metrics {
    cp2p_metrics *reg;
    cp2p__stats_metrics *sw_state;
    cp2p_metric_family *fams[NCHD];
    ch_entry ch[CP2P_SWITCH_MAX_CHANNELS];
    cp2p_metric_family *peer_fams[NPR];
    cp2p_metric_family *peer_thr_fams[2];
    cp2p_metric *thr[2]; /* switch-wide */
    uint64_t thr_last[2];
    peer_entry *peers;
};

static int peer_entry_for(cp2p_switch_metrics *m, const cp2p_peer_id *id, peer_entry **out)
{
    for (peer_entry *e = m->peers; e != NULL; e = e->next) {
        if (cp2p_peer_id_equal(&e->id, id)) {
            *out = e;
            return 0;
        }
    }
    peer_entry *e = cp2p_calloc(1, sizeof(*e));
    if (e == NULL) {
        return CP2P_ENOMEM;
    }
    char text[CP2P_PEER_ID_STR_MAX];
    const char *v = cp2p_peer_id_str(id, text);
    for (size_t i = 0; i < NPR + 2; i++) {
        int rc = i < NPR ? cp2p_metrics_series(m->peer_fams[i], &v, 1, &e->series[i])
                         : cp2p_metrics_series(m->peer_thr_fams[i - NPR], &v, 1,
                                               &e->thr[i - NPR]);
        if (rc != 0) {
            cp2p_free(e);
            return rc;
        }
    }
    e->id = *id;
    e->next = m->peers;
    m->peers = e;
    *out = e;
    return 0;
}

static int peers_update(cp2p_switch_metrics *m, const cp2p_switch *sw)
{
    for (peer_entry *e = m->peers; e != NULL; e = e->next) {
        e->seen = false;
    }
    size_t n = cp2p_switch_peers(sw, NULL, 0);
    cp2p_reactor_peer **list = n > 0 ? cp2p_calloc(n, sizeof(*list)) : NULL;
    if (n > 0 && list == NULL) {
        return CP2P_ENOMEM;
    }
    n = cp2p_switch_peers(sw, list, n);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        peer_entry *e;
        cp2p_reactor_peer_stats ps;
        if ((rc = peer_entry_for(m, cp2p_reactor_peer_id(list[i]), &e)) != 0) {
            break;
        }
        cp2p_reactor_peer_stats_get(list[i], &ps);
        cp2p__stats_copy(e->series, e->last, peer_defs, NPR, &ps);
        ms_copy(e->thr[0], &e->thr_last[0], ps.send_throttled_ms);
        ms_copy(e->thr[1], &e->thr_last[1], ps.recv_throttled_ms);
        e->seen = true;
    }
    cp2p_free(list);
    for (peer_entry **pp = &m->peers; *pp != NULL;) {
        peer_entry *e = *pp;
        if (rc == 0 && !e->seen) {
            *pp = e->next;
            cp2p_free(e);
        } else {
            pp = &e->next;
        }
    }
    return rc;
}

static int entry_for(cp2p_switch_metrics *m, uint8_t id, ch_entry **out)
{
    ch_entry *free_slot = NULL;
    for (size_t i = 0; i < CP2P_SWITCH_MAX_CHANNELS; i++) {
        if (m->ch[i].used && m->ch[i].id == id) {
            *out = &m->ch[i];
            return 0;
        }
        if (!m->ch[i].used && free_slot == NULL) {
            free_slot = &m->ch[i];
        }
    }
    if (free_slot == NULL) {
        return CP2P_EFULL;
    }
    char label[8];
    snprintf(label, sizeof(label), "0x%02x", id);
    const char *v = label;
    for (size_t i = 0; i < NCHD; i++) {
        int rc = cp2p_metrics_series(m->fams[i], &v, 1, &free_slot->series[i]);
        if (rc != 0) {
            return rc;
        }
    }
    free_slot->used = true;
    free_slot->id = id;
    *out = free_slot;
    return 0;
}

int cp2p_switch_metrics_update(cp2p_switch_metrics **state, const cp2p_switch *sw,
                               cp2p_metrics *reg)
{
    if (state == NULL || sw == NULL || reg == NULL) {
        return CP2P_EINVAL;
    }
    cp2p_switch_metrics *m = *state;
    if (m == NULL) {
        if ((m = cp2p_calloc(1, sizeof(*m))) == NULL) {
            return CP2P_ENOMEM;
        }
        int rc = cp2p__stats_fams_register(reg, channel_defs, NCHD, "channel", m->fams);
        for (size_t i = 0; rc == 0 && i < NPR; i++) {
            cp2p_metric_desc d = {.type = CP2P_METRIC_COUNTER, .name = peer_defs[i].name,
                                  .help = peer_defs[i].help, .labels = {"peer"},
                                  .max_series = PEER_SERIES};
            rc = cp2p_metrics_register(reg, &d, &m->peer_fams[i]);
        }
        for (size_t i = 0; rc == 0 && i < 2; i++) {
            cp2p_metric_family *fam;
            cp2p_metric_desc d = {.type = CP2P_METRIC_COUNTER, .name = throttle_names[0][i],
                                  .help = throttle_help[i]};
            rc = cp2p_metrics_register(reg, &d, &fam);
            rc = rc != 0 ? rc : cp2p_metrics_series(fam, NULL, 0, &m->thr[i]);
            cp2p_metric_desc dp = {.type = CP2P_METRIC_COUNTER, .name = throttle_names[1][i],
                                   .help = throttle_help[i], .labels = {"peer"},
                                   .max_series = PEER_SERIES};
            rc = rc != 0 ? rc : cp2p_metrics_register(reg, &dp, &m->peer_thr_fams[i]);
        }
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
    cp2p_switch_stats st;
    cp2p_switch_stats_get(sw, &st);
    int rc = cp2p__stats_metrics_update(&m->sw_state, reg, switch_defs, NSW, &st);
    if (rc != 0) {
        return rc;
    }
    ms_copy(m->thr[0], &m->thr_last[0], st.send_throttled_ms);
    ms_copy(m->thr[1], &m->thr_last[1], st.recv_throttled_ms);
    uint8_t ids[CP2P_SWITCH_MAX_CHANNELS];
    size_t n = cp2p__switch_channel_ids(sw, ids, CP2P_SWITCH_MAX_CHANNELS);
    for (size_t i = 0; i < n && i < CP2P_SWITCH_MAX_CHANNELS; i++) {
        cp2p_channel_stats cs;
        ch_entry *e;
        if (cp2p_switch_channel_stats(sw, ids[i], &cs) != 0) {
            continue;
        }
        if ((rc = entry_for(m, ids[i], &e)) != 0) {
            return rc;
        }
        cp2p__stats_copy(e->series, e->last, channel_defs, NCHD, &cs);
    }
    return peers_update(m, sw);
}

void cp2p_switch_metrics_free(cp2p_switch_metrics *state)
{
    if (state == NULL) {
        return;
    }
    cp2p__stats_metrics_free(state->sw_state);
    for (peer_entry *e = state->peers, *next; e != NULL; e = next) {
        next = e->next;
        cp2p_free(e);
    }
    cp2p_free(state);
}
