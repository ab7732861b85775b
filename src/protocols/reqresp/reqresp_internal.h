/* Request-response internals: the counters of a registration (the pure framing is the shared
 * length-prefix reader, src/util/frame.h). */
#ifndef CP2P_PROTOCOLS_REQRESP_INTERNAL_H
#define CP2P_PROTOCOLS_REQRESP_INTERNAL_H

#include <stddef.h>

#include <cp2p/reqresp.h>


/* Counters of one registration (exported later through metrics); names match the log tags. */
typedef struct cp2p__reqresp_stats {
    uint64_t requests_served;      /* handler called */
    uint64_t inbound_over_limit;   /* reqresp.inbound_over_limit: streams reset, per-peer cap */
    uint64_t request_too_large;    /* reqresp.request_too_large: peer sent > max_request_bytes */
    uint64_t bad_frame;            /* reqresp.bad_frame: bad prefix or EOF inside the message */
    uint64_t inbound_failed;       /* the request stream died before the request was read */
    uint64_t response_too_large;   /* respond() with len > max_response_bytes */
    uint64_t refused;              /* refuse() */
} cp2p__reqresp_stats;

/* The counters of h's registration of `protocol`, or NULL. Loop thread only. */
const cp2p__reqresp_stats *cp2p__reqresp_get_stats(cp2p_host *h, const char *protocol);

#endif
