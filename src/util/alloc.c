/* Allocation through replaceable functions, with a failure-injection hook for tests. */
#include <stdlib.h>
#include <string.h>

#include <cp2p/common.h>

#include "util/alloc.h"

static cp2p_malloc_fn g_malloc = malloc;
static cp2p_realloc_fn g_realloc = realloc;
static cp2p_free_fn g_free = free;
/* Test hook: when > 0, counts down; the allocation that brings it to 0 fails. Not atomic:
 * allocation-failure tests run single-threaded. */
static long g_fail_after = 0;

int cp2p_set_allocator(cp2p_malloc_fn m, cp2p_realloc_fn r, cp2p_free_fn f)
{
    if (m == NULL || r == NULL || f == NULL) {
        return CP2P_EINVAL;
    }
    g_malloc = m;
    g_realloc = r;
    g_free = f;
    return 0;
}

void cp2p__alloc_fail_after(long n)
{
    g_fail_after = n;
}

static int should_fail(void)
{
    if (g_fail_after > 0 && --g_fail_after == 0) {
        return 1;
    }
    return 0;
}

void *cp2p_malloc(size_t n)
{
    if (should_fail()) {
        return NULL;
    }
    return g_malloc(n == 0 ? 1 : n);
}

void *cp2p_calloc(size_t count, size_t n)
{
    if (n != 0 && count > SIZE_MAX / n) {
        return NULL;
    }
    void *p = cp2p_malloc(count * n);
    if (p != NULL) {
        memset(p, 0, count * n);
    }
    return p;
}

void *cp2p_realloc(void *p, size_t n)
{
    if (should_fail()) {
        return NULL;
    }
    return g_realloc(p, n == 0 ? 1 : n);
}

void cp2p_free(void *p)
{
    if (p != NULL) {
        g_free(p);
    }
}

void *cp2p__memdup(const void *p, size_t n)
{
    void *q = cp2p_malloc(n);
    if (q != NULL && n > 0) {
        memcpy(q, p, n);
    }
    return q;
}
