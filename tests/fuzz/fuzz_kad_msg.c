/* Fuzz the kad-dht message decoder; whatever decodes must re-encode and decode to the same
 * fields, with nothing more dropped. */
#include <stdlib.h>
#include <string.h>

#include "protocols/kad/kad_msg.h"
#include "util/limits.h"

static bool bytes_eq(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

static bool peers_eq(const cp2p__kad_peer *a, const cp2p__kad_peer *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!cp2p_peer_id_equal(&a[i].id, &b[i].id) || a[i].n_addrs != b[i].n_addrs ||
            a[i].connection != b[i].connection) {
            return false;
        }
        for (size_t j = 0; j < a[i].n_addrs; j++) {
            if (!cp2p_multiaddr_equal(a[i].addrs[j], b[i].addrs[j])) {
                return false;
            }
        }
    }
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cp2p__kad_msg m, again;
    const char *why = NULL;
    cp2p_buf b;
    if (cp2p__kad_msg_decode(data, size, &m, &why) != 0) {
        return 0;
    }
    if (m.n_closer > CP2P_KAD_MAX_PEERS_PER_MSG || m.n_providers > CP2P_KAD_MAX_PEERS_PER_MSG ||
        m.key_len > CP2P_KAD_MAX_KEY || m.record.value_len > CP2P_KAD_MAX_VALUE) {
        abort();
    }
    cp2p_buf_init(&b, CP2P_KAD_MAX_MSG);
    /* Dropping entries and unknown fields can only shrink the message, so it must encode. */
    if (cp2p__kad_msg_encode(&m, &b) != 0 || cp2p__kad_msg_decode(b.ptr, b.len, &again, &why)) {
        abort();
    }
    if (again.type != m.type || again.has_record != m.has_record ||
        !bytes_eq(again.key, again.key_len, m.key, m.key_len) ||
        !bytes_eq(again.record.key, again.record.key_len, m.record.key, m.record.key_len) ||
        !bytes_eq(again.record.value, again.record.value_len, m.record.value,
                  m.record.value_len) ||
        (again.record.time_received == NULL) != (m.record.time_received == NULL) ||
        (m.record.time_received != NULL &&
         strcmp(again.record.time_received, m.record.time_received) != 0) ||
        again.n_closer != m.n_closer || again.n_providers != m.n_providers ||
        !peers_eq(again.closer, m.closer, m.n_closer) ||
        !peers_eq(again.providers, m.providers, m.n_providers) ||
        again.dropped_peers + again.dropped_addrs != 0) {
        abort();
    }
    cp2p__kad_msg_fini(&again);
    cp2p__kad_msg_fini(&m);
    cp2p_buf_fini(&b);
    return 0;
}
