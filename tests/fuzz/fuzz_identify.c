/* Fuzz the identify decoder; whatever decodes must re-encode and decode to the same fields. */
#include <stdlib.h>
#include <string.h>

#include "swarm/identify/identify_msg.h"
#include "util/limits.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cp2p__identify_msg m, again;
    const char *why = NULL;
    cp2p_buf b;
    if (cp2p__identify_decode(data, size, &m, &why) != 0) {
        return 0;
    }
    cp2p_buf_init(&b, 4 * CP2P_IDENTIFY_MAX_MSG);
    /* Dropping invalid entries can only shrink the message, so it must encode. */
    if (cp2p__identify_encode(&m, &b) != 0 || cp2p__identify_decode(b.ptr, b.len, &again, &why) != 0) {
        abort();
    }
    if (again.n_listen_addrs != m.n_listen_addrs || again.n_protocols != m.n_protocols ||
        again.dropped_addrs + again.dropped_protocols + again.dropped_strings != 0) {
        abort();
    }
    for (size_t i = 0; i < m.n_protocols; i++) {
        if (strcmp(m.protocols[i], again.protocols[i]) != 0) {
            abort();
        }
    }
    cp2p__identify_msg_fini(&again);
    cp2p__identify_msg_fini(&m);
    cp2p_buf_fini(&b);
    return 0;
}
