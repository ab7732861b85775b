/* See stats_table.h. */
#include <string.h>

#include "metrics/stats_table.h"
#include "util/alloc.h"

struct cp2p__stats_metrics {
    cp2p_metrics *reg;
    const cp2p__stat_def *defs;
    size_t n;
    cp2p_metric **series;
    uint64_t *last;
};

/* Register one family per def, with one label name (or none). */
int cp2p__stats_fams_register(cp2p_metrics *reg, const cp2p__stat_def *defs, size_t n,
                              const char *label, cp2p_metric_family **fams)
{
    for (size_t i = 0; i < n; i++) {
        cp2p_metric_desc d = {
            .type = defs[i].gauge ? CP2P_METRIC_GAUGE : CP2P_METRIC_COUNTER,
            .name = defs[i].name,
            .help = defs[i].help,
            .labels = {label},
        };
        int rc = cp2p_metrics_register(reg, &d, &fams[i]);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/* Copy the stats: a gauge is set, a counter grows by what its field grew since
 * `last`. */
void cp2p__stats_copy(cp2p_metric *const *series, uint64_t *last, const cp2p__stat_def *defs,
                      size_t n, const void *stats)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t v;
        memcpy(&v, (const uint8_t *)stats + defs[i].offset, sizeof(v));
        if (defs[i].gauge) {
            cp2p_metric_set(series[i], (double)v);
        } else if (v > last[i]) {
            cp2p_metric_add(series[i], (double)(v - last[i]));
        }
        last[i] = v;
    }
}

int cp2p__stats_metrics_update(cp2p__stats_metrics **state, cp2p_metrics *reg,
                               const cp2p__stat_def *defs, size_t n, const void *stats)
{
    cp2p__stats_metrics *s = *state;
    if (s == NULL) {
        cp2p_metric_family *fams[64];
        int rc = n <= 64 ? 0 : CP2P_EINVAL;
        s = cp2p_calloc(1, sizeof(*s));
        if (s == NULL || (s->series = cp2p_calloc(n, sizeof(*s->series))) == NULL ||
            (s->last = cp2p_calloc(n, sizeof(*s->last))) == NULL) {
            rc = CP2P_ENOMEM;
        }
        if (rc == 0) {
            rc = cp2p__stats_fams_register(reg, defs, n, NULL, fams);
        }
        for (size_t i = 0; rc == 0 && i < n; i++) {
            rc = cp2p_metrics_series(fams[i], NULL, 0, &s->series[i]);
        }
        if (rc != 0) {
            cp2p__stats_metrics_free(s);
            return rc;
        }
        s->reg = reg;
        s->defs = defs;
        s->n = n;
        *state = s;
    }
    if (s->reg != reg || s->defs != defs) {
        return CP2P_EINVAL;
    }
    cp2p__stats_copy(s->series, s->last, defs, n, stats);
    return 0;
}

void cp2p__stats_metrics_free(cp2p__stats_metrics *s)
{
    if (s != NULL) {
        cp2p_free(s->series);
        cp2p_free(s->last);
        cp2p_free(s);
    }
}
