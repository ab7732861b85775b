/* Multibase (multiformats/multibase): a one-character prefix naming the base, then the text.
 * The bases themselves are in util/ (base.c, basex.c); this file maps prefixes to them. */
#include <string.h>

#include <cp2p/multiformats.h>

#include "util/basex.h"
#include "util/limits.h"

static const char B36[] = "0123456789abcdefghijklmnopqrstuvwxyz";

/* Restore out to length n after a failed append (the buffer keeps a NUL after its text). */
static void truncate_to(cp2p_buf *out, size_t n)
{
    if (out->ptr != NULL && n < out->len) {
        out->len = n;
        out->ptr[n] = 0;
    }
}

static int base36_encode(cp2p_buf *out, const uint8_t *in, size_t len)
{
    return cp2p__basex_encode(out, B36, 36, in, len);
}

static int base36_decode(cp2p_buf *out, const char *in, size_t len)
{
    return cp2p__basex_decode(out, B36, 36, in, len);
}

int cp2p_multibase_encode(cp2p_buf *out, char base, const uint8_t *in, size_t len)
{
    size_t start = out->len;
    int rc;
    switch (base) {
    case CP2P_MULTIBASE_BASE16:
    case CP2P_MULTIBASE_BASE32:
    case CP2P_MULTIBASE_BASE36:
    case CP2P_MULTIBASE_BASE58BTC:
    case CP2P_MULTIBASE_BASE64URL:
        break;
    default:
        return CP2P_ENOTSUP;
    }
    if ((rc = cp2p_buf_append_byte(out, (uint8_t)base)) != 0) {
        return rc;
    }
    switch (base) {
    case CP2P_MULTIBASE_BASE16:
        rc = cp2p_hex_encode(out, in, len);
        break;
    case CP2P_MULTIBASE_BASE32:
        rc = cp2p_base32_encode(out, in, len);
        break;
    case CP2P_MULTIBASE_BASE36:
        rc = base36_encode(out, in, len);
        break;
    case CP2P_MULTIBASE_BASE58BTC:
        rc = cp2p_base58btc_encode(out, in, len);
        break;
    default:
        rc = cp2p_base64url_encode(out, in, len);
        break;
    }
    if (rc != 0) {
        truncate_to(out, start);
    }
    return rc;
}

int cp2p_multibase_decode(cp2p_buf *out, const char *s, size_t len)
{
    size_t start = out->len;
    int rc;
    if (len == 0) {
        return CP2P_EINVAL;
    }
    switch (s[0]) {
    case CP2P_MULTIBASE_BASE16:
        rc = cp2p_hex_decode(out, s + 1, len - 1);
        break;
    case CP2P_MULTIBASE_BASE32:
        rc = cp2p_base32_decode(out, s + 1, len - 1);
        break;
    case CP2P_MULTIBASE_BASE36:
        rc = base36_decode(out, s + 1, len - 1);
        break;
    case CP2P_MULTIBASE_BASE58BTC:
        rc = cp2p_base58btc_decode(out, s + 1, len - 1);
        break;
    case CP2P_MULTIBASE_BASE64URL:
        rc = cp2p_base64url_decode(out, s + 1, len - 1);
        break;
    default:
        return CP2P_ENOTSUP;
    }
    if (rc != 0) {
        truncate_to(out, start);
    }
    return rc;
}
