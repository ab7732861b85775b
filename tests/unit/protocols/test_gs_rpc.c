/* Pubsub RPC codec: round trip, hand-built frames, malformed input, limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "protocols/gossipsub/gs_rpc.h"
#include "util/limits.h"

static const uint8_t PID[] = {0x00, 0x24, 0x08, 0x01, 0x12, 0x20, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10,
                              11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27,
                              28, 29, 30, 31, 32};

static void round_trip(void **state)
{
    (void)state;
    cp2p__gs_subopt subs[] = {{true, "a"}, {false, "topic-b"}};
    uint8_t seq[8] = {0, 0, 0, 0, 0, 0, 1, 2};
    cp2p__gs_msg msgs[] = {{
        .from = {PID, sizeof(PID)}, .has_from = true,
        .data = {(const uint8_t *)"hello", 5}, .has_data = true,
        .seqno = {seq, 8}, .has_seqno = true,
        .signature = {(const uint8_t *)"sig", 3}, .has_signature = true,
        .topic = "a",
    }, {.topic = "b", .has_data = true}};
    cp2p_slice ids[] = {{(const uint8_t *)"id1", 3}, {(const uint8_t *)"id22", 4}};
    cp2p__gs_ihave ih = {"a", ids, 2};
    cp2p__gs_idlist iw = {ids, 1}, idw = {ids + 1, 1};
    const char *grafts[] = {"a", "c"};
    cp2p__gs_px px = {.record = {(const uint8_t *)"rec", 3}};
    assert_int_equal(cp2p_peer_id_from_bytes(PID, sizeof(PID), &px.peer), 0);
    cp2p__gs_prune pr = {"a", &px, 1, true, 60};
    cp2p__gs_rpc r = {.subs = subs, .n_subs = 2, .msgs = msgs, .n_msgs = 2, .ihave = &ih,
                      .n_ihave = 1, .iwant = &iw, .n_iwant = 1, .graft = grafts, .n_graft = 2,
                      .prune = &pr, .n_prune = 1, .idontwant = &idw, .n_idontwant = 1};
    cp2p_buf b, b2;
    cp2p_buf_init(&b, 4096);
    cp2p_buf_init(&b2, 4096);
    assert_int_equal(cp2p__gs_rpc_encode(&r, &b), 0);
    cp2p__gs_rpc d;
    const char *why = NULL;
    assert_int_equal(cp2p__gs_rpc_decode(b.ptr, b.len, CP2P_GS_MAX_RPC_SIZE, &d, &why), 0);
    assert_int_equal(d.n_subs, 2);
    assert_true(d.subs[0].subscribe);
    assert_false(d.subs[1].subscribe);
    assert_string_equal(d.subs[1].topic, "topic-b");
    assert_int_equal(d.n_msgs, 2);
    assert_string_equal(d.msgs[0].topic, "a");
    assert_true(d.msgs[0].has_from && d.msgs[0].has_seqno && d.msgs[0].has_signature);
    assert_false(d.msgs[0].has_key);
    assert_memory_equal(d.msgs[0].data.ptr, "hello", 5);
    assert_memory_equal(d.msgs[0].seqno.ptr, seq, 8);
    assert_true(d.msgs[1].has_data);
    assert_int_equal(d.msgs[1].data.len, 0);
    assert_false(d.msgs[1].has_from);
    assert_int_equal(d.n_ihave, 1);
    assert_int_equal(d.ihave[0].n_ids, 2);
    assert_memory_equal(d.ihave[0].ids[1].ptr, "id22", 4);
    assert_int_equal(d.n_iwant, 1);
    assert_int_equal(d.n_idontwant, 1);
    assert_memory_equal(d.idontwant[0].ids[0].ptr, "id22", 4);
    assert_int_equal(d.n_graft, 2);
    assert_string_equal(d.graft[1], "c");
    assert_int_equal(d.n_prune, 1);
    assert_true(d.prune[0].has_backoff);
    assert_int_equal(d.prune[0].backoff_s, 60);
    assert_int_equal(d.prune[0].n_peers, 1);
    assert_true(cp2p_peer_id_equal(&d.prune[0].peers[0].peer, &px.peer));
    assert_memory_equal(d.prune[0].peers[0].record.ptr, "rec", 3);
    /* Decoding and encoding again gives the same bytes. */
    assert_int_equal(cp2p__gs_rpc_encode(&d, &b2), 0);
    assert_int_equal(b2.len, b.len);
    assert_memory_equal(b2.ptr, b.ptr, b.len);
    cp2p__gs_rpc_fini(&d);
    /* Sizes match the appended bytes. */
    cp2p_buf_reset(&b2);
    assert_int_equal(cp2p__gs_ctl_prune_append(&b2, &pr), 0);
    assert_int_equal(b2.len, cp2p__gs_ctl_prune_size(&pr));
    cp2p_buf_reset(&b2);
    assert_int_equal(cp2p__gs_rpc_sub_append(&b2, "xyz", true), 0);
    assert_int_equal(b2.len, cp2p__gs_rpc_sub_size("xyz"));
    /* Every truncation fails cleanly or decodes a prefix. */
    for (size_t cut = 0; cut < b.len; cut++) {
        cp2p__gs_rpc t;
        if (cp2p__gs_rpc_decode(b.ptr, cut, CP2P_GS_MAX_RPC_SIZE, &t, &why) == 0) {
            cp2p__gs_rpc_fini(&t);
        }
    }
    cp2p_buf_fini(&b);
    cp2p_buf_fini(&b2);
}

static void malformed(void **state)
{
    (void)state;
    cp2p__gs_rpc d;
    const char *why = NULL;
    /* Truncated length-delimited field, wrong wire type, garbage. */
    const uint8_t t1[] = {0x12, 0x05, 0x0a};
    const uint8_t t2[] = {0x0d, 1, 2, 3, 4};
    const uint8_t t3[] = {0xff, 0xff, 0xff};
    assert_int_equal(cp2p__gs_rpc_decode(t1, sizeof(t1), 1024, &d, &why), CP2P_EPROTO);
    assert_non_null(why);
    assert_int_equal(cp2p__gs_rpc_decode(t2, sizeof(t2), 1024, &d, &why), CP2P_EPROTO);
    assert_int_equal(cp2p__gs_rpc_decode(t3, sizeof(t3), 1024, &d, &why), CP2P_EPROTO);
    /* Over the size limit: refused before parsing. */
    uint8_t big[2000] = {0};
    assert_int_equal(cp2p__gs_rpc_decode(big, sizeof(big), 1024, &d, &why), CP2P_ELIMIT);
    /* Empty RPC is valid. */
    assert_int_equal(cp2p__gs_rpc_decode(big, 0, 1024, &d, &why), 0);
    assert_int_equal(d.n_subs + d.n_msgs, 0);
    cp2p__gs_rpc_fini(&d);
}

static void invalid_entries_dropped(void **state)
{
    (void)state;
    cp2p_buf b;
    cp2p_buf_init(&b, 1 << 20);
    /* Subscription with an embedded NUL in the topic; one with no topic; one good. */
    const uint8_t nul_sub[] = {0x0a, 0x07, 0x08, 0x01, 0x12, 0x03, 'a', 0, 'b'};
    const uint8_t no_topic[] = {0x0a, 0x02, 0x08, 0x01};
    assert_int_equal(cp2p_buf_append(&b, nul_sub, sizeof(nul_sub)), 0);
    assert_int_equal(cp2p_buf_append(&b, no_topic, sizeof(no_topic)), 0);
    assert_int_equal(cp2p__gs_rpc_sub_append(&b, "ok", true), 0);
    /* A message without topic. */
    const uint8_t m_no_topic[] = {0x12, 0x03, 0x12, 0x01, 'x'};
    assert_int_equal(cp2p_buf_append(&b, m_no_topic, sizeof(m_no_topic)), 0);
    /* IWANT with more IDs than the per-RPC control limit, and an empty ID. */
    size_t n = CP2P_GS_MAX_RPC_CONTROL + 10;
    cp2p_slice *ids = calloc(n, sizeof(*ids));
    for (size_t i = 0; i < n; i++) {
        ids[i] = (cp2p_slice){(const uint8_t *)"abcd", i == 0 ? 0 : 4};
    }
    cp2p_buf c;
    cp2p_buf_init(&c, 1 << 20);
    assert_int_equal(cp2p__gs_ctl_idlist_append(&c, 2, ids, n), 0);
    assert_int_equal(cp2p__gs_rpc_control_append(&b, c.ptr, c.len), 0);
    cp2p__gs_rpc d;
    const char *why = NULL;
    assert_int_equal(cp2p__gs_rpc_decode(b.ptr, b.len, CP2P_GS_MAX_RPC_SIZE, &d, &why), 0);
    assert_int_equal(d.n_subs, 1);
    assert_string_equal(d.subs[0].topic, "ok");
    assert_int_equal(d.n_msgs, 0);
    assert_int_equal(d.dropped.bad_topic, 3);
    assert_int_equal(d.dropped.control, 10);
    assert_int_equal(d.dropped.bad_id, 1);
    assert_int_equal(d.n_iwant, 1);
    assert_int_equal(d.iwant[0].n_ids, CP2P_GS_MAX_RPC_CONTROL - 1);
    cp2p__gs_rpc_fini(&d);
    free(ids);
    cp2p_buf_fini(&b);
    cp2p_buf_fini(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trip),
        cmocka_unit_test(malformed),
        cmocka_unit_test(invalid_entries_dropped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
