/* Flows (seed 000): one per message kind (advert, request, chunk, retransmission, transport),
 * each a bounded queue in front of its own worker threads, with an in-flight semaphore, so
 * that a slow application callback on one kind never stops the others and nothing grows
 * without bound. What does not fit is dropped and counted, never lost silently.
 *
 *   loop --push--> [queue: queue_cap] --worker threads (workers)--> work(item) on a worker
 *        <--drain-- [answers]         <------------------------------ (item back to the loop)
 *
 * An item is in flight from the moment a worker takes it until cp2p__flow_drain has handed it
 * back to `done` on the owner's thread; at most max_inflight are (the semaphore: a worker waits
 * for a permit before it takes the next item, so a stalled owner stalls its flow, not the
 * heap). `wake` runs on the worker that finished an item, to tell the owner to drain (the
 * binding's uv_async_send). Latency is measured from push to the end of `work`.
 *
 * Threads: push, drain, stats and free on the owner's thread (the loop); work and wake on
 * workers. */
#ifndef CP2P_FLOWS_FLOW_H
#define CP2P_FLOWS_FLOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cp2p/common.h>

typedef struct cp2p__flow cp2p__flow;

typedef struct cp2p__flow_config {
    const char *name;       /* for logs and metrics labels (not copied: a string literal) */
    uint32_t queue_cap;     /* items waiting (>= 1) */
    uint32_t workers;       /* threads (>= 1) */
    uint32_t max_inflight;  /* items taken and not yet drained (>= 1) */
    void (*work)(void *item, void *ud);  /* worker thread */
    void (*done)(void *item, void *ud);  /* owner thread, from cp2p__flow_drain; owns item */
    void (*drop)(void *item, void *ud);  /* owner thread: an item that will never be done */
    void (*wake)(void *ud);              /* worker thread: something to drain (may be NULL) */
    void *ud;
} cp2p__flow_config;

typedef struct cp2p__flow_stats {
    uint64_t queued;      /* level: waiting for a worker */
    uint64_t inflight;    /* level: taken, not yet drained */
    uint64_t pushed, processed, dropped;
    uint64_t latency_ns_sum, latency_ns_max; /* push to end of work, over processed items */
} cp2p__flow_stats;

/* Start the workers. Returns 0 and *out, CP2P_EINVAL (zero limit, no work/done/drop),
 * CP2P_ENOMEM, CP2P_EIO (a thread could not start). */
CP2P_NODISCARD int cp2p__flow_new(const cp2p__flow_config *cfg, cp2p__flow **out);
/* Queue an item (not NULL). Returns 0, or CP2P_EFULL (queue full or stopping: counted as
 * dropped; the caller keeps the item). */
CP2P_NODISCARD int cp2p__flow_push(cp2p__flow *f, void *item);
/* Hand finished items to `done`, at most `max` (0: all). Returns how many. */
size_t cp2p__flow_drain(cp2p__flow *f, size_t max);
void cp2p__flow_stats_get(cp2p__flow *f, cp2p__flow_stats *out);
/* Stop: waits for each worker to finish its current item (a blocked `work` blocks this),
 * then passes every queued and finished item to `drop`. Safe with NULL. */
void cp2p__flow_free(cp2p__flow *f);

#endif
