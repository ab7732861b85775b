/* cp2p ping / cp2p perf: dial a peer with a throwaway identity and measure. */
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cp2p/node.h>
#include <cp2p/protocols.h>

#include "cli.h"

static const char PING_HELP[] =
    "usage: cp2p ping MULTIADDR [-c COUNT] [-i INTERVAL_MS] [-W TIMEOUT_MS] [--json]\n"
    "       cp2p ping MULTIADDR|PEER --api HOST:PORT [--api-token TOKEN] [-c N] [-i MS] ...\n"
    "\n"
    "Connect to MULTIADDR (TCP, with /p2p/ID to check the peer) and send /ipfs/ping/1.0.0\n"
    "pings, printing each round-trip time and a summary like ping(8). Exit status 0 when at\n"
    "least one reply came back, 1 otherwise.\n"
    "\n"
    "  -c COUNT        pings to send (default 5)\n"
    "  -i INTERVAL_MS  pause between pings (default 1000)\n"
    "  -W TIMEOUT_MS   wait this long for each reply (default 10000)\n"
    "  --json          one JSON object per reply, then a summary object\n"
    "  --api HOST:PORT ping from a running node (cp2p node --api) through its HTTP API, one\n"
    "                  request per ping; the peer may then be a peer ID the node knows. The\n"
    "                  node bounds each ping by 30 s; -W adds to that the wait for its answer\n"
    "  --api-token TOKEN  the API's access token (default $CP2P_API_TOKEN)\n";

static const char PERF_HELP[] =
    "usage: cp2p perf MULTIADDR [--upload BYTES] [--download BYTES] [--json]\n"
    "\n"
    "Connect to MULTIADDR and run /perf/1.0.0 (the peer must serve it, e.g. 'cp2p node\n"
    "--perf'): send BYTES, ask for BYTES back, and print the throughput of each direction.\n"
    "BYTES takes K, M, G (10^3..) or Ki, Mi, Gi (2^10..) suffixes.\n"
    "\n"
    "  --upload BYTES    bytes to send (default 100M)\n"
    "  --download BYTES  bytes to receive (default 100M)\n"
    "  --json            print one JSON object\n";

typedef struct {
    uv_loop_t *loop;
    cp2p_host *host;
    cp2p_conn *conn;
    bool json;
    int exit_code;
    char peer[CP2P_PEER_ID_STR_MAX];
    /* ping */
    int count, sent, received;
    uint64_t interval_ms, timeout_ms, start;
    double rtt_min, rtt_max, rtt_sum, rtt_sq;
    uv_timer_t timer;
    /* perf */
    uint64_t upload, download;
} net_ctx;

static void finish(net_ctx *n, int exit_code)
{
    n->exit_code = exit_code;
    cp2p_host_close(n->host, NULL, NULL);
}

static void send_ping(net_ctx *n);

static void on_pause(uv_timer_t *t)
{
    send_ping(t->data);
}

static void ping_summary(net_ctx *n)
{
    double avg = n->received ? n->rtt_sum / n->received : 0;
    double mdev = n->received ? sqrt(fmax(0, n->rtt_sq / n->received - avg * avg)) : 0;
    double loss = n->sent ? 100.0 * (n->sent - n->received) / n->sent : 0;
    uint64_t elapsed = uv_now(n->loop) - n->start;
    if (n->json) {
        cli_json_print(json_pack("{s:s,s:i,s:i,s:o,s:I,s:o,s:o,s:o,s:o}", "peer", n->peer,
                                 "transmitted", n->sent, "received", n->received, "loss_pct",
                                 cli_json_real(loss, 1), "time_ms", (json_int_t)elapsed,
                                 "min_ms", cli_json_real(n->received ? n->rtt_min : 0, 3),
                                 "avg_ms", cli_json_real(avg, 3), "max_ms",
                                 cli_json_real(n->rtt_max, 3), "mdev_ms",
                                 cli_json_real(mdev, 3)));
    } else {
        printf("\n--- %s ping statistics ---\n", n->peer);
        printf("%d transmitted, %d received, %.0f%% packet loss, time %llums\n", n->sent,
               n->received, loss, (unsigned long long)elapsed);
        if (n->received > 0) {
            printf("rtt min/avg/max/mdev = %.3f/%.3f/%.3f/%.3f ms\n", n->rtt_min, avg,
                   n->rtt_max, mdev);
        }
    }
}

/* One ping's outcome: counted and printed. err_text: why it failed (status != 0). */
static void ping_report(net_ctx *n, int status, uint64_t rtt_ns, const char *err_text)
{
    if (status == 0) {
        double ms = (double)rtt_ns / 1e6;
        n->received++;
        n->rtt_min = n->received == 1 || ms < n->rtt_min ? ms : n->rtt_min;
        n->rtt_max = ms > n->rtt_max ? ms : n->rtt_max;
        n->rtt_sum += ms;
        n->rtt_sq += ms * ms;
        if (n->json) {
            cli_json_print(json_pack("{s:i,s:s,s:o}", "seq", n->sent, "peer", n->peer,
                                     "rtt_ms", cli_json_real(ms, 3)));
        } else {
            printf("32 bytes from %s: seq=%d time=%.3f ms\n", n->peer, n->sent, ms);
        }
    } else if (n->json) {
        cli_json_print(json_pack("{s:i,s:s,s:o}", "seq", n->sent, "peer", n->peer, "error",
                                 cli_json_str(err_text)));
    } else {
        printf("seq=%d: %s\n", n->sent, err_text);
    }
    fflush(stdout);
}

static void on_ping(cp2p_conn *c, int status, uint64_t rtt_ns, void *ud)
{
    net_ctx *n = ud;
    (void)c;
    ping_report(n, status, rtt_ns, cp2p_strerror(status));
    if (n->sent == n->count || status == CP2P_ECLOSED) {
        ping_summary(n);
        finish(n, n->received > 0 ? 0 : CLI_EXIT_FAIL);
        return;
    }
    uv_timer_start(&n->timer, on_pause, n->interval_ms, 0);
}

static void send_ping(net_ctx *n)
{
    n->sent++;
    int rc = cp2p_ping(n->conn, n->timeout_ms, on_ping, n);
    if (rc != 0) {
        on_ping(n->conn, rc, 0, n);
    }
}

static void on_perf(cp2p_conn *c, int status, const cp2p_perf_result *r, void *ud)
{
    net_ctx *n = ud;
    (void)c;
    if (status != 0) {
        fprintf(stderr, "cp2p perf: %s\n", cp2p_strerror(status));
        finish(n, CLI_EXIT_FAIL);
        return;
    }
    double up_s = (double)r->upload_ns / 1e9, down_s = (double)r->download_ns / 1e9;
    double up = up_s > 0 ? (double)r->upload_bytes / up_s : 0;
    double down = down_s > 0 ? (double)r->download_bytes / down_s : 0;
    if (n->json) {
        cli_json_print(json_pack(
            "{s:s,s:I,s:o,s:o,s:I,s:o,s:o,s:o}", "peer", n->peer, "upload_bytes",
            (json_int_t)r->upload_bytes, "upload_s", cli_json_real(up_s, 6),
            "upload_bytes_per_s", cli_json_real(up, 0), "download_bytes",
            (json_int_t)r->download_bytes, "download_s", cli_json_real(down_s, 6),
            "download_bytes_per_s", cli_json_real(down, 0), "total_s",
            cli_json_real((double)r->total_ns / 1e9, 6)));
    } else {
        printf("upload:   %llu bytes in %.3f s = %.1f MB/s (%.2f Gbit/s)\n",
               (unsigned long long)r->upload_bytes, up_s, up / 1e6, up * 8 / 1e9);
        printf("download: %llu bytes in %.3f s = %.1f MB/s (%.2f Gbit/s)\n",
               (unsigned long long)r->download_bytes, down_s, down / 1e6, down * 8 / 1e9);
    }
    finish(n, 0);
}

static void on_dialed(cp2p_host *h, int status, cp2p_conn *c, void *ud)
{
    net_ctx *n = ud;
    (void)h;
    if (status != 0) {
        fprintf(stderr, "cp2p: cannot connect: %s\n", cp2p_strerror(status));
        finish(n, CLI_EXIT_FAIL);
        return;
    }
    n->conn = c;
    cp2p_peer_id_str(cp2p_conn_peer_id(c), n->peer);
    n->start = uv_now(n->loop);
    if (n->count > 0) {
        send_ping(n);
        return;
    }
    int rc = cp2p_perf(c, n->upload, n->download, on_perf, n);
    if (rc != 0) {
        on_perf(c, rc, NULL, n);
    }
}

/* Dial `addr` with a fresh identity and run until the host closes. */
static int run(net_ctx *n, const char *addr)
{
    cp2p_privkey *key;
    cp2p_multiaddr *ma;
    cp2p_host_config cfg;
    int rc;
    if (cli_parse_multiaddr(addr, &ma) != 0) {
        return CLI_EXIT_USAGE;
    }
    if ((rc = cp2p_privkey_generate(CP2P_KEY_ED25519, &key)) != 0) {
        cp2p_multiaddr_free(ma);
        return CLI_EXIT_FAIL;
    }
    n->loop = uv_default_loop();
    cp2p_host_config_default(&cfg);
    cli_host_env(&cfg);
    cfg.identity = key;
    rc = cp2p_host_new(n->loop, &cfg, &n->host);
    cp2p_privkey_free(key);
    if (rc == 0 && (rc = cp2p_host_dial(n->host, ma, on_dialed, n)) != 0) {
        fprintf(stderr, "cp2p: cannot dial %s: %s\n", addr, cp2p_strerror(rc));
        cp2p_host_close(n->host, NULL, NULL);
        n->exit_code = CLI_EXIT_USAGE;
    } else if (rc != 0) {
        fprintf(stderr, "cp2p: cannot create the host: %s\n", cp2p_strerror(rc));
        cp2p_multiaddr_free(ma);
        return CLI_EXIT_FAIL;
    }
    cp2p_multiaddr_free(ma);
    uv_timer_init(n->loop, &n->timer);
    n->timer.data = n;
    uv_run(n->loop, UV_RUN_DEFAULT); /* ends when the host has closed */
    uv_close((uv_handle_t *)&n->timer, NULL);
    uv_run(n->loop, UV_RUN_DEFAULT);
    return n->exit_code;
}

/* ping --api: one POST /api/v0/ping?count=1 per ping, -i apart, from the running node; the
 * same lines and summary as a local ping. The peer may be a multiaddr or a peer ID. */
static int ping_through_api(net_ctx *n, const char *api, const char *token, const char *peer)
{
    cp2p_buf path;
    if (cli_api_path(&path, "/api/v0/ping?arg=", peer) != 0 ||
        cli_api_path_add(&path, "&count=", "1") != 0) {
        fprintf(stderr, "cp2p ping: argument too long\n");
        return CLI_EXIT_USAGE;
    }
    n->loop = uv_default_loop();
    uv_update_time(n->loop);
    n->start = uv_now(n->loop);
    snprintf(n->peer, sizeof(n->peer), "%s", peer);
    int rc = 0;
    while (rc == 0 && n->sent < n->count) {
        cli_api_answer a;
        char err[512];
        if (n->sent > 0 && n->interval_ms > 0) {
            struct timespec ts = {(time_t)(n->interval_ms / 1000),
                                  (long)(n->interval_ms % 1000) * 1000000L};
            nanosleep(&ts, NULL);
        }
        n->sent++;
        if (cli_api_request(api, "POST", (const char *)path.ptr, token, NULL, 0,
                            n->timeout_ms + CP2P_NODE_API_OP_TIMEOUT_MS, &a, err,
                            sizeof(err)) != 0) {
            fprintf(stderr, "cp2p ping: %s\n", err);
            rc = CLI_EXIT_FAIL;
            break;
        }
        json_t *j = json_loads(a.body, 0, NULL);
        json_t *p0 = json_array_get(json_object_get(j, "Pings"), 0);
        const char *pid = json_string_value(json_object_get(j, "Peer"));
        if (pid != NULL) {
            snprintf(n->peer, sizeof(n->peer), "%s", pid); /* the peer ID of a multiaddr */
        }
        if (a.status == 200 && json_is_true(json_object_get(p0, "Success"))) {
            ping_report(n, 0, (uint64_t)json_integer_value(json_object_get(p0, "Time")), NULL);
        } else if (a.status == 500) {
            const char *msg = json_string_value(json_object_get(j, "Message"));
            ping_report(n, CP2P_EIO, 0, msg != NULL ? msg : "failed");
        } else {
            char detail[300];
            cli_api_error_message(a.body, detail, sizeof(detail));
            fprintf(stderr, "cp2p ping: the API answered %d%s\n", a.status, detail);
            rc = a.status == 400 ? CLI_EXIT_USAGE : CLI_EXIT_FAIL;
        }
        json_decref(j);
        free(a.text);
    }
    cp2p_buf_fini(&path);
    if (rc == 0 || n->sent > 1) {
        uv_update_time(n->loop);
        ping_summary(n);
    }
    return rc != 0 ? rc : n->received > 0 ? 0 : CLI_EXIT_FAIL;
}

int cli_cmd_ping(int argc, char **argv)
{
    static const struct option opts[] = {
        {"count", required_argument, NULL, 'c'}, {"interval", required_argument, NULL, 'i'},
        {"timeout", required_argument, NULL, 'W'}, {"json", no_argument, NULL, 'j'},
        {"api", required_argument, NULL, 'a'},   {"api-token", required_argument, NULL, 'T'},
        {"help", no_argument, NULL, 'h'},        {NULL, 0, NULL, 0},
    };
    net_ctx n = {.count = 5, .interval_ms = 1000, .timeout_ms = 10000};
    const char *api = NULL, *token = getenv("CP2P_API_TOKEN");
    int c;
    uint64_t v;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:i:W:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            if (cli_parse_bytes(optarg, &v) != 0 || v == 0 || v > 1000000) {
                fprintf(stderr, "cp2p ping: -c needs a count from 1 to 1000000\n");
                return CLI_EXIT_USAGE;
            }
            n.count = (int)v;
            break;
        case 'i':
        case 'W':
            if (cli_parse_bytes(optarg, &v) != 0 || v > 3600000 || (c == 'W' && v == 0)) {
                fprintf(stderr, "cp2p ping: -%c needs milliseconds\n", c);
                return CLI_EXIT_USAGE;
            }
            *(c == 'i' ? &n.interval_ms : &n.timeout_ms) = v;
            break;
        case 'j': n.json = true; break;
        case 'a': api = optarg; break;
        case 'T': token = optarg; break;
        case 'h': fputs(PING_HELP, stdout); return 0;
        default: fputs(PING_HELP, stderr); return CLI_EXIT_USAGE;
        }
    }
    if (optind != argc - 1) {
        fputs(PING_HELP, stderr);
        return CLI_EXIT_USAGE;
    }
    if (api != NULL) {
        return ping_through_api(&n, api, token != NULL && token[0] != '\0' ? token : NULL,
                                argv[optind]);
    }
    return run(&n, argv[optind]);
}

int cli_cmd_perf(int argc, char **argv)
{
    static const struct option opts[] = {
        {"upload", required_argument, NULL, 'u'}, {"download", required_argument, NULL, 'd'},
        {"json", no_argument, NULL, 'j'},         {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    net_ctx n = {.upload = 100000000, .download = 100000000};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'u':
        case 'd':
            if (cli_parse_bytes(optarg, c == 'u' ? &n.upload : &n.download) != 0) {
                fprintf(stderr, "cp2p perf: '%s' is not a byte count\n", optarg);
                return CLI_EXIT_USAGE;
            }
            break;
        case 'j': n.json = true; break;
        case 'h': fputs(PERF_HELP, stdout); return 0;
        default: fputs(PERF_HELP, stderr); return CLI_EXIT_USAGE;
        }
    }
    if (optind != argc - 1) {
        fputs(PERF_HELP, stderr);
        return CLI_EXIT_USAGE;
    }
    return run(&n, argv[optind]);
}
