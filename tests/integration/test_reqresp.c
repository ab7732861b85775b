/* Request-response (cp2p/reqresp.h) between two hosts over loopback TCP: plain and
 * length-prefixed echo at several sizes, asynchronous answers, size limits on both sides,
 * refusal, unknown protocols, timeouts, 200 concurrent requests, the per-peer inbound limit,
 * connections closed with requests in flight, and lazy negotiation (one round trip per
 * request, counted by a TCP relay between the hosts; a peer that refuses a protocol its
 * identify listed). Leaks are caught by the ASan build. */
#include <stdlib.h>
#include <string.h>

#include <cp2p/reqresp.h>

#include "integration/harness.h"
#include "protocols/reqresp/reqresp_internal.h"
#include "swarm/swarm.h"

#define P_ECHO "/test/rr/echo/1.0.0"
#define P_ECHO_LP "/test/rr/echo-lp/1.0.0"
#define P_ASYNC "/test/rr/async/1.0.0"
#define P_SMALL "/test/rr/small/1.0.0"
#define P_SMALL_LP "/test/rr/small-lp/1.0.0"
#define P_BIGRESP "/test/rr/bigresp/1.0.0"
#define P_REFUSE "/test/rr/refuse/1.0.0"
#define P_STALL "/test/rr/stall/1.0.0"
#define P_LIMIT "/test/rr/limit/1.0.0"

static const char *const ALL_PROTOS[] = {P_ECHO,    P_ECHO_LP, P_ASYNC,  P_SMALL, P_SMALL_LP,
                                         P_BIGRESP, P_REFUSE,  P_STALL, P_LIMIT};
#define NPROTOS (sizeof(ALL_PROTOS) / sizeof(ALL_PROTOS[0]))

/* ---- server side ---- */

static void echo_handler(cp2p_reqresp_responder *r, cp2p_conn *c, const uint8_t *req, size_t len,
                         void *ud)
{
    (void)c;
    (void)ud;
    assert_int_equal(cp2p_reqresp_respond(r, req, len), 0);
}

static void refuse_handler(cp2p_reqresp_responder *r, cp2p_conn *c, const uint8_t *req,
                           size_t len, void *ud)
{
    (void)c;
    (void)req;
    (void)len;
    (void)ud;
    cp2p_reqresp_refuse(r);
}

static void bigresp_handler(cp2p_reqresp_responder *r, cp2p_conn *c, const uint8_t *req,
                            size_t len, void *ud)
{
    static const uint8_t eleven[11] = "0123456789";
    (void)c;
    (void)req;
    (void)len;
    (void)ud;
    assert_int_equal(cp2p_reqresp_respond(r, eleven, sizeof(eleven)), CP2P_ELIMIT);
}

/* Asynchronous answers: a timer per request echoes the request later. */
typedef struct {
    uv_timer_t t;
    cp2p_reqresp_responder *r;
    size_t len;
    uint8_t data[];
} later;

static void later_closed(uv_handle_t *h)
{
    free(h->data);
}

static void later_fire(uv_timer_t *t)
{
    later *l = t->data;
    assert_int_equal(cp2p_reqresp_respond(l->r, l->data, l->len), 0);
    uv_close((uv_handle_t *)&l->t, later_closed);
}

static void async_handler(cp2p_reqresp_responder *r, cp2p_conn *c, const uint8_t *req,
                          size_t len, void *ud)
{
    later *l = malloc(sizeof(*l) + len);
    (void)c;
    (void)ud;
    assert_non_null(l);
    l->r = r;
    l->len = len;
    if (len > 0) {
        memcpy(l->data, req, len);
    }
    assert_int_equal(uv_timer_init(&loop, &l->t), 0);
    l->t.data = l;
    assert_int_equal(uv_timer_start(&l->t, later_fire, 20, 0), 0);
}

/* Stalled requests: kept until the test answers them. */
#define MAX_HELD 64
static cp2p_reqresp_responder *held[MAX_HELD];
static size_t nheld;

static void hold_handler(cp2p_reqresp_responder *r, cp2p_conn *c, const uint8_t *req, size_t len,
                         void *ud)
{
    (void)c;
    (void)req;
    (void)len;
    (void)ud;
    assert_true(nheld < MAX_HELD);
    held[nheld++] = r;
}

/* Answer every held request: refuse (want_rc 1), or respond and expect want_rc (0 or
 * CP2P_ECLOSED; 2 accepts either). */
static void release_held(int want_rc)
{
    for (size_t i = 0; i < nheld; i++) {
        if (want_rc == 2) {
            int rc = cp2p_reqresp_respond(held[i], "late", 4);
            assert_true(rc == 0 || rc == CP2P_ECLOSED);
        } else if (want_rc != 1) {
            assert_int_equal(cp2p_reqresp_respond(held[i], "late", 4), want_rc);
        } else {
            cp2p_reqresp_refuse(held[i]);
        }
    }
    nheld = 0;
}

static cp2p_host *server, *client;
static cp2p_conn *conn;
static int server_conns_closed, server_identified;

static void on_server_event(cp2p_host *h, const cp2p_event *ev, void *ud)
{
    (void)h;
    (void)ud;
    if (ev->type == CP2P_EVENT_CONN_CLOSED) {
        server_conns_closed++;
    } else if (ev->type == CP2P_EVENT_PEER_IDENTIFIED) {
        server_identified++;
    }
}

static void reg(const char *proto, cp2p_reqresp_handler cb, void (*tweak)(cp2p_reqresp_config *))
{
    cp2p_reqresp_config cfg;
    cp2p_reqresp_config_default(&cfg);
    if (tweak != NULL) {
        tweak(&cfg);
    }
    assert_int_equal(cp2p_reqresp_register(server, proto, &cfg, cb, NULL), 0);
}

static void lp(cp2p_reqresp_config *c)
{
    c->length_prefixed = true;
}
static void small(cp2p_reqresp_config *c)
{
    c->max_request_bytes = 100;
}
static void small_lp(cp2p_reqresp_config *c)
{
    c->max_request_bytes = 100;
    c->length_prefixed = true;
}
static void tiny_resp(cp2p_reqresp_config *c)
{
    c->max_response_bytes = 10;
}
static void many(cp2p_reqresp_config *c)
{
    c->max_inbound_per_peer = 256;
}
static void four(cp2p_reqresp_config *c)
{
    c->max_inbound_per_peer = 4;
}

static cp2p_host *host_start(bool listen)
{
    cp2p_host_config cfg;
    cp2p_privkey *key;
    cp2p_host *h;
    assert_int_equal(cp2p_privkey_generate(CP2P_KEY_ED25519, &key), 0);
    cp2p_host_config_default(&cfg);
    cfg.identity = key;
    cfg.max_inbound_per_protocol = 1024; /* concurrent_requests opens 200 at once */
    harness_config(&cfg);
    assert_int_equal(cp2p_host_new(&loop, &cfg, &h), 0);
    cp2p_privkey_free(key);
    if (listen) {
        harness_listen(h);
    }
    return h;
}

static void pair_start(void)
{
    dial_res r;
    nheld = 0;
    server_conns_closed = 0;
    server_identified = 0;
    server = host_start(true);
    cp2p_host_set_event_cb(server, on_server_event, NULL);
    client = host_start(false);
    reg(P_ECHO, echo_handler, NULL);
    reg(P_ECHO_LP, echo_handler, lp);
    reg(P_ASYNC, async_handler, many);
    reg(P_SMALL, echo_handler, small);
    reg(P_SMALL_LP, echo_handler, small_lp);
    reg(P_BIGRESP, bigresp_handler, tiny_resp);
    reg(P_REFUSE, refuse_handler, NULL);
    reg(P_STALL, hold_handler, NULL);
    reg(P_LIMIT, hold_handler, four);
    conn = dial_host(client, server, &r);
    assert_int_equal(r.status, 0);
}

static void on_closed(cp2p_host *h, void *ud)
{
    (void)h;
    (*(int *)ud)++;
}

static void pair_stop(void)
{
    int closed = 0;
    release_held(1);
    for (size_t i = 0; i < NPROTOS; i++) {
        assert_int_equal(cp2p_reqresp_unregister(server, ALL_PROTOS[i]), 0);
    }
    assert_int_equal(cp2p_reqresp_unregister(server, P_ECHO), CP2P_ENOENT);
    cp2p_host_close(client, on_closed, &closed);
    cp2p_host_close(server, on_closed, &closed);
    while (closed < 2) {
        uv_run(&loop, UV_RUN_ONCE);
    }
}

/* ---- client side ---- */

typedef struct {
    bool done;
    int status;
    uint8_t *data;
    size_t len;
    int *remaining;
} res;

static void on_res(cp2p_conn *c, int status, const uint8_t *resp, size_t len, void *ud)
{
    res *r = ud;
    (void)c;
    assert_false(r->done);
    r->done = true;
    r->status = status;
    r->len = len;
    if (status == 0 && len > 0) {
        r->data = malloc(len);
        assert_non_null(r->data);
        memcpy(r->data, resp, len);
    }
    if (r->remaining != NULL) {
        (*r->remaining)--;
    }
}

static void res_clear(res *r)
{
    free(r->data);
    *r = (res){0};
}

static int request(const char *proto, const cp2p_reqresp_config *cfg, const uint8_t *req,
                   size_t len, res *r)
{
    int rc;
    *r = (res){0};
    assert_int_equal(cp2p_reqresp_request(conn, proto, cfg, req, len, on_res, r), 0);
    run_until(&r->done);
    rc = r->status;
    return rc;
}

static uint8_t *pattern(size_t len, unsigned seed)
{
    uint8_t *p = malloc(len > 0 ? len : 1);
    assert_non_null(p);
    for (size_t i = 0; i < len; i++) {
        p[i] = (uint8_t)(i * 31 + seed + (i >> 8));
    }
    return p;
}

static void echo_sizes(void **state)
{
    static const size_t sizes[] = {0, 1, 64 * 1024, 1024 * 1024};
    (void)state;
    pair_start();
    for (int mode = 0; mode < 2; mode++) {
        cp2p_reqresp_config cfg;
        cp2p_reqresp_config_default(&cfg);
        cfg.length_prefixed = mode == 1;
        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
            uint8_t *p = pattern(sizes[i], (unsigned)i);
            res r;
            assert_int_equal(request(mode ? P_ECHO_LP : P_ECHO, &cfg, p, sizes[i], &r), 0);
            assert_int_equal(r.len, sizes[i]);
            if (sizes[i] > 0) {
                assert_memory_equal(r.data, p, sizes[i]);
            }
            res_clear(&r);
            free(p);
        }
    }
    /* NULL config means the defaults (plain). */
    res r;
    assert_int_equal(request(P_ECHO, NULL, (const uint8_t *)"hi", 2, &r), 0);
    assert_int_equal(r.len, 2);
    res_clear(&r);
    pair_stop();
}

static void async_responses(void **state)
{
    res rs[10];
    int remaining = 10;
    (void)state;
    pair_start();
    for (int i = 0; i < 10; i++) {
        uint8_t b = (uint8_t)i;
        rs[i] = (res){.remaining = &remaining};
        assert_int_equal(cp2p_reqresp_request(conn, P_ASYNC, NULL, &b, 1, on_res, &rs[i]), 0);
    }
    while (remaining > 0) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    for (int i = 0; i < 10; i++) {
        assert_int_equal(rs[i].status, 0);
        assert_int_equal(rs[i].len, 1);
        assert_int_equal(rs[i].data[0], i);
        res_clear(&rs[i]);
    }
    pair_stop();
}

static void oversize_request_refused(void **state)
{
    uint8_t *p = pattern(101, 7);
    cp2p_reqresp_config cfg, lpcfg;
    res r;
    (void)state;
    pair_start();
    cp2p_reqresp_config_default(&cfg);
    lpcfg = cfg;
    lpcfg.length_prefixed = true;
    /* At the limit is fine, one byte over is reset by the responder. */
    assert_int_equal(request(P_SMALL, &cfg, p, 100, &r), 0);
    res_clear(&r);
    assert_int_equal(request(P_SMALL, &cfg, p, 101, &r), CP2P_ERESET);
    assert_int_equal(request(P_SMALL_LP, &lpcfg, p, 100, &r), 0);
    res_clear(&r);
    assert_int_equal(request(P_SMALL_LP, &lpcfg, p, 101, &r), CP2P_ERESET);
    assert_int_equal(cp2p__reqresp_get_stats(server, P_SMALL)->request_too_large, 1);
    assert_int_equal(cp2p__reqresp_get_stats(server, P_SMALL_LP)->request_too_large, 1);
    /* The requester's own limit is checked before anything is sent. */
    cfg.max_request_bytes = 100;
    assert_int_equal(cp2p_reqresp_request(conn, P_SMALL, &cfg, p, 101, on_res, &r), CP2P_ELIMIT);
    free(p);
    pair_stop();
}

static void oversize_response_refused(void **state)
{
    uint8_t *p = pattern(11, 3);
    cp2p_reqresp_config cfg;
    res r;
    (void)state;
    pair_start();
    /* The responder's respond() refuses a response over its limit: the stream is reset. */
    assert_int_equal(request(P_BIGRESP, NULL, p, 1, &r), CP2P_ERESET);
    assert_int_equal(cp2p__reqresp_get_stats(server, P_BIGRESP)->response_too_large, 1);
    /* The requester stops reading past its limit, in both framings. */
    cp2p_reqresp_config_default(&cfg);
    cfg.max_response_bytes = 10;
    assert_int_equal(request(P_ECHO, &cfg, p, 10, &r), 0);
    res_clear(&r);
    assert_int_equal(request(P_ECHO, &cfg, p, 11, &r), CP2P_ELIMIT);
    cfg.length_prefixed = true;
    assert_int_equal(request(P_ECHO_LP, &cfg, p, 11, &r), CP2P_ELIMIT);
    /* A large response past the limit: reading stops early. */
    uint8_t *big = pattern(512 * 1024, 1);
    cfg.length_prefixed = false;
    cfg.max_response_bytes = 1000;
    assert_int_equal(request(P_ECHO, &cfg, big, 512 * 1024, &r), CP2P_ELIMIT);
    free(big);
    free(p);
    pair_stop();
}

static void refuse_and_unknown(void **state)
{
    res r;
    (void)state;
    pair_start();
    assert_int_equal(request(P_REFUSE, NULL, (const uint8_t *)"x", 1, &r), CP2P_ERESET);
    assert_int_equal(cp2p__reqresp_get_stats(server, P_REFUSE)->refused, 1);
    assert_int_equal(request("/test/rr/nobody/1.0.0", NULL, (const uint8_t *)"x", 1, &r),
                     CP2P_ENOTSUP);
    /* After unregistering, the protocol is unknown too. */
    assert_int_equal(cp2p_reqresp_unregister(server, P_REFUSE), 0);
    assert_int_equal(request(P_REFUSE, NULL, (const uint8_t *)"x", 1, &r), CP2P_ENOTSUP);
    reg(P_REFUSE, refuse_handler, NULL);
    /* Re-registering replaces the registration (the old one is released). */
    reg(P_ECHO, refuse_handler, NULL);
    assert_int_equal(request(P_ECHO, NULL, (const uint8_t *)"x", 1, &r), CP2P_ERESET);
    /* Bad arguments never call back. */
    cp2p_reqresp_config cfg;
    cp2p_reqresp_config_default(&cfg);
    cfg.timeout_ms = 0;
    assert_int_equal(cp2p_reqresp_request(conn, P_ECHO, &cfg, "x", 1, on_res, &r), CP2P_EINVAL);
    assert_int_equal(cp2p_reqresp_request(conn, "bad id", NULL, "x", 1, on_res, &r),
                     CP2P_EINVAL);
    assert_int_equal(cp2p_reqresp_register(server, P_ECHO, &cfg, echo_handler, NULL),
                     CP2P_EINVAL);
    pair_stop();
}

static void stalled_responder_times_out(void **state)
{
    cp2p_reqresp_config cfg;
    res r;
    (void)state;
    pair_start();
    cp2p_reqresp_config_default(&cfg);
    cfg.timeout_ms = 200;
    assert_int_equal(request(P_STALL, &cfg, (const uint8_t *)"x", 1, &r), CP2P_ETIMEDOUT);
    /* The responder can still answer after the requester gave up: the answer is dropped. */
    while (nheld < 1) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    release_held(2); /* 0 or CP2P_ECLOSED, depending on whether the reset arrived yet */
    /* The connection still works. */
    assert_int_equal(request(P_ECHO, NULL, (const uint8_t *)"ok", 2, &r), 0);
    res_clear(&r);
    pair_stop();
}

#define NCONC 200

static void concurrent_requests(void **state)
{
    static res rs[NCONC];
    int remaining = NCONC;
    (void)state;
    pair_start();
    for (int i = 0; i < NCONC; i++) {
        uint8_t b[8];
        for (int k = 0; k < 8; k++) {
            b[k] = (uint8_t)(i + k);
        }
        rs[i] = (res){.remaining = &remaining};
        assert_int_equal(
            cp2p_reqresp_request(conn, P_ASYNC, NULL, b, (size_t)(i % 8) + 1, on_res, &rs[i]), 0);
    }
    uint64_t start = uv_now(&loop);
    while (remaining > 0) {
        uv_run(&loop, UV_RUN_ONCE);
        assert_true(uv_now(&loop) - start < GUARD_MS);
    }
    for (int i = 0; i < NCONC; i++) {
        assert_int_equal(rs[i].status, 0);
        assert_int_equal(rs[i].len, (size_t)(i % 8) + 1);
        for (size_t k = 0; k < rs[i].len; k++) {
            assert_int_equal(rs[i].data[k], (uint8_t)(i + (int)k));
        }
        res_clear(&rs[i]);
    }
    assert_int_equal(cp2p__reqresp_get_stats(server, P_ASYNC)->inbound_over_limit, 0);
    pair_stop();
}

static void per_peer_limit(void **state)
{
    res rs[10];
    int remaining = 10;
    (void)state;
    pair_start();
    for (int i = 0; i < 10; i++) {
        rs[i] = (res){.remaining = &remaining};
        assert_int_equal(cp2p_reqresp_request(conn, P_LIMIT, NULL, "q", 1, on_res, &rs[i]), 0);
    }
    /* Four are held by the handler; the other six are reset at once. */
    while (remaining > 4 || nheld < 4) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    assert_int_equal(nheld, 4);
    assert_int_equal(cp2p__reqresp_get_stats(server, P_LIMIT)->inbound_over_limit, 6);
    release_held(0);
    while (remaining > 0) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    int ok = 0, reset = 0;
    for (int i = 0; i < 10; i++) {
        if (rs[i].status == 0) {
            ok++;
            assert_int_equal(rs[i].len, 4);
            assert_memory_equal(rs[i].data, "late", 4);
        } else {
            assert_int_equal(rs[i].status, CP2P_ERESET);
            reset++;
        }
        res_clear(&rs[i]);
    }
    assert_int_equal(ok, 4);
    assert_int_equal(reset, 6);
    /* Slots are free again once answered. */
    res r;
    r = (res){0};
    assert_int_equal(cp2p_reqresp_request(conn, P_LIMIT, NULL, "q", 1, on_res, &r), 0);
    while (nheld < 1) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    release_held(0);
    run_until(&r.done);
    assert_int_equal(r.status, 0);
    res_clear(&r);
    pair_stop();
}

static void close_with_requests_in_flight(void **state)
{
    res rs[10];
    int remaining = 10;
    (void)state;
    pair_start();
    for (int i = 0; i < 10; i++) {
        rs[i] = (res){.remaining = &remaining};
        /* Half are held by the responder; half are large uploads still being written. */
        if (i % 2 == 0) {
            assert_int_equal(cp2p_reqresp_request(conn, P_STALL, NULL, "q", 1, on_res, &rs[i]),
                             0);
        } else {
            uint8_t *p = pattern(1024 * 1024, 9);
            assert_int_equal(
                cp2p_reqresp_request(conn, P_ECHO, NULL, p, 1024 * 1024, on_res, &rs[i]), 0);
            free(p);
        }
    }
    while (nheld < 5) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    cp2p_conn_close(conn);
    while (remaining > 0) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    for (int i = 0; i < 10; i++) {
        /* Some echoes may have completed before the close; the rest fail. */
        assert_true(rs[i].status == CP2P_ECLOSED || rs[i].status == CP2P_ERESET ||
                    (i % 2 == 1 && rs[i].status == 0));
        if (i % 2 == 0) {
            assert_int_not_equal(rs[i].status, 0);
        }
        res_clear(&rs[i]);
    }
    /* The held responders outlive their connection: once the server saw it close, answering
     * them is safe and reports CP2P_ECLOSED. */
    while (server_conns_closed < 1) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    release_held(CP2P_ECLOSED);
    pair_stop();
}


/* ---- lazy negotiation ---- */

/* A TCP relay between the client and the server that counts flights: runs of bytes in one
 * direction, a new one starting whenever the direction changes. One request-response exchange
 * costs two flights per round trip. */
typedef struct {
    uv_tcp_t lsn, a, b; /* a: from the client; b: to the server */
    uv_connect_t creq;
    int port;
    int last_dir;       /* 0: none yet, 1: client to server, 2: server to client */
    unsigned flights;
    int open;           /* handles not yet closed */
} relay;

typedef struct {
    uv_write_t req;
    uint8_t data[];
} relay_wr;

static relay rl;

static void relay_wrote(uv_write_t *req, int status)
{
    (void)status;
    free(req);
}

static void relay_handle_closed(uv_handle_t *h)
{
    (void)h;
    rl.open--;
}

static void relay_shut(void)
{
    if (!uv_is_closing((uv_handle_t *)&rl.a)) {
        uv_close((uv_handle_t *)&rl.a, relay_handle_closed);
    }
    if (!uv_is_closing((uv_handle_t *)&rl.b)) {
        uv_close((uv_handle_t *)&rl.b, relay_handle_closed);
    }
}

static void relay_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    buf->base = malloc(suggested);
    buf->len = buf->base != NULL ? suggested : 0;
}

static void relay_read(uv_stream_t *from, ssize_t n, const uv_buf_t *buf)
{
    int dir = from == (uv_stream_t *)&rl.a ? 1 : 2;
    uv_stream_t *to = dir == 1 ? (uv_stream_t *)&rl.b : (uv_stream_t *)&rl.a;
    if (n < 0) {
        free(buf->base);
        relay_shut();
        return;
    }
    if (n > 0) {
        if (dir != rl.last_dir) {
            rl.flights++;
            rl.last_dir = dir;
        }
        relay_wr *w = malloc(sizeof(*w) + (size_t)n);
        assert_non_null(w);
        memcpy(w->data, buf->base, (size_t)n);
        uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)n);
        assert_int_equal(uv_write(&w->req, to, &b, 1, relay_wrote), 0);
    }
    free(buf->base);
}

static void relay_connected(uv_connect_t *req, int status)
{
    (void)req;
    assert_int_equal(status, 0);
    assert_int_equal(uv_read_start((uv_stream_t *)&rl.a, relay_alloc, relay_read), 0);
    assert_int_equal(uv_read_start((uv_stream_t *)&rl.b, relay_alloc, relay_read), 0);
}

static void relay_accept(uv_stream_t *lsn, int status)
{
    struct sockaddr_in to;
    assert_int_equal(status, 0);
    assert_int_equal(uv_tcp_init(&loop, &rl.a), 0);
    assert_int_equal(uv_tcp_init(&loop, &rl.b), 0);
    rl.open += 2;
    assert_int_equal(uv_accept(lsn, (uv_stream_t *)&rl.a), 0);
    assert_int_equal(uv_ip4_addr("127.0.0.1", rl.port, &to), 0);
    assert_int_equal(uv_tcp_connect(&rl.creq, &rl.b, (const struct sockaddr *)&to,
                                    relay_connected), 0);
}

/* Start the relay toward the server and return its listening port. */
static int relay_start(void)
{
    struct sockaddr_in any;
    struct sockaddr_storage name;
    int namelen = sizeof(name);
    cp2p_multiaddr *ma;
    cp2p_buf b;
    rl = (relay){0};
    assert_int_equal(cp2p_host_listen_addr(server, 0, false, &ma), 0);
    cp2p_buf_init(&b, CP2P_MULTIADDR_STR_MAX);
    assert_int_equal(cp2p_multiaddr_to_string(ma, &b), 0);
    assert_int_equal(cp2p_buf_append_byte(&b, 0), 0);
    assert_int_equal(sscanf((const char *)b.ptr, "/ip4/127.0.0.1/tcp/%d", &rl.port), 1);
    cp2p_buf_fini(&b);
    cp2p_multiaddr_free(ma);
    assert_int_equal(uv_tcp_init(&loop, &rl.lsn), 0);
    rl.open = 1;
    assert_int_equal(uv_ip4_addr("127.0.0.1", 0, &any), 0);
    assert_int_equal(uv_tcp_bind(&rl.lsn, (const struct sockaddr *)&any, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&rl.lsn, 1, relay_accept), 0);
    assert_int_equal(uv_tcp_getsockname(&rl.lsn, (struct sockaddr *)&name, &namelen), 0);
    return ntohs(((struct sockaddr_in *)&name)->sin_port);
}

static bool lists(const cp2p_conn *c, const char *proto)
{
    return cp2p__conn_peer_lists(c, proto);
}

/* Flights on the relay for one 1 KiB echo request on the current connection. */
static unsigned flights_of_request(const cp2p_reqresp_config *cfg)
{
    uint8_t *p = pattern(1024, 7);
    res r;
    unsigned before = rl.flights;
    assert_int_equal(request(P_ECHO, cfg, p, 1024, &r), 0);
    assert_int_equal(r.len, 1024);
    assert_memory_equal(r.data, p, 1024);
    res_clear(&r);
    free(p);
    return rl.flights - before;
}

static void lazy_one_round_trip(void **state)
{
    char pid[CP2P_PEER_ID_STR_MAX], addr[160];
    cp2p_multiaddr *ma;
    dial_res d = {0};
    cp2p_reqresp_config eager;
    (void)state;
    harness_skip_on_memory("counts TCP flights through a TCP relay");
    pair_start();
    cp2p_conn *direct = conn;
    int port = relay_start();
    snprintf(addr, sizeof(addr), "/ip4/127.0.0.1/tcp/%d/p2p/%s", port,
             cp2p_peer_id_str(cp2p_host_peer_id(server), pid));
    assert_int_equal(cp2p_multiaddr_parse(addr, strlen(addr), &ma), 0);
    assert_int_equal(cp2p_host_dial(client, ma, on_dial, &d), 0);
    cp2p_multiaddr_free(ma);
    run_until(&d.done);
    assert_int_equal(d.status, 0);
    conn = d.conn;
    /* Both identify exchanges (on both connections) are over before counting. */
    while (!lists(conn, P_ECHO) || !lists(direct, P_ECHO) || server_identified < 2) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    /* A first request lets the last frames of identify (a stream's closing frames) pass. */
    (void)flights_of_request(NULL);
    uint64_t lazy0 = client->stats.streams_opened_lazy;
    /* Lazy (the default once identify lists the protocol): proposal and request in one
     * flight, echo and response in the next: one round trip. */
    assert_int_equal(flights_of_request(NULL), 2);
    assert_int_equal(flights_of_request(NULL), 2);
    assert_int_equal(client->stats.streams_opened_lazy, lazy0 + 2);
    /* Not lazy: the proposal waits for its echo before the request: two round trips. */
    cp2p_reqresp_config_default(&eager);
    eager.lazy_open = false;
    assert_int_equal(flights_of_request(&eager), 4);
    assert_int_equal(client->stats.streams_opened_lazy, lazy0 + 2);
    /* Length-prefixed requests are lazy too. */
    cp2p_reqresp_config lpc;
    cp2p_reqresp_config_default(&lpc);
    lpc.length_prefixed = true;
    res r;
    assert_int_equal(request(P_ECHO_LP, &lpc, (const uint8_t *)"abc", 3, &r), 0);
    assert_int_equal(r.len, 3);
    res_clear(&r);
    assert_int_equal(client->stats.streams_opened_lazy, lazy0 + 3);

    /* The peer's identify lists a protocol it no longer serves (the push is still on its
     * way): the lazy request fails cleanly with CP2P_ENOTSUP. */
    assert_int_equal(cp2p_reqresp_unregister(server, P_ECHO), 0);
    assert_true(lists(conn, P_ECHO));
    uint64_t failed0 = client->stats.negotiation_failed;
    assert_int_equal(request(P_ECHO, NULL, (const uint8_t *)"x", 1, &r), CP2P_ENOTSUP);
    assert_int_equal(client->stats.lazy_refused, 1);
    assert_int_equal(client->stats.negotiation_failed, failed0 + 1);
    assert_int_equal(client->stats.streams_opened_lazy, lazy0 + 4);
    /* Once the push has arrived the request negotiates (and fails) the usual way. */
    while (lists(conn, P_ECHO)) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    assert_int_equal(request(P_ECHO, NULL, (const uint8_t *)"x", 1, &r), CP2P_ENOTSUP);
    assert_int_equal(client->stats.lazy_refused, 1);
    assert_int_equal(client->stats.streams_opened_lazy, lazy0 + 4);
    /* Both connections still work, and the protocol comes back. */
    reg(P_ECHO, echo_handler, NULL);
    while (!lists(conn, P_ECHO)) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    assert_int_equal(flights_of_request(NULL), 2);
    conn = direct;
    assert_int_equal(request(P_ECHO, NULL, (const uint8_t *)"y", 1, &r), 0);
    res_clear(&r);
    pair_stop();
    uv_close((uv_handle_t *)&rl.lsn, relay_handle_closed);
    relay_shut();
    while (rl.open > 0) {
        uv_run(&loop, UV_RUN_ONCE);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(echo_sizes, setup, teardown),
        cmocka_unit_test_setup_teardown(async_responses, setup, teardown),
        cmocka_unit_test_setup_teardown(oversize_request_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(oversize_response_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(refuse_and_unknown, setup, teardown),
        cmocka_unit_test_setup_teardown(stalled_responder_times_out, setup, teardown),
        cmocka_unit_test_setup_teardown(concurrent_requests, setup, teardown),
        cmocka_unit_test_setup_teardown(per_peer_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(close_with_requests_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(lazy_one_round_trip, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
