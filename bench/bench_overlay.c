/* Overlay benchmarks (`make bench`, bench/run.sh overlay; docs/BENCHMARKS.md "Overlay").
 *
 *   bench_overlay hops H MSGS     a line of H+1 hosts on the in-memory network (no added
 *                                 latency: the cost is cp2p's own), MSGS reliable 64-byte
 *                                 messages end to end one at a time: round trip (send to ack)
 *                                 p50/p99, wire bytes per message (everything the network
 *                                 carried, Noise, yamux and routing updates included, over the
 *                                 measurement) and overlay frame bytes per message (data + ack,
 *                                 every hop); one JSON line.
 *   bench_overlay scale N SECS    N overlay cores (sans-I/O) on a random sparse graph (degree
 *                                 about 4, links of 5 ms), virtual time: routing traffic per
 *                                 node per second in steady state over SECS, then one link
 *                                 failure: time until every route is the shortest again; one
 *                                 JSON line.
 * Not a test: nothing fails on a slow machine. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cp2p/memnet.h>
#include <cp2p/overlay.h>
#include <cp2p/protocols.h>

#include "overlay/ovl_core.h"

/* ---- hops: real hosts on the memory network ---- */

typedef struct hop_ctx {
    uv_loop_t *loop;
    int acked;
    uint64_t t_sent;
    double *rtt;
    int n_rtt;
} hop_ctx;

static void on_result(cp2p_overlay *ov, const cp2p_peer_id *dst, uint64_t id, int status,
                      void *ud)
{
    hop_ctx *c = ud;
    (void)ov;
    (void)dst;
    (void)id;
    if (status == 0) {
        c->rtt[c->n_rtt++] = (double)(uv_hrtime() - c->t_sent) / 1e6;
        c->acked++;
    }
}

static void on_dial(cp2p_host *h, int status, cp2p_conn *conn, void *ud)
{
    (void)h;
    (void)conn;
    *(int *)ud = status == 0 ? 1 : -1;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void on_closed(cp2p_host *h, void *ud)
{
    (void)h;
    (*(int *)ud)++;
}

static int bench_hops(int hops, int msgs)
{
    uv_loop_t *loop = uv_default_loop();
    cp2p_memnet *net;
    int n = hops + 1;
    cp2p_host **hosts = calloc((size_t)n, sizeof(*hosts));
    cp2p_overlay **ovs = calloc((size_t)n, sizeof(*ovs));
    hop_ctx ctx = {.loop = loop, .rtt = calloc((size_t)msgs, sizeof(double))};
    if (hosts == NULL || ovs == NULL || ctx.rtt == NULL || cp2p_memnet_new(loop, 1, &net) != 0) {
        return 1;
    }
    for (int i = 0; i < n; i++) {
        cp2p_host_config cfg;
        cp2p_privkey *key;
        cp2p_multiaddr *ma;
        char text[32];
        if (cp2p_privkey_generate(CP2P_KEY_ED25519, &key) != 0) {
            return 1;
        }
        cp2p_host_config_default(&cfg);
        cfg.identity = key;
        cfg.reconnect_known_peers = CP2P_HOST_NO_RECONNECT;
        cfg.memnet = net;
        int len = snprintf(text, sizeof(text), "/memory/h%d", i);
        if (cp2p_host_new(loop, &cfg, &hosts[i]) != 0 ||
            cp2p_multiaddr_parse(text, (size_t)len, &ma) != 0 || cp2p_host_listen(hosts[i], ma)) {
            return 1;
        }
        cp2p_multiaddr_free(ma);
        cp2p_privkey_free(key);
        cp2p_overlay_config oc;
        cp2p_overlay_config_default(&oc);
        oc.update_interval_ms = 1000;
        oc.result = on_result;
        if (cp2p_overlay_new(hosts[i], &oc, &ctx, &ovs[i]) != 0) {
            return 1;
        }
    }
    for (int i = 0; i + 1 < n; i++) {
        cp2p_multiaddr *ma;
        int done = 0;
        if (cp2p_host_listen_addr(hosts[i + 1], 0, true, &ma) != 0 ||
            cp2p_host_dial(hosts[i], ma, on_dial, &done) != 0) {
            return 1;
        }
        cp2p_multiaddr_free(ma);
        while (done == 0) {
            uv_run(loop, UV_RUN_ONCE);
        }
        if (done < 0) {
            return 1;
        }
    }
    const cp2p_peer_id *dst = cp2p_host_peer_id(hosts[n - 1]);
    for (;;) { /* wait for the route (and a source route) */
        cp2p_peer_id path[64];
        if (cp2p_overlay_path(ovs[0], dst, path, 64) == hops) {
            cp2p_overlay_route rt[64];
            size_t k = cp2p_overlay_routes(ovs[0], rt, 64);
            bool ok = false;
            for (size_t i = 0; i < k && i < 64; i++) {
                ok |= cp2p_peer_id_equal(&rt[i].dst, dst) && rt[i].metric == (uint32_t)hops;
            }
            if (ok) {
                break;
            }
        }
        uv_run(loop, UV_RUN_ONCE);
    }
    cp2p_memnet_stats before, after;
    cp2p_memnet_stats_get(net, &before);
    uint8_t payload[64];
    memset(payload, 0x5a, sizeof(payload));
    for (int k = 0; k < msgs; k++) {
        uint64_t id;
        ctx.t_sent = uv_hrtime();
        if (cp2p_overlay_send(ovs[0], dst, payload, sizeof(payload), CP2P_OVERLAY_RELIABLE, &id)) {
            return 1;
        }
        while (ctx.acked <= k) {
            uv_run(loop, UV_RUN_ONCE);
        }
    }
    cp2p_memnet_stats_get(net, &after);
    qsort(ctx.rtt, (size_t)ctx.n_rtt, sizeof(double), cmp_double);
    /* The overlay's own frames of one message: the data frame and the ack frame, as encoded
     * (DV: the same at every hop), times the hops. */
    cp2p__ovl_frame *f = calloc(1, sizeof(*f));
    cp2p_buf b;
    cp2p_buf_init(&b, CP2P_OVL_MAX_FRAME);
    cp2p__ovl_frame_clear(f);
    f->has_packet = true;
    f->packet = (cp2p__ovl_packet){.kind = CP2P_OVL_PKT_DATA, .src = *cp2p_host_peer_id(hosts[0]),
                                   .dst = *dst, .id = UINT64_C(0x7fffffffffffffff),
                                   .hop_limit = 16, .flags = CP2P_OVL_F_RELIABLE,
                                   .payload = {payload, sizeof(payload)}};
    size_t data_frame = cp2p__ovl_frame_encode(f, &b) == 0 ? b.len : 0;
    cp2p_buf_reset(&b);
    f->packet.kind = CP2P_OVL_PKT_ACK;
    f->packet.payload = (cp2p_slice){0};
    size_t ack_frame = cp2p__ovl_frame_encode(f, &b) == 0 ? b.len : 0;
    cp2p_buf_fini(&b);
    free(f);
    printf("{\"hops\":%d,\"msgs\":%d,\"rtt_p50_ms\":%.3f,\"rtt_p99_ms\":%.3f,"
           "\"wire_bytes_per_msg\":%.0f,\"overlay_bytes_per_msg\":%zu,\"payload\":64}\n",
           hops, msgs, ctx.rtt[ctx.n_rtt / 2], ctx.rtt[ctx.n_rtt * 99 / 100],
           (double)(after.bytes_sent - before.bytes_sent) / msgs,
           (data_frame + ack_frame + 2) * (size_t)hops);
    int closed = 0;
    for (int i = 0; i < n; i++) {
        cp2p_host_close(hosts[i], on_closed, &closed);
    }
    while (closed < n) {
        uv_run(loop, UV_RUN_ONCE);
    }
    if (cp2p_memnet_close(net, NULL, NULL) != 0) {
        return 1;
    }
    uv_run(loop, UV_RUN_DEFAULT);
    free(hosts);
    free(ovs);
    free(ctx.rtt);
    return 0;
}

/* ---- scale: cores on virtual time ---- */

#define LINK_MS 5
#define STEP_MS 5

typedef struct msg {
    uint64_t at;
    int from, to;
    cp2p_buf frame;
} msg;

typedef struct sim {
    int n;
    cp2p_peer_id *ids;
    cp2p__ovl **cores;
    int *deg;
    int (*adj)[16];
    msg *q;
    size_t head, len, cap;
    uint64_t now, rng;
    uint64_t bytes, frames;
} sim;

static uint64_t rnd(sim *s)
{
    s->rng ^= s->rng << 13;
    s->rng ^= s->rng >> 7;
    s->rng ^= s->rng << 17;
    return s->rng;
}

static uint64_t core_rand(void *ud)
{
    return rnd(ud);
}

static int *tbl;
static size_t tbl_cap;
static const cp2p_peer_id *tbl_ids;

static size_t id_hash(const cp2p_peer_id *id)
{
    size_t h = 1469598103934665603u;
    for (size_t i = 0; i < id->len; i++) {
        h = (h ^ id->bytes[i]) * 1099511628211u;
    }
    return h;
}

/* Peer index from a peer ID: a small open-addressing table (1,000 nodes). */
static int idx_of(const cp2p_peer_id *id)
{
    for (size_t i = id_hash(id) & (tbl_cap - 1);; i = (i + 1) & (tbl_cap - 1)) {
        if (tbl[i] < 0) {
            return -1;
        }
        if (cp2p_peer_id_equal(&tbl_ids[tbl[i]], id)) {
            return tbl[i];
        }
    }
}

static void push(sim *s, int from, int to, cp2p_buf frame)
{
    if (s->len == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 4096;
        msg *q = malloc(cap * sizeof(*q));
        for (size_t i = 0; i < s->len; i++) {
            q[i] = s->q[(s->head + i) % s->cap];
        }
        free(s->q);
        s->q = q;
        s->head = 0;
        s->cap = cap;
    }
    s->q[(s->head + s->len++) % s->cap] = (msg){s->now + LINK_MS, from, to, frame};
}

static bool linked(sim *s, int a, int b)
{
    for (int k = 0; k < s->deg[a]; k++) {
        if (s->adj[a][k] == b) {
            return true;
        }
    }
    return false;
}

static void drain(sim *s, int i)
{
    cp2p_peer_id to;
    cp2p_buf f;
    cp2p__ovl_event ev;
    while (cp2p__ovl_take_out(s->cores[i], &to, &f)) {
        s->bytes += f.len;
        s->frames++;
        push(s, i, idx_of(&to), f);
    }
    while (cp2p__ovl_poll_event(s->cores[i], &ev)) {
        cp2p__ovl_event_fini(&ev);
    }
}

static void step(sim *s, uint64_t until)
{
    while (s->now < until) {
        s->now += STEP_MS;
        while (s->len > 0 && s->q[s->head].at <= s->now) {
            msg m = s->q[s->head];
            s->head = (s->head + 1) % s->cap;
            s->len--;
            if (linked(s, m.from, m.to)) {
                const char *why;
                if (cp2p__ovl_on_frame(s->cores[m.to], &s->ids[m.from], m.frame.ptr, m.frame.len,
                                       s->now, &why) != 0) {
                    fprintf(stderr, "frame refused: %s\n", why);
                    exit(1);
                }
                drain(s, m.to);
            }
            cp2p_buf_fini(&m.frame);
        }
        for (int i = 0; i < s->n; i++) {
            if (cp2p__ovl_deadline(s->cores[i]) <= s->now) {
                cp2p__ovl_on_timeout(s->cores[i], s->now);
                drain(s, i);
            }
        }
    }
}

/* Every node's metric to every other equals the BFS distance (all link costs 1). */
static bool converged(sim *s, int *dist, int *queue)
{
    for (int src = 0; src < s->n; src++) {
        for (int i = 0; i < s->n; i++) {
            dist[i] = -1;
        }
        int qh = 0, qt = 0;
        dist[src] = 0;
        queue[qt++] = src;
        while (qh < qt) {
            int u = queue[qh++];
            for (int k = 0; k < s->deg[u]; k++) {
                int v = s->adj[u][k];
                if (dist[v] < 0) {
                    dist[v] = dist[u] + 1;
                    queue[qt++] = v;
                }
            }
        }
        for (int d = 0; d < s->n; d++) {
            if (d == src) {
                continue;
            }
            cp2p__ovl_route_info ri;
            bool has = cp2p__ovl_route_get(s->cores[src], &s->ids[d], &ri);
            if (dist[d] < 0 ? has : (!has || ri.metric != (uint16_t)dist[d])) {
                return false;
            }
        }
    }
    return true;
}

static void add_edge(sim *s, int a, int b)
{
    if (a == b || linked(s, a, b) || s->deg[a] >= 16 || s->deg[b] >= 16) {
        return;
    }
    s->adj[a][s->deg[a]++] = b;
    s->adj[b][s->deg[b]++] = a;
}

static void del_edge(sim *s, int a, int b)
{
    for (int side = 0; side < 2; side++) {
        int x = side ? b : a, y = side ? a : b;
        for (int k = 0; k < s->deg[x]; k++) {
            if (s->adj[x][k] == y) {
                s->adj[x][k] = s->adj[x][--s->deg[x]];
                break;
            }
        }
    }
}

static int bench_scale(int n, int secs)
{
    sim s = {.n = n, .rng = 0x1234567 + (uint64_t)n, .now = 1000};
    s.ids = calloc((size_t)n, sizeof(*s.ids));
    s.cores = calloc((size_t)n, sizeof(*s.cores));
    s.deg = calloc((size_t)n, sizeof(*s.deg));
    s.adj = calloc((size_t)n, sizeof(*s.adj));
    cp2p_privkey **keys = calloc((size_t)n, sizeof(*keys));
    for (tbl_cap = 1; tbl_cap < (size_t)n * 4; tbl_cap *= 2) {
    }
    tbl = malloc(tbl_cap * sizeof(int));
    memset(tbl, 0xff, tbl_cap * sizeof(int));
    tbl_ids = s.ids;
    for (int i = 0; i < n; i++) {
        uint8_t seed[32] = {0};
        seed[0] = (uint8_t)(i & 0xff);
        seed[1] = (uint8_t)(i >> 8);
        seed[2] = 0xb0;
        if (cp2p_privkey_from_seed(CP2P_KEY_ED25519, seed, &keys[i]) != 0 ||
            cp2p_peer_id_from_pubkey(cp2p_privkey_public(keys[i]), &s.ids[i]) != 0) {
            return 1;
        }
        size_t h = id_hash(&s.ids[i]) & (tbl_cap - 1);
        while (tbl[h] >= 0) {
            h = (h + 1) & (tbl_cap - 1);
        }
        tbl[h] = i;
        cp2p__ovl_config cfg;
        cp2p__ovl_config_default(&cfg);
        cfg.key = keys[i];
        cfg.rand = core_rand;
        cfg.rand_ud = &s;
        cfg.max_nodes = (uint32_t)n + 16;
        cfg.initial_lsa_seq = 1;
        cfg.max_out_frames = 1 << 16;
        if (cp2p__ovl_new(&cfg, s.now, &s.cores[i]) != 0) {
            return 1;
        }
    }
    /* A ring (connected) plus one random chord per node: degree about 4. */
    for (int i = 0; i < n; i++) {
        add_edge(&s, i, (i + 1) % n);
        add_edge(&s, i, (int)(rnd(&s) % (uint64_t)n));
    }
    for (int a = 0; a < n; a++) {
        for (int k = 0; k < s.deg[a]; k++) {
            if (cp2p__ovl_add_neighbour(s.cores[a], &s.ids[s.adj[a][k]], 1, s.now) != 0) {
                return 1;
            }
            drain(&s, a);
        }
    }
    int *dist = malloc((size_t)n * sizeof(int)), *queue = malloc((size_t)n * sizeof(int));
    uint64_t t0 = s.now;
    while (!converged(&s, dist, queue)) {
        step(&s, s.now + STEP_MS);
        if (s.now - t0 > 600000) {
            fprintf(stderr, "no convergence\n");
            return 1;
        }
    }
    uint64_t initial = s.now - t0;
    step(&s, s.now + 30000); /* past the first LSA refreshes: steady state */
    s.bytes = s.frames = 0;
    uint64_t ts = s.now;
    step(&s, s.now + (uint64_t)secs * 1000);
    double per_node_bps = (double)s.bytes / n / ((double)(s.now - ts) / 1000);
    double per_node_fps = (double)s.frames / n / ((double)(s.now - ts) / 1000);
    /* One link of the ring fails; measure until every route is the shortest again. */
    int a = (int)(rnd(&s) % (uint64_t)n), b = (a + 1) % n;
    del_edge(&s, a, b);
    cp2p__ovl_remove_neighbour(s.cores[a], &s.ids[b], s.now);
    drain(&s, a);
    cp2p__ovl_remove_neighbour(s.cores[b], &s.ids[a], s.now);
    drain(&s, b);
    uint64_t tf = s.now;
    while (!converged(&s, dist, queue)) {
        step(&s, s.now + STEP_MS);
        if (s.now - tf > 600000) {
            fprintf(stderr, "no convergence after the failure\n");
            return 1;
        }
    }
    printf("{\"nodes\":%d,\"initial_convergence_ms\":%llu,\"routing_bytes_per_node_s\":%.0f,"
           "\"routing_frames_per_node_s\":%.1f,\"failure_convergence_ms\":%llu,"
           "\"link_ms\":%d}\n",
           n, (unsigned long long)initial, per_node_bps, per_node_fps,
           (unsigned long long)(s.now - tf), LINK_MS);
    for (int i = 0; i < n; i++) {
        cp2p__ovl_free(s.cores[i]);
        cp2p_privkey_free(keys[i]);
    }
    while (s.len > 0) {
        cp2p_buf_fini(&s.q[s.head].frame);
        s.head = (s.head + 1) % s.cap;
        s.len--;
    }
    free(s.q);
    free(keys);
    free(s.ids);
    free(s.cores);
    free(s.deg);
    free(s.adj);
    free(dist);
    free(queue);
    free(tbl);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "hops") == 0) {
        return bench_hops((int)strtol(argv[2], NULL, 10), (int)strtol(argv[3], NULL, 10));
    }
    if (argc == 4 && strcmp(argv[1], "scale") == 0) {
        return bench_scale((int)strtol(argv[2], NULL, 10), (int)strtol(argv[3], NULL, 10));
    }
    fprintf(stderr, "usage: bench_overlay hops H MSGS | scale N SECONDS\n");
    return 64;
}
