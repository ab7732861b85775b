/* cp2p: the libp2p request-response protocol family on the host's public API, wire-compatible
 * with rust-libp2p's request_response and go-libp2p's request/response helpers.
 *
 * Wire format: one stream per request. The requester writes the request and closes its write
 * side; the responder reads the request to end of stream, writes the response and closes; the
 * requester reads the response to end of stream. With `length_prefixed` set, each message is
 * instead one unsigned-varint length (multiformats unsigned-varint, at most 9 bytes, minimal)
 * followed by that many bytes, and the reader stops after that one message. Both sides of a
 * protocol must agree on `length_prefixed` (it is part of the protocol's definition, as a
 * rust-libp2p Codec is).
 *
 * Threading: every function here is called on the loop thread that runs the host, and every
 * callback runs on it. Callback rule (STYLE.md section 3): a function that returns an error
 * never calls its callback; one that returns 0 calls it exactly once, never before it returned.
 *
 * Ownership: requests and responses passed in are copied (the caller's memory is free on
 * return); bytes handed to a callback are borrowed for the duration of that call. */
#ifndef CP2P_REQRESP_H
#define CP2P_REQRESP_H

#include <cp2p/host.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Per-protocol settings. Fill with cp2p_reqresp_config_default() and change what you need, so
 * fields added later keep their defaults. */
typedef struct cp2p_reqresp_config {
    size_t max_request_bytes;      /* request body cap, both sides (default 1 MiB) */
    size_t max_response_bytes;     /* response body cap, both sides (default 10 MiB) */
    uint64_t timeout_ms;           /* requester: open + write + read (default 10 s) */
    uint32_t max_inbound_per_peer; /* responder: requests of one connection not yet answered;
                                      more new streams are reset and counted (default 32) */
    bool length_prefixed;          /* uvarint-prefixed messages instead of read-to-EOF (false) */
    bool keep_write_open;          /* requester, length-prefixed only: do not half-close after
                                      the request; close once the response is read (false).
                                      For servers that read on after answering and reset the
                                      stream at end of stream, as js-libp2p kad-dht does. */
    bool lazy_open;                /* requester: open the stream lazily when the peer's
                                      identify lists the protocol (cp2p_open_opts
                                      .lazy_if_known): the proposal and the request go out in
                                      one flight, so a request costs one round trip instead of
                                      two (true; toward a peer other than cp2p a plain request
                                      still takes two: its FIN waits for the echo, see
                                      cp2p_open_opts). A peer that answers "na" all the same
                                      fails the request with CP2P_ENOTSUP; not retried. */
} cp2p_reqresp_config;

/* Fill c with the defaults above. Any thread. */
CP2P_API void cp2p_reqresp_config_default(cp2p_reqresp_config *c);

/* ---- responder ---- */

/* One pending inbound request. The handler receives it and must answer it exactly once, with
 * cp2p_reqresp_respond() or cp2p_reqresp_refuse(), either inside the handler or later from the
 * loop thread. The object stays valid until it is answered, even if its connection dies
 * first (the answer is then dropped); answering consumes it, whatever the result. Every
 * responder must be answered before the callback of cp2p_host_close() runs, since the stream
 * it holds ends with the host. */
typedef struct cp2p_reqresp_responder cp2p_reqresp_responder;

/* An inbound request: `req` (len bytes, at most max_request_bytes) is borrowed for the call;
 * `c` is the connection it came on (valid as cp2p/host.h says). */
typedef void (*cp2p_reqresp_handler)(cp2p_reqresp_responder *r, cp2p_conn *c, const uint8_t *req,
                                     size_t len, void *ud);

/* Serve `protocol` (copied) on h with handler cb, settings *cfg (copied; NULL for the
 * defaults) and `ud` (passed to cb, owned by the caller). Registering a protocol again replaces
 * the previous registration; requests already received keep their old handler.
 * Returns 0, CP2P_EINVAL (NULL h, cb or protocol, bad protocol ID, zero timeout or
 * max_inbound_per_peer), CP2P_ESTATE (another handler or service serves the protocol),
 * CP2P_EFULL (the host's handler table is full), CP2P_ECLOSED (host closing), CP2P_ENOMEM.
 * The registration is a service of the host (cp2p/service.h): it lives until
 * cp2p_reqresp_unregister() or until the host closes, which releases it. Loop thread only. */
CP2P_API CP2P_NODISCARD int cp2p_reqresp_register(cp2p_host *h, const char *protocol,
                                                  const cp2p_reqresp_config *cfg,
                                                  cp2p_reqresp_handler cb, void *ud);

/* Stop serving `protocol`: new streams for it are refused ("na"), and the registration's
 * memory is released once its pending responders are answered (they stay valid until then).
 * Returns 0 or CP2P_ENOENT (no request-response registration of that name). Loop thread only. */
CP2P_API CP2P_NODISCARD int cp2p_reqresp_unregister(cp2p_host *h, const char *protocol);

/* Counters of one registration (the responder side); exported as cp2p_reqresp_* metrics by the
 * node's HTTP API (docs/METRICS.md). */
typedef struct cp2p_reqresp_stats {
    uint64_t requests_served;    /* requests handed to the handler */
    uint64_t inbound_over_limit; /* streams reset: the peer had max_inbound_per_peer in flight */
    uint64_t request_too_large;  /* requests over max_request_bytes (stream reset) */
    uint64_t bad_frame;          /* a bad length prefix, or the stream ended inside the request */
    uint64_t inbound_failed;     /* the stream died before the request was read */
    uint64_t response_too_large; /* cp2p_reqresp_respond with more than max_response_bytes */
    uint64_t refused;            /* cp2p_reqresp_refuse */
} cp2p_reqresp_stats;

/* Copy the counters of h's registration of `protocol` into *out. Returns 0 or CP2P_ENOENT (no
 * such registration). Loop thread only. */
CP2P_API CP2P_NODISCARD int cp2p_reqresp_stats_get(cp2p_host *h, const char *protocol,
                                                   cp2p_reqresp_stats *out);

/* Answer r with len bytes of `resp` (copied), then close the stream. Consumes r in every case.
 * Returns 0 (the response is queued; it is sent as the peer's window admits it), or:
 * CP2P_ELIMIT  len > max_response_bytes: the stream is reset, the requester gets CP2P_ERESET;
 * CP2P_ECLOSED the stream or its connection already died: nothing is sent;
 * CP2P_ENOMEM  the copy failed: the stream is reset.
 * There is no callback: a response that fails on the wire is the requester's error to see.
 * Loop thread only. */
CP2P_API CP2P_NODISCARD int cp2p_reqresp_respond(cp2p_reqresp_responder *r, const void *resp,
                                                 size_t len);

/* Answer r by resetting its stream: the requester gets CP2P_ERESET. Consumes r. Loop thread
 * only. */
CP2P_API void cp2p_reqresp_refuse(cp2p_reqresp_responder *r);

/* ---- requester ---- */

/* The outcome of one request. status 0: `resp` (len bytes) is borrowed for the call. Errors:
 * CP2P_ETIMEDOUT no complete response within timeout_ms (the stream is reset);
 * CP2P_ENOTSUP   the peer does not serve the protocol;
 * CP2P_ELIMIT    the response passed max_response_bytes: reading stopped, stream reset;
 * CP2P_EPROTO    length-prefixed mode: a bad length prefix, or end of stream before a whole
 *                message (also: end of stream before our request was written);
 * CP2P_ERESET    the responder refused (reset the stream), or the stream died;
 * CP2P_ECLOSED   the connection closed. */
typedef void (*cp2p_reqresp_cb)(cp2p_conn *c, int status, const uint8_t *resp, size_t len,
                                void *ud);

/* Send one request of len bytes (`req`, copied) on a new stream of c negotiated to `protocol`
 * (copied), with settings *cfg (copied; NULL for the defaults). cb runs once with the outcome.
 * Returns 0, or (and cb never runs):
 * CP2P_EINVAL  NULL c, protocol or cb, a bad protocol ID, zero timeout_ms;
 * CP2P_ELIMIT  len > cfg->max_request_bytes;
 * CP2P_ECLOSED the connection is closing; CP2P_EFULL too many streams;
 * CP2P_ENOMEM, CP2P_EIO (the timer could not be created).
 * Loop thread only. */
CP2P_API CP2P_NODISCARD int cp2p_reqresp_request(cp2p_conn *c, const char *protocol,
                                                 const cp2p_reqresp_config *cfg, const void *req,
                                                 size_t len, cp2p_reqresp_cb cb, void *ud);

#ifdef __cplusplus
}
#endif
#endif
