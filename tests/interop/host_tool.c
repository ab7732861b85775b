/* cp2p's side of tests/interop/host.test.mjs: a host on 127.0.0.1 driven by commands on stdin,
 * one per line, each answered by one JSON line on stdout; events are JSON lines too.
 *   dial ADDR            {"cmd":"dial","ok":true,"peer":ID}
 *   ping N               {"cmd":"ping","ok":true,"rtts_us":[...]}
 *   echo N SIZE          N concurrent /echo/1.0.0 streams of SIZE random bytes, verified
 *   perf UP DOWN         {"cmd":"perf","ok":true,"upload_bytes":..,"download_bytes":..,...}
 *   identify             the current peer's identify data
 *   handle PROTO         register an echo handler for PROTO (connected peers get a push)
 *   wait-protocol PROTO  answer once the peer's identify lists PROTO (after its push)
 *   rr-serve             serve RR_PROTO (request-response): answer "echo:" + the request
 *   rr N SIZE            N concurrent RR_PROTO requests of SIZE random bytes to the current
 *                        peer, each answer checked: {"cmd":"rr","ok":..,"requests":N,"failed":k}
 *   rr-stats             RR_PROTO's responder counters (requests_served, request_too_large..)
 *   quit
 * Events: {"event":"listening","addr":..}, {"event":"conn",..}, {"event":"identified",..}.
 * Inbound /echo/1.0.0 streams are echoed; /perf/1.0.0 is served. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include <cp2p/protocols.h>
#include <cp2p/reqresp.h>

#include "tool_lines.h"

#include "protocols/reqresp/reqresp_internal.h"

/* The request-response test protocol both sides speak (host.test.mjs's js side too): one
 * stream per request, read to EOF both ways, the answer is "echo:" + the request. Requests up
 * to the default max_request_bytes (1 MiB); a larger one is refused and counted. */
#define RR_PROTO "/cp2p-test/rr/1.0.0"
#define RR_PREFIX "echo:"
#define RR_PREFIX_LEN 5

static uv_loop_t *loop;
static cp2p_host *host;
static cp2p_conn *cur;      /* the connection commands use: the last opened */
static uv_pipe_t in;
static bool busy;           /* a command is running: later lines wait */
static tool_lines lines;
static char wait_proto[256];

static void next_command(void);

static void print_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') {
            putchar('\\');
        }
        putchar(*s);
    }
    putchar('"');
}

static void print_ma(const cp2p_multiaddr *ma)
{
    cp2p_buf b;
    cp2p_buf_init(&b, CP2P_MULTIADDR_STR_MAX);
    if (ma != NULL && cp2p_multiaddr_to_string(ma, &b) == 0) {
        print_str((const char *)b.ptr);
    } else {
        printf("null");
    }
    cp2p_buf_fini(&b);
}

static void fail(const char *cmd, int err)
{
    printf("{\"cmd\":\"%s\",\"ok\":false,\"error\":", cmd);
    print_str(cp2p_strerror(err));
    printf("}\n");
    fflush(stdout);
    busy = false;
    next_command();
}

static void done(void)
{
    fflush(stdout);
    busy = false;
    next_command();
}

static void print_identify(const cp2p_conn *c)
{
    const cp2p_identify_info *v = cp2p_conn_identify(c);
    char pid[CP2P_PEER_ID_STR_MAX];
    printf("\"peer\":\"%s\"", cp2p_peer_id_str(cp2p_conn_peer_id(c), pid));
    if (v == NULL) {
        return;
    }
    printf(",\"agent\":");
    v->agent_version ? print_str(v->agent_version) : (void)printf("null");
    printf(",\"protocol_version\":");
    v->protocol_version ? print_str(v->protocol_version) : (void)printf("null");
    printf(",\"protocols\":[");
    for (size_t i = 0; i < v->n_protocols; i++) {
        printf(i ? "," : "");
        print_str(v->protocols[i]);
    }
    printf("],\"listen_addrs\":[");
    for (size_t i = 0; i < v->n_listen_addrs; i++) {
        printf(i ? "," : "");
        print_ma(v->listen_addrs[i]);
    }
    printf("],\"observed_addr\":");
    print_ma(v->observed_addr);
}

static bool peer_has(const cp2p_conn *c, const char *proto)
{
    const cp2p_identify_info *v = c ? cp2p_conn_identify(c) : NULL;
    for (size_t i = 0; v != NULL && i < v->n_protocols; i++) {
        if (strcmp(v->protocols[i], proto) == 0) {
            return true;
        }
    }
    return false;
}

static void on_event(cp2p_host *h, const cp2p_event *ev, void *ud)
{
    char pid[CP2P_PEER_ID_STR_MAX];
    (void)h;
    (void)ud;
    switch (ev->type) {
    case CP2P_EVENT_CONN_OPENED:
        cur = ev->conn;
        printf("{\"event\":\"conn\",\"peer\":\"%s\",\"outbound\":%s}\n",
               cp2p_peer_id_str(cp2p_conn_peer_id(ev->conn), pid),
               cp2p_conn_is_outbound(ev->conn) ? "true" : "false");
        break;
    case CP2P_EVENT_PEER_IDENTIFIED:
        printf("{\"event\":\"identified\",");
        print_identify(ev->conn);
        printf("}\n");
        if (wait_proto[0] && ev->conn == cur && peer_has(cur, wait_proto)) {
            wait_proto[0] = 0;
            printf("{\"cmd\":\"wait-protocol\",\"ok\":true}\n");
            done();
        }
        break;
    case CP2P_EVENT_CONN_CLOSED:
        if (ev->conn == cur) {
            cur = NULL;
        }
        printf("{\"event\":\"closed\",\"error\":");
        print_str(ev->err ? cp2p_strerror(ev->err) : "none");
        printf("}\n");
        break;
    default:
        break;
    }
    fflush(stdout);
}

/* ---- echo server ---- */

static void echo_read(cp2p_stream *s, ptrdiff_t n, const uint8_t *data, void *ud)
{
    (void)ud;
    if (n == CP2P_EOF) {
        cp2p_stream_close(s);
    } else if (n < 0) {
        cp2p_stream_reset(s);
    } else if (cp2p_stream_write(s, data, (size_t)n, NULL, NULL) != 0) {
        cp2p_stream_reset(s);
    }
}

static void echo_handler(cp2p_stream *s, void *ud)
{
    (void)ud;
    if (cp2p_stream_read_start(s, echo_read, NULL) != 0) {
        cp2p_stream_reset(s);
    }
}

/* ---- dial ---- */

static void on_dial(cp2p_host *h, int status, cp2p_conn *c, void *ud)
{
    char pid[CP2P_PEER_ID_STR_MAX];
    (void)h;
    (void)ud;
    if (status != 0) {
        fail("dial", status);
        return;
    }
    cur = c;
    printf("{\"cmd\":\"dial\",\"ok\":true,\"peer\":\"%s\"}\n",
           cp2p_peer_id_str(cp2p_conn_peer_id(c), pid));
    done();
}

/* ---- ping ---- */

static int pings_left, pings_total;
static uint64_t rtts[1000];

static void on_ping(cp2p_conn *c, int status, uint64_t rtt, void *ud)
{
    (void)ud;
    if (status != 0) {
        fail("ping", status);
        return;
    }
    rtts[pings_total - pings_left] = rtt;
    if (--pings_left > 0) {
        int rc = cp2p_ping(c, 10000, on_ping, NULL);
        if (rc != 0) {
            fail("ping", rc);
        }
        return;
    }
    printf("{\"cmd\":\"ping\",\"ok\":true,\"rtts_us\":[");
    for (int i = 0; i < pings_total; i++) {
        printf("%s%.1f", i ? "," : "", (double)rtts[i] / 1000.0);
    }
    printf("]}\n");
    done();
}

/* ---- echo client ---- */

typedef struct {
    uint8_t *data;
    size_t size, got;
    bool ok;
} echo_job;

static echo_job *jobs;
static int jobs_total, jobs_left, jobs_bad;

static void job_done(echo_job *j)
{
    if (!j->ok) {
        jobs_bad++;
    }
    free(j->data);
    j->data = NULL;
    if (--jobs_left == 0) {
        printf("{\"cmd\":\"echo\",\"ok\":%s,\"streams\":%d,\"failed\":%d}\n",
               jobs_bad ? "false" : "true", jobs_total, jobs_bad);
        free(jobs);
        jobs = NULL;
        done();
    }
}

static void job_read(cp2p_stream *s, ptrdiff_t n, const uint8_t *data, void *ud)
{
    echo_job *j = ud;
    if (n > 0) {
        if (j->got + (size_t)n > j->size || memcmp(j->data + j->got, data, (size_t)n) != 0) {
            j->ok = false;
        }
        j->got += (size_t)n;
        return;
    }
    if (n != CP2P_EOF || j->got != j->size) {
        j->ok = false;
    }
    if (n == CP2P_EOF) {
        cp2p_stream_close(s);
    } else {
        cp2p_stream_reset(s);
    }
    job_done(j);
}

static void job_open(cp2p_stream *s, int status, void *ud)
{
    echo_job *j = ud;
    if (status != 0) {
        j->ok = false;
        job_done(j);
        return;
    }
    if (cp2p_stream_read_start(s, job_read, j) != 0 ||
        cp2p_stream_write(s, j->data, j->size, NULL, NULL) != 0 ||
        cp2p_stream_close_write(s) != 0) {
        j->ok = false;
        cp2p_stream_reset(s);
        job_done(j);
    }
}

/* ---- perf ---- */

static void on_perf(cp2p_conn *c, int status, const cp2p_perf_result *r, void *ud)
{
    (void)c;
    (void)ud;
    if (status != 0) {
        fail("perf", status);
        return;
    }
    printf("{\"cmd\":\"perf\",\"ok\":true,\"upload_bytes\":%llu,\"download_bytes\":%llu,"
           "\"upload_ns\":%llu,\"download_ns\":%llu,\"total_ns\":%llu}\n",
           (unsigned long long)r->upload_bytes, (unsigned long long)r->download_bytes,
           (unsigned long long)r->upload_ns, (unsigned long long)r->download_ns,
           (unsigned long long)r->total_ns);
    done();
}

/* ---- request-response ---- */

static void rr_serve(cp2p_reqresp_responder *r, cp2p_conn *c, const uint8_t *req, size_t len,
                     void *ud)
{
    (void)c;
    (void)ud;
    uint8_t *resp = malloc(RR_PREFIX_LEN + len);
    if (resp == NULL) {
        cp2p_reqresp_refuse(r);
        return;
    }
    memcpy(resp, RR_PREFIX, RR_PREFIX_LEN);
    if (len > 0) {
        memcpy(resp + RR_PREFIX_LEN, req, len);
    }
    (void)!cp2p_reqresp_respond(r, resp, RR_PREFIX_LEN + len);
    free(resp);
}

typedef struct {
    uint8_t *data;
    size_t size;
} rr_job;

static rr_job *rr_jobs;
static int rr_total, rr_left, rr_bad;

static void rr_job_done(rr_job *j, bool ok)
{
    if (!ok) {
        rr_bad++;
    }
    free(j->data);
    j->data = NULL;
    if (--rr_left == 0) {
        printf("{\"cmd\":\"rr\",\"ok\":%s,\"requests\":%d,\"failed\":%d}\n",
               rr_bad ? "false" : "true", rr_total, rr_bad);
        free(rr_jobs);
        rr_jobs = NULL;
        done();
    }
}

static void on_rr(cp2p_conn *c, int status, const uint8_t *resp, size_t len, void *ud)
{
    rr_job *j = ud;
    (void)c;
    if (status != 0) {
        fprintf(stderr, "rr: request failed: %s\n", cp2p_strerror(status));
    }
    rr_job_done(j, status == 0 && len == RR_PREFIX_LEN + j->size &&
                       memcmp(resp, RR_PREFIX, RR_PREFIX_LEN) == 0 &&
                       memcmp(resp + RR_PREFIX_LEN, j->data, j->size) == 0);
}

static void rr_command(const char *n_str, const char *size_str)
{
    cp2p_reqresp_config cfg;
    cp2p_reqresp_config_default(&cfg);
    cfg.timeout_ms = 60000;
    long n = strtol(n_str, NULL, 10);
    size_t size = (size_t)strtoull(size_str, NULL, 10);
    if (n <= 0 || n > 10000 || size > cfg.max_request_bytes) {
        fail("rr", CP2P_EINVAL);
        return;
    }
    rr_total = rr_left = (int)n;
    rr_bad = 0;
    rr_jobs = calloc((size_t)n, sizeof(*rr_jobs));
    if (rr_jobs == NULL) {
        fail("rr", CP2P_ENOMEM);
        return;
    }
    for (int i = 0; i < rr_total; i++) {
        rr_jobs[i] = (rr_job){.data = malloc(size ? size : 1), .size = size};
        randombytes_buf(rr_jobs[i].data, size);
        int rc = cp2p_reqresp_request(cur, RR_PROTO, &cfg, rr_jobs[i].data, size, on_rr,
                                      &rr_jobs[i]);
        if (rc != 0) {
            fprintf(stderr, "rr: cannot send: %s\n", cp2p_strerror(rc));
            rr_job_done(&rr_jobs[i], false);
        }
    }
}

static void rr_stats_command(void)
{
    const cp2p__reqresp_stats *st = cp2p__reqresp_get_stats(host, RR_PROTO);
    if (st == NULL) {
        fail("rr-stats", CP2P_ENOENT);
        return;
    }
    printf("{\"cmd\":\"rr-stats\",\"ok\":true,\"requests_served\":%llu,"
           "\"request_too_large\":%llu,\"inbound_over_limit\":%llu,\"bad_frame\":%llu,"
           "\"inbound_failed\":%llu,\"refused\":%llu}\n",
           (unsigned long long)st->requests_served, (unsigned long long)st->request_too_large,
           (unsigned long long)st->inbound_over_limit, (unsigned long long)st->bad_frame,
           (unsigned long long)st->inbound_failed, (unsigned long long)st->refused);
    done();
}

/* ---- commands ---- */

static void run_command(char *cmd)
{
    char *arg1 = strchr(cmd, ' ');
    char *arg2 = NULL;
    int rc;
    if (arg1 != NULL) {
        *arg1++ = 0;
        arg2 = strchr(arg1, ' ');
        if (arg2 != NULL) {
            *arg2++ = 0;
        }
    }
    busy = true;
    if (strcmp(cmd, "quit") == 0) {
        (void)!cp2p_reqresp_unregister(host, RR_PROTO); /* ENOENT when rr-serve never ran */
        cp2p_host_close(host, NULL, NULL);
        uv_close((uv_handle_t *)&in, NULL);
        return;
    }
    if (strcmp(cmd, "dial") == 0 && arg1 != NULL) {
        cp2p_multiaddr *ma;
        if ((rc = cp2p_multiaddr_parse(arg1, strlen(arg1), &ma)) == 0) {
            rc = cp2p_host_dial(host, ma, on_dial, NULL);
            cp2p_multiaddr_free(ma);
        }
        if (rc != 0) {
            fail("dial", rc);
        }
        return;
    }
    if (strcmp(cmd, "rr-serve") == 0) {
        cp2p_reqresp_config rcfg;
        cp2p_reqresp_config_default(&rcfg);
        rcfg.max_inbound_per_peer = 256; /* the tests send 50 at once */
        if ((rc = cp2p_reqresp_register(host, RR_PROTO, &rcfg, rr_serve, NULL)) != 0) {
            fail("rr-serve", rc);
        } else {
            printf("{\"cmd\":\"rr-serve\",\"ok\":true}\n");
            done();
        }
        return;
    }
    if (strcmp(cmd, "rr-stats") == 0) {
        rr_stats_command();
        return;
    }
    if (cur == NULL) {
        fail(cmd, CP2P_ENOENT);
        return;
    }
    if (strcmp(cmd, "ping") == 0 && arg1 != NULL) {
        pings_total = pings_left = (int)strtol(arg1, NULL, 10);
        if (pings_total <= 0 || pings_total > 1000) {
            fail("ping", CP2P_EINVAL);
        } else if ((rc = cp2p_ping(cur, 10000, on_ping, NULL)) != 0) {
            fail("ping", rc);
        }
    } else if (strcmp(cmd, "echo") == 0 && arg1 != NULL && arg2 != NULL) {
        static const char *const protos[] = {"/echo/1.0.0"};
        jobs_total = jobs_left = (int)strtol(arg1, NULL, 10);
        size_t size = (size_t)strtoull(arg2, NULL, 10);
        jobs_bad = 0;
        jobs = calloc((size_t)jobs_total, sizeof(*jobs));
        for (int i = 0; i < jobs_total; i++) {
            jobs[i] = (echo_job){.data = malloc(size), .size = size, .ok = true};
            randombytes_buf(jobs[i].data, size);
            if (cp2p_conn_open_stream(cur, protos, 1, job_open, &jobs[i]) != 0) {
                jobs[i].ok = false;
                job_done(&jobs[i]);
            }
        }
    } else if (strcmp(cmd, "perf") == 0 && arg1 != NULL && arg2 != NULL) {
        rc = cp2p_perf(cur, strtoull(arg1, NULL, 10), strtoull(arg2, NULL, 10), on_perf, NULL);
        if (rc != 0) {
            fail("perf", rc);
        }
    } else if (strcmp(cmd, "rr") == 0 && arg1 != NULL && arg2 != NULL) {
        rr_command(arg1, arg2);
    } else if (strcmp(cmd, "identify") == 0) {
        printf("{\"cmd\":\"identify\",\"ok\":%s,", cp2p_conn_identify(cur) ? "true" : "false");
        print_identify(cur);
        printf("}\n");
        done();
    } else if (strcmp(cmd, "handle") == 0 && arg1 != NULL) {
        rc = cp2p_host_set_handler(host, arg1, echo_handler, NULL);
        if (rc != 0) {
            fail("handle", rc);
        } else {
            printf("{\"cmd\":\"handle\",\"ok\":true}\n");
            done();
        }
    } else if (strcmp(cmd, "wait-protocol") == 0 && arg1 != NULL) {
        if (peer_has(cur, arg1)) {
            printf("{\"cmd\":\"wait-protocol\",\"ok\":true}\n");
            done();
        } else {
            snprintf(wait_proto, sizeof(wait_proto), "%s", arg1);
        }
    } else {
        fail(cmd, CP2P_EINVAL);
    }
}

static void next_command(void)
{
    char *cmd;
    if (busy || (cmd = tool_lines_pop(&lines)) == NULL) {
        return;
    }
    run_command(cmd);
    free(cmd);
}

static void on_stdin(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    if (n < 0) {
        uv_close((uv_handle_t *)s, NULL);
        (void)!cp2p_reqresp_unregister(host, RR_PROTO);
        cp2p_host_close(host, NULL, NULL);
        return;
    }
    tool_lines_feed(&lines, b->base, (size_t)n);
    next_command();
}

int main(void)
{
    cp2p_host_config cfg;
    cp2p_privkey *key;
    cp2p_multiaddr *ma;
    signal(SIGPIPE, SIG_IGN);
    loop = uv_default_loop();
    if (cp2p_privkey_generate(CP2P_KEY_ED25519, &key) != 0) {
        return 1;
    }
    cp2p_host_config_default(&cfg);
    cfg.identity = key;
    cfg.perf_server = true;
    /* The test opens 100 echo streams at once and queues 1 MiB on each in one write. */
    cfg.max_inbound_per_protocol = 256;
    cfg.max_conn_write_buffer = 256u << 20;
    if (cp2p_host_new(loop, &cfg, &host) != 0) {
        return 1;
    }
    cp2p_privkey_free(key);
    cp2p_host_set_event_cb(host, on_event, NULL);
    if (cp2p_host_set_handler(host, "/echo/1.0.0", echo_handler, NULL) != 0 ||
        cp2p_multiaddr_parse("/ip4/127.0.0.1/tcp/0", 20, &ma) != 0 ||
        cp2p_host_listen(host, ma) != 0) {
        return 1;
    }
    cp2p_multiaddr_free(ma);
    if (cp2p_host_listen_addr(host, 0, true, &ma) != 0) {
        return 1;
    }
    printf("{\"event\":\"listening\",\"addr\":");
    print_ma(ma);
    printf("}\n");
    fflush(stdout);
    cp2p_multiaddr_free(ma);
    uv_pipe_init(loop, &in, 0);
    uv_pipe_open(&in, 0);
    uv_read_start((uv_stream_t *)&in, tool_on_alloc, on_stdin);
    uv_run(loop, UV_RUN_DEFAULT);
    return 0;
}
