/* Multihash (multiformats/multihash): <code varint><length varint><digest>. */
#include <sodium.h>

#include <cp2p/multiformats.h>

ptrdiff_t cp2p_multihash_decode(const uint8_t *in, size_t len, uint64_t *code,
                                cp2p_slice *digest)
{
    uint64_t c, dlen;
    ptrdiff_t n = cp2p_uvarint_decode(in, len, &c);
    if (n <= 0) {
        return n;
    }
    size_t off = (size_t)n;
    n = cp2p_uvarint_decode(in + off, len - off, &dlen);
    if (n <= 0) {
        return n;
    }
    off += (size_t)n;
    if (dlen > CP2P_MULTIHASH_MAX_DIGEST) {
        return CP2P_EPROTO;
    }
    if (len - off < dlen) {
        return 0;
    }
    *code = c;
    digest->ptr = in + off;
    digest->len = (size_t)dlen;
    return (ptrdiff_t)(off + (size_t)dlen);
}

int cp2p_multihash_validate(const uint8_t *in, size_t len)
{
    uint64_t code;
    cp2p_slice d;
    ptrdiff_t n = cp2p_multihash_decode(in, len, &code, &d);
    return (n > 0 && (size_t)n == len) ? 0 : CP2P_EPROTO;
}

int cp2p_multihash_encode(cp2p_buf *out, uint64_t code, const uint8_t *digest, size_t len)
{
    uint8_t hdr[CP2P_UVARINT_MAX + 1];
    if (len > CP2P_MULTIHASH_MAX_DIGEST || code > CP2P_UVARINT_MAX_VALUE) {
        return CP2P_EINVAL;
    }
    size_t n = cp2p_uvarint_encode(hdr, code);
    hdr[n++] = (uint8_t)len; /* len <= 64 < 128: a one-byte varint */
    int rc = cp2p_buf_reserve(out, n + len);
    if (rc != 0) {
        return rc;
    }
    /* Both appends fit now, so neither can fail half way. */
    rc = cp2p_buf_append(out, hdr, n);
    if (rc == 0 && len > 0) {
        rc = cp2p_buf_append(out, digest, len);
    }
    return rc;
}

int cp2p_multihash_sha256(cp2p_buf *out, const uint8_t *data, size_t len)
{
    uint8_t d[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(d, data, len);
    return cp2p_multihash_encode(out, CP2P_MULTIHASH_SHA2_256, d, sizeof(d));
}
