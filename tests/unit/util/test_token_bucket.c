/* The token bucket (src/util/token_bucket.c): starts full, refill in exact thousandths, burst
 * cap, time going backwards, huge gaps, wait-time computation, and a randomized comparison with
 * a 128-bit reference of the same rule. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "util/token_bucket.h"

/* A bucket started at `now` and emptied at once. */
static cp2p_token_bucket emptied(uint32_t per_sec, uint32_t burst, uint64_t now)
{
    cp2p_token_bucket b;
    cp2p__token_bucket_init(&b, per_sec, burst, now);
    assert_true(cp2p__token_bucket_take(&b, burst, now));
    assert_int_equal(cp2p__token_bucket_available(&b, now), 0);
    return b;
}

static void starts_full_and_runs_dry(void **state)
{
    cp2p_token_bucket b;
    (void)state;
    cp2p__token_bucket_init(&b, 10, 5, 1000);
    assert_int_equal(cp2p__token_bucket_available(&b, 1000), 5);
    for (int i = 0; i < 5; i++) {
        assert_true(cp2p__token_bucket_take(&b, 1, 1000));
    }
    assert_false(cp2p__token_bucket_take(&b, 1, 1000));
    assert_int_equal(cp2p__token_bucket_available(&b, 1000), 0);
    assert_true(cp2p__token_bucket_take(&b, 0, 1000)); /* nothing asked, nothing needed */
}

static void refill_is_exact(void **state)
{
    cp2p_token_bucket b;
    (void)state;
    /* 10 a second: one token every 100 ms, none after 99. */
    b = emptied(10, 1, 0);
    assert_false(cp2p__token_bucket_take(&b, 1, 99));
    assert_true(cp2p__token_bucket_take(&b, 1, 100));
    /* 7 a second, taken a millisecond at a time: exactly 7 tokens in 1000 ms, no drift. */
    b = emptied(7, 100, 0);
    unsigned got = 0;
    for (uint64_t t = 1; t <= 1000; t++) {
        got += cp2p__token_bucket_take(&b, 1, t) ? 1 : 0;
    }
    assert_int_equal(got, 7);
    assert_false(cp2p__token_bucket_take(&b, 1, 1000));
}

static void burst_caps_the_refill(void **state)
{
    cp2p_token_bucket b;
    (void)state;
    b = emptied(1000, 3, 0);
    assert_int_equal(cp2p__token_bucket_available(&b, 60000), 3);
    assert_false(cp2p__token_bucket_take(&b, 4, 60000)); /* more than the burst: never */
    assert_true(cp2p__token_bucket_take(&b, 3, 60000));
}

static void time_going_backwards_is_ignored(void **state)
{
    cp2p_token_bucket b;
    (void)state;
    b = emptied(10, 2, 1000);
    /* Earlier times neither refill nor move the bucket's clock back. */
    assert_false(cp2p__token_bucket_take(&b, 1, 0));
    assert_int_equal(cp2p__token_bucket_available(&b, 500), 0);
    assert_false(cp2p__token_bucket_take(&b, 1, 1099));
    /* 100 ms after the latest time seen (1000), not after 500 or 0. */
    assert_true(cp2p__token_bucket_take(&b, 1, 1100));
    assert_false(cp2p__token_bucket_take(&b, 1, 1100));
    /* A bucket started late: a time before its start is "no time passed". */
    b = emptied(1, 1, UINT64_MAX - 5);
    assert_false(cp2p__token_bucket_take(&b, 1, 0));
}

static void huge_gaps_do_not_overflow(void **state)
{
    cp2p_token_bucket b;
    (void)state;
    /* Largest rate and burst, a gap of 2^64 - 1 ms. */
    b = emptied(UINT32_MAX, UINT32_MAX, 0);
    assert_int_equal(cp2p__token_bucket_available(&b, UINT64_MAX), UINT32_MAX);
    assert_true(cp2p__token_bucket_take(&b, UINT32_MAX, UINT64_MAX));
    /* Largest steps below the cap: one ms brings UINT32_MAX thousandths, 999 more fill it. */
    b = emptied(UINT32_MAX, UINT32_MAX, 0);
    assert_int_equal(cp2p__token_bucket_available(&b, 1), UINT32_MAX / 1000);
    assert_int_equal(cp2p__token_bucket_available(&b, 1000), UINT32_MAX);
    /* Slowest refill, largest gap. */
    b = emptied(1, UINT32_MAX, 0);
    assert_int_equal(cp2p__token_bucket_available(&b, UINT64_MAX), UINT32_MAX);
}

static void wait_time(void **state)
{
    cp2p_token_bucket b;
    (void)state;
    cp2p__token_bucket_init(&b, 3, 4, 0);
    assert_int_equal(cp2p__token_bucket_wait_ms(&b, 4, 0), 0);
    assert_int_equal(cp2p__token_bucket_wait_ms(&b, 5, 0), UINT64_MAX); /* over the burst */
    assert_true(cp2p__token_bucket_take(&b, 4, 0));
    assert_int_equal(cp2p__token_bucket_wait_ms(&b, 0, 0), 0);
    /* 3 a second: one token takes 1000/3 ms, rounded up to 334. */
    assert_int_equal(cp2p__token_bucket_wait_ms(&b, 1, 0), 334);
    assert_false(cp2p__token_bucket_take(&b, 1, 333));
    assert_int_equal(cp2p__token_bucket_wait_ms(&b, 1, 333), 1);
    assert_true(cp2p__token_bucket_take(&b, 1, 334));
    /* Asking waits nothing away: after the wait the tokens are there. */
    uint64_t now = 334;
    uint64_t w = cp2p__token_bucket_wait_ms(&b, 3, now);
    assert_int_equal(w, 1000); /* 2 thousandths left over, 2998 more at 3 a millisecond */
    assert_false(cp2p__token_bucket_take(&b, 3, now + w - 1));
    assert_true(cp2p__token_bucket_take(&b, 3, now + w));
}

static uint64_t xs(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* The rule, in 128 bits: milli = min(burst * 1000, milli + (now - last) * per_sec). */
static void matches_a_wide_reference(void **state)
{
    (void)state;
    uint64_t seed = 0x243f6a8885a308d3ULL;
    for (int round = 0; round < 200; round++) {
        uint32_t per_sec = (uint32_t)(xs(&seed) % 3 == 0 ? xs(&seed) : xs(&seed) % 100 + 1);
        uint32_t burst = (uint32_t)(xs(&seed) % 2 == 0 ? xs(&seed) : xs(&seed) % 50 + 1);
        per_sec = per_sec == 0 ? 1 : per_sec;
        burst = burst == 0 ? 1 : burst;
        uint64_t now = xs(&seed) % 1000000;
        cp2p_token_bucket b;
        cp2p__token_bucket_init(&b, per_sec, burst, now);
        unsigned __int128 milli = (unsigned __int128)burst * 1000, last = now;
        for (int step = 0; step < 200; step++) {
            uint64_t r = xs(&seed);
            if (r % 10 == 0) {
                now = now > 1000 ? now - r % 1000 : now; /* backwards */
            } else if (r % 10 == 1) {
                now += xs(&seed) >> (r % 64); /* anything up to 2^64 */
            } else {
                now += r % 50;
            }
            if (now > last) {
                unsigned __int128 cap = (unsigned __int128)burst * 1000;
                milli += (unsigned __int128)(now - last) * per_sec;
                milli = milli > cap ? cap : milli;
                last = now;
            }
            uint32_t n = (uint32_t)(xs(&seed) % (burst < 8 ? burst + 1 : 8));
            bool ok = milli >= (unsigned __int128)n * 1000;
            milli -= ok ? (unsigned __int128)n * 1000 : 0;
            assert_int_equal(cp2p__token_bucket_take(&b, n, now), ok);
            assert_int_equal(cp2p__token_bucket_available(&b, now), (uint32_t)(milli / 1000));
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(starts_full_and_runs_dry),
        cmocka_unit_test(refill_is_exact),
        cmocka_unit_test(burst_caps_the_refill),
        cmocka_unit_test(time_going_backwards_is_ignored),
        cmocka_unit_test(huge_gaps_do_not_overflow),
        cmocka_unit_test(wait_time),
        cmocka_unit_test(matches_a_wide_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
