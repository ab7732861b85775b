/* Artifact gossip core (see art_core.h). */
#include <string.h>

#include <sodium.h>

#include <cp2p/codec.h>
#include <cp2p/multiformats.h>

#include "flows/art_core.h"
#include "util/alloc.h"
#include "util/hashmap.h"
#include "util/limits.h"
#include "util/queue.h"
#include "util/token_bucket.h"

typedef struct art_key {
    uint8_t id[CP2P_ART_MAX_ID];
    uint8_t len;
} art_key;

/* One advert a peer sent us: the id and the digest of its manifest (art_mdig). */
typedef struct art_padv {
    art_key k;
    uint8_t mdig[32];
    struct art_padv *prev, *next; /* the peer's FIFO, oldest first */
} art_padv;

typedef struct art_peer {
    cp2p_peer_id id;
    cp2p_hashmap adverts; /* art_padv by id */
    art_padv *oldest, *newest;
    uint32_t credit, inflight, serving, penalty;
    bool banned, dirty;
    bool lazy; /* push tree: it pruned us (or we it): small artifacts are advertised to it */
    cp2p_token_bucket retrans;
    cp2p_buf out; /* Envelope fields waiting to be cut into frames */
} art_peer;

enum { CH_NEED = 0, CH_INFLIGHT = 1, CH_DONE = 2 };

typedef struct art_chunk {
    art_peer *peer;  /* CH_INFLIGHT: asked of */
    art_peer *peer2; /* CH_INFLIGHT, endgame: also asked of (first answer wins) */
    art_peer *avoid; /* the last peer that failed it */
    uint64_t asked, deadline;
    uint8_t state;
} art_chunk;

enum { F_FETCHING = 0, F_VALIDATING = 1 };

/* A source of a fetch: a peer that advertised its manifest (bits NULL: it holds every chunk),
 * or a partial source, fetching it too (a partial advert): bit i of bits (n_chunks bits) is
 * set once it announced chunk i with Have. */
typedef struct art_src {
    art_peer *p;
    uint8_t *bits;
} art_src;

typedef struct art_fetch {
    art_key k;
    uint64_t size;
    uint32_t chunk_size, n_chunks, done, n_need;
    uint8_t mdig[32];
    uint8_t *hashes; /* n_chunks x 32 */
    cp2p_buf advert; /* the encoded advert (Envelope field), relayed once stored */
    uint8_t *data;   /* size bytes */
    art_chunk *chunks;
    art_src *src;    /* peers that advertised this manifest, or are fetching it (partial) */
    uint32_t n_src, cap_src, n_partial;
    art_peer **told; /* peers sent our partial advert: told of each chunk we verify (Have) */
    uint32_t n_told, cap_told;
    art_peer *manifest_peer; /* whose advert we fetch with */
    uint64_t lat_ms;         /* moving average of a chunk's request-to-arrival time, 0: none */
    int state;
    bool small;              /* one chunk, at most the push threshold: max_small_fetches */
    bool graft;              /* a small artifact no push brought: whom we ask pushes to us again */
    struct art_fetch *prev, *next; /* list of all fetches, oldest first */
} art_fetch;

typedef struct art_held {
    art_key k;
    uint64_t size;
    uint32_t chunk_size, n_chunks;
    cp2p_buf advert; /* the encoded advert (Envelope field) */
    struct art_held *prev, *next; /* oldest first */
} art_held;

/* A chunk verified during one recv call, to be announced with Have at its end. */
typedef struct art_hq {
    struct art_fetch *f;
    uint32_t index;
} art_hq;

typedef struct art_later {
    art_key k;
    cp2p_buf advert; /* the encoded advert, decoded again when the bouncer says wanted */
    uint64_t due;    /* waiting for a push (small artifacts): fetched from now on */
    uint8_t *data;   /* a push that found the fetch table full: its bytes (<= push threshold) */
    size_t data_len;
} art_later;

struct cp2p__art_core {
    cp2p__art_config cfg;
    cp2p_hashmap peers, fetches, held, later;
    cp2p_hashmap waiting; /* art_later: small adverts waiting for a push (push tree) */
    cp2p_queue wait_q;    /* the same, by due time (a constant wait: oldest first) */
    art_fetch *f_first, *f_last;
    art_held *h_first, *h_last;
    uint32_t n_small; /* fetches of small artifacts */
    uint32_t wait_ms; /* push tree: how long a small advert waits for a push (adapts) */
    cp2p_queue later_q; /* art_later, oldest first */
    cp2p_queue events;  /* cp2p__art_event */
    art_peer **dirty;
    uint32_t n_dirty;
    art_hq *hq;       /* chunks verified since the last Have flush (CP2P_ART_MAX_FRAME_MSGS) */
    uint32_t n_hq;
    uint32_t *hq_idx; /* scratch: the indexes of one Have */
    cp2p_buf hq_buf;  /* scratch: one encoded Have */
    cp2p__art_stats st;
};

static cp2p_slice key_of_padv(const void *it)
{
    const art_padv *a = it;
    return (cp2p_slice){a->k.id, a->k.len};
}
static cp2p_slice key_of_peer(const void *it)
{
    const art_peer *p = it;
    return (cp2p_slice){p->id.bytes, p->id.len};
}
static cp2p_slice key_of_fetch(const void *it)
{
    const art_fetch *f = it;
    return (cp2p_slice){f->k.id, f->k.len};
}
static cp2p_slice key_of_held(const void *it)
{
    const art_held *h = it;
    return (cp2p_slice){h->k.id, h->k.len};
}
static cp2p_slice key_of_later(const void *it)
{
    const art_later *l = it;
    return (cp2p_slice){l->k.id, l->k.len};
}

void cp2p__art_config_default(cp2p__art_config *cfg)
{
    *cfg = (cp2p__art_config){
        .chunk_size = CP2P_ART_CHUNK_SIZE,
        .push_threshold = CP2P_ART_PUSH_THRESHOLD,
        .push_tree = true,
        .push_wait_ms = CP2P_ART_PUSH_WAIT_MS,
        .max_size = CP2P_ART_MAX_SIZE,
        .max_frame = CP2P_ART_MAX_FRAME,
        .max_peers = CP2P_ART_MAX_PEERS,
        .max_adverts_per_peer = CP2P_ART_MAX_ADVERTS_PER_PEER,
        .max_fetches = CP2P_ART_MAX_FETCHES,
        .max_small_fetches = CP2P_ART_MAX_SMALL_FETCHES,
        .max_fetch_bytes = CP2P_ART_MAX_FETCH_BYTES,
        .max_partial_sources = CP2P_ART_MAX_PARTIAL_SOURCES,
        .max_held = CP2P_ART_MAX_HELD,
        .max_later = CP2P_ART_MAX_ADVERTS_PER_PEER,
        .inflight_start = CP2P_ART_INFLIGHT_START,
        .inflight_max = CP2P_ART_INFLIGHT_MAX,
        .chunk_timeout_ms = CP2P_ART_CHUNK_TIMEOUT_MS,
        .retrans_per_sec = CP2P_ART_RETRANS_PER_SEC,
        .retrans_burst = CP2P_ART_RETRANS_BURST,
        .max_serving_per_peer = CP2P_ART_MAX_SERVING_PER_PEER,
        .max_outbox_bytes = CP2P_ART_MAX_OUTBOX_BYTES,
        .penalty_ban = CP2P_ART_PENALTY_BAN,
        .id_sha256 = true,
    };
}

/* Digest binding an advert's size, chunk size and manifest: two adverts with the same digest
 * describe the same chunks. */
static void art_mdig(const cp2p__art_advert *a, uint8_t out[32])
{
    crypto_hash_sha256_state s;
    uint8_t hdr[12];
    for (int i = 0; i < 8; i++) {
        hdr[i] = (uint8_t)(a->size >> (56 - 8 * i));
    }
    for (int i = 0; i < 4; i++) {
        hdr[8 + i] = (uint8_t)(a->chunk_size >> (24 - 8 * i));
    }
    crypto_hash_sha256_init(&s);
    crypto_hash_sha256_update(&s, hdr, sizeof(hdr));
    crypto_hash_sha256_update(&s, a->hashes.ptr, a->hashes.len);
    crypto_hash_sha256_final(&s, out);
}

static bool key_set(art_key *k, const uint8_t *id, size_t len)
{
    if (len == 0 || len > CP2P_ART_MAX_ID) {
        return false;
    }
    memcpy(k->id, id, len);
    k->len = (uint8_t)len;
    return true;
}

static bool is_sha256_id(const uint8_t *id, size_t len)
{
    return len == 34 && id[0] == 0x12 && id[1] == 0x20;
}

/* Ids are checked against the bytes: by the application's function, or as sha2-256. */
static bool ids_checked(const cp2p__art_config *cfg)
{
    return cfg->id_fn != NULL || cfg->id_sha256;
}

/* An id a peer names must have the shape of ours (any multihash under id_fn). */
static bool id_shape_ok(const cp2p__art_config *cfg, const uint8_t *id, size_t len)
{
    return cfg->id_fn != NULL || !cfg->id_sha256 || is_sha256_id(id, len);
}

/* The id of data[0..len): the application's function, else the sha2-256 multihash. Returns
 * its length or a negative error (CP2P_EINVAL: the function's answer is not a multihash). */
static ptrdiff_t compute_id(const cp2p__art_config *cfg, const uint8_t *data, size_t len,
                            uint8_t out[CP2P_ART_MAX_ID])
{
    if (cfg->id_fn == NULL) {
        out[0] = 0x12;
        out[1] = 0x20;
        crypto_hash_sha256(out + 2, data, len);
        return 34;
    }
    ptrdiff_t n = cfg->id_fn(data, len, out, cfg->id_ud);
    if (n < 0) {
        return n;
    }
    if (n == 0 || n > CP2P_ART_MAX_ID || cp2p_multihash_validate(out, (size_t)n) != 0) {
        return CP2P_EINVAL;
    }
    return n;
}

/* True when data[0..len) is what `k` names (ids_checked). */
static bool id_matches(const cp2p__art_config *cfg, const uint8_t *id, size_t id_len,
                       const uint8_t *data, size_t len)
{
    uint8_t mine[CP2P_ART_MAX_ID];
    ptrdiff_t n = compute_id(cfg, data, len, mine);
    return n > 0 && (size_t)n == id_len && sodium_memcmp(mine, id, id_len) == 0;
}

static void mark_dirty(cp2p__art_core *c, art_peer *p)
{
    if (!p->dirty && p->out.len > 0) {
        p->dirty = true;
        c->dirty[c->n_dirty++] = p;
    }
}

/* Append one Envelope field to the peer's outbox, or count it dropped. */
static int outbox_add(cp2p__art_core *c, art_peer *p, const uint8_t *field, size_t len)
{
    if (len > c->cfg.max_frame) {
        c->st.outbox_dropped++;
        return CP2P_ELIMIT;
    }
    int rc = cp2p_buf_append(&p->out, field, len);
    if (rc != 0) {
        c->st.outbox_dropped++;
        return rc == CP2P_ELIMIT ? CP2P_EFULL : rc;
    }
    mark_dirty(c, p);
    return 0;
}

/* ---- peers ---- */

static art_peer *peer_find(const cp2p__art_core *c, const cp2p_peer_id *id)
{
    return cp2p__hashmap_find(&c->peers, id->bytes, id->len);
}

static void padv_unlink(art_peer *p, art_padv *a)
{
    if (a->prev != NULL) {
        a->prev->next = a->next;
    } else {
        p->oldest = a->next;
    }
    if (a->next != NULL) {
        a->next->prev = a->prev;
    } else {
        p->newest = a->prev;
    }
    (void)cp2p__hashmap_remove(&p->adverts, a);
    cp2p_free(a);
}

static void padv_forget(art_peer *p, const art_key *k)
{
    art_padv *a = cp2p__hashmap_find(&p->adverts, k->id, k->len);
    if (a != NULL) {
        padv_unlink(p, a);
    }
}

/* Remember that `p` advertised `k` with manifest digest `mdig` (the oldest entry goes when
 * the table is at its bound). */
static void padv_add(cp2p__art_core *c, art_peer *p, const art_key *k, const uint8_t mdig[32])
{
    art_padv *a = cp2p__hashmap_find(&p->adverts, k->id, k->len);
    if (a != NULL) {
        memcpy(a->mdig, mdig, 32);
        return;
    }
    if (cp2p__hashmap_len(&p->adverts) >= c->cfg.max_adverts_per_peer && p->oldest != NULL) {
        padv_unlink(p, p->oldest);
        c->st.adverts_evicted++;
    }
    if ((a = cp2p_calloc(1, sizeof(*a))) == NULL) {
        return;
    }
    a->k = *k;
    memcpy(a->mdig, mdig, 32);
    if (cp2p__hashmap_insert(&p->adverts, a) != 0) {
        cp2p_free(a);
        return;
    }
    a->prev = p->newest;
    if (p->newest != NULL) {
        p->newest->next = a;
    } else {
        p->oldest = a;
    }
    p->newest = a;
}

static void peer_free(art_peer *p)
{
    while (p->oldest != NULL) {
        padv_unlink(p, p->oldest);
    }
    cp2p__hashmap_fini(&p->adverts, NULL, NULL);
    cp2p_buf_fini(&p->out);
    cp2p_free(p);
}

/* ---- fetches ---- */

static art_src *src_find(const art_fetch *f, const art_peer *p)
{
    for (uint32_t i = 0; i < f->n_src; i++) {
        if (f->src[i].p == p) {
            return &f->src[i];
        }
    }
    return NULL;
}

/* True if `p` advertised the whole of what f fetches. */
static bool src_full(const art_fetch *f, const art_peer *p)
{
    const art_src *s = src_find(f, p);
    return s != NULL && s->bits == NULL;
}

static bool src_has(const art_src *s, uint32_t i)
{
    return s->bits == NULL || (s->bits[i >> 3] >> (i & 7) & 1) != 0;
}

static void fetch_src_remove(art_fetch *f, const art_peer *p)
{
    art_src *s = src_find(f, p);
    if (s == NULL) {
        return;
    }
    if (s->bits != NULL) {
        cp2p_free(s->bits);
        f->n_partial--;
    }
    *s = f->src[--f->n_src];
}

/* A new entry for `p` (bits as given), growing the array; NULL when out of memory. */
static art_src *src_append(art_fetch *f, art_peer *p, uint8_t *bits)
{
    if (f->n_src == f->cap_src) {
        uint32_t cap = f->cap_src ? 2 * f->cap_src : 8;
        art_src *n = cp2p_calloc(cap, sizeof(*n));
        if (n == NULL) {
            return NULL;
        }
        if (f->n_src > 0) {
            memcpy(n, f->src, f->n_src * sizeof(*n));
        }
        cp2p_free(f->src);
        f->src = n;
        f->cap_src = cap;
    }
    f->src[f->n_src] = (art_src){p, bits};
    return &f->src[f->n_src++];
}

/* `p` holds all of it: a full source (a partial one is upgraded, its bitmap dropped). */
static void fetch_src_add(art_fetch *f, art_peer *p)
{
    art_src *s = src_find(f, p);
    if (s == NULL) {
        (void)src_append(f, p, NULL);
    } else if (s->bits != NULL) {
        cp2p_free(s->bits);
        s->bits = NULL;
        f->n_partial--;
    }
}

/* `p` is fetching it too (a partial advert): a partial source with no chunk yet, unless it is
 * a source already. At most cfg.max_partial_sources per fetch (counted). */
static void fetch_src_add_partial(cp2p__art_core *c, art_fetch *f, art_peer *p)
{
    if (src_find(f, p) != NULL) {
        return;
    }
    if (f->n_partial >= c->cfg.max_partial_sources) {
        c->st.partial_src_full++;
        return;
    }
    uint8_t *bits = cp2p_calloc(1, f->n_chunks / 8 + 1);
    if (bits == NULL || src_append(f, p, bits) == NULL) {
        cp2p_free(bits);
        return;
    }
    f->n_partial++;
}

static void told_remove(art_fetch *f, const art_peer *p)
{
    for (uint32_t i = 0; i < f->n_told; i++) {
        if (f->told[i] == p) {
            f->told[i] = f->told[--f->n_told];
            return;
        }
    }
}

static void peer_unload(art_peer *p)
{
    if (p != NULL && p->inflight > 0) {
        p->inflight--;
    }
}

/* A chunk in flight goes back to be asked of someone else. */
static void chunk_release(art_chunk *ch, art_fetch *f, bool avoid)
{
    peer_unload(ch->peer);
    peer_unload(ch->peer2);
    ch->avoid = avoid ? ch->peer : NULL;
    ch->peer = ch->peer2 = NULL;
    ch->state = CH_NEED;
    f->n_need++;
}

/* `p` no longer answers for this chunk: the other asker (endgame) keeps it, or it goes back
 * to be asked again. Returns true when it went back. */
static bool chunk_drop_asker(art_chunk *ch, art_fetch *f, const art_peer *p, bool avoid)
{
    if (ch->peer2 == p) {
        peer_unload(ch->peer2);
        ch->peer2 = NULL;
        return false;
    }
    if (ch->peer2 != NULL) {
        peer_unload(ch->peer);
        ch->peer = ch->peer2;
        ch->peer2 = NULL;
        return false;
    }
    chunk_release(ch, f, avoid);
    return true;
}

static void fetch_free(cp2p__art_core *c, art_fetch *f)
{
    for (uint32_t i = 0; i < c->n_hq; i++) {
        if (c->hq[i].f == f) {
            c->hq[i].f = NULL; /* its Haves are not sent */
        }
    }
    for (uint32_t i = 0; i < f->n_src; i++) {
        cp2p_free(f->src[i].bits);
    }
    cp2p_free(f->told);
    if (f->state == F_FETCHING) {
        for (uint32_t i = 0; i < f->n_chunks; i++) {
            if (f->chunks[i].state == CH_INFLIGHT) {
                peer_unload(f->chunks[i].peer);
                peer_unload(f->chunks[i].peer2);
            }
        }
    }
    if (f->prev != NULL) {
        f->prev->next = f->next;
    } else {
        c->f_first = f->next;
    }
    if (f->next != NULL) {
        f->next->prev = f->prev;
    } else {
        c->f_last = f->prev;
    }
    (void)cp2p__hashmap_remove(&c->fetches, f);
    c->st.fetch_bytes -= f->size;
    c->n_small -= f->small;
    cp2p_free(f->hashes);
    cp2p_free(f->data);
    cp2p_free(f->chunks);
    cp2p_free(f->src);
    cp2p_buf_fini(&f->advert);
    cp2p_free(f);
}

/* A large fetch started: tell every up, non-banned peer that is not a full source that we
 * are fetching it (a partial advert: our advert re-keyed), and remember whom we told: they
 * get a Have for each chunk we verify. Peers that come up later are not told (they learn of
 * it from our advert once we hold it). */
static void announce_partial(cp2p__art_core *c, art_fetch *f)
{
    size_t n = cp2p__hashmap_len(&c->peers);
    if (f->n_chunks < 2 || n == 0 || f->advert.len < 2 ||
        (f->told = cp2p_calloc(n, sizeof(*f->told))) == NULL) {
        return;
    }
    f->cap_told = (uint32_t)n;
    /* Our advert re-keyed as field 7: the same body, one byte changed. */
    uint8_t *field = cp2p__memdup(f->advert.ptr, f->advert.len);
    if (field == NULL) {
        return;
    }
    field[0] = CP2P_ART_KEY_PARTIAL;
    size_t cur = 0;
    art_peer *p;
    while ((p = cp2p__hashmap_next(&c->peers, &cur)) != NULL && f->n_told < f->cap_told) {
        if (!p->banned && !src_full(f, p) && outbox_add(c, p, field, f->advert.len) == 0) {
            f->told[f->n_told++] = p;
            c->st.partial_adverts_sent++;
        }
    }
    cp2p_free(field);
}

/* Start fetching `a` (bouncer said wanted), with `from` (may be NULL; a partial source when
 * `from_partial`, else a full one) and every other peer that advertised the same manifest as
 * sources. Returns 0, CP2P_EFULL (counted), CP2P_ENOMEM. */
static int fetch_start(cp2p__art_core *c, const cp2p__art_advert *a, const art_key *k,
                       const uint8_t mdig[32], art_peer *from, bool from_partial)
{
    bool small = a->n_chunks == 1 && a->size <= c->cfg.push_threshold;
    if ((small ? c->n_small >= c->cfg.max_small_fetches
               : cp2p__hashmap_len(&c->fetches) - c->n_small >= c->cfg.max_fetches) ||
        c->st.fetch_bytes + a->size > c->cfg.max_fetch_bytes) {
        c->st.fetches_refused++;
        return CP2P_EFULL;
    }
    art_fetch *f = cp2p_calloc(1, sizeof(*f));
    if (f == NULL) {
        return CP2P_ENOMEM;
    }
    f->k = *k;
    f->size = a->size;
    f->chunk_size = a->chunk_size;
    f->n_chunks = a->n_chunks;
    f->n_need = a->n_chunks;
    memcpy(f->mdig, mdig, 32);
    f->manifest_peer = from;
    cp2p_buf_init(&f->advert, c->cfg.max_frame);
    f->hashes = cp2p__memdup(a->hashes.ptr, a->hashes.len);
    f->data = cp2p_malloc(a->size);
    f->chunks = cp2p_calloc(a->n_chunks, sizeof(art_chunk));
    if (f->hashes == NULL || f->data == NULL || f->chunks == NULL ||
        cp2p__art_advert_append(&f->advert, a) != 0 || cp2p__hashmap_insert(&c->fetches, f) != 0) {
        cp2p_free(f->hashes);
        cp2p_free(f->data);
        cp2p_free(f->chunks);
        cp2p_buf_fini(&f->advert);
        cp2p_free(f);
        return CP2P_ENOMEM;
    }
    c->st.fetch_bytes += f->size;
    f->small = small;
    c->n_small += small;
    f->prev = c->f_last;
    if (c->f_last != NULL) {
        c->f_last->next = f;
    } else {
        c->f_first = f;
    }
    c->f_last = f;
    /* Every peer that advertised this manifest is a source. */
    size_t cur = 0;
    art_peer *p;
    while ((p = cp2p__hashmap_next(&c->peers, &cur)) != NULL) {
        art_padv *pa = cp2p__hashmap_find(&p->adverts, k->id, k->len);
        if (!p->banned && pa != NULL && memcmp(pa->mdig, mdig, 32) == 0) {
            fetch_src_add(f, p);
        }
    }
    if (from != NULL && from_partial) {
        fetch_src_add_partial(c, f, from);
    } else if (from != NULL) {
        fetch_src_add(f, from);
    }
    c->st.fetches_started++;
    announce_partial(c, f);
    return 0;
}

static int push_event(cp2p__art_core *c, const cp2p__art_event *ev)
{
    cp2p__art_event *e = cp2p__memdup(ev, sizeof(*ev));
    if (e == NULL) {
        return CP2P_ENOMEM;
    }
    int rc = cp2p__queue_push(&c->events, e);
    if (rc != 0) {
        cp2p_free(e);
    }
    return rc;
}

static void penalise(cp2p__art_core *c, art_peer *p, uint32_t points)
{
    p->penalty += points;
    if (!p->banned && p->penalty >= c->cfg.penalty_ban) {
        p->banned = true;
        c->st.peers_banned++;
        for (art_fetch *f = c->f_first; f != NULL; f = f->next) {
            fetch_src_remove(f, p);
        }
    }
}

/* All chunks arrived and matched the manifest: check the whole against the id and hand it to
 * the application. */
static void fetch_finish(cp2p__art_core *c, art_fetch *f)
{
    if (ids_checked(&c->cfg)) {
        if (!id_matches(&c->cfg, f->k.id, f->k.len, f->data, f->size)) {
            /* The manifest matched every chunk, so the advert lied: blame whoever sent it. */
            c->st.fetches_bad_whole++;
            if (f->manifest_peer != NULL) {
                penalise(c, f->manifest_peer, c->cfg.penalty_ban);
            }
            fetch_free(c, f);
            return;
        }
    }
    cp2p__art_event ev = {.kind = CP2P_ART_EV_COMPLETE, .id_len = f->k.len, .data = f->data,
                          .size = f->size};
    memcpy(ev.id, f->k.id, f->k.len);
    if (push_event(c, &ev) != 0) {
        fetch_free(c, f); /* cannot happen with the event queue sized for every fetch */
        return;
    }
    f->state = F_VALIDATING;
    c->st.fetches_completed++;
}

static bool has_room(const art_peer *p)
{
    return !p->banned && p->inflight < p->credit;
}

/* Sources of f with room for one more request. */
static uint32_t sources_with_room(const art_fetch *f)
{
    uint32_t n = 0;
    for (uint32_t s = 0; s < f->n_src; s++) {
        n += has_room(f->src[s].p);
    }
    return n;
}

/* The least loaded source that has chunk i (a full source, or a partial one that announced
 * it) and room (inflight < credit), other than `not`, preferring any peer but `avoid`; NULL
 * when none. */
static art_peer *pick_source(const art_fetch *f, uint32_t i, const art_peer *avoid,
                             const art_peer *not)
{
    art_peer *best = NULL, *fallback = NULL;
    for (uint32_t s = 0; s < f->n_src; s++) {
        art_peer *p = f->src[s].p;
        if (!has_room(p) || p == not || !src_has(&f->src[s], i)) {
            continue;
        }
        art_peer **slot = p == avoid ? &fallback : &best;
        /* least loaded: inflight / credit, compared without division */
        if (*slot == NULL ||
            (uint64_t)p->inflight * (*slot)->credit < (uint64_t)(*slot)->inflight * p->credit) {
            *slot = p;
        }
    }
    return best != NULL ? best : fallback;
}

static bool ask(cp2p__art_core *c, art_fetch *f, uint32_t i, art_peer *p)
{
    cp2p_slice id = {f->k.id, f->k.len};
    uint8_t field[CP2P_ART_MAX_ID + 32];
    cp2p_buf b = {.ptr = field, .cap = sizeof(field), .max = sizeof(field)};
    if (cp2p__art_request_append(&b, id, i) != 0 || outbox_add(c, p, b.ptr, b.len) != 0) {
        return false;
    }
    p->inflight++;
    c->st.chunks_requested++;
    return true;
}

/* Ask each needed chunk of the least loaded source that has it and has room. A chunk no
 * source can take now (partial sources without it) is skipped; the scan of a fetch stops once
 * no source has room, so it costs at most n_chunks x n_src. Endgame: once nothing is left
 * to ask, a chunk in flight for more than four times the fetch's usual chunk time plus 100 ms
 * is asked of a second source too, so one slow peer does not hold up the whole artifact (a
 * tighter bound cost 5 % more bytes and 50 % more time on 100 nodes, bench_artifact). */
static void schedule(cp2p__art_core *c, uint64_t now)
{
    for (art_fetch *f = c->f_first; f != NULL; f = f->next) {
        if (f->state != F_FETCHING || f->n_src == 0) {
            continue;
        }
        uint32_t room = sources_with_room(f);
        for (uint32_t i = 0; i < f->n_chunks && f->n_need > 0 && room > 0; i++) {
            art_chunk *ch = &f->chunks[i];
            if (ch->state != CH_NEED) {
                continue;
            }
            art_peer *best = pick_source(f, i, ch->avoid, NULL);
            if (best == NULL) {
                continue; /* no source with room has this chunk (yet) */
            }
            if (!ask(c, f, i, best)) {
                break; /* its outbox is full */
            }
            room -= !has_room(best);
            ch->state = CH_INFLIGHT;
            ch->peer = best;
            if (f->graft) {
                best->lazy = false; /* graft: it pushes to us again (it does so on our request) */
            }
            ch->asked = now;
            ch->deadline = now + c->cfg.chunk_timeout_ms;
            f->n_need--;
        }
        if (f->n_need > 0 || f->lat_ms == 0 || f->n_src < 2) {
            continue;
        }
        uint64_t late = 4 * f->lat_ms + 100;
        room = sources_with_room(f);
        for (uint32_t i = 0; i < f->n_chunks && room > 0; i++) {
            art_chunk *ch = &f->chunks[i];
            if (ch->state != CH_INFLIGHT || ch->peer2 != NULL || now - ch->asked < late) {
                continue;
            }
            art_peer *second = pick_source(f, i, NULL, ch->peer);
            if (second == NULL) {
                continue;
            }
            if (!ask(c, f, i, second)) {
                break;
            }
            room -= !has_room(second);
            ch->peer2 = second;
            c->st.chunks_endgame++;
        }
    }
}

/* ---- held artifacts ---- */

static art_held *held_find(const cp2p__art_core *c, const uint8_t *id, size_t len)
{
    return cp2p__hashmap_find(&c->held, id, len);
}

static void held_free(cp2p__art_core *c, art_held *h)
{
    if (h->prev != NULL) {
        h->prev->next = h->next;
    } else {
        c->h_first = h->next;
    }
    if (h->next != NULL) {
        h->next->prev = h->prev;
    } else {
        c->h_last = h->prev;
    }
    (void)cp2p__hashmap_remove(&c->held, h);
    cp2p_buf_fini(&h->advert);
    cp2p_free(h);
}

/* Hold an artifact whose advert field is `advert` (copied). */
static int held_add(cp2p__art_core *c, const art_key *k, uint64_t size, uint32_t chunk_size,
                    const cp2p_buf *advert, art_held **out)
{
    if (cp2p__hashmap_len(&c->held) >= c->cfg.max_held) {
        return CP2P_EFULL;
    }
    art_held *h = cp2p_calloc(1, sizeof(*h));
    if (h == NULL) {
        return CP2P_ENOMEM;
    }
    h->k = *k;
    h->size = size;
    h->chunk_size = chunk_size;
    h->n_chunks = (uint32_t)cp2p__art_n_chunks(size, chunk_size);
    cp2p_buf_init(&h->advert, advert->len);
    if (cp2p_buf_append(&h->advert, advert->ptr, advert->len) != 0 ||
        cp2p__hashmap_insert(&c->held, h) != 0) {
        cp2p_buf_fini(&h->advert);
        cp2p_free(h);
        return CP2P_ENOMEM;
    }
    h->prev = c->h_last;
    if (c->h_last != NULL) {
        c->h_last->next = h;
    } else {
        c->h_first = h;
    }
    c->h_last = h;
    *out = h;
    return 0;
}

/* Tell every peer except the full sources of `from` (the fetch that brought it, or NULL) and
 * those that advertised it to us about a newly held artifact: small ones pushed whole (when
 * data is given), the others advertised. Partial sources get the advert too: we become a full
 * source for them. */
static void spread(cp2p__art_core *c, const art_held *h, const uint8_t *data,
                   const art_fetch *from)
{
    cp2p_buf push;
    const uint8_t *field = h->advert.ptr;
    size_t len = h->advert.len;
    cp2p_buf_init(&push, c->cfg.max_frame);
    if (data != NULL && h->size <= c->cfg.push_threshold &&
        cp2p__art_push_append_raw(&push, h->advert.ptr, h->advert.len, data, h->size) == 0) {
        field = push.ptr;
        len = push.len;
    }
    size_t cur = 0;
    art_peer *p;
    while ((p = cp2p__hashmap_next(&c->peers, &cur)) != NULL) {
        if (cp2p__hashmap_find(&p->adverts, h->k.id, h->k.len) != NULL ||
            (from != NULL && src_full(from, p))) {
            continue;
        }
        if (p->lazy && c->cfg.push_tree && field != h->advert.ptr) {
            if (outbox_add(c, p, h->advert.ptr, h->advert.len) == 0) {
                c->st.adverts_lazy++; /* pruned: the advert only, it asks if no push comes */
            }
        } else {
            (void)outbox_add(c, p, field, len);
        }
    }
    cp2p_buf_fini(&push);
}

/* Forget every peer's advert of a held artifact (no longer needed to fetch it). */
static void forget_adverts(cp2p__art_core *c, const art_key *k)
{
    size_t cur = 0;
    art_peer *p;
    while ((p = cp2p__hashmap_next(&c->peers, &cur)) != NULL) {
        padv_forget(p, k);
    }
}

/* ---- lifecycle ---- */

int cp2p__art_core_new(const cp2p__art_config *cfg, uint64_t now, cp2p__art_core **out)
{
    (void)now;
    if (cfg == NULL || out == NULL || cfg->chunk_size == 0 ||
        cfg->chunk_size > CP2P_ART_MAX_CHUNK_SIZE || cfg->max_peers == 0 ||
        cfg->max_adverts_per_peer == 0 || cfg->max_fetches == 0 || cfg->max_held == 0 ||
        cfg->max_small_fetches == 0 ||
        cfg->max_later == 0 || cfg->inflight_start == 0 ||
        cfg->inflight_max < cfg->inflight_start || cfg->chunk_timeout_ms == 0 ||
        cfg->retrans_per_sec == 0 || cfg->retrans_burst == 0 || cfg->max_serving_per_peer == 0 ||
        cfg->max_frame < cfg->chunk_size + 1024 || cfg->max_outbox_bytes < cfg->max_frame ||
        cfg->penalty_ban == 0 || cfg->max_size == 0 ||
        cp2p__art_n_chunks(cfg->max_size, cfg->chunk_size) > CP2P_ART_MAX_CHUNKS ||
        cfg->max_size > cfg->max_fetch_bytes || cfg->push_threshold > cfg->chunk_size) {
        return CP2P_EINVAL;
    }
    cp2p__art_core *c = cp2p_calloc(1, sizeof(*c));
    if (c == NULL) {
        return CP2P_ENOMEM;
    }
    c->cfg = *cfg;
    c->wait_ms = cfg->push_wait_ms;
    int rc;
    size_t n_events = (size_t)cfg->max_peers * (cfg->max_serving_per_peer + cfg->retrans_burst) +
                      cfg->max_fetches + cfg->max_small_fetches;
    if ((rc = cp2p__hashmap_init(&c->peers, cfg->max_peers, key_of_peer)) != 0 ||
        (rc = cp2p__hashmap_init(&c->fetches, (size_t)cfg->max_fetches + cfg->max_small_fetches,
                                 key_of_fetch)) != 0 ||
        (rc = cp2p__hashmap_init(&c->held, cfg->max_held, key_of_held)) != 0 ||
        (rc = cp2p__hashmap_init(&c->later, cfg->max_later, key_of_later)) != 0 ||
        (rc = cp2p__queue_init(&c->later_q, cfg->max_later, CP2P_QUEUE_REJECT, NULL, NULL)) ||
        (rc = cp2p__hashmap_init(&c->waiting, cfg->max_later, key_of_later)) != 0 ||
        (rc = cp2p__queue_init(&c->wait_q, cfg->max_later, CP2P_QUEUE_REJECT, NULL, NULL)) ||
        (rc = cp2p__queue_init(&c->events, n_events, CP2P_QUEUE_REJECT, NULL, NULL)) != 0) {
        goto fail;
    }
    cp2p_buf_init(&c->hq_buf, 64 + CP2P_ART_MAX_ID + 5 * (size_t)CP2P_ART_MAX_FRAME_MSGS);
    if ((c->dirty = cp2p_calloc(cfg->max_peers, sizeof(*c->dirty))) == NULL ||
        (c->hq = cp2p_calloc(CP2P_ART_MAX_FRAME_MSGS, sizeof(*c->hq))) == NULL ||
        (c->hq_idx = cp2p_calloc(CP2P_ART_MAX_FRAME_MSGS, sizeof(*c->hq_idx))) == NULL) {
        rc = CP2P_ENOMEM;
        goto fail;
    }
    *out = c;
    return 0;
fail:
    cp2p__art_core_free(c);
    return rc;
}

static void release_event(void *it, void *ud)
{
    (void)ud;
    cp2p_free(it);
}

static void release_later(void *it, void *ud)
{
    art_later *l = it;
    (void)ud;
    cp2p_free(l->data);
    cp2p_buf_fini(&l->advert);
    cp2p_free(l);
}

void cp2p__art_core_free(cp2p__art_core *c)
{
    if (c == NULL) {
        return;
    }
    while (c->f_first != NULL) {
        fetch_free(c, c->f_first);
    }
    while (c->h_first != NULL) {
        held_free(c, c->h_first);
    }
    size_t cur = 0;
    art_peer *p;
    while ((p = cp2p__hashmap_next(&c->peers, &cur)) != NULL) {
        (void)cp2p__hashmap_remove(&c->peers, p);
        peer_free(p);
        cur = 0;
    }
    cp2p__hashmap_fini(&c->peers, NULL, NULL);
    cp2p__hashmap_fini(&c->fetches, NULL, NULL);
    cp2p__hashmap_fini(&c->held, NULL, NULL);
    cp2p__queue_fini(&c->later_q, NULL, NULL);
    cp2p__hashmap_fini(&c->later, release_later, NULL);
    cp2p__queue_fini(&c->wait_q, NULL, NULL);
    cp2p__hashmap_fini(&c->waiting, release_later, NULL);
    cp2p__queue_fini(&c->events, release_event, NULL);
    cp2p_free(c->dirty);
    cp2p_free(c->hq);
    cp2p_free(c->hq_idx);
    cp2p_buf_fini(&c->hq_buf);
    cp2p_free(c);
}

int cp2p__art_core_peer_up(cp2p__art_core *c, const cp2p_peer_id *peer, uint64_t now)
{
    if (peer_find(c, peer) != NULL) {
        return CP2P_ESTATE;
    }
    if (cp2p__hashmap_len(&c->peers) >= c->cfg.max_peers) {
        c->st.peers_refused++;
        return CP2P_EFULL;
    }
    art_peer *p = cp2p_calloc(1, sizeof(*p));
    if (p == NULL) {
        return CP2P_ENOMEM;
    }
    p->id = *peer;
    p->credit = c->cfg.inflight_start;
    cp2p_buf_init(&p->out, c->cfg.max_outbox_bytes);
    cp2p__token_bucket_init(&p->retrans, c->cfg.retrans_per_sec, c->cfg.retrans_burst, now);
    int rc;
    if ((rc = cp2p__hashmap_init(&p->adverts, c->cfg.max_adverts_per_peer, key_of_padv)) != 0 ||
        (rc = cp2p__hashmap_insert(&c->peers, p)) != 0) {
        peer_free(p);
        return rc;
    }
    /* Ask the peer to tell us again what it holds (it may have gained artifacts while we
     * were apart); it does the same, so both sides learn each other's state at once. */
    uint8_t field[16];
    cp2p_buf b = {.ptr = field, .cap = sizeof(field), .max = sizeof(field)};
    if (cp2p__art_retrans_append(&b, c->cfg.max_adverts_per_peer) == 0 &&
        outbox_add(c, p, b.ptr, b.len) == 0) {
        c->st.retrans_sent++;
    }
    c->st.peers++;
    return 0;
}

void cp2p__art_core_peer_down(cp2p__art_core *c, const cp2p_peer_id *peer, uint64_t now)
{
    art_peer *p = peer_find(c, peer);
    if (p == NULL) {
        return;
    }
    for (art_fetch *f = c->f_first; f != NULL; f = f->next) {
        fetch_src_remove(f, p); /* a partial source's bitmap too */
        told_remove(f, p);
        if (f->manifest_peer == p) {
            f->manifest_peer = NULL;
        }
        for (uint32_t i = 0; i < f->n_chunks; i++) {
            art_chunk *ch = &f->chunks[i];
            if (ch->avoid == p) {
                ch->avoid = NULL;
            }
            if (f->state == F_FETCHING && ch->state == CH_INFLIGHT &&
                (ch->peer == p || ch->peer2 == p) && chunk_drop_asker(ch, f, p, false)) {
                c->st.chunks_requeued++;
            }
        }
    }
    for (uint32_t i = 0; i < c->n_dirty; i++) {
        if (c->dirty[i] == p) {
            c->dirty[i] = c->dirty[--c->n_dirty];
            break;
        }
    }
    (void)cp2p__hashmap_remove(&c->peers, p);
    peer_free(p);
    c->st.peers--;
    schedule(c, now);
}

/* ---- input ---- */

/* Keep advert `a` in table `map` and its queue `q` (the "later" adverts, or small ones waiting
 * for a push until `due`). Returns 0, or nonzero when not kept (the table is full). */
static int advert_keep(cp2p__art_core *c, cp2p_hashmap *map, cp2p_queue *q, const art_key *k,
                       const cp2p__art_advert *a, uint64_t due)
{
    if (cp2p__hashmap_find(map, k->id, k->len) != NULL) {
        return 0;
    }
    art_later *l = cp2p_calloc(1, sizeof(*l));
    if (l == NULL) {
        return CP2P_ENOMEM;
    }
    l->k = *k;
    l->due = due;
    cp2p_buf_init(&l->advert, c->cfg.max_frame);
    int rc;
    if ((rc = cp2p__art_advert_append(&l->advert, a)) != 0 ||
        (rc = cp2p__hashmap_insert(map, l)) != 0) {
        release_later(l, NULL);
        return rc;
    }
    if ((rc = cp2p__queue_push(q, l)) != 0) {
        (void)cp2p__hashmap_remove(map, l);
        release_later(l, NULL);
        return rc;
    }
    return 0;
}

static void later_add(cp2p__art_core *c, const art_key *k, const cp2p__art_advert *a)
{
    if (cp2p__hashmap_find(&c->later, k->id, k->len) != NULL) {
        return;
    }
    if (advert_keep(c, &c->later, &c->later_q, k, a, 0) != 0) {
        c->st.later_dropped++;
        return;
    }
    c->st.later++;
}

/* Push tree: a small artifact (one chunk, pushed whole) is advertised to us only by a peer
 * that we pruned or that pruned us. */
static bool small_advert(const cp2p__art_core *c, const cp2p__art_advert *a)
{
    return c->cfg.push_tree && a->n_chunks == 1 && a->size <= c->cfg.push_threshold;
}

static cp2p__art_verdict bounce(cp2p__art_core *c, const cp2p__art_advert *a)
{
    if (c->cfg.bouncer == NULL) {
        return CP2P__ART_WANTED;
    }
    return c->cfg.bouncer(a->id.ptr, a->id.len, a->size, a->attrs, a->n_attrs, c->cfg.bouncer_ud);
}

/* The key of an advert (or partial advert) from `p`; false when it is not taken: `p` is
 * banned, or the id has the wrong shape (counted). */
static bool advert_key(cp2p__art_core *c, const art_peer *p, const cp2p__art_advert *a,
                       art_key *k)
{
    if (p->banned) {
        return false;
    }
    if (!id_shape_ok(&c->cfg, a->id.ptr, a->id.len) || !key_set(k, a->id.ptr, a->id.len)) {
        c->st.adverts_bad_id++;
        return false;
    }
    return true;
}

static void on_advert(cp2p__art_core *c, art_peer *p, const cp2p__art_advert *a, uint64_t now)
{
    art_key k;
    uint8_t mdig[32];
    c->st.adverts_received++;
    if (!advert_key(c, p, a, &k)) {
        return;
    }
    if (held_find(c, k.id, k.len) != NULL) {
        c->st.adverts_dup++;
        return;
    }
    art_mdig(a, mdig);
    art_fetch *f = cp2p__hashmap_find(&c->fetches, k.id, k.len);
    if (f != NULL) {
        c->st.adverts_dup++;
        padv_add(c, p, &k, mdig);
        if (memcmp(f->mdig, mdig, 32) == 0) {
            fetch_src_add(f, p);
        } else {
            c->st.adverts_other_manifest++;
        }
        return;
    }
    if (cp2p__hashmap_find(&c->later, k.id, k.len) != NULL) {
        c->st.adverts_later++;
        padv_add(c, p, &k, mdig);
        return;
    }
    if (cp2p__hashmap_find(&c->waiting, k.id, k.len) != NULL) {
        c->st.adverts_dup++; /* one more peer that has it, if no push comes */
        padv_add(c, p, &k, mdig);
        return;
    }
    switch (bounce(c, a)) {
    case CP2P__ART_WANTED:
        padv_add(c, p, &k, mdig);
        if (small_advert(c, a)) {
            /* A push is probably on its way along the tree: wait for it a little. */
            if (advert_keep(c, &c->waiting, &c->wait_q, &k, a, now + c->wait_ms) == 0) {
                c->st.small_waited++;
                break;
            }
            c->st.small_wait_full++;
        }
        if (fetch_start(c, a, &k, mdig, p, false) == CP2P_EFULL) {
            later_add(c, &k, a); /* asked again when a fetch slot frees */
        }
        break;
    case CP2P__ART_LATER:
        c->st.adverts_later++;
        padv_add(c, p, &k, mdig);
        later_add(c, &k, a);
        break;
    default:
        c->st.adverts_unwanted++;
        break;
    }
}

/* Push tree: a push came after we fetched the artifact: wait twice as long from now on. */
static void wait_longer(cp2p__art_core *c)
{
    c->wait_ms = c->wait_ms * 2 < CP2P_ART_PUSH_WAIT_MAX_MS ? c->wait_ms * 2
                                                             : CP2P_ART_PUSH_WAIT_MAX_MS;
}

/* A fetch of one chunk just started, its bytes in hand (checked): complete it. */
static void fetch_whole(cp2p__art_core *c, art_fetch *f, const uint8_t *data, size_t len)
{
    memcpy(f->data, data, len);
    f->chunks[0].state = CH_DONE;
    f->done = 1;
    f->n_need = 0;
    fetch_finish(c, f);
}

static void on_push(cp2p__art_core *c, art_peer *p, const cp2p__art_push *m)
{
    const cp2p__art_advert *a = &m->advert;
    art_key k;
    uint8_t d[32];
    c->st.pushes_received++;
    if (p->banned) {
        return;
    }
    if (a->size > c->cfg.push_threshold || a->n_chunks != 1) {
        c->st.pushes_oversized++;
        return;
    }
    if (!id_shape_ok(&c->cfg, a->id.ptr, a->id.len) || !key_set(&k, a->id.ptr, a->id.len)) {
        c->st.adverts_bad_id++;
        return;
    }
    uint8_t mdig[32];
    art_mdig(a, mdig);
    art_fetch *f = cp2p__hashmap_find(&c->fetches, k.id, k.len);
    bool late = f != NULL && f->state == F_FETCHING && f->n_chunks == 1 &&
                memcmp(f->mdig, mdig, 32) == 0; /* fetching it after the wait: take the push */
    if (f != NULL && f->graft) {
        wait_longer(c); /* the push came after all: we fetched too early */
    }
    const art_later *kept = f == NULL ? cp2p__hashmap_find(&c->later, k.id, k.len) : NULL;
    if (held_find(c, k.id, k.len) != NULL || (f != NULL && !late) ||
        (kept != NULL && kept->data != NULL)) {
        c->st.pushes_dup++;
        if (kept != NULL) {
            padv_add(c, p, &k, mdig); /* a source when it is validated: not pushed back to */
        }
        if (f != NULL && memcmp(f->mdig, mdig, 32) == 0) {
            fetch_src_add(f, p); /* it has it: not pushed to when we relay */
        }
        if (f != NULL && f->graft) {
            c->st.pushes_late++; /* the tree works, it was slower than our wait: keep it */
        } else if (c->cfg.push_tree) {
            /* Push tree: this edge is redundant for small artifacts; ask p to advertise. */
            uint8_t field[4];
            cp2p_buf b = {.ptr = field, .cap = sizeof(field), .max = sizeof(field)};
            p->lazy = true;
            if (cp2p__art_prune_append(&b) == 0 && outbox_add(c, p, b.ptr, b.len) == 0) {
                c->st.prunes_sent++;
            }
        }
        return;
    }
    crypto_hash_sha256(d, m->data.ptr, m->data.len);
    if (sodium_memcmp(d, a->hashes.ptr, 32) != 0 ||
        (ids_checked(&c->cfg) && !id_matches(&c->cfg, k.id, k.len, m->data.ptr, m->data.len))) {
        c->st.pushes_corrupt++;
        penalise(c, p, 10);
        return;
    }
    if (late) {
        art_chunk *ch = &f->chunks[0];
        if (ch->state == CH_INFLIGHT) {
            peer_unload(ch->peer);
            peer_unload(ch->peer2);
            ch->peer = ch->peer2 = NULL;
        } else {
            f->n_need--;
        }
        ch->state = CH_DONE;
        memcpy(f->data, m->data.ptr, m->data.len);
        f->done = 1;
        fetch_src_add(f, p);
        fetch_finish(c, f);
        return;
    }
    switch (bounce(c, a)) {
    case CP2P__ART_WANTED:
        break;
    case CP2P__ART_LATER:
        c->st.adverts_later++;
        padv_add(c, p, &k, mdig);
        later_add(c, &k, a);
        return;
    default:
        c->st.adverts_unwanted++;
        return;
    }
    padv_add(c, p, &k, mdig);
    if (cp2p__hashmap_find(&c->waiting, k.id, k.len) != NULL) {
        /* Pushed within the wait: try a slightly shorter one (not below the configured). */
        uint32_t w = c->wait_ms - c->wait_ms / 8;
        c->wait_ms = w > c->cfg.push_wait_ms ? w : c->cfg.push_wait_ms;
    }
    int rc = fetch_start(c, a, &k, mdig, p, false);
    if (rc == CP2P_EFULL) {
        /* Kept with its bytes (bounded like every "later" advert): validated when a slot
         * frees, not fetched a second time. */
        later_add(c, &k, a);
        art_later *l = cp2p__hashmap_find(&c->later, k.id, k.len);
        if (l != NULL && l->data == NULL && (l->data = cp2p__memdup(m->data.ptr, m->data.len))) {
            l->data_len = m->data.len;
        }
    }
    if (rc != 0) {
        return;
    }
    fetch_whole(c, c->f_last, m->data.ptr, m->data.len);
}

/* A partial advert: `p` is fetching `a` and will announce its chunks with Have. */
static void on_partial(cp2p__art_core *c, art_peer *p, const cp2p__art_advert *a)
{
    art_key k;
    uint8_t mdig[32];
    c->st.partial_adverts_received++;
    if (!advert_key(c, p, a, &k)) {
        return;
    }
    /* Held (nothing to fetch), one chunk (nothing to share before the whole), or kept as a
     * "later" advert (the bouncer is asked on the tick): nothing kept. */
    if (a->n_chunks < 2 || held_find(c, k.id, k.len) != NULL ||
        cp2p__hashmap_find(&c->later, k.id, k.len) != NULL) {
        c->st.partial_adverts_ignored++;
        return;
    }
    art_mdig(a, mdig);
    art_fetch *f = cp2p__hashmap_find(&c->fetches, k.id, k.len);
    if (f != NULL) {
        if (memcmp(f->mdig, mdig, 32) != 0) {
            c->st.adverts_other_manifest++;
        } else if (f->state != F_FETCHING) {
            c->st.partial_adverts_ignored++; /* validating: every chunk is here */
        } else {
            fetch_src_add_partial(c, f, p);
        }
        return;
    }
    /* Unknown: the bouncer decides as for an advert, so that an artifact spreads while it is
     * still being fetched (pipelining). Only "wanted" keeps anything. */
    if (bounce(c, a) != CP2P__ART_WANTED || fetch_start(c, a, &k, mdig, p, true) != 0) {
        c->st.partial_adverts_ignored++;
    }
}

/* A Have: `p` holds chunks h->indexes of an artifact it told us (partial advert) it fetches. */
static void on_have(cp2p__art_core *c, art_peer *p, const cp2p__art_have *h)
{
    c->st.haves_received++;
    art_fetch *f = cp2p__hashmap_find(&c->fetches, h->id.ptr, h->id.len);
    art_src *s = f != NULL && f->state == F_FETCHING ? src_find(f, p) : NULL;
    if (s == NULL || s->bits == NULL) {
        c->st.haves_unknown++; /* not fetching it, not a partial source (or a full one) */
        return;
    }
    for (size_t i = 0; i < h->n_indexes; i++) {
        uint32_t x = h->indexes[i];
        if (x >= f->n_chunks) {
            c->st.haves_bad_index++;
            continue;
        }
        s->bits[x >> 3] |= (uint8_t)(1u << (x & 7));
    }
}

/* A request for an artifact we do not hold: answered from a fetch in progress (or being
 * validated) when that chunk is verified, straight into the peer's outbox. */
static void serve_from_fetch(cp2p__art_core *c, art_peer *p, const cp2p__art_request *r)
{
    const art_fetch *f = cp2p__hashmap_find(&c->fetches, r->id.ptr, r->id.len);
    if (f == NULL || r->index >= f->n_chunks || f->chunks[r->index].state != CH_DONE) {
        c->st.requests_unknown++;
        return;
    }
    cp2p_slice id = {f->k.id, f->k.len};
    uint64_t off = (uint64_t)r->index * f->chunk_size;
    size_t len = (size_t)(f->size - off < f->chunk_size ? f->size - off : f->chunk_size);
    size_t need = cp2p__art_chunk_size(id, r->index, len);
    if (p->out.len + need > p->out.max || need > c->cfg.max_frame ||
        cp2p_buf_reserve(&p->out, need) != 0 ||
        cp2p__art_chunk_append(&p->out, id, r->index, f->data + off, len) != 0) {
        c->st.outbox_dropped++;
        return;
    }
    c->st.chunks_served++;
    c->st.chunks_served_partial++;
    mark_dirty(c, p);
}

static void on_request(cp2p__art_core *c, art_peer *p, const cp2p__art_request *r)
{
    c->st.requests_received++;
    art_held *h = held_find(c, r->id.ptr, r->id.len);
    if (h == NULL) {
        serve_from_fetch(c, p, r);
        return;
    }
    if (r->index >= h->n_chunks) {
        c->st.requests_bad_index++;
        return;
    }
    if (p->lazy && h->n_chunks == 1 && h->size <= c->cfg.push_threshold) {
        p->lazy = false; /* graft: it missed a small artifact, push to it again */
        c->st.grafts++;
    }
    if (p->serving >= c->cfg.max_serving_per_peer) {
        c->st.requests_dropped++;
        return;
    }
    uint64_t off = (uint64_t)r->index * h->chunk_size;
    cp2p__art_event ev = {.kind = CP2P_ART_EV_SERVE, .peer = p->id, .id_len = h->k.len,
                          .index = r->index, .offset = off,
                          .len = (size_t)(h->size - off < h->chunk_size ? h->size - off
                                                                        : h->chunk_size)};
    memcpy(ev.id, h->k.id, h->k.len);
    if (push_event(c, &ev) != 0) {
        c->st.requests_dropped++;
        return;
    }
    p->serving++;
}

/* Send the queued Haves: one Have per fetch with every chunk verified since the last flush,
 * to each peer told of the fetch that is not a full source of it (nor banned). */
static void have_flush(cp2p__art_core *c)
{
    for (uint32_t a = 0; a < c->n_hq; a++) {
        art_fetch *f = c->hq[a].f;
        if (f == NULL) {
            continue;
        }
        uint32_t n = 0;
        for (uint32_t b = a; b < c->n_hq; b++) {
            if (c->hq[b].f == f) {
                c->hq_idx[n++] = c->hq[b].index;
                c->hq[b].f = NULL;
            }
        }
        cp2p_buf_reset(&c->hq_buf);
        if (cp2p__art_have_append(&c->hq_buf, (cp2p_slice){f->k.id, f->k.len}, c->hq_idx, n) !=
            0) {
            continue; /* cannot happen: hq_buf fits CP2P_ART_MAX_FRAME_MSGS indexes */
        }
        for (uint32_t t = 0; t < f->n_told; t++) {
            art_peer *p = f->told[t];
            if (!p->banned && !src_full(f, p) &&
                outbox_add(c, p, c->hq_buf.ptr, c->hq_buf.len) == 0) {
                c->st.haves_sent++;
            }
        }
    }
    c->n_hq = 0;
}

/* Chunk i of f was verified: announce it with the next flush (to the peers told). */
static void have_note(cp2p__art_core *c, art_fetch *f, uint32_t i)
{
    if (f->n_told == 0) {
        return;
    }
    if (c->n_hq == CP2P_ART_MAX_FRAME_MSGS) {
        have_flush(c);
    }
    c->hq[c->n_hq++] = (art_hq){f, i};
}

static void on_chunk(cp2p__art_core *c, art_peer *p, const cp2p__art_chunk *m, uint64_t now)
{
    c->st.chunks_received++;
    art_fetch *f = cp2p__hashmap_find(&c->fetches, m->id.ptr, m->id.len);
    if (f == NULL || f->state != F_FETCHING) {
        c->st.chunks_unknown++;
        return;
    }
    if (m->index >= f->n_chunks) {
        c->st.chunks_bad_index++;
        penalise(c, p, 1);
        return;
    }
    art_chunk *ch = &f->chunks[m->index];
    if (ch->state != CH_INFLIGHT || (ch->peer != p && ch->peer2 != p)) {
        c->st.chunks_unsolicited++; /* late after a timeout, or never asked */
        return;
    }
    uint64_t off = (uint64_t)m->index * f->chunk_size;
    uint64_t want = f->size - off < f->chunk_size ? f->size - off : f->chunk_size;
    uint8_t d[32];
    if (m->data.len == want) {
        crypto_hash_sha256(d, m->data.ptr, m->data.len);
    }
    if (m->data.len != want || sodium_memcmp(d, f->hashes + 32 * (size_t)m->index, 32) != 0) {
        /* Corrupt: penalise, stop asking this peer for this artifact, ask someone else. */
        c->st.chunks_corrupt++;
        (void)chunk_drop_asker(ch, f, p, true);
        fetch_src_remove(f, p);
        penalise(c, p, 10);
        return;
    }
    memcpy(f->data + off, m->data.ptr, m->data.len);
    if (ch->peer == p && now >= ch->asked) {
        uint64_t lat = now - ch->asked + 1;
        f->lat_ms = f->lat_ms == 0 ? lat : (7 * f->lat_ms + lat) / 8;
    }
    peer_unload(ch->peer);
    peer_unload(ch->peer2);
    ch->state = CH_DONE;
    ch->peer = ch->peer2 = NULL;
    if (p->credit < c->cfg.inflight_max) {
        p->credit++; /* answered in time: one more in flight */
    }
    have_note(c, f, m->index);
    if (++f->done == f->n_chunks) {
        fetch_finish(c, f);
    }
}

static void on_retrans(cp2p__art_core *c, art_peer *p, uint32_t max, uint64_t now)
{
    c->st.retrans_received++;
    if (!cp2p__token_bucket_take(&p->retrans, 1, now)) {
        c->st.retrans_limited++;
        return;
    }
    cp2p__art_event ev = {.kind = CP2P_ART_EV_RETRANS, .peer = p->id};
    (void)push_event(c, &ev); /* informational: a full queue only loses the notice */
    if (max == 0 || max > c->cfg.max_adverts_per_peer) {
        max = c->cfg.max_adverts_per_peer;
    }
    uint32_t n = 0;
    for (art_held *h = c->h_last; h != NULL && n < max; h = h->prev, n++) {
        if (outbox_add(c, p, h->advert.ptr, h->advert.len) != 0) {
            break;
        }
        c->st.retrans_adverts++;
    }
}

int cp2p__art_core_recv(cp2p__art_core *c, const cp2p_peer_id *peer, const uint8_t *body,
                        size_t len, uint64_t now, const char **why)
{
    art_peer *p = peer_find(c, peer);
    if (p == NULL) {
        return 0;
    }
    cp2p__art_env e;
    int rc = cp2p__art_env_decode(body, len, c->cfg.max_frame, c->cfg.max_size, &e, why);
    if (rc != 0) {
        if (rc != CP2P_ENOMEM) {
            c->st.frames_malformed++;
        }
        return rc;
    }
    c->st.frames_received++;
    for (size_t i = 0; i < e.n_adverts; i++) {
        on_advert(c, p, &e.adverts[i], now);
    }
    for (size_t i = 0; i < e.n_partials; i++) {
        on_partial(c, p, &e.partials[i]);
    }
    for (size_t i = 0; i < e.n_haves; i++) {
        on_have(c, p, &e.haves[i]);
    }
    for (size_t i = 0; i < e.n_pushes; i++) {
        on_push(c, p, &e.pushes[i]);
    }
    for (size_t i = 0; i < e.n_requests; i++) {
        on_request(c, p, &e.requests[i]);
    }
    for (size_t i = 0; i < e.n_chunks; i++) {
        on_chunk(c, p, &e.chunks[i], now);
    }
    if (e.has_retrans) {
        on_retrans(c, p, e.retrans_max, now);
    }
    if (e.prune) {
        p->lazy = true; /* it had our pushes from elsewhere: advertise small ones to it */
        c->st.prunes_received++;
    }
    cp2p__art_env_fini(&e);
    have_flush(c);
    schedule(c, now);
    return 0;
}

/* Small adverts whose wait is over and that no push brought: fetch them (grafting). */
static void wait_tick(cp2p__art_core *c, uint64_t now)
{
    art_later *l;
    while ((l = cp2p__queue_peek(&c->wait_q)) != NULL && l->due <= now) {
        (void)cp2p__queue_pop(&c->wait_q);
        (void)cp2p__hashmap_remove(&c->waiting, l);
        cp2p__art_env e;
        const char *why;
        if (held_find(c, l->k.id, l->k.len) == NULL &&
            cp2p__hashmap_find(&c->fetches, l->k.id, l->k.len) == NULL &&
            cp2p__art_env_decode(l->advert.ptr, l->advert.len, c->cfg.max_frame, c->cfg.max_size,
                                 &e, &why) == 0) {
            if (e.n_adverts == 1) {
                uint8_t mdig[32];
                art_mdig(&e.adverts[0], mdig);
                int rc = fetch_start(c, &e.adverts[0], &l->k, mdig, NULL, false);
                if (rc == 0) {
                    c->f_last->graft = true;
                    c->st.small_pulled++;
                } else if (rc == CP2P_EFULL) {
                    later_add(c, &l->k, &e.adverts[0]);
                }
            }
            cp2p__art_env_fini(&e);
        }
        release_later(l, NULL);
    }
}

/* Offer "later" adverts to the bouncer again, at most CP2P_ART_LATER_PER_TICK a tick. */
static void later_tick(cp2p__art_core *c)
{
    size_t n = cp2p__queue_len(&c->later_q);
    if (n > CP2P_ART_LATER_PER_TICK) {
        n = CP2P_ART_LATER_PER_TICK;
    }
    for (size_t i = 0; i < n; i++) {
        art_later *l = cp2p__queue_pop(&c->later_q);
        cp2p__art_env e;
        const char *why;
        bool keep = false;
        if (held_find(c, l->k.id, l->k.len) == NULL &&
            cp2p__hashmap_find(&c->fetches, l->k.id, l->k.len) == NULL &&
            cp2p__art_env_decode(l->advert.ptr, l->advert.len, c->cfg.max_frame, c->cfg.max_size,
                                 &e, &why) == 0) {
            if (e.n_adverts == 1) {
                uint8_t mdig[32];
                art_mdig(&e.adverts[0], mdig);
                switch (bounce(c, &e.adverts[0])) {
                case CP2P__ART_WANTED: {
                    int rc = fetch_start(c, &e.adverts[0], &l->k, mdig, NULL, false);
                    keep = rc == CP2P_EFULL;
                    if (rc == 0 && l->data != NULL && l->data_len == e.adverts[0].size &&
                        e.adverts[0].n_chunks == 1) {
                        fetch_whole(c, c->f_last, l->data, l->data_len); /* checked on arrival */
                    }
                    break;
                }
                case CP2P__ART_LATER:
                    keep = true;
                    break;
                default:
                    c->st.adverts_unwanted++;
                    break;
                }
            }
            cp2p__art_env_fini(&e);
        }
        if (keep && cp2p__queue_push(&c->later_q, l) == 0) {
            continue;
        }
        (void)cp2p__hashmap_remove(&c->later, l);
        release_later(l, NULL);
        c->st.later--;
    }
}

void cp2p__art_core_tick(cp2p__art_core *c, uint64_t now)
{
    for (art_fetch *f = c->f_first; f != NULL; f = f->next) {
        if (f->state != F_FETCHING) {
            continue;
        }
        for (uint32_t i = 0; i < f->n_chunks; i++) {
            art_chunk *ch = &f->chunks[i];
            if (ch->state == CH_INFLIGHT && ch->deadline <= now) {
                art_peer *p = ch->peer;
                chunk_release(ch, f, true);
                c->st.chunks_timeout++;
                p->credit = p->credit > 1 ? p->credit / 2 : 1; /* slow: fewer in flight */
                penalise(c, p, 1);
            }
        }
    }
    wait_tick(c, now);
    later_tick(c);
    have_flush(c);
    schedule(c, now);
}

/* ---- the application's side ---- */

void cp2p__art_prepared_fini(cp2p__art_prepared *p)
{
    cp2p_buf_fini(&p->advert);
}

int cp2p__art_prepare(const cp2p__art_config *cfg, const uint8_t *id, size_t id_len,
                      const uint8_t *data, size_t len, const cp2p__art_attr *attrs,
                      size_t n_attrs, cp2p__art_prepared *out)
{
    *out = (cp2p__art_prepared){0};
    if (data == NULL || len == 0 || len > cfg->max_size || n_attrs > CP2P_ART_MAX_ATTRS) {
        return CP2P_EINVAL;
    }
    for (size_t i = 0; i < n_attrs; i++) {
        if (attrs[i].key.len == 0 || attrs[i].key.len > CP2P_ART_MAX_ATTR_KEY ||
            attrs[i].value.len > CP2P_ART_MAX_ATTR_VALUE) {
            return CP2P_EINVAL;
        }
    }
    if (id == NULL) {
        ptrdiff_t n = compute_id(cfg, data, len, out->id);
        if (n < 0) {
            return n;
        }
        out->id_len = (size_t)n;
    } else if (id_len > CP2P_ART_MAX_ID || cp2p_multihash_validate(id, id_len) != 0 ||
               !id_shape_ok(cfg, id, id_len) ||
               (ids_checked(cfg) && !id_matches(cfg, id, id_len, data, len))) {
        return CP2P_EINVAL; /* every receiver would check it: refuse a wrong one here */
    } else {
        memcpy(out->id, id, id_len);
        out->id_len = id_len;
    }
    uint32_t cs = len <= cfg->push_threshold ? (uint32_t)len : cfg->chunk_size;
    uint64_t n = cp2p__art_n_chunks(len, cs);
    uint8_t *hashes = cp2p_malloc(n * 32);
    if (hashes == NULL) {
        return CP2P_ENOMEM;
    }
    for (uint64_t i = 0; i < n; i++) {
        size_t off = (size_t)(i * cs);
        crypto_hash_sha256(hashes + 32 * i, data + off, len - off < cs ? len - off : cs);
    }
    cp2p__art_advert a = {.id = {out->id, out->id_len}, .size = len, .chunk_size = cs,
                          .n_chunks = (uint32_t)n, .hashes = {hashes, n * 32}, .attrs = attrs,
                          .n_attrs = n_attrs};
    out->size = len;
    out->chunk_size = cs;
    cp2p_buf_init(&out->advert, cfg->max_frame);
    int rc = cp2p__art_advert_append(&out->advert, &a);
    cp2p_free(hashes);
    if (rc != 0) {
        cp2p__art_prepared_fini(out);
        return rc == CP2P_ELIMIT ? CP2P_EINVAL : rc;
    }
    return 0;
}

int cp2p__art_core_publish_prepared(cp2p__art_core *c, const cp2p__art_prepared *p,
                                    const uint8_t *data, uint64_t now)
{
    art_key k;
    art_held *h;
    if (!key_set(&k, p->id, p->id_len) || p->size > c->cfg.max_size) {
        return CP2P_EINVAL;
    }
    if (held_find(c, k.id, k.len) != NULL) {
        return CP2P_ESTATE;
    }
    int rc = held_add(c, &k, p->size, p->chunk_size, &p->advert, &h);
    if (rc != 0) {
        return rc;
    }
    art_fetch *f = cp2p__hashmap_find(&c->fetches, k.id, k.len);
    if (f != NULL && f->state == F_FETCHING) {
        fetch_free(c, f); /* we have it now */
    }
    spread(c, h, data, NULL);
    forget_adverts(c, &k);
    c->st.artifacts_published++;
    schedule(c, now);
    return 0;
}

int cp2p__art_core_publish(cp2p__art_core *c, const uint8_t *id, size_t id_len,
                           const uint8_t *data, size_t len, const cp2p__art_attr *attrs,
                           size_t n_attrs, uint64_t now, uint8_t *id_out, size_t *id_len_out)
{
    cp2p__art_prepared p;
    int rc = cp2p__art_prepare(&c->cfg, id, id_len, data, len, attrs, n_attrs, &p);
    if (rc != 0) {
        return rc;
    }
    if ((rc = cp2p__art_core_publish_prepared(c, &p, data, now)) == 0) {
        if (id_out != NULL) {
            memcpy(id_out, p.id, p.id_len);
        }
        if (id_len_out != NULL) {
            *id_len_out = p.id_len;
        }
    }
    cp2p__art_prepared_fini(&p);
    return rc;
}

int cp2p__art_core_purge(cp2p__art_core *c, const uint8_t *id, size_t id_len)
{
    art_held *h = held_find(c, id, id_len);
    if (h == NULL) {
        return CP2P_ENOENT;
    }
    held_free(c, h);
    return 0;
}

bool cp2p__art_core_holds(const cp2p__art_core *c, const uint8_t *id, size_t id_len)
{
    return held_find(c, id, id_len) != NULL;
}

bool cp2p__art_core_fetching(const cp2p__art_core *c, const uint8_t *id, size_t id_len)
{
    return cp2p__hashmap_find(&c->fetches, id, id_len) != NULL;
}

int cp2p__art_core_progress(const cp2p__art_core *c, const uint8_t *id, size_t id_len,
                            uint32_t *done, uint32_t *total, uint32_t *sources)
{
    const art_fetch *f = cp2p__hashmap_find(&c->fetches, id, id_len);
    if (f == NULL) {
        return CP2P_ENOENT;
    }
    *done = f->done;
    *total = f->n_chunks;
    *sources = f->n_src;
    return 0;
}

int cp2p__art_core_serve_reply(cp2p__art_core *c, const cp2p_peer_id *peer, const uint8_t *id,
                               size_t id_len, uint32_t index, const uint8_t *data, size_t len)
{
    art_peer *p = peer_find(c, peer);
    if (p == NULL) {
        return CP2P_ENOENT;
    }
    if (p->serving > 0) {
        p->serving--;
    }
    art_held *h = held_find(c, id, id_len);
    if (h == NULL || index >= h->n_chunks) {
        return CP2P_ENOENT;
    }
    uint64_t off = (uint64_t)index * h->chunk_size;
    if (len != (h->size - off < h->chunk_size ? h->size - off : h->chunk_size)) {
        return CP2P_EINVAL;
    }
    size_t need = cp2p__art_chunk_size((cp2p_slice){id, id_len}, index, len);
    if (p->out.len + need > p->out.max || need > c->cfg.max_frame) {
        c->st.outbox_dropped++;
        return CP2P_EFULL;
    }
    int rc = cp2p__art_chunk_append(&p->out, (cp2p_slice){id, id_len}, index, data, len);
    if (rc != 0) {
        return rc;
    }
    c->st.chunks_served++;
    mark_dirty(c, p);
    return 0;
}

void cp2p__art_core_serve_fail(cp2p__art_core *c, const cp2p_peer_id *peer)
{
    art_peer *p = peer_find(c, peer);
    c->st.serve_failed++;
    if (p != NULL && p->serving > 0) {
        p->serving--;
    }
}

int cp2p__art_core_stored(cp2p__art_core *c, const uint8_t *id, size_t id_len, bool ok,
                          uint64_t now)
{
    art_fetch *f = cp2p__hashmap_find(&c->fetches, id, id_len);
    if (f == NULL || f->state != F_VALIDATING) {
        return CP2P_ENOENT;
    }
    if (!ok) {
        c->st.artifacts_rejected++;
        fetch_free(c, f);
        schedule(c, now);
        return 0;
    }
    art_held *h;
    if (held_add(c, &f->k, f->size, f->chunk_size, &f->advert, &h) == 0) {
        spread(c, h, f->data, f);
        c->st.artifacts_stored++;
    }
    forget_adverts(c, &f->k);
    fetch_free(c, f);
    schedule(c, now);
    return 0;
}

/* ---- output ---- */

bool cp2p__art_core_next_dirty(cp2p__art_core *c, cp2p_peer_id *peer)
{
    while (c->n_dirty > 0) {
        art_peer *p = c->dirty[--c->n_dirty];
        p->dirty = false;
        if (p->out.len > 0) {
            *peer = p->id;
            return true;
        }
    }
    return false;
}

/* Length of the Envelope field at b[0..len) (our own bytes: well formed). */
static size_t field_len(const uint8_t *b, size_t len)
{
    uint64_t tag, n;
    ptrdiff_t a = cp2p_uvarint_decode(b, len, &tag);
    ptrdiff_t l = cp2p_uvarint_decode(b + a, len - (size_t)a, &n);
    if ((tag & 7) == 0) {
        return (size_t)a + (size_t)l; /* a varint field (prune) */
    }
    return (size_t)a + (size_t)l + (size_t)n;
}

bool cp2p__art_core_take_frame(cp2p__art_core *c, const cp2p_peer_id *peer, cp2p_buf *frame)
{
    art_peer *p = peer_find(c, peer);
    cp2p_buf_reset(frame);
    if (p == NULL || p->out.len == 0) {
        return false;
    }
    size_t cut = 0;
    while (cut < p->out.len) {
        size_t n = field_len(p->out.ptr + cut, p->out.len - cut);
        if (cut > 0 && cut + n > c->cfg.max_frame) {
            break;
        }
        cut += n;
    }
    if (cp2p_buf_append(frame, p->out.ptr, cut) != 0) {
        return false;
    }
    cp2p_buf_consume(&p->out, cut);
    return true;
}

size_t cp2p__art_core_queued(const cp2p__art_core *c, const cp2p_peer_id *peer)
{
    const art_peer *p = peer_find(c, peer);
    return p != NULL ? p->out.len : 0;
}

bool cp2p__art_core_poll_event(cp2p__art_core *c, cp2p__art_event *ev)
{
    cp2p__art_event *e = cp2p__queue_pop(&c->events);
    if (e == NULL) {
        return false;
    }
    *ev = *e;
    cp2p_free(e);
    return true;
}

void cp2p__art_core_stats(const cp2p__art_core *c, cp2p__art_stats *out)
{
    *out = c->st;
    out->fetching = cp2p__hashmap_len(&c->fetches);
    out->held = cp2p__hashmap_len(&c->held);
    out->later = cp2p__hashmap_len(&c->later);
    out->push_wait_ms = c->wait_ms;
}

size_t cp2p__art_core_peer_adverts(const cp2p__art_core *c, const cp2p_peer_id *peer)
{
    const art_peer *p = peer_find(c, peer);
    return p != NULL ? cp2p__hashmap_len(&p->adverts) : 0;
}

bool cp2p__art_core_peer_info(const cp2p__art_core *c, const cp2p_peer_id *peer,
                              uint32_t *credit, uint32_t *inflight, uint32_t *penalty,
                              bool *banned)
{
    const art_peer *p = peer_find(c, peer);
    if (p == NULL) {
        return false;
    }
    *credit = p->credit;
    *inflight = p->inflight;
    *penalty = p->penalty;
    *banned = p->banned;
    return true;
}
