/* The one token bucket of cp2p (abuse budgets, STYLE.md 6.9; request rates). Integer arithmetic
 * only and no clock: the caller passes its time in milliseconds, so sans-I/O cores use it on
 * their own (possibly virtual) time. Not thread-safe: one owner serialises access.
 *
 * Tokens are counted in thousandths, so `per_sec` tokens a second are exactly `per_sec`
 * thousandths a millisecond: no rounding and no doubles. A bucket starts full. Time that goes
 * backwards is ignored (the bucket neither refills nor moves its clock back), and a gap of any
 * length refills to the burst without overflowing. */
#ifndef CP2P_UTIL_TOKEN_BUCKET_H
#define CP2P_UTIL_TOKEN_BUCKET_H

#include <stdbool.h>
#include <stdint.h>

typedef struct cp2p_token_bucket {
    uint64_t milli;   /* tokens available, in thousandths; at most burst * 1000 */
    uint64_t last_ms; /* caller's time of the last refill */
    uint32_t per_sec; /* refill rate, tokens a second, >= 1 */
    uint32_t burst;   /* capacity, tokens, >= 1 */
} cp2p_token_bucket;

/* Start full at `now_ms`. per_sec and burst must be >= 1 (callers validate their configuration
 * first; asserted). Cannot fail. */
void cp2p__token_bucket_init(cp2p_token_bucket *b, uint32_t per_sec, uint32_t burst,
                             uint64_t now_ms);

/* Refill up to `now_ms`, then take `n` tokens if that many are available. Returns true if they
 * were taken, false (nothing taken) if not; n == 0 always succeeds, n > burst never does. */
bool cp2p__token_bucket_take(cp2p_token_bucket *b, uint32_t n, uint64_t now_ms);

/* Refill up to `now_ms` and return the whole tokens available (0..burst). */
uint32_t cp2p__token_bucket_available(cp2p_token_bucket *b, uint64_t now_ms);

/* Refill up to `now_ms` and return how many milliseconds from `now_ms` until `n` tokens are
 * available (0: now), for callers that pause instead of refusing; UINT64_MAX if n > burst
 * (never). Takes nothing. */
uint64_t cp2p__token_bucket_wait_ms(cp2p_token_bucket *b, uint32_t n, uint64_t now_ms);

#endif
