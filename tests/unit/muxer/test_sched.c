/* Stream write scheduler core: byte shares by weight, the new-flow rule, parking, removal in the
 * middle of a round, and the cost of a decision with thousands of idle streams. The "muxer" here
 * is a model: each serve takes at most one frame of the budget, as yamux takes a stream's bytes
 * in frames. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "muxer/sched.h"

#define QUANTUM 4096u
#define FRAME 16384u

typedef struct {
    cp2p__sched_node node; /* first member: the node's address is the flow's */
    size_t backlog;        /* bytes queued; SIZE_MAX: endless */
    size_t sent;
    size_t window;         /* flow control: SIZE_MAX = open */
} flow;

/* Serve one decision: push up to min(budget, FRAME, backlog, window) bytes. Returns the flow
 * served or NULL. */
static flow *serve(cp2p__sched *q)
{
    cp2p__sched_node *n = cp2p__sched_next(q);
    if (n == NULL) {
        return NULL;
    }
    flow *f = (flow *)n;
    size_t b = cp2p__sched_budget(n);
    assert_true(b > 0);
    size_t k = b < FRAME ? b : FRAME;
    k = k < f->backlog ? k : f->backlog;
    k = k < f->window ? k : f->window;
    f->sent += k;
    if (f->backlog != SIZE_MAX) {
        f->backlog -= k;
    }
    if (f->window != SIZE_MAX) {
        f->window -= k;
    }
    cp2p__sched_outcome o = CP2P__SCHED_MORE;
    if (f->backlog == 0) {
        o = CP2P__SCHED_EMPTY;
    } else if (f->window == 0) {
        o = CP2P__SCHED_BLOCKED;
    }
    cp2p__sched_done(q, n, k, o);
    return f;
}

static void add(cp2p__sched *q, flow *f, unsigned weight, size_t backlog)
{
    cp2p__sched_node_init(&f->node, weight);
    f->backlog = backlog;
    f->sent = 0;
    f->window = SIZE_MAX;
    cp2p__sched_wake(q, &f->node);
}

static void equal_weights_share_bytes_equally(void **state)
{
    (void)state;
    cp2p__sched q;
    cp2p__sched_init(&q, QUANTUM);
    flow f[3];
    for (int i = 0; i < 3; i++) {
        add(&q, &f[i], 4, SIZE_MAX);
    }
    size_t total = 0;
    while (total < 30u * 1024 * 1024) {
        assert_non_null(serve(&q));
        total = f[0].sent + f[1].sent + f[2].sent;
    }
    /* Within one round's allowance of each other. */
    for (int i = 1; i < 3; i++) {
        size_t d = f[i].sent > f[0].sent ? f[i].sent - f[0].sent : f[0].sent - f[i].sent;
        assert_true(d <= 4 * QUANTUM);
    }
}

static void weights_one_and_four_share_one_to_four(void **state)
{
    (void)state;
    cp2p__sched q;
    cp2p__sched_init(&q, QUANTUM);
    flow lo, hi;
    add(&q, &lo, 1, SIZE_MAX);
    add(&q, &hi, 4, SIZE_MAX);
    /* Check at many points, not only at the end: the share holds at every round boundary. */
    for (int step = 0; step < 20000; step++) {
        (void)serve(&q);
        if (step > 100 && step % 97 == 0) {
            double r = (double)hi.sent / (double)lo.sent;
            assert_true(r > 3.6 && r < 4.4);
        }
    }
    double r = (double)hi.sent / (double)lo.sent;
    assert_true(r > 3.96 && r < 4.04);
}

static void newly_ready_small_stream_is_served_next(void **state)
{
    (void)state;
    cp2p__sched q;
    cp2p__sched_init(&q, QUANTUM);
    flow bulk[4], small;
    for (int i = 0; i < 4; i++) {
        add(&q, &bulk[i], 16, SIZE_MAX);
    }
    for (int i = 0; i < 37; i++) {
        (void)serve(&q);
    }
    add(&q, &small, 1, 100);
    assert_ptr_equal(serve(&q), &small);
    assert_int_equal(small.sent, 100);
    /* Emptied while old flows wait: it moves to the old list (RFC 8290 4.2) and leaves when it
     * is found empty there, within one round. */
    assert_int_equal(small.node.where, CP2P__SCHED_OLD);
    assert_true(q.stats.served_new >= 1);
    for (int i = 0; i < 64 && small.node.where != CP2P__SCHED_IDLE; i++) {
        (void)serve(&q);
    }
    assert_int_equal(small.node.where, CP2P__SCHED_IDLE);
    assert_int_equal(small.sent, 100);
    assert_int_equal(cp2p__sched_listed(&q), 4);

    /* A second burst after idling is "new" again; a stream that keeps a backlog is not: after
     * its first allowance it waits its turn behind the old flows. */
    small.backlog = SIZE_MAX;
    cp2p__sched_wake(&q, &small.node);
    assert_ptr_equal(serve(&q), &small); /* one quantum (weight 1) */
    flow *next = serve(&q);
    assert_ptr_not_equal(next, &small);
    assert_int_equal(small.node.where, CP2P__SCHED_OLD);
}

static void new_flow_that_empties_moves_to_old_list(void **state)
{
    (void)state;
    cp2p__sched q;
    cp2p__sched_init(&q, QUANTUM);
    flow bulk, bursty;
    add(&q, &bulk, 4, SIZE_MAX);
    (void)serve(&q);
    add(&q, &bursty, 4, 10);
    assert_ptr_equal(serve(&q), &bursty);
    /* Old flows wait: it goes to the old list, so refilling it now does not make it new. */
    assert_int_equal(bursty.node.where, CP2P__SCHED_OLD);
    bursty.backlog = 10;
    cp2p__sched_wake(&q, &bursty.node);
    assert_int_equal(bursty.node.where, CP2P__SCHED_OLD);
    assert_ptr_equal(serve(&q), &bulk);
}

static void blocked_stream_parks_and_rejoins_old_flows(void **state)
{
    (void)state;
    cp2p__sched q;
    cp2p__sched_init(&q, QUANTUM);
    flow a, b;
    add(&q, &a, 4, SIZE_MAX);
    add(&q, &b, 4, SIZE_MAX);
    a.window = 1000;
    assert_ptr_equal(serve(&q), &a);
    assert_int_equal(a.node.where, CP2P__SCHED_PARKED);
    assert_int_equal(cp2p__sched_listed(&q), 1);
    for (int i = 0; i < 10; i++) {
        assert_ptr_equal(serve(&q), &b);
    }
    a.window = SIZE_MAX;
    cp2p__sched_wake(&q, &a.node);
    assert_int_equal(a.node.where, CP2P__SCHED_OLD);
    /* It kept its deficit (4 * QUANTUM - 1000) rather than getting a new flow's allowance. */
    assert_int_equal(cp2p__sched_budget(&a.node), 4 * QUANTUM - 1000);
}

/* FULL (the muxer's shared output is full): the node keeps its place and the rest of its
 * allowance, so the next run resumes with it rather than skipping its turn. */
static void full_output_keeps_the_head(void **state)
{
    (void)state;
    cp2p__sched q;
    cp2p__sched_init(&q, QUANTUM);
    flow a, b;
    add(&q, &a, 4, SIZE_MAX);
    add(&q, &b, 4, SIZE_MAX);
    cp2p__sched_node *n = cp2p__sched_next(&q);
    assert_ptr_equal(n, &a.node);
    cp2p__sched_done(&q, n, 1000, CP2P__SCHED_FULL);
    n = cp2p__sched_next(&q);
    assert_ptr_equal(n, &a.node);
    assert_int_equal(cp2p__sched_budget(n), 4 * QUANTUM - 1000);
    cp2p__sched_done(&q, n, 0, CP2P__SCHED_FULL); /* nothing taken: still its turn */
    assert_ptr_equal(cp2p__sched_next(&q), &a.node);
    cp2p__sched_done(&q, &a.node, 4 * QUANTUM - 1000, CP2P__SCHED_MORE);
    assert_ptr_equal(cp2p__sched_next(&q), &b.node);
}

static void removal_mid_round(void **state)
{
    (void)state;
    cp2p__sched q;
    cp2p__sched_init(&q, QUANTUM);
    flow f[5];
    for (int i = 0; i < 5; i++) {
        add(&q, &f[i], 2, SIZE_MAX);
    }
    for (int i = 0; i < 7; i++) {
        (void)serve(&q);
    }
    /* Remove the head, one in the middle and the tail; remove twice (no-op). */
    cp2p__sched_node *head = cp2p__sched_next(&q);
    assert_null(q.new_flows.head);
    cp2p__sched_remove(&q, head);
    cp2p__sched_node *mid = q.old_flows.head->next;
    cp2p__sched_remove(&q, mid);
    cp2p__sched_remove(&q, mid);
    cp2p__sched_remove(&q, q.old_flows.tail);
    assert_int_equal(cp2p__sched_listed(&q), 2);
    size_t before[5];
    for (int i = 0; i < 5; i++) {
        before[i] = f[i].sent;
    }
    for (int i = 0; i < 100; i++) {
        flow *s = serve(&q);
        assert_non_null(s);
        assert_int_equal(s->node.where == CP2P__SCHED_IDLE, 0);
    }
    int moved = 0;
    for (int i = 0; i < 5; i++) {
        if (f[i].sent != before[i]) {
            moved++;
            assert_int_not_equal(f[i].node.where, CP2P__SCHED_IDLE);
        }
    }
    assert_int_equal(moved, 2);
    /* Remove everything: the scheduler is empty, and a removed node can be woken again. */
    for (int i = 0; i < 5; i++) {
        cp2p__sched_remove(&q, &f[i].node);
    }
    assert_null(cp2p__sched_next(&q));
    assert_null(q.new_flows.head);
    assert_null(q.old_flows.head);
    cp2p__sched_wake(&q, &f[3].node);
    assert_ptr_equal(serve(&q), &f[3]);
}

static void cost_is_proportional_to_ready_streams(void **state)
{
    (void)state;
    enum { N = 10000, READY = 3 };
    cp2p__sched q;
    cp2p__sched_init(&q, QUANTUM);
    flow *f = calloc(N, sizeof(*f));
    assert_non_null(f);
    for (int i = 0; i < N; i++) {
        cp2p__sched_node_init(&f[i].node, 4); /* idle: never woken */
    }
    for (int i = 0; i < READY; i++) {
        add(&q, &f[i * 997], 4, SIZE_MAX);
    }
    const int decisions = 1000;
    for (int i = 0; i < decisions; i++) {
        flow *s = serve(&q);
        assert_true(s == &f[0] || s == &f[997] || s == &f[2 * 997]);
    }
    /* Each decision looks at the head, plus at most one refill per ready stream per round. */
    assert_true(q.stats.visits <= (uint64_t)decisions * 2);
    assert_int_equal(cp2p__sched_listed(&q), READY);
    free(f);
}

static void overdrawn_node_pays_back(void **state)
{
    (void)state;
    cp2p__sched q;
    cp2p__sched_init(&q, QUANTUM);
    flow a, b;
    add(&q, &a, 1, SIZE_MAX);
    add(&q, &b, 1, SIZE_MAX);
    /* a writes 10 allowances at once (as a negotiation line larger than its budget would). */
    cp2p__sched_node *n = cp2p__sched_next(&q);
    assert_ptr_equal(n, &a.node);
    cp2p__sched_done(&q, n, 10 * QUANTUM, CP2P__SCHED_MORE);
    a.sent += 10 * QUANTUM;
    for (int i = 0; i < 9; i++) {
        assert_ptr_equal(serve(&q), &b);
    }
    /* After paying back, both alternate again. */
    flow *x = serve(&q);
    flow *y = serve(&q);
    assert_ptr_not_equal(x, y);
}

static void weight_is_clamped(void **state)
{
    (void)state;
    cp2p__sched_node n;
    cp2p__sched_node_init(&n, 0);
    assert_int_equal(n.weight, 1);
    cp2p__sched_set_weight(&n, 1000);
    assert_int_equal(n.weight, CP2P__SCHED_MAX_WEIGHT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(equal_weights_share_bytes_equally),
        cmocka_unit_test(weights_one_and_four_share_one_to_four),
        cmocka_unit_test(newly_ready_small_stream_is_served_next),
        cmocka_unit_test(new_flow_that_empties_moves_to_old_list),
        cmocka_unit_test(blocked_stream_parks_and_rejoins_old_flows),
        cmocka_unit_test(full_output_keeps_the_head),
        cmocka_unit_test(removal_mid_round),
        cmocka_unit_test(cost_is_proportional_to_ready_streams),
        cmocka_unit_test(overdrawn_node_pays_back),
        cmocka_unit_test(weight_is_clamped),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
