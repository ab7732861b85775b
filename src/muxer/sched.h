/* Write scheduler for the streams of one connection: which stream's queued bytes go into the
 * muxer next. Sans-I/O and allocation-free: the nodes are embedded in the caller's stream
 * objects, the core never reads a clock, never calls back, and knows nothing of yamux.
 * Private to the library: never installed.
 *
 * Algorithm: deficit round robin by bytes (Shreedhar and Varghese, 1995) with the new-flow rule
 * of fq_codel (RFC 8290, section 4.1):
 *   - only streams with something to send are listed (the ready lists), so the work per
 *     scheduling decision is O(1) and per run O(ready streams), whatever the number of streams;
 *   - each round a listed stream may send up to its deficit; when that is used up it gets
 *     weight * quantum more and goes to the tail of the old-flows list, so over rounds two
 *     backlogged streams share bytes in the ratio of their weights;
 *   - a stream that becomes ready after being idle joins the new-flows list, which is served
 *     before the old flows, once (one quantum's worth): a small urgent message waits at most for
 *     the write in progress, not for a round over every bulk stream. A new flow that empties
 *     while old flows wait moves to the old list instead of leaving (RFC 8290 4.2), so a stream
 *     that sends in small bursts cannot stay "new" for ever and starve the others;
 *   - a stream blocked by its own flow control (the peer's window) is parked, keeping its
 *     deficit; when the window reopens it rejoins the tail of the old flows, not the new ones
 *     (it was never idle).
 *
 * Driving it (the binding, conn_uv.c):
 *   on a stream with new bytes, a FIN to send, or a window that reopened:  wake(node)
 *   to send:  while ((n = next(q)) != NULL) {
 *                 sent = push up to budget(n) bytes of n's stream into the muxer;
 *                 done(q, n, sent, outcome);   // MORE, EMPTY, BLOCKED or FULL
 *                 if (outcome == FULL) break;  // the muxer's output is full: resume later
 *             }
 *   stream gone:  remove(node) before its memory goes.
 *
 * Weights are 1..CP2P__SCHED_MAX_WEIGHT; the public priority of a stream is its weight
 * (include/cp2p/host.h, cp2p_stream_set_priority). Threads: one owner, no locks. */
#ifndef CP2P_MUXER_SCHED_H
#define CP2P_MUXER_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cp2p/common.h>

#define CP2P__SCHED_MAX_WEIGHT 16

typedef enum cp2p__sched_where {
    CP2P__SCHED_IDLE = 0, /* nothing to send: in no list */
    CP2P__SCHED_NEW,      /* on the new-flows list */
    CP2P__SCHED_OLD,      /* on the old-flows list */
    CP2P__SCHED_PARKED,   /* has bytes but flow control blocks it: in no list, deficit kept */
} cp2p__sched_where;

typedef struct cp2p__sched_node {
    struct cp2p__sched_node *prev, *next;
    int64_t deficit;
    uint8_t weight;
    uint8_t where; /* cp2p__sched_where */
} cp2p__sched_node;

typedef struct cp2p__sched_list {
    cp2p__sched_node *head, *tail;
} cp2p__sched_list;

typedef struct cp2p__sched_stats {
    uint64_t served_new; /* decisions that served a new flow */
    uint64_t served_old; /* decisions that served an old flow */
    uint64_t rotations;  /* deficits refilled (one per stream per round) */
    uint64_t visits;     /* nodes looked at by next(): bounded by O(ready) per call */
} cp2p__sched_stats;

typedef struct cp2p__sched {
    cp2p__sched_list new_flows, old_flows;
    uint32_t quantum; /* bytes per weight unit per round */
    size_t n_listed;  /* nodes on either list */
    cp2p__sched_stats stats;
} cp2p__sched;

/* Outcome of serving a node, reported to done(). */
typedef enum cp2p__sched_outcome {
    CP2P__SCHED_MORE,    /* still has bytes; stopped because the budget was used up */
    CP2P__SCHED_EMPTY,   /* nothing more to send (its queue drained) */
    CP2P__SCHED_BLOCKED, /* still has bytes; its own flow control window is closed: park it */
    CP2P__SCHED_FULL,    /* still has bytes; the muxer's shared output is full: stop serving */
} cp2p__sched_outcome;

/* `quantum` (>= 1) is the byte allowance of weight 1 per round. */
void cp2p__sched_init(cp2p__sched *q, uint32_t quantum);
/* A node for a stream with `weight` (clamped to 1..CP2P__SCHED_MAX_WEIGHT); idle. */
void cp2p__sched_node_init(cp2p__sched_node *n, unsigned weight);
/* Change the weight (clamped); takes effect at the node's next refill. */
void cp2p__sched_set_weight(cp2p__sched_node *n, unsigned weight);
/* The node has something to send: an idle node joins the new flows with a full allowance, a
 * parked one rejoins the tail of the old flows; a listed node stays where it is. O(1). */
void cp2p__sched_wake(cp2p__sched *q, cp2p__sched_node *n);
/* The node to serve now (its budget is > 0), or NULL when no node is listed. Refills and
 * rotates exhausted nodes on the way: O(1) amortised, at most one visit per listed node. */
cp2p__sched_node *cp2p__sched_next(cp2p__sched *q);
/* Bytes the node returned by next() may send now. */
size_t cp2p__sched_budget(const cp2p__sched_node *n);
/* Report what serving the node returned by next() did: `sent` bytes (charged even if more than
 * its budget: the deficit goes negative and the next rounds pay it back) and the outcome. */
void cp2p__sched_done(cp2p__sched *q, cp2p__sched_node *n, size_t sent,
                      cp2p__sched_outcome outcome);
/* Forget the node (stream gone or closed); it becomes idle. O(1); no-op on an idle node. */
void cp2p__sched_remove(cp2p__sched *q, cp2p__sched_node *n);
/* Nodes on the ready lists. */
size_t cp2p__sched_listed(const cp2p__sched *q);

#endif
