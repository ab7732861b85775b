/* cp2p stats: a refreshing summary of a running node, read from its HTTP API (`cp2p node
 * --api`): GET /metrics (Prometheus text, parsed minimally: `name{labels} value` lines) and
 * POST /api/v0/peers (the open connections, for directions and bytes). A tiny HTTP/1.0 client
 * (one request per connection, the answer read to the close, at most 16 MiB). */
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

#define STATS_ANSWER_MAX (16u * 1024 * 1024)
#define STATS_IO_TIMEOUT_S 5

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

typedef struct {
    char *text; /* the whole answer, NUL ended */
    size_t len;
    const char *body;
    int status;
} http_answer;

/* Split "HOST:PORT" or "[V6]:PORT". */
static int split_hostport(const char *s, char *host, size_t hostlen, char *port, size_t portlen)
{
    const char *colon;
    const char *h = s;
    size_t hl;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL || close[1] != ':') {
            return -1;
        }
        h = s + 1;
        hl = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL) {
            return -1;
        }
        hl = (size_t)(colon - s);
    }
    size_t pl = strlen(colon + 1);
    if (hl == 0 || hl >= hostlen || pl == 0 || pl >= portlen ||
        strspn(colon + 1, "0123456789") != pl) {
        return -1;
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    memcpy(port, colon + 1, pl + 1);
    return 0;
}

/* One request; 0 and *out, or -1 with a message in err. */
static int http_do(const char *api, const char *method, const char *path, const char *token,
                   http_answer *out, char *err, size_t errlen)
{
    char host[256], port[16];
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
    memset(out, 0, sizeof(*out));
    if (split_hostport(api, host, sizeof(host), port, sizeof(port)) != 0) {
        snprintf(err, errlen, "bad --api '%s' (want HOST:PORT)", api);
        return -1;
    }
    int gai = getaddrinfo(host, port, &hints, &ai);
    if (gai != 0) {
        snprintf(err, errlen, "%s: %s", api, gai_strerror(gai));
        return -1;
    }
    int fd = -1, last = 0;
    for (struct addrinfo *p = ai; p != NULL; p = p->ai_next) {
        fd = socket(p->ai_family, p->ai_socktype, p->ai_protocol);
        if (fd < 0) {
            last = errno;
            continue;
        }
        struct timeval tv = {.tv_sec = STATS_IO_TIMEOUT_S};
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        if (connect(fd, p->ai_addr, p->ai_addrlen) == 0) {
            break;
        }
        last = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    if (fd < 0) {
        snprintf(err, errlen, "cannot connect to %s: %s (is `cp2p node --api` running?)", api,
                 strerror(last));
        return -1;
    }
    char req[2048];
    int n = snprintf(req, sizeof(req),
                     "%s %s HTTP/1.0\r\nHost: %s\r\nUser-Agent: cp2p-stats\r\n"
                     "Content-Length: 0\r\n%s%s%s\r\n",
                     method, path, api, token ? "Authorization: Bearer " : "",
                     token ? token : "", token ? "\r\n" : "");
    if (n < 0 || (size_t)n >= sizeof(req)) {
        close(fd);
        snprintf(err, errlen, "access token too long");
        return -1;
    }
    for (size_t off = 0; off < (size_t)n;) {
        ssize_t w = send(fd, req + off, (size_t)n - off, MSG_NOSIGNAL);
        if (w <= 0) {
            snprintf(err, errlen, "%s: send: %s", api, strerror(errno));
            close(fd);
            return -1;
        }
        off += (size_t)w;
    }
    size_t cap = 64 * 1024, len = 0;
    char *buf = malloc(cap + 1);
    for (;;) {
        if (buf == NULL) {
            close(fd);
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        if (len == cap) {
            if (cap >= STATS_ANSWER_MAX) {
                free(buf);
                close(fd);
                snprintf(err, errlen, "%s%s: answer larger than 16 MiB", api, path);
                return -1;
            }
            cap *= 2;
            char *nb = realloc(buf, cap + 1);
            if (nb == NULL) {
                free(buf);
            }
            buf = nb;
            continue;
        }
        ssize_t r = recv(fd, buf + len, cap - len, 0);
        if (r == 0) {
            break;
        }
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            snprintf(err, errlen, "%s%s: %s", api, path,
                     errno == EAGAIN || errno == EWOULDBLOCK ? "no answer within 5 s"
                                                             : strerror(errno));
            free(buf);
            close(fd);
            return -1;
        }
        len += (size_t)r;
    }
    close(fd);
    buf[len] = '\0';
    int status = 0;
    char *hdr_end = strstr(buf, "\r\n\r\n");
    if (sscanf(buf, "HTTP/%*d.%*d %d", &status) != 1 || hdr_end == NULL) {
        free(buf);
        snprintf(err, errlen, "%s%s: not an HTTP answer", api, path);
        return -1;
    }
    out->text = buf;
    out->len = len;
    out->body = hdr_end + 4;
    out->status = status;
    return 0;
}

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

static size_t count_str(const char *s, const char *needle)
{
    size_t n = 0, nl = strlen(needle);
    for (const char *p = strstr(s, needle); p != NULL; p = strstr(p + nl, needle)) {
        n++;
    }
    return n;
}

static unsigned long long sum_field(const char *s, const char *field)
{
    unsigned long long sum = 0;
    size_t fl = strlen(field);
    for (const char *p = strstr(s, field); p != NULL; p = strstr(p + fl, field)) {
        sum += strtoull(p + fl, NULL, 10);
    }
    return sum;
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

static int fail_status(const char *api, const char *path, const http_answer *a)
{
    const char *what = a->status == 401   ? " (an access token is needed: --api-token or "
                                            "CP2P_API_TOKEN)"
                       : a->status == 403 ? " (wrong access token)"
                                          : "";
    const char *msg = strstr(a->body, "\"Message\":\"");
    char detail[200] = "";
    if (msg != NULL) {
        msg += 11;
        size_t l = strcspn(msg, "\"");
        snprintf(detail, sizeof(detail), ": %.*s", (int)(l < 190 ? l : 190), msg);
    }
    fprintf(stderr, "cp2p stats: %s%s answered %d%s%s\n", api, path, a->status, detail, what);
    return CLI_EXIT_FAIL;
}

static int stats_once(const char *api, const char *token, bool clear)
{
    http_answer m, p;
    char err[512];
    if (http_do(api, "GET", "/metrics", token, &m, err, sizeof(err)) != 0) {
        fprintf(stderr, "cp2p stats: %s\n", err);
        return CLI_EXIT_FAIL;
    }
    if (m.status != 200) {
        int rc = fail_status(api, "/metrics", &m);
        free(m.text);
        return rc;
    }
    if (http_do(api, "POST", "/api/v0/peers", token, &p, err, sizeof(err)) != 0) {
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
    const char *t = m.body;
    char when[32];
    time_t now = time(NULL);
    struct tm tm;
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &tm));
    if (clear) {
        printf("\033[H\033[2J");
    }
    printf("cp2p stats %s at %s\n", api, when);
    size_t conns = count_str(p.body, "\"Peer\":");
    printf("peers        %zu connection%s (inbound %zu, outbound %zu)\n", conns,
           conns == 1 ? "" : "s", count_str(p.body, "\"Direction\":\"inbound\""),
           count_str(p.body, "\"Direction\":\"outbound\""));
    print_row(t, "connections", ROW_CONNS);
    print_row(t, "streams", ROW_STREAMS);
    printf("bytes        in %llu out %llu (open connections' payload)\n",
           sum_field(p.body, "\"BytesIn\":"), sum_field(p.body, "\"BytesOut\":"));
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
