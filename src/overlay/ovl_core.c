/* Overlay core (ovl_core.h): Babel-style distance vector, link state with Dijkstra,
 * forwarding, reliable sender and receiver dedup. */
#include "overlay/ovl_core.h"

#include <string.h>

#include "util/alloc.h"
#include "util/hashmap.h"
#include "util/queue.h"
#include "util/token_bucket.h"

#define NO_NBR (-1)
#define HOUSEKEEPING_MS 250
#define REQ_RESEND_MS 1000
#define VERIFY_SKIPPED 1 /* verify_route: not checked, the budget is spent */

/* One route: destination `node` via neighbour slot `nbr`, as that neighbour advertised it. */
typedef struct ovl_rt {
    int16_t nbr;
    uint16_t metric; /* advertised (CP2P_OVL_INF: retracted) */
    uint32_t seqno;
    uint64_t expires;
    uint8_t sig_len;
    uint8_t sig[CP2P_SIG_MAX];
} ovl_rt;

typedef struct ovl_dedup {
    uint64_t floor; /* ids below: stale */
    uint64_t last_ms;
    uint32_t n;
    uint64_t ids[]; /* sorted, n <= window */
} ovl_dedup;

typedef struct ovl_node {
    cp2p_peer_id id;
    bool used;
    int16_t nbr; /* our neighbour slot when directly linked, else NO_NBR */
    /* distance vector */
    ovl_rt *rts;
    uint16_t n_rts, cap_rts;
    int16_t sel;      /* neighbour slot of the selected route, NO_NBR: none */
    uint16_t metric;  /* our metric through sel */
    uint32_t seqno;   /* seqno of sel */
    bool has_fd;
    uint32_t fd_seqno;
    uint16_t fd_metric;
    bool advertised;  /* a finite route was advertised: a retraction is owed on loss */
    uint64_t req_ms;  /* last seqno request sent or forwarded for this origin */
    uint32_t req_seqno;
    /* signature cache: the newest verified (origin, seqno) */
    bool has_v;
    uint32_t vseqno;
    uint8_t vsig_len;
    uint8_t vsig[CP2P_SIG_MAX];
    cp2p_pubkey *pub;
    /* link state */
    cp2p__ovl_lsa *lsa;
    uint64_t lsa_time;
    uint32_t sp_dist;
    int32_t sp_prev; /* node index, -1 = us, -2 = unreached */
    bool sp_done;
    /* as destination of our reliable messages */
    uint32_t unacked;
    bool has_rtt;
    uint32_t srtt, rttvar;
    /* as source of messages to us */
    ovl_dedup *dd;
} ovl_node;

typedef struct ovl_nbr {
    bool used;
    uint32_t node;
    uint32_t cost;
    uint8_t *route_pending; /* bit per node slot */
    uint8_t *lsa_pending;   /* bit per node slot */
    bool self_route_pending, self_lsa_pending, dirty;
    cp2p_token_bucket verify; /* signature verifications this neighbour may cause */
    uint64_t last_heard;      /* last frame from it */
    bool silent;              /* nothing heard for route_expiry_ms: left out of our LSA and of
                               * source routes until it speaks again */
    uint32_t n_reqs;
    cp2p__ovl_req reqs[CP2P_OVL_MAX_REQS_PER_FRAME];
} ovl_nbr;

typedef struct ovl_pending {
    uint64_t id; /* hashmap key */
    uint32_t node;
    uint32_t flags;
    uint8_t hop_limit;
    uint32_t retries;
    uint64_t sent_ms, deadline;
    cp2p_buf data;
} ovl_pending;

typedef struct ovl_out {
    cp2p_peer_id to;
    cp2p_buf frame;
} ovl_out;

struct cp2p__ovl {
    cp2p__ovl_config cfg;
    cp2p_peer_id local;
    uint32_t seqno;
    uint8_t sig_len;
    uint8_t sig[CP2P_SIG_MAX]; /* over (local, seqno) */
    cp2p__ovl_lsa my_lsa;
    bool lsa_dirty;
    ovl_node *nodes;
    uint32_t n_nodes;
    cp2p_hashmap by_id;
    ovl_nbr nbrs[CP2P_OVL_MAX_NEIGHBOURS];
    uint32_t n_nbrs;
    bool spf_dirty;
    cp2p_hashmap pending; /* id -> ovl_pending */
    uint32_t n_pending;
    cp2p_queue out, events;
    uint32_t n_deliver_events;
    uint64_t next_update, next_lsa, next_house;
    cp2p__ovl_frame *rx, *tx; /* scratch */
    cp2p__ovl_stats st;
};

/* ---- helpers ---- */

static bool seqno_gt(uint32_t a, uint32_t b) /* serial-number arithmetic (RFC 1982) */
{
    return a != b && (uint32_t)(a - b) < 0x80000000u;
}

static uint16_t metric_add(uint16_t m, uint32_t cost)
{
    uint32_t r = (uint32_t)m + cost;
    return r >= CP2P_OVL_INF ? (uint16_t)CP2P_OVL_INF : (uint16_t)r;
}

static cp2p_slice node_key(const void *item)
{
    const ovl_node *n = item;
    return (cp2p_slice){.ptr = n->id.bytes, .len = n->id.len};
}

static cp2p_slice pending_key(const void *item)
{
    const ovl_pending *p = item;
    return (cp2p_slice){.ptr = (const uint8_t *)&p->id, .len = sizeof(p->id)};
}

static uint32_t node_idx(const cp2p__ovl *o, const ovl_node *n)
{
    return (uint32_t)(n - o->nodes);
}

static ovl_node *find_node(const cp2p__ovl *o, const cp2p_peer_id *id)
{
    return cp2p__hashmap_find(&o->by_id, id->bytes, id->len);
}

static ovl_node *get_node(cp2p__ovl *o, const cp2p_peer_id *id)
{
    ovl_node *n = find_node(o, id);
    if (n != NULL) {
        return n;
    }
    for (uint32_t i = 0; i < o->cfg.max_nodes; i++) {
        if (!o->nodes[i].used) {
            n = &o->nodes[i];
            *n = (ovl_node){.id = *id, .used = true, .nbr = NO_NBR, .sel = NO_NBR,
                            .metric = CP2P_OVL_INF, .sp_prev = -2};
            if (cp2p__hashmap_insert(&o->by_id, n) != 0) {
                n->used = false;
                return NULL;
            }
            o->n_nodes++;
            return n;
        }
    }
    o->st.nodes_refused++;
    return NULL;
}

static void free_node(cp2p__ovl *o, ovl_node *n)
{
    uint32_t idx = node_idx(o, n);
    (void)cp2p__hashmap_remove(&o->by_id, n);
    cp2p_free(n->rts);
    cp2p_free(n->lsa);
    cp2p_free(n->dd);
    cp2p_pubkey_free(n->pub);
    for (uint32_t i = 0; i < CP2P_OVL_MAX_NEIGHBOURS; i++) {
        if (o->nbrs[i].used) {
            o->nbrs[i].route_pending[idx / 8] &= (uint8_t)~(1u << (idx % 8));
            o->nbrs[i].lsa_pending[idx / 8] &= (uint8_t)~(1u << (idx % 8));
        }
    }
    *n = (ovl_node){0};
    o->n_nodes--;
}

static void bit_set(uint8_t *bits, uint32_t i)
{
    bits[i / 8] |= (uint8_t)(1u << (i % 8));
}

static bool bit_take(uint8_t *bits, uint32_t i)
{
    bool v = (bits[i / 8] >> (i % 8)) & 1u;
    bits[i / 8] &= (uint8_t)~(1u << (i % 8));
    return v;
}

static void out_release(void *item, void *ud)
{
    (void)ud;
    ovl_out *x = item;
    cp2p_buf_fini(&x->frame);
    cp2p_free(x);
}

static void event_release(void *item, void *ud)
{
    (void)ud;
    cp2p__ovl_event *ev = item;
    cp2p_buf_fini(&ev->data);
    cp2p_free(ev);
}

/* Queue one encoded frame for neighbour slot `nbr`. */
static void emit(cp2p__ovl *o, const cp2p_peer_id *to, const cp2p__ovl_frame *f)
{
    ovl_out *x = cp2p_calloc(1, sizeof(*x));
    if (x == NULL) {
        o->st.out_dropped++;
        return;
    }
    x->to = *to;
    cp2p_buf_init(&x->frame, CP2P_OVL_MAX_FRAME);
    if (cp2p__ovl_frame_encode(f, &x->frame) != 0 || cp2p__queue_push(&o->out, x) != 0) {
        o->st.out_dropped++;
        out_release(x, NULL);
    }
}

static int sign_seqno(cp2p__ovl *o)
{
    uint8_t in[CP2P_OVL_ROUTE_SIGIN_MAX];
    size_t n = cp2p__ovl_route_sigin(&o->local, o->seqno, in);
    cp2p_buf b;
    int rc;
    cp2p_buf_init(&b, CP2P_SIG_MAX);
    if ((rc = cp2p_privkey_sign(o->cfg.key, in, n, &b)) == 0) {
        memcpy(o->sig, b.ptr, b.len);
        o->sig_len = (uint8_t)b.len;
    }
    cp2p_buf_fini(&b);
    return rc;
}

static int node_pubkey(cp2p__ovl *o, ovl_node *n, const cp2p_pubkey **out)
{
    if (n->pub == NULL && cp2p_pubkey_from_peer_id(&n->id, &n->pub) != 0) {
        o->st.unverifiable++;
        return CP2P_EBADSIG;
    }
    *out = n->pub;
    return 0;
}

/* Spend one verification of neighbour nbr's budget: false (counted) when it is spent. */
static bool verify_allowed(cp2p__ovl *o, int16_t nbr, uint64_t now)
{
    if (cp2p__token_bucket_take(&o->nbrs[nbr].verify, 1, now)) {
        return true;
    }
    o->st.verify_budget++;
    return false;
}

/* Check a route update's signature (cached per newest verified seqno). Returns 0,
 * CP2P_EBADSIG, or VERIFY_SKIPPED (the neighbour's verification budget is spent: skip it). */
static int verify_route(cp2p__ovl *o, int16_t nbr, ovl_node *n, const cp2p__ovl_route *r,
                        uint64_t now)
{
    const cp2p_pubkey *pub;
    uint8_t in[CP2P_OVL_ROUTE_SIGIN_MAX];
    if (n->has_v && n->vseqno == r->seqno && n->vsig_len == r->sig_len &&
        memcmp(n->vsig, r->sig, r->sig_len) == 0) {
        return 0;
    }
    if (!verify_allowed(o, nbr, now)) {
        return VERIFY_SKIPPED;
    }
    if (node_pubkey(o, n, &pub) != 0) {
        return CP2P_EBADSIG;
    }
    size_t len = cp2p__ovl_route_sigin(&r->origin, r->seqno, in);
    if (cp2p_pubkey_verify(pub, in, len, r->sig, r->sig_len) != 0) {
        o->st.bad_signature++;
        return CP2P_EBADSIG;
    }
    if (!n->has_v || seqno_gt(r->seqno, n->vseqno)) {
        n->has_v = true;
        n->vseqno = r->seqno;
        n->vsig_len = r->sig_len;
        memcpy(n->vsig, r->sig, r->sig_len);
    }
    return 0;
}

/* A periodic interval with jitter: uniform in [3/4, 1] of it (RFC 8966 section 3.7: periodic
 * messages are jittered, so that nodes started together do not stay in step). */
static uint64_t jittered(cp2p__ovl *o, uint64_t interval)
{
    uint64_t quarter = interval / 4;
    return interval - (quarter > 0 ? o->cfg.rand(o->cfg.rand_ud) % (quarter + 1) : 0);
}

/* ---- distance vector ---- */

static ovl_rt *find_rt(ovl_node *n, int16_t nbr)
{
    for (uint16_t i = 0; i < n->n_rts; i++) {
        if (n->rts[i].nbr == nbr) {
            return &n->rts[i];
        }
    }
    return NULL;
}

static void drop_rt(ovl_node *n, int16_t nbr)
{
    for (uint16_t i = 0; i < n->n_rts; i++) {
        if (n->rts[i].nbr == nbr) {
            n->rts[i] = n->rts[--n->n_rts];
            return;
        }
    }
}

static bool feasible(const ovl_node *n, uint32_t seqno, uint16_t metric)
{
    if (metric == CP2P_OVL_INF) {
        return false;
    }
    return !n->has_fd || seqno_gt(seqno, n->fd_seqno) ||
           (seqno == n->fd_seqno && metric < n->fd_metric);
}

static void mark_route_all(cp2p__ovl *o, ovl_node *n)
{
    uint32_t idx = node_idx(o, n);
    for (uint32_t i = 0; i < CP2P_OVL_MAX_NEIGHBOURS; i++) {
        if (o->nbrs[i].used) {
            bit_set(o->nbrs[i].route_pending, idx);
            o->nbrs[i].dirty = true;
        }
    }
}

static void mark_self_all(cp2p__ovl *o)
{
    for (uint32_t i = 0; i < CP2P_OVL_MAX_NEIGHBOURS; i++) {
        if (o->nbrs[i].used) {
            o->nbrs[i].self_route_pending = true;
            o->nbrs[i].dirty = true;
        }
    }
}

static void queue_req(cp2p__ovl *o, int16_t nbr, const cp2p_peer_id *origin, uint32_t seqno,
                      uint8_t hops)
{
    ovl_nbr *b = &o->nbrs[nbr];
    if (b->n_reqs == CP2P_OVL_MAX_REQS_PER_FRAME) {
        return; /* this neighbour's requests for this turn are full: a later one retries */
    }
    b->reqs[b->n_reqs++] = (cp2p__ovl_req){.origin = *origin, .seqno = seqno, .hop_count = hops};
    b->dirty = true;
}

/* Choose the best feasible route of n (RFC 8966 3.6); on a change, a triggered update. */
static void select_route(cp2p__ovl *o, ovl_node *n, uint64_t now)
{
    int16_t best = NO_NBR;
    uint16_t best_m = CP2P_OVL_INF;
    uint32_t best_s = 0;
    bool infeasible_left = false;
    for (uint16_t i = 0; i < n->n_rts; i++) {
        const ovl_rt *r = &n->rts[i];
        if (r->metric == CP2P_OVL_INF) {
            continue;
        }
        if (!feasible(n, r->seqno, r->metric)) {
            infeasible_left = true;
            continue;
        }
        uint16_t m = metric_add(r->metric, o->nbrs[r->nbr].cost);
        if (m == CP2P_OVL_INF) {
            continue;
        }
        /* Lower metric wins; on a tie keep the current route (no flapping), then the lower
         * slot (deterministic). */
        if (best == NO_NBR || m < best_m ||
            (m == best_m && (r->nbr == n->sel || (best != n->sel && r->nbr < best)))) {
            best = r->nbr;
            best_m = m;
            best_s = r->seqno;
        }
    }
    bool changed = best != n->sel || best_m != n->metric || (best != NO_NBR && best_s != n->seqno);
    n->sel = best;
    n->metric = best_m;
    n->seqno = best_s;
    if (best != NO_NBR) {
        /* We advertise (best_s, best_m) from now on: the feasibility distance follows. */
        if (!n->has_fd || seqno_gt(best_s, n->fd_seqno)) {
            n->has_fd = true;
            n->fd_seqno = best_s;
            n->fd_metric = best_m;
        } else if (best_s == n->fd_seqno && best_m < n->fd_metric) {
            n->fd_metric = best_m;
        }
        if (changed) {
            n->advertised = true;
            mark_route_all(o, n);
        }
        return;
    }
    if (changed && n->advertised) {
        mark_route_all(o, n); /* a retraction */
    }
    /* Starved with routes left that are not feasible: ask the origin for a newer seqno. */
    if (infeasible_left && n->has_fd &&
        (now >= n->req_ms + REQ_RESEND_MS || n->req_ms == 0 ||
         seqno_gt(n->fd_seqno + 1, n->req_seqno))) {
        n->req_ms = now;
        n->req_seqno = n->fd_seqno + 1;
        for (int16_t i = 0; i < CP2P_OVL_MAX_NEIGHBOURS; i++) {
            if (o->nbrs[i].used) {
                queue_req(o, i, &n->id, n->fd_seqno + 1, CP2P_OVL_REQ_HOPS);
                o->st.requests_sent++;
            }
        }
    }
}

static int on_route(cp2p__ovl *o, int16_t nbr, const cp2p__ovl_route *r, uint64_t now)
{
    o->st.updates_received++;
    if (cp2p_peer_id_equal(&r->origin, &o->local)) {
        /* A seqno of ours from an earlier run, still in the network: jump above it. Only a
         * seqno we really signed (not a forged one) moves ours. */
        uint8_t in[CP2P_OVL_ROUTE_SIGIN_MAX];
        size_t len = cp2p__ovl_route_sigin(&r->origin, r->seqno, in);
        if (seqno_gt(r->seqno, o->seqno) &&
            cp2p_pubkey_verify(cp2p_privkey_public(o->cfg.key), in, len, r->sig, r->sig_len) ==
                0) {
            o->seqno = r->seqno + 1;
            if (sign_seqno(o) == 0) {
                mark_self_all(o);
            }
        }
        return 0;
    }
    ovl_node *n = get_node(o, &r->origin);
    if (n == NULL) {
        return 0; /* table full: counted */
    }
    int rc = verify_route(o, nbr, n, r, now);
    if (rc == VERIFY_SKIPPED) {
        return 0; /* skipped, counted */
    }
    if (rc != 0) {
        return rc;
    }
    ovl_rt *rt = find_rt(n, nbr);
    if (rt == NULL) {
        if (r->metric == CP2P_OVL_INF) {
            return 0; /* a retraction of a route we never had */
        }
        if (n->n_rts == n->cap_rts) {
            uint16_t cap = n->cap_rts == 0 ? 2 : (uint16_t)(n->cap_rts * 2);
            if (cap > CP2P_OVL_MAX_NEIGHBOURS) {
                cap = CP2P_OVL_MAX_NEIGHBOURS;
            }
            ovl_rt *p = cp2p_realloc(n->rts, cap * sizeof(*p));
            if (p == NULL) {
                return CP2P_ENOMEM;
            }
            n->rts = p;
            n->cap_rts = cap;
        }
        rt = &n->rts[n->n_rts++];
        rt->nbr = nbr;
    }
    rt->metric = r->metric;
    rt->seqno = r->seqno;
    rt->expires = now + o->cfg.route_expiry_ms;
    rt->sig_len = r->sig_len;
    memcpy(rt->sig, r->sig, r->sig_len);
    if (r->metric != CP2P_OVL_INF && !feasible(n, r->seqno, r->metric)) {
        o->st.updates_infeasible++;
    }
    select_route(o, n, now);
    return 0;
}

static void on_req(cp2p__ovl *o, int16_t nbr, const cp2p__ovl_req *q, uint64_t now)
{
    o->st.requests_received++;
    if (cp2p_peer_id_equal(&q->origin, &o->local)) {
        if (seqno_gt(q->seqno, o->seqno)) {
            o->seqno = q->seqno;
            if (sign_seqno(o) != 0) {
                return;
            }
            mark_self_all(o);
        } else {
            o->nbrs[nbr].self_route_pending = true;
            o->nbrs[nbr].dirty = true;
        }
        return;
    }
    ovl_node *n = find_node(o, &q->origin);
    if (n == NULL) {
        return;
    }
    if (n->sel != NO_NBR && !seqno_gt(q->seqno, n->seqno)) {
        bit_set(o->nbrs[nbr].route_pending, node_idx(o, n)); /* we can answer */
        o->nbrs[nbr].dirty = true;
        return;
    }
    /* Forward toward the origin, once per seqno and second. */
    if (n->sel == NO_NBR || n->sel == nbr || q->hop_count <= 1) {
        return;
    }
    if (n->req_seqno == q->seqno && n->req_ms != 0 && now < n->req_ms + REQ_RESEND_MS) {
        return;
    }
    n->req_seqno = q->seqno;
    n->req_ms = now;
    queue_req(o, n->sel, &q->origin, q->seqno, (uint8_t)(q->hop_count - 1));
    o->st.requests_forwarded++;
}

/* ---- link state ---- */

static int sign_lsa(cp2p__ovl *o)
{
    cp2p_buf in, sig;
    int rc;
    cp2p_buf_init(&in, 8192);
    cp2p_buf_init(&sig, CP2P_SIG_MAX);
    if ((rc = cp2p__ovl_lsa_sigin(&o->my_lsa, &in)) == 0 &&
        (rc = cp2p_privkey_sign(o->cfg.key, in.ptr, in.len, &sig)) == 0) {
        memcpy(o->my_lsa.sig, sig.ptr, sig.len);
        o->my_lsa.sig_len = (uint8_t)sig.len;
    }
    cp2p_buf_fini(&in);
    cp2p_buf_fini(&sig);
    return rc;
}

static void originate_lsa(cp2p__ovl *o, uint64_t now)
{
    cp2p__ovl_lsa *l = &o->my_lsa;
    l->seq++;
    l->n_links = 0;
    for (uint32_t i = 0; i < CP2P_OVL_MAX_NEIGHBOURS; i++) {
        if (o->nbrs[i].used && !o->nbrs[i].silent) {
            l->links[l->n_links].peer = o->nodes[o->nbrs[i].node].id;
            l->links[l->n_links].cost = o->nbrs[i].cost;
            l->n_links++;
        }
    }
    if (sign_lsa(o) != 0) {
        return;
    }
    o->st.lsas_originated++;
    o->lsa_dirty = false;
    o->spf_dirty = true;
    o->next_lsa = now + jittered(o, o->cfg.lsa_refresh_ms);
    for (uint32_t i = 0; i < CP2P_OVL_MAX_NEIGHBOURS; i++) {
        if (o->nbrs[i].used) {
            o->nbrs[i].self_lsa_pending = true;
            o->nbrs[i].dirty = true;
        }
    }
}

static int on_lsa(cp2p__ovl *o, int16_t nbr, const cp2p__ovl_lsa *l, uint64_t now)
{
    o->st.lsas_received++;
    if (cp2p_peer_id_equal(&l->origin, &o->local)) {
        if (l->seq >= o->my_lsa.seq) { /* ours from an earlier run: go above it */
            o->my_lsa.seq = l->seq;
            o->lsa_dirty = true;
        }
        return 0;
    }
    ovl_node *n = find_node(o, &l->origin);
    if (n != NULL && n->lsa != NULL && n->lsa->seq >= l->seq) {
        return 0; /* not newer: already flooded */
    }
    if (n == NULL && (n = get_node(o, &l->origin)) == NULL) {
        return 0;
    }
    const cp2p_pubkey *pub;
    cp2p_buf in;
    int rc;
    if (!verify_allowed(o, nbr, now)) {
        return 0; /* skipped, counted */
    }
    if (node_pubkey(o, n, &pub) != 0) {
        return CP2P_EBADSIG;
    }
    cp2p_buf_init(&in, 8192);
    if ((rc = cp2p__ovl_lsa_sigin(l, &in)) == 0 &&
        cp2p_pubkey_verify(pub, in.ptr, in.len, l->sig, l->sig_len) != 0) {
        o->st.bad_signature++;
        rc = CP2P_EBADSIG;
    }
    cp2p_buf_fini(&in);
    if (rc != 0) {
        return rc;
    }
    if (n->lsa == NULL && (n->lsa = cp2p_malloc(sizeof(*n->lsa))) == NULL) {
        return CP2P_ENOMEM;
    }
    *n->lsa = *l;
    n->lsa_time = now;
    o->spf_dirty = true;
    uint32_t idx = node_idx(o, n);
    for (int16_t i = 0; i < CP2P_OVL_MAX_NEIGHBOURS; i++) {
        if (o->nbrs[i].used && i != nbr) {
            bit_set(o->nbrs[i].lsa_pending, idx);
            o->nbrs[i].dirty = true;
            o->st.lsas_flooded++;
        }
    }
    return 0;
}

static bool lsa_lists(const cp2p__ovl_lsa *l, const cp2p_peer_id *peer)
{
    for (uint32_t i = 0; i < l->n_links; i++) {
        if (cp2p_peer_id_equal(&l->links[i].peer, peer)) {
            return true;
        }
    }
    return false;
}

/* Relax the edges out of `from` (its LSA l; dist d; prev p as sp_prev encodes it). */
static void relax(cp2p__ovl *o, const cp2p__ovl_lsa *l, const cp2p_peer_id *from_id,
                  uint32_t d, int32_t p)
{
    for (uint32_t i = 0; i < l->n_links; i++) {
        ovl_node *v = find_node(o, &l->links[i].peer);
        if (v == NULL || v->sp_done || v->lsa == NULL) {
            continue;
        }
        /* Two-way check: v must list `from` too. */
        if (!lsa_lists(v->lsa, from_id)) {
            continue;
        }
        uint32_t nd = d + l->links[i].cost;
        if (nd < v->sp_dist) {
            v->sp_dist = nd;
            v->sp_prev = p;
        }
    }
}

static void run_spf(cp2p__ovl *o)
{
    if (!o->spf_dirty) {
        return;
    }
    o->spf_dirty = false;
    o->st.spf_runs++;
    for (uint32_t i = 0; i < o->cfg.max_nodes; i++) {
        o->nodes[i].sp_dist = UINT32_MAX;
        o->nodes[i].sp_prev = -2;
        o->nodes[i].sp_done = false;
    }
    relax(o, &o->my_lsa, &o->local, 0, -1);
    for (;;) {
        ovl_node *u = NULL;
        for (uint32_t i = 0; i < o->cfg.max_nodes; i++) {
            ovl_node *c = &o->nodes[i];
            if (c->used && !c->sp_done && c->sp_dist != UINT32_MAX &&
                (u == NULL || c->sp_dist < u->sp_dist)) {
                u = c;
            }
        }
        if (u == NULL) {
            break;
        }
        u->sp_done = true;
        relax(o, u->lsa, &u->id, u->sp_dist, (int32_t)node_idx(o, u));
    }
}

int cp2p__ovl_source_route(cp2p__ovl *o, const cp2p_peer_id *dst, cp2p_peer_id *path, size_t max,
                           uint32_t *dist)
{
    ovl_node *n = find_node(o, dst);
    run_spf(o);
    if (n == NULL || !n->sp_done) {
        return 0;
    }
    size_t len = 0;
    for (const ovl_node *c = n; c != NULL;
         c = c->sp_prev >= 0 ? &o->nodes[c->sp_prev] : NULL) {
        len++;
    }
    if (len > max) {
        return CP2P_ENOSPC;
    }
    size_t i = len;
    for (const ovl_node *c = n; c != NULL; c = c->sp_prev >= 0 ? &o->nodes[c->sp_prev] : NULL) {
        path[--i] = c->id;
    }
    if (dist != NULL) {
        *dist = n->sp_dist;
    }
    return (int)len;
}

/* ---- output ---- */

static void fill_route(cp2p__ovl *o, ovl_node *n, cp2p__ovl_frame *f)
{
    cp2p__ovl_route *r = &f->routes[f->n_routes];
    r->origin = n->id;
    if (n->sel != NO_NBR) {
        const ovl_rt *rt = find_rt(n, n->sel);
        r->seqno = rt->seqno;
        r->metric = n->metric;
        r->sig_len = rt->sig_len;
        memcpy(r->sig, rt->sig, rt->sig_len);
    } else if (n->has_v) {
        r->seqno = n->vseqno;
        r->metric = CP2P_OVL_INF;
        r->sig_len = n->vsig_len;
        memcpy(r->sig, n->vsig, n->vsig_len);
    } else {
        return;
    }
    f->n_routes++;
    o->st.updates_sent++;
}

static void flush_nbr(cp2p__ovl *o, ovl_nbr *b)
{
    cp2p__ovl_frame *f = o->tx;
    const cp2p_peer_id *to = &o->nodes[b->node].id;
    uint32_t i = 0, j = 0;
    bool more = true;
    b->dirty = false;
    while (more) {
        cp2p__ovl_frame_clear(f);
        if (b->self_route_pending) {
            b->self_route_pending = false;
            cp2p__ovl_route *r = &f->routes[f->n_routes++];
            r->origin = o->local;
            r->seqno = o->seqno;
            r->metric = 0;
            r->sig_len = o->sig_len;
            memcpy(r->sig, o->sig, o->sig_len);
            o->st.updates_sent++;
        }
        if (b->self_lsa_pending) {
            b->self_lsa_pending = false;
            f->lsas[f->n_lsas++] = o->my_lsa;
        }
        for (; i < o->cfg.max_nodes && f->n_routes < CP2P_OVL_MAX_ROUTES_PER_FRAME; i++) {
            if (bit_take(b->route_pending, i) && o->nodes[i].used) {
                fill_route(o, &o->nodes[i], f);
            }
        }
        for (; j < o->cfg.max_nodes && f->n_lsas < CP2P_OVL_MAX_LSAS_PER_FRAME; j++) {
            if (bit_take(b->lsa_pending, j) && o->nodes[j].used && o->nodes[j].lsa != NULL) {
                f->lsas[f->n_lsas++] = *o->nodes[j].lsa;
            }
        }
        memcpy(f->reqs, b->reqs, b->n_reqs * sizeof(b->reqs[0]));
        f->n_reqs = b->n_reqs;
        b->n_reqs = 0;
        more = i < o->cfg.max_nodes || j < o->cfg.max_nodes;
        if (f->n_routes + f->n_lsas + f->n_reqs > 0) {
            emit(o, to, f);
        }
    }
}

static void flush(cp2p__ovl *o, uint64_t now)
{
    if (o->lsa_dirty) {
        originate_lsa(o, now);
    }
    for (uint32_t i = 0; i < CP2P_OVL_MAX_NEIGHBOURS; i++) {
        if (o->nbrs[i].used && o->nbrs[i].dirty) {
            flush_nbr(o, &o->nbrs[i]);
        }
    }
}

/* ---- forwarding ---- */

static int16_t random_nbr(cp2p__ovl *o, int16_t except)
{
    int16_t cand[CP2P_OVL_MAX_NEIGHBOURS];
    uint32_t n = 0;
    for (int16_t i = 0; i < CP2P_OVL_MAX_NEIGHBOURS; i++) {
        if (o->nbrs[i].used && i != except) {
            cand[n++] = i;
        }
    }
    return n == 0 ? NO_NBR : cand[o->cfg.rand(o->cfg.rand_ud) % n];
}

/* Send packet p (hop_limit and path_idx already set for the next hop) one hop on. from: the
 * neighbour slot it came from (NO_NBR: ours). Returns 0 or CP2P_ENOENT (no route). */
static int route_packet(cp2p__ovl *o, cp2p__ovl_packet *p, int16_t from)
{
    const cp2p_peer_id *next;
    if ((p->flags & CP2P_OVL_F_SOURCE) != 0) {
        next = &p->path[p->path_idx];
        ovl_node *n = find_node(o, next);
        if (n == NULL || n->nbr == NO_NBR || o->nbrs[n->nbr].silent) {
            o->st.dropped_no_route++;
            return CP2P_ENOENT;
        }
    } else {
        ovl_node *n = find_node(o, &p->dst);
        int16_t via = n != NULL ? n->sel : NO_NBR;
        if (via == NO_NBR && o->cfg.random_fallback) {
            via = random_nbr(o, from);
            if (via != NO_NBR) {
                o->st.random_forwards++;
            }
        }
        if (via == NO_NBR) {
            o->st.dropped_no_route++;
            return CP2P_ENOENT;
        }
        next = &o->nodes[o->nbrs[via].node].id;
    }
    cp2p__ovl_frame *f = o->tx;
    cp2p__ovl_frame_clear(f);
    f->has_packet = true;
    f->packet = *p;
    uint64_t before = o->st.out_dropped;
    emit(o, next, f);
    return o->st.out_dropped != before ? CP2P_EFULL : 0;
}

/* Build and route a packet that starts here. */
static int originate(cp2p__ovl *o, cp2p__ovl_pkt_kind kind, const cp2p_peer_id *dst,
                     uint64_t id, uint32_t flags, uint8_t hop_limit, cp2p_slice payload)
{
    cp2p__ovl_packet local;
    local.kind = kind;
    local.src = o->local;
    local.dst = *dst;
    local.id = id;
    local.hop_limit = hop_limit;
    local.flags = flags;
    local.n_path = 0;
    local.path_idx = 0;
    local.payload = payload;
    if ((flags & CP2P_OVL_F_SOURCE) != 0) {
        int n = cp2p__ovl_source_route(o, dst, local.path, CP2P_OVL_MAX_HOPS, NULL);
        if (n <= 0 || n > hop_limit) {
            o->st.dropped_no_route++;
            return CP2P_ENOENT;
        }
        local.n_path = (uint8_t)n;
    }
    return route_packet(o, &local, NO_NBR);
}

static uint64_t rto(const cp2p__ovl *o, const ovl_node *n)
{
    uint64_t r = n->has_rtt ? (uint64_t)n->srtt + 4 * (uint64_t)n->rttvar : o->cfg.rto_initial_ms;
    if (r < o->cfg.rto_min_ms) {
        r = o->cfg.rto_min_ms;
    }
    return r > o->cfg.rto_max_ms ? o->cfg.rto_max_ms : r;
}

static void push_event(cp2p__ovl *o, cp2p__ovl_event *ev)
{
    if (cp2p__queue_push(&o->events, ev) != 0) {
        event_release(ev, NULL); /* cannot happen: capacity covers every pending message */
    }
}

static void finish_pending(cp2p__ovl *o, ovl_pending *pm, cp2p__ovl_event_kind kind, int status)
{
    ovl_node *n = &o->nodes[pm->node];
    cp2p__ovl_event *ev = cp2p_calloc(1, sizeof(*ev));
    if (ev != NULL) {
        ev->kind = kind;
        ev->peer = n->id;
        ev->id = pm->id;
        ev->status = status;
        push_event(o, ev);
    }
    (void)cp2p__hashmap_remove(&o->pending, pm);
    n->unacked--;
    o->n_pending--;
    cp2p_buf_fini(&pm->data);
    cp2p_free(pm);
}

/* Dedup: 1 new (recorded), 0 duplicate, -1 stale (below the floor). */
static int dedup_check(cp2p__ovl *o, ovl_node *n, uint64_t id, bool record, uint64_t now)
{
    ovl_dedup *d = n->dd;
    if (d == NULL) {
        if (!record) {
            return 1;
        }
        d = cp2p_calloc(1, sizeof(*d) + o->cfg.dedup_window * sizeof(uint64_t));
        if (d == NULL) {
            return -1;
        }
        n->dd = d;
        o->st.dedup_sources++;
    }
    if (id < d->floor) {
        return -1;
    }
    uint32_t lo = 0, hi = d->n;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (d->ids[mid] < id) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (lo < d->n && d->ids[lo] == id) {
        return 0;
    }
    if (!record) {
        return 1;
    }
    d->last_ms = now;
    if (d->n == o->cfg.dedup_window) {
        /* Forget the lowest: it becomes the floor. */
        d->floor = d->ids[0] + 1;
        memmove(d->ids, d->ids + 1, (d->n - 1) * sizeof(uint64_t));
        d->n--;
        if (id < d->floor) {
            return -1;
        }
        lo = lo > 0 ? lo - 1 : 0;
    }
    memmove(d->ids + lo + 1, d->ids + lo, (d->n - lo) * sizeof(uint64_t));
    d->ids[lo] = id;
    d->n++;
    return 1;
}

static void send_ack(cp2p__ovl *o, const cp2p__ovl_packet *p)
{
    uint32_t flags = p->flags & CP2P_OVL_F_SOURCE;
    cp2p__ovl_packet a = {.kind = CP2P_OVL_PKT_ACK, .src = o->local, .dst = p->src, .id = p->id,
                          .hop_limit = o->cfg.hop_limit, .flags = flags};
    if (flags != 0) {
        /* Back along the way it came: the hops before us, reversed, then the source. */
        uint8_t k = 0;
        for (int i = (int)p->n_path - 2; i >= 0; i--) {
            a.path[k++] = p->path[i];
        }
        a.path[k++] = p->src;
        a.n_path = k;
    }
    o->st.acks_sent++;
    (void)route_packet(o, &a, NO_NBR);
}

static void deliver(cp2p__ovl *o, const cp2p__ovl_packet *p, uint64_t now)
{
    bool reliable = (p->flags & CP2P_OVL_F_RELIABLE) != 0;
    ovl_node *n = get_node(o, &p->src);
    if (n == NULL) {
        return; /* node table full (nodes_refused): not acked, the sender retries */
    }
    int fresh = dedup_check(o, n, p->id, false, now);
    if (fresh < 0) {
        o->st.stale++;
        return;
    }
    if (fresh == 0) {
        o->st.duplicates++;
        if (reliable) {
            send_ack(o, p);
        }
        return;
    }
    if (o->n_deliver_events >= o->cfg.max_events) {
        o->st.dropped_events_full++; /* not recorded, not acked: the sender retransmits */
        return;
    }
    cp2p__ovl_event *ev = cp2p_calloc(1, sizeof(*ev));
    if (ev == NULL) {
        return;
    }
    cp2p_buf_init(&ev->data, CP2P_OVL_MAX_PAYLOAD);
    if ((p->payload.len > 0 && cp2p_buf_append(&ev->data, p->payload.ptr, p->payload.len) != 0) ||
        dedup_check(o, n, p->id, true, now) != 1) {
        event_release(ev, NULL);
        o->st.stale++;
        return;
    }
    ev->kind = CP2P_OVL_EV_DELIVER;
    ev->peer = p->src;
    ev->id = p->id;
    ev->reliable = reliable;
    o->n_deliver_events++;
    o->st.delivered++;
    push_event(o, ev);
    if (reliable) {
        send_ack(o, p);
    }
}

static void on_ack(cp2p__ovl *o, const cp2p__ovl_packet *p, uint64_t now)
{
    ovl_pending *pm = cp2p__hashmap_find(&o->pending, &p->id, sizeof(p->id));
    if (pm == NULL || !cp2p_peer_id_equal(&o->nodes[pm->node].id, &p->src)) {
        o->st.acks_unknown++;
        return;
    }
    o->st.acks_received++;
    ovl_node *n = &o->nodes[pm->node];
    if (pm->retries == 0 && now >= pm->sent_ms) { /* Karn: only unambiguous samples */
        uint32_t s = (uint32_t)(now - pm->sent_ms);
        if (!n->has_rtt) {
            n->has_rtt = true;
            n->srtt = s;
            n->rttvar = s / 2;
        } else {
            uint32_t diff = n->srtt > s ? n->srtt - s : s - n->srtt;
            n->rttvar = (3 * n->rttvar + diff) / 4;
            n->srtt = (7 * n->srtt + s) / 8;
        }
    }
    finish_pending(o, pm, CP2P_OVL_EV_ACKED, 0);
}

static int on_packet(cp2p__ovl *o, int16_t from, cp2p__ovl_packet *p, uint64_t now,
                     const char **why)
{
    if (cp2p_peer_id_equal(&p->src, &o->local)) {
        *why = "overlay packet claiming to come from us";
        return CP2P_EPROTO;
    }
    if ((p->flags & CP2P_OVL_F_SOURCE) != 0 &&
        !cp2p_peer_id_equal(&p->path[p->path_idx], &o->local)) {
        o->st.dropped_bad_route++;
        return 0;
    }
    if (cp2p_peer_id_equal(&p->dst, &o->local)) {
        if (p->kind == CP2P_OVL_PKT_DATA) {
            deliver(o, p, now);
        } else {
            on_ack(o, p, now);
        }
        return 0;
    }
    if (p->hop_limit <= 1) {
        o->st.dropped_hop_limit++;
        return 0;
    }
    p->hop_limit--;
    if ((p->flags & CP2P_OVL_F_SOURCE) != 0) {
        p->path_idx++; /* < n_path: the last hop is the destination, not us */
    }
    if (route_packet(o, p, from) == 0) {
        o->st.forwarded++;
    }
    return 0;
}

/* ---- public ---- */

void cp2p__ovl_config_default(cp2p__ovl_config *cfg)
{
    *cfg = (cp2p__ovl_config){
        .max_nodes = CP2P_OVL_MAX_NODES,
        .update_interval_ms = CP2P_OVL_UPDATE_INTERVAL_MS,
        .lsa_refresh_ms = CP2P_OVL_LSA_REFRESH_MS,
        .hop_limit = CP2P_OVL_DEFAULT_HOP_LIMIT,
        .max_unacked = CP2P_OVL_MAX_UNACKED,
        .max_unacked_per_dst = CP2P_OVL_MAX_UNACKED_PER_DST,
        .retry_limit = CP2P_OVL_RETRY_LIMIT,
        .rto_initial_ms = CP2P_OVL_RTO_INITIAL_MS,
        .rto_min_ms = CP2P_OVL_RTO_MIN_MS,
        .rto_max_ms = CP2P_OVL_RTO_MAX_MS,
        .dedup_window = CP2P_OVL_DEDUP_WINDOW,
        .verify_per_sec = CP2P_OVL_VERIFY_PER_SEC,
        .verify_burst = CP2P_OVL_VERIFY_BURST,
        .max_out_frames = 4096,
        .max_events = 4096,
    };
}

static uint64_t retry_budget(const cp2p__ovl_config *c)
{
    uint64_t sum = 0, r = c->rto_max_ms;
    for (uint32_t i = 0; i <= c->retry_limit; i++) {
        sum += r;
    }
    return sum;
}

int cp2p__ovl_new(const cp2p__ovl_config *cfg, uint64_t now, cp2p__ovl **out)
{
    cp2p__ovl *o;
    int rc;
    if (cfg == NULL || cfg->key == NULL || cfg->rand == NULL || cfg->max_nodes == 0 ||
        cfg->max_nodes > CP2P_OVL_MAX_NODES * 16 || cfg->update_interval_ms == 0 ||
        cfg->lsa_refresh_ms == 0 || cfg->hop_limit < 2 || cfg->hop_limit > CP2P_OVL_MAX_HOPS ||
        cfg->max_unacked == 0 || cfg->max_unacked_per_dst == 0 || cfg->rto_min_ms == 0 ||
        cfg->rto_min_ms > cfg->rto_max_ms || cfg->dedup_window == 0 ||
        cfg->max_out_frames == 0 || cfg->max_events == 0 || cfg->verify_per_sec == 0 ||
        cfg->verify_burst == 0 ||
        (cfg->dedup_ttl_ms != 0 && cfg->dedup_ttl_ms <= retry_budget(cfg))) {
        return CP2P_EINVAL;
    }
    if ((o = cp2p_calloc(1, sizeof(*o))) == NULL) {
        return CP2P_ENOMEM;
    }
    o->cfg = *cfg;
    if (o->cfg.route_expiry_ms == 0) {
        o->cfg.route_expiry_ms = o->cfg.update_interval_ms * 7 / 2;
    }
    if (o->cfg.lsa_max_age_ms == 0) {
        o->cfg.lsa_max_age_ms = o->cfg.lsa_refresh_ms * 3;
    }
    if (o->cfg.dedup_ttl_ms == 0) {
        o->cfg.dedup_ttl_ms = 4 * retry_budget(cfg);
    }
    rc = CP2P_ENOMEM;
    o->nodes = cp2p_calloc(cfg->max_nodes, sizeof(*o->nodes));
    o->rx = cp2p_malloc(sizeof(*o->rx));
    o->tx = cp2p_malloc(sizeof(*o->tx));
    if (o->nodes == NULL || o->rx == NULL || o->tx == NULL) {
        goto fail;
    }
    cp2p__ovl_frame_clear(o->rx);
    if ((rc = cp2p__hashmap_init(&o->by_id, cfg->max_nodes, node_key)) != 0 ||
        (rc = cp2p__hashmap_init(&o->pending, cfg->max_unacked, pending_key)) != 0 ||
        (rc = cp2p__queue_init(&o->out, cfg->max_out_frames, CP2P_QUEUE_REJECT, NULL, NULL)) !=
            0 ||
        (rc = cp2p__queue_init(&o->events, (size_t)cfg->max_events + cfg->max_unacked,
                               CP2P_QUEUE_REJECT, NULL, NULL)) != 0) {
        goto fail;
    }
    if ((rc = cp2p_peer_id_from_pubkey(cp2p_privkey_public(cfg->key), &o->local)) != 0) {
        goto fail;
    }
    o->seqno = cfg->initial_seqno;
    o->my_lsa.origin = o->local;
    o->my_lsa.seq = cfg->initial_lsa_seq;
    if ((rc = sign_seqno(o)) != 0) {
        goto fail;
    }
    o->lsa_dirty = true;
    o->next_update = now + o->cfg.update_interval_ms;
    o->next_lsa = now;
    o->next_house = now + HOUSEKEEPING_MS;
    *out = o;
    return 0;
fail:
    cp2p__ovl_free(o);
    return rc;
}

static void release_pending(void *item, void *ud)
{
    (void)ud;
    ovl_pending *pm = item;
    cp2p_buf_fini(&pm->data);
    cp2p_free(pm);
}

void cp2p__ovl_free(cp2p__ovl *o)
{
    if (o == NULL) {
        return;
    }
    if (o->nodes != NULL) {
        for (uint32_t i = 0; i < o->cfg.max_nodes; i++) {
            if (o->nodes[i].used) {
                cp2p_free(o->nodes[i].rts);
                cp2p_free(o->nodes[i].lsa);
                cp2p_free(o->nodes[i].dd);
                cp2p_pubkey_free(o->nodes[i].pub);
            }
        }
    }
    for (uint32_t i = 0; i < CP2P_OVL_MAX_NEIGHBOURS; i++) {
        cp2p_free(o->nbrs[i].route_pending);
        cp2p_free(o->nbrs[i].lsa_pending);
    }
    cp2p__hashmap_fini(&o->pending, release_pending, NULL);
    cp2p__hashmap_fini(&o->by_id, NULL, NULL);
    cp2p__queue_fini(&o->out, out_release, NULL);
    cp2p__queue_fini(&o->events, event_release, NULL);
    cp2p_free(o->nodes);
    if (o->rx != NULL) {
        cp2p__ovl_frame_release(o->rx);
    }
    cp2p_free(o->rx);
    cp2p_free(o->tx);
    cp2p_free(o);
}

const cp2p_peer_id *cp2p__ovl_local(const cp2p__ovl *o)
{
    return &o->local;
}

int cp2p__ovl_add_neighbour(cp2p__ovl *o, const cp2p_peer_id *peer, uint32_t cost, uint64_t now)
{
    if (cost == 0 || cost > CP2P_OVL_MAX_COST || cp2p_peer_id_equal(peer, &o->local)) {
        return CP2P_EINVAL;
    }
    ovl_node *n = get_node(o, peer);
    if (n == NULL) {
        return CP2P_EFULL;
    }
    if (n->nbr != NO_NBR) {
        if (o->nbrs[n->nbr].cost != cost) {
            o->nbrs[n->nbr].cost = cost;
            o->lsa_dirty = true;
            for (uint32_t i = 0; i < o->cfg.max_nodes; i++) {
                if (o->nodes[i].used) {
                    select_route(o, &o->nodes[i], now);
                }
            }
            flush(o, now);
        }
        return 0;
    }
    int16_t slot = NO_NBR;
    for (int16_t i = 0; i < CP2P_OVL_MAX_NEIGHBOURS; i++) {
        if (!o->nbrs[i].used) {
            slot = i;
            break;
        }
    }
    if (slot == NO_NBR) {
        return CP2P_EFULL;
    }
    ovl_nbr *b = &o->nbrs[slot];
    size_t bits = (o->cfg.max_nodes + 7) / 8;
    if (b->route_pending == NULL) {
        b->route_pending = cp2p_calloc(1, bits);
        b->lsa_pending = cp2p_calloc(1, bits);
        if (b->route_pending == NULL || b->lsa_pending == NULL) {
            return CP2P_ENOMEM;
        }
    }
    memset(b->route_pending, 0, bits);
    memset(b->lsa_pending, 0, bits);
    b->used = true;
    b->node = node_idx(o, n);
    b->cost = cost;
    cp2p__token_bucket_init(&b->verify, o->cfg.verify_per_sec, o->cfg.verify_burst, now);
    b->last_heard = now;
    b->silent = false;
    b->n_reqs = 0;
    n->nbr = slot;
    o->n_nbrs++;
    /* A full dump to the new neighbour: our route, every selected route, the whole LSDB. */
    b->self_route_pending = true;
    b->dirty = true;
    for (uint32_t i = 0; i < o->cfg.max_nodes; i++) {
        if (o->nodes[i].used && o->nodes[i].sel != NO_NBR) {
            bit_set(b->route_pending, i);
        }
        if (o->nodes[i].used && o->nodes[i].lsa != NULL) {
            bit_set(b->lsa_pending, i);
        }
    }
    o->lsa_dirty = true;
    flush(o, now);
    return 0;
}

void cp2p__ovl_remove_neighbour(cp2p__ovl *o, const cp2p_peer_id *peer, uint64_t now)
{
    ovl_node *n = find_node(o, peer);
    if (n == NULL || n->nbr == NO_NBR) {
        return;
    }
    int16_t slot = n->nbr;
    o->nbrs[slot].used = false;
    o->nbrs[slot].dirty = false;
    o->n_nbrs--;
    n->nbr = NO_NBR;
    for (uint32_t i = 0; i < o->cfg.max_nodes; i++) {
        ovl_node *c = &o->nodes[i];
        if (c->used && find_rt(c, slot) != NULL) {
            drop_rt(c, slot);
            select_route(o, c, now);
        }
    }
    o->lsa_dirty = true;
    flush(o, now);
}

bool cp2p__ovl_is_neighbour(const cp2p__ovl *o, const cp2p_peer_id *peer)
{
    const ovl_node *n = find_node(o, peer);
    return n != NULL && n->nbr != NO_NBR;
}

int cp2p__ovl_on_frame(cp2p__ovl *o, const cp2p_peer_id *from, const uint8_t *in, size_t len,
                       uint64_t now, const char **why)
{
    cp2p__ovl_frame *f = o->rx;
    int rc = cp2p__ovl_frame_decode(in, len, f, why);
    if (rc != 0) {
        o->st.frames_rejected++;
        if (rc == CP2P_ENOTSUP) {
            o->st.version_mismatch++;
        }
        return rc;
    }
    ovl_node *fn = find_node(o, from);
    int16_t nbr = fn != NULL ? fn->nbr : NO_NBR;
    if (nbr == NO_NBR) {
        /* Frames may arrive before the link is up on our side (framed.h): routing state needs
         * the link, so only packets are taken; routes and LSAs come again in a full dump. */
        if (f->has_packet) {
            rc = on_packet(o, NO_NBR, &f->packet, now, why);
        }
        goto out;
    }
    o->nbrs[nbr].last_heard = now;
    if (o->nbrs[nbr].silent) {
        o->nbrs[nbr].silent = false; /* back: in our LSA again */
        o->lsa_dirty = true;
    }
    for (uint32_t i = 0; i < f->n_lsas && rc == 0; i++) {
        rc = on_lsa(o, nbr, &f->lsas[i], now);
    }
    for (uint32_t i = 0; i < f->n_routes && rc == 0; i++) {
        rc = on_route(o, nbr, &f->routes[i], now);
    }
    for (uint32_t i = 0; i < f->n_reqs && rc == 0; i++) {
        on_req(o, nbr, &f->reqs[i], now);
    }
    if (rc == CP2P_EBADSIG) {
        *why = "overlay route update or LSA with a bad signature";
    } else if (rc != 0) {
        *why = "out of memory";
    }
    if (rc == 0 && f->has_packet) {
        rc = on_packet(o, nbr, &f->packet, now, why);
    }
out:
    if (rc != 0) {
        o->st.frames_rejected++;
    }
    cp2p__ovl_frame_release(f);
    flush(o, now);
    return rc;
}

int cp2p__ovl_send(cp2p__ovl *o, const cp2p_peer_id *dst, const void *data, size_t len,
                   uint32_t flags, uint8_t hop_limit, uint64_t id, uint64_t now)
{
    if ((flags & ~CP2P_OVL_F_ALL) != 0 || hop_limit > CP2P_OVL_MAX_HOPS ||
        cp2p_peer_id_equal(dst, &o->local) || (len > 0 && data == NULL)) {
        return CP2P_EINVAL;
    }
    if (len > CP2P_OVL_MAX_PAYLOAD) {
        return CP2P_ELIMIT;
    }
    if (o->cfg.source_routing) {
        flags |= CP2P_OVL_F_SOURCE;
    }
    if (hop_limit == 0) {
        hop_limit = o->cfg.hop_limit;
    }
    cp2p_slice payload = {.ptr = data, .len = len};
    if ((flags & CP2P_OVL_F_RELIABLE) == 0) {
        int rc = originate(o, CP2P_OVL_PKT_DATA, dst, id, flags, hop_limit, payload);
        if (rc == 0) {
            o->st.sent++;
        }
        return rc;
    }
    ovl_node *n = get_node(o, dst);
    if (n == NULL) {
        return CP2P_EFULL;
    }
    if (o->n_pending >= o->cfg.max_unacked || n->unacked >= o->cfg.max_unacked_per_dst) {
        return CP2P_EFULL;
    }
    ovl_pending *pm = cp2p_calloc(1, sizeof(*pm));
    if (pm == NULL) {
        return CP2P_ENOMEM;
    }
    *pm = (ovl_pending){.id = id, .node = node_idx(o, n), .flags = flags, .hop_limit = hop_limit,
                        .sent_ms = now};
    cp2p_buf_init(&pm->data, CP2P_OVL_MAX_PAYLOAD);
    if ((len > 0 && cp2p_buf_append(&pm->data, data, len) != 0) ||
        cp2p__hashmap_find(&o->pending, &id, sizeof(id)) != NULL ||
        cp2p__hashmap_insert(&o->pending, pm) != 0) {
        release_pending(pm, NULL);
        return CP2P_ENOMEM;
    }
    n->unacked++;
    o->n_pending++;
    o->st.sent++;
    o->st.sent_reliable++;
    pm->deadline = now + rto(o, n);
    /* No route yet: kept, retried at the deadline. */
    (void)originate(o, CP2P_OVL_PKT_DATA, dst, id, flags, hop_limit, payload);
    return 0;
}

uint64_t cp2p__ovl_deadline(const cp2p__ovl *o)
{
    uint64_t d = o->next_update;
    if (o->next_lsa < d) {
        d = o->next_lsa;
    }
    if (o->next_house < d) {
        d = o->next_house;
    }
    size_t cur = 0;
    const ovl_pending *pm;
    while ((pm = cp2p__hashmap_next(&o->pending, &cur)) != NULL) {
        if (pm->deadline < d) {
            d = pm->deadline;
        }
    }
    return d;
}

static void retransmit(cp2p__ovl *o, uint64_t now)
{
    size_t cur = 0;
    ovl_pending *pm;
    /* Collected first: finishing removes from the map being walked. */
    ovl_pending *due[256];
    size_t n_due = 0;
    while ((pm = cp2p__hashmap_next(&o->pending, &cur)) != NULL && n_due < 256) {
        if (pm->deadline <= now) {
            due[n_due++] = pm;
        }
    }
    for (size_t i = 0; i < n_due; i++) {
        pm = due[i];
        ovl_node *n = &o->nodes[pm->node];
        if (pm->retries >= o->cfg.retry_limit) {
            o->st.failed++;
            finish_pending(o, pm, CP2P_OVL_EV_FAILED, CP2P_ETIMEDOUT);
            continue;
        }
        pm->retries++;
        o->st.retransmissions++;
        uint64_t r = rto(o, n) << (pm->retries < 16 ? pm->retries : 16);
        pm->deadline = now + (r > o->cfg.rto_max_ms ? o->cfg.rto_max_ms : r);
        (void)originate(o, CP2P_OVL_PKT_DATA, &n->id, pm->id, pm->flags, pm->hop_limit,
                        (cp2p_slice){.ptr = pm->data.ptr, .len = pm->data.len});
    }
}

static void housekeeping(cp2p__ovl *o, uint64_t now)
{
    /* A neighbour sends at least its periodic update every update_interval_ms: silence for
     * route_expiry_ms means the link carries nothing (a connection stalled by a partition),
     * even if it has not closed. Its routes expire at the same time. */
    for (uint32_t i = 0; i < CP2P_OVL_MAX_NEIGHBOURS; i++) {
        ovl_nbr *b = &o->nbrs[i];
        if (b->used && !b->silent && now >= b->last_heard + o->cfg.route_expiry_ms) {
            b->silent = true;
            o->lsa_dirty = true;
            o->st.neighbours_silent++;
        }
    }
    for (uint32_t i = 0; i < o->cfg.max_nodes; i++) {
        ovl_node *n = &o->nodes[i];
        if (!n->used) {
            continue;
        }
        bool reselect = false;
        for (uint16_t k = 0; k < n->n_rts;) {
            ovl_rt *r = &n->rts[k];
            if (now >= r->expires) {
                if (r->metric != CP2P_OVL_INF) { /* expired: retracted, kept a while */
                    r->metric = CP2P_OVL_INF;
                    r->expires = now + o->cfg.route_expiry_ms;
                    reselect = true;
                } else {
                    *r = n->rts[--n->n_rts];
                    continue;
                }
            }
            k++;
        }
        if (reselect) {
            select_route(o, n, now);
        }
        if (n->lsa != NULL && now >= n->lsa_time + o->cfg.lsa_max_age_ms) {
            cp2p_free(n->lsa);
            n->lsa = NULL;
            o->spf_dirty = true;
        }
        if (n->dd != NULL && now >= n->dd->last_ms + o->cfg.dedup_ttl_ms) {
            cp2p_free(n->dd);
            n->dd = NULL;
            o->st.dedup_sources--;
        }
        /* A node nothing refers to any more is forgotten. */
        if (n->nbr == NO_NBR && n->n_rts == 0 && n->lsa == NULL && n->dd == NULL &&
            n->unacked == 0) {
            free_node(o, n);
        }
    }
}

void cp2p__ovl_on_timeout(cp2p__ovl *o, uint64_t now)
{
    if (now >= o->next_house) {
        o->next_house = now + HOUSEKEEPING_MS;
        housekeeping(o, now);
    }
    if (now >= o->next_update) {
        o->next_update = now + jittered(o, o->cfg.update_interval_ms);
        for (uint32_t i = 0; i < CP2P_OVL_MAX_NEIGHBOURS; i++) {
            ovl_nbr *b = &o->nbrs[i];
            if (!b->used) {
                continue;
            }
            b->self_route_pending = true;
            b->dirty = true;
            for (uint32_t k = 0; k < o->cfg.max_nodes; k++) {
                if (o->nodes[k].used && o->nodes[k].sel != NO_NBR) {
                    bit_set(b->route_pending, k);
                }
            }
        }
    }
    if (now >= o->next_lsa) {
        o->lsa_dirty = true; /* refresh */
    }
    retransmit(o, now);
    flush(o, now);
}

bool cp2p__ovl_take_out(cp2p__ovl *o, cp2p_peer_id *to, cp2p_buf *frame)
{
    ovl_out *x = cp2p__queue_pop(&o->out);
    if (x == NULL) {
        return false;
    }
    *to = x->to;
    *frame = x->frame;
    cp2p_free(x);
    return true;
}

bool cp2p__ovl_poll_event(cp2p__ovl *o, cp2p__ovl_event *ev)
{
    cp2p__ovl_event *x = cp2p__queue_pop(&o->events);
    if (x == NULL) {
        return false;
    }
    if (x->kind == CP2P_OVL_EV_DELIVER) {
        o->n_deliver_events--;
    }
    *ev = *x;
    cp2p_free(x);
    return true;
}

bool cp2p__ovl_events_pending(const cp2p__ovl *o)
{
    return cp2p__queue_len(&o->events) > 0;
}

void cp2p__ovl_event_fini(cp2p__ovl_event *ev)
{
    cp2p_buf_fini(&ev->data);
}

static void route_info(const cp2p__ovl *o, const ovl_node *n, cp2p__ovl_route_info *out)
{
    out->dst = n->id;
    out->next_hop = o->nodes[o->nbrs[n->sel].node].id;
    out->metric = n->metric;
    out->seqno = n->seqno;
    out->feasible_alternatives = false;
    for (uint16_t i = 0; i < n->n_rts; i++) {
        if (n->rts[i].nbr != n->sel && feasible(n, n->rts[i].seqno, n->rts[i].metric)) {
            out->feasible_alternatives = true;
        }
    }
}

bool cp2p__ovl_route_get(const cp2p__ovl *o, const cp2p_peer_id *dst, cp2p__ovl_route_info *out)
{
    const ovl_node *n = find_node(o, dst);
    if (n == NULL || n->sel == NO_NBR) {
        return false;
    }
    route_info(o, n, out);
    return true;
}

bool cp2p__ovl_route_next(const cp2p__ovl *o, size_t *cursor, cp2p__ovl_route_info *out)
{
    for (; *cursor < o->cfg.max_nodes; (*cursor)++) {
        const ovl_node *n = &o->nodes[*cursor];
        if (n->used && n->sel != NO_NBR) {
            route_info(o, n, out);
            (*cursor)++;
            return true;
        }
    }
    return false;
}

bool cp2p__ovl_lsa_next(const cp2p__ovl *o, size_t *cursor, const cp2p__ovl_lsa **out)
{
    if (*cursor == 0) {
        *cursor = 1;
        *out = &o->my_lsa;
        return true;
    }
    for (; *cursor - 1 < o->cfg.max_nodes; (*cursor)++) {
        const ovl_node *n = &o->nodes[*cursor - 1];
        if (n->used && n->lsa != NULL) {
            *out = n->lsa;
            (*cursor)++;
            return true;
        }
    }
    return false;
}

uint32_t cp2p__ovl_unacked_to(const cp2p__ovl *o, const cp2p_peer_id *dst)
{
    const ovl_node *n = find_node(o, dst);
    return n != NULL ? n->unacked : 0;
}

void cp2p__ovl_stats_get(const cp2p__ovl *o, cp2p__ovl_stats *out)
{
    *out = o->st;
    out->nodes = o->n_nodes;
    out->neighbours = o->n_nbrs;
    out->unacked = o->n_pending;
    out->routes = 0;
    out->lsas = 0;
    for (uint32_t i = 0; i < o->cfg.max_nodes; i++) {
        if (o->nodes[i].used) {
            out->routes += o->nodes[i].sel != NO_NBR;
            out->lsas += o->nodes[i].lsa != NULL;
        }
    }
}
