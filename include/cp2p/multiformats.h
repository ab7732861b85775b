/* cp2p: multihash, multibase and CID (multiformats/multihash, multiformats/multibase,
 * multiformats/cid). Pure functions over values and caller-owned buffers; any thread.
 *
 * Every function that appends to a cp2p_buf leaves the buffer exactly as it was when it fails
 * (nothing appended), and keeps a NUL after any text it appends so out->ptr is a C string. */
#ifndef CP2P_MULTIFORMATS_H
#define CP2P_MULTIFORMATS_H

#include <stdbool.h>
#include <cp2p/codec.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- multihash ------------------------------------------------------------------------- */

/* Hash function codes (multiformats/multicodec table). */
#define CP2P_MULTIHASH_IDENTITY UINT64_C(0x00)
#define CP2P_MULTIHASH_SHA2_256 UINT64_C(0x12)
/* Largest digest accepted by the decoder. Our choice: 64 bytes covers every hash in use
 * (sha2-512, blake2b-512); the identity "digest" of a libp2p peer ID is at most 42 bytes. */
#define CP2P_MULTIHASH_MAX_DIGEST 64
/* Largest encoded multihash: a code varint (up to 9 bytes), a one-byte length (<= 64 < 128)
 * and the digest. */
#define CP2P_MULTIHASH_MAX (CP2P_UVARINT_MAX + 1 + CP2P_MULTIHASH_MAX_DIGEST)

/* Decode one multihash (code varint, length varint, digest) from the front of in[0..len).
 * Any code is accepted; only the digest length is bounded. On success *code and *digest are
 * set (digest borrows from `in`). Returns the bytes consumed (> 0), 0 if `in` ends before the
 * multihash does (need more input), or CP2P_EPROTO (non-minimal or over-long varint, digest
 * longer than CP2P_MULTIHASH_MAX_DIGEST). To accept a standalone multihash, also check that
 * the result equals len, or use cp2p_multihash_validate(). */
CP2P_API CP2P_NODISCARD ptrdiff_t cp2p_multihash_decode(const uint8_t *in, size_t len,
                                                       uint64_t *code, cp2p_slice *digest);
/* Returns 0 if in[0..len) is exactly one multihash as cp2p_multihash_decode() accepts it,
 * else CP2P_EPROTO (also for empty or truncated input, or trailing bytes). */
CP2P_API CP2P_NODISCARD int cp2p_multihash_validate(const uint8_t *in, size_t len);
/* Append the multihash <code, digest> to out. Returns 0, CP2P_EINVAL (len is over
 * CP2P_MULTIHASH_MAX_DIGEST or code over CP2P_UVARINT_MAX_VALUE), or CP2P_ELIMIT/CP2P_ENOMEM
 * from the buffer. */
CP2P_API CP2P_NODISCARD int cp2p_multihash_encode(cp2p_buf *out, uint64_t code,
                                                 const uint8_t *digest, size_t len);
/* Append the sha2-256 multihash of data[0..len) (34 bytes) to out, hashing with libsodium.
 * Returns 0 or CP2P_ELIMIT/CP2P_ENOMEM from the buffer. */
CP2P_API CP2P_NODISCARD int cp2p_multihash_sha256(cp2p_buf *out, const uint8_t *data,
                                                 size_t len);

/* ---- multibase ------------------------------------------------------------------------- */

/* Supported multibase prefixes (multiformats/multibase multibase.csv). */
#define CP2P_MULTIBASE_BASE16 'f'    /* hex, lower case on output (either case accepted) */
#define CP2P_MULTIBASE_BASE32 'b'    /* RFC 4648 lower case, no padding */
#define CP2P_MULTIBASE_BASE36 'k'    /* base36 lower case (IPNS keys) */
#define CP2P_MULTIBASE_BASE58BTC 'z' /* Bitcoin alphabet */
#define CP2P_MULTIBASE_BASE64URL 'u' /* RFC 4648 section 5, no padding */

/* Append the prefix character `base` followed by the encoding of in[0..len). Returns 0,
 * CP2P_ENOTSUP for a base not listed above, CP2P_ELIMIT (the buffer's max, or over 256 input
 * bytes for the quadratic bases 'z' and 'k'), or CP2P_ENOMEM. */
CP2P_API CP2P_NODISCARD int cp2p_multibase_encode(cp2p_buf *out, char base, const uint8_t *in,
                                                 size_t len);
/* Decode the multibase text s[0..len) (prefix included) and append the bytes to out.
 * Returns 0, CP2P_EINVAL (empty text, or a character, length or trailing bits the base does
 * not allow), CP2P_ENOTSUP (a prefix that is not one of the supported bases), CP2P_ELIMIT
 * (the buffer's max, or text too long for a quadratic base), or CP2P_ENOMEM. */
CP2P_API CP2P_NODISCARD int cp2p_multibase_decode(cp2p_buf *out, const char *s, size_t len);

/* ---- CID ------------------------------------------------------------------------------- */

/* Content codecs (multiformats/multicodec table). */
#define CP2P_CODEC_RAW UINT64_C(0x55)
#define CP2P_CODEC_DAG_PB UINT64_C(0x70)
#define CP2P_CODEC_LIBP2P_KEY UINT64_C(0x72)

/* Room for the multihash of any CID we accept. */
#define CP2P_CID_MH_MAX CP2P_MULTIHASH_MAX
/* Longest CID text accepted by cp2p_cid_parse() and room for any text the encoders here
 * produce, plus the NUL. Our choice: the longest binary CID is 1 + 9 + 74 = 84 bytes, whose
 * longest encoding (hex) is 169 characters. */
#define CP2P_CID_STR_MAX 256

/* A CID as a value. version is 0 or 1; a CIDv0 always has codec dag-pb and a sha2-256
 * multihash. mh[0..mh_len) is a multihash as cp2p_multihash_validate() accepts it. */
typedef struct cp2p_cid {
    uint64_t version;
    uint64_t codec;
    uint8_t mh[CP2P_CID_MH_MAX];
    size_t mh_len;
} cp2p_cid;

/* Build a CID from its parts (copying mh). Returns 0, or CP2P_EINVAL if the parts do not form
 * a valid CID (version other than 0 or 1, a CIDv0 that is not dag-pb + sha2-256, codec over
 * CP2P_UVARINT_MAX_VALUE, or mh not exactly one valid multihash). */
CP2P_API CP2P_NODISCARD int cp2p_cid_init(cp2p_cid *out, uint64_t version, uint64_t codec,
                                         const uint8_t *mh, size_t mh_len);
/* Decode one binary CID from the front of in[0..len) (multiformats/cid "decoding
 * algorithm"): a CIDv0 is a bare sha2-256 multihash (0x12 0x20 + 32 bytes); a CIDv1 is
 * version varint 1, codec varint, multihash. Returns the bytes consumed, 0 if more input is
 * needed, or CP2P_EPROTO (reserved or unknown version, malformed varint or multihash).
 * *out is written only on success. */
CP2P_API CP2P_NODISCARD ptrdiff_t cp2p_cid_decode(const uint8_t *in, size_t len,
                                                 cp2p_cid *out);
/* Like cp2p_cid_decode() but in[0..len) must be exactly one CID. Returns 0 or CP2P_EPROTO. */
CP2P_API CP2P_NODISCARD int cp2p_cid_from_bytes(const uint8_t *in, size_t len, cp2p_cid *out);
/* Append the binary form. Returns 0, CP2P_EINVAL if *cid is not valid (see cp2p_cid_init),
 * or buffer errors. */
CP2P_API CP2P_NODISCARD int cp2p_cid_encode(const cp2p_cid *cid, cp2p_buf *out);
/* Parse CID text: a 46-character "Qm..." base58btc string is a CIDv0; anything else must be
 * a multibase string (see cp2p_multibase_decode) holding a CIDv1 (a decoded first byte 0x12,
 * a multibase-encoded CIDv0, is refused as the spec requires). Returns 0, CP2P_EINVAL
 * (malformed, or longer than CP2P_CID_STR_MAX - 1), CP2P_ENOTSUP (unsupported multibase
 * prefix) or CP2P_ENOMEM. */
CP2P_API CP2P_NODISCARD int cp2p_cid_parse(const char *s, size_t len, cp2p_cid *out);
/* Append the canonical text: base58btc without prefix for a CIDv0, base32 ('b') for a CIDv1.
 * Returns 0, CP2P_EINVAL if *cid is not valid, or buffer errors. */
CP2P_API CP2P_NODISCARD int cp2p_cid_to_string(const cp2p_cid *cid, cp2p_buf *out);
/* Append a CIDv1 in the multibase `base`. Returns 0, CP2P_EINVAL (invalid *cid, or a CIDv0,
 * which has no multibase form), CP2P_ENOTSUP (unsupported base), or buffer errors. */
CP2P_API CP2P_NODISCARD int cp2p_cid_to_string_base(const cp2p_cid *cid, char base,
                                                   cp2p_buf *out);
/* True when both CIDs have the same version, codec and multihash. */
CP2P_API bool cp2p_cid_equal(const cp2p_cid *a, const cp2p_cid *b);

#ifdef __cplusplus
}
#endif
#endif
