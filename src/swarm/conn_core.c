/* The connection core (conn_core.h): the stages of one connection, fed bytes and a time.
 *
 * Why a core of its own: the upgrade (multistream-select, Noise, multistream-select again)
 * and the established session (yamux, keepalive) used to be driven from the libuv binding
 * directly, so no other transport could carry a connection and the pipeline could only be
 * tested through sockets. Here every stage is a pure function of the bytes and times given;
 * the binding moves bytes. Scripted peers (tests/unit/swarm/test_conn_core.c) and a fuzzer
 * (tests/fuzz/fuzz_conn_core.c) drive it byte-exactly: with fixed Noise keys the whole
 * exchange is deterministic.
 *
 * Ordering rules the binding relied on, kept here:
 *   - the listener's echo of /noise goes out, in the clear, before Noise's first message: at
 *     the end of SEC_NEG the negotiator's output moves to the plain buffer, which out() gives
 *     before anything Noise queued;
 *   - the muxer negotiation's last message (the listener's echo) is taken by Noise whole
 *     before yamux starts: a remainder would be lost with the negotiator, so it is an error;
 *   - input after the last negotiation message belongs to the next stage and stays in the
 *     buffer (mss never consumes past DONE). */
#include "swarm/conn_core.h"

#include <string.h>

#include "crypto/noise/noise.h"
#include "negotiate/mss.h"
#include "util/alloc.h"
#include "util/limits.h"

static const char *const SEC_PROTOS[] = {CP2P__NOISE_PROTOCOL_ID};
static const char *const MUX_PROTOS[] = {CP2P__CONN_YAMUX_ID};

#define EV_MAX 4

struct cp2p__conn_core {
    cp2p__conn_core_config cfg;
    cp2p_peer_id expected;
    cp2p__conn_stage stage;
    int fail_err;
    const char *fail_why;
    cp2p__mss mss;          /* security or muxer negotiation (fini'd between and after) */
    bool mss_live;
    cp2p__noise *noise;
    cp2p__yamux *yamux;
    cp2p_buf in;            /* input not yet consumed (held between reads: a partial frame) */
    const uint8_t *cur;     /* the input being processed: in's bytes or the caller's */
    size_t cur_len;
    cp2p_buf plain;         /* output in the clear (the /noise negotiation) */
    uint64_t upgrade_deadline;
    uint64_t next_keepalive; /* 0: none */
    uint64_t clock_us;       /* the binding's finer clock for yamux, 0: none offered */
    uint8_t ev[EV_MAX];
    unsigned ev_head, ev_n;
    cp2p__conn_core_stats stats;
};

void cp2p__conn_core_config_default(cp2p__conn_core_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->upgrade_timeout_ms = CP2P_HOST_UPGRADE_TIMEOUT_MS;
    cfg->keepalive_ms = CP2P_HOST_KEEPALIVE_MS;
    cfg->ping_at_open = true;
    cfg->max_input = CP2P_CONN_RBUF_MAX;
    cp2p__yamux_config_default(&cfg->yamux);
}

static int fail(cp2p__conn_core *c, int err, const char *why)
{
    if (c->stage != CP2P__CONN_FAILED) {
        c->stage = CP2P__CONN_FAILED;
        c->fail_err = err;
        c->fail_why = why;
    }
    return c->fail_err;
}

static void push_event(cp2p__conn_core *c, cp2p__conn_event_type t)
{
    /* At most SECURED and OPEN per connection: the ring never overflows. */
    c->ev[(c->ev_head + c->ev_n) % EV_MAX] = (uint8_t)t;
    c->ev_n++;
}

int cp2p__conn_core_new(const cp2p__conn_core_config *cfg, uint64_t now, cp2p__conn_core **out)
{
    if (cfg == NULL || out == NULL || cfg->identity == NULL || cfg->max_input == 0 ||
        cfg->upgrade_timeout_ms == 0) {
        return CP2P_EINVAL;
    }
    cp2p__conn_core *c = cp2p_calloc(1, sizeof(*c));
    if (c == NULL) {
        return CP2P_ENOMEM;
    }
    c->cfg = *cfg;
    if (cfg->expected != NULL) {
        c->expected = *cfg->expected;
        c->cfg.expected = &c->expected;
    }
    c->stage = CP2P__CONN_SEC_NEG;
    c->upgrade_deadline = now + cfg->upgrade_timeout_ms;
    cp2p_buf_init(&c->in, cfg->max_input);
    cp2p_buf_init(&c->plain, 4096); /* the /noise negotiation: a few short messages */
    int rc = cfg->outbound ? cp2p__mss_init_dialer(&c->mss, SEC_PROTOS, 1, false)
                           : cp2p__mss_init_listener(&c->mss, SEC_PROTOS, 1);
    if (rc != 0) {
        cp2p_buf_fini(&c->in);
        cp2p_free(c);
        return rc;
    }
    c->mss_live = true;
    *out = c;
    return 0;
}

void cp2p__conn_core_free(cp2p__conn_core *c)
{
    if (c == NULL) {
        return;
    }
    if (c->mss_live) {
        cp2p__mss_fini(&c->mss);
    }
    cp2p__yamux_free(c->yamux);
    cp2p__noise_free(c->noise);
    cp2p_buf_fini(&c->in);
    cp2p_buf_fini(&c->plain);
    cp2p_free(c);
}

/* ---- input ---- */

int cp2p__conn_core_read_buf(cp2p__conn_core *c, size_t want, uint8_t **p)
{
    if (c->in.len + want > c->cfg.max_input) {
        /* Room for less than `want` is still room: the transport reads what fits. */
        if (c->in.len >= c->cfg.max_input) {
            return CP2P_ELIMIT;
        }
        want = c->cfg.max_input - c->in.len;
    }
    if (cp2p_buf_reserve(&c->in, want) != 0) {
        return CP2P_ENOMEM;
    }
    *p = c->in.ptr + c->in.len;
    return 0;
}

void cp2p__conn_core_read_done(cp2p__conn_core *c, size_t n)
{
    c->in.len += n;
    c->stats.bytes_in += n;
}

int cp2p__conn_core_input(cp2p__conn_core *c, const uint8_t *p, size_t len)
{
    while (len > 0) {
        uint8_t *dst;
        int rc = cp2p__conn_core_read_buf(c, len, &dst);
        if (rc != 0) {
            return rc;
        }
        size_t room = c->cfg.max_input - c->in.len;
        size_t n = len < room ? len : room;
        memcpy(dst, p, n);
        cp2p__conn_core_read_done(c, n);
        p += n;
        len -= n;
    }
    return 0;
}

/* ---- stages ---- */

static int start_noise(cp2p__conn_core *c, uint64_t now)
{
    cp2p__noise_config nc;
    cp2p__noise_config_default(&nc);
    nc.muxers = MUX_PROTOS;
    nc.n_muxers = 1;
    nc.handshake_timeout_ms = c->cfg.upgrade_timeout_ms;
    nc.conn_id = c->cfg.conn_id;
    nc.static_key = c->cfg.noise_static_key;
    nc.ephemeral_key = c->cfg.noise_ephemeral_key;
    int rc = cp2p__noise_new(&nc, c->cfg.outbound, c->cfg.identity, c->cfg.expected, now,
                             &c->noise);
    if (rc == 0) {
        c->stage = CP2P__CONN_NOISE;
    }
    return rc;
}

static int start_yamux(cp2p__conn_core *c, uint64_t now)
{
    c->cfg.yamux.conn_id = c->cfg.conn_id;
    int rc = cp2p__yamux_new(&c->cfg.yamux, c->cfg.outbound, &c->yamux);
    if (rc != 0) {
        return rc;
    }
    c->stage = CP2P__CONN_OPEN;
    if (c->clock_us != 0) {
        cp2p__yamux_set_clock_us(c->yamux, c->clock_us);
    }
    /* One ping at once: window auto-tuning needs an RTT measured before bulk data can queue
     * behind it (a first sample taken under load would count the queue as distance). */
    if (c->cfg.ping_at_open && cp2p__yamux_ping(c->yamux, now) == 0) {
        c->stats.keepalive_pings++;
    }
    c->next_keepalive = c->cfg.keepalive_ms != 0 ? now + c->cfg.keepalive_ms : 0;
    push_event(c, CP2P__CONN_EV_OPEN);
    return 0;
}

static int on_secured(cp2p__conn_core *c, uint64_t now)
{
    push_event(c, CP2P__CONN_EV_SECURED);
    const char *mux = cp2p__noise_muxer(c->noise);
    if (mux != NULL && strcmp(mux, CP2P__CONN_YAMUX_ID) == 0) {
        return start_yamux(c, now);
    }
    c->stage = CP2P__CONN_MUX_NEG;
    int rc = c->cfg.outbound ? cp2p__mss_init_dialer(&c->mss, MUX_PROTOS, 1, false)
                             : cp2p__mss_init_listener(&c->mss, MUX_PROTOS, 1);
    c->mss_live = rc == 0;
    return rc;
}

/* The negotiator's output through Noise. Returns bytes taken or a negative error. */
static ptrdiff_t mux_neg_flush(cp2p__conn_core *c)
{
    cp2p_slice sl = cp2p__mss_out(&c->mss);
    if (sl.len == 0) {
        return 0;
    }
    ptrdiff_t n = cp2p__noise_write(c->noise, sl.ptr, sl.len);
    if (n > 0) {
        cp2p__mss_out_done(&c->mss, (size_t)n);
    }
    return n;
}

/* SEC_NEG: multistream-select of /noise over the buffered input. */
static int step_sec_neg(cp2p__conn_core *c, uint64_t now, const char **why)
{
    ptrdiff_t n = cp2p__mss_recv(&c->mss, c->cur, c->cur_len, why);
    if (n < 0) {
        return (int)n;
    }
    c->cur += n;
    c->cur_len -= (size_t)n;
    if (cp2p__mss_state_get(&c->mss) != MSS_DONE) {
        return n > 0;
    }
    cp2p_slice sl = cp2p__mss_out(&c->mss);
    if (sl.len > 0 && cp2p_buf_append(&c->plain, sl.ptr, sl.len) != 0) {
        *why = "cannot queue output";
        return CP2P_ENOMEM;
    }
    cp2p__mss_fini(&c->mss);
    c->mss_live = false;
    if (start_noise(c, now) != 0) {
        *why = "cannot start noise";
        return CP2P_ENOMEM;
    }
    return 1;
}

/* One plaintext slice in MUX_NEG or OPEN. Returns bytes consumed or a negative error. */
static ptrdiff_t take_plaintext(cp2p__conn_core *c, cp2p_slice pt, uint64_t now,
                                const char **why)
{
    if (c->stage == CP2P__CONN_OPEN) {
        return cp2p__yamux_recv(c->yamux, pt.ptr, pt.len, now, why);
    }
    if (c->stage != CP2P__CONN_MUX_NEG) {
        *why = "data before the muxer";
        return CP2P_EPROTO;
    }
    ptrdiff_t m = cp2p__mss_recv(&c->mss, pt.ptr, pt.len, why);
    if (m < 0 || cp2p__mss_state_get(&c->mss) != MSS_DONE) {
        return m;
    }
    /* Noise takes the whole echo (its buffer is empty at this stage); a remainder would be
     * lost with the negotiator. */
    ptrdiff_t w = mux_neg_flush(c);
    if (w < 0 || cp2p__mss_out(&c->mss).len > 0) {
        *why = "cannot queue output";
        return w < 0 ? w : CP2P_ENOMEM;
    }
    cp2p__mss_fini(&c->mss);
    c->mss_live = false;
    int rc = start_yamux(c, now);
    if (rc != 0) {
        *why = "cannot start yamux";
        return rc;
    }
    return m;
}

/* NOISE, MUX_NEG, OPEN: decrypt what the input holds and feed the plaintext on. */
static int step_secure(cp2p__conn_core *c, uint64_t now, const char **why)
{
    ptrdiff_t n = cp2p__noise_recv(c->noise, c->cur, c->cur_len, now, why);
    if (n < 0) {
        return (int)n;
    }
    c->cur += n;
    c->cur_len -= (size_t)n;
    int progress = n > 0;
    if (c->stage == CP2P__CONN_NOISE && cp2p__noise_handshake_done(c->noise)) {
        int rc = on_secured(c, now);
        if (rc != 0) {
            *why = "cannot start the muxer";
            return rc;
        }
        progress = 1;
    }
    cp2p_slice pt;
    while (cp2p__noise_read(c->noise, &pt) > 0) {
        cp2p__conn_stage before = c->stage;
        ptrdiff_t m = take_plaintext(c, pt, now, why);
        if (m < 0) {
            return (int)m;
        }
        cp2p__noise_read_done(c->noise, (size_t)m);
        if (m == 0 && c->stage == before) {
            break; /* an incomplete message: wait for more */
        }
        progress = 1;
    }
    return progress;
}

/* Run the stages over c->cur until nothing more happens. */
static int run(cp2p__conn_core *c, uint64_t now, const char **why)
{
    int any = 0;
    for (;;) {
        int r;
        if (c->stage == CP2P__CONN_FAILED) {
            *why = c->fail_why;
            return c->fail_err;
        }
        r = c->stage == CP2P__CONN_SEC_NEG ? step_sec_neg(c, now, why) : step_secure(c, now, why);
        if (r < 0) {
            return fail(c, r, *why);
        }
        if (r == 0) {
            return any;
        }
        any = 1;
    }
}

/* Give the input buffer's memory back once it is empty: a connection holds none between
 * reads unless a frame is cut across them. */
static void in_settle(cp2p__conn_core *c)
{
    if (c->in.len == 0 && c->in.cap > 0) {
        cp2p_buf_fini(&c->in);
    }
}

int cp2p__conn_core_process(cp2p__conn_core *c, uint64_t now, const char **why)
{
    c->cur = c->in.ptr;
    c->cur_len = c->in.len;
    int r = run(c, now, why);
    if (c->in.len > 0) {
        cp2p_buf_consume(&c->in, c->in.len - c->cur_len);
    }
    in_settle(c);
    return r;
}

/* Bytes still missing from the frame that starts the held input (Noise's 2-byte length
 * prefix, in every stage after SEC_NEG), or SIZE_MAX when unknown (SEC_NEG) or complete. */
static size_t frame_need(const cp2p__conn_core *c)
{
    if (c->stage == CP2P__CONN_SEC_NEG) {
        return SIZE_MAX;
    }
    if (c->in.len < 2) {
        return 2 - c->in.len;
    }
    size_t whole = 2 + ((size_t)c->in.ptr[0] << 8 | c->in.ptr[1]);
    return whole > c->in.len ? whole - c->in.len : SIZE_MAX;
}

static int hold(cp2p__conn_core *c, const uint8_t *p, size_t len)
{
    if (len > 0 && cp2p_buf_append(&c->in, p, len) != 0) {
        return fail(c, CP2P_ELIMIT, "peer sent more than we can buffer");
    }
    return 0;
}

int cp2p__conn_core_feed(cp2p__conn_core *c, const uint8_t *p, size_t len, uint64_t now,
                         const char **why)
{
    int any = 0, r;
    if (c->stage == CP2P__CONN_FAILED) {
        *why = c->fail_why;
        return c->fail_err;
    }
    c->stats.bytes_in += len;
    /* A frame cut by the previous read: complete it from p (at most two steps: its length
     * prefix, then its body), process it, and go on in place with the rest. */
    for (int i = 0; i < 2 && c->in.len > 0 && len > 0; i++) {
        size_t take = frame_need(c);
        take = take < len ? take : len;
        if ((r = hold(c, p, take)) != 0) {
            *why = c->fail_why;
            return r;
        }
        p += take;
        len -= take;
    }
    if (c->in.len > 0) {
        if ((r = cp2p__conn_core_process(c, now, why)) < 0) {
            return r;
        }
        any = r;
        if (c->in.len > 0) { /* still not whole (or SEC_NEG's bytes): hold the rest too */
            if ((r = hold(c, p, len)) != 0) {
                *why = c->fail_why;
                return r;
            }
            if (len == 0) {
                return any;
            }
            r = cp2p__conn_core_process(c, now, why);
            return r < 0 ? r : (any | r);
        }
    }
    c->cur = p;
    c->cur_len = len;
    if ((r = run(c, now, why)) < 0) {
        return r;
    }
    if (hold(c, c->cur, c->cur_len) != 0) {
        *why = c->fail_why;
        return c->fail_err;
    }
    return any | r;
}

/* ---- output ---- */

int cp2p__conn_core_flush(cp2p__conn_core *c, bool take_mux)
{
    if (c->stage == CP2P__CONN_FAILED && c->yamux == NULL) {
        return c->fail_err; /* nothing worth sending: no GoAway to deliver */
    }
    if (c->stage == CP2P__CONN_SEC_NEG) {
        cp2p_slice sl = cp2p__mss_out(&c->mss);
        if (sl.len > 0) {
            if (cp2p_buf_append(&c->plain, sl.ptr, sl.len) != 0) {
                return fail(c, CP2P_ENOMEM, "cannot queue output");
            }
            cp2p__mss_out_done(&c->mss, sl.len);
        }
        return 0;
    }
    if (c->noise == NULL) {
        return 0;
    }
    for (;;) {
        bool progress = false;
        if (c->stage == CP2P__CONN_MUX_NEG) {
            ptrdiff_t n = mux_neg_flush(c);
            if (n < 0) {
                return fail(c, (int)n, "cannot queue output");
            }
            progress = n > 0;
        }
        if (c->yamux != NULL && take_mux) {
            cp2p_slice iov[32];
            size_t niov = cp2p__yamux_outv(c->yamux, iov, 32);
            if (niov > 0) {
                ptrdiff_t n = cp2p__noise_writev(c->noise, iov, niov);
                if (n < 0) {
                    return fail(c, (int)n, "cannot queue output");
                }
                if (n > 0) {
                    (void)!cp2p__yamux_out_done(c->yamux, (size_t)n);
                    progress = true;
                }
            }
        }
        if (!progress) {
            return 0;
        }
    }
}

size_t cp2p__conn_core_out(cp2p__conn_core *c, cp2p_slice *out)
{
    if (c->plain.len > 0) {
        *out = cp2p_buf_slice(&c->plain);
        return out->len;
    }
    if (c->noise != NULL) {
        return cp2p__noise_out(c->noise, out);
    }
    out->ptr = NULL;
    out->len = 0;
    return 0;
}

void cp2p__conn_core_out_done(cp2p__conn_core *c, size_t n)
{
    c->stats.bytes_out += n;
    if (c->plain.len > 0) {
        cp2p_buf_consume(&c->plain, n);
        if (c->plain.len == 0) {
            cp2p_buf_fini(&c->plain); /* used once, at the start */
        }
        return;
    }
    cp2p__noise_out_done(c->noise, n);
}

bool cp2p__conn_core_out_take(cp2p__conn_core *c, uint8_t **ptr, size_t *len)
{
    if (c->plain.len > 0) {
        *ptr = c->plain.ptr;
        *len = c->plain.len;
        cp2p_buf_init(&c->plain, c->plain.max);
    } else if (c->noise == NULL || !cp2p__noise_out_take(c->noise, ptr, len)) {
        return false;
    }
    c->stats.bytes_out += *len;
    return true;
}

void cp2p__conn_core_out_give(cp2p__conn_core *c, uint8_t *ptr, size_t len)
{
    if (c->noise != NULL && cp2p__noise_handshake_done(c->noise)) {
        cp2p__noise_out_give(c->noise, ptr, len);
    } else {
        cp2p_free(ptr);
    }
}

/* ---- events and timers ---- */

bool cp2p__conn_core_next_event(cp2p__conn_core *c, cp2p__conn_event_type *ev)
{
    if (c->ev_n == 0) {
        return false;
    }
    *ev = (cp2p__conn_event_type)c->ev[c->ev_head];
    c->ev_head = (c->ev_head + 1) % EV_MAX;
    c->ev_n--;
    return true;
}

static uint64_t min_deadline(uint64_t a, uint64_t b)
{
    return (b != 0 && b < a) ? b : a;
}

uint64_t cp2p__conn_core_deadline(const cp2p__conn_core *c)
{
    uint64_t d = UINT64_MAX;
    if (c->stage == CP2P__CONN_FAILED) {
        return d;
    }
    if (c->stage != CP2P__CONN_OPEN) {
        d = c->upgrade_deadline;
    }
    if (c->noise != NULL && !cp2p__noise_handshake_done(c->noise)) {
        d = min_deadline(d, cp2p__noise_deadline(c->noise));
    }
    if (c->yamux != NULL) {
        d = min_deadline(d, cp2p__yamux_deadline(c->yamux));
        d = min_deadline(d, c->next_keepalive);
    }
    return d;
}

int cp2p__conn_core_on_timeout(cp2p__conn_core *c, uint64_t now, const char **why)
{
    if (c->stage == CP2P__CONN_FAILED) {
        *why = c->fail_why;
        return c->fail_err;
    }
    if (c->stage != CP2P__CONN_OPEN && now >= c->upgrade_deadline) {
        *why = "upgrade timed out";
        return fail(c, CP2P_ETIMEDOUT, *why);
    }
    if (c->noise != NULL && !cp2p__noise_handshake_done(c->noise) &&
        cp2p__noise_on_timeout(c->noise, now) != 0) {
        *why = "noise handshake timed out";
        return fail(c, CP2P_ETIMEDOUT, *why);
    }
    if (c->yamux != NULL) {
        cp2p__yamux_on_timeout(c->yamux, now);
        if (c->next_keepalive != 0 && now >= c->next_keepalive) {
            (void)!cp2p__yamux_ping(c->yamux, now);
            c->stats.keepalive_pings++;
            c->next_keepalive = now + c->cfg.keepalive_ms;
            /* Give back the Noise buffers a burst grew while they are empty: after one 64 KiB
             * message they hold ~256 KiB for the life of the connection otherwise. */
            cp2p__noise_trim(c->noise);
        }
    }
    return 0;
}

/* ---- accessors ---- */

cp2p__conn_stage cp2p__conn_core_stage(const cp2p__conn_core *c)
{
    return c->stage;
}

const cp2p_peer_id *cp2p__conn_core_remote_peer(const cp2p__conn_core *c)
{
    return c->noise != NULL && cp2p__noise_handshake_done(c->noise)
               ? cp2p__noise_remote_peer_id(c->noise)
               : NULL;
}

const cp2p_pubkey *cp2p__conn_core_remote_pubkey(const cp2p__conn_core *c)
{
    return c->noise != NULL && cp2p__noise_handshake_done(c->noise)
               ? cp2p__noise_remote_pubkey(c->noise)
               : NULL;
}

bool cp2p__conn_core_in_handshake(const cp2p__conn_core *c)
{
    return c->noise != NULL && !cp2p__noise_handshake_done(c->noise);
}

cp2p__yamux *cp2p__conn_core_yamux(const cp2p__conn_core *c)
{
    return c->yamux;
}

size_t cp2p__conn_core_input_held(const cp2p__conn_core *c)
{
    return c->in.cap;
}

const cp2p__conn_core_stats *cp2p__conn_core_get_stats(const cp2p__conn_core *c)
{
    return &c->stats;
}

void cp2p__conn_core_set_clock_us(cp2p__conn_core *c, uint64_t now_us)
{
    c->clock_us = now_us;
    if (c->yamux != NULL) {
        cp2p__yamux_set_clock_us(c->yamux, now_us);
    }
}
