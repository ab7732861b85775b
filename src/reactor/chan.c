/* The channel core of one peer (see chan.h). Differences from CometBFT's MConnection
 * (p2p/conn/connection.go), each an anchor problem of issue 14 turned round:
 *   - Receive never runs here: complete messages wait in a bounded per-channel queue and a
 *     full queue stops that channel's reading only (MConnection calls onReceive on its read
 *     loop, so one slow reactor stalls every channel and the pongs);
 *   - channels are weighted by priority in a deficit round robin over bytes, and messages are
 *     cut into packets, so a 64 KiB block part neither starves nor blocks a vote;
 *   - the rate limiter returns a time instead of sleeping in the send and receive routines;
 *   - try_send checks the channel's own queue capacity, and send reports why it failed.
 * Memory: queued messages are single allocations (prefix + body); a channel's receive buffer
 * holds raw stream bytes and grows only as they arrive (never sized from a declared length). */
#include "reactor/chan.h"

#include <string.h>

#include <cp2p/buf.h>
#include <cp2p/codec.h>

#include "muxer/sched.h"
#include "util/frame.h"
#include "util/token_bucket.h"

#define KA_PING 0x01
#define KA_PONG 0x02

typedef struct chan_msg {
    struct chan_msg *next;
    uint64_t token;
    uint64_t deadline; /* waiters only */
    size_t len;        /* prefix + body */
    uint8_t data[];
} chan_msg;

typedef struct chan_tx {
    cp2p__sched_node node; /* first: node -> chan_tx */
    size_t idx;
    chan_msg *qh, *qt;
    uint32_t nq;
    chan_msg *wh, *wt;
    uint32_t nw;
    chan_msg *cur;
    size_t off;
    size_t inflight;
    bool stream, refused;
} chan_tx;

typedef struct chan_rx {
    cp2p_buf buf;
    size_t start; /* first byte of the oldest complete message */
    size_t scan;  /* first byte not parsed yet */
    uint32_t ready;
    bool paused; /* last answer of read_wanted was "no" because the queue was full */
} chan_rx;

struct cp2p__chan_peer {
    cp2p__chan_config cfg;
    signed short index[256];
    chan_tx *tx;
    chan_rx *rx;
    cp2p__chan_ch_stats *cst;
    cp2p__sched sched;
    cp2p_token_bucket send_tb, recv_tb;
    bool tx_throttled;
    uint64_t tx_throttled_since, tx_wait_until; /* wait_until 0: not waiting for tokens */
    uint64_t rx_debt, rx_throttled_since;
    uint64_t rx_wait_until;
    chan_msg *retired; /* the message whose last packet was handed out */
    /* keepalive */
    uint64_t next_ping_at, ping_sent_at, pong_due;
    bool ping_due;
    uint32_t pongs_owed;
    uint8_t ka_buf[CP2P_UVARINT_MAX + 1];
    size_t ka_len;
    /* events: a ring sized for every waiter plus DEAD */
    cp2p__chan_event *ev;
    size_t ev_cap, ev_head, ev_len;
    bool closed, dead;
    cp2p__chan_stats st;
};

static chan_tx *node_tx(cp2p__sched_node *n)
{
    return (chan_tx *)(void *)n;
}

int cp2p__chan_config_check(const cp2p__chan_config *c, const char **why)
{
    *why = NULL;
    if (c == NULL || c->chans == NULL || c->n_chans == 0 || c->n_chans > 256) {
        *why = "1..256 channels";
    } else if (c->packet < 64 || c->stream_backlog < c->packet || c->max_waiters == 0) {
        *why = "packet, backlog or waiters out of range";
    } else if ((c->send_rate != 0 && c->send_burst < c->packet) ||
               (c->recv_rate != 0 && c->recv_burst == 0)) {
        *why = "a rate limit's burst is smaller than a packet";
    } else if (c->ping_interval_ms != 0 && c->pong_timeout_ms == 0) {
        *why = "pong timeout 0";
    }
    bool seen[256] = {false};
    for (size_t i = 0; *why == NULL && i < c->n_chans; i++) {
        const cp2p__chan_desc *d = &c->chans[i];
        if (seen[d->id]) {
            *why = "duplicate channel id";
        } else if (d->priority < 1 || d->priority > CP2P__SCHED_MAX_WEIGHT) {
            *why = "channel priority outside 1..16";
        } else if (d->send_cap == 0 || d->recv_cap == 0 || d->max_msg == 0 ||
                   d->max_msg > SIZE_MAX / 4) {
            *why = "channel capacity 0";
        }
        seen[d->id] = true;
    }
    return *why == NULL ? 0 : CP2P_EINVAL;
}

int cp2p__chan_peer_new(const cp2p__chan_config *cfg, uint64_t now, cp2p__chan_peer **out)
{
    const char *why;
    if (out == NULL || cp2p__chan_config_check(cfg, &why) != 0) {
        return CP2P_EINVAL;
    }
    cp2p__chan_peer *p = cp2p_calloc(1, sizeof(*p));
    if (p == NULL) {
        return CP2P_ENOMEM;
    }
    p->cfg = *cfg;
    size_t n = cfg->n_chans;
    p->ev_cap = 2 * n * cfg->max_waiters + 2;
    p->tx = cp2p_calloc(n, sizeof(*p->tx));
    p->rx = cp2p_calloc(n, sizeof(*p->rx));
    p->cst = cp2p_calloc(n, sizeof(*p->cst));
    p->ev = cp2p_calloc(p->ev_cap, sizeof(*p->ev));
    if (p->tx == NULL || p->rx == NULL || p->cst == NULL || p->ev == NULL) {
        cp2p__chan_peer_free(p);
        return CP2P_ENOMEM;
    }
    memset(p->index, 0xff, sizeof(p->index)); /* -1 */
    /* A turn of the highest priority is one packet, so a message that arrives on an idle
     * channel waits for at most one packet of another (the scheduler's new-flow rule). */
    cp2p__sched_init(&p->sched, (uint32_t)(cfg->packet / CP2P__SCHED_MAX_WEIGHT));
    for (size_t i = 0; i < n; i++) {
        const cp2p__chan_desc *d = &cfg->chans[i];
        p->index[d->id] = (signed short)i;
        p->tx[i].idx = i;
        cp2p__sched_node_init(&p->tx[i].node, d->priority);
        cp2p_buf_init(&p->rx[i].buf, (d->recv_buffer > d->max_msg ? d->recv_buffer : d->max_msg) +
                                         CP2P_UVARINT_MAX + cfg->rx_slack);
    }
    if (cfg->send_rate != 0) {
        cp2p__token_bucket_init(&p->send_tb, cfg->send_rate, cfg->send_burst, now);
    }
    if (cfg->recv_rate != 0) {
        cp2p__token_bucket_init(&p->recv_tb, cfg->recv_rate, cfg->recv_burst, now);
    }
    if (cfg->ping_interval_ms != 0) {
        p->next_ping_at = now + cfg->ping_interval_ms;
    }
    *out = p;
    return 0;
}

static void msg_list_free(chan_msg *m)
{
    while (m != NULL) {
        chan_msg *next = m->next;
        cp2p_free(m);
        m = next;
    }
}

void cp2p__chan_peer_free(cp2p__chan_peer *p)
{
    if (p == NULL) {
        return;
    }
    for (size_t i = 0; p->tx != NULL && i < p->cfg.n_chans; i++) {
        msg_list_free(p->tx[i].qh);
        msg_list_free(p->tx[i].wh);
        cp2p_free(p->tx[i].cur);
    }
    for (size_t i = 0; p->rx != NULL && i < p->cfg.n_chans; i++) {
        cp2p_buf_fini(&p->rx[i].buf);
    }
    cp2p_free(p->retired);
    cp2p_free(p->tx);
    cp2p_free(p->rx);
    cp2p_free(p->cst);
    cp2p_free(p->ev);
    cp2p_free(p);
}

int cp2p__chan_index(const cp2p__chan_peer *p, uint8_t id)
{
    return p->index[id];
}

/* ---- events ---- */

static void ev_push(cp2p__chan_peer *p, cp2p__chan_event ev)
{
    /* Sized for every waiter and one DEAD: a push never finds it full. */
    if (p->ev_len == p->ev_cap) {
        return;
    }
    p->ev[(p->ev_head + p->ev_len) % p->ev_cap] = ev;
    p->ev_len++;
}

int cp2p__chan_next_event(cp2p__chan_peer *p, cp2p__chan_event *ev)
{
    if (p->ev_len == 0) {
        return 0;
    }
    *ev = p->ev[p->ev_head];
    p->ev_head = (p->ev_head + 1) % p->ev_cap;
    p->ev_len--;
    return 1;
}

/* Every waiter gets exactly one event: keep room for all of them and DEAD. */
static bool ev_room(const cp2p__chan_peer *p)
{
    size_t waiting = 0;
    for (size_t i = 0; i < p->cfg.n_chans; i++) {
        waiting += p->tx[i].nw;
    }
    return p->ev_len + waiting + 2 <= p->ev_cap;
}

static void waiter_done(cp2p__chan_peer *p, size_t ch, chan_msg *m, int status)
{
    ev_push(p, (cp2p__chan_event){.type = CP2P__CHAN_EV_SEND_DONE, .ch = ch, .token = m->token,
                                  .status = status});
}

/* ---- send ---- */

static bool tx_has_data(const chan_tx *t)
{
    return t->cur != NULL || t->qh != NULL;
}

static bool tx_can_go(const cp2p__chan_peer *p, const chan_tx *t)
{
    return tx_has_data(t) && t->stream && t->inflight < p->cfg.stream_backlog;
}

static void tx_kick(cp2p__chan_peer *p, chan_tx *t)
{
    if (tx_can_go(p, t)) {
        cp2p__sched_wake(&p->sched, &t->node);
    }
}

static void q_append(chan_msg **h, chan_msg **t, chan_msg *m)
{
    m->next = NULL;
    if (*t != NULL) {
        (*t)->next = m;
    } else {
        *h = m;
    }
    *t = m;
}

static chan_msg *q_pop(chan_msg **h, chan_msg **t)
{
    chan_msg *m = *h;
    if (m != NULL) {
        *h = m->next;
        if (*h == NULL) {
            *t = NULL;
        }
        m->next = NULL;
    }
    return m;
}

/* Admit waiters into free queue slots, oldest first. */
static void admit_waiters(cp2p__chan_peer *p, chan_tx *t)
{
    uint32_t cap = p->cfg.chans[t->idx].send_cap;
    while (t->nq < cap && t->wh != NULL) {
        chan_msg *m = q_pop(&t->wh, &t->wt);
        t->nw--;
        q_append(&t->qh, &t->qt, m);
        t->nq++;
        waiter_done(p, t->idx, m, 0);
    }
}

int cp2p__chan_send(cp2p__chan_peer *p, size_t ch, const void *data, size_t len, uint64_t now,
                    uint64_t timeout_ms, uint64_t token)
{
    if (ch >= p->cfg.n_chans || (data == NULL && len > 0)) {
        return CP2P_EINVAL;
    }
    chan_tx *t = &p->tx[ch];
    cp2p__chan_ch_stats *cs = &p->cst[ch];
    const cp2p__chan_desc *d = &p->cfg.chans[ch];
    if (p->closed) {
        return CP2P_ECLOSED;
    }
    if (len > d->max_msg) {
        cs->too_large++;
        return CP2P_ELIMIT;
    }
    if (t->refused) {
        return CP2P_ENOTSUP;
    }
    bool room = t->nq < d->send_cap && t->wh == NULL;
    if (!room && timeout_ms == 0) {
        cs->try_send_refused++;
        return CP2P_EFULL;
    }
    if (!room && (t->nw >= p->cfg.max_waiters || !ev_room(p))) {
        cs->waiters_refused++;
        return CP2P_EFULL;
    }
    size_t plen = cp2p_uvarint_len(len);
    chan_msg *m = cp2p_malloc(sizeof(*m) + plen + len);
    if (m == NULL) {
        return CP2P_ENOMEM;
    }
    m->token = token;
    m->len = plen + len;
    (void)cp2p_uvarint_encode(m->data, len);
    if (len > 0) {
        memcpy(m->data + plen, data, len);
    }
    if (room) {
        q_append(&t->qh, &t->qt, m);
        t->nq++;
        tx_kick(p, t);
        return 0;
    }
    m->deadline = now + timeout_ms < now ? UINT64_MAX - 1 : now + timeout_ms;
    q_append(&t->wh, &t->wt, m);
    t->nw++;
    return 1;
}

int cp2p__chan_next_packet(cp2p__chan_peer *p, uint64_t now, cp2p__chan_packet *out)
{
    cp2p_free(p->retired);
    p->retired = NULL;
    if (p->closed) {
        return 0;
    }
    cp2p__sched_node *n;
    while ((n = cp2p__sched_next(&p->sched)) != NULL) {
        chan_tx *t = node_tx(n);
        if (!t->stream || t->inflight >= p->cfg.stream_backlog) {
            cp2p__sched_done(&p->sched, n, 0, CP2P__SCHED_BLOCKED);
            continue;
        }
        if (t->cur == NULL) {
            t->cur = q_pop(&t->qh, &t->qt);
            if (t->cur == NULL) {
                cp2p__sched_done(&p->sched, n, 0, CP2P__SCHED_EMPTY);
                continue;
            }
            t->nq--;
            t->off = 0;
            admit_waiters(p, t);
        }
        size_t len = t->cur->len - t->off;
        size_t budget = cp2p__sched_budget(n);
        size_t room = p->cfg.stream_backlog - t->inflight;
        len = len < p->cfg.packet ? len : p->cfg.packet;
        if (room < len) {
            /* Wait for room for a whole packet: filling every small gap the stream's writes
             * leave would cut the channel into ever smaller writes. */
            cp2p__sched_done(&p->sched, n, 0, CP2P__SCHED_BLOCKED);
            continue;
        }
        if (cp2p__sched_listed(&p->sched) > 1) {
            /* Competing channels share by priority in turns of priority/16 packet; a channel
             * alone sends whole packets (its deficit still pays for them). */
            len = len < budget ? len : budget;
        }
        if (p->cfg.send_rate != 0) {
            if (!cp2p__token_bucket_take(&p->send_tb, (uint32_t)len, now)) {
                /* Out of tokens: every channel waits (they share the bucket); the node keeps
                 * its place and deficit. */
                if (!p->tx_throttled) {
                    p->tx_throttled = true;
                    p->tx_throttled_since = now;
                }
                p->tx_wait_until = now + cp2p__token_bucket_wait_ms(&p->send_tb, (uint32_t)len,
                                                                    now);
                cp2p__sched_done(&p->sched, n, 0, CP2P__SCHED_FULL);
                return 0;
            }
            if (p->tx_throttled) {
                p->tx_throttled = false;
                p->st.send_throttled_ms += now - p->tx_throttled_since;
            }
            p->tx_wait_until = 0;
        }
        out->ch = t->idx;
        out->ptr = t->cur->data + t->off;
        out->len = len;
        t->off += len;
        t->inflight += len;
        p->cst[t->idx].bytes_sent += len;
        p->st.bytes_sent += len;
        if (t->off == t->cur->len) {
            p->cst[t->idx].msgs_sent++;
            p->retired = t->cur; /* out->ptr points into it until the next call */
            t->cur = NULL;
        }
        cp2p__sched_outcome oc = !tx_has_data(t)                          ? CP2P__SCHED_EMPTY
                                 : t->inflight >= p->cfg.stream_backlog ? CP2P__SCHED_BLOCKED
                                                                         : CP2P__SCHED_MORE;
        cp2p__sched_done(&p->sched, n, len, oc);
        return 1;
    }
    return 0;
}

void cp2p__chan_written(cp2p__chan_peer *p, size_t ch, size_t n)
{
    if (ch >= p->cfg.n_chans) {
        return;
    }
    chan_tx *t = &p->tx[ch];
    t->inflight = n > t->inflight ? 0 : t->inflight - n;
    tx_kick(p, t);
}

void cp2p__chan_stream_up(cp2p__chan_peer *p, size_t ch)
{
    if (ch >= p->cfg.n_chans) {
        return;
    }
    chan_tx *t = &p->tx[ch];
    t->stream = true;
    t->inflight = 0;
    tx_kick(p, t);
}

void cp2p__chan_stream_down(cp2p__chan_peer *p, size_t ch)
{
    if (ch >= p->cfg.n_chans) {
        return;
    }
    chan_tx *t = &p->tx[ch];
    t->stream = false;
    t->inflight = 0;
    if (t->cur != NULL && t->off > 0) {
        /* Its first bytes went on a stream that died: the rest alone would be garbage. */
        p->cst[ch].send_dropped++;
        cp2p_free(t->cur);
        t->cur = NULL;
        admit_waiters(p, t);
    }
}

static void tx_drop_all(cp2p__chan_peer *p, chan_tx *t, int status)
{
    chan_msg *m;
    cp2p__sched_remove(&p->sched, &t->node);
    if (t->cur != NULL) {
        p->cst[t->idx].send_dropped++;
        cp2p_free(t->cur);
        t->cur = NULL;
    }
    while ((m = q_pop(&t->qh, &t->qt)) != NULL) {
        p->cst[t->idx].send_dropped++;
        cp2p_free(m);
    }
    t->nq = 0;
    while ((m = q_pop(&t->wh, &t->wt)) != NULL) {
        waiter_done(p, t->idx, m, status);
        cp2p_free(m);
    }
    t->nw = 0;
}

void cp2p__chan_refused(cp2p__chan_peer *p, size_t ch)
{
    if (ch >= p->cfg.n_chans) {
        return;
    }
    chan_tx *t = &p->tx[ch];
    t->refused = true;
    t->stream = false;
    tx_drop_all(p, t, CP2P_ENOTSUP);
}

bool cp2p__chan_wants_stream(const cp2p__chan_peer *p, size_t ch)
{
    if (ch >= p->cfg.n_chans) {
        return false;
    }
    const chan_tx *t = &p->tx[ch];
    return !p->closed && !t->stream && !t->refused &&
           (tx_has_data(t) || t->wh != NULL);
}

/* ---- receive ---- */

static void rx_drop_partial(cp2p__chan_peer *p, size_t ch, uint64_t *counter)
{
    chan_rx *r = &p->rx[ch];
    if (r->buf.len > r->scan) {
        if (counter != NULL) {
            (*counter)++;
        }
        r->buf.len = r->scan;
    }
}

int cp2p__chan_recv(cp2p__chan_peer *p, size_t ch, const uint8_t *data, size_t len, uint64_t now,
                    const char **why)
{
    *why = NULL;
    if (ch >= p->cfg.n_chans) {
        *why = "no such channel";
        return CP2P_EINVAL;
    }
    chan_rx *r = &p->rx[ch];
    cp2p__chan_ch_stats *cs = &p->cst[ch];
    cs->bytes_received += len;
    p->st.bytes_received += len;
    if (p->cfg.recv_rate != 0 && len > 0) {
        /* Bytes already read cannot be refused: what the bucket cannot cover becomes a debt
         * that keeps reading paused until it is paid (read_wanted). */
        uint32_t avail = cp2p__token_bucket_available(&p->recv_tb, now);
        uint32_t take = len < avail ? (uint32_t)len : avail;
        (void)cp2p__token_bucket_take(&p->recv_tb, take, now);
        if (len > take) {
            if (p->rx_debt == 0) {
                p->rx_throttled_since = now;
            }
            p->rx_debt += len - take;
        }
    }
    int arc = cp2p_buf_append(&r->buf, data, len);
    if (arc != 0) {
        rx_drop_partial(p, ch, arc == CP2P_ELIMIT ? &cs->overflow : NULL);
        *why = arc == CP2P_ELIMIT ? "read past the channel's receive buffer"
                                  : "no memory for the message";
        return arc;
    }
    size_t max = p->cfg.chans[ch].max_msg;
    while (r->scan < r->buf.len) {
        cp2p_slice body;
        ptrdiff_t n = cp2p__frame_decode(r->buf.ptr + r->scan, r->buf.len - r->scan, max, &body,
                                         why);
        if (n == 0) {
            break;
        }
        if (n < 0) {
            rx_drop_partial(p, ch, NULL);
            if (n == CP2P_ELIMIT) {
                cs->oversized++;
            } else {
                cs->malformed++;
            }
            return (int)n;
        }
        r->scan += (size_t)n;
        r->ready++;
        cs->msgs_received++;
    }
    return 0;
}

void cp2p__chan_recv_end(cp2p__chan_peer *p, size_t ch)
{
    if (ch < p->cfg.n_chans) {
        rx_drop_partial(p, ch, &p->cst[ch].truncated);
    }
}

static bool rx_rate_paused(cp2p__chan_peer *p, uint64_t now)
{
    if (p->rx_debt == 0) {
        return false;
    }
    uint32_t avail = cp2p__token_bucket_available(&p->recv_tb, now);
    uint64_t pay = p->rx_debt < avail ? p->rx_debt : avail;
    (void)cp2p__token_bucket_take(&p->recv_tb, (uint32_t)pay, now);
    p->rx_debt -= pay;
    if (p->rx_debt == 0) {
        p->st.recv_throttled_ms += now - p->rx_throttled_since;
        p->rx_wait_until = 0;
        return false;
    }
    uint32_t need = p->rx_debt < p->cfg.recv_burst ? (uint32_t)p->rx_debt : p->cfg.recv_burst;
    p->rx_wait_until = now + cp2p__token_bucket_wait_ms(&p->recv_tb, need, now);
    return true;
}

bool cp2p__chan_read_wanted(cp2p__chan_peer *p, size_t ch, uint64_t now)
{
    if (ch >= p->cfg.n_chans || p->closed) {
        return false;
    }
    chan_rx *r = &p->rx[ch];
    const cp2p__chan_desc *d = &p->cfg.chans[ch];
    /* With no complete message the partial one must be allowed to finish (it is at most the
     * largest message), else the channel would wait for itself. */
    bool full = r->ready >= d->recv_cap || (r->ready > 0 && r->buf.len - r->start >= d->recv_buffer);
    if (full && !r->paused) {
        p->cst[ch].read_pauses++;
    }
    r->paused = full;
    bool rate = rx_rate_paused(p, now);
    return !full && !rate;
}

int cp2p__chan_take(const cp2p__chan_peer *p, size_t ch, cp2p_slice *msg)
{
    if (ch >= p->cfg.n_chans || p->rx[ch].ready == 0) {
        return 0;
    }
    const chan_rx *r = &p->rx[ch];
    const char *why;
    ptrdiff_t n = cp2p__frame_decode(r->buf.ptr + r->start, r->scan - r->start,
                                     p->cfg.chans[ch].max_msg, msg, &why);
    return n > 0 ? 1 : 0; /* parsed once already: always complete */
}

void cp2p__chan_taken(cp2p__chan_peer *p, size_t ch)
{
    if (ch >= p->cfg.n_chans || p->rx[ch].ready == 0) {
        return;
    }
    chan_rx *r = &p->rx[ch];
    cp2p_slice body;
    const char *why;
    ptrdiff_t n = cp2p__frame_decode(r->buf.ptr + r->start, r->scan - r->start,
                                     p->cfg.chans[ch].max_msg, &body, &why);
    if (n <= 0) {
        return;
    }
    r->start += (size_t)n;
    r->ready--;
    p->cst[ch].msgs_delivered++;
    if (r->start == r->buf.len) {
        r->buf.len = 0;
        r->start = r->scan = 0;
    } else if (r->start >= 4096 && r->start >= r->buf.len / 2) {
        cp2p_buf_consume(&r->buf, r->start);
        r->scan -= r->start;
        r->start = 0;
    }
}

/* ---- keepalive ---- */

int cp2p__chan_keepalive_recv(cp2p__chan_peer *p, const uint8_t *data, size_t len, uint64_t now,
                              const char **why)
{
    *why = NULL;
    for (size_t i = 0; i < len; i++) {
        p->ka_buf[p->ka_len++] = data[i];
        cp2p_slice body;
        ptrdiff_t n = cp2p__frame_decode(p->ka_buf, p->ka_len, 1, &body, why);
        if (n == 0) {
            continue;
        }
        p->ka_len = 0;
        if (n < 0 || body.len != 1 || (body.ptr[0] != KA_PING && body.ptr[0] != KA_PONG)) {
            p->st.keepalive_malformed++;
            *why = "keepalive message neither ping nor pong";
            return CP2P_EPROTO;
        }
        if (body.ptr[0] == KA_PING) {
            if (p->pongs_owed < CP2P__CHAN_KA_MAX_OWED) {
                p->pongs_owed++;
            } else {
                p->st.pings_ignored++;
            }
        } else if (p->pong_due != 0) {
            p->pong_due = 0;
            p->st.pongs_received++;
            p->st.rtt_ms = now - p->ping_sent_at;
        }
    }
    return 0;
}

size_t cp2p__chan_keepalive_out(cp2p__chan_peer *p, uint8_t out[CP2P__CHAN_KA_OUT_MAX])
{
    size_t n = 0;
    for (; p->pongs_owed > 0; p->pongs_owed--) {
        out[n++] = 1;
        out[n++] = KA_PONG;
        p->st.pongs_sent++;
    }
    if (p->ping_due) {
        p->ping_due = false;
        out[n++] = 1;
        out[n++] = KA_PING;
        p->st.pings_sent++;
    }
    return n;
}

/* ---- time ---- */

static uint64_t min64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

uint64_t cp2p__chan_deadline(const cp2p__chan_peer *p, uint64_t now)
{
    (void)now;
    if (p->closed) {
        return UINT64_MAX;
    }
    uint64_t d = UINT64_MAX;
    if (p->cfg.ping_interval_ms != 0 && !p->dead) {
        d = p->pong_due != 0 ? p->pong_due : p->next_ping_at;
    }
    if (p->tx_wait_until != 0) {
        d = min64(d, p->tx_wait_until);
    }
    if (p->rx_debt != 0 && p->rx_wait_until != 0) {
        d = min64(d, p->rx_wait_until);
    }
    for (size_t i = 0; i < p->cfg.n_chans; i++) {
        for (const chan_msg *m = p->tx[i].wh; m != NULL; m = m->next) {
            d = min64(d, m->deadline);
        }
    }
    return d;
}

void cp2p__chan_on_timeout(cp2p__chan_peer *p, uint64_t now)
{
    if (p->closed) {
        return;
    }
    if (p->cfg.ping_interval_ms != 0 && !p->dead) {
        if (p->pong_due != 0 && now >= p->pong_due) {
            p->dead = true;
            ev_push(p, (cp2p__chan_event){.type = CP2P__CHAN_EV_DEAD, .why = "pong timeout"});
        } else if (p->pong_due == 0 && now >= p->next_ping_at) {
            p->ping_due = true;
            p->ping_sent_at = now;
            p->pong_due = now + p->cfg.pong_timeout_ms;
            p->next_ping_at = now + p->cfg.ping_interval_ms;
        }
    }
    for (size_t i = 0; i < p->cfg.n_chans; i++) {
        chan_tx *t = &p->tx[i];
        chan_msg **pp = &t->wh, *prev = NULL;
        while (*pp != NULL) {
            chan_msg *m = *pp;
            if (m->deadline > now) {
                prev = m;
                pp = &m->next;
                continue;
            }
            *pp = m->next;
            if (t->wt == m) {
                t->wt = prev;
            }
            t->nw--;
            p->cst[i].send_timeouts++;
            waiter_done(p, i, m, CP2P_ETIMEDOUT);
            cp2p_free(m);
        }
    }
    if (p->tx_wait_until != 0 && now >= p->tx_wait_until) {
        p->tx_wait_until = 0; /* the next next_packet() tries again */
    }
}

void cp2p__chan_close(cp2p__chan_peer *p)
{
    if (p->closed) {
        return;
    }
    for (size_t i = 0; i < p->cfg.n_chans; i++) {
        chan_msg *m;
        chan_tx *t = &p->tx[i];
        while ((m = q_pop(&t->wh, &t->wt)) != NULL) {
            waiter_done(p, i, m, CP2P_ECLOSED);
            cp2p_free(m);
        }
        t->nw = 0;
    }
    p->closed = true;
}

void cp2p__chan_stats_get(const cp2p__chan_peer *p, cp2p__chan_stats *out)
{
    *out = p->st;
}

void cp2p__chan_ch_stats_get(const cp2p__chan_peer *p, size_t ch, cp2p__chan_ch_stats *out)
{
    if (ch >= p->cfg.n_chans) {
        memset(out, 0, sizeof(*out));
        return;
    }
    *out = p->cst[ch];
    const chan_tx *t = &p->tx[ch];
    const chan_rx *r = &p->rx[ch];
    out->send_queued = t->nq + (t->cur != NULL ? 1 : 0);
    out->send_waiting = t->nw;
    out->recv_queued = r->ready;
    out->recv_buffered = r->buf.len - r->start;
}
