/* Flows: a full flow drops and counts; a blocked callback on one flow does not stop another;
 * the in-flight semaphore holds workers back until the owner drains. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "flows/flow.h"

typedef struct ctx {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool gate_open;   /* work() blocks until this is set (when `gated`) */
    bool gated;
    uint32_t started; /* work() calls entered */
    uint32_t done, dropped;
    uint32_t wakes;
} ctx;

static void ctx_init(ctx *c, bool gated)
{
    memset(c, 0, sizeof(*c));
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    c->gated = gated;
}

static void ctx_fini(ctx *c)
{
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
}

static void work(void *item, void *ud)
{
    ctx *c = ud;
    (void)item;
    pthread_mutex_lock(&c->mu);
    c->started++;
    pthread_cond_broadcast(&c->cv);
    while (c->gated && !c->gate_open) {
        pthread_cond_wait(&c->cv, &c->mu);
    }
    pthread_mutex_unlock(&c->mu);
}

static void done(void *item, void *ud)
{
    ((ctx *)ud)->done++;
    free(item);
}

static void drop(void *item, void *ud)
{
    ((ctx *)ud)->dropped++;
    free(item);
}

static void wake(void *ud)
{
    ctx *c = ud;
    pthread_mutex_lock(&c->mu);
    c->wakes++;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static void wait_started(ctx *c, uint32_t n)
{
    pthread_mutex_lock(&c->mu);
    while (c->started < n) {
        pthread_cond_wait(&c->cv, &c->mu);
    }
    pthread_mutex_unlock(&c->mu);
}

static void open_gate(ctx *c)
{
    pthread_mutex_lock(&c->mu);
    c->gate_open = true;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

/* Drain until `n` items are done, sleeping on the wake signal in between. */
static void drain_until(cp2p__flow *f, ctx *c, uint32_t n)
{
    while (c->done < n) {
        if (cp2p__flow_drain(f, 0) == 0) {
            pthread_mutex_lock(&c->mu);
            uint32_t w = c->wakes;
            pthread_mutex_unlock(&c->mu);
            if (cp2p__flow_drain(f, 0) == 0) {
                pthread_mutex_lock(&c->mu);
                while (c->wakes == w) {
                    pthread_cond_wait(&c->cv, &c->mu);
                }
                pthread_mutex_unlock(&c->mu);
            }
        }
    }
}

static cp2p__flow *mk(ctx *c, const char *name, uint32_t cap, uint32_t workers, uint32_t inflight)
{
    cp2p__flow_config cfg = {.name = name, .queue_cap = cap, .workers = workers,
                             .max_inflight = inflight, .work = work, .done = done, .drop = drop,
                             .wake = wake, .ud = c};
    cp2p__flow *f;
    assert_int_equal(cp2p__flow_new(&cfg, &f), 0);
    return f;
}

static void *item(void)
{
    return malloc(64);
}

static void push_all(cp2p__flow *f, uint32_t n, uint32_t *ok, uint32_t *full)
{
    for (uint32_t i = 0; i < n; i++) {
        void *it = item();
        if (cp2p__flow_push(f, it) == 0) {
            (*ok)++;
        } else {
            (*full)++;
            free(it);
        }
    }
}

/* The seed's defaults: each flow filled past its capacity drops exactly the excess, counted,
 * and holds no more than its capacity. */
static void full_flows_drop_and_count(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        uint32_t cap;
    } flows[] = {{"advert", 100000}, {"request", 100}, {"chunk", 100}, {"retransmission", 1000},
                 {"transport", 1000}};
    for (size_t k = 0; k < 5; k++) {
        ctx c;
        ctx_init(&c, true);
        cp2p__flow *f = mk(&c, flows[k].name, flows[k].cap, 1, 4);
        uint32_t ok = 0, full = 0;
        push_all(f, 1, &ok, &full);
        wait_started(&c, 1); /* the worker holds one item, blocked */
        push_all(f, flows[k].cap + 500, &ok, &full);
        assert_int_equal(ok, flows[k].cap + 1);
        assert_int_equal(full, 500);
        cp2p__flow_stats st;
        cp2p__flow_stats_get(f, &st);
        assert_int_equal(st.queued, flows[k].cap);
        assert_int_equal(st.dropped, 500);
        assert_int_equal(st.inflight, 1);
        open_gate(&c);
        drain_until(f, &c, flows[k].cap + 1);
        cp2p__flow_stats_get(f, &st);
        assert_int_equal(st.processed, flows[k].cap + 1);
        assert_int_equal(st.queued, 0);
        assert_int_equal(st.inflight, 0);
        assert_true(st.latency_ns_sum > 0);
        cp2p__flow_free(f);
        assert_int_equal(c.dropped, 0);
        ctx_fini(&c);
    }
}

/* A callback blocked on the advert flow does not stop the chunk flow. */
static void blocked_flow_does_not_stop_others(void **state)
{
    (void)state;
    ctx a, b;
    ctx_init(&a, true);
    ctx_init(&b, false);
    cp2p__flow *fa = mk(&a, "advert", 1000, 2, 2);
    cp2p__flow *fb = mk(&b, "chunk", 100, 2, 4);
    uint32_t ok = 0, full = 0;
    push_all(fa, 2, &ok, &full);
    wait_started(&a, 2); /* both advert workers are stuck */
    for (uint32_t round = 0; round < 20; round++) {
        ok = full = 0;
        push_all(fb, 100, &ok, &full);
        assert_int_equal(ok, 100);
        drain_until(fb, &b, (round + 1) * 100);
    }
    assert_int_equal(b.done, 2000);
    cp2p__flow_stats st;
    cp2p__flow_stats_get(fa, &st);
    assert_int_equal(st.processed, 0); /* still blocked all along */
    open_gate(&a);
    drain_until(fa, &a, 2);
    cp2p__flow_free(fa);
    cp2p__flow_free(fb);
    ctx_fini(&a);
    ctx_fini(&b);
}

/* Workers take no more than max_inflight items until the owner drains; what is left at free
 * goes to drop. */
static void inflight_semaphore(void **state)
{
    (void)state;
    ctx c;
    ctx_init(&c, false);
    cp2p__flow *f = mk(&c, "request", 100, 4, 2);
    uint32_t ok = 0, full = 0;
    push_all(f, 10, &ok, &full);
    wait_started(&c, 2);
    /* With two permits taken and nothing drained, the other two workers stay idle. */
    for (int i = 0; i < 20; i++) {
        cp2p__flow_stats st;
        cp2p__flow_stats_get(f, &st);
        assert_true(st.inflight <= 2);
        assert_true(st.processed <= 2);
        usleep(1000);
    }
    assert_int_equal(c.started, 2);
    drain_until(f, &c, 4);
    cp2p__flow_free(f); /* the rest: queued or finished, dropped */
    assert_int_equal(c.done + c.dropped, 10);
    ctx_fini(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(full_flows_drop_and_count),
        cmocka_unit_test(blocked_flow_does_not_stop_others),
        cmocka_unit_test(inflight_semaphore),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
