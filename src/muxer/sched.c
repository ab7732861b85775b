/* Stream write scheduler: deficit round robin with fq_codel's new-flow rule. The rationale and
 * the driving loop are in sched.h; the choices that are ours:
 *
 * Budget. A node's deficit starts at weight * quantum and is refilled by that much each time it
 * reaches zero or below. The binding charges what the muxer actually took, which may exceed the
 * budget (a negotiation line is written whole): the deficit then goes negative and the following
 * refills pay it back, so shares stay exact over rounds (RFC 8290 charges whole packets the same
 * way).
 *
 * Emptied flows. An old flow that empties leaves the lists at once (fq_codel removes it when it
 * is found empty at the head, which is the same moment here since we only serve the head). A new
 * flow that empties goes to the old list if old flows wait, keeping its deficit, and leaves when
 * it is found empty there (RFC 8290 4.2's guard against flows gaming the new list).
 *
 * Parking. A node blocked by its own flow control leaves the lists with its deficit, so a stream
 * whose window is closed costs nothing per run; wake() puts it at the tail of the old flows. */
#include "muxer/sched.h"

#include <assert.h>

static unsigned clamp_weight(unsigned w)
{
    if (w < 1) {
        return 1;
    }
    return w > CP2P__SCHED_MAX_WEIGHT ? CP2P__SCHED_MAX_WEIGHT : w;
}

static void list_push(cp2p__sched_list *l, cp2p__sched_node *n)
{
    n->next = NULL;
    n->prev = l->tail;
    if (l->tail != NULL) {
        l->tail->next = n;
    } else {
        l->head = n;
    }
    l->tail = n;
}

static void list_unlink(cp2p__sched_list *l, cp2p__sched_node *n)
{
    if (n->prev != NULL) {
        n->prev->next = n->next;
    } else {
        l->head = n->next;
    }
    if (n->next != NULL) {
        n->next->prev = n->prev;
    } else {
        l->tail = n->prev;
    }
    n->prev = n->next = NULL;
}

static cp2p__sched_list *list_of(cp2p__sched *q, const cp2p__sched_node *n)
{
    switch (n->where) {
    case CP2P__SCHED_NEW:
        return &q->new_flows;
    case CP2P__SCHED_OLD:
        return &q->old_flows;
    default:
        return NULL;
    }
}

static int64_t allowance(const cp2p__sched *q, const cp2p__sched_node *n)
{
    return (int64_t)q->quantum * n->weight;
}

void cp2p__sched_init(cp2p__sched *q, uint32_t quantum)
{
    *q = (cp2p__sched){.quantum = quantum > 0 ? quantum : 1};
}

void cp2p__sched_node_init(cp2p__sched_node *n, unsigned weight)
{
    *n = (cp2p__sched_node){.weight = (uint8_t)clamp_weight(weight), .where = CP2P__SCHED_IDLE};
}

void cp2p__sched_set_weight(cp2p__sched_node *n, unsigned weight)
{
    n->weight = (uint8_t)clamp_weight(weight);
}

/* Take n off whatever list holds it; the node keeps its deficit. */
static void detach(cp2p__sched *q, cp2p__sched_node *n)
{
    cp2p__sched_list *l = list_of(q, n);
    if (l != NULL) {
        list_unlink(l, n);
        q->n_listed--;
    }
}

static void attach(cp2p__sched *q, cp2p__sched_node *n, cp2p__sched_where where)
{
    n->where = (uint8_t)where;
    list_push(where == CP2P__SCHED_NEW ? &q->new_flows : &q->old_flows, n);
    q->n_listed++;
}

void cp2p__sched_wake(cp2p__sched *q, cp2p__sched_node *n)
{
    switch (n->where) {
    case CP2P__SCHED_IDLE:
        n->deficit = allowance(q, n);
        attach(q, n, CP2P__SCHED_NEW);
        break;
    case CP2P__SCHED_PARKED:
        attach(q, n, CP2P__SCHED_OLD);
        break;
    default:
        break; /* listed: keeps its place */
    }
}

cp2p__sched_node *cp2p__sched_next(cp2p__sched *q)
{
    /* Each listed node is refilled at most once before one with a positive deficit is found:
     * a refill makes the deficit positive unless the node overdrew by more than an allowance,
     * and then it is found again only after every other node was looked at. Bounded anyway. */
    for (size_t guard = 0; guard <= 2 * q->n_listed + 1; guard++) {
        cp2p__sched_list *l = q->new_flows.head != NULL ? &q->new_flows : &q->old_flows;
        cp2p__sched_node *n = l->head;
        if (n == NULL) {
            return NULL;
        }
        q->stats.visits++;
        if (n->deficit > 0) {
            if (l == &q->new_flows) {
                q->stats.served_new++;
            } else {
                q->stats.served_old++;
            }
            return n;
        }
        n->deficit += allowance(q, n);
        q->stats.rotations++;
        detach(q, n);
        attach(q, n, CP2P__SCHED_OLD);
    }
    /* Only nodes that overdrew by many allowances remain: serve the head anyway. */
    cp2p__sched_node *n = q->new_flows.head != NULL ? q->new_flows.head : q->old_flows.head;
    if (n != NULL && n->deficit <= 0) {
        n->deficit = 1;
    }
    return n;
}

size_t cp2p__sched_budget(const cp2p__sched_node *n)
{
    return n->deficit > 0 ? (size_t)n->deficit : 0;
}

void cp2p__sched_done(cp2p__sched *q, cp2p__sched_node *n, size_t sent,
                      cp2p__sched_outcome outcome)
{
    n->deficit -= sent > (size_t)INT32_MAX ? INT32_MAX : (int64_t)sent;
    switch (outcome) {
    case CP2P__SCHED_MORE:
    case CP2P__SCHED_FULL:
        break; /* stays at the head: next() rotates it once its deficit is spent */
    case CP2P__SCHED_EMPTY:
        if (n->where == CP2P__SCHED_NEW && q->old_flows.head != NULL) {
            detach(q, n);
            attach(q, n, CP2P__SCHED_OLD);
        } else {
            detach(q, n);
            n->where = CP2P__SCHED_IDLE;
        }
        break;
    case CP2P__SCHED_BLOCKED:
        detach(q, n);
        n->where = CP2P__SCHED_PARKED;
        break;
    default:
        assert(0);
        break;
    }
}

void cp2p__sched_remove(cp2p__sched *q, cp2p__sched_node *n)
{
    detach(q, n);
    n->where = CP2P__SCHED_IDLE;
}

size_t cp2p__sched_listed(const cp2p__sched *q)
{
    return q->n_listed;
}
