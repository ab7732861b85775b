/* One Kademlia operation, sans-I/O. See kad_op.h.
 *
 * States: LOOKUP (the lookup runs; answers may stop it early), SENDING (PUT / PROVIDE only:
 * each of the k closest answered peers is handed out once as a store message; the operation
 * ends when every one handed out has ended), DONE (status fixed). Every transition happens
 * inside a call of the caller's (answer, failure, stored, tick, next), so there is nothing to
 * schedule: the caller checks done() after each. */
#include <string.h>

#include "protocols/kad/kad_op.h"
#include "util/alloc.h"
#include "util/limits.h"

typedef enum { ST_LOOKUP, ST_SENDING, ST_DONE } op_state;

typedef struct {
    uint8_t *value;
    size_t len;
    cp2p_peer_id from;
} got_value;

struct cp2p__kad_op {
    cp2p__kad_op_type type;
    cp2p__kad_op_config cfg;
    op_state st;
    int status;
    cp2p__kad_lookup *lookup;
    cp2p__kad_key target;
    uint8_t key[CP2P_KAD_MAX_KEY];
    size_t key_len;
    got_value values[CP2P_KAD_MAX_VALUES_PER_GET];
    size_t nvalues;
    cp2p_peer_id *providers; /* max_providers entries */
    size_t nproviders;
    /* SENDING: the peers to store at, handed out in order */
    cp2p_peer_id send_to[CP2P_KAD_MAX_K];
    size_t nsend, sent, send_pending, send_ok;
    cp2p__kad_op_stats stats;
};

int cp2p__kad_op_new(cp2p__kad_op_type type, const uint8_t *key, size_t key_len,
                     const cp2p_peer_id *self, const cp2p__kad_op_config *cfg, uint64_t now_ms,
                     cp2p__kad_op **out)
{
    if (key == NULL || key_len == 0 || key_len > CP2P_KAD_MAX_KEY || cfg == NULL ||
        cfg->lookup.k > CP2P_KAD_MAX_K ||
        (type == CP2P__KAD_OP_FIND_PROVIDERS &&
         (cfg->max_providers == 0 || cfg->max_providers > CP2P_KAD_MAX_PROVIDERS_ANSWER))) {
        return CP2P_EINVAL;
    }
    cp2p__kad_op *op = cp2p_calloc(1, sizeof(*op));
    if (op == NULL) {
        return CP2P_ENOMEM;
    }
    op->type = type;
    op->cfg = *cfg;
    memcpy(op->key, key, key_len);
    op->key_len = key_len;
    cp2p__kad_key_of(key, key_len, &op->target);
    int rc = 0;
    if (type == CP2P__KAD_OP_FIND_PROVIDERS &&
        (op->providers = cp2p_calloc(cfg->max_providers, sizeof(*op->providers))) == NULL) {
        rc = CP2P_ENOMEM;
    }
    if (rc == 0) {
        rc = cp2p__kad_lookup_new(&op->target, self, &cfg->lookup, now_ms, &op->lookup);
    }
    if (rc != 0) {
        cp2p__kad_op_free(op);
        return rc;
    }
    *out = op;
    return 0;
}

void cp2p__kad_op_free(cp2p__kad_op *op)
{
    if (op == NULL) {
        return;
    }
    cp2p__kad_lookup_free(op->lookup);
    for (size_t i = 0; i < op->nvalues; i++) {
        cp2p_free(op->values[i].value);
    }
    cp2p_free(op->providers);
    cp2p_free(op);
}

cp2p__kad_op_type cp2p__kad_op_type_of(const cp2p__kad_op *op)
{
    return op->type;
}

const uint8_t *cp2p__kad_op_key(const cp2p__kad_op *op, size_t *len)
{
    *len = op->key_len;
    return op->key;
}

const cp2p__kad_key *cp2p__kad_op_target(const cp2p__kad_op *op)
{
    return &op->target;
}

int cp2p__kad_op_seed(cp2p__kad_op *op, const cp2p_peer_id *p)
{
    return cp2p__kad_lookup_seed(op->lookup, p);
}

int cp2p__kad_op_add_value(cp2p__kad_op *op, const cp2p_peer_id *from, const uint8_t *value,
                           size_t len)
{
    if (op->type != CP2P__KAD_OP_GET || op->nvalues >= CP2P_KAD_MAX_VALUES_PER_GET) {
        return 0;
    }
    got_value *g = &op->values[op->nvalues];
    if ((g->value = cp2p_malloc(len ? len : 1)) == NULL) {
        return CP2P_ENOMEM;
    }
    if (len > 0) {
        memcpy(g->value, value, len);
    }
    g->len = len;
    g->from = *from;
    op->nvalues++;
    return 0;
}

static bool has_provider(const cp2p__kad_op *op, const cp2p_peer_id *p)
{
    for (size_t i = 0; i < op->nproviders; i++) {
        if (cp2p_peer_id_equal(&op->providers[i], p)) {
            return true;
        }
    }
    return false;
}

void cp2p__kad_op_add_providers(cp2p__kad_op *op, const cp2p_peer_id *ids, size_t n)
{
    for (size_t i = 0; op->type == CP2P__KAD_OP_FIND_PROVIDERS && i < n &&
                       op->nproviders < op->cfg.max_providers;
         i++) {
        if (!has_provider(op, &ids[i])) {
            op->providers[op->nproviders++] = ids[i];
        }
    }
}

static void finish(cp2p__kad_op *op, int status)
{
    op->st = ST_DONE;
    op->status = status;
}

/* The lookup part is over with `status`: PUT / PROVIDE go on to store at the closest. */
static void lookup_over(cp2p__kad_op *op, int status)
{
    if (status == 0 && (op->type == CP2P__KAD_OP_PUT || op->type == CP2P__KAD_OP_PROVIDE)) {
        op->st = ST_SENDING;
        op->nsend = cp2p__kad_lookup_result(op->lookup, op->send_to, op->cfg.lookup.k);
        op->sent = op->send_pending = 0;
        if (op->nsend == 0) {
            finish(op, CP2P_ENOENT);
        }
        return;
    }
    if (status == 0 && op->type == CP2P__KAD_OP_GET && op->nvalues == 0) {
        status = CP2P_ENOENT;
    }
    if (status == 0 && op->type == CP2P__KAD_OP_FIND_PROVIDERS && op->nproviders == 0) {
        status = CP2P_ENOENT;
    }
    finish(op, status);
}

/* The lookup may have finished: its status, with a timeout forgiven when something was
 * found (a timed-out lookup still returns what it found). */
static void check_lookup(cp2p__kad_op *op)
{
    if (op->st != ST_LOOKUP || !cp2p__kad_lookup_done(op->lookup)) {
        return;
    }
    int status = 0;
    if (cp2p__kad_lookup_timed_out(op->lookup)) {
        op->stats.lookup_timed_out = true;
        cp2p__kad_lookup_stats ls;
        cp2p__kad_lookup_stats_get(op->lookup, &ls);
        bool found;
        switch (op->type) {
        case CP2P__KAD_OP_GET:
            found = op->nvalues > 0;
            break;
        case CP2P__KAD_OP_FIND_PROVIDERS:
            found = op->nproviders > 0;
            break;
        case CP2P__KAD_OP_FIND_PEER:
            found = false; /* the caller decides from what it knows of the target */
            break;
        default:
            found = ls.answered > 0;
            break;
        }
        status = found ? 0 : CP2P_ETIMEDOUT;
    }
    lookup_over(op, status);
}

static void check_sending(cp2p__kad_op *op)
{
    if (op->st == ST_SENDING && op->sent == op->nsend && op->send_pending == 0) {
        finish(op, op->send_ok > 0 ? 0 : CP2P_ENOENT);
    }
}

bool cp2p__kad_op_next(cp2p__kad_op *op, uint64_t now_ms, cp2p__kad_op_send *out)
{
    if (op->st == ST_SENDING) {
        if (op->sent == op->nsend) {
            return false;
        }
        out->peer = op->send_to[op->sent++];
        out->store = true;
        op->send_pending++;
        return true;
    }
    if (op->st != ST_LOOKUP) {
        return false;
    }
    if (cp2p__kad_lookup_next(op->lookup, now_ms, &out->peer)) {
        out->store = false;
        return true;
    }
    check_lookup(op);
    return false;
}

static bool is_target(const cp2p__kad_op *op, const cp2p_peer_id *p)
{
    return p->len == op->key_len && memcmp(p->bytes, op->key, p->len) == 0;
}

int cp2p__kad_op_on_answer(cp2p__kad_op *op, const cp2p_peer_id *from, const cp2p__kad_msg *m,
                           bool record_ok, uint64_t now_ms)
{
    if (op->st != ST_LOOKUP) {
        return 0;
    }
    bool stop = false;
    switch (op->type) {
    case CP2P__KAD_OP_FIND_PEER:
        for (size_t i = 0; i < m->n_closer; i++) {
            stop = stop || (is_target(op, &m->closer[i].id) && m->closer[i].n_addrs > 0);
        }
        break;
    case CP2P__KAD_OP_GET:
        if (m->has_record) {
            if (!record_ok || m->record.key_len != op->key_len ||
                memcmp(m->record.key, op->key, op->key_len) != 0) {
                op->stats.values_invalid++;
            } else if (cp2p__kad_op_add_value(op, from, m->record.value, m->record.value_len) !=
                       0) {
                finish(op, CP2P_ENOMEM);
                return CP2P_ENOMEM;
            }
            stop = op->cfg.quorum > 0 && op->nvalues >= op->cfg.quorum;
        }
        break;
    case CP2P__KAD_OP_FIND_PROVIDERS:
        for (size_t i = 0; i < m->n_providers && op->nproviders < op->cfg.max_providers; i++) {
            cp2p__kad_op_add_providers(op, &m->providers[i].id, 1);
        }
        stop = op->nproviders >= op->cfg.max_providers;
        break;
    default:
        break;
    }
    cp2p_peer_id closer[CP2P_KAD_MAX_PEERS_PER_MSG];
    size_t nc = 0;
    for (size_t i = 0; i < m->n_closer && nc < CP2P_KAD_MAX_PEERS_PER_MSG; i++) {
        closer[nc++] = m->closer[i].id;
    }
    int rc = cp2p__kad_lookup_on_response(op->lookup, from, nc > 0 ? closer : NULL, nc, now_ms);
    if (stop) {
        lookup_over(op, 0);
        return 0;
    }
    if (rc != 0) {
        finish(op, rc);
        return rc;
    }
    check_lookup(op);
    return 0;
}

void cp2p__kad_op_on_failure(cp2p__kad_op *op, const cp2p_peer_id *from, bool store,
                             uint64_t now_ms)
{
    if (store) {
        cp2p__kad_op_on_stored(op, from, false);
        return;
    }
    if (op->st == ST_LOOKUP) {
        cp2p__kad_lookup_on_failure(op->lookup, from, now_ms);
        check_lookup(op);
    }
}

void cp2p__kad_op_on_stored(cp2p__kad_op *op, const cp2p_peer_id *from, bool ok)
{
    (void)from;
    if (op->st != ST_SENDING || op->send_pending == 0) {
        return;
    }
    op->send_pending--;
    op->send_ok += ok;
    check_sending(op);
}

void cp2p__kad_op_target_found(cp2p__kad_op *op)
{
    if (op->st == ST_LOOKUP && op->type == CP2P__KAD_OP_FIND_PEER) {
        finish(op, 0);
    }
}

size_t cp2p__kad_op_tick(cp2p__kad_op *op, uint64_t now_ms, cp2p_peer_id *out, size_t max)
{
    if (op->st != ST_LOOKUP) {
        return 0;
    }
    size_t n = cp2p__kad_lookup_tick(op->lookup, now_ms, out, max);
    check_lookup(op);
    return n;
}

bool cp2p__kad_op_done(const cp2p__kad_op *op, int *status)
{
    if (op->st != ST_DONE) {
        return false;
    }
    *status = op->status;
    return true;
}

void cp2p__kad_op_cancel(cp2p__kad_op *op, int status)
{
    if (op->st != ST_DONE) {
        finish(op, status);
    }
}

size_t cp2p__kad_op_closest(const cp2p__kad_op *op, cp2p_peer_id *out, size_t max)
{
    return cp2p__kad_lookup_result(op->lookup, out, max);
}

size_t cp2p__kad_op_values(const cp2p__kad_op *op, const uint8_t **vals, size_t *lens,
                           size_t max)
{
    size_t n = op->nvalues < max ? op->nvalues : max;
    for (size_t i = 0; i < n; i++) {
        vals[i] = op->values[i].value;
        lens[i] = op->values[i].len;
    }
    return n;
}

const cp2p_peer_id *cp2p__kad_op_providers(const cp2p__kad_op *op, size_t *n)
{
    *n = op->nproviders;
    return op->providers;
}

size_t cp2p__kad_op_stored(const cp2p__kad_op *op)
{
    return op->send_ok;
}

void cp2p__kad_op_stats_get(const cp2p__kad_op *op, cp2p__kad_op_stats *out)
{
    *out = op->stats;
}
