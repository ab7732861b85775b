/* uvarint-length-prefixed frames (see frame.h). The declared length is checked against the
 * caller's limit as soon as the prefix is complete, so a peer cannot make the caller buffer
 * toward a body it will refuse anyway (STYLE.md 6.3). */
#include "util/frame.h"

#include <cp2p/codec.h>

ptrdiff_t cp2p__frame_decode(const uint8_t *in, size_t len, size_t max, cp2p_slice *body,
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
