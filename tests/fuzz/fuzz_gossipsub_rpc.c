/* Fuzz the pubsub RPC decoder: whatever decodes must encode, decode again to the same content,
 * and encode again to the same bytes. */
#include <stdlib.h>
#include <string.h>

#include "protocols/gossipsub/gs_rpc.h"
#include "util/limits.h"

static void same_slice(cp2p_slice a, cp2p_slice b)
{
    if (a.len != b.len || (a.len > 0 && memcmp(a.ptr, b.ptr, a.len) != 0)) {
        abort();
    }
}

static void same_ids(const cp2p_slice *a, size_t na, const cp2p_slice *b, size_t nb)
{
    if (na != nb) {
        abort();
    }
    for (size_t i = 0; i < na; i++) {
        same_slice(a[i], b[i]);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cp2p__gs_rpc m, again;
    const char *why = NULL;
    cp2p_buf b, b2;
    if (cp2p__gs_rpc_decode(data, size, CP2P_GS_MAX_RPC_SIZE, &m, &why) != 0) {
        return 0;
    }
    /* Dropped entries only shrink the RPC; unknown fields are not re-encoded. */
    cp2p_buf_init(&b, 2 * CP2P_GS_MAX_RPC_SIZE);
    cp2p_buf_init(&b2, 2 * CP2P_GS_MAX_RPC_SIZE);
    if (cp2p__gs_rpc_encode(&m, &b) != 0 ||
        cp2p__gs_rpc_decode(b.ptr, b.len, 2 * CP2P_GS_MAX_RPC_SIZE, &again, &why) != 0) {
        abort();
    }
    const cp2p__gs_rpc_drops *d = &again.dropped;
    if (d->subs + d->msgs + d->control + d->bad_topic + d->bad_id + d->bad_px != 0 ||
        again.n_subs != m.n_subs || again.n_msgs != m.n_msgs || again.n_ihave != m.n_ihave ||
        again.n_iwant != m.n_iwant || again.n_graft != m.n_graft ||
        again.n_prune != m.n_prune || again.n_idontwant != m.n_idontwant) {
        abort();
    }
    for (size_t i = 0; i < m.n_subs; i++) {
        if (strcmp(m.subs[i].topic, again.subs[i].topic) != 0 ||
            m.subs[i].subscribe != again.subs[i].subscribe) {
            abort();
        }
    }
    for (size_t i = 0; i < m.n_msgs; i++) {
        const cp2p__gs_msg *x = &m.msgs[i], *y = &again.msgs[i];
        if (strcmp(x->topic, y->topic) != 0 || x->has_from != y->has_from ||
            x->has_data != y->has_data || x->has_seqno != y->has_seqno ||
            x->has_signature != y->has_signature || x->has_key != y->has_key) {
            abort();
        }
        same_slice(x->from, y->from);
        same_slice(x->data, y->data);
        same_slice(x->seqno, y->seqno);
        same_slice(x->signature, y->signature);
        same_slice(x->key, y->key);
    }
    for (size_t i = 0; i < m.n_ihave; i++) {
        if (strcmp(m.ihave[i].topic, again.ihave[i].topic) != 0) {
            abort();
        }
        same_ids(m.ihave[i].ids, m.ihave[i].n_ids, again.ihave[i].ids, again.ihave[i].n_ids);
    }
    for (size_t i = 0; i < m.n_iwant; i++) {
        same_ids(m.iwant[i].ids, m.iwant[i].n_ids, again.iwant[i].ids, again.iwant[i].n_ids);
    }
    for (size_t i = 0; i < m.n_idontwant; i++) {
        same_ids(m.idontwant[i].ids, m.idontwant[i].n_ids, again.idontwant[i].ids,
                 again.idontwant[i].n_ids);
    }
    for (size_t i = 0; i < m.n_graft; i++) {
        if (strcmp(m.graft[i], again.graft[i]) != 0) {
            abort();
        }
    }
    for (size_t i = 0; i < m.n_prune; i++) {
        const cp2p__gs_prune *x = &m.prune[i], *y = &again.prune[i];
        if (strcmp(x->topic, y->topic) != 0 || x->has_backoff != y->has_backoff ||
            x->backoff_s != y->backoff_s || x->n_peers != y->n_peers) {
            abort();
        }
        for (size_t j = 0; j < x->n_peers; j++) {
            if (!cp2p_peer_id_equal(&x->peers[j].peer, &y->peers[j].peer)) {
                abort();
            }
            same_slice(x->peers[j].record, y->peers[j].record);
        }
    }
    if (cp2p__gs_rpc_encode(&again, &b2) != 0 || b2.len != b.len ||
        (b.len > 0 && memcmp(b.ptr, b2.ptr, b.len) != 0)) {
        abort();
    }
    cp2p__gs_rpc_fini(&again);
    cp2p__gs_rpc_fini(&m);
    cp2p_buf_fini(&b);
    cp2p_buf_fini(&b2);
    return 0;
}
