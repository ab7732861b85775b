/* The protobuf-c allocator backed by cp2p_malloc. */
#include <cp2p/common.h>

#include "util/pb.h"

static void *pb_alloc(void *ud, size_t n)
{
    (void)ud;
    return cp2p_malloc(n);
}

static void pb_free(void *ud, void *p)
{
    (void)ud;
    cp2p_free(p);
}

ProtobufCAllocator cp2p__pb_allocator = {.alloc = pb_alloc, .free = pb_free, .allocator_data = NULL};
