/* Pubsub RPC codec: protobuf-c decoding with limits, hand-written encoding. */
#include <string.h>

#include <cp2p/codec.h>

#include "gossipsub.pb-c.h"
#include "protocols/gossipsub/gs_rpc.h"
#include "util/alloc.h"
#include "util/limits.h"
#include "util/pb.h"

/* ---- decoding ---- */

static void free_topic(const char *t)
{
    cp2p_free((void *)(uintptr_t)t);
}

void cp2p__gs_rpc_fini(cp2p__gs_rpc *r)
{
    for (size_t i = 0; i < r->n_subs; i++) {
        free_topic(r->subs[i].topic);
    }
    for (size_t i = 0; i < r->n_msgs; i++) {
        free_topic(r->msgs[i].topic);
    }
    for (size_t i = 0; i < r->n_ihave; i++) {
        free_topic(r->ihave[i].topic);
        cp2p_free(r->ihave[i].ids);
    }
    for (size_t i = 0; i < r->n_iwant; i++) {
        cp2p_free(r->iwant[i].ids);
    }
    for (size_t i = 0; i < r->n_idontwant; i++) {
        cp2p_free(r->idontwant[i].ids);
    }
    for (size_t i = 0; i < r->n_graft; i++) {
        free_topic(r->graft[i]);
    }
    for (size_t i = 0; i < r->n_prune; i++) {
        free_topic(r->prune[i].topic);
        cp2p_free(r->prune[i].peers);
    }
    cp2p_free(r->subs);
    cp2p_free(r->msgs);
    cp2p_free(r->ihave);
    cp2p_free(r->iwant);
    cp2p_free(r->idontwant);
    cp2p_free((void *)r->graft);
    cp2p_free(r->prune);
    if (r->pb_ != NULL) {
        cp2p__pb_alloc pa;
        cp2p__pb_alloc_init(&pa);
        cp2p_pb__rpc__free_unpacked(r->pb_, &pa.a);
    }
    *r = (cp2p__gs_rpc){0};
}

/* A topic: 1..CP2P_GS_MAX_TOPIC_LEN bytes without NUL. Returns 0 with *out NULL when the topic
 * is invalid (the caller drops the entry and counts it), or CP2P_ENOMEM. */
static int take_topic(bool has, ProtobufCBinaryData d, char **out)
{
    *out = NULL;
    if (!has || d.len == 0 || d.len > CP2P_GS_MAX_TOPIC_LEN || memchr(d.data, 0, d.len) != NULL) {
        return 0;
    }
    char *t = cp2p_malloc(d.len + 1);
    if (t == NULL) {
        return CP2P_ENOMEM;
    }
    memcpy(t, d.data, d.len);
    t[d.len] = '\0';
    *out = t;
    return 0;
}

static cp2p_slice slice_of(ProtobufCBinaryData d)
{
    return (cp2p_slice){d.data, d.len};
}

/* Copy up to *budget valid IDs; the rest are counted as control drops, bad ones as bad_id. */
static int take_ids(const ProtobufCBinaryData *ids, size_t n, size_t *budget, cp2p_slice **out,
                    size_t *n_out, cp2p__gs_rpc_drops *dr)
{
    size_t keep = n < *budget ? n : *budget;
    dr->control += (uint32_t)(n - keep);
    *out = NULL;
    *n_out = 0;
    if (keep == 0) {
        return 0;
    }
    if ((*out = cp2p_calloc(keep, sizeof(cp2p_slice))) == NULL) {
        return CP2P_ENOMEM;
    }
    for (size_t i = 0; i < keep; i++) {
        if (ids[i].len == 0 || ids[i].len > CP2P_GS_MAX_MSG_ID) {
            dr->bad_id++;
            continue;
        }
        (*out)[(*n_out)++] = slice_of(ids[i]);
    }
    *budget -= keep;
    return 0;
}

static int decode_control(const Cp2pPb__ControlMessage *c, cp2p__gs_rpc *r)
{
    size_t budget = CP2P_GS_MAX_RPC_CONTROL;
    cp2p__gs_rpc_drops *dr = &r->dropped;
    int rc;
    if (c->n_ihave > 0 && (r->ihave = cp2p_calloc(c->n_ihave, sizeof(*r->ihave))) == NULL) {
        return CP2P_ENOMEM;
    }
    for (size_t i = 0; i < c->n_ihave; i++) {
        const Cp2pPb__ControlIHave *h = c->ihave[i];
        char *t;
        if (budget == 0) {
            dr->control += (uint32_t)(h->n_messageids > 0 ? h->n_messageids : 1);
            continue;
        }
        if ((rc = take_topic(h->has_topicid, h->topicid, &t)) != 0) {
            return rc;
        }
        if (t == NULL) {
            dr->bad_topic++;
            continue;
        }
        cp2p__gs_ihave *o = &r->ihave[r->n_ihave++];
        o->topic = t;
        if ((rc = take_ids(h->messageids, h->n_messageids, &budget, &o->ids, &o->n_ids, dr))) {
            return rc;
        }
    }
    if (c->n_iwant > 0 && (r->iwant = cp2p_calloc(c->n_iwant, sizeof(*r->iwant))) == NULL) {
        return CP2P_ENOMEM;
    }
    for (size_t i = 0; i < c->n_iwant; i++) {
        cp2p__gs_idlist *o = &r->iwant[r->n_iwant++];
        if ((rc = take_ids(c->iwant[i]->messageids, c->iwant[i]->n_messageids, &budget, &o->ids,
                           &o->n_ids, dr))) {
            return rc;
        }
    }
    if (c->n_idontwant > 0 &&
        (r->idontwant = cp2p_calloc(c->n_idontwant, sizeof(*r->idontwant))) == NULL) {
        return CP2P_ENOMEM;
    }
    for (size_t i = 0; i < c->n_idontwant; i++) {
        cp2p__gs_idlist *o = &r->idontwant[r->n_idontwant++];
        if ((rc = take_ids(c->idontwant[i]->messageids, c->idontwant[i]->n_messageids, &budget,
                           &o->ids, &o->n_ids, dr))) {
            return rc;
        }
    }
    if (c->n_graft > 0 &&
        (r->graft = (const char **)cp2p_calloc(c->n_graft, sizeof(char *))) == NULL) {
        return CP2P_ENOMEM;
    }
    for (size_t i = 0; i < c->n_graft; i++) {
        char *t;
        if (budget == 0) {
            dr->control++;
            continue;
        }
        budget--;
        if ((rc = take_topic(c->graft[i]->has_topicid, c->graft[i]->topicid, &t)) != 0) {
            return rc;
        }
        if (t == NULL) {
            dr->bad_topic++;
            continue;
        }
        r->graft[r->n_graft++] = t;
    }
    if (c->n_prune > 0 && (r->prune = cp2p_calloc(c->n_prune, sizeof(*r->prune))) == NULL) {
        return CP2P_ENOMEM;
    }
    for (size_t i = 0; i < c->n_prune; i++) {
        const Cp2pPb__ControlPrune *p = c->prune[i];
        char *t;
        if (budget == 0) {
            dr->control++;
            continue;
        }
        budget--;
        if ((rc = take_topic(p->has_topicid, p->topicid, &t)) != 0) {
            return rc;
        }
        if (t == NULL) {
            dr->bad_topic++;
            continue;
        }
        cp2p__gs_prune *o = &r->prune[r->n_prune++];
        o->topic = t;
        o->has_backoff = p->has_backoff;
        o->backoff_s = p->backoff;
        size_t keep = p->n_peers < CP2P_GS_MAX_PX_PEERS ? p->n_peers : CP2P_GS_MAX_PX_PEERS;
        dr->bad_px += (uint32_t)(p->n_peers - keep);
        if (keep > 0 && (o->peers = cp2p_calloc(keep, sizeof(*o->peers))) == NULL) {
            return CP2P_ENOMEM;
        }
        for (size_t j = 0; j < keep; j++) {
            const Cp2pPb__PeerInfo *pi = p->peers[j];
            cp2p__gs_px *x = &o->peers[o->n_peers];
            if (!pi->has_peerid ||
                cp2p_peer_id_from_bytes(pi->peerid.data, pi->peerid.len, &x->peer) != 0) {
                dr->bad_px++;
                continue;
            }
            x->record = pi->has_signedpeerrecord ? slice_of(pi->signedpeerrecord)
                                                 : (cp2p_slice){NULL, 0};
            o->n_peers++;
        }
    }
    return 0;
}

int cp2p__gs_rpc_decode(const uint8_t *in, size_t len, size_t max_size, cp2p__gs_rpc *out,
                        const char **why)
{
    int rc = 0;
    *out = (cp2p__gs_rpc){0};
    if (len > max_size) {
        *why = "pubsub RPC larger than the maximum size";
        return CP2P_ELIMIT;
    }
    cp2p__pb_alloc pa;
    cp2p__pb_alloc_init(&pa);
    Cp2pPb__RPC *pb = cp2p_pb__rpc__unpack(&pa.a, len, in);
    if (pb == NULL) {
        *why = pa.failed ? "out of memory" : "pubsub RPC is not valid protobuf";
        return pa.failed ? CP2P_ENOMEM : CP2P_EPROTO;
    }
    out->pb_ = pb;
    size_t ns = pb->n_subscriptions < CP2P_GS_MAX_RPC_SUBS ? pb->n_subscriptions
                                                           : CP2P_GS_MAX_RPC_SUBS;
    out->dropped.subs += (uint32_t)(pb->n_subscriptions - ns);
    if (ns > 0 && (out->subs = cp2p_calloc(ns, sizeof(*out->subs))) == NULL) {
        rc = CP2P_ENOMEM;
        goto fail;
    }
    for (size_t i = 0; i < ns; i++) {
        const Cp2pPb__RPC__SubOpts *s = pb->subscriptions[i];
        char *t;
        if ((rc = take_topic(s->has_topicid, s->topicid, &t)) != 0) {
            goto fail;
        }
        if (t == NULL) {
            out->dropped.bad_topic++;
            continue;
        }
        out->subs[out->n_subs].topic = t;
        out->subs[out->n_subs++].subscribe = s->has_subscribe && s->subscribe;
    }
    size_t nm = pb->n_publish < CP2P_GS_MAX_RPC_MSGS ? pb->n_publish : CP2P_GS_MAX_RPC_MSGS;
    out->dropped.msgs += (uint32_t)(pb->n_publish - nm);
    if (nm > 0 && (out->msgs = cp2p_calloc(nm, sizeof(*out->msgs))) == NULL) {
        rc = CP2P_ENOMEM;
        goto fail;
    }
    for (size_t i = 0; i < nm; i++) {
        const Cp2pPb__Message *m = pb->publish[i];
        char *t;
        if ((rc = take_topic(m->has_topic, m->topic, &t)) != 0) {
            goto fail;
        }
        if (t == NULL) {
            out->dropped.bad_topic++;
            continue;
        }
        cp2p__gs_msg *o = &out->msgs[out->n_msgs++];
        o->topic = t;
        o->has_from = m->has_from;
        o->from = slice_of(m->from);
        o->has_data = m->has_data;
        o->data = slice_of(m->data);
        o->has_seqno = m->has_seqno;
        o->seqno = slice_of(m->seqno);
        o->has_signature = m->has_signature;
        o->signature = slice_of(m->signature);
        o->has_key = m->has_key;
        o->key = slice_of(m->key);
    }
    if (pb->control != NULL && (rc = decode_control(pb->control, out)) != 0) {
        goto fail;
    }
    return 0;
fail:
    cp2p__gs_rpc_fini(out);
    *why = "out of memory";
    return rc;
}

/* ---- encoding ---- */

static size_t field_size(size_t body_len)
{
    return 1 + cp2p_uvarint_len(body_len) + body_len;
}

static int put_field(cp2p_buf *out, unsigned field, const void *p, size_t n)
{
    int rc;
    if ((rc = cp2p_buf_append_byte(out, (uint8_t)(field << 3 | 2))) != 0 ||
        (rc = cp2p_uvarint_append(out, n)) != 0) {
        return rc;
    }
    return n > 0 ? cp2p_buf_append(out, p, n) : 0;
}

static int put_header(cp2p_buf *out, unsigned field, size_t n)
{
    int rc = cp2p_buf_append_byte(out, (uint8_t)(field << 3 | 2));
    return rc != 0 ? rc : cp2p_uvarint_append(out, n);
}

size_t cp2p__gs_msg_body_size(const cp2p__gs_msg *m, bool with_sig)
{
    size_t n = 0;
    n += m->has_from ? field_size(m->from.len) : 0;
    n += m->has_data ? field_size(m->data.len) : 0;
    n += m->has_seqno ? field_size(m->seqno.len) : 0;
    n += m->topic != NULL ? field_size(strlen(m->topic)) : 0;
    if (with_sig) {
        n += m->has_signature ? field_size(m->signature.len) : 0;
        n += m->has_key ? field_size(m->key.len) : 0;
    }
    return n;
}

int cp2p__gs_msg_encode(const cp2p__gs_msg *m, bool with_sig, cp2p_buf *out)
{
    int rc = 0;
    if ((m->has_from && (rc = put_field(out, 1, m->from.ptr, m->from.len))) ||
        (m->has_data && (rc = put_field(out, 2, m->data.ptr, m->data.len))) ||
        (m->has_seqno && (rc = put_field(out, 3, m->seqno.ptr, m->seqno.len))) ||
        (m->topic != NULL && (rc = put_field(out, 4, m->topic, strlen(m->topic))))) {
        return rc;
    }
    if (with_sig &&
        ((m->has_signature && (rc = put_field(out, 5, m->signature.ptr, m->signature.len))) ||
         (m->has_key && (rc = put_field(out, 6, m->key.ptr, m->key.len))))) {
        return rc;
    }
    return 0;
}

size_t cp2p__gs_rpc_msg_size(size_t body_len)
{
    return field_size(body_len);
}

int cp2p__gs_rpc_msg_append(cp2p_buf *out, const uint8_t *body, size_t len)
{
    return put_field(out, 2, body, len);
}

static size_t sub_body_size(const char *topic)
{
    return 2 + field_size(strlen(topic));
}

size_t cp2p__gs_rpc_sub_size(const char *topic)
{
    return field_size(sub_body_size(topic));
}

int cp2p__gs_rpc_sub_append(cp2p_buf *out, const char *topic, bool subscribe)
{
    int rc;
    if ((rc = put_header(out, 1, sub_body_size(topic))) != 0 ||
        (rc = cp2p_buf_append_byte(out, 0x08)) != 0 ||
        (rc = cp2p_buf_append_byte(out, subscribe ? 1 : 0)) != 0) {
        return rc;
    }
    return put_field(out, 2, topic, strlen(topic));
}

size_t cp2p__gs_rpc_control_size(size_t body_len)
{
    return field_size(body_len);
}

int cp2p__gs_rpc_control_append(cp2p_buf *out, const uint8_t *body, size_t len)
{
    return put_field(out, 3, body, len);
}

static size_t ids_size(const cp2p_slice *ids, size_t n)
{
    size_t s = 0;
    for (size_t i = 0; i < n; i++) {
        s += field_size(ids[i].len);
    }
    return s;
}

static int put_ids(cp2p_buf *out, unsigned field, const cp2p_slice *ids, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int rc = put_field(out, field, ids[i].ptr, ids[i].len);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

static size_t ihave_body(const char *topic, const cp2p_slice *ids, size_t n)
{
    return field_size(strlen(topic)) + ids_size(ids, n);
}

size_t cp2p__gs_ctl_ihave_size(const char *topic, const cp2p_slice *ids, size_t n)
{
    return field_size(ihave_body(topic, ids, n));
}

int cp2p__gs_ctl_ihave_append(cp2p_buf *out, const char *topic, const cp2p_slice *ids, size_t n)
{
    int rc;
    if ((rc = put_header(out, 1, ihave_body(topic, ids, n))) != 0 ||
        (rc = put_field(out, 1, topic, strlen(topic))) != 0) {
        return rc;
    }
    return put_ids(out, 2, ids, n);
}

size_t cp2p__gs_ctl_idlist_size(const cp2p_slice *ids, size_t n)
{
    return field_size(ids_size(ids, n));
}

int cp2p__gs_ctl_idlist_append(cp2p_buf *out, unsigned field, const cp2p_slice *ids, size_t n)
{
    int rc = put_header(out, field, ids_size(ids, n));
    return rc != 0 ? rc : put_ids(out, 1, ids, n);
}

size_t cp2p__gs_ctl_graft_size(const char *topic)
{
    return field_size(field_size(strlen(topic)));
}

int cp2p__gs_ctl_graft_append(cp2p_buf *out, const char *topic)
{
    int rc = put_header(out, 3, field_size(strlen(topic)));
    return rc != 0 ? rc : put_field(out, 1, topic, strlen(topic));
}

static size_t px_body(const cp2p__gs_px *x)
{
    return field_size(x->peer.len) + (x->record.len > 0 ? field_size(x->record.len) : 0);
}

static size_t prune_body(const cp2p__gs_prune *p)
{
    size_t n = field_size(strlen(p->topic));
    for (size_t i = 0; i < p->n_peers; i++) {
        n += field_size(px_body(&p->peers[i]));
    }
    if (p->has_backoff) {
        n += 1 + cp2p_uvarint_len(p->backoff_s);
    }
    return n;
}

size_t cp2p__gs_ctl_prune_size(const cp2p__gs_prune *p)
{
    return field_size(prune_body(p));
}

int cp2p__gs_ctl_prune_append(cp2p_buf *out, const cp2p__gs_prune *p)
{
    int rc;
    if ((rc = put_header(out, 4, prune_body(p))) != 0 ||
        (rc = put_field(out, 1, p->topic, strlen(p->topic))) != 0) {
        return rc;
    }
    for (size_t i = 0; i < p->n_peers; i++) {
        const cp2p__gs_px *x = &p->peers[i];
        if ((rc = put_header(out, 2, px_body(x))) != 0 ||
            (rc = put_field(out, 1, x->peer.bytes, x->peer.len)) != 0 ||
            (x->record.len > 0 && (rc = put_field(out, 2, x->record.ptr, x->record.len)))) {
            return rc;
        }
    }
    if (p->has_backoff) {
        if ((rc = cp2p_buf_append_byte(out, 3 << 3)) != 0 ||
            (rc = cp2p_uvarint_append(out, p->backoff_s)) != 0) {
            return rc;
        }
    }
    return 0;
}

int cp2p__gs_rpc_encode(const cp2p__gs_rpc *r, cp2p_buf *out)
{
    int rc;
    for (size_t i = 0; i < r->n_subs; i++) {
        if ((rc = cp2p__gs_rpc_sub_append(out, r->subs[i].topic, r->subs[i].subscribe)) != 0) {
            return rc;
        }
    }
    for (size_t i = 0; i < r->n_msgs; i++) {
        const cp2p__gs_msg *m = &r->msgs[i];
        if ((rc = put_header(out, 2, cp2p__gs_msg_body_size(m, true))) != 0 ||
            (rc = cp2p__gs_msg_encode(m, true, out)) != 0) {
            return rc;
        }
    }
    size_t cb = 0;
    for (size_t i = 0; i < r->n_ihave; i++) {
        cb += cp2p__gs_ctl_ihave_size(r->ihave[i].topic, r->ihave[i].ids, r->ihave[i].n_ids);
    }
    for (size_t i = 0; i < r->n_iwant; i++) {
        cb += cp2p__gs_ctl_idlist_size(r->iwant[i].ids, r->iwant[i].n_ids);
    }
    for (size_t i = 0; i < r->n_graft; i++) {
        cb += cp2p__gs_ctl_graft_size(r->graft[i]);
    }
    for (size_t i = 0; i < r->n_prune; i++) {
        cb += cp2p__gs_ctl_prune_size(&r->prune[i]);
    }
    for (size_t i = 0; i < r->n_idontwant; i++) {
        cb += cp2p__gs_ctl_idlist_size(r->idontwant[i].ids, r->idontwant[i].n_ids);
    }
    if (r->n_ihave + r->n_iwant + r->n_graft + r->n_prune + r->n_idontwant == 0) {
        return 0;
    }
    if ((rc = put_header(out, 3, cb)) != 0) {
        return rc;
    }
    for (size_t i = 0; i < r->n_ihave; i++) {
        if ((rc = cp2p__gs_ctl_ihave_append(out, r->ihave[i].topic, r->ihave[i].ids,
                                            r->ihave[i].n_ids)) != 0) {
            return rc;
        }
    }
    for (size_t i = 0; i < r->n_iwant; i++) {
        if ((rc = cp2p__gs_ctl_idlist_append(out, 2, r->iwant[i].ids, r->iwant[i].n_ids))) {
            return rc;
        }
    }
    for (size_t i = 0; i < r->n_graft; i++) {
        if ((rc = cp2p__gs_ctl_graft_append(out, r->graft[i])) != 0) {
            return rc;
        }
    }
    for (size_t i = 0; i < r->n_prune; i++) {
        if ((rc = cp2p__gs_ctl_prune_append(out, &r->prune[i])) != 0) {
            return rc;
        }
    }
    for (size_t i = 0; i < r->n_idontwant; i++) {
        if ((rc = cp2p__gs_ctl_idlist_append(out, 5, r->idontwant[i].ids,
                                             r->idontwant[i].n_ids))) {
            return rc;
        }
    }
    return 0;
}
