/* Shared pieces of the integration tests: one loop, a guarded wait, dial and ping results, and
 * setup/teardown that insist every handle was closed (STYLE.md section 10).
 *
 * Transport: hosts made through harness_config()/harness_listen() use loopback TCP, or, when
 * the environment has CP2P_TEST_TRANSPORT=memory, one in-memory network (cp2p/memnet.h) shared
 * by every host of the test and listen on /memory/0 (a fresh name each). CMake registers each
 * suite that supports it twice (ctest label `memory` for the second). Tests that are about TCP
 * itself call harness_skip_on_memory() with their reason, which is printed. */
#ifndef CP2P_TESTS_INTEGRATION_HARNESS_H
#define CP2P_TESTS_INTEGRATION_HARNESS_H

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <cp2p/memnet.h>
#include <cp2p/protocols.h>

#define GUARD_MS 60000 /* a hang fails the test instead of blocking CI; not a speed assertion */

static uv_loop_t loop;
static cp2p_memnet *harness_net; /* CP2P_TEST_TRANSPORT=memory: the test's network */

static inline bool harness_memory(void)
{
    const char *t = getenv("CP2P_TEST_TRANSPORT");
    return t != NULL && strcmp(t, "memory") == 0;
}

/* Skip the current test on the memory transport, saying why (a TCP-only property). */
#define harness_skip_on_memory(why)                                                           \
    do {                                                                                      \
        if (harness_memory()) {                                                               \
            printf("SKIP on the memory transport: %s\n", why);                                \
            skip();                                                                           \
        }                                                                                     \
    } while (0)

/* Put a host config on the test's transport. */
static inline void harness_config(cp2p_host_config *cfg)
{
    cfg->memnet = harness_net;
}

/* Listen where the test's transport wants: 127.0.0.1 (a free port) or /memory/0. */
static inline void harness_listen(cp2p_host *h)
{
    const char *text = harness_memory() ? "/memory/0" : "/ip4/127.0.0.1/tcp/0";
    cp2p_multiaddr *ma;
    assert_int_equal(cp2p_multiaddr_parse(text, strlen(text), &ma), 0);
    assert_int_equal(cp2p_host_listen(h, ma), 0);
    cp2p_multiaddr_free(ma);
}

static inline void run_until(const bool *flag)
{
    uint64_t start = uv_now(&loop);
    while (!*flag) {
        uv_run(&loop, UV_RUN_ONCE);
        uv_update_time(&loop);
        if (uv_now(&loop) - start > GUARD_MS) {
            fail_msg("condition not reached within the guard time");
        }
    }
}

/* Run the loop until *v reaches want. */
static inline void wait_until_count(const int *v, int want)
{
    uint64_t start = uv_now(&loop);
    while (*v < want) {
        uv_run(&loop, UV_RUN_ONCE);
        uv_update_time(&loop);
        if (uv_now(&loop) - start > GUARD_MS) {
            fail_msg("count %d of %d not reached within the guard time", *v, want);
        }
    }
}

static inline void harness_on_wait(uv_timer_t *t)
{
    *(bool *)t->data = true;
}

static inline void harness_on_wait_closed(uv_handle_t *h)
{
    *(bool *)h->data = true;
}

/* Let the loop run for `ms` with a timer of our own (uv_run(ONCE) alone may sleep until some
 * later timer, past the end). Nothing asserts on the time taken. */
static inline void run_for(uint64_t ms)
{
    uv_timer_t t;
    bool done = false;
    assert_int_equal(uv_timer_init(&loop, &t), 0);
    t.data = &done;
    assert_int_equal(uv_timer_start(&t, harness_on_wait, ms, 0), 0);
    run_until(&done);
    done = false;
    uv_close((uv_handle_t *)&t, harness_on_wait_closed);
    run_until(&done);
}

typedef struct {
    bool done;
    int status;
    cp2p_conn *conn;
} dial_res;

static inline void on_dial(cp2p_host *h, int status, cp2p_conn *c, void *ud)
{
    dial_res *r = ud;
    (void)h;
    r->done = true;
    r->status = status;
    r->conn = c;
}

/* Dial `to`'s first listen address (with its peer ID) from `from`; returns r's connection. */
static inline cp2p_conn *dial_host(cp2p_host *from, cp2p_host *to, dial_res *r)
{
    cp2p_multiaddr *ma;
    *r = (dial_res){0};
    assert_int_equal(cp2p_host_listen_addr(to, 0, true, &ma), 0);
    assert_int_equal(cp2p_host_dial(from, ma, on_dial, r), 0);
    cp2p_multiaddr_free(ma);
    run_until(&r->done);
    return r->conn;
}

typedef struct {
    bool done;
    int status;
    uint64_t rtt;
} ping_res;

static inline void on_ping(cp2p_conn *c, int status, uint64_t rtt, void *ud)
{
    ping_res *p = ud;
    (void)c;
    p->done = true;
    p->status = status;
    p->rtt = rtt;
}

static inline void assert_ping_ok(cp2p_conn *c)
{
    ping_res p = {0};
    assert_int_equal(cp2p_ping(c, 5000, on_ping, &p), 0);
    run_until(&p.done);
    assert_int_equal(p.status, 0);
}

/* A raw stream that writes bytes a protocol must refuse, and the peer's answer: open one on
 * `proto`, write `bytes`, wait until the peer ends it, and assert it reset it. */
typedef struct {
    int status;
    int ended; /* 1: EOF, 2: reset */
    const uint8_t *bytes;
    size_t len;
} harness_raw;

static inline void harness_raw_read(cp2p_stream *s, ptrdiff_t n, const uint8_t *data, void *ud)
{
    harness_raw *r = ud;
    (void)data;
    if (n < 0) {
        r->ended = n == CP2P_EOF ? 1 : 2;
        cp2p_stream_reset(s);
    }
}

static inline void harness_raw_open(cp2p_stream *s, int status, void *ud)
{
    harness_raw *r = ud;
    r->status = status == 0 ? 1 : status;
    if (status != 0) {
        return;
    }
    assert_int_equal(cp2p_stream_write(s, r->bytes, r->len, NULL, NULL), 0);
    assert_int_equal(cp2p_stream_read_start(s, harness_raw_read, r), 0);
}

static inline void harness_raw_bad(cp2p_conn *c, const char *proto, const uint8_t *bytes,
                                   size_t len)
{
    harness_raw r = {.bytes = bytes, .len = len};
    assert_int_equal(cp2p_conn_open_stream(c, &proto, 1, harness_raw_open, &r), 0);
    wait_until_count(&r.ended, 1);
    assert_int_equal(r.ended, 2);
}

/* A new host with a fresh Ed25519 identity, listening on the test's transport (127.0.0.1 on a
 * free port, or /memory/0), that redials no known peer at start. */
static inline cp2p_host *harness_host(void)
{
    cp2p_host_config cfg;
    cp2p_privkey *key;
    cp2p_host *h;
    assert_int_equal(cp2p_privkey_generate(CP2P_KEY_ED25519, &key), 0);
    cp2p_host_config_default(&cfg);
    cfg.identity = key;
    cfg.reconnect_known_peers = CP2P_HOST_NO_RECONNECT;
    harness_config(&cfg);
    assert_int_equal(cp2p_host_new(&loop, &cfg, &h), 0);
    cp2p_privkey_free(key);
    harness_listen(h);
    return h;
}

static inline int setup(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN); /* as every cp2p application must (see cp2p/host.h) */
    int rc = uv_loop_init(&loop);
    harness_net = NULL;
    if (rc == 0 && harness_memory()) {
        const char *seed = getenv("CP2P_TEST_SEED");
        rc = cp2p_memnet_new(&loop, seed != NULL ? strtoull(seed, NULL, 10) : 1, &harness_net);
    }
    return rc;
}

static inline int teardown(void **state)
{
    (void)state;
    /* A passing test closed its hosts: the loop drains in a few turns. A failed one may have
     * left handles open; report that instead of waiting for them forever. */
    for (int i = 0; i < 100 && uv_loop_alive(&loop); i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
    }
    if (harness_net != NULL) {
        if (cp2p_memnet_close(harness_net, NULL, NULL) != 0) {
            fprintf(stderr, "teardown: a host still uses the memory network\n");
            return -1;
        }
        harness_net = NULL;
        for (int i = 0; i < 100 && uv_loop_alive(&loop); i++) {
            uv_run(&loop, UV_RUN_NOWAIT);
        }
    }
    if (uv_loop_close(&loop) != 0) {
        fprintf(stderr, "teardown: handles still open (the test failed before closing them)\n");
        return -1;
    }
    return 0;
}

#endif
