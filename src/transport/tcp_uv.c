/* TCP transport binding. See tcp_uv.h. */
#include <assert.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "transport/tcp_uv.h"
#include "util/alloc.h"
#include "util/log_internal.h"

#define LISTEN_BACKLOG 511 /* our choice: the Linux default somaxconn cap, as libuv users do */
#define TCP_MAX_IOV 16     /* buffers per write: the connection writes one */

static_assert(sizeof(uv_write_t) <= CP2P__TWRITE_PRIV, "a uv_write_t must fit a cp2p__twrite");

typedef struct tcp_transport {
    cp2p__transport base;
    uv_loop_t *loop;
    uint32_t notsent_lowat; /* TCP_NOTSENT_LOWAT of connection sockets; 0: not set */
} tcp_transport;

/* A connected socket behind the byte-stream interface. */
typedef struct tcp_conn {
    cp2p__tconn base;
    uv_tcp_t tcp;
    uv_shutdown_t sd;
    cp2p__tconn_alloc_cb alloc_cb;
    cp2p__tconn_read_cb read_cb;
    cp2p__tconn_shutdown_cb shutdown_cb;
    cp2p__tconn_close_cb close_cb;
} tcp_conn;

typedef struct tcp_listener {
    cp2p__tlistener base;
    uv_tcp_t tcp;
    cp2p__taccept_cb cb;
    void *ud;
} tcp_listener;

static const cp2p__tconn_ops TCP_CONN_OPS;

static void free_handle_data(uv_handle_t *h)
{
    cp2p_free(h->data);
}

static int sockaddr_to_multiaddr(const struct sockaddr *sa, cp2p_multiaddr **out)
{
    char ip[64], text[128];
    int port, n;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        uv_ip4_name(in, ip, sizeof(ip));
        port = ntohs(in->sin_port);
        n = snprintf(text, sizeof(text), "/ip4/%s/tcp/%d", ip, port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        uv_ip6_name(in6, ip, sizeof(ip));
        port = ntohs(in6->sin6_port);
        n = snprintf(text, sizeof(text), "/ip6/%s/tcp/%d", ip, port);
    } else {
        return CP2P_ENOTSUP;
    }
    if (n < 0 || (size_t)n >= sizeof(text)) {
        return CP2P_EINVAL;
    }
    return cp2p_multiaddr_parse(text, (size_t)n, out);
}

int cp2p__tcp_sock_addr(uv_tcp_t *sock, bool remote, cp2p_multiaddr **out)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    int rc = remote ? uv_tcp_getpeername(sock, (struct sockaddr *)&ss, &len)
                    : uv_tcp_getsockname(sock, (struct sockaddr *)&ss, &len);
    if (rc != 0) {
        return CP2P_EIO;
    }
    return sockaddr_to_multiaddr((const struct sockaddr *)&ss, out);
}

/* ---- the byte stream ---- */

static tcp_conn *conn_new(uv_loop_t *loop)
{
    tcp_conn *tc = cp2p_calloc(1, sizeof(*tc));
    if (tc == NULL) {
        return NULL;
    }
    if (uv_tcp_init(loop, &tc->tcp) != 0) {
        cp2p_free(tc);
        return NULL;
    }
    tc->base.ops = &TCP_CONN_OPS;
    tc->tcp.data = tc;
    return tc;
}

/* Close a socket nobody owns yet (a refused or failed attempt). */
static void conn_discard(tcp_conn *tc)
{
    uv_close((uv_handle_t *)&tc->tcp, free_handle_data);
}

uv_tcp_t *cp2p__tcp_tconn_handle(cp2p__tconn *t)
{
    return t != NULL && t->ops == &TCP_CONN_OPS ? &((tcp_conn *)t)->tcp : NULL;
}

static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    tcp_conn *tc = handle->data;
    uint8_t *p = NULL;
    size_t len = 0;
    (void)suggested;
    tc->alloc_cb(&tc->base, &p, &len);
    *buf = uv_buf_init((char *)p, (unsigned)len); /* len 0: libuv reports UV_ENOBUFS */
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    tcp_conn *tc = stream->data;
    (void)buf;
    if (nread == 0) {
        return; /* EAGAIN: nothing read */
    }
    if (nread < 0) {
        tc->base.why = nread == UV_EOF ? "connection closed by peer" : uv_strerror((int)nread);
        tc->read_cb(&tc->base, nread == UV_ENOBUFS ? CP2P_ELIMIT
                               : nread == UV_EOF   ? CP2P_ECLOSED
                                                   : CP2P_EIO);
        return;
    }
    tc->read_cb(&tc->base, (ptrdiff_t)nread);
}

static int tc_read_start(cp2p__tconn *t, cp2p__tconn_alloc_cb alloc_cb,
                         cp2p__tconn_read_cb read_cb)
{
    tcp_conn *tc = (tcp_conn *)t;
    tc->alloc_cb = alloc_cb;
    tc->read_cb = read_cb;
    return uv_read_start((uv_stream_t *)&tc->tcp, on_alloc, on_read) == 0 ? 0 : CP2P_EIO;
}

static int tc_read_stop(cp2p__tconn *t)
{
    return uv_read_stop((uv_stream_t *)&((tcp_conn *)t)->tcp) == 0 ? 0 : CP2P_EIO;
}

static void on_written(uv_write_t *req, int status)
{
    cp2p__twrite *w = req->data;
    w->cb(w, status == 0 ? 0 : status == UV_ECANCELED ? CP2P_ECANCELED : CP2P_EIO);
}

static int tc_write(cp2p__tconn *t, cp2p__twrite *w, const cp2p_slice *iov, size_t n,
                    cp2p__tconn_write_cb cb)
{
    tcp_conn *tc = (tcp_conn *)t;
    uv_buf_t b[TCP_MAX_IOV];
    uv_write_t *req = (uv_write_t *)w->priv;
    if (n == 0 || n > TCP_MAX_IOV) {
        return CP2P_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        b[i] = uv_buf_init((char *)iov[i].ptr, (unsigned)iov[i].len);
    }
    w->conn = t;
    w->cb = cb;
    req->data = w;
    return uv_write(req, (uv_stream_t *)&tc->tcp, b, (unsigned)n, on_written) == 0 ? 0
                                                                                 : CP2P_EIO;
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    tcp_conn *tc = req->data;
    tc->shutdown_cb(&tc->base, status == 0 ? 0 : status == UV_ECANCELED ? CP2P_ECANCELED
                                                                         : CP2P_EIO);
}

static int tc_shutdown(cp2p__tconn *t, cp2p__tconn_shutdown_cb cb)
{
    tcp_conn *tc = (tcp_conn *)t;
    tc->shutdown_cb = cb;
    tc->sd.data = tc;
    return uv_shutdown(&tc->sd, (uv_stream_t *)&tc->tcp, on_shutdown) == 0 ? 0 : CP2P_EIO;
}

static void on_conn_closed(uv_handle_t *h)
{
    tcp_conn *tc = h->data;
    tc->close_cb(&tc->base);
    cp2p_free(tc);
}

static void tc_close(cp2p__tconn *t, cp2p__tconn_close_cb cb)
{
    tcp_conn *tc = (tcp_conn *)t;
    tc->close_cb = cb;
    uv_close((uv_handle_t *)&tc->tcp, on_conn_closed);
}

static size_t tc_remote_ip(cp2p__tconn *t, uint8_t ip[16])
{
    static const uint8_t v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    struct sockaddr_storage ss;
    int len = (int)sizeof(ss);
    if (uv_tcp_getpeername(&((tcp_conn *)t)->tcp, (struct sockaddr *)&ss, &len) != 0) {
        return 0;
    }
    if (ss.ss_family == AF_INET) {
        memcpy(ip, &((const struct sockaddr_in *)&ss)->sin_addr, 4);
        return 4;
    }
    if (ss.ss_family == AF_INET6) {
        const uint8_t *a = (const uint8_t *)&((const struct sockaddr_in6 *)&ss)->sin6_addr;
        if (memcmp(a, v4mapped, sizeof(v4mapped)) == 0) {
            memcpy(ip, a + 12, 4); /* one address, one count, whichever socket family */
            return 4;
        }
        memcpy(ip, a, 16);
        return 16;
    }
    return 0;
}

static int tc_addr(cp2p__tconn *t, bool remote, cp2p_multiaddr **out)
{
    return cp2p__tcp_sock_addr(&((tcp_conn *)t)->tcp, remote, out);
}

static const cp2p__tconn_ops TCP_CONN_OPS = {
    .read_start = tc_read_start,
    .read_stop = tc_read_stop,
    .write = tc_write,
    .shutdown = tc_shutdown,
    .close = tc_close,
    .remote_ip = tc_remote_ip,
    .addr = tc_addr,
};

/* TCP_NOTSENT_LOWAT: the kernel reports the socket writable, and so takes more of our bytes,
 * only while fewer than `bytes` of what it holds are unsent, so that what waits to be sent
 * stays in the host, where stream priorities apply (h2o does this for HTTP/2). Returns 0,
 * CP2P_EIO (setsockopt failed) or CP2P_ENOTSUP (no such option on this system). */
static int set_notsent_lowat(uv_tcp_t *sock, uint32_t bytes)
{
#ifdef TCP_NOTSENT_LOWAT
    uv_os_fd_t fd;
    int v = bytes > INT32_MAX ? INT32_MAX : (int)bytes;
    if (uv_fileno((const uv_handle_t *)sock, &fd) != 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &v, sizeof(v)) != 0) {
        return CP2P_EIO;
    }
    return 0;
#else
    (void)sock;
    (void)bytes;
    return CP2P_ENOTSUP;
#endif
}

/* The options of every connection socket, accepted or dialed: no Nagle delay, and the
 * transport's unsent-queue bound (best effort: Linux only). */
static void sock_options(const cp2p__transport *tr, uv_tcp_t *sock)
{
    uint32_t lowat = ((const tcp_transport *)tr)->notsent_lowat;
    (void)uv_tcp_nodelay(sock, 1);
    if (lowat != 0) {
        (void)!set_notsent_lowat(sock, lowat);
    }
}

/* A literal target to a sockaddr. */
static int target_sockaddr(const cp2p__tcp_target *t, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    if (t->kind == CP2P_TCP_IP4) {
        return uv_ip4_addr(t->host, t->port, (struct sockaddr_in *)ss) == 0 ? 0 : CP2P_EINVAL;
    }
    if (t->kind == CP2P_TCP_IP6) {
        return uv_ip6_addr(t->host, t->port, (struct sockaddr_in6 *)ss) == 0 ? 0 : CP2P_EINVAL;
    }
    return CP2P_ENOTSUP;
}

static void on_connection(uv_stream_t *server, int status)
{
    tcp_listener *l = server->data;
    if (status < 0) {
        CP2P_LOG(CP2P_LOG_WARN, "tcp", 0, "tcp.accept_error %s", uv_strerror(status));
        return;
    }
    tcp_conn *tc = conn_new(server->loop);
    if (tc == NULL) {
        /* Out of memory: leave it in the backlog; the kernel drops it when the backlog fills. */
        CP2P_LOG(CP2P_LOG_WARN, "tcp", 0, "tcp.accept_nomem connection left unaccepted");
        return;
    }
    if (uv_accept(server, (uv_stream_t *)&tc->tcp) != 0) {
        conn_discard(tc);
        return;
    }
    sock_options(l->base.tr, &tc->tcp);
    l->cb(&l->base, &tc->base, l->ud);
}

static int tcp_listen(cp2p__transport *tr, const cp2p_multiaddr *ma, cp2p__taccept_cb cb,
                      void *ud, cp2p__tlistener **out, const char **why)
{
    uv_loop_t *loop = ((tcp_transport *)tr)->loop;
    cp2p__tcp_target t;
    struct sockaddr_storage ss;
    int rc = cp2p__tcp_target_parse(ma, &t, why);
    if (rc != 0) {
        return rc;
    }
    if (t.has_peer || (t.kind != CP2P_TCP_IP4 && t.kind != CP2P_TCP_IP6)) {
        *why = "listen needs /ip4/ADDR/tcp/PORT or /ip6/ADDR/tcp/PORT";
        return CP2P_ENOTSUP;
    }
    if (target_sockaddr(&t, &ss) != 0) {
        *why = "invalid IP address";
        return CP2P_EINVAL;
    }
    tcp_listener *l = cp2p_calloc(1, sizeof(*l));
    if (l == NULL) {
        return CP2P_ENOMEM;
    }
    l->base.tr = tr;
    l->cb = cb;
    l->ud = ud;
    if (uv_tcp_init(loop, &l->tcp) != 0) {
        cp2p_free(l);
        return CP2P_EIO;
    }
    l->tcp.data = l;
    unsigned flags = t.kind == CP2P_TCP_IP6 ? UV_TCP_IPV6ONLY : 0;
    int e = uv_tcp_bind(&l->tcp, (const struct sockaddr *)&ss, flags);
    if (e == 0) {
        e = uv_listen((uv_stream_t *)&l->tcp, LISTEN_BACKLOG, on_connection);
    }
    if (e != 0) {
        *why = uv_strerror(e);
        uv_close((uv_handle_t *)&l->tcp, free_handle_data);
        return CP2P_EIO;
    }
    *out = &l->base;
    return 0;
}

static int tcp_listener_addr(const cp2p__tlistener *l, cp2p_multiaddr **out)
{
    return cp2p__tcp_sock_addr((uv_tcp_t *)&((const tcp_listener *)l)->tcp, false, out);
}

static void tcp_listener_close(cp2p__tlistener *l)
{
    if (l != NULL) {
        uv_close((uv_handle_t *)&((tcp_listener *)l)->tcp, free_handle_data);
    }
}

/* ---- dialing ---- */

typedef struct tcp_dial {
    cp2p__tdial base;
    uv_loop_t *loop;
    cp2p__tcp_target target;
    cp2p__tdial_cb cb;
    void *ud;
    uv_timer_t timer;
    uv_getaddrinfo_t resolve;
    uv_connect_t connect;
    tcp_conn *sock;           /* the attempt in flight */
    struct addrinfo *ai, *ai_next;
    int pending;              /* libuv requests and handles that still point at us */
    int last_error;
    bool done;
} tcp_dial;

static void dial_release(tcp_dial *d)
{
    if (d->done && d->pending == 0) {
        if (d->ai != NULL) {
            uv_freeaddrinfo(d->ai);
        }
        cp2p_free(d);
    }
}

static void on_timer_closed(uv_handle_t *h)
{
    tcp_dial *d = h->data;
    d->pending--;
    dial_release(d);
}

static void dial_finish(tcp_dial *d, int status)
{
    tcp_conn *sock = NULL;
    if (d->done) {
        return;
    }
    d->done = true;
    if (status == 0) {
        sock = d->sock;
        d->sock = NULL;
    } else if (d->sock != NULL) {
        /* Closing cancels a connect in flight; its callback still runs (ECANCELED). */
        conn_discard(d->sock);
        d->sock = NULL;
    }
    uv_close((uv_handle_t *)&d->timer, on_timer_closed);
    d->cb(status, sock != NULL ? &sock->base : NULL, d->ud);
}

static int try_next(tcp_dial *d);

static void on_connect(uv_connect_t *req, int status)
{
    tcp_dial *d = req->data;
    d->pending--;
    if (d->done) {
        dial_release(d);
        return;
    }
    if (status == 0) {
        sock_options(d->base.tr, &d->sock->tcp);
        dial_finish(d, 0);
        return;
    }
    d->last_error = status;
    conn_discard(d->sock);
    d->sock = NULL;
    int rc = try_next(d);
    if (rc != 0) {
        dial_finish(d, rc);
    }
}

static int connect_to(tcp_dial *d, const struct sockaddr *sa)
{
    d->sock = conn_new(d->loop);
    if (d->sock == NULL) {
        return CP2P_ENOMEM;
    }
    d->connect.data = d;
    int e = uv_tcp_connect(&d->connect, &d->sock->tcp, sa, on_connect);
    if (e != 0) {
        d->last_error = e;
        conn_discard(d->sock);
        d->sock = NULL;
        return CP2P_EIO;
    }
    d->pending++;
    return 0;
}

/* Start the next resolved address; an error when none is left. */
static int try_next(tcp_dial *d)
{
    while (d->ai_next != NULL) {
        struct addrinfo *a = d->ai_next;
        d->ai_next = a->ai_next;
        if (a->ai_family != AF_INET && a->ai_family != AF_INET6) {
            continue;
        }
        if (connect_to(d, a->ai_addr) == 0) {
            return 0;
        }
    }
    CP2P_LOG(CP2P_LOG_DEBUG, "tcp", 0, "tcp.dial_failed %s:%u %s", d->target.host,
             d->target.port, d->last_error ? uv_strerror(d->last_error) : "no address");
    return d->last_error == UV_ECANCELED ? CP2P_ECANCELED : CP2P_EIO;
}

static void on_resolved(uv_getaddrinfo_t *req, int status, struct addrinfo *res)
{
    tcp_dial *d = req->data;
    d->pending--;
    d->ai = res;
    d->ai_next = res;
    if (d->done) {
        dial_release(d);
        return;
    }
    if (status != 0) {
        CP2P_LOG(CP2P_LOG_DEBUG, "tcp", 0, "tcp.resolve_failed %s %s", d->target.host,
                 uv_strerror(status));
        dial_finish(d, status == UV_ECANCELED ? CP2P_ECANCELED : CP2P_ENOENT);
        return;
    }
    int rc = try_next(d);
    if (rc != 0) {
        dial_finish(d, rc);
    }
}

static void on_timeout(uv_timer_t *t)
{
    tcp_dial *d = t->data;
    if (d->pending > 0 && d->ai == NULL) {
        (void)uv_cancel((uv_req_t *)&d->resolve); /* a lookup not yet started stops here */
    }
    dial_finish(d, CP2P_ETIMEDOUT);
}

static int tcp_dial_start(cp2p__transport *tr, const cp2p_multiaddr *ma, uint64_t timeout_ms,
                          cp2p__tdial_cb cb, void *ud, cp2p__tdial **out, const char **why)
{
    uv_loop_t *loop = ((tcp_transport *)tr)->loop;
    cp2p__tcp_target tgt;
    const cp2p__tcp_target *t = &tgt;
    int rc = cp2p__tcp_target_parse(ma, &tgt, why);
    if (rc != 0) {
        return rc;
    }
    tcp_dial *d = cp2p_calloc(1, sizeof(*d));
    if (d == NULL) {
        return CP2P_ENOMEM;
    }
    d->base.tr = tr;
    d->loop = loop;
    d->target = *t;
    d->cb = cb;
    d->ud = ud;
    if (uv_timer_init(loop, &d->timer) != 0) {
        cp2p_free(d);
        return CP2P_EIO;
    }
    d->timer.data = d;
    d->pending = 1; /* the timer handle */
    if (t->kind == CP2P_TCP_IP4 || t->kind == CP2P_TCP_IP6) {
        struct sockaddr_storage ss;
        rc = target_sockaddr(t, &ss);
        if (rc == 0) {
            rc = connect_to(d, (const struct sockaddr *)&ss);
        }
    } else {
        struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
        char port[8];
        hints.ai_family = t->kind == CP2P_TCP_DNS4 ? AF_INET
                          : t->kind == CP2P_TCP_DNS6 ? AF_INET6 : AF_UNSPEC;
        snprintf(port, sizeof(port), "%u", t->port);
        d->resolve.data = d;
        rc = uv_getaddrinfo(loop, &d->resolve, on_resolved, t->host, port, &hints) == 0
                 ? 0 : CP2P_EIO;
        if (rc == 0) {
            d->pending++;
        }
    }
    if (rc == 0) {
        rc = uv_timer_start(&d->timer, on_timeout, timeout_ms, 0) == 0 ? 0 : CP2P_EIO;
    }
    if (rc != 0) {
        /* Nothing reached the callback: tear down without calling it. */
        d->done = true;
        if (d->sock != NULL) {
            conn_discard(d->sock);
            d->sock = NULL;
        }
        uv_close((uv_handle_t *)&d->timer, on_timer_closed);
        return rc;
    }
    if (out != NULL) {
        *out = &d->base;
    }
    return 0;
}

static void tcp_dial_cancel(cp2p__tdial *base)
{
    tcp_dial *d = (tcp_dial *)base;
    if (d != NULL && !d->done) {
        if (d->ai == NULL && d->target.kind != CP2P_TCP_IP4 && d->target.kind != CP2P_TCP_IP6) {
            (void)uv_cancel((uv_req_t *)&d->resolve);
        }
        dial_finish(d, CP2P_ECANCELED);
    }
}

static void tcp_transport_free(cp2p__transport *tr)
{
    cp2p_free(tr);
}

static const cp2p__transport_ops TCP_OPS = {
    .listen = tcp_listen,
    .listener_addr = tcp_listener_addr,
    .listener_close = tcp_listener_close,
    .dial = tcp_dial_start,
    .dial_cancel = tcp_dial_cancel,
    .free = tcp_transport_free,
};

int cp2p__tcp_transport_new(uv_loop_t *loop, uint32_t notsent_lowat, cp2p__transport **out)
{
    tcp_transport *t = cp2p_calloc(1, sizeof(*t));
    if (t == NULL) {
        return CP2P_ENOMEM;
    }
    t->base.ops = &TCP_OPS;
    t->base.name = "tcp";
    t->loop = loop;
    t->notsent_lowat = notsent_lowat;
    *out = &t->base;
    return 0;
}
