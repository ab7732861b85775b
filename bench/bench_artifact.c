/* Artifact gossip against gossipsub on the in-memory network (`make bench`, bench/run.sh):
 *   art N SIZE [SLOW]   N nodes on one loop, each dialing the next and 3 pseudo-random others
 *                       (fixed seed: the same graph every run), one artifact of SIZE bytes
 *                       published by node 0; SLOW = 1: node 1's links have a tenth of the
 *                       bandwidth; SLOW = 2: only the link between nodes 1 and 2 has (each of
 *                       the two sees one slow peer among fast ones). Prints the time until
 *                       the last node stored it and the bytes the network delivered /
 *                       (SIZE x (N - 1)).
 *   gs N SIZE           the same graph and bytes published on one gossipsub topic.
 *   mix N SMALL LARGE   artifact gossip only: SMALL artifacts of 100..1,000 bytes and LARGE of
 *                       1 MiB from pseudo-random publishers, all at once: the time until every
 *                       node holds all, bytes / ideal, and every copy checked against its id;
 *                       BENCH_ART_RATE=R publishes R a second (10 at a time) instead.
 * Links: 5 ms one way, 100 MB/s (slow: 10 MB/s); BENCH_ART_MBPS=N sets N MB/s;
 * BENCH_ART_PUSH_ALL=1 pushes small artifacts to every peer (no push tree). Bytes are every
 * byte the memory network delivered (artifact frames, yamux, noise, identify, pings). Output:
 * one JSON line. Not a test. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <uv.h>

#include <cp2p/artifact.h>
#include <cp2p/memnet.h>
#include <cp2p/protocols.h>
#include <cp2p/pubsub.h>

static uint64_t BW = 100ull * 1000 * 1000; /* BENCH_ART_MBPS overrides (MB/s) */

#define SLOTS (1u << 16) /* open addressing over ids; at most SLOTS / 2 items */

typedef struct bitem {
    uint8_t id[34];
    uint8_t *data;
    size_t len;
    bool shared; /* data is `origin` (not freed) */
} bitem;

/* `art` mode: the published bytes. A node whose stored copy is identical keeps a pointer to
 * them instead of a copy (the same immutable bytes): N x SIZE of pools fit in memory. The layer
 * still receives, checks and hands over every byte; only the application's pool is shared. */
static const uint8_t *origin;
static size_t origin_len;

typedef struct bnode {
    cp2p_host *h;
    cp2p_artifact *a;
    cp2p_pubsub *ps;
    uv_mutex_t mu;  /* the pool: store and serve run on the layer's flow workers */
    bitem *items;   /* SLOTS / 2 */
    uint32_t *slot; /* index + 1 into items, 0 = empty */
    uint32_t n;
    uint8_t *data;  /* the first artifact stored */
    size_t len;
    bool got;
} bnode;

static uv_loop_t loop;
static cp2p_memnet *net;
static bnode *nodes;
static int n_nodes, n_got;
static uint64_t t_last, t_last_others; /* others: every node but node 1 (the slow one) */

static uint32_t slot_of(const uint8_t *id)
{
    uint32_t h;
    memcpy(&h, id + 2, sizeof(h)); /* a digest byte run: uniform */
    return h % SLOTS;
}

/* b->mu held. */
static bitem *b_find(bnode *b, const uint8_t *id)
{
    for (uint32_t s = slot_of(id); b->slot[s] != 0; s = (s + 1) % SLOTS) {
        if (memcmp(b->items[b->slot[s] - 1].id, id, 34) == 0) {
            return &b->items[b->slot[s] - 1];
        }
    }
    return NULL;
}

static int b_store(const uint8_t *id, size_t id_len, const uint8_t *data, size_t len, void *ud)
{
    bnode *b = ud;
    if (id_len != 34) {
        return -1;
    }
    bool shared = origin != NULL && len == origin_len && memcmp(data, origin, len) == 0;
    uint8_t *copy = shared ? (uint8_t *)(uintptr_t)origin : malloc(len);
    if (copy == NULL) {
        return -1;
    }
    if (!shared) {
        memcpy(copy, data, len);
    }
    uv_mutex_lock(&b->mu);
    if (b_find(b, id) != NULL || b->n >= SLOTS / 2) {
        uv_mutex_unlock(&b->mu);
        if (!shared) {
            free(copy);
        }
        return -1;
    }
    bitem *it = &b->items[b->n];
    memcpy(it->id, id, 34);
    it->data = copy;
    it->len = len;
    it->shared = shared;
    uint32_t s = slot_of(id);
    while (b->slot[s] != 0) {
        s = (s + 1) % SLOTS;
    }
    b->slot[s] = ++b->n;
    if (b->data == NULL) {
        b->data = copy;
        b->len = len;
    }
    uv_mutex_unlock(&b->mu);
    return 0;
}

static int b_serve(const uint8_t *id, size_t id_len, uint64_t off, uint8_t *out, size_t len,
                   void *ud)
{
    bnode *b = ud;
    int rc = -1;
    if (id_len != 34) {
        return rc;
    }
    uv_mutex_lock(&b->mu);
    bitem *it = b_find(b, id);
    if (it != NULL && off + len <= it->len) {
        memcpy(out, it->data + off, len);
        rc = 0;
    }
    uv_mutex_unlock(&b->mu);
    return rc;
}

static uint32_t b_count(bnode *b)
{
    uv_mutex_lock(&b->mu);
    uint32_t n = b->n;
    uv_mutex_unlock(&b->mu);
    return n;
}

static void publish_local(bnode *b, const uint8_t *data, size_t len)
{
    uint8_t id[34] = {0x12, 0x20};
    crypto_hash_sha256(id + 2, data, len);
    if (b_store(id, sizeof(id), data, len, b) != 0 ||
        cp2p_artifact_publish(b->a, NULL, 0, data, len, NULL, 0, NULL, NULL) != 0) {
        fprintf(stderr, "publish failed\n");
        exit(1);
    }
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
    if (argc < 4 || (strcmp(argv[1], "art") != 0 && strcmp(argv[1], "gs") != 0 &&
                     (strcmp(argv[1], "mix") != 0 || argc < 5))) {
        fprintf(stderr, "usage: bench_artifact art|gs N SIZE [SLOW] | mix N SMALL LARGE\n");
        return 2;
    }
    bool gs = strcmp(argv[1], "gs") == 0;
    bool mix = strcmp(argv[1], "mix") == 0;
    long nn = strtol(argv[2], NULL, 10);
    n_nodes = nn > 1 && nn < 100000 ? (int)nn : 2;
    size_t size = strtoull(argv[3], NULL, 10);
    bool slow = !mix && argc > 4 && strcmp(argv[4], "1") == 0;
    bool slow_link = !mix && argc > 4 && strcmp(argv[4], "2") == 0;
    size_t n_large = mix ? strtoull(argv[4], NULL, 10) : 0;
    if (mix && (size + n_large) * 2 >= SLOTS / 2) {
        fprintf(stderr, "bench_artifact mix: at most %u artifacts\n", SLOTS / 4);
        return 2;
    }
    const char *pa = getenv("BENCH_ART_PUSH_ALL");
    bool push_all = pa != NULL && strcmp(pa, "1") == 0;
    const char *rt = getenv("BENCH_ART_RATE");
    uint64_t rate = rt != NULL ? strtoull(rt, NULL, 10) : 0; /* mix: publications a second */
    if (rate > 10000) {
        rate = 10000;
    }
    const char *mbps = getenv("BENCH_ART_MBPS");
    if (mbps != NULL && strtoull(mbps, NULL, 10) > 0) {
        BW = strtoull(mbps, NULL, 10) * 1000 * 1000;
    }
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
        nodes[i].items = calloc(SLOTS / 2, sizeof(bitem));
        nodes[i].slot = calloc(SLOTS, sizeof(uint32_t));
        if (nodes[i].items == NULL || nodes[i].slot == NULL) {
            return 1;
        }
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
            ac.push_to_all = push_all;
            if (cp2p_artifact_new(nodes[i].h, &ac, &nodes[i].a) != 0 ||
                cp2p_artifact_start(nodes[i].a) != 0) {
                return 1;
            }
        }
    }
    if (slow_link) {
        cp2p_memnet_link sl = {.latency_ms = 5, .bandwidth_bps = BW / 10};
        if (cp2p_memnet_link_set(net, "b1", "b2", &sl) != 0) {
            return 1;
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
    cp2p_memnet_stats before, after;
    if (mix) {
        size_t total = size + n_large;
        uint64_t ideal = 0;
        uint32_t pick = 99;
        uint8_t *buf = malloc(1 << 20);
        cp2p_memnet_stats_get(net, &before);
        uint64_t t0 = uv_now(&loop);
        for (size_t k = 0; k < total; k++) {
            if (rate > 0 && k > 0 && k % 10 == 0) {
                run_ms(10000 / rate); /* BENCH_ART_RATE: 10 publications, then wait */
            }
            size_t len = k < size ? 100 + (k * 37) % 900 : (size_t)1 << 20;
            randombytes_buf(buf, len);
            pick = pick * 1103515245u + 12345u;
            publish_local(&nodes[(pick >> 8) % (uint32_t)n_nodes], buf, len);
            ideal += (uint64_t)len * (uint64_t)(n_nodes - 1);
        }
        free(buf);
        uint64_t guard = t0 + 1200000;
        int done = 0;
        while (done < n_nodes && uv_now(&loop) < guard) {
            uv_run(&loop, UV_RUN_ONCE);
            done = 0;
            for (int i = 0; i < n_nodes; i++) {
                done += b_count(&nodes[i]) == total;
            }
        }
        uint64_t ms = uv_now(&loop) - t0;
        cp2p_memnet_stats_get(net, &after);
        /* Every copy against its id. */
        size_t bad = 0;
        for (int i = 0; i < n_nodes; i++) {
            for (uint32_t k = 0; k < nodes[i].n; k++) {
                uint8_t d[32];
                crypto_hash_sha256(d, nodes[i].items[k].data, nodes[i].items[k].len);
                bad += memcmp(d, nodes[i].items[k].id + 2, 32) != 0;
            }
        }
        /* Where the bytes go: the layer's own frames, pushes and their duplicates. */
        cp2p_artifact_stats t = {0};
        for (int i = 0; i < n_nodes; i++) {
            cp2p_artifact_stats st;
            cp2p_artifact_stats_get(nodes[i].a, &st);
            t.bytes_received += st.bytes_received;
            t.pushes_received += st.pushes_received;
            t.pushes_dup += st.pushes_dup;
            t.adverts_received += st.adverts_received;
            t.adverts_lazy += st.adverts_lazy;
            t.prunes_sent += st.prunes_sent;
            t.grafts += st.grafts;
            t.small_pulled += st.small_pulled;
        }
        printf("{\"mode\":\"mix\",\"nodes\":%d,\"small\":%zu,\"large\":%zu,\"complete\":%d,"
               "\"bad\":%zu,\"ms\":%llu,\"bytes_ratio\":%.3f,\"layer_bytes_ratio\":%.3f,"
               "\"pushes\":%llu,\"pushes_dup\":%llu,\"adverts\":%llu,\"adverts_lazy\":%llu,"
               "\"prunes\":%llu,\"grafts\":%llu,\"pulled\":%llu}\n",
               n_nodes, size, n_large, done, bad, (unsigned long long)ms,
               (double)(after.bytes_delivered - before.bytes_delivered) / (double)ideal,
               (double)t.bytes_received / (double)ideal, (unsigned long long)t.pushes_received,
               (unsigned long long)t.pushes_dup, (unsigned long long)t.adverts_received,
               (unsigned long long)t.adverts_lazy, (unsigned long long)t.prunes_sent,
               (unsigned long long)t.grafts, (unsigned long long)t.small_pulled);
        n_got = done == n_nodes && bad == 0 ? n_nodes : 0;
        goto out;
    }
    uint8_t *data = malloc(size);
    randombytes_buf(data, size);
    origin = data;
    origin_len = size;
    cp2p_memnet_stats_get(net, &before);
    uint64_t t0 = uv_now(&loop);
    if (gs) {
        if (cp2p_pubsub_publish(nodes[0].ps, "bench", data, size) != 0) {
            return 1;
        }
        nodes[0].got = true;
        n_got = 1;
    } else {
        publish_local(&nodes[0], data, size);
        nodes[0].got = true;
        n_got = 1;
    }
    uint64_t guard = t0 + 600000;
    while (n_got < n_nodes && uv_now(&loop) < guard) {
        uv_run(&loop, UV_RUN_ONCE);
        if (!gs) {
            for (int i = 1; i < n_nodes; i++) {
                if (!nodes[i].got) {
                    if (b_count(&nodes[i]) > 0) {
                        nodes[i].got = true;
                        n_got++;
                        t_last = uv_now(&loop);
                        if (i != 1) {
                            t_last_others = t_last;
                        }
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
           "\"identical\":%d,\"ms\":%llu,\"ms_others\":%llu,\"bytes_ratio\":%.3f}\n",
           argv[1], n_nodes, size, slow ? 1 : slow_link ? 2 : 0, n_got, gs ? n_got - 1 : same,
           (unsigned long long)(t_last - t0),
           (unsigned long long)((gs ? t_last : t_last_others) - t0), ratio);
out:;
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
        for (uint32_t k = 0; k < nodes[i].n; k++) {
            if (!nodes[i].items[k].shared) {
                free(nodes[i].items[k].data);
            }
        }
        free(nodes[i].items);
        free(nodes[i].slot);
    }
    free(nodes);
    free((void *)(uintptr_t)origin);
    return n_got == n_nodes ? 0 : 1;
}
