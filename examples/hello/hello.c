/* hello: a protocol built outside cp2p's tree, against the installed headers and library only
 * (see examples/README.md). It is a service (cp2p/service.h) on /cp2p-example/hello/1.0.0:
 *   - when a peer becomes ready (identify told us it speaks the protocol), the service opens a
 *     stream to it and sends one line, "hello from <our peer ID>\n", then closes the stream;
 *   - each inbound stream carries one such line, which the service reads, counts and prints;
 *   - the host closes the service: its close callback waits for greetings still being sent
 *     (the host keeps the connections open until then) and then says it is done.
 * The program never closes the service itself: it closes the host on SIGINT or SIGTERM, or once
 * --count N greetings were received and as many sent.
 *
 *   hello --listen MULTIADDR [--peer MULTIADDR/p2p/ID] [--count N]
 *
 * The first line of output is our own address, /p2p/<peer ID> included; then one line per
 * event. Exit status: 0 after a clean close, 1 on a runtime failure, 2 on a usage error. */
#include <ctype.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

#include <cp2p/cp2p.h>
#include <cp2p/host.h>
#include <cp2p/service.h>

#define HELLO_PROTOCOL "/cp2p-example/hello/1.0.0"
#define HELLO_PREFIX "hello from "
/* Longest greeting we read: the prefix, a peer ID's text and the newline fit easily. A peer
 * sending more gets its stream reset (every buffer fed by a peer has a maximum). */
#define HELLO_MAX_LINE 256

static const char USAGE[] =
    "usage: hello --listen MULTIADDR [--peer MULTIADDR/p2p/ID] [--count N]\n"
    "\n"
    "Greet every peer that speaks " HELLO_PROTOCOL " and print the greetings received.\n"
    "\n"
    "  --listen MULTIADDR  where to listen, e.g. /ip4/127.0.0.1/tcp/0 (port 0 picks one)\n"
    "  --peer MULTIADDR    a peer to dial, e.g. /ip4/127.0.0.1/tcp/4001/p2p/12D3KooW...\n"
    "  --count N           close once N greetings were received and N sent\n"
    "\n"
    "The first line printed is this node's address. SIGINT or SIGTERM closes it.\n";

typedef struct hello_app {
    uv_loop_t loop;
    uv_signal_t sigint, sigterm;
    cp2p_host *host;
    cp2p_service *svc;      /* NULL once it finished closing */
    char self[CP2P_PEER_ID_STR_MAX];
    unsigned long want;     /* --count; 0: run until a signal */
    unsigned long received, sent;
    unsigned pending;       /* greetings being sent */
    bool svc_closing;       /* the host asked the service to close */
    bool closing;           /* we asked the host to close */
    int exit_code;
} hello_app;

/* One greeting we send. */
typedef struct greeting_out {
    hello_app *app;
    char peer[CP2P_PEER_ID_STR_MAX];
} greeting_out;

/* One greeting we read. */
typedef struct greeting_in {
    hello_app *app;
    char line[HELLO_MAX_LINE];
    size_t len;
} greeting_in;

static void on_host_closed(cp2p_host *h, void *ud)
{
    hello_app *app = ud;
    (void)h;
    app->host = NULL;
    uv_close((uv_handle_t *)&app->sigint, NULL);
    uv_close((uv_handle_t *)&app->sigterm, NULL);
}

/* Close the host (once). The host then closes the service, and the connections after it. */
static void app_close(hello_app *app, int exit_code)
{
    if (app->closing) {
        return;
    }
    app->closing = true;
    app->exit_code = exit_code;
    printf("closing\n");
    cp2p_host_close(app->host, on_host_closed, app);
}

static void check_count(hello_app *app)
{
    if (app->want > 0 && app->received >= app->want && app->sent >= app->want) {
        app_close(app, 0);
    }
}

static void on_signal(uv_signal_t *s, int signum)
{
    (void)signum;
    app_close(s->data, 0);
}

/* ---- sending ---- */

/* A greeting is no longer in flight; a closing service is done once none is. */
static void greeting_out_done(greeting_out *g)
{
    hello_app *app = g->app;
    free(g);
    app->pending--;
    if (app->svc_closing && app->pending == 0 && app->svc != NULL) {
        cp2p_service_close_done(app->svc);
        app->svc = NULL;
    }
    check_count(app);
}

static void on_greeting_written(cp2p_stream *s, int status, void *ud)
{
    greeting_out *g = ud;
    if (status == 0) {
        g->app->sent++;
        printf("greeted %s\n", g->peer);
        cp2p_stream_close(s); /* FIN: the peer reads the line, then end of stream */
    } else {
        printf("cannot greet %s: %s\n", g->peer, cp2p_strerror(status));
        cp2p_stream_reset(s);
    }
    greeting_out_done(g);
}

static void on_greeting_open(cp2p_stream *s, int status, void *ud)
{
    greeting_out *g = ud;
    char line[sizeof(HELLO_PREFIX) + CP2P_PEER_ID_STR_MAX + 1];
    if (status != 0) {
        printf("cannot greet %s: %s\n", g->peer, cp2p_strerror(status));
        greeting_out_done(g);
        return;
    }
    int len = snprintf(line, sizeof(line), HELLO_PREFIX "%s\n", g->app->self);
    int rc = cp2p_stream_write(s, line, (size_t)len, on_greeting_written, g);
    if (rc != 0) {
        printf("cannot greet %s: %s\n", g->peer, cp2p_strerror(rc));
        cp2p_stream_reset(s);
        greeting_out_done(g);
    }
}

static void on_peer_ready(cp2p_service *svc, const cp2p_peer_id *peer, cp2p_conn *conn, void *ud)
{
    static const char *const protos[] = {HELLO_PROTOCOL};
    hello_app *app = ud;
    greeting_out *g = calloc(1, sizeof(*g));
    (void)svc;
    if (g == NULL) {
        printf("cannot greet a peer: out of memory\n");
        return;
    }
    g->app = app;
    cp2p_peer_id_str(peer, g->peer);
    printf("peer ready: %s\n", g->peer);
    int rc = cp2p_conn_open_stream(conn, protos, 1, on_greeting_open, g);
    if (rc != 0) {
        printf("cannot greet %s: %s\n", g->peer, cp2p_strerror(rc));
        free(g);
        return;
    }
    app->pending++;
}

static void on_peer_gone(cp2p_service *svc, const cp2p_peer_id *peer, int err, void *ud)
{
    char id[CP2P_PEER_ID_STR_MAX];
    (void)svc;
    (void)ud;
    printf("peer gone: %s (%s)\n", cp2p_peer_id_str(peer, id), cp2p_strerror(err));
}

/* ---- receiving ---- */

/* A complete line (newline excluded) from the peer at the other end of s. */
static void greeting_received(greeting_in *g, cp2p_stream *s)
{
    hello_app *app = g->app;
    char id[CP2P_PEER_ID_STR_MAX];
    cp2p_peer_id_str(cp2p_conn_peer_id(cp2p_stream_conn(s)), id);
    /* The text comes from the network: print only what is printable. */
    for (size_t i = 0; i < g->len; i++) {
        if (!isprint((unsigned char)g->line[i])) {
            g->line[i] = '?';
        }
    }
    g->line[g->len] = '\0';
    app->received++;
    printf("greeting %lu from %s: %s\n", app->received, id, g->line);
    /* The authenticated peer ID is what counts; the text is only what the peer claims. */
    if (strncmp(g->line, HELLO_PREFIX, strlen(HELLO_PREFIX)) != 0 ||
        strcmp(g->line + strlen(HELLO_PREFIX), id) != 0) {
        printf("note: %s greeted us as someone else\n", id);
    }
}

static void on_greeting_read(cp2p_stream *s, ptrdiff_t n, const uint8_t *data, void *ud)
{
    greeting_in *g = ud;
    if (n > 0) {
        const uint8_t *nl = memchr(data, '\n', (size_t)n);
        size_t take = nl != NULL ? (size_t)(nl - data) : (size_t)n;
        if (take >= sizeof(g->line) - g->len) {
            printf("greeting too long: stream reset\n");
            cp2p_stream_reset(s);
            free(g);
            return;
        }
        memcpy(g->line + g->len, data, take);
        g->len += take;
        if (nl == NULL) {
            return; /* the rest of the line is still on its way */
        }
        hello_app *app = g->app;
        greeting_received(g, s);
        cp2p_stream_close(s); /* one line per stream: whatever follows is discarded */
        free(g);
        check_count(app);
        return;
    }
    /* End of stream or an error before the newline. */
    if (n != CP2P_EOF || g->len > 0) {
        printf("greeting cut short: %s\n", n == CP2P_EOF ? "no newline" : cp2p_strerror((int)n));
    }
    cp2p_stream_close(s);
    free(g);
}

static void on_inbound(cp2p_service *svc, cp2p_stream *s, void *ud)
{
    greeting_in *g = calloc(1, sizeof(*g));
    (void)svc;
    if (g == NULL) {
        cp2p_stream_reset(s);
        return;
    }
    g->app = ud;
    if (cp2p_stream_read_start(s, on_greeting_read, g) != 0) {
        cp2p_stream_reset(s);
        free(g);
    }
}

/* The host is closing: finish the greetings being sent (the connections stay open until we
 * say we are done), then release the service. */
static void on_service_close(cp2p_service *svc, void *ud)
{
    hello_app *app = ud;
    app->svc_closing = true;
    if (app->pending == 0) {
        cp2p_service_close_done(svc);
        app->svc = NULL;
    }
}

/* ---- setup ---- */

static int parse_multiaddr(const char *s, cp2p_multiaddr **out)
{
    int rc = cp2p_multiaddr_parse(s, strlen(s), out);
    if (rc != 0) {
        fprintf(stderr, "hello: '%s' is not a valid multiaddr: %s\n", s, cp2p_strerror(rc));
    }
    return rc;
}

/* Print our first listen address with /p2p/<id>: the line a peer (or a test) dials. */
static int print_address(hello_app *app)
{
    cp2p_multiaddr *ma;
    cp2p_buf b;
    int rc = cp2p_host_listen_addr(app->host, 0, true, &ma);
    if (rc != 0) {
        return rc;
    }
    cp2p_buf_init(&b, CP2P_MULTIADDR_STR_MAX);
    rc = cp2p_multiaddr_to_string(ma, &b);
    if (rc == 0) {
        printf("%s\n", (const char *)b.ptr);
    }
    cp2p_buf_fini(&b);
    cp2p_multiaddr_free(ma);
    return rc;
}

static void on_dialed(cp2p_host *h, int status, cp2p_conn *conn, void *ud)
{
    hello_app *app = ud;
    char id[CP2P_PEER_ID_STR_MAX];
    (void)h;
    if (status != 0) {
        fprintf(stderr, "hello: cannot connect: %s\n", cp2p_strerror(status));
        app_close(app, 1);
        return;
    }
    printf("connected to %s\n", cp2p_peer_id_str(cp2p_conn_peer_id(conn), id));
}

/* Listen, attach the service and dial; on failure the caller closes the host. Returns 0 or an
 * exit code. */
static int start(hello_app *app, const char *listen_addr, const char *peer)
{
    static const char *const protos[] = {HELLO_PROTOCOL};
    const cp2p_service_desc desc = {
        .name = "hello",
        .protocols = protos,
        .n_protocols = 1,
        .ready = CP2P_SERVICE_READY_IDENTIFIED,
        .peer_ready = on_peer_ready,
        .peer_gone = on_peer_gone,
        .inbound = on_inbound,
        .close = on_service_close,
    };
    cp2p_multiaddr *ma;
    int rc = cp2p_host_add_service(app->host, &desc, app, &app->svc);
    if (rc != 0) {
        fprintf(stderr, "hello: cannot add the service: %s\n", cp2p_strerror(rc));
        return 1;
    }
    if (parse_multiaddr(listen_addr, &ma) != 0) {
        return 2;
    }
    rc = cp2p_host_listen(app->host, ma);
    cp2p_multiaddr_free(ma);
    if (rc != 0) {
        fprintf(stderr, "hello: cannot listen on %s: %s\n", listen_addr, cp2p_strerror(rc));
        return rc == CP2P_ENOTSUP ? 2 : 1;
    }
    if ((rc = print_address(app)) != 0) {
        fprintf(stderr, "hello: no listen address: %s\n", cp2p_strerror(rc));
        return 1;
    }
    if (peer == NULL) {
        return 0;
    }
    if (parse_multiaddr(peer, &ma) != 0) {
        return 2;
    }
    rc = cp2p_host_dial(app->host, ma, on_dialed, app);
    cp2p_multiaddr_free(ma);
    if (rc != 0) {
        fprintf(stderr, "hello: cannot dial %s: %s\n", peer, cp2p_strerror(rc));
        return 2;
    }
    return 0;
}

int main(int argc, char **argv)
{
    hello_app app = {0};
    const char *listen_addr = NULL, *peer = NULL;
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(USAGE, stdout);
            return 0;
        } else if (strcmp(argv[i], "--listen") == 0 && v != NULL) {
            listen_addr = v;
        } else if (strcmp(argv[i], "--peer") == 0 && v != NULL) {
            peer = v;
        } else if (strcmp(argv[i], "--count") == 0 && v != NULL) {
            char *end;
            app.want = strtoul(v, &end, 10);
            if (*v < '1' || *v > '9' || *end != '\0') {
                fprintf(stderr, "hello: --count needs a positive number\n");
                return 2;
            }
        } else {
            fputs(USAGE, stderr);
            return 2;
        }
        i++;
    }
    if (listen_addr == NULL) {
        fputs(USAGE, stderr);
        return 2;
    }
    /* One line per event, also when stdout is a file or a pipe. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    /* A peer closing while we write must cost an EPIPE on that connection, not the process. */
    signal(SIGPIPE, SIG_IGN);

    cp2p_privkey *key;
    cp2p_host_config cfg;
    int rc = cp2p_privkey_generate(CP2P_KEY_ED25519, &key);
    if (rc != 0) {
        fprintf(stderr, "hello: cannot create a key: %s\n", cp2p_strerror(rc));
        return 1;
    }
    if (uv_loop_init(&app.loop) != 0) {
        cp2p_privkey_free(key);
        return 1;
    }
    cp2p_host_config_default(&cfg);
    cfg.identity = key; /* the host keeps its own copy */
    rc = cp2p_host_new(&app.loop, &cfg, &app.host);
    cp2p_privkey_free(key);
    if (rc != 0) {
        fprintf(stderr, "hello: cannot create the host: %s\n", cp2p_strerror(rc));
        (void)uv_loop_close(&app.loop);
        return 1;
    }
    cp2p_peer_id_str(cp2p_host_peer_id(app.host), app.self);
    /* Signal handlers first: whoever reads our address may signal us at once. */
    uv_signal_init(&app.loop, &app.sigint);
    uv_signal_init(&app.loop, &app.sigterm);
    app.sigint.data = app.sigterm.data = &app;
    uv_signal_start(&app.sigint, on_signal, SIGINT);
    uv_signal_start(&app.sigterm, on_signal, SIGTERM);
    if ((rc = start(&app, listen_addr, peer)) != 0) {
        app_close(&app, rc);
    }
    uv_run(&app.loop, UV_RUN_DEFAULT); /* returns once the host and the signals are closed */
    if (uv_loop_close(&app.loop) != 0) {
        fprintf(stderr, "hello: handles left open on the loop\n");
        return 1;
    }
    printf("greetings received: %lu, sent: %lu\n", app.received, app.sent);
    return app.exit_code;
}
