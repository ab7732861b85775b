/* Bad input against the Kademlia DHT over loopback TCP (issue 5: "malformed protobuf, oversized
 * messages, a peer returning thousands of closer peers or bogus addresses, a peer answering
 * with itself forever -- each bounded and counted, lookups still terminate").
 *
 * Client side: a victim DHT node is bootstrapped from a malicious peer (a plain host whose
 * "/ipfs/kad/1.0.0" handler answers every request with crafted bytes) and from an honest DHT
 * node that knows a second honest node. Every lookup of the victim must complete, the honest
 * results must come through, the bad answers must be counted (cp2p_kad_stats) and the
 * victim's connections to the honest nodes must survive.
 *
 * Server side: raw clients send a server-mode victim garbage, an oversized length prefix, a
 * bad varint and more requests than its per-peer rate limit; each offending stream is reset
 * and counted, and an honest client is still served.
 *
 * No DNS: every bogus address is loopback or one that cp2p cannot dial. */
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include <cp2p/codec.h>
#include <cp2p/kad.h>

#include "integration/harness.h"

#include "protocols/kad/kad_msg.h"
#include "util/limits.h"

#define N_FAKE 4000     /* closer peers in one flooding answer ("thousands") */
#define N_FAKE_BADID 10 /* of which the first ones carry an invalid peer ID */
#define SELF_REPEAT 50  /* the self-answering peer writes its answer this often per stream */

typedef struct {
    cp2p_host *h;
    char addr[256]; /* first listen address with /p2p/<id> */
} host_t;

static void host_start(host_t *n)
{
    memset(n, 0, sizeof(*n));
    n->h = harness_host();
    cp2p_multiaddr *ma;
    cp2p_buf b;
    assert_int_equal(cp2p_host_listen_addr(n->h, 0, true, &ma), 0);
    cp2p_buf_init(&b, sizeof(n->addr) - 1);
    assert_int_equal(cp2p_multiaddr_to_string(ma, &b), 0);
    memcpy(n->addr, b.ptr, b.len);
    n->addr[b.len] = 0;
    cp2p_buf_fini(&b);
    cp2p_multiaddr_free(ma);
}

static int closing;
static void on_host_closed(cp2p_host *h, void *ud)
{
    (void)h, (void)ud;
    closing--;
}

static void hosts_close(host_t *const *hs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        closing++;
        cp2p_host_close(hs[i]->h, on_host_closed, NULL);
        hs[i]->h = NULL;
    }
    while (closing > 0) {
        uv_run(&loop, UV_RUN_ONCE);
    }
}

static cp2p_kad *kad_start(host_t *n, const char *const *boot, size_t nboot, cp2p_kad_mode mode,
                           uint32_t rate, uint32_t burst)
{
    cp2p_kad_config kc;
    cp2p_kad *kad;
    cp2p_kad_config_default(&kc);
    kc.mode = mode;
    kc.bootstrap = boot;
    kc.n_bootstrap = nboot;
    kc.query_timeout_ms = 3000;
    kc.lookup_timeout_ms = 20000;
    if (rate != 0) {
        kc.requests_per_sec = rate;
        kc.requests_burst = burst;
    }
    assert_int_equal(cp2p_kad_new(n->h, &kc, &kad), 0);
    return kad;
}

/* Append `body` with its uvarint length prefix. */
static void lp_append(cp2p_buf *out, const uint8_t *body, size_t len)
{
    assert_int_equal(cp2p_uvarint_append(out, len), 0);
    assert_int_equal(cp2p_buf_append(out, body, len), 0);
}

static void msg_append_lp(cp2p_buf *out, const cp2p__kad_msg *m)
{
    cp2p_buf body;
    cp2p_buf_init(&body, CP2P_KAD_MAX_MSG);
    assert_int_equal(cp2p__kad_msg_encode(m, &body), 0);
    lp_append(out, body.ptr, body.len);
    cp2p_buf_fini(&body);
}

/* ---- the malicious peer: a plain host answering the DHT protocol with crafted bytes ---- */

typedef enum {
    EVIL_GARBAGE,   /* a well-framed answer that is not protobuf */
    EVIL_OVERSIZED, /* a length prefix over CP2P_KAD_MAX_MSG */
    EVIL_FLOOD,     /* N_FAKE closer peers with bogus addresses */
    EVIL_SELF,      /* only itself, SELF_REPEAT times */
} evil_mode;

typedef struct {
    host_t host;
    evil_mode mode;
    int requests; /* whole requests read */
    int answered; /* answers written */
    cp2p_multiaddr *bogus[3];
} evil_peer;

typedef struct {
    evil_peer *e;
    cp2p_buf in;
} evil_stream;

/* The crafted answer to request `req`. */
static void evil_answer(evil_peer *e, const cp2p__kad_msg *req, cp2p_buf *out)
{
    switch (e->mode) {
    case EVIL_GARBAGE: {
        /* Field 10, length-delimited, declares 100 bytes and carries 3: not protobuf. */
        static const uint8_t junk[] = {0x52, 0x64, 'a', 'b', 'c'};
        lp_append(out, junk, sizeof(junk));
        break;
    }
    case EVIL_OVERSIZED: {
        uint8_t zeros[1024] = {0};
        assert_int_equal(cp2p_uvarint_append(out, CP2P_KAD_MAX_MSG + 1), 0);
        assert_int_equal(cp2p_buf_append(out, zeros, sizeof(zeros)), 0);
        break;
    }
    case EVIL_FLOOD: {
        cp2p__kad_peer *peers = calloc(N_FAKE, sizeof(*peers));
        assert_non_null(peers);
        for (size_t i = 0; i < N_FAKE; i++) {
            cp2p_peer_id *id = &peers[i].id;
            if (i < N_FAKE_BADID) {
                /* Not a multihash of a key: the codec drops it. */
                id->len = 5;
                memset(id->bytes, 0xee, id->len);
            } else {
                /* A valid sha2-256 peer ID nobody owns. */
                id->bytes[0] = 0x12;
                id->bytes[1] = 0x20;
                randombytes_buf(id->bytes + 2, 32);
                id->len = 34;
            }
            peers[i].addrs = e->bogus;
            peers[i].n_addrs = 3;
            peers[i].connection = CP2P__KAD_CONNECTED;
        }
        cp2p__kad_msg m = {.type = req->type, .key = req->key, .key_len = req->key_len,
                           .closer = peers, .n_closer = N_FAKE};
        msg_append_lp(out, &m);
        free(peers);
        break;
    }
    case EVIL_SELF: {
        cp2p_multiaddr *own[4];
        ptrdiff_t na = cp2p_host_addrs(e->host.h, false, own, 4);
        assert_true(na > 0);
        cp2p__kad_peer me = {.id = *cp2p_host_peer_id(e->host.h), .addrs = own,
                             .n_addrs = (size_t)na, .connection = CP2P__KAD_CONNECTED};
        cp2p__kad_msg m = {.type = req->type, .key = req->key, .key_len = req->key_len,
                           .closer = &me, .n_closer = 1};
        for (int i = 0; i < SELF_REPEAT; i++) {
            msg_append_lp(out, &m);
        }
        for (ptrdiff_t i = 0; i < na; i++) {
            cp2p_multiaddr_free(own[i]);
        }
        break;
    }
    }
}

static void evil_read(cp2p_stream *s, ptrdiff_t n, const uint8_t *data, void *ud)
{
    evil_stream *es = ud;
    evil_peer *e = es->e;
    if (n < 0) {
        if (n == CP2P_EOF) {
            cp2p_stream_close(s);
        } else {
            cp2p_stream_reset(s);
        }
        goto done;
    }
    assert_int_equal(cp2p_buf_append(&es->in, data, (size_t)n), 0);
    uint64_t len;
    ptrdiff_t u = cp2p_uvarint_decode(es->in.ptr, es->in.len, &len);
    assert_true(u >= 0);
    if (u == 0 || es->in.len - (size_t)u < len) {
        return; /* more to come */
    }
    cp2p__kad_msg req;
    const char *why = NULL;
    assert_int_equal(cp2p__kad_msg_decode(es->in.ptr + u, (size_t)len, &req, &why), 0);
    e->requests++;
    cp2p_buf out;
    cp2p_buf_init(&out, 4 * CP2P_KAD_MAX_MSG);
    evil_answer(e, &req, &out);
    cp2p__kad_msg_fini(&req);
    if (cp2p_stream_write(s, out.ptr, out.len, NULL, NULL) == 0) {
        e->answered++;
    }
    cp2p_buf_fini(&out);
    cp2p_stream_close(s);
done:
    cp2p_buf_fini(&es->in);
    free(es);
}

static void evil_handler(cp2p_stream *s, void *ud)
{
    evil_stream *es = calloc(1, sizeof(*es));
    assert_non_null(es);
    es->e = ud;
    cp2p_buf_init(&es->in, CP2P_KAD_MAX_MSG + CP2P_UVARINT_MAX);
    assert_int_equal(cp2p_stream_read_start(s, evil_read, es), 0);
}

static void evil_start(evil_peer *e, evil_mode mode)
{
    static const char *const bogus[] = {
        "/ip4/127.0.0.1/tcp/1",          /* nothing listens: refused at once */
        "/ip6/::1/tcp/1",                /* ditto (or no IPv6 at all) */
        "/ip4/127.0.0.1/udp/1/quic-v1",  /* no transport for it */
    };
    memset(e, 0, sizeof(*e));
    host_start(&e->host);
    e->mode = mode;
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(cp2p_multiaddr_parse(bogus[i], strlen(bogus[i]), &e->bogus[i]), 0);
    }
    assert_int_equal(cp2p_host_set_handler(e->host.h, CP2P_KAD_PROTOCOL, evil_handler, e), 0);
}

static void evil_fini(evil_peer *e)
{
    for (size_t i = 0; i < 3; i++) {
        cp2p_multiaddr_free(e->bogus[i]);
    }
}

/* ---- waiting for DHT operations ---- */

typedef struct {
    bool done;
    int status;
    size_t n;
    cp2p_peer_id ids[CP2P_KAD_MAX_K];
    size_t n_addrs;
} op_res;

static void on_boot(cp2p_kad *kad, int status, size_t size, void *ud)
{
    op_res *r = ud;
    (void)kad;
    r->done = true;
    r->status = status;
    r->n = size;
}

static void on_found(cp2p_kad *kad, int status, const cp2p_kad_peer_info *p, void *ud)
{
    op_res *r = ud;
    (void)kad;
    r->done = true;
    r->status = status;
    if (status == 0) {
        r->n = 1;
        r->ids[0] = p->id;
        r->n_addrs = p->n_addrs;
    }
}

static void on_peers(cp2p_kad *kad, int status, const cp2p_kad_peer_info *p, size_t n, void *ud)
{
    op_res *r = ud;
    (void)kad;
    r->done = true;
    r->status = status;
    for (size_t i = 0; status == 0 && i < n && i < CP2P_KAD_MAX_K; i++) {
        r->ids[r->n++] = p[i].id;
    }
}

static bool has_id(const op_res *r, const cp2p_peer_id *p)
{
    for (size_t i = 0; i < r->n; i++) {
        if (cp2p_peer_id_equal(&r->ids[i], p)) {
            return true;
        }
    }
    return false;
}

/* ---- client side: the victim queries the malicious peer ---- */

typedef struct {
    evil_peer evil;
    host_t h1, h2, h3, v;
    cp2p_kad *k1, *k2, *k3, *kv;
    cp2p_kad_stats st;
    op_res find, closest;
} world;

static void world_run(world *w, evil_mode mode)
{
    memset(w, 0, sizeof(*w));
    evil_start(&w->evil, mode);
    host_start(&w->h1);
    host_start(&w->h2);
    host_start(&w->h3);
    host_start(&w->v);
    /* Honest: h2 knows h1 (and so h1 learns h2 by identify). */
    w->k1 = kad_start(&w->h1, NULL, 0, CP2P_KAD_MODE_SERVER, 0, 0);
    const char *b2[] = {w->h1.addr};
    w->k2 = kad_start(&w->h2, b2, 1, CP2P_KAD_MODE_SERVER, 0, 0);
    op_res r = {0};
    assert_int_equal(cp2p_kad_bootstrap(w->k2, on_boot, &r), 0);
    run_until(&r.done);
    assert_true(cp2p_kad_table_size(w->k1) >= 1);
    /* The victim is told the malicious peer first, and h1. */
    const char *bv[] = {w->evil.host.addr, w->h1.addr};
    w->kv = kad_start(&w->v, bv, 2, CP2P_KAD_MODE_SERVER, 0, 0);
    r = (op_res){0};
    assert_int_equal(cp2p_kad_bootstrap(w->kv, on_boot, &r), 0);
    run_until(&r.done);
    print_message("victim bootstrap: status %d, table %zu\n", r.status, r.n);
    /* h3 joins after that, known to h1 only (h1 dials it; h3 looks nothing up): the victim
     * neither knows nor is connected to it, so finding it takes a real lookup, seeded with
     * the malicious peer among others. */
    w->k3 = kad_start(&w->h3, NULL, 0, CP2P_KAD_MODE_SERVER, 0, 0);
    dial_res dr;
    assert_non_null(dial_host(w->h1.h, w->h3.h, &dr));
    uint64_t t0 = uv_now(&loop);
    while (cp2p_kad_table_size(w->k1) < 3 && uv_now(&loop) - t0 < GUARD_MS) {
        run_for(20);
    }
    assert_int_equal(cp2p_kad_table_size(w->k1), 3); /* h2, v, h3 */
    int asked_before = w->evil.requests;

    /* find_peer of an honest node that only the honest nodes know of. */
    const cp2p_peer_id *id3 = cp2p_host_peer_id(w->h3.h);
    assert_null(cp2p_host_conn_to(w->v.h, id3));
    assert_int_equal(cp2p_kad_find_peer(w->kv, id3, on_found, &w->find), 0);
    run_until(&w->find.done);
    /* The k closest of a random key. */
    uint8_t key[32];
    randombytes_buf(key, sizeof(key));
    assert_int_equal(cp2p_kad_closest_peers(w->kv, key, sizeof(key), on_peers, &w->closest), 0);
    run_until(&w->closest.done);
    run_for(300);
    cp2p_kad_stats_get(w->kv, &w->st);
    print_message("mode %d: evil read %d requests, answered %d; victim: requests_bad %llu "
                  "queries_out %llu queries_failed %llu closer_dropped %llu lookups %llu "
                  "timed_out %llu table %llu\n",
                  (int)mode, w->evil.requests, w->evil.answered,
                  (unsigned long long)w->st.requests_bad, (unsigned long long)w->st.queries_out,
                  (unsigned long long)w->st.queries_failed,
                  (unsigned long long)w->st.closer_dropped, (unsigned long long)w->st.lookups,
                  (unsigned long long)w->st.lookups_timed_out,
                  (unsigned long long)w->st.table_size);

    /* Whatever the malicious peer did: the lookups completed with the honest results. */
    assert_true(w->evil.requests - asked_before >= 2); /* it was asked in both lookups */
    assert_int_equal(w->find.status, 0);
    assert_true(cp2p_peer_id_equal(&w->find.ids[0], id3));
    assert_true(w->find.n_addrs > 0);
    assert_int_equal(w->closest.status, 0);
    assert_true(has_id(&w->closest, cp2p_host_peer_id(w->h1.h)));
    const cp2p_peer_id *id2 = cp2p_host_peer_id(w->h2.h);
    assert_true(has_id(&w->closest, id2));
    assert_true(has_id(&w->closest, id3));
    /* Only peers that answered are results, and only they enter the table. */
    const cp2p_peer_id *known[] = {cp2p_host_peer_id(w->h1.h), id2, id3,
                                   cp2p_host_peer_id(w->evil.host.h)};
    for (size_t i = 0; i < w->closest.n; i++) {
        bool ok = false;
        for (size_t j = 0; j < 4; j++) {
            ok = ok || cp2p_peer_id_equal(&w->closest.ids[i], known[j]);
        }
        assert_true(ok);
    }
    cp2p_peer_id p;
    for (size_t i = 0; cp2p_kad_table_peer(w->kv, i, &p); i++) {
        bool ok = false;
        for (size_t j = 0; j < 4; j++) {
            ok = ok || cp2p_peer_id_equal(&p, known[j]);
        }
        assert_true(ok);
    }
    /* The victim's connections to the honest nodes survived. */
    cp2p_conn *c1 = cp2p_host_conn_to(w->v.h, cp2p_host_peer_id(w->h1.h));
    cp2p_conn *c2 = cp2p_host_conn_to(w->v.h, id2);
    cp2p_conn *c3 = cp2p_host_conn_to(w->v.h, id3);
    assert_non_null(c1);
    assert_non_null(c2);
    assert_non_null(c3);
    assert_ping_ok(c1);
    assert_ping_ok(c2);
    assert_ping_ok(c3);
    assert_int_equal(w->st.lookups_timed_out, 0);
}

static void world_close(world *w)
{
    cp2p_kad_close(w->kv);
    cp2p_kad_close(w->k3);
    cp2p_kad_close(w->k2);
    cp2p_kad_close(w->k1);
    host_t *hs[] = {&w->v, &w->h3, &w->h2, &w->h1, &w->evil.host};
    hosts_close(hs, 5);
    evil_fini(&w->evil);
}

static world W;

/* Malformed protobuf: each answer is counted bad, its query failed. */
static void answer_garbage(void **state)
{
    (void)state;
    world_run(&W, EVIL_GARBAGE);
    assert_true(W.st.requests_bad >= 1);
    assert_true(W.st.requests_bad <= (uint64_t)W.evil.answered);
    assert_true(W.st.queries_failed >= W.st.requests_bad);
    assert_int_equal(W.st.closer_dropped, 0);
    /* It never answered well: not a result. */
    assert_false(has_id(&W.closest, cp2p_host_peer_id(W.evil.host.h)));
    world_close(&W);
}

/* A length prefix over CP2P_KAD_MAX_MSG: refused from the prefix, before the body. */
static void answer_oversized(void **state)
{
    (void)state;
    world_run(&W, EVIL_OVERSIZED);
    assert_true(W.st.queries_failed >= 1);
    assert_true(W.st.requests_bad >= 1);
    assert_true(W.st.requests_bad <= (uint64_t)W.evil.answered);
    assert_false(has_id(&W.closest, cp2p_host_peer_id(W.evil.host.h)));
    world_close(&W);
}

/* Thousands of closer peers, with bogus addresses and some bogus IDs: the codec keeps
 * CP2P_KAD_MAX_PEERS_PER_MSG and counts the rest; the bogus peers fail their dial. */
static void answer_thousands(void **state)
{
    (void)state;
    world_run(&W, EVIL_FLOOD);
    uint64_t per = N_FAKE - CP2P_KAD_MAX_PEERS_PER_MSG;
    assert_true(W.st.closer_dropped >= per);
    assert_int_equal(W.st.closer_dropped % per, 0);
    assert_true(W.st.closer_dropped / per <= (uint64_t)W.evil.answered);
    assert_true(W.st.queries_failed >= 1); /* bogus peers, queried, failed */
    assert_int_equal(W.st.requests_bad, 0);
    world_close(&W);
}

/* A peer answering only with itself (many times on each stream): every lookup asks it once. */
static void answer_self(void **state)
{
    (void)state;
    world_run(&W, EVIL_SELF);
    assert_true((uint64_t)W.evil.requests <= W.st.lookups);
    assert_int_equal(W.st.requests_bad, 0);
    assert_int_equal(W.st.closer_dropped, 0);
    world_close(&W);
}

/* ---- server side: raw clients send the victim bad requests ---- */

typedef struct {
    uint8_t *data;
    size_t len;
    bool close_write;
    bool done;
    int status; /* 0: clean end of stream; else the read error (CP2P_ERESET) or open error */
    int answers;
    cp2p_buf in;
    cp2p_peer_id want;
    bool saw_want;
} raw_call;

static void raw_read(cp2p_stream *s, ptrdiff_t n, const uint8_t *data, void *ud)
{
    raw_call *c = ud;
    if (n < 0) {
        c->status = n == CP2P_EOF ? 0 : (int)n;
        c->done = true;
        if (n == CP2P_EOF) {
            cp2p_stream_close(s);
        } else {
            cp2p_stream_reset(s);
        }
        return;
    }
    assert_int_equal(cp2p_buf_append(&c->in, data, (size_t)n), 0);
    for (;;) {
        uint64_t len;
        ptrdiff_t u = cp2p_uvarint_decode(c->in.ptr, c->in.len, &len);
        assert_true(u >= 0);
        if (u == 0 || c->in.len - (size_t)u < len) {
            return;
        }
        cp2p__kad_msg m;
        const char *why = NULL;
        assert_int_equal(cp2p__kad_msg_decode(c->in.ptr + u, (size_t)len, &m, &why), 0);
        c->answers++;
        for (size_t i = 0; i < m.n_closer; i++) {
            if (cp2p_peer_id_equal(&m.closer[i].id, &c->want) && m.closer[i].n_addrs > 0) {
                c->saw_want = true;
            }
        }
        cp2p__kad_msg_fini(&m);
        cp2p_buf_consume(&c->in, (size_t)u + (size_t)len);
    }
}

static void raw_open(cp2p_stream *s, int status, void *ud)
{
    raw_call *c = ud;
    if (status != 0) {
        c->status = status;
        c->done = true;
        return;
    }
    assert_int_equal(cp2p_stream_write(s, c->data, c->len, NULL, NULL), 0);
    if (c->close_write) {
        assert_int_equal(cp2p_stream_close_write(s), 0);
    }
    assert_int_equal(cp2p_stream_read_start(s, raw_read, c), 0);
}

static void raw_start(raw_call *c, cp2p_conn *conn, const cp2p_buf *bytes, bool close_write)
{
    static const char *const protos[] = {CP2P_KAD_PROTOCOL};
    cp2p_peer_id want = c->want;
    memset(c, 0, sizeof(*c));
    c->want = want;
    c->data = malloc(bytes->len);
    assert_non_null(c->data);
    memcpy(c->data, bytes->ptr, bytes->len);
    c->len = bytes->len;
    c->close_write = close_write;
    cp2p_buf_init(&c->in, 4 * CP2P_KAD_MAX_MSG);
    assert_int_equal(cp2p_conn_open_stream(conn, protos, 1, raw_open, c), 0);
}

static void raw_fini(raw_call *c)
{
    free(c->data);
    cp2p_buf_fini(&c->in);
}

/* One stream carrying `bytes`; returns how it ended. */
static void raw_once(raw_call *c, cp2p_conn *conn, const cp2p_buf *bytes, bool close_write)
{
    raw_start(c, conn, bytes, close_write);
    run_until(&c->done);
}

#define RATE 1
#define BURST 3
#define FLOOD_STREAMS 8
#define FLOOD_PIPELINED 10

static void find_node_req(cp2p_buf *out, const cp2p_peer_id *target, int times)
{
    cp2p__kad_msg m = {.type = CP2P__KAD_FIND_NODE, .key = (uint8_t *)target->bytes,
                       .key_len = target->len};
    for (int i = 0; i < times; i++) {
        msg_append_lp(out, &m);
    }
}

static void server_bad_requests(void **state)
{
    (void)state;
    host_t v, h1, bad, flood, flood2, honest;
    cp2p_kad_stats st0, st;
    dial_res dr;
    raw_call c;
    cp2p_buf b;
    host_start(&h1);
    host_start(&v);
    host_start(&bad);
    host_start(&flood);
    host_start(&flood2);
    host_start(&honest);
    cp2p_kad *k1 = kad_start(&h1, NULL, 0, CP2P_KAD_MODE_SERVER, 0, 0);
    const char *bv[] = {h1.addr};
    cp2p_kad *kv = kad_start(&v, bv, 1, CP2P_KAD_MODE_SERVER, RATE, BURST);
    op_res r = {0};
    assert_int_equal(cp2p_kad_bootstrap(kv, on_boot, &r), 0);
    run_until(&r.done);
    assert_true(cp2p_kad_table_size(kv) >= 1);
    const cp2p_peer_id *id1 = cp2p_host_peer_id(h1.h);
    cp2p_kad_stats_get(kv, &st0);

    /* 1. Garbage body under a valid length prefix. */
    cp2p_conn *cb = dial_host(bad.h, v.h, &dr);
    assert_non_null(cb);
    static const uint8_t junk[] = {0x52, 0x64, 'a', 'b', 'c'};
    cp2p_buf_init(&b, 1 << 20);
    lp_append(&b, junk, sizeof(junk));
    raw_once(&c, cb, &b, false);
    raw_fini(&c);
    assert_int_equal(c.status, CP2P_ERESET);
    assert_int_equal(c.answers, 0);
    cp2p_kad_stats_get(kv, &st);
    assert_int_equal(st.requests_bad - st0.requests_bad, 1);

    /* 2. A length prefix over CP2P_KAD_MAX_MSG: refused before any body arrives. */
    cp2p_buf_reset(&b);
    assert_int_equal(cp2p_uvarint_append(&b, CP2P_KAD_MAX_MSG + 1), 0);
    raw_once(&c, cb, &b, false);
    raw_fini(&c);
    assert_int_equal(c.status, CP2P_ERESET);
    cp2p_kad_stats_get(kv, &st);
    assert_int_equal(st.requests_bad - st0.requests_bad, 2);

    /* 3. Not a varint at all (too long). */
    cp2p_buf_reset(&b);
    for (int i = 0; i < 12; i++) {
        assert_int_equal(cp2p_buf_append_byte(&b, 0xff), 0);
    }
    raw_once(&c, cb, &b, false);
    raw_fini(&c);
    assert_int_equal(c.status, CP2P_ERESET);
    cp2p_kad_stats_get(kv, &st);
    assert_int_equal(st.requests_bad - st0.requests_bad, 3);
    /* The misbehaving peer's connection itself is untouched (only its streams were reset). */
    assert_ping_ok(cb);

    /* 4. A flood on one stream: FLOOD_PIPELINED requests at once; BURST are served, the next
     * one resets the stream. */
    cp2p_conn *cf = dial_host(flood.h, v.h, &dr);
    assert_non_null(cf);
    cp2p_buf_reset(&b);
    find_node_req(&b, id1, FLOOD_PIPELINED);
    c.want = *id1;
    raw_once(&c, cf, &b, false);
    raw_fini(&c);
    assert_int_equal(c.status, CP2P_ERESET);
    assert_true(c.answers <= BURST); /* answers queued before the reset may be dropped */
    cp2p_kad_stats_get(kv, &st);
    assert_int_equal(st.requests_refused_rate - st0.requests_refused_rate, 1);
    assert_true(st.responses_sent - st0.responses_sent >= BURST);

    /* 5. A flood of streams from another peer: one request each. */
    cp2p_conn *cf2 = dial_host(flood2.h, v.h, &dr);
    assert_non_null(cf2);
    raw_call calls[FLOOD_STREAMS];
    cp2p_buf_reset(&b);
    find_node_req(&b, id1, 1);
    cp2p_kad_stats_get(kv, &st0);
    for (int i = 0; i < FLOOD_STREAMS; i++) {
        calls[i].want = *id1;
        raw_start(&calls[i], cf2, &b, true);
    }
    int served = 0, reset = 0;
    for (int i = 0; i < FLOOD_STREAMS; i++) {
        run_until(&calls[i].done);
    }
    for (int i = 0; i < FLOOD_STREAMS; i++) {
        if (calls[i].status == 0 && calls[i].answers == 1 && calls[i].saw_want) {
            served++;
        } else if (calls[i].status == CP2P_ERESET && calls[i].answers == 0) {
            reset++;
        }
        raw_fini(&calls[i]);
    }
    cp2p_kad_stats_get(kv, &st);
    print_message("stream flood: %d served, %d reset (burst %d, %d/s)\n", served, reset, BURST,
                  RATE);
    assert_int_equal(served + reset, FLOOD_STREAMS);
    assert_true(served >= BURST);
    assert_true(reset >= 1);
    assert_int_equal(st.requests_refused_rate - st0.requests_refused_rate, (uint64_t)reset);
    assert_int_equal(st.requests_bad - st0.requests_bad, 0);

    /* 6. An honest client is still served: two requests on one stream, both answered, and
     * it names h1 with an address. */
    cp2p_conn *ch = dial_host(honest.h, v.h, &dr);
    assert_non_null(ch);
    cp2p_buf_reset(&b);
    find_node_req(&b, id1, 2);
    c.want = *id1;
    raw_once(&c, ch, &b, true);
    raw_fini(&c);
    assert_int_equal(c.status, 0);
    assert_int_equal(c.answers, 2);
    assert_true(c.saw_want);
    /* And the honest DHT node h1 still finds through the victim. */
    r = (op_res){0};
    uint8_t key[32];
    randombytes_buf(key, sizeof(key));
    assert_int_equal(cp2p_kad_closest_peers(k1, key, sizeof(key), on_peers, &r), 0);
    run_until(&r.done);
    assert_int_equal(r.status, 0);
    assert_true(has_id(&r, cp2p_host_peer_id(v.h)));
    cp2p_kad_stats_get(kv, &st);
    print_message("server: requests_in %llu bad %llu refused_rate %llu responses %llu\n",
                  (unsigned long long)st.requests_in, (unsigned long long)st.requests_bad,
                  (unsigned long long)st.requests_refused_rate,
                  (unsigned long long)st.responses_sent);
    cp2p_buf_fini(&b);

    cp2p_kad_close(kv);
    cp2p_kad_close(k1);
    host_t *hs[] = {&v, &h1, &bad, &flood, &flood2, &honest};
    hosts_close(hs, 6);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(answer_garbage, setup, teardown),
        cmocka_unit_test_setup_teardown(answer_oversized, setup, teardown),
        cmocka_unit_test_setup_teardown(answer_thousands, setup, teardown),
        cmocka_unit_test_setup_teardown(answer_self, setup, teardown),
        cmocka_unit_test_setup_teardown(server_bad_requests, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
