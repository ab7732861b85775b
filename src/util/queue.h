/* A bounded FIFO of pointers with an explicit full-policy and a drop counter (DESIGN.md
 * principle 4). Not thread-safe: the owner (usually the loop thread) serialises access; the
 * node API wraps one in a mutex for its command queue. */
#ifndef CP2P_UTIL_QUEUE_H
#define CP2P_UTIL_QUEUE_H

#include <stdint.h>

#include <cp2p/common.h>

typedef enum cp2p_queue_policy {
    CP2P_QUEUE_REJECT,      /* push on a full queue fails with CP2P_EFULL; the caller keeps it */
    CP2P_QUEUE_DROP_OLDEST, /* push on a full queue evicts the oldest item through drop_cb */
} cp2p_queue_policy;

/* Receives an evicted item (DROP_OLDEST) so its owner can release it. */
typedef void (*cp2p_queue_drop_fn)(void *item, void *ud);

typedef struct cp2p_queue {
    void **items;
    size_t cap, head, len;
    cp2p_queue_policy policy;
    cp2p_queue_drop_fn drop_cb;
    void *drop_ud;
    uint64_t dropped; /* items refused (REJECT) or evicted (DROP_OLDEST) since init */
} cp2p_queue;

/* cap >= 1. drop_cb may be NULL (then evicted items are only counted: use it only for items
 * that need no release). Returns 0, CP2P_EINVAL, CP2P_ENOMEM. */
CP2P_NODISCARD int cp2p__queue_init(cp2p_queue *q, size_t cap, cp2p_queue_policy policy,
                                    cp2p_queue_drop_fn drop_cb, void *drop_ud);
/* Push a non-NULL item. Returns 0 (queued; with DROP_OLDEST the oldest may have been evicted and
 * counted), CP2P_EFULL (REJECT policy, full: counted; the caller still owns item), CP2P_EINVAL
 * (NULL item). */
CP2P_NODISCARD int cp2p__queue_push(cp2p_queue *q, void *item);
/* Oldest item, removed (pop) or not (peek); NULL when empty. */
void *cp2p__queue_pop(cp2p_queue *q);
void *cp2p__queue_peek(const cp2p_queue *q);
static inline size_t cp2p__queue_len(const cp2p_queue *q) { return q->len; }
static inline int cp2p__queue_full(const cp2p_queue *q) { return q->len == q->cap; }
/* Release the storage; each remaining item is passed to release (if not NULL). */
void cp2p__queue_fini(cp2p_queue *q, cp2p_queue_drop_fn release, void *ud);

#endif
