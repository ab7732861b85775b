/* Unsigned varint (multiformats/unsigned-varint): LEB128, at most 9 bytes, minimal. */
#include <cp2p/codec.h>

ptrdiff_t cp2p_uvarint_decode(const uint8_t *in, size_t len, uint64_t *out)
{
    uint64_t v = 0;
    for (size_t i = 0; i < len && i < CP2P_UVARINT_MAX; i++) {
        v |= (uint64_t)(in[i] & 0x7f) << (7 * i);
        if ((in[i] & 0x80) == 0) {
            if (i > 0 && in[i] == 0) {
                return CP2P_EPROTO; /* non-minimal: a trailing zero group */
            }
            *out = v;
            return (ptrdiff_t)(i + 1);
        }
    }
    /* Nine bytes read and the ninth still has its continuation bit: over 63 bits. */
    return len >= CP2P_UVARINT_MAX ? CP2P_EPROTO : 0;
}

size_t cp2p_uvarint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

size_t cp2p_uvarint_encode(uint8_t out[CP2P_UVARINT_MAX], uint64_t v)
{
    if (v > CP2P_UVARINT_MAX_VALUE) {
        return 0;
    }
    size_t i = 0;
    while (v >= 0x80) {
        out[i++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    out[i++] = (uint8_t)v;
    return i;
}

int cp2p_uvarint_append(cp2p_buf *b, uint64_t v)
{
    uint8_t tmp[CP2P_UVARINT_MAX];
    size_t n = cp2p_uvarint_encode(tmp, v);
    if (n == 0) {
        return CP2P_EINVAL;
    }
    return cp2p_buf_append(b, tmp, n);
}
