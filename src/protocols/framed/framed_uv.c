/* Framed links (cp2p/framed.h): one long-lived outbound stream per ready peer, a bounded queue
 * in front of it, and a frame reader on every inbound stream, as a service on the host.
 *
 * Lifetimes. A peer (fr_peer) lives from the service's peer_ready to its peer_gone. Its
 * outbound stream is held by an fr_out, allocated separately because the stream's callbacks
 * (open, write completions, read) can arrive after the peer is gone or the helper is closed:
 * an fr_out is detached (p = NULL, and f = NULL when the helper goes) instead of freed, and is
 * freed by whichever of its pending callbacks comes last. Write completions are what drain
 * the queue, so each write asks for one; `writes` counts them.
 *
 * Re-entrancy: cp2p_framed_send only queues and writes (stream writes never call back inside
 * the call); every user callback runs from a stream, service or timer callback. */
#include <string.h>

#include <cp2p/codec.h>
#include <cp2p/framed.h>

#include "util/alloc.h"
#include "util/frame.h"
#include "util/hashmap.h"
#include "util/limits.h"
#include "util/log_internal.h"

#define FLOG(lvl, ...) CP2P_LOG(CP2P_LOG_##lvl, "framed", 0, __VA_ARGS__)

typedef struct fr_peer fr_peer;

/* A queued frame: length prefix and body, ready to write. */
typedef struct fr_frame {
    struct fr_frame *next;
    size_t len;
    uint8_t data[];
} fr_frame;

typedef struct fr_out {
    cp2p_framed *f; /* NULL once the helper is gone */
    fr_peer *p;     /* NULL once detached from its peer */
    cp2p_stream *s; /* NULL while opening and once released */
    size_t writes;  /* write callbacks still to come */
    bool opening;
} fr_out;

struct fr_peer {
    cp2p_peer_id id;
    fr_out *out;
    fr_frame *qh, *qt;
    size_t nq, qbytes;
    bool was_full;       /* a frame was refused or dropped since the last `writable` */
    uint32_t backoff_ms; /* next reopen delay */
    uint64_t reopen_at;  /* loop time of the scheduled reopen; 0: none */
    uint64_t opened_at;  /* loop time the current stream was negotiated */
};

typedef struct fr_in {
    struct fr_in *next, *prev;
    cp2p_framed *f;
    cp2p_stream *s;
    cp2p_peer_id from;
    cp2p_buf buf;
} fr_in;

struct cp2p_framed {
    cp2p_host *h;
    cp2p_service *svc;
    cp2p_framed_config cfg;
    void *ud;
    cp2p_hashmap peers; /* fr_peer by ID */
    fr_in *ins;
    uv_timer_t *timer;  /* reopens; heap: freed by its close callback */
    uint64_t timer_at;  /* when armed: its due time; 0: stopped */
    cp2p_buf scratch;   /* one frame being written */
    char *protos[CP2P_SERVICE_MAX_PROTOCOLS]; /* copies of cfg.protocols */
    const char *proto_ptrs[CP2P_SERVICE_MAX_PROTOCOLS];
    cp2p_framed_stats st;
};

static uint64_t now_ms(const cp2p_framed *f)
{
    return uv_now(cp2p_host_loop(f->h));
}

static cp2p_slice peer_key(const void *item)
{
    const fr_peer *p = item;
    return (cp2p_slice){p->id.bytes, p->id.len};
}

void cp2p_framed_config_default(cp2p_framed_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->name = "framed";
    cfg->max_frame = CP2P_FRAMED_MAX_FRAME;
    cfg->max_queue_frames = CP2P_FRAMED_MAX_QUEUE_FRAMES;
    cfg->max_queue_bytes = CP2P_FRAMED_MAX_QUEUE_BYTES;
    cfg->stream_backlog = CP2P_FRAMED_STREAM_BACKLOG;
    cfg->reopen_backoff_ms = CP2P_FRAMED_BACKOFF_MS;
    cfg->reopen_backoff_max_ms = CP2P_FRAMED_BACKOFF_MAX_MS;
    cfg->max_peers = CP2P_FRAMED_MAX_PEERS;
    cfg->max_inbound_per_conn = CP2P_FRAMED_MAX_INBOUND_PER_CONN;
}

static fr_peer *peer_find(const cp2p_framed *f, const cp2p_peer_id *id)
{
    return id != NULL ? cp2p__hashmap_find(&f->peers, id->bytes, id->len) : NULL;
}

/* ---- the queue ---- */

static fr_frame *q_pop(cp2p_framed *f, fr_peer *p)
{
    fr_frame *fr = p->qh;
    p->qh = fr->next;
    if (p->qh == NULL) {
        p->qt = NULL;
    }
    p->nq--;
    p->qbytes -= fr->len;
    f->st.queued_frames--;
    return fr;
}

static void q_drop_all(cp2p_framed *f, fr_peer *p)
{
    while (p->qh != NULL) {
        cp2p_free(q_pop(f, p));
        f->st.send_dropped++;
    }
}

/* A frame sent now goes straight to the open stream: nothing waits before it and the stream
 * holds less than its backlog. */
static bool direct_ok(const cp2p_framed *f, const fr_peer *p)
{
    return p->qh == NULL && p->out != NULL && p->out->s != NULL &&
           cp2p_stream_write_queued(p->out->s) < f->cfg.stream_backlog;
}

static bool q_has_room(const cp2p_framed *f, const fr_peer *p, size_t len)
{
    return p->nq < f->cfg.max_queue_frames && len <= f->cfg.max_queue_bytes - p->qbytes;
}

/* ---- outbound ---- */

static void out_free_if_idle(fr_out *o)
{
    if (o->p == NULL && o->s == NULL && !o->opening && o->writes == 0) {
        cp2p_free(o);
    }
}

static void schedule_reopen(cp2p_framed *f, fr_peer *p);

static void on_written(cp2p_stream *s, int status, void *ud);

/* Write frames from the queue while the stream has room under its backlog. */
static void drain(cp2p_framed *f, fr_peer *p)
{
    fr_out *o = p->out;
    while (o != NULL && o->s != NULL && p->qh != NULL &&
           cp2p_stream_write_queued(o->s) < f->cfg.stream_backlog) {
        fr_frame *fr = p->qh;
        int rc = cp2p_stream_write(o->s, fr->data, fr->len, on_written, o);
        if (rc != 0) {
            /* Dead (ECLOSED) or its buffer cap (ELIMIT): the read or write callbacks that
             * follow tell which; the frame stays queued for the next stream. */
            break;
        }
        o->writes++;
        f->st.frames_sent++;
        f->st.bytes_sent += fr->len;
        cp2p_free(q_pop(f, p));
    }
    if (p->was_full && p->nq <= f->cfg.max_queue_frames / 2 &&
        p->qbytes <= f->cfg.max_queue_bytes / 2) {
        p->was_full = false;
        if (f->cfg.writable != NULL) {
            f->cfg.writable(f, &p->id, f->ud);
        }
    }
}

/* The outbound stream of p ended: release it and reopen later while p is ready. */
static void out_dead(cp2p_framed *f, fr_peer *p, bool reset)
{
    fr_out *o = p->out;
    cp2p_stream *s = o->s;
    p->out = NULL;
    o->p = NULL;
    o->s = NULL;
    uint64_t now = now_ms(f);
    if (p->opened_at != 0 && now - p->opened_at >= f->cfg.reopen_backoff_max_ms) {
        p->backoff_ms = f->cfg.reopen_backoff_ms; /* it lived long: start over */
    }
    p->opened_at = 0;
    schedule_reopen(f, p);
    bool idle = o->writes == 0;
    if (reset) {
        cp2p_stream_reset(s); /* pending write callbacks come later, with an error */
    } else {
        cp2p_stream_close(s);
    }
    if (idle) {
        cp2p_free(o);
    }
}

static void on_written(cp2p_stream *s, int status, void *ud)
{
    fr_out *o = ud;
    (void)s;
    o->writes--;
    if (o->p == NULL || o->f == NULL) {
        out_free_if_idle(o);
        return;
    }
    if (status != 0) {
        out_dead(o->f, o->p, true);
        return;
    }
    drain(o->f, o->p);
}

/* Nothing is read from our outbound streams: data is discarded, an end means the peer closed
 * or reset it. */
static void out_read(cp2p_stream *s, ptrdiff_t n, const uint8_t *data, void *ud)
{
    fr_out *o = ud;
    (void)s;
    (void)data;
    if (n >= 0 || o->p == NULL || o->f == NULL) {
        return;
    }
    FLOG(DEBUG, "framed.out_ended: %s, reopening", cp2p_strerror((int)n));
    out_dead(o->f, o->p, n != CP2P_EOF);
}

static void on_open(cp2p_stream *s, int status, void *ud)
{
    fr_out *o = ud;
    o->opening = false;
    if (o->p == NULL || o->f == NULL) {
        if (status == 0) {
            cp2p_stream_reset(s);
        }
        out_free_if_idle(o);
        return;
    }
    cp2p_framed *f = o->f;
    fr_peer *p = o->p;
    if (status == 0 && cp2p_stream_read_start(s, out_read, o) != 0) {
        cp2p_stream_reset(s);
        status = CP2P_ECLOSED;
    }
    if (status != 0) {
        f->st.open_failed++;
        FLOG(DEBUG, "framed.open_failed: %s", cp2p_strerror(status));
        p->out = NULL;
        o->p = NULL;
        cp2p_free(o);
        schedule_reopen(f, p);
        return;
    }
    o->s = s;
    f->st.streams_opened++;
    p->opened_at = now_ms(f);
    if (f->cfg.up != NULL) {
        f->cfg.up(f, &p->id, cp2p_stream_protocol(s), f->ud);
    }
    if (p->out == o) { /* `up` may not remove the peer, but be safe */
        drain(f, p);
    }
}

static void open_out(cp2p_framed *f, fr_peer *p)
{
    if (p->out != NULL) {
        return;
    }
    cp2p_conn *c = cp2p_host_conn_to(f->h, &p->id);
    fr_out *o = c != NULL ? cp2p_calloc(1, sizeof(*o)) : NULL;
    int rc = o == NULL ? (c == NULL ? CP2P_ENOENT : CP2P_ENOMEM)
                       : cp2p_conn_open_stream(c, f->proto_ptrs, f->cfg.n_protocols, on_open, o);
    if (rc != 0) {
        cp2p_free(o);
        f->st.open_failed++;
        schedule_reopen(f, p);
        return;
    }
    o->f = f;
    o->p = p;
    o->opening = true;
    p->out = o;
}

/* ---- reopen timer ---- */

static void on_timer(uv_timer_t *t);

static void arm_timer(cp2p_framed *f, uint64_t at)
{
    if (f->timer_at != 0 && f->timer_at <= at) {
        return;
    }
    uint64_t now = now_ms(f);
    f->timer_at = at;
    (void)uv_timer_start(f->timer, on_timer, at > now ? at - now : 0, 0);
}

static void schedule_reopen(cp2p_framed *f, fr_peer *p)
{
    if (f->timer == NULL) {
        return; /* closing */
    }
    p->reopen_at = now_ms(f) + p->backoff_ms;
    uint64_t next = (uint64_t)p->backoff_ms * 2;
    p->backoff_ms = next > f->cfg.reopen_backoff_max_ms ? f->cfg.reopen_backoff_max_ms
                                                        : (uint32_t)next;
    arm_timer(f, p->reopen_at);
}

static void on_timer(uv_timer_t *t)
{
    cp2p_framed *f = t->data;
    uint64_t now = now_ms(f), next = 0;
    f->timer_at = 0;
    size_t cur = 0;
    fr_peer *p;
    /* Opens never change the map, so iterating while opening is safe. */
    while ((p = cp2p__hashmap_next(&f->peers, &cur)) != NULL) {
        if (p->reopen_at == 0) {
            continue;
        }
        if (p->reopen_at <= now) {
            p->reopen_at = 0;
            f->st.reopens++;
            open_out(f, p); /* a failure reschedules it */
        }
        if (p->reopen_at != 0 && (next == 0 || p->reopen_at < next)) {
            next = p->reopen_at;
        }
    }
    if (next != 0) {
        arm_timer(f, next);
    }
}

/* ---- inbound ---- */

static void in_free(cp2p_framed *f, fr_in *in)
{
    if (in->prev != NULL) {
        in->prev->next = in->next;
    } else {
        f->ins = in->next;
    }
    if (in->next != NULL) {
        in->next->prev = in->prev;
    }
    cp2p_buf_fini(&in->buf);
    cp2p_free(in);
}

static void in_fail(cp2p_framed *f, fr_in *in, uint64_t *counter, const char *why)
{
    (*counter)++;
    FLOG(INFO, "framed.bad_inbound: %s, stream reset", why);
    cp2p_stream_reset(in->s);
    in_free(f, in);
}

static void in_read(cp2p_stream *s, ptrdiff_t n, const uint8_t *data, void *ud)
{
    fr_in *in = ud;
    cp2p_framed *f = in->f;
    if (n < 0) {
        if (in->buf.len > 0) {
            f->st.truncated++;
        }
        if (n == CP2P_EOF) {
            cp2p_stream_close(s);
        } else {
            cp2p_stream_reset(s);
        }
        in_free(f, in);
        return;
    }
    /* The buffer holds at most one frame (max_frame plus its prefix); bytes are taken as it
     * makes room, so several frames in one read never overflow it. */
    size_t taken = 0;
    while (taken < (size_t)n) {
        size_t take = (size_t)n - taken;
        size_t room = f->cfg.max_frame + CP2P_UVARINT_MAX - in->buf.len;
        if (take > room) {
            take = room;
        }
        if (take == 0 || cp2p_buf_append(&in->buf, data + taken, take) != 0) {
            in_fail(f, in, &f->st.frames_oversized, "no room for the frame");
            return;
        }
        taken += take;
        size_t off = 0;
        for (;;) {
            cp2p_slice body;
            const char *why = NULL;
            ptrdiff_t used = cp2p__frame_decode(in->buf.ptr + off, in->buf.len - off,
                                                f->cfg.max_frame, &body, &why);
            if (used == 0) {
                break;
            }
            if (used < 0) {
                in_fail(f, in, used == CP2P_ELIMIT ? &f->st.frames_oversized
                                                   : &f->st.frames_malformed, why);
                return;
            }
            off += (size_t)used;
            f->st.frames_received++;
            f->st.bytes_received += body.len;
            if (f->cfg.frame != NULL &&
                f->cfg.frame(f, &in->from, cp2p_stream_protocol(s), body.ptr, body.len,
                             f->ud) != 0) {
                in_fail(f, in, &f->st.frames_rejected, "frame rejected by the service");
                return;
            }
        }
        cp2p_buf_consume(&in->buf, off);
    }
}

static void svc_inbound(cp2p_service *svc, cp2p_stream *s, void *ud)
{
    cp2p_framed *f = ud;
    (void)svc;
    fr_in *in = cp2p_calloc(1, sizeof(*in));
    if (in == NULL) {
        f->st.inbound_refused++;
        cp2p_stream_reset(s);
        return;
    }
    in->f = f;
    in->s = s;
    in->from = *cp2p_conn_peer_id(cp2p_stream_conn(s));
    cp2p_buf_init(&in->buf, f->cfg.max_frame + CP2P_UVARINT_MAX);
    in->next = f->ins;
    if (f->ins != NULL) {
        f->ins->prev = in;
    }
    f->ins = in;
    if (cp2p_stream_read_start(s, in_read, in) != 0) {
        f->st.inbound_refused++;
        cp2p_stream_reset(s);
        in_free(f, in);
        return;
    }
    f->st.inbound_streams++;
}

/* ---- peers ---- */

static void svc_ready(cp2p_service *svc, const cp2p_peer_id *peer, cp2p_conn *conn, void *ud)
{
    cp2p_framed *f = ud;
    (void)svc;
    (void)conn;
    if (peer_find(f, peer) != NULL) {
        return;
    }
    fr_peer *p = cp2p_calloc(1, sizeof(*p));
    if (p != NULL) {
        p->id = *peer;
    }
    if (p == NULL || cp2p__hashmap_insert(&f->peers, p) != 0) {
        f->st.peers_refused++;
        FLOG(INFO, "framed.peers_full: %zu peers, one more ignored",
             cp2p__hashmap_len(&f->peers));
        cp2p_free(p);
        return;
    }
    p->backoff_ms = f->cfg.reopen_backoff_ms;
    open_out(f, p);
}

/* Forget p: queue dropped, outbound stream closed gracefully (or its open detached). */
static void peer_release(cp2p_framed *f, fr_peer *p)
{
    q_drop_all(f, p);
    fr_out *o = p->out;
    if (o != NULL) {
        p->out = NULL;
        o->p = NULL;
        cp2p_stream *s = o->s;
        o->s = NULL;
        bool idle = o->writes == 0 && !o->opening;
        if (s != NULL) {
            cp2p_stream_close(s); /* what was written still goes out */
        }
        if (idle) {
            cp2p_free(o);
        }
    }
    cp2p_free(p);
}

static void svc_gone(cp2p_service *svc, const cp2p_peer_id *peer, int err, void *ud)
{
    cp2p_framed *f = ud;
    (void)svc;
    fr_peer *p = peer_find(f, peer);
    if (p == NULL) {
        return;
    }
    (void)cp2p__hashmap_remove(&f->peers, p);
    cp2p_peer_id id = p->id;
    peer_release(f, p);
    if (f->cfg.down != NULL) {
        f->cfg.down(f, &id, err, f->ud);
    }
}

/* ---- lifecycle ---- */

static void on_timer_closed(uv_handle_t *t)
{
    cp2p_free(t);
}

static void release_peer_cb(void *item, void *ud)
{
    fr_peer *p = item;
    cp2p_framed *f = ud;
    if (p->out != NULL) {
        p->out->f = NULL;
    }
    peer_release(f, p);
}

static void framed_free(cp2p_framed *f)
{
    if (f->timer != NULL) {
        uv_timer_stop(f->timer);
        uv_close((uv_handle_t *)f->timer, on_timer_closed);
        f->timer = NULL;
    }
    while (f->ins != NULL) {
        fr_in *in = f->ins;
        cp2p_stream_reset(in->s);
        in_free(f, in);
    }
    cp2p__hashmap_fini(&f->peers, release_peer_cb, f);
    cp2p_buf_fini(&f->scratch);
    for (size_t i = 0; i < CP2P_SERVICE_MAX_PROTOCOLS; i++) {
        cp2p_free(f->protos[i]);
    }
    cp2p_free(f);
}

/* cp2p_framed_new failed before the timer handle was initialised. */
static void framed_free_early(cp2p_framed *f)
{
    cp2p_free(f->timer);
    f->timer = NULL;
    framed_free(f);
}

static void svc_close(cp2p_service *svc, void *ud)
{
    cp2p_framed *f = ud;
    if (f->cfg.closing != NULL) {
        f->cfg.closing(f, f->ud);
    }
    f->svc = NULL;
    framed_free(f);
    cp2p_service_close_done(svc);
}

int cp2p_framed_new(cp2p_host *h, const cp2p_framed_config *cfg, void *ud, cp2p_framed **out)
{
    if (h == NULL || cfg == NULL || out == NULL || cfg->n_protocols == 0 ||
        cfg->n_protocols > CP2P_SERVICE_MAX_PROTOCOLS ||
        cfg->protocols == NULL || cfg->max_frame == 0 ||
        cfg->max_frame > CP2P_UVARINT_MAX_VALUE - CP2P_UVARINT_MAX ||
        cfg->max_queue_frames == 0 || cfg->max_queue_bytes == 0 || cfg->stream_backlog == 0 ||
        cfg->reopen_backoff_ms == 0 || cfg->reopen_backoff_max_ms < cfg->reopen_backoff_ms ||
        cfg->max_peers == 0 || cfg->max_peers > CP2P_FRAMED_MAX_PEERS_LIMIT) {
        return CP2P_EINVAL;
    }
    cp2p_framed *f = cp2p_calloc(1, sizeof(*f));
    if (f == NULL) {
        return CP2P_ENOMEM;
    }
    f->h = h;
    f->cfg = *cfg;
    f->ud = ud;
    cp2p_buf_init(&f->scratch, cfg->max_frame + CP2P_UVARINT_MAX);
    for (size_t i = 0; i < cfg->n_protocols; i++) {
        size_t n = cfg->protocols[i] != NULL ? strlen(cfg->protocols[i]) : 0;
        if (n == 0 || (f->protos[i] = cp2p_malloc(n + 1)) == NULL) {
            framed_free_early(f);
            return n == 0 ? CP2P_EINVAL : CP2P_ENOMEM;
        }
        memcpy(f->protos[i], cfg->protocols[i], n + 1);
        f->proto_ptrs[i] = f->protos[i];
    }
    int rc = cp2p__hashmap_init(&f->peers, cfg->max_peers, peer_key);
    f->timer = rc == 0 ? cp2p_calloc(1, sizeof(*f->timer)) : NULL;
    if (rc != 0 || f->timer == NULL) {
        framed_free_early(f);
        return rc != 0 ? rc : CP2P_ENOMEM;
    }
    if (uv_timer_init(cp2p_host_loop(h), f->timer) != 0) {
        framed_free_early(f);
        return CP2P_EIO;
    }
    f->timer->data = f;
    cp2p_service_desc d = {
        .name = cfg->name != NULL ? cfg->name : "framed",
        .protocols = cfg->protocols,
        .n_protocols = cfg->n_protocols,
        .ready = cfg->ready,
        .max_inbound_per_conn = cfg->max_inbound_per_conn,
        .peer_ready = svc_ready,
        .peer_gone = svc_gone,
        .inbound = svc_inbound,
        .close = svc_close,
    };
    rc = cp2p_host_add_service(h, &d, f, &f->svc);
    if (rc != 0) {
        framed_free(f);
        return rc;
    }
    /* The caller's strings are not kept. */
    f->cfg.protocols = f->proto_ptrs;
    f->cfg.name = NULL;
    *out = f;
    return 0;
}

void cp2p_framed_close(cp2p_framed *f)
{
    if (f == NULL) {
        return;
    }
    cp2p_service_remove(f->svc);
    framed_free(f);
}

int cp2p_framed_send(cp2p_framed *f, const cp2p_peer_id *peer, const void *data, size_t len)
{
    if (f == NULL || (data == NULL && len > 0)) {
        return CP2P_EINVAL;
    }
    if (len > f->cfg.max_frame) {
        f->st.send_too_large++;
        return CP2P_ELIMIT;
    }
    fr_peer *p = peer_find(f, peer);
    if (p == NULL) {
        return CP2P_ENOENT;
    }
    uint8_t pre[CP2P_UVARINT_MAX];
    size_t pl = cp2p_uvarint_encode(pre, (uint64_t)len);
    fr_out *o = p->out;
    /* Straight to the stream when nothing waits and it has room. */
    if (direct_ok(f, p)) {
        cp2p_buf_reset(&f->scratch);
        if (cp2p_buf_append(&f->scratch, pre, pl) != 0 ||
            cp2p_buf_append(&f->scratch, data, len) != 0) {
            return CP2P_ENOMEM;
        }
        if (cp2p_stream_write(o->s, f->scratch.ptr, f->scratch.len, on_written, o) == 0) {
            o->writes++;
            f->st.frames_sent++;
            f->st.bytes_sent += f->scratch.len;
            return 0;
        }
        /* Refused (dead or at its cap): queue it; the callbacks decide what happens next. */
    }
    size_t total = pl + len;
    if (!q_has_room(f, p, total)) {
        p->was_full = true;
        if (f->cfg.full == CP2P_FRAMED_FULL_REFUSE || total > f->cfg.max_queue_bytes) {
            f->st.send_refused++;
            return CP2P_EFULL;
        }
        while (p->qh != NULL && !q_has_room(f, p, total)) {
            cp2p_free(q_pop(f, p));
            f->st.send_dropped++;
        }
    }
    fr_frame *fr = cp2p_malloc(sizeof(*fr) + total);
    if (fr == NULL) {
        return CP2P_ENOMEM;
    }
    fr->next = NULL;
    fr->len = total;
    memcpy(fr->data, pre, pl);
    if (len > 0) {
        memcpy(fr->data + pl, data, len);
    }
    if (p->qt != NULL) {
        p->qt->next = fr;
    } else {
        p->qh = fr;
    }
    p->qt = fr;
    p->nq++;
    p->qbytes += total;
    f->st.queued_frames++;
    return 0;
}

bool cp2p_framed_can_send(const cp2p_framed *f, const cp2p_peer_id *peer)
{
    const fr_peer *p = f != NULL ? peer_find(f, peer) : NULL;
    return p != NULL && direct_ok(f, p);
}

bool cp2p_framed_peer_ready(const cp2p_framed *f, const cp2p_peer_id *peer)
{
    return f != NULL && peer_find(f, peer) != NULL;
}

size_t cp2p_framed_queued(const cp2p_framed *f, const cp2p_peer_id *peer)
{
    const fr_peer *p = f != NULL ? peer_find(f, peer) : NULL;
    return p != NULL ? p->nq : 0;
}

const char *cp2p_framed_peer_protocol(const cp2p_framed *f, const cp2p_peer_id *peer)
{
    const fr_peer *p = f != NULL ? peer_find(f, peer) : NULL;
    return p != NULL && p->out != NULL && p->out->s != NULL ? cp2p_stream_protocol(p->out->s)
                                                            : NULL;
}

void cp2p_framed_stats_get(const cp2p_framed *f, cp2p_framed_stats *out)
{
    *out = f->st;
    out->peers = cp2p__hashmap_len(&f->peers);
}

cp2p_service *cp2p_framed_service(const cp2p_framed *f)
{
    return f->svc;
}
