/* kad-dht RPC message codec (libp2p kad-dht spec, "RPC messages"). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <cp2p/codec.h>

#include "protocols/kad/kad_msg.h"
#include "util/alloc.h"
#include "util/limits.h"

/* /ip4/1.2.3.4/tcp/4001 */
static const uint8_t ADDR1[] = {0x04, 1, 2, 3, 4, 0x06, 0x0f, 0xa1};
/* /ip4/5.6.7.8/tcp/4002 */
static const uint8_t ADDR2[] = {0x04, 5, 6, 7, 8, 0x06, 0x0f, 0xa2};

/* A sha2-256 peer ID: 0x12 0x20 + 32 digest bytes. */
static cp2p_peer_id pid(uint8_t fill)
{
    uint8_t b[34] = {0x12, 0x20};
    cp2p_peer_id p;
    memset(b + 2, fill, 32);
    assert_int_equal(cp2p_peer_id_from_bytes(b, sizeof(b), &p), 0);
    return p;
}

static cp2p_multiaddr *ma(const uint8_t *b, size_t n)
{
    cp2p_multiaddr *m = NULL;
    assert_int_equal(cp2p_multiaddr_from_bytes(b, n, &m), 0);
    return m;
}

static void enc_dec(const cp2p__kad_msg *m, cp2p__kad_msg *d)
{
    cp2p_buf b;
    const char *why = NULL;
    cp2p_buf_init(&b, CP2P_KAD_MAX_MSG);
    assert_int_equal(cp2p__kad_msg_encode(m, &b), 0);
    assert_int_equal(cp2p__kad_msg_decode(b.ptr, b.len, d, &why), 0);
    assert_null(why);
    assert_int_equal(d->dropped_peers + d->dropped_addrs, 0);
    /* Every truncation fails cleanly or decodes a prefix: never a crash or a leak. */
    for (size_t cut = 0; cut < b.len; cut++) {
        cp2p__kad_msg t;
        if (cp2p__kad_msg_decode(b.ptr, cut, &t, &why) == 0) {
            cp2p__kad_msg_fini(&t);
        }
    }
    cp2p_buf_fini(&b);
}

static void round_trip_every_type(void **state)
{
    (void)state;
    cp2p_multiaddr *a1 = ma(ADDR1, sizeof(ADDR1)), *a2 = ma(ADDR2, sizeof(ADDR2));
    cp2p_multiaddr *addrs[] = {a1, a2};
    cp2p__kad_peer peers[] = {
        {.id = pid(1), .addrs = addrs, .n_addrs = 2, .connection = CP2P__KAD_CONNECTED},
        {.id = pid(2), .addrs = NULL, .n_addrs = 0, .connection = CP2P__KAD_CANNOT_CONNECT},
    };
    uint8_t key[] = "/pk/somekey";
    uint8_t value[] = {1, 2, 3, 0, 5};
    char tr[] = "2024-01-02T03:04:05Z";
    for (int t = CP2P__KAD_PUT_VALUE; t <= CP2P__KAD_PING; t++) {
        cp2p__kad_msg m = {.type = (cp2p__kad_type)t};
        cp2p__kad_msg d;
        switch (t) {
        case CP2P__KAD_PUT_VALUE:
        case CP2P__KAD_GET_VALUE: /* a GET_VALUE response: record and closer peers */
            m.key = key;
            m.key_len = sizeof(key) - 1;
            m.has_record = true;
            m.record = (cp2p__kad_record){.key = key, .key_len = sizeof(key) - 1,
                                          .value = value, .value_len = sizeof(value),
                                          .time_received = tr};
            m.closer = t == CP2P__KAD_GET_VALUE ? peers : NULL;
            m.n_closer = t == CP2P__KAD_GET_VALUE ? 2 : 0;
            break;
        case CP2P__KAD_ADD_PROVIDER:
        case CP2P__KAD_GET_PROVIDERS:
            m.key = key;
            m.key_len = 4;
            m.providers = peers;
            m.n_providers = 2;
            m.closer = t == CP2P__KAD_GET_PROVIDERS ? &peers[1] : NULL;
            m.n_closer = t == CP2P__KAD_GET_PROVIDERS ? 1 : 0;
            break;
        case CP2P__KAD_FIND_NODE:
            m.key = peers[0].id.bytes;
            m.key_len = peers[0].id.len;
            m.closer = peers;
            m.n_closer = 2;
            break;
        default:
            break;
        }
        enc_dec(&m, &d);
        assert_int_equal(d.type, t);
        assert_int_equal(d.key_len, m.key_len);
        if (m.key_len > 0) {
            assert_memory_equal(d.key, m.key, m.key_len);
        } else {
            assert_null(d.key);
        }
        assert_int_equal(d.has_record, m.has_record);
        if (m.has_record) {
            assert_int_equal(d.record.key_len, m.record.key_len);
            assert_memory_equal(d.record.key, key, m.record.key_len);
            assert_int_equal(d.record.value_len, sizeof(value));
            assert_memory_equal(d.record.value, value, sizeof(value));
            assert_string_equal(d.record.time_received, tr);
        }
        assert_int_equal(d.n_closer, m.n_closer);
        assert_int_equal(d.n_providers, m.n_providers);
        for (size_t i = 0; i < m.n_closer; i++) {
            assert_true(cp2p_peer_id_equal(&d.closer[i].id, &m.closer[i].id));
            assert_int_equal(d.closer[i].n_addrs, m.closer[i].n_addrs);
            assert_int_equal(d.closer[i].connection, m.closer[i].connection);
            for (size_t j = 0; j < m.closer[i].n_addrs; j++) {
                assert_true(cp2p_multiaddr_equal(d.closer[i].addrs[j], m.closer[i].addrs[j]));
            }
        }
        for (size_t i = 0; i < m.n_providers; i++) {
            assert_true(cp2p_peer_id_equal(&d.providers[i].id, &m.providers[i].id));
            assert_int_equal(d.providers[i].n_addrs, m.providers[i].n_addrs);
        }
        cp2p__kad_msg_fini(&d);
    }
    cp2p_multiaddr_free(a1);
    cp2p_multiaddr_free(a2);
}

static void put_len(cp2p_buf *b, uint8_t field, const void *p, size_t n)
{
    assert_int_equal(cp2p_buf_append_byte(b, (uint8_t)(field << 3 | 2)), 0);
    assert_int_equal(cp2p_uvarint_append(b, n), 0);
    assert_int_equal(cp2p_buf_append(b, p, n), 0);
}

static void put_varint(cp2p_buf *b, uint8_t field, uint64_t v)
{
    assert_int_equal(cp2p_buf_append_byte(b, (uint8_t)(field << 3 | 0)), 0);
    assert_int_equal(cp2p_uvarint_append(b, v), 0);
}

/* A Peer {id = 1, addrs = 2 (repeated), connection = 3}. */
static void build_peer(cp2p_buf *p, const uint8_t *id, size_t id_len, size_t n_addrs,
                       uint64_t conn)
{
    put_len(p, 1, id, id_len);
    for (size_t i = 0; i < n_addrs; i++) {
        put_len(p, 2, i % 2 ? ADDR2 : ADDR1, sizeof(ADDR1));
    }
    if (conn != 0) {
        put_varint(p, 3, conn);
    }
}

/* Bytes written from the spec's field numbers, not from our encoder. */
static void decodes_spec_bytes(void **state)
{
    (void)state;
    cp2p_buf b, peer, rec;
    cp2p__kad_msg d;
    const char *why = NULL;
    cp2p_peer_id p1 = pid(7);
    cp2p_buf_init(&b, 1 << 16);
    cp2p_buf_init(&peer, 1 << 16);
    cp2p_buf_init(&rec, 1 << 16);
    /* GET_PROVIDERS response: type 3, key, clusterLevelRaw 10 (ignored), a closer and a
     * provider peer, and an unknown field 15 (ignored, as protobuf requires). */
    put_varint(&b, 1, 3);
    put_len(&b, 2, "abc", 3);
    put_varint(&b, 10, 5);
    build_peer(&peer, p1.bytes, p1.len, 2, 2);
    put_len(&b, 8, peer.ptr, peer.len);
    put_len(&b, 9, peer.ptr, peer.len);
    put_len(&b, 15, "zz", 2);
    assert_int_equal(cp2p__kad_msg_decode(b.ptr, b.len, &d, &why), 0);
    assert_int_equal(d.type, CP2P__KAD_GET_PROVIDERS);
    assert_int_equal(d.key_len, 3);
    assert_memory_equal(d.key, "abc", 3);
    assert_false(d.has_record);
    assert_int_equal(d.n_closer, 1);
    assert_int_equal(d.n_providers, 1);
    assert_true(cp2p_peer_id_equal(&d.closer[0].id, &p1));
    assert_int_equal(d.closer[0].n_addrs, 2);
    assert_int_equal(d.closer[0].connection, CP2P__KAD_CAN_CONNECT);
    cp2p_slice s = cp2p_multiaddr_bytes(d.providers[0].addrs[1]);
    assert_int_equal(s.len, sizeof(ADDR2));
    assert_memory_equal(s.ptr, ADDR2, sizeof(ADDR2));
    cp2p__kad_msg_fini(&d);

    /* PUT_VALUE: type omitted (proto3 zero), key 2, Record {key 1, value 2, timeReceived 5}. */
    cp2p_buf_reset(&b);
    put_len(&b, 2, "/pk/x", 5);
    put_len(&rec, 1, "/pk/x", 5);
    put_len(&rec, 2, "\x01\x02", 2);
    put_len(&rec, 5, "2020-01-01T00:00:00Z", 20);
    put_len(&b, 3, rec.ptr, rec.len);
    assert_int_equal(cp2p__kad_msg_decode(b.ptr, b.len, &d, &why), 0);
    assert_int_equal(d.type, CP2P__KAD_PUT_VALUE);
    assert_true(d.has_record);
    assert_int_equal(d.record.key_len, 5);
    assert_memory_equal(d.record.value, "\x01\x02", 2);
    assert_string_equal(d.record.time_received, "2020-01-01T00:00:00Z");
    cp2p__kad_msg_fini(&d);

    /* PING: just the type. An unknown connection type reads as NOT_CONNECTED. */
    cp2p_buf_reset(&b);
    cp2p_buf_reset(&peer);
    put_varint(&b, 1, 5);
    build_peer(&peer, p1.bytes, p1.len, 0, 77);
    put_len(&b, 8, peer.ptr, peer.len);
    assert_int_equal(cp2p__kad_msg_decode(b.ptr, b.len, &d, &why), 0);
    assert_int_equal(d.type, CP2P__KAD_PING);
    assert_null(d.key);
    assert_int_equal(d.n_closer, 1);
    assert_int_equal(d.closer[0].connection, CP2P__KAD_NOT_CONNECTED);
    cp2p__kad_msg_fini(&d);

    /* A timeReceived with a control character is ignored, the rest kept. */
    cp2p_buf_reset(&b);
    cp2p_buf_reset(&rec);
    put_len(&rec, 2, "v", 1);
    put_len(&rec, 5, "2020\n", 5);
    put_len(&b, 3, rec.ptr, rec.len);
    assert_int_equal(cp2p__kad_msg_decode(b.ptr, b.len, &d, &why), 0);
    assert_true(d.has_record);
    assert_null(d.record.time_received);
    assert_null(d.record.key);
    assert_int_equal(d.record.value_len, 1);
    cp2p__kad_msg_fini(&d);

    cp2p_buf_fini(&b);
    cp2p_buf_fini(&peer);
    cp2p_buf_fini(&rec);
}

static void malformed_is_refused(void **state)
{
    (void)state;
    cp2p__kad_msg d;
    const char *why = NULL;
    static const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x0f};
    assert_int_equal(cp2p__kad_msg_decode(junk, sizeof(junk), &d, &why), CP2P_EPROTO);
    assert_non_null(why);
    static const uint8_t trunc[] = {0x12, 0x10, 'a'}; /* key of 16 bytes, 1 present */
    assert_int_equal(cp2p__kad_msg_decode(trunc, sizeof(trunc), &d, &why), CP2P_EPROTO);
    static const uint8_t wire7[] = {0x0f, 0x00}; /* field 1, wire type 7 */
    assert_int_equal(cp2p__kad_msg_decode(wire7, sizeof(wire7), &d, &why), CP2P_EPROTO);
    static const uint8_t badpeer[] = {0x42, 0x02, 0x0a, 0x05}; /* Peer.id overruns its Peer */
    assert_int_equal(cp2p__kad_msg_decode(badpeer, sizeof(badpeer), &d, &why), CP2P_EPROTO);
    static const uint8_t type6[] = {0x08, 0x06};
    assert_int_equal(cp2p__kad_msg_decode(type6, sizeof(type6), &d, &why), CP2P_EPROTO);
    static const uint8_t typeneg[] = {0x08, 0xff, 0xff, 0xff, 0xff, 0xff,
                                      0xff, 0xff, 0xff, 0xff, 0x01}; /* -1 */
    assert_int_equal(cp2p__kad_msg_decode(typeneg, sizeof(typeneg), &d, &why), CP2P_EPROTO);
    assert_string_equal(why, "unknown kad message type");
    /* The empty message is a valid PUT_VALUE with nothing in it (proto3): the handler decides. */
    assert_int_equal(cp2p__kad_msg_decode(junk, 0, &d, &why), 0);
    assert_int_equal(d.type, CP2P__KAD_PUT_VALUE);
    cp2p__kad_msg_fini(&d);
}

static void oversized_is_refused(void **state)
{
    (void)state;
    cp2p__kad_msg d;
    const char *why = NULL;
    cp2p_buf b;
    uint8_t *big = cp2p_calloc(1, CP2P_KAD_MAX_MSG + 1);
    assert_non_null(big);
    assert_int_equal(cp2p__kad_msg_decode(big, CP2P_KAD_MAX_MSG + 1, &d, &why), CP2P_ELIMIT);
    assert_non_null(why);
    /* Key one byte over the limit; then a record key; then a record value. */
    cp2p_buf_init(&b, CP2P_KAD_MAX_MSG);
    put_len(&b, 2, big, CP2P_KAD_MAX_KEY + 1);
    assert_int_equal(cp2p__kad_msg_decode(b.ptr, b.len, &d, &why), CP2P_EPROTO);
    cp2p_buf_reset(&b);
    put_len(&b, 2, big, CP2P_KAD_MAX_KEY); /* exactly at the limit: fine */
    assert_int_equal(cp2p__kad_msg_decode(b.ptr, b.len, &d, &why), 0);
    assert_int_equal(d.key_len, CP2P_KAD_MAX_KEY);
    cp2p__kad_msg_fini(&d);
    cp2p_buf rec;
    cp2p_buf_init(&rec, CP2P_KAD_MAX_MSG);
    put_len(&rec, 1, big, CP2P_KAD_MAX_KEY + 1);
    cp2p_buf_reset(&b);
    put_len(&b, 3, rec.ptr, rec.len);
    assert_int_equal(cp2p__kad_msg_decode(b.ptr, b.len, &d, &why), CP2P_EPROTO);
    cp2p_buf_reset(&rec);
    put_len(&rec, 2, big, CP2P_KAD_MAX_VALUE + 1);
    cp2p_buf_reset(&b);
    put_len(&b, 3, rec.ptr, rec.len);
    assert_int_equal(cp2p__kad_msg_decode(b.ptr, b.len, &d, &why), CP2P_EPROTO);
    assert_string_equal(why, "kad record value larger than CP2P_KAD_MAX_VALUE");
    /* Encoding past CP2P_KAD_MAX_MSG, or past the buffer's max, is refused. */
    cp2p__kad_msg m = {.type = CP2P__KAD_GET_VALUE, .key = big, .key_len = CP2P_KAD_MAX_MSG};
    cp2p_buf_reset(&b);
    assert_int_equal(cp2p__kad_msg_encode(&m, &b), CP2P_ELIMIT);
    assert_int_equal(b.len, 0);
    cp2p_buf small;
    cp2p_buf_init(&small, 8);
    m.key_len = 16;
    assert_int_equal(cp2p__kad_msg_encode(&m, &small), CP2P_ELIMIT);
    cp2p_buf_fini(&small);
    cp2p_buf_fini(&rec);
    cp2p_buf_fini(&b);
    cp2p_free(big);
}

static void excess_and_invalid_peers_are_dropped_and_counted(void **state)
{
    (void)state;
    cp2p_buf b, peer;
    cp2p__kad_msg d;
    const char *why = NULL;
    cp2p_buf_init(&b, CP2P_KAD_MAX_MSG);
    cp2p_buf_init(&peer, 1 << 16);
    put_varint(&b, 1, 4);
    /* Two invalid IDs first: empty, and a sha2-256 multihash with a short digest. */
    static const uint8_t short_id[] = {0x12, 0x20, 1, 2, 3};
    build_peer(&peer, short_id, 0, 1, 0);
    put_len(&b, 8, peer.ptr, peer.len);
    cp2p_buf_reset(&peer);
    build_peer(&peer, short_id, sizeof(short_id), 1, 0);
    put_len(&b, 8, peer.ptr, peer.len);
    /* One peer with too many addresses plus one invalid address. */
    cp2p_peer_id p0 = pid(0);
    cp2p_buf_reset(&peer);
    build_peer(&peer, p0.bytes, p0.len, CP2P_KAD_MAX_ADDRS_PER_PEER - 1, 0);
    static const uint8_t bad_addr[] = {0x04, 1, 2};
    put_len(&peer, 2, bad_addr, sizeof(bad_addr));
    put_len(&peer, 2, ADDR1, sizeof(ADDR1));
    put_len(&peer, 2, ADDR1, sizeof(ADDR1));
    put_len(&b, 8, peer.ptr, peer.len);
    /* Then more valid peers than the limit. */
    for (int i = 0; i < CP2P_KAD_MAX_PEERS_PER_MSG + 5; i++) {
        cp2p_peer_id p = pid((uint8_t)(i + 1));
        cp2p_buf_reset(&peer);
        build_peer(&peer, p.bytes, p.len, 1, 1);
        put_len(&b, 8, peer.ptr, peer.len);
    }
    /* Providers are a separate list with its own limit. */
    cp2p_buf_reset(&peer);
    build_peer(&peer, p0.bytes, p0.len, 1, 0);
    put_len(&b, 9, peer.ptr, peer.len);
    assert_int_equal(cp2p__kad_msg_decode(b.ptr, b.len, &d, &why), 0);
    assert_int_equal(d.n_closer, CP2P_KAD_MAX_PEERS_PER_MSG);
    /* 2 invalid IDs + (1 + 64 + 5 valid - 64 kept) = 8. */
    assert_int_equal(d.dropped_peers, 2 + 6);
    assert_true(cp2p_peer_id_equal(&d.closer[0].id, &p0));
    /* 34 addresses offered, the first 32 considered (31 good + 1 invalid): 31 kept;
     * 2 over the limit + 1 invalid dropped. */
    assert_int_equal(d.closer[0].n_addrs, CP2P_KAD_MAX_ADDRS_PER_PEER - 1);
    assert_int_equal(d.dropped_addrs, 3);
    cp2p_peer_id last = pid(CP2P_KAD_MAX_PEERS_PER_MSG - 1);
    assert_true(cp2p_peer_id_equal(&d.closer[CP2P_KAD_MAX_PEERS_PER_MSG - 1].id, &last));
    assert_int_equal(d.n_providers, 1);
    /* What was kept encodes and decodes with nothing more dropped. */
    cp2p__kad_msg again;
    cp2p_buf_reset(&peer);
    assert_int_equal(cp2p__kad_msg_encode(&d, &peer), 0);
    assert_int_equal(cp2p__kad_msg_decode(peer.ptr, peer.len, &again, &why), 0);
    assert_int_equal(again.n_closer, d.n_closer);
    assert_int_equal(again.dropped_peers + again.dropped_addrs, 0);
    cp2p__kad_msg_fini(&again);
    cp2p__kad_msg_fini(&d);
    cp2p_buf_fini(&b);
    cp2p_buf_fini(&peer);
}

static void allocation_failures_leak_nothing(void **state)
{
    (void)state;
    cp2p_multiaddr *a1 = ma(ADDR1, sizeof(ADDR1));
    cp2p__kad_peer peers[] = {{.id = pid(1), .addrs = &a1, .n_addrs = 1},
                              {.id = pid(2), .addrs = &a1, .n_addrs = 1}};
    uint8_t v[] = {9, 9};
    cp2p__kad_msg m = {.type = CP2P__KAD_GET_VALUE,
                       .key = v,
                       .key_len = 2,
                       .has_record = true,
                       .record = {.key = v, .key_len = 2, .value = v, .value_len = 2,
                                  .time_received = "t"},
                       .closer = peers,
                       .n_closer = 2,
                       .providers = peers,
                       .n_providers = 1};
    cp2p_buf b;
    cp2p_buf_init(&b, CP2P_KAD_MAX_MSG);
    assert_int_equal(cp2p__kad_msg_encode(&m, &b), 0);
    bool succeeded = false;
    for (long fail = 1; fail < 40 && !succeeded; fail++) {
        cp2p__kad_msg d;
        const char *why = NULL;
        cp2p__alloc_fail_after(fail);
        int rc = cp2p__kad_msg_decode(b.ptr, b.len, &d, &why);
        cp2p__alloc_fail_after(0);
        if (rc == 0) {
            assert_int_equal(d.n_closer, 2);
            assert_int_equal(d.closer[1].n_addrs, 1);
            cp2p__kad_msg_fini(&d);
            succeeded = true;
        } else {
            assert_int_equal(rc, CP2P_ENOMEM);
        }
    }
    assert_true(succeeded);
    for (long fail = 1; fail < 10; fail++) {
        cp2p_buf o;
        cp2p_buf_init(&o, CP2P_KAD_MAX_MSG);
        cp2p__alloc_fail_after(fail);
        int rc = cp2p__kad_msg_encode(&m, &o);
        cp2p__alloc_fail_after(0);
        assert_true(rc == 0 || rc == CP2P_ENOMEM);
        if (rc == 0) {
            assert_int_equal(o.len, b.len);
            assert_memory_equal(o.ptr, b.ptr, b.len);
        }
        cp2p_buf_fini(&o);
    }
    cp2p_buf_fini(&b);
    cp2p_multiaddr_free(a1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trip_every_type),
        cmocka_unit_test(decodes_spec_bytes),
        cmocka_unit_test(malformed_is_refused),
        cmocka_unit_test(oversized_is_refused),
        cmocka_unit_test(excess_and_invalid_peers_are_dropped_and_counted),
        cmocka_unit_test(allocation_failures_leak_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
