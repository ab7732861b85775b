/* Fuzz the varint decoder: any input decodes to a value that re-encodes to the same bytes. */
#include <stdlib.h>
#include <string.h>

#include <cp2p/codec.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    while (size > 0) {
        uint64_t v;
        ptrdiff_t n = cp2p_uvarint_decode(data, size, &v);
        if (n <= 0) {
            break;
        }
        uint8_t enc[CP2P_UVARINT_MAX];
        size_t m = cp2p_uvarint_encode(enc, v);
        if (m != (size_t)n || memcmp(enc, data, m) != 0) {
            abort(); /* decode accepted a non-canonical encoding */
        }
        data += n;
        size -= (size_t)n;
    }
    return 0;
}
