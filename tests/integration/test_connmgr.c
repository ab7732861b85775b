/* The connection manager wired into the host: inbound admission by IP and by rate, the per-peer
 * limit, trimming above the high water mark (sparing protected and tagged peers), and a
 * persistent peer that comes back on the same port and is reconnected by itself. */
#include <stdlib.h>
#include <string.h>

#include "integration/harness.h"
#include "swarm/swarm.h"

typedef struct {
    cp2p_host *h;
    int closed;
} node;

static void on_event(cp2p_host *h, const cp2p_event *ev, void *ud)
{
    node *n = ud;
    (void)h;
    if (ev->type == CP2P_EVENT_CONN_CLOSED) {
        n->closed++;
    }
}

static void start_cfg(node *n, const cp2p_host_config *base, const cp2p_privkey *key_in,
                      const char *listen)
{
    cp2p_host_config cfg;
    cp2p_privkey *key = NULL;
    memset(n, 0, sizeof(*n));
    if (key_in == NULL) {
        assert_int_equal(cp2p_privkey_generate(CP2P_KEY_ED25519, &key), 0);
    }
    if (base != NULL) {
        cfg = *base;
    } else {
        cp2p_host_config_default(&cfg);
    }
    cfg.identity = key_in != NULL ? key_in : key;
    assert_int_equal(cp2p_host_new(&loop, &cfg, &n->h), 0);
    cp2p_privkey_free(key);
    cp2p_host_set_event_cb(n->h, on_event, n);
    if (listen != NULL) {
        cp2p_multiaddr *ma;
        assert_int_equal(cp2p_multiaddr_parse(listen, strlen(listen), &ma), 0);
        assert_int_equal(cp2p_host_listen(n->h, ma), 0);
        cp2p_multiaddr_free(ma);
    }
}

static void start(node *n, const cp2p_host_config *base, bool listen)
{
    start_cfg(n, base, NULL, listen ? "/ip4/127.0.0.1/tcp/0" : NULL);
}

static void on_closed(cp2p_host *h, void *ud)
{
    (void)h;
    *(bool *)ud = true;
}

static void stop(node *n)
{
    bool done = false;
    cp2p_host_close(n->h, on_closed, &done);
    run_until(&done);
}

/* Run the loop until `cond` holds (a referenced guard timer keeps UV_RUN_ONCE from blocking
 * forever; the guard fails the test rather than hang CI, it is not a speed assertion). */
static void on_tick(uv_timer_t *t)
{
    (void)t;
}

static void on_tick_closed(uv_handle_t *h)
{
    *(bool *)h->data = true;
}

#define RUN_UNTIL(cond)                                                                         \
    do {                                                                                        \
        uv_timer_t tick_;                                                                       \
        bool tick_closed_ = false;                                                              \
        uint64_t start_ = uv_now(&loop);                                                        \
        uv_timer_init(&loop, &tick_);                                                           \
        tick_.data = &tick_closed_;                                                             \
        uv_timer_start(&tick_, on_tick, 10, 10);                                                \
        while (!(cond)) {                                                                       \
            uv_run(&loop, UV_RUN_ONCE);                                                         \
            uv_update_time(&loop);                                                              \
            if (uv_now(&loop) - start_ > GUARD_MS) {                                            \
                fail_msg("condition not reached within the guard time: %s", #cond);             \
            }                                                                                   \
        }                                                                                       \
        uv_close((uv_handle_t *)&tick_, on_tick_closed);                                        \
        run_until(&tick_closed_);                                                               \
    } while (0)

static size_t open_to(const cp2p_host *h, const cp2p_host *peer)
{
    size_t n = 0;
    for (const cp2p_conn *c = h->conns; c != NULL; c = c->next) {
        n += c->upgraded && !c->closing && c->stage == CONN_OPEN &&
             cp2p_peer_id_equal(&c->peer, cp2p_host_peer_id(peer));
    }
    return n;
}

/* Start dials of `to` from each of `from[0..n)` at once and wait for all of them. */
static void dial_all(node *from, size_t n, node *to, dial_res *res)
{
    cp2p_multiaddr *ma;
    assert_int_equal(cp2p_host_listen_addr(to->h, 0, true, &ma), 0);
    for (size_t i = 0; i < n; i++) {
        res[i] = (dial_res){0};
        assert_int_equal(cp2p_host_dial(from[i].h, ma, on_dial, &res[i]), 0);
    }
    cp2p_multiaddr_free(ma);
    for (size_t i = 0; i < n; i++) {
        run_until(&res[i].done);
    }
}

static void per_ip_limit_refuses_the_next_inbound(void **state)
{
    node s, c[3];
    dial_res r[3];
    cp2p_host_config cfg;
    (void)state;
    cp2p_host_config_default(&cfg);
    cfg.max_conns_per_ip = 2;
    cfg.limit_loopback_per_ip = true; /* the test's connections all come from 127.0.0.1 */
    start(&s, &cfg, true);
    for (size_t i = 0; i < 3; i++) {
        start(&c[i], NULL, false);
    }
    for (size_t i = 0; i < 3; i++) {
        dial_all(&c[i], 1, &s, &r[i]); /* one after the other: the third is the one refused */
    }
    assert_int_equal(r[0].status, 0);
    assert_int_equal(r[1].status, 0);
    assert_int_not_equal(r[2].status, 0); /* closed before the upgrade */
    assert_int_equal(cp2p__host_cm_stats(s.h)->refused_per_ip, 1);
    assert_int_equal(cp2p__host_stats_get(s.h)->inbound_refused, 1);
    /* A connection that closes gives its slot back. */
    cp2p_conn_close(r[0].conn);
    RUN_UNTIL(s.closed == 1);
    dial_all(&c[2], 1, &s, &r[2]);
    assert_int_equal(r[2].status, 0);
    assert_ping_ok(r[2].conn);
    for (size_t i = 0; i < 3; i++) {
        stop(&c[i]);
    }
    stop(&s);
}

static void inbound_rate_limit_refuses_a_burst(void **state)
{
    node s, c[5];
    dial_res r[5];
    cp2p_host_config cfg;
    int ok = 0, refused = 0;
    (void)state;
    cp2p_host_config_default(&cfg);
    cfg.inbound_per_sec = 1;
    cfg.inbound_burst = 2;
    cfg.max_conns_per_ip = UINT32_MAX;
    start(&s, &cfg, true);
    for (size_t i = 0; i < 5; i++) {
        start(&c[i], NULL, false);
    }
    dial_all(c, 5, &s, r);
    for (size_t i = 0; i < 5; i++) {
        ok += r[i].status == 0;
        refused += r[i].status != 0;
    }
    /* The burst admits two; the bucket refills one a second, so only a machine taking three
     * seconds to accept five loopback connections could let them all through. */
    assert_true(ok >= 2 && ok <= 4);
    assert_int_equal(refused, 5 - ok);
    assert_int_equal(cp2p__host_cm_stats(s.h)->refused_rate, (uint64_t)refused);
    assert_int_equal(cp2p__host_stats_get(s.h)->inbound_refused, (uint64_t)refused);
    for (size_t i = 0; i < 5; i++) {
        stop(&c[i]);
    }
    stop(&s);
}

static void per_peer_limit_closes_the_extra_connection(void **state)
{
    node s, c;
    dial_res r1, r2, r3;
    cp2p_host_config cfg;
    (void)state;
    cp2p_host_config_default(&cfg);
    cfg.max_conns_per_peer = 1;
    start(&s, &cfg, true);
    start(&c, &cfg, false);
    cp2p_conn *first = dial_host(c.h, s.h, &r1);
    assert_int_equal(r1.status, 0);
    /* The dialer finishes its upgrade first and refuses its own second connection. */
    (void)dial_host(c.h, s.h, &r2);
    assert_int_equal(r2.status, CP2P_ELIMIT);
    assert_int_equal(cp2p__host_stats_get(c.h)->conns_over_peer_limit, 1);
    RUN_UNTIL(open_to(s.h, c.h) == 1 && s.h->npending_inbound == 0);
    assert_int_equal(open_to(c.h, s.h), 1);
    assert_ping_ok(first);
    stop(&c);
    stop(&s);

    /* The default (2) admits a second connection, as in a simultaneous dial. */
    start(&s, NULL, true);
    start(&c, NULL, false);
    (void)dial_host(c.h, s.h, &r1);
    (void)dial_host(c.h, s.h, &r2);
    assert_int_equal(r1.status, 0);
    assert_int_equal(r2.status, 0);
    (void)dial_host(c.h, s.h, &r3);
    assert_int_equal(r3.status, CP2P_ELIMIT);
    assert_int_equal(open_to(c.h, s.h), 2);
    stop(&c);
    stop(&s);
}

static void trims_to_low_water_sparing_protected_and_tagged(void **state)
{
    node h, p[5];
    dial_res r[5];
    cp2p_host_config cfg;
    (void)state;
    cp2p_host_config_default(&cfg);
    cfg.conn_high_water = 3;
    cfg.conn_low_water = 2;
    cfg.conn_grace_ms = CP2P_HOST_NO_GRACE;
    start(&h, &cfg, false);
    for (size_t i = 0; i < 5; i++) {
        start(&p[i], NULL, true);
    }
    /* p[0] protected, p[1] tagged by a protocol, p[2..4] plain. */
    assert_int_equal(cp2p_host_protect(h.h, cp2p_host_peer_id(p[0].h), true), 0);
    for (size_t i = 0; i < 4; i++) {
        (void)dial_host(h.h, p[i].h, &r[i]);
        assert_int_equal(r[i].status, 0);
        if (i == 1) {
            cp2p_conn_set_tag(r[i].conn, 10);
        }
    }
    /* The fourth connection went over the high water mark: two plain ones go. */
    RUN_UNTIL(h.h->nopen == 2);
    assert_int_equal(open_to(h.h, p[0].h), 1);
    assert_int_equal(open_to(h.h, p[1].h), 1);
    assert_int_equal(h.closed, 2);
    assert_int_equal(cp2p__host_stats_get(h.h)->conns_trimmed, 2);
    assert_int_equal(cp2p__host_cm_stats(h.h)->trimmed, 2);
    /* A fifth peer brings it back to the high water mark, which is allowed. */
    (void)dial_host(h.h, p[4].h, &r[4]);
    assert_int_equal(r[4].status, 0);
    assert_int_equal(cp2p__host_cm_trim(h.h), 0);
    assert_int_equal(h.h->nopen, 3);
    /* Unprotected, p[0] is plain again: one more over the mark and the plain ones go. */
    assert_int_equal(cp2p_host_protect(h.h, cp2p_host_peer_id(p[0].h), false), 0);
    (void)dial_host(h.h, p[2].h, &r[2]);
    assert_int_equal(r[2].status, 0);
    RUN_UNTIL(h.h->nopen == 2);
    assert_int_equal(open_to(h.h, p[1].h), 1);
    stop(&h);
    for (size_t i = 0; i < 5; i++) {
        stop(&p[i]);
    }
}

/* Three times the high water mark of peers connect to us: we end at or below the high mark,
 * down to the low mark after a trim, and the protected peer is never among the trimmed. */
static void trims_when_three_times_high_water_connect(void **state)
{
    enum { N = 9 };
    node h, p[N];
    dial_res r[N];
    cp2p_host_config cfg;
    (void)state;
    cp2p_host_config_default(&cfg);
    cfg.conn_high_water = 3;
    cfg.conn_low_water = 2;
    cfg.conn_grace_ms = CP2P_HOST_NO_GRACE;
    start(&h, &cfg, true);
    for (size_t i = 0; i < N; i++) {
        start(&p[i], NULL, false);
    }
    assert_int_equal(cp2p_host_protect(h.h, cp2p_host_peer_id(p[0].h), true), 0);
    for (size_t i = 0; i < N; i++) {
        (void)dial_host(p[i].h, h.h, &r[i]); /* each one may be trimmed right after */
    }
    assert_int_equal(cp2p__host_cm_trim(h.h), 0); /* nothing left over the mark */
    assert_true(h.h->nopen <= 3);
    assert_int_equal(open_to(h.h, p[0].h), 1);
    assert_true(cp2p__host_stats_get(h.h)->conns_trimmed >= N - 3);
    stop(&h);
    for (size_t i = 0; i < N; i++) {
        stop(&p[i]);
    }
}

static void persistent_peer_is_reconnected(void **state)
{
    node a, b;
    cp2p_host_config cfg;
    cp2p_privkey *bkey;
    cp2p_multiaddr *full, *plain, *bad;
    char listen[128];
    (void)state;
    assert_int_equal(cp2p_privkey_generate(CP2P_KEY_ED25519, &bkey), 0);
    start_cfg(&b, NULL, bkey, "/ip4/127.0.0.1/tcp/0");
    assert_int_equal(cp2p_host_listen_addr(b.h, 0, true, &full), 0);
    assert_int_equal(cp2p_host_listen_addr(b.h, 0, false, &plain), 0);
    cp2p_buf txt;
    cp2p_buf_init(&txt, sizeof(listen) - 1);
    assert_int_equal(cp2p_multiaddr_to_string(plain, &txt), 0);
    memcpy(listen, txt.ptr, txt.len);
    listen[txt.len] = '\0';
    cp2p_buf_fini(&txt);

    cp2p_host_config_default(&cfg);
    cfg.dial_backoff_base_ms = 20;
    cfg.dial_backoff_max_ms = 100;
    start(&a, &cfg, false);
    assert_int_equal(cp2p_host_add_persistent_peer(a.h, plain), CP2P_EINVAL); /* no /p2p/ */
    assert_int_equal(cp2p_host_add_persistent_peer(a.h, full), 0);
    RUN_UNTIL(cp2p_host_conn_to(a.h, cp2p_host_peer_id(b.h)) != NULL);
    cp2p_peerstore_info info;
    assert_int_equal(cp2p_peerstore_info_get(cp2p_host_peerstore(a.h), cp2p_host_peer_id(b.h),
                                             &info),
                     0);
    assert_true(info.protected_peer);
    assert_int_equal(cp2p_host_protect(a.h, cp2p_host_peer_id(b.h), false), CP2P_ESTATE);

    /* The peer goes away; redials fail (connection refused) and back off. */
    cp2p_peer_id bid = *cp2p_host_peer_id(b.h);
    stop(&b);
    RUN_UNTIL(a.closed == 1);
    run_for(300);
    assert_null(cp2p_host_conn_to(a.h, &bid));
    /* It comes back with the same identity on the same port: reconnected without a word. */
    start_cfg(&b, NULL, bkey, listen);
    RUN_UNTIL(cp2p_host_conn_to(a.h, cp2p_host_peer_id(b.h)) != NULL);
    assert_ping_ok(cp2p_host_conn_to(a.h, cp2p_host_peer_id(b.h)));

    assert_int_equal(cp2p_multiaddr_parse("/ip4/127.0.0.1/tcp/1", 20, &bad), 0);
    assert_int_equal(cp2p_host_add_persistent_peer(a.h, bad), CP2P_EINVAL);
    cp2p_multiaddr_free(bad);
    stop(&a);
    stop(&b);
    cp2p_multiaddr_free(full);
    cp2p_multiaddr_free(plain);
    cp2p_privkey_free(bkey);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(per_ip_limit_refuses_the_next_inbound, setup, teardown),
        cmocka_unit_test_setup_teardown(trims_when_three_times_high_water_connect, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(inbound_rate_limit_refuses_a_burst, setup, teardown),
        cmocka_unit_test_setup_teardown(per_peer_limit_closes_the_extra_connection, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(trims_to_low_water_sparing_protected_and_tagged, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(persistent_peer_is_reconnected, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
