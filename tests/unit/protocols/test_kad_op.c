/* Kademlia operations (kad_op.h) on virtual time, without sockets: GET's quorum and invalid
 * records, PUT's store phase and its outcome, GET_PROVIDERS stopping at its maximum,
 * FIND_PEER stopping when the target's addresses arrive, a lookup's deadline with and without
 * answers, and cancellation. Answers are built by hand, as a peer would send them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <cp2p/peer_id.h>

#include "protocols/kad/kad_op.h"
#include "util/limits.h"

static const uint8_t HDR[6] = {0x00, 0x24, 0x08, 0x01, 0x12, 0x20};

static cp2p_peer_id make_id(uint8_t n)
{
    cp2p_peer_id p;
    memset(&p, 0, sizeof(p));
    memcpy(p.bytes, HDR, 6);
    memset(p.bytes + 6, n, 32);
    p.len = 38;
    return p;
}

static cp2p__kad_op *op_new(cp2p__kad_op_type type, const uint8_t *key, size_t key_len,
                            uint32_t quorum, size_t max_providers, int npeers)
{
    cp2p__kad_op_config cfg = {.quorum = quorum, .max_providers = max_providers};
    cp2p__kad_lookup_config_default(&cfg.lookup);
    cfg.lookup.k = 3;
    cfg.lookup.alpha = 3;
    cfg.lookup.query_timeout_ms = 1000;
    cfg.lookup.timeout_ms = 5000;
    cp2p_peer_id self = make_id(200);
    cp2p__kad_op *op;
    assert_int_equal(cp2p__kad_op_new(type, key, key_len, &self, &cfg, 0, &op), 0);
    for (int i = 1; i <= npeers; i++) {
        cp2p_peer_id p = make_id((uint8_t)i);
        assert_int_equal(cp2p__kad_op_seed(op, &p), 0);
    }
    return op;
}

/* Take every message the op wants to send now; returns how many (peers in out). */
static size_t take(cp2p__kad_op *op, uint64_t now, cp2p__kad_op_send *out, size_t max)
{
    size_t n = 0;
    while (n < max && cp2p__kad_op_next(op, now, &out[n])) {
        n++;
    }
    return n;
}

static int status_of(const cp2p__kad_op *op)
{
    int st = 1;
    assert_true(cp2p__kad_op_done(op, &st));
    return st;
}

static void get_quorum_and_invalid_records(void **state)
{
    (void)state;
    static const uint8_t key[] = "/v/key";
    cp2p__kad_op *op = op_new(CP2P__KAD_OP_GET, key, sizeof(key) - 1, 2, 0, 3);
    cp2p__kad_op_send snd[8];
    assert_int_equal(take(op, 0, snd, 8), 3);
    assert_false(snd[0].store);
    cp2p__kad_record rec = {.key = (uint8_t *)key, .key_len = sizeof(key) - 1,
                            .value = (uint8_t *)"v1", .value_len = 2};
    cp2p__kad_msg m = {.type = CP2P__KAD_GET_VALUE, .has_record = true, .record = rec};
    /* A record the store refused, then one for another key: both counted, neither kept. */
    assert_int_equal(cp2p__kad_op_on_answer(op, &snd[0].peer, &m, false, 10), 0);
    cp2p__kad_record other = rec;
    other.key = (uint8_t *)"/v/other";
    other.key_len = 8;
    cp2p__kad_msg m2 = {.type = CP2P__KAD_GET_VALUE, .has_record = true, .record = other};
    assert_int_equal(cp2p__kad_op_on_answer(op, &snd[1].peer, &m2, true, 10), 0);
    int st;
    assert_false(cp2p__kad_op_done(op, &st));
    /* Our own record counted as one answer, then one valid answer: the quorum of 2. */
    cp2p_peer_id self = make_id(200);
    assert_int_equal(cp2p__kad_op_add_value(op, &self, (const uint8_t *)"v0", 2), 0);
    assert_int_equal(cp2p__kad_op_on_answer(op, &snd[2].peer, &m, true, 20), 0);
    assert_int_equal(status_of(op), 0);
    const uint8_t *vals[4];
    size_t lens[4];
    assert_int_equal(cp2p__kad_op_values(op, vals, lens, 4), 2);
    assert_memory_equal(vals[1], "v1", 2);
    cp2p__kad_op_stats s;
    cp2p__kad_op_stats_get(op, &s);
    assert_int_equal(s.values_invalid, 2);
    assert_false(cp2p__kad_op_next(op, 30, &snd[0])); /* done: nothing more to send */
    cp2p__kad_op_free(op);
}

static void put_store_phase(void **state)
{
    (void)state;
    static const uint8_t key[] = "/v/put";
    cp2p__kad_op *op = op_new(CP2P__KAD_OP_PUT, key, sizeof(key) - 1, 0, 0, 3);
    cp2p__kad_op_send snd[8];
    assert_int_equal(take(op, 0, snd, 8), 3);
    cp2p__kad_msg empty = {.type = CP2P__KAD_FIND_NODE};
    assert_int_equal(cp2p__kad_op_on_answer(op, &snd[0].peer, &empty, false, 5), 0);
    assert_int_equal(cp2p__kad_op_on_answer(op, &snd[1].peer, &empty, false, 5), 0);
    cp2p__kad_op_on_failure(op, &snd[2].peer, false, 5);
    /* The lookup is over: the two that answered get the record. */
    cp2p__kad_op_send st[8];
    assert_int_equal(take(op, 6, st, 8), 2);
    assert_true(st[0].store && st[1].store);
    int status;
    assert_false(cp2p__kad_op_done(op, &status));
    cp2p__kad_op_on_stored(op, &st[0].peer, true);
    cp2p__kad_op_on_failure(op, &st[1].peer, true, 7);
    assert_int_equal(status_of(op), 0);
    assert_int_equal(cp2p__kad_op_stored(op), 1);
    cp2p__kad_op_free(op);

    /* Nobody took it: CP2P_ENOENT. */
    op = op_new(CP2P__KAD_OP_PROVIDE, key, sizeof(key) - 1, 0, 0, 1);
    assert_int_equal(take(op, 0, snd, 8), 1);
    assert_int_equal(cp2p__kad_op_on_answer(op, &snd[0].peer, &empty, false, 5), 0);
    assert_int_equal(take(op, 6, st, 8), 1);
    cp2p__kad_op_on_stored(op, &st[0].peer, false);
    assert_int_equal(status_of(op), CP2P_ENOENT);
    cp2p__kad_op_free(op);
}

static void providers_stop_at_max(void **state)
{
    (void)state;
    static const uint8_t key[] = "cid";
    cp2p__kad_op *op = op_new(CP2P__KAD_OP_FIND_PROVIDERS, key, 3, 0, 2, 3);
    cp2p_peer_id local = make_id(50);
    cp2p__kad_op_add_providers(op, &local, 1);
    cp2p__kad_op_send snd[8];
    assert_int_equal(take(op, 0, snd, 8), 3);
    cp2p__kad_peer prov[2] = {{.id = make_id(50)}, {.id = make_id(51)}};
    cp2p__kad_msg m = {.type = CP2P__KAD_GET_PROVIDERS, .providers = prov, .n_providers = 2};
    assert_int_equal(cp2p__kad_op_on_answer(op, &snd[0].peer, &m, false, 5), 0);
    assert_int_equal(status_of(op), 0); /* 50 (known, not counted twice) and 51 */
    size_t n;
    const cp2p_peer_id *p = cp2p__kad_op_providers(op, &n);
    assert_int_equal(n, 2);
    assert_true(cp2p_peer_id_equal(&p[1], &prov[1].id));
    cp2p__kad_op_free(op);
}

static void find_peer_stops_on_addresses(void **state)
{
    (void)state;
    cp2p_peer_id target = make_id(99);
    cp2p__kad_op *op = op_new(CP2P__KAD_OP_FIND_PEER, target.bytes, target.len, 0, 0, 2);
    cp2p__kad_op_send snd[8];
    assert_int_equal(take(op, 0, snd, 8), 2);
    /* The target without addresses does not end it; with one it does. */
    cp2p__kad_peer bare = {.id = target};
    cp2p__kad_msg m = {.type = CP2P__KAD_FIND_NODE, .closer = &bare, .n_closer = 1};
    assert_int_equal(cp2p__kad_op_on_answer(op, &snd[0].peer, &m, false, 5), 0);
    int st;
    assert_false(cp2p__kad_op_done(op, &st));
    cp2p_multiaddr *fake = NULL;
    cp2p__kad_peer with = {.id = target, .addrs = &fake, .n_addrs = 1};
    cp2p__kad_msg m2 = {.type = CP2P__KAD_FIND_NODE, .closer = &with, .n_closer = 1};
    assert_int_equal(cp2p__kad_op_on_answer(op, &snd[1].peer, &m2, false, 6), 0);
    assert_int_equal(status_of(op), 0);
    cp2p__kad_op_free(op);
    /* Already known to the caller. */
    op = op_new(CP2P__KAD_OP_FIND_PEER, target.bytes, target.len, 0, 0, 2);
    cp2p__kad_op_target_found(op);
    assert_int_equal(status_of(op), 0);
    cp2p__kad_op_free(op);
}

static void deadline(void **state)
{
    (void)state;
    static const uint8_t key[] = "k";
    cp2p__kad_op_send snd[8];
    cp2p_peer_id out[8];
    /* Nobody answers: every query times out at 1 s and nobody is left to ask. The lookup
     * itself completed (its result is empty: the caller reports CP2P_ENOENT for CLOSEST). */
    cp2p__kad_op *op = op_new(CP2P__KAD_OP_CLOSEST, key, 1, 0, 0, 2);
    assert_int_equal(take(op, 0, snd, 8), 2);
    assert_int_equal(cp2p__kad_op_tick(op, 1500, out, 8), 2);
    assert_int_equal(take(op, 1500, snd, 8), 0);
    assert_int_equal(status_of(op), 0);
    assert_int_equal(cp2p__kad_op_closest(op, out, 8), 0);
    cp2p__kad_op_free(op);
    /* A PUT whose lookup found nobody: stored nowhere. */
    op = op_new(CP2P__KAD_OP_PUT, key, 1, 0, 0, 2);
    assert_int_equal(take(op, 0, snd, 8), 2);
    (void)cp2p__kad_op_tick(op, 900, out, 8);
    (void)cp2p__kad_op_tick(op, 5000, out, 8);
    assert_int_equal(take(op, 5000, snd, 8), 0);
    assert_int_equal(status_of(op), CP2P_ENOENT);
    cp2p__kad_op_free(op);
    /* One answered, the other timed out: what it found is the result. */
    op = op_new(CP2P__KAD_OP_CLOSEST, key, 1, 0, 0, 2);
    assert_int_equal(take(op, 0, snd, 8), 2);
    cp2p__kad_msg empty = {.type = CP2P__KAD_FIND_NODE};
    assert_int_equal(cp2p__kad_op_on_answer(op, &snd[0].peer, &empty, false, 5), 0);
    (void)cp2p__kad_op_tick(op, 6000, out, 8);
    assert_int_equal(status_of(op), 0);
    assert_int_equal(cp2p__kad_op_closest(op, out, 8), 1);
    cp2p__kad_op_free(op);
    /* A GET that found nothing in time. */
    op = op_new(CP2P__KAD_OP_GET, key, 1, 1, 0, 1);
    assert_int_equal(take(op, 0, snd, 8), 1);
    assert_int_equal(cp2p__kad_op_on_answer(op, &snd[0].peer, &empty, false, 5), 0);
    assert_int_equal(status_of(op), CP2P_ENOENT); /* lookup over, no value */
    cp2p__kad_op_free(op);
}

static void cancel_and_bad_config(void **state)
{
    (void)state;
    static const uint8_t key[] = "k";
    cp2p__kad_op *op = op_new(CP2P__KAD_OP_REFRESH, key, 1, 0, 0, 2);
    cp2p__kad_op_cancel(op, CP2P_ECANCELED);
    assert_int_equal(status_of(op), CP2P_ECANCELED);
    cp2p__kad_op_send snd;
    assert_false(cp2p__kad_op_next(op, 0, &snd));
    cp2p__kad_op_free(op);
    cp2p__kad_op_config cfg = {0};
    cp2p__kad_lookup_config_default(&cfg.lookup);
    cp2p_peer_id self = make_id(1);
    assert_int_equal(cp2p__kad_op_new(CP2P__KAD_OP_FIND_PROVIDERS, key, 1, &self, &cfg, 0, &op),
                     CP2P_EINVAL); /* max_providers 0 */
    uint8_t big[CP2P_KAD_MAX_KEY + 1] = {0};
    assert_int_equal(cp2p__kad_op_new(CP2P__KAD_OP_GET, big, sizeof(big), &self, &cfg, 0, &op),
                     CP2P_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(get_quorum_and_invalid_records),
        cmocka_unit_test(put_store_phase),
        cmocka_unit_test(providers_stop_at_max),
        cmocka_unit_test(find_peer_stops_on_addresses),
        cmocka_unit_test(deadline),
        cmocka_unit_test(cancel_and_bad_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
