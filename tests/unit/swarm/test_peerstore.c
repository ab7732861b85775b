/* The peerstore: addresses with TTLs on virtual time, source order, caps, eviction, peer data
 * round trips, SQLite persistence (reload, expiry, schema version, corrupt files) and
 * allocation failures. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include <cp2p/keys.h>
#include <cp2p/log.h>
#include <cp2p/multiaddr.h>
#include <cp2p/peerstore.h>

#include "util/alloc.h"
#include "util/limits.h"

/* A wall-clock-like base, so persisted times look real. */
#define T0 UINT64_C(1700000000000)

static cp2p_peer_id make_peer(uint8_t n)
{
    uint8_t seed[32];
    cp2p_privkey *k = NULL;
    cp2p_peer_id id;
    memset(seed, n, sizeof(seed));
    assert_int_equal(cp2p_privkey_from_seed(CP2P_KEY_ED25519, seed, &k), 0);
    assert_int_equal(cp2p_peer_id_from_pubkey(cp2p_privkey_public(k), &id), 0);
    cp2p_privkey_free(k);
    return id;
}

static size_t peer_pubkey_pb(uint8_t n, uint8_t *out)
{
    uint8_t seed[32];
    cp2p_privkey *k = NULL;
    cp2p_buf b;
    memset(seed, n, sizeof(seed));
    assert_int_equal(cp2p_privkey_from_seed(CP2P_KEY_ED25519, seed, &k), 0);
    cp2p_buf_init(&b, CP2P_KEY_MARSHAL_MAX);
    assert_int_equal(cp2p_pubkey_marshal(cp2p_privkey_public(k), &b), 0);
    memcpy(out, b.ptr, b.len);
    size_t len = b.len;
    cp2p_buf_fini(&b);
    cp2p_privkey_free(k);
    return len;
}

static cp2p_multiaddr *ma(const char *s)
{
    cp2p_multiaddr *m = NULL;
    assert_int_equal(cp2p_multiaddr_parse(s, strlen(s), &m), 0);
    return m;
}

static void ma_tcp(cp2p_multiaddr **out, size_t n, unsigned first_port)
{
    for (size_t i = 0; i < n; i++) {
        char s[64];
        snprintf(s, sizeof(s), "/ip4/10.0.0.1/tcp/%u", first_port + (unsigned)i);
        out[i] = ma(s);
    }
}

static void ma_free_all(cp2p_multiaddr **m, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        cp2p_multiaddr_free(m[i]);
    }
}

static bool addr_is(const cp2p_peerstore_addr *a, const cp2p_multiaddr *m)
{
    return cp2p_multiaddr_equal(a->addr, m);
}

static cp2p_peerstore *open_mem(size_t max_peers, size_t max_addrs)
{
    cp2p_peerstore_config cfg;
    cp2p_peerstore *ps = NULL;
    cp2p_peerstore_config_default(&cfg);
    if (max_peers > 0) {
        cfg.max_peers = max_peers;
    }
    if (max_addrs > 0) {
        cfg.max_addrs_per_peer = max_addrs;
    }
    assert_int_equal(cp2p_peerstore_open(&cfg, NULL, T0, &ps), 0);
    return ps;
}

/* A temp dir with a file path inside; removed by tmp_cleanup. */
typedef struct tmpdb {
    char dir[64];
    char path[128];
} tmpdb;

static void tmp_make(tmpdb *t)
{
    snprintf(t->dir, sizeof(t->dir), "/tmp/cp2p-ps-XXXXXX");
    assert_non_null(mkdtemp(t->dir));
    snprintf(t->path, sizeof(t->path), "%s/peers.db", t->dir);
}

static void tmp_cleanup(tmpdb *t)
{
    char p[160];
    static const char *const suffix[] = {"", "-wal", "-shm", "-journal"};
    for (size_t i = 0; i < 4; i++) {
        snprintf(p, sizeof(p), "%s%s", t->path, suffix[i]);
        (void)unlink(p);
    }
    assert_int_equal(rmdir(t->dir), 0);
}

/* Run SQL on the file directly (as another program would). */
static void raw_sql(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

/* ---- in memory ---- */

static void addrs_expire_on_virtual_time(void **state)
{
    (void)state;
    cp2p_peerstore *ps = open_mem(0, 0);
    cp2p_peer_id a = make_peer(1);
    cp2p_multiaddr *m[3];
    cp2p_peerstore_addr out[4];
    ma_tcp(m, 3, 4001);
    assert_int_equal(cp2p_peerstore_add_addrs(ps, &a, (const cp2p_multiaddr *const *)m, 2, 1000,
                                              CP2P_ADDR_SOURCE_IDENTIFY, T0),
                     0);
    assert_int_equal(cp2p_peerstore_add_addrs(ps, &a, (const cp2p_multiaddr *const *)&m[2], 1,
                                              5000, CP2P_ADDR_SOURCE_IDENTIFY, T0),
                     0);
    assert_int_equal(cp2p_peerstore_addrs(ps, &a, T0 + 999, out, 4), 3);
    assert_int_equal(cp2p_peerstore_addrs(ps, &a, T0 + 1000, out, 4), 1);
    assert_true(addr_is(&out[0], m[2]));
    assert_int_equal(out[0].expires_ms, T0 + 5000);
    /* Too small an output array: the total is still returned. */
    assert_int_equal(cp2p_peerstore_addrs(ps, &a, T0, out, 1), 3);
    /* Re-adding extends, never shortens. */
    assert_int_equal(cp2p_peerstore_add_addrs(ps, &a, (const cp2p_multiaddr *const *)&m[2], 1,
                                              10, CP2P_ADDR_SOURCE_IDENTIFY, T0 + 100),
                     0);
    assert_int_equal(cp2p_peerstore_addrs(ps, &a, T0 + 4999, out, 4), 1);
    /* Permanent addresses. */
    cp2p_peer_id b = make_peer(2);
    assert_int_equal(cp2p_peerstore_add_addrs(ps, &b, (const cp2p_multiaddr *const *)m, 1,
                                              CP2P_PEERSTORE_TTL_PERMANENT,
                                              CP2P_ADDR_SOURCE_MANUAL, T0),
                     0);
    assert_int_equal(cp2p_peerstore_addrs(ps, &b, UINT64_MAX - 1, out, 4), 1);
    assert_int_equal(out[0].expires_ms, CP2P_PEERSTORE_NEVER);
    /* gc: a's addresses expired at +5000, so a goes; b stays. */
    assert_int_equal(cp2p_peerstore_gc(ps, T0 + 4000), 0);
    cp2p_peerstore_stats st;
    cp2p_peerstore_stats_get(ps, &st);
    assert_int_equal(st.peers, 2);
    assert_int_equal(st.addrs, 2); /* the two expired at +1000 were dropped */
    assert_int_equal(cp2p_peerstore_gc(ps, T0 + 5000), 1);
    cp2p_peerstore_stats_get(ps, &st);
    assert_int_equal(st.peers, 1);
    assert_int_equal(st.addrs, 1);
    assert_int_equal(st.gc_removed, 1);
    assert_int_equal(cp2p_peerstore_addrs(ps, &a, T0, out, 4), 0);
    /* Bad arguments. */
    assert_int_equal(cp2p_peerstore_add_addrs(ps, &a, (const cp2p_multiaddr *const *)m, 1, 0,
                                              CP2P_ADDR_SOURCE_DHT, T0),
                     CP2P_EINVAL);
    assert_int_equal(cp2p_peerstore_add_addrs(ps, &a, (const cp2p_multiaddr *const *)m, 1, 10,
                                              (cp2p_addr_source)9, T0),
                     CP2P_EINVAL);
    cp2p_peerstore_close(ps);
    ma_free_all(m, 3);
}

static void addrs_best_first(void **state)
{
    (void)state;
    cp2p_peerstore *ps = open_mem(0, 0);
    cp2p_peer_id a = make_peer(1);
    cp2p_multiaddr *m[5];
    cp2p_peerstore_addr out[5];
    ma_tcp(m, 5, 5000);
    const cp2p_multiaddr *const *mm = (const cp2p_multiaddr *const *)m;
    assert_int_equal(cp2p_peerstore_add_addrs(ps, &a, &mm[0], 1, 60000, CP2P_ADDR_SOURCE_DHT,
                                              T0 + 10),
                     0);
    assert_int_equal(cp2p_peerstore_add_addrs(ps, &a, &mm[1], 1, 60000,
                                              CP2P_ADDR_SOURCE_IDENTIFY, T0 + 5),
                     0);
    assert_int_equal(cp2p_peerstore_add_addrs(ps, &a, &mm[2], 1, 60000,
                                              CP2P_ADDR_SOURCE_MANUAL, T0 + 1),
                     0);
    assert_int_equal(cp2p_peerstore_add_addrs(ps, &a, &mm[3], 1, 60000,
                                              CP2P_ADDR_SOURCE_INBOUND, T0 + 20),
                     0);
    assert_int_equal(cp2p_peerstore_add_addrs(ps, &a, &mm[4], 1, 60000,
                                              CP2P_ADDR_SOURCE_IDENTIFY, T0 + 15),
                     0);
    assert_int_equal(cp2p_peerstore_addrs(ps, &a, T0 + 30, out, 5), 5);
    assert_true(addr_is(&out[0], m[2]));
    assert_int_equal(out[0].source, CP2P_ADDR_SOURCE_MANUAL);
    assert_true(addr_is(&out[1], m[4])); /* identify, most recent first */
    assert_true(addr_is(&out[2], m[1]));
    assert_true(addr_is(&out[3], m[0]));
    assert_true(addr_is(&out[4], m[3]));
    /* The DHT address confirmed by identify moves up; its source improves, never worsens. */
    assert_int_equal(cp2p_peerstore_add_addrs(ps, &a, &mm[0], 1, 60000,
                                              CP2P_ADDR_SOURCE_IDENTIFY, T0 + 40),
                     0);
    assert_int_equal(cp2p_peerstore_add_addrs(ps, &a, &mm[0], 1, 60000,
                                              CP2P_ADDR_SOURCE_INBOUND, T0 + 41),
                     0);
    assert_int_equal(cp2p_peerstore_addrs(ps, &a, T0 + 50, out, 5), 5);
    assert_true(addr_is(&out[1], m[0]));
    assert_int_equal(out[1].source, CP2P_ADDR_SOURCE_IDENTIFY);
    assert_int_equal(out[1].updated_ms, T0 + 41);
    /* Duplicates within one call count once. */
    const cp2p_multiaddr *dup[3] = {m[0], m[0], m[1]};
    cp2p_peer_id b = make_peer(2);
    assert_int_equal(cp2p_peerstore_add_addrs(ps, &b, dup, 3, 1000, CP2P_ADDR_SOURCE_DHT, T0), 0);
    assert_int_equal(cp2p_peerstore_addrs(ps, &b, T0, NULL, 0), 2);
    cp2p_peerstore_close(ps);
    ma_free_all(m, 5);
}

static void addrs_per_peer_cap_drops_first_expiring(void **state)
{
    (void)state;
    cp2p_peerstore *ps = open_mem(0, 4);
    cp2p_peer_id a = make_peer(1);
    cp2p_multiaddr *m[7];
    cp2p_peerstore_addr out[8];
    ma_tcp(m, 7, 6000);
    const cp2p_multiaddr *const *mm = (const cp2p_multiaddr *const *)m;
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(cp2p_peerstore_add_addrs(ps, &a, &mm[i], 1, 1000 * (i + 1),
                                                  CP2P_ADDR_SOURCE_DHT, T0),
                         0);
    }
    /* A longer-lived newcomer pushes out the first to expire (m[0]). */
    assert_int_equal(cp2p_peerstore_add_addrs(ps, &a, &mm[4], 1, 10000, CP2P_ADDR_SOURCE_DHT, T0),
                     0);
    assert_int_equal(cp2p_peerstore_addrs(ps, &a, T0, out, 8), 4);
    for (size_t i = 0; i < 4; i++) {
        assert_false(addr_is(&out[i], m[0]));
    }
    /* A newcomer that would expire first is itself the one dropped. */
    assert_int_equal(cp2p_peerstore_add_addrs(ps, &a, &mm[5], 1, 500, CP2P_ADDR_SOURCE_DHT, T0),
                     0);
    assert_int_equal(cp2p_peerstore_addrs(ps, &a, T0, out, 8), 4);
    for (size_t i = 0; i < 4; i++) {
        assert_false(addr_is(&out[i], m[5]));
    }
    /* More new addresses in one call than the cap: only the cap's worth is kept. */
    cp2p_peer_id b = make_peer(2);
    assert_int_equal(cp2p_peerstore_add_addrs(ps, &b, mm, 7, 1000, CP2P_ADDR_SOURCE_DHT, T0), 0);
    assert_int_equal(cp2p_peerstore_addrs(ps, &b, T0, out, 8), 4);
    cp2p_peerstore_stats st;
    cp2p_peerstore_stats_get(ps, &st);
    assert_int_equal(st.addrs_dropped, 2 + 3);
    assert_int_equal(st.addrs, 8);
    cp2p_peerstore_close(ps);
    ma_free_all(m, 7);
}

static void full_store_evicts_least_useful_never_protected(void **state)
{
    (void)state;
    cp2p_peerstore *ps = open_mem(3, 0);
    cp2p_peer_id p[6];
    cp2p_multiaddr *m = ma("/ip4/1.2.3.4/tcp/1");
    for (uint8_t i = 0; i < 6; i++) {
        p[i] = make_peer((uint8_t)(i + 1));
    }
    const cp2p_multiaddr *const *mm = (const cp2p_multiaddr *const *)&m;
    /* p0 protected and oldest; p1 has failures; p2 fresh. */
    assert_int_equal(cp2p_peerstore_add_addrs(ps, &p[0], mm, 1, 100000, CP2P_ADDR_SOURCE_DHT, T0),
                     0);
    assert_int_equal(cp2p_peerstore_set_protected(ps, &p[0], true, T0), 0);
    assert_int_equal(cp2p_peerstore_add_addrs(ps, &p[1], mm, 1, 100000, CP2P_ADDR_SOURCE_DHT,
                                              T0 + 10),
                     0);
    assert_int_equal(cp2p_peerstore_record_failure(ps, &p[1], T0 + 11), 0);
    assert_int_equal(cp2p_peerstore_record_failure(ps, &p[1], T0 + 12), 0);
    assert_int_equal(cp2p_peerstore_add_addrs(ps, &p[2], mm, 1, 100000, CP2P_ADDR_SOURCE_DHT,
                                              T0 + 20),
                     0);
    /* p3 arrives: p1 (most failures) goes, although p0 was seen longer ago. */
    assert_int_equal(cp2p_peerstore_add_addrs(ps, &p[3], mm, 1, 100000, CP2P_ADDR_SOURCE_DHT,
                                              T0 + 30),
                     0);
    cp2p_peerstore_info info;
    assert_int_equal(cp2p_peerstore_info_get(ps, &p[1], &info), CP2P_ENOENT);
    assert_int_equal(cp2p_peerstore_info_get(ps, &p[0], &info), 0);
    assert_true(info.protected_peer);
    /* p4 arrives: no failures left, so the oldest unprotected (p2) goes, not protected p0. */
    assert_int_equal(cp2p_peerstore_record_connected(ps, &p[4], T0 + 40), 0);
    assert_int_equal(cp2p_peerstore_info_get(ps, &p[2], &info), CP2P_ENOENT);
    assert_int_equal(cp2p_peerstore_info_get(ps, &p[3], &info), 0);
    cp2p_peerstore_stats st;
    cp2p_peerstore_stats_get(ps, &st);
    assert_int_equal(st.evictions, 2);
    assert_int_equal(st.peers, 3);
    /* A peer without a live address goes before one with failures. p4 has no address. */
    assert_int_equal(cp2p_peerstore_record_failure(ps, &p[3], T0 + 41), 0);
    assert_int_equal(cp2p_peerstore_set_agent(ps, &p[5], "x", T0 + 50), 0);
    assert_int_equal(cp2p_peerstore_info_get(ps, &p[4], &info), CP2P_ENOENT);
    /* Everyone protected: a newcomer is refused and nothing changes. */
    assert_int_equal(cp2p_peerstore_set_protected(ps, &p[3], true, T0 + 60), 0);
    assert_int_equal(cp2p_peerstore_set_protected(ps, &p[5], true, T0 + 60), 0);
    assert_int_equal(cp2p_peerstore_add_addrs(ps, &p[1], mm, 1, 1000, CP2P_ADDR_SOURCE_DHT,
                                              T0 + 70),
                     CP2P_EFULL);
    cp2p_peerstore_stats_get(ps, &st);
    assert_int_equal(st.evictions, 3);
    assert_int_equal(st.peers, 3);
    /* Protected peers survive gc without addresses too; unprotecting exposes them. */
    assert_int_equal(cp2p_peerstore_gc(ps, T0 + 1000000), 0);
    assert_int_equal(cp2p_peerstore_set_protected(ps, &p[5], false, T0 + 60), 0);
    assert_int_equal(cp2p_peerstore_gc(ps, T0 + 1000000), 1);
    assert_int_equal(cp2p_peerstore_set_protected(ps, &p[1], false, T0), CP2P_ENOENT);
    cp2p_peer_id list[4];
    assert_int_equal(cp2p_peerstore_peers(ps, list, 4), 2);
    assert_int_equal(cp2p_peerstore_remove(ps, &p[0]), 0);
    assert_int_equal(cp2p_peerstore_remove(ps, &p[0]), CP2P_ENOENT);
    assert_int_equal(cp2p_peerstore_peers(ps, list, 4), 1);
    assert_true(cp2p_peer_id_equal(&list[0], &p[3]));
    cp2p_peerstore_close(ps);
    cp2p_multiaddr_free(m);
}

static void many_peers_hash_table(void **state)
{
    (void)state;
    cp2p_peerstore *ps = open_mem(500, 0);
    cp2p_multiaddr *m = ma("/ip4/1.2.3.4/tcp/1");
    const cp2p_multiaddr *const *mm = (const cp2p_multiaddr *const *)&m;
    for (unsigned i = 0; i < 1000; i++) {
        cp2p_peer_id id = {.len = 6};
        memcpy(id.bytes, "\x00\x04", 2);
        memcpy(id.bytes + 2, &i, 4);
        assert_int_equal(cp2p_peerstore_add_addrs(ps, &id, mm, 1, 1000, CP2P_ADDR_SOURCE_DHT,
                                                  T0 + i),
                         0);
    }
    cp2p_peerstore_stats st;
    cp2p_peerstore_stats_get(ps, &st);
    assert_int_equal(st.peers, 500);
    assert_int_equal(st.evictions, 500);
    /* The oldest went: peers 500..999 remain. */
    for (unsigned i = 0; i < 1000; i++) {
        cp2p_peer_id id = {.len = 6};
        cp2p_peerstore_info info;
        memcpy(id.bytes, "\x00\x04", 2);
        memcpy(id.bytes + 2, &i, 4);
        assert_int_equal(cp2p_peerstore_info_get(ps, &id, &info), i < 500 ? CP2P_ENOENT : 0);
    }
    cp2p_peerstore_close(ps);
    cp2p_multiaddr_free(m);
}

static void key_protocols_agent_rtt_round_trip(void **state)
{
    (void)state;
    cp2p_peerstore *ps = open_mem(0, 0);
    cp2p_peer_id a = make_peer(1);
    uint8_t pb[CP2P_KEY_MARSHAL_MAX], other[CP2P_KEY_MARSHAL_MAX];
    size_t len = peer_pubkey_pb(1, pb);
    size_t olen = peer_pubkey_pb(2, other);
    cp2p_slice k;
    /* An Ed25519 peer ID inlines its key, so it is known before set_pubkey. */
    assert_int_equal(cp2p_peerstore_pubkey(ps, &a, &k), 0);
    assert_memory_equal(k.ptr, pb, len);
    assert_int_equal(cp2p_peerstore_set_pubkey(ps, &a, other, olen, T0), CP2P_EPEERID);
    assert_int_equal(cp2p_peerstore_set_pubkey(ps, &a, pb, len - 1, T0), CP2P_EPROTO);
    assert_int_equal(cp2p_peerstore_set_pubkey(ps, &a, pb, len, T0), 0);
    assert_int_equal(cp2p_peerstore_pubkey(ps, &a, &k), 0);
    assert_int_equal(k.len, len);
    assert_memory_equal(k.ptr, pb, len);
    /* A non-identity (sha256) ID has no inline key. */
    cp2p_peer_id h = {.len = 34};
    h.bytes[0] = 0x12;
    h.bytes[1] = 32;
    assert_int_equal(cp2p_peerstore_pubkey(ps, &h, &k), CP2P_ENOENT);

    const char *protos[] = {"/ipfs/ping/1.0.0", "/ipfs/id/1.0.0", "/ipfs/ping/1.0.0"};
    assert_int_equal(cp2p_peerstore_set_protocols(ps, &a, protos, 3, T0), 0);
    assert_true(cp2p_peerstore_supports(ps, &a, "/ipfs/id/1.0.0"));
    assert_false(cp2p_peerstore_supports(ps, &a, "/meshsub/1.1.0"));
    const char *got[4];
    assert_int_equal(cp2p_peerstore_protocols(ps, &a, got, 4), 2);
    assert_string_equal(got[0], "/ipfs/ping/1.0.0");
    assert_string_equal(got[1], "/ipfs/id/1.0.0");
    const char *empty[] = {""};
    assert_int_equal(cp2p_peerstore_set_protocols(ps, &a, empty, 1, T0), CP2P_EINVAL);
    char *longp = malloc(CP2P_MSS_MAX_MSG + 2);
    memset(longp, 'p', CP2P_MSS_MAX_MSG + 1);
    longp[CP2P_MSS_MAX_MSG + 1] = '\0';
    const char *lp[] = {longp};
    assert_int_equal(cp2p_peerstore_set_protocols(ps, &a, lp, 1, T0), CP2P_ELIMIT);
    assert_int_equal(cp2p_peerstore_set_agent(ps, &a, longp, T0), CP2P_ELIMIT);
    free(longp);
    assert_int_equal(cp2p_peerstore_protocols(ps, &a, NULL, 0), 2); /* unchanged */
    const char *many[300];
    for (size_t i = 0; i < 300; i++) {
        many[i] = "/x";
    }
    assert_int_equal(cp2p_peerstore_set_protocols(ps, &a, many, 300, T0), CP2P_ELIMIT);
    assert_int_equal(cp2p_peerstore_set_protocols(ps, &a, NULL, 0, T0), 0);
    assert_int_equal(cp2p_peerstore_protocols(ps, &a, NULL, 0), 0);

    assert_null(cp2p_peerstore_agent(ps, &a));
    assert_int_equal(cp2p_peerstore_set_agent(ps, &a, "cp2p/0.1.0", T0), 0);
    assert_string_equal(cp2p_peerstore_agent(ps, &a), "cp2p/0.1.0");
    assert_int_equal(cp2p_peerstore_set_agent(ps, &a, "cp2p/0.2.0", T0), 0);
    assert_string_equal(cp2p_peerstore_agent(ps, &a), "cp2p/0.2.0");

    cp2p_peer_id b = make_peer(2);
    assert_int_equal(cp2p_peerstore_record_rtt(ps, &b, 100, T0), CP2P_ENOENT);
    assert_int_equal(cp2p_peerstore_record_failure(ps, &b, T0), CP2P_ENOENT);
    assert_int_equal(cp2p_peerstore_record_rtt(ps, &a, 1000, T0), 0);
    assert_int_equal(cp2p_peerstore_record_rtt(ps, &a, 2000, T0), 0);
    cp2p_peerstore_info info;
    assert_int_equal(cp2p_peerstore_info_get(ps, &a, &info), 0);
    assert_int_equal(info.rtt_last_ns, 2000);
    assert_int_equal(info.rtt_ewma_ns, 1100);
    assert_int_equal(cp2p_peerstore_record_rtt(ps, &a, UINT64_MAX, T0), 0); /* clamped */
    assert_int_equal(cp2p_peerstore_info_get(ps, &a, &info), 0);
    assert_int_equal(info.rtt_last_ns, CP2P_PEERSTORE_RTT_MAX_NS);

    assert_int_equal(cp2p_peerstore_record_failure(ps, &a, T0 + 5), 0);
    assert_int_equal(cp2p_peerstore_record_failure(ps, &a, T0 + 6), 0);
    assert_int_equal(cp2p_peerstore_info_get(ps, &a, &info), 0);
    assert_int_equal(info.failures, 2);
    assert_int_equal(info.last_failure_ms, T0 + 6);
    assert_int_equal(cp2p_peerstore_record_connected(ps, &a, T0 + 7), 0);
    assert_int_equal(cp2p_peerstore_info_get(ps, &a, &info), 0);
    assert_int_equal(info.failures, 0);
    assert_int_equal(info.last_connected_ms, T0 + 7);
    assert_int_equal(info.last_seen_ms, T0 + 7);
    cp2p_peerstore_close(ps);
}

static void bad_config_refused(void **state)
{
    (void)state;
    cp2p_peerstore_config cfg;
    cp2p_peerstore *ps = NULL;
    cp2p_peerstore_config_default(&cfg);
    cfg.max_peers = 0;
    assert_int_equal(cp2p_peerstore_open(&cfg, NULL, 0, &ps), CP2P_EINVAL);
    cp2p_peerstore_config_default(&cfg);
    cfg.max_addrs_per_peer = 5000;
    assert_int_equal(cp2p_peerstore_open(&cfg, NULL, 0, &ps), CP2P_EINVAL);
    assert_null(ps);
    assert_int_equal(cp2p_peerstore_open(NULL, NULL, 0, NULL), CP2P_EINVAL);
    cp2p_peerstore_close(NULL);
}

/* ---- persistence ---- */

static void fill(cp2p_peerstore *ps, cp2p_multiaddr **m)
{
    cp2p_peer_id a = make_peer(1), b = make_peer(2);
    uint8_t pb[CP2P_KEY_MARSHAL_MAX];
    size_t len = peer_pubkey_pb(1, pb);
    const cp2p_multiaddr *const *mm = (const cp2p_multiaddr *const *)m;
    const char *protos[] = {"/ipfs/ping/1.0.0", "/ipfs/id/1.0.0"};
    assert_int_equal(cp2p_peerstore_add_addrs(ps, &a, mm, 2, 60000, CP2P_ADDR_SOURCE_IDENTIFY, T0),
                     0);
    assert_int_equal(cp2p_peerstore_add_addrs(ps, &a, &mm[2], 1, CP2P_PEERSTORE_TTL_PERMANENT,
                                              CP2P_ADDR_SOURCE_MANUAL, T0 + 1),
                     0);
    assert_int_equal(cp2p_peerstore_set_pubkey(ps, &a, pb, len, T0), 0);
    assert_int_equal(cp2p_peerstore_set_protocols(ps, &a, protos, 2, T0), 0);
    assert_int_equal(cp2p_peerstore_set_agent(ps, &a, "go-libp2p/0.33", T0), 0);
    assert_int_equal(cp2p_peerstore_record_rtt(ps, &a, 5000000, T0), 0);
    assert_int_equal(cp2p_peerstore_record_connected(ps, &a, T0 + 2), 0);
    assert_int_equal(cp2p_peerstore_add_addrs(ps, &b, &mm[3], 1, 1000, CP2P_ADDR_SOURCE_DHT, T0),
                     0);
    assert_int_equal(cp2p_peerstore_record_failure(ps, &b, T0 + 3), 0);
    assert_int_equal(cp2p_peerstore_set_protected(ps, &b, true, T0 + 3), 0);
}

static void check_filled(cp2p_peerstore *ps, cp2p_multiaddr **m, uint64_t now, bool b_addr)
{
    cp2p_peer_id a = make_peer(1), b = make_peer(2);
    uint8_t pb[CP2P_KEY_MARSHAL_MAX];
    size_t len = peer_pubkey_pb(1, pb);
    cp2p_peerstore_addr out[4];
    assert_int_equal(cp2p_peerstore_addrs(ps, &a, now, out, 4), 3);
    assert_true(addr_is(&out[0], m[2]));
    assert_int_equal(out[0].source, CP2P_ADDR_SOURCE_MANUAL);
    assert_int_equal(out[0].expires_ms, CP2P_PEERSTORE_NEVER);
    assert_int_equal(out[0].updated_ms, T0 + 1);
    assert_int_equal(out[1].source, CP2P_ADDR_SOURCE_IDENTIFY);
    assert_int_equal(out[1].expires_ms, T0 + 60000);
    cp2p_slice k;
    assert_int_equal(cp2p_peerstore_pubkey(ps, &a, &k), 0);
    assert_int_equal(k.len, len);
    assert_memory_equal(k.ptr, pb, len);
    assert_true(cp2p_peerstore_supports(ps, &a, "/ipfs/ping/1.0.0"));
    assert_true(cp2p_peerstore_supports(ps, &a, "/ipfs/id/1.0.0"));
    assert_string_equal(cp2p_peerstore_agent(ps, &a), "go-libp2p/0.33");
    cp2p_peerstore_info info;
    assert_int_equal(cp2p_peerstore_info_get(ps, &a, &info), 0);
    assert_int_equal(info.rtt_ewma_ns, 5000000);
    assert_int_equal(info.last_connected_ms, T0 + 2);
    assert_false(info.protected_peer);
    assert_int_equal(cp2p_peerstore_info_get(ps, &b, &info), 0);
    assert_true(info.protected_peer);
    assert_int_equal(info.failures, 1);
    assert_int_equal(info.last_failure_ms, T0 + 3);
    assert_int_equal(cp2p_peerstore_addrs(ps, &b, now, NULL, 0), b_addr ? 1 : 0);
}

static void persist_reopen_gives_same_data(void **state)
{
    (void)state;
    tmpdb t;
    tmp_make(&t);
    cp2p_multiaddr *m[4];
    ma_tcp(m, 4, 7000);
    cp2p_peerstore *ps = NULL;
    assert_int_equal(cp2p_peerstore_open(NULL, t.path, T0, &ps), 0);
    struct stat st;
    assert_int_equal(stat(t.path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    fill(ps, m);
    assert_int_equal(cp2p_peerstore_flush(ps, T0 + 10), 0);
    assert_int_equal(cp2p_peerstore_flush(ps, T0 + 10), 0); /* nothing pending */
    char wal[160];
    snprintf(wal, sizeof(wal), "%s-wal", t.path); /* WAL journal, same mode as the file */
    assert_int_equal(stat(wal, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    cp2p_peerstore_stats s;
    cp2p_peerstore_stats_get(ps, &s);
    assert_int_equal(s.flushes, 1);
    cp2p_peerstore_close(ps);

    assert_int_equal(cp2p_peerstore_open(NULL, t.path, T0 + 20, &ps), 0);
    check_filled(ps, m, T0 + 20, true);
    cp2p_peerstore_stats_get(ps, &s);
    assert_int_equal(s.peers, 2);
    assert_int_equal(s.addrs, 4);
    assert_int_equal(s.db_bad_rows, 0);
    /* Remove one, change the other, flush, reopen. */
    cp2p_peer_id a = make_peer(1), b = make_peer(2);
    assert_int_equal(cp2p_peerstore_remove(ps, &a), 0);
    assert_int_equal(cp2p_peerstore_set_agent(ps, &b, "js-libp2p/2", T0 + 30), 0);
    assert_int_equal(cp2p_peerstore_flush(ps, T0 + 30), 0);
    cp2p_peerstore_close(ps);
    assert_int_equal(cp2p_peerstore_open(NULL, t.path, T0 + 40, &ps), 0);
    cp2p_peerstore_info info;
    assert_int_equal(cp2p_peerstore_info_get(ps, &a, &info), CP2P_ENOENT);
    assert_string_equal(cp2p_peerstore_agent(ps, &b), "js-libp2p/2");
    /* Changes not flushed are not kept. */
    assert_int_equal(cp2p_peerstore_set_agent(ps, &b, "lost", T0 + 50), 0);
    cp2p_peerstore_close(ps);
    assert_int_equal(cp2p_peerstore_open(NULL, t.path, T0 + 60, &ps), 0);
    assert_string_equal(cp2p_peerstore_agent(ps, &b), "js-libp2p/2");
    cp2p_peerstore_close(ps);
    ma_free_all(m, 4);
    tmp_cleanup(&t);
}

static void persist_expired_not_loaded(void **state)
{
    (void)state;
    tmpdb t;
    tmp_make(&t);
    cp2p_multiaddr *m[4];
    ma_tcp(m, 4, 7000);
    cp2p_peerstore *ps = NULL;
    assert_int_equal(cp2p_peerstore_open(NULL, t.path, T0, &ps), 0);
    fill(ps, m);
    cp2p_peer_id c = make_peer(3);
    const cp2p_multiaddr *const *mm = (const cp2p_multiaddr *const *)m;
    assert_int_equal(cp2p_peerstore_add_addrs(ps, &c, mm, 1, 500, CP2P_ADDR_SOURCE_DHT, T0), 0);
    assert_int_equal(cp2p_peerstore_flush(ps, T0 + 10), 0);
    cp2p_peerstore_close(ps);
    /* At +2000: b's DHT address (1 s) and c's (0.5 s) expired. b is protected and stays with
     * no address; c goes at load and from the file at the next flush. */
    assert_int_equal(cp2p_peerstore_open(NULL, t.path, T0 + 2000, &ps), 0);
    check_filled(ps, m, T0 + 2000, false);
    cp2p_peerstore_info info;
    assert_int_equal(cp2p_peerstore_info_get(ps, &c, &info), CP2P_ENOENT);
    cp2p_peerstore_stats s;
    cp2p_peerstore_stats_get(ps, &s);
    assert_int_equal(s.peers, 2);
    assert_int_equal(s.gc_removed, 1);
    assert_int_equal(cp2p_peerstore_flush(ps, T0 + 2000), 0);
    cp2p_peerstore_close(ps);
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_open(t.path, &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_prepare_v2(db, "SELECT count(*) FROM peers", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 2);
    sqlite3_finalize(st);
    assert_int_equal(sqlite3_close(db), SQLITE_OK);
    ma_free_all(m, 4);
    tmp_cleanup(&t);
}

static void persist_bad_rows_skipped(void **state)
{
    (void)state;
    tmpdb t;
    tmp_make(&t);
    cp2p_multiaddr *m[4];
    ma_tcp(m, 4, 7000);
    cp2p_peerstore *ps = NULL;
    assert_int_equal(cp2p_peerstore_open(NULL, t.path, T0, &ps), 0);
    fill(ps, m);
    assert_int_equal(cp2p_peerstore_flush(ps, T0), 0);
    cp2p_peerstore_close(ps);
    /* A bad peer ID, a bad address, a bad source: skipped and counted, the rest loads. */
    raw_sql(t.path, "INSERT INTO peers(id) VALUES(x'0102');"
                    "INSERT INTO addrs SELECT id, x'ffff', 9223372036854775807, 0, 0 FROM peers "
                    " WHERE protected = 0;"
                    "INSERT INTO addrs SELECT id, x'047f000001', 9223372036854775807, 7, 0 FROM "
                    "peers WHERE protected = 0;");
    assert_int_equal(cp2p_peerstore_open(NULL, t.path, T0 + 20, &ps), 0);
    check_filled(ps, m, T0 + 20, true);
    cp2p_peerstore_stats s;
    cp2p_peerstore_stats_get(ps, &s);
    assert_int_equal(s.db_bad_rows, 3);
    assert_int_equal(cp2p_peerstore_flush(ps, T0 + 20), 0); /* rewrites the file clean */
    cp2p_peerstore_close(ps);
    assert_int_equal(cp2p_peerstore_open(NULL, t.path, T0 + 30, &ps), 0);
    cp2p_peerstore_stats_get(ps, &s);
    assert_int_equal(s.db_bad_rows, 0);
    check_filled(ps, m, T0 + 30, true);
    cp2p_peerstore_close(ps);
    ma_free_all(m, 4);
    tmp_cleanup(&t);
}

static void persist_failed_flush_is_retried(void **state)
{
    (void)state;
    tmpdb t;
    tmp_make(&t);
    cp2p_multiaddr *m[4];
    ma_tcp(m, 4, 7000);
    cp2p_peerstore *ps = NULL;
    assert_int_equal(cp2p_peerstore_open(NULL, t.path, T0, &ps), 0);
    fill(ps, m);
    /* Another connection makes every write to peers fail (WAL lets it in while we are open). */
    raw_sql(t.path, "CREATE TRIGGER nope BEFORE INSERT ON peers "
                    "BEGIN SELECT RAISE(ABORT, 'refused by test'); END");
    assert_int_equal(cp2p_peerstore_flush(ps, T0 + 10), CP2P_EIO);
    cp2p_peerstore_stats s;
    cp2p_peerstore_stats_get(ps, &s);
    assert_int_equal(s.db_errors, 1);
    assert_int_equal(s.flushes, 0);
    raw_sql(t.path, "DROP TRIGGER nope");
    assert_int_equal(cp2p_peerstore_flush(ps, T0 + 10), 0); /* the same changes, retried */
    cp2p_peerstore_close(ps);
    assert_int_equal(cp2p_peerstore_open(NULL, t.path, T0 + 20, &ps), 0);
    check_filled(ps, m, T0 + 20, true);
    cp2p_peerstore_close(ps);
    ma_free_all(m, 4);
    tmp_cleanup(&t);
}

static void persist_newer_schema_refused(void **state)
{
    (void)state;
    tmpdb t;
    tmp_make(&t);
    cp2p_peerstore *ps = NULL;
    assert_int_equal(cp2p_peerstore_open(NULL, t.path, T0, &ps), 0);
    cp2p_peerstore_close(ps);
    raw_sql(t.path, "UPDATE schema_version SET version = 2");
    ps = NULL;
    assert_int_equal(cp2p_peerstore_open(NULL, t.path, T0, &ps), CP2P_ENOTSUP);
    assert_null(ps);
    raw_sql(t.path, "UPDATE schema_version SET version = 0");
    assert_int_equal(cp2p_peerstore_open(NULL, t.path, T0, &ps), CP2P_EIO);
    raw_sql(t.path, "DELETE FROM schema_version");
    assert_int_equal(cp2p_peerstore_open(NULL, t.path, T0, &ps), CP2P_EIO);
    tmp_cleanup(&t);
}

static void persist_corrupt_or_foreign_file_is_eio(void **state)
{
    (void)state;
    tmpdb t;
    tmp_make(&t);
    cp2p_peerstore *ps = NULL;
    /* Garbage. */
    FILE *f = fopen(t.path, "wb");
    assert_non_null(f);
    for (int i = 0; i < 8192; i++) {
        fputc((i * 131) & 0xff, f);
    }
    fclose(f);
    assert_int_equal(cp2p_peerstore_open(NULL, t.path, T0, &ps), CP2P_EIO);
    assert_null(ps);
    /* A valid header with garbage pages after it. */
    assert_int_equal(unlink(t.path), 0);
    assert_int_equal(cp2p_peerstore_open(NULL, t.path, T0, &ps), 0);
    cp2p_multiaddr *m[4];
    ma_tcp(m, 4, 7000);
    fill(ps, m);
    assert_int_equal(cp2p_peerstore_flush(ps, T0), 0);
    cp2p_peerstore_close(ps);
    f = fopen(t.path, "r+b");
    assert_non_null(f);
    assert_int_equal(fseek(f, 100, SEEK_SET), 0);
    for (int i = 0; i < 16384; i++) {
        fputc(0xa5, f);
    }
    fclose(f);
    assert_int_equal(cp2p_peerstore_open(NULL, t.path, T0, &ps), CP2P_EIO);
    /* Someone else's SQLite database. */
    assert_int_equal(unlink(t.path), 0);
    raw_sql(t.path, "CREATE TABLE foo(x)");
    assert_int_equal(cp2p_peerstore_open(NULL, t.path, T0, &ps), CP2P_EIO);
    /* A directory, not a file. */
    assert_int_equal(cp2p_peerstore_open(NULL, t.dir, T0, &ps), CP2P_EIO);
    /* A path in a directory that does not exist. */
    char missing[160];
    snprintf(missing, sizeof(missing), "%s/none/peers.db", t.dir);
    assert_int_equal(cp2p_peerstore_open(NULL, missing, T0, &ps), CP2P_EIO);
    ma_free_all(m, 4);
    tmp_cleanup(&t);
}

static void persist_existing_file_mode_tightened(void **state)
{
    (void)state;
    tmpdb t;
    tmp_make(&t);
    cp2p_peerstore *ps = NULL;
    FILE *f = fopen(t.path, "wb");
    assert_non_null(f);
    fclose(f);
    assert_int_equal(chmod(t.path, 0644), 0);
    assert_int_equal(cp2p_peerstore_open(NULL, t.path, T0, &ps), 0); /* empty file: new db */
    struct stat st;
    assert_int_equal(stat(t.path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    cp2p_peerstore_close(ps);
    tmp_cleanup(&t);
}

/* ---- allocation failures ---- */

static void alloc_failures_leave_store_unchanged(void **state)
{
    (void)state;
    cp2p_multiaddr *m[6];
    ma_tcp(m, 6, 8000);
    const cp2p_multiaddr *const *mm = (const cp2p_multiaddr *const *)m;
    cp2p_peer_id a = make_peer(1), b = make_peer(2), c = make_peer(3);
    uint8_t pb[CP2P_KEY_MARSHAL_MAX];
    size_t pblen = peer_pubkey_pb(1, pb);
    int ops = 0;
    for (long fail = 1; fail < 1000; fail++) {
        cp2p_peerstore *ps = NULL;
        cp2p_peerstore_config cfg;
        cp2p_peerstore_config_default(&cfg);
        cfg.max_peers = 2;
        cfg.max_addrs_per_peer = 3;
        cp2p__alloc_fail_after(fail);
        int rc = cp2p_peerstore_open(&cfg, NULL, T0, &ps);
        if (rc != 0) {
            assert_int_equal(rc, CP2P_ENOMEM);
            continue;
        }
        /* Each step either succeeds or leaves the counts as they were. */
        struct {
            int rc;
            uint64_t peers, addrs;
        } before;
        cp2p_peerstore_stats s;
#define STEP(call)                                                                             \
    do {                                                                                       \
        cp2p_peerstore_stats_get(ps, &s);                                                      \
        before.peers = s.peers;                                                                \
        before.addrs = s.addrs;                                                                \
        before.rc = (call);                                                                    \
        if (before.rc != 0) {                                                                  \
            assert_int_equal(before.rc, CP2P_ENOMEM);                                          \
            cp2p_peerstore_stats_get(ps, &s);                                                  \
            assert_int_equal(s.peers, before.peers);                                           \
            assert_int_equal(s.addrs, before.addrs);                                           \
            goto done;                                                                         \
        }                                                                                      \
    } while (0)
        STEP(cp2p_peerstore_add_addrs(ps, &a, mm, 2, 1000, CP2P_ADDR_SOURCE_DHT, T0));
        STEP(cp2p_peerstore_add_addrs(ps, &a, &mm[1], 3, 2000, CP2P_ADDR_SOURCE_IDENTIFY, T0));
        STEP(cp2p_peerstore_add_addrs(ps, &b, &mm[3], 3, 500, CP2P_ADDR_SOURCE_DHT, T0 + 1));
        STEP(cp2p_peerstore_record_failure(ps, &b, T0 + 1));
        /* c evicts b (failed): the eviction must not happen if c's allocation fails. */
        STEP(cp2p_peerstore_add_addrs(ps, &c, mm, 6, 3000, CP2P_ADDR_SOURCE_MANUAL, T0 + 2));
        {
            const char *protos[] = {"/a", "/b", "/c"};
            STEP(cp2p_peerstore_set_protocols(ps, &a, protos, 3, T0 + 3));
        }
        STEP(cp2p_peerstore_set_agent(ps, &a, "agent", T0 + 3));
        STEP(cp2p_peerstore_set_pubkey(ps, &a, pb, pblen, T0 + 3));
        cp2p__alloc_fail_after(0);
        {
            cp2p_peerstore_info info;
            cp2p_peerstore_addr out[3];
            assert_int_equal(cp2p_peerstore_info_get(ps, &b, &info), CP2P_ENOENT);
            assert_int_equal(cp2p_peerstore_addrs(ps, &c, T0 + 2, out, 3), 3);
            assert_int_equal(cp2p_peerstore_addrs(ps, &a, T0 + 3, out, 3), 3);
            assert_true(cp2p_peerstore_supports(ps, &a, "/b"));
        }
        ops = 1;
        assert_true(fail > 20); /* every earlier allocation was made to fail once */
    done:
        cp2p__alloc_fail_after(0);
        cp2p_peerstore_close(ps);
        if (ops) {
            break;
        }
#undef STEP
    }
    assert_int_equal(ops, 1);
    ma_free_all(m, 6);
}

static void alloc_failures_while_loading(void **state)
{
    (void)state;
    tmpdb t;
    tmp_make(&t);
    cp2p_multiaddr *m[4];
    ma_tcp(m, 4, 7000);
    cp2p_peerstore *ps = NULL;
    assert_int_equal(cp2p_peerstore_open(NULL, t.path, T0, &ps), 0);
    fill(ps, m);
    assert_int_equal(cp2p_peerstore_flush(ps, T0), 0);
    cp2p_peerstore_close(ps);
    bool ok = false;
    for (long fail = 1; fail < 1000 && !ok; fail++) {
        ps = NULL;
        cp2p__alloc_fail_after(fail);
        int rc = cp2p_peerstore_open(NULL, t.path, T0 + 20, &ps);
        cp2p__alloc_fail_after(0);
        if (rc == 0) {
            check_filled(ps, m, T0 + 20, true);
            cp2p_peerstore_close(ps);
            ok = true;
        } else {
            assert_int_equal(rc, CP2P_ENOMEM);
            assert_null(ps);
        }
    }
    assert_true(ok);
    ma_free_all(m, 4);
    tmp_cleanup(&t);
}

int main(void)
{
    cp2p_log_set_level(CP2P_LOG_OFF);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(addrs_expire_on_virtual_time),
        cmocka_unit_test(addrs_best_first),
        cmocka_unit_test(addrs_per_peer_cap_drops_first_expiring),
        cmocka_unit_test(full_store_evicts_least_useful_never_protected),
        cmocka_unit_test(many_peers_hash_table),
        cmocka_unit_test(key_protocols_agent_rtt_round_trip),
        cmocka_unit_test(bad_config_refused),
        cmocka_unit_test(persist_reopen_gives_same_data),
        cmocka_unit_test(persist_expired_not_loaded),
        cmocka_unit_test(persist_bad_rows_skipped),
        cmocka_unit_test(persist_failed_flush_is_retried),
        cmocka_unit_test(persist_newer_schema_refused),
        cmocka_unit_test(persist_corrupt_or_foreign_file_is_eio),
        cmocka_unit_test(persist_existing_file_mode_tightened),
        cmocka_unit_test(alloc_failures_leave_store_unchanged),
        cmocka_unit_test(alloc_failures_while_loading),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
