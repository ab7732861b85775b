/* Reactors on the node API (cp2p_node_switch_*, cp2p/reactor.h): each call is one function run
 * on the loop thread through cp2p_node_call_on_loop, with its arguments (message bytes
 * included) in a heap block the node frees if the caller stops waiting first. The switch
 * itself is the loop API's (src/reactor/reactor_uv.c): its per-reactor worker pools are how
 * receive leaves the loop. */
#include <string.h>

#include <cp2p/node.h>
#include <cp2p/reactor.h>

#include "util/alloc.h"
#include "util/limits.h"

struct cp2p_node_switch {
    cp2p_node *node;
    cp2p_switch *sw; /* the loop's; touched only on the loop */
    cp2p_node_call *restarting; /* the restart call waiting for the stop (loop only) */
};

/* Control calls (start, stop, stats) wait this long for the loop. */
#define CALL_MS CP2P_NODE_CONTROL_TIMEOUT_MS

typedef struct {
    cp2p_node_switch *ns;
    const cp2p_switch_config *cfg;
    const cp2p_reactor_desc *reactors;
    size_t n;
    void *const *uds;
} start_args;

static void do_start(cp2p_node_call *call, cp2p_host *host, void *ud)
{
    start_args *a = ud;
    cp2p_switch *sw = NULL;
    int rc = cp2p_switch_new(host, a->cfg, &sw);
    for (size_t i = 0; rc == 0 && i < a->n; i++) {
        cp2p_reactor *r;
        rc = cp2p_switch_add_reactor(sw, &a->reactors[i], a->uds != NULL ? a->uds[i] : NULL, &r);
    }
    if (rc == 0) {
        rc = cp2p_switch_start(sw);
    }
    if (rc != 0) {
        cp2p_switch_free(sw); /* NULL when cp2p_switch_new failed */
    } else {
        a->ns->sw = sw;
    }
    cp2p_node_call_done(call, rc);
}

int cp2p_node_switch_start(cp2p_node *n, const cp2p_switch_config *cfg,
                           const cp2p_reactor_desc *reactors, size_t n_reactors, void *const *uds,
                           cp2p_node_switch **out)
{
    if (n == NULL || reactors == NULL || n_reactors == 0 || out == NULL) {
        return CP2P_EINVAL;
    }
    cp2p_node_switch *ns = cp2p_calloc(1, sizeof(*ns));
    if (ns == NULL) {
        return CP2P_ENOMEM;
    }
    ns->node = n;
    /* The arguments are the caller's and read only while do_start runs; on a timeout the
     * call may still be running, so they must not be freed then: the block is leaked on that
     * path (ns with it), which a control call reaching its 10 s limit makes acceptable. */
    start_args *a = cp2p_malloc(sizeof(*a));
    if (a == NULL) {
        cp2p_free(ns);
        return CP2P_ENOMEM;
    }
    *a = (start_args){ns, cfg, reactors, n_reactors, uds};
    int rc = cp2p_node_call_on_loop(n, do_start, a, NULL, CALL_MS);
    if (rc == CP2P_ETIMEDOUT) {
        return rc;
    }
    cp2p_free(a);
    if (rc != 0) {
        cp2p_free(ns);
        return rc;
    }
    *out = ns;
    return 0;
}

/* A send: the message is copied into the block. */
typedef struct {
    cp2p_switch **swp;
    cp2p_peer_id peer;
    uint8_t ch;
    bool wait;
    uint64_t timeout_ms;
    size_t queued;
    cp2p_node_call *call;
    size_t len;
    uint8_t msg[];
} send_args;

static void on_sent(cp2p_reactor_peer *p, uint8_t ch, int status, void *ud)
{
    send_args *a = ud;
    (void)p;
    (void)ch;
    cp2p_node_call_done(a->call, status);
}

static void do_send(cp2p_node_call *call, cp2p_host *host, void *ud)
{
    send_args *a = ud;
    (void)host;
    cp2p_reactor_peer *p = cp2p_switch_find_peer(*a->swp, &a->peer);
    int rc;
    if (p == NULL) {
        rc = CP2P_ENOENT;
    } else if (!a->wait) {
        rc = cp2p_reactor_peer_try_send(p, a->ch, a->msg, a->len);
    } else {
        a->call = call;
        rc = cp2p_reactor_peer_send(p, a->ch, a->msg, a->len, a->timeout_ms, on_sent, a);
        if (rc == 0) {
            return; /* on_sent completes the call */
        }
    }
    cp2p_node_call_done(call, rc);
}

static void do_broadcast(cp2p_node_call *call, cp2p_host *host, void *ud)
{
    send_args *a = ud;
    (void)host;
    a->queued = cp2p_switch_broadcast(*a->swp, a->ch, a->msg, a->len);
    cp2p_node_call_done(call, 0);
}

static int send_call(cp2p_node_switch *ns, const cp2p_peer_id *peer, uint8_t ch, const void *msg,
                     size_t len, bool wait, uint64_t timeout_ms, cp2p_node_call_fn fn,
                     size_t *queued)
{
    if (ns == NULL || (msg == NULL && len > 0) || (fn == do_send && peer == NULL)) {
        return CP2P_EINVAL;
    }
    if (len > CP2P_CHANNEL_MAX_MESSAGE) {
        return CP2P_ELIMIT;
    }
    send_args *a = cp2p_malloc(sizeof(*a) + len);
    if (a == NULL) {
        return CP2P_ENOMEM;
    }
    *a = (send_args){.swp = &ns->sw, .ch = ch, .wait = wait, .timeout_ms = timeout_ms,
                     .len = len};
    if (peer != NULL) {
        a->peer = *peer;
    }
    if (len > 0) {
        memcpy(a->msg, msg, len);
    }
    /* The loop answers a waiting send by its own timeout; the call's is a margin above. */
    int rc = cp2p_node_call_on_loop(ns->node, fn, a, cp2p_free,
                                    (wait ? timeout_ms : 0) + CALL_MS);
    if (rc == 0) { /* fn done: the block is ours again (on an error the node frees it) */
        if (queued != NULL) {
            *queued = a->queued;
        }
        cp2p_free(a);
    }
    return rc;
}

int cp2p_node_switch_try_send(cp2p_node_switch *ns, const cp2p_peer_id *peer, uint8_t ch,
                              const void *msg, size_t len)
{
    return send_call(ns, peer, ch, msg, len, false, 0, do_send, NULL);
}

int cp2p_node_switch_send(cp2p_node_switch *ns, const cp2p_peer_id *peer, uint8_t ch,
                          const void *msg, size_t len, uint64_t timeout_ms)
{
    if (timeout_ms == 0) {
        return CP2P_EINVAL;
    }
    return send_call(ns, peer, ch, msg, len, true, timeout_ms, do_send, NULL);
}

int cp2p_node_switch_broadcast(cp2p_node_switch *ns, uint8_t ch, const void *msg, size_t len,
                               size_t *queued)
{
    size_t q = 0;
    int rc = send_call(ns, NULL, ch, msg, len, false, 0, do_broadcast, &q);
    if (queued != NULL) {
        *queued = rc == 0 ? q : 0;
    }
    return rc;
}

typedef struct {
    cp2p_switch **swp;
    cp2p_switch_stats st;
} stats_args;

static void do_stats(cp2p_node_call *call, cp2p_host *host, void *ud)
{
    stats_args *a = ud;
    (void)host;
    cp2p_switch_stats_get(*a->swp, &a->st);
    cp2p_node_call_done(call, 0);
}

int cp2p_node_switch_stats(cp2p_node_switch *ns, cp2p_switch_stats *out)
{
    if (ns == NULL || out == NULL) {
        return CP2P_EINVAL;
    }
    stats_args *a = cp2p_calloc(1, sizeof(*a));
    if (a == NULL) {
        return CP2P_ENOMEM;
    }
    a->swp = &ns->sw;
    int rc = cp2p_node_call_on_loop(ns->node, do_stats, a, cp2p_free, CALL_MS);
    if (rc == 0) {
        *out = a->st;
        cp2p_free(a);
    }
    return rc;
}

static void on_switch_closed(void *ud)
{
    cp2p_node_call_done(ud, 0);
}

static void do_stop(cp2p_node_call *call, cp2p_host *host, void *ud)
{
    cp2p_node_switch *ns = ud;
    (void)host;
    int rc = cp2p_switch_close(ns->sw, on_switch_closed, call);
    ns->sw = NULL;
    if (rc != 0) {
        cp2p_node_call_done(call, rc);
    }
}

/* Restart: cp2p_switch_stop, then (its callback) cp2p_switch_reset and cp2p_switch_start. */
static void on_restart_stopped(void *ud)
{
    cp2p_node_switch *ns = ud;
    cp2p_node_call *call = ns->restarting;
    ns->restarting = NULL;
    int rc = cp2p_switch_reset(ns->sw);
    if (rc == 0) {
        rc = cp2p_switch_start(ns->sw);
    }
    cp2p_node_call_done(call, rc);
}

static void do_restart(cp2p_node_call *call, cp2p_host *host, void *ud)
{
    cp2p_node_switch *ns = ud;
    (void)host;
    if (ns->restarting != NULL) {
        cp2p_node_call_done(call, CP2P_ESTATE);
        return;
    }
    ns->restarting = call;
    int rc = cp2p_switch_stop(ns->sw, on_restart_stopped, ns);
    if (rc != 0) {
        ns->restarting = NULL;
        cp2p_node_call_done(call, rc);
    }
}

int cp2p_node_switch_restart(cp2p_node_switch *ns)
{
    if (ns == NULL) {
        return CP2P_EINVAL;
    }
    return cp2p_node_call_on_loop(ns->node, do_restart, ns, NULL, CALL_MS);
}

void cp2p_node_switch_stop(cp2p_node_switch *ns)
{
    if (ns == NULL) {
        return;
    }
    /* While the node stops (CP2P_ECANCELED) the call never runs and the host frees the switch.
     * A timeout leaves the handle to the loop (leaked, not freed under it). */
    int rc = cp2p_node_call_on_loop(ns->node, do_stop, ns, NULL, CALL_MS);
    if (rc != CP2P_ETIMEDOUT) {
        cp2p_free(ns);
    }
}
