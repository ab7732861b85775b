/* Gossipsub on the host (see cp2p/pubsub.h): the binding that drives the sans-I/O router
 * (gs_router.h) with streams and timers. Its streams are framed links (cp2p/framed.h), a
 * service of the host: peers whose identify lists a pubsub protocol become ready and get one
 * outbound stream (write only, reopened with backoff if it dies), the peer's inbound streams
 * are read frame by frame into the router, and the host closes it when it closes first.
 *
 * A peer joins the router when our stream to it is up, or with its first frame if that comes
 * first (it opened its stream before our identify of it completed). The router coalesces what
 * it has for a peer; we take its
 * frames once per loop turn (a 0 ms timer, or coalesce_ms) and write them, so a burst of work
 * in one turn costs one write per peer. A peer whose outbound stream holds more than
 * CP2P_GS_STREAM_BACKLOG bytes gets nothing more until it drains: the router's bounded outbox
 * then drops and counts. */
#include <assert.h>
#include <string.h>

#include <sodium.h>

#include <cp2p/codec.h>
#include <cp2p/framed.h>
#include <cp2p/pubsub.h>

#include "crypto/peer_record.h"
#include "protocols/gossipsub/gs_router.h"
#include "util/alloc.h"
#include "util/clock.h"
#include "util/limits.h"
#include "util/log_internal.h"

#define GLOG(lvl, ...) CP2P_LOG(CP2P_LOG_##lvl, "gossipsub", 0, __VA_ARGS__)

static const char *const PROTOS[] = {CP2P_GOSSIPSUB_1_2, CP2P_GOSSIPSUB_1_1, CP2P_GOSSIPSUB_1_0,
                                     CP2P_FLOODSUB};

typedef struct ps_peer ps_peer;

struct ps_peer {
    ps_peer *next;
    cp2p_peer_id id;
    bool added;           /* known to the router */
    bool early;           /* added from a frame before the peer was ready: dropped by the
                           * heartbeat if its connection goes before it becomes ready */
    cp2p__gs_proto proto;
    int meshes;           /* topics whose mesh holds this peer (connection tag) */
};

typedef struct sub {
    struct sub *next;
    char *topic;
    cp2p_pubsub_handler cb;
    void *ud;
} sub;

struct cp2p_pubsub {
    cp2p_host *h;
    cp2p_framed *fr;        /* NULL once the host closed it */
    cp2p_pubsub_config cfg;
    cp2p__gs_router *r;
    ps_peer *peers;
    size_t npeers;
    sub *subs;
    cp2p_pubsub_validator validator;
    void *validator_ud;
    cp2p_pubsub_async_validator avalidator;
    void *avalidator_ud;
    bool delivering;        /* inside deliver_events: nested calls leave events to it */
    uv_timer_t *heartbeat;  /* heap: freed by its close callback */
    uv_timer_t *flush;
    bool flush_armed;
    cp2p_buf frame;
    cp2p_pubsub_stats stats;
    cp2p__gs_score_params score;
    cp2p__gs_topic_score_params *topic_params;
    cp2p__gs_score_thresholds thresholds;
};

static uint64_t ps_now(const cp2p_pubsub *ps)
{
    return uv_now(cp2p_host_loop(ps->h));
}

static uint64_t ps_rand(void *ud)
{
    (void)ud;
    uint64_t v;
    randombytes_buf(&v, sizeof(v));
    return v;
}

void cp2p_pubsub_config_default(cp2p_pubsub_config *c)
{
    *c = (cp2p_pubsub_config){
        .d = CP2P_GS_D,
        .d_lo = CP2P_GS_D_LO,
        .d_hi = CP2P_GS_D_HI,
        .d_lazy = CP2P_GS_D_LAZY,
        .d_score = CP2P_GS_D_SCORE,
        .d_out = CP2P_GS_D_OUT,
        .heartbeat_ms = CP2P_GS_HEARTBEAT_MS,
        .max_rpc_size = CP2P_GS_MAX_RPC_SIZE,
        .idontwant_threshold = CP2P_GS_IDONTWANT_THRESHOLD,
    };
}

static ps_peer *peer_find(cp2p_pubsub *ps, const cp2p_peer_id *id)
{
    for (ps_peer *p = ps->peers; p != NULL; p = p->next) {
        if (cp2p_peer_id_equal(&p->id, id)) {
            return p;
        }
    }
    return NULL;
}

static ps_peer *peer_get(cp2p_pubsub *ps, const cp2p_peer_id *id)
{
    ps_peer *p = peer_find(ps, id);
    if (p != NULL) {
        return p;
    }
    if (ps->npeers >= CP2P_GS_MAX_PEERS || (p = cp2p_calloc(1, sizeof(*p))) == NULL) {
        return NULL;
    }
    p->id = *id;
    p->next = ps->peers;
    ps->peers = p;
    ps->npeers++;
    return p;
}

static cp2p__gs_proto proto_of(const char *name)
{
    for (size_t i = 0; i < 4; i++) {
        if (strcmp(name, PROTOS[i]) == 0) {
            return (cp2p__gs_proto)i;
        }
    }
    return CP2P_GS_FLOODSUB;
}

/* The router learns of the peer once a stream with it is up (`protocol` is that stream's); ip
 * for score P6 (loopback exempt: a local test network shares one address). */
static void peer_add_router(cp2p_pubsub *ps, ps_peer *p, const char *protocol)
{
    char ip[64] = {0};
    const char *ipp = NULL;
    if (p->added) {
        return;
    }
    cp2p_conn *c = cp2p_host_conn_to(ps->h, &p->id);
    p->proto = proto_of(protocol);
    const cp2p_multiaddr *ra = c != NULL ? cp2p_conn_remote_addr(c) : NULL;
    if (ra != NULL) {
        cp2p_multiaddr_component comp;
        cp2p_buf b;
        if (cp2p_multiaddr_component_at(ra, 0, &comp) == 0 &&
            (comp.code == CP2P_MA_IP4 || comp.code == CP2P_MA_IP6)) {
            cp2p_buf_init(&b, sizeof(ip) - 1);
            if (cp2p_multiaddr_component_value_string(&comp, &b) == 0 && b.len < sizeof(ip)) {
                memcpy(ip, b.ptr, b.len);
                if (strncmp(ip, "127.", 4) != 0 && strcmp(ip, "::1") != 0) {
                    ipp = ip;
                }
            }
            cp2p_buf_fini(&b);
        }
    }
    int rc = cp2p__gs_add_peer(ps->r, &p->id, p->proto, c != NULL && cp2p_conn_is_outbound(c),
                               ipp, ps_now(ps));
    p->added = rc == 0 || rc == CP2P_ESTATE;
}

static void peer_free(cp2p_pubsub *ps, ps_peer *p)
{
    for (ps_peer **pp = &ps->peers; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    }
    ps->npeers--;
    cp2p_free(p);
}

/* The peer is gone: the router forgets it. */
static void peer_drop(cp2p_pubsub *ps, ps_peer *p)
{
    if (p->added) {
        cp2p__gs_remove_peer(ps->r, &p->id, ps_now(ps));
    }
    peer_free(ps, p);
}

/* ---- output ---- */

static void schedule_flush(cp2p_pubsub *ps);

static void flush_now(cp2p_pubsub *ps)
{
    cp2p_peer_id id;
    size_t guard = ps->npeers + 1;
    if (ps->fr == NULL) {
        return;
    }
    while (guard-- > 0 && cp2p__gs_next_dirty_peer(ps->r, &id)) {
        /* No stream yet, or a slow peer whose stream holds CP2P_GS_STREAM_BACKLOG: leave its
         * frames in the router's outbox (bounded: it drops and counts). */
        while (cp2p_framed_can_send(ps->fr, &id)) {
            cp2p_buf_reset(&ps->frame);
            ptrdiff_t n = cp2p__gs_take_rpc(ps->r, &id, &ps->frame);
            if (n <= 0) {
                break;
            }
            int rc = cp2p_framed_send(ps->fr, &id, ps->frame.ptr, (size_t)n);
            if (rc != 0) {
                GLOG(DEBUG, "gossipsub.write_failed: %s, frame lost", cp2p_strerror(rc));
                break;
            }
            uint8_t pre[CP2P_UVARINT_MAX];
            ps->stats.frames_out++;
            ps->stats.bytes_out += cp2p_uvarint_encode(pre, (uint64_t)n) + (size_t)n;
        }
    }
}

static void deliver_events(cp2p_pubsub *ps);

static void on_flush(uv_timer_t *t)
{
    cp2p_pubsub *ps = t->data;
    ps->flush_armed = false;
    deliver_events(ps);
    flush_now(ps);
}

static void schedule_flush(cp2p_pubsub *ps)
{
    if (!ps->flush_armed) {
        ps->flush_armed = true;
        uv_timer_start(ps->flush, on_flush, ps->cfg.coalesce_ms, 0);
    }
}

/* ---- events from the router ---- */

static sub *sub_find(const cp2p_pubsub *ps, const char *topic)
{
    for (sub *s = ps->subs; s != NULL; s = s->next) {
        if (strcmp(s->topic, topic) == 0) {
            return s;
        }
    }
    return NULL;
}

static void on_px(cp2p_host *h, int status, cp2p_conn *c, void *ud)
{
    (void)h, (void)status, (void)c, (void)ud;
}

/* The public view of a DELIVER / VALIDATE event; from is storage for m->from. */
static cp2p_pubsub_msg event_msg(const cp2p__gs_event *ev, cp2p_peer_id *from)
{
    bool has_from =
        ev->from.len > 0 && cp2p_peer_id_from_bytes(ev->from.ptr, ev->from.len, from) == 0;
    return (cp2p_pubsub_msg){.topic = ev->topic,
                             .data = ev->data.ptr,
                             .len = ev->data.len,
                             .from = has_from ? from : NULL,
                             .via = &ev->peer,
                             .seqno = ev->seqno.ptr,
                             .seqno_len = ev->seqno.len,
                             .id = ev->msg_id.ptr,
                             .id_len = ev->msg_id.len};
}

/* PX: the signed peer record (RFC 0003) of a suggested peer says where it listens. Its
 * addresses go to the peerstore as IDENTIFY ones: like identify's listenAddrs they are the
 * peer's own claim, here authenticated by its key, which a DHT entry (someone else's unsigned
 * claim) is not. The TTL is short (CP2P_GS_PX_ADDR_TTL_MS, as go-libp2p-pubsub): the PRUNE's
 * sender may relay an old record. Addresses are filtered as identify filters listenAddrs: one
 * naming another peer (/p2p/...) is skipped, a trailing /p2p of the peer itself removed. */
static void px_learn(cp2p_pubsub *ps, const cp2p_peer_id *peer, cp2p_slice record)
{
    cp2p__peer_record rec;
    int rc = cp2p__peer_record_open(record.ptr, record.len, &rec);
    if (rc == 0 && !cp2p_peer_id_equal(&rec.peer, peer)) {
        rc = CP2P_EPEERID;
    }
    if (rc != 0) {
        if (rc != CP2P_ENOMEM) {
            ps->stats.px_records_bad++;
            char ids[CP2P_PEER_ID_STR_MAX];
            GLOG(DEBUG, "gossipsub.px_bad_record peer=%s err=%s", cp2p_peer_id_str(peer, ids),
                 cp2p_strerror(rc));
        }
        cp2p__peer_record_fini(&rec);
        return;
    }
    ps->stats.px_records_ok++;
    uint64_t p2p_code = 0;
    (void)!cp2p_multiaddr_protocol_code("p2p", 3, &p2p_code);
    cp2p_multiaddr *addrs[CP2P_PEER_RECORD_MAX_ADDRS];
    size_t n = 0;
    for (size_t i = 0; i < rec.n_addrs; i++) {
        cp2p_peer_id other;
        if (cp2p_multiaddr_peer_id(rec.addrs[i], &other) == 0 &&
            !cp2p_peer_id_equal(&other, peer)) {
            continue;
        }
        if (cp2p_multiaddr_decapsulate_code(rec.addrs[i], p2p_code, &addrs[n]) != 0) {
            continue;
        }
        if (cp2p_multiaddr_count(addrs[n]) == 0) { /* it was only /p2p/<peer> */
            cp2p_multiaddr_free(addrs[n]);
            continue;
        }
        n++;
    }
    if (n > 0) {
        (void)!cp2p_peerstore_add_addrs(cp2p_host_peerstore(ps->h), peer,
                                        (const cp2p_multiaddr *const *)addrs, n,
                                        CP2P_GS_PX_ADDR_TTL_MS, CP2P_ADDR_SOURCE_IDENTIFY,
                                        cp2p__wall_ms());
    }
    for (size_t i = 0; i < n; i++) {
        cp2p_multiaddr_free(addrs[i]);
    }
    cp2p__peer_record_fini(&rec);
}

static void deliver_events(cp2p_pubsub *ps)
{
    cp2p__gs_event ev;
    /* Not reentrant: a validation_result called from a callback below only queues more events,
     * which this loop then drains (no recursion, however many the application answers). */
    if (ps->delivering) {
        return;
    }
    ps->delivering = true;
    while (cp2p__gs_poll_event(ps->r, &ev)) {
        switch (ev.kind) {
        case CP2P_GS_EV_DELIVER: {
            sub *s = sub_find(ps, ev.topic);
            if (s != NULL && s->cb != NULL) {
                cp2p_peer_id from;
                cp2p_pubsub_msg m = event_msg(&ev, &from);
                s->cb(ps, &m, s->ud);
            }
            break;
        }
        case CP2P_GS_EV_PEER_TAG: {
            ps_peer *p = peer_find(ps, &ev.peer);
            if (p != NULL) {
                p->meshes += ev.joined ? 1 : -1;
                if (p->meshes < 0) {
                    p->meshes = 0;
                }
                cp2p_conn *c = cp2p_host_conn_to(ps->h, &p->id);
                if (c != NULL) {
                    /* Mesh peers are worth keeping when the connection manager trims. */
                    cp2p_conn_set_tag(c, p->meshes > 0 ? CP2P_GS_MESH_TAG : 0);
                }
            }
            break;
        }
        case CP2P_GS_EV_PX:
            /* Dial a suggested peer when we know where it is: the addresses of its signed
             * peer record, if the PRUNE carried one, join what the peerstore already has. */
            if (ev.record.len > 0) {
                px_learn(ps, &ev.peer, ev.record);
            }
            if (cp2p_host_conn_to(ps->h, &ev.peer) == NULL &&
                cp2p_host_dial_peer(ps->h, &ev.peer, on_px, NULL) == 0) {
                ps->stats.px_dials++;
            }
            break;
        case CP2P_GS_EV_VALIDATE:
            if (ps->avalidator != NULL) {
                cp2p_peer_id from;
                cp2p_pubsub_msg m = event_msg(&ev, &from);
                ps->avalidator(ps, &m, ev.token, ps->avalidator_ud);
            } else {
                /* No async validator set: accept, as the sync path does without one. */
                (void)!cp2p__gs_validation_result(ps->r, ev.token, CP2P_GS_ACCEPT, ps_now(ps));
            }
            break;
        }
        cp2p__gs_event_fini(&ev);
    }
    ps->delivering = false;
}

/* After any router call: events now, frames at the end of this loop turn. */
static void after_router(cp2p_pubsub *ps)
{
    deliver_events(ps);
    if (ps->cfg.no_coalesce) {
        flush_now(ps);
    } else {
        schedule_flush(ps);
    }
}

/* ---- framed links ---- */

static int fr_frame(cp2p_framed *f, const cp2p_peer_id *peer, const char *protocol,
                    const uint8_t *data, size_t len, void *ud)
{
    cp2p_pubsub *ps = ud;
    ps_peer *p = peer_get(ps, peer);
    if (p == NULL) {
        ps->stats.rpcs_refused++;
        return CP2P_ELIMIT;
    }
    if (!p->added) {
        p->early = !cp2p_framed_peer_ready(f, peer);
        peer_add_router(ps, p, protocol);
    }
    int rc = cp2p__gs_on_rpc(ps->r, &p->id, data, len, ps_now(ps));
    after_router(ps);
    if (rc == CP2P_EPROTO || rc == CP2P_ELIMIT) {
        /* Counted by the router (its rpcs_refused is added in cp2p_pubsub_stats_get); the
         * helper resets the stream. */
        GLOG(INFO, "gossipsub.bad_rpc: %s, stream reset", cp2p_strerror(rc));
        return rc;
    }
    return 0;
}

/* Our stream to the peer is up: it joins the router, which sends our subscriptions. */
static void fr_up(cp2p_framed *f, const cp2p_peer_id *peer, const char *protocol, void *ud)
{
    cp2p_pubsub *ps = ud;
    (void)f;
    ps_peer *p = peer_get(ps, peer);
    if (p != NULL) {
        p->early = false;
        peer_add_router(ps, p, protocol);
        after_router(ps);
    }
}

/* Its last connection closed, or it stopped announcing pubsub. */
static void fr_down(cp2p_framed *f, const cp2p_peer_id *peer, int err, void *ud)
{
    cp2p_pubsub *ps = ud;
    (void)f;
    (void)err;
    ps_peer *p = peer_find(ps, peer);
    if (p != NULL) {
        peer_drop(ps, p);
        after_router(ps);
    }
}

static void pubsub_free(cp2p_pubsub *ps);

/* The host closes: last frames go out (its connections are still up), then we are done. */
static void fr_closing(cp2p_framed *f, void *ud)
{
    cp2p_pubsub *ps = ud;
    (void)f;
    flush_now(ps);
    ps->fr = NULL;
    pubsub_free(ps);
}

/* ---- timers ---- */

static void on_heartbeat(uv_timer_t *t)
{
    cp2p_pubsub *ps = t->data;
    /* A peer that sent frames before it was ready and lost its connection before: no `down`
     * follows it, so it goes here. */
    for (ps_peer *p = ps->peers, *next; p != NULL; p = next) {
        next = p->next;
        if (p->early && cp2p_host_conn_to(ps->h, &p->id) == NULL) {
            peer_drop(ps, p);
        }
    }
    cp2p__gs_heartbeat(ps->r, ps_now(ps));
    after_router(ps);
}

static void on_timer_closed(uv_handle_t *t)
{
    cp2p_free(t);
}

/* ---- message IDs and validation through the public types ---- */

static int msg_id_adapter(void *ud, const cp2p__gs_msg *m, cp2p_buf *out)
{
    cp2p_pubsub *ps = ud;
    uint8_t id[64];
    int n = ps->cfg.msg_id(ps->cfg.msg_id_ud, m->topic, m->from.ptr, m->from.len, m->seqno.ptr,
                           m->seqno.len, m->data.ptr, m->data.len, id);
    if (n < 0) {
        return n;
    }
    if (n == 0 || n > 64) {
        return CP2P_EINVAL;
    }
    return cp2p_buf_append(out, id, (size_t)n);
}

/* Verdicts cross the API boundary by cast. */
static_assert(CP2P_PUBSUB_ACCEPT == (int)CP2P_GS_ACCEPT &&
                  CP2P_PUBSUB_REJECT == (int)CP2P_GS_REJECT &&
                  CP2P_PUBSUB_IGNORE == (int)CP2P_GS_IGNORE,
              "verdict values");

static cp2p__gs_verdict validator_adapter(void *ud, const char *topic, const cp2p_peer_id *from,
                                          const uint8_t *data, size_t len)
{
    cp2p_pubsub *ps = ud;
    if (ps->validator == NULL) {
        return CP2P_GS_ACCEPT;
    }
    cp2p_pubsub_msg m = {.topic = topic, .data = data, .len = len, .from = from};
    return (cp2p__gs_verdict)ps->validator(ps, &m, ps->validator_ud);
}

/* cp2p's default scoring (documented in docs/ARCHITECTURE.md): mild P1-P3 rewards and
 * penalties on the scored topics, P4 strong, P6/P7 for every peer. */
static int score_setup(cp2p_pubsub *ps, cp2p__gs_config *gc)
{
    size_t n = ps->cfg.n_scored_topics;
    ps->topic_params = n ? cp2p_calloc(n, sizeof(*ps->topic_params)) : NULL;
    if (n && ps->topic_params == NULL) {
        return CP2P_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        ps->topic_params[i] = (cp2p__gs_topic_score_params){
            .topic_weight = 1.0,
            .time_in_mesh_weight = 0.01,
            .time_in_mesh_quantum_ms = 1000,
            .time_in_mesh_cap = 3600,
            .first_message_deliveries_weight = 1.0,
            .first_message_deliveries_decay = 0.5,
            .first_message_deliveries_cap = 100,
            .invalid_message_deliveries_weight = -100.0,
            .invalid_message_deliveries_decay = 0.3,
            .mesh_failure_penalty_decay = 0.5,
            .mesh_message_deliveries_decay = 0.5,
        };
    }
    ps->score = (cp2p__gs_score_params){
        .topics = ps->cfg.scored_topics,
        .topic_params = ps->topic_params,
        .n_topics = n,
        .topic_score_cap = 100.0,
        .app_specific_weight = 1.0,
        .ip_colocation_factor_weight = -10.0,
        .ip_colocation_factor_threshold = 3,
        .behaviour_penalty_weight = -10.0,
        .behaviour_penalty_threshold = 6,
        .behaviour_penalty_decay = 0.9,
        .decay_interval_ms = 1000,
        .decay_to_zero = 0.01,
        .retain_score_ms = 3600 * 1000,
    };
    ps->thresholds = (cp2p__gs_score_thresholds){
        .gossip_threshold = -10,
        .publish_threshold = -50,
        .graylist_threshold = -80,
        .accept_px_threshold = 10,
        .opportunistic_graft_threshold = 1,
    };
    gc->score_params = &ps->score;
    gc->thresholds = &ps->thresholds;
    return 0;
}

/* ---- public API ---- */

int cp2p_pubsub_new(cp2p_host *h, const cp2p_pubsub_config *cfg, cp2p_pubsub **out)
{
    cp2p_pubsub_config def;
    cp2p__gs_config gc;
    int rc;
    if (h == NULL || out == NULL) {
        return CP2P_EINVAL;
    }
    if (cfg == NULL) {
        cp2p_pubsub_config_default(&def);
        cfg = &def;
    }
    cp2p_pubsub *ps = cp2p_calloc(1, sizeof(*ps));
    if (ps == NULL) {
        return CP2P_ENOMEM;
    }
    ps->h = h;
    ps->cfg = *cfg;
    cp2p__gs_config_default(&gc);
#define OVR(f)                                                                                \
    if (cfg->f) {                                                                             \
        gc.f = cfg->f;                                                                        \
    } else {                                                                                  \
        ps->cfg.f = gc.f;                                                                     \
    }
    OVR(d)
    OVR(d_lo)
    OVR(d_hi)
    OVR(d_lazy)
    OVR(d_score)
    OVR(d_out)
    OVR(heartbeat_ms)
    OVR(max_rpc_size)
    OVR(idontwant_threshold)
    OVR(max_pending_validations)
    OVR(validation_timeout_ms)
#undef OVR
    gc.async_validation = cfg->async_validation;
    gc.flood_publish = !cfg->no_flood_publish;
    gc.do_px = cfg->do_px;
    gc.allow_publish_to_zero_peers = cfg->allow_publish_to_zero_peers;
    gc.sign_policy = cfg->strict_no_sign ? CP2P_GS_STRICT_NO_SIGN : CP2P_GS_STRICT_SIGN;
    gc.key = cp2p_host_privkey(h);
    gc.local = *cp2p_host_peer_id(h);
    randombytes_buf(&gc.seqno_start, sizeof(gc.seqno_start));
    gc.rand = ps_rand;
    gc.validator = validator_adapter;
    gc.validator_ud = ps;
    if (cfg->msg_id != NULL) {
        gc.msg_id = msg_id_adapter;
        gc.msg_id_ud = ps;
    }
    ps->heartbeat = cp2p_calloc(1, sizeof(*ps->heartbeat));
    ps->flush = cp2p_calloc(1, sizeof(*ps->flush));
    if (ps->heartbeat == NULL || ps->flush == NULL) {
        rc = CP2P_ENOMEM;
        goto fail;
    }
    if (!cfg->no_scoring && (rc = score_setup(ps, &gc)) != 0) {
        goto fail;
    }
    if ((rc = cp2p__gs_router_new(&gc, uv_now(cp2p_host_loop(h)), &ps->r)) != 0) {
        goto fail;
    }
    cp2p_buf_init(&ps->frame, ps->cfg.max_rpc_size);
    cp2p_framed_config fc;
    cp2p_framed_config_default(&fc);
    fc.name = "gossipsub";
    fc.protocols = PROTOS;
    fc.n_protocols = cfg->no_floodsub ? 3 : 4;
    fc.ready = CP2P_SERVICE_READY_IDENTIFIED;
    fc.max_frame = ps->cfg.max_rpc_size;
    fc.stream_backlog = CP2P_GS_STREAM_BACKLOG;
    fc.max_peers = CP2P_GS_MAX_PEERS;
    fc.up = fr_up;
    fc.down = fr_down;
    fc.frame = fr_frame;
    fc.closing = fr_closing;
    if ((rc = cp2p_framed_new(h, &fc, ps, &ps->fr)) != 0) {
        cp2p__gs_router_free(ps->r);
        cp2p_buf_fini(&ps->frame);
        goto fail;
    }
    uv_timer_init(cp2p_host_loop(h), ps->heartbeat);
    uv_timer_init(cp2p_host_loop(h), ps->flush);
    ps->heartbeat->data = ps->flush->data = ps;
    uv_timer_start(ps->heartbeat, on_heartbeat, ps->cfg.heartbeat_ms, ps->cfg.heartbeat_ms);
    /* Peers already connected and identified become ready on the next loop turn. */
    *out = ps;
    return 0;
fail:
    cp2p_free(ps->topic_params);
    cp2p_free(ps->heartbeat);
    cp2p_free(ps->flush);
    cp2p_free(ps);
    return rc;
}

void cp2p_pubsub_close(cp2p_pubsub *ps)
{
    if (ps == NULL) {
        return;
    }
    /* Last frames (e.g. unsubscriptions) go out, then our streams close. */
    flush_now(ps);
    cp2p_framed_close(ps->fr);
    ps->fr = NULL;
    pubsub_free(ps);
}

static void pubsub_free(cp2p_pubsub *ps)
{
    uv_timer_stop(ps->heartbeat);
    uv_timer_stop(ps->flush);
    uv_close((uv_handle_t *)ps->heartbeat, on_timer_closed);
    uv_close((uv_handle_t *)ps->flush, on_timer_closed);
    while (ps->peers != NULL) {
        ps_peer *p = ps->peers;
        ps->peers = p->next;
        cp2p_free(p);
    }
    while (ps->subs != NULL) {
        sub *s = ps->subs;
        ps->subs = s->next;
        cp2p_free(s->topic);
        cp2p_free(s);
    }
    cp2p__gs_router_free(ps->r);
    cp2p_buf_fini(&ps->frame);
    cp2p_free(ps->topic_params);
    cp2p_free(ps);
}

int cp2p_pubsub_subscribe(cp2p_pubsub *ps, const char *topic, cp2p_pubsub_handler cb, void *ud)
{
    if (ps == NULL || topic == NULL) {
        return CP2P_EINVAL;
    }
    int rc = cp2p__gs_subscribe(ps->r, topic, ps_now(ps));
    if (rc != 0) {
        return rc;
    }
    sub *s = sub_find(ps, topic);
    if (s == NULL) {
        size_t n = strlen(topic);
        s = cp2p_calloc(1, sizeof(*s));
        if (s == NULL || (s->topic = cp2p_malloc(n + 1)) == NULL) {
            cp2p_free(s);
            (void)!cp2p__gs_unsubscribe(ps->r, topic, ps_now(ps));
            return CP2P_ENOMEM;
        }
        memcpy(s->topic, topic, n + 1);
        s->next = ps->subs;
        ps->subs = s;
    }
    s->cb = cb;
    s->ud = ud;
    after_router(ps);
    return 0;
}

bool cp2p_pubsub_subscribed(const cp2p_pubsub *ps, const char *topic)
{
    return ps != NULL && topic != NULL && sub_find(ps, topic) != NULL;
}

int cp2p_pubsub_unsubscribe(cp2p_pubsub *ps, const char *topic)
{
    if (ps == NULL || topic == NULL) {
        return CP2P_EINVAL;
    }
    for (sub **pp = &ps->subs; *pp != NULL; pp = &(*pp)->next) {
        if (strcmp((*pp)->topic, topic) == 0) {
            sub *s = *pp;
            *pp = s->next;
            cp2p_free(s->topic);
            cp2p_free(s);
            break;
        }
    }
    int rc = cp2p__gs_unsubscribe(ps->r, topic, ps_now(ps));
    after_router(ps);
    return rc;
}

int cp2p_pubsub_publish(cp2p_pubsub *ps, const char *topic, const void *data, size_t len)
{
    if (ps == NULL || topic == NULL || (data == NULL && len > 0)) {
        return CP2P_EINVAL;
    }
    int rc = cp2p__gs_publish(ps->r, topic, data, len, ps_now(ps), NULL);
    if (rc == 0) {
        ps->stats.msgs_published++;
    }
    after_router(ps);
    return rc;
}

void cp2p_pubsub_set_validator(cp2p_pubsub *ps, cp2p_pubsub_validator cb, void *ud)
{
    ps->validator = cb;
    ps->validator_ud = ud;
}

void cp2p_pubsub_set_async_validator(cp2p_pubsub *ps, cp2p_pubsub_async_validator cb, void *ud)
{
    ps->avalidator = cb;
    ps->avalidator_ud = ud;
}

int cp2p_pubsub_validation_result(cp2p_pubsub *ps, uint64_t token, cp2p_pubsub_verdict v)
{
    if (ps == NULL || (unsigned)v > CP2P_PUBSUB_IGNORE) {
        return CP2P_EINVAL;
    }
    if (!ps->cfg.async_validation) {
        return CP2P_ESTATE;
    }
    int rc = cp2p__gs_validation_result(ps->r, token, (cp2p__gs_verdict)v, ps_now(ps));
    if (rc == 0) {
        after_router(ps);
    }
    return rc;
}

size_t cp2p_pubsub_topic_peers(const cp2p_pubsub *ps, const char *topic, cp2p_peer_id *out,
                               size_t max)
{
    /* Only peers we can send to: their subscription is known and our stream to them is up. */
    size_t total = cp2p__gs_topic_peers(ps->r, topic, NULL, 0), n = 0;
    cp2p_peer_id *all = total ? cp2p_calloc(total, sizeof(*all)) : NULL;
    if (all == NULL) {
        return 0;
    }
    total = cp2p__gs_topic_peers(ps->r, topic, all, total);
    for (size_t i = 0; i < total; i++) {
        if (cp2p_framed_peer_protocol(ps->fr, &all[i]) != NULL) {
            if (n < max) {
                out[n] = all[i];
            }
            n++;
        }
    }
    cp2p_free(all);
    return n;
}

size_t cp2p_pubsub_mesh_peers(const cp2p_pubsub *ps, const char *topic, cp2p_peer_id *out,
                              size_t max)
{
    return cp2p__gs_mesh_peers(ps->r, topic, out, max);
}

double cp2p_pubsub_peer_score(cp2p_pubsub *ps, const cp2p_peer_id *peer)
{
    return cp2p__gs_peer_score(ps->r, peer, ps_now(ps));
}

void cp2p_pubsub_stats_get(const cp2p_pubsub *ps, cp2p_pubsub_stats *out)
{
    cp2p__gs_stats s;
    cp2p__gs_stats_get(ps->r, &s);
    *out = ps->stats;
    out->peers = ps->npeers;
    out->rpcs_in = s.rpcs_in;
    out->rpcs_refused += s.rpcs_refused;
    if (ps->fr != NULL) { /* frames the helper refused before they reached the router */
        cp2p_framed_stats fs;
        cp2p_framed_stats_get(ps->fr, &fs);
        out->rpcs_refused += fs.frames_malformed + fs.frames_oversized + fs.inbound_refused;
    }
    out->msgs_in = s.msgs_in;
    out->msgs_delivered = s.msgs_delivered;
    out->msgs_duplicate = s.msgs_duplicate;
    out->msgs_rejected = s.msgs_rejected;
    out->msgs_ignored = s.msgs_ignored;
    out->msgs_bad_sig = s.msgs_bad_sig;
    out->msgs_forwarded = s.msgs_forwarded;
    out->subs_refused = s.subs_refused;
    out->graylisted = s.rpcs_graylisted;
    out->idontwant_sent = s.idontwant_sent;
    out->idontwant_suppressed = s.idontwant_suppressed;
    out->iwant_sent = s.iwant_sent;
    out->promises_broken = s.promises_broken;
    out->outbox_drops = s.outbox_msg_drops + s.outbox_ctl_drops;
    out->penalties = s.penalties;
    out->validations_pending = s.validations_pending;
    out->validations_dropped = s.validations_dropped;
    out->validations_expired = s.validations_expired;
    out->prunes_in = s.prunes_in;
    out->px_events = s.px_events;
    out->px_ignored = s.px_ignored;
    out->topics_refused = s.topics_refused;
    out->topics_evicted = s.topics_evicted;
}
