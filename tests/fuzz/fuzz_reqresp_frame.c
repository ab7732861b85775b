/* Fuzz the length-prefixed framing of request-response (cp2p__reqresp_frame_decode in
 * src/protocols/reqresp/reqresp_frame.c), the only parser request-response runs on peer bytes.
 *
 * Input: byte 0 picks the limit (0..255 bytes, or 255 meaning 1 MiB); the rest is the stream.
 * Checks: the frame never claims more than it was given; the body lies inside it and within the
 * limit; the prefix re-encodes to the same bytes (minimal varints only); and every strict prefix
 * of an accepted frame needs more input. */
#include <stdlib.h>
#include <string.h>

#include <cp2p/codec.h>

#include "protocols/reqresp/reqresp_frame.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    size_t max = data[0] == 255 ? 1024 * 1024 : data[0];
    const uint8_t *in = data + 1;
    size_t len = size - 1;
    cp2p_slice body = {NULL, 0};
    const char *why = NULL;
    ptrdiff_t n = cp2p__reqresp_frame_decode(in, len, max, &body, &why);
    if (n < 0) {
        if (why == NULL || (n != CP2P_EPROTO && n != CP2P_ELIMIT)) {
            abort();
        }
        return 0;
    }
    if (n == 0) {
        return 0;
    }
    if ((size_t)n > len || body.len > max || body.ptr < in || body.ptr + body.len != in + n) {
        abort();
    }
    uint8_t enc[CP2P_UVARINT_MAX];
    size_t m = cp2p_uvarint_encode(enc, body.len);
    if (m != (size_t)(body.ptr - in) || memcmp(enc, in, m) != 0) {
        abort();
    }
    for (size_t i = 0; i < (size_t)n; i++) {
        cp2p_slice b2;
        if (cp2p__reqresp_frame_decode(in, i, max, &b2, &why) != 0) {
            abort(); /* a truncated valid frame must ask for more */
        }
    }
    return 0;
}
