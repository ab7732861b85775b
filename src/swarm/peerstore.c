/* The peerstore (include/cp2p/peerstore.h): per-peer addresses, key, protocols, agent, RTT and
 * connection history, bounded, optionally persisted in SQLite.
 *
 * Design notes.
 * - No event loop and no clock: `now` is a parameter, so tests run on virtual time. One owner
 *   (the host's loop thread); no locks.
 * - Peers live in a chained hash table keyed by a SipHash (libsodium crypto_shorthash) of the
 *   peer ID under a random per-store key: peer IDs come from the network and anyone can mint
 *   millions of them, so an unkeyed hash would let a peer flood one bucket.
 * - Each peer's address array is kept sorted in the order cp2p_peerstore_addrs() returns
 *   (source, then most recently updated), so a query is a filtered copy with no allocation.
 * - Eviction scans all peers (O(peers)) for the least useful unprotected one: no live address,
 *   then most failures, then oldest last-seen. It runs only when a new peer arrives at a full
 *   store; a heap ordered by a score that changes with every RTT sample and failure would cost
 *   more upkeep than the scan at 10,000 peers.
 * - Every mutation succeeds whole or changes nothing: allocations are made first, and the
 *   eviction of a victim happens only once nothing can fail any more.
 * - Persistence is write-behind: mutations set a per-peer dirty flag (or record the removed
 *   peer's ID); cp2p_peerstore_flush() writes all of it in one transaction and clears the flags
 *   only after COMMIT, so a failed flush is retried whole by the next one. A dirty peer is
 *   rewritten whole (its row, then its address and protocol rows deleted and inserted): a peer
 *   has at most a few dozen rows, and per-field change tracking would be far more code.
 * - Schema (version 1), timestamps in ms on the caller's clock (wall clock for files), expiry
 *   CP2P_PEERSTORE_NEVER stored as INT64_MAX:
 *     schema_version(version)
 *     peers(id BLOB PK, pubkey BLOB, agent TEXT, protected, last_seen, last_connected,
 *           last_failure, failures, rtt_ns)
 *     addrs(peer -> peers.id ON DELETE CASCADE, addr BLOB, expires, source, updated)
 *     protocols(peer -> peers.id ON DELETE CASCADE, proto TEXT)
 *   A newer version is refused (CP2P_ENOTSUP) rather than misread; an older one will be
 *   migrated here when version 2 exists. Every loaded row is validated like network input (peer
 *   ID, multiaddr, key against the ID, lengths, source) and skipped if bad: the file is outside
 *   our control. */
#include <cp2p/peerstore.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>
#include <sqlite3.h>

#include <cp2p/keys.h>

#include "crypto/crypto_init.h"
#include "util/alloc.h"
#include "util/limits.h"
#include "util/log_internal.h"

#define MOD "peerstore"
#define SCHEMA_VERSION 1

typedef struct ps_addr {
    cp2p_multiaddr *ma;
    uint64_t expires;
    uint64_t updated;
    cp2p_addr_source source;
} ps_addr;

typedef struct ps_peer {
    struct ps_peer *next; /* hash chain */
    uint64_t hash;
    cp2p_peer_id id;
    ps_addr *addrs;
    size_t naddrs, addrs_cap;
    char **protos;
    size_t nprotos;
    char *agent;
    uint8_t *pubkey;
    size_t pubkey_len;
    bool protected_peer;
    bool dirty; /* changed since the last successful flush */
    bool in_db; /* written by a successful flush or loaded */
    uint32_t failures;
    uint64_t last_seen, last_connected, last_failure;
    uint64_t rtt_last, rtt_ewma;
} ps_peer;

enum {
    ST_PEER_UPSERT,
    ST_PEER_DELETE,
    ST_ADDRS_DELETE,
    ST_ADDR_INSERT,
    ST_PROTOS_DELETE,
    ST_PROTO_INSERT,
    ST_COUNT
};

static const char *const stmt_sql[ST_COUNT] = {
    [ST_PEER_UPSERT] =
        "INSERT INTO peers(id, pubkey, agent, protected, last_seen, last_connected, "
        "last_failure, failures, rtt_ns) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) "
        "ON CONFLICT(id) DO UPDATE SET pubkey = excluded.pubkey, agent = excluded.agent, "
        "protected = excluded.protected, last_seen = excluded.last_seen, "
        "last_connected = excluded.last_connected, last_failure = excluded.last_failure, "
        "failures = excluded.failures, rtt_ns = excluded.rtt_ns",
    [ST_PEER_DELETE] = "DELETE FROM peers WHERE id = ?1",
    [ST_ADDRS_DELETE] = "DELETE FROM addrs WHERE peer = ?1",
    [ST_ADDR_INSERT] =
        "INSERT INTO addrs(peer, addr, expires, source, updated) VALUES(?1, ?2, ?3, ?4, ?5)",
    [ST_PROTOS_DELETE] = "DELETE FROM protocols WHERE peer = ?1",
    [ST_PROTO_INSERT] = "INSERT INTO protocols(peer, proto) VALUES(?1, ?2)",
};

static const char schema_v1[] =
    "CREATE TABLE schema_version(version INTEGER NOT NULL);"
    "CREATE TABLE peers("
    " id BLOB PRIMARY KEY NOT NULL,"
    " pubkey BLOB,"
    " agent TEXT,"
    " protected INTEGER NOT NULL DEFAULT 0,"
    " last_seen INTEGER NOT NULL DEFAULT 0,"
    " last_connected INTEGER NOT NULL DEFAULT 0,"
    " last_failure INTEGER NOT NULL DEFAULT 0,"
    " failures INTEGER NOT NULL DEFAULT 0,"
    " rtt_ns INTEGER NOT NULL DEFAULT 0"
    ") WITHOUT ROWID;"
    "CREATE TABLE addrs("
    " peer BLOB NOT NULL REFERENCES peers(id) ON DELETE CASCADE,"
    " addr BLOB NOT NULL,"
    " expires INTEGER NOT NULL,"
    " source INTEGER NOT NULL,"
    " updated INTEGER NOT NULL,"
    " PRIMARY KEY(peer, addr)"
    ") WITHOUT ROWID;"
    "CREATE TABLE protocols("
    " peer BLOB NOT NULL REFERENCES peers(id) ON DELETE CASCADE,"
    " proto TEXT NOT NULL,"
    " PRIMARY KEY(peer, proto)"
    ") WITHOUT ROWID;"
    "INSERT INTO schema_version(version) VALUES(1);";

struct cp2p_peerstore {
    cp2p_peerstore_config cfg;
    ps_peer **buckets;
    size_t nbuckets; /* a power of two */
    size_t npeers;
    size_t naddrs;
    uint8_t hkey[crypto_shorthash_KEYBYTES];
    /* Persistence. */
    sqlite3 *db;
    sqlite3_stmt *st[ST_COUNT];
    cp2p_peer_id *deleted; /* persisted peers removed since the last flush */
    size_t ndeleted, deleted_cap;
    bool rewrite_all; /* the next flush replaces the whole file */
    cp2p_peerstore_stats stats;
};

/* ---- small helpers ---- */

static bool id_ok(const cp2p_peer_id *id)
{
    return id != NULL && id->len > 0 && id->len <= CP2P_PEER_ID_MAX;
}

static bool source_ok(int64_t s)
{
    switch (s) {
    case CP2P_ADDR_SOURCE_MANUAL:
    case CP2P_ADDR_SOURCE_IDENTIFY:
    case CP2P_ADDR_SOURCE_DHT:
    case CP2P_ADDR_SOURCE_INBOUND:
        return true;
    default:
        return false;
    }
}

static int64_t to_db(uint64_t v)
{
    return v > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v;
}

static uint64_t from_db(int64_t v)
{
    if (v < 0) {
        return 0;
    }
    return v == INT64_MAX ? UINT64_MAX : (uint64_t)v;
}

static uint64_t max_u64(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

static char *str_dup_n(const char *s, size_t len)
{
    char *d = cp2p_malloc(len + 1);
    if (d != NULL) {
        memcpy(d, s, len);
        d[len] = '\0';
    }
    return d;
}

/* ---- peers and the hash table ---- */

static uint64_t peer_hash(const cp2p_peerstore *ps, const cp2p_peer_id *id)
{
    uint8_t out[crypto_shorthash_BYTES];
    uint64_t h;
    crypto_shorthash(out, id->bytes, id->len, ps->hkey);
    memcpy(&h, out, sizeof(h));
    return h;
}

static ps_peer *peer_find(const cp2p_peerstore *ps, const cp2p_peer_id *id, uint64_t h)
{
    for (ps_peer *p = ps->buckets[h & (ps->nbuckets - 1)]; p != NULL; p = p->next) {
        if (p->hash == h && cp2p_peer_id_equal(&p->id, id)) {
            return p;
        }
    }
    return NULL;
}

static ps_peer *peer_lookup(const cp2p_peerstore *ps, const cp2p_peer_id *id)
{
    if (ps == NULL || !id_ok(id)) {
        return NULL;
    }
    return peer_find(ps, id, peer_hash(ps, id));
}

static void protos_free(char **protos, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        cp2p_free(protos[i]);
    }
    cp2p_free(protos);
}

static void peer_free(ps_peer *p)
{
    if (p == NULL) {
        return;
    }
    for (size_t i = 0; i < p->naddrs; i++) {
        cp2p_multiaddr_free(p->addrs[i].ma);
    }
    cp2p_free(p->addrs);
    protos_free(p->protos, p->nprotos);
    cp2p_free(p->agent);
    cp2p_free(p->pubkey);
    cp2p_free(p);
}

static ps_peer *peer_alloc(const cp2p_peer_id *id, uint64_t h)
{
    ps_peer *p = cp2p_calloc(1, sizeof(*p));
    if (p != NULL) {
        p->id = *id;
        p->hash = h;
    }
    return p;
}

/* Double the bucket array while peers outnumber buckets. Failure only lengthens chains. */
static void buckets_grow(cp2p_peerstore *ps)
{
    if (ps->npeers <= ps->nbuckets || ps->nbuckets > SIZE_MAX / 2 / sizeof(ps_peer *)) {
        return;
    }
    size_t nb = ps->nbuckets * 2;
    ps_peer **b = cp2p_calloc(nb, sizeof(*b));
    if (b == NULL) {
        return;
    }
    for (size_t i = 0; i < ps->nbuckets; i++) {
        ps_peer *p = ps->buckets[i];
        while (p != NULL) {
            ps_peer *next = p->next;
            size_t k = p->hash & (nb - 1);
            p->next = b[k];
            b[k] = p;
            p = next;
        }
    }
    cp2p_free(ps->buckets);
    ps->buckets = b;
    ps->nbuckets = nb;
}

static void peer_insert(cp2p_peerstore *ps, ps_peer *p)
{
    size_t k = p->hash & (ps->nbuckets - 1);
    p->next = ps->buckets[k];
    ps->buckets[k] = p;
    ps->npeers++;
    ps->naddrs += p->naddrs;
    buckets_grow(ps);
}

/* Remember that a persisted peer must be deleted from the file at the next flush. Cannot fail:
 * past the bound, or without memory, the next flush rewrites the whole file instead. */
static void note_deleted(cp2p_peerstore *ps, const ps_peer *p)
{
    if (ps->db == NULL || !p->in_db || ps->rewrite_all) {
        return;
    }
    if (ps->ndeleted == ps->deleted_cap) {
        size_t cap = ps->deleted_cap == 0 ? 16 : ps->deleted_cap * 2;
        cp2p_peer_id *d = NULL;
        if (cap <= CP2P_PEERSTORE_PENDING_DELETES_MAX) {
            d = cp2p_realloc(ps->deleted, cap * sizeof(*d));
        }
        if (d == NULL) {
            ps->rewrite_all = true;
            ps->ndeleted = 0;
            return;
        }
        ps->deleted = d;
        ps->deleted_cap = cap;
    }
    ps->deleted[ps->ndeleted++] = p->id;
}

/* Unlink p and free it. */
static void peer_remove(cp2p_peerstore *ps, ps_peer *p)
{
    ps_peer **pp = &ps->buckets[p->hash & (ps->nbuckets - 1)];
    while (*pp != p) {
        pp = &(*pp)->next;
    }
    *pp = p->next;
    ps->npeers--;
    ps->naddrs -= p->naddrs;
    note_deleted(ps, p);
    peer_free(p);
}

static bool peer_has_live_addr(const ps_peer *p, uint64_t now)
{
    for (size_t i = 0; i < p->naddrs; i++) {
        if (p->addrs[i].expires > now) {
            return true;
        }
    }
    return false;
}

/* True when a is less useful than b: no live address, then more failures, then seen longer
 * ago. */
static bool less_useful(const ps_peer *a, const ps_peer *b, uint64_t now)
{
    bool la = peer_has_live_addr(a, now), lb = peer_has_live_addr(b, now);
    if (la != lb) {
        return !la;
    }
    if (a->failures != b->failures) {
        return a->failures > b->failures;
    }
    return a->last_seen < b->last_seen;
}

static ps_peer *pick_victim(const cp2p_peerstore *ps, uint64_t now)
{
    ps_peer *victim = NULL;
    for (size_t i = 0; i < ps->nbuckets; i++) {
        for (ps_peer *p = ps->buckets[i]; p != NULL; p = p->next) {
            if (!p->protected_peer && (victim == NULL || less_useful(p, victim, now))) {
                victim = p;
            }
        }
    }
    return victim;
}

/* A peer being changed: either found, or new and not yet inserted (with the victim it will
 * replace when the store is full). */
typedef struct peer_slot {
    ps_peer *p;
    ps_peer *victim;
    bool is_new;
} peer_slot;

static int slot_get(cp2p_peerstore *ps, const cp2p_peer_id *id, bool create, uint64_t now,
                    peer_slot *s)
{
    uint64_t h = peer_hash(ps, id);
    s->p = peer_find(ps, id, h);
    s->victim = NULL;
    s->is_new = false;
    if (s->p != NULL) {
        return 0;
    }
    if (!create) {
        return CP2P_ENOENT;
    }
    if (ps->npeers >= ps->cfg.max_peers) {
        s->victim = pick_victim(ps, now);
        if (s->victim == NULL) {
            return CP2P_EFULL;
        }
    }
    s->p = peer_alloc(id, h);
    if (s->p == NULL) {
        return CP2P_ENOMEM;
    }
    s->is_new = true;
    return 0;
}

static void slot_abort(peer_slot *s)
{
    if (s->is_new) {
        peer_free(s->p);
        s->p = NULL;
    }
}

/* Nothing can fail any more: evict the victim, insert the new peer, mark it changed. Callers
 * that change the address count do so before (new peer) or adjust ps->naddrs themselves. */
static void slot_commit(cp2p_peerstore *ps, peer_slot *s, uint64_t now)
{
    if (s->is_new) {
        if (s->victim != NULL) {
            char idstr[CP2P_PEER_ID_STR_MAX];
            CP2P_LOG(CP2P_LOG_DEBUG, MOD, 0, "peerstore.evicted peer=%s failures=%u",
                     cp2p_peer_id_str(&s->victim->id, idstr), (unsigned)s->victim->failures);
            peer_remove(ps, s->victim);
            ps->stats.evictions++;
        }
        peer_insert(ps, s->p);
    }
    s->p->last_seen = max_u64(s->p->last_seen, now);
    s->p->dirty = true;
}

/* ---- addresses ---- */

/* Output order: better source first, then most recently updated, then latest expiry. */
static int addr_cmp_out(const void *va, const void *vb)
{
    const ps_addr *a = va, *b = vb;
    if (a->source != b->source) {
        return a->source < b->source ? -1 : 1;
    }
    if (a->updated != b->updated) {
        return a->updated > b->updated ? -1 : 1;
    }
    if (a->expires != b->expires) {
        return a->expires > b->expires ? -1 : 1;
    }
    return 0;
}

/* Keep order for the cap: latest expiry first, then better source, then most recent. */
static int addr_cmp_keep(const void *va, const void *vb)
{
    const ps_addr *a = va, *b = vb;
    if (a->expires != b->expires) {
        return a->expires > b->expires ? -1 : 1;
    }
    if (a->source != b->source) {
        return a->source < b->source ? -1 : 1;
    }
    if (a->updated != b->updated) {
        return a->updated > b->updated ? -1 : 1;
    }
    return 0;
}

/* Drop p's expired addresses, then those past the cap (max 0: no cap), and sort for output.
 * Returns how many were dropped by the cap. Adjusts ps->naddrs when `counted`. */
static size_t addrs_settle(cp2p_peerstore *ps, ps_peer *p, uint64_t now, size_t max,
                           bool counted)
{
    size_t before = p->naddrs, kept = 0, capped = 0;
    for (size_t i = 0; i < p->naddrs; i++) {
        if (p->addrs[i].expires > now) {
            p->addrs[kept++] = p->addrs[i];
        } else {
            cp2p_multiaddr_free(p->addrs[i].ma);
        }
    }
    p->naddrs = kept;
    if (max > 0 && p->naddrs > max) {
        qsort(p->addrs, p->naddrs, sizeof(*p->addrs), addr_cmp_keep);
        for (size_t i = max; i < p->naddrs; i++) {
            cp2p_multiaddr_free(p->addrs[i].ma);
        }
        capped = p->naddrs - max;
        p->naddrs = max;
    }
    if (p->naddrs > 1) {
        qsort(p->addrs, p->naddrs, sizeof(*p->addrs), addr_cmp_out);
    }
    if (counted) {
        ps->naddrs = ps->naddrs - before + p->naddrs;
    }
    return capped;
}

static int addrs_reserve(ps_peer *p, size_t need)
{
    if (need <= p->addrs_cap) {
        return 0;
    }
    ps_addr *a = cp2p_realloc(p->addrs, need * sizeof(*a));
    if (a == NULL) {
        return CP2P_ENOMEM;
    }
    p->addrs = a;
    p->addrs_cap = need;
    return 0;
}

static ps_addr *addr_find(ps_addr *a, size_t n, const cp2p_multiaddr *ma)
{
    for (size_t i = 0; i < n; i++) {
        if (cp2p_multiaddr_equal(a[i].ma, ma)) {
            return &a[i];
        }
    }
    return NULL;
}

int cp2p_peerstore_add_addrs(cp2p_peerstore *ps, const cp2p_peer_id *peer,
                             const cp2p_multiaddr *const *addrs, size_t n, uint64_t ttl_ms,
                             cp2p_addr_source source, uint64_t now)
{
    if (ps == NULL || !id_ok(peer) || (n > 0 && addrs == NULL) || ttl_ms == 0 ||
        !source_ok(source)) {
        return CP2P_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        if (addrs[i] == NULL) {
            return CP2P_EINVAL;
        }
    }
    uint64_t expires = (ttl_ms == CP2P_PEERSTORE_TTL_PERMANENT || now > UINT64_MAX - ttl_ms)
                           ? CP2P_PEERSTORE_NEVER
                           : now + ttl_ms;
    peer_slot s;
    int rc = slot_get(ps, peer, n > 0, now, &s);
    if (rc == CP2P_ENOENT) {
        return 0; /* nothing to add to a peer we do not know */
    }
    if (rc != 0) {
        return rc;
    }
    ps_peer *p = s.p;
    size_t old = p->naddrs;
    /* Only the first max distinct new addresses can survive the cap: all share one expiry. */
    size_t max_new = n < ps->cfg.max_addrs_per_peer ? n : ps->cfg.max_addrs_per_peer;
    if ((rc = addrs_reserve(p, old + max_new)) != 0) {
        goto fail;
    }
    /* Pass 1, may fail: copy the new addresses, appended past `old`. */
    size_t skipped = 0;
    for (size_t i = 0; i < n; i++) {
        if (addr_find(p->addrs, p->naddrs, addrs[i]) != NULL) {
            continue;
        }
        if (p->naddrs - old == max_new) {
            skipped++;
            continue;
        }
        ps_addr *a = &p->addrs[p->naddrs];
        if ((rc = cp2p_multiaddr_dup(addrs[i], &a->ma)) != 0) {
            goto fail;
        }
        a->expires = expires;
        a->updated = now;
        a->source = source;
        p->naddrs++;
    }
    /* Pass 2, cannot fail: refresh the known ones, apply expiry and the cap. */
    for (size_t i = 0; i < n; i++) {
        ps_addr *a = addr_find(p->addrs, old, addrs[i]);
        if (a != NULL) {
            a->expires = max_u64(a->expires, expires);
            a->updated = now;
            if (source < a->source) {
                a->source = source;
            }
        }
    }
    ps->naddrs += p->naddrs - old;
    size_t dropped = skipped + addrs_settle(ps, p, now, ps->cfg.max_addrs_per_peer, true);
    if (s.is_new) {
        ps->naddrs -= p->naddrs; /* peer_insert() counts them */
    }
    if (dropped > 0) {
        ps->stats.addrs_dropped += dropped;
        char idstr[CP2P_PEER_ID_STR_MAX];
        CP2P_LOG(CP2P_LOG_DEBUG, MOD, 0, "peerstore.addr_dropped peer=%s n=%zu",
                 cp2p_peer_id_str(&p->id, idstr), dropped);
    }
    slot_commit(ps, &s, now);
    return 0;
fail:
    for (size_t i = old; i < p->naddrs; i++) {
        cp2p_multiaddr_free(p->addrs[i].ma);
    }
    p->naddrs = old;
    slot_abort(&s);
    return rc;
}

size_t cp2p_peerstore_addrs(const cp2p_peerstore *ps, const cp2p_peer_id *peer, uint64_t now,
                            cp2p_peerstore_addr *out, size_t max)
{
    const ps_peer *p = peer_lookup(ps, peer);
    size_t total = 0;
    if (p == NULL) {
        return 0;
    }
    for (size_t i = 0; i < p->naddrs; i++) {
        const ps_addr *a = &p->addrs[i];
        if (a->expires <= now) {
            continue;
        }
        if (total < max && out != NULL) {
            out[total] = (cp2p_peerstore_addr){
                .addr = a->ma, .expires_ms = a->expires, .updated_ms = a->updated,
                .source = a->source};
        }
        total++;
    }
    return total;
}

/* ---- key, protocols, agent ---- */

int cp2p_peerstore_set_pubkey(cp2p_peerstore *ps, const cp2p_peer_id *peer, const uint8_t *pb,
                              size_t len, uint64_t now)
{
    if (ps == NULL || !id_ok(peer) || pb == NULL || len == 0) {
        return CP2P_EINVAL;
    }
    if (len > CP2P_KEY_PB_MAX) {
        return CP2P_ELIMIT;
    }
    cp2p_peer_id derived;
    int rc = cp2p_peer_id_from_pubkey_proto(pb, len, &derived);
    if (rc != 0) {
        return rc == CP2P_ENOMEM || rc == CP2P_EIO ? rc : CP2P_EPROTO;
    }
    if (!cp2p_peer_id_equal(&derived, peer)) {
        return CP2P_EPEERID;
    }
    peer_slot s;
    if ((rc = slot_get(ps, peer, true, now, &s)) != 0) {
        return rc;
    }
    uint8_t *copy = cp2p__memdup(pb, len);
    if (copy == NULL) {
        slot_abort(&s);
        return CP2P_ENOMEM;
    }
    cp2p_free(s.p->pubkey);
    s.p->pubkey = copy;
    s.p->pubkey_len = len;
    slot_commit(ps, &s, now);
    return 0;
}

int cp2p_peerstore_pubkey(const cp2p_peerstore *ps, const cp2p_peer_id *peer, cp2p_slice *out)
{
    if (ps == NULL || !id_ok(peer) || out == NULL) {
        return CP2P_EINVAL;
    }
    const ps_peer *p = peer_lookup(ps, peer);
    if (p != NULL && p->pubkey != NULL) {
        *out = (cp2p_slice){.ptr = p->pubkey, .len = p->pubkey_len};
        return 0;
    }
    /* The ID is borrowed from the caller; return the stored copy's bytes when we have one. */
    const cp2p_peer_id *src = p != NULL ? &p->id : peer;
    return cp2p_peer_id_inline_key(src, out) == 0 ? 0 : CP2P_ENOENT;
}

int cp2p_peerstore_set_protocols(cp2p_peerstore *ps, const cp2p_peer_id *peer,
                                 const char *const *protos, size_t n, uint64_t now)
{
    if (ps == NULL || !id_ok(peer) || (n > 0 && protos == NULL)) {
        return CP2P_EINVAL;
    }
    if (n > ps->cfg.max_protocols_per_peer) {
        return CP2P_ELIMIT;
    }
    for (size_t i = 0; i < n; i++) {
        if (protos[i] == NULL || protos[i][0] == '\0') {
            return CP2P_EINVAL;
        }
        if (strnlen(protos[i], CP2P_PEERSTORE_PROTOCOL_MAX + 1) > CP2P_PEERSTORE_PROTOCOL_MAX) {
            return CP2P_ELIMIT;
        }
    }
    peer_slot s;
    int rc = slot_get(ps, peer, true, now, &s);
    if (rc != 0) {
        return rc;
    }
    char **list = NULL;
    size_t count = 0;
    if (n > 0 && (list = cp2p_calloc(n, sizeof(*list))) == NULL) {
        rc = CP2P_ENOMEM;
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        bool dup = false;
        for (size_t j = 0; j < count && !dup; j++) {
            dup = strcmp(list[j], protos[i]) == 0;
        }
        if (dup) {
            continue;
        }
        if ((list[count] = str_dup_n(protos[i], strlen(protos[i]))) == NULL) {
            rc = CP2P_ENOMEM;
            goto fail;
        }
        count++;
    }
    protos_free(s.p->protos, s.p->nprotos);
    s.p->protos = list;
    s.p->nprotos = count;
    slot_commit(ps, &s, now);
    return 0;
fail:
    protos_free(list, count);
    slot_abort(&s);
    return rc;
}

bool cp2p_peerstore_supports(const cp2p_peerstore *ps, const cp2p_peer_id *peer,
                             const char *proto)
{
    const ps_peer *p = peer_lookup(ps, peer);
    if (p == NULL || proto == NULL) {
        return false;
    }
    for (size_t i = 0; i < p->nprotos; i++) {
        if (strcmp(p->protos[i], proto) == 0) {
            return true;
        }
    }
    return false;
}

size_t cp2p_peerstore_protocols(const cp2p_peerstore *ps, const cp2p_peer_id *peer,
                                const char **out, size_t max)
{
    const ps_peer *p = peer_lookup(ps, peer);
    if (p == NULL) {
        return 0;
    }
    for (size_t i = 0; i < p->nprotos && i < max && out != NULL; i++) {
        out[i] = p->protos[i];
    }
    return p->nprotos;
}

int cp2p_peerstore_set_agent(cp2p_peerstore *ps, const cp2p_peer_id *peer, const char *agent,
                             uint64_t now)
{
    if (ps == NULL || !id_ok(peer) || agent == NULL) {
        return CP2P_EINVAL;
    }
    size_t len = strnlen(agent, CP2P_PEERSTORE_AGENT_MAX + 1);
    if (len > CP2P_PEERSTORE_AGENT_MAX) {
        return CP2P_ELIMIT;
    }
    peer_slot s;
    int rc = slot_get(ps, peer, true, now, &s);
    if (rc != 0) {
        return rc;
    }
    char *copy = str_dup_n(agent, len);
    if (copy == NULL) {
        slot_abort(&s);
        return CP2P_ENOMEM;
    }
    cp2p_free(s.p->agent);
    s.p->agent = copy;
    slot_commit(ps, &s, now);
    return 0;
}

const char *cp2p_peerstore_agent(const cp2p_peerstore *ps, const cp2p_peer_id *peer)
{
    const ps_peer *p = peer_lookup(ps, peer);
    return p != NULL ? p->agent : NULL;
}

/* ---- history, protection ---- */

int cp2p_peerstore_record_rtt(cp2p_peerstore *ps, const cp2p_peer_id *peer, uint64_t rtt_ns,
                              uint64_t now)
{
    if (ps == NULL || !id_ok(peer) || rtt_ns == 0) {
        return CP2P_EINVAL;
    }
    peer_slot s;
    int rc = slot_get(ps, peer, false, now, &s);
    if (rc != 0) {
        return rc;
    }
    if (rtt_ns > CP2P_PEERSTORE_RTT_MAX_NS) {
        rtt_ns = CP2P_PEERSTORE_RTT_MAX_NS;
    }
    ps_peer *p = s.p;
    p->rtt_last = rtt_ns;
    if (p->rtt_ewma == 0) {
        p->rtt_ewma = rtt_ns;
    } else {
        /* Both are at most RTT_MAX_NS (6e10), so the product cannot overflow. */
        p->rtt_ewma = (p->rtt_ewma * (CP2P_PEERSTORE_RTT_EWMA_DIV - 1) + rtt_ns) /
                      CP2P_PEERSTORE_RTT_EWMA_DIV;
        if (p->rtt_ewma == 0) {
            p->rtt_ewma = 1;
        }
    }
    slot_commit(ps, &s, now);
    return 0;
}

int cp2p_peerstore_record_connected(cp2p_peerstore *ps, const cp2p_peer_id *peer, uint64_t now)
{
    if (ps == NULL || !id_ok(peer)) {
        return CP2P_EINVAL;
    }
    peer_slot s;
    int rc = slot_get(ps, peer, true, now, &s);
    if (rc != 0) {
        return rc;
    }
    s.p->last_connected = now;
    s.p->failures = 0;
    slot_commit(ps, &s, now);
    return 0;
}

int cp2p_peerstore_record_failure(cp2p_peerstore *ps, const cp2p_peer_id *peer, uint64_t now)
{
    if (ps == NULL || !id_ok(peer)) {
        return CP2P_EINVAL;
    }
    ps_peer *p = peer_lookup(ps, peer);
    if (p == NULL) {
        return CP2P_ENOENT;
    }
    if (p->failures < UINT32_MAX) {
        p->failures++;
    }
    p->last_failure = now;
    /* A failure is not a sign of life: last_seen stays, so failing peers age out first. */
    p->dirty = true;
    return 0;
}

int cp2p_peerstore_set_protected(cp2p_peerstore *ps, const cp2p_peer_id *peer, bool on,
                                 uint64_t now)
{
    if (ps == NULL || !id_ok(peer)) {
        return CP2P_EINVAL;
    }
    peer_slot s;
    int rc = slot_get(ps, peer, on, now, &s);
    if (rc != 0) {
        return rc;
    }
    s.p->protected_peer = on;
    slot_commit(ps, &s, now);
    return 0;
}

int cp2p_peerstore_info_get(const cp2p_peerstore *ps, const cp2p_peer_id *peer,
                            cp2p_peerstore_info *out)
{
    if (ps == NULL || !id_ok(peer) || out == NULL) {
        return CP2P_EINVAL;
    }
    const ps_peer *p = peer_lookup(ps, peer);
    if (p == NULL) {
        return CP2P_ENOENT;
    }
    *out = (cp2p_peerstore_info){
        .protected_peer = p->protected_peer,
        .failures = p->failures,
        .last_seen_ms = p->last_seen,
        .last_connected_ms = p->last_connected,
        .last_failure_ms = p->last_failure,
        .rtt_last_ns = p->rtt_last,
        .rtt_ewma_ns = p->rtt_ewma,
        .naddrs = p->naddrs,
        .nprotocols = p->nprotos,
    };
    return 0;
}

size_t cp2p_peerstore_peers(const cp2p_peerstore *ps, cp2p_peer_id *out, size_t max)
{
    size_t k = 0;
    if (ps == NULL) {
        return 0;
    }
    for (size_t i = 0; i < ps->nbuckets; i++) {
        for (const ps_peer *p = ps->buckets[i]; p != NULL; p = p->next) {
            if (k < max && out != NULL) {
                out[k] = p->id;
            }
            k++;
        }
    }
    return k;
}

int cp2p_peerstore_remove(cp2p_peerstore *ps, const cp2p_peer_id *peer)
{
    if (ps == NULL || !id_ok(peer)) {
        return CP2P_EINVAL;
    }
    ps_peer *p = peer_lookup(ps, peer);
    if (p == NULL) {
        return CP2P_ENOENT;
    }
    peer_remove(ps, p);
    return 0;
}

size_t cp2p_peerstore_gc(cp2p_peerstore *ps, uint64_t now)
{
    size_t removed = 0;
    if (ps == NULL) {
        return 0;
    }
    for (size_t i = 0; i < ps->nbuckets; i++) {
        ps_peer *p = ps->buckets[i];
        while (p != NULL) {
            ps_peer *next = p->next;
            /* Dropping expired addresses needs no write: flush and load skip them anyway. */
            (void)addrs_settle(ps, p, now, 0, true);
            if (p->naddrs == 0 && !p->protected_peer) {
                peer_remove(ps, p);
                removed++;
            }
            p = next;
        }
    }
    ps->stats.gc_removed += removed;
    return removed;
}

void cp2p_peerstore_stats_get(const cp2p_peerstore *ps, cp2p_peerstore_stats *out)
{
    if (ps == NULL || out == NULL) {
        return;
    }
    *out = ps->stats;
    out->peers = ps->npeers;
    out->addrs = ps->naddrs;
}

/* ---- SQLite ---- */

static int db_fail(cp2p_peerstore *ps, const char *what)
{
    ps->stats.db_errors++;
    CP2P_LOG(CP2P_LOG_WARN, MOD, 0, "peerstore.db_error %s: %s", what,
             ps->db != NULL ? sqlite3_errmsg(ps->db) : "no database");
    return CP2P_EIO;
}

static int open_fail(cp2p_peerstore *ps, const char *path, const char *what, int rc)
{
    CP2P_LOG(CP2P_LOG_ERROR, MOD, 0, "peerstore.db_open_failed %s: %s: %s", path, what,
             ps->db != NULL ? sqlite3_errmsg(ps->db) : strerror(errno));
    return rc;
}

static bool step_done(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE;
}

static bool bind_id(sqlite3_stmt *st, const cp2p_peer_id *id)
{
    return sqlite3_bind_blob(st, 1, id->bytes, (int)id->len, SQLITE_STATIC) == SQLITE_OK;
}

/* Query a single integer (count or version). Returns false on any error. */
static bool query_int(sqlite3 *db, const char *sql, int64_t *out)
{
    sqlite3_stmt *st = NULL;
    bool ok = sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
              sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) == SQLITE_INTEGER;
    if (ok) {
        *out = sqlite3_column_int64(st, 0);
        ok = sqlite3_step(st) == SQLITE_DONE; /* exactly one row */
    }
    sqlite3_finalize(st);
    return ok;
}

static int schema_check(cp2p_peerstore *ps, const char *path)
{
    int64_t n = 0;
    if (!query_int(ps->db,
                   "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND "
                   "name = 'schema_version'",
                   &n)) {
        return open_fail(ps, path, "reading the schema", CP2P_EIO);
    }
    if (n == 0) {
        if (!query_int(ps->db, "SELECT count(*) FROM sqlite_master", &n)) {
            return open_fail(ps, path, "reading the schema", CP2P_EIO);
        }
        if (n != 0) {
            CP2P_LOG(CP2P_LOG_ERROR, MOD, 0,
                     "peerstore.db_open_failed %s: an SQLite database but not a cp2p peerstore "
                     "(no schema_version table)",
                     path);
            return CP2P_EIO;
        }
        if (sqlite3_exec(ps->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
            return open_fail(ps, path, "creating the schema", CP2P_EIO);
        }
        if (sqlite3_exec(ps->db, schema_v1, NULL, NULL, NULL) != SQLITE_OK ||
            sqlite3_exec(ps->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
            int rc = open_fail(ps, path, "creating the schema", CP2P_EIO);
            (void)sqlite3_exec(ps->db, "ROLLBACK", NULL, NULL, NULL);
            return rc;
        }
        return 0;
    }
    int64_t v = 0;
    if (!query_int(ps->db, "SELECT version FROM schema_version", &v)) {
        return open_fail(ps, path, "reading schema_version (expected one integer row)",
                         CP2P_EIO);
    }
    if (v > SCHEMA_VERSION) {
        CP2P_LOG(CP2P_LOG_ERROR, MOD, 0,
                 "peerstore.schema_newer %s: schema version %lld, this build reads up to %d; "
                 "use a newer cp2p or move the file away",
                 path, (long long)v, SCHEMA_VERSION);
        return CP2P_ENOTSUP;
    }
    if (v != SCHEMA_VERSION) {
        CP2P_LOG(CP2P_LOG_ERROR, MOD, 0, "peerstore.db_open_failed %s: bad schema version %lld",
                 path, (long long)v);
        return CP2P_EIO;
    }
    return 0;
}

/* Create the file 0600 before SQLite sees it (SQLite would create it 0644), and tighten an
 * existing one: it lists who we talk to. */
static int file_prepare(cp2p_peerstore *ps, const char *path)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        return open_fail(ps, path, "open", CP2P_EIO);
    }
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        errno = EINVAL;
        rc = open_fail(ps, path, "not a regular file", CP2P_EIO);
    } else if ((st.st_mode & 077) != 0 && fchmod(fd, 0600) != 0) {
        rc = open_fail(ps, path, "fchmod 0600", CP2P_EIO);
    }
    close(fd);
    return rc;
}

/* Load the addresses of p (unexpired at now) and its protocols. Bad rows are skipped. */
static int load_peer_rows(cp2p_peerstore *ps, ps_peer *p, sqlite3_stmt *sa, sqlite3_stmt *sp,
                          uint64_t now)
{
    int rc = 0, step;
    sqlite3_reset(sa);
    if (!bind_id(sa, &p->id) || sqlite3_bind_int64(sa, 2, to_db(now)) != SQLITE_OK) {
        return CP2P_EIO;
    }
    while ((step = sqlite3_step(sa)) == SQLITE_ROW) {
        const void *blob = sqlite3_column_blob(sa, 0);
        int len = sqlite3_column_bytes(sa, 0);
        int64_t src = sqlite3_column_int64(sa, 2);
        cp2p_multiaddr *ma = NULL;
        if (p->naddrs >= ps->cfg.max_addrs_per_peer) {
            break; /* ordered by expiry, latest first */
        }
        if (blob == NULL || !source_ok(src) ||
            (rc = cp2p_multiaddr_from_bytes(blob, (size_t)len, &ma)) != 0) {
            if (rc == CP2P_ENOMEM) {
                return rc;
            }
            rc = 0;
            ps->stats.db_bad_rows++;
            p->dirty = true; /* rewrite the peer without it */
            continue;
        }
        if ((rc = addrs_reserve(p, p->naddrs + 1)) != 0) {
            cp2p_multiaddr_free(ma);
            return rc;
        }
        p->addrs[p->naddrs++] = (ps_addr){.ma = ma,
                                          .expires = from_db(sqlite3_column_int64(sa, 1)),
                                          .source = (cp2p_addr_source)src,
                                          .updated = from_db(sqlite3_column_int64(sa, 3))};
    }
    if (step != SQLITE_ROW && step != SQLITE_DONE) {
        return CP2P_EIO;
    }
    sqlite3_reset(sa);
    (void)addrs_settle(ps, p, now, 0, false);

    sqlite3_reset(sp);
    if (!bind_id(sp, &p->id)) {
        return CP2P_EIO;
    }
    while ((step = sqlite3_step(sp)) == SQLITE_ROW) {
        const unsigned char *txt = sqlite3_column_text(sp, 0);
        int len = sqlite3_column_bytes(sp, 0);
        if (p->nprotos >= ps->cfg.max_protocols_per_peer) {
            p->dirty = true;
            break;
        }
        if (txt == NULL || len <= 0 || (size_t)len > CP2P_PEERSTORE_PROTOCOL_MAX ||
            memchr(txt, '\0', (size_t)len) != NULL) {
            ps->stats.db_bad_rows++;
            p->dirty = true;
            continue;
        }
        char **list = cp2p_realloc(p->protos, (p->nprotos + 1) * sizeof(*list));
        if (list == NULL) {
            return CP2P_ENOMEM;
        }
        p->protos = list;
        if ((list[p->nprotos] = str_dup_n((const char *)txt, (size_t)len)) == NULL) {
            return CP2P_ENOMEM;
        }
        p->nprotos++;
    }
    sqlite3_reset(sp);
    return step == SQLITE_DONE ? 0 : CP2P_EIO;
}

static int load(cp2p_peerstore *ps, const char *path, uint64_t now)
{
    sqlite3_stmt *sq = NULL, *sa = NULL, *sp = NULL;
    ps_peer *p = NULL;
    int rc = CP2P_EIO, step;
    if (sqlite3_prepare_v2(ps->db,
                           "SELECT id, pubkey, agent, protected, last_seen, last_connected, "
                           "last_failure, failures, rtt_ns FROM peers "
                           "ORDER BY protected DESC, last_seen DESC",
                           -1, &sq, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(ps->db,
                           "SELECT addr, expires, source, updated FROM addrs "
                           "WHERE peer = ?1 AND expires > ?2 ORDER BY expires DESC",
                           -1, &sa, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(ps->db, "SELECT proto FROM protocols WHERE peer = ?1", -1, &sp,
                           NULL) != SQLITE_OK) {
        rc = open_fail(ps, path, "preparing the load", CP2P_EIO);
        goto out;
    }
    while ((step = sqlite3_step(sq)) == SQLITE_ROW) {
        cp2p_peer_id id;
        const void *idb = sqlite3_column_blob(sq, 0);
        int idlen = sqlite3_column_bytes(sq, 0);
        if (idb == NULL || cp2p_peer_id_from_bytes(idb, (size_t)idlen, &id) != 0) {
            ps->stats.db_bad_rows++;
            ps->rewrite_all = true; /* the only way to get rid of a row we cannot name */
            continue;
        }
        if (ps->npeers >= ps->cfg.max_peers) {
            ps->rewrite_all = true; /* max_peers shrank: the file keeps what memory keeps */
            break;
        }
        if ((p = peer_alloc(&id, peer_hash(ps, &id))) == NULL) {
            rc = CP2P_ENOMEM;
            goto out;
        }
        p->in_db = true;
        const uint8_t *key = sqlite3_column_blob(sq, 1);
        int keylen = sqlite3_column_bytes(sq, 1);
        if (key != NULL && keylen > 0) {
            cp2p_peer_id derived;
            if ((size_t)keylen <= CP2P_KEY_PB_MAX &&
                cp2p_peer_id_from_pubkey_proto(key, (size_t)keylen, &derived) == 0 &&
                cp2p_peer_id_equal(&derived, &id)) {
                if ((p->pubkey = cp2p__memdup(key, (size_t)keylen)) == NULL) {
                    rc = CP2P_ENOMEM;
                    goto out;
                }
                p->pubkey_len = (size_t)keylen;
            } else {
                ps->stats.db_bad_rows++;
                p->dirty = true;
            }
        }
        const unsigned char *agent = sqlite3_column_text(sq, 2);
        int alen = sqlite3_column_bytes(sq, 2);
        if (agent != NULL) {
            if ((size_t)alen <= CP2P_PEERSTORE_AGENT_MAX &&
                memchr(agent, '\0', (size_t)alen) == NULL) {
                if ((p->agent = str_dup_n((const char *)agent, (size_t)alen)) == NULL) {
                    rc = CP2P_ENOMEM;
                    goto out;
                }
            } else {
                ps->stats.db_bad_rows++;
                p->dirty = true;
            }
        }
        p->protected_peer = sqlite3_column_int64(sq, 3) != 0;
        p->last_seen = from_db(sqlite3_column_int64(sq, 4));
        p->last_connected = from_db(sqlite3_column_int64(sq, 5));
        p->last_failure = from_db(sqlite3_column_int64(sq, 6));
        uint64_t f = from_db(sqlite3_column_int64(sq, 7));
        p->failures = f > UINT32_MAX ? UINT32_MAX : (uint32_t)f;
        uint64_t rtt = from_db(sqlite3_column_int64(sq, 8));
        p->rtt_ewma = rtt > CP2P_PEERSTORE_RTT_MAX_NS ? CP2P_PEERSTORE_RTT_MAX_NS : rtt;
        if ((rc = load_peer_rows(ps, p, sa, sp, now)) != 0) {
            if (rc == CP2P_EIO) {
                rc = open_fail(ps, path, "reading addresses and protocols", CP2P_EIO);
            }
            goto out;
        }
        peer_insert(ps, p);
        p = NULL;
    }
    if (step != SQLITE_ROW && step != SQLITE_DONE) {
        rc = open_fail(ps, path, "reading peers", CP2P_EIO);
        goto out;
    }
    rc = 0;
out:
    peer_free(p);
    sqlite3_finalize(sq);
    sqlite3_finalize(sa);
    sqlite3_finalize(sp);
    return rc;
}

static int db_open(cp2p_peerstore *ps, const char *path, uint64_t now)
{
    int rc = file_prepare(ps, path);
    if (rc != 0) {
        return rc;
    }
    if (sqlite3_open_v2(path, &ps->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK) {
        return open_fail(ps, path, "sqlite3_open", CP2P_EIO);
    }
    /* The first statement reads the header: a file that is not a database fails here. */
    if (sqlite3_exec(ps->db, "PRAGMA journal_mode = WAL", NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_exec(ps->db, "PRAGMA synchronous = NORMAL", NULL, NULL, NULL) != SQLITE_OK ||
        sqlite3_exec(ps->db, "PRAGMA foreign_keys = ON", NULL, NULL, NULL) != SQLITE_OK) {
        return open_fail(ps, path, "not a usable SQLite database", CP2P_EIO);
    }
    if ((rc = schema_check(ps, path)) != 0) {
        return rc;
    }
    for (int i = 0; i < ST_COUNT; i++) {
        if (sqlite3_prepare_v3(ps->db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &ps->st[i],
                               NULL) != SQLITE_OK) {
            return open_fail(ps, path, "preparing statements (schema damaged?)", CP2P_EIO);
        }
    }
    return load(ps, path, now);
}

static void db_close(cp2p_peerstore *ps)
{
    for (int i = 0; i < ST_COUNT; i++) {
        sqlite3_finalize(ps->st[i]);
        ps->st[i] = NULL;
    }
    if (ps->db != NULL) {
        (void)sqlite3_close_v2(ps->db);
        ps->db = NULL;
    }
}

void cp2p_peerstore_config_default(cp2p_peerstore_config *cfg)
{
    if (cfg == NULL) {
        return;
    }
    *cfg = (cp2p_peerstore_config){
        .max_peers = CP2P_PEERSTORE_MAX_PEERS_DEFAULT,
        .max_addrs_per_peer = CP2P_PEERSTORE_MAX_ADDRS_DEFAULT,
        .max_protocols_per_peer = CP2P_PEERSTORE_MAX_PROTOCOLS_DEFAULT,
    };
}

int cp2p_peerstore_open(const cp2p_peerstore_config *cfg, const char *path, uint64_t now,
                        cp2p_peerstore **out)
{
    cp2p_peerstore_config c;
    if (out == NULL) {
        return CP2P_EINVAL;
    }
    *out = NULL;
    if (cfg == NULL) {
        cp2p_peerstore_config_default(&c);
    } else {
        c = *cfg;
    }
    if (c.max_peers == 0 || c.max_peers > CP2P_PEERSTORE_MAX_PEERS_LIMIT ||
        c.max_addrs_per_peer == 0 || c.max_addrs_per_peer > CP2P_PEERSTORE_MAX_ADDRS_LIMIT ||
        c.max_protocols_per_peer == 0 ||
        c.max_protocols_per_peer > CP2P_PEERSTORE_MAX_PROTOCOLS_LIMIT) {
        return CP2P_EINVAL;
    }
    int rc = cp2p__crypto_init(); /* libsodium, for the hash key */
    if (rc != 0) {
        return rc;
    }
    cp2p_peerstore *ps = cp2p_calloc(1, sizeof(*ps));
    if (ps == NULL) {
        return CP2P_ENOMEM;
    }
    ps->cfg = c;
    ps->nbuckets = CP2P_PEERSTORE_BUCKETS_MIN;
    if ((ps->buckets = cp2p_calloc(ps->nbuckets, sizeof(*ps->buckets))) == NULL) {
        rc = CP2P_ENOMEM;
        goto fail;
    }
    randombytes_buf(ps->hkey, sizeof(ps->hkey));
    if (path != NULL) {
        if ((rc = db_open(ps, path, now)) != 0) {
            goto fail;
        }
        size_t gone = cp2p_peerstore_gc(ps, now);
        if (gone > 0) {
            CP2P_LOG(CP2P_LOG_DEBUG, MOD, 0, "peerstore.load_dropped n=%zu (no address left)",
                     gone);
        }
        CP2P_LOG(CP2P_LOG_DEBUG, MOD, 0, "peerstore.loaded %s peers=%zu addrs=%zu", path,
                 ps->npeers, ps->naddrs);
    }
    *out = ps;
    return 0;
fail:
    cp2p_peerstore_close(ps);
    return rc;
}

void cp2p_peerstore_close(cp2p_peerstore *ps)
{
    if (ps == NULL) {
        return;
    }
    for (size_t i = 0; ps->buckets != NULL && i < ps->nbuckets; i++) {
        ps_peer *p = ps->buckets[i];
        while (p != NULL) {
            ps_peer *next = p->next;
            peer_free(p);
            p = next;
        }
    }
    cp2p_free(ps->buckets);
    cp2p_free(ps->deleted);
    db_close(ps);
    cp2p_free(ps);
}

/* ---- flush ---- */

static bool write_peer(cp2p_peerstore *ps, const ps_peer *p, uint64_t now)
{
    sqlite3_stmt *st = ps->st[ST_PEER_UPSERT];
    bool ok = bind_id(st, &p->id) &&
              (p->pubkey != NULL
                   ? sqlite3_bind_blob(st, 2, p->pubkey, (int)p->pubkey_len, SQLITE_STATIC)
                   : sqlite3_bind_null(st, 2)) == SQLITE_OK &&
              (p->agent != NULL ? sqlite3_bind_text(st, 3, p->agent, -1, SQLITE_STATIC)
                                : sqlite3_bind_null(st, 3)) == SQLITE_OK &&
              sqlite3_bind_int64(st, 4, p->protected_peer ? 1 : 0) == SQLITE_OK &&
              sqlite3_bind_int64(st, 5, to_db(p->last_seen)) == SQLITE_OK &&
              sqlite3_bind_int64(st, 6, to_db(p->last_connected)) == SQLITE_OK &&
              sqlite3_bind_int64(st, 7, to_db(p->last_failure)) == SQLITE_OK &&
              sqlite3_bind_int64(st, 8, p->failures) == SQLITE_OK &&
              sqlite3_bind_int64(st, 9, to_db(p->rtt_ewma)) == SQLITE_OK && step_done(st);
    ok = ok && bind_id(ps->st[ST_ADDRS_DELETE], &p->id) && step_done(ps->st[ST_ADDRS_DELETE]);
    ok = ok && bind_id(ps->st[ST_PROTOS_DELETE], &p->id) && step_done(ps->st[ST_PROTOS_DELETE]);
    st = ps->st[ST_ADDR_INSERT];
    for (size_t i = 0; ok && i < p->naddrs; i++) {
        const ps_addr *a = &p->addrs[i];
        if (a->expires <= now) {
            continue;
        }
        cp2p_slice b = cp2p_multiaddr_bytes(a->ma);
        ok = bind_id(st, &p->id) &&
             sqlite3_bind_blob(st, 2, b.ptr, (int)b.len, SQLITE_STATIC) == SQLITE_OK &&
             sqlite3_bind_int64(st, 3, to_db(a->expires)) == SQLITE_OK &&
             sqlite3_bind_int64(st, 4, (int64_t)a->source) == SQLITE_OK &&
             sqlite3_bind_int64(st, 5, to_db(a->updated)) == SQLITE_OK && step_done(st);
    }
    st = ps->st[ST_PROTO_INSERT];
    for (size_t i = 0; ok && i < p->nprotos; i++) {
        ok = bind_id(st, &p->id) &&
             sqlite3_bind_text(st, 2, p->protos[i], -1, SQLITE_STATIC) == SQLITE_OK &&
             step_done(st);
    }
    return ok;
}

int cp2p_peerstore_flush(cp2p_peerstore *ps, uint64_t now)
{
    if (ps == NULL) {
        return CP2P_EINVAL;
    }
    if (ps->db == NULL) {
        return 0;
    }
    bool pending = ps->rewrite_all || ps->ndeleted > 0;
    for (size_t i = 0; !pending && i < ps->nbuckets; i++) {
        for (const ps_peer *p = ps->buckets[i]; p != NULL && !pending; p = p->next) {
            pending = p->dirty;
        }
    }
    if (!pending) {
        return 0;
    }
    if (sqlite3_exec(ps->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        return db_fail(ps, "begin");
    }
    bool ok = true;
    if (ps->rewrite_all) {
        ok = sqlite3_exec(ps->db, "DELETE FROM peers", NULL, NULL, NULL) == SQLITE_OK;
    } else {
        sqlite3_stmt *st = ps->st[ST_PEER_DELETE];
        for (size_t i = 0; ok && i < ps->ndeleted; i++) {
            ok = bind_id(st, &ps->deleted[i]) && step_done(st);
        }
    }
    for (size_t i = 0; ok && i < ps->nbuckets; i++) {
        for (const ps_peer *p = ps->buckets[i]; ok && p != NULL; p = p->next) {
            if (p->dirty || ps->rewrite_all || !p->in_db) {
                ok = write_peer(ps, p, now);
            }
        }
    }
    if (!ok || sqlite3_exec(ps->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        int rc = db_fail(ps, "flush");
        (void)sqlite3_exec(ps->db, "ROLLBACK", NULL, NULL, NULL);
        return rc;
    }
    for (size_t i = 0; i < ps->nbuckets; i++) {
        for (ps_peer *p = ps->buckets[i]; p != NULL; p = p->next) {
            p->dirty = false;
            p->in_db = true;
        }
    }
    ps->ndeleted = 0;
    ps->rewrite_all = false;
    ps->stats.flushes++;
    return 0;
}
