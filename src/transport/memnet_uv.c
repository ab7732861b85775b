/* The in-memory network on a libuv loop: the model (memnet.c) runs from a check handle, and
 * its events become the transport interface's callbacks. See cp2p/memnet.h.
 *
 * Every call that changes the model only schedules a run, so no callback ever runs inside the
 * call that caused it. A run due now starts an idle handle (which keeps the loop's poll from
 * blocking) and a check handle (which runs right after the poll); a run due later arms a timer,
 * whose callback schedules the run the same way. Running from the check phase, after the
 * poll, is what TCP's callbacks look like to the caller: uv_run(UV_RUN_ONCE) returns after the
 * deliveries it made, instead of blocking in the next poll with their results unseen (a run
 * from a timer is followed by that poll in libuv before 1.45). The work per run is bounded
 * (EVENTS_PER_RUN); what is left runs on the next loop iteration. */
#include <assert.h>
#include <stdio.h>
#include <string.h>

#include "transport/memnet.h"
#include "transport/memnet_uv.h"
#include "util/alloc.h"

#define EVENTS_PER_RUN 4096 /* our choice: bounded work per callback (STYLE.md section 8) */

struct cp2p_memnet {
    uv_loop_t *loop;
    uv_timer_t timer;
    uv_idle_t idle;   /* active while a run is due now: the poll does not block */
    uv_check_t check; /* the run, after the poll */
    int handles_open;
    cp2p__mn *mn;
    size_t ntransports;
    bool closing, in_run;
    cp2p_memnet_close_cb close_cb;
    void *close_ud;
};

typedef struct mem_transport {
    cp2p__transport base;
    cp2p_memnet *net;
    cp2p__mn_node *node;
} mem_transport;

typedef struct mem_listener {
    cp2p__tlistener base;
    cp2p__mn_listener *l;
    cp2p__taccept_cb cb;
    void *ud;
} mem_listener;

typedef struct mem_dial {
    cp2p__tdial base;
    cp2p_memnet *net;
    cp2p__mn_dial *d;
    cp2p__tdial_cb cb;
    void *ud;
} mem_dial;

typedef struct mem_conn {
    cp2p__tconn base;
    cp2p_memnet *net;
    cp2p__mn_ep *ep;
    cp2p__tconn_alloc_cb alloc_cb;
    cp2p__tconn_read_cb read_cb;
    cp2p__tconn_shutdown_cb shutdown_cb;
    cp2p__tconn_close_cb close_cb;
} mem_conn;

static_assert(sizeof(cp2p__mn_wreq) <= CP2P__TWRITE_PRIV, "a memnet write fits a cp2p__twrite");

static void on_timer(uv_timer_t *t);
static void on_check(uv_check_t *c);

static void on_idle(uv_idle_t *i)
{
    (void)i;
}

static void run_soon(cp2p_memnet *net)
{
    uv_timer_stop(&net->timer);
    (void)uv_idle_start(&net->idle, on_idle);
    (void)uv_check_start(&net->check, on_check);
}

static uint64_t now_ns(const cp2p_memnet *net)
{
    return uv_now(net->loop) * CP2P__MN_NS_PER_MS;
}

/* Arm the timer for the model's next step: at once when events wait. */
static void kick(cp2p_memnet *net)
{
    if (net->in_run || net->closing) {
        return; /* the run in progress re-arms when it ends */
    }
    uint64_t d = cp2p__mn_deadline(net->mn), now = now_ns(net);
    if (cp2p__mn_next_event_pending(net->mn) || d <= now) {
        run_soon(net);
        return;
    }
    uv_idle_stop(&net->idle);
    uv_check_stop(&net->check);
    if (d == UINT64_MAX) {
        uv_timer_stop(&net->timer);
        return;
    }
    uint64_t ms = (d - now + CP2P__MN_NS_PER_MS - 1) / CP2P__MN_NS_PER_MS;
    (void)uv_timer_start(&net->timer, on_timer, ms, 0);
}

/* ---- byte streams ---- */

static const cp2p__tconn_ops MEM_CONN_OPS;

static mem_conn *conn_wrap(cp2p_memnet *net, cp2p__mn_ep *ep)
{
    mem_conn *mc = cp2p_calloc(1, sizeof(*mc));
    if (mc == NULL) {
        return NULL;
    }
    mc->base.ops = &MEM_CONN_OPS;
    mc->net = net;
    mc->ep = ep;
    ep->ud = mc;
    return mc;
}

static int mc_read_start(cp2p__tconn *t, cp2p__tconn_alloc_cb alloc_cb,
                         cp2p__tconn_read_cb read_cb)
{
    mem_conn *mc = (mem_conn *)t;
    mc->alloc_cb = alloc_cb;
    mc->read_cb = read_cb;
    cp2p__mn_read_start(mc->ep, now_ns(mc->net));
    kick(mc->net);
    return 0;
}

static int mc_read_stop(cp2p__tconn *t)
{
    cp2p__mn_read_stop(((mem_conn *)t)->ep);
    return 0;
}

static int mc_write(cp2p__tconn *t, cp2p__twrite *w, const cp2p_slice *iov, size_t n,
                    cp2p__tconn_write_cb cb)
{
    mem_conn *mc = (mem_conn *)t;
    cp2p__mn_wreq *r = (cp2p__mn_wreq *)w->priv;
    w->conn = t;
    w->cb = cb;
    r->ud = w;
    int rc = cp2p__mn_write(mc->ep, r, iov, n, now_ns(mc->net));
    if (rc == 0) {
        kick(mc->net);
    }
    return rc;
}

static int mc_shutdown(cp2p__tconn *t, cp2p__tconn_shutdown_cb cb)
{
    mem_conn *mc = (mem_conn *)t;
    mc->shutdown_cb = cb;
    int rc = cp2p__mn_shutdown(mc->ep, now_ns(mc->net));
    if (rc == 0) {
        kick(mc->net);
    }
    return rc;
}

static void mc_close(cp2p__tconn *t, cp2p__tconn_close_cb cb)
{
    mem_conn *mc = (mem_conn *)t;
    mc->close_cb = cb;
    cp2p__mn_close(mc->ep, now_ns(mc->net));
    kick(mc->net);
}

static size_t mc_remote_ip(cp2p__tconn *t, uint8_t ip[16])
{
    (void)t;
    (void)ip;
    return 0; /* no IP: the connection manager's per-IP limits do not count it */
}

static int name_addr(const char *name, cp2p_multiaddr **out)
{
    char text[CP2P__MN_NAME_MAX + 16];
    int n = snprintf(text, sizeof(text), "/memory/%s", name);
    if (n < 0 || (size_t)n >= sizeof(text)) {
        return CP2P_EINVAL;
    }
    return cp2p_multiaddr_parse(text, (size_t)n, out);
}

static int mc_addr(cp2p__tconn *t, bool remote, cp2p_multiaddr **out)
{
    mem_conn *mc = (mem_conn *)t;
    return name_addr(remote ? mc->ep->remote : mc->ep->local, out);
}

static const cp2p__tconn_ops MEM_CONN_OPS = {
    .read_start = mc_read_start,
    .read_stop = mc_read_stop,
    .write = mc_write,
    .shutdown = mc_shutdown,
    .close = mc_close,
    .remote_ip = mc_remote_ip,
    .addr = mc_addr,
};

/* ---- running the model ---- */

static void on_accept_ev(cp2p_memnet *net, cp2p__mn_ep *ep)
{
    mem_listener *ml = ep->listener != NULL && ep->listener->open ? ep->listener->ud : NULL;
    mem_conn *mc = ml != NULL && !ep->closed ? conn_wrap(net, ep) : NULL;
    if (mc == NULL) {
        cp2p__mn_close(ep, now_ns(net)); /* nobody takes it: the dialer reads the end */
        return;
    }
    ml->cb(&ml->base, &mc->base, ml->ud);
}

static void on_dial_ev(cp2p_memnet *net, cp2p__mn_dial *d)
{
    if (d->canceled) {
        cp2p__mn_dial_release(d);
        return;
    }
    mem_dial *md = d->ud;
    cp2p__mn_ep *ep = d->ep;
    int status = d->status;
    mem_conn *mc = NULL;
    d->ep = NULL;
    cp2p__mn_dial_release(d);
    if (status == 0 && (mc = conn_wrap(net, ep)) == NULL) {
        cp2p__mn_close(ep, now_ns(net));
        status = CP2P_ENOMEM;
    }
    cp2p__tdial_cb cb = md->cb;
    void *ud = md->ud;
    cp2p_free(md);
    cb(status, mc != NULL ? &mc->base : NULL, ud);
}

static void on_readable_ev(cp2p_memnet *net, cp2p__mn_ep *ep)
{
    mem_conn *mc = ep->ud;
    uint8_t *buf = NULL;
    size_t len = 0;
    if (mc == NULL || ep->closed || !ep->reading) {
        return;
    }
    mc->alloc_cb(&mc->base, &buf, &len);
    if (len == 0) {
        mc->base.why = "out of memory";
        mc->read_cb(&mc->base, CP2P_ELIMIT);
        return;
    }
    /* One read per event: the model queues another while due bytes remain. */
    ptrdiff_t n = cp2p__mn_read(ep, now_ns(net), buf, len);
    if (n == CP2P_ECLOSED) {
        mc->base.why = "connection closed by peer";
    }
    if (n != 0) {
        mc->read_cb(&mc->base, n);
    }
}

static void on_event(cp2p_memnet *net, cp2p__mn_evnode *ev)
{
    switch (ev->type) {
    case CP2P__MN_EV_ACCEPT:
        on_accept_ev(net, cp2p__mn_ev_ep(ev));
        break;
    case CP2P__MN_EV_DIAL_DONE:
        on_dial_ev(net, cp2p__mn_ev_dial(ev));
        break;
    case CP2P__MN_EV_READABLE:
        on_readable_ev(net, cp2p__mn_ev_ep(ev));
        break;
    case CP2P__MN_EV_WRITE_DONE: {
        cp2p__mn_wreq *r = cp2p__mn_ev_wreq(ev);
        cp2p__twrite *w = r->ud;
        w->cb(w, r->status);
        break;
    }
    case CP2P__MN_EV_SHUTDOWN_DONE: {
        cp2p__mn_ep *ep = cp2p__mn_ev_ep(ev);
        mem_conn *mc = ep->ud;
        if (mc != NULL && mc->shutdown_cb != NULL) {
            mc->shutdown_cb(&mc->base, ep->closed ? CP2P_ECANCELED : 0);
        }
        break;
    }
    case CP2P__MN_EV_CLOSED: {
        cp2p__mn_ep *ep = cp2p__mn_ev_ep(ev);
        mem_conn *mc = ep->ud;
        cp2p__mn_ep_free(ep);
        if (mc != NULL) {
            mc->close_cb(&mc->base);
            cp2p_free(mc);
        }
        break;
    }
    default:
        break;
    }
}

static void on_timer(uv_timer_t *t)
{
    run_soon(t->data);
}

static void on_check(uv_check_t *c)
{
    cp2p_memnet *net = c->data;
    net->in_run = true;
    cp2p__mn_advance(net->mn, now_ns(net));
    cp2p__mn_evnode *ev;
    for (int i = 0; i < EVENTS_PER_RUN && (ev = cp2p__mn_next_event(net->mn)) != NULL; i++) {
        on_event(net, ev);
    }
    net->in_run = false;
    kick(net);
}

/* ---- listeners and dials ---- */

static int mem_listen(cp2p__transport *tr, const cp2p_multiaddr *ma, cp2p__taccept_cb cb,
                      void *ud, cp2p__tlistener **out, const char **why)
{
    mem_transport *mt = (mem_transport *)tr;
    char name[CP2P__MN_NAME_MAX + 1];
    bool has_peer;
    cp2p_peer_id peer;
    int rc = cp2p__memory_addr_parse(ma, name, sizeof(name), &has_peer, &peer, why);
    if (rc != 0) {
        return rc == CP2P_ELIMIT ? CP2P_EINVAL : rc;
    }
    if (has_peer) {
        *why = "listen needs /memory/NAME";
        return CP2P_ENOTSUP;
    }
    mem_listener *ml = cp2p_calloc(1, sizeof(*ml));
    if (ml == NULL) {
        return CP2P_ENOMEM;
    }
    ml->base.tr = tr;
    ml->cb = cb;
    ml->ud = ud;
    if ((rc = cp2p__mn_listen(mt->node, name, ml, &ml->l, why)) != 0) {
        cp2p_free(ml);
        return rc;
    }
    *out = &ml->base;
    return 0;
}

static int mem_listener_addr(const cp2p__tlistener *l, cp2p_multiaddr **out)
{
    return name_addr(((const mem_listener *)l)->l->name, out);
}

static void mem_listener_close(cp2p__tlistener *l)
{
    if (l != NULL) {
        cp2p__mn_listener_close(((mem_listener *)l)->l);
        cp2p_free(l);
    }
}

static int mem_dial_start(cp2p__transport *tr, const cp2p_multiaddr *ma, uint64_t timeout_ms,
                          cp2p__tdial_cb cb, void *ud, cp2p__tdial **out, const char **why)
{
    mem_transport *mt = (mem_transport *)tr;
    char name[CP2P__MN_NAME_MAX + 1];
    bool has_peer;
    cp2p_peer_id peer;
    int rc = cp2p__memory_addr_parse(ma, name, sizeof(name), &has_peer, &peer, why);
    if (rc != 0) {
        return rc == CP2P_ELIMIT ? CP2P_EINVAL : rc;
    }
    mem_dial *md = cp2p_calloc(1, sizeof(*md));
    if (md == NULL) {
        return CP2P_ENOMEM;
    }
    md->base.tr = tr;
    md->net = mt->net;
    md->cb = cb;
    md->ud = ud;
    rc = cp2p__mn_dial_start(mt->node, name, timeout_ms * CP2P__MN_NS_PER_MS, now_ns(mt->net), md,
                       &md->d);
    if (rc != 0) {
        cp2p_free(md);
        *why = "memory dial failed";
        return rc;
    }
    kick(mt->net);
    if (out != NULL) {
        *out = &md->base;
    }
    return 0;
}

static void mem_dial_cancel(cp2p__tdial *base)
{
    mem_dial *md = (mem_dial *)base;
    cp2p__tdial_cb cb = md->cb;
    void *ud = md->ud;
    cp2p__mn_dial_cancel(md->d, now_ns(md->net));
    kick(md->net);
    cp2p_free(md);
    cb(CP2P_ECANCELED, NULL, ud);
}

static void mem_transport_free(cp2p__transport *tr)
{
    mem_transport *mt = (mem_transport *)tr;
    cp2p__mn_node_free(mt->node);
    mt->net->ntransports--;
    cp2p_free(mt);
}

static const cp2p__transport_ops MEM_OPS = {
    .listen = mem_listen,
    .listener_addr = mem_listener_addr,
    .listener_close = mem_listener_close,
    .dial = mem_dial_start,
    .dial_cancel = mem_dial_cancel,
    .free = mem_transport_free,
};

int cp2p__memnet_transport_new(cp2p_memnet *net, uv_loop_t *loop, uint32_t notsent_lowat,
                               cp2p__transport **out)
{
    if (net->loop != loop || net->closing) {
        return CP2P_EINVAL;
    }
    mem_transport *mt = cp2p_calloc(1, sizeof(*mt));
    if (mt == NULL) {
        return CP2P_ENOMEM;
    }
    if (cp2p__mn_node_new(net->mn, &mt->node) != 0) {
        cp2p_free(mt);
        return CP2P_ENOMEM;
    }
    cp2p__mn_node_set_notsent_lowat(mt->node, notsent_lowat);
    mt->base.ops = &MEM_OPS;
    mt->base.name = "memory";
    mt->net = net;
    net->ntransports++;
    *out = &mt->base;
    return 0;
}

/* ---- the public network ---- */

int cp2p_memnet_new(uv_loop_t *loop, uint64_t seed, cp2p_memnet **out)
{
    if (loop == NULL || out == NULL) {
        return CP2P_EINVAL;
    }
    cp2p_memnet *net = cp2p_calloc(1, sizeof(*net));
    if (net == NULL) {
        return CP2P_ENOMEM;
    }
    if (cp2p__mn_new(seed, &net->mn) != 0) {
        cp2p_free(net);
        return CP2P_ENOMEM;
    }
    /* Cannot fail on a valid loop. */
    (void)uv_timer_init(loop, &net->timer);
    (void)uv_idle_init(loop, &net->idle);
    (void)uv_check_init(loop, &net->check);
    net->handles_open = 3;
    net->loop = loop;
    net->timer.data = net;
    net->idle.data = net;
    net->check.data = net;
    *out = net;
    return 0;
}

static void on_net_closed(uv_handle_t *h)
{
    cp2p_memnet *net = h->data;
    if (--net->handles_open > 0) {
        return;
    }
    cp2p_memnet_close_cb cb = net->close_cb;
    void *ud = net->close_ud;
    cp2p__mn_free(net->mn); /* with whatever nobody will take any more */
    cp2p_free(net);
    if (cb != NULL) {
        cb(ud);
    }
}

int cp2p_memnet_close(cp2p_memnet *net, cp2p_memnet_close_cb cb, void *ud)
{
    if (net->closing || net->ntransports > 0) {
        return CP2P_ESTATE;
    }
    net->closing = true;
    net->close_cb = cb;
    net->close_ud = ud;
    uv_close((uv_handle_t *)&net->timer, on_net_closed);
    uv_close((uv_handle_t *)&net->idle, on_net_closed);
    uv_close((uv_handle_t *)&net->check, on_net_closed);
    return 0;
}

void cp2p_memnet_set_default_link(cp2p_memnet *net, const cp2p_memnet_link *link)
{
    cp2p__mn_set_default_link(net->mn, link);
}

int cp2p_memnet_link_set(cp2p_memnet *net, const char *a, const char *b,
                         const cp2p_memnet_link *link)
{
    return cp2p__mn_link_set(net->mn, a, b, link, now_ns(net));
}

int cp2p_memnet_cut(cp2p_memnet *net, const char *a, const char *b)
{
    int rc = cp2p__mn_cut(net->mn, a, b, true, now_ns(net));
    kick(net);
    return rc;
}

int cp2p_memnet_heal(cp2p_memnet *net, const char *a, const char *b)
{
    int rc = cp2p__mn_cut(net->mn, a, b, false, now_ns(net));
    kick(net);
    return rc;
}

void cp2p_memnet_stats_get(const cp2p_memnet *net, cp2p_memnet_stats *out)
{
    cp2p__mn_stats(net->mn, out);
}

int cp2p_memnet_link_stats(const cp2p_memnet *net, const char *a, const char *b,
                           cp2p_memnet_stats *out)
{
    return cp2p__mn_link_stats(net->mn, a, b, out);
}
