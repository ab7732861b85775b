/* Big-number base conversion shared by base58btc (util/base.c), base36 (multibase) and peer
 * IDs. Internal. */
#ifndef CP2P_UTIL_BASEX_H
#define CP2P_UTIL_BASEX_H

#include <cp2p/buf.h>

/* Encode in[0..len) with `alphabet` of `base` characters into out[0..cap), leading zero bytes
 * becoming alphabet[0]. Allocates nothing. Returns the number of characters written, or 0 if
 * they do not fit in cap (an empty input also gives 0). Callers bound len. */
size_t cp2p__basex_encode_raw(const char *alphabet, unsigned base, const uint8_t *in, size_t len,
                              uint8_t *out, size_t cap);
/* Append the encoding of in[0..len) to out. Returns 0, CP2P_ELIMIT past CP2P_BASEX_MAX_BYTES,
 * or buf errors. base must be 36..58. */
CP2P_NODISCARD int cp2p__basex_encode(cp2p_buf *out, const char *alphabet, unsigned base,
                                      const uint8_t *in, size_t len);
/* Append the bytes of in[0..len) to out. Returns 0, CP2P_EINVAL (a character outside the
 * alphabet), CP2P_ELIMIT (more than CP2P_BASEX_MAX_BYTES bytes), or buf errors; out is
 * unchanged on error. */
CP2P_NODISCARD int cp2p__basex_decode(cp2p_buf *out, const char *alphabet, unsigned base,
                                      const char *in, size_t len);

#endif
