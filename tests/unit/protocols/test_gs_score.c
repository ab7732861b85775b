/* Gossipsub v1.1 peer scoring (src/protocols/gossipsub/gs_score.c): every score component on
 * virtual time, retention, decay, bounds, and a randomized run that must stay finite. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <math.h>

#include "protocols/gossipsub/gs_score.h"
#include "util/alloc.h"
#include "util/limits.h"

static const char *const TOPICS[] = {"t", "u"};

static cp2p_peer_id pid(uint32_t n)
{
    cp2p_peer_id id;
    memset(&id, 0, sizeof(id));
    id.bytes[0] = 0x00; /* identity multihash */
    id.bytes[1] = 32;
    memcpy(id.bytes + 2, &n, sizeof(n));
    id.len = 34;
    return id;
}

static void mid(uint8_t out[8], uint32_t n)
{
    memset(out, 0xab, 8);
    memcpy(out, &n, sizeof(n));
}

/* Every component disabled; each test enables the one it checks. */
static cp2p__gs_topic_score_params tp_zero(void)
{
    cp2p__gs_topic_score_params tp;
    memset(&tp, 0, sizeof(tp));
    tp.topic_weight = 1;
    return tp;
}

static cp2p__gs_score_params params_zero(const cp2p__gs_topic_score_params *tp, size_t n)
{
    cp2p__gs_score_params p;
    memset(&p, 0, sizeof(p));
    p.topics = TOPICS;
    p.topic_params = tp;
    p.n_topics = n;
    p.decay_interval_ms = 1000;
    p.decay_to_zero = 0.01;
    p.retain_score_ms = 60000;
    return p;
}

static cp2p__gs_topic_score_params tp_full(void)
{
    cp2p__gs_topic_score_params tp = tp_zero();
    tp.time_in_mesh_weight = 1;
    tp.time_in_mesh_quantum_ms = 1000;
    tp.time_in_mesh_cap = 10;
    tp.first_message_deliveries_weight = 1;
    tp.first_message_deliveries_decay = 0.5;
    tp.first_message_deliveries_cap = 100;
    tp.mesh_message_deliveries_weight = -1;
    tp.mesh_message_deliveries_decay = 0.5;
    tp.mesh_message_deliveries_cap = 100;
    tp.mesh_message_deliveries_threshold = 4;
    tp.mesh_message_deliveries_window_ms = 10;
    tp.mesh_message_deliveries_activation_ms = 5000;
    tp.mesh_failure_penalty_weight = -1;
    tp.mesh_failure_penalty_decay = 0.5;
    tp.invalid_message_deliveries_weight = -1;
    tp.invalid_message_deliveries_decay = 0.5;
    return tp;
}

static cp2p__gs_score *mk(const cp2p__gs_score_params *p)
{
    cp2p__gs_score *s = NULL;
    assert_int_equal(cp2p__gs_score_params_validate(p, NULL), 0);
    assert_int_equal(cp2p__gs_score_new(p, 0, &s), 0);
    assert_non_null(s);
    return s;
}

static void add(cp2p__gs_score *s, uint32_t n, const char *ip)
{
    cp2p_peer_id id = pid(n);
    assert_int_equal(cp2p__gs_score_add_peer(s, &id, ip, 0), 0);
}

static double score(cp2p__gs_score *s, uint32_t n, uint64_t now)
{
    cp2p_peer_id id = pid(n);
    return cp2p__gs_score_get(s, &id, now);
}

/* A message first received from `from` and accepted at `now`. */
static void deliver(cp2p__gs_score *s, uint32_t from, uint32_t msg, const char *topic,
                    uint64_t now)
{
    cp2p_peer_id id = pid(from);
    uint8_t m[8];
    mid(m, msg);
    cp2p__gs_score_validate_message(s, &id, m, sizeof(m), topic, now);
    cp2p__gs_score_deliver_message(s, &id, m, sizeof(m), topic, now);
}

static void dup(cp2p__gs_score *s, uint32_t from, uint32_t msg, const char *topic, uint64_t now)
{
    cp2p_peer_id id = pid(from);
    uint8_t m[8];
    mid(m, msg);
    cp2p__gs_score_duplicate_message(s, &id, m, sizeof(m), topic, now);
}

static void graft(cp2p__gs_score *s, uint32_t n, const char *topic, uint64_t now)
{
    cp2p_peer_id id = pid(n);
    cp2p__gs_score_graft(s, &id, topic, now);
}

static void prune(cp2p__gs_score *s, uint32_t n, const char *topic, uint64_t now)
{
    cp2p_peer_id id = pid(n);
    cp2p__gs_score_prune(s, &id, topic, now);
}

static void params_validation(void **state)
{
    (void)state;
    cp2p__gs_topic_score_params tp[2] = {tp_full(), tp_full()};
    cp2p__gs_score_params p = params_zero(tp, 2);
    p.ip_colocation_factor_weight = -1;
    p.ip_colocation_factor_threshold = 1;
    p.behaviour_penalty_weight = -1;
    p.behaviour_penalty_decay = 0.9;
    cp2p__gs_score_thresholds t = {-10, -50, -80, 10, 5};
    assert_int_equal(cp2p__gs_score_params_validate(&p, &t), 0);
    assert_int_equal(cp2p__gs_score_params_validate(&p, NULL), 0);
    assert_int_equal(cp2p__gs_score_params_validate(NULL, NULL), CP2P_EINVAL);

#define BAD_TOPIC(stmt)                                                                      \
    do {                                                                                     \
        cp2p__gs_topic_score_params bad[2] = {tp_full(), tp_full()};                        \
        cp2p__gs_score_params q = p;                                                         \
        cp2p__gs_topic_score_params *x = &bad[1];                                            \
        q.topic_params = bad;                                                                \
        stmt;                                                                                \
        assert_int_equal(cp2p__gs_score_params_validate(&q, NULL), CP2P_EINVAL);             \
        cp2p__gs_score *s = NULL;                                                            \
        assert_int_equal(cp2p__gs_score_new(&q, 0, &s), CP2P_EINVAL);                        \
        assert_null(s);                                                                      \
    } while (0)
    BAD_TOPIC(x->topic_weight = -1);
    BAD_TOPIC(x->time_in_mesh_weight = -1);
    BAD_TOPIC(x->time_in_mesh_quantum_ms = 0);
    BAD_TOPIC(x->time_in_mesh_cap = 0);
    BAD_TOPIC(x->first_message_deliveries_weight = -1);
    BAD_TOPIC(x->first_message_deliveries_decay = 1);
    BAD_TOPIC(x->first_message_deliveries_cap = 0);
    BAD_TOPIC(x->mesh_message_deliveries_weight = 1);
    BAD_TOPIC(x->mesh_message_deliveries_decay = 0);
    BAD_TOPIC(x->mesh_message_deliveries_threshold = 0);
    BAD_TOPIC(x->mesh_message_deliveries_activation_ms = 999);
    BAD_TOPIC(x->mesh_failure_penalty_weight = 1);
    BAD_TOPIC(x->mesh_failure_penalty_decay = 1.5);
    BAD_TOPIC(x->invalid_message_deliveries_weight = 1);
    BAD_TOPIC(x->invalid_message_deliveries_decay = 0);
    BAD_TOPIC(x->first_message_deliveries_weight = NAN);
    BAD_TOPIC(x->topic_weight = INFINITY);
    BAD_TOPIC(x->topic_weight = 2 * CP2P_GS_SCORE_PARAM_MAX);
#undef BAD_TOPIC

    /* Disabled components need no decay or cap. */
    cp2p__gs_topic_score_params z = tp_zero();
    cp2p__gs_score_params pz = params_zero(&z, 1);
    assert_int_equal(cp2p__gs_score_params_validate(&pz, NULL), 0);

#define BAD(stmt)                                                                            \
    do {                                                                                     \
        cp2p__gs_score_params q = p;                                                         \
        stmt;                                                                                \
        assert_int_equal(cp2p__gs_score_params_validate(&q, NULL), CP2P_EINVAL);             \
    } while (0)
    BAD(q.ip_colocation_factor_weight = 1);
    BAD(q.ip_colocation_factor_threshold = 0);
    BAD(q.behaviour_penalty_weight = 1);
    BAD(q.behaviour_penalty_decay = 1);
    BAD(q.behaviour_penalty_threshold = -1);
    BAD(q.topic_score_cap = -1);
    BAD(q.decay_interval_ms = 999);
    BAD(q.decay_to_zero = 0);
    BAD(q.decay_to_zero = 1);
    BAD(q.n_topics = CP2P_GS_SCORE_MAX_TOPICS + 1);
    BAD(q.topics = NULL);
    static const char *const SAME[] = {"t", "t"};
    BAD(q.topics = SAME);
    static const char *const EMPTY[] = {"t", ""};
    BAD(q.topics = EMPTY);
    static const char *const NUL[] = {"t", NULL};
    BAD(q.topics = NUL);
#undef BAD

    cp2p__gs_score_thresholds b = t;
    b.gossip_threshold = 1;
    assert_int_equal(cp2p__gs_score_params_validate(&p, &b), CP2P_EINVAL);
    b = t;
    b.publish_threshold = -5;
    assert_int_equal(cp2p__gs_score_params_validate(&p, &b), CP2P_EINVAL);
    b = t;
    b.graylist_threshold = -20;
    assert_int_equal(cp2p__gs_score_params_validate(&p, &b), CP2P_EINVAL);
    b = t;
    b.accept_px_threshold = -1;
    assert_int_equal(cp2p__gs_score_params_validate(&p, &b), CP2P_EINVAL);
    b = t;
    b.opportunistic_graft_threshold = -1;
    assert_int_equal(cp2p__gs_score_params_validate(&p, &b), CP2P_EINVAL);
    b = t;
    b.gossip_threshold = NAN;
    assert_int_equal(cp2p__gs_score_params_validate(&p, &b), CP2P_EINVAL);
}

static void p1_grows_with_mesh_time_and_caps(void **state)
{
    (void)state;
    cp2p__gs_topic_score_params tp = tp_zero();
    tp.time_in_mesh_weight = 0.5;
    tp.time_in_mesh_quantum_ms = 1000;
    tp.time_in_mesh_cap = 10;
    tp.topic_weight = 2;
    cp2p__gs_score_params p = params_zero(&tp, 1);
    cp2p__gs_score *s = mk(&p);
    add(s, 1, NULL);
    assert_true(score(s, 1, 5000) == 0); /* not in the mesh */
    graft(s, 1, "t", 1000);
    assert_true(score(s, 1, 1000) == 0);
    assert_true(score(s, 1, 1999) == 0);             /* whole quanta only */
    assert_true(score(s, 1, 4500) == 3 * 0.5 * 2);   /* 3 quanta */
    assert_true(score(s, 1, 100000) == 10 * 0.5 * 2); /* capped at 10 quanta */
    prune(s, 1, "t", 100000);
    assert_true(score(s, 1, 100000) == 0);
    /* Unscored topics contribute nothing. */
    graft(s, 1, "u", 0);
    graft(s, 1, "nope", 0);
    assert_true(score(s, 1, 50000) == 0);
    /* Unknown peers have score 0 and are not created by events. */
    graft(s, 9, "t", 0);
    assert_true(score(s, 9, 50000) == 0);
    cp2p__gs_score_stats st;
    cp2p__gs_score_stats_get(s, &st);
    assert_int_equal(st.peers, 1);
    cp2p__gs_score_free(s);
}

static void p2_first_deliveries_and_decay(void **state)
{
    (void)state;
    cp2p__gs_topic_score_params tp = tp_zero();
    tp.first_message_deliveries_weight = 2;
    tp.first_message_deliveries_decay = 0.5;
    tp.first_message_deliveries_cap = 5;
    cp2p__gs_score_params p = params_zero(&tp, 1);
    cp2p__gs_score *s = mk(&p);
    add(s, 1, NULL);
    add(s, 2, NULL);
    for (uint32_t m = 0; m < 3; m++) {
        deliver(s, 1, m, "t", 10);
        dup(s, 2, m, "t", 11); /* duplicates never earn P2 */
    }
    assert_true(score(s, 1, 20) == 3 * 2);
    assert_true(score(s, 2, 20) == 0);
    cp2p__gs_score_refresh(s, 1000);
    assert_true(score(s, 1, 1000) == 1.5 * 2);
    for (uint32_t m = 10; m < 30; m++) {
        deliver(s, 1, m, "t", 1000);
    }
    assert_true(score(s, 1, 1000) == 5 * 2); /* capped */
    /* Messages on unscored topics earn nothing. */
    deliver(s, 2, 100, "u", 1000);
    assert_true(score(s, 2, 1000) == 0);
    cp2p__gs_score_free(s);
}

static cp2p__gs_topic_score_params tp_p3(void)
{
    cp2p__gs_topic_score_params tp = tp_zero();
    tp.mesh_message_deliveries_weight = -1;
    tp.mesh_message_deliveries_decay = 0.5;
    tp.mesh_message_deliveries_cap = 10;
    tp.mesh_message_deliveries_threshold = 4;
    tp.mesh_message_deliveries_window_ms = 10;
    tp.mesh_message_deliveries_activation_ms = 5000;
    tp.mesh_failure_penalty_weight = -2;
    tp.mesh_failure_penalty_decay = 0.5;
    return tp;
}

static void p3_deficit_after_activation(void **state)
{
    (void)state;
    cp2p__gs_topic_score_params tp = tp_p3();
    cp2p__gs_score_params p = params_zero(&tp, 1);
    cp2p__gs_score *s = mk(&p);
    add(s, 1, NULL);
    add(s, 2, NULL);
    add(s, 3, NULL);
    graft(s, 1, "t", 0);
    graft(s, 2, "t", 0);
    assert_true(score(s, 1, 4999) == 0);   /* not active yet */
    assert_true(score(s, 1, 5000) == -16); /* deficit 4, squared */
    deliver(s, 1, 1, "t", 5000);           /* first delivery in the mesh */
    assert_true(score(s, 1, 5000) == -9);
    /* Peer 2 sends a copy during validation of message 2: it counts once validated. */
    cp2p_peer_id a = pid(3);
    uint8_t m[8];
    mid(m, 2);
    cp2p__gs_score_validate_message(s, &a, m, sizeof(m), "t", 6000);
    dup(s, 2, 2, "t", 6001);
    dup(s, 2, 2, "t", 6002); /* repeated copy: counted once */
    assert_true(score(s, 2, 6002) == -16);
    cp2p__gs_score_deliver_message(s, &a, m, sizeof(m), "t", 6003);
    assert_true(score(s, 2, 6003) == -9);
    /* Peer 3 is not in the mesh: its first delivery is no mesh delivery. */
    assert_true(score(s, 3, 6003) == 0);
    /* Near-first duplicate after validation: within the window counts, later does not. */
    deliver(s, 3, 3, "t", 7000);
    dup(s, 1, 3, "t", 7010);
    dup(s, 2, 3, "t", 7011);
    assert_true(score(s, 1, 7011) == -4); /* 2 deliveries */
    assert_true(score(s, 2, 7011) == -9); /* late: still 1 */
    graft(s, 3, "t", 0);
    dup(s, 3, 3, "t", 7012); /* the first sender's own resend is no near-first copy */
    assert_true(score(s, 3, 7012) == -16);
    /* Enough deliveries: no penalty; counter capped. */
    for (uint32_t i = 10; i < 40; i++) {
        deliver(s, 1, i, "t", 8000);
    }
    assert_true(score(s, 1, 8000) == 0);
    /* Decay brings the deficit back: 10 -> 5 -> 2.5 -> deficit 1.5. */
    cp2p__gs_score_refresh(s, 9000);
    assert_true(score(s, 1, 9000) == 0);
    cp2p__gs_score_refresh(s, 10000);
    assert_true(score(s, 1, 10000) == -(1.5 * 1.5));
    /* A new graft restarts the activation window. */
    prune(s, 1, "t", 10000);
    graft(s, 1, "t", 10000);
    double before = score(s, 1, 10000); /* only P3b now */
    assert_true(before < 0);
    assert_true(score(s, 1, 14999) == before);
    cp2p__gs_score_free(s);
}

static void p3b_after_prune_with_deficit(void **state)
{
    (void)state;
    cp2p__gs_topic_score_params tp = tp_p3();
    cp2p__gs_score_params p = params_zero(&tp, 1);
    cp2p__gs_score *s = mk(&p);
    add(s, 1, NULL);
    add(s, 2, NULL);
    graft(s, 1, "t", 0);
    graft(s, 2, "t", 0);
    deliver(s, 1, 1, "t", 100);
    /* Pruned before activation: no sticky penalty. */
    prune(s, 2, "t", 4000);
    assert_true(score(s, 2, 4000) == 0);
    /* Pruned after activation with deficit 3: 9 * -2, and it stays out of the mesh. */
    prune(s, 1, "t", 6000);
    assert_true(score(s, 1, 6000) == -18);
    assert_true(score(s, 1, 60000) == -18);
    cp2p__gs_score_refresh(s, 61000); /* decays 0.5 */
    assert_true(score(s, 1, 61000) == -9);
    /* Disconnecting while in the mesh with a deficit also applies it (then retained). */
    graft(s, 2, "t", 70000);
    cp2p_peer_id b = pid(2);
    cp2p__gs_score_remove_peer(s, &b, 80000);
    assert_true(score(s, 2, 80000) == -2 * 16);
    cp2p__gs_score_free(s);
}

static void p4_invalid_squared(void **state)
{
    (void)state;
    cp2p__gs_topic_score_params tp = tp_zero();
    tp.invalid_message_deliveries_weight = -1;
    tp.invalid_message_deliveries_decay = 0.5;
    tp.first_message_deliveries_weight = 1;
    tp.first_message_deliveries_decay = 0.5;
    tp.first_message_deliveries_cap = 10;
    cp2p__gs_score_params p = params_zero(&tp, 1);
    cp2p__gs_score *s = mk(&p);
    for (uint32_t i = 1; i <= 4; i++) {
        add(s, i, NULL);
    }
    cp2p_peer_id a = pid(1);
    uint8_t m[8];
    mid(m, 1);
    cp2p__gs_score_validate_message(s, &a, m, sizeof(m), "t", 0);
    dup(s, 2, 1, "t", 1); /* during validation */
    cp2p__gs_score_reject_message(s, &a, m, sizeof(m), "t", 2);
    assert_true(score(s, 1, 2) == -1);
    assert_true(score(s, 2, 2) == -1);
    dup(s, 3, 1, "t", 3); /* after rejection: every copy counts */
    dup(s, 3, 1, "t", 4);
    dup(s, 3, 1, "t", 5);
    assert_true(score(s, 3, 5) == -9);
    /* A second outcome for the record is ignored. */
    cp2p__gs_score_reject_message(s, &a, m, sizeof(m), "t", 6);
    assert_true(score(s, 1, 6) == -1);
    /* Invalid before an ID exists. */
    cp2p_peer_id d = pid(4);
    cp2p__gs_score_reject_invalid(s, &d, "t");
    cp2p__gs_score_reject_invalid(s, &d, "t");
    cp2p__gs_score_reject_invalid(s, &d, "u"); /* unscored */
    assert_true(score(s, 4, 6) == -4);
    cp2p__gs_score_refresh(s, 1000);
    assert_true(score(s, 4, 1000) == -1); /* 2 -> 1 */
    /* Ignored messages: no reward, no penalty, copies count nothing. */
    mid(m, 2);
    cp2p__gs_score_validate_message(s, &a, m, sizeof(m), "t", 1000);
    cp2p__gs_score_ignore_message(s, &a, m, sizeof(m), "t", 1000);
    dup(s, 2, 2, "t", 1001);
    assert_true(score(s, 2, 1001) == -0.25);
    /* Throttled likewise. */
    mid(m, 3);
    cp2p__gs_score_throttle_message(s, &a, m, sizeof(m), "t", 1000);
    dup(s, 2, 3, "t", 1001);
    cp2p__gs_score_reject_message(s, &a, m, sizeof(m), "t", 1002); /* outcome already set */
    assert_true(score(s, 2, 1002) == -0.25);
    cp2p__gs_score_free(s);
}

static void p5_app_score(void **state)
{
    (void)state;
    cp2p__gs_score_params p = params_zero(NULL, 0);
    p.topics = NULL;
    p.app_specific_weight = 2;
    cp2p__gs_score *s = mk(&p);
    add(s, 1, NULL);
    cp2p_peer_id a = pid(1);
    cp2p__gs_score_set_app_score(s, &a, 3);
    assert_true(score(s, 1, 0) == 6);
    cp2p__gs_score_set_app_score(s, &a, NAN); /* ignored */
    assert_true(score(s, 1, 0) == 6);
    cp2p__gs_score_set_app_score(s, &a, -1.5);
    assert_true(score(s, 1, 0) == -3);
    cp2p__gs_score_free(s);
}

static void p6_ip_colocation(void **state)
{
    (void)state;
    cp2p__gs_score_params p = params_zero(NULL, 0);
    p.topics = NULL;
    p.ip_colocation_factor_weight = -2;
    p.ip_colocation_factor_threshold = 1;
    p.retain_score_ms = 0;
    cp2p__gs_score *s = mk(&p);
    add(s, 1, "10.0.0.1");
    assert_true(score(s, 1, 0) == 0);
    add(s, 2, "10.0.0.1");
    add(s, 3, "10.0.0.1");
    add(s, 4, "10.0.0.2");
    add(s, 5, NULL);
    for (uint32_t i = 1; i <= 3; i++) {
        assert_true(score(s, i, 0) == -2 * 4); /* (3 - 1)^2 * -2 */
    }
    assert_true(score(s, 4, 0) == 0);
    assert_true(score(s, 5, 0) == 0);
    /* Leaving (not retained here) lowers the count. */
    cp2p_peer_id c = pid(3);
    cp2p__gs_score_remove_peer(s, &c, 0);
    assert_true(score(s, 1, 0) == -2);
    /* Re-adding with a new IP moves the peer. */
    add(s, 2, "10.0.0.2");
    assert_true(score(s, 1, 0) == 0);
    assert_true(score(s, 4, 0) == -2);
    cp2p_peer_id bad = pid(6);
    char longip[CP2P_GS_SCORE_IP_MAX + 1];
    memset(longip, '1', sizeof(longip) - 1);
    longip[sizeof(longip) - 1] = 0;
    assert_int_equal(cp2p__gs_score_add_peer(s, &bad, longip, 0), CP2P_EINVAL);
    cp2p__gs_score_free(s);
}

static void p7_behaviour_penalty(void **state)
{
    (void)state;
    cp2p__gs_score_params p = params_zero(NULL, 0);
    p.topics = NULL;
    p.behaviour_penalty_weight = -1;
    p.behaviour_penalty_threshold = 2;
    p.behaviour_penalty_decay = 0.5;
    cp2p__gs_score *s = mk(&p);
    add(s, 1, NULL);
    cp2p_peer_id a = pid(1);
    cp2p__gs_score_add_penalty(s, &a, 1);
    assert_true(score(s, 1, 0) == 0); /* below the threshold */
    cp2p__gs_score_add_penalty(s, &a, 1);
    assert_true(score(s, 1, 0) == 0); /* at it */
    cp2p__gs_score_add_penalty(s, &a, 3);
    assert_true(score(s, 1, 0) == -9); /* (5 - 2)^2 */
    cp2p__gs_score_refresh(s, 1000);   /* 2.5 */
    assert_true(score(s, 1, 1000) == -0.25);
    cp2p__gs_score_refresh(s, 2000); /* 1.25 */
    assert_true(score(s, 1, 2000) == 0);
    cp2p__gs_score_free(s);
}

static void topic_score_cap(void **state)
{
    (void)state;
    cp2p__gs_topic_score_params tp[2] = {tp_zero(), tp_zero()};
    for (int i = 0; i < 2; i++) {
        tp[i].first_message_deliveries_weight = 1;
        tp[i].first_message_deliveries_decay = 0.5;
        tp[i].first_message_deliveries_cap = 100;
    }
    cp2p__gs_score_params p = params_zero(tp, 2);
    p.topic_score_cap = 15;
    p.app_specific_weight = 1;
    cp2p__gs_score *s = mk(&p);
    add(s, 1, NULL);
    for (uint32_t m = 0; m < 10; m++) {
        deliver(s, 1, m, "t", 0);
    }
    assert_true(score(s, 1, 0) == 10);
    for (uint32_t m = 10; m < 20; m++) {
        deliver(s, 1, m, "u", 0);
    }
    assert_true(score(s, 1, 0) == 15); /* 20, capped */
    cp2p_peer_id a = pid(1);
    cp2p__gs_score_set_app_score(s, &a, -1); /* outside the cap */
    assert_true(score(s, 1, 0) == 14);
    cp2p__gs_score_free(s);
}

static void retained_score_after_remove_and_add(void **state)
{
    (void)state;
    cp2p__gs_topic_score_params tp = tp_full();
    tp.mesh_message_deliveries_weight = 0;
    cp2p__gs_score_params p = params_zero(&tp, 1);
    p.retain_score_ms = 10000;
    cp2p__gs_score *s = mk(&p);
    add(s, 1, "1.2.3.4");
    add(s, 2, NULL);
    cp2p_peer_id a = pid(1), b = pid(2);
    cp2p__gs_score_reject_invalid(s, &a, "t");
    cp2p__gs_score_reject_invalid(s, &a, "t");
    deliver(s, 1, 1, "t", 0); /* +1 P2, cleared at removal */
    assert_true(score(s, 1, 0) == -3);
    deliver(s, 2, 2, "t", 0);
    cp2p__gs_score_remove_peer(s, &a, 100);
    cp2p__gs_score_remove_peer(s, &b, 100); /* positive: forgotten */
    cp2p__gs_score_stats st;
    cp2p__gs_score_stats_get(s, &st);
    assert_int_equal(st.peers, 0);
    assert_int_equal(st.retained, 1);
    assert_true(score(s, 1, 100) == -4);
    assert_true(score(s, 2, 100) == 0);
    cp2p__gs_score_refresh(s, 5000); /* retained counters do not decay */
    assert_true(score(s, 1, 5000) == -4);
    add(s, 1, "1.2.3.4"); /* reconnect: same penalty */
    assert_true(score(s, 1, 5000) == -4);
    cp2p__gs_score_stats_get(s, &st);
    assert_int_equal(st.peers, 1);
    assert_int_equal(st.retained, 0);
    /* Past the retention the peer is forgotten. */
    cp2p__gs_score_remove_peer(s, &a, 6000);
    cp2p__gs_score_refresh(s, 15999);
    assert_true(score(s, 1, 15999) == -4);
    cp2p__gs_score_refresh(s, 16000);
    assert_true(score(s, 1, 16000) == 0);
    cp2p__gs_score_stats_get(s, &st);
    assert_int_equal(st.retained, 0);
    assert_int_equal(st.peers, 0);
    add(s, 1, NULL);
    assert_true(score(s, 1, 16000) == 0);
    cp2p__gs_score_free(s);
}

static void decay_to_zero(void **state)
{
    (void)state;
    cp2p__gs_topic_score_params tp = tp_zero();
    tp.first_message_deliveries_weight = 1;
    tp.first_message_deliveries_decay = 0.5;
    tp.first_message_deliveries_cap = 10;
    cp2p__gs_score_params p = params_zero(&tp, 1);
    p.decay_to_zero = 0.3;
    cp2p__gs_score *s = mk(&p);
    add(s, 1, NULL);
    deliver(s, 1, 1, "t", 0);
    cp2p__gs_score_refresh(s, 1000);
    assert_true(score(s, 1, 1000) == 0.5);
    cp2p__gs_score_refresh(s, 2000); /* 0.25 < 0.3 */
    assert_true(score(s, 1, 2000) == 0);
    cp2p__gs_score_refresh(s, 3000);
    assert_true(score(s, 1, 3000) == 0);
    cp2p__gs_score_free(s);
}

static void bounds_records_and_peers(void **state)
{
    (void)state;
    cp2p__gs_topic_score_params tp = tp_full();
    cp2p__gs_score_params p = params_zero(&tp, 1);
    cp2p__gs_score *s = mk(&p);
    cp2p_peer_id a = pid(1);
    assert_int_equal(cp2p__gs_score_add_peer(s, &a, NULL, 0), 0);
    for (uint32_t i = 0; i < CP2P_GS_SCORE_MAX_RECORDS + 10; i++) {
        uint8_t m[8];
        mid(m, i);
        cp2p__gs_score_validate_message(s, &a, m, sizeof(m), "t", 0);
    }
    cp2p__gs_score_stats st;
    cp2p__gs_score_stats_get(s, &st);
    assert_int_equal(st.msg_records, CP2P_GS_SCORE_MAX_RECORDS);
    assert_int_equal(st.records_dropped, 10);
    /* The oldest went: message 0 is unknown again, so its delivery still counts. */
    uint8_t m[8];
    mid(m, 0);
    cp2p__gs_score_deliver_message(s, &a, m, sizeof(m), "t", 1);
    assert_true(score(s, 1, 1) == 1);
    cp2p__gs_score_stats_get(s, &st);
    assert_int_equal(st.records_dropped, 11);
    /* Copies from more than CP2P_GS_SCORE_RECORD_PEERS peers of one message: bounded. */
    mid(m, 1u << 30);
    cp2p__gs_score_validate_message(s, &a, m, sizeof(m), "t", 2);
    for (uint32_t i = 0; i < CP2P_GS_SCORE_RECORD_PEERS + 6; i++) {
        dup(s, 100 + i, 1u << 30, "t", 2);
    }
    cp2p__gs_score_stats_get(s, &st);
    assert_int_equal(st.record_peers_dropped, 6);
    /* Over-long message IDs are not tracked. */
    uint8_t big[CP2P_GS_SCORE_MAX_MSG_ID + 1];
    memset(big, 7, sizeof(big));
    cp2p__gs_score_validate_message(s, &a, big, sizeof(big), "t", 2);
    cp2p__gs_score_stats_get(s, &st);
    assert_int_equal(st.ids_refused, 1);
    /* Records expire after their lifetime. */
    cp2p__gs_score_refresh(s, CP2P_GS_SCORE_RECORD_TTL_MS + 2);
    cp2p__gs_score_stats_get(s, &st);
    assert_int_equal(st.msg_records, 0);
    /* Peers are bounded too. */
    for (uint32_t i = 2; i <= CP2P_GS_SCORE_MAX_PEERS; i++) {
        add(s, i, NULL);
    }
    cp2p_peer_id extra = pid(CP2P_GS_SCORE_MAX_PEERS + 1);
    assert_int_equal(cp2p__gs_score_add_peer(s, &extra, NULL, 0), CP2P_EFULL);
    cp2p__gs_score_stats_get(s, &st);
    assert_int_equal(st.peers, CP2P_GS_SCORE_MAX_PEERS);
    assert_int_equal(st.peers_refused, 1);
    /* Every peer is still found after the table grew many times. */
    for (uint32_t i = 2; i <= CP2P_GS_SCORE_MAX_PEERS; i += 97) {
        cp2p_peer_id x = pid(i);
        cp2p__gs_score_add_penalty(s, &x, 1);
    }
    cp2p__gs_score_free(s);
}

static void peer_table_survives_removals(void **state)
{
    (void)state;
    cp2p__gs_score_params p = params_zero(NULL, 0);
    p.topics = NULL;
    p.app_specific_weight = 1;
    p.retain_score_ms = 0;
    cp2p__gs_score *s = mk(&p);
    for (uint32_t i = 1; i <= 3000; i++) {
        cp2p_peer_id id = pid(i);
        add(s, i, NULL);
        cp2p__gs_score_set_app_score(s, &id, i);
    }
    for (uint32_t i = 1; i <= 3000; i += 2) {
        cp2p_peer_id id = pid(i);
        cp2p__gs_score_remove_peer(s, &id, 0);
    }
    for (uint32_t i = 1; i <= 3000; i++) {
        assert_true(score(s, i, 0) == (i % 2 ? 0 : (double)i));
    }
    cp2p__gs_score_stats st;
    cp2p__gs_score_stats_get(s, &st);
    assert_int_equal(st.peers, 1500);
    assert_int_equal(st.retained, 0);
    cp2p__gs_score_free(s);
}

static uint64_t rng_next(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static void randomized_score_stays_finite(void **state)
{
    (void)state;
    cp2p__gs_topic_score_params tp[2] = {tp_full(), tp_full()};
    /* Extreme but valid weights. */
    tp[0].topic_weight = CP2P_GS_SCORE_PARAM_MAX;
    tp[0].invalid_message_deliveries_weight = -CP2P_GS_SCORE_PARAM_MAX;
    tp[0].first_message_deliveries_weight = CP2P_GS_SCORE_PARAM_MAX;
    tp[0].first_message_deliveries_cap = CP2P_GS_SCORE_PARAM_MAX;
    cp2p__gs_score_params p = params_zero(tp, 2);
    p.ip_colocation_factor_weight = -CP2P_GS_SCORE_PARAM_MAX;
    p.ip_colocation_factor_threshold = 1;
    p.behaviour_penalty_weight = -CP2P_GS_SCORE_PARAM_MAX;
    p.behaviour_penalty_decay = 0.99;
    p.app_specific_weight = CP2P_GS_SCORE_PARAM_MAX;
    p.retain_score_ms = 3000;
    cp2p__gs_score *s = mk(&p);
    static const char *const TS[] = {"t", "u", "x"};
    static const char *const IPS[] = {"1.1.1.1", "2.2.2.2", NULL};
    uint64_t x = 0x9e3779b97f4a7c15ULL, now = 0;
    enum { NPEERS = 40 };
    for (int step = 0; step < 30000; step++) {
        uint64_t r = rng_next(&x);
        cp2p_peer_id id = pid((uint32_t)(r % NPEERS));
        const char *t = TS[(r >> 8) % 3];
        uint8_t m[8];
        mid(m, (uint32_t)((r >> 16) % 500));
        now += (r >> 32) % 50;
        switch ((r >> 40) % 14) {
        case 0:
            (void)!cp2p__gs_score_add_peer(s, &id, IPS[(r >> 50) % 3], now);
            break;
        case 1: cp2p__gs_score_remove_peer(s, &id, now); break;
        case 2: cp2p__gs_score_graft(s, &id, t, now); break;
        case 3: cp2p__gs_score_prune(s, &id, t, now); break;
        case 4: cp2p__gs_score_validate_message(s, &id, m, 8, t, now); break;
        case 5: cp2p__gs_score_deliver_message(s, &id, m, 8, t, now); break;
        case 6: cp2p__gs_score_reject_message(s, &id, m, 8, t, now); break;
        case 7: cp2p__gs_score_ignore_message(s, &id, m, 8, t, now); break;
        case 8:
        case 9: cp2p__gs_score_duplicate_message(s, &id, m, 8, t, now); break;
        case 10: cp2p__gs_score_reject_invalid(s, &id, t); break;
        case 11: cp2p__gs_score_add_penalty(s, &id, (uint32_t)(r >> 48)); break;
        case 12: cp2p__gs_score_set_app_score(s, &id, (double)(int64_t)r); break;
        default: cp2p__gs_score_refresh(s, now); break;
        }
        for (uint32_t i = 0; i < NPEERS; i++) {
            assert_true(isfinite(score(s, i, now)));
        }
    }
    cp2p__gs_score_stats st;
    cp2p__gs_score_stats_get(s, &st);
    assert_true(st.peers + st.retained <= NPEERS);
    cp2p__gs_score_free(s);
}

static void allocation_failures_are_clean(void **state)
{
    (void)state;
    cp2p__gs_topic_score_params tp[2] = {tp_full(), tp_full()};
    cp2p__gs_score_params p = params_zero(tp, 2);
    p.ip_colocation_factor_weight = -1;
    p.ip_colocation_factor_threshold = 1;
    for (long n = 1; n < 200; n++) {
        cp2p__gs_score *s = NULL;
        cp2p__alloc_fail_after(n);
        if (cp2p__gs_score_new(&p, 0, &s) != 0) {
            assert_null(s);
            continue;
        }
        for (uint32_t i = 0; i < 8; i++) {
            cp2p_peer_id id = pid(i);
            (void)!cp2p__gs_score_add_peer(s, &id, i % 2 ? "1.1.1.1" : "2.2.2.2", 0);
            graft(s, i, "t", 0);
            deliver(s, i, i, "t", 1);
            dup(s, (i + 1) % 8, i, "t", 2);
        }
        cp2p__alloc_fail_after(0);
        for (uint32_t i = 0; i < 8; i++) {
            assert_true(isfinite(score(s, i, 10)));
        }
        cp2p__gs_score_free(s);
    }
    cp2p__alloc_fail_after(0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(params_validation),
        cmocka_unit_test(p1_grows_with_mesh_time_and_caps),
        cmocka_unit_test(p2_first_deliveries_and_decay),
        cmocka_unit_test(p3_deficit_after_activation),
        cmocka_unit_test(p3b_after_prune_with_deficit),
        cmocka_unit_test(p4_invalid_squared),
        cmocka_unit_test(p5_app_score),
        cmocka_unit_test(p6_ip_colocation),
        cmocka_unit_test(p7_behaviour_penalty),
        cmocka_unit_test(topic_score_cap),
        cmocka_unit_test(retained_score_after_remove_and_add),
        cmocka_unit_test(decay_to_zero),
        cmocka_unit_test(bounds_records_and_peers),
        cmocka_unit_test(peer_table_survives_removals),
        cmocka_unit_test(randomized_score_stays_finite),
        cmocka_unit_test(allocation_failures_are_clean),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
