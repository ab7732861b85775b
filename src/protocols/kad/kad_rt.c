/* The Kademlia routing table: see kad_rt.h for the policy.
 *
 * Layout: 256 buckets indexed by cpl(self, peer), each allocated on first use with room for k
 * entries, plus one pending newcomer. closest() uses the bucket structure: for a target t with
 * c = cpl(self, t), every peer of bucket c shares more than c bits with t, every peer of a
 * deeper bucket exactly c bits, and every peer of a bucket i < c exactly i bits; so the table is
 * read as the groups [c], [c+1..255], [c-1], ..., [0], closest group first, and only each group
 * needs sorting (selection, no allocation). */
#include "protocols/kad/kad_rt.h"

#include <string.h>

#include <cp2p/common.h>

#include "util/limits.h"

#define NBUCKETS 256

typedef struct rt_entry {
    cp2p_peer_id id;
    cp2p__kad_key key;
    uint64_t group; /* 0 = none (no IP address, or exempt loopback) */
    uint64_t last_seen, added;
} rt_entry;

typedef struct rt_bucket {
    uint32_t n;
    bool has_pending, checking, touched;
    cp2p_peer_id checking_id;
    uint64_t check_started, last_refresh;
    rt_entry pending;
    rt_entry e[]; /* k */
} rt_bucket;

struct cp2p__kad_rt {
    cp2p__kad_rt_config cfg;
    cp2p_peer_id self;
    cp2p__kad_key self_key;
    size_t size;
    cp2p__kad_rt_stats stats;
    rt_bucket *b[NBUCKETS];
};

void cp2p__kad_rt_config_default(cp2p__kad_rt_config *c)
{
    memset(c, 0, sizeof(*c));
    c->k = CP2P_KAD_K;
    c->max_per_group_bucket = CP2P_KAD_MAX_PER_GROUP_BUCKET;
    c->max_per_group_table = CP2P_KAD_MAX_PER_GROUP_TABLE;
    c->limit_loopback = false;
    c->stale_after_ms = CP2P_KAD_STALE_AFTER_MS;
}

int cp2p__kad_rt_new(const cp2p_peer_id *self, const cp2p__kad_rt_config *cfg,
                     cp2p__kad_rt **out)
{
    if (self == NULL || cfg == NULL || out == NULL || cfg->k == 0 || cfg->k > CP2P_KAD_MAX_K ||
        self->len == 0 || self->len > CP2P_PEER_ID_MAX) {
        return CP2P_EINVAL;
    }
    cp2p__kad_rt *rt = cp2p_calloc(1, sizeof(*rt));
    if (rt == NULL) {
        return CP2P_ENOMEM;
    }
    rt->cfg = *cfg;
    rt->self = *self;
    cp2p__kad_key_of_peer(self, &rt->self_key);
    *out = rt;
    return 0;
}

void cp2p__kad_rt_free(cp2p__kad_rt *rt)
{
    if (rt == NULL) {
        return;
    }
    for (size_t i = 0; i < NBUCKETS; i++) {
        cp2p_free(rt->b[i]);
    }
    cp2p_free(rt);
}

/* The diversity group of an address: first component ip4 -> /24, ip6 -> /48. Loopback is
 * exempt (group 0) unless limit_loopback. */
static uint64_t group_of(const cp2p__kad_rt *rt, const cp2p_multiaddr *addr)
{
    cp2p_multiaddr_component c;
    uint64_t g = 0;

    if (addr == NULL || cp2p_multiaddr_component_at(addr, 0, &c) != 0) {
        return 0;
    }
    if (c.code == CP2P_MA_IP4 && c.value.len == 4) {
        const uint8_t *a = c.value.ptr;
        if (a[0] == 127 && !rt->cfg.limit_loopback) {
            return 0;
        }
        g = ((uint64_t)a[0] << 16) | ((uint64_t)a[1] << 8) | a[2];
        return (UINT64_C(4) << 56) | g;
    }
    if (c.code == CP2P_MA_IP6 && c.value.len == 16) {
        static const uint8_t LOOP6[16] = {[15] = 1};
        if (memcmp(c.value.ptr, LOOP6, 16) == 0 && !rt->cfg.limit_loopback) {
            return 0;
        }
        for (size_t i = 0; i < 6; i++) {
            g = (g << 8) | c.value.ptr[i];
        }
        return (UINT64_C(6) << 56) | g;
    }
    return 0;
}

static rt_bucket *bucket_get(cp2p__kad_rt *rt, unsigned cpl)
{
    if (rt->b[cpl] == NULL) {
        rt->b[cpl] = cp2p_calloc(1, sizeof(rt_bucket) + rt->cfg.k * sizeof(rt_entry));
    }
    return rt->b[cpl];
}

/* Index of `p` in bucket `b`, or -1. */
static long find_in(const rt_bucket *b, const cp2p_peer_id *p)
{
    if (b == NULL) {
        return -1;
    }
    for (uint32_t i = 0; i < b->n; i++) {
        if (cp2p_peer_id_equal(&b->e[i].id, p)) {
            return (long)i;
        }
    }
    return -1;
}

/* Finds `p`: its bucket index in *cpl and its entry index (or -1). */
static long locate(const cp2p__kad_rt *rt, const cp2p_peer_id *p, unsigned *cpl)
{
    cp2p__kad_key k;
    cp2p__kad_key_of_peer(p, &k);
    *cpl = cp2p__kad_cpl(&rt->self_key, &k);
    if (*cpl >= NBUCKETS) {
        return -1;
    }
    return find_in(rt->b[*cpl], p);
}

static size_t group_count_bucket(const rt_bucket *b, uint64_t g)
{
    size_t n = 0;
    for (uint32_t i = 0; b != NULL && i < b->n; i++) {
        n += b->e[i].group == g;
    }
    return n;
}

static size_t group_count_table(const cp2p__kad_rt *rt, uint64_t g)
{
    size_t n = 0;
    for (size_t i = 0; i < NBUCKETS; i++) {
        n += group_count_bucket(rt->b[i], g);
    }
    return n;
}

static bool diversity_ok(const cp2p__kad_rt *rt, const rt_bucket *b, uint64_t g)
{
    if (g == 0) {
        return true;
    }
    if (rt->cfg.max_per_group_bucket != 0 &&
        group_count_bucket(b, g) >= rt->cfg.max_per_group_bucket) {
        return false;
    }
    if (rt->cfg.max_per_group_table != 0 &&
        group_count_table(rt, g) >= rt->cfg.max_per_group_table) {
        return false;
    }
    return true;
}

static void entry_remove(cp2p__kad_rt *rt, rt_bucket *b, uint32_t i)
{
    memmove(&b->e[i], &b->e[i + 1], (b->n - i - 1) * sizeof(rt_entry));
    b->n--;
    rt->size--;
    rt->stats.removed++;
}

/* A slot became free in `b`: the pending newcomer, if any, takes it (its diversity is checked
 * again: other buckets may have filled its group meanwhile). */
static void promote_pending(cp2p__kad_rt *rt, rt_bucket *b)
{
    if (!b->has_pending || b->n >= rt->cfg.k) {
        return;
    }
    b->has_pending = false;
    if (!diversity_ok(rt, b, b->pending.group)) {
        rt->stats.refused_diversity++;
        return;
    }
    b->e[b->n++] = b->pending;
    rt->size++;
    rt->stats.added++;
    rt->stats.replaced++;
}

int cp2p__kad_rt_add(cp2p__kad_rt *rt, const cp2p_peer_id *p, const cp2p_multiaddr *addr,
                     uint64_t now_ms, cp2p_peer_id *check)
{
    rt_entry ne;
    unsigned cpl;

    if (cp2p_peer_id_equal(p, &rt->self)) {
        return CP2P__KAD_RT_SELF;
    }
    memset(&ne, 0, sizeof(ne));
    ne.id = *p;
    cp2p__kad_key_of_peer(p, &ne.key);
    cpl = cp2p__kad_cpl(&rt->self_key, &ne.key);
    if (cpl >= NBUCKETS) {
        return CP2P__KAD_RT_SELF; /* same key as ours: cannot be placed */
    }
    rt_bucket *b = rt->b[cpl];
    long i = find_in(b, p);
    if (i >= 0) {
        b->e[i].last_seen = now_ms;
        return CP2P__KAD_RT_UPDATED;
    }
    ne.group = group_of(rt, addr);
    ne.last_seen = now_ms;
    ne.added = now_ms;
    if (!diversity_ok(rt, b, ne.group)) {
        rt->stats.refused_diversity++;
        return CP2P__KAD_RT_DIVERSITY;
    }
    if (b == NULL && (b = bucket_get(rt, cpl)) == NULL) {
        return CP2P_ENOMEM;
    }
    if (b->n < rt->cfg.k) {
        b->e[b->n++] = ne;
        rt->size++;
        rt->stats.added++;
        return CP2P__KAD_RT_ADDED;
    }
    /* Full. A check asked for long ago and never answered is abandoned. */
    if (b->checking && now_ms - b->check_started >= rt->cfg.stale_after_ms &&
        now_ms >= b->check_started) {
        b->checking = false;
    }
    if (b->checking) {
        if (b->has_pending && cp2p_peer_id_equal(&b->pending.id, p)) {
            b->pending.last_seen = now_ms;
        } else {
            b->pending = ne; /* the newest newcomer waits: it is the most likely alive */
            b->has_pending = true;
        }
        return CP2P__KAD_RT_PENDING;
    }
    uint32_t lrs = 0;
    for (uint32_t j = 1; j < b->n; j++) {
        if (b->e[j].last_seen < b->e[lrs].last_seen) {
            lrs = j;
        }
    }
    if (now_ms < b->e[lrs].last_seen ||
        now_ms - b->e[lrs].last_seen < rt->cfg.stale_after_ms) {
        rt->stats.refused_full++;
        return CP2P__KAD_RT_FULL;
    }
    b->checking = true;
    b->check_started = now_ms;
    b->checking_id = b->e[lrs].id;
    b->pending = ne;
    b->has_pending = true;
    rt->stats.checks_asked++;
    if (check != NULL) {
        *check = b->e[lrs].id;
    }
    return CP2P__KAD_RT_CHECK;
}

void cp2p__kad_rt_seen(cp2p__kad_rt *rt, const cp2p_peer_id *p, uint64_t now_ms)
{
    unsigned cpl;
    long i = locate(rt, p, &cpl);
    if (i >= 0) {
        rt->b[cpl]->e[i].last_seen = now_ms;
    }
}

bool cp2p__kad_rt_check_done(cp2p__kad_rt *rt, const cp2p_peer_id *p, bool alive,
                             uint64_t now_ms)
{
    unsigned cpl;
    long i = locate(rt, p, &cpl);
    if (cpl >= NBUCKETS || rt->b[cpl] == NULL) {
        return false;
    }
    rt_bucket *b = rt->b[cpl];
    bool was_checked = b->checking && cp2p_peer_id_equal(&b->checking_id, p);
    if (was_checked) {
        b->checking = false;
    }
    if (alive) {
        if (i >= 0) {
            b->e[i].last_seen = now_ms;
        }
        if (was_checked) {
            b->has_pending = false; /* the live entry keeps its slot */
        }
        return false;
    }
    if (i < 0) {
        promote_pending(rt, b); /* e.g. removed meanwhile: the slot is free */
        return false;
    }
    entry_remove(rt, b, (uint32_t)i);
    promote_pending(rt, b);
    return true;
}

bool cp2p__kad_rt_remove(cp2p__kad_rt *rt, const cp2p_peer_id *p)
{
    unsigned cpl;
    long i = locate(rt, p, &cpl);
    if (i < 0) {
        if (cpl < NBUCKETS && rt->b[cpl] != NULL && rt->b[cpl]->has_pending &&
            cp2p_peer_id_equal(&rt->b[cpl]->pending.id, p)) {
            rt->b[cpl]->has_pending = false;
        }
        return false;
    }
    rt_bucket *b = rt->b[cpl];
    if (b->checking && cp2p_peer_id_equal(&b->checking_id, p)) {
        b->checking = false;
    }
    entry_remove(rt, b, (uint32_t)i);
    promote_pending(rt, b);
    return true;
}

bool cp2p__kad_rt_contains(const cp2p__kad_rt *rt, const cp2p_peer_id *p)
{
    unsigned cpl;
    return locate(rt, p, &cpl) >= 0;
}

size_t cp2p__kad_rt_size(const cp2p__kad_rt *rt)
{
    return rt->size;
}

/* Order of two entries: distance to the target, then (bucket, index) to break exact ties. */
typedef struct ent_ref {
    const rt_entry *e;
    unsigned bucket;
    uint32_t idx;
} ent_ref;

static int ref_cmp(const cp2p__kad_key *t, const ent_ref *a, const ent_ref *b)
{
    int c = cp2p__kad_cmp_dist(t, &a->e->key, &b->e->key);
    if (c != 0) {
        return c;
    }
    if (a->bucket != b->bucket) {
        return a->bucket < b->bucket ? -1 : 1;
    }
    return a->idx < b->idx ? -1 : (a->idx > b->idx);
}

/* Append the entries of buckets lo..hi, closest first, to out[*n..max). */
static void select_range(const cp2p__kad_rt *rt, unsigned lo, unsigned hi,
                         const cp2p__kad_key *t, cp2p_peer_id *out, size_t *n, size_t max)
{
    ent_ref prev = {0}, best;
    bool have_prev = false;

    while (*n < max) {
        best.e = NULL;
        for (unsigned bi = lo; bi <= hi; bi++) {
            const rt_bucket *b = rt->b[bi];
            for (uint32_t j = 0; b != NULL && j < b->n; j++) {
                ent_ref r = {&b->e[j], bi, j};
                if (have_prev && ref_cmp(t, &r, &prev) <= 0) {
                    continue;
                }
                if (best.e == NULL || ref_cmp(t, &r, &best) < 0) {
                    best = r;
                }
            }
        }
        if (best.e == NULL) {
            return;
        }
        out[(*n)++] = best.e->id;
        prev = best;
        have_prev = true;
    }
}

size_t cp2p__kad_rt_closest(const cp2p__kad_rt *rt, const cp2p__kad_key *target,
                            cp2p_peer_id *out, size_t max)
{
    size_t n = 0;
    unsigned c = cp2p__kad_cpl(&rt->self_key, target);

    if (c < NBUCKETS) {
        select_range(rt, c, c, target, out, &n, max);
        if (c + 1 < NBUCKETS) {
            select_range(rt, c + 1, NBUCKETS - 1, target, out, &n, max);
        }
    } else {
        c = NBUCKETS; /* the target is our own key: bucket i is at distance cpl i */
    }
    while (c > 0 && n < max) {
        c--;
        select_range(rt, c, c, target, out, &n, max);
    }
    return n;
}

bool cp2p__kad_rt_at(const cp2p__kad_rt *rt, size_t n, cp2p_peer_id *out)
{
    for (size_t i = 0; i < NBUCKETS; i++) {
        const rt_bucket *b = rt->b[i];
        if (b == NULL) {
            continue;
        }
        if (n < b->n) {
            *out = b->e[n].id;
            return true;
        }
        n -= b->n;
    }
    return false;
}

size_t cp2p__kad_rt_stale(const cp2p__kad_rt *rt, uint64_t now_ms, cp2p_peer_id *out,
                          size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < NBUCKETS && n < max; i++) {
        const rt_bucket *b = rt->b[i];
        for (uint32_t j = 0; b != NULL && j < b->n && n < max; j++) {
            if (now_ms >= b->e[j].last_seen &&
                now_ms - b->e[j].last_seen >= rt->cfg.stale_after_ms) {
                out[n++] = b->e[j].id;
            }
        }
    }
    return n;
}

void cp2p__kad_rt_touch_bucket(cp2p__kad_rt *rt, unsigned cpl, uint64_t now_ms)
{
    if (cpl >= NBUCKETS) {
        return;
    }
    rt_bucket *b = bucket_get(rt, cpl);
    if (b == NULL) {
        return; /* out of memory: the bucket just stays due */
    }
    b->touched = true;
    b->last_refresh = now_ms;
}

size_t cp2p__kad_rt_refresh_due(const cp2p__kad_rt *rt, uint64_t now_ms, uint64_t interval_ms,
                                unsigned *out, size_t max)
{
    unsigned max_cpl = 0, deepest = 0;
    bool any = false;
    size_t n = 0;

    for (unsigned i = 0; i < NBUCKETS; i++) {
        if (rt->b[i] != NULL && rt->b[i]->n > 0) {
            deepest = i;
            any = true;
        }
    }
    max_cpl = any ? deepest + 1 : 0;
    if (max_cpl > CP2P_KAD_MAX_REFRESH_CPL) {
        max_cpl = CP2P_KAD_MAX_REFRESH_CPL;
    }
    for (unsigned i = 0; i <= max_cpl && n < max; i++) {
        const rt_bucket *b = rt->b[i];
        if (b == NULL || !b->touched || now_ms < b->last_refresh ||
            now_ms - b->last_refresh >= interval_ms) {
            out[n++] = i;
        }
    }
    return n;
}

int cp2p__kad_rt_gen_key(const cp2p__kad_rt *rt, unsigned cpl, uint64_t (*rand)(void *ud),
                         void *ud, cp2p_peer_id *out)
{
    /* identity multihash (0x00, length 36) of a PublicKey protobuf: Type = Ed25519 (08 01),
     * Data = 32 bytes (12 20). */
    static const uint8_t HDR[6] = {0x00, 0x24, 0x08, 0x01, 0x12, 0x20};
    cp2p_peer_id id;
    cp2p__kad_key k;

    if (cpl > CP2P_KAD_MAX_REFRESH_CPL || rand == NULL) {
        return CP2P_EINVAL;
    }
    memset(&id, 0, sizeof(id));
    memcpy(id.bytes, HDR, sizeof(HDR));
    id.len = sizeof(HDR) + 32;
    for (unsigned long t = 0; t < CP2P_KAD_REFRESH_KEY_TRIES; t++) {
        for (size_t i = 0; i < 4; i++) {
            uint64_t r = rand(ud);
            for (size_t j = 0; j < 8; j++) {
                id.bytes[sizeof(HDR) + i * 8 + j] = (uint8_t)(r >> (8 * j));
            }
        }
        cp2p__kad_key_of_peer(&id, &k);
        if (cp2p__kad_cpl(&rt->self_key, &k) == cpl) {
            *out = id;
            return 0;
        }
    }
    return CP2P_ENOENT;
}

void cp2p__kad_rt_stats_get(const cp2p__kad_rt *rt, cp2p__kad_rt_stats *out)
{
    *out = rt->stats;
}
