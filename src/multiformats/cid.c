/* CID (multiformats/cid): CIDv0 is a bare sha2-256 multihash shown in base58btc; CIDv1 is
 * <version varint 1><codec varint><multihash> shown in a multibase. */
#include <string.h>

#include <cp2p/multiformats.h>


/* 0x12 0x20 + 32 bytes: the only CIDv0 (multiformats/cid, "CIDv0"). */
#define CIDV0_LEN 34
/* A CIDv0 in text is 46 base58btc characters starting with "Qm". */
#define CIDV0_STR_LEN 46

static bool is_v0_multihash(const uint8_t *mh, size_t len)
{
    return len == CIDV0_LEN && mh[0] == CP2P_MULTIHASH_SHA2_256 && mh[1] == 32;
}

static bool cid_valid(const cp2p_cid *c)
{
    if (c->mh_len > CP2P_CID_MH_MAX || cp2p_multihash_validate(c->mh, c->mh_len) != 0) {
        return false;
    }
    switch (c->version) {
    case 0:
        return c->codec == CP2P_CODEC_DAG_PB && is_v0_multihash(c->mh, c->mh_len);
    case 1:
        return c->codec <= CP2P_UVARINT_MAX_VALUE;
    default:
        return false;
    }
}

int cp2p_cid_init(cp2p_cid *out, uint64_t version, uint64_t codec, const uint8_t *mh,
                  size_t mh_len)
{
    cp2p_cid c = {.version = version, .codec = codec, .mh_len = mh_len};
    if (mh_len > CP2P_CID_MH_MAX) {
        return CP2P_EINVAL;
    }
    if (mh_len > 0) {
        memcpy(c.mh, mh, mh_len);
    }
    if (!cid_valid(&c)) {
        return CP2P_EINVAL;
    }
    *out = c;
    return 0;
}

ptrdiff_t cp2p_cid_decode(const uint8_t *in, size_t len, cp2p_cid *out)
{
    uint64_t version, codec, hcode;
    cp2p_slice digest;
    ptrdiff_t n;

    if (len == 0) {
        return 0;
    }
    if (in[0] == CP2P_MULTIHASH_SHA2_256) {
        /* CIDv0: exactly a sha2-256 multihash with a 32-byte digest. */
        if (len >= 2 && in[1] != 32) {
            return CP2P_EPROTO;
        }
        if (len < CIDV0_LEN) {
            return 0;
        }
        memset(out, 0, sizeof(*out));
        out->version = 0;
        out->codec = CP2P_CODEC_DAG_PB;
        memcpy(out->mh, in, CIDV0_LEN);
        out->mh_len = CIDV0_LEN;
        return CIDV0_LEN;
    }
    n = cp2p_uvarint_decode(in, len, &version);
    if (n <= 0) {
        return n;
    }
    if (version != 1) {
        return CP2P_EPROTO; /* 0 is not a prefix; 2 and 3 are reserved; others malformed */
    }
    size_t off = (size_t)n;
    n = cp2p_uvarint_decode(in + off, len - off, &codec);
    if (n <= 0) {
        return n;
    }
    off += (size_t)n;
    n = cp2p_multihash_decode(in + off, len - off, &hcode, &digest);
    if (n <= 0) {
        return n;
    }
    /* A multihash of at most CP2P_MULTIHASH_MAX bytes always fits the struct. */
    memset(out, 0, sizeof(*out));
    out->version = 1;
    out->codec = codec;
    memcpy(out->mh, in + off, (size_t)n);
    out->mh_len = (size_t)n;
    return (ptrdiff_t)(off + (size_t)n);
}

int cp2p_cid_from_bytes(const uint8_t *in, size_t len, cp2p_cid *out)
{
    cp2p_cid c;
    ptrdiff_t n = cp2p_cid_decode(in, len, &c);
    if (n <= 0 || (size_t)n != len) {
        return CP2P_EPROTO;
    }
    *out = c;
    return 0;
}

int cp2p_cid_encode(const cp2p_cid *cid, cp2p_buf *out)
{
    uint8_t hdr[2 * CP2P_UVARINT_MAX];
    size_t n = 0;
    if (!cid_valid(cid)) {
        return CP2P_EINVAL;
    }
    if (cid->version == 1) {
        n = cp2p_uvarint_encode(hdr, 1);
        n += cp2p_uvarint_encode(hdr + n, cid->codec);
    }
    int rc = cp2p_buf_reserve(out, n + cid->mh_len);
    if (rc != 0) {
        return rc;
    }
    if (n > 0 && (rc = cp2p_buf_append(out, hdr, n)) != 0) {
        return rc;
    }
    return cp2p_buf_append(out, cid->mh, cid->mh_len);
}

/* The binary form into a fixed array; *cid must be valid. */
static size_t cid_bytes(const cp2p_cid *cid, uint8_t out[2 * CP2P_UVARINT_MAX + CP2P_CID_MH_MAX])
{
    size_t n = 0;
    if (cid->version == 1) {
        n = cp2p_uvarint_encode(out, 1);
        n += cp2p_uvarint_encode(out + n, cid->codec);
    }
    memcpy(out + n, cid->mh, cid->mh_len);
    return n + cid->mh_len;
}

int cp2p_cid_to_string(const cp2p_cid *cid, cp2p_buf *out)
{
    if (!cid_valid(cid)) {
        return CP2P_EINVAL;
    }
    if (cid->version == 0) {
        return cp2p_base58btc_encode(out, cid->mh, cid->mh_len);
    }
    return cp2p_cid_to_string_base(cid, CP2P_MULTIBASE_BASE32, out);
}

int cp2p_cid_to_string_base(const cp2p_cid *cid, char base, cp2p_buf *out)
{
    uint8_t bin[2 * CP2P_UVARINT_MAX + CP2P_CID_MH_MAX];
    if (!cid_valid(cid) || cid->version == 0) {
        return CP2P_EINVAL;
    }
    size_t n = cid_bytes(cid, bin);
    return cp2p_multibase_encode(out, base, bin, n);
}

int cp2p_cid_parse(const char *s, size_t len, cp2p_cid *out)
{
    cp2p_buf b;
    cp2p_cid c;
    int rc;

    if (len == 0 || len >= CP2P_CID_STR_MAX) {
        return CP2P_EINVAL;
    }
    cp2p_buf_init(&b, CP2P_CID_STR_MAX);
    if (len == CIDV0_STR_LEN && s[0] == 'Q' && s[1] == 'm') {
        rc = cp2p_base58btc_decode(&b, s, len);
        if (rc == 0 && !is_v0_multihash(b.ptr, b.len)) {
            rc = CP2P_EINVAL;
        }
        if (rc == 0) {
            rc = cp2p_cid_init(&c, 0, CP2P_CODEC_DAG_PB, b.ptr, b.len);
        }
    } else {
        rc = cp2p_multibase_decode(&b, s, len);
        /* A decoded first byte 0x12 would be a multibase-encoded CIDv0, which the spec
         * forbids ("there will be no CIDv18"). */
        if (rc == 0 && (b.len == 0 || b.ptr[0] == CP2P_MULTIHASH_SHA2_256)) {
            rc = CP2P_EINVAL;
        }
        if (rc == 0 && cp2p_cid_from_bytes(b.ptr, b.len, &c) != 0) {
            rc = CP2P_EINVAL;
        }
    }
    cp2p_buf_fini(&b);
    if (rc == CP2P_ELIMIT) {
        rc = CP2P_EINVAL; /* decoded bytes too long to be a CID */
    }
    if (rc == 0) {
        *out = c;
    }
    return rc;
}

bool cp2p_cid_equal(const cp2p_cid *a, const cp2p_cid *b)
{
    return a->version == b->version && a->codec == b->codec && a->mh_len == b->mh_len &&
           a->mh_len <= CP2P_CID_MH_MAX && memcmp(a->mh, b->mh, a->mh_len) == 0;
}
