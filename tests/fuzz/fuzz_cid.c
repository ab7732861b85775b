/* Fuzz CID (binary and text), multihash and multibase decoding. Accepted input must
 * re-encode to what was accepted and parse back to the same value. */
#include <stdlib.h>
#include <string.h>

#include <cp2p/multiformats.h>

#include "util/limits.h"

static void cid_round_trip(const cp2p_cid *c)
{
    cp2p_buf bin, txt;
    cp2p_cid back;

    cp2p_buf_init(&bin, 256);
    cp2p_buf_init(&txt, CP2P_CID_STR_MAX);
    if (cp2p_cid_encode(c, &bin) != 0 || cp2p_cid_from_bytes(bin.ptr, bin.len, &back) != 0 ||
        !cp2p_cid_equal(c, &back)) {
        abort();
    }
    if (cp2p_cid_to_string(c, &txt) != 0 || txt.len >= CP2P_CID_STR_MAX ||
        cp2p_cid_parse((const char *)txt.ptr, txt.len, &back) != 0 ||
        !cp2p_cid_equal(c, &back)) {
        abort();
    }
    if (c->version == 1) {
        static const char bases[] = {'f', 'b', 'k', 'z', 'u'};
        for (size_t i = 0; i < sizeof(bases); i++) {
            cp2p_buf_reset(&txt);
            if (cp2p_cid_to_string_base(c, bases[i], &txt) != 0 ||
                cp2p_cid_parse((const char *)txt.ptr, txt.len, &back) != 0 ||
                !cp2p_cid_equal(c, &back)) {
                abort();
            }
        }
    }
    cp2p_buf_fini(&bin);
    cp2p_buf_fini(&txt);
}

static void multibase_check(const uint8_t *data, size_t size)
{
    cp2p_buf dec, enc, dec2;
    cp2p_buf_init(&dec, 4096);
    if (cp2p_multibase_decode(&dec, (const char *)data, size) != 0) {
        cp2p_buf_fini(&dec);
        return;
    }
    cp2p_buf_init(&enc, 8192);
    cp2p_buf_init(&dec2, 4096);
    /* Re-encoding in the same base decodes to the same bytes (the text may differ in case);
     * decoders and encoders share their length bounds, so whatever decodes re-encodes. */
    int rc = cp2p_multibase_encode(&enc, (char)data[0], dec.ptr, dec.len);
    if (rc != 0 || cp2p_multibase_decode(&dec2, (const char *)enc.ptr, enc.len) != 0 ||
        dec.len != dec2.len || (dec.len > 0 && memcmp(dec.ptr, dec2.ptr, dec.len) != 0)) {
        abort();
    }
    cp2p_buf_fini(&dec);
    cp2p_buf_fini(&enc);
    cp2p_buf_fini(&dec2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cp2p_cid c;
    ptrdiff_t n = cp2p_cid_decode(data, size, &c);
    if (n > 0) {
        cp2p_buf bin;
        cp2p_buf_init(&bin, 256);
        if ((size_t)n > size || cp2p_cid_encode(&c, &bin) != 0 || bin.len != (size_t)n ||
            memcmp(bin.ptr, data, bin.len) != 0) {
            abort(); /* decode accepted a non-canonical encoding */
        }
        cp2p_buf_fini(&bin);
        cid_round_trip(&c);
    }
    if (cp2p_cid_parse((const char *)data, size, &c) == 0) {
        cid_round_trip(&c);
    }
    uint64_t code;
    cp2p_slice d;
    n = cp2p_multihash_decode(data, size, &code, &d);
    if (n > 0) {
        cp2p_buf mh;
        cp2p_buf_init(&mh, 128);
        if (cp2p_multihash_encode(&mh, code, d.ptr, d.len) != 0 || mh.len != (size_t)n ||
            memcmp(mh.ptr, data, mh.len) != 0) {
            abort();
        }
        cp2p_buf_fini(&mh);
    }
    multibase_check(data, size);
    return 0;
}
