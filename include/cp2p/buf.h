/* cp2p: owned, bounded byte buffers (STYLE.md section 4).
 * A cp2p_buf owns its bytes and never grows past `max`. Any thread, one user at a time. */
#ifndef CP2P_BUF_H
#define CP2P_BUF_H

#include <cp2p/common.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cp2p_buf {
    uint8_t *ptr;
    size_t len, cap, max;
} cp2p_buf;

/* Prepare an empty buffer that may hold up to `max` bytes. Allocates nothing; cannot fail. */
CP2P_API void cp2p_buf_init(cp2p_buf *b, size_t max);
/* Append n bytes. Returns 0, CP2P_ELIMIT if len + n would pass max (nothing appended), or
 * CP2P_ENOMEM. */
CP2P_API CP2P_NODISCARD int cp2p_buf_append(cp2p_buf *b, const void *p, size_t n);
CP2P_API CP2P_NODISCARD int cp2p_buf_append_byte(cp2p_buf *b, uint8_t c);
/* Make room for n more bytes without changing len. Same errors as append. */
CP2P_API CP2P_NODISCARD int cp2p_buf_reserve(cp2p_buf *b, size_t n);
/* Drop the first n bytes (n <= len), keeping the rest. */
CP2P_API void cp2p_buf_consume(cp2p_buf *b, size_t n);
/* Forget the contents, keep the memory. */
CP2P_API void cp2p_buf_reset(cp2p_buf *b);
/* Take the bytes: *out becomes the caller's (free with cp2p_free), the buffer is left empty.
 * Returns the length. *out is NULL when the buffer is empty. */
CP2P_API size_t cp2p_buf_take(cp2p_buf *b, uint8_t **out);
/* Free the memory (after wiping it when `wipe` is set, for key material). Safe on a zeroed
 * struct and twice in a row. */
CP2P_API void cp2p_buf_fini(cp2p_buf *b);
CP2P_API void cp2p_buf_fini_wipe(cp2p_buf *b);

static inline cp2p_slice cp2p_buf_slice(const cp2p_buf *b)
{
    cp2p_slice s = {b->ptr, b->len};
    return s;
}

#ifdef __cplusplus
}
#endif
#endif
