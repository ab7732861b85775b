/* The protobuf-c allocator backed by cp2p_malloc. */
#include <cp2p/common.h>

#include "util/pb.h"

static void *pb_alloc(void *ud, size_t n)
{
    void *p = cp2p_malloc(n);
    if (p == NULL) {
        ((cp2p__pb_alloc *)ud)->failed = true;
    }
    return p;
}

static void pb_free(void *ud, void *p)
{
    (void)ud;
    cp2p_free(p);
}

void cp2p__pb_alloc_init(cp2p__pb_alloc *pa)
{
    pa->a = (ProtobufCAllocator){.alloc = pb_alloc, .free = pb_free, .allocator_data = pa};
    pa->failed = false;
}
