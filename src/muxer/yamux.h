/* yamux (/yamux/1.0.0) as a sans-I/O core: bytes and a time in, bytes, events and a deadline
 * out (STYLE.md section 7). The wire format is hashicorp/yamux spec.md; where the spec is silent
 * the behaviour follows go-yamux and @chainsafe/libp2p-yamux, and each such choice is named in
 * yamux.c and in docs/ARCHITECTURE.md. Private to the library: never installed.
 *
 * Threads: a session and its streams belong to one thread (the loop thread of the binding);
 * nothing here locks. Every function below is "loop thread only" in that sense.
 *
 * Time: functions that need the time take `now` in milliseconds from any monotonic origin; the
 * core never reads a clock. Time must not go backwards (a smaller value is treated as no time
 * having passed).
 *
 * Life of a session, as a binding drives it:
 *   cp2p__yamux_new()                                 once, after the muxer was negotiated
 *   on bytes read:   cp2p__yamux_recv(), then drain events and output
 *   on a timer:      cp2p__yamux_on_timeout(), armed from cp2p__yamux_deadline()
 *   to write:        cp2p__yamux_outv() -> write the slices -> cp2p__yamux_out_done(n)
 *   events:          while (cp2p__yamux_next_event(y, &ev)) ...
 *   transport gone:  cp2p__yamux_abort(); at the end cp2p__yamux_free()
 *
 * Life of a stream: it is created by cp2p__yamux_stream_open() or announced by a
 * STREAM_OPENED event; from then on the application owns the handle until it calls
 * cp2p__yamux_stream_release(), which is the only way its memory goes away (besides
 * cp2p__yamux_free()). The core never frees a stream the application holds, so a handle stays
 * valid through any sequence of events (STYLE.md section 4).
 */
#ifndef CP2P_MUXER_YAMUX_H
#define CP2P_MUXER_YAMUX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cp2p/common.h>

/* ---- wire format (spec.md "Framing") ---- */

#define CP2P__YAMUX_HDR_LEN 12
#define CP2P__YAMUX_VERSION 0

enum {
    CP2P__YAMUX_DATA = 0,
    CP2P__YAMUX_WINDOW_UPDATE = 1,
    CP2P__YAMUX_PING = 2,
    CP2P__YAMUX_GO_AWAY = 3,
};

enum {
    CP2P__YAMUX_SYN = 0x1,
    CP2P__YAMUX_ACK = 0x2,
    CP2P__YAMUX_FIN = 0x4,
    CP2P__YAMUX_RST = 0x8,
};

/* GoAway codes (spec.md "Session termination"). Other values are carried through unchanged. */
enum {
    CP2P__YAMUX_GOAWAY_NORMAL = 0,
    CP2P__YAMUX_GOAWAY_PROTO_ERR = 1,
    CP2P__YAMUX_GOAWAY_INTERNAL_ERR = 2,
};

typedef struct cp2p__yamux_hdr {
    uint8_t type;
    uint16_t flags;
    uint32_t stream_id;
    uint32_t length;
} cp2p__yamux_hdr;

/* Decode one header. Returns 12 (bytes consumed), 0 (fewer than 12 bytes: need more), or
 * CP2P_EPROTO with *why set (version not 0, unknown type, or a Data frame longer than
 * `max_window`, the largest receive window we ever grant). Pure function. */
CP2P_NODISCARD ptrdiff_t cp2p__yamux_hdr_decode(cp2p__yamux_hdr *h, const uint8_t *in, size_t len,
                                                uint32_t max_window, const char **why);
/* Encode one header into out[0..11]. */
void cp2p__yamux_hdr_encode(uint8_t out[CP2P__YAMUX_HDR_LEN], uint8_t type, uint16_t flags,
                            uint32_t stream_id, uint32_t length);

/* ---- configuration ---- */

typedef struct cp2p__yamux_config {
    uint32_t initial_window;       /* receive window of a new stream; >= 256 KiB (the spec's) */
    uint32_t max_window;           /* auto-tuning ceiling; initial_window..2^31 */
    bool auto_tune;                /* grow receive windows toward max_window (default true) */
    uint32_t max_inbound_streams;  /* peer-opened streams alive at once; past it: RST */
    uint32_t max_outbound_streams; /* our streams alive at once; past it: open() says EFULL */
    uint32_t max_unacked_inbound;  /* peer-opened streams the app has not accepted; past: RST */
    uint32_t max_unacked_outbound; /* our SYNs not yet ACKed; past it: open() says EFULL */
    uint32_t max_frame;            /* largest Data frame we send, header included; >= 1024 */
    size_t max_session_recv;       /* cap on bytes buffered for all streams; see yamux.c */
    size_t max_out_buffered;       /* write() accepts data while unsent Data frames hold less
                                      memory than this (counted by allocation) */
    uint64_t ping_timeout_ms;      /* a ping without answer yields PING with ETIMEDOUT */
    uint32_t max_pong_backlog;     /* unsent ping answers; past it, answers are dropped */
    /* Abuse budgets (STYLE.md 6.9): token buckets of `burst` tokens refilled at `per_sec`
     * tokens per second; both 1..1000000. Running dry closes the session with CP2P_ELIMIT. */
    uint32_t reset_burst, reset_per_sec;   /* peer-opened streams that the peer resets */
    uint32_t refuse_burst, refuse_per_sec; /* peer SYNs we must refuse (limits, GoAway) */
    uint32_t ping_burst, ping_per_sec;     /* ping requests and unsolicited ping answers */
    uint32_t empty_burst, empty_per_sec;   /* frames that do nothing (no flags, no bytes) */
    uint64_t conn_id;                      /* connection id for log lines */
} cp2p__yamux_config;

/* Fill `cfg` with the defaults from src/util/limits.h. */
void cp2p__yamux_config_default(cp2p__yamux_config *cfg);

/* ---- session ---- */

typedef struct cp2p__yamux cp2p__yamux;
typedef struct cp2p__yamux_stream cp2p__yamux_stream;

/* Create a session. `is_client` is true on the side that initiated the underlying connection
 * (it opens odd stream IDs; the other side even ones, spec.md "StreamID Field"). `cfg` is
 * copied; NULL means the defaults. Returns 0 and sets *out, CP2P_EINVAL (a config value out of
 * range), CP2P_ENOMEM, or CP2P_EIO (libsodium could not be initialised for the stream table's
 * keyed hash). Nothing is sent until the application opens a stream or pings. */
CP2P_NODISCARD int cp2p__yamux_new(const cp2p__yamux_config *cfg, bool is_client,
                                   cp2p__yamux **out);
/* Free the session and every stream, including streams the application has not released (their
 * handles become invalid). NULL is a no-op. */
void cp2p__yamux_free(cp2p__yamux *y);

/* Feed bytes read from the connection. Whole frames are processed, and the payload of a Data
 * frame may be consumed piecewise (the core keeps the "header, then body" sub-state), so the
 * caller only ever keeps back an incomplete header of up to 11 bytes.
 * Returns the bytes consumed (0 when `len` < 12 bytes of a header were given: need more), or a
 * negative cp2p_err with *why set to a static string:
 *   CP2P_EPROTO   the peer broke the protocol; a GoAway(protocol error) is queued;
 *   CP2P_ELIMIT   the peer exhausted an abuse budget; a GoAway(protocol error) is queued;
 *   CP2P_ENOMEM   we could not queue a required answer; a GoAway(internal error) is attempted;
 *   CP2P_ECLOSED  the session had already ended.
 * After an error the session is terminal: flush cp2p__yamux_outv() and close the connection.
 * Every stream then gets a STREAM_RESET event and a SESSION_ERROR event is queued. */
CP2P_NODISCARD ptrdiff_t cp2p__yamux_recv(cp2p__yamux *y, const uint8_t *in, size_t len,
                                          uint64_t now, const char **why);

/* Output. cp2p__yamux_outv() fills up to `max` slices with the bytes to send, in order, and
 * returns how many it filled (0: nothing to send). The slices stay valid, and their bytes
 * unchanged, until cp2p__yamux_out_done() reports them written; calling outv again before that
 * returns the same bytes first. Report written bytes (a prefix of what outv returned) with
 * out_done(n); it returns 0, or CP2P_EINVAL if n exceeds what the last outv returned.
 * cp2p__yamux_out() is outv with one slice. Session pings, ping answers and window updates are
 * placed ahead of data that has not been handed out yet (as go-yamux does for pings), and so
 * are RSTs (once the peer knows the stream) and error GoAways; see "Output" in yamux.c. */
size_t cp2p__yamux_outv(cp2p__yamux *y, cp2p_slice *iov, size_t max);
size_t cp2p__yamux_out(cp2p__yamux *y, cp2p_slice *out);
CP2P_NODISCARD int cp2p__yamux_out_done(cp2p__yamux *y, size_t n);
/* Bytes queued for output and not yet reported written. */
size_t cp2p__yamux_out_pending(const cp2p__yamux *y);
/* Change the output cap (max_out_buffered, >= 1) of a live session: a smaller cap takes effect
 * on the next write. Tests use it to put a connection under back-pressure. */
CP2P_NODISCARD int cp2p__yamux_set_max_out_buffered(cp2p__yamux *y, size_t n);

/* Events. */
typedef enum cp2p__yamux_event_type {
    CP2P__YAMUX_EV_NONE = 0,
    CP2P__YAMUX_EV_STREAM_OPENED,     /* the peer opened `stream`; accept, use or reset it */
    CP2P__YAMUX_EV_STREAM_READABLE,   /* new bytes are buffered: peek/read until empty */
    CP2P__YAMUX_EV_STREAM_REMOTE_FIN, /* the peer will send nothing more (buffered bytes remain) */
    CP2P__YAMUX_EV_STREAM_WRITABLE,   /* a write that was cut short may continue */
    CP2P__YAMUX_EV_STREAM_RESET,      /* the stream is dead: `err` 0 = peer RST (`code`),
                                         CP2P_ELIMIT/ENOMEM = we reset it (receive cap, memory),
                                         other = the session ended with that error */
    CP2P__YAMUX_EV_PING,              /* our ping: `err` 0 and `rtt_ms`, or CP2P_ETIMEDOUT */
    CP2P__YAMUX_EV_GOAWAY,            /* the peer sent GoAway(`code`): no new outbound streams */
    CP2P__YAMUX_EV_SESSION_ERROR,     /* the session ended: `err`, `why` */
} cp2p__yamux_event_type;

typedef struct cp2p__yamux_event {
    cp2p__yamux_event_type type;
    cp2p__yamux_stream *stream; /* stream events, else NULL */
    uint32_t stream_id;
    void *user;                 /* the stream's user pointer at the time of the call */
    uint32_t code;              /* STREAM_RESET: peer's code (go-yamux sends it); GOAWAY: code */
    int err;
    uint64_t rtt_ms;
    const char *why;            /* SESSION_ERROR: static string */
} cp2p__yamux_event;

/* Take the next event; returns false when there is none. Stream events are coalesced: a
 * stream has at most one pending event of each kind, delivered in the order OPENED, READABLE,
 * REMOTE_FIN, WRITABLE, RESET. Session events come before stream events. */
bool cp2p__yamux_next_event(cp2p__yamux *y, cp2p__yamux_event *ev);
/* True when next_event() has something: out_done() can raise WRITABLE, so a binding that
 * reports written output must look again afterwards. */
bool cp2p__yamux_has_events(const cp2p__yamux *y);

/* Timers: the next time cp2p__yamux_on_timeout() must run, or UINT64_MAX. on_timeout() may
 * queue events (a PING with CP2P_ETIMEDOUT). */
uint64_t cp2p__yamux_deadline(const cp2p__yamux *y);
void cp2p__yamux_on_timeout(cp2p__yamux *y, uint64_t now);

/* Send a ping (spec.md "Ping"); the answer arrives as a PING event with the RTT. Only one ping is
 * in flight: while one is, this returns 0 and sends nothing (the coming event answers both, as in
 * go-yamux and js). Returns 0, CP2P_ECLOSED (session ended) or CP2P_ENOMEM. Keepalive policy is
 * the binding's: it calls this on its own timer. */
CP2P_NODISCARD int cp2p__yamux_ping(cp2p__yamux *y, uint64_t now);
/* Smoothed round-trip time in ms from pings and window-update probes; false if none measured. */
bool cp2p__yamux_rtt(const cp2p__yamux *y, uint64_t *rtt_ms);
/* The same in microseconds. */
bool cp2p__yamux_rtt_us(const cp2p__yamux *y, uint64_t *rtt_us);
/* Offer a finer clock (microseconds, the same origin as the `now` in ms passed elsewhere:
 * now_us / 1000 is that now). RTT samples and window auto-tuning use it; without it they see
 * whole milliseconds, so on a LAN or loopback every RTT reads as 1 ms and receive windows grow
 * to ~1 ms of bandwidth, which is queueing, not throughput. Never moves the clock back. */
void cp2p__yamux_set_clock_us(cp2p__yamux *y, uint64_t now_us);

/* Send GoAway(`code`): the peer's new streams are refused (RST) and open() fails with
 * CP2P_ECLOSED; existing streams continue. Returns 0, CP2P_ESTATE (already sent), CP2P_ECLOSED
 * or CP2P_ENOMEM. To end the session, flush the output and close the connection. */
CP2P_NODISCARD int cp2p__yamux_goaway(cp2p__yamux *y, uint32_t code);
/* The connection is gone (read error, EOF, local close): end the session with `err` (< 0).
 * Output is dropped, every live stream gets STREAM_RESET with `err`, and a SESSION_ERROR event is
 * queued. No-op on an ended session. */
void cp2p__yamux_abort(cp2p__yamux *y, int err);
/* True once the session has ended (error or abort). */
bool cp2p__yamux_closed(const cp2p__yamux *y);
/* Stream objects alive (not yet freed): held by the application, awaiting its first event, or
 * kept by the core after release until the peer closes. */
size_t cp2p__yamux_num_streams(const cp2p__yamux *y);

/* ---- streams ---- */

/* Open a stream: queues its SYN (a WindowUpdate, as go-yamux and js send it) and returns the
 * handle, usable at once (spec.md "Opening a stream": data may follow the SYN before the ACK).
 * Returns 0, CP2P_ECLOSED (session ended, or a GoAway was sent or received), CP2P_EFULL (too many
 * outbound streams, or too many unacknowledged SYNs: retry after a stream closes or is ACKed),
 * CP2P_ELIMIT (stream IDs exhausted) or CP2P_ENOMEM. */
CP2P_NODISCARD int cp2p__yamux_stream_open(cp2p__yamux *y, void *user,
                                           cp2p__yamux_stream **out);
/* Accept a stream announced by STREAM_OPENED: sends its ACK. Any other frame we send on the
 * stream (write, close_write, a window update after a read) also carries the ACK and so also
 * accepts it. Until accepted the stream counts against max_unacked_inbound. Returns 0 (also when
 * already accepted), CP2P_EINVAL (our own stream), CP2P_ECANCELED (reset) or CP2P_ENOMEM. */
CP2P_NODISCARD int cp2p__yamux_stream_accept(cp2p__yamux_stream *s);
/* Write: copies up to `len` bytes into Data frames, limited by the peer's window for this stream
 * and by the session's unsent-output cap, and returns the number of bytes accepted (0..len). The
 * caller keeps the rest and retries on STREAM_WRITABLE. Returns CP2P_ECLOSED (close_write was
 * called, or the session ended), CP2P_ECANCELED (stream reset) or CP2P_ENOMEM (nothing
 * accepted). The bytes are copied once, into the frames that cp2p__yamux_outv() returns. */
CP2P_NODISCARD ptrdiff_t cp2p__yamux_stream_write(cp2p__yamux_stream *s, const void *data,
                                                  size_t len);
/* Receive side. peek() points out[0..1] at the buffered bytes (two slices when the ring wraps)
 * and returns how many slices it filled; the bytes stay valid until the next call on this
 * session. consumed(n) drops n peeked bytes and returns their window to the peer (this, and only
 * this, sends window updates and drives auto-tuning). read() copies and consumes.
 * Window is returned once a quarter of the window is owed, so an application that waits for a
 * whole message before consuming must accept messages up to 3/4 of the initial window (192 KiB)
 * or consume partial messages; go-yamux's threshold is a half. */
size_t cp2p__yamux_stream_peek(const cp2p__yamux_stream *s, cp2p_slice out[2]);
/* Returns 0, or CP2P_EINVAL if n exceeds the buffered bytes, CP2P_ENOMEM (window update could not
 * be queued: the session has failed). */
CP2P_NODISCARD int cp2p__yamux_stream_consumed(cp2p__yamux_stream *s, size_t n, uint64_t now);
/* Returns bytes copied (0 when nothing is buffered: see stream_eof), CP2P_ECANCELED (reset),
 * CP2P_ENOMEM (as consumed). */
CP2P_NODISCARD ptrdiff_t cp2p__yamux_stream_read(cp2p__yamux_stream *s, void *buf, size_t cap,
                                                 uint64_t now);
/* True when the peer sent FIN and every buffered byte was consumed. */
bool cp2p__yamux_stream_eof(const cp2p__yamux_stream *s);
/* Half-close our direction (FIN, sent on a WindowUpdate as go-yamux and js do). Returns 0 (also
 * when already closed), CP2P_ECANCELED (reset), CP2P_ECLOSED (session ended), CP2P_ENOMEM. */
CP2P_NODISCARD int cp2p__yamux_stream_close_write(cp2p__yamux_stream *s);
/* Reset both directions (RST on a WindowUpdate whose length carries `code`, as go-yamux does;
 * js sends 0). Buffered bytes are dropped; no STREAM_RESET event follows. Returns 0 (also when
 * already reset or the session has ended) or CP2P_ENOMEM. */
CP2P_NODISCARD int cp2p__yamux_stream_reset(cp2p__yamux_stream *s, uint32_t code);
/* The application is done with the handle, which is invalid on return. If we have not sent FIN
 * the stream is reset first. If we have, the core keeps the stream internally, discarding (and
 * re-crediting) what the peer still sends, until the peer's FIN or RST, like go-yamux's Close().
 * Pending events for the stream are dropped. NULL is a no-op. */
void cp2p__yamux_stream_release(cp2p__yamux_stream *s);

uint32_t cp2p__yamux_stream_id(const cp2p__yamux_stream *s);
void *cp2p__yamux_stream_user(const cp2p__yamux_stream *s);
void cp2p__yamux_stream_set_user(cp2p__yamux_stream *s, void *user);

typedef struct cp2p__yamux_stream_info {
    uint32_t id;
    bool outbound;      /* we opened it */
    bool acked;         /* outbound: the peer's ACK arrived; inbound: we sent ours */
    bool local_fin, remote_fin, reset;
    size_t buffered;    /* bytes received and not consumed */
    uint64_t send_window; /* bytes write() could send now, ignoring the output cap */
    uint32_t recv_window; /* current receive window size (grows with auto-tuning) */
    uint32_t recv_credit; /* bytes the peer may still send before our next update */
} cp2p__yamux_stream_info;
void cp2p__yamux_stream_get_info(const cp2p__yamux_stream *s, cp2p__yamux_stream_info *info);

/* ---- counters (STYLE.md section 9: the log tag of a kind is "yamux.<name>") ---- */

typedef enum cp2p__yamux_perr {
    CP2P__YAMUX_PERR_VERSION,        /* bad_version: version byte not 0 */
    CP2P__YAMUX_PERR_TYPE,           /* bad_type: frame type not 0..3 */
    CP2P__YAMUX_PERR_STREAM_ZERO,    /* bad_stream_id: data/update on 0, ping/goaway off 0 */
    CP2P__YAMUX_PERR_PARITY,         /* wrong_parity: the peer opened an ID of our parity */
    CP2P__YAMUX_PERR_REUSE,          /* id_reuse: SYN for an ID already used */
    CP2P__YAMUX_PERR_UNOPENED,       /* never_opened: frame for an ID never opened */
    CP2P__YAMUX_PERR_WINDOW,         /* window_exceeded: data beyond the receive window */
    CP2P__YAMUX_PERR_DATA_AFTER_FIN, /* data_after_fin */
    CP2P__YAMUX_PERR_SEND_WINDOW,    /* window_overflow: updates push our send window > 2^32-1 */
    CP2P__YAMUX_PERR_PING_FLAGS,     /* bad_ping: ping with neither or both of SYN and ACK */
    CP2P__YAMUX_PERR_RESET_FLOOD,    /* reset_flood: reset budget exhausted */
    CP2P__YAMUX_PERR_REFUSE_FLOOD,   /* open_flood: refused-SYN budget exhausted */
    CP2P__YAMUX_PERR_PING_FLOOD,     /* ping_flood: ping budget exhausted */
    CP2P__YAMUX_PERR_EMPTY_FLOOD,    /* empty_flood: empty-frame budget exhausted */
    CP2P__YAMUX_PERR_COUNT
} cp2p__yamux_perr;

/* "bad_version", ... (static). */
const char *cp2p__yamux_perr_name(cp2p__yamux_perr kind);

typedef struct cp2p__yamux_stats {
    uint64_t frames_in, frames_out;
    uint64_t data_bytes_in, data_bytes_out; /* Data payload bytes */
    uint64_t streams_opened_local, streams_opened_remote;
    uint64_t streams_refused;        /* peer SYNs answered with RST (limits, GoAway, memory) */
    uint64_t refusals_unsent;        /* of those, RSTs not queued: control backlog too long */
    uint64_t streams_reset_remote, streams_reset_local;
    uint64_t frames_discarded;       /* frames for closed, reset or refused streams */
    uint64_t bytes_discarded;        /* their payload, and payload for released streams */
    uint64_t window_updates_in, window_updates_out;
    uint64_t window_stalls;          /* writes cut short by the peer's window */
    uint64_t out_stalls;             /* writes cut short by max_out_buffered */
    uint64_t window_growths, window_growth_denied; /* auto-tuning; denied = session cap */
    uint64_t recv_cap_resets;        /* streams reset because max_session_recv was reached */
    uint64_t pings_sent, pongs_sent, pongs_dropped, pongs_unmatched, ping_timeouts;
    uint64_t alloc_failures;
    uint64_t proto_errors[CP2P__YAMUX_PERR_COUNT];
} cp2p__yamux_stats;

const cp2p__yamux_stats *cp2p__yamux_get_stats(const cp2p__yamux *y);

#endif
