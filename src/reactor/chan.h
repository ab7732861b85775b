/* The channel core of one peer (seed 004: CometBFT's MConnection, without its stalls), sans-I/O.
 *
 * A peer has the switch's channels (ids 0..255, each with a priority, a send queue capacity in
 * messages, a receive queue capacity in messages, a receive buffer in bytes and a largest
 * message). Each channel rides on its own yamux stream each way (docs/CHANNELS.md says why);
 * the binding (reactor_uv.c) owns the streams and moves bytes, this core decides everything:
 *
 *   send:    cp2p__chan_send() copies a message into the channel's queue (send_cap messages
 *            besides the one being sent), or parks the caller as a waiter with a deadline, or
 *            refuses (try_send: timeout 0). cp2p__chan_next_packet() hands out the next packet
 *            (at most `packet` bytes of one message, uvarint length prefix included) for the
 *            channel chosen by deficit round robin over the channels' priorities (the one
 *            scheduler of cp2p, muxer/sched.h), so with the send rate limit a bulk channel
 *            cannot take every token. A channel's stream holds at most `stream_backlog` bytes
 *            not yet written; under it the connection's own stream scheduler orders the
 *            channels by the same priorities, so a large message holds a higher-priority small
 *            one back by at most one packet. cp2p__chan_written() reports completed writes.
 *   receive: cp2p__chan_recv() takes the bytes read from a channel's stream into that
 *            channel's buffer and counts complete messages (the one fuzzed frame reader,
 *            util/frame.c, with the channel's largest message); cp2p__chan_take()/taken() hand
 *            them to Receive one at a time. cp2p__chan_read_wanted() says when a channel must
 *            stop reading: its queue holds recv_cap messages, or recv_buffer bytes with a
 *            complete message among them, or the peer's receive rate is exhausted. Only that
 *            channel stops (yamux's window then pushes back on the sender); the keepalive
 *            never does.
 *   rates:   per-peer token buckets (util/token_bucket.h) for bytes sent and received; nothing
 *            sleeps: next_packet returns nothing and cp2p__chan_deadline() says when to try
 *            again; received bytes beyond the tokens become a debt that pauses reading until
 *            it is paid. Time spent throttled is counted.
 *   keepalive: a ping every ping_interval_ms on its own stream (uvarint length 1, then 0x01
 *            ping or 0x02 pong), a pong owed for each ping (at most 4 owed: more pings are
 *            ignored and counted), and a DEAD event "pong timeout" when no pong came within
 *            pong_timeout_ms of a ping.
 *   events:  cp2p__chan_next_event(): a waiter's outcome (queued, timed out, closed, channel
 *            refused by the peer) and DEAD.
 *
 * No clock, no I/O, no callbacks: `now` (ms) is an argument. One owner thread. */
#ifndef CP2P_REACTOR_CHAN_H
#define CP2P_REACTOR_CHAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cp2p/common.h>

/* Bytes of one keepalive message on the wire (length prefix 1, type). */
#define CP2P__CHAN_KA_MSG 2
/* Most keepalive bytes one cp2p__chan_keepalive_out() returns: the owed pongs and a ping. */
#define CP2P__CHAN_KA_OUT_MAX (5 * CP2P__CHAN_KA_MSG)
/* Pongs owed at once; pings past it are ignored and counted (our abuse budget). */
#define CP2P__CHAN_KA_MAX_OWED 4

typedef struct cp2p__chan_desc {
    uint8_t id;
    uint8_t priority;     /* 1..16: the channel's weight, here and on its stream */
    uint32_t send_cap;    /* messages queued besides the one being sent (>= 1) */
    uint32_t recv_cap;    /* complete messages waiting for Receive (>= 1) */
    size_t recv_buffer;   /* bytes buffered before reading pauses, once a message is complete */
    size_t max_msg;       /* largest message body, both ways (>= 1) */
} cp2p__chan_desc;

typedef struct cp2p__chan_config {
    const cp2p__chan_desc *chans; /* borrowed: must outlive every peer made with it */
    size_t n_chans;               /* 1..256 */
    size_t packet;                /* bytes per packet (>= 64) */
    size_t stream_backlog;        /* bytes a channel's stream may hold unwritten (>= packet) */
    uint32_t max_waiters;         /* send() callers waiting per channel (>= 1) */
    uint32_t send_rate, send_burst; /* bytes/s and bucket size; rate 0 = no limit */
    uint32_t recv_rate, recv_burst; /* the same for received bytes */
    uint64_t ping_interval_ms;    /* 0 = no keepalive */
    uint64_t pong_timeout_ms;     /* >= 1 when ping_interval_ms > 0 */
    size_t rx_slack;              /* bytes one read may add past the pause threshold */
} cp2p__chan_config;

typedef enum cp2p__chan_event_type {
    CP2P__CHAN_EV_SEND_DONE = 1, /* a waiting send(): token, status 0 (queued), CP2P_ETIMEDOUT,
                                  * CP2P_ECLOSED (peer closed), CP2P_ENOTSUP (peer refused the
                                  * channel) */
    CP2P__CHAN_EV_DEAD,          /* the peer must go: why ("pong timeout", ...) */
} cp2p__chan_event_type;

typedef struct cp2p__chan_event {
    cp2p__chan_event_type type;
    size_t ch;       /* channel index (SEND_DONE) */
    uint64_t token;  /* the send()'s token (SEND_DONE) */
    int status;
    const char *why; /* static (DEAD) */
} cp2p__chan_event;

/* Per channel. Levels are "now"; the rest only grow. */
typedef struct cp2p__chan_ch_stats {
    uint64_t msgs_sent, bytes_sent;         /* messages fully handed to the stream; bytes
                                             * handed (length prefixes included) */
    uint64_t msgs_received, bytes_received; /* complete messages read; bytes read */
    uint64_t msgs_delivered;                /* messages Receive took */
    uint64_t send_timeouts;                 /* waiting sends that timed out */
    uint64_t try_send_refused;              /* try_send on a full queue */
    uint64_t waiters_refused;               /* send on a full queue with max_waiters waiting */
    uint64_t too_large;                     /* sends over the channel's largest message */
    uint64_t send_dropped;                  /* queued or half-sent messages lost (stream died,
                                             * channel refused, peer closed) */
    uint64_t oversized, malformed, overflow;  /* inbound streams failed: length over the
                                             * maximum, bad prefix, read past the slack */
    uint64_t truncated;                     /* inbound streams that ended inside a message */
    uint64_t read_pauses;                   /* times the channel stopped reading (queue full) */
    uint64_t send_queued, send_waiting;     /* level: queued messages (+ the one being sent),
                                             * waiting senders */
    uint64_t recv_queued, recv_buffered;    /* level: complete messages, bytes buffered */
} cp2p__chan_ch_stats;

typedef struct cp2p__chan_stats {
    uint64_t bytes_sent, bytes_received;      /* channel bytes, both ways (keepalive excluded) */
    uint64_t send_throttled_ms, recv_throttled_ms; /* time spent waiting for tokens */
    uint64_t pings_sent, pongs_received, pongs_sent, pings_ignored;
    uint64_t rtt_ms;                          /* last ping round trip (0: none yet) */
    uint64_t keepalive_malformed;
} cp2p__chan_stats;

typedef struct cp2p__chan_packet {
    size_t ch;          /* channel index */
    const uint8_t *ptr; /* valid until the next call on the peer */
    size_t len;
} cp2p__chan_packet;

typedef struct cp2p__chan_peer cp2p__chan_peer;

/* Check a configuration. Returns 0 or CP2P_EINVAL (with *why). */
CP2P_NODISCARD int cp2p__chan_config_check(const cp2p__chan_config *cfg, const char **why);
/* A peer at `now`. Returns 0 and *out, CP2P_EINVAL (bad config), CP2P_ENOMEM. */
CP2P_NODISCARD int cp2p__chan_peer_new(const cp2p__chan_config *cfg, uint64_t now,
                                       cp2p__chan_peer **out);
/* Free, with everything queued. NULL is a no-op. */
void cp2p__chan_peer_free(cp2p__chan_peer *p);
/* The channel index of `id`, or -1 when no channel has it. */
int cp2p__chan_index(const cp2p__chan_peer *p, uint8_t id);

/* ---- send ---- */
/* Queue data[0..len) (copied) on channel `ch`. timeout_ms 0 is try_send. Returns 0 (queued),
 * 1 (waiting: a SEND_DONE event with `token` follows), CP2P_EFULL (try_send on a full queue, or
 * max_waiters already wait), CP2P_ELIMIT (over the channel's largest message), CP2P_ENOTSUP
 * (the peer refused the channel), CP2P_ECLOSED (peer closed), CP2P_EINVAL (ch out of range),
 * CP2P_ENOMEM. Each refusal is counted. */
CP2P_NODISCARD int cp2p__chan_send(cp2p__chan_peer *p, size_t ch, const void *data, size_t len,
                                   uint64_t now, uint64_t timeout_ms, uint64_t token);
/* The next packet to write on its channel's stream: 1 and *out, or 0 (nothing can go now:
 * nothing queued, no open stream, backlogs full, or out of send tokens: see deadline). */
int cp2p__chan_next_packet(cp2p__chan_peer *p, uint64_t now, cp2p__chan_packet *out);
/* `n` bytes of channel `ch` handed out earlier were written (or dropped with the stream). */
void cp2p__chan_written(cp2p__chan_peer *p, size_t ch, size_t n);
/* The channel's outbound stream is open (up) or gone (down: a half-sent message is lost and
 * counted; what is queued waits for the next stream). */
void cp2p__chan_stream_up(cp2p__chan_peer *p, size_t ch);
void cp2p__chan_stream_down(cp2p__chan_peer *p, size_t ch);
/* The peer refused the channel (no reactor there): queued messages are dropped, waiters get
 * CP2P_ENOTSUP, later sends fail with it. */
void cp2p__chan_refused(cp2p__chan_peer *p, size_t ch);
/* The channel has something to send and no stream: the binding should open one. */
bool cp2p__chan_wants_stream(const cp2p__chan_peer *p, size_t ch);

/* ---- receive ---- */
/* Bytes read from the channel's inbound stream. Returns 0, or (the stream must be reset; the
 * complete messages already read stay queued, the partial one is dropped) CP2P_ELIMIT (a
 * declared length over the channel's largest message, or past the buffer's slack), CP2P_EPROTO
 * (malformed length), each counted, or CP2P_ENOMEM (the buffer could not grow); with *why. */
CP2P_NODISCARD int cp2p__chan_recv(cp2p__chan_peer *p, size_t ch, const uint8_t *data,
                                   size_t len, uint64_t now, const char **why);
/* The inbound stream of the channel ended (EOF or reset): a partial message is dropped and
 * counted as truncated. */
void cp2p__chan_recv_end(cp2p__chan_peer *p, size_t ch);
/* Should the channel's inbound stream be read now? False while its queue is full or the
 * peer's receive rate is exhausted (the debt is paid from the bucket here). */
bool cp2p__chan_read_wanted(cp2p__chan_peer *p, size_t ch, uint64_t now);
/* The oldest complete message of the channel: 1 and *msg (borrowed until taken() or the next
 * recv on the channel), 0 when none. */
int cp2p__chan_take(const cp2p__chan_peer *p, size_t ch, cp2p_slice *msg);
/* Receive is done with the message take() returned. */
void cp2p__chan_taken(cp2p__chan_peer *p, size_t ch);

/* ---- keepalive ---- */
/* Bytes read from the peer's keepalive stream. Returns 0, or CP2P_EPROTO with *why (a
 * keepalive message that is not a ping or a pong: the peer must go). */
CP2P_NODISCARD int cp2p__chan_keepalive_recv(cp2p__chan_peer *p, const uint8_t *data, size_t len,
                                             uint64_t now, const char **why);
/* Keepalive bytes to write now (owed pongs, a due ping) into out; returns their count. */
size_t cp2p__chan_keepalive_out(cp2p__chan_peer *p, uint8_t out[CP2P__CHAN_KA_OUT_MAX]);

/* ---- time, events, stats ---- */
/* When cp2p__chan_on_timeout must run next (ping due, pong deadline, a waiter's deadline,
 * send tokens back, receive debt paid), or UINT64_MAX. */
uint64_t cp2p__chan_deadline(const cp2p__chan_peer *p, uint64_t now);
void cp2p__chan_on_timeout(cp2p__chan_peer *p, uint64_t now);
/* Next event: 1 and *ev, or 0. */
int cp2p__chan_next_event(cp2p__chan_peer *p, cp2p__chan_event *ev);
/* Stop: waiters get CP2P_ECLOSED, later sends fail with it; queued bytes stay until free. */
void cp2p__chan_close(cp2p__chan_peer *p);
void cp2p__chan_stats_get(const cp2p__chan_peer *p, cp2p__chan_stats *out);
void cp2p__chan_ch_stats_get(const cp2p__chan_peer *p, size_t ch, cp2p__chan_ch_stats *out);

#endif
