/* Baselines for `make bench` (bench/run.sh), each measured in the same run as cp2p:
 *   raw-sink PORT / raw-send PORT BYTES      raw TCP through libuv, one direction
 *   enc-sink PORT / enc-send PORT BYTES      the encrypted-pipe limit: 64 KiB frames sealed
 *                                            with libsodium's ChaCha20-Poly1305 by the sender
 *                                            and opened by the receiver, over loopback TCP
 *   echo-server PORT / rtt PORT COUNT [US]   64-byte TCP round trips (raw ping), US apart
 *   handshakes COUNT                         Noise XX handshakes/s in memory, against the rate
 *                                            the raw crypto operations allow
 *   rr-server PORT PROTO                     a cp2p host answering request-response requests on
 *                                            PROTO with their own bytes (as `cp2p node --echo`,
 *                                            but with room for 256 requests in flight per peer)
 *   rr ADDR PROTO INFLIGHT SECONDS SIZE [eager]
 *                                            cp2p request-response round trips/s: INFLIGHT
 *                                            requests of SIZE random bytes kept outstanding on one
 *                                            connection for SECONDS, every answer checked;
 *                                            `eager`: without lazy negotiation (lazy_open off)
 *   gs-net N MSGS SIZE INTERVAL_US [no-coalesce]
 *                                            gossipsub: N nodes on one loop, each dialing 4
 *                                            random others, one topic, MSGS signed messages of
 *                                            SIZE bytes from random publishers, one every
 *                                            INTERVAL_US: delivery latency p50/p99 and the
 *                                            duplicate factor (router msgs_in / msgs_delivered)
 *   gs-rate MSGS SIZE coalesce|no-coalesce signed|unsigned [WINDOW]
 *                                            one publisher, 10 subscribers on one loop: MSGS
 *                                            published as fast as the loop turns, at most
 *                                            WINDOW (1000) not yet delivered everywhere: msgs/s,
 *                                            frames and write syscalls per message, p50/p99
 *   conn-server PORT                         a cp2p host that accepts any number of connections
 *                                            (connection manager limits raised for the bench,
 *                                            RLIMIT_NOFILE raised); SIGUSR1 runs malloc_trim
 *   conns ADDR SERVER_PID N1,N2,...          one cp2p host opening connections to ADDR, up to
 *                                            each N in turn: at each step the RSS delta / N of
 *                                            this process and of SERVER_PID against before the
 *                                            first connection (once idle, after malloc_trim in
 *                                            both), then one ping on every connection (cp2p_ping,
 *                                            a new stream each: from the call to the answer), N
 *                                            spread over 1 s, then N at once: p50/p99/max ms;
 *                                            after the last step, one 64 KiB echo request
 *                                            (/bench/echo, reqresp) on every connection and the
 *                                            RSS per connection again
 * Results are printed as one JSON object per line. Plain sockets here, not libuv where libuv
 * would only add a loop around a blocking transfer: the point is the machine's limit. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>
#include <uv.h>

#include <cp2p/memnet.h>
#include <cp2p/keys.h>
#include <cp2p/protocols.h>
#include <cp2p/pubsub.h>
#include <cp2p/reqresp.h>

#include "crypto/noise/noise.h"

#define FRAME (64 * 1024)

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int listen_on(int port)
{
    int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(s, (struct sockaddr *)&a, sizeof(a)) != 0 || listen(s, 4) != 0) {
        perror("listen");
        exit(1);
    }
    int c = accept(s, NULL, NULL);
    close(s);
    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return c;
}

static int connect_to(int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (int tries = 0; tries < 200; tries++) {
        int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
        if (connect(s, (struct sockaddr *)&a, sizeof(a)) == 0) {
            setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
            return s;
        }
        close(s);
        usleep(10000);
    }
    perror("connect");
    exit(1);
}

static void write_all(int s, const uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(s, p, n);
        if (w <= 0) {
            perror("write");
            exit(1);
        }
        p += w;
        n -= (size_t)w;
    }
}

static int read_all(int s, uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t r = read(s, p, n);
        if (r <= 0) {
            return -1;
        }
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

static void raw_sink(int port)
{
    int s = listen_on(port);
    static uint8_t buf[1 << 20];
    uint64_t total = 0;
    ssize_t r;
    while ((r = read(s, buf, sizeof(buf))) > 0) {
        total += (uint64_t)r;
    }
    close(s);
    printf("{\"sink_bytes\":%llu}\n", (unsigned long long)total);
}

static void raw_send(int port, uint64_t bytes)
{
    static uint8_t buf[FRAME];
    int s = connect_to(port);
    double t0 = now_s();
    for (uint64_t sent = 0; sent < bytes; sent += FRAME) {
        write_all(s, buf, FRAME);
    }
    shutdown(s, SHUT_WR);
    read(s, buf, 1); /* wait for the sink to close: everything was read */
    double t = now_s() - t0;
    close(s);
    printf("{\"bench\":\"raw_tcp\",\"bytes\":%llu,\"seconds\":%.4f,\"mb_per_s\":%.1f}\n",
           (unsigned long long)bytes, t, (double)bytes / t / 1e6);
}

static const uint8_t KEY[crypto_aead_chacha20poly1305_ietf_KEYBYTES] = {1, 2, 3};

static void enc_sink(int port)
{
    int s = listen_on(port);
    static uint8_t ct[2 + FRAME + 16], pt[FRAME];
    uint8_t nonce[12] = {0};
    uint64_t n = 0, total = 0;
    for (;;) {
        if (read_all(s, ct, 2 + 3) != 0) { /* 2-byte length then at least the header */
            break;
        }
        size_t len = (size_t)ct[0] << 16 | (size_t)ct[1] << 8 | ct[2];
        if (read_all(s, ct + 5, len - 2) != 0) {
            break;
        }
        memcpy(nonce + 4, &n, 8);
        n++;
        unsigned long long plen;
        if (crypto_aead_chacha20poly1305_ietf_decrypt(pt, &plen, NULL, ct + 3, len, NULL, 0,
                                                      nonce, KEY) != 0) {
            fprintf(stderr, "enc-sink: bad frame\n");
            exit(1);
        }
        total += plen;
    }
    close(s);
    printf("{\"sink_bytes\":%llu}\n", (unsigned long long)total);
}

static void enc_send(int port, uint64_t bytes)
{
    static uint8_t pt[FRAME], ct[3 + FRAME + 16];
    uint8_t nonce[12] = {0};
    uint64_t n = 0;
    int s = connect_to(port);
    double t0 = now_s();
    for (uint64_t sent = 0; sent < bytes; sent += FRAME) {
        unsigned long long clen;
        memcpy(nonce + 4, &n, 8);
        n++;
        crypto_aead_chacha20poly1305_ietf_encrypt(ct + 3, &clen, pt, FRAME, NULL, 0, NULL, nonce,
                                                  KEY);
        ct[0] = (uint8_t)(clen >> 16);
        ct[1] = (uint8_t)(clen >> 8);
        ct[2] = (uint8_t)clen;
        write_all(s, ct, 3 + clen);
    }
    shutdown(s, SHUT_WR);
    read(s, pt, 1);
    double t = now_s() - t0;
    close(s);
    printf("{\"bench\":\"encrypted_pipe\",\"bytes\":%llu,\"seconds\":%.4f,\"mb_per_s\":%.1f}\n",
           (unsigned long long)bytes, t, (double)bytes / t / 1e6);
}

static void echo_server(int port)
{
    int s = listen_on(port);
    uint8_t b[64];
    while (read_all(s, b, sizeof(b)) == 0) {
        write_all(s, b, sizeof(b));
    }
    close(s);
}

static void rtt(int port, int count, int interval_us)
{
    int s = connect_to(port);
    uint8_t b[64] = {0};
    double sum = 0;
    for (int i = 0; i < count; i++) {
        if (interval_us > 0) {
            usleep((useconds_t)interval_us);
        }
        double t0 = now_s();
        write_all(s, b, sizeof(b));
        if (read_all(s, b, sizeof(b)) != 0) {
            exit(1);
        }
        sum += now_s() - t0;
    }
    close(s);
    printf("{\"bench\":\"raw_tcp_rtt\",\"count\":%d,\"avg_us\":%.2f}\n", count, sum / count * 1e6);
}

/* One full handshake between two cores in memory. */
static void one_handshake(const cp2p_privkey *a, const cp2p_privkey *b)
{
    cp2p__noise *i = NULL, *r = NULL;
    cp2p__noise_config cfg;
    const char *why = NULL;
    cp2p__noise_config_default(&cfg);
    if (cp2p__noise_new(&cfg, true, a, NULL, 0, &i) != 0 ||
        cp2p__noise_new(&cfg, false, b, NULL, 0, &r) != 0) {
        fprintf(stderr, "cannot create noise cores\n");
        exit(1);
    }
    for (int round = 0; round < 6; round++) {
        cp2p_slice o;
        while (cp2p__noise_out(i, &o) > 0) {
            if (cp2p__noise_recv(r, o.ptr, o.len, 0, &why) != (ptrdiff_t)o.len) {
                exit(1);
            }
            cp2p__noise_out_done(i, o.len);
        }
        while (cp2p__noise_out(r, &o) > 0) {
            if (cp2p__noise_recv(i, o.ptr, o.len, 0, &why) != (ptrdiff_t)o.len) {
                exit(1);
            }
            cp2p__noise_out_done(r, o.len);
        }
    }
    if (!cp2p__noise_handshake_done(i) || !cp2p__noise_handshake_done(r)) {
        fprintf(stderr, "handshake did not finish\n");
        exit(1);
    }
    cp2p__noise_free(i);
    cp2p__noise_free(r);
}

static void handshakes(int count)
{
    cp2p_privkey *a, *b;
    cp2p_buf sig;
    uint8_t sk[32], pk[32], out[32], msg[56] = {0};
    if (cp2p_privkey_generate(CP2P_KEY_ED25519, &a) != 0 ||
        cp2p_privkey_generate(CP2P_KEY_ED25519, &b) != 0) {
        exit(1);
    }
    one_handshake(a, b); /* warm up */
    double t0 = now_s();
    for (int n = 0; n < count; n++) {
        one_handshake(a, b);
    }
    double hs = now_s() - t0;
    /* The raw operations of one handshake, both sides: 2 x (key generation + 3 X25519 +
     * 1 Ed25519 sign + 1 verify). */
    randombytes_buf(sk, sizeof(sk));
    crypto_scalarmult_base(pk, sk);
    cp2p_buf_init(&sig, 128);
    t0 = now_s();
    for (int n = 0; n < count; n++) {
        for (int side = 0; side < 2; side++) {
            crypto_scalarmult_base(out, sk);
            for (int k = 0; k < 3; k++) {
                if (crypto_scalarmult(out, sk, pk) != 0) {
                    exit(1);
                }
            }
            cp2p_buf_reset(&sig);
            if (cp2p_privkey_sign(a, msg, sizeof(msg), &sig) != 0 ||
                cp2p_pubkey_verify(cp2p_privkey_public(a), msg, sizeof(msg), sig.ptr, sig.len) !=
                    0) {
                exit(1);
            }
        }
    }
    double raw = now_s() - t0;
    printf("{\"bench\":\"noise_handshakes\",\"count\":%d,\"per_s\":%.0f,"
           "\"raw_crypto_per_s\":%.0f,\"ratio\":%.3f}\n",
           count, count / hs, count / raw, raw / hs);
    cp2p_buf_fini(&sig);
    cp2p_privkey_free(a);
    cp2p_privkey_free(b);
}

/* ---- request-response round trips (cp2p host API, one loop, as the js client is) ---- */

/* A host with a fresh Ed25519 identity and `cfg` (its identity ignored); exits on failure. */
static cp2p_host *bench_host_cfg(uv_loop_t *loop, cp2p_host_config *cfg)
{
    cp2p_privkey *key;
    cp2p_host *h;
    if (cp2p_privkey_generate(CP2P_KEY_ED25519, &key) != 0) {
        exit(1);
    }
    cfg->identity = key;
    if (cp2p_host_new(loop, cfg, &h) != 0) {
        fprintf(stderr, "bench_tools: cannot create the host\n");
        exit(1);
    }
    cfg->identity = NULL;
    cp2p_privkey_free(key);
    return h;
}

/* A host with a fresh Ed25519 identity, the defaults changed by tweak. */
static cp2p_host *bench_host(uv_loop_t *loop, void (*tweak)(cp2p_host_config *))
{
    cp2p_host_config cfg;
    cp2p_host_config_default(&cfg);
    tweak(&cfg);
    return bench_host_cfg(loop, &cfg);
}

static void rr_tweak(cp2p_host_config *cfg)
{
    cfg->max_inbound_per_protocol = 256;
}

static cp2p_host *rr_new_host(uv_loop_t *loop)
{
    return bench_host(loop, rr_tweak);
}

static void rr_echo(cp2p_reqresp_responder *r, cp2p_conn *c, const uint8_t *req, size_t len,
                    void *ud)
{
    (void)c;
    (void)ud;
    (void)!cp2p_reqresp_respond(r, req, len);
}

/* Listen on 127.0.0.1:port (0: any free port) and print {"addr":".../p2p/ID","pid":N}. */
static void listen_and_print(cp2p_host *h, int port, const char *who)
{
    cp2p_multiaddr *ma;
    char addr[64];
    cp2p_buf b;
    snprintf(addr, sizeof(addr), "/ip4/127.0.0.1/tcp/%d", port);
    if (cp2p_multiaddr_parse(addr, strlen(addr), &ma) != 0 || cp2p_host_listen(h, ma) != 0) {
        fprintf(stderr, "%s: cannot listen on %s\n", who, addr);
        exit(1);
    }
    cp2p_multiaddr_free(ma);
    if (cp2p_host_listen_addr(h, 0, true, &ma) != 0) {
        exit(1);
    }
    cp2p_buf_init(&b, CP2P_MULTIADDR_STR_MAX);
    if (cp2p_multiaddr_to_string(ma, &b) != 0) {
        exit(1);
    }
    printf("{\"addr\":\"%s\",\"pid\":%d}\n", (const char *)b.ptr, (int)getpid());
    fflush(stdout);
    cp2p_buf_fini(&b);
    cp2p_multiaddr_free(ma);
}

static void rr_server(int port, const char *proto)
{
    uv_loop_t *loop = uv_default_loop();
    cp2p_host *h = rr_new_host(loop);
    cp2p_reqresp_config rc;
    cp2p_reqresp_config_default(&rc);
    rc.max_inbound_per_peer = 256;
    if (cp2p_reqresp_register(h, proto, &rc, rr_echo, NULL) != 0) {
        exit(1);
    }
    listen_and_print(h, port, "rr-server");
    uv_run(loop, UV_RUN_DEFAULT); /* until killed */
}

typedef struct {
    const char *proto;
    uint8_t *req;
    size_t size;
    int inflight, outstanding;
    double t0, seconds;
    uint64_t done, failed;
    cp2p_host *h;
    cp2p_reqresp_config cfg;
} rr_client;

static void rr_send(rr_client *k, cp2p_conn *c);

static void rr_closed(cp2p_host *h, void *ud)
{
    (void)h;
    (void)ud;
}

static void on_rr_answer(cp2p_conn *c, int status, const uint8_t *resp, size_t len, void *ud)
{
    rr_client *k = ud;
    k->outstanding--;
    if (status != 0 || len != k->size || memcmp(resp, k->req, len) != 0) {
        k->failed++;
    } else {
        k->done++;
    }
    if (now_s() - k->t0 < k->seconds) {
        rr_send(k, c);
    } else if (k->outstanding == 0) {
        cp2p_host_close(k->h, rr_closed, NULL);
    }
}

static void rr_send(rr_client *k, cp2p_conn *c)
{
    int rc = cp2p_reqresp_request(c, k->proto, &k->cfg, k->req, k->size, on_rr_answer, k);
    if (rc != 0) {
        fprintf(stderr, "rr: cannot send: %s\n", cp2p_strerror(rc));
        exit(1);
    }
    k->outstanding++;
}

static void on_rr_dial(cp2p_host *h, int status, cp2p_conn *c, void *ud)
{
    rr_client *k = ud;
    (void)h;
    if (status != 0) {
        fprintf(stderr, "rr: dial failed: %s\n", cp2p_strerror(status));
        exit(1);
    }
    k->t0 = now_s();
    for (int i = 0; i < k->inflight; i++) {
        rr_send(k, c);
    }
}

static void rr_bench(const char *addr, const char *proto, int inflight, double seconds,
                     size_t size, bool eager)
{
    uv_loop_t *loop = uv_default_loop();
    rr_client k = {.proto = proto, .size = size, .inflight = inflight, .seconds = seconds};
    cp2p_multiaddr *ma;
    k.h = rr_new_host(loop);
    cp2p_reqresp_config_default(&k.cfg);
    k.cfg.lazy_open = !eager;
    k.req = malloc(size ? size : 1);
    randombytes_buf(k.req, size);
    if (inflight <= 0 || cp2p_multiaddr_parse(addr, strlen(addr), &ma) != 0 ||
        cp2p_host_dial(k.h, ma, on_rr_dial, &k) != 0) {
        fprintf(stderr, "rr: bad arguments or address\n");
        exit(1);
    }
    cp2p_multiaddr_free(ma);
    uv_run(loop, UV_RUN_DEFAULT);
    double t = now_s() - k.t0;
    printf("{\"bench\":\"cp2p_rr\",\"inflight\":%d,\"size\":%zu,\"lazy\":%d,"
           "\"requests\":%llu,\"failed\":%llu,\"seconds\":%.3f,\"per_s\":%.0f}\n",
           inflight, size, !eager, (unsigned long long)k.done, (unsigned long long)k.failed, t,
           (double)k.done / t);
    free(k.req);
    (void)!uv_loop_close(loop);
}

/* ---- gossipsub (issue 6): many nodes on one loop, as tests/integration/test_gossipsub.c ---- */

#define GS_TOPIC "bench"
#define GS_MAXN 1000

typedef struct {
    cp2p_host *h;
    cp2p_pubsub *ps;
    uint32_t got; /* distinct messages delivered (or published) here */
    uint8_t *seen;
} gs_node;

typedef struct {
    uv_loop_t *loop;
    gs_node *nodes;
    int n;
    uint32_t msgs, published, complete, window, dials_left;
    size_t size;
    uint64_t *sent_at, *lat, first_pub, last_done;
    uint32_t *copies; /* per message: nodes that have it */
    size_t nlat;
    uint32_t rng, interval_us;
    uint8_t *data;
    uv_idle_t idle;
    uv_timer_t tick;
    cp2p_memnet *net; /* gs-mem: the hosts' network (else loopback TCP) */
} gs_bench;

static gs_bench G;

/* xorshift32: the same topology and publishers as tests/interop/bench_gossipsub.mjs. */
static uint32_t gs_rand(void)
{
    G.rng ^= G.rng << 13;
    G.rng ^= G.rng >> 17;
    G.rng ^= G.rng << 5;
    return G.rng;
}

static void gs_on_msg(cp2p_pubsub *ps, const cp2p_pubsub_msg *m, void *ud);

/* Unsigned messages need an ID: their first 4 bytes, the message index. */
static int gs_index_id(void *ud, const char *topic, const uint8_t *from, size_t from_len,
                       const uint8_t *seqno, size_t seqno_len, const uint8_t *data, size_t len,
                       uint8_t out[64])
{
    (void)ud, (void)topic, (void)from, (void)from_len, (void)seqno, (void)seqno_len;
    if (len < 4) {
        return CP2P_EINVAL;
    }
    memcpy(out, data, 4);
    return 4;
}

static void gs_start(gs_node *n, bool no_coalesce, bool no_sign)
{
    cp2p_host_config cfg;
    cp2p_pubsub_config pc;
    cp2p_privkey *key;
    cp2p_multiaddr *ma;
    const char *scored[] = {GS_TOPIC};
    memset(n, 0, sizeof(*n));
    if (cp2p_privkey_generate(CP2P_KEY_ED25519, &key) != 0) {
        exit(1);
    }
    cp2p_host_config_default(&cfg);
    cfg.identity = key;
    cfg.reconnect_known_peers = CP2P_HOST_NO_RECONNECT;
    cfg.memnet = G.net;
    const char *where = G.net != NULL ? "/memory/0" : "/ip4/127.0.0.1/tcp/0";
    if (cp2p_host_new(G.loop, &cfg, &n->h) != 0 ||
        cp2p_multiaddr_parse(where, strlen(where), &ma) != 0) {
        exit(1);
    }
    cp2p_privkey_free(key);
    if (cp2p_host_listen(n->h, ma) != 0) {
        fprintf(stderr, "gossipsub: cannot listen\n");
        exit(1);
    }
    cp2p_multiaddr_free(ma);
    cp2p_pubsub_config_default(&pc);
    pc.scored_topics = scored;
    pc.n_scored_topics = 1;
    pc.no_coalesce = no_coalesce;
    if (no_sign) {
        pc.strict_no_sign = true;
        pc.msg_id = gs_index_id;
    }
    n->seen = calloc(G.msgs, 1);
    if (n->seen == NULL || cp2p_pubsub_new(n->h, &pc, &n->ps) != 0 ||
        cp2p_pubsub_subscribe(n->ps, GS_TOPIC, gs_on_msg, n) != 0) {
        fprintf(stderr, "gossipsub: cannot start pubsub\n");
        exit(1);
    }
}

static void gs_on_dial(cp2p_host *h, int status, cp2p_conn *c, void *ud)
{
    (void)h, (void)c, (void)ud;
    if (status != 0) {
        fprintf(stderr, "gossipsub: dial failed: %s\n", cp2p_strerror(status));
        exit(1);
    }
    G.dials_left--;
}

static void gs_dial(int from, int to)
{
    cp2p_multiaddr *ma;
    if (cp2p_host_listen_addr(G.nodes[to].h, 0, true, &ma) != 0 ||
        cp2p_host_dial(G.nodes[from].h, ma, gs_on_dial, NULL) != 0) {
        exit(1);
    }
    cp2p_multiaddr_free(ma);
    G.dials_left++;
}

static void gs_run_while(const uint32_t *v, uint32_t until, double seconds, const char *what)
{
    double end = now_s() + seconds;
    while (*v != until) {
        uv_run(G.loop, UV_RUN_ONCE);
        if (now_s() > end) {
            fprintf(stderr, "gossipsub: %s not reached in %.0f s\n", what, seconds);
            return;
        }
    }
}

static void gs_run_for(double seconds)
{
    double end = now_s() + seconds;
    while (now_s() < end) {
        uv_run(G.loop, UV_RUN_NOWAIT);
        usleep(200);
    }
}

/* Every node sees at least `want` subscribed peers and has a mesh peer, within `seconds`. */
static void gs_wait_mesh_for(size_t want, double seconds)
{
    double end = now_s() + seconds;
    for (;;) {
        bool ok = true;
        for (int i = 0; i < G.n && ok; i++) {
            ok = cp2p_pubsub_topic_peers(G.nodes[i].ps, GS_TOPIC, NULL, 0) >= want &&
                 cp2p_pubsub_mesh_peers(G.nodes[i].ps, GS_TOPIC, NULL, 0) >= 1;
        }
        if (ok) {
            return;
        }
        if (now_s() > end) {
            fprintf(stderr, "gossipsub: meshes did not form\n");
            exit(1);
        }
        uv_run(G.loop, UV_RUN_ONCE);
    }
}

static void gs_wait_mesh(size_t want)
{
    gs_wait_mesh_for(want, 30);
}

static void gs_publish_one(int pub)
{
    uint32_t idx = G.published++;
    memcpy(G.data, &idx, 4);
    G.sent_at[idx] = uv_hrtime();
    if (G.first_pub == 0) {
        G.first_pub = G.sent_at[idx];
    }
    G.nodes[pub].seen[idx] = 1;
    G.nodes[pub].got++;
    G.copies[idx] = 1;
    int rc = cp2p_pubsub_publish(G.nodes[pub].ps, GS_TOPIC, G.data, G.size);
    if (rc != 0) {
        fprintf(stderr, "gossipsub: publish: %s\n", cp2p_strerror(rc));
        exit(1);
    }
}

static void gs_idle(uv_idle_t *h);

static void gs_on_msg(cp2p_pubsub *ps, const cp2p_pubsub_msg *m, void *ud)
{
    gs_node *n = ud;
    uint32_t idx;
    (void)ps;
    if (m->len < 4) {
        return;
    }
    memcpy(&idx, m->data, 4);
    if (idx >= G.published || n->seen[idx]) {
        return;
    }
    n->seen[idx] = 1;
    n->got++;
    uint64_t t = uv_hrtime();
    G.lat[G.nlat++] = t - G.sent_at[idx];
    if (++G.copies[idx] == (uint32_t)G.n) {
        G.complete++;
        G.last_done = t;
        if (G.window > 0 && G.published < G.msgs && !uv_is_active((uv_handle_t *)&G.idle)) {
            uv_idle_start(&G.idle, gs_idle); /* the window has room again */
        }
    }
}

static int gs_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double gs_pct(double p)
{
    return G.nlat ? (double)G.lat[(size_t)((double)(G.nlat - 1) * p)] / 1e6 : 0.0;
}

/* Write system calls of this process so far (Linux /proc/self/io). */
static uint64_t gs_syscw(void)
{
    FILE *f = fopen("/proc/self/io", "r");
    char line[128];
    unsigned long long v = 0;
    while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
        if (sscanf(line, "syscw: %llu", &v) == 1) {
            break;
        }
    }
    if (f != NULL) {
        fclose(f);
    }
    return v;
}

static void gs_setup(int n, uint32_t msgs, size_t size)
{
    G.loop = uv_default_loop();
    G.n = n;
    G.msgs = msgs;
    G.size = size < 4 ? 4 : size;
    G.nodes = calloc((size_t)n, sizeof(*G.nodes));
    G.sent_at = calloc(msgs, sizeof(*G.sent_at));
    G.copies = calloc(msgs, sizeof(*G.copies));
    G.lat = calloc((size_t)msgs * (size_t)n, sizeof(*G.lat));
    G.data = calloc(1, G.size);
    if (G.nodes == NULL || G.sent_at == NULL || G.copies == NULL || G.lat == NULL ||
        G.data == NULL) {
        exit(1);
    }
    memset(G.data + 4, 0xab, G.size - 4);
    uv_idle_init(G.loop, &G.idle);
    uv_timer_init(G.loop, &G.tick);
}

static void gs_teardown(void)
{
    for (int i = 0; i < G.n; i++) {
        cp2p_pubsub_close(G.nodes[i].ps);
        cp2p_host_close(G.nodes[i].h, NULL, NULL);
        free(G.nodes[i].seen);
    }
    uv_close((uv_handle_t *)&G.idle, NULL);
    uv_close((uv_handle_t *)&G.tick, NULL);
    uv_run(G.loop, UV_RUN_DEFAULT);
    free(G.nodes);
    free(G.sent_at);
    free(G.copies);
    free(G.lat);
    free(G.data);
}

/* N nodes in a random sparse topology (each dials 4 random others), one topic, MSGS messages
 * of SIZE bytes from random publishers, one every INTERVAL_US (a schedule kept from the start,
 * not from the previous publish). */
static uint64_t gs_t0;

static void gs_on_tick(uv_timer_t *t)
{
    (void)t;
    uint64_t now = uv_hrtime();
    while (G.published < G.msgs && now >= gs_t0 + (uint64_t)G.published * G.interval_us * 1000) {
        gs_publish_one((int)(gs_rand() % (uint32_t)G.n));
    }
    if (G.published == G.msgs) {
        uv_timer_stop(&G.tick);
    }
}

static void gs_net(int n, uint32_t msgs, size_t size, uint32_t interval_us, bool no_coalesce)
{
    if (n < 5 || n > GS_MAXN || msgs == 0) {
        fprintf(stderr, "gs-net: 5 <= N <= %d, MSGS > 0\n", GS_MAXN);
        exit(2);
    }
    gs_setup(n, msgs, size);
    G.rng = 12345;
    G.interval_us = interval_us;
    for (int i = 0; i < n; i++) {
        gs_start(&G.nodes[i], no_coalesce, false);
    }
    uint8_t *adj = calloc((size_t)n * (size_t)n, 1);
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < 4; k++) {
            int j;
            do {
                j = (int)(gs_rand() % (uint32_t)n);
            } while (j == i || adj[i * n + j]);
            adj[i * n + j] = adj[j * n + i] = 1;
            gs_dial(i, j);
        }
    }
    free(adj);
    double t_setup = now_s();
    gs_run_while(&G.dials_left, 0, 30, "all dials");
    gs_wait_mesh(1);
    gs_run_for(2.5); /* a couple of heartbeats: meshes settle */
    t_setup = now_s() - t_setup;
    gs_t0 = uv_hrtime();
    uv_timer_start(&G.tick, gs_on_tick, 1, 1);
    gs_run_while(&G.complete, msgs, 60, "delivery of every message");
    double took = (double)(uv_hrtime() - gs_t0) / 1e9;
    gs_run_for(1.0); /* late duplicates count too */
    uint64_t copies = 0, delivered = 0, missing = 0, drops = 0;
    for (int i = 0; i < n; i++) {
        cp2p_pubsub_stats st;
        cp2p_pubsub_stats_get(G.nodes[i].ps, &st);
        copies += st.msgs_in;
        delivered += st.msgs_delivered;
        drops += st.outbox_drops;
        missing += msgs - G.nodes[i].got;
    }
    qsort(G.lat, G.nlat, sizeof(*G.lat), gs_cmp_u64);
    printf("{\"bench\":\"cp2p_gossipsub_net\",\"nodes\":%d,\"msgs\":%u,\"size\":%zu,"
           "\"interval_us\":%u,\"coalesce\":%s,\"missing\":%llu,\"p50_ms\":%.2f,\"p99_ms\":%.2f,"
           "\"max_ms\":%.2f,\"dup_factor\":%.2f,\"outbox_drops\":%llu,\"setup_s\":%.1f,"
           "\"seconds\":%.2f}\n",
           n, msgs, G.size, interval_us, no_coalesce ? "false" : "true",
           (unsigned long long)missing, gs_pct(0.5), gs_pct(0.99), gs_pct(1.0),
           delivered ? (double)copies / (double)delivered : 0.0, (unsigned long long)drops,
           t_setup, took);
    gs_teardown();
}

/* Resident set size of process `pid` in KiB (/proc/PID/status): current (VmRSS) or peak
 * (VmHWM); 0 if unknown. */
static uint64_t rss_kib(int pid, bool peak)
{
    char path[64], line[256];
    unsigned long long v = 0;
    snprintf(path, sizeof(path), "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
        if (sscanf(line, peak ? "VmHWM: %llu" : "VmRSS: %llu", &v) == 1) {
            break;
        }
    }
    if (f != NULL) {
        fclose(f);
    }
    return v;
}

/* gs-mem N MSGS: N hosts on the in-memory network (cp2p/memnet.h, no latency), each dialing 4
 * random others, one topic; time until every node has a mesh peer, then MSGS messages of 64
 * bytes from random publishers (one every 10 ms) until every node has every one; the
 * process's RSS before the hosts, after the mesh and at its peak. */
static void gs_mem(int n, uint32_t msgs)
{
    if (n < 5 || n > 100000 || msgs == 0) {
        fprintf(stderr, "gs-mem: 5 <= N <= 100000, MSGS > 0\n");
        exit(2);
    }
    gs_setup(n, msgs, 64);
    if (cp2p_memnet_new(G.loop, 1, &G.net) != 0) {
        exit(1);
    }
    G.rng = 12345;
    G.interval_us = 10000;
    uint64_t rss0 = rss_kib(getpid(), false);
    double t_start = now_s();
    for (int i = 0; i < n; i++) {
        gs_start(&G.nodes[i], false, false);
    }
    double t_hosts = now_s() - t_start;
    uint64_t rss_hosts = rss_kib(getpid(), false);
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < 4; k++) {
            int j;
            do {
                j = (int)(gs_rand() % (uint32_t)n);
            } while (j == i);
            gs_dial(i, j); /* a pair may be dialed twice: the host keeps both connections */
        }
    }
    double t_dial = now_s();
    gs_run_while(&G.dials_left, 0, 600, "all dials");
    t_dial = now_s() - t_dial;
    double t_mesh = now_s();
    gs_wait_mesh_for(1, 600);
    t_mesh = now_s() - t_mesh;
    uint64_t rss_mesh = rss_kib(getpid(), false);
    gs_t0 = uv_hrtime();
    uv_timer_start(&G.tick, gs_on_tick, 1, 1);
    gs_run_while(&G.complete, msgs, 600, "delivery of every message");
    double took = (double)(uv_hrtime() - gs_t0) / 1e9;
    uint64_t missing = 0;
    for (int i = 0; i < n; i++) {
        missing += msgs - G.nodes[i].got;
    }
    cp2p_memnet_stats st;
    cp2p_memnet_stats_get(G.net, &st);
    qsort(G.lat, G.nlat, sizeof(*G.lat), gs_cmp_u64);
    printf("{\"bench\":\"cp2p_gossipsub_memory\",\"nodes\":%d,\"msgs\":%u,\"missing\":%llu,"
           "\"hosts_s\":%.2f,\"dial_s\":%.2f,\"mesh_s\":%.2f,\"deliver_s\":%.2f,"
           "\"p50_ms\":%.2f,\"p99_ms\":%.2f,\"conns\":%llu,\"bytes\":%llu,"
           "\"rss_before_mib\":%.1f,\"rss_hosts_mib\":%.1f,\"rss_mesh_mib\":%.1f,"
           "\"rss_peak_mib\":%.1f,\"rss_per_host_kib\":%.1f}\n",
           n, msgs, (unsigned long long)missing, t_hosts, t_dial, t_mesh, took, gs_pct(0.5),
           gs_pct(0.99), (unsigned long long)st.conns, (unsigned long long)st.bytes_sent,
           (double)rss0 / 1024, (double)rss_hosts / 1024, (double)rss_mesh / 1024,
           (double)rss_kib(getpid(), true) / 1024,
           (double)(rss_mesh - rss0) / n);
    gs_teardown();
    if (cp2p_memnet_close(G.net, NULL, NULL) != 0) {
        fprintf(stderr, "gs-mem: a host still uses the network\n");
        exit(1);
    }
    uv_run(G.loop, UV_RUN_DEFAULT);
}

/* One publisher and 10 subscribers (each connected to the publisher only): MSGS messages of
 * SIZE bytes published as fast as the loop turns, at most WINDOW not yet delivered everywhere
 * (the router's per-peer outbox holds 1024), until every subscriber has every message. */
static void gs_idle(uv_idle_t *h)
{
    while (G.published < G.msgs && G.published - G.complete < G.window) {
        gs_publish_one(0);
    }
    uv_idle_stop(h); /* restarted by a delivery that frees room in the window */
}

static void gs_rate(uint32_t msgs, size_t size, bool no_coalesce, bool no_sign, uint32_t window)
{
    const int n = 11;
    if (msgs == 0 || window == 0) {
        exit(2);
    }
    gs_setup(n, msgs, size);
    G.window = window;
    for (int i = 0; i < n; i++) {
        gs_start(&G.nodes[i], no_coalesce, no_sign);
    }
    for (int i = 1; i < n; i++) {
        gs_dial(i, 0);
    }
    gs_run_while(&G.dials_left, 0, 30, "all dials");
    gs_wait_mesh(1);
    double end = now_s() + 10;
    while (cp2p_pubsub_mesh_peers(G.nodes[0].ps, GS_TOPIC, NULL, 0) < (size_t)n - 1 &&
           now_s() < end) {
        uv_run(G.loop, UV_RUN_ONCE);
    }
    gs_run_for(0.5);
    cp2p_pubsub_stats st0, st1;
    cp2p_pubsub_stats_get(G.nodes[0].ps, &st0);
    uint64_t w0 = gs_syscw();
    uv_idle_start(&G.idle, gs_idle);
    gs_run_while(&G.complete, msgs, 60, "delivery of every message");
    uint64_t w1 = gs_syscw();
    cp2p_pubsub_stats_get(G.nodes[0].ps, &st1);
    double took = (double)(G.last_done - G.first_pub) / 1e9;
    uint64_t drops = 0;
    for (int i = 0; i < n; i++) {
        cp2p_pubsub_stats st;
        cp2p_pubsub_stats_get(G.nodes[i].ps, &st);
        drops += st.outbox_drops;
    }
    qsort(G.lat, G.nlat, sizeof(*G.lat), gs_cmp_u64);
    printf("{\"bench\":\"cp2p_gossipsub_rate\",\"subscribers\":%d,\"msgs\":%u,\"size\":%zu,"
           "\"window\":%u,\"signed\":%s,\"coalesce\":%s,\"complete\":%u,\"seconds\":%.3f,"
           "\"per_s\":%.0f,\"frames_per_msg\":%.3f,\"write_syscalls_per_msg\":%.3f,"
           "\"p50_ms\":%.2f,\"p99_ms\":%.2f,\"outbox_drops\":%llu}\n",
           n - 1, msgs, G.size, window, no_sign ? "false" : "true",
           no_coalesce ? "false" : "true", G.complete, took, (double)G.complete / took,
           (double)(st1.frames_out - st0.frames_out) / msgs, (double)(w1 - w0) / msgs,
           gs_pct(0.5), gs_pct(0.99), (unsigned long long)drops);
    gs_teardown();
}


/* ---- connections at scale (issue 12): memory per idle connection, liveness under N ---- */

#define CN_MAX 65536

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        return;
    }
    rlim_t want = CN_MAX + 1024;
    struct rlimit nr = {.rlim_cur = want, .rlim_max = rl.rlim_max > want ? rl.rlim_max : want};
    if (setrlimit(RLIMIT_NOFILE, &nr) != 0) { /* not root: as far as the hard limit goes */
        nr = (struct rlimit){.rlim_cur = rl.rlim_max, .rlim_max = rl.rlim_max};
        (void)setrlimit(RLIMIT_NOFILE, &nr);
    }
}

/* A host for many connections to and from one peer: every limit that would refuse them is
 * raised here, for the bench only (the defaults stay those of cp2p_host_config_default). */
static void cn_tweak(cp2p_host_config *cfg)
{
    cfg->max_conns = CN_MAX;
    cfg->max_pending_inbound = CN_MAX;
    cfg->conn_low_water = CN_MAX;
    cfg->conn_high_water = CN_MAX;
    cfg->max_conns_per_ip = UINT32_MAX;
    cfg->inbound_per_sec = 1000000;
    cfg->inbound_burst = 1000000;
    cfg->max_conns_per_peer = UINT32_MAX;
    cfg->reconnect_known_peers = CP2P_HOST_NO_RECONNECT;
}

static cp2p_host *cn_new_host(uv_loop_t *loop)
{
    return bench_host(loop, cn_tweak);
}

static void cn_on_usr1(uv_signal_t *s, int sig)
{
    (void)s;
    (void)sig;
    malloc_trim(0);
}

static void conn_server(int port)
{
    uv_loop_t *loop = uv_default_loop();
    uv_signal_t sig;
    raise_nofile();
    cp2p_host *h = cn_new_host(loop);
    if (cp2p_reqresp_register(h, "/bench/echo", NULL, rr_echo, NULL) != 0) {
        exit(1);
    }
    (void)uv_signal_init(loop, &sig);
    (void)uv_signal_start(&sig, cn_on_usr1, SIGUSR1);
    listen_and_print(h, port, "conn-server");
    uv_run(loop, UV_RUN_DEFAULT); /* until killed */
}

static struct {
    uv_loop_t *loop;
    cp2p_host *h;
    cp2p_multiaddr *ma;
    cp2p_conn **conns;
    size_t nconns, target, dialing, failed;
    double *rtt_ms;      /* per ping of the round in progress */
    double *sent_at;
    size_t pings_sent, pings_done, pings_failed, per_tick;
    uv_timer_t tick;
} CN;

static void cn_fire_flag(uv_timer_t *t)
{
    *(bool *)t->data = true;
}

static void cn_on_dial(cp2p_host *h, int status, cp2p_conn *c, void *ud)
{
    (void)h;
    (void)ud;
    CN.dialing--;
    if (status != 0) {
        CN.failed++;
        return;
    }
    CN.conns[CN.nconns++] = c;
}

/* Keep up to 64 dials in flight until `target` connections are open. */
static void cn_ramp(size_t target)
{
    CN.target = target;
    while (CN.nconns < target) {
        while (CN.dialing < 64 && CN.nconns + CN.dialing < target) {
            if (cp2p_host_dial(CN.h, CN.ma, cn_on_dial, NULL) != 0) {
                fprintf(stderr, "conns: cannot dial\n");
                exit(1);
            }
            CN.dialing++;
        }
        uv_run(CN.loop, UV_RUN_ONCE);
        if (CN.failed > 100) {
            fprintf(stderr, "conns: %zu dials failed at %zu connections\n", CN.failed,
                    CN.nconns);
            exit(1);
        }
    }
}

/* Run the loop for `ms` (identify, keepalives and whatever an idle connection does). */
static void cn_idle(uint64_t ms)
{
    uv_timer_t t;
    bool fired = false;
    (void)uv_timer_init(CN.loop, &t);
    t.data = &fired;
    (void)uv_timer_start(&t, cn_fire_flag, ms, 0);
    while (!fired) {
        uv_run(CN.loop, UV_RUN_ONCE);
    }
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(CN.loop, UV_RUN_NOWAIT);
}

static void cn_on_ping(cp2p_conn *c, int status, uint64_t rtt_ns, void *ud)
{
    size_t i = (size_t)(uintptr_t)ud;
    (void)c;
    (void)rtt_ns;
    CN.pings_done++;
    if (status != 0) {
        CN.pings_failed++;
        CN.rtt_ms[i] = 1e9;
        return;
    }
    CN.rtt_ms[i] = (now_s() - CN.sent_at[i]) * 1000.0;
}

/* After the last step: one 64 KiB echo request on every connection, 64 in flight. */
#define CN_TRAFFIC (64 * 1024)
static uint8_t cn_payload[CN_TRAFFIC];
static size_t cn_rr_next, cn_rr_done, cn_rr_failed, cn_rr_out;

static void cn_rr_send(void);

static void cn_on_rr(cp2p_conn *c, int status, const uint8_t *resp, size_t len, void *ud)
{
    (void)c;
    (void)ud;
    cn_rr_done++;
    cn_rr_out--;
    cn_rr_failed += status != 0 || len != CN_TRAFFIC || memcmp(resp, cn_payload, len) != 0;
    cn_rr_send();
}

static void cn_rr_send(void)
{
    while (cn_rr_out < 64 && cn_rr_next < CN.nconns) {
        size_t i = cn_rr_next++;
        if (cp2p_reqresp_request(CN.conns[i], "/bench/echo", NULL, cn_payload, CN_TRAFFIC,
                                 cn_on_rr, NULL) != 0) {
            cn_rr_done++;
            cn_rr_failed++;
            continue;
        }
        cn_rr_out++;
    }
}

static void cn_traffic(void)
{
    randombytes_buf(cn_payload, sizeof(cn_payload));
    cn_rr_next = cn_rr_done = cn_rr_failed = cn_rr_out = 0;
    cn_rr_send();
    while (cn_rr_done < CN.nconns) {
        uv_run(CN.loop, UV_RUN_ONCE);
    }
}

static void cn_send_pings(size_t k)
{
    for (size_t j = 0; j < k && CN.pings_sent < CN.nconns; j++) {
        size_t i = CN.pings_sent++;
        CN.sent_at[i] = now_s();
        if (cp2p_ping(CN.conns[i], 10000, cn_on_ping, (void *)(uintptr_t)i) != 0) {
            CN.pings_done++;
            CN.pings_failed++;
            CN.rtt_ms[i] = 1e9;
        }
    }
}

static void cn_on_tick(uv_timer_t *t)
{
    cn_send_pings(CN.per_tick);
    if (CN.pings_sent == CN.nconns) {
        uv_timer_stop(t);
    }
}

static int cn_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* One ping on every connection: spread over 1 s (1 ms ticks), or all at once. */
static void cn_ping_round(bool spread, double *p50, double *p99, double *max, size_t *late)
{
    CN.pings_sent = CN.pings_done = CN.pings_failed = 0;
    if (spread) {
        CN.per_tick = (CN.nconns + 999) / 1000;
        (void)uv_timer_start(&CN.tick, cn_on_tick, 1, 1);
    } else {
        cn_send_pings(CN.nconns);
    }
    while (CN.pings_done < CN.nconns) {
        uv_run(CN.loop, UV_RUN_ONCE);
    }
    uv_timer_stop(&CN.tick);
    qsort(CN.rtt_ms, CN.nconns, sizeof(double), cn_cmp_double);
    *p50 = CN.rtt_ms[CN.nconns / 2];
    *p99 = CN.rtt_ms[(CN.nconns * 99) / 100];
    *max = CN.rtt_ms[CN.nconns - 1];
    *late = 0;
    for (size_t i = 0; i < CN.nconns; i++) {
        *late += CN.rtt_ms[i] > 1000.0;
    }
}

/* RSS of both processes once idle, after each has returned freed memory (malloc_trim). */
static void cn_rss(int server_pid, long *mine, long *theirs, size_t *heap)
{
    malloc_trim(0);
    *heap = mallinfo2().uordblks;
    (void)kill(server_pid, SIGUSR1);
    cn_idle(300);
    *mine = (long)rss_kib(getpid(), false);
    *theirs = (long)rss_kib(server_pid, false);
}

static void conns_bench(const char *addr, int server_pid, const char *steps)
{
    long base_mine, base_theirs;
    size_t base_heap, heap;
    raise_nofile();
    CN.loop = uv_default_loop();
    CN.h = cn_new_host(CN.loop);
    CN.conns = calloc(CN_MAX, sizeof(*CN.conns));
    CN.rtt_ms = calloc(CN_MAX, sizeof(double));
    CN.sent_at = calloc(CN_MAX, sizeof(double));
    if (CN.conns == NULL || CN.rtt_ms == NULL || CN.sent_at == NULL ||
        cp2p_multiaddr_parse(addr, strlen(addr), &CN.ma) != 0) {
        fprintf(stderr, "conns: bad arguments or address\n");
        exit(1);
    }
    (void)uv_timer_init(CN.loop, &CN.tick);
    /* One connection first and closed again: what the peer costs once (peerstore entry,
     * first-use tables) is in the baseline, not in the per-connection figure. */
    cn_ramp(1);
    cn_idle(500);
    cp2p_conn_close(CN.conns[0]);
    CN.nconns = 0;
    cn_idle(500);
    cn_rss(server_pid, &base_mine, &base_theirs, &base_heap);
    for (const char *p = steps; *p != '\0';) {
        char *end;
        size_t n = (size_t)strtoull(p, &end, 10);
        p = *end == ',' ? end + 1 : end;
        if (n == 0 || n > CN_MAX - 1024) {
            fprintf(stderr, "conns: bad step\n");
            exit(1);
        }
        double t0 = now_s();
        cn_ramp(n);
        double ramp_s = now_s() - t0;
        cn_idle(2000); /* identify done, connections idle */
        long mine, theirs;
        cn_rss(server_pid, &mine, &theirs, &heap);
        double sp50, sp99, smax, bp50, bp99, bmax;
        size_t slate, blate;
        size_t sfail, bfail;
        cn_ping_round(true, &sp50, &sp99, &smax, &slate);
        sfail = CN.pings_failed;
        cn_ping_round(false, &bp50, &bp99, &bmax, &blate);
        bfail = CN.pings_failed;
        printf("{\"bench\":\"cp2p_conns\",\"conns\":%zu,\"ramp_s\":%.2f,"
               "\"server_kib_per_conn\":%.2f,\"client_kib_per_conn\":%.2f,"
               "\"client_heap_kib_per_conn\":%.2f,"
               "\"server_rss_kib\":%ld,\"client_rss_kib\":%ld,"
               "\"spread_p50_ms\":%.3f,\"spread_p99_ms\":%.3f,\"spread_max_ms\":%.3f,"
               "\"spread_over_1s\":%zu,\"spread_failed\":%zu,"
               "\"burst_p50_ms\":%.3f,\"burst_p99_ms\":%.3f,\"burst_max_ms\":%.3f,"
               "\"burst_over_1s\":%zu,\"burst_failed\":%zu}\n",
               n, ramp_s, (double)(theirs - base_theirs) / (double)n,
               (double)(mine - base_mine) / (double)n,
               ((double)heap - (double)base_heap) / 1024.0 / (double)n, theirs, mine, sp50, sp99, smax, slate,
               sfail, bp50, bp99, bmax, blate, bfail);
        fflush(stdout);
    }
    /* What the connections keep once they have carried some traffic: buffers grown for it
     * and not given back stay resident. */
    size_t n = CN.nconns;
    cn_traffic();
    /* 2 s after the traffic, then once a keepalive tick (15 s) has passed on every
     * connection, which gives back the empty buffers. */
    for (int pass = 0; pass < 2; pass++) {
        cn_idle(pass == 0 ? 2000 : 15000);
        long mine, theirs;
        cn_rss(server_pid, &mine, &theirs, &heap);
        printf("{\"bench\":\"cp2p_conns_after_traffic\",\"conns\":%zu,\"request_bytes\":%d,"
               "\"failed\":%zu,\"idle_s\":%d,\"server_kib_per_conn\":%.2f,"
               "\"client_kib_per_conn\":%.2f,\"client_heap_kib_per_conn\":%.2f}\n",
               n, CN_TRAFFIC, cn_rr_failed, pass == 0 ? 2 : 17,
               (double)(theirs - base_theirs) / (double)n, (double)(mine - base_mine) / (double)n,
               ((double)heap - (double)base_heap) / 1024.0 / (double)n);
        fflush(stdout);
    }
    uv_close((uv_handle_t *)&CN.tick, NULL);
    cp2p_multiaddr_free(CN.ma);
    _exit(0); /* the kernel closes 10,000 sockets faster than a graceful host close */
}

/* ---- stream scheduling (issue 12): a small message beside a bulk stream, and two bulk
 * streams of priorities 1 and 4 sharing one connection ---- */

#define SC_CHUNK (256 * 1024)
#define SC_BACKLOG (2 * 1024 * 1024)
#define SC_MSG 64
#define SC_MAXLAT 100000

static void sc_sink_read(cp2p_stream *s, ptrdiff_t n, const uint8_t *data, void *ud)
{
    (void)data;
    (void)ud;
    if (n < 0) {
        cp2p_stream_close(s);
    }
}

static void sc_sink(cp2p_stream *s, void *ud)
{
    (void)ud;
    if (cp2p_stream_read_start(s, sc_sink_read, NULL) != 0) {
        cp2p_stream_reset(s);
    }
}

static void sc_echo_read(cp2p_stream *s, ptrdiff_t n, const uint8_t *data, void *ud)
{
    (void)ud;
    if (n < 0) {
        cp2p_stream_close(s);
    } else if (cp2p_stream_write(s, data, (size_t)n, NULL, NULL) != 0) {
        cp2p_stream_reset(s);
    }
}

static void sc_echo(cp2p_stream *s, void *ud)
{
    (void)ud;
    if (cp2p_stream_read_start(s, sc_echo_read, NULL) != 0) {
        cp2p_stream_reset(s);
    }
}

static cp2p_host *sc_new_host(uv_loop_t *loop, uint32_t lowat, uint32_t max_window,
                              size_t outbuf, size_t inflight)
{
    cp2p_host_config cfg;
    cp2p_host_config_default(&cfg);
    cfg.reconnect_known_peers = CP2P_HOST_NO_RECONNECT;
    cfg.tcp_notsent_lowat = lowat;
    cfg.conn_out_buffered = outbuf;
    cfg.conn_write_inflight = inflight;
    /* CP2P_CONN_QUEUE_US=fixed: the caps below the scheduler do not follow the send rate. */
    const char *q = getenv("CP2P_CONN_QUEUE_US");
    if (q != NULL && strcmp(q, "fixed") == 0) {
        cfg.conn_queue_us = CP2P_HOST_CONN_QUEUE_FIXED;
    }
    if (max_window != 0) {
        cfg.yamux_max_window = max_window;
    }
    return bench_host_cfg(loop, &cfg);
}

static void sched_server(int port, uint32_t lowat, uint32_t max_window)
{
    uv_loop_t *loop = uv_default_loop();
    cp2p_host *h = sc_new_host(loop, lowat, max_window, 0, 0);
    if (cp2p_host_set_handler(h, "/bench/sched/sink", sc_sink, NULL) != 0 ||
        cp2p_host_set_handler(h, "/bench/sched/echo", sc_echo, NULL) != 0) {
        exit(1);
    }
    listen_and_print(h, port, "sched-server");
    uv_run(loop, UV_RUN_DEFAULT); /* until killed */
}

enum { SC_WARMUP, SC_LOADED, SC_DRAIN, SC_IDLE, SC_DONE };

typedef struct {
    cp2p_host *h;
    cp2p_conn *c;
    bool share; /* share mode: two bulk streams; else bulk + echo */
    double seconds;
    uint8_t chunk[SC_CHUNK];
    cp2p_stream *bulk[2];
    uint64_t written[2], mark[2], underruns;
    int nbulk, opened, phase;
    bool feeding;
    cp2p_stream *echo;
    uv_timer_t tick, phase_timer;
    double sent_at, phase_t0, loaded_s;
    size_t got;
    bool waiting;
    double *lat[2]; /* loaded, idle (µs) */
    size_t nlat[2];
} sc_client;

static sc_client SC;

static uint64_t sc_taken(int i)
{
    return SC.written[i] - cp2p_stream_write_queued(SC.bulk[i]);
}

static void sc_feed(int i);

static void sc_bulk_written(cp2p_stream *s, int status, void *ud)
{
    (void)s;
    if (status == 0 && SC.feeding) {
        sc_feed((int)(intptr_t)ud);
    }
}

static void sc_feed(int i)
{
    if (SC.bulk[i] == NULL) {
        return;
    }
    if (cp2p_stream_write_queued(SC.bulk[i]) == 0 && SC.phase == SC_LOADED) {
        SC.underruns++;
    }
    while (cp2p_stream_write_queued(SC.bulk[i]) < SC_BACKLOG) {
        if (cp2p_stream_write(SC.bulk[i], SC.chunk, SC_CHUNK, sc_bulk_written,
                              (void *)(intptr_t)i) != 0) {
            return;
        }
        SC.written[i] += SC_CHUNK;
    }
}

static int sc_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double sc_pct(int k, double p)
{
    if (SC.nlat[k] == 0) {
        return 0;
    }
    qsort(SC.lat[k], SC.nlat[k], sizeof(double), sc_cmp);
    return SC.lat[k][(size_t)(p * (double)(SC.nlat[k] - 1))];
}

static void sc_closed(cp2p_host *h, void *ud)
{
    (void)h;
    (void)ud;
}

static void sc_timer_closed(uv_handle_t *t)
{
    (void)t;
}

static void sc_next_phase(uv_timer_t *t)
{
    (void)t;
    double now = now_s();
    switch (SC.phase) {
    case SC_WARMUP:
        SC.phase = SC_LOADED;
        SC.phase_t0 = now;
        for (int i = 0; i < SC.nbulk; i++) {
            SC.mark[i] = sc_taken(i);
        }
        uv_timer_start(&SC.phase_timer, sc_next_phase, (uint64_t)(SC.seconds * 1000), 0);
        return;
    case SC_LOADED:
        SC.loaded_s = now - SC.phase_t0;
        for (int i = 0; i < SC.nbulk; i++) {
            SC.mark[i] = sc_taken(i) - SC.mark[i];
        }
        SC.feeding = false;
        if (SC.share) {
            SC.phase = SC_DONE;
            break;
        }
        cp2p_stream_reset(SC.bulk[0]);
        SC.bulk[0] = NULL;
        SC.phase = SC_DRAIN;
        uv_timer_start(&SC.phase_timer, sc_next_phase, 300, 0);
        return;
    case SC_DRAIN:
        SC.phase = SC_IDLE;
        uv_timer_start(&SC.phase_timer, sc_next_phase, (uint64_t)(SC.seconds * 1000), 0);
        return;
    default:
        SC.phase = SC_DONE;
        break;
    }
    uv_timer_stop(&SC.tick);
    uv_close((uv_handle_t *)&SC.tick, sc_timer_closed);
    uv_close((uv_handle_t *)&SC.phase_timer, sc_timer_closed);
    for (int i = 0; i < SC.nbulk; i++) {
        if (SC.bulk[i] != NULL) {
            cp2p_stream_reset(SC.bulk[i]);
        }
    }
    if (SC.echo != NULL) {
        cp2p_stream_reset(SC.echo);
    }
    cp2p_host_close(SC.h, sc_closed, NULL);
}

static void sc_tick(uv_timer_t *t)
{
    (void)t;
    if (SC.waiting || SC.echo == NULL || (SC.phase != SC_LOADED && SC.phase != SC_IDLE)) {
        return;
    }
    uint8_t msg[SC_MSG] = {0};
    if (cp2p_stream_write(SC.echo, msg, sizeof(msg), NULL, NULL) == 0) {
        SC.waiting = true;
        SC.got = 0;
        SC.sent_at = now_s();
    }
}

static void sc_echo_back(cp2p_stream *s, ptrdiff_t n, const uint8_t *data, void *ud)
{
    (void)s;
    (void)data;
    (void)ud;
    if (n < 0) {
        return;
    }
    SC.got += (size_t)n;
    if (SC.waiting && SC.got >= SC_MSG) {
        int k = SC.phase == SC_IDLE ? 1 : 0;
        if ((SC.phase == SC_LOADED || SC.phase == SC_IDLE) && SC.nlat[k] < SC_MAXLAT) {
            SC.lat[k][SC.nlat[k]++] = (now_s() - SC.sent_at) * 1e6;
        }
        SC.waiting = false;
        SC.got -= SC_MSG;
    }
}

static void sc_all_open(void)
{
    SC.feeding = true;
    for (int i = 0; i < SC.nbulk; i++) {
        sc_feed(i);
    }
    uv_timer_init(uv_default_loop(), &SC.tick);
    uv_timer_init(uv_default_loop(), &SC.phase_timer);
    uv_timer_start(&SC.tick, sc_tick, 1, 1);
    uv_timer_start(&SC.phase_timer, sc_next_phase, 500, 0);
}

static void sc_opened(cp2p_stream *s, int status, void *ud)
{
    if (status != 0) {
        fprintf(stderr, "sched: open failed: %s\n", cp2p_strerror(status));
        exit(1);
    }
    int i = (int)(intptr_t)ud;
    if (i < 0) {
        SC.echo = s;
        if (cp2p_stream_read_start(s, sc_echo_back, NULL) != 0) {
            exit(1);
        }
    } else {
        SC.bulk[i] = s;
        if (SC.share && cp2p_stream_set_priority(s, i == 0 ? 1 : 4) != 0) {
            exit(1);
        }
    }
    if (++SC.opened == (SC.share ? 2 : 2)) {
        sc_all_open();
    }
}

static void sc_dialed(cp2p_host *h, int status, cp2p_conn *c, void *ud)
{
    static const char *const sink[] = {"/bench/sched/sink"};
    static const char *const echo[] = {"/bench/sched/echo"};
    (void)h;
    (void)ud;
    if (status != 0) {
        fprintf(stderr, "sched: dial failed: %s\n", cp2p_strerror(status));
        exit(1);
    }
    SC.c = c;
    SC.nbulk = SC.share ? 2 : 1;
    for (int i = 0; i < SC.nbulk; i++) {
        if (cp2p_conn_open_stream(c, sink, 1, sc_opened, (void *)(intptr_t)i) != 0) {
            exit(1);
        }
    }
    if (!SC.share && cp2p_conn_open_stream(c, echo, 1, sc_opened, (void *)(intptr_t)-1) != 0) {
        exit(1);
    }
}

/* sched ADDR latency|share SECONDS [LOWAT OUTBUF INFLIGHT]: LOWAT is the sender's
 * TCP_NOTSENT_LOWAT (0 = default, "off"), OUTBUF yamux's max_out_buffered and INFLIGHT the
 * connection's uv_write cap (0 = defaults). */
static void sched_bench(const char *addr, const char *mode, double seconds, uint32_t lowat,
                        size_t outbuf, size_t inflight)
{
    uv_loop_t *loop = uv_default_loop();
    cp2p_multiaddr *ma;
    SC.share = strcmp(mode, "share") == 0;
    SC.seconds = seconds;
    randombytes_buf(SC.chunk, sizeof(SC.chunk));
    SC.lat[0] = malloc(SC_MAXLAT * sizeof(double));
    SC.lat[1] = malloc(SC_MAXLAT * sizeof(double));
    SC.h = sc_new_host(loop, lowat, 0, outbuf, inflight);
    if (cp2p_multiaddr_parse(addr, strlen(addr), &ma) != 0 ||
        cp2p_host_dial(SC.h, ma, sc_dialed, NULL) != 0) {
        fprintf(stderr, "sched: bad address\n");
        exit(1);
    }
    cp2p_multiaddr_free(ma);
    uv_run(loop, UV_RUN_DEFAULT);
    if (SC.share) {
        double lo = (double)SC.mark[0], hi = (double)SC.mark[1];
        printf("{\"bench\":\"sched_share\",\"seconds\":%.2f,\"mb_per_s\":%.1f,"
               "\"prio1_bytes\":%.0f,\"prio4_bytes\":%.0f,\"ratio\":%.3f,\"underruns\":%llu}\n",
               SC.loaded_s, (lo + hi) / SC.loaded_s / 1e6, lo, hi, hi / lo,
               (unsigned long long)SC.underruns);
    } else {
        double mbs = (double)SC.mark[0] / SC.loaded_s / 1e6;
        double frame_us = 65536.0 / (mbs * 1e6) * 1e6;
        double i50 = sc_pct(1, 0.5), i99 = sc_pct(1, 0.99);
        double l50 = sc_pct(0, 0.5), l99 = sc_pct(0, 0.99);
        printf("{\"bench\":\"sched_latency\",\"bulk_mb_per_s\":%.1f,\"frame_us\":%.1f,"
               "\"idle_n\":%zu,\"idle_p50_us\":%.1f,\"idle_p99_us\":%.1f,\"loaded_n\":%zu,"
               "\"loaded_p50_us\":%.1f,\"loaded_p99_us\":%.1f,\"target_us\":%.1f,"
               "\"ratio_p50\":%.2f,\"underruns\":%llu}\n",
               mbs, frame_us, SC.nlat[1], i50, i99, SC.nlat[0], l50, l99, 2 * i50 + frame_us,
               l50 / i50, (unsigned long long)SC.underruns);
    }
    free(SC.lat[0]);
    free(SC.lat[1]);
    (void)!uv_loop_close(loop);
}

static uint32_t sc_lowat_arg(const char *a)
{
    return strcmp(a, "off") == 0 ? CP2P_HOST_NOTSENT_LOWAT_OFF : (uint32_t)strtoul(a, NULL, 10);
}


int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    if (sodium_init() < 0 || argc < 2) {
        fprintf(stderr, "usage: see bench/bench_tools.c\n");
        return 2;
    }
    const char *m = argv[1];
    int port = argc > 2 ? (int)strtol(argv[2], NULL, 10) : 0;
    if (strcmp(m, "raw-sink") == 0) {
        raw_sink(port);
    } else if (strcmp(m, "raw-send") == 0 && argc > 3) {
        raw_send(port, strtoull(argv[3], NULL, 10));
    } else if (strcmp(m, "enc-sink") == 0) {
        enc_sink(port);
    } else if (strcmp(m, "enc-send") == 0 && argc > 3) {
        enc_send(port, strtoull(argv[3], NULL, 10));
    } else if (strcmp(m, "echo-server") == 0) {
        echo_server(port);
    } else if (strcmp(m, "rtt") == 0 && argc > 3) {
        rtt(port, (int)strtol(argv[3], NULL, 10), argc > 4 ? (int)strtol(argv[4], NULL, 10) : 0);
    } else if (strcmp(m, "rr-server") == 0 && argc > 3) {
        rr_server(port, argv[3]);
    } else if (strcmp(m, "rr") == 0 && argc > 6) {
        rr_bench(argv[2], argv[3], (int)strtol(argv[4], NULL, 10), strtod(argv[5], NULL),
                 (size_t)strtoull(argv[6], NULL, 10), argc > 7 && strcmp(argv[7], "eager") == 0);
    } else if (strcmp(m, "gs-net") == 0 && argc > 5) {
        gs_net((int)strtol(argv[2], NULL, 10), (uint32_t)strtoul(argv[3], NULL, 10),
               (size_t)strtoull(argv[4], NULL, 10), (uint32_t)strtoul(argv[5], NULL, 10),
               argc > 6 && strcmp(argv[6], "no-coalesce") == 0);
    } else if (strcmp(m, "gs-mem") == 0 && argc > 3) {
        gs_mem((int)strtol(argv[2], NULL, 10), (uint32_t)strtoul(argv[3], NULL, 10));
    } else if (strcmp(m, "gs-rate") == 0 && argc > 4) {
        gs_rate((uint32_t)strtoul(argv[2], NULL, 10), (size_t)strtoull(argv[3], NULL, 10),
                strcmp(argv[4], "no-coalesce") == 0, argc > 5 && strcmp(argv[5], "unsigned") == 0,
                argc > 6 ? (uint32_t)strtoul(argv[6], NULL, 10) : 1000);
    } else if (strcmp(m, "conn-server") == 0) {
        conn_server(port);
    } else if (strcmp(m, "conns") == 0 && argc > 4) {
        conns_bench(argv[2], (int)strtol(argv[3], NULL, 10), argv[4]);
    } else if (strcmp(m, "sched-server") == 0 && argc > 2) {
        sched_server(port, argc > 3 ? sc_lowat_arg(argv[3]) : 0,
                     argc > 4 ? (uint32_t)strtoul(argv[4], NULL, 10) : 0);
    } else if (strcmp(m, "sched") == 0 && argc > 4) {
        sched_bench(argv[2], argv[3], strtod(argv[4], NULL), argc > 5 ? sc_lowat_arg(argv[5]) : 0,
                    argc > 6 ? (size_t)strtoull(argv[6], NULL, 10) : 0,
                    argc > 7 ? (size_t)strtoull(argv[7], NULL, 10) : 0);
    } else if (strcmp(m, "handshakes") == 0 && argc > 2) {
        handshakes((int)strtol(argv[2], NULL, 10));
    } else {
        fprintf(stderr, "bench_tools: unknown mode\n");
        return 2;
    }
    return 0;
}
