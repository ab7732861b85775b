/* The batching emitter on a host (see the binding section of include/cp2p/emitter.h): a libuv
 * timer drives the sans-I/O core (emitter.c), a service (cp2p/service.h) keeps the candidate
 * peer list (peers whose identify lists the protocol) and takes inbound streams, and the core's
 * send callback writes one frame per chosen peer on that peer's long-lived outbound stream.
 * The host closes the emitter when it closes first. Loop thread only. */
#include <string.h>

#include <sodium.h>

#include <cp2p/codec.h>
#include <cp2p/emitter.h>
#include <cp2p/host.h>
#include <cp2p/service.h>

#include "emitter/emitter_frame.h"
#include "util/alloc.h"
#include "util/limits.h"
#include "util/log_internal.h"

#define ELOG(lvl, ...) CP2P_LOG(CP2P_LOG_##lvl, "emitter", 0, __VA_ARGS__)

/* A frame waiting for its peer's stream to open. */
typedef struct ep_frame {
    struct ep_frame *next;
    size_t len, nmsgs;
    uint8_t data[];
} ep_frame;

typedef struct ep_peer {
    cp2p_peer_id id;
    cp2p_stream *out;  /* our long-lived outbound stream, once negotiated */
    bool opening;      /* an open is in flight */
    bool gone;         /* removed during an emission: freed when it ends */
    ep_frame *pend, *pend_tail;
    size_t npend, pend_bytes;
} ep_peer;

/* An open in flight; detached (he = NULL) when the emitter closes first. */
typedef struct ep_open {
    struct ep_open *next, *prev;
    cp2p_host_emitter *he;
    cp2p_peer_id id;
} ep_open;

/* An inbound stream and its incremental frame parser. */
typedef struct ep_in {
    struct ep_in *next, *prev;
    cp2p_host_emitter *he;
    cp2p_stream *s;
    cp2p_peer_id from;
    cp2p__emitter_parser parser;
} ep_in;

struct cp2p_host_emitter {
    cp2p_host *h;
    cp2p_host_emitter_config cfg;
    char *protocol;
    cp2p_service *svc;
    cp2p_emitter *core;
    uv_timer_t *timer; /* heap: freed by its close callback */
    ep_peer **peers;
    size_t npeers, cappeers;
    cp2p_peer_id *cand;  /* scratch of one emission: candidate IDs ... */
    ep_peer **cand_peer; /* ... and their entries */
    size_t ncand;
    bool emitting;
    size_t ngone;
    ep_open *opens;
    ep_in *ins;
    size_t nins;
    cp2p_host_emitter_stats st;
};

static uint64_t he_rand(void *ud)
{
    uint64_t v;
    (void)ud;
    randombytes_buf(&v, sizeof(v));
    return v;
}

void cp2p_host_emitter_config_default(cp2p_host_emitter_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cp2p_emitter_config_default(&cfg->core);
    cfg->max_peers = CP2P_HOST_EMITTER_MAX_PEERS;
    cfg->max_pending_frames = CP2P_HOST_EMITTER_MAX_PENDING_FRAMES;
    cfg->max_pending_bytes = CP2P_HOST_EMITTER_MAX_PENDING_BYTES;
    cfg->max_inbound_streams = CP2P_HOST_EMITTER_MAX_INBOUND;
}

/* ---- peers ---- */

static ep_peer *peer_find(const cp2p_host_emitter *he, const cp2p_peer_id *id)
{
    for (size_t i = 0; i < he->npeers; i++) {
        if (!he->peers[i]->gone && cp2p_peer_id_equal(&he->peers[i]->id, id)) {
            return he->peers[i];
        }
    }
    return NULL;
}

static void pend_drop(cp2p_host_emitter *he, ep_peer *p)
{
    while (p->pend != NULL) {
        ep_frame *f = p->pend;
        p->pend = f->next;
        he->st.frames_dropped++;
        cp2p_free(f);
    }
    p->pend_tail = NULL;
    p->npend = 0;
    p->pend_bytes = 0;
}

static void peer_release(cp2p_host_emitter *he, ep_peer *p)
{
    pend_drop(he, p);
    if (p->out != NULL) {
        cp2p_stream_close(p->out); /* what was written still goes out */
        p->out = NULL;
    }
}

static void peer_add(cp2p_host_emitter *he, const cp2p_peer_id *id)
{
    if (peer_find(he, id) != NULL) {
        return;
    }
    if (he->npeers >= he->cfg.max_peers) {
        he->st.peers_refused++;
        ELOG(INFO, "emitter.peers_full: %zu candidate peers, one more ignored", he->npeers);
        return;
    }
    if (he->npeers == he->cappeers) {
        size_t cap = he->cappeers ? 2 * he->cappeers : 16;
        if (cap > he->cfg.max_peers) {
            cap = he->cfg.max_peers;
        }
        ep_peer **np = cp2p_realloc(he->peers, cap * sizeof(*np));
        cp2p_peer_id *nc = cp2p_realloc(he->cand, cap * sizeof(*nc));
        if (nc != NULL) {
            he->cand = nc;
        }
        if (np != NULL) {
            he->peers = np;
        }
        ep_peer **ncp = cp2p_realloc(he->cand_peer, cap * sizeof(*ncp));
        if (ncp != NULL) {
            he->cand_peer = ncp;
        }
        if (np == NULL || nc == NULL || ncp == NULL) {
            he->st.peers_refused++;
            return;
        }
        he->cappeers = cap;
    }
    ep_peer *p = cp2p_calloc(1, sizeof(*p));
    if (p == NULL) {
        he->st.peers_refused++;
        return;
    }
    p->id = *id;
    he->peers[he->npeers++] = p;
}

static void peer_remove(cp2p_host_emitter *he, const cp2p_peer_id *id)
{
    for (size_t i = 0; i < he->npeers; i++) {
        ep_peer *p = he->peers[i];
        if (p->gone || !cp2p_peer_id_equal(&p->id, id)) {
            continue;
        }
        peer_release(he, p);
        if (he->emitting) { /* the emission holds pointers to it: free it afterwards */
            p->gone = true;
            he->ngone++;
        } else {
            he->peers[i] = he->peers[--he->npeers];
            cp2p_free(p);
        }
        return;
    }
}

static void sweep_gone(cp2p_host_emitter *he)
{
    for (size_t i = 0; he->ngone > 0 && i < he->npeers;) {
        if (he->peers[i]->gone) {
            cp2p_free(he->peers[i]);
            he->peers[i] = he->peers[--he->npeers];
            he->ngone--;
        } else {
            i++;
        }
    }
}

/* ---- outbound ---- */

static void stream_dead(cp2p_host_emitter *he, cp2p_stream *s, bool reset)
{
    for (size_t i = 0; i < he->npeers; i++) {
        if (he->peers[i]->out == s) {
            he->peers[i]->out = NULL; /* the next frame reopens */
            break;
        }
    }
    if (reset) {
        cp2p_stream_reset(s);
    } else {
        cp2p_stream_close(s);
    }
}

static void out_read(cp2p_stream *s, ptrdiff_t n, const uint8_t *data, void *ud)
{
    (void)data;
    if (n >= 0) {
        return; /* nothing is expected on our outbound stream: discarded */
    }
    stream_dead(ud, s, n != CP2P_EOF);
}

static void open_out(cp2p_host_emitter *he, ep_peer *p);

/* Write one frame on p's open stream. Returns 0 (written or dropped) or CP2P_ECLOSED (the
 * stream is dead: the caller keeps the frame and reopens). */
static int write_frame(cp2p_host_emitter *he, ep_peer *p, const uint8_t *data, size_t len,
                       size_t nmsgs)
{
    int rc = cp2p_stream_write(p->out, data, len, NULL, NULL);
    if (rc == 0) {
        he->st.frames_sent++;
        he->st.msgs_sent += nmsgs;
        he->st.bytes_sent += len;
        return 0;
    }
    if (rc == CP2P_ECLOSED) {
        cp2p_stream *s = p->out;
        p->out = NULL;
        cp2p_stream_reset(s);
        return CP2P_ECLOSED;
    }
    he->st.frames_dropped++; /* CP2P_ELIMIT (the peer reads too slowly) or CP2P_ENOMEM */
    ELOG(DEBUG, "emitter.frame_dropped: %s", cp2p_strerror(rc));
    return 0;
}

/* Queue a frame (ownership passes) until p's stream opens. */
static void pend_push(cp2p_host_emitter *he, ep_peer *p, ep_frame *f)
{
    if (p->npend >= he->cfg.max_pending_frames ||
        f->len > he->cfg.max_pending_bytes - p->pend_bytes) {
        he->st.frames_dropped++;
        cp2p_free(f);
        return;
    }
    f->next = NULL;
    if (p->pend_tail != NULL) {
        p->pend_tail->next = f;
    } else {
        p->pend = f;
    }
    p->pend_tail = f;
    p->npend++;
    p->pend_bytes += f->len;
    open_out(he, p);
}

static void pend_flush(cp2p_host_emitter *he, ep_peer *p)
{
    while (p->pend != NULL && p->out != NULL) {
        ep_frame *f = p->pend;
        if (write_frame(he, p, f->data, f->len, f->nmsgs) != 0) {
            open_out(he, p); /* died at once: keep the frames for the next stream */
            return;
        }
        p->pend = f->next;
        if (p->pend == NULL) {
            p->pend_tail = NULL;
        }
        p->npend--;
        p->pend_bytes -= f->len;
        cp2p_free(f);
    }
}

static void on_out_open(cp2p_stream *s, int status, void *ud)
{
    ep_open *o = ud;
    cp2p_host_emitter *he = o->he;
    if (he == NULL) { /* the emitter closed meanwhile */
        if (status == 0) {
            cp2p_stream_reset(s);
        }
        cp2p_free(o);
        return;
    }
    if (o->prev != NULL) {
        o->prev->next = o->next;
    } else {
        he->opens = o->next;
    }
    if (o->next != NULL) {
        o->next->prev = o->prev;
    }
    ep_peer *p = peer_find(he, &o->id);
    cp2p_free(o);
    if (p == NULL) {
        if (status == 0) {
            cp2p_stream_reset(s);
        }
        return;
    }
    p->opening = false;
    if (status == 0 && cp2p_stream_read_start(s, out_read, he) != 0) {
        cp2p_stream_reset(s);
        status = CP2P_ECLOSED;
    }
    if (status != 0) {
        he->st.open_failed++;
        ELOG(DEBUG, "emitter.open_failed: %s, %zu frames dropped", cp2p_strerror(status),
             p->npend);
        pend_drop(he, p);
        return;
    }
    he->st.streams_opened++;
    p->out = s;
    pend_flush(he, p);
}

static void open_out(cp2p_host_emitter *he, ep_peer *p)
{
    if (p->out != NULL || p->opening) {
        return;
    }
    cp2p_conn *c = cp2p_host_conn_to(he->h, &p->id);
    ep_open *o = c != NULL ? cp2p_calloc(1, sizeof(*o)) : NULL;
    const char *protos[1] = {he->protocol};
    int rc = o == NULL ? CP2P_ENOMEM : cp2p_conn_open_stream(c, protos, 1, on_out_open, o);
    if (rc != 0) {
        cp2p_free(o);
        he->st.open_failed++;
        pend_drop(he, p);
        return;
    }
    o->he = he;
    o->id = p->id;
    o->next = he->opens;
    if (he->opens != NULL) {
        he->opens->prev = o;
    }
    he->opens = o;
    p->opening = true;
}

/* The core's send callback: encode one frame for one peer. */
static void on_send(const cp2p_peer_id *peer, const cp2p_slice *msgs, size_t n, void *ud)
{
    cp2p_host_emitter *he = ud;
    ep_peer *p = NULL;
    if (peer >= he->cand && peer < he->cand + he->ncand) {
        p = he->cand_peer[peer - he->cand];
    } else {
        p = peer_find(he, peer);
    }
    if (p == NULL || p->gone) {
        he->st.frames_dropped++;
        return;
    }
    size_t len = cp2p_uvarint_len(n);
    for (size_t i = 0; i < n; i++) {
        len += cp2p_uvarint_len(msgs[i].len) + msgs[i].len; /* bounded by the core's bytes */
    }
    ep_frame *f = cp2p_malloc(sizeof(*f) + len);
    if (f == NULL) {
        he->st.frames_dropped++;
        return;
    }
    size_t off = cp2p_uvarint_encode(f->data, n);
    for (size_t i = 0; i < n; i++) {
        off += cp2p_uvarint_encode(f->data + off, msgs[i].len);
        if (msgs[i].len > 0) {
            memcpy(f->data + off, msgs[i].ptr, msgs[i].len);
        }
        off += msgs[i].len;
    }
    f->len = len;
    f->nmsgs = n;
    f->next = NULL;
    if (p->out != NULL && p->pend == NULL && write_frame(he, p, f->data, f->len, n) == 0) {
        cp2p_free(f);
        return;
    }
    pend_push(he, p, f); /* opens the stream when none is open or opening */
}

/* ---- emission ---- */

static void arm(cp2p_host_emitter *he);

static int emit(cp2p_host_emitter *he, bool flush)
{
    uint64_t now = uv_now(cp2p_host_loop(he->h));
    he->ncand = 0;
    for (size_t i = 0; i < he->npeers; i++) {
        he->cand[he->ncand] = he->peers[i]->id;
        he->cand_peer[he->ncand++] = he->peers[i];
    }
    he->emitting = true;
    int rc = flush ? cp2p_emitter_flush(he->core, now, he->cand, he->ncand, he_rand, NULL)
                   : cp2p_emitter_tick(he->core, now, he->cand, he->ncand, he_rand, NULL);
    he->emitting = false;
    he->ncand = 0;
    sweep_gone(he);
    return rc;
}

static void on_timer(uv_timer_t *t)
{
    cp2p_host_emitter *he = t->data;
    if (emit(he, false) == CP2P_ENOMEM) {
        uv_timer_start(he->timer, on_timer, CP2P_HOST_EMITTER_RETRY_MS, 0);
        return;
    }
    arm(he);
}

static void arm(cp2p_host_emitter *he)
{
    uint64_t now = uv_now(cp2p_host_loop(he->h));
    uint64_t d = cp2p_emitter_next_deadline(he->core, now);
    if (d == UINT64_MAX) {
        uv_timer_stop(he->timer);
        return;
    }
    uv_timer_start(he->timer, on_timer, d > now ? d - now : 0, 0);
}

/* ---- inbound ---- */

static void in_free(cp2p_host_emitter *he, ep_in *in)
{
    if (in->prev != NULL) {
        in->prev->next = in->next;
    } else {
        he->ins = in->next;
    }
    if (in->next != NULL) {
        in->next->prev = in->prev;
    }
    he->nins--;
    cp2p__emitter_parser_fini(&in->parser);
    cp2p_free(in);
}

static void deliver(void *ud, const uint8_t *msg, size_t len)
{
    ep_in *in = ud;
    cp2p_host_emitter *he = in->he;
    he->st.msgs_received++;
    he->cfg.on_msg(he, &in->from, msg, len, he->cfg.on_msg_ud);
}

static void in_read(cp2p_stream *s, ptrdiff_t n, const uint8_t *data, void *ud)
{
    ep_in *in = ud;
    cp2p_host_emitter *he = in->he;
    if (n < 0) {
        if (cp2p__emitter_parser_mid(&in->parser)) {
            he->st.truncated++;
        }
        if (n == CP2P_EOF) {
            cp2p_stream_close(s);
        } else {
            cp2p_stream_reset(s);
        }
        in_free(he, in);
        return;
    }
    const char *why = NULL;
    uint64_t frames = in->parser.frames;
    int rc = cp2p__emitter_parser_feed(&in->parser, data, (size_t)n, deliver, in, &why);
    he->st.frames_received += in->parser.frames - frames;
    if (rc != 0) {
        char idstr[CP2P_PEER_ID_STR_MAX];
        he->st.malformed++;
        ELOG(INFO, "emitter.malformed: %s from %s, stream reset", why,
             cp2p_peer_id_str(&in->from, idstr));
        cp2p_stream_read_stop(s);
        cp2p_stream_reset(s);
        in_free(he, in);
    }
}

static void in_handler(cp2p_service *svc, cp2p_stream *s, void *ud)
{
    (void)svc;
    cp2p_host_emitter *he = ud;
    ep_in *in = he->nins < he->cfg.max_inbound_streams ? cp2p_calloc(1, sizeof(*in)) : NULL;
    if (in == NULL) {
        he->st.refused++;
        ELOG(INFO, "emitter.inbound_refused: %zu inbound streams", he->nins);
        cp2p_stream_reset(s);
        return;
    }
    in->he = he;
    in->s = s;
    in->from = *cp2p_conn_peer_id(cp2p_stream_conn(s));
    cp2p__emitter_parser_init(&in->parser, he->cfg.max_recv_frame_msgs, he->cfg.max_recv_msg_bytes);
    in->next = he->ins;
    if (he->ins != NULL) {
        he->ins->prev = in;
    }
    he->ins = in;
    he->nins++;
    if (cp2p_stream_read_start(s, in_read, in) != 0) {
        cp2p_stream_reset(s);
        in_free(he, in);
    }
}

/* ---- service callbacks ---- */

static void svc_ready(cp2p_service *svc, const cp2p_peer_id *peer, cp2p_conn *conn, void *ud)
{
    (void)svc;
    (void)conn;
    peer_add(ud, peer);
}

static void svc_gone(cp2p_service *svc, const cp2p_peer_id *peer, int err, void *ud)
{
    (void)svc;
    (void)err; /* closed, or it stopped announcing the protocol */
    peer_remove(ud, peer);
}

static void emitter_free(cp2p_host_emitter *he);

/* The host closes: as cp2p_host_emitter_close, then the service is done. */
static void svc_close(cp2p_service *svc, void *ud)
{
    cp2p_host_emitter *he = ud;
    he->svc = NULL;
    emitter_free(he);
    cp2p_service_close_done(svc);
}

static void on_timer_closed(uv_handle_t *t)
{
    cp2p_free(t);
}

/* ---- API ---- */

int cp2p_host_emitter_new(cp2p_host *h, const cp2p_host_emitter_config *cfg,
                          cp2p_host_emitter **out)
{
    int rc;
    if (h == NULL || cfg == NULL || out == NULL || cfg->max_peers == 0 ||
        cfg->max_peers > CP2P_EMITTER_MAX_PEERS || cfg->max_pending_frames == 0 ||
        cfg->max_pending_bytes == 0 || cfg->max_inbound_streams == 0) {
        return CP2P_EINVAL;
    }
    const char *proto = cfg->protocol != NULL ? cfg->protocol : CP2P_HOST_EMITTER_PROTOCOL;
    size_t plen = strlen(proto);
    if (plen < 2 || proto[0] != '/' || plen >= CP2P_MSS_MAX_MSG || strchr(proto, '\n') != NULL) {
        return CP2P_EINVAL;
    }
    cp2p_host_emitter *he = cp2p_calloc(1, sizeof(*he));
    if (he == NULL) {
        return CP2P_ENOMEM;
    }
    he->h = h;
    he->cfg = *cfg;
    if (he->cfg.max_recv_msg_bytes == 0) {
        he->cfg.max_recv_msg_bytes = cfg->core.max_msg_bytes;
    }
    if (he->cfg.max_recv_frame_msgs == 0) {
        he->cfg.max_recv_frame_msgs = cfg->core.max_buffered;
    }
    he->protocol = cp2p_malloc(plen + 1);
    he->timer = cp2p_calloc(1, sizeof(*he->timer));
    if (he->protocol == NULL || he->timer == NULL) {
        rc = CP2P_ENOMEM;
        goto fail;
    }
    memcpy(he->protocol, proto, plen + 1);
    he->cfg.protocol = he->protocol;
    cp2p_emitter_config core = cfg->core;
    core.send = on_send;
    core.send_ud = he;
    if ((rc = cp2p_emitter_new(&core, &he->core)) != 0) {
        goto fail;
    }
    if (uv_timer_init(cp2p_host_loop(h), he->timer) != 0) {
        rc = CP2P_EIO;
        goto fail;
    }
    he->timer->data = he;
    const char *const protos[] = {he->protocol};
    cp2p_service_desc d = {
        .name = "emitter",
        .protocols = protos,
        .n_protocols = 1,
        .ready = CP2P_SERVICE_READY_IDENTIFIED,
        .peer_ready = svc_ready,
        .peer_gone = svc_gone,
        .inbound = cfg->on_msg != NULL ? in_handler : NULL,
        .close = svc_close,
    };
    if ((rc = cp2p_host_add_service(h, &d, he, &he->svc)) != 0) {
        uv_close((uv_handle_t *)he->timer, on_timer_closed);
        he->timer = NULL;
        goto fail;
    }
    *out = he;
    return 0;
fail:
    cp2p_emitter_free(he->core);
    cp2p_free(he->timer);
    cp2p_free(he->protocol);
    cp2p_free(he);
    return rc;
}

void cp2p_host_emitter_close(cp2p_host_emitter *he)
{
    if (he == NULL) {
        return;
    }
    cp2p_service_remove(he->svc);
    emitter_free(he);
}

static void emitter_free(cp2p_host_emitter *he)
{
    uv_timer_stop(he->timer);
    uv_close((uv_handle_t *)he->timer, on_timer_closed);
    for (ep_open *o = he->opens, *next; o != NULL; o = next) {
        next = o->next;
        o->he = NULL; /* on_out_open frees it */
        o->next = o->prev = NULL;
    }
    while (he->ins != NULL) {
        ep_in *in = he->ins;
        cp2p_stream_reset(in->s);
        in_free(he, in);
    }
    for (size_t i = 0; i < he->npeers; i++) {
        peer_release(he, he->peers[i]);
        cp2p_free(he->peers[i]);
    }
    cp2p_free(he->peers);
    cp2p_free(he->cand);
    cp2p_free(he->cand_peer);
    cp2p_emitter_free(he->core);
    cp2p_free(he->protocol);
    cp2p_free(he);
}

int cp2p_host_emitter_add(cp2p_host_emitter *he, const void *msg, size_t len, uint32_t kind)
{
    if (he == NULL) {
        return CP2P_EINVAL;
    }
    int rc = cp2p_emitter_add(he->core, msg, len, kind, uv_now(cp2p_host_loop(he->h)));
    if (rc == 0) {
        arm(he);
    }
    return rc;
}

int cp2p_host_emitter_flush(cp2p_host_emitter *he)
{
    if (he == NULL) {
        return CP2P_EINVAL;
    }
    int rc = emit(he, true);
    arm(he);
    return rc;
}

size_t cp2p_host_emitter_peers(const cp2p_host_emitter *he, cp2p_peer_id *out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; he != NULL && i < he->npeers; i++) {
        if (he->peers[i]->gone) {
            continue;
        }
        if (n < max) {
            out[n] = he->peers[i]->id;
        }
        n++;
    }
    return n;
}

size_t cp2p_host_emitter_pending(const cp2p_host_emitter *he)
{
    return he == NULL ? 0 : cp2p_emitter_pending(he->core);
}

void cp2p_host_emitter_stats_get(const cp2p_host_emitter *he, cp2p_host_emitter_stats *out)
{
    *out = he->st;
    out->core = *cp2p_emitter_stats_get(he->core);
}
