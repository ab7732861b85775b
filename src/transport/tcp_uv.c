/* TCP transport binding. See tcp_uv.h. */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "transport/tcp_uv.h"
#include "util/alloc.h"
#include "util/log_internal.h"

#define LISTEN_BACKLOG 511 /* our choice: the Linux default somaxconn cap, as libuv users do */

struct cp2p__tcp_listener {
    uv_tcp_t tcp;
    cp2p__tcp_accept_cb cb;
    void *ud;
};

void cp2p__tcp_free_on_close(uv_handle_t *h)
{
    cp2p_free(h);
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

int cp2p__tcp_set_notsent_lowat(uv_tcp_t *sock, uint32_t bytes)
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
    cp2p__tcp_listener *l = server->data;
    if (status < 0) {
        CP2P_LOG(CP2P_LOG_WARN, "tcp", 0, "tcp.accept_error %s", uv_strerror(status));
        return;
    }
    uv_tcp_t *sock = cp2p_malloc(sizeof(*sock));
    if (sock == NULL) {
        /* Out of memory: leave it in the backlog; the kernel drops it when the backlog fills. */
        CP2P_LOG(CP2P_LOG_WARN, "tcp", 0, "tcp.accept_nomem connection left unaccepted");
        return;
    }
    if (uv_tcp_init(server->loop, sock) != 0) {
        cp2p_free(sock);
        return;
    }
    if (uv_accept(server, (uv_stream_t *)sock) != 0) {
        uv_close((uv_handle_t *)sock, cp2p__tcp_free_on_close);
        return;
    }
    (void)uv_tcp_nodelay(sock, 1);
    l->cb(l, sock, l->ud);
}

int cp2p__tcp_listen(uv_loop_t *loop, const cp2p_multiaddr *ma, cp2p__tcp_accept_cb cb,
                     void *ud, cp2p__tcp_listener **out, const char **why)
{
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
    cp2p__tcp_listener *l = cp2p_calloc(1, sizeof(*l));
    if (l == NULL) {
        return CP2P_ENOMEM;
    }
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
        uv_close((uv_handle_t *)&l->tcp, cp2p__tcp_free_on_close);
        return CP2P_EIO;
    }
    *out = l;
    return 0;
}

int cp2p__tcp_listener_addr(const cp2p__tcp_listener *l, cp2p_multiaddr **out)
{
    return cp2p__tcp_sock_addr((uv_tcp_t *)&l->tcp, false, out);
}

void cp2p__tcp_listener_close(cp2p__tcp_listener *l)
{
    if (l != NULL) {
        /* tcp is the first member, so the handle's address is the listener's. */
        uv_close((uv_handle_t *)&l->tcp, cp2p__tcp_free_on_close);
    }
}

/* ---- dialing ---- */

struct cp2p__tcp_dial {
    uv_loop_t *loop;
    cp2p__tcp_target target;
    cp2p__tcp_dial_cb cb;
    void *ud;
    uv_timer_t timer;
    uv_getaddrinfo_t resolve;
    uv_connect_t connect;
    uv_tcp_t *sock;           /* the attempt in flight */
    struct addrinfo *ai, *ai_next;
    int pending;              /* libuv requests and handles that still point at us */
    int last_error;
    bool done;
};

static void dial_release(cp2p__tcp_dial *d)
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
    cp2p__tcp_dial *d = h->data;
    d->pending--;
    dial_release(d);
}

static void dial_finish(cp2p__tcp_dial *d, int status)
{
    uv_tcp_t *sock = NULL;
    if (d->done) {
        return;
    }
    d->done = true;
    if (status == 0) {
        sock = d->sock;
        d->sock = NULL;
    } else if (d->sock != NULL) {
        /* Closing cancels a connect in flight; its callback still runs (ECANCELED). */
        uv_close((uv_handle_t *)d->sock, cp2p__tcp_free_on_close);
        d->sock = NULL;
    }
    uv_close((uv_handle_t *)&d->timer, on_timer_closed);
    d->cb(status, sock, d->ud);
}

static int try_next(cp2p__tcp_dial *d);

static void on_connect(uv_connect_t *req, int status)
{
    cp2p__tcp_dial *d = req->data;
    d->pending--;
    if (d->done) {
        dial_release(d);
        return;
    }
    if (status == 0) {
        (void)uv_tcp_nodelay(d->sock, 1);
        dial_finish(d, 0);
        return;
    }
    d->last_error = status;
    uv_close((uv_handle_t *)d->sock, cp2p__tcp_free_on_close);
    d->sock = NULL;
    int rc = try_next(d);
    if (rc != 0) {
        dial_finish(d, rc);
    }
}

static int connect_to(cp2p__tcp_dial *d, const struct sockaddr *sa)
{
    d->sock = cp2p_malloc(sizeof(*d->sock));
    if (d->sock == NULL) {
        return CP2P_ENOMEM;
    }
    if (uv_tcp_init(d->loop, d->sock) != 0) {
        cp2p_free(d->sock);
        d->sock = NULL;
        return CP2P_EIO;
    }
    d->connect.data = d;
    int e = uv_tcp_connect(&d->connect, d->sock, sa, on_connect);
    if (e != 0) {
        d->last_error = e;
        uv_close((uv_handle_t *)d->sock, cp2p__tcp_free_on_close);
        d->sock = NULL;
        return CP2P_EIO;
    }
    d->pending++;
    return 0;
}

/* Start the next resolved address; an error when none is left. */
static int try_next(cp2p__tcp_dial *d)
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
    cp2p__tcp_dial *d = req->data;
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
    cp2p__tcp_dial *d = t->data;
    if (d->pending > 0 && d->ai == NULL) {
        (void)uv_cancel((uv_req_t *)&d->resolve); /* a lookup not yet started stops here */
    }
    dial_finish(d, CP2P_ETIMEDOUT);
}

int cp2p__tcp_dial_start(uv_loop_t *loop, const cp2p__tcp_target *t, uint64_t timeout_ms,
                         cp2p__tcp_dial_cb cb, void *ud, cp2p__tcp_dial **out)
{
    cp2p__tcp_dial *d = cp2p_calloc(1, sizeof(*d));
    int rc;
    if (d == NULL) {
        return CP2P_ENOMEM;
    }
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
            uv_close((uv_handle_t *)d->sock, cp2p__tcp_free_on_close);
            d->sock = NULL;
        }
        uv_close((uv_handle_t *)&d->timer, on_timer_closed);
        return rc;
    }
    if (out != NULL) {
        *out = d;
    }
    return 0;
}

void cp2p__tcp_dial_cancel(cp2p__tcp_dial *d)
{
    if (d != NULL && !d->done) {
        if (d->ai == NULL && d->target.kind != CP2P_TCP_IP4 && d->target.kind != CP2P_TCP_IP6) {
            (void)uv_cancel((uv_req_t *)&d->resolve);
        }
        dial_finish(d, CP2P_ECANCELED);
    }
}
