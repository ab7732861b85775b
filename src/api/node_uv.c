/* The node: a host on its own loop thread, driven through a bounded command queue (see
 * cp2p/node.h). One mutex guards the queues, the completion flags and the counters; the loop
 * thread owns the host and never blocks on a caller. A command is shared by the caller and the
 * loop (two references): whoever lets go last frees it, so a caller that gave up on its timeout
 * never leaves the loop with a dangling pointer. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cp2p/kad.h>
#include <cp2p/node.h>
#include <cp2p/pubsub.h>
#include <cp2p/protocols.h>
#include <cp2p/reqresp.h>

#include "api/node_internal.h"
#include "util/alloc.h"
#include "util/limits.h"
#include "util/log_internal.h"
#include "util/queue.h"

typedef enum {
    CMD_DIAL,
    CMD_ADD_ADDRS,
    CMD_SET_EVENTS,
    CMD_CALL, /* cp2p_node_call_on_loop */
} cmd_type;

typedef struct node_cmd {
    cp2p_node *node;
    cmd_type type;
    int refs;              /* under node->mu */
    bool done;             /* under node->mu */
    int status;
    pthread_cond_t cond;
    char *text;            /* dial address */
    cp2p_peer_id peer;
    uint64_t timeout_ms;
    cp2p_node_event_handler ev_cb;
    void *hud;
    cp2p_node_exec exec;
    cp2p_multiaddr **addrs; /* CMD_ADD_ADDRS, owned */
    size_t naddrs;
    cp2p_node_call_fn call_fn; /* CMD_CALL: run on the loop with call_ud */
    void *call_ud;
    void (*call_free)(void *); /* frees call_ud with the command, unless the caller took it */
} node_cmd;

/* A connection event for the event handler. */
typedef struct ev_job {
    cp2p__node_job job;
    cp2p_node_event_type type;
    int err;
    cp2p_node_event_handler cb;
    void *ud;
    cp2p_peer_id peer;
} ev_job;

struct cp2p_node {
    cp2p_node_config cfg;
    cp2p_privkey *key;
    cp2p_peer_id id;
    uv_loop_t loop;
    uv_async_t async;
    pthread_t thread;
    pthread_t *workers;
    uint32_t nworkers;
    cp2p_host *host;
    cp2p_kad *kad;             /* the DHT when cfg.dht (loop thread only) */
    cp2p_pubsub *ps;           /* gossipsub when cfg.pubsub (loop thread only) */
    cp2p__node_ps *psx;        /* node_pubsub.c's state (loop thread only) */
    cp2p__node_ovl *ovx;       /* node_overlay.c's state when an overlay runs (loop thread) */
    cp2p__node_req *reqx;      /* node_req.c's state (loop thread only) */
    cp2p_node_event_handler ev_cb; /* loop thread only */
    void *ev_ud;
    cp2p_node_exec ev_exec;
    pthread_mutex_t mu;
    pthread_cond_t room;       /* the command queue has room */
    pthread_cond_t work;       /* the job queue has work, or the workers must stop */
    pthread_cond_t ready;      /* the loop thread finished starting */
    cp2p_queue cmds;           /* node_cmd *, caller -> loop */
    cp2p_queue jobs;           /* node_job *, loop -> workers */
    cp2p_queue answers;        /* node_job *, workers -> loop (as large as jobs + workers) */
    bool stopping;             /* no new commands; the loop winds down */
    bool workers_stop;
    bool workers_joined;       /* set by cp2p_node_stop: the loop may shut down */
    bool async_closed;         /* the loop closed its async handle: nobody may wake it */
    unsigned callers;          /* threads inside a public call: the node outlives them */
    pthread_cond_t idle;       /* callers dropped to 0 */
    bool started;
    int start_rc;
    cp2p_node_stats stats;
    /* cp2p__node_set_request_latency: where answered requests' latencies go (under mu). */
    cp2p_metric *req_latency;
    char **addrs;              /* dialable addresses, fixed at start */
    size_t naddrs;
    char **listen;
    bool attached;             /* cp2p_node_attach: the host, pubsub and DHT are the caller's */
    bool detaching;            /* cp2p_node_detach_begin ran */
};

void cp2p_node_config_default(cp2p_node_config *c)
{
    *c = (cp2p_node_config){0};
    cp2p_host_config_default(&c->host);
    c->command_queue = CP2P_NODE_COMMAND_QUEUE;
    c->workers = CP2P_NODE_WORKERS;
    c->worker_queue = CP2P_NODE_WORKER_QUEUE;
    c->max_request_bytes = CP2P_REQRESP_MAX_REQUEST_BYTES;
    c->max_response_bytes = CP2P_REQRESP_MAX_RESPONSE_BYTES;
    cp2p_kad_config_default(&c->kad);
    cp2p_pubsub_config_default(&c->pubsub_cfg);
    cp2p_overlay_config_default(&c->overlay_cfg);
}

/* ---- time and conditions ---- */

static struct timespec deadline_after(uint64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

static int cond_init_monotonic(pthread_cond_t *c)
{
    pthread_condattr_t a;
    if (pthread_condattr_init(&a) != 0) {
        return CP2P_ENOMEM;
    }
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(c, &a) == 0 ? 0 : CP2P_ENOMEM;
    pthread_condattr_destroy(&a);
    return rc;
}

/* Wake the loop thread. Called with n->mu held: the loop closes its async handle under the
 * same mutex, so no wake-up ever reaches a closed handle. */
static void wake_locked(cp2p_node *n)
{
    if (!n->async_closed) {
        uv_async_send(&n->async);
    }
}

/* Public calls bracket themselves with enter/leave so cp2p_node_stop frees the node only once
 * every caller has left. */
static bool enter(cp2p_node *n)
{
    pthread_mutex_lock(&n->mu);
    bool ok = !n->stopping;
    n->callers += ok;
    pthread_mutex_unlock(&n->mu);
    return ok;
}

static void leave(cp2p_node *n)
{
    pthread_mutex_lock(&n->mu);
    if (--n->callers == 0) {
        pthread_cond_broadcast(&n->idle);
    }
    pthread_mutex_unlock(&n->mu);
}

/* ---- commands ---- */

static node_cmd *cmd_new(cp2p_node *n, cmd_type type)
{
    node_cmd *c = cp2p_calloc(1, sizeof(*c));
    if (c == NULL) {
        return NULL;
    }
    if (cond_init_monotonic(&c->cond) != 0) {
        cp2p_free(c);
        return NULL;
    }
    c->node = n;
    c->type = type;
    c->refs = 1;
    return c;
}

static void cmd_unref_locked(node_cmd *c)
{
    if (--c->refs > 0) {
        return;
    }
    pthread_cond_destroy(&c->cond);
    for (size_t i = 0; i < c->naddrs; i++) {
        cp2p_multiaddr_free(c->addrs[i]);
    }
    cp2p_free(c->addrs);
    cp2p_free(c->text);
    if (c->call_free != NULL) {
        c->call_free(c->call_ud);
    }
    cp2p_free(c);
}

/* Loop thread: report a result and drop the loop's reference. */
static void cmd_complete(node_cmd *c, int status)
{
    cp2p_node *n = c->node;
    pthread_mutex_lock(&n->mu);
    c->status = n->stopping && status != 0 ? CP2P_ECANCELED : status;
    c->done = true;
    pthread_cond_signal(&c->cond);
    cmd_unref_locked(c);
    pthread_mutex_unlock(&n->mu);
}

/* Caller thread: queue c and wait for its result within timeout_ms. On success the caller
 * still holds its reference (to read the results; release it with cmd_release); on failure
 * the reference is gone. */
static int cmd_run(cp2p_node *n, node_cmd *c, uint64_t timeout_ms)
{
    struct timespec dl = deadline_after(timeout_ms);
    int rc;
    pthread_mutex_lock(&n->mu);
    while (!n->stopping && cp2p__queue_full(&n->cmds)) {
        if (timeout_ms == 0 || pthread_cond_timedwait(&n->room, &n->mu, &dl) != 0) {
            n->stats.commands_refused_full++;
            cmd_unref_locked(c);
            pthread_mutex_unlock(&n->mu);
            return CP2P_EFULL;
        }
    }
    if (n->stopping) {
        cmd_unref_locked(c);
        pthread_mutex_unlock(&n->mu);
        return CP2P_ECANCELED;
    }
    c->refs = 2;
    (void)!cp2p__queue_push(&n->cmds, c); /* room was checked under the lock */
    n->stats.commands++;
    wake_locked(n);
    while (!c->done) {
        if (pthread_cond_timedwait(&c->cond, &n->mu, &dl) != 0 && !c->done) {
            break; /* our deadline; the loop's own timeout completes it soon after */
        }
    }
    rc = c->done ? c->status : CP2P_ETIMEDOUT;
    if (rc != 0) {
        cmd_unref_locked(c);
    }
    pthread_mutex_unlock(&n->mu);
    return rc;
}

static void cmd_release(cp2p_node *n, node_cmd *c)
{
    pthread_mutex_lock(&n->mu);
    cmd_unref_locked(c);
    pthread_mutex_unlock(&n->mu);
}

/* ---- loop thread: inbound requests ---- */

/* ---- the worker pool ---- */

int cp2p__node_job_submit(cp2p_node *n, cp2p__node_job *j, size_t offset)
{
    pthread_mutex_lock(&n->mu);
    if (n->workers_stop || cp2p__queue_push(&n->jobs, j) != 0) {
        pthread_mutex_unlock(&n->mu);
        return CP2P_EFULL;
    }
    (*(uint64_t *)((char *)&n->stats + offset))++;
    pthread_cond_signal(&n->work);
    pthread_mutex_unlock(&n->mu);
    return 0;
}

void cp2p__node_count(cp2p_node *n, size_t offset)
{
    pthread_mutex_lock(&n->mu);
    (*(uint64_t *)((char *)&n->stats + offset))++;
    pthread_mutex_unlock(&n->mu);
}

void cp2p__node_job_finish(cp2p_node *n, cp2p__node_job *j, bool canceled)
{
    if (j->ops->answer != NULL) {
        j->ops->answer(n, j, canceled);
    }
    j->ops->free(j);
}

static void *worker_main(void *arg)
{
    cp2p_node *n = arg;
    pthread_mutex_lock(&n->mu);
    for (;;) {
        cp2p__node_job *j = NULL;
        while (!n->workers_stop && (j = cp2p__queue_pop(&n->jobs)) == NULL) {
            pthread_cond_wait(&n->work, &n->mu);
        }
        if (j == NULL) {
            break; /* stopping: queued jobs are canceled by the loop */
        }
        pthread_mutex_unlock(&n->mu);
        bool answer = j->ops->work(j);
        if (!answer) {
            j->ops->free(j);
        }
        pthread_mutex_lock(&n->mu);
        if (answer) {
            (void)!cp2p__queue_push(&n->answers, j); /* sized for every job there can be */
            wake_locked(n);
        }
    }
    pthread_mutex_unlock(&n->mu);
    return NULL;
}

/* ---- loop thread: commands ---- */

static void on_dialed(cp2p_host *h, int status, cp2p_conn *conn, void *ud)
{
    node_cmd *c = ud;
    (void)h;
    if (status == 0) {
        c->peer = *cp2p_conn_peer_id(conn);
    }
    cmd_complete(c, status);
}

/* Wall-clock ms for the peerstore (see cp2p/peerstore.h). */
static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- loop thread: the DHT (node_dht.c runs its jobs through CMD_CALL) ---- */

cp2p_kad *cp2p__node_kad(cp2p_node *n)
{
    return n->kad;
}

cp2p_pubsub *cp2p__node_pubsub(cp2p_node *n)
{
    return n->ps;
}

uint32_t cp2p__node_workers(const cp2p_node *n)
{
    return n->nworkers;
}

cp2p__node_ps **cp2p__node_ps_slot(cp2p_node *n)
{
    return &n->psx;
}

cp2p__node_ovl **cp2p__node_ovl_slot(cp2p_node *n)
{
    return &n->ovx;
}

cp2p__node_req **cp2p__node_req_slot(cp2p_node *n)
{
    return &n->reqx;
}

cp2p_host *cp2p__node_host(cp2p_node *n)
{
    return n->host;
}

const cp2p_node_config *cp2p__node_config(const cp2p_node *n)
{
    return &n->cfg;
}

static void run_command(cp2p_node *n, node_cmd *c)
{
    int rc;
    if (n->stopping) {
        cmd_complete(c, CP2P_ECANCELED);
        return;
    }
    switch (c->type) {
    case CMD_DIAL: {
        cp2p_multiaddr *ma;
        rc = cp2p_multiaddr_parse(c->text, strlen(c->text), &ma);
        if (rc == 0) {
            rc = cp2p_host_dial(n->host, ma, on_dialed, c);
            cp2p_multiaddr_free(ma);
        }
        if (rc != 0) {
            cmd_complete(c, rc);
        }
        return;
    }
    case CMD_ADD_ADDRS:
        cmd_complete(c, cp2p_peerstore_add_addrs(cp2p_host_peerstore(n->host), &c->peer,
                                                 (const cp2p_multiaddr *const *)c->addrs,
                                                 c->naddrs, c->timeout_ms,
                                                 CP2P_ADDR_SOURCE_MANUAL, wall_ms()));
        return;
    case CMD_SET_EVENTS:
        n->ev_cb = c->ev_cb;
        n->ev_ud = c->hud;
        n->ev_exec = c->exec;
        cmd_complete(c, 0);
        return;
    case CMD_CALL:
        c->call_fn((cp2p_node_call *)c, n->host, c->call_ud); /* it completes c */
        return;
    }
    cmd_complete(c, CP2P_EINVAL);
}

static void close_async(cp2p_node *n)
{
    pthread_mutex_lock(&n->mu);
    n->async_closed = true;
    uv_close((uv_handle_t *)&n->async, NULL);
    pthread_mutex_unlock(&n->mu);
}

static void on_host_closed(cp2p_host *h, void *ud)
{
    cp2p_node *n = ud;
    (void)h;
    n->host = NULL;
    close_async(n);
}

/* Loop thread: refuse new commands, fail the queued ones, wake callers waiting for room. */
static void refuse_commands(cp2p_node *n)
{
    node_cmd *c;
    pthread_mutex_lock(&n->mu);
    n->stopping = true;
    while ((c = cp2p__queue_pop(&n->cmds)) != NULL) {
        pthread_mutex_unlock(&n->mu);
        cmd_complete(c, CP2P_ECANCELED);
        pthread_mutex_lock(&n->mu);
    }
    pthread_cond_broadcast(&n->room);
    pthread_mutex_unlock(&n->mu);
}

/* Wind down on the loop thread: fail what is queued, answer what the workers left, close. */
static void loop_shutdown(cp2p_node *n)
{
    cp2p__node_job *j;
    refuse_commands(n);
    /* The workers are joined (cp2p_node_stop did it before waking us): what remains is ours. */
    while ((j = cp2p__queue_pop(&n->answers)) != NULL) {
        cp2p__node_job_finish(n, j, false);
    }
    while ((j = cp2p__queue_pop(&n->jobs)) != NULL) {
        cp2p__node_job_finish(n, j, true);
    }
    cp2p__node_req_unregister(n, n->reqx);
    cp2p_kad_close(n->kad); /* its operations complete with CP2P_ECANCELED */
    n->kad = NULL;
    cp2p_pubsub_close(n->ps);
    n->ps = NULL;
    cp2p__node_overlay_close(n->ovx); /* waiting sends complete with CP2P_ECANCELED */
    cp2p_host_close(n->host, on_host_closed, n);
}

static void on_async(uv_async_t *a)
{
    cp2p_node *n = a->data;
    node_cmd *c;
    cp2p__node_job *j;
    bool stopping;
    if (n->host == NULL) {
        return;
    }
    pthread_mutex_lock(&n->mu);
    stopping = n->stopping;
    while (!stopping && (c = cp2p__queue_pop(&n->cmds)) != NULL) {
        pthread_cond_signal(&n->room);
        pthread_mutex_unlock(&n->mu);
        run_command(n, c);
        pthread_mutex_lock(&n->mu);
        stopping = n->stopping;
    }
    while (!stopping && (j = cp2p__queue_pop(&n->answers)) != NULL) {
        pthread_mutex_unlock(&n->mu);
        cp2p__node_job_finish(n, j, false);
        pthread_mutex_lock(&n->mu);
    }
    bool shut = n->stopping && n->workers_joined;
    pthread_mutex_unlock(&n->mu);
    if (shut) {
        loop_shutdown(n);
    }
}

/* ---- start and stop ---- */

static bool ev_work(cp2p__node_job *j)
{
    ev_job *e = (ev_job *)j;
    e->cb(e->ud, e->type, &e->peer, e->err);
    return false;
}

static void ev_free(cp2p__node_job *j)
{
    cp2p_free(j);
}

/* An event the node stopped before delivering is moot: no answer. */
static const cp2p__node_job_ops EV_OPS = {ev_work, NULL, ev_free};

/* Loop thread: a host event for the application's event handler. */
static void on_host_event(cp2p_host *h, const cp2p_event *ev, void *ud)
{
    cp2p_node *n = ud;
    cp2p_node_event_type type;
    (void)h;
    switch (ev->type) {
    case CP2P_EVENT_CONN_OPENED: type = CP2P_NODE_EVENT_CONNECTED; break;
    case CP2P_EVENT_CONN_CLOSED: type = CP2P_NODE_EVENT_DISCONNECTED; break;
    case CP2P_EVENT_PEER_IDENTIFIED: type = CP2P_NODE_EVENT_IDENTIFIED; break;
    default: return;
    }
    if (n->ev_cb == NULL || ev->conn == NULL) {
        return;
    }
    if (n->ev_exec == CP2P_NODE_ON_LOOP) {
        n->ev_cb(n->ev_ud, type, cp2p_conn_peer_id(ev->conn), ev->err);
        CP2P__NODE_COUNT(n, events_delivered);
        return;
    }
    ev_job *j = cp2p_calloc(1, sizeof(*j));
    if (j != NULL) {
        *j = (ev_job){.job.ops = &EV_OPS, .type = type, .err = ev->err, .cb = n->ev_cb,
                      .ud = n->ev_ud, .peer = *cp2p_conn_peer_id(ev->conn)};
    }
    if (j == NULL || CP2P__NODE_SUBMIT(n, &j->job, events_delivered) != 0) {
        CP2P__NODE_COUNT(n, events_dropped);
        cp2p_free(j);
    }
}

/* Loop thread: the dialable addresses, kept as text for cp2p_node_addr (fixed from now on). */
static void collect_addrs(cp2p_node *n)
{
    cp2p_multiaddr *addrs[CP2P_NODE_MAX_ADDRS];
    ptrdiff_t na = cp2p_host_addrs(n->host, true, addrs, CP2P_NODE_MAX_ADDRS);
    n->addrs = na > 0 ? cp2p_calloc((size_t)na, sizeof(char *)) : NULL;
    for (ptrdiff_t i = 0; i < na; i++) {
        cp2p_buf b;
        cp2p_buf_init(&b, CP2P_MULTIADDR_STR_MAX);
        if (n->addrs != NULL && cp2p_multiaddr_to_string(addrs[i], &b) == 0) {
            uint8_t *s;
            (void)cp2p_buf_take(&b, &s);
            n->addrs[n->naddrs++] = (char *)s;
        }
        cp2p_buf_fini(&b);
        cp2p_multiaddr_free(addrs[i]);
    }
}

static int loop_start(cp2p_node *n)
{
    int rc = cp2p_host_new(&n->loop, &n->cfg.host, &n->host);
    if (rc != 0) {
        return rc;
    }
    cp2p_host_set_event_cb(n->host, on_host_event, n);
    for (size_t i = 0; i < n->cfg.n_listen && rc == 0; i++) {
        cp2p_multiaddr *ma;
        rc = cp2p_multiaddr_parse(n->listen[i], strlen(n->listen[i]), &ma);
        if (rc == 0) {
            rc = cp2p_host_listen(n->host, ma);
            cp2p_multiaddr_free(ma);
        }
    }
    if (rc == 0) {
        collect_addrs(n);
    }
    if (rc == 0 && n->cfg.pubsub) {
        cp2p_pubsub_config pc = n->cfg.pubsub_cfg;
        pc.async_validation = true; /* see on_ps_validate */
        rc = cp2p_pubsub_new(n->host, &pc, &n->ps);
        if (rc == 0) {
            cp2p__node_pubsub_attach(n, n->ps); /* see node_pubsub.c */
        }
    }
    if (rc == 0 && n->cfg.overlay) {
        rc = cp2p__node_overlay_open(n->host, &n->cfg.overlay_cfg, n->cfg.overlay_ud, &n->ovx);
    }
    if (rc == 0 && n->cfg.dht) {
        rc = cp2p_kad_new(n->host, &n->cfg.kad, &n->kad);
        for (size_t i = 0; rc == 0 && i < n->cfg.n_dht_namespaces; i++) {
            rc = cp2p_kad_add_validator(n->kad, n->cfg.dht_namespaces[i], cp2p_kad_accept_any,
                                        NULL, NULL);
        }
        if (rc != 0 && n->kad != NULL) {
            cp2p_kad_close(n->kad);
            n->kad = NULL;
        }
    }
    return rc;
}

static void *loop_main(void *arg)
{
    cp2p_node *n = arg;
    int rc = loop_start(n);
    pthread_mutex_lock(&n->mu);
    n->start_rc = rc;
    n->started = true;
    pthread_cond_broadcast(&n->ready);
    pthread_mutex_unlock(&n->mu);
    if (rc != 0) {
        cp2p__node_overlay_close(n->ovx); /* before its host */
        if (n->host != NULL) {
            cp2p_host_close(n->host, NULL, NULL);
            n->host = NULL;
        }
        close_async(n);
    }
    uv_run(&n->loop, UV_RUN_DEFAULT);
    return NULL;
}

static void node_free(cp2p_node *n)
{
    cp2p__node_overlay_free(n->ovx);
    cp2p__node_pubsub_free(n->psx);
    cp2p__node_req_free(n->reqx);
    for (size_t i = 0; i < n->naddrs; i++) {
        cp2p_free(n->addrs[i]);
    }
    cp2p_free(n->addrs);
    for (size_t i = 0; n->listen != NULL && i < n->cfg.n_listen; i++) {
        cp2p_free(n->listen[i]);
    }
    cp2p_free(n->listen);
    cp2p__queue_fini(&n->cmds, NULL, NULL);
    cp2p__queue_fini(&n->jobs, NULL, NULL);
    cp2p__queue_fini(&n->answers, NULL, NULL);
    cp2p_free(n->workers);
    cp2p_privkey_free(n->key);
    pthread_mutex_destroy(&n->mu);
    pthread_cond_destroy(&n->room);
    pthread_cond_destroy(&n->work);
    pthread_cond_destroy(&n->ready);
    pthread_cond_destroy(&n->idle);
    cp2p_free(n);
}

int cp2p_node_start(const cp2p_node_config *cfg, cp2p_node **out)
{
    cp2p_node *n;
    cp2p_buf kb;
    int rc;
    if (cfg == NULL || cfg->host.identity == NULL || cfg->command_queue == 0 ||
        cfg->worker_queue == 0 || cfg->workers > CP2P_NODE_MAX_WORKERS ||
        (cfg->n_listen > 0 && cfg->listen == NULL)) {
        return CP2P_EINVAL;
    }
    /* A peer closing while we write must cost an EPIPE, not the process (see cp2p/host.h). */
    struct sigaction sa;
    if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL) {
        signal(SIGPIPE, SIG_IGN);
    }
    if ((n = cp2p_calloc(1, sizeof(*n))) == NULL) {
        return CP2P_ENOMEM;
    }
    n->cfg = *cfg;
    pthread_mutex_init(&n->mu, NULL);
    pthread_cond_init(&n->work, NULL);
    pthread_cond_init(&n->ready, NULL);
    pthread_cond_init(&n->idle, NULL);
    rc = cond_init_monotonic(&n->room);
    /* Our own copy of the key (the caller may free theirs). */
    cp2p_buf_init(&kb, CP2P_KEY_PB_MAX);
    if (rc == 0 && (rc = cp2p_privkey_marshal(cfg->host.identity, &kb)) == 0) {
        rc = cp2p_privkey_unmarshal(kb.ptr, kb.len, &n->key);
    }
    cp2p_buf_fini_wipe(&kb);
    n->cfg.host.identity = n->key;
    if (rc == 0) {
        rc = cp2p_peer_id_from_pubkey(cp2p_privkey_public(n->key), &n->id);
    }
    if (rc == 0 && cfg->n_listen > 0) {
        n->listen = cp2p_calloc(cfg->n_listen, sizeof(char *));
        for (size_t i = 0; n->listen != NULL && i < cfg->n_listen && rc == 0; i++) {
            n->listen[i] = cp2p__memdup(cfg->listen[i], strlen(cfg->listen[i]) + 1);
            rc = n->listen[i] == NULL ? CP2P_ENOMEM : 0;
        }
        rc = n->listen == NULL ? CP2P_ENOMEM : rc;
    }
    n->cfg.listen = NULL;
    if (rc == 0) {
        rc = cp2p__queue_init(&n->cmds, cfg->command_queue, CP2P_QUEUE_REJECT, NULL, NULL);
    }
    if (rc == 0) {
        rc = cp2p__queue_init(&n->jobs, cfg->worker_queue, CP2P_QUEUE_REJECT, NULL, NULL);
    }
    if (rc == 0) {
        rc = cp2p__queue_init(&n->answers, cfg->worker_queue + cfg->workers + 1,
                              CP2P_QUEUE_REJECT, NULL, NULL);
    }
    if (rc == 0 && uv_loop_init(&n->loop) != 0) {
        rc = CP2P_EIO;
    }
    if (rc != 0) {
        node_free(n);
        return rc;
    }
    if (uv_async_init(&n->loop, &n->async, on_async) != 0) {
        (void)!uv_loop_close(&n->loop);
        node_free(n);
        return CP2P_EIO;
    }
    n->async.data = n;
    n->workers = cfg->workers > 0 ? cp2p_calloc(cfg->workers, sizeof(pthread_t)) : NULL;
    if ((cfg->workers > 0 && n->workers == NULL) ||
        pthread_create(&n->thread, NULL, loop_main, n) != 0) {
        uv_close((uv_handle_t *)&n->async, NULL);
        uv_run(&n->loop, UV_RUN_DEFAULT);
        (void)!uv_loop_close(&n->loop);
        node_free(n);
        return CP2P_ENOMEM;
    }
    pthread_mutex_lock(&n->mu);
    while (!n->started) {
        pthread_cond_wait(&n->ready, &n->mu);
    }
    rc = n->start_rc;
    pthread_mutex_unlock(&n->mu);
    if (rc != 0) {
        pthread_join(n->thread, NULL);
        (void)!uv_loop_close(&n->loop);
        node_free(n);
        return rc;
    }
    for (uint32_t i = 0; i < cfg->workers; i++) {
        if (pthread_create(&n->workers[i], NULL, worker_main, n) != 0) {
            break;
        }
        n->nworkers++;
    }
    *out = n;
    return 0;
}

void cp2p_node_stop(cp2p_node *n)
{
    if (n == NULL || n->attached) {
        return; /* an attached node ends with cp2p_node_detach */
    }
    /* 1. No new commands; callers waiting for room give up. */
    pthread_mutex_lock(&n->mu);
    n->stopping = true;
    pthread_cond_broadcast(&n->room);
    /* 2. Workers finish the handler they are in and exit. */
    n->workers_stop = true;
    pthread_cond_broadcast(&n->work);
    pthread_mutex_unlock(&n->mu);
    for (uint32_t i = 0; i < n->nworkers; i++) {
        pthread_join(n->workers[i], NULL);
    }
    /* 3. The loop fails what is queued, answers what is left, closes the host and returns. */
    pthread_mutex_lock(&n->mu);
    n->workers_joined = true;
    wake_locked(n);
    pthread_mutex_unlock(&n->mu);
    pthread_join(n->thread, NULL);
    (void)!uv_loop_close(&n->loop);
    /* 4. Callers still inside a call have their answer (CP2P_ECANCELED): wait for them. */
    pthread_mutex_lock(&n->mu);
    while (n->callers > 0) {
        pthread_cond_wait(&n->idle, &n->mu);
    }
    pthread_mutex_unlock(&n->mu);
    node_free(n);
}

/* ---- public calls ---- */

const cp2p_peer_id *cp2p_node_peer_id(const cp2p_node *n)
{
    return &n->id;
}

int cp2p_node_addr(cp2p_node *n, size_t i, char *out, size_t outlen)
{
    if (i >= n->naddrs) {
        return CP2P_ENOENT;
    }
    size_t len = strlen(n->addrs[i]);
    if (len + 1 > outlen) {
        return CP2P_ENOSPC;
    }
    memcpy(out, n->addrs[i], len + 1);
    return 0;
}

int cp2p_node_dial(cp2p_node *n, const char *multiaddr, uint64_t timeout_ms, cp2p_peer_id *peer)
{
    node_cmd *c;
    int rc;
    if (multiaddr == NULL) {
        return CP2P_EINVAL;
    }
    if (!enter(n)) {
        return CP2P_ECANCELED;
    }
    if ((c = cmd_new(n, CMD_DIAL)) == NULL ||
        (c->text = cp2p__memdup(multiaddr, strlen(multiaddr) + 1)) == NULL) {
        if (c != NULL) {
            cmd_release(n, c);
        }
        leave(n);
        return CP2P_ENOMEM;
    }
    rc = cmd_run(n, c, timeout_ms);
    if (rc == 0) {
        if (peer != NULL) {
            *peer = c->peer;
        }
        cmd_release(n, c);
    }
    leave(n);
    return rc;
}

int cp2p_node_add_addrs(cp2p_node *n, const cp2p_peer_id *peer, const char *const *addrs,
                        size_t n_addrs, uint64_t ttl_ms)
{
    node_cmd *c;
    uint64_t p2p_code = 0;
    int rc = 0;
    if (peer == NULL || addrs == NULL || n_addrs == 0 || n_addrs > CP2P_PEERSTORE_MAX_ADDRS_LIMIT ||
        ttl_ms == 0 || cp2p_peer_id_equal(peer, &n->id)) {
        return CP2P_EINVAL;
    }
    if (!enter(n)) {
        return CP2P_ECANCELED;
    }
    if ((c = cmd_new(n, CMD_ADD_ADDRS)) == NULL ||
        (c->addrs = cp2p_calloc(n_addrs, sizeof(*c->addrs))) == NULL) {
        if (c != NULL) {
            cmd_release(n, c);
        }
        leave(n);
        return CP2P_ENOMEM;
    }
    c->peer = *peer;
    c->timeout_ms = ttl_ms; /* the TTL rides in the command's spare field */
    (void)!cp2p_multiaddr_protocol_code("p2p", 3, &p2p_code);
    /* Parse here, on the caller's thread: a bad address is the caller's error, reported now. */
    for (size_t i = 0; i < n_addrs && rc == 0; i++) {
        cp2p_multiaddr *ma = NULL;
        cp2p_peer_id other;
        if (addrs[i] == NULL) {
            rc = CP2P_EINVAL;
            break;
        }
        rc = cp2p_multiaddr_parse(addrs[i], strlen(addrs[i]), &ma);
        if (rc == 0 && cp2p_multiaddr_peer_id(ma, &other) == 0 &&
            !cp2p_peer_id_equal(&other, peer)) {
            rc = CP2P_EINVAL; /* names another peer */
        }
        if (rc == 0) {
            rc = cp2p_multiaddr_decapsulate_code(ma, p2p_code, &c->addrs[c->naddrs]);
            c->naddrs += rc == 0;
        }
        cp2p_multiaddr_free(ma);
    }
    if (rc != 0) {
        cmd_release(n, c);
        leave(n);
        return rc == CP2P_ENOMEM ? rc : CP2P_EINVAL;
    }
    rc = cmd_run(n, c, CP2P_NODE_CONTROL_TIMEOUT_MS);
    if (rc == 0) {
        cmd_release(n, c);
    }
    leave(n);
    return rc;
}

void cp2p__node_set_request_latency(cp2p_node *n, cp2p_metric *h)
{
    pthread_mutex_lock(&n->mu);
    n->req_latency = h;
    pthread_mutex_unlock(&n->mu);
}

void cp2p__node_observe_request(cp2p_node *n, double seconds)
{
    pthread_mutex_lock(&n->mu);
    cp2p_metric_observe(n->req_latency, seconds);
    pthread_mutex_unlock(&n->mu);
}

void cp2p_node_stats_get(cp2p_node *n, cp2p_node_stats *out)
{
    pthread_mutex_lock(&n->mu);
    *out = n->stats;
    pthread_mutex_unlock(&n->mu);
}

int cp2p_node_set_event_handler(cp2p_node *n, cp2p_node_event_handler cb, void *ud,
                                cp2p_node_exec exec)
{
    node_cmd *c;
    if (cb == NULL || (exec != CP2P_NODE_ON_LOOP && exec != CP2P_NODE_ON_POOL) ||
        (exec == CP2P_NODE_ON_POOL && n->nworkers == 0)) {
        return CP2P_EINVAL;
    }
    if (!enter(n)) {
        return CP2P_ECANCELED;
    }
    if ((c = cmd_new(n, CMD_SET_EVENTS)) == NULL) {
        leave(n);
        return CP2P_ENOMEM;
    }
    c->ev_cb = cb;
    c->hud = ud;
    c->exec = exec;
    int rc = cmd_run(n, c, CP2P_NODE_CONTROL_TIMEOUT_MS);
    if (rc == 0) {
        cmd_release(n, c);
    }
    leave(n);
    return rc;
}

/* ---- strings handed out by the node API ---- */

void cp2p_node_free_strings(char **s, size_t n)
{
    for (size_t i = 0; s != NULL && i < n; i++) {
        cp2p_free(s[i]);
    }
    cp2p_free(s);
}

/* ---- running code on the loop thread ---- */

int cp2p_node_call_on_loop(cp2p_node *n, cp2p_node_call_fn fn, void *ud, void (*free_ud)(void *),
                           uint64_t timeout_ms)
{
    node_cmd *c;
    int rc = CP2P_EINVAL;
    if (n == NULL || fn == NULL || timeout_ms == 0) {
        goto fail;
    }
    rc = CP2P_ECANCELED;
    if (!enter(n)) {
        goto fail;
    }
    rc = CP2P_ENOMEM;
    if ((c = cmd_new(n, CMD_CALL)) == NULL) {
        leave(n);
        goto fail;
    }
    c->call_fn = fn;
    c->call_ud = ud;
    c->call_free = free_ud; /* from here on the command frees ud, unless fn completes with 0 */
    rc = cmd_run(n, c, timeout_ms);
    if (rc == 0) {
        c->call_free = NULL; /* done: ud is the caller's again */
        cmd_release(n, c);
    }
    leave(n);
    return rc;
fail:
    if (free_ud != NULL) {
        free_ud(ud);
    }
    return rc;
}

void cp2p_node_call_done(cp2p_node_call *call, int status)
{
    cmd_complete((node_cmd *)call, status);
}

/* ---- a node attached to the caller's host ---- */

int cp2p_node_attach(cp2p_host *host, cp2p_pubsub *ps, cp2p_kad *kad,
                     const cp2p_node_config *cfg, cp2p_node **out)
{
    cp2p_node_config def;
    cp2p_node *n;
    if (cfg == NULL) {
        cp2p_node_config_default(&def);
        cfg = &def;
    }
    if (host == NULL || out == NULL || cfg->command_queue == 0) {
        return CP2P_EINVAL;
    }
    if ((n = cp2p_calloc(1, sizeof(*n))) == NULL) {
        return CP2P_ENOMEM;
    }
    n->cfg = *cfg;
    n->cfg.host.identity = NULL;
    n->cfg.listen = NULL;
    n->cfg.n_listen = 0;
    n->cfg.workers = 0; /* handlers run on the loop: CP2P_NODE_ON_POOL is refused */
    n->attached = true;
    n->host = host;
    n->ps = ps;
    n->kad = kad;
    n->id = *cp2p_host_peer_id(host);
    n->started = true;
    pthread_mutex_init(&n->mu, NULL);
    pthread_cond_init(&n->work, NULL);
    pthread_cond_init(&n->ready, NULL);
    pthread_cond_init(&n->idle, NULL);
    int rc = cond_init_monotonic(&n->room);
    if (rc == 0) {
        rc = cp2p__queue_init(&n->cmds, cfg->command_queue, CP2P_QUEUE_REJECT, NULL, NULL);
    }
    if (rc == 0) {
        rc = cp2p__queue_init(&n->jobs, 1, CP2P_QUEUE_REJECT, NULL, NULL);
    }
    if (rc == 0) {
        rc = cp2p__queue_init(&n->answers, 1, CP2P_QUEUE_REJECT, NULL, NULL);
    }
    if (rc == 0 && uv_async_init(cp2p_host_loop(host), &n->async, on_async) != 0) {
        rc = CP2P_EIO;
    }
    if (rc != 0) {
        node_free(n);
        return rc;
    }
    n->async.data = n;
    collect_addrs(n);
    *out = n;
    return 0;
}

void cp2p_node_detach_begin(cp2p_node *n)
{
    if (n == NULL || !n->attached || n->detaching) {
        return;
    }
    n->detaching = true;
    refuse_commands(n);
    cp2p__node_req_unregister(n, n->reqx);
    cp2p__node_overlay_close(n->ovx);
}

static void on_detached(uv_handle_t *h)
{
    node_free(h->data);
}

void cp2p_node_detach(cp2p_node *n)
{
    if (n == NULL || !n->attached) {
        return;
    }
    refuse_commands(n); /* the host may be gone: no unregistering here */
    /* Nothing is in flight any more (the caller closed what commands wait on), so every caller
     * still inside a call is on its way out. */
    pthread_mutex_lock(&n->mu);
    while (n->callers > 0) {
        pthread_cond_wait(&n->idle, &n->mu);
    }
    n->async_closed = true;
    pthread_mutex_unlock(&n->mu);
    n->host = NULL;
    uv_close((uv_handle_t *)&n->async, on_detached);
}
