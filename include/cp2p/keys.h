/* cp2p: identity keys, signatures and peer-ID derivation (libp2p peer-ids spec,
 * https://github.com/libp2p/specs/blob/master/peer-ids/peer-ids.md).
 *
 * Supported key types: Ed25519 (libsodium) and secp256k1 (libsecp256k1). RSA and ECDSA keys are
 * recognised in encodings (CP2P_ENOTSUP where a key object would be needed), and a peer ID can
 * still be derived from their encoded public key with cp2p_peer_id_from_pubkey_proto().
 *
 * Encodings. A key travels as a protobuf PublicKey / PrivateKey message {Type = 1, Data = 2}.
 * The spec requires a deterministic encoding (fields in tag order, minimal varints, both fields,
 * no others); this module emits exactly that and, when decoding, accepts only that: the decoded
 * message, encoded again, must equal the input byte for byte, or decoding fails with
 * CP2P_EPROTO. The single exception is the legacy 96-byte Ed25519 private key form (see
 * cp2p_privkey_unmarshal), which the spec asks implementations to accept.
 *
 * Data per type:
 *  - Ed25519 public: the 32-byte key. Private: 64 bytes, seed || public key.
 *  - secp256k1 public: the 33-byte compressed SEC1 point. Private: the 32-byte secret scalar.
 *
 * Signatures:
 *  - Ed25519: the 64-byte RFC 8032 signature of the message.
 *  - secp256k1: ECDSA over SHA-256(message), RFC 6979 nonce, DER encoded, low S (BIP 62), as
 *    go-libp2p and js-libp2p produce. Verification accepts only strict, canonical DER with
 *    low S (as js-libp2p does; go-libp2p also accepts high S, which no libp2p signer produces).
 *
 * Objects. cp2p_privkey and cp2p_pubkey are opaque, immutable after creation, allocated with
 * cp2p_malloc and released with their _free function (which accepts NULL). Being immutable,
 * one object may be used from several threads at once. Every function here may be called from
 * any thread. Private key bytes are wiped (sodium_memzero) before their memory is released.
 *
 * Limits: an encoded key longer than CP2P_KEY_PB_MAX (4096 bytes, src/util/limits.h) is refused
 * with CP2P_ELIMIT before it is parsed; the largest real keys (RSA 4096) are well below it.
 *
 * Errors common to all functions: CP2P_ENOMEM when an allocation fails; CP2P_EINVAL for a NULL
 * argument that is not documented as allowed, or a key type outside cp2p_key_type; CP2P_EIO if
 * the crypto libraries could not be initialised (sodium_init failed). Ownership of an output
 * passes to the caller only when the function returns 0; on error nothing is stored.
 */
#ifndef CP2P_KEYS_H
#define CP2P_KEYS_H

#include <stdbool.h>

#include <cp2p/buf.h>
#include <cp2p/common.h>
#include <cp2p/peer_id.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The KeyType values of the spec's protobuf enum. */
typedef enum cp2p_key_type {
    CP2P_KEY_RSA = 0,
    CP2P_KEY_ED25519 = 1,
    CP2P_KEY_SECP256K1 = 2,
    CP2P_KEY_ECDSA = 3,
} cp2p_key_type;

/* Sizes, for callers that want fixed buffers. */
#define CP2P_ED25519_PUBKEY_LEN 32
#define CP2P_ED25519_SIG_LEN 64
#define CP2P_SECP256K1_PUBKEY_LEN 33 /* compressed */
#define CP2P_SECP256K1_SIG_MAX 72    /* DER, r and s of 33 bytes each */
/* The largest signature cp2p_privkey_sign() produces for any supported type. */
#define CP2P_SIG_MAX 72
/* The largest cp2p_pubkey_marshal() / cp2p_privkey_marshal() output for supported types
 * (tag + type + tag + length + 64 bytes of Ed25519 private key). */
#define CP2P_KEY_MARSHAL_MAX 68

typedef struct cp2p_privkey cp2p_privkey;
typedef struct cp2p_pubkey cp2p_pubkey;

/* ---- private keys ---- */

/* Generate a new key pair of `type` from libsodium's CSPRNG (randombytes_buf).
 * On success *out is a new key, free it with cp2p_privkey_free().
 * Errors: CP2P_ENOTSUP for CP2P_KEY_RSA and CP2P_KEY_ECDSA; the common errors. Any thread. */
CP2P_API CP2P_NODISCARD int cp2p_privkey_generate(cp2p_key_type type, cp2p_privkey **out);

/* Build a key pair deterministically from 32 bytes of secret `seed` (copied; the caller still
 * owns and should wipe it).
 *  - Ed25519: `seed` is the RFC 8032 private key (seed), the same as js-libp2p's
 *    generateKeyPairFromSeed('Ed25519', seed) and go's ed25519.NewKeyFromSeed.
 *  - secp256k1: `seed` is the big-endian secret scalar itself, as js-libp2p's privateKeyFromRaw
 *    takes it; it must be in [1, n-1] (n the group order).
 * Errors: CP2P_EINVAL for a secp256k1 seed that is 0 or >= n; CP2P_ENOTSUP for RSA and ECDSA;
 * the common errors. Any thread. */
CP2P_API CP2P_NODISCARD int cp2p_privkey_from_seed(cp2p_key_type type, const uint8_t seed[32],
                                                   cp2p_privkey **out);

/* Wipe and free a private key, including its public key. NULL is allowed. Any thread. */
CP2P_API void cp2p_privkey_free(cp2p_privkey *priv);

/* The key's type. `priv` must not be NULL. Any thread. */
CP2P_API cp2p_key_type cp2p_privkey_type(const cp2p_privkey *priv);

/* The matching public key. Borrowed: it is owned by `priv` and valid until cp2p_privkey_free(priv);
 * use cp2p_pubkey_dup() to keep it longer. `priv` must not be NULL. Never NULL. Any thread. */
CP2P_API const cp2p_pubkey *cp2p_privkey_public(const cp2p_privkey *priv);

/* Sign `len` bytes at `msg` (NULL allowed when len is 0) and append the signature to `sig`
 * (see the top of this file for the format per type; at most CP2P_SIG_MAX bytes).
 * Both schemes are deterministic: the same key and message give the same signature.
 * Errors: CP2P_ELIMIT or CP2P_ENOMEM from the buffer (nothing appended); CP2P_EINVAL.
 * Any thread. */
CP2P_API CP2P_NODISCARD int cp2p_privkey_sign(const cp2p_privkey *priv, const uint8_t *msg,
                                              size_t len, cp2p_buf *sig);

/* Append the protobuf PrivateKey encoding of `priv` to `out` (Ed25519: Data is the 64-byte
 * seed || public key; secp256k1: the 32-byte scalar). The output is secret: release it with
 * cp2p_buf_fini_wipe(). Errors: buffer errors (nothing appended); CP2P_EINVAL. Any thread. */
CP2P_API CP2P_NODISCARD int cp2p_privkey_marshal(const cp2p_privkey *priv, cp2p_buf *out);

/* Decode a protobuf PrivateKey (`in` is borrowed for the call; wipe it afterwards if it is
 * yours). Accepted Data:
 *  - Ed25519: 64 bytes seed || public key, where the public key must be the one the seed
 *    derives (go and js do not check this; a mismatched pair would sign with the wrong public
 *    key); or the legacy 96-byte form seed || public key || public key, accepted when both
 *    copies equal the derived key (the spec's "older versions" form; marshal writes 64 bytes).
 *  - secp256k1: 32 bytes, a scalar in [1, n-1] (go reduces any 32 bytes modulo n; we refuse).
 * Errors: CP2P_ELIMIT if len > CP2P_KEY_PB_MAX (src/util/limits.h; checked before parsing);
 * CP2P_EPROTO for a malformed or non-canonical message, an unknown key type, a wrong Data
 * length or an invalid key; CP2P_ENOTSUP for a well-formed RSA or ECDSA key; common errors.
 * Any thread. */
CP2P_API CP2P_NODISCARD int cp2p_privkey_unmarshal(const uint8_t *in, size_t len,
                                                   cp2p_privkey **out);

/* Write `priv` to `path` as its protobuf PrivateKey encoding, atomically: the bytes go to a new
 * temporary file in the same directory, created with mode 0600 and O_EXCL (mkstemp), which is
 * fsync'ed and then renamed over `path`; the directory is then fsync'ed. Either the old file or
 * the complete new one exists afterwards. An existing file at `path` is replaced.
 * Errors: CP2P_EIO when a system call fails (the temporary file is removed; errno is logged);
 * CP2P_EINVAL for an empty path; common errors. Any thread. */
CP2P_API CP2P_NODISCARD int cp2p_privkey_save(const cp2p_privkey *priv, const char *path);

/* Read a key written by cp2p_privkey_save() (or go/js-libp2p: the same protobuf).
 * Errors:
 *  - CP2P_ENOENT if `path` does not exist;
 *  - CP2P_EPERM if the file grants any permission to group or others (mode & 077): nothing is
 *    read, and one WARN line names the file and the fix ("chmod 600"). Key files must be
 *    private, as ssh insists for its keys;
 *  - CP2P_EINVAL if `path` is not a regular file;
 *  - CP2P_ELIMIT if the file is larger than CP2P_KEY_FILE_MAX (checked before reading);
 *  - CP2P_EPROTO / CP2P_ENOTSUP as cp2p_privkey_unmarshal();
 *  - CP2P_EIO for other system-call failures (e.g. permission denied to us); common errors.
 * Any thread. */
CP2P_API CP2P_NODISCARD int cp2p_privkey_load(const char *path, cp2p_privkey **out);

/* ---- public keys ---- */

/* Decode a protobuf PublicKey (`in` borrowed). Accepted Data:
 *  - Ed25519: exactly 32 bytes. Like go and js, any 32 bytes are accepted (a peer ID can be
 *    derived from any key a peer presents); a key that is not a valid, canonical point of
 *    large order simply never verifies a signature (libsodium rejects it at verify time).
 *  - secp256k1: exactly 33 bytes, a compressed point on the curve. The 65-byte uncompressed
 *    form, which go and js also accept, is refused here because its re-encoding would differ
 *    from the input (no libp2p implementation emits it); cp2p_pubkey_from_raw() takes it.
 * Errors: CP2P_ELIMIT if len > CP2P_KEY_PB_MAX; CP2P_EPROTO for a malformed or non-canonical
 * message, unknown key type, wrong length or invalid point; CP2P_ENOTSUP for a well-formed RSA
 * or ECDSA key; common errors. Any thread. */
CP2P_API CP2P_NODISCARD int cp2p_pubkey_unmarshal(const uint8_t *in, size_t len,
                                                  cp2p_pubkey **out);

/* Build a public key from its raw bytes (the Data field): Ed25519 32 bytes; secp256k1 33 bytes
 * compressed or 65 bytes uncompressed (0x04 prefix; stored, marshaled and returned by
 * cp2p_pubkey_raw() in compressed form). The SEC1 "hybrid" form (0x06/0x07) is refused.
 * Errors: CP2P_EINVAL for a wrong length or invalid point (these are the caller's bytes);
 * CP2P_ENOTSUP for RSA and ECDSA; common errors. Any thread. */
CP2P_API CP2P_NODISCARD int cp2p_pubkey_from_raw(cp2p_key_type type, const uint8_t *raw,
                                                 size_t len, cp2p_pubkey **out);

/* Append the protobuf PublicKey encoding (at most CP2P_KEY_MARSHAL_MAX bytes) to `out`.
 * Errors: buffer errors (nothing appended); CP2P_EINVAL. Any thread. */
CP2P_API CP2P_NODISCARD int cp2p_pubkey_marshal(const cp2p_pubkey *pub, cp2p_buf *out);

/* The raw key bytes (the Data field). The slice points into `pub` and is valid while `pub`
 * lives. `pub` must not be NULL. Any thread. */
CP2P_API cp2p_slice cp2p_pubkey_raw(const cp2p_pubkey *pub);

/* The key's type. `pub` must not be NULL. Any thread. */
CP2P_API cp2p_key_type cp2p_pubkey_type(const cp2p_pubkey *pub);

/* Check that `sig` (siglen bytes, from the network) signs `msg` (len bytes; NULL allowed when
 * the length is 0) under `pub`. Returns 0 when it does, CP2P_EBADSIG otherwise: also for a
 * signature of the wrong length, non-canonical or non-strict DER (secp256k1), r or s out of
 * range, or high S (see the top of this file). CP2P_EINVAL for a NULL `pub`. Any thread. */
CP2P_API CP2P_NODISCARD int cp2p_pubkey_verify(const cp2p_pubkey *pub, const uint8_t *msg,
                                               size_t len, const uint8_t *sig, size_t siglen);

/* True when both keys have the same type and the same raw bytes. NULL equals only NULL.
 * Any thread. */
CP2P_API bool cp2p_pubkey_equal(const cp2p_pubkey *a, const cp2p_pubkey *b);

/* Copy a public key into a new object (free it with cp2p_pubkey_free()).
 * Errors: the common errors. Any thread. */
CP2P_API CP2P_NODISCARD int cp2p_pubkey_dup(const cp2p_pubkey *pub, cp2p_pubkey **out);

/* Free a public key. NULL is allowed. Never pass the key borrowed from cp2p_privkey_public().
 * Any thread. */
CP2P_API void cp2p_pubkey_free(cp2p_pubkey *pub);

/* ---- peer IDs (spec section "Peer Ids") ---- */

/* The peer ID of `pub`: the identity multihash of its protobuf encoding when that is at most 42
 * bytes (always, for Ed25519 and secp256k1), else its sha2-256 multihash.
 * Errors: CP2P_EINVAL. Any thread. */
CP2P_API CP2P_NODISCARD int cp2p_peer_id_from_pubkey(const cp2p_pubkey *pub, cp2p_peer_id *out);

/* The peer ID of an encoded PublicKey (borrowed), for key types this build cannot use too
 * (RSA, ECDSA). The message must be canonical (as cp2p_pubkey_unmarshal) with a known key type;
 * Ed25519 and secp256k1 keys are validated fully, RSA and ECDSA Data is not looked into.
 * Errors: CP2P_ELIMIT if len > CP2P_KEY_PB_MAX; CP2P_EPROTO as cp2p_pubkey_unmarshal();
 * common errors. Any thread. */
CP2P_API CP2P_NODISCARD int cp2p_peer_id_from_pubkey_proto(const uint8_t *encoded, size_t len,
                                                           cp2p_peer_id *out);

/* The public key inlined in an identity-multihash peer ID (Ed25519 and secp256k1 peer IDs).
 * On success *out is a new key, free it with cp2p_pubkey_free().
 * Errors: CP2P_ENOENT when the ID is a sha2-256 multihash (the key is not inside: obtain it
 * from the peer, e.g. in the Noise handshake or identify); CP2P_ENOTSUP when the inlined key is
 * RSA or ECDSA; CP2P_EPROTO when the ID is not a valid peer ID or the inlined key is invalid;
 * common errors. Any thread. */
CP2P_API CP2P_NODISCARD int cp2p_pubkey_from_peer_id(const cp2p_peer_id *id, cp2p_pubkey **out);

#ifdef __cplusplus
}
#endif
#endif
