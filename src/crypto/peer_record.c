/* Signed peer records (RFC 0002 signed envelopes carrying RFC 0003 peer records). See
 * src/crypto/peer_record.h for the format and the contract. */
#include <string.h>

#include <cp2p/codec.h>

#include "crypto/peer_record.h"
#include "peer_record.pb-c.h"
#include "util/alloc.h"
#include "util/pb.h"

/* Multicodec "libp2p-peer-record" (0x0301) as uvarint bytes: the envelope's payload type. */
static const uint8_t PAYLOAD_TYPE[2] = {0x03, 0x01};

/* Room for the three uvarint length prefixes of the signed bytes. */
#define SIGN_PREFIXES (3 * CP2P_UVARINT_MAX)

void cp2p__peer_record_fini(cp2p__peer_record *r)
{
    for (size_t i = 0; i < r->n_addrs; i++) {
        cp2p_multiaddr_free(r->addrs[i]);
    }
    *r = (cp2p__peer_record){0};
}

/* Append the bytes the signature covers: each of domain, payload type and payload preceded by
 * its length as a uvarint (RFC 0002, "Signature Production"). */
static int signed_bytes(const uint8_t *payload, size_t len, cp2p_buf *out)
{
    static const char domain[] = CP2P_PEER_RECORD_DOMAIN;
    int rc;
    if ((rc = cp2p_uvarint_append(out, sizeof(domain) - 1)) != 0 ||
        (rc = cp2p_buf_append(out, domain, sizeof(domain) - 1)) != 0 ||
        (rc = cp2p_uvarint_append(out, sizeof(PAYLOAD_TYPE))) != 0 ||
        (rc = cp2p_buf_append(out, PAYLOAD_TYPE, sizeof(PAYLOAD_TYPE))) != 0 ||
        (rc = cp2p_uvarint_append(out, len)) != 0) {
        return rc;
    }
    return len == 0 ? 0 : cp2p_buf_append(out, payload, len);
}

/* Check the signature of `payload` under the envelope's key. */
static int verify(const cp2p_pubkey *pub, const ProtobufCBinaryData *payload,
                  const ProtobufCBinaryData *sig)
{
    cp2p_buf sb;
    cp2p_buf_init(&sb, sizeof(CP2P_PEER_RECORD_DOMAIN) + SIGN_PREFIXES + sizeof(PAYLOAD_TYPE) +
                           CP2P_PEER_RECORD_MAX);
    int rc = signed_bytes(payload->data, payload->len, &sb);
    if (rc == 0) {
        rc = cp2p_pubkey_verify(pub, sb.ptr, sb.len, sig->data, sig->len);
    }
    cp2p_buf_fini(&sb);
    return rc;
}

/* Decode the record in `payload` (already authenticated) into out. */
static int take_record(const ProtobufCBinaryData *payload, const cp2p_peer_id *signer,
                       cp2p__peer_record *out)
{
    cp2p__pb_alloc pa;
    cp2p__pb_alloc_init(&pa);
    Cp2pPb__PeerRecord *pr = cp2p_pb__peer_record__unpack(&pa.a, payload->len, payload->data);
    if (pr == NULL) {
        return pa.failed ? CP2P_ENOMEM : CP2P_EPROTO;
    }
    int rc = 0;
    cp2p_peer_id id;
    if (!pr->has_peer_id || cp2p_peer_id_from_bytes(pr->peer_id.data, pr->peer_id.len, &id) != 0) {
        rc = CP2P_EPROTO;
        goto done;
    }
    if (!cp2p_peer_id_equal(&id, signer)) {
        rc = CP2P_EPEERID;
        goto done;
    }
    out->peer = id;
    out->seq = pr->has_seq ? pr->seq : 0;
    for (size_t i = 0; i < pr->n_addresses; i++) {
        const Cp2pPb__PeerRecord__AddressInfo *ai = pr->addresses[i];
        cp2p_multiaddr *ma;
        if (out->n_addrs == CP2P_PEER_RECORD_MAX_ADDRS || !ai->has_multiaddr ||
            ai->multiaddr.len == 0) {
            out->dropped_addrs++;
            continue;
        }
        int r = cp2p_multiaddr_from_bytes(ai->multiaddr.data, ai->multiaddr.len, &ma);
        if (r == CP2P_ENOMEM) {
            rc = r;
            goto done;
        }
        if (r != 0) {
            out->dropped_addrs++;
            continue;
        }
        out->addrs[out->n_addrs++] = ma;
    }
done:
    cp2p_pb__peer_record__free_unpacked(pr, &pa.a);
    return rc;
}

int cp2p__peer_record_open(const uint8_t *env, size_t len, cp2p__peer_record *out)
{
    *out = (cp2p__peer_record){0};
    if (len > CP2P_PEER_RECORD_MAX) {
        return CP2P_ELIMIT;
    }
    if (env == NULL && len > 0) {
        return CP2P_EINVAL;
    }
    /* Size checked first (STYLE.md 6.10); protobuf-c does not recurse on these messages. */
    cp2p__pb_alloc pa;
    cp2p__pb_alloc_init(&pa);
    Cp2pPb__Envelope *e = cp2p_pb__envelope__unpack(&pa.a, len, env);
    if (e == NULL) {
        return pa.failed ? CP2P_ENOMEM : CP2P_EPROTO;
    }
    int rc;
    cp2p_pubkey *pub = NULL;
    cp2p_peer_id signer;
    if (!e->has_public_key || !e->has_payload_type || !e->has_signature ||
        e->payload_type.len != sizeof(PAYLOAD_TYPE) ||
        memcmp(e->payload_type.data, PAYLOAD_TYPE, sizeof(PAYLOAD_TYPE)) != 0) {
        rc = CP2P_EPROTO;
        goto done;
    }
    rc = cp2p_pubkey_unmarshal(e->public_key.data, e->public_key.len, &pub);
    if (rc == CP2P_ELIMIT) {
        rc = CP2P_EPROTO; /* cannot happen: the key is inside a smaller envelope */
    }
    if (rc != 0) {
        goto done;
    }
    /* A record whose payload is empty (proto3 omits it) is still signed, then fails to carry a
     * peer_id below. */
    ProtobufCBinaryData payload = e->has_payload ? e->payload : (ProtobufCBinaryData){0, NULL};
    if ((rc = verify(pub, &payload, &e->signature)) != 0 ||
        (rc = cp2p_peer_id_from_pubkey(pub, &signer)) != 0) {
        goto done;
    }
    rc = take_record(&payload, &signer, out);
done:
    cp2p_pubkey_free(pub);
    cp2p_pb__envelope__free_unpacked(e, &pa.a);
    if (rc != 0) {
        cp2p__peer_record_fini(out);
    }
    return rc;
}

int cp2p__peer_record_seal_payload(const cp2p_privkey *k, const uint8_t *payload, size_t len,
                                   cp2p_buf *out)
{
    if (k == NULL || out == NULL || (payload == NULL && len > 0)) {
        return CP2P_EINVAL;
    }
    if (len > CP2P_PEER_RECORD_MAX) {
        return CP2P_ELIMIT;
    }
    cp2p_buf key, sb, sig;
    cp2p_buf_init(&key, CP2P_KEY_MARSHAL_MAX);
    cp2p_buf_init(&sb, sizeof(CP2P_PEER_RECORD_DOMAIN) + SIGN_PREFIXES + sizeof(PAYLOAD_TYPE) +
                           CP2P_PEER_RECORD_MAX);
    cp2p_buf_init(&sig, CP2P_SIG_MAX);
    int rc;
    if ((rc = cp2p_pubkey_marshal(cp2p_privkey_public(k), &key)) != 0 ||
        (rc = signed_bytes(payload, len, &sb)) != 0 ||
        (rc = cp2p_privkey_sign(k, sb.ptr, sb.len, &sig)) != 0) {
        goto done;
    }
    Cp2pPb__Envelope e = CP2P_PB__ENVELOPE__INIT;
    e.has_public_key = 1;
    e.public_key = (ProtobufCBinaryData){key.len, key.ptr};
    e.has_payload_type = 1;
    e.payload_type = (ProtobufCBinaryData){sizeof(PAYLOAD_TYPE), (uint8_t *)PAYLOAD_TYPE};
    e.has_payload = len > 0;
    e.payload = (ProtobufCBinaryData){len, (uint8_t *)payload};
    e.has_signature = 1;
    e.signature = (ProtobufCBinaryData){sig.len, sig.ptr};
    size_t n = cp2p_pb__envelope__get_packed_size(&e);
    if (n > CP2P_PEER_RECORD_MAX) {
        rc = CP2P_ELIMIT;
    } else if ((rc = cp2p_buf_reserve(out, n)) == 0) {
        cp2p_pb__envelope__pack(&e, out->ptr + out->len);
        out->len += n;
    }
done:
    cp2p_buf_fini(&key);
    cp2p_buf_fini(&sb);
    cp2p_buf_fini(&sig);
    return rc;
}

int cp2p__peer_record_seal(const cp2p_privkey *k, const cp2p_multiaddr *const *addrs, size_t n,
                           uint64_t seq, cp2p_buf *out)
{
    if (k == NULL || out == NULL || (addrs == NULL && n > 0)) {
        return CP2P_EINVAL;
    }
    if (n > CP2P_PEER_RECORD_MAX_ADDRS) {
        return CP2P_ELIMIT;
    }
    cp2p_peer_id id;
    int rc = cp2p_peer_id_from_pubkey(cp2p_privkey_public(k), &id);
    if (rc != 0) {
        return rc;
    }
    Cp2pPb__PeerRecord__AddressInfo infos[CP2P_PEER_RECORD_MAX_ADDRS];
    Cp2pPb__PeerRecord__AddressInfo *ptrs[CP2P_PEER_RECORD_MAX_ADDRS];
    for (size_t i = 0; i < n; i++) {
        if (addrs[i] == NULL) {
            return CP2P_EINVAL;
        }
        cp2p_slice b = cp2p_multiaddr_bytes(addrs[i]);
        infos[i] = (Cp2pPb__PeerRecord__AddressInfo)CP2P_PB__PEER_RECORD__ADDRESS_INFO__INIT;
        infos[i].has_multiaddr = 1;
        infos[i].multiaddr = (ProtobufCBinaryData){b.len, (uint8_t *)b.ptr};
        ptrs[i] = &infos[i];
    }
    Cp2pPb__PeerRecord pr = CP2P_PB__PEER_RECORD__INIT;
    pr.has_peer_id = 1;
    pr.peer_id = (ProtobufCBinaryData){id.len, id.bytes};
    /* proto3 (go, js) leaves out a zero seq; so do we, for byte-identical records. */
    pr.has_seq = seq != 0;
    pr.seq = seq;
    pr.n_addresses = n;
    pr.addresses = n > 0 ? ptrs : NULL;
    size_t plen = cp2p_pb__peer_record__get_packed_size(&pr);
    if (plen > CP2P_PEER_RECORD_MAX) {
        return CP2P_ELIMIT;
    }
    uint8_t *payload = cp2p_malloc(plen);
    if (payload == NULL) {
        return CP2P_ENOMEM;
    }
    cp2p_pb__peer_record__pack(&pr, payload);
    rc = cp2p__peer_record_seal_payload(k, payload, plen, out);
    cp2p_free(payload);
    return rc;
}
