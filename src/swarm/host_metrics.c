/* The host's counters as metrics, and the connection views of the node's HTTP API (see
 * cp2p/host_info.h). Loop thread only: every value is read where the host writes it, then stored
 * through the registry's lock-free handles, so a render on an HTTP thread never reads a host
 * struct (no data race, unlike a collector reading the stats racily).
 *
 * A host counter (a uint64_t that only grows) becomes a registry counter by adding, at each
 * update, what it grew since the previous one; gauges are set. Yamux counters are host-wide
 * totals: those of the connections already closed (added by conn_teardown) plus the live
 * sessions'. Stream bytes per protocol come from the host's bounded proto_stats table, one
 * series per row, created when the row appears. */
#include <stddef.h>
#include <string.h>

#include <cp2p/host_info.h>
#include "swarm/swarm.h"
#include "util/alloc.h"

/* ---- what is exported ---- */

/* Counters: entries with the same name in a row share one family (their label values differ). */
typedef enum {
    C_CONNS_OPENED,
    C_CONNS_CLOSED,
    C_INBOUND_REFUSED,
    C_UPGRADE_FAILED,
    C_STREAMS_OPENED,
    C_STREAMS_REFUSED,
    C_NEG_FAILED,
    C_NEG_DEFERRED,
    C_STREAMS_LAZY,
    C_LAZY_REFUSED,
    C_PROTO_ERRORS,
    C_OVER_PROTO_LIMIT,
    C_OVER_PEER_LIMIT,
    C_TRIMMED,
    C_CM_REFUSED_RATE,
    C_CM_REFUSED_PER_IP,
    C_PS_EVICTIONS,
    C_PS_ADDRS_DROPPED,
    C_PS_DB_ERRORS,
    C_BYTES_IN,
    C_BYTES_OUT,
    C_NOISE_OK,
    C_NOISE_FAIL_FIRST,
    C_NOISE_FAIL_LAST = C_NOISE_FAIL_FIRST + CP2P__NOISE_FAIL_COUNT - 1,
    C_YX_FRAMES_IN,
    C_YX_FRAMES_OUT,
    C_YX_OPENED_LOCAL,
    C_YX_OPENED_REMOTE,
    C_YX_REFUSED,
    C_YX_REFUSALS_UNSENT,
    C_YX_RESET_REMOTE,
    C_YX_RESET_LOCAL,
    C_YX_FRAMES_DISCARDED,
    C_YX_BYTES_DISCARDED,
    C_YX_WU_IN,
    C_YX_WU_OUT,
    C_YX_WINDOW_STALLS,
    C_YX_OUT_STALLS,
    C_YX_GROWTHS,
    C_YX_GROWTHS_DENIED,
    C_YX_RECV_CAP_RESETS,
    C_YX_PINGS_SENT,
    C_YX_PONGS_SENT,
    C_YX_PONGS_DROPPED,
    C_YX_PONGS_UNMATCHED,
    C_YX_PING_TIMEOUTS,
    C_YX_ALLOC_FAILURES,
    C_YX_PERR_FIRST,
    C_YX_PERR_LAST = C_YX_PERR_FIRST + CP2P__YAMUX_PERR_COUNT - 1,
    C_COUNT
} counter_id;

typedef struct {
    const char *name, *help, *label, *value; /* label NULL: no label */
} metric_def;

static const metric_def counters[C_COUNT] = {
    [C_CONNS_OPENED] = {"cp2p_host_connections_opened_total",
                        "Connections that completed their upgrade (Noise and yamux), both "
                        "directions.", NULL, NULL},
    [C_CONNS_CLOSED] = {"cp2p_host_connections_closed_total",
                        "Upgraded connections that closed, for any reason.", NULL, NULL},
    [C_INBOUND_REFUSED] = {"cp2p_host_inbound_refused_total",
                           "Inbound connections refused at accept: connection limit, upgrade "
                           "backlog, or the connection manager's rate and per-IP admission.",
                           NULL, NULL},
    [C_UPGRADE_FAILED] = {"cp2p_host_upgrade_failures_total",
                          "Connections that closed before their upgrade completed (dials and "
                          "accepted sockets).", NULL, NULL},
    [C_STREAMS_OPENED] = {"cp2p_host_streams_opened_total",
                          "Streams negotiated to a protocol, both directions.", NULL, NULL},
    [C_STREAMS_REFUSED] = {"cp2p_host_streams_refused_total",
                           "Inbound streams reset at once (host or connection closing, no "
                           "handler, out of memory).", NULL, NULL},
    [C_NEG_FAILED] = {"cp2p_host_negotiation_failures_total",
                      "Outbound streams whose multistream-select negotiation failed.", NULL,
                      NULL},
    [C_NEG_DEFERRED] = {"cp2p_host_negotiation_deferred_total",
                        "Multistream-select answers that waited behind other streams' output.",
                        NULL, NULL},
    [C_STREAMS_LAZY] = {"cp2p_host_streams_opened_lazy_total",
                        "Outbound streams opened lazily: the peer's identify listed the "
                        "protocol, so its data followed the proposal without waiting for the "
                        "echo.", NULL, NULL},
    [C_LAZY_REFUSED] = {"cp2p_host_lazy_negotiation_refused_total",
                        "Lazily opened streams that the peer refused (\"na\") although its "
                        "identify listed the protocol (also in negotiation failures).",
                        NULL, NULL},
    [C_PROTO_ERRORS] = {"cp2p_host_protocol_errors_total",
                        "Connections closed because the peer broke a protocol or a limit.", NULL,
                        NULL},
    [C_OVER_PROTO_LIMIT] = {"cp2p_host_streams_over_protocol_limit_total",
                            "Inbound streams reset for passing the per-connection limit of "
                            "their protocol.", NULL, NULL},
    [C_OVER_PEER_LIMIT] = {"cp2p_host_connections_over_peer_limit_total",
                           "Connections closed at upgrade for passing the per-peer connection "
                           "limit.", NULL, NULL},
    [C_TRIMMED] = {"cp2p_host_connections_trimmed_total",
                   "Connections closed by the connection manager above its high water mark.",
                   NULL, NULL},
    [C_CM_REFUSED_RATE] = {"cp2p_connmgr_inbound_refused_total",
                           "Inbound connections refused by the connection manager's admission, "
                           "by reason.", "reason", "rate"},
    [C_CM_REFUSED_PER_IP] = {"cp2p_connmgr_inbound_refused_total", NULL, "reason", "per_ip"},
    [C_PS_EVICTIONS] = {"cp2p_peerstore_evictions_total",
                        "Peers evicted from the peerstore to make room.", NULL, NULL},
    [C_PS_ADDRS_DROPPED] = {"cp2p_peerstore_addrs_dropped_total",
                            "Addresses dropped by the peerstore's per-peer cap.", NULL, NULL},
    [C_PS_DB_ERRORS] = {"cp2p_peerstore_db_errors_total",
                        "Failed peerstore database operations.", NULL, NULL},
    [C_BYTES_IN] = {"cp2p_host_received_bytes_total",
                    "Yamux data payload bytes received on all connections (stream bytes, "
                    "multistream-select included), closed connections included.", NULL, NULL},
    [C_BYTES_OUT] = {"cp2p_host_sent_bytes_total",
                     "Yamux data payload bytes sent on all connections, closed connections "
                     "included.", NULL, NULL},
    [C_NOISE_OK] = {"cp2p_noise_handshakes_total", "Noise handshakes completed.", NULL, NULL},
    [C_NOISE_FAIL_FIRST + CP2P__NOISE_FAIL_TIMEOUT] =
        {"cp2p_noise_handshake_failures_total",
         "Connections that closed during their Noise handshake, by reason.", "reason",
         "timeout"},
    [C_NOISE_FAIL_FIRST + CP2P__NOISE_FAIL_PEER_ID] = {"cp2p_noise_handshake_failures_total",
                                                       NULL, "reason", "peer_id"},
    [C_NOISE_FAIL_FIRST + CP2P__NOISE_FAIL_SIGNATURE] = {"cp2p_noise_handshake_failures_total",
                                                         NULL, "reason", "signature"},
    [C_NOISE_FAIL_FIRST + CP2P__NOISE_FAIL_PROTOCOL] = {"cp2p_noise_handshake_failures_total",
                                                        NULL, "reason", "protocol"},
    [C_NOISE_FAIL_FIRST + CP2P__NOISE_FAIL_CLOSED] = {"cp2p_noise_handshake_failures_total",
                                                      NULL, "reason", "closed"},
    [C_NOISE_FAIL_FIRST + CP2P__NOISE_FAIL_OTHER] = {"cp2p_noise_handshake_failures_total",
                                                     NULL, "reason", "other"},
    [C_YX_FRAMES_IN] = {"cp2p_yamux_frames_received_total", "Yamux frames received.", NULL,
                        NULL},
    [C_YX_FRAMES_OUT] = {"cp2p_yamux_frames_sent_total", "Yamux frames sent.", NULL, NULL},
    [C_YX_OPENED_LOCAL] = {"cp2p_yamux_streams_opened_total",
                           "Yamux streams opened, by the side that opened them.", "origin",
                           "local"},
    [C_YX_OPENED_REMOTE] = {"cp2p_yamux_streams_opened_total", NULL, "origin", "remote"},
    [C_YX_REFUSED] = {"cp2p_yamux_streams_refused_total",
                      "Peer stream openings answered with a reset (stream limits, GoAway, "
                      "memory).", NULL, NULL},
    [C_YX_REFUSALS_UNSENT] = {"cp2p_yamux_refusals_unsent_total",
                              "Refusals whose reset was not sent because the control backlog "
                              "was too long.", NULL, NULL},
    [C_YX_RESET_REMOTE] = {"cp2p_yamux_streams_reset_total",
                           "Yamux streams reset, by the side that reset them.", "origin",
                           "remote"},
    [C_YX_RESET_LOCAL] = {"cp2p_yamux_streams_reset_total", NULL, "origin", "local"},
    [C_YX_FRAMES_DISCARDED] = {"cp2p_yamux_frames_discarded_total",
                               "Yamux frames discarded: for closed, reset or refused streams.",
                               NULL, NULL},
    [C_YX_BYTES_DISCARDED] = {"cp2p_yamux_discarded_bytes_total",
                              "Payload bytes discarded: of discarded frames, and for released "
                              "streams.", NULL, NULL},
    [C_YX_WU_IN] = {"cp2p_yamux_window_updates_received_total",
                    "Yamux window updates received.", NULL, NULL},
    [C_YX_WU_OUT] = {"cp2p_yamux_window_updates_sent_total", "Yamux window updates sent.", NULL,
                     NULL},
    [C_YX_WINDOW_STALLS] = {"cp2p_yamux_window_stalls_total",
                            "Stream writes cut short by the peer's receive window.", NULL, NULL},
    [C_YX_OUT_STALLS] = {"cp2p_yamux_output_stalls_total",
                         "Stream writes cut short by the session's output cap.", NULL, NULL},
    [C_YX_GROWTHS] = {"cp2p_yamux_window_growths_total",
                      "Receive windows grown by auto-tuning.", NULL, NULL},
    [C_YX_GROWTHS_DENIED] = {"cp2p_yamux_window_growths_denied_total",
                             "Receive window growths denied by the session's cap.", NULL, NULL},
    [C_YX_RECV_CAP_RESETS] = {"cp2p_yamux_receive_cap_resets_total",
                              "Streams reset because the session's receive cap was reached.",
                              NULL, NULL},
    [C_YX_PINGS_SENT] = {"cp2p_yamux_pings_sent_total", "Yamux pings sent.", NULL, NULL},
    [C_YX_PONGS_SENT] = {"cp2p_yamux_pongs_sent_total", "Answers sent to the peer's pings.",
                         NULL, NULL},
    [C_YX_PONGS_DROPPED] = {"cp2p_yamux_pongs_dropped_total",
                            "Answers to the peer's pings not sent (control backlog too long).",
                            NULL, NULL},
    [C_YX_PONGS_UNMATCHED] = {"cp2p_yamux_pongs_unmatched_total",
                              "Ping answers that matched no ping of ours.", NULL, NULL},
    [C_YX_PING_TIMEOUTS] = {"cp2p_yamux_ping_timeouts_total", "Yamux pings unanswered in time.",
                            NULL, NULL},
    [C_YX_ALLOC_FAILURES] = {"cp2p_yamux_alloc_failures_total",
                             "Yamux allocations that failed.", NULL, NULL},
#define PERR(k, v) [C_YX_PERR_FIRST + (k)] = {"cp2p_yamux_protocol_errors_total", NULL, "kind", v}
    [C_YX_PERR_FIRST + CP2P__YAMUX_PERR_VERSION] =
        {"cp2p_yamux_protocol_errors_total",
         "Yamux sessions ended because the peer broke the protocol or exhausted an abuse budget "
         "(the *_flood kinds), by kind.", "kind", "bad_version"},
    PERR(CP2P__YAMUX_PERR_TYPE, "bad_type"),
    PERR(CP2P__YAMUX_PERR_STREAM_ZERO, "bad_stream_id"),
    PERR(CP2P__YAMUX_PERR_PARITY, "wrong_parity"),
    PERR(CP2P__YAMUX_PERR_REUSE, "id_reuse"),
    PERR(CP2P__YAMUX_PERR_UNOPENED, "never_opened"),
    PERR(CP2P__YAMUX_PERR_WINDOW, "window_exceeded"),
    PERR(CP2P__YAMUX_PERR_DATA_AFTER_FIN, "data_after_fin"),
    PERR(CP2P__YAMUX_PERR_SEND_WINDOW, "window_overflow"),
    PERR(CP2P__YAMUX_PERR_PING_FLAGS, "bad_ping"),
    PERR(CP2P__YAMUX_PERR_RESET_FLOOD, "reset_flood"),
    PERR(CP2P__YAMUX_PERR_REFUSE_FLOOD, "open_flood"),
    PERR(CP2P__YAMUX_PERR_PING_FLOOD, "ping_flood"),
    PERR(CP2P__YAMUX_PERR_EMPTY_FLOOD, "empty_flood"),
#undef PERR
};

typedef enum {
    G_CONNS_IN,
    G_CONNS_OUT,
    G_UPGRADING_IN,
    G_UPGRADING_OUT,
    G_STREAMS,
    G_PS_PEERS,
    G_PS_ADDRS,
    /* the configured limits, as go-libp2p's libp2p_rcmgr_limit */
    G_LIM_MAX_CONNS,
    G_LIM_MAX_PENDING,
    G_LIM_STREAMS_PER_CONN,
    G_LIM_INBOUND_PER_PROTO,
    G_LIM_LOW_WATER,
    G_LIM_HIGH_WATER,
    G_LIM_PER_IP,
    G_LIM_PER_PEER,
    G_LIM_INBOUND_PER_SEC,
    G_LIM_INBOUND_BURST,
    G_LIM_PEER_DIALS,
    G_LIM_STREAM_WBUF,
    G_LIM_CONN_WBUF,
    G_LIM_YAMUX_WINDOW,
    G_LIM_DIAL_TIMEOUT,
    G_LIM_UPGRADE_TIMEOUT,
    G_LIM_NEGOTIATE_TIMEOUT,
    G_LIM_DIAL_PEER_TIMEOUT,
    G_LIM_KEEPALIVE,
    G_LIM_GRACE,
    G_COUNT
} gauge_id;

#define LIMIT_HELP "The host's configured limits (counts), by limit."
#define LIMIT_BYTES_HELP "The host's configured size limits in bytes, by limit."
#define LIMIT_SECONDS_HELP "The host's configured timeouts and periods in seconds, by limit."

static const metric_def gauges[G_COUNT] = {
    [G_CONNS_IN] = {"cp2p_host_connections", "Open upgraded connections, by direction.",
                    "direction", "inbound"},
    [G_CONNS_OUT] = {"cp2p_host_connections", NULL, "direction", "outbound"},
    [G_UPGRADING_IN] = {"cp2p_host_connections_upgrading",
                        "Connections still in their upgrade (security and muxer "
                        "negotiation), by direction.", "direction", "inbound"},
    [G_UPGRADING_OUT] = {"cp2p_host_connections_upgrading", NULL, "direction", "outbound"},
    [G_STREAMS] = {"cp2p_host_streams", "Yamux streams open on the open connections.", NULL,
                   NULL},
    [G_PS_PEERS] = {"cp2p_peerstore_peers", "Peers in the peerstore.", NULL, NULL},
    [G_PS_ADDRS] = {"cp2p_peerstore_addrs",
                    "Addresses in the peerstore (expired ones until the next collection).",
                    NULL, NULL},
    [G_LIM_MAX_CONNS] = {"cp2p_host_limit", LIMIT_HELP, "limit", "max_conns"},
    [G_LIM_MAX_PENDING] = {"cp2p_host_limit", NULL, "limit", "max_pending_inbound"},
    [G_LIM_STREAMS_PER_CONN] = {"cp2p_host_limit", NULL, "limit", "max_streams_per_conn"},
    [G_LIM_INBOUND_PER_PROTO] = {"cp2p_host_limit", NULL, "limit", "max_inbound_per_protocol"},
    [G_LIM_LOW_WATER] = {"cp2p_host_limit", NULL, "limit", "conn_low_water"},
    [G_LIM_HIGH_WATER] = {"cp2p_host_limit", NULL, "limit", "conn_high_water"},
    [G_LIM_PER_IP] = {"cp2p_host_limit", NULL, "limit", "max_conns_per_ip"},
    [G_LIM_PER_PEER] = {"cp2p_host_limit", NULL, "limit", "max_conns_per_peer"},
    [G_LIM_INBOUND_PER_SEC] = {"cp2p_host_limit", NULL, "limit", "inbound_per_sec"},
    [G_LIM_INBOUND_BURST] = {"cp2p_host_limit", NULL, "limit", "inbound_burst"},
    [G_LIM_PEER_DIALS] = {"cp2p_host_limit", NULL, "limit", "max_peer_dials"},
    [G_LIM_STREAM_WBUF] = {"cp2p_host_limit_bytes", LIMIT_BYTES_HELP, "limit",
                           "stream_write_buffer"},
    [G_LIM_CONN_WBUF] = {"cp2p_host_limit_bytes", NULL, "limit", "conn_write_buffer"},
    [G_LIM_YAMUX_WINDOW] = {"cp2p_host_limit_bytes", NULL, "limit", "yamux_max_window"},
    [G_LIM_DIAL_TIMEOUT] = {"cp2p_host_limit_seconds", LIMIT_SECONDS_HELP, "limit",
                            "dial_timeout"},
    [G_LIM_UPGRADE_TIMEOUT] = {"cp2p_host_limit_seconds", NULL, "limit", "upgrade_timeout"},
    [G_LIM_NEGOTIATE_TIMEOUT] = {"cp2p_host_limit_seconds", NULL, "limit", "negotiate_timeout"},
    [G_LIM_DIAL_PEER_TIMEOUT] = {"cp2p_host_limit_seconds", NULL, "limit", "dial_peer_timeout"},
    [G_LIM_KEEPALIVE] = {"cp2p_host_limit_seconds", NULL, "limit", "keepalive"},
    [G_LIM_GRACE] = {"cp2p_host_limit_seconds", NULL, "limit", "conn_grace"},
};

/* Stream bytes per protocol: one family each way, label `protocol`, one series per row of the
 * host's proto_stats (the overflow row is "_other", created at once so that the families are
 * rendered before any traffic). */
#define PROTO_ROWS (CP2P__HOST_PROTO_STATS_MAX + 1)
#define PROTO_OTHER "_other"

struct cp2p_host_metrics {
    cp2p_metrics *reg;
    cp2p_metric *counter[C_COUNT];
    uint64_t copied[C_COUNT]; /* the host value the registry counter already holds */
    cp2p_metric *gauge[G_COUNT];
    cp2p_metric_family *proto_fam[2]; /* received, sent */
    cp2p_metric *proto[2][PROTO_ROWS];
    uint64_t proto_copied[2][PROTO_ROWS];
    size_t nproto; /* rows of the host's table with series (the overflow row aside) */
};

static const char *const proto_fam_name[2] = {"cp2p_host_stream_received_bytes_total",
                                              "cp2p_host_stream_sent_bytes_total"};
static const char *const proto_fam_help[2] = {
    "Application bytes delivered to stream readers, by negotiated protocol (\"_other\": past "
    "the host's 64 protocols).",
    "Application bytes written to streams and taken by yamux, by negotiated protocol "
    "(\"_other\": past the host's 64 protocols)."};

static int register_proto(cp2p_host_metrics *m)
{
    for (int d = 0; d < 2; d++) {
        cp2p_metric_desc desc = {.type = CP2P_METRIC_COUNTER, .name = proto_fam_name[d],
                                 .help = proto_fam_help[d], .labels = {"protocol"},
                                 .max_series = PROTO_ROWS + 1};
        const char *other = PROTO_OTHER;
        int rc = cp2p_metrics_register(m->reg, &desc, &m->proto_fam[d]);
        if (rc != 0 || (rc = cp2p_metrics_series(m->proto_fam[d], &other, 1,
                                                 &m->proto[d][CP2P__HOST_PROTO_STATS_MAX])) != 0) {
            return rc;
        }
    }
    return 0;
}

/* Copy the host's per-protocol stream bytes: series for new rows, then what each row grew. */
static int update_proto(cp2p_host_metrics *m, const cp2p_host *h)
{
    int rc = 0;
    while (m->nproto < h->nproto_stats) {
        const char *name = h->proto_stats[m->nproto].name;
        if ((rc = cp2p_metrics_series(m->proto_fam[0], &name, 1, &m->proto[0][m->nproto])) != 0 ||
            (rc = cp2p_metrics_series(m->proto_fam[1], &name, 1, &m->proto[1][m->nproto])) != 0) {
            break; /* retried at the next update */
        }
        m->nproto++;
    }
    for (size_t i = 0; i < PROTO_ROWS; i++) {
        if (i >= m->nproto && i != CP2P__HOST_PROTO_STATS_MAX) {
            continue;
        }
        const uint64_t now[2] = {h->proto_stats[i].bytes_read, h->proto_stats[i].bytes_written};
        for (int d = 0; d < 2; d++) {
            if (now[d] > m->proto_copied[d][i]) {
                cp2p_metric_add(m->proto[d][i], (double)(now[d] - m->proto_copied[d][i]));
                m->proto_copied[d][i] = now[d];
            }
        }
    }
    return rc;
}

/* Register the families of `defs` (a new family where the name changes) and look up each
 * entry's series. Returns 0 or the registry's error. */
static int register_defs(cp2p_metrics *reg, cp2p_metric_type type, const metric_def *defs,
                         size_t n, cp2p_metric **out)
{
    cp2p_metric_family *fam = NULL;
    for (size_t i = 0; i < n; i++) {
        const metric_def *d = &defs[i];
        int rc;
        if (i == 0 || strcmp(d->name, defs[i - 1].name) != 0) {
            cp2p_metric_desc desc = {.type = type, .name = d->name, .help = d->help,
                                     .labels = {d->label}};
            if ((rc = cp2p_metrics_register(reg, &desc, &fam)) != 0) {
                return rc;
            }
        }
        rc = cp2p_metrics_series(fam, d->label != NULL ? &d->value : NULL,
                                 d->label != NULL ? 1 : 0, &out[i]);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

static double ms_to_s(uint64_t ms)
{
    return (double)ms / 1000.0;
}

int cp2p_host_metrics_update(cp2p_host_metrics **state, cp2p_host *h, cp2p_metrics *reg)
{
    if (state == NULL || h == NULL || reg == NULL || (*state != NULL && (*state)->reg != reg)) {
        return CP2P_EINVAL;
    }
    cp2p_host_metrics *m = *state;
    if (m == NULL) {
        int rc;
        if ((m = cp2p_calloc(1, sizeof(*m))) == NULL) {
            return CP2P_ENOMEM;
        }
        m->reg = reg;
        if ((rc = register_defs(reg, CP2P_METRIC_COUNTER, counters, C_COUNT, m->counter)) != 0 ||
            (rc = register_defs(reg, CP2P_METRIC_GAUGE, gauges, G_COUNT, m->gauge)) != 0 ||
            (rc = register_proto(m)) != 0) {
            cp2p_free(m);
            return rc;
        }
        *state = m;
    }

    /* Counters: the host's, the connection manager's, the peerstore's. */
    const cp2p__host_stats *hs = cp2p__host_stats_get(h);
    const cp2p__connmgr_stats *cs = cp2p__host_cm_stats(h);
    cp2p_peerstore_stats ps;
    cp2p_peerstore_stats_get(cp2p_host_peerstore(h), &ps);
    cp2p__yamux_stats ys;
    cp2p__host_yamux_totals(h, &ys);
    uint64_t now[C_COUNT] = {
        [C_CONNS_OPENED] = hs->conns_opened,
        [C_CONNS_CLOSED] = hs->conns_closed,
        [C_INBOUND_REFUSED] = hs->inbound_refused,
        [C_UPGRADE_FAILED] = hs->upgrade_failed,
        [C_STREAMS_OPENED] = hs->streams_opened,
        [C_STREAMS_REFUSED] = hs->streams_refused,
        [C_NEG_FAILED] = hs->negotiation_failed,
        [C_NEG_DEFERRED] = hs->negotiation_output_deferred,
        [C_STREAMS_LAZY] = hs->streams_opened_lazy,
        [C_LAZY_REFUSED] = hs->lazy_refused,
        [C_PROTO_ERRORS] = hs->protocol_errors,
        [C_OVER_PROTO_LIMIT] = hs->streams_over_protocol_limit,
        [C_OVER_PEER_LIMIT] = hs->conns_over_peer_limit,
        [C_TRIMMED] = hs->conns_trimmed,
        [C_CM_REFUSED_RATE] = cs->refused_rate,
        [C_CM_REFUSED_PER_IP] = cs->refused_per_ip,
        [C_PS_EVICTIONS] = ps.evictions,
        [C_PS_ADDRS_DROPPED] = ps.addrs_dropped,
        [C_PS_DB_ERRORS] = ps.db_errors,
        [C_BYTES_IN] = ys.data_bytes_in,
        [C_BYTES_OUT] = ys.data_bytes_out,
        [C_NOISE_OK] = hs->noise_handshakes,
        [C_YX_FRAMES_IN] = ys.frames_in,
        [C_YX_FRAMES_OUT] = ys.frames_out,
        [C_YX_OPENED_LOCAL] = ys.streams_opened_local,
        [C_YX_OPENED_REMOTE] = ys.streams_opened_remote,
        [C_YX_REFUSED] = ys.streams_refused,
        [C_YX_REFUSALS_UNSENT] = ys.refusals_unsent,
        [C_YX_RESET_REMOTE] = ys.streams_reset_remote,
        [C_YX_RESET_LOCAL] = ys.streams_reset_local,
        [C_YX_FRAMES_DISCARDED] = ys.frames_discarded,
        [C_YX_BYTES_DISCARDED] = ys.bytes_discarded,
        [C_YX_WU_IN] = ys.window_updates_in,
        [C_YX_WU_OUT] = ys.window_updates_out,
        [C_YX_WINDOW_STALLS] = ys.window_stalls,
        [C_YX_OUT_STALLS] = ys.out_stalls,
        [C_YX_GROWTHS] = ys.window_growths,
        [C_YX_GROWTHS_DENIED] = ys.window_growth_denied,
        [C_YX_RECV_CAP_RESETS] = ys.recv_cap_resets,
        [C_YX_PINGS_SENT] = ys.pings_sent,
        [C_YX_PONGS_SENT] = ys.pongs_sent,
        [C_YX_PONGS_DROPPED] = ys.pongs_dropped,
        [C_YX_PONGS_UNMATCHED] = ys.pongs_unmatched,
        [C_YX_PING_TIMEOUTS] = ys.ping_timeouts,
        [C_YX_ALLOC_FAILURES] = ys.alloc_failures,
    };
    for (size_t i = 0; i < CP2P__NOISE_FAIL_COUNT; i++) {
        now[C_NOISE_FAIL_FIRST + i] = hs->noise_failures[i];
    }
    for (size_t i = 0; i < CP2P__YAMUX_PERR_COUNT; i++) {
        now[C_YX_PERR_FIRST + i] = ys.proto_errors[i];
    }
    for (size_t i = 0; i < C_COUNT; i++) {
        if (now[i] > m->copied[i]) {
            cp2p_metric_add(m->counter[i], (double)(now[i] - m->copied[i]));
            m->copied[i] = now[i];
        }
    }

    /* Gauges: connections and streams now. */
    size_t open[2] = {0, 0}, upgrading[2] = {0, 0}, streams = 0;
    for (const cp2p_conn *c = h->conns; c != NULL; c = c->next) {
        if (c->stage == CONN_CLOSED) {
            continue;
        }
        if (c->upgraded) {
            open[c->outbound]++;
            streams += c->yamux != NULL ? cp2p__yamux_num_streams(c->yamux) : 0;
        } else {
            upgrading[c->outbound]++;
        }
    }
    const cp2p_host_config *cfg = &h->cfg;
    const double g[G_COUNT] = {
        [G_CONNS_IN] = (double)open[0],
        [G_CONNS_OUT] = (double)open[1],
        [G_UPGRADING_IN] = (double)upgrading[0],
        [G_UPGRADING_OUT] = (double)upgrading[1],
        [G_STREAMS] = (double)streams,
        [G_PS_PEERS] = (double)ps.peers,
        [G_PS_ADDRS] = (double)ps.addrs,
        [G_LIM_MAX_CONNS] = cfg->max_conns,
        [G_LIM_MAX_PENDING] = cfg->max_pending_inbound,
        [G_LIM_STREAMS_PER_CONN] = cfg->max_streams_per_conn,
        [G_LIM_INBOUND_PER_PROTO] = cfg->max_inbound_per_protocol,
        [G_LIM_LOW_WATER] = cfg->conn_low_water,
        [G_LIM_HIGH_WATER] = cfg->conn_high_water,
        [G_LIM_PER_IP] = cfg->max_conns_per_ip,
        [G_LIM_PER_PEER] = cfg->max_conns_per_peer,
        [G_LIM_INBOUND_PER_SEC] = cfg->inbound_per_sec,
        [G_LIM_INBOUND_BURST] = cfg->inbound_burst,
        [G_LIM_PEER_DIALS] = cfg->max_peer_dials,
        [G_LIM_STREAM_WBUF] = (double)cfg->max_stream_write_buffer,
        [G_LIM_CONN_WBUF] = (double)cfg->max_conn_write_buffer,
        [G_LIM_YAMUX_WINDOW] = cfg->yamux_max_window,
        [G_LIM_DIAL_TIMEOUT] = ms_to_s(cfg->dial_timeout_ms),
        [G_LIM_UPGRADE_TIMEOUT] = ms_to_s(cfg->upgrade_timeout_ms),
        [G_LIM_NEGOTIATE_TIMEOUT] = ms_to_s(cfg->negotiate_timeout_ms),
        [G_LIM_DIAL_PEER_TIMEOUT] = ms_to_s(cfg->dial_peer_timeout_ms),
        [G_LIM_KEEPALIVE] = ms_to_s(cfg->keepalive_ms),
        /* CP2P_HOST_NO_GRACE (UINT64_MAX) means none. */
        [G_LIM_GRACE] = cfg->conn_grace_ms == CP2P_HOST_NO_GRACE ? 0 : ms_to_s(cfg->conn_grace_ms),
    };
    for (size_t i = 0; i < G_COUNT; i++) {
        cp2p_metric_set(m->gauge[i], g[i]);
    }
    return update_proto(m, h);
}

void cp2p_host_metrics_free(cp2p_host_metrics *state)
{
    cp2p_free(state);
}

/* ---- connection views for the API ---- */

size_t cp2p_host_conns_list(cp2p_host *h, cp2p_host_conn_info *out, size_t max)
{
    size_t n = 0;
    for (const cp2p_conn *c = h->conns; c != NULL; c = c->next) {
        if (!c->upgraded || c->stage == CONN_CLOSED || c->closing) {
            continue;
        }
        if (n < max) {
            cp2p_host_conn_info *ci = &out[n];
            *ci = (cp2p_host_conn_info){.peer = c->peer, .outbound = c->outbound};
            cp2p_buf b;
            cp2p_buf_init(&b, sizeof(ci->addr) - 1); /* + its NUL */
            if (c->remote_addr != NULL && cp2p_multiaddr_to_string(c->remote_addr, &b) == 0) {
                memcpy(ci->addr, b.ptr, b.len + 1);
            }
            cp2p_buf_fini(&b);
            uint64_t rtt_us = 0;
            if (c->yamux != NULL && cp2p__yamux_rtt_us(c->yamux, &rtt_us) && rtt_us > 0) {
                ci->rtt_ns = rtt_us * 1000;
            } else {
                cp2p_peerstore_info pi;
                if (cp2p_peerstore_info_get(h->peerstore, &c->peer, &pi) == 0) {
                    ci->rtt_ns = pi.rtt_ewma_ns;
                }
            }
            if (c->yamux != NULL) {
                const cp2p__yamux_stats *ys = cp2p__yamux_get_stats(c->yamux);
                ci->streams = cp2p__yamux_num_streams(c->yamux);
                ci->bytes_in = ys->data_bytes_in;
                ci->bytes_out = ys->data_bytes_out;
            }
            ci->send_queue_cap = c->max_write_inflight;
            ci->send_rate_bps = c->rate_bps;
        }
        n++;
    }
    return n;
}

size_t cp2p_host_close_peer(cp2p_host *h, const cp2p_peer_id *peer)
{
    size_t n = 0;
    /* A close tears the connection down at once (CONN_CLOSED handlers run inside it) but
     * unlinks it only when its handles have closed, on a later loop turn. */
    for (cp2p_conn *c = h->conns, *next; c != NULL; c = next) {
        next = c->next;
        if (c->upgraded && c->stage != CONN_CLOSED && !c->closing &&
            cp2p_peer_id_equal(&c->peer, peer)) {
            cp2p_conn_close(c);
            n++;
        }
    }
    return n;
}

const char *cp2p_host_agent_version(const cp2p_host *h)
{
    return h->agent_version;
}

size_t cp2p_host_protocols(const cp2p_host *h, const char **out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < h->nprotos; i++) {
        if (h->handlers[i].active) {
            if (n < max) {
                out[n] = h->proto_names[i];
            }
            n++;
        }
    }
    return n;
}
