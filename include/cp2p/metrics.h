/* cp2p: a metrics registry with Prometheus text exposition (format 0.0.4).
 *
 * A registry holds metric families (counters, gauges, histograms), each with a name, help text and
 * 0..4 label names. A family has one series per tuple of label values, created on first use and
 * bounded in number: past the family's max_series, further tuples share one overflow series whose
 * label values are all "_other", and the registry's own counter
 * cp2p_metrics_series_overflow_total is bumped, so that remote-controlled label values (protocol
 * IDs, agent strings) can never grow memory or the exposition without bound.
 *
 * The fast path is a series handle (cp2p_metric *), looked up once with its label values and kept
 * by its owner: cp2p_metric_inc/add/set/observe touch only that series' atomics, with no lookup and
 * no lock, so the network loop can update while HTTP threads render the exposition.
 *
 * Families may instead be registered with a collector: a callback that the rendering thread runs at
 * each exposition to report current values (table sizes, counters already kept in stats structs).
 *
 * Threads: every function may be called from any thread, concurrently with the others, except
 * cp2p_metrics_free (no other call on the registry may be running or follow). Series and families
 * live until the registry is freed, so handles stay valid until then. See docs/METRICS.md.
 */
#ifndef CP2P_METRICS_H
#define CP2P_METRICS_H

#include <stdint.h>

#include <cp2p/buf.h>
#include <cp2p/common.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bounds of the registry. All are our choice; Prometheus itself sets none of them. */
/* Label names per family: enough for direction, protocol, outcome and one more. */
#define CP2P_METRICS_MAX_LABELS 4
/* Series per family when the description says 0, and the largest max_series accepted. 64 covers
 * every label we know of (protocols, message kinds, outcomes); 10,000 is a large table. */
#define CP2P_METRICS_SERIES_DEFAULT 64
#define CP2P_METRICS_SERIES_MAX 10000
/* Bytes kept of one label value (longer values are truncated at a UTF-8 boundary): a protocol ID
 * or agent string is far shorter; this bounds what a peer can make us store and print. */
#define CP2P_METRICS_LABEL_VALUE_MAX 128
/* Longest metric or label name, longest help text, most families in one registry, most finite
 * bucket bounds in one histogram (client_golang's default has 11). */
#define CP2P_METRICS_NAME_MAX 128
#define CP2P_METRICS_HELP_MAX 1024
#define CP2P_METRICS_FAMILIES_MAX 1024
#define CP2P_METRICS_BUCKETS_MAX 64
/* A suggested bound for the rendered exposition (the caller's cp2p_buf max), e.g. for /metrics. */
#define CP2P_METRICS_RENDER_MAX_DEFAULT (8u * 1024 * 1024)

typedef struct cp2p_metrics cp2p_metrics;             /* the registry */
typedef struct cp2p_metric_family cp2p_metric_family; /* one name, type, help, label names */
typedef struct cp2p_metric cp2p_metric;               /* one series: a family + label values */
typedef struct cp2p_metrics_sink cp2p_metrics_sink;   /* what a collector reports into */

typedef enum cp2p_metric_type {
    CP2P_METRIC_COUNTER,   /* only goes up; its name must end in "_total" (Prometheus convention) */
    CP2P_METRIC_GAUGE,     /* goes up and down */
    CP2P_METRIC_HISTOGRAM, /* observations counted into buckets, with their sum and count */
} cp2p_metric_type;

/* A collector: report the family's current values with cp2p_metrics_sink_emit(), once per label
 * tuple. It runs on the thread calling cp2p_metrics_render(), while the owner of the values may be
 * changing them on another thread, and with no registry lock held (it may register families, not
 * free the registry). So it must only read what is safe to read racily -- aligned uint64_t/size_t
 * fields, each read as a snapshot (values of different fields may be from different moments) --
 * or take its own lock around what is not (a table being resized, a list being walked). */
typedef void (*cp2p_metrics_collect_fn)(cp2p_metrics_sink *sink, void *ud);

/* How to register a family. Everything is copied: the description is free on return. */
typedef struct cp2p_metric_desc {
    cp2p_metric_type type;
    /* [a-zA-Z_:][a-zA-Z0-9_:]*, at most CP2P_METRICS_NAME_MAX bytes; counters end in "_total"
     * and nothing else does (the convention promtool checks). Unique in the registry, including
     * a histogram's derived _bucket, _sum and _count names. */
    const char *name;
    /* UTF-8 text, not empty, at most CP2P_METRICS_HELP_MAX bytes (newlines are escaped). */
    const char *help;
    /* Label names: [a-zA-Z_][a-zA-Z0-9_]*, not starting with "__", distinct, "le" not allowed in a
     * histogram. The first NULL ends the list, e.g. .labels = {"direction", "protocol"}. */
    const char *labels[CP2P_METRICS_MAX_LABELS];
    /* Histogram only: 1..CP2P_METRICS_BUCKETS_MAX strictly increasing finite upper bounds; a last
     * +Inf is accepted and ignored (the +Inf bucket is always there). */
    const double *buckets;
    size_t n_buckets;
    /* Series (label tuples) before overflow; 0: CP2P_METRICS_SERIES_DEFAULT. */
    uint32_t max_series;
    /* Counters and gauges only: NULL, values are pushed through series handles; otherwise the
     * collector reports them at each exposition and the family has no handles. */
    cp2p_metrics_collect_fn collect;
    void *collect_ud;
} cp2p_metric_desc;

/* Create an empty registry holding only its own family, cp2p_metrics_series_overflow_total.
 * Returns 0 and *out, or CP2P_EINVAL (NULL out), CP2P_ENOMEM. Any thread. */
CP2P_API CP2P_NODISCARD int cp2p_metrics_new(cp2p_metrics **out);
/* Free the registry, its families and series; every handle becomes invalid. NULL is a no-op.
 * No other call on the registry may be running or made afterwards. */
CP2P_API void cp2p_metrics_free(cp2p_metrics *reg);

/* Register a family; it is rendered after those registered before it. A family with no labels and
 * no collector gets its one series at once (it renders 0 before any update). Returns 0 and *out
 * (valid until the registry is freed), or CP2P_EINVAL (a NULL argument, an invalid or taken name,
 * an invalid label name or duplicate, "_total" on a counter missing or on another type present,
 * invalid buckets, buckets on a non-histogram, max_series over CP2P_METRICS_SERIES_MAX, a
 * collector on a histogram, help empty, not UTF-8 or too long), CP2P_ELIMIT (the registry has CP2P_METRICS_FAMILIES_MAX families) or
 * CP2P_ENOMEM. Nothing is registered on error. Any thread. */
CP2P_API CP2P_NODISCARD int cp2p_metrics_register(cp2p_metrics *reg, const cp2p_metric_desc *desc,
                                                  cp2p_metric_family **out);

/* The series of `fam` for the label values `values[0..n)` (n must be the family's label count;
 * values may be NULL when n is 0), created on first use. Values are any text: they are copied,
 * cut to CP2P_METRICS_LABEL_VALUE_MAX bytes at a UTF-8 boundary, and invalid UTF-8 bytes become
 * '?'; two values equal after that are the same series. When the family already has max_series
 * series, *out is the overflow series (all values "_other"), 0 is returned and
 * cp2p_metrics_series_overflow_total is incremented (once per refused call). Takes the registry's
 * lock and compares with every series of the family: look up once, keep the handle. Returns 0 and
 * *out (valid until the registry is freed), or CP2P_EINVAL (NULL fam or out, n not the label
 * count, a NULL value, a collector family), CP2P_ENOMEM. Any thread. */
CP2P_API CP2P_NODISCARD int cp2p_metrics_series(cp2p_metric_family *fam, const char *const *values,
                                                size_t n, cp2p_metric **out);

/* Updates: lock-free (relaxed atomics), any thread, and safe against concurrent updates of the
 * same series (each is one atomic read-modify-write). A NULL handle is a no-op, so code runs the
 * same without a registry. A call that does not fit the series' type is ignored: set on a counter,
 * a negative or NaN add on a counter, inc/add/set on a histogram, observe on a counter or gauge.
 * Counters count integer increments exactly (a 64-bit integer); fractional adds go to a double.
 * Observing NaN is ignored; observations go to the first bucket whose bound is >= the value. */
CP2P_API void cp2p_metric_inc(cp2p_metric *m);
CP2P_API void cp2p_metric_add(cp2p_metric *m, double v);
CP2P_API void cp2p_metric_set(cp2p_metric *m, double v);
CP2P_API void cp2p_metric_observe(cp2p_metric *m, double v);

/* From a collector only: report `value` for the label values `values[0..n)` (n: the family's
 * label count; the values are normalised as in cp2p_metrics_series). Report each tuple at most
 * once per call of the collector. Past the family's max_series tuples, the rest are summed into
 * one "_other" sample and each counts in cp2p_metrics_series_overflow_total. Errors (a wrong n, a
 * NULL value, the output's limit) are kept in the sink: cp2p_metrics_render returns them. */
CP2P_API void cp2p_metrics_sink_emit(cp2p_metrics_sink *sink, const char *const *values, size_t n,
                                     double value);

/* Append the exposition of every family, in registration order (series in creation order) to
 * `out`, in Prometheus text format 0.0.4 (Content-Type "text/plain; version=0.0.4"). Families with
 * no sample are left out. Runs the collectors on the calling thread. Values are read while they
 * change: each is a snapshot, counters never go back between two renders, and a histogram's +Inf
 * bucket always equals its _count (its _sum may lag or lead by the observations in flight).
 * Returns 0, or CP2P_EINVAL (NULL argument, or a collector's invalid emit), CP2P_ELIMIT (the
 * output would pass out->max), CP2P_ENOMEM; on error `out` holds a partial text: reset it. Any
 * thread, concurrently with updates, registrations and other renders. */
CP2P_API CP2P_NODISCARD int cp2p_metrics_render(cp2p_metrics *reg, cp2p_buf *out);

#ifdef __cplusplus
}
#endif
#endif
