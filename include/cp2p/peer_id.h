/* cp2p: peer IDs (libp2p peer-ids spec). A peer ID is the multihash of a protobuf-encoded
 * PublicKey: identity multihash when the encoding is at most 42 bytes, else sha2-256.
 * Values, no allocation; any thread. */
#ifndef CP2P_PEER_ID_H
#define CP2P_PEER_ID_H

#include <stdbool.h>
#include <cp2p/buf.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Largest peer ID multihash accepted: identity code + length + 42 bytes of key = 44. */
#define CP2P_PEER_ID_MAX 48
/* Room for any peer ID's text (base58btc or CIDv1 base32) plus the NUL. */
#define CP2P_PEER_ID_STR_MAX 96

typedef struct cp2p_peer_id {
    uint8_t bytes[CP2P_PEER_ID_MAX]; /* the multihash */
    size_t len;
} cp2p_peer_id;

/* Validate a binary peer ID (a multihash: identity with a digest of at most 42 bytes, or
 * sha2-256 with a 32-byte digest) and copy it. Returns 0 or CP2P_EPROTO (with nothing stored).*/
CP2P_API CP2P_NODISCARD int cp2p_peer_id_from_bytes(const uint8_t *in, size_t len,
                                                    cp2p_peer_id *out);
/* Parse the text form: base58btc ("12D3KooW...", "Qm...", "16Uiu2...") or a CIDv1 with the
 * libp2p-key codec (0x72) in any supported multibase ("bafz..."). Returns 0, CP2P_EINVAL
 * (with nothing stored), or CP2P_ENOMEM (a small scratch buffer could not be allocated). */
CP2P_API CP2P_NODISCARD int cp2p_peer_id_parse(const char *in, size_t len, cp2p_peer_id *out);
/* Text forms. Append to out (NUL kept after the text). Returns 0, CP2P_EINVAL if *id is not a
 * valid peer ID, or buf errors (out unchanged on any error). */
CP2P_API CP2P_NODISCARD int cp2p_peer_id_to_base58(const cp2p_peer_id *id, cp2p_buf *out);
CP2P_API CP2P_NODISCARD int cp2p_peer_id_to_cid(const cp2p_peer_id *id, cp2p_buf *out);
/* Base58btc text into a caller array; returns the string (never NULL: "<invalid>" if the id
 * is not valid). For logs and printing. */
CP2P_API const char *cp2p_peer_id_str(const cp2p_peer_id *id, char out[CP2P_PEER_ID_STR_MAX]);
CP2P_API bool cp2p_peer_id_equal(const cp2p_peer_id *a, const cp2p_peer_id *b);
/* The protobuf-encoded public key when the ID inlines it (identity multihash). Returns 0 and a
 * slice into `id`, or CP2P_ENOENT for a sha2-256 peer ID. */
CP2P_API CP2P_NODISCARD int cp2p_peer_id_inline_key(const cp2p_peer_id *id, cp2p_slice *out);

#ifdef __cplusplus
}
#endif
#endif
