/* cp2p's side of tests/interop/gossipsub.test.mjs: a host on 127.0.0.1 running gossipsub
 * (include/cp2p/pubsub.h), driven by commands on stdin, one per line, each answered by one JSON
 * line on stdout (the style of host_tool.c and kad_tool.c). Topics are text without spaces.
 *   start [OPT=V...]      start pubsub; options: d d_lo d_hi d_lazy d_score d_out heartbeat_ms
 *                         (numbers), do_px no_scoring no_flood_publish strict_no_sign (0/1),
 *                         scored=TOPIC (scored topic, at most 4): {"cmd":"start","ok":true}
 *   dial ADDR             {"cmd":"dial","ok":true,"peer":ID}
 *   addr ADDR             add ADDR (with /p2p/ID) to the peerstore, for dials by peer ID
 *                         (e.g. peers learned from PRUNE peer exchange): {"cmd":"addr","ok":true}
 *   sub TOPIC / unsub TOPIC
 *   pub TOPIC TEXT        publish TEXT (the rest of the line, UTF-8)
 *   peers TOPIC           {"cmd":"peers","ok":true,"peers":[ID...]}: peers subscribed to TOPIC
 *   mesh TOPIC            {"cmd":"mesh","ok":true,"peers":[ID...]}: our mesh of TOPIC
 *   stats                 cp2p_pubsub_stats_get's counters and "scores":{ID:score} for the
 *                         peers of every topic we subscribed to
 *   quit
 * Failures: {"cmd":..,"ok":false,"error":TEXT}. Events: {"event":"listening","addr":..,
 * "peer":..} first, {"event":"conn","peer":..,"outbound":..}, {"event":"closed","peer":..},
 * {"event":"msg","topic":..,"from":ID|null,"via":ID,"seqno":HEX,"id":HEX,"data":TEXT,
 * "data_hex":HEX} for each delivered message. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cp2p/pubsub.h>

#include "tool_lines.h"

#define MAX_TOPICS 16
#define MAX_LIST 256

static uv_loop_t *loop;
static cp2p_host *host;
static cp2p_pubsub *ps;
static uv_pipe_t in;
static bool busy; /* a command is running: later lines wait */
static tool_lines lines;
static bool closing;
static char *topics[MAX_TOPICS]; /* topics we subscribed to (for stats) */
static char scored_buf[4][256];
static const char *scored[4];

static void next_command(void);

static void print_str(const char *s, size_t n)
{
    putchar('"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            printf("\\%c", c);
        } else if (c < 0x20 || c >= 0x7f) {
            printf("\\u%04x", c);
        } else {
            putchar(c);
        }
    }
    putchar('"');
}

static void print_hex(const uint8_t *p, size_t n)
{
    putchar('"');
    for (size_t i = 0; i < n; i++) {
        printf("%02x", p[i]);
    }
    putchar('"');
}

static void print_ma(const cp2p_multiaddr *ma)
{
    cp2p_buf b;
    cp2p_buf_init(&b, CP2P_MULTIADDR_STR_MAX);
    if (ma != NULL && cp2p_multiaddr_to_string(ma, &b) == 0) {
        print_str((const char *)b.ptr, b.len);
    } else {
        printf("null");
    }
    cp2p_buf_fini(&b);
}

static void done(void)
{
    fflush(stdout);
    busy = false;
    next_command();
}

static void fail(const char *cmd, int err)
{
    printf("{\"cmd\":\"%s\",\"ok\":false,\"error\":", cmd);
    const char *e = cp2p_strerror(err);
    print_str(e, strlen(e));
    printf("}\n");
    done();
}

static void ok(const char *cmd)
{
    printf("{\"cmd\":\"%s\",\"ok\":true}\n", cmd);
    done();
}

static void on_event(cp2p_host *h, const cp2p_event *ev, void *ud)
{
    char pid[CP2P_PEER_ID_STR_MAX];
    (void)h;
    (void)ud;
    if (ev->type == CP2P_EVENT_CONN_OPENED) {
        printf("{\"event\":\"conn\",\"peer\":\"%s\",\"outbound\":%s}\n",
               cp2p_peer_id_str(cp2p_conn_peer_id(ev->conn), pid),
               cp2p_conn_is_outbound(ev->conn) ? "true" : "false");
        fflush(stdout);
    } else if (ev->type == CP2P_EVENT_CONN_CLOSED) {
        printf("{\"event\":\"closed\",\"peer\":\"%s\"}\n",
               cp2p_peer_id_str(cp2p_conn_peer_id(ev->conn), pid));
        fflush(stdout);
    }
}

static void on_msg(cp2p_pubsub *p, const cp2p_pubsub_msg *m, void *ud)
{
    char pid[CP2P_PEER_ID_STR_MAX];
    (void)p;
    (void)ud;
    printf("{\"event\":\"msg\",\"topic\":");
    print_str(m->topic, strlen(m->topic));
    if (m->from != NULL) {
        printf(",\"from\":\"%s\"", cp2p_peer_id_str(m->from, pid));
    } else {
        printf(",\"from\":null");
    }
    printf(",\"via\":\"%s\",\"seqno\":", cp2p_peer_id_str(m->via, pid));
    print_hex(m->seqno, m->seqno_len);
    printf(",\"id\":");
    print_hex(m->id, m->id_len);
    printf(",\"data\":");
    print_str((const char *)m->data, m->len);
    printf(",\"data_hex\":");
    print_hex(m->data, m->len);
    printf("}\n");
    fflush(stdout);
}

static void on_dial(cp2p_host *h, int status, cp2p_conn *c, void *ud)
{
    char pid[CP2P_PEER_ID_STR_MAX];
    (void)h;
    (void)ud;
    if (status != 0) {
        fail("dial", status);
        return;
    }
    printf("{\"cmd\":\"dial\",\"ok\":true,\"peer\":\"%s\"}\n",
           cp2p_peer_id_str(cp2p_conn_peer_id(c), pid));
    done();
}

/* ---- commands ---- */

static bool opt_num(const char *v, unsigned long long *out)
{
    char *end = NULL;
    *out = strtoull(v, &end, 10);
    return end != v && *end == 0;
}

static void start_command(char *args)
{
    cp2p_pubsub_config pc;
    char *save = NULL;
    size_t nscored = 0;
    int rc;
    if (ps != NULL) {
        fail("start", CP2P_ESTATE);
        return;
    }
    cp2p_pubsub_config_default(&pc);
    for (char *t = args ? strtok_r(args, " ", &save) : NULL; t != NULL;
         t = strtok_r(NULL, " ", &save)) {
        char *v = strchr(t, '=');
        unsigned long long n = 0;
        if (v == NULL) {
            fail("start", CP2P_EINVAL);
            return;
        }
        *v++ = 0;
        if (strcmp(t, "scored") == 0) {
            if (nscored == 4 || strlen(v) >= sizeof(scored_buf[0])) {
                fail("start", CP2P_ELIMIT);
                return;
            }
            memcpy(scored_buf[nscored], v, strlen(v) + 1);
            scored[nscored] = scored_buf[nscored];
            nscored++;
            continue;
        }
        if (!opt_num(v, &n)) {
            fail("start", CP2P_EINVAL);
            return;
        }
        if (strcmp(t, "d") == 0) {
            pc.d = (unsigned)n;
        } else if (strcmp(t, "d_lo") == 0) {
            pc.d_lo = (unsigned)n;
        } else if (strcmp(t, "d_hi") == 0) {
            pc.d_hi = (unsigned)n;
        } else if (strcmp(t, "d_lazy") == 0) {
            pc.d_lazy = (unsigned)n;
        } else if (strcmp(t, "d_score") == 0) {
            pc.d_score = (unsigned)n;
        } else if (strcmp(t, "d_out") == 0) {
            pc.d_out = (unsigned)n;
        } else if (strcmp(t, "heartbeat_ms") == 0) {
            pc.heartbeat_ms = n;
        } else if (strcmp(t, "do_px") == 0) {
            pc.do_px = n != 0;
        } else if (strcmp(t, "no_scoring") == 0) {
            pc.no_scoring = n != 0;
        } else if (strcmp(t, "no_flood_publish") == 0) {
            pc.no_flood_publish = n != 0;
        } else if (strcmp(t, "strict_no_sign") == 0) {
            pc.strict_no_sign = n != 0;
        } else {
            fail("start", CP2P_EINVAL);
            return;
        }
    }
    pc.scored_topics = scored;
    pc.n_scored_topics = nscored;
    if ((rc = cp2p_pubsub_new(host, &pc, &ps)) != 0) {
        fail("start", rc);
        return;
    }
    ok("start");
}

static void addr_command(const char *arg)
{
    cp2p_multiaddr *ma = NULL, *bare = NULL;
    cp2p_peer_id id;
    struct timespec ts;
    int rc = cp2p_multiaddr_parse(arg, strlen(arg), &ma);
    if (rc == 0 && (rc = cp2p_multiaddr_peer_id(ma, &id)) == 0 &&
        (rc = cp2p_multiaddr_decapsulate_code(ma, CP2P_MA_P2P, &bare)) == 0) {
        const cp2p_multiaddr *a = bare;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t now = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
        rc = cp2p_peerstore_add_addrs(cp2p_host_peerstore(host), &id, &a, 1,
                                      3600u * 1000u, CP2P_ADDR_SOURCE_MANUAL, now);
    }
    cp2p_multiaddr_free(bare);
    cp2p_multiaddr_free(ma);
    if (rc != 0) {
        fail("addr", rc);
        return;
    }
    ok("addr");
}

static void list_command(const char *cmd, const char *topic, bool mesh)
{
    static cp2p_peer_id v[MAX_LIST];
    char pid[CP2P_PEER_ID_STR_MAX];
    size_t n = mesh ? cp2p_pubsub_mesh_peers(ps, topic, v, MAX_LIST)
                    : cp2p_pubsub_topic_peers(ps, topic, v, MAX_LIST);
    printf("{\"cmd\":\"%s\",\"ok\":true,\"peers\":[", cmd);
    for (size_t i = 0; i < n && i < MAX_LIST; i++) {
        printf("%s\"%s\"", i ? "," : "", cp2p_peer_id_str(&v[i], pid));
    }
    printf("]}\n");
    done();
}

static void topic_add(const char *t)
{
    for (size_t i = 0; i < MAX_TOPICS; i++) {
        if (topics[i] != NULL && strcmp(topics[i], t) == 0) {
            return;
        }
    }
    for (size_t i = 0; i < MAX_TOPICS; i++) {
        if (topics[i] == NULL) {
            topics[i] = strdup(t);
            return;
        }
    }
}

static void stats_command(void)
{
    static cp2p_peer_id v[MAX_LIST];
    char pid[CP2P_PEER_ID_STR_MAX];
    cp2p_pubsub_stats s;
    cp2p_pubsub_stats_get(ps, &s);
    printf("{\"cmd\":\"stats\",\"ok\":true");
#define F(x) printf(",\"" #x "\":%llu", (unsigned long long)s.x)
    F(peers);
    F(rpcs_in);
    F(rpcs_refused);
    F(frames_out);
    F(bytes_out);
    F(msgs_in);
    F(msgs_delivered);
    F(msgs_duplicate);
    F(msgs_rejected);
    F(msgs_ignored);
    F(msgs_bad_sig);
    F(msgs_published);
    F(msgs_forwarded);
    F(subs_refused);
    F(graylisted);
    F(idontwant_sent);
    F(idontwant_suppressed);
    F(iwant_sent);
    F(promises_broken);
    F(outbox_drops);
    F(penalties);
    F(px_dials);
    F(px_records_ok);
    F(px_records_bad);
#undef F
    printf(",\"scores\":{");
    size_t k = 0;
    for (size_t t = 0; t < MAX_TOPICS; t++) {
        if (topics[t] == NULL) {
            continue;
        }
        size_t n = cp2p_pubsub_topic_peers(ps, topics[t], v, MAX_LIST);
        for (size_t i = 0; i < n && i < MAX_LIST; i++) {
            printf("%s\"%s\":%.4f", k++ ? "," : "", cp2p_peer_id_str(&v[i], pid),
                   cp2p_pubsub_peer_score(ps, &v[i]));
        }
    }
    printf("}}\n");
    done();
}

static void shutdown_all(void)
{
    if (closing) {
        return;
    }
    closing = true;
    if (ps != NULL) {
        cp2p_pubsub_close(ps);
        ps = NULL;
    }
    cp2p_host_close(host, NULL, NULL);
    if (!uv_is_closing((uv_handle_t *)&in)) {
        uv_close((uv_handle_t *)&in, NULL);
    }
}

static void run_command(char *cmd)
{
    char *arg1 = strchr(cmd, ' ');
    char *arg2 = NULL;
    int rc = 0;
    if (arg1 != NULL) {
        *arg1++ = 0;
    }
    busy = true;
    if (strcmp(cmd, "quit") == 0) {
        shutdown_all();
        return;
    }
    if (strcmp(cmd, "start") == 0) {
        start_command(arg1);
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
    if (strcmp(cmd, "addr") == 0 && arg1 != NULL) {
        addr_command(arg1);
        return;
    }
    if (ps == NULL) {
        fail(cmd, CP2P_ESTATE);
        return;
    }
    if (arg1 != NULL && (arg2 = strchr(arg1, ' ')) != NULL) {
        *arg2++ = 0;
    }
    if (strcmp(cmd, "sub") == 0 && arg1 != NULL) {
        if ((rc = cp2p_pubsub_subscribe(ps, arg1, on_msg, NULL)) == 0) {
            topic_add(arg1);
            ok(cmd);
        }
    } else if (strcmp(cmd, "unsub") == 0 && arg1 != NULL) {
        if ((rc = cp2p_pubsub_unsubscribe(ps, arg1)) == 0) {
            ok(cmd);
        }
    } else if (strcmp(cmd, "pub") == 0 && arg1 != NULL) {
        const char *data = arg2 != NULL ? arg2 : "";
        if ((rc = cp2p_pubsub_publish(ps, arg1, data, strlen(data))) == 0) {
            ok(cmd);
        }
    } else if (strcmp(cmd, "peers") == 0 && arg1 != NULL) {
        list_command(cmd, arg1, false);
    } else if (strcmp(cmd, "mesh") == 0 && arg1 != NULL) {
        list_command(cmd, arg1, true);
    } else if (strcmp(cmd, "stats") == 0) {
        stats_command();
    } else {
        rc = CP2P_EINVAL;
    }
    if (rc != 0) {
        fail(cmd, rc);
    }
}

static void next_command(void)
{
    char *cmd;
    if (busy || closing || (cmd = tool_lines_pop(&lines)) == NULL) {
        return;
    }
    run_command(cmd);
    free(cmd);
}

static void on_stdin(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
    (void)s;
    if (n < 0) {
        shutdown_all();
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
    char pid[CP2P_PEER_ID_STR_MAX];
    signal(SIGPIPE, SIG_IGN);
    loop = uv_default_loop();
    if (cp2p_privkey_generate(CP2P_KEY_ED25519, &key) != 0) {
        return 1;
    }
    cp2p_host_config_default(&cfg);
    cfg.identity = key;
    cfg.reconnect_known_peers = CP2P_HOST_NO_RECONNECT;
    if (cp2p_host_new(loop, &cfg, &host) != 0) {
        return 1;
    }
    cp2p_privkey_free(key);
    cp2p_host_set_event_cb(host, on_event, NULL);
    if (cp2p_multiaddr_parse("/ip4/127.0.0.1/tcp/0", 20, &ma) != 0 ||
        cp2p_host_listen(host, ma) != 0) {
        return 1;
    }
    cp2p_multiaddr_free(ma);
    if (cp2p_host_listen_addr(host, 0, true, &ma) != 0) {
        return 1;
    }
    printf("{\"event\":\"listening\",\"addr\":");
    print_ma(ma);
    printf(",\"peer\":\"%s\"}\n", cp2p_peer_id_str(cp2p_host_peer_id(host), pid));
    fflush(stdout);
    cp2p_multiaddr_free(ma);
    uv_pipe_init(loop, &in, 0);
    uv_pipe_open(&in, 0);
    uv_read_start((uv_stream_t *)&in, tool_on_alloc, on_stdin);
    uv_run(loop, UV_RUN_DEFAULT);
    for (char *l; (l = tool_lines_pop(&lines)) != NULL;) {
        free(l);
    }
    for (size_t i = 0; i < MAX_TOPICS; i++) {
        free(topics[i]);
    }
    return 0;
}
