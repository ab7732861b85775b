/* Gossipsub asynchronous validation over loopback TCP: A - B - C in a line, B validates
 * asynchronously (cp2p_pubsub_set_async_validator) and answers from a timer. Accepted messages
 * are delivered on B and forwarded to C; ignored ones are dropped without penalty; unanswered
 * ones expire (counted); a flood beyond max_pending_validations is dropped and counted with
 * the pending table bounded; rejected ones penalise the sender's score on B. */
#include <stdlib.h>
#include <string.h>

#include <cp2p/pubsub.h>

#include "integration/harness.h"

#define TOPIC "validated"
#define MAX_PENDING 16
#define TIMEOUT_MS 400
#define FLOOD 100

typedef struct {
    cp2p_host *h;
    cp2p_pubsub *ps;
    size_t got[256]; /* deliveries by the first byte of the data */
} node;

static node nodes[3];

typedef struct {
    uint64_t token;
    cp2p_pubsub_verdict v;
} held;

static held H[64];
static size_t nheld, nvalidate;
static bool hold; /* keep verdicts until answer_all() */
static uv_timer_t answer_timer;

static void start_node(node *n, bool async)
{
    memset(n, 0, sizeof(*n));
    n->h = harness_host();
    cp2p_pubsub_config pc;
    cp2p_pubsub_config_default(&pc);
    const char *scored[] = {TOPIC};
    pc.scored_topics = scored;
    pc.n_scored_topics = 1;
    pc.async_validation = async;
    pc.max_pending_validations = MAX_PENDING;
    pc.validation_timeout_ms = TIMEOUT_MS;
    assert_int_equal(cp2p_pubsub_new(n->h, &pc, &n->ps), 0);
}

static void on_msg(cp2p_pubsub *ps, const cp2p_pubsub_msg *m, void *ud)
{
    node *n = ud;
    (void)ps;
    assert_string_equal(m->topic, TOPIC);
    n->got[m->len > 0 ? m->data[0] : 0]++;
}

static void answer_all(void)
{
    for (size_t i = 0; i < nheld; i++) {
        assert_int_equal(cp2p_pubsub_validation_result(nodes[1].ps, H[i].token, H[i].v), 0);
    }
    nheld = 0;
}

static void on_answer(uv_timer_t *t)
{
    (void)t;
    if (!hold) {
        answer_all();
    }
}

/* By the first byte: 'r' reject, 'i' ignore, 'u' never answered, anything else accept. */
static void on_validate(cp2p_pubsub *ps, const cp2p_pubsub_msg *m, uint64_t token, void *ud)
{
    (void)ud;
    assert_ptr_equal(ps, nodes[1].ps);
    assert_string_equal(m->topic, TOPIC);
    assert_non_null(m->from);
    assert_non_null(m->via);
    assert_true(cp2p_peer_id_equal(m->via, cp2p_host_peer_id(nodes[0].h)));
    assert_true(m->len > 0);
    nvalidate++;
    if (m->data[0] == 'u') {
        return;
    }
    assert_true(nheld < sizeof(H) / sizeof(H[0]));
    H[nheld++] = (held){token, m->data[0] == 'r'   ? CP2P_PUBSUB_REJECT
                               : m->data[0] == 'i' ? CP2P_PUBSUB_IGNORE
                                                   : CP2P_PUBSUB_ACCEPT};
    if (!hold && !uv_is_active((uv_handle_t *)&answer_timer)) {
        uv_timer_start(&answer_timer, on_answer, 50, 0);
    }
}

static cp2p_pubsub_stats stats_of(int i)
{
    cp2p_pubsub_stats st;
    cp2p_pubsub_stats_get(nodes[i].ps, &st);
    return st;
}

static void wait_for(bool (*cond)(void))
{
    uint64_t start = uv_now(&loop);
    while (!cond()) {
        uv_run(&loop, UV_RUN_ONCE);
        uv_update_time(&loop);
        if (uv_now(&loop) - start > GUARD_MS) {
            fail_msg("condition not reached within the guard time");
        }
    }
}

static bool meshes_up(void)
{
    return cp2p_pubsub_mesh_peers(nodes[0].ps, TOPIC, NULL, 0) == 1 &&
           cp2p_pubsub_mesh_peers(nodes[1].ps, TOPIC, NULL, 0) == 2 &&
           cp2p_pubsub_mesh_peers(nodes[2].ps, TOPIC, NULL, 0) == 1;
}

static bool phase1_done(void)
{
    return nvalidate == 6 && nheld == 0 && nodes[2].got['a'] == 3 &&
           stats_of(1).validations_expired == 1;
}

static bool flood_arrived(void)
{
    cp2p_pubsub_stats st = stats_of(1);
    return (nvalidate - 6) + st.validations_dropped == FLOOD;
}

static bool flood_forwarded(void)
{
    return nodes[2].got['f'] == MAX_PENDING;
}

static bool reject_done(void)
{
    return stats_of(1).msgs_rejected == 1;
}

static double score_of_a_on_b(void)
{
    return cp2p_pubsub_peer_score(nodes[1].ps, cp2p_host_peer_id(nodes[0].h));
}

static void async_validation(void **state)
{
    (void)state;
    dial_res r;
    start_node(&nodes[0], false);
    start_node(&nodes[1], true);
    start_node(&nodes[2], false);
    uv_timer_init(&loop, &answer_timer);
    cp2p_pubsub_set_async_validator(nodes[1].ps, on_validate, NULL);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(cp2p_pubsub_subscribe(nodes[i].ps, TOPIC, on_msg, &nodes[i]), 0);
    }
    assert_non_null(dial_host(nodes[0].h, nodes[1].h, &r));
    assert_non_null(dial_host(nodes[1].h, nodes[2].h, &r));
    wait_for(meshes_up);
    /* The API's own errors. */
    assert_int_equal(cp2p_pubsub_validation_result(nodes[0].ps, 1, CP2P_PUBSUB_ACCEPT),
                     CP2P_ESTATE);
    assert_int_equal(cp2p_pubsub_validation_result(nodes[1].ps, 12345, CP2P_PUBSUB_ACCEPT),
                     CP2P_ENOENT);
    assert_int_equal(cp2p_pubsub_validation_result(nodes[1].ps, 1, (cp2p_pubsub_verdict)7),
                     CP2P_EINVAL);

    /* Phase 1: 3 accepted, 2 ignored, 1 never answered (expires after TIMEOUT_MS). */
    const char *p1[] = {"a1", "i1", "a2", "u1", "i2", "a3"};
    for (size_t i = 0; i < 6; i++) {
        assert_int_equal(cp2p_pubsub_publish(nodes[0].ps, TOPIC, p1[i], 2), 0);
    }
    wait_for(phase1_done);
    run_for(200); /* anything wrongly forwarded would arrive now */
    assert_int_equal(nodes[1].got['a'], 3);
    assert_int_equal(nodes[1].got['i'] + nodes[1].got['u'], 0);
    assert_int_equal(nodes[2].got['a'], 3);
    assert_int_equal(nodes[2].got['i'] + nodes[2].got['u'], 0);
    cp2p_pubsub_stats st = stats_of(1);
    assert_int_equal(st.msgs_delivered, 3);
    assert_int_equal(st.msgs_ignored, 3); /* 2 ignored + 1 expired */
    assert_int_equal(st.validations_expired, 1);
    assert_int_equal(st.validations_pending, 0);
    assert_int_equal(st.msgs_rejected, 0);
    assert_true(st.msgs_forwarded >= 3);
    assert_true(score_of_a_on_b() >= 0); /* ignore and expiry carry no penalty */

    /* Phase 2: a flood of FLOOD messages while B holds its verdicts: at most MAX_PENDING wait,
     * the rest are dropped and counted; no penalty for the sender. */
    hold = true;
    char f[8];
    for (unsigned i = 0; i < FLOOD; i++) {
        snprintf(f, sizeof(f), "f%u", i);
        assert_int_equal(cp2p_pubsub_publish(nodes[0].ps, TOPIC, f, strlen(f)), 0);
    }
    wait_for(flood_arrived);
    st = stats_of(1);
    assert_int_equal(nheld, MAX_PENDING);
    assert_int_equal(st.validations_pending, MAX_PENDING);
    assert_int_equal(st.validations_dropped, FLOOD - MAX_PENDING);
    assert_int_equal(nodes[1].got['f'], 0);
    hold = false;
    answer_all();
    wait_for(flood_forwarded);
    st = stats_of(1);
    assert_int_equal(st.validations_pending, 0);
    assert_int_equal(nodes[1].got['f'], MAX_PENDING);
    assert_true(score_of_a_on_b() >= 0);

    /* Phase 3: a rejected message: dropped, not forwarded, the sender's score goes negative. */
    assert_int_equal(cp2p_pubsub_publish(nodes[0].ps, TOPIC, "r1", 2), 0);
    wait_for(reject_done);
    run_for(200);
    assert_int_equal(nodes[1].got['r'], 0);
    assert_int_equal(nodes[2].got['r'], 0);
    assert_true(score_of_a_on_b() < 0);

    uv_close((uv_handle_t *)&answer_timer, NULL);
    for (int i = 0; i < 3; i++) {
        cp2p_pubsub_close(nodes[i].ps);
        cp2p_host_close(nodes[i].h, NULL, NULL);
    }
    for (int i = 0; i < 200 && uv_loop_alive(&loop); i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(async_validation, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
