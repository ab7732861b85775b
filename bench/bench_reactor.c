/* `make bench` figures of reactors and channels (issue 14), two hosts in one process on one
 * loop, each figure against a baseline measured in the same run. Prints one JSON line.
 *
 *   bench_reactor bulk MB        one channel's bulk throughput vs a raw cp2p stream (TCP
 *                                loopback): 64 KiB messages / writes, MB megabytes each
 *   bench_reactor latency SEC [CONNBUF]  200-byte votes every 2 ms on their channel, unloaded, then
 *                                with the mempool channel saturated by 1 KiB messages and block
 *                                parts of 64 KiB flowing, then (the one-stream alternative)
 *                                votes queued on the saturated mempool channel itself; over the
 *                                memory transport at 64 MB/s, 1 ms one way (deterministic link);
 *                                CONNBUF sets the host's conn_out_buffered and
 *                                conn_write_inflight (what waits below the stream scheduler;
 *                                maxima that follow the send rate unless BENCH_CONN_QUEUE=fixed);
 *                                BENCH_LOWAT=off in the environment turns TCP_NOTSENT_LOWAT
 *                                off (the memory transport models it too)
 *   bench_reactor rate SEC       200-byte messages across 8 channels, messages a second (TCP)
 *   bench_reactor slow SEC       a receive that sleeps SEC seconds on channel X (its reactor has
 *                                two workers) and 200-byte messages on channel Y of the same
 *                                reactor and peer meanwhile, against Y alone (TCP loopback)
 *   bench_reactor ratelimit SEC  one channel saturated under a 2 MB/s send limit over the memory
 *                                transport (5 ms one way): the rate measured over SEC seconds
 *                                against the limit, and the keepalive RTT loaded vs idle
 *
 * BENCH_PACKET=BYTES in the environment sets the switches' packet_size (default: 64 KiB
 * without a send rate, 16 KiB with one).
 *
 * Senders keep a few cp2p_reactor_peer_send calls waiting on each channel, so queues stay full
 * without polling. Not a test: nothing here fails on a slow machine. */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cp2p/memnet.h>
#include <cp2p/protocols.h>
#include <cp2p/reactor.h>

static uv_loop_t L;
static cp2p_memnet *NET;
static size_t CONN_BUF; /* conn_out_buffered and conn_write_inflight; 0: the host's default */

static double now_s(void)
{
    return (double)uv_hrtime() / 1e9;
}

static cp2p_host *mk_host(void)
{
    cp2p_host_config cfg;
    cp2p_privkey *key;
    cp2p_host *h;
    cp2p_host_config_default(&cfg);
    cfg.reconnect_known_peers = CP2P_HOST_NO_RECONNECT;
    cfg.memnet = NET;
    cfg.conn_out_buffered = CONN_BUF;
    cfg.conn_write_inflight = CONN_BUF;
    /* BENCH_LOWAT=off: no TCP_NOTSENT_LOWAT, on sockets and in the memory model (baseline). */
    const char *lw = getenv("BENCH_LOWAT");
    if (lw != NULL && strcmp(lw, "off") == 0) {
        cfg.tcp_notsent_lowat = CP2P_HOST_NOTSENT_LOWAT_OFF;
    }
    /* BENCH_CONN_QUEUE=fixed: the caps below the scheduler do not follow the send rate. */
    const char *cq = getenv("BENCH_CONN_QUEUE");
    if (cq != NULL && strcmp(cq, "fixed") == 0) {
        cfg.conn_queue_us = CP2P_HOST_CONN_QUEUE_FIXED;
    }
    if (cp2p_privkey_generate(CP2P_KEY_ED25519, &key) != 0) {
        exit(1);
    }
    cfg.identity = key;
    if (cp2p_host_new(&L, &cfg, &h) != 0) {
        exit(1);
    }
    cp2p_privkey_free(key);
    const char *text = NET != NULL ? "/memory/0" : "/ip4/127.0.0.1/tcp/0";
    cp2p_multiaddr *ma;
    if (cp2p_multiaddr_parse(text, strlen(text), &ma) != 0 || cp2p_host_listen(h, ma) != 0) {
        exit(1);
    }
    cp2p_multiaddr_free(ma);
    return h;
}

static void run_while(const bool *flag, bool want)
{
    while (*flag != want) {
        uv_run(&L, UV_RUN_ONCE);
    }
}

static void on_dial(cp2p_host *h, int status, cp2p_conn *c, void *ud)
{
    (void)h;
    (void)c;
    if (status != 0) {
        fprintf(stderr, "bench_reactor: dial failed: %s\n", cp2p_strerror(status));
        exit(1);
    }
    *(bool *)ud = true;
}

static void dial(cp2p_host *from, cp2p_host *to)
{
    cp2p_multiaddr *ma;
    bool done = false;
    if (cp2p_host_listen_addr(to, 0, true, &ma) != 0 || cp2p_host_dial(from, ma, on_dial, &done)) {
        exit(1);
    }
    cp2p_multiaddr_free(ma);
    run_while(&done, true);
}

static void on_closed(cp2p_host *h, void *ud)
{
    (void)h;
    *(bool *)ud = true;
}

static void close_host(cp2p_host *h)
{
    bool done = false;
    cp2p_host_close(h, on_closed, &done);
    run_while(&done, true);
}

/* ---- switches ---- */

typedef struct side {
    cp2p_switch *sw;
    cp2p_reactor *r;
    cp2p_reactor_peer *peer;
    bool added;
    uint64_t got_bytes, got_msgs;
    /* votes: send time (uv_hrtime) in the first 8 bytes; latencies in us */
    double *lat;
    size_t n_lat, cap_lat;
} side;

static void on_add(cp2p_reactor *r, cp2p_reactor_peer *p, void *ud)
{
    side *s = ud;
    (void)r;
    s->peer = p;
    s->added = true;
}

static void on_receive(cp2p_reactor *r, uint8_t ch, cp2p_reactor_peer *p, const uint8_t *msg,
                       size_t len, void *ud)
{
    side *s = ud;
    (void)r;
    (void)p;
    s->got_bytes += len;
    s->got_msgs++;
    if (len >= 9 && msg[8] == 'V' && s->n_lat < s->cap_lat) {
        uint64_t t0;
        memcpy(&t0, msg, 8);
        s->lat[s->n_lat++] = (double)(uv_hrtime() - t0) / 1e3;
    }
    (void)ch;
}

static const cp2p_switch_config *SW_CFG; /* NULL: the defaults */

static void mk_switch(cp2p_host *h, side *s, const cp2p_channel_desc *ch, size_t n)
{
    cp2p_reactor_desc d = {.name = "bench", .channels = ch, .n_channels = n,
                           .add_peer = on_add, .receive = on_receive};
    cp2p_switch_config pc;
    const cp2p_switch_config *cfg = SW_CFG;
    const char *pk = getenv("BENCH_PACKET"); /* packet_size (and a 4-packet backlog) */
    if (cfg == NULL && pk != NULL) {
        cp2p_switch_config_default(&pc);
        pc.packet_size = strtoull(pk, NULL, 10);
        pc.stream_backlog = 4 * pc.packet_size;
        cfg = &pc;
    }
    if (cp2p_switch_new(h, cfg, &s->sw) != 0 || cp2p_switch_add_reactor(s->sw, &d, s, &s->r) ||
        cp2p_switch_start(s->sw) != 0) {
        fprintf(stderr, "bench_reactor: switch\n");
        exit(1);
    }
}

/* A feeder keeps `depth` sends waiting on one channel: each completion sends the next. */
typedef struct feeder {
    side *s;
    uint8_t ch;
    size_t len;
    bool on;
    uint64_t sent;
} feeder;

static uint8_t PAYLOAD[1 << 20];

static void feed_one(feeder *f);

static void on_fed(cp2p_reactor_peer *p, uint8_t ch, int status, void *ud)
{
    feeder *f = ud;
    (void)p;
    (void)ch;
    if (status == 0) {
        f->sent++;
    }
    if (f->on) {
        feed_one(f);
    }
}

static void feed_one(feeder *f)
{
    int rc = cp2p_reactor_peer_send(f->s->peer, f->ch, PAYLOAD, f->len, 60000, on_fed, f);
    if (rc != 0 && rc != CP2P_EFULL) {
        fprintf(stderr, "bench_reactor: send: %s\n", cp2p_strerror(rc));
        exit(1);
    }
}

static void feed_start(feeder *f, int depth)
{
    f->on = true;
    for (int i = 0; i < depth; i++) {
        feed_one(f);
    }
}

static void pair(cp2p_host **a, cp2p_host **b, side *sa, side *sb, const cp2p_channel_desc *ch,
                 size_t n)
{
    *a = mk_host();
    *b = mk_host();
    mk_switch(*a, sa, ch, n);
    mk_switch(*b, sb, ch, n);
    dial(*a, *b);
    run_while(&sa->added, true);
    run_while(&sb->added, true);
}

/* ---- bulk ---- */

#define RAW_PROTO "/bench/raw/1.0.0"

typedef struct raw {
    uint64_t want, got, queued;
    cp2p_stream *s;
    bool done;
} raw;

static void raw_sink_read(cp2p_stream *s, ptrdiff_t n, const uint8_t *data, void *ud)
{
    raw *r = ud;
    (void)data;
    if (n < 0) {
        cp2p_stream_reset(s);
        return;
    }
    r->got += (uint64_t)n;
    if (r->got >= r->want) {
        r->done = true;
    }
}

static void raw_handler(cp2p_stream *s, void *ud)
{
    if (cp2p_stream_read_start(s, raw_sink_read, ud) != 0) {
        exit(1);
    }
}

static void raw_pump(raw *r);

static void raw_written(cp2p_stream *s, int status, void *ud)
{
    (void)s;
    if (status == 0) {
        raw_pump(ud);
    }
}

static void raw_pump(raw *r)
{
    while (r->queued < r->want && cp2p_stream_write_queued(r->s) < 4 * 65536) {
        if (cp2p_stream_write(r->s, PAYLOAD, 65536, raw_written, r) != 0) {
            return;
        }
        r->queued += 65536;
    }
}

static void raw_opened(cp2p_stream *s, int status, void *ud)
{
    raw *r = ud;
    if (status != 0) {
        exit(1);
    }
    r->s = s;
    raw_pump(r);
}

static void bulk(uint64_t mb)
{
    cp2p_host *a = mk_host(), *b = mk_host();
    uint64_t bytes = mb * 1000000 / 65536 * 65536;
    raw sink = {.want = bytes}, src = {.want = bytes};
    if (cp2p_host_set_handler(b, RAW_PROTO, raw_handler, &sink) != 0) {
        exit(1);
    }
    dial(a, b);
    const char *proto = RAW_PROTO;
    double t0 = now_s();
    if (cp2p_conn_open_stream(cp2p_host_conn_to(a, cp2p_host_peer_id(b)), &proto, 1, raw_opened,
                              &src) != 0) {
        exit(1);
    }
    run_while(&sink.done, true);
    double raw_s = now_s() - t0;
    cp2p_stream_close(src.s);
    close_host(a);
    close_host(b);

    cp2p_channel_desc ch = {.id = 0x40, .priority = 5, .send_queue_capacity = 16,
                            .recv_queue_capacity = 64, .recv_message_capacity = 1 << 20};
    side sa = {0}, sb = {0};
    pair(&a, &b, &sa, &sb, &ch, 1);
    feeder f = {.s = &sa, .ch = 0x40, .len = 65536};
    t0 = now_s();
    feed_start(&f, 8);
    while (sb.got_bytes < bytes) {
        uv_run(&L, UV_RUN_ONCE);
    }
    double ch_s = now_s() - t0;
    f.on = false;
    close_host(a);
    close_host(b);
    printf("{\"bytes\":%" PRIu64 ",\"raw_mb_per_s\":%.1f,\"channel_mb_per_s\":%.1f,"
           "\"ratio\":%.3f}\n",
           bytes, bytes / raw_s / 1e6, bytes / ch_s / 1e6, raw_s / ch_s);
}

/* ---- latency ---- */

enum { CH_BLOCK = 0x21, CH_VOTE = 0x22, CH_MEMPOOL = 0x30 };

typedef struct voter {
    side *s;
    uint8_t ch;
    uv_timer_t t;
    uint64_t sent, refused;
} voter;

static void vote_tick(uv_timer_t *t)
{
    voter *v = t->data;
    uint8_t m[200];
    uint64_t now = uv_hrtime();
    memset(m, 0, sizeof(m));
    memcpy(m, &now, 8);
    m[8] = 'V';
    int rc = cp2p_reactor_peer_send(v->s->peer, v->ch, m, sizeof(m), 60000, NULL, NULL);
    if (rc == 0) {
        v->sent++;
    } else {
        v->refused++;
    }
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, size_t n, double p)
{
    if (n == 0) {
        return 0;
    }
    qsort(v, n, sizeof(*v), cmp_d);
    size_t i = (size_t)(p * (double)(n - 1));
    return v[i];
}

static void run_secs(double sec)
{
    double end = now_s() + sec;
    while (now_s() < end) {
        uv_run(&L, UV_RUN_ONCE);
    }
}

/* One phase: votes on `vote_ch` for `sec` seconds, with the load on or off. */
static void phase(side *sa, side *sb, uint8_t vote_ch, bool load, double sec, double *p50,
                  double *p99, double *block_mb_s, double *mempool_msgs_s)
{
    voter v = {.s = sa, .ch = vote_ch};
    /* On the heap and never freed: a send still waiting after the phase calls back into it. */
    feeder *pm = calloc(1, sizeof(*pm)), *pb = calloc(1, sizeof(*pb));
    if (pm == NULL || pb == NULL) {
        exit(1);
    }
    *pm = (feeder){.s = sa, .ch = CH_MEMPOOL, .len = 1024};
    *pb = (feeder){.s = sa, .ch = CH_BLOCK, .len = 65536};
    feeder *fmp = pm, *fbp = pb;
#define fm (*fmp)
#define fb (*fbp)
    uint64_t b0 = sb->got_bytes;
    if (load) {
        feed_start(&fm, 8);
        feed_start(&fb, 4);
        run_secs(0.5); /* queues fill */
    }
    sb->n_lat = 0;
    uint64_t fb0 = fb.sent, fm0 = fm.sent;
    b0 = sb->got_bytes;
    (void)b0;
    uv_timer_init(&L, &v.t);
    v.t.data = &v;
    uv_timer_start(&v.t, vote_tick, 2, 2);
    double t0 = now_s();
    run_secs(sec);
    double el = now_s() - t0;
    uv_timer_stop(&v.t);
    *block_mb_s = (double)(fb.sent - fb0) * 65536 / el / 1e6;
    *mempool_msgs_s = (double)(fm.sent - fm0) / el;
    fm.on = fb.on = false;
    bool closed = false;
    uv_close((uv_handle_t *)&v.t, NULL);
    /* Drain: let the queues empty before the next phase (and the feeders' last callbacks). */
    run_secs(load ? 2.0 : 0.2);
    (void)closed;
    *p50 = pct(sb->lat, sb->n_lat, 0.50);
    *p99 = pct(sb->lat, sb->n_lat, 0.99);
#undef fm
#undef fb
}

static void latency(double sec)
{
    if (cp2p_memnet_new(&L, 1, &NET) != 0) {
        exit(1);
    }
    cp2p_memnet_link link = {.latency_ms = 1, .bandwidth_bps = 64 * 1000 * 1000};
    cp2p_memnet_set_default_link(NET, &link);
    cp2p_channel_desc ch[] = {
        {.id = CH_BLOCK, .priority = 10, .send_queue_capacity = 4, .recv_queue_capacity = 16,
         .recv_message_capacity = 1 << 20},
        {.id = CH_VOTE, .priority = 7, .send_queue_capacity = 64, .recv_queue_capacity = 64},
        {.id = CH_MEMPOOL, .priority = 5, .send_queue_capacity = 64,
         .recv_queue_capacity = 256},
    };
    cp2p_host *a, *b;
    side sa = {0}, sb = {0};
    sb.cap_lat = 1 << 20;
    sb.lat = calloc(sb.cap_lat, sizeof(double));
    pair(&a, &b, &sa, &sb, ch, 3);
    double u50, u99, l50, l99, s50, s99, bl, mp, bl2, mp2, x, y;
    phase(&sa, &sb, CH_VOTE, false, sec, &u50, &u99, &x, &y);
    phase(&sa, &sb, CH_VOTE, true, sec, &l50, &l99, &bl, &mp);
    phase(&sa, &sb, CH_MEMPOOL, true, sec, &s50, &s99, &bl2, &mp2);
    /* One frame: a 16 KiB packet at the link's rate. */
    double frame_us = 16384.0 / 64e6 * 1e6;
    printf("{\"idle_p50_us\":%.0f,\"idle_p99_us\":%.0f,\"loaded_p50_us\":%.0f,"
           "\"loaded_p99_us\":%.0f,\"target_us\":%.0f,\"frame_us\":%.0f,"
           "\"block_mb_per_s\":%.1f,\"mempool_msgs_per_s\":%.0f,"
           "\"samestream_p50_us\":%.0f,\"samestream_p99_us\":%.0f}\n",
           u50, u99, l50, l99, 2 * u99 + frame_us, frame_us, bl, mp, s50, s99);
    close_host(a);
    close_host(b);
    free(sb.lat);
    if (cp2p_memnet_close(NET, NULL, NULL) != 0) {
        exit(1);
    }
    run_secs(0.05);
    NET = NULL;
}

/* ---- rate limit ---- */

/* Keepalive RTT samples of a's peer: one per new pong, over `sec` seconds. */
static double rtt_mean(side *sa, double sec)
{
    cp2p_reactor_peer_stats ps;
    cp2p_reactor_peer_stats_get(sa->peer, &ps);
    uint64_t pongs = ps.pongs_received;
    double sum = 0;
    int n = 0;
    double end = now_s() + sec;
    while (now_s() < end) {
        uv_run(&L, UV_RUN_ONCE);
        cp2p_reactor_peer_stats_get(sa->peer, &ps);
        if (ps.pongs_received != pongs) {
            pongs = ps.pongs_received;
            sum += (double)ps.rtt_ms;
            n++;
        }
    }
    return n > 0 ? sum / n : 0;
}

static void ratelimit(double sec)
{
    if (cp2p_memnet_new(&L, 1, &NET) != 0) {
        exit(1);
    }
    cp2p_memnet_link link = {.latency_ms = 5, .bandwidth_bps = 64 * 1000 * 1000};
    cp2p_memnet_set_default_link(NET, &link);
    cp2p_switch_config cfg;
    cp2p_switch_config_default(&cfg);
    cfg.send_rate = 2000000;
    cfg.ping_interval_ms = 100;
    cfg.pong_timeout_ms = 5000;
    SW_CFG = &cfg;
    cp2p_channel_desc ch = {.id = 0x40, .priority = 5, .send_queue_capacity = 16,
                            .recv_queue_capacity = 64, .recv_message_capacity = 1 << 20};
    cp2p_host *a, *b;
    side sa = {0}, sb = {0};
    pair(&a, &b, &sa, &sb, &ch, 1);
    double idle = rtt_mean(&sa, 2.0);
    feeder *f = calloc(1, sizeof(*f));
    if (f == NULL) {
        exit(1);
    }
    *f = (feeder){.s = &sa, .ch = 0x40, .len = 65536};
    feed_start(f, 8);
    run_secs(1.0); /* the burst is spent */
    uint64_t b0 = sb.got_bytes;
    double t0 = now_s();
    double loaded = rtt_mean(&sa, sec);
    double rate = (double)(sb.got_bytes - b0) / (now_s() - t0);
    f->on = false;
    cp2p_reactor_peer_stats ps;
    cp2p_reactor_peer_stats_get(sa.peer, &ps);
    printf("{\"limit_bytes_per_s\":%u,\"measured_bytes_per_s\":%.0f,\"ratio\":%.4f,"
           "\"rtt_idle_ms\":%.2f,\"rtt_loaded_ms\":%.2f,\"send_throttled_ms\":%llu}\n",
           cfg.send_rate, rate, rate / cfg.send_rate, idle, loaded,
           (unsigned long long)ps.send_throttled_ms);
    close_host(a);
    close_host(b);
    SW_CFG = NULL;
    if (cp2p_memnet_close(NET, NULL, NULL) != 0) {
        exit(1);
    }
    run_secs(0.05);
    NET = NULL;
}

/* ---- slow receive ---- */

/* A receive that sleeps on channel X (on its worker), and the latency of messages on channel Y
 * of the same reactor and peer meanwhile, against Y alone. */
static volatile int SLEEP_X_MS;

static void slow_receive(cp2p_reactor *r, uint8_t ch, cp2p_reactor_peer *p, const uint8_t *msg,
                         size_t len, void *ud)
{
    if (ch == 0x20 && SLEEP_X_MS > 0) {
        uv_sleep((unsigned)SLEEP_X_MS);
    }
    on_receive(r, ch, p, msg, len, ud);
}

static void slow(double sleep_s)
{
    cp2p_channel_desc ch[] = {{.id = 0x20, .priority = 6, .send_queue_capacity = 4},
                              {.id = 0x22, .priority = 7, .send_queue_capacity = 64}};
    cp2p_reactor_desc d = {.name = "slow", .channels = ch, .n_channels = 2, .workers = 2,
                           .add_peer = on_add, .receive = slow_receive};
    cp2p_host *a = mk_host(), *b = mk_host();
    side sa = {0}, sb = {0};
    sb.cap_lat = 1 << 16;
    sb.lat = calloc(sb.cap_lat, sizeof(double));
    cp2p_switch_config cfg;
    cp2p_switch_config_default(&cfg);
    cfg.ping_interval_ms = 100;
    cfg.pong_timeout_ms = 1000; /* far below the sleep: a stalled keepalive would drop b */
    SW_CFG = &cfg;
    cp2p_reactor *r;
    if (cp2p_switch_new(a, SW_CFG, &sa.sw) != 0 || cp2p_switch_add_reactor(sa.sw, &d, &sa, &r) ||
        cp2p_switch_start(sa.sw) != 0 || cp2p_switch_new(b, SW_CFG, &sb.sw) != 0 ||
        cp2p_switch_add_reactor(sb.sw, &d, &sb, &r) || cp2p_switch_start(sb.sw) != 0) {
        exit(1);
    }
    dial(a, b);
    run_while(&sa.added, true);
    run_while(&sb.added, true);
    voter v = {.s = &sa, .ch = 0x22};
    double p50[2], p99[2];
    for (int phase = 0; phase < 2; phase++) {
        SLEEP_X_MS = phase == 1 ? (int)(sleep_s * 1000) : 0;
        if (phase == 1) {
            uint8_t m[100] = {0};
            if (cp2p_reactor_peer_try_send(sa.peer, 0x20, m, sizeof(m)) != 0) {
                exit(1);
            }
            run_secs(0.2); /* b's worker is asleep in X's receive */
        }
        sb.n_lat = 0;
        uv_timer_init(&L, &v.t);
        v.t.data = &v;
        uv_timer_start(&v.t, vote_tick, 2, 2);
        run_secs(phase == 1 ? sleep_s - 0.5 : sleep_s);
        uv_timer_stop(&v.t);
        uv_close((uv_handle_t *)&v.t, NULL);
        run_secs(0.1);
        p50[phase] = pct(sb.lat, sb.n_lat, 0.5);
        p99[phase] = pct(sb.lat, sb.n_lat, 0.99);
    }
    run_secs(1.0); /* X's receive wakes */
    cp2p_switch_stats st;
    cp2p_switch_stats_get(sb.sw, &st);
    printf("{\"sleep_s\":%.1f,\"y_alone_p50_us\":%.0f,\"y_alone_p99_us\":%.0f,"
           "\"y_beside_sleep_p50_us\":%.0f,\"y_beside_sleep_p99_us\":%.0f,"
           "\"added_p99_us\":%.0f,\"pong_timeouts\":%llu,\"peers\":%llu}\n",
           sleep_s, p50[0], p99[0], p50[1], p99[1], p99[1] - p99[0],
           (unsigned long long)st.pong_timeouts, (unsigned long long)st.peers);
    SW_CFG = NULL;
    close_host(a);
    close_host(b);
    free(sb.lat);
}

/* ---- rate ---- */

static void rate(double sec)
{
    cp2p_channel_desc ch[8];
    for (int i = 0; i < 8; i++) {
        ch[i] = (cp2p_channel_desc){.id = (uint8_t)(0x60 + i), .priority = (uint8_t)(1 + i),
                                    .send_queue_capacity = 64, .recv_queue_capacity = 64};
    }
    cp2p_host *a, *b;
    side sa = {0}, sb = {0};
    pair(&a, &b, &sa, &sb, ch, 8);
    feeder f[8];
    for (int i = 0; i < 8; i++) {
        f[i] = (feeder){.s = &sa, .ch = (uint8_t)(0x60 + i), .len = 200};
        feed_start(&f[i], 8);
    }
    run_secs(0.3);
    uint64_t m0 = sb.got_msgs;
    double t0 = now_s();
    run_secs(sec);
    double el = now_s() - t0;
    uint64_t got = sb.got_msgs - m0;
    for (int i = 0; i < 8; i++) {
        f[i].on = false;
    }
    close_host(a);
    close_host(b);
    printf("{\"channels\":8,\"size\":200,\"msgs_per_s\":%.0f}\n", (double)got / el);
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    if (argc < 3 || uv_loop_init(&L) != 0) {
        fprintf(stderr, "usage: bench_reactor bulk MB | latency SEC [CONNBUF] | rate SEC | ratelimit SEC | slow SEC\n");
        return 2;
    }
    for (size_t i = 0; i < sizeof(PAYLOAD); i++) {
        PAYLOAD[i] = (uint8_t)i;
    }
    if (strcmp(argv[1], "bulk") == 0) {
        bulk(strtoull(argv[2], NULL, 10));
    } else if (strcmp(argv[1], "latency") == 0) {
        CONN_BUF = argc > 3 ? strtoull(argv[3], NULL, 10) : 0;
        latency(strtod(argv[2], NULL));
    } else if (strcmp(argv[1], "slow") == 0) {
        slow(strtod(argv[2], NULL));
    } else if (strcmp(argv[1], "ratelimit") == 0) {
        ratelimit(strtod(argv[2], NULL));
    } else if (strcmp(argv[1], "rate") == 0) {
        rate(strtod(argv[2], NULL));
    } else {
        return 2;
    }
    uv_run(&L, UV_RUN_NOWAIT);
    return 0;
}
