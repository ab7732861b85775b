/* Gossipsub router core: an in-test network of routers on a virtual clock, frames passed from
 * take_rpc to on_rpc; and single routers fed hand-made frames. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <cp2p/keys.h>

#include "protocols/gossipsub/gs_router.h"
#include "util/bytes.h"
#include "util/limits.h"

#define MAXN 32
#define TOPIC "t"

typedef struct node {
    cp2p__gs_router *r;
    cp2p_privkey *key;
    cp2p_peer_id id;
    uint64_t rs;
} node;

static node N[MAXN];
static size_t n_nodes;
static uint64_t now = 1000000;

static uint64_t xrand(void *ud)
{
    uint64_t *s = ud;
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void mk_key(unsigned i, cp2p_privkey **k, cp2p_peer_id *id)
{
    uint8_t seed[32];
    memset(seed, (int)(i + 1), sizeof(seed));
    seed[0] = 0x42;
    assert_int_equal(cp2p_privkey_from_seed(CP2P_KEY_ED25519, seed, k), 0);
    assert_int_equal(cp2p_peer_id_from_pubkey(cp2p_privkey_public(*k), id), 0);
}

static cp2p__gs_config base_cfg(void)
{
    cp2p__gs_config c;
    cp2p__gs_config_default(&c);
    return c;
}

static node *node_new(const cp2p__gs_config *c)
{
    node *n = &N[n_nodes];
    mk_key((unsigned)n_nodes, &n->key, &n->id);
    n->rs = 0x9e3779b97f4a7c15ULL * (n_nodes + 1);
    cp2p__gs_config cfg = *c;
    cfg.key = n->key;
    cfg.rand = xrand;
    cfg.rand_ud = &n->rs;
    cfg.seqno_start = (uint64_t)n_nodes << 32;
    assert_int_equal(cp2p__gs_router_new(&cfg, now, &n->r), 0);
    n_nodes++;
    return n;
}

static void connect(node *a, node *b)
{
    assert_int_equal(cp2p__gs_add_peer(a->r, &b->id, CP2P_GS_MESHSUB_1_2, true, NULL, now), 0);
    assert_int_equal(cp2p__gs_add_peer(b->r, &a->id, CP2P_GS_MESHSUB_1_2, false, NULL, now), 0);
}

static int teardown(void **state)
{
    (void)state;
    for (size_t i = 0; i < n_nodes; i++) {
        cp2p__gs_event ev;
        while (cp2p__gs_poll_event(N[i].r, &ev)) {
            cp2p__gs_event_fini(&ev);
        }
        cp2p__gs_router_free(N[i].r);
        cp2p_privkey_free(N[i].key);
    }
    memset(N, 0, sizeof(N));
    n_nodes = 0;
    return 0;
}

static node *by_id(const cp2p_peer_id *id)
{
    for (size_t i = 0; i < n_nodes; i++) {
        if (cp2p_peer_id_equal(&N[i].id, id)) {
            return &N[i];
        }
    }
    return NULL;
}

/* Drop filter: return true to lose the frame. */
typedef bool (*drop_fn)(const node *from, const node *to, const uint8_t *f, size_t len);
static drop_fn g_drop;

static size_t pump(void)
{
    size_t frames = 0;
    cp2p_buf b;
    cp2p_buf_init(&b, CP2P_GS_MAX_RPC_SIZE);
    for (int round = 0; round < 100; round++) {
        bool any = false;
        for (size_t i = 0; i < n_nodes; i++) {
            cp2p_peer_id p;
            while (cp2p__gs_next_dirty_peer(N[i].r, &p)) {
                ptrdiff_t n = cp2p__gs_take_rpc(N[i].r, &p, &b);
                assert_true(n > 0);
                assert_true((size_t)n <= CP2P_GS_MAX_RPC_SIZE);
                node *to = by_id(&p);
                assert_non_null(to);
                frames++;
                any = true;
                if (g_drop != NULL && g_drop(&N[i], to, b.ptr, b.len)) {
                    continue;
                }
                assert_int_equal(cp2p__gs_on_rpc(to->r, &N[i].id, b.ptr, b.len, now), 0);
            }
        }
        if (!any) {
            break;
        }
    }
    cp2p_buf_fini(&b);
    return frames;
}

static void heartbeat_all(void)
{
    now += CP2P_GS_HEARTBEAT_MS;
    for (size_t i = 0; i < n_nodes; i++) {
        cp2p__gs_heartbeat(N[i].r, now);
    }
    pump();
}

static size_t delivered(node *n, const char *data)
{
    size_t k = 0;
    cp2p__gs_event ev;
    while (cp2p__gs_poll_event(n->r, &ev)) {
        if (ev.kind == CP2P_GS_EV_DELIVER &&
            (data == NULL ||
             (ev.data.len == strlen(data) && memcmp(ev.data.ptr, data, ev.data.len) == 0))) {
            k++;
        }
        cp2p__gs_event_fini(&ev);
    }
    return k;
}

static cp2p__gs_stats stats(node *n)
{
    cp2p__gs_stats s;
    cp2p__gs_stats_get(n->r, &s);
    return s;
}

/* ---- tests over a network ---- */

static void mesh_converges(void **state)
{
    (void)state;
    cp2p__gs_config c = base_cfg();
    for (int i = 0; i < 30; i++) {
        node_new(&c);
    }
    for (size_t i = 0; i < 30; i++) {
        for (size_t j = i + 1; j < 30; j++) {
            connect(&N[i], &N[j]);
        }
    }
    for (size_t i = 0; i < 30; i++) {
        assert_int_equal(cp2p__gs_subscribe(N[i].r, TOPIC, now), 0);
    }
    pump();
    for (int h = 0; h < 10; h++) {
        heartbeat_all();
    }
    cp2p_peer_id mp[64];
    for (size_t i = 0; i < 30; i++) {
        size_t m = cp2p__gs_mesh_peers(N[i].r, TOPIC, mp, 64);
        assert_true(m >= CP2P_GS_D_LO && m <= CP2P_GS_D_HI);
        /* Symmetric: every mesh peer has us in its mesh too. */
        for (size_t k = 0; k < m; k++) {
            assert_true(cp2p__gs_in_mesh(by_id(&mp[k])->r, TOPIC, &N[i].id));
        }
    }
    /* A message reaches everyone exactly once. */
    cp2p_buf id;
    cp2p_buf_init(&id, 256);
    assert_int_equal(cp2p__gs_publish(N[3].r, TOPIC, (const uint8_t *)"m1", 2, now, &id), 0);
    assert_int_equal(id.len, N[3].id.len + 8); /* from || seqno */
    pump();
    for (size_t i = 0; i < 30; i++) {
        assert_int_equal(delivered(&N[i], "m1"), i == 3 ? 0 : 1);
    }
    cp2p_buf_fini(&id);
}

static const node *g_victim;
static bool drop_msgs_to_victim(const node *from, const node *to, const uint8_t *f, size_t len)
{
    (void)from;
    if (to != g_victim) {
        return false;
    }
    cp2p__gs_rpc d;
    const char *why;
    assert_int_equal(cp2p__gs_rpc_decode(f, len, CP2P_GS_MAX_RPC_SIZE, &d, &why), 0);
    bool has = d.n_msgs > 0;
    cp2p__gs_rpc_fini(&d);
    return has;
}

static void gossip_recovers(void **state)
{
    (void)state;
    cp2p__gs_config c = base_cfg();
    c.d = 2;
    c.d_lo = 2;
    c.d_hi = 3;
    c.d_score = 1;
    c.d_out = 0;
    c.flood_publish = false;
    for (int i = 0; i < 8; i++) {
        node_new(&c);
    }
    for (size_t i = 0; i < 8; i++) {
        for (size_t j = i + 1; j < 8; j++) {
            connect(&N[i], &N[j]);
        }
    }
    for (size_t i = 0; i < 8; i++) {
        assert_int_equal(cp2p__gs_subscribe(N[i].r, TOPIC, now), 0);
    }
    pump();
    heartbeat_all();
    heartbeat_all();
    /* The victim's mesh peers withhold the message: every frame carrying it is lost. */
    g_victim = &N[5];
    g_drop = drop_msgs_to_victim;
    assert_int_equal(cp2p__gs_publish(N[0].r, TOPIC, (const uint8_t *)"gossip", 6, now, NULL),
                     0);
    pump();
    g_drop = NULL;
    assert_int_equal(delivered(&N[5], "gossip"), 0);
    for (size_t i = 1; i < 8; i++) {
        if (i != 5) {
            assert_int_equal(delivered(&N[i], "gossip"), 1);
        }
    }
    /* Next heartbeat: IHAVE from peers outside its mesh, IWANT, the message. */
    heartbeat_all();
    assert_int_equal(delivered(&N[5], "gossip"), 1);
    assert_true(stats(&N[5]).iwant_sent >= 1);
    uint64_t served = 0;
    for (size_t i = 0; i < 8; i++) {
        served += stats(&N[i]).iwant_served;
    }
    assert_true(served >= 1);
    /* The promise was kept: no penalty after the follow-up time. */
    for (int h = 0; h < 5; h++) {
        heartbeat_all();
    }
    assert_int_equal(stats(&N[5]).promises_broken, 0);
}

static void publish_no_peers(void **state)
{
    (void)state;
    cp2p__gs_config c = base_cfg();
    node *a = node_new(&c);
    cp2p_buf id;
    cp2p_buf_init(&id, 256);
    assert_int_equal(cp2p__gs_publish(a->r, TOPIC, (const uint8_t *)"x", 1, now, &id),
                     CP2P_ENOENT);
    assert_int_equal(id.len, 0);
    assert_int_equal(cp2p__gs_subscribe(a->r, TOPIC, now), 0);
    assert_int_equal(cp2p__gs_publish(a->r, TOPIC, (const uint8_t *)"x", 1, now, &id),
                     CP2P_ENOENT);
    /* A peer that is not subscribed to the topic does not count either. */
    node *b = node_new(&c);
    connect(a, b);
    pump();
    assert_int_equal(cp2p__gs_publish(a->r, "other", (const uint8_t *)"x", 1, now, &id),
                     CP2P_ENOENT);
    /* Flood publishing off, no mesh yet for an unsubscribed topic: still ENOENT. */
    assert_int_equal(cp2p__gs_subscribe(b->r, TOPIC, now), 0);
    pump();
    assert_int_equal(cp2p__gs_publish(a->r, TOPIC, (const uint8_t *)"x", 1, now, &id), 0);
    cp2p_buf_fini(&id);
}

/* ---- single router fed hand-made frames ---- */

static cp2p_privkey *fk; /* the fake peer's key */
static cp2p_peer_id fid;

static void frame_msg(cp2p_buf *out, const cp2p_privkey *k, const char *topic,
                      const uint8_t *data, size_t len, uint64_t seqno, bool sign, bool corrupt)
{
    cp2p_peer_id id;
    uint8_t seq[8];
    cp2p_store_be64(seq, seqno);
    cp2p__gs_msg m = {.topic = topic, .has_data = true, .data = {data, len}};
    cp2p_buf s, sig;
    cp2p_buf_init(&s, 1 << 20);
    cp2p_buf_init(&sig, 128);
    if (sign) {
        assert_int_equal(cp2p_peer_id_from_pubkey(cp2p_privkey_public(k), &id), 0);
        m.has_from = m.has_seqno = true;
        m.from = (cp2p_slice){id.bytes, id.len};
        m.seqno = (cp2p_slice){seq, 8};
        assert_int_equal(cp2p_buf_append(&s, "libp2p-pubsub:", 14), 0);
        assert_int_equal(cp2p__gs_msg_encode(&m, false, &s), 0);
        assert_int_equal(cp2p_privkey_sign(k, s.ptr, s.len, &sig), 0);
        if (corrupt) {
            sig.ptr[3] ^= 1;
        }
        m.has_signature = true;
        m.signature = cp2p_buf_slice(&sig);
    }
    cp2p__gs_rpc r = {.msgs = &m, .n_msgs = 1};
    cp2p_buf_reset(out);
    assert_int_equal(cp2p__gs_rpc_encode(&r, out), 0);
    cp2p_buf_fini(&s);
    cp2p_buf_fini(&sig);
}

static void frame_sub(cp2p_buf *out, const char *topic)
{
    cp2p_buf_reset(out);
    assert_int_equal(cp2p__gs_rpc_sub_append(out, topic, true), 0);
}

static void frame_ctl(cp2p_buf *out, cp2p__gs_rpc *r)
{
    cp2p_buf_reset(out);
    assert_int_equal(cp2p__gs_rpc_encode(r, out), 0);
}

/* Take every frame pending for peer and decode them into one summary. */
typedef struct out_sum {
    size_t msgs, grafts, prunes, ihaves, iwants, idontwants, subs;
    uint64_t prune_backoff;
} out_sum;

static out_sum take_all(node *n, const cp2p_peer_id *peer)
{
    out_sum s = {0};
    cp2p_buf b;
    cp2p_buf_init(&b, CP2P_GS_MAX_RPC_SIZE);
    for (;;) {
        ptrdiff_t k = cp2p__gs_take_rpc(n->r, peer, &b);
        assert_true(k >= 0);
        if (k == 0) {
            break;
        }
        cp2p__gs_rpc d;
        const char *why;
        assert_int_equal(cp2p__gs_rpc_decode(b.ptr, b.len, CP2P_GS_MAX_RPC_SIZE, &d, &why), 0);
        s.msgs += d.n_msgs;
        s.grafts += d.n_graft;
        s.prunes += d.n_prune;
        s.ihaves += d.n_ihave;
        s.iwants += d.n_iwant;
        s.idontwants += d.n_idontwant;
        s.subs += d.n_subs;
        if (d.n_prune > 0) {
            s.prune_backoff = d.prune[0].backoff_s;
        }
        cp2p__gs_rpc_fini(&d);
    }
    cp2p_buf_fini(&b);
    return s;
}

/* Router under test (node 0) with fake peers whose keys are nodes' keys that are never used as
 * routers: we make keys with mk_key directly. */
#define NFAKE 16
static cp2p_privkey *fkeys[NFAKE];
static cp2p_peer_id fids[NFAKE];

static void fakes_init(void)
{
    for (unsigned i = 0; i < NFAKE; i++) {
        mk_key(100 + i, &fkeys[i], &fids[i]);
    }
    fk = fkeys[0];
    fid = fids[0];
}

static void fakes_fini(void)
{
    for (unsigned i = 0; i < NFAKE; i++) {
        cp2p_privkey_free(fkeys[i]);
        fkeys[i] = NULL;
    }
}

static node *router_with_fakes(cp2p__gs_config *c, size_t nf, cp2p__gs_proto proto)
{
    fakes_init();
    node *a = node_new(c);
    assert_int_equal(cp2p__gs_subscribe(a->r, TOPIC, now), 0);
    cp2p_buf b;
    cp2p_buf_init(&b, 4096);
    for (size_t i = 0; i < nf; i++) {
        assert_int_equal(cp2p__gs_add_peer(a->r, &fids[i], proto, true, NULL, now), 0);
        frame_sub(&b, TOPIC);
        assert_int_equal(cp2p__gs_on_rpc(a->r, &fids[i], b.ptr, b.len, now), 0);
    }
    cp2p_buf_fini(&b);
    now += 1000;
    cp2p__gs_heartbeat(a->r, now);
    return a;
}

static void graft_backoff(void **state)
{
    (void)state;
    cp2p__gs_config c = base_cfg();
    node *a = router_with_fakes(&c, 1, CP2P_GS_MESHSUB_1_1);
    assert_true(cp2p__gs_in_mesh(a->r, TOPIC, &fid));
    out_sum s = take_all(a, &fid);
    assert_int_equal(s.subs, 1);
    assert_int_equal(s.grafts, 1);
    /* The peer prunes us with a 60 s backoff, then grafts again at once. */
    cp2p_buf b;
    cp2p_buf_init(&b, 4096);
    cp2p__gs_prune pr = {.topic = TOPIC, .has_backoff = true, .backoff_s = 60};
    cp2p__gs_rpc r = {.prune = &pr, .n_prune = 1};
    frame_ctl(&b, &r);
    assert_int_equal(cp2p__gs_on_rpc(a->r, &fid, b.ptr, b.len, now), 0);
    assert_false(cp2p__gs_in_mesh(a->r, TOPIC, &fid));
    const char *g = TOPIC;
    cp2p__gs_rpc rg = {.graft = &g, .n_graft = 1};
    frame_ctl(&b, &rg);
    now += 2000;
    assert_int_equal(cp2p__gs_on_rpc(a->r, &fid, b.ptr, b.len, now), 0);
    assert_false(cp2p__gs_in_mesh(a->r, TOPIC, &fid));
    cp2p__gs_stats st = stats(a);
    assert_int_equal(st.graft_backoff_violations, 1);
    assert_int_equal(st.penalties, 2); /* backoff violation + flood (within 10 s) */
    s = take_all(a, &fid);
    assert_int_equal(s.prunes, 1);
    assert_int_equal(s.prune_backoff, 60);
    /* Heartbeats during the backoff do not graft it back. */
    for (int i = 0; i < 5; i++) {
        now += 1000;
        cp2p__gs_heartbeat(a->r, now);
    }
    assert_false(cp2p__gs_in_mesh(a->r, TOPIC, &fid));
    /* After the backoff (60 s from the refusal) it may graft. */
    now += 61000;
    assert_int_equal(cp2p__gs_on_rpc(a->r, &fid, b.ptr, b.len, now), 0);
    assert_true(cp2p__gs_in_mesh(a->r, TOPIC, &fid));
    assert_int_equal(stats(a).graft_backoff_violations, 1);
    cp2p_buf_fini(&b);
    fakes_fini();
}

static void idontwant_suppresses(void **state)
{
    (void)state;
    cp2p__gs_config c = base_cfg();
    node *a = router_with_fakes(&c, 3, CP2P_GS_MESHSUB_1_2);
    for (int i = 0; i < 3; i++) {
        assert_true(cp2p__gs_in_mesh(a->r, TOPIC, &fids[i]));
        (void)take_all(a, &fids[i]);
    }
    /* A large message from fake 3's key (the author), relayed by fake 0. fake 1 has said
     * IDONTWANT for it already. */
    cp2p_privkey *author;
    cp2p_peer_id aid;
    mk_key(200, &author, &aid);
    uint8_t data[2000];
    memset(data, 7, sizeof(data));
    uint8_t idb[64];
    uint8_t seq[8];
    cp2p_store_be64(seq, 77);
    memcpy(idb, aid.bytes, aid.len);
    memcpy(idb + aid.len, seq, 8);
    cp2p_slice id = {idb, aid.len + 8};
    cp2p__gs_idlist dl = {&id, 1};
    cp2p__gs_rpc r = {.idontwant = &dl, .n_idontwant = 1};
    cp2p_buf b;
    cp2p_buf_init(&b, 1 << 20);
    frame_ctl(&b, &r);
    assert_int_equal(cp2p__gs_on_rpc(a->r, &fids[1], b.ptr, b.len, now), 0);
    frame_msg(&b, author, TOPIC, data, sizeof(data), 77, true, false);
    assert_int_equal(cp2p__gs_on_rpc(a->r, &fids[0], b.ptr, b.len, now), 0);
    assert_int_equal(delivered(a, NULL), 1);
    out_sum s0 = take_all(a, &fids[0]), s1 = take_all(a, &fids[1]), s2 = take_all(a, &fids[2]);
    assert_int_equal(s0.msgs, 0);       /* the source */
    assert_int_equal(s1.msgs, 0);       /* said IDONTWANT */
    assert_int_equal(s2.msgs, 1);       /* the other mesh peer */
    assert_int_equal(s1.idontwants, 1); /* we announce IDONTWANT to 1.2 mesh peers ... */
    assert_int_equal(s2.idontwants, 1);
    assert_int_equal(s0.idontwants, 0); /* ... but not to the source */
    cp2p__gs_stats st = stats(a);
    assert_int_equal(st.idontwant_suppressed, 1);
    assert_int_equal(st.idontwant_sent, 2);
    /* A small message triggers no IDONTWANT. */
    frame_msg(&b, author, TOPIC, data, 10, 78, true, false);
    assert_int_equal(cp2p__gs_on_rpc(a->r, &fids[0], b.ptr, b.len, now), 0);
    assert_int_equal(take_all(a, &fids[2]).idontwants, 0);
    /* IDONTWANT entries expire after a few heartbeats. */
    for (int i = 0; i < CP2P_GS_IDONTWANT_TTL_TICKS + 1; i++) {
        now += 1000;
        cp2p__gs_heartbeat(a->r, now);
    }
    cp2p_buf_fini(&b);
    cp2p_privkey_free(author);
    fakes_fini();
}

static void floodsub_peer(void **state)
{
    (void)state;
    cp2p__gs_config c = base_cfg();
    c.flood_publish = false;
    node *a = router_with_fakes(&c, 1, CP2P_GS_MESHSUB_1_1);
    assert_int_equal(cp2p__gs_add_peer(a->r, &fids[1], CP2P_GS_FLOODSUB, false, NULL, now), 0);
    cp2p_buf b;
    cp2p_buf_init(&b, 1 << 20);
    frame_sub(&b, TOPIC);
    assert_int_equal(cp2p__gs_on_rpc(a->r, &fids[1], b.ptr, b.len, now), 0);
    for (int i = 0; i < 3; i++) {
        now += 1000;
        cp2p__gs_heartbeat(a->r, now);
    }
    assert_false(cp2p__gs_in_mesh(a->r, TOPIC, &fids[1]));
    (void)take_all(a, &fids[0]);
    out_sum s = take_all(a, &fids[1]);
    assert_int_equal(s.grafts + s.ihaves, 0); /* no control to floodsub peers */
    /* Our publication and a forwarded message both reach the floodsub peer. */
    assert_int_equal(cp2p__gs_publish(a->r, TOPIC, (const uint8_t *)"p", 1, now, NULL), 0);
    assert_int_equal(take_all(a, &fids[1]).msgs, 1);
    assert_int_equal(take_all(a, &fids[0]).msgs, 1);
    frame_msg(&b, fkeys[0], TOPIC, (const uint8_t *)"q", 1, 5, true, false);
    assert_int_equal(cp2p__gs_on_rpc(a->r, &fids[0], b.ptr, b.len, now), 0);
    assert_int_equal(take_all(a, &fids[1]).msgs, 1);
    /* A floodsub peer's messages are accepted too. */
    frame_msg(&b, fkeys[1], TOPIC, (const uint8_t *)"f", 1, 5, true, false);
    assert_int_equal(cp2p__gs_on_rpc(a->r, &fids[1], b.ptr, b.len, now), 0);
    assert_int_equal(delivered(a, "f"), 1);
    assert_int_equal(take_all(a, &fids[0]).msgs, 1);
    cp2p_buf_fini(&b);
    fakes_fini();
}

static void bad_signature(void **state)
{
    (void)state;
    cp2p__gs_config c = base_cfg();
    node *a = router_with_fakes(&c, 2, CP2P_GS_MESHSUB_1_1);
    (void)take_all(a, &fids[1]);
    cp2p_buf b;
    cp2p_buf_init(&b, 1 << 20);
    frame_msg(&b, fk, TOPIC, (const uint8_t *)"bad", 3, 1, true, true);
    assert_int_equal(cp2p__gs_on_rpc(a->r, &fid, b.ptr, b.len, now), 0);
    assert_int_equal(delivered(a, NULL), 0);
    assert_int_equal(stats(a).msgs_bad_sig, 1);
    assert_int_equal(take_all(a, &fids[1]).msgs, 0); /* not forwarded */
    /* Unsigned in StrictSign: refused. */
    frame_msg(&b, fk, TOPIC, (const uint8_t *)"uns", 3, 1, false, false);
    assert_int_equal(cp2p__gs_on_rpc(a->r, &fid, b.ptr, b.len, now), 0);
    assert_int_equal(stats(a).msgs_bad_policy, 1);
    /* The same message correctly signed is accepted (the bad copy was not marked seen). */
    frame_msg(&b, fk, TOPIC, (const uint8_t *)"bad", 3, 1, true, false);
    assert_int_equal(cp2p__gs_on_rpc(a->r, &fid, b.ptr, b.len, now), 0);
    assert_int_equal(delivered(a, "bad"), 1);
    assert_int_equal(take_all(a, &fids[1]).msgs, 1);
    /* IWANT for it: served at most CP2P_GS_GOSSIP_RETRANSMISSION times to one peer. */
    {
        cp2p_buf idb;
        cp2p_buf_init(&idb, 256);
        uint8_t seq[8];
        cp2p_store_be64(seq, 1);
        assert_int_equal(cp2p_buf_append(&idb, fid.bytes, fid.len), 0);
        assert_int_equal(cp2p_buf_append(&idb, seq, 8), 0);
        cp2p_slice id = cp2p_buf_slice(&idb);
        cp2p__gs_idlist wl = {&id, 1};
        cp2p__gs_rpc wr = {.iwant = &wl, .n_iwant = 1};
        cp2p_buf w;
        cp2p_buf_init(&w, 4096);
        frame_ctl(&w, &wr);
        for (int i = 0; i < 5; i++) {
            assert_int_equal(cp2p__gs_on_rpc(a->r, &fids[1], w.ptr, w.len, now), 0);
        }
        assert_int_equal(take_all(a, &fids[1]).msgs, CP2P_GS_GOSSIP_RETRANSMISSION);
        assert_int_equal(stats(a).iwant_served, CP2P_GS_GOSSIP_RETRANSMISSION);
        cp2p_buf_fini(&w);
        cp2p_buf_fini(&idb);
    }
    /* Again: a duplicate. */
    assert_int_equal(cp2p__gs_on_rpc(a->r, &fid, b.ptr, b.len, now), 0);
    assert_int_equal(stats(a).msgs_duplicate, 1);
    assert_int_equal(delivered(a, NULL), 0);
    /* Messages for topics we do not subscribe to are ignored and counted. */
    frame_msg(&b, fk, "nope", (const uint8_t *)"z", 1, 2, true, false);
    assert_int_equal(cp2p__gs_on_rpc(a->r, &fid, b.ptr, b.len, now), 0);
    assert_int_equal(stats(a).msgs_unsubscribed_topic, 1);
    /* Garbage frame: EPROTO for the binding. */
    const uint8_t junk[] = {0x12, 0x7f, 0x00};
    assert_int_equal(cp2p__gs_on_rpc(a->r, &fid, junk, sizeof(junk), now), CP2P_EPROTO);
    cp2p_buf_fini(&b);
    fakes_fini();
}

static int data_id(void *ud, const cp2p__gs_msg *m, cp2p_buf *out)
{
    (void)ud;
    return cp2p_buf_append(out, m->data.ptr, m->data.len < 32 ? m->data.len : 32);
}

static void strict_no_sign(void **state)
{
    (void)state;
    cp2p__gs_config c = base_cfg();
    c.sign_policy = CP2P_GS_STRICT_NO_SIGN;
    c.msg_id = data_id;
    node *a = router_with_fakes(&c, 2, CP2P_GS_MESHSUB_1_1);
    (void)take_all(a, &fids[1]);
    cp2p_buf b;
    cp2p_buf_init(&b, 1 << 20);
    frame_msg(&b, fk, TOPIC, (const uint8_t *)"signed", 6, 1, true, false);
    assert_int_equal(cp2p__gs_on_rpc(a->r, &fid, b.ptr, b.len, now), 0);
    assert_int_equal(delivered(a, NULL), 0);
    assert_int_equal(stats(a).msgs_bad_policy, 1);
    frame_msg(&b, fk, TOPIC, (const uint8_t *)"plain", 5, 1, false, false);
    assert_int_equal(cp2p__gs_on_rpc(a->r, &fid, b.ptr, b.len, now), 0);
    assert_int_equal(delivered(a, "plain"), 1);
    /* Our publications carry no from/seqno/signature. */
    cp2p_buf id;
    cp2p_buf_init(&id, 256);
    assert_int_equal(cp2p__gs_publish(a->r, TOPIC, (const uint8_t *)"mine", 4, now, &id), 0);
    assert_int_equal(id.len, 4);
    cp2p_buf f;
    cp2p_buf_init(&f, CP2P_GS_MAX_RPC_SIZE);
    size_t found = 0;
    while (cp2p__gs_take_rpc(a->r, &fids[1], &f) > 0) {
        cp2p__gs_rpc d;
        const char *why;
        assert_int_equal(cp2p__gs_rpc_decode(f.ptr, f.len, CP2P_GS_MAX_RPC_SIZE, &d, &why), 0);
        for (size_t i = 0; i < d.n_msgs; i++) {
            if (d.msgs[i].data.len == 4) {
                assert_false(d.msgs[i].has_from || d.msgs[i].has_seqno ||
                             d.msgs[i].has_signature || d.msgs[i].has_key);
                found++;
            }
        }
        cp2p__gs_rpc_fini(&d);
    }
    assert_int_equal(found, 1);
    /* Publishing the same data again is a duplicate (content ID). */
    assert_int_equal(cp2p__gs_publish(a->r, TOPIC, (const uint8_t *)"mine", 4, now, NULL),
                     CP2P_ESTATE);
    cp2p_buf_fini(&f);
    cp2p_buf_fini(&id);
    cp2p_buf_fini(&b);
    fakes_fini();
}

static void async_validation(void **state)
{
    (void)state;
    cp2p__gs_config c = base_cfg();
    c.async_validation = true;
    node *a = router_with_fakes(&c, 2, CP2P_GS_MESHSUB_1_1);
    (void)take_all(a, &fids[1]);
    (void)delivered(a, NULL); /* drop the PEER_TAG events of the first heartbeat */
    cp2p_buf b;
    cp2p_buf_init(&b, 1 << 20);
    uint64_t tokens[2];
    for (int i = 0; i < 2; i++) {
        frame_msg(&b, fk, TOPIC, (const uint8_t *)(i ? "v2" : "v1"), 2, (uint64_t)i, true,
                  false);
        assert_int_equal(cp2p__gs_on_rpc(a->r, &fid, b.ptr, b.len, now), 0);
        cp2p__gs_event ev;
        assert_true(cp2p__gs_poll_event(a->r, &ev));
        assert_int_equal(ev.kind, CP2P_GS_EV_VALIDATE);
        assert_string_equal(ev.topic, TOPIC);
        assert_true(cp2p_peer_id_equal(&ev.peer, &fid));
        tokens[i] = ev.token;
        cp2p__gs_event_fini(&ev);
    }
    assert_int_equal(take_all(a, &fids[1]).msgs, 0); /* nothing forwarded before the verdict */
    assert_int_equal(cp2p__gs_validation_result(a->r, tokens[0], CP2P_GS_ACCEPT, now), 0);
    assert_int_equal(cp2p__gs_validation_result(a->r, tokens[1], CP2P_GS_REJECT, now), 0);
    assert_int_equal(cp2p__gs_validation_result(a->r, tokens[1], CP2P_GS_REJECT, now),
                     CP2P_ENOENT);
    assert_int_equal(delivered(a, "v1"), 1);
    assert_int_equal(take_all(a, &fids[1]).msgs, 1);
    assert_int_equal(stats(a).msgs_rejected, 1);
    /* Unanswered: dropped as IGNORE after validation_timeout_ms, at a heartbeat. */
    frame_msg(&b, fk, TOPIC, (const uint8_t *)"v3", 2, 3, true, false);
    assert_int_equal(cp2p__gs_on_rpc(a->r, &fid, b.ptr, b.len, now), 0);
    cp2p__gs_event ev;
    assert_true(cp2p__gs_poll_event(a->r, &ev));
    assert_int_equal(ev.kind, CP2P_GS_EV_VALIDATE);
    uint64_t t3 = ev.token;
    cp2p__gs_event_fini(&ev);
    assert_int_equal(stats(a).validations_pending, 1);
    now += CP2P_GS_VALIDATION_TIMEOUT_MS;
    cp2p__gs_heartbeat(a->r, now);
    assert_int_equal(stats(a).validations_pending, 0);
    assert_int_equal(stats(a).validations_expired, 1);
    assert_int_equal(stats(a).msgs_ignored, 1);
    assert_int_equal(cp2p__gs_validation_result(a->r, t3, CP2P_GS_ACCEPT, now), CP2P_ENOENT);
    assert_int_equal(delivered(a, "v3"), 0);
    cp2p_buf_fini(&b);
    fakes_fini();
}

static void outbox_bounded_and_frames_split(void **state)
{
    (void)state;
    cp2p__gs_config c = base_cfg();
    c.max_rpc_size = 4096;
    c.outbox_msgs = 8;
    node *a = router_with_fakes(&c, 1, CP2P_GS_MESHSUB_1_1);
    (void)take_all(a, &fid);
    uint8_t data[1500];
    memset(data, 1, sizeof(data));
    for (int i = 0; i < 12; i++) {
        data[0] = (uint8_t)i;
        assert_int_equal(cp2p__gs_publish(a->r, TOPIC, data, sizeof(data), now, NULL), 0);
    }
    assert_int_equal(stats(a).outbox_msg_drops, 4);
    cp2p_buf f;
    cp2p_buf_init(&f, 1 << 20);
    size_t frames = 0, msgs = 0;
    ptrdiff_t k;
    while ((k = cp2p__gs_take_rpc(a->r, &fid, &f)) > 0) {
        assert_true((size_t)k <= 4096);
        cp2p__gs_rpc d;
        const char *why;
        assert_int_equal(cp2p__gs_rpc_decode(f.ptr, f.len, 4096, &d, &why), 0);
        msgs += d.n_msgs;
        frames++;
        cp2p__gs_rpc_fini(&d);
    }
    assert_int_equal(msgs, 8);
    assert_int_equal(frames, 4); /* two 1.6 KB messages per 4 KiB frame */
    /* Too large for any frame: refused at publish. */
    uint8_t big[5000] = {0};
    assert_int_equal(cp2p__gs_publish(a->r, TOPIC, big, sizeof(big), now, NULL), CP2P_ELIMIT);
    cp2p_buf_fini(&f);
    fakes_fini();
}

static void px_events(void **state)
{
    (void)state;
    cp2p__gs_config c = base_cfg();
    node *a = router_with_fakes(&c, 1, CP2P_GS_MESHSUB_1_1);
    (void)delivered(a, NULL);
    cp2p__gs_px px[3] = {{.peer = fids[5], .record = {(const uint8_t *)"env", 3}},
                         {.peer = fids[6]},
                         {.peer = fids[0]}}; /* already connected: not suggested */
    cp2p__gs_prune pr = {.topic = TOPIC, .peers = px, .n_peers = 3, .has_backoff = true,
                         .backoff_s = 30};
    cp2p__gs_rpc r = {.prune = &pr, .n_prune = 1};
    cp2p_buf b;
    cp2p_buf_init(&b, 4096);
    frame_ctl(&b, &r);
    assert_int_equal(cp2p__gs_on_rpc(a->r, &fid, b.ptr, b.len, now), 0);
    cp2p__gs_event ev;
    size_t npx = 0, untag = 0;
    while (cp2p__gs_poll_event(a->r, &ev)) {
        if (ev.kind == CP2P_GS_EV_PX) {
            assert_true(cp2p_peer_id_equal(&ev.peer, &fids[5 + npx]));
            assert_int_equal(ev.record.len, npx == 0 ? 3 : 0);
            npx++;
        } else if (ev.kind == CP2P_GS_EV_PEER_TAG && !ev.joined) {
            assert_true(cp2p_peer_id_equal(&ev.peer, &fid));
            untag++;
        }
        cp2p__gs_event_fini(&ev);
    }
    assert_int_equal(npx, 2);
    assert_int_equal(untag, 1);
    /* The peer's 30 s backoff is honoured by our heartbeat. */
    now += 20000;
    cp2p__gs_heartbeat(a->r, now);
    assert_false(cp2p__gs_in_mesh(a->r, TOPIC, &fid));
    now += 12000;
    cp2p__gs_heartbeat(a->r, now);
    assert_true(cp2p__gs_in_mesh(a->r, TOPIC, &fid));
    cp2p_buf_fini(&b);
    fakes_fini();
}

static void broken_promise(void **state)
{
    (void)state;
    cp2p__gs_config c = base_cfg();
    node *a = router_with_fakes(&c, 1, CP2P_GS_MESHSUB_1_1);
    (void)take_all(a, &fid);
    cp2p_slice ids[2] = {{(const uint8_t *)"never-1", 7}, {(const uint8_t *)"never-2", 7}};
    cp2p__gs_ihave ih = {TOPIC, ids, 2};
    cp2p__gs_rpc r = {.ihave = &ih, .n_ihave = 1};
    cp2p_buf b;
    cp2p_buf_init(&b, 4096);
    frame_ctl(&b, &r);
    assert_int_equal(cp2p__gs_on_rpc(a->r, &fid, b.ptr, b.len, now), 0);
    assert_int_equal(take_all(a, &fid).iwants, 1);
    /* The same IDs again: asked again (not seen), but the IHAVE budget is per heartbeat. */
    for (int i = 0; i < CP2P_GS_MAX_IHAVE_MSGS + 2; i++) {
        assert_int_equal(cp2p__gs_on_rpc(a->r, &fid, b.ptr, b.len, now), 0);
    }
    assert_int_equal(stats(a).ihave_ignored, 3);
    for (int i = 0; i < 4; i++) {
        now += 1000;
        cp2p__gs_heartbeat(a->r, now);
    }
    cp2p__gs_stats st = stats(a);
    assert_true(st.promises_broken >= 1);
    assert_true(st.penalties >= 1);
    cp2p_buf_fini(&b);
    fakes_fini();
}

static void oversubscribed_mesh(void **state)
{
    (void)state;
    cp2p__gs_config c = base_cfg();
    node *a = router_with_fakes(&c, NFAKE, CP2P_GS_MESHSUB_1_1);
    const char *g = TOPIC;
    cp2p__gs_rpc rg = {.graft = &g, .n_graft = 1};
    cp2p_buf b;
    cp2p_buf_init(&b, 4096);
    frame_ctl(&b, &rg);
    for (size_t i = 0; i < NFAKE; i++) {
        assert_int_equal(cp2p__gs_on_rpc(a->r, &fids[i], b.ptr, b.len, now), 0);
    }
    /* Outbound peers may graft past D_hi; an inbound one may not. */
    assert_int_equal(cp2p__gs_mesh_peers(a->r, TOPIC, NULL, 0), NFAKE);
    cp2p_privkey *k;
    cp2p_peer_id in;
    mk_key(300, &k, &in);
    assert_int_equal(cp2p__gs_add_peer(a->r, &in, CP2P_GS_MESHSUB_1_1, false, NULL, now), 0);
    cp2p_buf s2;
    cp2p_buf_init(&s2, 4096);
    frame_sub(&s2, TOPIC);
    assert_int_equal(cp2p__gs_on_rpc(a->r, &in, s2.ptr, s2.len, now), 0);
    assert_int_equal(cp2p__gs_on_rpc(a->r, &in, b.ptr, b.len, now), 0);
    assert_false(cp2p__gs_in_mesh(a->r, TOPIC, &in));
    assert_int_equal(stats(a).graft_refused, 1);
    assert_int_equal(take_all(a, &in).prunes, 1);
    /* The heartbeat prunes back to D. */
    now += 1000;
    cp2p__gs_heartbeat(a->r, now);
    assert_int_equal(cp2p__gs_mesh_peers(a->r, TOPIC, NULL, 0), CP2P_GS_D);
    size_t prunes = 0;
    for (size_t i = 0; i < NFAKE; i++) {
        prunes += take_all(a, &fids[i]).prunes;
    }
    assert_int_equal(prunes, NFAKE - CP2P_GS_D);
    cp2p_buf_fini(&s2);
    cp2p_buf_fini(&b);
    cp2p_privkey_free(k);
    fakes_fini();
}

static const char *SCORED[] = {TOPIC};

static void graylist(void **state)
{
    (void)state;
    cp2p__gs_topic_score_params tp;
    memset(&tp, 0, sizeof(tp));
    tp.topic_weight = 1;
    tp.invalid_message_deliveries_weight = -10;
    tp.invalid_message_deliveries_decay = 0.9;
    cp2p__gs_score_params sp;
    memset(&sp, 0, sizeof(sp));
    sp.topics = SCORED;
    sp.topic_params = &tp;
    sp.n_topics = 1;
    sp.behaviour_penalty_weight = -1;
    sp.behaviour_penalty_decay = 0.9;
    sp.decay_interval_ms = 1000;
    sp.decay_to_zero = 0.01;
    sp.retain_score_ms = 60000;
    cp2p__gs_score_thresholds th = {-10, -50, -80, 10, 1};
    cp2p__gs_config c = base_cfg();
    c.score_params = &sp;
    c.thresholds = &th;
    node *a = router_with_fakes(&c, 2, CP2P_GS_MESHSUB_1_1);
    assert_true(cp2p__gs_in_mesh(a->r, TOPIC, &fid));
    cp2p_buf b;
    cp2p_buf_init(&b, 1 << 20);
    /* Invalid signatures: P4 = -10 * count^2 goes below the graylist threshold (-80) at the
     * third one. */
    for (uint64_t i = 0; i < 3; i++) {
        frame_msg(&b, fk, TOPIC, (const uint8_t *)"bad", 3, i, true, true);
        assert_int_equal(cp2p__gs_on_rpc(a->r, &fid, b.ptr, b.len, now), 0);
    }
    assert_true(cp2p__gs_peer_score(a->r, &fid, now) < -80);
    assert_int_equal(stats(a).msgs_bad_sig, 3);
    /* Now its RPCs are ignored: a valid message is not delivered. */
    frame_msg(&b, fk, TOPIC, (const uint8_t *)"good", 4, 99, true, false);
    assert_int_equal(cp2p__gs_on_rpc(a->r, &fid, b.ptr, b.len, now), 0);
    assert_int_equal(delivered(a, "good"), 0);
    assert_int_equal(stats(a).rpcs_graylisted, 1);
    /* The other peer is fine. */
    frame_msg(&b, fkeys[1], TOPIC, (const uint8_t *)"ok", 2, 1, true, false);
    assert_int_equal(cp2p__gs_on_rpc(a->r, &fids[1], b.ptr, b.len, now), 0);
    assert_int_equal(delivered(a, "ok"), 1);
    /* Negative score: pruned from the mesh at the next heartbeat, and not sent our message. */
    now += 1000;
    cp2p__gs_heartbeat(a->r, now);
    assert_false(cp2p__gs_in_mesh(a->r, TOPIC, &fid));
    (void)take_all(a, &fid);
    assert_int_equal(cp2p__gs_publish(a->r, TOPIC, (const uint8_t *)"pub", 3, now, NULL), 0);
    assert_int_equal(take_all(a, &fid).msgs, 0);
    cp2p_buf_fini(&b);
    fakes_fini();
}

static void subscription_limit(void **state)
{
    (void)state;
    cp2p__gs_config c = base_cfg();
    c.max_peer_subs = 3;
    node *a = router_with_fakes(&c, 1, CP2P_GS_MESHSUB_1_1);
    cp2p_buf b;
    cp2p_buf_init(&b, 4096);
    for (int i = 0; i < 5; i++) {
        char t[8] = {'s', (char)('0' + i), 0};
        assert_int_equal(cp2p__gs_rpc_sub_append(&b, t, true), 0);
    }
    assert_int_equal(cp2p__gs_on_rpc(a->r, &fid, b.ptr, b.len, now), 0);
    cp2p__gs_stats st = stats(a);
    assert_int_equal(st.subs_refused, 3); /* TOPIC + s0 + s1 fill the 3 */
    assert_int_equal(st.penalties, 1);
    cp2p_buf_fini(&b);
    fakes_fini();
}

/* 11 peers each subscribe to 1,000 topics (within max_peer_subs): 11,000 remote topics against
 * a table of max_topics 10,000. Our own subscribe and publish must still work, an honest peer's
 * subscription to our topic and to a new topic must be recorded, and the table stays bounded. */
static void topic_table_exhaustion(void **state)
{
    (void)state;
    cp2p__gs_config c = base_cfg();
    fakes_init();
    node *a = node_new(&c);
    const size_t natt = 11, honest = 12;
    cp2p_buf b;
    cp2p_buf_init(&b, CP2P_GS_MAX_RPC_SIZE);
    for (size_t i = 0; i < natt; i++) {
        assert_int_equal(cp2p__gs_add_peer(a->r, &fids[i], CP2P_GS_MESHSUB_1_1, false, NULL, now),
                         0);
        cp2p_buf_reset(&b);
        for (unsigned j = 0; j < CP2P_GS_MAX_PEER_SUBS; j++) {
            char t[32];
            snprintf(t, sizeof(t), "attack/%zu/%u", i, j);
            assert_int_equal(cp2p__gs_rpc_sub_append(&b, t, true), 0);
        }
        assert_int_equal(cp2p__gs_on_rpc(a->r, &fids[i], b.ptr, b.len, now), 0);
    }
    cp2p__gs_stats st = stats(a);
    /* The 11th peer's topics took slots from the others (each holding more topics). */
    assert_true(st.topics_evicted > 0);
    assert_int_equal(st.topics_evicted + st.topics_refused, CP2P_GS_MAX_PEER_SUBS);
    size_t total = 0;
    for (size_t i = 0; i < natt; i++) {
        char t[32];
        for (unsigned j = 0; j < CP2P_GS_MAX_PEER_SUBS; j++) {
            snprintf(t, sizeof(t), "attack/%zu/%u", i, j);
            total += cp2p__gs_topic_peers(a->r, t, NULL, 0);
        }
    }
    assert_int_equal(total, CP2P_GS_MAX_TOPICS); /* bounded: exactly the remote part */

    /* Our own subscription is not refused because of remote topics. */
    assert_int_equal(cp2p__gs_subscribe(a->r, "mine", now), 0);
    assert_true(cp2p__gs_subscribed(a->r, "mine"));
    /* An honest peer subscribes to our topic and to a new one: both recorded. */
    assert_int_equal(cp2p__gs_add_peer(a->r, &fids[honest], CP2P_GS_MESHSUB_1_1, true, NULL, now),
                     0);
    cp2p_buf_reset(&b);
    assert_int_equal(cp2p__gs_rpc_sub_append(&b, "mine", true), 0);
    assert_int_equal(cp2p__gs_rpc_sub_append(&b, "honest/new", true), 0);
    assert_int_equal(cp2p__gs_on_rpc(a->r, &fids[honest], b.ptr, b.len, now), 0);
    cp2p_peer_id got;
    assert_int_equal(cp2p__gs_topic_peers(a->r, "mine", &got, 1), 1);
    assert_true(cp2p_peer_id_equal(&got, &fids[honest]));
    assert_int_equal(cp2p__gs_topic_peers(a->r, "honest/new", &got, 1), 1);
    assert_true(cp2p_peer_id_equal(&got, &fids[honest]));
    /* Publish works on our topic and on the honest peer's (fanout). */
    (void)take_all(a, &fids[honest]);
    assert_int_equal(cp2p__gs_publish(a->r, "mine", (const uint8_t *)"m1", 2, now, NULL), 0);
    assert_int_equal(cp2p__gs_publish(a->r, "honest/new", (const uint8_t *)"m2", 2, now, NULL),
                     0);
    assert_int_equal(take_all(a, &fids[honest]).msgs, 2);
    /* The fanout topic is now ours: more attack topics never evict it. */
    cp2p_buf_reset(&b);
    for (unsigned j = 0; j < 2000; j++) {
        char t[32];
        snprintf(t, sizeof(t), "more/%u", j);
        assert_int_equal(cp2p__gs_rpc_sub_append(&b, t, true), 0);
    }
    assert_int_equal(cp2p__gs_on_rpc(a->r, &fids[honest], b.ptr, b.len, now), 0);
    assert_int_equal(cp2p__gs_topic_peers(a->r, "honest/new", NULL, 0), 1);
    assert_int_equal(cp2p__gs_topic_peers(a->r, "mine", NULL, 0), 1);
    /* Heartbeats keep everything consistent (no dangling topic pointers after evictions). */
    for (int h = 0; h < 3; h++) {
        now += 1000;
        cp2p__gs_heartbeat(a->r, now);
    }
    for (size_t i = 0; i <= honest; i++) {
        if (i == natt) {
            continue;
        }
        cp2p__gs_remove_peer(a->r, &fids[i], now);
    }
    cp2p_buf_fini(&b);
    fakes_fini();
}

/* Local topics have their own bound: EFULL past max_local_topics, whatever peers do. */
static void local_topic_limit(void **state)
{
    (void)state;
    cp2p__gs_config c = base_cfg();
    c.max_local_topics = 3;
    c.max_topics = 2;
    node *a = node_new(&c);
    assert_int_equal(cp2p__gs_subscribe(a->r, "l0", now), 0);
    assert_int_equal(cp2p__gs_subscribe(a->r, "l1", now), 0);
    assert_int_equal(cp2p__gs_subscribe(a->r, "l2", now), 0);
    assert_int_equal(cp2p__gs_subscribe(a->r, "l3", now), CP2P_EFULL);
    assert_int_equal(cp2p__gs_subscribe(a->r, "l0", now), 0); /* already: fine */
    assert_int_equal(cp2p__gs_unsubscribe(a->r, "l2", now), 0);
    assert_int_equal(cp2p__gs_subscribe(a->r, "l3", now), 0);
    assert_int_equal(stats(a).topics_refused, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(mesh_converges, teardown),
        cmocka_unit_test_teardown(gossip_recovers, teardown),
        cmocka_unit_test_teardown(publish_no_peers, teardown),
        cmocka_unit_test_teardown(graft_backoff, teardown),
        cmocka_unit_test_teardown(idontwant_suppresses, teardown),
        cmocka_unit_test_teardown(floodsub_peer, teardown),
        cmocka_unit_test_teardown(bad_signature, teardown),
        cmocka_unit_test_teardown(strict_no_sign, teardown),
        cmocka_unit_test_teardown(async_validation, teardown),
        cmocka_unit_test_teardown(outbox_bounded_and_frames_split, teardown),
        cmocka_unit_test_teardown(graylist, teardown),
        cmocka_unit_test_teardown(subscription_limit, teardown),
        cmocka_unit_test_teardown(topic_table_exhaustion, teardown),
        cmocka_unit_test_teardown(local_topic_limit, teardown),
        cmocka_unit_test_teardown(px_events, teardown),
        cmocka_unit_test_teardown(broken_promise, teardown),
        cmocka_unit_test_teardown(oversubscribed_mesh, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
