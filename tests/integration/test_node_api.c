/* The node's run-on-loop hook (cp2p_node_call_on_loop) and its HTTP API on a node started with
 * cp2p_node_start (the CLI test, tests/cli/api.test.mjs, covers a node attached to the CLI's
 * host): who owns the call's data when the caller gives up, and the API answering over a real
 * socket while the node's loop runs on its own thread. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include <cp2p/node.h>

#include "integration/harness_node.h"


/* ---- cp2p_node_call_on_loop ---- */

typedef struct {
    int status;           /* what fn completes with */
    uint64_t delay_ms;    /* 0: complete inside fn; else from a timer */
    cp2p_peer_id seen;    /* written on the loop */
    atomic_int *freed;    /* bumped by free_ud */
} call_data;

static void call_free(void *p)
{
    call_data *d = p;
    atomic_fetch_add(d->freed, 1);
    free(d);
}

typedef struct {
    uv_timer_t t;
    cp2p_node_call *call;
    int status;
} late_done;

static void late_closed(uv_handle_t *h)
{
    free(h->data);
}

static void on_late(uv_timer_t *t)
{
    late_done *l = t->data;
    cp2p_node_call_done(l->call, l->status); /* the call's data may be freed inside */
    uv_close((uv_handle_t *)&l->t, late_closed);
}

static void call_fn(cp2p_node_call *call, cp2p_host *host, void *ud)
{
    call_data *d = ud;
    d->seen = *cp2p_host_peer_id(host);
    if (d->delay_ms == 0) {
        cp2p_node_call_done(call, d->status);
        return;
    }
    late_done *l = calloc(1, sizeof(*l));
    assert_non_null(l);
    l->call = call;
    l->status = d->status;
    l->t.data = l;
    uv_timer_init(cp2p_host_loop(host), &l->t);
    uv_timer_start(&l->t, on_late, d->delay_ms, 0);
}

static call_data *data_new(atomic_int *freed, int status, uint64_t delay_ms)
{
    call_data *d = calloc(1, sizeof(*d));
    assert_non_null(d);
    d->freed = freed;
    d->status = status;
    d->delay_ms = delay_ms;
    return d;
}

static void call_on_loop_owns_data_until_done(void **state)
{
    atomic_int freed = 0;
    cp2p_node *n = harness_node();
    (void)state;
    /* Success: the data is the caller's again, with what fn wrote on the loop. */
    call_data *d = data_new(&freed, 0, 0);
    assert_int_equal(cp2p_node_call_on_loop(n, call_fn, d, call_free, 5000), 0);
    assert_true(cp2p_peer_id_equal(&d->seen, cp2p_node_peer_id(n)));
    assert_int_equal(atomic_load(&freed), 0);
    call_free(d);
    /* Done later from a timer, within the caller's time. */
    d = data_new(&freed, 0, 20);
    assert_int_equal(cp2p_node_call_on_loop(n, call_fn, d, call_free, 5000), 0);
    call_free(d);
    /* An error from fn: the node frees the data. */
    assert_int_equal(cp2p_node_call_on_loop(n, call_fn, data_new(&freed, CP2P_ENOENT, 0),
                                            call_free, 5000),
                     CP2P_ENOENT);
    assert_int_equal(atomic_load(&freed), 3);
    /* The caller gives up first: the data lives on until fn completes, then is freed once. */
    assert_int_equal(cp2p_node_call_on_loop(n, call_fn, data_new(&freed, 0, 300), call_free, 20),
                     CP2P_ETIMEDOUT);
    assert_int_equal(atomic_load(&freed), 3);
    for (int i = 0; i < 500 && atomic_load(&freed) < 4; i++) {
        usleep(10000);
    }
    assert_int_equal(atomic_load(&freed), 4);
    /* Refused arguments still free the data. */
    assert_int_equal(cp2p_node_call_on_loop(n, NULL, data_new(&freed, 0, 0), call_free, 5000),
                     CP2P_EINVAL);
    assert_int_equal(cp2p_node_call_on_loop(n, call_fn, data_new(&freed, 0, 0), call_free, 0),
                     CP2P_EINVAL);
    assert_int_equal(atomic_load(&freed), 6);
    /* Stopping with a call in flight: the loop runs until its timer completes it (an active
     * handle keeps the loop alive), so its data is freed by the time the stop returns. */
    assert_int_equal(cp2p_node_call_on_loop(n, call_fn, data_new(&freed, 0, 200), call_free, 10),
                     CP2P_ETIMEDOUT);
    cp2p_node_stop(n);
    assert_int_equal(atomic_load(&freed), 7);
}

/* ---- the HTTP API ---- */

static void api_serves_a_started_node(void **state)
{
    cp2p_node *n = harness_node();
    cp2p_node_api *a;
    cp2p_node_api_config cfg;
    char pid[CP2P_PEER_ID_STR_MAX];
    (void)state;
    cp2p_node_api_config_default(&cfg);
    /* Refused configurations. */
    cfg.listen = "0.0.0.0:0";
    assert_int_equal(cp2p_node_api_start(n, &cfg, &a), CP2P_EPERM);
    cfg.listen = "[::]:0";
    assert_int_equal(cp2p_node_api_start(n, &cfg, &a), CP2P_EPERM);
    cfg.listen = "127.0.0.1";
    assert_int_equal(cp2p_node_api_start(n, &cfg, &a), CP2P_EINVAL);
    cfg.listen = "127.0.0.1:0";
    cfg.token = "has space";
    assert_int_equal(cp2p_node_api_start(n, &cfg, &a), CP2P_EINVAL);
    cfg.token = NULL;
    assert_int_equal(cp2p_node_api_start(n, &cfg, &a), 0);
    uint16_t port = harness_api_port(a);
    /* A second server on the same port cannot bind. */
    char taken[32];
    cp2p_node_api *b;
    snprintf(taken, sizeof(taken), "127.0.0.1:%u", port);
    cfg.listen = taken;
    assert_int_equal(cp2p_node_api_start(n, &cfg, &b), CP2P_EIO);

    /* An application family in the API's registry shows in /metrics. */
    cp2p_metric_family *fam;
    cp2p_metric *m;
    cp2p_metric_desc d = {.type = CP2P_METRIC_COUNTER, .name = "app_things_total",
                          .help = "Things the application did."};
    assert_int_equal(cp2p_metrics_register(cp2p_node_api_metrics(a), &d, &fam), 0);
    assert_int_equal(cp2p_metrics_series(fam, NULL, 0, &m), 0);
    cp2p_metric_add(m, 7);

    char *r = harness_http(port, "GET /healthz HTTP/1.0\r\n\r\n");
    assert_non_null(strstr(r, "200 OK"));
    free(r);
    r = harness_http(port, "POST /api/v0/id HTTP/1.0\r\n\r\n");
    assert_non_null(strstr(r, cp2p_peer_id_str(cp2p_node_peer_id(n), pid)));
    free(r);
    r = harness_http(port, "GET /metrics HTTP/1.0\r\n\r\n");
    assert_non_null(strstr(r, "\napp_things_total 7\n"));
    assert_non_null(strstr(r, "\ncp2p_host_connections_opened_total 0\n"));
    assert_non_null(strstr(r, "\ncp2p_http_requests_total{endpoint=\"id\",code=\"200\"} 1\n"));
    free(r);
    r = harness_http(port, "DELETE /api/v0/id HTTP/1.0\r\n\r\n");
    assert_non_null(strstr(r, "405"));
    free(r);
    cp2p_node_api_stop(a);
    cp2p_node_stop(n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(call_on_loop_owns_data_until_done),
        cmocka_unit_test(api_serves_a_started_node),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
