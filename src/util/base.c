/* hex, base58btc, base32 (RFC 4648, lower case, no padding), base64url (no padding). */
#include <string.h>

#include <cp2p/codec.h>

#include "util/basex.h"
#include "util/text.h"

static const char HEX[] = "0123456789abcdef";
static const char B58[] = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
static const char B32[] = "abcdefghijklmnopqrstuvwxyz234567";
static const char B64U[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Reverse lookup: value of c in alphabet, or -1. */
static int alpha_index(const char *alphabet, size_t n, char c)
{
    const char *p = memchr(alphabet, c, n);
    return (c == 0 || p == NULL) ? -1 : (int)(p - alphabet);
}

/* Make room for n more bytes and return where to write them, or NULL with *rc set. */
static uint8_t *tail(cp2p_buf *out, size_t n, int *rc)
{
    *rc = cp2p_buf_reserve(out, n);
    return *rc != 0 ? NULL : out->ptr + out->len;
}

static void commit(cp2p_buf *out, size_t n)
{
    out->len += n;
    out->ptr[out->len] = 0;
}

int cp2p_hex_encode(cp2p_buf *out, const uint8_t *in, size_t len)
{
    int rc;
    if (len > SIZE_MAX / 2) {
        return CP2P_ELIMIT;
    }
    uint8_t *w = tail(out, 2 * len, &rc);
    if (w == NULL) {
        return rc;
    }
    for (size_t i = 0; i < len; i++) {
        w[2 * i] = (uint8_t)HEX[in[i] >> 4];
        w[2 * i + 1] = (uint8_t)HEX[in[i] & 15];
    }
    commit(out, 2 * len);
    return 0;
}

int cp2p_hex_decode(cp2p_buf *out, const char *in, size_t len)
{
    int rc;
    if (len % 2 != 0) {
        return CP2P_EINVAL;
    }
    uint8_t *w = tail(out, len / 2, &rc);
    if (w == NULL) {
        return rc;
    }
    for (size_t i = 0; i < len / 2; i++) {
        int hi = cp2p__hex_digit(in[2 * i]), lo = cp2p__hex_digit(in[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            return CP2P_EINVAL; /* nothing committed */
        }
        w[i] = (uint8_t)(hi << 4 | lo);
    }
    commit(out, len / 2);
    return 0;
}

int cp2p_base58btc_encode(cp2p_buf *out, const uint8_t *in, size_t len)
{
    return cp2p__basex_encode(out, B58, 58, in, len);
}

int cp2p_base58btc_decode(cp2p_buf *out, const char *in, size_t len)
{
    return cp2p__basex_decode(out, B58, 58, in, len);
}

/* Shared bit-packing for the power-of-two bases: `bits` per character. */
static int pow2_encode(cp2p_buf *out, const uint8_t *in, size_t len, const char *alphabet,
                       unsigned bits)
{
    int rc;
    if (len > SIZE_MAX / 8 - 8) {
        return CP2P_ELIMIT;
    }
    size_t n = (len * 8 + bits - 1) / bits;
    uint8_t *w = tail(out, n, &rc);
    if (w == NULL) {
        return rc;
    }
    uint32_t acc = 0;
    unsigned have = 0;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        acc = (acc << 8 | in[i]) & 0xffff;
        have += 8;
        while (have >= bits) {
            have -= bits;
            w[o++] = (uint8_t)alphabet[(acc >> have) & ((1u << bits) - 1)];
        }
    }
    if (have > 0) {
        w[o++] = (uint8_t)alphabet[(acc << (bits - have)) & ((1u << bits) - 1)];
    }
    commit(out, o);
    return 0;
}

static int pow2_decode(cp2p_buf *out, const char *in, size_t len, const char *alphabet,
                       size_t alen, unsigned bits)
{
    int rc;
    /* A final character group that carries fewer than 8 bits cannot be a whole byte. */
    size_t rem_bits = (len * bits) % 8;
    if (len > SIZE_MAX / 8 || rem_bits >= bits) {
        return CP2P_EINVAL;
    }
    uint8_t *w = tail(out, len * bits / 8, &rc);
    if (w == NULL) {
        return rc;
    }
    uint32_t acc = 0;
    unsigned have = 0;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        int v = alpha_index(alphabet, alen, in[i]);
        if (v < 0) {
            return CP2P_EINVAL;
        }
        acc = (acc << bits | (uint32_t)v) & 0xffff;
        have += bits;
        if (have >= 8) {
            have -= 8;
            w[o++] = (uint8_t)(acc >> have);
        }
    }
    if ((acc & ((1u << have) - 1)) != 0) {
        return CP2P_EINVAL; /* non-canonical: padding bits must be zero */
    }
    commit(out, o);
    return 0;
}

int cp2p_base32_encode(cp2p_buf *out, const uint8_t *in, size_t len)
{
    return pow2_encode(out, in, len, B32, 5);
}

int cp2p_base32_decode(cp2p_buf *out, const char *in, size_t len)
{
    return pow2_decode(out, in, len, B32, 32, 5);
}

int cp2p_base64url_encode(cp2p_buf *out, const uint8_t *in, size_t len)
{
    return pow2_encode(out, in, len, B64U, 6);
}

int cp2p_base64url_decode(cp2p_buf *out, const char *in, size_t len)
{
    return pow2_decode(out, in, len, B64U, 64, 6);
}
