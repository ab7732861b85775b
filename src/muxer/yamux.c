/* yamux (/yamux/1.0.0) sans-I/O core. Wire format: hashicorp/yamux spec.md. Behaviour where the
 * spec is silent: go-yamux (libp2p/go-yamux) and @chainsafe/libp2p-yamux, as noted per rule.
 *
 * ---- Decisions ----
 *
 * Frames for streams we do not know. go-yamux and js silently drop Data/WindowUpdate frames for
 * any stream ID missing from their map (go even drains the payload). We keep that for IDs that
 * were opened and are now gone (closed by both FINs, reset by either side, refused by us):
 * frames still in flight when we reset or refused a stream are normal, so they are dropped and
 * counted (frames_discarded, bytes_discarded). They cost no memory, and a dropped Data frame is
 * still bounded by the largest window we ever grant. A frame without SYN for an ID that was
 * never opened (our parity and not yet allocated by us, or the peer's parity and above the
 * highest SYN seen, or unmarked in the recent-ID bitmap) can only come from a broken peer:
 * CP2P_EPROTO ("never_opened"). Every first frame of a go or js stream carries SYN.
 *
 * Stream-ID reuse. go-yamux only notices a duplicate SYN while the first stream is still in its
 * map; js ignores it. We remember, per parity, which of the last CP2P_YAMUX_ID_WINDOW IDs below
 * the highest one were opened: a SYN for a marked ID, or for one older than that window, is
 * reuse (CP2P_EPROTO). Unmarked IDs inside the window are accepted, because go-yamux allocates an
 * ID before it queues the SYN and concurrent opens can put SYNs on the wire out of order.
 *
 * Data after the peer's FIN on a live stream is CP2P_EPROTO (frames are ordered, so no correct
 * peer does it). Ping and GoAway on a stream other than 0, and Data/WindowUpdate on stream 0,
 * are CP2P_EPROTO as in js (go ignores the ID). A ping must carry exactly one of SYN and ACK
 * (as js); an answer that matches no ping is dropped and counted (as go; js fails the session),
 * and costs a ping-budget token. A GoAway received stops our new streams and is reported; the
 * session continues (hashicorp semantics; go-libp2p tears the session down, which the binding
 * may do on the event). A GoAway sent makes us refuse new inbound streams with RST (go, js).
 *
 * Acknowledgement. An inbound stream is ACKed when the application accepts it or sends any frame
 * on it (go-yamux ACKs on Accept; go and js put ACK on the first frame they send). Up to
 * max_unacked_inbound streams may wait (go AcceptBacklog); more SYNs are reset.
 *
 * Write semantics. write() copies into Data frames up to the peer's window for the stream and the
 * session's output cap, and returns how much it took; the caller keeps the rest and retries on
 * STREAM_WRITABLE, which comes when the stream's window reopens (even while the output is full:
 * a binding that serves other streams meanwhile may never let it drain to half) or when the
 * output has drained to half its cap. There is no per-stream send buffer: the one copy is into the output frames,
 * which the binding hands to the socket as an iovec without copying again. Consecutive writes
 * to one stream are coalesced into the last unsent frame while it has room.
 *
 * Receive memory. A stream buffers at most its window (the peer may not send more, or it is
 * CP2P_EPROTO), in a ring that grows as data arrives. All streams of a session together buffer
 * at most max_session_recv bytes: a Data frame that would pass the cap resets its stream (RST,
 * counted in recv_cap_resets; the application sees STREAM_RESET with CP2P_ELIMIT). The same cap
 * bounds the sum of receive windows that auto-tuning may grant. A Data frame's payload may arrive
 * over several recv() calls; its length is taken from the credit at the header and counted as
 * in flight until it is buffered, so window owed to the peer never includes bytes still coming.
 *
 * Output. Frames wait in a list of chunks that the binding writes as an iovec. Control that is
 * not tied to the order of data goes ahead of everything not yet handed out (go-yamux sends
 * pings first too): pings, ping answers, window updates without flags, RSTs and error GoAways.
 * A plain window update may therefore overtake its stream's ACK, which go, js and rust-yamux
 * all accept (ACK only changes their bookkeeping). A RST overtakes queued Data, ACK and FIN of
 * its stream, which the peer drops as frames for a closed stream (go drains them, js discards,
 * and so do we), but never the SYN of its own stream: a RST on a stream we opened jumps only
 * once the peer's ACK came or our SYN was written (main_done counts the ordered bytes written),
 * else the peer would see a frame for a stream never opened. RSTs refusing the peer's SYNs
 * always jump. SYN, ACK and FIN keep their order with the Data of their stream (a FIN must
 * follow its data), and so does a normal GoAway: js-libp2p handles one like the end of the
 * transport, so data queued before it must arrive first. Unsent Data is charged by the
 * memory of its chunks against max_out_buffered. A peer that never reads could make us queue
 * RSTs for the SYNs it keeps sending: past CP2P_YAMUX_MAX_CTRL_BACKLOG of unsent control frames
 * we stop queueing them (refusals_unsent).
 *
 * ---- Receive-window auto-tuning ----
 *
 * Each stream starts with the spec's 256 KiB window W. We send a WindowUpdate when the
 * application has consumed at least W/4 that the peer has not been re-granted (only consumption
 * returns window: a slow reader stops the sender). To pick W we ask, about once per round trip:
 * "did a window's worth go through, and did the reader keep up?"
 *
 *   - RTT: a session estimate from our pings and from window-update probes. A probe is the time
 *     from sending a WindowUpdate on a stream to the arrival of the first byte beyond the limit
 *     that update raised; by causality it is never below the true RTT, so the estimator goes
 *     down at once to a smaller sample and up by 1/8 of the difference (probe samples above 4x
 *     the estimate are ignored as idle-time outliers). Data transfers thus measure their own RTT
 *     without pings. Auto-tuning uses the smallest sample ever seen, not the smoothed one: a
 *     sample taken while our own data queues counts the queue as distance, and a window grown
 *     on it deepens the queue that the next sample measures (on loopback the smoothed estimate
 *     went 0.3 -> 9 ms in one transfer and the window to 16 MiB). The binding offers a clock
 *     in microseconds (cp2p__yamux_set_clock_us): in whole milliseconds every LAN RTT reads as
 *     0 or 1 ms. The connection core pings once as the session opens so that a sample exists
 *     before bulk data does.
 *   - Each stream keeps a sampling interval. When the application consumes and at least one RTT
 *     has passed since the interval began, we take m = min(bytes received, bytes consumed) in the
 *     interval, scaled to one RTT: per_rtt = m * rtt / interval. If per_rtt >= W/2 (the sender
 *     moved at least half a window per round trip, which in the window-limited regime it does:
 *     0.75..1 W per RTT) and at most W/4 is still buffered (the reader keeps up), W doubles, up
 *     to max_window and while the session's windows stay under max_session_recv; the growth goes
 *     out in an immediate WindowUpdate. Then a new interval starts.
 *
 * Why it does not stall at 2x the initial window (go-yamux issue #136): go doubles when two
 * consecutive updates are less than 4 RTT apart, but the time between updates grows with the
 * window (the sender must transmit half a window between them), so once W/bandwidth dominates
 * the test fails at about 512 KiB. Our test is a rate per RTT, which does not depend on W: in
 * the window-limited regime per_rtt stays near W and the window keeps doubling until the link
 * (per_rtt < W/2: W is already >= 2x the bandwidth-delay product) or max_window stops it. A slow
 * reader never passes: what it consumes in an RTT is below W/2, and its buffer stays above W/4.
 * A bursty reader that drains a full buffer at once does not pass either: data received in an
 * interval is bounded by the credit it returned, and the next interval sees the buffer full.
 */
#include <assert.h>
#include <string.h>

#include "muxer/yamux.h"
#include "util/bytes.h"
#include "util/hashmap.h"
#include "util/limits.h"
#include "util/log_internal.h"
#include "util/token_bucket.h"

#define HDR CP2P__YAMUX_HDR_LEN

static_assert(CP2P_YAMUX_ID_WINDOW % 64 == 0, "ID bitmap is made of 64-bit words");
static_assert(CP2P_YAMUX_SPEC_WINDOW == 256 * 1024, "spec.md: 256KB initial window");

typedef enum {
    YAMUX_EXPECT_HEADER, /* waiting for a 12-byte frame header */
    YAMUX_EXPECT_BODY,   /* inside the payload of a Data frame */
    YAMUX_FAILED,        /* terminal: protocol error, budget or memory */
    YAMUX_ABORTED,       /* terminal: the binding reported the connection gone */
} yamux_state;

static const char *const state_names[] = {"EXPECT_HEADER", "EXPECT_BODY", "FAILED", "ABORTED"};

/* ---- output chunks ---- */

enum { CHUNK_CTRL = 0, CHUNK_DATA = 1 };
/* Control frames are 12 bytes; they are packed 64 to a chunk (our choice). */
#define CTRL_CHUNK_CAP (64 * HDR)
/* A small write gets a frame with room for this much payload, so later small writes to the same
 * stream coalesce into it (our choice: one page). */
#define SMALL_DATA_PAYLOAD (4096 - HDR)

typedef struct out_chunk {
    struct out_chunk *next;
    size_t len, cap;
    uint32_t stream_id; /* DATA: the stream its single frame belongs to */
    uint8_t kind;
    bool frozen; /* handed out by outv: no longer extended or reordered */
    bool prio;   /* came from the priority list (not counted in main_enq/main_done) */
    uint8_t data[];
} out_chunk;

typedef struct {
    out_chunk *head, *tail;
} chunk_list;

enum {
    EVB_OPENED = 1,
    EVB_READABLE = 2,
    EVB_REMOTE_FIN = 4,
    EVB_WRITABLE = 8,
    EVB_RESET = 16,
};

struct cp2p__yamux_stream {
    cp2p__yamux *y;
    void *user;
    cp2p__yamux_stream *all_prev, *all_next; /* every stream of the session */
    cp2p__yamux_stream *ev_prev, *ev_next;   /* streams with pending events */
    uint32_t id;
    uint8_t ev_bits;
    bool in_ev_list, in_table;
    bool outbound;
    bool surfaced; /* the application holds the handle */
    bool released; /* the application gave it back */
    bool orphan;   /* released after our FIN: discard until the peer closes */
    bool acked;
    bool unacked_counted, win_counted;
    bool local_fin, remote_fin, reset, want_write;
    int reset_err;
    uint32_t reset_code;
    /* send side */
    uint64_t send_window;
    uint64_t syn_pos; /* outbound: main_enq just after our SYN (see rst_may_jump) */
    /* receive side: ring buffer, window W and outstanding credit */
    uint8_t *rb;
    size_t rb_cap, rb_head, rb_len;
    uint32_t recv_window, recv_credit;
    uint32_t rx_inflight; /* payload of the Data frame being received, not yet buffered */
    uint64_t rx_total, consumed_total, granted_total;
    /* auto-tuning interval and RTT probe */
    bool tune_started, probe_active;
    uint64_t tune_t, tune_rx, tune_cons;
    uint64_t probe_t, probe_limit;
};

#define SESSION_EVENTS 8

struct cp2p__yamux {
    cp2p__yamux_config cfg;
    bool is_client;
    yamux_state state;
    uint64_t now;
    uint64_t now_us; /* the finer clock of cp2p__yamux_set_clock_us(), else now * 1000 */
    /* "header, then body" sub-state */
    cp2p__yamux_stream *rx_stream; /* NULL: discard the body */
    uint32_t rx_remaining;
    bool rx_fin;
    /* Streams by ID. The peer picks the IDs (any increasing ones of its parity), so the table
     * is the keyed one: with a fixed hash it could pick IDs that share one probe run. */
    cp2p_hashmap streams;
    cp2p__yamux_stream *all_head;
    uint32_t next_id;         /* next ID we open */
    uint32_t remote_next_idx; /* 1 + highest (id >> 1) the peer opened; 0: none */
    uint64_t remote_seen[CP2P_YAMUX_ID_WINDOW / 64];
    uint32_t n_inbound, n_outbound, n_unacked_in, n_unacked_out;
    size_t recv_buffered;  /* bytes buffered across streams */
    uint64_t recv_windows; /* sum of W over streams that may still receive */
    /* output */
    chunk_list main, ctrl;
    out_chunk *frozen_tail;
    size_t main_off, handed, pending;
    size_t data_mem;     /* memory of unsent Data chunks, what max_out_buffered bounds */
    size_t ctrl_pending; /* unsent bytes of control frames */
    /* Bytes ever queued on the main (ordered) list, and of those, reported written: a frame
     * queued there at position p is on the wire once main_done >= p. */
    uint64_t main_enq, main_done;
    uint32_t pongs_queued;
    bool out_blocked;
    /* events */
    cp2p__yamux_stream *ev_head, *ev_tail;
    cp2p__yamux_event sev[SESSION_EVENTS];
    unsigned sev_head, sev_len;
    /* ping and RTT */
    bool ping_active, rtt_valid;
    uint32_t ping_value, next_ping;
    uint64_t ping_sent, ping_sent_us, rtt_us;
    uint64_t rtt_min_us; /* the smallest sample ever: the path without our own queue */
    bool local_goaway, remote_goaway;
    cp2p_token_bucket b_reset, b_refuse, b_ping, b_empty; /* abuse budgets */
    int fail_err;
    const char *fail_why;
    bool logged_refuse, logged_cap;
    cp2p__yamux_stats stats;
};

static const char *const perr_names[CP2P__YAMUX_PERR_COUNT] = {
    [CP2P__YAMUX_PERR_VERSION] = "bad_version",
    [CP2P__YAMUX_PERR_TYPE] = "bad_type",
    [CP2P__YAMUX_PERR_STREAM_ZERO] = "bad_stream_id",
    [CP2P__YAMUX_PERR_PARITY] = "wrong_parity",
    [CP2P__YAMUX_PERR_REUSE] = "id_reuse",
    [CP2P__YAMUX_PERR_UNOPENED] = "never_opened",
    [CP2P__YAMUX_PERR_WINDOW] = "window_exceeded",
    [CP2P__YAMUX_PERR_DATA_AFTER_FIN] = "data_after_fin",
    [CP2P__YAMUX_PERR_SEND_WINDOW] = "window_overflow",
    [CP2P__YAMUX_PERR_PING_FLAGS] = "bad_ping",
    [CP2P__YAMUX_PERR_RESET_FLOOD] = "reset_flood",
    [CP2P__YAMUX_PERR_REFUSE_FLOOD] = "open_flood",
    [CP2P__YAMUX_PERR_PING_FLOOD] = "ping_flood",
    [CP2P__YAMUX_PERR_EMPTY_FLOOD] = "empty_flood",
};

static const char *const why_nomem = "out of memory queueing a frame";

const char *cp2p__yamux_perr_name(cp2p__yamux_perr kind)
{
    if ((unsigned)kind >= CP2P__YAMUX_PERR_COUNT) {
        return "unknown";
    }
    return perr_names[kind];
}

static size_t min_sz(size_t a, size_t b)
{
    return a < b ? a : b;
}

static bool dead(const cp2p__yamux *y)
{
    return y->state == YAMUX_FAILED || y->state == YAMUX_ABORTED;
}

static void set_state(cp2p__yamux *y, yamux_state st)
{
    if (y->state == st) {
        return;
    }
    CP2P_LOG(CP2P_LOG_TRACE, "yamux", y->cfg.conn_id, "yamux.state %s -> %s",
             state_names[y->state], state_names[st]);
    y->state = st;
}

static void set_now(cp2p__yamux *y, uint64_t now)
{
    if (now > y->now) {
        y->now = now;
    }
    if (now <= UINT64_MAX / 1000 && now * 1000 > y->now_us) {
        y->now_us = now * 1000;
    }
}

/* ---- header codec ---- */

static ptrdiff_t hdr_decode(cp2p__yamux_hdr *h, const uint8_t *in, size_t len, uint32_t max_window,
                            const char **why, cp2p__yamux_perr *kind)
{
    if (len < HDR) {
        return 0;
    }
    if (in[0] != CP2P__YAMUX_VERSION) {
        *kind = CP2P__YAMUX_PERR_VERSION;
        *why = "unknown yamux version";
        return CP2P_EPROTO;
    }
    switch (in[1]) {
    case CP2P__YAMUX_DATA:
    case CP2P__YAMUX_WINDOW_UPDATE:
    case CP2P__YAMUX_PING:
    case CP2P__YAMUX_GO_AWAY:
        h->type = in[1];
        break;
    default:
        *kind = CP2P__YAMUX_PERR_TYPE;
        *why = "unknown yamux frame type";
        return CP2P_EPROTO;
    }
    h->flags = cp2p_load_be16(in + 2);
    h->stream_id = cp2p_load_be32(in + 4);
    h->length = cp2p_load_be32(in + 8);
    /* Cheap bound before any buffering; the caller then checks the stream's own window. */
    if (h->type == CP2P__YAMUX_DATA && h->length > max_window) {
        *kind = CP2P__YAMUX_PERR_WINDOW;
        *why = "data frame larger than any receive window we grant";
        return CP2P_EPROTO;
    }
    return HDR;
}

ptrdiff_t cp2p__yamux_hdr_decode(cp2p__yamux_hdr *h, const uint8_t *in, size_t len,
                                 uint32_t max_window, const char **why)
{
    cp2p__yamux_perr kind;
    return hdr_decode(h, in, len, max_window, why, &kind);
}

void cp2p__yamux_hdr_encode(uint8_t out[CP2P__YAMUX_HDR_LEN], uint8_t type, uint16_t flags,
                            uint32_t stream_id, uint32_t length)
{
    out[0] = CP2P__YAMUX_VERSION;
    out[1] = type;
    cp2p_store_be16(out + 2, flags);
    cp2p_store_be32(out + 4, stream_id);
    cp2p_store_be32(out + 8, length);
}

/* ---- config ---- */

void cp2p__yamux_config_default(cp2p__yamux_config *cfg)
{
    *cfg = (cp2p__yamux_config){
        .initial_window = CP2P_YAMUX_INITIAL_WINDOW,
        .max_window = CP2P_YAMUX_MAX_WINDOW,
        .auto_tune = true,
        .max_inbound_streams = CP2P_YAMUX_MAX_INBOUND_STREAMS,
        .max_outbound_streams = CP2P_YAMUX_MAX_OUTBOUND_STREAMS,
        .max_unacked_inbound = CP2P_YAMUX_MAX_UNACKED_INBOUND,
        .max_unacked_outbound = CP2P_YAMUX_MAX_UNACKED_OUTBOUND,
        .max_frame = CP2P_YAMUX_MAX_FRAME,
        .max_session_recv = CP2P_YAMUX_MAX_SESSION_RECV,
        .max_out_buffered = CP2P_YAMUX_MAX_OUT_BUFFERED,
        .ping_timeout_ms = CP2P_YAMUX_PING_TIMEOUT_MS,
        .max_pong_backlog = CP2P_YAMUX_MAX_PONG_BACKLOG,
        .reset_burst = CP2P_YAMUX_RESET_BURST,
        .reset_per_sec = CP2P_YAMUX_RESET_PER_SEC,
        .refuse_burst = CP2P_YAMUX_REFUSE_BURST,
        .refuse_per_sec = CP2P_YAMUX_REFUSE_PER_SEC,
        .ping_burst = CP2P_YAMUX_PING_BURST,
        .ping_per_sec = CP2P_YAMUX_PING_PER_SEC,
        .empty_burst = CP2P_YAMUX_EMPTY_BURST,
        .empty_per_sec = CP2P_YAMUX_EMPTY_PER_SEC,
        .conn_id = 0,
    };
}

static bool budget_param_ok(uint32_t v)
{
    return v >= 1 && v <= CP2P_YAMUX_BUDGET_MAX;
}

static bool config_ok(const cp2p__yamux_config *c)
{
    return c->initial_window >= CP2P_YAMUX_SPEC_WINDOW && c->max_window >= c->initial_window &&
           c->max_window <= (UINT32_C(1) << 31) && c->max_inbound_streams >= 1 &&
           c->max_outbound_streams >= 1 &&
           (uint64_t)c->max_inbound_streams + c->max_outbound_streams <= CP2P_HASHMAP_MAX_ITEMS &&
           c->max_unacked_inbound >= 1 &&
           c->max_unacked_outbound >= 1 && c->max_frame >= 1024 &&
           c->max_frame <= CP2P_YAMUX_MAX_WINDOW && c->max_session_recv >= c->max_window &&
           c->max_out_buffered >= 1 && c->ping_timeout_ms >= 1 && c->max_pong_backlog >= 1 &&
           budget_param_ok(c->reset_burst) && budget_param_ok(c->reset_per_sec) &&
           budget_param_ok(c->refuse_burst) && budget_param_ok(c->refuse_per_sec) &&
           budget_param_ok(c->ping_burst) && budget_param_ok(c->ping_per_sec) &&
           budget_param_ok(c->empty_burst) && budget_param_ok(c->empty_per_sec);
}

/* ---- stream table ---- */

static cp2p_slice stream_key(const void *item)
{
    const cp2p__yamux_stream *s = item;
    return (cp2p_slice){(const uint8_t *)&s->id, sizeof(s->id)};
}

static cp2p__yamux_stream *tbl_get(const cp2p__yamux *y, uint32_t id)
{
    return cp2p__hashmap_find(&y->streams, &id, sizeof(id));
}

static int tbl_put(cp2p__yamux *y, cp2p__yamux_stream *s)
{
    /* Cannot be full (the table's bound is the sum of the stream limits) nor hold the ID (IDs
     * are never reused), so an error is a failed allocation. */
    if (cp2p__hashmap_insert(&y->streams, s) != 0) {
        y->stats.alloc_failures++;
        return CP2P_ENOMEM;
    }
    s->in_table = true;
    return 0;
}

static void tbl_del(cp2p__yamux *y, cp2p__yamux_stream *s)
{
    bool removed = cp2p__hashmap_remove(&y->streams, s);
    assert(removed);
    (void)removed;
    s->in_table = false;
}

/* ---- output ---- */

static out_chunk *chunk_new(cp2p__yamux *y, size_t cap, uint8_t kind, uint32_t stream_id)
{
    out_chunk *c = cp2p_malloc(sizeof(*c) + cap);
    if (c == NULL) {
        y->stats.alloc_failures++;
        return NULL;
    }
    c->next = NULL;
    c->len = 0;
    c->cap = cap;
    c->stream_id = stream_id;
    c->kind = kind;
    c->frozen = false;
    c->prio = false;
    return c;
}

static void list_append(chunk_list *l, out_chunk *c)
{
    if (l->tail != NULL) {
        l->tail->next = c;
    } else {
        l->head = c;
    }
    l->tail = c;
}

static void list_free(chunk_list *l)
{
    out_chunk *c = l->head;
    while (c != NULL) {
        out_chunk *n = c->next;
        cp2p_free(c);
        c = n;
    }
    l->head = l->tail = NULL;
}

/* Queue a 12-byte frame: on the priority list (pings, answers, plain window updates, RSTs
 * that may overtake, error GoAways), or in order with the data (SYN, ACK, FIN, a normal
 * GoAway). */
static int q_frame(cp2p__yamux *y, bool priority, uint8_t type, uint16_t flags, uint32_t id,
                   uint32_t length)
{
    chunk_list *l = priority ? &y->ctrl : &y->main;
    out_chunk *t = l->tail;
    if (t == NULL || t->kind != CHUNK_CTRL || t->frozen || t->prio != priority ||
        t->cap - t->len < HDR) {
        t = chunk_new(y, CTRL_CHUNK_CAP, CHUNK_CTRL, 0);
        if (t == NULL) {
            return CP2P_ENOMEM;
        }
        t->prio = priority;
        list_append(l, t);
    }
    if (!priority) {
        y->main_enq += HDR;
    }
    cp2p__yamux_hdr_encode(t->data + t->len, type, flags, id, length);
    t->len += HDR;
    y->pending += HDR;
    y->ctrl_pending += HDR;
    y->stats.frames_out++;
    return 0;
}

/* A RST may go on the priority list, ahead of queued data, once the peer is sure to know the
 * stream when it arrives: the peer opened it, or our SYN is acknowledged or already written.
 * Before that it keeps its place behind the SYN, or the peer would see a frame for a stream
 * never opened (CP2P_EPROTO in our own core). */
static bool rst_may_jump(const cp2p__yamux *y, const cp2p__yamux_stream *s)
{
    return !s->outbound || s->acked || y->main_done >= s->syn_pos;
}

static int q_rst(cp2p__yamux *y, cp2p__yamux_stream *s, uint32_t code)
{
    return q_frame(y, rst_may_jump(y, s), CP2P__YAMUX_WINDOW_UPDATE, CP2P__YAMUX_RST, s->id,
                   code);
}

/* Copy n bytes of stream data into Data frames. Returns the bytes queued (< n only when an
 * allocation failed). */
static size_t q_data(cp2p__yamux *y, cp2p__yamux_stream *s, const uint8_t *p, size_t n)
{
    size_t max_payload = y->cfg.max_frame - HDR;
    size_t done = 0;
    while (done < n) {
        out_chunk *t = y->main.tail;
        size_t k;
        if (t != NULL && t->kind == CHUNK_DATA && !t->frozen && t->stream_id == s->id &&
            t->len < t->cap) {
            k = min_sz(n - done, t->cap - t->len);
            memcpy(t->data + t->len, p + done, k);
            t->len += k;
            cp2p_store_be32(t->data + 8, (uint32_t)(t->len - HDR));
            y->main_enq += k;
        } else {
            k = min_sz(n - done, max_payload);
            size_t payload_cap = k;
            if (payload_cap < SMALL_DATA_PAYLOAD) {
                payload_cap = min_sz(SMALL_DATA_PAYLOAD, max_payload);
            }
            t = chunk_new(y, HDR + payload_cap, CHUNK_DATA, s->id);
            if (t == NULL) {
                break;
            }
            cp2p__yamux_hdr_encode(t->data, CP2P__YAMUX_DATA, 0, s->id, (uint32_t)k);
            memcpy(t->data + HDR, p + done, k);
            t->len = HDR + k;
            list_append(&y->main, t);
            y->main_enq += HDR + k;
            y->pending += HDR;
            y->data_mem += t->cap; /* charged by allocation, so tiny writes cannot amplify */
            y->stats.frames_out++;
        }
        y->pending += k;
        done += k;
    }
    y->stats.data_bytes_out += done;
    return done;
}

/* Move the priority frames in front of everything not yet handed out. */
static void splice_ctrl(cp2p__yamux *y)
{
    if (y->ctrl.head == NULL) {
        return;
    }
    if (y->frozen_tail == NULL) {
        y->ctrl.tail->next = y->main.head;
        y->main.head = y->ctrl.head;
        if (y->main.tail == NULL) {
            y->main.tail = y->ctrl.tail;
        }
    } else {
        y->ctrl.tail->next = y->frozen_tail->next;
        y->frozen_tail->next = y->ctrl.head;
        if (y->main.tail == y->frozen_tail) {
            y->main.tail = y->ctrl.tail;
        }
    }
    y->ctrl.head = y->ctrl.tail = NULL;
    y->pongs_queued = 0;
}

size_t cp2p__yamux_outv(cp2p__yamux *y, cp2p_slice *iov, size_t max)
{
    if (y->state == YAMUX_ABORTED) {
        y->handed = 0;
        return 0;
    }
    splice_ctrl(y);
    size_t n = 0, handed = 0;
    bool past = y->frozen_tail == NULL;
    for (out_chunk *c = y->main.head; c != NULL && n < max; c = c->next) {
        size_t off = c == y->main.head ? y->main_off : 0;
        iov[n].ptr = c->data + off;
        iov[n].len = c->len - off;
        handed += iov[n].len;
        c->frozen = true;
        if (past) {
            y->frozen_tail = c;
        } else if (c == y->frozen_tail) {
            past = true;
        }
        n++;
    }
    y->handed = handed;
    return n;
}

size_t cp2p__yamux_out(cp2p__yamux *y, cp2p_slice *out)
{
    size_t n = cp2p__yamux_outv(y, out, 1);
    if (n == 0) {
        out->ptr = NULL;
        out->len = 0;
    }
    return n;
}

size_t cp2p__yamux_out_pending(const cp2p__yamux *y)
{
    return y->state == YAMUX_ABORTED ? 0 : y->pending;
}

static void ev_set(cp2p__yamux *y, cp2p__yamux_stream *s, uint8_t bits);

int cp2p__yamux_set_max_out_buffered(cp2p__yamux *y, size_t n)
{
    if (n == 0) {
        return CP2P_EINVAL;
    }
    y->cfg.max_out_buffered = n;
    return 0;
}

/* Streams waiting for output room get STREAM_WRITABLE if their window allows. */
static void wake_writers(cp2p__yamux *y)
{
    for (cp2p__yamux_stream *s = y->all_head; s != NULL; s = s->all_next) {
        if (s->want_write && s->send_window > 0 && !s->local_fin && !s->reset) {
            s->want_write = false;
            ev_set(y, s, EVB_WRITABLE);
        }
    }
}

int cp2p__yamux_out_done(cp2p__yamux *y, size_t n)
{
    if (n > y->handed) {
        return CP2P_EINVAL;
    }
    y->handed -= n;
    while (n > 0) {
        out_chunk *c = y->main.head;
        size_t k = min_sz(n, c->len - y->main_off);
        y->main_off += k;
        n -= k;
        y->pending -= k;
        if (c->kind == CHUNK_CTRL) {
            y->ctrl_pending -= k;
        }
        if (!c->prio) {
            y->main_done += k;
        }
        if (y->main_off == c->len) {
            if (c->kind == CHUNK_DATA) {
                y->data_mem -= c->cap;
            }
            y->main.head = c->next;
            if (y->main.head == NULL) {
                y->main.tail = NULL;
            }
            if (y->frozen_tail == c) {
                y->frozen_tail = NULL;
            }
            cp2p_free(c);
            y->main_off = 0;
        }
    }
    if (y->out_blocked && y->data_mem <= y->cfg.max_out_buffered / 2 && !dead(y)) {
        y->out_blocked = false;
        wake_writers(y);
    }
    return 0;
}

/* ---- events ---- */

static void ev_unlink(cp2p__yamux *y, cp2p__yamux_stream *s)
{
    if (!s->in_ev_list) {
        return;
    }
    if (s->ev_prev != NULL) {
        s->ev_prev->ev_next = s->ev_next;
    } else {
        y->ev_head = s->ev_next;
    }
    if (s->ev_next != NULL) {
        s->ev_next->ev_prev = s->ev_prev;
    } else {
        y->ev_tail = s->ev_prev;
    }
    s->ev_prev = s->ev_next = NULL;
    s->in_ev_list = false;
}

static void ev_set(cp2p__yamux *y, cp2p__yamux_stream *s, uint8_t bits)
{
    if (s->released) {
        return; /* nobody to tell */
    }
    s->ev_bits |= bits;
    if (!s->in_ev_list) {
        s->ev_prev = y->ev_tail;
        s->ev_next = NULL;
        if (y->ev_tail != NULL) {
            y->ev_tail->ev_next = s;
        } else {
            y->ev_head = s;
        }
        y->ev_tail = s;
        s->in_ev_list = true;
    }
}

static void sev_push(cp2p__yamux *y, const cp2p__yamux_event *ev)
{
    /* A newer ping result replaces one not yet taken, so at most one ping result, one GoAway and
     * one session error are ever pending together and the ring cannot overflow. */
    for (unsigned i = 0; ev->type == CP2P__YAMUX_EV_PING && i < y->sev_len; i++) {
        cp2p__yamux_event *old = &y->sev[(y->sev_head + i) % SESSION_EVENTS];
        if (old->type == CP2P__YAMUX_EV_PING) {
            *old = *ev;
            return;
        }
    }
    assert(y->sev_len < SESSION_EVENTS);
    if (y->sev_len == SESSION_EVENTS) {
        return;
    }
    y->sev[(y->sev_head + y->sev_len) % SESSION_EVENTS] = *ev;
    y->sev_len++;
}

bool cp2p__yamux_has_events(const cp2p__yamux *y)
{
    return y->sev_len > 0 || y->ev_head != NULL;
}

bool cp2p__yamux_next_event(cp2p__yamux *y, cp2p__yamux_event *ev)
{
    static const uint8_t order[] = {EVB_OPENED, EVB_READABLE, EVB_REMOTE_FIN, EVB_WRITABLE,
                                    EVB_RESET};
    static const cp2p__yamux_event_type types[] = {
        CP2P__YAMUX_EV_STREAM_OPENED, CP2P__YAMUX_EV_STREAM_READABLE,
        CP2P__YAMUX_EV_STREAM_REMOTE_FIN, CP2P__YAMUX_EV_STREAM_WRITABLE,
        CP2P__YAMUX_EV_STREAM_RESET};

    memset(ev, 0, sizeof(*ev));
    if (y->sev_len > 0) {
        *ev = y->sev[y->sev_head];
        y->sev_head = (y->sev_head + 1) % SESSION_EVENTS;
        y->sev_len--;
        return true;
    }
    while (y->ev_head != NULL) {
        cp2p__yamux_stream *s = y->ev_head;
        for (size_t i = 0; i < sizeof(order); i++) {
            if ((s->ev_bits & order[i]) == 0) {
                continue;
            }
            s->ev_bits &= (uint8_t)~order[i];
            if (s->ev_bits == 0) {
                ev_unlink(y, s);
            }
            ev->type = types[i];
            ev->stream = s;
            ev->stream_id = s->id;
            ev->user = s->user;
            if (order[i] == EVB_OPENED) {
                s->surfaced = true;
            } else if (order[i] == EVB_RESET) {
                ev->err = s->reset_err;
                ev->code = s->reset_code;
            }
            return true;
        }
        ev_unlink(y, s);
    }
    return false;
}

/* ---- stream life ---- */

static void unacked_done(cp2p__yamux *y, cp2p__yamux_stream *s)
{
    if (s->unacked_counted) {
        s->unacked_counted = false;
        if (s->outbound) {
            y->n_unacked_out--;
        } else {
            y->n_unacked_in--;
        }
    }
}

static void win_uncount(cp2p__yamux *y, cp2p__yamux_stream *s)
{
    if (s->win_counted) {
        s->win_counted = false;
        y->recv_windows -= s->recv_window;
    }
}

static void rb_drop(cp2p__yamux *y, cp2p__yamux_stream *s)
{
    y->recv_buffered -= s->rb_len;
    cp2p_free(s->rb);
    s->rb = NULL;
    s->rb_cap = s->rb_head = s->rb_len = 0;
}

static cp2p__yamux_stream *stream_new(cp2p__yamux *y, uint32_t id, bool outbound)
{
    cp2p__yamux_stream *s = cp2p_calloc(1, sizeof(*s));
    if (s == NULL) {
        y->stats.alloc_failures++;
        return NULL;
    }
    s->y = y;
    s->id = id;
    s->outbound = outbound;
    s->send_window = CP2P_YAMUX_SPEC_WINDOW;
    /* Both sides assume the spec's window; a larger configured one goes out in SYN/ACK. */
    s->recv_window = y->cfg.initial_window;
    s->recv_credit = CP2P_YAMUX_SPEC_WINDOW;
    s->granted_total = CP2P_YAMUX_SPEC_WINDOW;
    s->win_counted = true;
    y->recv_windows += s->recv_window;
    s->unacked_counted = true;
    if (outbound) {
        y->n_outbound++;
        y->n_unacked_out++;
    } else {
        y->n_inbound++;
        y->n_unacked_in++;
    }
    s->all_next = y->all_head;
    if (y->all_head != NULL) {
        y->all_head->all_prev = s;
    }
    y->all_head = s;
    return s;
}

static void stream_free(cp2p__yamux *y, cp2p__yamux_stream *s)
{
    if (s->in_table) {
        tbl_del(y, s);
    }
    ev_unlink(y, s);
    unacked_done(y, s);
    win_uncount(y, s);
    rb_drop(y, s);
    if (s->outbound) {
        y->n_outbound--;
    } else {
        y->n_inbound--;
    }
    if (y->rx_stream == s) {
        y->rx_stream = NULL;
    }
    if (s->all_prev != NULL) {
        s->all_prev->all_next = s->all_next;
    } else {
        y->all_head = s->all_next;
    }
    if (s->all_next != NULL) {
        s->all_next->all_prev = s->all_prev;
    }
    cp2p_free(s);
}

/* Both directions are closed: the ID leaves the table. Returns true if `s` was freed. */
static bool stream_finish(cp2p__yamux *y, cp2p__yamux_stream *s)
{
    if (s->in_table) {
        tbl_del(y, s);
    }
    if (s->rb_len == 0) {
        rb_drop(y, s);
    }
    if (s->released) {
        stream_free(y, s);
        return true;
    }
    return false;
}

/* Mark `s` reset, drop its buffer and take it out of the table. A stream the application does
 * not hold is freed (returns true); otherwise STREAM_RESET is queued when `notify`. */
static bool stream_kill(cp2p__yamux *y, cp2p__yamux_stream *s, int err, uint32_t code,
                        bool notify)
{
    s->reset = true;
    s->reset_err = err;
    s->reset_code = code;
    s->want_write = false;
    s->probe_active = false;
    s->rx_inflight = 0;
    rb_drop(y, s);
    unacked_done(y, s);
    win_uncount(y, s);
    if (s->in_table) {
        tbl_del(y, s);
    }
    if (y->rx_stream == s) {
        y->rx_stream = NULL;
    }
    if (!s->surfaced || s->released) {
        stream_free(y, s);
        return true;
    }
    s->ev_bits &= (uint8_t) ~(EVB_READABLE | EVB_REMOTE_FIN | EVB_WRITABLE);
    if (notify) {
        ev_set(y, s, EVB_RESET);
    } else if (s->ev_bits == 0) {
        ev_unlink(y, s);
    }
    return false;
}

/* Every stream still in the table dies with the session. */
static void kill_all(cp2p__yamux *y, int err)
{
    cp2p__yamux_stream *s = y->all_head;
    while (s != NULL) {
        cp2p__yamux_stream *next = s->all_next;
        if (s->in_table) {
            (void)stream_kill(y, s, err, 0, true);
        }
        s = next;
    }
}

static void session_fail(cp2p__yamux *y, int err, const char *why)
{
    if (dead(y)) {
        return;
    }
    uint32_t code = (err == CP2P_EPROTO || err == CP2P_ELIMIT) ? CP2P__YAMUX_GOAWAY_PROTO_ERR
                                                              : CP2P__YAMUX_GOAWAY_INTERNAL_ERR;
    if (err == CP2P_ENOMEM) {
        CP2P_LOG(CP2P_LOG_INFO, "yamux", y->cfg.conn_id, "yamux.alloc_failure why=%s", why);
    }
    /* Best effort, ahead of queued data: the session is over, nothing after it matters. */
    (void)q_frame(y, true, CP2P__YAMUX_GO_AWAY, 0, 0, code);
    y->local_goaway = true;
    y->ping_active = false;
    y->fail_err = err;
    y->fail_why = why;
    set_state(y, YAMUX_FAILED);
    sev_push(y, &(cp2p__yamux_event){
                    .type = CP2P__YAMUX_EV_SESSION_ERROR, .err = err, .why = why});
    kill_all(y, err);
}

/* A peer fault: count it, log one line (the session ends with it), set *why. */
static int perr(cp2p__yamux *y, cp2p__yamux_perr kind, int err, const char *msg, const char **why)
{
    y->stats.proto_errors[kind]++;
    CP2P_LOG(CP2P_LOG_INFO, "yamux", y->cfg.conn_id, "yamux.%s why=%s", perr_names[kind], msg);
    *why = msg;
    return err;
}

/* ---- receive buffer ---- */

static int rb_append(cp2p__yamux *y, cp2p__yamux_stream *s, const uint8_t *p, size_t n)
{
    size_t need = s->rb_len + n; /* <= the window: checked against the credit */
    if (need > s->rb_cap) {
        /* Grow by doubling as data arrives (STYLE.md 6.4), never past the window. */
        size_t ncap = s->rb_cap ? s->rb_cap : 4096;
        while (ncap < need) {
            ncap *= 2;
        }
        if (ncap > s->recv_window) {
            ncap = need > s->recv_window ? need : s->recv_window;
        }
        uint8_t *nb = cp2p_malloc(ncap);
        if (nb == NULL) {
            y->stats.alloc_failures++;
            return CP2P_ENOMEM;
        }
        size_t first = min_sz(s->rb_len, s->rb_cap - s->rb_head);
        if (first > 0) {
            memcpy(nb, s->rb + s->rb_head, first);
        }
        if (s->rb_len > first) {
            memcpy(nb + first, s->rb, s->rb_len - first);
        }
        cp2p_free(s->rb);
        s->rb = nb;
        s->rb_cap = ncap;
        s->rb_head = 0;
    }
    size_t tail = (s->rb_head + s->rb_len) % s->rb_cap;
    size_t first = min_sz(n, s->rb_cap - tail);
    memcpy(s->rb + tail, p, first);
    if (n > first) {
        memcpy(s->rb, p + first, n - first);
    }
    s->rb_len += n;
    y->recv_buffered += n;
    return 0;
}

/* ---- RTT and auto-tuning ---- */

static void rtt_sample(cp2p__yamux *y, uint64_t sample, bool probe)
{
    if (!y->rtt_valid) {
        y->rtt_us = sample;
        y->rtt_min_us = sample;
        y->rtt_valid = true;
        return;
    }
    if (sample < y->rtt_min_us) {
        y->rtt_min_us = sample;
    }
    if (sample < y->rtt_us) {
        y->rtt_us = sample;
    } else if (!probe || sample / 4 <= y->rtt_us) {
        y->rtt_us += (sample - y->rtt_us) / 8;
    }
}

static void tune_restart(cp2p__yamux_stream *s, uint64_t now)
{
    s->tune_t = now;
    s->tune_rx = s->rx_total;
    s->tune_cons = s->consumed_total;
}

/* The algorithm is described at the top of this file. Returns true when W grew. */
static bool autotune(cp2p__yamux *y, cp2p__yamux_stream *s)
{
    if (!y->cfg.auto_tune || !s->tune_started || s->remote_fin || s->reset || s->orphan) {
        return false;
    }
    uint64_t now = y->now_us;
    if (!y->rtt_valid) {
        tune_restart(s, now);
        return false;
    }
    uint64_t rtt = y->rtt_min_us > 0 ? y->rtt_min_us : 1;
    uint64_t interval = now - s->tune_t;
    if (interval < rtt) {
        return false;
    }
    uint64_t rx = s->rx_total - s->tune_rx;
    uint64_t cons = s->consumed_total - s->tune_cons;
    uint64_t m = rx < cons ? rx : cons;
    tune_restart(s, now);
    if (s->recv_window >= y->cfg.max_window || interval > UINT32_MAX) {
        return false;
    }
    /* per_rtt = m * rtt / interval, saturating; rtt <= interval < 2^32. */
    uint64_t q = m / interval;
    uint64_t per_rtt = q > UINT64_MAX / rtt / 2 ? UINT64_MAX / 2
                                                : q * rtt + (m % interval) * rtt / interval;
    if (per_rtt < s->recv_window / 2 || s->rb_len > s->recv_window / 4) {
        return false;
    }
    uint64_t nw = (uint64_t)s->recv_window * 2;
    if (nw > y->cfg.max_window) {
        nw = y->cfg.max_window;
    }
    uint64_t grow = nw - s->recv_window;
    if (y->recv_windows + grow > y->cfg.max_session_recv) {
        y->stats.window_growth_denied++;
        return false;
    }
    CP2P_LOG(CP2P_LOG_TRACE, "yamux", y->cfg.conn_id,
             "yamux.window_growth stream=%u window=%u->%u rtt_us=%u", s->id, s->recv_window,
             (unsigned)nw, (unsigned)rtt);
    s->recv_window = (uint32_t)nw;
    if (s->win_counted) {
        y->recv_windows += grow;
    }
    y->stats.window_growths++;
    return true;
}

/* Mark an inbound stream accepted (its ACK is being queued by the caller). */
static void accept_mark(cp2p__yamux *y, cp2p__yamux_stream *s)
{
    s->acked = true;
    unacked_done(y, s);
}

/* Flags the next frame on `s` must carry: ACK until an inbound stream is acknowledged. */
static uint16_t ack_flag(const cp2p__yamux_stream *s)
{
    return (!s->outbound && !s->acked) ? CP2P__YAMUX_ACK : 0;
}

/* Window in use: buffered, still grantable to the peer, and announced by a Data header whose
 * payload has not all arrived (counting only the first two would re-grant those bytes). */
static uint64_t recv_used(const cp2p__yamux_stream *s)
{
    return (uint64_t)s->rb_len + s->recv_credit + s->rx_inflight;
}

/* Return consumed window to the peer once at least a quarter of W is owed, or at once when
 * `force` (the window grew). */
static int maybe_window_update(cp2p__yamux *y, cp2p__yamux_stream *s, bool force)
{
    if (s->reset || s->remote_fin || !s->in_table) {
        return 0;
    }
    uint64_t used = recv_used(s);
    if (used >= s->recv_window) {
        return 0;
    }
    uint32_t delta = (uint32_t)(s->recv_window - used);
    if (!force && delta < s->recv_window / 4) {
        return 0;
    }
    uint16_t flags = ack_flag(s);
    int rc = q_frame(y, flags == 0, CP2P__YAMUX_WINDOW_UPDATE, flags, s->id, delta);
    if (rc < 0) {
        return rc;
    }
    if (flags != 0) {
        accept_mark(y, s);
    }
    if (!s->probe_active) {
        s->probe_active = true;
        s->probe_t = y->now_us;
        s->probe_limit = s->granted_total;
    }
    s->recv_credit += delta;
    s->granted_total += delta;
    y->stats.window_updates_out++;
    return 0;
}

/* ---- receiving frames ---- */

static void start_body(cp2p__yamux *y, cp2p__yamux_stream *s, uint32_t len, bool fin)
{
    y->rx_stream = s;
    y->rx_remaining = len;
    y->rx_fin = fin;
    set_state(y, YAMUX_EXPECT_BODY);
}

static int discard_frame(cp2p__yamux *y, const cp2p__yamux_hdr *h)
{
    y->stats.frames_discarded++;
    if (h->type == CP2P__YAMUX_DATA && h->length > 0) {
        start_body(y, NULL, h->length, false);
    }
    return 0;
}

/* Reset a stream on our own initiative while receiving (memory, receive cap). */
static int core_reset(cp2p__yamux *y, cp2p__yamux_stream *s, int err, const char **why)
{
    int rc = 0;
    if (s->in_table) {
        rc = q_rst(y, s, 0);
    }
    y->stats.streams_reset_local++;
    (void)stream_kill(y, s, err, 0, true);
    if (rc < 0) {
        *why = why_nomem;
    }
    return rc;
}

static int on_remote_fin(cp2p__yamux *y, cp2p__yamux_stream *s)
{
    if (s->remote_fin) {
        return 0; /* a repeated FIN changes nothing */
    }
    s->remote_fin = true;
    s->probe_active = false;
    win_uncount(y, s);
    ev_set(y, s, EVB_REMOTE_FIN);
    if (s->local_fin) {
        (void)stream_finish(y, s);
    } else if (s->rb_len == 0) {
        rb_drop(y, s);
    }
    return 0;
}

static bool id_seen(const cp2p__yamux *y, uint32_t idx)
{
    uint32_t bit = idx % CP2P_YAMUX_ID_WINDOW;
    return (y->remote_seen[bit / 64] >> (bit % 64)) & 1;
}

static void id_set(cp2p__yamux *y, uint32_t idx, bool on)
{
    uint32_t bit = idx % CP2P_YAMUX_ID_WINDOW;
    uint64_t m = UINT64_C(1) << (bit % 64);
    if (on) {
        y->remote_seen[bit / 64] |= m;
    } else {
        y->remote_seen[bit / 64] &= ~m;
    }
}

/* Record a SYN for a peer-parity ID; reuse is a protocol error. */
static int id_mark(cp2p__yamux *y, uint32_t id, const char **why)
{
    uint32_t idx = id >> 1;
    if (idx >= y->remote_next_idx) {
        if (idx - y->remote_next_idx >= CP2P_YAMUX_ID_WINDOW) {
            memset(y->remote_seen, 0, sizeof(y->remote_seen));
        } else {
            for (uint32_t j = y->remote_next_idx; j < idx; j++) {
                id_set(y, j, false);
            }
        }
        id_set(y, idx, true);
        y->remote_next_idx = idx + 1;
        return 0;
    }
    if (y->remote_next_idx - idx > CP2P_YAMUX_ID_WINDOW) {
        return perr(y, CP2P__YAMUX_PERR_REUSE, CP2P_EPROTO,
                    "SYN for a stream ID too far below the newest to be new", why);
    }
    if (id_seen(y, idx)) {
        return perr(y, CP2P__YAMUX_PERR_REUSE, CP2P_EPROTO, "SYN reuses a stream ID", why);
    }
    id_set(y, idx, true);
    return 0;
}

static bool is_local_id(const cp2p__yamux *y, uint32_t id)
{
    return (id & 1) == (y->is_client ? 1u : 0u);
}

/* A frame without SYN for an ID not in the table: fine if the stream existed (dropped), a
 * protocol error if it never did. */
static int check_gone_id(cp2p__yamux *y, uint32_t id, const char **why)
{
    if (is_local_id(y, id)) {
        if (id >= y->next_id) {
            return perr(y, CP2P__YAMUX_PERR_UNOPENED, CP2P_EPROTO,
                        "frame for a stream we never opened", why);
        }
        return 0;
    }
    uint32_t idx = id >> 1;
    if (idx >= y->remote_next_idx ||
        (y->remote_next_idx - idx <= CP2P_YAMUX_ID_WINDOW && !id_seen(y, idx))) {
        return perr(y, CP2P__YAMUX_PERR_UNOPENED, CP2P_EPROTO,
                    "frame for a stream the peer never opened", why);
    }
    return 0;
}

static int refuse_stream(cp2p__yamux *y, uint32_t id, const char *reason, const char **why)
{
    if (!cp2p__token_bucket_take(&y->b_refuse, 1, y->now)) {
        return perr(y, CP2P__YAMUX_PERR_REFUSE_FLOOD, CP2P_ELIMIT,
                    "peer keeps opening streams we refuse", why);
    }
    y->stats.streams_refused++;
    if (!y->logged_refuse) {
        y->logged_refuse = true;
        CP2P_LOG(CP2P_LOG_DEBUG, "yamux", y->cfg.conn_id, "yamux.stream_refused id=%u why=%s",
                 id, reason);
    }
    if (y->ctrl_pending >= CP2P_YAMUX_MAX_CTRL_BACKLOG) {
        y->stats.refusals_unsent++; /* the peer is not reading what we already owe it */
        return 0;
    }
    /* The peer opened it: the RST may overtake anything queued. */
    int rc = q_frame(y, true, CP2P__YAMUX_WINDOW_UPDATE, CP2P__YAMUX_RST, id, 0);
    if (rc < 0) {
        *why = why_nomem;
    }
    return rc;
}

/* SYN from the peer. On success *out is the new stream, or NULL when it was refused. */
static int open_inbound(cp2p__yamux *y, uint32_t id, cp2p__yamux_stream **out, const char **why)
{
    *out = NULL;
    if (is_local_id(y, id)) {
        return perr(y, CP2P__YAMUX_PERR_PARITY, CP2P_EPROTO,
                    "peer opened a stream ID of our parity", why);
    }
    int rc = id_mark(y, id, why);
    if (rc < 0) {
        return rc;
    }
    const char *refuse = NULL;
    cp2p__yamux_stream *s = NULL;
    if (y->local_goaway) {
        refuse = "GoAway sent";
    } else if (y->n_inbound >= y->cfg.max_inbound_streams) {
        refuse = "too many inbound streams";
    } else if (y->n_unacked_in >= y->cfg.max_unacked_inbound) {
        refuse = "too many inbound streams not yet accepted";
    } else if ((s = stream_new(y, id, false)) == NULL) {
        refuse = "out of memory";
    } else if (tbl_put(y, s) < 0) {
        stream_free(y, s);
        s = NULL;
        refuse = "out of memory";
    }
    if (refuse != NULL) {
        return refuse_stream(y, id, refuse, why);
    }
    y->stats.streams_opened_remote++;
    ev_set(y, s, EVB_OPENED);
    *out = s;
    return 0;
}

static int empty_frame(cp2p__yamux *y, const char **why)
{
    if (!cp2p__token_bucket_take(&y->b_empty, 1, y->now)) {
        return perr(y, CP2P__YAMUX_PERR_EMPTY_FLOOD, CP2P_ELIMIT,
                    "peer sends frames that do nothing", why);
    }
    return 0;
}

static int on_stream_frame(cp2p__yamux *y, const cp2p__yamux_hdr *h, const char **why)
{
    uint32_t id = h->stream_id;
    cp2p__yamux_stream *s;
    int rc;

    if (id == 0) {
        return perr(y, CP2P__YAMUX_PERR_STREAM_ZERO, CP2P_EPROTO,
                    "data or window update on stream 0", why);
    }
    if (h->flags & CP2P__YAMUX_SYN) {
        if ((rc = open_inbound(y, id, &s, why)) < 0) {
            return rc;
        }
    } else if ((s = tbl_get(y, id)) == NULL && (rc = check_gone_id(y, id, why)) < 0) {
        return rc;
    }
    if (s == NULL) {
        return discard_frame(y, h);
    }
    if ((h->flags & CP2P__YAMUX_ACK) && s->outbound && !s->acked) {
        s->acked = true;
        unacked_done(y, s);
    }
    if (h->flags & CP2P__YAMUX_RST) {
        /* Resets of streams the peer itself opened are the "rapid reset" churn we budget. */
        if (!s->outbound && !cp2p__token_bucket_take(&y->b_reset, 1, y->now)) {
            return perr(y, CP2P__YAMUX_PERR_RESET_FLOOD, CP2P_ELIMIT,
                        "peer resets streams faster than the budget allows", why);
        }
        y->stats.streams_reset_remote++;
        /* go-yamux puts an error code in the length of a WindowUpdate with RST. */
        uint32_t code = h->type == CP2P__YAMUX_WINDOW_UPDATE ? h->length : 0;
        (void)stream_kill(y, s, 0, code, true);
        if (h->type == CP2P__YAMUX_DATA && h->length > 0) {
            start_body(y, NULL, h->length, false);
        }
        return 0;
    }
    if (h->type == CP2P__YAMUX_WINDOW_UPDATE) {
        y->stats.window_updates_in++;
        if (h->length > 0) {
            if (s->send_window + h->length > UINT32_MAX) {
                return perr(y, CP2P__YAMUX_PERR_SEND_WINDOW, CP2P_EPROTO,
                            "window updates grant more than 2^32-1 bytes", why);
            }
            s->send_window += h->length;
            /* Wake the writer even while the session's output is full: a binding that keeps
             * other writers going may never let the output drain to half (wake_writers), and
             * this stream's own block is lifted; its next write says whether output has room. */
            if (s->want_write && !s->local_fin) {
                s->want_write = false;
                ev_set(y, s, EVB_WRITABLE);
            }
        } else if (h->flags == 0 && (rc = empty_frame(y, why)) < 0) {
            return rc;
        }
        return (h->flags & CP2P__YAMUX_FIN) ? on_remote_fin(y, s) : 0;
    }
    /* Data */
    if (h->length == 0) {
        if (h->flags == 0 && (rc = empty_frame(y, why)) < 0) {
            return rc;
        }
        return (h->flags & CP2P__YAMUX_FIN) ? on_remote_fin(y, s) : 0;
    }
    if (s->remote_fin) {
        return perr(y, CP2P__YAMUX_PERR_DATA_AFTER_FIN, CP2P_EPROTO,
                    "data after the peer's FIN", why);
    }
    if (h->length > s->recv_credit) {
        return perr(y, CP2P__YAMUX_PERR_WINDOW, CP2P_EPROTO,
                    "data beyond the receive window", why);
    }
    if (s->probe_active && s->rx_total + h->length > s->probe_limit) {
        rtt_sample(y, y->now_us - s->probe_t, true);
        s->probe_active = false;
    }
    if (!s->tune_started) {
        s->tune_started = true;
        tune_restart(s, y->now_us);
    }
    s->recv_credit -= h->length;
    s->rx_total += h->length;
    y->stats.data_bytes_in += h->length;
    bool fin = (h->flags & CP2P__YAMUX_FIN) != 0;
    if (!s->orphan && h->length > y->cfg.max_session_recv - y->recv_buffered) {
        y->stats.recv_cap_resets++;
        if (!y->logged_cap) {
            y->logged_cap = true;
            CP2P_LOG(CP2P_LOG_DEBUG, "yamux", y->cfg.conn_id,
                     "yamux.recv_cap_reset stream=%u buffered=%zu", id, y->recv_buffered);
        }
        if ((rc = core_reset(y, s, CP2P_ELIMIT, why)) < 0) {
            return rc;
        }
        start_body(y, NULL, h->length, false);
        return 0;
    }
    s->rx_inflight = h->length;
    start_body(y, s, h->length, fin);
    return 0;
}

static int on_ping(cp2p__yamux *y, const cp2p__yamux_hdr *h, const char **why)
{
    if (h->stream_id != 0) {
        return perr(y, CP2P__YAMUX_PERR_STREAM_ZERO, CP2P_EPROTO, "ping on a stream other than 0",
                    why);
    }
    uint16_t f = h->flags & (CP2P__YAMUX_SYN | CP2P__YAMUX_ACK);
    if (f == CP2P__YAMUX_SYN) {
        if (!cp2p__token_bucket_take(&y->b_ping, 1, y->now)) {
            return perr(y, CP2P__YAMUX_PERR_PING_FLOOD, CP2P_ELIMIT,
                        "peer pings faster than the budget allows", why);
        }
        if (y->pongs_queued >= y->cfg.max_pong_backlog) {
            y->stats.pongs_dropped++;
            return 0;
        }
        int rc = q_frame(y, true, CP2P__YAMUX_PING, CP2P__YAMUX_ACK, 0, h->length);
        if (rc < 0) {
            *why = why_nomem;
            return rc;
        }
        y->pongs_queued++;
        y->stats.pongs_sent++;
        return 0;
    }
    if (f == CP2P__YAMUX_ACK) {
        if (y->ping_active && h->length == y->ping_value) {
            uint64_t rtt_us = y->now_us - y->ping_sent_us;
            y->ping_active = false;
            rtt_sample(y, rtt_us, false);
            sev_push(y, &(cp2p__yamux_event){.type = CP2P__YAMUX_EV_PING,
                                             .rtt_ms = rtt_us / 1000});
            return 0;
        }
        if (!cp2p__token_bucket_take(&y->b_ping, 1, y->now)) {
            return perr(y, CP2P__YAMUX_PERR_PING_FLOOD, CP2P_ELIMIT,
                        "peer sends ping answers we did not ask for", why);
        }
        y->stats.pongs_unmatched++;
        return 0;
    }
    return perr(y, CP2P__YAMUX_PERR_PING_FLAGS, CP2P_EPROTO,
                "ping with neither or both of SYN and ACK", why);
}

static int on_goaway(cp2p__yamux *y, const cp2p__yamux_hdr *h, const char **why)
{
    if (h->stream_id != 0) {
        return perr(y, CP2P__YAMUX_PERR_STREAM_ZERO, CP2P_EPROTO,
                    "GoAway on a stream other than 0", why);
    }
    if (!y->remote_goaway) {
        y->remote_goaway = true;
        CP2P_LOG(CP2P_LOG_DEBUG, "yamux", y->cfg.conn_id, "yamux.goaway_received code=%u",
                 h->length);
        sev_push(y, &(cp2p__yamux_event){.type = CP2P__YAMUX_EV_GOAWAY, .code = h->length});
    }
    return 0;
}

static ptrdiff_t on_header(cp2p__yamux *y, const uint8_t *in, size_t len, const char **why)
{
    cp2p__yamux_hdr h;
    cp2p__yamux_perr kind = CP2P__YAMUX_PERR_TYPE;
    ptrdiff_t n = hdr_decode(&h, in, len, y->cfg.max_window, why, &kind);
    if (n < 0) {
        return perr(y, kind, (int)n, *why, why);
    }
    if (n == 0) {
        return 0;
    }
    y->stats.frames_in++;
    int rc;
    switch (h.type) {
    case CP2P__YAMUX_DATA:
    case CP2P__YAMUX_WINDOW_UPDATE:
        rc = on_stream_frame(y, &h, why);
        break;
    case CP2P__YAMUX_PING:
        rc = on_ping(y, &h, why);
        break;
    case CP2P__YAMUX_GO_AWAY:
        rc = on_goaway(y, &h, why);
        break;
    default:
        *why = "frame type passed the decoder unchecked";
        rc = CP2P_ESTATE;
        break;
    }
    return rc < 0 ? rc : n;
}

static ptrdiff_t on_body(cp2p__yamux *y, const uint8_t *in, size_t len, const char **why)
{
    size_t k = min_sz(len, y->rx_remaining);
    cp2p__yamux_stream *s = y->rx_stream;
    if (s != NULL) {
        s->rx_inflight -= (uint32_t)k;
    }
    if (s == NULL) {
        y->stats.bytes_discarded += k;
    } else if (s->orphan) {
        /* Released after our FIN: drop the bytes and give the window straight back, so the
         * peer can finish and send its FIN. */
        y->stats.bytes_discarded += k;
        s->consumed_total += k;
        int rc = maybe_window_update(y, s, false);
        if (rc < 0) {
            *why = why_nomem;
            return rc;
        }
    } else if (rb_append(y, s, in, k) < 0) {
        int rc = core_reset(y, s, CP2P_ENOMEM, why); /* clears rx_stream */
        if (rc < 0) {
            return rc;
        }
        y->stats.bytes_discarded += k;
    } else {
        ev_set(y, s, EVB_READABLE);
    }
    y->rx_remaining -= (uint32_t)k;
    if (y->rx_remaining == 0) {
        s = y->rx_stream;
        bool fin = y->rx_fin;
        y->rx_stream = NULL;
        set_state(y, YAMUX_EXPECT_HEADER);
        if (s != NULL && fin) {
            (void)on_remote_fin(y, s); /* frees an orphan */
        }
    }
    return (ptrdiff_t)k;
}

ptrdiff_t cp2p__yamux_recv(cp2p__yamux *y, const uint8_t *in, size_t len, uint64_t now,
                           const char **why)
{
    const char *unused;
    if (why == NULL) {
        why = &unused;
    }
    if (dead(y)) {
        *why = "session already ended";
        return CP2P_ECLOSED;
    }
    set_now(y, now);
    size_t off = 0;
    while (off < len) {
        ptrdiff_t n;
        switch (y->state) {
        case YAMUX_EXPECT_HEADER:
            n = on_header(y, in + off, len - off, why);
            break;
        case YAMUX_EXPECT_BODY:
            n = on_body(y, in + off, len - off, why);
            break;
        default:
            *why = "input after the session ended";
            n = CP2P_ESTATE;
            break;
        }
        if (n < 0) {
            session_fail(y, (int)n, *why);
            return n;
        }
        if (n == 0) {
            break;
        }
        off += (size_t)n;
    }
    return (ptrdiff_t)off;
}

/* ---- session API ---- */

int cp2p__yamux_new(const cp2p__yamux_config *cfg, bool is_client, cp2p__yamux **out)
{
    cp2p__yamux_config def;
    if (cfg == NULL) {
        cp2p__yamux_config_default(&def);
        cfg = &def;
    }
    if (out == NULL || !config_ok(cfg)) {
        return CP2P_EINVAL;
    }
    cp2p__yamux *y = cp2p_calloc(1, sizeof(*y));
    if (y == NULL) {
        return CP2P_ENOMEM;
    }
    int rc = cp2p__hashmap_init(&y->streams,
                                (size_t)cfg->max_inbound_streams + cfg->max_outbound_streams,
                                stream_key);
    if (rc != 0) {
        cp2p_free(y);
        return rc;
    }
    y->cfg = *cfg;
    y->is_client = is_client;
    y->state = YAMUX_EXPECT_HEADER;
    y->next_id = is_client ? 1 : 2;
    /* Budgets start full at time 0: y->now only grows, so the first refill fills them again. */
    cp2p__token_bucket_init(&y->b_reset, cfg->reset_per_sec, cfg->reset_burst, 0);
    cp2p__token_bucket_init(&y->b_refuse, cfg->refuse_per_sec, cfg->refuse_burst, 0);
    cp2p__token_bucket_init(&y->b_ping, cfg->ping_per_sec, cfg->ping_burst, 0);
    cp2p__token_bucket_init(&y->b_empty, cfg->empty_per_sec, cfg->empty_burst, 0);
    *out = y;
    return 0;
}

void cp2p__yamux_free(cp2p__yamux *y)
{
    if (y == NULL) {
        return;
    }
    while (y->all_head != NULL) {
        stream_free(y, y->all_head);
    }
    list_free(&y->main);
    list_free(&y->ctrl);
    cp2p__hashmap_fini(&y->streams, NULL, NULL);
    cp2p_free(y);
}

uint64_t cp2p__yamux_deadline(const cp2p__yamux *y)
{
    if (!y->ping_active || dead(y)) {
        return UINT64_MAX;
    }
    uint64_t d = y->ping_sent + y->cfg.ping_timeout_ms;
    return d < y->ping_sent ? UINT64_MAX : d;
}

void cp2p__yamux_on_timeout(cp2p__yamux *y, uint64_t now)
{
    set_now(y, now);
    if (y->ping_active && !dead(y) && y->now >= cp2p__yamux_deadline(y)) {
        y->ping_active = false;
        y->stats.ping_timeouts++;
        sev_push(y, &(cp2p__yamux_event){.type = CP2P__YAMUX_EV_PING, .err = CP2P_ETIMEDOUT});
    }
}

int cp2p__yamux_ping(cp2p__yamux *y, uint64_t now)
{
    if (dead(y)) {
        return CP2P_ECLOSED;
    }
    set_now(y, now);
    if (y->ping_active) {
        return 0;
    }
    uint32_t value = y->next_ping;
    int rc = q_frame(y, true, CP2P__YAMUX_PING, CP2P__YAMUX_SYN, 0, value);
    if (rc < 0) {
        return rc;
    }
    y->next_ping++;
    y->ping_active = true;
    y->ping_value = value;
    y->ping_sent = y->now;
    y->ping_sent_us = y->now_us;
    y->stats.pings_sent++;
    return 0;
}

bool cp2p__yamux_rtt(const cp2p__yamux *y, uint64_t *rtt_ms)
{
    if (!y->rtt_valid) {
        return false;
    }
    *rtt_ms = y->rtt_us / 1000;
    return true;
}

bool cp2p__yamux_rtt_us(const cp2p__yamux *y, uint64_t *rtt_us)
{
    if (!y->rtt_valid) {
        return false;
    }
    *rtt_us = y->rtt_us;
    return true;
}

void cp2p__yamux_set_clock_us(cp2p__yamux *y, uint64_t now_us)
{
    if (now_us > y->now_us) {
        y->now_us = now_us;
    }
    set_now(y, now_us / 1000);
}

int cp2p__yamux_goaway(cp2p__yamux *y, uint32_t code)
{
    if (dead(y)) {
        return CP2P_ECLOSED;
    }
    if (y->local_goaway) {
        return CP2P_ESTATE;
    }
    /* A normal GoAway keeps its place after the data: js-libp2p treats it as the end of the
     * transport (its streams see EOF at once), so what we queued before it must arrive first.
     * An error GoAway goes ahead: the session is ending anyway. */
    int rc = q_frame(y, code != CP2P__YAMUX_GOAWAY_NORMAL, CP2P__YAMUX_GO_AWAY, 0, 0, code);
    if (rc < 0) {
        return rc;
    }
    y->local_goaway = true;
    return 0;
}

void cp2p__yamux_abort(cp2p__yamux *y, int err)
{
    if (dead(y)) {
        return;
    }
    set_state(y, YAMUX_ABORTED);
    y->ping_active = false;
    y->fail_err = err;
    y->fail_why = "connection closed";
    sev_push(y, &(cp2p__yamux_event){
                    .type = CP2P__YAMUX_EV_SESSION_ERROR, .err = err, .why = y->fail_why});
    kill_all(y, err);
}

bool cp2p__yamux_closed(const cp2p__yamux *y)
{
    return dead(y);
}

size_t cp2p__yamux_num_streams(const cp2p__yamux *y)
{
    return (size_t)y->n_inbound + y->n_outbound;
}

const cp2p__yamux_stats *cp2p__yamux_get_stats(const cp2p__yamux *y)
{
    return &y->stats;
}

/* ---- stream API ---- */

int cp2p__yamux_stream_open(cp2p__yamux *y, void *user, cp2p__yamux_stream **out)
{
    if (dead(y) || y->local_goaway || y->remote_goaway) {
        return CP2P_ECLOSED;
    }
    if (y->n_outbound >= y->cfg.max_outbound_streams ||
        y->n_unacked_out >= y->cfg.max_unacked_outbound) {
        return CP2P_EFULL;
    }
    /* go-yamux stops at MaxUint32-1 (ErrStreamsExhausted). */
    if (y->next_id >= UINT32_MAX - 1) {
        return CP2P_ELIMIT;
    }
    cp2p__yamux_stream *s = stream_new(y, y->next_id, true);
    if (s == NULL) {
        return CP2P_ENOMEM;
    }
    int rc = tbl_put(y, s);
    if (rc == 0) {
        /* SYN on a WindowUpdate carrying any window beyond the spec's (go-yamux, js). */
        rc = q_frame(y, false, CP2P__YAMUX_WINDOW_UPDATE, CP2P__YAMUX_SYN, s->id,
                     s->recv_window - s->recv_credit);
        s->syn_pos = y->main_enq;
    }
    if (rc < 0) {
        stream_free(y, s);
        return rc;
    }
    s->recv_credit = s->recv_window;
    s->granted_total = s->recv_window;
    s->surfaced = true;
    s->user = user;
    y->next_id += 2;
    y->stats.streams_opened_local++;
    *out = s;
    return 0;
}

int cp2p__yamux_stream_accept(cp2p__yamux_stream *s)
{
    cp2p__yamux *y = s->y;
    if (s->outbound) {
        return CP2P_EINVAL;
    }
    if (s->reset) {
        return CP2P_ECANCELED;
    }
    if (dead(y)) {
        return CP2P_ECLOSED;
    }
    if (s->acked) {
        return 0;
    }
    /* The ACK also grants whatever window is owed (a configured window above the spec's). */
    uint64_t used = recv_used(s);
    uint32_t delta = used < s->recv_window && !s->remote_fin ? (uint32_t)(s->recv_window - used)
                                                             : 0;
    int rc = q_frame(y, false, CP2P__YAMUX_WINDOW_UPDATE, CP2P__YAMUX_ACK, s->id, delta);
    if (rc < 0) {
        session_fail(y, rc, why_nomem);
        return rc;
    }
    accept_mark(y, s);
    s->recv_credit += delta;
    s->granted_total += delta;
    return 0;
}

ptrdiff_t cp2p__yamux_stream_write(cp2p__yamux_stream *s, const void *data, size_t len)
{
    cp2p__yamux *y = s->y;
    if (s->reset) {
        return CP2P_ECANCELED;
    }
    if (dead(y) || s->local_fin) {
        return CP2P_ECLOSED;
    }
    if (len == 0) {
        return 0;
    }
    size_t room_out = y->cfg.max_out_buffered > y->data_mem
                          ? y->cfg.max_out_buffered - y->data_mem
                          : 0;
    size_t n = len;
    if (n > s->send_window) {
        n = (size_t)s->send_window;
        y->stats.window_stalls++;
    }
    if (n > room_out) {
        n = room_out;
        y->stats.out_stalls++;
        y->out_blocked = true;
    }
    if (n < len) {
        s->want_write = true;
    }
    if (n == 0) {
        return 0;
    }
    if (ack_flag(s) != 0) {
        int rc = cp2p__yamux_stream_accept(s);
        if (rc < 0) {
            return rc;
        }
    }
    size_t done = q_data(y, s, data, n);
    s->send_window -= done;
    if (done == 0) {
        return CP2P_ENOMEM;
    }
    if (done < n) {
        /* Out of memory part-way: the next out_done() wakes the writer to retry. */
        s->want_write = true;
        y->out_blocked = true;
    }
    return (ptrdiff_t)done;
}

size_t cp2p__yamux_stream_peek(const cp2p__yamux_stream *s, cp2p_slice out[2])
{
    if (s->rb_len == 0) {
        return 0;
    }
    size_t first = min_sz(s->rb_len, s->rb_cap - s->rb_head);
    out[0].ptr = s->rb + s->rb_head;
    out[0].len = first;
    if (first == s->rb_len) {
        return 1;
    }
    out[1].ptr = s->rb;
    out[1].len = s->rb_len - first;
    return 2;
}

int cp2p__yamux_stream_consumed(cp2p__yamux_stream *s, size_t n, uint64_t now)
{
    cp2p__yamux *y = s->y;
    if (n > s->rb_len) {
        return CP2P_EINVAL;
    }
    set_now(y, now);
    if (n == 0) {
        return 0;
    }
    s->rb_head = (s->rb_head + n) % s->rb_cap;
    s->rb_len -= n;
    y->recv_buffered -= n;
    s->consumed_total += n;
    if (s->rb_len == 0) {
        s->rb_head = 0;
        if (s->remote_fin || !s->in_table) {
            rb_drop(y, s); /* nothing more can arrive */
        }
    }
    if (dead(y)) {
        return 0;
    }
    bool grew = autotune(y, s);
    int rc = maybe_window_update(y, s, grew);
    if (rc < 0) {
        session_fail(y, rc, why_nomem);
    }
    return rc;
}

ptrdiff_t cp2p__yamux_stream_read(cp2p__yamux_stream *s, void *buf, size_t cap, uint64_t now)
{
    if (s->reset) {
        return CP2P_ECANCELED;
    }
    cp2p_slice sl[2];
    size_t nsl = cp2p__yamux_stream_peek(s, sl);
    size_t done = 0;
    for (size_t i = 0; i < nsl && done < cap; i++) {
        size_t k = min_sz(cap - done, sl[i].len);
        memcpy((uint8_t *)buf + done, sl[i].ptr, k);
        done += k;
    }
    int rc = cp2p__yamux_stream_consumed(s, done, now);
    if (rc < 0) {
        return rc;
    }
    return (ptrdiff_t)done;
}

bool cp2p__yamux_stream_eof(const cp2p__yamux_stream *s)
{
    return s->remote_fin && s->rb_len == 0;
}

int cp2p__yamux_stream_close_write(cp2p__yamux_stream *s)
{
    cp2p__yamux *y = s->y;
    if (s->reset) {
        return CP2P_ECANCELED;
    }
    if (s->local_fin) {
        return 0;
    }
    if (dead(y)) {
        return CP2P_ECLOSED;
    }
    uint16_t flags = CP2P__YAMUX_FIN | ack_flag(s);
    int rc = q_frame(y, false, CP2P__YAMUX_WINDOW_UPDATE, flags, s->id, 0);
    if (rc < 0) {
        session_fail(y, rc, why_nomem);
        return rc;
    }
    if (flags & CP2P__YAMUX_ACK) {
        accept_mark(y, s);
    }
    s->local_fin = true;
    s->want_write = false;
    s->ev_bits &= (uint8_t)~EVB_WRITABLE;
    if (s->remote_fin) {
        (void)stream_finish(y, s); /* held by the application: not freed */
    }
    return 0;
}

int cp2p__yamux_stream_reset(cp2p__yamux_stream *s, uint32_t code)
{
    cp2p__yamux *y = s->y;
    if (s->reset || dead(y)) {
        return 0;
    }
    int rc = 0;
    if (s->in_table) {
        rc = q_rst(y, s, code);
    }
    y->stats.streams_reset_local++;
    (void)stream_kill(y, s, CP2P_ECANCELED, code, false);
    if (rc < 0) {
        session_fail(y, rc, why_nomem);
    }
    return rc;
}

void cp2p__yamux_stream_release(cp2p__yamux_stream *s)
{
    if (s == NULL) {
        return;
    }
    cp2p__yamux *y = s->y;
    ev_unlink(y, s);
    s->ev_bits = 0;
    s->released = true;
    s->user = NULL;
    s->want_write = false;
    if (!s->in_table || dead(y)) {
        stream_free(y, s);
        return;
    }
    if (!s->local_fin) {
        /* Abortive: the application gave up a stream it was still writing. */
        int rc = q_rst(y, s, 0);
        y->stats.streams_reset_local++;
        (void)stream_kill(y, s, CP2P_ECANCELED, 0, false); /* released: frees it */
        if (rc < 0) {
            session_fail(y, rc, why_nomem);
        }
        return;
    }
    /* Our side is done; the peer's is not. Keep the stream until the peer closes, discarding
     * and re-crediting what it sends (go-yamux Close = CloseRead + CloseWrite). */
    s->orphan = true;
    s->consumed_total += s->rb_len;
    rb_drop(y, s);
    s->probe_active = false;
    int rc = maybe_window_update(y, s, false);
    if (rc < 0) {
        session_fail(y, rc, why_nomem);
    }
}

uint32_t cp2p__yamux_stream_id(const cp2p__yamux_stream *s)
{
    return s->id;
}

void *cp2p__yamux_stream_user(const cp2p__yamux_stream *s)
{
    return s->user;
}

void cp2p__yamux_stream_set_user(cp2p__yamux_stream *s, void *user)
{
    s->user = user;
}

void cp2p__yamux_stream_get_info(const cp2p__yamux_stream *s, cp2p__yamux_stream_info *info)
{
    *info = (cp2p__yamux_stream_info){
        .id = s->id,
        .outbound = s->outbound,
        .acked = s->acked,
        .local_fin = s->local_fin,
        .remote_fin = s->remote_fin,
        .reset = s->reset,
        .buffered = s->rb_len,
        .send_window = s->send_window,
        .recv_window = s->recv_window,
        .recv_credit = s->recv_credit,
    };
}
