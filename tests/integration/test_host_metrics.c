/* The host's traffic metrics between two hosts over loopback: stream bytes per protocol, the
 * host-wide yamux totals that survive a connection's close, and Noise handshake outcomes, read
 * both from the host's internal stats and from the registry (cp2p_host_metrics_update, then
 * cp2p_metrics_render). */
#include <stdlib.h>
#include <string.h>

#include "integration/harness.h"
#include <cp2p/host_info.h>
#include <cp2p/metrics.h>
#include "swarm/swarm.h"

#define PROTO "/test/metrics/sink/1.0.0"
#define SEND_LEN 300000 /* dialer -> listener, in CHUNK pieces */
#define CHUNK 10000
#define REPLY_LEN 4321 /* listener -> dialer after the dialer's FIN */

typedef struct {
    int opened, closed;
} conn_events;

static void on_event(cp2p_host *h, const cp2p_event *ev, void *ud)
{
    conn_events *e = ud;
    (void)h;
    if (ev->type == CP2P_EVENT_CONN_OPENED) {
        e->opened++;
    } else if (ev->type == CP2P_EVENT_CONN_CLOSED) {
        e->closed++;
    }
}

/* ---- the test protocol: the listener counts what it reads, answers REPLY_LEN bytes at EOF ---- */

static uint8_t reply[REPLY_LEN];
static size_t sink_got;

static void sink_read(cp2p_stream *s, ptrdiff_t n, const uint8_t *data, void *ud)
{
    (void)data;
    (void)ud;
    if (n == CP2P_EOF) {
        assert_int_equal(cp2p_stream_write(s, reply, sizeof(reply), NULL, NULL), 0);
        cp2p_stream_close(s); /* flushes, then FIN */
    } else if (n < 0) {
        cp2p_stream_reset(s);
    } else {
        sink_got += (size_t)n;
    }
}

static void sink_handler(cp2p_stream *s, void *ud)
{
    (void)ud;
    assert_int_equal(cp2p_stream_read_start(s, sink_read, NULL), 0);
}

typedef struct {
    size_t got;
    bool done;
} client;

static void client_read(cp2p_stream *s, ptrdiff_t n, const uint8_t *data, void *ud)
{
    client *cl = ud;
    (void)data;
    if (n >= 0) {
        cl->got += (size_t)n;
        return;
    }
    assert_int_equal(n, CP2P_EOF);
    cp2p_stream_close(s);
    cl->done = true;
}

static void client_open(cp2p_stream *s, int status, void *ud)
{
    static uint8_t chunk[CHUNK];
    assert_int_equal(status, 0);
    assert_string_equal(cp2p_stream_protocol(s), PROTO);
    for (size_t sent = 0; sent < SEND_LEN; sent += CHUNK) {
        assert_int_equal(cp2p_stream_write(s, chunk, CHUNK, NULL, NULL), 0);
    }
    assert_int_equal(cp2p_stream_close_write(s), 0);
    assert_int_equal(cp2p_stream_read_start(s, client_read, ud), 0);
}

/* ---- reading the registry ---- */

typedef struct {
    cp2p_metrics *reg;
    cp2p_host_metrics *state;
    cp2p_buf text;
} scrape;

static void scrape_init(scrape *sc)
{
    memset(sc, 0, sizeof(*sc));
    assert_int_equal(cp2p_metrics_new(&sc->reg), 0);
    cp2p_buf_init(&sc->text, CP2P_METRICS_RENDER_MAX_DEFAULT);
}

static void scrape_fini(scrape *sc)
{
    cp2p_buf_fini(&sc->text);
    cp2p_host_metrics_free(sc->state);
    cp2p_metrics_free(sc->reg);
}

/* Update the registry from h and render it (NUL-terminated in sc->text). */
static void scrape_run(scrape *sc, cp2p_host *h)
{
    assert_int_equal(cp2p_host_metrics_update(&sc->state, h, sc->reg), 0);
    sc->text.len = 0;
    assert_int_equal(cp2p_metrics_render(sc->reg, &sc->text), 0);
    assert_int_equal(cp2p_buf_append(&sc->text, "", 1), 0);
}

/* The value of one series ("name" or "name{label=\"value\"}"); fails when it is not rendered. */
static double value_of(const scrape *sc, const char *series)
{
    char key[512];
    snprintf(key, sizeof(key), "\n%s ", series);
    const char *p = strstr((const char *)sc->text.ptr, key);
    if (p == NULL) {
        fail_msg("series not rendered: %s", series);
    }
    return strtod(p + strlen(key), NULL);
}

static const char *const proto_offer[] = {PROTO};

static void on_host_closed(cp2p_host *h, void *ud)
{
    (void)h;
    (*(int *)ud)++;
}

static void hosts_close(cp2p_host *a, cp2p_host *b)
{
    int closed = 0;
    cp2p_host_close(a, on_host_closed, &closed);
    cp2p_host_close(b, on_host_closed, &closed);
    while (closed < 2) {
        uv_run(&loop, UV_RUN_ONCE);
    }
}

static void bytes_per_protocol_survive_close(void **state)
{
    conn_events ea = {0}, eb = {0};
    dial_res r;
    client cl = {0};
    scrape sa, sb;
    (void)state;
    sink_got = 0;
    memset(reply, 'r', sizeof(reply));
    cp2p_host *a = harness_host(), *b = harness_host();
    cp2p_host_set_event_cb(a, on_event, &ea);
    cp2p_host_set_event_cb(b, on_event, &eb);
    assert_int_equal(cp2p_host_set_handler(a, PROTO, sink_handler, NULL), 0);
    scrape_init(&sa);
    scrape_init(&sb);

    /* Before any traffic the families are there, with their overflow series at 0. */
    scrape_run(&sa, a);
    assert_true(value_of(&sa, "cp2p_host_stream_received_bytes_total{protocol=\"_other\"}") == 0);
    assert_true(value_of(&sa, "cp2p_host_stream_sent_bytes_total{protocol=\"_other\"}") == 0);
    assert_true(value_of(&sa, "cp2p_host_received_bytes_total") == 0);
    assert_true(value_of(&sa, "cp2p_noise_handshakes_total") == 0);
    assert_true(value_of(&sa, "cp2p_noise_handshake_failures_total{reason=\"peer_id\"}") == 0);
    assert_true(value_of(&sa, "cp2p_yamux_protocol_errors_total{kind=\"reset_flood\"}") == 0);

    cp2p_conn *c = dial_host(b, a, &r);
    assert_int_equal(r.status, 0);
    assert_int_equal(cp2p_conn_open_stream(c, proto_offer, 1, client_open, &cl), 0);
    run_until(&cl.done);
    assert_int_equal(sink_got, SEND_LEN);
    assert_int_equal(cl.got, REPLY_LEN);

    /* The internal rows: exact application bytes, both ways, on both sides. */
    const cp2p__host_proto_stats *ra = NULL, *rb = NULL;
    for (size_t i = 0; i < a->nproto_stats; i++) {
        ra = strcmp(a->proto_stats[i].name, PROTO) == 0 ? &a->proto_stats[i] : ra;
    }
    for (size_t i = 0; i < b->nproto_stats; i++) {
        rb = strcmp(b->proto_stats[i].name, PROTO) == 0 ? &b->proto_stats[i] : rb;
    }
    assert_non_null(ra);
    assert_non_null(rb);
    assert_int_equal(ra->bytes_read, SEND_LEN);
    assert_int_equal(ra->bytes_written, REPLY_LEN);
    assert_int_equal(rb->bytes_written, SEND_LEN);
    assert_int_equal(rb->bytes_read, REPLY_LEN);

    /* The same through the registry, with the connection open. */
    scrape_run(&sa, a);
    scrape_run(&sb, b);
    const char *in = "cp2p_host_stream_received_bytes_total{protocol=\"" PROTO "\"}";
    const char *out = "cp2p_host_stream_sent_bytes_total{protocol=\"" PROTO "\"}";
    assert_true(value_of(&sa, in) == SEND_LEN);
    assert_true(value_of(&sa, out) == REPLY_LEN);
    assert_true(value_of(&sb, out) == SEND_LEN);
    assert_true(value_of(&sb, in) == REPLY_LEN);
    /* identify ran on the connection too: its protocol has its own series. */
    assert_true(value_of(&sa, "cp2p_host_stream_sent_bytes_total{protocol=\"/ipfs/id/1.0.0\"}") >
                0);
    double a_in = value_of(&sa, "cp2p_host_received_bytes_total");
    double b_out = value_of(&sb, "cp2p_host_sent_bytes_total");
    assert_true(a_in >= SEND_LEN); /* plus multistream-select and identify */
    assert_true(b_out >= SEND_LEN);
    assert_true(value_of(&sa, "cp2p_noise_handshakes_total") == 1);
    assert_true(value_of(&sb, "cp2p_noise_handshakes_total") == 1);
    assert_true(value_of(&sa, "cp2p_yamux_streams_opened_total{origin=\"remote\"}") >= 1);
    assert_true(value_of(&sb, "cp2p_yamux_streams_opened_total{origin=\"local\"}") >= 1);
    assert_true(value_of(&sa, "cp2p_yamux_frames_received_total") > 0);

    /* Close: the connection's yamux counters move into the host's totals, nothing goes back. */
    cp2p_conn_close(c);
    while (ea.closed < 1 || eb.closed < 1) {
        uv_run(&loop, UV_RUN_ONCE);
    }
    assert_true(a->yamux_closed.data_bytes_in >= SEND_LEN);
    assert_true(b->yamux_closed.data_bytes_out >= SEND_LEN);
    scrape_run(&sa, a);
    scrape_run(&sb, b);
    assert_true(value_of(&sa, in) == SEND_LEN);
    assert_true(value_of(&sa, out) == REPLY_LEN);
    assert_true(value_of(&sb, out) == SEND_LEN);
    assert_true(value_of(&sa, "cp2p_host_received_bytes_total") >= a_in);
    assert_true(value_of(&sb, "cp2p_host_sent_bytes_total") >= b_out);
    assert_true(value_of(&sa, "cp2p_host_received_bytes_total") ==
                (double)a->yamux_closed.data_bytes_in);
    assert_true(value_of(&sa, "cp2p_host_connections_closed_total") == 1);

    scrape_fini(&sa);
    scrape_fini(&sb);
    hosts_close(a, b);
}

static void wrong_peer_id_counts_noise_failure(void **state)
{
    dial_res r = {0};
    cp2p_multiaddr *ma, *bad;
    cp2p_buf s;
    scrape sa, sb;
    (void)state;
    cp2p_host *a = harness_host(), *b = harness_host();
    cp2p_privkey *k;
    cp2p_peer_id other;
    assert_int_equal(cp2p_privkey_generate(CP2P_KEY_ED25519, &k), 0);
    assert_int_equal(cp2p_peer_id_from_pubkey(cp2p_privkey_public(k), &other), 0);
    cp2p_privkey_free(k);
    assert_int_equal(cp2p_host_listen_addr(a, 0, false, &ma), 0);
    cp2p_buf_init(&s, 4096);
    assert_int_equal(cp2p_multiaddr_to_string(ma, &s), 0);
    assert_int_equal(cp2p_buf_append(&s, "/p2p/", 5), 0);
    assert_int_equal(cp2p_peer_id_to_base58(&other, &s), 0);
    assert_int_equal(cp2p_multiaddr_parse((const char *)s.ptr, s.len, &bad), 0);
    assert_int_equal(cp2p_host_dial(b, bad, on_dial, &r), 0);
    run_until(&r.done);
    assert_int_equal(r.status, CP2P_EPEERID);
    cp2p_buf_fini(&s);
    cp2p_multiaddr_free(ma);
    cp2p_multiaddr_free(bad);
    assert_int_equal(b->stats.noise_failures[CP2P__NOISE_FAIL_PEER_ID], 1);
    assert_int_equal(b->stats.noise_handshakes, 0);
    /* The listener sees the dialer go away in the middle of its handshake. */
    uint64_t start = uv_now(&loop);
    while (a->stats.upgrade_failed < 1) {
        uv_run(&loop, UV_RUN_ONCE);
        uv_update_time(&loop);
        assert_true(uv_now(&loop) - start < GUARD_MS);
    }
    scrape_init(&sa);
    scrape_init(&sb);
    scrape_run(&sa, a);
    scrape_run(&sb, b);
    assert_true(value_of(&sb, "cp2p_noise_handshake_failures_total{reason=\"peer_id\"}") == 1);
    assert_true(value_of(&sb, "cp2p_noise_handshake_failures_total{reason=\"timeout\"}") == 0);
    assert_true(value_of(&sb, "cp2p_noise_handshakes_total") == 0);
    double a_fail = 0;
    static const char *const reasons[] = {"timeout", "peer_id", "signature", "protocol",
                                          "closed",  "other"};
    for (size_t i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++) {
        char series[128];
        snprintf(series, sizeof(series), "cp2p_noise_handshake_failures_total{reason=\"%s\"}",
                 reasons[i]);
        a_fail += value_of(&sa, series);
    }
    assert_true(a_fail == 1);
    /* EOF or a reset from the dialer: the connection closed under the handshake. */
    assert_true(value_of(&sa, "cp2p_noise_handshake_failures_total{reason=\"closed\"}") == 1);
    assert_true(value_of(&sa, "cp2p_noise_handshake_failures_total{reason=\"peer_id\"}") == 0);
    scrape_fini(&sa);
    scrape_fini(&sb);
    hosts_close(a, b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(bytes_per_protocol_survive_close, setup, teardown),
        cmocka_unit_test_setup_teardown(wrong_peer_id_counts_noise_failure, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
