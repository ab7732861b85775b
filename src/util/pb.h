/* protobuf-c allocates through cp2p_malloc/cp2p_free too (STYLE.md section 4), so allocation
 * failure tests and a user's allocator cover unpacked messages. A cp2p__pb_alloc also records
 * whether an allocation failed, so a NULL from *__unpack() can be told apart: CP2P_ENOMEM when
 * `failed`, else malformed input (CP2P_EPROTO). Use one per unpack:
 *     cp2p__pb_alloc pa;
 *     cp2p__pb_alloc_init(&pa);
 *     m = x__unpack(&pa.a, len, in);  ...  x__free_unpacked(m, &pa.a); */
#ifndef CP2P_UTIL_PB_H
#define CP2P_UTIL_PB_H

#include <stdbool.h>

#include <protobuf-c/protobuf-c.h>

typedef struct cp2p__pb_alloc {
    ProtobufCAllocator a;
    bool failed;
} cp2p__pb_alloc;

void cp2p__pb_alloc_init(cp2p__pb_alloc *pa);

#endif
