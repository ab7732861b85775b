/* Identify message codec. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <cp2p/codec.h>

#include "swarm/identify/identify_msg.h"
#include "util/alloc.h"
#include "util/limits.h"

static cp2p_multiaddr *ma(const char *s)
{
    cp2p_multiaddr *m = NULL;
    assert_int_equal(cp2p_multiaddr_parse(s, strlen(s), &m), 0);
    return m;
}

static void round_trip(void **state)
{
    (void)state;
    cp2p_multiaddr *addrs[] = {ma("/ip4/127.0.0.1/tcp/4001"), ma("/ip6/::1/tcp/4001")};
    char *protos[] = {"/ipfs/ping/1.0.0", "/ipfs/id/1.0.0"};
    uint8_t key[] = {0x08, 0x01, 0x12, 0x02, 0xaa, 0xbb};
    cp2p__identify_msg m = {
        .protocol_version = "ipfs/0.1.0",
        .agent_version = "cp2p/0.1.0",
        .public_key = key,
        .public_key_len = sizeof(key),
        .listen_addrs = addrs,
        .n_listen_addrs = 2,
        .observed_addr = addrs[0],
        .protocols = protos,
        .n_protocols = 2,
    };
    cp2p_buf b;
    cp2p__identify_msg d;
    const char *why = NULL;
    cp2p_buf_init(&b, CP2P_IDENTIFY_MAX_MSG);
    assert_int_equal(cp2p__identify_encode(&m, &b), 0);
    assert_int_equal(cp2p__identify_decode(b.ptr, b.len, &d, &why), 0);
    assert_string_equal(d.protocol_version, "ipfs/0.1.0");
    assert_string_equal(d.agent_version, "cp2p/0.1.0");
    assert_int_equal(d.public_key_len, sizeof(key));
    assert_memory_equal(d.public_key, key, sizeof(key));
    assert_int_equal(d.n_listen_addrs, 2);
    assert_true(cp2p_multiaddr_equal(d.listen_addrs[1], addrs[1]));
    assert_true(cp2p_multiaddr_equal(d.observed_addr, addrs[0]));
    assert_int_equal(d.n_protocols, 2);
    assert_string_equal(d.protocols[1], "/ipfs/id/1.0.0");
    assert_null(d.signed_peer_record);
    assert_int_equal(d.dropped_addrs + d.dropped_protocols + d.dropped_strings, 0);
    /* Every truncation either fails cleanly or decodes a prefix: never a crash or a leak. */
    for (size_t cut = 0; cut < b.len; cut++) {
        cp2p__identify_msg t;
        if (cp2p__identify_decode(b.ptr, cut, &t, &why) == 0) {
            cp2p__identify_msg_fini(&t);
        }
    }
    cp2p__identify_msg_fini(&d);
    cp2p_buf_fini(&b);
    cp2p_multiaddr_free(addrs[0]);
    cp2p_multiaddr_free(addrs[1]);
}

/* Field 2 (listenAddrs, bytes) and field 3 (protocols, string) written by hand. */
static void put_field(cp2p_buf *b, uint8_t field, const void *p, size_t n)
{
    assert_int_equal(cp2p_buf_append_byte(b, (uint8_t)(field << 3 | 2)), 0);
    assert_int_equal(cp2p_uvarint_append(b, n), 0);
    assert_int_equal(cp2p_buf_append(b, p, n), 0);
}

static void bad_entries_are_dropped_and_counted(void **state)
{
    cp2p_buf b;
    cp2p__identify_msg d;
    const char *why = NULL;
    (void)state;
    cp2p_buf_init(&b, 1 << 16);
    static const uint8_t good[] = {0x04, 127, 0, 0, 1, 0x06, 0x0f, 0xa1}; /* /ip4/127.0.0.1/tcp/4001 */
    static const uint8_t bad[] = {0x04, 127, 0};                           /* truncated ip4 */
    put_field(&b, 2, good, sizeof(good));
    put_field(&b, 2, bad, sizeof(bad));
    put_field(&b, 3, "/ok/1", 5);
    put_field(&b, 3, "\xff\xfe", 2);          /* not UTF-8 */
    put_field(&b, 3, "/ctl\x01", 5);          /* control character */
    put_field(&b, 6, "agent\n", 6);           /* control character in the agent */
    put_field(&b, 4, bad, sizeof(bad));       /* invalid observed address */
    assert_int_equal(cp2p__identify_decode(b.ptr, b.len, &d, &why), 0);
    assert_int_equal(d.n_listen_addrs, 1);
    assert_int_equal(d.dropped_addrs, 2);
    assert_int_equal(d.n_protocols, 1);
    assert_string_equal(d.protocols[0], "/ok/1");
    assert_int_equal(d.dropped_protocols, 2);
    assert_null(d.agent_version);
    assert_int_equal(d.dropped_strings, 1);
    assert_null(d.observed_addr);
    cp2p__identify_msg_fini(&d);
    cp2p_buf_fini(&b);
}

static void limits_are_enforced(void **state)
{
    cp2p_buf b;
    cp2p__identify_msg d;
    const char *why = NULL;
    (void)state;
    cp2p_buf_init(&b, 1 << 16);
    static const uint8_t good[] = {0x04, 10, 0, 0, 1, 0x06, 0x0f, 0xa1};
    for (int i = 0; i < CP2P_IDENTIFY_MAX_ADDRS + 10; i++) {
        put_field(&b, 2, good, sizeof(good));
    }
    assert_int_equal(cp2p__identify_decode(b.ptr, b.len, &d, &why), 0);
    assert_int_equal(d.n_listen_addrs, CP2P_IDENTIFY_MAX_ADDRS);
    assert_int_equal(d.dropped_addrs, 10);
    cp2p__identify_msg_fini(&d);
    /* Over the message size. */
    while (b.len <= CP2P_IDENTIFY_MAX_MSG) {
        put_field(&b, 3, "/p/1", 4);
    }
    assert_int_equal(cp2p__identify_decode(b.ptr, b.len, &d, &why), CP2P_ELIMIT);
    assert_non_null(why);
    cp2p_buf_fini(&b);
}

static void garbage_is_refused(void **state)
{
    cp2p__identify_msg d;
    const char *why = NULL;
    (void)state;
    static const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x0f};
    assert_int_equal(cp2p__identify_decode(junk, sizeof(junk), &d, &why), CP2P_EPROTO);
    static const uint8_t trunc[] = {0x12, 0x10, 0x04};  /* length 16, 1 byte present */
    assert_int_equal(cp2p__identify_decode(trunc, sizeof(trunc), &d, &why), CP2P_EPROTO);
    /* An empty message is valid: every field is optional (identify push sends deltas). */
    assert_int_equal(cp2p__identify_decode(junk, 0, &d, &why), 0);
    cp2p__identify_msg_fini(&d);
}

static void allocation_failures_leak_nothing(void **state)
{
    (void)state;
    cp2p_multiaddr *a = ma("/ip4/1.2.3.4/tcp/1");
    char *protos[] = {"/a/1", "/b/1"};
    cp2p__identify_msg m = {.agent_version = "x", .listen_addrs = &a, .n_listen_addrs = 1,
                            .protocols = protos, .n_protocols = 2};
    cp2p_buf b;
    cp2p_buf_init(&b, CP2P_IDENTIFY_MAX_MSG);
    assert_int_equal(cp2p__identify_encode(&m, &b), 0);
    for (long fail = 1; fail < 12; fail++) {
        cp2p__identify_msg d;
        const char *why = NULL;
        cp2p__alloc_fail_after(fail);
        int rc = cp2p__identify_decode(b.ptr, b.len, &d, &why);
        cp2p__alloc_fail_after(0);
        if (rc == 0) {
            cp2p__identify_msg_fini(&d);
        } else {
            assert_true(rc == CP2P_ENOMEM || rc == CP2P_EPROTO);
        }
    }
    cp2p_buf_fini(&b);
    cp2p_multiaddr_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trip),
        cmocka_unit_test(bad_entries_are_dropped_and_counted),
        cmocka_unit_test(limits_are_enforced),
        cmocka_unit_test(garbage_is_refused),
        cmocka_unit_test(allocation_failures_leak_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
