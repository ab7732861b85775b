/* A connection: a transport's byte stream (TCP or the memory network) -> the connection core
 * (conn_core.h: multistream-select(/noise) -> Noise -> [multistream-select(/yamux/1.0.0)
 * unless Noise negotiated it early] -> yamux, keepalive, deadlines) -> streams, each
 * negotiated with multistream-select. The protocol logic is in the sans-I/O cores; this file
 * moves bytes between the core and the transport, arms the connection's one timer, turns the
 * core's events into host events, and runs the streams over the core's yamux session.
 *
 * Re-entrancy: public calls (write, read_start, open, close, reset) only change state and
 * schedule a run on the connection's timer at 0 ms, so no callback ever runs inside the call
 * that caused it. conn_run() does all the work: input, core events, stream negotiation, reads,
 * writes, output, timers. A connection closed from inside a callback is torn down when
 * conn_run() unwinds. */
#include <assert.h>
#include <stddef.h>
#include <string.h>

#include "swarm/swarm.h"
#include "transport/tcp_uv.h"
#include "util/alloc.h"
#include "util/log_internal.h"


typedef struct wq_item {
    struct wq_item *next;
    size_t len, off;
    bool negotiation;      /* multistream-select output, not counted as protocol bytes */
    cp2p_write_cb cb;
    void *ud;
    const uint8_t *ref;    /* cp2p_stream_write_ref: the caller's bytes; NULL: they are in data */
    uint8_t data[];
} wq_item;

static const uint8_t *wq_bytes(const wq_item *w)
{
    return w->ref != NULL ? w->ref : w->data;
}

typedef enum { S_NEGOTIATING, S_OPEN, S_DEAD } stream_state;

struct cp2p_stream {
    cp2p__sched_node sn;   /* write scheduler node (first member: see stream_of) */
    cp2p_conn *conn;
    cp2p_stream *next, *prev;
    cp2p__yamux_stream *ys; /* NULL once released */
    stream_state state;
    bool outbound;
    bool app_owned;        /* the application holds the handle */
    bool app_closed;       /* cp2p_stream_close: flush, FIN, then release */
    bool mss_live;         /* negotiating; on an open stream: a lazy dialer awaiting the echo */
    bool lazy;             /* outbound, lazy: opened at once, before the peer's echo */
    bool fin_after_echo;   /* lazy: hold the FIN until the echo (peers other than cp2p) */
    cp2p__mss mss;
    char *protocol;
    char *offer[CP2P_MSS_MAX_OFFER];
    size_t noffer;
    cp2p_open_cb open_cb;
    void *open_ud;
    uint64_t neg_deadline;
    cp2p_read_cb read_cb;
    void *read_ud;
    bool reading;
    bool read_done;        /* EOF or an error was delivered */
    bool on_deliver;       /* on conn->deliver, linked by deliver_next */
    cp2p_stream *deliver_next;
    int dead_err;
    wq_item *wq_head, *wq_tail;
    size_t queued;
    bool want_fin, fin_sent;
    int in_cb;             /* application callbacks on the stack for this stream */
    size_t proto_idx;      /* inbound: index of the protocol in the host's handler table */
    size_t stats_row;      /* open: the protocol's row in the host's proto_stats */
    void *user;
};

static void conn_run(cp2p_conn *c);
static void conn_teardown(cp2p_conn *c);
static void on_timer(uv_timer_t *t);

static_assert(CP2P__SCHED_MAX_WEIGHT == CP2P_STREAM_PRIORITY_MAX, "priority is the weight");

static cp2p_stream *stream_of(cp2p__sched_node *n)
{
    return (cp2p_stream *)((char *)n - offsetof(cp2p_stream, sn));
}

static uint64_t now_ms(const cp2p_conn *c)
{
    return uv_now(c->host->loop);
}

/* now_ms(), after giving the core the precise time for yamux's RTT and window auto-tuning
 * (uv_hrtime and uv_now read the same monotonic clock). TCP only: the memory network's links
 * run on the loop's millisecond timers, and its runs repeat from their seed only if what the
 * connections see of time does too. */
static uint64_t conn_now(const cp2p_conn *c)
{
    if (c->core != NULL && cp2p__tcp_tconn_handle(c->t) != NULL) {
        cp2p__conn_core_set_clock_us(c->core, uv_hrtime() / 1000);
    }
    return now_ms(c);
}

/* Schedule a run of the connection: on the next loop iteration, or at the end of the run in
 * progress. */
static void conn_defer(cp2p_conn *c)
{
    c->pending = true;
    if (c->stage != CONN_CLOSED && c->in_run == 0) {
        (void)uv_timer_start(&c->timer, on_timer, 0, 0);
    }
}

/* The stream has something for yamux (bytes, a FIN, negotiation output, failed writes to
 * report): put it on the connection's ready list and schedule a run. */
static void stream_wake(cp2p_stream *s)
{
    cp2p__sched_wake(&s->conn->sched, &s->sn);
    conn_defer(s->conn);
}

/* ---- socket output ---- */

/* Microseconds for the send-rate estimate: the precise clock on TCP, the loop's on the memory
 * network (whose runs repeat only if what connections see of time does, as for conn_now). */
static uint64_t rate_clock_us(const cp2p_conn *c)
{
    return cp2p__tcp_tconn_handle(c->t) != NULL ? uv_hrtime() / 1000 : now_ms(c) * 1000;
}

/* The caps' maxima a host gives its connections. */
static size_t host_out_cap(const cp2p_host_config *hc)
{
    return hc->conn_out_buffered != 0 ? hc->conn_out_buffered : CP2P_CONN_YAMUX_OUT_BUFFERED;
}

static size_t host_inflight_cap(const cp2p_host_config *hc)
{
    return hc->conn_write_inflight != 0 ? hc->conn_write_inflight : CP2P_CONN_MAX_WRITE_INFLIGHT;
}

static size_t cap_between(uint64_t want, size_t max)
{
    size_t lo = CP2P_CONN_QUEUE_MIN < max ? CP2P_CONN_QUEUE_MIN : max;
    return want < lo ? lo : want > max ? max : (size_t)want;
}

/* Set the caps below the stream scheduler from the maxima, the measured rate and whether
 * streams share the connection (CP2P_CONN_QUEUE_SHARED). */
static void caps_apply(cp2p_conn *c)
{
    uint32_t q = c->host->cfg.conn_queue_us != 0 ? c->host->cfg.conn_queue_us : CP2P_CONN_QUEUE_US;
    bool fixed = q == CP2P_HOST_CONN_QUEUE_FIXED;
    uint64_t want = fixed || c->rate_bps == 0 ? UINT64_MAX
                                              : c->rate_bps / 1000 * q / 1000; /* no overflow */
    if (!fixed && c->shared && want > CP2P_CONN_QUEUE_SHARED) {
        want = CP2P_CONN_QUEUE_SHARED;
    }
    c->max_write_inflight = cap_between(want, c->cap_inflight_max);
    if (c->yamux != NULL) {
        (void)!cp2p__yamux_set_max_out_buffered(c->yamux, cap_between(want, c->cap_out_max));
    }
}

/* The scheduler served stream `id`: note whether streams now share the connection, or no longer
 * do, and move the caps when that changes. */
static void shared_note(cp2p_conn *c, uint32_t id, uint64_t now)
{
    if (c->last_served_id != 0 && id != c->last_served_id &&
        now - c->last_served_ms < CP2P_CONN_SHARED_MS) {
        c->shared_until_ms = now + CP2P_CONN_SHARED_MS;
    }
    c->last_served_id = id;
    c->last_served_ms = now;
    bool shared = now < c->shared_until_ms;
    if (shared != c->shared) {
        c->shared = shared;
        caps_apply(c);
    }
}

/* A write of len bytes completed (write_inflight already lowered). While the writes in flight
 * filled their cap, the connection was sending as fast as the path drains: the time since the
 * previous completion was spent draining these bytes. Otherwise the sender was the limit (a
 * window update alone, say, whose completion measures the loop, not the path): no sample. */
static void rate_sample(cp2p_conn *c, size_t len)
{
    uint64_t now = rate_clock_us(c);
    if (c->write_inflight + len < c->max_write_inflight) {
        c->rate_from_us = now;
        return;
    }
    c->rate_acc_bytes += len;
    c->rate_acc_us += now - c->rate_from_us;
    c->rate_from_us = now;
    if (c->rate_acc_us < CP2P_CONN_QUEUE_SAMPLE_US) {
        return;
    }
    uint64_t r = (uint64_t)((double)c->rate_acc_bytes * 1e6 / (double)c->rate_acc_us);
    c->rate_bps = c->rate_bps == 0 ? r : (3 * c->rate_bps + r) / 4;
    c->rate_acc_bytes = 0;
    c->rate_acc_us = 0;
    caps_apply(c);
}

typedef struct {
    cp2p__twrite req; /* first: the transport hands it back */
    cp2p_conn *conn;
    size_t len;
    uint8_t *own;     /* the bytes, handed over by the core */
} wreq;

static void on_written(cp2p__twrite *req, int status)
{
    wreq *w = (wreq *)req;
    cp2p_conn *c = w->conn;
    c->write_inflight -= w->len;
    if (status >= 0 && c->stage != CONN_CLOSED) {
        rate_sample(c, w->len);
    }
    if (status >= 0 && c->stage != CONN_CLOSED && c->core != NULL &&
        (c->queued_total > 0 || c->write_inflight > 0)) {
        /* Busy: the next batch reuses the buffer. yamux's output empties at every batch (streams
         * are served only while the socket has room), and a malloc and free per batch made glibc
         * trim and regrow the heap: two brk calls per write, a third of perf's throughput. */
        cp2p__conn_core_out_give(c->core, w->own, w->len);
    } else {
        cp2p_free(w->own);
    }
    cp2p_free(w);
    if (status < 0) {
        if (status != CP2P_ECANCELED) {
            cp2p__conn_close(c, CP2P_EIO, "write failed");
        }
        return;
    }
    if (c->stage != CONN_CLOSED) {
        /* More output may be waiting for room, but it goes out on the next loop iteration, not
         * from here. libuv runs write callbacks up to nine times per iteration, each after the
         * last one's write, and polls for input only once: a run from here encrypted and wrote
         * the next batch at once, so a busy sender chained about ten 64 KiB batches (650 us)
         * between two polls, and a reply that arrived meanwhile waited for all of them (issue
         * 12, docs/BENCHMARKS.md "Write completions wait for the next iteration"). */
        conn_defer(c);
    }
}

/* Write the len bytes of own, a buffer the core handed over (cp2p__conn_core_out_take): the
 * request frees it once written, or at once on failure. */
static int write_raw(cp2p_conn *c, uint8_t *own, size_t len)
{
    wreq *w = cp2p_malloc(sizeof(*w));
    if (w == NULL) {
        cp2p_free(own);
        return CP2P_ENOMEM;
    }
    *w = (wreq){.conn = c, .len = len, .own = own};
    cp2p_slice b = {own, len};
    int e = c->t->ops->write(c->t, &w->req, &b, 1, on_written);
    if (e != 0) {
        cp2p_free(w->own);
        cp2p_free(w);
        return CP2P_EIO;
    }
    if (c->write_inflight == 0) {
        c->rate_from_us = rate_clock_us(c); /* a busy period starts */
    }
    c->write_inflight += len;
    return 0;
}

/* The socket writes in flight are under their cap: the transport may take another batch. */
static bool conn_has_room(const cp2p_conn *c)
{
    return c->write_inflight < c->max_write_inflight;
}

/* Move the core's output to the transport. Yamux output waits while the transport's write
 * queue is at its cap, except on the last flush of a graceful close (`last`), which must not
 * leave the GoAway and the streams' final bytes behind: they are bounded by yamux's own output
 * cap. Returns 0 or an error (the caller closes). */
static int conn_flush_ex(cp2p_conn *c, bool last)
{
    if (c->stage == CONN_CLOSED) {
        return 0;
    }
    for (;;) {
        int rc = cp2p__conn_core_flush(c->core, last || conn_has_room(c));
        if (rc != 0) {
            return rc;
        }
        bool wrote = false;
        uint8_t *own;
        size_t len;
        while (cp2p__conn_core_out_take(c->core, &own, &len)) { /* no copy */
            if ((rc = write_raw(c, own, len)) != 0) {
                return rc;
            }
            wrote = true;
        }
        if (!wrote) {
            return 0;
        }
    }
}

static int conn_flush(cp2p_conn *c)
{
    return conn_flush_ex(c, false);
}

/* ---- streams ---- */

static void stream_link(cp2p_conn *c, cp2p_stream *s)
{
    s->conn = c;
    cp2p__sched_node_init(&s->sn, CP2P_STREAM_PRIORITY_DEFAULT);
    s->next = c->streams;
    if (c->streams != NULL) {
        c->streams->prev = s;
    }
    c->streams = s;
}

static void stream_free(cp2p_stream *s)
{
    cp2p_conn *c = s->conn;
    cp2p__sched_remove(&c->sched, &s->sn);
    for (cp2p_stream **p = &c->deliver; s->on_deliver && *p != NULL; p = &(*p)->deliver_next) {
        if (*p == s) {
            *p = s->deliver_next;
            s->on_deliver = false;
            break;
        }
    }
    if (s->prev != NULL) {
        s->prev->next = s->next;
    } else {
        c->streams = s->next;
    }
    if (s->next != NULL) {
        s->next->prev = s->prev;
    }
    if (s->mss_live) {
        cp2p__mss_fini(&s->mss);
    }
    for (size_t i = 0; i < s->noffer; i++) {
        cp2p_free(s->offer[i]);
    }
    cp2p_free(s->protocol);
    cp2p_free(s);
}

/* Fail every queued write with err. */
static void stream_fail_writes(cp2p_stream *s, int err)
{
    while (s->wq_head != NULL) {
        wq_item *w = s->wq_head;
        s->wq_head = w->next;
        s->queued -= w->len - w->off;
        s->conn->queued_total -= w->len - w->off;
        if (w->cb != NULL) {
            s->in_cb++;
            w->cb(s, err, w->ud);
            s->in_cb--;
        }
        cp2p_free(w);
    }
    s->wq_tail = NULL;
}

/* Free the stream once nobody needs it: not the application, not yamux, no callback running. */
static bool stream_maybe_free(cp2p_stream *s)
{
    if (!s->app_owned && s->ys == NULL && s->wq_head == NULL && s->in_cb == 0) {
        stream_free(s);
        return true;
    }
    return false;
}

/* Pin every stream of c (in_cb) for a walk whose callbacks may reset or close others, so
 * none is freed under it; unpin frees those nobody needs any more. No stream is linked while
 * pinned (the walks run in the teardown, where opening fails). */
static void streams_pin(cp2p_conn *c)
{
    for (cp2p_stream *s = c->streams; s != NULL; s = s->next) {
        s->in_cb++;
    }
}

static void streams_unpin(cp2p_conn *c)
{
    for (cp2p_stream *s = c->streams, *next; s != NULL; s = next) {
        next = s->next;
        s->in_cb--;
        (void)stream_maybe_free(s);
    }
}

static void stream_release_ys(cp2p_stream *s)
{
    if (s->ys != NULL) {
        cp2p__yamux_stream_release(s->ys);
        s->ys = NULL;
    }
}

/* The stream died under us (peer reset, connection gone, negotiation failed). */
static void stream_kill(cp2p_stream *s, int err)
{
    cp2p_conn *c = s->conn;
    stream_state was = s->state;
    if (s->state == S_DEAD) {
        return;
    }
    s->state = S_DEAD;
    s->dead_err = err;
    if (s->ys != NULL) {
        (void)!cp2p__yamux_stream_reset(s->ys, 0);
        stream_release_ys(s);
    }
    if (was == S_NEGOTIATING) {
        if (s->outbound && s->open_cb != NULL) {
            cp2p_open_cb cb = s->open_cb;
            s->open_cb = NULL;
            c->host->stats.negotiation_failed++;
            cb(NULL, err, s->open_ud);
        }
        (void)stream_maybe_free(s);
        return;
    }
    /* An open stream reports ECLOSED or ERESET; one opened lazily whose negotiation fails
     * reports why (ENOTSUP: the peer answered "na"; ETIMEDOUT; EPROTO). */
    int serr = err == CP2P_ECLOSED ? CP2P_ECLOSED : CP2P_ERESET;
    if (s->mss_live && (err == CP2P_ENOTSUP || err == CP2P_ETIMEDOUT || err == CP2P_EPROTO)) {
        serr = err;
        c->host->stats.negotiation_failed++;
        c->host->stats.lazy_refused += err == CP2P_ENOTSUP;
    }
    stream_fail_writes(s, serr);
    if (s->app_owned && s->reading && !s->read_done) {
        s->read_done = true;
        s->in_cb++;
        s->read_cb(s, serr, NULL, s->read_ud);
        s->in_cb--;
    }
    (void)stream_maybe_free(s);
}

/* Write the negotiation output of a stream into yamux, as much as it takes now (its output cap
 * may be full of another stream's bulk data). Returns the bytes still unsent (yamux wakes the
 * stream with STREAM_WRITABLE for them) or an error. */
static ptrdiff_t stream_flush_mss(cp2p_stream *s)
{
    cp2p_slice sl = cp2p__mss_out(&s->mss);
    if (sl.len == 0 || s->ys == NULL) {
        return (ptrdiff_t)sl.len;
    }
    ptrdiff_t n = cp2p__yamux_stream_write(s->ys, sl.ptr, sl.len);
    if (n < 0) {
        return n;
    }
    cp2p__mss_out_done(&s->mss, (size_t)n);
    return (ptrdiff_t)(sl.len - (size_t)n);
}

/* Negotiation is over but yamux has not taken all of its output (the listener's echo of the
 * protocol, typically, behind a bulk stream): the bytes go to the front of the write queue,
 * ahead of anything the handler writes, instead of being freed with the negotiator. They are
 * counted as queued like application bytes, but no limit refuses them: they are at most one
 * header and one protocol line. */
static int stream_keep_mss_output(cp2p_stream *s, bool deferred)
{
    cp2p_slice sl = cp2p__mss_out(&s->mss);
    if (sl.len == 0) {
        return 0;
    }
    wq_item *w = cp2p_malloc(sizeof(*w) + sl.len);
    if (w == NULL) {
        return CP2P_ENOMEM;
    }
    *w = (wq_item){.len = sl.len, .next = s->wq_head, .negotiation = true};
    memcpy(w->data, sl.ptr, sl.len);
    s->wq_head = w;
    if (s->wq_tail == NULL) {
        s->wq_tail = w;
    }
    s->queued += sl.len;
    s->conn->queued_total += sl.len;
    s->conn->host->stats.negotiation_output_deferred += deferred;
    cp2p__mss_out_done(&s->mss, sl.len);
    return 0;
}

/* The row of `protocol` in the host's per-protocol byte counters, added on first use while
 * the table has room; else the overflow row. */
static size_t proto_stats_row(cp2p_host *h, const char *protocol)
{
    size_t len = strlen(protocol);
    if (len > CP2P__HOST_PROTO_NAME_MAX) {
        return CP2P__HOST_PROTO_STATS_MAX;
    }
    for (size_t i = 0; i < h->nproto_stats; i++) {
        if (strcmp(h->proto_stats[i].name, protocol) == 0) {
            return i;
        }
    }
    if (h->nproto_stats == CP2P__HOST_PROTO_STATS_MAX) {
        return CP2P__HOST_PROTO_STATS_MAX;
    }
    memcpy(h->proto_stats[h->nproto_stats].name, protocol, len + 1);
    return h->nproto_stats++;
}

static bool stream_announce(cp2p_stream *s);

static void stream_negotiated(cp2p_stream *s)
{
    cp2p_conn *c = s->conn;
    cp2p_host *h = c->host;
    const char *sel = cp2p__mss_selected(&s->mss);
    s->protocol = cp2p__memdup(sel, strlen(sel) + 1);
    size_t idx = cp2p__mss_selected_index(&s->mss);
    int kept = stream_keep_mss_output(s, true);
    cp2p__mss_fini(&s->mss);
    s->mss_live = false;
    if (s->protocol == NULL || kept != 0) {
        stream_kill(s, CP2P_ENOMEM);
        return;
    }
    if (!s->outbound) {
        /* Per-protocol cap on this connection's inbound streams (resource limits). */
        uint32_t same = 0;
        for (cp2p_stream *o = c->streams; o != NULL; o = o->next) {
            same += o != s && !o->outbound && o->state == S_OPEN && o->proto_idx == idx;
        }
        uint32_t limit = h->handlers[idx].max_inbound != 0 ? h->handlers[idx].max_inbound
                                                             : h->cfg.max_inbound_per_protocol;
        if (same >= limit) {
            h->stats.streams_over_protocol_limit++;
            if (!c->logged_protocol_limit) {
                c->logged_protocol_limit = true;
                CP2P_LOG(CP2P_LOG_INFO, "host", c->id,
                         "host.protocol_stream_limit %s: more than %u inbound streams", sel,
                         limit);
            }
            stream_kill(s, CP2P_ELIMIT);
            return;
        }
        s->proto_idx = idx;
    }
    (void)stream_announce(s);
}

/* The stream is open: count it, hand it to the application (the opener's callback, or the
 * handler of its protocol). Returns false when the stream was freed meanwhile. */
static bool stream_announce(cp2p_stream *s)
{
    cp2p_conn *c = s->conn;
    cp2p_host *h = c->host;
    s->stats_row = proto_stats_row(h, s->protocol);
    s->state = S_OPEN;
    /* The service's default priority, before the application sees the stream (it may change
     * it); the negotiation bytes kept above go out through the scheduler. */
    unsigned prio = cp2p__host_protocol_priority(h, s->protocol);
    if (prio != 0) {
        cp2p__sched_set_weight(&s->sn, prio);
    }
    if (s->wq_head != NULL) {
        cp2p__sched_wake(&c->sched, &s->sn);
    }
    s->app_owned = true;
    c->app_streams++;
    h->stats.streams_opened++;
    if (s->outbound) {
        cp2p_open_cb cb = s->open_cb;
        s->open_cb = NULL;
        s->in_cb++;
        cb(s, 0, s->open_ud);
        s->in_cb--;
    } else {
        swarm_handler hd = h->handlers[s->proto_idx];
        s->in_cb++;
        hd.cb(s, hd.ud);
        s->in_cb--;
    }
    return !stream_maybe_free(s);
}

/* Feed buffered stream bytes to its multistream-select. Messages may straddle the two slices
 * of yamux's ring, so at most two messages' worth is staged in one array. */
static ptrdiff_t stream_feed_mss(cp2p_stream *s)
{
    uint8_t stage[2 * CP2P_MSS_MAX_MSG + 16];
    const char *why = NULL;
    cp2p_slice sl[2];
    size_t n = cp2p__yamux_stream_peek(s->ys, sl), have = 0;
    for (size_t i = 0; i < n && have < sizeof(stage); i++) {
        size_t k = sl[i].len < sizeof(stage) - have ? sl[i].len : sizeof(stage) - have;
        memcpy(stage + have, sl[i].ptr, k);
        have += k;
    }
    ptrdiff_t used = have > 0 ? cp2p__mss_recv(&s->mss, stage, have, &why) : 0;
    if (used < 0) {
        CP2P_LOG(CP2P_LOG_DEBUG, "host", s->conn->id, "host.negotiation_failed %s%s", why,
                 s->state == S_OPEN ? " (lazy)" : "");
        (void)stream_flush_mss(s); /* a final "na" for the peer */
        stream_kill(s, used == CP2P_ENOTSUP ? CP2P_ENOTSUP : CP2P_EPROTO);
        return used;
    }
    if (used > 0 && cp2p__yamux_stream_consumed(s->ys, (size_t)used, conn_now(s->conn)) != 0) {
        stream_kill(s, CP2P_ENOMEM);
        return CP2P_ENOMEM;
    }
    if (used == 0 && cp2p__yamux_stream_eof(s->ys)) {
        stream_kill(s, CP2P_ERESET); /* closed before agreeing on a protocol */
        return CP2P_ERESET;
    }
    return used;
}

static void stream_negotiate(cp2p_stream *s)
{
    while (s->state == S_NEGOTIATING && s->ys != NULL) {
        ptrdiff_t used = stream_feed_mss(s);
        if (used < 0) {
            return;
        }
        if (stream_flush_mss(s) < 0) {
            stream_kill(s, CP2P_ENOMEM);
            return;
        }
        if (cp2p__mss_state_get(&s->mss) == MSS_DONE) {
            stream_negotiated(s);
            return;
        }
        if (used == 0) {
            return;
        }
    }
}

/* A lazy dialer's stream opens at once: its proposal goes to the front of the write queue, so
 * the application's first bytes follow it in the same flight, and the stream is the
 * application's before the peer's echo. The negotiator stays to read that echo
 * (stream_lazy_reply). */
static void stream_lazy_open(cp2p_stream *s)
{
    cp2p_host *h = s->conn->host;
    s->lazy = false;
    if ((s->protocol = cp2p__memdup(s->offer[0], strlen(s->offer[0]) + 1)) == NULL ||
        stream_keep_mss_output(s, false) != 0) {
        stream_kill(s, CP2P_ENOMEM);
        return;
    }
    h->stats.streams_opened_lazy++;
    /* What the open callback writes joins the proposal in the stream's queue: the scheduler
     * serves both in this run, so they leave in one write. */
    (void)stream_announce(s);
}

/* A lazily opened stream: the peer's echo of our proposal precedes its data. Returns true
 * once it has been read (then the bytes that follow are the protocol's); false while it is
 * incomplete, or when the negotiation failed (the stream is dead: its reader and writers get
 * CP2P_ENOTSUP for an "na"). */
static bool stream_lazy_reply(cp2p_stream *s)
{
    if (!s->mss_live) {
        return true;
    }
    if (s->ys == NULL || stream_feed_mss(s) < 0) {
        return false;
    }
    if (cp2p__mss_state_get(&s->mss) != MSS_DONE) {
        return false;
    }
    cp2p__mss_fini(&s->mss);
    s->mss_live = false;
    if (s->fin_after_echo && s->want_fin && !s->fin_sent) {
        stream_wake(s); /* the FIN held for the echo may go now */
    }
    return true;
}

/* Hand buffered bytes to the reader; EOF once the peer's FIN and every byte went out. */
static void stream_deliver(cp2p_stream *s)
{
    if (s->state == S_OPEN && !stream_lazy_reply(s)) {
        return;
    }
    while (s->state == S_OPEN && s->reading && s->ys != NULL && s->app_owned) {
        cp2p_slice sl[2];
        size_t n = cp2p__yamux_stream_peek(s->ys, sl);
        if (n == 0) {
            break;
        }
        /* Copy the slice out: the callback may write, and yamux may move its ring. */
        size_t len = sl[0].len;
        s->conn->host->proto_stats[s->stats_row].bytes_read += len;
        s->in_cb++;
        s->conn->last_active_ms = now_ms(s->conn);
        s->read_cb(s, (ptrdiff_t)len, sl[0].ptr, s->read_ud);
        s->in_cb--;
        if (s->ys == NULL || !s->app_owned) {
            break; /* reset, or closed (which discarded the buffer), inside the callback */
        }
        if (cp2p__yamux_stream_consumed(s->ys, len, conn_now(s->conn)) != 0) {
            stream_kill(s, CP2P_ENOMEM);
            return;
        }
    }
    if (s->state == S_OPEN && s->reading && s->app_owned && !s->read_done && s->ys != NULL &&
        cp2p__yamux_stream_eof(s->ys)) {
        s->read_done = true;
        s->in_cb++;
        s->read_cb(s, CP2P_EOF, NULL, s->read_ud);
        s->in_cb--;
    }
}

/* Drop what arrives on a stream nobody reads any more (closed by the application). */
static void stream_discard(cp2p_stream *s)
{
    cp2p_slice sl[2];
    size_t n;
    while (s->ys != NULL && (n = cp2p__yamux_stream_peek(s->ys, sl)) > 0) {
        size_t total = sl[0].len + (n > 1 ? sl[1].len : 0);
        if (cp2p__yamux_stream_consumed(s->ys, total, conn_now(s->conn)) != 0) {
            break;
        }
    }
}

/* Yamux took less than it was offered: the stream's own window is closed (park it until
 * STREAM_WRITABLE), or the session's output is full (stop serving streams until output drains). */
static cp2p__sched_outcome stream_stalled(const cp2p_stream *s)
{
    cp2p__yamux_stream_info info;
    cp2p__yamux_stream_get_info(s->ys, &info);
    return info.send_window == 0 ? CP2P__SCHED_BLOCKED : CP2P__SCHED_FULL;
}

/* Push up to `budget` queued bytes into yamux; FIN when asked and drained; release a closed
 * stream's yamux half. Sets *sent to the bytes yamux took and returns what stopped it. Write
 * callbacks run from here; the caller holds in_cb, so the stream is never freed inside. */
static cp2p__sched_outcome stream_pump(cp2p_stream *s, size_t budget, size_t *sent)
{
    *sent = 0;
    while (s->wq_head != NULL && s->ys != NULL && s->state == S_OPEN) {
        if (*sent >= budget) {
            return CP2P__SCHED_MORE;
        }
        wq_item *w = s->wq_head;
        size_t want = w->len - w->off;
        want = want < budget - *sent ? want : budget - *sent;
        ptrdiff_t n = 0;
        if (want > 0) {
            n = cp2p__yamux_stream_write(s->ys, wq_bytes(w) + w->off, want);
            if (n < 0) {
                stream_kill(s, CP2P_ERESET);
                return CP2P__SCHED_EMPTY;
            }
        }
        w->off += (size_t)n;
        *sent += (size_t)n;
        if (!w->negotiation) {
            s->conn->host->proto_stats[s->stats_row].bytes_written += (size_t)n;
        }
        s->queued -= (size_t)n;
        s->conn->queued_total -= (size_t)n;
        if (w->off < w->len) {
            if ((size_t)n < want) {
                return stream_stalled(s); /* WRITABLE or drained output resumes us */
            }
            continue; /* the budget is used up */
        }
        s->wq_head = w->next;
        if (s->wq_head == NULL) {
            s->wq_tail = NULL;
        }
        if (w->cb != NULL) {
            s->in_cb++;
            w->cb(s, 0, w->ud);
            s->in_cb--;
        }
        cp2p_free(w);
    }
    if (s->state == S_OPEN && s->want_fin && !s->fin_sent && s->wq_head == NULL &&
        s->ys != NULL && !(s->fin_after_echo && s->mss_live)) {
        if (cp2p__yamux_stream_close_write(s->ys) == 0) {
            s->fin_sent = true;
        }
    }
    if (s->app_closed && s->fin_sent) {
        stream_release_ys(s); /* yamux keeps draining the peer's side until its FIN */
    }
    return CP2P__SCHED_EMPTY;
}

/* A negotiating stream's multistream-select output (the dialer's proposal). */
static cp2p__sched_outcome stream_pump_mss(cp2p_stream *s, size_t *sent)
{
    size_t before = cp2p__mss_out(&s->mss).len;
    ptrdiff_t left = stream_flush_mss(s);
    if (left < 0) {
        *sent = 0;
        return CP2P__SCHED_EMPTY; /* yamux refused the stream: its RESET event follows */
    }
    *sent = before - (size_t)left;
    return left == 0 || s->ys == NULL ? CP2P__SCHED_EMPTY : stream_stalled(s);
}

/* Serve the connection's ready streams into yamux, in the scheduler's order, until none has
 * anything or yamux's output is full. Work is proportional to the streams with something to
 * send, not to the connection's streams. Only while the socket writes have room: bytes taken
 * earlier would wait in yamux's output, in order, and a stream that becomes ready meanwhile
 * behind them; taken when the socket can have them, the scheduler's choice is the latest one
 * (the small message beside bulk: p50 136-160 -> 88-112 us). */
static void conn_pump_streams(cp2p_conn *c)
{
    cp2p__sched_node *n;
    while (!c->closing && c->stage == CONN_OPEN && conn_has_room(c) &&
           (n = cp2p__sched_next(&c->sched)) != NULL) {
        cp2p_stream *s = stream_of(n);
        size_t sent = 0;
        cp2p__sched_outcome o;
        s->in_cb++; /* no free until the scheduler is told */
        if (s->state == S_NEGOTIATING && s->lazy) {
            stream_lazy_open(s); /* open now: its proposal heads its queue */
        }
        if (s->state == S_OPEN) {
            o = stream_pump(s, cp2p__sched_budget(n), &sent);
        } else if (s->state == S_NEGOTIATING) {
            o = stream_pump_mss(s, &sent);
        } else {
            o = CP2P__SCHED_EMPTY;
        }
        if (s->state == S_DEAD) {
            /* Reset by the application, before this run or from a write callback just now. */
            stream_fail_writes(s, CP2P_ERESET);
            o = CP2P__SCHED_EMPTY;
        }
        s->in_cb--;
        if (sent > 0 && s->ys != NULL) {
            shared_note(c, cp2p__yamux_stream_id(s->ys), now_ms(c));
        }
        cp2p__sched_done(&c->sched, n, sent, o);
        (void)stream_maybe_free(s);
        if (o == CP2P__SCHED_FULL) {
            break;
        }
    }
}

/* ---- yamux events ---- */

static void on_inbound_stream(cp2p_conn *c, cp2p__yamux_stream *ys)
{
    cp2p_host *h = c->host;
    cp2p_stream *s = NULL;
    if (c->closing || h->closing || h->nprotos == 0 || (s = cp2p_calloc(1, sizeof(*s))) == NULL) {
        (void)!cp2p__yamux_stream_reset(ys, 0);
        cp2p__yamux_stream_release(ys);
        h->stats.streams_refused++;
        return;
    }
    s->ys = ys;
    s->state = S_NEGOTIATING;
    s->neg_deadline = now_ms(c) + h->cfg.negotiate_timeout_ms;
    stream_link(c, s);
    cp2p__yamux_stream_set_user(ys, s);
    if (cp2p__mss_init_listener_filtered(&s->mss, h->proto_names, h->nprotos,
                                         cp2p__host_handler_active, h) != 0) {
        stream_kill(s, CP2P_ENOMEM);
        return;
    }
    s->mss_live = true;
    if (cp2p__yamux_stream_accept(ys) != 0 || stream_flush_mss(s) < 0) {
        stream_kill(s, CP2P_ENOMEM);
    }
}

static void dispatch_yamux(cp2p_conn *c)
{
    cp2p__yamux_event ev;
    while (c->yamux != NULL && cp2p__yamux_next_event(c->yamux, &ev)) {
        cp2p_stream *s = ev.user;
        switch (ev.type) {
        case CP2P__YAMUX_EV_STREAM_OPENED:
            c->last_active_ms = now_ms(c);
            on_inbound_stream(c, ev.stream);
            break;
        case CP2P__YAMUX_EV_STREAM_READABLE:
        case CP2P__YAMUX_EV_STREAM_REMOTE_FIN:
            if (s == NULL) {
                break;
            }
            if (s->state == S_NEGOTIATING) {
                stream_negotiate(s);
            } else if (!s->app_owned) {
                stream_discard(s);
            } else {
                stream_deliver(s);
            }
            break;
        case CP2P__YAMUX_EV_STREAM_WRITABLE:
            if (s != NULL && s->state == S_NEGOTIATING && !s->lazy) {
                (void)stream_flush_mss(s);
            } else if (s != NULL) {
                cp2p__sched_wake(&c->sched, &s->sn); /* served by conn_pump_streams */
            }
            break;
        case CP2P__YAMUX_EV_STREAM_RESET:
            if (s != NULL) {
                stream_release_ys(s); /* the core is done with it; reset() is not needed */
                stream_kill(s, ev.err == 0 ? CP2P_ERESET : ev.err);
            } else {
                cp2p__yamux_stream_release(ev.stream);
            }
            break;
        case CP2P__YAMUX_EV_PING:
            if (ev.err == CP2P_ETIMEDOUT) {
                cp2p__conn_close(c, CP2P_ETIMEDOUT, "keepalive ping unanswered");
            }
            break;
        case CP2P__YAMUX_EV_GOAWAY:
            CP2P_LOG(CP2P_LOG_DEBUG, "host", c->id, "host.goaway_received code=%u", ev.code);
            c->goaway_received = true; /* no new streams: cp2p_host_conn_to skips it */
            break;
        case CP2P__YAMUX_EV_SESSION_ERROR:
            c->host->stats.protocol_errors++;
            cp2p__conn_close(c, ev.err, ev.why);
            break;
        default:
            break;
        }
    }
}

/* ---- the upgrade ---- */

static void conn_fail(cp2p_conn *c, int err, const char *why)
{
    if (c->closing) {
        return; /* already closing with its own reason, logged by whoever closed it */
    }
    /* Protocol cores log their own one line for a peer's fault; the host adds one only for
     * what no core reports (timeouts, I/O). */
    bool core_logged = (err == CP2P_EPROTO || err == CP2P_ELIMIT || err == CP2P_EPEERID) &&
                       (c->stage == CONN_OPEN ||
                        (c->core != NULL && cp2p__conn_core_in_handshake(c->core)));
    cp2p_log_level lvl = core_logged ? CP2P_LOG_DEBUG : CP2P_LOG_INFO;
    CP2P_LOG(lvl, "host", c->id, "host.conn_failed err=%s why=%s", cp2p_strerror(err),
             why != NULL ? why : "-");
    if (err == CP2P_EPROTO || err == CP2P_ELIMIT) {
        c->host->stats.protocol_errors++;
    }
    cp2p__conn_close(c, err, why);
}

/* The core's SECURED: the peer's identity is known. */
static int on_secured(cp2p_conn *c)
{
    c->secured = true;
    c->host->stats.noise_handshakes++;
    c->peer = *cp2p__conn_core_remote_peer(c->core);
    return cp2p_pubkey_dup(cp2p__conn_core_remote_pubkey(c->core), &c->peer_key);
}

/* The core's OPEN: yamux runs. The connection manager decides (through the host) whether the
 * connection may stay; then the dialer and the host hear of it. */
static int on_open(cp2p_conn *c)
{
    int rc = cp2p__host_conn_peer_check(c); /* closes c with its own reason */
    if (rc != 0) {
        return rc;
    }
    c->yamux = cp2p__conn_core_yamux(c->core);
    c->stage = CONN_OPEN;
    c->upgraded = true;
    cp2p__host_conn_upgraded(c);
    if (!c->outbound) {
        c->host->npending_inbound--;
    }
    c->host->stats.conns_opened++;
    char pid[CP2P_PEER_ID_STR_MAX];
    CP2P_LOG(CP2P_LOG_DEBUG, "host", c->id, "host.conn_opened peer=%s outbound=%d",
             cp2p_peer_id_str(&c->peer, pid), c->outbound);
    if (c->dial_cb != NULL) {
        cp2p_dial_cb cb = c->dial_cb;
        c->dial_cb = NULL;
        cb(c->host, 0, c, c->dial_ud);
    }
    if (!c->closing) {
        cp2p__host_emit(c->host, CP2P_EVENT_CONN_OPENED, c, 0, NULL);
    }
    return 0;
}

/* Feed what was read through the core and act on its events. Returns 0, or an error after
 * which the caller fails the connection (*why set). */
static int conn_feed(cp2p_conn *c, const uint8_t *p, size_t len, const char **why)
{
    int rc = cp2p__conn_core_feed(c->core, p, len, conn_now(c), why);
    cp2p__conn_event_type ev;
    while (!c->closing && cp2p__conn_core_next_event(c->core, &ev)) {
        int e = ev == CP2P__CONN_EV_SECURED ? on_secured(c) : on_open(c);
        if (e != 0 && !c->closing) {
            *why = ev == CP2P__CONN_EV_SECURED ? "cannot keep the peer's key"
                                               : "cannot start the muxer";
            return e;
        }
    }
    return rc < 0 ? rc : 0;
}

/* ---- the run loop of one connection ---- */

static uint64_t min_deadline(uint64_t a, uint64_t b)
{
    return (b != 0 && b < a) ? b : a;
}

static void conn_arm_timer(cp2p_conn *c)
{
    uint64_t d = UINT64_MAX;
    if (c->stage == CONN_CLOSED) {
        return;
    }
    if (c->pending || (c->yamux != NULL && cp2p__yamux_has_events(c->yamux))) {
        (void)uv_timer_start(&c->timer, on_timer, 0, 0); /* work left after 8 rounds */
        return;
    }
    d = cp2p__conn_core_deadline(c->core);
    for (cp2p_stream *s = c->streams; s != NULL; s = s->next) {
        if (s->state == S_NEGOTIATING || (s->state == S_OPEN && s->mss_live)) {
            d = min_deadline(d, s->neg_deadline);
        }
    }
    if (d == UINT64_MAX) {
        uv_timer_stop(&c->timer);
        return;
    }
    uint64_t now = now_ms(c);
    (void)uv_timer_start(&c->timer, on_timer, d > now ? d - now : 0, 0);
}

static void conn_timers(cp2p_conn *c)
{
    uint64_t now = conn_now(c);
    const char *why = NULL;
    if (c->stage == CONN_CLOSED || c->core == NULL) {
        return;
    }
    if (cp2p__conn_core_on_timeout(c->core, now, &why) != 0) {
        conn_fail(c, CP2P_ETIMEDOUT, why);
        return;
    }
    for (cp2p_stream *s = c->streams, *next; s != NULL; s = next) {
        next = s->next;
        if ((s->state == S_NEGOTIATING || (s->state == S_OPEN && s->mss_live)) &&
            now >= s->neg_deadline) {
            stream_kill(s, CP2P_ETIMEDOUT);
        }
    }
}

/* Everything the connection can do now without new input. */
static void conn_work(cp2p_conn *c)
{
    for (int round = 0; round < 8 && !c->closing && c->stage != CONN_CLOSED; round++) {
        c->pending = false;
        dispatch_yamux(c);
        conn_pump_streams(c);
        /* Data that arrived is delivered by its READABLE event; what waits here is data (or
         * an EOF) buffered while the application was not reading. Work per run follows the
         * streams that started reading, not every stream. */
        while (c->deliver != NULL) {
            cp2p_stream *s = c->deliver;
            c->deliver = s->deliver_next;
            s->on_deliver = false;
            if (s->state == S_OPEN && s->app_owned && s->reading) {
                stream_deliver(s);
            }
        }
        int rc = conn_flush(c);
        if (rc != 0) {
            conn_fail(c, rc, "cannot queue output");
            return;
        }
        /* Output taken from yamux may have woken writers (STREAM_WRITABLE): serve them now,
         * since no later socket callback may come to do it (the peer is not reading). */
        if (!c->pending && (c->yamux == NULL || !cp2p__yamux_has_events(c->yamux))) {
            break;
        }
    }
}

static void conn_run(cp2p_conn *c)
{
    c->in_run++;
    conn_work(c);
    c->in_run--;
    if (c->in_run == 0) {
        if (c->closing && c->stage != CONN_CLOSED) {
            conn_teardown(c);
        } else {
            conn_arm_timer(c);
        }
    }
}

static void on_timer(uv_timer_t *t)
{
    cp2p_conn *c = t->data;
    c->in_run++;
    conn_timers(c);
    c->in_run--;
    conn_run(c);
}

/* ---- socket input ---- */

static void on_alloc(cp2p__tconn *t, uint8_t **buf, size_t *len)
{
    cp2p_conn *c = t->data;
    cp2p_host *h = c->host;
    if (h->read_buf == NULL) {
        h->read_buf = cp2p_malloc(CP2P_CONN_READ_CHUNK);
    }
    if (c->core == NULL || h->read_buf == NULL) {
        *len = 0; /* the transport reports CP2P_ELIMIT */
        return;
    }
    /* Shared by every connection of the host: the transport calls on_read for this
     * connection before it asks any connection for a buffer again. */
    *buf = h->read_buf;
    *len = CP2P_CONN_READ_CHUNK;
}

static void on_read(cp2p__tconn *t, ptrdiff_t nread)
{
    cp2p_conn *c = t->data;
    const char *why = NULL;
    if (c->stage == CONN_CLOSED) {
        return;
    }
    if (nread < 0) {
        if (nread == CP2P_ELIMIT) { /* on_alloc gave no buffer */
            conn_fail(c, CP2P_ENOMEM, "cannot allocate the read buffer");
        } else {
            cp2p__conn_close(c, (int)nread, t->why != NULL ? t->why : "connection error");
        }
        conn_run(c);
        return;
    }
    c->in_run++;
    int rc = conn_feed(c, c->host->read_buf, (size_t)nread, &why);
    c->in_run--;
    if (rc != 0) {
        conn_fail(c, rc, why);
    }
    conn_run(c);
}

int cp2p__conn_set_read_paused(cp2p_conn *c, bool paused)
{
    if (c->stage == CONN_CLOSED || c->closing) {
        return CP2P_ECLOSED;
    }
    int e = paused ? c->t->ops->read_stop(c->t) : c->t->ops->read_start(c->t, on_alloc, on_read);
    return e == 0 ? 0 : CP2P_EIO;
}

/* ---- lifecycle ---- */

static void conn_free(cp2p_conn *c)
{
    cp2p_host *h = c->host;
    while (c->streams != NULL) {
        stream_free(c->streams);
    }
    cp2p__host_peer_index_remove(c);
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        h->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    if (c->identify_free != NULL) {
        c->identify_free(c->identify);
    }
    cp2p_pubkey_free(c->peer_key);
    cp2p_multiaddr_free(c->remote_addr);
    cp2p_multiaddr_free(c->local_addr);
    cp2p__conn_core_free(c->core);
    cp2p__conn_services_free(c);
    cp2p_free(c);
}

/* Free once the handles are closed and no application stream remains (or the host is going). */
static void conn_maybe_free(cp2p_conn *c)
{
    if (c->stage == CONN_CLOSED && c->handles_open == 0 &&
        (c->app_streams == 0 || c->host->closing)) {
        conn_free(c);
    }
}

static void on_handle_closed(uv_handle_t *handle)
{
    cp2p_conn *c = handle->data;
    c->handles_open--;
    conn_maybe_free(c);
}

static void on_tconn_closed(cp2p__tconn *t)
{
    cp2p_conn *c = t->data;
    c->t = NULL; /* the transport frees it after this returns */
    c->handles_open--;
    conn_maybe_free(c);
}

static void on_shutdown(cp2p__tconn *t, int status)
{
    (void)status;
    t->ops->close(t, on_tconn_closed);
}

/* cp2p__yamux_stats is only uint64_t counters, summed as an array. A new field changes the
 * size and fails this assertion until it is exported in host_metrics.c too. */
_Static_assert(sizeof(cp2p__yamux_stats) == (25 + CP2P__YAMUX_PERR_COUNT) * sizeof(uint64_t),
               "a new cp2p__yamux_stats field must be exported in host_metrics.c");
static void yamux_stats_add(cp2p__yamux_stats *acc, const cp2p__yamux_stats *s)
{
    enum { N = sizeof(*acc) / sizeof(uint64_t) };
    uint64_t a[N], b[N];
    memcpy(a, acc, sizeof(a));
    memcpy(b, s, sizeof(b));
    for (size_t i = 0; i < N; i++) {
        a[i] += b[i];
    }
    memcpy(acc, a, sizeof(a));
}

void cp2p__host_yamux_totals(const cp2p_host *h, cp2p__yamux_stats *out)
{
    *out = h->yamux_closed;
    for (const cp2p_conn *c = h->conns; c != NULL; c = c->next) {
        if (c->yamux != NULL) {
            yamux_stats_add(out, cp2p__yamux_get_stats(c->yamux));
        }
    }
}

/* The reason label of a Noise handshake ended by the connection's close error. */
static cp2p__noise_fail noise_fail_reason(int err)
{
    switch (err) {
    case CP2P_ETIMEDOUT:
        return CP2P__NOISE_FAIL_TIMEOUT;
    case CP2P_EPEERID:
        return CP2P__NOISE_FAIL_PEER_ID;
    case CP2P_EBADSIG:
        return CP2P__NOISE_FAIL_SIGNATURE;
    case CP2P_EPROTO:
    case CP2P_ELIMIT:
        return CP2P__NOISE_FAIL_PROTOCOL;
    case 0:
    case CP2P_ECLOSED:
    case CP2P_EIO:
    case CP2P_ECANCELED:
        return CP2P__NOISE_FAIL_CLOSED;
    default:
        return CP2P__NOISE_FAIL_OTHER;
    }
}

static void conn_teardown(cp2p_conn *c)
{
    cp2p_host *h = c->host;
    bool was_upgraded = c->upgraded;
    if (c->stage == CONN_CLOSED) {
        return;
    }
    /* A graceful local close says GoAway and lets the queued bytes out first: what the
     * application wrote on its open streams just before closing (e.g. a last pubsub frame)
     * goes into yamux as far as the windows allow, then everything is flushed. */
    if (c->close_err == 0 && c->yamux != NULL) {
        c->in_run++; /* write callbacks may call back into the host: no nested teardown */
        /* The last words may exceed the small running output cap (CP2P_CONN_YAMUX_OUT_BUFFERED):
         * allow the core's default (4 MiB, bounded, as before issue 12) for this final push. */
        size_t last_cap = CP2P_YAMUX_MAX_OUT_BUFFERED;
        if (c->host->cfg.conn_out_buffered > last_cap) {
            last_cap = c->host->cfg.conn_out_buffered;
        }
        (void)!cp2p__yamux_set_max_out_buffered(c->yamux, last_cap);
        streams_pin(c); /* a write callback may reset another stream */
        for (cp2p_stream *s = c->streams; s != NULL; s = s->next) {
            if (s->state == S_OPEN) {
                size_t sent;
                (void)stream_pump(s, SIZE_MAX, &sent);
            }
        }
        streams_unpin(c);
        c->in_run--;
        (void)!cp2p__yamux_goaway(c->yamux, 0);
        (void)conn_flush_ex(c, true);
    }
    c->stage = CONN_CLOSED;
    cp2p__host_conn_untrack(c);
    if (c->yamux != NULL) {
        c->in_run++;
        cp2p__yamux_abort(c->yamux, CP2P_ECLOSED);
        dispatch_yamux(c);
        c->in_run--;
        yamux_stats_add(&h->yamux_closed, cp2p__yamux_get_stats(c->yamux));
        c->yamux = NULL; /* freed with the core below */
    }
    /* Every stream dies; what is still queued fails with its callback, on streams the
     * application already reset too (their writes fail from the loop otherwise, which no
     * longer serves this connection). The callbacks may reset or close other streams. */
    streams_pin(c);
    for (cp2p_stream *s = c->streams; s != NULL; s = s->next) {
        s->ys = NULL;
        if (s->state == S_DEAD) {
            stream_fail_writes(s, CP2P_ERESET); /* as conn_pump_streams does */
        } else {
            stream_kill(s, CP2P_ECLOSED);
        }
    }
    streams_unpin(c);
    if (c->core != NULL && cp2p__conn_core_in_handshake(c->core)) {
        h->stats.noise_failures[noise_fail_reason(c->close_err)]++;
    }
    cp2p__conn_core_free(c->core); /* wipes Noise's keys; frees yamux and its streams */
    c->core = NULL;
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    if (c->close_err != 0 || c->write_inflight == 0 ||
        c->t->ops->shutdown(c->t, on_shutdown) != 0) {
        c->t->ops->close(c->t, on_tconn_closed);
    }
    if (was_upgraded) {
        h->nconns--;
        h->stats.conns_closed++;
        cp2p__host_emit(h, CP2P_EVENT_CONN_CLOSED, c, c->close_err, c->close_why);
    } else {
        if (!c->outbound) {
            h->npending_inbound--;
        }
        h->nconns--;
        h->stats.upgrade_failed++;
        int err = c->close_err != 0 ? c->close_err : CP2P_ECANCELED;
        if (c->dial_cb != NULL) {
            cp2p_dial_cb cb = c->dial_cb;
            c->dial_cb = NULL;
            cb(h, err, NULL, c->dial_ud);
        } else if (!c->outbound) {
            cp2p__host_emit(h, CP2P_EVENT_INBOUND_REFUSED, NULL, err, c->close_why);
        }
    }
}

void cp2p__conn_close(cp2p_conn *c, int err, const char *why)
{
    if (c->stage == CONN_CLOSED && c->host->closing) {
        conn_maybe_free(c); /* kept for streams the application still held: the host goes */
        return;
    }
    if (c->closing || c->stage == CONN_CLOSED) {
        return;
    }
    c->closing = true;
    c->close_err = err;
    c->close_why = why;
    if (c->in_run == 0) {
        conn_teardown(c);
    }
}

int cp2p_conn_set_send_buffers(cp2p_conn *c, size_t out_buffered, size_t write_inflight)
{
    const cp2p_host_config *hc = &c->host->cfg;
    if (c->closing || c->stage == CONN_CLOSED) {
        return CP2P_ECLOSED;
    }
    if (c->yamux == NULL) {
        return CP2P_ESTATE;
    }
    c->cap_out_max = out_buffered != 0 ? out_buffered : host_out_cap(hc);
    c->cap_inflight_max = write_inflight != 0 ? write_inflight : host_inflight_cap(hc);
    caps_apply(c);
    conn_defer(c); /* a larger cap takes more at the next run */
    return 0;
}

void cp2p_conn_close(cp2p_conn *c)
{
    cp2p__conn_close(c, 0, "closed locally");
}

static void on_orphan_closed(cp2p__tconn *t)
{
    (void)t;
}

cp2p_conn *cp2p__conn_start(cp2p_host *h, cp2p__tconn *sock, bool outbound,
                            const cp2p_peer_id *expected, cp2p_dial_cb cb, void *ud)
{
    cp2p_conn *c = cp2p_calloc(1, sizeof(*c));
    int rc;
    if (c == NULL) {
        sock->ops->close(sock, on_orphan_closed);
        return NULL;
    }
    c->host = h;
    c->id = h->next_conn_id++;
    c->outbound = outbound;
    c->t = sock;
    c->stage = CONN_UPGRADING;
    c->dial_cb = cb;
    c->dial_ud = ud;
    cp2p__sched_init(&c->sched, CP2P_CONN_SCHED_QUANTUM);
    c->cap_inflight_max = host_inflight_cap(&h->cfg);
    c->cap_out_max = host_out_cap(&h->cfg);
    c->max_write_inflight = c->cap_inflight_max;
    sock->data = c;
    (void)uv_timer_init(h->loop, &c->timer);
    c->timer.data = c;
    c->handles_open = 2;
    c->next = h->conns;
    if (h->conns != NULL) {
        h->conns->prev = c;
    }
    h->conns = c;
    h->nconns++;
    if (!outbound) {
        h->npending_inbound++;
    }
    (void)!sock->ops->addr(sock, true, &c->remote_addr);
    (void)!sock->ops->addr(sock, false, &c->local_addr);
    cp2p__host_conn_track(c);
    cp2p__conn_core_config cc;
    cp2p__conn_core_config_default(&cc);
    cc.outbound = outbound;
    cc.identity = h->key;
    cc.expected = expected;
    cc.upgrade_timeout_ms = h->cfg.upgrade_timeout_ms;
    cc.keepalive_ms = h->cfg.keepalive_ms;
    cc.yamux.max_window = h->cfg.yamux_max_window;
    cc.yamux.max_out_buffered = c->cap_out_max;
    cc.yamux.max_inbound_streams = h->cfg.max_streams_per_conn;
    cc.yamux.max_outbound_streams = h->cfg.max_streams_per_conn;
    cc.conn_id = c->id;
    rc = cp2p__conn_core_new(&cc, now_ms(c), &c->core);
    if (rc == 0 && sock->ops->read_start(sock, on_alloc, on_read) != 0) {
        rc = CP2P_EIO;
    }
    if (rc != 0) {
        /* Report through the normal path so the dial callback runs from the loop. */
        c->closing = true;
        c->close_err = rc;
        c->close_why = "cannot start the connection";
        (void)uv_timer_start(&c->timer, on_timer, 0, 0);
        return c;
    }
    conn_run(c);
    return c;
}

/* ---- public connection accessors ---- */

const cp2p_peer_id *cp2p_conn_peer_id(const cp2p_conn *c)
{
    return &c->peer;
}

const cp2p_pubkey *cp2p_conn_peer_key(const cp2p_conn *c)
{
    return c->peer_key;
}

const cp2p_multiaddr *cp2p_conn_remote_addr(const cp2p_conn *c)
{
    return c->remote_addr;
}

const cp2p_multiaddr *cp2p_conn_local_addr(const cp2p_conn *c)
{
    return c->local_addr;
}

cp2p_host *cp2p_conn_host(const cp2p_conn *c)
{
    return c->host;
}

bool cp2p_conn_is_outbound(const cp2p_conn *c)
{
    return c->outbound;
}

uint64_t cp2p_conn_id(const cp2p_conn *c)
{
    return c->id;
}

uint64_t cp2p_conn_rtt_ms(const cp2p_conn *c)
{
    uint64_t rtt = 0;
    if (c->yamux != NULL && cp2p__yamux_rtt(c->yamux, &rtt)) {
        return rtt;
    }
    return 0;
}

const cp2p_identify_info *cp2p_conn_identify(const cp2p_conn *c)
{
    return c->identify != NULL ? &c->identify_view : NULL;
}

void cp2p__conn_set_identify(cp2p_conn *c, void *msg, const cp2p_identify_info *view,
                             void (*free_fn)(void *))
{
    if (c->identify_free != NULL) {
        c->identify_free(c->identify);
    }
    c->identify = msg;
    c->identify_view = *view;
    c->identify_free = free_fn;
}

/* ---- public stream API ---- */

void cp2p_open_opts_default(cp2p_open_opts *o)
{
    *o = (cp2p_open_opts){.lazy_if_known = false};
}

bool cp2p__conn_peer_lists(const cp2p_conn *c, const char *proto)
{
    const cp2p_identify_info *id = cp2p_conn_identify(c);
    for (size_t i = 0; id != NULL && i < id->n_protocols; i++) {
        if (strcmp(id->protocols[i], proto) == 0) {
            return true;
        }
    }
    return false;
}

/* Whether the peer's identify says it runs cp2p. js-libp2p 3.x (@libp2p/utils' byte stream,
 * which multistream-select's handle() reads through) consumes the remote's FIN when it arrives
 * in the same read as the protocol line: the handler's reader then never ends, and a request
 * read to end of stream is never answered. So a lazy stream sends its data at once but holds
 * its FIN until the echo, unless the peer is cp2p, whose listener takes header, proposal, data
 * and FIN in one frame (go-libp2p's lazy client sends them so too). */
static bool peer_is_cp2p(const cp2p_conn *c)
{
    const cp2p_identify_info *id = cp2p_conn_identify(c);
    return id != NULL && id->agent_version != NULL &&
           strncmp(id->agent_version, "cp2p/", 5) == 0;
}

int cp2p_conn_open_stream(cp2p_conn *c, const char *const *protos, size_t n, cp2p_open_cb cb,
                          void *ud)
{
    return cp2p_conn_open_stream_opts(c, protos, n, NULL, cb, ud);
}

int cp2p_conn_open_stream_opts(cp2p_conn *c, const char *const *protos, size_t n,
                               const cp2p_open_opts *opts, cp2p_open_cb cb, void *ud)
{
    cp2p_stream *s;
    int rc;
    if (n == 0 || n > CP2P_MSS_MAX_OFFER || cb == NULL) {
        return CP2P_EINVAL;
    }
    if (c->closing || c->stage != CONN_OPEN || c->host->conns_closed) {
        return CP2P_ECLOSED;
    }
    if ((s = cp2p_calloc(1, sizeof(*s))) == NULL) {
        return CP2P_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        if ((s->offer[i] = cp2p__memdup(protos[i], strlen(protos[i]) + 1)) == NULL) {
            rc = CP2P_ENOMEM;
            goto fail;
        }
        s->noffer++;
    }
    /* Lazy only where the answer is known: one protocol, listed by the peer's identify. */
    s->lazy = opts != NULL && opts->lazy_if_known && n == 1 &&
              cp2p__conn_peer_lists(c, protos[0]);
    s->fin_after_echo = s->lazy && !peer_is_cp2p(c);
    if ((rc = cp2p__mss_init_dialer(&s->mss, (const char *const *)s->offer, n, s->lazy)) != 0) {
        goto fail;
    }
    s->mss_live = true;
    if ((rc = cp2p__yamux_stream_open(c->yamux, s, &s->ys)) != 0) {
        goto fail;
    }
    s->outbound = true;
    s->state = S_NEGOTIATING;
    s->open_cb = cb;
    s->open_ud = ud;
    s->neg_deadline = now_ms(c) + c->host->cfg.negotiate_timeout_ms;
    c->last_active_ms = now_ms(c);
    stream_link(c, s);
    stream_wake(s); /* the proposal goes out through the scheduler */
    return 0;
fail:
    if (s->mss_live) {
        cp2p__mss_fini(&s->mss);
    }
    for (size_t i = 0; i < s->noffer; i++) {
        cp2p_free(s->offer[i]);
    }
    cp2p_free(s);
    return rc;
}

int cp2p_stream_read_start(cp2p_stream *s, cp2p_read_cb cb, void *ud)
{
    if (s->reading || cb == NULL) {
        return CP2P_ESTATE;
    }
    if (s->state == S_DEAD || s->read_done) {
        return CP2P_ECLOSED;
    }
    s->reading = true;
    s->read_cb = cb;
    s->read_ud = ud;
    if (!s->on_deliver) {
        s->on_deliver = true;
        s->deliver_next = s->conn->deliver;
        s->conn->deliver = s;
    }
    conn_defer(s->conn);
    return 0;
}

void cp2p_stream_read_stop(cp2p_stream *s)
{
    s->reading = false;
}

/* cp2p_stream_write (copy) and cp2p_stream_write_ref (the caller's bytes, ref). */
static int stream_write(cp2p_stream *s, const void *data, size_t len, bool copy, cp2p_write_cb cb,
                        void *ud)
{
    if (s->state != S_OPEN || s->want_fin || s->app_closed) {
        return CP2P_ECLOSED;
    }
    const cp2p_host_config *hc = &s->conn->host->cfg;
    if (len > hc->max_stream_write_buffer || s->queued > hc->max_stream_write_buffer - len ||
        len > hc->max_conn_write_buffer ||
        s->conn->queued_total > hc->max_conn_write_buffer - len) {
        return CP2P_ELIMIT;
    }
    wq_item *w = cp2p_malloc(sizeof(*w) + (copy ? len : 0));
    if (w == NULL) {
        return CP2P_ENOMEM;
    }
    *w = (wq_item){.len = len, .cb = cb, .ud = ud, .ref = copy ? NULL : data};
    if (copy && len > 0) {
        memcpy(w->data, data, len);
    }
    if (s->wq_tail != NULL) {
        s->wq_tail->next = w;
    } else {
        s->wq_head = w;
    }
    s->wq_tail = w;
    s->queued += len;
    s->conn->queued_total += len;
    stream_wake(s);
    return 0;
}

int cp2p_stream_write(cp2p_stream *s, const void *data, size_t len, cp2p_write_cb cb, void *ud)
{
    return stream_write(s, data, len, true, cb, ud);
}

int cp2p_stream_write_ref(cp2p_stream *s, const void *data, size_t len, cp2p_write_cb cb,
                          void *ud)
{
    if (cb == NULL || (len > 0 && data == NULL)) {
        return CP2P_EINVAL;
    }
    return stream_write(s, data, len, false, cb, ud);
}

size_t cp2p_stream_write_queued(const cp2p_stream *s)
{
    return s->queued;
}

int cp2p_stream_close_write(cp2p_stream *s)
{
    if (s->state != S_OPEN || s->want_fin) {
        return CP2P_ECLOSED;
    }
    s->want_fin = true;
    stream_wake(s);
    return 0;
}

static void app_release(cp2p_stream *s)
{
    cp2p_conn *c = s->conn;
    if (!s->app_owned) {
        return;
    }
    s->app_owned = false;
    s->reading = false;
    c->app_streams--;
}

void cp2p_stream_close(cp2p_stream *s)
{
    cp2p_conn *c = s->conn;
    app_release(s);
    s->app_closed = true;
    if (s->state == S_OPEN && s->mss_live) {
        cp2p__mss_fini(&s->mss); /* lazy: nobody waits for the echo any more */
        s->mss_live = false;
    }
    if (s->state == S_OPEN) {
        s->want_fin = true;
        stream_discard(s);
        stream_wake(s);
    }
    if (!stream_maybe_free(s) && s->state == S_DEAD) {
        stream_release_ys(s);
        (void)stream_maybe_free(s);
    }
    if (c->stage == CONN_CLOSED) {
        conn_maybe_free(c);
    }
}

void cp2p_stream_reset(cp2p_stream *s)
{
    cp2p_conn *c = s->conn;
    app_release(s);
    s->app_closed = true;
    if (s->ys != NULL) {
        (void)!cp2p__yamux_stream_reset(s->ys, 0);
        stream_release_ys(s);
    }
    if (s->state != S_DEAD) {
        s->state = S_DEAD;
        s->dead_err = CP2P_ERESET;
    }
    /* Queued writes fail from the loop (conn_pump_streams), never inside this call. */
    if (!stream_maybe_free(s) && c->stage != CONN_CLOSED) {
        cp2p__sched_wake(&c->sched, &s->sn);
    }
    if (c->stage == CONN_CLOSED) {
        conn_maybe_free(c);
    } else {
        conn_defer(c);
    }
}

const char *cp2p_stream_protocol(const cp2p_stream *s)
{
    return s->protocol;
}

cp2p_conn *cp2p_stream_conn(const cp2p_stream *s)
{
    return s->conn->stage == CONN_CLOSED ? NULL : s->conn;
}

void cp2p_stream_set_user(cp2p_stream *s, void *user)
{
    s->user = user;
}

void *cp2p_stream_user(const cp2p_stream *s)
{
    return s->user;
}

int cp2p_stream_set_priority(cp2p_stream *s, unsigned priority)
{
    if (priority < CP2P_STREAM_PRIORITY_MIN || priority > CP2P_STREAM_PRIORITY_MAX) {
        return CP2P_EINVAL;
    }
    cp2p__sched_set_weight(&s->sn, priority);
    return 0;
}

unsigned cp2p_stream_get_priority(const cp2p_stream *s)
{
    return s->sn.weight;
}
