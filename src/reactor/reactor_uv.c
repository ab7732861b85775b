/* Reactors and channels on the host (cp2p/reactor.h): the switch is a set of services (one for
 * the keepalive, which tracks connected peers, and one per channel, which receives its inbound
 * streams and gives its outbound streams the channel's priority); each peer's channel core
 * (chan.c) decides, this file moves bytes between it and the streams.
 *
 * Lifetimes. A peer record lives from the keepalive service's peer_ready (or an inbound
 * channel stream that beats it) to its peer_gone, and past that while a worker still runs
 * receive for it (refs). States: CONNECTED (no reactor knows it yet: our keepalive stream is
 * negotiating), ADDED (reactors told), FOREIGN (the peer refused the keepalive: no switch
 * there), REMOVED (reactors told it went; waits for peer_gone). Outbound streams are held by an
 * rp_out that outlives the peer while write callbacks are pending (detached, then freed by
 * the last callback), as in framed links. Inbound streams are reset and freed at once.
 *
 * Re-entrancy. User callbacks run only from process() (add/remove, receive on the loop, send
 * completions), which every stream, timer and service callback calls; a call from a callback
 * that must tear a peer down (cp2p_reactor_peer_stop) only marks it, and process() acts. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <cp2p/reactor.h>

#include "reactor/chan.h"
#include "reactor/nodeinfo.h"
#include "reactor/reactor.h"
#include "util/alloc.h"
#include "util/hashmap.h"
#include "util/limits.h"
#include "util/log_internal.h"

#define RLOG(lvl, ...) CP2P_LOG(CP2P_LOG_##lvl, "reactor", 0, __VA_ARGS__)

#define KA_CH SIZE_MAX
#define NI_CH (SIZE_MAX - 1) /* the node info stream */
#define DELIVER_BUDGET 64 /* messages delivered per process() of one peer (our choice) */
#define KA_OPEN_ATTEMPTS 3
#define KA_RETRY_MS 1000
#define REASON_MAX 64
/* A channel whose stream failed or died waits before it reopens: 100 ms, doubling to 5 s, back
 * to the start once a stream opens (our choice; framed links use the same shape). */
/* Inbound streams of one channel and peer: one is read, up to this many more wait for it to end
 * (a sender may use a stream per message, as CometBFT's libp2p transport seems to). Our
 * choice; past it new ones are refused. */
#define IN_MAX_PER_CHANNEL 8
#define CH_REOPEN_MS 100
#define CH_REOPEN_MAX_MS 5000

typedef struct rp_out rp_out;
typedef struct rp_in rp_in;

/* REJECTED: the node info handshake failed (reason in `reason`); like REMOVED it waits for
 * peer_gone, and no reactor ever heard of the peer. */
enum { P_CONNECTED, P_ADDED, P_FOREIGN, P_REMOVED, P_REJECTED };

typedef struct rp_sreq {
    struct rp_sreq *next;
    cp2p_reactor_send_cb cb;
    void *ud;
    uint8_t ch;
    int status;
} rp_sreq;

typedef struct rjob {
    struct rjob *next;
    cp2p_reactor_peer *p;
    size_t ch;
    size_t len;
    uint8_t data[];
} rjob;

struct rp_out {
    cp2p_switch *sw;      /* NULL once the switch is gone */
    cp2p_reactor_peer *p; /* NULL once detached */
    size_t ch;            /* channel index, or KA_CH */
    cp2p_stream *s;
    size_t writes;
    bool opening;
};

struct rp_in {
    rp_in *next; /* the channel's streams: the first is read, the others wait their turn */
    cp2p_reactor_peer *p;
    size_t ch;
    cp2p_stream *s;
    bool reading;
};

typedef struct rp_wreq {
    rp_out *o;
    size_t len;
} rp_wreq;

struct cp2p_reactor_peer {
    cp2p_switch *sw;
    cp2p_peer_id id;
    cp2p__chan_peer *core;
    int state;
    rp_out *out[CP2P_SWITCH_MAX_CHANNELS];
    rp_in *in[CP2P_SWITCH_MAX_CHANNELS];
    bool delivering[CP2P_SWITCH_MAX_CHANNELS];
    uint64_t reopen_at[CP2P_SWITCH_MAX_CHANNELS]; /* 0: may open now */
    uint32_t reopen_ms[CP2P_SWITCH_MAX_CHANNELS]; /* next delay; 0: the first */
    rp_out *ka_out;
    rp_in *ka_in;
    /* The node info handshake: ours sent on ni_out, theirs read from ni_in into ni_rd. */
    rp_out *ni_out;
    rp_in *ni_in;
    cp2p__nodeinfo_reader *ni_rd;
    bool ni_sent, ni_refused, ni_got;
    uint32_t ni_attempts;
    uint64_t ni_retry_at, hs_deadline;
    cp2p_node_info info; /* theirs, once ni_got */
    void *data[CP2P_SWITCH_MAX_REACTORS];
    rp_sreq *done_h, *done_t; /* sends queued at once, completed on the next turn */
    bool stop_req, close_conn;
    char reason[REASON_MAX];
    uint32_t refs; /* worker jobs in flight */
    bool gone;     /* out of the map (peer_gone or switch stop): free once refs == 0 */
    uint32_t ka_attempts;
    uint64_t ka_retry_at;
    bool logged_bad; /* one INFO line per peer for bad input (STYLE.md 9), then counters only */
    uint64_t buffers_conn; /* id of the connection conn_send_buffer was set on (ids start at 1) */
};

struct cp2p_reactor {
    cp2p_switch *sw;
    size_t idx;
    char *name;
    cp2p_reactor_desc d;
    cp2p_channel_desc chans[CP2P_REACTOR_MAX_CHANNELS];
    void *ud;
    uv_thread_t *threads;
    uint32_t nthreads;
    uv_mutex_t mu;
    uv_cond_t cv;
    rjob *qh, *qt;
    bool stop, pool;
};

typedef struct ch_ctx {
    cp2p_switch *sw;
    size_t idx;
} ch_ctx;

struct cp2p_switch {
    cp2p_host *h;
    cp2p_switch_config cfg;
    bool started, stopping;
    cp2p_reactor *reactors[CP2P_SWITCH_MAX_REACTORS];
    size_t n_reactors;
    cp2p__chan_desc cdesc[CP2P_SWITCH_MAX_CHANNELS];
    cp2p_reactor *ch_reactor[CP2P_SWITCH_MAX_CHANNELS];
    char ch_proto[CP2P_SWITCH_MAX_CHANNELS][sizeof(CP2P_CHANNEL_PROTOCOL_PREFIX) + 4];
    ch_ctx ctx[CP2P_SWITCH_MAX_CHANNELS];
    cp2p_service *ch_svc[CP2P_SWITCH_MAX_CHANNELS];
    size_t nch;
    cp2p__chan_ch_stats past[CP2P_SWITCH_MAX_CHANNELS]; /* of freed peers */
    cp2p__chan_stats past_peers;                       /* of freed peers */
    cp2p__chan_config core_cfg;
    cp2p_service *ka_svc;
    cp2p_service *ni_svc;
    cp2p_node_info info;                      /* ours */
    uint8_t ni_wire[CP2P__NODEINFO_WIRE_MAX]; /* ours, encoded at start */
    size_t ni_wire_len;
    cp2p_hashmap peers;
    bool closing;                  /* cp2p_switch_close or cp2p_switch_stop called */
    bool keep;                     /* ... stop: keep the handle once stopped */
    bool stopped;                  /* stopped and kept: cp2p_switch_reset may run */
    struct {
        cp2p_switch_close_cb cb;
        void *ud;
    } quit[CP2P_SWITCH_MAX_QUIT_WAITERS]; /* cp2p_switch_on_quit */
    size_t n_quit;
    bool host_closed;              /* the host's close reached the keepalive service */
    uv_timer_t *closer;            /* runs the close on the next turn */
    cp2p_switch_close_cb close_cb;
    void *close_ud;
    uv_timer_t *timer;
    uint64_t timer_at; /* 0: stopped */
    uv_async_t *async;
    uv_mutex_t done_mu;
    rjob *done_h;
    bool mu_init;
    cp2p_switch_stats st;
};

static uint64_t now_ms(const cp2p_switch *sw)
{
    return uv_now(cp2p_host_loop(sw->h));
}

static cp2p_slice peer_key(const void *item)
{
    const cp2p_reactor_peer *p = item;
    return (cp2p_slice){p->id.bytes, p->id.len};
}

void cp2p_switch_config_default(cp2p_switch_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg)); /* packet_size, stream_backlog: chosen at cp2p_switch_new */
    cfg->ping_interval_ms = CP2P_SWITCH_PING_INTERVAL_MS;
    cfg->pong_timeout_ms = CP2P_SWITCH_PONG_TIMEOUT_MS;
    cfg->max_send_waiters = CP2P_SWITCH_MAX_SEND_WAITERS;
    cfg->max_peers = CP2P_SWITCH_MAX_PEERS;
    cfg->handshake_timeout_ms = CP2P_SWITCH_HANDSHAKE_TIMEOUT_MS;
}

void cp2p_node_info_default(cp2p_node_info *ni)
{
    memset(ni, 0, sizeof(*ni));
    ni->p2p_version = CP2P_NODEINFO_P2P_VERSION;
    ni->block_version = CP2P_NODEINFO_BLOCK_VERSION;
    snprintf(ni->network, sizeof(ni->network), "%s", CP2P_NODEINFO_NETWORK);
    snprintf(ni->version, sizeof(ni->version), "cp2p/%s", cp2p_version());
    snprintf(ni->moniker, sizeof(ni->moniker), "%s", CP2P_NODEINFO_MONIKER);
}

static void process(cp2p_reactor_peer *p);
static void arm_timer(cp2p_switch *sw, uint64_t at);
static void set_state(cp2p_reactor_peer *p, int state);

/* ---- lifecycle ---- */

int cp2p_switch_new(cp2p_host *h, const cp2p_switch_config *cfg, cp2p_switch **out)
{
    if (h == NULL || out == NULL) {
        return CP2P_EINVAL;
    }
    cp2p_switch_config c;
    if (cfg != NULL) {
        c = *cfg;
    } else {
        cp2p_switch_config_default(&c);
    }
    if (c.packet_size == 0) {
        c.packet_size = c.send_rate != 0 ? CP2P_SWITCH_PACKET : CP2P_SWITCH_PACKET_UNLIMITED;
    }
    if (c.stream_backlog == 0) {
        c.stream_backlog = 4 * c.packet_size;
    }
    if (c.max_send_waiters == 0) {
        c.max_send_waiters = CP2P_SWITCH_MAX_SEND_WAITERS;
    }
    if (c.max_peers == 0) {
        c.max_peers = CP2P_SWITCH_MAX_PEERS;
    }
    if (c.handshake_timeout_ms == 0) {
        c.handshake_timeout_ms = CP2P_SWITCH_HANDSHAKE_TIMEOUT_MS;
    }
    cp2p_node_info ni;
    const char *why;
    if (c.node_info != NULL) {
        ni = *c.node_info;
    } else {
        cp2p_node_info_default(&ni);
    }
    ni.node_id[0] = 0;
    ni.n_channels = 0;
    if (cp2p__nodeinfo_check(&ni, &why) != 0) {
        RLOG(INFO, "reactor.bad_node_info: ours: %s", why);
        return CP2P_EINVAL;
    }
    c.node_info = NULL; /* copied into the switch */
    if (c.send_rate != 0 && c.send_burst == 0) {
        c.send_burst = c.send_rate / 10 > c.packet_size ? c.send_rate / 10 : (uint32_t)c.packet_size;
    }
    if (c.recv_rate != 0 && c.recv_burst == 0) {
        c.recv_burst = c.recv_rate / 10 > c.packet_size ? c.recv_rate / 10 : (uint32_t)c.packet_size;
    }
    if ((c.ping_interval_ms != 0 && c.pong_timeout_ms == 0) || c.packet_size < 64 ||
        c.stream_backlog < c.packet_size || (c.send_rate != 0 && c.send_burst < c.packet_size)) {
        return CP2P_EINVAL;
    }
    cp2p_switch *sw = cp2p_calloc(1, sizeof(*sw));
    if (sw == NULL) {
        return CP2P_ENOMEM;
    }
    sw->h = h;
    sw->cfg = c;
    sw->info = ni;
    int rc = cp2p__hashmap_init(&sw->peers, c.max_peers, peer_key);
    if (rc != 0) {
        cp2p_free(sw);
        return rc;
    }
    *out = sw;
    return 0;
}

int cp2p_switch_add_reactor(cp2p_switch *sw, const cp2p_reactor_desc *d, void *ud,
                            cp2p_reactor **out)
{
    if (sw == NULL || d == NULL || out == NULL || d->channels == NULL || d->n_channels == 0 ||
        d->n_channels > CP2P_REACTOR_MAX_CHANNELS || d->workers > 16) {
        return CP2P_EINVAL;
    }
    if (sw->started || sw->stopping) {
        return CP2P_ESTATE;
    }
    if (sw->n_reactors == CP2P_SWITCH_MAX_REACTORS ||
        sw->nch + d->n_channels > CP2P_SWITCH_MAX_CHANNELS) {
        return CP2P_EFULL;
    }
    for (size_t i = 0; i < d->n_channels; i++) {
        if (d->channels[i].priority > CP2P_STREAM_PRIORITY_MAX) {
            return CP2P_EINVAL;
        }
        for (size_t j = 0; j < sw->nch; j++) {
            if (sw->cdesc[j].id == d->channels[i].id) {
                return CP2P_ESTATE;
            }
        }
        for (size_t j = 0; j < i; j++) {
            if (d->channels[j].id == d->channels[i].id) {
                return CP2P_ESTATE;
            }
        }
    }
    cp2p_reactor *r = cp2p_calloc(1, sizeof(*r));
    const char *name = d->name != NULL ? d->name : "reactor";
    char *nm = r != NULL ? cp2p__memdup(name, strlen(name) + 1) : NULL;
    if (nm == NULL) {
        cp2p_free(r);
        return CP2P_ENOMEM;
    }
    r->sw = sw;
    r->idx = sw->n_reactors;
    r->name = nm;
    r->d = *d;
    r->d.name = nm;
    memcpy(r->chans, d->channels, d->n_channels * sizeof(*d->channels));
    r->d.channels = r->chans;
    r->ud = ud;
    for (size_t i = 0; i < d->n_channels; i++) {
        const cp2p_channel_desc *c = &d->channels[i];
        size_t k = sw->nch++;
        sw->cdesc[k] = (cp2p__chan_desc){
            .id = c->id,
            .priority = c->priority != 0 ? c->priority : 1,
            .send_cap = c->send_queue_capacity != 0 ? c->send_queue_capacity
                                                    : CP2P_CHANNEL_SEND_QUEUE,
            .recv_cap = c->recv_queue_capacity != 0 ? c->recv_queue_capacity
                                                    : CP2P_CHANNEL_RECV_QUEUE,
            .recv_buffer = c->recv_buffer_capacity != 0 ? c->recv_buffer_capacity
                                                        : CP2P_CHANNEL_RECV_BUFFER,
            .max_msg = c->recv_message_capacity != 0 ? c->recv_message_capacity
                                                     : CP2P_CHANNEL_MAX_MESSAGE,
        };
        sw->ch_reactor[k] = r;
        snprintf(sw->ch_proto[k], sizeof(sw->ch_proto[k]), "%s0x%02x",
                 CP2P_CHANNEL_PROTOCOL_PREFIX, c->id);
        sw->ctx[k] = (ch_ctx){sw, k};
    }
    sw->reactors[sw->n_reactors++] = r;
    *out = r;
    return 0;
}

/* ---- workers ---- */

static void worker_main(void *arg)
{
    cp2p_reactor *r = arg;
    cp2p_switch *sw = r->sw;
    for (;;) {
        uv_mutex_lock(&r->mu);
        while (!r->stop && r->qh == NULL) {
            uv_cond_wait(&r->cv, &r->mu);
        }
        if (r->stop) {
            uv_mutex_unlock(&r->mu);
            return;
        }
        rjob *j = r->qh;
        r->qh = j->next;
        if (r->qh == NULL) {
            r->qt = NULL;
        }
        uv_mutex_unlock(&r->mu);
        r->d.receive(r, sw->cdesc[j->ch].id, j->p, j->data, j->len, r->ud);
        uv_mutex_lock(&sw->done_mu);
        j->next = sw->done_h;
        sw->done_h = j;
        uv_mutex_unlock(&sw->done_mu);
        uv_async_send(sw->async);
    }
}

static void peer_free(cp2p_reactor_peer *p);

static void on_async(uv_async_t *a)
{
    cp2p_switch *sw = a->data;
    uv_mutex_lock(&sw->done_mu);
    rjob *j = sw->done_h;
    sw->done_h = NULL;
    uv_mutex_unlock(&sw->done_mu);
    /* The list is newest first; order between different channels does not matter, and a
     * channel has one job at a time. */
    while (j != NULL) {
        rjob *next = j->next;
        cp2p_reactor_peer *p = j->p;
        p->refs--;
        p->delivering[j->ch] = false;
        if (p->gone) {
            if (p->refs == 0) {
                peer_free(p);
            }
        } else {
            cp2p__chan_taken(p->core, j->ch);
            process(p);
        }
        cp2p_free(j);
        j = next;
    }
}

static void pool_stop(cp2p_reactor *r)
{
    if (!r->pool) {
        return;
    }
    uv_mutex_lock(&r->mu);
    r->stop = true;
    uv_cond_broadcast(&r->cv);
    uv_mutex_unlock(&r->mu);
    for (uint32_t i = 0; i < r->nthreads; i++) {
        uv_thread_join(&r->threads[i]);
    }
    rjob *j = r->qh;
    while (j != NULL) {
        rjob *next = j->next;
        j->p->refs--;
        j->p->delivering[j->ch] = false;
        cp2p_free(j);
        j = next;
    }
    r->qh = r->qt = NULL;
    cp2p_free(r->threads);
    r->threads = NULL;
    r->nthreads = 0;
    uv_cond_destroy(&r->cv);
    uv_mutex_destroy(&r->mu);
    r->pool = false;
}

static int pool_start(cp2p_reactor *r)
{
    if (r->d.workers == 0 || r->d.receive == NULL) {
        return 0;
    }
    r->threads = cp2p_calloc(r->d.workers, sizeof(*r->threads));
    if (r->threads == NULL) {
        return CP2P_ENOMEM;
    }
    if (uv_mutex_init(&r->mu) != 0) {
        cp2p_free(r->threads);
        r->threads = NULL;
        return CP2P_ENOMEM;
    }
    if (uv_cond_init(&r->cv) != 0) {
        uv_mutex_destroy(&r->mu);
        cp2p_free(r->threads);
        r->threads = NULL;
        return CP2P_ENOMEM;
    }
    r->pool = true;
    r->stop = false; /* a restart after cp2p_switch_reset */
    for (uint32_t i = 0; i < r->d.workers; i++) {
        if (uv_thread_create(&r->threads[i], worker_main, r) != 0) {
            pool_stop(r);
            return CP2P_ENOMEM;
        }
        r->nthreads++;
    }
    return 0;
}

/* ---- outbound streams ---- */

static void out_free_if_idle(rp_out *o)
{
    if (o->p == NULL && o->s == NULL && !o->opening && o->writes == 0) {
        cp2p_free(o);
    }
}

/* Detach the holder from its peer and end its stream (reset: what it holds is lost). */
static void out_release(rp_out *o)
{
    cp2p_stream *s = o->s;
    o->p = NULL;
    o->s = NULL;
    if (s != NULL) {
        cp2p_stream_reset(s);
    }
    out_free_if_idle(o);
}

/* The channel's stream failed or died: reopen only after a delay, so a peer that resets our
 * streams cannot make us reopen at network speed. */
static void ch_backoff(cp2p_reactor_peer *p, size_t ch)
{
    uint32_t ms = p->reopen_ms[ch] == 0 ? CH_REOPEN_MS : p->reopen_ms[ch];
    p->reopen_at[ch] = now_ms(p->sw) + ms;
    p->reopen_ms[ch] = ms * 2 > CH_REOPEN_MAX_MS ? CH_REOPEN_MAX_MS : ms * 2;
}

static rp_out **out_slot(cp2p_reactor_peer *p, size_t ch)
{
    return ch == KA_CH ? &p->ka_out : ch == NI_CH ? &p->ni_out : &p->out[ch];
}

/* The stream of o died: forget it; the channel reopens when it has something to send. */
static void out_dead(rp_out *o)
{
    cp2p_reactor_peer *p = o->p;
    *out_slot(p, o->ch) = NULL;
    if (o->ch != KA_CH) {
        cp2p__chan_stream_down(p->core, o->ch);
        ch_backoff(p, o->ch);
    } else if (p->state == P_ADDED) {
        p->ka_retry_at = now_ms(p->sw) + KA_RETRY_MS;
    }
    out_release(o);
}

static void on_written(cp2p_stream *s, int status, void *ud)
{
    rp_wreq *w = ud;
    rp_out *o = w->o;
    size_t len = w->len;
    (void)s;
    cp2p_free(w);
    o->writes--;
    if (o->p == NULL) {
        out_free_if_idle(o);
        return;
    }
    cp2p_reactor_peer *p = o->p;
    if (status != 0) {
        out_dead(o);
    } else if (o->ch != KA_CH) {
        cp2p__chan_written(p->core, o->ch, len);
    }
    process(p);
}

static int out_write(rp_out *o, const uint8_t *data, size_t len)
{
    rp_wreq *w = cp2p_malloc(sizeof(*w));
    if (w == NULL) {
        return CP2P_ENOMEM;
    }
    *w = (rp_wreq){o, len};
    int rc = cp2p_stream_write(o->s, data, len, on_written, w);
    if (rc != 0) {
        cp2p_free(w);
        return rc;
    }
    o->writes++;
    return 0;
}

static void out_read(cp2p_stream *s, ptrdiff_t n, const uint8_t *data, void *ud)
{
    rp_out *o = ud;
    (void)s;
    (void)data;
    if (n >= 0 || o->p == NULL) {
        return; /* nothing is read from our own streams */
    }
    cp2p_reactor_peer *p = o->p;
    out_dead(o);
    process(p);
}

static void maybe_add(cp2p_reactor_peer *p);

/* Our node info stream opened (or not): write it and close (FIN after the bytes), once. */
static void ni_opened(cp2p_reactor_peer *p, cp2p_stream *s, int status)
{
    cp2p_switch *sw = p->sw;
    p->ni_out = NULL;
    if (status == 0) {
        if (cp2p_stream_write(s, sw->ni_wire, sw->ni_wire_len, NULL, NULL) == 0) {
            p->ni_sent = true;
            cp2p_stream_close(s);
        } else {
            cp2p_stream_reset(s);
            status = CP2P_ECLOSED;
        }
    }
    if (status == CP2P_ENOTSUP) {
        p->ni_refused = true; /* no node info protocol there: the keepalive and the
                               * handshake timeout decide */
    } else if (status != 0 && ++p->ni_attempts < KA_OPEN_ATTEMPTS) {
        p->ni_retry_at = now_ms(sw) + KA_RETRY_MS;
    }
    process(p);
}

static void on_open(cp2p_stream *s, int status, void *ud)
{
    rp_out *o = ud;
    o->opening = false;
    if (o->p == NULL) {
        if (status == 0) {
            cp2p_stream_reset(s);
        }
        out_free_if_idle(o);
        return;
    }
    cp2p_reactor_peer *p = o->p;
    cp2p_switch *sw = p->sw;
    if (o->ch == NI_CH) {
        o->p = NULL;
        cp2p_free(o);
        ni_opened(p, status == 0 ? s : NULL, status);
        return;
    }
    if (status == 0 && cp2p_stream_read_start(s, out_read, o) != 0) {
        cp2p_stream_reset(s);
        status = CP2P_ECLOSED;
    }
    if (status != 0) {
        size_t ch = o->ch;
        *out_slot(p, ch) = NULL;
        o->p = NULL;
        cp2p_free(o);
        if (ch == KA_CH) {
            bool give_up = status == CP2P_ENOTSUP || ++p->ka_attempts >= KA_OPEN_ATTEMPTS;
            if (!give_up) {
                p->ka_retry_at = now_ms(sw) + KA_RETRY_MS;
            } else if (p->state == P_CONNECTED) {
                set_state(p, P_FOREIGN); /* no switch there: never added */
                sw->st.foreign_peers++;
            } else if (p->state == P_ADDED && !p->stop_req) {
                /* An added peer whose keepalive cannot be reopened stopped its switch (or
                 * cannot take streams): it leaves the reactors; its connection stays for the
                 * other services. */
                p->stop_req = true;
                snprintf(p->reason, sizeof(p->reason), "%s",
                         status == CP2P_ENOTSUP ? "peer stopped its switch" : "keepalive failed");
            }
        } else if (status == CP2P_ENOTSUP) {
            sw->st.channel_refused++;
            RLOG(DEBUG, "reactor.channel_refused: %s", sw->ch_proto[ch]);
            cp2p__chan_refused(p->core, ch);
        } else {
            cp2p__chan_stream_down(p->core, ch);
            ch_backoff(p, ch);
        }
        process(p);
        return;
    }
    /* The stream already has its priority: the service of its protocol sets it (the channel's,
     * or the highest for the keepalive). */
    o->s = s;
    if (o->ch == KA_CH) {
        p->ka_attempts = 0;
        maybe_add(p); /* once the peer's node info came too */
    } else {
        cp2p__chan_stream_up(p->core, o->ch);
        p->reopen_ms[o->ch] = 0;
    }
    process(p);
}

static void out_open(cp2p_reactor_peer *p, size_t ch)
{
    cp2p_switch *sw = p->sw;
    if (*out_slot(p, ch) != NULL) {
        return;
    }
    cp2p_conn *c = cp2p_host_conn_to(sw->h, &p->id);
    if (c == NULL) {
        return; /* the peer is going: peer_gone follows */
    }
    if (sw->cfg.conn_send_buffer != 0 && p->buffers_conn != cp2p_conn_id(c) &&
        cp2p_conn_set_send_buffers(c, sw->cfg.conn_send_buffer, sw->cfg.conn_send_buffer) == 0) {
        p->buffers_conn = cp2p_conn_id(c); /* every connection our streams go on (redials) */
    }
    rp_out *o = cp2p_calloc(1, sizeof(*o));
    if (o == NULL) {
        return; /* retried at the next process() that wants the stream */
    }
    const char *proto = ch == KA_CH   ? CP2P_REACTOR_KEEPALIVE_PROTOCOL
                        : ch == NI_CH ? CP2P_NODEINFO_PROTOCOL
                                      : sw->ch_proto[ch];
    cp2p_open_opts opts;
    cp2p_open_opts_default(&opts);
    opts.lazy_if_known = true;
    *o = (rp_out){.sw = sw, .p = p, .ch = ch, .opening = true};
    if (cp2p_conn_open_stream_opts(c, &proto, 1, &opts, on_open, o) != 0) {
        cp2p_free(o);
        if (ch == NI_CH) {
            p->ni_retry_at = now_ms(sw) + KA_RETRY_MS;
        } else if (ch != KA_CH) {
            ch_backoff(p, ch); /* e.g. the connection's stream limit: not at every event */
        } else {
            p->ka_retry_at = now_ms(sw) + KA_RETRY_MS;
        }
        return;
    }
    *out_slot(p, ch) = o;
}

/* ---- inbound streams ---- */

static void in_release(rp_in *in, bool reset)
{
    cp2p_reactor_peer *p = in->p;
    if (in->ch == KA_CH) {
        p->ka_in = NULL;
    } else if (in->ch == NI_CH) {
        p->ni_in = NULL;
    } else {
        /* Out of the channel's list; when it was the one read, the next one is read now. */
        rp_in **pp = &p->in[in->ch];
        while (*pp != in) {
            pp = &(*pp)->next;
        }
        *pp = in->next;
    }
    if (reset) {
        cp2p_stream_reset(in->s);
    } else {
        cp2p_stream_close(in->s);
    }
    cp2p_free(in);
}

static void ni_read(rp_in *in, ptrdiff_t n, const uint8_t *data);

static void in_read(cp2p_stream *s, ptrdiff_t n, const uint8_t *data, void *ud)
{
    rp_in *in = ud;
    cp2p_reactor_peer *p = in->p;
    cp2p_switch *sw = p->sw;
    (void)s;
    if (in->ch == NI_CH) {
        ni_read(in, n, data);
        process(p);
        return;
    }
    if (n < 0) {
        if (in->ch == KA_CH) {
            in_release(in, n != CP2P_EOF);
        } else {
            cp2p__chan_recv_end(p->core, in->ch);
            in_release(in, n != CP2P_EOF);
        }
        process(p);
        return;
    }
    const char *why = NULL;
    int rc;
    uint64_t now = now_ms(sw);
    if (in->ch == KA_CH) {
        if (cp2p__chan_keepalive_recv(p->core, data, (size_t)n, now, &why) != 0) {
            RLOG(INFO, "reactor.bad_keepalive: %s, peer removed", why); /* once: it goes */
            in_release(in, true);
            cp2p_reactor_peer_stop(p, "keepalive protocol violation");
        }
    } else if ((rc = cp2p__chan_recv(p->core, in->ch, data, (size_t)n, now, &why)) != 0) {
        if (rc != CP2P_ENOMEM) {
            sw->st.bad_streams++;
        }
        if (!p->logged_bad) {
            p->logged_bad = true; /* later ones only count: a peer cannot flood the log */
            RLOG(INFO, "reactor.bad_channel_stream: %s: %s, stream reset", sw->ch_proto[in->ch],
                 why);
        }
        in_release(in, true);
    }
    process(p);
}

static const char *const state_names[] = {"connected", "added", "foreign", "removed",
                                          "rejected"};

/* Every peer state change goes through here (STYLE.md 7), logged at trace level. */
static void set_state(cp2p_reactor_peer *p, int state)
{
    char id[CP2P_PEER_ID_STR_MAX];
    CP2P_LOG(CP2P_LOG_TRACE, "reactor", 0, "reactor.peer_state: %s %s -> %s",
             cp2p_peer_id_str(&p->id, id), state_names[p->state], state_names[state]);
    p->state = state;
}

static cp2p_reactor_peer *peer_find(const cp2p_switch *sw, const cp2p_peer_id *id)
{
    return cp2p__hashmap_find(&sw->peers, id->bytes, id->len);
}

static cp2p_reactor_peer *peer_get(cp2p_switch *sw, const cp2p_peer_id *id);
static void peer_remove(cp2p_reactor_peer *p, const char *reason);
static void peer_forget(cp2p_reactor_peer *p);

static void in_attach(cp2p_switch *sw, cp2p_stream *s, size_t ch)
{
    cp2p_conn *c = cp2p_stream_conn(s);
    const cp2p_peer_id *id = cp2p_conn_peer_id(c);
    /* An inbound stream may beat our peer_ready (the peer's came first): a peer with an open
     * connection gets its record now. */
    bool off = sw->stopping || sw->closing;
    cp2p_reactor_peer *p = off ? NULL : peer_find(sw, id);
    if (p != NULL && ch == NI_CH && !p->gone &&
        (p->state == P_ADDED || (p->state == P_REMOVED && !p->close_conn))) {
        /* A node info from a peer we added (or removed because its switch stopped): it
         * restarted its switch (cp2p_switch_reset), so the handshake starts over with a fresh
         * record. */
        if (p->state == P_ADDED) {
            peer_remove(p, "peer restarted its switch");
        }
        peer_forget(p);
        p = sw->stopping || sw->closing ? NULL : peer_find(sw, id);
    }
    if (p == NULL && !off && !sw->stopping && !sw->closing &&
        cp2p_host_conn_to(sw->h, id) != NULL) {
        p = peer_get(sw, id);
    }
    /* A channel's streams are read one after the other, never two at once (their messages
     * would interleave in the channel's buffer): a newer one waits, unread (yamux's window
     * holds its sender), until the one before it ends. A cp2p sender has one stream per
     * channel, so a newer one means it gave the older up (a reset that is on its way); a sender
     * with a stream per message is read message after message. */
    size_t n = 0;
    rp_in **tail = p == NULL     ? NULL
                   : ch == KA_CH ? &p->ka_in
                   : ch == NI_CH ? &p->ni_in
                                 : &p->in[ch];
    while (tail != NULL && *tail != NULL) {
        tail = &(*tail)->next;
        n++;
    }
    rp_in *in = NULL;
    bool single = ch == KA_CH || ch == NI_CH;
    if (p == NULL || p->state == P_REMOVED || p->state == P_REJECTED ||
        n > (single ? 0 : IN_MAX_PER_CHANNEL) ||
        (ch == NI_CH && (p->state != P_CONNECTED || p->ni_got)) ||
        (in = cp2p_calloc(1, sizeof(*in))) == NULL) {
        /* The keepalive has one stream, the node info one, once: a second one is refused. */
        sw->st.inbound_refused++;
        cp2p_stream_reset(s);
        return;
    }
    if (n > 0) {
        sw->st.inbound_waiting++;
    }
    *in = (rp_in){.p = p, .ch = ch, .s = s};
    *tail = in;
    process(p); /* starts reading if the channel wants to */
}

static void on_channel_inbound(cp2p_service *svc, cp2p_stream *s, void *ud)
{
    ch_ctx *cx = ud;
    (void)svc;
    in_attach(cx->sw, s, cx->idx);
}

static void on_ka_inbound(cp2p_service *svc, cp2p_stream *s, void *ud)
{
    (void)svc;
    in_attach(ud, s, KA_CH);
}

static void on_ni_inbound(cp2p_service *svc, cp2p_stream *s, void *ud)
{
    (void)svc;
    in_attach(ud, s, NI_CH);
}

/* ---- peers ---- */

static cp2p_reactor_peer *peer_get(cp2p_switch *sw, const cp2p_peer_id *id)
{
    cp2p_reactor_peer *p = peer_find(sw, id);
    if (p != NULL) {
        return p;
    }
    p = cp2p_calloc(1, sizeof(*p));
    if (p == NULL) {
        return NULL;
    }
    p->sw = sw;
    p->id = *id;
    if (cp2p__chan_peer_new(&sw->core_cfg, now_ms(sw), &p->core) != 0) {
        cp2p_free(p);
        return NULL;
    }
    int rc = cp2p__hashmap_insert(&sw->peers, p);
    if (rc != 0) {
        if (rc == CP2P_EFULL) {
            sw->st.peers_refused++;
        }
        cp2p__chan_peer_free(p->core);
        cp2p_free(p);
        return NULL;
    }
    p->state = P_CONNECTED;
    p->hs_deadline = now_ms(sw) + sw->cfg.handshake_timeout_ms;
    return p;
}

static void peer_add_to_reactors(cp2p_reactor_peer *p)
{
    cp2p_switch *sw = p->sw;
    set_state(p, P_ADDED);
    sw->st.peers_added++;
    sw->st.peers++;
    for (size_t i = 0; i < sw->n_reactors && p->state == P_ADDED; i++) {
        cp2p_reactor *r = sw->reactors[i];
        if (r->d.add_peer != NULL) {
            r->d.add_peer(r, p, r->ud);
        }
    }
}

static void run_send_done(cp2p_reactor_peer *p)
{
    while (p->done_h != NULL) {
        rp_sreq *q = p->done_h;
        p->done_h = q->next;
        if (p->done_h == NULL) {
            p->done_t = NULL;
        }
        if (q->cb != NULL) {
            q->cb(p, q->ch, q->status, q->ud);
        }
        cp2p_free(q);
    }
}

static void drain_events(cp2p_reactor_peer *p)
{
    cp2p__chan_event ev;
    while (cp2p__chan_next_event(p->core, &ev) == 1) {
        if (ev.type == CP2P__CHAN_EV_SEND_DONE) {
            rp_sreq *q = (rp_sreq *)(uintptr_t)ev.token;
            if (q->cb != NULL) {
                q->cb(p, q->ch, ev.status, q->ud);
            }
            cp2p_free(q);
        } else if (ev.type == CP2P__CHAN_EV_DEAD && !p->stop_req) {
            p->sw->st.pong_timeouts++;
            RLOG(INFO, "reactor.pong_timeout: peer removed");
            p->stop_req = true;
            p->close_conn = true;
            snprintf(p->reason, sizeof(p->reason), "%s", ev.why);
        }
    }
}

/* Tell the reactors the peer went and drop its streams; the record stays until peer_gone. */
static void peer_remove(cp2p_reactor_peer *p, const char *reason)
{
    cp2p_switch *sw = p->sw;
    int was = p->state;
    set_state(p, P_REMOVED);
    cp2p__chan_close(p->core);
    run_send_done(p);
    drain_events(p);
    for (size_t i = 0; i < sw->nch; i++) {
        if (p->out[i] != NULL) {
            rp_out *o = p->out[i];
            p->out[i] = NULL;
            out_release(o);
        }
        while (p->in[i] != NULL) {
            in_release(p->in[i], true);
        }
    }
    if (p->ka_out != NULL) {
        rp_out *o = p->ka_out;
        p->ka_out = NULL;
        out_release(o);
    }
    if (p->ka_in != NULL) {
        in_release(p->ka_in, true);
    }
    if (p->ni_out != NULL) {
        rp_out *o = p->ni_out;
        p->ni_out = NULL;
        out_release(o);
    }
    if (p->ni_in != NULL) {
        in_release(p->ni_in, true);
    }
    cp2p_free(p->ni_rd);
    p->ni_rd = NULL;
    if (was == P_ADDED) {
        sw->st.peers--;
        sw->st.peers_removed++;
        for (size_t i = 0; i < sw->n_reactors; i++) {
            cp2p_reactor *r = sw->reactors[i];
            if (r->d.remove_peer != NULL) {
                r->d.remove_peer(r, p, reason, r->ud);
            }
        }
    }
}

/* ---- the node info handshake ---- */

enum { REJ_BAD = 100, REJ_TIMEOUT };

/* The handshake failed: no reactor hears of the peer; counted by reason, logged once. */
static void reject(cp2p_reactor_peer *p, int which, const char *why)
{
    cp2p_switch *sw = p->sw;
    switch (which) {
    case CP2P__NI_NETWORK: sw->st.rejected_network++; break;
    case CP2P__NI_BLOCK_VERSION: sw->st.rejected_block_version++; break;
    case CP2P__NI_NO_CHANNELS: sw->st.rejected_no_channels++; break;
    case REJ_TIMEOUT: sw->st.handshake_timeouts++; break;
    default: sw->st.rejected_bad_node_info++; break;
    }
    char id[CP2P_PEER_ID_STR_MAX];
    RLOG(INFO, "reactor.peer_rejected: %s: %s%s", cp2p_peer_id_str(&p->id, id), why,
         sw->cfg.disconnect_rejected ? ", disconnected" : "");
    snprintf(p->reason, sizeof(p->reason), "%s", why);
    peer_remove(p, why); /* not added yet: only its streams go */
    set_state(p, P_REJECTED);
    if (sw->cfg.disconnect_rejected) {
        cp2p_conn *c = cp2p_host_conn_to(sw->h, &p->id);
        if (c != NULL) {
            cp2p_conn_close(c);
        }
    }
}

/* Added once the handshake is complete: our keepalive stream is open and the peer's node info
 * came and is compatible. Channels the peer does not serve are refused up front (CometBFT's
 * peer.hasChannel), so sends on them fail at once with CP2P_ENOTSUP. */
static void maybe_add(cp2p_reactor_peer *p)
{
    cp2p_switch *sw = p->sw;
    if (p->state != P_CONNECTED || !p->ni_got || p->ka_out == NULL || p->ka_out->s == NULL) {
        return;
    }
    for (size_t ch = 0; ch < sw->nch; ch++) {
        if (memchr(p->info.channels, sw->cdesc[ch].id, p->info.n_channels) == NULL) {
            cp2p__chan_refused(p->core, ch);
        }
    }
    peer_add_to_reactors(p);
}

static void ni_read(rp_in *in, ptrdiff_t n, const uint8_t *data)
{
    cp2p_reactor_peer *p = in->p;
    cp2p_switch *sw = p->sw;
    const char *why = "node info cut short";
    int rc = CP2P_EPROTO;
    if (n >= 0) {
        if (p->ni_rd == NULL && (p->ni_rd = cp2p_malloc(sizeof(*p->ni_rd))) != NULL) {
            cp2p__nodeinfo_reader_init(p->ni_rd);
        }
        rc = p->ni_rd == NULL ? CP2P_ENOMEM
                              : cp2p__nodeinfo_reader_feed(p->ni_rd, data, (size_t)n, &p->info,
                                                           &why);
        if (rc == 0) {
            return; /* more to come */
        }
    }
    if (rc == CP2P_ENOMEM) {
        /* ours, not the peer's fault: drop what was read; the handshake timeout decides */
        cp2p_free(p->ni_rd);
        p->ni_rd = NULL;
        in_release(in, true);
        return;
    }
    if (rc < 0) {
        reject(p, REJ_BAD, why); /* resets the stream */
        return;
    }
    cp2p_free(p->ni_rd);
    p->ni_rd = NULL;
    in_release(in, false);
    char id[CP2P_PEER_ID_STR_MAX];
    if (strcmp(p->info.node_id, cp2p_peer_id_str(&p->id, id)) != 0) {
        reject(p, REJ_BAD, "node info names another peer id");
        return;
    }
    int which = cp2p__nodeinfo_compatible(&sw->info, &p->info, &why);
    if (which != CP2P__NI_OK) {
        reject(p, which, why);
        return;
    }
    p->ni_got = true;
    maybe_add(p);
}

static void stats_add(cp2p__chan_ch_stats *a, const cp2p__chan_ch_stats *b)
{
    const uint64_t *src = (const uint64_t *)(const void *)b;
    uint64_t *dst = (uint64_t *)(void *)a;
    /* The levels at the end are not summed into the past. */
    size_t n = offsetof(cp2p__chan_ch_stats, send_queued) / sizeof(uint64_t);
    for (size_t i = 0; i < n; i++) {
        dst[i] += src[i];
    }
}

static void peer_free(cp2p_reactor_peer *p)
{
    cp2p_switch *sw = p->sw;
    for (size_t i = 0; i < sw->nch; i++) {
        cp2p__chan_ch_stats cs;
        cp2p__chan_ch_stats_get(p->core, i, &cs);
        stats_add(&sw->past[i], &cs);
    }
    cp2p__chan_stats ps;
    cp2p__chan_stats_get(p->core, &ps);
    sw->past_peers.bytes_sent += ps.bytes_sent;
    sw->past_peers.bytes_received += ps.bytes_received;
    sw->past_peers.send_throttled_ms += ps.send_throttled_ms;
    sw->past_peers.recv_throttled_ms += ps.recv_throttled_ms;
    cp2p__chan_peer_free(p->core);
    cp2p_free(p->ni_rd);
    cp2p_free(p);
}

/* Out of the map; freed now, or by the last worker job. */
static void peer_forget(cp2p_reactor_peer *p)
{
    (void)cp2p__hashmap_remove(&p->sw->peers, p);
    p->gone = true;
    if (p->refs == 0) {
        peer_free(p);
    }
}

static void on_peer_ready(cp2p_service *svc, const cp2p_peer_id *peer, cp2p_conn *conn, void *ud)
{
    cp2p_switch *sw = ud;
    (void)svc;
    (void)conn;
    cp2p_reactor_peer *p = sw->stopping || sw->closing ? NULL : peer_get(sw, peer);
    if (p != NULL) {
        process(p); /* opens the keepalive stream */
    }
}

static void on_peer_gone(cp2p_service *svc, const cp2p_peer_id *peer, int err, void *ud)
{
    cp2p_switch *sw = ud;
    (void)svc;
    (void)err;
    cp2p_reactor_peer *p = peer_find(sw, peer);
    if (p == NULL) {
        return;
    }
    if (p->state != P_REMOVED) {
        peer_remove(p, "connection closed");
    }
    peer_forget(p);
}

/* Deliver complete messages to the channels' reactors. */
static void deliver(cp2p_reactor_peer *p)
{
    cp2p_switch *sw = p->sw;
    int budget = DELIVER_BUDGET;
    for (size_t ch = 0; ch < sw->nch && p->state == P_ADDED && !p->stop_req; ch++) {
        cp2p_reactor *r = sw->ch_reactor[ch];
        cp2p_slice m;
        while (!p->delivering[ch] && budget > 0 && p->state == P_ADDED && !p->stop_req &&
               cp2p__chan_take(p->core, ch, &m) == 1) {
            budget--;
            if (r->d.receive == NULL) {
                cp2p__chan_taken(p->core, ch);
            } else if (!r->pool) {
                r->d.receive(r, sw->cdesc[ch].id, p, m.ptr, m.len, r->ud);
                cp2p__chan_taken(p->core, ch);
            } else {
                rjob *j = cp2p_malloc(sizeof(*j) + m.len);
                if (j == NULL) {
                    break; /* retried at the next process() */
                }
                *j = (rjob){.p = p, .ch = ch, .len = m.len};
                memcpy(j->data, m.ptr, m.len);
                p->refs++;
                p->delivering[ch] = true;
                uv_mutex_lock(&r->mu);
                if (r->qt != NULL) {
                    r->qt->next = j;
                } else {
                    r->qh = j;
                }
                r->qt = j;
                uv_cond_signal(&r->cv);
                uv_mutex_unlock(&r->mu);
            }
        }
    }
    if (budget == 0) {
        arm_timer(sw, now_ms(sw)); /* more next turn: bound the work per callback */
    }
}

static void sync_reads(cp2p_reactor_peer *p, uint64_t now)
{
    cp2p_switch *sw = p->sw;
    if (p->ka_in != NULL && !p->ka_in->reading) {
        if (cp2p_stream_read_start(p->ka_in->s, in_read, p->ka_in) != 0) {
            in_release(p->ka_in, true);
        } else {
            p->ka_in->reading = true;
        }
    }
    if (p->ni_in != NULL && !p->ni_in->reading) {
        if (cp2p_stream_read_start(p->ni_in->s, in_read, p->ni_in) != 0) {
            in_release(p->ni_in, true);
        } else {
            p->ni_in->reading = true;
        }
    }
    for (size_t ch = 0; ch < sw->nch; ch++) {
        rp_in *in;
        /* Only the first of the channel's streams is read; one that ended while paused makes
         * way for the next at once. */
        while ((in = p->in[ch]) != NULL) {
            bool want = cp2p__chan_read_wanted(p->core, ch, now);
            if (want && !in->reading) {
                if (cp2p_stream_read_start(in->s, in_read, in) != 0) {
                    cp2p__chan_recv_end(p->core, ch); /* ended while paused */
                    in_release(in, true);
                    continue;
                }
                in->reading = true;
            } else if (!want && in->reading) {
                cp2p_stream_read_stop(in->s);
                in->reading = false;
            }
            break;
        }
    }
}

static void write_packets(cp2p_reactor_peer *p, uint64_t now)
{
    cp2p__chan_packet pk;
    uint8_t ka[CP2P__CHAN_KA_OUT_MAX];
    if (p->ka_out != NULL && p->ka_out->s != NULL) {
        size_t n = cp2p__chan_keepalive_out(p->core, ka);
        if (n > 0 && out_write(p->ka_out, ka, n) != 0) {
            out_dead(p->ka_out);
        }
    }
    while (cp2p__chan_next_packet(p->core, now, &pk) == 1) {
        rp_out *o = p->out[pk.ch];
        if (o == NULL || o->s == NULL || out_write(o, pk.ptr, pk.len) != 0) {
            if (o != NULL) {
                out_dead(o); /* the stream died under us; the channel reopens */
            }
        }
    }
}

/* Everything one peer needs now, in one place (see the re-entrancy note at the top). */
static void process(cp2p_reactor_peer *p)
{
    cp2p_switch *sw = p->sw;
    if (p->gone || sw->stopping || sw->closing) {
        return;
    }
    uint64_t now = now_ms(sw);
    /* The core's clock (pings, pong deadline, waiting sends) runs only for added peers: a peer
     * whose keepalive is still negotiating, or that runs no switch, is never pinged, so never
     * timed out (its connection belongs to the other services too). */
    if (p->state == P_ADDED) {
        if (cp2p__chan_deadline(p->core, now) <= now) {
            cp2p__chan_on_timeout(p->core, now);
        }
        run_send_done(p);
        drain_events(p);
    }
    if (p->stop_req && p->state != P_REMOVED) {
        bool close_conn = p->close_conn;
        peer_remove(p, p->reason);
        if (close_conn) {
            cp2p_conn *c = cp2p_host_conn_to(sw->h, &p->id);
            if (c != NULL) {
                cp2p_conn_close(c);
            }
        }
        return;
    }
    if (p->state == P_REMOVED || p->state == P_FOREIGN || p->state == P_REJECTED) {
        return;
    }
    if (p->state == P_CONNECTED && now >= p->hs_deadline) {
        reject(p, REJ_TIMEOUT, "handshake timeout");
        return;
    }
    if (p->ka_out == NULL && (p->ka_retry_at == 0 || p->ka_retry_at <= now)) {
        p->ka_retry_at = 0;
        out_open(p, KA_CH);
    }
    if (p->state == P_CONNECTED && !p->ni_sent && !p->ni_refused && p->ni_out == NULL &&
        p->ni_attempts < KA_OPEN_ATTEMPTS && p->ni_retry_at <= now) {
        p->ni_retry_at = 0;
        out_open(p, NI_CH);
    }
    if (p->state == P_ADDED) {
        for (size_t ch = 0; ch < sw->nch; ch++) {
            if (cp2p__chan_wants_stream(p->core, ch) && p->reopen_at[ch] <= now) {
                out_open(p, ch);
            }
        }
        write_packets(p, now);
        deliver(p);
    }
    if (p->state != P_REMOVED && p->state != P_REJECTED && !p->gone) {
        sync_reads(p, now);
        uint64_t d = p->state == P_ADDED ? cp2p__chan_deadline(p->core, now) : UINT64_MAX;
        if (p->ka_retry_at != 0 && p->ka_retry_at < d) {
            d = p->ka_retry_at;
        }
        if (p->state == P_CONNECTED) {
            d = p->hs_deadline < d ? p->hs_deadline : d;
            if (p->ni_retry_at != 0 && p->ni_retry_at < d) {
                d = p->ni_retry_at;
            }
        }
        for (size_t ch = 0; p->state == P_ADDED && ch < sw->nch; ch++) {
            if (p->reopen_at[ch] > now && p->reopen_at[ch] < d &&
                cp2p__chan_wants_stream(p->core, ch)) {
                d = p->reopen_at[ch];
            }
        }
        if (p->done_h != NULL || p->stop_req) {
            d = now;
        }
        if (d != UINT64_MAX) {
            arm_timer(sw, d);
        }
    }
}

/* ---- timer ---- */

static void on_timer(uv_timer_t *t)
{
    cp2p_switch *sw = t->data;
    sw->timer_at = 0;
    size_t cur = 0, n = cp2p__hashmap_len(&sw->peers);
    if (n == 0) {
        return;
    }
    /* process() may run user callbacks that stop peers, but never changes the map (peers
     * leave it only in peer_gone and at stop), so a snapshot keeps the walk simple. */
    cp2p_reactor_peer **all = cp2p_malloc(n * sizeof(*all));
    if (all == NULL) {
        arm_timer(sw, now_ms(sw) + 10);
        return;
    }
    size_t k = 0;
    cp2p_reactor_peer *p;
    while (k < n && (p = cp2p__hashmap_next(&sw->peers, &cur)) != NULL) {
        all[k++] = p;
    }
    for (size_t i = 0; i < k; i++) {
        process(all[i]);
    }
    cp2p_free(all);
}

static void arm_timer(cp2p_switch *sw, uint64_t at)
{
    if (sw->timer == NULL || (sw->timer_at != 0 && sw->timer_at <= at)) {
        return;
    }
    uint64_t now = now_ms(sw);
    sw->timer_at = at == 0 ? 1 : at;
    (void)uv_timer_start(sw->timer, on_timer, at > now ? at - now : 0, 0);
}

static void on_handle_closed(uv_handle_t *h)
{
    cp2p_free(h);
}

/* ---- start, stop ---- */

static void teardown(cp2p_switch *sw, bool remove_services);
static void switch_free_mem(cp2p_switch *sw);

/* The switch quit (Service.Quit): its waiters run once, oldest first. */
static void run_quit(cp2p_switch *sw)
{
    size_t n = sw->n_quit;
    sw->n_quit = 0;
    for (size_t i = 0; i < n; i++) {
        sw->quit[i].cb(sw->quit[i].ud);
    }
}

static void on_ka_close(cp2p_service *svc, void *ud)
{
    cp2p_switch *sw = ud;
    teardown(sw, false); /* the host releases the channel services itself */
    sw->host_closed = true;
    cp2p_service_close_done(svc);
    if (!sw->closing) {
        run_quit(sw);
        switch_free_mem(sw); /* else the pending close frees it and calls its callback */
    }
}

/* Ours, completed at start: the host's peer id, the reactors' channels, and a listen address
 * when none was given; encoded once. */
static int fill_node_info(cp2p_switch *sw)
{
    cp2p_node_info *ni = &sw->info;
    char id[CP2P_PEER_ID_STR_MAX];
    snprintf(ni->node_id, sizeof(ni->node_id), "%s",
             cp2p_peer_id_str(cp2p_host_peer_id(sw->h), id));
    ni->n_channels = sw->nch;
    for (size_t i = 0; i < sw->nch; i++) {
        ni->channels[i] = sw->cdesc[i].id;
    }
    cp2p_multiaddr *ma = NULL;
    if (ni->listen_addr[0] == 0 && cp2p_host_listen_addr(sw->h, 0, false, &ma) == 0) {
        cp2p_buf b;
        cp2p_buf_init(&b, sizeof(ni->listen_addr) - 1);
        if (cp2p_multiaddr_to_string(ma, &b) == 0) {
            memcpy(ni->listen_addr, b.ptr, b.len);
            ni->listen_addr[b.len] = 0;
        }
        cp2p_buf_fini(&b);
        cp2p_multiaddr_free(ma);
    }
    ptrdiff_t n = cp2p__nodeinfo_encode(ni, sw->ni_wire, sizeof(sw->ni_wire));
    if (n < 0) {
        RLOG(INFO, "reactor.bad_node_info: ours does not encode");
        return (int)n;
    }
    sw->ni_wire_len = (size_t)n;
    return 0;
}

int cp2p_switch_start(cp2p_switch *sw)
{
    if (sw == NULL) {
        return CP2P_EINVAL;
    }
    if (sw->started || sw->stopping || sw->nch == 0) {
        return CP2P_ESTATE;
    }
    sw->core_cfg = (cp2p__chan_config){
        .chans = sw->cdesc, .n_chans = sw->nch, .packet = sw->cfg.packet_size,
        .stream_backlog = sw->cfg.stream_backlog, .max_waiters = sw->cfg.max_send_waiters,
        .send_rate = sw->cfg.send_rate, .send_burst = sw->cfg.send_burst,
        .recv_rate = sw->cfg.recv_rate, .recv_burst = sw->cfg.recv_burst,
        .ping_interval_ms = sw->cfg.ping_interval_ms, .pong_timeout_ms = sw->cfg.pong_timeout_ms,
        .rx_slack = CP2P_SWITCH_RX_SLACK,
    };
    const char *why;
    if (cp2p__chan_config_check(&sw->core_cfg, &why) != 0) {
        RLOG(INFO, "reactor.bad_config: %s", why);
        return CP2P_EINVAL;
    }
    if (fill_node_info(sw) != 0) {
        return CP2P_EINVAL;
    }
    uv_loop_t *loop = cp2p_host_loop(sw->h);
    sw->timer = cp2p_calloc(1, sizeof(*sw->timer));
    sw->async = cp2p_calloc(1, sizeof(*sw->async));
    if (sw->timer == NULL || sw->async == NULL || uv_mutex_init(&sw->done_mu) != 0) {
        cp2p_free(sw->timer);
        cp2p_free(sw->async);
        sw->timer = NULL;
        sw->async = NULL;
        return CP2P_ENOMEM;
    }
    sw->mu_init = true;
    (void)uv_timer_init(loop, sw->timer);
    sw->timer->data = sw;
    (void)uv_async_init(loop, sw->async, on_async);
    sw->async->data = sw;
    sw->started = true; /* from here teardown() undoes everything */
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < sw->nch; i++) {
        const char *proto = sw->ch_proto[i];
        cp2p_service_desc d = {
            .name = "reactor-channel", .protocols = &proto, .n_protocols = 1,
            .ready = CP2P_SERVICE_READY_CONNECTED, .inbound = on_channel_inbound,
            .stream_priority = sw->cdesc[i].priority,
        };
        rc = cp2p_host_add_service(sw->h, &d, &sw->ctx[i], &sw->ch_svc[i]);
    }
    for (size_t i = 0; rc == 0 && i < sw->n_reactors; i++) {
        rc = pool_start(sw->reactors[i]);
    }
    if (rc == 0) {
        const char *proto = CP2P_NODEINFO_PROTOCOL;
        cp2p_service_desc d = {
            .name = "reactor-nodeinfo", .protocols = &proto, .n_protocols = 1,
            .ready = CP2P_SERVICE_READY_CONNECTED, .inbound = on_ni_inbound,
            .stream_priority = CP2P_STREAM_PRIORITY_MAX,
        };
        rc = cp2p_host_add_service(sw->h, &d, sw, &sw->ni_svc);
    }
    if (rc == 0) {
        const char *proto = CP2P_REACTOR_KEEPALIVE_PROTOCOL;
        cp2p_service_desc d = {
            .name = "reactor-switch", .protocols = &proto, .n_protocols = 1,
            .ready = CP2P_SERVICE_READY_CONNECTED, .peer_ready = on_peer_ready,
            .peer_gone = on_peer_gone, .inbound = on_ka_inbound, .close = on_ka_close,
            .stream_priority = CP2P_STREAM_PRIORITY_MAX,
        };
        rc = cp2p_host_add_service(sw->h, &d, sw, &sw->ka_svc);
    }
    if (rc != 0) {
        teardown(sw, true);
        sw->stopping = false;
        sw->started = false;
        return rc;
    }
    return 0;
}

bool cp2p_switch_is_running(const cp2p_switch *sw)
{
    return sw != NULL && sw->started && !sw->stopping && !sw->closing;
}

/* Remove every peer, join the workers, release handles and (when the host is not closing us)
 * the services. Frees nothing of the switch itself. */
static void teardown(cp2p_switch *sw, bool remove_services)
{
    if (sw->stopping) {
        return;
    }
    size_t n = cp2p__hashmap_len(&sw->peers), k = 0, cur = 0;
    cp2p_reactor_peer *p, **all = n > 0 ? cp2p_malloc(n * sizeof(*all)) : NULL;
    /* Remove peers first (remove_peer must still be able to look at them), then stop. */
    while (all != NULL && k < n && (p = cp2p__hashmap_next(&sw->peers, &cur)) != NULL) {
        all[k++] = p;
    }
    for (size_t i = 0; i < k; i++) {
        if (all[i]->state != P_REMOVED) {
            peer_remove(all[i], "switch stopped");
        }
    }
    sw->stopping = true;
    for (size_t i = 0; i < sw->n_reactors; i++) {
        pool_stop(sw->reactors[i]);
    }
    if (sw->mu_init) {
        rjob *j = sw->done_h; /* finished jobs the loop has not seen */
        sw->done_h = NULL;
        while (j != NULL) {
            rjob *next = j->next;
            j->p->refs--;
            cp2p_free(j);
            j = next;
        }
    }
    for (size_t i = 0; i < k; i++) {
        (void)cp2p__hashmap_remove(&sw->peers, all[i]);
        peer_free(all[i]);
    }
    cp2p_free(all);
    if (remove_services) {
        for (size_t i = 0; i < sw->nch; i++) {
            if (sw->ch_svc[i] != NULL) {
                cp2p_service_remove(sw->ch_svc[i]);
                sw->ch_svc[i] = NULL;
            }
        }
        if (sw->ka_svc != NULL) {
            cp2p_service_remove(sw->ka_svc);
            sw->ka_svc = NULL;
        }
        if (sw->ni_svc != NULL) {
            cp2p_service_remove(sw->ni_svc);
            sw->ni_svc = NULL;
        }
    }
    if (sw->timer != NULL) {
        uv_close((uv_handle_t *)sw->timer, on_handle_closed);
        sw->timer = NULL;
    }
    if (sw->async != NULL) {
        uv_close((uv_handle_t *)sw->async, on_handle_closed);
        sw->async = NULL;
    }
    if (sw->mu_init) {
        uv_mutex_destroy(&sw->done_mu);
        sw->mu_init = false;
    }
}

static void switch_free_mem(cp2p_switch *sw)
{
    for (size_t i = 0; i < sw->n_reactors; i++) {
        cp2p_free(sw->reactors[i]->name);
        cp2p_free(sw->reactors[i]);
    }
    cp2p__hashmap_fini(&sw->peers, NULL, NULL);
    cp2p_free(sw);
}

void cp2p_switch_free(cp2p_switch *sw)
{
    if (sw == NULL) {
        return;
    }
    teardown(sw, true);
    switch_free_mem(sw);
}

static void on_closer_closed(uv_handle_t *h)
{
    cp2p_switch *sw = h->data;
    cp2p_switch_close_cb cb = sw->close_cb;
    void *ud = sw->close_ud;
    cp2p_free(h);
    sw->closer = NULL;
    run_quit(sw);
    if (sw->keep) {
        /* cp2p_switch_stop: the handle stays for cp2p_switch_reset or cp2p_switch_free. */
        sw->keep = false;
        sw->closing = false;
        sw->stopped = true;
    } else {
        switch_free_mem(sw);
    }
    if (cb != NULL) {
        cb(ud);
    }
}

static void on_closer(uv_timer_t *t)
{
    cp2p_switch *sw = t->data;
    /* When the host closed meanwhile, its close already tore the switch down. */
    teardown(sw, !sw->host_closed);
    uv_close((uv_handle_t *)t, on_closer_closed); /* after the switch's own handles' */
}

static int close_or_stop(cp2p_switch *sw, cp2p_switch_close_cb cb, void *ud, bool keep)
{
    if (sw == NULL) {
        return CP2P_EINVAL;
    }
    if (sw->closing || (sw->host_closed && !sw->stopped)) {
        return CP2P_ECLOSED;
    }
    if (keep && !cp2p_switch_is_running(sw)) {
        return CP2P_ESTATE;
    }
    if (sw->host_closed) {
        return CP2P_ECLOSED; /* stopped and kept, its host gone: cp2p_switch_free it */
    }
    uv_timer_t *t = cp2p_calloc(1, sizeof(*t));
    if (t == NULL) {
        return CP2P_ENOMEM;
    }
    (void)uv_timer_init(cp2p_host_loop(sw->h), t);
    t->data = sw;
    (void)uv_timer_start(t, on_closer, 0, 0);
    sw->closer = t;
    sw->closing = true;
    sw->keep = keep;
    sw->stopped = false;
    sw->close_cb = cb;
    sw->close_ud = ud;
    return 0;
}

int cp2p_switch_close(cp2p_switch *sw, cp2p_switch_close_cb cb, void *ud)
{
    return close_or_stop(sw, cb, ud, false);
}

int cp2p_switch_stop(cp2p_switch *sw, cp2p_switch_close_cb cb, void *ud)
{
    return close_or_stop(sw, cb, ud, true);
}

int cp2p_switch_reset(cp2p_switch *sw)
{
    if (sw == NULL) {
        return CP2P_EINVAL;
    }
    if (sw->host_closed) {
        return CP2P_ECLOSED;
    }
    if (!sw->stopped) {
        return CP2P_ESTATE; /* running, stopping, closing, or never started */
    }
    /* The stop freed every peer (their queues, streams and reactor slots) and the handles;
     * what is left to undo is the state and the counters. */
    sw->started = false;
    sw->stopping = false;
    sw->stopped = false;
    sw->timer_at = 0;
    memset(&sw->st, 0, sizeof(sw->st));
    memset(sw->past, 0, sizeof(sw->past));
    memset(&sw->past_peers, 0, sizeof(sw->past_peers));
    return 0;
}

int cp2p_switch_on_quit(cp2p_switch *sw, cp2p_switch_close_cb cb, void *ud)
{
    if (sw == NULL || cb == NULL) {
        return CP2P_EINVAL;
    }
    if (!sw->started || sw->stopped || (sw->stopping && !sw->closing)) {
        return CP2P_ESTATE; /* nothing to wait for: not started, or quit already */
    }
    if (sw->n_quit == CP2P_SWITCH_MAX_QUIT_WAITERS) {
        return CP2P_EFULL;
    }
    sw->quit[sw->n_quit].cb = cb;
    sw->quit[sw->n_quit].ud = ud;
    sw->n_quit++;
    return 0;
}

/* ---- queries and sends ---- */

size_t cp2p_switch_broadcast(cp2p_switch *sw, uint8_t ch, const void *msg, size_t len)
{
    size_t n = 0, cur = 0;
    cp2p_reactor_peer *p;
    if (sw == NULL) {
        return 0;
    }
    while ((p = cp2p__hashmap_next(&sw->peers, &cur)) != NULL) {
        if (p->state == P_ADDED && cp2p_reactor_peer_try_send(p, ch, msg, len) == 0) {
            n++;
        }
    }
    return n;
}

void cp2p_switch_stats_get(const cp2p_switch *sw, cp2p_switch_stats *out)
{
    *out = sw->st;
    cp2p__chan_stats t = sw->past_peers;
    size_t cur = 0;
    cp2p_reactor_peer *p;
    while ((p = cp2p__hashmap_next(&sw->peers, &cur)) != NULL) {
        cp2p__chan_stats ps;
        cp2p__chan_stats_get(p->core, &ps);
        t.bytes_sent += ps.bytes_sent;
        t.bytes_received += ps.bytes_received;
        t.send_throttled_ms += ps.send_throttled_ms;
        t.recv_throttled_ms += ps.recv_throttled_ms;
    }
    out->bytes_sent = t.bytes_sent;
    out->bytes_received = t.bytes_received;
    out->send_throttled_ms = t.send_throttled_ms;
    out->recv_throttled_ms = t.recv_throttled_ms;
}

size_t cp2p__switch_channel_ids(const cp2p_switch *sw, uint8_t *ids, size_t max)
{
    for (size_t i = 0; i < sw->nch && i < max; i++) {
        ids[i] = sw->cdesc[i].id;
    }
    return sw->nch;
}

static void ch_stats_public(cp2p_channel_stats *o, const cp2p__chan_ch_stats *c)
{
    o->msgs_sent += c->msgs_sent;
    o->bytes_sent += c->bytes_sent;
    o->msgs_received += c->msgs_received;
    o->bytes_received += c->bytes_received;
    o->send_timeouts += c->send_timeouts;
    o->try_send_refused += c->try_send_refused;
    o->too_large += c->too_large;
    o->send_dropped += c->send_dropped;
    o->oversized += c->oversized + c->overflow;
    o->malformed += c->malformed;
    o->truncated += c->truncated;
    o->read_pauses += c->read_pauses;
    o->send_queued += c->send_queued;
    o->recv_queued += c->recv_queued;
}

static int ch_index(const cp2p_switch *sw, uint8_t id)
{
    for (size_t i = 0; i < sw->nch; i++) {
        if (sw->cdesc[i].id == id) {
            return (int)i;
        }
    }
    return -1;
}

int cp2p_switch_channel_stats(const cp2p_switch *sw, uint8_t ch, cp2p_channel_stats *out)
{
    int i = ch_index(sw, ch);
    if (i < 0) {
        return CP2P_ENOENT;
    }
    memset(out, 0, sizeof(*out));
    ch_stats_public(out, &sw->past[i]);
    size_t cur = 0;
    cp2p_reactor_peer *p;
    while ((p = cp2p__hashmap_next(&sw->peers, &cur)) != NULL) {
        cp2p__chan_ch_stats cs;
        cp2p__chan_ch_stats_get(p->core, (size_t)i, &cs);
        ch_stats_public(out, &cs);
    }
    return 0;
}

size_t cp2p_switch_peers(const cp2p_switch *sw, cp2p_reactor_peer **out, size_t max)
{
    size_t n = 0, cur = 0;
    cp2p_reactor_peer *p;
    while ((p = cp2p__hashmap_next(&sw->peers, &cur)) != NULL) {
        if (p->state == P_ADDED) {
            if (n < max) {
                out[n] = p;
            }
            n++;
        }
    }
    return n;
}

cp2p_reactor_peer *cp2p_switch_find_peer(const cp2p_switch *sw, const cp2p_peer_id *id)
{
    cp2p_reactor_peer *p = sw != NULL && id != NULL ? peer_find(sw, id) : NULL;
    return p != NULL && p->state == P_ADDED ? p : NULL;
}

const char *cp2p_reactor_name(const cp2p_reactor *r)
{
    return r->name;
}

cp2p_switch *cp2p_reactor_switch(const cp2p_reactor *r)
{
    return r->sw;
}

const cp2p_peer_id *cp2p_reactor_peer_id(const cp2p_reactor_peer *p)
{
    return &p->id;
}

const cp2p_node_info *cp2p_reactor_peer_node_info(const cp2p_reactor_peer *p)
{
    return &p->info;
}

const cp2p_node_info *cp2p_switch_node_info(const cp2p_switch *sw)
{
    return &sw->info;
}

static int peer_send(cp2p_reactor_peer *p, uint8_t ch, const void *msg, size_t len,
                     uint64_t timeout_ms, cp2p_reactor_send_cb cb, void *ud, bool wait)
{
    if (p == NULL || (msg == NULL && len > 0)) {
        return CP2P_EINVAL;
    }
    cp2p_switch *sw = p->sw;
    int i = ch_index(sw, ch);
    if (i < 0) {
        return CP2P_ENOENT;
    }
    if (p->state != P_ADDED || p->stop_req || sw->stopping || sw->closing) {
        return CP2P_ECLOSED;
    }
    rp_sreq *q = NULL;
    if (wait) {
        q = cp2p_calloc(1, sizeof(*q));
        if (q == NULL) {
            return CP2P_ENOMEM;
        }
        *q = (rp_sreq){.cb = cb, .ud = ud, .ch = ch};
    }
    uint64_t to = wait ? (timeout_ms != 0 ? timeout_ms : CP2P_SWITCH_SEND_TIMEOUT_MS) : 0;
    int rc = cp2p__chan_send(p->core, (size_t)i, msg, len, now_ms(sw), to, (uintptr_t)q);
    if (rc < 0) {
        cp2p_free(q);
        return rc;
    }
    if (rc == 0 && q != NULL) {
        /* Queued at once: the callback still runs later, never inside this call. */
        if (p->done_t != NULL) {
            p->done_t->next = q;
        } else {
            p->done_h = q;
        }
        p->done_t = q;
    }
    arm_timer(sw, now_ms(sw)); /* write (or wait) from the loop, batched per turn */
    return 0;
}

int cp2p_reactor_peer_try_send(cp2p_reactor_peer *p, uint8_t ch, const void *msg, size_t len)
{
    return peer_send(p, ch, msg, len, 0, NULL, NULL, false);
}

int cp2p_reactor_peer_send(cp2p_reactor_peer *p, uint8_t ch, const void *msg, size_t len,
                           uint64_t timeout_ms, cp2p_reactor_send_cb cb, void *ud)
{
    return peer_send(p, ch, msg, len, timeout_ms, cb, ud, true);
}

void cp2p_reactor_peer_set_data(cp2p_reactor_peer *p, const cp2p_reactor *r, void *data)
{
    if (p != NULL && r != NULL && r->idx < CP2P_SWITCH_MAX_REACTORS) {
        p->data[r->idx] = data;
    }
}

void *cp2p_reactor_peer_data(const cp2p_reactor_peer *p, const cp2p_reactor *r)
{
    return p != NULL && r != NULL ? p->data[r->idx] : NULL;
}

void cp2p_reactor_peer_stop(cp2p_reactor_peer *p, const char *reason)
{
    if (p == NULL || p->stop_req || p->state == P_REMOVED) {
        return;
    }
    p->stop_req = true;
    p->close_conn = true;
    snprintf(p->reason, sizeof(p->reason), "%s", reason != NULL ? reason : "stopped");
    arm_timer(p->sw, now_ms(p->sw));
}

void cp2p_reactor_peer_stats_get(const cp2p_reactor_peer *p, cp2p_reactor_peer_stats *out)
{
    cp2p__chan_stats st;
    cp2p__chan_stats_get(p->core, &st);
    *out = (cp2p_reactor_peer_stats){
        .bytes_sent = st.bytes_sent, .bytes_received = st.bytes_received,
        .send_throttled_ms = st.send_throttled_ms, .recv_throttled_ms = st.recv_throttled_ms,
        .pings_sent = st.pings_sent, .pongs_received = st.pongs_received, .rtt_ms = st.rtt_ms,
    };
}

int cp2p_reactor_peer_channel_stats(const cp2p_reactor_peer *p, uint8_t ch,
                                    cp2p_channel_stats *out)
{
    int i = ch_index(p->sw, ch);
    if (i < 0) {
        return CP2P_ENOENT;
    }
    cp2p__chan_ch_stats cs;
    cp2p__chan_ch_stats_get(p->core, (size_t)i, &cs);
    memset(out, 0, sizeof(*out));
    ch_stats_public(out, &cs);
    return 0;
}

/* ---- the channels view ---- */

cp2p_switch *cp2p_host_switch(const cp2p_host *h)
{
    cp2p_service *svc = cp2p_host_find_service(h, CP2P_REACTOR_KEEPALIVE_PROTOCOL, on_ka_inbound);
    return svc != NULL ? cp2p_service_ud(svc) : NULL;
}

#define U(x) ((unsigned long long)(x))

/* Peers listed by the view (our choice: a page a browser shows; PeersTotal has the count). */
#define VIEW_MAX_PEERS 256

static int jprintf(cp2p_buf *b, const char *fmt, ...) CP2P_PRINTF(2, 3);
static int jprintf(cp2p_buf *b, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(tmp)) {
        return CP2P_ELIMIT;
    }
    return cp2p_buf_append(b, tmp, (size_t)n);
}

/* A reactor name or node info field as a JSON string: printable ASCII other than quote and
 * backslash kept, the rest as '?' (for display; at most `max` bytes). */
static int jtext(cp2p_buf *b, const char *name, size_t max)
{
    int rc = cp2p_buf_append_byte(b, '"');
    for (const char *c = name; rc == 0 && *c != 0 && (size_t)(c - name) < max; c++) {
        rc = cp2p_buf_append_byte(b, (*c >= 0x20 && *c < 0x7f && *c != '"' && *c != '\\')
                                         ? (uint8_t)*c : '?');
    }
    return rc != 0 ? rc : cp2p_buf_append_byte(b, '"');
}

static int jname(cp2p_buf *b, const char *name)
{
    return jtext(b, name, 64);
}

/* A node info as a JSON object (CometBFT's field names, as in its /net_info). */
static int jinfo(cp2p_buf *b, const cp2p_node_info *ni)
{
    int rc = jprintf(b, "{\"ProtocolVersion\":{\"P2P\":%llu,\"Block\":%llu,\"App\":%llu},"
                        "\"NodeId\":",
                     U(ni->p2p_version), U(ni->block_version), U(ni->app_version));
    const char *names[] = {"NodeId", "ListenAddr", "Network", "Version", "Moniker"};
    const char *vals[] = {ni->node_id, ni->listen_addr, ni->network, ni->version, ni->moniker};
    for (size_t i = 0; rc == 0 && i < 5; i++) {
        rc = i == 0 ? 0 : jprintf(b, ",\"%s\":", names[i]);
        rc = rc != 0 ? rc : jtext(b, vals[i], CP2P_NODEINFO_ADDR_MAX);
    }
    rc = rc != 0 ? rc : jprintf(b, ",\"Channels\":\"");
    for (size_t i = 0; rc == 0 && i < ni->n_channels; i++) {
        rc = jprintf(b, "%02x", ni->channels[i]);
    }
    return rc != 0 ? rc : jprintf(b, "\"}");
}

int cp2p_switch_channels_json(const cp2p_switch *sw, cp2p_buf *out)
{
    int rc = jprintf(out, "{\"SendRate\":%llu,\"RecvRate\":%llu,\"NodeInfo\":",
                     U(sw->cfg.send_rate), U(sw->cfg.recv_rate));
    rc = rc != 0 ? rc : jinfo(out, &sw->info);
    rc = rc != 0 ? rc
                 : jprintf(out,
                           ",\"Rejected\":{\"Network\":%llu,\"BlockVersion\":%llu,"
                           "\"NoChannels\":%llu,\"BadNodeInfo\":%llu,\"HandshakeTimeout\":%llu},"
                           "\"Reactors\":[",
                           U(sw->st.rejected_network), U(sw->st.rejected_block_version),
                           U(sw->st.rejected_no_channels), U(sw->st.rejected_bad_node_info),
                           U(sw->st.handshake_timeouts));
    for (size_t i = 0; rc == 0 && i < sw->n_reactors; i++) {
        const cp2p_reactor *r = sw->reactors[i];
        rc = jprintf(out, "%s{\"Name\":", i > 0 ? "," : "");
        rc = rc != 0 ? rc : jname(out, r->name);
        rc = rc != 0 ? rc : jprintf(out, ",\"Workers\":%u,\"Channels\":[", r->d.workers);
        bool first = true;
        for (size_t k = 0; rc == 0 && k < sw->nch; k++) {
            if (sw->ch_reactor[k] != r) {
                continue;
            }
            const cp2p__chan_desc *d = &sw->cdesc[k];
            cp2p_channel_stats cs;
            if (cp2p_switch_channel_stats(sw, d->id, &cs) != 0) {
                continue;
            }
            rc = jprintf(out,
                         "%s{\"Id\":\"0x%02x\",\"Priority\":%u,\"SendQueueCapacity\":%u,"
                         "\"RecvQueueCapacity\":%u,\"RecvBufferCapacity\":%llu,"
                         "\"RecvMessageCapacity\":%llu,",
                         first ? "" : ",", d->id, d->priority, d->send_cap, d->recv_cap,
                         U(d->recv_buffer), U(d->max_msg));
            rc = rc != 0 ? rc
                         : jprintf(out,
                                   "\"MsgsSent\":%llu,\"BytesSent\":%llu,\"MsgsReceived\":%llu,"
                                   "\"BytesReceived\":%llu,\"SendTimeouts\":%llu,"
                                   "\"TrySendRefused\":%llu,\"SendQueued\":%llu,"
                                   "\"RecvQueued\":%llu}",
                                   U(cs.msgs_sent), U(cs.bytes_sent), U(cs.msgs_received),
                                   U(cs.bytes_received), U(cs.send_timeouts),
                                   U(cs.try_send_refused), U(cs.send_queued), U(cs.recv_queued));
            first = false;
        }
        rc = rc != 0 ? rc : jprintf(out, "]}");
    }
    size_t total = 0, cur = 0;
    cp2p_reactor_peer *p;
    rc = rc != 0 ? rc : jprintf(out, "],\"Peers\":[");
    while (rc == 0 && (p = cp2p__hashmap_next(&sw->peers, &cur)) != NULL) {
        if (p->state != P_ADDED || total++ >= VIEW_MAX_PEERS) {
            continue;
        }
        char id[CP2P_PEER_ID_STR_MAX];
        cp2p__chan_stats ps;
        cp2p__chan_stats_get(p->core, &ps);
        rc = jprintf(out,
                     "%s{\"Peer\":\"%s\",\"BytesSent\":%llu,\"BytesReceived\":%llu,"
                     "\"SendThrottledMs\":%llu,\"RecvThrottledMs\":%llu,\"RttMs\":%llu,"
                     "\"Channels\":[",
                     total > 1 ? "," : "", cp2p_peer_id_str(&p->id, id), U(ps.bytes_sent),
                     U(ps.bytes_received), U(ps.send_throttled_ms), U(ps.recv_throttled_ms),
                     U(ps.rtt_ms));
        for (size_t k = 0; rc == 0 && k < sw->nch; k++) {
            cp2p__chan_ch_stats cs;
            cp2p__chan_ch_stats_get(p->core, k, &cs);
            rc = jprintf(out, "%s{\"Id\":\"0x%02x\",\"SendQueued\":%llu,\"RecvQueued\":%llu}",
                         k > 0 ? "," : "", sw->cdesc[k].id, U(cs.send_queued),
                         U(cs.recv_queued));
        }
        rc = rc != 0 ? rc : jprintf(out, "],\"NodeInfo\":");
        rc = rc != 0 ? rc : jinfo(out, &p->info);
        rc = rc != 0 ? rc : jprintf(out, "}");
    }
    return rc != 0 ? rc : jprintf(out, "],\"PeersTotal\":%llu}", U(total));
}
