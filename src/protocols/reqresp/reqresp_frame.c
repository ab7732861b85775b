/* The length-prefixed message framing of request-response: one multiformats unsigned varint
 * (at most 9 bytes, minimal encoding) giving the body length, then the body. This is the
 * framing of rust-libp2p's length-delimited codecs and go-libp2p's msgio varint readers. Pure:
 * no libuv, no clock (STYLE.md section 1). */
#include <cp2p/codec.h>

#include "protocols/reqresp/reqresp_frame.h"

ptrdiff_t cp2p__reqresp_frame_decode(const uint8_t *in, size_t len, size_t max, cp2p_slice *body,
                                     const char **why)
{
    uint64_t declared;
    ptrdiff_t n = cp2p_uvarint_decode(in, len, &declared);
    if (n < 0) {
        *why = "bad length prefix";
        return CP2P_EPROTO;
    }
    if (n == 0) {
        return 0;
    }
    /* Check the declared length before waiting for the body (STYLE.md section 6.3). */
    if (declared > (uint64_t)max) {
        *why = "declared message length over the limit";
        return CP2P_ELIMIT;
    }
    size_t hdr = (size_t)n;
    if (len - hdr < (size_t)declared) {
        return 0;
    }
    body->ptr = in + hdr;
    body->len = (size_t)declared;
    return (ptrdiff_t)(hdr + (size_t)declared);
}
