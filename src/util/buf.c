/* Owned, bounded byte buffers. */
#include <string.h>

#include <sodium.h>

#include <cp2p/buf.h>

void cp2p_buf_init(cp2p_buf *b, size_t max)
{
    b->ptr = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

/* Grow so that `need` bytes plus one spare (for a NUL after text) fit; never past max + 1. */
static int grow(cp2p_buf *b, size_t need)
{
    if (need > b->max || need == SIZE_MAX) {
        return CP2P_ELIMIT;
    }
    if (need + 1 <= b->cap) {
        return 0;
    }
    size_t cap = b->cap < 64 ? 64 : b->cap;
    while (cap < need + 1) {
        cap = cap > SIZE_MAX / 2 ? need + 1 : cap * 2;
    }
    if (b->max < SIZE_MAX && cap > b->max + 1) {
        cap = b->max + 1;
    }
    uint8_t *p = cp2p_realloc(b->ptr, cap);
    if (p == NULL) {
        return CP2P_ENOMEM;
    }
    b->ptr = p;
    b->cap = cap;
    return 0;
}

int cp2p_buf_reserve(cp2p_buf *b, size_t n)
{
    if (n > b->max || b->len > b->max - n) {
        return CP2P_ELIMIT;
    }
    return grow(b, b->len + n);
}

int cp2p_buf_append(cp2p_buf *b, const void *p, size_t n)
{
    int rc = cp2p_buf_reserve(b, n);
    if (rc != 0) {
        return rc;
    }
    if (n > 0) {
        memcpy(b->ptr + b->len, p, n);
    }
    b->len += n;
    b->ptr[b->len] = 0;
    return 0;
}

int cp2p_buf_append_byte(cp2p_buf *b, uint8_t c)
{
    return cp2p_buf_append(b, &c, 1);
}

void cp2p_buf_consume(cp2p_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
    } else {
        memmove(b->ptr, b->ptr + n, b->len - n);
        b->len -= n;
    }
    if (b->ptr != NULL) {
        b->ptr[b->len] = 0;
    }
}

void cp2p_buf_reset(cp2p_buf *b)
{
    b->len = 0;
    if (b->ptr != NULL) {
        b->ptr[0] = 0;
    }
}

size_t cp2p_buf_take(cp2p_buf *b, uint8_t **out)
{
    size_t n = b->len;
    if (n == 0) {
        cp2p_buf_fini(b);
        *out = NULL;
        return 0;
    }
    *out = b->ptr;
    b->ptr = NULL;
    b->len = 0;
    b->cap = 0;
    return n;
}

void cp2p_buf_fini(cp2p_buf *b)
{
    cp2p_free(b->ptr);
    b->ptr = NULL;
    b->len = 0;
    b->cap = 0;
}

void cp2p_buf_fini_wipe(cp2p_buf *b)
{
    if (b->ptr != NULL) {
        sodium_memzero(b->ptr, b->cap);
    }
    cp2p_buf_fini(b);
}
