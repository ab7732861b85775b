/* Pubsub on the node API (cp2p_node_subscribe, publish, peers, validator; see cp2p/node.h):
 * each call is one job run on the loop thread through cp2p_node_call_on_loop, as node_dht.c's.
 * Messages and validations for handlers on the worker pool travel as node jobs
 * (cp2p__node_job_submit); a validation's verdict comes back to the loop as the job's answer.
 * The node's own file knows nothing of pubsub beyond creating it and calling
 * cp2p__node_pubsub_attach / cp2p__node_pubsub_free. */
#include <string.h>

#include <cp2p/node.h>
#include <cp2p/pubsub.h>

#include "api/node_internal.h"
#include "util/alloc.h"
#include "util/limits.h"

/* A subscription handler; the record stays after an unsubscribe (a later subscribe reuses
 * it), until the node is freed. */
typedef struct node_sub {
    struct node_sub *next;
    cp2p_node *node;
    char *topic;
    cp2p_node_message_handler cb;
    void *ud;
    cp2p_node_exec exec;
} node_sub;

/* The node's pubsub state (loop thread only). */
struct cp2p__node_ps {
    node_sub *subs;
    cp2p_node_validator val_cb;
    void *val_ud;
    cp2p_node_exec val_exec;
};

static cp2p__node_ps *state(cp2p_node *n)
{
    cp2p__node_ps **slot = cp2p__node_ps_slot(n);
    if (*slot == NULL) {
        *slot = cp2p_calloc(1, sizeof(**slot));
    }
    return *slot;
}

void cp2p__node_pubsub_free(cp2p__node_ps *st)
{
    if (st == NULL) {
        return;
    }
    for (node_sub *s = st->subs, *next; s != NULL; s = next) {
        next = s->next;
        cp2p_free(s->topic);
        cp2p_free(s);
    }
    cp2p_free(st);
}

/* ---- jobs for the worker pool ---- */

typedef struct {
    cp2p__node_job job;
    cp2p_node_message_handler msg_cb; /* a delivery, or ... */
    cp2p_node_validator val_cb;       /* ... a validation, whose verdict comes back */
    void *ud;
    uint64_t token;
    char *topic;
    cp2p_peer_id from;
    bool has_author;
    uint8_t *data;
    size_t len;
    int verdict;
} msg_job;

static void msg_free(cp2p__node_job *j)
{
    msg_job *m = (msg_job *)j;
    cp2p_free(m->topic);
    cp2p_free(m->data);
    cp2p_free(m);
}

static bool msg_work(cp2p__node_job *j)
{
    msg_job *m = (msg_job *)j;
    const cp2p_peer_id *from = m->has_author ? &m->from : NULL;
    if (m->msg_cb != NULL) {
        m->msg_cb(m->ud, m->topic, from, m->data, m->len);
        return false;
    }
    m->verdict = (int)m->val_cb(m->ud, m->topic, from, m->data, m->len);
    return true;
}

/* Loop thread: the validator's verdict. The pubsub may be gone (stopping) or the token
 * expired: both are harmless. A validation the node never ran needs no answer either: the
 * pubsub is closing with the node. */
static void msg_answer(cp2p_node *n, cp2p__node_job *j, bool canceled)
{
    msg_job *m = (msg_job *)j;
    cp2p_pubsub *ps = cp2p__node_pubsub(n);
    if (!canceled && m->val_cb != NULL && ps != NULL) {
        (void)!cp2p_pubsub_validation_result(ps, m->token, (cp2p_pubsub_verdict)m->verdict);
    }
}

static const cp2p__node_job_ops MSG_OPS = {msg_work, msg_answer, msg_free};

/* A job holding a copy of a pubsub message (NULL when out of memory). */
static msg_job *msg_job_new(const cp2p_pubsub_msg *msg, void *ud)
{
    msg_job *m = cp2p_calloc(1, sizeof(*m));
    if (m == NULL) {
        return NULL;
    }
    m->job.ops = &MSG_OPS;
    m->ud = ud;
    m->topic = cp2p__memdup(msg->topic, strlen(msg->topic) + 1);
    m->data = cp2p__memdup(msg->len ? (const void *)msg->data : "", msg->len ? msg->len : 1);
    m->len = msg->len;
    if (msg->from != NULL) {
        m->from = *msg->from;
        m->has_author = true;
    }
    if (m->topic == NULL || m->data == NULL) {
        msg_free(&m->job);
        return NULL;
    }
    return m;
}

/* Queue m for the workers, counted at `offset` of the node's stats: true, or false after
 * freeing it (no memory, pool saturated). */
static bool submit(cp2p_node *n, msg_job *m, size_t offset)
{
    if (m == NULL) {
        return false;
    }
    if (cp2p__node_job_submit(n, &m->job, offset) != 0) {
        msg_free(&m->job);
        return false;
    }
    return true;
}

/* ---- loop thread: pubsub callbacks ---- */

static void on_message(cp2p_pubsub *ps, const cp2p_pubsub_msg *m, void *ud)
{
    node_sub *s = ud;
    cp2p_node *n = s->node;
    (void)ps;
    if (s->exec == CP2P_NODE_ON_LOOP) {
        s->cb(s->ud, m->topic, m->from, m->data, m->len);
        CP2P__NODE_COUNT(n, messages_delivered);
        return;
    }
    msg_job *j = msg_job_new(m, s->ud);
    if (j != NULL) {
        j->msg_cb = s->cb;
    }
    if (!submit(n, j, offsetof(cp2p_node_stats, messages_delivered))) {
        CP2P__NODE_COUNT(n, messages_dropped); /* never block the loop */
    }
}

/* Every message passes here (the node's pubsub always validates asynchronously): no
 * validator accepts, one on the loop answers at once, one on the pool gets a job whose verdict
 * comes back as its answer; a full pool drops the message (IGNORE) and counts it. */
static void on_validate(cp2p_pubsub *ps, const cp2p_pubsub_msg *m, uint64_t token, void *ud)
{
    cp2p_node *n = ud;
    cp2p__node_ps *st = state(n);
    if (st == NULL || st->val_cb == NULL || st->val_exec == CP2P_NODE_ON_LOOP) {
        cp2p_pubsub_verdict v = st == NULL || st->val_cb == NULL
                                    ? CP2P_PUBSUB_ACCEPT
                                    : st->val_cb(st->val_ud, m->topic, m->from, m->data, m->len);
        (void)!cp2p_pubsub_validation_result(ps, token, v);
        return;
    }
    msg_job *j = msg_job_new(m, st->val_ud);
    if (j != NULL) {
        j->val_cb = st->val_cb;
        j->token = token;
    }
    if (!submit(n, j, offsetof(cp2p_node_stats, validations_queued))) {
        CP2P__NODE_COUNT(n, validations_dropped);
        (void)!cp2p_pubsub_validation_result(ps, token, CP2P_PUBSUB_IGNORE);
    }
}

void cp2p__node_pubsub_attach(cp2p_node *n, cp2p_pubsub *ps)
{
    cp2p_pubsub_set_async_validator(ps, on_validate, n);
}

/* ---- calls ---- */

typedef enum { OP_SUBSCRIBE, OP_UNSUBSCRIBE, OP_PUBLISH, OP_TOPIC_PEERS, OP_MESH_PEERS,
               OP_SET_VALIDATOR } ps_op;

typedef struct {
    ps_op op;
    char *topic;
    uint8_t *data;
    size_t len;
    cp2p_node_message_handler msg_cb;
    cp2p_node_validator val_cb;
    void *ud;
    cp2p_node_exec exec;
    size_t max, count;    /* topic/mesh peers: at most max into peers; count: how many */
    cp2p_peer_id *peers;
    cp2p_node *node;
} ps_call;

static void call_free(void *ud)
{
    ps_call *c = ud;
    cp2p_free(c->topic);
    cp2p_free(c->data);
    cp2p_free(c->peers);
    cp2p_free(c);
}

static int subscribe(cp2p_node *n, cp2p_pubsub *ps, ps_call *c)
{
    cp2p__node_ps *st = state(n);
    if (st == NULL) {
        return CP2P_ENOMEM;
    }
    node_sub *s = st->subs;
    while (s != NULL && strcmp(s->topic, c->topic) != 0) {
        s = s->next;
    }
    if (s == NULL) {
        if ((s = cp2p_calloc(1, sizeof(*s))) == NULL) {
            return CP2P_ENOMEM;
        }
        s->node = n;
        s->topic = c->topic;
        c->topic = NULL;
        s->next = st->subs;
        st->subs = s;
    }
    s->cb = c->msg_cb;
    s->ud = c->ud;
    s->exec = c->exec;
    return cp2p_pubsub_subscribe(ps, s->topic, on_message, s);
}

static void run(cp2p_node_call *call, cp2p_host *h, void *ud)
{
    ps_call *c = ud;
    cp2p_node *n = c->node;
    cp2p_pubsub *ps = cp2p__node_pubsub(n);
    cp2p__node_ps *st;
    int rc = 0;
    (void)h;
    if (ps == NULL) {
        cp2p_node_call_done(call, CP2P_ENOTSUP);
        return;
    }
    switch (c->op) {
    case OP_SUBSCRIBE:
        rc = subscribe(n, ps, c);
        break;
    case OP_UNSUBSCRIBE:
        rc = cp2p_pubsub_unsubscribe(ps, c->topic);
        break;
    case OP_PUBLISH:
        rc = cp2p_pubsub_publish(ps, c->topic, c->data, c->len);
        break;
    case OP_SET_VALIDATOR:
        if ((st = state(n)) == NULL) {
            rc = CP2P_ENOMEM;
            break;
        }
        st->val_cb = c->val_cb;
        st->val_ud = c->ud;
        st->val_exec = c->exec;
        break;
    case OP_TOPIC_PEERS:
        c->count = cp2p_pubsub_topic_peers(ps, c->topic, c->peers, c->max);
        break;
    case OP_MESH_PEERS:
        c->count = cp2p_pubsub_mesh_peers(ps, c->topic, c->peers, c->max);
        break;
    }
    cp2p_node_call_done(call, rc);
}

static ps_call *call_new(cp2p_node *n, ps_op op, const char *topic)
{
    ps_call *c = cp2p_calloc(1, sizeof(*c));
    if (c == NULL) {
        return NULL;
    }
    c->node = n;
    c->op = op;
    if ((c->topic = cp2p__memdup(topic, strlen(topic) + 1)) == NULL) {
        cp2p_free(c);
        return NULL;
    }
    return c;
}

/* Run c on the loop (NULL: out of memory). On success c is freed unless `keep` (the caller
 * reads its results, then frees it with call_free); on an error the node frees it. */
static int call(cp2p_node *n, ps_call *c, uint64_t timeout_ms, bool keep)
{
    if (c == NULL) {
        return CP2P_ENOMEM;
    }
    int rc = cp2p_node_call_on_loop(n, run, c, call_free,
                                    timeout_ms ? timeout_ms : CP2P_NODE_DHT_QUICK_MS);
    if (rc == 0 && !keep) {
        call_free(c);
    }
    return rc;
}

/* Subscribe (msg_cb) or set the validator (val_cb). */
static int set_handler(cp2p_node *n, ps_op op, const char *topic,
                       cp2p_node_message_handler msg_cb, cp2p_node_validator val_cb, void *ud,
                       cp2p_node_exec exec)
{
    ps_call *c = call_new(n, op, topic);
    if (c != NULL) {
        c->msg_cb = msg_cb;
        c->val_cb = val_cb;
        c->ud = ud;
        c->exec = exec;
    }
    return call(n, c, 0, false);
}

static bool exec_ok(cp2p_node *n, cp2p_node_exec exec, bool needs_pool)
{
    return (exec == CP2P_NODE_ON_LOOP || exec == CP2P_NODE_ON_POOL) &&
           !(needs_pool && exec == CP2P_NODE_ON_POOL && cp2p__node_workers(n) == 0);
}

int cp2p_node_subscribe(cp2p_node *n, const char *topic, cp2p_node_message_handler cb, void *ud,
                        cp2p_node_exec exec)
{
    if (n == NULL || topic == NULL || cb == NULL || !exec_ok(n, exec, true)) {
        return CP2P_EINVAL;
    }
    return set_handler(n, OP_SUBSCRIBE, topic, cb, NULL, ud, exec);
}

int cp2p_node_unsubscribe(cp2p_node *n, const char *topic)
{
    if (n == NULL || topic == NULL) {
        return CP2P_EINVAL;
    }
    return call(n, call_new(n, OP_UNSUBSCRIBE, topic), 0, false);
}

int cp2p_node_publish(cp2p_node *n, const char *topic, const void *data, size_t len,
                      uint64_t timeout_ms)
{
    if (n == NULL || topic == NULL || (data == NULL && len > 0)) {
        return CP2P_EINVAL;
    }
    ps_call *c = call_new(n, OP_PUBLISH, topic);
    if (c != NULL) {
        c->data = cp2p__memdup(len ? data : "", len ? len : 1);
        c->len = len;
        if (c->data == NULL) {
            call_free(c);
            c = NULL;
        }
    }
    return call(n, c, timeout_ms, false);
}

static int peers(cp2p_node *n, ps_op op, const char *topic, cp2p_peer_id *out, size_t max,
                 size_t *total)
{
    if (n == NULL || topic == NULL || total == NULL || (out == NULL && max > 0)) {
        return CP2P_EINVAL;
    }
    ps_call *c = call_new(n, op, topic);
    if (c != NULL && max > 0) {
        c->max = max;
        if ((c->peers = cp2p_calloc(max, sizeof(*c->peers))) == NULL) {
            call_free(c);
            c = NULL;
        }
    }
    int rc = call(n, c, 0, true);
    if (rc == 0) {
        if (max > 0) {
            memcpy(out, c->peers, (c->count < max ? c->count : max) * sizeof(*out));
        }
        *total = c->count;
        call_free(c);
    }
    return rc;
}

int cp2p_node_topic_peers(cp2p_node *n, const char *topic, cp2p_peer_id *out, size_t max,
                          size_t *total)
{
    return peers(n, OP_TOPIC_PEERS, topic, out, max, total);
}

int cp2p_node_mesh_peers(cp2p_node *n, const char *topic, cp2p_peer_id *out, size_t max,
                         size_t *total)
{
    return peers(n, OP_MESH_PEERS, topic, out, max, total);
}

int cp2p_node_set_validator(cp2p_node *n, cp2p_node_validator cb, void *ud, cp2p_node_exec exec)
{
    if (n == NULL || !exec_ok(n, exec, cb != NULL)) {
        return CP2P_EINVAL;
    }
    return set_handler(n, OP_SET_VALIDATOR, "", NULL, cb, ud, exec);
}
