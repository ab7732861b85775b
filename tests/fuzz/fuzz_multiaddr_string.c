/* Fuzz the text multiaddr parser. Anything it accepts must print canonically (printing the
 * printed text's parse gives the same text) and have a binary form that parses back. */
#include <stdlib.h>
#include <string.h>

#include <cp2p/multiaddr.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cp2p_multiaddr *ma = NULL, *back = NULL, *bin = NULL;
    cp2p_buf t1, t2;

    if (cp2p_multiaddr_parse((const char *)data, size, &ma) != 0) {
        return 0;
    }
    cp2p_buf_init(&t1, CP2P_MULTIADDR_STR_MAX);
    cp2p_buf_init(&t2, CP2P_MULTIADDR_STR_MAX);
    if (cp2p_multiaddr_to_string(ma, &t1) != 0 ||
        cp2p_multiaddr_parse((const char *)t1.ptr, t1.len, &back) != 0 ||
        !cp2p_multiaddr_equal(ma, back) || cp2p_multiaddr_to_string(back, &t2) != 0 ||
        t1.len != t2.len || memcmp(t1.ptr, t2.ptr, t1.len) != 0) {
        abort();
    }
    cp2p_slice s = cp2p_multiaddr_bytes(ma);
    if (cp2p_multiaddr_count(ma) > 0) {
        if (cp2p_multiaddr_from_bytes(s.ptr, s.len, &bin) != 0 ||
            !cp2p_multiaddr_equal(ma, bin)) {
            abort();
        }
    } else if (s.len != 0 || t1.len != 1 || t1.ptr[0] != '/') {
        abort();
    }
    cp2p_multiaddr_free(bin);
    cp2p_multiaddr_free(back);
    cp2p_multiaddr_free(ma);
    cp2p_buf_fini(&t1);
    cp2p_buf_fini(&t2);
    return 0;
}
