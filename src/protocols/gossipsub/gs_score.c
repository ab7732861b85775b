/* Gossipsub v1.1 peer scoring (gs_score.h).
 *
 * Design notes.
 * - Three kinds of keyed objects (peers, delivery records, IPs) and the scored topics live in
 *   keyed hash maps (src/util/hashmap.h: SipHash under a per-process random key): peer IDs and
 *   message IDs come from the network, so an unkeyed hash would let a peer build long probe
 *   chains. The key only places entries; no result depends on it.
 * - Peers are also kept in a dense array, so refresh walks them in a fixed order and can drop
 *   one while walking (swap with the last, walking backwards).
 * - Delivery records also sit in a FIFO ring in creation order: expiry and the bound both drop
 *   from the head. A record holds its ID, status, times and the senders of copies seen during
 *   validation (bounded, then freed once the outcome is known, as go does).
 * - Per-peer topic stats exist only for scored topics, so a peer has at most n_topics of them;
 *   the array grows on demand.
 * - P1 time and P3 activation are computed from the graft time and now_ms when needed, rather
 *   than at refresh as go does, so scores do not depend on when refresh ran.
 * - P3 counts only while the peer is in the mesh (go keeps it after a prune; see leave_mesh).
 * - Retention follows go: only a non-positive score is retained; retained counters do not decay
 *   and the peer keeps counting for P6 until it is forgotten. */
#include "protocols/gossipsub/gs_score.h"

#include <math.h>
#include <string.h>

#include "util/alloc.h"
#include "util/hashmap.h"
#include "util/limits.h"

/* ---- objects ---- */

typedef struct topic {
    char *name;
    size_t len;
    uint32_t idx;
    cp2p__gs_topic_score_params tp;
} topic;

typedef struct ipent {
    uint32_t count; /* peers tracked with this IP */
    size_t len;
    char ip[CP2P_GS_SCORE_IP_MAX];
} ipent;

typedef struct tstats {
    uint32_t topic;
    bool in_mesh;
    bool mesh_active;
    uint64_t graft_ms;
    double first, mesh, failure, invalid;
} tstats;

typedef struct peer {
    cp2p_peer_id id;
    size_t dense_idx;
    bool connected;
    uint64_t expire_ms;
    ipent *ip;
    double behaviour_penalty, app_score;
    tstats *ts;
    size_t n_ts, cap_ts;
} peer;

enum { DLV_UNKNOWN, DLV_VALID, DLV_INVALID, DLV_IGNORED, DLV_THROTTLED };

typedef struct rec {
    uint64_t first_seen, validated;
    uint8_t status;
    uint16_t n_peers, cap_peers;
    cp2p_peer_id *peers;
    size_t id_len;
    uint8_t id[];
} rec;

struct cp2p__gs_score {
    cp2p__gs_score_params p; /* topics/topic_params point into our copies */
    topic *topics;
    const char **topic_names;
    cp2p__gs_topic_score_params *topic_params;
    cp2p_hashmap topic_tab; /* of topic (the entries of topics) */
    cp2p_hashmap peer_tab;  /* of peer */
    peer **dense;
    size_t n_dense, cap_dense;
    cp2p_hashmap ip_tab;  /* of ipent, owned */
    cp2p_hashmap rec_tab; /* of rec (owned by ring) */
    rec **ring; /* FIFO of records, oldest at ring_head */
    size_t ring_cap, ring_head, ring_n;
    uint64_t record_ttl_ms;
    cp2p__gs_score_stats st;
};

static cp2p_slice topic_key(const void *it)
{
    const topic *t = it;
    return (cp2p_slice){(const uint8_t *)t->name, t->len};
}

static cp2p_slice peer_key(const void *it)
{
    const peer *p = it;
    return (cp2p_slice){p->id.bytes, p->id.len};
}

static cp2p_slice ip_key(const void *it)
{
    const ipent *e = it;
    return (cp2p_slice){(const uint8_t *)e->ip, e->len};
}

static cp2p_slice rec_key(const void *it)
{
    const rec *r = it;
    return (cp2p_slice){r->id, r->id_len};
}

/* ---- parameters ---- */

static bool num_ok(double v)
{
    return isfinite(v) && v <= CP2P_GS_SCORE_PARAM_MAX && v >= -CP2P_GS_SCORE_PARAM_MAX;
}

static bool decay_ok(double d)
{
    return d > 0 && d < 1;
}

static int topic_params_validate(const cp2p__gs_topic_score_params *t)
{
    const double nums[] = {
        t->topic_weight, t->time_in_mesh_weight, t->time_in_mesh_cap,
        t->first_message_deliveries_weight, t->first_message_deliveries_decay,
        t->first_message_deliveries_cap, t->mesh_message_deliveries_weight,
        t->mesh_message_deliveries_decay, t->mesh_message_deliveries_cap,
        t->mesh_message_deliveries_threshold, t->mesh_failure_penalty_weight,
        t->mesh_failure_penalty_decay, t->invalid_message_deliveries_weight,
        t->invalid_message_deliveries_decay,
    };
    for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
        if (!num_ok(nums[i])) {
            return CP2P_EINVAL;
        }
    }
    if (t->topic_weight < 0) {
        return CP2P_EINVAL;
    }
    /* P1 */
    if (t->time_in_mesh_weight < 0 ||
        (t->time_in_mesh_weight != 0 &&
         (t->time_in_mesh_quantum_ms == 0 || t->time_in_mesh_cap <= 0))) {
        return CP2P_EINVAL;
    }
    /* P2 */
    if (t->first_message_deliveries_weight < 0 ||
        (t->first_message_deliveries_weight != 0 &&
         (!decay_ok(t->first_message_deliveries_decay) ||
          t->first_message_deliveries_cap <= 0))) {
        return CP2P_EINVAL;
    }
    /* P3 */
    if (t->mesh_message_deliveries_weight > 0 ||
        (t->mesh_message_deliveries_weight != 0 &&
         (!decay_ok(t->mesh_message_deliveries_decay) || t->mesh_message_deliveries_cap <= 0 ||
          t->mesh_message_deliveries_threshold <= 0 ||
          t->mesh_message_deliveries_activation_ms < 1000))) {
        return CP2P_EINVAL;
    }
    /* P3b */
    if (t->mesh_failure_penalty_weight > 0 ||
        (t->mesh_failure_penalty_weight != 0 && !decay_ok(t->mesh_failure_penalty_decay))) {
        return CP2P_EINVAL;
    }
    /* P4 */
    if (t->invalid_message_deliveries_weight > 0 ||
        (t->invalid_message_deliveries_weight != 0 &&
         !decay_ok(t->invalid_message_deliveries_decay))) {
        return CP2P_EINVAL;
    }
    return 0;
}

int cp2p__gs_score_params_validate(const cp2p__gs_score_params *p,
                                   const cp2p__gs_score_thresholds *t)
{
    if (p == NULL || p->n_topics > CP2P_GS_SCORE_MAX_TOPICS ||
        (p->n_topics > 0 && (p->topics == NULL || p->topic_params == NULL))) {
        return CP2P_EINVAL;
    }
    for (size_t i = 0; i < p->n_topics; i++) {
        const char *name = p->topics[i];
        if (name == NULL) {
            return CP2P_EINVAL;
        }
        size_t len = strnlen(name, CP2P_GS_SCORE_MAX_TOPIC_LEN + 1);
        if (len == 0 || len > CP2P_GS_SCORE_MAX_TOPIC_LEN) {
            return CP2P_EINVAL;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(p->topics[j], name) == 0) {
                return CP2P_EINVAL;
            }
        }
        if (topic_params_validate(&p->topic_params[i]) != 0) {
            return CP2P_EINVAL;
        }
    }
    if (!num_ok(p->topic_score_cap) || p->topic_score_cap < 0 ||
        !num_ok(p->app_specific_weight) || !num_ok(p->ip_colocation_factor_weight) ||
        p->ip_colocation_factor_weight > 0 ||
        (p->ip_colocation_factor_weight < 0 && p->ip_colocation_factor_threshold < 1)) {
        return CP2P_EINVAL;
    }
    if (!num_ok(p->behaviour_penalty_weight) || !num_ok(p->behaviour_penalty_threshold) ||
        !num_ok(p->behaviour_penalty_decay) || p->behaviour_penalty_weight > 0 ||
        p->behaviour_penalty_threshold < 0 ||
        (p->behaviour_penalty_weight != 0 && !decay_ok(p->behaviour_penalty_decay))) {
        return CP2P_EINVAL;
    }
    if (p->decay_interval_ms < 1000 || !(p->decay_to_zero > 0 && p->decay_to_zero < 1)) {
        return CP2P_EINVAL;
    }
    if (t != NULL) {
        const double th[] = {t->gossip_threshold, t->publish_threshold, t->graylist_threshold,
                             t->accept_px_threshold, t->opportunistic_graft_threshold};
        for (size_t i = 0; i < sizeof(th) / sizeof(th[0]); i++) {
            if (!isfinite(th[i])) {
                return CP2P_EINVAL;
            }
        }
        if (t->gossip_threshold > 0 || t->publish_threshold > t->gossip_threshold ||
            t->graylist_threshold > t->publish_threshold || t->accept_px_threshold < 0 ||
            t->opportunistic_graft_threshold < 0) {
            return CP2P_EINVAL;
        }
    }
    return 0;
}

/* ---- lifecycle ---- */

int cp2p__gs_score_new(const cp2p__gs_score_params *p, uint64_t now_ms, cp2p__gs_score **out)
{
    (void)now_ms;
    int rc = cp2p__gs_score_params_validate(p, NULL);
    if (rc != 0 || out == NULL) {
        return CP2P_EINVAL;
    }
    cp2p__gs_score *s = cp2p_calloc(1, sizeof(*s));
    if (s == NULL) {
        return CP2P_ENOMEM;
    }
    s->p = *p;
    s->record_ttl_ms = CP2P_GS_SCORE_RECORD_TTL_MS;
    /* An IP entry exists only while a tracked peer uses it, so peers bound IPs too. */
    if ((rc = cp2p__hashmap_init(&s->topic_tab, CP2P_GS_SCORE_MAX_TOPICS, topic_key)) != 0 ||
        (rc = cp2p__hashmap_init(&s->peer_tab, CP2P_GS_SCORE_MAX_PEERS, peer_key)) != 0 ||
        (rc = cp2p__hashmap_init(&s->ip_tab, CP2P_GS_SCORE_MAX_PEERS, ip_key)) != 0 ||
        (rc = cp2p__hashmap_init(&s->rec_tab, CP2P_GS_SCORE_MAX_RECORDS, rec_key)) != 0) {
        goto fail;
    }
    rc = CP2P_ENOMEM;
    if (p->n_topics > 0) {
        s->topics = cp2p_calloc(p->n_topics, sizeof(*s->topics));
        s->topic_names = cp2p_calloc(p->n_topics, sizeof(*s->topic_names));
        s->topic_params = cp2p_calloc(p->n_topics, sizeof(*s->topic_params));
        if (s->topics == NULL || s->topic_names == NULL || s->topic_params == NULL) {
            goto fail;
        }
    }
    for (size_t i = 0; i < p->n_topics; i++) {
        topic *t = &s->topics[i];
        t->len = strlen(p->topics[i]);
        if ((t->name = cp2p__memdup(p->topics[i], t->len + 1)) == NULL) {
            goto fail;
        }
        t->idx = (uint32_t)i;
        t->tp = p->topic_params[i];
        s->topic_names[i] = t->name;
        s->topic_params[i] = t->tp;
        if (cp2p__hashmap_insert(&s->topic_tab, t) != 0) { /* names are distinct: validated */
            goto fail;
        }
        if (t->tp.mesh_message_deliveries_window_ms > s->record_ttl_ms) {
            s->record_ttl_ms = t->tp.mesh_message_deliveries_window_ms;
        }
    }
    s->p.topics = s->topic_names;
    s->p.topic_params = s->topic_params;
    *out = s;
    return 0;
fail:
    cp2p__gs_score_free(s);
    return rc;
}

static void peer_free(peer *pe)
{
    if (pe != NULL) {
        cp2p_free(pe->ts);
        cp2p_free(pe);
    }
}

static void rec_free(rec *r)
{
    if (r != NULL) {
        cp2p_free(r->peers);
        cp2p_free(r);
    }
}

static void ip_release_item(void *item, void *ud)
{
    (void)ud;
    cp2p_free(item);
}

void cp2p__gs_score_free(cp2p__gs_score *s)
{
    if (s == NULL) {
        return;
    }
    for (size_t i = 0; i < s->n_dense; i++) {
        peer_free(s->dense[i]);
    }
    cp2p_free(s->dense);
    cp2p__hashmap_fini(&s->ip_tab, ip_release_item, NULL);
    for (size_t i = 0; i < s->ring_n; i++) {
        rec_free(s->ring[(s->ring_head + i) % s->ring_cap]);
    }
    cp2p_free(s->ring);
    if (s->topics != NULL) {
        for (size_t i = 0; i < s->p.n_topics; i++) {
            cp2p_free(s->topics[i].name);
        }
    }
    cp2p_free(s->topics);
    cp2p_free(s->topic_names);
    cp2p_free(s->topic_params);
    cp2p__hashmap_fini(&s->topic_tab, NULL, NULL);
    cp2p__hashmap_fini(&s->peer_tab, NULL, NULL);
    cp2p__hashmap_fini(&s->rec_tab, NULL, NULL);
    cp2p_free(s);
}

/* ---- lookups ---- */

static const topic *topic_find(const cp2p__gs_score *s, const char *name)
{
    if (name == NULL || cp2p__hashmap_len(&s->topic_tab) == 0) {
        return NULL;
    }
    size_t len = strnlen(name, CP2P_GS_SCORE_MAX_TOPIC_LEN + 1);
    if (len > CP2P_GS_SCORE_MAX_TOPIC_LEN) {
        return NULL;
    }
    return cp2p__hashmap_find(&s->topic_tab, name, len);
}

static bool id_ok(const cp2p_peer_id *id)
{
    return id != NULL && id->len <= CP2P_PEER_ID_MAX;
}

static peer *peer_find(const cp2p__gs_score *s, const cp2p_peer_id *id)
{
    if (!id_ok(id) || cp2p__hashmap_len(&s->peer_tab) == 0) {
        return NULL;
    }
    return cp2p__hashmap_find(&s->peer_tab, id->bytes, id->len);
}

/* The peer's stats for a scored topic, created on first use; NULL when the topic is not scored
 * or memory ran out (the event is then not counted). */
static tstats *tstats_get(peer *pe, const topic *t)
{
    for (size_t i = 0; i < pe->n_ts; i++) {
        if (pe->ts[i].topic == t->idx) {
            return &pe->ts[i];
        }
    }
    if (pe->n_ts == pe->cap_ts) {
        size_t ncap = pe->cap_ts == 0 ? 2 : pe->cap_ts * 2;
        tstats *n = cp2p_realloc(pe->ts, ncap * sizeof(*n));
        if (n == NULL) {
            return NULL;
        }
        pe->ts = n;
        pe->cap_ts = ncap;
    }
    tstats *ts = &pe->ts[pe->n_ts++];
    memset(ts, 0, sizeof(*ts));
    ts->topic = t->idx;
    return ts;
}

static tstats *peer_topic(cp2p__gs_score *s, const cp2p_peer_id *id, const char *topic_name,
                          const topic **tout)
{
    const topic *t = topic_find(s, topic_name);
    peer *pe;
    if (t == NULL || (pe = peer_find(s, id)) == NULL) {
        return NULL;
    }
    *tout = t;
    return tstats_get(pe, t);
}

/* P3 is active once the peer has been in the mesh for the activation time; it stays active
 * until the next graft (go's meshMessageDeliveriesActive). */
static bool mesh_active(tstats *ts, const cp2p__gs_topic_score_params *tp, uint64_t now_ms)
{
    if (!ts->mesh_active && ts->in_mesh && now_ms >= ts->graft_ms &&
        now_ms - ts->graft_ms >= tp->mesh_message_deliveries_activation_ms) {
        ts->mesh_active = true;
    }
    return ts->mesh_active;
}

static double add_capped(double v, double add, double cap)
{
    v += add;
    return v > cap ? cap : v;
}

/* P3b: the deficit squared, when the peer leaves the mesh with an active deficit. P3 itself
 * then stops: the sticky P3b replaces it (spec). go-libp2p-pubsub keeps its activation flag
 * after a prune, so there P3 keeps counting too until the next graft; we do not. */
static void leave_mesh(tstats *ts, const cp2p__gs_topic_score_params *tp, uint64_t now_ms)
{
    if (ts->in_mesh && mesh_active(ts, tp, now_ms) &&
        ts->mesh < tp->mesh_message_deliveries_threshold) {
        double d = tp->mesh_message_deliveries_threshold - ts->mesh;
        ts->failure = add_capped(ts->failure, d * d, CP2P_GS_SCORE_COUNTER_MAX);
    }
    ts->in_mesh = false;
    ts->mesh_active = false;
}

/* ---- score ---- */

static double peer_score(const cp2p__gs_score *s, peer *pe, uint64_t now_ms)
{
    double score = 0;
    for (size_t i = 0; i < pe->n_ts; i++) {
        tstats *ts = &pe->ts[i];
        const cp2p__gs_topic_score_params *tp = &s->topics[ts->topic].tp;
        double t = 0;
        /* P1 */
        if (ts->in_mesh && tp->time_in_mesh_quantum_ms > 0 && now_ms > ts->graft_ms) {
            double p1 = (double)((now_ms - ts->graft_ms) / tp->time_in_mesh_quantum_ms);
            if (p1 > tp->time_in_mesh_cap) {
                p1 = tp->time_in_mesh_cap;
            }
            t += p1 * tp->time_in_mesh_weight;
        }
        /* P2 */
        t += ts->first * tp->first_message_deliveries_weight;
        /* P3 */
        if (mesh_active(ts, tp, now_ms) && ts->mesh < tp->mesh_message_deliveries_threshold) {
            double d = tp->mesh_message_deliveries_threshold - ts->mesh;
            t += d * d * tp->mesh_message_deliveries_weight;
        }
        /* P3b */
        t += ts->failure * tp->mesh_failure_penalty_weight;
        /* P4 */
        t += ts->invalid * ts->invalid * tp->invalid_message_deliveries_weight;
        score += t * tp->topic_weight;
    }
    if (s->p.topic_score_cap > 0 && score > s->p.topic_score_cap) {
        score = s->p.topic_score_cap;
    }
    /* P5 */
    score += pe->app_score * s->p.app_specific_weight;
    /* P6 */
    if (pe->ip != NULL && s->p.ip_colocation_factor_weight != 0 &&
        pe->ip->count > s->p.ip_colocation_factor_threshold) {
        double d = (double)(pe->ip->count - s->p.ip_colocation_factor_threshold);
        score += d * d * s->p.ip_colocation_factor_weight;
    }
    /* P7 */
    if (pe->behaviour_penalty > s->p.behaviour_penalty_threshold) {
        double d = pe->behaviour_penalty - s->p.behaviour_penalty_threshold;
        score += d * d * s->p.behaviour_penalty_weight;
    }
    return score;
}

double cp2p__gs_score_get(cp2p__gs_score *s, const cp2p_peer_id *p, uint64_t now_ms)
{
    peer *pe = s != NULL ? peer_find(s, p) : NULL;
    return pe != NULL ? peer_score(s, pe, now_ms) : 0;
}

/* ---- peers ---- */

static void ip_release(cp2p__gs_score *s, peer *pe)
{
    ipent *e = pe->ip;
    if (e == NULL) {
        return;
    }
    pe->ip = NULL;
    if (--e->count == 0) {
        cp2p__hashmap_remove(&s->ip_tab, e);
        cp2p_free(e);
    }
}

/* Point the peer at `ip` (NULL: none). Returns 0 or CP2P_ENOMEM (unchanged). */
static int ip_set(cp2p__gs_score *s, peer *pe, const char *ip, size_t len)
{
    if (ip == NULL) {
        ip_release(s, pe);
        return 0;
    }
    if (pe->ip != NULL && pe->ip->len == len && memcmp(pe->ip->ip, ip, len) == 0) {
        return 0;
    }
    ipent *e = cp2p__hashmap_find(&s->ip_tab, ip, len);
    if (e == NULL) {
        if ((e = cp2p_calloc(1, sizeof(*e))) == NULL) {
            return CP2P_ENOMEM;
        }
        memcpy(e->ip, ip, len);
        e->len = len;
        if (cp2p__hashmap_insert(&s->ip_tab, e) != 0) {
            cp2p_free(e);
            return CP2P_ENOMEM;
        }
    }
    ip_release(s, pe);
    e->count++;
    pe->ip = e;
    return 0;
}

static void peer_drop(cp2p__gs_score *s, peer *pe)
{
    ip_release(s, pe);
    cp2p__hashmap_remove(&s->peer_tab, pe);
    size_t i = pe->dense_idx;
    s->dense[i] = s->dense[--s->n_dense];
    s->dense[i]->dense_idx = i;
    if (pe->connected) {
        s->st.peers--;
    } else {
        s->st.retained--;
    }
    peer_free(pe);
}

int cp2p__gs_score_add_peer(cp2p__gs_score *s, const cp2p_peer_id *p, const char *ip,
                            uint64_t now_ms)
{
    (void)now_ms;
    size_t iplen = 0;
    if (s == NULL || !id_ok(p)) {
        return CP2P_EINVAL;
    }
    if (ip != NULL && (iplen = strnlen(ip, CP2P_GS_SCORE_IP_MAX)) >= CP2P_GS_SCORE_IP_MAX) {
        return CP2P_EINVAL;
    }
    peer *pe = peer_find(s, p);
    if (pe != NULL) {
        if (ip_set(s, pe, ip, iplen) != 0) {
            return CP2P_ENOMEM;
        }
        if (!pe->connected) {
            pe->connected = true;
            s->st.retained--;
            s->st.peers++;
        }
        return 0;
    }
    if (s->n_dense >= CP2P_GS_SCORE_MAX_PEERS) {
        s->st.peers_refused++;
        return CP2P_EFULL;
    }
    if (s->n_dense == s->cap_dense) {
        size_t ncap = s->cap_dense == 0 ? 16 : s->cap_dense * 2;
        peer **nd = cp2p_realloc(s->dense, ncap * sizeof(*nd));
        if (nd == NULL) {
            return CP2P_ENOMEM;
        }
        s->dense = nd;
        s->cap_dense = ncap;
    }
    if ((pe = cp2p_calloc(1, sizeof(*pe))) == NULL) {
        return CP2P_ENOMEM;
    }
    pe->id = *p;
    pe->connected = true;
    if (cp2p__hashmap_insert(&s->peer_tab, pe) != 0) {
        cp2p_free(pe);
        return CP2P_ENOMEM;
    }
    if (ip_set(s, pe, ip, iplen) != 0) {
        cp2p__hashmap_remove(&s->peer_tab, pe);
        cp2p_free(pe);
        return CP2P_ENOMEM;
    }
    pe->dense_idx = s->n_dense;
    s->dense[s->n_dense++] = pe;
    s->st.peers++;
    return 0;
}

void cp2p__gs_score_remove_peer(cp2p__gs_score *s, const cp2p_peer_id *p, uint64_t now_ms)
{
    peer *pe = s != NULL ? peer_find(s, p) : NULL;
    if (pe == NULL || !pe->connected) {
        return;
    }
    /* Retain only non-positive scores, as go: a peer cannot shed a penalty by reconnecting,
     * and keeping good scores would only be memory an attacker could make us spend. */
    if (s->p.retain_score_ms == 0 || peer_score(s, pe, now_ms) > 0) {
        peer_drop(s, pe);
        return;
    }
    for (size_t i = 0; i < pe->n_ts; i++) {
        tstats *ts = &pe->ts[i];
        ts->first = 0;
        leave_mesh(ts, &s->topics[ts->topic].tp, now_ms);
    }
    pe->connected = false;
    pe->expire_ms = now_ms + s->p.retain_score_ms;
    if (pe->expire_ms < now_ms) {
        pe->expire_ms = UINT64_MAX;
    }
    s->st.peers--;
    s->st.retained++;
}

void cp2p__gs_score_graft(cp2p__gs_score *s, const cp2p_peer_id *p, const char *topic_name,
                          uint64_t now_ms)
{
    const topic *t;
    tstats *ts = s != NULL ? peer_topic(s, p, topic_name, &t) : NULL;
    if (ts == NULL) {
        return;
    }
    ts->in_mesh = true;
    ts->graft_ms = now_ms;
    ts->mesh_active = false;
}

void cp2p__gs_score_prune(cp2p__gs_score *s, const cp2p_peer_id *p, const char *topic_name,
                          uint64_t now_ms)
{
    const topic *t;
    tstats *ts = s != NULL ? peer_topic(s, p, topic_name, &t) : NULL;
    if (ts == NULL) {
        return;
    }
    leave_mesh(ts, &t->tp, now_ms);
}

void cp2p__gs_score_add_penalty(cp2p__gs_score *s, const cp2p_peer_id *p, uint32_t count)
{
    peer *pe = s != NULL ? peer_find(s, p) : NULL;
    if (pe != NULL) {
        pe->behaviour_penalty = add_capped(pe->behaviour_penalty, count,
                                           CP2P_GS_SCORE_COUNTER_MAX);
    }
}

void cp2p__gs_score_set_app_score(cp2p__gs_score *s, const cp2p_peer_id *p, double v)
{
    peer *pe = s != NULL ? peer_find(s, p) : NULL;
    if (pe != NULL && isfinite(v)) {
        pe->app_score = v > CP2P_GS_SCORE_PARAM_MAX    ? CP2P_GS_SCORE_PARAM_MAX
                        : v < -CP2P_GS_SCORE_PARAM_MAX ? -CP2P_GS_SCORE_PARAM_MAX
                                                       : v;
    }
}

/* ---- message deliveries ---- */

static void mark_invalid(cp2p__gs_score *s, const cp2p_peer_id *p, const topic *t)
{
    peer *pe = peer_find(s, p);
    tstats *ts = pe != NULL ? tstats_get(pe, t) : NULL;
    if (ts != NULL) {
        ts->invalid = add_capped(ts->invalid, 1, CP2P_GS_SCORE_COUNTER_MAX);
    }
}

static void mark_first(cp2p__gs_score *s, const cp2p_peer_id *p, const topic *t)
{
    peer *pe = peer_find(s, p);
    tstats *ts = pe != NULL ? tstats_get(pe, t) : NULL;
    if (ts == NULL) {
        return;
    }
    ts->first = add_capped(ts->first, 1, t->tp.first_message_deliveries_cap);
    if (ts->in_mesh) {
        ts->mesh = add_capped(ts->mesh, 1, t->tp.mesh_message_deliveries_cap);
    }
}

/* A near-first copy from a mesh peer: counts for P3 when it arrived during validation
 * (validated == NULL) or within the window after it. */
static void mark_duplicate(cp2p__gs_score *s, const cp2p_peer_id *p, const topic *t,
                           const uint64_t *validated, uint64_t now_ms)
{
    peer *pe = peer_find(s, p);
    tstats *ts = pe != NULL ? tstats_get(pe, t) : NULL;
    if (ts == NULL || !ts->in_mesh) {
        return;
    }
    if (validated != NULL && now_ms > *validated &&
        now_ms - *validated > t->tp.mesh_message_deliveries_window_ms) {
        return;
    }
    ts->mesh = add_capped(ts->mesh, 1, t->tp.mesh_message_deliveries_cap);
}

static void rec_pop_head(cp2p__gs_score *s)
{
    rec *r = s->ring[s->ring_head];
    s->ring[s->ring_head] = NULL;
    s->ring_head = (s->ring_head + 1) % s->ring_cap;
    s->ring_n--;
    cp2p__hashmap_remove(&s->rec_tab, r);
    rec_free(r);
    s->st.msg_records--;
}

static void rec_expire(cp2p__gs_score *s, uint64_t now_ms)
{
    while (s->ring_n > 0) {
        const rec *r = s->ring[s->ring_head];
        if (now_ms < r->first_seen || now_ms - r->first_seen < s->record_ttl_ms) {
            break;
        }
        rec_pop_head(s);
    }
}

/* The record of a message ID, created (status unknown) when missing. NULL when the ID is too
 * long or memory ran out (both counted). */
static rec *rec_get(cp2p__gs_score *s, const uint8_t *id, size_t id_len, uint64_t now_ms)
{
    if (id_len > CP2P_GS_SCORE_MAX_MSG_ID || (id == NULL && id_len > 0)) {
        s->st.ids_refused++;
        return NULL;
    }
    rec *r = cp2p__hashmap_find(&s->rec_tab, id, id_len);
    if (r != NULL) {
        return r;
    }
    rec_expire(s, now_ms);
    if (s->ring_n == s->ring_cap) {
        if (s->ring_cap >= CP2P_GS_SCORE_MAX_RECORDS) {
            rec_pop_head(s);
            s->st.records_dropped++;
        } else {
            size_t ncap = s->ring_cap == 0 ? 64 : s->ring_cap * 2;
            if (ncap > CP2P_GS_SCORE_MAX_RECORDS) {
                ncap = CP2P_GS_SCORE_MAX_RECORDS;
            }
            rec **nr = cp2p_malloc(ncap * sizeof(*nr));
            if (nr == NULL) {
                s->st.records_dropped++;
                return NULL;
            }
            for (size_t i = 0; i < s->ring_n; i++) {
                nr[i] = s->ring[(s->ring_head + i) % s->ring_cap];
            }
            cp2p_free(s->ring);
            s->ring = nr;
            s->ring_cap = ncap;
            s->ring_head = 0;
        }
    }
    if ((r = cp2p_calloc(1, sizeof(*r) + id_len)) == NULL) {
        s->st.records_dropped++;
        return NULL;
    }
    if (id_len > 0) {
        memcpy(r->id, id, id_len);
    }
    r->id_len = id_len;
    r->first_seen = now_ms;
    r->status = DLV_UNKNOWN;
    if (cp2p__hashmap_insert(&s->rec_tab, r) != 0) {
        cp2p_free(r);
        s->st.records_dropped++;
        return NULL;
    }
    s->ring[(s->ring_head + s->ring_n) % s->ring_cap] = r;
    s->ring_n++;
    s->st.msg_records++;
    return r;
}

static bool rec_has_peer(const rec *r, const cp2p_peer_id *p)
{
    for (size_t i = 0; i < r->n_peers; i++) {
        if (cp2p_peer_id_equal(&r->peers[i], p)) {
            return true;
        }
    }
    return false;
}

static void rec_add_peer(cp2p__gs_score *s, rec *r, const cp2p_peer_id *p)
{
    if (r->n_peers == r->cap_peers) {
        if (r->cap_peers >= CP2P_GS_SCORE_RECORD_PEERS) {
            s->st.record_peers_dropped++;
            return;
        }
        size_t ncap = r->cap_peers == 0 ? 4 : (size_t)r->cap_peers * 2;
        if (ncap > CP2P_GS_SCORE_RECORD_PEERS) {
            ncap = CP2P_GS_SCORE_RECORD_PEERS;
        }
        cp2p_peer_id *n = cp2p_realloc(r->peers, ncap * sizeof(*n));
        if (n == NULL) {
            s->st.record_peers_dropped++;
            return;
        }
        r->peers = n;
        r->cap_peers = (uint16_t)ncap;
    }
    r->peers[r->n_peers++] = *p;
}

static void rec_clear_peers(rec *r)
{
    cp2p_free(r->peers);
    r->peers = NULL;
    r->n_peers = r->cap_peers = 0;
}

void cp2p__gs_score_validate_message(cp2p__gs_score *s, const cp2p_peer_id *from,
                                     const uint8_t *id, size_t id_len, const char *topic_name,
                                     uint64_t now_ms)
{
    (void)from;
    (void)topic_name;
    if (s != NULL) {
        /* Start the record now, so that copies during validation are tracked. */
        (void)rec_get(s, id, id_len, now_ms);
    }
}

void cp2p__gs_score_deliver_message(cp2p__gs_score *s, const cp2p_peer_id *from,
                                    const uint8_t *id, size_t id_len, const char *topic_name,
                                    uint64_t now_ms)
{
    if (s == NULL || !id_ok(from)) {
        return;
    }
    const topic *t = topic_find(s, topic_name);
    if (t != NULL) {
        mark_first(s, from, t);
    }
    rec *r = rec_get(s, id, id_len, now_ms);
    if (r == NULL || r->status != DLV_UNKNOWN) {
        return;
    }
    r->status = DLV_VALID;
    r->validated = now_ms;
    if (t != NULL) {
        for (size_t i = 0; i < r->n_peers; i++) {
            if (!cp2p_peer_id_equal(&r->peers[i], from)) {
                mark_duplicate(s, &r->peers[i], t, NULL, now_ms);
            }
        }
    }
    /* The list stays, and gets the first sender too: later copies from any of them must not
     * count again (go leaves the first sender out, so its own resend would count for P3). */
    if (!rec_has_peer(r, from)) {
        rec_add_peer(s, r, from);
    }
}

void cp2p__gs_score_reject_message(cp2p__gs_score *s, const cp2p_peer_id *from,
                                   const uint8_t *id, size_t id_len, const char *topic_name,
                                   uint64_t now_ms)
{
    if (s == NULL || !id_ok(from)) {
        return;
    }
    const topic *t = topic_find(s, topic_name);
    rec *r = rec_get(s, id, id_len, now_ms);
    if (r == NULL) {
        /* Untrackable ID: still penalise the sender. */
        if (t != NULL) {
            mark_invalid(s, from, t);
        }
        return;
    }
    if (r->status != DLV_UNKNOWN) {
        return;
    }
    r->status = DLV_INVALID;
    if (t != NULL) {
        mark_invalid(s, from, t);
        for (size_t i = 0; i < r->n_peers; i++) {
            mark_invalid(s, &r->peers[i], t);
        }
    }
    rec_clear_peers(r);
}

static void set_neutral(cp2p__gs_score *s, const uint8_t *id, size_t id_len, uint64_t now_ms,
                        uint8_t status)
{
    rec *r = rec_get(s, id, id_len, now_ms);
    if (r == NULL || r->status != DLV_UNKNOWN) {
        return;
    }
    r->status = status;
    rec_clear_peers(r);
}

void cp2p__gs_score_ignore_message(cp2p__gs_score *s, const cp2p_peer_id *from,
                                   const uint8_t *id, size_t id_len, const char *topic_name,
                                   uint64_t now_ms)
{
    (void)from;
    (void)topic_name;
    if (s != NULL) {
        set_neutral(s, id, id_len, now_ms, DLV_IGNORED);
    }
}

void cp2p__gs_score_throttle_message(cp2p__gs_score *s, const cp2p_peer_id *from,
                                     const uint8_t *id, size_t id_len, const char *topic_name,
                                     uint64_t now_ms)
{
    (void)from;
    (void)topic_name;
    if (s != NULL) {
        set_neutral(s, id, id_len, now_ms, DLV_THROTTLED);
    }
}

void cp2p__gs_score_duplicate_message(cp2p__gs_score *s, const cp2p_peer_id *from,
                                      const uint8_t *id, size_t id_len, const char *topic_name,
                                      uint64_t now_ms)
{
    if (s == NULL || !id_ok(from)) {
        return;
    }
    rec *r = rec_get(s, id, id_len, now_ms);
    if (r == NULL || rec_has_peer(r, from)) {
        return; /* a copy already seen from this peer counts once */
    }
    const topic *t = topic_find(s, topic_name);
    switch (r->status) {
    case DLV_UNKNOWN:
        rec_add_peer(s, r, from); /* settled by deliver/reject */
        break;
    case DLV_VALID:
        rec_add_peer(s, r, from);
        if (t != NULL) {
            mark_duplicate(s, from, t, &r->validated, now_ms);
        }
        break;
    case DLV_INVALID:
        if (t != NULL) {
            mark_invalid(s, from, t); /* every copy of an invalid message counts */
        }
        break;
    default: /* ignored or throttled: we do not know, so nothing counts */
        break;
    }
}

void cp2p__gs_score_reject_invalid(cp2p__gs_score *s, const cp2p_peer_id *from,
                                   const char *topic_name)
{
    const topic *t = s != NULL ? topic_find(s, topic_name) : NULL;
    if (t != NULL) {
        mark_invalid(s, from, t);
    }
}

/* ---- refresh ---- */

static double decay(double v, double d, double to_zero)
{
    v *= d;
    return v < to_zero ? 0 : v;
}

void cp2p__gs_score_refresh(cp2p__gs_score *s, uint64_t now_ms)
{
    if (s == NULL) {
        return;
    }
    double z = s->p.decay_to_zero;
    /* Backwards, so that dropping entry i (swapped with the last, already visited) is safe. */
    for (size_t i = s->n_dense; i-- > 0;) {
        peer *pe = s->dense[i];
        if (!pe->connected) {
            /* Retained counters do not decay: a peer cannot wait a penalty away offline. */
            if (now_ms >= pe->expire_ms) {
                peer_drop(s, pe);
            }
            continue;
        }
        for (size_t k = 0; k < pe->n_ts; k++) {
            tstats *ts = &pe->ts[k];
            const cp2p__gs_topic_score_params *tp = &s->topics[ts->topic].tp;
            ts->first = decay(ts->first, tp->first_message_deliveries_decay, z);
            ts->mesh = decay(ts->mesh, tp->mesh_message_deliveries_decay, z);
            ts->failure = decay(ts->failure, tp->mesh_failure_penalty_decay, z);
            ts->invalid = decay(ts->invalid, tp->invalid_message_deliveries_decay, z);
            (void)mesh_active(ts, tp, now_ms);
        }
        pe->behaviour_penalty = decay(pe->behaviour_penalty, s->p.behaviour_penalty_decay, z);
    }
    rec_expire(s, now_ms);
}

void cp2p__gs_score_stats_get(const cp2p__gs_score *s, cp2p__gs_score_stats *out)
{
    if (out == NULL) {
        return;
    }
    if (s == NULL) {
        memset(out, 0, sizeof(*out));
        return;
    }
    *out = s->st;
}
