/* Overlay ids (src/overlay/ovl_id.c) on a fake clock: strictly increasing (so never repeated)
 * over 10^6 ids, across a restart from the persisted floor, and with the clock stepped back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "overlay/ovl_id.h"

typedef struct store {
    uint64_t floor;
    unsigned writes;
    int fail;
} store;

static int persist(void *ud, uint64_t floor)
{
    store *s = ud;
    if (s->fail != 0) {
        return s->fail;
    }
    s->floor = floor;
    s->writes++;
    return 0;
}

static const uint64_t T0 = CP2P_OVL_ID_EPOCH_MS + UINT64_C(86400000) * 700;

/* Draw n ids, the clock advancing 1 ms every `per_ms` ids; each must exceed *last. */
static void draw(cp2p__ovl_idgen *g, uint64_t *clock, unsigned n, unsigned per_ms,
                 uint64_t *last)
{
    for (unsigned i = 0; i < n; i++) {
        uint64_t id;
        if (i % per_ms == 0) {
            (*clock)++;
        }
        assert_int_equal(cp2p__ovl_idgen_next(g, *clock, &id), 0);
        assert_true(id > *last);
        *last = id;
    }
}

static void million_ids_restart_and_clock_back(void **state)
{
    (void)state;
    store st = {0};
    cp2p__ovl_idgen g;
    uint64_t clock = T0, last = 0;
    cp2p__ovl_idgen_init(&g, 0x2a5, 0, 0, persist, &st);
    /* 10^6 ids at 5,000 per ms: the 12-bit sequence overflows every millisecond. */
    draw(&g, &clock, 1000000, 5000, &last);
    assert_true(st.writes >= 1);
    assert_true(cp2p__ovl_id_ms(last) < st.floor);
    /* Host bits are ours. */
    assert_int_equal((last >> CP2P_OVL_ID_SEQ_BITS) & 0x3ff, 0x2a5);

    /* The clock steps back 10 s: ids keep increasing. */
    clock -= 10000;
    draw(&g, &clock, 200000, 3, &last);

    /* Restart from the persisted floor with the clock still 10 s behind: above every id. */
    cp2p__ovl_idgen g2;
    cp2p__ovl_idgen_init(&g2, 0x2a5, st.floor, 0, persist, &st);
    draw(&g2, &clock, 100000, 7, &last);

    /* And a second restart with the clock stepped back 10 s again, right after. */
    clock -= 10000;
    cp2p__ovl_idgen g3;
    cp2p__ovl_idgen_init(&g3, 0x2a5, st.floor, 0, persist, &st);
    draw(&g3, &clock, 100000, 1, &last);
}

static void persist_failure_gives_no_id(void **state)
{
    (void)state;
    store st = {.fail = CP2P_EIO};
    cp2p__ovl_idgen g;
    uint64_t id = 0, before;
    cp2p__ovl_idgen_init(&g, 1, 0, 1000, persist, &st);
    assert_int_equal(cp2p__ovl_idgen_next(&g, T0, &id), CP2P_EIO);
    st.fail = 0;
    assert_int_equal(cp2p__ovl_idgen_next(&g, T0, &id), 0);
    before = id;
    /* Within the reserve no write; past it, one. */
    unsigned w = st.writes;
    assert_int_equal(cp2p__ovl_idgen_next(&g, T0 + 500, &id), 0);
    assert_int_equal(st.writes, w);
    assert_int_equal(cp2p__ovl_idgen_next(&g, T0 + 5000, &id), 0);
    assert_int_equal(st.writes, w + 1);
    assert_true(id > before);
}

static void without_floor_a_restart_behind_the_clock_repeats(void **state)
{
    /* The contrast: the same generator restarted with floor 0 (plain snowflake) after the
     * clock stepped back hands out an id it handed out before. */
    (void)state;
    cp2p__ovl_idgen g;
    uint64_t a, b;
    cp2p__ovl_idgen_init(&g, 3, 0, 0, NULL, NULL);
    assert_int_equal(cp2p__ovl_idgen_next(&g, T0, &a), 0);
    cp2p__ovl_idgen_init(&g, 3, 0, 0, NULL, NULL);
    assert_int_equal(cp2p__ovl_idgen_next(&g, T0, &b), 0);
    assert_true(a == b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(million_ids_restart_and_clock_back),
        cmocka_unit_test(persist_failure_gives_no_id),
        cmocka_unit_test(without_floor_a_restart_behind_the_clock_repeats),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
