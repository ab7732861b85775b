/* Private pieces of the switch (reactor_uv.c) shared with its metrics (reactor_metrics.c). */
#ifndef CP2P_REACTOR_REACTOR_H
#define CP2P_REACTOR_REACTOR_H

#include <cp2p/reactor.h>

/* The switch's channel ids in registration order: writes up to max, returns how many. */
size_t cp2p__switch_channel_ids(const cp2p_switch *sw, uint8_t *ids, size_t max);

#endif
