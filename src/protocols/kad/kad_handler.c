/* The DHT's request handler (see kad_handler.h): moved out of kad_uv.c's server path so that
 * it runs, and is fuzzed, without a host or a clock. */
#include "protocols/kad/kad_handler.h"

#include <string.h>

#include <cp2p/codec.h>

#include "util/alloc.h"
#include "util/limits.h"
#include "util/token_bucket.h"

/* Per-peer inbound token bucket (fixed table, the least recently used slot is reused). */
typedef struct {
    cp2p_peer_id peer;
    cp2p_token_bucket tb;
    uint64_t at; /* last request: the least recent slot is reused */
    bool used;
} rate_slot;

struct cp2p__kad_handler {
    cp2p__kad_handler_config cfg;
    cp2p__kad_rt *rt;       /* borrowed */
    cp2p__kad_store *store; /* borrowed */
    cp2p__kad_dir dir;
    rate_slot rate[CP2P_KAD_RATE_SLOTS];
    cp2p__kad_handler_stats stats;
};

/* ---- peer lists ---- */

void cp2p__kad_peer_list_fini(cp2p__kad_peer_list *pl)
{
    if (pl->own != NULL) {
        for (size_t i = 0; i < pl->own->n_addrs; i++) {
            cp2p_multiaddr_free(pl->own->addrs[i]);
        }
    }
    cp2p_free(pl->peers);
    cp2p_free(pl->addrs);
    *pl = (cp2p__kad_peer_list){0};
}

int cp2p__kad_peer_list_fill(const cp2p__kad_dir *dir, const cp2p_peer_id *ids, size_t n,
                             bool keep_bare, cp2p__kad_peer_list *pl)
{
    *pl = (cp2p__kad_peer_list){0};
    /* One more slot than asked: cp2p__kad_peer_list_add_self may append us. */
    pl->peers = cp2p_calloc(n + 1, sizeof(*pl->peers));
    pl->addrs = cp2p_calloc((n + 1) * CP2P_KAD_MAX_ADDRS_PER_PEER, sizeof(*pl->addrs));
    if (pl->peers == NULL || pl->addrs == NULL) {
        cp2p__kad_peer_list_fini(pl);
        return CP2P_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        cp2p__kad_peer *p = &pl->peers[pl->n];
        p->id = ids[i];
        p->addrs = &pl->addrs[pl->n * CP2P_KAD_MAX_ADDRS_PER_PEER];
        p->n_addrs = dir->addrs(dir->ud, &ids[i], (const cp2p_multiaddr **)p->addrs,
                                CP2P_KAD_MAX_ADDRS_PER_PEER);
        if (p->n_addrs > CP2P_KAD_MAX_ADDRS_PER_PEER) {
            p->n_addrs = CP2P_KAD_MAX_ADDRS_PER_PEER;
        }
        if (p->n_addrs == 0 && !keep_bare) {
            *p = (cp2p__kad_peer){0};
            continue;
        }
        p->connection = dir->connected(dir->ud, &ids[i]) ? CP2P__KAD_CONNECTED
                                                          : CP2P__KAD_NOT_CONNECTED;
        pl->n++;
    }
    return 0;
}

void cp2p__kad_peer_list_add_self(const cp2p__kad_dir *dir, const cp2p_peer_id *self,
                                  cp2p__kad_peer_list *pl)
{
    cp2p__kad_peer *p = &pl->peers[pl->n];
    p->addrs = &pl->addrs[pl->n * CP2P_KAD_MAX_ADDRS_PER_PEER];
    size_t na = dir->self_addrs(dir->ud, p->addrs, CP2P_KAD_MAX_ADDRS_PER_PEER);
    if (na == 0) {
        p->addrs = NULL;
        return;
    }
    p->id = *self;
    p->n_addrs = na;
    p->connection = CP2P__KAD_CONNECTED;
    pl->own = p;
    pl->n++;
}

/* ---- the handler ---- */

int cp2p__kad_handler_new(const cp2p__kad_handler_config *cfg, cp2p__kad_rt *rt,
                          cp2p__kad_store *store, const cp2p__kad_dir *dir,
                          cp2p__kad_handler **out)
{
    if (cfg == NULL || rt == NULL || store == NULL || dir == NULL || out == NULL ||
        cfg->k == 0 || cfg->k > CP2P_KAD_MAX_K || cfg->requests_per_sec == 0 ||
        cfg->requests_burst == 0 || dir->addrs == NULL || dir->known == NULL ||
        dir->connected == NULL || dir->self_addrs == NULL || dir->learn == NULL) {
        return CP2P_EINVAL;
    }
    cp2p__kad_handler *h = cp2p_calloc(1, sizeof(*h));
    if (h == NULL) {
        return CP2P_ENOMEM;
    }
    h->cfg = *cfg;
    h->rt = rt;
    h->store = store;
    h->dir = *dir;
    *out = h;
    return 0;
}

void cp2p__kad_handler_free(cp2p__kad_handler *h)
{
    cp2p_free(h);
}

void cp2p__kad_handler_stats_get(const cp2p__kad_handler *h, cp2p__kad_handler_stats *out)
{
    *out = h->stats;
}

static bool rate_allow(cp2p__kad_handler *h, const cp2p_peer_id *p, uint64_t now)
{
    rate_slot *slot = NULL, *oldest = &h->rate[0];
    for (size_t i = 0; i < CP2P_KAD_RATE_SLOTS; i++) {
        rate_slot *r = &h->rate[i];
        if (r->used && cp2p_peer_id_equal(&r->peer, p)) {
            slot = r;
            break;
        }
        if (!r->used || (oldest->used && r->at < oldest->at)) {
            oldest = r;
        }
    }
    if (slot == NULL) {
        slot = oldest;
        *slot = (rate_slot){.peer = *p, .used = true};
        cp2p__token_bucket_init(&slot->tb, h->cfg.requests_per_sec, h->cfg.requests_burst,
                                now);
    }
    slot->at = now;
    return cp2p__token_bucket_take(&slot->tb, 1, now);
}

/* The closer peers of an answer (FIND_NODE, GET_VALUE, GET_PROVIDERS) into *closer. */
static int answer_closer(cp2p__kad_handler *h, const cp2p_peer_id *from,
                         const cp2p__kad_msg *req, cp2p__kad_peer_list *closer)
{
    cp2p_peer_id ids[CP2P_KAD_MAX_K + 1];
    cp2p__kad_key target;
    cp2p_peer_id tp;
    size_t n = 0;
    int rc;
    cp2p__kad_key_of(req->key, req->key_len, &target);
    bool target_is_peer = cp2p_peer_id_from_bytes(req->key, req->key_len, &tp) == 0;
    bool is_self = req->type == CP2P__KAD_FIND_NODE && target_is_peer &&
                   cp2p_peer_id_equal(&tp, &h->cfg.self);
    if (!is_self) { /* looking for us: answer with ourselves alone */
        size_t got = cp2p__kad_rt_closest(h->rt, &target, ids, h->cfg.k + 1);
        for (size_t i = 0; i < got && n < h->cfg.k; i++) {
            if (!cp2p_peer_id_equal(&ids[i], from)) { /* never tell a peer about itself */
                ids[n++] = ids[i];
            }
        }
        /* go: the target itself when we know where it is, even if not in the table. */
        if (req->type == CP2P__KAD_FIND_NODE && target_is_peer &&
            !cp2p_peer_id_equal(&tp, from) && n < CP2P_KAD_MAX_K + 1) {
            bool have = false;
            for (size_t i = 0; i < n; i++) {
                have = have || cp2p_peer_id_equal(&ids[i], &tp);
            }
            if (!have && h->dir.known(h->dir.ud, &tp)) {
                ids[n++] = tp;
            }
        }
    }
    if ((rc = cp2p__kad_peer_list_fill(&h->dir, ids, n, false, closer)) != 0) {
        return rc;
    }
    if (is_self) {
        cp2p__kad_peer_list_add_self(&h->dir, &h->cfg.self, closer); /* exactly us (spec) */
    }
    return 0;
}

/* ADD_PROVIDER: only the sender may announce itself (spec). */
static void add_provider(cp2p__kad_handler *h, const cp2p_peer_id *from,
                         const cp2p__kad_msg *req, uint64_t now)
{
    for (size_t i = 0; i < req->n_providers; i++) {
        if (cp2p_peer_id_equal(&req->providers[i].id, from)) {
            h->dir.learn(h->dir.ud, &req->providers[i]);
            if (cp2p__kad_store_add_provider(h->store, req->key, req->key_len, from, now) ==
                0) {
                h->stats.providers_stored++;
            }
            return;
        }
    }
}

/* The providers of an answer (GET_PROVIDERS): the other providers with or without address,
 * and us with ours when we provide the key too. */
static int answer_providers(cp2p__kad_handler *h, const cp2p__kad_msg *req, uint64_t now,
                            cp2p__kad_peer_list *provs)
{
    cp2p_peer_id prov[CP2P_KAD_MAX_PROVIDERS_ANSWER];
    size_t np = cp2p__kad_store_providers(h->store, req->key, req->key_len, now, prov,
                                          CP2P_KAD_MAX_PROVIDERS_ANSWER);
    bool self_provides = false;
    size_t nother = 0;
    int rc;
    for (size_t i = 0; i < np; i++) {
        if (cp2p_peer_id_equal(&prov[i], &h->cfg.self)) {
            self_provides = true;
        } else {
            prov[nother++] = prov[i];
        }
    }
    /* Providers without a known address still count: the querier may find them. */
    if ((rc = cp2p__kad_peer_list_fill(&h->dir, prov, nother, true, provs)) != 0) {
        return rc;
    }
    if (self_provides) {
        cp2p__kad_peer_list_add_self(&h->dir, &h->cfg.self, provs);
    }
    return 0;
}

/* Our answer to one decoded request, encoded into body, or an error. *answer false: nothing
 * to send (ADD_PROVIDER). */
static int handle(cp2p__kad_handler *h, const cp2p_peer_id *from, const cp2p__kad_msg *req,
                  uint64_t now, cp2p_buf *body, bool *answer, const char **why)
{
    cp2p__kad_msg resp = {.type = req->type, .key = req->key, .key_len = req->key_len};
    cp2p__kad_peer_list closer = {0}, provs = {0};
    int rc = 0;
    *answer = true;
    if (req->key == NULL && req->type != CP2P__KAD_PING) {
        *why = "request without a key";
        return CP2P_EPROTO;
    }
    switch (req->type) {
    case CP2P__KAD_FIND_NODE:
    case CP2P__KAD_GET_VALUE:
    case CP2P__KAD_GET_PROVIDERS:
        if ((rc = answer_closer(h, from, req, &closer)) != 0) {
            *why = "out of memory";
            return rc;
        }
        resp.closer = closer.peers;
        resp.n_closer = closer.n;
        break;
    default:
        break;
    }
    switch (req->type) {
    case CP2P__KAD_FIND_NODE:
    case CP2P__KAD_PING:
        break;
    case CP2P__KAD_GET_VALUE: {
        const uint8_t *v;
        size_t vl;
        uint64_t at;
        if (cp2p__kad_store_get(h->store, req->key, req->key_len, now, &v, &vl, &at) == 0) {
            resp.has_record = true;
            resp.record = (cp2p__kad_record){.key = req->key, .key_len = req->key_len,
                                             .value = (uint8_t *)v, .value_len = vl};
        }
        break;
    }
    case CP2P__KAD_PUT_VALUE:
        if (!req->has_record || req->record.key_len != req->key_len ||
            memcmp(req->record.key, req->key, req->key_len) != 0) {
            *why = "PUT_VALUE without a record of its key";
            return CP2P_EPROTO;
        }
        rc = cp2p__kad_store_put(h->store, req->key, req->key_len, req->record.value,
                                 req->record.value_len, now);
        if (rc != 0 && rc != CP2P_ESTATE) {
            *why = "record refused by the store";
            return rc; /* invalid or full: the peer sees a reset, as go's error does */
        }
        h->stats.records_stored += rc == 0;
        resp.has_record = true;
        resp.record = req->record; /* echo, as go and js do */
        resp.record.time_received = NULL;
        rc = 0;
        break;
    case CP2P__KAD_ADD_PROVIDER:
        *answer = false;
        add_provider(h, from, req, now);
        return 0;
    case CP2P__KAD_GET_PROVIDERS:
        if ((rc = answer_providers(h, req, now, &provs)) != 0) {
            *why = "out of memory";
            goto done;
        }
        resp.providers = provs.peers;
        resp.n_providers = provs.n;
        break;
    default:
        *why = "unknown request type";
        rc = CP2P_EPROTO;
        goto done;
    }
    if ((rc = cp2p__kad_msg_encode(&resp, body)) != 0) {
        *why = "answer not encodable";
    }
done:
    cp2p__kad_peer_list_fini(&provs);
    cp2p__kad_peer_list_fini(&closer);
    return rc;
}

int cp2p__kad_handler_request(cp2p__kad_handler *h, const cp2p_peer_id *from,
                              const uint8_t *body, size_t len, uint64_t now_ms, cp2p_buf *out,
                              const char **why)
{
    cp2p__kad_msg req;
    cp2p_buf ans;
    bool answer = false;
    int rc;
    *why = NULL;
    cp2p_buf_reset(out);
    h->stats.requests_in++;
    if (!rate_allow(h, from, now_ms)) {
        h->stats.refused_rate++;
        *why = "request rate over the limit";
        return CP2P_ELIMIT;
    }
    if ((rc = cp2p__kad_msg_decode(body, len, &req, why)) != 0) {
        if (*why == NULL) {
            *why = "undecodable request";
        }
        h->stats.bad++;
        return rc;
    }
    cp2p__kad_rt_seen(h->rt, from, now_ms); /* it is alive */
    cp2p_buf_init(&ans, CP2P_KAD_MAX_MSG);
    rc = handle(h, from, &req, now_ms, &ans, &answer, why);
    cp2p__kad_msg_fini(&req);
    if (rc != 0) {
        cp2p_buf_fini(&ans);
        h->stats.bad++;
        return rc;
    }
    if (answer) {
        if ((rc = cp2p_uvarint_append(out, ans.len)) != 0 ||
            (rc = cp2p_buf_append(out, ans.ptr, ans.len)) != 0) {
            cp2p_buf_fini(&ans);
            cp2p_buf_reset(out); /* never half an answer */
            *why = "answer not framed";
            return rc;
        }
        h->stats.answers++;
    }
    cp2p_buf_fini(&ans);
    return answer ? 1 : 0;
}
