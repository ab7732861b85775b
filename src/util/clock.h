/* Clocks. The wall clock, for the few places that need time to survive a restart (the peerstore's
 * expiries, signed records). Protocol cores take `now` from their caller instead; bindings use
 * the loop's monotonic time for timers. */
#ifndef CP2P_UTIL_CLOCK_H
#define CP2P_UTIL_CLOCK_H

#include <stdint.h>

/* Milliseconds since the Unix epoch (CLOCK_REALTIME), or 0 if the clock cannot be read. */
uint64_t cp2p__wall_ms(void);
/* Nanoseconds on CLOCK_MONOTONIC (durations measured across threads, e.g. a call's latency
 * from the caller's thread to the loop's answer), or 0 if the clock cannot be read. */
uint64_t cp2p__mono_ns(void);

#endif
