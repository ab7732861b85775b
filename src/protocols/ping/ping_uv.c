/* /ipfs/ping/1.0.0 (libp2p/specs ping/ping.md): the dialer sends 32 random bytes, the listener
 * echoes them; repeat on the same stream or close. */
#include <string.h>

#include <sodium.h>

#include <cp2p/service.h>

#include "protocols/builtin.h"
#include "util/alloc.h"
#include "util/clock.h"
#include "util/limits.h"
#include "util/log_internal.h"

/* ---- server: echo every 32-byte block until the peer closes ---- */

typedef struct {
    uint8_t block[CP2P_PING_SIZE];
    size_t have;
} ping_srv;

static void srv_read(cp2p_stream *s, ptrdiff_t n, const uint8_t *data, void *ud)
{
    ping_srv *p = ud;
    if (n < 0) {
        cp2p_free(p);
        if (n == CP2P_EOF) {
            cp2p_stream_close(s);
        } else {
            cp2p_stream_reset(s);
        }
        return;
    }
    for (size_t i = 0; i < (size_t)n;) {
        size_t k = CP2P_PING_SIZE - p->have < (size_t)n - i ? CP2P_PING_SIZE - p->have
                                                              : (size_t)n - i;
        memcpy(p->block + p->have, data + i, k);
        p->have += k;
        i += k;
        if (p->have == CP2P_PING_SIZE) {
            p->have = 0;
            /* The write queue bounds a peer that pings faster than we can answer. */
            if (cp2p_stream_write(s, p->block, CP2P_PING_SIZE, NULL, NULL) != 0) {
                cp2p_stream_read_stop(s);
                cp2p_free(p);
                cp2p_stream_reset(s);
                return;
            }
        }
    }
}

static void ping_handler(cp2p_service *svc, cp2p_stream *s, void *ud)
{
    (void)svc;
    ping_srv *p = cp2p_calloc(1, sizeof(*p));
    (void)ud;
    if (p == NULL || cp2p_stream_read_start(s, srv_read, p) != 0) {
        cp2p_free(p);
        cp2p_stream_reset(s);
    }
}

/* ---- client ---- */

typedef struct {
    cp2p_conn *conn;
    cp2p_stream *stream;
    cp2p_ping_cb cb;
    void *ud;
    uv_timer_t timer;
    uint8_t sent[CP2P_PING_SIZE];
    uint8_t got[CP2P_PING_SIZE];
    size_t have;
    uint64_t t0;
    bool done;
    bool opening;      /* the open callback has yet to run */
    bool timer_closed;
} ping_req;

static void ping_maybe_free(ping_req *p)
{
    if (p->timer_closed && !p->opening) {
        cp2p_free(p);
    }
}

static void on_timer_closed(uv_handle_t *h)
{
    ping_req *p = h->data;
    p->timer_closed = true;
    ping_maybe_free(p);
}

/* Report once, then release the stream and the request. */
static void ping_finish(ping_req *p, int status, uint64_t rtt)
{
    if (p->done) {
        return;
    }
    p->done = true;
    uv_timer_stop(&p->timer);
    if (p->stream != NULL) {
        cp2p_stream_read_stop(p->stream);
        if (status == 0) {
            cp2p_stream_close(p->stream);
        } else {
            cp2p_stream_reset(p->stream);
        }
        p->stream = NULL;
    }
    if (status == 0) {
        /* The stream was alive a moment ago, so the connection is too. */
        (void)!cp2p_peerstore_record_rtt(cp2p_host_peerstore(cp2p_conn_host(p->conn)),
                                         cp2p_conn_peer_id(p->conn), rtt,
                                         cp2p__wall_ms());
    }
    p->cb(p->conn, status, rtt, p->ud);
    uv_close((uv_handle_t *)&p->timer, on_timer_closed);
}

static void on_ping_timeout(uv_timer_t *t)
{
    ping_finish(t->data, CP2P_ETIMEDOUT, 0);
}

static void cli_read(cp2p_stream *s, ptrdiff_t n, const uint8_t *data, void *ud)
{
    ping_req *p = ud;
    (void)s;
    if (n < 0) {
        /* The peer closed (or the stream died) before answering. */
        ping_finish(p, n == CP2P_EOF ? CP2P_EPROTO : (int)n, 0);
        return;
    }
    size_t k = (size_t)n < CP2P_PING_SIZE - p->have ? (size_t)n : CP2P_PING_SIZE - p->have;
    memcpy(p->got + p->have, data, k);
    p->have += k;
    if (p->have == CP2P_PING_SIZE) {
        uint64_t rtt = uv_hrtime() - p->t0;
        bool same = memcmp(p->got, p->sent, CP2P_PING_SIZE) == 0;
        ping_finish(p, same ? 0 : CP2P_EPROTO, same ? rtt : 0);
    }
}

static void on_open(cp2p_stream *s, int status, void *ud)
{
    ping_req *p = ud;
    p->opening = false;
    if (p->done) { /* timed out while negotiating */
        if (status == 0) {
            cp2p_stream_reset(s);
        }
        ping_maybe_free(p);
        return;
    }
    if (status != 0) {
        ping_finish(p, status, 0);
        return;
    }
    p->stream = s;
    randombytes_buf(p->sent, sizeof(p->sent));
    p->t0 = uv_hrtime();
    if (cp2p_stream_read_start(s, cli_read, p) != 0 ||
        cp2p_stream_write(s, p->sent, sizeof(p->sent), NULL, NULL) != 0) {
        ping_finish(p, CP2P_ECLOSED, 0);
    }
}

int cp2p_ping(cp2p_conn *c, uint64_t timeout_ms, cp2p_ping_cb cb, void *ud)
{
    static const char *const protos[] = {CP2P_PING_PROTOCOL};
    ping_req *p = cp2p_calloc(1, sizeof(*p));
    int rc;
    if (p == NULL) {
        return CP2P_ENOMEM;
    }
    p->conn = c;
    p->cb = cb;
    p->ud = ud;
    if (uv_timer_init(cp2p_host_loop(cp2p_conn_host(c)), &p->timer) != 0) {
        cp2p_free(p);
        return CP2P_EIO;
    }
    p->timer.data = p;
    /* Lazy when identify says the peer serves ping: the proposal and the 32 bytes go in one
     * flight, so a ping costs one round trip on an established connection. */
    cp2p_open_opts oo;
    cp2p_open_opts_default(&oo);
    oo.lazy_if_known = true;
    if ((rc = cp2p_conn_open_stream_opts(c, protos, 1, &oo, on_open, p)) != 0) {
        p->done = true;
        uv_close((uv_handle_t *)&p->timer, on_timer_closed);
        return rc;
    }
    p->opening = true;
    (void)uv_timer_start(&p->timer, on_ping_timeout, timeout_ms ? timeout_ms : CP2P_PING_TIMEOUT_MS,
                         0);
    return 0;
}

int cp2p__ping_register(cp2p_host *h)
{
    return cp2p__builtin_serve(h, "ping", CP2P_PING_PROTOCOL, ping_handler);
}
