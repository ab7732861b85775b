/* Kademlia keys and the XOR metric (libp2p kad-dht spec, "Distance"). */
#include <sodium.h>

#include "protocols/kad/kad_key.h"

void cp2p__kad_key_of(const uint8_t *bytes, size_t len, cp2p__kad_key *out)
{
    static const uint8_t empty[1];
    crypto_hash_sha256(out->b, len > 0 ? bytes : empty, len);
}

void cp2p__kad_key_of_peer(const cp2p_peer_id *p, cp2p__kad_key *out)
{
    cp2p__kad_key_of(p->bytes, p->len, out);
}

unsigned cp2p__kad_cpl(const cp2p__kad_key *a, const cp2p__kad_key *b)
{
    for (unsigned i = 0; i < sizeof(a->b); i++) {
        unsigned x = (unsigned)(a->b[i] ^ b->b[i]);
        if (x != 0) {
            unsigned n = 0;
            while ((x & 0x80u) == 0) {
                x <<= 1;
                n++;
            }
            return i * 8 + n;
        }
    }
    return 8 * (unsigned)sizeof(a->b);
}

int cp2p__kad_cmp_dist(const cp2p__kad_key *target, const cp2p__kad_key *a,
                       const cp2p__kad_key *b)
{
    for (size_t i = 0; i < sizeof(target->b); i++) {
        uint8_t da = (uint8_t)(a->b[i] ^ target->b[i]);
        uint8_t db = (uint8_t)(b->b[i] ^ target->b[i]);
        if (da != db) {
            return da < db ? -1 : 1;
        }
    }
    return 0;
}
