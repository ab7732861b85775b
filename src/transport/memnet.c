/* The in-memory network's model (sans-I/O). See memnet.h and cp2p/memnet.h.
 *
 * Why this shape:
 * - One FIFO of segments per endpoint (the bytes toward it) with a delivery time each, never
 *   earlier than the segment before it: that single rule gives TCP's in-order delivery and
 *   its head-of-line blocking behind a retransmitted segment.
 * - Bandwidth is a "link free at" time per link and direction, so connections between the same
 *   two hosts share it, as they share a real path.
 * - One min-heap of timers (each endpoint's head segment, each dial's next step and timeout),
 *   ordered by time then by arming order: with the seeded PRNG, the same calls at the same
 *   times give the same deliveries, whatever the memory layout.
 * - Events are nodes embedded in their objects: producing one cannot fail, and an endpoint
 *   outlives every event about it (it is freed after its CLOSED event). */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "transport/memnet.h"
#include "util/alloc.h"
#include "util/hashmap.h"

#define MAX_NAMES (1u << 20) /* our choice: far above any simulation this process can hold */

enum { TMR_EP, TMR_EP_WRITE, TMR_DIAL, TMR_DIAL_TIMEOUT };
enum { DIAL_SYN, DIAL_SYN_SENT, DIAL_WAIT_HEAL, DIAL_CONNECTING, DIAL_DONE };

struct cp2p__mn_node {
    cp2p__mn *net;
    uint64_t id;
    char name[CP2P__MN_NAME_MAX + 1]; /* first name it listened on, else node-<id> */
    bool named, freed;
    cp2p__mn_listener *listeners;
    cp2p__mn_link **links;
    size_t nlinks, caplinks;
    size_t neps, ndials; /* alive: the node's memory waits for them after a free */
    uint32_t notsent_lowat; /* its connections' TCP_NOTSENT_LOWAT; 0 = none */
    cp2p__mn_node *next, *prev;
};

struct cp2p__mn_link {
    uint64_t a, b; /* node ids, a < b; direction 0 is a -> b */
    cp2p_memnet_link cfg;
    bool cfg_set, cut;
    uint64_t tx_free[2];
    cp2p_memnet_stats stats;
    cp2p__mn_ep *eps;     /* endpoints on this link */
    cp2p__mn_dial *dials; /* dials waiting for a heal */
    cp2p__mn_link *next;  /* the network's links */
};

typedef struct ep_rec {
    cp2p__mn_ep ep;
    struct ep_rec *next, *prev; /* the network's endpoints */
} ep_rec;

typedef struct dial_rec {
    cp2p__mn_dial d;
    struct dial_rec *next, *prev;
} dial_rec;

struct cp2p__mn {
    uint64_t rng, seq;
    cp2p__mn_tmr **heap;
    size_t nheap, capheap;
    cp2p__mn_evnode *evq_head, *evq_tail;
    cp2p_hashmap names; /* open listeners by name */
    cp2p_memnet_link deflt;
    cp2p_memnet_stats stats;
    cp2p__mn_node *nodes;
    size_t nnodes;
    uint64_t next_node_id, next_auto;
    cp2p__mn_link *links;
    ep_rec *eps;
    dial_rec *dials;
};

/* ---- PRNG: splitmix64, enough for loss draws and reproducible from the seed ---- */

static uint64_t rng_next(cp2p__mn *net)
{
    uint64_t z = (net->rng += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static bool rng_chance(cp2p__mn *net, double p)
{
    if (p <= 0) {
        return false;
    }
    return (double)(rng_next(net) >> 11) * 0x1p-53 < p;
}

/* ---- timer heap ---- */

static bool tmr_less(const cp2p__mn_tmr *x, const cp2p__mn_tmr *y)
{
    return x->due < y->due || (x->due == y->due && x->seq < y->seq);
}

static void heap_set(cp2p__mn *net, size_t i, cp2p__mn_tmr *t)
{
    net->heap[i] = t;
    t->idx = i;
}

static void heap_up(cp2p__mn *net, size_t i)
{
    cp2p__mn_tmr *t = net->heap[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!tmr_less(t, net->heap[p])) {
            break;
        }
        heap_set(net, i, net->heap[p]);
        i = p;
    }
    heap_set(net, i, t);
}

static void heap_down(cp2p__mn *net, size_t i)
{
    cp2p__mn_tmr *t = net->heap[i];
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        cp2p__mn_tmr *best = t;
        if (l < net->nheap && tmr_less(net->heap[l], best)) {
            m = l;
            best = net->heap[l];
        }
        if (l + 1 < net->nheap && tmr_less(net->heap[l + 1], best)) {
            m = l + 1;
        }
        if (m == i) {
            break;
        }
        heap_set(net, i, net->heap[m]);
        i = m;
    }
    heap_set(net, i, t);
}

static void tmr_disarm(cp2p__mn *net, cp2p__mn_tmr *t)
{
    if (t->idx == SIZE_MAX) {
        return;
    }
    size_t i = t->idx;
    t->idx = SIZE_MAX;
    net->nheap--;
    if (i == net->nheap) {
        return;
    }
    cp2p__mn_tmr *m = net->heap[net->nheap];
    heap_set(net, i, m);
    heap_up(net, i);
    if (m->idx == i) {
        heap_down(net, i);
    }
}

/* Arm (or move) a timer. Returns CP2P_ENOMEM when the heap cannot grow. */
static int tmr_arm(cp2p__mn *net, cp2p__mn_tmr *t, uint64_t due)
{
    tmr_disarm(net, t);
    if (net->nheap == net->capheap) {
        size_t cap = net->capheap ? 2 * net->capheap : 64;
        cp2p__mn_tmr **h = cp2p_realloc(net->heap, cap * sizeof(*h));
        if (h == NULL) {
            return CP2P_ENOMEM;
        }
        net->heap = h;
        net->capheap = cap;
    }
    t->due = due;
    t->seq = net->seq++;
    heap_set(net, net->nheap, t);
    net->nheap++;
    heap_up(net, t->idx);
    return 0;
}

/* ---- events ---- */

static void ev_push(cp2p__mn *net, cp2p__mn_evnode *ev, uint8_t type)
{
    if (ev->queued) {
        return;
    }
    ev->type = type;
    ev->queued = true;
    ev->next = NULL;
    if (net->evq_tail != NULL) {
        net->evq_tail->next = ev;
    } else {
        net->evq_head = ev;
    }
    net->evq_tail = ev;
}

bool cp2p__mn_next_event_pending(const cp2p__mn *net)
{
    return net->evq_head != NULL;
}

cp2p__mn_evnode *cp2p__mn_next_event(cp2p__mn *net)
{
    cp2p__mn_evnode *ev = net->evq_head;
    if (ev != NULL) {
        net->evq_head = ev->next;
        if (net->evq_head == NULL) {
            net->evq_tail = NULL;
        }
        ev->queued = false;
    }
    return ev;
}

#define CONTAINER(ptr, type, member) ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

cp2p__mn_ep *cp2p__mn_ev_ep(cp2p__mn_evnode *ev)
{
    switch (ev->type) {
    case CP2P__MN_EV_ACCEPT:
        return CONTAINER(ev, cp2p__mn_ep, ev_accept);
    case CP2P__MN_EV_READABLE:
        return CONTAINER(ev, cp2p__mn_ep, ev_readable);
    case CP2P__MN_EV_SHUTDOWN_DONE:
        return CONTAINER(ev, cp2p__mn_ep, ev_shutdown);
    case CP2P__MN_EV_CLOSED:
        return CONTAINER(ev, cp2p__mn_ep, ev_closed);
    default:
        return NULL;
    }
}

cp2p__mn_dial *cp2p__mn_ev_dial(cp2p__mn_evnode *ev)
{
    return ev->type == CP2P__MN_EV_DIAL_DONE ? CONTAINER(ev, cp2p__mn_dial, ev) : NULL;
}

cp2p__mn_wreq *cp2p__mn_ev_wreq(cp2p__mn_evnode *ev)
{
    return ev->type == CP2P__MN_EV_WRITE_DONE ? CONTAINER(ev, cp2p__mn_wreq, ev) : NULL;
}

/* ---- the network ---- */

static cp2p_slice listener_key(const void *item)
{
    const cp2p__mn_listener *l = item;
    return (cp2p_slice){(const uint8_t *)l->name, strlen(l->name)};
}

int cp2p__mn_new(uint64_t seed, cp2p__mn **out)
{
    cp2p__mn *net = cp2p_calloc(1, sizeof(*net));
    if (net == NULL) {
        return CP2P_ENOMEM;
    }
    int rc = cp2p__hashmap_init(&net->names, MAX_NAMES, listener_key);
    if (rc != 0) {
        cp2p_free(net);
        return rc;
    }
    net->rng = seed;
    net->next_node_id = 1;
    net->next_auto = 1;
    *out = net;
    return 0;
}

static void segs_free(cp2p__mn_ep *ep)
{
    for (cp2p__mn_seg *s = ep->head, *next; s != NULL; s = next) {
        next = s->next;
        cp2p_free(s);
    }
    ep->head = ep->tail = NULL;
    ep->queued = 0;
}

static void node_release(cp2p__mn_node *n)
{
    cp2p__mn *net = n->net;
    for (cp2p__mn_listener *l = n->listeners, *next; l != NULL; l = next) {
        next = l->next;
        if (l->open) {
            (void)cp2p__hashmap_remove(&net->names, l);
        }
        cp2p_free(l);
    }
    if (n->prev != NULL) {
        n->prev->next = n->next;
    } else {
        net->nodes = n->next;
    }
    if (n->next != NULL) {
        n->next->prev = n->prev;
    }
    net->nnodes--;
    cp2p_free(n->links);
    cp2p_free(n);
}

void cp2p__mn_free(cp2p__mn *net)
{
    if (net == NULL) {
        return;
    }
    while (net->eps != NULL) {
        ep_rec *r = net->eps;
        net->eps = r->next;
        segs_free(&r->ep);
        cp2p_free(r);
    }
    while (net->dials != NULL) {
        dial_rec *r = net->dials;
        net->dials = r->next;
        cp2p_free(r);
    }
    while (net->nodes != NULL) {
        node_release(net->nodes);
    }
    while (net->links != NULL) {
        cp2p__mn_link *l = net->links;
        net->links = l->next;
        cp2p_free(l);
    }
    cp2p__hashmap_fini(&net->names, NULL, NULL);
    cp2p_free(net->heap);
    cp2p_free(net);
}

size_t cp2p__mn_nodes(const cp2p__mn *net)
{
    return net->nnodes;
}

uint64_t cp2p__mn_deadline(const cp2p__mn *net)
{
    return net->nheap > 0 ? net->heap[0]->due : UINT64_MAX;
}

void cp2p__mn_set_default_link(cp2p__mn *net, const cp2p_memnet_link *link)
{
    net->deflt = *link;
}

/* ---- links ---- */

static cp2p__mn_link *link_find(const cp2p__mn_node *n, uint64_t other)
{
    for (size_t i = 0; i < n->nlinks; i++) {
        cp2p__mn_link *l = n->links[i];
        if (l->a == other || l->b == other) {
            return l;
        }
    }
    return NULL;
}

static int node_add_link(cp2p__mn_node *n, cp2p__mn_link *l)
{
    if (n->nlinks == n->caplinks) {
        size_t cap = n->caplinks ? 2 * n->caplinks : 8;
        cp2p__mn_link **a = cp2p_realloc(n->links, cap * sizeof(*a));
        if (a == NULL) {
            return CP2P_ENOMEM;
        }
        n->links = a;
        n->caplinks = cap;
    }
    n->links[n->nlinks++] = l;
    return 0;
}

/* The link between two live nodes, created on first use. */
static cp2p__mn_link *link_get(cp2p__mn_node *x, cp2p__mn_node *y)
{
    cp2p__mn_link *l = link_find(x, y->id);
    if (l != NULL) {
        return l;
    }
    /* Room in both arrays first, so a failure leaves nothing half-linked. */
    if (node_add_link(x, NULL) != 0) {
        return NULL;
    }
    x->nlinks--;
    if (node_add_link(y, NULL) != 0) {
        return NULL;
    }
    y->nlinks--;
    if ((l = cp2p_calloc(1, sizeof(*l))) == NULL) {
        return NULL;
    }
    l->a = x->id < y->id ? x->id : y->id;
    l->b = x->id < y->id ? y->id : x->id;
    l->next = x->net->links;
    x->net->links = l;
    x->links[x->nlinks++] = l;
    y->links[y->nlinks++] = l;
    return l;
}

static const cp2p_memnet_link *link_cfg(const cp2p__mn *net, const cp2p__mn_link *l)
{
    return l->cfg_set ? &l->cfg : &net->deflt;
}

static cp2p__mn_node *node_by_name(const cp2p__mn *net, const char *name)
{
    cp2p__mn_listener *l = cp2p__hashmap_find(&net->names, name, strlen(name));
    return l != NULL ? l->node : NULL;
}

static int link_by_names(cp2p__mn *net, const char *a, const char *b, cp2p__mn_link **out)
{
    cp2p__mn_node *x = node_by_name(net, a), *y = node_by_name(net, b);
    if (x == NULL || y == NULL) {
        return CP2P_ENOENT;
    }
    if (x == y) {
        return CP2P_EINVAL;
    }
    *out = link_get(x, y);
    return *out != NULL ? 0 : CP2P_ENOMEM;
}

int cp2p__mn_link_set(cp2p__mn *net, const char *a, const char *b,
                      const cp2p_memnet_link *link, uint64_t now)
{
    cp2p__mn_link *l;
    (void)now;
    if (!(link->loss >= 0 && link->loss <= 1)) {
        return CP2P_EINVAL;
    }
    int rc = link_by_names(net, a, b, &l);
    if (rc == 0) {
        l->cfg = *link;
        l->cfg_set = true;
    }
    return rc;
}

/* ---- sending ---- */

static void ep_rearm(cp2p__mn_ep *ep, uint64_t now)
{
    cp2p__mn *net = ep->net;
    tmr_disarm(net, &ep->tmr);
    if (ep->closed || ep->head == NULL || ep->head->due == UINT64_MAX) {
        return;
    }
    if (ep->head->due <= now) {
        if (ep->reading) {
            ev_push(net, &ep->ev_readable, CP2P__MN_EV_READABLE);
        }
        return;
    }
    if (tmr_arm(net, &ep->tmr, ep->head->due) != 0) {
        /* No memory for the heap: deliver now rather than never. */
        ep->head->due = now;
        if (ep->reading) {
            ev_push(net, &ep->ev_readable, CP2P__MN_EV_READABLE);
        }
    }
}

/* Give a segment toward `rx` (sent in link direction `dir`) its delivery time: held while the
 * link is cut, else after the link is free, its serialisation, the latency and, if it is
 * lost, a retransmission timeout; never before the segment ahead of it. */
static void seg_schedule(cp2p__mn_link *l, bool dir, cp2p__mn_ep *rx, cp2p__mn_seg *s,
                         uint64_t now)
{
    cp2p__mn *net = rx->net;
    const cp2p_memnet_link *c = link_cfg(net, l);
    if (l->cut) {
        s->due = UINT64_MAX;
        l->stats.bytes_held += s->len;
        net->stats.bytes_held += s->len;
        return;
    }
    uint64_t start = now > l->tx_free[dir] ? now : l->tx_free[dir];
    uint64_t ser = 0;
    if (c->bandwidth_bps > 0 && s->len > 0) {
        ser = ((uint64_t)s->len * UINT64_C(1000000000) + c->bandwidth_bps - 1) / c->bandwidth_bps;
    }
    l->tx_free[dir] = start + ser;
    uint64_t lat = (uint64_t)c->latency_ms * CP2P__MN_NS_PER_MS;
    uint64_t due = start + ser + lat;
    if (s->len > 0 && rng_chance(net, c->loss)) {
        uint64_t rto = 3 * 2 * lat;
        uint64_t min = (uint64_t)CP2P_MEMNET_RTO_MIN_MS * CP2P__MN_NS_PER_MS;
        due += rto > min ? rto : min;
        l->stats.segments_delayed++;
        net->stats.segments_delayed++;
    }
    if (due < rx->last_due) {
        due = rx->last_due;
    }
    rx->last_due = due;
    s->due = due;
}

/* Append a segment to rx's queue (sent from the other end in direction `dir`). */
static void seg_append(cp2p__mn_link *l, bool dir, cp2p__mn_ep *rx, cp2p__mn_seg *s,
                       uint64_t now)
{
    seg_schedule(l, dir, rx, s, now);
    s->next = NULL;
    if (rx->tail != NULL) {
        rx->tail->next = s;
    } else {
        rx->head = s;
    }
    rx->tail = s;
    rx->queued += s->len;
    l->stats.segments++;
    rx->net->stats.segments++;
    if (rx->head == s) {
        ep_rearm(rx, now);
    }
}

static bool peer_gone(const cp2p__mn_ep *ep)
{
    return ep->peer == NULL || ep->peer->closed;
}

/* Copy a write into segments toward the peer (discarded when the peer is gone). */
static int write_accept(cp2p__mn_ep *ep, cp2p__mn_wreq *w, uint64_t now)
{
    cp2p__mn *net = ep->net;
    const cp2p_memnet_link *c = link_cfg(net, ep->link);
    size_t total = 0;
    for (size_t i = 0; i < w->n; i++) {
        total += w->iov[i].len;
    }
    net->stats.bytes_sent += total;
    ep->link->stats.bytes_sent += total;
    if (peer_gone(ep)) {
        return 0;
    }
    /* A plain link needs no segments: one per write costs less. */
    size_t segsz = c->loss > 0 || c->bandwidth_bps > 0 ? CP2P_MEMNET_SEGMENT : total;
    size_t iv = 0, ioff = 0;
    while (total > 0) {
        size_t len = total < segsz ? total : segsz;
        cp2p__mn_seg *s = cp2p_malloc(sizeof(*s) + len);
        if (s == NULL) {
            return CP2P_ENOMEM;
        }
        *s = (cp2p__mn_seg){.len = (uint32_t)len};
        for (size_t got = 0; got < len;) {
            size_t k = w->iov[iv].len - ioff;
            if (k > len - got) {
                k = len - got;
            }
            memcpy(s->data + got, w->iov[iv].ptr + ioff, k);
            got += k;
            ioff += k;
            if (ioff == w->iov[iv].len) {
                iv++;
                ioff = 0;
            }
        }
        seg_append(ep->link, ep->dir, ep->peer, s, now);
        total -= len;
    }
    return 0;
}

static void send_fin(cp2p__mn_ep *ep, uint64_t now)
{
    if (peer_gone(ep)) {
        return;
    }
    cp2p__mn_seg *s = cp2p_malloc(sizeof(*s));
    if (s == NULL) {
        /* The peer then sees the end only when we are freed: rare, and still an end. */
        return;
    }
    *s = (cp2p__mn_seg){.fin = true};
    seg_append(ep->link, ep->dir, ep->peer, s, now);
}

/* TCP_NOTSENT_LOWAT of the writer's node: 0 when its bytes may be taken now, else the time
 * at which the link's unsent backlog in our direction (bytes not yet serialised) falls below
 * the low-water mark. The backlog is the link's, shared by its connections in that direction
 * (one in practice: hosts hold one connection to a peer). The binding runs the model on the
 * loop's millisecond clock, so a write waiting for a time between two ticks would leave the
 * link idle until the later one: the mark is widened by one millisecond of the link's rate,
 * and the wait ends at the earlier tick. */
static uint64_t lowat_wait_until(const cp2p__mn_ep *ep, uint64_t now)
{
    const cp2p_memnet_link *c = link_cfg(ep->net, ep->link);
    uint32_t lowat = ep->node->notsent_lowat;
    uint64_t free_at = ep->link->tx_free[ep->dir];
    if (lowat == 0 || c->bandwidth_bps == 0 || ep->link->cut || free_at <= now) {
        return 0;
    }
    uint64_t lowat_ns =
        (uint64_t)lowat * UINT64_C(1000000000) / c->bandwidth_bps + CP2P__MN_NS_PER_MS;
    return free_at - now < lowat_ns ? 0 : free_at - lowat_ns + 1;
}

/* Accept queued writes while the peer's queue has room and the link's unsent backlog is under
 * the writer's low-water mark (a timer resumes them when it falls below). */
static void pump_writes(cp2p__mn_ep *ep, uint64_t now)
{
    cp2p__mn *net = ep->net;
    tmr_disarm(net, &ep->wtmr);
    while (ep->wq_head != NULL && (peer_gone(ep) || ep->peer->queued < CP2P_MEMNET_QUEUE_MAX)) {
        uint64_t at = peer_gone(ep) ? 0 : lowat_wait_until(ep, now);
        if (at != 0) {
            if (tmr_arm(net, &ep->wtmr, at) == 0) {
                break;
            }
            /* No memory for the heap: accept now rather than stall. */
        }
        cp2p__mn_wreq *w = ep->wq_head;
        ep->wq_head = w->next;
        if (ep->wq_head == NULL) {
            ep->wq_tail = NULL;
        }
        w->status = write_accept(ep, w, now);
        ev_push(net, &w->ev, CP2P__MN_EV_WRITE_DONE);
    }
    if (ep->wq_head == NULL && ep->shutdown_pending) {
        ep->shutdown_pending = false;
        send_fin(ep, now);
        ev_push(net, &ep->ev_shutdown, CP2P__MN_EV_SHUTDOWN_DONE);
    }
}

int cp2p__mn_write(cp2p__mn_ep *ep, cp2p__mn_wreq *w, const cp2p_slice *iov, size_t n,
                   uint64_t now)
{
    if (n == 0 || n > CP2P__MN_WRITE_IOV) {
        return CP2P_EINVAL;
    }
    if (ep->closed || ep->shut) {
        return CP2P_ECLOSED;
    }
    memcpy(w->iov, iov, n * sizeof(*iov));
    w->n = n;
    w->ep = ep;
    w->status = 0;
    w->next = NULL;
    w->ev.queued = false;
    if (ep->wq_tail != NULL) {
        ep->wq_tail->next = w;
    } else {
        ep->wq_head = w;
    }
    ep->wq_tail = w;
    pump_writes(ep, now);
    return 0;
}

int cp2p__mn_shutdown(cp2p__mn_ep *ep, uint64_t now)
{
    if (ep->closed || ep->shut) {
        return CP2P_ECLOSED;
    }
    ep->shut = true;
    ep->shutdown_pending = true;
    pump_writes(ep, now);
    return 0;
}

/* ---- reading ---- */

void cp2p__mn_read_start(cp2p__mn_ep *ep, uint64_t now)
{
    if (!ep->closed) {
        ep->reading = true;
        ep_rearm(ep, now);
    }
}

void cp2p__mn_read_stop(cp2p__mn_ep *ep)
{
    ep->reading = false;
}

ptrdiff_t cp2p__mn_read(cp2p__mn_ep *ep, uint64_t now, uint8_t *buf, size_t cap)
{
    cp2p__mn *net = ep->net;
    size_t got = 0;
    if (ep->closed) {
        return 0;
    }
    while (ep->head != NULL && ep->head->due <= now && got < cap) {
        cp2p__mn_seg *s = ep->head;
        if (s->fin) {
            if (got > 0) {
                break;
            }
            ep->head = s->next;
            if (ep->head == NULL) {
                ep->tail = NULL;
            }
            cp2p_free(s);
            ep->fin_read = true;
            ep_rearm(ep, now);
            return CP2P_ECLOSED;
        }
        size_t k = s->len - s->off;
        if (k > cap - got) {
            k = cap - got;
        }
        memcpy(buf + got, s->data + s->off, k);
        got += k;
        s->off += (uint32_t)k;
        if (s->off == s->len) {
            ep->head = s->next;
            if (ep->head == NULL) {
                ep->tail = NULL;
            }
            ep->queued -= s->len;
            cp2p_free(s);
        }
    }
    net->stats.bytes_delivered += got;
    ep->link->stats.bytes_delivered += got;
    if (got > 0 && ep->peer != NULL) {
        pump_writes(ep->peer, now); /* room for the writer */
    }
    ep_rearm(ep, now);
    return (ptrdiff_t)got;
}

/* ---- cuts ---- */

/* Hold every segment toward ep that is not yet due. */
static void ep_hold(cp2p__mn_link *l, cp2p__mn_ep *ep, uint64_t now)
{
    cp2p__mn *net = ep->net;
    uint64_t last = 0;
    for (cp2p__mn_seg *s = ep->head; s != NULL; s = s->next) {
        if (s->due > now && s->due != UINT64_MAX) {
            s->due = UINT64_MAX;
            l->stats.bytes_held += s->len;
            net->stats.bytes_held += s->len;
        } else if (s->due != UINT64_MAX) {
            last = s->due;
        }
    }
    ep->last_due = last;
    ep_rearm(ep, now);
}

/* Send the held segments toward ep again, in order, as from now. */
static void ep_release(cp2p__mn_link *l, cp2p__mn_ep *ep, uint64_t now)
{
    for (cp2p__mn_seg *s = ep->head; s != NULL; s = s->next) {
        if (s->due == UINT64_MAX) {
            seg_schedule(l, !ep->dir, ep, s, now);
        }
    }
    ep_rearm(ep, now);
}

static void dial_step(cp2p__mn_dial *d, uint64_t now);

int cp2p__mn_cut(cp2p__mn *net, const char *a, const char *b, bool cut, uint64_t now)
{
    cp2p__mn_link *l;
    int rc = link_by_names(net, a, b, &l);
    if (rc != 0 || l->cut == cut) {
        return rc;
    }
    l->cut = cut;
    for (cp2p__mn_ep *ep = l->eps; ep != NULL; ep = ep->link_next) {
        if (cut) {
            ep_hold(l, ep, now);
        } else {
            ep_release(l, ep, now);
        }
    }
    if (!cut) {
        while (l->dials != NULL) {
            cp2p__mn_dial *d = l->dials;
            l->dials = d->link_next;
            d->link_next = d->link_prev = NULL;
            d->stage = DIAL_SYN;
            dial_step(d, now);
        }
    }
    return 0;
}

/* ---- nodes, listeners ---- */

void cp2p__mn_node_set_notsent_lowat(cp2p__mn_node *node, uint32_t lowat)
{
    node->notsent_lowat = lowat;
}

int cp2p__mn_node_new(cp2p__mn *net, cp2p__mn_node **out)
{
    cp2p__mn_node *n = cp2p_calloc(1, sizeof(*n));
    if (n == NULL) {
        return CP2P_ENOMEM;
    }
    n->net = net;
    n->id = net->next_node_id++;
    snprintf(n->name, sizeof(n->name), "node-%llu", (unsigned long long)n->id);
    n->next = net->nodes;
    if (net->nodes != NULL) {
        net->nodes->prev = n;
    }
    net->nodes = n;
    net->nnodes++;
    *out = n;
    return 0;
}

static void node_maybe_release(cp2p__mn_node *n)
{
    if (n->freed && n->neps == 0 && n->ndials == 0) {
        node_release(n);
    }
}

void cp2p__mn_node_free(cp2p__mn_node *n)
{
    if (n == NULL) {
        return;
    }
    for (cp2p__mn_listener *l = n->listeners; l != NULL; l = l->next) {
        cp2p__mn_listener_close(l);
    }
    n->freed = true;
    node_maybe_release(n);
}

int cp2p__mn_listen(cp2p__mn_node *node, const char *name, void *ud, cp2p__mn_listener **out,
                    const char **why)
{
    cp2p__mn *net = node->net;
    char fresh[32];
    if (strcmp(name, "0") == 0) {
        do {
            snprintf(fresh, sizeof(fresh), "mem-%llu", (unsigned long long)net->next_auto++);
        } while (cp2p__hashmap_find(&net->names, fresh, strlen(fresh)) != NULL);
        name = fresh;
    }
    size_t len = strlen(name);
    if (len == 0 || len > CP2P__MN_NAME_MAX) {
        *why = "memory name empty or too long";
        return CP2P_EINVAL;
    }
    if (cp2p__hashmap_find(&net->names, name, len) != NULL) {
        *why = "address in use";
        return CP2P_EIO;
    }
    cp2p__mn_listener *l = cp2p_calloc(1, sizeof(*l));
    if (l == NULL) {
        return CP2P_ENOMEM;
    }
    memcpy(l->name, name, len + 1);
    l->node = node;
    l->ud = ud;
    l->open = true;
    if (cp2p__hashmap_insert(&net->names, l) != 0) {
        cp2p_free(l);
        return CP2P_ENOMEM;
    }
    l->next = node->listeners;
    node->listeners = l;
    if (!node->named) {
        memcpy(node->name, name, len + 1);
        node->named = true;
    }
    *out = l;
    return 0;
}

void cp2p__mn_listener_close(cp2p__mn_listener *l)
{
    if (l != NULL && l->open) {
        (void)cp2p__hashmap_remove(&l->node->net->names, l);
        l->open = false;
        l->ud = NULL;
    }
}

/* ---- endpoints ---- */

static cp2p__mn_ep *ep_new(cp2p__mn_node *node, cp2p__mn_link *l, const char *local,
                           const char *remote)
{
    cp2p__mn *net = node->net;
    ep_rec *r = cp2p_calloc(1, sizeof(*r));
    if (r == NULL) {
        return NULL;
    }
    cp2p__mn_ep *ep = &r->ep;
    ep->net = net;
    ep->node = node;
    ep->link = l;
    ep->dir = node->id != l->a;
    ep->tmr = (cp2p__mn_tmr){.idx = SIZE_MAX, .kind = TMR_EP};
    ep->wtmr = (cp2p__mn_tmr){.idx = SIZE_MAX, .kind = TMR_EP_WRITE};
    snprintf(ep->local, sizeof(ep->local), "%s", local);
    snprintf(ep->remote, sizeof(ep->remote), "%s", remote);
    ep->link_next = l->eps;
    if (l->eps != NULL) {
        l->eps->link_prev = ep;
    }
    l->eps = ep;
    r->next = net->eps;
    if (net->eps != NULL) {
        net->eps->prev = r;
    }
    net->eps = r;
    node->neps++;
    return ep;
}

void cp2p__mn_close(cp2p__mn_ep *ep, uint64_t now)
{
    cp2p__mn *net = ep->net;
    if (ep->closed) {
        return;
    }
    /* Writes not yet accepted are canceled; the end follows the accepted ones. */
    while (ep->wq_head != NULL) {
        cp2p__mn_wreq *w = ep->wq_head;
        ep->wq_head = w->next;
        w->status = CP2P_ECANCELED;
        ev_push(net, &w->ev, CP2P__MN_EV_WRITE_DONE);
    }
    ep->wq_tail = NULL;
    if (ep->shutdown_pending) {
        ep->shutdown_pending = false;
        send_fin(ep, now);
        ev_push(net, &ep->ev_shutdown, CP2P__MN_EV_SHUTDOWN_DONE);
    } else if (!ep->shut) {
        send_fin(ep, now);
    }
    ep->shut = true;
    ep->closed = true;
    ep->reading = false;
    tmr_disarm(net, &ep->tmr);
    tmr_disarm(net, &ep->wtmr);
    segs_free(ep);
    if (ep->peer != NULL) {
        pump_writes(ep->peer, now); /* its waiting writes now go nowhere */
    }
    ev_push(net, &ep->ev_closed, CP2P__MN_EV_CLOSED);
}

void cp2p__mn_ep_free(cp2p__mn_ep *ep)
{
    cp2p__mn *net = ep->net;
    ep_rec *r = CONTAINER(ep, ep_rec, ep);
    cp2p__mn_link *l = ep->link;
    tmr_disarm(net, &ep->tmr);
    tmr_disarm(net, &ep->wtmr);
    segs_free(ep);
    if (ep->peer != NULL) {
        ep->peer->peer = NULL;
    }
    if (ep->link_prev != NULL) {
        ep->link_prev->link_next = ep->link_next;
    } else {
        l->eps = ep->link_next;
    }
    if (ep->link_next != NULL) {
        ep->link_next->link_prev = ep->link_prev;
    }
    if (r->prev != NULL) {
        r->prev->next = r->next;
    } else {
        net->eps = r->next;
    }
    if (r->next != NULL) {
        r->next->prev = r->prev;
    }
    cp2p__mn_node *node = ep->node;
    node->neps--;
    cp2p_free(r);
    node_maybe_release(node);
}

/* ---- dials ---- */

static void dial_finish(cp2p__mn_dial *d, int status)
{
    cp2p__mn *net = d->node->net;
    tmr_disarm(net, &d->tmr);
    tmr_disarm(net, &d->timeout);
    if (d->stage == DIAL_WAIT_HEAL) {
        if (d->link_prev != NULL) {
            d->link_prev->link_next = d->link_next;
        } else {
            d->link->dials = d->link_next;
        }
        if (d->link_next != NULL) {
            d->link_next->link_prev = d->link_prev;
        }
    }
    d->stage = DIAL_DONE;
    d->status = status;
    ev_push(net, &d->ev, CP2P__MN_EV_DIAL_DONE);
}

/* The dial's SYN reached the listener's side (or it waits for a heal). */
static void dial_arrive(cp2p__mn_dial *d, uint64_t now)
{
    cp2p__mn *net = d->node->net;
    cp2p__mn_listener *l = cp2p__hashmap_find(&net->names, d->name, strlen(d->name));
    if (l == NULL) {
        net->stats.dials_refused++;
        dial_finish(d, CP2P_EIO);
        return;
    }
    cp2p__mn_ep *in = ep_new(l->node, d->link, l->name, d->node->name);
    cp2p__mn_ep *out = in != NULL ? ep_new(d->node, d->link, d->node->name, l->name) : NULL;
    if (out == NULL) {
        if (in != NULL) {
            cp2p__mn_ep_free(in);
        }
        dial_finish(d, CP2P_ENOMEM);
        return;
    }
    in->peer = out;
    out->peer = in;
    in->inbound = true;
    in->listener = l;
    d->ep = out;
    ev_push(net, &in->ev_accept, CP2P__MN_EV_ACCEPT);
    d->stage = DIAL_CONNECTING;
    uint64_t lat = (uint64_t)link_cfg(net, d->link)->latency_ms * CP2P__MN_NS_PER_MS;
    if (tmr_arm(net, &d->tmr, now + lat) != 0) {
        dial_step(d, now);
    }
}

static void dial_step(cp2p__mn_dial *d, uint64_t now)
{
    cp2p__mn *net = d->node->net;
    switch (d->stage) {
    case DIAL_SYN:
        if (d->link->cut) {
            d->stage = DIAL_WAIT_HEAL;
            d->link_prev = NULL;
            d->link_next = d->link->dials;
            if (d->link->dials != NULL) {
                d->link->dials->link_prev = d;
            }
            d->link->dials = d;
            return;
        }
        {
            uint64_t lat = (uint64_t)link_cfg(net, d->link)->latency_ms * CP2P__MN_NS_PER_MS;
            d->stage = DIAL_SYN_SENT; /* arrives at the timer */
            if (lat == 0 || tmr_arm(net, &d->tmr, now + lat) != 0) {
                dial_arrive(d, now);
            }
        }
        return;
    case DIAL_SYN_SENT:
        dial_arrive(d, now);
        return;
    case DIAL_CONNECTING:
        net->stats.conns++;
        d->link->stats.conns++;
        dial_finish(d, 0);
        return;
    default:
        return;
    }
}

int cp2p__mn_dial_start(cp2p__mn_node *node, const char *name, uint64_t timeout_ns, uint64_t now,
                  void *ud, cp2p__mn_dial **out)
{
    cp2p__mn *net = node->net;
    if (strlen(name) == 0 || strlen(name) > CP2P__MN_NAME_MAX) {
        return CP2P_EINVAL;
    }
    cp2p__mn_listener *l = cp2p__hashmap_find(&net->names, name, strlen(name));
    if (l != NULL && l->node == node) {
        return CP2P_EINVAL; /* a node does not dial itself */
    }
    cp2p__mn_link *link = l != NULL ? link_get(node, l->node) : NULL;
    if (l != NULL && link == NULL) {
        return CP2P_ENOMEM;
    }
    dial_rec *r = cp2p_calloc(1, sizeof(*r));
    if (r == NULL) {
        return CP2P_ENOMEM;
    }
    cp2p__mn_dial *d = &r->d;
    d->node = node;
    d->link = link;
    d->ud = ud;
    memcpy(d->name, name, strlen(name) + 1);
    d->tmr = (cp2p__mn_tmr){.idx = SIZE_MAX, .kind = TMR_DIAL};
    d->timeout = (cp2p__mn_tmr){.idx = SIZE_MAX, .kind = TMR_DIAL_TIMEOUT};
    if (tmr_arm(net, &d->timeout, now + timeout_ns) != 0) {
        cp2p_free(r);
        return CP2P_ENOMEM;
    }
    r->next = net->dials;
    if (net->dials != NULL) {
        net->dials->prev = r;
    }
    net->dials = r;
    node->ndials++;
    if (l == NULL) {
        net->stats.dials_refused++;
        dial_finish(d, CP2P_EIO); /* at once, like a refused TCP connection */
    } else {
        d->stage = DIAL_SYN;
        dial_step(d, now);
    }
    *out = d;
    return 0;
}

void cp2p__mn_dial_release(cp2p__mn_dial *d)
{
    cp2p__mn *net = d->node->net;
    dial_rec *r = CONTAINER(d, dial_rec, d);
    if (d->ev.queued) {
        d->canceled = true; /* freed when its event is drained */
        return;
    }
    tmr_disarm(net, &d->tmr);
    tmr_disarm(net, &d->timeout);
    if (r->prev != NULL) {
        r->prev->next = r->next;
    } else {
        net->dials = r->next;
    }
    if (r->next != NULL) {
        r->next->prev = r->prev;
    }
    cp2p__mn_node *node = d->node;
    node->ndials--;
    cp2p_free(r);
    node_maybe_release(node);
}

void cp2p__mn_dial_cancel(cp2p__mn_dial *d, uint64_t now)
{
    if (d->stage != DIAL_DONE) {
        dial_finish(d, CP2P_ECANCELED);
    }
    if (d->ep != NULL && !d->ep->closed) {
        cp2p__mn_close(d->ep, now);
    }
    d->ep = NULL;
    d->canceled = true;
    cp2p__mn_dial_release(d);
}

/* ---- time ---- */

void cp2p__mn_advance(cp2p__mn *net, uint64_t now)
{
    while (net->nheap > 0 && net->heap[0]->due <= now) {
        cp2p__mn_tmr *t = net->heap[0];
        tmr_disarm(net, t);
        switch (t->kind) {
        case TMR_EP:
            ep_rearm(CONTAINER(t, cp2p__mn_ep, tmr), now);
            break;
        case TMR_EP_WRITE:
            pump_writes(CONTAINER(t, cp2p__mn_ep, wtmr), now);
            break;
        case TMR_DIAL:
            dial_step(CONTAINER(t, cp2p__mn_dial, tmr), now);
            break;
        case TMR_DIAL_TIMEOUT: {
            cp2p__mn_dial *d = CONTAINER(t, cp2p__mn_dial, timeout);
            if (d->stage == DIAL_WAIT_HEAL) {
                net->stats.dials_timed_out++;
            }
            if (d->ep != NULL) {
                cp2p__mn_close(d->ep, now);
                d->ep = NULL;
            }
            dial_finish(d, CP2P_ETIMEDOUT);
            break;
        }
        default:
            break;
        }
    }
}

/* ---- counters ---- */

void cp2p__mn_stats(const cp2p__mn *net, cp2p_memnet_stats *out)
{
    *out = net->stats;
}

int cp2p__mn_link_stats(const cp2p__mn *net, const char *a, const char *b,
                        cp2p_memnet_stats *out)
{
    cp2p__mn_node *x = node_by_name(net, a), *y = node_by_name(net, b);
    cp2p__mn_link *l = x != NULL && y != NULL ? link_find(x, y->id) : NULL;
    if (l == NULL) {
        return CP2P_ENOENT;
    }
    *out = l->stats;
    return 0;
}
