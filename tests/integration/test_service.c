/* Services (cp2p/service.h) on two hosts over loopback: readiness after identify or on connect,
 * inbound streams, a service added while connected, peer_gone when the peer stops announcing
 * or disconnects, removal from inside a callback, and the host-driven close (services close
 * newest first, asynchronously, while their peers are still connected). Only the public
 * surface is used. */
#include <string.h>

#include <cp2p/service.h>

#include "integration/harness.h"

#define ALPHA "/test/alpha/1.0.0"
#define GAMMA "/test/gamma/1.0.0"

typedef struct {
    const char *tag;
    int ready, gone, gone_err, inbound, closed;
    cp2p_conn *conn;        /* from the last peer_ready */
    cp2p_service *svc;
    bool remove_on_ready;   /* cp2p_service_remove from inside peer_ready */
    bool async_close;       /* close: say last words to the peer, then close_done */
    char got[32];
    size_t got_len;
    bool got_eof;
} svc_state;

static int close_order[8];
static int nclose_order;

static void on_ready(cp2p_service *svc, const cp2p_peer_id *peer, cp2p_conn *conn, void *ud)
{
    svc_state *st = ud;
    assert_true(cp2p_peer_id_equal(peer, cp2p_conn_peer_id(conn)));
    assert_true(cp2p_service_peer_is_ready(svc, peer));
    st->ready++;
    st->conn = conn;
    if (st->remove_on_ready) {
        cp2p_service_remove(svc);
        st->svc = NULL;
    }
}

static void on_gone(cp2p_service *svc, const cp2p_peer_id *peer, int err, void *ud)
{
    svc_state *st = ud;
    assert_false(cp2p_service_peer_is_ready(svc, peer));
    st->gone++;
    st->gone_err = err;
}

static void in_read(cp2p_stream *s, ptrdiff_t n, const uint8_t *data, void *ud)
{
    svc_state *st = ud;
    if (n > 0) {
        size_t k = (size_t)n < sizeof(st->got) - st->got_len ? (size_t)n
                                                              : sizeof(st->got) - st->got_len;
        memcpy(st->got + st->got_len, data, k);
        st->got_len += k;
        return;
    }
    st->got_eof = n == CP2P_EOF;
    cp2p_stream_close(s);
}

static void on_inbound(cp2p_service *svc, cp2p_stream *s, void *ud)
{
    svc_state *st = ud;
    (void)svc;
    st->inbound++;
    assert_string_equal(cp2p_stream_protocol(s), ALPHA);
    assert_int_equal(cp2p_stream_read_start(s, in_read, st), 0);
}

/* Last words: open a stream to the peer, write, close; close_done when the write went out. */
static void last_written(cp2p_stream *s, int status, void *ud)
{
    svc_state *st = ud;
    assert_int_equal(status, 0);
    cp2p_stream_close(s);
    st->closed++;
    cp2p_service_close_done(st->svc);
}

static void last_open(cp2p_stream *s, int status, void *ud)
{
    svc_state *st = ud;
    assert_int_equal(status, 0);
    assert_int_equal(cp2p_stream_write(s, "bye", 3, last_written, st), 0);
}

static void on_close(cp2p_service *svc, void *ud)
{
    static const char *const protos[] = {ALPHA};
    svc_state *st = ud;
    close_order[nclose_order++] = st->tag[0];
    if (!st->async_close) {
        st->closed++;
        cp2p_service_close_done(svc);
        return;
    }
    /* The peer is still connected while services close. */
    assert_non_null(st->conn);
    assert_int_equal(cp2p_conn_open_stream(st->conn, protos, 1, last_open, st), 0);
}

static cp2p_service *add(cp2p_host *h, svc_state *st, const char *proto, cp2p_service_ready mode)
{
    const char *const protos[] = {proto};
    cp2p_service_desc d = {
        .name = st->tag,
        .protocols = protos,
        .n_protocols = proto != NULL ? 1 : 0,
        .ready = mode,
        .peer_ready = on_ready,
        .peer_gone = on_gone,
        .inbound = proto != NULL ? on_inbound : NULL,
        .close = on_close,
    };
    assert_int_equal(cp2p_host_add_service(h, &d, st, &st->svc), 0);
    return st->svc;
}

static bool host_closed[2];
static void on_host_closed(cp2p_host *h, void *ud)
{
    (void)h;
    *(bool *)ud = true;
}

static void open_done(cp2p_stream *s, int status, void *ud)
{
    int *st = ud;
    *st = status == 0 ? 1 : status;
    if (s != NULL) {
        assert_int_equal(cp2p_stream_write(s, "hi", 2, NULL, NULL), 0);
        cp2p_stream_close(s);
    }
}

static void services_on_two_hosts(void **state)
{
    static const char *const alpha[] = {ALPHA};
    (void)state;
    cp2p_host *a = harness_host(), *b = harness_host();
    svc_state a_alpha = {.tag = "alpha", .async_close = true}, a_all = {.tag = "every"};
    svc_state b_alpha = {.tag = "alpha"}, b_gamma = {.tag = "gamma"};
    svc_state a_late = {.tag = "late"}, a_once = {.tag = "once", .remove_on_ready = true};
    add(a, &a_alpha, ALPHA, CP2P_SERVICE_READY_IDENTIFIED);
    add(a, &a_all, NULL, CP2P_SERVICE_READY_CONNECTED);
    add(b, &b_alpha, ALPHA, CP2P_SERVICE_READY_IDENTIFIED);
    add(b, &b_gamma, GAMMA, CP2P_SERVICE_READY_IDENTIFIED);
    /* Two services cannot share a protocol. */
    svc_state dup = {.tag = "dup"};
    const char *const dup_p[] = {ALPHA};
    cp2p_service_desc dd = {.name = "dup", .protocols = dup_p, .n_protocols = 1,
                            .inbound = on_inbound};
    cp2p_service *ds;
    assert_int_equal(cp2p_host_add_service(a, &dd, &dup, &ds), CP2P_ESTATE);
    dd.n_protocols = 0;
    assert_int_equal(cp2p_host_add_service(a, &dd, &dup, &ds), CP2P_EINVAL);

    dial_res r;
    cp2p_conn *c = dial_host(b, a, &r);
    assert_int_equal(r.status, 0);
    wait_until_count(&a_all.ready, 1);
    wait_until_count(&a_alpha.ready, 1);
    wait_until_count(&b_alpha.ready, 1);
    assert_int_equal(cp2p_service_peer_count(a_alpha.svc), 1);
    assert_true(cp2p_service_peer_is_ready(b_alpha.svc, cp2p_host_peer_id(a)));
    /* a does not speak gamma: never ready on b. */
    assert_int_equal(b_gamma.ready, 0);
    assert_int_equal(cp2p_service_peer_count(b_gamma.svc), 0);

    /* Inbound streams reach the service. */
    int opened = 0;
    assert_int_equal(cp2p_conn_open_stream(c, alpha, 1, open_done, &opened), 0);
    wait_until_count(&opened, 1);
    wait_until_count(&a_alpha.inbound, 1);
    while (!a_alpha.got_eof) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    assert_int_equal(a_alpha.got_len, 2);
    assert_memory_equal(a_alpha.got, "hi", 2);
    a_alpha.got_len = 0;
    a_alpha.got_eof = false;

    /* Added while connected: told on a later loop turn, never inside the call. */
    add(a, &a_late, NULL, CP2P_SERVICE_READY_CONNECTED);
    assert_int_equal(a_late.ready, 0);
    wait_until_count(&a_late.ready, 1);
    /* A service may remove itself from its own callback. */
    add(a, &a_once, NULL, CP2P_SERVICE_READY_CONNECTED);
    wait_until_count(&a_once.ready, 1);
    assert_null(a_once.svc);

    /* b stops announcing alpha: a's alpha sees the peer gone (ENOTSUP), a_all does not. */
    cp2p_service_remove(b_alpha.svc);
    b_alpha.svc = NULL;
    wait_until_count(&a_alpha.gone, 1);
    assert_int_equal(a_alpha.gone_err, CP2P_ENOTSUP);
    assert_int_equal(a_all.gone, 0);
    /* and announces it again (a new service with the protocol): ready again. */
    add(b, &b_alpha, ALPHA, CP2P_SERVICE_READY_IDENTIFIED);
    wait_until_count(&a_alpha.ready, 2);

    /* The connection closes: every ready service of both hosts sees its peer gone. */
    cp2p_conn_close(c);
    wait_until_count(&a_all.gone, 1);
    assert_int_equal(a_all.gone_err, CP2P_ECLOSED);
    wait_until_count(&a_alpha.gone, 2);
    assert_int_equal(a_alpha.gone_err, CP2P_ECLOSED);
    assert_int_equal(cp2p_service_peer_count(a_all.svc), 0);

    /* Reconnect, then close a: its services close newest first, alpha asynchronously with a
     * last message that b's alpha service receives before the connection goes. */
    c = dial_host(b, a, &r);
    assert_int_equal(r.status, 0);
    wait_until_count(&a_alpha.ready, 3);
    b_alpha.got_len = 0;
    nclose_order = 0;
    host_closed[0] = host_closed[1] = false;
    cp2p_host_close(a, on_host_closed, &host_closed[0]);
    assert_int_equal(nclose_order, 0); /* not inside cp2p_host_close */
    while (!host_closed[0]) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    assert_int_equal(nclose_order, 3);
    assert_int_equal(close_order[0], 'l'); /* late, every, alpha: newest first */
    assert_int_equal(close_order[1], 'e');
    assert_int_equal(close_order[2], 'a');
    assert_int_equal(a_late.closed + a_all.closed + a_alpha.closed, 3);
    wait_until_count(&b_alpha.inbound, 1);
    while (b_alpha.got_len < 3 && !b_alpha.got_eof) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    assert_memory_equal(b_alpha.got, "bye", 3);
    cp2p_host_close(b, on_host_closed, &host_closed[1]);
    while (!host_closed[1]) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    assert_int_equal(b_alpha.closed + b_gamma.closed, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(services_on_two_hosts, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
