/* Kademlia keys: the XOR metric over SHA-256 of the key bytes (libp2p kad-dht spec,
 * "Distance"). Pure functions. */
#ifndef CP2P_PROTOCOLS_KAD_KEY_H
#define CP2P_PROTOCOLS_KAD_KEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cp2p/peer_id.h>

typedef struct cp2p__kad_key {
    uint8_t b[32];
} cp2p__kad_key;

/* SHA-256 of `len` bytes (a peer ID multihash, a record key, a CID's multihash). */
void cp2p__kad_key_of(const uint8_t *bytes, size_t len, cp2p__kad_key *out);
void cp2p__kad_key_of_peer(const cp2p_peer_id *p, cp2p__kad_key *out);
/* Common prefix length of two keys, 0..256 (256 only when equal). */
unsigned cp2p__kad_cpl(const cp2p__kad_key *a, const cp2p__kad_key *b);
/* <0 when a is closer to target than b, 0 when equal, >0 when farther. */
int cp2p__kad_cmp_dist(const cp2p__kad_key *target, const cp2p__kad_key *a,
                       const cp2p__kad_key *b);

#endif
