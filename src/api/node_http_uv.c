/* The node's HTTP API (cp2p_node_api_*, docs/API.md): libmicrohttpd serves it on its own
 * threads, one per connection (a handler may wait seconds for a dial or a ping without holding
 * up other clients), and those threads only use the thread-safe node API. What needs the host
 * -- its counters, its connections -- runs on the loop through cp2p_node_call_on_loop and is
 * copied out; JSON is built with jansson.
 *
 * Request life: libmicrohttpd calls on_uri with the raw request target (before it parses the
 * query itself, which we do not use: node_http.c parses it, fuzzed), then on_request once with
 * the headers, once per body chunk, and once at the end. Everything wrong with a request is
 * answered on the first call when it can be (path, method, token, declared sizes), with a JSON
 * error and a count in cp2p_http_requests_rejected_total{reason}. This file is named *_uv.c
 * because it is an I/O binding (sockets, the clock: uv_hrtime, uv_ip4_addr). */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <microhttpd.h>
#include <sodium.h>
#include <uv.h>

#include <cp2p/artifact.h>
#include <cp2p/node.h>
#include <cp2p/protocols.h>
#include <cp2p/reactor.h>

#include "api/node_http.h"
#include "api/node_internal.h"
#include <cp2p/host_info.h>
#include "util/alloc.h"
#include "util/limits.h"
#include "util/log_internal.h"

/* Our choices: the quick loop calls (id, peers, healthz, a metrics refresh) answer in
 * microseconds unless the loop is stuck, which is what /healthz reports; ping counts as kubo's
 * default at most; one JSON answer is at most a few hundred connections' worth. */
#define API_QUICK_MS 5000
#define API_PING_MAX 10
#define API_PING_DEFAULT 3
#define API_JSON_MAX (4u * 1024 * 1024)

/* ---- endpoints and rejection reasons (bounded label values) ---- */

typedef enum {
    EP_METRICS,
    EP_HEALTHZ,
    EP_ID,
    EP_PEERS,
    EP_CONNECT,
    EP_DISCONNECT,
    EP_PING,
    EP_PUBSUB_PUB,
    EP_PUBSUB_PEERS,
    EP_PUBSUB_SUB,
    EP_DHT_PUT,
    EP_DHT_GET,
    EP_DHT_FINDPEER,
    EP_DHT_PROVIDE,
    EP_DHT_FINDPROVS,
    EP_REQ,
    EP_ARTIFACT_PUT,
    EP_ARTIFACT_GET,
    EP_ARTIFACT_LS,
    EP_ARTIFACT_STAT,
    EP_CHANNELS,
    EP_OVERLAY_SEND,
    EP_OVERLAY_ROUTES,
    EP_OVERLAY_TOPOLOGY,
    EP_OTHER, /* unknown paths */
    EP_COUNT
} endpoint;

static const struct {
    const char *path, *label;
    bool get; /* GET (and HEAD); else POST, as kubo's RPC */
} endpoints[EP_COUNT] = {
    [EP_METRICS] = {"/metrics", "metrics", true},
    [EP_HEALTHZ] = {"/healthz", "healthz", true},
    [EP_ID] = {"/api/v0/id", "id", false},
    [EP_PEERS] = {"/api/v0/peers", "peers", false},
    [EP_CONNECT] = {"/api/v0/connect", "connect", false},
    [EP_DISCONNECT] = {"/api/v0/disconnect", "disconnect", false},
    [EP_PING] = {"/api/v0/ping", "ping", false},
    [EP_PUBSUB_PUB] = {"/api/v0/pubsub/pub", "pubsub_pub", false},
    [EP_PUBSUB_PEERS] = {"/api/v0/pubsub/peers", "pubsub_peers", false},
    [EP_PUBSUB_SUB] = {"/api/v0/pubsub/sub", "pubsub_sub", false},
    [EP_DHT_PUT] = {"/api/v0/dht/put", "dht_put", false},
    [EP_DHT_GET] = {"/api/v0/dht/get", "dht_get", false},
    [EP_DHT_FINDPEER] = {"/api/v0/dht/findpeer", "dht_findpeer", false},
    [EP_DHT_PROVIDE] = {"/api/v0/dht/provide", "dht_provide", false},
    [EP_DHT_FINDPROVS] = {"/api/v0/dht/findprovs", "dht_findprovs", false},
    [EP_REQ] = {"/api/v0/req", "req", false},
    [EP_ARTIFACT_PUT] = {"/api/v0/artifact/put", "artifact_put", false},
    [EP_ARTIFACT_GET] = {"/api/v0/artifact/get", "artifact_get", false},
    [EP_ARTIFACT_LS] = {"/api/v0/artifact/ls", "artifact_ls", false},
    [EP_ARTIFACT_STAT] = {"/api/v0/artifact/stat", "artifact_stat", false},
    [EP_CHANNELS] = {"/api/v0/channels", "channels", false},
    [EP_OVERLAY_SEND] = {"/api/v0/overlay/send", "overlay_send", false},
    [EP_OVERLAY_ROUTES] = {"/api/v0/overlay/routes", "overlay_routes", false},
    [EP_OVERLAY_TOPOLOGY] = {"/api/v0/overlay/topology", "overlay_topology", false},
    [EP_OTHER] = {NULL, "other", false},
};

typedef enum {
    R_NOT_FOUND,
    R_METHOD,
    R_UNAUTHORIZED,
    R_FORBIDDEN,
    R_URL_TOO_LONG,
    R_BODY_TOO_LARGE,
    R_BAD_QUERY,
    R_BAD_ARGUMENT,
    R_COUNT
} reject_reason;

static const char *const reason_names[R_COUNT] = {
    [R_NOT_FOUND] = "not_found",           [R_METHOD] = "method_not_allowed",
    [R_UNAUTHORIZED] = "unauthorized",     [R_FORBIDDEN] = "forbidden",
    [R_URL_TOO_LONG] = "url_too_long",     [R_BODY_TOO_LARGE] = "body_too_large",
    [R_BAD_QUERY] = "bad_query",           [R_BAD_ARGUMENT] = "bad_argument",
};

/* kubo's error types (the "Code" of an error body): cmds.ErrNormal, ErrClient, ErrNotFound. */
#define KUBO_ERR_NORMAL 0
#define KUBO_ERR_CLIENT 1
#define KUBO_ERR_NOT_FOUND 3

/* ---- the API and its registry ---- */

/* What a loop call may still touch after the API is gone: the registry and the host metrics
 * state, freed by the last of the API and the calls in flight. */
typedef struct api_shared {
    atomic_int refs;
    cp2p_metrics *reg;
    cp2p_node *node;
    cp2p_host_metrics *hm; /* loop thread only, as the two below */
    cp2p__stats_metrics *psm, *kadm, *nodem;
    cp2p__reqresp_metrics *rrm;
    /* pubsub/sub: the topics the API joined and their HTTP subscribers, under sub_mu (taken
     * by HTTP threads and, briefly, by the loop's message handler); sub_op_mu serialises the
     * joins and leaves (HTTP threads only, held across the loop call). */
    pthread_mutex_t sub_mu, sub_op_mu;
    struct sub_topic *orphans; /* leaves that failed (sub_op_mu; then cp2p_node_api_stop) */
    struct sub_topic *topics;
    size_t nsubs;
    bool closing;
    cp2p_metric *subs_gauge, *subs_dropped;
    _Atomic(cp2p_node_artifacts *) artifacts; /* artifact/... endpoints (node_artifact_uv.c) */
} api_shared;

struct cp2p_node_api {
    cp2p_node *node;
    struct MHD_Daemon *d;
    api_shared *sh;
    cp2p_node_api_config cfg; /* listen and token cleared: they are not kept */
    bool has_token;
    uint8_t token_hash[crypto_generichash_BYTES];
    char addr[CP2P_NODE_API_ADDR_MAX];
    cp2p_metric_family *f_requests; /* {endpoint, code}, looked up per answer */
    cp2p_metric *latency[EP_COUNT];
    cp2p_metric *req_latency; /* cp2p_node_request_duration_seconds, set on the node */
    cp2p_metric *rejected[R_COUNT];
    cp2p_metric *refresh_failed;
    cp2p_metric *connections;
};

typedef struct api_req {
    cp2p_node_api *api;
    char *target;     /* the raw request target, NULL when over max_url */
    size_t target_len;
    bool started;     /* the first call (headers) is done */
    bool answered;    /* a response is queued */
    endpoint ep;
    cp2p_buf body;
    uint64_t t0_ns;
} api_req;

static void shared_ref(api_shared *sh)
{
    atomic_fetch_add_explicit(&sh->refs, 1, memory_order_relaxed);
}

static void shared_unref(void *p)
{
    api_shared *sh = p;
    if (atomic_fetch_sub_explicit(&sh->refs, 1, memory_order_acq_rel) == 1) {
        cp2p_host_metrics_free(sh->hm);
        cp2p__stats_metrics_free(sh->psm);
        cp2p__stats_metrics_free(sh->kadm);
        cp2p__stats_metrics_free(sh->nodem);
        cp2p__reqresp_metrics_free(sh->rrm);
        cp2p_metrics_free(sh->reg);
        pthread_mutex_destroy(&sh->sub_mu);
        pthread_mutex_destroy(&sh->sub_op_mu);
        cp2p_free(sh);
    }
}

static const double latency_buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                         0.1,    0.25,  0.5,    1,     2.5,   5,     10, 30};

static int register_http_metrics(cp2p_node_api *a)
{
    cp2p_metrics *reg = a->sh->reg;
    cp2p_metric_family *f;
    int rc;
    cp2p_metric_desc d = {
        .type = CP2P_METRIC_COUNTER, .name = "cp2p_http_requests_total",
        .help = "HTTP API requests answered, by endpoint and status code.",
        .labels = {"endpoint", "code"}, .max_series = 256};
    if ((rc = cp2p_metrics_register(reg, &d, &a->f_requests)) != 0) {
        return rc;
    }
    d = (cp2p_metric_desc){
        .type = CP2P_METRIC_HISTOGRAM, .name = "cp2p_http_request_duration_seconds",
        .help = "Time from the request line to the queued answer, by endpoint.",
        .labels = {"endpoint"}, .buckets = latency_buckets,
        .n_buckets = sizeof(latency_buckets) / sizeof(latency_buckets[0])};
    if ((rc = cp2p_metrics_register(reg, &d, &f)) != 0) {
        return rc;
    }
    for (size_t i = 0; i < EP_COUNT && rc == 0; i++) {
        rc = cp2p_metrics_series(f, &endpoints[i].label, 1, &a->latency[i]);
    }
    /* The node's request-response latency, observed by the node as each request is answered
     * (set on the node once the API starts, cleared when it stops). */
    d = (cp2p_metric_desc){
        .type = CP2P_METRIC_HISTOGRAM, .name = "cp2p_node_request_duration_seconds",
        .help = "Request-response requests sent through the node and answered: time from the "
                "call to the response, dial included.",
        .buckets = latency_buckets,
        .n_buckets = sizeof(latency_buckets) / sizeof(latency_buckets[0])};
    if (rc != 0 || (rc = cp2p_metrics_register(reg, &d, &f)) != 0 ||
        (rc = cp2p_metrics_series(f, NULL, 0, &a->req_latency)) != 0) {
        return rc;
    }
    d = (cp2p_metric_desc){
        .type = CP2P_METRIC_COUNTER, .name = "cp2p_http_requests_rejected_total",
        .help = "HTTP API requests refused before reaching the node, by reason.",
        .labels = {"reason"}};
    if (rc != 0 || (rc = cp2p_metrics_register(reg, &d, &f)) != 0) {
        return rc;
    }
    for (size_t i = 0; i < R_COUNT && rc == 0; i++) {
        rc = cp2p_metrics_series(f, &reason_names[i], 1, &a->rejected[i]);
    }
    d = (cp2p_metric_desc){
        .type = CP2P_METRIC_COUNTER, .name = "cp2p_http_metrics_refresh_failures_total",
        .help = "Scrapes that rendered the previous host values because the loop did not "
                "refresh them in time."};
    if (rc != 0 || (rc = cp2p_metrics_register(reg, &d, &f)) != 0 ||
        (rc = cp2p_metrics_series(f, NULL, 0, &a->refresh_failed)) != 0) {
        return rc;
    }
    d = (cp2p_metric_desc){.type = CP2P_METRIC_GAUGE, .name = "cp2p_http_pubsub_subscribers",
                           .help = "pubsub/sub streams open now."};
    if ((rc = cp2p_metrics_register(reg, &d, &f)) != 0 ||
        (rc = cp2p_metrics_series(f, NULL, 0, &a->sh->subs_gauge)) != 0) {
        return rc;
    }
    d = (cp2p_metric_desc){
        .type = CP2P_METRIC_COUNTER, .name = "cp2p_http_pubsub_subscribers_dropped_total",
        .help = "pubsub/sub streams ended because the client did not read (its queue was "
                "full)."};
    if ((rc = cp2p_metrics_register(reg, &d, &f)) != 0 ||
        (rc = cp2p_metrics_series(f, NULL, 0, &a->sh->subs_dropped)) != 0) {
        return rc;
    }
    d = (cp2p_metric_desc){.type = CP2P_METRIC_GAUGE, .name = "cp2p_http_connections",
                           .help = "HTTP API connections open now."};
    if ((rc = cp2p_metrics_register(reg, &d, &f)) != 0) {
        return rc;
    }
    return cp2p_metrics_series(f, NULL, 0, &a->connections);
}

/* ---- answers ---- */

static void count_answer(api_req *r, unsigned status)
{
    char code[8];
    cp2p_metric *m = NULL;
    snprintf(code, sizeof(code), "%u", status);
    const char *values[2] = {endpoints[r->ep].label, code};
    if (cp2p_metrics_series(r->api->f_requests, values, 2, &m) == 0) {
        cp2p_metric_inc(m);
    }
    cp2p_metric_observe(r->api->latency[r->ep], (double)(uv_hrtime() - r->t0_ns) / 1e9);
}

/* Queue `len` bytes at `body` (taken: freed with cp2p_free by libmicrohttpd). */
static enum MHD_Result respond(struct MHD_Connection *con, api_req *r, unsigned status,
                               const char *ctype, uint8_t *body, size_t len)
{
    static const char oom[] = "out of memory\n";
    struct MHD_Response *resp =
        body != NULL ? MHD_create_response_from_buffer_with_free_callback(len, body, cp2p_free)
                     : NULL;
    if (resp == NULL) {
        cp2p_free(body);
        status = MHD_HTTP_INTERNAL_SERVER_ERROR;
        ctype = "text/plain";
        resp = MHD_create_response_from_buffer(sizeof(oom) - 1, (void *)oom,
                                               MHD_RESPMEM_PERSISTENT);
        if (resp == NULL) {
            return MHD_NO;
        }
    }
    (void)MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    (void)MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED) {
        (void)MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW,
                                      endpoints[r->ep].get ? "GET, HEAD" : "POST");
    } else if (status == MHD_HTTP_UNAUTHORIZED) {
        (void)MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
    }
    enum MHD_Result ret = MHD_queue_response(con, status, resp);
    MHD_destroy_response(resp);
    r->answered = true;
    count_answer(r, status);
    return ret;
}

static int dump_cb(const char *buffer, size_t size, void *data)
{
    return cp2p_buf_append(data, buffer, size) == 0 ? 0 : -1;
}

/* Answer with JSON `j` (consumed) of at most max bytes, followed by a newline as kubo's
 * answers are. */
static enum MHD_Result respond_json_max(struct MHD_Connection *con, api_req *r,
                                        unsigned status, json_t *j, size_t max)
{
    cp2p_buf b;
    uint8_t *body = NULL;
    cp2p_buf_init(&b, max);
    if (j != NULL && json_dump_callback(j, dump_cb, &b, JSON_COMPACT) == 0 &&
        cp2p_buf_append_byte(&b, '\n') == 0) {
        size_t len = cp2p_buf_take(&b, &body);
        json_decref(j);
        return respond(con, r, status, "application/json", body, len);
    }
    json_decref(j);
    cp2p_buf_fini(&b);
    return respond(con, r, status, "application/json", NULL, 0);
}

static enum MHD_Result respond_json(struct MHD_Connection *con, api_req *r, unsigned status,
                                    json_t *j)
{
    return respond_json_max(con, r, status, j, API_JSON_MAX);
}

/* A kubo-style error: {"Message": msg, "Code": N, "Type": "error"}. */
static enum MHD_Result respond_error(struct MHD_Connection *con, api_req *r, unsigned status,
                                     const char *msg)
{
    int code = status == MHD_HTTP_NOT_FOUND ? KUBO_ERR_NOT_FOUND
               : status < 500               ? KUBO_ERR_CLIENT
                                            : KUBO_ERR_NORMAL;
    json_t *j = json_pack("{s:s, s:i, s:s}", "Message", msg, "Code", code, "Type", "error");
    return respond_json(con, r, status, j);
}

static enum MHD_Result reject(struct MHD_Connection *con, api_req *r, reject_reason why,
                              unsigned status, const char *msg)
{
    cp2p_metric_inc(r->api->rejected[why]);
    CP2P_LOG(CP2P_LOG_DEBUG, "http", 0, "http.rejected reason=%s status=%u", reason_names[why],
             status);
    return respond_error(con, r, status, msg);
}

/* A node operation failed with rc: the status that says so. */
static unsigned op_status(int rc)
{
    switch (rc) {
    case CP2P_ETIMEDOUT: return MHD_HTTP_GATEWAY_TIMEOUT;
    case CP2P_EFULL:
    case CP2P_ECANCELED: return MHD_HTTP_SERVICE_UNAVAILABLE;
    default: return MHD_HTTP_INTERNAL_SERVER_ERROR;
    }
}

static enum MHD_Result respond_op_error(struct MHD_Connection *con, api_req *r, const char *what,
                                        int rc, const char *detail)
{
    char msg[256];
    snprintf(msg, sizeof(msg), "%s: %s%s%s", what, cp2p_strerror(rc), detail ? " " : "",
             detail ? detail : "");
    return respond_error(con, r, op_status(rc), msg);
}

/* ---- loop calls ---- */

/* Copy the host's counters, and gossipsub's and the DHT's when the node runs them, into the
 * registry (on the loop). */
static void refresh_on_loop(cp2p_node_call *call, cp2p_host *host, void *ud)
{
    api_shared *sh = ud;
    const cp2p_pubsub *ps = cp2p__node_pubsub(sh->node);
    const cp2p_kad *kad = cp2p__node_kad(sh->node);
    int rc = cp2p_host_metrics_update(&sh->hm, host, sh->reg);
    if (rc == 0) {
        rc = cp2p__node_metrics_update(&sh->nodem, sh->node, sh->reg);
    }
    if (rc == 0 && ps != NULL) {
        rc = cp2p__pubsub_metrics_update(&sh->psm, ps, sh->reg);
    }
    if (rc == 0 && kad != NULL) {
        rc = cp2p__kad_metrics_update(&sh->kadm, kad, sh->reg);
    }
    cp2p_node_artifacts *arts = atomic_load(&sh->artifacts);
    if (rc == 0 && arts != NULL) {
        rc = cp2p__node_artifacts_metrics_update(arts, sh->reg);
    }
    /* Every request-response registration of the host (the node's handlers, and those the
     * application registered on an attached host): the others are skipped by the update. */
    const char *protos[CP2P_NODE_API_REQRESP_METRICS_MAX];
    size_t np = cp2p_host_protocols(host, protos, CP2P_NODE_API_REQRESP_METRICS_MAX);
    for (size_t i = 0; rc == 0 && i < np && i < CP2P_NODE_API_REQRESP_METRICS_MAX; i++) {
        rc = cp2p__reqresp_metrics_update(&sh->rrm, host, protos[i], sh->reg);
    }
    cp2p_node_call_done(call, rc);
}

static void noop_on_loop(cp2p_node_call *call, cp2p_host *host, void *ud)
{
    (void)host;
    (void)ud;
    cp2p_node_call_done(call, 0);
}

/* id: the agent and protocols, copied ('\0'-separated) for the HTTP thread. */
typedef struct {
    cp2p_buf agent;
    cp2p_buf protos;
    size_t nprotos;
} id_ctx;

static void id_ctx_free(void *p)
{
    id_ctx *c = p;
    cp2p_buf_fini(&c->agent);
    cp2p_buf_fini(&c->protos);
    cp2p_free(c);
}

static void id_on_loop(cp2p_node_call *call, cp2p_host *host, void *ud)
{
    id_ctx *c = ud;
    const char *protos[256];
    size_t n = cp2p_host_protocols(host, protos, 256);
    const char *agent = cp2p_host_agent_version(host);
    int rc = cp2p_buf_append(&c->agent, agent, strlen(agent) + 1);
    for (size_t i = 0; rc == 0 && i < n && i < 256; i++) {
        rc = cp2p_buf_append(&c->protos, protos[i], strlen(protos[i]) + 1);
        c->nprotos += rc == 0;
    }
    cp2p_node_call_done(call, rc);
}

typedef struct {
    cp2p_host_conn_info *list;
    size_t n;
} peers_ctx;

static void peers_ctx_free(void *p)
{
    peers_ctx *c = p;
    cp2p_free(c->list);
    cp2p_free(c);
}

static void peers_on_loop(cp2p_node_call *call, cp2p_host *host, void *ud)
{
    peers_ctx *c = ud;
    size_t total = cp2p_host_conns_list(host, NULL, 0);
    c->list = cp2p_calloc(total > 0 ? total : 1, sizeof(*c->list));
    if (c->list == NULL) {
        cp2p_node_call_done(call, CP2P_ENOMEM);
        return;
    }
    c->n = cp2p_host_conns_list(host, c->list, total);
    c->n = c->n < total ? c->n : total;
    cp2p_node_call_done(call, 0);
}

typedef struct {
    cp2p_peer_id peer;
    size_t closed;
} disconnect_ctx;

static void disconnect_on_loop(cp2p_node_call *call, cp2p_host *host, void *ud)
{
    disconnect_ctx *c = ud;
    c->closed = cp2p_host_close_peer(host, &c->peer);
    cp2p_node_call_done(call, 0);
}

/* ping: `count` pings in a row on the peer's connection (dialed by ID first if needed). */
typedef struct {
    cp2p_node_call *call;
    cp2p_host *host;
    cp2p_peer_id peer;
    unsigned count, done, ok;
    uint64_t timeout_ms;
    uint64_t rtt_ns[API_PING_MAX];
    int err[API_PING_MAX];
} ping_ctx;

static void ping_next(ping_ctx *p);

static void on_ping(cp2p_conn *c, int status, uint64_t rtt_ns, void *ud)
{
    ping_ctx *p = ud;
    (void)c;
    p->err[p->done] = status;
    p->rtt_ns[p->done] = status == 0 ? rtt_ns : 0;
    p->ok += status == 0;
    p->done++;
    ping_next(p);
}

static void ping_next(ping_ctx *p)
{
    while (p->done < p->count) {
        /* Look the connection up each time: the previous one may have closed. */
        cp2p_conn *c = cp2p_host_conn_to(p->host, &p->peer);
        int rc = c != NULL ? cp2p_ping(c, p->timeout_ms, on_ping, p) : CP2P_ECLOSED;
        if (rc == 0) {
            return;
        }
        p->err[p->done++] = rc;
    }
    /* Done: from here on p belongs to the caller (or to the node, which frees it). */
    cp2p_node_call_done(p->call, p->ok > 0 ? 0 : p->err[p->count - 1]);
}

static void ping_on_dialed(cp2p_host *h, int status, cp2p_conn *conn, void *ud)
{
    ping_ctx *p = ud;
    (void)h;
    (void)conn;
    if (status != 0) {
        cp2p_node_call_done(p->call, status);
        return;
    }
    ping_next(p);
}

static void ping_on_loop(cp2p_node_call *call, cp2p_host *host, void *ud)
{
    ping_ctx *p = ud;
    p->call = call;
    p->host = host;
    if (cp2p_host_conn_to(host, &p->peer) != NULL) {
        ping_next(p);
        return;
    }
    int rc = cp2p_host_dial_peer(host, &p->peer, ping_on_dialed, p);
    if (rc != 0) {
        cp2p_node_call_done(call, rc);
    }
}

/* ---- endpoints ---- */

typedef struct {
    cp2p__http_arg args[CP2P__HTTP_MAX_ARGS];
    size_t n;
    char *buf;
} query;

static const char *query_get(const query *q, const char *name)
{
    const cp2p__http_arg *a = cp2p__http_arg_find(q->args, q->n, name);
    return a != NULL ? a->value : NULL;
}

/* A peer given as a peer ID or as a multiaddr ending in /p2p/ID (*is_addr set). */
static int parse_peer(const char *s, cp2p_peer_id *peer, bool *is_addr)
{
    cp2p_multiaddr *ma = NULL;
    *is_addr = s[0] == '/';
    if (!*is_addr) {
        return cp2p_peer_id_parse(s, strlen(s), peer);
    }
    int rc = cp2p_multiaddr_parse(s, strlen(s), &ma);
    if (rc == 0) {
        rc = cp2p_multiaddr_peer_id(ma, peer);
    }
    cp2p_multiaddr_free(ma);
    return rc == 0 ? 0 : CP2P_EINVAL;
}

static json_t *peer_json(const cp2p_peer_id *id)
{
    char pid[CP2P_PEER_ID_STR_MAX];
    return json_string(cp2p_peer_id_str(id, pid));
}

static enum MHD_Result ep_id(struct MHD_Connection *con, api_req *r)
{
    cp2p_node_api *a = r->api;
    id_ctx *c = cp2p_calloc(1, sizeof(*c));
    if (c == NULL) {
        return respond_op_error(con, r, "id", CP2P_ENOMEM, NULL);
    }
    cp2p_buf_init(&c->agent, 1024);
    cp2p_buf_init(&c->protos, 64 * 1024);
    int rc = cp2p_node_call_on_loop(a->node, id_on_loop, c, id_ctx_free, API_QUICK_MS);
    if (rc != 0) {
        return respond_op_error(con, r, "id", rc, NULL);
    }
    json_t *addrs = json_array(), *protos = json_array();
    char buf[CP2P_MULTIADDR_STR_MAX];
    for (size_t i = 0; cp2p_node_addr(a->node, i, buf, sizeof(buf)) == 0; i++) {
        json_array_append_new(addrs, json_string(buf));
    }
    const char *p = (const char *)c->protos.ptr;
    for (size_t i = 0; i < c->nprotos; i++, p += strlen(p) + 1) {
        json_array_append_new(protos, json_string(p));
    }
    json_t *j = json_pack("{s:o, s:o, s:s?, s:o}", "ID", peer_json(cp2p_node_peer_id(a->node)),
                          "Addresses", addrs, "AgentVersion", (const char *)c->agent.ptr,
                          "Protocols", protos);
    id_ctx_free(c);
    return respond_json(con, r, MHD_HTTP_OK, j);
}

static enum MHD_Result ep_peers(struct MHD_Connection *con, api_req *r)
{
    peers_ctx *c = cp2p_calloc(1, sizeof(*c));
    if (c == NULL) {
        return respond_op_error(con, r, "peers", CP2P_ENOMEM, NULL);
    }
    int rc = cp2p_node_call_on_loop(r->api->node, peers_on_loop, c, peers_ctx_free,
                                    API_QUICK_MS);
    if (rc != 0) {
        return respond_op_error(con, r, "peers", rc, NULL);
    }
    json_t *list = json_array();
    for (size_t i = 0; i < c->n; i++) {
        const cp2p_host_conn_info *ci = &c->list[i];
        char lat[32] = "";
        if (ci->rtt_ns > 0) {
            snprintf(lat, sizeof(lat), "%.3fms", (double)ci->rtt_ns / 1e6);
        }
        json_array_append_new(
            list, json_pack("{s:o, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I}", "Peer",
                            peer_json(&ci->peer), "Addr", ci->addr, "Direction",
                            ci->outbound ? "outbound" : "inbound", "Latency", lat, "LatencyNs",
                            (json_int_t)ci->rtt_ns, "Streams", (json_int_t)ci->streams,
                            "BytesIn", (json_int_t)ci->bytes_in, "BytesOut",
                            (json_int_t)ci->bytes_out, "SendQueueCap",
                            (json_int_t)ci->send_queue_cap, "SendRate",
                            (json_int_t)ci->send_rate_bps));
    }
    peers_ctx_free(c);
    return respond_json(con, r, MHD_HTTP_OK, json_pack("{s:o}", "Peers", list));
}

/* ---- channels: the reactors' switch on the node's host (cp2p/reactor.h) ---- */

typedef struct {
    cp2p_buf text;
    bool none; /* no switch on the host */
} channels_ctx;

static void channels_ctx_free(void *p)
{
    channels_ctx *c = p;
    cp2p_buf_fini(&c->text);
    cp2p_free(c);
}

static void channels_on_loop(cp2p_node_call *call, cp2p_host *host, void *ud)
{
    channels_ctx *c = ud;
    cp2p_switch *sw = cp2p_host_switch(host);
    if (sw == NULL) {
        c->none = true;
        cp2p_node_call_done(call, 0);
        return;
    }
    cp2p_node_call_done(call, cp2p_switch_channels_json(sw, &c->text));
}

static enum MHD_Result ep_channels(struct MHD_Connection *con, api_req *r)
{
    channels_ctx *c = cp2p_calloc(1, sizeof(*c));
    if (c == NULL) {
        return respond_op_error(con, r, "channels", CP2P_ENOMEM, NULL);
    }
    cp2p_buf_init(&c->text, API_JSON_MAX);
    int rc = cp2p_node_call_on_loop(r->api->node, channels_on_loop, c, channels_ctx_free,
                                    API_QUICK_MS);
    if (rc != 0) {
        return respond_op_error(con, r, "channels", rc, NULL);
    }
    json_t *j = c->none ? json_pack("{s:[],s:[],s:i}", "Reactors", "Peers", "PeersTotal", 0)
                        : json_loadb((const char *)c->text.ptr, c->text.len, 0, NULL);
    channels_ctx_free(c);
    if (j == NULL) {
        return respond_op_error(con, r, "channels", CP2P_ENOMEM, NULL);
    }
    return respond_json(con, r, MHD_HTTP_OK, j);
}

static enum MHD_Result ep_connect(struct MHD_Connection *con, api_req *r, const query *q)
{
    /* Every arg is checked before any dial. */
    for (size_t i = 0; i < q->n; i++) {
        cp2p_peer_id peer;
        bool is_addr;
        if (strcmp(q->args[i].name, "arg") == 0 &&
            (parse_peer(q->args[i].value, &peer, &is_addr) != 0 || !is_addr)) {
            return reject(con, r, R_BAD_ARGUMENT, MHD_HTTP_BAD_REQUEST,
                          "arg must be a multiaddr ending in /p2p/<peer ID>");
        }
    }
    if (query_get(q, "arg") == NULL) {
        return reject(con, r, R_BAD_ARGUMENT, MHD_HTTP_BAD_REQUEST,
                      "argument \"arg\" is required (a multiaddr with /p2p/)");
    }
    json_t *strings = json_array(), *ids = json_array();
    for (size_t i = 0; i < q->n; i++) {
        cp2p_peer_id peer;
        char pid[CP2P_PEER_ID_STR_MAX], line[CP2P_PEER_ID_STR_MAX + 48];
        if (strcmp(q->args[i].name, "arg") != 0) {
            continue;
        }
        int rc = cp2p_node_dial(r->api->node, q->args[i].value, r->api->cfg.op_timeout_ms, &peer);
        if (rc != 0) {
            json_decref(strings);
            json_decref(ids);
            return respond_op_error(con, r, "connect", rc, q->args[i].value);
        }
        snprintf(line, sizeof(line), "connect %s success", cp2p_peer_id_str(&peer, pid));
        json_array_append_new(strings, json_string(line));
        json_array_append_new(ids, json_string(pid));
    }
    return respond_json(con, r, MHD_HTTP_OK,
                        json_pack("{s:o, s:o}", "Strings", strings, "Peers", ids));
}

static enum MHD_Result ep_disconnect(struct MHD_Connection *con, api_req *r, const query *q)
{
    const char *arg = query_get(q, "arg");
    bool is_addr;
    disconnect_ctx *c = cp2p_calloc(1, sizeof(*c));
    if (c == NULL) {
        return respond_op_error(con, r, "disconnect", CP2P_ENOMEM, NULL);
    }
    if (arg == NULL || parse_peer(arg, &c->peer, &is_addr) != 0) {
        cp2p_free(c);
        return reject(con, r, R_BAD_ARGUMENT, MHD_HTTP_BAD_REQUEST,
                      "argument \"arg\" must be a peer ID or a multiaddr with /p2p/");
    }
    int rc = cp2p_node_call_on_loop(r->api->node, disconnect_on_loop, c, cp2p_free,
                                    API_QUICK_MS);
    if (rc != 0) {
        return respond_op_error(con, r, "disconnect", rc, NULL);
    }
    size_t closed = c->closed;
    char pid[CP2P_PEER_ID_STR_MAX], line[CP2P_PEER_ID_STR_MAX + 48];
    cp2p_peer_id_str(&c->peer, pid);
    cp2p_free(c);
    if (closed == 0) {
        snprintf(line, sizeof(line), "disconnect %s failure: not connected", pid);
        return respond_error(con, r, MHD_HTTP_INTERNAL_SERVER_ERROR, line);
    }
    snprintf(line, sizeof(line), "disconnect %s success", pid);
    return respond_json(con, r, MHD_HTTP_OK,
                        json_pack("{s:[s], s:I}", "Strings", line, "Closed", (json_int_t)closed));
}

static enum MHD_Result ep_ping(struct MHD_Connection *con, api_req *r, const query *q)
{
    cp2p_node_api *a = r->api;
    const char *arg = query_get(q, "arg"), *count_s = query_get(q, "count");
    unsigned count = API_PING_DEFAULT;
    bool is_addr;
    cp2p_peer_id peer;
    if (arg == NULL || parse_peer(arg, &peer, &is_addr) != 0) {
        return reject(con, r, R_BAD_ARGUMENT, MHD_HTTP_BAD_REQUEST,
                      "argument \"arg\" must be a peer ID or a multiaddr with /p2p/");
    }
    if (count_s != NULL) {
        count = 0;
        for (const char *p = count_s; count <= API_PING_MAX && *p != '\0'; p++) {
            count = *p >= '0' && *p <= '9' ? count * 10 + (unsigned)(*p - '0') : 0xffffu;
        }
        if (count_s[0] == '\0' || count == 0 || count > API_PING_MAX) {
            return reject(con, r, R_BAD_ARGUMENT, MHD_HTTP_BAD_REQUEST,
                          "count must be an integer from 1 to 10");
        }
    }
    if (is_addr) {
        /* As kubo: a multiaddr is connected to first (its address is then known). */
        int rc = cp2p_node_dial(a->node, arg, a->cfg.op_timeout_ms, NULL);
        if (rc != 0) {
            return respond_op_error(con, r, "ping: connect", rc, arg);
        }
    }
    ping_ctx *p = cp2p_calloc(1, sizeof(*p));
    if (p == NULL) {
        return respond_op_error(con, r, "ping", CP2P_ENOMEM, NULL);
    }
    p->peer = peer;
    p->count = count;
    /* Each ping gets an equal share of the operation's bound. */
    p->timeout_ms = a->cfg.op_timeout_ms / count > 0 ? a->cfg.op_timeout_ms / count : 1;
    int rc = cp2p_node_call_on_loop(a->node, ping_on_loop, p, cp2p_free,
                                    a->cfg.op_timeout_ms + API_QUICK_MS);
    if (rc != 0) {
        return respond_op_error(con, r, "ping", rc, NULL);
    }
    json_t *pings = json_array();
    uint64_t sum = 0;
    for (unsigned i = 0; i < p->count; i++) {
        sum += p->rtt_ns[i];
        json_array_append_new(pings, json_pack("{s:b, s:I, s:s}", "Success", p->err[i] == 0,
                                               "Time", (json_int_t)p->rtt_ns[i], "Text",
                                               p->err[i] == 0 ? "" : cp2p_strerror(p->err[i])));
    }
    json_t *j = json_pack("{s:o, s:o, s:i, s:I}", "Peer", peer_json(&p->peer), "Pings", pings,
                          "Received", (int)p->ok, "AverageNs",
                          (json_int_t)(p->ok > 0 ? sum / p->ok : 0));
    cp2p_free(p);
    return respond_json(con, r, MHD_HTTP_OK, j);
}

static enum MHD_Result ep_pubsub_pub(struct MHD_Connection *con, api_req *r, const query *q)
{
    const char *topic = query_get(q, "arg");
    if (topic == NULL || topic[0] == '\0') {
        return reject(con, r, R_BAD_ARGUMENT, MHD_HTTP_BAD_REQUEST,
                      "argument \"arg\" (the topic) is required; the body is the message");
    }
    const void *data = r->body.ptr != NULL ? (const void *)r->body.ptr : "";
    int rc = cp2p_node_publish(r->api->node, topic, data, r->body.len, r->api->cfg.op_timeout_ms);
    if (rc == CP2P_ENOTSUP) {
        return respond_error(con, r, MHD_HTTP_NOT_IMPLEMENTED,
                             "pubsub is not enabled on this node");
    }
    if (rc == CP2P_ENOENT) {
        return respond_op_error(con, r, "pubsub/pub", rc, "(no peer subscribed to the topic)");
    }
    if (rc == CP2P_EINVAL) {
        return reject(con, r, R_BAD_ARGUMENT, MHD_HTTP_BAD_REQUEST, "invalid topic");
    }
    if (rc != 0) {
        return respond_op_error(con, r, "pubsub/pub", rc, NULL);
    }
    return respond_json(con, r, MHD_HTTP_OK, json_object());
}

/* ---- the DHT, pubsub/peers, req ---- */

/* Our choices: kad answers at most CP2P_KAD_MAX_PROVIDERS_ANSWER (20) providers, kubo's default
 * num-providers; a topic's peer list is cut at 1024 (Total says how many there are); protocol
 * IDs are short paths (multistream's limit is 1024 bytes per message). */
#define API_PROVIDERS_MAX CP2P_KAD_MAX_PROVIDERS_ANSWER
#define API_TOPIC_PEERS_MAX 1024
#define API_PROTOCOL_MAX 256
/* How long the peerstore keeps the address a req names (go-libp2p's TempAddrTTL is 2 min). */
#define API_REQ_ADDR_TTL_MS (10u * 60 * 1000)

static enum MHD_Result bad_arg(struct MHD_Connection *con, api_req *r, const char *msg)
{
    return reject(con, r, R_BAD_ARGUMENT, MHD_HTTP_BAD_REQUEST, msg);
}

/* The optional `timeout` argument (kubo's global option, a Go duration): "N" followed by "ms",
 * "s" or "m", N >= 1, cut to the API's bound. false when malformed. */
static bool arg_timeout(const query *q, uint64_t bound, uint64_t *ms)
{
    const char *t = query_get(q, "timeout");
    uint64_t v = 0, mul;
    size_t i = 0;
    *ms = bound;
    if (t == NULL) {
        return true;
    }
    for (; t[i] >= '0' && t[i] <= '9'; i++) {
        if (v > 1000000000u) {
            return false;
        }
        v = v * 10 + (uint64_t)(t[i] - '0');
    }
    const char *u = t + i;
    mul = strcmp(u, "ms") == 0 ? 1 : strcmp(u, "s") == 0 ? 1000 : strcmp(u, "m") == 0 ? 60000 : 0;
    if (i == 0 || v == 0 || mul == 0) {
        return false;
    }
    *ms = v * mul < bound ? v * mul : bound;
    return true;
}

#define TIMEOUT_MSG "timeout must be a duration such as 500ms, 10s or 1m"

/* Milliseconds left until deadline_ns (uv_hrtime), at least 1. */
static uint64_t ms_left(uint64_t deadline_ns)
{
    uint64_t now = uv_hrtime();
    return now + 1000000 < deadline_ns ? (deadline_ns - now) / 1000000 : 1;
}

/* Standard base64 with padding, as kubo's JSON carries bytes (Go's encoding/json). */
static json_t *base64_json(const uint8_t *p, size_t len)
{
    size_t n = sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL);
    char *b = cp2p_malloc(n);
    if (b == NULL) {
        return NULL;
    }
    sodium_bin2base64(b, n, len > 0 ? p : (const uint8_t *)"", len,
                      sodium_base64_VARIANT_ORIGINAL);
    json_t *j = json_string_nocheck(b);
    cp2p_free(b);
    return j;
}

/* A DHT call failed: 501 when the node runs no DHT (CP2P_ENOTSUP also means a record namespace
 * without a validator: the table size tells them apart), 400 for a record refused here, else
 * the operation's error. */
static enum MHD_Result respond_dht_error(struct MHD_Connection *con, api_req *r,
                                         const char *what, int rc)
{
    char msg[160];
    if (rc == CP2P_ENOTSUP) {
        size_t ts;
        int t = cp2p_node_dht_table_size(r->api->node, &ts);
        if (t == CP2P_ENOTSUP) {
            return respond_error(con, r, MHD_HTTP_NOT_IMPLEMENTED,
                                 "the DHT is not enabled on this node (--no-dht)");
        }
        if (t == 0) {
            snprintf(msg, sizeof(msg),
                     "%s: the key's namespace is not accepted here (keys are /NS/..., see "
                     "--dht-namespace)",
                     what);
            return bad_arg(con, r, msg);
        }
        rc = t;
    }
    if (rc == CP2P_EINVAL || rc == CP2P_EPROTO) {
        snprintf(msg, sizeof(msg), "%s: the record was refused by its namespace's validator",
                 what);
        return bad_arg(con, r, msg);
    }
    return respond_op_error(con, r, what, rc,
                            rc == CP2P_ESTATE ? "(no DHT peer known yet: connect or bootstrap)"
                                              : NULL);
}

static enum MHD_Result ep_dht_put(struct MHD_Connection *con, api_req *r, const query *q)
{
    const char *key = query_get(q, "arg");
    uint64_t to;
    size_t stored = 0;
    if (key == NULL || key[0] == '\0') {
        return bad_arg(con, r, "argument \"arg\" (the key, /NS/...) is required; the body is the "
                               "value");
    }
    if (strlen(key) > CP2P_KAD_MAX_KEY) {
        return bad_arg(con, r, "the key is longer than 1024 bytes");
    }
    if (r->body.len > CP2P_KAD_MAX_VALUE) {
        return reject(con, r, R_BODY_TOO_LARGE, MHD_HTTP_CONTENT_TOO_LARGE,
                      "a DHT value is at most 65536 bytes");
    }
    if (!arg_timeout(q, r->api->cfg.op_timeout_ms, &to)) {
        return bad_arg(con, r, TIMEOUT_MSG);
    }
    const void *value = r->body.ptr != NULL ? (const void *)r->body.ptr : "";
    int rc = cp2p_node_dht_put(r->api->node, key, strlen(key), value, r->body.len, to, &stored);
    if (rc != 0) {
        return respond_dht_error(con, r, "dht/put", rc);
    }
    return respond_json(con, r, MHD_HTTP_OK,
                        json_pack("{s:s, s:I}", "Key", key, "Stored", (json_int_t)stored));
}

static enum MHD_Result ep_dht_get(struct MHD_Connection *con, api_req *r, const query *q)
{
    const char *key = query_get(q, "arg");
    uint64_t to;
    uint8_t *v = NULL;
    size_t vl = 0;
    if (key == NULL || key[0] == '\0') {
        return bad_arg(con, r, "argument \"arg\" (the key, /NS/...) is required");
    }
    if (strlen(key) > CP2P_KAD_MAX_KEY) {
        return bad_arg(con, r, "the key is longer than 1024 bytes");
    }
    if (!arg_timeout(q, r->api->cfg.op_timeout_ms, &to)) {
        return bad_arg(con, r, TIMEOUT_MSG);
    }
    int rc = cp2p_node_dht_get(r->api->node, key, strlen(key), to, &v, &vl);
    if (rc != 0) {
        return respond_dht_error(con, r, "dht/get", rc);
    }
    json_t *j = json_pack("{s:s, s:o, s:I}", "Key", key, "Value", base64_json(v, vl), "Bytes",
                          (json_int_t)vl);
    cp2p_free(v);
    return respond_json(con, r, MHD_HTTP_OK, j);
}

static enum MHD_Result ep_dht_findpeer(struct MHD_Connection *con, api_req *r, const query *q)
{
    const char *arg = query_get(q, "arg");
    cp2p_peer_id peer;
    uint64_t to;
    char **addrs = NULL;
    size_t na = 0;
    if (arg == NULL || arg[0] == '\0') {
        return bad_arg(con, r, "argument \"arg\" (a peer ID) is required");
    }
    if (cp2p_peer_id_parse(arg, strlen(arg), &peer) != 0) {
        return bad_arg(con, r, "argument \"arg\" is not a valid peer ID");
    }
    if (!arg_timeout(q, r->api->cfg.op_timeout_ms, &to)) {
        return bad_arg(con, r, TIMEOUT_MSG);
    }
    int rc = cp2p_node_dht_find_peer(r->api->node, &peer, to, &addrs, &na);
    if (rc != 0) {
        return respond_dht_error(con, r, "dht/findpeer", rc);
    }
    json_t *list = json_array();
    for (size_t i = 0; i < na; i++) {
        json_array_append_new(list, json_string(addrs[i]));
    }
    cp2p_node_free_strings(addrs, na);
    return respond_json(con, r, MHD_HTTP_OK,
                        json_pack("{s:o, s:o}", "ID", peer_json(&peer), "Addrs", list));
}

/* A provider's addresses: ours when it is us, else what find_peer knows within the time left
 * (the answer's addresses are in the peerstore already; an empty list when none is known). */
static json_t *provider_addrs(cp2p_node_api *a, const cp2p_peer_id *p, uint64_t deadline_ns)
{
    json_t *list = json_array();
    char **addrs = NULL;
    size_t na = 0;
    if (cp2p_peer_id_equal(p, cp2p_node_peer_id(a->node))) {
        char buf[CP2P_MULTIADDR_STR_MAX];
        for (size_t i = 0; cp2p_node_addr(a->node, i, buf, sizeof(buf)) == 0; i++) {
            char *slash = strstr(buf, "/p2p/");
            if (slash != NULL) {
                *slash = '\0';
            }
            json_array_append_new(list, json_string(buf));
        }
        return list;
    }
    if (cp2p_node_dht_find_peer(a->node, p, ms_left(deadline_ns), &addrs, &na) == 0) {
        for (size_t i = 0; i < na; i++) {
            json_array_append_new(list, json_string(addrs[i]));
        }
        cp2p_node_free_strings(addrs, na);
    }
    return list;
}

/* dht/provide and dht/findprovs: arg is a CID. */
static enum MHD_Result ep_dht_cid(struct MHD_Connection *con, api_req *r, const query *q)
{
    cp2p_node_api *a = r->api;
    bool provide = r->ep == EP_DHT_PROVIDE;
    const char *what = provide ? "dht/provide" : "dht/findprovs";
    const char *arg = query_get(q, "arg"), *num_s = query_get(q, "num-providers");
    uint8_t key[128];
    uint64_t to;
    unsigned num = API_PROVIDERS_MAX;
    if (arg == NULL || arg[0] == '\0') {
        return bad_arg(con, r, "argument \"arg\" (a CID) is required");
    }
    ptrdiff_t kl = cp2p_kad_key_from_cid(arg, key, sizeof(key));
    if (kl <= 0) {
        return bad_arg(con, r, "argument \"arg\" is not a valid CID");
    }
    if (!arg_timeout(q, a->cfg.op_timeout_ms, &to)) {
        return bad_arg(con, r, TIMEOUT_MSG);
    }
    if (!provide && num_s != NULL) {
        num = 0;
        for (const char *p = num_s; num <= API_PROVIDERS_MAX && *p != '\0'; p++) {
            num = *p >= '0' && *p <= '9' ? num * 10 + (unsigned)(*p - '0') : 0xffffu;
        }
        if (num_s[0] == '\0' || num == 0 || num > API_PROVIDERS_MAX) {
            return bad_arg(con, r, "num-providers must be an integer from 1 to 20");
        }
    }
    uint64_t deadline = uv_hrtime() + to * 1000000;
    if (provide) {
        size_t told = 0;
        int rc = cp2p_node_dht_provide(a->node, key, (size_t)kl, to, &told);
        if (rc != 0) {
            return respond_dht_error(con, r, what, rc);
        }
        return respond_json(con, r, MHD_HTTP_OK,
                            json_pack("{s:s, s:I}", "Cid", arg, "Told", (json_int_t)told));
    }
    cp2p_peer_id provs[API_PROVIDERS_MAX];
    size_t np = 0;
    int rc = cp2p_node_dht_find_providers(a->node, key, (size_t)kl, num, to, provs, &np);
    if (rc == CP2P_ENOENT) {
        np = 0; /* none found: an empty list, as kubo's stream ends without a provider */
    } else if (rc != 0) {
        return respond_dht_error(con, r, what, rc);
    }
    json_t *list = json_array();
    for (size_t i = 0; i < np && i < num; i++) {
        json_array_append_new(list, json_pack("{s:o, s:o}", "ID", peer_json(&provs[i]), "Addrs",
                                              provider_addrs(a, &provs[i], deadline)));
    }
    return respond_json(con, r, MHD_HTTP_OK,
                        json_pack("{s:s, s:o}", "Cid", arg, "Providers", list));
}

static enum MHD_Result ep_pubsub_peers(struct MHD_Connection *con, api_req *r, const query *q)
{
    const char *topic = query_get(q, "arg");
    size_t total = 0, mtotal = 0;
    if (topic == NULL || topic[0] == '\0') {
        return bad_arg(con, r, "argument \"arg\" (the topic) is required");
    }
    cp2p_peer_id *ids = cp2p_calloc(API_TOPIC_PEERS_MAX, sizeof(*ids));
    cp2p_peer_id *mesh = cp2p_calloc(API_TOPIC_PEERS_MAX, sizeof(*mesh));
    int rc = ids == NULL || mesh == NULL ? CP2P_ENOMEM : 0;
    if (rc == 0) {
        rc = cp2p_node_topic_peers(r->api->node, topic, ids, API_TOPIC_PEERS_MAX, &total);
    }
    if (rc == 0) {
        rc = cp2p_node_mesh_peers(r->api->node, topic, mesh, API_TOPIC_PEERS_MAX, &mtotal);
    }
    if (rc != 0) {
        cp2p_free(ids);
        cp2p_free(mesh);
        if (rc == CP2P_ENOTSUP) {
            return respond_error(con, r, MHD_HTTP_NOT_IMPLEMENTED,
                                 "pubsub is not enabled on this node");
        }
        return rc == CP2P_EINVAL ? bad_arg(con, r, "invalid topic")
                                 : respond_op_error(con, r, "pubsub/peers", rc, NULL);
    }
    json_t *list = json_array(), *mlist = json_array();
    for (size_t i = 0; i < total && i < API_TOPIC_PEERS_MAX; i++) {
        json_array_append_new(list, peer_json(&ids[i]));
    }
    for (size_t i = 0; i < mtotal && i < API_TOPIC_PEERS_MAX; i++) {
        json_array_append_new(mlist, peer_json(&mesh[i]));
    }
    cp2p_free(ids);
    cp2p_free(mesh);
    return respond_json(con, r, MHD_HTTP_OK,
                        json_pack("{s:o, s:o, s:I}", "Strings", list, "Mesh", mlist, "Total",
                                  (json_int_t)total));
}

static bool protocol_valid(const char *p)
{
    size_t len = strnlen(p, API_PROTOCOL_MAX + 1);
    if (p[0] != '/' || len > API_PROTOCOL_MAX) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f) {
            return false; /* multistream lines end in '\n' */
        }
    }
    return true;
}

static enum MHD_Result ep_req(struct MHD_Connection *con, api_req *r, const query *q)
{
    cp2p_node_api *a = r->api;
    const char *arg = query_get(q, "arg"), *proto = query_get(q, "proto");
    cp2p_peer_id peer;
    bool is_addr;
    uint64_t to;
    if (arg == NULL || parse_peer(arg, &peer, &is_addr) != 0) {
        return bad_arg(con, r, "argument \"arg\" must be a peer ID or a multiaddr with /p2p/");
    }
    if (proto == NULL || !protocol_valid(proto)) {
        return bad_arg(con, r, "argument \"proto\" (a protocol ID such as /my/echo/1, at most "
                               "256 bytes) is required; the body is the request");
    }
    if (!arg_timeout(q, a->cfg.op_timeout_ms, &to)) {
        return bad_arg(con, r, TIMEOUT_MSG);
    }
    if (is_addr) {
        /* Teach the node the address rather than dial it: the request dials only when the peer
         * is not connected (a second connection to a connected peer would be refused). */
        int rc = cp2p_node_add_addrs(a->node, &peer, &arg, 1, API_REQ_ADDR_TTL_MS);
        if (rc == CP2P_EINVAL) {
            return bad_arg(con, r, "argument \"arg\" names this node itself");
        }
        if (rc != 0) {
            return respond_op_error(con, r, "req", rc, NULL);
        }
    }
    uint8_t *resp = NULL;
    size_t rlen = 0;
    const void *body = r->body.ptr != NULL ? (const void *)r->body.ptr : "";
    int rc = cp2p_node_request(a->node, &peer, proto, body, r->body.len, to, &resp, &rlen);
    if (rc != 0) {
        const char *detail = rc == CP2P_ENOTSUP  ? "(the peer does not serve the protocol)"
                             : rc == CP2P_ENOENT ? "(no known address for the peer: connect "
                                                   "first, or give a multiaddr)"
                             : rc == CP2P_ESTATE ? "(the peer is in dial backoff)"
                             : rc == CP2P_ERESET ? "(the peer refused the request)"
                                                 : NULL;
        return respond_op_error(con, r, "req", rc, detail);
    }
    json_t *j = json_pack("{s:o, s:s, s:o, s:I}", "Peer", peer_json(&peer), "Protocol", proto,
                          "Response", base64_json(resp, rlen), "Bytes", (json_int_t)rlen);
    cp2p_free(resp);
    /* Room for the base64 of a response up to the node's limit (10 MiB by default). */
    return respond_json_max(con, r, MHD_HTTP_OK, j, API_JSON_MAX + rlen / 3 * 4 + 4);
}

/* ---- artifact/put|get|ls|stat (cp2p/artifact.h, "on a node") ---- */

void cp2p_node_api_set_artifacts(cp2p_node_api *a, cp2p_node_artifacts *x)
{
    atomic_store(&a->sh->artifacts, x);
}

static void ls_cb(const char *id, uint64_t size, void *ud)
{
    json_array_append_new(ud, json_pack("{s:s, s:I}", "Id", id, "Bytes", (json_int_t)size));
}

static enum MHD_Result ep_artifact(struct MHD_Connection *con, api_req *r, const query *q)
{
    cp2p_node_artifacts *x = atomic_load(&r->api->sh->artifacts);
    const char *arg = query_get(q, "arg");
    uint64_t to;
    int rc;
    if (x == NULL) {
        return respond_error(con, r, MHD_HTTP_NOT_IMPLEMENTED,
                             "artifacts are not enabled on this node (cp2p node --artifacts DIR)");
    }
    if (!arg_timeout(q, r->api->cfg.op_timeout_ms, &to)) {
        return bad_arg(con, r, TIMEOUT_MSG);
    }
    if (r->ep == EP_ARTIFACT_PUT) {
        char id[CP2P_NODE_ARTIFACT_ID_STR_MAX];
        if (r->body.len == 0) {
            return bad_arg(con, r, "the body (the artifact's bytes) is empty");
        }
        if ((rc = cp2p_node_artifact_put(x, r->body.ptr, r->body.len, to, id)) != 0) {
            return rc == CP2P_EINVAL ? bad_arg(con, r, "the artifact is over the size limit")
                                     : respond_op_error(con, r, "artifact/put", rc, NULL);
        }
        return respond_json(con, r, MHD_HTTP_OK,
                            json_pack("{s:s, s:I}", "Id", id, "Bytes", (json_int_t)r->body.len));
    }
    if (r->ep == EP_ARTIFACT_LS) {
        json_t *arr = json_array();
        size_t n = cp2p_node_artifact_ls(x, ls_cb, arr);
        return respond_json_max(con, r, MHD_HTTP_OK, json_pack("{s:o}", "Artifacts", arr),
                                API_JSON_MAX + n * 128);
    }
    if (arg == NULL) {
        return bad_arg(con, r, "argument \"arg\" (an artifact id, Qm...) is required");
    }
    if (r->ep == EP_ARTIFACT_GET) {
        uint8_t *data;
        size_t len;
        if ((rc = cp2p_node_artifact_get(x, arg, &data, &len)) != 0) {
            return rc == CP2P_EINVAL   ? bad_arg(con, r, "argument \"arg\" is not an artifact id")
                   : rc == CP2P_ENOENT ? respond_error(con, r, MHD_HTTP_NOT_FOUND,
                                                       "artifact/get: not held by this node")
                                       : respond_op_error(con, r, "artifact/get", rc, NULL);
        }
        return respond(con, r, MHD_HTTP_OK, "application/octet-stream", data, len);
    }
    cp2p_node_artifact_stat st;
    if ((rc = cp2p_node_artifact_stat_get(x, arg, to, &st)) != 0) {
        return rc == CP2P_EINVAL   ? bad_arg(con, r, "argument \"arg\" is not an artifact id")
               : rc == CP2P_ENOENT ? respond_error(con, r, MHD_HTTP_NOT_FOUND,
                                                   "artifact/stat: neither held nor fetching")
                                   : respond_op_error(con, r, "artifact/stat", rc, NULL);
    }
    return respond_json(con, r, MHD_HTTP_OK,
                        json_pack("{s:s, s:b, s:I, s:b, s:I, s:I, s:I}", "Id", arg, "Held",
                                  st.held, "Bytes", (json_int_t)st.size, "Fetching", st.fetching,
                                  "ChunksDone", (json_int_t)st.chunks_done, "ChunksTotal",
                                  (json_int_t)st.chunks_total, "Peers", (json_int_t)st.peers));
}

/* ---- pubsub/sub: newline-delimited JSON, one object per message ----
 *
 * The node's pubsub has one handler per topic, so the API joins a topic once (on the loop,
 * cp2p_pubsub_subscribe) and fans each message out to the HTTP subscribers of that topic: the
 * loop's handler renders the JSON line once and appends a copy to each subscriber's bounded
 * queue, never waiting. A subscriber whose queue is full is dropped (its stream ends) and
 * counted. The reader callback of each stream runs on its connection's thread and waits on its
 * queue. When the last subscriber of a topic goes, the API leaves the topic. A topic this node
 * already joined by other means (cp2p node --topic, cp2p_node_subscribe) is refused with 409:
 * subscribing again would replace that handler (cp2p_pubsub_subscribed says whether the topic
 * is joined, mesh or not).
 *
 * A leave that cannot reach the loop (the node stopping: a `cp2p node` stopped while a
 * subscriber is open) keeps its topic on a list; cp2p_node_api_stop tries the leave once more
 * and, when the node runs no call any more, frees the topic itself (see subs_orphans_free). */

/* Our choices: a few dashboards or scripts at once; a queue of 256 messages or 2 MiB (at
 * least one message), a few seconds of a busy topic for a client that reads. */
#define API_SUBS_MAX 16
#define API_SUB_QUEUE_MSGS 256
#define API_SUB_QUEUE_BYTES (2u * 1024 * 1024)

typedef struct sub_msg {
    struct sub_msg *next;
    size_t len;
    char data[];
} sub_msg;

typedef struct sub_topic sub_topic;

typedef struct http_sub {
    struct http_sub *next; /* in its topic's list, while linked */
    api_shared *sh;
    sub_topic *t;          /* NULL once unlinked (dropped, or the API closing) */
    sub_msg *head, *tail, *cur;
    size_t n, bytes, off;
    bool ended, dropped, counted;
    pthread_cond_t cond;
    uint64_t keepalive_ns;
} http_sub;

struct sub_topic {
    struct sub_topic *next;
    api_shared *sh; /* a reference */
    char *topic;
    http_sub *subs;
};

static void sub_free_queue(http_sub *s)
{
    for (sub_msg *m = s->head, *nx; m != NULL; m = nx) {
        nx = m->next;
        cp2p_free(m);
    }
    cp2p_free(s->cur);
    s->head = s->tail = s->cur = NULL;
    s->n = s->bytes = 0;
}

/* Unlink s from its topic (sub_mu held). */
static void sub_unlink(http_sub *s)
{
    if (s->t == NULL) {
        return;
    }
    for (http_sub **pp = &s->t->subs; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    }
    s->t = NULL;
    s->next = NULL;
    s->sh->nsubs--;
    cp2p_metric_set(s->sh->subs_gauge, (double)s->sh->nsubs);
}

/* The topic's message, on the loop: one JSON line, a copy per subscriber. */
static void sub_on_message(cp2p_pubsub *ps, const cp2p_pubsub_msg *m, void *ud)
{
    sub_topic *t = ud;
    api_shared *sh = t->sh;
    (void)ps;
    pthread_mutex_lock(&sh->sub_mu);
    bool any = t->subs != NULL;
    pthread_mutex_unlock(&sh->sub_mu);
    if (!any) {
        return;
    }
    json_t *j = json_pack("{s:o, s:o, s:[s]}", "from",
                          m->from != NULL ? peer_json(m->from) : json_null(), "data",
                          base64_json(m->data, m->len), "topicIDs", m->topic);
    if (j != NULL && m->seqno != NULL) {
        (void)json_object_set_new(j, "seqno", base64_json(m->seqno, m->seqno_len));
    }
    cp2p_buf b;
    cp2p_buf_init(&b, API_JSON_MAX + m->len / 3 * 4 + 4);
    if (j == NULL || json_dump_callback(j, dump_cb, &b, JSON_COMPACT) != 0 ||
        cp2p_buf_append_byte(&b, '\n') != 0) {
        json_decref(j);
        cp2p_buf_fini(&b);
        return;
    }
    json_decref(j);
    pthread_mutex_lock(&sh->sub_mu);
    for (http_sub *s = t->subs, *nx; s != NULL; s = nx) {
        nx = s->next;
        if (s->n > 0 && (s->n >= API_SUB_QUEUE_MSGS || s->bytes + b.len > API_SUB_QUEUE_BYTES)) {
            /* It does not read: drop it rather than hold the node's memory. */
            sub_unlink(s);
            s->ended = s->dropped = true;
            sub_free_queue(s);
            cp2p_metric_inc(sh->subs_dropped);
            CP2P_LOG(CP2P_LOG_INFO, "http", 0, "http.pubsub_sub_dropped topic=%s", m->topic);
            pthread_cond_signal(&s->cond);
            continue;
        }
        sub_msg *c = cp2p_malloc(sizeof(*c) + b.len);
        if (c == NULL) {
            continue;
        }
        c->next = NULL;
        c->len = b.len;
        memcpy(c->data, b.ptr, b.len);
        if (s->tail != NULL) {
            s->tail->next = c;
        } else {
            s->head = c;
        }
        s->tail = c;
        s->n++;
        s->bytes += c->len;
        pthread_cond_signal(&s->cond);
    }
    pthread_mutex_unlock(&sh->sub_mu);
    cp2p_buf_fini(&b);
}

/* Join t's topic, unless the node already joined it (by other means). */
static void sub_join_on_loop(cp2p_node_call *call, cp2p_host *host, void *ud)
{
    sub_topic *t = ud;
    cp2p_pubsub *ps = cp2p__node_pubsub(t->sh->node);
    (void)host;
    if (ps == NULL) {
        cp2p_node_call_done(call, CP2P_ENOTSUP);
        return;
    }
    if (cp2p_pubsub_subscribed(ps, t->topic)) {
        cp2p_node_call_done(call, CP2P_ESTATE);
        return;
    }
    cp2p_node_call_done(call, cp2p_pubsub_subscribe(ps, t->topic, sub_on_message, t));
}

static void sub_topic_free(sub_topic *t)
{
    shared_unref(t->sh);
    cp2p_free(t->topic);
    cp2p_free(t);
}

static void sub_leave_on_loop(cp2p_node_call *call, cp2p_host *host, void *ud)
{
    sub_topic *t = ud;
    cp2p_pubsub *ps = cp2p__node_pubsub(t->sh->node);
    (void)host;
    if (ps != NULL) {
        (void)!cp2p_pubsub_unsubscribe(ps, t->topic);
    }
    sub_topic_free(t); /* no handler call can come after the unsubscribe */
    cp2p_node_call_done(call, 0);
}

/* Leave t (unlinked from sh->topics, no subscriber left). HTTP thread, sub_op_mu held. */
static void sub_leave(api_shared *sh, sub_topic *t)
{
    int rc = cp2p_node_call_on_loop(sh->node, sub_leave_on_loop, t, NULL, API_QUICK_MS);
    if (rc != 0) {
        CP2P_LOG(CP2P_LOG_DEBUG, "http", 0, "http.pubsub_leave_failed topic=%s err=%s",
                 t->topic, cp2p_strerror(rc));
    }
    /* Timed out: the leave is queued and will free t. Otherwise it never ran, and the pubsub
     * may still call the handler with t: kept for cp2p_node_api_stop (subs_orphans_free). */
    if (rc != 0 && rc != CP2P_ETIMEDOUT) {
        t->next = sh->orphans;
        sh->orphans = t;
    }
}

/* At cp2p_node_api_stop, once every HTTP thread is gone: the topics whose leave failed. Try
 * each leave once more (a node still running takes it). A node that refuses with
 * CP2P_ECANCELED is stopping and runs no call any more; by cp2p_node_api_stop's contract its
 * pubsub has closed by now (a started node's API stops before the node, so its leaves went
 * through; an attached node's stops after its host closed, which closes the pubsub with the
 * other services), so no handler can come for t: it is freed here. Anything else (the command
 * queue still full) keeps t, a leak rather than a use after free. */
static void subs_orphans_free(api_shared *sh)
{
    sub_topic *t = sh->orphans;
    sh->orphans = NULL;
    while (t != NULL) {
        sub_topic *next = t->next;
        int rc = cp2p_node_call_on_loop(sh->node, sub_leave_on_loop, t, NULL, API_QUICK_MS);
        if (rc == CP2P_ECANCELED) {
            sub_topic_free(t);
        } else if (rc != 0) {
            CP2P_LOG(CP2P_LOG_INFO, "http", 0, "http.pubsub_topic_kept topic=%s err=%s",
                     t->topic, cp2p_strerror(rc));
        }
        t = next;
    }
}

static ssize_t sub_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    http_sub *s = cls;
    (void)pos;
    pthread_mutex_lock(&s->sh->sub_mu);
    for (;;) {
        if (s->cur != NULL) {
            size_t k = s->cur->len - s->off < max ? s->cur->len - s->off : max;
            memcpy(buf, s->cur->data + s->off, k);
            s->off += k;
            if (s->off == s->cur->len) {
                cp2p_free(s->cur);
                s->cur = NULL;
                s->off = 0;
            }
            pthread_mutex_unlock(&s->sh->sub_mu);
            return (ssize_t)k;
        }
        if (s->head != NULL) {
            s->cur = s->head;
            s->head = s->cur->next;
            if (s->head == NULL) {
                s->tail = NULL;
            }
            s->n--;
            s->bytes -= s->cur->len;
            continue;
        }
        if (s->ended || s->sh->closing) {
            bool dropped = s->dropped;
            pthread_mutex_unlock(&s->sh->sub_mu);
            return dropped ? MHD_CONTENT_READER_END_WITH_ERROR
                           : MHD_CONTENT_READER_END_OF_STREAM;
        }
        /* Nothing for a while: an empty line keeps the connection from timing out (clients
         * skip empty lines). */
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += (time_t)(s->keepalive_ns / 1000000000u);
        if (pthread_cond_timedwait(&s->cond, &s->sh->sub_mu, &ts) != 0 && s->head == NULL &&
            !s->ended && !s->sh->closing) {
            pthread_mutex_unlock(&s->sh->sub_mu);
            buf[0] = '\n';
            return 1;
        }
    }
}

/* The stream is over (the client went, was dropped, or the API stops). */
static void sub_done(void *cls)
{
    http_sub *s = cls;
    api_shared *sh = s->sh;
    sub_topic *leave = NULL;
    pthread_mutex_lock(&sh->sub_op_mu);
    pthread_mutex_lock(&sh->sub_mu);
    sub_topic *t = s->t;
    sub_unlink(s);
    sub_free_queue(s);
    if (t != NULL && t->subs == NULL) {
        for (sub_topic **pp = &sh->topics; *pp != NULL; pp = &(*pp)->next) {
            if (*pp == t) {
                *pp = t->next;
                leave = t;
                break;
            }
        }
    }
    pthread_mutex_unlock(&sh->sub_mu);
    if (leave != NULL) {
        sub_leave(sh, leave);
    }
    pthread_mutex_unlock(&sh->sub_op_mu);
    pthread_cond_destroy(&s->cond);
    cp2p_free(s);
    shared_unref(sh);
}

/* Every stream ends at its next read (cp2p_node_api_stop, before the daemon stops). */
static void subs_close(api_shared *sh)
{
    pthread_mutex_lock(&sh->sub_mu);
    sh->closing = true;
    for (sub_topic *t = sh->topics; t != NULL; t = t->next) {
        for (http_sub *s = t->subs; s != NULL; s = s->next) {
            pthread_cond_signal(&s->cond);
        }
    }
    pthread_mutex_unlock(&sh->sub_mu);
}

static http_sub *sub_new(cp2p_node_api *a)
{
    http_sub *s = cp2p_calloc(1, sizeof(*s));
    pthread_condattr_t ca;
    if (s == NULL) {
        return NULL;
    }
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cond, &ca);
    pthread_condattr_destroy(&ca);
    s->sh = a->sh;
    uint64_t ka = a->cfg.timeout_s / 2;
    s->keepalive_ns = (ka > 0 ? ka : 1) * 1000000000u;
    return s;
}

/* Link s to topic (joining it if the API has not yet). sub_op_mu held. */
static int sub_attach(cp2p_node_api *a, http_sub *s, const char *topic)
{
    api_shared *sh = a->sh;
    pthread_mutex_lock(&sh->sub_mu);
    if (sh->closing || sh->nsubs >= API_SUBS_MAX) {
        int rc = sh->closing ? CP2P_ECANCELED : CP2P_ELIMIT;
        pthread_mutex_unlock(&sh->sub_mu);
        return rc;
    }
    sub_topic *t = sh->topics;
    while (t != NULL && strcmp(t->topic, topic) != 0) {
        t = t->next;
    }
    pthread_mutex_unlock(&sh->sub_mu);
    if (t == NULL) {
        t = cp2p_calloc(1, sizeof(*t));
        if (t == NULL || (t->topic = cp2p__memdup(topic, strlen(topic) + 1)) == NULL) {
            cp2p_free(t);
            return CP2P_ENOMEM;
        }
        t->sh = sh;
        shared_ref(sh);
        int rc = cp2p_node_call_on_loop(a->node, sub_join_on_loop, t, NULL, API_QUICK_MS);
        if (rc != 0) {
            /* Timed out: the join may still run on the loop later, so t is kept. */
            if (rc != CP2P_ETIMEDOUT) {
                sub_topic_free(t);
            }
            return rc;
        }
        pthread_mutex_lock(&sh->sub_mu);
        t->next = sh->topics;
        sh->topics = t;
    } else {
        pthread_mutex_lock(&sh->sub_mu);
    }
    s->t = t;
    s->next = t->subs;
    t->subs = s;
    sh->nsubs++;
    cp2p_metric_set(sh->subs_gauge, (double)sh->nsubs);
    pthread_mutex_unlock(&sh->sub_mu);
    return 0;
}

static enum MHD_Result ep_pubsub_sub(struct MHD_Connection *con, api_req *r, const query *q)
{
    cp2p_node_api *a = r->api;
    const char *topic = query_get(q, "arg");
    if (topic == NULL || topic[0] == '\0' || strlen(topic) > 1024) {
        return reject(con, r, R_BAD_ARGUMENT, MHD_HTTP_BAD_REQUEST,
                      "argument \"arg\" (the topic, at most 1024 bytes) is required");
    }
    http_sub *s = sub_new(a);
    if (s == NULL) {
        return respond_op_error(con, r, "pubsub/sub", CP2P_ENOMEM, NULL);
    }
    pthread_mutex_lock(&a->sh->sub_op_mu);
    int rc = sub_attach(a, s, topic);
    pthread_mutex_unlock(&a->sh->sub_op_mu);
    if (rc != 0) {
        pthread_cond_destroy(&s->cond);
        cp2p_free(s);
        switch (rc) {
        case CP2P_ENOTSUP:
            return respond_error(con, r, MHD_HTTP_NOT_IMPLEMENTED,
                                 "pubsub is not enabled on this node");
        case CP2P_ESTATE:
            return respond_error(con, r, MHD_HTTP_CONFLICT,
                                 "pubsub/sub: the node already joined this topic by other means "
                                 "(cp2p node --topic, cp2p_node_subscribe): subscribing would "
                                 "replace its handler");
        case CP2P_ELIMIT:
            return respond_error(con, r, MHD_HTTP_SERVICE_UNAVAILABLE,
                                 "pubsub/sub: too many subscribers (at most 16)");
        case CP2P_EINVAL:
            return reject(con, r, R_BAD_ARGUMENT, MHD_HTTP_BAD_REQUEST, "invalid topic");
        default: return respond_op_error(con, r, "pubsub/sub", rc, NULL);
        }
    }
    shared_ref(a->sh); /* for sub_done */
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, sub_read, s, sub_done);
    if (resp == NULL) {
        sub_done(s);
        return MHD_NO;
    }
    (void)MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    (void)MHD_add_response_header(resp, "X-Chunked-Output", "1");
    (void)MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    enum MHD_Result ret = MHD_queue_response(con, MHD_HTTP_OK, resp);
    MHD_destroy_response(resp);
    r->answered = true;
    count_answer(r, MHD_HTTP_OK);
    return ret;
}

static enum MHD_Result ep_metrics(struct MHD_Connection *con, api_req *r)
{
    cp2p_node_api *a = r->api;
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(a->d,
                                                         MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
    if (di != NULL) {
        cp2p_metric_set(a->connections, di->num_connections);
    }
    shared_ref(a->sh);
    int rc = cp2p_node_call_on_loop(a->node, refresh_on_loop, a->sh, shared_unref, API_QUICK_MS);
    if (rc == 0) {
        shared_unref(a->sh);
    } else {
        /* Render what the registry holds: a scrape that shows stale host values beats none. */
        cp2p_metric_inc(a->refresh_failed);
        CP2P_LOG(CP2P_LOG_DEBUG, "http", 0, "http.metrics_refresh_failed err=%s",
                 cp2p_strerror(rc));
    }
    cp2p_buf b;
    uint8_t *text = NULL;
    cp2p_buf_init(&b, CP2P_METRICS_RENDER_MAX_DEFAULT);
    if ((rc = cp2p_metrics_render(a->sh->reg, &b)) != 0) {
        cp2p_buf_fini(&b);
        return respond_op_error(con, r, "metrics", rc, NULL);
    }
    size_t len = cp2p_buf_take(&b, &text);
    if (text == NULL) {
        text = cp2p__memdup("", 1);
    }
    return respond(con, r, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", text, len);
}

static enum MHD_Result ep_healthz(struct MHD_Connection *con, api_req *r)
{
    /* Healthy = the loop answers: a stuck loop fails the probe. */
    int rc = cp2p_node_call_on_loop(r->api->node, noop_on_loop, NULL, NULL, API_QUICK_MS);
    if (rc != 0) {
        return respond_op_error(con, r, "healthz", rc, NULL);
    }
    return respond(con, r, MHD_HTTP_OK, "text/plain; charset=utf-8", cp2p__memdup("ok\n", 3), 3);
}

/* ---- the overlay (cp2p/overlay.h, docs/OVERLAY.md) ---- */

/* Our choice: a table answer is cut at this many entries (Total says how many there are). */
#define API_OVERLAY_TABLE_MAX 4096

static bool query_true(const query *q, const char *name)
{
    const char *v = query_get(q, name);
    return v != NULL && (strcmp(v, "true") == 0 || strcmp(v, "1") == 0 || v[0] == '\0');
}

static enum MHD_Result ep_overlay_send(struct MHD_Connection *con, api_req *r, const query *q)
{
    const char *arg = query_get(q, "arg");
    cp2p_peer_id peer;
    bool is_addr;
    if (arg == NULL || parse_peer(arg, &peer, &is_addr) != 0 || is_addr) {
        return reject(con, r, R_BAD_ARGUMENT, MHD_HTTP_BAD_REQUEST,
                      "argument \"arg\" (the destination peer ID) is required; the body is the "
                      "message");
    }
    uint32_t flags = (query_true(q, "reliable") ? CP2P_OVERLAY_RELIABLE : 0) |
                     (query_true(q, "source-route") ? CP2P_OVERLAY_SOURCE_ROUTE : 0);
    const void *data = r->body.ptr != NULL ? (const void *)r->body.ptr : "";
    uint64_t id = 0;
    int rc = cp2p_node_overlay_send(r->api->node, &peer, data, r->body.len, flags,
                                    r->api->cfg.op_timeout_ms, &id);
    if (rc == CP2P_ENOTSUP) {
        return respond_error(con, r, MHD_HTTP_NOT_IMPLEMENTED,
                             "the overlay is not enabled on this node");
    }
    if (rc == CP2P_EINVAL || rc == CP2P_ELIMIT) {
        return reject(con, r, R_BAD_ARGUMENT, MHD_HTTP_BAD_REQUEST,
                      rc == CP2P_ELIMIT ? "message larger than 48 KiB"
                                        : "invalid destination (this node?)");
    }
    if (rc != 0) {
        return respond_op_error(con, r, "overlay/send", rc,
                                rc == CP2P_ENOENT ? "(no route to the peer)" : NULL);
    }
    char text[32];
    snprintf(text, sizeof(text), "%llu", (unsigned long long)id);
    return respond_json(con, r, MHD_HTTP_OK,
                        json_pack("{s:s, s:b}", "Id", text, "Acked",
                                  (flags & CP2P_OVERLAY_RELIABLE) != 0));
}

static enum MHD_Result ep_overlay_table(struct MHD_Connection *con, api_req *r)
{
    bool topo = r->ep == EP_OVERLAY_TOPOLOGY;
    size_t total = 0, esz = topo ? sizeof(cp2p_overlay_link) : sizeof(cp2p_overlay_route);
    void *buf = cp2p_malloc(API_OVERLAY_TABLE_MAX * esz);
    if (buf == NULL) {
        return respond_op_error(con, r, topo ? "overlay/topology" : "overlay/routes",
                                CP2P_ENOMEM, NULL);
    }
    int rc = topo ? cp2p_node_overlay_topology(r->api->node, buf, API_OVERLAY_TABLE_MAX, &total)
                  : cp2p_node_overlay_routes(r->api->node, buf, API_OVERLAY_TABLE_MAX, &total);
    if (rc != 0) {
        cp2p_free(buf);
        if (rc == CP2P_ENOTSUP) {
            return respond_error(con, r, MHD_HTTP_NOT_IMPLEMENTED,
                                 "the overlay is not enabled on this node");
        }
        return respond_op_error(con, r, topo ? "overlay/topology" : "overlay/routes", rc, NULL);
    }
    json_t *arr = json_array();
    size_t n = total < API_OVERLAY_TABLE_MAX ? total : API_OVERLAY_TABLE_MAX;
    for (size_t i = 0; i < n; i++) {
        if (topo) {
            const cp2p_overlay_link *l = (const cp2p_overlay_link *)buf + i;
            json_array_append_new(arr, json_pack("{s:o, s:o, s:I, s:I}", "From",
                                                 peer_json(&l->from), "To", peer_json(&l->to),
                                                 "Cost", (json_int_t)l->cost, "Seq",
                                                 (json_int_t)(l->seq & INT64_MAX)));
        } else {
            const cp2p_overlay_route *rt = (const cp2p_overlay_route *)buf + i;
            json_array_append_new(arr, json_pack("{s:o, s:o, s:I, s:I}", "Peer",
                                                 peer_json(&rt->dst), "NextHop",
                                                 peer_json(&rt->next_hop), "Metric",
                                                 (json_int_t)rt->metric, "Seqno",
                                                 (json_int_t)rt->seqno));
        }
    }
    cp2p_free(buf);
    return respond_json(con, r, MHD_HTTP_OK,
                        json_pack("{s:o, s:I}", topo ? "Links" : "Routes", arr, "Total",
                                  (json_int_t)total));
}

/* The final call: everything checked, the body (if any) in r->body. */
static enum MHD_Result dispatch(struct MHD_Connection *con, api_req *r)
{
    size_t path_len, qlen;
    const char *qs;
    query q = {.n = 0};
    cp2p__http_target_split(r->target, r->target_len, &path_len, &qs, &qlen);
    size_t buflen = CP2P__HTTP_QUERY_BUF(qlen, CP2P__HTTP_MAX_ARGS);
    if ((q.buf = cp2p_malloc(buflen)) == NULL) {
        return respond_op_error(con, r, "request", CP2P_ENOMEM, NULL);
    }
    const char *why = NULL;
    ptrdiff_t n = cp2p__http_query_parse(qs, qlen, q.args, CP2P__HTTP_MAX_ARGS, q.buf, buflen,
                                         &why);
    enum MHD_Result ret;
    if (n < 0) {
        char msg[128];
        snprintf(msg, sizeof(msg), "malformed query string: %s", why);
        ret = reject(con, r, R_BAD_QUERY, MHD_HTTP_BAD_REQUEST, msg);
        cp2p_free(q.buf);
        return ret;
    }
    q.n = (size_t)n;
    switch (r->ep) {
    case EP_METRICS: ret = ep_metrics(con, r); break;
    case EP_HEALTHZ: ret = ep_healthz(con, r); break;
    case EP_ID: ret = ep_id(con, r); break;
    case EP_PEERS: ret = ep_peers(con, r); break;
    case EP_CHANNELS: ret = ep_channels(con, r); break;
    case EP_CONNECT: ret = ep_connect(con, r, &q); break;
    case EP_DISCONNECT: ret = ep_disconnect(con, r, &q); break;
    case EP_PING: ret = ep_ping(con, r, &q); break;
    case EP_PUBSUB_PUB: ret = ep_pubsub_pub(con, r, &q); break;
    case EP_PUBSUB_PEERS: ret = ep_pubsub_peers(con, r, &q); break;
    case EP_PUBSUB_SUB: ret = ep_pubsub_sub(con, r, &q); break;
    case EP_DHT_PUT: ret = ep_dht_put(con, r, &q); break;
    case EP_DHT_GET: ret = ep_dht_get(con, r, &q); break;
    case EP_DHT_FINDPEER: ret = ep_dht_findpeer(con, r, &q); break;
    case EP_DHT_PROVIDE:
    case EP_DHT_FINDPROVS: ret = ep_dht_cid(con, r, &q); break;
    case EP_REQ: ret = ep_req(con, r, &q); break;
    case EP_ARTIFACT_PUT:
    case EP_ARTIFACT_GET:
    case EP_ARTIFACT_LS:
    case EP_ARTIFACT_STAT: ret = ep_artifact(con, r, &q); break;
    case EP_OVERLAY_SEND: ret = ep_overlay_send(con, r, &q); break;
    case EP_OVERLAY_ROUTES:
    case EP_OVERLAY_TOPOLOGY: ret = ep_overlay_table(con, r); break;
    default: ret = reject(con, r, R_NOT_FOUND, MHD_HTTP_NOT_FOUND, "404 page not found"); break;
    }
    cp2p_free(q.buf);
    return ret;
}

/* ---- checks on the headers ---- */

/* 0 when the request carries the token (or none is configured), else 401 or 403. */
static unsigned auth_status(const cp2p_node_api *a, struct MHD_Connection *con)
{
    if (!a->has_token) {
        return 0;
    }
    const char *h = MHD_lookup_connection_value(con, MHD_HEADER_KIND,
                                                MHD_HTTP_HEADER_AUTHORIZATION);
    if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0) {
        return MHD_HTTP_UNAUTHORIZED;
    }
    h += 7;
    while (*h == ' ') {
        h++;
    }
    /* Compare hashes in constant time: the time taken says nothing of the token's bytes, nor
     * of its length. */
    uint8_t got[crypto_generichash_BYTES];
    crypto_generichash(got, sizeof(got), (const uint8_t *)h, strlen(h), NULL, 0);
    bool ok = sodium_memcmp(got, a->token_hash, sizeof(got)) == 0;
    sodium_memzero(got, sizeof(got));
    return ok ? 0 : MHD_HTTP_FORBIDDEN;
}

static endpoint route(const api_req *r)
{
    size_t path_len, qlen;
    const char *qs;
    cp2p__http_target_split(r->target, r->target_len, &path_len, &qs, &qlen);
    for (size_t i = 0; i < EP_OTHER; i++) {
        if (strlen(endpoints[i].path) == path_len &&
            memcmp(endpoints[i].path, r->target, path_len) == 0) {
            return (endpoint)i;
        }
    }
    return EP_OTHER;
}

/* The first call, with the headers: refuse early what can be refused. */
static enum MHD_Result on_headers(struct MHD_Connection *con, api_req *r, const char *method)
{
    cp2p_node_api *a = r->api;
    if (r->target == NULL) {
        return reject(con, r, R_URL_TOO_LONG, MHD_HTTP_URI_TOO_LONG, "request URL too long");
    }
    r->ep = route(r);
    if (r->ep == EP_OTHER) {
        return reject(con, r, R_NOT_FOUND, MHD_HTTP_NOT_FOUND, "404 page not found");
    }
    bool get = strcmp(method, MHD_HTTP_METHOD_GET) == 0 ||
               strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
    bool post = strcmp(method, MHD_HTTP_METHOD_POST) == 0;
    if (endpoints[r->ep].get ? !get : !post) {
        return reject(con, r, R_METHOD, MHD_HTTP_METHOD_NOT_ALLOWED,
                      endpoints[r->ep].get ? "method not allowed: use GET"
                                           : "method not allowed: use POST");
    }
    if (r->ep != EP_HEALTHZ) {
        unsigned st = auth_status(a, con);
        if (st != 0) {
            return reject(con, r, st == MHD_HTTP_UNAUTHORIZED ? R_UNAUTHORIZED : R_FORBIDDEN, st,
                          st == MHD_HTTP_UNAUTHORIZED
                              ? "missing access token (Authorization: Bearer <token>)"
                              : "wrong access token");
        }
    }
    const char *cl = MHD_lookup_connection_value(con, MHD_HEADER_KIND,
                                                 MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl != NULL) {
        /* Digits only; compare by length first so no value can overflow. */
        size_t v = 0, digits = strspn(cl, "0123456789");
        bool big = cl[digits] != '\0' || digits == 0 || digits > 18;
        for (size_t i = 0; !big && i < digits; i++) {
            v = v * 10 + (size_t)(cl[i] - '0');
        }
        if (big || v > a->cfg.max_body) {
            return reject(con, r, R_BODY_TOO_LARGE, MHD_HTTP_CONTENT_TOO_LARGE,
                          "request body too large");
        }
    }
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *con, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls)
{
    api_req *r = *con_cls;
    (void)cls;
    (void)url;
    (void)version;
    if (r == NULL) {
        return MHD_NO; /* out of memory in on_uri: drop the connection */
    }
    if (!r->started) {
        r->started = true;
        return on_headers(con, r, method);
    }
    if (r->answered) {
        *upload_data_size = 0; /* answered early: the rest of the body is not ours */
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        if (cp2p_buf_append(&r->body, upload_data, *upload_data_size) != 0) {
            /* A body without a declared length grew past the bound: it cannot be answered
             * in the middle of the upload, so the connection is dropped. */
            cp2p_metric_inc(r->api->rejected[R_BODY_TOO_LARGE]);
            return MHD_NO;
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    return dispatch(con, r);
}

static void *on_uri(void *cls, const char *uri, struct MHD_Connection *con)
{
    cp2p_node_api *a = cls;
    api_req *r = cp2p_calloc(1, sizeof(*r));
    (void)con;
    if (r == NULL) {
        return NULL;
    }
    r->api = a;
    r->t0_ns = uv_hrtime();
    r->ep = EP_OTHER;
    cp2p_buf_init(&r->body, a->cfg.max_body);
    size_t len = strnlen(uri, a->cfg.max_url + 1);
    if (len <= a->cfg.max_url) {
        r->target = cp2p__memdup(uri, len + 1);
        r->target_len = len;
        if (r->target == NULL) {
            cp2p_free(r);
            return NULL;
        }
    }
    return r;
}

static void on_completed(void *cls, struct MHD_Connection *con, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    api_req *r = *con_cls;
    (void)cls;
    (void)con;
    (void)toe;
    if (r != NULL) {
        cp2p_buf_fini(&r->body);
        cp2p_free(r->target);
        cp2p_free(r);
        *con_cls = NULL;
    }
}

/* ---- start and stop ---- */

void cp2p_node_api_config_default(cp2p_node_api_config *c)
{
    *c = (cp2p_node_api_config){
        .listen = CP2P_NODE_API_DEFAULT_LISTEN,
        .max_connections = CP2P_NODE_API_MAX_CONNECTIONS,
        .timeout_s = CP2P_NODE_API_TIMEOUT_S,
        .max_url = CP2P_NODE_API_MAX_URL,
        .max_body = CP2P_NODE_API_MAX_BODY,
        .op_timeout_ms = CP2P_NODE_API_OP_TIMEOUT_MS,
    };
}

/* A token is printable ASCII without spaces (it travels in a header). */
static bool token_valid(const char *t)
{
    size_t len = strnlen(t, CP2P_NODE_API_TOKEN_MAX + 1);
    if (len == 0 || len > CP2P_NODE_API_TOKEN_MAX) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (t[i] <= ' ' || t[i] > '~') {
            return false;
        }
    }
    return true;
}

int cp2p_node_api_start(cp2p_node *n, const cp2p_node_api_config *cfg, cp2p_node_api **out)
{
    cp2p_node_api_config def;
    char host[CP2P_NODE_API_ADDR_MAX];
    uint16_t port;
    bool ipv6, loopback;
    union {
        struct sockaddr sa;
        struct sockaddr_in in4;
        struct sockaddr_in6 in6;
    } sa;
    if (cfg == NULL) {
        cp2p_node_api_config_default(&def);
        cfg = &def;
    }
    const char *listen = cfg->listen != NULL ? cfg->listen : CP2P_NODE_API_DEFAULT_LISTEN;
    if (n == NULL || out == NULL || cfg->max_connections == 0 || cfg->timeout_s == 0 ||
        cfg->max_url < 64 || cfg->max_url > 1024 * 1024 || cfg->max_body == 0 || cfg->op_timeout_ms == 0 ||
        (cfg->token != NULL && !token_valid(cfg->token)) ||
        cp2p__http_listen_split(listen, host, sizeof(host), &port, &ipv6) != 0) {
        return CP2P_EINVAL;
    }
    if (ipv6) {
        if (uv_ip6_addr(host, port, &sa.in6) != 0) {
            return CP2P_EINVAL;
        }
        static const uint8_t v6_loopback[16] = {[15] = 1};
        loopback = memcmp(&sa.in6.sin6_addr, v6_loopback, 16) == 0;
    } else {
        if (uv_ip4_addr(host, port, &sa.in4) != 0) {
            return CP2P_EINVAL;
        }
        loopback = ((const uint8_t *)&sa.in4.sin_addr)[0] == 127;
    }
    if (!loopback && cfg->token == NULL) {
        return CP2P_EPERM;
    }
    if (sodium_init() < 0) {
        return CP2P_EIO;
    }
    cp2p_node_api *a = cp2p_calloc(1, sizeof(*a));
    api_shared *sh = cp2p_calloc(1, sizeof(*sh));
    int rc = a == NULL || sh == NULL ? CP2P_ENOMEM : 0;
    if (rc == 0) {
        atomic_init(&sh->refs, 1);
        pthread_mutex_init(&sh->sub_mu, NULL);
        pthread_mutex_init(&sh->sub_op_mu, NULL);
        sh->node = n;
        a->sh = sh;
        a->node = n;
        a->cfg = *cfg;
        a->cfg.listen = NULL;
        a->cfg.token = NULL;
        rc = cp2p_metrics_new(&sh->reg);
    }
    if (rc == 0) {
        rc = register_http_metrics(a);
    }
    if (rc != 0) {
        if (sh != NULL) {
            cp2p_metrics_free(sh->reg);
        }
        cp2p_free(sh);
        cp2p_free(a);
        return rc;
    }
    if (cfg->token != NULL) {
        a->has_token = true;
        crypto_generichash(a->token_hash, sizeof(a->token_hash), (const uint8_t *)cfg->token,
                           strlen(cfg->token), NULL, 0);
    }
    /* One thread per connection, at most max_connections, each closed after timeout_s of
     * silence; each connection's memory pool holds the longest URL we accept plus headers. */
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL_INTERNAL_THREAD |
                     (ipv6 ? MHD_USE_IPv6 : 0);
    a->d = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, a, MHD_OPTION_SOCK_ADDR, &sa.sa,
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->max_connections,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->timeout_s,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(2 * cfg->max_url + 32 * 1024),
        MHD_OPTION_URI_LOG_CALLBACK, on_uri, a, MHD_OPTION_NOTIFY_COMPLETED, on_completed, a,
        MHD_OPTION_END);
    const union MHD_DaemonInfo *di =
        a->d != NULL ? MHD_get_daemon_info(a->d, MHD_DAEMON_INFO_BIND_PORT) : NULL;
    if (di == NULL) {
        if (a->d != NULL) {
            MHD_stop_daemon(a->d);
        }
        CP2P_LOG(CP2P_LOG_INFO, "http", 0, "http.listen_failed addr=%s", listen);
        shared_unref(sh);
        cp2p_free(a);
        return CP2P_EIO;
    }
    snprintf(a->addr, sizeof(a->addr), ipv6 ? "[%s]:%u" : "%s:%u", host, (unsigned)di->port);
    CP2P_LOG(CP2P_LOG_INFO, "http", 0, "http.listening addr=%s token=%s", a->addr,
             a->has_token ? "yes" : "no");
    cp2p__node_set_request_latency(n, a->req_latency);
    *out = a;
    return 0;
}

int cp2p_node_api_addr(const cp2p_node_api *a, char *out, size_t outlen)
{
    size_t len = strlen(a->addr);
    if (len + 1 > outlen) {
        return CP2P_ENOSPC;
    }
    memcpy(out, a->addr, len + 1);
    return 0;
}

cp2p_metrics *cp2p_node_api_metrics(cp2p_node_api *a)
{
    return a->sh->reg;
}

void cp2p_node_api_stop(cp2p_node_api *a)
{
    if (a == NULL) {
        return;
    }
    cp2p__node_set_request_latency(a->node, NULL); /* before the registry can go */
    subs_close(a->sh);     /* pubsub/sub streams end at their next read */
    MHD_stop_daemon(a->d); /* closes every connection and joins their threads */
    subs_orphans_free(a->sh);
    shared_unref(a->sh);   /* a loop call still queued holds its own reference */
    sodium_memzero(a->token_hash, sizeof(a->token_hash));
    cp2p_free(a);
}
