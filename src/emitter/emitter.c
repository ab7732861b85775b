/* Batching emitter core: see src/emitter/emitter.h and include/cp2p/emitter.h.
 *
 * Differences from Fabric's batcher.go, on purpose:
 * - The burst trigger counts messages that have never been emitted. Fabric counts every buffered
 *   message, so with iterations > 1 a full buffer of repeats makes every later Add emit at once;
 *   here repeats ride along with the next burst or latency emission instead.
 * - Fabric re-selects peers at random each iteration and may pick the same peer again; here a
 *   message prefers peers it has not been sent to, and falls back to already-used peers only when
 *   too few fresh ones pass the filter (so fan-out stays min(fanout, eligible peers)).
 * - The buffer is bounded (count and bytes) and rejects the newest message when full. */
#include "emitter/emitter.h"

#include <string.h>

#include "util/hashmap.h"
#include "util/limits.h"

typedef struct emsg {
    uint32_t kind;
    uint32_t iters_left;
    uint32_t n_sent, sent_cap; /* hashes of the peers this message went to */
    size_t len;
    size_t cost;                 /* bytes charged against max_buffered_bytes */
    uint64_t sent_and_data[];    /* sent_cap hashes, then len data bytes */
} emsg;

struct cp2p_emitter {
    cp2p_emitter_config cfg;
    cp2p_emitter_kind *kinds; /* n_kinds >= 1, fan-out resolved */
    size_t n_kinds;
    uint32_t fanout_max;
    emsg **buf;
    size_t n, cap;
    size_t bytes;
    size_t n_fresh;       /* queued messages never emitted */
    uint64_t round_start; /* the current round began (valid when n > 0) */
    uint64_t burst_at;    /* n_fresh reached burst_size (valid when n_fresh >= burst_size) */
    bool in_cb;
    cp2p_emitter_stats stats;
};

static uint8_t *msg_data(emsg *m) { return (uint8_t *)(m->sent_and_data + m->sent_cap); }

/* A message remembers the peers it went to by a keyed hash of their IDs (8 bytes instead of
 * up to 42): peers are remote, and with an unkeyed hash one could mint an ID that collides with
 * another's and make us skip that peer as "already sent". */
static uint64_t peer_hash(const cp2p_peer_id *p)
{
    size_t len = p->len < CP2P_PEER_ID_MAX ? p->len : CP2P_PEER_ID_MAX;

    return cp2p__hashmap_hash(p->bytes, len);
}

void cp2p_emitter_config_default(cp2p_emitter_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->iterations = CP2P_EMITTER_ITERATIONS;
    cfg->burst_size = CP2P_EMITTER_BURST_SIZE;
    cfg->max_latency_ms = CP2P_EMITTER_MAX_LATENCY_MS;
    cfg->fanout = CP2P_EMITTER_FANOUT;
    cfg->max_buffered = CP2P_EMITTER_MAX_BUFFERED;
    cfg->max_buffered_bytes = CP2P_EMITTER_MAX_BUFFERED_BYTES;
    cfg->max_msg_bytes = CP2P_EMITTER_MAX_MSG_BYTES;
}

int cp2p_emitter_new(const cp2p_emitter_config *cfg, cp2p_emitter **out)
{
    cp2p_emitter *e;
    size_t nk;

    if (cfg == NULL || out == NULL || cfg->send == NULL || cfg->iterations == 0 ||
        cfg->iterations > CP2P_EMITTER_MAX_ITERATIONS || cfg->burst_size == 0 ||
        cfg->fanout == 0 || cfg->fanout > CP2P_EMITTER_MAX_FANOUT ||
        cfg->n_kinds > CP2P_EMITTER_MAX_KINDS || (cfg->n_kinds > 0 && cfg->kinds == NULL) ||
        cfg->max_buffered == 0 || cfg->max_buffered > CP2P_EMITTER_MAX_BUFFERED_LIMIT ||
        cfg->max_msg_bytes == 0) {
        return CP2P_EINVAL;
    }
    for (size_t k = 0; k < cfg->n_kinds; k++) {
        if (cfg->kinds[k].fanout > CP2P_EMITTER_MAX_FANOUT) {
            return CP2P_EINVAL;
        }
    }
    if (cp2p__hashmap_key_init() != 0) {
        return CP2P_EIO;
    }
    e = cp2p_calloc(1, sizeof(*e));
    if (e == NULL) {
        return CP2P_ENOMEM;
    }
    nk = cfg->n_kinds > 0 ? cfg->n_kinds : 1;
    e->kinds = cp2p_calloc(nk, sizeof(*e->kinds));
    if (e->kinds == NULL) {
        cp2p_free(e);
        return CP2P_ENOMEM;
    }
    e->cfg = *cfg;
    e->cfg.kinds = NULL; /* the caller's array is not kept */
    e->n_kinds = nk;
    for (size_t k = 0; k < nk; k++) {
        if (cfg->n_kinds > 0) {
            e->kinds[k] = cfg->kinds[k];
        }
        if (e->kinds[k].fanout == 0) {
            e->kinds[k].fanout = cfg->fanout;
        }
        if (e->kinds[k].fanout > e->fanout_max) {
            e->fanout_max = e->kinds[k].fanout;
        }
    }
    *out = e;
    return 0;
}

void cp2p_emitter_free(cp2p_emitter *e)
{
    if (e == NULL) {
        return;
    }
    for (size_t i = 0; i < e->n; i++) {
        cp2p_free(e->buf[i]);
    }
    cp2p_free(e->buf);
    cp2p_free(e->kinds);
    cp2p_free(e);
}

int cp2p_emitter_add(cp2p_emitter *e, const void *msg, size_t len, uint32_t kind, uint64_t now_ms)
{
    emsg *m;
    size_t sent_cap, cost;

    if (e == NULL || kind >= e->n_kinds || (msg == NULL && len > 0)) {
        return CP2P_EINVAL;
    }
    if (e->in_cb) {
        return CP2P_ESTATE;
    }
    if (len > e->cfg.max_msg_bytes) {
        e->stats.refused_limit++;
        return CP2P_ELIMIT;
    }
    sent_cap = (size_t)e->cfg.iterations * e->kinds[kind].fanout; /* <= 16 * 64 */
    cost = sizeof(emsg) + sent_cap * sizeof(uint64_t) + len;      /* len <= max_msg_bytes */
    if (e->n >= e->cfg.max_buffered || cost > e->cfg.max_buffered_bytes - e->bytes) {
        e->stats.refused_full++;
        return CP2P_EFULL;
    }
    if (e->n == e->cap) {
        size_t ncap = e->cap == 0 ? 16 : e->cap * 2;
        emsg **nb;

        if (ncap > e->cfg.max_buffered) {
            ncap = e->cfg.max_buffered;
        }
        nb = cp2p_realloc(e->buf, ncap * sizeof(*nb));
        if (nb == NULL) {
            return CP2P_ENOMEM;
        }
        e->buf = nb;
        e->cap = ncap;
    }
    m = cp2p_malloc(cost);
    if (m == NULL) {
        return CP2P_ENOMEM;
    }
    m->kind = kind;
    m->iters_left = e->cfg.iterations;
    m->n_sent = 0;
    m->sent_cap = (uint32_t)sent_cap;
    m->len = len;
    m->cost = cost;
    if (len > 0) {
        memcpy(msg_data(m), msg, len);
    }
    if (e->n == 0) {
        e->round_start = now_ms;
    }
    e->buf[e->n++] = m;
    e->bytes += cost;
    e->n_fresh++;
    if (e->n_fresh == e->cfg.burst_size) {
        e->burst_at = now_ms;
    }
    e->stats.added++;
    return 0;
}

uint64_t cp2p_emitter_next_deadline(const cp2p_emitter *e, uint64_t now_ms)
{
    (void)now_ms; /* the deadline is absolute; due when <= now_ms */
    if (e == NULL || e->n == 0) {
        return UINT64_MAX;
    }
    if (e->n_fresh >= e->cfg.burst_size) {
        return e->burst_at;
    }
    if (e->cfg.max_latency_ms > UINT64_MAX - e->round_start) {
        return UINT64_MAX;
    }
    return e->round_start + e->cfg.max_latency_ms;
}

size_t cp2p_emitter_pending(const cp2p_emitter *e) { return e == NULL ? 0 : e->n; }

const cp2p_emitter_stats *cp2p_emitter_stats_get(const cp2p_emitter *e) { return &e->stats; }

/* Scratch of one emission, all allocated before any callback runs, so that CP2P_ENOMEM leaves
 * the queue untouched. */
typedef struct scratch {
    uint64_t *phash; /* n_peers: peer hashes */
    uint32_t *elig;  /* n_peers: candidates passing the current kind's filter */
    uint32_t *sel;   /* n * fanout_max: peers chosen per message */
    uint32_t *nsel;  /* n: how many */
    size_t *start;   /* n_peers + 1: counting sort by peer */
    uint32_t *order; /* total selections: message indices grouped by peer */
    cp2p_slice *sl;  /* n: one frame's messages */
} scratch;

static void scratch_free(scratch *s)
{
    cp2p_free(s->phash);
    cp2p_free(s->elig);
    cp2p_free(s->sel);
    cp2p_free(s->nsel);
    cp2p_free(s->start);
    cp2p_free(s->order);
    cp2p_free(s->sl);
}

static int scratch_alloc(scratch *s, size_t n, size_t n_peers, uint32_t fanout_max)
{
    size_t np = n_peers > 0 ? n_peers : 1;

    memset(s, 0, sizeof(*s));
    s->phash = cp2p_malloc(np * sizeof(*s->phash));
    s->elig = cp2p_malloc(np * sizeof(*s->elig));
    s->sel = cp2p_malloc(n * fanout_max * sizeof(*s->sel));
    s->nsel = cp2p_calloc(n, sizeof(*s->nsel));
    s->start = cp2p_calloc(np + 1, sizeof(*s->start));
    s->order = cp2p_malloc(n * fanout_max * sizeof(*s->order));
    s->sl = cp2p_malloc(n * sizeof(*s->sl));
    if (s->phash == NULL || s->elig == NULL || s->sel == NULL || s->nsel == NULL ||
        s->start == NULL || s->order == NULL || s->sl == NULL) {
        scratch_free(s);
        return CP2P_ENOMEM;
    }
    return 0;
}

static bool already_sent(const emsg *m, uint64_t h)
{
    for (uint32_t i = 0; i < m->n_sent; i++) {
        if (m->sent_and_data[i] == h) {
            return true;
        }
    }
    return false;
}

/* Pick up to `want` entries of w[lo..hi) at random (partial Fisher-Yates), appending the chosen
 * ones to out[]. Returns how many were picked. */
static uint32_t pick(uint32_t *w, size_t lo, size_t hi, uint32_t want, cp2p_emitter_rand_fn rnd,
                     void *rud, uint32_t *out)
{
    uint32_t got = 0;

    for (size_t i = lo; i < hi && got < want; i++) {
        size_t j = i + (size_t)(rnd(rud) % (uint64_t)(hi - i)); /* bias < n/2^64: negligible */
        uint32_t t = w[i];

        w[i] = w[j];
        w[j] = t;
        out[got++] = w[i];
    }
    return got;
}

/* Choose the peers of message m among the ne eligible candidates in s->elig (reordered):
 * fresh peers first, then (if too few) peers it already went to. */
static void select_for(cp2p_emitter *e, emsg *m, scratch *s, size_t ne, uint32_t *out,
                       uint32_t *nout, cp2p_emitter_rand_fn rnd, void *rud)
{
    uint32_t f = e->kinds[m->kind].fanout;
    size_t nf = 0;
    uint32_t got;

    for (size_t i = 0; i < ne; i++) { /* partition: fresh to the front */
        if (!already_sent(m, s->phash[s->elig[i]])) {
            uint32_t t = s->elig[nf];

            s->elig[nf++] = s->elig[i];
            s->elig[i] = t;
        }
    }
    got = pick(s->elig, 0, nf, f, rnd, rud, out);
    for (uint32_t i = 0; i < got && m->n_sent < m->sent_cap; i++) {
        m->sent_and_data[m->n_sent++] = s->phash[out[i]];
    }
    if (got < f) {
        got += pick(s->elig, nf, ne, f - got, rnd, rud, out + got);
    }
    *nout = got;
}

static int emit(cp2p_emitter *e, uint64_t now_ms, const cp2p_peer_id *peers, size_t n_peers,
                cp2p_emitter_rand_fn rnd, void *rud)
{
    scratch s;
    size_t w = 0;
    int rc;

    if ((rc = scratch_alloc(&s, e->n, n_peers, e->fanout_max)) != 0) {
        return rc;
    }
    e->in_cb = true; /* filters and send run from here on */
    for (size_t p = 0; p < n_peers; p++) {
        s.phash[p] = peer_hash(&peers[p]);
    }
    /* Per kind present in the batch: filter the candidates once, then choose per message. */
    for (size_t k = 0; k < e->n_kinds; k++) {
        const cp2p_emitter_kind *kd = &e->kinds[k];
        bool filtered = false;
        size_t ne = 0;

        for (size_t i = 0; i < e->n; i++) {
            if (e->buf[i]->kind != k) {
                continue;
            }
            if (!filtered) {
                for (size_t p = 0; p < n_peers; p++) {
                    if (kd->filter == NULL || kd->filter(&peers[p], kd->filter_ud)) {
                        s.elig[ne++] = (uint32_t)p;
                    }
                }
                filtered = true;
            }
            select_for(e, e->buf[i], &s, ne, s.sel + i * e->fanout_max, &s.nsel[i], rnd, rud);
        }
    }
    /* Coalesce: counting sort of (message, peer) by peer, stable in message (add) order. */
    for (size_t i = 0; i < e->n; i++) {
        for (uint32_t j = 0; j < s.nsel[i]; j++) {
            s.start[s.sel[i * e->fanout_max + j] + 1]++;
        }
    }
    for (size_t p = 0; p < n_peers; p++) {
        s.start[p + 1] += s.start[p];
    }
    for (size_t i = 0; i < e->n; i++) {
        for (uint32_t j = 0; j < s.nsel[i]; j++) {
            s.order[s.start[s.sel[i * e->fanout_max + j]]++] = (uint32_t)i;
        }
    }
    /* start[p] now holds the end of peer p's run; its beginning is the previous end. */
    for (size_t p = 0, begin = 0; p < n_peers; begin = s.start[p], p++) {
        size_t cnt = s.start[p] - begin;

        if (cnt == 0) {
            continue;
        }
        for (size_t j = 0; j < cnt; j++) {
            emsg *m = e->buf[s.order[begin + j]];

            s.sl[j] = (cp2p_slice){.ptr = msg_data(m), .len = m->len};
        }
        e->cfg.send(&peers[p], s.sl, cnt, e->cfg.send_ud);
        e->stats.sends++;
        e->stats.messages_sent += cnt;
    }
    e->in_cb = false;
    /* Spend one iteration of every message; keep those with iterations left, in order. */
    for (size_t i = 0; i < e->n; i++) {
        emsg *m = e->buf[i];

        if (s.nsel[i] == 0) {
            e->stats.unrouted++;
        }
        if (--m->iters_left == 0) {
            e->bytes -= m->cost;
            cp2p_free(m);
        } else {
            e->buf[w++] = m;
        }
    }
    e->n = w;
    e->n_fresh = 0;
    e->round_start = now_ms;
    e->stats.emitted_batches++;
    scratch_free(&s);
    return 1;
}

static int check_args(const cp2p_emitter *e, const cp2p_peer_id *peers, size_t n_peers,
                      cp2p_emitter_rand_fn rnd)
{
    if (e == NULL || rnd == NULL || (peers == NULL && n_peers > 0)) {
        return CP2P_EINVAL;
    }
    if (e->in_cb) {
        return CP2P_ESTATE;
    }
    if (n_peers > CP2P_EMITTER_MAX_PEERS) {
        return CP2P_ELIMIT;
    }
    return 0;
}

int cp2p_emitter_tick(cp2p_emitter *e, uint64_t now_ms, const cp2p_peer_id *peers,
                      size_t n_peers, cp2p_emitter_rand_fn rnd, void *rnd_ud)
{
    int rc = check_args(e, peers, n_peers, rnd);

    if (rc != 0) {
        return rc;
    }
    if (e->n == 0 || cp2p_emitter_next_deadline(e, now_ms) > now_ms) {
        return 0;
    }
    return emit(e, now_ms, peers, n_peers, rnd, rnd_ud);
}

int cp2p_emitter_flush(cp2p_emitter *e, uint64_t now_ms, const cp2p_peer_id *peers,
                       size_t n_peers, cp2p_emitter_rand_fn rnd, void *rnd_ud)
{
    int rc = check_args(e, peers, n_peers, rnd);

    if (rc != 0) {
        return rc;
    }
    if (e->n == 0) {
        return 0;
    }
    return emit(e, now_ms, peers, n_peers, rnd, rnd_ud);
}
