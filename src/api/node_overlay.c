/* The node API of the overlay (cp2p/node.h, "the overlay"; cp2p/overlay.h): every call runs on
 * the loop through cp2p_node_call_on_loop. A reliable send completes its call when the
 * overlay's result for that message arrives (acked or failed), or with CP2P_ECANCELED when
 * the overlay closes; the caller's own overlay callbacks (cfg.deliver / cfg.result) still run,
 * on the loop thread. */
#include <string.h>

#include <cp2p/node.h>
#include <cp2p/overlay.h>

#include "api/node_internal.h"
#include "util/alloc.h"
#include "util/limits.h"

/* A reliable send waiting for its result. */
typedef struct ovl_wait {
    struct ovl_wait *next;
    uint64_t id;
    cp2p_node_call *call;
} ovl_wait;

struct cp2p__node_ovl {
    cp2p_overlay *ov;
    cp2p_overlay_config user; /* the caller's callbacks */
    void *user_ud;
    ovl_wait *waits;
};

static void on_deliver(cp2p_overlay *ov, const cp2p_peer_id *src, uint64_t id,
                       const uint8_t *data, size_t len, bool reliable, void *ud)
{
    cp2p__node_ovl *st = ud;
    if (st->user.deliver != NULL) {
        st->user.deliver(ov, src, id, data, len, reliable, st->user_ud);
    }
}

static void on_result(cp2p_overlay *ov, const cp2p_peer_id *dst, uint64_t id, int status,
                      void *ud)
{
    cp2p__node_ovl *st = ud;
    for (ovl_wait **pw = &st->waits; *pw != NULL; pw = &(*pw)->next) {
        if ((*pw)->id == id) {
            ovl_wait *w = *pw;
            *pw = w->next;
            cp2p_node_call_done(w->call, status);
            cp2p_free(w);
            break;
        }
    }
    if (st->user.result != NULL) {
        st->user.result(ov, dst, id, status, st->user_ud);
    }
}

int cp2p__node_overlay_open(cp2p_host *h, const cp2p_overlay_config *cfg, void *ud,
                            cp2p__node_ovl **slot)
{
    cp2p__node_ovl *st = cp2p_calloc(1, sizeof(*st));
    if (st == NULL) {
        return CP2P_ENOMEM;
    }
    st->user = *cfg;
    st->user_ud = ud;
    cp2p_overlay_config c = *cfg;
    c.deliver = on_deliver;
    c.result = on_result;
    int rc = cp2p_overlay_new(h, &c, st, &st->ov);
    if (rc != 0) {
        cp2p_free(st);
        return rc;
    }
    *slot = st;
    return 0;
}

void cp2p__node_overlay_close(cp2p__node_ovl *st)
{
    if (st == NULL || st->ov == NULL) {
        return;
    }
    cp2p_overlay_close(st->ov);
    st->ov = NULL;
    while (st->waits != NULL) {
        ovl_wait *w = st->waits;
        st->waits = w->next;
        cp2p_node_call_done(w->call, CP2P_ECANCELED);
        cp2p_free(w);
    }
}

void cp2p__node_overlay_free(cp2p__node_ovl *st)
{
    cp2p__node_overlay_close(st);
    cp2p_free(st);
}

cp2p_overlay *cp2p__node_overlay(cp2p_node *n)
{
    cp2p__node_ovl *st = *cp2p__node_ovl_slot(n);
    return st != NULL ? st->ov : NULL;
}

/* ---- attach ---- */

int cp2p_node_attach_overlay(cp2p_node *n, const cp2p_overlay_config *cfg, void *ud)
{
    cp2p_host *h = cp2p__node_host(n);
    cp2p__node_ovl **slot = cp2p__node_ovl_slot(n);
    if (cfg == NULL || h == NULL) {
        return CP2P_EINVAL;
    }
    if (*slot != NULL) {
        return CP2P_ESTATE;
    }
    return cp2p__node_overlay_open(h, cfg, ud, slot);
}

/* ---- send ---- */

/* Bound of a table query on the loop (our choice: it only copies a bounded table). */
#define OVL_QUICK_MS 5000

typedef struct send_args {
    cp2p_node *n;
    cp2p_peer_id dst;
    uint32_t flags;
    uint64_t id;
    size_t len;
    uint8_t data[];
} send_args;

static void send_on_loop(cp2p_node_call *call, cp2p_host *h, void *ud)
{
    send_args *a = ud;
    (void)h;
    cp2p__node_ovl *st = *cp2p__node_ovl_slot(a->n);
    if (st == NULL || st->ov == NULL) {
        cp2p_node_call_done(call, CP2P_ENOTSUP);
        return;
    }
    ovl_wait *w = NULL;
    if ((a->flags & CP2P_OVERLAY_RELIABLE) != 0 && (w = cp2p_calloc(1, sizeof(*w))) == NULL) {
        cp2p_node_call_done(call, CP2P_ENOMEM);
        return;
    }
    int rc = cp2p_overlay_send(st->ov, &a->dst, a->data, a->len, a->flags, &a->id);
    if (rc != 0 || w == NULL) {
        cp2p_free(w);
        cp2p_node_call_done(call, rc);
        return;
    }
    /* The result comes from a later loop turn (never inside the send). */
    w->id = a->id;
    w->call = call;
    w->next = st->waits;
    st->waits = w;
}

int cp2p_node_overlay_send(cp2p_node *n, const cp2p_peer_id *dst, const void *data, size_t len,
                           uint32_t flags, uint64_t timeout_ms, uint64_t *id)
{
    if (n == NULL || dst == NULL || (len > 0 && data == NULL) || timeout_ms == 0) {
        return CP2P_EINVAL;
    }
    if (len > CP2P_OVL_MAX_PAYLOAD) {
        return CP2P_ELIMIT;
    }
    send_args *a = cp2p_malloc(sizeof(*a) + len);
    if (a == NULL) {
        return CP2P_ENOMEM;
    }
    a->n = n;
    a->dst = *dst;
    a->flags = flags;
    a->id = 0;
    a->len = len;
    if (len > 0) {
        memcpy(a->data, data, len);
    }
    /* On an error the node keeps `a` until the send can no longer touch it. */
    int rc = cp2p_node_call_on_loop(n, send_on_loop, a, cp2p_free, timeout_ms);
    if (rc == 0) {
        if (id != NULL) {
            *id = a->id;
        }
        cp2p_free(a);
    }
    return rc;
}

/* ---- routes and topology ---- */

typedef struct table_args {
    cp2p_node *n;
    bool topology;
    size_t max, total;
    cp2p_overlay_route *routes;
    cp2p_overlay_link *links;
} table_args;

static void table_on_loop(cp2p_node_call *call, cp2p_host *h, void *ud)
{
    table_args *a = ud;
    (void)h;
    cp2p_overlay *ov = cp2p__node_overlay(a->n);
    if (ov == NULL) {
        cp2p_node_call_done(call, CP2P_ENOTSUP);
        return;
    }
    a->total = a->topology ? cp2p_overlay_topology(ov, a->links, a->max)
                           : cp2p_overlay_routes(ov, a->routes, a->max);
    cp2p_node_call_done(call, 0);
}

static int table_call(cp2p_node *n, table_args *a, size_t *total)
{
    size_t esz = a->topology ? sizeof(cp2p_overlay_link) : sizeof(cp2p_overlay_route);
    table_args *copy = cp2p_calloc(1, sizeof(*copy) + a->max * esz);
    if (copy == NULL) {
        return CP2P_ENOMEM;
    }
    *copy = *a;
    copy->routes = (cp2p_overlay_route *)(copy + 1);
    copy->links = (cp2p_overlay_link *)(copy + 1);
    int rc = cp2p_node_call_on_loop(n, table_on_loop, copy, cp2p_free, OVL_QUICK_MS);
    if (rc != 0) {
        return rc;
    }
    size_t got = copy->total < a->max ? copy->total : a->max;
    if (a->topology) {
        memcpy(a->links, copy->links, got * esz);
    } else {
        memcpy(a->routes, copy->routes, got * esz);
    }
    *total = copy->total;
    cp2p_free(copy);
    return 0;
}

int cp2p_node_overlay_routes(cp2p_node *n, cp2p_overlay_route *out, size_t max, size_t *total)
{
    if (n == NULL || total == NULL || (max > 0 && out == NULL) || max > CP2P_OVL_MAX_NODES * 16) {
        return CP2P_EINVAL;
    }
    table_args a = {.n = n, .topology = false, .max = max, .routes = out};
    return table_call(n, &a, total);
}

int cp2p_node_overlay_topology(cp2p_node *n, cp2p_overlay_link *out, size_t max, size_t *total)
{
    if (n == NULL || total == NULL || (max > 0 && out == NULL) ||
        max > CP2P_OVL_MAX_NODES * CP2P_OVL_MAX_LINKS) {
        return CP2P_EINVAL;
    }
    table_args a = {.n = n, .topology = true, .max = max, .links = out};
    return table_call(n, &a, total);
}
