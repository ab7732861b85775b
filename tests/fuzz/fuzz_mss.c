/* Fuzz multistream-select: the input is what the remote sends, fed to a listener and to a
 * dialer in chunks whose sizes come from the first byte. */
#include <stdlib.h>

#include "negotiate/mss.h"

static void feed(cp2p__mss *m, const uint8_t *data, size_t size, size_t chunk)
{
    size_t have = 0, off = 0;
    while (off < size) {
        const char *why = NULL;
        have = size - off < have + chunk ? size - off : have + chunk;
        ptrdiff_t n = cp2p__mss_recv(m, data + off, have, &why);
        if (n < 0) {
            if (why == NULL || cp2p__mss_state_get(m) != MSS_FAILED) {
                abort(); /* every failure names its reason and is terminal */
            }
            return;
        }
        if ((size_t)n > have) {
            abort();
        }
        off += (size_t)n;
        have -= (size_t)n;
        cp2p__mss_out_done(m, cp2p__mss_out(m).len);
        if (cp2p__mss_state_get(m) == MSS_DONE) {
            if (cp2p__mss_selected(m) == NULL) {
                abort();
            }
            return;
        }
        if (n == 0 && have == size - off) {
            return; /* needs more than the input has */
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const protos[] = {"/noise", "/yamux/1.0.0", "/ipfs/ping/1.0.0"};
    cp2p__mss m;
    if (size == 0) {
        return 0;
    }
    size_t chunk = (size_t)(data[0] % 32) + 1;
    data++;
    size--;
    if (cp2p__mss_init_listener(&m, protos, 3) == 0) {
        feed(&m, data, size, chunk);
    }
    cp2p__mss_fini(&m);
    if (cp2p__mss_init_dialer(&m, protos, 3, chunk % 2 == 0) == 0) {
        feed(&m, data, size, chunk);
    }
    cp2p__mss_fini(&m);
    if (cp2p__mss_init_dialer(&m, protos, 1, true) == 0) {
        feed(&m, data, size, chunk);
    }
    cp2p__mss_fini(&m);
    return 0;
}
