/* Gossipsub router core (see gs_router.h). Sans-I/O. */
#include <stdlib.h>
#include <string.h>

#include <cp2p/codec.h>

#include "protocols/gossipsub/gs_router.h"
#include "util/alloc.h"
#include "util/bytes.h"
#include "util/hashmap.h"
#include "util/limits.h"

#define SIGN_PREFIX "libp2p-pubsub:"

/* ---- messages (refcounted, shared by outboxes, mcache and pending validations) ---- */

typedef struct gs_m {
    uint32_t refs;
    size_t id_len, enc_len;
    uint8_t *id, *enc; /* enc: the Message body with signature and key */
    char *topic;
    cp2p_slice from, seqno, data;
    cp2p_peer_id src;
    /* IWANT replies per peer (go GossipRetransmission); the first GS_TX_PEERS askers are
     * tracked, later ones are served within their per-heartbeat budget only. */
    struct {
        uint64_t peer_h;
        uint32_t n;
    } tx[8];
    size_t n_tx;
} gs_m;
#define GS_TX_PEERS 8

static void m_unref(gs_m *m)
{
    if (m != NULL && --m->refs == 0) {
        cp2p_free(m);
    }
}

static gs_m *m_new(const cp2p__gs_msg *msg, const uint8_t *id, size_t id_len,
                   const cp2p_peer_id *src)
{
    size_t tl = strlen(msg->topic);
    size_t el = cp2p__gs_msg_body_size(msg, true);
    size_t n = sizeof(gs_m) + id_len + el + tl + 1 + msg->from.len + msg->seqno.len +
               msg->data.len;
    gs_m *m = cp2p_malloc(n);
    if (m == NULL) {
        return NULL;
    }
    uint8_t *p = (uint8_t *)(m + 1);
    m->refs = 1;
    m->n_tx = 0;
    m->src = *src;
    m->id = p;
    m->id_len = id_len;
    memcpy(p, id, id_len);
    p += id_len;
    cp2p_buf b;
    cp2p_buf_init(&b, el);
    if (cp2p__gs_msg_encode(msg, true, &b) != 0) {
        cp2p_buf_fini(&b);
        cp2p_free(m);
        return NULL;
    }
    m->enc = p;
    m->enc_len = b.len;
    memcpy(p, b.ptr, b.len);
    p += b.len;
    cp2p_buf_fini(&b);
    m->topic = (char *)p;
    memcpy(p, msg->topic, tl + 1);
    p += tl + 1;
    const cp2p_slice *src_s[3] = {&msg->from, &msg->seqno, &msg->data};
    cp2p_slice *dst_s[3] = {&m->from, &m->seqno, &m->data};
    for (int i = 0; i < 3; i++) {
        dst_s[i]->ptr = p;
        dst_s[i]->len = src_s[i]->len;
        if (src_s[i]->len > 0) {
            memcpy(p, src_s[i]->ptr, src_s[i]->len);
        }
        p += src_s[i]->len;
    }
    return m;
}

/* ---- peers and topics ---- */

typedef struct gs_peer gs_peer;

typedef struct gs_plist {
    gs_peer **v;
    size_t n, cap;
} gs_plist;

typedef struct gs_backoff {
    cp2p_peer_id id;
    uint64_t until;
} gs_backoff;

typedef struct gs_topic {
    char *name;
    size_t name_len, idx;
    bool subscribed;
    bool local; /* subscribed or published to (last_pub): counted in n_local, never evicted */
    gs_plist peers, mesh, fanout;
    uint64_t last_pub;
    gs_backoff *bo;
    size_t n_bo, cap_bo;
} gs_topic;

typedef struct gs_dw {
    uint64_t h, tick;
} gs_dw;

struct gs_peer {
    cp2p_peer_id id;
    size_t idx;
    cp2p__gs_proto proto;
    bool outbound;
    gs_topic **topics;
    size_t n_topics, cap_topics;
    cp2p_buf subs_out, ctl_out; /* encoded RPC subscription fields / control fields */
    size_t ctl_entries;
    gs_m **q; /* ring of cfg.outbox_msgs */
    size_t q_head, q_len;
    gs_dw *dw; /* ring of CP2P_GS_IDONTWANT_MAX */
    size_t dw_head, dw_len;
    unsigned peerhave, iasked, iwant_served;
};

typedef struct gs_promise {
    cp2p_peer_id peer;
    uint64_t h, exp;
} gs_promise;

typedef struct gs_pending {
    uint64_t token, deadline;
    gs_m *m;
} gs_pending;

typedef struct gs_evb {
    cp2p__gs_event ev;
    uint8_t bytes[];
} gs_evb;

/* A seen-cache entry: a message ID and when it expires. */
typedef struct gs_seen {
    uint64_t exp;
    size_t len;
    uint8_t id[];
} gs_seen;

/* Keys of the router's maps (cp2p_hashmap reads them out of the items). */
static cp2p_slice peer_key(const void *it)
{
    const gs_peer *p = it;
    return (cp2p_slice){p->id.bytes, p->id.len};
}

static cp2p_slice topic_key(const void *it)
{
    const gs_topic *t = it;
    return (cp2p_slice){(const uint8_t *)t->name, t->name_len};
}

static cp2p_slice seen_key(const void *it)
{
    const gs_seen *e = it;
    return (cp2p_slice){e->id, e->len};
}

static cp2p_slice msg_key(const void *it)
{
    const gs_m *m = it;
    return (cp2p_slice){m->id, m->id_len};
}

static cp2p_slice slice_key(const void *it)
{
    return *(const cp2p_slice *)it;
}

struct cp2p__gs_router {
    cp2p__gs_config cfg;
    cp2p__gs_score_params sp;
    cp2p__gs_score_thresholds th;
    cp2p__gs_score *score;
    uint64_t now, tick, last_refresh, seqno, next_token;
    uint8_t *key_pb; /* our public key protobuf when not inlined in our peer ID */
    size_t key_pb_len;
    cp2p_hashmap peer_map, topic_map, mcache; /* of gs_peer, gs_topic, gs_m */
    cp2p_hashmap seen;                         /* of gs_seen */
    gs_peer **peers;
    size_t n_peers, cap_peers, dirty_cursor;
    gs_topic **topics;
    size_t n_topics, cap_topics, n_local; /* n_local: topics with local set */
    gs_seen **seen_ring; /* FIFO of seen entries, oldest at seen_head */
    size_t seen_head, seen_len, seen_cap;
    gs_m ***win; /* mcache windows: win[0] newest */
    size_t *win_n, *win_cap;
    gs_promise *promises;
    size_t n_promises;
    gs_pending *pending;
    size_t n_pending;
    gs_evb **evq;
    size_t ev_head, ev_len;
    gs_peer **scratch; /* cap_peers entries */
    cp2p__gs_stats st;
};

static uint64_t rnd(cp2p__gs_router *r)
{
    return r->cfg.rand(r->cfg.rand_ud);
}

static void shuffle(cp2p__gs_router *r, void **v, size_t n)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(rnd(r) % i);
        void *t = v[i - 1];
        v[i - 1] = v[j];
        v[j] = t;
    }
}

static double score_of(cp2p__gs_router *r, const gs_peer *p)
{
    return r->score != NULL ? cp2p__gs_score_get(r->score, &p->id, r->now) : 0.0;
}

static void penalty(cp2p__gs_router *r, const gs_peer *p, uint32_t n)
{
    r->st.penalties += n;
    if (r->score != NULL) {
        cp2p__gs_score_add_penalty(r->score, &p->id, n);
    }
}

static bool plist_has(const gs_plist *l, const gs_peer *p)
{
    for (size_t i = 0; i < l->n; i++) {
        if (l->v[i] == p) {
            return true;
        }
    }
    return false;
}

static int plist_add(gs_plist *l, gs_peer *p)
{
    if (l->n == l->cap) {
        size_t cap = l->cap == 0 ? 8 : l->cap * 2;
        gs_peer **v = cp2p_realloc(l->v, cap * sizeof(*v));
        if (v == NULL) {
            return CP2P_ENOMEM;
        }
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = p;
    return 0;
}

static bool plist_del(gs_plist *l, const gs_peer *p)
{
    for (size_t i = 0; i < l->n; i++) {
        if (l->v[i] == p) {
            l->v[i] = l->v[--l->n];
            return true;
        }
    }
    return false;
}

static gs_peer *peer_find(const cp2p__gs_router *r, const cp2p_peer_id *id)
{
    return cp2p__hashmap_find(&r->peer_map, id->bytes, id->len);
}

static gs_topic *topic_find(const cp2p__gs_router *r, const char *name)
{
    return cp2p__hashmap_find(&r->topic_map, name, strlen(name));
}

static bool topic_name_ok(const char *t)
{
    size_t n = t != NULL ? strlen(t) : 0;
    return n > 0 && n <= CP2P_GS_MAX_TOPIC_LEN;
}

/* Create topic name (absent) in *out. Returns 0, CP2P_ENOMEM, or CP2P_EFULL (counted) when the
 * table holds max_topics + max_local_topics topics: remote-only topics may outgrow max_topics
 * when local ones stop being local, and this keeps the whole table bounded anyway. */
static int topic_new(cp2p__gs_router *r, const char *name, gs_topic **out)
{
    if (r->n_topics == r->cap_topics) {
        size_t cap = r->cap_topics == 0 ? 16 : r->cap_topics * 2;
        gs_topic **v = cp2p_realloc(r->topics, cap * sizeof(*v));
        if (v == NULL) {
            return CP2P_ENOMEM;
        }
        r->topics = v;
        r->cap_topics = cap;
    }
    size_t n = strlen(name);
    gs_topic *t = cp2p_calloc(1, sizeof(*t));
    int rc = CP2P_ENOMEM;
    if (t == NULL || (t->name = cp2p__memdup(name, n + 1)) == NULL) {
        goto fail;
    }
    t->name_len = n;
    if ((rc = cp2p__hashmap_insert(&r->topic_map, t)) != 0) {
        if (rc == CP2P_EFULL) {
            r->st.topics_refused++;
        }
        goto fail;
    }
    t->idx = r->n_topics;
    r->topics[r->n_topics++] = t;
    *out = t;
    return 0;
fail:
    if (t != NULL) {
        cp2p_free(t->name);
    }
    cp2p_free(t);
    return rc;
}

/* Keep t->local and r->n_local in step with t->subscribed and t->last_pub. */
static void topic_local_update(cp2p__gs_router *r, gs_topic *t)
{
    bool local = t->subscribed || t->last_pub != 0;
    if (local != t->local) {
        t->local = local;
        r->n_local += local ? 1 : (size_t)-1;
    }
}

/* Room for one more local topic (cfg.max_local_topics), remote topics notwithstanding. */
static bool local_room(const cp2p__gs_router *r, const gs_topic *t)
{
    return (t != NULL && t->local) || r->n_local < r->cfg.max_local_topics;
}
static void topic_free(gs_topic *t)
{
    cp2p_free(t->peers.v);
    cp2p_free(t->mesh.v);
    cp2p_free(t->fanout.v);
    cp2p_free(t->bo);
    cp2p_free(t->name);
    cp2p_free(t);
}

static void topic_remove(cp2p__gs_router *r, gs_topic *t)
{
    if (t->local) {
        r->n_local--;
    }
    cp2p__hashmap_remove(&r->topic_map, t);
    r->topics[t->idx] = r->topics[--r->n_topics];
    r->topics[t->idx]->idx = t->idx;
    topic_free(t);
}

static uint64_t backoff_until(const gs_topic *t, const cp2p_peer_id *id)
{
    for (size_t i = 0; i < t->n_bo; i++) {
        if (cp2p_peer_id_equal(&t->bo[i].id, id)) {
            return t->bo[i].until;
        }
    }
    return 0;
}

static void backoff_set(cp2p__gs_router *r, gs_topic *t, const cp2p_peer_id *id, uint64_t until)
{
    for (size_t i = 0; i < t->n_bo; i++) {
        if (cp2p_peer_id_equal(&t->bo[i].id, id)) {
            if (t->bo[i].until < until) {
                t->bo[i].until = until;
            }
            return;
        }
    }
    if (t->n_bo == t->cap_bo) {
        if (t->cap_bo >= CP2P_GS_MAX_PEERS) {
            return; /* bounded: as many entries as peers we can have */
        }
        size_t cap = t->cap_bo == 0 ? 8 : t->cap_bo * 2;
        gs_backoff *v = cp2p_realloc(t->bo, cap * sizeof(*v));
        if (v == NULL) {
            return;
        }
        t->bo = v;
        t->cap_bo = cap;
    }
    (void)r;
    t->bo[t->n_bo++] = (gs_backoff){*id, until};
}

/* ---- events ---- */

static void ev_push(cp2p__gs_router *r, cp2p__gs_event_kind kind, const cp2p_peer_id *peer,
                    const char *topic, const gs_m *m, cp2p_slice record, uint64_t token,
                    bool joined)
{
    if (r->ev_len == CP2P_GS_EVENT_QUEUE) {
        r->st.events_dropped++;
        return;
    }
    size_t tl = strlen(topic) + 1;
    size_t n = tl + record.len +
               (m != NULL ? m->data.len + m->from.len + m->seqno.len + m->id_len : 0);
    gs_evb *b = cp2p_malloc(sizeof(*b) + n);
    if (b == NULL) {
        r->st.events_dropped++;
        return;
    }
    uint8_t *p = b->bytes;
    b->ev = (cp2p__gs_event){.kind = kind, .peer = *peer, .token = token, .joined = joined};
    memcpy(p, topic, tl);
    b->ev.topic = (const char *)p;
    p += tl;
    cp2p_slice src[5] = {record, {0}, {0}, {0}, {0}};
    if (m != NULL) {
        src[1] = m->data;
        src[2] = m->from;
        src[3] = m->seqno;
        src[4] = (cp2p_slice){m->id, m->id_len};
    }
    cp2p_slice *dst[5] = {&b->ev.record, &b->ev.data, &b->ev.from, &b->ev.seqno, &b->ev.msg_id};
    for (int i = 0; i < 5; i++) {
        dst[i]->ptr = p;
        dst[i]->len = src[i].len;
        if (src[i].len > 0) {
            memcpy(p, src[i].ptr, src[i].len);
        }
        p += src[i].len;
    }
    b->ev.owned_ = b;
    r->evq[(r->ev_head + r->ev_len++) % CP2P_GS_EVENT_QUEUE] = b;
}

bool cp2p__gs_poll_event(cp2p__gs_router *r, cp2p__gs_event *ev)
{
    if (r->ev_len == 0) {
        return false;
    }
    gs_evb *b = r->evq[r->ev_head];
    r->ev_head = (r->ev_head + 1) % CP2P_GS_EVENT_QUEUE;
    r->ev_len--;
    *ev = b->ev;
    return true;
}

void cp2p__gs_event_fini(cp2p__gs_event *ev)
{
    cp2p_free(ev->owned_);
    *ev = (cp2p__gs_event){0};
}

static void tag(cp2p__gs_router *r, gs_peer *p, gs_topic *t, bool joined)
{
    ev_push(r, CP2P_GS_EV_PEER_TAG, &p->id, t->name, NULL, (cp2p_slice){0}, 0, joined);
}

/* ---- outboxes ---- */

static bool is_mesh_proto(const gs_peer *p)
{
    return p->proto != CP2P_GS_FLOODSUB;
}

static void out_msg(cp2p__gs_router *r, gs_peer *p, gs_m *m)
{
    if (p->q_len == r->cfg.outbox_msgs) {
        r->st.outbox_msg_drops++;
        return;
    }
    m->refs++;
    p->q[(p->q_head + p->q_len++) % r->cfg.outbox_msgs] = m;
}

static bool ctl_room(cp2p__gs_router *r, gs_peer *p)
{
    if (!is_mesh_proto(p) || p->ctl_entries >= CP2P_GS_OUTBOX_CONTROL) {
        r->st.outbox_ctl_drops++;
        return false;
    }
    return true;
}

static void ctl_done(cp2p__gs_router *r, gs_peer *p, size_t before, int rc)
{
    if (rc != 0) {
        p->ctl_out.len = before;
        r->st.outbox_ctl_drops++;
        return;
    }
    p->ctl_entries++;
}

static void out_graft(cp2p__gs_router *r, gs_peer *p, const char *topic)
{
    if (ctl_room(r, p)) {
        size_t before = p->ctl_out.len;
        ctl_done(r, p, before, cp2p__gs_ctl_graft_append(&p->ctl_out, topic));
    }
}

static void out_prune(cp2p__gs_router *r, gs_peer *p, gs_topic *t, bool px, uint64_t backoff_ms)
{
    if (!ctl_room(r, p)) {
        return;
    }
    cp2p__gs_prune pr = {.topic = t->name};
    cp2p__gs_px pxs[64];
    bool v11 = p->proto == CP2P_GS_MESHSUB_1_1 || p->proto == CP2P_GS_MESHSUB_1_2;
    if (v11) {
        pr.has_backoff = true;
        pr.backoff_s = backoff_ms / 1000;
    }
    if (v11 && px && r->cfg.do_px) {
        size_t n = 0;
        for (size_t i = 0; i < t->peers.n; i++) {
            gs_peer *q = t->peers.v[i];
            if (q != p && is_mesh_proto(q) && score_of(r, q) >= 0) {
                r->scratch[n++] = q;
            }
        }
        shuffle(r, (void **)r->scratch, n);
        size_t lim = r->cfg.prune_peers < 64 ? r->cfg.prune_peers : 64;
        for (size_t i = 0; i < n && i < lim; i++) {
            pxs[pr.n_peers++] = (cp2p__gs_px){.peer = r->scratch[i]->id};
        }
        pr.peers = pxs;
    }
    size_t before = p->ctl_out.len;
    ctl_done(r, p, before, cp2p__gs_ctl_prune_append(&p->ctl_out, &pr));
}

static void out_idlist(cp2p__gs_router *r, gs_peer *p, unsigned field, const cp2p_slice *ids,
                       size_t n)
{
    if (n > 0 && ctl_room(r, p)) {
        size_t before = p->ctl_out.len;
        ctl_done(r, p, before, cp2p__gs_ctl_idlist_append(&p->ctl_out, field, ids, n));
    }
}

static void out_ihave(cp2p__gs_router *r, gs_peer *p, const char *topic, const cp2p_slice *ids,
                      size_t n)
{
    if (n > 0 && ctl_room(r, p)) {
        size_t before = p->ctl_out.len;
        ctl_done(r, p, before, cp2p__gs_ctl_ihave_append(&p->ctl_out, topic, ids, n));
    }
}

static void out_sub(cp2p__gs_router *r, gs_peer *p, const char *topic, bool sub)
{
    if (cp2p__gs_rpc_sub_append(&p->subs_out, topic, sub) != 0) {
        r->st.outbox_ctl_drops++;
    }
}

/* ---- mesh membership ---- */

static void mesh_add(cp2p__gs_router *r, gs_topic *t, gs_peer *p, bool send_graft)
{
    if (plist_add(&t->mesh, p) != 0) {
        return;
    }
    if (r->score != NULL) {
        cp2p__gs_score_graft(r->score, &p->id, t->name, r->now);
    }
    tag(r, p, t, true);
    if (send_graft) {
        out_graft(r, p, t->name);
    }
}

/* Remove p from t's mesh; send PRUNE when send_prune (with PX when px). */
static void mesh_remove(cp2p__gs_router *r, gs_topic *t, gs_peer *p, bool send_prune, bool px,
                        uint64_t backoff_ms)
{
    if (!plist_del(&t->mesh, p)) {
        return;
    }
    if (r->score != NULL) {
        cp2p__gs_score_prune(r->score, &p->id, t->name, r->now);
    }
    tag(r, p, t, false);
    backoff_set(r, t, &p->id, r->now + backoff_ms);
    if (send_prune) {
        out_prune(r, p, t, px, backoff_ms);
    }
}

/* ---- config and lifecycle ---- */

void cp2p__gs_config_default(cp2p__gs_config *c)
{
    *c = (cp2p__gs_config){
        .d = CP2P_GS_D,
        .d_lo = CP2P_GS_D_LO,
        .d_hi = CP2P_GS_D_HI,
        .d_lazy = CP2P_GS_D_LAZY,
        .d_score = CP2P_GS_D_SCORE,
        .d_out = CP2P_GS_D_OUT,
        .heartbeat_ms = CP2P_GS_HEARTBEAT_MS,
        .fanout_ttl_ms = CP2P_GS_FANOUT_TTL_MS,
        .seen_ttl_ms = CP2P_GS_SEEN_TTL_MS,
        .prune_backoff_ms = CP2P_GS_PRUNE_BACKOFF_MS,
        .unsub_backoff_ms = CP2P_GS_UNSUB_BACKOFF_MS,
        .graft_flood_ms = CP2P_GS_GRAFT_FLOOD_MS,
        .iwant_followup_ms = CP2P_GS_IWANT_FOLLOWUP_MS,
        .mcache_len = CP2P_GS_MCACHE_LEN,
        .mcache_gossip = CP2P_GS_MCACHE_GOSSIP,
        .gossip_factor = CP2P_GS_GOSSIP_FACTOR,
        .prune_peers = CP2P_GS_PRUNE_PEERS,
        .opp_graft_ticks = CP2P_GS_OPP_GRAFT_TICKS,
        .opp_graft_peers = CP2P_GS_OPP_GRAFT_PEERS,
        .max_ihave_len = CP2P_GS_MAX_IHAVE_LEN,
        .max_ihave_msgs = CP2P_GS_MAX_IHAVE_MSGS,
        .idontwant_threshold = CP2P_GS_IDONTWANT_THRESHOLD,
        .max_rpc_size = CP2P_GS_MAX_RPC_SIZE,
        .max_peer_subs = CP2P_GS_MAX_PEER_SUBS,
        .max_topics = CP2P_GS_MAX_TOPICS,
        .max_local_topics = CP2P_GS_MAX_LOCAL_TOPICS,
        .validation_timeout_ms = CP2P_GS_VALIDATION_TIMEOUT_MS,
        .outbox_msgs = CP2P_GS_OUTBOX_MSGS,
        .max_pending_validations = CP2P_GS_MAX_PENDING_VALIDATIONS,
        .flood_publish = true,
        .sign_policy = CP2P_GS_STRICT_SIGN,
        .msg_id = cp2p__gs_default_msg_id,
    };
}

int cp2p__gs_default_msg_id(void *ud, const cp2p__gs_msg *m, cp2p_buf *out)
{
    (void)ud;
    int rc = cp2p_buf_append(out, m->from.ptr, m->from.len);
    return rc != 0 ? rc : cp2p_buf_append(out, m->seqno.ptr, m->seqno.len);
}

static bool cfg_ok(const cp2p__gs_config *c)
{
    return c->rand != NULL && c->msg_id != NULL && c->d_lo <= c->d && c->d <= c->d_hi &&
           c->d_out < c->d_lo && c->d_out <= c->d / 2 && c->d_score <= c->d &&
           c->mcache_gossip <= c->mcache_len && c->mcache_len > 0 && c->heartbeat_ms > 0 &&
           c->max_rpc_size >= 64 && c->outbox_msgs > 0 && c->max_topics > 0 &&
           c->max_local_topics > 0 &&
           c->gossip_factor >= 0 && c->gossip_factor <= 1 &&
           (c->sign_policy == CP2P_GS_STRICT_NO_SIGN || c->key != NULL) &&
           ((c->score_params == NULL) == (c->thresholds == NULL));
}

int cp2p__gs_router_new(const cp2p__gs_config *cfg, uint64_t now_ms, cp2p__gs_router **out)
{
    int rc = CP2P_ENOMEM;
    if (cfg == NULL || !cfg_ok(cfg)) {
        return CP2P_EINVAL;
    }
    if (cfg->score_params != NULL &&
        cp2p__gs_score_params_validate(cfg->score_params, cfg->thresholds) != 0) {
        return CP2P_EINVAL;
    }
    cp2p__gs_router *r = cp2p_calloc(1, sizeof(*r));
    if (r == NULL) {
        return CP2P_ENOMEM;
    }
    r->cfg = *cfg;
    r->now = r->last_refresh = now_ms;
    r->seqno = cfg->seqno_start;
    r->next_token = 1;
    /* The maps no longer take a seed from cfg.rand, but this draw is kept so that the router's
     * random choices stay the same sequence for a given rand: test_gs_router's
     * gossip_recovers passes only for some sequences (a mesh two heartbeats old may be cut). */
    (void)rnd(r);
    if ((rc = cp2p__hashmap_init(&r->peer_map, CP2P_GS_MAX_PEERS, peer_key)) != 0 ||
        (rc = cp2p__hashmap_init(&r->topic_map, (size_t)cfg->max_topics + cfg->max_local_topics,
                                 topic_key)) != 0 ||
        (rc = cp2p__hashmap_init(&r->seen, CP2P_GS_SEEN_MAX, seen_key)) != 0 ||
        (rc = cp2p__hashmap_init(&r->mcache, CP2P_GS_MCACHE_MAX, msg_key)) != 0) {
        goto fail;
    }
    if (cfg->key != NULL) {
        const cp2p_pubkey *pub = cp2p_privkey_public(cfg->key);
        cp2p_slice inl;
        if ((rc = cp2p_peer_id_from_pubkey(pub, &r->cfg.local)) != 0) {
            goto fail;
        }
        if (cp2p_peer_id_inline_key(&r->cfg.local, &inl) != 0) {
            cp2p_buf kb;
            cp2p_buf_init(&kb, CP2P_KEY_PB_MAX);
            if ((rc = cp2p_pubkey_marshal(pub, &kb)) != 0) {
                cp2p_buf_fini(&kb);
                goto fail;
            }
            r->key_pb_len = cp2p_buf_take(&kb, &r->key_pb);
        }
    }
    rc = CP2P_ENOMEM;
    r->seen_cap = CP2P_GS_SEEN_MAX;
    if ((r->seen_ring = cp2p_calloc(r->seen_cap, sizeof(*r->seen_ring))) == NULL ||
        (r->win = cp2p_calloc(cfg->mcache_len, sizeof(*r->win))) == NULL ||
        (r->win_n = cp2p_calloc(cfg->mcache_len, sizeof(size_t))) == NULL ||
        (r->win_cap = cp2p_calloc(cfg->mcache_len, sizeof(size_t))) == NULL ||
        (r->evq = cp2p_calloc(CP2P_GS_EVENT_QUEUE, sizeof(*r->evq))) == NULL ||
        (r->pending = cp2p_calloc(cfg->max_pending_validations + 1, sizeof(*r->pending))) ==
            NULL ||
        (r->promises = cp2p_calloc(CP2P_GS_MAX_PROMISES, sizeof(*r->promises))) == NULL) {
        goto fail;
    }
    if (cfg->score_params != NULL) {
        r->sp = *cfg->score_params;
        r->th = *cfg->thresholds;
        r->cfg.score_params = &r->sp;
        r->cfg.thresholds = &r->th;
        if ((rc = cp2p__gs_score_new(cfg->score_params, now_ms, &r->score)) != 0) {
            goto fail;
        }
    }
    *out = r;
    return 0;
fail:
    cp2p__gs_router_free(r);
    return rc;
}

static void peer_free(cp2p__gs_router *r, gs_peer *p)
{
    for (size_t i = 0; i < p->q_len; i++) {
        m_unref(p->q[(p->q_head + i) % r->cfg.outbox_msgs]);
    }
    cp2p_free(p->q);
    cp2p_free(p->dw);
    cp2p_free(p->topics);
    cp2p_buf_fini(&p->subs_out);
    cp2p_buf_fini(&p->ctl_out);
    cp2p_free(p);
}

static void seen_release(void *item, void *ud)
{
    (void)ud;
    cp2p_free(item);
}

void cp2p__gs_router_free(cp2p__gs_router *r)
{
    if (r == NULL) {
        return;
    }
    for (size_t i = 0; i < r->n_peers; i++) {
        peer_free(r, r->peers[i]);
    }
    for (size_t i = 0; i < r->n_topics; i++) {
        topic_free(r->topics[i]);
    }
    for (size_t w = 0; r->win != NULL && w < r->cfg.mcache_len; w++) {
        for (size_t i = 0; i < r->win_n[w]; i++) {
            m_unref(r->win[w][i]);
        }
        cp2p_free(r->win[w]);
    }
    for (size_t i = 0; r->pending != NULL && i < r->n_pending; i++) {
        m_unref(r->pending[i].m);
    }
    for (size_t i = 0; i < r->ev_len; i++) {
        cp2p_free(r->evq[(r->ev_head + i) % CP2P_GS_EVENT_QUEUE]);
    }
    cp2p__hashmap_fini(&r->peer_map, NULL, NULL);
    cp2p__hashmap_fini(&r->topic_map, NULL, NULL);
    cp2p__hashmap_fini(&r->seen, seen_release, NULL);
    cp2p__hashmap_fini(&r->mcache, NULL, NULL);
    cp2p__gs_score_free(r->score);
    cp2p_free(r->peers);
    cp2p_free(r->topics);
    cp2p_free(r->seen_ring);
    cp2p_free(r->win);
    cp2p_free(r->win_n);
    cp2p_free(r->win_cap);
    cp2p_free(r->evq);
    cp2p_free(r->pending);
    cp2p_free(r->promises);
    cp2p_free(r->scratch);
    cp2p_free(r->key_pb);
    cp2p_free(r);
}

/* ---- peers ---- */

int cp2p__gs_add_peer(cp2p__gs_router *r, const cp2p_peer_id *id, cp2p__gs_proto proto,
                      bool outbound, const char *ip, uint64_t now_ms)
{
    r->now = now_ms;
    if (id == NULL || id->len == 0 || id->len > CP2P_PEER_ID_MAX ||
        (unsigned)proto > CP2P_GS_FLOODSUB) {
        return CP2P_EINVAL;
    }
    if (peer_find(r, id) != NULL) {
        return CP2P_ESTATE;
    }
    if (r->n_peers >= CP2P_GS_MAX_PEERS) {
        r->st.peers_refused++;
        return CP2P_EFULL;
    }
    if (r->n_peers == r->cap_peers) {
        size_t cap = r->cap_peers == 0 ? 16 : r->cap_peers * 2;
        gs_peer **v = cp2p_realloc(r->peers, cap * sizeof(*v));
        if (v == NULL) {
            return CP2P_ENOMEM;
        }
        r->peers = v;
        gs_peer **s = cp2p_realloc(r->scratch, cap * sizeof(*s));
        if (s == NULL) {
            return CP2P_ENOMEM;
        }
        r->scratch = s;
        r->cap_peers = cap;
    }
    gs_peer *p = cp2p_calloc(1, sizeof(*p));
    if (p == NULL) {
        return CP2P_ENOMEM;
    }
    p->id = *id;
    p->proto = proto;
    p->outbound = outbound;
    cp2p_buf_init(&p->subs_out, r->cfg.max_topics * (CP2P_GS_MAX_TOPIC_LEN + 8));
    cp2p_buf_init(&p->ctl_out, (size_t)4 * r->cfg.max_rpc_size);
    if ((p->q = cp2p_calloc(r->cfg.outbox_msgs, sizeof(*p->q))) == NULL ||
        (p->dw = cp2p_calloc(CP2P_GS_IDONTWANT_MAX, sizeof(*p->dw))) == NULL ||
        cp2p__hashmap_insert(&r->peer_map, p) != 0) {
        peer_free(r, p);
        return CP2P_ENOMEM;
    }
    if (r->score != NULL) {
        int rc = cp2p__gs_score_add_peer(r->score, id, ip, now_ms);
        if (rc != 0 && rc != CP2P_EFULL) {
            cp2p__hashmap_remove(&r->peer_map, p);
            peer_free(r, p);
            return rc;
        }
    }
    p->idx = r->n_peers;
    r->peers[r->n_peers++] = p;
    /* Hello: our subscriptions. */
    for (size_t i = 0; i < r->n_topics; i++) {
        if (r->topics[i]->subscribed) {
            out_sub(r, p, r->topics[i]->name, true);
        }
    }
    return 0;
}

static void peer_unsub(cp2p__gs_router *r, gs_peer *p, gs_topic *t)
{
    plist_del(&t->peers, p);
    plist_del(&t->fanout, p);
    if (plist_has(&t->mesh, p)) {
        plist_del(&t->mesh, p);
        if (r->score != NULL) {
            cp2p__gs_score_prune(r->score, &p->id, t->name, r->now);
        }
        tag(r, p, t, false);
    }
    for (size_t i = 0; i < p->n_topics; i++) {
        if (p->topics[i] == t) {
            p->topics[i] = p->topics[--p->n_topics];
            break;
        }
    }
}

void cp2p__gs_remove_peer(cp2p__gs_router *r, const cp2p_peer_id *id, uint64_t now_ms)
{
    r->now = now_ms;
    gs_peer *p = peer_find(r, id);
    if (p == NULL) {
        return;
    }
    while (p->n_topics > 0) {
        peer_unsub(r, p, p->topics[p->n_topics - 1]);
    }
    if (r->score != NULL) {
        cp2p__gs_score_remove_peer(r->score, id, now_ms);
    }
    cp2p__hashmap_remove(&r->peer_map, p);
    r->peers[p->idx] = r->peers[--r->n_peers];
    r->peers[p->idx]->idx = p->idx;
    peer_free(r, p);
}

/* ---- seen cache, mcache, promises, IDONTWANT ---- */

static bool seen_has(const cp2p__gs_router *r, const uint8_t *id, size_t n)
{
    return cp2p__hashmap_find(&r->seen, id, n) != NULL;
}

/* Drop the oldest seen entry. */
static void seen_pop(cp2p__gs_router *r)
{
    gs_seen *e = r->seen_ring[r->seen_head];
    cp2p__hashmap_remove(&r->seen, e);
    cp2p_free(e);
    r->seen_head = (r->seen_head + 1) % r->seen_cap;
    r->seen_len--;
}

static void seen_expire(cp2p__gs_router *r)
{
    while (r->seen_len > 0 && r->seen_ring[r->seen_head]->exp <= r->now) {
        seen_pop(r);
    }
}

static void seen_add(cp2p__gs_router *r, const uint8_t *id, size_t n)
{
    if (r->seen_len == r->seen_cap) {
        seen_pop(r);
        r->st.seen_evicted++;
    }
    gs_seen *e = cp2p_malloc(sizeof(*e) + n);
    if (e == NULL) {
        return;
    }
    e->exp = r->now + r->cfg.seen_ttl_ms;
    e->len = n;
    memcpy(e->id, id, n);
    if (cp2p__hashmap_insert(&r->seen, e) != 0) {
        cp2p_free(e);
        return;
    }
    r->seen_ring[(r->seen_head + r->seen_len++) % r->seen_cap] = e;
}

static gs_m *mcache_get(const cp2p__gs_router *r, const uint8_t *id, size_t n)
{
    return cp2p__hashmap_find(&r->mcache, id, n);
}

static void mcache_put(cp2p__gs_router *r, gs_m *m)
{
    if (cp2p__hashmap_len(&r->mcache) >= CP2P_GS_MCACHE_MAX ||
        mcache_get(r, m->id, m->id_len) != NULL) {
        r->st.mcache_refused++;
        return;
    }
    if (r->win_n[0] == r->win_cap[0]) {
        size_t cap = r->win_cap[0] == 0 ? 64 : r->win_cap[0] * 2;
        gs_m **v = cp2p_realloc(r->win[0], cap * sizeof(*v));
        if (v == NULL) {
            r->st.mcache_refused++;
            return;
        }
        r->win[0] = v;
        r->win_cap[0] = cap;
    }
    if (cp2p__hashmap_insert(&r->mcache, m) != 0) {
        r->st.mcache_refused++;
        return;
    }
    m->refs++;
    r->win[0][r->win_n[0]++] = m;
}

static void mcache_shift(cp2p__gs_router *r)
{
    size_t last = r->cfg.mcache_len - 1;
    for (size_t i = 0; i < r->win_n[last]; i++) {
        gs_m *m = r->win[last][i];
        cp2p__hashmap_remove(&r->mcache, m);
        m_unref(m);
    }
    gs_m **v = r->win[last];
    size_t cap = r->win_cap[last];
    memmove(&r->win[1], &r->win[0], last * sizeof(*r->win));
    memmove(&r->win_n[1], &r->win_n[0], last * sizeof(size_t));
    memmove(&r->win_cap[1], &r->win_cap[0], last * sizeof(size_t));
    r->win[0] = v;
    r->win_n[0] = 0;
    r->win_cap[0] = cap;
}

static void promises_fulfil(cp2p__gs_router *r, const uint8_t *id, size_t n)
{
    if (r->n_promises == 0) {
        return;
    }
    uint64_t h = cp2p__hashmap_hash(id, n);
    for (size_t i = 0; i < r->n_promises;) {
        if (r->promises[i].h == h) {
            r->promises[i] = r->promises[--r->n_promises];
        } else {
            i++;
        }
    }
}

static bool dontwant(const gs_peer *p, uint64_t h)
{
    for (size_t i = 0; i < p->dw_len; i++) {
        if (p->dw[(p->dw_head + i) % CP2P_GS_IDONTWANT_MAX].h == h) {
            return true;
        }
    }
    return false;
}

/* ---- forwarding ---- */

static bool mesh_peer_wants(cp2p__gs_router *r, gs_peer *p, const gs_m *m, uint64_t h)
{
    if (cp2p_peer_id_equal(&p->id, &m->src) ||
        (m->from.len == p->id.len && memcmp(m->from.ptr, p->id.bytes, p->id.len) == 0)) {
        return false;
    }
    if (p->dw_len > 0 && dontwant(p, h)) {
        r->st.idontwant_suppressed++;
        return false;
    }
    return true;
}

/* Collect the recipients of m into r->scratch; publish selects the publish path. */
static size_t recipients(cp2p__gs_router *r, gs_topic *t, const gs_m *m, bool publish)
{
    size_t n = 0;
    if (t == NULL) {
        return 0;
    }
    uint64_t h = cp2p__hashmap_hash(m->id, m->id_len);
    double pub_th = r->score != NULL ? r->th.publish_threshold : 0;
    if (publish && r->cfg.flood_publish) {
        for (size_t i = 0; i < t->peers.n; i++) {
            gs_peer *p = t->peers.v[i];
            if (score_of(r, p) >= pub_th && mesh_peer_wants(r, p, m, h)) {
                r->scratch[n++] = p;
            }
        }
        return n;
    }
    const gs_plist *l = t->subscribed ? &t->mesh : &t->fanout;
    for (size_t i = 0; i < l->n; i++) {
        if (mesh_peer_wants(r, l->v[i], m, h)) {
            r->scratch[n++] = l->v[i];
        }
    }
    for (size_t i = 0; i < t->peers.n; i++) {
        gs_peer *p = t->peers.v[i];
        if (p->proto == CP2P_GS_FLOODSUB && score_of(r, p) >= pub_th &&
            mesh_peer_wants(r, p, m, h)) {
            r->scratch[n++] = p;
        }
    }
    return n;
}

/* Build a fanout for an unsubscribed topic we publish to. */
static void fanout_fill(cp2p__gs_router *r, gs_topic *t)
{
    double pub_th = r->score != NULL ? r->th.publish_threshold : 0;
    if (t->subscribed || t->fanout.n >= r->cfg.d) {
        return;
    }
    size_t n = 0;
    for (size_t i = 0; i < t->peers.n; i++) {
        gs_peer *p = t->peers.v[i];
        if (is_mesh_proto(p) && !plist_has(&t->fanout, p) && score_of(r, p) >= pub_th) {
            r->scratch[n++] = p;
        }
    }
    shuffle(r, (void **)r->scratch, n);
    for (size_t i = 0; i < n && t->fanout.n < r->cfg.d; i++) {
        if (plist_add(&t->fanout, r->scratch[i]) != 0) {
            return;
        }
    }
}

static void forward(cp2p__gs_router *r, gs_m *m)
{
    gs_topic *t = topic_find(r, m->topic);
    size_t n = recipients(r, t, m, false);
    for (size_t i = 0; i < n; i++) {
        out_msg(r, r->scratch[i], m);
    }
    r->st.msgs_forwarded += n;
}

/* ---- message pipeline ---- */

static void finish(cp2p__gs_router *r, gs_m *m, cp2p__gs_verdict v)
{
    switch (v) {
    case CP2P_GS_ACCEPT:
        if (r->score != NULL) {
            cp2p__gs_score_deliver_message(r->score, &m->src, m->id, m->id_len, m->topic, r->now);
        }
        r->st.msgs_delivered++;
        mcache_put(r, m);
        ev_push(r, CP2P_GS_EV_DELIVER, &m->src, m->topic, m, (cp2p_slice){0}, 0, false);
        forward(r, m);
        break;
    case CP2P_GS_REJECT:
        if (r->score != NULL) {
            cp2p__gs_score_reject_message(r->score, &m->src, m->id, m->id_len, m->topic, r->now);
        }
        r->st.msgs_rejected++;
        break;
    default:
        if (r->score != NULL) {
            cp2p__gs_score_ignore_message(r->score, &m->src, m->id, m->id_len, m->topic, r->now);
        }
        r->st.msgs_ignored++;
        break;
    }
}

static bool sig_ok(cp2p__gs_router *r, const cp2p__gs_msg *m, const cp2p_peer_id *from)
{
    cp2p_pubkey *pub = NULL;
    bool ok = false;
    if (m->has_key) {
        cp2p_peer_id kid;
        if (cp2p_pubkey_unmarshal(m->key.ptr, m->key.len, &pub) != 0 ||
            cp2p_peer_id_from_pubkey(pub, &kid) != 0 || !cp2p_peer_id_equal(&kid, from)) {
            goto out;
        }
    } else if (cp2p_pubkey_from_peer_id(from, &pub) != 0) {
        goto out;
    }
    cp2p_buf b;
    cp2p_buf_init(&b, r->cfg.max_rpc_size + sizeof(SIGN_PREFIX));
    if (cp2p_buf_append(&b, SIGN_PREFIX, sizeof(SIGN_PREFIX) - 1) == 0 &&
        cp2p__gs_msg_encode(m, false, &b) == 0 &&
        cp2p_pubkey_verify(pub, b.ptr, b.len, m->signature.ptr, m->signature.len) == 0) {
        ok = true;
    }
    cp2p_buf_fini(&b);
out:
    cp2p_pubkey_free(pub);
    return ok;
}

static void send_idontwant(cp2p__gs_router *r, gs_topic *t, const gs_m *m)
{
    cp2p_slice id = {m->id, m->id_len};
    for (size_t i = 0; i < t->mesh.n; i++) {
        gs_peer *p = t->mesh.v[i];
        if (p->proto == CP2P_GS_MESHSUB_1_2 && !cp2p_peer_id_equal(&p->id, &m->src)) {
            out_idlist(r, p, 5, &id, 1);
            r->st.idontwant_sent++;
        }
    }
}

static int handle_msg(cp2p__gs_router *r, gs_peer *src, const cp2p__gs_msg *msg)
{
    r->st.msgs_in++;
    gs_topic *t = topic_find(r, msg->topic);
    if (t == NULL || !t->subscribed) {
        r->st.msgs_unsubscribed_topic++;
        return 0;
    }
    cp2p_peer_id from;
    bool has_from = msg->has_from &&
                    cp2p_peer_id_from_bytes(msg->from.ptr, msg->from.len, &from) == 0;
    if (r->cfg.sign_policy == CP2P_GS_STRICT_SIGN) {
        if (!has_from || !msg->has_seqno || msg->seqno.len != 8 || !msg->has_signature) {
            goto bad_policy;
        }
    } else if (msg->has_from || msg->has_seqno || msg->has_signature || msg->has_key) {
        goto bad_policy;
    }
    if (has_from && cp2p_peer_id_equal(&from, &r->cfg.local)) {
        r->st.msgs_self_origin++;
        return 0;
    }
    cp2p_buf idb;
    cp2p_buf_init(&idb, CP2P_GS_MAX_MSG_ID);
    if (r->cfg.msg_id(r->cfg.msg_id_ud, msg, &idb) != 0 || idb.len == 0) {
        cp2p_buf_fini(&idb);
        r->st.msgs_bad_id++;
        return 0;
    }
    if (seen_has(r, idb.ptr, idb.len)) {
        r->st.msgs_duplicate++;
        if (r->score != NULL) {
            cp2p__gs_score_duplicate_message(r->score, &src->id, idb.ptr, idb.len, t->name, r->now);
        }
        promises_fulfil(r, idb.ptr, idb.len);
        cp2p_buf_fini(&idb);
        return 0;
    }
    if (r->cfg.sign_policy == CP2P_GS_STRICT_SIGN && !sig_ok(r, msg, &from)) {
        cp2p_buf_fini(&idb);
        r->st.msgs_bad_sig++;
        r->st.msgs_rejected++;
        if (r->score != NULL) {
            cp2p__gs_score_reject_invalid(r->score, &src->id, t->name);
        }
        return 0;
    }
    seen_add(r, idb.ptr, idb.len);
    promises_fulfil(r, idb.ptr, idb.len);
    gs_m *m = m_new(msg, idb.ptr, idb.len, &src->id);
    cp2p_buf_fini(&idb);
    if (m == NULL) {
        return CP2P_ENOMEM;
    }
    if (m->enc_len >= r->cfg.idontwant_threshold) {
        send_idontwant(r, t, m);
    }
    if (r->score != NULL) {
        cp2p__gs_score_validate_message(r->score, &src->id, m->id, m->id_len, t->name, r->now);
    }
    if (r->cfg.async_validation) {
        if (r->n_pending >= r->cfg.max_pending_validations ||
            r->ev_len >= CP2P_GS_EVENT_QUEUE) {
            r->st.validations_dropped++;
            if (r->score != NULL) {
                cp2p__gs_score_throttle_message(r->score, &src->id, m->id, m->id_len, t->name,
                                                r->now);
            }
            m_unref(m);
            return 0;
        }
        uint64_t token = r->next_token++;
        uint64_t to = r->cfg.validation_timeout_ms;
        uint64_t deadline = to > 0 && to <= UINT64_MAX - r->now ? r->now + to : UINT64_MAX;
        r->pending[r->n_pending++] = (gs_pending){token, deadline, m};
        r->st.validations_pending++;
        ev_push(r, CP2P_GS_EV_VALIDATE, &src->id, t->name, m, (cp2p_slice){0}, token, false);
        return 0;
    }
    cp2p__gs_verdict v = CP2P_GS_ACCEPT;
    if (r->cfg.validator != NULL) {
        v = r->cfg.validator(r->cfg.validator_ud, t->name, has_from ? &from : NULL, m->data.ptr,
                             m->data.len);
    }
    finish(r, m, v);
    m_unref(m);
    return 0;
bad_policy:
    r->st.msgs_bad_policy++;
    r->st.msgs_rejected++;
    if (r->score != NULL) {
        cp2p__gs_score_reject_invalid(r->score, &src->id, t->name);
    }
    return 0;
}

int cp2p__gs_validation_result(cp2p__gs_router *r, uint64_t token, cp2p__gs_verdict v,
                               uint64_t now_ms)
{
    r->now = now_ms;
    for (size_t i = 0; i < r->n_pending; i++) {
        if (r->pending[i].token == token) {
            gs_m *m = r->pending[i].m;
            r->pending[i] = r->pending[--r->n_pending];
            r->st.validations_pending--;
            finish(r, m, v);
            m_unref(m);
            return 0;
        }
    }
    return CP2P_ENOENT;
}

/* Unanswered validations past their deadline: dropped as IGNORE (no penalty), counted. */
static void pending_expire(cp2p__gs_router *r)
{
    for (size_t i = 0; i < r->n_pending;) {
        if (r->pending[i].deadline <= r->now) {
            gs_m *m = r->pending[i].m;
            r->pending[i] = r->pending[--r->n_pending];
            r->st.validations_pending--;
            r->st.validations_expired++;
            finish(r, m, CP2P_GS_IGNORE);
            m_unref(m);
        } else {
            i++;
        }
    }
}

/* ---- control ---- */

/* The topic for a subscription of peer p, created if new. Remote-only topics (not local) are
 * bounded by cfg.max_topics apart from local ones, so that remote peers can never crowd out
 * ours. When that part is full, a new topic evicts one of CP2P_GS_TOPIC_EVICT_SAMPLE randomly
 * sampled remote-only topics (without backoff state) that has no subscriber, or a single
 * subscriber holding more topics than p: a peer only takes a slot from a peer using more of
 * the table than itself, and never from a topic with more subscribers than the newcomer's
 * one. Among the sample, the empty topic or the one of the heaviest subscriber goes first.
 * Otherwise refused. Counted in stats.topics_evicted / topics_refused. */
static gs_topic *topic_get_remote(cp2p__gs_router *r, gs_peer *p, const char *name)
{
    gs_topic *t = topic_find(r, name);
    if (t != NULL) {
        return t;
    }
    if (r->n_topics - r->n_local >= r->cfg.max_topics) {
        gs_topic *victim = NULL;
        size_t vweight = 0;
        for (unsigned i = 0; i < CP2P_GS_TOPIC_EVICT_SAMPLE; i++) {
            gs_topic *c = r->topics[rnd(r) % r->n_topics];
            if (c->local || c->n_bo > 0 || c->fanout.n > 0 || c->peers.n > 1) {
                continue;
            }
            size_t w = c->peers.n == 0 ? SIZE_MAX : c->peers.v[0]->n_topics;
            if (c->peers.n == 1 && (c->peers.v[0] == p || w <= p->n_topics)) {
                continue;
            }
            if (victim == NULL || w > vweight) {
                victim = c;
                vweight = w;
            }
        }
        if (victim == NULL) {
            r->st.topics_refused++;
            return NULL;
        }
        while (victim->peers.n > 0) {
            peer_unsub(r, victim->peers.v[victim->peers.n - 1], victim);
        }
        topic_remove(r, victim);
        r->st.topics_evicted++;
    }
    return topic_new(r, name, &t) == 0 ? t : NULL;
}

static void handle_subs(cp2p__gs_router *r, gs_peer *p, const cp2p__gs_rpc *rpc)
{
    bool penalised = false;
    for (size_t i = 0; i < rpc->n_subs; i++) {
        const cp2p__gs_subopt *s = &rpc->subs[i];
        gs_topic *t = topic_find(r, s->topic);
        if (!s->subscribe) {
            if (t != NULL && plist_has(&t->peers, p)) {
                peer_unsub(r, p, t);
            }
            continue;
        }
        if (t != NULL && plist_has(&t->peers, p)) {
            continue;
        }
        if (p->n_topics >= r->cfg.max_peer_subs) {
            r->st.subs_refused++;
            if (!penalised) {
                penalty(r, p, 1);
                penalised = true;
            }
            continue;
        }
        if ((t = topic_get_remote(r, p, s->topic)) == NULL) {
            r->st.subs_refused++;
            continue;
        }
        if (p->n_topics == p->cap_topics) {
            size_t cap = p->cap_topics == 0 ? 8 : p->cap_topics * 2;
            gs_topic **v = cp2p_realloc(p->topics, cap * sizeof(*v));
            if (v == NULL) {
                continue;
            }
            p->topics = v;
            p->cap_topics = cap;
        }
        if (plist_add(&t->peers, p) != 0) {
            continue;
        }
        p->topics[p->n_topics++] = t;
    }
}

static void handle_ihave(cp2p__gs_router *r, gs_peer *p, const cp2p__gs_rpc *rpc)
{
    if (rpc->n_ihave == 0) {
        return;
    }
    if ((r->score != NULL && score_of(r, p) < r->th.gossip_threshold) ||
        ++p->peerhave > r->cfg.max_ihave_msgs || p->iasked >= r->cfg.max_ihave_len) {
        r->st.ihave_ignored++;
        return;
    }
    size_t budget = r->cfg.max_ihave_len - p->iasked;
    cp2p_slice *want = cp2p_calloc(budget, sizeof(*want));
    cp2p_hashmap asked; /* of &want[i]: each ID is asked for once */
    size_t n = 0;
    int rc = 0;
    if (want == NULL || cp2p__hashmap_init(&asked, budget, slice_key) != 0) {
        cp2p_free(want);
        return;
    }
    for (size_t i = 0; i < rpc->n_ihave && n < budget && rc != CP2P_ENOMEM; i++) {
        gs_topic *t = topic_find(r, rpc->ihave[i].topic);
        if (t == NULL || !t->subscribed) {
            continue;
        }
        for (size_t j = 0; j < rpc->ihave[i].n_ids && n < budget && rc != CP2P_ENOMEM; j++) {
            cp2p_slice id = rpc->ihave[i].ids[j];
            if (seen_has(r, id.ptr, id.len)) {
                continue;
            }
            want[n] = id;
            /* CP2P_EINVAL: asked for already; CP2P_ENOMEM: ask for those collected so far. */
            if ((rc = cp2p__hashmap_insert(&asked, &want[n])) == 0) {
                n++;
            }
        }
    }
    if (n > 0) {
        p->iasked += (unsigned)n;
        out_idlist(r, p, 2, want, n);
        r->st.iwant_sent++;
        cp2p_slice pick = want[rnd(r) % n];
        if (r->n_promises < CP2P_GS_MAX_PROMISES) {
            r->promises[r->n_promises++] =
                (gs_promise){p->id, cp2p__hashmap_hash(pick.ptr, pick.len),
                             r->now + r->cfg.iwant_followup_ms};
        } else {
            r->st.promises_dropped++;
        }
    }
    cp2p__hashmap_fini(&asked, NULL, NULL);
    cp2p_free(want);
}

static void handle_iwant(cp2p__gs_router *r, gs_peer *p, const cp2p__gs_rpc *rpc)
{
    if (rpc->n_iwant == 0) {
        return;
    }
    if (r->score != NULL && score_of(r, p) < r->th.gossip_threshold) {
        r->st.iwant_ignored++;
        return;
    }
    for (size_t i = 0; i < rpc->n_iwant; i++) {
        for (size_t j = 0; j < rpc->iwant[i].n_ids; j++) {
            gs_m *m = mcache_get(r, rpc->iwant[i].ids[j].ptr, rpc->iwant[i].ids[j].len);
            if (m != NULL && p->iwant_served >= r->cfg.max_ihave_len) {
                r->st.iwant_ignored++; /* budget: max_ihave_len replies per heartbeat */
                return;
            }
            if (m != NULL) {
                uint64_t ph = cp2p__hashmap_hash(p->id.bytes, p->id.len);
                size_t k = 0;
                while (k < m->n_tx && m->tx[k].peer_h != ph) {
                    k++;
                }
                if (k == m->n_tx && k < GS_TX_PEERS) {
                    m->tx[m->n_tx].peer_h = ph;
                    m->tx[m->n_tx++].n = 0;
                }
                if (k < m->n_tx && ++m->tx[k].n > CP2P_GS_GOSSIP_RETRANSMISSION) {
                    r->st.iwant_ignored++;
                    continue;
                }
                p->iwant_served++;
                out_msg(r, p, m);
                r->st.iwant_served++;
            }
        }
    }
}

static void handle_graft(cp2p__gs_router *r, gs_peer *p, const char *topic)
{
    gs_topic *t = topic_find(r, topic);
    if (t == NULL || !t->subscribed || plist_has(&t->mesh, p) || !is_mesh_proto(p)) {
        return;
    }
    uint64_t until = backoff_until(t, &p->id);
    if (until > r->now) {
        r->st.graft_backoff_violations++;
        penalty(r, p, 1);
        /* Within graft_flood_ms of the PRUNE: a flood, penalise again (go GraftFloodThreshold). */
        if (r->now + r->cfg.prune_backoff_ms < until + r->cfg.graft_flood_ms) {
            penalty(r, p, 1);
        }
        r->st.graft_refused++;
        backoff_set(r, t, &p->id, r->now + r->cfg.prune_backoff_ms);
        out_prune(r, p, t, false, r->cfg.prune_backoff_ms);
        return;
    }
    if (score_of(r, p) < 0 || (t->mesh.n >= r->cfg.d_hi && !p->outbound)) {
        r->st.graft_refused++;
        bool px = score_of(r, p) >= 0;
        backoff_set(r, t, &p->id, r->now + r->cfg.prune_backoff_ms);
        out_prune(r, p, t, px, r->cfg.prune_backoff_ms);
        return;
    }
    mesh_add(r, t, p, false);
}

static void handle_prune(cp2p__gs_router *r, gs_peer *p, const cp2p__gs_prune *pr)
{
    r->st.prunes_in++;
    gs_topic *t = topic_find(r, pr->topic);
    if (t == NULL || !t->subscribed) {
        return;
    }
    uint64_t bo = r->cfg.prune_backoff_ms;
    if (pr->has_backoff) {
        /* Bounded: at most a day (our choice), so that until never overflows. */
        bo = (pr->backoff_s > 86400 ? 86400 : pr->backoff_s) * 1000;
    }
    if (plist_has(&t->mesh, p)) {
        mesh_remove(r, t, p, false, false, bo);
    } else {
        backoff_set(r, t, &p->id, r->now + bo);
    }
    if (pr->n_peers == 0) {
        return;
    }
    if (r->score != NULL && score_of(r, p) < r->th.accept_px_threshold) {
        r->st.px_ignored += pr->n_peers;
        return;
    }
    size_t lim = pr->n_peers < r->cfg.prune_peers ? pr->n_peers : r->cfg.prune_peers;
    for (size_t i = 0; i < lim; i++) {
        const cp2p__gs_px *x = &pr->peers[i];
        if (cp2p_peer_id_equal(&x->peer, &r->cfg.local) || peer_find(r, &x->peer) != NULL) {
            continue;
        }
        r->st.px_events++;
        ev_push(r, CP2P_GS_EV_PX, &x->peer, t->name, NULL, x->record, 0, false);
    }
}

static void handle_idontwant(cp2p__gs_router *r, gs_peer *p, const cp2p__gs_rpc *rpc)
{
    for (size_t i = 0; i < rpc->n_idontwant; i++) {
        for (size_t j = 0; j < rpc->idontwant[i].n_ids; j++) {
            r->st.idontwant_in++;
            if (p->dw_len == CP2P_GS_IDONTWANT_MAX) {
                r->st.idontwant_dropped++;
                continue;
            }
            const cp2p_slice *id = &rpc->idontwant[i].ids[j];
            p->dw[(p->dw_head + p->dw_len++) % CP2P_GS_IDONTWANT_MAX] =
                (gs_dw){cp2p__hashmap_hash(id->ptr, id->len), r->tick};
        }
    }
}

int cp2p__gs_on_rpc(cp2p__gs_router *r, const cp2p_peer_id *peer, const uint8_t *body,
                    size_t len, uint64_t now_ms)
{
    r->now = now_ms;
    gs_peer *p = peer_find(r, peer);
    const char *why = NULL;
    int rc;
    if (p == NULL) {
        return CP2P_ENOENT;
    }
    if (len > r->cfg.max_rpc_size) {
        r->st.rpcs_refused++;
        return CP2P_ELIMIT;
    }
    if (r->score != NULL && score_of(r, p) < r->th.graylist_threshold) {
        r->st.rpcs_graylisted++;
        return 0;
    }
    cp2p__gs_rpc rpc;
    if ((rc = cp2p__gs_rpc_decode(body, len, r->cfg.max_rpc_size, &rpc, &why)) != 0) {
        r->st.rpcs_refused++;
        return rc;
    }
    r->st.rpcs_in++;
    const cp2p__gs_rpc_drops *d = &rpc.dropped;
    r->st.decode_drops += (uint64_t)d->subs + d->msgs + d->control + d->bad_topic + d->bad_id +
                          d->bad_px;
    handle_subs(r, p, &rpc);
    for (size_t i = 0; i < rpc.n_msgs; i++) {
        if ((rc = handle_msg(r, p, &rpc.msgs[i])) != 0) {
            goto out;
        }
    }
    if (is_mesh_proto(p)) {
        handle_ihave(r, p, &rpc);
        handle_iwant(r, p, &rpc);
        for (size_t i = 0; i < rpc.n_graft; i++) {
            handle_graft(r, p, rpc.graft[i]);
        }
        for (size_t i = 0; i < rpc.n_prune; i++) {
            handle_prune(r, p, &rpc.prune[i]);
        }
        handle_idontwant(r, p, &rpc);
    }
out:
    cp2p__gs_rpc_fini(&rpc);
    return rc;
}

/* ---- topics (local) ---- */

static void announce(cp2p__gs_router *r, const char *topic, bool sub)
{
    for (size_t i = 0; i < r->n_peers; i++) {
        out_sub(r, r->peers[i], topic, sub);
    }
}

bool cp2p__gs_subscribed(const cp2p__gs_router *r, const char *topic)
{
    gs_topic *t = topic_find(r, topic);
    return t != NULL && t->subscribed;
}

int cp2p__gs_subscribe(cp2p__gs_router *r, const char *topic, uint64_t now_ms)
{
    r->now = now_ms;
    if (!topic_name_ok(topic)) {
        return CP2P_EINVAL;
    }
    gs_topic *t = topic_find(r, topic);
    if (t != NULL && t->subscribed) {
        return 0;
    }
    if (!local_room(r, t)) {
        r->st.topics_refused++;
        return CP2P_EFULL;
    }
    int rc;
    if (t == NULL && (rc = topic_new(r, topic, &t)) != 0) {
        return rc;
    }
    t->subscribed = true;
    topic_local_update(r, t);
    announce(r, topic, true);
    /* Mesh: fanout peers first, then others (not in backoff, score >= 0), up to D. */
    size_t n = 0;
    for (size_t i = 0; i < t->fanout.n; i++) {
        gs_peer *p = t->fanout.v[i];
        if (score_of(r, p) >= 0 && backoff_until(t, &p->id) <= r->now) {
            r->scratch[n++] = p;
        }
    }
    size_t nf = n;
    for (size_t i = 0; i < t->peers.n; i++) {
        gs_peer *p = t->peers.v[i];
        if (is_mesh_proto(p) && !plist_has(&t->fanout, p) && score_of(r, p) >= 0 &&
            backoff_until(t, &p->id) <= r->now) {
            r->scratch[n++] = p;
        }
    }
    shuffle(r, (void **)r->scratch, nf);
    shuffle(r, (void **)r->scratch + nf, n - nf);
    t->fanout.n = 0;
    for (size_t i = 0; i < n && t->mesh.n < r->cfg.d; i++) {
        mesh_add(r, t, r->scratch[i], true);
    }
    return 0;
}

int cp2p__gs_unsubscribe(cp2p__gs_router *r, const char *topic, uint64_t now_ms)
{
    r->now = now_ms;
    gs_topic *t = topic != NULL ? topic_find(r, topic) : NULL;
    if (t == NULL || !t->subscribed) {
        return CP2P_ENOENT;
    }
    announce(r, topic, false);
    while (t->mesh.n > 0) {
        mesh_remove(r, t, t->mesh.v[t->mesh.n - 1], true, true, r->cfg.unsub_backoff_ms);
    }
    t->subscribed = false;
    topic_local_update(r, t);
    return 0;
}

/* ---- publish ---- */

int cp2p__gs_publish(cp2p__gs_router *r, const char *topic, const uint8_t *data, size_t len,
                     uint64_t now_ms, cp2p_buf *msg_id)
{
    r->now = now_ms;
    if (!topic_name_ok(topic) || (data == NULL && len > 0)) {
        return CP2P_EINVAL;
    }
    uint8_t seq[8];
    cp2p_store_be64(seq, r->seqno);
    cp2p__gs_msg m = {.topic = topic, .has_data = true, .data = {data, len}};
    cp2p_buf sig, idb;
    cp2p_buf_init(&sig, CP2P_SIG_MAX);
    cp2p_buf_init(&idb, CP2P_GS_MAX_MSG_ID);
    gs_m *gm = NULL;
    int rc;
    if (r->cfg.sign_policy == CP2P_GS_STRICT_SIGN) {
        m.has_from = m.has_seqno = true;
        m.from = (cp2p_slice){r->cfg.local.bytes, r->cfg.local.len};
        m.seqno = (cp2p_slice){seq, 8};
        if (r->key_pb != NULL) {
            m.has_key = true;
            m.key = (cp2p_slice){r->key_pb, r->key_pb_len};
        }
        size_t bl = cp2p__gs_msg_body_size(&m, false);
        if (bl > r->cfg.max_rpc_size) {
            rc = CP2P_ELIMIT;
            goto out;
        }
        cp2p_buf b;
        cp2p_buf_init(&b, bl + sizeof(SIGN_PREFIX));
        if ((rc = cp2p_buf_append(&b, SIGN_PREFIX, sizeof(SIGN_PREFIX) - 1)) == 0 &&
            (rc = cp2p__gs_msg_encode(&m, false, &b)) == 0) {
            rc = cp2p_privkey_sign(r->cfg.key, b.ptr, b.len, &sig);
        }
        cp2p_buf_fini(&b);
        if (rc != 0) {
            goto out;
        }
        m.has_signature = true;
        m.signature = cp2p_buf_slice(&sig);
    }
    /* The frame: RPC field around the message, must fit one RPC. */
    if (cp2p__gs_rpc_msg_size(cp2p__gs_msg_body_size(&m, true)) > r->cfg.max_rpc_size) {
        rc = CP2P_ELIMIT;
        goto out;
    }
    if ((rc = r->cfg.msg_id(r->cfg.msg_id_ud, &m, &idb)) != 0) {
        goto out;
    }
    if (idb.len == 0 || seen_has(r, idb.ptr, idb.len)) {
        rc = idb.len == 0 ? CP2P_EINVAL : CP2P_ESTATE;
        goto out;
    }
    if ((gm = m_new(&m, idb.ptr, idb.len, &r->cfg.local)) == NULL) {
        rc = CP2P_ENOMEM;
        goto out;
    }
    gs_topic *t = topic_find(r, topic);
    if (t != NULL && !t->subscribed && !r->cfg.flood_publish) {
        fanout_fill(r, t);
    }
    size_t n = recipients(r, t, gm, true);
    if (n == 0 && !r->cfg.allow_publish_to_zero_peers) {
        rc = CP2P_ENOENT;
        goto out;
    }
    if (t != NULL && !t->subscribed && local_room(r, t)) {
        /* Fanout state makes t local (never evicted); past max_local_topics the message still
         * goes out (flood publish) but no fanout is kept. */
        fanout_fill(r, t);
        t->last_pub = now_ms;
        topic_local_update(r, t);
    }
    r->seqno++;
    seen_add(r, gm->id, gm->id_len);
    mcache_put(r, gm);
    for (size_t i = 0; i < n; i++) {
        out_msg(r, r->scratch[i], gm);
    }
    r->st.msgs_published++;
    if (msg_id != NULL) {
        rc = cp2p_buf_append(msg_id, gm->id, gm->id_len);
    }
out:
    m_unref(gm);
    cp2p_buf_fini(&sig);
    cp2p_buf_fini(&idb);
    return rc;
}

/* ---- heartbeat ---- */

typedef struct scored {
    gs_peer *p;
    double s;
} scored;

static int cmp_score_desc(const void *a, const void *b)
{
    double x = ((const scored *)a)->s, y = ((const scored *)b)->s;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* Candidates for grafting into t: not in mesh, meshsub, no backoff, score >= min (strictly
 * above when strict), outbound only when want_out. Into r->scratch; returns the count. */
static size_t graft_candidates(cp2p__gs_router *r, gs_topic *t, double min, bool strict,
                               bool want_out)
{
    size_t n = 0;
    for (size_t i = 0; i < t->peers.n; i++) {
        gs_peer *p = t->peers.v[i];
        double s = score_of(r, p);
        if (!is_mesh_proto(p) || plist_has(&t->mesh, p) || (want_out && !p->outbound) ||
            backoff_until(t, &p->id) > r->now || (strict ? s <= min : s < min)) {
            continue;
        }
        r->scratch[n++] = p;
    }
    shuffle(r, (void **)r->scratch, n);
    return n;
}

static size_t count_outbound(const gs_plist *l)
{
    size_t n = 0;
    for (size_t i = 0; i < l->n; i++) {
        n += l->v[i]->outbound ? 1 : 0;
    }
    return n;
}

static void maintain_mesh(cp2p__gs_router *r, gs_topic *t)
{
    const cp2p__gs_config *c = &r->cfg;
    for (size_t i = 0; i < t->mesh.n;) {
        gs_peer *p = t->mesh.v[i];
        if (score_of(r, p) < 0) {
            mesh_remove(r, t, p, true, false, c->prune_backoff_ms);
        } else {
            i++;
        }
    }
    if (t->mesh.n < c->d_lo) {
        size_t n = graft_candidates(r, t, 0, false, false);
        for (size_t i = 0; i < n && t->mesh.n < c->d; i++) {
            mesh_add(r, t, r->scratch[i], true);
        }
    }
    if (t->mesh.n > c->d_hi) {
        size_t n = t->mesh.n;
        scored *v = cp2p_malloc(n * sizeof(*v));
        if (v == NULL) {
            return;
        }
        for (size_t i = 0; i < n; i++) {
            v[i] = (scored){t->mesh.v[i], score_of(r, t->mesh.v[i])};
        }
        qsort(v, n, sizeof(*v), cmp_score_desc);
        /* Keep the d_score best, shuffle the rest. */
        for (size_t i = n; i > c->d_score + 1; i--) {
            size_t j = c->d_score + (size_t)(rnd(r) % (i - c->d_score));
            scored x = v[i - 1];
            v[i - 1] = v[j];
            v[j] = x;
        }
        /* Ensure d_out outbound peers among the first d: swap outbound peers from the tail
         * over inbound peers of the kept part (from its end, keeping the d_score best). */
        size_t out = 0;
        for (size_t i = 0; i < c->d; i++) {
            out += v[i].p->outbound ? 1 : 0;
        }
        for (size_t j = c->d; j < n && out < c->d_out; j++) {
            if (!v[j].p->outbound) {
                continue;
            }
            for (size_t k = c->d; k-- > 0;) {
                if (!v[k].p->outbound) {
                    scored x = v[k];
                    v[k] = v[j];
                    v[j] = x;
                    out++;
                    break;
                }
            }
        }
        for (size_t i = c->d; i < n; i++) {
            mesh_remove(r, t, v[i].p, true, true, c->prune_backoff_ms);
        }
        cp2p_free(v);
    }
    if (t->mesh.n >= c->d_lo) {
        size_t out = count_outbound(&t->mesh);
        if (out < c->d_out) {
            size_t n = graft_candidates(r, t, 0, false, true);
            for (size_t i = 0; i < n && out < c->d_out; i++, out++) {
                mesh_add(r, t, r->scratch[i], true);
            }
        }
    }
    if (r->score != NULL && c->opp_graft_ticks > 0 && r->tick % c->opp_graft_ticks == 0 &&
        t->mesh.n > 1) {
        size_t n = t->mesh.n;
        scored *v = cp2p_malloc(n * sizeof(*v));
        if (v == NULL) {
            return;
        }
        for (size_t i = 0; i < n; i++) {
            v[i] = (scored){t->mesh.v[i], score_of(r, t->mesh.v[i])};
        }
        qsort(v, n, sizeof(*v), cmp_score_desc);
        double median = v[n / 2].s;
        cp2p_free(v);
        if (median < r->th.opportunistic_graft_threshold) {
            size_t k = graft_candidates(r, t, median, true, false);
            for (size_t i = 0; i < k && i < c->opp_graft_peers; i++) {
                mesh_add(r, t, r->scratch[i], true);
            }
        }
    }
}

/* IHAVE to d_lazy (or gossip_factor of the candidates) peers outside the mesh/fanout. */
static int cmp_m_topic(const void *a, const void *b)
{
    return strcmp((*(gs_m *const *)a)->topic, (*(gs_m *const *)b)->topic);
}

/* g: the messages of the gossip windows sorted by topic (ng of them). */
static void emit_gossip(cp2p__gs_router *r, gs_topic *t, const gs_plist *exclude, gs_m **g,
                        size_t ng)
{
    size_t lo = 0, hi = ng;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(g[mid]->topic, t->name) < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    size_t nid = 0;
    while (lo + nid < ng && strcmp(g[lo + nid]->topic, t->name) == 0) {
        nid++;
    }
    if (nid == 0) {
        return;
    }
    cp2p_slice *ids = cp2p_malloc(nid * sizeof(*ids));
    if (ids == NULL) {
        return;
    }
    for (size_t i = 0; i < nid; i++) {
        ids[i] = (cp2p_slice){g[lo + i]->id, g[lo + i]->id_len};
    }
    double gth = r->score != NULL ? r->th.gossip_threshold : 0;
    size_t n = 0;
    for (size_t i = 0; i < t->peers.n; i++) {
        gs_peer *p = t->peers.v[i];
        if (is_mesh_proto(p) && !plist_has(exclude, p) && score_of(r, p) >= gth) {
            r->scratch[n++] = p;
        }
    }
    size_t target = (size_t)(r->cfg.gossip_factor * (double)n + 0.999999);
    if (target < r->cfg.d_lazy) {
        target = r->cfg.d_lazy;
    }
    shuffle(r, (void **)r->scratch, n);
    for (size_t i = 0; i < n && i < target; i++) {
        size_t m = nid;
        if (m > r->cfg.max_ihave_len) {
            /* A random max_ihave_len subset per peer (partial Fisher-Yates). */
            m = r->cfg.max_ihave_len;
            for (size_t a = 0; a < m; a++) {
                size_t b = a + (size_t)(rnd(r) % (nid - a));
                cp2p_slice x = ids[a];
                ids[a] = ids[b];
                ids[b] = x;
            }
        }
        out_ihave(r, r->scratch[i], t->name, ids, m);
    }
    cp2p_free(ids);
}

void cp2p__gs_heartbeat(cp2p__gs_router *r, uint64_t now_ms)
{
    r->now = now_ms;
    r->tick++;
    for (size_t i = 0; i < r->n_peers; i++) {
        gs_peer *p = r->peers[i];
        p->peerhave = p->iasked = p->iwant_served = 0;
        while (p->dw_len > 0 &&
               p->dw[p->dw_head].tick + CP2P_GS_IDONTWANT_TTL_TICKS <= r->tick) {
            p->dw_head = (p->dw_head + 1) % CP2P_GS_IDONTWANT_MAX;
            p->dw_len--;
        }
    }
    if (r->score != NULL && now_ms - r->last_refresh >= r->sp.decay_interval_ms) {
        cp2p__gs_score_refresh(r->score, now_ms);
        r->last_refresh = now_ms;
    }
    for (size_t i = 0; i < r->n_promises;) {
        if (r->promises[i].exp <= now_ms) {
            gs_peer *p = peer_find(r, &r->promises[i].peer);
            r->st.promises_broken++;
            if (p != NULL) {
                penalty(r, p, 1);
            } else if (r->score != NULL) {
                cp2p__gs_score_add_penalty(r->score, &r->promises[i].peer, 1);
            }
            r->promises[i] = r->promises[--r->n_promises];
        } else {
            i++;
        }
    }
    size_t ng = 0;
    for (size_t w = 0; w < r->cfg.mcache_gossip; w++) {
        ng += r->win_n[w];
    }
    gs_m **g = ng > 0 ? cp2p_malloc(ng * sizeof(*g)) : NULL;
    if (g == NULL) {
        ng = 0;
    }
    for (size_t w = 0, k = 0; w < r->cfg.mcache_gossip && g != NULL; w++) {
        for (size_t i = 0; i < r->win_n[w]; i++) {
            g[k++] = r->win[w][i];
        }
    }
    if (ng > 1) {
        qsort(g, ng, sizeof(*g), cmp_m_topic);
    }
    for (size_t ti = 0; ti < r->n_topics; ti++) {
        gs_topic *t = r->topics[ti];
        for (size_t i = 0; i < t->n_bo;) {
            if (t->bo[i].until + r->cfg.heartbeat_ms <= now_ms) {
                t->bo[i] = t->bo[--t->n_bo];
            } else {
                i++;
            }
        }
        if (t->subscribed) {
            maintain_mesh(r, t);
            emit_gossip(r, t, &t->mesh, g, ng);
        } else if (t->fanout.n > 0 || t->last_pub != 0) {
            if (t->last_pub + r->cfg.fanout_ttl_ms <= now_ms) {
                t->fanout.n = 0;
                t->last_pub = 0;
                topic_local_update(r, t);
                continue;
            }
            double pub_th = r->score != NULL ? r->th.publish_threshold : 0;
            for (size_t i = 0; i < t->fanout.n;) {
                if (score_of(r, t->fanout.v[i]) < pub_th) {
                    t->fanout.v[i] = t->fanout.v[--t->fanout.n];
                } else {
                    i++;
                }
            }
            fanout_fill(r, t);
            emit_gossip(r, t, &t->fanout, g, ng);
        }
    }
    cp2p_free(g);
    /* Forget topics nobody uses. */
    for (size_t ti = 0; ti < r->n_topics;) {
        gs_topic *t = r->topics[ti];
        if (!t->subscribed && t->peers.n == 0 && t->fanout.n == 0 && t->last_pub == 0 &&
            t->n_bo == 0) {
            topic_remove(r, t);
        } else {
            ti++;
        }
    }
    mcache_shift(r);
    seen_expire(r);
    pending_expire(r);
}

/* ---- output ---- */

static bool peer_dirty(const gs_peer *p)
{
    return p->subs_out.len > 0 || p->ctl_out.len > 0 || p->q_len > 0;
}

bool cp2p__gs_next_dirty_peer(cp2p__gs_router *r, cp2p_peer_id *out)
{
    for (size_t i = 0; i < r->n_peers; i++) {
        size_t k = (r->dirty_cursor + i) % r->n_peers;
        if (peer_dirty(r->peers[k])) {
            r->dirty_cursor = k + 1;
            *out = r->peers[k]->id;
            return true;
        }
    }
    return false;
}

/* Length of the field at the front of b (tag, uvarint length, body). */
static size_t entry_len(const uint8_t *b, size_t len)
{
    uint64_t n = 0;
    ptrdiff_t k = cp2p_uvarint_decode(b + 1, len - 1, &n);
    return k > 0 ? 1 + (size_t)k + (size_t)n : len;
}

ptrdiff_t cp2p__gs_take_rpc(cp2p__gs_router *r, const cp2p_peer_id *peer, cp2p_buf *out)
{
    gs_peer *p = peer_find(r, peer);
    int rc;
    if (p == NULL) {
        return CP2P_ENOENT;
    }
    size_t max = r->cfg.max_rpc_size;
    cp2p_buf_reset(out);
    if ((rc = cp2p_buf_reserve(out, max < 65536 ? max : 65536)) != 0) {
        return rc;
    }
    while (peer_dirty(p)) {
        size_t used = 0, ns = 0, nc = 0, nm = 0;
        while (ns < p->subs_out.len) {
            size_t e = entry_len(p->subs_out.ptr + ns, p->subs_out.len - ns);
            if (used + e > max) {
                break;
            }
            used += e;
            ns += e;
        }
        size_t ctl_room_left = max - used > 11 ? max - used - 11 : 0;
        size_t ne = 0;
        while (nc < p->ctl_out.len) {
            size_t e = entry_len(p->ctl_out.ptr + nc, p->ctl_out.len - nc);
            if (nc + e > ctl_room_left) {
                break;
            }
            nc += e;
            ne++;
        }
        if (nc > 0) {
            used += cp2p__gs_rpc_control_size(nc);
        }
        while (nm < p->q_len) {
            gs_m *m = p->q[(p->q_head + nm) % r->cfg.outbox_msgs];
            size_t e = cp2p__gs_rpc_msg_size(m->enc_len);
            if (used + e > max) {
                break;
            }
            used += e;
            nm++;
        }
        if (ns + nc + nm == 0) {
            /* The head entry can never fit a frame: drop it. */
            r->st.oversize_drops++;
            if (p->subs_out.len > 0) {
                cp2p_buf_consume(&p->subs_out,
                                 entry_len(p->subs_out.ptr, p->subs_out.len));
            } else if (p->ctl_out.len > 0) {
                cp2p_buf_consume(&p->ctl_out, entry_len(p->ctl_out.ptr, p->ctl_out.len));
                p->ctl_entries--;
            } else {
                m_unref(p->q[p->q_head]);
                p->q_head = (p->q_head + 1) % r->cfg.outbox_msgs;
                p->q_len--;
            }
            continue;
        }
        if ((rc = cp2p_buf_reserve(out, used)) != 0) {
            return rc;
        }
        if (ns > 0 && (rc = cp2p_buf_append(out, p->subs_out.ptr, ns)) != 0) {
            return rc;
        }
        if (nc > 0 && (rc = cp2p__gs_rpc_control_append(out, p->ctl_out.ptr, nc)) != 0) {
            cp2p_buf_reset(out);
            return rc;
        }
        for (size_t i = 0; i < nm; i++) {
            gs_m *m = p->q[(p->q_head + i) % r->cfg.outbox_msgs];
            if ((rc = cp2p__gs_rpc_msg_append(out, m->enc, m->enc_len)) != 0) {
                cp2p_buf_reset(out);
                return rc;
            }
        }
        cp2p_buf_consume(&p->subs_out, ns);
        cp2p_buf_consume(&p->ctl_out, nc);
        p->ctl_entries -= ne;
        for (size_t i = 0; i < nm; i++) {
            m_unref(p->q[p->q_head]);
            p->q_head = (p->q_head + 1) % r->cfg.outbox_msgs;
            p->q_len--;
        }
        r->st.frames_out++;
        return (ptrdiff_t)out->len;
    }
    return 0;
}

/* ---- introspection ---- */

size_t cp2p__gs_mesh_peers(const cp2p__gs_router *r, const char *topic, cp2p_peer_id *out,
                           size_t max)
{
    gs_topic *t = topic_find(r, topic);
    if (t == NULL || !t->subscribed) {
        return 0;
    }
    for (size_t i = 0; i < t->mesh.n && i < max; i++) {
        out[i] = t->mesh.v[i]->id;
    }
    return t->mesh.n;
}

size_t cp2p__gs_topic_peers(const cp2p__gs_router *r, const char *topic, cp2p_peer_id *out,
                            size_t max)
{
    gs_topic *t = topic_find(r, topic);
    if (t == NULL) {
        return 0;
    }
    for (size_t i = 0; i < t->peers.n && i < max; i++) {
        out[i] = t->peers.v[i]->id;
    }
    return t->peers.n;
}

bool cp2p__gs_in_mesh(const cp2p__gs_router *r, const char *topic, const cp2p_peer_id *peer)
{
    gs_topic *t = topic_find(r, topic);
    gs_peer *p = peer_find(r, peer);
    return t != NULL && p != NULL && plist_has(&t->mesh, p);
}

double cp2p__gs_peer_score(cp2p__gs_router *r, const cp2p_peer_id *peer, uint64_t now_ms)
{
    r->now = now_ms;
    return r->score != NULL ? cp2p__gs_score_get(r->score, peer, now_ms) : 0.0;
}

void cp2p__gs_set_app_score(cp2p__gs_router *r, const cp2p_peer_id *peer, double v)
{
    if (r->score != NULL) {
        cp2p__gs_score_set_app_score(r->score, peer, v);
    }
}

void cp2p__gs_stats_get(const cp2p__gs_router *r, cp2p__gs_stats *out)
{
    *out = r->st;
}
