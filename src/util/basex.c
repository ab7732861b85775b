/* Big-number bases (base58btc, base36): leading zero bytes map to the alphabet's first
 * character, the rest is the number in the base. Quadratic in the length, so bounded by
 * CP2P_BASEX_MAX_BYTES on both encode and decode. */
#include <string.h>

#include "util/basex.h"
#include "util/limits.h"

size_t cp2p__basex_encode_raw(const char *alphabet, unsigned base, const uint8_t *in, size_t len,
                          uint8_t *out, size_t cap)
{
    size_t zeros = 0;
    while (zeros < len && in[zeros] == 0) {
        zeros++;
    }
    if (zeros > cap) {
        return 0;
    }
    /* Little-endian digits are built after the leading zero characters, then reversed. */
    uint8_t *digits = out + zeros;
    size_t room = cap - zeros, ndig = 0;
    for (size_t i = zeros; i < len; i++) {
        unsigned carry = in[i];
        for (size_t j = 0; j < ndig; j++) {
            carry += (unsigned)digits[j] << 8;
            digits[j] = (uint8_t)(carry % base);
            carry /= base;
        }
        while (carry > 0) {
            if (ndig == room) {
                return 0;
            }
            digits[ndig++] = (uint8_t)(carry % base);
            carry /= base;
        }
    }
    memset(out, alphabet[0], zeros);
    for (size_t j = 0; j < ndig / 2; j++) {
        uint8_t t = digits[j];
        digits[j] = digits[ndig - 1 - j];
        digits[ndig - 1 - j] = t;
    }
    for (size_t j = 0; j < ndig; j++) {
        digits[j] = (uint8_t)alphabet[digits[j]];
    }
    return zeros + ndig;
}

int cp2p__basex_encode(cp2p_buf *out, const char *alphabet, unsigned base, const uint8_t *in,
                       size_t len)
{
    if (len > CP2P_BASEX_MAX_BYTES) {
        return CP2P_ELIMIT;
    }
    /* log(256)/log(base) < 1.55 for base >= 36: enough characters, plus one. */
    size_t cap = len * 155 / 100 + 1;
    int rc = cp2p_buf_reserve(out, cap);
    if (rc != 0) {
        return rc;
    }
    size_t n = cp2p__basex_encode_raw(alphabet, base, in, len, out->ptr + out->len, cap);
    out->len += n;
    out->ptr[out->len] = 0;
    return 0;
}

int cp2p__basex_decode(cp2p_buf *out, const char *alphabet, unsigned base, const char *in,
                       size_t len)
{
    /* A text longer than the encoding of CP2P_BASEX_MAX_BYTES bytes cannot decode within it. */
    if (len > CP2P_BASEX_MAX_BYTES * 155 / 100 + 1) {
        return CP2P_ELIMIT;
    }
    size_t zeros = 0;
    while (zeros < len && in[zeros] == alphabet[0]) {
        zeros++;
    }
    /* log(base)/log(256) < 0.74 for base <= 58 */
    size_t cap = zeros + (len - zeros) * 74 / 100 + 1;
    int rc = cp2p_buf_reserve(out, cap);
    if (rc != 0) {
        return rc;
    }
    uint8_t *w = out->ptr + out->len;
    uint8_t *bytes = w + zeros; /* little-endian base 256, reversed at the end */
    size_t nb = 0;
    for (size_t i = zeros; i < len; i++) {
        const char *p = in[i] != 0 ? memchr(alphabet, in[i], base) : NULL;
        if (p == NULL) {
            return CP2P_EINVAL; /* nothing committed */
        }
        unsigned carry = (unsigned)(p - alphabet);
        for (size_t j = 0; j < nb; j++) {
            carry += (unsigned)bytes[j] * base;
            bytes[j] = (uint8_t)carry;
            carry >>= 8;
        }
        while (carry > 0) {
            if (zeros + nb == cap) {
                return CP2P_EINVAL; /* cannot happen given the bound above; stay safe */
            }
            bytes[nb++] = (uint8_t)carry;
            carry >>= 8;
        }
    }
    if (zeros + nb > CP2P_BASEX_MAX_BYTES) {
        return CP2P_ELIMIT; /* symmetric with the encoder's bound */
    }
    memset(w, 0, zeros);
    for (size_t j = 0; j < nb / 2; j++) {
        uint8_t t = bytes[j];
        bytes[j] = bytes[nb - 1 - j];
        bytes[nb - 1 - j] = t;
    }
    out->len += zeros + nb;
    out->ptr[out->len] = 0;
    return 0;
}
