/* Overlay wire codec (ovl_msg.h). */
#include "overlay/ovl_msg.h"

#include <string.h>

#include "overlay.pb-c.h"
#include "util/bytes.h"
#include "util/pb.h"

static const char ROUTE_CTX[] = "cp2p-overlay-route:";
static const char LSA_CTX[] = "cp2p-overlay-lsa:";

void cp2p__ovl_frame_clear(cp2p__ovl_frame *f)
{
    f->version = 0;
    f->n_routes = f->n_reqs = f->n_lsas = 0;
    f->has_packet = false;
    f->pb_ = NULL;
}

static int take_id(ProtobufCBinaryData b, cp2p_peer_id *out)
{
    if (b.len == 0 || cp2p_peer_id_from_bytes(b.data, b.len, out) != 0) {
        return CP2P_EPROTO;
    }
    return 0;
}

static int take_sig(ProtobufCBinaryData b, uint8_t *sig, uint8_t *len)
{
    if (b.len == 0 || b.len > CP2P_SIG_MAX) {
        return CP2P_EPROTO;
    }
    memcpy(sig, b.data, b.len);
    *len = (uint8_t)b.len;
    return 0;
}

static int take_packet(const Cp2pPb__OvlPacket *p, cp2p__ovl_packet *o, const char **why)
{
    switch (p->kind) {
    case CP2P_OVL_PKT_DATA:
    case CP2P_OVL_PKT_ACK:
        o->kind = (cp2p__ovl_pkt_kind)p->kind;
        break;
    default:
        *why = "unknown overlay packet kind";
        return CP2P_EPROTO;
    }
    if ((p->flags & ~CP2P_OVL_F_ALL) != 0) {
        *why = "unknown overlay packet flags";
        return CP2P_EPROTO;
    }
    o->flags = p->flags;
    if (take_id(p->src, &o->src) != 0 || take_id(p->dst, &o->dst) != 0) {
        *why = "overlay packet with an invalid source or destination";
        return CP2P_EPROTO;
    }
    if (p->hop_limit > CP2P_OVL_MAX_HOPS) {
        *why = "overlay hop limit over CP2P_OVL_MAX_HOPS";
        return CP2P_ELIMIT;
    }
    o->hop_limit = (uint8_t)p->hop_limit;
    o->id = p->id;
    if (p->n_path > CP2P_OVL_MAX_HOPS) {
        *why = "overlay source route longer than CP2P_OVL_MAX_HOPS";
        return CP2P_ELIMIT;
    }
    if ((p->flags & CP2P_OVL_F_SOURCE) != 0) {
        if (p->n_path == 0 || p->path_idx >= p->n_path) {
            *why = "overlay source route empty or index past its end";
            return CP2P_EPROTO;
        }
    } else if (p->n_path != 0 || p->path_idx != 0) {
        *why = "overlay path on a packet that is not source routed";
        return CP2P_EPROTO;
    }
    o->n_path = (uint8_t)p->n_path;
    o->path_idx = (uint8_t)p->path_idx;
    for (size_t i = 0; i < p->n_path; i++) {
        if (take_id(p->path[i], &o->path[i]) != 0) {
            *why = "overlay source route with an invalid peer ID";
            return CP2P_EPROTO;
        }
    }
    if (o->n_path != 0 && !cp2p_peer_id_equal(&o->path[o->n_path - 1], &o->dst)) {
        *why = "overlay source route does not end at the destination";
        return CP2P_EPROTO;
    }
    if (p->payload.len > CP2P_OVL_MAX_PAYLOAD) {
        *why = "overlay payload over CP2P_OVL_MAX_PAYLOAD";
        return CP2P_ELIMIT;
    }
    if (o->kind == CP2P_OVL_PKT_ACK && p->payload.len != 0) {
        *why = "overlay ack with a payload";
        return CP2P_EPROTO;
    }
    o->payload = (cp2p_slice){.ptr = p->payload.data, .len = p->payload.len};
    return 0;
}

static int take_lsa(const Cp2pPb__OvlLsa *p, cp2p__ovl_lsa *o, const char **why)
{
    if (take_id(p->origin, &o->origin) != 0) {
        *why = "overlay LSA with an invalid origin";
        return CP2P_EPROTO;
    }
    if (p->n_links > CP2P_OVL_MAX_LINKS) {
        *why = "overlay LSA with more than CP2P_OVL_MAX_LINKS links";
        return CP2P_ELIMIT;
    }
    o->seq = p->seq;
    o->n_links = (uint32_t)p->n_links;
    for (size_t i = 0; i < p->n_links; i++) {
        const Cp2pPb__OvlLink *l = p->links[i];
        if (take_id(l->peer, &o->links[i].peer) != 0 || l->cost == 0 ||
            l->cost > CP2P_OVL_MAX_COST) {
            *why = "overlay LSA link with an invalid peer ID or cost";
            return CP2P_EPROTO;
        }
        o->links[i].cost = l->cost;
    }
    if (take_sig(p->sig, o->sig, &o->sig_len) != 0) {
        *why = "overlay LSA signature missing or too long";
        return CP2P_EPROTO;
    }
    return 0;
}

int cp2p__ovl_frame_decode(const uint8_t *in, size_t len, cp2p__ovl_frame *f, const char **why)
{
    Cp2pPb__OvlFrame *pb;
    int rc;
    cp2p__ovl_frame_clear(f);
    if (len > CP2P_OVL_MAX_FRAME) {
        *why = "overlay frame over CP2P_OVL_MAX_FRAME";
        return CP2P_ELIMIT;
    }
    /* Size checked first (STYLE.md 6.10); the schema has no recursive message. */
    cp2p__pb_alloc pa;
    cp2p__pb_alloc_init(&pa);
    pb = cp2p_pb__ovl_frame__unpack(&pa.a, len, in);
    if (pb == NULL) {
        *why = pa.failed ? "out of memory" : "overlay frame is not valid protobuf";
        return pa.failed ? CP2P_ENOMEM : CP2P_EPROTO;
    }
    if (pb->version != CP2P_OVL_VERSION) {
        *why = "overlay version mismatch: the peer speaks another overlay wire version";
        rc = CP2P_ENOTSUP;
        goto fail;
    }
    f->version = pb->version;
    if (pb->n_routes > CP2P_OVL_MAX_ROUTES_PER_FRAME || pb->n_reqs > CP2P_OVL_MAX_REQS_PER_FRAME ||
        pb->n_lsas > CP2P_OVL_MAX_LSAS_PER_FRAME) {
        *why = "overlay frame with too many routes, requests or LSAs";
        rc = CP2P_ELIMIT;
        goto fail;
    }
    rc = CP2P_EPROTO;
    for (size_t i = 0; i < pb->n_routes; i++) {
        const Cp2pPb__OvlRoute *r = pb->routes[i];
        cp2p__ovl_route *o = &f->routes[i];
        if (take_id(r->origin, &o->origin) != 0 || r->metric > CP2P_OVL_INF ||
            take_sig(r->sig, o->sig, &o->sig_len) != 0) {
            *why = "overlay route update with an invalid origin, metric or signature";
            goto fail;
        }
        o->seqno = r->seqno;
        o->metric = (uint16_t)r->metric;
    }
    f->n_routes = (uint32_t)pb->n_routes;
    for (size_t i = 0; i < pb->n_reqs; i++) {
        const Cp2pPb__OvlSeqnoReq *r = pb->reqs[i];
        if (take_id(r->origin, &f->reqs[i].origin) != 0 || r->hop_count > CP2P_OVL_REQ_HOPS) {
            *why = "overlay seqno request with an invalid origin or hop count";
            goto fail;
        }
        f->reqs[i].seqno = r->seqno;
        f->reqs[i].hop_count = (uint8_t)r->hop_count;
    }
    f->n_reqs = (uint32_t)pb->n_reqs;
    for (size_t i = 0; i < pb->n_lsas; i++) {
        if ((rc = take_lsa(pb->lsas[i], &f->lsas[i], why)) != 0) {
            goto fail;
        }
    }
    f->n_lsas = (uint32_t)pb->n_lsas;
    if (pb->packet != NULL) {
        if ((rc = take_packet(pb->packet, &f->packet, why)) != 0) {
            goto fail;
        }
        f->has_packet = true;
    }
    f->pb_ = pb;
    return 0;
fail:
    cp2p_pb__ovl_frame__free_unpacked(pb, &pa.a);
    cp2p__ovl_frame_clear(f);
    return rc;
}

void cp2p__ovl_frame_release(cp2p__ovl_frame *f)
{
    if (f->pb_ != NULL) {
        cp2p__pb_alloc pa;
        cp2p__pb_alloc_init(&pa);
        cp2p_pb__ovl_frame__free_unpacked(f->pb_, &pa.a);
    }
    cp2p__ovl_frame_clear(f);
}

static ProtobufCBinaryData bin_id(const cp2p_peer_id *id)
{
    return (ProtobufCBinaryData){.len = id->len, .data = (uint8_t *)id->bytes};
}

/* The pb structs point into f; everything lives on the heap for one encode. */
typedef struct enc_scratch {
    Cp2pPb__OvlRoute routes[CP2P_OVL_MAX_ROUTES_PER_FRAME];
    Cp2pPb__OvlRoute *route_ptrs[CP2P_OVL_MAX_ROUTES_PER_FRAME];
    Cp2pPb__OvlSeqnoReq reqs[CP2P_OVL_MAX_REQS_PER_FRAME];
    Cp2pPb__OvlSeqnoReq *req_ptrs[CP2P_OVL_MAX_REQS_PER_FRAME];
    Cp2pPb__OvlLsa lsas[CP2P_OVL_MAX_LSAS_PER_FRAME];
    Cp2pPb__OvlLsa *lsa_ptrs[CP2P_OVL_MAX_LSAS_PER_FRAME];
    Cp2pPb__OvlLink links[CP2P_OVL_MAX_LSAS_PER_FRAME][CP2P_OVL_MAX_LINKS];
    Cp2pPb__OvlLink *link_ptrs[CP2P_OVL_MAX_LSAS_PER_FRAME][CP2P_OVL_MAX_LINKS];
    Cp2pPb__OvlPacket packet;
    ProtobufCBinaryData path[CP2P_OVL_MAX_HOPS];
} enc_scratch;

int cp2p__ovl_frame_encode(const cp2p__ovl_frame *f, cp2p_buf *out)
{
    Cp2pPb__OvlFrame pb = CP2P_PB__OVL_FRAME__INIT;
    enc_scratch *s;
    int rc;
    if (f->n_routes > CP2P_OVL_MAX_ROUTES_PER_FRAME || f->n_reqs > CP2P_OVL_MAX_REQS_PER_FRAME ||
        f->n_lsas > CP2P_OVL_MAX_LSAS_PER_FRAME) {
        return CP2P_ELIMIT;
    }
    /* Only what is used is initialised; the rest of the scratch stays untouched. */
    if ((s = cp2p_malloc(sizeof(*s))) == NULL) {
        return CP2P_ENOMEM;
    }
    pb.version = f->version != 0 ? f->version : CP2P_OVL_VERSION;
    for (uint32_t i = 0; i < f->n_routes; i++) {
        const cp2p__ovl_route *r = &f->routes[i];
        s->routes[i] = (Cp2pPb__OvlRoute)CP2P_PB__OVL_ROUTE__INIT;
        s->routes[i].origin = bin_id(&r->origin);
        s->routes[i].seqno = r->seqno;
        s->routes[i].metric = r->metric;
        s->routes[i].sig = (ProtobufCBinaryData){.len = r->sig_len, .data = (uint8_t *)r->sig};
        s->route_ptrs[i] = &s->routes[i];
    }
    pb.n_routes = f->n_routes;
    pb.routes = s->route_ptrs;
    for (uint32_t i = 0; i < f->n_reqs; i++) {
        s->reqs[i] = (Cp2pPb__OvlSeqnoReq)CP2P_PB__OVL_SEQNO_REQ__INIT;
        s->reqs[i].origin = bin_id(&f->reqs[i].origin);
        s->reqs[i].seqno = f->reqs[i].seqno;
        s->reqs[i].hop_count = f->reqs[i].hop_count;
        s->req_ptrs[i] = &s->reqs[i];
    }
    pb.n_reqs = f->n_reqs;
    pb.reqs = s->req_ptrs;
    for (uint32_t i = 0; i < f->n_lsas; i++) {
        const cp2p__ovl_lsa *l = &f->lsas[i];
        if (l->n_links > CP2P_OVL_MAX_LINKS) {
            rc = CP2P_ELIMIT;
            goto out;
        }
        s->lsas[i] = (Cp2pPb__OvlLsa)CP2P_PB__OVL_LSA__INIT;
        s->lsas[i].origin = bin_id(&l->origin);
        s->lsas[i].seq = l->seq;
        for (uint32_t j = 0; j < l->n_links; j++) {
            s->links[i][j] = (Cp2pPb__OvlLink)CP2P_PB__OVL_LINK__INIT;
            s->links[i][j].peer = bin_id(&l->links[j].peer);
            s->links[i][j].cost = l->links[j].cost;
            s->link_ptrs[i][j] = &s->links[i][j];
        }
        s->lsas[i].n_links = l->n_links;
        s->lsas[i].links = s->link_ptrs[i];
        s->lsas[i].sig = (ProtobufCBinaryData){.len = l->sig_len, .data = (uint8_t *)l->sig};
        s->lsa_ptrs[i] = &s->lsas[i];
    }
    pb.n_lsas = f->n_lsas;
    pb.lsas = s->lsa_ptrs;
    if (f->has_packet) {
        const cp2p__ovl_packet *p = &f->packet;
        if (p->n_path > CP2P_OVL_MAX_HOPS) {
            rc = CP2P_ELIMIT;
            goto out;
        }
        s->packet = (Cp2pPb__OvlPacket)CP2P_PB__OVL_PACKET__INIT;
        s->packet.kind = p->kind;
        s->packet.src = bin_id(&p->src);
        s->packet.dst = bin_id(&p->dst);
        s->packet.id = p->id;
        s->packet.hop_limit = p->hop_limit;
        s->packet.flags = p->flags;
        for (uint8_t i = 0; i < p->n_path; i++) {
            s->path[i] = bin_id(&p->path[i]);
        }
        s->packet.n_path = p->n_path;
        s->packet.path = s->path;
        s->packet.path_idx = p->path_idx;
        s->packet.payload =
            (ProtobufCBinaryData){.len = p->payload.len, .data = (uint8_t *)p->payload.ptr};
        pb.packet = &s->packet;
    }
    size_t n = cp2p_pb__ovl_frame__get_packed_size(&pb);
    if (n > CP2P_OVL_MAX_FRAME) {
        rc = CP2P_ELIMIT;
        goto out;
    }
    if ((rc = cp2p_buf_reserve(out, n)) == 0) {
        cp2p_pb__ovl_frame__pack(&pb, out->ptr + out->len);
        out->len += n;
    }
out:
    cp2p_free(s);
    return rc;
}

size_t cp2p__ovl_route_sigin(const cp2p_peer_id *origin, uint32_t seqno, uint8_t *out)
{
    size_t n = sizeof(ROUTE_CTX) - 1;
    memcpy(out, ROUTE_CTX, n);
    memcpy(out + n, origin->bytes, origin->len);
    n += origin->len;
    cp2p_store_be32(out + n, seqno);
    return n + 4;
}

int cp2p__ovl_lsa_sigin(const cp2p__ovl_lsa *l, cp2p_buf *out)
{
    uint8_t tmp[8];
    int rc;
    cp2p_store_be64(tmp, l->seq);
    if ((rc = cp2p_buf_append(out, LSA_CTX, sizeof(LSA_CTX) - 1)) != 0 ||
        (rc = cp2p_buf_append(out, l->origin.bytes, l->origin.len)) != 0 ||
        (rc = cp2p_buf_append(out, tmp, 8)) != 0) {
        return rc;
    }
    for (uint32_t i = 0; i < l->n_links; i++) {
        cp2p_store_be32(tmp, l->links[i].cost);
        if ((rc = cp2p_buf_append_byte(out, (uint8_t)l->links[i].peer.len)) != 0 ||
            (rc = cp2p_buf_append(out, l->links[i].peer.bytes, l->links[i].peer.len)) != 0 ||
            (rc = cp2p_buf_append(out, tmp, 4)) != 0) {
            return rc;
        }
    }
    return 0;
}
