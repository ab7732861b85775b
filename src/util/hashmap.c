/* Keyed open-addressing hash map (see hashmap.h for the design and the grow/shrink policy).
 *
 * Invariant of linear probing: an item sits in the run of occupied slots that starts at its
 * home slot (h & mask), with no empty slot between home and it. Lookups stop at the first empty
 * slot; removal shifts later items of the run back into the hole when their home allows it
 * (Knuth's Algorithm R), so no tombstones pile up under insert/remove churn.
 *
 * The process key lives in a static array written once under pthread_once; it is read-only
 * afterwards, so hashing needs no lock. libsodium's own sodium_init() is idempotent and
 * thread-safe, so the key does not depend on src/crypto (util sits below it). */
#include "util/hashmap.h"

#include <pthread.h>
#include <string.h>

#include <sodium.h>

#include "util/limits.h"

#define MIN_SLOTS 16

static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static int key_rc = CP2P_EIO;
static uint8_t process_key[crypto_shorthash_KEYBYTES];

static void key_draw(void)
{
    if (sodium_init() < 0) {
        return; /* key_rc stays CP2P_EIO */
    }
    randombytes_buf(process_key, sizeof(process_key));
    key_rc = 0;
}

int cp2p__hashmap_key_init(void)
{
    if (pthread_once(&key_once, key_draw) != 0) {
        return CP2P_EIO;
    }
    return key_rc;
}

uint64_t cp2p__hashmap_hash(const void *p, size_t n)
{
    uint8_t out[crypto_shorthash_BYTES];
    uint64_t h = 0;
    /* A failure is reported where maps and their users start (cp2p__hashmap_key_init). */
    pthread_once(&key_once, key_draw);
    crypto_shorthash(out, p, n, process_key);
    for (size_t i = sizeof(out); i > 0; i--) {
        h = (h << 8) | out[i - 1]; /* SipHash's output is little-endian */
    }
    return h;
}

int cp2p__hashmap_init(cp2p_hashmap *m, size_t max, cp2p_hashmap_key_fn key)
{
    *m = (cp2p_hashmap){0};
    if (max == 0 || max > CP2P_HASHMAP_MAX_ITEMS || key == NULL) {
        return CP2P_EINVAL;
    }
    int rc = cp2p__hashmap_key_init();
    if (rc != 0) {
        return rc;
    }
    m->max = max;
    m->key = key;
    return 0;
}

void cp2p__hashmap_fini(cp2p_hashmap *m, cp2p_hashmap_release_fn release, void *ud)
{
    for (size_t i = 0; release != NULL && i < m->cap; i++) {
        if (m->slots[i].item != NULL) {
            release(m->slots[i].item, ud);
        }
    }
    cp2p_free(m->slots);
    *m = (cp2p_hashmap){0};
}

static bool key_equal(const cp2p_hashmap *m, const void *item, const void *key, size_t len)
{
    cp2p_slice k = m->key(item);
    return k.len == len && (len == 0 || memcmp(k.ptr, key, len) == 0);
}

/* The slot holding the item with this key, or SIZE_MAX. */
static size_t slot_of_key(const cp2p_hashmap *m, uint64_t h, const void *key, size_t len)
{
    if (m->n == 0) {
        return SIZE_MAX;
    }
    size_t mask = m->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        const cp2p_hashmap_slot *s = &m->slots[i];
        if (s->item == NULL) {
            return SIZE_MAX;
        }
        if (s->h == h && key_equal(m, s->item, key, len)) {
            return i;
        }
    }
}

void *cp2p__hashmap_find(const cp2p_hashmap *m, const void *key, size_t len)
{
    if (m->n == 0) {
        return NULL;
    }
    size_t i = slot_of_key(m, cp2p__hashmap_hash(key, len), key, len);
    return i == SIZE_MAX ? NULL : m->slots[i].item;
}

static void place(cp2p_hashmap_slot *slots, size_t cap, void *item, uint64_t h)
{
    size_t mask = cap - 1;
    size_t i = h & mask;
    while (slots[i].item != NULL) {
        i = (i + 1) & mask;
    }
    slots[i] = (cp2p_hashmap_slot){.item = item, .h = h};
}

/* Move every item into a new array of ncap slots. CP2P_ENOMEM leaves the map as it was. */
static int rehash(cp2p_hashmap *m, size_t ncap)
{
    cp2p_hashmap_slot *ns = cp2p_calloc(ncap, sizeof(*ns));
    if (ns == NULL) {
        return CP2P_ENOMEM;
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (m->slots[i].item != NULL) {
            place(ns, ncap, m->slots[i].item, m->slots[i].h);
        }
    }
    cp2p_free(m->slots);
    m->slots = ns;
    m->cap = ncap;
    return 0;
}

int cp2p__hashmap_insert(cp2p_hashmap *m, void *item)
{
    if (item == NULL) {
        return CP2P_EINVAL;
    }
    cp2p_slice k = m->key(item);
    uint64_t h = cp2p__hashmap_hash(k.ptr, k.len);
    if (slot_of_key(m, h, k.ptr, k.len) != SIZE_MAX) {
        return CP2P_EINVAL;
    }
    if (m->n >= m->max) {
        return CP2P_EFULL;
    }
    /* Keep the load at or below 1/2: probe runs stay short for any key set the hash spreads. */
    if ((m->n + 1) * 2 > m->cap) {
        int rc = rehash(m, m->cap == 0 ? MIN_SLOTS : m->cap * 2);
        if (rc != 0) {
            return rc;
        }
    }
    place(m->slots, m->cap, item, h);
    m->n++;
    return 0;
}

/* True when k lies in the cyclic range (i, j]. */
static bool cyc_between(size_t i, size_t k, size_t j)
{
    return i <= j ? (i < k && k <= j) : (i < k || k <= j);
}

bool cp2p__hashmap_remove(cp2p_hashmap *m, const void *item)
{
    if (item == NULL || m->n == 0) {
        return false;
    }
    cp2p_slice k = m->key(item);
    size_t mask = m->cap - 1;
    size_t i = cp2p__hashmap_hash(k.ptr, k.len) & mask;
    while (m->slots[i].item != item) {
        if (m->slots[i].item == NULL) {
            return false;
        }
        i = (i + 1) & mask;
    }
    m->slots[i].item = NULL;
    m->n--;
    /* Backward shift: pull later items of the run into the hole unless their home lies in
     * (hole, their slot], where moving them would put them before their home. */
    for (size_t j = (i + 1) & mask; m->slots[j].item != NULL; j = (j + 1) & mask) {
        if (!cyc_between(i, m->slots[j].h & mask, j)) {
            m->slots[i] = m->slots[j];
            m->slots[j].item = NULL;
            i = j;
        }
    }
    /* Shrink at load 1/8 or less to load 1/4 or less (hysteresis against grow/shrink churn);
     * best effort. */
    if (m->cap > MIN_SLOTS && m->n * 8 <= m->cap) {
        (void)rehash(m, m->cap / 2);
    }
    return true;
}

void *cp2p__hashmap_next(const cp2p_hashmap *m, size_t *cursor)
{
    while (*cursor < m->cap) {
        void *item = m->slots[(*cursor)++].item;
        if (item != NULL) {
            return item;
        }
    }
    return NULL;
}
