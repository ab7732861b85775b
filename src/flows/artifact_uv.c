/* Artifact gossip as a service on the host (cp2p/artifact.h): the core (art_core.c) on the
 * loop, framed links (cp2p/framed.h) for the wire, five flows (flow.h) for the application's
 * callbacks, a gossip timer, and the advert broadcaster. */
#include <string.h>

#include <uv.h>

#include <cp2p/artifact.h>
#include <cp2p/framed.h>

#include "flows/art_core.h"
#include "flows/artifact_internal.h"
#include "flows/flow.h"
#include "util/alloc.h"
#include "util/limits.h"
#include "util/log_internal.h"
#include "util/queue.h"

#define ALOG(lvl, ...) CP2P_LOG(CP2P_LOG_##lvl, "artifact", 0, __VA_ARGS__)

/* Frames handed to one peer's framed queue before we wait (the rest stay in the core's outbox,
 * bounded there): with frames of at most CP2P_ART_MAX_FRAME, under the framed byte limit. */
#define SEND_AHEAD_FRAMES 32
#define FRAMED_QUEUE_BYTES (SEND_AHEAD_FRAMES * CP2P_ART_MAX_FRAME + CP2P_ART_MAX_FRAME)

typedef struct early_peer {
    cp2p_peer_id id;
    struct early_peer *next;
} early_peer;

struct cp2p_artifact {
    cp2p_host *h;
    cp2p_framed *fr;
    cp2p__art_core *core;
    cp2p_artifact_config cfg;
    cp2p__flow *flows[CP2P_ARTIFACT_FLOWS];
    uv_async_t *async;
    uv_timer_t *timer;
    cp2p_queue bcast;       /* publish jobs held before start */
    uint64_t bcast_dropped;
    early_peer *early;      /* peers whose frames came before they were ready */
    cp2p_peer_id *backlog;  /* peers with bytes left in the core's outbox */
    uint32_t n_backlog;
    cp2p_queue stalled;     /* store jobs the chunk flow refused: offered again (bounded by the
                             * core's fetch table, which holds their bytes meanwhile) */
    cp2p_buf frame;
    bool started;
    bool in_pump;
    cp2p__artifact_metrics *metrics;
};

/* ---- jobs of the flows ---- */

enum { JOB_PUBLISH, JOB_PURGE, JOB_SERVE, JOB_STORE, JOB_RETRANS, JOB_PEER };

typedef struct job {
    int kind;
    cp2p_artifact *a;
    cp2p_peer_id peer;
    bool up;
    uint8_t id[CP2P_ART_MAX_ID];
    size_t id_len;
    bool has_id;
    uint32_t index;
    uint64_t offset;
    const uint8_t *src; /* JOB_STORE: the core's bytes (kept until stored()) */
    uint8_t *data;      /* owned: JOB_PUBLISH bytes, JOB_SERVE buffer */
    size_t len;
    cp2p__art_attr *attrs; /* JOB_PUBLISH: copies, in one block with their bytes */
    size_t n_attrs;
    cp2p__art_prepared prep;
    cp2p_artifact_publish_cb cb;
    void *cb_ud;
    int rc;
} job;

static void job_free(job *j)
{
    cp2p__art_prepared_fini(&j->prep);
    cp2p_free(j->data);
    cp2p_free(j->attrs);
    cp2p_free(j);
}

static const cp2p__art_config *core_cfg_of(const cp2p_artifact *a, cp2p__art_config *c);

static void job_work(void *item, void *ud)
{
    job *j = item;
    cp2p_artifact *a = ud;
    const cp2p_artifact_pool *pool = &a->cfg.pool;
    void *pud = a->cfg.pool_ud;
    switch (j->kind) {
    case JOB_PUBLISH: {
        cp2p__art_config cc;
        j->rc = cp2p__art_prepare(core_cfg_of(a, &cc), j->has_id ? j->id : NULL, j->id_len,
                                  j->data, j->len, j->attrs, j->n_attrs, &j->prep);
        break;
    }
    case JOB_PURGE:
        if (pool->purge != NULL) {
            pool->purge(j->id, j->id_len, pud);
        }
        break;
    case JOB_SERVE:
        j->rc = (j->data = cp2p_malloc(j->len)) == NULL
                    ? CP2P_ENOMEM
                    : pool->serve(j->id, j->id_len, j->offset, j->data, j->len, pud);
        break;
    case JOB_STORE:
        j->rc = pool->store(j->id, j->id_len, j->src, j->len, pud);
        break;
    case JOB_RETRANS:
        if (pool->retransmission != NULL) {
            pool->retransmission(&j->peer, pud);
        }
        break;
    case JOB_PEER:
        if (pool->peer != NULL) {
            pool->peer(&j->peer, j->up, pud);
        }
        break;
    default:
        break;
    }
}

static void pump(cp2p_artifact *a);

static uint64_t now_ms(const cp2p_artifact *a)
{
    return uv_now(cp2p_host_loop(a->h));
}

/* Loop thread: a job came back from its worker. */
static void job_done(void *item, void *ud)
{
    job *j = item;
    cp2p_artifact *a = ud;
    switch (j->kind) {
    case JOB_PUBLISH:
        if (j->rc == 0) {
            const uint8_t *small = j->len <= a->cfg.push_threshold ? j->data : NULL;
            j->rc = cp2p__art_core_publish_prepared(a->core, &j->prep, small, now_ms(a));
        }
        if (j->cb != NULL) {
            j->cb(a, j->rc, j->prep.id, j->rc == 0 ? j->prep.id_len : 0, j->cb_ud);
        }
        break;
    case JOB_SERVE:
        if (j->rc == 0) {
            int rc = cp2p__art_core_serve_reply(a->core, &j->peer, j->id, j->id_len, j->index,
                                                j->data, j->len);
            if (rc != 0) { /* the asker left, the artifact was purged, or an outbox is full */
                ALOG(DEBUG, "artifact.serve_dropped: %s", cp2p_strerror(rc));
            }
        } else {
            cp2p__art_core_serve_fail(a->core, &j->peer);
        }
        break;
    case JOB_STORE:
        if (cp2p__art_core_stored(a->core, j->id, j->id_len, j->rc == 0, now_ms(a)) != 0) {
            ALOG(DEBUG, "artifact.store_late: no such fetch");
        }
        break;
    default:
        break;
    }
    job_free(j);
}

/* Loop thread: a job that will never be done (flow full or closing). */
static void job_drop(void *item, void *ud)
{
    job *j = item;
    (void)ud;
    job_free(j);
}

static void job_wake(void *ud)
{
    cp2p_artifact *a = ud;
    uv_async_send(a->async);
}

static job *job_new(cp2p_artifact *a, int kind)
{
    job *j = cp2p_calloc(1, sizeof(*j));
    if (j != NULL) {
        j->kind = kind;
        j->a = a;
    }
    return j;
}

/* Offer refused store jobs to the chunk flow again, oldest first. */
static void retry_stalled(cp2p_artifact *a)
{
    job *j;
    while ((j = cp2p__queue_peek(&a->stalled)) != NULL) {
        if (cp2p__flow_push(a->flows[CP2P_ARTIFACT_FLOW_CHUNK], j) != 0) {
            return;
        }
        (void)cp2p__queue_pop(&a->stalled);
    }
}

/* Push to a flow; a full flow drops the job (counted by the flow). Returns 0 or CP2P_EFULL. */
static int flow_push(cp2p_artifact *a, cp2p_artifact_flow fl, job *j)
{
    int rc = cp2p__flow_push(a->flows[fl], j);
    if (rc != 0) {
        job_free(j);
    }
    return rc;
}

/* ---- output ---- */

static bool backlog_has(const cp2p_artifact *a, const cp2p_peer_id *p)
{
    for (uint32_t i = 0; i < a->n_backlog; i++) {
        if (cp2p_peer_id_equal(&a->backlog[i], p)) {
            return true;
        }
    }
    return false;
}

/* Hand the peer's frames to its framed queue, up to SEND_AHEAD_FRAMES waiting there; what is
 * left waits in the core's outbox (bounded) for the next tick or `writable`. */
static void send_frames(cp2p_artifact *a, const cp2p_peer_id *p)
{
    if (!cp2p_framed_peer_ready(a->fr, p)) {
        return; /* an early peer: its bytes wait for `up` */
    }
    while (cp2p_framed_queued(a->fr, p) < SEND_AHEAD_FRAMES &&
           cp2p__art_core_take_frame(a->core, p, &a->frame)) {
        int rc = cp2p_framed_send(a->fr, p, a->frame.ptr, a->frame.len);
        if (rc != 0) {
            ALOG(DEBUG, "artifact.send_failed frame of %zu bytes: %s", a->frame.len,
                 cp2p_strerror(rc));
        }
    }
    if (cp2p__art_core_queued(a->core, p) > 0 && !backlog_has(a, p) &&
        a->n_backlog < CP2P_ART_MAX_PEERS) {
        a->backlog[a->n_backlog++] = *p;
    }
}

static void retry_backlog(cp2p_artifact *a)
{
    uint32_t n = a->n_backlog;
    a->n_backlog = 0;
    cp2p_peer_id *tmp = cp2p_malloc((size_t)n * sizeof(*tmp) + 1);
    if (tmp == NULL) {
        a->n_backlog = n;
        return;
    }
    memcpy(tmp, a->backlog, (size_t)n * sizeof(*tmp));
    for (uint32_t i = 0; i < n; i++) {
        send_frames(a, &tmp[i]);
    }
    cp2p_free(tmp);
}

static void dispatch(cp2p_artifact *a, const cp2p__art_event *ev)
{
    job *j;
    switch (ev->kind) {
    case CP2P_ART_EV_SERVE:
        if ((j = job_new(a, JOB_SERVE)) == NULL) {
            cp2p__art_core_serve_fail(a->core, &ev->peer);
            return;
        }
        j->peer = ev->peer;
        memcpy(j->id, ev->id, ev->id_len);
        j->id_len = ev->id_len;
        j->index = ev->index;
        j->offset = ev->offset;
        j->len = ev->len;
        if (flow_push(a, CP2P_ARTIFACT_FLOW_REQUEST, j) != 0) {
            cp2p__art_core_serve_fail(a->core, &ev->peer);
        }
        break;
    case CP2P_ART_EV_COMPLETE:
        if ((j = job_new(a, JOB_STORE)) != NULL) {
            memcpy(j->id, ev->id, ev->id_len);
            j->id_len = ev->id_len;
            j->src = ev->data;
            j->len = (size_t)ev->size;
        }
        /* The chunk flow full (refusal counted by the flow): the job waits in `stalled`,
         * whose room is the core's fetch table, and is offered again as the flow drains. */
        if (j == NULL || ((cp2p__queue_len(&a->stalled) > 0 ||
                           cp2p__flow_push(a->flows[CP2P_ARTIFACT_FLOW_CHUNK], j) != 0) &&
                          cp2p__queue_push(&a->stalled, j) != 0)) {
            if (j != NULL) {
                job_free(j);
            }
            if (cp2p__art_core_stored(a->core, ev->id, ev->id_len, false, now_ms(a)) != 0) {
                ALOG(DEBUG, "artifact.store_dropped: no such fetch");
            }
        }
        break;
    case CP2P_ART_EV_RETRANS:
        if ((j = job_new(a, JOB_RETRANS)) != NULL) {
            j->peer = ev->peer;
            (void)flow_push(a, CP2P_ARTIFACT_FLOW_RETRANSMISSION, j);
        }
        break;
    default:
        break;
    }
}

/* After anything that fed the core: send its frames, hand its events to the flows (which may
 * feed the core again, hence the loop). */
static void pump(cp2p_artifact *a)
{
    if (a->in_pump) {
        return;
    }
    a->in_pump = true;
    bool more = true;
    while (more) {
        more = false;
        cp2p_peer_id p;
        while (cp2p__art_core_next_dirty(a->core, &p)) {
            send_frames(a, &p);
        }
        cp2p__art_event ev;
        while (cp2p__art_core_poll_event(a->core, &ev)) {
            dispatch(a, &ev);
            more = true;
        }
    }
    a->in_pump = false;
}

static void on_async(uv_async_t *h)
{
    cp2p_artifact *a = h->data;
    if (a == NULL) {
        return;
    }
    for (int i = 0; i < CP2P_ARTIFACT_FLOWS; i++) {
        (void)cp2p__flow_drain(a->flows[i], 0);
    }
    retry_stalled(a);
    pump(a);
}

/* ---- early peers: frames before `up` ---- */

static void early_remove(cp2p_artifact *a, const cp2p_peer_id *p)
{
    for (early_peer **e = &a->early; *e != NULL; e = &(*e)->next) {
        if (cp2p_peer_id_equal(&(*e)->id, p)) {
            early_peer *x = *e;
            *e = x->next;
            cp2p_free(x);
            return;
        }
    }
}

/* A peer that sent frames but lost its connection before it was ready: no `down` follows. */
static void early_sweep(cp2p_artifact *a)
{
    for (early_peer **e = &a->early; *e != NULL;) {
        if (cp2p_host_conn_to(a->h, &(*e)->id) == NULL) {
            early_peer *x = *e;
            *e = x->next;
            cp2p__art_core_peer_down(a->core, &x->id, now_ms(a));
            cp2p_free(x);
        } else {
            e = &(*e)->next;
        }
    }
}

/* ---- framed callbacks ---- */

static void fr_up(cp2p_framed *f, const cp2p_peer_id *peer, const char *protocol, void *ud)
{
    cp2p_artifact *a = ud;
    (void)f;
    (void)protocol;
    early_remove(a, peer);
    int rc = cp2p__art_core_peer_up(a->core, peer, now_ms(a));
    if (rc == 0) {
        job *j = job_new(a, JOB_PEER);
        if (j != NULL) {
            j->peer = *peer;
            j->up = true;
            (void)flow_push(a, CP2P_ARTIFACT_FLOW_TRANSPORT, j);
        }
    }
    send_frames(a, peer); /* what waited for the stream (e.g. an early peer's answers) */
    pump(a);
}

static void fr_down(cp2p_framed *f, const cp2p_peer_id *peer, int err, void *ud)
{
    cp2p_artifact *a = ud;
    (void)f;
    (void)err;
    cp2p__art_core_peer_down(a->core, peer, now_ms(a));
    job *j = job_new(a, JOB_PEER);
    if (j != NULL) {
        j->peer = *peer;
        (void)flow_push(a, CP2P_ARTIFACT_FLOW_TRANSPORT, j);
    }
    pump(a);
}

static int fr_frame(cp2p_framed *f, const cp2p_peer_id *peer, const char *protocol,
                    const uint8_t *data, size_t len, void *ud)
{
    cp2p_artifact *a = ud;
    const char *why = NULL;
    (void)f;
    (void)protocol;
    if (!cp2p_framed_peer_ready(a->fr, peer) &&
        cp2p__art_core_peer_up(a->core, peer, now_ms(a)) == 0) {
        early_peer *e = cp2p_calloc(1, sizeof(*e));
        if (e != NULL) {
            e->id = *peer;
            e->next = a->early;
            a->early = e;
        }
    }
    int rc = cp2p__art_core_recv(a->core, peer, data, len, now_ms(a), &why);
    if (rc != 0) {
        char ps[CP2P_PEER_ID_STR_MAX];
        ALOG(INFO, "artifact.bad_frame from %s: %s", cp2p_peer_id_str(peer, ps),
             why != NULL ? why : cp2p_strerror(rc));
    }
    pump(a);
    return rc;
}

static void fr_writable(cp2p_framed *f, const cp2p_peer_id *peer, void *ud)
{
    cp2p_artifact *a = ud;
    (void)f;
    send_frames(a, peer);
}

static void teardown(cp2p_artifact *a);

static void fr_closing(cp2p_framed *f, void *ud)
{
    cp2p_artifact *a = ud;
    (void)f;
    void (*closed)(void *) = a->cfg.pool.closed;
    void *pud = a->cfg.pool_ud;
    a->fr = NULL; /* the helper frees itself */
    teardown(a);
    if (closed != NULL) {
        closed(pud);
    }
}

/* ---- the gossip timer ---- */

static void on_tick(uv_timer_t *t)
{
    cp2p_artifact *a = t->data;
    early_sweep(a);
    cp2p__art_core_tick(a->core, now_ms(a));
    retry_backlog(a);
    pump(a);
}

/* ---- lifecycle ---- */

static const cp2p__art_config *core_cfg_of(const cp2p_artifact *a, cp2p__art_config *c)
{
    cp2p__art_config_default(c);
    c->chunk_size = a->cfg.chunk_size;
    c->push_threshold = a->cfg.push_threshold;
    c->push_tree = !a->cfg.push_to_all;
    c->max_size = a->cfg.max_size;
    c->chunk_timeout_ms = a->cfg.chunk_timeout_ms;
    c->max_adverts_per_peer = a->cfg.max_adverts_per_peer;
    c->max_later = a->cfg.max_adverts_per_peer;
    c->max_held = a->cfg.max_held;
    c->id_sha256 = a->cfg.id_sha256;
    c->id_fn = a->cfg.id_fn;
    c->id_ud = a->cfg.id_ud;
    if (c->max_fetch_bytes < c->max_size) {
        c->max_fetch_bytes = c->max_size;
    }
    return c;
}

static cp2p__art_verdict bouncer_adapter(const uint8_t *id, size_t id_len, uint64_t size,
                                         const cp2p__art_attr *attrs, size_t n_attrs, void *ud)
{
    cp2p_artifact *a = ud;
    /* cp2p__art_attr and cp2p_artifact_attr are the same two slices. */
    switch (a->cfg.pool.bouncer(id, id_len, size, (const cp2p_artifact_attr *)(const void *)attrs,
                                n_attrs, a->cfg.pool_ud)) {
    case CP2P_ARTIFACT_WANTED:
        return CP2P__ART_WANTED;
    case CP2P_ARTIFACT_LATER:
        return CP2P__ART_LATER;
    default:
        return CP2P__ART_UNWANTED;
    }
}

_Static_assert(sizeof(cp2p__art_attr) == sizeof(cp2p_artifact_attr), "attribute layouts");
_Static_assert(offsetof(cp2p__art_attr, value) == offsetof(cp2p_artifact_attr, value),
               "attribute layouts");

void cp2p_artifact_config_default(cp2p_artifact_config *cfg)
{
    static const uint32_t queues[CP2P_ARTIFACT_FLOWS] = {100000, 100, 100, 1000, 1000};
    *cfg = (cp2p_artifact_config){
        .chunk_size = CP2P_ART_CHUNK_SIZE,
        .push_threshold = CP2P_ART_PUSH_THRESHOLD,
        .max_size = CP2P_ART_MAX_SIZE,
        .chunk_timeout_ms = CP2P_ART_CHUNK_TIMEOUT_MS,
        .tick_ms = CP2P_ART_TICK_MS,
        .max_adverts_per_peer = CP2P_ART_MAX_ADVERTS_PER_PEER,
        .max_held = CP2P_ART_MAX_HELD,
        .broadcaster_max = 1000,
        .id_sha256 = true,
    };
    for (int i = 0; i < CP2P_ARTIFACT_FLOWS; i++) {
        cfg->flows[i] = (cp2p_artifact_flow_config){queues[i], 1, 4};
    }
}

static void on_handle_closed(uv_handle_t *h)
{
    cp2p_free(h);
}

static void release_bcast(void *it, void *ud)
{
    (void)ud;
    job_free(it);
}

/* Everything but the framed helper (closed by the caller, or freeing itself). */
static void teardown(cp2p_artifact *a)
{
    /* Workers first (a blocked callback blocks this): then nothing touches the core. */
    for (int i = 0; i < CP2P_ARTIFACT_FLOWS; i++) {
        cp2p__flow_free(a->flows[i]);
    }
    if (a->timer != NULL) {
        uv_timer_stop(a->timer);
        uv_close((uv_handle_t *)a->timer, on_handle_closed);
    }
    if (a->async != NULL) {
        a->async->data = NULL;
        uv_close((uv_handle_t *)a->async, on_handle_closed);
    }
    while (a->early != NULL) {
        early_peer *e = a->early;
        a->early = e->next;
        cp2p_free(e);
    }
    cp2p__queue_fini(&a->bcast, release_bcast, NULL);
    cp2p__queue_fini(&a->stalled, release_bcast, NULL);
    cp2p__art_core_free(a->core);
    cp2p_buf_fini(&a->frame);
    cp2p_free(a->backlog);
    cp2p__artifact_metrics_free(a->metrics);
    cp2p_free(a);
}

int cp2p_artifact_new(cp2p_host *h, const cp2p_artifact_config *cfg, cp2p_artifact **out)
{
    if (h == NULL || cfg == NULL || out == NULL || cfg->pool.serve == NULL ||
        cfg->pool.store == NULL || cfg->tick_ms == 0 || cfg->broadcaster_max == 0) {
        return CP2P_EINVAL;
    }
    for (int i = 0; i < CP2P_ARTIFACT_FLOWS; i++) {
        if (cfg->flows[i].queue == 0 || cfg->flows[i].workers == 0 ||
            cfg->flows[i].inflight == 0) {
            return CP2P_EINVAL;
        }
    }
    cp2p_artifact *a = cp2p_calloc(1, sizeof(*a));
    if (a == NULL) {
        return CP2P_ENOMEM;
    }
    a->h = h;
    a->cfg = *cfg;
    cp2p_buf_init(&a->frame, CP2P_ART_MAX_FRAME);
    cp2p__art_config cc;
    core_cfg_of(a, &cc);
    if (cfg->pool.bouncer != NULL) {
        cc.bouncer = bouncer_adapter;
        cc.bouncer_ud = a;
    }
    int rc;
    if ((rc = cp2p__art_core_new(&cc, uv_now(cp2p_host_loop(h)), &a->core)) != 0 ||
        (rc = cp2p__queue_init(&a->bcast, cfg->broadcaster_max, CP2P_QUEUE_REJECT, NULL,
                               NULL)) != 0 ||
        (rc = cp2p__queue_init(&a->stalled, cc.max_fetches + cc.max_small_fetches + 1,
                               CP2P_QUEUE_REJECT, NULL,
                               NULL)) != 0) {
        goto fail;
    }
    a->backlog = cp2p_calloc(CP2P_ART_MAX_PEERS, sizeof(*a->backlog));
    a->async = cp2p_calloc(1, sizeof(*a->async));
    a->timer = cp2p_calloc(1, sizeof(*a->timer));
    bool allocated = a->backlog != NULL && a->async != NULL && a->timer != NULL;
    if (!allocated || uv_async_init(cp2p_host_loop(h), a->async, on_async) != 0) {
        cp2p_free(a->async); /* never initialised as handles: plain memory */
        cp2p_free(a->timer);
        a->async = NULL;
        a->timer = NULL;
        rc = allocated ? CP2P_EIO : CP2P_ENOMEM;
        goto fail;
    }
    a->async->data = a;
    (void)uv_timer_init(cp2p_host_loop(h), a->timer);
    a->timer->data = a;
    static const char *const names[CP2P_ARTIFACT_FLOWS] = {"advert", "request", "chunk",
                                                           "retransmission", "transport"};
    for (int i = 0; i < CP2P_ARTIFACT_FLOWS; i++) {
        cp2p__flow_config fc = {.name = names[i], .queue_cap = cfg->flows[i].queue,
                                .workers = cfg->flows[i].workers,
                                .max_inflight = cfg->flows[i].inflight, .work = job_work,
                                .done = job_done, .drop = job_drop, .wake = job_wake, .ud = a};
        if ((rc = cp2p__flow_new(&fc, &a->flows[i])) != 0) {
            goto fail;
        }
    }
    static const char *const protos[] = {CP2P_ARTIFACT_PROTOCOL};
    cp2p_framed_config fc;
    cp2p_framed_config_default(&fc);
    fc.name = "artifact";
    fc.protocols = protos;
    fc.n_protocols = 1;
    fc.max_frame = CP2P_ART_MAX_FRAME;
    fc.max_queue_frames = 2 * SEND_AHEAD_FRAMES;
    fc.max_queue_bytes = FRAMED_QUEUE_BYTES;
    fc.up = fr_up;
    fc.down = fr_down;
    fc.frame = fr_frame;
    fc.writable = fr_writable;
    fc.closing = fr_closing;
    if ((rc = cp2p_framed_new(h, &fc, a, &a->fr)) != 0) {
        goto fail;
    }
    *out = a;
    return 0;
fail:
    teardown(a);
    return rc;
}

int cp2p_artifact_start(cp2p_artifact *a)
{
    if (a->started) {
        return CP2P_ESTATE;
    }
    a->started = true;
    /* The advert broadcaster lets go of what it held. */
    job *j;
    while ((j = cp2p__queue_pop(&a->bcast)) != NULL) {
        if (flow_push(a, CP2P_ARTIFACT_FLOW_ADVERT, j) != 0) {
            a->bcast_dropped++;
        }
    }
    uv_timer_start(a->timer, on_tick, a->cfg.tick_ms, a->cfg.tick_ms);
    return 0;
}

void cp2p_artifact_close(cp2p_artifact *a)
{
    if (a == NULL) {
        return;
    }
    cp2p_framed *fr = a->fr;
    a->fr = NULL;
    cp2p_framed_close(fr); /* first: no framed callback reaches `a` after this */
    teardown(a);
}

int cp2p_artifact_publish(cp2p_artifact *a, const uint8_t *id, size_t id_len,
                          const uint8_t *data, size_t len, const cp2p_artifact_attr *attrs,
                          size_t n_attrs, cp2p_artifact_publish_cb cb, void *ud)
{
    if (data == NULL || len == 0 || len > a->cfg.max_size || n_attrs > CP2P_ART_MAX_ATTRS ||
        (id != NULL && (id_len == 0 || id_len > CP2P_ART_MAX_ID))) {
        return CP2P_EINVAL;
    }
    job *j = job_new(a, JOB_PUBLISH);
    if (j == NULL) {
        return CP2P_ENOMEM;
    }
    if (id != NULL) {
        memcpy(j->id, id, id_len);
        j->id_len = id_len;
        j->has_id = true;
    }
    size_t attr_bytes = 0;
    for (size_t i = 0; i < n_attrs; i++) {
        attr_bytes += attrs[i].key.len + attrs[i].value.len;
    }
    j->data = cp2p__memdup(data, len);
    j->attrs = n_attrs > 0 ? cp2p_malloc(n_attrs * sizeof(cp2p__art_attr) + attr_bytes) : NULL;
    if (j->data == NULL || (n_attrs > 0 && j->attrs == NULL)) {
        job_free(j);
        return CP2P_ENOMEM;
    }
    uint8_t *p = (uint8_t *)(j->attrs + n_attrs);
    for (size_t i = 0; i < n_attrs; i++) {
        memcpy(p, attrs[i].key.ptr, attrs[i].key.len);
        j->attrs[i].key = (cp2p_slice){p, attrs[i].key.len};
        p += attrs[i].key.len;
        if (attrs[i].value.len > 0) {
            memcpy(p, attrs[i].value.ptr, attrs[i].value.len);
        }
        j->attrs[i].value = (cp2p_slice){p, attrs[i].value.len};
        p += attrs[i].value.len;
    }
    j->n_attrs = n_attrs;
    j->len = len;
    j->cb = cb;
    j->cb_ud = ud;
    if (!a->started) {
        if (cp2p__queue_push(&a->bcast, j) != 0) {
            a->bcast_dropped++;
            job_free(j);
            return CP2P_EFULL;
        }
        return 0;
    }
    return flow_push(a, CP2P_ARTIFACT_FLOW_ADVERT, j);
}

int cp2p_artifact_purge(cp2p_artifact *a, const uint8_t *id, size_t id_len)
{
    int rc = cp2p__art_core_purge(a->core, id, id_len);
    if (rc != 0) {
        return rc;
    }
    job *j = job_new(a, JOB_PURGE);
    if (j != NULL) {
        memcpy(j->id, id, id_len);
        j->id_len = id_len;
        (void)flow_push(a, CP2P_ARTIFACT_FLOW_ADVERT, j);
    }
    return 0;
}

bool cp2p_artifact_holds(const cp2p_artifact *a, const uint8_t *id, size_t id_len)
{
    return cp2p__art_core_holds(a->core, id, id_len);
}

int cp2p_artifact_progress(const cp2p_artifact *a, const uint8_t *id, size_t id_len,
                           uint32_t *done, uint32_t *total, uint32_t *peers)
{
    return cp2p__art_core_progress(a->core, id, id_len, done, total, peers);
}

void cp2p_artifact_stats_get(cp2p_artifact *a, cp2p_artifact_stats *out)
{
    cp2p__art_stats s;
    cp2p__art_core_stats(a->core, &s);
    *out = (cp2p_artifact_stats){
        .held = s.held, .fetching = s.fetching, .peers = s.peers,
        .published = s.artifacts_published, .stored = s.artifacts_stored,
        .rejected = s.artifacts_rejected, .adverts_received = s.adverts_received,
        .adverts_evicted = s.adverts_evicted, .pushes_received = s.pushes_received,
        .pushes_dup = s.pushes_dup, .adverts_lazy = s.adverts_lazy, .prunes_sent = s.prunes_sent,
        .prunes_received = s.prunes_received, .grafts = s.grafts, .small_pulled = s.small_pulled,
        .chunks_requested = s.chunks_requested, .chunks_received = s.chunks_received,
        .chunks_corrupt = s.chunks_corrupt, .chunks_timeout = s.chunks_timeout,
        .chunks_served = s.chunks_served, .requests_dropped = s.requests_dropped,
        .retrans_limited = s.retrans_limited, .outbox_dropped = s.outbox_dropped,
        .frames_malformed = s.frames_malformed, .fetches_bad_whole = s.fetches_bad_whole,
        .peers_banned = s.peers_banned, .partial_adverts_sent = s.partial_adverts_sent,
        .partial_adverts_received = s.partial_adverts_received, .haves_sent = s.haves_sent,
        .haves_received = s.haves_received, .chunks_served_partial = s.chunks_served_partial,
        .broadcaster_held = cp2p__queue_len(&a->bcast),
        .broadcaster_dropped = a->bcast_dropped,
    };
    if (a->fr != NULL) {
        cp2p_framed_stats fs;
        cp2p_framed_stats_get(a->fr, &fs);
        out->frames_sent = fs.frames_sent;
        out->bytes_sent = fs.bytes_sent;
        out->frames_received = fs.frames_received;
        out->bytes_received = fs.bytes_received;
    }
    for (int i = 0; i < CP2P_ARTIFACT_FLOWS; i++) {
        cp2p__flow_stats f;
        cp2p__flow_stats_get(a->flows[i], &f);
        out->flows[i] = (cp2p_artifact_flow_stats){f.queued, f.inflight, f.processed,
                                                   f.dropped, f.latency_ns_sum,
                                                   f.latency_ns_max};
    }
}

cp2p__artifact_metrics **cp2p__artifact_metrics_slot(cp2p_artifact *a)
{
    return &a->metrics;
}
