/* Token bucket in thousandths of a token (see token_bucket.h). The refill never overflows:
 * with room = burst * 1000 - milli (< 2^42), a gap of more than room / per_sec milliseconds
 * fills the bucket, and a shorter one adds elapsed * per_sec <= room. */
#include "util/token_bucket.h"

#include <assert.h>

#define MILLI 1000u

void cp2p__token_bucket_init(cp2p_token_bucket *b, uint32_t per_sec, uint32_t burst,
                             uint64_t now_ms)
{
    assert(per_sec >= 1 && burst >= 1);
    *b = (cp2p_token_bucket){
        .milli = (uint64_t)burst * MILLI,
        .last_ms = now_ms,
        .per_sec = per_sec,
        .burst = burst,
    };
}

static void refill(cp2p_token_bucket *b, uint64_t now_ms)
{
    if (now_ms <= b->last_ms) {
        return; /* same instant, or time went backwards: keep the later clock */
    }
    uint64_t elapsed = now_ms - b->last_ms;
    uint64_t room = (uint64_t)b->burst * MILLI - b->milli;
    b->milli = elapsed > room / b->per_sec ? (uint64_t)b->burst * MILLI
                                           : b->milli + elapsed * b->per_sec;
    b->last_ms = now_ms;
}

bool cp2p__token_bucket_take(cp2p_token_bucket *b, uint32_t n, uint64_t now_ms)
{
    refill(b, now_ms);
    uint64_t need = (uint64_t)n * MILLI;
    if (b->milli < need) {
        return false;
    }
    b->milli -= need;
    return true;
}

uint32_t cp2p__token_bucket_available(cp2p_token_bucket *b, uint64_t now_ms)
{
    refill(b, now_ms);
    return (uint32_t)(b->milli / MILLI);
}

uint64_t cp2p__token_bucket_wait_ms(cp2p_token_bucket *b, uint32_t n, uint64_t now_ms)
{
    refill(b, now_ms);
    if (n > b->burst) {
        return UINT64_MAX;
    }
    uint64_t need = (uint64_t)n * MILLI;
    if (b->milli >= need) {
        return 0;
    }
    /* Round up: after this many milliseconds at least `need` thousandths are there. */
    return (need - b->milli + b->per_sec - 1) / b->per_sec;
}
