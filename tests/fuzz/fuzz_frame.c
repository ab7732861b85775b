/* Fuzz the one uvarint-length-prefixed frame reader (cp2p__frame_decode in src/util/frame.c),
 * which request-response, Kademlia and gossipsub run on every frame a peer sends.
 *
 * Input: byte 0 picks the limit (0..254 bytes, or 255 meaning 1 MiB); the rest is the stream.
 * Checks: the frame never claims more than it was given; the body lies inside it and within the
 * limit; the prefix re-encodes to the same bytes (minimal varints only); every strict prefix of
 * an accepted frame needs more input; and the frames of the whole stream, read one after another
 * as the bindings do, each pass the same checks. */
#include <stdlib.h>
#include <string.h>

#include <cp2p/codec.h>

#include "util/frame.h"

/* Check one decode of in[0..len); returns its result. */
static ptrdiff_t check_one(const uint8_t *in, size_t len, size_t max)
{
    cp2p_slice body = {NULL, 0};
    const char *why = NULL;
    ptrdiff_t n = cp2p__frame_decode(in, len, max, &body, &why);
    if (n < 0) {
        if (why == NULL || (n != CP2P_EPROTO && n != CP2P_ELIMIT)) {
            abort();
        }
        return n;
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
        if (cp2p__frame_decode(in, i, max, &b2, &why) != 0) {
            abort(); /* a truncated valid frame must ask for more */
        }
    }
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    size_t max = data[0] == 255 ? 1024 * 1024 : data[0];
    const uint8_t *in = data + 1;
    size_t len = size - 1;
    ptrdiff_t n;
    while ((n = check_one(in, len, max)) > 0) {
        in += n;
        len -= (size_t)n;
    }
    return 0;
}
