/* Request-response internals: the counters of a registration (the pure framing is the shared
 * length-prefix reader, src/util/frame.h). */
#ifndef CP2P_PROTOCOLS_REQRESP_INTERNAL_H
#define CP2P_PROTOCOLS_REQRESP_INTERNAL_H

#include <stddef.h>

#include <cp2p/reqresp.h>


/* Counters of one registration (cp2p/reqresp.h); names match the log tags. */
typedef cp2p_reqresp_stats cp2p__reqresp_stats;

/* The counters of h's registration of `protocol`, or NULL. Loop thread only. */
const cp2p__reqresp_stats *cp2p__reqresp_get_stats(cp2p_host *h, const char *protocol);

#endif
