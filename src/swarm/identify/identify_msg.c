/* Identify message codec. */
#include <string.h>

#include "identify.pb-c.h"
#include "util/utf8.h"
#include "swarm/identify/identify_msg.h"
#include "util/alloc.h"
#include "util/limits.h"
#include "util/pb.h"

static void free_strv(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        cp2p_free(v[i]);
    }
    cp2p_free(v);
}

void cp2p__identify_msg_fini(cp2p__identify_msg *m)
{
    cp2p_free(m->protocol_version);
    cp2p_free(m->agent_version);
    cp2p_free(m->public_key);
    for (size_t i = 0; i < m->n_listen_addrs; i++) {
        cp2p_multiaddr_free(m->listen_addrs[i]);
    }
    cp2p_free(m->listen_addrs);
    cp2p_multiaddr_free(m->observed_addr);
    free_strv(m->protocols, m->n_protocols);
    cp2p_free(m->signed_peer_record);
    *m = (cp2p__identify_msg){0};
}

/* A printable string we keep: valid UTF-8, no control characters, bounded. protobuf-c gives
 * NUL-terminated strings, so an embedded NUL has already cut it; that only shortens it. */
static bool good_string(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > CP2P_IDENTIFY_MAX_STRING || !cp2p__utf8_valid((const uint8_t *)s, n)) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) {
            return false;
        }
    }
    return true;
}

/* Copy an optional string field; a bad one is dropped and counted. */
static int take_string(const char *s, char **out, uint32_t *dropped)
{
    if (s == NULL) {
        return 0;
    }
    if (!good_string(s)) {
        (*dropped)++;
        return 0;
    }
    *out = cp2p__memdup(s, strlen(s) + 1);
    return *out == NULL ? CP2P_ENOMEM : 0;
}

static int take_bytes(bool has, ProtobufCBinaryData d, uint8_t **out, size_t *out_len)
{
    if (!has) {
        return 0;
    }
    *out = cp2p__memdup(d.data, d.len);
    if (*out == NULL) {
        return CP2P_ENOMEM;
    }
    *out_len = d.len;
    return 0;
}

int cp2p__identify_decode(const uint8_t *in, size_t len, cp2p__identify_msg *out,
                          const char **why)
{
    Cp2pPb__Identify *pb;
    int rc = 0;
    *out = (cp2p__identify_msg){0};
    if (len > CP2P_IDENTIFY_MAX_MSG) {
        *why = "identify message larger than 8 KiB";
        return CP2P_ELIMIT;
    }
    /* Checked size first (STYLE.md 6.10); protobuf-c does not recurse on this message. */
    cp2p__pb_alloc pa;
    cp2p__pb_alloc_init(&pa);
    pb = cp2p_pb__identify__unpack(&pa.a, len, in);
    if (pb == NULL) {
        *why = pa.failed ? "out of memory" : "identify message is not valid protobuf";
        return pa.failed ? CP2P_ENOMEM : CP2P_EPROTO;
    }
    if ((rc = take_string(pb->protocolversion, &out->protocol_version, &out->dropped_strings)) ||
        (rc = take_string(pb->agentversion, &out->agent_version, &out->dropped_strings)) ||
        (rc = take_bytes(pb->has_publickey, pb->publickey, &out->public_key,
                         &out->public_key_len)) ||
        (rc = take_bytes(pb->has_signedpeerrecord, pb->signedpeerrecord,
                         &out->signed_peer_record, &out->signed_peer_record_len))) {
        goto fail;
    }
    size_t naddrs = pb->n_listenaddrs < CP2P_IDENTIFY_MAX_ADDRS ? pb->n_listenaddrs
                                                                : CP2P_IDENTIFY_MAX_ADDRS;
    out->dropped_addrs += (uint32_t)(pb->n_listenaddrs - naddrs);
    if (naddrs > 0 && (out->listen_addrs = cp2p_calloc(naddrs, sizeof(void *))) == NULL) {
        rc = CP2P_ENOMEM;
        goto fail;
    }
    for (size_t i = 0; i < naddrs; i++) {
        cp2p_multiaddr *ma;
        int r = cp2p_multiaddr_from_bytes(pb->listenaddrs[i].data, pb->listenaddrs[i].len, &ma);
        if (r == CP2P_ENOMEM) {
            rc = r;
            goto fail;
        }
        if (r != 0) {
            out->dropped_addrs++;
            continue;
        }
        out->listen_addrs[out->n_listen_addrs++] = ma;
    }
    if (pb->has_observedaddr) {
        int r = cp2p_multiaddr_from_bytes(pb->observedaddr.data, pb->observedaddr.len,
                                          &out->observed_addr);
        if (r == CP2P_ENOMEM) {
            rc = r;
            goto fail;
        }
        if (r != 0) {
            out->dropped_addrs++;
        }
    }
    size_t nprotos = pb->n_protocols < CP2P_IDENTIFY_MAX_PROTOCOLS ? pb->n_protocols
                                                                   : CP2P_IDENTIFY_MAX_PROTOCOLS;
    out->dropped_protocols += (uint32_t)(pb->n_protocols - nprotos);
    if (nprotos > 0 && (out->protocols = cp2p_calloc(nprotos, sizeof(char *))) == NULL) {
        rc = CP2P_ENOMEM;
        goto fail;
    }
    for (size_t i = 0; i < nprotos; i++) {
        char *p = NULL;
        if ((rc = take_string(pb->protocols[i], &p, &out->dropped_protocols)) != 0) {
            goto fail;
        }
        if (p != NULL) {
            out->protocols[out->n_protocols++] = p;
        }
    }
    cp2p_pb__identify__free_unpacked(pb, &pa.a);
    return 0;
fail:
    cp2p_pb__identify__free_unpacked(pb, &pa.a);
    cp2p__identify_msg_fini(out);
    *why = "out of memory";
    return rc;
}

int cp2p__identify_encode(const cp2p__identify_msg *m, cp2p_buf *out)
{
    Cp2pPb__Identify pb = CP2P_PB__IDENTIFY__INIT;
    ProtobufCBinaryData *addrs = NULL;
    int rc = 0;
    pb.protocolversion = m->protocol_version;
    pb.agentversion = m->agent_version;
    if (m->public_key != NULL) {
        pb.has_publickey = 1;
        pb.publickey = (ProtobufCBinaryData){m->public_key_len, m->public_key};
    }
    if (m->signed_peer_record != NULL) {
        pb.has_signedpeerrecord = 1;
        pb.signedpeerrecord =
            (ProtobufCBinaryData){m->signed_peer_record_len, m->signed_peer_record};
    }
    if (m->n_listen_addrs > 0) {
        addrs = cp2p_calloc(m->n_listen_addrs, sizeof(*addrs));
        if (addrs == NULL) {
            return CP2P_ENOMEM;
        }
        for (size_t i = 0; i < m->n_listen_addrs; i++) {
            cp2p_slice b = cp2p_multiaddr_bytes(m->listen_addrs[i]);
            addrs[i] = (ProtobufCBinaryData){b.len, (uint8_t *)b.ptr};
        }
        pb.n_listenaddrs = m->n_listen_addrs;
        pb.listenaddrs = addrs;
    }
    if (m->observed_addr != NULL) {
        cp2p_slice b = cp2p_multiaddr_bytes(m->observed_addr);
        pb.has_observedaddr = 1;
        pb.observedaddr = (ProtobufCBinaryData){b.len, (uint8_t *)b.ptr};
    }
    pb.n_protocols = m->n_protocols;
    pb.protocols = m->protocols;
    size_t n = cp2p_pb__identify__get_packed_size(&pb);
    if (n > CP2P_IDENTIFY_MAX_MSG) {
        rc = CP2P_ELIMIT;
    } else if ((rc = cp2p_buf_reserve(out, n)) == 0) {
        cp2p_pb__identify__pack(&pb, out->ptr + out->len);
        out->len += n;
        out->ptr[out->len] = 0;
    }
    cp2p_free(addrs);
    return rc;
}
