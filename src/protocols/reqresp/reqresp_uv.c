/* Request-response (the libp2p request_response family; see cp2p/reqresp.h for the wire
 * format), built on the host's public API like ping and perf.
 *
 * Responder: each inbound stream gets a cp2p_reqresp_responder that reads the request into a
 * buffer bounded by max_request_bytes (plus the prefix), hands it to the application, and —
 * once answered — streams the response out in chunks (the host queues at most
 * max_stream_write_buffer per stream, less than the 10 MiB default response cap), then closes.
 * Concurrency is counted per (registration, connection) in a short list that only holds
 * connections with unanswered requests, so it is bounded by what is in flight.
 *
 * Requester: one object per request with its own timer; it frees itself once the result was
 * delivered, its timer handle closed, the open callback ran and no write callback is pending.
 *
 * Registrations are reference counted: one reference while registered, one per unanswered
 * responder, so unregistering with requests in flight is safe. */
#include <string.h>

#include <cp2p/codec.h>

#include <cp2p/service.h>

#include "protocols/reqresp/reqresp_internal.h"
#include "util/alloc.h"
#include "util/frame.h"
#include "util/limits.h"
#include "util/log_internal.h"

void cp2p_reqresp_config_default(cp2p_reqresp_config *c)
{
    *c = (cp2p_reqresp_config){
        .max_request_bytes = CP2P_REQRESP_MAX_REQUEST_BYTES,
        .max_response_bytes = CP2P_REQRESP_MAX_RESPONSE_BYTES,
        .timeout_ms = CP2P_REQRESP_TIMEOUT_MS,
        .max_inbound_per_peer = CP2P_REQRESP_MAX_INBOUND_PER_PEER,
        .length_prefixed = false,
        .lazy_open = true,
    };
}

/* ---- message assembly, shared by both sides ---- */

/* Bytes of one incoming message. Plain mode: everything to EOF, capped at max. Length-prefixed:
 * at most max + a 9-byte prefix are kept, which always holds a whole valid frame. */
typedef struct {
    cp2p_buf buf;
    size_t max;
    bool lp;
    bool complete;
    cp2p_slice body;
} rr_msg;

static void msg_init(rr_msg *m, size_t max, bool lp)
{
    m->max = max;
    m->lp = lp;
    m->complete = false;
    m->body = (cp2p_slice){NULL, 0};
    /* max + 9 cannot overflow in practice, but a caller may configure SIZE_MAX. */
    size_t cap = lp && max <= SIZE_MAX - CP2P_UVARINT_MAX ? max + CP2P_UVARINT_MAX : max;
    cp2p_buf_init(&m->buf, cap);
}

/* Feed n bytes. Returns 0 (more wanted, or m->complete now set), CP2P_ELIMIT (over max),
 * CP2P_EPROTO (bad prefix, *why set) or CP2P_ENOMEM. Bytes after a whole frame are ignored. */
static int msg_feed(rr_msg *m, const uint8_t *data, size_t n, const char **why)
{
    if (!m->lp) {
        int rc = cp2p_buf_append(&m->buf, data, n);
        if (rc == CP2P_ELIMIT) {
            *why = "message over the limit";
        }
        return rc;
    }
    size_t room = m->buf.max - m->buf.len;
    size_t k = n < room ? n : room;
    int rc = cp2p_buf_append(&m->buf, data, k);
    if (rc != 0) {
        return rc;
    }
    ptrdiff_t used = cp2p__frame_decode(m->buf.ptr, m->buf.len, m->max, &m->body, why);
    if (used < 0) {
        return (int)used;
    }
    if (used > 0) {
        m->complete = true;
        return 0;
    }
    if (m->buf.len == m->buf.max) {
        /* A full buffer always holds a whole frame within max; unreachable by construction. */
        *why = "length-prefixed message does not fit";
        return CP2P_EPROTO;
    }
    return 0;
}

/* End of stream: plain messages are complete; a length-prefixed one must already be. */
static int msg_eof(rr_msg *m, const char **why)
{
    if (m->lp) {
        if (!m->complete) {
            *why = "end of stream inside a length-prefixed message";
            return CP2P_EPROTO;
        }
        return 0;
    }
    m->body = cp2p_buf_slice(&m->buf);
    m->complete = true;
    return 0;
}

/* The bytes to send for a message: the body, prefixed when lp. Returns 0 or CP2P_ENOMEM. */
static int frame_out(const void *body, size_t len, bool lp, uint8_t **out, size_t *out_len)
{
    uint8_t pre[CP2P_UVARINT_MAX];
    size_t np = 0;
    if (lp) {
        np = cp2p_uvarint_encode(pre, (uint64_t)len);
        if (np == 0) {
            return CP2P_ELIMIT;
        }
    }
    *out = NULL;
    *out_len = np + len;
    if (*out_len == 0) {
        return 0;
    }
    uint8_t *p = cp2p_malloc(*out_len);
    if (p == NULL) {
        return CP2P_ENOMEM;
    }
    memcpy(p, pre, np);
    if (len > 0) {
        memcpy(p + np, body, len);
    }
    *out = p;
    return 0;
}

/* Feeds data[0..len) to a stream in chunks, keeping at most CP2P_REQRESP_WRITE_QUEUE queued. */
typedef struct {
    cp2p_stream *s;
    uint8_t *data;
    size_t len, off;
    unsigned pending; /* write callbacks to come */
} rr_sender;

static int send_more(rr_sender *snd, cp2p_write_cb cb, void *ud)
{
    while (snd->off < snd->len && cp2p_stream_write_queued(snd->s) < CP2P_REQRESP_WRITE_QUEUE) {
        size_t left = snd->len - snd->off;
        size_t k = left < CP2P_REQRESP_WRITE_CHUNK ? left : CP2P_REQRESP_WRITE_CHUNK;
        int rc = cp2p_stream_write(snd->s, snd->data + snd->off, k, cb, ud);
        if (rc != 0) {
            return rc;
        }
        snd->off += k;
        snd->pending++;
    }
    return 0;
}

/* ---- registrations ---- */

typedef struct rr_peer_count {
    struct rr_peer_count *next;
    uint64_t conn_id;
    uint32_t n;
    bool logged; /* one log line per connection for over-limit refusals */
} rr_peer_count;

typedef struct {
    unsigned refs;
    cp2p_reqresp_config cfg;
    cp2p_reqresp_handler cb;
    void *ud;
    rr_peer_count *counts;
    cp2p__reqresp_stats stats;
} rr_proto;

static void proto_unref(rr_proto *p)
{
    if (--p->refs == 0) {
        while (p->counts != NULL) { /* empty by then; defensive */
            rr_peer_count *n = p->counts->next;
            cp2p_free(p->counts);
            p->counts = n;
        }
        cp2p_free(p);
    }
}

static rr_peer_count *count_find(rr_proto *p, uint64_t conn_id)
{
    for (rr_peer_count *e = p->counts; e != NULL; e = e->next) {
        if (e->conn_id == conn_id) {
            return e;
        }
    }
    return NULL;
}

static void count_dec(rr_proto *p, uint64_t conn_id)
{
    for (rr_peer_count **pp = &p->counts; *pp != NULL; pp = &(*pp)->next) {
        rr_peer_count *e = *pp;
        if (e->conn_id == conn_id) {
            if (--e->n == 0) {
                *pp = e->next;
                cp2p_free(e);
            }
            return;
        }
    }
}

/* ---- responder ---- */

typedef enum {
    RSP_EXPECT_REQUEST, /* reading the request */
    RSP_EXPECT_ANSWER,  /* handed to the application, waiting for respond/refuse */
    RSP_SENDING,        /* answered: the response is being queued; r is ours again */
} rsp_state;

struct cp2p_reqresp_responder {
    rr_proto *p; /* referenced until answered */
    cp2p_stream *s;
    cp2p_conn *conn;
    uint64_t conn_id;
    rsp_state state;
    rr_msg req;
    rr_sender snd;
    bool in_handler;
    bool answered;
};

/* The request is no longer pending: release the per-peer slot and the registration. */
static void rsp_unpend(cp2p_reqresp_responder *r)
{
    if (r->p != NULL) {
        count_dec(r->p, r->conn_id);
        proto_unref(r->p);
        r->p = NULL;
    }
}

static void rsp_free(cp2p_reqresp_responder *r)
{
    rsp_unpend(r);
    cp2p_buf_fini(&r->req.buf);
    cp2p_free(r->snd.data);
    cp2p_free(r);
}

/* Reset the stream (if still ours) and free r unless write callbacks are still to come. */
static void rsp_abort(cp2p_reqresp_responder *r)
{
    if (r->s != NULL) {
        cp2p_stream_read_stop(r->s);
        cp2p_stream_reset(r->s);
        r->s = NULL;
    }
    rsp_unpend(r);
    r->answered = true;
    if (r->snd.pending == 0 && !r->in_handler) {
        rsp_free(r);
    }
}

static void rsp_fault(cp2p_reqresp_responder *r, int rc, const char *why)
{
    rr_proto *p = r->p;
    const char *tag = "reqresp.inbound_failed";
    if (rc == CP2P_ELIMIT) {
        p->stats.request_too_large++;
        tag = "reqresp.request_too_large";
    } else if (rc == CP2P_EPROTO) {
        p->stats.bad_frame++;
        tag = "reqresp.bad_frame";
    } else {
        p->stats.inbound_failed++;
    }
    if (rc == CP2P_ELIMIT || rc == CP2P_EPROTO) {
        CP2P_LOG(CP2P_LOG_INFO, "reqresp", r->conn_id, "%s proto=%s why=%s", tag,
                 cp2p_stream_protocol(r->s), why != NULL ? why : "-");
    }
    rsp_abort(r);
}

static void rsp_written(cp2p_stream *s, int status, void *ud)
{
    cp2p_reqresp_responder *r = ud;
    (void)s;
    r->snd.pending--;
    if (status != 0 && r->s != NULL) {
        rsp_abort(r);
        return;
    }
    if (r->s != NULL) {
        if (send_more(&r->snd, rsp_written, r) != 0) {
            rsp_abort(r);
            return;
        }
        if (r->snd.off == r->snd.len) {
            cp2p_stream_close(r->s); /* FIN after the queued bytes; callbacks still run */
            r->s = NULL;
        }
    }
    if (r->s == NULL && r->snd.pending == 0) {
        rsp_free(r);
    }
}

static void rsp_dispatch(cp2p_reqresp_responder *r)
{
    rr_proto *p = r->p;
    r->state = RSP_EXPECT_ANSWER;
    p->stats.requests_served++;
    r->in_handler = true;
    p->cb(r, r->conn, r->req.body.ptr, r->req.body.len, p->ud);
    r->in_handler = false;
    if (r->answered) {
        /* Answered inside the handler: free now if nothing more is in flight. */
        if (r->s == NULL && r->snd.pending == 0) {
            rsp_free(r);
        }
        return;
    }
    /* The request bytes were borrowed for the call only; keep nothing while waiting. */
    cp2p_buf_fini(&r->req.buf);
    r->req.body = (cp2p_slice){NULL, 0};
}

static void rsp_read(cp2p_stream *s, ptrdiff_t n, const uint8_t *data, void *ud)
{
    cp2p_reqresp_responder *r = ud;
    const char *why = NULL;
    int rc;
    if (n >= 0) {
        rc = msg_feed(&r->req, data, (size_t)n, &why);
        if (rc != 0) {
            rsp_fault(r, rc, why);
            return;
        }
        if (r->req.complete) {
            /* Length-prefixed: one message is the whole request; the rest is discarded by the
             * close that follows the response. */
            cp2p_stream_read_stop(s);
            rsp_dispatch(r);
        }
        return;
    }
    if (n == CP2P_EOF) {
        if ((rc = msg_eof(&r->req, &why)) != 0) {
            rsp_fault(r, rc, why);
            return;
        }
        rsp_dispatch(r);
        return;
    }
    rsp_fault(r, (int)n, NULL); /* reset or connection closed before the request was read */
}

static void rr_stream_handler(cp2p_service *svc, cp2p_stream *s, void *ud)
{
    (void)svc;
    rr_proto *p = ud;
    cp2p_conn *c = cp2p_stream_conn(s);
    uint64_t conn_id = cp2p_conn_id(c);
    rr_peer_count *e = count_find(p, conn_id);
    if (e != NULL && e->n >= p->cfg.max_inbound_per_peer) {
        p->stats.inbound_over_limit++;
        if (!e->logged) {
            e->logged = true;
            CP2P_LOG(CP2P_LOG_INFO, "reqresp", conn_id,
                     "reqresp.inbound_over_limit proto=%s limit=%u", cp2p_stream_protocol(s),
                     (unsigned)p->cfg.max_inbound_per_peer);
        }
        cp2p_stream_reset(s);
        return;
    }
    cp2p_reqresp_responder *r = cp2p_calloc(1, sizeof(*r));
    if (r == NULL) {
        cp2p_stream_reset(s);
        return;
    }
    if (e == NULL) {
        if ((e = cp2p_calloc(1, sizeof(*e))) == NULL) {
            cp2p_free(r);
            cp2p_stream_reset(s);
            return;
        }
        e->conn_id = conn_id;
        e->next = p->counts;
        p->counts = e;
    }
    e->n++;
    p->refs++;
    r->p = p;
    r->s = s;
    r->conn = c;
    r->conn_id = conn_id;
    r->state = RSP_EXPECT_REQUEST;
    msg_init(&r->req, p->cfg.max_request_bytes, p->cfg.length_prefixed);
    if (cp2p_stream_read_start(s, rsp_read, r) != 0) {
        rsp_abort(r);
    }
}

int cp2p_reqresp_respond(cp2p_reqresp_responder *r, const void *resp, size_t len)
{
    int rc;
    if (r == NULL || r->state != RSP_EXPECT_ANSWER || r->answered || (resp == NULL && len > 0)) {
        return CP2P_EINVAL;
    }
    if (len > r->p->cfg.max_response_bytes) {
        r->p->stats.response_too_large++;
        rsp_abort(r);
        return CP2P_ELIMIT;
    }
    bool lp = r->p->cfg.length_prefixed;
    r->answered = true;
    r->state = RSP_SENDING;
    rsp_unpend(r);
    if ((rc = frame_out(resp, len, lp, &r->snd.data, &r->snd.len)) != 0) {
        rsp_abort(r);
        return rc;
    }
    r->snd.s = r->s;
    if ((rc = send_more(&r->snd, rsp_written, r)) != 0) {
        /* Nothing queued means the stream died (its connection closed): report that. */
        rsp_abort(r);
        return rc == CP2P_ENOMEM ? rc : CP2P_ECLOSED;
    }
    if (r->snd.off == r->snd.len) {
        cp2p_stream_close(r->s);
        r->s = NULL;
        if (r->snd.pending == 0 && !r->in_handler) {
            rsp_free(r);
        }
    }
    return 0;
}

void cp2p_reqresp_refuse(cp2p_reqresp_responder *r)
{
    if (r == NULL || r->state != RSP_EXPECT_ANSWER || r->answered) {
        return;
    }
    r->p->stats.refused++;
    rsp_abort(r);
}

/* The host closes: the registration goes (pending responders keep it until answered). */
static void rr_close(cp2p_service *svc, void *ud)
{
    proto_unref(ud);
    cp2p_service_close_done(svc);
}

/* The registration of `protocol` on h: its service. */
static cp2p_service *find_service(cp2p_host *h, const char *protocol)
{
    return cp2p_host_find_service(h, protocol, rr_stream_handler);
}

static rr_proto *find_proto(cp2p_host *h, const char *protocol)
{
    cp2p_service *svc = find_service(h, protocol);
    return svc != NULL ? cp2p_service_ud(svc) : NULL;
}

int cp2p_reqresp_register(cp2p_host *h, const char *protocol, const cp2p_reqresp_config *cfg,
                          cp2p_reqresp_handler cb, void *ud)
{
    cp2p_reqresp_config def;
    if (h == NULL || protocol == NULL || cb == NULL) {
        return CP2P_EINVAL;
    }
    if (cfg == NULL) {
        cp2p_reqresp_config_default(&def);
        cfg = &def;
    }
    if (cfg->timeout_ms == 0 || cfg->max_inbound_per_peer == 0) {
        return CP2P_EINVAL;
    }
    rr_proto *p = cp2p_calloc(1, sizeof(*p));
    if (p == NULL) {
        return CP2P_ENOMEM;
    }
    p->refs = 1;
    p->cfg = *cfg;
    p->cb = cb;
    p->ud = ud;
    /* Replacing: the old registration steps aside first (its pending requests keep it). */
    cp2p_service *old = find_service(h, protocol);
    if (old != NULL) {
        rr_proto *op = cp2p_service_ud(old);
        cp2p_service_remove(old);
        proto_unref(op);
    }
    const char *const protos[] = {protocol};
    cp2p_service_desc d = {
        .name = "reqresp",
        .protocols = protos,
        .n_protocols = 1,
        .inbound = rr_stream_handler,
        .close = rr_close,
    };
    cp2p_service *svc;
    int rc = cp2p_host_add_service(h, &d, p, &svc);
    if (rc != 0) {
        cp2p_free(p);
        return rc;
    }
    return 0;
}

int cp2p_reqresp_unregister(cp2p_host *h, const char *protocol)
{
    cp2p_service *svc = h == NULL ? NULL : find_service(h, protocol);
    if (svc == NULL) {
        return CP2P_ENOENT;
    }
    rr_proto *p = cp2p_service_ud(svc);
    cp2p_service_remove(svc);
    proto_unref(p);
    return 0;
}

const cp2p__reqresp_stats *cp2p__reqresp_get_stats(cp2p_host *h, const char *protocol)
{
    rr_proto *p = find_proto(h, protocol);
    return p != NULL ? &p->stats : NULL;
}

int cp2p_reqresp_stats_get(cp2p_host *h, const char *protocol, cp2p_reqresp_stats *out)
{
    const cp2p__reqresp_stats *st = h != NULL && protocol != NULL && out != NULL
                                        ? cp2p__reqresp_get_stats(h, protocol)
                                        : NULL;
    if (st == NULL) {
        return CP2P_ENOENT;
    }
    *out = *st;
    return 0;
}

/* ---- requester ---- */

typedef struct {
    cp2p_conn *conn;
    cp2p_reqresp_cb cb;
    void *ud;
    uv_timer_t timer;
    rr_sender snd;
    rr_msg resp;
    bool done;
    bool opening;      /* the open callback has yet to run */
    bool timer_closed;
    bool write_closed;
    bool keep_open;    /* length-prefixed: no half-close before the response (keep_write_open) */
} rr_req;

static void req_maybe_free(rr_req *q)
{
    if (q->done && q->timer_closed && !q->opening && q->snd.pending == 0) {
        cp2p_buf_fini(&q->resp.buf);
        cp2p_free(q->snd.data);
        cp2p_free(q);
    }
}

static void req_timer_closed(uv_handle_t *h)
{
    rr_req *q = h->data;
    q->timer_closed = true;
    req_maybe_free(q);
}

/* Report once, then release the stream; q goes when its last callback has run. */
static void req_finish(rr_req *q, int status)
{
    if (q->done) {
        return;
    }
    q->done = true;
    uv_timer_stop(&q->timer);
    if (q->snd.s != NULL) {
        cp2p_stream_read_stop(q->snd.s);
        if (status == 0) {
            cp2p_stream_close(q->snd.s);
        } else {
            cp2p_stream_reset(q->snd.s);
        }
        q->snd.s = NULL;
    }
    if (status == 0) {
        q->cb(q->conn, 0, q->resp.body.ptr, q->resp.body.len, q->ud);
    } else {
        q->cb(q->conn, status, NULL, 0, q->ud);
    }
    cp2p_buf_fini(&q->resp.buf);
    uv_close((uv_handle_t *)&q->timer, req_timer_closed);
}

static void req_timeout(uv_timer_t *t)
{
    req_finish(t->data, CP2P_ETIMEDOUT);
}

/* Queue more of the request; once all of it is queued, half-close. */
static void req_pump(rr_req *q, cp2p_write_cb cb)
{
    int rc = send_more(&q->snd, cb, q);
    if (rc != 0) {
        req_finish(q, rc == CP2P_ENOMEM ? rc : CP2P_ECLOSED);
        return;
    }
    if (q->snd.off == q->snd.len && !q->write_closed && !q->keep_open) {
        q->write_closed = true;
        if (cp2p_stream_close_write(q->snd.s) != 0) {
            req_finish(q, CP2P_ECLOSED);
        }
    }
}

static void req_written(cp2p_stream *s, int status, void *ud)
{
    rr_req *q = ud;
    (void)s;
    q->snd.pending--;
    if (q->done) {
        req_maybe_free(q);
        return;
    }
    if (status != 0) {
        req_finish(q, status);
        return;
    }
    req_pump(q, req_written);
}

static void req_read(cp2p_stream *s, ptrdiff_t n, const uint8_t *data, void *ud)
{
    rr_req *q = ud;
    const char *why = NULL;
    int rc;
    (void)s;
    if (n >= 0) {
        if ((rc = msg_feed(&q->resp, data, (size_t)n, &why)) != 0) {
            CP2P_LOG(CP2P_LOG_DEBUG, "reqresp", cp2p_conn_id(q->conn), "reqresp.bad_response %s",
                     why != NULL ? why : cp2p_strerror(rc));
            req_finish(q, rc);
        } else if (q->resp.complete) {
            req_finish(q, 0);
        }
        return;
    }
    if (n == CP2P_EOF) {
        /* The whole request must have gone out: an early EOF is not an answer to it. */
        if (!q->write_closed && !(q->keep_open && q->snd.off == q->snd.len)) {
            req_finish(q, CP2P_EPROTO);
            return;
        }
        rc = msg_eof(&q->resp, &why);
        req_finish(q, rc);
        return;
    }
    req_finish(q, (int)n);
}

static void req_open(cp2p_stream *s, int status, void *ud)
{
    rr_req *q = ud;
    q->opening = false;
    if (q->done) { /* timed out while negotiating */
        if (status == 0) {
            cp2p_stream_reset(s);
        }
        req_maybe_free(q);
        return;
    }
    if (status != 0) {
        req_finish(q, status);
        return;
    }
    q->snd.s = s;
    if (cp2p_stream_read_start(s, req_read, q) != 0) {
        req_finish(q, CP2P_ECLOSED);
        return;
    }
    req_pump(q, req_written);
}

int cp2p_reqresp_request(cp2p_conn *c, const char *protocol, const cp2p_reqresp_config *cfg,
                         const void *req, size_t len, cp2p_reqresp_cb cb, void *ud)
{
    cp2p_reqresp_config def;
    int rc;
    if (c == NULL || protocol == NULL || cb == NULL || (req == NULL && len > 0)) {
        return CP2P_EINVAL;
    }
    if (cfg == NULL) {
        cp2p_reqresp_config_default(&def);
        cfg = &def;
    }
    if (cfg->timeout_ms == 0) { /* max_inbound_per_peer is the responder's setting */
        return CP2P_EINVAL;
    }
    if (len > cfg->max_request_bytes) {
        return CP2P_ELIMIT;
    }
    rr_req *q = cp2p_calloc(1, sizeof(*q));
    if (q == NULL) {
        return CP2P_ENOMEM;
    }
    q->conn = c;
    q->cb = cb;
    q->ud = ud;
    q->keep_open = cfg->length_prefixed && cfg->keep_write_open;
    msg_init(&q->resp, cfg->max_response_bytes, cfg->length_prefixed);
    if ((rc = frame_out(req, len, cfg->length_prefixed, &q->snd.data, &q->snd.len)) != 0) {
        cp2p_free(q);
        return rc;
    }
    if (uv_timer_init(cp2p_host_loop(cp2p_conn_host(c)), &q->timer) != 0) {
        cp2p_free(q->snd.data);
        cp2p_free(q);
        return CP2P_EIO;
    }
    q->timer.data = q;
    const char *const protos[] = {protocol};
    cp2p_open_opts oo;
    cp2p_open_opts_default(&oo);
    oo.lazy_if_known = cfg->lazy_open;
    if ((rc = cp2p_conn_open_stream_opts(c, protos, 1, &oo, req_open, q)) != 0) {
        q->done = true;
        uv_close((uv_handle_t *)&q->timer, req_timer_closed);
        return rc;
    }
    q->opening = true;
    (void)uv_timer_start(&q->timer, req_timeout, cfg->timeout_ms, 0);
    return 0;
}
