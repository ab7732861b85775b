/* A protocol's public stats struct copied into a metrics registry by a table:
 * one row per uint64_t field (its offset, metric name, help, and whether it is
 * a gauge). A field that only grows becomes a counter (the registry adds what
 * it grew since the last copy), a level becomes a gauge. The node's HTTP API
 * uses it for pubsub, kad, request-response and the node itself; the emitter's
 * public metrics function for the emitter. Loop thread of the stats' owner. */
#ifndef CP2P_METRICS_STATS_TABLE_H
#define CP2P_METRICS_STATS_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cp2p/metrics.h>

typedef struct cp2p__stat_def {
    const char *name, *help;
    size_t offset; /* of a uint64_t in the stats struct */
    bool gauge;
} cp2p__stat_def;

/* Register one family per row, each with one label name (NULL: none), into
 * fams[0..n). Returns 0 or cp2p_metrics_register's error. */
CP2P_NODISCARD int cp2p__stats_fams_register(cp2p_metrics *reg, const cp2p__stat_def *defs,
                                             size_t n, const char *label,
                                             cp2p_metric_family **fams);
/* Copy `stats` into the series: gauges set, counters grown by what the field
 * grew since last[i] (then last[i] is the field). */
void cp2p__stats_copy(cp2p_metric *const *series, uint64_t *last, const cp2p__stat_def *defs,
                      size_t n, const void *stats);

/* Unlabelled: the first call passes *state == NULL and registers the families
 * (n <= 64); later calls pass the same state and registry. Returns 0,
 * CP2P_ENOMEM, CP2P_EINVAL (another registry or table, n over 64), or the
 * registry's error. */
typedef struct cp2p__stats_metrics cp2p__stats_metrics;
CP2P_NODISCARD int cp2p__stats_metrics_update(cp2p__stats_metrics **state, cp2p_metrics *reg,
                                              const cp2p__stat_def *defs, size_t n,
                                              const void *stats);
void cp2p__stats_metrics_free(cp2p__stats_metrics *s);

#endif
