/* cp2p stats: a refreshing summary of a running node, read from its HTTP API (`cp2p node
 * --api`): GET /metrics (Prometheus text, parsed minimally: `name{labels} value` lines) and
 * POST /api/v0/peers (the open connections, for directions and bytes), through cli_api.c. */
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

#define STATS_IO_TIMEOUT_MS 5000

static const char STATS_USAGE[] =
    "usage: cp2p stats [--api HOST:PORT] [--api-token TOKEN] [--interval S] [--once]\n"
    "\n"
    "Print a summary of a running node (cp2p node --api) read from its HTTP API: peers and\n"
    "their directions, connections, streams, bytes, gossipsub and DHT counters, HTTP\n"
    "rejections and pubsub/sub subscribers. Refreshes every --interval seconds until\n"
    "interrupted.\n"
    "\n"
    "  --api HOST:PORT     the node's API (default 127.0.0.1:5001; [IPv6]:PORT accepted)\n"
    "  --api-token TOKEN   access token (default: $CP2P_API_TOKEN)\n"
    "  --interval S        seconds between refreshes, 1 to 3600 (default 2)\n"
    "  --once              print one summary and exit\n"
    "\n"
    "Exit: 0, 1 when the API cannot be reached or refuses (401, 403, ...), 2 on bad usage.\n";

/* The sum of every series of `name` (any labels) in a Prometheus text; -1 when absent. */
static double metric_sum(const char *text, const char *name)
{
    size_t nl = strlen(name);
    double sum = 0;
    bool found = false;
    for (const char *line = text; line != NULL && *line != '\0';) {
        const char *eol = strchr(line, '\n');
        if (line[0] != '#' && strncmp(line, name, nl) == 0 &&
            (line[nl] == ' ' || line[nl] == '{')) {
            const char *sp = line + nl;
            if (*sp == '{') {
                sp = strchr(sp, '}');
            }
            if (sp != NULL && (eol == NULL || sp < eol)) {
                char *end;
                double v = strtod(sp + (*sp == '}'), &end);
                if (end != sp + (*sp == '}')) {
                    sum += v;
                    found = true;
                }
            }
        }
        line = eol != NULL ? eol + 1 : NULL;
    }
    return found ? sum : -1;
}

/* What /api/v0/peers says: connections by direction and their payload bytes. */
typedef struct {
    size_t conns, inbound, outbound;
    unsigned long long bytes_in, bytes_out;
} peers_summary;

static int peers_parse(const char *body, peers_summary *s)
{
    json_t *root = json_loads(body, 0, NULL);
    json_t *peers = json_object_get(root, "Peers"), *p;
    size_t i;
    memset(s, 0, sizeof(*s));
    if (!json_is_array(peers)) {
        json_decref(root);
        return -1;
    }
    json_array_foreach(peers, i, p) {
        const char *dir = json_string_value(json_object_get(p, "Direction"));
        s->conns++;
        s->inbound += dir != NULL && strcmp(dir, "inbound") == 0;
        s->outbound += dir != NULL && strcmp(dir, "outbound") == 0;
        s->bytes_in += (unsigned long long)json_integer_value(json_object_get(p, "BytesIn"));
        s->bytes_out += (unsigned long long)json_integer_value(json_object_get(p, "BytesOut"));
    }
    json_decref(root);
    return 0;
}

/* The rows of the summary: a label and the metric (summed over its labels) of each column. A
 * row whose first metric is absent prints "off" (gossipsub or the DHT not running). */
typedef struct {
    const char *label, *metric;
} stats_col;

#define ROW(...) ((const stats_col[]){__VA_ARGS__, {NULL, NULL}})
#define ROW_CONNS                                                                                  \
    ROW({"open", "cp2p_host_connections"}, {"upgrading", "cp2p_host_connections_upgrading"},      \
        {"opened", "cp2p_host_connections_opened_total"},                                        \
        {"closed", "cp2p_host_connections_closed_total"},                                        \
        {"trimmed", "cp2p_host_connections_trimmed_total"},                                      \
        {"inbound refused", "cp2p_host_inbound_refused_total"})
#define ROW_STREAMS                                                                                \
    ROW({"open", "cp2p_host_streams"}, {"opened", "cp2p_host_streams_opened_total"},              \
        {"refused", "cp2p_host_streams_refused_total"})
#define ROW_GOSSIPSUB                                                                              \
    ROW({"peers", "cp2p_gossipsub_peers"}, {"received", "cp2p_gossipsub_messages_received_total"}, \
        {"delivered", "cp2p_gossipsub_messages_delivered_total"},                                \
        {"published", "cp2p_gossipsub_messages_published_total"},                                \
        {"forwarded", "cp2p_gossipsub_messages_forwarded_total"},                                \
        {"duplicates", "cp2p_gossipsub_messages_duplicate_total"},                               \
        {"rejected", "cp2p_gossipsub_messages_rejected_total"},                                  \
        {"outbox drops", "cp2p_gossipsub_outbox_drops_total"})
#define ROW_DHT                                                                                    \
    ROW({"routing table", "cp2p_kad_routing_table_peers"}, {"lookups", "cp2p_kad_lookups_total"}, \
        {"timed out", "cp2p_kad_lookups_timed_out_total"},                                       \
        {"queries sent", "cp2p_kad_queries_sent_total"},                                         \
        {"failed", "cp2p_kad_queries_failed_total"},                                             \
        {"requests received", "cp2p_kad_requests_received_total"})
#define ROW_HTTP                                                                                   \
    ROW({"rejected", "cp2p_http_requests_rejected_total"},                                       \
        {"pubsub subscribers", "cp2p_http_pubsub_subscribers"},                                  \
        {"dropped", "cp2p_http_pubsub_subscribers_dropped_total"})

static void print_row(const char *text, const char *label, const stats_col *cols)
{
    printf("%-12s", label);
    if (metric_sum(text, cols[0].metric) < 0) {
        printf(" off\n");
        return;
    }
    for (const stats_col *c = cols; c->label != NULL; c++) {
        double v = metric_sum(text, c->metric);
        if (v < 0) {
            printf(" %s -", c->label);
        } else {
            printf(" %s %.0f", c->label, v);
        }
    }
    printf("\n");
}

static int fail_status(const char *api, const char *path, const cli_api_answer *a)
{
    const char *what = a->status == 401   ? " (an access token is needed: --api-token or "
                                            "CP2P_API_TOKEN)"
                       : a->status == 403 ? " (wrong access token)"
                                          : "";
    char detail[200] = "";
    cli_api_error_message(a->body, detail, sizeof(detail));
    fprintf(stderr, "cp2p stats: %s%s answered %d%s%s\n", api, path, a->status, detail, what);
    return CLI_EXIT_FAIL;
}

static int stats_once(const char *api, const char *token, bool clear)
{
    cli_api_answer m, p;
    char err[512];
    if (cli_api_request(api, "GET", "/metrics", token, NULL, 0, STATS_IO_TIMEOUT_MS, &m, err,
                        sizeof(err)) != 0) {
        fprintf(stderr, "cp2p stats: %s\n", err);
        return CLI_EXIT_FAIL;
    }
    if (m.status != 200) {
        int rc = fail_status(api, "/metrics", &m);
        free(m.text);
        return rc;
    }
    if (cli_api_request(api, "POST", "/api/v0/peers", token, NULL, 0, STATS_IO_TIMEOUT_MS, &p,
                        err, sizeof(err)) != 0) {
        fprintf(stderr, "cp2p stats: %s\n", err);
        free(m.text);
        return CLI_EXIT_FAIL;
    }
    if (p.status != 200) {
        int rc = fail_status(api, "/api/v0/peers", &p);
        free(m.text);
        free(p.text);
        return rc;
    }
    peers_summary ps;
    if (peers_parse(p.body, &ps) != 0) {
        fprintf(stderr, "cp2p stats: %s/api/v0/peers: not the expected JSON\n", api);
        free(m.text);
        free(p.text);
        return CLI_EXIT_FAIL;
    }
    const char *t = m.body;
    char when[32];
    time_t now = time(NULL);
    struct tm tm;
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
    if (clear) {
        printf("\033[H\033[2J");
    }
    printf("cp2p stats %s at %s\n", api, when);
    printf("peers        %zu connection%s (inbound %zu, outbound %zu)\n", ps.conns,
           ps.conns == 1 ? "" : "s", ps.inbound, ps.outbound);
    print_row(t, "connections", ROW_CONNS);
    print_row(t, "streams", ROW_STREAMS);
    printf("bytes        in %llu out %llu (open connections' payload)\n",
           ps.bytes_in, ps.bytes_out);
    print_row(t, "gossipsub", ROW_GOSSIPSUB);
    print_row(t, "dht", ROW_DHT);
    print_row(t, "http", ROW_HTTP);
    fflush(stdout);
    free(m.text);
    free(p.text);
    return 0;
}

int cli_cmd_stats(int argc, char **argv)
{
    const char *api = "127.0.0.1:5001";
    const char *token = getenv("CP2P_API_TOKEN");
    long interval = 2;
    bool once = false;
    static const struct option opts[] = {
        {"api", required_argument, NULL, 'a'},      {"api-token", required_argument, NULL, 't'},
        {"interval", required_argument, NULL, 'i'}, {"once", no_argument, NULL, '1'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0},
    };
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'a': api = optarg; break;
        case 't': token = optarg; break;
        case 'i': {
            char *end;
            interval = strtol(optarg, &end, 10);
            if (*end != '\0' || interval < 1 || interval > 3600) {
                fprintf(stderr, "cp2p stats: --interval wants 1 to 3600 seconds\n");
                return CLI_EXIT_USAGE;
            }
            break;
        }
        case '1': once = true; break;
        case 'h': fputs(STATS_USAGE, stdout); return 0;
        default: fputs(STATS_USAGE, stderr); return CLI_EXIT_USAGE;
        }
    }
    if (optind != argc) {
        fputs(STATS_USAGE, stderr);
        return CLI_EXIT_USAGE;
    }
    if (token != NULL && token[0] == '\0') {
        token = NULL;
    }
    bool clear = !once && isatty(STDOUT_FILENO);
    for (;;) {
        int rc = stats_once(api, token, clear);
        if (rc != 0 || once) {
            return rc;
        }
        if (!clear) {
            printf("\n");
        }
        sleep((unsigned)interval);
    }
}
