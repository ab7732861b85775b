/* Multiaddr: text and binary forms, js (v13) compatibility, limits, encapsulation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <cp2p/multiaddr.h>
#include <cp2p/multiformats.h>

#include "util/alloc.h"
#include "util/limits.h"

static cp2p_buf unhex(const char *hex)
{
    cp2p_buf b;
    cp2p_buf_init(&b, 8192);
    assert_int_equal(cp2p_hex_decode(&b, hex, strlen(hex)), 0);
    return b;
}

static cp2p_multiaddr *must_parse(const char *s)
{
    cp2p_multiaddr *ma = NULL;
    assert_int_equal(cp2p_multiaddr_parse(s, strlen(s), &ma), 0);
    assert_non_null(ma);
    return ma;
}

/* Assert that ma prints as `want`. */
static void assert_text(const cp2p_multiaddr *ma, const char *want)
{
    cp2p_buf t;
    cp2p_buf_init(&t, CP2P_MULTIADDR_STR_MAX);
    assert_int_equal(cp2p_multiaddr_to_string(ma, &t), 0);
    assert_string_equal((const char *)t.ptr, want);
    cp2p_buf_fini(&t);
}

/* {input text, text printed from its bytes, bytes in hex}. Generated with
 * @multiformats/multiaddr 13.0.3: multiaddr(in).bytes and multiaddr(bytes).toString(). */
static const struct {
    const char *in;
    const char *canon;
    const char *hex;
} JS_VEC[] = {
    {"/ip4/192.0.2.42/tcp/443",
     "/ip4/192.0.2.42/tcp/443",
     "04c000022a0601bb"},
    {"/ip4/0.0.0.0/tcp/0",
     "/ip4/0.0.0.0/tcp/0",
     "0400000000060000"},
    {"/ip4/255.255.255.255/udp/65535",
     "/ip4/255.255.255.255/udp/65535",
     "04ffffffff9102ffff"},
    {"/ip4/127.0.0.1/tcp/4001/p2p/QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N",
     "/ip4/127.0.0.1/tcp/4001/p2p/QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N",
     "047f000001060fa1a5032212209dff3b17d74cf4d38a50d8b6383e92d181a10395a5e73a726dcccbd21b"
     "f6f0b9"},
    {"/ip4/1.2.3.4/",
     "/ip4/1.2.3.4",
     "0401020304"},
    {"/ip4/1.2.3.4/tcp/80///",
     "/ip4/1.2.3.4/tcp/80",
     "0401020304060050"},
    {"/ip6/::1/tcp/4001",
     "/ip6/::1/tcp/4001",
     "2900000000000000000000000000000001060fa1"},
    {"/ip6/::",
     "/ip6/::",
     "2900000000000000000000000000000000"},
    {"/ip6/1::",
     "/ip6/1::",
     "2900010000000000000000000000000000"},
    {"/ip6/0:0:0:0:0:0:0:1",
     "/ip6/::1",
     "2900000000000000000000000000000001"},
    {"/ip6/2001:DB8::FF00:42:8329",
     "/ip6/2001:db8::ff00:42:8329",
     "2920010db8000000000000ff0000428329"},
    {"/ip6/2001:0db8:0000:0000:0000:ff00:0042:8329",
     "/ip6/2001:db8::ff00:42:8329",
     "2920010db8000000000000ff0000428329"},
    {"/ip6/::ffff:1.2.3.4",
     "/ip6/::ffff:102:304",
     "2900000000000000000000ffff01020304"},
    {"/ip6/::1.2.3.4",
     "/ip6/::102:304",
     "2900000000000000000000000001020304"},
    {"/ip6/1:2:3:4:5:6:1.2.3.4",
     "/ip6/1:2:3:4:5:6:102:304",
     "2900010002000300040005000601020304"},
    {"/ip6/1:0:0:2:0:0:3:4",
     "/ip6/1::2:0:0:3:4",
     "2900010000000000020000000000030004"},
    {"/ip6/1:0:0:0:1:0:0:0",
     "/ip6/1::1:0:0:0",
     "2900010000000000000001000000000000"},
    {"/ip6/::1:2:3:4:5:6:7",
     "/ip6/0:1:2:3:4:5:6:7",
     "2900000001000200030004000500060007"},
    {"/ip6/1:2:3:4:5:6:7::",
     "/ip6/1:2:3:4:5:6:7:0",
     "2900010002000300040005000600070000"},
    {"/ip6/fe80::1:2",
     "/ip6/fe80::1:2",
     "29fe800000000000000000000000010002"},
    {"/ip6/1:2:3:4:5:6:7:8",
     "/ip6/1:2:3:4:5:6:7:8",
     "2900010002000300040005000600070008"},
    {"/ip6zone/eth0/ip6/fe80::1/udp/1234/quic-v1",
     "/ip6zone/eth0/ip6/fe80::1/udp/1234/quic-v1",
     "2a046574683029fe800000000000000000000000000001910204d2cd03"},
    {"/ipcidr/24",
     "/ipcidr/24",
     "2b18"},
    {"/ipcidr/0",
     "/ipcidr/0",
     "2b00"},
    {"/ipcidr/255",
     "/ipcidr/255",
     "2bff"},
    {"/dns/example.com/tcp/443/wss",
     "/dns/example.com/tcp/443/wss",
     "350b6578616d706c652e636f6d0601bbde03"},
    {"/dns4/libp2p.io/tcp/443/tls/ws",
     "/dns4/libp2p.io/tcp/443/tls/ws",
     "36096c69627032702e696f0601bbc003dd03"},
    {"/dns6/x.y/udp/1/quic",
     "/dns6/x.y/udp/1/quic",
     "3703782e7991020001cc03"},
    {"/dnsaddr/bootstrap.libp2p.io/p2p/QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJN",
     "/dnsaddr/bootstrap.libp2p.io/p2p/QmNnooDu7bfjPFoTZYxMNLWUQJyrVwtbZg5gBMjTezGAJN",
     "3813626f6f7473747261702e6c69627032702e696fa50322122006b3608aa000274049eb28ad8e793a26"
     "ff6fab281a7d3bd77cd18eb745dfaabb"},
    {"/dns/\xc3\xa9.com",
     "/dns/\xc3\xa9.com",
     "3506c3a92e636f6d"},
    {"/dns4/a b",
     "/dns4/a b",
     "3603612062"},
    {"/dns4/a%2Fb",
     "/dns4/a%2Fb",
     "36056125324662"},
    {"/memory/node-1",
     "/memory/node-1",
     "8906066e6f64652d31"},
    {"/memory/a/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA",
     "/memory/a/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA",
     "89060161a503260024080112202ffa35a99d3a3cfbb17bb7c1dc5561b18a8dcca4df38dc613ea859c37eb1336b"},
    {"/unix/%2Ftmp%2Fp2p.sock",
     "/unix/%2Ftmp%2Fp2p.sock",
     "90030d2f746d702f7032702e736f636b"},
    {"/unix/a%20b",
     "/unix/a%20b",
     "900303612062"},
    {"/unix/\xc3\xa9",
     "/unix/%C3%A9",
     "900302c3a9"},
    {"/unix/!'()*~-_.",
     "/unix/!'()*~-_.",
     "900309212728292a7e2d5f2e"},
    {"/unix/%e2%82%ac",
     "/unix/%E2%82%AC",
     "900303e282ac"},
    {"/ipfs/QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N",
     "/p2p/QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N",
     "a5032212209dff3b17d74cf4d38a50d8b6383e92d181a10395a5e73a726dcccbd21bf6f0b9"},
    {"/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA",
     "/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA",
     "a503260024080112202ffa35a99d3a3cfbb17bb7c1dc5561b18a8dcca4df38dc613ea859c37eb1336b"},
    {"/p2p/bafzbeie5745rpv2m6tjyuugywy4d5ewrqgqqhfnf445he3omzpjbx5xqxe",
     "/p2p/QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N",
     "a5032212209dff3b17d74cf4d38a50d8b6383e92d181a10395a5e73a726dcccbd21bf6f0b9"},
    {"/p2p/k51qzi5uqu5dgy8qsq67hbz73jqkw87l3fgf4a91qb0d9b5173tir7n4vxk1oe",
     "/p2p/12D3KooWBtg3aaRMjxwedh83aGiUkwSxDwUZkzuJcfaqUmo7R3pq",
     "a503260024080112201ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e"},
    {"/ip4/1.2.3.4/tcp/1/p2p/QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N/p2p-circuit/p2"
     "p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA",
     "/ip4/1.2.3.4/tcp/1/p2p/QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N/p2p-circuit/p2"
     "p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA",
     "0401020304060001a5032212209dff3b17d74cf4d38a50d8b6383e92d181a10395a5e73a726dcccbd21b"
     "f6f0b9a202a503260024080112202ffa35a99d3a3cfbb17bb7c1dc5561b18a8dcca4df38dc613ea859c3"
     "7eb1336b"},
    {"/ip4/1.2.3.4/udp/4001/quic-v1/webtransport/certhash/uEiDDq4_xNyDorZBH3TlGazyJdOWSwvo"
     "4PUo5YHFMrvDE8g",
     "/ip4/1.2.3.4/udp/4001/quic-v1/webtransport/certhash/uEiDDq4_xNyDorZBH3TlGazyJdOWSwvo"
     "4PUo5YHFMrvDE8g",
     "040102030491020fa1cd03d103d203221220c3ab8ff13720e8ad9047dd39466b3c8974e592c2fa383d4a"
     "3960714caef0c4f2"},
    {"/certhash/zQmbWTwYGcmdyK9CYfNBcfs9nhZs17a6FQ4Y8oea278xx41",
     "/certhash/uEiDDq4_xNyDorZBH3TlGazyJdOWSwvo4PUo5YHFMrvDE8g",
     "d203221220c3ab8ff13720e8ad9047dd39466b3c8974e592c2fa383d4a3960714caef0c4f2"},
    {"/certhash/f1220c3ab8ff13720e8ad9047dd39466b3c8974e592c2fa383d4a3960714caef0c4f2",
     "/certhash/uEiDDq4_xNyDorZBH3TlGazyJdOWSwvo4PUo5YHFMrvDE8g",
     "d203221220c3ab8ff13720e8ad9047dd39466b3c8974e592c2fa383d4a3960714caef0c4f2"},
    {"/ip4/1.2.3.4/udp/1/webrtc-direct/certhash/uEiDDq4_xNyDorZBH3TlGazyJdOWSwvo4PUo5YHFMr"
     "vDE8g",
     "/ip4/1.2.3.4/udp/1/webrtc-direct/certhash/uEiDDq4_xNyDorZBH3TlGazyJdOWSwvo4PUo5YHFMr"
     "vDE8g",
     "0401020304910200019802d203221220c3ab8ff13720e8ad9047dd39466b3c8974e592c2fa383d4a3960"
     "714caef0c4f2"},
    {"/ip4/1.2.3.4/tcp/80/http",
     "/ip4/1.2.3.4/tcp/80/http",
     "0401020304060050e003"},
    {"/ip4/1.2.3.4/tcp/443/https",
     "/ip4/1.2.3.4/tcp/443/https",
     "04010203040601bbbb03"},
    {"/ip4/1.2.3.4/tcp/443/tls/sni/example.com/http",
     "/ip4/1.2.3.4/tcp/443/tls/sni/example.com/http",
     "04010203040601bbc003c1030b6578616d706c652e636f6de003"},
    {"/onion/timaq4ygg2iegci7:1234",
     "/onion/timaq4ygg2iegci7:1234",
     "bc039a18087306369043091f04d2"},
    {"/onion3/vww6ybal4bd7szmgncyruucpgfkqahzddi37ktceo3ah7ngmcopnpyyd:1234",
     "/onion3/vww6ybal4bd7szmgncyruucpgfkqahzddi37ktceo3ah7ngmcopnpyyd:1234",
     "bd03adadec040be047f9658668b11a504f3155001f231a37f54c4476c07fb4cc139ed7e30304d2"},
    {"/sctp/1/dccp/2",
     "/sctp/1/dccp/2",
     "84010001210002"},
    {"/udt",
     "/udt",
     "ad02"},
    {"/utp",
     "/utp",
     "ae02"},
    {"/noise",
     "/noise",
     "c603"},
    {"/webrtc",
     "/webrtc",
     "9902"},
    {"/p2p-websocket-star",
     "/p2p-websocket-star",
     "df03"},
    {"/p2p-stardust",
     "/p2p-stardust",
     "9502"},
    {"/p2p-webrtc-star",
     "/p2p-webrtc-star",
     "9302"},
    {"/p2p-webrtc-direct",
     "/p2p-webrtc-direct",
     "9402"},
    {"/p2p-circuit",
     "/p2p-circuit",
     "a202"},
    {"/tls/tls",
     "/tls/tls",
     "c003c003"},
};

static void multiaddr_js_vectors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(JS_VEC) / sizeof(JS_VEC[0]); i++) {
        cp2p_multiaddr *a = must_parse(JS_VEC[i].in), *b = NULL, *c = NULL;
        cp2p_buf want = unhex(JS_VEC[i].hex);
        cp2p_slice s = cp2p_multiaddr_bytes(a);
        assert_int_equal(s.len, want.len);
        assert_memory_equal(s.ptr, want.ptr, want.len);
        assert_text(a, JS_VEC[i].canon);
        /* The binary form parses back and prints the same text. */
        assert_int_equal(cp2p_multiaddr_from_bytes(want.ptr, want.len, &b), 0);
        assert_true(cp2p_multiaddr_equal(a, b));
        assert_text(b, JS_VEC[i].canon);
        /* The canonical text parses to the same bytes. */
        c = must_parse(JS_VEC[i].canon);
        assert_true(cp2p_multiaddr_equal(a, c));
        cp2p_multiaddr_free(a);
        cp2p_multiaddr_free(b);
        cp2p_multiaddr_free(c);
        cp2p_buf_fini(&want);
    }
}

/* multiformats/multiaddr test/multiaddr.feature, "Simple string form" / "Simple packed form". */
static void multiaddr_spec_example_components(void **state)
{
    cp2p_multiaddr *ma = must_parse("/ip4/192.0.2.42/tcp/443");
    cp2p_multiaddr_component c;
    cp2p_buf t;
    (void)state;
    assert_int_equal(cp2p_multiaddr_count(ma), 2);
    assert_int_equal(cp2p_multiaddr_component_at(ma, 0, &c), 0);
    assert_int_equal(c.code, CP2P_MA_IP4);
    assert_string_equal(c.name, "ip4");
    assert_int_equal(c.value.len, 4);
    assert_memory_equal(c.value.ptr, "\xc0\x00\x02\x2a", 4);
    cp2p_buf_init(&t, 64);
    assert_int_equal(cp2p_multiaddr_component_value_string(&c, &t), 0);
    assert_string_equal((const char *)t.ptr, "192.0.2.42");
    assert_int_equal(cp2p_multiaddr_component_at(ma, 1, &c), 0);
    assert_int_equal(c.code, CP2P_MA_TCP);
    assert_string_equal(c.name, "tcp");
    assert_memory_equal(c.value.ptr, "\x01\xbb", 2);
    cp2p_buf_reset(&t);
    assert_int_equal(cp2p_multiaddr_component_value_string(&c, &t), 0);
    assert_string_equal((const char *)t.ptr, "443");
    assert_int_equal(cp2p_multiaddr_component_at(ma, 2, &c), CP2P_ENOENT);
    cp2p_buf_fini(&t);
    cp2p_multiaddr_free(ma);
}

static void multiaddr_value_strings(void **state)
{
    cp2p_multiaddr *ma = must_parse("/unix/%2Ftmp%2Fa%20b.sock/p2p-circuit/ip6/::ffff:1.2.3.4");
    cp2p_multiaddr_component c;
    cp2p_buf t;
    (void)state;
    cp2p_buf_init(&t, 256);
    assert_int_equal(cp2p_multiaddr_component_at(ma, 0, &c), 0);
    assert_int_equal(c.value.len, strlen("/tmp/a b.sock"));
    assert_memory_equal(c.value.ptr, "/tmp/a b.sock", c.value.len);
    assert_int_equal(cp2p_multiaddr_component_value_string(&c, &t), 0);
    assert_string_equal((const char *)t.ptr, "%2Ftmp%2Fa%20b.sock");
    cp2p_buf_reset(&t);
    assert_int_equal(cp2p_multiaddr_component_at(ma, 1, &c), 0);
    assert_int_equal(c.code, CP2P_MA_P2P_CIRCUIT);
    assert_int_equal(c.value.len, 0);
    assert_int_equal(cp2p_multiaddr_component_value_string(&c, &t), 0);
    assert_int_equal(t.len, 0);
    assert_int_equal(cp2p_multiaddr_component_at(ma, 2, &c), 0);
    assert_int_equal(cp2p_multiaddr_component_value_string(&c, &t), 0);
    assert_string_equal((const char *)t.ptr, "::ffff:102:304");
    /* A forged component: unknown code, wrong length, invalid value. */
    cp2p_buf_reset(&t);
    cp2p_multiaddr_component f = {.code = 446, .name = "garlic64", .value = {NULL, 0}};
    assert_int_equal(cp2p_multiaddr_component_value_string(&f, &t), CP2P_EINVAL);
    f.code = CP2P_MA_IP4;
    f.value.ptr = (const uint8_t *)"\x01\x02\x03";
    f.value.len = 3;
    assert_int_equal(cp2p_multiaddr_component_value_string(&f, &t), CP2P_EINVAL);
    f.code = CP2P_MA_DNS;
    f.value.ptr = (const uint8_t *)"a/b";
    assert_int_equal(cp2p_multiaddr_component_value_string(&f, &t), CP2P_EINVAL);
    f.value.ptr = NULL;
    assert_int_equal(cp2p_multiaddr_component_value_string(&f, &t), CP2P_EINVAL);
    assert_int_equal(t.len, 0);
    cp2p_buf_fini(&t);
    cp2p_multiaddr_free(ma);
}

static void multiaddr_empty(void **state)
{
    cp2p_multiaddr *ma = must_parse("/"), *b = must_parse("///");
    (void)state;
    assert_int_equal(cp2p_multiaddr_count(ma), 0);
    assert_int_equal(cp2p_multiaddr_bytes(ma).len, 0);
    assert_text(ma, "/");
    assert_true(cp2p_multiaddr_equal(ma, b));
    cp2p_peer_id id;
    assert_int_equal(cp2p_multiaddr_peer_id(ma, &id), CP2P_ENOENT);
    /* An empty byte string is not a multiaddr on the wire. */
    cp2p_multiaddr *c = NULL;
    assert_int_equal(cp2p_multiaddr_from_bytes((const uint8_t *)"", 0, &c), CP2P_EPROTO);
    assert_null(c);
    cp2p_multiaddr_free(ma);
    cp2p_multiaddr_free(b);
    cp2p_multiaddr_free(NULL);
}

static void multiaddr_invalid_strings(void **state)
{
    static const char *bad[] = {
        "", "ip4/1.2.3.4", " /ip4/1.2.3.4", "/ip4", "/ip4/", "/ip4//1.2.3.4", "//ip4/1.2.3.4",
        "/ip4/1.2.3.4//tcp/1", "/ip4/1.2.3.4/tcp", "/unknown/x", "/IP4/1.2.3.4", "/dns4/",
        "/dns4", "/tls/foo", "/ip4/256.0.0.1", "/ip4/1.2.3", "/ip4/1.2.3.4.5", "/ip4/01.2.3.4",
        "/ip4/1.2.3.4 ", "/ip4/1..2.3", "/ip4/-1.2.3.4", "/ip4/1.2.3.1000", "/ip4/0x1.2.3.4",
        "/tcp/65536", "/tcp/-1", "/tcp/+1", "/tcp/01", "/tcp/-0", "/tcp/1.0", "/tcp/1e3",
        "/tcp/ 1", "/tcp/0x10", "/tcp/a", "/udp/99999", "/ipcidr/256", "/ipcidr/024",
        "/ip6/1:2:3:4:5:6:7:8:9", "/ip6/1:2:3:4:5:6:7", "/ip6/:1", "/ip6/1:", "/ip6/1:::2",
        "/ip6/1::2::3", "/ip6/12345::", "/ip6/00001::", "/ip6/::g", "/ip6/fe80::1%eth0",
        "/ip6/::ffff:01.2.3.4", "/ip6/::1.2.3", "/ip6/::1.2.3.4.5", "/ip6/1:2:3:4:5:6:7:1.2.3.4",
        "/ip6/::1.2.3.256", "/ip6/1.2.3.4", "/ip6/::1.2.3.4:1", "/ip6/[::1]", "/ip6/ ::1",
        "/unix/a%", "/unix/%zz", "/unix/%C3", "/unix/%E9", "/unix/%ED%A0%80", "/unix/%C0%80",
        "/unix/%F4%90%80%80", "/unix/%00", "/unix/%2", "/unix/tmp/x.sock", "/p2p/1", "/p2p/Qm",
        "/p2p/QmNotValid", "/p2p/zQmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N",
        "/p2p/bafybeie5745rpv2m6tjyuugywy4d5ewrqgqqhfnf445he3omzpjbx5xqxe",
        "/certhash/u", "/certhash/fdead", "/certhash/xyz", "/certhash/uEiDDq4",
        "/onion/timaq4ygg2iegci7:0", "/onion/timaq4ygg2iegci7:65536", "/onion/timaq4ygg2iegci7",
        "/onion/timaq4ygg2iegci:80", "/onion/TIMAQ4YGG2IEGCI7:80", "/onion/timaq4ygg2iegci7:80:1",
        "/onion3/vww6ybal4bd7szmgncyruucpgfkqahzddi37ktceo3ah7ngmcopnpyyd:0",
        "/garlic64/x", "/memory/", "/memory", "/http-path/x", "/dns4/\xff", "/dns4/a\xc3",
        "/ip4/1.2.3.4/\xc3\xa9",
    };
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cp2p_multiaddr *sentinel = (cp2p_multiaddr *)(uintptr_t)0x1234, *ma = sentinel;
        int rc = cp2p_multiaddr_parse(bad[i], strlen(bad[i]), &ma);
        if (rc != CP2P_EINVAL) {
            print_error("accepted or wrong error for \"%s\": %d\n", bad[i], rc);
        }
        assert_int_equal(rc, CP2P_EINVAL);
        assert_ptr_equal(ma, sentinel); /* never a partial result */
    }
    /* An embedded NUL in a value or name. */
    cp2p_multiaddr *ma = NULL;
    assert_int_equal(cp2p_multiaddr_parse("/dns4/a\0b", 9, &ma), CP2P_EINVAL);
    assert_int_equal(cp2p_multiaddr_parse("/tls\0", 5, &ma), CP2P_EINVAL);
    assert_int_equal(cp2p_multiaddr_parse(NULL, 0, &ma), CP2P_EINVAL);
    assert_null(ma);
}

static void multiaddr_length_is_explicit(void **state)
{
    cp2p_multiaddr *ma = NULL;
    (void)state;
    /* Only len bytes are read: the rest of the C string is ignored. */
    assert_int_equal(cp2p_multiaddr_parse("/ip4/1.2.3.4/tcp/80", 12, &ma), 0);
    assert_text(ma, "/ip4/1.2.3.4");
    cp2p_multiaddr_free(ma);
}

static void multiaddr_invalid_binary(void **state)
{
    static const char *bad[] = {
        "04",                       /* ip4 without value */
        "04010203",                 /* ip4 short */
        "040102030405",             /* trailing byte: 05 is no code... */
        "0401020304060050ff",       /* trailing garbage */
        "06",                       /* tcp without value */
        "0600",                     /* tcp short */
        "00", "07", "c103",         /* unknown codes 0, 7, 481 (http-path) */
        "8906", "890600", "8906012f", /* memory: no length, empty, '/' */
        "be0301aa", "bf0301aa",     /* garlic64/32 (unsupported) */
        "8400", "840001020304",     /* non-minimal code varint for ip4 */
        "e18000", "ffffffffffffffffff01", /* non-minimal, over-long */
        "35", "3500", "3501", "35012f", "35022f61", "350100", "3502c3", "3501ff",
        "358100", "35810161",       /* dns: missing/empty/slash/NUL/bad UTF-8/non-minimal len */
        "900300", "90030100", "9003fe", "a003", /* unix empty, NUL, bad length; unknown 0x1a0 */
        "a50300", "a503022200", "a50301", /* p2p: empty, not a peer ID, truncated */
        "a5032212209dff3b17d74cf4d38a50d8b6383e92d181a10395a5e73a726dcccbd21bf6f0",
        "a50323111f9dff3b17d74cf4d38a50d8b6383e92d181a10395a5e73a726dcccbd21bf6f0b9aa",
        "d20300", "d20302dead", "d2030212", /* certhash: empty, not a multihash */
        "bc039a18087306369043091f0000",   /* onion port 0 */
        "bc039a18087306369043091f04",     /* onion short */
        "2a00", "2a012f",                 /* ip6zone empty, '/' */
        "2b",                             /* ipcidr without value */
        "29000000000000000000000000000000", /* ip6 short */
    };
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cp2p_buf b = unhex(bad[i]);
        cp2p_multiaddr *sentinel = (cp2p_multiaddr *)(uintptr_t)0x1234, *ma = sentinel;
        int rc = cp2p_multiaddr_from_bytes(b.ptr, b.len, &ma);
        if (rc != CP2P_EPROTO) {
            print_error("accepted or wrong error for %s: %d\n", bad[i], rc);
        }
        assert_int_equal(rc, CP2P_EPROTO);
        assert_ptr_equal(ma, sentinel);
        cp2p_buf_fini(&b);
    }
}

/* Every prefix of a valid binary multiaddr is either a whole number of its components (and then
 * valid) or invalid (STYLE.md section 10: every truncation). */
static void multiaddr_every_truncation(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(JS_VEC) / sizeof(JS_VEC[0]); i++) {
        cp2p_multiaddr *full = must_parse(JS_VEC[i].in);
        cp2p_slice s = cp2p_multiaddr_bytes(full);
        size_t bound[CP2P_MULTIADDR_MAX_COMPONENTS + 1], nb = 0, pos = 0;
        for (size_t k = 0; k < cp2p_multiaddr_count(full); k++) {
            cp2p_multiaddr_component c;
            assert_int_equal(cp2p_multiaddr_component_at(full, k, &c), 0);
            pos = (size_t)(c.value.ptr - s.ptr) + c.value.len;
            bound[nb++] = pos;
        }
        assert_int_equal(pos, s.len);
        size_t next = 0;
        for (size_t n = 1; n < s.len; n++) {
            cp2p_multiaddr *ma = NULL;
            int rc = cp2p_multiaddr_from_bytes(s.ptr, n, &ma);
            while (next < nb && bound[next] < n) {
                next++;
            }
            if (next < nb && bound[next] == n) {
                assert_int_equal(rc, 0);
                assert_int_equal(cp2p_multiaddr_count(ma), next + 1);
            } else {
                assert_int_equal(rc, CP2P_EPROTO);
                assert_null(ma);
            }
            cp2p_multiaddr_free(ma);
        }
        cp2p_multiaddr_free(full);
    }
}

/* Build "/tcp/1" repeated n times as text. */
static size_t repeat(char *out, size_t cap, const char *unit, size_t n)
{
    size_t u = strlen(unit), len = 0;
    for (size_t i = 0; i < n && len + u < cap; i++) {
        memcpy(out + len, unit, u);
        len += u;
    }
    out[len] = 0;
    return len;
}

static void multiaddr_limits(void **state)
{
    static char text[CP2P_MULTIADDR_STR_MAX * 2];
    static uint8_t bin[CP2P_MULTIADDR_MAX_BYTES + 64];
    cp2p_multiaddr *ma = NULL;
    size_t len;
    (void)state;
    /* Component count: 32 is fine, 33 is not (text and binary). */
    len = repeat(text, sizeof(text), "/tcp/1", CP2P_MULTIADDR_MAX_COMPONENTS);
    assert_int_equal(cp2p_multiaddr_parse(text, len, &ma), 0);
    assert_int_equal(cp2p_multiaddr_count(ma), CP2P_MULTIADDR_MAX_COMPONENTS);
    cp2p_multiaddr_free(ma);
    ma = NULL;
    len = repeat(text, sizeof(text), "/tcp/1", CP2P_MULTIADDR_MAX_COMPONENTS + 1);
    assert_int_equal(cp2p_multiaddr_parse(text, len, &ma), CP2P_EINVAL);
    for (size_t i = 0; i < CP2P_MULTIADDR_MAX_COMPONENTS + 1; i++) {
        memcpy(bin + 3 * i, "\x06\x00\x01", 3);
    }
    assert_int_equal(cp2p_multiaddr_from_bytes(bin, 3 * CP2P_MULTIADDR_MAX_COMPONENTS, &ma), 0);
    cp2p_multiaddr_free(ma);
    ma = NULL;
    assert_int_equal(
        cp2p_multiaddr_from_bytes(bin, 3 * (CP2P_MULTIADDR_MAX_COMPONENTS + 1), &ma),
        CP2P_EPROTO);

    /* Bytes: one unix component of exactly CP2P_MULTIADDR_MAX_BYTES, then one byte more. */
    size_t vlen = CP2P_MULTIADDR_MAX_BYTES - 4; /* code 0x90 0x03 + 2-byte length */
    bin[0] = 0x90;
    bin[1] = 0x03;
    bin[2] = (uint8_t)(0x80 | (vlen & 0x7f));
    bin[3] = (uint8_t)(vlen >> 7);
    memset(bin + 4, 0x01, vlen); /* \x01 prints as %01: the text is three times longer */
    assert_int_equal(cp2p_multiaddr_from_bytes(bin, CP2P_MULTIADDR_MAX_BYTES, &ma), 0);
    /* The worst-case text still fits CP2P_MULTIADDR_STR_MAX, and parses back. */
    cp2p_buf t;
    cp2p_buf_init(&t, CP2P_MULTIADDR_STR_MAX);
    assert_int_equal(cp2p_multiaddr_to_string(ma, &t), 0);
    assert_true(t.len < CP2P_MULTIADDR_STR_MAX);
    cp2p_multiaddr *back = NULL;
    assert_int_equal(cp2p_multiaddr_parse((const char *)t.ptr, t.len, &back), 0);
    assert_true(cp2p_multiaddr_equal(ma, back));
    cp2p_multiaddr_free(back);
    cp2p_buf_fini(&t);
    cp2p_multiaddr_free(ma);
    ma = NULL;
    vlen++;
    bin[2] = (uint8_t)(0x80 | (vlen & 0x7f));
    bin[3] = (uint8_t)(vlen >> 7);
    bin[4 + vlen - 1] = 0x01;
    assert_int_equal(cp2p_multiaddr_from_bytes(bin, CP2P_MULTIADDR_MAX_BYTES + 1, &ma),
                     CP2P_EPROTO);
    /* A declared length beyond the input is refused before anything is read. */
    const uint8_t huge[] = {0x35, 0xff, 0xff, 0xff, 0xff, 0x0f, 'a'};
    assert_int_equal(cp2p_multiaddr_from_bytes(huge, sizeof(huge), &ma), CP2P_EPROTO);

    /* Text: the same unix path written out is too long as text, and so is anything at
     * CP2P_MULTIADDR_STR_MAX characters. */
    memcpy(text, "/unix/", 6);
    len = 6;
    for (size_t i = 0; i < CP2P_MULTIADDR_MAX_BYTES; i++) {
        text[len++] = 'a';
    }
    assert_int_equal(cp2p_multiaddr_parse(text, len, &ma), CP2P_EINVAL);
    len = repeat(text, sizeof(text), "/tls", CP2P_MULTIADDR_STR_MAX / 4);
    assert_int_equal(len, CP2P_MULTIADDR_STR_MAX);
    assert_int_equal(cp2p_multiaddr_parse(text, len, &ma), CP2P_EINVAL);
    assert_null(ma);
}

static void multiaddr_to_string_buffer_errors(void **state)
{
    cp2p_multiaddr *ma =
        must_parse("/ip4/1.2.3.4/tcp/80/p2p/QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N");
    (void)state;
    /* Appends after existing text; a too-small buffer leaves it as it was, at every size. */
    for (size_t max = 4; max < 90; max++) {
        cp2p_buf t;
        cp2p_buf_init(&t, max);
        assert_int_equal(cp2p_buf_append(&t, "pre:", 4), 0);
        int rc = cp2p_multiaddr_to_string(ma, &t);
        if (rc == 0) {
            assert_string_equal((const char *)t.ptr,
                                "pre:/ip4/1.2.3.4/tcp/80/p2p/"
                                "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N");
        } else {
            assert_int_equal(rc, CP2P_ELIMIT);
            assert_int_equal(t.len, 4);
            assert_string_equal((const char *)t.ptr, "pre:");
        }
        cp2p_buf_fini(&t);
    }
    cp2p_multiaddr_free(ma);
}

static void multiaddr_encapsulate_decapsulate(void **state)
{
    cp2p_multiaddr *base = must_parse("/ip4/1.2.3.4/tcp/80");
    cp2p_multiaddr *p2p = must_parse("/p2p/QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N");
    cp2p_multiaddr *out = NULL, *out2 = NULL, *tmp;
    (void)state;
    assert_int_equal(cp2p_multiaddr_encapsulate(base, p2p, &out), 0);
    assert_text(out, "/ip4/1.2.3.4/tcp/80/p2p/QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N");
    assert_int_equal(cp2p_multiaddr_count(out), 3);
    assert_int_equal(cp2p_multiaddr_decapsulate(out, p2p, &out2), 0);
    assert_true(cp2p_multiaddr_equal(out2, base));
    cp2p_multiaddr_free(out2);

    tmp = must_parse("/tcp/80");
    assert_int_equal(cp2p_multiaddr_decapsulate(out, tmp, &out2), 0);
    assert_text(out2, "/ip4/1.2.3.4");
    cp2p_multiaddr_free(out2);
    cp2p_multiaddr_free(tmp);

    /* Whole components only: "/tcp/8" is not found in "/tcp/80" (js matches text, we do not). */
    tmp = must_parse("/tcp/8");
    assert_int_equal(cp2p_multiaddr_decapsulate(out, tmp, &out2), 0);
    assert_true(cp2p_multiaddr_equal(out2, out));
    cp2p_multiaddr_free(out2);
    cp2p_multiaddr_free(tmp);

    /* The whole address: the empty multiaddr. A longer one, or the empty one: unchanged. */
    assert_int_equal(cp2p_multiaddr_decapsulate(out, out, &out2), 0);
    assert_int_equal(cp2p_multiaddr_count(out2), 0);
    assert_text(out2, "/");
    cp2p_multiaddr_free(out2);
    tmp = must_parse("/ip4/1.2.3.4/tcp/80/p2p/QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N/ws");
    assert_int_equal(cp2p_multiaddr_decapsulate(out, tmp, &out2), 0);
    assert_true(cp2p_multiaddr_equal(out2, out));
    cp2p_multiaddr_free(out2);
    cp2p_multiaddr_free(tmp);
    tmp = must_parse("/");
    assert_int_equal(cp2p_multiaddr_decapsulate(out, tmp, &out2), 0);
    assert_true(cp2p_multiaddr_equal(out2, out));
    cp2p_multiaddr_free(out2);
    /* Encapsulating the empty multiaddr is a copy. */
    assert_int_equal(cp2p_multiaddr_encapsulate(out, tmp, &out2), 0);
    assert_true(cp2p_multiaddr_equal(out2, out));
    cp2p_multiaddr_free(out2);
    cp2p_multiaddr_free(tmp);
    cp2p_multiaddr_free(out);

    /* The LAST occurrence is removed. */
    out = must_parse("/ip4/1.2.3.4/tcp/1/ip4/1.2.3.4/tcp/1/ws");
    tmp = must_parse("/ip4/1.2.3.4/tcp/1");
    assert_int_equal(cp2p_multiaddr_decapsulate(out, tmp, &out2), 0);
    assert_text(out2, "/ip4/1.2.3.4/tcp/1");
    cp2p_multiaddr_free(out2);
    cp2p_multiaddr_free(tmp);
    cp2p_multiaddr_free(out);

    /* decapsulate_code: the last component with the code, or an unchanged copy. */
    out = must_parse("/ip4/1.2.3.4/tcp/1/p2p/QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N"
                     "/p2p-circuit/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA");
    assert_int_equal(cp2p_multiaddr_decapsulate_code(out, CP2P_MA_P2P, &out2), 0);
    assert_text(out2, "/ip4/1.2.3.4/tcp/1/p2p/QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N"
                      "/p2p-circuit");
    cp2p_multiaddr_free(out2);
    assert_int_equal(cp2p_multiaddr_decapsulate_code(out, CP2P_MA_IP4, &out2), 0);
    assert_text(out2, "/");
    cp2p_multiaddr_free(out2);
    assert_int_equal(cp2p_multiaddr_decapsulate_code(out, CP2P_MA_UDP, &out2), 0);
    assert_true(cp2p_multiaddr_equal(out2, out));
    cp2p_multiaddr_free(out2);
    cp2p_multiaddr_free(out);
    cp2p_multiaddr_free(base);
    cp2p_multiaddr_free(p2p);
}

static void multiaddr_encapsulate_limits(void **state)
{
    static char text[512];
    (void)state;
    size_t len = repeat(text, sizeof(text), "/tls", 20);
    cp2p_multiaddr *a = NULL, *out = NULL;
    assert_int_equal(cp2p_multiaddr_parse(text, len, &a), 0);
    assert_int_equal(cp2p_multiaddr_encapsulate(a, a, &out), CP2P_ELIMIT);
    assert_null(out);
    cp2p_multiaddr_free(a);
}

static void multiaddr_peer_id(void **state)
{
    cp2p_multiaddr *ma =
        must_parse("/ip4/1.2.3.4/tcp/1/p2p/QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N"
                   "/p2p-circuit/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA");
    cp2p_peer_id id;
    char str[CP2P_PEER_ID_STR_MAX];
    (void)state;
    assert_int_equal(cp2p_multiaddr_peer_id(ma, &id), 0);
    assert_string_equal(cp2p_peer_id_str(&id, str),
                        "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA");
    cp2p_multiaddr_free(ma);
    ma = must_parse("/ip4/1.2.3.4/tcp/1");
    assert_int_equal(cp2p_multiaddr_peer_id(ma, &id), CP2P_ENOENT);
    cp2p_multiaddr_free(ma);
    /* The legacy name and the CID form give the same peer ID. */
    ma = must_parse("/ipfs/bafzbeie5745rpv2m6tjyuugywy4d5ewrqgqqhfnf445he3omzpjbx5xqxe");
    assert_int_equal(cp2p_multiaddr_peer_id(ma, &id), 0);
    assert_string_equal(cp2p_peer_id_str(&id, str),
                        "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N");
    cp2p_multiaddr_free(ma);
}

static void multiaddr_dup_equal_and_names(void **state)
{
    cp2p_multiaddr *a = must_parse("/dns4/example.com/tcp/443/wss"), *b = NULL;
    cp2p_multiaddr *c = must_parse("/dns4/example.com/tcp/443/ws");
    uint64_t code = 0;
    (void)state;
    assert_int_equal(cp2p_multiaddr_dup(a, &b), 0);
    assert_true(cp2p_multiaddr_equal(a, b));
    assert_false(cp2p_multiaddr_equal(a, c));
    assert_string_equal(cp2p_multiaddr_protocol_name(CP2P_MA_QUIC_V1), "quic-v1");
    assert_string_equal(cp2p_multiaddr_protocol_name(CP2P_MA_MEMORY), "memory");
    assert_null(cp2p_multiaddr_protocol_name(446)); /* garlic64: go and js disagree */
    assert_int_equal(cp2p_multiaddr_protocol_code("ipfs", 4, &code), 0);
    assert_int_equal(code, CP2P_MA_P2P);
    assert_int_equal(cp2p_multiaddr_protocol_code("webrtc-direct", 13, &code), 0);
    assert_int_equal(code, CP2P_MA_WEBRTC_DIRECT);
    assert_int_equal(cp2p_multiaddr_protocol_code("ip4x", 4, &code), CP2P_ENOENT);
    assert_int_equal(cp2p_multiaddr_protocol_code("ip4x", 3, &code), 0);
    assert_int_equal(code, CP2P_MA_IP4);
    cp2p_multiaddr_free(a);
    cp2p_multiaddr_free(b);
    cp2p_multiaddr_free(c);
}

/* Allocation-failure loop (STYLE.md section 10): every allocation fails in turn. */
static void multiaddr_allocation_failures(void **state)
{
    const char *text = "/ip4/1.2.3.4/udp/1/quic-v1/webtransport/certhash/"
                       "uEiDDq4_xNyDorZBH3TlGazyJdOWSwvo4PUo5YHFMrvDE8g/p2p/"
                       "bafzbeie5745rpv2m6tjyuugywy4d5ewrqgqqhfnf445he3omzpjbx5xqxe";
    (void)state;
    bool done = false;
    for (long k = 1; k < 50 && !done; k++) {
        cp2p_multiaddr *ma = NULL;
        cp2p__alloc_fail_after(k);
        int rc = cp2p_multiaddr_parse(text, strlen(text), &ma);
        cp2p__alloc_fail_after(0);
        if (rc == 0) {
            done = true;
            cp2p_multiaddr_free(ma);
        } else {
            assert_int_equal(rc, CP2P_ENOMEM);
            assert_null(ma);
        }
    }
    assert_true(done);
    cp2p_multiaddr *a = must_parse(text), *b = NULL;
    cp2p__alloc_fail_after(1);
    assert_int_equal(cp2p_multiaddr_dup(a, &b), CP2P_ENOMEM);
    cp2p__alloc_fail_after(1);
    assert_int_equal(cp2p_multiaddr_encapsulate(a, a, &b), CP2P_ENOMEM);
    cp2p__alloc_fail_after(1);
    assert_int_equal(cp2p_multiaddr_decapsulate_code(a, CP2P_MA_P2P, &b), CP2P_ENOMEM);
    cp2p__alloc_fail_after(1);
    cp2p_slice s = cp2p_multiaddr_bytes(a);
    assert_int_equal(cp2p_multiaddr_from_bytes(s.ptr, s.len, &b), CP2P_ENOMEM);
    cp2p__alloc_fail_after(0);
    assert_null(b);
    cp2p_multiaddr_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(multiaddr_js_vectors),
        cmocka_unit_test(multiaddr_spec_example_components),
        cmocka_unit_test(multiaddr_value_strings),
        cmocka_unit_test(multiaddr_empty),
        cmocka_unit_test(multiaddr_invalid_strings),
        cmocka_unit_test(multiaddr_length_is_explicit),
        cmocka_unit_test(multiaddr_invalid_binary),
        cmocka_unit_test(multiaddr_every_truncation),
        cmocka_unit_test(multiaddr_limits),
        cmocka_unit_test(multiaddr_to_string_buffer_errors),
        cmocka_unit_test(multiaddr_encapsulate_decapsulate),
        cmocka_unit_test(multiaddr_encapsulate_limits),
        cmocka_unit_test(multiaddr_peer_id),
        cmocka_unit_test(multiaddr_dup_equal_and_names),
        cmocka_unit_test(multiaddr_allocation_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
