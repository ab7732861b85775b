/* Signed peer records: the libp2p signed envelope (libp2p/specs RFC/0002-signed-envelopes.md)
 * carrying a peer record (RFC/0003-routing-records.md), as go-libp2p and js-libp2p
 * (@libp2p/peer-record) write them. Gossipsub PX and identify (signedPeerRecord) carry them.
 *
 * Wire form (proto/peer_record.proto): Envelope { public_key = 1 (a protobuf PublicKey),
 * payload_type = 2, payload = 3, signature = 5 }, payload = PeerRecord { peer_id = 1, seq = 2,
 * repeated AddressInfo { multiaddr = 1 } addresses = 3 }.
 *
 * The signature is made with the envelope's key over
 *     uvarint(len(domain)) || domain || uvarint(len(type)) || type || uvarint(len(payload)) ||
 *     payload
 * with domain "libp2p-peer-record" and type the multicodec libp2p-peer-record 0x0301 as uvarint
 * bytes (0x03 0x01). (RFC 0003 names the domain "libp2p-routing-state"; go-libp2p, js-libp2p and
 * nim-libp2p all use "libp2p-peer-record", which is what interoperates.)
 *
 * Pure functions, no I/O, any thread. */
#ifndef CP2P_CRYPTO_PEER_RECORD_H
#define CP2P_CRYPTO_PEER_RECORD_H

#include <cp2p/buf.h>
#include <cp2p/keys.h>
#include <cp2p/multiaddr.h>
#include <cp2p/peer_id.h>

#include "util/limits.h"

/* The envelope's domain separation string and payload type for peer records. */
#define CP2P_PEER_RECORD_DOMAIN "libp2p-peer-record"

/* An opened record. The addresses belong to the struct (cp2p__peer_record_fini). */
typedef struct cp2p__peer_record {
    cp2p_peer_id peer;  /* the signer, equal to the record's peer_id */
    uint64_t seq;       /* 0 when absent */
    cp2p_multiaddr *addrs[CP2P_PEER_RECORD_MAX_ADDRS];
    size_t n_addrs;
    /* Addresses left out: not a valid multiaddr, empty, or past CP2P_PEER_RECORD_MAX_ADDRS. */
    uint32_t dropped_addrs;
} cp2p__peer_record;

/* Open the envelope `env` (len bytes, borrowed): decode it, check that its payload type is a
 * peer record, verify its signature with its own public key, decode the record and check that
 * the record's peer_id is the ID of that key. Valid addresses are copied into out (in record
 * order, up to CP2P_PEER_RECORD_MAX_ADDRS); invalid ones are dropped and counted. Unknown
 * protobuf fields are ignored (as go and js do): the signature covers the payload bytes.
 * Returns 0 with *out filled (free with cp2p__peer_record_fini), or (out zeroed):
 *   CP2P_ELIMIT   len > CP2P_PEER_RECORD_MAX (checked first);
 *   CP2P_EPROTO   not protobuf, a missing field, a payload type other than 0x0301, a public
 *                 key that does not decode (cp2p_pubkey_unmarshal), a peer_id that is not a
 *                 peer ID;
 *   CP2P_ENOTSUP  an RSA or ECDSA key (this build cannot verify it);
 *   CP2P_EBADSIG  the signature does not verify;
 *   CP2P_EPEERID  the record's peer_id is not the ID of the envelope's key;
 *   CP2P_ENOMEM. */
CP2P_NODISCARD int cp2p__peer_record_open(const uint8_t *env, size_t len, cp2p__peer_record *out);

/* Free the addresses; safe on a zeroed struct and twice. */
void cp2p__peer_record_fini(cp2p__peer_record *r);

/* Append to `out` a signed envelope holding the peer record of k's peer with `n` addresses
 * (borrowed) and sequence number `seq`. The output opens with cp2p__peer_record_open.
 * Returns 0, or CP2P_EINVAL (NULL argument), CP2P_ELIMIT (n > CP2P_PEER_RECORD_MAX_ADDRS, an
 * envelope larger than CP2P_PEER_RECORD_MAX, or out's max), CP2P_ENOMEM; nothing is appended
 * on error. */
CP2P_NODISCARD int cp2p__peer_record_seal(const cp2p_privkey *k,
                                          const cp2p_multiaddr *const *addrs, size_t n,
                                          uint64_t seq, cp2p_buf *out);

/* Append to `out` an envelope with the peer-record domain and payload type that signs the
 * arbitrary `payload` (len bytes) with k: the building block of cp2p__peer_record_seal, and the
 * way tests build records that are signed but wrong inside. Errors as cp2p__peer_record_seal. */
CP2P_NODISCARD int cp2p__peer_record_seal_payload(const cp2p_privkey *k, const uint8_t *payload,
                                                  size_t len, cp2p_buf *out);

#endif
