/* protobuf-c allocates through cp2p_malloc/cp2p_free too (STYLE.md section 4), so allocation
 * failure tests and a user's allocator cover unpacked messages. Pass &cp2p__pb_allocator to
 * every *__unpack and *__free_unpacked call. */
#ifndef CP2P_UTIL_PB_H
#define CP2P_UTIL_PB_H

#include <protobuf-c/protobuf-c.h>

extern ProtobufCAllocator cp2p__pb_allocator;

#endif
