/* The metrics registry and its Prometheus text exposition (include/cp2p/metrics.h).
 *
 * Threads. Updates come from the network loop; the exposition is read by HTTP threads and must
 * never stop the loop. So:
 * - Values are C11 atomics updated with relaxed read-modify-writes. A counter keeps its integer
 *   increments in an atomic uint64_t (one fetch_add: the hot path is cp2p_metric_inc, and a
 *   uint64_t counts exactly past 2^53, where a double would stop moving on +1) and anything
 *   fractional in a double. A gauge value and a histogram sum are doubles stored as the bit
 *   pattern of an atomic uint64_t and added with a compare-exchange loop (C11 has no atomic
 *   double add); the loop is uncontended with one updater. Relaxed order is enough: every value is
 *   independent, and a reader needs each one only to be a snapshot that never goes back (read-read
 *   coherence of one atomic object).
 * - A histogram keeps per-bucket counts and no separate count: the renderer sums the buckets it
 *   read, so the +Inf bucket always equals _count and the cumulative buckets are monotone even
 *   while observations land (Prometheus requires both); only _sum may be off by the observations
 *   in flight, as in client_golang without its hot/cold swap.
 * - Families and series are only appended, never freed before the registry. A writer (register,
 *   series creation) takes the registry mutex, builds the node completely, and publishes it with
 *   a release store of the list's `next`/`head` pointer. Readers walk the lists with acquire loads
 *   and take no lock at all. This goes one step past "a mutex around the walk": a render holding
 *   the mutex would make a loop-thread series creation wait for a whole scrape, and a collector
 *   that takes its own lock while the loop holds that lock and creates a series would deadlock.
 *   With lock-free readers, neither can happen, and the code is no larger.
 * - Collectors run on the rendering thread with no registry lock held.
 *
 * Bounds: families per registry, series per family (then one "_other" overflow series and the
 * counter cp2p_metrics_series_overflow_total), label value length, name and help lengths, bucket
 * counts, and the rendered text (the caller's cp2p_buf max).
 */
#include <cp2p/metrics.h>

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/utf8.h"

#define OVERFLOW_VALUE "_other"
#define OVERFLOW_FAMILY "cp2p_metrics_series_overflow_total"
/* Longest text of a formatted double: sign, 17 digits, point, exponent, NUL. */
#define NUM_MAX 32

struct cp2p_metric {
    _Atomic(cp2p_metric *) next; /* the family's series, in creation order */
    cp2p_metric_family *fam;
    cp2p_metric_type type;
    uint32_t hash;                                /* of the label values, for lookups */
    const char *values[CP2P_METRICS_MAX_LABELS]; /* normalised copies, after `buckets` */
    _Atomic uint64_t count;                       /* counter: integer increments */
    _Atomic uint64_t bits; /* a double: gauge value, counter fractional part, histogram sum */
    _Atomic uint64_t buckets[]; /* histogram: n_bounds + 1 non-cumulative counts (+Inf last) */
};

struct cp2p_metric_family {
    _Atomic(cp2p_metric_family *) next; /* the registry's families, in registration order */
    cp2p_metrics *reg;
    cp2p_metric_type type;
    const char *name, *help;
    const char *labels[CP2P_METRICS_MAX_LABELS];
    size_t n_labels;
    const double *bounds; /* histogram: finite upper bounds */
    char (*le)[NUM_MAX];  /* the bounds as "le" label values */
    size_t n_bounds;
    uint32_t max_series;
    cp2p_metrics_collect_fn collect;
    void *collect_ud;
    _Atomic(cp2p_metric *) head;
    /* Writers only, under reg->mu. */
    cp2p_metric *tail;
    cp2p_metric *overflow;
    uint32_t n_series; /* not counting the overflow series */
};

struct cp2p_metrics {
    pthread_mutex_t mu;
    _Atomic(cp2p_metric_family *) head;
    cp2p_metric_family *tail; /* writers only, under mu */
    size_t n_families;
    cp2p_metric *overflow_total;
};

/* ---- names and values ---- */

static bool name_valid(const char *s, bool label)
{
    size_t n = strlen(s);
    if (n == 0 || n > CP2P_METRICS_NAME_MAX || (label && s[0] == '_' && s[1] == '_')) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
        bool ok = alpha || (i > 0 && c >= '0' && c <= '9') || (!label && c == ':');
        if (!ok) {
            return false;
        }
    }
    return true;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && memcmp(s + n - k, suffix, k) == 0;
}

/* Copy `in` into out (CP2P_METRICS_LABEL_VALUE_MAX + 1 bytes): cut at that many bytes on a UTF-8
 * boundary, each byte that does not start a valid UTF-8 sequence replaced by '?'. Reads `in` only
 * up to what it copies, so a huge value costs no more than a short one. */
static void value_normalise(const char *in, char *out)
{
    const uint8_t *s = (const uint8_t *)in;
    size_t i = 0, o = 0;
    while (s[i] != 0) {
        uint8_t c = s[i];
        size_t n = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : 4;
        if (n > 1 && !cp2p__utf8_valid(s + i, n)) { /* stops at the NUL: never reads past it */
            c = '?';
            n = 1;
        }
        if (n > CP2P_METRICS_LABEL_VALUE_MAX - o) {
            break;
        }
        if (n == 1) {
            out[o] = (char)c;
        } else {
            memcpy(out + o, s + i, n);
        }
        o += n;
        i += n;
    }
    out[o] = 0;
}

typedef char value_buf[CP2P_METRICS_LABEL_VALUE_MAX + 1];

/* Normalise values[0..n) into vb; false if one is NULL. Sets *all_other when every value is the
 * overflow value (never for n == 0: a family without labels has one series and no overflow). */
static bool values_normalise(const char *const *values, size_t n, value_buf *vb, bool *all_other)
{
    *all_other = n > 0;
    for (size_t i = 0; i < n; i++) {
        if (values[i] == NULL) {
            return false;
        }
        value_normalise(values[i], vb[i]);
        *all_other = *all_other && strcmp(vb[i], OVERFLOW_VALUE) == 0;
    }
    return true;
}

static uint32_t values_hash(const value_buf *vb, size_t n)
{
    uint32_t h = 2166136261u; /* FNV-1a, with the NULs as separators */
    for (size_t i = 0; i < n; i++) {
        for (const char *p = vb[i];; p++) {
            h = (h ^ (uint8_t)*p) * 16777619u;
            if (*p == 0) {
                break;
            }
        }
    }
    return h;
}

/* ---- numbers ---- */

static double bits_to_double(uint64_t b)
{
    double d;
    memcpy(&d, &b, sizeof(d));
    return d;
}

static uint64_t double_to_bits(double d)
{
    uint64_t b;
    memcpy(&b, &d, sizeof(b));
    return b;
}

static double load_double(_Atomic uint64_t *p)
{
    return bits_to_double(atomic_load_explicit(p, memory_order_relaxed));
}

static void add_double(_Atomic uint64_t *p, double v)
{
    uint64_t old = atomic_load_explicit(p, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(p, &old,
                                                  double_to_bits(bits_to_double(old) + v),
                                                  memory_order_relaxed, memory_order_relaxed)) {
    }
}

/* Prometheus text for a double: NaN, +Inf, -Inf; integers (below 2^63) in plain digits; others in
 * the shortest %g form that reads back to the same double, with '.' whatever the C locale. */
static void fmt_double(double v, char out[NUM_MAX])
{
    if (isnan(v)) {
        memcpy(out, "NaN", 4);
        return;
    }
    if (isinf(v)) {
        memcpy(out, v > 0 ? "+Inf" : "-Inf", 5);
        return;
    }
    if (v >= -0x1p63 && v < 0x1p63 && (double)(int64_t)v == v) {
        snprintf(out, NUM_MAX, "%" PRId64, (int64_t)v);
        return;
    }
    char tmp[NUM_MAX];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*g", prec, v);
        if (strtod(tmp, NULL) == v) {
            break;
        }
    }
    /* The locale's decimal point (which may be "," or several bytes) becomes one '.'. */
    size_t o = 0;
    bool point = false;
    for (size_t i = 0; tmp[i] != 0; i++) {
        char c = tmp[i];
        if ((c >= '0' && c <= '9') || c == '-' || c == '+' || c == 'e') {
            out[o++] = c;
        } else if (!point) {
            out[o++] = '.';
            point = true;
        }
    }
    out[o] = 0;
}

/* ---- series ---- */

/* Copy s (len bytes with its NUL) to *p and move *p past it. */
static const char *carve(char **p, const char *s, size_t len)
{
    char *dst = *p;
    memcpy(dst, s, len);
    *p += len;
    return dst;
}

static cp2p_metric *series_new(cp2p_metric_family *f, const value_buf *vb)
{
    size_t nb = f->type == CP2P_METRIC_HISTOGRAM ? f->n_bounds + 1 : 0;
    size_t head = sizeof(cp2p_metric) + nb * sizeof(_Atomic uint64_t);
    size_t lens[CP2P_METRICS_MAX_LABELS], size = head;
    for (size_t i = 0; i < f->n_labels; i++) {
        lens[i] = strlen(vb[i]) + 1;
        size += lens[i];
    }
    cp2p_metric *m = cp2p_calloc(1, size);
    if (m == NULL) {
        return NULL;
    }
    m->fam = f;
    m->type = f->type;
    m->hash = values_hash(vb, f->n_labels);
    char *p = (char *)m + head;
    for (size_t i = 0; i < f->n_labels; i++) {
        m->values[i] = carve(&p, vb[i], lens[i]);
    }
    atomic_init(&m->next, NULL);
    atomic_init(&m->count, 0);
    atomic_init(&m->bits, double_to_bits(0.0));
    for (size_t i = 0; i < nb; i++) {
        atomic_init(&m->buckets[i], 0);
    }
    /* Publish: a reader that sees the pointer sees the initialised series. */
    if (f->tail == NULL) {
        atomic_store_explicit(&f->head, m, memory_order_release);
    } else {
        atomic_store_explicit(&f->tail->next, m, memory_order_release);
    }
    f->tail = m;
    return m;
}

static bool values_equal(const cp2p_metric *m, const value_buf *vb)
{
    for (size_t i = 0; i < m->fam->n_labels; i++) {
        if (strcmp(m->values[i], vb[i]) != 0) {
            return false;
        }
    }
    return true;
}

/* The series for normalised values, created within the bound; under reg->mu. */
static int series_get_locked(cp2p_metric_family *f, const value_buf *vb, bool all_other,
                             cp2p_metric **out)
{
    uint32_t h = values_hash(vb, f->n_labels);
    for (cp2p_metric *m = atomic_load_explicit(&f->head, memory_order_relaxed); m != NULL;
         m = atomic_load_explicit(&m->next, memory_order_relaxed)) {
        if (m->hash == h && values_equal(m, vb)) {
            *out = m;
            return 0;
        }
    }
    bool refused = !all_other && f->n_series >= f->max_series;
    if (!all_other && !refused) {
        cp2p_metric *m = series_new(f, vb);
        if (m == NULL) {
            return CP2P_ENOMEM;
        }
        f->n_series++;
        *out = m;
        return 0;
    }
    if (f->overflow == NULL) {
        value_buf other[CP2P_METRICS_MAX_LABELS];
        for (size_t i = 0; i < f->n_labels; i++) {
            memcpy(other[i], OVERFLOW_VALUE, sizeof(OVERFLOW_VALUE));
        }
        f->overflow = series_new(f, (const value_buf *)other);
        if (f->overflow == NULL) {
            return CP2P_ENOMEM;
        }
    }
    if (refused) {
        cp2p_metric_inc(f->reg->overflow_total);
    }
    *out = f->overflow;
    return 0;
}

int cp2p_metrics_series(cp2p_metric_family *fam, const char *const *values, size_t n,
                        cp2p_metric **out)
{
    value_buf vb[CP2P_METRICS_MAX_LABELS];
    bool all_other;

    if (fam == NULL || out == NULL || fam->collect != NULL || n != fam->n_labels ||
        (n > 0 && values == NULL) || !values_normalise(values, n, vb, &all_other)) {
        return CP2P_EINVAL;
    }
    pthread_mutex_lock(&fam->reg->mu);
    int rc = series_get_locked(fam, (const value_buf *)vb, all_other, out);
    pthread_mutex_unlock(&fam->reg->mu);
    return rc;
}

void cp2p_metric_inc(cp2p_metric *m)
{
    if (m != NULL && m->type == CP2P_METRIC_COUNTER) {
        atomic_fetch_add_explicit(&m->count, 1, memory_order_relaxed);
    } else if (m != NULL && m->type == CP2P_METRIC_GAUGE) {
        add_double(&m->bits, 1.0);
    }
}

void cp2p_metric_add(cp2p_metric *m, double v)
{
    if (m == NULL || m->type == CP2P_METRIC_HISTOGRAM) {
        return;
    }
    if (m->type == CP2P_METRIC_GAUGE) {
        add_double(&m->bits, v);
    } else if (v >= 0 && v < 0x1p64 && (double)(uint64_t)v == v) {
        atomic_fetch_add_explicit(&m->count, (uint64_t)v, memory_order_relaxed);
    } else if (v >= 0) { /* also refuses NaN */
        add_double(&m->bits, v);
    }
}

void cp2p_metric_set(cp2p_metric *m, double v)
{
    if (m != NULL && m->type == CP2P_METRIC_GAUGE) {
        atomic_store_explicit(&m->bits, double_to_bits(v), memory_order_relaxed);
    }
}

void cp2p_metric_observe(cp2p_metric *m, double v)
{
    if (m == NULL || m->type != CP2P_METRIC_HISTOGRAM || isnan(v)) {
        return;
    }
    const double *b = m->fam->bounds;
    size_t lo = 0, hi = m->fam->n_bounds; /* the first bound >= v, or n_bounds for +Inf */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (b[mid] >= v) {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    atomic_fetch_add_explicit(&m->buckets[lo], 1, memory_order_relaxed);
    add_double(&m->bits, v);
}

/* ---- families ---- */

static const char *const *type_suffixes(cp2p_metric_type t, size_t *n)
{
    static const char *const plain[] = {""};
    static const char *const histogram[] = {"", "_bucket", "_sum", "_count"};
    if (t == CP2P_METRIC_HISTOGRAM) {
        *n = 4;
        return histogram;
    }
    *n = 1;
    return plain;
}

/* Does any sample name of family f equal one of a new family (name, t)? */
static bool names_clash(const cp2p_metric_family *f, const char *name, cp2p_metric_type t)
{
    size_t na, nb;
    const char *const *sa = type_suffixes(f->type, &na);
    const char *const *sb = type_suffixes(t, &nb);
    char a[CP2P_METRICS_NAME_MAX + 8], b[CP2P_METRICS_NAME_MAX + 8];
    for (size_t i = 0; i < na; i++) {
        snprintf(a, sizeof(a), "%s%s", f->name, sa[i]);
        for (size_t j = 0; j < nb; j++) {
            snprintf(b, sizeof(b), "%s%s", name, sb[j]);
            if (strcmp(a, b) == 0) {
                return true;
            }
        }
    }
    return false;
}

static int desc_check(const cp2p_metric_desc *d, size_t *n_labels, size_t *n_bounds)
{
    bool histogram = d->type == CP2P_METRIC_HISTOGRAM;
    if ((d->type != CP2P_METRIC_COUNTER && d->type != CP2P_METRIC_GAUGE && !histogram) ||
        d->name == NULL || !name_valid(d->name, false) ||
        ends_with(d->name, "_total") != (d->type == CP2P_METRIC_COUNTER) || d->help == NULL ||
        d->help[0] == 0 || strlen(d->help) > CP2P_METRICS_HELP_MAX ||
        !cp2p__utf8_valid((const uint8_t *)d->help, strlen(d->help)) ||
        d->max_series > CP2P_METRICS_SERIES_MAX || (histogram && d->collect != NULL)) {
        return CP2P_EINVAL;
    }
    size_t n = 0;
    while (n < CP2P_METRICS_MAX_LABELS && d->labels[n] != NULL) {
        n++;
    }
    for (size_t i = 0; i < CP2P_METRICS_MAX_LABELS; i++) {
        if ((i >= n && d->labels[i] != NULL) ||
            (i < n && (!name_valid(d->labels[i], true) ||
                       (histogram && strcmp(d->labels[i], "le") == 0)))) {
            return CP2P_EINVAL;
        }
        for (size_t j = 0; j < i && i < n; j++) {
            if (strcmp(d->labels[i], d->labels[j]) == 0) {
                return CP2P_EINVAL;
            }
        }
    }
    *n_labels = n;
    *n_bounds = 0;
    if (!histogram) {
        return d->buckets == NULL && d->n_buckets == 0 ? 0 : CP2P_EINVAL;
    }
    size_t nb = d->n_buckets;
    if (d->buckets == NULL || nb == 0 || nb > CP2P_METRICS_BUCKETS_MAX + 1) {
        return CP2P_EINVAL;
    }
    if (isinf(d->buckets[nb - 1]) && d->buckets[nb - 1] > 0) {
        nb--; /* the +Inf bucket is implicit */
    }
    for (size_t i = 0; i < nb; i++) {
        if (!isfinite(d->buckets[i]) || (i > 0 && !(d->buckets[i] > d->buckets[i - 1]))) {
            return CP2P_EINVAL;
        }
    }
    if (nb == 0 || nb > CP2P_METRICS_BUCKETS_MAX) {
        return CP2P_EINVAL;
    }
    *n_bounds = nb;
    return 0;
}

/* One block: the family, its bounds and their le texts, then its strings. */
static cp2p_metric_family *family_new(cp2p_metrics *reg, const cp2p_metric_desc *d,
                                      size_t n_labels, size_t n_bounds)
{
    size_t name_len = strlen(d->name) + 1, help_len = strlen(d->help) + 1;
    size_t label_len[CP2P_METRICS_MAX_LABELS];
    size_t size = sizeof(cp2p_metric_family) + n_bounds * (sizeof(double) + NUM_MAX) + name_len +
                  help_len;
    for (size_t i = 0; i < n_labels; i++) {
        label_len[i] = strlen(d->labels[i]) + 1;
        size += label_len[i];
    }
    cp2p_metric_family *f = cp2p_calloc(1, size);
    if (f == NULL) {
        return NULL;
    }
    double *bounds = (double *)(f + 1); /* the struct's size keeps 8-byte alignment */
    f->le = (char(*)[NUM_MAX])(bounds + n_bounds);
    for (size_t i = 0; i < n_bounds; i++) {
        bounds[i] = d->buckets[i];
        fmt_double(bounds[i], f->le[i]);
    }
    f->bounds = bounds;
    char *p = (char *)(f->le + n_bounds);
    f->name = carve(&p, d->name, name_len);
    f->help = carve(&p, d->help, help_len);
    for (size_t i = 0; i < n_labels; i++) {
        f->labels[i] = carve(&p, d->labels[i], label_len[i]);
    }
    f->reg = reg;
    f->type = d->type;
    f->n_labels = n_labels;
    f->n_bounds = n_bounds;
    f->max_series = d->max_series == 0 ? CP2P_METRICS_SERIES_DEFAULT : d->max_series;
    f->collect = d->collect;
    f->collect_ud = d->collect_ud;
    atomic_init(&f->next, NULL);
    atomic_init(&f->head, NULL);
    return f;
}

static void family_free(cp2p_metric_family *f)
{
    cp2p_metric *m = atomic_load_explicit(&f->head, memory_order_relaxed);
    while (m != NULL) {
        cp2p_metric *next = atomic_load_explicit(&m->next, memory_order_relaxed);
        cp2p_free(m);
        m = next;
    }
    cp2p_free(f);
}

static int register_locked(cp2p_metrics *reg, cp2p_metric_family *f)
{
    if (reg->n_families >= CP2P_METRICS_FAMILIES_MAX) {
        return CP2P_ELIMIT;
    }
    for (cp2p_metric_family *g = atomic_load_explicit(&reg->head, memory_order_relaxed); g != NULL;
         g = atomic_load_explicit(&g->next, memory_order_relaxed)) {
        if (names_clash(g, f->name, f->type)) {
            return CP2P_EINVAL;
        }
    }
    /* A family without labels has exactly one series: create it now so that it renders 0. */
    if (f->n_labels == 0 && f->collect == NULL && series_new(f, NULL) == NULL) {
        return CP2P_ENOMEM;
    }
    f->n_series = f->n_labels == 0 && f->collect == NULL ? 1 : 0;
    if (reg->tail == NULL) {
        atomic_store_explicit(&reg->head, f, memory_order_release);
    } else {
        atomic_store_explicit(&reg->tail->next, f, memory_order_release);
    }
    reg->tail = f;
    reg->n_families++;
    return 0;
}

int cp2p_metrics_register(cp2p_metrics *reg, const cp2p_metric_desc *desc,
                          cp2p_metric_family **out)
{
    size_t n_labels, n_bounds;
    if (reg == NULL || desc == NULL || out == NULL) {
        return CP2P_EINVAL;
    }
    int rc = desc_check(desc, &n_labels, &n_bounds);
    if (rc != 0) {
        return rc;
    }
    cp2p_metric_family *f = family_new(reg, desc, n_labels, n_bounds);
    if (f == NULL) {
        return CP2P_ENOMEM;
    }
    pthread_mutex_lock(&reg->mu);
    rc = register_locked(reg, f);
    pthread_mutex_unlock(&reg->mu);
    if (rc == 0) {
        *out = f;
    } else {
        family_free(f);
    }
    return rc;
}

void cp2p_metrics_free(cp2p_metrics *reg)
{
    if (reg == NULL) {
        return;
    }
    cp2p_metric_family *f = atomic_load_explicit(&reg->head, memory_order_relaxed);
    while (f != NULL) {
        cp2p_metric_family *next = atomic_load_explicit(&f->next, memory_order_relaxed);
        family_free(f);
        f = next;
    }
    pthread_mutex_destroy(&reg->mu);
    cp2p_free(reg);
}

int cp2p_metrics_new(cp2p_metrics **out)
{
    static const cp2p_metric_desc overflow = {
        .type = CP2P_METRIC_COUNTER,
        .name = OVERFLOW_FAMILY,
        .help = "Label-value tuples refused because their family had reached its series bound; "
                "their updates went to the series whose label values are all \"" OVERFLOW_VALUE
                "\".",
    };
    cp2p_metric_family *f;
    if (out == NULL) {
        return CP2P_EINVAL;
    }
    cp2p_metrics *reg = cp2p_calloc(1, sizeof(*reg));
    if (reg == NULL) {
        return CP2P_ENOMEM;
    }
    if (pthread_mutex_init(&reg->mu, NULL) != 0) {
        cp2p_free(reg);
        return CP2P_ENOMEM;
    }
    atomic_init(&reg->head, NULL);
    int rc = cp2p_metrics_register(reg, &overflow, &f);
    if (rc != 0 || (rc = cp2p_metrics_series(f, NULL, 0, &reg->overflow_total)) != 0) {
        goto fail;
    }
    *out = reg;
    return 0;
fail:
    cp2p_metrics_free(reg);
    return rc;
}

/* ---- exposition ---- */

/* The output with a sticky error: after the first failure every write is a no-op. */
typedef struct writer {
    cp2p_buf *b;
    int rc;
} writer;

static void put(writer *w, const char *s, size_t n)
{
    if (w->rc == 0) {
        w->rc = cp2p_buf_append(w->b, s, n);
    }
}

static void puts_(writer *w, const char *s)
{
    put(w, s, strlen(s));
}

/* Text with '\\' and '\n' escaped, and '"' too when `quote` (label values; HELP keeps it). */
static void put_escaped(writer *w, const char *s, bool quote)
{
    const char *run = s;
    for (; *s != 0; s++) {
        const char *esc = *s == '\\' ? "\\\\" : *s == '\n' ? "\\n" : NULL;
        if (quote && *s == '"') {
            esc = "\\\"";
        }
        if (esc != NULL) {
            put(w, run, (size_t)(s - run));
            put(w, esc, 2);
            run = s + 1;
        }
    }
    put(w, run, (size_t)(s - run));
}

static void put_header(writer *w, const cp2p_metric_family *f)
{
    static const char *const type_names[] = {"counter", "gauge", "histogram"};
    puts_(w, "# HELP ");
    puts_(w, f->name);
    put(w, " ", 1);
    put_escaped(w, f->help, false);
    puts_(w, "\n# TYPE ");
    puts_(w, f->name);
    put(w, " ", 1);
    puts_(w, type_names[f->type]);
    put(w, "\n", 1);
}

/* One sample line: name+suffix{labels[,le="..."]} value */
static void put_sample(writer *w, const cp2p_metric_family *f, const char *suffix,
                       const char *const *values, const char *le, const char *num)
{
    puts_(w, f->name);
    puts_(w, suffix);
    if (f->n_labels > 0 || le != NULL) {
        put(w, "{", 1);
        for (size_t i = 0; i < f->n_labels; i++) {
            if (i > 0) {
                put(w, ",", 1);
            }
            puts_(w, f->labels[i]);
            put(w, "=\"", 2);
            put_escaped(w, values[i], true);
            put(w, "\"", 1);
        }
        if (le != NULL) {
            puts_(w, f->n_labels > 0 ? ",le=\"" : "le=\"");
            puts_(w, le);
            put(w, "\"", 1);
        }
        put(w, "}", 1);
    }
    put(w, " ", 1);
    puts_(w, num);
    put(w, "\n", 1);
}

static void put_series(writer *w, const cp2p_metric_family *f, cp2p_metric *m)
{
    char num[NUM_MAX];
    if (f->type == CP2P_METRIC_COUNTER) {
        uint64_t c = atomic_load_explicit(&m->count, memory_order_relaxed);
        double frac = load_double(&m->bits);
        if (frac == 0) {
            snprintf(num, sizeof(num), "%" PRIu64, c);
        } else {
            fmt_double((double)c + frac, num);
        }
        put_sample(w, f, "", m->values, NULL, num);
        return;
    }
    if (f->type == CP2P_METRIC_GAUGE) {
        fmt_double(load_double(&m->bits), num);
        put_sample(w, f, "", m->values, NULL, num);
        return;
    }
    /* Read each bucket once; the total of what was read is both +Inf and _count. */
    uint64_t cum = 0;
    for (size_t i = 0; i <= f->n_bounds; i++) {
        cum += atomic_load_explicit(&m->buckets[i], memory_order_relaxed);
        snprintf(num, sizeof(num), "%" PRIu64, cum);
        put_sample(w, f, "_bucket", m->values, i < f->n_bounds ? f->le[i] : "+Inf", num);
    }
    fmt_double(load_double(&m->bits), num);
    put_sample(w, f, "_sum", m->values, NULL, num);
    snprintf(num, sizeof(num), "%" PRIu64, cum);
    put_sample(w, f, "_count", m->values, NULL, num);
}

struct cp2p_metrics_sink {
    const cp2p_metric_family *fam;
    writer *w;
    bool header;     /* HELP and TYPE written */
    bool has_other;  /* an "_other" sample is owed */
    double other;    /* its value: the sum of what did not fit */
    uint32_t n_emitted;
    uint64_t n_refused;
};

void cp2p_metrics_sink_emit(cp2p_metrics_sink *sink, const char *const *values, size_t n,
                            double value)
{
    value_buf vb[CP2P_METRICS_MAX_LABELS];
    const char *vp[CP2P_METRICS_MAX_LABELS];
    bool all_other;

    if (sink == NULL || sink->w->rc != 0) {
        return;
    }
    const cp2p_metric_family *f = sink->fam;
    if (n != f->n_labels || (n > 0 && values == NULL) ||
        !values_normalise(values, n, vb, &all_other) || (n == 0 && sink->n_emitted > 0)) {
        sink->w->rc = CP2P_EINVAL;
        return;
    }
    if (all_other || sink->n_emitted >= f->max_series) {
        sink->n_refused += all_other ? 0 : 1;
        sink->has_other = true;
        sink->other += value;
        return;
    }
    if (!sink->header) {
        put_header(sink->w, f);
        sink->header = true;
    }
    for (size_t i = 0; i < n; i++) {
        vp[i] = vb[i];
    }
    char num[NUM_MAX];
    fmt_double(value, num);
    put_sample(sink->w, f, "", vp, NULL, num);
    sink->n_emitted++;
}

static void put_collected(writer *w, cp2p_metrics *reg, const cp2p_metric_family *f)
{
    cp2p_metrics_sink sink = {.fam = f, .w = w};
    f->collect(&sink, f->collect_ud);
    if (sink.has_other && w->rc == 0) {
        const char *other[CP2P_METRICS_MAX_LABELS];
        char num[NUM_MAX];
        for (size_t i = 0; i < f->n_labels; i++) {
            other[i] = OVERFLOW_VALUE;
        }
        if (!sink.header) {
            put_header(w, f);
        }
        fmt_double(sink.other, num);
        put_sample(w, f, "", other, NULL, num);
    }
    if (sink.n_refused > 0) {
        atomic_fetch_add_explicit(&reg->overflow_total->count, sink.n_refused,
                                  memory_order_relaxed);
    }
}

int cp2p_metrics_render(cp2p_metrics *reg, cp2p_buf *out)
{
    if (reg == NULL || out == NULL) {
        return CP2P_EINVAL;
    }
    writer w = {.b = out, .rc = 0};
    for (cp2p_metric_family *f = atomic_load_explicit(&reg->head, memory_order_acquire);
         f != NULL && w.rc == 0; f = atomic_load_explicit(&f->next, memory_order_acquire)) {
        if (f->collect != NULL) {
            put_collected(&w, reg, f);
            continue;
        }
        cp2p_metric *m = atomic_load_explicit(&f->head, memory_order_acquire);
        if (m != NULL) {
            put_header(&w, f);
        }
        for (; m != NULL; m = atomic_load_explicit(&m->next, memory_order_acquire)) {
            put_series(&w, f, m);
        }
    }
    return w.rc;
}
