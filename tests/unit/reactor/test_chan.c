/* The channel core (src/reactor/chan.c) on virtual time: each anchor problem of issue 14 at the
 * core level (a full channel pauses only itself; a small message waits at most one packet
 * behind a large one; rate limits return a time and hold their rate; try_send and send at the
 * channel's own capacity; a silent peer dies by pong timeout), plus bad input and truncation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include <cp2p/codec.h>

#include "reactor/chan.h"
#include "util/alloc.h"

#define PKT 1024

enum { BLOCK = 0, VOTE = 1, MEMPOOL = 2 };

static cp2p__chan_desc descs[3] = {
    {.id = 0x21, .priority = 10, .send_cap = 2, .recv_cap = 4, .recv_buffer = 4096,
     .max_msg = 70000},
    {.id = 0x22, .priority = 7, .send_cap = 1, .recv_cap = 2, .recv_buffer = 4096,
     .max_msg = 1000},
    {.id = 0x30, .priority = 5, .send_cap = 3, .recv_cap = 8, .recv_buffer = 4096,
     .max_msg = 2048},
};

static cp2p__chan_config base_cfg(void)
{
    return (cp2p__chan_config){
        .chans = descs, .n_chans = 3, .packet = PKT, .stream_backlog = 4 * PKT,
        .max_waiters = 2, .rx_slack = 65536,
    };
}

static cp2p__chan_peer *mk(const cp2p__chan_config *cfg)
{
    cp2p__chan_peer *p;
    assert_int_equal(cp2p__chan_peer_new(cfg, 0, &p), 0);
    return p;
}

static void all_up(cp2p__chan_peer *p)
{
    for (size_t i = 0; i < 3; i++) {
        cp2p__chan_stream_up(p, i);
    }
}

/* Pull every packet that can go now, writing each at once (the stream takes it). */
static size_t drain(cp2p__chan_peer *p, uint64_t now, size_t *per_ch)
{
    cp2p__chan_packet pk;
    size_t total = 0;
    while (cp2p__chan_next_packet(p, now, &pk) == 1) {
        total += pk.len;
        if (per_ch != NULL) {
            per_ch[pk.ch] += pk.len;
        }
        cp2p__chan_written(p, pk.ch, pk.len);
    }
    return total;
}

static void config_is_checked(void **state)
{
    (void)state;
    const char *why;
    cp2p__chan_config c = base_cfg();
    assert_int_equal(cp2p__chan_config_check(&c, &why), 0);
    cp2p__chan_desc dup[2] = {descs[0], descs[0]};
    c.chans = dup;
    c.n_chans = 2;
    assert_int_equal(cp2p__chan_config_check(&c, &why), CP2P_EINVAL);
    assert_string_equal(why, "duplicate channel id");
    c = base_cfg();
    c.send_rate = 1000;
    c.send_burst = 10; /* below a packet: could never send one */
    assert_int_equal(cp2p__chan_config_check(&c, &why), CP2P_EINVAL);
    cp2p__chan_desc bad = descs[0];
    bad.priority = 17;
    c = base_cfg();
    c.chans = &bad;
    c.n_chans = 1;
    assert_int_equal(cp2p__chan_config_check(&c, &why), CP2P_EINVAL);
}

/* try_send fails at once at the channel's own capacity (not a default one); send waits and
 * times out with CP2P_ETIMEDOUT at its deadline; both are counted. */
static void capacity_try_send_and_timeout(void **state)
{
    (void)state;
    cp2p__chan_config c = base_cfg();
    cp2p__chan_peer *p = mk(&c);
    uint8_t m[100] = {0};
    cp2p__chan_event ev;
    /* No stream yet: everything stays queued. Vote capacity 1, mempool 3. */
    assert_int_equal(cp2p__chan_send(p, VOTE, m, sizeof(m), 0, 0, 1), 0);
    assert_int_equal(cp2p__chan_send(p, VOTE, m, sizeof(m), 0, 0, 2), CP2P_EFULL);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(cp2p__chan_send(p, MEMPOOL, m, sizeof(m), 0, 0, 3), 0);
    }
    assert_int_equal(cp2p__chan_send(p, MEMPOOL, m, sizeof(m), 0, 0, 4), CP2P_EFULL);
    assert_true(cp2p__chan_wants_stream(p, VOTE));
    /* send with a timeout waits; two waiters at most. */
    assert_int_equal(cp2p__chan_send(p, VOTE, m, sizeof(m), 10, 500, 5), 1);
    assert_int_equal(cp2p__chan_send(p, VOTE, m, sizeof(m), 20, 500, 6), 1);
    assert_int_equal(cp2p__chan_send(p, VOTE, m, sizeof(m), 30, 500, 7), CP2P_EFULL);
    assert_int_equal(cp2p__chan_deadline(p, 30), 510);
    cp2p__chan_on_timeout(p, 509);
    assert_int_equal(cp2p__chan_next_event(p, &ev), 0);
    cp2p__chan_on_timeout(p, 510);
    assert_int_equal(cp2p__chan_next_event(p, &ev), 1);
    assert_int_equal(ev.type, CP2P__CHAN_EV_SEND_DONE);
    assert_int_equal(ev.token, 5);
    assert_int_equal(ev.status, CP2P_ETIMEDOUT);
    assert_int_equal(cp2p__chan_next_event(p, &ev), 0);
    /* The second waiter is admitted once the queued vote starts going out. */
    cp2p__chan_stream_up(p, VOTE);
    cp2p__chan_packet pk;
    assert_int_equal(cp2p__chan_next_packet(p, 511, &pk), 1);
    assert_int_equal(pk.ch, VOTE);
    assert_int_equal(cp2p__chan_next_event(p, &ev), 1);
    assert_int_equal(ev.token, 6);
    assert_int_equal(ev.status, 0);
    /* Too large for the channel; an unknown id has no index. */
    uint8_t big[1001] = {0};
    assert_int_equal(cp2p__chan_send(p, VOTE, big, sizeof(big), 0, 0, 8), CP2P_ELIMIT);
    assert_int_equal(cp2p__chan_index(p, 0x99), -1);
    assert_int_equal(cp2p__chan_index(p, 0x22), VOTE);
    cp2p__chan_ch_stats cs;
    cp2p__chan_ch_stats_get(p, VOTE, &cs);
    assert_int_equal(cs.try_send_refused, 1);
    assert_int_equal(cs.waiters_refused, 1);
    assert_int_equal(cs.send_timeouts, 1);
    assert_int_equal(cs.too_large, 1);
    cp2p__chan_ch_stats_get(p, MEMPOOL, &cs);
    assert_int_equal(cs.try_send_refused, 1);
    assert_int_equal(cs.send_queued, 3);
    cp2p__chan_peer_free(p);
}

/* A 64 KiB block part is cut into packets; a vote queued meanwhile goes out after at most one
 * more packet of the block, and the block still finishes. */
static void small_message_waits_at_most_one_packet(void **state)
{
    (void)state;
    cp2p__chan_config c = base_cfg();
    c.stream_backlog = 1 << 20; /* the stream never blocks: only the scheduler decides */
    cp2p__chan_peer *p = mk(&c);
    all_up(p);
    static uint8_t block[65536];
    uint8_t vote[200] = {0};
    cp2p__chan_packet pk;
    assert_int_equal(cp2p__chan_send(p, BLOCK, block, sizeof(block), 0, 0, 1), 0);
    for (int round = 0; round < 20; round++) {
        assert_int_equal(cp2p__chan_next_packet(p, 0, &pk), 1);
        assert_int_equal(pk.ch, BLOCK);
        assert_true(pk.len <= PKT);
        assert_int_equal(cp2p__chan_send(p, VOTE, vote, sizeof(vote), 0, 0, 2), 0);
        int blocks_before_vote = 0;
        for (;;) {
            assert_int_equal(cp2p__chan_next_packet(p, 0, &pk), 1);
            if (pk.ch == VOTE) {
                break;
            }
            blocks_before_vote++;
        }
        assert_true(blocks_before_vote <= 1);
        assert_int_equal(pk.len, sizeof(vote) + 2); /* whole, with its 2-byte prefix */
    }
    size_t per[3] = {0};
    drain(p, 0, per);
    cp2p__chan_ch_stats cs;
    cp2p__chan_ch_stats_get(p, BLOCK, &cs);
    assert_int_equal(cs.msgs_sent, 1);
    assert_int_equal(cs.bytes_sent, sizeof(block) + 3);
    cp2p__chan_peer_free(p);
}

/* A channel's stream holds at most stream_backlog bytes; written() lets more go. */
static void backlog_parks_the_channel(void **state)
{
    (void)state;
    cp2p__chan_config c = base_cfg();
    cp2p__chan_peer *p = mk(&c);
    all_up(p);
    static uint8_t block[65536];
    cp2p__chan_packet pk;
    assert_int_equal(cp2p__chan_send(p, BLOCK, block, sizeof(block), 0, 0, 1), 0);
    size_t handed = 0;
    while (cp2p__chan_next_packet(p, 0, &pk) == 1) {
        handed += pk.len;
    }
    assert_int_equal(handed, c.stream_backlog);
    /* A small gap in the stream is not filled: the next packet waits for room for all of it
     * (else a bulk channel decays into tiny writes). */
    cp2p__chan_written(p, BLOCK, 3);
    assert_int_equal(cp2p__chan_next_packet(p, 0, &pk), 0);
    cp2p__chan_written(p, BLOCK, PKT - 3);
    assert_int_equal(cp2p__chan_next_packet(p, 0, &pk), 1);
    assert_int_equal(pk.len, PKT);
    /* The stream died mid-message: the rest is dropped and counted; the queue continues. */
    cp2p__chan_stream_down(p, BLOCK);
    cp2p__chan_ch_stats cs;
    cp2p__chan_ch_stats_get(p, BLOCK, &cs);
    assert_int_equal(cs.send_dropped, 1);
    assert_false(cp2p__chan_wants_stream(p, BLOCK));
    assert_int_equal(cp2p__chan_send(p, BLOCK, block, 10, 0, 0, 2), 0);
    assert_true(cp2p__chan_wants_stream(p, BLOCK));
    cp2p__chan_stream_up(p, BLOCK);
    assert_int_equal(drain(p, 0, NULL), 11);
    cp2p__chan_peer_free(p);
}

/* With the send rate limited, 10 virtual seconds carry the rate (within 5 %, the burst
 * included), the channels share it by priority, and the time throttled is counted. */
static void send_rate_holds_and_shares_by_priority(void **state)
{
    (void)state;
    cp2p__chan_config c = base_cfg();
    c.send_rate = 100000;
    c.send_burst = 4 * PKT;
    cp2p__chan_peer *p = mk(&c);
    all_up(p);
    static uint8_t block[65536];
    uint8_t mp[2000] = {0};
    size_t per[3] = {0}, total = 0;
    for (uint64_t now = 0; now <= 10000; now++) {
        while (cp2p__chan_send(p, BLOCK, block, sizeof(block), now, 0, 0) == 0) {
        }
        while (cp2p__chan_send(p, MEMPOOL, mp, sizeof(mp), now, 0, 0) == 0) {
        }
        if (cp2p__chan_deadline(p, now) <= now) {
            cp2p__chan_on_timeout(p, now);
        }
        total += drain(p, now, per);
    }
    double want = 100000.0 * 10 + c.send_burst;
    assert_true(total > want * 0.95 && total < want * 1.05);
    double ratio = (double)per[BLOCK] / (double)per[MEMPOOL];
    assert_true(ratio > 10.0 / 5 * 0.9 && ratio < 10.0 / 5 * 1.1);
    cp2p__chan_stats st;
    cp2p__chan_stats_get(p, &st);
    assert_true(st.send_throttled_ms > 9000);
    cp2p__chan_peer_free(p);
}

static size_t put_msg(uint8_t *out, const uint8_t *body, size_t len)
{
    uint8_t pre[CP2P_UVARINT_MAX];
    size_t n = cp2p_uvarint_encode(pre, len);
    memcpy(out, pre, n);
    memcpy(out + n, body, len);
    return n + len;
}

/* A full receive queue stops only its channel; taking a message lets it read again. */
static void full_channel_pauses_only_itself(void **state)
{
    (void)state;
    cp2p__chan_config c = base_cfg();
    cp2p__chan_peer *p = mk(&c);
    uint8_t wire[64], body[5] = {1, 2, 3, 4, 5};
    size_t n = 0;
    const char *why;
    for (int i = 0; i < 3; i++) {
        n += put_msg(wire + n, body, sizeof(body));
    }
    assert_int_equal(cp2p__chan_recv(p, VOTE, wire, n, 0, &why), 0); /* 3 > recv_cap 2 */
    assert_false(cp2p__chan_read_wanted(p, VOTE, 0));
    assert_true(cp2p__chan_read_wanted(p, BLOCK, 0));
    assert_true(cp2p__chan_read_wanted(p, MEMPOOL, 0));
    cp2p_slice m;
    assert_int_equal(cp2p__chan_take(p, VOTE, &m), 1);
    assert_int_equal(m.len, 5);
    assert_memory_equal(m.ptr, body, 5);
    cp2p__chan_taken(p, VOTE);
    assert_false(cp2p__chan_read_wanted(p, VOTE, 0)); /* still 2 == cap */
    cp2p__chan_taken(p, VOTE);
    assert_true(cp2p__chan_read_wanted(p, VOTE, 0));
    cp2p__chan_taken(p, VOTE);
    assert_int_equal(cp2p__chan_take(p, VOTE, &m), 0);
    cp2p__chan_ch_stats cs;
    cp2p__chan_ch_stats_get(p, VOTE, &cs);
    assert_int_equal(cs.msgs_received, 3);
    assert_int_equal(cs.msgs_delivered, 3);
    assert_int_equal(cs.read_pauses, 1);
    assert_int_equal(cs.recv_buffered, 0);
    cp2p__chan_peer_free(p);
}

/* Every split of a stream of messages yields the same messages. */
static void every_split_gives_the_same_messages(void **state)
{
    (void)state;
    uint8_t wire[4096], body[300];
    size_t n = 0;
    for (size_t i = 0; i < sizeof(body); i++) {
        body[i] = (uint8_t)i;
    }
    size_t lens[] = {0, 1, 127, 128, 300, 2};
    for (size_t i = 0; i < 6; i++) {
        n += put_msg(wire + n, body, lens[i]);
    }
    for (size_t split = 0; split <= n; split++) {
        cp2p__chan_config c = base_cfg();
        cp2p__chan_peer *p = mk(&c);
        const char *why;
        assert_int_equal(cp2p__chan_recv(p, MEMPOOL, wire, split, 0, &why), 0);
        assert_int_equal(cp2p__chan_recv(p, MEMPOOL, wire + split, n - split, 0, &why), 0);
        cp2p_slice m;
        for (size_t i = 0; i < 6; i++) {
            assert_int_equal(cp2p__chan_take(p, MEMPOOL, &m), 1);
            assert_int_equal(m.len, lens[i]);
            assert_memory_equal(m.ptr, body, lens[i]);
            cp2p__chan_taken(p, MEMPOOL);
        }
        assert_int_equal(cp2p__chan_take(p, MEMPOOL, &m), 0);
        cp2p__chan_peer_free(p);
    }
}

/* Bad input costs the stream of that channel only, and is counted: a length over the channel's
 * maximum (found from the prefix, before the body arrives), a non-minimal varint, a truncated
 * message. Complete messages read before stay deliverable. */
static void bad_input_is_counted_per_channel(void **state)
{
    (void)state;
    cp2p__chan_config c = base_cfg();
    cp2p__chan_peer *p = mk(&c);
    const char *why;
    uint8_t ok[8], body[3] = {7, 8, 9};
    size_t n = put_msg(ok, body, 3);
    assert_int_equal(cp2p__chan_recv(p, VOTE, ok, n, 0, &why), 0);
    uint8_t over[CP2P_UVARINT_MAX];
    cp2p_uvarint_encode(over, 1001); /* vote max is 1000 */
    assert_int_equal(cp2p__chan_recv(p, VOTE, over, 2, 0, &why), CP2P_ELIMIT);
    assert_non_null(why);
    uint8_t nonmin[2] = {0x80, 0x00};
    assert_int_equal(cp2p__chan_recv(p, MEMPOOL, nonmin, 2, 0, &why), CP2P_EPROTO);
    uint8_t part[3] = {5, 1, 2}; /* 5 declared, 2 arrive, then the stream ends */
    assert_int_equal(cp2p__chan_recv(p, BLOCK, part, 3, 0, &why), 0);
    cp2p__chan_recv_end(p, BLOCK);
    cp2p_slice m;
    assert_int_equal(cp2p__chan_take(p, VOTE, &m), 1);
    assert_memory_equal(m.ptr, body, 3);
    assert_int_equal(cp2p__chan_take(p, BLOCK, &m), 0);
    cp2p__chan_ch_stats cs;
    cp2p__chan_ch_stats_get(p, VOTE, &cs);
    assert_int_equal(cs.oversized, 1);
    cp2p__chan_ch_stats_get(p, MEMPOOL, &cs);
    assert_int_equal(cs.malformed, 1);
    cp2p__chan_ch_stats_get(p, BLOCK, &cs);
    assert_int_equal(cs.truncated, 1);
    assert_int_equal(cs.recv_buffered, 0);
    cp2p__chan_peer_free(p);
}

/* Receive limiting: bytes beyond the tokens become a debt; reading pauses (every channel) and
 * the deadline says when it may resume; the time is counted. */
static void receive_rate_pauses_reading(void **state)
{
    (void)state;
    cp2p__chan_config c = base_cfg();
    c.recv_rate = 10000;
    c.recv_burst = 10000;
    cp2p__chan_peer *p = mk(&c);
    static uint8_t wire[30000];
    uint8_t body[1900] = {0};
    size_t n = 0;
    while (n + 1902 <= sizeof(wire)) {
        n += put_msg(wire + n, body, sizeof(body));
    }
    const char *why;
    assert_int_equal(cp2p__chan_recv(p, BLOCK, wire, n, 0, &why), 0);
    assert_false(cp2p__chan_read_wanted(p, MEMPOOL, 0));
    /* The debt (n - 10,000 bytes) is paid at 10 bytes a millisecond, in burst-sized steps. */
    uint64_t now = 0;
    int steps = 0;
    while (!cp2p__chan_read_wanted(p, MEMPOOL, now)) {
        uint64_t d = cp2p__chan_deadline(p, now);
        assert_true(d > now && d != UINT64_MAX);
        now = d;
        steps++;
    }
    uint64_t want = (n - 10000 + 9) / 10;
    assert_true(now >= want && now <= want + 2);
    assert_int_equal(steps, 2);
    cp2p__chan_stats st;
    cp2p__chan_stats_get(p, &st);
    assert_int_equal(st.recv_throttled_ms, now);
    assert_int_equal(st.bytes_received, n);
    cp2p__chan_peer_free(p);
}

/* Keepalive: a ping every interval, a pong answered, a peer that does not answer is DEAD with
 * "pong timeout" at ping + pong timeout; a stray byte on the keepalive stream is an error. */
static void keepalive_pong_timeout(void **state)
{
    (void)state;
    cp2p__chan_config c = base_cfg();
    c.ping_interval_ms = 1000;
    c.pong_timeout_ms = 500;
    cp2p__chan_peer *p = mk(&c);
    uint8_t out[CP2P__CHAN_KA_OUT_MAX];
    const char *why;
    cp2p__chan_event ev;
    assert_int_equal(cp2p__chan_deadline(p, 0), 1000);
    assert_int_equal(cp2p__chan_keepalive_out(p, out), 0);
    cp2p__chan_on_timeout(p, 1000);
    assert_int_equal(cp2p__chan_keepalive_out(p, out), 2);
    assert_int_equal(out[0], 1);
    assert_int_equal(out[1], 0x01);
    assert_int_equal(cp2p__chan_deadline(p, 1000), 1500);
    uint8_t pong[2] = {1, 0x02}, ping[2] = {1, 0x01};
    assert_int_equal(cp2p__chan_keepalive_recv(p, pong, 1, 1100, &why), 0); /* split */
    assert_int_equal(cp2p__chan_keepalive_recv(p, pong + 1, 1, 1100, &why), 0);
    assert_int_equal(cp2p__chan_deadline(p, 1100), 2000);
    cp2p__chan_stats st;
    cp2p__chan_stats_get(p, &st);
    assert_int_equal(st.rtt_ms, 100);
    /* The peer pings: we owe a pong. */
    assert_int_equal(cp2p__chan_keepalive_recv(p, ping, 2, 1200, &why), 0);
    assert_int_equal(cp2p__chan_keepalive_out(p, out), 2);
    assert_int_equal(out[1], 0x02);
    /* Silence after the next ping. */
    cp2p__chan_on_timeout(p, 2000);
    assert_int_equal(cp2p__chan_keepalive_out(p, out), 2);
    cp2p__chan_on_timeout(p, 2499);
    assert_int_equal(cp2p__chan_next_event(p, &ev), 0);
    cp2p__chan_on_timeout(p, 2500);
    assert_int_equal(cp2p__chan_next_event(p, &ev), 1);
    assert_int_equal(ev.type, CP2P__CHAN_EV_DEAD);
    assert_string_equal(ev.why, "pong timeout");
    assert_int_equal(cp2p__chan_deadline(p, 2500), UINT64_MAX);
    uint8_t junk[2] = {1, 0x07};
    assert_int_equal(cp2p__chan_keepalive_recv(p, junk, 2, 2600, &why), CP2P_EPROTO);
    cp2p__chan_peer_free(p);
}

/* A channel the peer refused: queued messages dropped, waiters told CP2P_ENOTSUP, later sends
 * fail with it; closing the peer tells the remaining waiters CP2P_ECLOSED. */
static void refused_channel_and_close(void **state)
{
    (void)state;
    cp2p__chan_config c = base_cfg();
    cp2p__chan_peer *p = mk(&c);
    uint8_t m[10] = {0};
    cp2p__chan_event ev;
    assert_int_equal(cp2p__chan_send(p, VOTE, m, 10, 0, 0, 1), 0);
    assert_int_equal(cp2p__chan_send(p, VOTE, m, 10, 0, 100, 2), 1);
    cp2p__chan_refused(p, VOTE);
    assert_int_equal(cp2p__chan_next_event(p, &ev), 1);
    assert_int_equal(ev.token, 2);
    assert_int_equal(ev.status, CP2P_ENOTSUP);
    assert_int_equal(cp2p__chan_send(p, VOTE, m, 10, 0, 0, 3), CP2P_ENOTSUP);
    assert_false(cp2p__chan_wants_stream(p, VOTE));
    for (int i = 0; i < 3; i++) {
        assert_int_equal(cp2p__chan_send(p, MEMPOOL, m, 10, 0, 0, 4), 0);
    }
    assert_int_equal(cp2p__chan_send(p, MEMPOOL, m, 10, 0, 100, 5), 1);
    cp2p__chan_close(p);
    assert_int_equal(cp2p__chan_next_event(p, &ev), 1);
    assert_int_equal(ev.token, 5);
    assert_int_equal(ev.status, CP2P_ECLOSED);
    assert_int_equal(cp2p__chan_send(p, MEMPOOL, m, 10, 0, 0, 6), CP2P_ECLOSED);
    cp2p__chan_ch_stats cs;
    cp2p__chan_ch_stats_get(p, VOTE, &cs);
    assert_int_equal(cs.send_dropped, 1);
    cp2p__chan_peer_free(p); /* frees the queued mempool messages */
}

/* Each allocation fails in turn: creation fails whole with CP2P_ENOMEM, a send fails with it
 * and changes nothing, a receive that cannot grow its buffer fails the stream (counted), and
 * whatever was accepted before is intact and freed (ASan checks the rest). */
static void allocation_failures(void **state)
{
    (void)state;
    uint8_t m[300] = {0}, wire[400];
    size_t n = put_msg(wire, m, sizeof(m));
    for (long k = 1; k < 20; k++) {
        cp2p__chan_config c = base_cfg();
        cp2p__chan_peer *p = NULL;
        const char *why;
        cp2p__alloc_fail_after(k);
        int rc = cp2p__chan_peer_new(&c, 0, &p);
        if (rc != 0) {
            cp2p__alloc_fail_after(0);
            assert_int_equal(rc, CP2P_ENOMEM);
            assert_null(p);
            continue;
        }
        rc = cp2p__chan_send(p, MEMPOOL, m, sizeof(m), 0, 0, 1);
        assert_true(rc == 0 || rc == CP2P_ENOMEM);
        cp2p__chan_ch_stats cs;
        cp2p__chan_ch_stats_get(p, MEMPOOL, &cs);
        assert_int_equal(cs.send_queued, rc == 0 ? 1 : 0);
        rc = cp2p__chan_recv(p, MEMPOOL, wire, n, 0, &why);
        assert_true(rc == 0 || rc == CP2P_ENOMEM);
        cp2p__alloc_fail_after(0);
        cp2p_slice got;
        assert_int_equal(cp2p__chan_take(p, MEMPOOL, &got), rc == 0 ? 1 : 0);
        cp2p__chan_peer_free(p);
    }
}

/* Under the send rate limit too, a vote queued while block parts wait for tokens goes out
 * after at most one packet of them: the tokens that come back go to the vote first. */
static void vote_first_when_tokens_return(void **state)
{
    (void)state;
    cp2p__chan_config c = base_cfg();
    c.stream_backlog = 1 << 20;
    c.send_rate = 100000;
    c.send_burst = 2 * PKT;
    cp2p__chan_peer *p = mk(&c);
    all_up(p);
    static uint8_t block[65536];
    uint8_t vote[200] = {0};
    assert_int_equal(cp2p__chan_send(p, BLOCK, block, sizeof(block), 0, 0, 1), 0);
    assert_true(drain(p, 0, NULL) > 0); /* the burst goes; now out of tokens */
    assert_int_equal(cp2p__chan_send(p, VOTE, vote, sizeof(vote), 0, 0, 2), 0);
    uint64_t now = 0;
    size_t block_before = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t d = cp2p__chan_deadline(p, now);
        assert_true(d != UINT64_MAX);
        now = d > now ? d : now + 1;
        cp2p__chan_on_timeout(p, now);
        cp2p__chan_packet pk;
        bool vote_out = false;
        while (cp2p__chan_next_packet(p, now, &pk) == 1) {
            cp2p__chan_written(p, pk.ch, pk.len);
            if (pk.ch == VOTE) {
                vote_out = true;
                break;
            }
            block_before += pk.len;
        }
        if (vote_out) {
            break;
        }
    }
    assert_true(block_before <= PKT);
    assert_true(now <= 100); /* tokens for at most a packet and the vote: ~12 ms */
    cp2p__chan_peer_free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(config_is_checked),
        cmocka_unit_test(capacity_try_send_and_timeout),
        cmocka_unit_test(small_message_waits_at_most_one_packet),
        cmocka_unit_test(backlog_parks_the_channel),
        cmocka_unit_test(send_rate_holds_and_shares_by_priority),
        cmocka_unit_test(full_channel_pauses_only_itself),
        cmocka_unit_test(every_split_gives_the_same_messages),
        cmocka_unit_test(bad_input_is_counted_per_channel),
        cmocka_unit_test(receive_rate_pauses_reading),
        cmocka_unit_test(keepalive_pong_timeout),
        cmocka_unit_test(refused_channel_and_close),
        cmocka_unit_test(allocation_failures),
        cmocka_unit_test(vote_first_when_tokens_return),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
