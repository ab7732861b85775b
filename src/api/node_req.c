/* Request-response on the node API (cp2p_node_request, cp2p_node_set_request_handler; see
 * cp2p/node.h): each call is one job run on the loop thread through cp2p_node_call_on_loop;
 * inbound requests for a handler on the worker pool travel as node jobs whose answer (the
 * handler's response, or a refusal) comes back to the loop. */
#include <string.h>

#include <cp2p/node.h>
#include <cp2p/reqresp.h>

#include "api/node_internal.h"
#include "util/alloc.h"
#include "util/clock.h"
#include "util/limits.h"
#include "util/log_internal.h"

/* A registered request handler; lives until the node is freed (jobs in flight point at it;
 * replacing a handler takes effect for requests that arrive afterwards). */
typedef struct node_proto {
    struct node_proto *next;
    cp2p_node *node;
    char *protocol;
    cp2p_node_request_handler cb;
    void *ud;
    cp2p_node_exec exec;
} node_proto;

struct cp2p__node_req {
    node_proto *protos;
};

void cp2p__node_req_unregister(cp2p_node *n, cp2p__node_req *st)
{
    cp2p_host *h = cp2p__node_host(n);
    for (node_proto *p = st != NULL ? st->protos : NULL; h != NULL && p != NULL; p = p->next) {
        (void)!cp2p_reqresp_unregister(h, p->protocol);
    }
}

void cp2p__node_req_free(cp2p__node_req *st)
{
    if (st == NULL) {
        return;
    }
    for (node_proto *p = st->protos, *next; p != NULL; p = next) {
        next = p->next;
        cp2p_free(p->protocol);
        cp2p_free(p);
    }
    cp2p_free(st);
}

/* ---- inbound requests ---- */

/* An inbound request handed to the worker pool, and its answer on the way back. */
typedef struct req_job {
    cp2p__node_job job;
    cp2p_reqresp_responder *r;
    node_proto *proto;
    cp2p_peer_id from;
    uint8_t *req;
    size_t len;
    int rc;
    cp2p_buf resp;
} req_job;

static void req_free(cp2p__node_job *j)
{
    req_job *q = (req_job *)j;
    cp2p_free(q->req);
    cp2p_buf_fini(&q->resp);
    cp2p_free(q);
}

static bool req_work(cp2p__node_job *j)
{
    req_job *q = (req_job *)j;
    q->rc = q->proto->cb(q->proto->ud, &q->from, q->req, q->len, &q->resp);
    return true;
}

/* Loop thread: send the handler's answer, or refuse (the handler failed, or the node stopped
 * before it ran). */
static void req_answer(cp2p_node *n, cp2p__node_job *j, bool canceled)
{
    req_job *q = (req_job *)j;
    if (!canceled && q->rc == 0) {
        (void)!cp2p_reqresp_respond(q->r, q->resp.ptr, q->resp.len);
        return;
    }
    cp2p_reqresp_refuse(q->r);
    CP2P__NODE_COUNT(n, requests_refused_handler);
}

static const cp2p__node_job_ops REQ_OPS = {req_work, req_answer, req_free};

static void on_inbound(cp2p_reqresp_responder *r, cp2p_conn *conn, const uint8_t *req,
                       size_t len, void *ud)
{
    node_proto *p = ud;
    cp2p_node *n = p->node;
    req_job *q = cp2p_calloc(1, sizeof(*q));
    if (q == NULL) {
        cp2p_reqresp_refuse(r);
        return;
    }
    q->job.ops = &REQ_OPS;
    q->r = r;
    q->proto = p;
    q->from = *cp2p_conn_peer_id(conn);
    cp2p_buf_init(&q->resp, cp2p__node_config(n)->max_response_bytes);
    if (p->exec == CP2P_NODE_ON_LOOP) {
        CP2P__NODE_COUNT(n, requests_handled);
        q->rc = p->cb(p->ud, &q->from, req, len, &q->resp);
        cp2p__node_job_finish(n, &q->job, false);
        return;
    }
    q->req = len > 0 ? cp2p__memdup(req, len) : NULL;
    q->len = len;
    if ((len > 0 && q->req == NULL) || CP2P__NODE_SUBMIT(n, &q->job, requests_handled) != 0) {
        /* The pool is saturated: refuse now rather than queue without bound (handled counts
         * every inbound request, as on the loop). */
        CP2P__NODE_COUNT(n, requests_handled);
        CP2P__NODE_COUNT(n, requests_refused_pool_full);
        CP2P_LOG(CP2P_LOG_DEBUG, "node", cp2p_conn_id(conn), "node.pool_full request refused");
        cp2p_reqresp_refuse(r);
        req_free(&q->job);
    }
}


/* ---- calls ---- */

typedef struct {
    cp2p_node *node;
    char *protocol;
    /* request */
    cp2p_peer_id peer;
    uint8_t *data;
    size_t len;
    uint64_t timeout_ms;
    uint64_t start_ns; /* when the caller asked (cp2p__mono_ns): the latency histogram's start */
    uint8_t *resp; /* the answer, owned until the caller takes it */
    size_t resp_len;
    cp2p_node_call *call;
    /* set handler */
    cp2p_node_request_handler cb;
    void *ud;
    cp2p_node_exec exec;
} req_call;

static void call_free(void *ud)
{
    req_call *c = ud;
    cp2p_free(c->protocol);
    cp2p_free(c->data);
    cp2p_free(c->resp);
    cp2p_free(c);
}

static req_call *call_new(cp2p_node *n, const char *protocol)
{
    req_call *c = cp2p_calloc(1, sizeof(*c));
    if (c != NULL && (c->protocol = cp2p__memdup(protocol, strlen(protocol) + 1)) == NULL) {
        cp2p_free(c);
        c = NULL;
    }
    if (c != NULL) {
        c->node = n;
    }
    return c;
}

static void request_done(req_call *c, int status)
{
    CP2P__NODE_COUNT(c->node, requests_sent);
    if (status != 0) {
        CP2P__NODE_COUNT(c->node, requests_failed);
    } else {
        cp2p__node_observe_request(c->node, (double)(cp2p__mono_ns() - c->start_ns) / 1e9);
    }
    cp2p_node_call_done(c->call, status);
}

static void on_response(cp2p_conn *conn, int status, const uint8_t *resp, size_t len, void *ud)
{
    req_call *c = ud;
    (void)conn;
    if (status == 0 && len > 0) {
        c->resp = cp2p__memdup(resp, len);
        c->resp_len = len;
        if (c->resp == NULL) {
            status = CP2P_ENOMEM;
        }
    }
    request_done(c, status);
}

static int start_request(req_call *c, cp2p_conn *conn)
{
    const cp2p_node_config *nc = cp2p__node_config(c->node);
    cp2p_reqresp_config cfg;
    cp2p_reqresp_config_default(&cfg);
    cfg.max_request_bytes = nc->max_request_bytes;
    cfg.max_response_bytes = nc->max_response_bytes;
    cfg.timeout_ms = c->timeout_ms;
    return cp2p_reqresp_request(conn, c->protocol, &cfg, c->data, c->len, on_response, c);
}

/* The dial a request needed is done: send the request, or report why not. */
static void on_dialed(cp2p_host *h, int status, cp2p_conn *conn, void *ud)
{
    req_call *c = ud;
    (void)h;
    if (status == 0) {
        status = start_request(c, conn);
    }
    if (status != 0) {
        request_done(c, status);
    }
}

static void run_request(cp2p_node_call *call, cp2p_host *h, void *ud)
{
    req_call *c = ud;
    c->call = call;
    cp2p_conn *conn = cp2p_host_conn_to(h, &c->peer);
    /* Not connected: dial the peer from its peerstore addresses first. */
    int rc = conn != NULL ? start_request(c, conn) : cp2p_host_dial_peer(h, &c->peer, on_dialed, c);
    if (rc != 0) {
        request_done(c, rc);
    }
}

int cp2p_node_request(cp2p_node *n, const cp2p_peer_id *peer, const char *protocol,
                      const void *req, size_t len, uint64_t timeout_ms, uint8_t **resp,
                      size_t *resp_len)
{
    if (n == NULL || peer == NULL || protocol == NULL || resp == NULL || resp_len == NULL ||
        (req == NULL && len > 0) || timeout_ms == 0) {
        return CP2P_EINVAL;
    }
    if (len > cp2p__node_config(n)->max_request_bytes) {
        return CP2P_ELIMIT;
    }
    req_call *c = call_new(n, protocol);
    if (c == NULL || (len > 0 && (c->data = cp2p__memdup(req, len)) == NULL)) {
        if (c != NULL) {
            call_free(c);
        }
        return CP2P_ENOMEM;
    }
    c->peer = *peer;
    c->len = len;
    c->timeout_ms = timeout_ms;
    c->start_ns = cp2p__mono_ns();
    int rc = cp2p_node_call_on_loop(n, run_request, c, call_free, timeout_ms);
    if (rc == 0) {
        *resp = c->resp;
        *resp_len = c->resp_len;
        c->resp = NULL;
        call_free(c);
    }
    return rc;
}

static void run_set_handler(cp2p_node_call *call, cp2p_host *h, void *ud)
{
    req_call *c = ud;
    cp2p_node *n = c->node;
    cp2p__node_req **slot = cp2p__node_req_slot(n);
    if (*slot == NULL && (*slot = cp2p_calloc(1, sizeof(**slot))) == NULL) {
        cp2p_node_call_done(call, CP2P_ENOMEM);
        return;
    }
    node_proto *p = (*slot)->protos;
    while (p != NULL && strcmp(p->protocol, c->protocol) != 0) {
        p = p->next;
    }
    if (p == NULL) {
        if ((p = cp2p_calloc(1, sizeof(*p))) == NULL) {
            cp2p_node_call_done(call, CP2P_ENOMEM);
            return;
        }
        p->protocol = c->protocol;
        c->protocol = NULL;
        p->node = n;
        p->next = (*slot)->protos;
        (*slot)->protos = p;
    }
    /* Jobs already queued keep running the old handler's pointer until answered; replacing a
     * handler takes effect for requests that arrive afterwards. */
    p->cb = c->cb;
    p->ud = c->ud;
    p->exec = c->exec;
    const cp2p_node_config *nc = cp2p__node_config(n);
    cp2p_reqresp_config rc;
    cp2p_reqresp_config_default(&rc);
    rc.max_request_bytes = nc->max_request_bytes;
    rc.max_response_bytes = nc->max_response_bytes;
    cp2p_node_call_done(call, cp2p_reqresp_register(h, p->protocol, &rc, on_inbound, p));
}

int cp2p_node_set_request_handler(cp2p_node *n, const char *protocol,
                                  cp2p_node_request_handler cb, void *ud, cp2p_node_exec exec)
{
    if (n == NULL || protocol == NULL || cb == NULL ||
        (exec != CP2P_NODE_ON_LOOP && exec != CP2P_NODE_ON_POOL) ||
        (exec == CP2P_NODE_ON_POOL && cp2p__node_workers(n) == 0)) {
        return CP2P_EINVAL;
    }
    req_call *c = call_new(n, protocol);
    if (c == NULL) {
        return CP2P_ENOMEM;
    }
    c->cb = cb;
    c->ud = ud;
    c->exec = exec;
    int rc = cp2p_node_call_on_loop(n, run_set_handler, c, call_free,
                                    CP2P_NODE_CONTROL_TIMEOUT_MS);
    if (rc == 0) {
        call_free(c);
    }
    return rc;
}
