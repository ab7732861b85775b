/* The DHT's request handler without a host: each request type answered from a routing table,
 * a store and a scripted directory, bad input refused and counted, the per-peer rate. Virtual
 * time throughout. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <cp2p/codec.h>
#include <cp2p/multiaddr.h>
#include <cp2p/peer_id.h>

#include "protocols/kad/kad_handler.h"
#include "util/alloc.h"
#include "util/limits.h"

#define NPEERS 40

/* The n-th test peer: an identity-style peer ID (an Ed25519 protobuf key) whose key bytes
 * are a counter spread by a multiplicative hash; SHA-256 scatters them over the table. */
static cp2p_peer_id rand_peer(void)
{
    static const uint8_t HDR[6] = {0x00, 0x24, 0x08, 0x01, 0x12, 0x20};
    static uint32_t counter;
    cp2p_peer_id p = {.len = 38};
    memcpy(p.bytes, HDR, sizeof(HDR));
    uint32_t x = ++counter * 2654435761u;
    for (size_t i = sizeof(HDR); i < p.len; i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5; /* xorshift32 */
        p.bytes[i] = (uint8_t)x;
    }
    return p;
}

/* The scripted directory: peers[i] has address addr[i] when has_addr[i]; even ones are
 * connected. */
typedef struct {
    cp2p_peer_id self;
    cp2p_peer_id peers[NPEERS];
    cp2p_multiaddr *addr[NPEERS];
    bool has_addr[NPEERS];
    cp2p_multiaddr *self_addr;
    cp2p_peer_id learned;
    size_t n_learned;
} world;

static int find(const world *w, const cp2p_peer_id *p)
{
    for (int i = 0; i < NPEERS; i++) {
        if (cp2p_peer_id_equal(&w->peers[i], p)) {
            return i;
        }
    }
    return -1;
}

static size_t d_addrs(void *ud, const cp2p_peer_id *p, const cp2p_multiaddr **out, size_t max)
{
    world *w = ud;
    int i = find(w, p);
    if (i < 0 || !w->has_addr[i] || max == 0) {
        return 0;
    }
    out[0] = w->addr[i];
    return 1;
}

static bool d_known(void *ud, const cp2p_peer_id *p)
{
    world *w = ud;
    int i = find(w, p);
    return i >= 0 && w->has_addr[i];
}

static bool d_connected(void *ud, const cp2p_peer_id *p)
{
    int i = find(ud, p);
    return i >= 0 && i % 2 == 0;
}

static size_t d_self_addrs(void *ud, cp2p_multiaddr **out, size_t max)
{
    world *w = ud;
    if (max == 0 || cp2p_multiaddr_dup(w->self_addr, &out[0]) != 0) {
        return 0;
    }
    return 1;
}

static void d_learn(void *ud, const cp2p__kad_peer *p)
{
    world *w = ud;
    w->learned = p->id;
    w->n_learned++;
}

static int accept_v(void *ud, const uint8_t *key, size_t key_len, const uint8_t *value,
                    size_t value_len)
{
    (void)ud, (void)key, (void)key_len;
    return value_len > 0 && value[0] == 'X' ? CP2P_EPROTO : 0; /* "X..." is invalid */
}

typedef struct {
    world w;
    cp2p__kad_dir dir;
    cp2p__kad_rt *rt;
    cp2p__kad_store *store;
    cp2p__kad_handler *h;
} fixture;

/* NPEERS peers known to the directory; the first `in_table` of them in the table. */
static int setup_n(void **state, uint32_t burst, size_t in_table)
{
    fixture *f = calloc(1, sizeof(*f));
    assert_non_null(f);
    f->w.self = rand_peer();
    for (size_t i = 0; i < NPEERS; i++) {
        char s[64];
        f->w.peers[i] = rand_peer();
        snprintf(s, sizeof(s), "/ip4/10.0.%zu.1/tcp/4001", i);
        assert_int_equal(cp2p_multiaddr_parse(s, strlen(s), &f->w.addr[i]), 0);
        f->w.has_addr[i] = true;
    }
    assert_int_equal(cp2p_multiaddr_parse("/ip4/10.9.9.9/tcp/1", 19, &f->w.self_addr), 0);
    f->dir = (cp2p__kad_dir){.addrs = d_addrs,
                             .known = d_known,
                             .connected = d_connected,
                             .self_addrs = d_self_addrs,
                             .learn = d_learn,
                             .ud = &f->w};
    cp2p__kad_rt_config rc;
    cp2p__kad_rt_config_default(&rc);
    rc.max_per_group_bucket = rc.max_per_group_table = 0;
    assert_int_equal(cp2p__kad_rt_new(&f->w.self, &rc, &f->rt), 0);
    for (size_t i = 0; i < in_table; i++) {
        cp2p_peer_id chk;
        int r = cp2p__kad_rt_add(f->rt, &f->w.peers[i], NULL, 0, &chk);
        assert_true(r >= 0);
    }
    cp2p__kad_store_config sc;
    cp2p__kad_store_config_default(&sc);
    assert_int_equal(cp2p__kad_store_new(&sc, &f->store), 0);
    assert_int_equal(cp2p__kad_store_add_validator(f->store, "v", accept_v, NULL, NULL), 0);
    cp2p__kad_handler_config hc = {
        .self = f->w.self, .k = 20, .requests_per_sec = 1, .requests_burst = burst};
    assert_int_equal(cp2p__kad_handler_new(&hc, f->rt, f->store, &f->dir, &f->h), 0);
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return setup_n(state, 1000, 30);
}

static int setup_slow(void **state)
{
    return setup_n(state, 3, 30);
}

static int teardown(void **state)
{
    fixture *f = *state;
    cp2p__kad_handler_free(f->h);
    cp2p__kad_store_free(f->store);
    cp2p__kad_rt_free(f->rt);
    for (size_t i = 0; i < NPEERS; i++) {
        cp2p_multiaddr_free(f->w.addr[i]);
    }
    cp2p_multiaddr_free(f->w.self_addr);
    free(f);
    return 0;
}

/* Send m from `from` at now; returns the handler's rc, and on 1 the decoded answer in *ans. */
static int ask(fixture *f, const cp2p_peer_id *from, const cp2p__kad_msg *m, uint64_t now,
               cp2p__kad_msg *ans, const char **why)
{
    cp2p_buf req, out;
    cp2p_buf_init(&req, CP2P_KAD_MAX_MSG);
    cp2p_buf_init(&out, CP2P_KAD_MAX_MSG + CP2P_UVARINT_MAX);
    assert_int_equal(cp2p__kad_msg_encode(m, &req), 0);
    int rc = cp2p__kad_handler_request(f->h, from, req.ptr, req.len, now, &out, why);
    if (rc == 1) {
        uint64_t blen;
        ptrdiff_t used = cp2p_uvarint_decode(out.ptr, out.len, &blen);
        assert_true(used > 0);
        assert_int_equal((size_t)used + blen, out.len); /* exactly one frame */
        const char *w2 = NULL;
        assert_int_equal(cp2p__kad_msg_decode(out.ptr + used, (size_t)blen, ans, &w2), 0);
    } else {
        assert_int_equal(out.len, 0);
    }
    cp2p_buf_fini(&req);
    cp2p_buf_fini(&out);
    return rc;
}

static bool has_peer(const cp2p__kad_peer *ps, size_t n, const cp2p_peer_id *p)
{
    for (size_t i = 0; i < n; i++) {
        if (cp2p_peer_id_equal(&ps[i].id, p)) {
            return true;
        }
    }
    return false;
}

static void find_node_answers_k_closest_but_the_asker(void **state)
{
    fixture *f = *state;
    const char *why = NULL;
    cp2p__kad_msg ans = {0};
    uint8_t key[] = "some key";
    cp2p__kad_msg m = {.type = CP2P__KAD_FIND_NODE, .key = key, .key_len = 8};
    const cp2p_peer_id *from = &f->w.peers[0]; /* in the table */
    assert_int_equal(ask(f, from, &m, 1000, &ans, &why), 1);
    assert_int_equal(ans.type, CP2P__KAD_FIND_NODE);
    assert_int_equal(ans.key_len, 8);
    assert_memory_equal(ans.key, key, 8);
    assert_int_equal(ans.n_closer, 20);
    assert_false(has_peer(ans.closer, ans.n_closer, from));
    /* The table's 21 closest, the asker removed, closest first, with their addresses. */
    cp2p__kad_key target;
    cp2p_peer_id ids[21];
    cp2p__kad_key_of(key, 8, &target);
    size_t got = cp2p__kad_rt_closest(f->rt, &target, ids, 21);
    assert_int_equal(got, 21);
    size_t j = 0;
    for (size_t i = 0; i < got && j < 20; i++) {
        if (cp2p_peer_id_equal(&ids[i], from)) {
            continue;
        }
        assert_true(cp2p_peer_id_equal(&ans.closer[j].id, &ids[i]));
        int w = find(&f->w, &ids[i]);
        assert_int_equal(ans.closer[j].n_addrs, 1);
        assert_true(cp2p_multiaddr_equal(ans.closer[j].addrs[0], f->w.addr[w]));
        assert_int_equal(ans.closer[j].connection,
                         w % 2 == 0 ? CP2P__KAD_CONNECTED : CP2P__KAD_NOT_CONNECTED);
        j++;
    }
    cp2p__kad_msg_fini(&ans);
    cp2p__kad_handler_stats st;
    cp2p__kad_handler_stats_get(f->h, &st);
    assert_int_equal(st.requests_in, 1);
    assert_int_equal(st.answers, 1);
    assert_int_equal(st.bad, 0);
}

static void find_node_skips_peers_without_address(void **state)
{
    fixture *f = *state;
    const char *why = NULL;
    cp2p__kad_msg ans = {0};
    for (size_t i = 0; i < 30; i++) {
        f->w.has_addr[i] = i >= 25; /* only 5 table peers have an address */
    }
    uint8_t key[] = "k";
    cp2p__kad_msg m = {.type = CP2P__KAD_FIND_NODE, .key = key, .key_len = 1};
    assert_int_equal(ask(f, &f->w.peers[35], &m, 0, &ans, &why), 1);
    assert_true(ans.n_closer <= 5);
    for (size_t i = 0; i < ans.n_closer; i++) {
        assert_true(find(&f->w, &ans.closer[i].id) >= 25);
    }
    cp2p__kad_msg_fini(&ans);
}

static void find_node_for_us_answers_us_alone(void **state)
{
    fixture *f = *state;
    const char *why = NULL;
    cp2p__kad_msg ans = {0};
    cp2p__kad_msg m = {
        .type = CP2P__KAD_FIND_NODE, .key = f->w.self.bytes, .key_len = f->w.self.len};
    assert_int_equal(ask(f, &f->w.peers[1], &m, 0, &ans, &why), 1);
    assert_int_equal(ans.n_closer, 1);
    assert_true(cp2p_peer_id_equal(&ans.closer[0].id, &f->w.self));
    assert_int_equal(ans.closer[0].n_addrs, 1);
    assert_true(cp2p_multiaddr_equal(ans.closer[0].addrs[0], f->w.self_addr));
    assert_int_equal(ans.closer[0].connection, CP2P__KAD_CONNECTED);
    cp2p__kad_msg_fini(&ans);
}

static void find_node_adds_a_known_target_outside_the_table(void **state)
{
    fixture *f = *state;
    const char *why = NULL;
    cp2p__kad_msg ans = {0};
    /* peers[39] is not in the table but has an address: go answers it too. */
    cp2p_peer_id *t = &f->w.peers[39];
    cp2p__kad_msg m = {.type = CP2P__KAD_FIND_NODE, .key = t->bytes, .key_len = t->len};
    assert_int_equal(ask(f, &f->w.peers[1], &m, 0, &ans, &why), 1);
    assert_true(has_peer(ans.closer, ans.n_closer, t));
    cp2p__kad_msg_fini(&ans);
    /* ... but never to itself, nor without an address. */
    assert_int_equal(ask(f, t, &m, 0, &ans, &why), 1);
    assert_false(has_peer(ans.closer, ans.n_closer, t));
    cp2p__kad_msg_fini(&ans);
    f->w.has_addr[39] = false;
    assert_int_equal(ask(f, &f->w.peers[1], &m, 0, &ans, &why), 1);
    assert_false(has_peer(ans.closer, ans.n_closer, t));
    cp2p__kad_msg_fini(&ans);
}

static void ping_answers_ping(void **state)
{
    fixture *f = *state;
    const char *why = NULL;
    cp2p__kad_msg ans = {0};
    cp2p__kad_msg m = {.type = CP2P__KAD_PING};
    assert_int_equal(ask(f, &f->w.peers[2], &m, 0, &ans, &why), 1);
    assert_int_equal(ans.type, CP2P__KAD_PING);
    assert_int_equal(ans.n_closer, 0);
    assert_false(ans.has_record);
    cp2p__kad_msg_fini(&ans);
}

static void put_then_get_value(void **state)
{
    fixture *f = *state;
    const char *why = NULL;
    cp2p__kad_msg ans = {0};
    uint8_t key[] = "/v/a", val[] = "hello";
    cp2p__kad_msg put = {.type = CP2P__KAD_PUT_VALUE,
                         .key = key,
                         .key_len = 4,
                         .has_record = true,
                         .record = {.key = key, .key_len = 4, .value = val, .value_len = 5}};
    assert_int_equal(ask(f, &f->w.peers[3], &put, 100, &ans, &why), 1);
    /* The echo of the record, as go and js do. */
    assert_int_equal(ans.type, CP2P__KAD_PUT_VALUE);
    assert_true(ans.has_record);
    assert_int_equal(ans.record.value_len, 5);
    assert_memory_equal(ans.record.value, val, 5);
    assert_null(ans.record.time_received);
    cp2p__kad_msg_fini(&ans);
    /* The same again refreshes its received time (stored again, answered again). */
    assert_int_equal(ask(f, &f->w.peers[3], &put, 200, &ans, &why), 1);
    cp2p__kad_msg_fini(&ans);
    cp2p__kad_msg get = {.type = CP2P__KAD_GET_VALUE, .key = key, .key_len = 4};
    assert_int_equal(ask(f, &f->w.peers[4], &get, 300, &ans, &why), 1);
    assert_int_equal(ans.type, CP2P__KAD_GET_VALUE);
    assert_true(ans.has_record);
    assert_int_equal(ans.record.key_len, 4);
    assert_memory_equal(ans.record.key, key, 4);
    assert_int_equal(ans.record.value_len, 5);
    assert_memory_equal(ans.record.value, val, 5);
    assert_int_equal(ans.n_closer, 20); /* and closer peers */
    cp2p__kad_msg_fini(&ans);
    /* A key we have no record of: closer peers only. */
    uint8_t other[] = "/v/b";
    get.key = other;
    assert_int_equal(ask(f, &f->w.peers[4], &get, 300, &ans, &why), 1);
    assert_false(ans.has_record);
    assert_int_equal(ans.n_closer, 20);
    cp2p__kad_msg_fini(&ans);
    cp2p__kad_handler_stats st;
    cp2p__kad_handler_stats_get(f->h, &st);
    assert_int_equal(st.records_stored, 2);
    assert_int_equal(st.answers, 4);
}

static void bad_puts_are_refused_and_counted(void **state)
{
    fixture *f = *state;
    const char *why = NULL;
    cp2p__kad_msg ans = {0};
    uint8_t key[] = "/v/a", other[] = "/v/b", bad[] = "Xbad", nons[] = "/zz/a";
    cp2p__kad_msg put = {.type = CP2P__KAD_PUT_VALUE,
                         .key = key,
                         .key_len = 4,
                         .has_record = true,
                         .record = {.key = key, .key_len = 4, .value = bad, .value_len = 4}};
    /* Invalid by the namespace's validator. */
    assert_int_equal(ask(f, &f->w.peers[3], &put, 0, &ans, &why), CP2P_EPROTO);
    assert_non_null(why);
    /* Record of another key. */
    put.record = (cp2p__kad_record){.key = other, .key_len = 4, .value = key, .value_len = 4};
    assert_int_equal(ask(f, &f->w.peers[3], &put, 0, &ans, &why), CP2P_EPROTO);
    /* No record at all. */
    put.has_record = false;
    assert_int_equal(ask(f, &f->w.peers[3], &put, 0, &ans, &why), CP2P_EPROTO);
    /* A namespace without validator. */
    put = (cp2p__kad_msg){.type = CP2P__KAD_PUT_VALUE,
                          .key = nons,
                          .key_len = 5,
                          .has_record = true,
                          .record = {.key = nons, .key_len = 5, .value = key, .value_len = 4}};
    assert_int_equal(ask(f, &f->w.peers[3], &put, 0, &ans, &why), CP2P_ENOTSUP);
    cp2p__kad_handler_stats st;
    cp2p__kad_handler_stats_get(f->h, &st);
    assert_int_equal(st.bad, 4);
    assert_int_equal(st.records_stored, 0);
    assert_int_equal(st.answers, 0);
}

static void providers_are_added_by_themselves_only(void **state)
{
    fixture *f = *state;
    const char *why = NULL;
    cp2p__kad_msg ans = {0};
    uint8_t key[] = "cid";
    cp2p_peer_id *prov = &f->w.peers[5];
    cp2p_multiaddr *pa[1] = {f->w.addr[5]};
    cp2p__kad_peer self_ann = {.id = *prov, .addrs = pa, .n_addrs = 1};
    cp2p__kad_msg add = {.type = CP2P__KAD_ADD_PROVIDER,
                         .key = key,
                         .key_len = 3,
                         .providers = &self_ann,
                         .n_providers = 1};
    /* Announced by someone else: ignored (no answer either way). */
    assert_int_equal(ask(f, &f->w.peers[6], &add, 0, &ans, &why), 0);
    assert_int_equal(f->w.n_learned, 0);
    /* By itself: stored, its addresses learned. */
    assert_int_equal(ask(f, prov, &add, 0, &ans, &why), 0);
    assert_int_equal(f->w.n_learned, 1);
    assert_true(cp2p_peer_id_equal(&f->w.learned, prov));
    /* A provider the directory has no address for is still answered. */
    cp2p_peer_id bare = rand_peer();
    self_ann.id = bare;
    assert_int_equal(ask(f, &bare, &add, 0, &ans, &why), 0);
    cp2p__kad_msg get = {.type = CP2P__KAD_GET_PROVIDERS, .key = key, .key_len = 3};
    assert_int_equal(ask(f, &f->w.peers[7], &get, 10, &ans, &why), 1);
    assert_int_equal(ans.type, CP2P__KAD_GET_PROVIDERS);
    assert_int_equal(ans.n_providers, 2);
    assert_true(has_peer(ans.providers, ans.n_providers, prov));
    assert_true(has_peer(ans.providers, ans.n_providers, &bare));
    assert_int_equal(ans.n_closer, 20);
    cp2p__kad_msg_fini(&ans);
    /* We provide it too: we are in the answer with our addresses. */
    assert_int_equal(cp2p__kad_store_add_provider(f->store, key, 3, &f->w.self, 20), 0);
    assert_int_equal(ask(f, &f->w.peers[7], &get, 30, &ans, &why), 1);
    assert_int_equal(ans.n_providers, 3);
    assert_true(has_peer(ans.providers, ans.n_providers, &f->w.self));
    for (size_t i = 0; i < ans.n_providers; i++) {
        if (cp2p_peer_id_equal(&ans.providers[i].id, &f->w.self)) {
            assert_int_equal(ans.providers[i].n_addrs, 1);
            assert_true(cp2p_multiaddr_equal(ans.providers[i].addrs[0], f->w.self_addr));
        }
    }
    cp2p__kad_msg_fini(&ans);
    cp2p__kad_handler_stats st;
    cp2p__kad_handler_stats_get(f->h, &st);
    assert_int_equal(st.providers_stored, 2);
    assert_int_equal(st.answers, 2);
}

static void bad_input_is_refused_and_counted(void **state)
{
    fixture *f = *state;
    const char *why = NULL;
    cp2p__kad_msg ans = {0};
    cp2p_buf out;
    cp2p_buf_init(&out, CP2P_KAD_MAX_MSG + CP2P_UVARINT_MAX);
    /* Not protobuf. */
    static const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x0f};
    assert_int_equal(cp2p__kad_handler_request(f->h, &f->w.peers[8], junk, sizeof(junk), 0,
                                               &out, &why),
                     CP2P_EPROTO);
    assert_non_null(why);
    assert_int_equal(out.len, 0);
    /* Too large. */
    static uint8_t big[CP2P_KAD_MAX_MSG + 1];
    assert_true(cp2p__kad_handler_request(f->h, &f->w.peers[8], big, sizeof(big), 0, &out,
                                          &why) < 0);
    cp2p_buf_fini(&out);
    /* A request that needs a key without one. */
    static const cp2p__kad_type keyed[] = {CP2P__KAD_FIND_NODE, CP2P__KAD_GET_VALUE,
                                           CP2P__KAD_GET_PROVIDERS, CP2P__KAD_ADD_PROVIDER,
                                           CP2P__KAD_PUT_VALUE};
    for (size_t i = 0; i < sizeof(keyed) / sizeof(keyed[0]); i++) {
        cp2p__kad_msg m = {.type = keyed[i]};
        why = NULL;
        assert_int_equal(ask(f, &f->w.peers[8], &m, 0, &ans, &why), CP2P_EPROTO);
        assert_non_null(why);
    }
    cp2p__kad_handler_stats st;
    cp2p__kad_handler_stats_get(f->h, &st);
    assert_int_equal(st.requests_in, 7);
    assert_int_equal(st.bad, 7);
    assert_int_equal(st.answers, 0);
}

static void rate_is_per_peer(void **state)
{
    fixture *f = *state; /* burst 3, 1 a second */
    const char *why = NULL;
    cp2p__kad_msg ans = {0};
    cp2p__kad_msg m = {.type = CP2P__KAD_PING};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ask(f, &f->w.peers[9], &m, 1000, &ans, &why), 1);
        cp2p__kad_msg_fini(&ans);
    }
    assert_int_equal(ask(f, &f->w.peers[9], &m, 1000, &ans, &why), CP2P_ELIMIT);
    assert_non_null(why);
    /* Refused before decoding: even junk costs a token and is not counted as bad. */
    cp2p_buf out;
    cp2p_buf_init(&out, CP2P_KAD_MAX_MSG + CP2P_UVARINT_MAX);
    static const uint8_t junk[] = {0xff};
    assert_int_equal(
        cp2p__kad_handler_request(f->h, &f->w.peers[9], junk, 1, 1000, &out, &why),
        CP2P_ELIMIT);
    cp2p_buf_fini(&out);
    /* Another peer has its own bucket; a second later one more token. */
    assert_int_equal(ask(f, &f->w.peers[10], &m, 1000, &ans, &why), 1);
    cp2p__kad_msg_fini(&ans);
    assert_int_equal(ask(f, &f->w.peers[9], &m, 2000, &ans, &why), 1);
    cp2p__kad_msg_fini(&ans);
    assert_int_equal(ask(f, &f->w.peers[9], &m, 2000, &ans, &why), CP2P_ELIMIT);
    cp2p__kad_handler_stats st;
    cp2p__kad_handler_stats_get(f->h, &st);
    assert_int_equal(st.requests_in, 8);
    assert_int_equal(st.refused_rate, 3);
    assert_int_equal(st.bad, 0);
    assert_int_equal(st.answers, 5);
}

static void requester_is_seen(void **state)
{
    fixture *f = *state;
    const char *why = NULL;
    cp2p__kad_msg ans = {0};
    cp2p__kad_msg m = {.type = CP2P__KAD_PING};
    /* Table entries added at 0 are stale after 5 min; a request refreshes its sender. */
    uint64_t late = 10 * 60 * 1000;
    cp2p_peer_id stale[NPEERS];
    size_t before = cp2p__kad_rt_stale(f->rt, late, stale, NPEERS);
    assert_int_equal(before, 30);
    assert_int_equal(ask(f, &f->w.peers[11], &m, late, &ans, &why), 1);
    cp2p__kad_msg_fini(&ans);
    assert_int_equal(cp2p__kad_rt_stale(f->rt, late, stale, NPEERS), 29);
}

static void config_is_checked(void **state)
{
    fixture *f = *state;
    cp2p__kad_handler *h = NULL;
    cp2p__kad_handler_config hc = {.self = f->w.self, .k = 0, .requests_per_sec = 1,
                                   .requests_burst = 1};
    assert_int_equal(cp2p__kad_handler_new(&hc, f->rt, f->store, &f->dir, &h), CP2P_EINVAL);
    hc.k = CP2P_KAD_MAX_K + 1;
    assert_int_equal(cp2p__kad_handler_new(&hc, f->rt, f->store, &f->dir, &h), CP2P_EINVAL);
    hc.k = 20;
    hc.requests_per_sec = 0;
    assert_int_equal(cp2p__kad_handler_new(&hc, f->rt, f->store, &f->dir, &h), CP2P_EINVAL);
    hc.requests_per_sec = 1;
    cp2p__kad_dir d = f->dir;
    d.learn = NULL;
    assert_int_equal(cp2p__kad_handler_new(&hc, f->rt, f->store, &d, &h), CP2P_EINVAL);
    assert_int_equal(cp2p__kad_handler_new(&hc, f->rt, f->store, &f->dir, &h), 0);
    cp2p__kad_handler_free(h);
    cp2p__kad_handler_free(NULL);
}

/* Each allocation of the handler failing in turn: an error (no output, nothing leaked) or a
 * whole answer, never a partial one. */
static void allocation_failures_leak_nothing(void **state)
{
    fixture *f = *state;
    uint8_t key[] = "/v/a", val[] = "hello";
    assert_int_equal(cp2p__kad_store_add_provider(f->store, key, 4, &f->w.peers[1], 0), 0);
    assert_int_equal(cp2p__kad_store_add_provider(f->store, key, 4, &f->w.self, 0), 0);
    const cp2p__kad_msg reqs[] = {
        {.type = CP2P__KAD_FIND_NODE, .key = f->w.self.bytes, .key_len = f->w.self.len},
        {.type = CP2P__KAD_FIND_NODE, .key = key, .key_len = 4},
        {.type = CP2P__KAD_GET_PROVIDERS, .key = key, .key_len = 4},
        {.type = CP2P__KAD_PUT_VALUE,
         .key = key,
         .key_len = 4,
         .has_record = true,
         .record = {.key = key, .key_len = 4, .value = val, .value_len = 5}},
        {.type = CP2P__KAD_GET_VALUE, .key = key, .key_len = 4},
    };
    for (size_t r = 0; r < sizeof(reqs) / sizeof(reqs[0]); r++) {
        cp2p_buf req;
        cp2p_buf_init(&req, CP2P_KAD_MAX_MSG);
        assert_int_equal(cp2p__kad_msg_encode(&reqs[r], &req), 0);
        bool done = false;
        for (long fail = 1; fail < 200 && !done; fail++) {
            cp2p_buf out;
            const char *why = NULL;
            cp2p_buf_init(&out, CP2P_KAD_MAX_MSG + CP2P_UVARINT_MAX);
            cp2p__alloc_fail_after(fail);
            int rc = cp2p__kad_handler_request(f->h, &f->w.peers[2], req.ptr, req.len, 0, &out,
                                               &why);
            cp2p__alloc_fail_after(0);
            if (rc == 1) {
                done = true;
                assert_true(out.len > 0);
            } else {
                assert_int_equal(rc, CP2P_ENOMEM);
                assert_non_null(why);
                assert_int_equal(out.len, 0);
            }
            cp2p_buf_fini(&out);
        }
        assert_true(done);
        cp2p_buf_fini(&req);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(find_node_answers_k_closest_but_the_asker, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(find_node_skips_peers_without_address, setup, teardown),
        cmocka_unit_test_setup_teardown(find_node_for_us_answers_us_alone, setup, teardown),
        cmocka_unit_test_setup_teardown(find_node_adds_a_known_target_outside_the_table, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(ping_answers_ping, setup, teardown),
        cmocka_unit_test_setup_teardown(put_then_get_value, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_puts_are_refused_and_counted, setup, teardown),
        cmocka_unit_test_setup_teardown(providers_are_added_by_themselves_only, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(bad_input_is_refused_and_counted, setup, teardown),
        cmocka_unit_test_setup_teardown(rate_is_per_peer, setup_slow, teardown),
        cmocka_unit_test_setup_teardown(requester_is_seen, setup, teardown),
        cmocka_unit_test_setup_teardown(config_is_checked, setup, teardown),
        cmocka_unit_test_setup_teardown(allocation_failures_leak_nothing, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
