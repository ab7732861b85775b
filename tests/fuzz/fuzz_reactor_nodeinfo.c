/* Fuzz the node info reader and decoder (src/reactor/nodeinfo.c): the bytes a peer sends on
 * /p2p/cometbft/1.0.0/nodeinfo.
 *
 * Input: byte 0 picks the read size (1..256); the rest is the stream, fed in reads of that
 * size as the binding does. Checks: errors come with a reason and only as CP2P_EPROTO or
 * CP2P_ELIMIT; a decoded node info passes the check, encodes again to at most
 * CP2P_NODEINFO_MAX bytes and decodes to the same struct (a round trip); the compatibility
 * rule answers for it against itself (compatible) and a default. ASan sees any leak. */
#include <stdlib.h>
#include <string.h>

#include "reactor/nodeinfo.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    size_t chunk = (size_t)data[0] + 1;
    data++;
    size--;
    static cp2p__nodeinfo_reader r;
    cp2p__nodeinfo_reader_init(&r);
    cp2p_node_info ni;
    const char *why = NULL;
    int rc = 0;
    for (size_t off = 0; off < size && rc == 0; off += chunk) {
        size_t n = size - off < chunk ? size - off : chunk;
        rc = cp2p__nodeinfo_reader_feed(&r, data + off, n, &ni, &why);
    }
    if (rc < 0) {
        if ((rc != CP2P_EPROTO && rc != CP2P_ELIMIT) || why == NULL) {
            abort();
        }
        return 0;
    }
    if (rc == 0) {
        return 0; /* incomplete: the binding counts it as cut short at the stream's end */
    }
    if (cp2p__nodeinfo_check(&ni, &why) != 0) {
        abort();
    }
    static uint8_t wire[CP2P__NODEINFO_WIRE_MAX];
    ptrdiff_t n = cp2p__nodeinfo_encode(&ni, wire, sizeof(wire));
    if (n <= 0) {
        abort();
    }
    cp2p__nodeinfo_reader_init(&r);
    cp2p_node_info again;
    if (cp2p__nodeinfo_reader_feed(&r, wire, (size_t)n, &again, &why) != 1 ||
        memcmp(&ni, &again, sizeof(ni)) != 0) {
        abort();
    }
    if (cp2p__nodeinfo_compatible(&ni, &ni, &why) != CP2P__NI_OK) {
        abort();
    }
    cp2p_node_info other;
    memset(&other, 0, sizeof(other));
    (void)cp2p__nodeinfo_compatible(&other, &ni, &why);
    return 0;
}
