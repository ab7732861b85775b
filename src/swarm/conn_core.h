/* The connection core: one libp2p connection's upgrade pipeline and its established session,
 * sans-I/O (STYLE.md section 7), as noise.h, yamux.h and gs_router.h are.
 *
 *   SEC_NEG  multistream-select of /noise, in the clear
 *   NOISE    the Noise XX handshake (the peer's identity; early muxer negotiation)
 *   MUX_NEG  multistream-select of /yamux/1.0.0 inside Noise (skipped when Noise agreed it)
 *   OPEN     yamux over Noise, with the keepalive ping
 *
 * It is fed the bytes read from the byte stream and a time in milliseconds, and gives back the
 * bytes to write, two events (SECURED: the peer's identity is known; OPEN: yamux runs) and the
 * next time its timers must run. No socket, no clock, no callback: the binding (conn_uv.c)
 * moves bytes between the core and a transport connection (transport/transport.h: TCP or the
 * memory network), arms one timer for cp2p__conn_core_deadline(), and turns events into host
 * events. Stream-level work (per-stream multistream-select, the write scheduler, the
 * application's callbacks) runs over the yamux session the core exposes once OPEN.
 *
 * Driving it:
 *   1. cp2p__conn_core_new(&cfg, now, &core). The dialer's first multistream message (and the
 *      listener's header) is queued at once: drain the output (step 3).
 *   2. For each read: cp2p__conn_core_feed(core, bytes, n, now, &why) (or read_buf() +
 *      read_done() + process()). An error return is the connection's end (close it; for an
 *      established session yamux queued a GoAway worth sending first).
 *   3. After any call: cp2p__conn_core_flush(core, take_mux) moves pending negotiation and
 *      (when take_mux) yamux output into Noise; then while cp2p__conn_core_out() gives bytes,
 *      write them and report them with out_done(). Repeat while out gave bytes.
 *   4. Drain events with cp2p__conn_core_next_event(); once OPEN, drain yamux's own events
 *      (cp2p__yamux_next_event on cp2p__conn_core_yamux()).
 *   5. At cp2p__conn_core_deadline(): cp2p__conn_core_on_timeout(core, now, &why).
 *
 * Limits: buffered input is bounded by cfg.max_input (read_buf says CP2P_ELIMIT past it);
 * negotiation messages by mss.h, Noise frames by noise.h, the session by the yamux config.
 * One owner thread. */
#ifndef CP2P_SWARM_CONN_CORE_H
#define CP2P_SWARM_CONN_CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cp2p/buf.h>
#include <cp2p/keys.h>
#include <cp2p/peer_id.h>

#include "muxer/yamux.h"

#define CP2P__CONN_YAMUX_ID "/yamux/1.0.0"

typedef enum cp2p__conn_stage {
    CP2P__CONN_SEC_NEG,
    CP2P__CONN_NOISE,
    CP2P__CONN_MUX_NEG,
    CP2P__CONN_OPEN,
    CP2P__CONN_FAILED, /* terminal: process/on_timeout returned an error */
} cp2p__conn_stage;

typedef struct cp2p__conn_core_config {
    bool outbound;                 /* we dialled: the multistream dialer and Noise initiator */
    const cp2p_privkey *identity;  /* borrowed for the core's life: signs our Noise static key */
    const cp2p_peer_id *expected;  /* the peer we dialled (copied), NULL when any */
    uint64_t upgrade_timeout_ms;   /* SEC_NEG..MUX_NEG must end this long after new() */
    uint64_t keepalive_ms;         /* yamux ping interval once OPEN; 0 = none */
    bool ping_at_open;             /* one yamux ping as soon as OPEN, for the RTT (true) */
    size_t max_input;              /* bytes of unconsumed input held (CP2P_CONN_RBUF_MAX) */
    cp2p__yamux_config yamux;      /* the session's settings (copied) */
    /* Tests and fuzzers only (noise.h): fixed X25519 static and ephemeral keys, 32 bytes
     * each, borrowed until SECURED; NULL in production (fresh keys). */
    const uint8_t *noise_static_key, *noise_ephemeral_key;
    uint64_t conn_id;              /* for log lines */
} cp2p__conn_core_config;

/* Defaults: the host's defaults (src/util/limits.h), outbound false, identity NULL. */
void cp2p__conn_core_config_default(cp2p__conn_core_config *cfg);

typedef struct cp2p__conn_core cp2p__conn_core;

typedef enum cp2p__conn_event_type {
    CP2P__CONN_EV_NONE = 0,
    CP2P__CONN_EV_SECURED, /* Noise done: remote_peer/remote_pubkey are valid */
    CP2P__CONN_EV_OPEN,    /* yamux runs: cp2p__conn_core_yamux() is not NULL */
} cp2p__conn_event_type;

typedef struct cp2p__conn_core_stats {
    uint64_t bytes_in, bytes_out;  /* wire bytes taken by process / reported by out_done */
    uint64_t keepalive_pings;      /* pings sent by the keepalive timer */
} cp2p__conn_core_stats;

/* Returns 0 and *out, CP2P_EINVAL (NULL identity, a bad config value), CP2P_ENOMEM. */
CP2P_NODISCARD int cp2p__conn_core_new(const cp2p__conn_core_config *cfg, uint64_t now,
                                       cp2p__conn_core **out);
/* Frees Noise (wiping its keys), yamux with every stream, and the buffers. NULL allowed. */
void cp2p__conn_core_free(cp2p__conn_core *c);

/* Input without a copy into the core's own buffer (tests use it; the binding uses feed).
 * Room for up to `want` bytes of input at the end of the buffered input. Returns 0 with *p,
 * CP2P_ELIMIT (the peer sent more than max_input that we could not consume yet), CP2P_ENOMEM. */
CP2P_NODISCARD int cp2p__conn_core_read_buf(cp2p__conn_core *c, size_t want, uint8_t **p);
/* `n` bytes (<= want) were written at the pointer read_buf gave. */
void cp2p__conn_core_read_done(cp2p__conn_core *c, size_t n);
/* read_buf + memcpy + read_done, for tests and fuzzers. Same errors as read_buf. */
CP2P_NODISCARD int cp2p__conn_core_input(cp2p__conn_core *c, const uint8_t *p, size_t len);

/* Feed bytes read into a buffer the caller reuses (the host's one read buffer): they are
 * processed in place, and only what cannot be consumed yet (a frame cut by the read) is copied
 * into the core's own buffer, which holds no memory between reads otherwise. A frame cut
 * earlier is completed from `p` first. Same results as process(), and CP2P_ELIMIT (the core
 * FAILED) when what must be held passes max_input. */
CP2P_NODISCARD int cp2p__conn_core_feed(cp2p__conn_core *c, const uint8_t *p, size_t len,
                                        uint64_t now, const char **why);

/* Consume buffered input through the stages. Returns 1 when something happened (call again),
 * 0 when nothing more can be done with the input held, or a negative cp2p_err with *why set
 * (static string) after which the core is FAILED: CP2P_EPROTO, CP2P_ELIMIT (negotiation,
 * Noise or yamux limits), CP2P_ENOTSUP (no protocol in common), CP2P_EPEERID,
 * CP2P_EBADSIG, CP2P_ENOMEM; what yamux's recv returns once OPEN. */
CP2P_NODISCARD int cp2p__conn_core_process(cp2p__conn_core *c, uint64_t now, const char **why);

/* Move pending output into Noise: negotiation messages always, yamux output when `take_mux`
 * (the binding's back-pressure: false while its transport holds too much). Returns 0, or a
 * negative cp2p_err (the core is FAILED). */
CP2P_NODISCARD int cp2p__conn_core_flush(cp2p__conn_core *c, bool take_mux);
/* The next bytes to write (0 when none); stable until out_done. */
size_t cp2p__conn_core_out(cp2p__conn_core *c, cp2p_slice *out);
void cp2p__conn_core_out_done(cp2p__conn_core *c, size_t n);
/* The same bytes handed over in their buffer, saving a copy (cp2p__noise_out_take): true with
 * *ptr (the caller frees it, cp2p_free) and *len, which count as written; false when none
 * wait, or only what remains of output already partly marked done with out_done. */
bool cp2p__conn_core_out_take(cp2p__conn_core *c, uint8_t **ptr, size_t *len);
/* A buffer that out_take handed over, written: reused for the next output once the session is
 * encrypted (cp2p__noise_out_give), else freed. */
void cp2p__conn_core_out_give(cp2p__conn_core *c, uint8_t *ptr, size_t len);

bool cp2p__conn_core_next_event(cp2p__conn_core *c, cp2p__conn_event_type *ev);

/* The earliest time on_timeout must run, or UINT64_MAX. */
uint64_t cp2p__conn_core_deadline(const cp2p__conn_core *c);
/* Run what is due: the upgrade deadline and the Noise handshake timer (CP2P_ETIMEDOUT with
 * *why set: the core is FAILED), yamux's timers (a ping unanswered gives yamux's PING event
 * with CP2P_ETIMEDOUT), the keepalive ping (and a trim of Noise's buffers). Returns 0 or
 * CP2P_ETIMEDOUT. */
CP2P_NODISCARD int cp2p__conn_core_on_timeout(cp2p__conn_core *c, uint64_t now,
                                              const char **why);

/* Offer a finer clock, in microseconds of the same origin as `now` (cp2p__yamux_set_clock_us):
 * call it before each feed, process, on_timeout and stream consumption. */
void cp2p__conn_core_set_clock_us(cp2p__conn_core *c, uint64_t now_us);

cp2p__conn_stage cp2p__conn_core_stage(const cp2p__conn_core *c);
/* Valid from SECURED on (NULL before). */
const cp2p_peer_id *cp2p__conn_core_remote_peer(const cp2p__conn_core *c);
const cp2p_pubkey *cp2p__conn_core_remote_pubkey(const cp2p__conn_core *c);
/* Noise started and its handshake not done (also after a failure: which stage failed). */
bool cp2p__conn_core_in_handshake(const cp2p__conn_core *c);
/* The session once OPEN (owned by the core), else NULL. */
cp2p__yamux *cp2p__conn_core_yamux(const cp2p__conn_core *c);
/* Memory the core's input buffer holds now (0 between reads unless a frame was cut). */
size_t cp2p__conn_core_input_held(const cp2p__conn_core *c);
const cp2p__conn_core_stats *cp2p__conn_core_get_stats(const cp2p__conn_core *c);

#endif
