/* Metrics registry: exact exposition text, validation, series bounds and overflow, collectors,
 * updates racing with renders, allocation failures. With CP2P_METRICS_DUMP=<file> set, one test
 * also writes a representative exposition there for `promtool check metrics`
 * (tests/unit/metrics/promtool_check.sh). */
#include <inttypes.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include <cmocka.h>

#include <cp2p/metrics.h>

#include "util/alloc.h"

/* What every registry renders first: its own overflow counter. */
#define OVERFLOW_HELP                                                                              \
    "# HELP cp2p_metrics_series_overflow_total Label-value tuples refused because their family "  \
    "had reached its series bound; their updates went to the series whose label values are all "  \
    "\"_other\".\n"                                                                                \
    "# TYPE cp2p_metrics_series_overflow_total counter\n"
#define OVERFLOW_HEAD(n) OVERFLOW_HELP "cp2p_metrics_series_overflow_total " #n "\n"

static cp2p_metrics *reg_new(void)
{
    cp2p_metrics *reg = NULL;
    assert_int_equal(cp2p_metrics_new(&reg), 0);
    return reg;
}

static int reg_setup(void **state)
{
    *state = reg_new();
    return 0;
}

static int reg_teardown(void **state)
{
    cp2p_metrics_free(*state);
    return 0;
}

static cp2p_metric_family *reg_family(cp2p_metrics *reg, const cp2p_metric_desc *d)
{
    cp2p_metric_family *f = NULL;
    assert_int_equal(cp2p_metrics_register(reg, d, &f), 0);
    return f;
}

/* What cp2p_metrics_render returns into a buffer of at most `max` bytes. */
static int render_rc(cp2p_metrics *reg, size_t max)
{
    cp2p_buf b;
    cp2p_buf_init(&b, max);
    int rc = cp2p_metrics_render(reg, &b);
    cp2p_buf_fini(&b);
    return rc;
}

static cp2p_metric *series(cp2p_metric_family *f, const char *const *values, size_t n)
{
    cp2p_metric *m = NULL;
    assert_int_equal(cp2p_metrics_series(f, values, n, &m), 0);
    return m;
}

/* Render into a fresh buffer and compare with the whole expected text. */
static void assert_render(cp2p_metrics *reg, const char *want)
{
    cp2p_buf b;
    cp2p_buf_init(&b, CP2P_METRICS_RENDER_MAX_DEFAULT);
    assert_int_equal(cp2p_metrics_render(reg, &b), 0);
    assert_non_null(b.ptr);
    assert_string_equal((const char *)b.ptr, want);
    cp2p_buf_fini(&b);
}

static void counter_exposition(void **state)
{
    cp2p_metrics *reg = *state;
    assert_render(reg, OVERFLOW_HEAD(0));
    cp2p_metric_family *f = reg_family(reg, &(cp2p_metric_desc){
        .type = CP2P_METRIC_COUNTER, .name = "cp2p_test_frames_total", .help = "Frames sent."});
    cp2p_metric *m = series(f, NULL, 0);
    assert_ptr_equal(series(f, NULL, 0), m); /* one series */
    assert_render(reg, OVERFLOW_HEAD(0) "# HELP cp2p_test_frames_total Frames sent.\n"
                                        "# TYPE cp2p_test_frames_total counter\n"
                                        "cp2p_test_frames_total 0\n");
    cp2p_metric_inc(m);
    cp2p_metric_inc(m);
    cp2p_metric_add(m, 3);
    cp2p_metric_add(m, -1);        /* counters never go down: ignored */
    cp2p_metric_add(m, NAN); /* NaN: ignored */
    cp2p_metric_set(m, 100);       /* not for counters: ignored */
    cp2p_metric_observe(m, 1);     /* not for counters: ignored */
    assert_render(reg, OVERFLOW_HEAD(0) "# HELP cp2p_test_frames_total Frames sent.\n"
                                        "# TYPE cp2p_test_frames_total counter\n"
                                        "cp2p_test_frames_total 5\n");
    cp2p_metric_add(m, 0.25);
    assert_render(reg, OVERFLOW_HEAD(0) "# HELP cp2p_test_frames_total Frames sent.\n"
                                        "# TYPE cp2p_test_frames_total counter\n"
                                        "cp2p_test_frames_total 5.25\n");
    /* Integer increments stay exact past 2^53, where a double would stop counting. */
    cp2p_metric *big = series(reg_family(reg, &(cp2p_metric_desc){.type = CP2P_METRIC_COUNTER,
                                                                  .name = "cp2p_test_big_total",
                                                                  .help = "Big."}),
                              NULL, 0);
    cp2p_metric_add(big, 0x1p60);
    cp2p_metric_inc(big);
    assert_render(reg, OVERFLOW_HEAD(0) "# HELP cp2p_test_frames_total Frames sent.\n"
                                        "# TYPE cp2p_test_frames_total counter\n"
                                        "cp2p_test_frames_total 5.25\n"
                                        "# HELP cp2p_test_big_total Big.\n"
                                        "# TYPE cp2p_test_big_total counter\n"
                                        "cp2p_test_big_total 1152921504606846977\n");
    /* A NULL handle is a no-op, so code runs the same without a registry. */
    cp2p_metric_inc(NULL);
    cp2p_metric_add(NULL, 1);
    cp2p_metric_set(NULL, 1);
    cp2p_metric_observe(NULL, 1);
    cp2p_metrics_free(NULL);
}

static void labelled_gauge_exposition(void **state)
{
    cp2p_metrics *reg = *state;
    cp2p_metric_family *f = reg_family(
        reg, &(cp2p_metric_desc){.type = CP2P_METRIC_GAUGE, .name = "cp2p_test_connections",
                                 .help = "Open connections.",
                                 .labels = {"direction", "transport"}});
    /* No series yet: the family is left out. */
    assert_render(reg, OVERFLOW_HEAD(0));
    cp2p_metric *in_tcp = series(f, (const char *[]){"in", "tcp"}, 2);
    cp2p_metric *out_tcp = series(f, (const char *[]){"out", "tcp"}, 2);
    cp2p_metric *in_mem = series(f, (const char *[]){"in", "memory"}, 2);
    assert_ptr_equal(series(f, (const char *[]){"in", "tcp"}, 2), in_tcp);
    cp2p_metric_set(in_tcp, 3);
    cp2p_metric_add(out_tcp, 2);
    cp2p_metric_add(out_tcp, -0.5);
    cp2p_metric_inc(in_mem);
    cp2p_metric_add(in_mem, -3);
    cp2p_metric_observe(in_mem, 1); /* not for gauges: ignored */
    assert_render(reg, OVERFLOW_HEAD(0)
                  "# HELP cp2p_test_connections Open connections.\n"
                  "# TYPE cp2p_test_connections gauge\n"
                  "cp2p_test_connections{direction=\"in\",transport=\"tcp\"} 3\n"
                  "cp2p_test_connections{direction=\"out\",transport=\"tcp\"} 1.5\n"
                  "cp2p_test_connections{direction=\"in\",transport=\"memory\"} -2\n");
}

static void histogram_exposition(void **state)
{
    cp2p_metrics *reg = *state;
    static const double bounds[] = {0.005, 0.1, 1, 2.5, INFINITY}; /* a last +Inf is implicit */
    cp2p_metric_family *f = reg_family(
        reg, &(cp2p_metric_desc){.type = CP2P_METRIC_HISTOGRAM, .name = "cp2p_test_rtt_seconds",
                                 .help = "Round-trip time.", .labels = {"protocol"},
                                 .buckets = bounds, .n_buckets = 5});
    cp2p_metric *ping = series(f, (const char *[]){"/ipfs/ping/1.0.0"}, 1);
    cp2p_metric *kad = series(f, (const char *[]){"/ipfs/kad/1.0.0"}, 1);
    cp2p_metric_observe(ping, 0.00390625);
    cp2p_metric_observe(ping, 0.0625);
    cp2p_metric_observe(ping, 0.5);
    cp2p_metric_observe(ping, 2.5); /* on a bound: counted in that bucket */
    cp2p_metric_observe(ping, 100);
    cp2p_metric_observe(ping, NAN); /* NaN: ignored */
    cp2p_metric_inc(ping);                /* not for histograms: ignored */
    cp2p_metric_add(ping, 1);
    cp2p_metric_set(ping, 1);
    cp2p_metric_observe(kad, -1);
    assert_render(reg, OVERFLOW_HEAD(0)
                  "# HELP cp2p_test_rtt_seconds Round-trip time.\n"
                  "# TYPE cp2p_test_rtt_seconds histogram\n"
                  "cp2p_test_rtt_seconds_bucket{protocol=\"/ipfs/ping/1.0.0\",le=\"0.005\"} 1\n"
                  "cp2p_test_rtt_seconds_bucket{protocol=\"/ipfs/ping/1.0.0\",le=\"0.1\"} 2\n"
                  "cp2p_test_rtt_seconds_bucket{protocol=\"/ipfs/ping/1.0.0\",le=\"1\"} 3\n"
                  "cp2p_test_rtt_seconds_bucket{protocol=\"/ipfs/ping/1.0.0\",le=\"2.5\"} 4\n"
                  "cp2p_test_rtt_seconds_bucket{protocol=\"/ipfs/ping/1.0.0\",le=\"+Inf\"} 5\n"
                  "cp2p_test_rtt_seconds_sum{protocol=\"/ipfs/ping/1.0.0\"} 103.06640625\n"
                  "cp2p_test_rtt_seconds_count{protocol=\"/ipfs/ping/1.0.0\"} 5\n"
                  "cp2p_test_rtt_seconds_bucket{protocol=\"/ipfs/kad/1.0.0\",le=\"0.005\"} 1\n"
                  "cp2p_test_rtt_seconds_bucket{protocol=\"/ipfs/kad/1.0.0\",le=\"0.1\"} 1\n"
                  "cp2p_test_rtt_seconds_bucket{protocol=\"/ipfs/kad/1.0.0\",le=\"1\"} 1\n"
                  "cp2p_test_rtt_seconds_bucket{protocol=\"/ipfs/kad/1.0.0\",le=\"2.5\"} 1\n"
                  "cp2p_test_rtt_seconds_bucket{protocol=\"/ipfs/kad/1.0.0\",le=\"+Inf\"} 1\n"
                  "cp2p_test_rtt_seconds_sum{protocol=\"/ipfs/kad/1.0.0\"} -1\n"
                  "cp2p_test_rtt_seconds_count{protocol=\"/ipfs/kad/1.0.0\"} 1\n");
}

/* Without labels: the series exists from registration, all zero. */
static void histogram_without_labels(void **state)
{
    cp2p_metrics *reg = *state;
    static const double one[] = {1};
    reg_family(reg, &(cp2p_metric_desc){.type = CP2P_METRIC_HISTOGRAM, .name = "h_bytes",
                                        .help = "H.", .buckets = one, .n_buckets = 1});
    assert_render(reg, OVERFLOW_HEAD(0) "# HELP h_bytes H.\n# TYPE h_bytes histogram\n"
                                        "h_bytes_bucket{le=\"1\"} 0\n"
                                        "h_bytes_bucket{le=\"+Inf\"} 0\n"
                                        "h_bytes_sum 0\nh_bytes_count 0\n");
}

static void number_formats(void **state)
{
    cp2p_metrics *reg = *state;
    cp2p_metric_family *f = reg_family(
        reg, &(cp2p_metric_desc){.type = CP2P_METRIC_GAUGE, .name = "g", .help = "G.",
                                 .labels = {"v"}, .max_series = 16});
    static const struct {
        double v;
        const char *text;
    } cases[] = {
        {0.1, "0.1"},
        {-2, "-2"},
        {1e15, "1000000000000000"},
        {1.5e-7, "1.5e-07"},
        {1e20, "1e+20"}, /* past 2^63: the shortest %g form */
        {-0.0, "0"},
        {NAN, "NaN"},
        {INFINITY, "+Inf"},
        {-INFINITY, "-Inf"},
        {1.0 / 3, "0.3333333333333333"},
        {123456789012.5, "123456789012.5"},
    };
    size_t n = sizeof(cases) / sizeof(cases[0]);
    char want[2048] = OVERFLOW_HEAD(0) "# HELP g G.\n# TYPE g gauge\n";
    size_t len = strlen(want);
    for (size_t i = 0; i < n; i++) {
        char label[8];
        snprintf(label, sizeof(label), "%zu", i);
        cp2p_metric_set(series(f, (const char *[]){label}, 1), cases[i].v);
        len += (size_t)snprintf(want + len, sizeof(want) - len, "g{v=\"%zu\"} %s\n", i,
                                cases[i].text);
    }
    assert_render(reg, want);
}

static void escaping(void **state)
{
    cp2p_metrics *reg = *state;
    cp2p_metric_family *f = reg_family(
        reg, &(cp2p_metric_desc){.type = CP2P_METRIC_GAUGE, .name = "cp2p_test_agent",
                                 .help = "Agent \"versions\" seen\nper C:\\path.",
                                 .labels = {"agent"}});
    cp2p_metric_set(series(f, (const char *[]){"a\\b\"c\nd"}, 1), 1);
    cp2p_metric_set(series(f, (const char *[]){""}, 1), 2);
    assert_render(reg, OVERFLOW_HEAD(0)
                  "# HELP cp2p_test_agent Agent \"versions\" seen\\nper C:\\\\path.\n"
                  "# TYPE cp2p_test_agent gauge\n"
                  "cp2p_test_agent{agent=\"a\\\\b\\\"c\\nd\"} 1\n"
                  "cp2p_test_agent{agent=\"\"} 2\n");
}

static void label_values_bounded_and_utf8(void **state)
{
    cp2p_metrics *reg = *state;
    cp2p_metric_family *f = reg_family(
        reg, &(cp2p_metric_desc){.type = CP2P_METRIC_COUNTER, .name = "c_total", .help = "C.",
                                 .labels = {"v"}});
    char long_a[300], long_b[300];
    memset(long_a, 'x', sizeof(long_a) - 1);
    long_a[sizeof(long_a) - 1] = 0;
    memcpy(long_b, long_a, sizeof(long_b));
    long_b[200] = 'y'; /* differs only past the bound: the same series */
    cp2p_metric *a = series(f, (const char *[]){long_a}, 1);
    assert_ptr_equal(series(f, (const char *[]){long_b}, 1), a);
    /* 127 bytes then a 2-byte character: cut before it, never inside. */
    char cut[140];
    memset(cut, 'z', 127);
    memcpy(cut + 127, "\xc3\xa9tail", 7);
    cp2p_metric_inc(series(f, (const char *[]){cut}, 1));
    /* Invalid UTF-8 bytes become '?'; valid multi-byte characters stay. */
    cp2p_metric_inc(series(f, (const char *[]){"a\xff\xc3\xa9\xe2\x82" "b"}, 1));

    char want[1024];
    snprintf(want, sizeof(want),
             OVERFLOW_HEAD(0) "# HELP c_total C.\n# TYPE c_total counter\n"
                              "c_total{v=\"%.128s\"} 0\nc_total{v=\"%.127s\"} 1\n"
                              "c_total{v=\"a?\xc3\xa9??b\"} 1\n",
             long_a, cut);
    assert_render(reg, want);
}

static int register_rc(cp2p_metrics *reg, const cp2p_metric_desc *d)
{
    cp2p_metric_family *f = NULL;
    int rc = cp2p_metrics_register(reg, d, &f);
    assert_true(rc == 0 ? f != NULL : f == NULL);
    return rc;
}

static void collect_nothing(cp2p_metrics_sink *sink, void *ud)
{
    (void)sink;
    (void)ud;
}

static void validation_errors(void **state)
{
    cp2p_metrics *reg = *state;
    cp2p_metric_family *f;
    static const double b2[] = {1, 2}, unsorted[] = {2, 1}, dup[] = {1, 1}, nan[] = {NAN};
    static const double only_inf[] = {INFINITY};
    const char *bad_names[] = {"", "1abc", "a-b_total", "a b_total", "é_total", "a.b_total"};
    for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
        assert_int_equal(register_rc(reg, &(cp2p_metric_desc){.type = CP2P_METRIC_COUNTER,
                                                              .name = bad_names[i],
                                                              .help = "x"}),
                         CP2P_EINVAL);
    }
    char long_name[CP2P_METRICS_NAME_MAX + 2];
    memset(long_name, 'a', sizeof(long_name) - 1);
    long_name[sizeof(long_name) - 1] = 0;
    const cp2p_metric_desc bad[] = {
        {.type = CP2P_METRIC_GAUGE, .name = long_name, .help = "x"},
        {.type = CP2P_METRIC_COUNTER, .name = "frames", .help = "x"}, /* counter without _total */
        {.type = CP2P_METRIC_GAUGE, .name = "open_total", .help = "x"}, /* gauge with _total */
        {.type = (cp2p_metric_type)7, .name = "x", .help = "x"},
        {.type = CP2P_METRIC_GAUGE, .name = "x", .help = NULL},
        {.type = CP2P_METRIC_GAUGE, .name = "x", .help = ""},
        {.type = CP2P_METRIC_GAUGE, .name = "x", .help = "bad \xff utf-8"},
        {.type = CP2P_METRIC_GAUGE, .name = "x", .help = "x", .labels = {"__reserved"}},
        {.type = CP2P_METRIC_GAUGE, .name = "x", .help = "x", .labels = {"1a"}},
        {.type = CP2P_METRIC_GAUGE, .name = "x", .help = "x", .labels = {"a:b"}},
        {.type = CP2P_METRIC_GAUGE, .name = "x", .help = "x", .labels = {""}},
        {.type = CP2P_METRIC_GAUGE, .name = "x", .help = "x", .labels = {"a", "b", "a"}},
        {.type = CP2P_METRIC_GAUGE, .name = "x", .help = "x", .labels = {"a", NULL, "b"}},
        {.type = CP2P_METRIC_GAUGE, .name = "x", .help = "x", .buckets = b2, .n_buckets = 2},
        {.type = CP2P_METRIC_GAUGE, .name = "x", .help = "x",
         .max_series = CP2P_METRICS_SERIES_MAX + 1},
        {.type = CP2P_METRIC_HISTOGRAM, .name = "x", .help = "x"},
        {.type = CP2P_METRIC_HISTOGRAM, .name = "x", .help = "x", .buckets = unsorted,
         .n_buckets = 2},
        {.type = CP2P_METRIC_HISTOGRAM, .name = "x", .help = "x", .buckets = dup, .n_buckets = 2},
        {.type = CP2P_METRIC_HISTOGRAM, .name = "x", .help = "x", .buckets = nan, .n_buckets = 1},
        {.type = CP2P_METRIC_HISTOGRAM, .name = "x", .help = "x", .buckets = only_inf,
         .n_buckets = 1},
        {.type = CP2P_METRIC_HISTOGRAM, .name = "x", .help = "x", .buckets = b2, .n_buckets = 2,
         .labels = {"le"}},
        {.type = CP2P_METRIC_HISTOGRAM, .name = "x", .help = "x", .buckets = b2, .n_buckets = 2,
         .collect = collect_nothing},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(register_rc(reg, &bad[i]), CP2P_EINVAL);
    }
    assert_int_equal(cp2p_metrics_register(NULL, &bad[0], &f), CP2P_EINVAL);
    assert_int_equal(cp2p_metrics_register(reg, NULL, &f), CP2P_EINVAL);
    assert_int_equal(cp2p_metrics_register(reg, &bad[0], NULL), CP2P_EINVAL);
    assert_int_equal(cp2p_metrics_new(NULL), CP2P_EINVAL);

    /* Valid edge cases: colons in metric names, a leading single underscore, 4 labels. */
    assert_int_equal(register_rc(reg, &(cp2p_metric_desc){.type = CP2P_METRIC_COUNTER,
                                                          .name = "a:b_total", .help = "x"}),
                     0);
    cp2p_metric_family *four = reg_family(
        reg, &(cp2p_metric_desc){.type = CP2P_METRIC_GAUGE, .name = "_four", .help = "x",
                                 .labels = {"_a", "b1", "C", "d_"}});
    /* Names are unique, a histogram's derived names included. */
    assert_int_equal(register_rc(reg, &(cp2p_metric_desc){.type = CP2P_METRIC_COUNTER,
                                                          .name = "a:b_total", .help = "y"}),
                     CP2P_EINVAL);
    assert_int_equal(register_rc(reg, &(cp2p_metric_desc){.type = CP2P_METRIC_COUNTER,
                                                          .name =
                                                              "cp2p_metrics_series_overflow_total",
                                                          .help = "y"}),
                     CP2P_EINVAL);
    assert_int_equal(register_rc(reg, &(cp2p_metric_desc){.type = CP2P_METRIC_HISTOGRAM,
                                                          .name = "lat", .help = "x",
                                                          .buckets = b2, .n_buckets = 2}),
                     0);
    const char *clashing[] = {"lat", "lat_bucket", "lat_sum", "lat_count"};
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(register_rc(reg, &(cp2p_metric_desc){.type = CP2P_METRIC_GAUGE,
                                                              .name = clashing[i],
                                                              .help = "x"}),
                         CP2P_EINVAL);
    }
    assert_int_equal(register_rc(reg, &(cp2p_metric_desc){.type = CP2P_METRIC_GAUGE,
                                                          .name = "lat_counts", .help = "x"}),
                     0);
    assert_int_equal(register_rc(reg, &(cp2p_metric_desc){.type = CP2P_METRIC_GAUGE,
                                                          .name = "rate", .help = "x"}),
                     0);
    assert_int_equal(register_rc(reg, &(cp2p_metric_desc){.type = CP2P_METRIC_HISTOGRAM,
                                                          .name = "rat", .help = "x",
                                                          .buckets = b2, .n_buckets = 2}),
                     0);
    assert_int_equal(register_rc(reg, &(cp2p_metric_desc){.type = CP2P_METRIC_GAUGE,
                                                          .name = "rat_sum", .help = "x"}),
                     CP2P_EINVAL);

    /* Series lookups. */
    cp2p_metric *m = NULL;
    assert_int_equal(cp2p_metrics_series(four, (const char *[]){"1", "2", "3"}, 3, &m),
                     CP2P_EINVAL);
    assert_int_equal(cp2p_metrics_series(four, (const char *[]){"1", "2", NULL, "4"}, 4, &m),
                     CP2P_EINVAL);
    assert_int_equal(cp2p_metrics_series(four, NULL, 4, &m), CP2P_EINVAL);
    assert_int_equal(cp2p_metrics_series(four, (const char *[]){"1", "2", "3", "4"}, 4, NULL),
                     CP2P_EINVAL);
    assert_int_equal(cp2p_metrics_series(NULL, NULL, 0, &m), CP2P_EINVAL);
    cp2p_metric_family *coll = reg_family(
        reg, &(cp2p_metric_desc){.type = CP2P_METRIC_GAUGE, .name = "coll", .help = "x",
                                 .collect = collect_nothing});
    assert_int_equal(cp2p_metrics_series(coll, NULL, 0, &m), CP2P_EINVAL);
    assert_null(m);
    assert_int_equal(cp2p_metrics_render(NULL, NULL), CP2P_EINVAL);
}

static void families_bounded(void **state)
{
    cp2p_metrics *reg = *state;
    char name[32];
    /* The registry's own family counts too. */
    for (int i = 1; i < CP2P_METRICS_FAMILIES_MAX; i++) {
        snprintf(name, sizeof(name), "g%d", i);
        assert_int_equal(register_rc(reg, &(cp2p_metric_desc){.type = CP2P_METRIC_GAUGE,
                                                              .name = name, .help = "x"}),
                         0);
    }
    assert_int_equal(register_rc(reg, &(cp2p_metric_desc){.type = CP2P_METRIC_GAUGE,
                                                          .name = "one_more", .help = "x"}),
                     CP2P_ELIMIT);
}

static void series_bound_and_overflow(void **state)
{
    cp2p_metrics *reg = *state;
    cp2p_metric_family *f = reg_family(
        reg, &(cp2p_metric_desc){.type = CP2P_METRIC_COUNTER, .name = "cp2p_test_msgs_total",
                                 .help = "Messages.", .labels = {"protocol", "dir"},
                                 .max_series = 2});
    cp2p_metric *a = series(f, (const char *[]){"a", "in"}, 2);
    cp2p_metric *b = series(f, (const char *[]){"b", "in"}, 2);
    cp2p_metric *c = series(f, (const char *[]){"c", "in"}, 2);
    cp2p_metric *d = series(f, (const char *[]){"d", "out"}, 2);
    assert_ptr_not_equal(a, b);
    assert_ptr_equal(c, d); /* both went to the overflow series */
    /* Existing tuples are still found, and asking for the overflow tuple is not a refusal. */
    assert_ptr_equal(series(f, (const char *[]){"a", "in"}, 2), a);
    assert_ptr_equal(series(f, (const char *[]){"_other", "_other"}, 2), c);
    cp2p_metric_inc(a);
    cp2p_metric_add(c, 2);
    cp2p_metric_add(d, 3);
    assert_render(reg, OVERFLOW_HEAD(2)
                  "# HELP cp2p_test_msgs_total Messages.\n"
                  "# TYPE cp2p_test_msgs_total counter\n"
                  "cp2p_test_msgs_total{protocol=\"a\",dir=\"in\"} 1\n"
                  "cp2p_test_msgs_total{protocol=\"b\",dir=\"in\"} 0\n"
                  "cp2p_test_msgs_total{protocol=\"_other\",dir=\"_other\"} 5\n");

    /* The overflow tuple asked for first takes no place among the max_series. */
    cp2p_metric_family *g = reg_family(
        reg, &(cp2p_metric_desc){.type = CP2P_METRIC_GAUGE, .name = "cp2p_test_g",
                                 .help = "G.", .labels = {"k"}, .max_series = 1});
    cp2p_metric *other = series(g, (const char *[]){"_other"}, 1);
    cp2p_metric *k = series(g, (const char *[]){"k"}, 1);
    assert_ptr_not_equal(other, k);
    assert_ptr_equal(series(g, (const char *[]){"j"}, 1), other);
}

typedef struct table_stats {
    uint64_t entries[4];
    size_t n;
    int bad; /* make an invalid emit */
} table_stats;

static void collect_tables(cp2p_metrics_sink *sink, void *ud)
{
    static const char *const names[] = {"peers", "routes", "protocols", "addrs"};
    const table_stats *s = ud;
    for (size_t i = 0; i < s->n; i++) {
        cp2p_metrics_sink_emit(sink, (const char *[]){names[i]}, 1, (double)s->entries[i]);
    }
    if (s->bad) {
        cp2p_metrics_sink_emit(sink, NULL, 1, 1);
    }
}

static void collect_total(cp2p_metrics_sink *sink, void *ud)
{
    cp2p_metrics_sink_emit(sink, NULL, 0, (double)*(const uint64_t *)ud);
}

static void collectors(void **state)
{
    cp2p_metrics *reg = *state;
    table_stats tables = {.entries = {7, 3, 11, 5}, .n = 2};
    uint64_t dials = 42;
    reg_family(reg, &(cp2p_metric_desc){.type = CP2P_METRIC_GAUGE, .name = "cp2p_test_table_size",
                                        .help = "Entries per table.", .labels = {"table"},
                                        .max_series = 2, .collect = collect_tables,
                                        .collect_ud = &tables});
    reg_family(reg, &(cp2p_metric_desc){.type = CP2P_METRIC_COUNTER,
                                        .name = "cp2p_test_dials_total",
                                        .help = "Dials.", .collect = collect_total,
                                        .collect_ud = &dials});
    reg_family(reg, &(cp2p_metric_desc){.type = CP2P_METRIC_GAUGE, .name = "cp2p_test_empty",
                                        .help = "Nothing.", .collect = collect_nothing});
    assert_render(reg, OVERFLOW_HEAD(0) "# HELP cp2p_test_table_size Entries per table.\n"
                                        "# TYPE cp2p_test_table_size gauge\n"
                                        "cp2p_test_table_size{table=\"peers\"} 7\n"
                                        "cp2p_test_table_size{table=\"routes\"} 3\n"
                                        "# HELP cp2p_test_dials_total Dials.\n"
                                        "# TYPE cp2p_test_dials_total counter\n"
                                        "cp2p_test_dials_total 42\n");
    /* Values are read at each exposition; past max_series the rest is summed into "_other". */
    tables.n = 4;
    dials = 43;
    const char *want_over = "# HELP cp2p_test_table_size Entries per table.\n"
                            "# TYPE cp2p_test_table_size gauge\n"
                            "cp2p_test_table_size{table=\"peers\"} 7\n"
                            "cp2p_test_table_size{table=\"routes\"} 3\n"
                            "cp2p_test_table_size{table=\"_other\"} 16\n"
                            "# HELP cp2p_test_dials_total Dials.\n"
                            "# TYPE cp2p_test_dials_total counter\n"
                            "cp2p_test_dials_total 43\n";
    char want[1024];
    snprintf(want, sizeof(want), "%s%s", OVERFLOW_HEAD(0), want_over);
    assert_render(reg, want); /* the refusals of this render show in the next one */
    snprintf(want, sizeof(want), "%s%s", OVERFLOW_HEAD(2), want_over);
    assert_render(reg, want);

    tables.bad = 1;
    assert_int_equal(render_rc(reg, 1 << 16), CP2P_EINVAL);
    cp2p_metrics_sink_emit(NULL, NULL, 0, 1); /* no-op */
}

static void collect_twice(cp2p_metrics_sink *sink, void *ud)
{
    (void)ud;
    cp2p_metrics_sink_emit(sink, NULL, 0, 1);
    cp2p_metrics_sink_emit(sink, NULL, 0, 2);
}

static void collector_without_labels_has_one_sample(void **state)
{
    cp2p_metrics *reg = *state;
    reg_family(reg, &(cp2p_metric_desc){.type = CP2P_METRIC_GAUGE, .name = "one", .help = "x",
                                        .collect = collect_twice});
    assert_int_equal(render_rc(reg, 1 << 16), CP2P_EINVAL);
}

static void render_is_bounded(void **state)
{
    cp2p_metrics *reg = *state;
    assert_int_equal(render_rc(reg, 64), CP2P_ELIMIT);
    size_t need = strlen(OVERFLOW_HEAD(0));
    cp2p_buf b;
    cp2p_buf_init(&b, need); /* exactly enough */
    assert_int_equal(cp2p_metrics_render(reg, &b), 0);
    assert_int_equal(b.len, need);
    cp2p_buf_fini(&b);
}

/* ---- updates racing with renders ---- */

typedef struct race {
    cp2p_metrics *reg;
    cp2p_metric_family *labelled;
    cp2p_metric *counter, *gauge, *hist;
    atomic_bool stop;
    uint64_t done;      /* increments made; read after join */
    bool series_failed; /* read after join */
} race;

static void *race_writer(void *arg)
{
    race *r = arg;
    uint64_t i = 0;
    do { /* at least once, so that the final checks have something to check */
        cp2p_metric_inc(r->counter);
        cp2p_metric_set(r->gauge, (double)i);
        cp2p_metric_observe(r->hist, (double)(i % 7));
        if (i % 1000 == 0 && i / 1000 < 100) { /* new series published while readers walk */
            char v[24];
            snprintf(v, sizeof(v), "s%" PRIu64, i / 1000);
            cp2p_metric *m = NULL;
            if (cp2p_metrics_series(r->labelled, (const char *[]){v}, 1, &m) != 0) {
                r->series_failed = true; /* cmocka's asserts belong to the main thread */
            }
            cp2p_metric_inc(m);
        }
        i++;
    } while (!atomic_load(&r->stop));
    r->done = i;
    return NULL;
}

/* The value of the first sample line that starts with `prefix` (name and labels, then ' '). */
static double sample(const char *text, const char *prefix)
{
    size_t n = strlen(prefix);
    for (const char *p = text; p != NULL && *p != 0;) {
        if (strncmp(p, prefix, n) == 0 && p[n] == ' ') {
            return strtod(p + n + 1, NULL);
        }
        p = strchr(p, '\n');
        p = p != NULL ? p + 1 : NULL;
    }
    fail_msg("no sample %s", prefix);
    return 0;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void updates_race_with_renders(void **state)
{
    (void)state;
    static const double bounds[] = {1, 2, 4};
    race r = {.reg = reg_new()};
    r.counter = series(reg_family(r.reg, &(cp2p_metric_desc){.type = CP2P_METRIC_COUNTER,
                                                              .name = "ops_total", .help = "x"}),
                       NULL, 0);
    r.gauge = series(reg_family(r.reg, &(cp2p_metric_desc){.type = CP2P_METRIC_GAUGE,
                                                            .name = "last", .help = "x"}),
                     NULL, 0);
    r.hist = series(reg_family(r.reg, &(cp2p_metric_desc){.type = CP2P_METRIC_HISTOGRAM,
                                                           .name = "obs", .help = "x",
                                                           .buckets = bounds, .n_buckets = 3}),
                    NULL, 0);
    r.labelled = reg_family(r.reg, &(cp2p_metric_desc){.type = CP2P_METRIC_COUNTER,
                                                       .name = "per_total", .help = "x",
                                                       .labels = {"s"}, .max_series = 50});
    atomic_init(&r.stop, false);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, race_writer, &r), 0);

    double last_ops = 0, last_count = 0;
    size_t renders = 0;
    uint64_t until = now_ms() + 300; /* the length of the run, not an assertion */
    cp2p_buf b;
    cp2p_buf_init(&b, CP2P_METRICS_RENDER_MAX_DEFAULT);
    while (renders < 20 || now_ms() < until) {
        cp2p_buf_reset(&b);
        assert_int_equal(cp2p_metrics_render(r.reg, &b), 0);
        const char *text = (const char *)b.ptr;
        double ops = sample(text, "ops_total");
        double count = sample(text, "obs_count");
        assert_true(ops >= last_ops); /* counters never go back */
        assert_true(count >= last_count);
        double b1 = sample(text, "obs_bucket{le=\"1\"}");
        double b2 = sample(text, "obs_bucket{le=\"2\"}");
        double b4 = sample(text, "obs_bucket{le=\"4\"}");
        double inf = sample(text, "obs_bucket{le=\"+Inf\"}");
        assert_true(b1 <= b2 && b2 <= b4 && b4 <= inf); /* cumulative */
        assert_true(inf == count);                      /* always consistent */
        last_ops = ops;
        last_count = count;
        renders++;
    }
    atomic_store(&r.stop, true);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_false(r.series_failed);

    cp2p_buf_reset(&b);
    assert_int_equal(cp2p_metrics_render(r.reg, &b), 0);
    const char *text = (const char *)b.ptr;
    assert_true(sample(text, "ops_total") == (double)r.done);
    assert_true(sample(text, "obs_count") == (double)r.done);
    assert_true(sample(text, "last") == (double)(r.done - 1));
    if (r.done > 60 * 1000) {
        assert_true(sample(text, "per_total{s=\"_other\"}") >= 1);
    }
    cp2p_buf_fini(&b);
    cp2p_metrics_free(r.reg);
}

/* ---- allocation failures ---- */

static int alloc_scenario(void)
{
    static const double bounds[] = {1, 2};
    cp2p_metrics *reg = NULL;
    cp2p_metric_family *f;
    cp2p_metric *m;
    cp2p_buf b;
    int rc = cp2p_metrics_new(&reg);
    if (rc != 0) {
        assert_null(reg);
        return rc;
    }
    cp2p_buf_init(&b, 1 << 16);
    rc = cp2p_metrics_register(reg, &(cp2p_metric_desc){.type = CP2P_METRIC_HISTOGRAM,
                                                        .name = "h", .help = "x",
                                                        .labels = {"a"}, .buckets = bounds,
                                                        .n_buckets = 2, .max_series = 1},
                               &f);
    if (rc == 0) {
        rc = cp2p_metrics_series(f, (const char *[]){"x"}, 1, &m);
    }
    if (rc == 0) {
        cp2p_metric_observe(m, 1.5);
        rc = cp2p_metrics_series(f, (const char *[]){"y"}, 1, &m); /* the overflow series */
    }
    if (rc == 0) {
        rc = cp2p_metrics_register(reg, &(cp2p_metric_desc){.type = CP2P_METRIC_GAUGE,
                                                            .name = "g", .help = "x"},
                                   &f);
    }
    if (rc == 0) {
        rc = cp2p_metrics_render(reg, &b);
    }
    cp2p_buf_fini(&b);
    cp2p_metrics_free(reg);
    return rc;
}

static void allocation_failures(void **state)
{
    (void)state;
    int rc = CP2P_ENOMEM;
    for (long n = 1; rc != 0 && n < 100; n++) {
        cp2p__alloc_fail_after(n);
        rc = alloc_scenario();
        cp2p__alloc_fail_after(0);
        assert_true(rc == 0 || rc == CP2P_ENOMEM);
    }
    assert_int_equal(rc, 0);
}

/* ---- the exposition checked by promtool ---- */

static void collect_dump(cp2p_metrics_sink *sink, void *ud)
{
    (void)ud;
    cp2p_metrics_sink_emit(sink, (const char *[]){"peerstore"}, 1, 12);
    cp2p_metrics_sink_emit(sink, (const char *[]){"routing_table"}, 1, 40);
}

/* A registry with every kind of family and series, following the Prometheus naming conventions,
 * written to $CP2P_METRICS_DUMP when set (by promtool_check.sh). */
static void dump_for_promtool(void **state)
{
    static const double latency[] = {0.001, 0.01, 0.1, 1, 10};
    cp2p_metrics *reg = *state;
    cp2p_metric *frames = series(
        reg_family(reg, &(cp2p_metric_desc){.type = CP2P_METRIC_COUNTER,
                                            .name = "cp2p_yamux_frames_received_total",
                                            .help = "Yamux frames received."}),
        NULL, 0);
    cp2p_metric_add(frames, 12345);
    cp2p_metric_family *bytes = reg_family(
        reg, &(cp2p_metric_desc){.type = CP2P_METRIC_COUNTER, .name = "cp2p_stream_bytes_total",
                                 .help = "Stream payload bytes, by direction and protocol.",
                                 .labels = {"direction", "protocol"}, .max_series = 4});
    cp2p_metric_add(series(bytes, (const char *[]){"in", "/ipfs/ping/1.0.0"}, 2), 4096);
    cp2p_metric_add(series(bytes, (const char *[]){"out", "/ipfs/ping/1.0.0"}, 2), 2048.5);
    cp2p_metric_add(series(bytes, (const char *[]){"in", "/meshsub/1.1.0"}, 2), 1);
    cp2p_metric_add(series(bytes, (const char *[]){"in", "/odd \"quoted\\\n protocol"}, 2), 9);
    cp2p_metric_add(series(bytes, (const char *[]){"in", "/yamux/1.0.0"}, 2), 7); /* overflow */
    cp2p_metric_family *conns = reg_family(
        reg, &(cp2p_metric_desc){.type = CP2P_METRIC_GAUGE, .name = "cp2p_host_connections",
                                 .help = "Open connections, by direction.",
                                 .labels = {"direction"}});
    cp2p_metric_set(series(conns, (const char *[]){"inbound"}, 1), 3);
    cp2p_metric_set(series(conns, (const char *[]){"outbound"}, 1), 0.5);
    cp2p_metric_family *rtt = reg_family(
        reg, &(cp2p_metric_desc){.type = CP2P_METRIC_HISTOGRAM, .name = "cp2p_ping_rtt_seconds",
                                 .help = "Ping round-trip time.", .labels = {"transport"},
                                 .buckets = latency, .n_buckets = 5});
    cp2p_metric *tcp = series(rtt, (const char *[]){"tcp"}, 1);
    cp2p_metric_observe(tcp, 0.0004);
    cp2p_metric_observe(tcp, 0.05);
    cp2p_metric_observe(tcp, 30);
    reg_family(reg, &(cp2p_metric_desc){.type = CP2P_METRIC_GAUGE,
                                        .name = "cp2p_table_entries",
                                        .help = "Entries per table (\\ and \" in help).",
                                        .labels = {"table"}, .collect = collect_dump});
    cp2p_metric_set(series(reg_family(reg, &(cp2p_metric_desc){.type = CP2P_METRIC_GAUGE,
                                                               .name = "cp2p_test_nan_ratio",
                                                               .help = "Not a number."}),
                           NULL, 0),
                    NAN);

    cp2p_buf b;
    cp2p_buf_init(&b, CP2P_METRICS_RENDER_MAX_DEFAULT);
    assert_int_equal(cp2p_metrics_render(reg, &b), 0);
    assert_non_null(strstr((const char *)b.ptr, "direction=\"_other\",protocol=\"_other\"} 7\n"));
    const char *path = getenv("CP2P_METRICS_DUMP");
    if (path != NULL && path[0] != 0) {
        FILE *fp = fopen(path, "w");
        assert_non_null(fp);
        assert_int_equal(fwrite(b.ptr, 1, b.len, fp), b.len);
        assert_int_equal(fclose(fp), 0);
    }
    cp2p_buf_fini(&b);
}

/* A test that gets a fresh registry in *state, freed after it. */
#define REG_TEST(t) cmocka_unit_test_setup_teardown(t, reg_setup, reg_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        REG_TEST(counter_exposition),
        REG_TEST(labelled_gauge_exposition),
        REG_TEST(histogram_exposition),
        REG_TEST(histogram_without_labels),
        REG_TEST(number_formats),
        REG_TEST(escaping),
        REG_TEST(label_values_bounded_and_utf8),
        REG_TEST(validation_errors),
        REG_TEST(families_bounded),
        REG_TEST(series_bound_and_overflow),
        REG_TEST(collectors),
        REG_TEST(collector_without_labels_has_one_sample),
        REG_TEST(render_is_bounded),
        cmocka_unit_test(updates_race_with_renders),
        cmocka_unit_test(allocation_failures),
        REG_TEST(dump_for_promtool),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
