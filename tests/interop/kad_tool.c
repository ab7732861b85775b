/* cp2p's side of tests/interop/kad.test.mjs: a host on 127.0.0.1 running the Kademlia DHT
 * (include/cp2p/kad.h), driven by commands on stdin, one per line, each answered by one JSON
 * line on stdout (the style of host_tool.c). Keys and values are text without spaces.
 *   start NS MODE [BOOT...]  start the DHT (/ipfs/kad/1.0.0; MODE server or client) with an
 *                         accept-any validator for namespace NS and the bootstrap multiaddrs
 *                         BOOT (with /p2p/): {"cmd":"start","ok":true}
 *   bootstrap             bootstrap again: {"cmd":"bootstrap","ok":..,"status":..,"table":N}
 *   table                 {"cmd":"table","ok":true,"peers":[ID...]}
 *   find-peer ID          {"cmd":"find-peer","ok":true,"peer":ID,"addrs":[..]} or ok false
 *   put KEY VALUE         {"cmd":"put","ok":true,"stored":N}
 *   get KEY               {"cmd":"get","ok":true,"value":VALUE}
 *   provide CID           {"cmd":"provide","ok":true,"stored":N}
 *   find-providers CID    {"cmd":"find-providers","ok":true,"providers":[{"peer":..,"addrs":[..]}]}
 *   stats                 cp2p_kad_stats_get's counters
 *   quit
 * Failures: {"cmd":..,"ok":false,"error":TEXT}. Events: {"event":"listening","addr":..,
 * "peer":..} first, {"event":"conn","peer":..,"outbound":..}. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cp2p/kad.h>

#include "tool_lines.h"

#define MAX_BOOT 16
#define MAX_PROVIDERS 20

static uv_loop_t *loop;
static cp2p_host *host;
static cp2p_kad *kad;
static uv_pipe_t in;
static bool busy; /* a command is running: later lines wait */
static tool_lines lines;
static bool closing;

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

static void print_peer(const cp2p_kad_peer_info *p)
{
    char pid[CP2P_PEER_ID_STR_MAX];
    printf("\"peer\":\"%s\",\"addrs\":[", cp2p_peer_id_str(&p->id, pid));
    for (size_t i = 0; i < p->n_addrs; i++) {
        printf(i ? "," : "");
        print_ma(p->addrs[i]);
    }
    printf("]");
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
    }
}

/* ---- DHT callbacks ---- */

static void on_boot(cp2p_kad *k, int status, size_t table_size, void *ud)
{
    (void)k;
    (void)ud;
    printf("{\"cmd\":\"bootstrap\",\"ok\":%s,\"status\":", status == 0 ? "true" : "false");
    const char *e = cp2p_strerror(status);
    print_str(e, strlen(e));
    printf(",\"table\":%zu}\n", table_size);
    done();
}

static void on_peer(cp2p_kad *k, int status, const cp2p_kad_peer_info *p, void *ud)
{
    (void)k;
    (void)ud;
    if (status != 0) {
        fail("find-peer", status);
        return;
    }
    printf("{\"cmd\":\"find-peer\",\"ok\":true,");
    print_peer(p);
    printf("}\n");
    done();
}

static void on_stored(cp2p_kad *k, int status, size_t stored, void *ud)
{
    const char *cmd = ud;
    (void)k;
    if (status != 0) {
        fail(cmd, status);
        return;
    }
    printf("{\"cmd\":\"%s\",\"ok\":true,\"stored\":%zu}\n", cmd, stored);
    done();
}

static void on_value(cp2p_kad *k, int status, const uint8_t *v, size_t len, void *ud)
{
    (void)k;
    (void)ud;
    if (status != 0) {
        fail("get", status);
        return;
    }
    printf("{\"cmd\":\"get\",\"ok\":true,\"value\":");
    print_str((const char *)v, len);
    printf("}\n");
    done();
}

static void on_providers(cp2p_kad *k, int status, const cp2p_kad_peer_info *p, size_t n,
                         void *ud)
{
    (void)k;
    (void)ud;
    if (status != 0) {
        fail("find-providers", status);
        return;
    }
    printf("{\"cmd\":\"find-providers\",\"ok\":true,\"providers\":[");
    for (size_t i = 0; i < n; i++) {
        printf(i ? ",{" : "{");
        print_peer(&p[i]);
        printf("}");
    }
    printf("]}\n");
    done();
}

/* ---- commands ---- */

static void start_command(char *args)
{
    cp2p_kad_config kc;
    const char *boot[MAX_BOOT];
    size_t nboot = 0;
    char *save = NULL;
    char *ns = args ? strtok_r(args, " ", &save) : NULL;
    char *mode = ns ? strtok_r(NULL, " ", &save) : NULL;
    int rc;
    if (ns == NULL || mode == NULL || kad != NULL ||
        (strcmp(mode, "server") != 0 && strcmp(mode, "client") != 0)) {
        fail("start", CP2P_EINVAL);
        return;
    }
    for (char *t = strtok_r(NULL, " ", &save); t != NULL; t = strtok_r(NULL, " ", &save)) {
        if (nboot == MAX_BOOT) {
            fail("start", CP2P_ELIMIT);
            return;
        }
        boot[nboot++] = t;
    }
    cp2p_kad_config_default(&kc);
    kc.mode = strcmp(mode, "server") == 0 ? CP2P_KAD_MODE_SERVER : CP2P_KAD_MODE_CLIENT;
    kc.bootstrap = boot;
    kc.n_bootstrap = nboot;
    kc.query_timeout_ms = 5000;
    kc.lookup_timeout_ms = 20000;
    if ((rc = cp2p_kad_new(host, &kc, &kad)) != 0) {
        fail("start", rc);
        return;
    }
    if ((rc = cp2p_kad_add_validator(kad, ns, cp2p_kad_accept_any, NULL, NULL)) != 0) {
        fail("start", rc);
        return;
    }
    printf("{\"cmd\":\"start\",\"ok\":true}\n");
    done();
}

static void table_command(void)
{
    char pid[CP2P_PEER_ID_STR_MAX];
    cp2p_peer_id p;
    printf("{\"cmd\":\"table\",\"ok\":true,\"peers\":[");
    for (size_t i = 0; cp2p_kad_table_peer(kad, i, &p); i++) {
        printf("%s\"%s\"", i ? "," : "", cp2p_peer_id_str(&p, pid));
    }
    printf("]}\n");
    done();
}

static void stats_command(void)
{
    cp2p_kad_stats s;
    cp2p_kad_stats_get(kad, &s);
    printf("{\"cmd\":\"stats\",\"ok\":true,\"table_size\":%llu,\"table_added\":%llu,"
           "\"table_removed\":%llu,\"requests_in\":%llu,\"requests_refused_rate\":%llu,"
           "\"requests_bad\":%llu,\"responses_sent\":%llu,\"queries_out\":%llu,"
           "\"queries_failed\":%llu,\"lookups\":%llu,\"lookups_timed_out\":%llu,"
           "\"closer_dropped\":%llu,\"values_invalid\":%llu,\"records_stored\":%llu,"
           "\"providers_stored\":%llu}\n",
           (unsigned long long)s.table_size, (unsigned long long)s.table_added,
           (unsigned long long)s.table_removed, (unsigned long long)s.requests_in,
           (unsigned long long)s.requests_refused_rate, (unsigned long long)s.requests_bad,
           (unsigned long long)s.responses_sent, (unsigned long long)s.queries_out,
           (unsigned long long)s.queries_failed, (unsigned long long)s.lookups,
           (unsigned long long)s.lookups_timed_out, (unsigned long long)s.closer_dropped,
           (unsigned long long)s.values_invalid, (unsigned long long)s.records_stored,
           (unsigned long long)s.providers_stored);
    done();
}

static void shutdown_all(void)
{
    if (closing) {
        return;
    }
    closing = true;
    if (kad != NULL) {
        cp2p_kad_close(kad);
        kad = NULL;
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
    uint8_t key[128];
    ptrdiff_t klen;
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
    if (kad == NULL) {
        fail(cmd, CP2P_ESTATE);
        return;
    }
    if (arg1 != NULL && (arg2 = strchr(arg1, ' ')) != NULL) {
        *arg2++ = 0;
    }
    if (strcmp(cmd, "bootstrap") == 0) {
        rc = cp2p_kad_bootstrap(kad, on_boot, NULL);
    } else if (strcmp(cmd, "table") == 0) {
        table_command();
    } else if (strcmp(cmd, "stats") == 0) {
        stats_command();
    } else if (strcmp(cmd, "find-peer") == 0 && arg1 != NULL) {
        cp2p_peer_id id;
        if ((rc = cp2p_peer_id_parse(arg1, strlen(arg1), &id)) == 0) {
            rc = cp2p_kad_find_peer(kad, &id, on_peer, NULL);
        }
    } else if (strcmp(cmd, "put") == 0 && arg1 != NULL && arg2 != NULL) {
        rc = cp2p_kad_put_value(kad, (const uint8_t *)arg1, strlen(arg1), (const uint8_t *)arg2,
                                strlen(arg2), on_stored, "put");
    } else if (strcmp(cmd, "get") == 0 && arg1 != NULL) {
        rc = cp2p_kad_get_value(kad, (const uint8_t *)arg1, strlen(arg1), on_value, NULL);
    } else if (strcmp(cmd, "provide") == 0 && arg1 != NULL) {
        klen = cp2p_kad_key_from_cid(arg1, key, sizeof(key));
        rc = klen < 0 ? (int)klen : cp2p_kad_provide(kad, key, (size_t)klen, on_stored, "provide");
    } else if (strcmp(cmd, "find-providers") == 0 && arg1 != NULL) {
        klen = cp2p_kad_key_from_cid(arg1, key, sizeof(key));
        rc = klen < 0 ? (int)klen
                      : cp2p_kad_find_providers(kad, key, (size_t)klen, MAX_PROVIDERS,
                                                on_providers, NULL);
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
    return 0;
}
