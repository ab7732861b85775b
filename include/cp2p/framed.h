/* Framed links: the common shape of long-lived peer protocols, as a service helper.
 *
 * Gossipsub, the coming channel, artifact and overlay layers, and most protocols a user writes
 * on cp2p want the same thing from a peer: one long-lived stream each way, carrying
 * uvarint-length-prefixed frames (the framing of every libp2p protocol that sends protobufs
 * over a stream; go-libp2p's msgio varint reader, rust-libp2p's length-delimited codec). A
 * cp2p_framed is a service (cp2p/service.h) that does this once, with limits:
 *
 *   - Outbound: when a peer becomes ready (the service's readiness rule) the helper opens ONE
 *     outbound stream to it, offering the configured protocol IDs (most preferred first), and
 *     keeps it: after a reset, a failed open or an end from the peer it reopens, while the peer
 *     is ready, after a backoff that doubles from reopen_backoff_ms up to
 *     reopen_backoff_max_ms (and returns to the start once a stream has lived that long).
 *     cp2p_framed_send() writes a frame on it; frames written while the stream is opening, or
 *     while it already holds stream_backlog bytes the connection has not taken, wait in a
 *     bounded per-peer queue (max_queue_frames, max_queue_bytes). When the queue is full, the
 *     full policy decides: refuse the new frame (CP2P_EFULL, the caller keeps it) or drop the
 *     oldest queued frame; both are counted. A queue that was full and has drained to half
 *     calls `writable`, so a producer that was refused knows when to come back. Queued frames
 *     survive a reopen; they are dropped (counted) when the peer is gone.
 *   - Inbound: each inbound stream negotiated to one of the protocols is read with the one
 *     frame decoder of cp2p (fuzzed); each complete frame goes to `frame`. A frame over
 *     max_frame, a malformed length, or a non-zero return from `frame` resets that stream only
 *     and is counted; a stream ending inside a frame is counted as truncated. Frames of a peer
 *     may arrive before it is ready (the peer opened its stream before our identify of it
 *     completed) and after it is gone; `down` only follows a ready peer. Nothing is ever
 *     read from our own outbound streams (the peer's outbound stream is our inbound one).
 *   - Close: the host closes the helper with its other services (cp2p_host_close); or close it
 *     earlier with cp2p_framed_close(). Outbound streams are closed gracefully (what was
 *     written still goes out); queued frames are dropped.
 *
 * Callbacks run on the host's loop, never inside the call that caused them (cp2p_framed_send
 * never calls back). They may call cp2p_framed_send; they must not call cp2p_framed_close.
 *
 * Threading: loop thread only, like cp2p/host.h. */
#ifndef CP2P_FRAMED_H
#define CP2P_FRAMED_H

#include <cp2p/service.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cp2p_framed cp2p_framed;

/* What cp2p_framed_send does when a peer's queue is full. */
typedef enum cp2p_framed_full {
    CP2P_FRAMED_FULL_REFUSE = 0,    /* return CP2P_EFULL; the caller keeps its frame */
    CP2P_FRAMED_FULL_DROP_OLDEST = 1, /* drop the oldest queued frame, queue the new one */
} cp2p_framed_full;

typedef struct cp2p_framed_config {
    const char *name;             /* service name, for logs (copied) */
    const char *const *protocols; /* 1..CP2P_SERVICE_MAX_PROTOCOLS IDs, most preferred first */
    size_t n_protocols;
    cp2p_service_ready ready;     /* which peers get a stream (cp2p/service.h) */
    size_t max_frame;             /* largest frame body, both ways (1 MiB) */
    uint32_t max_queue_frames;    /* frames waiting per peer (1,024) */
    size_t max_queue_bytes;       /* their bytes (4 MiB) */
    size_t stream_backlog;        /* bytes the stream may hold before frames wait (256 KiB) */
    cp2p_framed_full full;        /* full policy (refuse) */
    uint32_t reopen_backoff_ms;   /* first reopen delay (100 ms) */
    uint32_t reopen_backoff_max_ms; /* largest reopen delay (30 s) */
    uint32_t max_peers;           /* peers tracked; more are ignored and counted (4,096) */
    uint32_t max_inbound_per_conn; /* inbound streams of the protocols per connection (4) */
    /* Callbacks, each may be NULL; `ud` is the pointer given to cp2p_framed_new. */
    /* Our outbound stream to `peer` is negotiated to `protocol` (after each (re)open). */
    void (*up)(cp2p_framed *f, const cp2p_peer_id *peer, const char *protocol, void *ud);
    /* The peer stopped being ready (cp2p_service_desc.peer_gone's err); its queue is dropped. */
    void (*down)(cp2p_framed *f, const cp2p_peer_id *peer, int err, void *ud);
    /* One complete inbound frame, borrowed for the call, on a stream negotiated to `protocol`.
     * Return 0, or an error to reset that stream (counted as rejected). */
    int (*frame)(cp2p_framed *f, const cp2p_peer_id *peer, const char *protocol,
                 const uint8_t *data, size_t len, void *ud);
    /* The peer's queue, full at some point, has drained to half or less. */
    void (*writable)(cp2p_framed *f, const cp2p_peer_id *peer, void *ud);
    /* The host is closing the helper (not called for cp2p_framed_close): last frames may be
     * sent from inside; when it returns the helper closes its streams and frees itself, and
     * its handle is invalid. */
    void (*closing)(cp2p_framed *f, void *ud);
} cp2p_framed_config;

typedef struct cp2p_framed_stats {
    uint64_t frames_sent, bytes_sent;         /* handed to a stream (prefix included) */
    uint64_t frames_received, bytes_received; /* delivered to `frame` (body bytes) */
    uint64_t send_refused;      /* CP2P_EFULL returned (refuse policy) */
    uint64_t send_dropped;      /* queued frames dropped: oldest (drop policy), or peer gone */
    uint64_t send_too_large;    /* cp2p_framed_send with a frame over max_frame */
    uint64_t streams_opened;    /* outbound streams negotiated */
    uint64_t open_failed;       /* outbound opens that failed */
    uint64_t reopens;           /* reopen attempts after a stream died or an open failed */
    uint64_t inbound_streams;   /* inbound streams accepted */
    uint64_t inbound_refused;   /* inbound streams reset: no memory, unknown protocol */
    uint64_t frames_malformed;  /* inbound streams reset: bad length prefix */
    uint64_t frames_oversized;  /* inbound streams reset: frame over max_frame */
    uint64_t frames_rejected;   /* inbound streams reset: `frame` returned an error */
    uint64_t truncated;         /* inbound streams that ended inside a frame */
    uint64_t peers_refused;     /* ready peers not tracked (max_peers) */
    uint64_t queued_frames;     /* frames waiting now, all peers */
    uint64_t peers;             /* peers tracked now */
} cp2p_framed_stats;

/* Defaults (above), no protocols, no callbacks. */
CP2P_API void cp2p_framed_config_default(cp2p_framed_config *cfg);

/* Attach a framed-link service to `h`. Returns 0 and *out, CP2P_EINVAL (NULL, no protocol,
 * zero limits, backoff max below its start), or the errors of cp2p_host_add_service
 * (CP2P_ESTATE: a protocol already has a handler; CP2P_ECLOSED; CP2P_ENOMEM). */
CP2P_API CP2P_NODISCARD int cp2p_framed_new(cp2p_host *h, const cp2p_framed_config *cfg, void *ud,
                                            cp2p_framed **out);

/* Detach and free: no callback runs after this returns. Outbound streams close gracefully;
 * inbound streams are reset; queued frames are dropped. Not from the helper's callbacks. */
CP2P_API void cp2p_framed_close(cp2p_framed *f);

/* Send data[0..len) as one frame to `peer` (copied). Returns 0 (written or queued),
 * CP2P_ENOENT (the peer is not ready for this service), CP2P_ELIMIT (len > max_frame),
 * CP2P_EFULL (queue full, refuse policy), CP2P_ENOMEM. Never calls back. */
CP2P_API CP2P_NODISCARD int cp2p_framed_send(cp2p_framed *f, const cp2p_peer_id *peer,
                                             const void *data, size_t len);

/* True when a frame sent to `peer` now would go straight to its open stream (nothing queued,
 * the stream under its backlog): for producers that keep their own bounded outbox (gossipsub's
 * router) and take from it only what the stream can carry. */
CP2P_API bool cp2p_framed_can_send(const cp2p_framed *f, const cp2p_peer_id *peer);
/* True when `peer` is ready for the service (frames to it are accepted). */
CP2P_API bool cp2p_framed_peer_ready(const cp2p_framed *f, const cp2p_peer_id *peer);
/* Frames waiting for `peer` (0 for an unknown peer). */
CP2P_API size_t cp2p_framed_queued(const cp2p_framed *f, const cp2p_peer_id *peer);
/* The protocol of our open outbound stream to `peer`, or NULL when none is open. */
CP2P_API const char *cp2p_framed_peer_protocol(const cp2p_framed *f, const cp2p_peer_id *peer);

CP2P_API void cp2p_framed_stats_get(const cp2p_framed *f, cp2p_framed_stats *out);
CP2P_API cp2p_service *cp2p_framed_service(const cp2p_framed *f);

#ifdef __cplusplus
}
#endif
#endif
