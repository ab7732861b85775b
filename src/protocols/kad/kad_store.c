/* The DHT's local stores: records and provider records in sorted arrays (binary search by key
 * bytes), bounded by the configuration; validators by namespace. No hashing of remote keys, so
 * no hash flooding; an insertion moves at most max_records pointers. */
#include <string.h>

#include <cp2p/keys.h>

#include "protocols/kad/kad_store.h"
#include "util/alloc.h"
#include "util/limits.h"

typedef struct kad_rec {
    uint8_t *key;
    size_t key_len;
    uint8_t *value;
    size_t value_len;
    uint64_t received_ms;
} kad_rec;

typedef struct kad_prov {
    cp2p_peer_id id;
    uint64_t expires_ms;
} kad_prov;

/* Providers of one key, oldest first (re-adding moves a provider to the end). */
typedef struct kad_pkey {
    uint8_t *key;
    size_t key_len;
    kad_prov *p;
    size_t n, cap; /* cap grows by doubling up to max_providers_per_key */
} kad_pkey;

typedef struct kad_validator {
    char ns[CP2P_KAD_MAX_NAMESPACE_LEN + 1];
    cp2p__kad_validate_fn validate;
    cp2p__kad_select_fn select;
    void *ud;
} kad_validator;

struct cp2p__kad_store {
    cp2p__kad_store_config cfg;
    kad_validator v[CP2P_KAD_MAX_NAMESPACES];
    size_t n_v;
    kad_rec **recs; /* sorted by key */
    size_t n_recs, cap_recs;
    kad_pkey **pkeys; /* sorted by key */
    size_t n_pkeys, cap_pkeys;
    /* Lower bounds of the earliest record and provider expiry: a purge before them would find
     * nothing, so a full store refuses a flood of puts without scanning for each one. */
    uint64_t rec_next_exp, prov_next_exp;
    cp2p__kad_store_stats st;
};

void cp2p__kad_store_config_default(cp2p__kad_store_config *c)
{
    *c = (cp2p__kad_store_config){
        .max_records = CP2P_KAD_STORE_MAX_RECORDS,
        .max_record_bytes = CP2P_KAD_STORE_MAX_RECORD_BYTES,
        .record_ttl_ms = CP2P_KAD_STORE_RECORD_TTL_MS,
        .max_provider_keys = CP2P_KAD_STORE_MAX_PROVIDER_KEYS,
        .max_providers_per_key = CP2P_KAD_STORE_MAX_PROVIDERS_PER_KEY,
        .provider_ttl_ms = CP2P_KAD_STORE_PROVIDER_TTL_MS,
    };
}

/* ---- the "pk" namespace (spec "Value routing"; go-libp2p-record PublicKeyValidator) ---- */

static int pk_validate(void *ud, const uint8_t *key, size_t key_len, const uint8_t *value,
                       size_t value_len)
{
    static const char pfx[] = "/pk/";
    cp2p_peer_id want, got;
    int rc;
    (void)ud;
    if (key_len < sizeof(pfx) - 1 || memcmp(key, pfx, sizeof(pfx) - 1) != 0) {
        return CP2P_EPROTO;
    }
    if (cp2p_peer_id_from_bytes(key + 4, key_len - 4, &want) != 0) {
        return CP2P_EPROTO; /* go: "key did not contain valid multihash" */
    }
    if ((rc = cp2p_peer_id_from_pubkey_proto(value, value_len, &got)) != 0) {
        return rc == CP2P_ENOMEM ? rc : CP2P_EPROTO;
    }
    return cp2p_peer_id_equal(&want, &got) ? 0 : CP2P_EPROTO;
}

/* ---- helpers ---- */

static int key_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    int c = n > 0 ? memcmp(a, b, n) : 0;
    if (c != 0) {
        return c;
    }
    return alen < blen ? -1 : (alen > blen ? 1 : 0);
}

/* The key of element i of one of the store's sorted arrays. */
typedef void (*key_at_fn)(const cp2p__kad_store *s, size_t i, const uint8_t **key, size_t *len);

static void rec_key_at(const cp2p__kad_store *s, size_t i, const uint8_t **key, size_t *len)
{
    *key = s->recs[i]->key;
    *len = s->recs[i]->key_len;
}

static void pkey_key_at(const cp2p__kad_store *s, size_t i, const uint8_t **key, size_t *len)
{
    *key = s->pkeys[i]->key;
    *len = s->pkeys[i]->key_len;
}

/* Index of key in a sorted array of n elements (found) or where it would go. */
static size_t sorted_find(const cp2p__kad_store *s, size_t n, key_at_fn at, const uint8_t *key,
                          size_t len, bool *found)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const uint8_t *k;
        size_t kl;
        at(s, mid, &k, &kl);
        int c = key_cmp(k, kl, key, len);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    *found = false;
    return lo;
}

static size_t rec_find(const cp2p__kad_store *s, const uint8_t *key, size_t len, bool *found)
{
    return sorted_find(s, s->n_recs, rec_key_at, key, len, found);
}

static size_t pkey_find(const cp2p__kad_store *s, const uint8_t *key, size_t len, bool *found)
{
    return sorted_find(s, s->n_pkeys, pkey_key_at, key, len, found);
}

static void rec_free(kad_rec *r)
{
    if (r != NULL) {
        cp2p_free(r->key);
        cp2p_free(r->value);
        cp2p_free(r);
    }
}

static void pkey_free(kad_pkey *k)
{
    if (k != NULL) {
        cp2p_free(k->key);
        cp2p_free(k->p);
        cp2p_free(k);
    }
}

static void rec_remove(cp2p__kad_store *s, size_t i)
{
    s->st.record_bytes -= s->recs[i]->value_len;
    rec_free(s->recs[i]);
    memmove(&s->recs[i], &s->recs[i + 1], (s->n_recs - i - 1) * sizeof(*s->recs));
    s->n_recs--;
}

static void pkey_remove(cp2p__kad_store *s, size_t i)
{
    s->st.providers -= s->pkeys[i]->n;
    pkey_free(s->pkeys[i]);
    memmove(&s->pkeys[i], &s->pkeys[i + 1], (s->n_pkeys - i - 1) * sizeof(*s->pkeys));
    s->n_pkeys--;
}

static uint64_t add_sat(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static bool rec_expired(const cp2p__kad_store *s, const kad_rec *r, uint64_t now_ms)
{
    return now_ms >= r->received_ms && now_ms - r->received_ms >= s->cfg.record_ttl_ms;
}

static void note_rec_expiry(cp2p__kad_store *s, uint64_t received_ms)
{
    uint64_t e = add_sat(received_ms, s->cfg.record_ttl_ms);
    if (e < s->rec_next_exp) {
        s->rec_next_exp = e;
    }
}

/* Drop a key's expired providers; returns how many remain. */
static size_t pkey_purge(cp2p__kad_store *s, kad_pkey *k, uint64_t now_ms)
{
    size_t j = 0;
    for (size_t i = 0; i < k->n; i++) {
        if (now_ms >= k->p[i].expires_ms) {
            s->st.expired++;
            s->st.providers--;
        } else {
            k->p[j++] = k->p[i];
        }
    }
    k->n = j;
    return j;
}

/* ---- lifecycle and validators ---- */

int cp2p__kad_store_new(const cp2p__kad_store_config *cfg, cp2p__kad_store **out)
{
    cp2p__kad_store_config c;
    if (cfg == NULL) {
        cp2p__kad_store_config_default(&c);
    } else {
        c = *cfg;
    }
    if (c.max_records == 0 || c.max_record_bytes == 0 || c.record_ttl_ms == 0 ||
        c.max_provider_keys == 0 || c.max_providers_per_key == 0 || c.provider_ttl_ms == 0 ||
        c.max_records > SIZE_MAX / sizeof(void *) ||
        c.max_provider_keys > SIZE_MAX / sizeof(void *) ||
        c.max_providers_per_key > SIZE_MAX / sizeof(kad_prov)) {
        return CP2P_EINVAL;
    }
    cp2p__kad_store *s = cp2p_calloc(1, sizeof(*s));
    if (s == NULL) {
        return CP2P_ENOMEM;
    }
    s->cfg = c;
    s->rec_next_exp = UINT64_MAX;
    s->prov_next_exp = UINT64_MAX;
    int rc = cp2p__kad_store_add_validator(s, "pk", pk_validate, NULL, NULL);
    if (rc != 0) {
        cp2p__kad_store_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void cp2p__kad_store_free(cp2p__kad_store *s)
{
    if (s == NULL) {
        return;
    }
    for (size_t i = 0; i < s->n_recs; i++) {
        rec_free(s->recs[i]);
    }
    for (size_t i = 0; i < s->n_pkeys; i++) {
        pkey_free(s->pkeys[i]);
    }
    cp2p_free(s->recs);
    cp2p_free(s->pkeys);
    cp2p_free(s);
}

int cp2p__kad_store_add_validator(cp2p__kad_store *s, const char *ns,
                                  cp2p__kad_validate_fn validate, cp2p__kad_select_fn select,
                                  void *ud)
{
    if (s == NULL || ns == NULL || validate == NULL) {
        return CP2P_EINVAL;
    }
    size_t n = strlen(ns);
    if (n == 0 || n > CP2P_KAD_MAX_NAMESPACE_LEN || memchr(ns, '/', n) != NULL) {
        return CP2P_EINVAL;
    }
    kad_validator *v = NULL;
    for (size_t i = 0; i < s->n_v; i++) {
        if (strcmp(s->v[i].ns, ns) == 0) {
            v = &s->v[i];
        }
    }
    if (v == NULL) {
        if (s->n_v == CP2P_KAD_MAX_NAMESPACES) {
            return CP2P_EFULL;
        }
        v = &s->v[s->n_v++];
        memcpy(v->ns, ns, n + 1);
    }
    v->validate = validate;
    v->select = select;
    v->ud = ud;
    return 0;
}

/* The namespace of "/<ns>/<rest>" (go-libp2p-record SplitKey: a leading '/', a non-empty
 * namespace, and a second '/'). */
static const kad_validator *validator_of(const cp2p__kad_store *s, const uint8_t *key,
                                         size_t key_len)
{
    if (key_len < 3 || key[0] != '/') {
        return NULL;
    }
    const uint8_t *end = memchr(key + 1, '/', key_len - 1);
    if (end == NULL || end == key + 1) {
        return NULL;
    }
    size_t n = (size_t)(end - (key + 1));
    for (size_t i = 0; i < s->n_v; i++) {
        if (strlen(s->v[i].ns) == n && memcmp(s->v[i].ns, key + 1, n) == 0) {
            return &s->v[i];
        }
    }
    return NULL;
}

int cp2p__kad_store_validate(const cp2p__kad_store *s, const uint8_t *key, size_t key_len,
                             const uint8_t *value, size_t value_len)
{
    if (key_len > CP2P_KAD_MAX_KEY || value_len > CP2P_KAD_MAX_VALUE) {
        return CP2P_ELIMIT;
    }
    const kad_validator *v = validator_of(s, key, key_len);
    if (v == NULL) {
        return CP2P_ENOTSUP;
    }
    int rc = v->validate(v->ud, key, key_len, value, value_len);
    return rc > 0 ? CP2P_EPROTO : rc;
}

int cp2p__kad_store_select(const cp2p__kad_store *s, const uint8_t *key, size_t key_len,
                           const uint8_t *const *values, const size_t *lens, size_t n)
{
    const kad_validator *v = validator_of(s, key, key_len);
    if (v == NULL) {
        return CP2P_ENOTSUP;
    }
    if (n == 0) {
        return CP2P_EINVAL;
    }
    if (v->select == NULL) {
        return 0;
    }
    int i = v->select(v->ud, key, key_len, values, lens, n);
    if (i >= 0 && (size_t)i >= n) {
        return CP2P_EINVAL; /* a broken select must not index out of range */
    }
    return i;
}

/* ---- records ---- */

static void purge_records(cp2p__kad_store *s, uint64_t now_ms)
{
    size_t j = 0;
    if (now_ms < s->rec_next_exp) {
        return;
    }
    s->rec_next_exp = UINT64_MAX;
    for (size_t i = 0; i < s->n_recs; i++) {
        kad_rec *r = s->recs[i];
        if (rec_expired(s, r, now_ms)) {
            s->st.record_bytes -= r->value_len;
            s->st.expired++;
            rec_free(r);
        } else {
            note_rec_expiry(s, r->received_ms);
            s->recs[j++] = r;
        }
    }
    s->n_recs = j;
}

static bool records_fit(const cp2p__kad_store *s, bool is_new, size_t old_len, size_t new_len)
{
    if (is_new && s->n_recs >= s->cfg.max_records) {
        return false;
    }
    uint64_t bytes = s->st.record_bytes - old_len;
    return new_len <= s->cfg.max_record_bytes && bytes <= s->cfg.max_record_bytes - new_len;
}

int cp2p__kad_store_put(cp2p__kad_store *s, const uint8_t *key, size_t key_len,
                        const uint8_t *value, size_t value_len, uint64_t now_ms)
{
    int rc = cp2p__kad_store_validate(s, key, key_len, value, value_len);
    if (rc != 0) {
        s->st.puts_refused_invalid++;
        return rc;
    }
    bool found;
    size_t i = rec_find(s, key, key_len, &found);
    if (found && rec_expired(s, s->recs[i], now_ms)) {
        rec_remove(s, i);
        s->st.expired++;
        i = rec_find(s, key, key_len, &found);
    }
    if (found) {
        kad_rec *r = s->recs[i];
        bool same = r->value_len == value_len &&
                    (value_len == 0 || memcmp(r->value, value, value_len) == 0);
        if (!same) {
            /* New first, as go-libp2p-kad-dht's handlePutValue: index 0 means "replace". */
            const uint8_t *vals[2] = {value, r->value};
            size_t lens[2] = {value_len, r->value_len};
            int best = cp2p__kad_store_select(s, key, key_len, vals, lens, 2);
            if (best < 0) {
                return best;
            }
            if (best != 0) {
                return CP2P_ESTATE;
            }
        }
        if (!records_fit(s, false, r->value_len, value_len)) {
            purge_records(s, now_ms);
            i = rec_find(s, key, key_len, &found);
            r = s->recs[i]; /* not expired: checked above */
            if (!records_fit(s, false, r->value_len, value_len)) {
                s->st.puts_refused_full++;
                return CP2P_EFULL;
            }
        }
        uint8_t *nv = value_len > 0 ? cp2p__memdup(value, value_len) : NULL;
        if (value_len > 0 && nv == NULL) {
            return CP2P_ENOMEM;
        }
        s->st.record_bytes = s->st.record_bytes - r->value_len + value_len;
        cp2p_free(r->value);
        r->value = nv;
        r->value_len = value_len;
        r->received_ms = now_ms;
        note_rec_expiry(s, now_ms);
        return 0;
    }
    if (!records_fit(s, true, 0, value_len)) {
        purge_records(s, now_ms);
        if (!records_fit(s, true, 0, value_len)) {
            s->st.puts_refused_full++;
            return CP2P_EFULL;
        }
        i = rec_find(s, key, key_len, &found);
    }
    if (s->n_recs == s->cap_recs) {
        size_t cap = s->cap_recs < 16 ? 16 : s->cap_recs * 2;
        if (cap > s->cfg.max_records) {
            cap = s->cfg.max_records;
        }
        kad_rec **nr = cp2p_realloc(s->recs, cap * sizeof(*nr));
        if (nr == NULL) {
            return CP2P_ENOMEM;
        }
        s->recs = nr;
        s->cap_recs = cap;
    }
    kad_rec *r = cp2p_calloc(1, sizeof(*r));
    if (r == NULL) {
        return CP2P_ENOMEM;
    }
    r->key = cp2p__memdup(key, key_len);
    r->value = value_len > 0 ? cp2p__memdup(value, value_len) : NULL;
    if (r->key == NULL || (value_len > 0 && r->value == NULL)) {
        rec_free(r);
        return CP2P_ENOMEM;
    }
    r->key_len = key_len;
    r->value_len = value_len;
    r->received_ms = now_ms;
    memmove(&s->recs[i + 1], &s->recs[i], (s->n_recs - i) * sizeof(*s->recs));
    s->recs[i] = r;
    s->n_recs++;
    s->st.record_bytes += value_len;
    note_rec_expiry(s, now_ms);
    return 0;
}

int cp2p__kad_store_get(cp2p__kad_store *s, const uint8_t *key, size_t key_len, uint64_t now_ms,
                        const uint8_t **value, size_t *value_len, uint64_t *received_ms)
{
    bool found;
    size_t i = rec_find(s, key, key_len, &found);
    if (!found) {
        return CP2P_ENOENT;
    }
    if (rec_expired(s, s->recs[i], now_ms)) {
        rec_remove(s, i);
        s->st.expired++;
        return CP2P_ENOENT;
    }
    *value = s->recs[i]->value;
    *value_len = s->recs[i]->value_len;
    if (received_ms != NULL) {
        *received_ms = s->recs[i]->received_ms;
    }
    return 0;
}

/* ---- providers ---- */

static void purge_providers(cp2p__kad_store *s, uint64_t now_ms)
{
    size_t j = 0;
    if (now_ms < s->prov_next_exp) {
        return;
    }
    s->prov_next_exp = UINT64_MAX;
    for (size_t i = 0; i < s->n_pkeys; i++) {
        kad_pkey *k = s->pkeys[i];
        if (pkey_purge(s, k, now_ms) == 0) {
            pkey_free(k);
            continue;
        }
        for (size_t m = 0; m < k->n; m++) {
            if (k->p[m].expires_ms < s->prov_next_exp) {
                s->prov_next_exp = k->p[m].expires_ms;
            }
        }
        s->pkeys[j++] = k;
    }
    s->n_pkeys = j;
}

static int pkey_insert(cp2p__kad_store *s, size_t i, const uint8_t *key, size_t key_len,
                       kad_pkey **out)
{
    if (s->n_pkeys == s->cap_pkeys) {
        size_t cap = s->cap_pkeys < 16 ? 16 : s->cap_pkeys * 2;
        if (cap > s->cfg.max_provider_keys) {
            cap = s->cfg.max_provider_keys;
        }
        kad_pkey **np = cp2p_realloc(s->pkeys, cap * sizeof(*np));
        if (np == NULL) {
            return CP2P_ENOMEM;
        }
        s->pkeys = np;
        s->cap_pkeys = cap;
    }
    kad_pkey *k = cp2p_calloc(1, sizeof(*k));
    if (k == NULL) {
        return CP2P_ENOMEM;
    }
    k->key = key_len > 0 ? cp2p__memdup(key, key_len) : NULL;
    k->cap = s->cfg.max_providers_per_key < 4 ? s->cfg.max_providers_per_key : 4;
    k->p = cp2p_calloc(k->cap, sizeof(*k->p));
    if ((key_len > 0 && k->key == NULL) || k->p == NULL) {
        pkey_free(k);
        return CP2P_ENOMEM;
    }
    k->key_len = key_len;
    memmove(&s->pkeys[i + 1], &s->pkeys[i], (s->n_pkeys - i) * sizeof(*s->pkeys));
    s->pkeys[i] = k;
    s->n_pkeys++;
    *out = k;
    return 0;
}

int cp2p__kad_store_add_provider(cp2p__kad_store *s, const uint8_t *key, size_t key_len,
                                 const cp2p_peer_id *p, uint64_t now_ms)
{
    if (key_len == 0 || key_len > CP2P_KAD_MAX_KEY || p->len == 0 ||
        p->len > CP2P_PEER_ID_MAX) {
        return CP2P_EINVAL;
    }
    bool found;
    size_t i = pkey_find(s, key, key_len, &found);
    kad_pkey *k;
    int rc;
    if (found) {
        k = s->pkeys[i];
    } else {
        if (s->n_pkeys >= s->cfg.max_provider_keys) {
            purge_providers(s, now_ms);
            if (s->n_pkeys >= s->cfg.max_provider_keys) {
                s->st.providers_refused_full++;
                return CP2P_EFULL;
            }
            i = pkey_find(s, key, key_len, &found);
        }
        if ((rc = pkey_insert(s, i, key, key_len, &k)) != 0) {
            return rc;
        }
    }
    kad_prov np = {.id = *p, .expires_ms = add_sat(now_ms, s->cfg.provider_ttl_ms)};
    /* Refresh: remove the old entry, the new one goes to the end (most recent). */
    for (size_t j = 0; j < k->n; j++) {
        if (cp2p_peer_id_equal(&k->p[j].id, p)) {
            memmove(&k->p[j], &k->p[j + 1], (k->n - j - 1) * sizeof(*k->p));
            k->n--;
            s->st.providers--;
            break;
        }
    }
    (void)pkey_purge(s, k, now_ms);
    if (k->n == s->cfg.max_providers_per_key) {
        memmove(&k->p[0], &k->p[1], (k->n - 1) * sizeof(*k->p)); /* the oldest goes */
        k->n--;
        s->st.providers--;
    }
    if (k->n == k->cap) {
        size_t ncap = k->cap * 2 < s->cfg.max_providers_per_key ? k->cap * 2
                                                                 : s->cfg.max_providers_per_key;
        kad_prov *pp = cp2p_realloc(k->p, ncap * sizeof(*pp));
        if (pp == NULL) {
            if (k->n == 0) { /* do not leave an empty key behind */
                pkey_remove(s, pkey_find(s, key, key_len, &found));
            }
            return CP2P_ENOMEM;
        }
        k->p = pp;
        k->cap = ncap;
    }
    k->p[k->n++] = np;
    s->st.providers++;
    if (np.expires_ms < s->prov_next_exp) {
        s->prov_next_exp = np.expires_ms;
    }
    return 0;
}

size_t cp2p__kad_store_providers(cp2p__kad_store *s, const uint8_t *key, size_t key_len,
                                 uint64_t now_ms, cp2p_peer_id *out, size_t max)
{
    bool found;
    size_t i = pkey_find(s, key, key_len, &found);
    if (!found) {
        return 0;
    }
    kad_pkey *k = s->pkeys[i];
    if (pkey_purge(s, k, now_ms) == 0) {
        pkey_remove(s, i);
        return 0;
    }
    size_t n = 0;
    for (size_t j = k->n; j > 0 && n < max; j--) {
        out[n++] = k->p[j - 1].id;
    }
    return n;
}

void cp2p__kad_store_purge(cp2p__kad_store *s, uint64_t now_ms)
{
    purge_records(s, now_ms);
    purge_providers(s, now_ms);
}

void cp2p__kad_store_stats_get(const cp2p__kad_store *s, cp2p__kad_store_stats *out)
{
    *out = s->st;
    out->records = s->n_recs;
    out->provider_keys = s->n_pkeys;
}
