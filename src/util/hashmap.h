/* The one hash table of cp2p for anything keyed by remote input (peer IDs, message IDs, topic
 * names, IPs, stream IDs). Keys come from the network and anyone can mint millions of them, so
 * an unkeyed hash would let a peer fill one probe chain and turn every lookup into a scan. The
 * hash is SipHash-2-4 (libsodium crypto_shorthash) under a key drawn once per process from
 * randombytes; nothing but the placement of items depends on it.
 *
 * Intrusive: the map stores item pointers, and a key function reads each item's key bytes out
 * of the item itself (every user already keeps the key in its object), so the map copies no
 * key and allocates nothing per item. Items never move, so the caller may keep pointers to
 * them elsewhere (FIFO rings, dense arrays).
 *
 * Open addressing with linear probing and backward-shift deletion (no tombstones), each slot
 * caching its item's 64-bit hash. The number of items is bounded at init; the slot array
 * starts empty, grows by doubling from 16 slots when an insertion would take the load above
 * 1/2, and halves when a removal leaves the load at 1/8 or less (a flood that passed gives its
 * memory back), so it never holds more than 4 x max slots.
 *
 * Not thread-safe: one owner serialises access (usually the loop thread). The hash itself is
 * safe from any thread. */
#ifndef CP2P_UTIL_HASHMAP_H
#define CP2P_UTIL_HASHMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cp2p/common.h>

/* The key bytes of an item. The bytes must not change while the item is in a map. */
typedef cp2p_slice (*cp2p_hashmap_key_fn)(const void *item);
/* Receives each item still in the map at fini. */
typedef void (*cp2p_hashmap_release_fn)(void *item, void *ud);

typedef struct cp2p_hashmap_slot {
    void *item; /* NULL: empty */
    uint64_t h;
} cp2p_hashmap_slot;

typedef struct cp2p_hashmap {
    cp2p_hashmap_slot *slots;
    size_t cap; /* slots: 0 before the first insertion, else a power of two */
    size_t n;   /* items */
    size_t max; /* items allowed */
    cp2p_hashmap_key_fn key;
} cp2p_hashmap;

/* SipHash-2-4 of p[0..n) under the process key: what the maps use to place items, and a
 * fingerprint of remote bytes that a peer cannot make collide on purpose. Any thread. The key
 * is drawn on first use; call cp2p__hashmap_key_init() first to learn whether that worked. */
uint64_t cp2p__hashmap_hash(const void *p, size_t n);

/* Draw the process key once (pthread_once): sodium_init() and randombytes_buf(). Returns 0, or
 * CP2P_EIO if libsodium could not be initialised (sticky). Any thread; cheap after the first
 * call. Objects that use cp2p__hashmap_hash() call it when they are created. */
CP2P_NODISCARD int cp2p__hashmap_key_init(void);

/* Set up an empty map for at most `max` items (1..CP2P_HASHMAP_MAX_ITEMS) whose keys `key`
 * reads. Allocates nothing. Returns 0, CP2P_EINVAL (max out of range, key NULL) or CP2P_EIO
 * (see cp2p__hashmap_key_init); on error the map is left zeroed, safe to fini. */
CP2P_NODISCARD int cp2p__hashmap_init(cp2p_hashmap *m, size_t max, cp2p_hashmap_key_fn key);

/* Pass each item still in the map to `release` (if not NULL), in no defined order, and free
 * the slots. Safe on a zeroed map and twice. */
void cp2p__hashmap_fini(cp2p_hashmap *m, cp2p_hashmap_release_fn release, void *ud);

/* The item whose key equals key[0..len), or NULL. */
void *cp2p__hashmap_find(const cp2p_hashmap *m, const void *key, size_t len);

/* Add `item` (not NULL; the map does not own it). Returns 0; CP2P_EINVAL (NULL, or an item with
 * an equal key is already in the map); CP2P_EFULL (max items already); CP2P_ENOMEM (the slot
 * array could not grow). On error the map is unchanged. */
CP2P_NODISCARD int cp2p__hashmap_insert(cp2p_hashmap *m, void *item);

/* Remove this exact item (found by its key, compared by pointer). Returns false if it is not in
 * the map. May shrink the slot array; if that allocation fails the larger array is kept. */
bool cp2p__hashmap_remove(cp2p_hashmap *m, const void *item);

/* Iterate: set *cursor = 0, then call until it returns NULL. The order is the slot order,
 * which depends on the process key: nothing may depend on it. The map must not be changed
 * while iterating (an insertion or removal may rehash). */
void *cp2p__hashmap_next(const cp2p_hashmap *m, size_t *cursor);

static inline size_t cp2p__hashmap_len(const cp2p_hashmap *m) { return m->n; }

#endif
