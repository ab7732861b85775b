/* One iterative Kademlia lookup (see kad_lookup.h).
 *
 * Candidates live in one array sorted by distance to the target (closest first), at most
 * CP2P_KAD_LOOKUP_MAX_CANDIDATES. Each is HEARD (not asked yet), WAITING (in flight), ANSWERED
 * or FAILED (error or timeout), and carries its round: 0 for seeds, r + 1 for peers learned
 * from a round-r peer. The lookup is done when the k closest non-failed candidates have all
 * answered (which covers "nobody left to ask": then every non-failed candidate has answered),
 * or at its deadline. next() asks only candidates among the k closest non-failed ones. Every
 * operation is O(candidates) at most, and a peer is asked once. */
#include "protocols/kad/kad_lookup.h"

#include <string.h>

#include <cp2p/common.h>

#include "util/limits.h"

typedef enum cand_state {
    CAND_HEARD,
    CAND_WAITING,
    CAND_ANSWERED,
    CAND_FAILED,
} cand_state;

typedef struct cand {
    cp2p_peer_id id;
    cp2p__kad_key key;
    uint8_t state; /* cand_state */
    uint32_t round;
    uint64_t sent_at;
} cand;

struct cp2p__kad_lookup {
    cp2p__kad_lookup_config cfg;
    cp2p__kad_key target;
    cp2p_peer_id self;
    bool has_self, timed_out;
    uint64_t deadline;
    cand *c;
    size_t n, cap;
    cp2p__kad_lookup_stats stats; /* in_flight and candidates are kept live */
};

void cp2p__kad_lookup_config_default(cp2p__kad_lookup_config *c)
{
    memset(c, 0, sizeof(*c));
    c->k = CP2P_KAD_K;
    c->alpha = CP2P_KAD_ALPHA;
    c->query_timeout_ms = CP2P_KAD_QUERY_TIMEOUT_MS;
    c->timeout_ms = CP2P_KAD_LOOKUP_TIMEOUT_MS;
}

int cp2p__kad_lookup_new(const cp2p__kad_key *target, const cp2p_peer_id *self,
                         const cp2p__kad_lookup_config *cfg, uint64_t now_ms,
                         cp2p__kad_lookup **out)
{
    if (target == NULL || cfg == NULL || out == NULL || cfg->k == 0 ||
        cfg->k > CP2P_KAD_MAX_K || cfg->alpha == 0 || cfg->alpha > CP2P_KAD_MAX_ALPHA) {
        return CP2P_EINVAL;
    }
    cp2p__kad_lookup *l = cp2p_calloc(1, sizeof(*l));
    if (l == NULL) {
        return CP2P_ENOMEM;
    }
    l->cfg = *cfg;
    l->target = *target;
    if (self != NULL) {
        l->self = *self;
        l->has_self = true;
    }
    l->deadline = UINT64_MAX - now_ms < cfg->timeout_ms ? UINT64_MAX : now_ms + cfg->timeout_ms;
    *out = l;
    return 0;
}

void cp2p__kad_lookup_free(cp2p__kad_lookup *l)
{
    if (l == NULL) {
        return;
    }
    cp2p_free(l->c);
    cp2p_free(l);
}

static int grow(cp2p__kad_lookup *l)
{
    if (l->n < l->cap) {
        return 0;
    }
    size_t cap = l->cap == 0 ? 64 : l->cap * 2;
    if (cap > CP2P_KAD_LOOKUP_MAX_CANDIDATES) {
        cap = CP2P_KAD_LOOKUP_MAX_CANDIDATES;
    }
    cand *c = cp2p_realloc(l->c, cap * sizeof(*c));
    if (c == NULL) {
        return CP2P_ENOMEM;
    }
    l->c = c;
    l->cap = cap;
    return 0;
}

/* First index whose candidate is not closer than `key` (binary search). */
static size_t lower_bound(const cp2p__kad_lookup *l, const cp2p__kad_key *key)
{
    size_t lo = 0, hi = l->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cp2p__kad_cmp_dist(&l->target, &l->c[mid].key, key) < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    return lo;
}

static long find(const cp2p__kad_lookup *l, const cp2p_peer_id *p)
{
    cp2p__kad_key k;
    cp2p__kad_key_of_peer(p, &k);
    for (size_t i = lower_bound(l, &k); i < l->n; i++) {
        if (cp2p__kad_cmp_dist(&l->target, &l->c[i].key, &k) != 0) {
            break;
        }
        if (cp2p_peer_id_equal(&l->c[i].id, p)) {
            return (long)i;
        }
    }
    return -1;
}

static bool known(const cp2p__kad_lookup *l, const cp2p_peer_id *p, const cp2p__kad_key *key)
{
    for (size_t i = lower_bound(l, key); i < l->n; i++) {
        if (cp2p__kad_cmp_dist(&l->target, &l->c[i].key, key) != 0) {
            return false;
        }
        if (cp2p_peer_id_equal(&l->c[i].id, p)) {
            return true;
        }
    }
    return false;
}

/* Insert a candidate with a precomputed key. Returns 0 (added, duplicate or dropped: dropped
 * ones are counted) or CP2P_ENOMEM. */
static int insert(cp2p__kad_lookup *l, const cp2p_peer_id *p, const cp2p__kad_key *key,
                  uint32_t round)
{
    if (p->len == 0 || p->len > CP2P_PEER_ID_MAX ||
        (l->has_self && cp2p_peer_id_equal(p, &l->self))) {
        return 0;
    }
    if (known(l, p, key)) {
        return 0; /* duplicate */
    }
    size_t pos = lower_bound(l, key);
    if (l->n == CP2P_KAD_LOOKUP_MAX_CANDIDATES) {
        /* Full: evict the farthest candidate that is farther than the newcomer and neither in
         * flight nor answered (those stay: in-flight answers must find their entry). */
        size_t v = l->n;
        bool found = false;
        while (v > pos && !found) {
            v--;
            found = l->c[v].state == CAND_HEARD || l->c[v].state == CAND_FAILED;
        }
        if (!found) {
            l->stats.closer_dropped++;
            return 0;
        }
        memmove(&l->c[v], &l->c[v + 1], (l->n - v - 1) * sizeof(cand));
        l->n--;
        l->stats.closer_dropped++;
    }
    int rc = grow(l);
    if (rc != 0) {
        return rc;
    }
    memmove(&l->c[pos + 1], &l->c[pos], (l->n - pos) * sizeof(cand));
    cand *c = &l->c[pos];
    memset(c, 0, sizeof(*c));
    c->id = *p;
    c->key = *key;
    c->state = CAND_HEARD;
    c->round = round;
    l->n++;
    return 0;
}

int cp2p__kad_lookup_seed(cp2p__kad_lookup *l, const cp2p_peer_id *p)
{
    cp2p__kad_key k;
    cp2p__kad_key_of_peer(p, &k);
    return insert(l, p, &k, 0);
}

static bool converged(const cp2p__kad_lookup *l)
{
    uint32_t seen = 0;
    for (size_t i = 0; i < l->n && seen < l->cfg.k; i++) {
        switch (l->c[i].state) {
        case CAND_FAILED:
            break;
        case CAND_ANSWERED:
            seen++;
            break;
        default:
            return false;
        }
    }
    return true;
}

bool cp2p__kad_lookup_done(const cp2p__kad_lookup *l)
{
    return l->timed_out || converged(l);
}

bool cp2p__kad_lookup_timed_out(const cp2p__kad_lookup *l)
{
    return l->timed_out;
}

static void check_deadline(cp2p__kad_lookup *l, uint64_t now_ms)
{
    if (!l->timed_out && now_ms >= l->deadline && !converged(l)) {
        l->timed_out = true;
    }
}

bool cp2p__kad_lookup_next(cp2p__kad_lookup *l, uint64_t now_ms, cp2p_peer_id *out)
{
    check_deadline(l, now_ms);
    if (l->stats.in_flight >= l->cfg.alpha || cp2p__kad_lookup_done(l)) {
        return false;
    }
    /* Only among the k closest non-failed candidates (as go-libp2p-kad-dht's query, which picks
     * from GetClosestNInStates(k, heard, waiting, queried)): a farther one can only matter if a
     * closer one fails, and then it moves into that window. */
    uint32_t seen = 0;
    for (size_t i = 0; i < l->n && seen < l->cfg.k; i++) {
        cand *c = &l->c[i];
        seen += c->state != CAND_FAILED;
        if (c->state == CAND_HEARD) {
            c->state = CAND_WAITING;
            c->sent_at = now_ms;
            l->stats.in_flight++;
            l->stats.queried++;
            *out = c->id;
            return true;
        }
    }
    return false;
}

/* One of a response's peers with its key, for picking the closest of a large response. */
typedef struct closer_ref {
    cp2p__kad_key key;
    size_t idx;
} closer_ref;

int cp2p__kad_lookup_on_response(cp2p__kad_lookup *l, const cp2p_peer_id *from,
                                 const cp2p_peer_id *closer, size_t n, uint64_t now_ms)
{
    closer_ref best[CP2P_KAD_MAX_CLOSER_PER_RESPONSE];
    size_t nbest = 0;
    long i = find(l, from);

    (void)now_ms;
    if (i < 0 || l->c[i].state != CAND_WAITING) {
        return 0;
    }
    l->c[i].state = CAND_ANSWERED;
    l->stats.in_flight--;
    l->stats.answered++;
    uint32_t round = l->c[i].round + 1;
    if (round > l->stats.rounds) {
        l->stats.rounds = round;
    }
    /* Keep the closest CP2P_KAD_MAX_CLOSER_PER_RESPONSE (insertion into a bounded sorted
     * array); self and invalid IDs are skipped without counting. */
    for (size_t j = 0; j < n; j++) {
        const cp2p_peer_id *p = &closer[j];
        if (p->len == 0 || p->len > CP2P_PEER_ID_MAX ||
            (l->has_self && cp2p_peer_id_equal(p, &l->self))) {
            continue;
        }
        closer_ref r;
        cp2p__kad_key_of_peer(p, &r.key);
        r.idx = j;
        if (known(l, p, &r.key)) {
            continue; /* already a candidate (the responder itself, typically) */
        }
        if (nbest == CP2P_KAD_MAX_CLOSER_PER_RESPONSE) {
            l->stats.closer_dropped++;
            if (cp2p__kad_cmp_dist(&l->target, &r.key, &best[nbest - 1].key) >= 0) {
                continue;
            }
            nbest--; /* the farthest kept one goes */
        }
        size_t at = nbest;
        while (at > 0 && cp2p__kad_cmp_dist(&l->target, &r.key, &best[at - 1].key) < 0) {
            best[at] = best[at - 1];
            at--;
        }
        best[at] = r;
        nbest++;
    }
    for (size_t j = 0; j < nbest; j++) {
        int rc = insert(l, &closer[best[j].idx], &best[j].key, round);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

void cp2p__kad_lookup_on_failure(cp2p__kad_lookup *l, const cp2p_peer_id *from,
                                 uint64_t now_ms)
{
    long i = find(l, from);
    (void)now_ms;
    if (i < 0) {
        return;
    }
    if (l->c[i].state == CAND_WAITING) {
        l->stats.in_flight--;
        l->stats.failed++;
        l->c[i].state = CAND_FAILED;
    } else if (l->c[i].state == CAND_HEARD) {
        l->c[i].state = CAND_FAILED; /* known bad before being asked */
    }
}

size_t cp2p__kad_lookup_tick(cp2p__kad_lookup *l, uint64_t now_ms, cp2p_peer_id *out,
                             size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < l->n && l->stats.in_flight > 0; i++) {
        cand *c = &l->c[i];
        if (c->state != CAND_WAITING || now_ms < c->sent_at ||
            now_ms - c->sent_at < l->cfg.query_timeout_ms) {
            continue;
        }
        c->state = CAND_FAILED;
        l->stats.in_flight--;
        l->stats.timed_out++;
        if (n < max && out != NULL) {
            out[n++] = c->id;
        }
    }
    check_deadline(l, now_ms);
    return n;
}

uint64_t cp2p__kad_lookup_next_deadline(const cp2p__kad_lookup *l)
{
    if (cp2p__kad_lookup_done(l)) {
        return UINT64_MAX;
    }
    uint64_t d = l->deadline;
    for (size_t i = 0; i < l->n; i++) {
        const cand *c = &l->c[i];
        if (c->state == CAND_WAITING) {
            uint64_t t = UINT64_MAX - c->sent_at < l->cfg.query_timeout_ms
                             ? UINT64_MAX
                             : c->sent_at + l->cfg.query_timeout_ms;
            if (t < d) {
                d = t;
            }
        }
    }
    return d;
}

size_t cp2p__kad_lookup_result(const cp2p__kad_lookup *l, cp2p_peer_id *out, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < l->n && n < max; i++) {
        if (l->c[i].state == CAND_ANSWERED) {
            out[n++] = l->c[i].id;
        }
    }
    return n;
}

void cp2p__kad_lookup_stats_get(const cp2p__kad_lookup *l, cp2p__kad_lookup_stats *out)
{
    *out = l->stats;
    out->candidates = (uint32_t)l->n;
}
