/* Connection manager core: admission (rate, per-IP) and trimming. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "swarm/connmgr.h"

static const uint8_t IP_A[4] = {10, 0, 0, 1}, IP_B[4] = {10, 0, 0, 2};

static void per_ip_limit_counts_live_connections(void **state)
{
    cp2p__connmgr_config cfg;
    cp2p__connmgr *cm;
    const char *why = NULL;
    (void)state;
    cp2p__connmgr_config_default(&cfg);
    cfg.max_per_ip = 2;
    assert_int_equal(cp2p__connmgr_new(&cfg, 0, &cm), 0);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(cp2p__connmgr_admit(cm, IP_A, 4, 0, &why), 0);
        assert_int_equal(cp2p__connmgr_conn_opened(cm, IP_A, 4), 0);
    }
    assert_int_equal(cp2p__connmgr_admit(cm, IP_A, 4, 0, &why), CP2P_ELIMIT);
    assert_non_null(why);
    assert_int_equal(cp2p__connmgr_admit(cm, IP_B, 4, 0, &why), 0); /* another IP is fine */
    cp2p__connmgr_conn_closed(cm, IP_A, 4);
    assert_int_equal(cp2p__connmgr_admit(cm, IP_A, 4, 0, &why), 0);
    assert_int_equal(cp2p__connmgr_stats_get(cm)->refused_per_ip, 1);
    cp2p__connmgr_conn_closed(cm, IP_B, 4); /* never opened: ignored */
    cp2p__connmgr_free(cm);
    /* Loopback is exempt when configured so (a local testnet), limited otherwise. */
    static const uint8_t LO[4] = {127, 0, 0, 1};
    for (int exempt = 0; exempt < 2; exempt++) {
        cfg.exempt_loopback = exempt;
        assert_int_equal(cp2p__connmgr_new(&cfg, 0, &cm), 0);
        for (int i = 0; i < 2; i++) {
            assert_int_equal(cp2p__connmgr_conn_opened(cm, LO, 4), 0);
        }
        assert_int_equal(cp2p__connmgr_admit(cm, LO, 4, 0, &why), exempt ? 0 : CP2P_ELIMIT);
        cp2p__connmgr_free(cm);
    }
}

static void inbound_rate_is_a_token_bucket(void **state)
{
    cp2p__connmgr_config cfg;
    cp2p__connmgr *cm;
    const char *why = NULL;
    (void)state;
    cp2p__connmgr_config_default(&cfg);
    cfg.inbound_per_sec = 10;
    cfg.inbound_burst = 5;
    cfg.max_per_ip = 0;
    assert_int_equal(cp2p__connmgr_new(&cfg, 1000, &cm), 0);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(cp2p__connmgr_admit(cm, IP_A, 4, 1000, &why), 0);
    }
    assert_int_equal(cp2p__connmgr_admit(cm, IP_A, 4, 1000, &why), CP2P_ELIMIT);
    /* 10 per second: one more token after 100 ms of virtual time, not before. */
    assert_int_equal(cp2p__connmgr_admit(cm, IP_A, 4, 1099, &why), CP2P_ELIMIT);
    assert_int_equal(cp2p__connmgr_admit(cm, IP_A, 4, 1100, &why), 0);
    /* The bucket never holds more than the burst. */
    for (int i = 0; i < 5; i++) {
        assert_int_equal(cp2p__connmgr_admit(cm, IP_A, 4, 100000, &why), 0);
    }
    assert_int_equal(cp2p__connmgr_admit(cm, IP_A, 4, 100000, &why), CP2P_ELIMIT);
    assert_int_equal(cp2p__connmgr_stats_get(cm)->refused_rate, 3);
    cp2p__connmgr_free(cm);
}

static void trim_keeps_protected_new_and_valuable(void **state)
{
    cp2p__connmgr_config cfg;
    cp2p__connmgr *cm;
    cp2p__connmgr_conn c[10];
    uint64_t victims[10];
    (void)state;
    cp2p__connmgr_config_default(&cfg);
    cfg.low_water = 5;
    cfg.high_water = 8;
    cfg.grace_ms = 1000;
    assert_int_equal(cp2p__connmgr_new(&cfg, 0, &cm), 0);
    for (int i = 0; i < 10; i++) {
        c[i] = (cp2p__connmgr_conn){.id = (uint64_t)i + 1, .opened_ms = 0,
                                    .last_active_ms = (uint64_t)i * 10};
    }
    c[0].protect = true;       /* oldest and idle, but protected */
    c[1].opened_ms = 9500;     /* within its grace period at now = 10000 */
    c[2].tag = 100;            /* a protocol values this peer */
    c[3].streams = 2;          /* in use */
    /* 10 > 8: trim down to 5, i.e. 5 victims, least valuable first. */
    size_t n = cp2p__connmgr_trim(cm, c, 10, 10000, victims, 10);
    assert_int_equal(n, 5);
    for (size_t i = 0; i < n; i++) {
        assert_true(victims[i] != 1 && victims[i] != 2 && victims[i] != 3 && victims[i] != 4);
    }
    assert_int_equal(victims[0], 5); /* idle longest among the plain ones */
    /* At or below the high watermark nothing is trimmed. */
    assert_int_equal(cp2p__connmgr_trim(cm, c, 8, 10000, victims, 10), 0);
    /* When everything is protected or new, fewer victims than wanted (never a protected one). */
    for (int i = 0; i < 10; i++) { /* (trim reorders the array: rebuild it) */
        c[i] = (cp2p__connmgr_conn){.id = (uint64_t)i + 1, .protect = i < 9};
    }
    n = cp2p__connmgr_trim(cm, c, 10, 10000, victims, 10);
    assert_int_equal(n, 1);
    assert_int_equal(cp2p__connmgr_stats_get(cm)->trimmed, 6);
    cp2p__connmgr_free(cm);
}

static void bad_config_is_refused(void **state)
{
    cp2p__connmgr_config cfg;
    cp2p__connmgr *cm;
    (void)state;
    cp2p__connmgr_config_default(&cfg);
    cfg.low_water = cfg.high_water + 1;
    assert_int_equal(cp2p__connmgr_new(&cfg, 0, &cm), CP2P_EINVAL);
    cp2p__connmgr_config_default(&cfg);
    cfg.inbound_per_sec = 0;
    assert_int_equal(cp2p__connmgr_new(&cfg, 0, &cm), CP2P_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(per_ip_limit_counts_live_connections),
        cmocka_unit_test(inbound_rate_is_a_token_bucket),
        cmocka_unit_test(trim_keeps_protected_new_and_valuable),
        cmocka_unit_test(bad_config_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
