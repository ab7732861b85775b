/* One overlay node of the network-namespace fault test (tests/netns/overlay_netns.sh): run
 * inside its namespace, it listens on 0.0.0.0:PORT, keeps a connection to each peer it is told
 * to dial (redialing every second while there is none), waits until the overlay has a route to
 * every other node, sends its reliable messages to random nodes with a window in flight, and
 * logs every result and every delivery:
 *     C <ms>               converged: routes to all N-1 others after <ms>
 *     S <dst> <id> <status> a result of one of our messages (0 acked, else the error)
 *     D <src> <id>          a delivery to us
 *     R <unix ms>           our routing table (destination, next hop, metric) changed
 * It touches OUT.done once every message has its result, and exits when the file STOP appears.
 * Identities come from the node index (seed = index + 1), so every node knows every peer ID.
 *
 *   overlay_netns_tool INDEX N PORT MESSAGES OUT STOP [PEER_INDEX:IP ...] */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <cp2p/host.h>
#include <cp2p/overlay.h>

#define MAX_N 64
#define WINDOW 32

typedef struct target {
    int idx;
    char addr[128];
    bool dialing;
} target;

static int me, n_nodes, port, to_send, sent, results, converged_ms = -1;
static cp2p_peer_id ids[MAX_N];
static target targets[MAX_N];
static int n_targets;
static cp2p_host *host;
static cp2p_overlay *ov;
static FILE *out;
static const char *out_path, *stop_path;
static uint64_t start_ms, rng;
static uv_loop_t loop;
static uv_timer_t tick;
static bool done_written;
static long credits = -1; /* OVL_PACE_MS: messages we may still send now (-1: no pacing) */
static long pace_ms;
static uint64_t table_sig;

/* A digest of the routing table (destination, next hop, metric), to log its changes. */
static uint64_t routes_digest(void)
{
    cp2p_overlay_route rt[MAX_N];
    size_t n = cp2p_overlay_routes(ov, rt, MAX_N);
    uint64_t sig = n;
    for (size_t i = 0; i < n && i < MAX_N; i++) {
        uint64_t h = 1469598103934665603u;
        for (size_t k = 0; k < rt[i].dst.len; k++) {
            h = (h ^ rt[i].dst.bytes[k]) * 1099511628211u;
        }
        for (size_t k = 0; k < rt[i].next_hop.len; k++) {
            h = (h ^ rt[i].next_hop.bytes[k]) * 1099511628211u;
        }
        sig += h * (rt[i].metric + 1); /* order-independent */
    }
    return sig;
}

static int num(const char *s)
{
    char *end;
    long v = strtol(s, &end, 10);
    return end == s || v < 0 || v > 1000000000 ? -1 : (int)v;
}

static int idx_of(const cp2p_peer_id *id)
{
    for (int i = 0; i < n_nodes; i++) {
        if (cp2p_peer_id_equal(&ids[i], id)) {
            return i;
        }
    }
    return -1;
}

static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void on_deliver(cp2p_overlay *o, const cp2p_peer_id *src, uint64_t id,
                       const uint8_t *data, size_t len, bool reliable, void *ud)
{
    (void)o;
    (void)data;
    (void)len;
    (void)reliable;
    (void)ud;
    fprintf(out, "D %d %llu\n", idx_of(src), (unsigned long long)id);
}

static void send_more(void);

static void on_result(cp2p_overlay *o, const cp2p_peer_id *dst, uint64_t id, int status,
                      void *ud)
{
    (void)o;
    (void)ud;
    fprintf(out, "S %d %llu %d\n", idx_of(dst), (unsigned long long)id, status);
    results++;
    send_more();
}

static void send_more(void)
{
    while (sent < to_send && sent - results < WINDOW && credits != 0) {
        int dst;
        do {
            dst = (int)(rnd() % (uint64_t)n_nodes);
        } while (dst == me);
        char msg[64];
        int len = snprintf(msg, sizeof(msg), "from %d msg %d", me, sent);
        uint64_t id;
        int rc = cp2p_overlay_send(ov, &ids[dst], msg, (size_t)len, CP2P_OVERLAY_RELIABLE, &id);
        if (rc == CP2P_EFULL) {
            return; /* a result makes room */
        }
        if (rc != 0) {
            fprintf(stderr, "node %d: send: %s\n", me, cp2p_strerror(rc));
            exit(2);
        }
        sent++;
        if (credits > 0) {
            credits--;
        }
    }
}

static void on_dial(cp2p_host *h, int status, cp2p_conn *c, void *ud)
{
    target *t = ud;
    (void)h;
    (void)status;
    (void)c;
    t->dialing = false;
}

static void on_closed(cp2p_host *h, void *ud)
{
    (void)h;
    (void)ud;
}

static void on_tick(uv_timer_t *t)
{
    (void)t;
    struct stat sb;
    uint64_t now = uv_now(&loop);
    for (int i = 0; i < n_targets; i++) {
        target *x = &targets[i];
        if (!x->dialing && cp2p_host_conn_to(host, &ids[x->idx]) == NULL) {
            cp2p_multiaddr *ma;
            char text[256];
            char pid[CP2P_PEER_ID_STR_MAX];
            int len = snprintf(text, sizeof(text), "/ip4/%s/tcp/%d/p2p/%s", x->addr, port,
                               cp2p_peer_id_str(&ids[x->idx], pid));
            if (cp2p_multiaddr_parse(text, (size_t)len, &ma) == 0) {
                x->dialing = cp2p_host_dial(host, ma, on_dial, x) == 0;
                cp2p_multiaddr_free(ma);
            }
        }
    }
    if (pace_ms > 0 && converged_ms >= 0) {
        credits = 200 / pace_ms > 0 ? 200 / pace_ms : 1; /* per 200 ms tick */
        send_more();
    }
    if (converged_ms < 0) {
        cp2p_overlay_route rt[MAX_N];
        if (cp2p_overlay_routes(ov, rt, MAX_N) >= (size_t)(n_nodes - 1)) {
            converged_ms = (int)(now - start_ms);
            fprintf(out, "C %d\n", converged_ms);
            fflush(out);
            send_more();
        } else if (now - start_ms > 180000) {
            fprintf(stderr, "node %d: no route to every node after 180 s\n", me);
            exit(3);
        }
    }
    uint64_t sig = routes_digest();
    if (sig != table_sig) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        fprintf(out, "R %llu\n",
                (unsigned long long)ts.tv_sec * 1000 + (unsigned long long)ts.tv_nsec / 1000000);
        fflush(out); /* the driver reads these while we run */
        table_sig = sig;
    }
    if (!done_written && converged_ms >= 0 && results == to_send) {
        char p[4096];
        snprintf(p, sizeof(p), "%s.done", out_path);
        fflush(out);
        FILE *f = fopen(p, "w");
        if (f != NULL) {
            fclose(f);
        }
        done_written = true;
    }
    if (stat(stop_path, &sb) == 0) {
        cp2p_overlay_stats st;
        cp2p_overlay_stats_get(ov, &st);
        fprintf(out,
                "X retransmissions %llu duplicates %llu forwarded %llu dropped_no_route %llu "
                "dropped_hop_limit %llu updates_sent %llu\n",
                (unsigned long long)st.retransmissions, (unsigned long long)st.duplicates,
                (unsigned long long)st.forwarded, (unsigned long long)st.dropped_no_route,
                (unsigned long long)st.dropped_hop_limit, (unsigned long long)st.updates_sent);
        fflush(out);
        uv_timer_stop(&tick);
        uv_close((uv_handle_t *)&tick, NULL);
        cp2p_host_close(host, on_closed, NULL);
    }
}

int main(int argc, char **argv)
{
    if (argc < 7) {
        fprintf(stderr, "usage: %s INDEX N PORT MESSAGES OUT STOP [PEER:IP ...]\n", argv[0]);
        return 64;
    }
    signal(SIGPIPE, SIG_IGN);
    me = num(argv[1]);
    n_nodes = num(argv[2]);
    port = num(argv[3]);
    to_send = num(argv[4]);
    out_path = argv[5];
    stop_path = argv[6];
    if (n_nodes < 2 || n_nodes > MAX_N || me < 0 || me >= n_nodes) {
        return 64;
    }
    rng = 0x9E3779B97F4A7C15ull * (uint64_t)(me + 1);
    const char *pace = getenv("OVL_PACE_MS"); /* send one message per this many ms */
    if (pace != NULL && (pace_ms = num(pace)) > 0) {
        credits = 0;
    }
    cp2p_privkey *keys[MAX_N];
    for (int i = 0; i < n_nodes; i++) {
        uint8_t seed[32] = {0};
        seed[0] = (uint8_t)(i + 1);
        seed[1] = 0x16;
        if (cp2p_privkey_from_seed(CP2P_KEY_ED25519, seed, &keys[i]) != 0 ||
            cp2p_peer_id_from_pubkey(cp2p_privkey_public(keys[i]), &ids[i]) != 0) {
            return 1;
        }
    }
    for (int a = 7; a < argc && n_targets < MAX_N; a++) {
        const char *colon = strchr(argv[a], ':');
        if (colon == NULL) {
            return 64;
        }
        targets[n_targets].idx = num(argv[a]);
        snprintf(targets[n_targets].addr, sizeof(targets[n_targets].addr), "%s", colon + 1);
        n_targets++;
    }
    if ((out = fopen(out_path, "w")) == NULL) {
        return 1;
    }
    uv_loop_init(&loop);
    cp2p_host_config cfg;
    cp2p_host_config_default(&cfg);
    cfg.identity = keys[me];
    cfg.reconnect_known_peers = CP2P_HOST_NO_RECONNECT;
    cfg.dial_timeout_ms = 5000;
    if (cp2p_host_new(&loop, &cfg, &host) != 0) {
        return 1;
    }
    for (int i = 0; i < n_nodes; i++) {
        cp2p_privkey_free(keys[i]);
    }
    char text[64];
    cp2p_multiaddr *ma;
    int len = snprintf(text, sizeof(text), "/ip4/0.0.0.0/tcp/%d", port);
    if (cp2p_multiaddr_parse(text, (size_t)len, &ma) != 0 || cp2p_host_listen(host, ma) != 0) {
        fprintf(stderr, "node %d: cannot listen on %s\n", me, text);
        return 1;
    }
    cp2p_multiaddr_free(ma);
    cp2p_overlay_config oc;
    cp2p_overlay_config_default(&oc);
    oc.deliver = on_deliver;
    oc.result = on_result;
    oc.update_interval_ms = 2000;
    oc.retry_limit = 12; /* budget: about 2 minutes at the 10 s RTO ceiling */
    if (cp2p_overlay_new(host, &oc, NULL, &ov) != 0) {
        return 1;
    }
    start_ms = uv_now(&loop);
    uv_timer_init(&loop, &tick);
    uv_timer_start(&tick, on_tick, 200, 200);
    uv_run(&loop, UV_RUN_DEFAULT);
    fclose(out);
    return uv_loop_close(&loop) == 0 ? 0 : 1;
}
