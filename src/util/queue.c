/* Bounded ring buffer of pointers. */
#include "util/queue.h"

int cp2p__queue_init(cp2p_queue *q, size_t cap, cp2p_queue_policy policy,
                     cp2p_queue_drop_fn drop_cb, void *drop_ud)
{
    *q = (cp2p_queue){0};
    switch (policy) {
    case CP2P_QUEUE_REJECT:
    case CP2P_QUEUE_DROP_OLDEST:
        break;
    default:
        return CP2P_EINVAL;
    }
    if (cap == 0) {
        return CP2P_EINVAL;
    }
    q->items = cp2p_calloc(cap, sizeof(void *));
    if (q->items == NULL) {
        return CP2P_ENOMEM;
    }
    q->cap = cap;
    q->policy = policy;
    q->drop_cb = drop_cb;
    q->drop_ud = drop_ud;
    return 0;
}

int cp2p__queue_push(cp2p_queue *q, void *item)
{
    if (item == NULL) {
        return CP2P_EINVAL;
    }
    if (q->len == q->cap) {
        q->dropped++;
        if (q->policy == CP2P_QUEUE_REJECT) {
            return CP2P_EFULL;
        }
        void *old = cp2p__queue_pop(q);
        if (q->drop_cb != NULL) {
            q->drop_cb(old, q->drop_ud);
        }
    }
    q->items[(q->head + q->len) % q->cap] = item;
    q->len++;
    return 0;
}

void *cp2p__queue_peek(const cp2p_queue *q)
{
    return q->len == 0 ? NULL : q->items[q->head];
}

void *cp2p__queue_pop(cp2p_queue *q)
{
    if (q->len == 0) {
        return NULL;
    }
    void *item = q->items[q->head];
    q->items[q->head] = NULL;
    q->head = (q->head + 1) % q->cap;
    q->len--;
    return item;
}

void cp2p__queue_fini(cp2p_queue *q, cp2p_queue_drop_fn release, void *ud)
{
    void *item;
    while ((item = cp2p__queue_pop(q)) != NULL) {
        if (release != NULL) {
            release(item, ud);
        }
    }
    cp2p_free(q->items);
    *q = (cp2p_queue){0};
}
