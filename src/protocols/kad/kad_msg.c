/* kad-dht RPC message codec (libp2p kad-dht spec, "RPC messages"; proto/kad.proto). */
#include <string.h>

#include "kad.pb-c.h"
#include "protocols/kad/kad_msg.h"
#include "util/alloc.h"
#include "util/limits.h"
#include "util/pb.h"

static void peers_free(cp2p__kad_peer *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < p[i].n_addrs; j++) {
            cp2p_multiaddr_free(p[i].addrs[j]);
        }
        cp2p_free(p[i].addrs);
    }
    cp2p_free(p);
}

void cp2p__kad_msg_fini(cp2p__kad_msg *m)
{
    cp2p_free(m->key);
    cp2p_free(m->record.key);
    cp2p_free(m->record.value);
    cp2p_free(m->record.time_received);
    peers_free(m->closer, m->n_closer);
    peers_free(m->providers, m->n_providers);
    *m = (cp2p__kad_msg){0};
}

static int take_bytes(ProtobufCBinaryData d, uint8_t **out, size_t *out_len)
{
    if (d.len == 0) {
        return 0; /* proto3: absent and empty are the same */
    }
    *out = cp2p__memdup(d.data, d.len);
    if (*out == NULL) {
        return CP2P_ENOMEM;
    }
    *out_len = d.len;
    return 0;
}

/* timeReceived is informational (set by the receiver, spec "Value storage"): RFC 3339 text is
 * printable ASCII, so anything else, or anything over CP2P_KAD_MAX_TIME_RECEIVED, is ignored. */
static int take_time(const char *s, char **out)
{
    if (s == NULL) {
        return 0;
    }
    size_t n = strlen(s);
    if (n == 0 || n > CP2P_KAD_MAX_TIME_RECEIVED) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e) {
            return 0;
        }
    }
    *out = cp2p__memdup(s, n + 1);
    return *out == NULL ? CP2P_ENOMEM : 0;
}

static cp2p__kad_conn_type conn_type(int v)
{
    switch (v) {
    case CP2P__KAD_CONNECTED:
    case CP2P__KAD_CAN_CONNECT:
    case CP2P__KAD_CANNOT_CONNECT:
        return (cp2p__kad_conn_type)v;
    default:
        /* The connection type is advisory; an unknown one says nothing we can use. */
        return CP2P__KAD_NOT_CONNECTED;
    }
}

/* Copy up to CP2P_KAD_MAX_PEERS_PER_MSG peers with a valid ID, each with up to
 * CP2P_KAD_MAX_ADDRS_PER_PEER valid addresses; the rest are dropped and counted. */
static int take_peers(Cp2pPb__KadMessage__Peer *const *in, size_t n_in, cp2p__kad_peer **out,
                      size_t *n_out, cp2p__kad_msg *m)
{
    size_t cap = n_in < CP2P_KAD_MAX_PEERS_PER_MSG ? n_in : CP2P_KAD_MAX_PEERS_PER_MSG;
    if (cap == 0) {
        return 0;
    }
    if ((*out = cp2p_calloc(cap, sizeof(**out))) == NULL) {
        return CP2P_ENOMEM;
    }
    for (size_t i = 0; i < n_in; i++) {
        const Cp2pPb__KadMessage__Peer *pp = in[i];
        if (*n_out == cap) {
            m->dropped_peers += (uint32_t)(n_in - i);
            break;
        }
        cp2p__kad_peer *p = &(*out)[*n_out];
        if (cp2p_peer_id_from_bytes(pp->id.data, pp->id.len, &p->id) != 0) {
            m->dropped_peers++;
            continue;
        }
        p->connection = conn_type((int)pp->connection);
        (*n_out)++; /* counted now so that fini frees its addresses on failure */
        size_t na = pp->n_addrs < CP2P_KAD_MAX_ADDRS_PER_PEER ? pp->n_addrs
                                                              : CP2P_KAD_MAX_ADDRS_PER_PEER;
        m->dropped_addrs += (uint32_t)(pp->n_addrs - na);
        if (na > 0 && (p->addrs = cp2p_calloc(na, sizeof(*p->addrs))) == NULL) {
            return CP2P_ENOMEM;
        }
        for (size_t j = 0; j < na; j++) {
            cp2p_multiaddr *ma;
            int r = cp2p_multiaddr_from_bytes(pp->addrs[j].data, pp->addrs[j].len, &ma);
            if (r == CP2P_ENOMEM) {
                return r;
            }
            if (r != 0) {
                m->dropped_addrs++;
                continue;
            }
            p->addrs[p->n_addrs++] = ma;
        }
    }
    return 0;
}

static int check_type(int v, cp2p__kad_type *out)
{
    switch (v) {
    case CP2P__KAD_PUT_VALUE:
    case CP2P__KAD_GET_VALUE:
    case CP2P__KAD_ADD_PROVIDER:
    case CP2P__KAD_GET_PROVIDERS:
    case CP2P__KAD_FIND_NODE:
    case CP2P__KAD_PING:
        *out = (cp2p__kad_type)v;
        return 0;
    default:
        return CP2P_EPROTO;
    }
}

int cp2p__kad_msg_decode(const uint8_t *in, size_t len, cp2p__kad_msg *out, const char **why)
{
    Cp2pPb__KadMessage *pb;
    int rc;
    *out = (cp2p__kad_msg){0};
    if (len > CP2P_KAD_MAX_MSG) {
        *why = "kad message larger than CP2P_KAD_MAX_MSG";
        return CP2P_ELIMIT;
    }
    /* Size checked first (STYLE.md 6.10); the schema has no recursive message. */
    cp2p__pb_alloc pa;
    cp2p__pb_alloc_init(&pa);
    pb = cp2p_pb__kad_message__unpack(&pa.a, len, in);
    if (pb == NULL) {
        *why = pa.failed ? "out of memory" : "kad message is not valid protobuf";
        return pa.failed ? CP2P_ENOMEM : CP2P_EPROTO;
    }
    if (check_type((int)pb->type, &out->type) != 0) {
        *why = "unknown kad message type";
        rc = CP2P_EPROTO;
        goto fail;
    }
    if (pb->key.len > CP2P_KAD_MAX_KEY ||
        (pb->record != NULL && pb->record->key.len > CP2P_KAD_MAX_KEY)) {
        *why = "kad key longer than CP2P_KAD_MAX_KEY";
        rc = CP2P_EPROTO;
        goto fail;
    }
    if (pb->record != NULL && pb->record->value.len > CP2P_KAD_MAX_VALUE) {
        *why = "kad record value larger than CP2P_KAD_MAX_VALUE";
        rc = CP2P_EPROTO;
        goto fail;
    }
    *why = "out of memory";
    if ((rc = take_bytes(pb->key, &out->key, &out->key_len)) != 0) {
        goto fail;
    }
    if (pb->record != NULL) {
        out->has_record = true;
        if ((rc = take_bytes(pb->record->key, &out->record.key, &out->record.key_len)) != 0 ||
            (rc = take_bytes(pb->record->value, &out->record.value, &out->record.value_len)) ||
            (rc = take_time(pb->record->timereceived, &out->record.time_received)) != 0) {
            goto fail;
        }
    }
    if ((rc = take_peers(pb->closerpeers, pb->n_closerpeers, &out->closer, &out->n_closer,
                         out)) != 0 ||
        (rc = take_peers(pb->providerpeers, pb->n_providerpeers, &out->providers,
                         &out->n_providers, out)) != 0) {
        goto fail;
    }
    *why = NULL;
    cp2p_pb__kad_message__free_unpacked(pb, &pa.a);
    return 0;
fail:
    cp2p_pb__kad_message__free_unpacked(pb, &pa.a);
    cp2p__kad_msg_fini(out);
    return rc;
}

/* Encoding borrows every byte from m: the protobuf structs only point into it. */
typedef struct enc_peers {
    Cp2pPb__KadMessage__Peer *peers;
    Cp2pPb__KadMessage__Peer **ptrs;
    ProtobufCBinaryData *addrs;
} enc_peers;

static void enc_peers_fini(enc_peers *e)
{
    cp2p_free(e->peers);
    cp2p_free(e->ptrs);
    cp2p_free(e->addrs);
}

static int enc_peers_init(enc_peers *e, const cp2p__kad_peer *p, size_t n)
{
    size_t total = 0;
    *e = (enc_peers){0};
    if (n == 0) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (p[i].n_addrs > SIZE_MAX / sizeof(ProtobufCBinaryData) - total) {
            return CP2P_ELIMIT;
        }
        total += p[i].n_addrs;
    }
    e->peers = cp2p_calloc(n, sizeof(*e->peers));
    e->ptrs = cp2p_calloc(n, sizeof(*e->ptrs));
    e->addrs = total > 0 ? cp2p_calloc(total, sizeof(*e->addrs)) : NULL;
    if (e->peers == NULL || e->ptrs == NULL || (total > 0 && e->addrs == NULL)) {
        enc_peers_fini(e);
        return CP2P_ENOMEM;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        Cp2pPb__KadMessage__Peer *pp = &e->peers[i];
        cp2p_pb__kad_message__peer__init(pp);
        pp->id = (ProtobufCBinaryData){p[i].id.len, (uint8_t *)p[i].id.bytes};
        pp->connection = (Cp2pPb__KadMessage__ConnectionType)p[i].connection;
        pp->n_addrs = p[i].n_addrs;
        pp->addrs = p[i].n_addrs > 0 ? &e->addrs[k] : NULL;
        for (size_t j = 0; j < p[i].n_addrs; j++) {
            cp2p_slice b = cp2p_multiaddr_bytes(p[i].addrs[j]);
            e->addrs[k++] = (ProtobufCBinaryData){b.len, (uint8_t *)b.ptr};
        }
        e->ptrs[i] = pp;
    }
    return 0;
}

int cp2p__kad_msg_encode(const cp2p__kad_msg *m, cp2p_buf *out)
{
    Cp2pPb__KadMessage pb = CP2P_PB__KAD_MESSAGE__INIT;
    Cp2pPb__KadRecord rec = CP2P_PB__KAD_RECORD__INIT;
    enc_peers closer, providers;
    int rc;
    pb.type = (Cp2pPb__KadMessage__MessageType)m->type;
    pb.key = (ProtobufCBinaryData){m->key_len, m->key};
    if (m->has_record) {
        rec.key = (ProtobufCBinaryData){m->record.key_len, m->record.key};
        rec.value = (ProtobufCBinaryData){m->record.value_len, m->record.value};
        if (m->record.time_received != NULL) {
            rec.timereceived = m->record.time_received;
        }
        pb.record = &rec;
    }
    if ((rc = enc_peers_init(&closer, m->closer, m->n_closer)) != 0) {
        return rc;
    }
    if ((rc = enc_peers_init(&providers, m->providers, m->n_providers)) != 0) {
        enc_peers_fini(&closer);
        return rc;
    }
    pb.n_closerpeers = m->n_closer;
    pb.closerpeers = closer.ptrs;
    pb.n_providerpeers = m->n_providers;
    pb.providerpeers = providers.ptrs;
    size_t n = cp2p_pb__kad_message__get_packed_size(&pb);
    if (n > CP2P_KAD_MAX_MSG) {
        rc = CP2P_ELIMIT;
    } else if ((rc = cp2p_buf_reserve(out, n)) == 0) {
        cp2p_pb__kad_message__pack(&pb, out->ptr + out->len);
        out->len += n;
        out->ptr[out->len] = 0;
    }
    enc_peers_fini(&closer);
    enc_peers_fini(&providers);
    return rc;
}
