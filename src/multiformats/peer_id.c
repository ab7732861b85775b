/* Peer IDs (libp2p/specs peer-ids/peer-ids.md): validation and the two text forms. */
#include <string.h>

#include <cp2p/multiformats.h>
#include <cp2p/peer_id.h>

#include "util/basex.h"

/* peer-ids spec, "Peer Ids": a key whose encoding is at most 42 bytes is inlined with the
 * identity multihash; longer keys are hashed with sha2-256. */
#define INLINE_KEY_MAX 42
#define SHA256_LEN 32

static const char B58[] = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

/* Returns 0 if in[0..len) is a valid peer ID multihash, with the digest in *digest. */
static int validate(const uint8_t *in, size_t len, uint64_t *code, cp2p_slice *digest)
{
    if (len == 0 || len > CP2P_PEER_ID_MAX) {
        return CP2P_EPROTO;
    }
    ptrdiff_t n = cp2p_multihash_decode(in, len, code, digest);
    if (n <= 0 || (size_t)n != len) {
        return CP2P_EPROTO;
    }
    switch (*code) {
    case CP2P_MULTIHASH_IDENTITY:
        /* An empty identity digest cannot hold a key. */
        return (digest->len >= 1 && digest->len <= INLINE_KEY_MAX) ? 0 : CP2P_EPROTO;
    case CP2P_MULTIHASH_SHA2_256:
        return digest->len == SHA256_LEN ? 0 : CP2P_EPROTO;
    default:
        return CP2P_EPROTO;
    }
}

static bool id_valid(const cp2p_peer_id *id)
{
    uint64_t code;
    cp2p_slice d;
    return validate(id->bytes, id->len, &code, &d) == 0;
}

int cp2p_peer_id_from_bytes(const uint8_t *in, size_t len, cp2p_peer_id *out)
{
    uint64_t code;
    cp2p_slice d;
    if (validate(in, len, &code, &d) != 0) {
        return CP2P_EPROTO;
    }
    memset(out, 0, sizeof(*out));
    memcpy(out->bytes, in, len);
    out->len = len;
    return 0;
}

int cp2p_peer_id_parse(const char *in, size_t len, cp2p_peer_id *out)
{
    cp2p_peer_id id;
    int rc;

    if (len == 0 || len >= CP2P_PEER_ID_STR_MAX) {
        return CP2P_EINVAL;
    }
    /* peer-ids spec, "Decoding": "1..." or "Qm..." is a bare base58btc multihash; anything
     * else must be a multibase CIDv1 with the libp2p-key codec. */
    if (in[0] == '1' || (len >= 2 && in[0] == 'Q' && in[1] == 'm')) {
        cp2p_buf b;
        cp2p_buf_init(&b, CP2P_PEER_ID_MAX + 16); /* slack for the decoder's estimate */
        rc = cp2p_base58btc_decode(&b, in, len);
        if (rc == 0) {
            rc = cp2p_peer_id_from_bytes(b.ptr, b.len, &id);
        }
        cp2p_buf_fini(&b);
    } else {
        cp2p_cid c;
        rc = cp2p_cid_parse(in, len, &c);
        if (rc == 0 && (c.version != 1 || c.codec != CP2P_CODEC_LIBP2P_KEY)) {
            rc = CP2P_EINVAL;
        }
        if (rc == 0) {
            rc = cp2p_peer_id_from_bytes(c.mh, c.mh_len, &id);
        }
    }
    if (rc == CP2P_ENOMEM) {
        return rc;
    }
    if (rc != 0) {
        return CP2P_EINVAL;
    }
    *out = id;
    return 0;
}

int cp2p_peer_id_to_base58(const cp2p_peer_id *id, cp2p_buf *out)
{
    if (!id_valid(id)) {
        return CP2P_EINVAL;
    }
    return cp2p_base58btc_encode(out, id->bytes, id->len);
}

int cp2p_peer_id_to_cid(const cp2p_peer_id *id, cp2p_buf *out)
{
    cp2p_cid c;
    if (!id_valid(id) || cp2p_cid_init(&c, 1, CP2P_CODEC_LIBP2P_KEY, id->bytes, id->len) != 0) {
        return CP2P_EINVAL;
    }
    return cp2p_cid_to_string_base(&c, CP2P_MULTIBASE_BASE32, out);
}

const char *cp2p_peer_id_str(const cp2p_peer_id *id, char out[CP2P_PEER_ID_STR_MAX])
{
    static const char invalid[] = "<invalid>";
    if (!id_valid(id)) {
        memcpy(out, invalid, sizeof(invalid));
        return out;
    }
    /* 44 bytes need at most 61 base58 characters, well inside the array. */
    size_t n = cp2p__basex_encode_raw(B58, 58, id->bytes, id->len, (uint8_t *)out,
                                  CP2P_PEER_ID_STR_MAX - 1);
    if (n == 0) {
        memcpy(out, invalid, sizeof(invalid));
        return out;
    }
    out[n] = 0;
    return out;
}

bool cp2p_peer_id_equal(const cp2p_peer_id *a, const cp2p_peer_id *b)
{
    return a->len == b->len && a->len <= CP2P_PEER_ID_MAX &&
           memcmp(a->bytes, b->bytes, a->len) == 0;
}

int cp2p_peer_id_inline_key(const cp2p_peer_id *id, cp2p_slice *out)
{
    uint64_t code;
    cp2p_slice d;
    if (validate(id->bytes, id->len, &code, &d) != 0 || code != CP2P_MULTIHASH_IDENTITY) {
        return CP2P_ENOENT;
    }
    *out = d;
    return 0;
}
