/* Internal allocation helpers (the public functions are in cp2p/common.h). */
#ifndef CP2P_UTIL_ALLOC_H
#define CP2P_UTIL_ALLOC_H

#include <stddef.h>

/* Make the n-th allocation from now fail (n >= 1); 0 disables. For allocation-failure loops in
 * tests (STYLE.md section 10). Single-threaded use only. */
void cp2p__alloc_fail_after(long n);
/* Copy n bytes into a new cp2p_malloc'd block, or NULL. */
void *cp2p__memdup(const void *p, size_t n);

#endif
