/* The DHT on the node API (cp2p_node_dht_*, see cp2p/node.h): each call is one job run on the
 * loop thread through cp2p_node_call_on_loop, which starts a cp2p_kad operation; the
 * operation's callback copies the result into the job and completes the call. The node's own
 * command switch knows nothing of the DHT: a subsystem of the node API is a file like this one.
 *
 * Ownership: when the call returns 0 the job is the caller's again (it reads the result and
 * frees it); on any error the node frees it with job_free, once the DHT can no longer call
 * back into it (a caller that timed out leaves it to the operation's callback). */
#include <string.h>

#include <cp2p/kad.h>
#include <cp2p/node.h>

#include "api/node_internal.h"
#include "util/alloc.h"
#include "util/limits.h"

typedef enum { J_TABLE, J_BOOTSTRAP, J_FIND_PEER, J_PUT, J_GET, J_PROVIDE, J_FIND_PROVIDERS } job_op;

typedef struct {
    cp2p_node *node;
    cp2p_node_call *call;
    job_op op;
    cp2p_peer_id peer;   /* find_peer */
    uint8_t *key, *value;
    size_t klen, vlen;
    size_t max;          /* find_providers */
    /* results */
    size_t count;        /* table size, peers that stored, providers found */
    uint8_t *got;        /* get: the value */
    size_t got_len;
    char **strs;         /* find_peer: the addresses as text */
    size_t nstrs;
    cp2p_peer_id *peers; /* find_providers: max entries */
} dht_job;

static void job_free(void *ud)
{
    dht_job *j = ud;
    cp2p_free(j->key);
    cp2p_free(j->value);
    cp2p_free(j->got);
    cp2p_node_free_strings(j->strs, j->nstrs);
    cp2p_free(j->peers);
    cp2p_free(j);
}

static dht_job *job_new(cp2p_node *n, job_op op, const void *key, size_t klen)
{
    dht_job *j = cp2p_calloc(1, sizeof(*j));
    if (j == NULL) {
        return NULL;
    }
    j->node = n;
    j->op = op;
    if (key != NULL && (j->key = cp2p__memdup(key, klen)) == NULL) {
        cp2p_free(j);
        return NULL;
    }
    j->klen = klen;
    return j;
}

/* ---- loop thread ---- */

static void on_bootstrap(cp2p_kad *kad, int status, size_t table_size, void *ud)
{
    dht_job *j = ud;
    (void)kad;
    j->count = table_size;
    /* An empty network is not an error of the bootstrap itself: report the table size. */
    cp2p_node_call_done(j->call, status == CP2P_ETIMEDOUT ? 0 : status);
}

static void on_peer(cp2p_kad *kad, int status, const cp2p_kad_peer_info *p, void *ud)
{
    dht_job *j = ud;
    (void)kad;
    if (status == 0) {
        j->strs = cp2p_calloc(p->n_addrs ? p->n_addrs : 1, sizeof(char *));
        if (j->strs == NULL) {
            status = CP2P_ENOMEM;
        }
        for (size_t i = 0; status == 0 && i < p->n_addrs; i++) {
            cp2p_buf b;
            cp2p_buf_init(&b, CP2P_MULTIADDR_STR_MAX);
            if (cp2p_multiaddr_to_string(p->addrs[i], &b) == 0) {
                uint8_t *t;
                (void)cp2p_buf_take(&b, &t);
                j->strs[j->nstrs++] = (char *)t;
            }
            cp2p_buf_fini(&b);
        }
    }
    cp2p_node_call_done(j->call, status);
}

static void on_stored(cp2p_kad *kad, int status, size_t stored, void *ud)
{
    dht_job *j = ud;
    (void)kad;
    j->count = stored;
    cp2p_node_call_done(j->call, status);
}

static void on_value(cp2p_kad *kad, int status, const uint8_t *value, size_t len, void *ud)
{
    dht_job *j = ud;
    (void)kad;
    if (status == 0) {
        j->got = cp2p__memdup(value, len ? len : 1);
        j->got_len = len;
        status = j->got == NULL ? CP2P_ENOMEM : 0;
    }
    cp2p_node_call_done(j->call, status);
}

static void on_providers(cp2p_kad *kad, int status, const cp2p_kad_peer_info *peers, size_t np,
                         void *ud)
{
    dht_job *j = ud;
    (void)kad;
    /* The providers' addresses are in the peerstore already (the DHT put them there). */
    for (size_t i = 0; status == 0 && i < np && j->count < j->max; i++) {
        j->peers[j->count++] = peers[i].id;
    }
    cp2p_node_call_done(j->call, status);
}

static void job_run(cp2p_node_call *call, cp2p_host *host, void *ud)
{
    dht_job *j = ud;
    cp2p_kad *kad = cp2p__node_kad(j->node);
    int rc;
    (void)host;
    j->call = call;
    if (kad == NULL) {
        cp2p_node_call_done(call, CP2P_ENOTSUP);
        return;
    }
    switch (j->op) {
    case J_TABLE:
        j->count = cp2p_kad_table_size(kad);
        rc = 0;
        cp2p_node_call_done(call, 0);
        break;
    case J_BOOTSTRAP:
        rc = cp2p_kad_bootstrap(kad, on_bootstrap, j);
        break;
    case J_FIND_PEER:
        rc = cp2p_kad_find_peer(kad, &j->peer, on_peer, j);
        break;
    case J_PUT:
        rc = cp2p_kad_put_value(kad, j->key, j->klen, j->value, j->vlen, on_stored, j);
        break;
    case J_GET:
        rc = cp2p_kad_get_value(kad, j->key, j->klen, on_value, j);
        break;
    case J_PROVIDE:
        rc = cp2p_kad_provide(kad, j->key, j->klen, on_stored, j);
        break;
    case J_FIND_PROVIDERS:
        rc = cp2p_kad_find_providers(kad, j->key, j->klen, j->max, on_providers, j);
        break;
    default:
        rc = CP2P_EINVAL;
        break;
    }
    if (rc != 0) {
        cp2p_node_call_done(call, rc);
    }
}

/* ---- callers (any thread but the loop's) ---- */

/* Run j on the loop. 0: j is the caller's (free it with job_free); otherwise it is gone. */
static int job_call(cp2p_node *n, dht_job *j, uint64_t timeout_ms)
{
    if (j == NULL) {
        return CP2P_ENOMEM;
    }
    return cp2p_node_call_on_loop(n, job_run, j, job_free, timeout_ms);
}

int cp2p_node_dht_table_size(cp2p_node *n, size_t *out)
{
    if (out == NULL) {
        return CP2P_EINVAL;
    }
    dht_job *j = job_new(n, J_TABLE, NULL, 0);
    int rc = job_call(n, j, CP2P_NODE_DHT_QUICK_MS);
    if (rc == 0) {
        *out = j->count;
        job_free(j);
    }
    return rc;
}

int cp2p_node_dht_bootstrap(cp2p_node *n, uint64_t timeout_ms, size_t *table_size)
{
    if (timeout_ms == 0) {
        return CP2P_EINVAL;
    }
    dht_job *j = job_new(n, J_BOOTSTRAP, NULL, 0);
    int rc = job_call(n, j, timeout_ms);
    if (rc == 0) {
        if (table_size != NULL) {
            *table_size = j->count;
        }
        job_free(j);
    }
    return rc;
}

int cp2p_node_dht_find_peer(cp2p_node *n, const cp2p_peer_id *peer, uint64_t timeout_ms,
                            char ***addrs, size_t *n_addrs)
{
    if (peer == NULL || addrs == NULL || n_addrs == NULL || timeout_ms == 0) {
        return CP2P_EINVAL;
    }
    dht_job *j = job_new(n, J_FIND_PEER, NULL, 0);
    if (j != NULL) {
        j->peer = *peer;
    }
    int rc = job_call(n, j, timeout_ms);
    if (rc == 0) {
        *addrs = j->strs;
        *n_addrs = j->nstrs;
        j->strs = NULL;
        j->nstrs = 0;
        job_free(j);
    }
    return rc;
}

int cp2p_node_dht_put(cp2p_node *n, const void *key, size_t key_len, const void *value,
                      size_t value_len, uint64_t timeout_ms, size_t *stored)
{
    if (key == NULL || key_len == 0 || (value == NULL && value_len > 0) || timeout_ms == 0) {
        return CP2P_EINVAL;
    }
    dht_job *j = job_new(n, J_PUT, key, key_len);
    if (j != NULL) {
        j->value = cp2p__memdup(value_len ? value : "", value_len ? value_len : 1);
        j->vlen = value_len;
        if (j->value == NULL) {
            job_free(j);
            j = NULL;
        }
    }
    int rc = job_call(n, j, timeout_ms);
    if (rc == 0) {
        if (stored != NULL) {
            *stored = j->count;
        }
        job_free(j);
    }
    return rc;
}

int cp2p_node_dht_get(cp2p_node *n, const void *key, size_t key_len, uint64_t timeout_ms,
                      uint8_t **value, size_t *value_len)
{
    if (key == NULL || key_len == 0 || value == NULL || value_len == NULL || timeout_ms == 0) {
        return CP2P_EINVAL;
    }
    dht_job *j = job_new(n, J_GET, key, key_len);
    int rc = job_call(n, j, timeout_ms);
    if (rc == 0) {
        *value = j->got;
        *value_len = j->got_len;
        j->got = NULL;
        job_free(j);
    }
    return rc;
}

int cp2p_node_dht_provide(cp2p_node *n, const void *key, size_t key_len, uint64_t timeout_ms,
                          size_t *told)
{
    if (key == NULL || key_len == 0 || timeout_ms == 0) {
        return CP2P_EINVAL;
    }
    dht_job *j = job_new(n, J_PROVIDE, key, key_len);
    int rc = job_call(n, j, timeout_ms);
    if (rc == 0) {
        if (told != NULL) {
            *told = j->count;
        }
        job_free(j);
    }
    return rc;
}

int cp2p_node_dht_find_providers(cp2p_node *n, const void *key, size_t key_len, size_t max,
                                 uint64_t timeout_ms, cp2p_peer_id *out, size_t *n_out)
{
    if (key == NULL || key_len == 0 || max == 0 || out == NULL || n_out == NULL ||
        timeout_ms == 0) {
        return CP2P_EINVAL;
    }
    dht_job *j = job_new(n, J_FIND_PROVIDERS, key, key_len);
    if (j != NULL) {
        j->max = max;
        if ((j->peers = cp2p_calloc(max, sizeof(*j->peers))) == NULL) {
            job_free(j);
            j = NULL;
        }
    }
    int rc = job_call(n, j, timeout_ms);
    if (rc == 0) {
        memcpy(out, j->peers, j->count * sizeof(*out));
        *n_out = j->count;
        job_free(j);
    }
    return rc;
}
