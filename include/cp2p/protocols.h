/* cp2p: the built-in protocols every host runs — ping, identify (+ push) and perf — and their
 * client calls. Loop thread only, like cp2p/host.h; the same callback rule applies. */
#ifndef CP2P_PROTOCOLS_H
#define CP2P_PROTOCOLS_H

#include <cp2p/host.h>

#ifdef __cplusplus
extern "C" {
#endif

#define CP2P_PING_PROTOCOL "/ipfs/ping/1.0.0"
#define CP2P_IDENTIFY_PROTOCOL "/ipfs/id/1.0.0"
#define CP2P_IDENTIFY_PUSH_PROTOCOL "/ipfs/id/push/1.0.0"
#define CP2P_PERF_PROTOCOL "/perf/1.0.0"

/* One ping (libp2p ping spec: 32 random bytes echoed) on a new stream of c. cb gets the round
 * trip in nanoseconds (measured from sending to receiving the 32 bytes), or an error. When the
 * peer's identify lists ping, the stream is opened lazily (cp2p_open_opts): the proposal
 * travels with the 32 bytes, so the whole ping is one round trip, and the measured time
 * includes the peer's negotiation of the stream. Errors: CP2P_ETIMEDOUT (no answer within
 * timeout_ms), CP2P_EPROTO (wrong bytes back), CP2P_ENOTSUP (the peer has no ping),
 * CP2P_ERESET/CP2P_ECLOSED.
 * Returns 0, CP2P_ECLOSED, CP2P_ENOMEM. */
typedef void (*cp2p_ping_cb)(cp2p_conn *c, int status, uint64_t rtt_ns, void *ud);
CP2P_API CP2P_NODISCARD int cp2p_ping(cp2p_conn *c, uint64_t timeout_ms, cp2p_ping_cb cb,
                                      void *ud);

/* perf (libp2p perf spec, /perf/1.0.0): send `upload` bytes and ask for `download` bytes back
 * on one stream. The result counts what really crossed and times each direction. */
typedef struct cp2p_perf_result {
    uint64_t upload_bytes, download_bytes;
    uint64_t upload_ns;   /* first byte queued .. last byte handed to the connection */
    uint64_t download_ns; /* end of upload .. the peer's end of stream */
    uint64_t total_ns;
} cp2p_perf_result;
/* cb gets 0 and the result, or an error (CP2P_EPROTO when the peer sent a different number of
 * bytes than asked, CP2P_ENOTSUP, CP2P_ERESET, CP2P_ECLOSED). Returns 0, CP2P_ECLOSED,
 * CP2P_ENOMEM. */
typedef void (*cp2p_perf_cb)(cp2p_conn *c, int status, const cp2p_perf_result *r, void *ud);
CP2P_API CP2P_NODISCARD int cp2p_perf(cp2p_conn *c, uint64_t upload, uint64_t download,
                                      cp2p_perf_cb cb, void *ud);

#ifdef __cplusplus
}
#endif
#endif
