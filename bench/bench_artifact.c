/* Artifact gossip against gossipsub on the in-memory network (`make bench`, bench/run.sh):
 *   art N SIZE [SLOW]   N nodes on one loop, each dialing the next and 3 pseudo-random others
 *                       (fixed seed: the same graph every run), one artifact of SIZE bytes
 *                       published by node 0; SLOW = 1: node 1's links have a tenth of the
 *                       bandwidth. Prints the time until the last node stored it and the bytes
 *                       the network delivered / (SIZE x (N - 1)).
 *   gs N SIZE           the same graph and bytes published on one gossipsub topic.
 * Links: 5 ms one way, 100 MB/s (slow: 10 MB/s). Output: one JSON line. Not a test. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <uv.h>

#include <cp2p/artifact.h>
#include <cp2p/memnet.h>
#include <cp2p/protocols.h>
#include <cp2p/pubsub.h>

#define BW (100ull * 1000 * 1000)

typedef struct bnode {
    cp2p_host *h;
    cp2p_artifact *a;
    cp2p_pubsub *ps;
    uint8_t *data; /* the artifact, once here (only the loop writes it after the store) */
    size_t len;
    bool got;
    uv_mutex_t mu;
} bnode;

static uv_loop_t loop;
static cp2p_memnet *net;
static bnode *nodes;
static int n_nodes, n_got;
static uint64_t t_last;

static int b_store(const uint8_t *id, size_t id_len, const uint8_t *data, size_t len, void *ud)
{
    bnode *b = ud;
    (void)id, (void)id_len;
    uint8_t *copy = malloc(len);
    if (copy == NULL) {
        return -1;
    }
    memcpy(copy, data, len);
    uv_mutex_lock(&b->mu);
    b->data = copy;
    b->len = len;
    uv_mutex_unlock(&b->mu);
    return 0;
}

static int b_serve(const uint8_t *id, size_t id_len, uint64_t off, uint8_t *out, size_t len,
                   void *ud)
{
    bnode *b = ud;
    (void)id, (void)id_len;
    uv_mutex_lock(&b->mu);
    int rc = b->data != NULL && off + len <= b->len ? 0 : -1;
    if (rc == 0) {
        memcpy(out, b->data + off, len);
    }
    uv_mutex_unlock(&b->mu);
    return rc;
}

static void on_gs_msg(cp2p_pubsub *ps, const cp2p_pubsub_msg *m, void *ud)
{
    bnode *b = ud;
    (void)ps, (void)m;
    if (!b->got) {
        b->got = true;
        n_got++;
        t_last = uv_now(&loop);
    }
}

static void on_dial(cp2p_host *h, int status, cp2p_conn *c, void *ud)
{
    (void)h, (void)c, (void)status;
    (*(int *)ud)++;
}

static void tick(uv_timer_t *t)
{
    (void)t;
}

static void run_ms(uint64_t ms)
{
    uv_timer_t t;
    uv_timer_init(&loop, &t);
    uv_timer_start(&t, tick, ms, 0);
    uint64_t end = uv_now(&loop) + ms;
    while (uv_now(&loop) < end) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
}

static void on_closed(cp2p_host *h, void *ud)
{
    (void)h;
    (*(int *)ud)++;
}

int main(int argc, char **argv)
{
    if (argc < 4 || (strcmp(argv[1], "art") != 0 && strcmp(argv[1], "gs") != 0)) {
        fprintf(stderr, "usage: bench_artifact art|gs N SIZE [SLOW]\n");
        return 2;
    }
    bool gs = strcmp(argv[1], "gs") == 0;
    long nn = strtol(argv[2], NULL, 10);
    n_nodes = nn > 1 && nn < 100000 ? (int)nn : 2;
    size_t size = strtoull(argv[3], NULL, 10);
    bool slow = argc > 4 && strcmp(argv[4], "1") == 0;
    if (sodium_init() < 0 || uv_loop_init(&loop) != 0 || cp2p_memnet_new(&loop, 7, &net) != 0) {
        return 1;
    }
    cp2p_memnet_link link = {.latency_ms = 5, .bandwidth_bps = BW};
    cp2p_memnet_set_default_link(net, &link);
    nodes = calloc((size_t)n_nodes, sizeof(*nodes));
    char name[32], text[48];
    for (int i = 0; i < n_nodes; i++) {
        cp2p_host_config cfg;
        cp2p_privkey *key;
        cp2p_multiaddr *ma;
        uv_mutex_init(&nodes[i].mu);
        if (cp2p_privkey_generate(CP2P_KEY_ED25519, &key) != 0) {
            return 1;
        }
        cp2p_host_config_default(&cfg);
        cfg.identity = key;
        cfg.reconnect_known_peers = CP2P_HOST_NO_RECONNECT;
        cfg.memnet = net;
        if (cp2p_host_new(&loop, &cfg, &nodes[i].h) != 0) {
            return 1;
        }
        cp2p_privkey_free(key);
        snprintf(name, sizeof(name), "b%d", i);
        int len = snprintf(text, sizeof(text), "/memory/%s", name);
        if (cp2p_multiaddr_parse(text, (size_t)len, &ma) != 0 || cp2p_host_listen(nodes[i].h, ma)) {
            return 1;
        }
        cp2p_multiaddr_free(ma);
        if (gs) {
            cp2p_pubsub_config pc;
            cp2p_pubsub_config_default(&pc);
            pc.max_rpc_size = size + 64 * 1024;
            pc.heartbeat_ms = 200;
            if (cp2p_pubsub_new(nodes[i].h, &pc, &nodes[i].ps) != 0 ||
                cp2p_pubsub_subscribe(nodes[i].ps, "bench", on_gs_msg, &nodes[i]) != 0) {
                return 1;
            }
        } else {
            cp2p_artifact_config ac;
            cp2p_artifact_config_default(&ac);
            ac.pool.store = b_store;
            ac.pool.serve = b_serve;
            ac.pool_ud = &nodes[i];
            if (cp2p_artifact_new(nodes[i].h, &ac, &nodes[i].a) != 0 ||
                cp2p_artifact_start(nodes[i].a) != 0) {
                return 1;
            }
        }
    }
    if (slow) {
        cp2p_memnet_link sl = {.latency_ms = 5, .bandwidth_bps = BW / 10};
        for (int i = 0; i < n_nodes; i++) {
            char other[32];
            snprintf(other, sizeof(other), "b%d", i);
            if (i != 1 && cp2p_memnet_link_set(net, "b1", other, &sl) != 0) {
                return 1;
            }
        }
    }
    /* The graph: i -> i+1, and 3 others from a fixed LCG. */
    uint32_t seed = 12345;
    int dials = 0, want = 0;
    for (int i = 0; i < n_nodes; i++) {
        for (int k = 0; k < 4; k++) {
            int j;
            if (k == 0) {
                j = (i + 1) % n_nodes;
            } else {
                seed = seed * 1103515245u + 12345u;
                j = (int)((seed >> 8) % (uint32_t)n_nodes);
            }
            if (j == i || n_nodes < 3) {
                if (k > 0) {
                    continue;
                }
            }
            cp2p_multiaddr *ma;
            if (cp2p_host_listen_addr(nodes[j].h, 0, true, &ma) != 0) {
                return 1;
            }
            if (cp2p_host_dial(nodes[i].h, ma, on_dial, &dials) == 0) {
                want++;
            }
            cp2p_multiaddr_free(ma);
        }
    }
    while (dials < want) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    run_ms(gs ? 3000 : 1000); /* identify, meshes */
    uint8_t *data = malloc(size);
    randombytes_buf(data, size);
    cp2p_memnet_stats before, after;
    cp2p_memnet_stats_get(net, &before);
    uint64_t t0 = uv_now(&loop);
    if (gs) {
        if (cp2p_pubsub_publish(nodes[0].ps, "bench", data, size) != 0) {
            return 1;
        }
        nodes[0].got = true;
        n_got = 1;
    } else {
        b_store(NULL, 0, data, size, &nodes[0]);
        if (cp2p_artifact_publish(nodes[0].a, NULL, 0, data, size, NULL, 0, NULL, NULL) != 0) {
            return 1;
        }
        nodes[0].got = true;
        n_got = 1;
    }
    uint64_t guard = t0 + 600000;
    while (n_got < n_nodes && uv_now(&loop) < guard) {
        uv_run(&loop, UV_RUN_ONCE);
        if (!gs) {
            for (int i = 1; i < n_nodes; i++) {
                if (!nodes[i].got) {
                    uv_mutex_lock(&nodes[i].mu);
                    bool have = nodes[i].data != NULL;
                    uv_mutex_unlock(&nodes[i].mu);
                    if (have) {
                        nodes[i].got = true;
                        n_got++;
                        t_last = uv_now(&loop);
                    }
                }
            }
        }
    }
    cp2p_memnet_stats_get(net, &after);
    int same = 0;
    for (int i = 1; i < n_nodes && !gs; i++) {
        same += nodes[i].data != NULL && nodes[i].len == size &&
                memcmp(nodes[i].data, data, size) == 0;
    }
    double ratio = (double)(after.bytes_delivered - before.bytes_delivered) /
                   ((double)size * (n_nodes - 1));
    printf("{\"mode\":\"%s\",\"nodes\":%d,\"size\":%zu,\"slow\":%d,\"reached\":%d,"
           "\"identical\":%d,\"ms\":%llu,\"bytes_ratio\":%.3f}\n",
           argv[1], n_nodes, size, slow ? 1 : 0, n_got, gs ? n_got - 1 : same,
           (unsigned long long)(t_last - t0), ratio);
    int closed = 0;
    for (int i = 0; i < n_nodes; i++) {
        cp2p_host_close(nodes[i].h, on_closed, &closed);
    }
    while (closed < n_nodes) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    if (cp2p_memnet_close(net, NULL, NULL) != 0) {
        fprintf(stderr, "memnet still in use\n");
    }
    for (int i = 0; i < n_nodes; i++) {
        free(nodes[i].data);
    }
    free(nodes);
    free(data);
    return n_got == n_nodes ? 0 : 1;
}
