/* What scraping /metrics costs a node under load (issue 13), for `make bench` (bench/run.sh):
 *   bench_scrape [ROUNDS [SEGMENT_S [INTERVAL_MS [SUBSCRIBERS [SIZE [WINDOW]]]]]]
 * One publisher and SUBSCRIBERS (10) subscriber hosts on one libuv loop, each subscriber
 * connected to the publisher only; the publisher publishes unsigned SIZE-byte (100) messages
 * as fast as the loop turns, at most WINDOW (100) not yet delivered to every subscriber -- the
 * setting of `bench_tools gs-rate`. A node is attached to the publisher's host and serves the
 * HTTP API on 127.0.0.1 (as `cp2p node --api`): every /metrics scrape copies the host's,
 * gossipsub's and the API's counters into the registry on the loop, then renders the text on
 * an HTTP thread. A scraper thread (standing for Prometheus, in another process in a
 * deployment) GETs /metrics every INTERVAL_MS (100) during the "on" segments only.
 *
 * The publisher never stops: the run is cut into 2 x ROUNDS (6) segments of SEGMENT_S (2) s,
 * alternately without and with scraping (off-on, then on-off, ... so that a drift of the
 * machine weighs on both sides alike). The figure is the message rate (messages delivered to
 * every subscriber per second) with scraping over the rate without, over all segments (and the
 * lowest, median and highest ratio of a round): 1.00 is free. The CPU time spent per message
 * on and off -- the loop thread's, and the whole process's (HTTP threads and the scraper too) --
 * says the same with less noise from other work on the machine. Printed as one JSON object. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>
#include <uv.h>

#include <cp2p/keys.h>
#include <cp2p/node.h>
#include <cp2p/pubsub.h>

#define TOPIC "bench-scrape"
#define MAX_SUBS 32
#define RING 65536 /* delivery counts of the messages in flight, indexed by seqno % RING */

typedef struct {
    cp2p_host *h;
    cp2p_pubsub *ps;
} peer;

static struct {
    uv_loop_t *loop;
    peer p[MAX_SUBS + 1];
    int subs;
    size_t size;
    uint32_t window;
    uint8_t *data;
    uint64_t published, complete;
    uint8_t copies[RING];
    uv_idle_t idle;
    int dials_left;
    /* the API and its scraper */
    cp2p_node *node;
    cp2p_node_api *api;
    int api_port;
    uint32_t interval_ms;
    atomic_bool scrape_on, scraper_stop;
    atomic_uint_fast64_t scrapes, scrape_errors, scrape_bytes, scrape_ns;
} B;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_s(clockid_t which)
{
    struct timespec ts;
    clock_gettime(which, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, int rc)
{
    fprintf(stderr, "bench_scrape: %s: %s\n", what, rc != 0 ? cp2p_strerror(rc) : "failed");
    exit(1);
}

/* Unsigned messages are identified by their first 8 bytes, the publish counter. */
static int seq_id(void *ud, const char *topic, const uint8_t *from, size_t from_len,
                  const uint8_t *seqno, size_t seqno_len, const uint8_t *data, size_t len,
                  uint8_t out[64])
{
    (void)ud, (void)topic, (void)from, (void)from_len, (void)seqno, (void)seqno_len;
    if (len < 8) {
        return CP2P_EINVAL;
    }
    memcpy(out, data, 8);
    return 8;
}

static void publish_some(uv_idle_t *h)
{
    while (B.published - B.complete < B.window) {
        memcpy(B.data, &B.published, 8);
        B.copies[B.published % RING] = 0;
        int rc = cp2p_pubsub_publish(B.p[0].ps, TOPIC, B.data, B.size);
        if (rc != 0) {
            die("publish", rc);
        }
        B.published++;
    }
    uv_idle_stop(h); /* started again by the delivery that frees room in the window */
}

static void on_msg(cp2p_pubsub *ps, const cp2p_pubsub_msg *m, void *ud)
{
    uint64_t seq;
    (void)ps;
    if (ud == NULL || m->len < 8) {
        return; /* the publisher's own copy */
    }
    memcpy(&seq, m->data, 8);
    if (++B.copies[seq % RING] == B.subs) {
        B.complete++;
        if (!uv_is_active((uv_handle_t *)&B.idle)) {
            uv_idle_start(&B.idle, publish_some);
        }
    }
}

static void start_peer(int i)
{
    cp2p_host_config hc;
    cp2p_pubsub_config pc;
    cp2p_privkey *key;
    cp2p_multiaddr *ma;
    const char *scored[] = {TOPIC};
    int rc;
    if ((rc = cp2p_privkey_generate(CP2P_KEY_ED25519, &key)) != 0) {
        die("key", rc);
    }
    cp2p_host_config_default(&hc);
    hc.identity = key;
    hc.reconnect_known_peers = CP2P_HOST_NO_RECONNECT;
    rc = cp2p_host_new(B.loop, &hc, &B.p[i].h);
    cp2p_privkey_free(key);
    if (rc != 0) {
        die("host", rc);
    }
    if ((rc = cp2p_multiaddr_parse("/ip4/127.0.0.1/tcp/0", 20, &ma)) != 0 ||
        (rc = cp2p_host_listen(B.p[i].h, ma)) != 0) {
        die("listen", rc);
    }
    cp2p_multiaddr_free(ma);
    cp2p_pubsub_config_default(&pc);
    pc.scored_topics = scored;
    pc.n_scored_topics = 1;
    pc.strict_no_sign = true;
    pc.msg_id = seq_id;
    if ((rc = cp2p_pubsub_new(B.p[i].h, &pc, &B.p[i].ps)) != 0 ||
        (rc = cp2p_pubsub_subscribe(B.p[i].ps, TOPIC, on_msg, i == 0 ? NULL : &B.p[i])) != 0) {
        die("pubsub", rc);
    }
}

static void on_dial(cp2p_host *h, int status, cp2p_conn *c, void *ud)
{
    (void)h, (void)c, (void)ud;
    if (status != 0) {
        die("dial", status);
    }
    B.dials_left--;
}

static void on_segment_end(uv_timer_t *t)
{
    uv_stop(t->loop);
}

/* Run the loop for `seconds`, sleeping in it whenever it has nothing to do (the way a node's
 * loop runs: a busy poll would take the CPU the HTTP threads need). */
static void run_for(double seconds)
{
    uv_timer_t t;
    uv_timer_init(B.loop, &t);
    uv_timer_start(&t, on_segment_end, (uint64_t)(seconds * 1000), 0);
    uv_run(B.loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(B.loop, UV_RUN_NOWAIT);
}

/* Every subscriber is in the publisher's mesh (or 10 s passed). */
static void wait_mesh(void)
{
    double end = now_s() + 30;
    while (B.dials_left > 0 && now_s() < end) {
        uv_run(B.loop, UV_RUN_ONCE);
    }
    end = now_s() + 10;
    while (cp2p_pubsub_mesh_peers(B.p[0].ps, TOPIC, NULL, 0) < (size_t)B.subs && now_s() < end) {
        run_for(0.05);
    }
    run_for(0.5);
}

/* One GET /metrics on a new connection, read to its end. Returns the bytes read, or -1. */
static long scrape_once(void)
{
    static const char req[] = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                              "Connection: close\r\n\r\n";
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)B.api_port)};
    char buf[16384];
    long total = 0;
    ssize_t n;
    int s = socket(AF_INET, SOCK_STREAM, 0);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        write(s, req, sizeof(req) - 1) != (ssize_t)(sizeof(req) - 1)) {
        total = -1;
    }
    while (total >= 0 && (n = read(s, buf, sizeof(buf))) > 0) {
        if (total == 0 && (n < 12 || memcmp(buf, "HTTP/1.1 200", 12) != 0)) {
            total = -1;
            break;
        }
        total += n;
    }
    if (s >= 0) {
        close(s);
    }
    return total;
}

/* The scraper: every interval_ms while scraping is on, on a fixed schedule. */
static void *scraper(void *arg)
{
    (void)arg;
    double next = now_s();
    while (!atomic_load(&B.scraper_stop)) {
        double t = now_s();
        if (t < next) {
            usleep((useconds_t)((next - t) * 1e6));
            continue;
        }
        next += B.interval_ms / 1000.0;
        if (next < t) {
            next = t + B.interval_ms / 1000.0; /* a scrape slower than the interval */
        }
        if (!atomic_load(&B.scrape_on)) {
            continue;
        }
        long got = scrape_once();
        if (got < 0) {
            atomic_fetch_add(&B.scrape_errors, 1);
        } else {
            atomic_fetch_add(&B.scrapes, 1);
            atomic_fetch_add(&B.scrape_bytes, (uint64_t)got);
            atomic_fetch_add(&B.scrape_ns, (uint64_t)((now_s() - t) * 1e9));
        }
    }
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void start_api(void)
{
    cp2p_node_api_config ac;
    char addr[CP2P_NODE_API_ADDR_MAX];
    int rc;
    if ((rc = cp2p_node_attach(B.p[0].h, B.p[0].ps, NULL, NULL, &B.node)) != 0) {
        die("attach", rc);
    }
    cp2p_node_api_config_default(&ac);
    ac.listen = "127.0.0.1:0";
    if ((rc = cp2p_node_api_start(B.node, &ac, &B.api)) != 0 ||
        (rc = cp2p_node_api_addr(B.api, addr, sizeof(addr))) != 0) {
        die("api", rc);
    }
    const char *colon = strrchr(addr, ':');
    B.api_port = colon != NULL ? (int)strtol(colon + 1, NULL, 10) : 0;
}

static void on_host_closed(cp2p_host *h, void *ud)
{
    (void)h, (void)ud;
    cp2p_node_api_stop(B.api);
    cp2p_node_detach(B.node);
}

static void teardown(void)
{
    cp2p_node_detach_begin(B.node);
    for (int i = 0; i <= B.subs; i++) {
        cp2p_pubsub_close(B.p[i].ps);
        cp2p_host_close(B.p[i].h, i == 0 ? on_host_closed : NULL, NULL);
    }
    uv_close((uv_handle_t *)&B.idle, NULL);
    uv_run(B.loop, UV_RUN_DEFAULT);
    if (uv_loop_close(B.loop) != 0) {
        fprintf(stderr, "bench_scrape: handles left on the loop\n");
    }
    free(B.data);
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 6;
    double seg_s = argc > 2 ? strtod(argv[2], NULL) : 2.0;
    B.interval_ms = argc > 3 ? (uint32_t)strtoul(argv[3], NULL, 10) : 100;
    B.subs = argc > 4 ? (int)strtol(argv[4], NULL, 10) : 10;
    B.size = argc > 5 ? (size_t)strtoull(argv[5], NULL, 10) : 100;
    B.window = argc > 6 ? (uint32_t)strtoul(argv[6], NULL, 10) : 100;
    if (sodium_init() < 0 || rounds < 1 || seg_s <= 0 || B.interval_ms == 0 || B.subs < 1 ||
        B.subs > MAX_SUBS || B.window == 0 || B.window >= RING) {
        fprintf(stderr, "usage: see bench/bench_scrape.c\n");
        return 2;
    }
    if (B.size < 8) {
        B.size = 8;
    }
    B.loop = uv_default_loop();
    B.data = calloc(1, B.size);
    if (B.data == NULL) {
        die("memory", CP2P_ENOMEM);
    }
    memset(B.data, 0xab, B.size);
    uv_idle_init(B.loop, &B.idle);
    for (int i = 0; i <= B.subs; i++) {
        start_peer(i);
    }
    for (int i = 1; i <= B.subs; i++) {
        cp2p_multiaddr *ma;
        int rc;
        if ((rc = cp2p_host_listen_addr(B.p[0].h, 0, true, &ma)) != 0 ||
            (rc = cp2p_host_dial(B.p[i].h, ma, on_dial, NULL)) != 0) {
            die("dial", rc);
        }
        cp2p_multiaddr_free(ma);
        B.dials_left++;
    }
    start_api();
    wait_mesh();
    pthread_t th;
    if (pthread_create(&th, NULL, scraper, NULL) != 0) {
        die("thread", 0);
    }
    uv_idle_start(&B.idle, publish_some);
    run_for(seg_s); /* warm-up, not counted */
    double t_on = 0, t_off = 0, loop_cpu[2] = {0, 0}, proc_cpu[2] = {0, 0};
    uint64_t m_on = 0, m_off = 0;
    double *ratios = calloc((size_t)rounds, sizeof(*ratios));
    if (ratios == NULL) {
        die("memory", CP2P_ENOMEM);
    }
    for (int r = 0; r < rounds; r++) {
        double rate[2];
        for (int k = 0; k < 2; k++) {
            bool on = (k == 0) == (r % 2 == 1); /* off-on, on-off, off-on, ... */
            atomic_store(&B.scrape_on, on);
            uint64_t c0 = B.complete;
            double t0 = now_s(), l0 = cpu_s(CLOCK_THREAD_CPUTIME_ID);
            double p0 = cpu_s(CLOCK_PROCESS_CPUTIME_ID);
            run_for(seg_s);
            double dt = now_s() - t0;
            loop_cpu[on] += cpu_s(CLOCK_THREAD_CPUTIME_ID) - l0;
            proc_cpu[on] += cpu_s(CLOCK_PROCESS_CPUTIME_ID) - p0;
            uint64_t dm = B.complete - c0;
            rate[on] = (double)dm / dt;
            if (on) {
                t_on += dt, m_on += dm;
            } else {
                t_off += dt, m_off += dm;
            }
        }
        ratios[r] = rate[1] / rate[0];
    }
    qsort(ratios, (size_t)rounds, sizeof(*ratios), cmp_double);
    atomic_store(&B.scrape_on, false);
    atomic_store(&B.scraper_stop, true);
    pthread_join(th, NULL);
    uv_idle_stop(&B.idle);
    run_for(0.5); /* the window drains */
    cp2p_pubsub_stats st;
    cp2p_pubsub_stats_get(B.p[0].ps, &st);
    uint64_t scrapes = atomic_load(&B.scrapes);
    double per_on = (double)m_on / t_on, per_off = (double)m_off / t_off;
    printf("{\"bench\":\"cp2p_metrics_scrape_cost\",\"subscribers\":%d,\"size\":%zu,"
           "\"window\":%u,\"rounds\":%d,\"segment_s\":%.1f,\"interval_ms\":%u,"
           "\"per_s_off\":%.0f,\"per_s_on\":%.0f,\"ratio\":%.4f,\"ratio_min\":%.4f,"
           "\"ratio_median\":%.4f,\"ratio_max\":%.4f,\"scrapes\":%llu,\"scrape_errors\":%llu,"
           "\"scrape_bytes\":%.0f,\"loop_cpu_us_per_msg_off\":%.2f,"
           "\"loop_cpu_us_per_msg_on\":%.2f,\"process_cpu_us_per_msg_off\":%.2f,"
           "\"process_cpu_us_per_msg_on\":%.2f,"
           "\"scrape_ms\":%.2f,\"outbox_drops\":%llu}\n",
           B.subs, B.size, B.window, rounds, seg_s, B.interval_ms, per_off, per_on,
           per_on / per_off, ratios[0], ratios[rounds / 2], ratios[rounds - 1],
           (unsigned long long)scrapes,
           (unsigned long long)atomic_load(&B.scrape_errors),
           scrapes ? (double)atomic_load(&B.scrape_bytes) / (double)scrapes : 0.0,
           loop_cpu[0] * 1e6 / (double)m_off, loop_cpu[1] * 1e6 / (double)m_on,
           proc_cpu[0] * 1e6 / (double)m_off, proc_cpu[1] * 1e6 / (double)m_on,
           scrapes ? (double)atomic_load(&B.scrape_ns) / (double)scrapes / 1e6 : 0.0,
           (unsigned long long)st.outbox_drops);
    free(ratios);
    teardown();
    return 0;
}
