/* The node info codec and rules (src/reactor/nodeinfo.c): a round trip, CometBFT's wire bytes,
 * ValidateBasic and CompatibleWith case by case, and bad remote input (malformed protobuf,
 * fields over their limits, oversized declared length, bytes after the message, a stream cut
 * into one-byte reads). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <cp2p/codec.h>

#include "reactor/nodeinfo.h"
#include "util/alloc.h"

static cp2p_node_info sample(void)
{
    cp2p_node_info ni;
    memset(&ni, 0, sizeof(ni));
    ni.p2p_version = 8;
    ni.block_version = 11;
    ni.app_version = 1;
    snprintf(ni.node_id, sizeof(ni.node_id), "12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo");
    snprintf(ni.listen_addr, sizeof(ni.listen_addr), "/ip4/127.0.0.1/tcp/26656");
    snprintf(ni.network, sizeof(ni.network), "test-chain-1");
    snprintf(ni.version, sizeof(ni.version), "0.38.0");
    const uint8_t ch[] = {0x40, 0x20, 0x21, 0x22, 0x23, 0x30, 0x38, 0x60, 0x61, 0x00};
    memcpy(ni.channels, ch, sizeof(ch));
    ni.n_channels = sizeof(ch);
    snprintf(ni.moniker, sizeof(ni.moniker), "validator-1");
    snprintf(ni.tx_index, sizeof(ni.tx_index), "on");
    snprintf(ni.rpc_address, sizeof(ni.rpc_address), "tcp://0.0.0.0:26657");
    return ni;
}

static void round_trip(void **state)
{
    (void)state;
    cp2p_node_info ni = sample(), out;
    uint8_t wire[CP2P__NODEINFO_WIRE_MAX];
    ptrdiff_t n = cp2p__nodeinfo_encode(&ni, wire, sizeof(wire));
    assert_true(n > 0);
    cp2p__nodeinfo_reader r;
    cp2p__nodeinfo_reader_init(&r);
    const char *why = NULL;
    /* One byte at a time, as a stream may deliver it. */
    for (ptrdiff_t i = 0; i < n - 1; i++) {
        assert_int_equal(cp2p__nodeinfo_reader_feed(&r, wire + i, 1, &out, &why), 0);
    }
    assert_int_equal(cp2p__nodeinfo_reader_feed(&r, wire + n - 1, 1, &out, &why), 1);
    assert_memory_equal(&ni, &out, sizeof(ni));
    /* Anything after the one message is a protocol error. */
    assert_int_equal(cp2p__nodeinfo_reader_feed(&r, wire, 1, &out, &why), CP2P_EPROTO);
    /* Too small an output buffer. */
    assert_int_equal(cp2p__nodeinfo_encode(&ni, wire, 10), CP2P_ELIMIT);
}

/* The exact bytes CometBFT's gogoproto marshalling of the same DefaultNodeInfo gives (field
 * order 1..8, proto3: empty strings omitted, the two non-nullable messages always written),
 * hand-assembled. */
static void wire_is_cometbft(void **state)
{
    (void)state;
    cp2p_node_info ni;
    memset(&ni, 0, sizeof(ni));
    ni.p2p_version = 8;
    ni.block_version = 11;
    snprintf(ni.node_id, sizeof(ni.node_id), "ab");
    snprintf(ni.network, sizeof(ni.network), "n");
    ni.channels[0] = 0x20;
    ni.n_channels = 1;
    snprintf(ni.moniker, sizeof(ni.moniker), "m");
    static const uint8_t want[] = {
        0x15,                         /* length 21 */
        0x0a, 0x04, 0x08, 0x08, 0x10, 0x0b, /* protocol_version {p2p 8, block 11} */
        0x12, 0x02, 'a', 'b',         /* default_node_id */
        0x22, 0x01, 'n',              /* network */
        0x32, 0x01, 0x20,             /* channels */
        0x3a, 0x01, 'm',              /* moniker */
        0x42, 0x00,                   /* other {} */
    };
    uint8_t wire[CP2P__NODEINFO_WIRE_MAX];
    ptrdiff_t n = cp2p__nodeinfo_encode(&ni, wire, sizeof(wire));
    assert_int_equal(n, sizeof(want));
    assert_memory_equal(wire, want, sizeof(want));
}

static void validate_basic(void **state)
{
    (void)state;
    const char *why = NULL;
    cp2p_node_info ni = sample();
    assert_int_equal(cp2p__nodeinfo_check(&ni, &why), 0);
    ni.moniker[0] = 0;
    assert_int_equal(cp2p__nodeinfo_check(&ni, &why), CP2P_EINVAL);
    snprintf(ni.moniker, sizeof(ni.moniker), "   ");
    assert_int_equal(cp2p__nodeinfo_check(&ni, &why), CP2P_EINVAL);
    ni = sample();
    ni.moniker[2] = '\n';
    assert_int_equal(cp2p__nodeinfo_check(&ni, &why), CP2P_EINVAL);
    ni = sample();
    ni.channels[1] = ni.channels[0];
    assert_int_equal(cp2p__nodeinfo_check(&ni, &why), CP2P_EINVAL);
    assert_string_equal(why, "duplicate channel");
    ni = sample();
    ni.n_channels = CP2P_NODEINFO_CHANNELS_MAX + 1;
    assert_int_equal(cp2p__nodeinfo_check(&ni, &why), CP2P_EINVAL);
    ni = sample();
    snprintf(ni.tx_index, sizeof(ni.tx_index), "yes");
    assert_int_equal(cp2p__nodeinfo_check(&ni, &why), CP2P_EINVAL);
    ni = sample();
    snprintf(ni.version, sizeof(ni.version), " ");
    assert_int_equal(cp2p__nodeinfo_check(&ni, &why), CP2P_EINVAL);
    ni.version[0] = 0; /* empty is fine */
    assert_int_equal(cp2p__nodeinfo_check(&ni, &why), 0);
    ni = sample();
    memset(ni.network, 'x', sizeof(ni.network)); /* no NUL */
    assert_int_equal(cp2p__nodeinfo_check(&ni, &why), CP2P_EINVAL);
    /* encode refuses what fails the check */
    uint8_t wire[CP2P__NODEINFO_WIRE_MAX];
    assert_int_equal(cp2p__nodeinfo_encode(&ni, wire, sizeof(wire)), CP2P_EINVAL);
}

static void compatible_with(void **state)
{
    (void)state;
    const char *why = NULL;
    cp2p_node_info a = sample(), b = sample();
    assert_int_equal(cp2p__nodeinfo_compatible(&a, &b, &why), CP2P__NI_OK);
    b.p2p_version = 7; /* only the block version counts, as in CometBFT */
    b.app_version = 9;
    assert_int_equal(cp2p__nodeinfo_compatible(&a, &b, &why), CP2P__NI_OK);
    b.block_version = 10;
    assert_int_equal(cp2p__nodeinfo_compatible(&a, &b, &why), CP2P__NI_BLOCK_VERSION);
    assert_string_equal(why, "incompatible block version");
    b = sample();
    snprintf(b.network, sizeof(b.network), "other-chain");
    assert_int_equal(cp2p__nodeinfo_compatible(&a, &b, &why), CP2P__NI_NETWORK);
    assert_string_equal(why, "incompatible network");
    b = sample();
    b.channels[0] = 0x99;
    b.n_channels = 1;
    assert_int_equal(cp2p__nodeinfo_compatible(&a, &b, &why), CP2P__NI_NO_CHANNELS);
    b.channels[1] = 0x30;
    b.n_channels = 2;
    assert_int_equal(cp2p__nodeinfo_compatible(&a, &b, &why), CP2P__NI_OK);
    a.n_channels = 0; /* we serve none: anyone on our network and version will do */
    b.n_channels = 0;
    assert_int_equal(cp2p__nodeinfo_compatible(&a, &b, &why), CP2P__NI_OK);
}

static int feed_all(const uint8_t *b, size_t n, const char **why)
{
    cp2p__nodeinfo_reader r;
    cp2p_node_info out;
    cp2p__nodeinfo_reader_init(&r);
    return cp2p__nodeinfo_reader_feed(&r, b, n, &out, why);
}

/* A protobuf field appended to a valid body: tag, then a length-delimited payload. */
static size_t with_field(uint8_t *out, uint8_t tag, const uint8_t *val, size_t vlen)
{
    cp2p_node_info ni = sample();
    uint8_t wire[CP2P__NODEINFO_WIRE_MAX];
    ptrdiff_t n = cp2p__nodeinfo_encode(&ni, wire, sizeof(wire));
    assert_true(n > 2);
    uint64_t body;
    ptrdiff_t pre = cp2p_uvarint_decode(wire, (size_t)n, &body);
    assert_true(pre > 0);
    uint8_t lenb[CP2P_UVARINT_MAX];
    size_t ll = cp2p_uvarint_encode(lenb, vlen);
    size_t nb = body + 1 + ll + vlen;
    size_t k = cp2p_uvarint_encode(out, nb);
    memcpy(out + k, wire + pre, body);
    k += body;
    out[k++] = tag;
    memcpy(out + k, lenb, ll);
    k += ll;
    memcpy(out + k, val, vlen);
    return k + vlen;
}

static void bad_input(void **state)
{
    (void)state;
    const char *why = NULL;
    static uint8_t buf[2 * CP2P__NODEINFO_WIRE_MAX];
    /* A declared length over 10 KiB, refused before the body comes. */
    size_t k = cp2p_uvarint_encode(buf, CP2P_NODEINFO_MAX + 1);
    assert_int_equal(feed_all(buf, k, &why), CP2P_ELIMIT);
    /* Non-minimal varint. */
    const uint8_t nonmin[] = {0x80, 0x00};
    assert_int_equal(feed_all(nonmin, sizeof(nonmin), &why), CP2P_EPROTO);
    /* Not a protobuf: a field with wire type 7. */
    const uint8_t junk[] = {0x02, 0x0f, 0x01};
    assert_int_equal(feed_all(junk, sizeof(junk), &why), CP2P_EPROTO);
    /* An empty message: no moniker, fails ValidateBasic. */
    const uint8_t empty[] = {0x00};
    assert_int_equal(feed_all(empty, sizeof(empty), &why), CP2P_EPROTO);
    /* A moniker (field 7, the last of its kind wins) over its limit. */
    static uint8_t big[CP2P_NODEINFO_MONIKER_MAX + 1];
    memset(big, 'm', sizeof(big));
    k = with_field(buf, 0x3a, big, sizeof(big));
    assert_int_equal(feed_all(buf, k, &why), CP2P_ELIMIT);
    /* A NUL inside the network. */
    const uint8_t nul[] = {'a', 0, 'b'};
    k = with_field(buf, 0x22, nul, sizeof(nul));
    assert_int_equal(feed_all(buf, k, &why), CP2P_EPROTO);
    /* Non-ASCII moniker. */
    const uint8_t utf8[] = {0xc3, 0xa9};
    k = with_field(buf, 0x3a, utf8, sizeof(utf8));
    assert_int_equal(feed_all(buf, k, &why), CP2P_EPROTO);
    /* Too many channels. */
    static uint8_t chans[CP2P_NODEINFO_CHANNELS_MAX + 1];
    for (size_t i = 0; i < sizeof(chans); i++) {
        chans[i] = (uint8_t)i;
    }
    k = with_field(buf, 0x32, chans, sizeof(chans));
    assert_int_equal(feed_all(buf, k, &why), CP2P_ELIMIT);
    /* A body of exactly 10 KiB (padding in an unknown field) is accepted; one byte more is
     * not. */
    static uint8_t pad[CP2P_NODEINFO_MAX];
    memset(pad, 'p', sizeof(pad));
    cp2p_node_info ni = sample();
    uint8_t wire[CP2P__NODEINFO_WIRE_MAX];
    ptrdiff_t n = cp2p__nodeinfo_encode(&ni, wire, sizeof(wire));
    size_t base = (size_t)n - 2; /* body length (prefix of 2 bytes for this size) */
    size_t padlen = CP2P_NODEINFO_MAX - base - 1 - 2; /* tag + 2-byte length */
    k = with_field(buf, 0x4a, pad, padlen);
    assert_int_equal(feed_all(buf, k, &why), 1);
    k = with_field(buf, 0x4a, pad, padlen + 1);
    assert_int_equal(feed_all(buf, k, &why), CP2P_ELIMIT);
    /* Bytes after the message in the same read. */
    k = (size_t)n;
    memcpy(buf, wire, k);
    buf[k++] = 0;
    assert_int_equal(feed_all(buf, k, &why), CP2P_EPROTO);
    assert_string_equal(why, "bytes after the node info");
}

/* Every allocation of the decoder failing in turn: CP2P_ENOMEM ("out of memory"), never a
 * crash or a leak (ASan), and never taken for malformed input. */
static void allocation_failures(void **state)
{
    (void)state;
    cp2p_node_info ni = sample(), out;
    uint8_t wire[CP2P__NODEINFO_WIRE_MAX];
    ptrdiff_t n = cp2p__nodeinfo_encode(&ni, wire, sizeof(wire));
    uint64_t body;
    ptrdiff_t pre = cp2p_uvarint_decode(wire, (size_t)n, &body);
    assert_true(pre > 0 && (size_t)pre + body == (size_t)n);
    const char *why = NULL;
    int failures = 0;
    for (long k = 1; k < 100; k++) {
        cp2p__alloc_fail_after(k);
        int rc = cp2p__nodeinfo_decode(wire + pre, body, &out, &why);
        cp2p__alloc_fail_after(0);
        if (rc == 0) {
            assert_memory_equal(&ni, &out, sizeof(ni));
            break;
        }
        assert_int_equal(rc, CP2P_ENOMEM);
        assert_string_equal(why, "out of memory");
        failures++;
    }
    assert_true(failures > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trip),      cmocka_unit_test(wire_is_cometbft),
        cmocka_unit_test(validate_basic),  cmocka_unit_test(compatible_with),
        cmocka_unit_test(bad_input),       cmocka_unit_test(allocation_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
