/* cp2p: unsigned varints and base-N text encodings. Pure functions; any thread. */
#ifndef CP2P_CODEC_H
#define CP2P_CODEC_H

#include <cp2p/buf.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Unsigned varint per the multiformats spec: at most 9 bytes (63 bits), minimal encoding. */
#define CP2P_UVARINT_MAX 9
#define CP2P_UVARINT_MAX_VALUE UINT64_C(0x7fffffffffffffff)

/* Decode from in[0..len). Returns bytes used (1..9), 0 if more input is needed, or CP2P_EPROTO
 * (non-minimal encoding, or more than 9 bytes / 63 bits). */
CP2P_API CP2P_NODISCARD ptrdiff_t cp2p_uvarint_decode(const uint8_t *in, size_t len,
                                                     uint64_t *out);
/* Encode v (which must be <= CP2P_UVARINT_MAX_VALUE) into out[CP2P_UVARINT_MAX]. Returns the
 * length (1..9), or 0 if v is too large. */
CP2P_API size_t cp2p_uvarint_encode(uint8_t out[CP2P_UVARINT_MAX], uint64_t v);
CP2P_API size_t cp2p_uvarint_len(uint64_t v);
/* Append the encoding of v to b. CP2P_EINVAL if v is too large, or buf errors. */
CP2P_API CP2P_NODISCARD int cp2p_uvarint_append(cp2p_buf *b, uint64_t v);

/* Text encodings. Every encoder appends to `out` (text, no terminating NUL is counted in len,
 * but one is kept after the text so out->ptr can be used as a C string). Every decoder appends
 * the bytes to `out` and returns 0, CP2P_EINVAL on a character or length that the alphabet does
 * not allow (nothing is appended then), or buf errors. Decoders accept exactly the form the
 * encoders produce: hex (either case), base58btc (Bitcoin alphabet), base32 (RFC 4648 lower
 * case, no padding, canonical trailing bits), base64url (RFC 4648 section 5, no padding). */
CP2P_API CP2P_NODISCARD int cp2p_hex_encode(cp2p_buf *out, const uint8_t *in, size_t len);
CP2P_API CP2P_NODISCARD int cp2p_hex_decode(cp2p_buf *out, const char *in, size_t len);
CP2P_API CP2P_NODISCARD int cp2p_base58btc_encode(cp2p_buf *out, const uint8_t *in, size_t len);
CP2P_API CP2P_NODISCARD int cp2p_base58btc_decode(cp2p_buf *out, const char *in, size_t len);
CP2P_API CP2P_NODISCARD int cp2p_base32_encode(cp2p_buf *out, const uint8_t *in, size_t len);
CP2P_API CP2P_NODISCARD int cp2p_base32_decode(cp2p_buf *out, const char *in, size_t len);
CP2P_API CP2P_NODISCARD int cp2p_base64url_encode(cp2p_buf *out, const uint8_t *in, size_t len);
CP2P_API CP2P_NODISCARD int cp2p_base64url_decode(cp2p_buf *out, const char *in, size_t len);

#ifdef __cplusplus
}
#endif
#endif
